/* SPDX-License-Identifier: MIT */
/*
 * Signal state of a process, in its main thread, while every signal is
 * blocked (the stubs run with a full mask until the final registers):
 *
 *   rt_sigaction for every non-default action (with its saved restorer);
 *   setitimer for the armed itimers;
 *   POSIX timers with their old ids: prctl(PR_TIMER_CREATE_RESTORE_IDS)
 *   makes timer_create() take the id from its third argument (Linux 6.17),
 *   then timer_settime (relative: the time left at dump);
 *   pending signals last: the SIGCHLD that our zombies sent is taken back
 *   first (before the actions), then the image's queue, process-wide (rt_sigqueueinfo) and per
 *   thread (rt_tgsigqueueinfo), with their siginfo.  Queueing a siginfo with
 *   si_code >= 0 (or SI_TKILL) is allowed only to the caller itself: the main
 *   thread queues the process's, each thread its own.
 *
 * ITIMER_VIRTUAL/PROF: setitimer() adds one tick to the value (set_cpu_itimer),
 * which getitimer() then shows: the tick, measured once, is taken off.
 *
 * POSIX timers are listed newest first by /proc/PID/timers, which is the
 * image's order: they are created oldest first, so the list comes out the same.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "arch/x86_64/compat.h"
#include "base/log.h"

#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

struct ksigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};
_Static_assert(sizeof(struct ksigevent) == 64, "kernel sigevent is 64 bytes");

static struct timespec ns_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ULL),
				  .tv_nsec = (long)(ns % 1000000000ULL) };
}

static struct timeval us_tv(uint64_t us)
{
	return (struct timeval){ .tv_sec = (time_t)(us / 1000000ULL),
				 .tv_usec = (suseconds_t)(us % 1000000ULL) };
}

/*
 * Every action: the image's, and SIG_DFL for the signals it does not name.
 * The stub inherits the restorer's dispositions (SIG_IGN survives exec: a
 * daemon or shell that ignores SIGPIPE would pass that on), so "default"
 * must be set, not assumed.
 */
static int add_sigactions(struct rbatch *rb, const Dm__Process *p)
{
	const struct ksigaction dfl = { .handler = (uint64_t)(uintptr_t)SIG_DFL };
	int r;

	for (unsigned sig = 1; sig <= 64; sig++) {
		const Dm__Sigaction *sa = NULL;
		uint64_t rk;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		for (size_t i = 0; i < p->n_sigactions && !sa; i++)
			if (p->sigactions[i]->sig == sig)
				sa = p->sigactions[i];
		/* staged per entry: an entry and its data always run together */
		if (sa) {
			struct ksigaction k = { sa->handler, sa->flags, sa->restorer, sa->mask };
			r = rb_stage(rb, &k, sizeof(k), &rk);
		} else {
			r = rb_stage(rb, &dfl, sizeof(dfl), &rk);
		}
		if (r >= 0)
			r = rb_add(rb, "rt_sigaction", SYS_rt_sigaction, sig, rk, 0, 8, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The tick setitimer() adds to a CPU-time itimer, in us (0 if none). */
static uint64_t cpu_itimer_tick_us(void)
{
	static uint64_t tick = (uint64_t)-1;
	struct itimerval one = { { 0, 0 }, { 1000, 0 } }, old, got, zero = { 0 };

	if (tick != (uint64_t)-1)
		return tick;
	tick = 0;
	if (setitimer(ITIMER_VIRTUAL, &one, &old) < 0)
		return tick;
	if (getitimer(ITIMER_VIRTUAL, &got) == 0) {
		int64_t extra = ((int64_t)got.it_value.tv_sec - 1000) * 1000000 + got.it_value.tv_usec;
		if (extra > 0 && extra <= 20000)
			tick = (uint64_t)extra;
	}
	setitimer(ITIMER_VIRTUAL, old.it_value.tv_sec || old.it_value.tv_usec ? &old : &zero, NULL);
	/* CPU time we used between the two calls makes it a little less: a whole number of HZ */
	static const uint64_t hz_ticks[] = { 1000, 3334, 4000, 10000 };
	for (size_t i = 0; i < ARRAY_SIZE(hz_ticks); i++)
		if (tick && tick <= hz_ticks[i] && tick + 500 >= hz_ticks[i])
			tick = hz_ticks[i] == 3334 ? 3333 : hz_ticks[i];
	return tick;
}

static int add_itimers(struct rbatch *rb, const Dm__Process *p)
{
	for (size_t i = 0; i < p->n_itimers; i++) {
		const Dm__Itimer *it = p->itimers[i];
		uint64_t value = it->value_us;
		uint64_t rv;
		if (it->which > ITIMER_PROF)
			return dm_fail(-EBADMSG, "pid %d: itimer %u", p->pid, it->which);
		if (!value)
			continue;
		if (it->which != ITIMER_REAL) {
			uint64_t tick = cpu_itimer_tick_us();
			if (value > tick)
				value -= tick;
		}
		struct itimerval v = { us_tv(it->interval_us), us_tv(value) };
		int r = rb_stage(rb, &v, sizeof(v), &rv);
		if (r >= 0)
			r = rb_add(rb, "setitimer", SYS_setitimer, it->which, rv, 0, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_posix_timers(struct rbatch *rb, const Dm__Process *p)
{
	int r;

	if (!p->n_posix_timers)
		return 0;
	r = rb_add(rb, "prctl(PR_TIMER_CREATE_RESTORE_IDS)", SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS,
		   PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0, 0);
	for (size_t i = p->n_posix_timers; i-- > 0 && r >= 0;) {
		const Dm__PosixTimer *pt = p->posix_timers[i];
		struct ksigevent ev = { .value = pt->sigval, .signo = pt->signo, .notify = pt->notify,
					.tid = pt->has_notify_tid ? pt->notify_tid : 0 };
		int32_t id = pt->id;
		struct itimerspec its = { ns_ts(pt->interval_ns), ns_ts(pt->value_ns) };
		uint64_t rev, rid, rits;

		r = rb_room(rb, 2, sizeof(ev) + sizeof(id) + sizeof(its));
		if (r < 0)
			break;
		rev = rb_put(rb, &ev, sizeof(ev));
		rid = rb_put(rb, &id, sizeof(id));
		rits = rb_put(rb, &its, sizeof(its));
		r = rb_add(rb, "timer_create", SYS_timer_create, (uint64_t)pt->clock_id, rev, rid, 0,
			   0, 0);
		if (r >= 0 && pt->value_ns)
			r = rb_add(rb, "timer_settime", SYS_timer_settime, (uint64_t)pt->id, 0, rits, 0,
				   0, 0);
	}
	if (r >= 0)
		r = rb_add(rb, "prctl(PR_TIMER_CREATE_RESTORE_IDS)", SYS_prctl,
			   PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0, 0);
	return r;
}

/*
 * The SIGCHLD that our zombies sent: gone, unless the image had it pending.
 * Setting SIG_IGN discards a pending signal, blocked or not, and never fails
 * (a batch stops at the first failure, so no rt_sigtimedwait here); the
 * action itself comes back right after, with the image's actions.
 */
static int add_sigchld_drain(struct rbatch *rb, const Dm__Process *p)
{
	struct ksigaction ign = { .handler = (uint64_t)(uintptr_t)SIG_IGN };
	struct ksigaction dfl = { .handler = (uint64_t)(uintptr_t)SIG_DFL };
	uint64_t ri, rd;
	int r;

	r = rb_room(rb, 2, 2 * sizeof(ign));
	if (r < 0)
		return r;
	ri = rb_put(rb, &ign, sizeof(ign));
	rd = rb_put(rb, &dfl, sizeof(dfl));
	r = rb_add(rb, "rt_sigaction(SIGCHLD, SIG_IGN)", SYS_rt_sigaction, SIGCHLD, ri, 0, 8, 0, 0);
	if (r >= 0)
		r = rb_add(rb, "rt_sigaction(SIGCHLD, SIG_DFL)", SYS_rt_sigaction, SIGCHLD, rd, 0, 8, 0,
			   0);
	(void)p;
	return r;
}

int signals_add(struct rst_ctx *c, struct rst_proc *p, struct rbatch *rb)
{
	int r = 0;

	(void)c;
	if (p->had_zombie_child)
		r = add_sigchld_drain(rb, p->img);
	if (r >= 0)
		r = add_sigactions(rb, p->img);
	if (r >= 0)
		r = add_itimers(rb, p->img);
	if (r >= 0)
		r = add_posix_timers(rb, p->img);
	return r;
}

static int queue_one(struct rbatch *rb, const Dm__Process *p, int32_t tid,
		     const ProtobufCBinaryData *si)
{
	int32_t sig;
	uint64_t rsi;
	int r;

	memcpy(&sig, si->data, sizeof(sig));
	if (sig <= 0 || sig > 64)
		return dm_fail(-EBADMSG, "pid %d: pending signal %d", p->pid, sig);
	r = rb_stage(rb, si->data, si->len, &rsi);
	if (r < 0)
		return r;
	if (tid)
		return rb_add(rb, "rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, (uint64_t)p->pid,
			      (uint64_t)tid, (uint64_t)sig, rsi, 0, 0);
	return rb_add(rb, "rt_sigqueueinfo", SYS_rt_sigqueueinfo, (uint64_t)p->pid, (uint64_t)sig,
		      rsi, 0, 0, 0);
}

/* Pending signals of one thread, in its own batch (the main thread: the process's too). */
int signals_pending_add(struct rst_proc *p, struct rst_thread *th, struct rbatch *rb)
{
	const Dm__Process *ip = p->img;
	int r = 0;

	if (th == &p->threads[0])
		for (size_t i = 0; i < ip->n_shared_pending && r >= 0; i++)
			r = queue_one(rb, ip, 0, &ip->shared_pending[i]);
	for (size_t i = 0; i < th->img->n_pending && r >= 0; i++)
		r = queue_one(rb, ip, th->img->tid, &th->img->pending[i]);
	return r;
}
