/* SPDX-License-Identifier: MIT */
/*
 * epoll: the instance is made here; its registrations are made again by
 * the process whose fd numbers they name (EpollFile.pid, or EpollTarget.pid
 * for one made with another process's number), with an injected
 * epoll_ctl(EPOLL_CTL_ADD) per target once all its fds are installed
 * (in_tracee), through its first fd of the epoll.  Readiness is the
 * kernel's to compute again: a level-triggered target that was ready is
 * ready again; an edge-triggered one that was ready reports once more.
 *
 * An EPOLLONESHOT registration that fired and was not re-armed has no
 * events left (not even EPOLLERR | EPOLLHUP, which epoll_ctl always adds).
 * Only firing disarms it, so it is registered first, alone, for every
 * event, and an epoll_wait() for one event takes its report; if its file
 * has nothing to report at that moment the restore fails, named.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <sys/epoll.h>
#include <unistd.h>
#include <sys/syscall.h>

static int epoll_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	int fd, r;

	(void)fs;
	if (!f->epoll)
		return dm_fail(-EBADMSG, "epoll without its registrations");
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "epoll_create1: %m");
	r = rst_set_status_flags(f, fd);
	if (r < 0) {
		close(fd);
		return dm_fail(r, "epoll: status flags");
	}
	*ret_fd = fd;
	return 0;
}

#define EP_PRIVATE (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
#define EP_ANY (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | \
		EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP)

static bool disarmed(const Dm__EpollTarget *t)
{
	return (t->events & EPOLLONESHOT) && !(t->events & ~(uint32_t)EP_PRIVATE);
}

/* The process (pid in the tree) whose fd number t is. */
static int32_t owner(const Dm__EpollFile *e, const Dm__EpollTarget *t)
{
	return t->has_pid ? t->pid : e->pid;
}

/* Register t (a fired one-shot) and have it fire: see the top. */
static int add_disarmed(struct rbatch *rb, const Dm__Process *p, int epfd, const Dm__EpollTarget *t)
{
	struct epoll_event ev = { .events = t->events | EP_ANY, .data.u64 = t->data };
	uint64_t rev, rout;
	unsigned idx;
	int r = rb_room(rb, 2, 2 * sizeof(ev) + 64);

	if (r >= 0)
		r = rb_stage(rb, &ev, sizeof(ev), &rev);
	if (r >= 0)
		r = rb_add(rb, "epoll_ctl(EPOLL_CTL_ADD) of a fired one-shot registration", SYS_epoll_ctl,
			   (uint64_t)epfd, EPOLL_CTL_ADD, (uint64_t)t->fd, rev, 0, 0);
	if (r >= 0)
		r = rb_stage(rb, &ev, sizeof(ev), &rout);
	if (r >= 0)
		r = rb_add(rb, "epoll_wait (disarming a one-shot registration)", SYS_epoll_wait,
			   (uint64_t)epfd, rout, 1, 0, 0, 0);
	idx = rb->b.n - 1;
	if (r >= 0)
		r = rb_run(rb);
	if (r < 0)
		return r;
	const struct epoll_event *got = batch_local(&rb->b, rout);
	if (batch_result(&rb->b, idx) != 1 || !got || got->data.u64 != t->data)
		return dm_fail(-ENOTSUP, "pid %d: epoll fd %d: the one-shot registration of fd %d had "
			       "fired and was not re-armed; it can be made so again only while fd %d "
			       "has an event to report, and it has none", p->pid, epfd, t->fd, t->fd);
	return 0;
}

static int epoll_in_tracee(struct rst_files *fs, struct rbatch *rb, const Dm__Process *p,
			   const Dm__Fd *fd, const Dm__File *f, int desc)
{
	const Dm__EpollFile *e = f->epoll;

	(void)fs;
	(void)desc;
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i]->file_id == f->id && p->fds[i] != fd)
			return 0; /* the first fd of the epoll does it (fds are sorted) */
		else if (p->fds[i] == fd)
			break;
	for (size_t i = 0; i < e->n_targets; i++) {
		if (!disarmed(e->targets[i]) || owner(e, e->targets[i]) != p->pid)
			continue;
		int r = add_disarmed(rb, p, fd->fd, e->targets[i]);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < e->n_targets; i++) {
		const Dm__EpollTarget *t = e->targets[i];
		if (disarmed(t) || owner(e, t) != p->pid)
			continue;
		struct epoll_event ev = { .events = t->events, .data.u64 = t->data };
		uint64_t rev;
		int r = rb_stage(rb, &ev, sizeof(ev), &rev);
		if (r >= 0)
			r = rb_add(rb, "epoll_ctl(EPOLL_CTL_ADD) of a registration of the checkpoint",
				   SYS_epoll_ctl, (uint64_t)fd->fd, EPOLL_CTL_ADD, (uint64_t)t->fd, rev, 0, 0);
		if (r < 0)
			return rst_wrap(r, "pid %d: epoll fd %d: registering fd %d", p->pid, fd->fd, t->fd);
	}
	return 0;
}

/* Does process pid of the tree hold file id? */
static bool holds(struct rst_ctx *c, int32_t pid, uint32_t id)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		const Dm__Process *p = c->procs[i].img;
		if (p->pid != pid || !rst_alive(&c->procs[i]))
			continue;
		for (size_t k = 0; k < p->n_fds; k++)
			if (p->fds[k]->file_id == id)
				return true;
	}
	return false;
}

/* Every registration was made: its process holds the epoll (an image could say otherwise). */
static int epoll_finish(struct rst_files *fs)
{
	const Dm__FileTable *ft = fs->c->ck->files;

	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		if (f->type != DM__FILE_TYPE__FILE_EPOLL || fs->desc[f->id] < 0)
			continue;
		for (size_t k = 0; k < f->epoll->n_targets; k++) {
			int32_t pid = owner(f->epoll, f->epoll->targets[k]);
			if (!holds(fs->c, pid, f->id))
				return dm_fail(-EBADMSG, "epoll (file %u): its registration of fd %d belongs "
					       "to process %d, which does not hold the epoll", f->id,
					       f->epoll->targets[k]->fd, pid);
		}
	}
	return 0;
}

const struct rst_file_type rst_file_epoll = { .name = "epoll", .open = epoll_open,
					      .in_tracee = epoll_in_tracee, .finish = epoll_finish };
