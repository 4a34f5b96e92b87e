// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,migrate-opt=--cow-max=1,migrate-env=DMIGRATE_SHARED_PRESEND=0,copies-in=post-copy
/*
 * The bound on copy-on-write sharing in live migrations (`migrate
 * --cow-max`): the root fills 4 MiB of private anonymous memory and forks
 * two children that only read it.  The runner migrates it with --cow-max=1
 * (MiB) and without post-copy's pre-send of the pages children share
 * (DMIGRATE_SHARED_PRESEND=0: with it they go before the freeze, as a
 * pre-copy round's, up to the store's size): in post-copy the parent's
 * shared pages would have to go inside the downtime, more than the bound
 * allows, so the tree must come back as copies, exactly, with the copied
 * pages counted in the stats (the runner checks dump.cow.copied_pages) --
 * and really as copies: the test (--arg copies) checks that the tree's
 * Pss_Anon grew by at least one child's copy.  In pre-copy and hybrid the
 * parent's pages are at the destination already (a round sent them, nobody
 * wrote them since): they do not count against the bound and the sharing
 * stays.  Stop-and-copy keeps it whatever
 * the bound, and so do cr, dump and lazy (no bound there): the tree's
 * Pss_Anon after is at most 5/4 of before plus 2 MiB.
 */
#include "zdtm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BUF_SIZE	(4UL << 20)
#define PAGE		4096UL
#define NR_KIDS		2
#define SEED		0xb0d0ULL

static uint8_t *buf;

static void check_all(const char *who)
{
	size_t bad = test_check(buf, BUF_SIZE, SEED);
	if (bad != (size_t)-1)
		fail("%s: byte %#lx differs from the root's pattern", who, (unsigned long)bad);
}

static long tree_pss_kb(void)
{
	pid_t host[8];
	int n = test_proc_children(host, 8);
	long sum = test_pss_anon_kb(0);

	if (n != NR_KIDS)
		fail("%d children in /proc, expected %d", n, NR_KIDS);
	for (int i = 0; i < n; i++)
		sum += test_pss_anon_kb(host[i]);
	return sum;
}

int main(int argc, char **argv)
{
	pid_t kids[NR_KIDS];
	int barrier[2];
	long before, after;
	bool copies;

	test_init(argc, argv);
	copies = test_arg && !strcmp(test_arg, "copies");
	/* alone between PROT_NONE pages: no neighbour merges with it */
	uint8_t *p = mmap(NULL, BUF_SIZE + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail_errno("mmap");
	buf = p + PAGE;
	if (mprotect(buf, BUF_SIZE, PROT_READ | PROT_WRITE))
		fail_errno("mprotect");
	test_fill(buf, BUF_SIZE, SEED);
	test_barrier_init(barrier);
	for (int i = 0; i < NR_KIDS; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			fail_errno("fork");
		if (kids[i] == 0) {
			check_all("child"); /* reads only: the pages stay shared */
			test_barrier_done(barrier);
			test_wait_check();
			check_all("child");
			_exit(0);
		}
	}
	test_barrier_wait(barrier);
	before = tree_pss_kb();
	if (before > (long)(BUF_SIZE >> 10) * 3 / 2)
		fail("the tree's Pss_Anon is %ld kB before the checkpoint: the pages are not shared", before);

	test_ready();
	test_wait_check();

	after = tree_pss_kb();
	test_msg("tree Pss_Anon: %ld kB before, %ld kB after", before, after);
	if (copies && after < before + (long)(BUF_SIZE >> 10))
		fail("over --cow-max the tree must come back as copies, but its Pss_Anon is %ld kB after, "
		     "%ld kB before: the pages are still shared", after, before);
	if (!copies && after > before * 5 / 4 + 2048)
		fail("the tree's Pss_Anon is %ld kB after the restore, %ld kB before: the copy-on-write "
		     "sharing between the root and its children was lost", after, before);
	check_all("root");
	test_stop_children(kids, NR_KIDS, "child");
	pass();
}
