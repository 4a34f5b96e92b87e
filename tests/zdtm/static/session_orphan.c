// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Sessions and groups whose leaders are gone (daemons made by a double
 * fork).  The root is the init of its PID namespace:
 *
 *   root (1)
 *   ├─ A   setsid(), forks D1 and D2, then exits (reaped by the root)
 *   ├─ D1  sid A, pgid A          (reparented to the root)
 *   └─ D2  sid A, pgid D2         setpgid(0, 0), then forks E, which
 *      (E  sid A, pgid D2)        stays in D2's group; D2 ... lives
 *
 * After restore every process has its pid, session and group again,
 * although no process leads session A any more.
 */
#include "zdtm.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SUBREAPER
#define SUBREAPER 0
#endif

struct ids {
	pid_t pid, sid, pgid;
};

static void check(const char *who, const struct ids *w)
{
	if (getpid() != w->pid || getsid(0) != w->sid || getpgrp() != w->pgid)
		fail("%s: pid %d sid %d pgid %d, want %d %d %d", who, getpid(), getsid(0), getpgrp(),
		     w->pid, w->sid, w->pgid);
}

static __attribute__((noreturn)) void leaf(const char *who, int barrier[2])
{
	struct ids me = { getpid(), getsid(0), getpgrp() };

	test_barrier_done(barrier);
	test_wait_check();
	check(who, &me);
	_exit(0);
}

int main(int argc, char **argv)
{
	int barrier[2], st;
	pid_t a;
	int n = 0;

	test_init(argc, argv);
	if (SUBREAPER && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		fail_errno("PR_SET_CHILD_SUBREAPER");
	test_barrier_init(barrier);
	a = fork();
	if (a < 0)
		fail_errno("fork");
	if (a == 0) {
		pid_t d1, d2;

		if (setsid() < 0)
			fail_errno("A: setsid");
		d1 = fork();
		if (d1 < 0)
			fail_errno("A: fork");
		if (d1 == 0)
			leaf("D1", barrier);
		d2 = fork();
		if (d2 < 0)
			fail_errno("A: fork");
		if (d2 == 0) {
			pid_t e;

			if (setpgid(0, 0))
				fail_errno("D2: setpgid");
			e = fork();
			if (e < 0)
				fail_errno("D2: fork");
			if (e == 0)
				leaf("E", barrier);
			struct ids me = { getpid(), getsid(0), getpgrp() };
			test_barrier_done(barrier);
			test_wait_check();
			check("D2", &me);
			test_stop_children(&e, 1, "E");
			_exit(0);
		}
		test_barrier_done(barrier);
		_exit(0); /* the leader goes */
	}
	test_barrier_wait(barrier);	/* A, D1, D2 and E are set up */
	if (test_waitpid(a, &st, 0) != a || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("A did not exit cleanly (%#x)", st);
	test_ready();
	test_wait_check();
	/* the orphans D1, D2 are our children now */
	if (SUBREAPER) {
		pid_t k[8];
		int m = test_proc_children(k, 8);
		if (m != 2)
			fail("%d children after restore, want D1 and D2", m);
		for (int i = 0; i < m; i++)
			kill(k[i], SIGTERM);
	} else if (kill(-1, SIGTERM)) {	/* every process of our namespace */
		fail_errno("kill(-1, SIGTERM)");
	}
	for (;;) {
		pid_t w = test_waitpid(-1, &st, 0);
		if (w < 0 && errno == ECHILD)
			break;
		if (w < 0)
			fail_errno("waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fail("orphan %d ended badly (%#x)", w, st);
		n++;
	}
	if (n != 2)
		fail("%d orphans ended, want D1 and D2", n);
	pass();
}
