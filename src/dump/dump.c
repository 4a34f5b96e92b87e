/* SPDX-License-Identifier: MIT */
/*
 * The dump: freeze, the task graph on the pool, the image, release.
 *
 *   main task ──> control task per process (pinned: ptrace)
 *                   ├─> static task   (/proc: stat, status, creds, rlimits, mm)
 *                   ├─> mm task       (VMAs, page map) ──> page chunk tasks
 *                   ├─> fds task      (fds, cwd, root, exe, files table)
 *                   └─ then itself: registers, xstate, signals, parasite batch
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/clock.h"
#include "image/treecheck.h"
#include "base/log.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>

void dump_lap_start(struct dump_lap *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	l->cpu = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	l->wall = clock_ns();
}

void dump_lap(struct dump_ctx *d, enum dump_phase ph, struct dump_lap *l)
{
	struct dump_lap now;
	dump_lap_start(&now);
	atomic_fetch_add(&d->phase[ph].wall_ns, now.wall - l->wall);
	atomic_fetch_add(&d->phase[ph].cpu_ns, now.cpu >= l->cpu ? now.cpu - l->cpu : 0);
	atomic_fetch_add(&d->phase[ph].n, 1);
	*l = now;
}

static int dump_pool_new(const struct dump_ctx *d, struct pool **ret_pool)
{
	/* made before the freeze: our walks of the running tree until then
	 * (nice 19) stop at the freeze, their CPU is the workers' */
	struct pool_opts po = { .fixed_threads = d->opts.dump_threads, .credit_own_first = true,
				.sensors = d->opts.pool_sensors, .window_open = d->opts.pool_sensors != NULL };

	/* tests: with DMIGRATE_TEST_POOL_WORKERS=1 and --dump-threads N >= 2 the
	 * tasks that need no ptrace (reading fds, memory) run on worker threads
	 * only, never on the thread that reports the error */
	po.owner_pinned_only = getenv("DMIGRATE_TEST_POOL_WORKERS") != NULL;
	int r = pool_create(&po, ret_pool);
	return r < 0 ? dm_fail(r, "cannot create the dump pool: %s", strerror(-r)) : 0;
}

int dump_freeze(const struct dump_opts *o, struct dump_ctx **ret_ctx)
{
	struct dump_ctx *d;
	int r;

	/* refusals that need no freeze come before it: the tree is not touched */
	r = dump_check_root(o->pid);
	if (r < 0)
		return r;
	d = xcalloc(1, sizeof(*d));
	d->opts = *o;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->path_lock, NULL);
	pthread_cond_init(&d->owner_done, NULL);
	pthread_mutex_init(&d->copy_lock, NULL);
	/* the pool's first CPU window opens now: by the end of the freeze it
	 * knows whether the host has room for a second worker (pool.h) */
	r = dump_pool_new(d, &d->pool);
	if (r < 0) {
		dump_free(d);
		return r;
	}
	if (o->early_vmflags) {
		r = dump_vmflags_preread(d);
		if (r < 0) {
			dump_free(d);
			return r;
		}
	}
	if (!o->lazy_remote) {
		d->img_dir_made = access(o->images_dir, F_OK) < 0;
		r = image_open(o->images_dir, true, &d->img);
		if (r < 0) {
			if (d->img_dir_made)
				rmdir(o->images_dir);
			dump_free(d);
			return r;
		}
		dump_prealloc_pages(d);
		/* the chunks' copy buffers, faulted in now: not in the freeze */
		dump_bufs_alloc(d);
		dm_error_clear();
	}
	r = dump_inet_warm(d);
	if (r < 0) {
		if (d->img_dir_made)
			rmdir(o->images_dir);
		dump_free(d);
		return r;
	}
	/* the pool's first decision now, over the window since it was made:
	 * its second worker comes with the frozen dump's first unpinned task
	 * (before the wait for the tree's answer: nothing comes between that
	 * answer and the freeze) */
	pool_decide_ahead(d->pool);
	dump_inet_quiet(d);
	if (o->before_freeze)
		o->before_freeze(o->before_freeze_arg);
	d->t_start = clock_ns();
	/* from here the peers of a container with listeners meet its lock */
	r = dump_inet_prelock(d);
	if (r >= 0)
		r = dump_seize_tree(d);
	if (r < 0) {
		dump_detach_all(d, false);
		dump_inet_release(d, false);
		/* nothing was written: the reserved files have no name */
		if (d->img_dir_made)
			rmdir(o->images_dir);
		dump_free(d);
		return r;
	}
	d->t_frozen = clock_ns();
	pr_info("froze %zu processes, %u threads in %.1f ms", d->nprocs, d->threads_total,
		ns_to_ms(d->t_start, d->t_frozen));
	*ret_ctx = d;
	return 0;
}

struct ptask {
	struct dump_ctx *d;
	struct dproc *p;
};

static int static_task(struct pool *pool, void *arg)
{
	struct ptask *t = arg;
	struct dump_lap l;
	(void)pool;
	dump_lap_start(&l);
	int r = dump_proc_fill_static(t->d, t->p);
	dump_lap(t->d, DPH_PROC, &l);
	return r;
}

static int mm_task(struct pool *pool, void *arg)
{
	struct ptask *t = arg;
	return dump_proc_mm(pool, t->d, t->p);
}

static int fds_task(struct pool *pool, void *arg)
{
	struct ptask *t = arg;
	struct dump_lap l;
	(void)pool;
	dump_lap_start(&l);
	int r = dump_proc_fds(t->d, t->p);
	dump_lap(t->d, DPH_FDS, &l);
	return r;
}

static int add_ptask(struct pool *pool, pool_fn fn, struct dump_ctx *d, struct dproc *p, unsigned flags,
		     const char *name)
{
	struct ptask *t = xmalloc(sizeof(*t));
	t->d = d;
	t->p = p;
	return pool_add_full(pool, fn, t, free, flags, name);
}

static int control_task(struct pool *pool, void *arg)
{
	struct ptask *t = arg;
	struct dump_ctx *d = t->d;
	struct dproc *p = t->p;
	struct dump_lap l;
	int r;

	dump_lap_start(&l);
	p->msg = PB_NEW(Dm__Process, dm__process__init);
	p->msg->pid = p->vpid;
	if (!p->zombie) {
		p->pidfd = syscall(SYS_pidfd_open, p->pid, 0);
		if (p->pidfd < 0)
			return dm_fail(neg_errno(), "process %d: pidfd_open: %m", p->pid);
		/* its fds first: they need the pidfd only, and queued now they
		 * are the pool's first unpinned work, a worker's while we read
		 * the maps (queued after them, a three-process nginx's first
		 * worker came 1-4 ms into the frozen dump) */
		r = add_ptask(pool, fds_task, d, p, 0, "fds");
		if (r < 0)
			return r;
		r = proc_read_maps(p->pid, &p->vmas);
		if (r < 0)
			return dm_fail(r, "process %d: maps: %s", p->pid, strerror(-r));
		r = dump_vmflags_from_early(d, p) ? 0 : proc_read_smaps_vmflags(p->pid, &p->vmas);
		if (r < 0)
			return dm_fail(r, "process %d: smaps: %s", p->pid, strerror(-r));
	}
	dump_lap(d, DPH_PROC, &l);
	r = add_ptask(pool, static_task, d, p, 0, "static");
	if (r < 0 || p->zombie)
		return r;
	r = add_ptask(pool, mm_task, d, p, 0, "mm");
	if (r < 0)
		return r;
	dump_lap(d, DPH_POOL, &l);
	r = dump_proc_core(d, p);
	dump_lap(d, DPH_PARASITE, &l);
	return r;
}

static int main_task(struct pool *pool, void *arg)
{
	struct dump_ctx *d = arg;
	int r = dump_check_fd_tables(d);
	if (r < 0)
		return r;
	for (size_t i = 0; i < d->nprocs; i++) {
		r = add_ptask(pool, control_task, d, d->procs[i], POOL_PINNED, "control");
		if (r < 0)
			return r;
	}
	return 0;
}

/* Lazy images: the pages the kernel touches for a task before it runs, as
 * sorted, merged page ranges [start, end). */
struct eager_set {
	struct proc_range *r;
	size_t n, cap;
};

static void eager_add(struct eager_set *s, uint64_t start, uint64_t end)
{
	start &= ~(DM_PAGE_SIZE - 1);
	end = (end + DM_PAGE_SIZE - 1) & ~(DM_PAGE_SIZE - 1);
	if (end <= start)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->r = xrealloc(s->r, s->cap * sizeof(*s->r));
	}
	s->r[s->n++] = (struct proc_range){ start, end };
}

static int range_cmp(const void *a, const void *b)
{
	const struct proc_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static void eager_pages(const struct dump_ctx *d, const struct dproc *p, struct eager_set *s)
{
	const Dm__Process *m = p->msg;
	/* what a child inherits must be in before the restore forks it */
	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dproc *ch = d->procs[i];
		if (ch->ppid != p->pid || ch == p || !ch->msg)
			continue;
		for (size_t k = 0; k + 1 < ch->msg->n_inherited; k += 2)
			eager_add(s, ch->msg->inherited[k],
				  ch->msg->inherited[k] + ch->msg->inherited[k + 1] * DM_PAGE_SIZE);
	}
	for (size_t i = 0; i < m->n_threads; i++) {
		const Dm__Thread *t = m->threads[i];
		const struct user_regs_struct *r = (const void *)t->regs.data;
		uint64_t a, e;
		dump_stack_eager(r->rsp, &a, &e);
		eager_add(s, a, e);
		if (t->has_rseq_ptr)
			eager_add(s, t->rseq_ptr, t->rseq_ptr + 1);
		if (t->has_robust_head)
			eager_add(s, t->robust_head, t->robust_head + 1);
		if (t->has_clear_tid)
			eager_add(s, t->clear_tid, t->clear_tid + 1);
		if (t->has_altstack_sp && t->altstack_size)
			eager_add(s, t->altstack_sp, t->altstack_sp + t->altstack_size);
	}
	/* mlock()ed memory is resident: its pages are in before the resume, so
	 * that the restore can lock it as it was (not on fault) */
	for (size_t i = 0; i < m->n_vmas; i++) {
		const Dm__Vma *v = m->vmas[i];
		uint32_t madv = v->has_madv ? v->madv : 0;
		if ((madv & DM_MADV_LOCKED) && !(madv & DM_MADV_LOCKONFAULT))
			eager_add(s, v->start, v->end);
	}
	qsort(s->r, s->n, sizeof(*s->r), range_cmp);
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (k && s->r[i].start <= s->r[k - 1].end) {
			s->r[k - 1].end = MAX(s->r[k - 1].end, s->r[i].end);
			continue;
		}
		s->r[k++] = s->r[i];
	}
	s->n = k;
}

/*
 * Split the page map into eager and lazy runs.  Offsets keep the full
 * layout (a sub-run starts at its parent's offset plus its distance), so
 * splitting moves no data; with lazy_remote only the eager runs are written
 * and the pages file is sparse.
 */
/* Pages of private file mappings are eager: userfaultfd MISSING does not
 * register file mappings, so the restore could not serve them lazily. */
static bool entry_in_anon_vma(const Dm__Process *m, const Dm__PagemapEntry *e)
{
	const Dm__Vma *v = checkpoint_vma_at(m, e->vaddr);
	return v && v->kind != DM__VMA_KIND__VMA_FILE;
}

static void push_entry(struct dump_ctx *d, const Dm__PagemapEntry *e, uint64_t a, uint64_t end, bool eager,
		       Dm__PagemapEntry ***out, size_t *n, size_t *cap);

static void push_eager_known(struct dump_ctx *d, const struct dproc *p, const Dm__PagemapEntry *e, uint64_t a,
			     uint64_t end, Dm__PagemapEntry ***out, size_t *n, size_t *cap);

/*
 * An eager piece [a, end) of a sparse run (an anonymous VMA whose page map
 * the freeze did not read): only its pages that hold data (present or
 * swapped: the page map of these few pages) are eager; one with none is a
 * hole in the page map: no page, a zero page wherever it is wanted (the
 * restore writes zeros there before the task runs, a fault gets the zero
 * page).  Read as a whole, every absent page went as 4 KiB of zeros in the
 * state (the 4 pages below a blocked thread's stack pointer, mostly never
 * touched: 16 KiB a thread in the downtime); left in the sparse run, each
 * was a lazy page the restore fetched from the source before the task ran
 * (one round trip a page: 4 a thread, 3 ms for a memcached's 10 threads).
 * A page map that cannot be read: all of it eager.
 */
#define EAGER_PM_BATCH 64
#define PM_UNOPENED (-2)
static void push_eager(struct dump_ctx *d, const struct dproc *p, const Dm__PagemapEntry *e, uint64_t a,
		       uint64_t end, int *pm, Dm__PagemapEntry ***out, size_t *n, size_t *cap)
{
	if (!(e->has_sparse && e->sparse)) {
		push_eager_known(d, p, e, a, end, out, n, cap);
		return;
	}
	if (*pm == PM_UNOPENED) {	/* the process's page map: opened once, for its first such piece */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", p->pid);
		*pm = open(path, O_RDONLY | O_CLOEXEC);
	}
	while (a < end) {
		uint64_t ent[EAGER_PM_BATCH];
		size_t k = MIN((size_t)((end - a) / DM_PAGE_SIZE), (size_t)EAGER_PM_BATCH);
		if (*pm < 0 || pread_exact(*pm, ent, k * sizeof(*ent), (off_t)(a / DM_PAGE_SIZE * sizeof(*ent))) < 0) {
			push_eager_known(d, p, e, a, end, out, n, cap);
			return;
		}
		for (size_t i = 0; i < k;) {
			bool data = ent[i] & (3ULL << 62); /* present, swapped */
			size_t j = i + 1;
			while (j < k && (bool)(ent[j] & (3ULL << 62)) == data)
				j++;
			uint64_t s = a + i * DM_PAGE_SIZE, t = a + j * DM_PAGE_SIZE;
			if (data)
				push_eager_known(d, p, e, s, t, out, n, cap);
			i = j;
		}
		a += k * DM_PAGE_SIZE;
	}
}

/*
 * An eager piece [a, end) that holds data: the pages the destination
 * already has unchanged (page_at_dest: a pre-copy round) become `now`
 * entries, remote and written before the task runs from there; the rest is
 * read into the page file.
 */
static void push_eager_known(struct dump_ctx *d, const struct dproc *p, const Dm__PagemapEntry *e, uint64_t a,
			     uint64_t end, Dm__PagemapEntry ***out, size_t *n, size_t *cap)
{
	if (!d->opts.lazy_remote || !d->opts.page_at_dest) {
		push_entry(d, e, a, end, true, out, n, cap);
		return;
	}
	while (a < end) {
		bool there = d->opts.page_at_dest(d->opts.page_at_dest_arg, p->vpid, a);
		uint64_t b = a + DM_PAGE_SIZE;
		while (b < end && d->opts.page_at_dest(d->opts.page_at_dest_arg, p->vpid, b) == there)
			b += DM_PAGE_SIZE;
		size_t k = *n;
		push_entry(d, e, a, b, !there, out, n, cap);
		if (there && *n > k) {
			Dm__PagemapEntry *x = (*out)[k];
			x->has_now = x->now = true;
			x->has_sparse = x->sparse = false; /* the round sent it: it holds data */
			d->eager_at_dest += (b - a) / DM_PAGE_SIZE;
		}
		a = b;
	}
}

static void push_entry(struct dump_ctx *d, const Dm__PagemapEntry *e, uint64_t a, uint64_t end, bool eager,
		       Dm__PagemapEntry ***out, size_t *n, size_t *cap)
{
	if (end <= a)
		return;
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*out = xrealloc(*out, *cap * sizeof(**out));
	}
	Dm__PagemapEntry *x = PB_NEW(Dm__PagemapEntry, dm__pagemap_entry__init);
	x->vaddr = a;
	x->nr_pages = (uint32_t)((end - a) / DM_PAGE_SIZE);
	x->offset = e->offset + (a - e->vaddr);
	x->has_lazy = x->lazy = !eager;
	x->has_remote = x->remote = !eager && d->opts.lazy_remote;
	/* an eager piece is read now, whatever it holds: it is no longer sparse */
	x->has_sparse = x->sparse = !eager && e->has_sparse && e->sparse;
	(*out)[(*n)++] = x;
}

static int lazy_split(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	Dm__PagemapEntry **out = NULL;
	struct eager_set eg = {};
	size_t n = 0, cap = 0;
	char name[64];
	_cleanup_close_ int pm = PM_UNOPENED;	/* push_eager()'s */
	int r;

	eager_pages(d, p, &eg);
	for (size_t i = 0; i < m->n_pagemap; i++) {
		Dm__PagemapEntry *e = m->pagemap[i];
		uint64_t a = e->vaddr, end = e->vaddr + (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		if (!entry_in_anon_vma(m, e)) {
			/* eager all, but what the destination holds already
			 * unchanged (a pre-copy round's copy, or post-copy's
			 * eager pages sent before the freeze) */
			push_eager(d, p, e, a, end, &pm, &out, &n, &cap);
		} else {
			/* entries never cross a VMA; eager ranges are few */
			for (size_t k = 0; k < eg.n && a < end; k++) {
				if (eg.r[k].end <= a || eg.r[k].start >= end)
					continue;
				uint64_t es = MAX(eg.r[k].start, a), ee = MIN(eg.r[k].end, end);
				push_entry(d, e, a, es, false, &out, &n, &cap);
				push_eager(d, p, e, es, ee, &pm, &out, &n, &cap);
				a = ee;
			}
			push_entry(d, e, a, end, false, &out, &n, &cap);
		}
		protobuf_c_message_free_unpacked(&e->base, NULL);
	}
	free(eg.r);
	free(m->pagemap);
	m->pagemap = out;
	m->n_pagemap = n;
	if (!d->opts.lazy_remote)
		return 0;

	snprintf(name, sizeof(name), IMG_PAGES_FMT, p->vpid);
	r = image_create_raw(d->img, name, IMG_PAGES, &p->pages_fd);
	if (r < 0)
		return r;
	if (p->pages_bytes && ftruncate(p->pages_fd, DM_IMG_DATA_OFF + p->pages_bytes) < 0)
		return dm_fail(neg_errno(), "%s: %m", name);
	char mp[64];
	snprintf(mp, sizeof(mp), "/proc/%d/mem", p->pid);
	_cleanup_close_ int mem = open(mp, O_RDONLY | O_CLOEXEC);
	if (mem < 0)
		return dm_fail(neg_errno(), "process %d: %s: %m", p->pid, mp);
	_cleanup_free_ uint8_t *buf = xmalloc(DM_PAGE_SIZE * 64);
	for (size_t i = 0; i < n; i++) {
		Dm__PagemapEntry *x = out[i];
		if (x->lazy)
			continue;
		for (uint32_t k = 0; k < x->nr_pages; k += 64) {
			size_t len = MIN((size_t)(x->nr_pages - k), (size_t)64) * DM_PAGE_SIZE;
			uint64_t a = x->vaddr + (uint64_t)k * DM_PAGE_SIZE;
			r = pread_exact(mem, buf, len, a);
			if (r < 0)
				return dm_fail(r, "process %d: reading %#" PRIx64 ": %s", p->pid, a, strerror(-r));
			r = pwrite_all(p->pages_fd, buf, len, DM_IMG_DATA_OFF + x->offset + (uint64_t)k * DM_PAGE_SIZE);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* p's parent as the image names it (0: not in the tree: the root's) */
static int32_t image_ppid(const struct dump_ctx *d, const struct dproc *p)
{
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->pid == p->ppid)
			return d->procs[i]->vpid;
	return 0;
}

/* sessions and process groups the restore cannot make: refused now, while
 * the tree runs (image/treecheck.h) */
static int dump_tree_check(struct dump_ctx *d)
{
	_cleanup_free_ struct tree_ids *ids = xcalloc(d->nprocs, sizeof(*ids));

	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dproc *p = d->procs[i];
		const Dm__Process *m = p->msg;
		ids[i] = (struct tree_ids){ p->vpid, image_ppid(d, p), m ? m->sid : 0, m ? m->pgid : 0,
					    m && m->has_child_subreaper && m->child_subreaper };
	}
	return tree_ids_check(ids, d->nprocs, d->own_pidns);
}

static int write_process(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	char name[64];
	int r;

	m->ppid = image_ppid(d, p);
	if (m->mm && p->exe_file_id) {
		m->mm->has_exe_file_id = true;
		m->mm->exe_file_id = p->exe_file_id;
	}
	if (m->creds) {
		m->creds->has_securebits = true;
		m->creds->securebits = p->securebits;
		for (size_t i = 0; i < m->n_threads; i++)
			if (m->threads[i]->creds) {
				m->threads[i]->creds->has_securebits = true;
				m->threads[i]->creds->securebits = p->securebits;
			}
	}
	if (!p->zombie && (d->opts.lazy || d->opts.lazy_remote)) {
		r = lazy_split(d, p);
		if (r < 0)
			return r;
	}
	if (p->pages_fd >= 0) {
		r = image_finish_raw(p->pages_fd, IMG_PAGES, p->pages_bytes);
		if (r < 0)
			return r;
	}
	snprintf(name, sizeof(name), IMG_PROC_FMT, p->vpid);
	return image_write_msg(d->img, name, IMG_PROCESS, &m->base);
}

static int write_tables(struct dump_ctx *d)
{
	Dm__FileTable ft = DM__FILE_TABLE__INIT;
	Dm__Inventory inv = DM__INVENTORY__INIT;
	struct utsname u;
	char host[256] = "";
	struct timespec ts;
	int r;

	ft.n_files = d->nfiles;
	ft.files = d->files;
	r = image_write_msg(d->img, IMG_FILES_FILE, IMG_FILES, &ft.base);
	if (r < 0)
		return r;

	_cleanup_free_ int32_t *pids = xcalloc(d->nprocs, sizeof(*pids));
	for (size_t i = 0; i < d->nprocs; i++)
		pids[i] = d->procs[i]->vpid;
	inv.version = DM_IMG_VERSION;
	inv.root_pid = d->procs[0]->vpid;
	inv.own_pidns = d->own_pidns;
	inv.n_pids = d->nprocs;
	inv.pids = pids;
	clock_gettime(CLOCK_REALTIME, &ts);
	inv.has_created_unix_ms = true;
	inv.created_unix_ms = ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
	gethostname(host, sizeof(host) - 1);
	inv.hostname = host;
	if (uname(&u) == 0)
		inv.kernel = u.release;
	inv.has_lazy = true;
	inv.lazy = d->opts.lazy || d->opts.lazy_remote;
	inv.has_page_size = true;
	inv.page_size = DM_PAGE_SIZE;
	inv.has_total_pages = true;
	inv.total_pages = atomic_load(&d->total_pages);
	/* what a restoring host's CPU must offer (restore_check_host) */
	inv.has_xcr0 = true;
	inv.xcr0 = host_xcr0();
	uint32_t cf[HOST_CPU_WORDS];
	host_cpu_flags(cf);
	inv.has_cpuid_1_ecx = inv.has_cpuid_7_ebx = inv.has_cpuid_7_ecx = true;
	inv.cpuid_1_ecx = cf[0];
	inv.cpuid_7_ebx = cf[1];
	inv.cpuid_7_ecx = cf[2];
	inv.container = (Dm__Container *)(d->opts.container ? d->opts.container->msg : NULL);
	inv.has_xfeatures_used = true;
	inv.xfeatures_used = 0;
	for (size_t i = 0; i < d->nprocs; i++) {
		const Dm__Process *m = d->procs[i]->msg;
		for (size_t k = 0; m && k < m->n_threads; k++) {
			uint64_t bv;
			if (!m->threads[k]->has_xstate || m->threads[k]->xstate.len < 520)
				continue;
			memcpy(&bv, m->threads[k]->xstate.data + 512, sizeof(bv));
			inv.xfeatures_used |= bv;
		}
	}
	if (d->opts.keep_net_lock && dump_inet_lock(d))
		inv.net_lock = (char *)dump_inet_lock(d);
	/* the inventory last: an image without it is incomplete */
	return image_write_msg(d->img, IMG_INVENTORY_FILE, IMG_INVENTORY, &inv.base);
}

static int collect(struct dump_ctx *d)
{
	_cleanup_pool_ struct pool *pool = TAKE_PTR(d->pool);
	struct dump_lap l;
	int r;

	dump_lap_start(&l);

	if (!d->img) {
		r = image_open(d->opts.images_dir, true, &d->img);
		if (r < 0)
			return r;
	}
	/* sockets: lock and repair the connections before any queue is read */
	uint64_t t_inet = clock_ns();
	r = dump_inet_prepare(d);
	d->inet_prepare_ns = clock_ns() - t_inet;
	dump_lap(d, DPH_FDS, &l);
	if (r < 0)
		return r;
	if (!pool) {
		r = dump_pool_new(d, &pool);
		if (r < 0)
			return r;
	}
	r = pool_add(pool, main_task, d, 0, "main");
	dump_lap(d, DPH_POOL, &l);
	if (r >= 0)
		r = pool_run(pool);
	/* the tasks timed themselves: restart the owner's lap */
	dump_lap_start(&l);
	d->pool_stats = json_object();
	pool_stats_to_json(pool, "dump_threads", d->pool_stats);
	if (r < 0)
		return r;
	r = dump_tree_check(d);
	if (r < 0)
		return r;
	r = dump_unix_finish(d);
	if (r < 0)
		return r;
	r = dump_ctty(d);
	if (r < 0)
		return r;
	dump_inherit_finish(d);
	for (size_t i = 0; i < d->nprocs; i++) {
		r = write_process(d, d->procs[i]);
		if (r < 0)
			return r;
	}
	if (d->opts.before_inventory) {
		r = d->opts.before_inventory(d->opts.before_inventory_arg);
		if (r < 0)
			return r;
		dump_lap_start(&l); /* the wait is not the image's */
	}
	r = write_tables(d);
	if (r < 0)
		return r;
	dump_lap(d, DPH_IMAGE, &l);
	d->t_collected = clock_ns();
	return 0;
}

int dump_collect(struct dump_ctx *d)
{
	int r = collect(d);
	if (r >= 0 || !d->opts.defer_ns_check)
		return r;
	/* a thread in a namespace the restore cannot make is the reason told
	 * (the freeze would have refused it before the dump began) */
	char msg[DM_ERRMSG_MAX];
	snprintf(msg, sizeof(msg), "%s", dm_last_error());
	dm_error_clear();
	int k = dump_check_namespaces(d);
	if (k == -ENOTSUP)
		return k;
	dm_error_set_message(msg);
	return r;
}

int dump_release(struct dump_ctx *d, enum dump_release_action action)
{
	if (d->released)
		return 0;
	d->released = true;
	d->t_release = clock_ns();
	/* connections out of repair mode before the tree runs (a recv there fails
	 * with EPERM); a killed tree's close them in repair mode: nothing is sent */
	if (action == DUMP_RESUME)
		dump_inet_release(d, false);
	if (action == DUMP_KILL && d->opts.container && d->opts.container->before_kill)
		d->opts.container->before_kill(d->opts.container->arg);
	int r = dump_detach_all(d, action == DUMP_KILL);
	if (action == DUMP_KILL)
		dump_inet_release(d, true);
	d->t_released = clock_ns();
	/* netfilter and packet sockets: each close waits for a grace period */
	dump_inet_close(d);
	dump_trim_pages(d);
	return r;
}

/*
 * After DUMP_KILL in the host's PID namespace: the killed processes' zombies
 * go to their new parent (init or a subreaper), which may reap them late;
 * until then their pids, and the group and session numbers they lead, are
 * in use and a restore right away fails.  Wait, bounded, until every one but
 * the root (its own parent's to reap) is gone: its pid no longer names it
 * (no /proc entry, or another process with another start time).
 */
int dump_wait_gone(struct dump_ctx *d, int timeout_ms)
{
	uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000ULL;

	if (d->own_pidns)
		return 0;	/* the restore makes a new namespace: no pid of ours is wanted */
	for (size_t i = 1; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		for (;;) {
			struct proc_stat st;
			if (proc_read_stat(p->pid, 0, &st) < 0 || st.start_time != p->start_time) {
				dm_error_clear();
				break;
			}
			if (clock_ns() > deadline)
				return dm_fail(-ETIMEDOUT, "pid %d of the tree is still in use %d s after "
					       "the checkpoint (state %c: its new parent %d has not reaped it); "
					       "a restore needs the pid free", p->pid, timeout_ms / 1000,
					       st.state, st.ppid);
			usleep(1000);
		}
	}
	return 0;
}

void dump_free(struct dump_ctx *d)
{
	if (!d)
		return;
	if (!d->released)
		dump_release(d, DUMP_RESUME);
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		if (p->msg)
			protobuf_c_message_free_unpacked(&p->msg->base, NULL);
		proc_vma_list_done(&p->vmas);
		if (p->pages_fd >= 0)
			close(p->pages_fd);
		if (p->mem_fd >= 0)
			close(p->mem_fd);
		if (p->pidfd >= 0)
			close(p->pidfd);
		for (size_t k = 0; k < p->nthreads; k++)
			if (p->threads[k].st) {
				proc_status_done(p->threads[k].st);
				free(p->threads[k].st);
			}
		free(p->threads);
		free(p->chunks);
		free(p);
	}
	free(d->procs);
	free(d->copy_q);
	pool_free(d->pool);
	for (size_t i = 0; i < d->nfiles; i++)
		protobuf_c_message_free_unpacked(&d->files[i]->base, NULL);
	free(d->files);
	free(d->owners);
	dump_vmflags_free(d);
	dump_unix_free(d);
	dump_prealloc_free(d);
	dump_bufs_free(d);
	dump_inet_free(d);
	if (d->pool_stats)
		json_decref(d->pool_stats);
	image_close(d->img);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->path_lock);
	pthread_cond_destroy(&d->owner_done);
	pthread_mutex_destroy(&d->copy_lock);
	free(d);
}

pid_t dump_host_pid(const struct dump_ctx *d, pid_t image_pid)
{
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->vpid == image_pid)
			return d->procs[i]->pid;
	return -1;
}

uint64_t dump_freeze_started(const struct dump_ctx *d)
{
	return d->t_start;
}

void dump_stats_json(const struct dump_ctx *d, json_t *obj)
{
	uint64_t pages = atomic_load(&d->total_pages);
	size_t vmas = 0;

	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->msg)
			vmas += d->procs[i]->msg->n_vmas;
	json_object_set_new(obj, "freeze_ms", json_real(ns_to_ms(d->t_start, d->t_frozen)));
	{
		/* freeze_ms step by step (the network lock before it: net_lock_ms) */
		json_t *fs = json_object();
		if (d->opts.container)
			json_object_set_new(fs, "stop_all_ms", json_real(d->fz_all_ns / 1e6));
		json_object_set_new(fs, "walk_ms", json_real(d->fz_walk_ns / 1e6));
		json_object_set_new(fs, "check_ms", json_real(d->fz_check_ns / 1e6));
		if (!d->opts.defer_ns_check)
			json_object_set_new(fs, "ns_ms", json_real(d->fz_ns_ns / 1e6));
		json_object_set_new(obj, "freeze_steps", fs);
	}
	if (d->t_collected)
		json_object_set_new(obj, "frozen_ms", json_real(ns_to_ms(d->t_frozen, d->t_collected)));
	json_object_set_new(obj, "processes", json_integer(d->nprocs));
	json_object_set_new(obj, "threads", json_integer(d->threads_total));
	json_object_set_new(obj, "vmas", json_integer(vmas));
	json_object_set_new(obj, "pages", json_integer(pages));
	json_object_set_new(obj, "bytes", json_integer(pages * DM_PAGE_SIZE));
	/* eager pages the destination holds unchanged (a pre-copy round's, or
	 * sent before the freeze): written there from its store, not in `pages` */
	if (d->opts.page_at_dest)
		json_object_set_new(obj, "pages_at_destination", json_integer((json_int_t)d->eager_at_dest));
	json_object_set_new(obj, "lazy", json_boolean(d->opts.lazy || d->opts.lazy_remote));
	if (d->opts.defer_pagemap)
		json_object_set_new(obj, "pages_deferred", json_integer(atomic_load(&d->deferred_pages)));
	/* copy-on-write sharing between parents and children (docs/design.md) */
	json_t *cow = json_object();
	json_object_set_new(cow, "inherit", json_boolean(!d->opts.no_inherit));
	json_object_set_new(cow, "inherited_pages",
			    json_integer((json_int_t)(atomic_load(&d->inherit_found) - d->inherit_copies)));
	json_object_set_new(cow, "eager_pages", json_integer((json_int_t)d->inherit_eager));
	json_object_set_new(cow, "copied_pages", json_integer((json_int_t)d->inherit_copies));
	/* of eager_pages, those a pre-copy round left at the destination (not sent again) */
	json_object_set_new(cow, "at_destination_pages", json_integer((json_int_t)d->inherit_at_dest));
	if (d->opts.inherit_max_pages)
		json_object_set_new(cow, "max_pages", json_integer((json_int_t)d->opts.inherit_max_pages));
	json_object_set_new(obj, "cow", cow);
	if (d->n_prealloc) {
		json_object_set_new(obj, "prealloc_ms", json_real(d->prealloc_ms));
		json_object_set_new(obj, "prealloc_pretouch", json_boolean(d->pretouch));
	}
	if (d->images_fs)
		json_object_set_new(obj, "images_fs", json_string(d->images_fs));
	if (d->opts.early_vmflags) {
		json_object_set_new(obj, "vmflags_early_ms", json_real(d->early_ms));
		json_object_set_new(obj, "vmflags_early_procs", json_integer(atomic_load(&d->procs_vmflags_early)));
	}
	if (d->pool_stats)
		json_object_update(obj, d->pool_stats);
	dump_inet_stats(d, obj);
	if (!d->t_collected)
		return;

	/* the frozen window, phase by phase (docs/design.md, "Where the frozen time goes") */
	static const char *const names[DPH_N] = {
		[DPH_POOL] = "pool", [DPH_PROC] = "proc", [DPH_PARASITE] = "parasite",
		[DPH_VMAS] = "vmas", [DPH_PAGEMAP] = "pagemap", [DPH_COW] = "cow", [DPH_ALLOC] = "alloc",
		[DPH_READ] = "read", [DPH_WRITE] = "write", [DPH_FDS] = "fds", [DPH_IMAGE] = "image",
	};
	json_t *ph = json_object();
	uint64_t wall = 0, cpu = 0;
	for (int i = 0; i < DPH_N; i++) {
		uint64_t w = atomic_load(&d->phase[i].wall_ns), c = atomic_load(&d->phase[i].cpu_ns);
		json_t *o = json_object();
		json_object_set_new(o, "wall_ms", json_real(w / 1e6));
		json_object_set_new(o, "cpu_ms", json_real(c / 1e6));
		json_object_set_new(o, "count", json_integer(atomic_load(&d->phase[i].n)));
		json_object_set_new(ph, names[i], o);
		wall += w;
		cpu += c;
	}
	json_object_set_new(obj, "frozen_phases", ph);
	dump_fd_type_stats(d, obj);
	json_object_set_new(obj, "frozen_phases_wall_ms", json_real(wall / 1e6));
	json_object_set_new(obj, "frozen_phases_cpu_ms", json_real(cpu / 1e6));
	json_object_set_new(obj, "copy_buffers", json_integer(d->nbufs));
	json_object_set_new(obj, "copy_buffers_late", json_integer(atomic_load(&d->bufs_late)));
	json_object_set_new(obj, "copy_chunks_shared", json_integer(atomic_load(&d->chunks_shared)));
	if (d->t_released) {
		json_object_set_new(obj, "resume_ms", json_real(ns_to_ms(d->t_release, d->t_released)));
		json_object_set_new(obj, "stopped_ms", json_real(ns_to_ms(d->t_start, d->t_released)));
	}
}
