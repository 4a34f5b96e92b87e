// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * O_NONBLOCK: set on a pipe's read end with F_SETFL after opening, on a
 * FIFO opened with it, and absent from the pipe's write end. After
 * restore the flags are the same, and a read of an empty non-blocking
 * end returns EAGAIN at once.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int p[2], fifo_r, fifo_w;
	const char *path;
	char c;

	test_init(argc, argv);
	if (pipe(p))
		fail_errno("pipe");
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	path = test_path("nonblock.fifo");
	if (mkfifo(path, 0600))
		fail_errno("mkfifo");
	fifo_r = open(path, O_RDONLY | O_NONBLOCK);
	fifo_w = open(path, O_WRONLY);
	if (fifo_r < 0 || fifo_w < 0)
		fail_errno("open fifo");

	test_ready();
	test_wait_check();

	if (!(fcntl(p[0], F_GETFL) & O_NONBLOCK))
		fail("pipe read end lost O_NONBLOCK");
	if (fcntl(p[1], F_GETFL) & O_NONBLOCK)
		fail("pipe write end gained O_NONBLOCK");
	if (!(fcntl(fifo_r, F_GETFL) & O_NONBLOCK))
		fail("FIFO read end lost O_NONBLOCK");
	if (fcntl(fifo_w, F_GETFL) & O_NONBLOCK)
		fail("FIFO write end gained O_NONBLOCK");
	if (read(p[0], &c, 1) >= 0 || errno != EAGAIN)
		fail("read of the empty non-blocking pipe: not EAGAIN");
	if (read(fifo_r, &c, 1) >= 0 || errno != EAGAIN)
		fail("read of the empty non-blocking FIFO: not EAGAIN");
	unlink(path);
	pass();
}
