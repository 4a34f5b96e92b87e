/* SPDX-License-Identifier: MIT */
/*
 * Files: every fd of every process, the cwd, root and exe, and the files
 * behind file mappings, in one table (files.img).  Two fds that share one
 * open file description (dup, fork inheritance) get the same file id: found
 * with kcmp(KCMP_FILE) among fds of the same inode.  What every fd has
 * (flags, pos, locks, SIGIO owner) is read here; the rest belongs to the fd
 * types (fd.h, one file each); an fd no type owns fails the dump with the fd
 * and its kind named.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/clock.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define FDINFO_FLAGS_MASK (~(unsigned)(O_CLOEXEC | O_LARGEFILE))

uint32_t dump_add_file(struct dump_ctx *d, Dm__File *f)
{
	pthread_mutex_lock(&d->lock);
	f->id = ++d->next_file_id;
	if (d->nfiles == d->files_cap) {
		d->files_cap = d->files_cap ? d->files_cap * 2 : 64;
		d->files = xrealloc(d->files, d->files_cap * sizeof(*d->files));
	}
	d->files[d->nfiles++] = f;
	pthread_mutex_unlock(&d->lock);
	return f->id;
}

/* dump_file_path() under path_lock */
static uint32_t file_path_locked(struct dump_ctx *d, Dm__FileType type, const char *path, bool deleted,
				 pid_t pid, const char *link, const struct stat *st, int *ret_err)
{
	int r;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nowners; i++)
		if (d->owners[i].fd < 0 && d->owners[i].dev == st->st_dev && d->owners[i].ino == st->st_ino) {
			uint32_t id = d->owners[i].id;
			pthread_mutex_unlock(&d->lock);
			*ret_err = 0;
			return id;
		}
	pthread_mutex_unlock(&d->lock);

	Dm__File *f = PB_NEW(Dm__File, dm__file__init);
	f->type = type;
	f->path = xstrdup(path);
	f->has_mode = f->has_size = f->has_ino = f->has_dev = f->has_mtime_ns = true;
	f->mode = st->st_mode;
	f->size = st->st_size;
	f->ino = st->st_ino;
	f->dev = st->st_dev;
	f->mtime_ns = st->st_mtim.tv_sec * 1000000000ULL + st->st_mtim.tv_nsec;
	if (type == DM__FILE_TYPE__FILE_MEMFD) {
		_cleanup_close_ int fd = open(link, O_RDONLY | O_CLOEXEC);
		char what[64];
		snprintf(what, sizeof(what), "process %d: mapping of %s", pid, path);
		r = fd < 0 ? dm_fail(neg_errno(), "process %d: %s: %m", pid, path)
			   : dump_memfd_fill(d, fd, st, what, f);
		if (r < 0) {
			*ret_err = r;
			protobuf_c_message_free_unpacked(&f->base, NULL);
			return 0;
		}
	} else if (deleted && S_ISREG(st->st_mode)) {
		_cleanup_close_ int fd = open(link, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			*ret_err = dm_fail(neg_errno(), "process %d: deleted file %s: %m", pid, path);
			protobuf_c_message_free_unpacked(&f->base, NULL);
			return 0;
		}
		r = dump_write_ghost(d, fd, st, f);
		if (r < 0) {
			*ret_err = r;
			protobuf_c_message_free_unpacked(&f->base, NULL);
			return 0;
		}
	}
	uint32_t id = dump_add_file(d, f);
	pthread_mutex_lock(&d->lock);
	if (d->nowners == d->owners_cap) {
		d->owners_cap = d->owners_cap ? d->owners_cap * 2 : 64;
		d->owners = xrealloc(d->owners, d->owners_cap * sizeof(*d->owners));
	}
	d->owners[d->nowners++] = (struct fd_owner){ .pid = pid, .fd = -1, .dev = st->st_dev,
						     .ino = st->st_ino, .id = id };
	pthread_mutex_unlock(&d->lock);
	*ret_err = 0;
	return id;
}

/*
 * A file known by path (mapping, exe, cwd, root): deduplicated by inode;
 * link is a /proc path that opens the very file (also when deleted).  The
 * lookup and the new entry go under one lock (path_lock): two workers that
 * met one file at once (two processes' exe) each made an entry of their own
 * before, and the restore then took the child's exe for another file than
 * the one it inherited from its parent, still mapped, which the kernel
 * refuses to replace (PR_SET_MM_MAP: EBUSY; seen once in zdtm-lazy
 * pgid_sid); a memfd mapped by two processes would come back as two.
 */
uint32_t dump_file_path(struct dump_ctx *d, Dm__FileType type, const char *path, bool deleted,
			pid_t pid, const char *link, int *ret_err)
{
	struct stat st;

	if (stat(link, &st) < 0) {
		*ret_err = dm_fail(neg_errno(), "process %d: %s (%s): %m", pid, path, link);
		return 0;
	}
	pthread_mutex_lock(&d->path_lock);
	uint32_t id = file_path_locked(d, type, path, deleted, pid, link, &st, ret_err);
	pthread_mutex_unlock(&d->path_lock);
	return id;
}

/*
 * An fd sharing an open file description with one seen before: its id.
 * Else 0, and the fd is claimed as that description's first (*ret_slot):
 * the fds of several processes are dumped at once (the pool), and two
 * fds of one description (a pipe a fork shares) both found nothing and
 * became two descriptions, the second restored as a reopen (its own
 * offset, flags with O_LARGEFILE): a pending claim makes the other wait
 * for its id.  A thread waits only before it claims, never while it holds
 * a pending one: no cycle.  owner_done() ends the claim.
 */
static uint32_t find_or_claim(struct dump_ctx *d, pid_t pid, int fd, const struct stat *st, size_t *ret_slot)
{
	uint32_t id = 0;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		bool wait = false;
		for (size_t i = 0; i < d->nowners && !id && !wait; i++) {
			struct fd_owner *o = &d->owners[i];
			if (o->fd < 0 || o->dev != st->st_dev || o->ino != st->st_ino)
				continue;
			if (syscall(SYS_kcmp, pid, o->pid, KCMP_FILE, fd, o->fd) != 0)
				continue;
			if (o->pending)
				wait = true;
			else
				id = o->id;
		}
		if (!wait)
			break;
		pthread_cond_wait(&d->owner_done, &d->lock);
	}
	if (!id) {
		if (d->nowners == d->owners_cap) {
			d->owners_cap = d->owners_cap ? d->owners_cap * 2 : 64;
			d->owners = xrealloc(d->owners, d->owners_cap * sizeof(*d->owners));
		}
		*ret_slot = d->nowners;
		d->owners[d->nowners++] = (struct fd_owner){ .pid = pid, .fd = fd, .dev = st->st_dev,
							     .ino = st->st_ino, .pending = true };
	}
	pthread_mutex_unlock(&d->lock);
	return id;
}

/* The claim's end: the description's id, or 0 when it failed (the entry
 * is forgotten: a waiter goes on to claim it, and the dump fails anyway) */
static void owner_done(struct dump_ctx *d, size_t slot, uint32_t id)
{
	pthread_mutex_lock(&d->lock);
	d->owners[slot].id = id;
	d->owners[slot].pending = false;
	if (!id)
		d->owners[slot].fd = -1;
	pthread_cond_broadcast(&d->owner_done);
	pthread_mutex_unlock(&d->lock);
}

static const char *sock_family(struct dproc *p, int fdnum)
{
	_cleanup_close_ int fd = syscall(SYS_pidfd_getfd, p->pidfd, fdnum, 0);
	int dom = -1;
	socklen_t len = sizeof(dom);
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0)
		return "unknown family";
	switch (dom) {
	case AF_UNIX: return "AF_UNIX";
	case AF_INET: return "AF_INET";
	case AF_INET6: return "AF_INET6";
	case AF_NETLINK: return "AF_NETLINK";
	case AF_PACKET: return "AF_PACKET";
	default: return "other family";
	}
}

static Dm__FileLock *lock_msg(const struct proc_lock *l)
{
	Dm__FileLock *m = PB_NEW(Dm__FileLock, dm__file_lock__init);
	m->kind = l->kind == PROC_LOCK_POSIX ? DM__LOCK_KIND__LOCK_POSIX
		: l->kind == PROC_LOCK_OFD  ? DM__LOCK_KIND__LOCK_OFD
					    : DM__LOCK_KIND__LOCK_FLOCK;
	m->write = l->write;
	m->start = l->start;
	m->len = l->end == UINT64_MAX ? 0 : l->end - l->start + 1;
	return m;
}

/*
 * The locks of one fd (its fdinfo "lock:" lines).  POSIX locks belong to
 * the process: they go with the fd (out), and the restore takes them inside
 * the process.  OFD and flock locks belong to the description: they go with
 * the file (f, NULL when the description was seen already).  Leases and
 * delegations cannot be taken back: the dump is refused.
 */
static int dump_fd_locks(struct dproc *p, const struct proc_fd *pf, const struct proc_fdinfo *fi,
			 Dm__Fd *out, Dm__File *f)
{
	_cleanup_free_ struct proc_lock *l = NULL;
	size_t n;
	int r = proc_fdinfo_locks(fi, &l, &n);

	if (r < 0)
		return dm_fail(r, "process %d: fd %d: cannot parse its locks in fdinfo", p->pid, pf->fd);
	for (size_t i = 0; i < n; i++) {
		if (l[i].kind == PROC_LOCK_OTHER)
			return dm_fail(-ENOTSUP, "process %d: fd %d (%s) holds a %s lock, which cannot be "
				       "restored", p->pid, pf->fd, pf->target, l[i].name);
		if (l[i].kind == PROC_LOCK_POSIX) {
			out->posix_locks = xrealloc(out->posix_locks,
						    (out->n_posix_locks + 1) * sizeof(*out->posix_locks));
			out->posix_locks[out->n_posix_locks++] = lock_msg(&l[i]);
		} else if (f) {
			f->locks = xrealloc(f->locks, (f->n_locks + 1) * sizeof(*f->locks));
			f->locks[f->n_locks++] = lock_msg(&l[i]);
		}
	}
	return 0;
}

/* A host pid or tid of the owner of a description, as the tree sees it; 0 if outside the tree. */
static pid_t tree_owner(struct dump_ctx *d, int type, pid_t host)
{
	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dproc *q = d->procs[i];
		if (type != F_OWNER_TID) {
			/* a process group is named by its leader, which must be in the tree */
			if (q->pid == host)
				return q->vpid;
			continue;
		}
		for (size_t k = 0; k < q->nthreads; k++)
			if (q->threads[k].tid == host)
				return q->threads[k].vtid;
	}
	return 0;
}

/*
 * The SIGIO owner (F_SETOWN_EX) and signal (F_SETSIG) of a description:
 * both belong to the description, read on a copy of the fd (pidfd_getfd).
 */
static int dump_fown(struct dump_ctx *d, struct dproc *p, const struct proc_fd *pf, Dm__File *f)
{
	_cleanup_close_ int fd = syscall(SYS_pidfd_getfd, p->pidfd, pf->fd, 0);
	struct f_owner_ex o;
	int sig;

	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: %m", p->pid, pf->fd);
	if (fcntl(fd, F_GETOWN_EX, &o) < 0 || (sig = fcntl(fd, F_GETSIG)) < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: F_GETOWN_EX: %m", p->pid, pf->fd);
	if (sig) {
		f->has_signum = true;
		f->signum = sig;
	}
	if (o.pid <= 0)
		return 0;
	pid_t v = tree_owner(d, o.type, o.pid);
	if (!v)
		return dm_fail(-ENOTSUP, "process %d: fd %d (%s): its SIGIO owner (F_SETOWN), %s %d, is "
			       "not in the tree", p->pid, pf->fd, pf->target,
			       o.type == F_OWNER_TID ? "thread" : o.type == F_OWNER_PGRP ? "process group"
											  : "process",
			       o.pid);
	f->has_owner_type = f->has_owner_pid = true;
	f->owner_type = o.type;
	f->owner_pid = v;
	return 0;
}

/*
 * The types, asked in this order; the first that matches owns the fd.
 * Narrow matches before broad ones (tty before chr).
 */
static const struct dump_fd_type *const dump_fd_types[] = {
	&dump_fd_pipe, &dump_fd_mqueue, &dump_fd_reg, &dump_fd_dir, &dump_fd_fifo, &dump_fd_tty, &dump_fd_chr,
	&dump_fd_inet,
	&dump_fd_unix,
	&dump_fd_eventfd, &dump_fd_signalfd, &dump_fd_timerfd, &dump_fd_epoll, &dump_fd_inotify,
	&dump_fd_memfd,
};

_Static_assert(ARRAY_SIZE(dump_fd_types) <= DUMP_FD_TYPES, "DUMP_FD_TYPES");

/* The fds phase by type: {"TYPE": {"count": N, "ms": wall}} of the types met. */
void dump_fd_type_stats(const struct dump_ctx *d, json_t *obj)
{
	json_t *o = json_object();
	for (size_t i = 0; i < ARRAY_SIZE(dump_fd_types); i++) {
		uint64_t n = atomic_load(&d->fd_type[i].n);
		if (n)
			json_object_set_new(o, dump_fd_types[i]->name,
					    json_pack("{s:I,s:f}", "count", (json_int_t)n, "ms",
						      atomic_load(&d->fd_type[i].wall_ns) / 1e6));
	}
	json_object_set_new(obj, "fd_types", o);
	json_object_set_new(obj, "inet_prepare_ms", json_real(d->inet_prepare_ns / 1e6));
}

int dump_fd_dup(const struct dump_fd *x, int *ret_fd)
{
	int fd = (int)syscall(SYS_pidfd_getfd, x->p->pidfd, x->pf->fd, 0);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: pidfd_getfd: %m", x->p->pid, x->pf->fd);
	*ret_fd = fd;
	return 0;
}

/* No type owns the fd: the refusal, naming it as well as we can. */
static int unsupported(const struct dump_fd *x)
{
	const struct proc_fd *pf = x->pf;

	if (pf->kind == PROC_FD_SOCKET)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (%s)", pf->fd, x->p->pid,
			       pf->target, sock_family(x->p, pf->fd));
	if (pf->kind == PROC_FD_MEMFD)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (memfd)", pf->fd, x->p->pid,
			       pf->target);
	if (pf->kind != PROC_FD_FILE)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s", pf->fd, x->p->pid,
			       pf->target);
	return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (mode %#o)", pf->fd, x->p->pid,
		       pf->target, x->st->st_mode & S_IFMT);
}

static int dump_one_fd(struct dump_ctx *d, struct dproc *p, const struct proc_fd *pf, Dm__Fd *out,
		       size_t *ret_type)
{
	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
	const struct dump_fd_type *t = NULL;
	char link[64];
	struct stat st;
	uint32_t id;
	int r;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", p->pid, pf->fd);
	r = proc_read_fdinfo(p->pid, pf->fd, &fi);
	if (r < 0)
		return dm_fail(r, "process %d: fdinfo %d: %s", p->pid, pf->fd, strerror(-r));
	if (stat(link, &st) < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: %m", p->pid, pf->fd);
	const struct dump_fd x = { .p = p, .pf = pf, .fi = &fi, .st = &st, .link = link };
	size_t ti = 0;
	for (; ti < ARRAY_SIZE(dump_fd_types) && !t; ti++)
		if (dump_fd_types[ti]->match(&x))
			t = dump_fd_types[ti];
	if (!t)
		return unsupported(&x);
	*ret_type = ti - 1;
	out->fd = pf->fd;
	out->has_cloexec = true;
	out->cloexec = fi.flags & O_CLOEXEC;

	size_t slot = 0;
	id = find_or_claim(d, p->pid, pf->fd, &st, &slot);
	if (id) {
		out->file_id = id;
		return dump_fd_locks(p, pf, &fi, out, NULL);
	}

	Dm__File *f = PB_NEW(Dm__File, dm__file__init);
	r = dump_fd_locks(p, pf, &fi, out, f);
	if (r >= 0)
		r = dump_fown(d, p, pf, f);
	if (r >= 0) {
		f->has_flags = f->has_pos = f->has_mode = f->has_ino = f->has_dev = true;
		f->flags = fi.flags & FDINFO_FLAGS_MASK;
		f->pos = fi.pos;
		f->mode = st.st_mode;
		f->ino = st.st_ino;
		f->dev = st.st_dev;
		r = t->dump(d, &x, f);
	}
	if (r < 0) {
		protobuf_c_message_free_unpacked(&f->base, NULL);
		owner_done(d, slot, 0);
		return r;
	}
	out->file_id = dump_add_file(d, f);
	owner_done(d, slot, out->file_id);
	return 0;
}

int dump_proc_fds(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	_cleanup_(proc_fd_list_done) struct proc_fd_list fds = {};
	char link[64], target[4096];
	int r, err = 0;

	if (p->zombie)
		return 0;
	r = proc_read_fds(p->pid, &fds);
	if (r < 0)
		return dm_fail(r, "process %d: cannot list fds: %s", p->pid, strerror(-r));
	m->fds = xcalloc(fds.n, sizeof(*m->fds));
	for (size_t i = 0; i < fds.n; i++) {
		Dm__Fd *x = PB_NEW(Dm__Fd, dm__fd__init);
		m->fds[m->n_fds++] = x;
		size_t type = DUMP_FD_TYPES;
		uint64_t t0 = clock_ns();
		r = dump_one_fd(d, p, &fds.fds[i], x, &type);
		if (r < 0)
			return r;
		if (type < DUMP_FD_TYPES) {
			atomic_fetch_add(&d->fd_type[type].wall_ns, clock_ns() - t0);
			atomic_fetch_add(&d->fd_type[type].n, 1);
		}
	}

	/* cwd, root, exe */
	static const char *const links[] = { "cwd", "root", "exe" };
	for (int k = 0; k < 3; k++) {
		snprintf(link, sizeof(link), "/proc/%d/%s", p->pid, links[k]);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			return dm_fail(neg_errno(), "process %d: %s: %m", p->pid, link);
		target[n] = 0;
		bool deleted = false;
		if (n > 10 && !strcmp(target + n - 10, " (deleted)")) {
			target[n - 10] = 0;
			deleted = true;
		}
		if (deleted && k < 2)
			return dm_fail(-ENOTSUP, "process %d: its %s %s was deleted, it cannot be entered "
				       "again", p->pid, k ? "root directory" : "working directory", target);
		uint32_t id = dump_file_path(d, k < 2 ? DM__FILE_TYPE__FILE_DIR : DM__FILE_TYPE__FILE_REG,
					     target, deleted, p->pid, link, &err);
		if (err < 0)
			return err;
		if (k == 0) {
			m->has_cwd_file_id = true;
			m->cwd_file_id = id;
		} else if (k == 1) {
			m->has_root_file_id = true;
			m->root_file_id = id;
		} else {
			p->exe_file_id = id;
		}
	}
	return 0;
}

static int kcmp_files(const void *a, const void *b)
{
	const struct dproc *x = *(struct dproc *const *)a, *y = *(struct dproc *const *)b;
	long r = syscall(SYS_kcmp, x->pid, y->pid, KCMP_FILES, 0, 0);
	/* 0 equal, 1 less, 2 greater (an order of the kernel pointers); 3 or -1: keep pids apart */
	return r == 0 ? 0 : r == 1 ? -1 : r == 2 ? 1 : (x->pid > y->pid) - (x->pid < y->pid);
}

/*
 * Two processes sharing one fd table (clone(CLONE_FILES) without
 * CLONE_THREAD): the restore makes every process with its own table, so
 * this is refused.  kcmp orders the tables: sorted, sharers are neighbours.
 */
int dump_check_fd_tables(struct dump_ctx *d)
{
	_cleanup_free_ struct dproc **v = xcalloc(d->nprocs ? d->nprocs : 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < d->nprocs; i++)
		if (!d->procs[i]->zombie)
			v[n++] = d->procs[i];
	qsort(v, n, sizeof(*v), kcmp_files);
	for (size_t i = 1; i < n; i++)
		if (syscall(SYS_kcmp, v[i - 1]->pid, v[i]->pid, KCMP_FILES, 0, 0) == 0)
			return dm_fail(-ENOTSUP, "processes %d and %d share one fd table (clone with "
				       "CLONE_FILES), which cannot be restored", MIN(v[i - 1]->pid, v[i]->pid),
				       MAX(v[i - 1]->pid, v[i]->pid));
	return 0;
}
