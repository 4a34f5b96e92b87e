// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=holds a LEASE lock
/*
 * A read lease (F_SETLEASE) on a file: the kernel has no way to take one
 * for another process, and a lease given up is a break another process
 * would not see.  The checkpoint refuses it, named, and leaves the process
 * running with its lease (F_GETLEASE).
 */
#include "zdtm.h"

#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *path;
	int fd;

	test_init(argc, argv);
	path = test_path("refuse_lease");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail_errno("open");
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK))
		fail_errno("F_SETLEASE");

	test_ready();
	test_wait_check();

	if (fcntl(fd, F_GETLEASE) != F_RDLCK)
		fail("the lease is gone after the refusal (F_GETLEASE %d)", fcntl(fd, F_GETLEASE));
	pass();
}
