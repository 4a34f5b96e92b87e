// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Areas moved and resized with mremap: grown in place or moved
 * (MREMAP_MAYMOVE), shrunk, moved to a chosen address (MREMAP_FIXED), and
 * moved with MREMAP_DONTUNMAP (the old range stays mapped, empty). Each
 * keeps its pattern at its new address; after restore the same holds,
 * and the areas can be remapped again.
 */
#include "zdtm.h"

#include <string.h>
#include <sys/mman.h>

#define PG 4096UL

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

int main(int argc, char **argv)
{
	char *grown, *shrunk, *fixed, *target, *dontunmap_old, *dontunmap_new, *p;
	static const char zero[PG];

	test_init(argc, argv);

	p = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail_errno("mmap");
	test_fill(p, 8 * PG, 1000);
	grown = mremap(p, 8 * PG, 64 * PG, MREMAP_MAYMOVE);
	if (grown == MAP_FAILED)
		fail_errno("mremap(grow)");
	test_fill(grown + 8 * PG, 56 * PG, 1001);

	p = mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	test_fill(p, 32 * PG, 1002);
	shrunk = mremap(p, 32 * PG, 5 * PG, 0);
	if (shrunk != p)
		fail_errno("mremap(shrink)");

	/* glibc passes the 5th argument on: give NULL when it is not MREMAP_FIXED. */
	/* Reserve a target range, then move an area onto it. */
	target = mmap(NULL, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	test_fill(p, 16 * PG, 1003);
	fixed = mremap(p, 16 * PG, 16 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	if (fixed != target)
		fail_errno("mremap(fixed)");

	dontunmap_old = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	test_fill(dontunmap_old, 4 * PG, 1004);
	dontunmap_new = mremap(dontunmap_old, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (dontunmap_new == MAP_FAILED)
		fail_errno("mremap(DONTUNMAP)");

	test_ready();
	test_wait_check();

	if (test_check(grown, 8 * PG, 1000) != (size_t)-1 || test_check(grown + 8 * PG, 56 * PG, 1001) != (size_t)-1)
		fail("grown area differs after restore");
	if (test_check(shrunk, 5 * PG, 1002) != (size_t)-1)
		fail("shrunk area differs after restore");
	if (test_check(fixed, 16 * PG, 1003) != (size_t)-1)
		fail("area moved with MREMAP_FIXED differs after restore");
	if (test_check(dontunmap_new, 4 * PG, 1004) != (size_t)-1)
		fail("area moved with MREMAP_DONTUNMAP differs after restore");
	for (int i = 0; i < 4; i++)
		if (memcmp(dontunmap_old + i * PG, zero, PG))
			fail("old range of MREMAP_DONTUNMAP is not empty after restore");
	/* Still movable. */
	p = mremap(grown, 64 * PG, 128 * PG, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		fail_errno("mremap after restore");
	if (test_check(p, 8 * PG, 1000) != (size_t)-1)
		fail("area differs after a remap made after restore");
	pass();
}
