// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Regular files: one fd read-write at an offset, one read-only at another,
 * one write-only O_APPEND, one with O_NOATIME|O_SYNC. After restore each
 * fd has its access mode, status flags and offset, and behaves: reads
 * continue from the offset, O_APPEND writes land at the end.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE 65536

struct f {
	int fd, flags;
	off_t off;
	const char *name;
};

int main(int argc, char **argv)
{
	static char buf[SIZE], chk[SIZE];
	const char *path;
	struct f fs[4];
	struct stat st0, st;
	int fd;

	test_init(argc, argv);
	path = test_path("file_reg.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (fd < 0)
		fail_errno("open %s", path);
	test_fill(buf, SIZE, 1100);
	if (test_write_all(fd, buf, SIZE))
		fail_errno("write");
	fs[0] = (struct f){ fd, 0, 12345, "rw" };
	fs[1] = (struct f){ open(path, O_RDONLY), 0, 4096 * 3 + 7, "ro" };
	fs[2] = (struct f){ open(path, O_WRONLY | O_APPEND), 0, 0, "append" };
	fs[3] = (struct f){ open(path, O_RDONLY | O_NOATIME | O_SYNC), 0, SIZE, "noatime|sync" };
	for (int i = 0; i < 4; i++) {
		if (fs[i].fd < 0)
			fail_errno("open %s fd", fs[i].name);
		if (lseek(fs[i].fd, fs[i].off, SEEK_SET) != fs[i].off)
			fail_errno("lseek");
		fs[i].flags = fcntl(fs[i].fd, F_GETFL);
	}
	fstat(fd, &st0);

	test_ready();
	test_wait_check();

	for (int i = 0; i < 4; i++) {
		int fl = fcntl(fs[i].fd, F_GETFL);
		off_t off = lseek(fs[i].fd, 0, SEEK_CUR);

		if (fl < 0)
			fail_errno("fd %d (%s) is not open after restore", fs[i].fd, fs[i].name);
		if (fl != fs[i].flags)
			fail("fd %d (%s): flags %#o, were %#o", fs[i].fd, fs[i].name, fl, fs[i].flags);
		if (off != fs[i].off)
			fail("fd %d (%s): offset %lld, was %lld", fs[i].fd, fs[i].name, (long long)off,
			     (long long)fs[i].off);
	}
	if (fstat(fd, &st) || st.st_ino != st0.st_ino || st.st_dev != st0.st_dev ||
	    (st.st_mode & 07777) != 0640 || st.st_size != SIZE)
		fail("fstat: not the same file (ino %lu size %lld mode %o)", (unsigned long)st.st_ino,
		     (long long)st.st_size, st.st_mode & 07777);
	/* Reads go on from the offset. */
	if (read(fs[1].fd, chk, 100) != 100 || memcmp(chk, buf + fs[1].off, 100))
		fail("read from the ro fd does not continue at its offset");
	/* The read-only fd cannot write, the append fd appends. */
	if (write(fs[1].fd, "x", 1) >= 0)
		fail("write through the O_RDONLY fd succeeded");
	if (write(fs[2].fd, "tail", 4) != 4)
		fail_errno("append write");
	if (pread(fd, chk, 4, SIZE) != 4 || memcmp(chk, "tail", 4))
		fail("O_APPEND write did not land at the end");
	/* The rw fd writes at its offset. */
	if (write(fd, "mid", 3) != 3 || pread(fd, chk, 3, 12345) != 3 || memcmp(chk, "mid", 3))
		fail("write through the rw fd did not land at its offset");
	unlink(path);
	pass();
}
