/* SPDX-License-Identifier: MIT */
/*
 * The destination side of one migration (dmigrated), see wire.h: the
 * session's thread, as the phases of mig-internal.h (dst_phases[]).
 *
 *   session thread  START -> ACCEPT (dest-start.c); files into
 *                   STATE_DIR/incoming/<id>/;
 *                   [store modes: every page into mem_store first];
 *                   restore_tree (lazy: the hook hands each process's
 *                   userfaultfd to mem_lazy; in stop-and-copy and pre-copy
 *                   the hook fills every page from the store before it
 *                   returns, so all memory is in before the resume); the
 *                   complete tree held stopped (traced, frozen in its
 *                   cgroup): RESUMED -> COMMIT, then it runs; [post-copy,
 *                   hybrid: serve faults until every page is in];
 *                   MEM_DONE -> FIN.
 *
 * Everything the peer sends is checked (names, sizes, ranges, message
 * order).  Before COMMIT any failure removes what was made (the restore
 * kills its half-made or held tree itself: it never ran).  After COMMIT, a
 * post-copy tree that cannot get its pages any more is killed too, as a
 * whole (its cgroup): the source keeps its complete, stopped copy.
 *
 * The accept loop that starts the sessions is dest-daemon.c's, the child
 * that kills a tree if we die dest-guardian.c's; what they share is
 * dest-int.h.
 */
#define LOG_PREFIX "dmigrated: "
#include "migrate/dest-int.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"
#include <linux/magic.h>
#include <sys/statfs.h>
#include "dump/dump.h"
#include "net/replay.h"
#include "inject/inject.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static bool store_mode(enum mig_mode m)
{
	return m == MIG_STOP_AND_COPY || m == MIG_PRE_COPY;
}

static int abort_with(struct dsess *s, int err)
{
	const char *msg = dm_last_error()[0] ? dm_last_error() : strerror(-err);
	pr_warn("migration %.8s failed: %s", s->hex, msg);
	if (s->ctl)
		mig_send_reply(s->ctl, MIG_T_ABORT, false, err, msg, 0, NULL);
	return err;
}

static int wait_channels(struct dsess *s, int timeout_ms)
{
	uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000;
	int r = 0;
	pthread_mutex_lock(&s->lock);
	while (!s->fault || !s->bulk || (s->rfs_mode && (!s->rfs_chan || !s->rfs_miss)) || s->n_vol_in < 2 * s->n_vol) {
		if (clock_ns() > deadline) {
			r = dm_fail(-ETIMEDOUT, "the fault and bulk%s%s channels did not join",
				    s->rfs_mode ? ", rootfs and rootfs-miss" : "", s->n_vol ? ", the volumes'" : "");
			break;
		}
		/*
		 * A source that went away ends the wait.  One that already sends
		 * its state does not: its channels' handshakes run on threads of
		 * their own and may reach the session after its first frames (a
		 * loaded host); those wait in the socket until the channels are
		 * here or the wait times out.
		 */
		struct pollfd pc = { .fd = net_chan_fd(s->ctl), .events = POLLRDHUP };
		if (poll(&pc, 1, 0) > 0 && (pc.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			r = dm_fail(-EPROTO, "the source closed its control channel before its channels joined");
			break;
		}
		cond_wait_ms(&s->cond, &s->lock, 100);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- the state ---------------------------------------------------------- */

#define STATE_BYTES_MAX (64ULL << 30) /* data of all image files (memory is not in them) */

/* The next frame of the state, when it comes.  The store's pages come
 * beside it (pre-copy's rounds, post-copy's eager pages): their refusal
 * (the store full) ends the wait, so that the source reads why (our ABORT)
 * as it meets our channels' close, instead of waiting for us to read the
 * rest of its pages. */
static int wait_state_frame(struct dsess *s)
{
	int r;
	while (s->netsrc && net_chan_poll_in(s->ctl, 250) == 0)
		if ((r = mem_netsrc_error(s->netsrc)) < 0)
			return dm_wrap(r, "receiving memory");
	return 0;
}

static int recv_files(struct dsess *s)
{
	_cleanup_close_ int dirfd = open(s->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = xmalloc(MIG_DATA_MAX);
	int fd = -1, r = 0;
	uint64_t fsize = 0, total = 0;
	uint32_t files = 0;

	if (dirfd < 0)
		return neg_errno();
	for (;;) {
		ProtobufCMessage *m = NULL;
		uint16_t type;
		uint32_t len;
		r = wait_state_frame(s);
		if (r >= 0)
			r = mig_recv(s->ctl, &type, &len, &m);
		if (r < 0)
			break;
		if (!s->t_state_first)
			s->t_state_first = clock_ns();
		switch (type) {
		case MIG_T_FILE: {
			Dm__MigFile *f = (Dm__MigFile *)m;
			if (fd >= 0 || !mig_name_ok(f->name) || f->size > (1ULL << 46) || ++files > MIG_FILES_MAX) {
				r = dm_fail(-EBADMSG, "bad image file '%.64s' (%" PRIu64 " bytes)", f->name, f->size);
				break;
			}
			fd = openat(dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0) {
				r = dm_fail(neg_errno(), "image file %s: %m", f->name);
				break;
			}
			/* a tmpfs takes its pages as they are written: an image
			 * file that does not fit is told now, not half-way */
			struct statfs sf;
			if (fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC && sf.f_blocks &&
			    f->size > (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize) {
				r = dm_fail(-ENOSPC, "image file %s: %" PRIu64 " MiB do not fit in the %" PRIu64
					    " MiB left on the images' tmpfs (%s)", f->name, f->size >> 20,
					    ((uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize) >> 20, s->dir);
				break;
			}
			if (ftruncate(fd, (off_t)f->size) < 0) {
				r = dm_fail(neg_errno(), "image file %s: %m", f->name);
				break;
			}
			fsize = f->size;
			break;
		}
		case MIG_T_DATA: {
			struct mig_wire_extent e;
			if (fd < 0 || len < sizeof(e) || len - sizeof(e) > MIG_DATA_MAX) {
				r = dm_fail(-EBADMSG, "file data out of place (%u bytes)", len);
				break;
			}
			r = net_recv_body(s->ctl, &e, sizeof(e));
			if (r < 0)
				break;
			if (e.len != len - sizeof(e) || e.reserved || e.off > fsize || e.len > fsize - e.off ||
			    (total += e.len) > STATE_BYTES_MAX) {
				r = dm_fail(-EBADMSG, "file extent %" PRIu64 "+%u out of range", e.off, e.len);
				break;
			}
			r = net_recv_body(s->ctl, buf, e.len);
			if (r < 0)
				break;
			r = pwrite_all(fd, buf, e.len, (off_t)e.off);
			break;
		}
		case MIG_T_FILE_END:
			if (fd < 0 || len) {
				r = dm_fail(-EBADMSG, "file end out of place");
				break;
			}
			close(fd);
			fd = -1;
			break;
		case MIG_T_DIRTY: {
			size_t n = len / sizeof(struct mig_wire_range);
			if (len % sizeof(struct mig_wire_range) || n > MIG_RANGES_MAX || !s->store ||
			    s->n_dirty + n > 64 * MIG_RANGES_MAX) {
				r = dm_fail(-EBADMSG, "dirty ranges out of place (%u bytes)", len);
				break;
			}
			s->dirty = xrealloc(s->dirty, (s->n_dirty + n + 1) * sizeof(*s->dirty));
			r = net_recv_body(s->ctl, s->dirty + s->n_dirty, len);
			s->n_dirty += n;
			break;
		}
		case MIG_T_STATE_END: {
			Dm__MigStateEnd *e = (Dm__MigStateEnd *)m;
			if (fd >= 0 || e->files != files) {
				r = dm_fail(-EBADMSG, "state end: %u files announced, %u received", e->files, files);
				break;
			}
			protobuf_c_message_free_unpacked(m, NULL);
			return 0;
		}
		case MIG_T_ABORT: {
			Dm__MigReply *a = (Dm__MigReply *)m;
			r = dm_fail(-ECANCELED, "the source gave up: %s", a->error ? a->error : "no reason");
			break;
		}
		default:
			r = dm_fail(-EBADMSG, "unexpected frame %#x while receiving the state", type);
		}
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		if (r < 0)
			break;
	}
	if (fd >= 0)
		close(fd);
	return r;
}

/* ---- restore ------------------------------------------------------------ */

static int lazy_cb(void *arg, const struct restore_lazy_proc *lp)
{
	struct dsess *s = arg;
	guardian_add(s, lp->host_pid);
	if (!store_mode(s->mode))
		guardian_add_uffd(s, lp->uffd);
	s->pids = xrealloc(s->pids, (s->n_pids + 1) * sizeof(*s->pids));
	s->pids[s->n_pids].vpid = lp->pid;
	s->pids[s->n_pids++].host = lp->host_pid;
	int r = mem_lazy_add(s->lazy, lp);
	if (r < 0)
		return r;
	if (store_mode(s->mode)) {
		/* every page is here: install them all before anything runs */
		r = mem_lazy_fill_local(s->lazy, lp->pid);
		if (r < 0)
			return r;
	}
	return 0;
}

static int lazy_fetch(void *arg, pid_t pid, uint64_t addr, void *page)
{
	struct dsess *s = arg;
	if (s->store) {
		uint32_t run;
		const void *p = mem_store_page(s->store, pid, addr, 1, &run);
		if (p) {
			memcpy(page, p, DM_PAGE_SIZE);
			s->fetch_store++;
			return 0;
		}
		if (store_mode(s->mode))
			return dm_fail(-ENODATA, "page %#" PRIx64 " of %d never arrived", addr, pid);
	}
	uint64_t t = clock_ns();
	int r = mem_netsrc_fetch(s->netsrc, pid, addr, page, 10000);
	s->fetch_net++;
	s->fetch_net_ms += ns_to_ms(t, clock_ns());
	return r;
}

/* restore_opts.lazy_peek: the store's slots stay put while the restore
 * writes the eager pages (a page sent again overwrites its own slot, and
 * all had come before the state; nothing is installed or released before
 * the lazy hook) */
static const void *lazy_peek(void *arg, pid_t pid, uint64_t addr, uint32_t max, uint32_t *run)
{
	struct dsess *s = arg;
	const void *p = s->store ? mem_store_page(s->store, pid, addr, max, run) : NULL;
	if (p)
		s->fetch_store += *run;
	return p;
}

static int expect_empty(struct dsess *s, uint16_t want, int timeout_ms, const char *what);

/*
 * COMMIT, after at most one NET_FRAMES: the packets the source's network
 * lock dropped, checked now and delivered by the restore as it lets the
 * tree go (restore_opts.packets).  Both within MIG_WAIT_COMMIT_MS.
 */
static int expect_commit(struct dsess *s)
{
	uint64_t deadline = clock_ns() + (uint64_t)MIG_WAIT_COMMIT_MS * 1000000;

	for (;;) {
		int64_t left = ((int64_t)deadline - (int64_t)clock_ns()) / 1000000;
		ProtobufCMessage *m = NULL;
		uint16_t type;
		uint32_t len;
		int k, r;

		if (left < 1)
			left = 1;
		mig_watchdog_arm(&s->wd, "COMMIT", (int)left);
		k = net_chan_poll_in(s->ctl, (int)left);
		if (k == 0) {
			mig_watchdog_arm(&s->wd, NULL, 0);
			return dm_fail(-ETIMEDOUT, "no COMMIT from the source within %d ms", MIG_WAIT_COMMIT_MS);
		}
		r = mig_recv(s->ctl, &type, &len, &m);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		if (r >= 0 && type == MIG_T_NET_FRAMES && !s->packets.buf && len && len <= NET_FRAMES_MAX) {
			size_t n = 0;
			s->packets.buf = xmalloc(len);
			r = net_recv_body(s->ctl, s->packets.buf, len);
			if (r >= 0) {
				s->packets.len = len;
				r = net_frames_check(s->packets.buf, len, &n);
				if (r < 0)
					s->packets.len = 0;
			}
			mig_watchdog_arm(&s->wd, NULL, 0);
			if (r < 0)
				return dm_wrap(mig_watchdog_error(&s->wd, r), "the packets the source kept");
			pr_debug("migration %.8s: %zu packets kept by the source's lock", s->hex, n);
			continue;
		}
		mig_watchdog_arm(&s->wd, NULL, 0);
		if (r < 0)
			return dm_wrap(mig_watchdog_error(&s->wd, r), "no COMMIT from the source");
		if (type != MIG_T_COMMIT || len) {
			if (type == MIG_T_NET_FRAMES || len)
				net_skip_body(s->ctl);
			return dm_fail(-EBADMSG, "expected COMMIT, got frame %#x of %u bytes", type, len);
		}
		return 0;
	}
}

/*
 * The restored tree is complete and stopped (every thread traced by this
 * thread): say RESUMED and wait for COMMIT before it runs.  So our copy
 * never runs unless the source has committed, i.e. has left its own copy
 * stopped for good; without COMMIT (the source gave up, died, or the link
 * broke) the restore kills a tree that never ran, and the source, which
 * has not sent COMMIT, thaws its own.  The two copies cannot overlap
 * whatever the timings.  The cost: half a round trip more downtime.
 */
static int hold_until_commit(void *arg, const pid_t *pids, size_t n, const struct restore_stats *st)
{
	struct dsess *s = arg;
	int r;

	s->t_held = clock_ns();
	s->root = pids[0];
	for (size_t i = 0; i < n; i++) {
		guardian_add(s, pids[i]);
		/* a container's tree stays in the cgroup runc made for it; a
		 * tree born in its own (restore_opts.cgroup_fd) is there */
		if (s->cg.version != TREECG_NONE && !s->container && !st->cgroup_born) {
			r = treecg_add(&s->cg, pids[i]);
			if (r < 0)
				return r;
		}
	}
	if (s->cg.version == TREECG_V2 && !s->container) {
		r = treecg_freeze(&s->cg, true);
		if (r < 0)
			return r;
	}
	s->restore_stats = restore_stats_json(st);
	json_object_set_new(s->restore_stats, "start_mono_ms", json_real(s->t_start / 1e6));
	json_object_set_new(s->restore_stats, "state_first_ms", json_real(ns_to_ms(s->t_start, s->t_state_first)));
	json_object_set_new(s->restore_stats, "state_received_ms", json_real(ns_to_ms(s->t_start, s->t_state)));
	if (s->store)
		json_object_set_new(s->restore_stats, "store_wait_ms", json_real(s->store_wait_ms));
	json_object_set_new(s->restore_stats, "pages_fetched_store", json_integer((json_int_t)s->fetch_store));
	json_object_set_new(s->restore_stats, "pages_fetched_source", json_integer((json_int_t)s->fetch_net));
	json_object_set_new(s->restore_stats, "fetch_source_ms", json_real(s->fetch_net_ms));
	json_object_set_new(s->restore_stats, "resume_at_ms", json_real(ns_to_ms(s->t_start, clock_ns())));
	json_object_set_new(s->restore_stats, "restore_from_ms", json_real(ns_to_ms(s->t_start, s->t_restore)));
	/* from there to the restore's start: the fault handler made, the
	 * inventory read, a container's put-back begun (the network) */
	if (s->t_restore_call > s->t_restore) {
		json_t *pre = json_object();
		json_object_set_new(pre, "lazy_new_ms", json_real(ns_to_ms(s->t_restore, s->t_lazy_made)));
		if (s->t_inventory > s->t_lazy_made)
			json_object_set_new(pre, "inventory_ms", json_real(ns_to_ms(s->t_lazy_made, s->t_inventory)));
		json_object_set_new(pre, "total_ms", json_real(ns_to_ms(s->t_restore, s->t_restore_call)));
		json_object_set_new(s->restore_stats, "before_restore", pre);
	}
	if (s->prep_stats)
		json_object_set_new(s->restore_stats, "prepare", json_incref(s->prep_stats));
	if (s->docker)
		json_object_set_new(s->restore_stats, "docker",
				    json_pack("{s:f,s:f,s:f,s:O*}", "handoff_ms", s->dk_handoff_ms, "volumes_ms",
					      s->dk_volumes_ms, "attach_ms", s->dk_attach_ms, "put_back", s->dk_putback));
	if (s->ctr_rs) {
		/* its put-back is over (the restore waited for it: RST_BESIDE_ALL) */
		json_decref(s->ctr_stats);
		s->ctr_stats = runc_putback_stats_json(s->ctr_rs);
		json_object_set_new(s->ctr_stats, "put_back_end_ms", json_real(ns_to_ms(s->t_start, s->t_put_back)));
		json_object_set_new(s->restore_stats, "container", json_incref(s->ctr_stats));
	}
	if (s->rfs) {
		/* a transfer broken before the switch-over rolls back */
		r = rfs_recv_failed(s->rfs);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < s->n_vol; i++)
		if (s->vol[i] && (r = rfs_recv_failed(s->vol[i])) < 0)
			return r;
	if (s->rfs) {
		/* what the files cost before the resume: the wait for them, the
		 * restore's opens that had to wait (misses) */
		json_t *rs = rfs_recv_stats(s->rfs);
		json_object_set_new(rs, "wait_from_ms", json_real(ns_to_ms(s->t_start, s->t_rootfs_wait)));
		json_object_set_new(rs, "ready_ms", json_real(ns_to_ms(s->t_start, s->t_rootfs_ready)));
		/* the restore's requests through the view (nothing else uses it before the resume) */
		if (s->view)
			json_object_set_new(rs, "view", rfs_view_stats(s->view));
		json_object_set_new(s->restore_stats, "rootfs", rs);
	}
	/* a Docker container whose address changes: its lock guards nothing
	 * now (docker_dst_unlock_early) */
	if (s->docker) {
		bool opened = s->lock_opened = docker_dst_unlock_early(s->docker);
		json_t *dk = json_object_get(s->restore_stats, "docker");
		if (dk)
			json_object_set_new(dk, "unlocked_before_commit", json_boolean(opened));
	}
	if (!store_mode(s->mode)) {
		/* the handler in place before RESUMED: a failure now still rolls back */
		r = mem_lazy_start(s->lazy);
		if (r < 0)
			return r;
	}
	pr_info("migration %.8s: restored, root pid %d; waiting for COMMIT", s->hex, s->root);
	mig_test_point("dst-restored");
	r = mig_send_reply(s->ctl, MIG_T_RESUMED, true, 0, NULL, s->root, s->restore_stats);
	if (r < 0)
		return r;
	s->t_resumed = clock_ns();
	if (!store_mode(s->mode)) {
		/* the early push's pages (the working set) go in while RESUMED and
		 * COMMIT cross, beside us: not on the CPU we hold (mem.h) */
		cpu_set_t one;
		if (sched_getaffinity(0, sizeof(one), &one) == 0 && CPU_COUNT(&one) == 1)
			mem_netsrc_keep_off_cpu(s->netsrc, sched_getcpu()); /* pinned: where we run */
		mem_netsrc_set_lazy(s->netsrc, s->lazy);
	}
	mig_test_point("dst-resumed");
	r = expect_commit(s);
	if (r < 0)
		return r;
	s->committed = true;
	s->t_commit = clock_ns();
	mem_lazy_trace_origin(s->lazy, s->t_commit);
	/* it runs as soon as the restore detaches it */
	if (s->cg.version == TREECG_V2 && !s->container)
		return treecg_freeze(&s->cg, false);
	return 0;
}

/*
 * The fault handler the restore registers the tree's memory with: made
 * while the source freezes and dumps (ph_state), not in the downtime after
 * the state came (0.8-1.5 ms here: its tables, fresh memory).  Nothing of
 * it depends on the image: START said how the pages come.
 */
static int lazy_prepare(struct dsess *s)
{
	struct mem_lazy_opts lo = { .push_local = s->mode == MIG_HYBRID || s->store_lazy,
				    .on_fork_uffd = store_mode(s->mode) ? NULL : guardian_fork_uffd,
				    .on_fork_arg = s };

	if (s->lazy)
		return 0;
	mem_netsrc_ops(s->netsrc, &lo.ops);
	if (store_mode(s->mode)) {
		lo.ops.request = NULL;    /* nothing is asked of the source after the resume */
		lo.ops.local_done = NULL; /* the store goes as a whole right after */
	}
	if (s->eager_store && !s->store_lazy) {
		/* it holds eager pages only, which the restore reads (lazy_fetch):
		 * a fault never finds one there */
		lo.ops.local = NULL;
		lo.ops.local_done = NULL;
	}
	return mem_lazy_new(&lo, &s->lazy);
}

/*
 * restore_opts.after_resume: the tree runs.  A runc container's addresses
 * are announced now, and its lock removed if the restore did not (a tree
 * without sockets): the restore's cleanup after this took 25-33 ms here
 * (closing its nftables socket waits for the lock table's destruction), and
 * until the announcement the segment's bridges sent the peers' frames to
 * the source's port.
 */
static void tree_runs(void *arg, const struct restore_stats *st)
{
	struct dsess *s = arg;

	/* the restore's CPU is the tree's now: the pushed pages' receiver
	 * may take it again (kept off it since RESUMED, mem.h) */
	mem_netsrc_keep_off_cpu(s->netsrc, -1);
	if (s->mode == MIG_POST_COPY || s->mode == MIG_HYBRID)
		mem_netsrc_background(s->netsrc);

	/* a lock the restore holds it opened already, and removes (if it
	 * cannot, runc_restore_done() does) */
	struct runc_started *rs = s->announce_rs;
	if (rs) {
		s->t_announced = clock_ns(); /* the first frame goes at once */
		runc_restore_announce(rs, !st->lock_taken);
	}
}

static int do_restore(struct dsess *s)
{
	/* the container runs (READY went) before the source froze: joined */
	int rj = dk_start_join(s);
	if (rj < 0)
		return rj;
	struct restore_result res = { .root_pidfd = -1 };
	_cleanup_close_ int cgfd = -1;
	int r;

	s->t_restore = clock_ns();
	r = lazy_prepare(s);
	if (r < 0)
		return r;
	s->t_lazy_made = clock_ns();
	struct restore_opts ro = {
		.images_dir = s->dir,
		.root_fd = -1,
		.lazy = true,
		.lazy_cb = lazy_cb,
		.lazy_fetch = lazy_fetch,
		.lazy_peek = lazy_peek,
		.lazy_arg = s,
		/* the fault trace names the threads */
		.lazy_features = LAZY_FEATURES | (mem_fault_trace_wanted() ? UFFD_FEATURE_THREAD_ID : 0) |
				 (s->fault_exact ? UFFD_FEATURE_EXACT_ADDRESS : 0),
		.before_resume = hold_until_commit,
		.before_resume_arg = s,
		.after_resume = tree_runs,
		.after_resume_arg = s,
		.packets = &s->packets,
		/* the tree's paths under its rootfs on the source resolve in the copy */
		.path_from = s->docker ? NULL : s->rfs_src_dir,
		.path_to = !s->rfs_src_dir || s->docker ? NULL : s->view ? s->rfs_mnt : s->rfs_data,
	};
	/* a container's image: runc makes the container, the tree runs in it */
	struct runc_started rs = { .sock = -1, .root_fd = -1 };
	Dm__Inventory *inv = NULL;
	_cleanup_image_ struct dm_image *img = NULL;
	if (image_open(s->dir, false, &img) >= 0 &&
	    image_read_msg(img, IMG_INVENTORY_FILE, IMG_INVENTORY, &dm__inventory__descriptor,
			   (ProtobufCMessage **)&inv) >= 0 && (s->t_inventory = clock_ns(), inv->container) && s->docker) {
		/* Docker makes the container; its runtime hands us the stub */
		struct handoff h = { .sock = -1, .stdio = { -1, -1, -1 } };
		struct runc_restore_opts rro = { .images_dir = s->dir, .runtime_made = true };
		uint64_t t = clock_ns();
		r = docker_dst_take_handoff(s->docker, &h);
		s->dk_handoff_ms = ns_to_ms(t, clock_ns());
		t = clock_ns();
		if (r >= 0)
			r = docker_dst_put_volumes(s->docker, s->dir);
		s->dk_volumes_ms = ns_to_ms(t, clock_ns());
		t = clock_ns();
		if (r >= 0) {
			rro.net_locked = docker_dst_net_locked(s->docker);
			r = runc_restore_attach(inv->container, &rro, h.pid, h.sock, &rs);
			h.sock = -1;
		}
		s->dk_attach_ms = ns_to_ms(t, clock_ns());
		if (r >= 0)
			s->dk_putback = runc_putback_stats_json(&rs);
		if (r < 0) {
			protobuf_c_message_free_unpacked(&inv->base, NULL);
			handoff_close(&h);
			return r;
		}
		ro.inventory = TAKE_PTR(inv); /* not read again */
		s->container = true;
		ro.stub_pid = rs.pid;
		ro.stub_sock = rs.sock;
		ro.root_fd = rs.root_fd;
		ro.stdio_given = true;
		memcpy(ro.stdio_fds, h.stdio, sizeof(h.stdio));
		ro.inet_close_foreign = true;
		ro.lock_opened = &s->lock_opened;
		/* locked when it started: the restore keeps that lock, and
		 * removes it as its own */
		ro.netns_locked = rs.net_locked;
		dm_error_clear();
		s->announce_rs = &rs;
		r = restore_tree(&ro, &res);
		s->announce_rs = NULL;
		handoff_close(&h);
		if (r >= 0 && res.stats.lock_removed)
			rs.net_locked = false;
		runc_restore_done(&rs, r >= 0);
		goto restored;
	} else if (inv && inv->container) {
		struct runc_restore_opts rro = { .images_dir = s->dir, .bridge = s->o->bridge };
		if (s->runc_early.id) {
			/* started at START: the rest of it */
			rs = s->runc_early;
			s->runc_early = (struct runc_started){ .sock = -1, .root_fd = -1 };
			if (!runc_same_container(s->runc_base, inv->container)) {
				r = dm_fail(-EPROTO, "the image's container (%s) is not the one started at START (%s)",
					    inv->container->id, s->runc_base->id);
				runc_restore_done(&rs, false);
			} else {
				/* the network's check now; IPC, tmpfs files, our
				 * veths' ends, host name and limits by a thread
				 * beside the restore */
				r = runc_restore_put_back_async(inv->container, &rro, &rs);
			}
		} else {
			r = runc_restore_start(inv->container, &rro, &rs);
		}
		s->t_put_back = clock_ns();
		if (r < 0) {
			protobuf_c_message_free_unpacked(&inv->base, NULL);
			return r;
		}
		ro.inventory = TAKE_PTR(inv); /* not read again */
		s->ctr_rs = s->announce_rs = &rs;
		s->container = true;
		ro.stub_pid = rs.pid;
		ro.stub_sock = rs.sock;
		ro.root_fd = rs.root_fd;
		ro.netns_locked = rs.net_locked;
		if (rs.job) {
			ro.beside_wait = runc_restore_wait;
			ro.beside_arg = &rs;
		}
	} else if (inv) {
		ro.inventory = TAKE_PTR(inv); /* not read again */
	}
	dm_error_clear();
	/* a bare tree is born in its cgroup: no cgroup.procs write (a grace
	 * period) in the downtime */
	if (!s->container && s->cg.version == TREECG_V2) {
		cgfd = open(s->cg.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ro.cgroup_fd = cgfd;
	}
	s->t_restore_call = clock_ns();
	r = restore_tree(&ro, &res);
	/* the lock went with the restore's own (restore_opts.netns_locked):
	 * not another nft transaction before the announcements */
	if (r >= 0 && res.stats.lock_removed)
		rs.net_locked = false;
	if (s->container) {
		uint64_t t = clock_ns();
		runc_restore_done(&rs, r >= 0);
		s->ctr_done_ms = ns_to_ms(t, clock_ns());
		s->ctr_rs = s->announce_rs = NULL;
	}
restored:
	if (r < 0)
		return r;
	s->resumed = true;
	s->t_resume = clock_ns();
	s->resumed_stats = res.stats;
	s->root = res.root_pid;
	s->root_pidfd = res.root_pidfd;
	if (store_mode(s->mode)) {
		/* every page was installed by the hook: let the areas go */
		mem_lazy_free(s->lazy);
		s->lazy = NULL;
	}
	return 0;
}

static json_t *mem_stats(struct dsess *s)
{
	json_t *j = json_object();
	if (s->lazy) {
		struct mem_lazy_stats st;
		mem_lazy_get_stats(s->lazy, &st);
		json_object_set_new(j, "pages_on_demand", json_integer((json_int_t)st.pages[MEM_FROM_FAULT]));
		json_object_set_new(j, "pages_prefetched", json_integer((json_int_t)st.pages[MEM_FROM_PREFETCH]));
		json_object_set_new(j, "pages_pushed", json_integer((json_int_t)st.pages[MEM_FROM_PUSH]));
		json_object_set_new(j, "pages_local", json_integer((json_int_t)st.pages[MEM_FROM_LOCAL]));
		json_object_set_new(j, "faults", json_integer((json_int_t)st.faults));
		json_object_set_new(j, "faults_remote", json_integer((json_int_t)st.faults_remote));
		json_object_set_new(j, "local_fallbacks", json_integer((json_int_t)st.local_fallbacks));
		json_object_set_new(j, "zero_pages", json_integer((json_int_t)st.zero_pages));
		json_object_set_new(j, "pages_absent", json_integer((json_int_t)st.absent));
		json_object_set_new(j, "vma_fixes", json_integer((json_int_t)s->vma_fixes));
		json_object_set_new(j, "forks", json_integer((json_int_t)st.forks));
		json_object_set_new(j, "forks_ended", json_integer((json_int_t)st.forks_ended));
		json_object_set_new(j, "removes", json_integer((json_int_t)st.removes));
		json_object_set_new(j, "unmaps", json_integer((json_int_t)st.unmaps));
		json_object_set_new(j, "remaps", json_integer((json_int_t)st.remaps));
		json_object_set_new(j, "eexist", json_integer((json_int_t)st.eexist));
		json_t *lat = json_object();
		json_object_set_new(lat, "p50", json_real(st.fault_p50_us));
		json_object_set_new(lat, "p99", json_real(st.fault_p99_us));
		json_object_set_new(lat, "max", json_real(st.fault_max_us));
		json_object_set_new(lat, "count", json_integer((json_int_t)st.faults_remote));
		if (st.slowest_fault_t0_ns) {
			/* when the slowest one came (ms after COMMIT, from when the tree
			 * may run: negative, during the restore) and where, to tell
			 * what held it up */
			char addr[32];
			snprintf(addr, sizeof(addr), "%#" PRIx64, st.slowest_fault_addr);
			json_object_set_new(lat, "max_at_ms",
					    json_real(((double)st.slowest_fault_t0_ns - (double)s->t_commit) / 1e6));
			json_object_set_new(lat, "max_addr", json_string(addr));
			json_object_set_new(lat, "max_space", json_integer(st.slowest_fault_space));
			json_object_set_new(lat, "max_install_us",
					    json_real((double)st.slowest_fault_install_ns / 1000));
		}
		json_object_set_new(j, "fault_latency_us", lat);
		json_object_set_new(j, "fault_latency_hist_us", st.fault_hist);
	}
	if (s->store)
		json_object_set_new(j, "store_pages_left", json_integer((json_int_t)mem_store_pages(s->store)));
	json_object_set_new(j, "resume_to_done_ms", json_real(s->t_done ? ns_to_ms(s->t_resume, s->t_done) : 0));
	/* from COMMIT to the tree running (the restore let it go) */
	if (s->t_commit && s->t_resume > s->t_commit)
		json_object_set_new(j, "commit_to_running_ms", json_real(ns_to_ms(s->t_commit, s->t_resume)));
	if (s->packets.len) {
		/* what the source's lock dropped, delivered here */
		size_t n = 0;
		net_frames_check(s->packets.buf, s->packets.len, &n);
		json_object_set_new(j, "net_packets_kept", json_integer((json_int_t)n));
		json_object_set_new(j, "net_packets_delivered", json_integer((json_int_t)s->packets.delivered));
	}
	/* RESUMED sent to COMMIT in: the source's switch-over (its copy kept
	 * stopped, the packets its lock kept) and a round trip of the link */
	if (s->t_resumed && s->t_commit > s->t_resumed)
		json_object_set_new(j, "resumed_to_commit_ms", json_real(ns_to_ms(s->t_resumed, s->t_commit)));
	/* the restore's end (the tree complete and stopped) to RESUMED sent:
	 * the guardian, the tree's cgroup, the stats, the fault handler */
	if (s->t_held && s->t_resumed > s->t_held)
		json_object_set_new(j, "held_to_resumed_ms", json_real(ns_to_ms(s->t_held, s->t_resumed)));
	/* from COMMIT to the tree let go: the part of the client's gap after
	 * the engine's downtime that is ours (the lock opened, connections out
	 * of repair, the kept packets delivered, the detach) */
	if (s->t_commit && s->resumed_stats.detached_ns > s->t_commit)
		json_object_set_new(j, "commit_to_detached_ms",
				    json_real(ns_to_ms(s->t_commit, s->resumed_stats.detached_ns)));
	/* COMMIT to a container's addresses announced (tree_runs()) */
	if (s->t_commit && s->t_announced > s->t_commit)
		json_object_set_new(j, "commit_to_announced_ms", json_real(ns_to_ms(s->t_commit, s->t_announced)));
	if (s->ctr_stats) {
		/* after the tree runs: the lock's, the announcements, segments removed again */
		json_object_set_new(j, "container_done_ms", json_real(s->ctr_done_ms));
		json_object_set_new(j, "unlock_ms", json_real(s->resumed_stats.unlock_ms));
		json_object_set_new(j, "unlock_prepared", json_boolean(s->resumed_stats.unlock_prepared));
		json_object_set_new(j, "settle_ms", json_real(s->resumed_stats.settle_ms));
	}
	if (s->resumed_stats.lock_counted) {
		/* the tree's own connections, dropped on this side while locked */
		json_object_set_new(j, "net_lock_tcp_dropped_in",
				    json_integer((json_int_t)s->resumed_stats.lock_tcp_dropped_in));
		json_object_set_new(j, "net_lock_tcp_dropped_out",
				    json_integer((json_int_t)s->resumed_stats.lock_tcp_dropped_out));
	}
	return j;
}

/* After the resume: wait for every page, watching the channels. */
/*
 * VMAs whose madvise state changed on the source just before its freeze
 * (the flags were read before it, see dump/dump-vmflags.c): set it in the
 * running process, from inside (madvise has no remote form).  A process of
 * the tree that has no lazy memory is not in s->pids: its VMAs were small
 * and were read in the freeze, so it is never named here.
 */
static int apply_vma_fixes(struct dsess *s, uint32_t len)
{
	const struct restore_madv *adv = restore_madv_table;
	size_t n = len / sizeof(struct mig_wire_vma_fix);
	int r;

	if (len % sizeof(struct mig_wire_vma_fix) || n > MIG_VMA_FIX_MAX || s->vma_checked)
		return dm_fail(-EBADMSG, "VMA fix-up of %u bytes out of place", len);
	s->vma_checked = true;
	if (!n)
		return 0; /* nothing changed */
	_cleanup_free_ struct mig_wire_vma_fix *v = xmalloc(len);
	r = net_recv_body(s->ctl, v, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		pid_t host = 0;
		for (size_t k = 0; k < s->n_pids; k++)
			if ((uint32_t)s->pids[k].vpid == v[i].space)
				host = s->pids[k].host;
		if (!host || !PAGE_ALIGNED(v[i].start) || !PAGE_ALIGNED(v[i].end) || v[i].end <= v[i].start ||
		    v[i].end > MEM_ADDR_LIMIT || v[i].reserved)
			return dm_fail(-EBADMSG, "VMA fix-up %zu (process %u, %#" PRIx64 "-%#" PRIx64 ") is invalid", i,
				       v[i].space, v[i].start, v[i].end);
		struct inject_live lv;
		r = inject_live_begin(host, &lv);
		if (r < 0)
			return dm_wrap(r, "process %d: cannot fix the madvise state of %#" PRIx64, host, v[i].start);
		/* it runs here since the switch-over: if it has changed this VMA
		 * meanwhile, its own newer choice stands */
		bool as_restored = false;
		{
			_cleanup_(proc_vma_list_done) struct proc_vma_list vl = {};
			if (proc_read_maps_vmflags(host, &vl) >= 0)
				for (size_t k = 0; k < vl.n; k++)
					if (vl.vmas[k].start == v[i].start && vl.vmas[k].end == v[i].end)
						as_restored = dump_madv_bits(vl.vmas[k].vmflags) == v[i].madv_was;
			dm_error_clear();
		}
		if (!as_restored) {
			inject_live_end(&lv);
			pr_info("migration %.8s: process %d changed %#" PRIx64 "-%#" PRIx64 " itself since the "
				"switch-over: its madvise state stays", s->hex, host, v[i].start, v[i].end);
			continue;
		}
		uint32_t diff = v[i].madv ^ v[i].madv_was;
		uint64_t a = v[i].start, l = v[i].end - v[i].start;
		long x = 0;
		for (size_t k = 0; k < restore_madv_count && x >= 0; k++) {
			if (!(diff & adv[k].bit))
				continue;
			int advice = v[i].madv & adv[k].bit ? adv[k].on : adv[k].off;
			/* SEQ and RAND off: NORMAL, unless the other one is on */
			if (advice == MADV_NORMAL && (v[i].madv & (DM_MADV_SEQ | DM_MADV_RAND)))
				continue;
			if (advice >= 0)
				x = inject_live_call(&lv, SYS_madvise, a, l, (uint64_t)advice, 0, 0, 0);
		}
		if (x >= 0 && (diff & (DM_MADV_LOCKED | DM_MADV_LOCKONFAULT)))
			/* on fault: the area may still miss pages that are on their way */
			x = v[i].madv & DM_MADV_LOCKED ? inject_live_call(&lv, SYS_mlock2, a, l, MLOCK_ONFAULT, 0, 0, 0)
						       : inject_live_call(&lv, SYS_munlock, a, l, 0, 0, 0, 0);
		r = inject_live_end(&lv);
		if (x < 0)
			return dm_fail((int)x, "process %d: madvise of %#" PRIx64 "-%#" PRIx64 ": %s", host, a, a + l,
				       strerror((int)-x));
		if (r < 0)
			return r;
		s->vma_fixes++;
		pr_info("migration %.8s: process %d: madvise state of %#" PRIx64 "-%#" PRIx64 " set (%#x -> %#x)",
			s->hex, host, a, a + l, v[i].madv_was, v[i].madv);
	}
	return 0;
}

static int serve_until_done(struct dsess *s)
{
	uint64_t last_log = clock_ns(), last_progress = clock_ns(), missing = UINT64_MAX, t_mem = 0;
	bool stalled = false;
	for (;;) {
		bool mem_done = false;
		int r = mem_lazy_wait(s->lazy, 100);
		if (r == 0) {
			if (s->vma_checked)
				return 0;
			mem_done = true;
			if (!t_mem)
				t_mem = clock_ns();
			else if (clock_ns() - t_mem > MIG_WAIT_VMA_FIX_MS * 1000000ULL)
				return dm_fail(-ETIMEDOUT, "the source never said whether VMA flags changed (waited %d s)",
					       MIG_WAIT_VMA_FIX_MS / 1000);
		} else if (r != -ETIMEDOUT) {
			return dm_wrap(r, "serving pages");
		} else {
			uint64_t left = mem_lazy_missing(s->lazy);
			if (left < missing) {
				if (stalled)
					pr_warn("migration %.8s: pages arrive again after %.1f s", s->hex,
						(double)(clock_ns() - last_progress) / 1e9);
				stalled = false;
				missing = left;
				last_progress = clock_ns();
			} else if (clock_ns() - last_progress > (MIG_LINK_PATIENCE_S + 10) * 1000000000ULL) {
				return dm_fail(-ETIMEDOUT, "no page arrived for %d s (%" PRIu64 " missing)",
					       MIG_LINK_PATIENCE_S + 10, left);
			} else if (!stalled && clock_ns() - last_progress > 3000000000ULL) {
				stalled = true;
				pr_warn("migration %.8s: no page for 3 s (%" PRIu64 " missing): is the link down?  "
					"Waiting up to %d s", s->hex, left, MIG_LINK_PATIENCE_S);
			}
			if ((r = mem_netsrc_error(s->netsrc)))
				return dm_wrap(r, "the page channels broke");
		}
		if (net_chan_poll_in(s->ctl, mem_done ? 100 : 0) > 0) {
			/* the source says nothing now unless it gives up, or has
			 * VMA flags to fix */
			ProtobufCMessage *m = NULL;
			uint16_t type;
			uint32_t len;
			r = mig_recv(s->ctl, &type, &len, &m);
			if (r >= 0 && type == MIG_T_VMA_FIX && !m) {
				r = apply_vma_fixes(s, len);
				if (r < 0)
					return r;
				continue;
			}
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
			return dm_fail(r < 0 ? r : -ECANCELED, "the source %s while pages were missing",
				       r < 0 ? "went away" : "gave up");
		}
		if (!mem_done && clock_ns() - last_log > 5000000000ULL) {
			last_log = clock_ns();
			pr_info("migration %.8s: %" PRIu64 " of %" PRIu64 " pages still missing", s->hex,
				mem_lazy_missing(s->lazy), mem_lazy_total(s->lazy));
		}
	}
}

static int expect_empty(struct dsess *s, uint16_t want, int timeout_ms, const char *what)
{
	ProtobufCMessage *m = NULL;
	uint16_t type;
	uint32_t len;
	/* the frame may come in pieces: the watchdog bounds the whole wait */
	mig_watchdog_arm(&s->wd, what, timeout_ms);
	int k = net_chan_poll_in(s->ctl, timeout_ms);
	if (k == 0) {
		mig_watchdog_arm(&s->wd, NULL, 0);
		return dm_fail(-ETIMEDOUT, "no %s from the source within %d ms", what, timeout_ms);
	}
	int r = mig_recv(s->ctl, &type, &len, &m);
	mig_watchdog_arm(&s->wd, NULL, 0);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	if (r < 0)
		return dm_wrap(mig_watchdog_error(&s->wd, r), "no %s from the source", what);
	if (type != want || len)
		return dm_fail(-EBADMSG, "expected %s, got frame %#x", what, type);
	return 0;
}

static void session_cleanup(struct dsess *s)
{
	/* a container still starting: it is ours to remove once it ran */
	(void)dk_start_join(s);
	mig_watchdog_stop(&s->wd);
	free(s->packets.buf);
	s->packets = (struct restore_packets){ 0 };
	docker_dst_free(s->docker);
	s->docker = NULL;
	/* started at START, never restored into: it goes */
	if (s->runc_early.id)
		runc_restore_done(&s->runc_early, false);
	if (s->runc_base || s->docker_early)
		early_settle(s);
	if (s->runc_base)
		dm__container__free_unpacked(s->runc_base, NULL);
	s->runc_base = NULL;
	mem_netsrc_stop(s->netsrc);
	mem_lazy_free(s->lazy);
	s->lazy = NULL;
	mem_netsrc_free(s->netsrc);
	s->netsrc = NULL;
	mem_store_free(s->store);
	s->store = NULL;
	dst_unreserve(s);
	if (s->dir && !s->o->keep_images)
		rm_rf(s->dir);
	free(s->dir);
	s->dir = NULL;
	if (s->root_pidfd >= 0)
		close(s->root_pidfd);
	s->root_pidfd = -1;
	json_decref(s->restore_stats);
	json_decref(s->ctr_stats);
	json_decref(s->dk_putback);
	json_decref(s->prep_stats);
	s->ctr_stats = s->prep_stats = NULL;
	s->restore_stats = NULL;
	free(s->dirty);
	free(s->pids);
	s->dirty = NULL;
	free(s->target);
	s->target = NULL;
	/* the copy and its view stay with a tree that runs on them (free_session);
	 * the receiver stops first: a view's thread waiting for data that will
	 * not come gets -EIO and lets the view go */
	rfs_recv_stop(s->rfs);
	if (!s->keep_root) {
		rfs_view_free(s->view);
		s->view = NULL;
	}
	rfs_view_detach(s->view); /* a kept view: it needs the receiver no more */
	rfs_recv_free(s->rfs);
	s->rfs = NULL;
	for (size_t i = 0; i < MIG_VOLUME_TREES_MAX; i++) {
		rfs_recv_free(s->vol[i]);
		s->vol[i] = NULL;
	}
	if (s->rfs_root && !s->keep_root) {
		rm_rf(s->rfs_root);
		free(s->rfs_root);
		s->rfs_root = NULL;
	}
	free(s->rfs_data);
	free(s->rfs_mnt);
	s->rfs_data = s->rfs_mnt = NULL;
	free(s->rfs_src_dir);
	s->rfs_src_dir = NULL;
}

/* ---- the phases ----------------------------------------------------------- */

/*
 * The session as the named phases of mig-internal.h, run in order by
 * session_thread().  What a failure undoes depends on how far the tree
 * got, and is done in one place, dst_undo():
 *
 *   before the resume   nothing of ours ever ran: the restore kills a
 *                       half-made or held tree itself; the guardian ends,
 *                       ABORT, the work dir goes
 *   after COMMIT, while its memory is incomplete (s->resumed): the whole
 *                       tree (its cgroup) killed first, then ABORT; the
 *                       source keeps its stopped copy
 */
struct dst_phase {
	enum mig_phase id;
	const char *step;
	int (*run)(struct dsess *s);
};


/* A Docker container's volumes as trees: each channel's first frame says
 * which volume it carries; each volume's receiver puts it into the
 * container's (emptied) volume here, from before the freeze */
static int start_volumes(struct dsess *s)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < 2 * s->n_vol; i++) {
		struct net_chan *c = s->vol_in[i];
		struct net_frame f;
		struct rfs_wire_volume vi;
		r = net_recv_hdr(c, &f);
		if (r >= 0 && (f.type != RFS_T_VOLUME_INDEX || f.len != sizeof(vi)))
			r = dm_fail(-EBADMSG, "a volume channel began with frame %#x of %u bytes", f.type, f.len);
		if (r >= 0)
			r = net_recv_body(c, &vi, sizeof(vi));
		if (r < 0)
			return dm_wrap(r, "a volume channel");
		struct net_chan **slot = net_chan_role(c) == NET_ROLE_VOLUME ? s->vol_chan : s->vol_miss;
		if (vi.index >= s->n_vol || slot[vi.index])
			return dm_fail(-EBADMSG, "a second %s channel for volume %u", net_role_name(net_chan_role(c)),
				       vi.index);
		slot[vi.index] = c;
		s->vol_in[i] = NULL;
		mig_tune_chan(c, net_chan_role(c) == NET_ROLE_VOLUME_MISS);
	}
	for (size_t i = 0; r >= 0 && i < s->n_vol; i++) {
		const char *name = s->vol_name[i];
		_cleanup_free_ char *dir = NULL;
		r = docker_dst_volume_dir(s->docker, name, &dir);
		if (r >= 0)
			r = rfs_recv_start(s->vol_chan[i], s->vol_miss[i], dir, &s->vol[i]);
		if (r < 0)
			return dm_wrap(r, "volume %s", name);
		s->wd.chans[5 + 2 * i] = s->vol_chan[i];
		s->wd.chans[6 + 2 * i] = s->vol_miss[i];
		pr_info("migration %.8s: volume %s comes into %s", s->hex, name, dir);
	}
	return r;
}

/* prepare: START (MIG_WAIT_START_MS) -> ACCEPT, the channels (MIG_WAIT_JOIN_MS),
 * the tree's cgroup and guardian, the page receiver */
static int ph_prepare(struct dsess *s)
{
	int r;
	s->wd.chans[0] = s->ctl;
	r = mig_watchdog_start(&s->wd);
	if (r < 0)
		return r;
	mig_watchdog_arm(&s->wd, "START", MIG_WAIT_START_MS);
	r = handle_start(s);
	if (r < 0)
		return r;
	r = wait_channels(s, MIG_WAIT_JOIN_MS);
	if (r < 0)
		return r;
	/* the tree's cgroup: the guardian kills it as a whole */
	if (treecg_create(s->hex, TREECG_NONE, &s->cg) < 0) {
		pr_warn("migration %.8s: %s; a failed migration kills the restored processes it knows of, not "
			"what they forked", s->hex, dm_last_error());
		dm_error_clear();
	}
	r = guardian_start(s);
	if (r < 0)
		return r;
	mig_tune_chan(s->fault, true);
	mig_tune_chan(s->bulk, false);
	s->wd.chans[1] = s->fault;
	s->wd.chans[2] = s->bulk;
	/* a peer that stops sending the state is stopped or broken */
	mig_watchdog_arm_silent(&s->wd, "the state", peer_timeout_ms(s));
	r = mem_netsrc_new(s->fault, s->bulk, s->store, &s->netsrc);
	if (r >= 0)
		r = mem_netsrc_start(s->netsrc);
	if (r < 0 || !s->rfs_mode)
		return r;
	/* the files arrive from the source's freeze on, beside the state */
	mig_tune_chan(s->rfs_chan, false);
	mig_tune_chan(s->rfs_miss, true);
	s->wd.chans[3] = s->rfs_chan;
	s->wd.chans[4] = s->rfs_miss;
	s->rfs_root = xasprintf("%s/rootfs/%s", s->o->state_dir ? s->o->state_dir : "/var/lib/dmigrate", s->hex);
	/* a Docker container's layer: straight into the (empty) one made here */
	s->rfs_data = s->docker ? xstrdup(docker_dst_layer(s->docker)) : xasprintf("%s/data", s->rfs_root);
	s->rfs_mnt = xasprintf("%s/root", s->rfs_root);
	if (mkdir(s->rfs_root, 0700) < 0)
		return dm_fail(neg_errno(), "%s: %m", s->rfs_root);
	r = rfs_recv_start(s->rfs_chan, s->rfs_miss, s->rfs_data, &s->rfs);
	if (r >= 0)
		r = start_volumes(s);
	if (r < 0 || s->rfs_mode == RFS_EAGER)
		return r;
	/* priority, lazy: the view is mounted now, before the freeze; what
	 * looks into it waits for the entries of the directories it goes
	 * through, and a read for the chunks it needs, nothing else */
	rfs_recv_background(s->rfs);
	return rfs_view_start(s->rfs, s->rfs_data, s->rfs_mnt, &s->view);
}

/* rootfs, before the restore.  eager: every file (silent limit:
 * --peer-timeout); priority, lazy: nothing: the view is mounted (ph_prepare)
 * and the restore goes through it, waiting only for the directories it
 * looks into and the chunks it reads (a miss each) */
static int ph_rootfs_before(struct dsess *s)
{
	int r;
	if (!s->rfs)
		return 0;
	s->t_rootfs_wait = clock_ns();
	if (s->rfs_mode == RFS_EAGER) {
		mig_watchdog_arm_silent(&s->wd, "the files", peer_timeout_ms(s));
		while ((r = rfs_recv_wait_all(s->rfs, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
			;
		/* a Docker container's volumes: all of each, as its layer */
		for (size_t i = 0; r >= 0 && i < s->n_vol; i++) {
			while ((r = rfs_recv_wait_all(s->vol[i], 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
				;
			if (r < 0)
				r = dm_wrap(r, "volume %s", s->vol_name[i]);
		}
		mig_watchdog_arm(&s->wd, NULL, 0);
		if (r < 0)
			return dm_wrap(mig_watchdog_error(&s->wd, r), "receiving the files");
	} else if ((r = rfs_recv_failed(s->rfs)) < 0) {
		return r;
	}
	s->t_rootfs_ready = clock_ns();
	mig_test_point("dst-rootfs-received");
	return 0;
}

/* rootfs, after the resume: the rest of the files (the link's patience, as
 * for the memory); then the view needs the receiver no more */
static int ph_rootfs_after(struct dsess *s)
{
	int r;
	if (!s->rfs)
		return 0;
	mig_watchdog_arm_silent(&s->wd, "the missing files", (MIG_LINK_PATIENCE_S + 10) * 1000);
	while ((r = rfs_recv_wait_all(s->rfs, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
		;
	mig_watchdog_arm(&s->wd, NULL, 0);
	if (r < 0)
		return dm_wrap(mig_watchdog_error(&s->wd, r), "receiving the files");
	rfs_view_detach(s->view);
	json_t *st = rfs_recv_stats(s->rfs);
	pr_info("migration %.8s: every file is in (%lld opens, %lld misses)", s->hex,
		json_integer_value(json_object_get(st, "opens")), json_integer_value(json_object_get(st, "misses")));
	json_decref(st);
	return 0;
}

/* state: the image files (silent limit: --peer-timeout) */
static int ph_state(struct dsess *s)
{
	int r = lazy_prepare(s);
	if (r < 0)
		return r;
	r = recv_files(s);
	if (r < 0)
		return r;
	s->t_state = clock_ns();
	mig_watchdog_arm(&s->wd, NULL, 0);
	mig_test_point("dst-state-received");
	return 0;
}

/* memory, before the resume: the store modes' pages (silent limit) */
static int ph_memory_before(struct dsess *s)
{
	int r;
	/*
	 * Store pages are written straight into their slots by the bulk thread:
	 * nothing may read them, or drop them, before the store phase ended.
	 * Hybrid too: the tail of its pre-copy pass may still be on the way
	 * when the state arrives; a dirtied page dropped before its old copy
	 * landed would come back, a page read while it lands would be torn.
	 * So does post-copy's store of eager pages: every mode with a store.
	 */
	if (s->store) {
		/* as long as memory keeps coming: the watchdog ends a silence */
		uint64_t t = clock_ns();
		mig_watchdog_arm_silent(&s->wd, "the memory before the restore", peer_timeout_ms(s));
		while ((r = mem_netsrc_wait_store_end(s->netsrc, 1000)) == -ETIMEDOUT && !atomic_load(&s->wd.fired))
			;
		mig_watchdog_arm(&s->wd, NULL, 0);
		s->store_wait_ms = ns_to_ms(t, clock_ns());
		if (r < 0)
			return dm_wrap(mig_watchdog_error(&s->wd, r), "receiving memory");
	}
	/* hybrid: pages written after the pre-copy pass come over the network
	 * after the resume, post-copy's eager ones in the image; their old
	 * copies must not be installed.  (In pre-copy and stop-and-copy the
	 * final push has overwritten them already.) */
	uint64_t dirty_pages = 0;
	if (s->store && !store_mode(s->mode))
		for (size_t i = 0; i < s->n_dirty; i++) {
			const struct mig_wire_range *d = &s->dirty[i];
			dirty_pages += d->npages;
			/* a bound on the work a peer can ask for: 2^26 pages (256 GiB).
			 * Not the store's size: pages the tree touched first after the
			 * pre-copy pass are dirty without ever having been stored. */
			if (d->npages > (1u << 28) || d->addr >= MEM_ADDR_LIMIT || dirty_pages > (1ULL << 26))
				return dm_fail(-EBADMSG, "dirty range %#" PRIx64 "+%" PRIu64 " out of range", d->addr,
					       d->npages);
			for (uint64_t k = 0; k < d->npages; k++)
				mem_store_drop(s->store, d->space, d->addr + k * DM_PAGE_SIZE);
		}
	return 0;
}

/* resume: the restore; RESUMED, COMMIT (MIG_WAIT_COMMIT_MS) in its last
 * step (hold_until_commit) */
static int ph_resume(struct dsess *s)
{
	int r = do_restore(s);
	if (r < 0)
		return r;
	pr_info("migration %.8s: committed, root pid %d runs", s->hex, s->root);
	if (s->rfs)
		rfs_recv_resumed(s->rfs); /* the rest of the files may come now */
	/* from here a dead link costs the tree: wait for it to come back */
	mig_chan_patience(s->ctl, MIG_LINK_PATIENCE_S);
	mig_chan_patience(s->fault, MIG_LINK_PATIENCE_S);
	mig_chan_patience(s->bulk, MIG_LINK_PATIENCE_S);
	return 0;
}

/* memory, after the resume: every missing page (post-copy, hybrid) */
static int ph_memory_after(struct dsess *s)
{
	if (!s->lazy)
		return 0;
	/* bounds the control frames read meanwhile (serve_until_done
	 * has its own, finer limits on the pages) */
	mig_watchdog_arm_silent(&s->wd, "the missing pages", (MIG_LINK_PATIENCE_S + 10) * 1000);
	int r = serve_until_done(s);
	mig_watchdog_arm(&s->wd, NULL, 0);
	return r;
}

/* commit: every page is in: from here the tree lives without us; MEM_DONE */
static int ph_commit(struct dsess *s)
{
	mig_test_point("dst-before-mem-done"); /* tests: a destination that never says MEM_DONE */
	s->t_done = clock_ns();
	guardian_end(s, true);
	/* complete: dockerd may start it again as the source's would have been */
	if (s->docker && docker_dst_complete(s->docker) < 0)
		pr_warn("migration %.8s: %s", s->hex, dm_last_error());
	if (s->rfs_root) {
		/* the copy is the tree's now: a later dmigrated keeps it (sweep_stale_views) */
		_cleanup_free_ char *m = xasprintf("%s/committed", s->rfs_root);
		int fd = open(m, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	json_t *st = mem_stats(s);
	int r = mig_send_reply(s->ctl, MIG_T_MEM_DONE, true, 0, NULL, s->root, st);
	json_decref(st);
	return r;
}

/* release: the source kills its copy, then says FIN (MIG_WAIT_FIN_MS); a
 * missing FIN changes nothing here */
static int ph_release(struct dsess *s)
{
	if (expect_empty(s, MIG_T_FIN, MIG_WAIT_FIN_MS, "FIN") < 0)
		pr_warn("migration %.8s: %s", s->hex, dm_last_error());
	pr_info("migration %.8s done: pid %d runs here", s->hex, s->root);
	s->keep_root = true;
	return 0;
}

static const struct dst_phase dst_phases[] = {
	{ MIG_PH_PREPARE, "START, channels, guardian", ph_prepare },
	{ MIG_PH_STATE, "receive the state", ph_state },
	{ MIG_PH_MEMORY, "memory before the restore", ph_memory_before },
	{ MIG_PH_ROOTFS, "the files before the restore", ph_rootfs_before },
	{ MIG_PH_RESUME, "restore, RESUMED, COMMIT", ph_resume },
	{ MIG_PH_MEMORY, "memory after the resume", ph_memory_after },
	{ MIG_PH_ROOTFS, "the files after the resume", ph_rootfs_after },
	{ MIG_PH_COMMIT, "MEM_DONE", ph_commit },
	{ MIG_PH_RELEASE, "FIN", ph_release },
};

/*
 * A session that failed on a closed channel (r) while the files' receiver
 * had failed before: the receiver's error is the cause.  It told the
 * source on the rootfs channel (DONE with its error) and shut its channels
 * down, but the session thread does not watch it in every phase (before
 * the freeze it waits for the state on the control channel), and learns
 * of it when the source, told, closes the session.
 */
static int files_failed_first(struct dsess *s, int r)
{
	/* (not -ECANCELED: the source's own ABORT, "the source gave up: ...") */
	if (r != -EPIPE && r != -ECONNRESET)
		return r;
	int k = s->rfs ? rfs_recv_failed(s->rfs) : 0;
	for (size_t i = 0; k == 0 && i < s->n_vol; i++)
		if (s->vol[i] && (k = rfs_recv_failed(s->vol[i])) < 0)
			k = dm_wrap(k, "volume %s", s->vol_name[i]);
	return k < 0 ? k : r;
}

/* The one place where a failed session is undone (see above). */
static void dst_undo(struct dsess *s, const struct dst_phase *ph, int r)
{
	r = files_failed_first(s, mig_watchdog_error(&s->wd, r));
	pr_debug("migration %.8s: phase %s (%s) failed", s->hex, mig_phase_name(ph->id), ph->step);
	/* kill first, then ABORT: once the source reads it, nothing of ours runs */
	if (s->resumed) {
		/* committed, but its memory can never be complete (a tree that
		 * was not committed never ran: the restore killed it) */
		pr_warn("migration %.8s: killing the restored tree (pid %d): %s", s->hex, s->root,
			dm_last_error()[0] ? dm_last_error() : strerror(-r));
		guardian_end(s, false);
		if (s->root_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, s->root_pidfd, SIGKILL, NULL, 0);
		proc_kill_tree(s->root);
	}
	guardian_end(s, false);
	/* a Docker container made for the tree goes with it */
	docker_dst_abort(s->docker);
	if (s->committed)
		pr_warn("migration %.8s: the source keeps its copy of %s stopped: 'kill -CONT' of its processes there "
			"resumes it", s->hex, s->target ? s->target : "the tree");
	abort_with(s, r);
	/* the root is our child: its pid must be free again for a retry */
	if (s->root > 0)
		while (waitpid(s->root, NULL, __WALL) < 0 && errno == EINTR)
			;
}

void *session_thread(void *arg)
{
	struct dsess *s = arg;
	int r = 0;

	s->t_start = clock_ns();
	for (size_t i = 0; i < ARRAY_SIZE(dst_phases); i++) {
		r = dst_phases[i].run(s);
		if (r < 0) {
			dst_undo(s, &dst_phases[i], r);
			break;
		}
	}
	session_cleanup(s);
	atomic_store(&s->finished, true);
	return NULL;
}
