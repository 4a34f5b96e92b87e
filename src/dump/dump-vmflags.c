/* SPDX-License-Identifier: MIT */
/*
 * VMA flags (madvise state, locking, grows-down) without the frozen cost.
 *
 * Only /proc/PID/smaps tells them, and smaps walks every page table of the
 * process to count its RSS: ~27 ms per GiB of touched memory, the largest
 * cost left in a post-copy freeze.  With opts.early_vmflags the flags are
 * read just before the freeze, while the tree runs; in the freeze, a
 * process whose maps (cheap: no page walk) are still the same, VMA by VMA,
 * takes them from there, any other reads smaps as before.
 *
 * The gap: a madvise()/mlock() over a whole VMA between the two reads
 * changes its flags and not its maps line.  dump_vmflags_verify() reads the
 * flags again from the frozen tree (after the switch-over, off the
 * downtime) and reports every VMA whose flags that matter differ; the
 * migration then applies them on the destination.
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/clock.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct early_vmas {
	pid_t pid;
	struct proc_vma_list vl;
};

static void early_add(struct dump_ctx *d, pid_t pid)
{
	struct proc_vma_list vl = {};

	for (size_t i = 0; i < d->n_early; i++)
		if (d->early[i].pid == pid)
			return;
	if (proc_read_maps_vmflags(pid, &vl) < 0) {
		/* it changed between the two reads, or ended: the freeze reads it */
		dm_error_clear();
		return;
	}
	d->early = xrealloc(d->early, (d->n_early + 1) * sizeof(*d->early));
	d->early[d->n_early++] = (struct early_vmas){ pid, vl };
}

/*
 * Guard regions (MADV_GUARD_INSTALL) are page-table markers, not VMA flags:
 * only a page scan finds them, and a deferred page map (post-copy) is
 * scanned after the resume, when the destination already runs.  So they
 * are looked for here, before the freeze, in the anonymous areas whose page
 * map is deferred, and such a tree is refused (named): on the destination
 * a guard page would read as zeros instead of faulting.  A guard installed
 * in the moment between this scan and the freeze is not seen.
 */
static int early_guards(pid_t pid, const struct proc_vma_list *vl)
{
	char path[64];
	_cleanup_close_ int pm = -1;
	_cleanup_free_ struct proc_range *runs = NULL;
	size_t cap = 0, n = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return 0; /* it ended: nothing to migrate of it */
	for (size_t k = 0; k < vl->n; k++) {
		const struct proc_vma *v = &vl->vmas[k];
		if (v->shared || v->kind == PROC_VMA_FILE || v->prot == PROT_NONE)
			continue;
		if (proc_pagemap_guard_runs(pm, v->start, v->end, &runs, &cap, &n) < 0) {
			dm_error_clear();
			continue;
		}
		if (n)
			return dm_fail(-ENOTSUP, "process %d has guard regions (MADV_GUARD_INSTALL) at %#" PRIx64
				       " in %#" PRIx64 "-%#" PRIx64 ": post-copy cannot bring them back (they "
				       "would read as zeros); use --mode stop-and-copy, pre-copy or hybrid",
				       pid, runs[0].start, v->start, v->end);
	}
	return 0;
}

int dump_vmflags_preread(struct dump_ctx *d)
{
	uint64_t t = clock_ns();
	_cleanup_free_ pid_t *pids = NULL;
	/* the tree as it is now; a process born before the freeze is read then */
	size_t n = proc_tree_pids(d->opts.pid, &pids);
	/* smaps walks every page table of the running tree (~25 ms of CPU for
	 * 1.3 GiB here): its own threads come first */
	thread_prep_walk_section(true);
	for (size_t i = 0; i < n && i < 4096; i++) {
		early_add(d, pids[i]);
		thread_background_breathe();
	}
	dm_error_clear();
	/* the guard scans walk the page tables too (one call a VMA: their
	 * matches are rare) */
	int r = 0;
	for (size_t i = 0; d->opts.defer_pagemap && i < d->n_early && r >= 0; i++) {
		r = early_guards(d->early[i].pid, &d->early[i].vl);
		thread_background_breathe();
	}
	thread_prep_walk_section(false);
	if (r < 0)
		return r;
	d->early_ms = ns_to_ms(t, clock_ns());
	return 0;
}

static bool same_vma(const struct proc_vma *a, const struct proc_vma *b)
{
	return a->start == b->start && a->end == b->end && a->prot == b->prot && a->shared == b->shared &&
	       a->pgoff == b->pgoff && a->inode == b->inode && a->kind == b->kind;
}

bool dump_vmflags_from_early(struct dump_ctx *d, struct dproc *p)
{
	for (size_t i = 0; i < d->n_early; i++) {
		const struct proc_vma_list *e = &d->early[i].vl;
		if (d->early[i].pid != p->pid)
			continue;
		if (e->n != p->vmas.n)
			return false;
		for (size_t k = 0; k < e->n; k++)
			if (!same_vma(&e->vmas[k], &p->vmas.vmas[k]) || !e->vmas[k].has_vmflags)
				return false;
		for (size_t k = 0; k < e->n; k++) {
			p->vmas.vmas[k].vmflags = e->vmas[k].vmflags;
			p->vmas.vmas[k].has_vmflags = true;
			p->vmas.vmas[k].shared_kb = e->vmas[k].shared_kb;
			p->vmas.vmas[k].has_shared = e->vmas[k].has_shared;
		}
		p->vmflags_early = true;
		atomic_fetch_add(&d->procs_vmflags_early, 1);
		return true;
	}
	return false;
}

void dump_vmflags_free(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->n_early; i++)
		proc_vma_list_done(&d->early[i].vl);
	free(d->early);
	d->early = NULL;
	d->n_early = 0;
}

int dump_vmflags_verify(struct dump_ctx *d, struct dump_vma_change **ret, size_t *ret_n)
{
	struct dump_vma_change *out = NULL;
	size_t n = 0;

	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		_cleanup_(proc_vma_list_done) struct proc_vma_list now = {};
		if (!p->vmflags_early || p->zombie)
			continue;
		/* the tree is frozen: its VMAs are those of the dump */
		int r = proc_read_maps_vmflags(p->pid, &now);
		if (r < 0)
			return dm_fail(r, "process %d: reading its VMA flags again: %s", p->pid, strerror(-r));
		if (now.n != p->vmas.n)
			return dm_fail(-ESTALE, "process %d: its VMAs changed while frozen", p->pid);
		for (size_t k = 0; k < now.n; k++) {
			const struct proc_vma *was = &p->vmas.vmas[k], *is = &now.vmas[k];
			if (!same_vma(was, is))
				return dm_fail(-ESTALE, "process %d: VMA %#" PRIx64 " changed while frozen", p->pid,
					       was->start);
			/* the flags an madvise()/mlock() changes: the others
			 * (grows-down, hugetlb, pfn, io) come with the VMA */
			uint32_t mw = dump_madv_bits(was->vmflags), mi = dump_madv_bits(is->vmflags);
			if (mw == mi)
				continue;
			pr_warn("process %d: VMA %#" PRIx64 "-%#" PRIx64 " had its madvise state changed just "
				"before the freeze (%#x -> %#x)", p->pid, is->start, is->end, mw, mi);
			out = xrealloc(out, (n + 1) * sizeof(*out));
			out[n++] = (struct dump_vma_change){
				.pid = p->vpid, .start = is->start, .end = is->end,
				.madv_was = mw, .madv = mi,
			};
		}
	}
	*ret = out;
	*ret_n = n;
	return 0;
}
