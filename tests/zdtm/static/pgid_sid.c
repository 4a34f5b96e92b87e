// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Sessions and process groups. The root leads session 1 (the launcher
 * made it). Below it:
 *
 *   root          sid 1   pgid 1
 *   ├─ A          sid 1   pgid A     setpgid(0, 0)
 *   ├─ C          sid 1   pgid A     joined A's group
 *   └─ B          sid B   pgid B     setsid()
 *      ├─ B1      sid B   pgid B1    setpgid(0, 0)
 *      └─ B2      sid B   pgid B     inherited
 *
 * Every process checks its pid, sid and pgid after restore; the root also
 * checks each child's pgid and sid from outside.
 */
#include "zdtm.h"

#include <errno.h>
#include <unistd.h>

struct ids {
	pid_t pid, sid, pgid;
};

static struct ids me;
static pid_t kids[3];
static int nr_kids;

static void record(void)
{
	me.pid = getpid();
	me.sid = getsid(0);
	me.pgid = getpgrp();
}

static void check(const char *who)
{
	if (getpid() != me.pid)
		fail("%s: pid %d, was %d", who, getpid(), me.pid);
	if (getsid(0) != me.sid)
		fail("%s (pid %d): sid %d, was %d", who, me.pid, getsid(0), me.sid);
	if (getpgrp() != me.pgid)
		fail("%s (pid %d): pgid %d, was %d", who, me.pid, getpgrp(), me.pgid);
}

static __attribute__((noreturn)) void leaf(const char *who, int barrier[2])
{
	record();
	test_barrier_done(barrier);
	test_wait_check();
	check(who);
	_exit(0);
}

int main(int argc, char **argv)
{
	int barrier[2];
	pid_t a, b, c;

	test_init(argc, argv);
	record();
	if (me.sid != me.pid || me.pgid != me.pid)
		fail("root is not a session leader (pid %d sid %d pgid %d): start it with zdtm_launch",
		     me.pid, me.sid, me.pgid);
	test_barrier_init(barrier);

	a = fork();
	if (a < 0)
		fail_errno("fork");
	if (a == 0) {
		if (setpgid(0, 0))
			fail_errno("A: setpgid(0, 0)");
		leaf("A", barrier);
	}
	if (setpgid(a, a) && errno != EACCES)	/* both sides, as a shell does */
		fail_errno("setpgid(A)");

	c = fork();
	if (c < 0)
		fail_errno("fork");
	if (c == 0) {
		if (setpgid(0, a))
			fail_errno("C: setpgid(0, %d)", a);
		leaf("C", barrier);
	}

	b = fork();
	if (b < 0)
		fail_errno("fork");
	if (b == 0) {
		pid_t b1, b2;

		if (setsid() < 0)
			fail_errno("B: setsid");
		b1 = fork();
		if (b1 < 0)
			fail_errno("B: fork");
		if (b1 == 0) {
			if (setpgid(0, 0))
				fail_errno("B1: setpgid(0, 0)");
			leaf("B1", barrier);
		}
		b2 = fork();
		if (b2 < 0)
			fail_errno("B: fork");
		if (b2 == 0)
			leaf("B2", barrier);
		record();
		test_barrier_done(barrier);
		test_wait_check();
		check("B");
		if (getpgid(b2) != me.pid)
			fail("B2 pgid %d, want %d", getpgid(b2), me.pid);
		pid_t bk[2] = { b1, b2 };

		test_stop_children(bk, 2, "B's child");
		_exit(0);
	}
	kids[nr_kids++] = a;
	kids[nr_kids++] = b;
	kids[nr_kids++] = c;
	test_barrier_wait(barrier);

	/* C joined A's group before it signalled readiness. */
	if (getpgid(c) != a)
		fail("before: C pgid %d, want %d", getpgid(c), a);

	test_ready();
	test_wait_check();

	check("root");
	if (getpgid(a) != a || getsid(a) != me.pid)
		fail("A: pgid %d sid %d, want %d %d", getpgid(a), getsid(a), a, me.pid);
	if (getpgid(c) != a || getsid(c) != me.pid)
		fail("C: pgid %d sid %d, want %d %d", getpgid(c), getsid(c), a, me.pid);
	if (getpgid(b) != b || getsid(b) != b)
		fail("B: pgid %d sid %d, want %d %d", getpgid(b), getsid(b), b, b);
	test_stop_children(kids, nr_kids, "child");
	pass();
}
