/* SPDX-License-Identifier: MIT */
/*
 * Address space: VMAs, the page map of private memory, page contents.
 *
 * The page map of a process comes from one PAGEMAP_SCAN walk per VMA
 * (proc_pagemap_data_runs: present or swapped, not page cache, not the zero
 * page); with defer_pagemap an anonymous VMA is one sparse run instead
 * (unless its parent has it too: it may inherit).  Pages a child still
 * shares with its parent are left out (cow_split: Process.inherited).  Contents are copied by pool tasks of at most
 * CHUNK_BYTES each (a read of /proc/PID/mem into a buffer, pwrite at the
 * page's offset in pages-<pid>.img), so one big process is dumped by every
 * worker.  A task takes whichever chunk keeps the workers apart
 * (dump_copy_pick()): two workers on one process contend for its mm's lock and
 * its page file's inode lock, so each goes on with its own process and
 * only the last one is shared.
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "compat.h"

#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK_BYTES (4UL << 20)

static Dm__VmaKind vma_kind(const struct proc_vma *v)
{
	switch (v->kind) {
	case PROC_VMA_HEAP: return DM__VMA_KIND__VMA_HEAP;
	case PROC_VMA_STACK: return DM__VMA_KIND__VMA_STACK;
	case PROC_VMA_VDSO: return DM__VMA_KIND__VMA_VDSO;
	case PROC_VMA_VVAR: return DM__VMA_KIND__VMA_VVAR;
	case PROC_VMA_VVAR_VCLOCK: return DM__VMA_KIND__VMA_VVAR_VCLOCK;
	case PROC_VMA_VSYSCALL: return DM__VMA_KIND__VMA_VSYSCALL;
	case PROC_VMA_FILE: return DM__VMA_KIND__VMA_FILE;
	case PROC_VMA_SHMEM_ANON:
	case PROC_VMA_SHMEM_NAMED:
	case PROC_VMA_MEMFD: return v->shared ? DM__VMA_KIND__VMA_SHMEM : DM__VMA_KIND__VMA_FILE;
	default: return DM__VMA_KIND__VMA_ANON;
	}
}

uint32_t dump_madv_bits(uint64_t f)
{
	uint32_t m = 0;
	if (f & PROC_VMF_DC) m |= DM_MADV_DONTFORK;
	if (f & PROC_VMF_WF) m |= DM_MADV_WIPEONFORK;
	if (f & PROC_VMF_DD) m |= DM_MADV_DONTDUMP;
	if (f & PROC_VMF_HG) m |= DM_MADV_HUGEPAGE;
	if (f & PROC_VMF_NH) m |= DM_MADV_NOHUGEPAGE;
	if (f & PROC_VMF_MG) m |= DM_MADV_MERGEABLE;
	if (f & PROC_VMF_LO) m |= DM_MADV_LOCKED;
	if (f & PROC_VMF_LF) m |= DM_MADV_LOCKONFAULT;
	if (f & PROC_VMF_SR) m |= DM_MADV_SEQ;
	if (f & PROC_VMF_RR) m |= DM_MADV_RAND;
	return m;
}

static bool vma_has_private_pages(const Dm__Vma *v)
{
	if (v->flags & MAP_SHARED)
		return false;
	switch (v->kind) {
	case DM__VMA_KIND__VMA_VDSO:
	case DM__VMA_KIND__VMA_VVAR:
	case DM__VMA_KIND__VMA_VVAR_VCLOCK:
	case DM__VMA_KIND__VMA_VSYSCALL:
	case DM__VMA_KIND__VMA_SHMEM:
		return false;
	default:
		return true;
	}
}

/*
 * Save a shared memory object once (by inode), sparse, from fd (open for
 * reading): anonymous shared memory and memfd, reached through a mapping or
 * an fd (fd-memfd.c).  what names it in errors.
 */
int dump_shmem_fd(struct dump_ctx *d, int fd, uint64_t ino, const char *what)
{
	char name[64];
	_cleanup_close_ int out = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	int r;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nshmem_done; i++)
		if (d->shmem_done[i] == ino) {
			pthread_mutex_unlock(&d->lock);
			return 0;
		}
	if (d->nshmem_done == ARRAY_SIZE(d->shmem_done)) {
		pthread_mutex_unlock(&d->lock);
		return dm_fail(-E2BIG, "%s: too many shared memory objects", what);
	}
	d->shmem_done[d->nshmem_done++] = ino;
	pthread_mutex_unlock(&d->lock);

	if (fstat(fd, &st) < 0)
		return neg_errno();
	snprintf(name, sizeof(name), IMG_SHMEM_FMT, ino);
	r = image_create_raw(d->img, name, IMG_SHMEM, &out);
	if (r < 0)
		return r;
	buf = xmalloc(CHUNK_BYTES);
	for (off_t off = 0; off < st.st_size;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: only a hole is left */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		for (off_t o = data; o < hole;) {
			size_t n = MIN((uint64_t)(hole - o), CHUNK_BYTES);
			r = pread_exact(fd, buf, n, o);
			if (r < 0)
				return dm_fail(r, "%s: reading shared memory: %s", what, strerror(-r));
			r = pwrite_all(out, buf, n, DM_IMG_DATA_OFF + o);
			if (r < 0)
				return r;
			o += n;
		}
		off = hole;
	}
	if (ftruncate(out, DM_IMG_DATA_OFF + st.st_size) < 0)
		return neg_errno();
	return image_finish_raw(out, IMG_SHMEM, st.st_size);
}

static int dump_shmem(struct dump_ctx *d, struct dproc *p, const struct proc_vma *v)
{
	char path[128], what[64];
	_cleanup_close_ int fd = -1;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nshmem_done; i++)
		if (d->shmem_done[i] == v->inode) {
			pthread_mutex_unlock(&d->lock);
			return 0;
		}
	pthread_mutex_unlock(&d->lock);
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, p->pid, v->start, v->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: shared mapping %#" PRIx64 ": %m", p->pid, v->start);
	snprintf(what, sizeof(what), "process %d", p->pid);
	return dump_shmem_fd(d, fd, v->inode, what);
}

/*
 * The restore attaches a segment whole (shmat): a VMA that is a part of one
 * (its head or tail unmapped, or split by mprotect) would not come back so.
 * The segment's size is its shmem file's, reached through the mapping.
 */
static int sysv_whole(pid_t pid, const struct proc_vma *v)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start, v->end);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "process %d: SysV shared memory at %#" PRIx64 ": %s: %m", pid,
			       v->start, path);
	uint64_t len = ((uint64_t)st.st_size + DM_PAGE_SIZE - 1) & ~(uint64_t)(DM_PAGE_SIZE - 1);
	if (v->pgoff || len != v->end - v->start)
		return dm_fail(-ENOTSUP, "process %d: part of SysV shared memory segment id %" PRIu64
			       " (%" PRIu64 " bytes from offset %#" PRIx64 " of %" PRIu64 ") mapped at %#"
			       PRIx64 ": not supported", pid, v->inode, v->end - v->start, v->pgoff,
			       (uint64_t)st.st_size, v->start);
	return 0;
}

/*
 * The tree is a container's whose IPC namespace its runtime made (and so
 * makes again): its contents are in the image (Container.ipc, read by
 * runc_record() before this).  The host's namespace, or one the config
 * joins, is not dumped.
 */
static bool container_ipc(const struct dump_ctx *d)
{
	const Dm__Container *m = d->opts.container ? d->opts.container->msg : NULL;

	for (size_t k = 0; m && k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k]->type, "ipc"))
			return !m->namespaces[k]->path;
	return false;
}

#define SAME_FILE_BACK 8u

/*
 * The file of one of the SAME_FILE_BACK VMAs of p before VMA i that maps
 * the same file (the same inode of the same device, under the same path;
 * neither deleted nor a memfd), or 0.  dump_file_path() would give that
 * file too: it finds the files it made by the inode the link's stat gives.
 */
static uint32_t same_file(const struct dproc *p, size_t i)
{
	const struct proc_vma *v = &p->vmas.vmas[i];

	if (v->kind != PROC_VMA_FILE || v->deleted)
		return 0;
	/* a file's VMAs are neighbours (a library's): the few before it only,
	 * so that a process mapping thousands of files pays no square */
	for (size_t k = i; k-- > 0 && i - k <= SAME_FILE_BACK;) {
		const struct proc_vma *u = &p->vmas.vmas[k];
		const Dm__Vma *y = p->msg->vmas[k];
		if (u->inode == v->inode && u->dev_major == v->dev_major && u->dev_minor == v->dev_minor &&
		    u->kind == PROC_VMA_FILE && !u->deleted && y->has_file_id && y->file_id &&
		    !strcmp(u->path, v->path))
			return y->file_id;
	}
	return 0;
}

static int build_vmas(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	int r;

	m->vmas = xcalloc(p->vmas.n, sizeof(*m->vmas));
	for (size_t i = 0; i < p->vmas.n; i++) {
		const struct proc_vma *v = &p->vmas.vmas[i];
		Dm__Vma *x = PB_NEW(Dm__Vma, dm__vma__init);
		m->vmas[m->n_vmas++] = x;
		x->start = v->start;
		x->end = v->end;
		x->prot = v->prot;
		x->flags = v->shared ? MAP_SHARED : MAP_PRIVATE;
		if (v->kind == PROC_VMA_STACK || (v->vmflags & PROC_VMF_GD))
			x->flags |= MAP_GROWSDOWN;
		if (v->vmflags & PROC_VMF_NR)	/* "nr": mapped with MAP_NORESERVE */
			x->flags |= MAP_NORESERVE;
		if ((v->vmflags & PROC_VMF_AC) && !v->shared && !(v->prot & PROT_WRITE)) {
			x->has_accounted = true;
			x->accounted = true;
		}
		if (v->vmflags & PROC_VMF_SL) {
			x->has_sealed = true;
			x->sealed = true;
		}
		x->kind = vma_kind(v);
		x->has_madv = true;
		x->madv = dump_madv_bits(v->vmflags);
		x->name = xstrdup(v->kind == PROC_VMA_ANON ? "" : v->path);
		switch (v->kind) {
		case PROC_VMA_SYSV_SHM:
			/* its contents are the segment's, dumped with the container's
			 * IPC namespace (container/ipc.c); the restore attaches it again */
			if (!container_ipc(d))
				return dm_fail(-ENOTSUP, "process %d: SysV shared memory segment id %" PRIu64
					       " attached at %#" PRIx64 ": a segment is restored only with the "
					       "IPC namespace a container's runtime made for it (checkpoint "
					       "runc:ID)", p->pid, v->inode, v->start);
			r = sysv_whole(p->pid, v);
			if (r < 0)
				return r;
			x->kind = DM__VMA_KIND__VMA_SYSV_SHM;
			x->has_shmem_id = true;
			x->shmem_id = v->inode;
			if (v->vmflags & PROC_VMF_MW) {
				x->has_may_write = true;
				x->may_write = true;
			}
			continue;
		case PROC_VMA_HUGETLB_ANON:
		case PROC_VMA_AIO:
		case PROC_VMA_SPECIAL:
			return dm_fail(-ENOTSUP, "process %d: unsupported mapping %#" PRIx64 "-%#" PRIx64 " (%s)",
				       p->pid, v->start, v->end, v->path);
		default:
			break;
		}
		if (vma_has_private_pages(x) && (v->vmflags & (PROC_VMF_HT | PROC_VMF_PF | PROC_VMF_IO)))
			return dm_fail(-ENOTSUP, "process %d: unsupported mapping %#" PRIx64 " (%s: hugetlb or device memory)",
				       p->pid, v->start, v->path);
		if (x->kind == DM__VMA_KIND__VMA_SHMEM) {
			x->has_shmem_id = x->has_pgoff = true;
			x->shmem_id = v->inode;
			x->pgoff = v->pgoff;
			r = dump_shmem(d, p, v);
			if (r < 0)
				return r;
		} else if (x->kind == DM__VMA_KIND__VMA_FILE) {
			char link[128];
			snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, p->pid, v->start, v->end);
			int err = 0;
			x->has_file_id = x->has_pgoff = true;
			x->pgoff = v->pgoff;
			if (v->shared && (v->vmflags & PROC_VMF_MW)) {
				x->has_may_write = true;
				x->may_write = true;
			}
			/* another VMA of the same file (a library's four): its file,
			 * without a stat of the link (~8 us each, in the freeze) */
			x->file_id = same_file(p, i);
			if (x->file_id)
				continue;
			/* a private mapping of a memfd maps the memfd (fd-memfd.c), not a copy */
			x->file_id = dump_file_path(d, v->kind == PROC_VMA_MEMFD ? DM__FILE_TYPE__FILE_MEMFD
										 : DM__FILE_TYPE__FILE_REG,
						    v->path, v->deleted, p->pid, link, &err);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

/*
 * The chunks' copy buffers: as many as the pool can have workers, mapped
 * and faulted in before the freeze (MAP_POPULATE), kept to the end.  A
 * buffer made in the freeze costs an mmap, 1024 page faults of fresh memory
 * (expensive on a VM: the host backs each page anew) and an munmap whose
 * TLB shootdown stops the other workers.  A chunk takes a free buffer and
 * gives it back; a worker never holds more than one, so there is always one
 * free (copy_buffers_late in the stats counts the exceptions).  No more
 * buffers than the reserved memory has chunks: a small tree on a big host
 * does not fault in 4 MiB per CPU.
 */
void dump_bufs_alloc(struct dump_ctx *d)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = d->opts.dump_threads ? d->opts.dump_threads : (size_t)(cpus > 0 ? cpus : 1);
	_cleanup_close_ int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);

	if (d->prealloc_bytes)
		n = MIN(n, (size_t)((d->prealloc_bytes + CHUNK_BYTES - 1) / CHUNK_BYTES));

	d->bufs = xcalloc(n, sizeof(*d->bufs));
	for (size_t i = 0; i < n; i++) {
		void *b = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (b == MAP_FAILED)
			break;	/* the chunks map their own */
		/*
		 * MAP_POPULATE fills our page tables, but this VM (a pvm guest)
		 * shadows them, for the kernel's accesses apart from ours: the
		 * first copy_to_user() into each page still exits to the host
		 * (a first 4 MiB read of /proc/PID/mem into a populated buffer
		 * took 18-68 ms, the next 1 ms; written from user space first,
		 * the same).  So the kernel writes every page once now (a read
		 * of /dev/zero), not the first copy in the freeze.
		 */
		if (zero >= 0 && pread_exact(zero, b, CHUNK_BYTES, 0) < 0)
			dm_error_clear();	/* only a cost */
		d->bufs[d->nbufs++] = b;
	}
	d->bufs_free = d->nbufs;
}

void dump_bufs_free(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->nbufs; i++)
		if (d->bufs[i])
			munmap(d->bufs[i], CHUNK_BYTES);
	free(d->bufs);
	d->bufs = NULL;
	d->nbufs = d->bufs_free = 0;
}

/* A free buffer (*own false) or a new one (*own true: unmap it after). */
static uint8_t *buf_get(struct dump_ctx *d, bool *own)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->bufs_free)
		b = d->bufs[--d->bufs_free];
	pthread_mutex_unlock(&d->lock);
	*own = !b;
	if (b)
		return b;
	atomic_fetch_add(&d->bufs_late, 1);
	b = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return b == MAP_FAILED ? NULL : b;
}

static void buf_put(struct dump_ctx *d, uint8_t *b, bool own)
{
	if (own) {
		munmap(b, CHUNK_BYTES);
		return;
	}
	pthread_mutex_lock(&d->lock);
	d->bufs[d->bufs_free++] = b;
	pthread_mutex_unlock(&d->lock);
}

/*
 * Through /proc/PID/mem, not process_vm_readv: the latter pins the pages
 * (FOLL_PIN), and a pin of an anonymous page still shared copy-on-write
 * with another process makes the kernel give the target its own copy
 * first (gup_must_unshare): a dump that read a prefork server that way left
 * it (with --leave-running) using its memory once per worker, and the
 * inheritance found by the page map (cow_split) would depend on whether
 * the parent's copy had been read yet.  /proc/PID/mem takes references
 * without a pin, and forces unreadable protections (PROT_NONE, --x).
 */
static int chunk_copy(struct dump_ctx *d, struct dproc *p, const struct dump_chunk *c, uint8_t *buf,
		      struct dump_lap *l)
{
	int r = pread_exact(p->mem_fd, buf, c->len, c->vaddr);
	if (r < 0)
		return dm_fail(r, "process %d: cannot read memory at %#" PRIx64 ": %s", p->pid, c->vaddr,
			       strerror(-r));
	dump_lap(d, DPH_READ, l);
	r = pwrite_all(p->pages_fd, buf, c->len, DM_IMG_DATA_OFF + c->file_off);
	dump_lap(d, DPH_WRITE, l);
	if (r < 0)
		return dm_fail(r, "pages-%d.img: write: %s", p->vpid, strerror(-r));
	return 0;
}

/*
 * Which process's next chunk a copy task takes, under copy_lock.  Two
 * workers reading one process take turns at its mmap_lock's cache line for
 * every page (/proc/PID/mem locks per page) and serialize their writes on
 * its page file's inode lock (tmpfs and ext4 alike), so a task prefers, in
 * this order:
 *   1. a process nobody copies now that was begun (the one this worker
 *      just copied a chunk of, as a rule: its file is written in order);
 *   2. a process nobody copies now, the one with the most chunks left (the
 *      big ones begin early, so none is left alone at the end);
 *   3. the process with the fewest copiers, then the most chunks left: only
 *      when every process left is being copied (the last one, or a tree of
 *      one big process) do workers share one.
 * Processes whose chunks are all taken leave the queue.
 */
struct dproc *dump_copy_pick(struct dump_ctx *d, struct dump_chunk *ret_chunk)
{
	struct dproc *best = NULL;
	size_t best_i = 0;
	int best_rank = -1;

	for (size_t i = 0; i < d->n_copy_q; i++) {
		struct dproc *p = d->copy_q[i];
		size_t left = p->n_chunks - p->next_chunk;
		int rank = p->copiers ? 0 : p->next_chunk ? 2 : 1;
		size_t best_left = best ? best->n_chunks - best->next_chunk : 0;

		if (best && (rank < best_rank ||
			     (rank == best_rank && (p->copiers > best->copiers ||
						    (p->copiers == best->copiers && left <= best_left)))))
			continue;
		best = p;
		best_i = i;
		best_rank = rank;
	}
	if (!best)
		return NULL;
	*ret_chunk = best->chunks[best->next_chunk++];
	best->copiers++;
	if (best->next_chunk == best->n_chunks)
		d->copy_q[best_i] = d->copy_q[--d->n_copy_q];
	return best;
}

/* One chunk, of whichever process dump_copy_pick() says: every process's mm
 * task queues as many of these as it has chunks. */
static int copy_task(struct pool *pool, void *arg)
{
	struct dump_ctx *d = arg;
	struct dump_chunk c;
	struct dump_lap l;
	struct dproc *p;
	bool own;

	if (pool_failed(pool))
		return 0;
	dump_lap_start(&l);
	pthread_mutex_lock(&d->copy_lock);
	p = dump_copy_pick(d, &c);
	bool shared = p && p->copiers > 1;
	pthread_mutex_unlock(&d->copy_lock);
	if (!p)
		return dm_fail(-EPROTO, "a page copy task found no chunk left (bug)");
	if (shared)
		atomic_fetch_add(&d->chunks_shared, 1);
	uint8_t *buf = buf_get(d, &own);
	dump_lap(d, DPH_ALLOC, &l);
	int r = buf ? chunk_copy(d, p, &c, buf, &l)
		    : dm_fail(-ENOMEM, "process %d: no memory for a copy buffer", p->pid);
	if (buf)
		buf_put(d, buf, own);
	pthread_mutex_lock(&d->copy_lock);
	p->copiers--;
	pthread_mutex_unlock(&d->copy_lock);
	return r;
}

/* Largest VMA left unscanned with defer_pagemap: beyond it the page server's
 * bitmaps would cost more than the scan saves (a reservation of terabytes). */
#define DEFER_VMA_MAX (64ULL << 30)
/* Pages per entry of a deferred VMA (entries hold a uint32 count). */
#define DEFER_ENTRY_PAGES (1u << 18)

static bool vma_deferred(const struct dump_ctx *d, const Dm__Vma *v)
{
	if (!d->opts.defer_pagemap || !d->opts.lazy_remote)
		return false;
	/* file pages are eager (uffd MISSING cannot serve a file mapping);
	 * an inaccessible area is usually an empty reservation: cheap to scan */
	if (v->kind == DM__VMA_KIND__VMA_FILE || v->prot == PROT_NONE)
		return false;
	return v->end - v->start <= DEFER_VMA_MAX;
}

static Dm__PagemapEntry **add_entry(Dm__Process *m, size_t *cap)
{
	if (m->n_pagemap == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		m->pagemap = xrealloc(m->pagemap, *cap * sizeof(*m->pagemap));
	}
	Dm__PagemapEntry *e = PB_NEW(Dm__PagemapEntry, dm__pagemap_entry__init);
	m->pagemap[m->n_pagemap] = e;
	return &m->pagemap[m->n_pagemap++];
}

/*
 * Writing an image page into a fresh file makes the file system allocate
 * (and, tmpfs, zero) a page first: more than half of the copy's cost here
 * (bench/pagecopy: 367 vs 966 ms per GiB into /dev/shm).  So before the
 * freeze each process of the tree gets its page file reserved, RssAnon
 * bytes, as an unnamed file; the dump links it.  DMIGRATE_DUMP_PREALLOC=0
 * turns it off (benchmarks).
 */
#define PREALLOC_MIN (1ULL << 20)

/*
 * fallocate reserves, it does not touch.  On a disk file system (ext4, xfs)
 * it leaves unwritten extents: the first write of each page still allocates
 * its page cache page and converts the extent, in the freeze.  On tmpfs it
 * allocates the pages but leaves them uncleared: the first write clears
 * each one, and on a VM with free page reporting that is the page's first
 * touch since the host took it back (~12 us a page here: 1 GiB of image
 * cost seconds of frozen time after the page cache had been dropped).
 * Writing the reserved range once before the freeze does all of it there:
 * the freeze overwrites pages that exist and are backed.
 * DMIGRATE_DUMP_PRETOUCH=0 turns it off.
 */
static const char *fs_name(unsigned long type)
{
	switch (type) {
	case 0x01021994: return "tmpfs";
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlay";
	default: return "other";
	}
}

static void pretouch(int fd, uint64_t len, const uint8_t *zeros)
{
	for (uint64_t o = 0; o < len; o += CHUNK_BYTES) {
		size_t n = MIN(CHUNK_BYTES, len - o);
		if (pwrite_all(fd, zeros, n, DM_IMG_DATA_OFF + o) < 0)
			return;	/* only a cost: the freeze writes it anyway */
	}
}

void dump_prealloc_pages(struct dump_ctx *d)
{
	_cleanup_free_ pid_t *pids = NULL;
	uint8_t *zeros = NULL;
	struct statfs sf;
	uint64_t t = clock_ns();

	d->images_fs = fstatfs(d->img->dirfd, &sf) == 0 ? fs_name(sf.f_type) : "other";
	if (env_off("DMIGRATE_DUMP_PREALLOC"))
		return;
	d->pretouch = !env_off("DMIGRATE_DUMP_PRETOUCH");
	if (d->pretouch) {
		/* read-only zero pages: nothing to fault in */
		zeros = mmap(NULL, CHUNK_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (zeros == MAP_FAILED) {
			zeros = NULL;
			d->pretouch = false;
		}
	}
	size_t n = proc_tree_pids(d->opts.pid, &pids);
	for (size_t i = 0; i < n && i < 4096; i++) {
		struct proc_status st = {};
		int fd;
		if (proc_read_status(pids[i], 0, &st) < 0)
			continue;
		uint64_t bytes = st.rss_anon_kb * 1024;
		proc_status_done(&st);
		if (bytes < PREALLOC_MIN || image_prealloc_raw(d->img, bytes, &fd) < 0)
			continue;
		if (zeros)
			pretouch(fd, bytes, zeros);
		d->prealloc_bytes += bytes;
		d->prealloc = xrealloc(d->prealloc, (d->n_prealloc + 1) * sizeof(*d->prealloc));
		d->prealloc[d->n_prealloc++] = (struct prealloc){ pids[i], fd };
	}
	if (zeros)
		munmap(zeros, CHUNK_BYTES);
	dm_error_clear();
	d->prealloc_ms = ns_to_ms(t, clock_ns());
}

static int take_prealloc(struct dump_ctx *d, pid_t pid)
{
	int fd = -1;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->n_prealloc; i++)
		if (d->prealloc[i].pid == pid) {
			fd = d->prealloc[i].fd;
			d->prealloc[i].fd = -1;
		}
	pthread_mutex_unlock(&d->lock);
	return fd;
}

void dump_trim_pages(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		if (p->pages_fd < 0 || !p->pages_trim)
			continue;
		p->pages_trim = false;
		/* only space is lost if it fails: the header bounds the pages */
		if (ftruncate(p->pages_fd, DM_IMG_DATA_OFF + p->pages_bytes) < 0)
			pr_warn("pages-%d.img: cannot cut the reservation to %" PRIu64 " bytes: %m",
				p->vpid, p->pages_bytes);
	}
}

void dump_prealloc_free(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->n_prealloc; i++)
		if (d->prealloc[i].fd >= 0)
			close(d->prealloc[i].fd);
	free(d->prealloc);
	d->prealloc = NULL;
	d->n_prealloc = 0;
}

/* ------------------------------------------- copy-on-write inheritance */

/*
 * A private anonymous page (of an anonymous VMA, or written in a private
 * file mapping: cow_kind()) that a child still shares with its parent (one
 * physical page since the fork) is "inherited": the restore gets it by
 * forking the child from its restored parent, so it is one page again
 * (docs/design.md, "Copy-on-write pages shared between a parent and its
 * children").  Found per page through /proc/PID/pagemap (the PFN is there
 * for root), only in a VMA of the child that the parent has at the same
 * address with the same kind, name and the flags a fork keeps; the restore
 * keeps that VMA of the parent in the child.  With lazy_remote (a
 * migration) the parent's pages a child inherits travel in the image
 * (eager: lazy_split) and the child's are in no page map, so neither the
 * push nor the destination's store installs them (a pre-copy round's copy
 * stays unused in the store); with defer_pagemap (post-copy) a VMA that
 * may inherit is scanned in the freeze rather than deferred.  Over
 * inherit_max_pages of such parent pages the tree is stored as copies
 * (dump_inherit_finish).
 */
#define COW_CHUNK 1024 /* pagemap entries read at once */

/* flags that must be the same in parent and child for the child to keep the
 * parent's VMA: how it was mapped and the madvise state a fork copies (the
 * fork-only ones, DONTFORK and WIPEONFORK, and mlock, which a fork drops,
 * are set in the child on their own) */
#define COW_SAME_VMF (PROC_VMF_GD | PROC_VMF_NR | PROC_VMF_AC | PROC_VMF_HG | PROC_VMF_NH | \
		      PROC_VMF_MG | PROC_VMF_DD | PROC_VMF_SR | PROC_VMF_RR)
#define COW_NEVER_VMF (PROC_VMF_HT | PROC_VMF_PF | PROC_VMF_IO)

struct cow {
	struct dproc *parent;
	int ppm;            /* the parent's /proc/PID/pagemap, -1 until needed */
	uint64_t *mine, *theirs, *again;
	Dm__Process *m;
	size_t cap;         /* of m->inherited */
	size_t vma_first;   /* m->n_inherited when the current VMA began: runs never cross VMAs
			     * (a library's written data and the anonymous .bss after it are
			     * adjacent) */
};

/*
 * Private anonymous VMAs, and private file mappings: the pages such a
 * mapping has written are anonymous pages too (a fork shares them the same
 * way), its other pages read from the file and are in no page map.  A
 * prefork server's libraries' relocated data, written before it forked its
 * workers, is one copy in all of them: without this every worker's copy was
 * sent in the frozen window (userfaultfd cannot take a file mapping, so
 * these pages are never lazy).
 */
static bool cow_kind(enum proc_vma_kind k)
{
	return k == PROC_VMA_ANON || k == PROC_VMA_ANON_NAMED || k == PROC_VMA_HEAP ||
	       k == PROC_VMA_STACK || k == PROC_VMA_FILE;
}

/* the same file at the same offset (a fork copies the mapping; one mapped
 * again in the child at the same place shares no written page anyway) */
static bool cow_same_file(const struct proc_vma *a, const struct proc_vma *b)
{
	return a->kind != PROC_VMA_FILE ||
	       (!a->deleted && !b->deleted && a->pgoff == b->pgoff && a->inode == b->inode &&
		a->dev_major == b->dev_major && a->dev_minor == b->dev_minor);
}

static void cow_init(struct dump_ctx *d, struct dproc *p, struct cow *w)
{
	memset(w, 0, sizeof(*w));
	w->ppm = -1;
	w->m = p->msg;
	if (d->opts.no_inherit || !p->ppid)
		return;
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->pid == p->ppid && !d->procs[i]->zombie)
			w->parent = d->procs[i];
}

static void cow_done(struct cow *w)
{
	if (w->ppm >= 0)
		close(w->ppm);
	free(w->mine);
	free(w->theirs);
	free(w->again);
}

/*
 * The parent's VMA the child's v may inherit from, or NULL.  The parent's
 * VMA list is complete: its control task ran before ours (pinned tasks run
 * in order, parents first), and nothing changes it any more.
 */
static const struct proc_vma *cow_parent_vma(struct cow *w, const struct proc_vma *v)
{
	const struct proc_vma_list *pl;

	if (!w->parent || v->shared || !cow_kind(v->kind) || !v->has_vmflags ||
	    (v->vmflags & COW_NEVER_VMF))
		return NULL;
	/* smaps counted no page of it that another process maps too: nothing
	 * to inherit, and (post-copy) no reason to scan it in the freeze.  With
	 * early_vmflags that count is from before the freeze; a page becomes
	 * shared with the parent only by a fork, i.e. in a new child, whose
	 * smaps are read in the freeze. */
	if (v->has_shared && !v->shared_kb)
		return NULL;
	pl = &w->parent->vmas;
	size_t lo = 0, hi = pl->n; /* maps are sorted by address */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct proc_vma *pv = &pl->vmas[mid];
		if (pv->start < v->start) {
			lo = mid + 1;
		} else if (pv->start > v->start) {
			hi = mid;
		} else {
			if (pv->end != v->end || pv->shared || pv->kind != v->kind || !pv->has_vmflags ||
			    ((pv->vmflags ^ v->vmflags) & COW_SAME_VMF) || (pv->vmflags & COW_NEVER_VMF) ||
			    strcmp(pv->path, v->path) || !cow_same_file(pv, v))
				return NULL;
			return pv;
		}
	}
	return NULL;
}

/* The parent's pagemap, and no guard region in pv (a fork copies the markers). */
static int cow_parent_ready(struct cow *w, const struct proc_vma *pv, struct proc_range **vec,
			    size_t *cap, bool *ok)
{
	char path[64];
	size_t n;
	int r;

	*ok = false;
	if (w->ppm < 0) {
		snprintf(path, sizeof(path), "/proc/%d/pagemap", w->parent->pid);
		w->ppm = open(path, O_RDONLY | O_CLOEXEC);
		if (w->ppm < 0)
			return dm_fail(neg_errno(), "process %d: %s: %m", w->parent->pid, path);
		w->mine = xmalloc(COW_CHUNK * sizeof(uint64_t));
		w->theirs = xmalloc(COW_CHUNK * sizeof(uint64_t));
		w->again = xmalloc(COW_CHUNK * sizeof(uint64_t));
	}
	r = proc_pagemap_guard_runs(w->ppm, pv->start, pv->end, vec, cap, &n);
	if (r < 0)
		return dm_fail(r, "process %d: PAGEMAP_SCAN (guards) %#" PRIx64 ": %s", w->parent->pid,
			       pv->start, strerror(-r));
	*ok = n == 0;
	return 0;
}

static void cow_add_inherited(struct cow *w, uint64_t start, uint64_t end)
{
	Dm__Process *m = w->m;
	uint64_t pages = (end - start) / DM_PAGE_SIZE;

	if (m->n_inherited >= w->vma_first + 2 && m->inherited[m->n_inherited - 2] +
	    m->inherited[m->n_inherited - 1] * DM_PAGE_SIZE == start) {
		m->inherited[m->n_inherited - 1] += pages;
		return;
	}
	if (m->n_inherited + 2 > w->cap) {
		w->cap = w->cap ? w->cap * 2 : 32;
		m->inherited = xrealloc(m->inherited, w->cap * sizeof(*m->inherited));
	}
	m->inherited[m->n_inherited++] = start;
	m->inherited[m->n_inherited++] = pages;
}

/*
 * Split the data run [start, end) of the child (pm: its pagemap) into the
 * pages it inherits, recorded in m->inherited, and its own, appended to
 * own (as ranges).  A page is inherited when both have it present with the
 * same PFN and the child's is not mapped exclusively.
 */
static int cow_split(struct cow *w, pid_t pid, int pm, uint64_t start, uint64_t end,
		     struct proc_range **own, size_t *n_own, size_t *cap_own)
{
	uint64_t run = start;   /* start of the current piece */
	bool run_inh = false;
	int r;

	for (uint64_t a = start; a < end;) {
		size_t k = (size_t)MIN((end - a) / DM_PAGE_SIZE, (uint64_t)COW_CHUNK);
		off_t at = (off_t)(a / DM_PAGE_SIZE * sizeof(uint64_t));
		/* the child's entries again after the parent's: a page the kernel
		 * migrated meanwhile (compaction) compares unequal, never equal */
		r = pread_exact(pm, w->mine, k * sizeof(uint64_t), at);
		if (r >= 0)
			r = pread_exact(w->ppm, w->theirs, k * sizeof(uint64_t), at);
		if (r >= 0)
			r = pread_exact(pm, w->again, k * sizeof(uint64_t), at);
		if (r < 0)
			return dm_fail(r, "process %d: reading the page map at %#" PRIx64 ": %s", pid, a,
				       strerror(-r));
		for (size_t i = 0; i < k; i++, a += DM_PAGE_SIZE) {
			uint64_t x = w->mine[i], y = w->theirs[i];
			bool inh = proc_pm_same_frame(x, y) && !(x & PROC_PM_EXCLUSIVE) && x == w->again[i];
			if (a == start) {
				run_inh = inh;
				continue;
			}
			if (inh == run_inh)
				continue;
			if (run_inh) {
				cow_add_inherited(w, run, a);
			} else {
				if (*n_own == *cap_own) {
					*cap_own = *cap_own ? *cap_own * 2 : 64;
					*own = xrealloc(*own, *cap_own * sizeof(**own));
				}
				(*own)[(*n_own)++] = (struct proc_range){ run, a };
			}
			run = a;
			run_inh = inh;
		}
	}
	if (run_inh) {
		cow_add_inherited(w, run, end);
	} else {
		if (*n_own == *cap_own) {
			*cap_own = *cap_own ? *cap_own * 2 : 64;
			*own = xrealloc(*own, *cap_own * sizeof(**own));
		}
		(*own)[(*n_own)++] = (struct proc_range){ run, end };
	}
	return 0;
}

/*
 * The page map of the VMAs the loop below scans, read a span at a time: one
 * PAGEMAP_SCAN (each of data and guards) over every run of VMAs that follow
 * each other in the list and are all scanned, instead of two per VMA.  The
 * scan walks VMAs itself; its cost follows the page tables, not the calls,
 * but a call costs ~2 us of its own, and a redis has ~100 such VMAs (a
 * library's four, its heap's...): per VMA 0.38-0.53 ms, by spans 0.14-0.17
 * ms of the freeze (a redis-server, measured apart).  A VMA not scanned (a
 * deferred one, one without private pages) ends a span, so a big anonymous
 * area is never walked.  The runs a scan returns may cross VMA boundaries
 * (it merges what is contiguous): they are cut at them.
 */
struct vma_runs {
	struct proc_range *r;   /* every scanned VMA's runs, in VMA order */
	size_t n, cap;
	size_t *first, *count;  /* per VMA: its runs in r */
};

static void vma_runs_done(struct vma_runs *v)
{
	free(v->r);
	free(v->first);
	free(v->count);
}

static int vma_runs_scan(int pm, const Dm__Process *m, const bool *scanned, bool guards,
			 struct vma_runs *out)
{
	_cleanup_free_ struct proc_range *span = NULL;
	size_t cap = 0;

	out->first = xcalloc(m->n_vmas ? m->n_vmas : 1, sizeof(*out->first));
	out->count = xcalloc(m->n_vmas ? m->n_vmas : 1, sizeof(*out->count));
	for (size_t i = 0; i < m->n_vmas;) {
		if (!scanned[i]) {
			i++;
			continue;
		}
		size_t k = i;
		while (k + 1 < m->n_vmas && scanned[k + 1])
			k++;
		size_t n = 0;
		int r = guards ? proc_pagemap_guard_runs(pm, m->vmas[i]->start, m->vmas[k]->end, &span, &cap, &n)
			       : proc_pagemap_data_runs(pm, m->vmas[i]->start, m->vmas[k]->end, &span, &cap, &n);
		if (r < 0)
			return dm_fail(r, "PAGEMAP_SCAN%s %#" PRIx64 "-%#" PRIx64 ": %s", guards ? " (guards)" : "",
				       m->vmas[i]->start, m->vmas[k]->end, strerror(-r));
		/* cut at the VMAs of the span (runs and VMAs both in address order) */
		size_t j = 0;
		for (size_t v = i; v <= k; v++) {
			const Dm__Vma *x = m->vmas[v];
			out->first[v] = out->n;
			while (j < n && span[j].end <= x->start)
				j++;
			for (size_t q = j; q < n && span[q].start < x->end; q++) {
				struct proc_range c = { MAX(span[q].start, x->start), MIN(span[q].end, x->end) };
				if (c.start >= c.end)
					continue;
				if (out->n == out->cap) {
					out->cap = out->cap ? out->cap * 2 : 64;
					out->r = xrealloc(out->r, out->cap * sizeof(*out->r));
				}
				out->r[out->n++] = c;
			}
			out->count[v] = out->n - out->first[v];
		}
		i = k + 1;
	}
	return 0;
}

/* VMA i's runs, copied into *vec (the loop's buffer, which others reuse) */
static size_t vma_runs_get(const struct vma_runs *v, size_t i, struct proc_range **vec, size_t *cap)
{
	size_t n = v->count[i];
	if (n > *cap) {
		*cap = n;
		*vec = xrealloc(*vec, *cap * sizeof(**vec));
	}
	if (n)
		memcpy(*vec, v->r + v->first[i], n * sizeof(**vec));
	return n;
}

int dump_proc_mm(struct pool *pool, struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	_cleanup_close_ int pm = -1;
	_cleanup_free_ struct proc_range *vec = NULL, *own = NULL;
	size_t cap = 0, nent_cap = 0, n_own = 0, cap_own = 0;
	_cleanup_(cow_done) struct cow cow;
	uint64_t off = 0;
	struct dump_lap l;
	char path[64];
	int r;

	cow_init(d, p, &cow);
	dump_lap_start(&l);
	r = build_vmas(d, p);
	dump_lap(d, DPH_VMAS, &l);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", p->pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return dm_fail(neg_errno(), "process %d: %s: %m", p->pid, path);

	/* which VMAs are scanned: those with private pages, but a deferred one
	 * only when its parent has it the same way (it may inherit) */
	_cleanup_free_ bool *scanned = xcalloc(m->n_vmas ? m->n_vmas : 1, sizeof(*scanned));
	for (size_t i = 0; i < m->n_vmas; i++)
		scanned[i] = vma_has_private_pages(m->vmas[i]) &&
			     !(vma_deferred(d, m->vmas[i]) && !cow_parent_vma(&cow, &p->vmas.vmas[i]));
	_cleanup_(vma_runs_done) struct vma_runs guard_runs = { 0 }, data_runs = { 0 };
	r = vma_runs_scan(pm, m, scanned, true, &guard_runs) ?: vma_runs_scan(pm, m, scanned, false, &data_runs);
	if (r < 0)
		return dm_wrap(r, "process %d", p->pid);

	for (size_t i = 0; i < m->n_vmas; i++) {
		const Dm__Vma *v = m->vmas[i];
		size_t n;
		if (!vma_has_private_pages(v))
			continue;
		if (!scanned[i]) {
			uint64_t pages = (v->end - v->start) / DM_PAGE_SIZE;
			for (uint64_t k = 0; k < pages; k += DEFER_ENTRY_PAGES) {
				Dm__PagemapEntry *e = *add_entry(m, &nent_cap);
				e->vaddr = v->start + k * DM_PAGE_SIZE;
				e->nr_pages = (uint32_t)MIN(pages - k, (uint64_t)DEFER_ENTRY_PAGES);
				e->offset = off;
				e->has_sparse = e->sparse = true;
				off += (uint64_t)e->nr_pages * DM_PAGE_SIZE;
			}
			p->deferred_pages += pages;
			continue;
		}
		n = vma_runs_get(&guard_runs, i, &vec, &cap);
		if (n) {
			Dm__Vma *w = m->vmas[i];
			w->guards = xcalloc(2 * n, sizeof(*w->guards));
			for (size_t k = 0; k < n; k++) {
				w->guards[w->n_guards++] = vec[k].start;
				w->guards[w->n_guards++] = vec[k].end - vec[k].start;
			}
		}
		/* the parent's VMA this one may inherit pages from (none with guards) */
		const struct proc_vma *pv = n ? NULL : cow_parent_vma(&cow, &p->vmas.vmas[i]);
		if (pv) {
			bool ok;
			dump_lap(d, DPH_PAGEMAP, &l);
			r = cow_parent_ready(&cow, pv, &vec, &cap, &ok);
			dump_lap(d, DPH_COW, &l);
			if (r < 0)
				return r;
			if (!ok)
				pv = NULL;
		}
		n = vma_runs_get(&data_runs, i, &vec, &cap);
		const struct proc_range *runs = vec;
		if (pv) {
			dump_lap(d, DPH_PAGEMAP, &l);
			n_own = 0;
			cow.vma_first = m->n_inherited;
			for (size_t k = 0; k < n; k++) {
				r = cow_split(&cow, p->pid, pm, vec[k].start, vec[k].end, &own, &n_own,
					      &cap_own);
				if (r < 0)
					return r;
			}
			dump_lap(d, DPH_COW, &l);
			runs = own;
			n = n_own;
		}
		size_t first = m->n_pagemap;
		for (size_t k = 0; k < n; k++) {
			/* merge with the previous entry of this VMA when contiguous */
			uint64_t len = runs[k].end - runs[k].start;
			Dm__PagemapEntry *prev = m->n_pagemap > first ? m->pagemap[m->n_pagemap - 1] : NULL;
			if (prev && prev->vaddr + (uint64_t)prev->nr_pages * DM_PAGE_SIZE == runs[k].start &&
			    prev->nr_pages + len / DM_PAGE_SIZE < (1u << 20)) {
				prev->nr_pages += len / DM_PAGE_SIZE;
			} else {
				Dm__PagemapEntry *e = *add_entry(m, &nent_cap);
				e->vaddr = runs[k].start;
				e->nr_pages = len / DM_PAGE_SIZE;
				e->offset = off;
			}
			off += len;
		}
	}
	dump_lap(d, DPH_PAGEMAP, &l);
	for (size_t k = 0; k + 1 < m->n_inherited; k += 2)
		atomic_fetch_add(&d->inherit_found, m->inherited[k + 1]);
	p->nr_pages = off / DM_PAGE_SIZE - p->deferred_pages;
	p->pages_bytes = off;
	atomic_fetch_add(&d->total_pages, p->nr_pages);
	atomic_fetch_add(&d->deferred_pages, p->deferred_pages);
	if (d->opts.lazy_remote)
		return 0; /* a page server has them; eager pages are written at finalize */

	snprintf(path, sizeof(path), IMG_PAGES_FMT, p->vpid);
	int fd = take_prealloc(d, p->pid);
	r = fd >= 0 ? image_link_raw(d->img, fd, path, IMG_PAGES) : image_create_raw(d->img, path, IMG_PAGES, &fd);
	p->pages_fd = fd;
	if (r < 0)
		return r;
	/*
	 * The reservation was a guess (RssAnon): a short one is extended now,
	 * a long one is cut once the tree runs again (dump_trim_pages()): on
	 * ext4 cutting a file is a journal transaction with the orphan list,
	 * several ms each and more when it waits for a commit (16 page files
	 * cost 50-150 ms of frozen time here).  The header's payload_len says
	 * where the pages end; a reader takes a longer file.
	 */
	struct stat st;
	if (fstat(p->pages_fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	if ((uint64_t)st.st_size < DM_IMG_DATA_OFF + off) {
		if (ftruncate(p->pages_fd, DM_IMG_DATA_OFF + off) < 0)
			return dm_fail(neg_errno(), "%s: %m", path);
	} else {
		p->pages_trim = (uint64_t)st.st_size > DM_IMG_DATA_OFF + off;
	}
	dump_lap(d, DPH_ALLOC, &l);
	snprintf(path, sizeof(path), "/proc/%d/mem", p->pid);
	p->mem_fd = m->n_pagemap ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (m->n_pagemap && p->mem_fd < 0)
		return dm_fail(neg_errno(), "process %d: %s: %m", p->pid, path);
	struct dump_chunk *chunks = NULL;
	size_t n_chunks = 0, chunks_cap = 0;
	for (size_t i = 0; i < m->n_pagemap; i++) {
		const Dm__PagemapEntry *e = m->pagemap[i];
		uint64_t len = (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		for (uint64_t o = 0; o < len; o += CHUNK_BYTES) {
			if (n_chunks == chunks_cap) {
				chunks_cap = chunks_cap ? chunks_cap * 2 : 16;
				chunks = xrealloc(chunks, chunks_cap * sizeof(*chunks));
			}
			chunks[n_chunks++] = (struct dump_chunk){ .vaddr = e->vaddr + o,
								  .len = MIN(CHUNK_BYTES, len - o),
								  .file_off = e->offset + o };
		}
	}
	if (n_chunks) {
		pthread_mutex_lock(&d->copy_lock);
		p->chunks = chunks;
		p->n_chunks = n_chunks;
		if (d->n_copy_q == d->copy_q_cap) {
			d->copy_q_cap = d->copy_q_cap ? d->copy_q_cap * 2 : 16;
			d->copy_q = xrealloc(d->copy_q, d->copy_q_cap * sizeof(*d->copy_q));
		}
		d->copy_q[d->n_copy_q++] = p;
		pthread_mutex_unlock(&d->copy_lock);
	}
	/* as many tasks as chunks: each copies one, whichever dump_copy_pick() gives */
	for (size_t i = 0; i < n_chunks; i++) {
		r = pool_add(pool, copy_task, d, 0, "pages");
		if (r < 0)
			return r;
	}
	dump_lap(d, DPH_POOL, &l);
	return 0;
}

/* ------------------------------------------- the bound on inheritance */

static int inherit_range_cmp(const void *a, const void *b)
{
	const struct proc_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The pages of p (a parent) that its children inherit: the union of their
 * runs; *at_dest: how many of them the destination has already. */
static uint64_t inherit_parent_pages(const struct dump_ctx *d, const struct dproc *p, uint64_t *at_dest)
{
	_cleanup_free_ struct proc_range *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t pages = 0, end = 0;

	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dproc *ch = d->procs[i];
		if (ch->ppid != p->pid || ch == p || !ch->msg)
			continue;
		for (size_t k = 0; k + 1 < ch->msg->n_inherited; k += 2) {
			/* the written pages of a private file mapping are eager
			 * anyway (never lazy): not more in the downtime */
			const Dm__Vma *cv = checkpoint_vma_at(ch->msg, ch->msg->inherited[k]);
			if (cv && cv->kind == DM__VMA_KIND__VMA_FILE)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 32;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = (struct proc_range){ ch->msg->inherited[k],
						      ch->msg->inherited[k] + ch->msg->inherited[k + 1] * DM_PAGE_SIZE };
		}
	}
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), inherit_range_cmp);
	for (size_t i = 0; i < n; i++) {
		uint64_t s = MAX(v[i].start, end);
		if (v[i].end > s)
			pages += (v[i].end - s) / DM_PAGE_SIZE;
		for (uint64_t a = s; d->opts.page_at_dest && a < v[i].end; a += DM_PAGE_SIZE)
			*at_dest += d->opts.page_at_dest(d->opts.page_at_dest_arg, p->vpid, a);
		end = MAX(end, v[i].end);
	}
	return pages;
}

/*
 * Put p's inherited runs back into its page map as its own pages (sorted,
 * offsets laid out again: nothing of p is in its page file yet, lazy_remote).
 */
static void inherit_undo(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	size_t n = m->n_pagemap + m->n_inherited / 2, k = 0, j = 0, o = 0;
	Dm__PagemapEntry **out = xcalloc(n + 1, sizeof(*out));
	uint64_t off = 0, added = 0;

	while (k < m->n_pagemap || j + 1 < m->n_inherited) {
		Dm__PagemapEntry *e;
		if (j + 1 < m->n_inherited && (k == m->n_pagemap || m->inherited[j] < m->pagemap[k]->vaddr)) {
			e = PB_NEW(Dm__PagemapEntry, dm__pagemap_entry__init);
			e->vaddr = m->inherited[j];
			e->nr_pages = (uint32_t)m->inherited[j + 1];
			added += m->inherited[j + 1];
			j += 2;
		} else {
			e = m->pagemap[k++];
		}
		e->offset = off;
		off += (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		out[o++] = e;
	}
	free(m->pagemap);
	m->pagemap = out;
	m->n_pagemap = o;
	free(m->inherited);
	m->inherited = NULL;
	m->n_inherited = 0;
	p->pages_bytes = off;
	p->nr_pages += added;
	atomic_fetch_add(&d->total_pages, added);
	d->inherit_copies += added;
}

void dump_inherit_finish(struct dump_ctx *d)
{
	uint64_t eager = 0, at_dest = 0, max = d->opts.inherit_max_pages;

	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->msg)
			eager += inherit_parent_pages(d, d->procs[i], &at_dest);
	d->inherit_eager = eager;
	d->inherit_at_dest = d->opts.lazy_remote ? at_dest : 0;
	/* what a pre-copy round left at the destination does not go in the downtime */
	if (!max || eager - d->inherit_at_dest <= max || !d->opts.lazy_remote)
		return;
	eager -= d->inherit_at_dest;
	pr_warn("%.1f MiB of memory shared copy-on-write between parents and their children is over the "
		"%" PRIu64 " MiB that may go inside the downtime (--cow-max): it comes back as copies, one "
		"per process", (double)eager * DM_PAGE_SIZE / 1048576, max * DM_PAGE_SIZE >> 20);
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->msg && d->procs[i]->msg->n_inherited)
			inherit_undo(d, d->procs[i]);
	d->inherit_eager = 0;
	d->inherit_at_dest = 0;
}
