/* SPDX-License-Identifier: MIT */
/*
 * The restore flow (docs/design.md, "Engine: restore").
 *
 *   load + validate the image            nothing is created before it is known good
 *   root stub                            stub.c
 *   the other processes, sessions,       tree.c
 *   groups, zombies
 *   per process, in phases:
 *     address space + pages              mm.c, pages.c
 *     fds, cwd, root                     files.c, files-*.c
 *     threads + per-thread state,        threads.c, signals.c, creds.c
 *     signals, timers, identity,         (one batch per thread)
 *     pending signals
 *     lazy memory                        lazy.c
 *     rlimits, credentials + seccomp     creds.c
 *   resume: transport closed, final registers, blob unmapped, detach
 *
 * Every phase runs over all processes before the next one: a process's files
 * may be another's (shared descriptions), its lazy areas must be registered
 * after its own fds, and credentials drop only when nothing privileged is
 * left to do.  Any failure kills every process created so far.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "restore/files.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/testpoint.h"
#include "net/inet.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int rst_wrap(int err, const char *fmt, ...)
{
	char prev[1024], head[512];
	va_list ap;

	snprintf(prev, sizeof(prev), "%s", dm_last_error());
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (prev[0])
		return dm_error(err, "%s: %s", head, prev);
	return dm_error(err, "%s: %s", head, strerror(err < 0 ? -err : err));
}

struct rst_proc *rst_find(struct rst_ctx *c, pid_t pid)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (c->procs[i].img->pid == pid)
			return &c->procs[i];
	return NULL;
}

static int read_caps(struct rst_ctx *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return dm_fail(neg_errno(), "capget: %m");
	c->cap_all = d[0].permitted | (uint64_t)d[1].permitted << 32;
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			c->cap_bnd |= 1ULL << cap;
	return 0;
}

static int prepare(struct rst_ctx *c)
{
	const Dm__Inventory *inv = c->ck->inv;
	int maxfd = 2, low = 0, r;
	pid_t low_pid = 0;
	bool low_maps = false;

	c->nprocs = c->ck->nprocs;
	c->procs = xcalloc(c->nprocs, sizeof(*c->procs));
	for (size_t i = 0; i < c->nprocs; i++) {
		c->procs[i].img = c->ck->procs[i];
		c->procs[i].pidfd = -1;
		const Dm__Process *p = c->procs[i].img;
		if (p->n_fds)
			maxfd = MAX(maxfd, p->fds[p->n_fds - 1]->fd);
		/* fds received over the transport land at 0..n-1: the fds of mappings
		 * (one per file and access mode, shared memory object, the exe), or
		 * the fds plus cwd and root */
		size_t maps = mm_map_fds(p);
		size_t want = MAX(maps, p->n_fds + 2);
		int need = (int)MIN(want, (size_t)INT_MAX - 1);
		if (need > low) {
			low = need;
			low_pid = p->pid;
			low_maps = maps > p->n_fds + 2;
		}
		for (size_t k = 0; k < p->n_pagemap && !c->lazy; k++)
			if (c->o->lazy && p->pagemap[k]->has_lazy && p->pagemap[k]->lazy)
				c->lazy = true;
	}
	c->own_pidns = inv->own_pidns;
	if (c->own_pidns && inv->root_pid != 1)
		return dm_fail(-EBADMSG, "inventory: own pid namespace but root pid %d", inv->root_pid);
	c->tfd = MAX(maxfd + 1, low);

	/* the stub inherits our fd limit: the transport must fit under it */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return dm_fail(neg_errno(), "getrlimit: %m");
	if ((rlim_t)c->tfd >= rl.rlim_max) {
		if (c->tfd == maxfd + 1)
			return dm_fail(-EMFILE, "fd %d of the image is above our RLIMIT_NOFILE (%llu)",
				       maxfd, (unsigned long long)rl.rlim_max);
		return dm_fail(-EMFILE, "process %d needs %d fds at once for its %s, our RLIMIT_NOFILE "
			       "is %llu", low_pid, low, low_maps ? "mapped files" : "fds, cwd and root",
			       (unsigned long long)rl.rlim_max);
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	r = read_caps(c);
	if (r < 0)
		return r;
	r = tree_build(c);
	if (r < 0)
		return r;
	r = stub_pick_hole(c);
	if (r < 0)
		return r;
	return files_init(c);
}

/* ------------------------------------------------------------ the end */

/* Kill every process we created and reap what we can: nothing half-restored stays. */
static void kill_all(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (c->procs[i].host_pid > 0)
			kill(c->procs[i].host_pid, SIGKILL);
	for (size_t i = 0; i < c->n_helpers; i++)
		if (c->helpers[i]->host_pid > 0 && c->helpers[i]->state == RST_SEIZED)
			kill(c->helpers[i]->host_pid, SIGKILL);
	uint64_t deadline = clock_ns() + 2000000000ULL;
	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		for (size_t k = p->n_threads; k-- > 0;) {
			pid_t tid = p->threads[k].seized ? p->threads[k].t.tid : 0;
			while (tid > 0) {
				int st;
				pid_t w = waitpid(tid, &st, __WALL | WNOHANG);
				if (w < 0 || (w == tid && (WIFEXITED(st) || WIFSIGNALED(st))))
					break;
				if (clock_ns() > deadline)
					break;
				if (w == 0)
					usleep(1000);
			}
		}
	}
	/* the root is our own child */
	if (c->procs && c->procs[0].host_pid > 0)
		waitpid(c->procs[0].host_pid, NULL, __WALL | WNOHANG);
}

/*
 * The restore is a chain of round trips between us and the tree (ptrace
 * stops, injected syscalls, the root stub's first message).  A task that
 * wakes on another, idle vCPU waits for that vCPU to wake up: on a VM that
 * was 0.1-2 ms per wakeup, the most variable part of the downtime.  So the
 * restoring thread stays on its CPU meanwhile, and the tree it makes
 * inherits that, until just before it runs: then every thread gets the
 * mask we had (a best effort: a cpuset may refuse it, which the kernel then
 * fixes itself).  The pin: cpu_pin_here().
 */
static void unpin_tree(struct rst_ctx *c, const cpu_set_t *orig)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		const struct rst_proc *p = &c->procs[i];
		if (p->state != RST_SEIZED)
			continue;
		for (size_t k = 0; k < p->n_threads; k++)
			if (p->threads[k].seized)
				sched_setaffinity(p->threads[k].t.tid, sizeof(*orig), orig);
	}
}

/* Times the thread was switched in (/proc/PID/task/TID/schedstat, 3rd field). */

/*
 * The detach wakes every thread with TIF_SIGPENDING set: until a thread has
 * run once, the kernel gives a process-directed signal to another thread
 * (wants_signal()), where the original would have taken it itself, e.g. a
 * main thread back in pause().  So restore returns only once every thread
 * has been switched in since the detach (its schedstat count moved) and one
 * that was blocked in a syscall sleeps again (state S or D), within a bound;
 * past it the restore goes on, saying which thread it waited for.
 */
#define SETTLE_TIMEOUT_NS (5 * 1000000000ULL)

static void wait_settled(struct rst_ctx *c)
{
	uint64_t deadline = clock_ns() + SETTLE_TIMEOUT_NS;

	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		if (p->state != RST_DETACHED || p->zombie ||
		    p->img->state == DM__PROC_STATE__PROC_STOPPED)
			continue;
		for (size_t k = 0; k < p->n_threads; k++) {
			struct rst_thread *th = &p->threads[k];
			bool blocked = th->img->has_in_syscall && th->img->in_syscall;
			for (;;) {
				uint64_t now_count;
				char state = 0;
				if (proc_read_runcount(p->host_pid, th->t.tid, &now_count, &state) < 0)
					break;	/* gone, or no schedstat here */
				if (now_count > th->pcount &&
				    (!blocked || state == 'S' || state == 'D' || now_count > th->pcount + 1))
					break;
				if (clock_ns() > deadline) {
					pr_warn("pid %d: thread %d has not run since the restore (state %c); "
						"not waiting longer", p->img->pid, th->img->tid, state);
					return;
				}
				usleep(200);
			}
		}
	}
}

#define DETACH_NICE (-10)

/*
 * Every thread let go.  Each one detached runs at once, and those that woke
 * on our CPU (the tree's until now) preempted the rest of the loop: a
 * ten-thread memcached took 0.3-1.1 ms from the first detach to the last.
 * So the run counts (wait_settled()) are read first, for every thread,
 * and the detaches follow in a tight loop at a higher priority (nice -10,
 * where allowed), given back after it.
 */
static int detach_all(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		if (p->state != RST_SEIZED)
			continue;
		for (size_t k = 0; k < p->n_threads; k++)
			if (proc_read_runcount(p->host_pid, p->threads[k].t.tid, &p->threads[k].pcount, NULL) < 0)
				p->threads[k].pcount = 0;
	}
	int nice_was = thread_nice(DETACH_NICE);
	int r = 0;
	for (size_t i = c->nprocs; i-- > 0 && r >= 0;) {
		struct rst_proc *p = &c->procs[i];
		if (p->state != RST_SEIZED)
			continue;
		/* the stop signal is what the parent's wait reports (SIGTSTP, ...) */
		int stop = p->img->has_stop_signal && p->img->stop_signal > 0 ? p->img->stop_signal :
										 SIGSTOP;
		if (p->img->state == DM__PROC_STATE__PROC_STOPPED && kill(p->host_pid, stop) < 0) {
			r = dm_fail(neg_errno(), "pid %d: %s: %m", p->img->pid, strsignal(stop));
			break;
		}
		for (size_t k = p->n_threads; k-- > 0;) {
			if (ptrace(PTRACE_DETACH, p->threads[k].t.tid, 0, 0) < 0) {
				r = dm_fail(neg_errno(), "pid %d: thread %d: PTRACE_DETACH: %m",
					    p->img->pid, p->threads[k].t.tid);
				break;
			}
			p->threads[k].seized = false;
		}
		if (r >= 0)
			p->state = RST_DETACHED;
	}
	thread_nice(nice_was);
	return r;
}

static void ctx_free(struct rst_ctx *c)
{
	stub_drop_unused(c);
	files_fini(c);
	shmem_fini(c);
	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		if (p->n_threads && p->threads[0].t.memfd >= 0)
			close(p->threads[0].t.memfd);
		if (p->pidfd >= 0)
			close(p->pidfd);
		free(p->threads);
		free(p->children);
	}
	free(c->procs);
	for (size_t i = 0; i < c->n_helpers; i++) {
		struct rst_proc *h = c->helpers[i];
		if (h->threads && h->threads[0].t.memfd >= 0)
			close(h->threads[0].t.memfd);
		if (h->pidfd >= 0)
			close(h->pidfd);
		free(h->threads);
		free((void *)h->img);
		free(h);
	}
	free(c->helpers);
	pages_fini(c);
	if (c->sock >= 0)
		close(c->sock);
	checkpoint_free(c->ck);
	image_close(c->img);
	free(c);
}

/* ------------------------------------------------------------ phases */

typedef int (*phase_fn)(struct rst_ctx *c, struct rst_proc *p);

static int for_alive(struct rst_ctx *c, phase_fn fn)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		if (!rst_alive(&c->procs[i]))
			continue;
		int r = fn(c, &c->procs[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* threads, and everything the threads set themselves: signals, timers, identity */
static int phase_threads(struct rst_ctx *c, struct rst_proc *p)
{
	return membarrier_restore(c, p) ?: threads_create(c, p) ?: threads_state(c, p) ?: loginuid_restore(c, p);
}

static double lap(uint64_t *t)
{
	uint64_t now = clock_ns();
	double ms = ns_to_ms(*t, now);
	*t = now;
	return ms;
}

static void count_injected(struct rst_ctx *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->nprocs; i++)
		for (size_t k = 0; k < c->procs[i].n_threads; k++)
			n += c->procs[i].threads[k].t.n_injected;
	c->st.injected = n;
	c->st.round_trips = c->round_trips;
	c->st.processes = c->nprocs;
}

/*
 * The files, made in the tree's network namespace (a container's new one):
 * a socket belongs to the namespace it was made in, for good (a unix socket
 * made in ours would be missing from the container's sock_diag at its next
 * checkpoint, an abstract name would be bound in ours).  Only this thread
 * enters it.
 */
static int files_in_netns(struct rst_ctx *c)
{
	int ns = -1, back = -1, r;

	r = netns_of_pid(c->procs[0].host_pid, &ns);
	if (r >= 0)
		r = netns_enter(ns, &back);
	if (r >= 0)
		r = for_alive(c, files_restore) ?: files_finish(c);
	netns_leave(back);
	if (ns >= 0)
		close(ns);
	return r;
}

int restore_tree(const struct restore_opts *o, struct restore_result *ret)
{
	char msg[DM_ERRMSG_MAX] = "";
	struct rst_ctx *c = xcalloc(1, sizeof(*c));
	uint64_t t0 = clock_ns(), t = t0;
	cpu_set_t cpus;
	bool pinned = false;
	int r;

	c->o = o;
	c->sock = -1;
	c->pin_cpu = -1;
	Dm__Inventory *inv = o->inventory;
	r = image_open(o->images_dir, false, &c->img);
	if (r >= 0) {
		r = image_load_with(c->img, inv, &c->ck);
		inv = NULL;
	}
	if (inv)
		protobuf_c_message_free_unpacked(&inv->base, NULL);
	/* refuse what cannot run here before anything is made */
	if (r >= 0)
		r = restore_check_host(c->ck, o->lazy ? o->lazy_features : 0, o->lazy);
	if (r < 0)
		goto out;
	c->st.load_ms = lap(&t);
	r = prepare(c);
	if (r < 0)
		goto out;

	c->pin_cpu = cpu_pin_here(&cpus);
	pinned = c->pin_cpu >= 0;
	if (pinned) {
		c->free_mask = cpus;
		c->have_free_mask = true;
	}
	r = stub_create_root(c, &c->procs[0]);
	c->st.stub_ms = lap(&t);
	if (r >= 0)
		r = tree_create(c) ?: tree_finish_zombies(c);
	c->st.tree_ms = lap(&t);
	if (r >= 0 && o->beside_wait) {
		uint64_t tw = clock_ns();
		r = o->beside_wait(o->beside_arg, RST_BESIDE_MM);
		c->st.beside_wait_ms += ns_to_ms(tw, clock_ns());
	}
	if (r >= 0)
		r = for_alive(c, mm_restore);
	c->st.mem_ms = lap(&t);
	if (r >= 0) {
		uint64_t tl = clock_ns();
		r = rst_inet_lock(c);
		c->st.netlock_ms = ns_to_ms(tl, clock_ns());
	}
	if (r >= 0)
		r = files_in_netns(c);
	c->st.fds_ms = lap(&t);
	if (r >= 0)
		r = for_alive(c, phase_threads) ?: files_set_owners(c);
	c->st.threads_ms = lap(&t);
	if (r >= 0)
		r = for_alive(c, lazy_register);
	if (r >= 0)
		r = for_alive(c, mm_seal);
	c->st.lazy_ms = lap(&t);
	if (r >= 0 && o->beside_wait) {
		uint64_t tw = clock_ns();
		r = o->beside_wait(o->beside_arg, RST_BESIDE_ALL);
		c->st.beside_wait_ms += ns_to_ms(tw, clock_ns());
	}
	if (r >= 0)
		r = for_alive(c, creds_restore);
	c->st.creds_ms = lap(&t);
	if (r >= 0)
		r = for_alive(c, threads_finalize);
	if (r >= 0)
		r = for_alive(c, threads_sched);
	count_injected(c);
	if (pinned && r >= 0)
		unpin_tree(c, c->ext_pinned ? &c->ext_mask : &cpus);
	/* we stay on the tree's CPU until the end: a migration's fault
	 * handler, let go in before_resume (mem_lazy_start), takes our CPUs
	 * then, so the tree's first
	 * faults wake it on the CPU the faulting thread leaves (unpinned
	 * first, the first requests after the commit waited longer: redis
	 * COMMIT to answer 22 and 27.6 ms in 2 of 5 runs against 6-14.6) */

	/* the dumped masks (an image of before they were kept has none: the
	 * restorer's original one, above) */
	if (r >= 0)
		r = for_alive(c, threads_affinity);
	if (r >= 0 && o->before_resume) {
		_cleanup_free_ pid_t *pids = xcalloc(c->nprocs, sizeof(*pids));
		size_t n = 0;
		for (size_t i = 0; i < c->nprocs; i++)
			if (c->procs[i].state == RST_SEIZED)
				pids[n++] = c->procs[i].host_pid;
		c->st.restore_ms = ns_to_ms(t0, clock_ns());
		r = o->before_resume(o->before_resume_arg, pids, n, &c->st);
		t = clock_ns(); /* the wait is not the restore's */
	}
	/* after a migration's commit: the connections may speak again */
	if (r >= 0) {
		uint64_t tu = clock_ns();
		r = rst_inet_resume(c);
		c->st.unlock_ms = ns_to_ms(tu, clock_ns());
	}
	if (r >= 0)
		r = detach_all(c);
	c->st.detached_ns = clock_ns();
	if (r >= 0 && o->after_resume)
		o->after_resume(o->after_resume_arg, &c->st);
	/* tests: the tree runs, the restore's cleanup has not begun
	 * (containers runc/migrate-announce) */
	if (r >= 0)
		dm_test_point("restore-tree-runs");
	if (r >= 0)
		wait_settled(c);
	c->st.resume_ms = lap(&t);
	if (r >= 0) {
		uint64_t ts = clock_ns();
		rst_inet_settled(c);
		c->st.settle_ms = ns_to_ms(ts, clock_ns());
	}
	if (r < 0)
		goto out;

	c->st.restore_ms = ns_to_ms(t0, clock_ns());
	ret->root_pid = c->procs[0].host_pid;
	ret->root_pidfd = c->procs[0].pidfd;
	c->procs[0].pidfd = -1;
	ret->stats = c->st;
	pr_info("restored %zu processes in %.2f ms (root pid %d)", c->nprocs, c->st.restore_ms,
		ret->root_pid);
out:
	/* what failed is what is said: the cleanup's own steps (the lock, the
	 * sockets) may set or clear the message */
	if (r < 0)
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
	if (pinned)
		sched_setaffinity(0, sizeof(cpus), &cpus);
	if (r < 0 && c->procs)
		kill_all(c);
	ctx_free(c);
	if (r < 0)
		dm_error_set_message(msg);
	return r;
}

void *restore_stats_json(const struct restore_stats *st)
{
	json_t *o = json_object(), *ph = json_object();

	json_object_set_new(o, "restore_ms", json_real(st->restore_ms));
	json_object_set_new(ph, "load_ms", json_real(st->load_ms));
	json_object_set_new(ph, "stub_ms", json_real(st->stub_ms));
	json_object_set_new(ph, "tree_ms", json_real(st->tree_ms));
	json_object_set_new(ph, "memory_ms", json_real(st->mem_ms));
	json_object_set_new(ph, "memory_map_ms", json_real(st->mem_map_ms));
	json_object_set_new(ph, "memory_fetch_ms", json_real(st->mem_fetch_ms));
	json_object_set_new(ph, "memory_write_ms", json_real(st->mem_write_ms));
	json_object_set_new(ph, "fds_ms", json_real(st->fds_ms));
	json_object_set_new(ph, "threads_ms", json_real(st->threads_ms));
	json_object_set_new(ph, "lazy_ms", json_real(st->lazy_ms));
	json_object_set_new(ph, "creds_ms", json_real(st->creds_ms));
	json_object_set_new(ph, "resume_ms", json_real(st->resume_ms));
	/* parts of the phases above */
	json_object_set_new(ph, "netlock_ms", json_real(st->netlock_ms));
	json_object_set_new(ph, "sockets_ms", json_real(st->inet_ms));
	json_object_set_new(ph, "unlock_ms", json_real(st->unlock_ms));
	json_object_set_new(ph, "settle_ms", json_real(st->settle_ms));
	json_object_set_new(ph, "beside_wait_ms", json_real(st->beside_wait_ms));
	json_object_set_new(o, "phases", ph);
	json_object_set_new(o, "processes", json_integer((json_int_t)st->processes));
	json_object_set_new(o, "threads", json_integer((json_int_t)st->threads));
	json_object_set_new(o, "fds", json_integer((json_int_t)st->fds));
	json_object_set_new(o, "vmas", json_integer((json_int_t)st->vmas));
	json_object_set_new(o, "pages_written", json_integer((json_int_t)st->pages_written));
	json_object_set_new(o, "pages_lazy", json_integer((json_int_t)st->pages_lazy));
	json_object_set_new(o, "pages_fetched", json_integer((json_int_t)st->pages_fetched));
	json_object_set_new(o, "injected_syscalls", json_integer((json_int_t)st->injected));
	json_object_set_new(o, "ptrace_round_trips", json_integer((json_int_t)st->round_trips));
	if (st->tcp_reset)
		json_object_set_new(o, "tcp_reset_at_resume", json_integer(st->tcp_reset));
	if (st->lock_counted) {
		json_object_set_new(o, "net_lock_tcp_dropped_in", json_integer((json_int_t)st->lock_tcp_dropped_in));
		json_object_set_new(o, "net_lock_tcp_dropped_out", json_integer((json_int_t)st->lock_tcp_dropped_out));
	}
	return o;
}
