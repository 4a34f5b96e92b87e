/* SPDX-License-Identifier: MIT */
/*
 * mem_server: the source's page server.  It reads the frozen tree's memory
 * directly (/proc/PID/mem: mem_read_remote): no
 * copy to disk, no pipes.
 *
 *   fault thread   MEM_T_REQ -> the faulting page alone (FAULT, one small
 *                  frame: it must not wait behind its neighbours), then the
 *                  window's pages not sent yet (PREFETCH); the pusher is told
 *                  to continue where the faults are
 *   push thread    (install phase) first the pages the tree wrote last before
 *                  the freeze, if the source tracked them (mem_server_hot:
 *                  its working set, what it touches first after the resume),
 *                  then (at the commit, when mem_server_hold lets it go)
 *                  the sparse runs of the image (whole
 *                  anonymous VMAs whose page map the dump did not read, to
 *                  keep the freeze short): one PAGEMAP_SCAN walk over the
 *                  frozen tree, the holes are told in MEM_T_ABSENT frames
 *                  and never sent; then every lazy page not sent yet, in
 *                  address order from a cursor that jumps to the latest
 *                  fault area, then MEM_T_PUSH_END
 *
 * A page is sent once (claimed by setting its bit in `sent` before reading),
 * except the faulting page of a request, which is always sent: it may still
 * be queued behind bulk data on the other channel.  Faults and pushes go on
 * different connections, so a fault never waits behind pushed pages in our
 * buffers; in the network, the bulk socket's small send buffer keeps the
 * queue in front of the link short (see mem_server_start).
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/testpoint.h"
#include "base/sync.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

/* Neighbours a fault reply carries itself (16 KiB: 130 us at 1 Gbit/s, which the
 * next fault may wait behind; the rest of the window goes to the pusher). */
#define PREFETCH_INLINE 4u
/*
 * The bulk socket's send buffer where a FIFO (or an unknown queue) stands in
 * front of the link, so that a fault reply waits behind little: it starts
 * small and follows twice the path's bandwidth-delay product, TCP's minimum
 * RTT (no queueing in it) times the best push rate seen over 64 frames: on a
 * LAN a few KiB (fault p99/p50 2.1-2.3 with 8 KiB vs 3.2-4.0 with 16 KiB,
 * bench/migrate.sh --fifo-link), a longer path what it needs to keep the
 * link full.  Where the queue serves the fault channel first (bulk_fill),
 * and in the store phase, TCP sizes it.
 */
#define SNDBUF_MIN (8 * 1024)
#define SNDBUF_MAX (4 * 1024 * 1024)

/*
 * Pointer chasing: a fault request may carry the faulting byte's address
 * (the destination's userfaultfd reports it exactly: MigStart.fault_exact).
 * A tree that walks a pointer structure over memory it has not touched
 * since the resume (redis rehashing its dict: bucket -> entry -> key; a
 * list; a GC marking) faults once per node, a round trip each, one after
 * the other.  So after the faulting page come, on the fault channel, the
 * lazy pages not sent yet that the words of the 128 bytes around the byte
 * (its 64-byte line and the next) point to, each followed by those that
 * the first CHASE_OBJ bytes of the object it points to point to (two
 * levels, depth first: the order a walk touches them), at most
 * DMIGRATE_CHASE pages (default CHASE_DEFAULT, 0: off; DMIGRATE_CHASE_DEPTH=1:
 * one level).  A word that is not a pointer names a page of the tree all
 * the same: every page is sent once anyway, this only sends some earlier,
 * at the price of the next fault's reply waiting behind them.
 */
/*
 * A fault's extras leave at most this many bytes not yet acknowledged on the
 * fault channel (DMIGRATE_FAULT_AHEAD; 0: no bound): the next fault's reply
 * waits behind them in the socket and the link's queue (see fault_waits()).
 * An extra that waits longer than FAULT_AHEAD_WAIT_US for that is left to a
 * later fault or the push.
 */
#define FAULT_AHEAD_DEFAULT (2u * DM_PAGE_SIZE)
#define FAULT_AHEAD_WAIT_US 2000u
#define FAULT_AHEAD_POLL_US 20
#define FAULT_AHEAD_ACK_US 300u   /* then the estimate of what the link took may let it go */
#define FAULT_RATE_DEFAULT 125000000ull /* bytes/s: 1 Gbit/s, until the push measured the link */
#define FAULT_FRAME_BYTES (DM_PAGE_SIZE + 64u) /* a page's frame on the wire, about */

#define CHASE_MAX 16u
#define CHASE_DEFAULT 8u
#define CHASE_BYTES 128u
#define CHASE_OBJ 24u
#define CHASE_OBJ_PTRS 2u /* followed in an object pointed to (a third word was no better) */

/* The part of a fault thread's buffer faulted in at its start (pages) */
#define FAULT_BUF_TOUCH ((size_t)(1 + PREFETCH_INLINE + CHASE_MAX) * DM_PAGE_SIZE)

/* Pages per pushed frame: the pusher looks for fault hints between frames. */
#define PUSH_FRAME_PAGES 64u

/* A page not sent yet, and the address of a word that points into it. */
struct back_ref {
	uint64_t target, from;
};
#define BACK_SLOTS 16384u

struct srv_proc {
	uint32_t space;
	pid_t pid;
	int memfd;
	struct pageset sent;
	struct proc_range *sparse;  /* lazy runs whose page map is unknown */
	size_t n_sparse;
	uint64_t cursor;          /* push thread only */
	uint64_t (*hot)[2];       /* runs written last before the freeze: pushed first */
	size_t n_hot;
	struct back_ref *back;    /* fault thread only: where unsent pages were seen pointed to from */
	_Atomic uint64_t hint;    /* where faults happen; 0: none */
	_Atomic uint64_t hint_end; /* the end of the window the hint starts */
	uint64_t handed_lo, handed_hi; /* the last window handed to the pusher (fault thread only) */
	uint64_t win, win_end;    /* push thread only: the window being pushed while held */
};

struct mem_server {
	struct srv_proc *procs;
	size_t n;
	struct net_chan *fault, *bulk;
	enum mem_phase phase;
	pthread_t fault_thread, push_thread;
	bool fault_started, push_started;
	_Atomic bool stop;
	struct dm_errbox err; /* the first error of a server thread, with its message */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool push_done;
	int sndbuf;               /* push thread only */
	uint64_t rate_max;        /* push thread only: best push rate seen, bytes/s */
	_Atomic uint64_t link_rate; /* rate_max for the fault thread (0: not measured) */
	uint64_t drained_at;      /* fault thread only: when the link has taken what it wrote (ns) */
	bool sndbuf_fixed;
	bool bulk_fill;           /* the link's queue serves faults first */
	uint64_t quiet_until;     /* under lock: mem_server_quiet_until */
	bool hold;                /* under lock: the push waits after the working set (mem_server_hold) */
	uint64_t pages_held;      /* pushed before the hold was let go */
	_Atomic uint64_t pages_pushed, pages_fault, pages_prefetch, requests, pages_absent, pages_chased,
		chases_on, pages_hot, fault_yields, fault_paced, fault_pace_gaveup;
	uint64_t hot_given;       /* pages of the runs given to mem_server_hot */
	unsigned chase;           /* pages sent by following pointers around the faulting byte (0: none) */
	unsigned chase_depth;
	bool chase_on;            /* follow on from the word that pointed to a faulting page */
	unsigned ahead;           /* bytes a fault's extras may leave unacknowledged (0: any) */
	uint64_t ahead_wait_ns;   /* FAULT_AHEAD_WAIT_US (DMIGRATE_FAULT_AHEAD_WAIT_MS: tests) */
	bool extras_left;         /* fault thread only: this fault's extras waited too long */
	double scan_ms;
};

/*
 * /proc/PID/mem first: process_vm_readv pins the pages, and the kernel
 * gives a process its own copy of a page it shares copy-on-write before it
 * lets it be pinned (gup_must_unshare): pre-copy rounds read that way left
 * a running prefork server with its memory once per worker, and so did a
 * migration rolled back.  /proc/PID/mem takes plain references (and reads
 * PROT_NONE and exec-only pages: FOLL_FORCE).
 */
int mem_read_remote(pid_t pid, int memfd, uint64_t addr, void *buf, size_t len)
{
	if (memfd < 0) {
		struct iovec li = { buf, len }, ri = { (void *)addr, len };
		ssize_t n = process_vm_readv(pid, &li, 1, &ri, 1, 0);
		return n >= 0 && (size_t)n == len ? 0 : -EFAULT;
	}
	int r = pread_exact(memfd, buf, len, addr);
	return r == -ENODATA || r == -EIO ? -EFAULT : r;
}

int mem_send_pages(struct net_chan *c, uint32_t space, pid_t pid, int memfd, uint64_t addr,
		   uint32_t npages, uint32_t flags, void *buf)
{
	int r;

	if (!npages || npages > MEM_FRAME_PAGES_MAX)
		return -EINVAL;
	r = mem_read_remote(pid, memfd, addr, buf, (size_t)npages * DM_PAGE_SIZE);
	if (r < 0)
		return r;
	struct iovec iov = { buf, (size_t)npages * DM_PAGE_SIZE };
	return net_send_pages(c, space, addr, npages, flags, &iov, 1);
}

int mem_server_new(struct mem_server **ret)
{
	struct mem_server *s = xcalloc(1, sizeof(*s));
	dm_errbox_init(&s->err);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	const char *e = getenv("DMIGRATE_CHASE");
	int c = e ? atoi(e) : (int)CHASE_DEFAULT;
	s->chase = c < 0 ? 0 : (unsigned)MIN(c, (int)CHASE_MAX);
	e = getenv("DMIGRATE_CHASE_DEPTH");
	s->chase_depth = e ? (unsigned)atoi(e) : 2;
	e = getenv("DMIGRATE_CHASE_ON");
	s->chase_on = !e || atoi(e) != 0;
	e = getenv("DMIGRATE_FAULT_AHEAD");
	s->ahead = e ? (unsigned)MAX(atoi(e), 0) : FAULT_AHEAD_DEFAULT;
	e = getenv("DMIGRATE_FAULT_AHEAD_WAIT_MS");
	s->ahead_wait_ns = e ? (uint64_t)MAX(atoi(e), 0) * 1000000ull : FAULT_AHEAD_WAIT_US * 1000ull;
	e = getenv("DMIGRATE_FAULT_RATE"); /* bytes/s the link takes, until the push measured it */
	if (e && strtoull(e, NULL, 10) > 0)
		atomic_store(&s->link_rate, strtoull(e, NULL, 10));
	*ret = s;
	return 0;
}

int mem_server_hot(struct mem_server *s, uint32_t space, uint64_t addr, uint64_t npages, uint64_t max_pages)
{
	if (s->push_started || !npages)
		return 0;
	if (s->hot_given >= max_pages)
		return -ENOSPC;
	npages = MIN(npages, max_pages - s->hot_given);
	for (size_t i = 0; i < s->n; i++) {
		struct srv_proc *p = &s->procs[i];
		if (p->space != space)
			continue;
		if (p->n_hot && p->hot[p->n_hot - 1][1] == addr) {
			p->hot[p->n_hot - 1][1] += npages * DM_PAGE_SIZE;
		} else {
			p->hot = xrealloc(p->hot, (p->n_hot + 1) * sizeof(*p->hot));
			p->hot[p->n_hot][0] = addr;
			p->hot[p->n_hot++][1] = addr + npages * DM_PAGE_SIZE;
		}
		s->hot_given += npages;
		return 0;
	}
	return 0; /* not a process of the image (exited before the freeze) */
}

int mem_server_add(struct mem_server *s, uint32_t space, pid_t host_pid, const Dm__Process *img)
{
	char path[64];
	int r;

	for (size_t i = 0; i < s->n; i++)
		if (s->procs[i].space == space)
			return -EEXIST;
	s->procs = xrealloc(s->procs, (s->n + 1) * sizeof(*s->procs));
	struct srv_proc *p = &s->procs[s->n];
	memset(p, 0, sizeof(*p));
	p->space = space;
	p->pid = host_pid;
	r = pageset_from_pagemap(&p->sent, img, true);
	if (r < 0)
		return r;
	for (size_t i = 0; i < img->n_pagemap; i++) {
		const Dm__PagemapEntry *e = img->pagemap[i];
		if (!(e->has_sparse && e->sparse && e->has_lazy && e->lazy))
			continue;
		p->sparse = xrealloc(p->sparse, (p->n_sparse + 1) * sizeof(*p->sparse));
		p->sparse[p->n_sparse++] =
			(struct proc_range){ e->vaddr, e->vaddr + (uint64_t)e->nr_pages * DM_PAGE_SIZE };
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", host_pid);
	p->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->memfd < 0) {
		r = neg_errno();
		pageset_done(&p->sent);
		free(p->sparse);
		return dm_fail(r, "%s: %s", path, strerror(-r));
	}
	s->n++;
	return 0;
}

static struct srv_proc *find_proc(struct mem_server *s, uint32_t space)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->procs[i].space == space)
			return &s->procs[i];
	return NULL;
}

int mem_server_mark_sent(struct mem_server *s, uint32_t space, uint64_t addr, uint64_t npages)
{
	struct srv_proc *p = find_proc(s, space);
	if (!p)
		return -ESRCH;
	pageset_set_range(&p->sent, addr, npages);
	return 0;
}

static void set_err(struct mem_server *s, int err)
{
	dm_errbox_put(&s->err, err);
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void note_pointers(struct srv_proc *p, uint64_t page, const uint8_t *data);

/*
 * A fault's extras (its neighbours, the pages its words point to) go after
 * its page, on the fault channel, from the thread that serves the faults:
 * the next fault, another thread's or the same thread's next one, waited
 * behind them (a redis's first requests after the resume: p99 of the fault
 * latency 720-816 us with the chase, 280-360 without, p50 the same).  Each
 * extra page goes only while no request waits; then the fault is served
 * and the extras not sent yet stay where they are (faulted, or pushed).
 *
 * A request that is not there yet still finds the extras written before it
 * came in front of its reply: the thread writes a fault's dozen extras in
 * tens of us, and the link takes 33 us a page at 1 Gbit/s (a serial walker's
 * next fault, which comes once the faulting page reached it, waited up to
 * ~400 us).  So an extra also waits until the channel holds less than
 * s->ahead bytes in front of it, watching for a request meanwhile: the
 * extras go at the rate the link takes them, and a reply never waits behind
 * more than s->ahead bytes of them.  What is in front: the bytes not yet
 * acknowledged (SIOCOUTQ: the socket, the link's queue, the wire).  Where
 * the acknowledgements wait (a peer that delays them: segments smaller than
 * its MSS, loopback's 64 KiB), an extra that waited FAULT_AHEAD_ACK_US goes
 * once what the thread wrote, less what the link took since at the push's
 * best rate (until measured: DMIGRATE_FAULT_RATE bytes/s, or 1 Gbit/s), is
 * under the bound: an estimate that knows nothing of the other channels,
 * so it is the fallback (first, it let the extras go too soon: p99 of a
 * redis's fault latency as without the bound).  An extra that waited
 * FAULT_AHEAD_WAIT_US is left, with the rest of that fault's extras.
 */
static uint64_t fault_rate(struct mem_server *s)
{
	uint64_t r = atomic_load(&s->link_rate);
	return r ? r : FAULT_RATE_DEFAULT;
}

/* The fault thread wrote npages on the fault channel. */
static void fault_wrote(struct mem_server *s, uint32_t npages)
{
	uint64_t now = clock_ns();
	s->drained_at = MAX(s->drained_at, now) + (uint64_t)npages * FAULT_FRAME_BYTES * 1000000000ull / fault_rate(s);
}

static bool fault_waits(struct mem_server *s)
{
	uint64_t since = 0;

	if (s->extras_left)
		return true;
	for (;;) {
		if (net_chan_poll_in(s->fault, 0) > 0) {
			atomic_fetch_add(&s->fault_yields, 1);
			return true;
		}
		if (!s->ahead)
			return false;
		int q = net_chan_unacked(s->fault);
		uint64_t now = clock_ns(), ahead_ns = s->ahead * 1000000000ull / fault_rate(s);
		if (q < 0 || (unsigned)q < s->ahead ||
		    (since && now - since > FAULT_AHEAD_ACK_US * 1000ull && s->drained_at <= now + ahead_ns))
			return false;
		if (!since) {
			since = now;
			atomic_fetch_add(&s->fault_paced, 1);
		} else if (now - since > s->ahead_wait_ns) {
			atomic_fetch_add(&s->fault_pace_gaveup, 1);
			s->extras_left = true;
			return true;
		}
		/* until the acknowledgement, or (past the gate) the estimate's
		 * drain, at most FAULT_AHEAD_POLL_US */
		long us = FAULT_AHEAD_POLL_US;
		if (now - since >= FAULT_AHEAD_ACK_US * 1000ull && s->drained_at > now + ahead_ns)
			us = (long)MIN((s->drained_at - now - ahead_ns) / 1000 + 1, (uint64_t)FAULT_AHEAD_POLL_US);
		if (net_chan_poll_in_us(s->fault, us) > 0) {
			atomic_fetch_add(&s->fault_yields, 1);
			return true;
		}
	}
}

/* Claim and send the unsent lazy pages of [addr, addr+n) as runs (note:
 * remember what the pages sent point to, for the fault thread; again: the
 * ones claimed already too, see fault_thread()). */
static int send_pages_of(struct mem_server *s, struct net_chan *c, struct srv_proc *p, uint64_t addr,
			 uint64_t n, uint32_t flags, uint8_t *buf, _Atomic uint64_t *counter, bool note,
			 bool again)
{
	for (uint64_t k = 0; k < n;) {
		uint64_t a = addr + k * DM_PAGE_SIZE;
		if (c == s->fault && fault_waits(s))
			return 0;
		if (!pageset_contains(&p->sent, a) || (pageset_set(&p->sent, a) && !again)) {
			k++;
			continue;
		}
		/* a frame stays inside one region: the destination checks that, and
		 * one UFFDIO_COPY must not cross a VMA */
		const struct pageset_region *rg = &p->sent.r[pageset_find(&p->sent, a)];
		uint64_t rend = rg->start + rg->npages * DM_PAGE_SIZE;
		uint32_t run = 1, run_max = MEM_FRAME_PAGES_MAX;
		/* an extra frame no larger than the bound (fault_waits()) */
		if (c == s->fault && s->ahead)
			run_max = MAX(1u, s->ahead / DM_PAGE_SIZE);
		while (k + run < n && run < run_max) {
			uint64_t b = a + (uint64_t)run * DM_PAGE_SIZE;
			if (b >= rend || (pageset_set(&p->sent, b) && !again))
				break;
			run++;
		}
		int r = mem_send_pages(c, p->space, p->pid, p->memfd, a, run, flags, buf);
		if (r >= 0 && c == s->fault)
			fault_wrote(s, run);
		if (r < 0)
			return r == -EFAULT ? dm_fail(r, "process %d: cannot read %#" PRIx64 "+%u pages", p->pid, a, run)
					    : r;
		atomic_fetch_add(counter, run);
		for (uint32_t i = 0; note && i < run; i++)
			note_pointers(p, a + (uint64_t)i * DM_PAGE_SIZE, buf + (size_t)i * DM_PAGE_SIZE);
		k += run;
	}
	return 0;
}

static int send_unsent(struct mem_server *s, struct net_chan *c, struct srv_proc *p, uint64_t addr,
		       uint64_t n, uint32_t flags, uint8_t *buf, _Atomic uint64_t *counter, bool note)
{
	return send_pages_of(s, c, p, addr, n, flags, buf, counter, note, false);
}

/*
 * The pointers among the words of data[lo, hi) (one page's contents) to
 * lazy pages of p not sent yet, other than page and than those in ret
 * already; appended to ret (at most max in all), in the order of the words.
 */
static size_t chase_words(struct srv_proc *p, uint64_t page, const uint8_t *data, uint32_t lo, uint32_t hi,
			  uint64_t *ret, size_t n, size_t max)
{
	for (uint32_t o = lo & ~7u; o + 8 <= MIN(hi, (uint32_t)DM_PAGE_SIZE) && n < max; o += 8) {
		uint64_t v;
		memcpy(&v, data + o, sizeof(v));
		uint64_t t = v & ~(uint64_t)(DM_PAGE_SIZE - 1);
		if (t == page || v >= MEM_ADDR_LIMIT || !pageset_contains(&p->sent, t) || pageset_test(&p->sent, t))
			continue;
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = (ret[k] & ~(uint64_t)(DM_PAGE_SIZE - 1)) == t;
		if (!dup)
			ret[n++] = v;
	}
	return n;
}

static size_t back_slot(uint64_t page)
{
	return (size_t)((page >> 12) * 0x9E3779B97F4A7C15ULL >> 50) & (BACK_SLOTS - 1);
}

/* The table, its pages faulted in at once: its slots are scattered, and
 * filled on the first faults' path (64 page faults there, 0.4-0.8 ms on the
 * first replies after the commit: ftrace) */
static void back_alloc(struct srv_proc *p)
{
	p->back = xmap(BACK_SLOTS * sizeof(*p->back), BACK_SLOTS * sizeof(*p->back));
}

/*
 * Remember, for the lazy pages not sent yet that page (its contents: data)
 * points to, where it points to them from (the last one seen wins a slot).
 * A fault on such a page then says where the thread came from: an array or
 * a table it iterates, whose next words the fault thread follows too.
 */
static void note_pointers(struct srv_proc *p, uint64_t page, const uint8_t *data)
{
	if (!p->back)
		back_alloc(p);
	for (uint32_t o = 0; o < DM_PAGE_SIZE; o += 8) {
		uint64_t v;
		memcpy(&v, data + o, sizeof(v));
		uint64_t t = v & ~(uint64_t)(DM_PAGE_SIZE - 1);
		if (!v || t == page || v >= MEM_ADDR_LIMIT || !pageset_contains(&p->sent, t) || pageset_test(&p->sent, t))
			continue;
		p->back[back_slot(t)] = (struct back_ref){ t, page + o };
	}
}

/*
 * Send the pages that the words data[lo, hi) of page point to (data: its
 * contents; it may be buf, which is reused once they are read).  Two
 * levels, depth first: each pointer of the range, then the pointers in the
 * first CHASE_OBJ bytes of the object it points to (a hash entry: its key),
 * in the order a walk of the structure would touch them.  At most
 * s->chase pages.
 */
static int chase(struct mem_server *s, struct srv_proc *p, uint64_t page, const uint8_t *data, uint32_t lo,
		 uint32_t hi, uint8_t *buf)
{
	uint64_t l1[CHASE_MAX];
	size_t max = s->chase, sent = 0;
	size_t n1 = chase_words(p, page, data, lo, hi, l1, 0, max);

	for (size_t i = 0; i < n1 && sent < max; i++) {
		uint64_t v = l1[i], t = v & ~(uint64_t)(DM_PAGE_SIZE - 1);
		if (fault_waits(s))
			return 0;
		/* claim it: the pusher may have sent it meanwhile */
		if (pageset_set(&p->sent, t))
			continue;
		int r = mem_send_pages(s->fault, p->space, p->pid, p->memfd, t, 1, MEM_PF_PREFETCH, buf);
		if (r >= 0)
			fault_wrote(s, 1);
		if (r < 0)
			return r == -EFAULT ? dm_fail(r, "process %d: cannot read %#" PRIx64, p->pid, t) : r;
		atomic_fetch_add(&s->pages_chased, 1);
		sent++;
		/* what the object it points to points to; buf holds page t now */
		note_pointers(p, t, buf);
		uint64_t l2[CHASE_OBJ_PTRS];
		uint32_t o = (uint32_t)(v - t);
		size_t n2 = s->chase_depth > 1 ? chase_words(p, t, buf, o, o + CHASE_OBJ, l2, 0, CHASE_OBJ_PTRS) : 0;
		for (size_t k = 0; k < n2 && sent < max; k++) {
			uint64_t t2 = l2[k] & ~(uint64_t)(DM_PAGE_SIZE - 1);
			if (fault_waits(s))
				return 0;
			if (t2 == page || pageset_set(&p->sent, t2))
				continue;
			r = mem_send_pages(s->fault, p->space, p->pid, p->memfd, t2, 1, MEM_PF_PREFETCH, buf);
			if (r >= 0)
				fault_wrote(s, 1);
			if (r < 0)
				return r == -EFAULT ? dm_fail(r, "process %d: cannot read %#" PRIx64, p->pid, t2) : r;
			atomic_fetch_add(&s->pages_chased, 1);
			note_pointers(p, t2, buf);
			sent++;
		}
	}
	return 0;
}

/*
 * The faulting page was seen pointed to from a word of a page sent before
 * (an array, a hash table the thread iterates): the words after that one
 * point to what the thread touches next.  Their pages go the way the
 * words around the faulting byte went.
 */
static int chase_on(struct mem_server *s, struct srv_proc *p, uint64_t page, uint8_t *buf, uint8_t *from_buf)
{
	struct back_ref *b = p->back && s->chase_on ? &p->back[back_slot(page)] : NULL;
	if (!b || b->target != page)
		return 0;
	uint64_t from = b->from, fpage = from & ~(uint64_t)(DM_PAGE_SIZE - 1);
	b->target = 0;
	if (mem_read_remote(p->pid, p->memfd, fpage, from_buf, DM_PAGE_SIZE) < 0)
		return 0; /* a page we sent: it was readable; nothing to follow otherwise */
	uint32_t o = (uint32_t)(from - fpage) + 8;
	atomic_fetch_add(&s->chases_on, 1);
	return chase(s, p, fpage, from_buf, o, o + CHASE_BYTES, buf);
}

static void *fault_thread(void *arg)
{
	struct mem_server *s = arg;
	mem_fault_thread_priority();
	/* fault_waits() polls for tens of us: the default slack (50 us) would
	 * more than double them */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	/* in before the first request: a reply is a page, its neighbours and
	 * the chased pages (FAULT_BUF_TOUCH); the pointer tables too */
	uint8_t *buf = xmap(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE, FAULT_BUF_TOUCH);
	uint8_t *from_buf = xmap(DM_PAGE_SIZE, DM_PAGE_SIZE);
	for (size_t i = 0; s->chase && i < s->n; i++)
		if (!s->procs[i].back)
			back_alloc(&s->procs[i]);
	int r = 0;

	while (!atomic_load(&s->stop)) {
		struct net_frame f;
		struct mem_wire_req q;
		r = net_recv_hdr(s->fault, &f);
		if (r < 0)
			break;
		if (f.type != MEM_T_REQ || f.len != sizeof(q)) {
			r = dm_fail(-EBADMSG, "fault channel: unexpected frame %#x (%u bytes)", f.type, f.len);
			break;
		}
		r = net_recv_body(s->fault, &q, sizeof(q));
		if (r < 0)
			break;
		struct srv_proc *p = find_proc(s, q.space);
		/* fault_addr may name the faulting byte (START said fault_exact) */
		uint64_t page = q.fault_addr & ~(uint64_t)(DM_PAGE_SIZE - 1);
		uint32_t off = (uint32_t)(q.fault_addr - page);
		if (!p || !q.npages || q.npages > MEM_WINDOW_MAX || !PAGE_ALIGNED(q.addr) ||
		    q.addr >= MEM_ADDR_LIMIT || page < q.addr ||
		    page >= q.addr + (uint64_t)q.npages * DM_PAGE_SIZE || !pageset_contains(&p->sent, page)) {
			r = dm_fail(-EBADMSG, "fault channel: bad request for %#" PRIx64 " (window %#" PRIx64 "+%u) of %u",
				    q.fault_addr, q.addr, q.npages, q.space);
			break;
		}
		atomic_fetch_add(&s->requests, 1);
		s->extras_left = false;
		/* the page itself first, alone, whatever was sent before */
		pageset_set(&p->sent, page);
		r = mem_send_pages(s->fault, p->space, p->pid, p->memfd, page, 1, MEM_PF_FAULT, buf);
		if (r < 0)
			break;
		fault_wrote(s, 1);
		atomic_fetch_add(&s->pages_fault, 1);
		/*
		 * Then the nearest neighbours not sent yet, inline, and the pages
		 * the words around the faulting byte point to (buf holds the page
		 * still): neighbours first on a forward walk (the window starts at
		 * the page: the destination saw the faults go up page by page, a
		 * table scanned, whose words point elsewhere: its next page is
		 * what the thread touches next, the pointers' pages after), else
		 * the pointers first.  The rest of the window goes to the pusher,
		 * which continues from there on the bulk channel: the next fault
		 * must not wait behind a large window here.
		 */
		uint64_t lo = q.addr, hi = q.addr + (uint64_t)q.npages * DM_PAGE_SIZE;
		uint64_t ilo = page >= lo + (PREFETCH_INLINE / 2) * DM_PAGE_SIZE ?
				       page - (PREFETCH_INLINE / 2) * DM_PAGE_SIZE : lo;
		bool walk = page == lo && q.npages > PREFETCH_INLINE;
		if (page == lo)
			ilo = lo; /* a forward walk: only what follows */
		uint64_t ihi = MIN(hi, ilo + PREFETCH_INLINE * DM_PAGE_SIZE);
		/* a walk's next pages inside the window handed to the pusher
		 * before: claimed by it, maybe not out yet (below) */
		bool claimed = walk && ilo + DM_PAGE_SIZE >= p->handed_lo && ihi <= p->handed_hi;
		/* the rest of a window goes to the pusher (also while it holds:
		 * push_held()), now: the extras below may wait for the channel; a
		 * fault whose window ends here (random access) does not move the
		 * push: jumping to random places would leave it small, scattered
		 * frames */
		if (ihi < hi) {
			pthread_mutex_lock(&s->lock);
			atomic_store(&p->hint_end, hi);
			atomic_store(&p->hint, ihi);
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			p->handed_lo = ihi;
			p->handed_hi = hi;
		}
		/*
		 * (read after the faulting page in buf, which the chase reads)
		 * A walk's next pages go even where the pusher claimed them, in
		 * the window handed to it before: they are in one of its frames
		 * on the bulk channel, behind the rest of it, and the walk
		 * outran it (a redis's first request after the resume went over
		 * ~60 pages one fault each, 13 ms, each neighbour claimed by the
		 * window handed to the pusher the fault before).  The destination
		 * installs what comes first.  Elsewhere a page sent is not sent
		 * again (this channel's own extras, a hole told absent).
		 */
		if (walk)
			r = send_pages_of(s, s->fault, p, ilo + DM_PAGE_SIZE, (ihi - ilo) / DM_PAGE_SIZE - 1,
					  MEM_PF_PREFETCH, buf + DM_PAGE_SIZE, &s->pages_prefetch, s->chase > 0, claimed);
		if (r >= 0 && s->chase && off) {
			note_pointers(p, page, buf);
			uint32_t clo = off & ~63u;
			r = chase(s, p, page, buf, clo, clo + CHASE_BYTES, buf);
			if (r >= 0)
				r = chase_on(s, p, page, buf, from_buf);
		}
		if (r >= 0 && !walk)
			r = send_unsent(s, s->fault, p, ilo, (ihi - ilo) / DM_PAGE_SIZE, MEM_PF_PREFETCH, buf,
					&s->pages_prefetch, s->chase > 0);
		if (r < 0)
			break;
	}
	if (r < 0 && !atomic_load(&s->stop))
		set_err(s, r);
	xunmap(buf, MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
	xunmap(from_buf, DM_PAGE_SIZE);
	return NULL;
}

/* Tell the destination a batch of holes (ranges holding no data). */
static int flush_absent(struct mem_server *s, struct srv_proc *p, struct mem_wire_absent_range *v, uint32_t *n)
{
	if (!*n)
		return 0;
	struct mem_wire_absent h = { .space = p->space, .count = *n };
	struct iovec iov[2] = { { &h, sizeof(h) }, { v, *n * sizeof(*v) } };
	int r = net_send_framev(s->bulk, MEM_T_ABSENT, iov, 2);
	*n = 0;
	return r;
}

/*
 * The sparse runs of one process: which of their pages hold data (the tree
 * is frozen: the answer holds until the end); the rest is marked sent and
 * told as absent, so that neither side moves pages of zeros.
 */
static int scan_sparse(struct mem_server *s, struct srv_proc *p)
{
	_cleanup_free_ struct proc_range *runs = NULL;
	_cleanup_free_ struct mem_wire_absent_range *v = NULL;
	_cleanup_close_ int pm = -1;
	size_t cap = 0, n;
	uint32_t nv = 0;
	char path[64];
	int r;

	if (!p->n_sparse)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", p->pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return dm_fail(neg_errno(), "process %d: %s: %m", p->pid, path);
	v = xmalloc(MEM_ABSENT_MAX * sizeof(*v));
	for (size_t i = 0; i < p->n_sparse && !atomic_load(&s->stop); i++) {
		const struct proc_range *sr = &p->sparse[i];
		r = proc_pagemap_data_runs(pm, sr->start, sr->end, &runs, &cap, &n);
		if (r < 0)
			return dm_fail(r, "process %d: PAGEMAP_SCAN %#" PRIx64 ": %s", p->pid, sr->start, strerror(-r));
		uint64_t at = sr->start;
		for (size_t k = 0; k <= n; k++) {
			uint64_t hole_end = k < n ? MAX(runs[k].start, sr->start) : sr->end;
			if (hole_end > at) {
				uint64_t np = (hole_end - at) / DM_PAGE_SIZE;
				pageset_set_range(&p->sent, at, np);
				atomic_fetch_add(&s->pages_absent, np);
				v[nv++] = (struct mem_wire_absent_range){ at, np };
				if (nv == MEM_ABSENT_MAX && (r = flush_absent(s, p, v, &nv)) < 0)
					return r;
			}
			if (k < n) {
				uint64_t next = MAX(runs[k].end, at);
				at = MIN(next, sr->end);
			}
		}
	}
	return flush_absent(s, p, v, &nv);
}

/*
 * Every process's sparse runs (scan_sparse), timed in scan_ms.  At the
 * lowest priority (SCHED_IDLE: thread_walk_section()): a walk of every page
 * table of the frozen copy (20-36 ms of CPU for a redis of 1.3 GiB), when the quiet window after the commit
 * ends, while the tree runs there.  On a host that has other work it takes
 * what they leave; on one machine with the destination, it had both CPUs
 * with the source's check of the VMA flags (ftrace), and each hop of the
 * tree's faults (the fault threads, the tree itself) waited behind them:
 * the client saw 16-21 ms gaps 0.1 s after the commit.
 */
static int scan_all_sparse(struct mem_server *s)
{
	uint64_t t = clock_ns();
	int r = 0;
	thread_walk_section(true);
	for (size_t i = 0; i < s->n && r >= 0; i++)
		r = scan_sparse(s, &s->procs[i]);
	thread_walk_section(false);
	s->scan_ms = ns_to_ms(t, clock_ns());
	return r;
}

/* bytes: pushed since the last call, over ns: how long that took */
static void tune_sndbuf(struct mem_server *s, uint64_t bytes, uint64_t ns)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fd = net_chan_fd(s->bulk);

	if (s->sndbuf_fixed || !ns || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_min_rtt) + sizeof(ti.tcpi_min_rtt) || !ti.tcpi_min_rtt)
		return;
	/*
	 * The rate over a few MiB (TCP's delivery rate jumps with the bursts),
	 * the best seen so far: a push slowed by a late pusher must not shrink
	 * the buffer that would let it catch up.
	 */
	uint64_t rate = bytes * 1000000000ULL / ns;
	s->rate_max = MAX(s->rate_max, rate);
	rate = s->rate_max;
	atomic_store(&s->link_rate, rate);
	uint64_t bdp = rate * (uint64_t)ti.tcpi_min_rtt / 1000000;
	uint64_t lo = MAX(2 * bdp, (uint64_t)SNDBUF_MIN);
	int want = (int)MIN(lo, (uint64_t)SNDBUF_MAX);
	if (want > s->sndbuf + s->sndbuf / 4 || want < s->sndbuf - s->sndbuf / 4) {
		pr_debug("bulk send buffer %d -> %d (min rtt %u us, %" PRIu64 " B/s)", s->sndbuf, want,
			 ti.tcpi_min_rtt, rate);
		s->sndbuf = want;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	}
}

/*
 * One frame of the windows the faults asked for (their rest after the
 * inline neighbours: the hints), the latest window first; false: none left.
 */
static int push_window_frame(struct mem_server *s, uint8_t *buf, bool *pushed)
{
	struct srv_proc *p = NULL;

	*pushed = false;
	for (size_t i = 0; i < s->n; i++) {
		struct srv_proc *q = &s->procs[i];
		uint64_t from = atomic_exchange(&q->hint, 0);
		if (from) {
			q->win = from;
			q->win_end = atomic_load(&q->hint_end);
		}
		if (!p && q->win < q->win_end)
			p = q;
	}
	if (!p)
		return 0;
	uint64_t n = MIN((p->win_end - p->win) / DM_PAGE_SIZE, (uint64_t)PUSH_FRAME_PAGES);
	int r = send_unsent(s, s->bulk, p, p->win, n, MEM_PF_PUSH, buf, &s->pages_pushed, false);
	p->win += n * DM_PAGE_SIZE;
	*pushed = true;
	return r;
}

static bool any_hint(struct mem_server *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (atomic_load(&s->procs[i].hint))
			return true;
	return false;
}

/*
 * While the caller holds the push (mem_server_hold: until the commit) and
 * in the quiet window after it (mem_server_quiet_until), the pusher sends
 * only the rest of the windows that faults ask for: a thread walking a
 * table page by page on the destination would otherwise fault on each one
 * (the fault channel carries a few neighbours), a round trip per page.
 */
static int push_held(struct mem_server *s, uint8_t *buf)
{
	bool test_frame = dm_test_listed("push-held-frame");
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while (r >= 0 && !atomic_load(&s->stop)) {
		uint64_t now = clock_ns();
		if (!s->hold && s->quiet_until <= now)
			break;
		bool pushed;
		pthread_mutex_unlock(&s->lock);
		r = push_window_frame(s, buf, &pushed);
		if (test_frame)
			dm_test_point("push-held-frame"); /* a stop comes now (tests/unit/test_mem.c) */
		pthread_mutex_lock(&s->lock);
		if (pushed || r < 0 || any_hint(s) || atomic_load(&s->stop))
			continue; /* a hint or a stop came while the lock was not held */
		/*
		 * The hold and the window as they are now, not as they were at
		 * the top: mem_server_stop() ends the hold (and signals, to
		 * nobody, while the frame went out) and a window of the past
		 * made a wait of 49 days, the migration's rollback joining
		 * this thread for ever.
		 */
		now = clock_ns();
		if (!s->hold && s->quiet_until <= now)
			break;
		uint64_t ms = s->hold ? 200 : (s->quiet_until - now) / 1000000 + 1;
		cond_wait_ms(&s->cond, &s->lock, (unsigned)MIN(ms, (uint64_t)200));
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *push_thread(void *arg)
{
	struct mem_server *s = arg;
	uint8_t *buf = xmalloc(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
	struct mem_wire_phase ph = { .phase = s->phase };
	uint64_t pushed0 = atomic_load(&s->pages_pushed);
	uint64_t frames = 0, tune_ns = clock_ns(), tune_pages = pushed0;
	size_t cur = 0;
	int r;

	r = net_send_frame(s->bulk, MEM_T_PHASE, &ph, sizeof(ph));
	if (s->phase == MEM_PHASE_INSTALL) {
		/* the working set first: pages of it not sent yet (a fault may
		 * have taken some), in the order given */
		uint64_t hot0 = atomic_load(&s->pages_pushed);
		for (size_t i = 0; i < s->n && r >= 0; i++) {
			struct srv_proc *p = &s->procs[i];
			for (size_t k = 0; k < p->n_hot && r >= 0 && !atomic_load(&s->stop); k++)
				for (uint64_t a = p->hot[k][0]; a < p->hot[k][1] && r >= 0;
				     a += (uint64_t)PUSH_FRAME_PAGES * DM_PAGE_SIZE) {
					uint64_t n = MIN((p->hot[k][1] - a) / DM_PAGE_SIZE, (uint64_t)PUSH_FRAME_PAGES);
					r = send_unsent(s, s->bulk, p, a, n, MEM_PF_PUSH, buf, &s->pages_pushed, false);
				}
		}
		atomic_store(&s->pages_hot, atomic_load(&s->pages_pushed) - hot0);
		/*
		 * The holes of the sparse runs (in the store phase a sparse run
		 * is sent whole: the store must hold every page the restore
		 * fills before the resume) are found and told once the hold
		 * ends, at the commit, not while the destination restores.
		 * Told early, their ABSENT frames (thousands of ranges for a
		 * redis of 1 GiB) waited in the destination's bulk reader until
		 * its handler was in place and were taken in at its RESUMED,
		 * competing with the COMMIT's handling and the tree's first
		 * requests; and the page map's scan (20-40 ms for 1 GiB) took
		 * a CPU from the restore where the hosts share them.  A fault
		 * on a hole before then is asked of the source like any other
		 * and answered with its page of zeros.
		 * DMIGRATE_TEST_SCAN_EARLY=1: as before.
		 */
		bool early = getenv("DMIGRATE_TEST_SCAN_EARLY") != NULL;
		if (early && r >= 0)
			r = scan_all_sparse(s);
		s->pages_held = atomic_load(&s->pages_pushed) - pushed0;
		/* the rest when the caller says (mem_server_hold), and after the
		 * quiet window (mem_server_quiet_until): the tree's first
		 * requests come first; meanwhile only their windows */
		if (r >= 0)
			r = push_held(s, buf);
		if (!early && r >= 0)
			r = scan_all_sparse(s);
		/* the rest in the background (PUSH_NICE_STEP) */
		if (r >= 0 && !atomic_load(&s->stop)) {
			thread_background();
			dm_test_point("src-push-background");
		}
	}
	while (r >= 0 && !atomic_load(&s->stop)) {
		/* the process whose faults came last goes first */
		size_t pi = cur;
		for (size_t i = 0; i < s->n; i++)
			if (atomic_load(&s->procs[i].hint)) {
				pi = i;
				break;
			}
		struct srv_proc *p = &s->procs[pi];
		uint64_t from = atomic_exchange(&p->hint, 0);
		if (!from)
			from = p->cursor;
		uint64_t a;
		if (!pageset_next_clear(&p->sent, from, &a)) {
			/* this one is complete: the next one */
			bool all = true;
			for (size_t i = 0; i < s->n; i++)
				if (!pageset_full(&s->procs[i].sent)) {
					cur = i;
					all = false;
					break;
				}
			if (all)
				break;
			continue;
		}
		long ri = pageset_find(&p->sent, a);
		const struct pageset_region *rg = &p->sent.r[ri];
		uint64_t left = rg->npages - (a - rg->start) / DM_PAGE_SIZE;
		uint64_t n = MIN(left, (uint64_t)PUSH_FRAME_PAGES);
		r = send_unsent(s, s->bulk, p, a, n, MEM_PF_PUSH, buf, &s->pages_pushed, false);
		p->cursor = a + n * DM_PAGE_SIZE;
		cur = pi;
		thread_background_breathe();
		if (++frames % 64 == 0) {
			uint64_t now = clock_ns(), pushed = atomic_load(&s->pages_pushed);
			tune_sndbuf(s, (pushed - tune_pages) * DM_PAGE_SIZE, now - tune_ns);
			tune_pages = pushed;
			tune_ns = now;
		}
	}
	if (r >= 0 && !atomic_load(&s->stop)) {
		struct mem_wire_end e = { .pages = atomic_load(&s->pages_pushed) - pushed0 };
		r = net_send_frame(s->bulk, MEM_T_PUSH_END, &e, sizeof(e));
	}
	if (r < 0 && !atomic_load(&s->stop))
		set_err(s, r);
	pthread_mutex_lock(&s->lock);
	s->push_done = r >= 0;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	free(buf);
	return NULL;
}

int mem_server_start(struct mem_server *s, struct net_chan *fault, struct net_chan *bulk,
		     enum mem_phase phase)
{
	int r;

	if (fault)
		s->fault = fault;
	if (bulk)
		s->bulk = bulk;
	s->phase = phase;
	s->push_done = false;
	if (bulk) {
		/*
		 * The push must not fill a FIFO in front of the link (a bare tbf,
		 * a switch): a fault reply would wait behind it.  With a small
		 * send buffer, TCP keeps little in flight; on a LAN the
		 * bandwidth-delay product is far below it, so the link stays
		 * full while the pusher keeps up.  Where the queue serves the
		 * fault channel first (bands, flow queueing: fault frames are
		 * marked interactive, bulk ones lower-effort), TCP sizes it.
		 */
		const char *e = getenv("DMIGRATE_BULK_SNDBUF");
		int sndbuf = e ? atoi(e) : SNDBUF_MIN;
		s->sndbuf_fixed = e != NULL;
		s->sndbuf = sndbuf;
		/* before the resume nothing faults: the store phase keeps TCP's
		 * own buffer sizing, the link full is all that counts; so does a
		 * push whose queue lets fault replies pass */
		if ((phase == MEM_PHASE_STORE || s->bulk_fill) && !e)
			s->sndbuf_fixed = true;
		else if (sndbuf > 0)
			setsockopt(net_chan_fd(bulk), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		r = -pthread_create(&s->push_thread, NULL, push_thread, s);
		if (r < 0)
			return r;
		s->push_started = true;
		pthread_setname_np(s->push_thread, "dm-push"); /* in traces and top -H */
	}
	if (fault && !s->fault_started) {
		r = -pthread_create(&s->fault_thread, NULL, fault_thread, s);
		if (r < 0)
			return r;
		s->fault_started = true;
		pthread_setname_np(s->fault_thread, "dm-pagesrv"); /* in traces and top -H */
	}
	return 0;
}

void mem_server_bulk_fill(struct mem_server *s, bool fill)
{
	s->bulk_fill = fill;
}

void mem_server_quiet_until(struct mem_server *s, uint64_t until_ns)
{
	pthread_mutex_lock(&s->lock);
	s->quiet_until = until_ns;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void mem_server_hold(struct mem_server *s, bool hold)
{
	pthread_mutex_lock(&s->lock);
	s->hold = hold;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int mem_server_wait_push(struct mem_server *s, int timeout_ms)
{
	pthread_mutex_lock(&s->lock);
	int r = cond_wait_flag(&s->cond, &s->lock, &s->push_done, &s->err.code, timeout_ms);
	pthread_mutex_unlock(&s->lock);
	if (r < 0 && dm_errbox_code(&s->err))
		r = dm_errbox_take(&s->err);
	if (r == 0 && s->push_started) {
		pthread_join(s->push_thread, NULL);
		s->push_started = false;
	}
	return r;
}

int mem_server_error(struct mem_server *s)
{
	return dm_errbox_take(&s->err);
}

void mem_server_stop(struct mem_server *s)
{
	if (!s || atomic_exchange(&s->stop, true))
		return;
	mem_server_hold(s, false); /* a push held after the working set ends */
	if (s->fault)
		net_chan_shutdown(s->fault);
	if (s->bulk)
		net_chan_shutdown(s->bulk);
	if (s->fault_started)
		pthread_join(s->fault_thread, NULL);
	if (s->push_started)
		pthread_join(s->push_thread, NULL);
	s->fault_started = s->push_started = false;
}

void mem_server_free(struct mem_server *s)
{
	if (!s)
		return;
	mem_server_stop(s);
	for (size_t i = 0; i < s->n; i++) {
		pageset_done(&s->procs[i].sent);
		free(s->procs[i].sparse);
		xunmap(s->procs[i].back, BACK_SLOTS * sizeof(*s->procs[i].back));
		free(s->procs[i].hot);
		if (s->procs[i].memfd >= 0)
			close(s->procs[i].memfd);
	}
	free(s->procs);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

void mem_server_get_stats(struct mem_server *s, struct mem_server_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->pages_pushed = atomic_load(&s->pages_pushed);
	ret->pages_fault = atomic_load(&s->pages_fault);
	ret->pages_prefetch = atomic_load(&s->pages_prefetch);
	ret->requests = atomic_load(&s->requests);
	ret->pages_absent = atomic_load(&s->pages_absent);
	ret->pages_chased = atomic_load(&s->pages_chased);
	ret->pages_hot = atomic_load(&s->pages_hot);
	pthread_mutex_lock(&s->lock);
	ret->pages_before_hold = s->pages_held;
	pthread_mutex_unlock(&s->lock);
	ret->hot_given = s->hot_given;
	ret->chases_on = atomic_load(&s->chases_on);
	ret->fault_yields = atomic_load(&s->fault_yields);
	ret->fault_paced = atomic_load(&s->fault_paced);
	ret->fault_pace_gaveup = atomic_load(&s->fault_pace_gaveup);
	ret->scan_ms = s->scan_ms;
	for (size_t i = 0; i < s->n; i++)
		ret->pages_total += s->procs[i].sent.total;
	ret->pages_total -= MIN(ret->pages_total, ret->pages_absent);
}
