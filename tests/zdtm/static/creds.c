// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Credentials: supplementary groups {100, 200, 300, 4000}, real/effective/
 * saved gids 1001/1002/1003 and uids 2001/2002/2003 (so fsuid/fsgid follow
 * the effective ids), which also cleared every capability and the dumpable
 * flag. After restore all of it is the same, in the syscalls and in
 * /proc/self/status, and a new file gets the right owner.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fields[] = { "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };

int main(int argc, char **argv)
{
	gid_t groups[] = { 100, 200, 300, 4000 }, got[64];
	uid_t r, e, s;
	gid_t gr, ge, gs;
	char before[ARRAY_SIZE(fields)][128], now[128];
	int dumpable, n;
	struct stat st;

	test_init(argc, argv);
	if (setgroups(ARRAY_SIZE(groups), groups) || setresgid(1001, 1002, 1003) || setresuid(2001, 2002, 2003))
		fail_errno("set ids");
	dumpable = prctl(PR_GET_DUMPABLE);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (test_status_field("/proc/self/status", fields[i], before[i], sizeof(before[i])))
			fail("no %s in /proc/self/status", fields[i]);

	test_ready();
	test_wait_check();

	if (getresuid(&r, &e, &s) || r != 2001 || e != 2002 || s != 2003)
		fail("uids %u/%u/%u, want 2001/2002/2003", r, e, s);
	if (getresgid(&gr, &ge, &gs) || gr != 1001 || ge != 1002 || gs != 1003)
		fail("gids %u/%u/%u, want 1001/1002/1003", gr, ge, gs);
	if ((uid_t)setfsuid((uid_t)-1) != 2002 || (gid_t)setfsgid((gid_t)-1) != 1002)
		fail("fsuid/fsgid %d/%d, want 2002/1002", setfsuid((uid_t)-1), setfsgid((gid_t)-1));
	n = getgroups(64, got);
	if (n != (int)ARRAY_SIZE(groups))
		fail("%d supplementary groups, want %zu", n, ARRAY_SIZE(groups));
	for (int i = 0; i < n; i++)
		if (got[i] != groups[i])
			fail("supplementary group %d is %u, want %u", i, got[i], groups[i]);
	if (prctl(PR_GET_DUMPABLE) != dumpable)
		fail("dumpable %d, was %d", prctl(PR_GET_DUMPABLE), dumpable);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		if (test_status_field("/proc/self/status", fields[i], now, sizeof(now)))
			fail("no %s in /proc/self/status", fields[i]);
		if (strcmp(now, before[i]))
			fail("%s: '%s', was '%s'", fields[i], now, before[i]);
	}
	const char *path = test_path("creds.new");
	int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);

	if (fd < 0 || fstat(fd, &st))
		fail_errno("create %s", path);
	if (st.st_uid != 2002 || st.st_gid != 1002)
		fail("new file owned by %u:%u, want 2002:1002", st.st_uid, st.st_gid);
	close(fd);
	unlink(path);
	pass();
}
