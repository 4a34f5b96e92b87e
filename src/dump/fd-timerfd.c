/* SPDX-License-Identifier: MIT */
/*
 * timerfd: clock, interval, time left to the next expiry (the kernel
 * prints it relative, whatever TFD_TIMER_ABSTIME said) and the expirations
 * not read yet, from fdinfo.  A periodic timer that expired and was not
 * read since shows no time left and one tick: the kernel counts the
 * intervals that went by (and re-arms it) only when it is read or asked
 * for its time.  timerfd_gettime() on a copy of the fd does that without
 * reading anything; fdinfo is read again afterwards.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <string.h>
#include <sys/timerfd.h>

static bool timerfd_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_ANON && x->pf->anon == PROC_ANON_TIMERFD;
}

static int timerfd_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
	_cleanup_close_ int fd = -1;
	struct proc_timerfd t;
	int r = proc_fdinfo_timerfd(x->fi, &t);

	(void)d;
	/* an expired periodic timer (it fires again while we look: a few tries) */
	for (int tries = 0; r >= 0 && tries < 8 && !t.value_sec && !t.value_nsec &&
			    (t.interval_sec || t.interval_nsec); tries++) {
		struct itimerspec its;
		if (fd < 0 && (r = dump_fd_dup(x, &fd)) < 0)
			return r;
		if (timerfd_gettime(fd, &its) < 0)
			return dm_fail(neg_errno(), "process %d: fd %d (timerfd): timerfd_gettime: %m",
				       x->p->pid, x->pf->fd);
		proc_fdinfo_done(&fi);
		r = proc_read_fdinfo(x->p->pid, x->pf->fd, &fi);
		if (r >= 0)
			r = proc_fdinfo_timerfd(&fi, &t);
	}
	if (r < 0)
		return dm_fail(r, "process %d: fd %d (timerfd): cannot read its timer in fdinfo: %s",
			       x->p->pid, x->pf->fd, strerror(-r));
	/* an interval shorter than our look: the next expiry is within one interval */
	if (!t.value_sec && !t.value_nsec) {
		t.value_sec = t.interval_sec;
		t.value_nsec = t.interval_nsec;
	}
	f->type = DM__FILE_TYPE__FILE_TIMERFD;
	Dm__TimerfdFile *m = f->timerfd = PB_NEW(Dm__TimerfdFile, dm__timerfd_file__init);
	m->clockid = t.clockid;
	m->value_ns = t.value_sec * 1000000000ULL + t.value_nsec;
	m->interval_ns = t.interval_sec * 1000000000ULL + t.interval_nsec;
	m->has_ticks = m->has_settime_flags = true;
	m->ticks = t.ticks;
	m->settime_flags = t.settime_flags;
	return 0;
}

const struct dump_fd_type dump_fd_timerfd = { .name = "timerfd", .match = timerfd_match,
					      .dump = timerfd_dump };
