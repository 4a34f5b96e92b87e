/* SPDX-License-Identifier: MIT */
/*
 * base/child: a child we wait for has a limit (child_wait_limit()).  A child
 * that sleeps for ever is killed with its process group (what it started
 * too) and reaped once its limit expires, and the error names it; a child
 * that exits is reported with its status; a child that leads no group of
 * its own is killed alone (never our group).  ctr_run() (runc and the
 * other commands) waits the same way and names a runc command by its verb
 * and container ("runc delete ct1").
 *
 * The test process is a subreaper: the grandchildren come back to it, so
 * that their end (killed, not left running) can be seen.  No verdict
 * depends on speed: the limits are short and every wait for an outcome is
 * bounded generously.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/child.h"
#include "base/clock.h"
#include "base/log.h"
#include "container/runc.h"

/* the first grandchild that comes back to us (subreaper), reaped within 20 s
 * (it was killed: it ends at once), or -1 */
static pid_t reap_orphan(int *ret_status)
{
	for (int i = 0; i < 2000; i++) {
		pid_t w = waitpid(-1, ret_status, WNOHANG);
		if (w > 0)
			return w;
		if (w < 0 && errno == ECHILD)
			return -1;
		usleep(10000);
	}
	return -1;
}

/* a child that leads its own group (if group) and starts a grandchild; both
 * sleep for ever.  The grandchild's pid comes back on the pipe. */
static pid_t sleepers(bool group, pid_t *ret_grandchild)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (group)
			setpgid(0, 0);
		pid_t g = fork();
		if (g == 0) {
			for (;;)
				pause();
		}
		if (write(p[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], ret_grandchild, sizeof(*ret_grandchild)), sizeof(*ret_grandchild));
	close(p[0]);
	return pid;
}

static void test_exit_status(void **state)
{
	(void)state;
	int st = -1;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(3);
	assert_int_equal(child_wait_limit(pid, 10000, &st, "exits"), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);  /* reaped */
}

static void test_hung_group_killed(void **state)
{
	(void)state;
	pid_t g;
	int st = 0;
	pid_t pid = sleepers(true, &g);
	uint64_t t0 = clock_ns();
	int r = child_wait_limit(pid, 200, &st, "sleeper %d", pid);
	uint64_t took = clock_ns() - t0;
	assert_int_equal(r, -ETIMEDOUT);
	char want[128];
	snprintf(want, sizeof(want), "sleeper %d did not finish in 0.2 s (killed)", pid);
	assert_string_equal(dm_last_error(), want);
	assert_true(took >= 200 * 1000000ULL);
	/* reaped: no zombie left */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* its group went with it: the grandchild was killed, not left running */
	assert_int_equal(reap_orphan(&st), g);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void test_hung_no_group(void **state)
{
	(void)state;
	pid_t g;
	int st = 0;
	pid_t pid = sleepers(false, &g);
	assert_int_equal(child_wait_limit(pid, 200, &st, "sleeper"), -ETIMEDOUT);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	/* in our group: only it was killed (we are still here), its child runs on */
	assert_int_equal(kill(g, 0), 0);
	kill(g, SIGKILL);
	assert_int_equal(reap_orphan(&st), g);
}

static void test_knob(void **state)
{
	(void)state;
	unsetenv("DMIGRATE_CHILD_TIMEOUT_MS");
	assert_int_equal(child_limit_ms(CHILD_WAIT_RUNC_MS), CHILD_WAIT_RUNC_MS);
	setenv("DMIGRATE_CHILD_TIMEOUT_MS", "1500", 1);
	assert_int_equal(child_limit_ms(CHILD_WAIT_RUNC_MS), 1500);
	assert_int_equal(child_limit_ms(1000), 1000);   /* it only lowers */
	setenv("DMIGRATE_CHILD_TIMEOUT_MS", "junk", 1);
	assert_int_equal(child_limit_ms(CHILD_WAIT_RUNC_MS), CHILD_WAIT_RUNC_MS);
	unsetenv("DMIGRATE_CHILD_TIMEOUT_MS");
}

/* ctr_run(): a "runc" (a script on PATH) whose delete hangs in a hook (a
 * child of its own): named by its verb and container, it and its hook
 * killed; one that exits gives its status and output */
static void test_ctr_run(void **state)
{
	(void)state;
	char dir[] = "/tmp/dm-test-child.XXXXXX", path[128], *out = NULL, *err = NULL;
	int st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/runc", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	/* the hook's pid goes to DIR/hook once it runs */
	fprintf(f, "#!/bin/sh\ncase $3 in\ndelete) sleep 1000 & echo $! >%s/hook; wait; exit 0 ;;\n"
		   "*) echo \"$3 $4\"; exit 7 ;;\nesac\n", dir);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	const char *old = getenv("PATH");
	char *saved = strdup(old ? old : "/usr/bin:/bin");
	char *np = NULL;
	assert_true(asprintf(&np, "%s:%s", dir, saved) > 0);
	setenv("PATH", np, 1);

	int r = ctr_run((const char *const[]){ "runc", "--root", "/nonexistent", "state", "ct1", NULL }, NULL, 0,
			CHILD_WAIT_RUNC_MS, &out, &err);
	assert_int_equal(r, 7);
	assert_string_equal(out, "state ct1");
	free(out);
	free(err);

	/* killed at the limit; the check that its hook went with it needs the
	 * script to have started the hook first: a machine too loaded for that
	 * gets the next limit, twice as long (the verdict does not depend on
	 * its speed) */
	char hook[160], limit[16], want[128];
	snprintf(hook, sizeof(hook), "%s/hook", dir);
	pid_t w = -1;
	for (int s = 2; w < 0; s *= 2) {
		assert_true(s <= 32);
		unlink(hook);
		snprintf(limit, sizeof(limit), "%d", s * 1000);
		setenv("DMIGRATE_CHILD_TIMEOUT_MS", limit, 1);
		r = ctr_run((const char *const[]){ "runc", "--root", "/nonexistent", "delete", "ct1", NULL }, NULL, 0,
			    CHILD_WAIT_RUNC_MS, NULL, NULL);
		unsetenv("DMIGRATE_CHILD_TIMEOUT_MS");
		assert_int_equal(r, -ETIMEDOUT);
		snprintf(want, sizeof(want), "runc delete ct1 did not finish in %d s (killed)", s);
		assert_string_equal(dm_last_error(), want);
		if (access(hook, F_OK) < 0) {
			/* the hook never ran (or ran without its pid written): reap it, again */
			while (reap_orphan(&st) > 0)
				;
			continue;
		}
		/* the script's sleep (its "hook") went with it */
		w = reap_orphan(&st);
		assert_true(w > 0);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	}
	unlink(hook);

	setenv("PATH", saved, 1);
	free(saved);
	free(np);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	/* what our children start comes back to us when they go */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_hung_group_killed),
		cmocka_unit_test(test_hung_no_group),
		cmocka_unit_test(test_knob),
		cmocka_unit_test(test_ctr_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
