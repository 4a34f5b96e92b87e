/* SPDX-License-Identifier: MIT */
/*
 * Pipes and FIFOs: the pipe's inode names it (both ends share it), its
 * capacity, and the bytes in flight, peeked with tee() and saved once per
 * pipe in pipe-<ino>.img.  A deleted FIFO cannot be opened again: refused.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/ioctl.h>

/* Bytes in flight in a pipe, without consuming them: tee() into our own pipe. */
static int pipe_data(struct dump_ctx *d, struct dproc *p, int fdnum, uint64_t ino, Dm__PipeData *pd)
{
	/* a new read side of the same pipe: works whichever end the fd is */
	char name[64];
	snprintf(name, sizeof(name), "/proc/%d/fd/%d", p->pid, fdnum);
	_cleanup_close_ int fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int tmp[2] = { -1, -1 }, r = 0;
	ssize_t n;

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

	/* an empty pipe (the wakeup pipes of event loops, most of them): no
	 * peek and no image file; the restore fills only what has bytes */
	int queued = 0;
	if (ioctl(fd, FIONREAD, &queued) == 0 && queued == 0) {
		n = 0;
		goto record;
	}
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0)
		return neg_errno();
	if (cap > 0)
		fcntl(tmp[1], F_SETPIPE_SZ, cap);
	n = tee(fd, tmp[1], cap > 0 ? cap : 65536, SPLICE_F_NONBLOCK);
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
		if (r < 0)
			goto out;
	}
record:
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

static bool pipe_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_PIPE;
}

/*
 * A container's init's stdin, stdout or stderr as a pipe: the other end is
 * the container runtime's (Docker's log copier, runc's caller), outside the
 * tree.  The restore joins the pipe the new container's runtime gave its
 * init, so the output goes on reaching `docker logs`.  Its bytes in flight
 * stay: the source's runtime reads them.  0: not one of them.
 */
static unsigned container_stdio(struct dump_ctx *d, uint64_t ino)
{
	if (!d->opts.container || !d->nprocs)
		return 0;
	for (int n = 0; n < 3; n++) {
		char path[64];
		struct stat st;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", d->procs[0]->pid, n);
		if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == ino)
			return (unsigned)n + 1;
	}
	return 0;
}

static int pipe_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	f->type = DM__FILE_TYPE__FILE_PIPE;
	f->pipe = PB_NEW(Dm__PipeData, dm__pipe_data__init);
	f->pipe->pipe_id = x->pf->ino;
	unsigned n = container_stdio(d, x->pf->ino);
	if (n) {
		f->pipe->has_container_stdio = true;
		f->pipe->container_stdio = n;
		return 0;
	}
	return pipe_data(d, x->p, x->pf->fd, x->pf->ino, f->pipe);
}

static bool fifo_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_FILE && S_ISFIFO(x->st->st_mode);
}

static int fifo_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	if (x->pf->deleted)
		return dm_fail(-ENOTSUP, "fd %d of process %d: the FIFO %s was deleted, it cannot be "
			       "reopened", x->pf->fd, x->p->pid, x->pf->target);
	f->type = DM__FILE_TYPE__FILE_FIFO;
	f->path = xstrdup(x->pf->target);
	f->pipe = PB_NEW(Dm__PipeData, dm__pipe_data__init);
	f->pipe->pipe_id = x->st->st_ino;
	return pipe_data(d, x->p, x->pf->fd, x->st->st_ino, f->pipe);
}

const struct dump_fd_type dump_fd_pipe = { .name = "pipe", .match = pipe_match, .dump = pipe_dump };
const struct dump_fd_type dump_fd_fifo = { .name = "fifo", .match = fifo_match, .dump = fifo_dump };
