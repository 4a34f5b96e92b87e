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
 * refused: by the dump, and before anything is made by tree_create
 * (image/treecheck.c runs this same order on the ids: keep them in step).  An id that names no process of the tree is "external": the root
 * keeps the restorer's (like a shell job), and so does every process that
 * shares it.  Process groups are set once every process exists: leaders
 * first, then members (setpgid needs the group to exist in the session).
 * Zombies are created alive and exit with their status once every group is
 * set (a zombie may still be a group's leader): exit_group() or a signal,
 * run from the blob right after the detach.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "image/treecheck.h"
#include "base/log.h"

#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>

/*
 * A session or group id of the image, as the restore sees it:
 *   > 0   a process of the tree;
 *   0     the root's own, from outside the tree (kept from the restorer);
 *   < 0   -id: the id of a process that is gone (a session's leader that
 *         exited): a helper process with that pid stands in for it.
 */
static pid_t map_id(struct rst_ctx *c, pid_t id, pid_t root_id)
{
	if (rst_find(c, id))
		return id;
	if (id == root_id)
		return 0;
	return -id;
}

static pid_t want_sid(struct rst_ctx *c, const struct rst_proc *p)
{
	return map_id(c, p->img->sid, c->procs[0].img->sid);
}

static pid_t want_pgid(struct rst_ctx *c, const struct rst_proc *p)
{
	return map_id(c, p->img->pgid, c->procs[0].img->pgid);
}

struct tree_walk {
	struct rst_ctx *c;
	pid_t *cur_sid;   /* per process index: its session now (map_id() values) */
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
		if (p->img->n_inherited)
			pp->cow_parent = true; /* validated: pp is no zombie */
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

static int create_one_(struct rst_ctx *c, struct rst_proc *parent, struct rst_proc *p, bool waited)
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
	/* a pid its dead owner still holds (a slow reaper): once */
	if (r == -EEXIST && !c->own_pidns && !waited && rst_pid_wait_free(p->img->pid))
		return create_one_(c, parent, p, true);
	if (r < 0 && (r == -EEXIST || !c->own_pidns)) {
		int e = rst_clone_pid_error(p->img->pid, r);
		if (e < 0)
			return e;
	}
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

static int create_one(struct rst_ctx *c, struct rst_proc *parent, struct rst_proc *p)
{
	return create_one_(c, parent, p, false);
}

static int do_setsid(struct rst_ctx *c, struct rst_proc *p)
{
	/* a container's init leads its session already (runc made it so) */
	if (getsid(p->host_pid) == p->host_pid)
		return 0;
	long r = rst_inject(c, rst_main(p), SYS_setsid, 0, 0, 0, 0, 0, 0);
	if (r < 0)
		return dm_fail((int)r, "pid %d: setsid: %s", p->img->pid, strerror((int)-r));
	return 0;
}

static int create_subtree(struct tree_walk *w, struct rst_proc *p);

/* ch, created by creator (its parent, or a helper) which is in session sid and group pgid now */
static int create_child(struct tree_walk *w, struct rst_proc *creator, struct rst_proc *ch,
			pid_t sid, pid_t pgid)
{
	struct rst_ctx *c = w->c;
	size_t ci = idx_of(c, ch);
	pid_t want = want_sid(c, ch);

	if (want != ch->img->pid && want != sid) {
		if (want < 0)
			return dm_fail(-ENOTSUP,
				       "pid %d: the leader of its session %d is gone, and its parent "
				       "%d is not the reaper of the tree: such a session cannot be "
				       "restored yet", ch->img->pid, ch->img->sid, ch->img->ppid);
		return dm_fail(-ENOTSUP,
			       "pid %d: its session %d is neither its own nor its parent's: "
			       "such a session cannot be restored yet", ch->img->pid, ch->img->sid);
	}
	int r = create_one(c, creator, ch);
	if (r >= 0)
		r = files_ctty_drop(c, ch);
	if (r < 0)
		return r;
	w->cur_sid[ci] = sid;
	w->cur_pgid[ci] = pgid;
	return create_subtree(w, ch);
}

/* ------------------------------------------------ sessions of gone leaders */

/*
 * A daemon: its session's leader (the intermediate of a double fork) exited
 * and it was reparented to the tree's reaper.  A session can only be
 * inherited, so a helper with the leader's pid is made under the reaper; it
 * calls setsid() and forks the orphans of that session, then exits: they are
 * reparented to the reaper (pid 1 of the tree's namespace, or a child
 * subreaper), which reaps the helper at once (an injected waitid).
 */
static int helper_new(struct rst_ctx *c, struct rst_proc *reaper, pid_t sid,
		      struct rst_proc **ret)
{
	struct rst_proc *h = xcalloc(1, sizeof(*h));
	Dm__Process *img = xcalloc(1, sizeof(*img));
	int r;

	dm__process__init(img);
	img->pid = sid;
	img->ppid = reaper->img->pid;
	h->img = img;
	h->pidfd = -1;
	c->helpers = xrealloc(c->helpers, (c->n_helpers + 1) * sizeof(*c->helpers));
	c->helpers[c->n_helpers++] = h;
	r = create_one(c, reaper, h);
	if (r < 0)
		return rst_wrap(r, "helper for the session %d", sid);
	r = do_setsid(c, h);
	if (r < 0)
		return r;
	*ret = h;
	return 0;
}

static int helper_end(struct rst_ctx *c, struct rst_proc *reaper, struct rst_proc *h)
{
	struct tracee *t = rst_main(h);
	struct user_regs_struct regs;
	int r;

	r = ptrace_getregs(t->tid, &regs);
	if (r < 0)
		return dm_fail(r, "helper %d: registers: %s", h->img->pid, strerror(-r));
	regs.rip = t->code;
	regs.orig_rax = -1;
	regs.rax = SYS_exit_group;
	regs.rdi = 0;
	r = ptrace_setregs(t->tid, &regs);
	if (r < 0)
		return dm_fail(r, "helper %d: registers: %s", h->img->pid, strerror(-r));
	if (ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0)
		return dm_fail(neg_errno(), "helper %d: PTRACE_DETACH: %m", h->img->pid);
	h->state = RST_DETACHED;
	h->threads[0].seized = false;
	/* blocks the reaper until the helper is gone: it exits at once */
	long w = rst_inject(c, rst_main(reaper), SYS_waitid, P_PID, (uint64_t)h->img->pid, 0,
			    WEXITED, 0, 0);
	if (w < 0)
		return dm_fail((int)w, "helper %d: waitid in %d: %s", h->img->pid, reaper->img->pid,
			       strerror((int)-w));
	reaper->had_zombie_child = true; /* its SIGCHLD goes */
	pr_debug("helper %d (session of a gone leader) done", h->img->pid);
	return 0;
}

static int create_orphans(struct tree_walk *w, struct rst_proc *p)
{
	struct rst_ctx *c = w->c;
	bool reaper = p == &c->procs[0] &&
		      (c->own_pidns || (p->img->has_child_subreaper && p->img->child_subreaper));
	bool subreaper_set = false;
	int r;

	if (!reaper)
		return 0;
	for (size_t i = 0; i < p->n_children; i++) {
		pid_t sid = want_sid(c, p->children[i]);
		bool seen = false;
		if (sid >= 0)
			continue;
		for (size_t k = 0; k < i; k++)
			seen |= want_sid(c, p->children[k]) == sid;
		if (seen)
			continue;
		if (!c->own_pidns && !subreaper_set) {
			/* orphans go to the nearest subreaper: be it before the helper exits */
			long s = rst_inject(c, rst_main(p), SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0,
					    0, 0);
			if (s < 0)
				return dm_fail((int)s, "pid %d: PR_SET_CHILD_SUBREAPER: %s", p->img->pid,
					       strerror((int)-s));
			subreaper_set = true;
		}
		struct rst_proc *h = NULL;
		r = helper_new(c, p, -sid, &h);
		if (r < 0)
			return r;
		for (size_t k = i; k < p->n_children; k++) {
			if (want_sid(c, p->children[k]) != sid)
				continue;
			r = create_child(w, h, p->children[k], sid, sid);
			if (r < 0)
				return r;
		}
		r = helper_end(c, p, h);
		if (r < 0)
			return r;
	}
	return 0;
}

static int create_children(struct tree_walk *w, struct rst_proc *p)
{
	struct rst_ctx *c = w->c;
	size_t pi = idx_of(c, p);
	bool leader = p->img->sid == p->img->pid;
	int r;

	r = create_orphans(w, p);
	if (r < 0)
		return r;
	/* children that keep the session p has now (or lead their own) */
	for (size_t i = 0; i < p->n_children; i++) {
		struct rst_proc *ch = p->children[i];
		pid_t sid = want_sid(c, ch);
		if ((sid < 0 && ch->host_pid) || (leader && sid == p->img->pid))
			continue;
		r = create_child(w, p, ch, w->cur_sid[pi], w->cur_pgid[pi]);
		if (r < 0)
			return r;
	}
	if (!leader)
		return 0;
	r = do_setsid(c, p);
	if (r >= 0)
		r = files_ctty_early(c, p);
	if (r < 0)
		return r;
	w->cur_sid[pi] = w->cur_pgid[pi] = p->img->pid;
	for (size_t i = 0; i < p->n_children; i++) {
		struct rst_proc *ch = p->children[i];
		if (want_sid(c, ch) != p->img->pid)
			continue;
		r = create_child(w, p, ch, w->cur_sid[pi], w->cur_pgid[pi]);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * A parent whose children inherit pages from it (copy-on-write shared at the
 * dump) gets its address space and pages before it forks anyone: the
 * children start as its copy and keep those pages (mm.c).  What a fork
 * would not copy as it was (DONTFORK, WIPEONFORK) waits until they exist.
 */
static int create_subtree(struct tree_walk *w, struct rst_proc *p)
{
	int r;

	if (p->cow_parent) {
		r = mm_restore(w->c, p);
		if (r < 0)
			return r;
	}
	r = create_children(w, p);
	if (r >= 0 && p->cow_parent)
		r = mm_fork_madvise(w->c, p);
	return r;
}

static int set_groups(struct tree_walk *w)
{
	struct rst_ctx *c = w->c;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < c->nprocs; i++) {
			struct rst_proc *p = &c->procs[i];
			pid_t want = want_pgid(c, p);
			bool is_leader = want == p->img->pid;
			if (want == w->cur_pgid[i] || (pass == 0) != is_leader)
				continue;
			if (want <= 0)
				return dm_fail(-ENOTSUP,
					       "pid %d: process group %d is not one the restore can "
					       "make (outside the tree, or of a process that is gone)",
					       p->img->pid, p->img->pgid);
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
	_cleanup_free_ struct tree_ids *ids = xcalloc(c->nprocs, sizeof(*ids));

	/* refused before any process is made (the dump refuses such a tree too) */
	for (size_t i = 0; i < c->nprocs; i++) {
		const Dm__Process *m = c->procs[i].img;
		ids[i] = (struct tree_ids){ m->pid, i ? m->ppid : 0, m->sid, m->pgid,
					    m->has_child_subreaper && m->child_subreaper };
	}
	int r = tree_ids_check(ids, c->nprocs, c->own_pidns);
	if (r < 0)
		return r;
	/* the root starts in the restorer's session and group: external (0) */
	pid_t rsid = want_sid(c, root);
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
