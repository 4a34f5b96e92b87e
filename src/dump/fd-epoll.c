/* SPDX-License-Identifier: MIT */
/*
 * epoll: its registrations ("tfd:" lines of fdinfo: target fd number,
 * events, data).  A registration is made with an fd number but belongs to
 * the target's open file description: once the target fd is closed, or
 * replaced by another file, while a dup keeps the description open, the
 * number no longer names it, and the restore (epoll_ctl in the process,
 * with its fd numbers) could not make it again.  kcmp(KCMP_EPOLL_TFD) says
 * whether the file at that number is the registered one; else refused.
 * The registrations are those of the description: read once, in the
 * process that is dumped first with it (EpollFile.pid), whose numbers they
 * are checked against and restored with.  An epoll shared after a fork may
 * hold registrations whose number names the file only in another process
 * that holds the epoll (the other closed its copy, or registered its own
 * fd): that process is found and named in the registration
 * (EpollTarget.pid), and makes it at restore.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <inttypes.h>
#include <linux/kcmp.h>
#include <string.h>
#include <sys/syscall.h>

static bool epoll_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_ANON && x->pf->anon == PROC_ANON_EVENTPOLL;
}

/* Is the toff-th registration of t->fd in P's epoll epfd for the file at fd t->fd of process q? */
static bool tfd_is(pid_t q, pid_t p, int epfd, const struct proc_epoll_tfd *t, uint32_t toff)
{
	struct kcmp_epoll_slot slot = { .efd = (uint32_t)epfd, .tfd = (uint32_t)t->fd, .toff = toff };
	return syscall(SYS_kcmp, q, p, KCMP_EPOLL_TFD, t->fd, &slot) == 0;
}

/* Another process of the tree that holds the epoll and names the target with t->fd: its tree pid, or 0. */
static pid_t other_owner(struct dump_ctx *d, const struct dump_fd *x, const struct proc_epoll_tfd *t,
			 uint32_t toff)
{
	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dproc *q = d->procs[i];
		if (q == x->p || q->zombie || !tfd_is(q->pid, x->p->pid, x->pf->fd, t, toff))
			continue;
		/* it registers with its own fd of the epoll */
		_cleanup_(proc_fd_list_done) struct proc_fd_list fds = {};
		if (proc_read_fds(q->pid, &fds) < 0)
			continue;
		for (size_t k = 0; k < fds.n; k++)
			if (fds.fds[k].kind == PROC_FD_ANON && fds.fds[k].anon == PROC_ANON_EVENTPOLL &&
			    syscall(SYS_kcmp, q->pid, x->p->pid, KCMP_FILE, fds.fds[k].fd, x->pf->fd) == 0)
				return q->vpid;
	}
	return 0;
}

static int epoll_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	_cleanup_free_ struct proc_epoll_tfd *t = NULL;
	pid_t pid = x->p->pid;
	size_t n;
	int r = proc_fdinfo_epoll(x->fi, &t, &n);

	if (r < 0)
		return dm_fail(r, "process %d: fd %d (epoll): cannot parse its registrations in fdinfo",
			       pid, x->pf->fd);
	f->type = DM__FILE_TYPE__FILE_EPOLL;
	Dm__EpollFile *m = f->epoll = PB_NEW(Dm__EpollFile, dm__epoll_file__init);
	m->pid = x->p->vpid;
	m->targets = xcalloc(n ? n : 1, sizeof(*m->targets));
	for (size_t i = 0; i < n; i++) {
		/* the toff-th registration made through this number (fdinfo and kcmp share the order) */
		uint32_t toff = 0;
		pid_t other = 0;
		for (size_t k = 0; k < i; k++)
			toff += t[k].fd == t[i].fd;
		if (!tfd_is(pid, pid, x->pf->fd, &t[i], toff) && !(other = other_owner(d, x, &t[i], toff)))
			return dm_fail(-ENOTSUP, "process %d: fd %d (epoll): its registration of fd %d "
				       "(inode %" PRIu64 ") is for a file no longer open at that number: "
				       "it cannot be registered again", pid, x->pf->fd, t[i].fd, t[i].ino);
		Dm__EpollTarget *e = PB_NEW(Dm__EpollTarget, dm__epoll_target__init);
		if (other) {
			e->has_pid = true;
			e->pid = other;
		}
		e->fd = t[i].fd;
		e->events = t[i].events;
		e->data = t[i].data;
		m->targets[m->n_targets++] = e;
	}
	return 0;
}

const struct dump_fd_type dump_fd_epoll = { .name = "epoll", .match = epoll_match, .dump = epoll_dump };
