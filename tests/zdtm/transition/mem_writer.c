// SPDX-License-Identifier: MIT
// zdtm: flags=transition
/*
 * Memory that keeps changing while it is dumped: two writer threads
 * rewrite random pages of a 32 MiB area without pause, each page holding
 * a sequence number and a pattern made of it, and a side table
 * remembering the last sequence number of every page. A frozen snapshot
 * is always consistent (at most the page being written is half done, and
 * its writer finishes it once it runs again), so after restore every
 * page must match its sequence number: a page lost or taken from an
 * older round (pre-copy missing a dirty page, post-copy serving a stale
 * one) shows up. A second area written once before READY must not change.
 * The writers must also keep going after restore.
 *
 *   page p:  [ seq | f(p,seq,1) | f(p,seq,2) | ... | f(p,seq,511) ]
 *   last[p] = seq   (written after the page)
 */
#include "zdtm.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#define SIZE (32UL << 20)
#define STABLE (16UL << 20)
#define PG 4096UL
#define NPAGES (SIZE / PG)
#define WORDS (PG / 8)
#define NR_WRITERS 2

static uint64_t *area, *stable;
static _Atomic uint64_t *last;
static atomic_int quit;

static struct writer {
	pthread_t th;
	int idx;
	_Atomic uint64_t pages;	/* pages written so far */
} writers[NR_WRITERS];

static inline uint64_t word(uint64_t p, uint64_t seq, uint64_t j)
{
	return test_mix64((p << 40) ^ (seq << 10) ^ j);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->idx + 1);
	uint64_t first = (uint64_t)w->idx * (NPAGES / NR_WRITERS);
	uint64_t seq;

	while (!atomic_load(&quit)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t p = first + x % (NPAGES / NR_WRITERS);
		uint64_t *pg = area + p * WORDS;

		seq = atomic_load(&last[p]) + 1;	/* each page has one writer */
		for (uint64_t j = 1; j < WORDS; j++)
			pg[j] = word(p, seq, j);
		pg[0] = seq;
		atomic_store(&last[p], seq);
		if ((atomic_fetch_add(&w->pages, 1) & 255) == 255)
			test_sleep_ms(1);	/* busy, but leave the dumper some CPU */
	}
	return NULL;
}

static bool progressed(void *arg)
{
	uint64_t *base = arg;

	for (int i = 0; i < NR_WRITERS; i++)
		if (atomic_load(&writers[i].pages) < base[i] + 2000)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	uint64_t base[NR_WRITERS] = { 0 };

	test_init(argc, argv);
	area = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stable = mmap(NULL, STABLE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	last = mmap(NULL, NPAGES * sizeof(*last), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || stable == MAP_FAILED || last == MAP_FAILED)
		fail_errno("mmap");
	test_fill(stable, STABLE, 1900);
	for (int i = 0; i < NR_WRITERS; i++) {
		writers[i].idx = i;
		if (pthread_create(&writers[i].th, NULL, writer_main, &writers[i]))
			fail("pthread_create");
	}
	if (!test_poll(progressed, base, 10000))
		fail("writers did not start");

	test_ready();
	test_wait_check();

	for (int i = 0; i < NR_WRITERS; i++)
		base[i] = atomic_load(&writers[i].pages);
	if (!test_poll(progressed, base, 30000))
		fail("writers stopped after restore (pages %llu, %llu)",
		     (unsigned long long)atomic_load(&writers[0].pages),
		     (unsigned long long)atomic_load(&writers[1].pages));
	atomic_store(&quit, 1);
	for (int i = 0; i < NR_WRITERS; i++)
		pthread_join(writers[i].th, NULL);

	uint64_t written = 0;

	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t seq = atomic_load(&last[p]), *pg = area + p * WORDS;

		if (seq == 0) {
			for (uint64_t j = 0; j < WORDS; j++)
				if (pg[j])
					fail("page %llu was never written, but word %llu is %#llx",
					     (unsigned long long)p, (unsigned long long)j, (unsigned long long)pg[j]);
			continue;
		}
		written++;
		if (pg[0] != seq)
			fail("page %llu holds sequence %llu, the table says %llu", (unsigned long long)p,
			     (unsigned long long)pg[0], (unsigned long long)seq);
		for (uint64_t j = 1; j < WORDS; j++)
			if (pg[j] != word(p, seq, j))
				fail("page %llu (sequence %llu): word %llu differs", (unsigned long long)p,
				     (unsigned long long)seq, (unsigned long long)j);
	}
	size_t bad = test_check(stable, STABLE, 1900);

	if (bad != (size_t)-1)
		fail("the stable area differs at %zu", bad);
	test_msg("%llu of %lu pages written, %llu + %llu page writes",
		 (unsigned long long)written, NPAGES, (unsigned long long)atomic_load(&writers[0].pages),
		 (unsigned long long)atomic_load(&writers[1].pages));
	pass();
}
