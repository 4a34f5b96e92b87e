// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The owner, group and permissions of a pty's slave node (/dev/pts/N):
 * grantpt() makes them the caller's and the devpts defaults; a program may
 * change them (chown to a user, "mesg n" takes group write away).  Two
 * pairs: one whose slave was given to 1234:5678 mode 0600, one with mode
 * 0620 and group 5.  After restore each slave node is as it was.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct want {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

static void check(int master, const struct want *w, const char *when)
{
	int slave = ioctl(master, TIOCGPTPEER, O_RDONLY | O_NOCTTY);
	struct stat st;

	if (slave < 0)
		fail_errno("%s: TIOCGPTPEER", when);
	if (fstat(slave, &st))
		fail_errno("%s: fstat slave", when);
	if (st.st_uid != w->uid || st.st_gid != w->gid || (st.st_mode & 07777) != w->mode)
		fail("%s: slave %u:%u mode %#o, want %u:%u mode %#o", when, (unsigned)st.st_uid,
		     (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), (unsigned)w->uid,
		     (unsigned)w->gid, (unsigned)w->mode);
	close(slave);
}

static int make(const struct want *w)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	int slave;

	if (m < 0 || grantpt(m) || unlockpt(m))
		fail_errno("posix_openpt");
	slave = ioctl(m, TIOCGPTPEER, O_RDONLY | O_NOCTTY);
	if (slave < 0)
		fail_errno("TIOCGPTPEER");
	if (fchown(slave, w->uid, w->gid) || fchmod(slave, w->mode))
		fail_errno("fchown/fchmod slave");
	close(slave);
	return m;
}

int main(int argc, char **argv)
{
	static const struct want a = { 1234, 5678, 0600 }, b = { 0, 5, 0620 };
	int ma, mb;

	test_init(argc, argv);
	ma = make(&a);
	mb = make(&b);
	check(ma, &a, "before");
	check(mb, &b, "before");

	test_ready();
	test_wait_check();

	check(ma, &a, "after");
	check(mb, &b, "after");
	pass();
}
