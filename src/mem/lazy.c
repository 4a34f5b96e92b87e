/* SPDX-License-Identifier: MIT */
/*
 * mem_lazy: the destination's userfaultfd handler (post-copy, local lazy
 * restore, and the pre-resume fill of stop-and-copy and pre-copy).
 *
 * One struct lazy_mm per userfaultfd, i.e. per address space: the restored
 * processes (from the restore engine's lazy hook) and their forks (from
 * UFFD_EVENT_FORK).  Its `need` pageset has the lazy pages of its space as
 * regions, and a bit set once the page is installed or no longer wanted
 * (removed, unmapped).
 *
 *   uffd thread    poll(every uffd) -> read events:
 *                    PAGEFAULT  bit clear: local copy? install : ask the
 *                               remote side (page + neighbour window);
 *                               bit set or not lazy: UFFDIO_ZEROPAGE (a
 *                               page that never existed, or was removed;
 *                               EEXIST = it raced with an install: wake)
 *                    FORK       new lazy_mm, bits copied from the parent
 *                    REMOVE/UNMAP  bits set: never install there
 *                    REMAP      translate the moved range
 *   any thread     mem_lazy_install(): UFFDIO_COPY of the still missing
 *                  runs into every address space of the space
 *   push thread    (local sources) installs everything local() has
 *
 * Why installs and events are ordered by a rwlock: a REMOVE (madvise
 * DONTNEED) is announced before the kernel zaps the range; an install that
 * checked its bit before we marked the range, and copies after the zap,
 * would bring back data the process threw away.  The kernel makes copies
 * fail with EAGAIN from the moment such an event (or a fork) is queued until
 * we read it; we read events only under the write lock and mark the range
 * before releasing it, and installs hold the read lock from the bit test to
 * the copy.  So an install either ran before the event was queued (the zap
 * removes its page), or sees the bit.  The same holds for FORK: the child's
 * bits copied under the write lock are exactly what the fork copied.
 * Installs are cut into INSTALL_CHUNK pages per lock hold so that the uffd
 * thread (a fault waiting) never waits long for the write lock.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/faulttrace.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/testpoint.h"
#include "restore/restore.h"
#include "compat.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>

#define INSTALL_CHUNK 16u
#define PENDING_MAX 4096
#define MAX_MMS 4096
#define REMAPS_MAX 64

struct remap {
	uint64_t src, dst, len; /* source pages [src, src+len) are at [dst, dst+len) now */
};

struct lazy_mm {
	uint32_t space;
	pid_t host_pid;            /* 0 for forks */
	int uffd;
	bool child;
	_Atomic bool gone;         /* the address space is gone (or cannot be served) */
	_Atomic int refs;          /* holders outside plock (installers): not freed while > 0 */
	struct pageset need;
	struct restore_lazy_area *areas;
	size_t n_areas;
	/* neighbour window (uffd thread only) */
	uint64_t last_fault;
	unsigned window;
	int dir;
	/* moved ranges (write lock to change, read lock to use) */
	struct remap remaps[REMAPS_MAX];
	size_t n_remaps;
	bool remap_lost;           /* a move we could not follow: pages may be lost */
};

struct pending {
	struct lazy_mm *mm;
	uint64_t addr;             /* source address of the page */
	uint64_t t0;               /* ns */
	long rec;                  /* its fault trace record, or -1 */
};

struct mem_lazy {
	struct mem_lazy_opts o;
	pthread_rwlock_t lock;
	pthread_mutex_t plock;     /* mms[], pending[] */
	struct lazy_mm **mms;
	size_t n_mms, cap_mms;
	struct pending pending[PENDING_MAX];
	size_t n_pending;
	_Atomic size_t n_pending_hint; /* n_pending, readable without plock */
	int efd;
	pthread_t uffd_thread, push_thread;
	bool uffd_started, push_started;
	/* the uffd thread is made with the handler (mem_lazy_new: before the
	 * state comes, out of the downtime) and waits here until
	 * mem_lazy_start() opens the gate (or mem_lazy_free() stops it) */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	_Atomic bool serving;
	_Atomic bool push_active; /* the local push has not ended (mem_lazy_local_push_active) */
	_Atomic bool stop;
	struct dm_errbox err; /* the first error of a handler thread, with its message */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;
	uint64_t total;            /* lazy pages of the original spaces */
	/* stats */
	_Atomic uint64_t pages[_MEM_FROM_MAX];
	_Atomic uint64_t faults, faults_remote, zero_pages, forks, removes, unmaps, remaps, eexist, absent,
		local_fallbacks;
	uint64_t reaped;           /* forks that ended, freed (uffd thread only) */
	uint64_t last_reap_ns;
	struct mem_hist hist;
	/* the slowest fault (plock): when it came (clock_ns), where */
	uint64_t slowest_ns, slowest_t0, slowest_addr;
	uint64_t slowest_install_ns; /* of it: from its reply's arrival (0: unknown) */
	uint32_t slowest_space;
	struct fault_trace *trace; /* NULL: off (faulttrace.h) */
	/* tests: hold the first local fault (dst-lazy-local-fault), uffd thread only */
	bool hold_local_fault;
};

static void wake_waiters(struct mem_lazy *l)
{
	pthread_mutex_lock(&l->done_lock);
	pthread_cond_broadcast(&l->done_cond);
	pthread_mutex_unlock(&l->done_lock);
}

void mem_lazy_fail(struct mem_lazy *l, int err)
{
	dm_errbox_put(&l->err, err);
	wake_waiters(l);
}

static void *uffd_thread(void *arg);

int mem_lazy_new(const struct mem_lazy_opts *o, struct mem_lazy **ret)
{
	struct mem_lazy *l = xcalloc(1, sizeof(*l));
	dm_errbox_init(&l->err);
	pthread_rwlockattr_t a;

	l->o = *o;
	if (!l->o.window_min)
		l->o.window_min = 4;
	if (!l->o.window_max || l->o.window_max > MEM_WINDOW_MAX)
		l->o.window_max = MEM_WINDOW_MAX;
	if (l->o.window_min > l->o.window_max)
		l->o.window_min = l->o.window_max;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->lock, &a);
	pthread_rwlockattr_destroy(&a);
	pthread_mutex_init(&l->plock, NULL);
	pthread_mutex_init(&l->done_lock, NULL);
	pthread_cond_init(&l->done_cond, NULL);
	l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->efd < 0) {
		int r = neg_errno();
		free(l);
		return r;
	}
	l->trace = fault_trace_from_env();
	l->hold_local_fault = dm_test_listed("dst-lazy-local-fault");
	pthread_mutex_init(&l->gate_lock, NULL);
	pthread_cond_init(&l->gate_cond, NULL);
	/* every signal blocked in it: a process-directed one (the SIGINT a
	 * `restore --lazy` reports through its signalfd, blocked by the caller
	 * after this) must never be taken by the handler's thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = -pthread_create(&l->uffd_thread, NULL, uffd_thread, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		mem_lazy_free(l);
		return r;
	}
	l->uffd_started = true;
	pthread_setname_np(l->uffd_thread, "dm-uffd"); /* in traces and top -H */
	*ret = l;
	return 0;
}

static void add_mm(struct mem_lazy *l, struct lazy_mm *mm)
{
	pthread_mutex_lock(&l->plock);
	if (l->n_mms == l->cap_mms) {
		l->cap_mms = l->cap_mms ? l->cap_mms * 2 : 8;
		l->mms = xrealloc(l->mms, l->cap_mms * sizeof(*l->mms));
	}
	l->mms[l->n_mms++] = mm;
	pthread_mutex_unlock(&l->plock);
	uint64_t one = 1;
	ssize_t w = write(l->efd, &one, sizeof(one));
	(void)w;
}

int mem_lazy_add(struct mem_lazy *l, const struct restore_lazy_proc *lp)
{
	struct lazy_mm *mm;
	int r;

	if (lp->uffd < 0)
		return -EBADF;
	if (l->n_mms >= MAX_MMS) {
		close(lp->uffd);
		return dm_fail(-E2BIG, "too many address spaces to serve");
	}
	mm = xcalloc(1, sizeof(*mm));
	mm->space = lp->pid;
	mm->host_pid = lp->host_pid;
	mm->uffd = lp->uffd;
	r = pageset_from_pagemap(&mm->need, lp->img, true);
	if (r < 0) {
		close(mm->uffd);
		free(mm);
		return r;
	}
	mm->n_areas = lp->n_areas;
	mm->areas = xcalloc(lp->n_areas ? lp->n_areas : 1, sizeof(*mm->areas));
	memcpy(mm->areas, lp->areas, lp->n_areas * sizeof(*mm->areas));
	mm->window = l->o.window_min;
	/* our reads of events never block: the uffd thread polls */
	int fl = fcntl(mm->uffd, F_GETFL);
	if (fl >= 0)
		fcntl(mm->uffd, F_SETFL, fl | O_NONBLOCK);
	l->total += mm->need.total;
	add_mm(l, mm);
	pr_debug("serving process %d (host %d): %" PRIu64 " lazy pages in %zu regions, %zu areas", mm->space,
		 mm->host_pid, mm->need.total, mm->need.n, mm->n_areas);
	return 0;
}

bool mem_lazy_has_space(struct mem_lazy *l, uint32_t space)
{
	bool found = false;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms && !found; i++)
		found = l->mms[i]->space == space && !l->mms[i]->child;
	pthread_mutex_unlock(&l->plock);
	return found;
}

/* Address in the process of a source address (read lock held). */
static uint64_t to_dst(const struct lazy_mm *mm, uint64_t a)
{
	for (size_t i = 0; i < mm->n_remaps; i++) {
		const struct remap *m = &mm->remaps[i];
		if (a >= m->src && a < m->src + m->len)
			return m->dst + (a - m->src);
	}
	return a;
}

/* Source address of a faulting address; false if it has none (moved away). */
static bool to_src(const struct lazy_mm *mm, uint64_t d, uint64_t *ret)
{
	for (size_t i = 0; i < mm->n_remaps; i++) {
		const struct remap *m = &mm->remaps[i];
		if (d >= m->dst && d < m->dst + m->len) {
			*ret = m->src + (d - m->dst);
			return true;
		}
	}
	for (size_t i = 0; i < mm->n_remaps; i++) {
		const struct remap *m = &mm->remaps[i];
		if (d >= m->src && d < m->src + m->len)
			return false;
	}
	*ret = d;
	return true;
}

/* A source run [a, a+n) may be installed in one UFFDIO_COPY only if no moved range cuts it. */
static uint32_t contiguous_dst(const struct lazy_mm *mm, uint64_t a, uint32_t n)
{
	if (!mm->n_remaps)
		return n;
	uint64_t d0 = to_dst(mm, a);
	uint32_t k = 1;
	while (k < n && to_dst(mm, a + (uint64_t)k * DM_PAGE_SIZE) == d0 + (uint64_t)k * DM_PAGE_SIZE)
		k++;
	return k;
}

static void resolve_pending(struct mem_lazy *l, struct lazy_mm *mm, uint64_t addr, uint64_t npages, uint64_t t_in)
{
	uint64_t now = 0;

	if (!atomic_load_explicit(&l->n_pending_hint, memory_order_relaxed))
		return;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_pending;) {
		struct pending *p = &l->pending[i];
		if (p->mm == mm && p->addr >= addr && p->addr < addr + npages * DM_PAGE_SIZE) {
			if (!now)
				now = clock_ns();
			mem_hist_add(&l->hist, (now - p->t0) / 1000);
			if (p->rec >= 0)
				fault_trace_set_latency(l->trace, p->rec, (now - p->t0) / 1000);
			if (now - p->t0 > l->slowest_ns) {
				l->slowest_ns = now - p->t0;
				l->slowest_t0 = p->t0;
				l->slowest_addr = p->addr;
				l->slowest_space = mm->space;
				l->slowest_install_ns = t_in && now > t_in ? now - t_in : 0;
			}
			l->pending[i] = l->pending[--l->n_pending];
			atomic_store(&l->n_pending_hint, l->n_pending);
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&l->plock);
}

static bool mm_done(const struct lazy_mm *mm)
{
	return atomic_load(&mm->gone) || pageset_full(&mm->need);
}

bool mem_lazy_done(struct mem_lazy *l)
{
	bool done = true;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms && done; i++)
		done = mm_done(l->mms[i]);
	pthread_mutex_unlock(&l->plock);
	return done;
}

static void mark_gone(struct mem_lazy *l, struct lazy_mm *mm, const char *why)
{
	if (!atomic_exchange(&mm->gone, true)) {
		pr_debug("address space of process %d%s is gone (%s)", mm->space, mm->child ? " (fork)" : "", why);
		resolve_pending(l, mm, 0, MEM_ADDR_LIMIT / DM_PAGE_SIZE, 0);
		wake_waiters(l);
	}
}

/*
 * Install pages [addr, addr+n) (source addresses) into
 * one address space.  Read lock held.  Returns pages newly installed, or
 * -EAGAIN (retry after dropping the lock), or another -errno.
 */
static long install_chunk(struct mem_lazy *l, struct lazy_mm *mm, uint64_t addr, uint32_t n,
			  const uint8_t *data)
/* n <= MEM_FRAME_PAGES_MAX */
{
	long newly = 0;

	for (uint32_t i = 0; i < n && !atomic_load(&mm->gone);) {
		uint64_t a = addr + (uint64_t)i * DM_PAGE_SIZE;
		if (pageset_test(&mm->need, a)) {
			i++;
			continue;
		}
		uint32_t run = 1;
		while (i + run < n && !pageset_test(&mm->need, a + (uint64_t)run * DM_PAGE_SIZE))
			run++;
		run = contiguous_dst(mm, a, run);
		struct uffdio_copy c = {
			.dst = to_dst(mm, a),
			.src = (uint64_t)(data + (uint64_t)i * DM_PAGE_SIZE),
			.len = (uint64_t)run * DM_PAGE_SIZE,
		};
		int e = ioctl(mm->uffd, UFFDIO_COPY, &c) < 0 ? errno : 0;
		uint64_t done = c.copy > 0 ? (uint64_t)c.copy / DM_PAGE_SIZE : 0;
		for (uint64_t k = 0; k < done; k++)
			if (!pageset_set(&mm->need, a + k * DM_PAGE_SIZE))
				newly++;
		if (done)
			resolve_pending(l, mm, a, done, 0);
		if (!e) {
			i += run;
			continue;
		}
		i += done;
		a += done * DM_PAGE_SIZE;
		switch (e) {
		case EEXIST:
			/* installed by another path (or eagerly by the restore): harmless */
			atomic_fetch_add(&l->eexist, 1);
			if (!pageset_set(&mm->need, a))
				newly++;
			resolve_pending(l, mm, a, 1, 0);
			i++;
			break;
		case ENOENT:
			if (run - done > 1) {
				/* the process split the VMA (mprotect...): one page at a time */
				for (uint32_t k = 0; k < run - done && !atomic_load(&mm->gone); k++) {
					uint64_t b = a + (uint64_t)k * DM_PAGE_SIZE;
					struct uffdio_copy one = {
						.dst = to_dst(mm, b),
						.src = (uint64_t)(data + (uint64_t)(i + k) * DM_PAGE_SIZE),
						.len = DM_PAGE_SIZE,
					};
					int e1 = ioctl(mm->uffd, UFFDIO_COPY, &one) < 0 ? errno : 0;
					if (e1 == EAGAIN)
						return newly ? newly : -EAGAIN;
					if (e1 == ESRCH) {
						mark_gone(l, mm, "exited");
						return newly;
					}
					if (e1 && e1 != EEXIST && e1 != ENOENT)
						return dm_fail(-e1, "UFFDIO_COPY %#" PRIx64 " of process %d: %s", b,
							       mm->space, strerror(e1));
					/* ENOENT for one page: unmapped or not registered any more */
					if (!pageset_set(&mm->need, b))
						newly++;
					resolve_pending(l, mm, b, 1, 0);
				}
				i += run - done;
				break;
			}
			/* not registered any more (unmapped, replaced): nothing to serve */
			if (!pageset_set(&mm->need, a))
				newly++;
			resolve_pending(l, mm, a, 1, 0);
			i++;
			break;
		case ESRCH:
			mark_gone(l, mm, "exited");
			return newly;
		case EAGAIN:
			/* an address-space event is queued: read it first */
			return newly ? newly : -EAGAIN;
		default:
			return dm_fail(-e, "UFFDIO_COPY %#" PRIx64 " of process %d: %s", a, mm->space, strerror(e));
		}
	}
	return newly;
}

/*
 * Snapshot of the live address spaces of a space (the list may grow
 * meanwhile), each held (refs) until put_mms(): the uffd thread frees the
 * spaces of ended forks only when nobody holds them.
 */
static size_t mms_of_space(struct mem_lazy *l, uint32_t space, struct lazy_mm ***ret, bool *known)
{
	struct lazy_mm **out = NULL;
	size_t n = 0, cap = 0;

	*known = false;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms; i++) {
		struct lazy_mm *mm = l->mms[i];
		if (mm->space != space)
			continue;
		*known = true;
		if (atomic_load(&mm->gone))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			out = xrealloc(out, cap * sizeof(*out));
		}
		atomic_fetch_add(&mm->refs, 1);
		out[n++] = mm;
	}
	pthread_mutex_unlock(&l->plock);
	*ret = out;
	return n;
}

static void put_mms(struct lazy_mm **mms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_fetch_sub(&mms[i]->refs, 1);
	free(mms);
}

/*
 * wait: on EAGAIN (an address-space event queued on the uffd), wait for the
 * uffd thread to read it and go on; else return -EAGAIN.  The uffd thread
 * itself must never wait so: it is the one that reads the events, and it
 * would wait for itself (a local fault's install, hybrid's or post-copy's
 * store: the push, the fault replies and the uffd thread then all slept on
 * EAGAIN for good while a thread of the tree exiting held its REMOVE event).
 */
static int install_mm(struct mem_lazy *l, struct lazy_mm *mm, uint64_t addr, uint32_t npages,
		      const uint8_t *data, enum mem_origin origin, bool wait)
{
	/* short lock holds only while the uffd thread may wait for the write lock */
	uint32_t chunk = atomic_load(&l->serving) ? INSTALL_CHUNK : MEM_FRAME_PAGES_MAX;
	for (uint32_t i = 0; i < npages && !atomic_load(&mm->gone);) {
		uint32_t n = MIN(npages - i, chunk);
		pthread_rwlock_rdlock(&l->lock);
		long k = install_chunk(l, mm, addr + (uint64_t)i * DM_PAGE_SIZE, n, data + (uint64_t)i * DM_PAGE_SIZE);
		pthread_rwlock_unlock(&l->lock);
		/* a background installer (the push's receiver) pauses between
		 * chunks, no lock held: a frame of fresh pages is ms of CPU */
		thread_background_breathe();
		if (k == -EAGAIN) {
			if (!wait)
				return -EAGAIN;
			struct timespec ts = { 0, 50 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (k < 0)
			return (int)k;
		if (!mm->child)
			atomic_fetch_add(&l->pages[origin], (uint64_t)k);
		/* the chunk may be partly done after EAGAIN: install_chunk skips set bits */
		bool chunk_done = true;
		for (uint32_t j = 0; j < n && chunk_done; j++)
			chunk_done = pageset_test(&mm->need, addr + (uint64_t)(i + j) * DM_PAGE_SIZE) ||
				     atomic_load(&mm->gone);
		if (chunk_done)
			i += n;
	}
	if (mm_done(mm))
		wake_waiters(l);
	return 0;
}

/*
 * The live address spaces of space (held: put_mms) for a range a peer sent:
 * -ESRCH for a space not restored here, -EBADMSG for a range that is not
 * lazy memory of it (what: the kind of pages, for the message).
 */
static int peer_range_mms(struct mem_lazy *l, uint32_t space, uint64_t addr, uint64_t npages, const char *what,
			  struct lazy_mm ***ret, size_t *ret_n)
{
	bool known;
	size_t n = mms_of_space(l, space, ret, &known);
	int r = 0;

	if (!known)
		r = dm_fail(-ESRCH, "%s for address space %u, which is not being restored", what, space);
	else if (npages == 0 || !PAGE_ALIGNED(addr) || addr >= MEM_ADDR_LIMIT ||
		 npages > (MEM_ADDR_LIMIT - addr) / DM_PAGE_SIZE)
		r = dm_fail(-EBADMSG, "bad range of %s %#" PRIx64 "+%" PRIu64, what, addr, npages);
	/* forks share the regions of their parent */
	else if (n && !pageset_covers(&(*ret)[0]->need, addr, npages))
		r = dm_fail(-EBADMSG, "%s %#" PRIx64 "+%" PRIu64 " of process %u are not lazy memory", what, addr,
			    npages, space);
	if (r < 0) {
		put_mms(*ret, n);
		*ret = NULL;
		n = 0;
	}
	*ret_n = n;
	return r;
}

static int lazy_install(struct mem_lazy *l, uint32_t space, uint64_t addr, uint32_t npages, const void *data,
			enum mem_origin origin, bool wait)
{
	struct lazy_mm **mms;
	size_t n;
	uint64_t t_in = origin == MEM_FROM_FAULT ? clock_ns() : 0;
	int r = peer_range_mms(l, space, addr, npages, "pages", &mms, &n);

	for (size_t i = 0; i < n && r >= 0; i++) {
		r = install_mm(l, mms[i], addr, npages, data, origin, wait);
		/* a reply for pages that came by another way (or were absent) */
		if (r >= 0 && origin == MEM_FROM_FAULT)
			resolve_pending(l, mms[i], addr, npages, t_in);
	}
	put_mms(mms, n);
	return r;
}

int mem_lazy_install(struct mem_lazy *l, uint32_t space, uint64_t addr, uint32_t npages,
		     const void *data, enum mem_origin origin)
{
	return lazy_install(l, space, addr, npages, data, origin, true);
}

/* Wake the threads waiting on source range [addr, addr+npages) wherever it is now. */
static void wake_range(struct lazy_mm *mm, uint64_t addr, uint64_t npages)
{
	uint64_t end = addr + npages * DM_PAGE_SIZE;
	struct uffdio_range w = { addr, npages * DM_PAGE_SIZE };

	ioctl(mm->uffd, UFFDIO_WAKE, &w);
	for (size_t i = 0; i < mm->n_remaps; i++) {
		const struct remap *m = &mm->remaps[i];
		uint64_t lo = MAX(addr, m->src), hi = MIN(end, m->src + m->len);
		if (lo >= hi)
			continue;
		w = (struct uffdio_range){ m->dst + (lo - m->src), hi - lo };
		ioctl(mm->uffd, UFFDIO_WAKE, &w);
	}
}

int mem_lazy_absent(struct mem_lazy *l, uint32_t space, uint64_t addr, uint64_t npages)
{
	struct lazy_mm **mms;
	size_t n;
	int r = peer_range_mms(l, space, addr, npages, "absent pages", &mms, &n);

	for (size_t i = 0; i < n && r == 0; i++) {
		struct lazy_mm *mm = mms[i];
		/*
		 * Under the read lock like an install.  A thread may be waiting
		 * on one of these pages, its request already out: the reply will
		 * find the bit set and install nothing, so wake it here; it
		 * faults again and gets the zero page.
		 */
		pthread_rwlock_rdlock(&l->lock);
		uint64_t before = atomic_load(&mm->need.count);
		pageset_set_range(&mm->need, addr, npages);
		uint64_t newly = atomic_load(&mm->need.count) - before;
		wake_range(mm, addr, npages);
		pthread_rwlock_unlock(&l->lock);
		resolve_pending(l, mm, addr, npages, 0);
		if (!mm->child)
			atomic_fetch_add(&l->absent, newly);
		if (mm_done(mm))
			wake_waiters(l);
	}
	put_mms(mms, n);
	return r;
}

/* Install what a local source has of [addr, addr+npages) into mm; pages it installed. */
/* Has the space a fork (registered, alive or not yet reaped)? */
static bool space_has_forks(struct mem_lazy *l, uint32_t space)
{
	bool forks = false;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms && !forks; i++)
		forks = l->mms[i]->child && l->mms[i]->space == space;
	pthread_mutex_unlock(&l->plock);
	return forks;
}

static long install_local(struct mem_lazy *l, struct lazy_mm *mm, uint64_t addr, uint32_t npages,
			  enum mem_origin origin, bool wait)
{
	long got = 0;
	for (uint32_t i = 0; i < npages;) {
		uint64_t a = addr + (uint64_t)i * DM_PAGE_SIZE;
		uint32_t run = 0;
		const void *p = l->o.ops.local(l->o.ops.ctx, mm->space, a, npages - i, &run);
		if (!p || !run) {
			i++;
			continue;
		}
		int r = lazy_install(l, mm->space, a, run, p, origin, wait);
		if (r < 0)
			return r;
		/* the slots may be punched (given back) only by the background
		 * install and only while the space has no fork: a fork's fault
		 * may be copying from the same slot into the fork's own page,
		 * which this install did not fill (mem/store.c) */
		if (l->o.ops.local_done)
			l->o.ops.local_done(l->o.ops.ctx, mm->space, a, run, wait && !space_has_forks(l, mm->space));
		got += run;
		i += run;
	}
	return got;
}

int mem_lazy_fill_local(struct mem_lazy *l, uint32_t space)
{
	struct lazy_mm *mm = NULL;

	if (!l->o.ops.local)
		return -ENODATA;
	pthread_mutex_lock(&l->plock);
	for (size_t i = l->n_mms; i-- > 0;)
		if (l->mms[i]->space == space && !l->mms[i]->child) {
			mm = l->mms[i];
			break;
		}
	pthread_mutex_unlock(&l->plock);
	if (!mm)
		return -ESRCH;
	for (size_t ri = 0; ri < mm->need.n; ri++) {
		const struct pageset_region *rg = &mm->need.r[ri];
		for (uint64_t k = 0; k < rg->npages; k += MEM_FRAME_PAGES_MAX) {
			uint32_t n = (uint32_t)MIN(rg->npages - k, (uint64_t)MEM_FRAME_PAGES_MAX);
			long r = install_local(l, mm, rg->start + k * DM_PAGE_SIZE, n, MEM_FROM_LOCAL, true);
			if (r < 0)
				return (int)r;
		}
	}
	if (!mm_done(mm)) {
		uint64_t a = 0;
		pageset_next_clear(&mm->need, 0, &a);
		return dm_fail(-ENODATA, "process %u: %" PRIu64 " pages never arrived (first %#" PRIx64 ")", space,
			       mm->need.total - atomic_load(&mm->need.count), a);
	}
	return 0;
}

bool mem_uffd_has(uint64_t f)
{
	_cleanup_close_ int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API };

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0)
		return false;
	return (api.features & f) == f;
}

bool mem_fault_trace_wanted(void)
{
	const char *tp = getenv("DMIGRATE_FAULT_TRACE");
	return tp && *tp;
}

void mem_lazy_trace_origin(struct mem_lazy *l, uint64_t ns)
{
	if (l)
		fault_trace_origin(l->trace, ns);
}

/* Write the trace (uffd thread, or after it stopped), with the maps of the
 * restored processes (not their forks). */
static void trace_write(struct mem_lazy *l)
{
	if (!l->trace)
		return;
	pthread_mutex_lock(&l->plock);
	_cleanup_free_ struct fault_trace_proc *procs = xcalloc(l->n_mms ? l->n_mms : 1, sizeof(*procs));
	size_t n = 0;
	for (size_t i = 0; i < l->n_mms; i++)
		if (!l->mms[i]->child && l->mms[i]->host_pid)
			procs[n++] = (struct fault_trace_proc){ l->mms[i]->space, l->mms[i]->host_pid };
	pthread_mutex_unlock(&l->plock);
	fault_trace_write(l->trace, procs, n);
}

/* ---- the uffd thread ---------------------------------------------------- */

static bool in_areas(const struct lazy_mm *mm, uint64_t a)
{
	for (size_t i = 0; i < mm->n_areas; i++)
		if (a >= mm->areas[i].start && a < mm->areas[i].end)
			return true;
	return mm->child || mm->n_areas == 0;
}

static void zero_page(struct mem_lazy *l, struct lazy_mm *mm, uint64_t dst)
{
	struct uffdio_zeropage z = { .range = { dst, DM_PAGE_SIZE } };
	if (ioctl(mm->uffd, UFFDIO_ZEROPAGE, &z) == 0) {
		atomic_fetch_add(&l->zero_pages, 1);
		return;
	}
	if (errno == EEXIST || errno == EAGAIN) {
		/* present already (raced with an install): let the thread go on */
		struct uffdio_range w = { dst, DM_PAGE_SIZE };
		ioctl(mm->uffd, UFFDIO_WAKE, &w);
	} else if (errno == ESRCH) {
		mark_gone(l, mm, "exited");
	} else if (errno != ENOENT) {
		pr_warn("UFFDIO_ZEROPAGE %#" PRIx64 " of process %u: %m", dst, mm->space);
	}
}

static bool add_pending(struct mem_lazy *l, struct lazy_mm *mm, uint64_t a, long rec)
{
	bool fresh = true;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_pending; i++)
		if (l->pending[i].mm == mm && l->pending[i].addr == a)
			fresh = false;
	if (fresh && l->n_pending < PENDING_MAX) {
		l->pending[l->n_pending++] = (struct pending){ mm, a, clock_ns(), rec };
		atomic_store(&l->n_pending_hint, l->n_pending);
	}
	pthread_mutex_unlock(&l->plock);
	return fresh;
}

/* The neighbour window: grows while faults walk through memory in one
 * direction, shrinks when they jump around. */
static void window_for(struct mem_lazy *l, struct lazy_mm *mm, uint64_t a, uint64_t *ret_start,
		       uint32_t *ret_n)
{
	uint64_t w = mm->window, last = mm->last_fault;
	int dir = 0;

	if (last && a > last && a - last <= (w + 2) * DM_PAGE_SIZE)
		dir = 1;
	else if (last && a < last && last - a <= (w + 2) * DM_PAGE_SIZE)
		dir = -1;
	if (dir && (dir == mm->dir || mm->dir == 0))
		mm->window = MIN(mm->window * 2, l->o.window_max);
	else if (!dir)
		mm->window = MAX(mm->window / 2, l->o.window_min);
	mm->dir = dir;
	mm->last_fault = a;
	w = mm->window;

	uint64_t start;
	if (dir > 0)
		start = a;
	else if (dir < 0)
		start = a >= (w - 1) * DM_PAGE_SIZE ? a - (w - 1) * DM_PAGE_SIZE : 0;
	else
		start = a >= (w / 2) * DM_PAGE_SIZE ? a - (w / 2) * DM_PAGE_SIZE : 0;
	/* clip to the region of the faulting page */
	long ri = pageset_find(&mm->need, a);
	const struct pageset_region *rg = &mm->need.r[ri];
	uint64_t rend = rg->start + rg->npages * DM_PAGE_SIZE;
	if (start < rg->start)
		start = rg->start;
	uint64_t end = start + w * DM_PAGE_SIZE;
	if (end > rend)
		end = rend;
	if (end <= a)
		end = a + DM_PAGE_SIZE;
	*ret_start = start;
	*ret_n = (uint32_t)((end - start) / DM_PAGE_SIZE);
}

/* A fault event in the trace (uffd thread); its record, or -1 when not traced. */
static long trace_fault(struct mem_lazy *l, struct lazy_mm *mm, uint64_t a, uint32_t tid, char kind)
{
	long rec = fault_trace_add(l->trace, a, mm->space, tid, kind, mm->child);
	if (rec >= 0 && mm->host_pid && tid)
		fault_trace_add_pc(l->trace, rec, mm->host_pid, tid);
	return rec;
}

/*
 * Tests (e2e mem/local-fault-event): the first fault on a page that the
 * local source has, once the test has armed test point dst-lazy-local-fault
 * (its .arm mark), waits here, read but not installed, so that the tree can
 * queue an address-space event meanwhile (a thread's MADV_DONTNEED, as a
 * thread's exit does to its stack): the install then meets EAGAIN on the
 * uffd thread, which alone reads that event.
 */
static void hold_local_fault(struct mem_lazy *l, struct lazy_mm *mm, uint64_t a)
{
	uint32_t run = 0;

	if (!l->o.ops.local(l->o.ops.ctx, mm->space, a, 1, &run) || !run ||
	    !dm_test_armed("dst-lazy-local-fault"))
		return;
	l->hold_local_fault = false;
	pr_warn("test point dst-lazy-local-fault: process %u, local page %#" PRIx64, mm->space, a);
	dm_test_point("dst-lazy-local-fault");
}

static void handle_fault(struct mem_lazy *l, struct lazy_mm *mm, uint64_t fault_addr, uint32_t tid)
{
	uint64_t d = fault_addr & ~(DM_PAGE_SIZE - 1), a;
	bool lazy;
	long rec = -1;

	if (!mm->child)
		atomic_fetch_add(&l->faults, 1);
	pthread_rwlock_rdlock(&l->lock);
	lazy = to_src(mm, d, &a) && pageset_contains(&mm->need, a);
	bool have = lazy && pageset_test(&mm->need, a);
	pthread_rwlock_unlock(&l->lock);
	if (!lazy || have) {
		/* never existed, removed, or installed meanwhile */
		if (l->trace)
			trace_fault(l, mm, d, tid, lazy ? TR_HAVE : TR_ZERO);
		if (!lazy && !in_areas(mm, d))
			pr_debug("fault at %#" PRIx64 " outside the registered areas of %u", d, mm->space);
		zero_page(l, mm, d);
		return;
	}
	if (l->trace)
		rec = trace_fault(l, mm, a, tid, TR_REMOTE);
	if (!add_pending(l, mm, a, rec)) {
		if (rec >= 0)
			fault_trace_set_kind(l->trace, rec, TR_DUP);
		return; /* asked already */
	}
	if (l->o.ops.local) {
		if (l->hold_local_fault)
			hold_local_fault(l, mm, a);
		/* this is the uffd thread: an install that meets a queued event
		 * does not wait for it (install_mm) */
		long got = install_local(l, mm, a, 1, MEM_FROM_LOCAL, false);
		if (got > 0) {
			/* and the local neighbours, cheap */
			uint64_t ws;
			uint32_t wn;
			if (rec >= 0)
				fault_trace_set_kind(l->trace, rec, TR_LOCAL);
			window_for(l, mm, a, &ws, &wn);
			if (install_local(l, mm, ws, wn, MEM_FROM_LOCAL, false) < 0)
				dm_error_clear(); /* the push or a later fault takes them */
			return;
		}
		if (got == -EAGAIN) {
			/* an event first: the page is asked of the source, which
			 * still holds it, and its reply waits for the event to be
			 * read (by us, next) on the fault channel's thread */
			dm_error_clear();
			atomic_fetch_add(&l->local_fallbacks, 1);
			pr_info("process %u: the local page %#" PRIx64 " met an address-space event queued: "
				"asked of the source",
				mm->space, a);
		} else if (got < 0) {
			mem_lazy_fail(l, (int)got);
			return;
		}
	}
	if (!l->o.ops.request) {
		/* nobody can bring it: this is a bug of the page source */
		pr_err("process %u: page %#" PRIx64 " faulted and no source has it", mm->space, a);
		mem_lazy_fail(l, -ENODATA);
		return;
	}
	uint64_t ws;
	uint32_t wn;
	window_for(l, mm, a, &ws, &wn);
	if (rec >= 0)
		fault_trace_set_window(l->trace, rec, ws, wn);
	if (!mm->child)
		atomic_fetch_add(&l->faults_remote, 1);
	/* the faulting byte (its offset is 0 unless the uffd reports it exactly) */
	int r = l->o.ops.request(l->o.ops.ctx, mm->space, a | (fault_addr & (DM_PAGE_SIZE - 1)), ws, wn);
	if (r < 0)
		mem_lazy_fail(l, r);
}

/* Write lock held. */
static void mark_range(struct lazy_mm *mm, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < mm->need.n; i++) {
		const struct pageset_region *rg = &mm->need.r[i];
		uint64_t rs = rg->start, re = rg->start + rg->npages * DM_PAGE_SIZE;
		/* source pages whose current address is in [start, end) */
		for (uint64_t a = MAX(rs, start); a < MIN(re, end); a += DM_PAGE_SIZE)
			if (to_dst(mm, a) == a)
				pageset_set(&mm->need, a);
	}
	for (size_t k = 0; k < mm->n_remaps; k++) {
		const struct remap *m = &mm->remaps[k];
		uint64_t lo = MAX(m->dst, start), hi = MIN(m->dst + m->len, end);
		for (uint64_t d = lo; d < hi; d += DM_PAGE_SIZE) {
			uint64_t a = m->src + (d - m->dst);
			if (pageset_contains(&mm->need, a))
				pageset_set(&mm->need, a);
		}
	}
}

/* Write lock held: the process moved [from, from+len) to [to, to+len). */
static void handle_remap(struct mem_lazy *l, struct lazy_mm *mm, uint64_t from, uint64_t to, uint64_t len)
{
	atomic_fetch_add(&l->remaps, 1);
	/* moved already once, as a whole: follow it */
	for (size_t k = 0; k < mm->n_remaps; k++) {
		struct remap *m = &mm->remaps[k];
		if (from == m->dst && len == m->len) {
			m->dst = to;
			return;
		}
	}
	bool touches_lazy = false;
	for (size_t i = 0; i < mm->need.n; i++) {
		const struct pageset_region *rg = &mm->need.r[i];
		if (rg->start < from + len && rg->start + rg->npages * DM_PAGE_SIZE > from)
			touches_lazy = true;
	}
	if (!touches_lazy)
		return;
	bool overlaps = false;
	for (size_t k = 0; k < mm->n_remaps; k++) {
		struct remap *m = &mm->remaps[k];
		if ((from < m->dst + m->len && from + len > m->dst) || (from < m->src + m->len && from + len > m->src))
			overlaps = true;
	}
	if (overlaps || mm->n_remaps == REMAPS_MAX) {
		pr_err("process %u moved memory %#" PRIx64 "+%#" PRIx64 " in a way the handler cannot follow",
		       mm->space, from, len);
		mm->remap_lost = true;
		mem_lazy_fail(l, -ENOTRECOVERABLE);
		return;
	}
	mm->remaps[mm->n_remaps++] = (struct remap){ from, to, len };
}

/* Read events of one uffd; returns false when it is dead. */
/*
 * Forks that ended.  A uffd says nothing when its process exits, so ask it:
 * unregistering a page that no VMA holds fails with ENOMEM only when the
 * address space is gone (it cannot be taken), and changes nothing
 * otherwise.  The page: 64 KiB, the lowest address a mapping may have,
 * unless a lazy region lies that low.  Ended forks are freed once no
 * installer holds them.  Uffd thread only (it alone adds pending faults and
 * reads the mms it polls).
 */
#define PROBE_ADDR 0x10000ULL
#define REAP_EVERY_NS (200 * 1000000ULL)

static bool fork_ended(struct lazy_mm *mm)
{
	if (mm->need.n && mm->need.r[0].start < PROBE_ADDR + DM_PAGE_SIZE)
		return false;
	struct uffdio_range r = { PROBE_ADDR, DM_PAGE_SIZE };
	return ioctl(mm->uffd, UFFDIO_UNREGISTER, &r) < 0 && errno == ENOMEM;
}

static void reap_forks(struct mem_lazy *l, bool now)
{
	uint64_t t = clock_ns();
	size_t forks = 0;

	if (!now && t - l->last_reap_ns < REAP_EVERY_NS)
		return;
	l->last_reap_ns = t;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms; i++)
		forks += l->mms[i]->child;
	pthread_mutex_unlock(&l->plock);
	if (!forks)
		return;
	/* the list only grows meanwhile (on this thread's FORK events) */
	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&l->plock);
		struct lazy_mm *mm = i < l->n_mms ? l->mms[i] : NULL;
		pthread_mutex_unlock(&l->plock);
		if (!mm)
			break;
		if (mm->child && !atomic_load(&mm->gone) && fork_ended(mm))
			mark_gone(l, mm, "ended");
	}
	pthread_mutex_lock(&l->plock);
	size_t k = 0;
	for (size_t i = 0; i < l->n_mms; i++) {
		struct lazy_mm *mm = l->mms[i];
		if (mm->child && atomic_load(&mm->gone) && atomic_load(&mm->refs) == 0) {
			if (mm->uffd >= 0)
				close(mm->uffd);
			pageset_done(&mm->need);
			free(mm->areas);
			free(mm);
			l->reaped++;
			continue;
		}
		l->mms[k++] = mm;
	}
	l->n_mms = k;
	pthread_mutex_unlock(&l->plock);
}

static bool drain_uffd(struct mem_lazy *l, struct lazy_mm *mm)
{
	struct uffd_msg msgs[64];
	uint64_t faults[64];
	uint32_t tids[64];
	size_t nf = 0;
	ssize_t n;

	pthread_rwlock_wrlock(&l->lock);
	n = read(mm->uffd, msgs, sizeof(msgs));
	int e = errno;
	if (n > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			const struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				/* ptid: with UFFD_FEATURE_THREAD_ID (the trace asks for it), else 0 */
				tids[nf] = m->arg.pagefault.feat.ptid;
				faults[nf++] = m->arg.pagefault.address;
				break;
			case UFFD_EVENT_FORK: {
				struct lazy_mm *c = xcalloc(1, sizeof(*c));
				c->space = mm->space;
				c->uffd = (int)m->arg.fork.ufd;
				c->child = true;
				pageset_clone_empty(&c->need, &mm->need);
				/* the fork copied exactly the pages installed so far (see above) */
				for (size_t ri = 0; ri < mm->need.n; ri++) {
					size_t words = (mm->need.r[ri].npages + 63) / 64;
					for (size_t w = 0; w < words; w++)
						atomic_store(&c->need.r[ri].bits[w], atomic_load(&mm->need.r[ri].bits[w]));
				}
				atomic_store(&c->need.count, atomic_load(&mm->need.count));
				memcpy(c->remaps, mm->remaps, sizeof(mm->remaps));
				c->n_remaps = mm->n_remaps;
				c->window = l->o.window_min;
				fcntl(c->uffd, F_SETFD, FD_CLOEXEC);
				if (l->o.on_fork_uffd)
					l->o.on_fork_uffd(l->o.on_fork_arg, c->uffd);
				int fl = fcntl(c->uffd, F_GETFL);
				if (fl >= 0)
					fcntl(c->uffd, F_SETFL, fl | O_NONBLOCK);
				atomic_fetch_add(&l->forks, 1);
				if (l->n_mms >= MAX_MMS)
					reap_forks(l, true);
				if (l->n_mms >= MAX_MMS) {
					close(c->uffd);
					pageset_done(&c->need);
					free(c);
					pr_err("process %u has %d live forks to serve: too many", mm->space, MAX_MMS);
					mem_lazy_fail(l, -E2BIG);
					break;
				}
				add_mm(l, c);
				pr_debug("process %u forked: serving the child too", mm->space);
				break;
			}
			case UFFD_EVENT_REMOVE:
				atomic_fetch_add(&l->removes, 1);
				mark_range(mm, m->arg.remove.start, m->arg.remove.end);
				break;
			case UFFD_EVENT_UNMAP:
				atomic_fetch_add(&l->unmaps, 1);
				mark_range(mm, m->arg.remove.start, m->arg.remove.end);
				break;
			case UFFD_EVENT_REMAP:
				handle_remap(l, mm, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
				break;
			default:
				pr_warn("process %u: unknown userfaultfd event %#x", mm->space, m->event);
			}
		}
	}
	pthread_rwlock_unlock(&l->lock);
	if (n < 0 && e != EAGAIN && e != EINTR) {
		mark_gone(l, mm, strerror(e));
		return false;
	}
	if (n == 0) {
		mark_gone(l, mm, "end of file");
		return false;
	}
	for (size_t i = 0; i < nf; i++)
		handle_fault(l, mm, faults[i], tids[i]);
	if (mm_done(mm))
		wake_waiters(l);
	return true;
}

static void put_who(struct lazy_mm **who, size_t n)
{
	for (size_t i = 1; i < n; i++)
		atomic_fetch_sub(&who[i]->refs, 1);
}

static void *uffd_thread(void *arg)
{
	struct mem_lazy *l = arg;
	mem_fault_thread_priority();
	pthread_mutex_lock(&l->gate_lock);
	while (!atomic_load(&l->serving) && !atomic_load(&l->stop))
		pthread_cond_wait(&l->gate_cond, &l->gate_lock);
	pthread_mutex_unlock(&l->gate_lock);
	struct pollfd *pfd = NULL;
	struct lazy_mm **who = NULL;
	size_t cap = 0;

	while (!atomic_load(&l->stop)) {
		size_t n = 0;
		reap_forks(l, false);
		if (l->trace && fault_trace_due(l->trace))
			trace_write(l);
		pthread_mutex_lock(&l->plock);
		if (cap < l->n_mms + 1) {
			cap = l->n_mms + 16;
			pfd = xrealloc(pfd, cap * sizeof(*pfd));
			who = xrealloc(who, cap * sizeof(*who));
		}
		pfd[n++] = (struct pollfd){ .fd = l->efd, .events = POLLIN };
		for (size_t i = 0; i < l->n_mms; i++) {
			struct lazy_mm *mm = l->mms[i];
			if (atomic_load(&mm->gone) || mm->uffd < 0)
				continue;
			atomic_fetch_add(&mm->refs, 1); /* a FORK event may reap meanwhile */
			who[n] = mm;
			pfd[n++] = (struct pollfd){ .fd = mm->uffd, .events = POLLIN };
		}
		pthread_mutex_unlock(&l->plock);
		int k = poll(pfd, n, 200);
		if (k < 0 && errno != EINTR) {
			mem_lazy_fail(l, neg_errno());
			put_who(who, n);
			break;
		}
		if (k > 0 && pfd[0].revents) {
			uint64_t v;
			ssize_t rr = read(l->efd, &v, sizeof(v));
			(void)rr;
		}
		for (size_t i = 1; i < n && k > 0; i++) {
			if (!pfd[i].revents)
				continue;
			if (pfd[i].revents & (POLLERR | POLLNVAL)) {
				mark_gone(l, who[i], "poll error");
				continue;
			}
			drain_uffd(l, who[i]);
		}
		put_who(who, n);
	}
	free(pfd);
	free(who);
	return NULL;
}

static int cmp_region(const void *a, const void *b, void *arg)
{
	const struct lazy_mm *mm = arg;
	const struct pageset_region *x = &mm->need.r[*(const size_t *)a];
	const struct pageset_region *y = &mm->need.r[*(const size_t *)b];
	if (x->npages != y->npages)
		return x->npages < y->npages ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The order the background install goes through an address space's lazy
 * areas: smallest first, as the source's pre-send (mem/dirty.c,
 * scan_order()): a program's own state is in its small areas, touched by
 * every request, its data in the large ones.  DMIGRATE_LAZY_ORDER=address:
 * in address order.
 */
static size_t *push_order(struct lazy_mm *mm)
{
	size_t *v = xcalloc(mm->need.n ? mm->need.n : 1, sizeof(*v));
	for (size_t i = 0; i < mm->need.n; i++)
		v[i] = i;
	const char *o = getenv("DMIGRATE_LAZY_ORDER");
	if (o && !strcmp(o, "address"))
		return v;
	qsort_r(v, mm->need.n, sizeof(*v), cmp_region, mm);
	return v;
}

/* Installs every page the local source has, address space by address space. */
static void *push_thread(void *arg)
{
	struct mem_lazy *l = arg;
	size_t i = 0;

	/* tests: not yet (a local fault must find its page not installed; a
	 * page the puller skips for being in the store must still be there) */
	dm_test_point("dst-local-push");

	while (!atomic_load(&l->stop)) {
		struct lazy_mm *mm = NULL;
		bool child = false;
		pthread_mutex_lock(&l->plock);
		if (i < l->n_mms) {
			mm = l->mms[i];
			child = mm->child; /* forks may be freed once unlocked; the originals never are */
		}
		pthread_mutex_unlock(&l->plock);
		if (!mm)
			break;
		i++;
		if (child)
			continue;
		_cleanup_free_ size_t *order = push_order(mm);
		for (size_t oi = 0; oi < mm->need.n && !atomic_load(&l->stop); oi++) {
			const struct pageset_region *rg = &mm->need.r[order[oi]];
			for (uint64_t k = 0; k < rg->npages && !atomic_load(&l->stop) && !atomic_load(&mm->gone);
			     k += MEM_FRAME_PAGES_MAX) {
				uint32_t n = (uint32_t)MIN(rg->npages - k, (uint64_t)MEM_FRAME_PAGES_MAX);
				long r = install_local(l, mm, rg->start + k * DM_PAGE_SIZE, n, MEM_FROM_LOCAL, true);
				if (r < 0) {
					atomic_store(&l->push_active, false);
					mem_lazy_fail(l, (int)r);
					return NULL;
				}
			}
		}
	}
	atomic_store(&l->push_active, false);
	wake_waiters(l);
	return NULL;
}

bool mem_lazy_local_push_active(struct mem_lazy *l)
{
	return atomic_load(&l->push_active);
}

int mem_lazy_start(struct mem_lazy *l)
{
	int r;

	if (atomic_load(&l->serving))
		return -EALREADY;
	/* the thread waits at its gate since mem_lazy_new(): a wake-up, not a
	 * thread's start (its stack mapped, its first run: 0.1-0.5 ms here,
	 * between the restore's end and RESUMED).  It takes the CPUs of the
	 * caller, as a thread started now would: the restore calls this pinned
	 * on the tree's CPU, so the tree's first faults wake the handler on the
	 * CPU the faulting thread leaves (restore.c, before the unpinning) */
	cpu_set_t cpus;
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		pthread_setaffinity_np(l->uffd_thread, sizeof(cpus), &cpus);
	pthread_mutex_lock(&l->gate_lock);
	atomic_store(&l->serving, true);
	pthread_cond_signal(&l->gate_cond);
	pthread_mutex_unlock(&l->gate_lock);
	if (l->o.push_local && l->o.ops.local) {
		atomic_store(&l->push_active, true);
		r = -pthread_create(&l->push_thread, NULL, push_thread, l);
		if (r < 0) {
			atomic_store(&l->push_active, false);
			return r;
		}
		l->push_started = true;
		pthread_setname_np(l->push_thread, "dm-lpush"); /* in traces and top -H */
	}
	return 0;
}

int mem_lazy_wait(struct mem_lazy *l, int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ? clock_ns() + (uint64_t)timeout_ms * 1000000 : 0;

	pthread_mutex_lock(&l->done_lock);
	for (;;) {
		int err = dm_errbox_take(&l->err);
		if (err) {
			pthread_mutex_unlock(&l->done_lock);
			return err;
		}
		pthread_mutex_unlock(&l->done_lock);
		bool done = mem_lazy_done(l);
		pthread_mutex_lock(&l->done_lock);
		if (done)
			break;
		if (deadline && clock_ns() >= deadline) {
			pthread_mutex_unlock(&l->done_lock);
			return -ETIMEDOUT;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&l->done_cond, &l->done_lock, &ts);
	}
	pthread_mutex_unlock(&l->done_lock);
	return 0;
}

bool mem_lazy_next_missing(struct mem_lazy *l, uint32_t *space, uint64_t *addr, uint32_t *npages)
{
	bool found = false;

	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms && !found; i++) {
		struct lazy_mm *mm = l->mms[i];
		uint64_t a;
		if (mm_done(mm) || mm->space < *space)
			continue;
		uint64_t from = mm->space == *space ? *addr : 0;
		if (!pageset_next_clear(&mm->need, from, &a))
			continue;
		if (mm->space == *space && a < from)
			continue; /* wrapped: handled when the caller starts over */
		long ri = pageset_find(&mm->need, a);
		const struct pageset_region *rg = &mm->need.r[ri];
		uint64_t left = rg->npages - (a - rg->start) / DM_PAGE_SIZE;
		uint32_t n = 1;
		while (n < MIN(left, (uint64_t)MEM_WINDOW_MAX) &&
		       !pageset_test(&mm->need, a + (uint64_t)n * DM_PAGE_SIZE))
			n++;
		*space = mm->space;
		*addr = a;
		*npages = n;
		found = true;
	}
	pthread_mutex_unlock(&l->plock);
	return found;
}

uint64_t mem_lazy_missing(struct mem_lazy *l)
{
	uint64_t m = 0;
	pthread_mutex_lock(&l->plock);
	for (size_t i = 0; i < l->n_mms; i++) {
		struct lazy_mm *mm = l->mms[i];
		if (atomic_load(&mm->gone))
			continue;
		m += mm->need.total - atomic_load(&mm->need.count);
	}
	pthread_mutex_unlock(&l->plock);
	return m;
}

uint64_t mem_lazy_total(struct mem_lazy *l)
{
	return l->total;
}

void mem_lazy_get_stats(struct mem_lazy *l, struct mem_lazy_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (int i = 0; i < _MEM_FROM_MAX; i++)
		ret->pages[i] = atomic_load(&l->pages[i]);
	ret->faults = atomic_load(&l->faults);
	ret->faults_remote = atomic_load(&l->faults_remote);
	ret->local_fallbacks = atomic_load(&l->local_fallbacks);
	ret->zero_pages = atomic_load(&l->zero_pages);
	ret->absent = atomic_load(&l->absent);
	ret->forks = atomic_load(&l->forks);
	pthread_mutex_lock(&l->plock);
	ret->forks_ended = l->reaped;
	ret->slowest_fault_t0_ns = l->slowest_t0;
	ret->slowest_fault_addr = l->slowest_addr;
	ret->slowest_fault_space = l->slowest_space;
	ret->slowest_fault_install_ns = l->slowest_install_ns;
	pthread_mutex_unlock(&l->plock);
	ret->removes = atomic_load(&l->removes);
	ret->unmaps = atomic_load(&l->unmaps);
	ret->remaps = atomic_load(&l->remaps);
	ret->eexist = atomic_load(&l->eexist);
	ret->fault_p50_us = mem_hist_quantile(&l->hist, 0.5);
	ret->fault_p99_us = mem_hist_quantile(&l->hist, 0.99);
	ret->fault_max_us = (double)atomic_load(&l->hist.max_us);
	ret->fault_hist = mem_hist_json(&l->hist);
}

void mem_lazy_free(struct mem_lazy *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->gate_lock);
	atomic_store(&l->stop, true);
	pthread_cond_signal(&l->gate_cond);
	pthread_mutex_unlock(&l->gate_lock);
	uint64_t one = 1;
	ssize_t w = write(l->efd, &one, sizeof(one));
	(void)w;
	if (l->uffd_started)
		pthread_join(l->uffd_thread, NULL);
	if (l->push_started)
		pthread_join(l->push_thread, NULL);
	trace_write(l);
	fault_trace_free(l->trace);
	for (size_t i = 0; i < l->n_mms; i++) {
		struct lazy_mm *mm = l->mms[i];
		if (mm->uffd >= 0)
			close(mm->uffd);
		pageset_done(&mm->need);
		free(mm->areas);
		free(mm);
	}
	free(l->mms);
	close(l->efd);
	pthread_rwlock_destroy(&l->lock);
	pthread_mutex_destroy(&l->plock);
	pthread_mutex_destroy(&l->done_lock);
	pthread_cond_destroy(&l->done_cond);
	pthread_mutex_destroy(&l->gate_lock);
	pthread_cond_destroy(&l->gate_cond);
	free(l);
}
