// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The heap: many malloc'ed blocks (small ones from brk, big ones from
 * mmap), some freed, plus brk grown by hand with sbrk. After restore the
 * blocks keep their contents, the program break is where it was,
 * [heap] is in the maps, and the heap keeps working: more malloc/free
 * (glibc checks its own metadata) and further sbrk growth.
 */
#include "zdtm.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBLK 2000

static void *blk[NBLK];
static size_t len[NBLK];

static size_t size_of(int i)
{
	if (i % 97 == 0)
		return (256 << 10) + (size_t)i * 8;	/* above the mmap threshold */
	return 16 + (size_t)(test_mix64((uint64_t)i) % 4000) / 8 * 8;
}

static bool heap_in_maps(void *p)
{
	char text[65536];
	unsigned long s, e, a = (unsigned long)p;

	if (test_read_file("/proc/self/maps", text, sizeof(text)) < 0)
		return false;
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "[heap]") && sscanf(l, "%lx-%lx", &s, &e) == 2 && a >= s && a < e)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	void *brk0, *brk1, *extra;

	test_init(argc, argv);
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	for (int i = 0; i < NBLK; i++) {
		len[i] = size_of(i);
		blk[i] = malloc(len[i]);
		if (!blk[i])
			fail("malloc(%zu)", len[i]);
		test_fill(blk[i], len[i], (uint64_t)i);
	}
	for (int i = 0; i < NBLK; i += 3) {
		free(blk[i]);
		blk[i] = NULL;
	}
	/* Grow the break by hand past malloc's top. */
	extra = sbrk(1 << 20);
	if (extra == (void *)-1)
		fail_errno("sbrk");
	test_fill(extra, 1 << 20, 4242);
	brk0 = sbrk(0);
	if (!heap_in_maps(blk[1]))
		fail("before: block 1 is not in [heap]");

	test_ready();
	test_wait_check();

	if (sbrk(0) != brk0)
		fail("program break %p, was %p", sbrk(0), brk0);
	if (!heap_in_maps(blk[1]) || !heap_in_maps(extra))
		fail("[heap] missing from maps (or does not hold the blocks) after restore");
	for (int i = 0; i < NBLK; i++)
		if (blk[i] && test_check(blk[i], len[i], (uint64_t)i) != (size_t)-1)
			fail("block %d (%zu bytes at %p) differs", i, len[i], blk[i]);
	if (test_check(extra, 1 << 20, 4242) != (size_t)-1)
		fail("sbrk'ed area differs");
	/* The heap still works. */
	for (int i = 0; i < NBLK; i++) {
		free(blk[i]);
		blk[i] = malloc(len[i] + 8);
		if (!blk[i])
			fail("malloc after restore");
		memset(blk[i], 0x11, len[i] + 8);
	}
	for (int i = 0; i < NBLK; i++)
		free(blk[i]);
	brk1 = sbrk(4 << 20);
	if (brk1 == (void *)-1)
		fail_errno("sbrk(+4 MiB) after restore");
	memset(brk1, 0x22, 4 << 20);
	pass();
}
