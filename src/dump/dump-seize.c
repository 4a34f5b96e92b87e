/* SPDX-License-Identifier: MIT */
/*
 * Freezing a process tree with ptrace.
 *
 * Every thread is PTRACE_SEIZEd and PTRACE_INTERRUPTed.  The tree may fork
 * or clone while we walk it, so the walk repeats until a pass finds nothing
 * new: a task created after its parent stopped cannot exist, so once every
 * known thread is stopped and a full pass sees no new child or thread, the
 * set is closed.
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/log.h"
#include "base/clock.h"

#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEIZE_OPTS (PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP)
/* how long a seized thread may take to stop (one in an uninterruptible wait) */
#define SEIZE_STOP_TIMEOUT_MS 10000

static struct dproc *find_proc(struct dump_ctx *d, pid_t pid)
{
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->pid == pid)
			return d->procs[i];
	return NULL;
}

static bool has_thread(struct dproc *p, pid_t tid)
{
	for (size_t i = 0; i < p->nthreads; i++)
		if (p->threads[i].tid == tid)
			return true;
	return false;
}

/* A thread that has begun to exit (a zombie, or about to be reaped) cannot be
 * seized (EPERM) and is not part of what we dump. */
static bool thread_exiting(pid_t pid, pid_t tid)
{
	struct proc_stat st;
	int r = proc_read_stat(pid, tid, &st);

	dm_error_clear();
	return r < 0 || st.state == 'Z' || st.state == 'X';
}

/*
 * A parent blocked in vfork() until its child execs or exits sleeps
 * uninterruptibly: it cannot stop for us, and a wait for its stop never ends.
 * Refused before the seize, named.
 */
static int check_vfork(struct dproc *p, pid_t tid)
{
	struct proc_stat st;
	long nr;
	uint64_t a1;
	bool vfork = false;

	if (proc_read_stat(p->pid, tid, &st) < 0 || st.state != 'D' ||
	    proc_read_syscall(p->pid, tid, &nr, &a1) < 0) {
		dm_error_clear();
		return 0;
	}
	if (nr == SYS_vfork)
		vfork = true;
	else if (nr == SYS_clone)
		vfork = a1 & CLONE_VFORK;
	else if (nr == SYS_clone3) {
		uint64_t flags = 0;
		struct iovec li = { &flags, sizeof(flags) }, ri = { (void *)(uintptr_t)a1, sizeof(flags) };
		vfork = process_vm_readv(p->pid, &li, 1, &ri, 1, 0) == sizeof(flags) &&
			(flags & CLONE_VFORK);
	}
	if (!vfork)
		return 0;
	return dm_fail(-EBUSY, "process %d: thread %d is blocked in vfork() until its child execs "
		       "or exits: it cannot be stopped; checkpoint it after that", p->pid, tid);
}

int dump_check_vfork(pid_t pid, pid_t tid)
{
	struct dproc p = { .pid = pid };
	return check_vfork(&p, tid);
}

/* PTRACE_SEIZE + PTRACE_INTERRUPT.  1: seized (its stop is to be waited
 * for), 0: it is exiting. */
static int seize_attach(struct dproc *p, pid_t tid)
{
	int r;

	if (ptrace(PTRACE_SEIZE, tid, 0, SEIZE_OPTS) < 0) {
		r = neg_errno();
		if (r == -ESRCH || (r == -EPERM && thread_exiting(p->pid, tid)))
			return 0; /* exiting or exited meanwhile: the next pass will tell */
		return dm_fail(r, "cannot seize thread %d of process %d: %s", tid, p->pid,
			       strerror(-r));
	}
	p->threads = xrealloc(p->threads, (p->nthreads + 1) * sizeof(*p->threads));
	struct dthread *t = &p->threads[p->nthreads++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->seized = true;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return dm_fail(neg_errno(), "cannot interrupt thread %d: %m", tid);
	return 1;
}

/* The first stop of a seized thread: a group stop the process was in is kept. */
static void took_stop(struct dproc *p, pid_t tid, int st)
{
	if ((st >> 16) == PTRACE_EVENT_STOP && (WSTOPSIG(st) == SIGSTOP || WSTOPSIG(st) == SIGTSTP ||
						WSTOPSIG(st) == SIGTTIN || WSTOPSIG(st) == SIGTTOU)) {
		p->stopped = true;
		p->stop_sig = WSTOPSIG(st);
	}
	else if ((st >> 16) != PTRACE_EVENT_STOP)
		pr_debug("thread %d: first stop %#x", tid, st);
}

/* The first stop of the thread seized last (p->threads[p->nthreads - 1]). */
static int seize_wait(struct dproc *p, size_t idx)
{
	pid_t tid = p->threads[idx].tid;
	int st, r;

	r = ptrace_wait_stop_bounded(tid, &st, SEIZE_STOP_TIMEOUT_MS);
	if (r == -ETIMEDOUT) {
		struct proc_stat ts = {};
		proc_read_stat(p->pid, tid, &ts);
		dm_error_clear();
		return dm_fail(r, "thread %d of process %d did not stop within %d s after "
			       "PTRACE_INTERRUPT (state %c: an uninterruptible wait)", tid, p->pid,
			       SEIZE_STOP_TIMEOUT_MS / 1000, ts.state ? ts.state : '?');
	}
	if (r == -ECHILD) {
		/* it was already exiting when seized: it ended instead of stopping */
		memmove(&p->threads[idx], &p->threads[idx + 1],
			(p->nthreads - idx - 1) * sizeof(*p->threads));
		p->nthreads--;
		dm_error_clear();
		return 0;
	}
	if (r < 0)
		return r;
	took_stop(p, tid, st);
	return 1;
}

static struct dpre *pre_find(struct dump_ctx *d, pid_t tid)
{
	for (size_t i = 0; i < d->npre; i++)
		if (d->pre[i].tid == tid && !d->pre[i].taken)
			return &d->pre[i];
	return NULL;
}

/* 0 when the thread was seized and stopped (or taken over from pre_seize()),
 * or is exiting. */
static int seize_thread(struct dump_ctx *d, struct dproc *p, pid_t tid)
{
	struct dpre *pre = pre_find(d, tid);
	int r;

	if (pre && pre->pid == p->pid && pre->stopped) {
		/* seized and stopped with the rest of its container: taken over */
		pre->taken = true;
		p->threads = xrealloc(p->threads, (p->nthreads + 1) * sizeof(*p->threads));
		p->threads[p->nthreads++] = (struct dthread){ .tid = tid, .seized = true };
		took_stop(p, tid, pre->status);
		return 0;
	}
	r = check_vfork(p, tid);
	if (r < 0)
		return r;
	r = seize_attach(p, tid);
	if (r <= 0)
		return r;
	r = seize_wait(p, p->nthreads - 1);
	return r < 0 ? r : 0;
}

/* One pass over a process: seize threads not yet seized. Returns how many were new. */
static int seize_threads(struct dump_ctx *d, struct dproc *p)
{
	_cleanup_free_ pid_t *tids = NULL;
	size_t n;
	int r, added = 0;

	r = proc_read_tasks(p->pid, &tids, &n);
	if (r < 0)
		return dm_fail(r, "process %d: cannot list threads: %s", p->pid, strerror(-r));
	for (size_t i = 0; i < n; i++) {
		if (has_thread(p, tids[i]))
			continue;
		r = seize_thread(d, p, tids[i]);
		if (r < 0)
			return r;
		added += r;
	}
	/* main thread first */
	for (size_t i = 1; i < p->nthreads; i++)
		if (p->threads[i].tid == p->pid) {
			struct dthread t = p->threads[0];
			p->threads[0] = p->threads[i];
			p->threads[i] = t;
		}
	return added;
}

static struct dproc *add_proc(struct dump_ctx *d, pid_t pid, pid_t ppid)
{
	struct dproc *p = xcalloc(1, sizeof(*p));
	p->pid = pid;
	p->ppid = ppid;
	p->pages_fd = -1;
	p->mem_fd = -1;
	p->pidfd = -1;
	d->procs = xrealloc(d->procs, (d->nprocs + 1) * sizeof(*d->procs));
	d->procs[d->nprocs++] = p;
	return p;
}

/* A child that exited and was reaped before its parent stopped is no longer
 * part of the tree. */
static void drop_proc(struct dump_ctx *d, size_t i)
{
	free(d->procs[i]->threads);
	free(d->procs[i]);
	memmove(&d->procs[i], &d->procs[i + 1], (d->nprocs - i - 1) * sizeof(*d->procs));
	d->nprocs--;
	dm_error_clear();
}

#define PF_EXITING 0x4

/*
 * A zombie main thread with threads that still run: the leader called
 * pthread_exit() (or SYS_exit) and the process goes on.  The restore cannot
 * make such a process (it would come back as a zombie without its threads),
 * so it is refused.  Threads that are exiting themselves (PF_EXITING: an
 * exit_group() under way) are a process about to be a plain zombie.
 */
static int check_zombie_leader(struct dproc *p)
{
	_cleanup_free_ pid_t *tids = NULL;
	size_t n;
	int r = proc_read_tasks(p->pid, &tids, &n);

	if (r < 0) {
		dm_error_clear();
		return 0;	/* gone meanwhile: a zombie or nothing */
	}
	for (size_t i = 0; i < n; i++) {
		struct proc_stat ts;
		if (tids[i] == p->pid || proc_read_stat(p->pid, tids[i], &ts) < 0)
			continue;
		if (ts.state == 'Z' || ts.state == 'X' || (ts.flags & PF_EXITING))
			continue;
		return dm_fail(-ENOTSUP, "process %d: its main thread has exited while thread %d "
			       "still runs (a zombie thread-group leader): the restore cannot bring "
			       "such a process back", p->pid, tids[i]);
	}
	dm_error_clear();
	return 0;
}

static int check_proc(struct dump_ctx *d, struct dproc *p)
{
	struct proc_stat st;
	int r = proc_read_stat(p->pid, 0, &st);
	if (r < 0)
		return dm_fail(r, "process %d vanished or is unreadable: %s", p->pid, strerror(-r));
	p->start_time = st.start_time;
	if (st.state == 'Z' || st.state == 'X') {
		r = check_zombie_leader(p);
		if (r < 0)
			return r;
		p->zombie = true;
		return 0;
	}
	if (st.flags & 0x00200000 /* PF_KTHREAD */)
		return dm_fail(-EINVAL, "process %d is a kernel thread", p->pid);
	(void)d;
	return 0;
}

int dump_check_root(pid_t pid)
{
	struct proc_status ps = {};
	pid_t self = getpid();
	int r;

	if (pid <= 0)
		return dm_fail(-EINVAL, "bad pid %d", pid);
	r = proc_read_status(pid, 0, &ps);
	if (r == -ENOENT || r == -ESRCH)
		return dm_fail(-ESRCH, "no process %d", pid);
	if (r < 0)
		return dm_fail(r, "process %d: %s", pid, strerror(-r));
	char state = ps.state;
	pid_t tgid = ps.tgid;
	proc_status_done(&ps);
	if (tgid > 0 && tgid != pid)
		return dm_fail(-EINVAL, "%d is a thread of process %d, not a process: give the process", pid, tgid);
	if (state == 'Z' || state == 'X')
		return dm_fail(-ESRCH, "process %d has exited (it is a zombie)", pid);
	if (pid == 1)
		return dm_fail(-EPERM, "process 1 is the init of this PID namespace: it cannot be checkpointed "
				       "or migrated (only the trees below it can)");
	if (pid == self)
		return dm_fail(-EPERM, "process %d is this dmigrate itself", pid);
	/* an ancestor's tree holds this dmigrate: it would have to freeze itself */
	for (pid_t a = getppid(); a > 1;) {
		if (a == pid)
			return dm_fail(-EPERM, "process %d is an ancestor of this dmigrate (pid %d): its tree "
					       "would contain dmigrate itself", pid, self);
		if (proc_read_status(a, 0, &ps) < 0)
			break;
		pid_t up = ps.ppid;
		proc_status_done(&ps);
		if (up == a)
			break;
		a = up;
	}
	return 0;
}

static const char *const ns_what[PROC_NS_COUNT] = {
	[PROC_NS_CGROUP] = "cgroup namespace",
	[PROC_NS_IPC] = "IPC namespace",
	[PROC_NS_MNT] = "mount namespace",
	[PROC_NS_NET] = "network namespace",
	[PROC_NS_PID] = "PID namespace",
	[PROC_NS_PID_FOR_CHILDREN] = "PID namespace for its children (unshare(CLONE_NEWPID))",
	[PROC_NS_TIME] = "time namespace",
	[PROC_NS_TIME_FOR_CHILDREN] = "time namespace for its children (unshare(CLONE_NEWTIME))",
	[PROC_NS_USER] = "user namespace",
	[PROC_NS_UTS] = "UTS namespace",
};

/*
 * The restore makes every process in the restorer's namespaces, except the
 * PID namespace of a tree that owns one (its init is the root): a thread in
 * any other namespace than ours would come back in the wrong one (a mount
 * namespace: its / and /proc would be the host's).  Refused, named.
 */
static int check_namespaces(struct dump_ctx *d)
{
	struct proc_ns ours, root = {};
	int r;

	r = proc_read_all_ns(0, &ours);
	if (r < 0)
		return dm_fail(r, "cannot read our own namespaces: %s", strerror(-r));
	if (d->own_pidns) {
		r = proc_read_thread_ns(d->procs[0]->pid, 0, PROC_NS_PID, &root.ino[PROC_NS_PID]);
		if (r < 0)
			return dm_fail(r, "process %d: PID namespace: %s", d->procs[0]->pid, strerror(-r));
	}
	/* a container's runtime makes these again from its config: the tree
	 * must share its init's */
	static const enum proc_ns_type runtime_ns[] = { PROC_NS_CGROUP, PROC_NS_IPC, PROC_NS_MNT,
							PROC_NS_NET, PROC_NS_UTS };
	for (size_t i = 0; d->opts.container && i < ARRAY_SIZE(runtime_ns); i++) {
		enum proc_ns_type t = runtime_ns[i];
		if (!ours.ino[t])
			continue;
		r = proc_read_thread_ns(d->procs[0]->pid, 0, t, &ours.ino[t]);
		if (r < 0)
			return dm_fail(r, "process %d: %s: %s", d->procs[0]->pid, ns_what[t], strerror(-r));
	}
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		for (size_t k = 0; k < p->nthreads; k++) {
			pid_t tid = p->threads[k].tid;
			_cleanup_close_ int dir = -1;
			r = proc_open_ns_dir(p->pid, tid, &dir);
			if (r < 0)
				return dm_fail(r, "thread %d of process %d: its namespaces: %s", tid, p->pid,
					       strerror(-r));
			for (int t = 0; t < PROC_NS_COUNT; t++) {
				uint64_t ino, want = ours.ino[t];
				if (!ours.ino[t])
					continue;	/* a kernel without this type */
				r = proc_read_ns_at(dir, (enum proc_ns_type)t, &ino);
				if (r == -ENOENT && (t == PROC_NS_PID_FOR_CHILDREN ||
						     t == PROC_NS_TIME_FOR_CHILDREN)) {
					dm_error_clear();
					continue;
				}
				if (r < 0)
					return dm_fail(r, "thread %d of process %d: %s: %s", tid, p->pid,
						       ns_what[t], strerror(-r));
				if (d->own_pidns && (t == PROC_NS_PID || t == PROC_NS_PID_FOR_CHILDREN))
					want = root.ino[PROC_NS_PID];
				if (ino == want)
					continue;
				if (d->opts.container && i > 0)
					return dm_fail(-ENOTSUP, "%s %d of process %d is in another %s "
						       "than the container's init (%s:[%llu], the init's is "
						       "[%llu]): the runtime makes only the container's own",
						       tid == p->pid ? "main thread" : "thread", tid, p->pid,
						       ns_what[t], proc_ns_name((enum proc_ns_type)t),
						       (unsigned long long)ino, (unsigned long long)want);
				if (d->opts.container)
					return dm_fail(-ENOTSUP, "the container's %s (%s:[%llu], ours is "
						       "[%llu]) cannot be restored: only its mount, network, "
						       "UTS, IPC, PID and cgroup namespaces are",
						       ns_what[t], proc_ns_name((enum proc_ns_type)t),
						       (unsigned long long)ino, (unsigned long long)want);
				return dm_fail(-ENOTSUP, "%s %d of process %d is in its own %s "
					       "(%s:[%llu], ours is [%llu]): the restore cannot bring it "
					       "back (only a tree's own PID namespace is restored)",
					       tid == p->pid ? "main thread" : "thread", tid, p->pid,
					       ns_what[t], proc_ns_name((enum proc_ns_type)t),
					       (unsigned long long)ino, (unsigned long long)want);
			}
		}
	}
	return 0;
}

int dump_check_namespaces(struct dump_ctx *d)
{
	return check_namespaces(d);
}

/*
 * A container: every thread of every process in its cgroup is seized and
 * interrupted at once, then each stop is waited for, so that the whole
 * container stops in one round of scheduling (a cgroup freeze, then a thaw
 * for the ptrace stops, took two, and the freezer's state had to be
 * polled).  Nothing is decided here: the walk from the root (below) takes
 * over each thread it reaches, seizes what was forked or cloned meanwhile
 * (a process that forks is stopped before its children are listed, so
 * none escapes), and what the walk does not reach is let go (pre_release)
 * and refused by check_tree().  A thread that cannot be seized now (it
 * exits, a zombie) is left to the walk, which tells.
 */
static int pre_seize(struct dump_ctx *d)
{
	const struct dump_container *ct = d->opts.container;
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	int r;

	r = ct->list(ct->arg, &pids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ pid_t *tids = NULL;
		size_t nt = 0;
		if (proc_read_tasks(pids[i], &tids, &nt) < 0) {
			dm_error_clear();	/* gone: the walk tells if it mattered */
			continue;
		}
		for (size_t k = 0; k < nt; k++) {
			struct dproc tmp = { .pid = pids[i] };
			r = check_vfork(&tmp, tids[k]);
			if (r < 0)
				return r;
			if (ptrace(PTRACE_SEIZE, tids[k], 0, SEIZE_OPTS) < 0)
				continue;	/* exiting, a zombie: the walk tells */
			d->pre = xrealloc(d->pre, (d->npre + 1) * sizeof(*d->pre));
			d->pre[d->npre++] = (struct dpre){ .pid = pids[i], .tid = tids[k] };
			if (ptrace(PTRACE_INTERRUPT, tids[k], 0, 0) < 0)
				return dm_fail(neg_errno(), "cannot interrupt thread %d: %m", tids[k]);
		}
	}
	/* the stops, all under way */
	for (size_t i = 0; i < d->npre; i++) {
		struct dpre *e = &d->pre[i];
		r = ptrace_wait_stop_bounded(e->tid, &e->status, SEIZE_STOP_TIMEOUT_MS);
		if (r == -ECHILD) {
			dm_error_clear();	/* it ended instead of stopping */
			e->taken = true;
			continue;
		}
		if (r == -ETIMEDOUT) {
			struct proc_stat ts = {};
			proc_read_stat(e->pid, e->tid, &ts);
			dm_error_clear();
			return dm_fail(r, "thread %d of process %d did not stop within %d s after "
				       "PTRACE_INTERRUPT (state %c: an uninterruptible wait)", e->tid, e->pid,
				       SEIZE_STOP_TIMEOUT_MS / 1000, ts.state ? ts.state : '?');
		}
		if (r < 0)
			return r;
		e->stopped = true;
	}
	return 0;
}

/* The threads seized before the walk that it did not take over (not in the
 * tree, or it failed first) are let go as they were. */
static void pre_release(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->npre; i++) {
		struct dpre *e = &d->pre[i];
		if (e->taken)
			continue;
		/* a stopped one resumes (a signal it stopped to take is given
		 * back); one whose stop was never waited for takes it first */
		int sig = e->stopped && (e->status >> 16) == 0 && WSTOPSIG(e->status) != SIGTRAP ?
			  WSTOPSIG(e->status) : 0;
		if (ptrace(PTRACE_DETACH, e->tid, 0, sig) < 0 && errno == ESRCH && !e->stopped) {
			int st;
			/* not stopped yet: take the stop, then detach */
			if (ptrace_wait_stop_bounded(e->tid, &st, SEIZE_STOP_TIMEOUT_MS) == 0)
				ptrace(PTRACE_DETACH, e->tid, 0, 0);
			dm_error_clear();
		}
		e->taken = true;
	}
	free(d->pre);
	d->pre = NULL;
	d->npre = 0;
}

static int walk_tree(struct dump_ctx *d);

int dump_seize_tree(struct dump_ctx *d)
{
	struct proc_status ps = {};
	int r;

	r = dump_check_root(d->opts.pid);
	if (r < 0)
		return r;
	r = proc_read_status(d->opts.pid, 0, &ps);
	if (r < 0)
		return dm_fail(r == -ENOENT ? -ESRCH : r, "process %d: %s", d->opts.pid,
			       r == -ENOENT ? "it has exited" : strerror(-r));
	/* the tree's pid namespace: the root's innermost one */
	d->ns_level = ps.n_nspid ? ps.n_nspid - 1 : 0;
	d->own_pidns = ps.n_nspid > 1 && ps.nspid[ps.n_nspid - 1] == 1;
	proc_status_done(&ps);
	if (d->opts.container && !d->own_pidns)
		return dm_fail(-ENOTSUP, "the container's init (process %d) is not pid 1 of a PID "
			       "namespace of its own (its config shares one): not supported", d->opts.pid);

	uint64_t t = clock_ns();
	if (d->opts.container) {
		r = pre_seize(d);
		d->fz_all_ns = clock_ns() - t;
		t = clock_ns();
		if (r < 0) {
			pre_release(d);
			return r;
		}
	}
	add_proc(d, d->opts.pid, 0);
	r = walk_tree(d);
	/* what the walk did not reach goes on (check_tree refuses it) */
	pre_release(d);
	if (r >= 0 && d->opts.container) {
		_cleanup_free_ pid_t *pids = xcalloc(d->nprocs, sizeof(*pids));
		for (size_t i = 0; i < d->nprocs; i++)
			pids[i] = d->procs[i]->pid;
		r = d->opts.container->check_tree(d->opts.container->arg, pids, d->nprocs);
	}
	d->fz_walk_ns = clock_ns() - t;
	if (r < 0)
		return r;
	t = clock_ns();
	/* deferred: the caller checks them while its copy cannot run yet (a
	 * migration's destination restores meanwhile): 50 us a thread, in
	 * the downtime otherwise */
	r = d->opts.defer_ns_check ? 0 : check_namespaces(d);
	d->fz_ns_ns = clock_ns() - t;
	if (r < 0)
		return r;

	/* image pids: the ids in the tree's namespace; each thread's status
	 * read once, kept for the phases after (creds, groups, sessions) */
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		for (size_t k = 0; k < p->nthreads; k++) {
			struct dthread *th = &p->threads[k];
			if (!th->st)
				th->st = xcalloc(1, sizeof(*th->st));
			else
				proc_status_done(th->st);
			r = proc_read_status(p->pid, th->tid, th->st);
			if (r < 0)
				return dm_fail(r, "thread %d: status: %s", th->tid, strerror(-r));
			th->vtid = th->st->n_nspid > d->ns_level ? th->st->nspid[d->ns_level] : th->st->pid;
		}
		/* the main thread (first) is the process: its status is the process's */
		if (p->nthreads && p->threads[0].tid == p->pid) {
			p->vpid = p->threads[0].vtid;
		} else {
			struct proc_status s = {};
			r = proc_read_status(p->pid, 0, &s);
			if (r < 0)
				return dm_fail(r, "process %d: status: %s", p->pid, strerror(-r));
			p->vpid = s.n_nspid > d->ns_level ? s.nspid[d->ns_level] : s.pid;
			proc_status_done(&s);
		}
		d->threads_total += p->nthreads;
	}
	d->fz_check_ns = clock_ns() - t;
	return 0;
}

/*
 * From the root: every thread of every process seized and stopped (taken
 * over from pre_seize() where it was), the children of every thread
 * listed once it is stopped, until a pass finds nothing new.
 */
static int walk_tree(struct dump_ctx *d)
{
	bool changed;
	int r;

	do {
		changed = false;
		for (size_t i = 0; i < d->nprocs; i++) {
			struct dproc *p = d->procs[i];
			if (p->nthreads == 0 && !p->zombie) {
				r = check_proc(d, p);
				if ((r == -ENOENT || r == -ESRCH) && i > 0) {
					drop_proc(d, i--);
					continue;
				}
				if (r < 0)
					return r;
			}
			if (p->zombie)
				continue;
			r = seize_threads(d, p);
			if ((r == -ENOENT || r == -ESRCH) && i > 0 && p->nthreads == 0) {
				drop_proc(d, i--);
				continue;
			}
			if (r < 0)
				return r;
			if (r > 0)
				changed = true;
			if (p->nthreads == 0) {
				/* every thread was exiting: look again until it is a
				 * zombie (kept, its parent is stopped) or gone */
				changed = true;
				continue;
			}
			/* children of every thread */
			for (size_t k = 0; k < p->nthreads; k++) {
				_cleanup_free_ pid_t *kids = NULL;
				size_t nk;
				r = proc_read_children(p->pid, p->threads[k].tid, &kids, &nk);
				if (r < 0)
					return dm_fail(r, "process %d: cannot list children: %s", p->pid,
						       strerror(-r));
				for (size_t c = 0; c < nk; c++) {
					if (find_proc(d, kids[c]))
						continue;
					add_proc(d, kids[c], p->pid);
					changed = true;
				}
			}
		}
	} while (changed);

	/* a main thread that exited after the check above, before its seize */
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		if (!p->zombie && !has_thread(p, p->pid))
			return dm_fail(-ENOTSUP, "process %d: its main thread has exited while "
				       "thread %d still runs (a zombie thread-group leader): the restore "
				       "cannot bring such a process back", p->pid, p->threads[0].tid);
	}
	return 0;
}

/* Reap, as its tracer, the exit of every thread of a process we killed. */
static void reap_traced(struct dproc *p, uint64_t deadline)
{
	/*
	 * Every thread in each pass, not one after another: a traced leader's
	 * exit is reported only once the others' have been taken, and in a PID
	 * namespace's init the last thread to exit waits (zap_pid_ns_processes)
	 * until the zombies of the namespace are reaped, its own threads'
	 * included, which are ours to take.  Waiting for that thread first
	 * lasted until the deadline (5 s: a redis container's source copy was
	 * seen by Docker to exit 5 s after the migration).
	 */
	_cleanup_free_ bool *done = xcalloc(p->nthreads ? p->nthreads : 1, sizeof(*done));
	for (;;) {
		bool left = false;
		for (size_t k = 0; k < p->nthreads; k++) {
			pid_t tid = p->threads[k].tid;
			int st;
			if (done[k])
				continue;
			pid_t w = waitpid(tid, &st, __WALL | WNOHANG);
			if (w < 0 || (w == tid && (WIFEXITED(st) || WIFSIGNALED(st)))) {
				done[k] = true;
				p->threads[k].seized = false;
				continue;
			}
			left = true;
		}
		if (!left)
			return;
		if (clock_ns() > deadline) {
			pr_warn("process %d: threads not reaped within 5 s of SIGKILL", p->pid);
			return;
		}
		usleep(100);
	}
}

/*
 * In the host's PID namespace a killed child's zombie went to init (or a
 * subreaper), which may never reap it: its pid, and the group and session
 * numbers it holds, stayed in use and a restore right after failed.  So the
 * children go first, leaves up: killed, their exit taken as their tracer,
 * then reaped by their own parent, still stopped under us, with an
 * injected waitid() (zombies of the image too).  What is left over (a
 * timeout, a parent that ignores SIGCHLD and has reaped already) falls back
 * to the plain kill below.
 */
static void kill_reap_children(struct dump_ctx *d)
{
	uint64_t deadline = clock_ns() + 5000000000ULL;

	for (size_t i = d->nprocs; i-- > 1;) {
		struct dproc *p = d->procs[i], *parent = find_proc(d, p->ppid);
		uint64_t insn;
		if (!parent || parent->zombie || !parent->nthreads || !parent->threads[0].seized)
			continue;
		if (!p->zombie) {
			kill(p->pid, SIGKILL);
			reap_traced(p, deadline);
		}
		if (dump_syscall_insn(parent, &insn) < 0) {
			dm_error_clear();
			continue;
		}
		long r = inject_syscall_at(parent->threads[0].tid, insn, SYS_waitid, P_PID,
					   (uint64_t)p->pid, 0, WEXITED | WNOHANG | __WALL, 0, 0);
		if (r < 0)
			pr_debug("pid %d: reaping %d from it: %s", parent->pid, p->pid,
				 strerror((int)-r));
		p->zombie = true;	/* nothing more to kill */
	}
	dm_error_clear();
}

int dump_detach_all(struct dump_ctx *d, bool kill_tree)
{
	int err = 0;

	if (kill_tree && !d->own_pidns)
		kill_reap_children(d);
	if (kill_tree) {
		/* SIGKILL first: a traced task dies on SIGKILL even while stopped */
		for (size_t i = 0; i < d->nprocs; i++)
			if (!d->procs[i]->zombie)
				kill(d->procs[i]->pid, SIGKILL);
	}
	if (kill_tree && d->own_pidns) {
		/* the namespace's init ends only once it has reaped every other
		 * process of it, and a traced one's exit is ours to take first:
		 * taken now (bounded), the namespace is gone when we return, not
		 * when dmigrate exits (runc sees a killed container stopped) */
		uint64_t deadline = clock_ns() + 5000000000ULL;
		for (size_t i = d->nprocs; i-- > 0;)
			if (!d->procs[i]->zombie)
				reap_traced(d->procs[i], deadline);
	}
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		for (size_t k = 0; k < p->nthreads; k++) {
			if (!p->threads[k].seized)
				continue;
			p->threads[k].runs = UINT64_MAX;
			if (!kill_tree && proc_read_runcount(p->pid, p->threads[k].tid, &p->threads[k].runs, NULL) < 0)
				p->threads[k].runs = UINT64_MAX;
			if (!kill_tree && ptrace(PTRACE_DETACH, p->threads[k].tid, 0, 0) < 0 &&
			    errno != ESRCH && !err)
				err = dm_fail(neg_errno(), "detach %d: %m", p->threads[k].tid);
			p->threads[k].seized = false;
		}
	}
	if (!kill_tree) {
		/*
		 * The tree runs again once each thread has been scheduled since
		 * its detach: until then a thread is still leaving its ptrace
		 * stop, and a signal sent to the process now may go to another
		 * thread than the one that would take it (a test sending one as
		 * soon as `checkpoint --leave-running` returns saw that).  A
		 * thread in a job-control stop does not run: not waited for.
		 * Bounded: 2 s in all.
		 */
		uint64_t end = clock_ns() + 2000000000ull;
		for (size_t i = 0; i < d->nprocs; i++) {
			struct dproc *p = d->procs[i];
			if (p->zombie || p->stopped)
				continue;
			for (size_t k = 0; k < p->nthreads; k++) {
				uint64_t now;
				while (p->threads[k].runs != UINT64_MAX &&
				       proc_read_runcount(p->pid, p->threads[k].tid, &now, NULL) == 0 &&
				       now <= p->threads[k].runs && clock_ns() < end)
					usleep(200);
			}
		}
	}
	if (kill_tree) {
		/* Reap the deaths of the killed threads: we are their tracer,
		 * and until we have seen a traced thread die its zombie (and so
		 * its pid, pgid and sid numbers) stays; its parent can reap it
		 * only then.  A migration back onto this host needs those pids
		 * free, so wait for each (bounded: SIGKILL is quick, but a
		 * thread in an uninterruptible sleep is not). */
		uint64_t end = clock_ns() + 5000000000ull;
		/* every thread in each pass: a traced group leader's death is
		 * reported only after its other threads have been reaped */
		for (bool left = true; left;) {
			left = false;
			for (size_t i = 0; i < d->nprocs; i++)
				for (size_t k = 0; k < d->procs[i]->nthreads; k++) {
					struct dthread *t = &d->procs[i]->threads[k];
					if (t->reaped)
						continue;
					pid_t w;
					while ((w = waitpid(t->tid, NULL, __WALL | WNOHANG)) < 0 && errno == EINTR)
						;
					if (w < 0)
						t->reaped = true; /* ECHILD: gone, or no longer ours */
					else
						left = true;
				}
			if (left && clock_ns() > end) {
				pr_warn("the killed tree did not end within 5 s of SIGKILL");
				break;
			}
			if (left)
				usleep(500);
		}
	}
	return err;
}
