// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Private anonymous memory: areas of several sizes, each page with its own
 * pattern, some pages never touched (must read as zeros and, ideally, stay
 * unpopulated), some written then dropped with MADV_DONTNEED (zeros
 * again), and holes punched with munmap in the middle of an area.
 *
 *   area 3 (4 MiB):  [wwww][    ][wwww][hole][w w w w ...][dontneed]
 */
#include "zdtm.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL

struct area {
	size_t pages;
	char *p;
};

static struct area areas[] = { { 1 }, { 3 }, { 17 }, { 1024 }, { 4096 } };

/* What page i of area a holds: 0 = zeros (never touched / dropped), 1 = pattern, 2 = unmapped. */
static int page_kind(size_t a, size_t i)
{
	size_t n = areas[a].pages;

	if (n < 16)
		return i % 2 == 0 || n == 1;
	if (a == ARRAY_SIZE(areas) - 1) {
		if (i >= n / 4 && i < n / 4 + 8)
			return 2;		/* hole */
		if (i >= n - 16)
			return 0;		/* written, then MADV_DONTNEED */
		return i % 3 == 0;		/* every third page touched */
	}
	return i % 5 != 2;
}

static uint64_t seed_of(size_t a, size_t i)
{
	return (a << 32) | i;
}

static void check_all(const char *when)
{
	static const char zero[PG];

	for (size_t a = 0; a < ARRAY_SIZE(areas); a++) {
		for (size_t i = 0; i < areas[a].pages; i++) {
			char *pg = areas[a].p + i * PG;
			size_t bad;

			switch (page_kind(a, i)) {
			case 0:
				if (memcmp(pg, zero, PG))
					fail("%s: area %zu page %zu should be zeros", when, a, i);
				break;
			case 1:
				bad = test_check(pg, PG, seed_of(a, i));
				if (bad != (size_t)-1)
					fail("%s: area %zu (%zu pages) page %zu differs at byte %zu", when, a,
					     areas[a].pages, i, bad);
				break;
			}
		}
	}
}

int main(int argc, char **argv)
{
	unsigned char vec[4096];

	test_init(argc, argv);
	for (size_t a = 0; a < ARRAY_SIZE(areas); a++) {
		size_t n = areas[a].pages;

		areas[a].p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (areas[a].p == MAP_FAILED)
			fail_errno("mmap(%zu pages)", n);
		for (size_t i = 0; i < n; i++) {
			int k = page_kind(a, i);

			if (k == 1)
				test_fill(areas[a].p + i * PG, PG, seed_of(a, i));
			else if (a == ARRAY_SIZE(areas) - 1 && i >= n - 16)
				test_fill(areas[a].p + i * PG, PG, 77);
		}
		if (a == ARRAY_SIZE(areas) - 1) {
			if (munmap(areas[a].p + n / 4 * PG, 8 * PG))
				fail_errno("munmap(hole)");
			if (madvise(areas[a].p + (n - 16) * PG, 16 * PG, MADV_DONTNEED))
				fail_errno("madvise(DONTNEED)");
		}
	}
	check_all("before");

	test_ready();
	test_wait_check();

	check_all("after restore");

	/* The hole must still be a hole. */
	size_t n = areas[ARRAY_SIZE(areas) - 1].pages;

	if (mincore(areas[ARRAY_SIZE(areas) - 1].p + n / 4 * PG, 8 * PG, vec) == 0 || errno != ENOMEM)
		fail("the munmap'ed hole is mapped after restore");
	pass();
}
