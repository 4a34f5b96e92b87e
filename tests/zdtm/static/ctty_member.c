// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A controlling terminal held only by a member of its session: S calls
 * setsid(), makes a pty the session's controlling terminal, forks M (same
 * session) which keeps both ends, then closes every fd of the pty itself
 * (as a daemonising parent does).  After restore the session still has
 * that terminal: M opens /dev/tty and gets its slave, S's /proc stat still
 * names it, and the foreground group is M's.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static dev_t tty_nr(void)
{
	char buf[1024], *p;
	int field = 0;
	unsigned long v = 0;

	if (test_read_file("/proc/self/stat", buf, sizeof(buf)) < 0)
		fail_errno("/proc/self/stat");
	p = strrchr(buf, ')');
	if (!p)
		fail("bad /proc/self/stat");
	/* after ") ": state ppid pgrp session tty_nr */
	for (p += 2; *p && field < 4; p++)
		if (*p == ' ')
			field++;
	v = strtoul(p, NULL, 10);
	return (dev_t)v;
}

int main(int argc, char **argv)
{
	int barrier[2];
	pid_t s;

	test_init(argc, argv);
	test_barrier_init(barrier);
	s = fork();
	if (s < 0)
		fail_errno("fork");
	if (s == 0) {
		struct stat st;
		int master, slave;
		pid_t m;

		/* the controlling process gets SIGHUP when M, the last
		 * holder of the master, exits */
		signal(SIGHUP, SIG_IGN);
		if (setsid() < 0)
			fail_errno("S: setsid");
		master = posix_openpt(O_RDWR | O_NOCTTY);
		if (master < 0 || grantpt(master) || unlockpt(master))
			fail_errno("S: posix_openpt");
		slave = open(ptsname(master), O_RDWR | O_NOCTTY);
		if (slave < 0 || ioctl(slave, TIOCSCTTY, 0))
			fail_errno("S: slave, TIOCSCTTY");
		if (fstat(slave, &st))
			fail_errno("S: fstat");
		m = fork();
		if (m < 0)
			fail_errno("S: fork");
		if (m == 0) {
			int fd;

			if (setpgid(0, 0) && errno != EACCES)
				fail_errno("M: setpgid");
			test_barrier_done(barrier);
			test_wait_check();
			fd = open("/dev/tty", O_RDWR | O_NOCTTY);
			if (fd < 0)
				fail_errno("M: open /dev/tty after restore");
			/* the pty may come back with another index (on another
			 * host): compare with the slave as it is now */
			unsigned int dev = 0;
			struct stat now;
			if (fstat(slave, &now))
				fail_errno("M: fstat slave after restore");
			if (ioctl(fd, TIOCGDEV, &dev) || dev != now.st_rdev)
				fail("M: /dev/tty is %u:%u, its slave %u:%u", major(dev), minor(dev),
				     major(now.st_rdev), minor(now.st_rdev));
			if (tcgetpgrp(slave) != getpid())
				fail("M: the foreground group is %d, not M's %d", tcgetpgrp(slave), getpid());
			_exit(0);
		}
		/* M's group becomes the foreground (S, in the foreground
		 * group, may set it) before S lets go of the terminal */
		if ((setpgid(m, m) && errno != EACCES) || tcsetpgrp(slave, m))
			fail_errno("S: setpgid(M), tcsetpgrp");
		close(master);
		close(slave);
		test_barrier_done(barrier);
		test_wait_check();
		/* its session's terminal, as /proc says (the index may have
		 * changed: compared with what /dev/tty is now) */
		{
			unsigned int dev = 0;
			int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
			if (fd < 0)
				fail_errno("S: open /dev/tty after restore");
			if (ioctl(fd, TIOCGDEV, &dev))
				fail_errno("S: TIOCGDEV");
			close(fd);
			if (tty_nr() == 0 || tty_nr() != (dev_t)dev)
				fail("S: controlling terminal %lu in /proc, /dev/tty is %u", (unsigned long)tty_nr(),
				     dev);
		}
		test_stop_children(&m, 1, "M");
		_exit(0);
	}
	test_barrier_wait(barrier);
	test_ready();
	test_wait_check();
	test_stop_children(&s, 1, "S");
	pass();
}
