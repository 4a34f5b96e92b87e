/* SPDX-License-Identifier: MIT */
/*
 * The source side of a migration (dmigrate migrate), see wire.h for the
 * messages and migrate.h for the modes.
 *
 *   connect control, fault, bulk ──> START/ACCEPT
 *   [pre-copy, hybrid] mem_dirty: rounds of written pages -> bulk (PRECOPY)
 *   FREEZE (dump_freeze)                                           t_freeze
 *   [pre-copy, hybrid] last scan: what was written since -> DIRTY list; detach
 *   dump_collect, lazy_remote: an image without memory contents
 *   files -> control, STATE_END                                  t_state_sent
 *   stop-and-copy, pre-copy: push every page not sent clean (bulk, STORE)
 *   post-copy, hybrid: page server on the fault channel (the restore may
 *                      already need a page)
 *   <- RESUMED (the destination holds its restored tree stopped)    t_resume
 *   SIGSTOP queued to the tree (a group stop if we die), COMMIT: it runs there;
 *   [post-copy, hybrid] push the rest (bulk, INSTALL)
 *   <- MEM_DONE                                                       t_done
 *   kill the frozen tree, FIN
 *
 * The first phase (the connection, START and ACCEPT) is source-start.c's;
 * the memory before the freeze (the rounds, post-copy's working set and
 * pre-send) is source-mem.c's; what they share, source-int.h.
 *
 * The rule: every ptrace operation on the tree (freeze, dump, release)
 * happens on this thread.  Workers (page server, pusher) only read memory.
 * Until COMMIT is sent, any failure (or SIGHUP/INT/TERM/PIPE) thaws the tree
 * (DUMP_RESUME); after it, the tree stays stopped here whatever happens.
 */
#define LOG_PREFIX "migrate: "
#include "migrate/source-int.h"
#include "base/clock.h"
#include "pool/pool.h"
#include "proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>


double src_ms_since(const struct src *s, uint64_t t)
{
	return t ? ns_to_ms(s->t0, t) : -1;
}

/* A line of the display (and of the log at info level). */
void src_say(struct src *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pr_info("%s", line);
	if (!s->tty)
		return;
	pthread_mutex_lock(&s->out_lock);
	fprintf(stderr, "%s  %s\n", s->status_shown ? "\r\033[K" : "", line);
	s->status_shown = false;
	pthread_mutex_unlock(&s->out_lock);
}

/* Bytes over the three channels so far, both ways. */
uint64_t src_bytes_moved(const struct src *s)
{
	uint64_t b = mig_chan_bytes(s->ctl) + mig_chan_bytes(s->fault) + mig_chan_bytes(s->bulk) +
		     mig_chan_bytes(s->rfs_chan) + mig_chan_bytes(s->rfs_miss);
	for (size_t i = 0; i < s->n_vol; i++)
		b += mig_chan_bytes(s->vol_chan[i]) + mig_chan_bytes(s->vol_miss[i]);
	return b;
}

static void tick(void *arg)
{
	struct src *s = arg;
	if (!s->tty)
		return;
	uint64_t now = clock_ns();
	uint64_t bytes = src_bytes_moved(s);
	if (s->last_ns && now > s->last_ns) {
		double r = (double)(bytes - s->last_bytes) / ((double)(now - s->last_ns) / 1e9);
		s->rate = s->rate ? 0.7 * s->rate + 0.3 * r : r;
	}
	s->last_ns = now;
	s->last_bytes = bytes;
	char pages[160] = "";
	if (s->srv) {
		struct mem_server_stats st;
		mem_server_get_stats(s->srv, &st);
		uint64_t sent = st.pages_pushed + st.pages_fault + st.pages_prefetch + s->precopy_pages;
		uint64_t tot = MAX(st.pages_total, (uint64_t)1);
		uint64_t shown = MIN(sent, tot);
		int bar = (int)(20.0 * (double)shown / (double)tot);
		char b[21];
		memset(b, '#', bar);
		memset(b + bar, '-', 20 - bar);
		b[20] = 0;
		snprintf(pages, sizeof(pages), "  memory [%s] %.0f/%.0f MiB  on-demand %" PRIu64 "  pushed %" PRIu64
			 "  prefetched %" PRIu64,
			 b, (double)shown * 4 / 1024, (double)st.pages_total * 4 / 1024, st.pages_fault,
			 st.pages_pushed, st.pages_prefetch);
	}
	char files[160] = "";
	if (s->rfs)
		rfs_send_progress(s->rfs, files, sizeof(files));
	pthread_mutex_lock(&s->out_lock);
	fprintf(stderr, "\r\033[K  %-14s %6.1f s  %8.1f MiB sent  %6.1f MiB/s%s%s", atomic_load(&s->phase),
		ns_to_ms(s->t0, now) / 1000, (double)bytes / 1048576, s->rate / 1048576, pages, files);
	s->status_shown = true;
	pthread_mutex_unlock(&s->out_lock);
}

/*
 * After the switch-over: say when nothing moves (a link down: TCP retries,
 * we wait, up to MIG_LINK_PATIENCE_S) and when it moves again.
 */
static void watch_link(struct src *s)
{
	uint64_t now = clock_ns();
	uint64_t bytes = src_bytes_moved(s);

	if (bytes != s->stall_bytes || !s->stall_since) {
		if (s->stall_warned)
			pr_warn("the link to %s moves again after %.1f s", s->o->to,
				(double)(now - s->stall_since) / 1e9);
		s->stall_bytes = bytes;
		s->stall_since = now;
		s->stall_warned = false;
		return;
	}
	if (!s->stall_warned && now - s->stall_since > 3000000000ULL) {
		s->stall_warned = true;
		pr_warn("nothing moved to %s for 3 s: is the link down?  Waiting up to %d s for it; "
			"the tree runs there, our copy stays stopped here", s->o->to, MIG_LINK_PATIENCE_S);
	}
}

/* The watchdog thread: a signal that asks us to stop (see struct src). */
static int watch_signals(struct src *s)
{
	struct signalfd_siginfo si;

	while (s->sigfd >= 0 && read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo, st = SRC_RUNNING;
		if (atomic_compare_exchange_strong(&s->commit_state, &st, SRC_ABORTING) || st == SRC_ABORTING) {
			if (!atomic_exchange(&s->interrupted, sig))
				pr_warn("SIG%s: rolling back (process %d runs on here)", sigabbrev_np(sig), s->o->pid);
			continue;
		}
		pr_warn("SIG%s ignored: the tree runs on %s since the switch-over and needs what this "
			"command still sends; our copy stays stopped until it is done", sigabbrev_np(sig), s->o->to);
	}
	return atomic_load(&s->interrupted) ? -EINTR : 0;
}

static int watch_workers(void *arg)
{
	struct src *s = arg;
	int r = watch_signals(s);
	if (r < 0)
		return r;
	if (atomic_load(&s->switched_over) && !atomic_load(&s->mem_done))
		watch_link(s);
	if (s->rfs && (r = rfs_send_wait(s->rfs, 0)) < 0 && r != -ETIMEDOUT)
		return r;
	for (size_t i = 0; i < s->n_vol; i++)
		if (s->vol[i] && (r = rfs_send_wait(s->vol[i], 0)) < 0 && r != -ETIMEDOUT)
			return dm_wrap(r, "volume %s", s->o->volumes[i].name);
	return s->srv ? mem_server_error(s->srv) : 0;
}

/* sig to every live process of the image (each failure said); 0, or the
 * first failure's -errno other than a process gone (ESRCH). */
static int tree_signal(struct src *s, int sig)
{
	int r = 0;
	for (size_t i = 0; i < s->ck->nprocs; i++) {
		if (s->ck->procs[i]->state == DM__PROC_STATE__PROC_ZOMBIE)
			continue;
		pid_t h = dump_host_pid(s->d, s->ck->procs[i]->pid);
		if (h > 0 && kill(h, sig) < 0) {
			pr_warn("process %d: SIG%s: %m", h, sigabbrev_np(sig));
			if (errno != ESRCH && r == 0)
				r = neg_errno();
		}
	}
	return r;
}

/*
 * Before COMMIT: a group stop that outlives us.  Every task of the tree is
 * in a ptrace stop (PTRACE_SEIZE + PTRACE_INTERRUPT, dump-seize.c): a
 * signal sent now is only queued, since a traced task takes no signal
 * before its tracer resumes it, so nothing in the tree sees it while we
 * hold it.  If this process dies (SIGKILL, OOM, a crash), the kernel
 * detaches its tracees; each wakes, finds the SIGSTOP pending, and as it
 * is no longer traced the SIGSTOP starts a group stop: do_signal_stop()
 * runs under the siglock right after the dequeue, so no thread of the
 * process returns to user space in between, and a thread detached later
 * sees the group stop pending (__ptrace_unlink re-arms it).  The tree is
 * then stopped, not running: one copy at most runs, the destination's.
 *
 * Queued only once the dump is complete (a pending signal would be dumped,
 * and would stop the parasite's injected code), and only before COMMIT:
 * before it our death must thaw the tree (the destination keeps its copy
 * stopped until COMMIT and kills it without).
 */
static void queue_stop(struct src *s)
{
	tree_signal(s, SIGSTOP);
}

/* Wait for a reply of type want (or ABORT).  ABORT and errors: -errno and dm_error set. */
int src_expect_reply(struct src *s, uint16_t want, Dm__MigReply **ret)
{
	return src_expect_reply_of(s, want, 0, ret, NULL);
}

/* A reply of type want, or of type also (0: none) when ret_type says which. */
int src_expect_reply_of(struct src *s, uint16_t want, uint16_t also, Dm__MigReply **ret,
			   uint16_t *ret_type)
{
	ProtobufCMessage *m = NULL;
	uint16_t type;
	uint32_t len;
	/* a worker's failure ends the wait: the watchdog leaves this channel
	 * open when the destination closed the worker's (mig_peer_closed()),
	 * and what it said here meanwhile is read then (src_peer_reason()) */
	while (net_chan_poll_in(s->ctl, 250) == 0)
		if (dm_errbox_code(&s->wd.check_err))
			return dm_errbox_take(&s->wd.check_err);
	int r = mig_recv(s->ctl, &type, &len, &m);
	if (r < 0) {
		if (dm_errbox_code(&s->wd.check_err))
			return dm_errbox_take(&s->wd.check_err);
		if (atomic_load(&s->wd.fired))
			return dm_fail(-ETIMEDOUT, "no answer from %s while waiting for %s", s->o->to, s->wd.what);
		return dm_wrap(r, "the destination %s went away", s->o->to);
	}
	Dm__MigReply *rep = (Dm__MigReply *)m;
	if (type == MIG_T_ABORT) {
		r = dm_wrap(mig_abort_error(rep), "the destination failed");
		protobuf_c_message_free_unpacked(m, NULL);
		return r;
	}
	if ((type != want && (!also || type != also)) || !m) {
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		return dm_fail(-EBADMSG, "%s: unexpected message %#x (waiting for %#x)", s->o->to, type, want);
	}
	if (ret_type)
		*ret_type = type;
	if (!rep->ok) {
		r = dm_fail(-EREMOTEIO, "the destination refused: %s", rep->error ? rep->error : "no reason given");
		protobuf_c_message_free_unpacked(m, NULL);
		return r;
	}
	*ret = rep;
	return 0;
}

/* ---- the state ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int send_state(struct src *s)
{
	_cleanup_closedir_ DIR *dir = opendir(s->workdir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	int r = 0;

	if (!dir)
		return dm_fail(neg_errno(), "%s: %m", s->workdir);
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.') {
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = mig_send_file(s->ctl, dirfd(dir), names[i], &s->state_bytes);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r < 0)
		return r;
	s->state_files = n;
	for (size_t i = 0; i < s->n_dirty; i += MIG_RANGES_MAX) {
		size_t k = MIN(s->n_dirty - i, (size_t)MIG_RANGES_MAX);
		r = net_send_frame(s->ctl, MIG_T_DIRTY, s->dirty_ranges + i, k * sizeof(*s->dirty_ranges));
		if (r < 0)
			return r;
	}
	Dm__MigStateEnd e = DM__MIG_STATE_END__INIT;
	e.files = (uint32_t)n;
	e.has_bytes = true;
	e.bytes = s->state_bytes;
	return net_send_msg(s->ctl, MIG_T_STATE_END, &e.base);
}

/* the dump installed a network lock: the guard removes it if we die before the switch-over */
static void guard_lock(void *arg, int nsfd, const char *name)
{
	src_guard_netlock(arg, nsfd, name);
}

static void before_freeze(void *arg)
{
	(void)arg;
	mig_test_point("src-vmflags-read");
}

/*
 * After the switch-over: the VMA flags were read before the freeze; read them
 * again from the frozen tree and send what changed in between (usually
 * nothing: an empty frame says so, the destination waits for it).
 */
static int send_vma_fixes(struct src *s)
{
	_cleanup_free_ struct dump_vma_change *ch = NULL;
	size_t n = 0;
	uint64_t t = clock_ns();
	/* a walk of every page table of the frozen copy (smaps: 20-36 ms of
	 * CPU for 1.3 GiB), at the lowest priority: the tree runs there by now
	 * (thread_walk_section(); mem/server.c, scan_all_sparse()) */
	thread_walk_section(true);
	int r = dump_vmflags_verify(s->d, &ch, &n);
	thread_walk_section(false);

	if (r < 0)
		return dm_wrap(r, "checking the VMA flags");
	n = MIN(n, (size_t)MIG_VMA_FIX_MAX);
	_cleanup_free_ struct mig_wire_vma_fix *v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = (struct mig_wire_vma_fix){ .space = (uint32_t)ch[i].pid, .madv = ch[i].madv,
						  .madv_was = ch[i].madv_was, .start = ch[i].start, .end = ch[i].end };
	s->vma_fixes = n;
	s->vma_check_ms = ns_to_ms(t, clock_ns());
	pr_info("VMA flags checked in %.1f ms: %zu changed before the freeze", s->vma_check_ms, n);
	return net_send_frame(s->ctl, MIG_T_VMA_FIX, v, n * sizeof(*v));
}

/* The page server over the frozen tree; pages sent clean before the freeze are not sent again. */
static int setup_server(struct src *s)
{
	uint64_t t = clock_ns();
	int r = image_open(s->workdir, false, &s->img);
	if (r < 0)
		return r;
	r = image_load(s->img, &s->ck);
	if (r < 0)
		return dm_wrap(r, "reading back our own image");
	s->server_load_ms = ns_to_ms(t, clock_ns());
	t = clock_ns();
	r = mem_server_new(&s->srv);
	if (r < 0)
		return r;
	mem_server_bulk_fill(s->srv, s->egress.queueing == NET_Q_PRIORITY);
	for (size_t i = 0; i < s->ck->nprocs; i++) {
		const Dm__Process *p = s->ck->procs[i];
		if (p->state == DM__PROC_STATE__PROC_ZOMBIE)
			continue;
		pid_t host = dump_host_pid(s->d, p->pid);
		if (host <= 0)
			return dm_fail(-ESRCH, "process %d of the image is not in the frozen tree", p->pid);
		r = mem_server_add(s->srv, p->pid, host, p);
		if (r < 0)
			return r;
		src_mark_clean_sent(s, p->pid);
	}
	s->server_add_ms = ns_to_ms(t, clock_ns());
	return 0;
}

/* ---- the end ------------------------------------------------------------ */

static void cleanup(struct src *s)
{
	mig_watchdog_stop(&s->wd);
	if (s->sigfd >= 0) {
		watch_signals(s); /* what came since the watchdog's last look */
		close(s->sigfd);
		s->sigfd = -1;
	}
	rfs_send_free(s->rfs);
	s->rfs = NULL;
	net_chan_close(s->rfs_chan);
	net_chan_close(s->rfs_miss);
	for (size_t i = 0; i < s->n_vol; i++) {
		rfs_send_free(s->vol[i]);
		net_chan_close(s->vol_chan[i]);
		net_chan_close(s->vol_miss[i]);
	}
	free(s->vol);
	free(s->vol_chan);
	free(s->vol_miss);
	s->vol = NULL;
	s->vol_chan = s->vol_miss = NULL;
	s->n_vol = 0;
	free(s->rootfs_dir);
	mem_server_free(s->srv);
	mem_dirty_free(s->dirty);
	mem_dirty_free(s->hot);
	if (s->ck)
		checkpoint_free(s->ck);
	image_close(s->img);
	if (s->d)
		dump_free(s->d);
	pool_proc_sensors_free(s->pool_sensors);
	net_chan_close(s->bulk);
	net_chan_close(s->fault);
	net_chan_close(s->ctl);
	net_ctx_unref(s->ctx);
	if (s->workdir) {
		rm_rf(s->workdir);
		free(s->workdir);
	}
	json_decref(s->rounds);
	json_decref(s->image_stats);
	json_decref(s->dest_restore);
	json_decref(s->dest_mem);
	json_decref(s->dump_stats);
	free(s->dirty_ranges);
	free(s->presend_ranges);
	pthread_mutex_destroy(&s->out_lock);
}

/* Before the switch-over: give the tree back, unchanged. */
static void rollback(struct src *s, int err)
{
	char msg[1024];
	int sig = atomic_load(&s->interrupted);
	if (sig)
		snprintf(msg, sizeof(msg), "interrupted by SIG%s", sigabbrev_np(sig));
	else
		snprintf(msg, sizeof(msg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-err));
	mem_server_stop(s->srv);
	if (s->ctl && !atomic_load(&s->wd.fired))
		mig_send_reply(s->ctl, MIG_T_ABORT, false, err, msg, 0, NULL);
	/* no more reads of the tree's files before it runs again */
	rfs_send_stop(s->rfs);
	for (size_t i = 0; i < s->n_vol; i++)
		rfs_send_stop(s->vol[i]);
	mem_dirty_detach(s->dirty);
	mem_dirty_detach(s->hot);
	if (s->d)
		dump_release(s->d, DUMP_RESUME);
	/* claim that it runs only when it does (it may have exited meanwhile) */
	if (kill(s->o->pid, 0) < 0 && errno == ESRCH) {
		src_say(s, "rolled back: process %d has exited", s->o->pid);
		dm_fail(err, "%s (rolled back: process %d has exited)", msg, s->o->pid);
		return;
	}
	src_say(s, "rolled back: process %d runs on here", s->o->pid);
	dm_fail(err, "%s (rolled back: process %d runs on here, unchanged)", msg, s->o->pid);
}

/* After it, the destination cannot finish: keep our copy, stopped, for the operator. */
static void keep_stopped(struct src *s, int err)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-err));
	mem_server_stop(s->srv);
	if (s->ctl)
		mig_send_reply(s->ctl, MIG_T_ABORT, false, err, msg, 0, NULL);
	mem_dirty_detach(s->dirty);
	mem_dirty_detach(s->hot);
	if (s->d && s->ck) {
		tree_signal(s, SIGSTOP);
		dump_release(s->d, DUMP_RESUME);
	}
	if (s->commit_unsent)
		dm_fail(err, "%s; the destination never ran its copy, but a process of the tree catches or "
			     "blocks SIGCONT: the tree is left stopped (SIGSTOP) here, pid %d ('kill -CONT' "
			     "resumes it here, 'kill -KILL' drops it)", msg, s->o->pid);
	else
		dm_fail(err, "%s; the destination had resumed the tree: it is left stopped (SIGSTOP) here, pid %d "
			     "('kill -CONT' resumes it here, 'kill -KILL' drops it)", msg, s->o->pid);
}

/* ---- the rootfs ------------------------------------------------------------ */

/*
 * --rootfs-dir DIR: every process of the tree must run chrooted into DIR.
 * Its paths (open files, mappings, cwd, exe) are then under DIR as this
 * process sees them, and relative to its root as the tree sees them; on the
 * destination the restore maps DIR to the copy and chroots the tree into
 * it, so every path the tree uses later resolves in the copy too.  A
 * process whose root is elsewhere would keep paths into DIR that the
 * destination does not have: refused, before anything is done.
 */
static int check_rootfs(struct src *s)
{
	char real[PATH_MAX];
	if (!realpath(s->o->rootfs_dir, real))
		return dm_fail(neg_errno(), "--rootfs-dir %s: %m", s->o->rootfs_dir);
	if (!strcmp(real, "/"))
		return dm_fail(-EINVAL, "--rootfs-dir /: the whole file system cannot move");
	s->rootfs_dir = xstrdup(real);
	if (s->o->rootfs_is_layer)
		return 0;
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = proc_tree_pids(s->o->pid, &pids);
	for (size_t i = 0; i < n; i++) {
		char link[64], root[PATH_MAX], comm[32] = "?";
		snprintf(link, sizeof(link), "/proc/%d/root", pids[i]);
		ssize_t k = readlink(link, root, sizeof(root) - 1);
		if (k < 0)
			continue; /* gone meanwhile */
		root[k] = 0;
		if (!strcmp(root, real))
			continue;
		snprintf(link, sizeof(link), "/proc/%d/comm", pids[i]);
		FILE *f = fopen(link, "re");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		return dm_fail(-EINVAL, "--rootfs-dir %s: process %d (%s) has its root at %s: the tree must run "
					"chrooted into %s", s->o->rootfs_dir, pids[i], comm, root, real);
	}
	dm_error_clear();
	return 0;
}

/* ---- the phases ----------------------------------------------------------- */

/*
 * The migration is a sequence of named phases (mig-internal.h), run in
 * order on this thread by mig_source_run().  A stream that moves beside
 * the others (the memory, the files) starts in the phase that makes its
 * data available and has its own phase where it ends.  A failure in a
 * phase is undone by the undo of its table entry, all in src_undo():
 *
 *   REFUSED       the tree cannot be moved: nothing was done, the cause alone
 *   NOTHING       nothing was frozen: "nothing was changed", the tree runs on
 *   THAW          before COMMIT may be on its way: ABORT, the tree thawed and
 *                 running on here, unchanged (the destination kills its copy,
 *                 which never ran)
 *   KEEP_STOPPED  after it: ABORT, our copy left stopped for the operator
 *                 (the destination kills its incomplete one)
 *
 * A THAW phase that has sent COMMIT (the resume, at its very end) is undone
 * as KEEP_STOPPED: s->committed decides, the moment COMMIT may be on its way.
 */
enum src_undo { SRC_UNDO_REFUSED, SRC_UNDO_NOTHING, SRC_UNDO_THAW, SRC_UNDO_KEEP_STOPPED };

struct src_phase {
	enum mig_phase id;
	const char *step;     /* what it does, for the log */
	int (*run)(struct src *s);
	enum src_undo undo;
};

/* prepare: a tree that cannot be moved is refused before anything else (the
 * message is the cause alone: it does not claim the tree runs on) */
static int ph_check(struct src *s)
{
	int r = dump_check_root(s->o->pid);
	if (r < 0 || !s->o->rootfs_dir)
		return r;
	return check_rootfs(s);
}

/* prepare: the files' sender, and (priority) the working set of the
 * running tree sent before the freeze, so that neither the restore nor
 * the tree's first reads wait for it; checked again at the freeze */
static int ph_rootfs_pre(struct src *s)
{
	const struct mig_source_opts *o = s->o;
	int r;
	if (!s->rootfs_dir || o->rootfs_mode == RFS_NONE)
		return 0;
	/* a Docker container's volumes: every file of each before the freeze,
	 * beside its layer's (the paths the tree has below a volume's mount
	 * point are the volume's) */
	for (size_t i = 0; i < s->n_vol; i++) {
		r = rfs_send_start(s->vol_chan[i], s->vol_miss[i], o->volumes[i].dir, RFS_EAGER, o->volumes[i].at, o->pid,
				   &s->vol[i]);
		if (r < 0)
			return dm_wrap(r, "volume %s", o->volumes[i].name);
	}
	/* a container's layer: every file before the freeze, then only what
	 * changed ($DMIGRATE_TEST_LAYER_AT_FREEZE: all of it after the freeze,
	 * as before; for the benchmark's comparison) */
	bool layer = o->rootfs_is_layer && !getenv("DMIGRATE_TEST_LAYER_AT_FREEZE");
	atomic_store(&s->phase, layer ? "sending the container's layer" : "sending the working set");
	r = rfs_send_start(s->rfs_chan, s->rfs_miss, s->rootfs_dir, o->rootfs_mode, layer ? "/" : NULL, o->pid, &s->rfs);
	if (r < 0)
		return r;
	mig_watchdog_arm_silent(&s->wd, layer ? "the destination to take the container's layer" : "the destination to take the working set",
				MIG_WAIT_SILENT_MS);
	while ((r = rfs_send_presend_wait(s->rfs, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
		;
	for (size_t i = 0; r >= 0 && i < s->n_vol; i++) {
		while ((r = rfs_send_presend_wait(s->vol[i], 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
			;
		if (r < 0)
			r = dm_wrap(r, "volume %s", o->volumes[i].name);
	}
	mig_watchdog_arm(&s->wd, NULL, 0);
	if (r < 0)
		return dm_wrap(mig_watchdog_error(&s->wd, r), layer ? "sending the container's files" : "sending the working set");
	s->t_presend = clock_ns();
	mig_test_point("src-rootfs-presend");
	return 0;
}

/*
 * The pre-send's end (the store's) must reach the destination before the
 * freeze: it restores nothing before it (the pages it stores are written
 * straight into their slots), so what of the pre-send is still unacknowledged
 * at the freeze (the send buffer TCP sized for the link, the queue in front
 * of it: a MiB or more, 8 ms a MiB at 1 Gbit/s) would be waited for inside
 * the downtime.  The tree runs on meanwhile, and the link carries those
 * bytes either way.  The wait ends with DRAIN_LEFT_BYTES or less left
 * (not none: the ACK of the last small segment may be delayed), and lasts
 * while the peer acknowledges, at most
 * MIG_WAIT_DRAIN_STALL_MS without progress; then the freeze goes on and the
 * destination waits for the rest as before.
 */
#define DRAIN_LEFT_BYTES 65536 /* left to the freeze: 0.5 ms at 1 Gbit/s; the
				* last small segment's ACK may be delayed 40 ms */
static void drain_presend(struct src *s)
{
	if (!s->eager_store)
		return;
	uint64_t t = clock_ns(), progress = t;
	int n = net_chan_unacked(s->bulk), least = n;
	s->presend_in_flight = n > 0 ? (uint64_t)n : 0;
	while (n > DRAIN_LEFT_BYTES && !atomic_load(&s->wd.fired)) {
		uint64_t now = clock_ns();
		if (n < least) {
			least = n;
			progress = now;
		} else if (now - progress > (uint64_t)MIG_WAIT_DRAIN_STALL_MS * 1000000) {
			pr_info("the destination acknowledged nothing of the pre-sent memory for %d ms: "
				"%d bytes of it left to the freeze", MIG_WAIT_DRAIN_STALL_MS, n);
			break;
		}
		usleep(200);
		n = net_chan_unacked(s->bulk);
	}
	s->presend_drain_ms = ns_to_ms(t, clock_ns());
}

/* prepare, last: the destination's container runs (READY), when ACCEPT
 * said it would start beside our preparation; nothing is frozen before.
 * Then the pre-sent memory acknowledged (drain_presend). */
static int ph_ready(struct src *s)
{
	if (s->ready_later) {
		Dm__MigReply *rep = NULL;
		atomic_store(&s->phase, "the destination starts the container");
		mig_watchdog_arm(&s->wd, "the destination to start the container", MIG_WAIT_DOCKER_ACCEPT_MS);
		int r = src_expect_reply(s, MIG_T_READY, &rep);
		mig_watchdog_arm(&s->wd, NULL, 0);
		if (r < 0)
			return r;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		s->t_ready = clock_ns();
		mig_test_point("src-ready");
	}
	drain_presend(s);
	return 0;
}

/* prepare: pre-copy rounds while the tree runs (pre-copy, hybrid), or
 * post-copy's eager pages */
static int ph_precopy(struct src *s)
{
	if (s->o->mode == MIG_POST_COPY && s->eager_store)
		return src_presend(s);
	if (s->o->mode != MIG_PRE_COPY && s->o->mode != MIG_HYBRID)
		return 0;
	return src_precopy(s);
}

/*
 * The part of a container's record that the dump does not read (runc: its
 * network, limits, mounts and tmpfs files) is made while the tree is
 * frozen by this thread beside the dump of its processes: neither changes
 * what the other reads.  The dump waits for it before it writes the
 * inventory, which holds the record (record_join()).
 */
static void *record_main(void *arg)
{
	struct src *s = arg;
	uint64_t t = clock_ns();
	int r = s->o->container_record_beside(s->o->container_arg, s->workdir);

	if (r < 0)
		snprintf(s->rec.msg, sizeof(s->rec.msg), "%s", dm_last_error());
	s->rec.r = r;
	s->container_record_beside_ms = ns_to_ms(t, clock_ns());
	return NULL;
}

static int record_join(void *arg)
{
	struct src *s = arg;

	if (!s->rec.started || s->rec.joined)
		return s->rec.r;
	uint64_t t = clock_ns();
	pthread_join(s->rec.th, NULL);
	s->rec.joined = true;
	s->container_record_wait_ms = ns_to_ms(t, clock_ns());
	if (s->rec.r < 0)
		dm_error_set_message(s->rec.msg);
	return s->rec.r;
}

static int ph_freeze_dump(struct src *s);

/* freeze: freeze, the last dirty scan, the dump without memory; a
 * container's record beside the dump (the page server comes after the
 * state: ph_state) */
static int ph_freeze(struct src *s)
{
	int r = ph_freeze_dump(s);
	/* on any path: the record's refusal (it names what is refused) first */
	int rr = record_join(s);
	return rr < 0 ? rr : r;
}

static int ph_freeze_dump(struct src *s)
{
	const struct mig_source_opts *o = s->o;
	int r;

	{
		_cleanup_free_ char *tmpl = xasprintf("%s/dmigrate-out.XXXXXX", o->work_dir ? o->work_dir : "/dev/shm");
		if (!mkdtemp(tmpl))
			return dm_fail(neg_errno(), "%s: %m", tmpl);
		s->workdir = TAKE_PTR(tmpl);
	}
	atomic_store(&s->phase, "freezing");
	uint64_t cow_max = o->cow_max_set ? o->cow_max_mib : MIG_COW_MAX_MIB;
	s->dopts = (struct dump_opts){
		.pid = o->pid,
		.images_dir = s->workdir,
		.dump_threads = o->dump_threads,
		.pool_sensors = s->pool_sensors,
		.accept_wait_ms = o->accept_wait_ms,
		.quiet_wait_ms = o->quiet_wait_ms,
		.lazy_remote = true,
		.reset_unaccepted = o->address_changes,
		/* post-copy: the page map of anonymous memory is read after the
		 * resume (the page server), not in the downtime; the other modes
		 * send every page before the resume and need it now (a VMA a
		 * child may inherit from its parent is read in any mode) */
		.defer_pagemap = o->mode == MIG_POST_COPY,
		/* pages still shared copy-on-write with a parent come back shared:
		 * the parent's go with the state (eager), inside the downtime.
		 * Stop-and-copy sends fewer pages that way; the other modes send
		 * more in the freeze, up to a bound (docs/migration.md) */
		.no_inherit = o->mode != MIG_STOP_AND_COPY && cow_max == 0,
		.inherit_max_pages = o->mode == MIG_STOP_AND_COPY ? 0 : cow_max * ((1u << 20) / DM_PAGE_SIZE),
		/* pre-copy, hybrid: an eager page a round left at the destination is
		 * written there from its store before the task runs, not sent again */
		.page_at_dest = src_page_at_dest,
		.page_at_dest_arg = s,
		/* and the VMA flags are read before the freeze (a smaps walk
		 * costs as much): send_vma_fixes() tells what changed meanwhile */
		.early_vmflags = o->mode == MIG_POST_COPY,
		/* the threads' namespaces are checked while the destination
		 * restores (ph_resume), not in the downtime */
		.defer_ns_check = true,
		/* a container's locked namespace: what the lock drops goes to the
		 * destination with COMMIT (or back to the tree on a rollback);
		 * not when its address changes: the new connections in it (SYNs
		 * to the old address, through the source's published port) would
		 * be accepted and served there for peers that get a reset, the
		 * served ones' work and faults in the way of the first real
		 * requests */
		.net_capture = s->peer_net_frames && !o->address_changes,
		.on_lock = o->guard ? guard_lock : NULL,
		.on_lock_arg = o->guard,
		.before_freeze = before_freeze,
		.container = o->container,
		.before_inventory = o->container_record_beside ? record_join : NULL,
		.before_inventory_arg = s,
	};
	r = dump_freeze(&s->dopts, &s->d);
	if (r < 0)
		return r;
	/* the downtime starts when the tree begins to stop, and counts the
	 * freeze and what is recorded while frozen */
	s->t_freeze = dump_freeze_started(s->d);
	if (o->container_record) {
		uint64_t t = clock_ns();
		r = o->container_record(o->container_arg, s->workdir);
		s->container_record_ms = ns_to_ms(t, clock_ns());
		if (r < 0)
			return r;
	}
	if (o->container_record_beside) {
		r = -pthread_create(&s->rec.th, NULL, record_main, s);
		if (r < 0)
			return dm_fail(r, "cannot start a thread: %s", strerror(-r));
		s->rec.started = true;
	}
	src_say(s, "freeze ........ %.0f ms", src_ms_since(s, s->t_freeze));
	mig_test_point("src-frozen");
	/* the files from now on, beside the dump and the state: what went
	 * before the freeze checked, the walk */
	if (s->rfs)
		rfs_send_frozen(s->rfs);
	for (size_t i = 0; i < s->n_vol; i++)
		rfs_send_frozen(s->vol[i]);
	uint64_t t_scan = clock_ns();
	r = src_mem_frozen(s);
	s->frozen_scan_ms = ns_to_ms(t_scan, clock_ns());
	if (r < 0)
		return r;
	atomic_store(&s->phase, "dumping");
	r = dump_collect(s->d);
	if (r < 0)
		return r;
	s->t_dumped = clock_ns();
	rfs_send_foreground(s->rfs);
	for (size_t i = 0; i < s->n_vol; i++)
		rfs_send_foreground(s->vol[i]);
	s->dump_stats = json_object();
	dump_stats_json(s->d, s->dump_stats);
	return 0;
}

/*
 * state: the image files, the dirty list, STATE_END; then the page server
 * made from the image (it serves from ph_memory_before() on): the
 * destination restores meanwhile (the image read back and the server's
 * sets took 0.2-0.35 ms here, inside the downtime, before the state went)
 */
static int ph_state(struct src *s)
{
	atomic_store(&s->phase, "sending state");
	uint64_t t = clock_ns();
	/* its frames gathered: a few sends instead of one per frame (net.h) */
	net_chan_cork(s->ctl);
	int r = send_state(s);
	if (r >= 0) {
		r = net_chan_uncork(s->ctl);
	} else {
		/* the send's own message is what the rollback tells */
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		net_chan_uncork(s->ctl);
		dm_error_set_message(msg);
	}
	if (r < 0)
		return r;
	s->t_state = clock_ns();
	s->state_send_ms = ns_to_ms(t, s->t_state);
	uint64_t t_srv = clock_ns();
	r = setup_server(s);
	pr_info("page server ready in %.1f ms", ns_to_ms(t_srv, clock_ns()));
	if (r < 0)
		return r;
	unsigned threads = 0;
	for (size_t i = 0; i < s->ck->nprocs; i++)
		threads += s->ck->procs[i]->n_threads;
	src_say(s, "state sent .... %.0f ms   (%.0f KiB, %zu processes, %u threads)", src_ms_since(s, s->t_state),
	    (double)s->state_bytes / 1024, s->ck->nprocs, threads);
	mig_test_point("src-state-sent");
	return 0;
}

/* The push of what is left after the freeze (post-copy, hybrid): the
 * working set first where it was tracked, then the rest. */
static int start_push(struct src *s)
{
	src_hot_scan(s);
	s->push_started = true;
	s->t_push = clock_ns();
	return mem_server_start(s->srv, NULL, s->bulk, MEM_PHASE_INSTALL);
}

/* memory, before the resume: stop-and-copy and pre-copy push every page not
 * sent clean (silent limit MIG_WAIT_SILENT_MS); post-copy and hybrid start
 * the page server on the fault channel (the restore may already need a page) */
static int ph_memory_before(struct src *s)
{
	int r;
	if (s->o->mode != MIG_STOP_AND_COPY && s->o->mode != MIG_PRE_COPY) {
		r = mem_server_start(s->srv, s->fault, NULL, MEM_PHASE_INSTALL);
		/* post-copy: the push from now, while the destination restores
		 * (the link is idle until RESUMED); it holds what comes until
		 * its handler is set (after RESUMED).  Only the working set goes
		 * then: the rest waits for the commit (ph_memory_after), it
		 * would take the destination's CPU from the restore and queue
		 * ahead of the first faults (DMIGRATE_TEST_EARLY_BULK=1: it
		 * goes too) */
		if (r >= 0 && s->o->mode == MIG_POST_COPY && s->peer_early_push) {
			s->push_held = !getenv("DMIGRATE_TEST_EARLY_BULK");
			mem_server_hold(s->srv, s->push_held);
			r = start_push(s);
		}
		return r;
	}
	atomic_store(&s->phase, "copying memory");
	r = mem_server_start(s->srv, NULL, s->bulk, MEM_PHASE_STORE);
	if (r < 0)
		return r;
	/* as long as the destination takes it: the watchdog ends a silence */
	mig_watchdog_arm_silent(&s->wd, "the destination to take the memory", MIG_WAIT_SILENT_MS);
	while ((r = mem_server_wait_push(s->srv, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
		;
	mig_watchdog_arm(&s->wd, NULL, 0);
	if (r < 0) {
		/* tests: the watchdog has seen the push fail meanwhile */
		mig_test_point("src-push-failed");
		return dm_wrap(mig_watchdog_error(&s->wd, r), "sending memory");
	}
	mig_test_point("src-pushed");
	return 0;
}

/*
 * The TCP packets that reached the frozen container since its namespace was
 * locked (the peers' requests, their retransmissions): the destination
 * delivers them as it lets the tree go, so the peers need not wait for
 * their retransmission timers (net/replay.h).  Taken only once the
 * switch-over is decided: until then a rollback gives them back to our
 * copy.
 */
static int send_net_frames(struct src *s, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	*ret_buf = NULL;
	*ret_len = 0;
	if (!s->peer_net_frames || s->o->address_changes)
		return 0; /* nothing was kept (ph_freeze_dump) */
	dump_net_frames(s->d, &buf, &len);
	json_t *k = dump_net_frames_stats(s->d);
	if (k && s->dump_stats)
		json_object_set_new(s->dump_stats, "net_lock_packets", k);
	else
		json_decref(k);
	pr_info("%zu bytes of packets kept by the network lock go to the destination", len);
	/* ours until COMMIT went: a rollback delivers them here */
	*ret_buf = buf;
	*ret_len = len;
	return len ? net_send_frame(s->ctl, MIG_T_NET_FRAMES, buf, len) : 0;
}

/*
 * COMMIT could not be sent: the write failed, so the destination has at
 * most part of its frame and never runs its copy (it kills it when the
 * channel ends).  Ours runs on after all, if the SIGSTOP queued for the
 * switch-over (queue_stop()) can be taken back unseen: a SIGCONT discards
 * a pending stop signal as it is generated, and is itself dropped where
 * the process neither catches nor blocks it (its default action, to
 * continue, is then an "ignore").  A process that catches or blocks
 * SIGCONT would see it: the copy stays stopped then, as before this
 * (keep_stopped()).  True if every process's SIGSTOP was taken back.
 */
static bool unqueue_stop(struct src *s)
{
	for (size_t i = 0; i < s->ck->nprocs; i++) {
		if (s->ck->procs[i]->state == DM__PROC_STATE__PROC_ZOMBIE)
			continue;
		pid_t h = dump_host_pid(s->d, s->ck->procs[i]->pid);
		struct proc_status st = {};
		if (h <= 0 || proc_read_status(h, 0, &st) < 0) {
			dm_error_clear();
			return false;
		}
		bool seen = (st.sig_cgt | st.sig_blk) & (1ULL << (SIGCONT - 1));
		proc_status_done(&st);
		if (seen) {
			pr_warn("process %d catches or blocks SIGCONT: its SIGSTOP stays queued", h);
			return false;
		}
	}
	return tree_signal(s, SIGCONT) == 0;
}

/* resume: RESUMED (MIG_WAIT_RESTORE_MS), then the switch-over: SIGSTOP
 * queued to the frozen tree, NET_FRAMES, COMMIT */
static int ph_resume(struct src *s)
{
	Dm__MigReply *rep = NULL;
	int r;

	atomic_store(&s->phase, "restoring");
	/* what the freeze left out (dump_opts.defer_ns_check), while the
	 * destination restores: a tree refused here never runs there (it
	 * holds its copy stopped until COMMIT, and kills it without) */
	uint64_t t = clock_ns();
	r = dump_check_namespaces(s->d);
	s->ns_check_ms = ns_to_ms(t, clock_ns());
	if (r < 0)
		return r;
	mig_watchdog_arm(&s->wd, "the restore", MIG_WAIT_RESTORE_MS);
	r = src_expect_reply(s, MIG_T_RESUMED, &rep);
	if (r < 0)
		return r;
	s->t_resume = clock_ns();
	mig_watchdog_arm(&s->wd, NULL, 0);
	s->dest_pid = rep->has_root_pid ? rep->root_pid : 0;
	s->dest_restore = mig_reply_stats(rep);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	mig_test_point("src-resumed-received");
	{
		/* the destination says nothing between RESUMED and COMMIT: anything
		 * readable now is its ABORT or its end, and it has not run its copy */
		if (net_chan_poll_in(s->ctl, 0) > 0) {
			r = src_expect_reply(s, MIG_T_COMMIT, &rep);
			if (r >= 0)
				protobuf_c_message_free_unpacked(&rep->base, NULL);
			return dm_fail(r < 0 ? r : -EPROTO, "the destination gave up before the switch-over: %s",
				       dm_last_error()[0] ? dm_last_error() : "no reason given");
		}
	}
	{
		/* a signal delivered already comes first, even if the watchdog has
		 * not read it yet (it looks now and then): read them here */
		watch_signals(s);
		int st = SRC_RUNNING;
		if (!atomic_compare_exchange_strong(&s->commit_state, &st, SRC_COMMITTING))
			/* a signal came first: no COMMIT, the destination kills its stopped copy */
			return -EINTR;
	}
	/* decided: from here our copy stays stopped, its lock and its policy with it */
	src_guard_disarm(s->o->guard);
	queue_stop(s);
	_cleanup_free_ uint8_t *frames = NULL;
	size_t frames_len = 0;
	r = send_net_frames(s, &frames, &frames_len);
	if (r >= 0 && dm_test_listed("src-commit-unsent")) {
		/* tests: the channel fails under the COMMIT (e2e
		 * safety/src-commit-unsent/...): a pause, then its end */
		mig_test_point("src-commit-unsent");
		pr_warn("test point src-commit-unsent: the control channel is shut before COMMIT");
		net_chan_shutdown(s->ctl);
	}
	if (r >= 0)
		r = mig_send_empty(s->ctl, MIG_T_COMMIT);
	if (r < 0) {
		/* not a whole frame of it reached the destination (a failed write
		 * leaves the channel dead, send_frame()): the switch-over was not
		 * made, and our copy may run on after all */
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		src_guard_rearm(s->o->guard);
		/* what the lock kept is our copy's again (the release delivers it) */
		dump_net_frames_back(s->d, TAKE_PTR(frames), frames_len);
		if (unqueue_stop(s)) {
			/* tests: our death from here on is undone by the guard
			 * (containers runc/migrate-src-killed-unsent) */
			mig_test_point("src-commit-unsent-rollback");
			atomic_store(&s->commit_state, SRC_ABORTING);
		} else {
			/* its SIGSTOP stays: so does our copy, stopped (keep_stopped()) */
			s->committed = s->commit_unsent = true;
		}
		return dm_fail(r, "COMMIT could not be sent: %s", msg);
	}
	/* from here a failure keeps our copy stopped (src_undo) */
	s->ret->switched = s->committed = true;
	s->ret->dest_pid = s->dest_pid;
	mig_chan_patience(s->ctl, MIG_LINK_PATIENCE_S);
	mig_chan_patience(s->fault, MIG_LINK_PATIENCE_S);
	mig_chan_patience(s->bulk, MIG_LINK_PATIENCE_S);
	atomic_store(&s->switched_over, true);
	s->t_commit = clock_ns();
	src_say(s, "resumed on %s (pid %d there)  downtime %.0f ms", s->o->to, s->dest_pid,
	    ns_to_ms(s->t_freeze, s->t_resume));
	if (s->o->container_committed) {
		_cleanup_free_ struct inet_sk_diag *tcp = NULL;
		size_t n = dump_tcp_sockets(s->d, &tcp);
		s->o->container_committed(s->o->container_arg, tcp, n);
		s->t_committed = clock_ns();
	}
	mig_test_point("src-resumed");
	return 0;
}

/* memory, after the resume: post-copy and hybrid push the rest; the VMA
 * flags that changed before the freeze (post-copy) */
static int ph_memory_after(struct src *s)
{
	int r;
	uint64_t q = s->t_commit ? src_quiet_ns() : 0, quiet = q ? s->t_commit + q : 0;
	s->quiet_ms = (double)q / 1e6;
	if (s->srv)
		mem_server_quiet_until(s->srv, quiet);
	if ((s->o->mode == MIG_POST_COPY || s->o->mode == MIG_HYBRID) && !s->push_started) {
		r = start_push(s);
		if (r < 0)
			return r;
	}
	mem_server_hold(s->srv, false);
	if (s->o->mode == MIG_POST_COPY || s->o->mode == MIG_HYBRID)
		atomic_store(&s->phase, "post-copy");
	if (s->dopts.early_vmflags) {
		for (uint64_t now = clock_ns(); quiet > now; now = clock_ns())
			usleep((useconds_t)MIN((quiet - now) / 1000 + 1, (uint64_t)1000000));
		r = send_vma_fixes(s);
		if (r < 0)
			return r;
	}
	return 0;
}

/* rootfs: the destination has every file (DONE on the rootfs channel; silent
 * limit MIG_WAIT_SILENT_MS) */
static int ph_rootfs(struct src *s)
{
	int r;
	if (!s->rfs)
		return 0;
	atomic_store(&s->phase, "files");
	mig_watchdog_arm_silent(&s->wd, "the destination to take the files", MIG_WAIT_SILENT_MS);
	while ((r = rfs_send_wait(s->rfs, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
		;
	mig_watchdog_arm(&s->wd, NULL, 0);
	if (r < 0)
		return mig_watchdog_error(&s->wd, r);
	json_t *st = rfs_send_stats(s->rfs, s->t0);
	src_say(s, "files ......... %.0f ms   (%lld files, %.1f MiB, %lld misses)",
	    json_real_value(json_object_get(st, "done_ms")), json_integer_value(json_object_get(st, "files")),
	    (double)json_integer_value(json_object_get(st, "bytes")) / 1048576,
	    json_integer_value(json_object_get(st, "misses")));
	json_decref(st);
	/* (the volumes went before the restore too: they are done or nearly) */
	for (size_t i = 0; i < s->n_vol; i++) {
		mig_watchdog_arm_silent(&s->wd, "the destination to take a volume's files", MIG_WAIT_SILENT_MS);
		while ((r = rfs_send_wait(s->vol[i], 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
			;
		mig_watchdog_arm(&s->wd, NULL, 0);
		if (r < 0)
			return dm_wrap(mig_watchdog_error(&s->wd, r), "volume %s", s->o->volumes[i].name);
	}
	return 0;
}

/* MIG_WAIT_MEM_DONE_MS, or DMIGRATE_TEST_WAIT_MEM_DONE_MS (tests) */
static int mem_done_wait_ms(void)
{
	const char *v = getenv("DMIGRATE_TEST_WAIT_MEM_DONE_MS");
	long ms;
	if (v && parse_long(v, &ms) >= 0 && ms > 0 && ms <= MIG_WAIT_MEM_DONE_MS)
		return (int)ms;
	return MIG_WAIT_MEM_DONE_MS;
}

/* commit: MEM_DONE, the destination has everything: the tree is its own.
 * Bounded by silence (MIG_WAIT_MEM_DONE_MS): while pages move, it waits */
static int ph_commit(struct src *s)
{
	Dm__MigReply *rep = NULL;
	mig_watchdog_arm_silent(&s->wd, "MEM_DONE, the destination's word that every page is in",
				mem_done_wait_ms());
	int r = src_expect_reply(s, MIG_T_MEM_DONE, &rep);
	mig_watchdog_arm(&s->wd, NULL, 0);
	atomic_store(&s->mem_done, true);
	if (r < 0)
		return mig_watchdog_error(&s->wd, r);
	s->t_done = clock_ns();
	s->dest_mem = mig_reply_stats(rep);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

/* release: our frozen copy killed, FIN */
static int ph_release(struct src *s)
{
	mem_server_stop(s->srv);
	dump_release(s->d, DUMP_KILL);
	if (s->o->container_gone)
		s->o->container_gone(s->o->container_arg);
	mig_send_empty(s->ctl, MIG_T_FIN);
	atomic_store(&s->phase, "done");
	return 0;
}

static const struct src_phase src_phases[] = {
	{ MIG_PH_PREPARE, "check the tree", ph_check, SRC_UNDO_REFUSED },
	{ MIG_PH_PREPARE, "connect", src_ph_connect, SRC_UNDO_NOTHING },
	{ MIG_PH_PREPARE, "the working set's files", ph_rootfs_pre, SRC_UNDO_NOTHING },
	{ MIG_PH_PREPARE, "pre-copy", ph_precopy, SRC_UNDO_THAW },
	{ MIG_PH_PREPARE, "the destination's container", ph_ready, SRC_UNDO_THAW },
	{ MIG_PH_FREEZE, "freeze and dump", ph_freeze, SRC_UNDO_THAW },
	{ MIG_PH_STATE, "send the state", ph_state, SRC_UNDO_THAW },
	{ MIG_PH_MEMORY, "memory before the resume", ph_memory_before, SRC_UNDO_THAW },
	{ MIG_PH_RESUME, "switch-over", ph_resume, SRC_UNDO_THAW },
	{ MIG_PH_MEMORY, "memory after the resume", ph_memory_after, SRC_UNDO_KEEP_STOPPED },
	{ MIG_PH_ROOTFS, "the files", ph_rootfs, SRC_UNDO_KEEP_STOPPED },
	{ MIG_PH_COMMIT, "wait for MEM_DONE", ph_commit, SRC_UNDO_KEEP_STOPPED },
	{ MIG_PH_RELEASE, "kill our copy", ph_release, SRC_UNDO_KEEP_STOPPED },
};

/* How long a phase that met the destination's close waits for its word on
 * the control channel (src_peer_reason()). */
#define SRC_PEER_REASON_MS 2000

/*
 * A phase failed with r.  A destination that gives up says why on the
 * control channel (ABORT, with its reason), then closes its channels: what
 * we met may be only what that closing did, on any of them and in any
 * thread (a send into a closed channel: EPIPE, ECONNRESET once its kernel
 * resets the connection; a read at its end: EPIPE), and often before
 * anyone read the ABORT: the pusher's send in the stop-and-copy push while
 * this thread waited for the push, a pre-copy round's own send, the push
 * or the fault replies after the resume while this thread waited for
 * MEM_DONE, the files' channels before the freeze.  The destination's
 * reason is the error then, with the step we were at: "<step>: the
 * destination failed: <its reason>".  It is read here, up to
 * SRC_PEER_REASON_MS: a destination that fails sends it before it closes
 * the channels, and one that died closes the control channel too, which
 * ends the wait at once.  The watchdog leaves the control channel open
 * for this when a worker met such a close (struct mig_watchdog, check),
 * and the net layer keeps what came before a failed send for reading.
 * One place for every phase: it runs before the phase is undone.
 */
static int src_peer_reason(struct src *s, int r, const char *what)
{
	/* a channel the watchdog shut for a worker's failure: that failure */
	if (r == -ECANCELED)
		r = mig_watchdog_error(&s->wd, r);
	if (!s->ctl || !mig_peer_closed(r))
		return r;
	int k = mig_peer_abort(s->ctl, SRC_PEER_REASON_MS);
	if (k == 0)
		return r;
	k = dm_wrap(k, "the destination failed");
	return dm_wrap(k, "%s", what);
}

/* The one place where a failed phase is undone (see enum src_undo). */
static void src_undo(struct src *s, const struct src_phase *ph, int r)
{
	enum src_undo u = ph->undo;
	if (u == SRC_UNDO_THAW && s->committed)
		u = SRC_UNDO_KEEP_STOPPED; /* COMMIT may be on its way */
	pr_debug("phase %s (%s) failed: %s", mig_phase_name(ph->id), ph->step, strerror(-r));
	switch (u) {
	case SRC_UNDO_REFUSED:
		break;
	case SRC_UNDO_NOTHING:
		if (atomic_load(&s->interrupted))
			dm_fail(r, "interrupted by SIG%s", sigabbrev_np(atomic_load(&s->interrupted)));
		dm_wrap(r, "nothing was changed: process %d runs on here", s->o->pid);
		break;
	case SRC_UNDO_THAW:
		rollback(s, r);
		break;
	case SRC_UNDO_KEEP_STOPPED:
		keep_stopped(s, r);
		break;
	}
}

int mig_source_run(const struct mig_source_opts *o, struct mig_result *ret)
{
	struct src s = { .o = o, .ret = ret, .sigfd = -1 };
	const struct src_phase *ph = NULL;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_init(&s.out_lock, NULL);
	/* before any thread starts: they all inherit the mask */
	sigset_t ss, old_mask;
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &ss, &old_mask);
	s.sigfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	s.tty = o->progress;
	s.t0 = clock_ns();
	clock_gettime(CLOCK_REALTIME, &s.t0_wall);
	atomic_store(&s.phase, "connecting");
	s.wd.tick = tick;
	s.wd.tick_arg = &s;
	s.wd.check = watch_workers;
	s.wd.check_arg = &s;

	for (size_t i = 0; i < ARRAY_SIZE(src_phases) && r >= 0; i++) {
		ph = &src_phases[i];
		s.cur_phase = ph->id;
		r = ph->run(&s);
	}
	if (r >= 0) {
		mig_watchdog_stop(&s.wd);
		if (s.tty) {
			/* the final state of the status line stays on the screen */
			tick(&s);
			fputc('\n', stderr);
			s.status_shown = false;
		}
		src_say(&s, "done in %.2f s (downtime %.0f ms)", ns_to_ms(s.t0, s.t_done) / 1000,
		    ns_to_ms(s.t_freeze, s.t_resume));
		ret->stats = src_build_stats(&s, 0);
		cleanup(&s);
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
		return 0;
	}
	r = src_peer_reason(&s, r, ph->step);
	src_undo(&s, ph, r);
	{
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		mig_watchdog_stop(&s.wd);
		if (s.tty && s.status_shown)
			fprintf(stderr, "\r\033[K");
		ret->stats = src_build_stats(&s, r);
		json_object_set_new(ret->stats, "failed_phase", json_string(mig_phase_name(ph->id)));
		cleanup(&s);
		dm_fail(r, "%s", msg);
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return r;
}
