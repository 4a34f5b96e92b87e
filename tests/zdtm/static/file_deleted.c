// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A file deleted while open: its contents, offset and "(deleted)" link
 * name are kept after restore, it has no name on disk, and a second fd to
 * the same deleted file (opened before the unlink) is still the same file.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE (3 * 4096 + 123)

int main(int argc, char **argv)
{
	static char buf[SIZE], chk[SIZE];
	char proc[64], link[4096], want[4096];
	const char *path;
	struct stat st;
	int fd, fd2;
	ssize_t n;

	test_init(argc, argv);
	path = test_path("file_deleted.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fd2 = open(path, O_RDONLY);
	if (fd < 0 || fd2 < 0)
		fail_errno("open %s", path);
	test_fill(buf, SIZE - 3, 1200);
	if (test_write_all(fd, buf, SIZE))
		fail_errno("write");
	if (unlink(path))
		fail_errno("unlink");
	lseek(fd, 777, SEEK_SET);
	snprintf(want, sizeof(want), "%s (deleted)", path);

	test_ready();
	test_wait_check();

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0)
		fail_errno("readlink fd %d", fd);
	link[n] = '\0';
	if (strcmp(link, want))
		fail("fd %d links to '%s', want '%s'", fd, link, want);
	if (access(path, F_OK) == 0)
		fail("the deleted file has a name again: %s", path);
	if (fstat(fd, &st) || st.st_nlink != 0 || st.st_size != SIZE)
		fail("fstat: nlink %lu size %lld, want 0 and %d", (unsigned long)st.st_nlink,
		     (long long)st.st_size, SIZE);
	if (lseek(fd, 0, SEEK_CUR) != 777)
		fail("offset %lld, was 777", (long long)lseek(fd, 0, SEEK_CUR));
	if (pread(fd, chk, SIZE, 0) != SIZE || memcmp(chk, buf, SIZE))
		fail("contents of the deleted file differ after restore");
	if (pwrite(fd, "new", 3, 10) != 3 || pread(fd2, chk, 3, 10) != 3 || memcmp(chk, "new", 3))
		fail("the two fds are no longer the same deleted file");
	pass();
}
