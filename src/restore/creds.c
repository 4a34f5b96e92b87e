/* SPDX-License-Identifier: MIT */
/*
 * Identity of a process: umask, personality, parent-death signal, child
 * subreaper (in the main thread's state batch, threads.c), OOM score; then
 * resource limits (prlimit, from the restorer) and, per thread (credentials
 * are per thread in the kernel), the credentials and the seccomp filters, and
 * last the dumpable flag (a uid change resets it).
 *
 * Order of one thread's batch, and why:
 *   PR_SET_KEEPCAPS        so that setresuid() to a non-zero uid keeps the
 *                          permitted set we still need below
 *   setgroups, setresgid, setresuid
 *   capset(all, all, inh)  effective again: CAP_SETUID/CAP_SETPCAP/CAP_SYS_ADMIN
 *   setfsgid, setfsuid     when they differ from the effective ids
 *   ambient: clear, raise  (needs the cap in permitted and inheritable)
 *   PR_CAPBSET_DROP        what the image's bounding set lacks (CAP_SETPCAP)
 *   seccomp filters        in install order, flags kept (not TSYNC/listener);
 *                          allowed without no_new_privs thanks to CAP_SYS_ADMIN.
 *                          PTRACE_O_SUSPEND_SECCOMP keeps them off our own
 *                          injected syscalls until the detach.
 *   PR_SET_SECUREBITS      (CAP_SETPCAP)
 *   capset(final)          the image's sets: privileges only go down from here
 *   PR_SET_NO_NEW_PRIVS
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "base/log.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define SECCOMP_KEEP_FLAGS (SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW)

static int set_rlimits(struct rst_ctx *c, struct rst_proc *p)
{
	for (size_t i = 0; i < p->img->n_rlimits; i++) {
		const Dm__Rlimit *l = p->img->rlimits[i];
		struct rlimit rl = { l->cur, l->max }, cur;
		if (l->resource >= RLIM_NLIMITS)
			return dm_fail(-EBADMSG, "pid %d: rlimit %u", p->img->pid, l->resource);
		if (prlimit(p->host_pid, (int)l->resource, &rl, NULL) == 0)
			continue;
		int r = neg_errno();
		/* raising a hard limit needs CAP_SYS_RESOURCE, which root lacks here */
		if (r != -EPERM || prlimit(p->host_pid, (int)l->resource, NULL, &cur) < 0)
			return dm_fail(r, "pid %d: prlimit(%u): %s", p->img->pid, l->resource,
				       strerror(-r));
		rl.rlim_max = cur.rlim_max;
		rl.rlim_cur = MIN(rl.rlim_cur, rl.rlim_max);
		pr_warn("pid %d: rlimit %u: hard limit %llu kept (no CAP_SYS_RESOURCE to raise it to %llu)",
			p->img->pid, l->resource, (unsigned long long)cur.rlim_max,
			(unsigned long long)l->max);
		if (prlimit(p->host_pid, (int)l->resource, &rl, NULL) < 0)
			return dm_fail(neg_errno(), "pid %d: prlimit(%u): %m", p->img->pid, l->resource);
	}
	return 0;
}

static int set_oom_score(struct rst_proc *p)
{
	char path[64], val[16];
	_cleanup_close_ int fd = -1;

	if (!p->img->has_oom_score_adj)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", p->host_pid);
	snprintf(val, sizeof(val), "%d", p->img->oom_score_adj);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0) {
		int r = neg_errno();
		if (r == -EACCES) { /* lowering below the minimum needs CAP_SYS_RESOURCE */
			pr_warn("pid %d: oom_score_adj %d cannot be set here", p->img->pid,
				p->img->oom_score_adj);
			return 0;
		}
		return dm_fail(r, "pid %d: oom_score_adj: %s", p->img->pid, strerror(-r));
	}
	return 0;
}

static int membarrier_add(const Dm__Process *ip, struct rbatch *rb);

/* The process-wide part of the identity, into the main thread's batch. */
int ident_add(struct rst_ctx *c, struct rst_proc *p, struct rbatch *rb)
{
	const Dm__Process *ip = p->img;
	int r = set_oom_score(p);

	(void)c;
	if (r >= 0 && ip->has_umask)
		r = rb_add(rb, "umask", SYS_umask, ip->umask & 0777, 0, 0, 0, 0, 0);
	if (r >= 0 && ip->has_personality)
		r = rb_add(rb, "personality", SYS_personality, ip->personality, 0, 0, 0, 0, 0);
	if (r >= 0 && ip->has_child_subreaper && ip->child_subreaper)
		r = rb_add(rb, "prctl(PR_SET_CHILD_SUBREAPER)", SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0,
			   0, 0, 0);
	if (r >= 0 && ip->has_thp_disable && (ip->thp_disable & 1))
		r = rb_add(rb, "prctl(PR_SET_THP_DISABLE)", SYS_prctl, PR_SET_THP_DISABLE, 1,
			   ip->thp_disable & 2 /* PR_THP_DISABLE_EXCEPT_ADVISED */, 0, 0, 0);
	if (r >= 0 && !p->membarrier_done)
		r = membarrier_add(ip, rb);
	return r;
}

int membarrier_restore(struct rst_ctx *c, struct rst_proc *p)
{
	if (p->img->n_threads < 2)
		return 0;	/* ident_add()'s batch: one round trip less */
	struct rbatch *rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, &p->threads[0].t);
	int r = membarrier_add(p->img, rb);
	if (r >= 0 && rb->b.n)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d", p->img->pid);
	p->membarrier_done = true;
	return 0;
}

/*
 * membarrier: the private registrations the dump probed, again; the global
 * one cannot be probed, so every process is registered for it (it only
 * makes other processes' global barriers reach it too).
 */
static int membarrier_add(const Dm__Process *ip, struct rbatch *rb)
{
	static const struct { unsigned bit; int cmd; } regs[] = {
		{ DM_MEMBARRIER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED },
		{ DM_MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE,
		  MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE },
		{ DM_MEMBARRIER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ },
	};
	long have = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(regs) && r >= 0; i++) {
		if (!ip->has_membarrier || !(ip->membarrier & regs[i].bit))
			continue;
		if (have < 0 || !(have & regs[i].cmd))
			return dm_fail(-ENOTSUP, "pid %d: this kernel has no membarrier command %#x "
				       "(registered at the checkpoint)", ip->pid, regs[i].cmd);
		r = rb_add(rb, "membarrier (register)", SYS_membarrier, regs[i].cmd, 0, 0, 0, 0, 0);
	}
	if (r >= 0 && have > 0 && (have & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		r = rb_add(rb, "membarrier(REGISTER_GLOBAL_EXPEDITED)", SYS_membarrier,
			   MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0, 0, 0, 0);
	return r;
}

/*
 * The audit login uid.  Only the task itself may write its
 * /proc/PID/loginuid (with CAP_AUDIT_CONTROL, which it still has before its
 * credentials): open, then write and close, two round trips, and only when it
 * differs from ours, which the stub inherited.
 */
int loginuid_restore(struct rst_ctx *c, struct rst_proc *p)
{
	static const char path[] = "/proc/thread-self/loginuid";
	int64_t ours;
	char val[16];
	uint64_t rp, rv;
	struct rbatch *rb;
	int r;

	if (!p->img->has_loginuid)
		return 0;
	if (proc_read_s64(0, "loginuid", &ours) < 0) {
		dm_error_clear();
		return dm_fail(-ENOTSUP, "pid %d: login uid %u cannot be restored: this kernel has no "
			       "/proc/PID/loginuid", p->img->pid, p->img->loginuid);
	}
	if ((uint32_t)ours == p->img->loginuid)
		return 0;
	rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, rst_main(p));
	r = rb_stage(rb, path, sizeof(path), &rp);
	if (r >= 0)
		r = rb_add(rb, "open(/proc/thread-self/loginuid)", SYS_openat, AT_FDCWD, rp,
			   O_WRONLY | O_CLOEXEC, 0, 0, 0);
	if (r >= 0)
		r = rb_run(rb);
	if (r >= 0) {
		long fd = batch_result(&rb->b, 0);
		int n = snprintf(val, sizeof(val), "%u", p->img->loginuid);
		rb_init(rb, c, rst_main(p));
		r = rb_stage(rb, val, (size_t)n, &rv);
		if (r >= 0)
			r = rb_add(rb, "write(loginuid)", SYS_write, (uint64_t)fd, rv, (uint64_t)n, 0, 0, 0);
		if (r >= 0)
			r = rb_add(rb, "close(loginuid)", SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0);
		if (r >= 0)
			r = rb_run(rb);
	}
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: login uid %u", p->img->pid, p->img->loginuid);
	return 0;
}

/* ------------------------------------------------------------ creds */

/*
 * PR_CAPBSET_DROP takes ~2 us here (a new cred each time), and a
 * container's threads drop 30-40 caps each (runc's bounding set keeps a
 * few): 80 us a thread, most of the credentials' time for a service of 10
 * threads.  A task inherits its creator's bounding set, so the caps that
 * every thread of the tree drops go once, in the root, before it makes
 * any process or thread.  The restore needs no cap of the bounding set (it
 * does not execve; its effective and permitted caps are not bounded by
 * it).  Kept: a cap any thread keeps, or holds inheritable (capset bounds
 * a new inheritable set by the bounding set).
 */
int creds_early_add(struct rst_ctx *c, struct rbatch *rb)
{
	uint64_t keep = 0;
	int r = 0;

	for (size_t i = 0; i < c->ck->nprocs; i++) {
		const Dm__Process *ip = c->ck->procs[i];
		if (!ip->creds)
			return 0;	/* refused later (creds_restore): nothing early */
		keep |= ip->creds->cap_bnd | ip->creds->cap_inh;
		for (size_t k = 0; k < ip->n_threads; k++)
			if (ip->threads[k]->creds)
				keep |= ip->threads[k]->creds->cap_bnd | ip->threads[k]->creds->cap_inh;
	}
	uint64_t drop = c->cap_bnd & ~keep;
	for (unsigned cap = 0; cap < 64 && r >= 0; cap++)
		if (drop >> cap & 1)
			r = rb_add(rb, "prctl(PR_CAPBSET_DROP) (the tree's)", SYS_prctl, PR_CAPBSET_DROP, cap,
				   0, 0, 0, 0);
	if (r >= 0)
		c->bnd_early = drop;
	return r;
}

static int add_capset(struct rbatch *rb, uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct {
		struct __user_cap_header_struct h;
		struct __user_cap_data_struct d[2];
	} cs = { .h = { _LINUX_CAPABILITY_VERSION_3, 0 } };
	uint64_t rcs;
	int r;

	cs.d[0] = (struct __user_cap_data_struct){ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh };
	cs.d[1] = (struct __user_cap_data_struct){ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32),
						   (uint32_t)(inh >> 32) };
	r = rb_stage(rb, &cs, sizeof(cs), &rcs);
	if (r < 0)
		return r;
	return rb_add(rb, "capset", SYS_capset, rcs, rcs + sizeof(cs.h), 0, 0, 0, 0);
}

static int add_seccomp(struct rbatch *rb, const Dm__Thread *t)
{
	for (size_t i = 0; i < t->n_seccomp; i++) {
		const Dm__SeccompFilter *f = t->seccomp[i];
		struct sock_fprog prog = { .len = (unsigned short)(f->insns.len / 8) };
		uint64_t rins, rprog;
		int r = rb_room(rb, 1, f->insns.len + sizeof(prog));
		if (r < 0)
			return r;
		rins = rb_put(rb, f->insns.data, f->insns.len);
		prog.filter = (struct sock_filter *)(uintptr_t)rins;
		rprog = rb_put(rb, &prog, sizeof(prog));
		r = rb_add(rb, "seccomp(SET_MODE_FILTER)", SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			   (f->has_flags ? f->flags : 0) & SECCOMP_KEEP_FLAGS, rprog, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* thread th's credentials, seccomp filters and (last) what follows every thread's, into rb */
static int creds_add(struct rst_ctx *c, struct rst_proc *p, struct rst_thread *th, bool last,
		     struct rbatch *rb)
{
	const Dm__Thread *ti = th->img;
	const Dm__Creds *cr = ti->creds ? ti->creds : p->img->creds; /* creds are per thread */
	int r = 0;

	if (cr) {
		uint64_t rg = 0;
		r = rb_add(rb, "prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0, 0);
		if (r >= 0 && cr->n_groups)
			r = rb_stage(rb, cr->groups, cr->n_groups * sizeof(uint32_t), &rg);
		if (r >= 0)
			r = rb_add(rb, "setgroups", SYS_setgroups, cr->n_groups, rg, 0, 0, 0, 0);
		if (r >= 0)
			r = rb_add(rb, "setresgid", SYS_setresgid, cr->gid, cr->egid, cr->sgid, 0, 0, 0);
		if (r >= 0)
			r = rb_add(rb, "setresuid", SYS_setresuid, cr->uid, cr->euid, cr->suid, 0, 0, 0);
		if (r >= 0)
			r = add_capset(rb, c->cap_all, c->cap_all, cr->cap_inh & c->cap_all);
		if (r >= 0 && cr->fsgid != cr->egid)
			r = rb_add(rb, "setfsgid", SYS_setfsgid, cr->fsgid, 0, 0, 0, 0, 0);
		if (r >= 0 && cr->fsuid != cr->euid)
			r = rb_add(rb, "setfsuid", SYS_setfsuid, cr->fsuid, 0, 0, 0, 0, 0);
		if (r >= 0)
			r = rb_add(rb, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", SYS_prctl, PR_CAP_AMBIENT,
				   PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
		for (unsigned cap = 0; cap < 64 && r >= 0; cap++)
			if (cr->has_cap_amb && ((cr->cap_amb & c->cap_all) >> cap & 1))
				r = rb_add(rb, "prctl(PR_CAP_AMBIENT_RAISE)", SYS_prctl, PR_CAP_AMBIENT,
					   PR_CAP_AMBIENT_RAISE, cap, 0, 0, 0);
		for (unsigned cap = 0; cap < 64 && r >= 0; cap++)
			if (((c->cap_bnd & ~c->bnd_early) >> cap & 1) && !(cr->cap_bnd >> cap & 1))
				r = rb_add(rb, "prctl(PR_CAPBSET_DROP)", SYS_prctl, PR_CAPBSET_DROP, cap,
					   0, 0, 0, 0);
	}
	if (r >= 0)
		r = add_seccomp(rb, ti);
	if (r >= 0 && cr) {
		if (cr->has_securebits)
			r = rb_add(rb, "prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS,
				   cr->securebits, 0, 0, 0, 0);
		if (r >= 0)
			r = add_capset(rb, cr->cap_eff & c->cap_all, cr->cap_prm & c->cap_all,
				       cr->cap_inh);
		if (r >= 0 && cr->has_no_new_privs && cr->no_new_privs)
			r = rb_add(rb, "prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1,
				   0, 0, 0, 0);
	}
	/* the last thread's batch: what must follow every thread's creds.
	 * A change of credentials clears the parent-death signal.  It fires
	 * when the thread that created the task exits; the root's creator is
	 * the restorer, which exits right after the restore: the root keeps
	 * none (its real parent is not ours to give; the checkpoint refuses a
	 * root with one, dump-proc.c: only an older image has it). */
	if (r >= 0 && last)
		r = rb_add(rb, "prctl(PR_SET_PDEATHSIG)", SYS_prctl, PR_SET_PDEATHSIG,
			   p->parent && p->img->has_pdeath_signal ? (uint64_t)p->img->pdeath_signal : 0,
			   0, 0, 0, 0);
	if (last && !p->parent && p->img->has_pdeath_signal && p->img->pdeath_signal)
		pr_warn("pid %d: parent-death signal %d not restored (its parent is outside the tree)",
			p->img->pid, p->img->pdeath_signal);
	if (r >= 0 && last && p->img->has_dumpable)
		r = rb_add(rb, "prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE,
			   p->img->dumpable ? 1 : 0, 0, 0, 0, 0);
	if (r >= 0 && last)
		r = rb_add(rb, "close (transport)", SYS_close, (uint64_t)c->tfd, 0, 0, 0, 0, 0);
	return r;
}

static int creds_build(struct rst_ctx *c, struct rst_proc *p, size_t i, struct rbatch *rb, void *arg)
{
	(void)arg;
	return creds_add(c, p, &p->threads[i], false, rb);
}

int creds_restore(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Creds *cr = p->img->creds;
	int r;

	/* image_validate() refuses this already: never restore a process with ours */
	if (!cr)
		return dm_fail(-EBADMSG, "pid %d: the image has no credentials: it would run as root "
				"with the restorer's capabilities", p->img->pid);
	for (size_t i = 0; i < p->n_threads; i++) {
		const Dm__Creds *tc = p->threads[i].img->creds ? p->threads[i].img->creds : cr;
		uint64_t missing = tc ? tc->cap_prm & ~c->cap_all : 0;
		if (missing)
			pr_warn("pid %d: capabilities %#llx are not ours to give: dropped", p->img->pid,
				(unsigned long long)missing);
	}
	/* rlimits only now: the lazy uffd needed a free fd under RLIMIT_NOFILE */
	r = set_rlimits(c, p);
	if (r < 0)
		return r;
	/* the other threads first, all at once; the main one last carries the
	 * dumpable flag (a uid change resets it) and closes the transport */
	size_t failed = 0;
	r = rb_run_threads(c, p, 1, p->n_threads, creds_build, NULL, &failed);
	if (r < 0)
		return rst_wrap(r, "pid %d: thread %d: credentials", p->img->pid,
				p->threads[failed].img->tid);
	struct rbatch *rb = xmalloc(sizeof(*rb));
	rb_init(rb, c, rst_main(p));
	r = creds_add(c, p, &p->threads[0], true, rb);
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r < 0)
		return rst_wrap(r, "pid %d: thread %d: credentials", p->img->pid, p->threads[0].img->tid);
	return 0;
}
