// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The stack deep in a recursion: a few thousand frames, each with its own
 * local array (about 4 MiB of stack in all), and the wait happens at the
 * bottom. After restore every frame checks its locals while unwinding,
 * and the stack can still grow below where it was.
 */
#include "zdtm.h"

#include <alloca.h>
#include <string.h>
#include <sys/resource.h>

#define DEPTH 2000
#define FRAME 2048	/* bytes of locals per frame */

static unsigned long lowest;

static __attribute__((noinline)) int recurse(int depth)
{
	volatile uint64_t local[FRAME / 8];
	int r;

	test_fill((void *)local, sizeof(local), (uint64_t)depth);
	if (depth == DEPTH) {
		lowest = (unsigned long)local;
		test_ready();
		test_wait_check();
		/* Grow the stack 1 MiB further down than it ever was. */
		char *p = alloca(1 << 20);

		memset(p, 0x5a, 1 << 20);
		if ((unsigned long)p >= lowest)
			fail("alloca did not go below the old stack bottom");
		r = 0;
	} else {
		r = recurse(depth + 1);
	}
	if (test_check((void *)local, sizeof(local), (uint64_t)depth) != (size_t)-1)
		fail("frame %d: locals differ after restore", depth);
	return r + (int)(local[0] & 0);
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	test_init(argc, argv);
	if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (8UL << 20))
		fail("RLIMIT_STACK %lu is too small for this test", (unsigned long)rl.rlim_cur);
	if (recurse(0))
		fail("recursion");
	pass();
}
