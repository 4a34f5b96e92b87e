// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A large (64 MiB) private anonymous area, fully written with a pattern,
 * and a checksum of it kept apart. After restore the checksum matches and
 * the first differing page, if any, is named.
 */
#include "zdtm.h"

#include <sys/mman.h>

#define SIZE (64UL << 20)
#define PG 4096UL

static uint64_t sum(const uint64_t *p, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = test_mix64(s ^ p[i]);
	return s;
}

int main(int argc, char **argv)
{
	uint64_t *mem, before;

	test_init(argc, argv);
	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail_errno("mmap");
	test_fill(mem, SIZE, 800);
	before = sum(mem, SIZE / 8);

	test_ready();
	test_wait_check();

	if (sum(mem, SIZE / 8) != before) {
		size_t bad = test_check(mem, SIZE, 800);

		fail("checksum differs after restore; first bad byte at %zu (page %zu of %lu)", bad,
		     bad / PG, SIZE / PG);
	}
	pass();
}
