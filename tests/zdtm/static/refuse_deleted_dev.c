// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=device node .* was deleted
/*
 * A device node (a copy of /dev/zero, 1:5) open while its name is gone:
 * nothing can open it again by path, so the checkpoint must refuse it,
 * named, and leave the process running with the device working.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *path;
	char buf[4] = "xyz";
	int fd;

	test_init(argc, argv);
	path = test_path("refuse_deleted_dev");
	if (mknod(path, S_IFCHR | 0600, makedev(1, 5)))
		fail_errno("mknod");
	fd = open(path, O_RDONLY);
	if (fd < 0 || unlink(path))
		fail_errno("open/unlink");

	test_ready();
	test_wait_check();

	if (read(fd, buf, 3) != 3 || buf[0] || buf[2])
		fail("the deleted /dev/zero node no longer reads zeros");
	pass();
}
