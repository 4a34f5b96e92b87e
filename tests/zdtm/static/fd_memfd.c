// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * memfds:
 *   - "zdtm-data": 2 MiB with data at 0-8 KiB and at 1 MiB (holes
 *     elsewhere), sealed F_SEAL_SHRINK | F_SEAL_GROW, mapped MAP_SHARED
 *     read-write, held by a second description (read-only, its own
 *     offset) and by a child process through the same description and its
 *     own shared mapping, and mapped MAP_PRIVATE with one page copied on
 *     write;
 *   - "zdtm-sealed": sealed F_SEAL_WRITE, mapped read-only (a mapping that
 *     cannot be made writable);
 *   - "zdtm-future": a writable mapping made before F_SEAL_FUTURE_WRITE
 *     (writes through it still go, writes through the fd do not);
 *   - "zdtm-nosealing": made without MFD_ALLOW_SEALING (F_SEAL_SEAL).
 * After restore: names, sizes, seals, offsets, contents and holes are the
 * same; the fds, the mapping and the child's mapping are one object.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SZ (2 << 20)
#define MIB (1 << 20)

static char buf[16384], chk[16384];

static void check_name(int fd, const char *name)
{
	char link[64], target[256], want[256];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		fail_errno("readlink %s", link);
	target[n] = 0;
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	if (strcmp(target, want))
		fail("fd %d is '%s', not '%s'", fd, target, want);
}

static void check_seals(int fd, int want, const char *what)
{
	int s = fcntl(fd, F_GET_SEALS);
	if (s != want)
		fail("%s: seals %#x, were %#x", what, s, want);
}

int main(int argc, char **argv)
{
	int data, data_ro, sealed, future, nosealing, cmd[2], rep[2];
	char *map, *ro_map, *fut_map, *priv;
	struct stat st, st2;
	pid_t child;
	off_t off;

	test_init(argc, argv);
	data = memfd_create("zdtm-data", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	sealed = memfd_create("zdtm-sealed", MFD_ALLOW_SEALING);
	future = memfd_create("zdtm-future", MFD_ALLOW_SEALING);
	nosealing = memfd_create("zdtm-nosealing", 0);
	if (data < 0 || sealed < 0 || future < 0 || nosealing < 0)
		fail_errno("memfd_create");
	if (ftruncate(data, SZ) || ftruncate(sealed, 4096) || ftruncate(future, 4096) ||
	    ftruncate(nosealing, 100))
		fail_errno("ftruncate");
	test_fill(buf, 8192, 71);
	if (pwrite(data, buf, 8192, 0) != 8192)
		fail_errno("pwrite");
	test_fill(buf, 4096, 72);
	if (pwrite(data, buf, 4096, MIB) != 4096 || pwrite(sealed, buf, 4096, 0) != 4096 ||
	    pwrite(nosealing, "abc", 3, 0) != 3)
		fail_errno("pwrite");
	if (fcntl(data, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) ||
	    fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		fail_errno("F_ADD_SEALS");
	map = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0);
	ro_map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, sealed, 0);
	fut_map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, future, 0);
	priv = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE, data, 0);
	if (map == MAP_FAILED || ro_map == MAP_FAILED || fut_map == MAP_FAILED || priv == MAP_FAILED)
		fail_errno("mmap");
	priv[MIB + 100] = 'P'; /* that page is the process's own now */
	if (fcntl(future, F_ADD_SEALS, F_SEAL_FUTURE_WRITE))
		fail_errno("F_SEAL_FUTURE_WRITE");
	{
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", data);
		data_ro = open(p, O_RDONLY);
		if (data_ro < 0)
			fail_errno("reopen the memfd");
	}
	if (lseek(data, 100, SEEK_SET) != 100 || lseek(data_ro, 5000, SEEK_SET) != 5000)
		fail_errno("lseek");

	/* the child: on each byte from cmd, sends back the byte at 1 MiB + 8 of its own mapping */
	if (pipe(cmd) || pipe(rep))
		fail_errno("pipe");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		char *cm = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0);
		char c;
		close(cmd[1]);
		close(rep[0]);
		if (cm == MAP_FAILED)
			fail_errno("child: mmap");
		while (read(cmd[0], &c, 1) == 1) {
			c = cm[MIB + 8];
			if (write(rep[1], &c, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(cmd[0]);
	close(rep[1]);

	test_ready();
	test_wait_check();

	check_name(data, "zdtm-data");
	check_name(data_ro, "zdtm-data");
	check_name(sealed, "zdtm-sealed");
	check_name(future, "zdtm-future");
	check_name(nosealing, "zdtm-nosealing");
	if (fstat(data, &st) || fstat(data_ro, &st2))
		fail_errno("fstat");
	if (st.st_size != SZ || st.st_ino != st2.st_ino)
		fail("data: size %lld, the two descriptions on inodes %lu and %lu", (long long)st.st_size,
		     (unsigned long)st.st_ino, (unsigned long)st2.st_ino);
	if (fstat(nosealing, &st) || st.st_size != 100)
		fail("nosealing: size %lld, was 100", (long long)st.st_size);
	if ((fcntl(data_ro, F_GETFL) & O_ACCMODE) != O_RDONLY)
		fail("the read-only description is not read-only");
	if (lseek(data, 0, SEEK_CUR) != 100 || lseek(data_ro, 0, SEEK_CUR) != 5000)
		fail("offsets %lld and %lld, were 100 and 5000", (long long)lseek(data, 0, SEEK_CUR),
		     (long long)lseek(data_ro, 0, SEEK_CUR));
	check_seals(data, F_SEAL_SHRINK | F_SEAL_GROW, "data");
	check_seals(sealed, F_SEAL_WRITE | F_SEAL_SEAL, "sealed");
	check_seals(future, F_SEAL_FUTURE_WRITE, "future");
	check_seals(nosealing, F_SEAL_SEAL, "nosealing");

	/* contents and holes */
	test_fill(buf, 8192, 71);
	if (pread(data, chk, 8192, 0) != 8192 || memcmp(chk, buf, 8192))
		fail("data: the first 8 KiB differ");
	test_fill(buf, 4096, 72);
	if (pread(data, chk, 4096, MIB) != 4096 || memcmp(chk, buf, 4096) || memcmp(map + MIB, buf, 4096))
		fail("data: the page at 1 MiB differs");
	/* (pread of a hole leaves it a hole; a read through the mapping would fill it) */
	off = lseek(data_ro, 8192, SEEK_DATA);
	if (off != MIB)
		fail("data: after 8 KiB the next data is at %lld, not at 1 MiB (holes filled)",
		     (long long)off);
	memset(buf, 0, 4096);
	for (off_t i = 8192; i < MIB; i += 4096)
		if (pread(data_ro, chk, 4096, i) != 4096 || memcmp(chk, buf, 4096))
			fail("data: the page at %lld is not zeros", (long long)i);
	test_fill(buf, 4096, 72);
	if (pread(sealed, chk, 4096, 0) != 4096 || memcmp(chk, buf, 4096) || memcmp(ro_map, buf, 4096))
		fail("sealed: contents differ");
	if (pread(nosealing, chk, 3, 0) != 3 || memcmp(chk, "abc", 3))
		fail("nosealing: contents differ");

	/* seals act */
	if (ftruncate(data, SZ / 2) == 0 || ftruncate(data, SZ * 2) == 0)
		fail("data: its size could change");
	if (pwrite(sealed, "x", 1, 0) >= 0 || mprotect(ro_map, 4096, PROT_READ | PROT_WRITE) == 0)
		fail("sealed: writable after restore");
	if (pwrite(future, "x", 1, 0) >= 0)
		fail("future: the fd writes after restore");
	fut_map[0] = 'y';
	if (pread(future, chk, 1, 0) != 1 || chk[0] != 'y')
		fail("future: the mapping made before the seal is not the object");
	if (fcntl(nosealing, F_ADD_SEALS, F_SEAL_WRITE) == 0)
		fail("nosealing: sealable after restore");

	/* one object: the fd, our mapping and the child's */
	map[MIB + 8] = 'Q';
	if (pread(data_ro, chk, 1, MIB + 8) != 1 || chk[0] != 'Q')
		fail("a write through the mapping is not seen through the fd");
	if (pwrite(data, "R", 1, MIB + 9) != 1 || map[MIB + 9] != 'R')
		fail("a write through the fd is not seen in the mapping");
	/* the private mapping: its copied page is its own, the others are the memfd's */
	if (priv[MIB + 100] != 'P' || priv[MIB + 8] == 'Q')
		fail("the private mapping lost its copied page");
	test_fill(buf, 8192, 71);
	if (memcmp(priv, buf, 8192))
		fail("the private mapping does not show the memfd's data");
	if (pwrite(data, "S", 1, 4096 + 7) != 1 || priv[4096 + 7] != 'S')
		fail("the private mapping is not a mapping of the memfd (a write to it is not seen)");
	if (write(cmd[1], "?", 1) != 1 || read(rep[0], chk, 1) != 1)
		fail_errno("child");
	if (chk[0] != 'Q')
		fail("the child's mapping is another object (it reads %#x)", (unsigned char)chk[0]);
	close(cmd[1]);
	test_reap_ok(child, "child");
	pass();
}
