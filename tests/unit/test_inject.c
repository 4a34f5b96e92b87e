/* SPDX-License-Identifier: MIT */
/*
 * inject/: a round of injected work that does not come back (a syscall that
 * blocks) is given up after its bound, with the thread stopped where it was,
 * so that its registers can be put back: the process then runs on as if
 * nothing had been injected.  A batch stops at its first failing syscall;
 * batch_run_all() runs every entry whatever the results.  A batch split
 * between two threads of one process runs each part on its thread (each
 * part stopping at its own first failure).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "inject/inject.h"

static int second_ctl = -1;

static void *second_main(void *arg)
{
	char c;
	(void)arg;
	while (read(second_ctl, &c, 1) != 1)
		;
	return NULL;
}

/*
 * A child with the blob (code page + data area) mapped, stopped and seized;
 * with ret_second, a second thread too (named "second", the first "first"),
 * seized and stopped, its tid there.
 */
static pid_t blob_child(uint64_t *ret_blob, pid_t *ret_second, int ctl[2])
{
	int info[2], st;
	uint8_t code[INJ_BLOB_CODE_MAX];
	size_t clen;

	inject_blob_code(code, &clen);
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(info), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		uint8_t *blob = mmap(NULL, INJ_BLOB_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t a[2] = { (uint64_t)(uintptr_t)blob, 0 };
		int go[2];
		char c = 0;
		if (blob == MAP_FAILED || pipe(go) < 0)
			_exit(2);
		memcpy(blob, code, clen);
		if (ret_second) {
			pthread_t th;
			prctl(PR_SET_NAME, "first", 0, 0, 0);
			second_ctl = go[0];
			if (pthread_create(&th, NULL, second_main, NULL) != 0 ||
			    pthread_setname_np(th, "second") != 0)
				_exit(3);
			/* its tid: the other entry of /proc/self/task */
			for (pid_t t = getpid() + 1; t < getpid() + 4096 && !a[1]; t++) {
				char path[64];
				snprintf(path, sizeof(path), "/proc/self/task/%d", t);
				if (access(path, F_OK) == 0)
					a[1] = (uint64_t)t;
			}
		}
		if (write(info[1], a, sizeof(a)) != sizeof(a))
			_exit(3);
		while (read(ctl[0], &c, 1) != 1)
			;
		_exit(c == 'x' ? 0 : 4);
	}
	uint64_t a[2];
	assert_int_equal(read(info[0], a, sizeof(a)), sizeof(a));
	close(info[0]);
	close(info[1]);
	*ret_blob = a[0];
	pid_t tids[2] = { child, (pid_t)a[1] };
	for (int k = 0; k < (ret_second ? 2 : 1); k++) {
		assert_true(tids[k] > 0);
		assert_int_equal(ptrace(PTRACE_SEIZE, tids[k], 0, 0), 0);
		assert_int_equal(ptrace(PTRACE_INTERRUPT, tids[k], 0, 0), 0);
		assert_int_equal(ptrace_wait_stop(tids[k], &st), 0);
	}
	if (ret_second)
		*ret_second = tids[1];
	return child;
}

/* Its registers back, detached, told to exit: it exits 0 (it ran on). */
static void release_child(pid_t child, const struct user_regs_struct *saved, int ctl[2])
{
	int st;

	assert_int_equal(ptrace_setregs(child, saved), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, child, 0, 0), 0);
	assert_int_equal(write(ctl[1], "x", 1), 1);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(ctl[0]);
	close(ctl[1]);
}

static void test_stuck_injection_is_bounded(void **state)
{
	(void)state;
	int stuck[2], ctl[2];
	uint64_t code;

	assert_int_equal(pipe(stuck), 0);
	pid_t child = blob_child(&code, NULL, ctl);
	struct user_regs_struct saved;
	assert_int_equal(ptrace_getregs(child, &saved), 0);

	/* read() of a pipe nobody writes to: it blocks */
	struct tracee t = { .tid = child, .memfd = -1, .code = code };
	setenv("DMIGRATE_INJECT_TIMEOUT_MS", "200", 1);
	dm_error_clear();
	long r = inject_syscall(&t, SYS_read, (uint64_t)stuck[0], code + INJ_CODE_SIZE, 1, 0, 0, 0);
	unsetenv("DMIGRATE_INJECT_TIMEOUT_MS");
	assert_int_equal(r, -ETIMEDOUT);
	assert_non_null(strstr(dm_last_error(), "did not come back"));

	/* stopped where it was: its registers go back, it runs on */
	release_child(child, &saved, ctl);
	close(stuck[0]);
	close(stuck[1]);
}


static void test_batch_stops_or_runs_all(void **state)
{
	(void)state;
	int ctl[2];
	uint64_t blob;
	pid_t child = blob_child(&blob, NULL, ctl);
	struct user_regs_struct saved;
	assert_int_equal(ptrace_getregs(child, &saved), 0);
	struct tracee t = { .tid = child, .memfd = -1, .code = blob, .data = blob + INJ_CODE_SIZE };
	assert_int_equal(inject_open_mem(&t), 0);
	struct inj_batch *b = malloc(sizeof(*b));
	assert_non_null(b);

	/* stops at the failure: the entry after it never runs */
	batch_init(b, &t);
	batch_add(b, "getpid", SYS_getpid, 0, 0, 0, 0, 0, 0);
	batch_add(b, "close(-1)", SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0);
	batch_add(b, "getppid", SYS_getppid, 0, 0, 0, 0, 0, 0);
	b->e[2].ret = 12345; /* what is there if it does not run */
	unsigned failed = 99;
	dm_error_clear();
	assert_int_equal(batch_run(b, &failed), -EBADF);
	assert_int_equal(failed, 1);
	assert_int_equal(batch_result(b, 0), child);
	assert_int_equal(batch_result(b, 2), 12345);

	/* every entry runs */
	batch_init(b, &t);
	batch_add(b, "getpid", SYS_getpid, 0, 0, 0, 0, 0, 0);
	batch_add(b, "close(-1)", SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0);
	batch_add(b, "getppid", SYS_getppid, 0, 0, 0, 0, 0, 0);
	assert_int_equal(batch_run_all(b), 0);
	assert_int_equal(batch_result(b, 0), child);
	assert_int_equal(batch_result(b, 1), -EBADF);
	assert_int_equal(batch_result(b, 2), getpid());

	/* and the next plain batch stops at a failure again */
	batch_init(b, &t);
	batch_add(b, "close(-1)", SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0);
	batch_add(b, "getpid", SYS_getpid, 0, 0, 0, 0, 0, 0);
	b->e[1].ret = 777;
	assert_int_equal(batch_run(b, &failed), -EBADF);
	assert_int_equal(failed, 0);
	assert_int_equal(batch_result(b, 1), 777);

	free(b);
	tracee_release(&t);
	release_child(child, &saved, ctl);
}

static void test_batch_parts_at_once(void **state)
{
	(void)state;
	int ctl[2];
	uint64_t blob;
	pid_t tid[2];
	pid_t child = blob_child(&blob, &tid[1], ctl);
	tid[0] = child;
	struct user_regs_struct saved[2];
	struct tracee t[2];
	struct inj_batch *b = malloc(sizeof(*b));
	uint64_t name[2];
	assert_non_null(b);

	for (int k = 0; k < 2; k++) {
		assert_int_equal(ptrace_getregs(tid[k], &saved[k]), 0);
		t[k] = (struct tracee){ .tid = tid[k], .memfd = -1, .code = blob, .data = blob + INJ_CODE_SIZE };
		assert_int_equal(inject_open_mem(&t[k]), 0);
	}
	/* each thread: its name into staged bytes of its own, its tid */
	struct inj_part parts[2];
	batch_init(b, &t[0]);
	for (int k = 0; k < 2; k++) {
		parts[k] = (struct inj_part){ &t[k], b->n, 2 };
		name[k] = batch_reserve(b, 16);
		assert_true(name[k] != 0);
		batch_add(b, "prctl(PR_GET_NAME)", SYS_prctl, PR_GET_NAME, name[k], 0, 0, 0, 0);
		batch_add(b, "gettid", SYS_gettid, 0, 0, 0, 0, 0, 0);
	}
	assert_int_equal(batch_run_parts(b, parts, 2, NULL, NULL), 0);
	assert_string_equal((char *)batch_local(b, name[0]), "first");
	assert_string_equal((char *)batch_local(b, name[1]), "second");
	assert_int_equal(batch_result(b, 1), tid[0]);
	assert_int_equal(batch_result(b, 3), tid[1]);

	/* a failure ends its own part only; the first failing part is said */
	batch_init(b, &t[0]);
	parts[0] = (struct inj_part){ &t[0], 0, 2 };
	batch_add(b, "gettid", SYS_gettid, 0, 0, 0, 0, 0, 0);
	batch_add(b, "gettid", SYS_gettid, 0, 0, 0, 0, 0, 0);
	parts[1] = (struct inj_part){ &t[1], 2, 2 };
	batch_add(b, "close(-1)", SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0);
	batch_add(b, "gettid", SYS_gettid, 0, 0, 0, 0, 0, 0);
	b->e[3].ret = 4242;
	unsigned part = 99, failed = 99;
	dm_error_clear();
	assert_int_equal(batch_run_parts(b, parts, 2, &part, &failed), -EBADF);
	assert_int_equal(part, 1);
	assert_int_equal(failed, 2);
	assert_non_null(strstr(dm_last_error(), "close(-1)"));
	assert_int_equal(batch_result(b, 1), tid[0]);
	assert_int_equal(batch_result(b, 3), 4242);

	/* the room a batch has: entries and staged bytes */
	batch_init(b, &t[1]);
	assert_true(batch_fits(b, INJ_BATCH_MAX, 0));
	assert_false(batch_fits(b, INJ_BATCH_MAX + 1, 0));
	assert_true(batch_fits(b, 0, sizeof(b->staging)));
	assert_int_equal(batch_reserve(b, sizeof(b->staging) + 1), 0);

	free(b);
	for (int k = 0; k < 2; k++)
		tracee_release(&t[k]);
	assert_int_equal(ptrace_setregs(tid[1], &saved[1]), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, tid[1], 0, 0), 0);
	release_child(child, &saved[0], ctl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stuck_injection_is_bounded),
		cmocka_unit_test(test_batch_stops_or_runs_all),
		cmocka_unit_test(test_batch_parts_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
