// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Directory fds: one half read with getdents64 before the checkpoint,
 * one not read at all. After restore the first continues where it was
 * (the entries seen before and after make the whole directory, each
 * once), the second lists everything, and openat() relative to a
 * directory fd works.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NFILES 300

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int seen[NFILES + 2];

/* One getdents64 call; marks entries; returns how many, 0 at the end. */
static int read_some(int fd, size_t bufsize)
{
	char buf[32768];
	long n = syscall(SYS_getdents64, fd, buf, bufsize < sizeof(buf) ? bufsize : sizeof(buf));
	int count = 0;

	if (n < 0)
		fail_errno("getdents64");
	for (long off = 0; off < n;) {
		struct linux_dirent64 *d = (void *)(buf + off);

		if (!strcmp(d->d_name, "."))
			seen[NFILES]++;
		else if (!strcmp(d->d_name, ".."))
			seen[NFILES + 1]++;
		else if (!strncmp(d->d_name, "f", 1) && atoi(d->d_name + 1) < NFILES)
			seen[atoi(d->d_name + 1)]++;
		else
			fail("unexpected entry '%s'", d->d_name);
		off += d->d_reclen;
		count++;
	}
	return count;
}

static void check_seen(const char *what)
{
	for (int i = 0; i < NFILES + 2; i++)
		if (seen[i] != 1)
			fail("%s: entry %d seen %d times", what, i, seen[i]);
}

int main(int argc, char **argv)
{
	char name[64];
	const char *dir;
	int half, whole, before = 0, fd;
	struct stat st;

	test_init(argc, argv);
	dir = test_path("dir_fd.d");
	if (mkdir(dir, 0755))
		fail_errno("mkdir %s", dir);
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "%s/f%d", dir, i);
		fd = open(name, O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			fail_errno("create %s", name);
		close(fd);
	}
	half = open(dir, O_RDONLY | O_DIRECTORY);
	whole = open(dir, O_RDONLY | O_DIRECTORY);
	if (half < 0 || whole < 0)
		fail_errno("open dir");
	while (before < NFILES / 2) {
		int n = read_some(half, 1024);

		if (!n)
			fail("directory ended early");
		before += n;
	}

	test_ready();
	test_wait_check();

	while (read_some(half, 1024))
		;
	check_seen("the half-read fd");
	memset(seen, 0, sizeof(seen));
	while (read_some(whole, 32768))
		;
	check_seen("the unread fd");
	fd = openat(whole, "f17", O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode))
		fail_errno("openat(dirfd, f17)");
	close(fd);
	if (fchdir(half))
		fail_errno("fchdir");
	if (access("f299", F_OK))
		fail("fchdir to the directory fd does not land in it");
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		unlink(name);
	}
	rmdir(dir);
	pass();
}
