// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A private file mapping, some pages COWed (written through the mapping).
 * After restore: COWed pages keep the private data, the others still show
 * the file (and follow a change of the file made after restore), and the
 * file itself never saw the private writes.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL
#define NPAGES 32

static int cowed(size_t i)
{
	return i % 4 == 1;
}

int main(int argc, char **argv)
{
	const char *path;
	char *buf = malloc(NPAGES * PG), *map;
	int fd;

	test_init(argc, argv);
	path = test_path("mem_file_private.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !buf)
		fail_errno("open %s", path);
	test_fill(buf, NPAGES * PG, 100);
	if (test_write_all(fd, buf, NPAGES * PG))
		fail_errno("write");
	map = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		fail_errno("mmap");
	close(fd);	/* the mapping alone keeps the file */
	for (size_t i = 0; i < NPAGES; i++) {
		if (cowed(i))
			test_fill(map + i * PG, PG, 200 + i);
		else if (i % 2 == 0)
			(void)*(volatile char *)(map + i * PG);	/* read-faulted, not COWed */
	}

	test_ready();
	test_wait_check();

	for (size_t i = 0; i < NPAGES; i++) {
		size_t bad = cowed(i) ? test_check(map + i * PG, PG, 200 + i)
				      : (size_t)(memcmp(map + i * PG, buf + i * PG, PG) ? 0 : -1);

		if (bad != (size_t)-1)
			fail("page %zu (%s) differs after restore at %zu", i, cowed(i) ? "COWed" : "file", bad);
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail_errno("reopen %s", path);
	char *file = malloc(NPAGES * PG);

	if (!file || pread(fd, file, NPAGES * PG, 0) != (ssize_t)(NPAGES * PG))
		fail_errno("pread");
	if (memcmp(file, buf, NPAGES * PG))
		fail("the file changed: private writes reached it");
	/* Not-COWed pages still follow the file. */
	memset(file, 0x3c, PG);
	if (pwrite(fd, file, PG, 2 * PG) != (ssize_t)PG)
		fail_errno("pwrite");
	if (memcmp(map + 2 * PG, file, PG))
		fail("page 2 (not COWed) does not follow the file after restore");
	/* A COWed page does not. */
	if (pwrite(fd, file, PG, 1 * PG) != (ssize_t)PG)
		fail_errno("pwrite");
	if (test_check(map + 1 * PG, PG, 201) != (size_t)-1)
		fail("page 1 (COWed) followed a write to the file");
	close(fd);
	unlink(path);
	pass();
}
