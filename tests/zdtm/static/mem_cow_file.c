// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Copy-on-write sharing of a private file mapping's written pages between a
 * parent and its children (a prefork server's relocated library data).  The
 * root maps a file of FILE_PAGES pages MAP_PRIVATE, writes the first
 * WRITTEN pages through the mapping (they become anonymous pages, the rest
 * stays the file's page cache, read once) and forks a reader and a writer.
 * The writer writes a few pages of the written part and one of the part
 * still the file's; the root, after the forks, writes a few other pages of
 * the written part (its children keep the bytes from before).
 *
 * After the restore:
 *   - every process sees its own bytes: the root's pattern where nobody
 *     wrote since the fork, each writer's own where it wrote, the file's
 *     where nobody wrote (a page it reads from the file, not a copy: a
 *     change made to the file after the restore shows through its mapping,
 *     checked by each process on a page of its own);
 *   - the tree still shares: Pss_Anon summed over the tree is at most 5/4 of
 *     what it was before, plus 4 MiB of slack.  Restored as copies it is
 *     about three times as much (the engine used to store and send every
 *     child's written pages of a file mapping as its own).
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE		4096UL
#define FILE_PAGES	2304UL		/* 9 MiB */
#define WRITTEN		2048UL		/* the first 8 MiB are written by the root */
#define FSEED		0xf11eULL	/* the file's bytes, per page */
#define SEED		0x5eedULL	/* the root's writes before the forks */
#define RSEED		0x2007ULL	/* the root's writes after the forks */
#define WSEED		0x3417ULL	/* the writer's */
#define NEWSEED		0x4e3dULL	/* the file changed after the restore */
#define ROOT_PG(k)	(300 + (k))	/* k < 8: pages the root writes after the forks */
#define WR_PG(k)	(600 + (k))	/* k < 8: pages the writer writes */
#define WR_FILE_PG	2200UL		/* the writer's page in the file's part */
#define FOLLOW_PG(who)	(2250UL + (who))	/* a page of the file's part each process changes in the file */

enum { ROOT, READER, WRITER };

static uint8_t *map;
static int fd;

static bool root_after(uint64_t pg)
{
	return pg >= ROOT_PG(0) && pg < ROOT_PG(8);
}

static bool writer_pg(uint64_t pg)
{
	return (pg >= WR_PG(0) && pg < WR_PG(8)) || pg == WR_FILE_PG;
}

/* What page pg holds for process who (without the follow pages). */
static uint64_t seed_of(int who, uint64_t pg)
{
	if (who == WRITER && writer_pg(pg))
		return WSEED + pg;
	if (who == ROOT && root_after(pg))
		return RSEED + pg;
	return pg < WRITTEN ? SEED + pg : FSEED + pg;
}

static void check_all(int who, const char *name)
{
	for (uint64_t pg = 0; pg < FILE_PAGES; pg++) {
		if (pg >= FOLLOW_PG(ROOT) && pg <= FOLLOW_PG(WRITER))
			continue; /* changed in the file by one of us meanwhile */
		size_t bad = test_check(map + pg * PAGE, PAGE, seed_of(who, pg));
		if (bad != (size_t)-1)
			fail("%s: page %lu (byte %zu) differs from %s", name, (unsigned long)pg, bad,
			     seed_of(who, pg) == FSEED + pg ? "the file" : "what was written there");
	}
}

/* The file's page FOLLOW_PG(who) written anew through the file: the mapping
 * reads the file there (it never wrote that page), so it shows at once. */
static void check_follow(int who, const char *name)
{
	static uint8_t page[PAGE];
	uint64_t pg = FOLLOW_PG(who);

	test_fill(page, PAGE, NEWSEED + pg);
	if (pwrite(fd, page, PAGE, (off_t)(pg * PAGE)) != (ssize_t)PAGE)
		fail_errno("%s: pwrite", name);
	if (test_check(map + pg * PAGE, PAGE, NEWSEED + pg) != (size_t)-1)
		fail("%s: page %lu does not show the file's change: a copy, not the file", name,
		     (unsigned long)pg);
}

static __attribute__((noreturn)) void child_main(int who, int barrier[2])
{
	const char *name = who == WRITER ? "writer" : "reader";

	if (who == WRITER) {
		for (int k = 0; k < 8; k++)
			test_fill(map + WR_PG(k) * PAGE, PAGE, WSEED + WR_PG(k));
		test_fill(map + WR_FILE_PG * PAGE, PAGE, WSEED + WR_FILE_PG);
	}
	check_all(who, name);
	test_barrier_done(barrier);
	test_wait_check();
	check_all(who, name);
	check_follow(who, name);
	_exit(0);
}

static long tree_pss_kb(void)
{
	pid_t host[4];
	int n = test_proc_children(host, 4);
	long sum = test_pss_anon_kb(0);

	if (n != 2)
		fail("%d children in /proc, expected 2", n);
	for (int i = 0; i < n; i++)
		sum += test_pss_anon_kb(host[i]);
	return sum;
}

int main(int argc, char **argv)
{
	static uint8_t page[PAGE];
	int barrier[2];
	pid_t kids[2];
	long before, after, bound;

	test_init(argc, argv);
	const char *path = test_path("mem_cow_file.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("open %s", path);
	for (uint64_t pg = 0; pg < FILE_PAGES; pg++) {
		test_fill(page, PAGE, FSEED + pg);
		if (test_write_all(fd, page, PAGE))
			fail_errno("write");
	}
	map = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		fail_errno("mmap");
	for (uint64_t pg = 0; pg < WRITTEN; pg++)
		test_fill(map + pg * PAGE, PAGE, SEED + pg);
	check_all(READER, "root before the forks"); /* the file's part read in: page cache */
	test_barrier_init(barrier);
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		if (pid < 0)
			fail_errno("fork");
		if (pid == 0)
			child_main(i ? WRITER : READER, barrier);
		kids[i] = pid;
	}
	test_barrier_wait(barrier);
	for (int k = 0; k < 8; k++)
		test_fill(map + ROOT_PG(k) * PAGE, PAGE, RSEED + ROOT_PG(k));
	before = tree_pss_kb();
	if (before > (long)(WRITTEN * PAGE >> 10) * 3 / 2)
		fail("the tree's Pss_Anon is %ld kB before the checkpoint: the pages are not shared", before);

	test_ready();
	test_wait_check();

	after = tree_pss_kb();
	bound = before * 5 / 4 + 4096;
	test_msg("tree Pss_Anon: %ld kB before, %ld kB after (bound %ld kB)", before, after, bound);
	if (after > bound)
		fail("the tree's Pss_Anon is %ld kB after the restore, %ld kB before: the copy-on-write "
		     "sharing of the file mapping's written pages was lost", after, before);
	check_all(ROOT, "root");
	check_follow(ROOT, "root");
	test_stop_children(kids, 2, "child");
	pass();
}
