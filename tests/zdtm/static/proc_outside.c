// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=not in the tree
/*
 * An open /proc file of a process outside the tree (/proc/1/comm: the
 * host's init, as /proc is the host's): nothing can reopen it for the
 * restored tree, so the checkpoint must refuse it, naming it, and leave
 * the process running with the fd still working.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[64];
	int fd;

	test_init(argc, argv);
	fd = open("/proc/1/comm", O_RDONLY);
	if (fd < 0)
		fail_errno("open /proc/1/comm");

	test_ready();
	test_wait_check();

	if (pread(fd, buf, sizeof(buf), 0) <= 0)
		fail_errno("read /proc/1/comm");
	pass();
}
