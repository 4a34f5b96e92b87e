/* SPDX-License-Identifier: MIT */
/*
 * Regular files and directories, reopened by path at restore.  A deleted
 * regular file carries its contents (ghost-<id>.img, sparse); a file of
 * procfs carries no size or mtime to check, and names the process of
 * "/proc/<pid>/..." by its pid in the tree.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

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

static bool reg_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_FILE && S_ISREG(x->st->st_mode);
}

static int reg_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	const struct proc_fd *pf = x->pf;
	struct statfs sfs;

	f->type = DM__FILE_TYPE__FILE_REG;
	f->path = xstrdup(pf->target);
	f->has_size = f->has_mtime_ns = true;
	f->size = x->st->st_size;
	f->mtime_ns = x->st->st_mtim.tv_sec * 1000000000ULL + x->st->st_mtim.tv_nsec;
	if (statfs(x->link, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
		return dump_procfs(d, x->p, pf, f);
	if (!pf->deleted)
		return 0;
	/* a new description for reading: the process's may be write-only */
	_cleanup_close_ int fd = open(x->link, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(x->link, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: cannot reopen the deleted file %s for "
			       "reading: %m", x->p->pid, pf->fd, pf->target);
	return dump_write_ghost(d, fd, x->st, f);
}

static bool dir_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_FILE && S_ISDIR(x->st->st_mode);
}

static int dir_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	(void)d;
	f->type = DM__FILE_TYPE__FILE_DIR;
	f->path = xstrdup(x->pf->target);
	if (x->pf->deleted)
		return dm_fail(-ENOTSUP, "process %d: fd %d: deleted directory %s", x->p->pid, x->pf->fd,
			       x->pf->target);
	return 0;
}

const struct dump_fd_type dump_fd_reg = { .name = "regular file", .match = reg_match, .dump = reg_dump };
const struct dump_fd_type dump_fd_dir = { .name = "directory", .match = dir_match, .dump = dir_dump };
