// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=FIFO .* was deleted
/*
 * A FIFO open while its name is gone: nothing can open it again, so the
 * checkpoint must refuse it, named, and leave the process running with
 * the FIFO working (bytes written come back out).
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *path;
	char buf[4];
	int fd;

	test_init(argc, argv);
	path = test_path("refuse_deleted_fifo");
	if (mkfifo(path, 0600))
		fail_errno("mkfifo");
	fd = open(path, O_RDWR);
	if (fd < 0 || unlink(path))
		fail_errno("open/unlink");

	test_ready();
	test_wait_check();

	if (write(fd, "abc", 3) != 3 || read(fd, buf, 3) != 3 || memcmp(buf, "abc", 3))
		fail("the FIFO no longer works");
	pass();
}
