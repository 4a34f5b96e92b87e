/* SPDX-License-Identifier: MIT */
/*
 * Files: every fd of every process, the cwd, root and exe, and the files
 * behind file mappings, in one table (files.img).  Two fds that share one
 * open file description (dup, fork inheritance) get the same file id: found
 * with kcmp(KCMP_FILE) among fds of the same inode.  Each fd type has one
 * small function here; a type we do not handle fails the dump with the fd
 * and its kind named.
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

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

/*
 * Contents of a deleted file into ghost-<id>.img, and its metadata into f.
 * Only the data extents are read (SEEK_DATA / SEEK_HOLE) and written at
 * their own offsets; f->ghost_data lists them, so the restore writes the
 * same extents and leaves the same holes.  fd must be open for reading: the
 * caller reopens the file through /proc (the process's own description may
 * be write-only).
 */
int dump_write_ghost(struct dump_ctx *d, int fd, const struct stat *st, Dm__File *f)
{
	_cleanup_close_ int out = -1;
	_cleanup_free_ char *buf = NULL;
	uint64_t size = (uint64_t)st->st_size, data = 0, *ext = NULL;
	size_t n_ext = 0;
	char name[64];
	uint64_t id;
	int r;

	pthread_mutex_lock(&d->lock);
	id = ++d->next_ghost_id;
	pthread_mutex_unlock(&d->lock);
	snprintf(name, sizeof(name), IMG_GHOST_FMT, id);
	r = image_create_raw(d->img, name, IMG_GHOST, &out);
	if (r < 0)
		return r;
	buf = xmalloc(1 << 20);
	for (uint64_t off = 0; off < size;) {
		off_t start = lseek(fd, (off_t)off, SEEK_DATA), end;
		if (start < 0 && errno == ENXIO)
			break; /* only a hole up to the end */
		if (start < 0) {
			r = dm_fail(neg_errno(), "deleted file %s: SEEK_DATA: %m", f->path);
			goto fail;
		}
		end = lseek(fd, start, SEEK_HOLE);
		if (end < 0) {
			r = dm_fail(neg_errno(), "deleted file %s: SEEK_HOLE: %m", f->path);
			goto fail;
		}
		end = MIN((uint64_t)end, size);
		if ((uint64_t)start >= size)
			break;
		data += (uint64_t)(end - start);
		if (data > (1ULL << 32)) {
			r = dm_fail(-EFBIG, "deleted file %s: more than 4 GiB of data is too much to carry",
				    f->path);
			goto fail;
		}
		for (off = (uint64_t)start; off < (uint64_t)end;) {
			ssize_t n = pread(fd, buf, MIN((uint64_t)end - off, (uint64_t)(1 << 20)), (off_t)off);
			if (n < 0) {
				r = dm_fail(neg_errno(), "reading the deleted file %s: %m", f->path);
				goto fail;
			}
			if (n == 0)
				break; /* truncated meanwhile: the tree is frozen, only an outsider */
			r = pwrite_all(out, buf, n, DM_IMG_DATA_OFF + off);
			if (r < 0)
				goto fail;
			off += (uint64_t)n;
		}
		ext = xrealloc(ext, (n_ext + 2) * sizeof(*ext));
		ext[n_ext++] = (uint64_t)start;
		ext[n_ext++] = off - (uint64_t)start;
		off = (uint64_t)end;
	}
	/* the image file has the file's size, holes included */
	if (ftruncate(out, (off_t)(DM_IMG_DATA_OFF + size)) < 0) {
		r = dm_fail(neg_errno(), "%s: %m", name);
		goto fail;
	}
	r = image_finish_raw(out, IMG_GHOST, size);
	if (r < 0)
		goto fail;
	f->has_ghost_id = true;
	f->ghost_id = id;
	f->ghost_data = ext;
	f->n_ghost_data = n_ext;
	f->has_uid = f->has_gid = true;
	f->uid = st->st_uid;
	f->gid = st->st_gid;
	return 0;
fail:
	free(ext);
	return r;
}

/*
 * A file known by path (mapping, exe, cwd, root): deduplicated by inode;
 * link is a /proc path that opens the very file (also when deleted).
 */
uint32_t dump_file_path(struct dump_ctx *d, Dm__FileType type, const char *path, bool deleted,
			pid_t pid, const char *link, int *ret_err)
{
	struct stat st;
	int r;

	if (stat(link, &st) < 0) {
		*ret_err = dm_fail(neg_errno(), "process %d: %s (%s): %m", pid, path, link);
		return 0;
	}
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nowners; i++)
		if (d->owners[i].fd < 0 && d->owners[i].dev == st.st_dev && d->owners[i].ino == st.st_ino) {
			uint32_t id = d->owners[i].id;
			pthread_mutex_unlock(&d->lock);
			return id;
		}
	pthread_mutex_unlock(&d->lock);

	Dm__File *f = PB_NEW(Dm__File, dm__file__init);
	f->type = type;
	f->path = xstrdup(path);
	f->has_mode = f->has_size = f->has_ino = f->has_dev = f->has_mtime_ns = true;
	f->mode = st.st_mode;
	f->size = st.st_size;
	f->ino = st.st_ino;
	f->dev = st.st_dev;
	f->mtime_ns = st.st_mtim.tv_sec * 1000000000ULL + st.st_mtim.tv_nsec;
	if (deleted && S_ISREG(st.st_mode)) {
		_cleanup_close_ int fd = open(link, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			*ret_err = dm_fail(neg_errno(), "process %d: deleted file %s: %m", pid, path);
			protobuf_c_message_free_unpacked(&f->base, NULL);
			return 0;
		}
		r = dump_write_ghost(d, fd, &st, f);
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
	d->owners[d->nowners++] = (struct fd_owner){ .pid = pid, .fd = -1, .dev = st.st_dev,
						     .ino = st.st_ino, .id = id };
	pthread_mutex_unlock(&d->lock);
	*ret_err = 0;
	return id;
}

/* An fd sharing an open file description with one seen before: its id, else 0. */
static uint32_t find_shared(struct dump_ctx *d, pid_t pid, int fd, const struct stat *st)
{
	uint32_t id = 0;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nowners && !id; i++) {
		struct fd_owner *o = &d->owners[i];
		if (o->fd < 0 || o->dev != st->st_dev || o->ino != st->st_ino)
			continue;
		if (syscall(SYS_kcmp, pid, o->pid, KCMP_FILE, fd, o->fd) == 0)
			id = o->id;
	}
	pthread_mutex_unlock(&d->lock);
	return id;
}

static void remember_owner(struct dump_ctx *d, pid_t pid, int fd, const struct stat *st, uint32_t id)
{
	pthread_mutex_lock(&d->lock);
	if (d->nowners == d->owners_cap) {
		d->owners_cap = d->owners_cap ? d->owners_cap * 2 : 64;
		d->owners = xrealloc(d->owners, d->owners_cap * sizeof(*d->owners));
	}
	d->owners[d->nowners++] = (struct fd_owner){ .pid = pid, .fd = fd, .dev = st->st_dev,
						     .ino = st->st_ino, .id = id };
	pthread_mutex_unlock(&d->lock);
}

/* Bytes in flight in a pipe, without consuming them: tee() into our own pipe. */
static int dump_pipe_data(struct dump_ctx *d, struct dproc *p, int fdnum, uint64_t ino, Dm__PipeData *pd)
{
	/* a new read side of the same pipe: works whichever end the fd is */
	char name[64];
	snprintf(name, sizeof(name), "/proc/%d/fd/%d", p->pid, fdnum);
	_cleanup_close_ int fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int tmp[2] = { -1, -1 }, r = 0;

	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: cannot open the pipe: %m", p->pid, fdnum);
	int cap = fcntl(fd, F_GETPIPE_SZ);
	if (cap > 0) {
		pd->has_capacity = true;
		pd->capacity = cap;
	}
	/* both ends share the data; save it once, from whichever end comes first */
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nowners; i++)
		if (d->owners[i].fd == -2 && d->owners[i].ino == ino) {
			pthread_mutex_unlock(&d->lock);
			pd->has_bytes = true;
			pd->bytes = d->owners[i].id;
			return 0;
		}
	pthread_mutex_unlock(&d->lock);

	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0)
		return neg_errno();
	if (cap > 0)
		fcntl(tmp[1], F_SETPIPE_SZ, cap);
	ssize_t n = tee(fd, tmp[1], cap > 0 ? cap : 65536, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		r = dm_fail(neg_errno(), "process %d: fd %d: cannot peek the pipe: %m", p->pid, fdnum);
		goto out;
	}
	if (n < 0)
		n = 0;
	{
		_cleanup_close_ int out = -1;
		_cleanup_free_ char *buf = xmalloc(n ? n : 1);
		snprintf(name, sizeof(name), IMG_PIPE_FMT, ino);
		r = image_create_raw(d->img, name, IMG_PIPE, &out);
		if (r < 0)
			goto out;
		if (n) {
			r = read_exact(tmp[0], buf, n);
			if (r >= 0)
				r = pwrite_all(out, buf, n, DM_IMG_DATA_OFF);
			if (r < 0)
				goto out;
		}
		r = image_finish_raw(out, IMG_PIPE, n);
	}
	pd->has_bytes = true;
	pd->bytes = n;
	pthread_mutex_lock(&d->lock);
	if (d->nowners == d->owners_cap) {
		d->owners_cap = d->owners_cap ? d->owners_cap * 2 : 64;
		d->owners = xrealloc(d->owners, d->owners_cap * sizeof(*d->owners));
	}
	d->owners[d->nowners++] = (struct fd_owner){ .pid = p->pid, .fd = -2, .ino = ino, .id = (uint32_t)n };
	pthread_mutex_unlock(&d->lock);
out:
	close(tmp[0]);
	close(tmp[1]);
	return r;
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
 * A regular file of procfs: its size and mtime say nothing (they change all
 * the time), so it is reopened by path.  "/proc/<pid>/..." names a process
 * by its host pid: it must be one of the tree (recorded by its pid in the
 * tree, swapped for the new host pid at restore), and "/proc/<pid>/task/<tid>"
 * one of its main thread (the others do not exist yet when files are opened).
 */
static int dump_procfs(struct dump_ctx *d, struct dproc *p, const struct proc_fd *pf, Dm__File *f)
{
	const char *s = pf->target + strlen("/proc/"), *e;
	char *end;
	long pid, tid;

	f->has_procfs = true;
	f->procfs = true;
	f->has_size = f->has_mtime_ns = false;
	if (strncmp(pf->target, "/proc/", 6) || *s < '1' || *s > '9')
		return 0; /* /proc/meminfo, /proc/sys/...: the same path on any host */
	errno = 0;
	pid = strtol(s, &end, 10);
	if (errno || (*end != '/' && *end))
		return 0;
	e = end;
	if (!strncmp(e, "/task/", 6)) {
		tid = strtol(e + 6, &end, 10);
		if (tid != pid)
			return dm_fail(-ENOTSUP, "process %d: fd %d (%s): a /proc file of a thread other "
				       "than the main one cannot be reopened", p->pid, pf->fd, pf->target);
	}
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->pid == pid && !d->procs[i]->zombie) {
			f->has_proc_pid = true;
			f->proc_pid = d->procs[i]->vpid;
			return 0;
		}
	return dm_fail(-ENOTSUP, "process %d: fd %d (%s): a /proc file of process %ld, which is not "
		       "in the tree, cannot be reopened after restore", p->pid, pf->fd, pf->target, pid);
}

static int dump_one_fd(struct dump_ctx *d, struct dproc *p, const struct proc_fd *pf, Dm__Fd *out)
{
	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
	char link[64];
	struct stat st;
	uint32_t id;
	int r;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", p->pid, pf->fd);
	if (pf->kind == PROC_FD_SOCKET && !dump_fd_is_unix(p, pf->fd))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (%s)", pf->fd, p->pid,
			       pf->target, sock_family(p, pf->fd));
	if (pf->kind == PROC_FD_ANON || pf->kind == PROC_FD_NS || pf->kind == PROC_FD_OTHER)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s", pf->fd, p->pid, pf->target);
	r = proc_read_fdinfo(p->pid, pf->fd, &fi);
	if (r < 0)
		return dm_fail(r, "process %d: fdinfo %d: %s", p->pid, pf->fd, strerror(-r));
	if (stat(link, &st) < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: %m", p->pid, pf->fd);
	out->fd = pf->fd;
	out->has_cloexec = true;
	out->cloexec = fi.flags & O_CLOEXEC;

	id = find_shared(d, p->pid, pf->fd, &st);
	if (id) {
		out->file_id = id;
		return dump_fd_locks(p, pf, &fi, out, NULL);
	}

	Dm__File *f = PB_NEW(Dm__File, dm__file__init);
	r = dump_fd_locks(p, pf, &fi, out, f);
	if (r >= 0)
		r = dump_fown(d, p, pf, f);
	if (r < 0) {
		protobuf_c_message_free_unpacked(&f->base, NULL);
		return r;
	}
	f->has_flags = f->has_pos = f->has_mode = f->has_ino = f->has_dev = true;
	f->flags = fi.flags & FDINFO_FLAGS_MASK;
	f->pos = fi.pos;
	f->mode = st.st_mode;
	f->ino = st.st_ino;
	f->dev = st.st_dev;
	if (pf->kind == PROC_FD_PIPE) {
		f->type = DM__FILE_TYPE__FILE_PIPE;
		f->pipe = PB_NEW(Dm__PipeData, dm__pipe_data__init);
		f->pipe->pipe_id = pf->ino;
		r = dump_pipe_data(d, p, pf->fd, pf->ino, f->pipe);
	} else if (pf->kind == PROC_FD_SOCKET) {
		r = dump_unix_fd(d, p, pf->fd, pf->ino, f);
	} else if (pf->kind == PROC_FD_MEMFD) {
		r = dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (memfd)", pf->fd, p->pid, pf->target);
	} else if (S_ISREG(st.st_mode)) {
		f->type = DM__FILE_TYPE__FILE_REG;
		f->path = xstrdup(pf->target);
		f->has_size = f->has_mtime_ns = true;
		f->size = st.st_size;
		f->mtime_ns = st.st_mtim.tv_sec * 1000000000ULL + st.st_mtim.tv_nsec;
		r = 0;
		struct statfs sfs;
		if (statfs(link, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
			r = dump_procfs(d, p, pf, f);
		else if (pf->deleted) {
			/* a new description for reading: the process's may be write-only */
			_cleanup_close_ int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOATIME);
			if (fd < 0 && errno == EPERM)
				fd = open(link, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				r = dm_fail(neg_errno(), "process %d: fd %d: cannot reopen the deleted file "
					    "%s for reading: %m", p->pid, pf->fd, pf->target);
			else
				r = dump_write_ghost(d, fd, &st, f);
		}
	} else if (S_ISDIR(st.st_mode)) {
		f->type = DM__FILE_TYPE__FILE_DIR;
		f->path = xstrdup(pf->target);
		r = pf->deleted ? dm_fail(-ENOTSUP, "process %d: fd %d: deleted directory %s", p->pid,
					  pf->fd, pf->target) : 0;
	} else if (S_ISFIFO(st.st_mode) && pf->deleted) {
		r = dm_fail(-ENOTSUP, "fd %d of process %d: the FIFO %s was deleted, it cannot be "
			    "reopened", pf->fd, p->pid, pf->target);
	} else if (S_ISCHR(st.st_mode) && pf->deleted) {
		/* a devpts node goes when its master is closed */
		r = major(st.st_rdev) == 136
			? dm_fail(-ENOTSUP, "fd %d of process %d: pty slave %s whose master was closed: "
				  "the pty cannot be made again", pf->fd, p->pid, pf->target)
			: dm_fail(-ENOTSUP, "fd %d of process %d: the device node %s was deleted, it "
				  "cannot be reopened", pf->fd, p->pid, pf->target);
	} else if (S_ISFIFO(st.st_mode)) {
		f->type = DM__FILE_TYPE__FILE_FIFO;
		f->path = xstrdup(pf->target);
		f->pipe = PB_NEW(Dm__PipeData, dm__pipe_data__init);
		f->pipe->pipe_id = st.st_ino;
		r = dump_pipe_data(d, p, pf->fd, st.st_ino, f->pipe);
	} else if (S_ISCHR(st.st_mode)) {
		unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
		f->has_rdev = true;
		f->rdev = st.st_rdev;
		f->path = xstrdup(pf->target);
		if (maj == 136 || (maj == 5 && min == 2) || maj == 4 || (maj == 5 && min == 0)) {
			f->type = DM__FILE_TYPE__FILE_TTY;
			r = dump_tty(d, p, pf->fd, maj, min, f);
		} else if (maj == 1 && (min == 3 || min == 5 || min == 7 || min == 8 || min == 9)) {
			f->type = DM__FILE_TYPE__FILE_CHR; /* null zero full random urandom */
			r = 0;
		} else {
			r = dm_fail(-ENOTSUP, "unsupported fd %d of process %d: character device %s (%u:%u)",
				    pf->fd, p->pid, pf->target, maj, min);
		}
	} else {
		r = dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (mode %#o)", pf->fd, p->pid,
			    pf->target, st.st_mode & S_IFMT);
	}
	if (r < 0) {
		protobuf_c_message_free_unpacked(&f->base, NULL);
		return r;
	}
	out->file_id = dump_add_file(d, f);
	remember_owner(d, p->pid, pf->fd, &st, out->file_id);
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
		r = dump_one_fd(d, p, &fds.fds[i], x);
		if (r < 0)
			return r;
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
