/* SPDX-License-Identifier: MIT */
/*
 * mem_netsrc: the destination's end of the fault and bulk channels.
 *
 *   fault thread   NET_T_PAGES replies (FAULT, PREFETCH) -> mem_lazy_install
 *   bulk thread    MEM_T_PHASE, NET_T_PAGES, MEM_T_ABSENT, MEM_T_PUSH_END:
 *                    phase STORE:   pages -> mem_store (before the restore)
 *                    phase INSTALL: pages -> mem_lazy_install (after the resume)
 *   pull thread    after the INSTALL push ended: asks for whatever some
 *                  address space still misses (forks made after pages were
 *                  pushed, pages lost to a retry), a few windows at a time
 *
 * Requests (MEM_T_REQ) go out on the fault channel from the uffd thread.
 * Every frame is checked: type, flags, page count, and (by mem_lazy or
 * mem_store) that the range is memory this migration moves.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"
#include "base/testpoint.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

struct fetch_wait {
	struct fetch_wait *next;
	uint32_t space;
	uint64_t addr;
	void *page;
	bool done;
};

struct mem_netsrc {
	struct net_chan *fault, *bulk;
	struct mem_store *store;
	_Atomic(struct mem_lazy *) lazy;
	pthread_t fault_thread, bulk_thread, pull_thread;
	bool fault_started, bulk_started, pull_started;
	_Atomic bool bulk_exited; /* the bulk thread returned (not joined yet) */
	_Atomic bool background;  /* mem_netsrc_background(): the bulk thread nices itself */
	bool bulk_mask_saved;   /* bulk_mask: its CPUs before mem_netsrc_keep_off_cpu() */
	cpu_set_t bulk_mask;
	_Atomic bool stop;
	struct dm_errbox err; /* the first error of a receiver thread, with its message */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool store_ended, push_ended; /* under lock */
	struct fetch_wait *waiters;   /* under lock: synchronous fetches */
	uint64_t store_pages, push_pages;
};

static void set_err(struct mem_netsrc *n, int err)
{
	dm_errbox_put(&n->err, err);
	pthread_mutex_lock(&n->lock);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	struct mem_lazy *l = atomic_load(&n->lazy);
	if (l && !atomic_load(&n->stop))
		mem_lazy_fail(l, err);
}

int mem_netsrc_new(struct net_chan *fault, struct net_chan *bulk, struct mem_store *store,
		   struct mem_netsrc **ret)
{
	struct mem_netsrc *n = xcalloc(1, sizeof(*n));
	dm_errbox_init(&n->err);
	n->fault = fault;
	n->bulk = bulk;
	n->store = store;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	*ret = n;
	return 0;
}

static int request(void *ctx, uint32_t space, uint64_t fault_addr, uint64_t addr, uint32_t npages)
{
	struct mem_netsrc *n = ctx;
	struct mem_wire_req q = {
		.space = space,
		.npages = npages,
		.addr = addr,
		.fault_addr = fault_addr,
	};
	int r = net_send_frame(n->fault, MEM_T_REQ, &q, sizeof(q));
	if (r < 0 && !atomic_load(&n->stop))
		dm_wrap(r, "fault channel: cannot ask for page %#" PRIx64, fault_addr);
	return r;
}

static const void *local(void *ctx, uint32_t space, uint64_t addr, uint32_t max_run, uint32_t *ret_run)
{
	struct mem_netsrc *n = ctx;
	return n->store ? mem_store_page(n->store, space, addr, max_run, ret_run) : NULL;
}

static void local_done(void *ctx, uint32_t space, uint64_t addr, uint32_t npages, bool background)
{
	struct mem_netsrc *n = ctx;
	if (n->store)
		mem_store_release(n->store, space, addr, npages, background);
}

void mem_netsrc_ops(struct mem_netsrc *n, struct mem_lazy_ops *ret)
{
	*ret = (struct mem_lazy_ops){
		.request = request,
		.local = n->store ? local : NULL,
		.local_done = n->store ? local_done : NULL,
		.ctx = n,
	};
}

void mem_netsrc_set_lazy(struct mem_netsrc *n, struct mem_lazy *l)
{
	pthread_mutex_lock(&n->lock);
	atomic_store(&n->lazy, l);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

void mem_netsrc_background(struct mem_netsrc *n)
{
	atomic_store(&n->background, true);
}

void mem_netsrc_keep_off_cpu(struct mem_netsrc *n, int cpu)
{
	/* an exited, unjoined thread has no tid: glibc would act on the caller */
	if (!n->bulk_started || atomic_load(&n->bulk_exited))
		return;
	if (cpu < 0) {
		if (n->bulk_mask_saved)
			pthread_setaffinity_np(n->bulk_thread, sizeof(n->bulk_mask), &n->bulk_mask);
		n->bulk_mask_saved = false;
		return;
	}
	cpu_set_t m;
	if (pthread_getaffinity_np(n->bulk_thread, sizeof(m), &m) != 0 || !CPU_ISSET(cpu, &m) || CPU_COUNT(&m) < 2)
		return;
	cpu_set_t was = m;
	CPU_CLR(cpu, &m);
	if (pthread_setaffinity_np(n->bulk_thread, sizeof(m), &m) == 0 && !n->bulk_mask_saved) {
		n->bulk_mask = was;
		n->bulk_mask_saved = true;
	}
}

/*
 * The push may start before the restore is over (MigReply.early_push: it
 * uses the link while the destination restores): its first frame waits
 * here, unread, until the restored tree's handler is set (after RESUMED,
 * dest.c), and TCP holds the rest back.  Stop or an error ends the wait.
 */
static struct mem_lazy *wait_lazy(struct mem_netsrc *n)
{
	struct mem_lazy *l;
	pthread_mutex_lock(&n->lock);
	while (!(l = atomic_load(&n->lazy)) && !atomic_load(&n->stop) && !dm_errbox_code(&n->err))
		cond_wait_ms(&n->cond, &n->lock, 200);
	pthread_mutex_unlock(&n->lock);
	return l;
}

/* Hand pages of a frame to synchronous fetches waiting for them; true if one took some. */
static bool feed_waiters(struct mem_netsrc *n, const struct net_wire_pages *h, const uint8_t *buf)
{
	bool fed = false;
	pthread_mutex_lock(&n->lock);
	for (struct fetch_wait *w = n->waiters; w; w = w->next) {
		if (w->done || w->space != h->space || w->addr < h->addr ||
		    w->addr >= h->addr + (uint64_t)h->npages * DM_PAGE_SIZE)
			continue;
		memcpy(w->page, buf + (w->addr - h->addr), DM_PAGE_SIZE);
		w->done = fed = true;
	}
	if (fed)
		pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return fed;
}

/* Receive the data of a pages frame and install it. */
static int recv_install(struct mem_netsrc *n, struct net_chan *c, const struct net_wire_pages *h,
			uint8_t *buf, enum mem_origin origin)
{
	/*
	 * The locks the fault path waits for (ours, the handler's, which the
	 * uffd thread takes for writing to read each fault, its pending list)
	 * are taken at the receiver's own nice when it went to the background:
	 * preempted there at its background nice, it would hold every fault as
	 * long.  Only the receiving itself is in the background.
	 */
	thread_foreground_section(true);
	/* a pushed frame waits for the handler; a fault reply before it (a
	 * page the restore itself asked for) goes to its waiter */
	struct mem_lazy *l = c == n->bulk ? wait_lazy(n) : atomic_load(&n->lazy);
	thread_foreground_section(false);
	int r;

	if (h->npages > MEM_FRAME_PAGES_MAX)
		return dm_fail(-EBADMSG, "%s: a frame of %u pages (at most %u)", net_chan_peer(c), h->npages,
			       MEM_FRAME_PAGES_MAX);
	r = net_recv_body(c, buf, (size_t)h->npages * DM_PAGE_SIZE);
	if (r < 0)
		return r;
	thread_foreground_section(true);
	bool fed = c == n->fault && feed_waiters(n, h, buf);
	if (!l)
		r = fed ? 0 : dm_fail(-EPROTO, "%s: pages nobody asked for before the restore", net_chan_peer(c));
	else
		r = mem_lazy_install(l, h->space, h->addr, h->npages, buf, origin);
	thread_foreground_section(false);
	return r;
}

int mem_netsrc_fetch(struct mem_netsrc *n, uint32_t space, uint64_t addr, void *page, int timeout_ms)
{
	struct fetch_wait w = { .space = space, .addr = addr, .page = page };
	uint64_t deadline = clock_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000) * 1000000;
	int r;

	pthread_mutex_lock(&n->lock);
	w.next = n->waiters;
	n->waiters = &w;
	pthread_mutex_unlock(&n->lock);
	r = request(n, space, addr, addr, 1);
	pthread_mutex_lock(&n->lock);
	while (r >= 0 && !w.done) {
		if (dm_errbox_code(&n->err)) {
			r = dm_errbox_take(&n->err);
			break;
		}
		if (clock_ns() >= deadline) {
			r = dm_fail(-ETIMEDOUT, "page %#" PRIx64 " of %u did not come", addr, space);
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&n->cond, &n->lock, &ts);
	}
	for (struct fetch_wait **pp = &n->waiters; *pp; pp = &(*pp)->next)
		if (*pp == &w) {
			*pp = w.next;
			break;
		}
	pthread_mutex_unlock(&n->lock);
	return r < 0 ? r : 0;
}

static void *fault_thread(void *arg)
{
	struct mem_netsrc *n = arg;
	mem_fault_thread_priority();
	/* faulted in before the first reply (a reply: a page, a few neighbours,
	 * chased pages; a fault's window pushed is on the bulk channel) */
	uint8_t *buf = xmap(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE, 32 * DM_PAGE_SIZE);
	int r = 0;

	while (!atomic_load(&n->stop)) {
		struct net_frame f;
		struct net_wire_pages h;
		/* the source sends a fault's extras as the acknowledgements come
		 * (mem/server.c fault_waits()): none delayed, whatever the MSS
		 * (quick-ack mode ends by itself: again before each frame) */
		net_chan_quickack(n->fault);
		r = net_recv_hdr(n->fault, &f);
		if (r < 0)
			break;
		if (f.type != NET_T_PAGES) {
			r = dm_fail(-EBADMSG, "fault channel: unexpected frame type %#x", f.type);
			break;
		}
		r = net_recv_pages_hdr(n->fault, &f, &h);
		if (r < 0)
			break;
		if (h.flags & ~(MEM_PF_FAULT | MEM_PF_PREFETCH) || !h.flags) {
			r = dm_fail(-EBADMSG, "fault channel: page flags %#x", h.flags);
			break;
		}
		r = recv_install(n, n->fault, &h, buf, (h.flags & MEM_PF_FAULT) ? MEM_FROM_FAULT : MEM_FROM_PREFETCH);
		if (r < 0)
			break;
	}
	if (r < 0 && !atomic_load(&n->stop))
		set_err(n, r);
	xunmap(buf, MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
	return NULL;
}

/* Holes of sparse runs (install phase only: the store must hold every page). */
static int recv_absent(struct mem_netsrc *n, const struct net_frame *f, enum mem_phase phase)
{
	struct mem_lazy *l = phase == MEM_PHASE_INSTALL ? wait_lazy(n) : NULL;
	struct mem_wire_absent h;
	int r;

	if (phase != MEM_PHASE_INSTALL || !l || f->len < sizeof(h))
		return dm_fail(-EBADMSG, "bulk channel: absent pages out of place (%u bytes)", f->len);
	r = net_recv_body(n->bulk, &h, sizeof(h));
	if (r < 0)
		return r;
	if (h.count == 0 || h.count > MEM_ABSENT_MAX ||
	    f->len != sizeof(h) + (size_t)h.count * sizeof(struct mem_wire_absent_range))
		return dm_fail(-EBADMSG, "bulk channel: absent frame of %u ranges in %u bytes", h.count, f->len);
	_cleanup_free_ struct mem_wire_absent_range *v = xmalloc(h.count * sizeof(*v));
	r = net_recv_body(n->bulk, v, h.count * sizeof(*v));
	if (r < 0)
		return r;
	/* under the handler's lock, like an install (recv_install()) */
	thread_foreground_section(true);
	for (uint32_t i = 0; i < h.count && r >= 0; i++)
		r = mem_lazy_absent(l, h.space, v[i].addr, v[i].npages);
	thread_foreground_section(false);
	return r < 0 ? r : 0;
}

static void *bulk_thread(void *arg)
{
	struct mem_netsrc *n = arg;
	uint8_t *buf = xmalloc(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
	enum mem_phase phase = 0;
	uint64_t pages = 0;
	int r = 0;

	bool niced = false;
	while (!atomic_load(&n->stop)) {
		struct net_frame f;
		struct net_wire_pages h;
		if (!niced && atomic_load(&n->background)) {
			thread_background();
			niced = true;
			dm_test_point("dst-bulk-background");
		}
		r = net_recv_hdr(n->bulk, &f);
		if (r < 0)
			break;
		if (f.type == MEM_T_PHASE) {
			struct mem_wire_phase p;
			if (f.len != sizeof(p)) {
				r = dm_fail(-EBADMSG, "bulk channel: phase frame of %u bytes", f.len);
				break;
			}
			r = net_recv_body(n->bulk, &p, sizeof(p));
			if (r < 0)
				break;
			/* the same phase again: the pre-copy rounds, then the final push */
			if ((p.phase != MEM_PHASE_STORE && p.phase != MEM_PHASE_INSTALL) || p.phase < phase ||
			    (p.phase == MEM_PHASE_STORE && !n->store)) {
				r = dm_fail(-EBADMSG, "bulk channel: phase %u after %u", p.phase, phase);
				break;
			}
			phase = p.phase;
			pages = 0;
			continue;
		}
		if (f.type == MEM_T_PUSH_END) {
			struct mem_wire_end e;
			if (f.len != sizeof(e) || !phase) {
				r = dm_fail(-EBADMSG, "bulk channel: bad push end");
				break;
			}
			r = net_recv_body(n->bulk, &e, sizeof(e));
			if (r < 0)
				break;
			pthread_mutex_lock(&n->lock);
			if (phase == MEM_PHASE_STORE) {
				n->store_ended = true;
				n->store_pages = pages;
			} else {
				n->push_ended = true;
				n->push_pages = pages;
			}
			pthread_cond_broadcast(&n->cond);
			pthread_mutex_unlock(&n->lock);
			if (e.pages != pages) {
				r = dm_fail(-EBADMSG, "bulk channel: %" PRIu64 " pages announced, %" PRIu64 " received",
					    e.pages, pages);
				break;
			}
			continue;
		}
		if (f.type == MEM_T_ABSENT) {
			r = recv_absent(n, &f, phase);
			if (r < 0)
				break;
			continue;
		}
		if (f.type != NET_T_PAGES || !phase) {
			r = dm_fail(-EBADMSG, "bulk channel: unexpected frame type %#x", f.type);
			break;
		}
		r = net_recv_pages_hdr(n->bulk, &f, &h);
		if (r < 0)
			break;
		if (h.flags & ~(MEM_PF_PUSH | MEM_PF_PRECOPY) || !h.flags) {
			r = dm_fail(-EBADMSG, "bulk channel: page flags %#x", h.flags);
			break;
		}
		if (phase == MEM_PHASE_STORE)
			r = mem_store_recv(n->store, n->bulk, &h);
		else
			r = recv_install(n, n->bulk, &h, buf, MEM_FROM_PUSH);
		if (r < 0)
			break;
		pages += h.npages;
		thread_background_breathe();
	}
	if (r < 0 && !atomic_load(&n->stop))
		set_err(n, r);
	free(buf);
	atomic_store(&n->bulk_exited, true); /* its pthread_t no longer names a thread for affinity calls */
	return NULL;
}

/* After the push: fetch what is still missing, a few windows per round trip. */
static void *pull_thread(void *arg)
{
	struct mem_netsrc *n = arg;

	pthread_mutex_lock(&n->lock);
	/* no deadline of its own: stop (mem_netsrc_stop) or an error ends it;
	 * it looks again every second all the same */
	while (!n->push_ended && !atomic_load(&n->stop) && !dm_errbox_code(&n->err))
		cond_wait_ms(&n->cond, &n->lock, 1000);
	pthread_mutex_unlock(&n->lock);
	/* tests: not yet (e2e mem/local-fault-event holds it with the local
	 * pusher, mem/pull-skips-store runs it while that one is held) */
	dm_test_point("dst-pull");
	while (!atomic_load(&n->stop) && !dm_errbox_code(&n->err)) {
		/* the handler may be set after the push ended (a push with
		 * nothing in it comes while RESUMED and COMMIT cross) */
		struct mem_lazy *l = wait_lazy(n);
		if (!l || mem_lazy_done(l))
			break;
		uint32_t space = 0, np;
		uint64_t addr = 0;
		int sent = 0;
		bool local_left = false;
		/* a page the store holds is the local install's (lazy.c's push
		 * thread) while it goes: asked of the source too, it crossed the
		 * link twice.  It installs the original address spaces only, so
		 * once it has ended what is missing (a fork's pages) is asked
		 * for, store or not. */
		struct mem_store *skip = mem_lazy_local_push_active(l) ? n->store : NULL;
		while (sent < 16 && mem_lazy_next_missing(l, &space, &addr, &np)) {
			uint32_t k = 0;
			while (k < np && skip && mem_store_page(skip, space, addr + (uint64_t)k * DM_PAGE_SIZE, 1, NULL))
				k++;
			if (k) {
				addr += (uint64_t)k * DM_PAGE_SIZE;
				local_left = true;
				continue;
			}
			while (k < np && !(skip && mem_store_page(skip, space, addr + (uint64_t)k * DM_PAGE_SIZE, 1, NULL)))
				k++;
			if (request(n, space, addr, addr, k) < 0) {
				set_err(n, -EPIPE);
				return NULL;
			}
			addr += (uint64_t)k * DM_PAGE_SIZE;
			sent++;
		}
		if (!sent && !local_left)
			break;
		mem_lazy_wait(l, 200);
	}
	return NULL;
}

int mem_netsrc_start(struct mem_netsrc *n)
{
	int r;
	if (n->fault) {
		r = -pthread_create(&n->fault_thread, NULL, fault_thread, n);
		if (r < 0)
			return r;
		n->fault_started = true;
		pthread_setname_np(n->fault_thread, "dm-fault"); /* in traces and top -H */
	}
	if (n->bulk) {
		r = -pthread_create(&n->bulk_thread, NULL, bulk_thread, n);
		if (r < 0)
			return r;
		n->bulk_started = true;
		pthread_setname_np(n->bulk_thread, "dm-bulk"); /* in traces and top -H */
	}
	if (n->fault && n->bulk) {
		r = -pthread_create(&n->pull_thread, NULL, pull_thread, n);
		if (r < 0)
			return r;
		n->pull_started = true;
		pthread_setname_np(n->pull_thread, "dm-pull"); /* in traces and top -H */
	}
	return 0;
}

int mem_netsrc_wait_store_end(struct mem_netsrc *n, int timeout_ms)
{
	pthread_mutex_lock(&n->lock);
	int r = cond_wait_flag(&n->cond, &n->lock, &n->store_ended, &n->err.code, timeout_ms);
	pthread_mutex_unlock(&n->lock);
	if (r < 0 && dm_errbox_code(&n->err))
		r = dm_errbox_take(&n->err);
	return r;
}

bool mem_netsrc_push_ended(struct mem_netsrc *n)
{
	pthread_mutex_lock(&n->lock);
	bool e = n->push_ended;
	pthread_mutex_unlock(&n->lock);
	return e;
}

int mem_netsrc_error(struct mem_netsrc *n)
{
	return dm_errbox_take(&n->err);
}

void mem_netsrc_stop(struct mem_netsrc *n)
{
	if (!n || atomic_exchange(&n->stop, true))
		return;
	if (n->fault)
		net_chan_shutdown(n->fault);
	if (n->bulk)
		net_chan_shutdown(n->bulk);
	pthread_mutex_lock(&n->lock);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->fault_started)
		pthread_join(n->fault_thread, NULL);
	if (n->bulk_started)
		pthread_join(n->bulk_thread, NULL);
	if (n->pull_started)
		pthread_join(n->pull_thread, NULL);
	n->fault_started = n->bulk_started = n->pull_started = false;
}

void mem_netsrc_free(struct mem_netsrc *n)
{
	if (!n)
		return;
	mem_netsrc_stop(n);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}
