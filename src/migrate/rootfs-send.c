/* SPDX-License-Identifier: MIT */
/* The source's end of the rootfs channels, see rootfs.h.
 *
 * Two threads.  The bulk thread walks DIR, sends the metadata and, once the
 * tree runs on the destination, every file in the scheduler's order, on the
 * rootfs channel (priority: the working set's files and the walk before the
 * freeze, the tree watched with inotify, and at the freeze what changed
 * since: snd_delta()).  The miss thread reads the destination's requests on the
 * miss channel and sends each chunk the tree is blocked on at once, on that
 * channel: its wait is one chunk's journey, not the bulk data the rootfs
 * channel's socket already holds; when no request waits, it sends the files
 * the restore reads (the exe and mapped files, handed over by the walk).  A chunk is claimed under s->lock by the
 * thread that sends it, so it goes once; the thread that sends a file's
 * last chunk sends its FILE_END.
 *
 * s->lock guards what both threads see: the arrays of entries and files
 * (the walk grows them; the bulk thread reads them without the lock, being
 * their only writer), each file's chunk states, fd and crcs, the
 * scheduler, resumed and the stats.
 *
 * This file: the bulk thread's run and the sender's API.  The rest, each
 * with its own header comment: rootfs-send-walk.c (the walk),
 * rootfs-send-pre.c (the working set, sent before the freeze),
 * rootfs-send-delta.c (what changed until the freeze), rootfs-send-meta.c
 * (the metadata records), rootfs-send-chunk.c (the files' chunks, from
 * either thread), rootfs-send-miss.c (the miss thread); the state they
 * share is in rootfs-send-internal.h. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"

#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

uint32_t rfs_wire_version(void)
{
	const char *e = getenv("DMIGRATE_TEST_RFS_WIRE");
	long v;
	if (e && parse_long(e, &v) >= 0 && v > 0 && v <= UINT32_MAX)
		return (uint32_t)v;
	return RFS_WIRE_VERSION;
}

const char *rfs_mode_name(enum rfs_mode m)
{
	static const char *const n[] = { "none", "priority", "lazy", "eager" };
	return (unsigned)m < ARRAY_SIZE(n) ? n[m] : "?";
}

int rfs_mode_parse(const char *s, enum rfs_mode *ret)
{
	for (enum rfs_mode m = RFS_NONE; m <= RFS_EAGER; m++)
		if (!strcmp(s, rfs_mode_name(m))) {
			*ret = m;
			return 0;
		}
	return -EINVAL;
}

void snd_set_err(struct rfs_sender *s, int r)
{
	pthread_mutex_lock(&s->lock);
	if (s->err > 0) {
		s->err = r;
		if (r < 0)
			snprintf(s->errmsg, sizeof(s->errmsg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* while the tree is dumped the sender yields the CPU to the dump, which
 * the downtime waits for (the walk goes on when the dump waits for the
 * tree); rfs_send_foreground() once the dump is over */
#define RFS_BACKGROUND_NICE 10

/* ---- the bulk thread ---- */

/* what the destination said on the rootfs channel, read by either
 * thread: its refusal (-errno, its message), DONE (*ret_done), or nothing */
static int peer_said(struct rfs_sender *s, bool *ret_done)
{
	pthread_mutex_lock(&s->lock);
	int r = s->peer_err < 0 ? dm_fail(s->peer_err, "%s", s->peer_msg) : 0;
	if (s->peer_done)
		*ret_done = true;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* (peer_lock) one frame of the rootfs channel: DONE */
static int read_done(struct rfs_sender *s, bool *ret_done)
{
	struct net_frame f;
	void *buf = NULL;
	int r = net_recv_frame(s->c, 1 << 20, &f, &buf);
	if (r < 0)
		return dm_wrap(r, "the rootfs channel");
	if (f.type == RFS_T_DONE) {
		Dm__MigReply *rep = dm__mig_reply__unpack(NULL, f.len, buf);
		if (!rep) {
			r = dm_fail(-EBADMSG, "malformed DONE on the rootfs channel");
		} else if (!rep->ok) {
			r = dm_fail(-EREMOTEIO, "the destination failed to take the files: %s",
				    rep->error ? rep->error : "no reason given");
			pthread_mutex_lock(&s->lock);
			s->peer_err = r;
			snprintf(s->peer_msg, sizeof(s->peer_msg), "%s", dm_last_error());
			pthread_mutex_unlock(&s->lock);
		} else {
			pthread_mutex_lock(&s->lock);
			s->dest = mig_reply_stats(rep);
			s->peer_done = true;
			pthread_mutex_unlock(&s->lock);
			*ret_done = true;
		}
		if (rep)
			dm__mig_reply__free_unpacked(rep, NULL);
	} else {
		r = dm_fail(-EBADMSG, "unexpected frame %#x (%u bytes) on the rootfs channel", f.type, f.len);
	}
	free(buf);
	return r;
}

/*
 * A frame from the destination on the rootfs channel: only DONE comes
 * there.  timeout_ms: 0, only one already there; > 0, one that comes
 * within it; < 0, wait for it (the channel's own limits).  0: none (or the
 * other thread took it), < 0: its error, or the destination's refusal,
 * which every later call returns too, whichever thread read it.
 */
int snd_read_peer(struct rfs_sender *s, int timeout_ms, bool *ret_done)
{
	int r = peer_said(s, ret_done);
	if (r < 0 || *ret_done)
		return r;
	/* (the wait outside peer_lock: a blocked reader would hold the other
	 * thread's snd_peer_reason() for as long) */
	if (timeout_ms >= 0 && net_chan_poll_in(s->c, timeout_ms) <= 0)
		return 0;
	pthread_mutex_lock(&s->peer_lock);
	r = peer_said(s, ret_done);
	if (r == 0 && !*ret_done && (timeout_ms < 0 || net_chan_poll_in(s->c, 0) > 0))
		r = read_done(s, ret_done);
	pthread_mutex_unlock(&s->peer_lock);
	return r;
}

/* how long a thread whose channel the destination closed or reset waits
 * for its DONE (sent before it closed them) on the rootfs channel */
#define RFS_PEER_REASON_MS 500

/*
 * Either thread ended with r; returned: the error to report (0 if the
 * destination said DONE, every file in, and only closed its channels).
 * A destination that gives up says why first (DONE with its error, on the
 * rootfs channel), then shuts its channels down: our sends into them then
 * fail (EPIPE, ECONNRESET: its kernel resets a connection that data
 * reaches after its shutdown), and the miss channel ends.  Whichever thread meets that first, the reason is the
 * destination's word, not what its closing did to our channels: it reads
 * it now if the other thread has not (the net layer keeps what was
 * received for reading after a failed send).  Before, the bulk thread
 * reported its send's "Broken pipe", and only the miss thread looked: the
 * first to fail won (rootfs/no-space failed now and then under load).
 */
int snd_peer_reason(struct rfs_sender *s, int r)
{
	char mine[DM_ERRMSG_MAX];
	bool done = false;
	snprintf(mine, sizeof(mine), "%s", dm_last_error());
	int k = peer_said(s, &done);
	if (k < 0 || r == -EREMOTEIO)
		return k < 0 ? k : r;
	if (r == -EPIPE || r == -ECONNRESET) {
		uint64_t end = clock_ns() + (uint64_t)RFS_PEER_REASON_MS * 1000000;
		for (uint64_t now = clock_ns(); !done && now < end; now = clock_ns())
			if (snd_read_peer(s, (int)((end - now + 999999) / 1000000), &done) < 0)
				break;
		k = peer_said(s, &done);
		if (k < 0)
			return k;
		/* (every file is in: the end of its channels is no error) */
		if (done)
			return 0;
	}
	dm_fail(r, "%s", mine);
	return r;
}

static void meta_counts(struct rfs_sender *s, Dm__RootfsMetaEnd *me)
{
	dm__rootfs_meta_end__init(me);
	me->entries = (uint32_t)s->n_ents;
	uint32_t n = 0;
	for (size_t f = 0; f < s->n_files; f++)
		n += !s->files[f].removed;
	me->files = n;
	me->bytes = s->bytes_total;
}

/* (lock) a chunk of file f not sent nor being sent; false: none left */
static bool next_chunk_locked(struct rfs_sender *s, uint32_t f, uint32_t *ret_c)
{
	const struct rfs_file_state *fs = &s->files[f];
	if (fs->done || fs->ending)
		return false;
	for (uint32_t c = fs->sent ? fs->next : 0; c < MAX(fs->n_chunks, 1u); c++)
		if (!fs->sent || !fs->sent[c]) {
			*ret_c = c;
			return true;
		}
	return false;
}

/*
 * What goes on the rootfs channel, in this order: during the walk, after
 * each directory's entries, the mapped files of the working set (the
 * restore reads them); before the resume nothing else (it would stand in
 * the restore's way on the link and in the destination's CPU); then
 * stacks 1, 2 and 3.  The chunks the tree is blocked on go on the miss
 * channel meanwhile (miss_run).
 */
static int run(struct rfs_sender *s)
{
	int r;

	s->buf = xmalloc(RFS_CHUNK);
	/* a layer: eager, but every file and the walk before the freeze */
	s->prewalk = s->mode == RFS_PRIORITY || s->layer;
	if (s->prewalk) {
		/* the working set's files, then the walk, while the tree runs */
		r = snd_presend(s);
		if (r >= 0)
			r = mig_send_empty(s->c, RFS_T_PREWALK);
		if (r >= 0)
			r = snd_walk_all(s, true);
		if (r >= 0) {
			/* the writers again, now that every directory is watched */
			snd_working_set_paths(s);
			s->pre_writers = xrealloc(s->pre_writers, (s->n_pre_writers + s->n_writers + 1) * sizeof(*s->pre_writers));
			if (s->n_writers) /* none: writers may be NULL, not a source for memcpy */
				memcpy(s->pre_writers + s->n_pre_writers, s->writers, s->n_writers * sizeof(*s->writers));
			s->n_pre_writers += s->n_writers;
			s->t_prewalked = clock_ns();
			r = mig_send_empty(s->c, RFS_T_PREWALK_END);
		}
		if (r < 0)
			return r;
		/* the destination made the entries: the restore will not wait for
		 * them (a failing destination says so on this channel meanwhile) */
		for (bool acked = false; !acked;) {
			pthread_mutex_lock(&s->lock);
			if (!s->prewalk_acked && !s->stopping && s->err > 0)
				cond_wait_ms(&s->cond, &s->lock, 20);
			acked = s->prewalk_acked || s->stopping || s->err <= 0;
			pthread_mutex_unlock(&s->lock);
			bool done = false;
			r = acked ? 0 : snd_read_peer(s, 0, &done);
			if (r < 0)
				return r;
			if (done)
				return dm_fail(-EBADMSG, "the destination said DONE before the freeze");
		}
	}
	pthread_mutex_lock(&s->lock);
	s->presend_done = true;
	pthread_cond_broadcast(&s->cond);
	while (!s->frozen && !s->stopping)
		cond_wait_ms(&s->cond, &s->lock, 100);
	bool stop = s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (stop)
		return dm_fail(-ECANCELED, "the rootfs transfer was stopped");
	uint64_t cpu0 = thread_cpu_ns();
	if (s->mode != RFS_LAZY)
		snd_working_set_paths(s);
	/* the entries go as the walk lists them (prewalk: what changed since) */
	r = s->prewalk ? snd_delta(s) : snd_walk_all(s, false);
	if (r >= 0)
		r = snd_send_early(s);
	if (r >= 0)
		r = snd_meta_batch_flush(s);
	if (r < 0)
		return r;
	Dm__RootfsMetaEnd me;
	meta_counts(s, &me);
	r = net_send_msg(s->c, RFS_T_META_END, &me.base);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	snd_make_sched(s);
	for (size_t f = 0; f < s->n_files; f++)
		if (s->files[f].done) /* a miss's during the walk */
			rfs_sched_sent(s->sched, (uint32_t)f, true);
	for (size_t i = 0; i < s->n_touched; i++)
		rfs_sched_touch(s->sched, s->touched[i]);
	snd_working_set(s);
	s->t_walked = s->t_meta_sent = clock_ns();
	s->walk_cpu_ns = thread_cpu_ns() - cpu0;
	snd_presend_close(s, false);
	pthread_mutex_unlock(&s->lock);
	pr_info("%zu entries, %zu files, %.1f MiB", s->n_ents, s->n_files, (double)s->bytes_total / 1048576);
	bool done = false, ws = false, hold = true;
	uint64_t held = 0;
	for (;;) {
		uint32_t f, c;
		enum rfs_why why;
		pthread_mutex_lock(&s->lock);
		if (!s->resumed && !s->stopping && s->err > 0) {
			/* until the tree runs there: only the misses, on their channel;
			 * a failing destination says so here meanwhile */
			cond_wait_ms(&s->cond, &s->lock, 100);
			pthread_mutex_unlock(&s->lock);
			r = snd_read_peer(s, 0, &done);
			if (r < 0)
				return r;
			if (done)
				return dm_fail(-EBADMSG, "the destination said DONE before the last file");
			continue;
		}
		if (s->stopping || s->err <= 0) {
			pthread_mutex_unlock(&s->lock);
			return dm_fail(-ECANCELED, "the rootfs transfer was stopped");
		}
		if (!rfs_sched_next(s->sched, &f, &why)) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (!next_chunk_locked(s, f, &c)) {
			/* the miss thread has its last chunks: it finishes the file */
			if (!s->files[f].done)
				cond_wait_ms(&s->cond, &s->lock, 100);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
		if (!ws && why != RFS_WORKING_SET && why != RFS_DEMAND) {
			ws = true;
			pthread_mutex_lock(&s->lock);
			s->t_ws_ready = clock_ns();
			pthread_mutex_unlock(&s->lock);
		}
		if (hold && why != RFS_WORKING_SET && why != RFS_DEMAND) {
			/* tests: only what the tree misses, for a while */
			if ((hold = mig_test_held("src-rootfs-hold", &held))) {
				r = snd_read_peer(s, 0, &done);
				if (r < 0)
					return r;
				usleep(5000);
				continue;
			}
		}
		bool fdone;
		r = snd_send_chunk(s, s->c, s->buf, f, c, why, &fdone);
		if (r < 0)
			return r;
		if (!fdone) {
			pthread_mutex_lock(&s->lock);
			rfs_sched_sent(s->sched, f, false);
			pthread_mutex_unlock(&s->lock);
		}
		r = snd_read_peer(s, 0, &done);
		if (r < 0)
			return r;
		if (done)
			return dm_fail(-EBADMSG, "the destination said DONE before the last file");
	}
	pthread_mutex_lock(&s->lock);
	if (!s->t_ws_ready)
		s->t_ws_ready = clock_ns();
	s->t_end = clock_ns();
	pthread_mutex_unlock(&s->lock);
	r = mig_send_empty(s->c, RFS_T_END);
	if (r < 0)
		return r;
	while (!done) {
		r = snd_read_peer(s, -1, &done);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&s->lock);
	s->t_done = clock_ns();
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void *thread_main(void *arg)
{
	struct rfs_sender *s = arg;
	pthread_mutex_lock(&s->lock);
	s->tid = gettid();
	if (s->background && setpriority(PRIO_PROCESS, (id_t)s->tid, MIN(s->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
		pr_debug("nice %d: %m", RFS_BACKGROUND_NICE);
	pthread_mutex_unlock(&s->lock);
	int r = run(s);
	if (r < 0) {
		pthread_mutex_lock(&s->lock);
		bool stop = s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (!stop)
			r = snd_peer_reason(s, r);
		pr_debug("sender: %s", dm_last_error());
	}
	snd_set_err(s, r < 0 ? r : 0);
	if (r < 0)
		mig_test_point("src-rootfs-bulk-ended");
	return NULL;
}

int rfs_send_start(struct net_chan *c, struct net_chan *miss, const char *dir, enum rfs_mode mode, const char *layer,
		   pid_t root, struct rfs_sender **ret)
{
	struct rfs_sender *s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->mc = miss;
	s->mbuf = xmalloc(RFS_CHUNK);
	s->wake = eventfd(0, EFD_CLOEXEC);
	s->dir = xstrdup(dir);
	s->mode = mode;
	s->layer = layer && mode == RFS_EAGER;
	if (s->layer) {
		s->layer_at = xstrdup(layer);
		for (size_t l = strlen(s->layer_at); l > 0 && s->layer_at[l - 1] == '/'; l--)
			s->layer_at[l - 1] = 0;
	}
	s->resumed = mode == RFS_EAGER;
	s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	s->base_nice = thread_nice_get();
	s->root = root;
	s->err = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->peer_lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->t_start = clock_ns();
	/* a file the scheduler picks waits behind little unsent bulk data, and
	 * a chunk handed to the socket is on its way (bulk_has_it) */
	int lowat = RFS_BULK_NOTSENT;
	if (setsockopt(net_chan_fd(c), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) < 0)
		pr_debug("TCP_NOTSENT_LOWAT: %m");
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->wake < 0 || s->ino_fd < 0) {
		int r = dm_fail(neg_errno(), "the rootfs sender: %s: %m", s->wake < 0 ? "eventfd" : "inotify");
		rfs_send_free(s);
		return r;
	}
	if (s->dirfd < 0) {
		int r = dm_fail(neg_errno(), "--rootfs-dir %s: %m", dir);
		rfs_send_free(s);
		return r;
	}
	struct stat st;
	if (fstat(s->dirfd, &st) < 0 || snd_add_ent(s, "", &st, 0) < 0) {
		int r = dm_fail(neg_errno(), "--rootfs-dir %s: %m", dir);
		rfs_send_free(s);
		return r;
	}
	int r = -pthread_create(&s->thread, NULL, thread_main, s);
	if (r < 0) {
		rfs_send_free(s);
		return dm_fail(r, "cannot start the rootfs sender: %s", strerror(-r));
	}
	s->started = true;
	r = -pthread_create(&s->miss_thread, NULL, snd_miss_thread_main, s);
	if (r < 0) {
		rfs_send_free(s);
		return dm_fail(r, "cannot start the rootfs sender: %s", strerror(-r));
	}
	s->miss_started = true;
	*ret = s;
	return 0;
}

int rfs_send_wait(struct rfs_sender *s, int timeout_ms)
{
	uint64_t end = clock_ns() + (uint64_t)timeout_ms * 1000000;
	int r;
	pthread_mutex_lock(&s->lock);
	while (s->err > 0 && clock_ns() < end)
		cond_wait_ms(&s->cond, &s->lock, 100);
	r = s->err;
	pthread_mutex_unlock(&s->lock);
	if (r > 0)
		return -ETIMEDOUT;
	if (r < 0)
		return dm_fail(r, "sending the files: %s", s->errmsg);
	return 0;
}

int rfs_send_presend_wait(struct rfs_sender *s, int timeout_ms)
{
	uint64_t end = clock_ns() + (uint64_t)timeout_ms * 1000000;
	pthread_mutex_lock(&s->lock);
	while (!s->presend_done && s->err > 0 && clock_ns() < end)
		cond_wait_ms(&s->cond, &s->lock, 100);
	int r = s->presend_done ? 0 : s->err > 0 ? -ETIMEDOUT : s->err;
	pthread_mutex_unlock(&s->lock);
	if (r == -ETIMEDOUT || r >= 0)
		return r;
	return dm_fail(r, "sending the files: %s", s->errmsg);
}

bool rfs_send_test_miss_ended(struct rfs_sender *s)
{
	pthread_mutex_lock(&s->lock);
	bool e = s->miss_ended;
	pthread_mutex_unlock(&s->lock);
	return e;
}

void rfs_send_frozen(struct rfs_sender *s)
{
	pthread_mutex_lock(&s->lock);
	s->frozen = true;
	/* the walk yields the CPU to the dump until rfs_send_foreground() */
	s->background = true;
	if (s->tid && setpriority(PRIO_PROCESS, (id_t)s->tid, MIN(s->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
		pr_debug("nice %d: %m", RFS_BACKGROUND_NICE);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void rfs_send_foreground(struct rfs_sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (!s->background)
		goto out;
	s->background = false;
	if (s->tid && setpriority(PRIO_PROCESS, (id_t)s->tid, s->base_nice) < 0)
		pr_debug("nice back: %m");
out:
	pthread_mutex_unlock(&s->lock);
}

void rfs_send_stop(struct rfs_sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->started) {
		net_chan_shutdown(s->c);
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	if (s->miss_started) {
		net_chan_shutdown(s->mc);
		uint64_t one = 1;
		if (write(s->wake, &one, sizeof(one)) < 0)
			pr_debug("wake: %m");
		pthread_join(s->miss_thread, NULL);
		s->miss_started = false;
	}
}

void rfs_send_free(struct rfs_sender *s)
{
	if (!s)
		return;
	rfs_send_stop(s);
	for (size_t i = 0; i < s->n_files; i++) {
		if (s->files[i].fd >= 0)
			close(s->files[i].fd);
		free(s->files[i].sent);
		free(s->files[i].crcs);
		free(s->files[i].bulk_at);
	}
	snd_ws_free(s);
	snd_presend_close(s, true);
	free(s->pre);
	free(s->wd_pre);
	free(s->pre_by_ino);
	free(s->pre_writers);
	free(s->wd_dir);
	free(s->dirty);
	free(s->kids);
	free(s->kid_off);
	free(s->dirs_done);
	free(s->touched);
	free(s->early);
	free(s->deferred);
	free(s->push);
	if (s->wake >= 0)
		close(s->wake);
	free(s->cw);
	for (size_t i = 0; i < s->n_ents; i++)
		free(s->ents[i].path);
	free(s->ents);
	free(s->files);
	tdestroy(s->inodes, free);
	rfs_sched_free(s->sched);
	free(s->buf);
	free(s->mbuf);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	free(s->layer_at);
	json_decref(s->dest);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->peer_lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

json_t *rfs_send_stats(struct rfs_sender *s, uint64_t t0)
{
	json_t *j = json_object(), *by = json_object();
	pthread_mutex_lock(&s->lock);
	json_object_set_new(j, "mode", json_string(rfs_mode_name(s->mode)));
	json_object_set_new(j, "layer", json_boolean(s->layer));
	json_object_set_new(j, "entries", json_integer((json_int_t)s->n_ents));
	json_object_set_new(j, "files", json_integer((json_int_t)s->n_files));
	json_object_set_new(j, "bytes", json_integer((json_int_t)s->bytes_total));
	json_object_set_new(j, "files_sent", json_integer((json_int_t)s->files_sent));
	json_object_set_new(j, "bytes_sent", json_integer((json_int_t)s->bytes_sent));
	for (int w = 0; w < _RFS_WHY_MAX; w++)
		json_object_set_new(by, rfs_why_name(w), json_pack("{s:I, s:I}", "files", (json_int_t)s->files_by[w],
								 "bytes", (json_int_t)s->bytes_by[w]));
	json_object_set_new(j, "sent_by_priority", by);
	json_object_set_new(j, "misses", json_integer((json_int_t)s->misses));
	json_object_set_new(j, "touches", json_integer((json_int_t)s->touches));
	/* the working set sent before the freeze: files, bytes; those unchanged at the freeze */
	json_object_set_new(j, "presend",
			    json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "files", (json_int_t)s->n_pre, "bytes",
				      (json_int_t)s->pre_bytes, "used_files", (json_int_t)s->pre_used, "used_bytes",
				      (json_int_t)s->pre_used_bytes, "stale_files", (json_int_t)s->pre_stale, "done_ms",
				      s->t_pre_done ? json_real(ns_to_ms(t0, s->t_pre_done)) : json_null()));
	json_object_set_new(j, "start_ms", json_real(ns_to_ms(t0, s->t_start)));
	json_object_set_new(j, "walk_cpu_ms", json_real((double)s->walk_cpu_ns / 1e6));
	/* the walk before the freeze (priority), and what changed until the freeze */
	json_object_set_new(j, "prewalk",
			    s->prewalk ? json_pack("{s:o, s:I, s:I, s:I, s:b, s:o}", "done_ms",
						   s->t_prewalked ? json_real(ns_to_ms(t0, s->t_prewalked)) : json_null(),
						   "updated", (json_int_t)s->delta_updates, "removed",
						   (json_int_t)s->delta_removes, "added", (json_int_t)s->delta_adds,
						   "watch_failed", s->watch_failed, "made_ms",
						   s->t_prewalk_acked ? json_real(ns_to_ms(t0, s->t_prewalk_acked)) : json_null())
				       : json_null());
	json_object_set_new(j, "walked_ms", s->t_walked ? json_real(ns_to_ms(t0, s->t_walked)) : json_null());
	json_object_set_new(j, "metadata_sent_ms", s->t_meta_sent ? json_real(ns_to_ms(t0, s->t_meta_sent)) : json_null());
	json_object_set_new(j, "resumed_ms", s->t_resumed ? json_real(ns_to_ms(t0, s->t_resumed)) : json_null());
	json_object_set_new(j, "working_set_ready_ms", s->t_ws_ready ? json_real(ns_to_ms(t0, s->t_ws_ready)) : json_null());
	json_object_set_new(j, "last_file_ms", s->t_end ? json_real(ns_to_ms(t0, s->t_end)) : json_null());
	json_object_set_new(j, "done_ms", s->t_done ? json_real(ns_to_ms(t0, s->t_done)) : json_null());
	if (s->dest) {
		/* the tree's view of it: opens that did not wait */
		json_t *hr = json_object_get(s->dest, "hit_rate");
		json_object_set_new(j, "hit_rate", hr ? json_incref(hr) : json_null());
		/* what a read through the lazy view costs once every file is in */
		json_t *ro = json_object_get(s->dest, "read_overhead");
		json_object_set_new(j, "read_overhead", ro ? json_incref(ro) : json_null());
		json_object_set_new(j, "destination", json_incref(s->dest));
	}
	pthread_mutex_unlock(&s->lock);
	return j;
}

void rfs_send_progress(struct rfs_sender *s, char *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	snprintf(buf, len, "  files %" PRIu64 "/%zu (%.1f/%.1f MiB, %" PRIu64 " misses)", s->files_sent, s->n_files,
		 (double)s->bytes_sent / 1048576, (double)s->bytes_total / 1048576, s->misses);
	pthread_mutex_unlock(&s->lock);
}
