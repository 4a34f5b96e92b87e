/* SPDX-License-Identifier: MIT */
/*
 * inject/: a round of injected work that does not come back (a syscall that
 * blocks) is given up after its bound, with the thread stopped where it was,
 * so that its registers can be put back: the process then runs on as if
 * nothing had been injected.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "inject/inject.h"

static void test_stuck_injection_is_bounded(void **state)
{
	(void)state;
	int stuck[2], ctl[2], addr_pipe[2], st;
	uint64_t code;

	assert_int_equal(pipe(stuck), 0);
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(addr_pipe), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* syscall; int3 (the blob's first bytes) */
		uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char c = 0;
		if (page == MAP_FAILED)
			_exit(2);
		page[0] = 0x0f;
		page[1] = 0x05;
		page[2] = 0xcc;
		uint64_t a = (uint64_t)(uintptr_t)page;
		if (write(addr_pipe[1], &a, sizeof(a)) != sizeof(a))
			_exit(3);
		while (read(ctl[0], &c, 1) != 1)
			;
		_exit(c == 'x' ? 0 : 4);
	}
	assert_int_equal(read(addr_pipe[0], &code, sizeof(code)), sizeof(code));
	assert_int_equal(ptrace(PTRACE_SEIZE, child, 0, 0), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, child, 0, 0), 0);
	assert_int_equal(ptrace_wait_stop(child, &st), 0);
	struct user_regs_struct saved;
	assert_int_equal(ptrace_getregs(child, &saved), 0);

	/* read() of a pipe nobody writes to: it blocks */
	struct tracee t = { .tid = child, .memfd = -1, .code = code };
	setenv("DMIGRATE_INJECT_TIMEOUT_MS", "200", 1);
	dm_error_clear();
	long r = inject_syscall(&t, SYS_read, (uint64_t)stuck[0], code + 64, 1, 0, 0, 0);
	unsetenv("DMIGRATE_INJECT_TIMEOUT_MS");
	assert_int_equal(r, -ETIMEDOUT);
	assert_non_null(strstr(dm_last_error(), "did not come back"));

	/* stopped where it was: its registers go back, it runs on */
	assert_int_equal(ptrace_setregs(child, &saved), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, child, 0, 0), 0);
	assert_int_equal(write(ctl[1], "x", 1), 1);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stuck_injection_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
