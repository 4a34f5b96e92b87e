/* SPDX-License-Identifier: MIT */
/*
 * The file engine: fds, cwd and root of every process.
 *
 * Each description is opened once, here, by its type's module (files.h).
 * It reaches a tracee over the transport: we send it with SCM_RIGHTS, the
 * tracee's injected recvmsg() puts it at the lowest free fd number.  The
 * tracee's fd table holds only the transport (far above every image fd), so
 * the numbers are known in advance and the whole installation is one batch:
 *
 *   recvmsg x ceil(k/253)     fds[i] arrive at i       (cwd at k, root at k+1)
 *   fchdir(root) chroot(".") fchdir(cwd) close(k) close(k+1)
 *   for i = k-1 .. 0:  dup3(i, fd[i], cloexec) close(i)     (fd[i] >= i: sorted,
 *                      never lands on a slot not yet moved)
 *   fcntl(F_SETLK) of its POSIX locks, the types' in_tracee() (epoll_ctl...)
 *   ioctl(TIOCSCTTY), ioctl(TIOCSPGRP) for a session leader and its terminal
 *
 * A SOCK_DGRAM queue holds only net.unix.max_dgram_qlen (10) datagrams: the
 * batch is run after every 8 of them.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/fdpass.h"
#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <errno.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>

#define SCM_MAX FDPASS_MAX
#define TX_MAX 8

static const struct rst_file_type *type_of(Dm__FileType t)
{
	switch (t) {
	case DM__FILE_TYPE__FILE_REG: return &rst_file_reg;
	case DM__FILE_TYPE__FILE_DIR: return &rst_file_dir;
	case DM__FILE_TYPE__FILE_PIPE: return &rst_file_pipe;
	case DM__FILE_TYPE__FILE_FIFO: return &rst_file_fifo;
	case DM__FILE_TYPE__FILE_CHR: return &rst_file_chr;
	case DM__FILE_TYPE__FILE_TTY: return &rst_file_tty;
	case DM__FILE_TYPE__FILE_INET_SK: return &rst_file_inet;
	case DM__FILE_TYPE__FILE_UNIX_SK: return &rst_file_unix;
	case DM__FILE_TYPE__FILE_EVENTFD: return &rst_file_eventfd;
	case DM__FILE_TYPE__FILE_SIGNALFD: return &rst_file_signalfd;
	case DM__FILE_TYPE__FILE_TIMERFD: return &rst_file_timerfd;
	case DM__FILE_TYPE__FILE_EPOLL: return &rst_file_epoll;
	case DM__FILE_TYPE__FILE_INOTIFY: return &rst_file_inotify;
	case DM__FILE_TYPE__FILE_MEMFD: return &rst_file_memfd;
	case DM__FILE_TYPE__FILE_MQUEUE: return &rst_file_mqueue;
	default: return NULL;
	}
}

static const char *type_name(Dm__FileType t)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&dm__file_type__descriptor, t);
	return v ? v->name : "unknown";
}

int rst_open_path(struct rst_files *fs, const char *path, int flags, mode_t mode, int *ret_fd)
{
	int root = fs->c->o->root_fd, fd;
	_cleanup_free_ char *mapped = NULL;
	const char *from = fs->c->o->path_from;

	if (from && fs->c->o->path_to) {
		size_t l = strlen(from);
		if (!strncmp(path, from, l) && (path[l] == '/' || !path[l]))
			path = mapped = xasprintf("%s%s", fs->c->o->path_to, path + l);
	}
	if (root >= 0) {
		struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
					.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
					.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
		fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	} else {
		fd = openat(AT_FDCWD, path, flags | O_CLOEXEC, mode);
	}
	if (fd < 0)
		return neg_errno();
	*ret_fd = fd;
	return 0;
}

int rst_open_flags(const Dm__File *f)
{
	int fl = f->has_flags ? (int)f->flags : O_RDONLY;
	/* O_ASYNC from open() would mark the file without registering it for SIGIO */
	return (fl & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_TMPFILE | O_ASYNC)) |
	       O_CLOEXEC;
}

#define STATUS_FLAGS (O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME)

/*
 * Without O_ASYNC: setting it registers the fd number it is set through
 * (the si_fd of every SIGIO with F_SETSIG), which must be the process's, so
 * the process sets it itself (files_restore).
 */
int rst_set_status_flags(const Dm__File *f, int fd)
{
	const int mask = STATUS_FLAGS & ~O_ASYNC;
	int want = (f->has_flags ? (int)f->flags : 0) & mask;
	int cur = fcntl(fd, F_GETFL);

	if (cur < 0)
		return neg_errno();
	if ((cur & mask) == want)
		return 0;
	if (fcntl(fd, F_SETFL, (cur & ~mask) | want) < 0)
		return neg_errno();
	return 0;
}

void rst_files_keep(struct rst_files *fs, int fd)
{
	fs->keep = xrealloc(fs->keep, (fs->n_keep + 1) * sizeof(int));
	fs->keep[fs->n_keep++] = fd;
}

int rst_files_desc(struct rst_files *fs, uint32_t id, int *ret_fd)
{
	const Dm__File *f = checkpoint_file(fs->c->ck, id);
	const struct rst_file_type *t;
	int fd, r;

	if (!f)
		return dm_fail(-EBADMSG, "file id %u is not in files.img", id);
	if (fs->desc[id] >= 0) {
		*ret_fd = fs->desc[id];
		return 0;
	}
	t = type_of(f->type);
	if (!t)
		return dm_fail(-ENOTSUP, "file %u (%s): type %s is not restored yet", id,
			       f->path ? f->path : "no path", type_name(f->type));
	r = t->open(fs, f, &fd);
	if (r >= 0 && f->has_signum && f->signum && fcntl(fd, F_SETSIG, f->signum) < 0) {
		r = dm_fail(neg_errno(), "F_SETSIG %d: %m", f->signum);
		close(fd);
	}
	if (r >= 0 && f->n_locks) {
		r = rst_locks_desc(f, fd);
		if (r < 0)
			close(fd);
	}
	if (r < 0)
		return rst_wrap(r, "file %u (%s %s)", id, t->name, f->path ? f->path : "");
	fs->desc[id] = fd;
	*ret_fd = fd;
	return 0;
}

int files_open_for_map(struct rst_ctx *c, uint32_t id, int accmode, int *ret_fd)
{
	struct rst_files *fs = c->files;
	const Dm__File *f = checkpoint_file(c->ck, id);
	int slot = accmode == O_RDWR, r;

	if (!f)
		return dm_fail(-EBADMSG, "mapped file id %u is not in files.img", id);
	if (fs->mapfd[slot][id] >= 0) {
		*ret_fd = fs->mapfd[slot][id];
		return 0;
	}
	if (f->type != DM__FILE_TYPE__FILE_REG && f->type != DM__FILE_TYPE__FILE_CHR &&
	    f->type != DM__FILE_TYPE__FILE_MEMFD)
		return dm_fail(-ENOTSUP, "mapped file %u (%s): type %s cannot be mapped yet", id,
			       f->path ? f->path : "", type_name(f->type));
	if (f->type == DM__FILE_TYPE__FILE_MEMFD)
		r = rst_memfd_open_for_map(fs, f, accmode, &fs->mapfd[slot][id]);
	else if (f->type == DM__FILE_TYPE__FILE_CHR)
		r = rst_open_path(fs, f->path, accmode, 0, &fs->mapfd[slot][id]);
	else
		r = rst_reg_open_for_map(fs, f, accmode, &fs->mapfd[slot][id]);
	if (r < 0)
		return rst_wrap(r, "mapped file %u (%s)", id, f->path ? f->path : "");
	*ret_fd = fs->mapfd[slot][id];
	return 0;
}

/* ------------------------------------------------------------ transport */

struct rx {
	char byte;
	struct iovec iov;
	struct msghdr mh;
	char cmsg[CMSG_SPACE(SCM_MAX * sizeof(int))];
};

static int send_chunk(struct rst_ctx *c, const int *fds, size_t n)
{
	char byte = 'F';
	ssize_t k = fdpass_send(c->sock, &byte, 1, fds, n, MSG_DONTWAIT);

	if (k != 1)
		return dm_fail(k < 0 ? (int)k : -EIO, "transport: sending %zu fds: %s", n,
			       strerror(k < 0 ? (int)-k : EIO));
	return 0;
}

int files_send(struct rst_ctx *c, struct rbatch *rb, const int *fds, size_t n)
{
	int r;

	for (size_t done = 0; done < n;) {
		size_t k = MIN(n - done, (size_t)SCM_MAX);
		if (rb->tx_pending >= TX_MAX) {
			r = rb_run(rb);
			if (r < 0)
				return r;
		}
		r = rb_room(rb, 1, sizeof(struct rx) + 64);
		if (r < 0)
			return r;
		/* the remote layout of struct rx: pointers must be the tracee's */
		uint64_t base = rb_put(rb, NULL, sizeof(struct rx));
		struct rx *rx = batch_local(&rb->b, base);
		if (!base || !rx)
			return dm_fail(-E2BIG, "transport: no staging room");
		memset(rx, 0, sizeof(*rx));
		rx->iov.iov_base = (void *)(uintptr_t)(base + offsetof(struct rx, byte));
		rx->iov.iov_len = 1;
		rx->mh.msg_iov = (void *)(uintptr_t)(base + offsetof(struct rx, iov));
		rx->mh.msg_iovlen = 1;
		rx->mh.msg_control = (void *)(uintptr_t)(base + offsetof(struct rx, cmsg));
		rx->mh.msg_controllen = CMSG_SPACE(k * sizeof(int));
		r = send_chunk(c, fds + done, k);
		if (r < 0)
			return r;
		rb->tx_pending++;
		r = rb_add(rb, "recvmsg (transport)", SYS_recvmsg, (uint64_t)c->tfd,
			   base + offsetof(struct rx, mh), 0, 0, 0, 0);
		if (r < 0)
			return r;
		done += k;
	}
	/* all n arrived (a truncated control message would leave n-1 closed) */
	return n ? rb_add(rb, "fcntl(F_GETFD) (transport check)", SYS_fcntl, n - 1, F_GETFD, 0, 0, 0,
			  0) : 0;
}

/* ------------------------------------------------------------ per process */

static int open_dir(struct rst_files *fs, uint32_t id, int *ret_fd)
{
	const Dm__File *f = checkpoint_file(fs->c->ck, id);
	int r;

	if (!f || !f->path)
		return dm_fail(-EBADMSG, "directory file %u has no path", id);
	r = rst_open_path(fs, f->path, O_PATH | O_DIRECTORY, 0, ret_fd);
	if (r < 0)
		return dm_fail(r, "directory %s: %s", f->path, strerror(-r));
	return 0;
}

static bool needs_root(struct rst_files *fs, const Dm__Process *p)
{
	if (!p->has_root_file_id)
		return fs->c->o->root_fd >= 0;
	const Dm__File *f = checkpoint_file(fs->c->ck, p->root_file_id);
	return fs->c->o->root_fd >= 0 || !f || !f->path || strcmp(f->path, "/");
}

/* The terminal a session leader must take as its controlling tty: fd index or -1. */
static int ctty_fd(struct rst_files *fs, const Dm__Process *p, int32_t *ret_pgrp)
{
	if (p->sid != p->pid)
		return -1;
	for (size_t i = 0; i < p->n_fds; i++) {
		const Dm__File *f = checkpoint_file(fs->c->ck, p->fds[i]->file_id);
		if (f->type != DM__FILE_TYPE__FILE_TTY || f->tty->master || !f->tty->has_sid ||
		    f->tty->sid != p->pid)
			continue;
		*ret_pgrp = f->tty->has_pgrp && rst_find(fs->c, f->tty->pgrp) ? f->tty->pgrp : 0;
		return p->fds[i]->fd;
	}
	return -1;
}

/*
 * A session leader's controlling terminal, at once after its setsid() and
 * before it forks the members of its session: a process gets its terminal
 * (signal->tty) from its parent at fork, and only the leader's TIOCSCTTY
 * sets it, so members forked before it would have none (/dev/tty: ENXIO).
 * The description lands at the lowest fd the stub has free (recvmsg takes
 * that one), just for the ioctl.  The foreground group is set with the
 * files, once every group exists.
 */
static int ctty_ioctl(struct rst_ctx *c, struct rst_proc *p, uint32_t file_id, unsigned long req,
		      const char *what)
{
	const Dm__Process *ip = p->img;
	int desc, r, lowest = 0;

	r = rst_files_desc(c->files, file_id, &desc);
	if (r < 0)
		return rst_wrap(r, "pid %d: controlling terminal", ip->pid);
	/* the stub is stopped: its fd table does not change meanwhile */
	for (;; lowest++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->host_pid, lowest);
		if (access(path, F_OK) < 0 && errno == ENOENT)
			break;
		if (lowest > 1 << 20)
			return dm_fail(-EMFILE, "pid %d: no free fd for its terminal", ip->pid);
	}
	struct rbatch *rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, rst_main(p));
	r = files_send(c, rb, &desc, 1);
	if (r >= 0)
		r = rb_add(rb, what, SYS_ioctl, lowest, req, 0, 0, 0, 0);
	if (r >= 0)
		r = rb_add(rb, "close (terminal)", SYS_close, lowest, 0, 0, 0, 0, 0);
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: controlling terminal", ip->pid);
	return 0;
}

int files_ctty_early(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;

	if (!ip->has_ctty_file_id || ip->sid != ip->pid)
		return 0;
	return ctty_ioctl(c, p, ip->ctty_file_id, TIOCSCTTY, "ioctl(TIOCSCTTY)");
}

/*
 * A member of that session which had no terminal: it inherited the
 * leader's at fork, and gives it up (TIOCNOTTY of a member clears its own
 * signal->tty only) before it forks anything.
 */
int files_ctty_drop(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;
	struct rst_proc *leader;

	if (!ip->has_no_ctty || !ip->no_ctty || ip->sid == ip->pid)
		return 0;
	leader = rst_find(c, ip->sid);
	if (!leader || !leader->img->has_ctty_file_id)
		return 0;	/* a session without a terminal: nothing was inherited */
	return ctty_ioctl(c, p, leader->img->ctty_file_id, TIOCNOTTY, "ioctl(TIOCNOTTY)");
}

int files_restore(struct rst_ctx *c, struct rst_proc *p)
{
	struct rst_files *fs = c->files;
	const Dm__Process *ip = p->img;
	size_t k = ip->n_fds, n = k;
	_cleanup_free_ int *fds = xcalloc(k + 3, sizeof(int)); /* + cwd, ctty, root */
	_cleanup_close_ int cwd = -1, root = -1;
	int cwd_idx = -1, root_idx = -1, r;
	struct rbatch *rb;

	for (size_t i = 0; i < k; i++) {
		r = rst_files_desc(fs, ip->fds[i]->file_id, &fds[i]);
		if (r < 0)
			return rst_wrap(r, "pid %d: fd %d", ip->pid, ip->fds[i]->fd);
	}
	if (ip->has_cwd_file_id) {
		r = open_dir(fs, ip->cwd_file_id, &cwd);
		if (r < 0)
			return rst_wrap(r, "pid %d: cwd", ip->pid);
		cwd_idx = (int)n;
		fds[n++] = cwd;
	}
	/* a session leader whose terminal only its members hold: the
	 * description comes in just for TIOCSCTTY (below) */
	int ctty_idx = -1;
	bool ctty_held = false;
	for (size_t i = 0; i < k; i++)
		ctty_held |= ip->has_ctty_file_id && ip->fds[i]->file_id == ip->ctty_file_id;
	if (ip->has_ctty_file_id && ip->sid == ip->pid && !ctty_held) {
		r = rst_files_desc(fs, ip->ctty_file_id, &fds[n]);
		if (r < 0)
			return rst_wrap(r, "pid %d: controlling terminal", ip->pid);
		ctty_idx = (int)n++;
	}
	if (needs_root(fs, ip)) {
		if (ip->has_root_file_id)
			r = open_dir(fs, ip->root_file_id, &root);
		else
			r = (root = fcntl(c->o->root_fd, F_DUPFD_CLOEXEC, 0)) < 0 ? neg_errno() : 0;
		if (r < 0)
			return rst_wrap(r, "pid %d: root", ip->pid);
		root_idx = (int)n;
		fds[n++] = root;
	}

	rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, rst_main(p));
	r = files_send(c, rb, fds, n);
	if (r >= 0 && root_idx >= 0) {
		uint64_t dot;
		r = rb_add(rb, "fchdir(root)", SYS_fchdir, root_idx, 0, 0, 0, 0, 0);
		if (r >= 0)
			r = rb_stage(rb, ".", 2, &dot);
		if (r >= 0)
			r = rb_add(rb, "chroot", SYS_chroot, dot, 0, 0, 0, 0, 0);
	}
	if (r >= 0 && cwd_idx >= 0)
		r = rb_add(rb, "fchdir(cwd)", SYS_fchdir, cwd_idx, 0, 0, 0, 0, 0);
	if (r >= 0 && ctty_idx >= 0) {
		const Dm__File *tf = checkpoint_file(c->ck, ip->ctty_file_id);
		r = rb_add(rb, "ioctl(TIOCSCTTY)", SYS_ioctl, ctty_idx, TIOCSCTTY, 0, 0, 0, 0);
		if (r >= 0 && tf->tty && tf->tty->has_pgrp && rst_find(c, tf->tty->pgrp)) {
			uint64_t rp;
			int32_t pg = tf->tty->pgrp;
			r = rb_stage(rb, &pg, sizeof(pg), &rp);
			if (r >= 0)
				r = rb_add(rb, "ioctl(TIOCSPGRP)", SYS_ioctl, ctty_idx, TIOCSPGRP, rp, 0, 0, 0);
		}
	}
	if (r >= 0 && n > k)
		r = rb_add(rb, "close_range", SYS_close_range, k, n - 1, 0, 0, 0, 0);
	for (size_t i = k; i-- > 0 && r >= 0;) {
		const Dm__Fd *fd = ip->fds[i];
		bool cloexec = fd->has_cloexec && fd->cloexec;
		if ((size_t)fd->fd != i) {
			r = rb_add(rb, "dup3", SYS_dup3, i, fd->fd, cloexec ? O_CLOEXEC : 0, 0, 0, 0);
			if (r >= 0)
				r = rb_add(rb, "close", SYS_close, i, 0, 0, 0, 0, 0);
		} else if (cloexec) {
			r = rb_add(rb, "fcntl(F_SETFD)", SYS_fcntl, i, F_SETFD, FD_CLOEXEC, 0, 0, 0);
		}
	}
	/* after every dup3: a POSIX lock is dropped when any fd of its file closes */
	for (size_t i = 0; i < k && r >= 0; i++)
		if (ip->fds[i]->n_posix_locks)
			r = rst_locks_posix(rb, checkpoint_file(c->ck, ip->fds[i]->file_id), ip->fds[i],
					    fds[i]);
	/* what the types do in the process, with its fd numbers (files.h) */
	for (size_t i = 0; i < k && r >= 0; i++) {
		const Dm__File *f = checkpoint_file(c->ck, ip->fds[i]->file_id);
		const struct rst_file_type *t = type_of(f->type);
		if (t->in_tracee)
			r = t->in_tracee(fs, rb, ip, ip->fds[i], f, fds[i]);
	}
	/* O_ASYNC, through the first fd that holds the description (see rst_set_status_flags) */
	for (size_t i = 0; i < k && r >= 0; i++) {
		const Dm__File *f = checkpoint_file(c->ck, ip->fds[i]->file_id);
		if (!f->has_flags || !(f->flags & O_ASYNC) || fs->async_set[f->id])
			continue;
		fs->async_set[f->id] = true;
		r = rb_add(rb, "fcntl(F_SETFL, O_ASYNC)", SYS_fcntl, (uint64_t)ip->fds[i]->fd, F_SETFL,
			   f->flags & STATUS_FLAGS, 0, 0, 0);
	}
	int32_t pgrp = 0;
	int tty = r >= 0 ? ctty_fd(fs, ip, &pgrp) : -1;
	if (tty >= 0) {
		uint64_t rp;
		r = rb_add(rb, "ioctl(TIOCSCTTY)", SYS_ioctl, tty, TIOCSCTTY, 0, 0, 0, 0);
		if (r >= 0 && pgrp) {
			r = rb_stage(rb, &pgrp, sizeof(pgrp), &rp);
			if (r >= 0)
				r = rb_add(rb, "ioctl(TIOCSPGRP)", SYS_ioctl, tty, TIOCSPGRP, rp, 0, 0, 0);
		}
	}
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: files", ip->pid);
	c->st.fds += k;
	return 0;
}

/*
 * SIGIO owners (F_SETOWN_EX) of the descriptions, once every thread exists
 * (the owner may be a thread): the tree's pid translated to ours.  The
 * owner's credentials recorded by the kernel are then the restorer's.
 */
int files_set_owners(struct rst_ctx *c)
{
	const Dm__FileTable *ft = c->ck->files;

	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		struct f_owner_ex o = { .type = f->owner_type };
		int fd = c->files->desc[f->id];

		if (!f->has_owner_pid || fd < 0)
			continue;
		for (size_t k = 0; k < c->nprocs && !o.pid; k++) {
			const struct rst_proc *p = &c->procs[k];
			if (o.type != F_OWNER_TID) {
				if (p->img->pid == f->owner_pid)
					o.pid = p->host_pid;
				continue;
			}
			for (size_t t = 0; t < p->n_threads; t++)
				if (p->threads[t].img && p->threads[t].img->tid == f->owner_pid)
					o.pid = p->threads[t].t.tid;
		}
		if (o.pid <= 0)
			return dm_fail(-ESRCH, "file %u (%s): its SIGIO owner %d is not in the restored tree",
				       f->id, f->path ? f->path : "", f->owner_pid);
		if (fcntl(fd, F_SETOWN_EX, &o) < 0)
			return dm_fail(neg_errno(), "file %u (%s): F_SETOWN_EX %d: %m", f->id,
				       f->path ? f->path : "", f->owner_pid);
	}
	return 0;
}

/* ------------------------------------------------------------ lifetime */

int files_init(struct rst_ctx *c)
{
	struct rst_files *fs = xcalloc(1, sizeof(*fs));
	size_t n = (size_t)c->ck->max_file_id + 1;

	fs->c = c;
	fs->desc = xmalloc(n * sizeof(int));
	fs->mapfd[0] = xmalloc(n * sizeof(int));
	fs->mapfd[1] = xmalloc(n * sizeof(int));
	fs->async_set = xcalloc(n, sizeof(bool));
	for (size_t i = 0; i < n; i++)
		fs->desc[i] = fs->mapfd[0][i] = fs->mapfd[1][i] = -1;
	c->files = fs;
	return 0;
}

int files_finish(struct rst_ctx *c)
{
	static const struct rst_file_type *const all[] = {
		&rst_file_reg, &rst_file_dir, &rst_file_pipe,
		&rst_file_fifo, &rst_file_chr, &rst_file_tty, &rst_file_inet, &rst_file_unix,
		&rst_file_eventfd, &rst_file_signalfd, &rst_file_timerfd, &rst_file_epoll,
		&rst_file_inotify, &rst_file_memfd, &rst_file_mqueue,
	};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		if (!all[i]->finish)
			continue;
		int r = all[i]->finish(c->files);
		if (r < 0)
			return r;
	}
	return 0;
}

void files_fini(struct rst_ctx *c)
{
	struct rst_files *fs = c->files;

	if (!fs)
		return;
	for (uint32_t i = 0; i <= c->ck->max_file_id; i++) {
		if (fs->desc[i] >= 0)
			close(fs->desc[i]);
		for (int s = 0; s < 2; s++)
			if (fs->mapfd[s][i] >= 0)
				close(fs->mapfd[s][i]);
	}
	for (size_t i = 0; i < fs->n_pipes; i++)
		for (int e = 0; e < 2; e++)
			if (fs->pipes[i].fds[e] >= 0)
				close(fs->pipes[i].fds[e]);
	for (size_t i = 0; i < fs->n_keep; i++)
		close(fs->keep[i]);
	rst_unix_fini(fs);
	for (size_t i = 0; i < fs->n_ghosts; i++)
		close(fs->ghosts[i].fd);
	rst_inet_fini(fs);
	free(fs->desc);
	free(fs->mapfd[0]);
	free(fs->mapfd[1]);
	free(fs->async_set);
	free(fs->pipes);
	free(fs->ttys);
	free(fs->keep);
	free(fs->ghosts);
	free(fs);
	c->files = NULL;
}
