/* SPDX-License-Identifier: MIT */
/*
 * The process tree: every process but the root is created by an injected
 * clone3(set_tid = [pid]) in its parent, depth first, so parents, pids,
 * sessions and process groups come out right.
 *
 * Sessions are inherited at fork, so the order of fork and setsid() in a
 * parent decides them:
 *
 *     P (sid S, will be a session leader: P.sid == P.pid)
 *       1. fork the children that stay in S (or lead their own session)
 *       2. setsid()                              P leads session P
 *       3. fork the children of session P
 *
 * A session that is neither inherited nor led by the process itself (its
 * leader died, or was not an ancestor) cannot be rebuilt this way and is
 * refused.  An id that names no process of the tree is "external": the root
 * keeps the restorer's (like a shell job), and so does every process that
 * shares it.  Process groups are set once every process exists: leaders
 * first, then members (setpgid needs the group to exist in the session).
 * Zombies are created alive and exit with their status once every group is
 * set (a zombie may still be a group's leader): exit_group() or a signal,
 * run from the blob right after the detach.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "base/log.h"

#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Ids of the tree's pid namespace; 0 = external (not a process of the tree). */
static pid_t in_tree(struct rst_ctx *c, pid_t id)
{
	return rst_find(c, id) ? id : 0;
}

struct tree_walk {
	struct rst_ctx *c;
	pid_t *cur_sid;   /* per process index: its session now */
	pid_t *cur_pgid;  /* its process group now */
};

static size_t idx_of(struct rst_ctx *c, struct rst_proc *p) { return (size_t)(p - c->procs); }

int tree_build(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		p->pidfd = -1;
		p->zombie = p->img->state == DM__PROC_STATE__PROC_ZOMBIE;
		if (i == 0)
			continue;
		p->parent = rst_find(c, p->img->ppid); /* validated: an earlier process */
		if (!p->parent)
			return dm_fail(-EBADMSG, "pid %d: parent %d not in the tree", p->img->pid,
				       p->img->ppid);
		struct rst_proc *pp = p->parent;
		pp->children = xrealloc(pp->children, (pp->n_children + 1) * sizeof(*pp->children));
		pp->children[pp->n_children++] = p;
	}
	if (c->procs[0].zombie)
		return dm_fail(-EBADMSG, "root pid %d is a zombie", c->procs[0].img->pid);
	for (size_t i = 0; i < c->nprocs; i++) {
		struct rst_proc *p = &c->procs[i];
		if (p->zombie && p->img->n_threads)
			return dm_fail(-EBADMSG, "pid %d: a zombie with threads", p->img->pid);
		if (p->zombie && !p->img->has_exit_code)
			return dm_fail(-EBADMSG, "pid %d: zombie without exit status", p->img->pid);
	}
	return 0;
}

static int create_one(struct rst_ctx *c, struct rst_proc *parent, struct rst_proc *p)
{
	struct tracee *pt = rst_main(parent);
	int32_t tid = p->img->pid;
	int exit_signal = SIGCHLD;
	struct rbatch rb;
	uint64_t rtid, rca;
	int r;

	if (p->img->has_exit_signal && p->img->exit_signal >= 0 && p->img->exit_signal <= 64)
		exit_signal = p->img->exit_signal;
	rb_init(&rb, c, pt);
	r = rb_stage(&rb, &tid, sizeof(tid), &rtid);
	if (r < 0)
		return r;
	struct clone_args ca = { .exit_signal = (uint64_t)exit_signal, .set_tid = rtid,
				 .set_tid_size = 1 };
	r = rb_stage(&rb, &ca, sizeof(ca), &rca);
	if (r < 0)
		return r;
	r = rb_add(&rb, "clone3", SYS_clone3, rca, sizeof(ca), 0, 0, 0, 0);
	if (r < 0)
		return r;
	pt->last_clone = 0;
	r = rb_run(&rb);
	if (r == -EEXIST)
		return dm_fail(r, "pid %d is in use", p->img->pid);
	if (r < 0)
		return rst_wrap(r, "pid %d: cannot create it in its parent %d", p->img->pid,
				parent->img->pid);
	long got = batch_result(&rb.b, 0);
	if (got != p->img->pid || pt->last_clone <= 0)
		return dm_fail(-EPROTO, "pid %d: clone3 in %d gave pid %ld (host %d)", p->img->pid,
			       parent->img->pid, got, pt->last_clone);
	p->host_pid = pt->last_clone;
	p->state = RST_SEIZED;
	rst_alloc_threads(p);
	r = stub_adopt(c, p, p->host_pid, NULL);
	if (r < 0)
		return r;
	p->pidfd = (int)syscall(SYS_pidfd_open, p->host_pid, 0);
	if (p->pidfd < 0)
		return dm_fail(neg_errno(), "pid %d: pidfd_open(%d): %m", p->img->pid, p->host_pid);
	pr_debug("pid %d created (host %d) by %d", p->img->pid, p->host_pid, parent->img->pid);
	return 0;
}

static int do_setsid(struct tree_walk *w, struct rst_proc *p)
{
	long r = rst_inject(w->c, rst_main(p), SYS_setsid, 0, 0, 0, 0, 0, 0);
	if (r < 0)
		return dm_fail((int)r, "pid %d: setsid: %s", p->img->pid, strerror((int)-r));
	w->cur_sid[idx_of(w->c, p)] = p->img->pid;
	w->cur_pgid[idx_of(w->c, p)] = p->img->pid;
	return 0;
}

static int create_subtree(struct tree_walk *w, struct rst_proc *p);

static int create_child(struct tree_walk *w, struct rst_proc *parent, struct rst_proc *ch)
{
	struct rst_ctx *c = w->c;
	size_t pi = idx_of(c, parent), ci = idx_of(c, ch);
	int r = create_one(c, parent, ch);
	if (r < 0)
		return r;
	w->cur_sid[ci] = w->cur_sid[pi];
	w->cur_pgid[ci] = w->cur_pgid[pi];
	pid_t want = in_tree(c, ch->img->sid);
	if (want != ch->img->pid && want != w->cur_sid[ci])
		return dm_fail(-ENOTSUP,
			       "pid %d: its session %d is neither its own nor its parent's: "
			       "such a session cannot be restored yet",
			       ch->img->pid, ch->img->sid);
	return create_subtree(w, ch);
}

static int create_subtree(struct tree_walk *w, struct rst_proc *p)
{
	bool leader = p->img->sid == p->img->pid;
	int r;

	/* children that keep the session p has now (or lead their own) */
	for (size_t i = 0; i < p->n_children; i++) {
		struct rst_proc *ch = p->children[i];
		if (leader && in_tree(w->c, ch->img->sid) == p->img->pid)
			continue;
		r = create_child(w, p, ch);
		if (r < 0)
			return r;
	}
	if (!leader)
		return 0;
	r = do_setsid(w, p);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->n_children; i++) {
		struct rst_proc *ch = p->children[i];
		if (in_tree(w->c, ch->img->sid) != p->img->pid)
			continue;
		r = create_child(w, p, ch);
		if (r < 0)
			return r;
	}
	return 0;
}

static int set_groups(struct tree_walk *w)
{
	struct rst_ctx *c = w->c;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < c->nprocs; i++) {
			struct rst_proc *p = &c->procs[i];
			pid_t want = in_tree(c, p->img->pgid);
			bool is_leader = want == p->img->pid;
			if (want == w->cur_pgid[i] || (pass == 0) != is_leader)
				continue;
			if (want == 0)
				return dm_fail(-ENOTSUP,
					       "pid %d: process group %d is outside the tree and not "
					       "the root's", p->img->pid, p->img->pgid);
			long r = rst_inject(c, rst_main(p), SYS_setpgid, 0, is_leader ? 0 : want, 0,
					    0, 0, 0);
			if (r < 0)
				return dm_fail((int)r, "pid %d: setpgid(%d): %s", p->img->pid, want,
					       strerror((int)-r));
			w->cur_pgid[i] = want;
		}
	}
	return 0;
}

int tree_create(struct rst_ctx *c)
{
	struct rst_proc *root = &c->procs[0];
	_cleanup_free_ pid_t *sid = xcalloc(c->nprocs, sizeof(pid_t));
	_cleanup_free_ pid_t *pgid = xcalloc(c->nprocs, sizeof(pid_t));
	struct tree_walk w = { c, sid, pgid };

	/* the root starts in the restorer's session and group: external */
	pid_t rsid = in_tree(c, root->img->sid);
	if (rsid != 0 && rsid != root->img->pid)
		return dm_fail(-EBADMSG, "root pid %d: session %d is a process of its tree",
			       root->img->pid, root->img->sid);
	return create_subtree(&w, root) ?: set_groups(&w);
}

/* ------------------------------------------------------------- zombies */

static int zombie_exit(struct rst_ctx *c, struct rst_proc *p)
{
	struct tracee *t = rst_main(p);
	struct user_regs_struct regs;
	int status = p->img->exit_code, r;
	uint64_t none = 0;

	if (p->img->comm) {
		/* its name is all a zombie shows */
		char name[16] = { 0 };
		struct rbatch rb;
		uint64_t rn;
		strncpy(name, p->img->comm, sizeof(name) - 1);
		rb_init(&rb, c, t);
		r = rb_stage(&rb, name, sizeof(name), &rn);
		if (r >= 0)
			r = rb_add(&rb, "prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, rn, 0, 0, 0, 0);
		if (r >= 0)
			r = rb_run(&rb);
		if (r < 0)
			return rst_wrap(r, "zombie %d", p->img->pid);
	}
	r = ptrace_getregs(t->tid, &regs);
	if (r < 0)
		return dm_fail(r, "zombie %d: registers: %s", p->img->pid, strerror(-r));
	regs.rip = t->code;
	regs.orig_rax = -1;
	if (WIFSIGNALED(status)) {
		struct rlimit nocore = { 0, 0 };
		/* the image's core flag cannot be reproduced: no core file is written */
		prlimit(p->host_pid, RLIMIT_CORE, &nocore, NULL);
		if (ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(none), &none) < 0)
			return dm_fail(neg_errno(), "zombie %d: PTRACE_SETSIGMASK: %m", p->img->pid);
		regs.rax = SYS_kill;
		regs.rdi = (uint64_t)p->img->pid;
		regs.rsi = (uint64_t)WTERMSIG(status);
	} else {
		regs.rax = SYS_exit_group;
		regs.rdi = (uint64_t)WEXITSTATUS(status);
	}
	r = ptrace_setregs(t->tid, &regs);
	if (r < 0)
		return dm_fail(r, "zombie %d: set registers: %s", p->img->pid, strerror(-r));
	if (ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0)
		return dm_fail(neg_errno(), "zombie %d: PTRACE_DETACH: %m", p->img->pid);
	p->state = RST_DETACHED;
	t->tid = 0;
	p->threads[0].seized = false;

	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
	r = poll(&pfd, 1, 5000);
	if (r <= 0)
		return dm_fail(r < 0 ? neg_errno() : -ETIMEDOUT, "zombie %d did not exit",
			       p->img->pid);
	if (p->parent)
		p->parent->had_zombie_child = true;
	pr_debug("zombie %d exited (status %#x)", p->img->pid, status);
	return 0;
}

int tree_finish_zombies(struct rst_ctx *c)
{
	/* children before parents: a zombie's parent must still be there to get it */
	for (size_t i = c->nprocs; i-- > 0;) {
		struct rst_proc *p = &c->procs[i];
		if (!p->zombie)
			continue;
		int r = zombie_exit(c, p);
		if (r < 0)
			return r;
	}
	return 0;
}
