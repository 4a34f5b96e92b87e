// SPDX-License-Identifier: MIT
// zdtm: flags=distinct-fs
/*
 * A FIFO (named pipe) with data in flight: a read end and a write end
 * opened by path, bytes queued. After restore both fds still name the
 * FIFO, the bytes come out in order, and new bytes pass.
 * distinct-fs: a migration between test hosts that share one file system
 * shares the FIFO too (the frozen source still holds the bytes in flight
 * when the restored copy puts them back): not a meaningful test there.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEN 5000

int main(int argc, char **argv)
{
	static char buf[LEN + 8], chk[LEN];
	struct stat st0, st;
	const char *path;
	int rfd, wfd;

	test_init(argc, argv);
	path = test_path("fifo");
	if (mkfifo(path, 0600))
		fail_errno("mkfifo %s", path);
	rfd = open(path, O_RDONLY | O_NONBLOCK);
	wfd = open(path, O_WRONLY);
	if (rfd < 0 || wfd < 0)
		fail_errno("open fifo");
	fcntl(rfd, F_SETFL, 0);
	test_fill(buf, LEN + 8, 1600);
	test_write_all(wfd, buf, LEN);
	fstat(rfd, &st0);

	test_ready();
	test_wait_check();

	if (fstat(rfd, &st) || !S_ISFIFO(st.st_mode) || st.st_ino != st0.st_ino)
		fail("the read end is not the same FIFO after restore");
	if (fstat(wfd, &st) || st.st_ino != st0.st_ino)
		fail("the write end is not the same FIFO after restore");
	if (test_read_all(rfd, chk, LEN) || memcmp(chk, buf, LEN))
		fail("bytes in flight differ after restore");
	if (write(wfd, "abc", 3) != 3 || read(rfd, chk, 3) != 3 || memcmp(chk, "abc", 3))
		fail("the FIFO's ends are not connected after restore");
	unlink(path);
	pass();
}
