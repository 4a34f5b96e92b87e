/* SPDX-License-Identifier: MIT */
/*
 * mem: page sources and sinks, so that every migration mode is one pipeline.
 *
 *   SOURCE HOST                                    DESTINATION HOST
 *   -----------                                    ----------------
 *   mem_dirty  (pre-copy: uffd-wp async +          mem_store (pages that arrived before the
 *     PAGEMAP_SCAN PAGE_IS_WRITTEN)                  restore: pre-copy rounds, stop-and-copy)
 *       |  running tree, process_vm_readv              ^
 *       +------------- bulk: PRECOPY pages ----------->+
 *   mem_server (frozen tree, process_vm_readv)       mem_lazy (userfaultfd of every restored
 *       <------------ fault: MEM_T_REQ ---------------   process: faults, fork/remove/unmap/remap
 *       ------------- fault: FAULT+PREFETCH pages --->   events; installs with UFFDIO_COPY)
 *       ------------- bulk:  PUSH pages ------------->     ^ local sources: mem_store, image files
 *
 * A "space" is one address space of the image: the process's pid in the
 * image (= in the tree's pid namespace).  A forked child of a restored process
 * inherits its parent's space: its missing pages are the parent's.
 *
 * Threads and locks (each object says which of its calls are thread-safe):
 *   mem_lazy:   lazy->lock (rwlock) orders installs against address-space
 *               events (remove, unmap, remap); proc bitmaps are atomics;
 *               lazy->plock (mutex, leaf) guards the pending-fault table and
 *               the proc list.  Order: lock, then plock.
 *   mem_server: srv->lock (mutex, leaf) guards the push cursor hints.
 *   mem_store:  store->lock (rwlock, leaf).
 */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"
#include "image/image.h"
#include "net/net.h"

/* ---- wire: frames of mem on the fault and bulk channels ----------------- */

enum mem_frame_type {
	MEM_T_REQ = NET_T_MEM + 1,      /* dest -> src (fault): struct mem_wire_req */
	MEM_T_PUSH_END = NET_T_MEM + 2, /* src -> dest (bulk): struct mem_wire_end, nothing more pushed */
	MEM_T_PHASE = NET_T_MEM + 3,    /* src -> dest (bulk): struct mem_wire_phase */
	MEM_T_ABSENT = NET_T_MEM + 4,   /* src -> dest (bulk, install phase): struct mem_wire_absent
					 * + count ranges: lazy pages that hold no data (zeros) */
};

/* flags of NET_T_PAGES frames sent by mem */
#define MEM_PF_FAULT (1u << 0)    /* holds the page a fault asked for */
#define MEM_PF_PREFETCH (1u << 1) /* neighbours of a faulting page */
#define MEM_PF_PUSH (1u << 2)     /* background push */
#define MEM_PF_PRECOPY (1u << 3)  /* sent while the tree ran (may be resent later) */
#define MEM_PF_ALL (MEM_PF_FAULT | MEM_PF_PREFETCH | MEM_PF_PUSH | MEM_PF_PRECOPY)

/* Pages per NET_T_PAGES frame that mem sends and accepts. */
#define MEM_FRAME_PAGES_MAX 256u
/* Largest window a fault request may ask for. */
#define MEM_WINDOW_MAX 256u
#define MEM_ADDR_LIMIT (1ULL << 47) /* x86_64 user space, 4-level paging */

struct mem_wire_req {
	uint32_t space;      /* image pid */
	uint32_t npages;     /* window: 1..MEM_WINDOW_MAX */
	uint64_t addr;       /* first page of the window */
	uint64_t fault_addr; /* the faulting page, inside the window; sent whatever else was sent.
			      * The faulting byte's address when the source said it takes
			      * one (MigStart.fault_exact): it follows the pointers there. */
} __attribute__((packed));
_Static_assert(sizeof(struct mem_wire_req) == 24, "fault request is 24 bytes on the wire");

struct mem_wire_end {
	uint64_t pages;      /* pages pushed in this phase */
	uint64_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct mem_wire_end) == 16, "push end is 16 bytes on the wire");

/* Ranges of a sparse run that hold no data on the source: the destination
 * stops waiting for them (a fault there gets the zero page). */
#define MEM_ABSENT_MAX 1024u
struct mem_wire_absent {
	uint32_t space;
	uint32_t count;      /* 1..MEM_ABSENT_MAX ranges follow */
} __attribute__((packed));
struct mem_wire_absent_range {
	uint64_t addr;       /* page aligned */
	uint64_t npages;     /* >= 1, inside one lazy run */
} __attribute__((packed));
_Static_assert(sizeof(struct mem_wire_absent) == 8, "absent header is 8 bytes on the wire");
_Static_assert(sizeof(struct mem_wire_absent_range) == 16, "absent range is 16 bytes on the wire");

enum mem_phase { MEM_PHASE_STORE = 1, MEM_PHASE_INSTALL = 2 };
struct mem_wire_phase {
	uint32_t phase;      /* enum mem_phase: where the following pages go */
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct mem_wire_phase) == 8, "phase is 8 bytes on the wire");

/* The calling thread serves page faults: a high priority (nice
 * FAULT_THREAD_NICE) when allowed, so that a busy host does not queue a
 * fault behind bulk work.  Not a real-time one: SCHED_FIFO fault threads
 * starved the network's own processing (softirq work left to ksoftirqd, a
 * normal thread) on a busy host, and a fault's request or reply then sat
 * 200-550 ms in the stack; at nice -10 none waited more than 20 ms.  Best
 * effort: nothing happens without the privilege; DMIGRATE_NO_RT=1: none. */
#define FAULT_THREAD_NICE (-10)
/*
 * And a short time slice (sched_setattr's sched_runtime for a normal
 * thread, Linux 6.12 on): a thread woken with a shorter slice than the one
 * running preempts it (EEVDF), where a nice alone waits for the running
 * one's slice to end (1.4 ms on two CPUs): ftrace showed a fault's reply
 * read 1.7 ms after it arrived, behind another process.
 * DMIGRATE_FAULT_SLICE_OFF=1: the default slice (benchmarks).
 */
#define FAULT_THREAD_SLICE_NS 100000ULL
void mem_fault_thread_priority(void);

/* ---- pageset: a set of pages over fixed regions (atomic bits) ----------- */

struct pageset_region {
	uint64_t start;             /* page aligned */
	uint64_t npages;
	_Atomic uint64_t *bits;     /* one bit per page */
};

struct pageset {
	struct pageset_region *r;   /* sorted by start, disjoint */
	size_t n;
	uint64_t total;             /* pages in all regions */
	_Atomic uint64_t count;     /* bits set */
};

/* Regions from the pagemap entries of p (lazy_only: those the page server
 * serves, lazy and not `now`), one per entry. */
int pageset_from_pagemap(struct pageset *s, const Dm__Process *p, bool lazy_only);
/* Same regions, no bit set. */
void pageset_clone_empty(struct pageset *dst, const struct pageset *src);
void pageset_done(struct pageset *s);
/* Index of the region holding addr, or -1. */
long pageset_find(const struct pageset *s, uint64_t addr);
bool pageset_contains(const struct pageset *s, uint64_t addr);
/* addr must be in a region. */
bool pageset_test(const struct pageset *s, uint64_t addr);
/* Set the bit; returns its old value (count is kept). */
bool pageset_set(struct pageset *s, uint64_t addr);
/* Set the bits of [addr, addr + npages) that lie in regions (word at a time). */
void pageset_set_range(struct pageset *s, uint64_t addr, uint64_t npages);
/* Clear the bit; returns its old value. */
bool pageset_clear(struct pageset *s, uint64_t addr);
/* Regions from address ranges (sorted, disjoint, page aligned). */
void pageset_from_ranges(struct pageset *s, const uint64_t (*ranges)[2], size_t n);
/* Is [addr, addr + npages) entirely inside one region? */
bool pageset_covers(const struct pageset *s, uint64_t addr, uint64_t npages);
static inline bool pageset_full(const struct pageset *s)
{
	return atomic_load(&s->count) >= s->total;
}
/* First page not set at or after addr (wrapping around); false if all are set. */
bool pageset_next_clear(const struct pageset *s, uint64_t addr, uint64_t *ret_addr);

/* ---- latency histogram (us), for fault latency p50/p99 ------------------ */

struct mem_hist {
	_Atomic uint64_t n;
	_Atomic uint64_t buckets[256]; /* log-linear: 16 sub-buckets per power of two */
	_Atomic uint64_t max_us;
};
void mem_hist_add(struct mem_hist *h, uint64_t us);
/* q in [0,1]; 0 when empty */
double mem_hist_quantile(const struct mem_hist *h, double q);
/* [[upper bound us, count], ...] of the non-empty buckets */
json_t *mem_hist_json(const struct mem_hist *h);

/* ---- mem_store: pages kept on the destination before the restore ------- */

struct mem_store;
/* max_bytes: how much it may hold (a peer cannot make it grow past this). */
int mem_store_new(uint64_t max_bytes, struct mem_store **ret);
void mem_store_free(struct mem_store *s);
/* Receive the data of a NET_T_PAGES frame whose header was read, into the
 * store (new pages or overwriting older copies).  Validates the range. */
int mem_store_recv(struct mem_store *s, struct net_chan *c, const struct net_wire_pages *h);
/* Contents of a page, or NULL; *ret_run: how many pages from addr are stored
 * contiguously in memory (>= 1 when non-NULL). */
const void *mem_store_page(struct mem_store *s, uint32_t space, uint64_t addr, uint32_t max_run,
			   uint32_t *ret_run);
/* Forget a page (it was dirtied after it was stored). */
void mem_store_drop(struct mem_store *s, uint32_t space, uint64_t addr);
uint64_t mem_store_pages(const struct mem_store *s);
/* Pages were installed: their slots are given back to the kernel in batches
 * (holes punched), by a caller that may take the time (may_punch: not the
 * fault path). */
void mem_store_release(struct mem_store *s, uint32_t space, uint64_t addr, uint32_t npages, bool may_punch);

/* ---- mem_lazy: the destination's userfaultfd handler -------------------- */

enum mem_origin { MEM_FROM_FAULT, MEM_FROM_PREFETCH, MEM_FROM_PUSH, MEM_FROM_LOCAL, _MEM_FROM_MAX };

/* Where missing pages come from, apart from what is handed to mem_lazy_install(). */
struct mem_lazy_ops {
	/* Ask the remote side for [addr, addr + npages) of space, which holds the
	 * faulting page fault_addr (the faulting byte: its offset in the page is 0
	 * unless the uffd reports the exact address).  Called from the uffd thread: must not block
	 * long.  NULL: no remote side. */
	int (*request)(void *ctx, uint32_t space, uint64_t fault_addr, uint64_t addr, uint32_t npages);
	/* A local copy of a page (mem_store, image files), or NULL.  *ret_run as
	 * in mem_store_page().  NULL function: no local source. */
	const void *(*local)(void *ctx, uint32_t space, uint64_t addr, uint32_t max_run, uint32_t *ret_run);
	/* Pages of a run were installed from local() (mem_store_release);
	 * background: not by the uffd thread, which must not be held up. */
	void (*local_done)(void *ctx, uint32_t space, uint64_t addr, uint32_t npages, bool background);
	void *ctx;
};

struct mem_lazy_opts {
	struct mem_lazy_ops ops;
	bool push_local;        /* a thread installs every page local() has, in the background */
	unsigned window_min;    /* neighbour window in pages (0: 4) */
	unsigned window_max;    /* (0: MEM_WINDOW_MAX) */
	/* Called (uffd thread) with the userfaultfd of each fork as soon as
	 * its FORK event is read; the callee must not keep it (dup it). */
	void (*on_fork_uffd)(void *arg, int uffd);
	void *on_fork_arg;
};

struct mem_lazy;
struct restore_lazy_proc;

int mem_lazy_new(const struct mem_lazy_opts *o, struct mem_lazy **ret);
/* The body of a restore_lazy_cb: takes over lp->uffd (closes it on error). */
int mem_lazy_add(struct mem_lazy *l, const struct restore_lazy_proc *lp);
/* Install, synchronously, every page of the process added last that local()
 * has; -ENODATA if local() lacks one (the restore must then fail). */
int mem_lazy_fill_local(struct mem_lazy *l, uint32_t space);
/* Start the uffd thread (and the local pusher).  Once per handler. */
int mem_lazy_start(struct mem_lazy *l);
/* Install pages that arrived (thread-safe).  Pages outside what the space
 * still needs are skipped.  -EBADMSG for a range that is not lazy memory of
 * the space (a broken peer), -ESRCH for an unknown space. */
int mem_lazy_install(struct mem_lazy *l, uint32_t space, uint64_t addr, uint32_t npages,
		     const void *data, enum mem_origin origin);
/* Pages [addr, addr + npages) of space hold no data on the source (a hole of
 * a sparse run): stop waiting for them; a fault there gets the zero page.
 * Same checks as mem_lazy_install. */
int mem_lazy_absent(struct mem_lazy *l, uint32_t space, uint64_t addr, uint64_t npages);
/* Every registered address space has every page (or is gone). */
bool mem_lazy_done(struct mem_lazy *l);
/* Wait until done, an error, or timeout_ms (< 0: forever): 0, -errno, -ETIMEDOUT. */
int mem_lazy_wait(struct mem_lazy *l, int timeout_ms);
/* Stop on error: mem_lazy_wait returns err. */
void mem_lazy_fail(struct mem_lazy *l, int err);
/* Next page some address space still needs at or after (space, addr); false if none.
 * Used to pull what the push did not bring (forked children). */
bool mem_lazy_next_missing(struct mem_lazy *l, uint32_t *space, uint64_t *addr, uint32_t *npages);
/* Is the background install from the local source still going?  Its pages
 * need not be asked of the remote side meanwhile (it fills only the
 * original address spaces: once it ends, forks' pages are asked for). */
bool mem_lazy_local_push_active(struct mem_lazy *l);
/* Pages still missing, in every address space still alive (forks too). */
uint64_t mem_lazy_missing(struct mem_lazy *l);
uint64_t mem_lazy_total(struct mem_lazy *l);
/* Known spaces (image pids of the processes added). */
bool mem_lazy_has_space(struct mem_lazy *l, uint32_t space);
/* Does this kernel's userfaultfd offer feature f (UFFD_FEATURE_*)? */
bool mem_uffd_has(uint64_t f);
/* The fault trace (DMIGRATE_FAULT_TRACE=FILE, lazy.c): is it on?  Then the
 * restore asks for UFFD_FEATURE_THREAD_ID, so that it names the threads. */
bool mem_fault_trace_wanted(void);
/* Times of the trace count from ns (clock_ns: when the tree was let go). */
void mem_lazy_trace_origin(struct mem_lazy *l, uint64_t ns);
/* Stop threads, close every uffd (unserved pages then read as zeros: only
 * after done, or to kill). */
void mem_lazy_free(struct mem_lazy *l);

struct mem_lazy_stats {
	uint64_t pages[_MEM_FROM_MAX]; /* installed, by origin */
	uint64_t faults;               /* page fault events */
	uint64_t faults_remote;        /* of which asked of the remote side */
	uint64_t local_fallbacks;      /* of those, pages the local store had, asked of the remote side
					* because an address-space event was queued (the uffd thread
					* never waits for one: it reads them) */
	uint64_t zero_pages;           /* faults outside the page map */
	uint64_t absent;               /* lazy pages the source said hold no data */
	uint64_t forks, removes, unmaps, remaps;
	uint64_t forks_ended;          /* forks that exited, no longer served */
	uint64_t eexist;
	double fault_p50_us, fault_p99_us, fault_max_us;
	/* the slowest fault: when it came (clock_ns; 0: none), its source
	 * address and address space */
	uint64_t slowest_fault_t0_ns, slowest_fault_addr;
	uint32_t slowest_fault_space;
	uint64_t slowest_fault_install_ns;	/* of it: from its page's arrival to installed */
	json_t *fault_hist;            /* mem_hist_json(), owned by the caller */
};
void mem_lazy_get_stats(struct mem_lazy *l, struct mem_lazy_stats *ret);

/* ---- mem_netsrc: destination side of the fault and bulk channels -------- */

struct mem_netsrc;
/* Receivers for the fault channel (replies) and the bulk channel (pushes; in
 * MEM_PHASE_STORE they go to store, in MEM_PHASE_INSTALL to the handler set
 * by mem_netsrc_set_lazy()). */
int mem_netsrc_new(struct net_chan *fault, struct net_chan *bulk, struct mem_store *store,
		   struct mem_netsrc **ret);
/* ops for mem_lazy_opts: request() goes to the fault channel; local() to the store (may be NULL). */
void mem_netsrc_ops(struct mem_netsrc *n, struct mem_lazy_ops *ret);
void mem_netsrc_set_lazy(struct mem_netsrc *n, struct mem_lazy *l);
/*
 * The bulk receiver kept off one CPU (cpu >= 0), or back on every CPU it
 * had (cpu < 0).  The destination's restore holds the tree on the CPU it
 * pinned itself to until COMMIT: the working set the source pushed early
 * is installed meanwhile (mem_netsrc_set_lazy() lets it go), and on that
 * CPU its receiver preempted the restore's thread for the installs (0.3-0.9
 * ms between the restore's end and RESUMED) while the other CPU idled.  No
 * effect with one CPU allowed.
 */
void mem_netsrc_keep_off_cpu(struct mem_netsrc *n, int cpu);
/* The tree runs: the pushed pages' receiver goes PUSH_NICE_STEP nicer (at
 * its next frame); the tree's faults come on the fault channel. */
void mem_netsrc_background(struct mem_netsrc *n);
int mem_netsrc_start(struct mem_netsrc *n);
/* One page now, synchronously (the restore's lazy_fetch): asked on the fault
 * channel, the reply is copied to page (4096 bytes). */
int mem_netsrc_fetch(struct mem_netsrc *n, uint32_t space, uint64_t addr, void *page, int timeout_ms);
/* Wait for MEM_T_PUSH_END of the store phase (stop-and-copy, pre-copy). */
int mem_netsrc_wait_store_end(struct mem_netsrc *n, int timeout_ms);
/* Has the source said it pushed everything (install phase)? */
bool mem_netsrc_push_ended(struct mem_netsrc *n);
/* First error of a receiver thread (0 if none). */
int mem_netsrc_error(struct mem_netsrc *n);
void mem_netsrc_stop(struct mem_netsrc *n); /* shuts the channels down, joins */
void mem_netsrc_free(struct mem_netsrc *n);

/* ---- mem_server: the source side: reads the frozen (or running) tree ---- */

struct mem_server;
int mem_server_new(struct mem_server **ret);
/* A process of the dumped tree; its lazy pagemap entries are what it serves. */
int mem_server_add(struct mem_server *s, uint32_t space, pid_t host_pid, const Dm__Process *img);
/*
 * Pages the tree wrote last before the freeze (its working set, as the
 * source's write tracking saw it): the push sends them first after the
 * resume, in the order given, before anything else.  At most max_pages in
 * all (then -ENOSPC: the rest is pushed in address order as any page).
 * Call before mem_server_start().
 */
int mem_server_hot(struct mem_server *s, uint32_t space, uint64_t addr, uint64_t npages, uint64_t max_pages);
/* Pages the destination has already (sent before the freeze, not dirtied since). */
int mem_server_mark_sent(struct mem_server *s, uint32_t space, uint64_t addr, uint64_t npages);
/* Serve faults on fault (if not NULL) and push on bulk (if not NULL), in the
 * phase given (MEM_PHASE_STORE: everything now, then PUSH_END;
 * MEM_PHASE_INSTALL: after the resume). */
int mem_server_start(struct mem_server *s, struct net_chan *fault, struct net_chan *bulk,
		     enum mem_phase phase);
/*
 * How the push shares the link with fault replies after the resume.  fill:
 * the queue in front of the link serves the fault channel first (see
 * net_egress_of()), the push keeps as much in flight as TCP wants.  Otherwise
 * it keeps about twice the bandwidth-delay product in flight, so that a fault
 * reply waits behind little.  Call before mem_server_start().
 */
void mem_server_bulk_fill(struct mem_server *s, bool fill);
/*
 * hold: the push of the install phase stops after the working set and the
 * sparse runs' scan, until mem_server_hold(s, false) (or stop).  The source
 * starts the push while the destination restores: what the tree will touch
 * first is installed before it runs, the rest would only take the
 * destination's CPU from the restore and queue ahead of the first faults.
 */
void mem_server_hold(struct mem_server *s, bool hold);
/*
 * After the working set, the push (and the scan for the holes of the sparse
 * runs before it) waits until until_ns (CLOCK_MONOTONIC; 0: no wait, or
 * stop); faults are served meanwhile.  Call before the hold ends.
 */
void mem_server_quiet_until(struct mem_server *s, uint64_t until_ns);
/* Wait until the push has sent everything (0) or failed. */
int mem_server_wait_push(struct mem_server *s, int timeout_ms);
int mem_server_error(struct mem_server *s);
void mem_server_stop(struct mem_server *s);
void mem_server_free(struct mem_server *s);
struct mem_server_stats {
	uint64_t pages_pushed, pages_fault, pages_prefetch, requests;
	uint64_t pages_total;          /* lazy pages with data (sparse holes left out once scanned) */
	uint64_t pages_absent;         /* holes of sparse runs: told, not sent */
	uint64_t pages_chased;         /* sent after a faulting page: the words around the fault point to them */
	uint64_t chases_on;            /* faults on a page seen pointed to: the words after that pointer followed */
	uint64_t fault_yields;         /* a fault's extras cut short: another request waited */
	uint64_t fault_paced;          /* an extra waited for the fault channel to drain */
	uint64_t fault_pace_gaveup;    /* ... and was left after FAULT_AHEAD_WAIT_US */
	uint64_t pages_hot;            /* pushed first: written last before the freeze */
	uint64_t hot_given;            /* the working set given (pages; some may have gone by fault first) */
	uint64_t pages_before_hold;    /* pushed before a hold (mem_server_hold) waited */
	double scan_ms;                /* the page map walk of the sparse runs */
};
void mem_server_get_stats(struct mem_server *s, struct mem_server_stats *ret);

/* Send up to MEM_FRAME_PAGES_MAX pages of a process (running or frozen) as
 * one NET_T_PAGES frame.  -EFAULT: they cannot be read (unmapped meanwhile),
 * nothing was sent. */
int mem_send_pages(struct net_chan *c, uint32_t space, pid_t pid, int memfd, uint64_t addr,
		   uint32_t npages, uint32_t flags, void *buf);

/* Read len bytes of host_pid at addr into buf through /proc/PID/mem (memfd;
 * process_vm_readv when it is -1, which unshares copy-on-write pages). */
int mem_read_remote(pid_t pid, int memfd, uint64_t addr, void *buf, size_t len);

/* ---- mem_dirty: pre-copy dirty tracking on a running tree --------------- */

struct mem_dirty;
/* Attach to every process of the tree rooted at pid (briefly stopped to
 * inject a WP_ASYNC userfaultfd, which we take over with pidfd_getfd).
 * space = pid in the tree's pid namespace. */
int mem_dirty_new(pid_t root, struct mem_dirty **ret);
/* Ranges written since the last call (first call: every present page), and
 * (reprotect) write-protect them again, per process.  cb (if not NULL) is
 * called per run.
 * The last scan of a frozen tree needs no reprotect (cheaper). */
typedef int (*mem_dirty_cb)(void *arg, uint32_t space, pid_t host_pid, uint64_t addr, uint64_t npages);
int mem_dirty_scan(struct mem_dirty *d, bool reprotect, mem_dirty_cb cb, void *arg, uint64_t *ret_pages);
/* The same over the private file mappings only (the pages a dump keeps
 * eager): with written, those written since the last reprotecting scan
 * (nothing is reprotected); else every page copied from the file (written
 * once, relocated...), written since or not. */
int mem_dirty_scan_files(struct mem_dirty *d, bool written, mem_dirty_cb cb, void *arg, uint64_t *ret_pages);
/* The pages of the anonymous areas not written since the last reprotecting
 * scan (still protected; nothing is reprotected): a copy read now stays
 * right until a write, which the next scan of the written ones reports. */
int mem_dirty_scan_unwritten(struct mem_dirty *d, mem_dirty_cb cb, void *arg, uint64_t *ret_pages);
/* The same two over [start, end) of one space's anonymous areas only:
 * written, those written since the last reprotecting scan (nothing
 * reprotected); else those not written since, still protected. */
int mem_dirty_scan_in(struct mem_dirty *d, uint32_t space, uint64_t start, uint64_t end, bool written,
		      mem_dirty_cb cb, void *arg, uint64_t *ret_pages);
/* Of the n pages at addr of space (at most 256), how many from the first
 * on are, or are not (*ret_own), the process's own: a page that is still
 * the same frame as its parent's at that address (the parent tracked too)
 * is not, a fork's copy-on-write share, which its image leaves out (the
 * restore makes it inherited).  Unknown (a page map unreadable): own. */
long mem_dirty_own_run(struct mem_dirty *d, uint32_t space, uint64_t addr, uint32_t n, bool *ret_own);
/* The space of the tracked parent of space: true, or false if untracked. */
bool mem_dirty_parent(struct mem_dirty *d, uint32_t space, uint32_t *ret_parent);
/* The processes tracked: space, host pid, /proc/PID/mem (for reading). */
size_t mem_dirty_count(const struct mem_dirty *d);
void mem_dirty_proc(const struct mem_dirty *d, size_t i, uint32_t *ret_space, pid_t *ret_pid, int *ret_memfd);
/* Pages sent and not written since ("clean"): bits over the tracked areas of a space (NULL if untracked). */
struct pageset *mem_dirty_clean(struct mem_dirty *d, uint32_t space);
/* Stop tracking: unregister (closes the uffds; the process runs on
 * unaffected).  Costs a walk of the tracked memory: after the state is sent,
 * or before a rollback's thaw.  The clean sets stay. */
void mem_dirty_detach(struct mem_dirty *d);
void mem_dirty_free(struct mem_dirty *d);
