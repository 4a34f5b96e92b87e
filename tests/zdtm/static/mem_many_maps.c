// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * About 20 000 file mappings (one page of one of two files, every other
 * page of a large area, so that none merge): more mappings than the fd
 * limit (20 000 here), though they need only two files.  After restore
 * every mapping is there with its own contents (the runner compares maps).
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL
#define NMAPS 20000

int main(int argc, char **argv)
{
	static char page[PG];
	char *base;
	int fd[2];

	test_init(argc, argv);
	for (int f = 0; f < 2; f++) {
		fd[f] = open(test_path(f ? "mem_many_maps.b" : "mem_many_maps.a"),
			     O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd[f] < 0)
			fail_errno("open");
		for (int k = 0; k < 2; k++) {
			memset(page, 'a' + f * 2 + k, PG);
			if (pwrite(fd[f], page, PG, k * PG) != PG)
				fail_errno("pwrite");
		}
	}
	base = mmap(NULL, 2 * NMAPS * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED || munmap(base, 2 * NMAPS * PG))
		fail_errno("reserve");
	for (int i = 0; i < NMAPS; i++)
		if (mmap(base + 2 * i * PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd[i & 1],
			 (i >> 1 & 1) * PG) == MAP_FAILED)
			fail_errno("mmap %d", i);
	close(fd[0]);
	close(fd[1]);

	test_ready();
	test_wait_check();

	for (int i = 0; i < NMAPS; i++) {
		char want = (char)('a' + (i & 1) * 2 + (i >> 1 & 1));
		const char *p = base + 2 * i * PG;
		if (p[0] != want || p[PG - 1] != want)
			fail("mapping %d reads '%c', want '%c'", i, p[0], want);
	}
	pass();
}
