// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A deleted file open write-only (its only fd cannot read it), sparse:
 * data at 0, a hole, data at 1 MiB, a hole up to its 3 MiB size; another
 * owner, group and mode than its creator's, an mtime in the past.  After
 * restore: the same fd flags, contents, size, owner, group, mode and mtime,
 * and SEEK_DATA / SEEK_HOLE find the same layout (the holes were not
 * written out as zeros).
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1 << 20)
#define SIZE (3 * MIB)

static char pat1[8192], pat2[4096];

/* "data a-b, data c-d, ..." as SEEK_DATA / SEEK_HOLE see it */
static void layout(int fd, char *out, size_t size)
{
	size_t used = 0;
	off_t off = 0;

	out[0] = 0;
	for (;;) {
		off_t d = lseek(fd, off, SEEK_DATA), h;
		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			fail_errno("SEEK_HOLE");
		used += snprintf(out + used, size - used, "data %lld-%lld, ", (long long)d, (long long)h);
		if (used >= size)
			fail("layout too long");
		off = h;
	}
}

static int reader(int fd)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	int r = open(p, O_RDONLY);
	if (r < 0)
		fail_errno("reopen %s", p);
	return r;
}

int main(int argc, char **argv)
{
	static char before[1024], after[1024], chk[8192];
	const struct timespec mt[2] = { { .tv_nsec = UTIME_OMIT }, { 1234567890, 123456789 } };
	const char *path;
	struct stat st;
	int fd, r;

	test_init(argc, argv);
	path = test_path("file_deleted_sparse.dat");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail_errno("open %s", path);
	test_fill(pat1, sizeof(pat1), 77);
	test_fill(pat2, sizeof(pat2), 78);
	if (pwrite(fd, pat1, sizeof(pat1), 0) != sizeof(pat1) ||
	    pwrite(fd, pat2, sizeof(pat2), MIB) != sizeof(pat2) || ftruncate(fd, SIZE))
		fail_errno("write");
	if (fchown(fd, 4321, 8765) || fchmod(fd, 0640) || futimens(fd, mt))
		fail_errno("fchown/fchmod/futimens");
	if (unlink(path))
		fail_errno("unlink");
	r = reader(fd);
	layout(r, before, sizeof(before));
	close(r);
	if (!strstr(before, "data 0-"))
		fail("no data at 0 before the checkpoint: %s", before);
	lseek(fd, 4242, SEEK_SET);

	test_ready();
	test_wait_check();

	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_WRONLY)
		fail("fd is no longer write-only");
	if (lseek(fd, 0, SEEK_CUR) != 4242)
		fail("offset %lld, was 4242", (long long)lseek(fd, 0, SEEK_CUR));
	if (fstat(fd, &st))
		fail_errno("fstat");
	if (st.st_nlink != 0 || st.st_size != SIZE)
		fail("nlink %lu size %lld, want 0 and %d", (unsigned long)st.st_nlink,
		     (long long)st.st_size, SIZE);
	if (st.st_uid != 4321 || st.st_gid != 8765 || (st.st_mode & 07777) != 0640)
		fail("owner %u:%u mode %o, want 4321:8765 0640", st.st_uid, st.st_gid,
		     st.st_mode & 07777);
	if (st.st_mtim.tv_sec != mt[1].tv_sec || st.st_mtim.tv_nsec != mt[1].tv_nsec)
		fail("mtime %lld.%09ld, want %lld.%09ld", (long long)st.st_mtim.tv_sec,
		     st.st_mtim.tv_nsec, (long long)mt[1].tv_sec, mt[1].tv_nsec);
	r = reader(fd);
	layout(r, after, sizeof(after));
	if (strcmp(before, after))
		fail("layout was '%s', now '%s'", before, after);
	if (pread(r, chk, sizeof(pat1), 0) != sizeof(pat1) || memcmp(chk, pat1, sizeof(pat1)))
		fail("data at 0 differs");
	if (pread(r, chk, sizeof(pat2), MIB) != sizeof(pat2) || memcmp(chk, pat2, sizeof(pat2)))
		fail("data at 1 MiB differs");
	if (pread(r, chk, 100, MIB - 100) != 100 || chk[0] || memcmp(chk, chk + 1, 99))
		fail("the hole before 1 MiB is not zeros");
	pass();
}
