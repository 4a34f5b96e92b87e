// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A shared file mapping: data written through it before the checkpoint is
 * in the mapping and in the file after restore; after restore, writes
 * through the mapping reach the file and writes to the file show in the
 * mapping. A second, read-only shared mapping at an offset sees the same.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL
#define NPAGES 16

int main(int argc, char **argv)
{
	char page[PG], *map, *ro;
	const char *path;
	int fd;

	test_init(argc, argv);
	path = test_path("mem_file_shared.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("open %s", path);
	if (ftruncate(fd, NPAGES * PG))
		fail_errno("ftruncate");
	map = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ro = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 8 * PG);
	if (map == MAP_FAILED || ro == MAP_FAILED)
		fail_errno("mmap");
	for (size_t i = 0; i < NPAGES; i += 2)
		test_fill(map + i * PG, PG, 300 + i);

	test_ready();
	test_wait_check();

	for (size_t i = 0; i < NPAGES; i += 2) {
		if (test_check(map + i * PG, PG, 300 + i) != (size_t)-1)
			fail("page %zu of the mapping differs after restore", i);
		if (pread(fd, page, PG, i * PG) != (ssize_t)PG)
			fail_errno("pread");
		if (test_check(page, PG, 300 + i) != (size_t)-1)
			fail("page %zu of the file differs after restore", i);
	}
	if (test_check(ro, PG, 308) != (size_t)-1)
		fail("the read-only mapping at offset 8 pages differs");
	/* mapping -> file */
	test_fill(map + 3 * PG, PG, 999);
	if (pread(fd, page, PG, 3 * PG) != (ssize_t)PG || test_check(page, PG, 999) != (size_t)-1)
		fail("a write through the mapping after restore did not reach the file");
	/* file -> both mappings */
	test_fill(page, PG, 1234);
	if (pwrite(fd, page, PG, 9 * PG) != (ssize_t)PG)
		fail_errno("pwrite");
	if (test_check(map + 9 * PG, PG, 1234) != (size_t)-1 || test_check(ro + PG, PG, 1234) != (size_t)-1)
		fail("a write to the file after restore does not show in the mappings");
	close(fd);
	unlink(path);
	pass();
}
