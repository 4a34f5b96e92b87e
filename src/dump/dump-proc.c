/* SPDX-License-Identifier: MIT */
/*
 * Per-process state: what /proc shows (fill_static, any thread) and what only
 * ptrace and the task itself can tell (core: the pinned task).
 */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/log.h"
#include "compat.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <linux/ptrace.h>

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size, signature, flags, pad;
};

#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#endif

struct k_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *b = xmalloc(n);
	memcpy(b, p, n);
	return b;
}

static Dm__Creds *creds_from_status(const struct proc_status *s)
{
	Dm__Creds *c = PB_NEW(Dm__Creds, dm__creds__init);
	c->uid = s->uid[0]; c->euid = s->uid[1]; c->suid = s->uid[2]; c->fsuid = s->uid[3];
	c->gid = s->gid[0]; c->egid = s->gid[1]; c->sgid = s->gid[2]; c->fsgid = s->gid[3];
	c->n_groups = s->n_groups;
	c->groups = xcalloc(s->n_groups, sizeof(uint32_t));
	for (size_t i = 0; i < s->n_groups; i++)
		c->groups[i] = s->groups[i];
	c->cap_inh = s->cap_inh;
	c->cap_prm = s->cap_prm;
	c->cap_eff = s->cap_eff;
	c->cap_bnd = s->cap_bnd;
	c->has_cap_amb = true;
	c->cap_amb = s->cap_amb;
	c->has_no_new_privs = true;
	c->no_new_privs = s->no_new_privs > 0;
	return c;
}

static bool same_creds(const struct proc_status *a, const struct proc_status *b)
{
	return !memcmp(a->uid, b->uid, sizeof(a->uid)) && !memcmp(a->gid, b->gid, sizeof(a->gid)) &&
	       a->n_groups == b->n_groups &&
	       (!a->n_groups || !memcmp(a->groups, b->groups, a->n_groups * sizeof(*a->groups))) &&
	       a->cap_inh == b->cap_inh && a->cap_prm == b->cap_prm && a->cap_eff == b->cap_eff &&
	       a->cap_bnd == b->cap_bnd && a->cap_amb == b->cap_amb &&
	       a->no_new_privs == b->no_new_privs;
}

/*
 * Whether the process group is orphaned, as the kernel decides it
 * (will_become_orphaned_pgrp): no live member has a parent in another group
 * of the same session.  Read from every process of /proc: a group may have
 * members outside the tree.
 */
static bool pgrp_orphaned(pid_t pgrp)
{
	_cleanup_closedir_ DIR *dir = opendir("/proc");
	struct dirent *de;

	if (!dir)
		return false;
	while ((de = readdir(dir))) {
		struct proc_stat m, parent;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (pid <= 0 || *end || proc_read_stat((pid_t)pid, 0, &m) < 0 || m.pgrp != pgrp ||
		    m.state == 'Z' || m.state == 'X' || m.ppid <= 0)
			continue;
		if (proc_read_stat(m.ppid, 0, &parent) < 0)
			continue;
		if (parent.pgrp != pgrp && parent.session == m.session)
			return false;
	}
	return true;
}

/* the main thread's status, read when it was stopped (dump_seize_tree), or NULL */
static const struct proc_status *main_status(const struct dproc *p)
{
	return p->nthreads && p->threads[0].tid == p->pid ? p->threads[0].st : NULL;
}

int dump_proc_fill_static(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	struct proc_stat st;
	struct proc_status s = {};
	int r;

	r = proc_read_stat(p->pid, 0, &st);
	if (r < 0)
		return dm_fail(r, "process %d: stat: %s", p->pid, strerror(-r));
	const struct proc_status *ps = main_status(p);
	if (!ps) {
		r = proc_read_status(p->pid, 0, &s);
		if (r < 0)
			return dm_fail(r, "process %d: status: %s", p->pid, strerror(-r));
		ps = &s;
	}
	m->pgid = ps->n_nspgid > d->ns_level ? ps->nspgid[d->ns_level] : st.pgrp;
	m->sid = ps->n_nssid > d->ns_level ? ps->nssid[d->ns_level] : st.session;
	/* a pgid/sid outside the tree's namespace shows as 0 there */
	m->comm = xstrdup(st.comm);
	m->has_exit_signal = true;
	m->exit_signal = st.exit_signal;
	if (p->zombie) {
		m->state = DM__PROC_STATE__PROC_ZOMBIE;
		m->has_exit_code = true;
		m->exit_code = st.exit_code;
		proc_status_done(&s);
		return 0;
	}
	m->state = p->stopped ? DM__PROC_STATE__PROC_STOPPED : DM__PROC_STATE__PROC_ALIVE;
	if (p->stopped) {
		m->has_stop_signal = true;
		m->stop_signal = p->stop_sig;
		/*
		 * The restore stops it with the same signal, and the kernel
		 * discards SIGTSTP, SIGTTIN and SIGTTOU sent to an orphaned group:
		 * such a stop can only have come before the group was orphaned
		 * without the kernel noticing (setpgid, setsid of a parent).
		 */
		if (p->stop_sig != SIGSTOP && pgrp_orphaned(st.pgrp)) {
			proc_status_done(&s);
			return dm_fail(-ENOTSUP, "process %d (%s) is stopped by SIG%s in an orphaned process "
				       "group: the kernel discards that signal there, a restore could not stop "
				       "it the same way", p->pid, st.comm, sigabbrev_np(p->stop_sig) ?: "?");
		}
	}
	m->has_umask = true;
	m->umask = ps->umask;
	m->has_shared_pending_mask = true;
	m->shared_pending_mask = ps->shd_pnd;

	m->creds = creds_from_status(ps);
	proc_status_done(&s);

	int64_t v;
	r = proc_read_s64(p->pid, "oom_score_adj", &v);
	if (r < 0)
		return dm_fail(r, "process %d: oom_score_adj: %s", p->pid, strerror(-r));
	m->has_oom_score_adj = true;
	m->oom_score_adj = (int32_t)v;
	/* audit's login uid: absent without CONFIG_AUDITSYSCALL */
	r = proc_read_s64(p->pid, "loginuid", &v);
	if (r >= 0) {
		m->has_loginuid = true;
		m->loginuid = (uint32_t)v;
	} else if (r != -ENOENT) {
		return dm_fail(r, "process %d: loginuid: %s", p->pid, strerror(-r));
	}
	dm_error_clear();

	unsigned pers;
	if (proc_read_personality(p->pid, &pers) >= 0) {
		m->has_personality = true;
		m->personality = pers;
	}

	Dm__Mm *mm = PB_NEW(Dm__Mm, dm__mm__init);
	mm->start_code = st.start_code;
	mm->end_code = st.end_code;
	mm->start_data = st.start_data;
	mm->end_data = st.end_data;
	mm->start_brk = st.start_brk;
	mm->brk = st.start_brk;
	for (size_t i = 0; i < p->vmas.n; i++)
		if (p->vmas.vmas[i].kind == PROC_VMA_HEAP)
			mm->brk = p->vmas.vmas[i].end;
	mm->start_stack = st.start_stack;
	mm->arg_start = st.arg_start;
	mm->arg_end = st.arg_end;
	mm->env_start = st.env_start;
	mm->env_end = st.env_end;
	{
		char path[64];
		_cleanup_free_ char *buf = NULL;
		size_t len;
		snprintf(path, sizeof(path), "/proc/%d/auxv", p->pid);
		r = read_full_file(path, 8192, &buf, &len);
		if (r < 0)
			return dm_fail(r, "process %d: auxv: %s", p->pid, strerror(-r));
		len -= len % 16;
		mm->has_auxv = true;
		mm->auxv.len = len;
		mm->auxv.data = dup_bytes(buf, len);
	}
	m->mm = mm;
	return 0;
}

static int dump_seccomp(struct dproc *p, struct dthread *t, Dm__Thread *tm)
{
	struct sock_filter_buf { uint64_t insn; } *buf = NULL;
	Dm__SeccompFilter *filters[64];
	int n = 0;

	/* index 0 is the most recently installed filter; the image keeps install order */
	for (n = 0; n < 64; n++) {
		long cnt = ptrace(PTRACE_SECCOMP_GET_FILTER, t->tid, n, NULL);
		if (cnt < 0) {
			if (errno == ENOENT || errno == EINVAL)
				break;
			return dm_fail(neg_errno(), "thread %d: seccomp filter %d: %m", t->tid, n);
		}
		buf = xcalloc(cnt, 8);
		if (ptrace(PTRACE_SECCOMP_GET_FILTER, t->tid, n, buf) < 0) {
			free(buf);
			return dm_fail(neg_errno(), "thread %d: seccomp filter %d: %m", t->tid, n);
		}
		Dm__SeccompFilter *f = PB_NEW(Dm__SeccompFilter, dm__seccomp_filter__init);
		f->insns.data = (uint8_t *)buf;
		f->insns.len = cnt * 8;
		struct seccomp_metadata md = { .filter_off = n };
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, t->tid, sizeof(md), &md) >= 0) {
			f->has_flags = true;
			f->flags = md.flags;
		}
		filters[n] = f;
	}
	(void)p;
	tm->n_seccomp = n;
	tm->seccomp = xcalloc(n, sizeof(*tm->seccomp));
	for (int i = 0; i < n; i++)
		tm->seccomp[i] = filters[n - 1 - i];
	return 0;
}

static int peek_siginfo(pid_t tid, bool shared, ProtobufCBinaryData **ret, size_t *ret_n)
{
	uint8_t si[32][128];
	ProtobufCBinaryData *out = NULL;
	size_t n = 0;

	for (;;) {
		struct ptrace_peeksiginfo_args a = { .off = n, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
						     .nr = 32 };
		long got = ptrace(PTRACE_PEEKSIGINFO, tid, &a, si);
		if (got < 0)
			return dm_fail(neg_errno(), "thread %d: PEEKSIGINFO: %m", tid);
		if (got == 0)
			break;
		out = xrealloc(out, (n + got) * sizeof(*out));
		for (long i = 0; i < got; i++) {
			out[n + i].len = 128;
			out[n + i].data = dup_bytes(si[i], 128);
		}
		n += got;
		if (n > 4096)
			return dm_fail(-E2BIG, "thread %d: too many pending signals", tid);
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

/* A `syscall` instruction in the target's vDSO, to inject the parasite mmap. */
int dump_syscall_insn(struct dproc *p, uint64_t *ret)
{
	for (size_t i = 0; i < p->vmas.n; i++) {
		const struct proc_vma *v = &p->vmas.vmas[i];
		if (v->kind != PROC_VMA_VDSO)
			continue;
		size_t len = v->end - v->start;
		_cleanup_free_ uint8_t *b = xmalloc(len);
		struct iovec li = { b, len }, ri = { (void *)v->start, len };
		if (process_vm_readv(p->pid, &li, 1, &ri, 1, 0) != (ssize_t)len)
			return dm_fail(neg_errno(), "process %d: cannot read the vdso: %m", p->pid);
		for (size_t k = 0; k + 1 < len; k++)
			if (b[k] == 0x0f && b[k + 1] == 0x05) {
				*ret = v->start + k;
				return 0;
			}
	}
	return dm_fail(-ENOTSUP, "process %d: no vdso syscall instruction", p->pid);
}

/* Threads' registers and everything ptrace reads without running the task. */
/* the CPUs online now (/sys/devices/system/cpu/online: "0-3,6"), once */
static pthread_once_t online_once = PTHREAD_ONCE_INIT;
static cpu_set_t online_set;
static bool online_ok;

static void read_online(void)
{
	_cleanup_free_ char *s = NULL;
	size_t len;

	CPU_ZERO(&online_set);
	if (read_full_file("/sys/devices/system/cpu/online", 4096, &s, &len) < 0)
		return;
	for (char *c = s; *c && *c != '\n';) {
		char *end;
		unsigned long a = strtoul(c, &end, 10), b = a;
		if (end == c)
			return;
		if (*end == '-')
			b = strtoul(end + 1, &end, 10);
		for (unsigned long k = a; k <= b && k < CPU_SETSIZE; k++)
			CPU_SET(k, &online_set);
		c = *end == ',' ? end + 1 : end;
	}
	online_ok = CPU_COUNT(&online_set) > 0;
}

static bool online_cpus(cpu_set_t *ret)
{
	pthread_once(&online_once, read_online);
	*ret = online_set;
	return online_ok;
}

/* the mask holds every CPU online: the thread is not pinned */
static bool cpus_all_online(const cpu_set_t *m)
{
	cpu_set_t on, both;
	if (!online_cpus(&on))
		return false;
	CPU_AND(&both, &on, m);
	return CPU_EQUAL(&both, &on);
}

static int dump_threads_regs(struct dproc *p)
{
	Dm__Process *m = p->msg;
	uint8_t xs[16384];
	int r;

	_cleanup_(proc_status_done) struct proc_status read_st = {};
	const struct proc_status *main_st = main_status(p);
	if (!main_st) {
		r = proc_read_status(p->pid, p->pid, &read_st);
		if (r < 0)
			return dm_fail(r, "process %d: status: %s", p->pid, strerror(-r));
		main_st = &read_st;
	}
	m->n_threads = p->nthreads;
	m->threads = xcalloc(p->nthreads, sizeof(*m->threads));
	for (size_t i = 0; i < p->nthreads; i++) {
		struct dthread *t = &p->threads[i];
		Dm__Thread *tm = PB_NEW(Dm__Thread, dm__thread__init);
		m->threads[i] = tm;
		tm->tid = t->vtid;
		r = ptrace_getregs(t->tid, &t->regs);
		if (r < 0)
			return dm_fail(r, "thread %d: registers: %s", t->tid, strerror(-r));
		size_t xlen;
		r = ptrace_getxstate(t->tid, xs, sizeof(xs), &xlen);
		if (r < 0)
			return dm_fail(r, "thread %d: xstate: %s", t->tid, strerror(-r));
		tm->has_xstate = true;
		tm->xstate.len = xlen;
		tm->xstate.data = dup_bytes(xs, xlen);
		if (ptrace(PTRACE_GETSIGMASK, t->tid, 8, &tm->sigmask) < 0)
			return dm_fail(neg_errno(), "thread %d: sigmask: %m", t->tid);
		struct rseq_conf rc = {};
		if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->tid, sizeof(rc), &rc) >= 0 &&
		    rc.rseq_abi_pointer) {
			tm->has_rseq_ptr = tm->has_rseq_size = tm->has_rseq_sig = true;
			tm->rseq_ptr = rc.rseq_abi_pointer;
			tm->rseq_size = rc.rseq_abi_size;
			tm->rseq_sig = rc.signature;
		}
		void *head;
		size_t len;
		if (syscall(SYS_get_robust_list, t->tid, &head, &len) == 0 && head) {
			tm->has_robust_head = tm->has_robust_len = true;
			tm->robust_head = (uint64_t)head;
			tm->robust_len = len;
		}
		r = peek_siginfo(t->tid, false, &tm->pending, &tm->n_pending);
		if (r < 0)
			return r;
		char comm[PROC_COMM_MAX + 1];
		if (proc_read_comm(p->pid, t->tid, comm) >= 0)
			tm->comm = xstrdup(comm);
		if (i > 0) {
			/* credentials are per thread: keep the odd ones */
			/* read when it stopped (dump_seize_tree(): every thread's) */
			if (!same_creds(main_st, t->st))
				tm->creds = creds_from_status(t->st);
		}
		cpu_set_t cpus;
		if (sched_getaffinity(t->tid, sizeof(cpus), &cpus) < 0)
			return dm_fail(neg_errno(), "thread %d: sched_getaffinity: %m", t->tid);
		tm->has_cpus_allowed = tm->has_cpus_all = true;
		tm->cpus_allowed.data = dup_bytes(&cpus, sizeof(cpus));
		tm->cpus_allowed.len = sizeof(cpus);
		tm->cpus_all = cpus_all_online(&cpus);
		struct dm_sched_attr sa = {};
		if (syscall(SYS_sched_getattr, t->tid, &sa, sizeof(sa), 0) < 0)
			return dm_fail(neg_errno(), "thread %d: sched_getattr: %m", t->tid);
		tm->has_sched_policy = tm->has_sched_flags = tm->has_sched_nice = true;
		tm->sched_policy = sa.sched_policy;
		tm->sched_flags = sa.sched_flags;
		/* sched_getattr gives the nice value of SCHED_OTHER/BATCH threads only;
		 * an RT or idle thread has one too (it acts after a switch back) */
		struct proc_stat tst;
		r = proc_read_stat(p->pid, t->tid, &tst);
		if (r < 0)
			return dm_fail(r, "thread %d: stat: %s", t->tid, strerror(-r));
		tm->sched_nice = (int32_t)tst.nice;
		if (sa.sched_priority) {
			tm->has_sched_priority = true;
			tm->sched_priority = sa.sched_priority;
		}
		if (sa.sched_policy == 6 /* SCHED_DEADLINE */) {
			tm->has_sched_runtime = tm->has_sched_deadline = tm->has_sched_period = true;
			tm->sched_runtime = sa.sched_runtime;
			tm->sched_deadline = sa.sched_deadline;
			tm->sched_period = sa.sched_period;
		}
		tm->has_in_syscall = true;
		tm->in_syscall = (long)t->regs.orig_rax >= 0;
		r = dump_seccomp(p, t, tm);
		if (r < 0)
			return r;
		struct user_regs_struct fixed = t->regs;
		regs_fixup_restart(&fixed, false);
		tm->regs.len = sizeof(fixed);
		tm->regs.data = dup_bytes(&fixed, sizeof(fixed));
	}
	return peek_siginfo(p->pid, true, &m->shared_pending, &m->n_shared_pending);
}

/*
 * membarrier registrations are shown nowhere: a private expedited barrier
 * succeeds only in a registered process (EPERM otherwise).  The barrier
 * itself changes nothing, every thread being stopped.  One batch that runs
 * every probe whatever its result (batch_run_all), for the commands this
 * kernel has.  Registration for GLOBAL_EXPEDITED cannot be probed: the restore
 * registers every process for it (see docs/design.md).
 */
static int probe_membarrier(struct tracee *t, struct dproc *p)
{
	static const int cmds[] = { MEMBARRIER_CMD_PRIVATE_EXPEDITED,
				    MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
				    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ };
	long have = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0);
	Dm__Process *m = p->msg;
	_cleanup_free_ struct inj_batch *b = xmalloc(sizeof(*b));
	unsigned idx[ARRAY_SIZE(cmds)];

	m->has_membarrier = true;
	m->membarrier = 0;
	batch_init(b, t);
	for (size_t k = 0; k < ARRAY_SIZE(cmds); k++)
		if (have >= 0 && (have & cmds[k])) {
			idx[k] = b->n;
			batch_add(b, "membarrier", SYS_membarrier, cmds[k], 0, 0, 0, 0, 0);
		} else {
			idx[k] = UINT_MAX;
		}
	/* one round trip: every probe runs, failing or not */
	int r = batch_run_all(b);
	if (r < 0)
		return r;
	for (size_t k = 0; k < ARRAY_SIZE(cmds); k++) {
		if (idx[k] == UINT_MAX)
			continue;
		long res = batch_result(b, idx[k]);
		if (res == 0)
			m->membarrier |= 1u << k;
		else if (res != -EPERM && res != -EINVAL)
			return dm_fail(res < 0 ? (int)res : -EPROTO, "process %d: membarrier probe: %s",
				       p->pid, strerror(res < 0 ? (int)-res : EPROTO));
	}
	return 0;
}

/*
 * State that only the task itself can read, with one batch of injected
 * syscalls per thread through a parasite blob:
 *   process: rt_sigaction x 62, getitimer x 3, securebits, pdeath signal,
 *            child subreaper, dumpable, timer_gettime per POSIX timer;
 *   thread:  tid address, sigaltstack.
 */
static int dump_parasite(struct dump_ctx *d, struct dproc *p)
{
	Dm__Process *m = p->msg;
	struct tracee t = { .tid = p->pid, .memfd = -1 };
	struct inj_batch *b = NULL;
	uint64_t insn = 0, blob = 0;
	int r;

	r = dump_syscall_insn(p, &insn);
	if (r < 0)
		return r;
	long a = inject_syscall_at(p->pid, insn, SYS_mmap, 0, INJ_BLOB_SIZE,
				   PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a < 0 && a > -4096)
		return dm_fail((int)a, "process %d: parasite mmap: %s", p->pid, strerror((int)-a));
	blob = (uint64_t)a;
	r = inject_open_mem(&t);
	if (r < 0)
		goto out;
	{
		uint8_t code[INJ_BLOB_CODE_MAX];
		size_t clen;
		inject_blob_code(code, &clen);
		r = tracee_write(&t, blob, code, clen);
		if (r < 0)
			goto out;
	}
	t.code = blob;
	t.data = blob + INJ_CODE_SIZE;
	b = xmalloc(sizeof(*b));

	/* process-wide, on the main thread */
	{
		batch_init(b, &t);
		uint64_t sa[65] = {}, it[3], sb, pd, sr;
		for (int sig = 1; sig <= 64; sig++) {
			if (sig == SIGKILL || sig == SIGSTOP)
				continue;
			sa[sig] = batch_reserve(b, sizeof(struct k_sigaction));
			batch_add(b, "rt_sigaction", SYS_rt_sigaction, sig, 0, sa[sig], 8, 0, 0);
		}
		for (int w = 0; w < 3; w++) {
			it[w] = batch_reserve(b, sizeof(struct itimerval));
			batch_add(b, "getitimer", SYS_getitimer, w, it[w], 0, 0, 0, 0);
		}
		/* rlimits from inside: prlimit() on another process needs matching
		 * uids or CAP_SYS_RESOURCE, which root lacks here */
		uint64_t rl[RLIM_NLIMITS];
		for (int res = 0; res < RLIM_NLIMITS; res++) {
			rl[res] = batch_reserve(b, sizeof(struct rlimit));
			batch_add(b, "prlimit64", SYS_prlimit64, 0, res, 0, rl[res], 0, 0);
		}
		sb = batch_reserve(b, 8);
		batch_add(b, "prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0, 0);
		unsigned sb_idx = b->n - 1;
		pd = batch_reserve(b, 8);
		batch_add(b, "prctl(PR_GET_PDEATHSIG)", SYS_prctl, PR_GET_PDEATHSIG, pd, 0, 0, 0, 0);
		sr = batch_reserve(b, 8);
		batch_add(b, "prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, PR_GET_CHILD_SUBREAPER, sr, 0, 0, 0, 0);
		batch_add(b, "prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0, 0);
		unsigned dump_idx = b->n - 1;
		batch_add(b, "prctl(PR_GET_THP_DISABLE)", SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0, 0);
		unsigned thp_idx = b->n - 1;
		(void)sb;
		r = batch_run(b, NULL);
		if (r < 0)
			goto out;
		m->sigactions = xcalloc(64, sizeof(*m->sigactions));
		for (int sig = 1; sig <= 64; sig++) {
			if (!sa[sig])
				continue;
			struct k_sigaction *k = batch_local(b, sa[sig]);
			if (k->handler == 0 /* SIG_DFL */ && k->flags == 0 && k->mask == 0)
				continue;
			Dm__Sigaction *s = PB_NEW(Dm__Sigaction, dm__sigaction__init);
			s->sig = sig;
			s->handler = k->handler;
			s->flags = k->flags;
			s->restorer = k->restorer;
			s->mask = k->mask;
			m->sigactions[m->n_sigactions++] = s;
		}
		m->rlimits = xcalloc(RLIM_NLIMITS, sizeof(*m->rlimits));
		for (int res = 0; res < RLIM_NLIMITS; res++) {
			struct rlimit *l = batch_local(b, rl[res]);
			Dm__Rlimit *x = PB_NEW(Dm__Rlimit, dm__rlimit__init);
			x->resource = res;
			x->cur = l->rlim_cur;
			x->max = l->rlim_max;
			m->rlimits[m->n_rlimits++] = x;
		}
		m->itimers = xcalloc(3, sizeof(*m->itimers));
		for (int w = 0; w < 3; w++) {
			struct itimerval *v = batch_local(b, it[w]);
			if (!v->it_value.tv_sec && !v->it_value.tv_usec)
				continue;
			Dm__Itimer *x = PB_NEW(Dm__Itimer, dm__itimer__init);
			x->which = w;
			x->interval_us = v->it_interval.tv_sec * 1000000ULL + v->it_interval.tv_usec;
			x->value_us = v->it_value.tv_sec * 1000000ULL + v->it_value.tv_usec;
			m->itimers[m->n_itimers++] = x;
		}
		p->securebits = (uint32_t)batch_result(b, sb_idx);
		m->has_pdeath_signal = true;
		m->pdeath_signal = *(int *)batch_local(b, pd);
		/*
		 * The root's parent-death signal belongs to its parent, which is
		 * outside the tree: after a restore the root's parent is the
		 * restorer (it exits at once: the signal would come then) or the
		 * daemon, never the process it was set for.  Neither firing on
		 * their exit nor dropping it (PR_GET_PDEATHSIG would say 0) is
		 * what the program set up: refused.
		 */
		if (p == d->procs[0] && m->pdeath_signal) {
			r = dm_fail(-ENOTSUP, "process %d (%s), the root of the tree, has a parent-death "
				    "signal (SIG%s, PR_SET_PDEATHSIG) tied to its parent %d outside the tree: "
				    "after a restore its parent is another process, the signal cannot "
				    "be given back", p->pid, m->comm ? m->comm : "?",
				    sigabbrev_np(m->pdeath_signal) ?: "?", p->ppid);
			goto out;
		}
		m->has_child_subreaper = true;
		m->child_subreaper = *(int *)batch_local(b, sr) != 0;
		m->has_dumpable = true;
		m->dumpable = batch_result(b, dump_idx) == 1;
		m->has_thp_disable = true;
		m->thp_disable = (uint32_t)batch_result(b, thp_idx);
		r = probe_membarrier(&t, p);
		if (r < 0)
			goto out;
	}

	/* POSIX timers: ids from /proc, state from timer_gettime */
	{
		_cleanup_free_ struct proc_timer *tm = NULL;
		size_t nt = 0;
		r = proc_read_timers(p->pid, &tm, &nt);
		if (r < 0 && r != -ENOENT)
			goto out;
		r = 0;
		if (nt) {
			uint64_t spec[nt];
			batch_init(b, &t);
			for (size_t i = 0; i < nt; i++) {
				spec[i] = batch_reserve(b, sizeof(struct itimerspec));
				batch_add(b, "timer_gettime", SYS_timer_gettime, tm[i].id, spec[i], 0, 0, 0, 0);
			}
			r = batch_run(b, NULL);
			if (r < 0)
				goto out;
			m->posix_timers = xcalloc(nt, sizeof(*m->posix_timers));
			for (size_t i = 0; i < nt; i++) {
				struct itimerspec *s = batch_local(b, spec[i]);
				Dm__PosixTimer *x = PB_NEW(Dm__PosixTimer, dm__posix_timer__init);
				x->id = tm[i].id;
				x->clock_id = tm[i].clock_id;
				x->notify = tm[i].notify | (tm[i].thread_id ? 4 /* SIGEV_THREAD_ID */ : 0);
				x->signo = tm[i].signo;
				x->sigval = tm[i].sigval;
				if (tm[i].thread_id) {
					x->has_notify_tid = true;
					x->notify_tid = tm[i].notify_pid;
					for (size_t k = 0; k < p->nthreads; k++)
						if (p->threads[k].tid == tm[i].notify_pid ||
						    p->threads[k].vtid == tm[i].notify_pid)
							x->notify_tid = p->threads[k].vtid;
				}
				x->interval_ns = s->it_interval.tv_sec * 1000000000ULL + s->it_interval.tv_nsec;
				x->value_ns = s->it_value.tv_sec * 1000000000ULL + s->it_value.tv_nsec;
				m->posix_timers[m->n_posix_timers++] = x;
			}
		}
	}

	/*
	 * per thread: timer slack, tid address, sigaltstack, in one batch split
	 * between the threads (batch_run_parts): they run their parts at once.
	 * Three entries and 32 bytes a thread: a batch holds 80 threads.
	 */
	for (size_t from = 0; from < p->nthreads;) {
		size_t to = MIN(p->nthreads, from + INJ_BATCH_MAX / 3);
		_cleanup_free_ struct inj_part *parts = xcalloc(to - from, sizeof(*parts));
		_cleanup_free_ struct tracee *tt = xcalloc(to - from, sizeof(*tt));
		_cleanup_free_ uint64_t *ta = xcalloc(to - from, sizeof(*ta));
		_cleanup_free_ uint64_t *ss = xcalloc(to - from, sizeof(*ss));
		unsigned part = 0;
		batch_init(b, &t);
		for (size_t i = from; i < to; i++) {
			size_t k = i - from;
			tt[k] = t;
			tt[k].tid = p->threads[i].tid;
			parts[k] = (struct inj_part){ &tt[k], b->n, 3 };
			ta[k] = batch_reserve(b, 8);
			ss[k] = batch_reserve(b, sizeof(stack_t));
			batch_add(b, "prctl(PR_GET_TIMERSLACK)", SYS_prctl, PR_GET_TIMERSLACK, 0, 0, 0, 0, 0);
			batch_add(b, "prctl(PR_GET_TID_ADDRESS)", SYS_prctl, PR_GET_TID_ADDRESS, ta[k], 0, 0, 0, 0);
			batch_add(b, "sigaltstack", SYS_sigaltstack, 0, ss[k], 0, 0, 0, 0);
		}
		r = batch_run_parts(b, parts, (unsigned)(to - from), &part, NULL);
		if (r < 0)
			goto out;
		for (size_t i = from; i < to; i++) {
			size_t k = i - from;
			Dm__Thread *th = m->threads[i];
			th->has_timer_slack_ns = true;
			th->timer_slack_ns = (uint64_t)batch_result(b, parts[k].first);
			uint64_t tid_addr = *(uint64_t *)batch_local(b, ta[k]);
			if (tid_addr) {
				th->has_clear_tid = true;
				th->clear_tid = tid_addr;
			}
			stack_t *st = batch_local(b, ss[k]);
			if (!(st->ss_flags & SS_DISABLE)) {
				th->has_altstack_sp = th->has_altstack_size = th->has_altstack_flags = true;
				th->altstack_sp = (uint64_t)st->ss_sp;
				th->altstack_size = st->ss_size;
				th->altstack_flags = st->ss_flags & ~SS_ONSTACK;
			}
		}
		from = to;
	}
	r = 0;
out:
	free(b);
	tracee_release(&t);
	/* remove the parasite; then every thread gets its own registers back */
	long u = inject_syscall_at(p->pid, insn, SYS_munmap, blob, INJ_BLOB_SIZE, 0, 0, 0, 0);
	if (u != 0 && r == 0)
		r = dm_fail(u < 0 ? (int)u : -EIO, "process %d: parasite munmap failed", p->pid);
	for (size_t i = 0; i < p->nthreads; i++) {
		struct user_regs_struct back = p->threads[i].regs;
		regs_fixup_restart(&back, true);
		int e = ptrace_setregs(p->threads[i].tid, &back);
		if (e < 0 && r == 0)
			r = dm_fail(e, "thread %d: cannot put registers back", p->threads[i].tid);
	}
	(void)d;
	return r;
}

/*
 * The parasite's round trips on one CPU.  Each one wakes the tracee and then
 * us again; across CPUs that is a wake-up IPI each way, which on this VM cost
 * more than the round trip itself (redis, 5 threads, 12 dumps each
 * alternated: regs and parasite median 1.91 ms (1.45-2.17) against 2.36
 * (1.93-5.80)).  So for its time this thread and every thread
 * of p are pinned to the CPU we are on (cpu_pin_here()), as the restore
 * pins its tree, and the threads get back the masks just dumped (a
 * thread allowed every CPU gets every CPU, not those online now).  A thread
 * that cannot run there (a cpuset) keeps its mask.  Should we die in between,
 * the threads keep the one-CPU mask (the tree runs on, on one CPU): nothing
 * else is left behind.  DMIGRATE_DUMP_PIN=0: no pinning.
 */
struct core_pin {
	bool on;
	cpu_set_t ours;
};

static void pin_core(struct dproc *p, struct core_pin *pin)
{
	cpu_set_t one;
	const char *e = getenv("DMIGRATE_DUMP_PIN");
	int cpu = e && !strcmp(e, "0") ? -1 : cpu_pin_here(&pin->ours);

	pin->on = cpu >= 0;
	if (!pin->on)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	for (size_t i = 0; i < p->nthreads; i++)
		sched_setaffinity(p->threads[i].tid, sizeof(one), &one);
}

static void unpin_core(struct dproc *p, struct core_pin *pin)
{
	if (!pin->on)
		return;
	for (size_t i = 0; i < p->nthreads; i++) {
		const Dm__Thread *tm = p->msg->threads && i < p->msg->n_threads ? p->msg->threads[i] : NULL;
		cpu_set_t all;
		const void *mask = NULL;
		size_t len = 0;
		if (tm && tm->has_cpus_all && tm->cpus_all) {
			memset(&all, 0xff, sizeof(all));
			mask = &all;
			len = sizeof(all);
		} else if (tm && tm->has_cpus_allowed) {
			mask = tm->cpus_allowed.data;
			len = tm->cpus_allowed.len;
		}
		if (mask && sched_setaffinity(p->threads[i].tid, len, mask) < 0 && errno != ESRCH)
			pr_warn("thread %d: its CPU mask could not be put back: %m", p->threads[i].tid);
	}
	sched_setaffinity(0, sizeof(pin->ours), &pin->ours);
}

int dump_proc_core(struct dump_ctx *d, struct dproc *p)
{
	struct core_pin pin;
	int r;

	if (p->zombie)
		return 0;
	r = dump_threads_regs(p);
	if (r < 0)
		return r;
	pin_core(p, &pin);
	r = dump_parasite(d, p);
	unpin_core(p, &pin);
	return r;
}
