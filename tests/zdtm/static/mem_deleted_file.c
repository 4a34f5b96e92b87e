// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Mappings of a file deleted while mapped (no fd left open): two shared
 * mappings and a private one of the same unlinked file. After restore the
 * contents are there, /proc/self/maps still says "(deleted)", and the two
 * shared mappings are still one file (a write through one shows in the
 * other), while the private one keeps its COWed page.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL
#define NPAGES 8

static int deleted_in_maps(const char *path, void *addr)
{
	char text[65536], want[256];
	char *line;

	if (test_read_file("/proc/self/maps", text, sizeof(text)) < 0)
		fail_errno("read maps");
	snprintf(want, sizeof(want), "%s (deleted)", path);
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long start;

		if (sscanf(line, "%lx-", &start) == 1 && start == (unsigned long)addr)
			return strstr(line, want) != NULL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char *a, *b, *priv;
	const char *path;
	int fd;

	test_init(argc, argv);
	path = test_path("mem_deleted_file.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("open %s", path);
	if (ftruncate(fd, NPAGES * PG))
		fail_errno("ftruncate");
	a = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	priv = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (a == MAP_FAILED || b == MAP_FAILED || priv == MAP_FAILED)
		fail_errno("mmap");
	close(fd);
	test_fill(a, NPAGES * PG, 400);
	test_fill(priv, PG, 401);	/* page 0 COWed */
	if (unlink(path))
		fail_errno("unlink");
	if (!deleted_in_maps(path, a))
		fail("before: maps do not show '%s (deleted)'", path);

	test_ready();
	test_wait_check();

	if (!deleted_in_maps(path, a) || !deleted_in_maps(path, b) || !deleted_in_maps(path, priv))
		fail("maps do not show '%s (deleted)' at the three addresses after restore", path);
	if (access(path, F_OK) == 0)
		fail("the deleted file is back at %s after restore", path);
	if (test_check(a, NPAGES * PG, 400) != (size_t)-1 || test_check(b, NPAGES * PG, 400) != (size_t)-1)
		fail("shared mappings of the deleted file differ after restore");
	if (test_check(priv, PG, 401) != (size_t)-1)
		fail("COWed page of the private mapping differs after restore");
	if (memcmp(priv + PG, a + PG, (NPAGES - 1) * PG))
		fail("private mapping's file pages differ after restore");
	test_fill(a + 5 * PG, PG, 402);
	if (test_check(b + 5 * PG, PG, 402) != (size_t)-1)
		fail("the two shared mappings are no longer one file");
	pass();
}
