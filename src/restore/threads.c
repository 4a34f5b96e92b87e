/* SPDX-License-Identifier: MIT */
/*
 * Threads.  Every thread but the main one is an injected
 * clone3(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|
 * CLONE_SYSVSEM, set_tid = [tid]) in the main thread, up to 32 in one batch
 * (their clone events give us their host tids, in order).  It starts stopped (auto-attached),
 * shares the blob, and gets its per-thread state in one batch of its own:
 * rseq, robust list, clear_child_tid, sigaltstack, name.
 *
 * The end (threads_finalize; the transport was closed with the credentials):
 * every thread but the main one gets its registers, xstate and signal mask; the main thread runs
 * munmap(blob) from the blob itself and is stopped at the syscall's exit
 * (PTRACE_SYSCALL), where its registers are set, so it never returns into
 * the unmapped code.  orig_rax = -1 everywhere: no syscall restart on the
 * way out (the dump already turned an interrupted syscall into a restart or
 * -EINTR).
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "base/log.h"
#include "compat.h"

#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define THREAD_FLAGS                                                                       \
	(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)

/* so many threads' clone3 calls in one batch (~110 bytes of staging each) */
#define CLONES_BATCH 32u

/*
 * Threads [first, first + n) of p: their clone3 calls in one batch of the
 * main thread, then each new thread adopted (it waits, stopped, from its
 * birth: auto-attached).  One batch a thread cost a round trip each.
 */
static int create_threads(struct rst_ctx *c, struct rst_proc *p, size_t first, size_t n)
{
	struct tracee *mt = rst_main(p);
	pid_t host[CLONES_BATCH];
	struct rbatch rb;
	unsigned failed = 0;
	int r = 0;

	rb_init(&rb, c, mt);
	rb.hold = true; /* CLONES_BATCH of them fit: never run half of them */
	for (size_t k = 0; k < n && r >= 0; k++) {
		int32_t tid = p->img->threads[first + k]->tid;
		uint64_t rtid, rca;
		r = rb_stage(&rb, &tid, sizeof(tid), &rtid);
		if (r < 0)
			break;
		struct clone_args ca = { .flags = THREAD_FLAGS, .set_tid = rtid, .set_tid_size = 1 };
		r = rb_stage(&rb, &ca, sizeof(ca), &rca);
		if (r >= 0)
			r = rb_add(&rb, "clone3 (thread)", SYS_clone3, rca, sizeof(ca), 0, 0, 0, 0);
	}
	if (r < 0)
		return r;
	mt->last_clone = 0;
	mt->clones = host;
	mt->clones_max = n;
	mt->n_clones = 0;
	c->round_trips++;
	failed = UINT_MAX;
	r = batch_run(&rb.b, &failed);
	size_t made = mt->n_clones;
	mt->clones = NULL;
	mt->clones_max = mt->n_clones = 0;
	/* the results were read back: all, or those before the failing call;
	 * none if the batch itself failed (its trap never came) */
	size_t known = r >= 0 ? made : failed != UINT_MAX ? MIN(made, (size_t)failed) : 0;
	char msg[DM_ERRMSG_MAX] = "";
	if (r < 0)
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
	/* every thread made is adopted, whatever failed: the cleanup kills
	 * and reaps the seized ones with the process */
	for (size_t k = 0; k < made; k++) {
		const Dm__Thread *ti = p->img->threads[first + k];
		p->threads[first + k].img = ti;
		p->n_threads = first + k + 1;
		int a = stub_adopt(c, p, host[k], &p->threads[first + k]);
		if (a >= 0 && k < known && batch_result(&rb.b, (unsigned)k) != ti->tid)
			a = dm_fail(-EPROTO, "pid %d: thread %d came out as %ld (host %d)", p->img->pid, ti->tid,
				    batch_result(&rb.b, (unsigned)k), host[k]);
		if (a < 0 && r >= 0) {
			r = a;
			failed = UINT_MAX;
			snprintf(msg, sizeof(msg), "%s", dm_last_error());
		}
	}
	if (r >= 0 && made != n)
		return dm_fail(-EPROTO, "pid %d: %zu threads made of %zu", p->img->pid, made, n);
	if (r >= 0)
		return 0;
	dm_error_set_message(msg);
	if (failed == UINT_MAX)
		return r;
	if (r == -EEXIST)
		return dm_fail(r, "tid %d of pid %d is in use", p->img->threads[first + failed]->tid, p->img->pid);
	return rst_wrap(r, "pid %d: thread %d", p->img->pid, p->img->threads[first + failed]->tid);
}

int threads_create(struct rst_ctx *c, struct rst_proc *p)
{
	for (size_t i = 1; i < p->img->n_threads;) {
		size_t n = MIN(p->img->n_threads - i, (size_t)CLONES_BATCH);
		int r = create_threads(c, p, i, n);
		if (r < 0)
			return r;
		i += n;
	}
	c->st.threads += p->img->n_threads;
	return 0;
}

/* rseq, robust list, clear_child_tid, sigaltstack and name of one thread, into its batch */
static int thread_state_add(struct rst_proc *p, struct rst_thread *th, struct rbatch *rb)
{
	const Dm__Thread *ti = th->img;
	int r = 0;

	if (ti->has_rseq_ptr && ti->rseq_ptr)
		r = rb_add(rb, "rseq", SYS_rseq, ti->rseq_ptr, ti->has_rseq_size ? ti->rseq_size : 32,
			   0, ti->has_rseq_sig ? ti->rseq_sig : 0, 0, 0);
	if (r >= 0 && ti->has_robust_head && ti->robust_head)
		r = rb_add(rb, "set_robust_list", SYS_set_robust_list, ti->robust_head,
			   ti->has_robust_len ? ti->robust_len : 24, 0, 0, 0, 0);
	if (r >= 0)
		r = rb_add(rb, "set_tid_address", SYS_set_tid_address,
			   ti->has_clear_tid ? ti->clear_tid : 0, 0, 0, 0, 0, 0);
	if (r >= 0 && ti->has_altstack_sp && ti->altstack_sp &&
	    !(ti->has_altstack_flags && (ti->altstack_flags & SS_DISABLE))) {
		stack_t ss = { .ss_sp = (void *)(uintptr_t)ti->altstack_sp,
			       .ss_size = ti->has_altstack_size ? ti->altstack_size : 0,
			       .ss_flags = ti->has_altstack_flags ? (ti->altstack_flags & SS_AUTODISARM) : 0 };
		uint64_t rss;
		r = rb_stage(rb, &ss, sizeof(ss), &rss);
		if (r >= 0)
			r = rb_add(rb, "sigaltstack", SYS_sigaltstack, rss, 0, 0, 0, 0, 0);
	}
	/* before the scheduling policy: an RT thread ignores PR_SET_TIMERSLACK */
	if (r >= 0 && ti->has_timer_slack_ns && ti->timer_slack_ns)
		r = rb_add(rb, "prctl(PR_SET_TIMERSLACK)", SYS_prctl, PR_SET_TIMERSLACK,
			   ti->timer_slack_ns, 0, 0, 0, 0);
	const char *comm = ti->comm ? ti->comm : (th == &p->threads[0] ? p->img->comm : NULL);
	if (r >= 0 && comm) {
		char name[16] = { 0 };
		uint64_t rn;
		strncpy(name, comm, sizeof(name) - 1);
		r = rb_stage(rb, name, sizeof(name), &rn);
		if (r >= 0)
			r = rb_add(rb, "prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, rn, 0, 0, 0, 0);
	}
	return r;
}

static int state_build(struct rst_ctx *c, struct rst_proc *p, size_t i, struct rbatch *rb, void *arg)
{
	(void)c;
	(void)arg;
	return thread_state_add(p, &p->threads[i], rb) ?: signals_pending_add(p, &p->threads[i], rb);
}

/*
 * The state of a process that its own threads must set, in one batch per
 * thread: the main thread's carries the process-wide part too (signal
 * actions, timers, umask, personality, ...), so that a single-threaded
 * process needs one round trip for all of it.  The main thread's goes
 * first (a signal queued to a thread meets the actions it sets), then the
 * others' all at once (rb_run_threads).
 */
int threads_state(struct rst_ctx *c, struct rst_proc *p)
{
	struct rbatch *rb = xmalloc(sizeof(*rb));
	struct rst_thread *th = &p->threads[0];
	size_t failed = 0;
	int r;

	rb_init(rb, c, &th->t);
	r = thread_state_add(p, th, rb);
	if (r >= 0)
		r = signals_add(c, p, rb) ?: ident_add(c, p, rb);
	if (r >= 0)
		r = signals_pending_add(p, th, rb);
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: thread %d", p->img->pid, th->img->tid);
	r = rb_run_threads(c, p, 1, p->n_threads, state_build, NULL, &failed);
	if (r < 0)
		return rst_wrap(r, "pid %d: thread %d", p->img->pid, p->threads[failed].img->tid);
	return 0;
}

/* Registers, xstate and signal mask of the image, on a stopped thread. */
static int final_regs(struct rst_proc *p, struct rst_thread *th)
{
	const Dm__Thread *ti = th->img;
	struct user_regs_struct regs;
	uint64_t mask = ti->sigmask & ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)));
	int r;

	memcpy(&regs, ti->regs.data, sizeof(regs));
	regs_fixup_restart(&regs, false);
	r = ptrace_setregs(th->t.tid, &regs);
	if (r < 0)
		return dm_fail(r, "pid %d: thread %d: registers refused: %s", p->img->pid, ti->tid,
			       strerror(-r));
	if (ti->has_xstate) {
		r = ptrace_setxstate(th->t.tid, ti->xstate.data, ti->xstate.len);
		if (r < 0)
			return dm_fail(r, "pid %d: thread %d: xstate (%zu bytes) refused: %s",
				       p->img->pid, ti->tid, ti->xstate.len, strerror(-r));
	}
	if (ptrace(PTRACE_SETSIGMASK, th->t.tid, sizeof(mask), &mask) < 0)
		return dm_fail(neg_errno(), "pid %d: thread %d: PTRACE_SETSIGMASK: %m", p->img->pid,
			       ti->tid);
	return 0;
}

#define SCHED_FLAGS_KEPT 0x7 /* RESET_ON_FORK, RECLAIM, DL_OVERRUN */

/* "0-3,6" (cut short with "..." when it does not fit) */
static const char *cpu_list(const cpu_set_t *m, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = 0;
	for (int k = 0; k < CPU_SETSIZE && o + 16 < len; k++) {
		if (!CPU_ISSET(k, m))
			continue;
		int e = k;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, m))
			e++;
		o += (size_t)snprintf(buf + o, len - o, o ? ",%d" : "%d", k);
		if (e > k)
			o += (size_t)snprintf(buf + o, len - o, "-%d", e);
		k = e;
	}
	if (o + 16 >= len)
		snprintf(buf + MIN(o, len - 4), 4, "...");
	return buf[0] ? buf : "none";
}

static int set_sched(const struct rst_proc *p, const struct rst_thread *th, struct dm_sched_attr *a)
{
	if (syscall(SYS_sched_setattr, th->t.tid, a, 0) == 0)
		return 0;
	return dm_fail(neg_errno(), "pid %d: thread %d: scheduling policy %u priority %u nice %d "
		       "cannot be set here: %m", p->img->pid, th->img->tid, a->sched_policy,
		       a->sched_priority, a->sched_nice);
}

/*
 * Scheduling policy, priority and nice value of every thread, set by us
 * (CAP_SYS_NICE) once nothing more runs in the tree before it resumes: an RT
 * policy would otherwise apply to our injected work.  An RT or deadline
 * thread keeps a nice value too (it shows again after a switch back to
 * SCHED_NORMAL): that is set first, under SCHED_OTHER.
 */
/*
 * CPU affinity: the dumped mask; a thread that had every CPU online at the
 * dump gets every CPU here.  A mask this host cannot give as it was (a CPU
 * it lacks, a cpuset that leaves some out) fails, named.
 */
static int set_affinity(const struct rst_proc *p, const struct rst_thread *th)
{
	const Dm__Thread *ti = th->img;
	cpu_set_t want, got;
	char w[64], g[64];

	if (!ti->has_cpus_allowed && !(ti->has_cpus_all && ti->cpus_all))
		return 0;
	CPU_ZERO(&want);
	if (ti->has_cpus_all && ti->cpus_all) {
		for (int k = 0; k < CPU_SETSIZE; k++)
			CPU_SET(k, &want);
		if (sched_setaffinity(th->t.tid, sizeof(want), &want) < 0)
			return dm_fail(neg_errno(), "pid %d: thread %d: every CPU: sched_setaffinity: %m",
				       p->img->pid, ti->tid);
		return 0;
	}
	memcpy(&want, ti->cpus_allowed.data, MIN(ti->cpus_allowed.len, sizeof(want)));
	int e = sched_setaffinity(th->t.tid, sizeof(want), &want) < 0 ? neg_errno() : 0;
	if (sched_getaffinity(th->t.tid, sizeof(got), &got) < 0)
		CPU_ZERO(&got);
	if (e < 0 || !CPU_EQUAL(&want, &got))
		return dm_fail(e < 0 ? e : -EINVAL, "pid %d: thread %d: its CPU affinity %s cannot be given "
			       "back on this host (it gives %s)", p->img->pid, ti->tid,
			       cpu_list(&want, w, sizeof(w)), cpu_list(&got, g, sizeof(g)));
	return 0;
}

int threads_affinity(struct rst_ctx *c, struct rst_proc *p)
{
	(void)c;
	for (size_t i = 0; i < p->n_threads; i++) {
		int k = set_affinity(p, &p->threads[i]);
		if (k < 0)
			return k;
	}
	return 0;
}

int threads_sched(struct rst_ctx *c, struct rst_proc *p)
{
	(void)c;
	for (size_t i = 0; i < p->n_threads; i++) {
		const Dm__Thread *ti = p->threads[i].img;
		if (!ti->has_sched_policy)
			continue;
		struct dm_sched_attr a = { .size = sizeof(a), .sched_policy = SCHED_NORMAL,
					   .sched_nice = ti->sched_nice };
		bool fair = ti->sched_policy == SCHED_NORMAL || ti->sched_policy == SCHED_BATCH;
		int r;
		if (!fair) {
			r = set_sched(p, &p->threads[i], &a);
			if (r < 0)
				return r;
		}
		a.sched_policy = ti->sched_policy;
		a.sched_flags = ti->sched_flags & SCHED_FLAGS_KEPT;
		a.sched_priority = ti->has_sched_priority ? ti->sched_priority : 0;
		a.sched_runtime = ti->sched_runtime;
		a.sched_deadline = ti->sched_deadline;
		a.sched_period = ti->sched_period;
		r = set_sched(p, &p->threads[i], &a);
		if (r < 0)
			return r;
	}
	return 0;
}

int threads_finalize(struct rst_ctx *c, struct rst_proc *p)
{
	struct tracee *mt = rst_main(p);
	long r;

	for (size_t i = 1; i < p->n_threads; i++) {
		r = final_regs(p, &p->threads[i]);
		if (r < 0)
			return (int)r;
	}
	c->round_trips++;
	r = inject_syscall_at(mt->tid, mt->code, SYS_munmap, c->blob, INJ_BLOB_SIZE, 0, 0, 0, 0);
	if (r != 0)
		return dm_fail(r < 0 ? (int)r : -EPROTO, "pid %d: removing the blob: %s", p->img->pid,
			       r < 0 ? strerror((int)-r) : "unexpected result");
	mt->n_injected++;
	return final_regs(p, &p->threads[0]);
}
