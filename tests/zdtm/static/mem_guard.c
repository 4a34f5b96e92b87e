// SPDX-License-Identifier: MIT
// zdtm: flags=refused-in=post-copy,dump-err=guard regions
/*
 * Post-copy scans a page map after the resume, too late for guard markers:
 * it refuses the tree before the freeze, naming the guard region.
 *
 * Guard regions (madvise MADV_GUARD_INSTALL, Linux 6.13+): two guard pages
 * inside a written private anonymous area.  After restore the data around
 * them is the same and the guard pages still fault (SIGSEGV on access), so
 * they were neither dropped nor turned into readable zeros.
 */
#include "zdtm.h"

#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PG 4096UL
#define NPG 16

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static bool faults(volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	bool hit = false;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(jb, 1) == 0)
		(void)*p;
	else
		hit = true;
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

int main(int argc, char **argv)
{
	char *m;

	test_init(argc, argv);
	m = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail_errno("mmap");
	test_fill(m, NPG * PG, 4242);
	if (madvise(m + 3 * PG, PG, MADV_GUARD_INSTALL) || madvise(m + 9 * PG, 2 * PG, MADV_GUARD_INSTALL))
		fail_errno("MADV_GUARD_INSTALL");
	if (!faults(m + 3 * PG) || !faults(m + 10 * PG) || faults(m + 4 * PG))
		fail("guard pages do not fault before the checkpoint");

	test_ready();
	test_wait_check();

	if (!faults(m + 3 * PG) || !faults(m + 9 * PG) || !faults(m + 10 * PG))
		fail("a guard page no longer faults");
	/* the pattern depends on the offset: check page by page against a fresh fill */
	static char want[NPG * PG];
	test_fill(want, NPG * PG, 4242);
	for (int i = 0; i < NPG; i++)
		if (i != 3 && i != 9 && i != 10 && memcmp(m + i * PG, want + i * PG, PG))
			fail("page %d differs", i);
	pass();
}
