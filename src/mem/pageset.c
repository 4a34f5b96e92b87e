/* SPDX-License-Identifier: MIT */
/*
 * pageset: which pages of an address space are in some state (sent,
 * installed, ...), over a fixed set of regions taken from the image's page
 * map.  Bits are atomics: several threads set them while others read.
 * Lookups are a binary search over the regions (a process has a few
 * hundred at most).  Also the fault latency histogram.
 */
#include "mem/mem.h"
#include "base/log.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

static void add_region(struct pageset_region **r, size_t *n, size_t *cap, uint64_t start, uint64_t npages,
		       bool merge)
{
	if (merge && *n && (*r)[*n - 1].start + (*r)[*n - 1].npages * DM_PAGE_SIZE == start) {
		(*r)[*n - 1].npages += npages;
		return;
	}
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*r = xrealloc(*r, *cap * sizeof(**r));
	}
	(*r)[(*n)++] = (struct pageset_region){ .start = start, .npages = npages };
}

static void alloc_bits(struct pageset *s)
{
	s->total = 0;
	for (size_t i = 0; i < s->n; i++) {
		s->r[i].bits = xcalloc((s->r[i].npages + 63) / 64, sizeof(uint64_t));
		s->total += s->r[i].npages;
	}
	atomic_store(&s->count, 0);
}

int pageset_from_pagemap(struct pageset *s, const Dm__Process *p, bool lazy_only)
{
	size_t cap = 0;
	uint64_t prev_end = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < p->n_pagemap; i++) {
		const Dm__PagemapEntry *e = p->pagemap[i];
		/* `now`: written from the page source before the task runs
		 * (the destination held them): never faulted, never pushed */
		if (lazy_only && (!(e->has_lazy && e->lazy) || (e->has_now && e->now)))
			continue;
		if (!PAGE_ALIGNED(e->vaddr) || e->nr_pages == 0 || e->vaddr >= MEM_ADDR_LIMIT ||
		    e->nr_pages > (MEM_ADDR_LIMIT - e->vaddr) / DM_PAGE_SIZE || e->vaddr < prev_end) {
			pageset_done(s);
			return dm_fail(-EBADMSG, "process %d: pagemap entry %zu (%#" PRIx64 "+%u) is malformed",
				       p->pid, i, e->vaddr, e->nr_pages);
		}
		prev_end = e->vaddr + (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		/*
		 * Entries never cross a VMA, and neither may a region: one
		 * UFFDIO_COPY must stay inside one VMA (else -ENOENT for all).
		 */
		add_region(&s->r, &s->n, &cap, e->vaddr, e->nr_pages, false);
	}
	alloc_bits(s);
	return 0;
}

void pageset_clone_empty(struct pageset *dst, const struct pageset *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->n = src->n;
	dst->r = xcalloc(src->n ? src->n : 1, sizeof(*dst->r));
	for (size_t i = 0; i < src->n; i++)
		dst->r[i] = (struct pageset_region){ .start = src->r[i].start, .npages = src->r[i].npages };
	alloc_bits(dst);
}

void pageset_done(struct pageset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free((void *)s->r[i].bits);
	free(s->r);
	memset(s, 0, sizeof(*s));
}

long pageset_find(const struct pageset *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct pageset_region *r = &s->r[mid];
		if (addr < r->start)
			hi = mid;
		else if (addr >= r->start + r->npages * DM_PAGE_SIZE)
			lo = mid + 1;
		else
			return (long)mid;
	}
	return -1;
}

bool pageset_contains(const struct pageset *s, uint64_t addr)
{
	return pageset_find(s, addr) >= 0;
}

bool pageset_covers(const struct pageset *s, uint64_t addr, uint64_t npages)
{
	long i = pageset_find(s, addr);
	if (i < 0 || npages == 0)
		return false;
	const struct pageset_region *r = &s->r[i];
	return (addr - r->start) / DM_PAGE_SIZE + npages <= r->npages;
}

bool pageset_test(const struct pageset *s, uint64_t addr)
{
	long i = pageset_find(s, addr);
	if (i < 0)
		return false;
	const struct pageset_region *r = &s->r[i];
	uint64_t k = (addr - r->start) / DM_PAGE_SIZE;
	return atomic_load_explicit(&r->bits[k / 64], memory_order_acquire) & (1ULL << (k % 64));
}

bool pageset_set(struct pageset *s, uint64_t addr)
{
	long i = pageset_find(s, addr);
	if (i < 0)
		return true;
	struct pageset_region *r = &s->r[i];
	uint64_t k = (addr - r->start) / DM_PAGE_SIZE;
	uint64_t old = atomic_fetch_or_explicit(&r->bits[k / 64], 1ULL << (k % 64), memory_order_acq_rel);
	if (old & (1ULL << (k % 64)))
		return true;
	atomic_fetch_add(&s->count, 1);
	return false;
}

void pageset_set_range(struct pageset *s, uint64_t addr, uint64_t npages)
{
	uint64_t end = addr + npages * DM_PAGE_SIZE;
	while (addr < end) {
		long i = pageset_find(s, addr);
		if (i < 0) {
			/* the next region at or after addr */
			size_t k = 0;
			while (k < s->n && s->r[k].start < addr)
				k++;
			if (k == s->n || s->r[k].start >= end)
				return;
			addr = s->r[k].start;
			continue;
		}
		struct pageset_region *r = &s->r[i];
		uint64_t k = (addr - r->start) / DM_PAGE_SIZE;
		uint64_t last = MIN(r->npages, k + (end - addr) / DM_PAGE_SIZE);
		while (k < last) {
			uint64_t w = k / 64, lo = k % 64, hi = MIN((uint64_t)64, lo + (last - k));
			uint64_t mask = (hi == 64 ? ~0ULL : (1ULL << hi) - 1) & ~((1ULL << lo) - 1);
			uint64_t old = atomic_fetch_or_explicit(&r->bits[w], mask, memory_order_acq_rel);
			atomic_fetch_add(&s->count, (uint64_t)__builtin_popcountll(mask & ~old));
			k += hi - lo;
		}
		addr = r->start + r->npages * DM_PAGE_SIZE;
	}
}

bool pageset_clear(struct pageset *s, uint64_t addr)
{
	long i = pageset_find(s, addr);
	if (i < 0)
		return false;
	struct pageset_region *r = &s->r[i];
	uint64_t k = (addr - r->start) / DM_PAGE_SIZE;
	uint64_t old = atomic_fetch_and_explicit(&r->bits[k / 64], ~(1ULL << (k % 64)), memory_order_acq_rel);
	if (!(old & (1ULL << (k % 64))))
		return false;
	atomic_fetch_sub(&s->count, 1);
	return true;
}

void pageset_from_ranges(struct pageset *s, const uint64_t (*ranges)[2], size_t n)
{
	size_t cap = 0;
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < n; i++)
		if (ranges[i][1] > ranges[i][0])
			add_region(&s->r, &s->n, &cap, ranges[i][0], (ranges[i][1] - ranges[i][0]) / DM_PAGE_SIZE, true);
	alloc_bits(s);
}

static bool region_next_clear(const struct pageset_region *r, uint64_t from, uint64_t *ret_k)
{
	for (uint64_t k = from; k < r->npages;) {
		uint64_t w = atomic_load_explicit(&r->bits[k / 64], memory_order_acquire);
		w |= (1ULL << (k % 64)) - 1; /* bits below k count as set */
		if (~w) {
			uint64_t bit = (k & ~63ULL) + __builtin_ctzll(~w);
			if (bit >= r->npages)
				return false;
			*ret_k = bit;
			return true;
		}
		k = (k & ~63ULL) + 64;
	}
	return false;
}

bool pageset_next_clear(const struct pageset *s, uint64_t addr, uint64_t *ret_addr)
{
	size_t first = 0;
	uint64_t k0 = 0, k;

	if (s->n == 0 || pageset_full(s))
		return false;
	long i = pageset_find(s, addr);
	if (i >= 0) {
		first = i;
		k0 = (addr - s->r[i].start) / DM_PAGE_SIZE;
	} else {
		/* the first region after addr */
		while (first < s->n && s->r[first].start < addr)
			first++;
		if (first == s->n)
			first = 0;
	}
	for (size_t n = 0; n <= s->n; n++) {
		size_t ri = (first + n) % s->n;
		uint64_t from = n == 0 ? k0 : 0;
		if (region_next_clear(&s->r[ri], from, &k)) {
			*ret_addr = s->r[ri].start + k * DM_PAGE_SIZE;
			return true;
		}
	}
	/* the part of the first region before k0 */
	if (k0 && region_next_clear(&s->r[first], 0, &k) && k < k0) {
		*ret_addr = s->r[first].start + k * DM_PAGE_SIZE;
		return true;
	}
	return false;
}

void mem_fault_thread_priority(void)
{
	if (getenv("DMIGRATE_NO_RT"))
		return;
	/* the nice and a short slice in one call; where the kernel refuses
	 * the slice (before 6.12: sched_runtime is for SCHED_DEADLINE), the
	 * nice alone */
	if (thread_slice(FAULT_THREAD_NICE, getenv("DMIGRATE_FAULT_SLICE_OFF") ? 0 : FAULT_THREAD_SLICE_NS) < 0)
		thread_nice(FAULT_THREAD_NICE);
}

/* ---- histogram: 16 linear sub-buckets per power of two of microseconds ---- */

static unsigned hist_bucket(uint64_t us)
{
	if (us < 16)
		return (unsigned)us;
	unsigned e = 63 - __builtin_clzll(us); /* >= 4 */
	unsigned sub = (unsigned)((us >> (e - 4)) & 15);
	unsigned b = (e - 3) * 16 + sub;
	return b < 256 ? b : 255;
}

static double bucket_mid(unsigned b)
{
	if (b < 16)
		return b;
	unsigned e = b / 16 + 3, sub = b % 16;
	double lo = ldexp(16 + sub, (int)e - 4);
	return lo + ldexp(1, (int)e - 4) / 2;
}

void mem_hist_add(struct mem_hist *h, uint64_t us)
{
	atomic_fetch_add(&h->buckets[hist_bucket(us)], 1);
	atomic_fetch_add(&h->n, 1);
	uint64_t m = atomic_load(&h->max_us);
	while (us > m && !atomic_compare_exchange_weak(&h->max_us, &m, us))
		;
}

json_t *mem_hist_json(const struct mem_hist *h)
{
	json_t *a = json_array();
	for (unsigned b = 0; b < 256; b++) {
		uint64_t n = atomic_load(&h->buckets[b]);
		if (!n)
			continue;
		json_t *e = json_array();
		json_array_append_new(e, json_real(bucket_mid(b)));
		json_array_append_new(e, json_integer((json_int_t)n));
		json_array_append_new(a, e);
	}
	return a;
}

double mem_hist_quantile(const struct mem_hist *h, double q)
{
	uint64_t n = atomic_load(&h->n), seen = 0;
	if (!n)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)n);
	if (want < 1)
		want = 1;
	for (unsigned b = 0; b < 256; b++) {
		seen += atomic_load(&h->buckets[b]);
		if (seen >= want)
			return MIN(bucket_mid(b), (double)atomic_load(&h->max_us));
	}
	return (double)atomic_load(&h->max_us);
}
