/* SPDX-License-Identifier: MIT */
/*
 * Memory contents.
 *
 * Private pages come from pages-<pid>.img, mmap()ed.  Private anonymous
 * memory is filled with UFFDIO_COPY on a userfaultfd registered for the time
 * of the copy; the rest is written through /proc/PID/mem (FOLL_FORCE:
 * read-only and PROT_NONE private mappings take the write too, with COW).
 * See "bulk writes".  Runs of entries contiguous both in memory and in the
 * file go out together (cut at VMA boundaries).  The image was validated for
 * order and file offsets; the bounds against the actual file size are
 * checked here.
 *
 * Lazy restore: entries marked lazy are not written, except the pages the
 * kernel itself writes for a task before the task runs (restore.h): those
 * are written now, from the image, from o->lazy_fetch, or as zeros when the
 * page never existed.
 *
 * Shared memory (anonymous MAP_SHARED, memfd): one object per shmem id for
 * the whole tree, created here and filled from shmem-<id>.img; every process
 * maps the same object through an fd received over the transport.  An
 * anonymous object is made by mmap(MAP_SHARED|MAP_ANONYMOUS) and reopened
 * through /proc/self/map_files, so the tracees see "/dev/zero (deleted)" as
 * they did; a memfd is remade with its name.
 */
#define LOG_PREFIX "restore: "
#include "restore/uffd.h"
#include "base/clock.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define WRITE_CHUNK (2ULL << 20)    /* one job of a writer thread */
#define PARALLEL_MIN (16ULL << 20)  /* below this, one thread writes (two writers for a
				     * migration's ~1 MiB were no faster, alternated) */
#define WRITERS_MAX 4

#define EAGER_BELOW_SP (16 * 1024) /* signal frames (xsave area included) + red zone */
#define EAGER_ALTSTACK (16 * 1024)

/*
 * userfaultfd (MISSING) takes anonymous memory only: lazy pages of a private
 * file mapping (its COWed pages) are written like the others.
 */
static bool vma_uffd_ok(const Dm__Vma *v)
{
	if (v->flags & MAP_SHARED)
		return false;
	return v->kind == DM__VMA_KIND__VMA_ANON || v->kind == DM__VMA_KIND__VMA_HEAP ||
	       v->kind == DM__VMA_KIND__VMA_STACK;
}

bool pages_vma_lazy(struct rst_ctx *c, const Dm__Process *p, const Dm__Vma *v)
{
	if (!c->lazy || !vma_uffd_ok(v))
		return false;
	for (size_t i = 0; i < p->n_pagemap; i++) {
		const Dm__PagemapEntry *e = p->pagemap[i];
		if (e->vaddr >= v->end)
			break;
		/* `now` pages are written before the task runs: not lazy here */
		if (e->vaddr >= v->start && e->has_lazy && e->lazy && !(e->has_now && e->now))
			return true;
	}
	return false;
}

struct pagefile {
	const uint8_t *map;
	size_t map_len;
	uint64_t payload;
};

static void pagefile_close(struct pagefile *pf)
{
	if (pf->map)
		munmap((void *)pf->map, pf->map_len);
	pf->map = NULL;
}

static int pagefile_open(struct rst_ctx *c, const char *name, enum dm_img_kind kind,
			 struct pagefile *pf)
{
	_cleanup_close_ int fd = -1;
	int r;

	memset(pf, 0, sizeof(*pf));
	r = image_open_raw(c->img, name, kind, &fd, &pf->payload);
	if (r < 0)
		return r;
	if (pf->payload == 0)
		return 0;
	pf->map_len = DM_IMG_DATA_OFF + pf->payload;
	void *m = mmap(NULL, pf->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return dm_fail(neg_errno(), "%s: mmap: %m", name);
	madvise(m, pf->map_len, MADV_SEQUENTIAL);
	pf->map = m;
	return 0;
}

/* The bytes of [off, off+len) of the payload, or NULL if beyond the file. */
static const uint8_t *pagefile_at(const struct pagefile *pf, uint64_t off, uint64_t len)
{
	if (off > pf->payload || len > pf->payload - off)
		return NULL;
	return pf->map + DM_IMG_DATA_OFF + off;
}

static int mem_write(struct rst_ctx *c, struct rst_proc *p, uint64_t addr, const void *src, uint64_t len)
{
	uint64_t t = clock_ns();
	int r = pwrite_all(rst_main(p)->memfd, src, len, (off_t)addr);
	c->st.mem_write_ms += ns_to_ms(t, clock_ns());
	if (r < 0)
		return dm_fail(r, "pid %d: writing %" PRIu64 " KiB at %#" PRIx64 ": %s", p->img->pid,
			       len >> 10, addr, strerror(-r));
	return 0;
}

/* --------------------------------------------------- eager pages (lazy) */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void add_range(uint64_t **v, size_t *n, size_t *cap, uint64_t lo, uint64_t hi)
{
	if (hi < lo)
		return;
	for (uint64_t a = lo & ~(DM_PAGE_SIZE - 1); a <= hi; a += DM_PAGE_SIZE) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		(*v)[(*n)++] = a;
		if (a + DM_PAGE_SIZE < a)
			break;
	}
}

static const Dm__PagemapEntry *entry_of(const Dm__Process *p, uint64_t a)
{
	size_t lo = 0, hi = p->n_pagemap;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const Dm__PagemapEntry *e = p->pagemap[mid];
		if (a < e->vaddr)
			hi = mid;
		else if (a >= e->vaddr + (uint64_t)e->nr_pages * DM_PAGE_SIZE)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

/* A page of the page source (a migration's store or its source), timed */
static int fetch_page(struct rst_ctx *c, pid_t pid, uint64_t addr, void *page)
{
	uint64_t t = clock_ns();
	int r = c->o->lazy_fetch(c->o->lazy_arg, pid, addr, page);
	c->st.mem_fetch_ms += ns_to_ms(t, clock_ns());
	c->st.pages_fetched += r >= 0;
	return r;
}

static int write_eager(struct rst_ctx *c, struct rst_proc *p, const struct pagefile *pf,
		       const char *name)
{
	const Dm__Process *ip = p->img;
	_cleanup_free_ uint64_t *v = NULL;
	_cleanup_free_ uint8_t *page = xcalloc(1, DM_PAGE_SIZE);
	size_t n = 0, cap = 0;
	int r;

	for (size_t i = 0; i < ip->n_threads; i++) {
		const Dm__Thread *t = ip->threads[i];
		const struct user_regs_struct *regs = (const void *)t->regs.data;
		if (t->has_rseq_ptr && t->rseq_ptr)
			add_range(&v, &n, &cap, t->rseq_ptr, t->rseq_ptr + MAX(t->rseq_size, 32u) - 1);
		if (t->has_robust_head && t->robust_head)
			add_range(&v, &n, &cap, t->robust_head, t->robust_head + 23);
		if (t->has_clear_tid && t->clear_tid)
			add_range(&v, &n, &cap, t->clear_tid, t->clear_tid + 3);
		if (regs->rsp > EAGER_BELOW_SP)
			add_range(&v, &n, &cap, regs->rsp - EAGER_BELOW_SP, regs->rsp);
		if (t->has_altstack_sp && t->altstack_sp && t->altstack_size &&
		    !(t->has_altstack_flags && (t->altstack_flags & SS_DISABLE))) {
			uint64_t top = t->altstack_sp + t->altstack_size;
			uint64_t lo = t->altstack_size > EAGER_ALTSTACK ? top - EAGER_ALTSTACK : t->altstack_sp;
			add_range(&v, &n, &cap, lo, top - 1);
		}
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		uint64_t a = v[i];
		if (i && v[i - 1] == a)
			continue;
		const Dm__Vma *vma = checkpoint_vma_at(ip, a);
		uint64_t inh;
		if (!vma || !pages_vma_lazy(c, ip, vma))
			continue;
		if (mm_inherited_in(ip, a, a + DM_PAGE_SIZE, &inh))
			continue; /* the parent's page, there since the fork */
		const Dm__PagemapEntry *e = entry_of(ip, a);
		const uint8_t *src = page;
		if (e && (!(e->has_lazy && e->lazy) || (e->has_now && e->now)))
			continue; /* written from the file (or the page source) already */
		if (e && !(e->has_remote && e->remote)) {
			src = pagefile_at(pf, e->offset + (a - e->vaddr), DM_PAGE_SIZE);
			if (!src)
				return dm_fail(-EBADMSG, "%s: page %#" PRIx64 " beyond the end of the file",
					       name, a);
		} else if (e) {
			if (!c->o->lazy_fetch)
				return dm_fail(-ENOTSUP,
					       "pid %d: page %#" PRIx64 " is lazy but the kernel writes it "
					       "before the task runs, and no page source can give it now",
					       ip->pid, a);
			r = fetch_page(c, ip->pid, a, page);
			if (r < 0)
				return rst_wrap(r, "pid %d: fetching lazy page %#" PRIx64, ip->pid, a);
		} else {
			memset(page, 0, DM_PAGE_SIZE);
		}
		r = mem_write(c, p, a, src, DM_PAGE_SIZE);
		if (r < 0)
			return r;
		c->st.pages_written++;
		if (e)
			c->st.pages_lazy--;
	}
	return 0;
}

static bool is_lazy(const Dm__PagemapEntry *e) { return e->has_lazy && e->lazy; }
static bool is_remote(const Dm__PagemapEntry *e) { return e->has_remote && e->remote; }

/* Left for the page server: lazy, in a VMA that is registered on the uffd
 * (not `now`: those are fetched and written before the task runs). */
bool pages_entry_deferred(struct rst_ctx *c, const Dm__Process *p, const Dm__PagemapEntry *e)
{
	if (!c->lazy || !is_lazy(e) || (e->has_now && e->now))
		return false;
	const Dm__Vma *v = checkpoint_vma_at(p, e->vaddr);
	return v && vma_uffd_ok(v);
}

/* Lazy pages that must be written now but are only on the page server (or
 * in the store a migration's destination keeps) and not in our memory
 * (o->lazy_peek): fetched page by page, written a batch at a time.  Through
 * one buffer for the whole restore, made with its pages in: a buffer of
 * malloc's per run (256 KiB: a mapping of its own) took a page fault for
 * each page it held, ~10 us each on this VM, and a redis's 276 such pages
 * (37 runs, in the downtime) took 3 ms. */
#define FETCH_BATCH 64u
static int fetch_run(struct rst_ctx *c, struct rst_proc *p, uint64_t vaddr, uint64_t nr_pages)
{
	int r;

	if (!c->o->lazy_fetch)
		return dm_fail(-ENOTSUP, "pid %d: pages at %#" PRIx64 " are on a page server and "
			       "cannot be served lazily here", p->img->pid, vaddr);
	if (!c->fetch_buf) {
		void *m = mmap(NULL, FETCH_BATCH * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (m == MAP_FAILED)
			return dm_fail(neg_errno(), "pid %d: a buffer for the pages to fetch: %m", p->img->pid);
		c->fetch_buf = m;
	}
	uint8_t *buf = c->fetch_buf;
	for (uint64_t k = 0; k < nr_pages; k += FETCH_BATCH) {
		uint32_t n = (uint32_t)MIN(nr_pages - k, (uint64_t)FETCH_BATCH);
		uint64_t a = vaddr + k * DM_PAGE_SIZE;
		for (uint32_t j = 0; j < n; j++) {
			uint64_t pa = a + (uint64_t)j * DM_PAGE_SIZE;
			r = fetch_page(c, p->img->pid, pa, buf + (size_t)j * DM_PAGE_SIZE);
			if (r < 0)
				return rst_wrap(r, "pid %d: fetching page %#" PRIx64, p->img->pid, pa);
		}
		r = mem_write(c, p, a, buf, (uint64_t)n * DM_PAGE_SIZE);
		if (r < 0)
			return r;
		c->st.pages_written += n;
	}
	return 0;
}

void pages_fini(struct rst_ctx *c)
{
	if (c->fetch_buf)
		munmap(c->fetch_buf, FETCH_BATCH * DM_PAGE_SIZE);
	c->fetch_buf = NULL;
}

/* ------------------------------------------------------- bulk writes */

/*
 * Two ways in, one job queue, chosen per VMA:
 *
 *   UFFDIO_COPY, for private anonymous memory: its VMAs are registered on a
 *   userfaultfd made inside the process for the time of the copy
 *   (rst_uffd_open), filled straight from the mapped file, and the uffd is
 *   closed (which unregisters them) before anything else touches them.  A
 *   page is allocated and filled in one step: no zeroing, no fault, no
 *   remote GUP per page; about twice the rate of /proc/PID/mem.
 *
 *   pwrite to /proc/PID/mem for the rest: private file mappings (userfaultfd
 *   MISSING takes anonymous memory only), mlocked VMAs (mlock2 populated them
 *   already), VMAs where a fault would have brought huge pages (UFFDIO_COPY
 *   installs small ones), and all of a process with little anonymous memory
 *   (the uffd's round trips would cost more than they save).  It is also the
 *   way when no uffd can be had.
 *
 * The copies cost page allocations in the target more than the copy itself:
 * a big address space is written by a few threads (neither way needs
 * ptrace: any thread of ours may do them).
 */
#define UFFD_MIN (1ULL << 20) /* less anonymous memory than this: /proc/PID/mem */

enum thp_mode { THP_NEVER, THP_MADVISE, THP_ALWAYS };

static enum thp_mode thp_mode(void)
{
	static _Atomic int known; /* 0: not read yet, else mode + 1 */
	int k = atomic_load(&known);

	if (!k) {
		_cleanup_free_ char *s = NULL;
		k = THP_NEVER + 1;
		if (read_full_file("/sys/kernel/mm/transparent_hugepage/enabled", 256, &s, NULL) >= 0)
			k = strstr(s, "[always]") ? THP_ALWAYS + 1 :
			    strstr(s, "[madvise]") ? THP_MADVISE + 1 : THP_NEVER + 1;
		atomic_store(&known, k);
	}
	return (enum thp_mode)(k - 1);
}

/* Would a write fault in v bring a transparent huge page? */
static bool vma_thp(const Dm__Vma *v)
{
	uint32_t m = v->has_madv ? v->madv : 0;

	switch (thp_mode()) {
	case THP_ALWAYS:
		return !(m & DM_MADV_NOHUGEPAGE);
	case THP_MADVISE:
		return m & DM_MADV_HUGEPAGE;
	default:
		return false;
	}
}

static bool vma_fill_uffd(const Dm__Vma *v)
{
	return vma_uffd_ok(v) && !(v->has_madv && (v->madv & DM_MADV_LOCKED)) && !vma_thp(v);
}

struct wjob {
	uint64_t addr;
	const uint8_t *src;
	uint64_t len;
	const Dm__Vma *uffd_vma; /* NULL: through /proc/PID/mem */
};

struct wjobs {
	struct wjob *v;
	size_t n, cap;
	uint64_t bytes;
	uint64_t uffd_bytes;
	int memfd;
	int uffd;
	_Atomic size_t next;
	_Atomic int err;
	_Atomic size_t err_job;
};

static void wjobs_add(struct wjobs *w, uint64_t addr, const uint8_t *src, uint64_t len,
		      const Dm__Vma *uffd_vma)
{
	for (uint64_t done = 0; done < len; done += WRITE_CHUNK) {
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 64;
			w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
		}
		w->v[w->n++] = (struct wjob){ addr + done, src + done, MIN(len - done, WRITE_CHUNK),
					      uffd_vma };
	}
	w->bytes += len;
	if (uffd_vma)
		w->uffd_bytes += len;
}

/* A run of pages contiguous in memory and in the file: one job per VMA it crosses. */
static void wjobs_add_run(struct wjobs *w, const Dm__Process *ip, uint64_t addr, const uint8_t *src,
			  uint64_t len)
{
	while (len) {
		const Dm__Vma *v = checkpoint_vma_at(ip, addr);
		uint64_t n = v ? MIN(len, v->end - addr) : len; /* no VMA: the pwrite fails, as it should */
		wjobs_add(w, addr, src, n, v && vma_fill_uffd(v) ? v : NULL);
		addr += n;
		src += n;
		len -= n;
	}
}

/*
 * [dst, dst + len) holds no page yet (else EEXIST), and nobody waits on it:
 * the tracee is stopped (no wake-up needed).  A partial copy goes on from
 * where it stopped.
 */
static int uffd_copy(int uffd, uint64_t dst, const uint8_t *src, uint64_t len)
{
	while (len) {
		struct uffdio_copy cp = {
			.dst = dst, .src = (uintptr_t)src, .len = len, .mode = UFFDIO_COPY_MODE_DONTWAKE,
		};
		int r = ioctl(uffd, UFFDIO_COPY, &cp) < 0 ? neg_errno() : 0;
		if (cp.copy > 0) {
			dst += (uint64_t)cp.copy;
			src += cp.copy;
			len -= (uint64_t)cp.copy;
		} else if (r != -EAGAIN) {
			return r < 0 ? r : -EIO;
		}
	}
	return 0;
}

static void *wjobs_worker(void *arg)
{
	struct wjobs *w = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);
		if (i >= w->n || atomic_load(&w->err))
			return NULL;
		const struct wjob *j = &w->v[i];
		int r = j->uffd_vma ? uffd_copy(w->uffd, j->addr, j->src, j->len)
				    : pwrite_all(w->memfd, j->src, j->len, (off_t)j->addr);
		if (r < 0) {
			int zero = 0;
			if (atomic_compare_exchange_strong(&w->err, &zero, r))
				atomic_store(&w->err_job, i);
			return NULL;
		}
	}
}

static int cmp_area(const void *a, const void *b)
{
	const struct restore_lazy_area *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Register the VMAs of the UFFDIO_COPY jobs; without a uffd, every job takes /proc/PID/mem. */
static void wjobs_open_uffd(struct rst_ctx *c, struct rst_proc *p, struct wjobs *w)
{
	if (w->uffd_bytes >= UFFD_MIN) {
		_cleanup_free_ struct restore_lazy_area *areas = xcalloc(w->n, sizeof(*areas));
		size_t n = 0;
		for (size_t i = 0; i < w->n; i++)
			if (w->v[i].uffd_vma)
				areas[n++] = (struct restore_lazy_area){ w->v[i].uffd_vma->start,
									 w->v[i].uffd_vma->end };
		/* the store's pages' jobs come before the image's, and a VMA has
		 * jobs of both and of several chunks: each VMA once, in order */
		qsort(areas, n, sizeof(*areas), cmp_area);
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (!k || areas[k - 1].start != areas[i].start)
				areas[k++] = areas[i];
		n = k;
		if (rst_uffd_open(c, p, areas, n, 0, &w->uffd, NULL) >= 0)
			return;
		pr_debug("pid %d: no userfaultfd (%s): every page through /proc/PID/mem", p->img->pid,
			 dm_last_error());
		dm_error_clear();
	}
	for (size_t i = 0; i < w->n; i++)
		w->v[i].uffd_vma = NULL;
}

/*
 * The writers beside us run on the CPUs we had before the restore pinned us
 * to one (restore.c): made by a pinned thread they would inherit its one CPU
 * and take turns on it.
 */
static int wjobs_run(struct rst_ctx *c, struct rst_proc *p, struct wjobs *w)
{
	long ncpu = c->have_free_mask ? CPU_COUNT(&c->free_mask) : sysconf(_SC_NPROCESSORS_ONLN);
	long want = ncpu > 1 ? ncpu : 1;
	size_t nthr = w->bytes >= PARALLEL_MIN ? (size_t)MIN(want, (long)WRITERS_MAX) : 1;
	pthread_t th[WRITERS_MAX];
	pthread_attr_t attr;
	size_t started = 0;

	w->memfd = rst_main(p)->memfd;
	w->uffd = -1;
	wjobs_open_uffd(c, p, w);
	bool attr_ok = nthr > 1 && pthread_attr_init(&attr) == 0;
	if (attr_ok && c->have_free_mask)
		pthread_attr_setaffinity_np(&attr, sizeof(c->free_mask), &c->free_mask);
	for (size_t i = 1; i < nthr; i++)
		/* a mask a cpuset no longer allows: the thread as ours is */
		if (pthread_create(&th[started], attr_ok ? &attr : NULL, wjobs_worker, w) == 0 ||
		    (attr_ok && pthread_create(&th[started], NULL, wjobs_worker, w) == 0))
			started++;
	if (attr_ok)
		pthread_attr_destroy(&attr);
	wjobs_worker(w);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (w->uffd >= 0)
		close(w->uffd); /* unregisters every area: the process owns its memory again */
	int r = atomic_load(&w->err);
	if (r < 0) {
		const struct wjob *j = &w->v[atomic_load(&w->err_job)];
		return dm_fail(r, "pid %d: %s pages at %#" PRIx64 ": %s", p->img->pid,
			       j->uffd_vma ? "copying (UFFDIO_COPY)" : "writing", j->addr, strerror(-r));
	}
	return 0;
}

/*
 * The pages of a remote entry: those in our memory (o->lazy_peek) become
 * jobs written from where they lie; the others are fetched and written now.
 */
static int remote_runs(struct rst_ctx *c, struct rst_proc *p, const Dm__PagemapEntry *e,
		       struct wjobs *w)
{
	restore_lazy_peek peek = c->o->lazy_peek;
	uint64_t a = e->vaddr, left = e->nr_pages;
	const uint8_t *src = NULL;
	uint32_t run = 0;

	while (left) {
		uint64_t t = clock_ns();
		if (!src && peek)
			src = peek(c->o->lazy_arg, p->img->pid, a, (uint32_t)MIN(left, (uint64_t)UINT32_MAX), &run);
		if (src && run) {
			run = (uint32_t)MIN((uint64_t)run, left);
			c->st.mem_fetch_ms += ns_to_ms(t, clock_ns());
			wjobs_add_run(w, p->img, a, src, (uint64_t)run * DM_PAGE_SIZE);
			c->st.pages_fetched += run;
			a += (uint64_t)run * DM_PAGE_SIZE;
			left -= run;
			src = NULL;
			continue;
		}
		/* fetched up to the next page in our memory, which is taken next
		 * (asked once: the peek counts what it gives) */
		uint64_t n = 1;
		src = NULL;
		run = 0;
		if (!peek)
			n = left;
		while (n < left && !(src = peek(c->o->lazy_arg, p->img->pid, a + n * DM_PAGE_SIZE,
						(uint32_t)MIN(left - n, (uint64_t)UINT32_MAX), &run)))
			n++;
		c->st.mem_fetch_ms += ns_to_ms(t, clock_ns());
		int r = fetch_run(c, p, a, n);
		if (r < 0)
			return r;
		a += n * DM_PAGE_SIZE;
		left -= n;
	}
	return 0;
}

int pages_write(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;
	struct pagefile pf = { 0 };
	struct wjobs w = { 0 };
	char name[64];
	int r = 0;

	snprintf(name, sizeof(name), IMG_PAGES_FMT, ip->pid);
	for (size_t i = 0; i < ip->n_pagemap; i++) {
		const Dm__PagemapEntry *e = ip->pagemap[i];
		if (pages_entry_deferred(c, ip, e)) {
			c->st.pages_lazy += e->nr_pages;
		} else if (is_remote(e)) {
			if (!c->lazy) {
				r = dm_fail(-ENOTSUP, "pid %d: pages at %#" PRIx64 " are on a page "
					    "server: restore with one (lazy)", ip->pid, e->vaddr);
				goto out;
			}
			r = remote_runs(c, p, e, &w);
			if (r < 0)
				goto out;
		}
	}
	if (ip->n_pagemap) {
		r = pagefile_open(c, name, IMG_PAGES, &pf);
		if (r < 0)
			goto out;
	}
	/* runs contiguous in memory and in the file go out as one (per VMA) */
	for (size_t i = 0; i < ip->n_pagemap && r >= 0;) {
		const Dm__PagemapEntry *e = ip->pagemap[i];
		if (pages_entry_deferred(c, ip, e) || is_remote(e)) {
			i++;
			continue;
		}
		uint64_t addr = e->vaddr, off = e->offset;
		uint64_t len = (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		size_t k = i + 1;
		for (; k < ip->n_pagemap; k++) {
			const Dm__PagemapEntry *f = ip->pagemap[k];
			if (pages_entry_deferred(c, ip, f) || is_remote(f) || f->vaddr != addr + len ||
			    f->offset != off + len)
				break;
			len += (uint64_t)f->nr_pages * DM_PAGE_SIZE;
		}
		const uint8_t *src = pagefile_at(&pf, off, len);
		if (!src)
			r = dm_fail(-EBADMSG, "%s: pages at %#" PRIx64 " (offset %" PRIu64 ", %" PRIu64
				    " bytes) lie beyond the end of the file (%" PRIu64 " bytes)", name,
				    addr, off, len, pf.payload);
		else
			wjobs_add_run(&w, ip, addr, src, len);
		i = k;
	}
	if (r >= 0) {
		uint64_t t = clock_ns();
		r = wjobs_run(c, p, &w);
		c->st.mem_write_ms += ns_to_ms(t, clock_ns());
	}
	if (r >= 0)
		c->st.pages_written += w.bytes / DM_PAGE_SIZE;
	if (r >= 0 && c->lazy)
		r = write_eager(c, p, &pf, name);
out:
	free(w.v);
	pagefile_close(&pf);
	return r;
}

/* ------------------------------------------------------- shared memory */

/* The file is sparse where the object had holes: keep them holes (no memory). */
static int write_sparse(int fd, const uint8_t *src, uint64_t len)
{
	for (size_t off = 0, end; (off = buf_next_data(src, len, off, DM_PAGE_SIZE, DM_PAGE_SIZE, &end)) < len;
	     off = end) {
		int r = pwrite_all(fd, src + off, end - off, (off_t)off);
		if (r < 0)
			return r;
	}
	return 0;
}

static uint64_t shm_size(struct rst_ctx *c, uint64_t id, uint64_t payload)
{
	uint64_t size = payload;
	for (size_t i = 0; i < c->nprocs; i++) {
		const Dm__Process *p = c->procs[i].img;
		for (size_t k = 0; k < p->n_vmas; k++) {
			const Dm__Vma *v = p->vmas[k];
			if (v->kind == DM__VMA_KIND__VMA_SHMEM && v->has_shmem_id && v->shmem_id == id)
				size = MAX(size, (v->has_pgoff ? v->pgoff : 0) + (v->end - v->start));
		}
	}
	return (size + DM_PAGE_SIZE - 1) & ~(DM_PAGE_SIZE - 1);
}

static int shm_anon(uint64_t size, int *ret_fd)
{
	char path[96];
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return neg_errno();
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)m,
		 (unsigned long)m + size);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int r = fd < 0 ? neg_errno() : 0;
	munmap(m, size);
	if (r < 0)
		return r;
	*ret_fd = fd;
	return 0;
}

static int shm_memfd(const char *vname, uint64_t size, int *ret_fd)
{
	char name[256];
	const char *s = vname + strlen("/memfd:");
	size_t len = strlen(s);
	if (len >= 10 && !strcmp(s + len - 10, " (deleted)"))
		len -= 10;
	snprintf(name, sizeof(name), "%.*s", (int)MIN(len, (size_t)249), s);
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return neg_errno();
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The memfd entry of files.img for object id, if an fd of it was open. */
static const Dm__File *shm_memfd_file(struct rst_ctx *c, uint64_t id)
{
	const Dm__FileTable *ft = c->ck->files;
	for (size_t i = 0; i < ft->n_files; i++)
		if (ft->files[i]->type == DM__FILE_TYPE__FILE_MEMFD && ft->files[i]->memfd &&
		    ft->files[i]->memfd->shmem_id == id)
			return ft->files[i];
	return NULL;
}

int shmem_get_fd(struct rst_ctx *c, const Dm__Vma *v, int *ret_fd)
{
	return shmem_get(c, v->shmem_id, v->name, ret_fd);
}

/*
 * A memfd with an fd in the image takes its size from it, exactly (a
 * mapping may reach past the end); objects known by their mappings only
 * have the size of the data or of the mappings, whichever is larger.
 */
int shmem_get(struct rst_ctx *c, uint64_t id, const char *vname, int *ret_fd)
{
	const Dm__File *mf = shm_memfd_file(c, id);
	struct pagefile pf = { 0 };
	char name[64];
	int fd = -1, r;

	for (size_t i = 0; i < c->n_shm; i++)
		if (c->shm[i].id == id) {
			*ret_fd = c->shm[i].fd;
			return 0;
		}
	snprintf(name, sizeof(name), IMG_SHMEM_FMT, id);
	r = pagefile_open(c, name, IMG_SHMEM, &pf);
	if (r == -ENOENT) {
		dm_error_clear();
		r = 0; /* an object without pages: zeros */
	}
	if (r < 0)
		return r;
	uint64_t size = mf ? mf->memfd->size : shm_size(c, id, pf.payload);
	if (mf && pf.payload > size) {
		pagefile_close(&pf);
		return dm_fail(-EBADMSG, "%s: %" PRIu64 " bytes for a memfd of %" PRIu64, name,
			       pf.payload, size);
	}
	if (mf)
		r = shm_memfd(mf->path, size, &fd);
	else if (vname && !strncmp(vname, "/memfd:", 7))
		r = shm_memfd(vname, size, &fd);
	else
		r = shm_anon(size, &fd);
	if (r < 0) {
		pagefile_close(&pf);
		return dm_fail(r, "shared memory %" PRIu64 " (%" PRIu64 " KiB): %s", id, size >> 10,
			       strerror(-r));
	}
	if (pf.payload) {
		r = write_sparse(fd, pf.map + DM_IMG_DATA_OFF, pf.payload);
		if (r < 0)
			r = dm_fail(r, "%s: filling the object: %s", name, strerror(-r));
	}
	pagefile_close(&pf);
	/*
	 * Seals before any mapping: a read-only MAP_SHARED mapping of a memfd
	 * sealed F_SEAL_WRITE loses VM_MAYWRITE, as it did at the source.
	 * F_SEAL_FUTURE_WRITE allows the writable mappings that exist: it (and
	 * F_SEAL_SEAL) wait for files-memfd.c's finish, after the mappings.
	 */
	if (r >= 0 && mf && mf->memfd->seals) {
		unsigned early = mf->memfd->seals;
		if (early & F_SEAL_FUTURE_WRITE)
			early &= ~(unsigned)(F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
		if (early && fcntl(fd, F_ADD_SEALS, (int)early) < 0)
			r = dm_fail(neg_errno(), "memfd %s: adding its seals %#x: %m", mf->memfd->name,
				    early);
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	c->shm = xrealloc(c->shm, (c->n_shm + 1) * sizeof(*c->shm));
	c->shm[c->n_shm++] = (struct rst_shm){ id, fd };
	*ret_fd = fd;
	return 0;
}

void shmem_fini(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->n_shm; i++)
		close(c->shm[i].fd);
	free(c->shm);
	c->shm = NULL;
	c->n_shm = 0;
}
