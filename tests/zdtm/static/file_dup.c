// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * dup'ed fds share one open file (one offset, one set of status flags):
 * dup(), dup2() to a chosen number, fcntl(F_DUPFD_CLOEXEC). A separate
 * open() of the same file has its own offset. After restore reading
 * through one dup moves the offset of all, and O_NONBLOCK set through one
 * shows through the others; the separate fd is untouched.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define SIZE 8192

int main(int argc, char **argv)
{
	static char buf[SIZE], chk[64];
	int fd, d1, d2, d3, other;
	const char *path;

	test_init(argc, argv);
	path = test_path("file_dup.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail_errno("open");
	test_fill(buf, SIZE, 1300);
	test_write_all(fd, buf, SIZE);
	lseek(fd, 100, SEEK_SET);
	d1 = dup(fd);
	d2 = dup2(fd, 77);
	d3 = fcntl(fd, F_DUPFD_CLOEXEC, 200);
	other = open(path, O_RDONLY);
	if (d1 < 0 || d2 != 77 || d3 < 200 || other < 0)
		fail_errno("dup");
	lseek(other, 50, SEEK_SET);

	test_ready();
	test_wait_check();

	int fds[4] = { fd, d1, d2, d3 };

	for (int i = 0; i < 4; i++)
		if (lseek(fds[i], 0, SEEK_CUR) != 100)
			fail("fd %d: offset %lld, want 100", fds[i], (long long)lseek(fds[i], 0, SEEK_CUR));
	if ((fcntl(d3, F_GETFD) & FD_CLOEXEC) == 0 || (fcntl(d1, F_GETFD) & FD_CLOEXEC))
		fail("FD_CLOEXEC is per fd: d3 must have it, d1 not");
	if (read(d2, chk, 10) != 10 || memcmp(chk, buf + 100, 10))
		fail("read through fd 77 is wrong");
	for (int i = 0; i < 4; i++)
		if (lseek(fds[i], 0, SEEK_CUR) != 110)
			fail("fd %d does not share the offset after restore (%lld, want 110)", fds[i],
			     (long long)lseek(fds[i], 0, SEEK_CUR));
	if (lseek(other, 0, SEEK_CUR) != 50)
		fail("the separately opened fd moved: offset %lld, want 50",
		     (long long)lseek(other, 0, SEEK_CUR));
	fcntl(d1, F_SETFL, fcntl(d1, F_GETFL) | O_NONBLOCK);
	if (!(fcntl(d3, F_GETFL) & O_NONBLOCK) || (fcntl(other, F_GETFL) & O_NONBLOCK))
		fail("status flags are not shared by the dups only");
	unlink(path);
	pass();
}
