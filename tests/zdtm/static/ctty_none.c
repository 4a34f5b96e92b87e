// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Members of a session that has a controlling terminal, without it: S
 * calls setsid() and forks A, then makes a pty its controlling terminal
 * and forks B (which inherits it) and C (which gives it up: TIOCNOTTY).
 * A terminal is per process (signal->tty, taken at fork), not per session:
 * after restore A and C still have none (tty_nr 0 in /proc stat, /dev/tty
 * fails with ENXIO), S and B still have it.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static unsigned long tty_nr(void)
{
	char buf[1024], *p;
	int field = 0;

	if (test_read_file("/proc/self/stat", buf, sizeof(buf)) < 0)
		fail_errno("/proc/self/stat");
	p = strrchr(buf, ')');
	if (!p)
		fail("bad /proc/self/stat");
	/* after ") ": state ppid pgrp session tty_nr */
	for (p += 2; *p && field < 4; p++)
		if (*p == ' ')
			field++;
	return strtoul(p, NULL, 10);
}

/* has: whether the calling process must have a controlling terminal */
static void check(const char *who, bool has, const char *when)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	int err = errno;

	if (fd >= 0)
		close(fd);
	if (has && (tty_nr() == 0 || fd < 0))
		fail("%s %s: no controlling terminal (tty_nr %lu, /dev/tty: %s)", who, when, tty_nr(),
		     fd < 0 ? strerror(err) : "opens");
	if (!has && (tty_nr() != 0 || fd >= 0 || err != ENXIO))
		fail("%s %s: has a controlling terminal it never had (tty_nr %lu, /dev/tty: %s)", who,
		     when, tty_nr(), fd < 0 ? strerror(err) : "opens");
}

static pid_t member(int barrier[2], const char *who, bool has, int notty_fd)
{
	pid_t pid = fork();

	if (pid < 0)
		fail_errno("S: fork %s", who);
	if (pid)
		return pid;
	if (notty_fd >= 0 && ioctl(notty_fd, TIOCNOTTY))
		fail_errno("%s: TIOCNOTTY", who);
	check(who, has, "before");
	test_barrier_done(barrier);
	test_wait_check();
	check(who, has, "after restore");
	_exit(0);
}

int main(int argc, char **argv)
{
	int barrier[2], go[2];
	pid_t s;

	test_init(argc, argv);
	test_barrier_init(barrier);
	s = fork();
	if (s < 0)
		fail_errno("fork");
	if (s == 0) {
		pid_t kids[3];
		int master, slave;
		char c;

		signal(SIGHUP, SIG_IGN);
		if (setsid() < 0)
			fail_errno("S: setsid");
		/* A: forked before S has a terminal; it checks once S has one */
		if (pipe(go))
			fail_errno("S: pipe");
		kids[0] = fork();
		if (kids[0] < 0)
			fail_errno("S: fork A");
		if (kids[0] == 0) {
			close(go[1]);
			if (read(go[0], &c, 1) != 1)
				fail("A: no go from S");
			close(go[0]);
			check("A", false, "before");
			test_barrier_done(barrier);
			test_wait_check();
			check("A", false, "after restore");
			_exit(0);
		}
		close(go[0]);
		master = posix_openpt(O_RDWR | O_NOCTTY);
		if (master < 0 || grantpt(master) || unlockpt(master))
			fail_errno("S: posix_openpt");
		slave = open(ptsname(master), O_RDWR | O_NOCTTY);
		if (slave < 0 || ioctl(slave, TIOCSCTTY, 0))
			fail_errno("S: slave, TIOCSCTTY");
		if (write(go[1], "g", 1) != 1)
			fail_errno("S: write go");
		close(go[1]);
		kids[1] = member(barrier, "B", true, -1);
		kids[2] = member(barrier, "C", false, slave);
		check("S", true, "before");
		test_barrier_done(barrier);
		test_wait_check();
		check("S", true, "after restore");
		test_stop_children(kids, 3, "member");
		close(master);
		close(slave);
		_exit(0);
	}
	test_barrier_wait(barrier);
	test_ready();
	test_wait_check();
	test_stop_children(&s, 1, "S");
	pass();
}
