/* SPDX-License-Identifier: MIT */
/*
 * The source's memory before the freeze (source-int.h): the pre-copy
 * rounds (pre-copy, hybrid), post-copy's working set (the tree's writes
 * tracked from START, pushed first after the freeze) and its pre-send (the
 * eager pages, and a Docker container's lazy memory while the destination
 * starts it), and what each leaves for the freeze (the DIRTY list) and for
 * the page server (the pages already at the destination).
 * docs/migration.md describes each.
 */
#define LOG_PREFIX "migrate: "
#include "migrate/source-int.h"
#include "base/clock.h"
#include "proc/proc.h"

#include <inttypes.h>
#include <string.h>

/* ---- pre-copy ---------------------------------------------------------- */

struct round_ctx {
	struct src *s;
	uint8_t *buf;
	uint64_t sent;
	bool until_ready;   /* hybrid pass of a Docker container: it ends with READY */
	bool cut;           /* it did: the rest goes after the resume */
	uint64_t max;       /* post-copy's pre-send: the store's size in pages */
};

/* The tracker whose clean sets say which pages the destination holds
 * unchanged: the pre-copy rounds', or post-copy's (the pages pre-sent
 * before the freeze); NULL: none. */
static struct mem_dirty *tracked(const struct src *s)
{
	return s->dirty ? s->dirty : s->presend_pages ? s->hot : NULL;
}

static int tracked_memfd(struct mem_dirty *d, uint32_t space)
{
	for (size_t i = 0; i < mem_dirty_count(d); i++) {
		uint32_t sp;
		pid_t p;
		int fd;
		mem_dirty_proc(d, i, &sp, &p, &fd);
		if (sp == space)
			return fd;
	}
	return -1;
}

static int round_cb(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct round_ctx *rc = arg;
	struct src *s = rc->s;
	struct pageset *clean = mem_dirty_clean(s->dirty, space);
	int memfd = tracked_memfd(s->dirty, space);

	for (uint64_t k = 0; k < npages; k += MEM_FRAME_PAGES_MAX) {
		uint32_t n = (uint32_t)MIN(npages - k, (uint64_t)MEM_FRAME_PAGES_MAX);
		uint64_t a = addr + k * DM_PAGE_SIZE;
		/* what is not sent clean now goes after the resume, as any page
		 * the pass has not reached (write-protected or not, it is not in
		 * the clean set) */
		/* READY (or an ABORT): the destination's container runs, the
		 * pass ends (ph_ready reads it) */
		if (rc->until_ready && net_chan_poll_in(s->ctl, 0) > 0) {
			rc->cut = true;
			return -ECANCELED;
		}
		if (clean)
			for (uint32_t j = 0; j < n; j++)
				pageset_clear(clean, a + (uint64_t)j * DM_PAGE_SIZE);
		int r = mem_send_pages(s->bulk, space, pid, memfd, a, n, MEM_PF_PRECOPY, rc->buf);
		if (r == -EFAULT)
			continue; /* unmapped meanwhile: it will not be in the final image, or goes in the final push */
		if (r < 0)
			return r;
		if (clean)
			for (uint32_t j = 0; j < n; j++)
				pageset_set(clean, a + (uint64_t)j * DM_PAGE_SIZE);
		rc->sent += n;
		s->precopy_pages += n;
	}
	return 0;
}

static int final_cb(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct src *s = arg;
	struct pageset *clean = mem_dirty_clean(tracked(s), space);
	(void)pid;
	if (clean)
		for (uint64_t k = 0; k < npages; k++)
			pageset_clear(clean, addr + k * DM_PAGE_SIZE);
	if (s->n_dirty == s->cap_dirty) {
		s->cap_dirty = s->cap_dirty ? s->cap_dirty * 2 : 256;
		s->dirty_ranges = xrealloc(s->dirty_ranges, s->cap_dirty * sizeof(*s->dirty_ranges));
	}
	s->dirty_ranges[s->n_dirty++] = (struct mig_wire_range){ .space = space, .addr = addr, .npages = npages };
	return 0;
}

/* Every page sent before the freeze goes again (the scan that says which
 * were written since failed): all clean runs in the DIRTY list, none left
 * clean.  Only for post-copy's pre-send (the rounds' tracker fails whole). */
static int drop_presend(struct src *s)
{
	for (size_t i = 0; i < mem_dirty_count(s->hot); i++) {
		uint32_t space;
		pid_t pid;
		int fd;
		mem_dirty_proc(s->hot, i, &space, &pid, &fd);
		struct pageset *clean = mem_dirty_clean(s->hot, space);
		if (!clean)
			continue;
		for (size_t k = 0; k < clean->n; k++) {
			const struct pageset_region *rg = &clean->r[k];
			for (uint64_t j = 0; j < rg->npages;) {
				if (!pageset_test(clean, rg->start + j * DM_PAGE_SIZE)) {
					j++;
					continue;
				}
				uint64_t run = 1;
				while (j + run < rg->npages && pageset_test(clean, rg->start + (j + run) * DM_PAGE_SIZE))
					run++;
				/* final_cb clears them */
				int r = final_cb(s, space, pid, rg->start + j * DM_PAGE_SIZE, run);
				if (r < 0)
					return r;
				j += run;
			}
		}
	}
	s->presend_pages = s->presend_lazy_pages = 0;
	return 0;
}

int src_precopy(struct src *s)
{
	struct mem_wire_phase ph = { .phase = MEM_PHASE_STORE };
	unsigned max_rounds = s->o->precopy_max_rounds ? s->o->precopy_max_rounds : 12;
	uint64_t stop_pages = s->o->precopy_stop_pages ? s->o->precopy_stop_pages : 1024;
	uint64_t prev = UINT64_MAX;
	/* a Docker container's destination starts it meanwhile: the pass uses
	 * that time and ends with READY, so the freeze does not wait for it */
	struct round_ctx rc = { .s = s, .until_ready = s->o->mode == MIG_HYBRID && s->ready_later };
	int r;

	atomic_store(&s->phase, "tracking");
	r = mem_dirty_new(s->o->pid, &s->dirty);
	if (r < 0)
		return r;
	r = net_send_frame(s->bulk, MEM_T_PHASE, &ph, sizeof(ph));
	if (r < 0)
		return r;
	s->rounds = json_array();
	rc.buf = xmalloc(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
	for (unsigned round = 0;; round++) {
		uint64_t t = clock_ns(), scanned = 0;
		atomic_store(&s->phase, round ? "pre-copy" : "pre-copy (all)");
		rc.sent = 0;
		r = mem_dirty_scan(s->dirty, true, round_cb, &rc, &scanned);
		if (r == -ECANCELED && rc.cut) {
			dm_error_clear();
			r = 0;
		}
		if (r < 0)
			break;
		double ms = ns_to_ms(t, clock_ns());
		json_t *j = json_object();
		json_object_set_new(j, "pages", json_integer((json_int_t)scanned));
		json_object_set_new(j, "sent", json_integer((json_int_t)rc.sent));
		json_object_set_new(j, "ms", json_real(ms));
		if (rc.cut)
			json_object_set_new(j, "cut_at_ready", json_true());
		json_array_append_new(s->rounds, j);
		src_say(s, "pre-copy round %u: %" PRIu64 " pages (%.1f MiB) in %.0f ms", round, scanned,
		    (double)rc.sent * 4 / 1024, ms);
		mig_test_point("src-precopy");
		if (s->o->mode == MIG_HYBRID)
			break; /* one pass, then post-copy */
		if (round > 0 && (scanned <= stop_pages || scanned * 10 > prev * 9))
			break; /* small enough, or no longer shrinking */
		if (round + 1 >= max_rounds)
			break;
		prev = scanned;
	}
	free(rc.buf);
	if (r >= 0 && s->o->mode == MIG_HYBRID) {
		/* the end of the stored pages: the destination must have them all
		 * before it drops the dirtied ones and installs the rest (pre-copy
		 * ends its store phase with the final push instead) */
		struct mem_wire_end e = { .pages = rc.sent };
		r = net_send_frame(s->bulk, MEM_T_PUSH_END, &e, sizeof(e));
	}
	return r;
}

/* ---- post-copy: the working set, the pre-send -------------------------- */

/* DMIGRATE_HOT_MAX_MB: at most so much of the working set goes first */
static uint64_t hot_max_pages(void)
{
	const char *e = getenv("DMIGRATE_HOT_MAX_MB");
	unsigned long mb = e && *e ? strtoul(e, NULL, 10) : 64;
	return (uint64_t)mb * (1048576 / DM_PAGE_SIZE);
}

/*
 * prepare (post-copy; DMIGRATE_HOT_PUSH=0: off), once START is sent: the
 * pages the tree writes from now to the freeze are tracked (uffd-wp async,
 * as the pre-copy rounds: mem/dirty.c); after the resume they are pushed
 * first.  A container's preparation (its launch at the destination) lasts
 * long enough that what the tree wrote in it is what it touches right after
 * the resume: without this, each of those pages is a fault, a round trip
 * in series, and the service answers its first requests only after them.
 * Only an order: every page is still read from the frozen tree after the
 * freeze.  The tracking is also what lets the eager pages go before the
 * freeze (src_presend()).  A tree that cannot be tracked (its own
 * userfaultfd...) migrates as before.
 */
bool src_hot_wanted(const struct src *s)
{
	return s->o->mode == MIG_POST_COPY && !env_off("DMIGRATE_HOT_PUSH");
}

/* The eager pages sent before the freeze (post-copy, where the writes are
 * tracked; DMIGRATE_EAGER_PRESEND=0: in the freeze, as before). */
bool src_presend_wanted(const struct src *s)
{
	return src_hot_wanted(s) && !env_off("DMIGRATE_EAGER_PRESEND");
}

void src_hot_track(struct src *s)
{
	if (!src_hot_wanted(s))
		return;
	s->hot_tried = true;
	s->hot_max = hot_max_pages();
	uint64_t t = clock_ns();
	int r = mem_dirty_new(s->o->pid, &s->hot);
	s->hot_attach_ms = ns_to_ms(t, clock_ns());
	/* every page as it is now: protected, so that a write shows.  A walk
	 * of all the tree's memory while it runs (~100 ms of CPU for 1.3 GiB
	 * here): at nice 19, so that the tree's own threads come first */
	if (r >= 0) {
		thread_prep_walk_section(true);
		r = mem_dirty_scan(s->hot, true, NULL, NULL, NULL);
		thread_prep_walk_section(false);
	}
	s->hot_track_ms = ns_to_ms(t, clock_ns());
	if (r < 0) {
		pr_info("the pages the tree writes are not tracked (%s): pushed in address order",
			dm_last_error()[0] ? dm_last_error() : strerror(-r));
		mem_dirty_free(s->hot);
		s->hot = NULL;
		dm_error_clear();
	}
}

static int hot_cb(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct src *s = arg;
	(void)pid;
	s->hot_pages += npages;
	mem_server_hot(s->srv, space, addr, npages, s->hot_max);
	return 0;
}

static int presend_cb(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct round_ctx *rc = arg;
	struct src *s = rc->s;
	struct pageset *clean = mem_dirty_clean(s->hot, space);
	int memfd = tracked_memfd(s->hot, space);

	for (uint64_t k = 0; k < npages && clean;) {
		uint64_t a = addr + k * DM_PAGE_SIZE;
		bool own;
		/* READY (or an ABORT): the container runs there, the freeze
		 * comes now (ph_ready reads it); the rest after the resume */
		if (rc->until_ready && net_chan_poll_in(s->ctl, 0) > 0) {
			rc->cut = true;
			return -ECANCELED;
		}
		/* sent already (a parent's page two children share) */
		if (pageset_test(clean, a)) {
			k++;
			continue;
		}
		/* a fork's page still its parent's is not in its image */
		uint32_t n = (uint32_t)mem_dirty_own_run(s->hot, space, a,
							 (uint32_t)MIN(npages - k, (uint64_t)MEM_FRAME_PAGES_MAX), &own);
		k += n;
		if (!own)
			continue;
		if (rc->sent + n > rc->max)
			return -ENOSPC; /* the store's size: the rest in the freeze, or lazily */
		int r = mem_send_pages(s->bulk, space, pid, memfd, a, n, MEM_PF_PRECOPY, rc->buf);
		if (r == -EFAULT)
			continue; /* unmapped meanwhile */
		if (r < 0)
			return r;
		/* clean from now on: a write after the scan shows in the last one */
		for (uint32_t j = 0; j < n; j++)
			pageset_set(clean, a + (uint64_t)j * DM_PAGE_SIZE);
		rc->sent += n;
	}
	return 0;
}

/* Record [a, e) of space for the freeze's scan of what was written since
 * (src_mem_frozen), then pre-send its pages not written since START. */
static int presend_range(struct src *s, struct round_ctx *rc, uint32_t space, uint64_t a, uint64_t e)
{
	if (s->n_presend_ranges == s->cap_presend_ranges) {
		s->cap_presend_ranges = s->cap_presend_ranges ? s->cap_presend_ranges * 2 : 16;
		s->presend_ranges = xrealloc(s->presend_ranges, s->cap_presend_ranges * sizeof(*s->presend_ranges));
	}
	s->presend_ranges[s->n_presend_ranges++] = (struct src_presend_range){ space, a, e };
	return mem_dirty_scan_in(s->hot, space, a, e, false, presend_cb, rc, NULL);
}

/*
 * The stacks of the tree's blocked threads: the dump keeps the pages
 * around each stack pointer eager (dump_stack_eager()), 5 pages a thread
 * in the state, in the downtime, however many threads a service has.  A
 * thread blocked in a system call (epoll_wait, a futex: most of a
 * service's threads most of the time) has its stack pointer in
 * /proc/PID/task/TID/syscall; those of its pages not written since START
 * (still protected) go now, marked clean; a write after that shows in the
 * freeze's scan of these ranges (src_mem_frozen), which sends it in the
 * image.  A thread that runs, or whose stack pointer has moved by the
 * freeze, has its eager pages read in the freeze, as before.
 */
static int presend_stacks(struct src *s, struct round_ctx *rc)
{
	for (size_t i = 0; i < mem_dirty_count(s->hot); i++) {
		uint32_t space;
		pid_t pid;
		int fd;
		_cleanup_free_ pid_t *tids = NULL;
		size_t nt = 0;
		mem_dirty_proc(s->hot, i, &space, &pid, &fd);
		if (proc_read_tasks(pid, &tids, &nt) < 0) {
			dm_error_clear();
			continue;	/* exited */
		}
		for (size_t k = 0; k < nt; k++) {
			uint64_t sp, a, e, before = rc->sent;
			if (proc_read_blocked_sp(pid, tids[k], &sp) <= 0) {
				dm_error_clear();
				continue;
			}
			dump_stack_eager(sp, &a, &e);
			int r = presend_range(s, rc, space, a, e);
			s->presend_stack_pages += rc->sent - before;
			pr_debug("thread %d of process %d: stack pointer %#" PRIx64 ", %" PRIu64 " of its stack's eager pages sent",
				 tids[k], pid, sp, rc->sent - before);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* A child's pages not written since START: the runs that are still its
 * parent's frames go from the parent (presend_range). */
struct shared_ctx {
	struct src *s;
	struct round_ctx *rc;
	uint32_t parent;
};

static int shared_cb(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct shared_ctx *x = arg;
	(void)pid;
	for (uint64_t k = 0; k < npages;) {
		bool own;
		uint64_t a = addr + k * DM_PAGE_SIZE;
		long n = mem_dirty_own_run(x->s->hot, space, a, (uint32_t)MIN(npages - k, (uint64_t)256), &own);
		if (n <= 0)
			break;
		if (!own) {
			uint64_t before = x->rc->sent;
			int r = presend_range(x->s, x->rc, x->parent, a, a + (uint64_t)n * DM_PAGE_SIZE);
			x->s->presend_shared_pages += x->rc->sent - before;
			if (r < 0)
				return r;
		}
		k += (uint64_t)n;
	}
	return 0;
}

/*
 * The pages a child shares with its parent (forked, not written since by
 * either: an nginx's workers and their master) are eager in the parent's
 * image, so that the restore forks the child with them (dump_inherit):
 * 200 KB for nginx, in the state, in the downtime.  Those not written since
 * START go now from the parent, marked clean; the freeze's scan covers
 * their ranges in the parent.
 */
static int presend_shared(struct src *s, struct round_ctx *rc)
{
	for (size_t i = 0; i < mem_dirty_count(s->hot); i++) {
		uint32_t space, parent;
		pid_t pid;
		int fd;
		mem_dirty_proc(s->hot, i, &space, &pid, &fd);
		if (!mem_dirty_parent(s->hot, space, &parent))
			continue;
		struct shared_ctx x = { s, rc, parent };
		int r = mem_dirty_scan_in(s->hot, space, 0, UINT64_MAX, false, shared_cb, &x, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * post-copy, before the freeze: the pages the dump would otherwise send in
 * it.  A userfaultfd cannot serve a private file mapping, so its copied
 * pages (the relocated data of the binary and its libraries, written once
 * at start: 1.1 MiB for redis) are eager, sent with the state in the
 * downtime.  They go now into the destination's store (MEM_PHASE_STORE,
 * then the store's end), each marked clean in the tracker's set; the
 * tracking began at START, so a page written after its copy was read
 * shows in the last scan (ph_freeze_dump): it goes in the image, and its
 * old copy is dropped there (the DIRTY list).  The rest the restore takes
 * from the store (the dump marks them `now`: src_page_at_dest()).
 *
 * A Docker container then starts at the destination, for 0.5 s or more,
 * and the link would be idle until READY: the lazy memory goes meanwhile
 * into the same store (MigStart.store_lazy), the pages not written since
 * START, smallest area first (mem/dirty.c, scan_order(); those written
 * are the working set, pushed first after the freeze, and would likely be
 * written again), until READY comes.  The destination installs them from its store after the resume
 * and serves a fault from it; the freeze's scan gives those written since
 * (the DIRTY list: their copies dropped there).  The pre-send stops at
 * READY and costs no time: what went need not go after.  The freeze waits
 * only for what of it is still in flight to be acknowledged (source.c,
 * drain_presend()): the destination restores nothing before the store's end.
 */
int src_presend(struct src *s)
{
	struct mem_wire_phase ph = { .phase = MEM_PHASE_STORE };
	struct round_ctx rc = { .s = s, .max = MIN((uint64_t)PRESEND_MAX_PAGES, s->store_pages) };
	uint64_t t = clock_ns();
	int r = net_send_frame(s->bulk, MEM_T_PHASE, &ph, sizeof(ph));
	if (r < 0)
		return r;
	/* untracked (the tracking failed): nothing can be known clean */
	if (s->hot) {
		atomic_store(&s->phase, "sending eager pages");
		rc.buf = xmalloc(MEM_FRAME_PAGES_MAX * DM_PAGE_SIZE);
		r = mem_dirty_scan_files(s->hot, false, presend_cb, &rc, NULL);
		if (r >= 0 && !env_off("DMIGRATE_STACK_PRESEND"))
			r = presend_stacks(s, &rc);
		if (r >= 0 && !env_off("DMIGRATE_SHARED_PRESEND"))
			r = presend_shared(s, &rc);
		if (r == -ENOSPC) {
			dm_error_clear();
			r = 0;
		}
		if (r >= 0 && s->store_lazy) {
			uint64_t eager = rc.sent;
			atomic_store(&s->phase, "sending memory while the destination starts the container");
			rc.max = s->store_pages;
			rc.until_ready = true;
			r = mem_dirty_scan_unwritten(s->hot, presend_cb, &rc, NULL);
			if (r == -ENOSPC || (r == -ECANCELED && rc.cut)) {
				dm_error_clear();
				r = 0;
			}
			s->presend_lazy_pages = rc.sent - eager;
			s->presend_cut = rc.cut;
		}
		free(rc.buf);
		if (r < 0)
			return r;
	}
	/* the store's end: the destination restores nothing before it */
	struct mem_wire_end e = { .pages = rc.sent };
	r = net_send_frame(s->bulk, MEM_T_PUSH_END, &e, sizeof(e));
	s->presend_pages = rc.sent;
	s->presend_ms = ns_to_ms(t, clock_ns());
	if (rc.sent)
		pr_info("%" PRIu64 " eager pages sent before the freeze, %" PRIu64 " of the lazy memory%s (%.1f ms)",
			rc.sent - s->presend_lazy_pages, s->presend_lazy_pages,
			s->presend_cut ? " until the destination's container ran" : "", s->presend_ms);
	mig_test_point("src-presend");
	return r;
}

/* The page is at the destination, unchanged: sent clean by a pre-copy round
 * (asked after the last scan, in the freeze). */
bool src_page_at_dest(void *arg, pid_t vpid, uint64_t addr)
{
	struct src *s = arg;
	struct mem_dirty *t = tracked(s);
	struct pageset *clean = t ? mem_dirty_clean(t, (uint32_t)vpid) : NULL;
	return clean && pageset_test(clean, addr);
}

/* In the freeze, before the dump collects: the pages sent before it and
 * written since (the pre-copy rounds', post-copy's pre-send) go to the
 * DIRTY list, their clean bits cleared. */
int src_mem_frozen(struct src *s)
{
	int r = 0;
	if (s->dirty) {
		uint64_t n = 0;
		uint64_t t = clock_ns();
		r = mem_dirty_scan(s->dirty, false, final_cb, s, &n);
		if (r < 0)
			return r;
		pr_info("%" PRIu64 " pages written since the last round (scan %.1f ms)", n, ns_to_ms(t, clock_ns()));
	} else if (s->presend_pages) {
		/* the pages written since they went: the eager ones in the image,
		 * the lazy ones after the resume, their old copies dropped there
		 * (nothing reprotected: the working set's scan after the freeze
		 * still sees them).  The lazy memory's scan gives every page
		 * written since START, sent or not (dropping one that is not in
		 * the store costs nothing) */
		r = s->presend_lazy_pages ? mem_dirty_scan(s->hot, false, final_cb, s, &s->presend_written) :
					    mem_dirty_scan_files(s->hot, true, final_cb, s, &s->presend_written);
		/* and the stacks' and shared pages' ranges (the whole scan above
		 * covers them) */
		for (size_t i = 0; r >= 0 && !s->presend_lazy_pages && i < s->n_presend_ranges; i++) {
			uint64_t n = 0;
			const struct src_presend_range *g = &s->presend_ranges[i];
			r = mem_dirty_scan_in(s->hot, g->space, g->start, g->end, true, final_cb, s, &n);
			s->presend_written += n;
		}
		if (r < 0) {
			/* not known: every one goes again, the store's copies
			 * dropped there (each run of them in the DIRTY list) */
			pr_info("the pages sent before the freeze go again (%s)",
				dm_last_error()[0] ? dm_last_error() : strerror(-r));
			dm_error_clear();
			r = drop_presend(s);
			if (r < 0)
				return r;
		}
	}
	return r;
}

/* After the freeze, before the push: the working set (what the tree wrote
 * since the tracking began; the tree is frozen for good here, out of the
 * frozen window) is given to the page server, to go first. */
void src_hot_scan(struct src *s)
{
	if (s->hot) {
		uint64_t t = clock_ns();
		int r = mem_dirty_scan(s->hot, false, hot_cb, s, NULL);
		s->hot_scan_ms = ns_to_ms(t, clock_ns());
		if (r < 0) {
			pr_info("the working set is not known (%s): pushed in address order",
				dm_last_error()[0] ? dm_last_error() : strerror(-r));
			dm_error_clear();
		}
	}
}

/* The pages the destination holds unchanged (sent clean before the
 * freeze) are sent as far as the page server of space pid is concerned. */
void src_mark_clean_sent(struct src *s, pid_t pid)
{
	struct pageset *clean = tracked(s) ? mem_dirty_clean(tracked(s), pid) : NULL;
	if (!clean)
		return;
	/*
	 * Runs of clean pages, a word of the bitmap at a time: a word of
	 * zeros or of ones at once, a mixed one by its transitions.  The set
	 * spans the whole tree (a redis's 1.3 GiB: 340k bits, most of them 0
	 * in post-copy); bit by bit it took ~0.5 ms between the dump and the
	 * state.
	 */
	for (size_t k = 0; k < clean->n; k++) {
		const struct pageset_region *rg = &clean->r[k];
		uint64_t run0 = 0, run = 0;
		for (uint64_t w = 0; w * 64 < rg->npages; w++) {
			uint64_t bits = atomic_load(&rg->bits[w]), base = w * 64;
			unsigned valid = (unsigned)MIN(rg->npages - base, (uint64_t)64);
			if (valid < 64)
				bits &= (1ULL << valid) - 1;
			if (bits == ~0ULL) {
				if (!run)
					run0 = base;
				run += 64;
				continue;
			}
			for (unsigned b = 0; b < valid;) {
				uint64_t rest = bits >> b;
				if (rest & 1) {
					unsigned len = (unsigned)__builtin_ctzll(~rest); /* ~rest has ones above bit 63-b */
					if (!run)
						run0 = base + b;
					run += len;
					b += len;
					continue;
				}
				if (run)
					mem_server_mark_sent(s->srv, pid, rg->start + run0 * DM_PAGE_SIZE, run);
				run = 0;
				if (!rest)
					break;
				b += (unsigned)__builtin_ctzll(rest);
			}
		}
		if (run)
			mem_server_mark_sent(s->srv, pid, rg->start + run0 * DM_PAGE_SIZE, run);
	}
}

/*
 * How long after the commit the source serves faults only
 * (DMIGRATE_QUIET_MS, 0: not at all).  The push beyond the working set, the
 * scan for the sparse runs' holes before it and the check of the VMA flags
 * wait so long: the tree's first requests on the destination fault in pages
 * the push would not bring in time, and each of those faults waited for a
 * CPU that the push's reads and encryption and the two scans (25-45 ms of
 * CPU each for a redis of 1.3 GiB) kept busy.
 */
#define SRC_QUIET_MS 100

uint64_t src_quiet_ns(void)
{
	const char *e = getenv("DMIGRATE_QUIET_MS");
	long ms;
	if (e && parse_long(e, &ms) >= 0 && ms >= 0 && ms <= 10000)
		return (uint64_t)ms * 1000000;
	return (uint64_t)SRC_QUIET_MS * 1000000;
}
