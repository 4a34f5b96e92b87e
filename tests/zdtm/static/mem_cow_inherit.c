// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,migrate-opt=--cow-max=256
/*
 * Copy-on-write sharing between a parent and its forked children.  The root
 * fills 64 MiB of private anonymous memory with a pattern and forks 4
 * children that only read it and one that writes WRITER_PAGES pages of it;
 * the first reader forks a grandchild that only reads it too (it inherits
 * from a process that inherits); the second reader makes it read-only
 * (same bounds, another protection).  While a page is shared, parent and
 * child have one physical page.  Two small areas, read by every child too,
 * get MADV_DONTFORK and MADV_WIPEONFORK in the root after the forks: the
 * restore must fork the children before it sets them (the runner compares
 * every process's VmFlags).  An 8 MiB area with MADV_HUGEPAGE (huge pages
 * where the system gives them) is shared the same way, and the writer
 * writes one page of it.
 *
 * After the restore:
 *   - every process has its bytes: the readers and the root the root's
 *     pattern everywhere, the writer its own pattern in the pages it wrote
 *     (so the root's copy of those pages differs from the writer's);
 *   - the tree still shares: the sum of Pss_Anon (smaps_rollup) over the
 *     tree is at most 5/4 of what it was before the checkpoint, plus the
 *     writer's pages and 4 MiB of slack (stacks, the engine's own pages).
 *     Restored as copies it would be about 7 times as much.
 *
 * Every mode keeps the sharing; the migrations other than stop-and-copy
 * only up to `migrate --cow-max` MiB of the parent's shared pages (they go
 * inside the downtime): the runner raises it above this test's 72 MiB
 * (mem_cow_bound tests the bound itself).
 */
#include "zdtm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BUF_SIZE	(64UL << 20)
#define PAGE		4096UL
#define NR_READERS	4
#define WRITER_PAGES	16
#define WRITER_STRIDE	(BUF_SIZE / WRITER_PAGES)
#define SEED		0xc0feULL
#define WSEED		0xbeefULL

#define LATE_SIZE	(16 * PAGE)
#define DSEED		0xdf00ULL
#define FSEED		0x3f00ULL

#define THP_SIZE	(8UL << 20)
#define THP_WPAGE	(THP_SIZE / 2 + PAGE) /* the page the writer writes */
#define TSEED		0x7400ULL

static uint8_t *buf, *late_df, *late_wf, *thp;
static pid_t kids[NR_READERS + 1];

/* An area that merges with no neighbour (PROT_NONE pages around it). */
static uint8_t *map_alone(size_t size)
{
	uint8_t *p = mmap(NULL, size + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail_errno("mmap");
	if (mprotect(p + PAGE, size, PROT_READ | PROT_WRITE))
		fail_errno("mprotect");
	return p + PAGE;
}

/* The huge page area: its own pattern per page; the writer's page is its own. */
static void check_thp(const char *who, bool writer)
{
	for (uint64_t off = 0; off < THP_SIZE; off += PAGE) {
		bool mine = writer && off == THP_WPAGE;
		if (test_check(thp + off, PAGE, (mine ? WSEED : TSEED) + off) != (size_t)-1)
			fail("%s: page %#lx of the huge page area differs", who, (unsigned long)off);
	}
}

static void check_late(const char *who)
{
	if (test_check(late_df, LATE_SIZE, DSEED) != (size_t)-1)
		fail("%s: the area it shares with the root (DONTFORK there) differs", who);
	if (test_check(late_wf, LATE_SIZE, FSEED) != (size_t)-1)
		fail("%s: the area it shares with the root (WIPEONFORK there) differs", who);
}

/* Each page has its own pattern, seeded by its offset. */
static void check_page(const char *who, uint64_t off)
{
	size_t bad = test_check(buf + off, PAGE, SEED + off);
	if (bad != (size_t)-1)
		fail("%s: byte %#lx differs from the root's pattern", who, (unsigned long)(off + bad));
}

static void fill_all(void)
{
	for (uint64_t off = 0; off < BUF_SIZE; off += PAGE)
		test_fill(buf + off, PAGE, SEED + off);
}

static void check_all(const char *who)
{
	for (uint64_t off = 0; off < BUF_SIZE; off += PAGE)
		check_page(who, off);
}

static void writer_write(void)
{
	for (int k = 0; k < WRITER_PAGES; k++)
		test_fill(buf + k * WRITER_STRIDE, PAGE, WSEED + (uint64_t)k);
}

static void writer_check(void)
{
	for (int k = 0; k < WRITER_PAGES; k++) {
		uint64_t off = k * WRITER_STRIDE;
		size_t bad = test_check(buf + off, PAGE, WSEED + (uint64_t)k);
		if (bad != (size_t)-1)
			fail("writer: its page %#lx (byte %#lx) lost what it wrote", (unsigned long)off,
			     (unsigned long)(off + bad));
		for (uint64_t o = off + PAGE; o < off + WRITER_STRIDE; o += PAGE)
			check_page("writer", o);
	}
}

static __attribute__((noreturn)) void child_main(bool writer, bool grand, bool ro, int barrier[2])
{
	pid_t gc = 0;

	check_late("child");
	if (writer) {
		writer_write();
		test_fill(thp + THP_WPAGE, PAGE, WSEED + THP_WPAGE);
	} else {
		check_all(grand ? "grandchild" : "reader"); /* reads only: the pages stay shared */
	}
	check_thp(writer ? "writer" : "child", writer);
	if (ro && mprotect(buf, BUF_SIZE, PROT_READ))
		fail_errno("mprotect(PROT_READ)");
	if (grand) {
		gc = fork();
		if (gc < 0)
			fail_errno("fork");
		if (gc == 0)
			child_main(false, false, false, barrier);
	}
	test_barrier_done(barrier);
	test_wait_check();
	if (writer)
		writer_check();
	else
		check_all(grand ? "grandchild's parent" : "reader");
	check_late("child");
	check_thp(writer ? "writer" : "child", writer);
	if (gc)
		test_stop_children(&gc, 1, "grandchild");
	_exit(0);
}

/* Children of a process (host pid: /proc is the runner's) from task/PID/children. */
static int kids_of(pid_t pid, pid_t *out, int max)
{
	char path[96], text[512], *p = text;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	if (test_read_file(path, text, sizeof(text)) < 0)
		fail_errno("reading %s", path);
	while (n < max) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		out[n++] = (pid_t)v;
		p = end;
	}
	return n;
}

/* Pss_Anon summed over the root, its children and grandchildren. */
static long tree_pss_kb(void)
{
	pid_t host[16], grand[16];
	int n = test_proc_children(host, 16), ng = 0;
	long sum = test_pss_anon_kb(0);

	if (n != NR_READERS + 1)
		fail("%d children in /proc, expected %d", n, NR_READERS + 1);
	for (int i = 0; i < n; i++) {
		sum += test_pss_anon_kb(host[i]);
		int k = kids_of(host[i], grand, 16);
		for (int j = 0; j < k; j++)
			sum += test_pss_anon_kb(grand[j]);
		ng += k;
	}
	if (ng != 1)
		fail("%d grandchildren in /proc, expected 1", ng);
	return sum;
}

int main(int argc, char **argv)
{
	int barrier[2];
	long before, after, bound;

	test_init(argc, argv);
	buf = map_alone(BUF_SIZE);
	late_df = map_alone(LATE_SIZE);
	late_wf = map_alone(LATE_SIZE);
	thp = map_alone(THP_SIZE);
	if (madvise(thp, THP_SIZE, MADV_HUGEPAGE))
		fail_errno("madvise(HUGEPAGE)");
	for (uint64_t off = 0; off < THP_SIZE; off += PAGE)
		test_fill(thp + off, PAGE, TSEED + off);
	fill_all();
	test_fill(late_df, LATE_SIZE, DSEED);
	test_fill(late_wf, LATE_SIZE, FSEED);
	test_barrier_init(barrier);
	for (int i = 0; i <= NR_READERS; i++) {
		pid_t pid = fork();
		if (pid < 0)
			fail_errno("fork");
		if (pid == 0)
			child_main(i == NR_READERS, i == 0, i == 1, barrier);
		kids[i] = pid;
	}
	test_barrier_wait(barrier);
	if (madvise(late_df, LATE_SIZE, MADV_DONTFORK) || madvise(late_wf, LATE_SIZE, MADV_WIPEONFORK))
		fail_errno("madvise");
	before = tree_pss_kb();
	if (before > (long)(BUF_SIZE >> 10) * 3 / 2)
		fail("the tree's Pss_Anon is %ld kB before the checkpoint: the pages are not shared",
		     before);

	test_ready();
	test_wait_check();

	after = tree_pss_kb();
	bound = before * 5 / 4 + (long)(WRITER_PAGES * PAGE >> 10) + 4096;
	test_msg("tree Pss_Anon: %ld kB before, %ld kB after (bound %ld kB)", before, after, bound);
	if (after > bound && !(test_arg && !strcmp(test_arg, "copies")))
		fail("the tree's Pss_Anon is %ld kB after the restore, %ld kB before: the "
		     "copy-on-write sharing between the root and its children was lost", after, before);
	check_all("root");
	check_late("root");
	check_thp("root", false);
	test_stop_children(kids, NR_READERS + 1, "child");
	pass();
}
