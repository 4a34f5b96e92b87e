/* SPDX-License-Identifier: MIT */
/*
 * mem_store: pages that reach the destination before its restore (pre-copy
 * rounds, the stop-and-copy push), until the restore installs them.
 *
 * Page data lives in one memfd, mapped once at its maximum size
 * (MAP_NORESERVE: tmpfs allocates only what is written), one 4 KiB slot per
 * page, slots handed out in arrival order, so a run of pages that arrived
 * together is contiguous in memory and goes to the kernel with one
 * UFFDIO_COPY.  A page sent again (dirtied between rounds) overwrites its
 * slot.  The index is an open-addressing hash (linear probing) of
 * (space, page number) -> slot.  Received data is read from the channel
 * straight into the slots.
 *
 * Installed pages are given back to the kernel (a hole punched in the memfd),
 * but in batches of STORE_PUNCH_PAGES: a punch unmaps the range from our
 * mapping, a TLB shootdown of every CPU running one of our threads, and
 * punched page by page (as installed) it cost as much as the install itself
 * (~70 us a call against ~60 for the UFFDIO_COPY of a run, traced), on the
 * CPUs the restored tree needs right after its resume.  A slot is never
 * handed out again, so a released one can wait; the store keeps that much
 * beyond what it holds, more only while the uffd thread alone installs (the
 * punch is left to the background install, and made without the lock: a
 * 16 MiB punch under it held a fault's lookup for its duration).
 * DMIGRATE_STORE_PUNCH_PAGES=N sets the batch (1: punched as installed, as
 * before; bench/docker-bench.sh compares them).
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT_NONE UINT32_MAX
#define STORE_PUNCH_PAGES 4096u /* 16 MiB */

struct slot_run {
	uint64_t first, n;
};

struct store_ent {
	uint64_t key;  /* 0: empty, else page_key() */
	uint32_t slot; /* SLOT_NONE: dropped (a tombstone keeps the probe chain) */
};

struct mem_store {
	pthread_rwlock_t lock;
	int fd;
	uint8_t *base;
	uint64_t max_slots;
	uint64_t next_slot;
	struct store_ent *tab;
	uint64_t tab_size;  /* power of two */
	uint64_t tab_used;  /* keys (incl. tombstones) */
	_Atomic uint64_t pages;
	/* released slots not yet punched (lock held for writing) */
	struct slot_run *holes;
	size_t n_holes, cap_holes;
	uint64_t hole_pages, punch_pages;
};

static uint64_t page_key(uint32_t space, uint64_t addr)
{
	/* space < 2^22 (pid_max), addr >> 12 < 2^35: never 0 */
	return ((uint64_t)space << 36 | (addr >> 12)) + 1;
}

static uint64_t hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

int mem_store_new(uint64_t max_bytes, struct mem_store **ret)
{
	struct mem_store *s;
	int r;

	max_bytes &= ~(DM_PAGE_SIZE - 1);
	if (max_bytes < DM_PAGE_SIZE)
		return -EINVAL;
	s = xcalloc(1, sizeof(*s));
	s->fd = memfd_create("dmigrate-store", MFD_CLOEXEC);
	if (s->fd < 0) {
		r = neg_errno();
		free(s);
		return dm_fail(r, "memfd_create: %s", strerror(-r));
	}
	if (ftruncate(s->fd, max_bytes) < 0) {
		r = neg_errno();
		goto fail;
	}
	s->base = mmap(NULL, max_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, s->fd, 0);
	if (s->base == MAP_FAILED) {
		r = neg_errno();
		s->base = NULL;
		goto fail;
	}
	s->max_slots = max_bytes / DM_PAGE_SIZE;
	s->punch_pages = STORE_PUNCH_PAGES;
	const char *pp = getenv("DMIGRATE_STORE_PUNCH_PAGES");
	unsigned long v;
	if (pp && *pp && parse_ulong(pp, &v) == 0 && v >= 1)
		s->punch_pages = v;
	s->tab_size = 1 << 16;
	s->tab = xcalloc(s->tab_size, sizeof(*s->tab));
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &a);
	pthread_rwlockattr_destroy(&a);
	*ret = s;
	return 0;
fail:
	close(s->fd);
	free(s);
	return dm_fail(r, "page store of %" PRIu64 " MiB: %s", max_bytes >> 20, strerror(-r));
}

void mem_store_free(struct mem_store *s)
{
	if (!s)
		return;
	if (s->base)
		munmap(s->base, s->max_slots * DM_PAGE_SIZE);
	close(s->fd);
	free(s->tab);
	free(s->holes);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

/* lock held (any mode) */
static struct store_ent *lookup(struct mem_store *s, uint64_t key)
{
	uint64_t mask = s->tab_size - 1;
	for (uint64_t i = hash64(key) & mask;; i = (i + 1) & mask) {
		struct store_ent *e = &s->tab[i];
		if (e->key == key)
			return e;
		if (e->key == 0)
			return NULL;
	}
}

/* write lock held */
static void grow(struct mem_store *s)
{
	struct store_ent *old = s->tab;
	uint64_t n = s->tab_size;

	s->tab_size *= 2;
	s->tab = xcalloc(s->tab_size, sizeof(*s->tab));
	s->tab_used = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (!old[i].key || old[i].slot == SLOT_NONE)
			continue;
		uint64_t mask = s->tab_size - 1, k = hash64(old[i].key) & mask;
		while (s->tab[k].key)
			k = (k + 1) & mask;
		s->tab[k] = old[i];
		s->tab_used++;
	}
	free(old);
}

/* write lock held: the slot of a page, allocating one if new */
static int slot_for(struct mem_store *s, uint64_t key, uint32_t *ret)
{
	struct store_ent *e = lookup(s, key);
	if (e && e->slot != SLOT_NONE) {
		*ret = e->slot;
		return 0;
	}
	if (s->next_slot >= s->max_slots || s->next_slot >= SLOT_NONE)
		return -ENOSPC;
	if (!e) {
		if ((s->tab_used + 1) * 2 > s->tab_size)
			grow(s);
		uint64_t mask = s->tab_size - 1, i = hash64(key) & mask;
		while (s->tab[i].key)
			i = (i + 1) & mask;
		e = &s->tab[i];
		e->key = key;
		s->tab_used++;
	}
	e->slot = (uint32_t)s->next_slot++;
	atomic_fetch_add(&s->pages, 1);
	*ret = e->slot;
	return 0;
}

int mem_store_recv(struct mem_store *s, struct net_chan *c, const struct net_wire_pages *h)
{
	struct iovec iov[MEM_FRAME_PAGES_MAX];
	int r = 0;

	if (h->npages == 0 || h->npages > MEM_FRAME_PAGES_MAX || !PAGE_ALIGNED(h->addr) ||
	    h->addr >= MEM_ADDR_LIMIT || h->npages > (MEM_ADDR_LIMIT - h->addr) / DM_PAGE_SIZE ||
	    h->space == 0 || h->space >= (1u << 22))
		return dm_fail(-EBADMSG, "pages frame %#" PRIx64 "+%u of space %u is out of range", h->addr,
			       h->npages, h->space);
	pthread_rwlock_wrlock(&s->lock);
	for (uint32_t i = 0; i < h->npages; i++) {
		uint32_t slot;
		r = slot_for(s, page_key(h->space, h->addr + (uint64_t)i * DM_PAGE_SIZE), &slot);
		if (r < 0)
			break;
		iov[i].iov_base = s->base + (uint64_t)slot * DM_PAGE_SIZE;
		iov[i].iov_len = DM_PAGE_SIZE;
	}
	pthread_rwlock_unlock(&s->lock);
	if (r < 0)
		return dm_fail(r, "the page store is full (%" PRIu64 " MiB): the peer sent more than announced",
			       s->max_slots * DM_PAGE_SIZE >> 20);
	/* Slots are never reused, so writing them without the lock is safe:
	 * readers only look at pages once their frame is complete (phases). */
	return net_recv_bodyv(c, iov, (int)h->npages);
}

const void *mem_store_page(struct mem_store *s, uint32_t space, uint64_t addr, uint32_t max_run,
			   uint32_t *ret_run)
{
	const void *p = NULL;
	uint32_t run = 0;

	pthread_rwlock_rdlock(&s->lock);
	struct store_ent *e = lookup(s, page_key(space, addr));
	if (e && e->slot != SLOT_NONE) {
		p = s->base + (uint64_t)e->slot * DM_PAGE_SIZE;
		run = 1;
		while (run < max_run) {
			struct store_ent *n = lookup(s, page_key(space, addr + (uint64_t)run * DM_PAGE_SIZE));
			if (!n || n->slot != e->slot + run)
				break;
			run++;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	if (ret_run)
		*ret_run = run;
	return p;
}

void mem_store_drop(struct mem_store *s, uint32_t space, uint64_t addr)
{
	pthread_rwlock_wrlock(&s->lock);
	struct store_ent *e = lookup(s, page_key(space, addr));
	if (e && e->slot != SLOT_NONE) {
		e->slot = SLOT_NONE;
		atomic_fetch_sub(&s->pages, 1);
	}
	pthread_rwlock_unlock(&s->lock);
}

static int cmp_run(const void *a, const void *b)
{
	const struct slot_run *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Every released slot of holes[] back to the kernel, runs merged; no lock
 * held: a released slot is never handed out again, and none is read any
 * more once released by a caller that may punch (lazy.c lets the
 * background install punch only while the space has no fork, whose fault
 * could still be copying from the slot into the fork's own page). */
static void punch_holes(struct mem_store *s, struct slot_run *holes, size_t n_holes)
{
	if (!n_holes)
		return;
	qsort(holes, n_holes, sizeof(*holes), cmp_run);
	struct slot_run cur = holes[0];
	for (size_t i = 1; i <= n_holes; i++) {
		if (i < n_holes && holes[i].first == cur.first + cur.n) {
			cur.n += holes[i].n;
			continue;
		}
		fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, cur.first * DM_PAGE_SIZE,
			  cur.n * DM_PAGE_SIZE);
		if (i < n_holes)
			cur = holes[i];
	}
}

/* write lock held */
static void add_hole(struct mem_store *s, uint64_t first, uint64_t n)
{
	struct slot_run *last = s->n_holes ? &s->holes[s->n_holes - 1] : NULL;
	if (last && last->first + last->n == first) {
		last->n += n;
	} else if (last && first + n == last->first) {
		last->first = first;
		last->n += n;
	} else {
		if (s->n_holes == s->cap_holes) {
			s->cap_holes = s->cap_holes ? s->cap_holes * 2 : 256;
			s->holes = xrealloc(s->holes, s->cap_holes * sizeof(*s->holes));
		}
		s->holes[s->n_holes++] = (struct slot_run){ first, n };
	}
	s->hole_pages += n;
}

void mem_store_release(struct mem_store *s, uint32_t space, uint64_t addr, uint32_t npages, bool may_punch)
{
	uint64_t first = UINT64_MAX, n = 0;
	struct slot_run *batch = NULL;
	size_t n_batch = 0;

	pthread_rwlock_wrlock(&s->lock);
	for (uint32_t i = 0; i <= npages; i++) {
		struct store_ent *e = i < npages ? lookup(s, page_key(space, addr + (uint64_t)i * DM_PAGE_SIZE)) : NULL;
		uint64_t slot = e && e->slot != SLOT_NONE ? e->slot : UINT64_MAX;
		if (slot != UINT64_MAX && first != UINT64_MAX && slot == first + n) {
			n++;
		} else {
			if (first != UINT64_MAX)
				add_hole(s, first, n);
			first = slot;
			n = slot != UINT64_MAX;
		}
		if (e && e->slot != SLOT_NONE) {
			e->slot = SLOT_NONE;
			atomic_fetch_sub(&s->pages, 1);
		}
	}
	if (may_punch && s->hole_pages >= s->punch_pages) {
		/* the batch is ours; the punch runs unlocked (a fault's lookup
		 * must not wait for it) */
		batch = s->holes;
		n_batch = s->n_holes;
		s->holes = NULL;
		s->n_holes = s->cap_holes = 0;
		s->hole_pages = 0;
	}
	pthread_rwlock_unlock(&s->lock);
	punch_holes(s, batch, n_batch);
	free(batch);
}

uint64_t mem_store_pages(const struct mem_store *s)
{
	return atomic_load(&s->pages);
}
