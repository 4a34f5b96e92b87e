/* SPDX-License-Identifier: MIT */
/*
 * mem_dirty: which pages a running tree writes, for pre-copy rounds.
 *
 * This kernel has no soft-dirty bits we can use; instead (DESIGN.md):
 *   1. stop the main thread of each process for a moment (PTRACE_SEIZE +
 *      INTERRUPT), and with syscalls injected at a `syscall` instruction of
 *      its vDSO: create a userfaultfd, take it over with pidfd_getfd, close
 *      it in the process, restore the registers (an interrupted syscall
 *      restarts) and detach; then, the process running again, on our copy:
 *      UFFDIO_API with UFFD_FEATURE_WP_ASYNC and UFFDIO_REGISTER of every
 *      private writable area for write-protection (a uffd acts on the mm
 *      that made it, whoever calls);
 *   2. each round: PAGEMAP_SCAN over the registered areas with
 *      PM_SCAN_WP_MATCHING: returns the pages written since the last scan
 *      (anonymous, not the zero page, not page cache) and write-protects them
 *      again, atomically.  In async mode the kernel resolves a write to a
 *      protected page by itself (the process never waits on us) and the page
 *      reads as written until the next scan.
 * Only entries holding a page are ever protected (the scan's anyof mask):
 * WP_UNPOPULATED is not needed (measured on 6.18: PM_SCAN_CHECK_WPASYNC works
 * without it), and no uffd-wp marker is left on an empty entry, where the
 * dump would read it as a swapped page.  So the dump may run while we are
 * attached.  Detaching closes our uffd: the kernel unregisters the areas and
 * drops the protections (a walk of every page: not in the downtime), and the
 * process runs on as if nothing happened.
 *
 * What is not tracked (areas created after step 1, processes forked later,
 * areas the kernel refuses) is never "clean": the final push sends it.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "base/log.h"
#include "dump/dump.h"
#include "inject/inject.h"
#include "proc/proc.h"
#include "compat.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

struct dirty_proc {
	uint32_t space;
	pid_t pid;
	int memfd;      /* /proc/PID/mem, for reading */
	int pagemap;    /* /proc/PID/pagemap */
	pid_t ppid;
	int uffd;       /* ours; -1 once detached or if untracked */
	uint64_t (*ranges)[2];
	bool *file;     /* per range: a private file mapping's */
	size_t nranges;
	struct pageset clean;
};

/* mem_dirty_own_run() looks at so many pages at most */
#define OWN_RUN_MAX 256u

struct mem_dirty {
	struct dirty_proc *p;
	size_t n;
};

size_t mem_dirty_count(const struct mem_dirty *d)
{
	return d->n;
}

void mem_dirty_proc(const struct mem_dirty *d, size_t i, uint32_t *ret_space, pid_t *ret_pid, int *ret_memfd)
{
	*ret_space = d->p[i].space;
	*ret_pid = d->p[i].pid;
	*ret_memfd = d->p[i].memfd;
}

static struct dirty_proc *proc_of(struct mem_dirty *d, uint32_t space)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->p[i].space == space)
			return &d->p[i];
	return NULL;
}

struct pageset *mem_dirty_clean(struct mem_dirty *d, uint32_t space)
{
	struct dirty_proc *p = proc_of(d, space);
	return p && (p->uffd >= 0 || p->clean.n) ? &p->clean : NULL;
}

static bool trackable(const struct proc_vma *v)
{
	/* a private file mapping read-only now may hold copied pages (its
	 * relocations, RELRO) and be made writable again: its copies are
	 * eager pages all the same */
	if (v->shared || !(v->prot & (v->kind == PROC_VMA_FILE ? PROT_READ | PROT_WRITE : PROT_WRITE)))
		return false;
	if (v->has_vmflags && (v->vmflags & (PROC_VMF_HT | PROC_VMF_PF | PROC_VMF_IO)))
		return false;
	switch (v->kind) {
	case PROC_VMA_ANON:
	case PROC_VMA_ANON_NAMED:
	case PROC_VMA_HEAP:
	case PROC_VMA_STACK:
	case PROC_VMA_FILE:
		return true;
	default:
		return false;
	}
}

/*
 * Step 1 of the header, on one process: only the userfaultfd() call runs in
 * the stopped thread.  The uffd's context belongs to the mm that made it,
 * and UFFDIO_API and UFFDIO_REGISTER act on that mm whoever calls them: we
 * set it up on our copy (pidfd_getfd) once the process runs again.  (Made
 * in the stopped thread, one injected call per area, a redis with 118 areas
 * was stopped 8-28 ms, a gap its clients saw before the migration began.)
 * Untracked (returns 0, uffd -1) when it cannot be done.
 */
static int attach(struct dirty_proc *p)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list vl = {};
	struct inject_live lv;
	long ufd = -1;
	int err;

	/* its main thread is stopped for the injection: one blocked in
	 * vfork() never stops (refused as the dump's seize would) */
	err = dump_check_vfork(p->pid, p->pid);
	if (err < 0)
		return err;
	err = inject_live_begin(p->pid, &lv);
	if (err < 0)
		return dm_wrap(err, "process %d: cannot track its writes", p->pid);
	ufd = inject_live_call(&lv, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	if (ufd == -EPERM)
		/* a process without CAP_SYS_PTRACE (a container's) where
		 * vm.unprivileged_userfaultfd is 0 may still make one for faults
		 * in user mode: enough, async write-protection never asks */
		ufd = inject_live_call(&lv, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, 0, 0, 0,
				       0);
	if (ufd < 0) {
		err = (int)ufd;
	} else {
		int pfd = syscall(SYS_pidfd_open, p->pid, 0);
		if (pfd >= 0) {
			p->uffd = syscall(SYS_pidfd_getfd, pfd, (int)ufd, 0);
			if (p->uffd < 0)
				err = neg_errno();
			close(pfd);
		} else {
			err = neg_errno();
		}
		inject_live_call(&lv, SYS_close, ufd, 0, 0, 0, 0, 0);
	}
	if (inject_live_end(&lv) < 0 && !err)
		err = -EIO;
	/* it runs again: the uffd set up from here */
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	if (!err && p->uffd >= 0 && ioctl(p->uffd, UFFDIO_API, &api) < 0)
		err = neg_errno();
	if (!err && p->uffd >= 0) {
		int r = proc_read_maps(p->pid, &vl);
		if (r < 0)
			err = r;
	}
	for (size_t i = 0; !err && p->uffd >= 0 && i < vl.n; i++) {
		const struct proc_vma *v = &vl.vmas[i];
		if (!trackable(v))
			continue;
		struct uffdio_register reg = { .range = { v->start, v->end - v->start }, .mode = UFFDIO_REGISTER_MODE_WP };
		if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
			/* refused, or changed since the maps were read */
			pr_debug("process %d: cannot track %#" PRIx64 "-%#" PRIx64 " %s: %m", p->pid, v->start, v->end,
				 v->path);
			continue;
		}
		p->ranges = xrealloc(p->ranges, (p->nranges + 1) * sizeof(*p->ranges));
		p->file = xrealloc(p->file, (p->nranges + 1) * sizeof(*p->file));
		p->ranges[p->nranges][0] = v->start;
		p->ranges[p->nranges][1] = v->end;
		p->file[p->nranges] = v->kind == PROC_VMA_FILE;
		p->nranges++;
	}
	if (err < 0 || p->uffd < 0) {
		pr_info("process %d: its writes cannot be tracked (%s): its pages go in the final copy", p->pid,
			strerror(err < 0 ? -err : EINVAL));
		if (p->uffd >= 0)
			close(p->uffd);
		p->uffd = -1;
		p->nranges = 0;
	}
	pageset_from_ranges(&p->clean, (const uint64_t(*)[2])p->ranges, p->nranges);
	return 0;
}

/* The tree under root (root first), with the pids in its pid namespace. */
static int walk_tree(pid_t root, struct mem_dirty *d)
{
	struct proc_status ps = {};
	unsigned level;
	int r;

	r = proc_read_status(root, 0, &ps);
	if (r < 0)
		return dm_fail(r, "process %d: %s", root, r == -ENOENT ? "no such process" : strerror(-r));
	level = ps.n_nspid ? ps.n_nspid - 1 : 0;
	proc_status_done(&ps);

	_cleanup_free_ pid_t *pids = NULL;
	size_t n = proc_tree_pids(root, &pids);
	for (size_t i = 0; i < n; i++) {
		struct proc_status s = {};
		if (proc_read_status(pids[i], 0, &s) < 0)
			continue; /* gone meanwhile */
		d->p = xrealloc(d->p, (d->n + 1) * sizeof(*d->p));
		struct dirty_proc *p = &d->p[d->n++];
		memset(p, 0, sizeof(*p));
		p->pid = pids[i];
		p->ppid = s.ppid;
		p->space = s.n_nspid > level ? s.nspid[level] : s.pid;
		p->uffd = p->memfd = p->pagemap = -1;
		proc_status_done(&s);
	}
	dm_error_clear();
	return 0;
}

int mem_dirty_new(pid_t root, struct mem_dirty **ret)
{
	struct mem_dirty *d = xcalloc(1, sizeof(*d));
	char path[64];
	int r;

	r = walk_tree(root, d);
	if (r < 0) {
		mem_dirty_free(d);
		return r;
	}
	for (size_t i = 0; i < d->n; i++) {
		struct dirty_proc *p = &d->p[i];
		snprintf(path, sizeof(path), "/proc/%d/mem", p->pid);
		p->memfd = open(path, O_RDWR | O_CLOEXEC);
		snprintf(path, sizeof(path), "/proc/%d/pagemap", p->pid);
		p->pagemap = open(path, O_RDONLY | O_CLOEXEC);
		if (p->memfd < 0 || p->pagemap < 0) {
			pr_info("process %d: cannot open %s: %m (not tracked)", p->pid, path);
			continue;
		}
		if (attach(p) < 0) {
			pr_info("%s (not tracked)", dm_last_error());
			dm_error_clear();
		}
	}
	*ret = d;
	return 0;
}

/* Clear the clean bits of [start, end): its pages are unknown. */
static void forget(struct dirty_proc *p, uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a < end; a += DM_PAGE_SIZE)
		pageset_clear(&p->clean, a);
}

/* What a scan reports: the pages written since the last reprotecting scan
 * (and reprotects them: SCAN_REPROTECT), or every private page there is. */
enum { SCAN_WRITTEN = 1, SCAN_REPROTECT = 2, SCAN_FILES = 4, SCAN_UNWRITTEN = 8, SCAN_ONE_PASS = 16 };

/* An exact scan asks the kernel for PROC_SCAN_CHUNK_BYTES at a time: the
 * first protection of a redis's 1.3 GiB heap in one call held its mmap lock
 * ~100 ms while it ran, and a client saw gaps of 40-80 ms meanwhile. */

static int scan_exact(struct dirty_proc *p, uint64_t start, uint64_t end, unsigned how,
		      struct page_region **vec, size_t *cap, mem_dirty_cb cb, void *arg, uint64_t *pages)
{
	/* written: anonymous (a private file mapping's copies too), not the
	 * zero page, and written; else the same but written or not */
	uint64_t written = how & SCAN_WRITTEN ? PAGE_IS_WRITTEN : 0;
	/* unwritten: the same, present and still protected */
	uint64_t unwritten = how & SCAN_UNWRITTEN ? PAGE_IS_WRITTEN : 0;

	while (start < end) {
		if (*cap < 4096) {
			*cap = 4096;
			*vec = xrealloc(*vec, *cap * sizeof(**vec));
		}
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = (how & SCAN_REPROTECT ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
			.start = start,
			.end = MIN(end, start + PROC_SCAN_CHUNK_BYTES),
			.vec = (uint64_t)*vec,
			.vec_len = *cap,
			.category_inverted = unwritten | PAGE_IS_FILE | PAGE_IS_PFNZERO,
			.category_mask = written | unwritten | PAGE_IS_FILE | PAGE_IS_PFNZERO,
			/* entries that hold a page: a hole is never protected, so
			 * no marker is left there (the dump would read a marker as a
			 * swapped page); a write fills it with a new, unprotected
			 * page, which the next scan reports */
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = written ? written : PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		long n = ioctl(p->pagemap, PAGEMAP_SCAN, &a);
		if (n < 0)
			return neg_errno();
		thread_background_breathe();
		for (long k = 0; k < n; k++) {
			uint64_t np = ((*vec)[k].end - (*vec)[k].start) / DM_PAGE_SIZE;
			*pages += np;
			int r = cb ? cb(arg, p->space, p->pid, (*vec)[k].start, np) : 0;
			if (r < 0)
				return r;
		}
		if (a.walk_end <= start || a.walk_end >= end)
			break;
		start = a.walk_end;
	}
	return 0;
}

/* Candidate runs closer than this are scanned exactly as one: the exact
 * walk of the gap costs less than another ioctl (~70 ns a page here).  At
 * worst (lone candidates farther apart) a scan costs one ioctl each, about
 * twice the single exact pass. */
#define SCAN_MERGE_GAP_PAGES 16

/*
 * The written pages of [start, end) in two passes.  The kernel's walk has a
 * fast path for a scan that asks for written entries and nothing else (no
 * anyof or inverted categories, category and return masks PAGE_IS_WRITTEN,
 * fs/proc/task_mmu.c): it tests each entry's write-protect bit and goes on.
 * Every other scan looks at each page (a file's? the zero page?) and took
 * 8.5-9.7 ms on a 512 MiB area against 0.2-0.4 for the fast one (6.18,
 * this VM): inside the freeze, where the scan of what a Docker container
 * wrote since its lazy memory went is taken.  The fast pass also gives
 * entries the exact scan would not (an empty entry of a populated page
 * table, the zero page, a file's page, none protected): a superset.  So it
 * finds the candidate runs, and the scan asked for (same flags, reprotect
 * included) runs on those only; a page written between the passes outside
 * them stays unprotected, so the next scan reports it.
 * DMIGRATE_SCAN_FAST=0: one exact pass, as before.
 */
static int scan_one(struct dirty_proc *p, uint64_t start, uint64_t end, unsigned how,
		    struct page_region **vec, size_t *cap, mem_dirty_cb cb, void *arg, uint64_t *pages)
{
	if ((how & SCAN_ONE_PASS) || !(how & SCAN_WRITTEN) || (how & SCAN_UNWRITTEN))
		return scan_exact(p, start, end, how, vec, cap, cb, arg, pages);

	struct page_region cand[512];
	uint64_t run0 = 0, run1 = 0;
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = PM_SCAN_CHECK_WPASYNC,
			.start = start,
			.end = end,
			.vec = (uint64_t)cand,
			.vec_len = ARRAY_SIZE(cand),
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(p->pagemap, PAGEMAP_SCAN, &a);
		if (n < 0)
			return neg_errno();
		thread_background_breathe();
		for (long k = 0; k < n; k++) {
			if (run1 && cand[k].start - run1 < SCAN_MERGE_GAP_PAGES * DM_PAGE_SIZE) {
				run1 = cand[k].end;
				continue;
			}
			if (run1) {
				int r = scan_exact(p, run0, run1, how, vec, cap, cb, arg, pages);
				if (r < 0)
					return r;
			}
			run0 = cand[k].start;
			run1 = cand[k].end;
		}
		if (a.walk_end <= start || a.walk_end >= end)
			break;
		start = a.walk_end;
	}
	return run1 ? scan_exact(p, run0, run1, how, vec, cap, cb, arg, pages) : 0;
}

/* An area of a tracked process, in the order a scan goes through them. */
struct scan_area {
	size_t proc, range;
	uint64_t size;
};

static int cmp_area(const void *a, const void *b)
{
	const struct scan_area *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->proc != y->proc)
		return x->proc < y->proc ? -1 : 1;
	return x->range < y->range ? -1 : x->range > y->range;
}

/*
 * The areas to scan, in order.  The pass over the pages not written (the
 * pre-send of a Docker container's lazy memory, cut when its container
 * runs) goes smallest area first: an interpreter's or a server's own state
 * (its arenas, heap, the small mappings its allocator made) is touched by
 * every request and fits in a few MiB, where a large mapping is data of
 * which a request touches a few pages.  In address order the pass spent its
 * time on a Python's 512 MiB buffer (mapped below the interpreter's arenas)
 * and was cut before the arenas, which the first tick in b then faulted in
 * one by one over the link.  DMIGRATE_LAZY_ORDER=address: as before.
 * Every other scan goes in address order (it sends everything it finds).
 */
static struct scan_area *scan_order(struct mem_dirty *d, unsigned how, size_t *ret_n)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		n += d->p[i].nranges;
	struct scan_area *v = xcalloc(n ? n : 1, sizeof(*v));
	n = 0;
	for (size_t i = 0; i < d->n; i++)
		for (size_t k = 0; k < d->p[i].nranges; k++)
			v[n++] = (struct scan_area){ i, k, d->p[i].ranges[k][1] - d->p[i].ranges[k][0] };
	const char *o = getenv("DMIGRATE_LAZY_ORDER");
	if ((how & SCAN_UNWRITTEN) && !(o && !strcmp(o, "address")))
		qsort(v, n, sizeof(*v), cmp_area);
	*ret_n = n;
	return v;
}

/* Range k of p; an area that changed under us (munmap + mmap: -EPERM,
 * -EINVAL) is scanned per current VMA, what is gone forgotten. */
static int scan_range(struct dirty_proc *p, size_t k, unsigned how, struct page_region **vec, size_t *cap,
		      mem_dirty_cb cb, void *arg, uint64_t *pages)
{
	int r = scan_one(p, p->ranges[k][0], p->ranges[k][1], how, vec, cap, cb, arg, pages);
	if (r == -EPERM || r == -EINVAL) {
		struct proc_vma_list vl = {};
		if (proc_read_maps(p->pid, &vl) < 0) {
			forget(p, p->ranges[k][0], p->ranges[k][1]);
			return 0;
		}
		for (size_t v = 0; v < vl.n; v++) {
			uint64_t s = MAX(vl.vmas[v].start, p->ranges[k][0]);
			uint64_t e = MIN(vl.vmas[v].end, p->ranges[k][1]);
			if (s >= e)
				continue;
			r = scan_one(p, s, e, how, vec, cap, cb, arg, pages);
			if (r == -EPERM || r == -EINVAL)
				forget(p, s, e);
			else if (r < 0) {
				proc_vma_list_done(&vl);
				return r;
			}
		}
		proc_vma_list_done(&vl);
		return 0;
	}
	if (r == -ESRCH || r == -ENOENT)
		return 0; /* exited: nothing to move */
	return r < 0 ? dm_fail(r, "process %d: PAGEMAP_SCAN: %s", p->pid, strerror(-r)) : 0;
}

/*
 * The files pass (the freeze's, for the pages sent before it): the private
 * file mappings, each run of adjacent ones (a library's three or four) in
 * one scan, which goes on from one VMA to the next.  A scan is two ioctls
 * at least, and a redis's ~40 libraries' VMAs one by one took 0.4-0.7 ms of
 * the freeze.  A run that changed under us is scanned again range by range.
 */
static int scan_files(struct mem_dirty *d, unsigned how, struct page_region **vec, size_t *cap,
		      mem_dirty_cb cb, void *arg, uint64_t *pages)
{
	for (size_t i = 0; i < d->n; i++) {
		struct dirty_proc *p = &d->p[i];
		for (size_t k = 0; p->uffd >= 0 && k < p->nranges;) {
			if (!p->file[k]) {
				k++;
				continue;
			}
			size_t e = k + 1;
			while (e < p->nranges && p->file[e] && p->ranges[e][0] == p->ranges[e - 1][1])
				e++;
			/* a run that failed (changed under us, or an error) goes
			 * range by range, each failure handled there as before;
			 * what the merged scan told before it failed is told again
			 * (a run given twice: the count is higher, the DIRTY list
			 * has it twice, which is harmless) */
			int r = 0;
			if (e - k == 1 ||
			    scan_one(p, p->ranges[k][0], p->ranges[e - 1][1], how, vec, cap, cb, arg, pages) < 0)
				for (size_t j = k; j < e && r >= 0; j++)
					r = scan_range(p, j, how, vec, cap, cb, arg, pages);
			if (r < 0)
				return r;
			k = e;
		}
	}
	return 0;
}

static int scan(struct mem_dirty *d, unsigned how, mem_dirty_cb cb, void *arg, uint64_t *ret_pages)
{
	_cleanup_free_ struct page_region *vec = NULL;
	size_t cap = 0, n_order;
	uint64_t pages = 0;
	const char *f = getenv("DMIGRATE_SCAN_FAST");
	int r = 0;

	if (f && !strcmp(f, "0"))
		how |= SCAN_ONE_PASS; /* scan_one() */
	if (how & SCAN_FILES) {
		r = scan_files(d, how, &vec, &cap, cb, arg, &pages);
		if (r >= 0 && ret_pages)
			*ret_pages = pages;
		return r;
	}
	_cleanup_free_ struct scan_area *order = scan_order(d, how, &n_order);
	for (size_t o = 0; o < n_order && r >= 0; o++) {
		struct dirty_proc *p = &d->p[order[o].proc];
		size_t k = order[o].range;
		if (p->uffd < 0 || ((how & SCAN_UNWRITTEN) && p->file[k]))
			continue;
		r = scan_range(p, k, how, &vec, &cap, cb, arg, &pages);
	}
	if (r >= 0 && ret_pages)
		*ret_pages = pages;
	return r;
}

int mem_dirty_scan(struct mem_dirty *d, bool reprotect, mem_dirty_cb cb, void *arg, uint64_t *ret_pages)
{
	return scan(d, SCAN_WRITTEN | (reprotect ? SCAN_REPROTECT : 0), cb, arg, ret_pages);
}

int mem_dirty_scan_files(struct mem_dirty *d, bool written, mem_dirty_cb cb, void *arg, uint64_t *ret_pages)
{
	return scan(d, SCAN_FILES | (written ? SCAN_WRITTEN : 0), cb, arg, ret_pages);
}

int mem_dirty_scan_unwritten(struct mem_dirty *d, mem_dirty_cb cb, void *arg, uint64_t *ret_pages)
{
	return scan(d, SCAN_UNWRITTEN, cb, arg, ret_pages);
}

int mem_dirty_scan_in(struct mem_dirty *d, uint32_t space, uint64_t start, uint64_t end, bool written,
		      mem_dirty_cb cb, void *arg, uint64_t *ret_pages)
{
	_cleanup_free_ struct page_region *vec = NULL;
	size_t cap = 0;
	uint64_t pages = 0;
	struct dirty_proc *p = proc_of(d, space);

	for (size_t k = 0; p && p->uffd >= 0 && k < p->nranges; k++) {
		uint64_t s = MAX(start, p->ranges[k][0]), e = MIN(end, p->ranges[k][1]);
		if (s >= e || p->file[k])
			continue;
		int r = scan_exact(p, s, e, written ? SCAN_WRITTEN : SCAN_UNWRITTEN, &vec, &cap, cb, arg, &pages);
		if (r == -ESRCH || r == -ENOENT)
			continue;	/* exited */
		if (r == -EPERM || r == -EINVAL) {
			/* the area changed: unwritten, nothing is told (nothing
			 * goes ahead); written, all of it is, as if written */
			if (written) {
				pages += (e - s) / DM_PAGE_SIZE;
				r = cb ? cb(arg, p->space, p->pid, s, (e - s) / DM_PAGE_SIZE) : 0;
				if (r < 0)
					return r;
			}
			continue;
		}
		if (r < 0)
			return dm_fail(r, "process %d: PAGEMAP_SCAN: %s", p->pid, strerror(-r));
	}
	if (ret_pages)
		*ret_pages = pages;
	return 0;
}

/* p's parent, if it is tracked too */
static struct dirty_proc *parent_of(struct mem_dirty *d, const struct dirty_proc *p)
{
	for (size_t i = 0; p && i < d->n; i++)
		if (d->p[i].pid == p->ppid)
			return &d->p[i];
	return NULL;
}

bool mem_dirty_parent(struct mem_dirty *d, uint32_t space, uint32_t *ret_parent)
{
	const struct dirty_proc *pp = parent_of(d, proc_of(d, space));
	if (pp)
		*ret_parent = pp->space;
	return pp != NULL;
}

long mem_dirty_own_run(struct mem_dirty *d, uint32_t space, uint64_t addr, uint32_t n, bool *ret_own)
{
	uint64_t me[OWN_RUN_MAX], par[OWN_RUN_MAX];
	const struct dirty_proc *p = proc_of(d, space), *pp = parent_of(d, p);

	n = MIN(n, OWN_RUN_MAX);
	*ret_own = true;
	if (!pp || p->pagemap < 0 || pp->pagemap < 0)
		return n;
	size_t len = (size_t)n * sizeof(uint64_t);
	off_t off = (off_t)(addr / DM_PAGE_SIZE * sizeof(uint64_t));
	if (pread_exact(p->pagemap, me, len, off) < 0 || pread_exact(pp->pagemap, par, len, off) < 0)
		return n;
	*ret_own = !proc_pm_same_frame(me[0], par[0]);
	for (uint32_t j = 1; j < n; j++)
		if (!proc_pm_same_frame(me[j], par[j]) != *ret_own)
			return j;
	return n;
}

void mem_dirty_detach(struct mem_dirty *d)
{
	for (size_t i = 0; d && i < d->n; i++)
		if (d->p[i].uffd >= 0) {
			close(d->p[i].uffd);
			d->p[i].uffd = -1;
		}
}

void mem_dirty_free(struct mem_dirty *d)
{
	if (!d)
		return;
	mem_dirty_detach(d);
	for (size_t i = 0; i < d->n; i++) {
		struct dirty_proc *p = &d->p[i];
		if (p->memfd >= 0)
			close(p->memfd);
		if (p->pagemap >= 0)
			close(p->pagemap);
		free(p->ranges);
		free(p->file);
		pageset_done(&p->clean);
	}
	free(d->p);
	free(d);
}
