/* SPDX-License-Identifier: MIT */
/*
 * The address space of one process, rebuilt inside its stub in one batch
 * (one or a few ptrace round trips):
 *
 *   1. munmap every VMA of the stub but the blob and the special mappings
 *      (done once in the root stub before the tree forks: mm_clean_stub);
 *   2. move [vvar], [vvar_vclock] and [vdso] to their image addresses, each
 *      with its own mremap (the kernel refuses one mremap across them); when
 *      an old range overlaps a new one, everything goes to the hop first;
 *   3. receive the fds of the mapped files, shared memory objects and the
 *      exe file over the transport: they land at 0..k-1, because the stub's
 *      only fd is the transport, far above;
 *   4. mmap every image VMA (MAP_FIXED_NOREPLACE: nothing may be clobbered,
 *      the blob least of all);
 *   5. prctl(PR_SET_MM_MAP): code/data/brk/stack/args/env, auxv and the exe
 *      file (possible only now: the stub's binary is no longer mapped);
 *   6. close 0..k-1; madvise/mlock flags.
 * Page contents follow (pages.c), written through /proc/PID/mem.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "base/clock.h"
#include "proc/proc.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/prctl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

const char *rst_vma_desc(const Dm__Vma *v, char *buf, size_t size)
{
	snprintf(buf, size, "vma %#" PRIx64 "-%#" PRIx64 "%s%s", v->start, v->end,
		 v->name ? " " : "", v->name ? v->name : "");
	return buf;
}

static bool is_special(Dm__VmaKind k)
{
	return k == DM__VMA_KIND__VMA_VDSO || k == DM__VMA_KIND__VMA_VVAR ||
	       k == DM__VMA_KIND__VMA_VVAR_VCLOCK || k == DM__VMA_KIND__VMA_VSYSCALL;
}

/* ------------------------------------------------- special mappings */

static const struct {
	enum proc_vma_kind stub;
	Dm__VmaKind img;
	const char *name;
} specials[] = {
	{ PROC_VMA_VVAR, DM__VMA_KIND__VMA_VVAR, "[vvar]" },
	{ PROC_VMA_VVAR_VCLOCK, DM__VMA_KIND__VMA_VVAR_VCLOCK, "[vvar_vclock]" },
	{ PROC_VMA_VDSO, DM__VMA_KIND__VMA_VDSO, "[vdso]" },
};
#define NSPECIAL ARRAY_SIZE(specials)

static bool overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	return a0 < b1 && b0 < a1;
}

static int move_specials(struct rst_ctx *c, struct rst_proc *p, const struct proc_vma_list *sm,
			 struct rbatch *rb)
{
	const struct proc_vma *src[NSPECIAL] = { 0 };
	const Dm__Vma *dst[NSPECIAL] = { 0 };
	uint64_t cur[NSPECIAL] = { 0 };
	bool hop = false;
	int r;

	for (size_t k = 0; k < NSPECIAL; k++) {
		for (size_t i = 0; i < sm->n; i++)
			if (sm->vmas[i].kind == specials[k].stub)
				src[k] = &sm->vmas[i];
		for (size_t i = 0; i < p->img->n_vmas; i++)
			if (p->img->vmas[i]->kind == specials[k].img)
				dst[k] = p->img->vmas[i];
		if (dst[k] && !src[k])
			return dm_fail(-ENOTSUP, "pid %d: the image has %s, this kernel does not",
				       p->img->pid, specials[k].name);
		if (src[k] && dst[k] &&
		    src[k]->end - src[k]->start != dst[k]->end - dst[k]->start)
			return dm_fail(-ENOTSUP,
				       "pid %d: %s is %" PRIu64 " KiB here, %" PRIu64 " KiB in the image "
				       "(another kernel: not supported)", p->img->pid, specials[k].name,
				       (src[k]->end - src[k]->start) >> 10,
				       (dst[k]->end - dst[k]->start) >> 10);
		if (src[k])
			cur[k] = src[k]->start;
	}
	for (size_t a = 0; a < NSPECIAL; a++)
		for (size_t b = 0; b < NSPECIAL; b++)
			if (src[a] && dst[b] && overlaps(src[a]->start, src[a]->end, dst[b]->start, dst[b]->end) &&
			    !(a == b && src[a]->start == dst[b]->start))
				hop = true;
	if (hop) {
		uint64_t at = c->hop;
		for (size_t k = 0; k < NSPECIAL; k++) {
			if (!src[k] || !dst[k] || cur[k] == dst[k]->start)
				continue;
			uint64_t sz = src[k]->end - src[k]->start;
			if (at + sz > c->hop + c->hop_size)
				return dm_fail(-ENOSPC, "pid %d: special mappings exceed the hop area",
					       p->img->pid);
			r = rb_add(rb, specials[k].name, SYS_mremap, cur[k], sz, sz,
				   MREMAP_MAYMOVE | MREMAP_FIXED, at, 0);
			if (r < 0)
				return r;
			cur[k] = at;
			at += sz;
		}
	}
	for (size_t k = 0; k < NSPECIAL; k++) {
		if (!src[k])
			continue;
		uint64_t sz = src[k]->end - src[k]->start;
		if (!dst[k])
			r = rb_add(rb, specials[k].name, SYS_munmap, cur[k], sz, 0, 0, 0, 0);
		else if (cur[k] != dst[k]->start)
			r = rb_add(rb, specials[k].name, SYS_mremap, cur[k], sz, sz,
				   MREMAP_MAYMOVE | MREMAP_FIXED, dst[k]->start, 0);
		else
			r = 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------- fds for mappings */

enum { MAPFD_FILE, MAPFD_SHMEM };

struct mapfd {
	int kind;
	uint64_t id;
	int acc;
	int rfd; /* restorer's fd (owned by the files/shmem caches) */
};

struct mapfds {
	struct mapfd *v;
	size_t n;
};

static int mapfd_index(struct rst_ctx *c, struct mapfds *m, int kind, uint64_t id, int acc,
		       const Dm__Vma *v, int *ret_idx)
{
	int r, fd;

	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].kind == kind && m->v[i].id == id && m->v[i].acc == acc) {
			*ret_idx = (int)i;
			return 0;
		}
	if (kind == MAPFD_FILE)
		r = files_open_for_map(c, (uint32_t)id, acc, &fd);
	else
		r = shmem_get_fd(c, v, &fd);
	if (r < 0)
		return r;
	m->v = xrealloc(m->v, (m->n + 1) * sizeof(*m->v));
	m->v[m->n] = (struct mapfd){ kind, id, acc, fd };
	*ret_idx = (int)m->n++;
	return 0;
}

/*
 * The access mode to open a mapped file with: read-write for a shared
 * mapping that is writable or may become so (VM_MAYWRITE: the file was open
 * for writing when mapped; mprotect(PROT_WRITE) must work after restore).
 */
static int vma_map_acc(const Dm__Vma *v)
{
	bool w = (v->prot & PROT_WRITE) || (v->has_may_write && v->may_write);
	return (v->flags & MAP_SHARED) && w ? O_RDWR : O_RDONLY;
}

size_t mm_map_fds(const Dm__Process *p)
{
	struct { int kind; uint64_t id; int acc; } *u = NULL;
	size_t n = 0;

	/* as map_vmas counts them: one per (file, access mode), one per shared memory object */
	for (size_t i = 0; i < p->n_vmas; i++) {
		const Dm__Vma *v = p->vmas[i];
		int kind = v->kind == DM__VMA_KIND__VMA_FILE ? MAPFD_FILE : MAPFD_SHMEM;
		uint64_t id = kind == MAPFD_FILE ? v->file_id : v->shmem_id;
		int acc = kind == MAPFD_FILE ? vma_map_acc(v) : O_RDWR;
		size_t k = 0;
		if (v->kind != DM__VMA_KIND__VMA_FILE && v->kind != DM__VMA_KIND__VMA_SHMEM)
			continue;
		while (k < n && !(u[k].kind == kind && u[k].id == id && u[k].acc == acc))
			k++;
		if (k < n)
			continue;
		u = xrealloc(u, (n + 1) * sizeof(*u));
		u[n].kind = kind;
		u[n].id = id;
		u[n++].acc = acc;
	}
	free(u);
	return n + (p->mm && p->mm->has_exe_file_id ? 1 : 0);
}

static int vma_flags(const Dm__Vma *v)
{
	int f = (int)(v->flags & (MAP_SHARED | MAP_PRIVATE | MAP_GROWSDOWN | MAP_NORESERVE));
	if (v->kind == DM__VMA_KIND__VMA_STACK)
		f |= MAP_GROWSDOWN;
	return f;
}

/* ------------------------------------------------- inherited pages */

uint64_t mm_inherited_in(const Dm__Process *p, uint64_t start, uint64_t end, uint64_t *run_start)
{
	size_t lo = 0, hi = p->n_inherited / 2;

	/* the first run that ends after start (sorted, validated) */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->inherited[2 * mid] + p->inherited[2 * mid + 1] * DM_PAGE_SIZE <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->n_inherited / 2 || p->inherited[2 * lo] >= end)
		return 0;
	*run_start = MAX(p->inherited[2 * lo], start);
	return MIN(p->inherited[2 * lo] + p->inherited[2 * lo + 1] * DM_PAGE_SIZE, end);
}

/* A VMA of p that holds pages inherited from its parent: the parent's copy is kept. */
static bool vma_kept(const struct rst_proc *p, const Dm__Vma *v)
{
	uint64_t s;
	return p->img->n_inherited && mm_inherited_in(p->img, v->start, v->end, &s);
}

/*
 * The child's stub is a copy of its restored parent: each kept VMA must be
 * there whole, private, anonymous or the file it maps (the validator saw
 * the parent's image VMA at the same place; this is what the kernel made of
 * it).
 */
static int check_kept(const struct rst_proc *p, const struct proc_vma_list *sm, const Dm__Vma *v)
{
	uint64_t a = v->start;
	size_t lo = 0, hi = sm->n;

	while (lo < hi) { /* the first stub VMA that ends after a (maps are sorted) */
		size_t mid = (lo + hi) / 2;
		if (sm->vmas[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < sm->n && a < v->end; i++) {
		const struct proc_vma *x = &sm->vmas[i];
		if (x->start > a)
			break;
		bool file = v->kind == DM__VMA_KIND__VMA_FILE;
		if (x->shared || (file && x->kind != PROC_VMA_FILE) ||
		    (!file && x->kind != PROC_VMA_ANON && x->kind != PROC_VMA_ANON_NAMED &&
		     x->kind != PROC_VMA_HEAP && x->kind != PROC_VMA_STACK))
			break;
		a = x->end;
	}
	if (a < v->end)
		return dm_fail(-EPROTO, "pid %d: the memory it inherits at %#" PRIx64 "-%#" PRIx64
			       " is not in its parent's copy (at %#" PRIx64 ")", p->img->pid, v->start,
			       v->end, a);
	return 0;
}

/*
 * In a kept VMA the child has the parent's pages: all but the ones it
 * inherits go (MADV_DONTNEED), its own are written there afterwards like
 * in a fresh VMA (pages.c), lazy ones fault in.  In a private file mapping
 * what goes reads from the file again, as the child's pages it had not
 * written did.  Before any mlock: a locked VMA refuses MADV_DONTNEED.
 */
static int add_zap(struct rbatch *rb, const Dm__Process *ip, const Dm__Vma *v)
{
	uint64_t a = v->start, s, e;
	int r;

	while (a < v->end) {
		e = mm_inherited_in(ip, a, v->end, &s);
		uint64_t upto = e ? s : v->end;
		if (upto > a) {
			r = rb_add(rb, "madvise(DONTNEED) (inherited vma)", SYS_madvise, a, upto - a,
				   MADV_DONTNEED, 0, 0, 0);
			if (r < 0)
				return r;
		}
		a = e ? e : v->end;
	}
	return 0;
}

const struct restore_madv restore_madv_table[] = {
	{ DM_MADV_DONTFORK, MADV_DONTFORK, MADV_DOFORK, "madvise(DONTFORK)" },
	{ DM_MADV_WIPEONFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, "madvise(WIPEONFORK)" },
	{ DM_MADV_DONTDUMP, MADV_DONTDUMP, MADV_DODUMP, "madvise(DONTDUMP)" },
	{ DM_MADV_HUGEPAGE, MADV_HUGEPAGE, -1, "madvise(HUGEPAGE)" },
	{ DM_MADV_NOHUGEPAGE, MADV_NOHUGEPAGE, -1, "madvise(NOHUGEPAGE)" },
	{ DM_MADV_MERGEABLE, MADV_MERGEABLE, MADV_UNMERGEABLE, "madvise(MERGEABLE)" },
	{ DM_MADV_SEQ, MADV_SEQUENTIAL, MADV_NORMAL, "madvise(SEQUENTIAL)" },
	{ DM_MADV_RAND, MADV_RANDOM, MADV_NORMAL, "madvise(RANDOM)" },
};
const size_t restore_madv_count = ARRAY_SIZE(restore_madv_table);

static int add_madvise(struct rst_ctx *c, struct rst_proc *p, const Dm__Vma *v, struct rbatch *rb)
{
	const struct restore_madv *adv = restore_madv_table;
	uint32_t m = v->has_madv ? v->madv : 0;
	int r;

	/* a parent of inheriting children forks them first (mm_fork_madvise) */
	if (p->cow_parent)
		m &= ~(uint32_t)(DM_MADV_DONTFORK | DM_MADV_WIPEONFORK);
	for (size_t i = 0; i < restore_madv_count; i++) {
		if (!(m & adv[i].bit))
			continue;
		r = rb_add(rb, adv[i].what, SYS_madvise, v->start, v->end - v->start,
			   (uint64_t)adv[i].on, 0, 0, 0);
		if (r < 0)
			return r;
	}
	/* guard regions: no pages were stored there, the markers come back */
	for (size_t i = 0; i + 1 < v->n_guards; i += 2) {
		r = rb_add(rb, "madvise(GUARD_INSTALL)", SYS_madvise, v->guards[i], v->guards[i + 1],
			   102 /* MADV_GUARD_INSTALL */, 0, 0, 0);
		if (r < 0)
			return r;
	}
	if (m & DM_MADV_LOCKED) {
		/* locked on fault ("lf") as it was; and populating a lazy area would
		 * fill it with zeros before its pages arrive (the dump makes the pages
		 * of a plain mlock()ed area eager, an older image may not) */
		bool onfault = (m & DM_MADV_LOCKONFAULT) || pages_vma_lazy(c, p->img, v);
		r = rb_add(rb, "mlock2", SYS_mlock2, v->start, v->end - v->start,
			   onfault ? MLOCK_ONFAULT : 0, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * A SysV shm segment of the container's IPC namespace, made again with its
 * id before the tree (container/ipc.c): attached where it was, read-write
 * when it was or may become so (VM_MAYWRITE: mprotect may add PROT_WRITE
 * only to a read-write attachment), then given its protection.  shmat
 * refuses an address where something is mapped, as MAP_FIXED_NOREPLACE.
 */
static int add_shmat(struct rbatch *rb, const Dm__Vma *v)
{
	bool w = (v->prot & PROT_WRITE) || (v->has_may_write && v->may_write);
	uint64_t fl = (w ? 0 : SHM_RDONLY) | ((v->prot & PROT_EXEC) ? SHM_EXEC : 0);
	uint32_t got = PROT_READ | (w ? PROT_WRITE : 0) | (v->prot & PROT_EXEC);
	int r = rb_add(rb, "shmat", SYS_shmat, v->shmem_id, v->start, fl, 0, 0, 0);

	if (r >= 0 && got != v->prot)
		r = rb_add(rb, "mprotect (SysV shm)", SYS_mprotect, v->start, v->end - v->start, v->prot, 0,
			   0, 0);
	return r;
}

static int map_vmas(struct rst_ctx *c, struct rst_proc *p, struct rbatch *rb)
{
	const Dm__Process *ip = p->img;
	struct mapfds m = { 0 };
	int *idx = xcalloc(ip->n_vmas + 1, sizeof(int));
	int exe_idx = -1, r = 0;
	char desc[128];

	/* which fds: one per (file, access mode) and per shared memory object */
	for (size_t i = 0; i < ip->n_vmas && r >= 0; i++) {
		const Dm__Vma *v = ip->vmas[i];
		idx[i] = -1;
		if (v->kind == DM__VMA_KIND__VMA_FILE) {
			r = mapfd_index(c, &m, MAPFD_FILE, v->file_id, vma_map_acc(v), v, &idx[i]);
		} else if (v->kind == DM__VMA_KIND__VMA_SHMEM) {
			if (!v->has_shmem_id) {
				r = dm_fail(-EBADMSG, "pid %d: %s: shared memory without shmem_id",
					    ip->pid, rst_vma_desc(v, desc, sizeof(desc)));
				break;
			}
			r = mapfd_index(c, &m, MAPFD_SHMEM, v->shmem_id, O_RDWR, v, &idx[i]);
		}
		if (r < 0)
			pr_debug("pid %d: %s: %s", ip->pid, rst_vma_desc(v, desc, sizeof(desc)),
				 dm_last_error());
	}
	/*
	 * A copy of a parent restored before it forked has that exe file
	 * already, and the kernel refuses to replace an exe file that is still
	 * mapped.  A parent restored after it forked passes on the exe file it
	 * was cloned with itself: the nearest ancestor restored before it
	 * forked has it (a child of a subshell that has just exec'd).
	 */
	const Dm__Mm *pmm = NULL;
	for (const struct rst_proc *q = p->parent; q && !pmm; q = q->parent)
		if (q->cow_parent)
			pmm = q->img->mm;
	bool exe_same = ip->mm && ip->mm->has_exe_file_id && pmm && pmm->has_exe_file_id &&
			pmm->exe_file_id == ip->mm->exe_file_id;
	if (r >= 0 && ip->mm && ip->mm->has_exe_file_id && !exe_same)
		r = mapfd_index(c, &m, MAPFD_FILE, ip->mm->exe_file_id, O_RDONLY, NULL, &exe_idx);
	if (r >= 0 && m.n) {
		int *fds = xcalloc(m.n, sizeof(int));
		for (size_t i = 0; i < m.n; i++)
			fds[i] = m.v[i].rfd;
		r = files_send(c, rb, fds, m.n);
		free(fds);
	}

	for (size_t i = 0; i < ip->n_vmas && r >= 0; i++) {
		const Dm__Vma *v = ip->vmas[i];
		uint64_t len = v->end - v->start;
		int flags = vma_flags(v) | MAP_FIXED_NOREPLACE;
		uint64_t fd = (uint64_t)-1, off = 0;

		if (is_special(v->kind))
			continue;
		if (vma_kept(p, v)) {
			/* the parent's, at the same place and mapped the same way */
			r = rb_add(rb, "mprotect (inherited vma)", SYS_mprotect, v->start, len, v->prot,
				   0, 0, 0);
			if (r >= 0)
				r = add_zap(rb, ip, v);
			c->st.vmas++;
			continue;
		}
		if (v->kind == DM__VMA_KIND__VMA_SYSV_SHM) {
			r = add_shmat(rb, v);
			c->st.vmas++;
			continue;
		}
		if (idx[i] >= 0) {
			fd = (uint64_t)idx[i];
			off = v->has_pgoff ? v->pgoff : 0;
		} else {
			flags |= MAP_ANONYMOUS;
		}
		/* a private mapping charged for writes ("ac") that is no longer
		 * writable (RELRO, PROT_NONE guards): writable first, as it was */
		bool acct = v->has_accounted && v->accounted && !(v->flags & MAP_SHARED) &&
			    !(v->prot & PROT_WRITE);
		r = rb_add(rb, "mmap", SYS_mmap, v->start, len, v->prot | (acct ? PROT_WRITE : 0),
			   (uint64_t)flags, fd, off);
		/*
		 * An anonymous one also needs its anon_vma, or mprotect drops the
		 * charge of a mapping that was never faulted in (mprotect_fixup):
		 * fault one page in and give it back, so that it neither shows in
		 * the RSS nor hides a lazy page from userfaultfd.
		 */
		if (r >= 0 && acct && idx[i] < 0)
			r = rb_add(rb, "madvise(POPULATE_WRITE)", SYS_madvise, v->start, DM_PAGE_SIZE,
				   MADV_POPULATE_WRITE, 0, 0, 0);
		if (r >= 0 && acct && idx[i] < 0)
			r = rb_add(rb, "madvise(DONTNEED)", SYS_madvise, v->start, DM_PAGE_SIZE,
				   MADV_DONTNEED, 0, 0, 0);
		if (r >= 0 && acct)
			r = rb_add(rb, "mprotect", SYS_mprotect, v->start, len, v->prot, 0, 0, 0);
		c->st.vmas++;
		/* [anon:NAME] (PR_SET_VMA_ANON_NAME) */
		if (r >= 0 && v->kind == DM__VMA_KIND__VMA_ANON && v->name && v->name[0] &&
		    !(v->flags & MAP_SHARED)) {
			uint64_t rn;
			r = rb_room(rb, 2, strlen(v->name) + 1);
			if (r >= 0) {
				rn = rb_put(rb, v->name, strlen(v->name) + 1);
				r = rb_add(rb, "prctl(PR_SET_VMA_ANON_NAME)", SYS_prctl, PR_SET_VMA,
					   PR_SET_VMA_ANON_NAME, v->start, len, rn, 0);
			}
		}
	}

	if (r >= 0 && ip->mm) {
		const Dm__Mm *mm = ip->mm;
		struct prctl_mm_map map = {
			.start_code = mm->start_code, .end_code = mm->end_code,
			.start_data = mm->start_data, .end_data = mm->end_data,
			.start_brk = mm->start_brk, .brk = mm->brk,
			.start_stack = mm->start_stack,
			.arg_start = mm->arg_start, .arg_end = mm->arg_end,
			.env_start = mm->env_start, .env_end = mm->env_end,
			.exe_fd = exe_idx >= 0 ? (uint32_t)exe_idx : (uint32_t)-1,
		};
		uint64_t rauxv = 0, rmap;
		r = rb_room(rb, 1, sizeof(map) + (mm->has_auxv ? mm->auxv.len : 0) + 32);
		if (r >= 0 && mm->has_auxv && mm->auxv.len) {
			rauxv = rb_put(rb, mm->auxv.data, mm->auxv.len);
			map.auxv = (__u64 *)(uintptr_t)rauxv;
			map.auxv_size = (uint32_t)mm->auxv.len;
		}
		if (r >= 0) {
			rmap = rb_put(rb, &map, sizeof(map));
			r = rb_add(rb, "prctl(PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP,
				   rmap, sizeof(map), 0, 0);
		}
	}
	if (r >= 0 && m.n)
		r = rb_add(rb, "close_range", SYS_close_range, 0, m.n - 1, 0, 0, 0, 0);
	for (size_t i = 0; i < ip->n_vmas && r >= 0; i++)
		if (!is_special(ip->vmas[i]->kind))
			r = add_madvise(c, p, ip->vmas[i], rb);
	if (r >= 0)
		r = rb_run(rb);
	free(m.v);
	free(idx);
	return r;
}

/*
 * The stub's unmaps, as few calls as can be: consecutive ranges with
 * nothing kept between them (holes only) are one munmap, which unmaps
 * whatever is there.  A forked root stub is a copy of the restorer (~280
 * VMAs of its libraries): one munmap each took ~2 ms of the downtime.
 */
struct unmap_run {
	struct rbatch *rb;
	uint64_t a, b; /* pending [a, b), b == 0: none */
};

static int unmap_flush(struct unmap_run *u)
{
	int r = 0;
	if (u->b > u->a)
		r = rb_add(u->rb, "munmap (stub)", SYS_munmap, u->a, u->b - u->a, 0, 0, 0, 0);
	u->a = u->b = 0;
	return r;
}

/* [x, y) goes; nothing kept lies between the pending run and x (the caller
 * flushes at everything it keeps) */
static int unmap_add(struct unmap_run *u, uint64_t x, uint64_t y)
{
	if (u->b > u->a && x >= u->b) {
		u->b = y;
		return 0;
	}
	int r = unmap_flush(u);
	u->a = x;
	u->b = y;
	return r;
}

/*
 * munmap every VMA of the stub but the blob, the kernel's special mappings
 * and, with p, the VMAs p keeps from its parent (inherited pages).
 */
static int add_unmap_stub(struct rst_ctx *c, const struct rst_proc *p,
			  const struct proc_vma_list *sm, struct rbatch *rb)
{
	const Dm__Process *ip = p ? p->img : NULL;
	struct unmap_run u = { .rb = rb };
	size_t k0 = 0;
	int r;

	for (size_t i = 0; i < sm->n; i++) {
		const struct proc_vma *v = &sm->vmas[i];
		if (v->kind == PROC_VMA_VVAR || v->kind == PROC_VMA_VVAR_VCLOCK ||
		    v->kind == PROC_VMA_VDSO || v->kind == PROC_VMA_VSYSCALL ||
		    v->kind == PROC_VMA_SPECIAL || (v->start >= c->blob && v->end <= c->blob + INJ_BLOB_SIZE)) {
			r = unmap_flush(&u); /* kept: no run across it */
			if (r < 0)
				return r;
			continue;
		}
		uint64_t a = v->start;
		/* both lists are sorted: the image's VMAs before this one are done */
		while (ip && k0 < ip->n_vmas && ip->vmas[k0]->end <= v->start)
			k0++;
		for (size_t k = k0; ip && ip->n_inherited && k < ip->n_vmas && a < v->end; k++) {
			const Dm__Vma *kv = ip->vmas[k];
			if (kv->start >= v->end)
				break;
			if (kv->end <= a || !vma_kept(p, kv))
				continue;
			if (kv->start > a)
				r = unmap_add(&u, a, kv->start);
			else
				r = 0;
			/* kv is kept */
			if (r >= 0)
				r = unmap_flush(&u);
			if (r < 0)
				return r;
			a = kv->end;
		}
		if (a >= v->end)
			continue;
		r = unmap_add(&u, a, v->end);
		if (r < 0)
			return r;
	}
	return unmap_flush(&u);
}

/*
 * The root stub is a copy of the restorer, with every library of ours: it
 * drops all that once, before it forks the other processes, so that they
 * start with the blob and the vDSO only (tearing down a copy of our address
 * space costs more than anything else a small process needs).
 */
int mm_clean_stub(struct rst_ctx *c, struct rst_proc *p)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list sm = { 0 };
	struct rbatch *rb;
	int r;

	r = proc_read_maps(p->host_pid, &sm);
	if (r < 0)
		return dm_fail(r, "pid %d: cannot read the stub's maps: %s", p->img->pid, strerror(-r));
	rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, rst_main(p));
	r = add_unmap_stub(c, NULL, &sm, rb);
	if (r >= 0)
		r = creds_early_add(c, rb);
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: emptying the stub", p->img->pid);
	return 0;
}

/*
 * mseal() of the VMAs that were sealed: once nothing of the restore changes
 * them any more (mapping, madvise, pages, the lazy registration), before the
 * credentials drop.  Lazy pages still arrive afterwards: UFFDIO_COPY fills a
 * sealed VMA like a fault.
 */
int mm_seal(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;
	struct rbatch *rb = NULL;
	int r = 0;

	for (size_t i = 0; i < ip->n_vmas && r >= 0; i++) {
		const Dm__Vma *v = ip->vmas[i];
		if (!v->has_sealed || !v->sealed || is_special(v->kind))
			continue;
		if (!rb) {
			rb = xmalloc(sizeof(*rb));
			rb_init(rb, c, rst_main(p));
		}
		r = rb_add(rb, "mseal", 462 /* SYS_mseal */, v->start, v->end - v->start, 0, 0, 0, 0);
	}
	if (r >= 0 && rb)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: sealing its mappings (mseal)", ip->pid);
	return 0;
}

/*
 * madvise(DONTFORK) and (WIPEONFORK) of a parent whose children inherit
 * pages: held back until they are forked (add_madvise), as at the source,
 * where they were set after the fork or the child had nothing there.
 */
int mm_fork_madvise(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;
	struct rbatch *rb = NULL;
	int r = 0;

	for (size_t i = 0; i < ip->n_vmas && r >= 0; i++) {
		const Dm__Vma *v = ip->vmas[i];
		uint32_t m = v->has_madv ? v->madv : 0;
		if (is_special(v->kind))
			continue;
		for (size_t k = 0; k < restore_madv_count && r >= 0; k++) {
			const struct restore_madv *a = &restore_madv_table[k];
			if (!(m & a->bit & (DM_MADV_DONTFORK | DM_MADV_WIPEONFORK)))
				continue;
			if (!rb) {
				rb = xmalloc(sizeof(*rb));
				rb_init(rb, c, rst_main(p));
			}
			r = rb_add(rb, a->what, SYS_madvise, v->start, v->end - v->start,
				   (uint64_t)a->on, 0, 0, 0);
		}
	}
	if (r >= 0 && rb)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: address space", ip->pid);
	return 0;
}

int mm_restore(struct rst_ctx *c, struct rst_proc *p)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list sm = { 0 };
	struct rbatch *rb;
	int r;

	if (p->mm_done)
		return 0; /* a parent of inheriting children, before it forked them (tree.c) */
	p->mm_done = true;
	uint64_t t0 = clock_ns();
	rb = xmalloc(sizeof(*rb));
	r = proc_read_maps(p->host_pid, &sm);
	if (r < 0) {
		r = dm_fail(r, "pid %d: cannot read the stub's maps: %s", p->img->pid, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < p->img->n_vmas && r >= 0 && p->img->n_inherited; i++)
		if (vma_kept(p, p->img->vmas[i]))
			r = check_kept(p, &sm, p->img->vmas[i]);
	if (r < 0)
		goto out;
	rb_init(rb, c, rst_main(p));
	/* normally nothing left (mm_clean_stub()) but the parent's copy, when it
	 * was restored before it forked p */
	r = add_unmap_stub(c, p, &sm, rb);
	if (r < 0)
		goto out;
	r = move_specials(c, p, &sm, rb);
	if (r < 0)
		goto out;
	r = map_vmas(c, p, rb);
	if (r < 0) {
		r = rst_wrap(r, "pid %d: address space", p->img->pid);
		goto out;
	}
	c->st.mem_map_ms += ns_to_ms(t0, clock_ns());
	r = pages_write(c, p);
out:
	free(rb);
	return r;
}
