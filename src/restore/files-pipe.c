/* SPDX-License-Identifier: MIT */
/*
 * Pipes and FIFOs.
 *
 * A pipe is made once per pipe id (pipe2, packet mode if an end had
 * O_DIRECT), resized to its old capacity (F_SETPIPE_SZ; without
 * CAP_SYS_RESOURCE not beyond fs.pipe-max-size) and filled with the bytes
 * that were in flight (pipe-<id>.img), before any process holds it.  The
 * first description of each end is that end; another description of the same
 * end (a reopen through /proc/PID/fd at dump time) is a reopen here too.
 *
 * A FIFO is reopened by path.  open() of a FIFO blocks until the other side
 * exists (or fails with ENXIO for O_WRONLY|O_NONBLOCK), so we first hold an
 * O_RDWR keeper of it, which is both sides at once, and open the real
 * description non-blocking; its own flags come back with F_SETFL.  The keeper
 * also carries the bytes in flight, and stays open until every process has
 * its fds.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#define PIPE_DEF_SIZE 65536u

static struct rst_pipe *pipe_find(struct rst_files *fs, uint64_t id)
{
	for (size_t i = 0; i < fs->n_pipes; i++)
		if (fs->pipes[i].id == id)
			return &fs->pipes[i];
	return NULL;
}

static struct rst_pipe *pipe_add(struct rst_files *fs, uint64_t id)
{
	fs->pipes = xrealloc(fs->pipes, (fs->n_pipes + 1) * sizeof(*fs->pipes));
	struct rst_pipe *p = &fs->pipes[fs->n_pipes++];
	*p = (struct rst_pipe){ .id = id, .fds = { -1, -1 } };
	return p;
}

/* The entry of either end that carries the capacity and the data, and packet mode. */
static const Dm__File *pipe_info(struct rst_files *fs, uint64_t id, bool *ret_direct)
{
	const Dm__FileTable *ft = fs->c->ck->files;
	const Dm__File *best = NULL;

	*ret_direct = false;
	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		if (!f->pipe || f->pipe->pipe_id != id)
			continue;
		if (f->has_flags && (f->flags & O_DIRECT))
			*ret_direct = true;
		if (!best || (f->pipe->has_bytes && f->pipe->bytes && !(best->pipe->has_bytes && best->pipe->bytes)))
			best = f;
	}
	return best;
}

/* Bytes in flight: pipe-<id>.img into wfd, without blocking. */
static int pipe_fill(struct rst_files *fs, const Dm__PipeData *pd, int wfd)
{
	_cleanup_close_ int img = -1;
	char name[64];
	uint64_t len;
	int r;

	if (!pd->has_bytes || pd->bytes == 0)
		return 0;
	snprintf(name, sizeof(name), IMG_PIPE_FMT, pd->pipe_id);
	r = image_open_raw(fs->c->img, name, IMG_PIPE, &img, &len);
	if (r < 0)
		return r;
	if (len != pd->bytes)
		return dm_fail(-EBADMSG, "%s: %" PRIu64 " bytes, files.img says %u", name, len,
			       pd->bytes);
	loff_t off = DM_IMG_DATA_OFF;
	for (uint64_t left = len; left;) {
		ssize_t n = splice(img, &off, wfd, NULL, left, SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN)
			return dm_fail(-ENOSPC, "pipe %" PRIu64 ": %" PRIu64 " bytes in flight do not fit "
				       "its capacity", pd->pipe_id, len);
		if (n <= 0)
			return dm_fail(n < 0 ? neg_errno() : -EIO, "%s: splice into the pipe: %m", name);
		left -= (uint64_t)n;
	}
	return 0;
}

static int pipe_resize(const Dm__PipeData *pd, int fd)
{
	if (!pd->has_capacity || pd->capacity == PIPE_DEF_SIZE || pd->capacity == 0)
		return 0;
	if (fcntl(fd, F_SETPIPE_SZ, (int)pd->capacity) < 0) {
		int r = neg_errno();
		if (r == -EPERM) {
			pr_warn("pipe %" PRIu64 ": capacity %u is above fs.pipe-max-size, keeping the "
				"default", pd->pipe_id, pd->capacity);
			return 0;
		}
		return dm_fail(r, "pipe %" PRIu64 ": F_SETPIPE_SZ %u: %s", pd->pipe_id, pd->capacity,
			       strerror(-r));
	}
	return 0;
}

static int reopen(int fd, int flags, int *ret_fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int nfd = open(path, flags | O_CLOEXEC);
	if (nfd < 0)
		return neg_errno();
	*ret_fd = nfd;
	return 0;
}

/* Our fd of end (0: read, 1: write) as a description to hand out. */
static int hand_out(struct rst_pipe *p, int end, const Dm__File *f, int *ret_fd)
{
	int acc = (f->has_flags ? (int)f->flags : O_RDONLY) & O_ACCMODE;
	int fd = -1, r;

	if (p->handed[end] || acc == O_RDWR) {
		r = reopen(p->fds[end], rst_open_flags(f) | O_NONBLOCK, &fd);
		if (r < 0)
			return r;
	} else {
		fd = fcntl(p->fds[end], F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return neg_errno();
		p->handed[end] = true;
	}
	r = rst_set_status_flags(f, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int pipe_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	uint64_t id = f->pipe->pipe_id;
	struct rst_pipe *p = pipe_find(fs, id);
	int acc = (f->has_flags ? (int)f->flags : O_RDONLY) & O_ACCMODE;
	int r;

	if (!p && f->pipe->has_container_stdio && f->pipe->container_stdio) {
		/* the container runtime's pipe: the end the tree held */
		unsigned n = f->pipe->container_stdio - 1;
		const struct restore_opts *o = fs->c->o;
		if (n > 2 || o->stub_pid <= 0 || !o->stdio_given || o->stdio_fds[n] < 0)
			return dm_fail(-ENOTSUP, "pipe %" PRIu64 " was the container's %s: this restore "
				       "has no container runtime's stdio to join", id,
				       n == 0 ? "stdin" : n == 1 ? "stdout" : "stderr");
		int end = acc == O_WRONLY;
		struct stat st;
		if (fstat(o->stdio_fds[n], &st) < 0 || !S_ISFIFO(st.st_mode))
			return dm_fail(-ENOTSUP, "pipe %" PRIu64 " was the container's fd %u: the new "
				       "container's is not a pipe", id, n);
		int fd = fcntl(o->stdio_fds[n], F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return dm_fail(neg_errno(), "pipe %" PRIu64 ": dup: %m", id);
		p = pipe_add(fs, id);
		p->fds[end] = fd;
	}
	if (p && p->fds[acc == O_WRONLY] < 0)
		return dm_fail(-ENOTSUP, "pipe %" PRIu64 ": the tree holds both ends of the container's "
			       "stdio: not restored", id);
	if (!p) {
		bool direct;
		const Dm__File *info = pipe_info(fs, id, &direct);
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK | (direct ? O_DIRECT : 0)) < 0)
			return dm_fail(neg_errno(), "pipe %" PRIu64 ": pipe2: %m", id);
		p = pipe_add(fs, id);
		p->fds[0] = pfd[0];
		p->fds[1] = pfd[1];
		r = pipe_resize(info->pipe, pfd[1]);
		if (r >= 0)
			r = pipe_fill(fs, info->pipe, pfd[1]);
		if (r < 0)
			return r;
	}
	r = hand_out(p, acc == O_WRONLY, f, ret_fd);
	if (r < 0)
		return dm_fail(r, "pipe %" PRIu64 ": %s", id, strerror(-r));
	return 0;
}

/* ------------------------------------------------------------ FIFOs */

static int fifo_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	uint64_t key = f->pipe ? f->pipe->pipe_id : 0;
	struct rst_pipe *p = key ? pipe_find(fs, key) : NULL;
	_cleanup_close_ int keeper = -1;
	int fd, r;

	if (!p) {
		r = rst_open_path(fs, f->path, O_RDWR | O_NONBLOCK, 0, &keeper);
		if (r < 0)
			return dm_fail(r, "fifo %s: %s", f->path, strerror(-r));
		if (f->pipe) {
			r = pipe_resize(f->pipe, keeper);
			if (r >= 0)
				r = pipe_fill(fs, f->pipe, keeper);
			if (r < 0)
				return r;
		}
		if (key) {
			p = pipe_add(fs, key);
			p->fds[0] = TAKE_FD(keeper);
		} else {
			rst_files_keep(fs, TAKE_FD(keeper));
		}
	}
	r = rst_open_path(fs, f->path, rst_open_flags(f) | O_NONBLOCK, 0, &fd);
	if (r < 0)
		return dm_fail(r, "fifo %s: %s", f->path, strerror(-r));
	r = rst_set_status_flags(f, fd);
	if (r < 0) {
		close(fd);
		return dm_fail(r, "fifo %s: status flags: %s", f->path, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

const struct rst_file_type rst_file_pipe = { .name = "pipe", .open = pipe_open };
const struct rst_file_type rst_file_fifo = { .name = "fifo", .open = fifo_open };
