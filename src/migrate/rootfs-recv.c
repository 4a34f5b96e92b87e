/* SPDX-License-Identifier: MIT */
/* The destination's end of the rootfs channels, see rootfs.h.
 *
 * Two threads read: the bulk reader the rootfs channel (metadata, the
 * files in the source's order, END), the miss reader the miss channel (the
 * chunks the view asked for there).  Chunks of one file may come on both,
 * and its FILE_END on either before the other's chunks: a file has arrived
 * once its FILE_END and all its chunks are in, which the thread that
 * completes it checks (finish_file).  Each reader writes through a file
 * descriptor of its own.
 *
 * This file: the two readers' loops and the receiver's API.  The rest,
 * each with its own header comment: rootfs-recv-entries.c (the entries
 * made on disk from the metadata), rootfs-recv-data.c (the files' data,
 * from either channel, and the files sent before the freeze),
 * rootfs-recv-view.c (what the lazy view asks: paths, waits for
 * directories and chunks), rootfs-recv-inomap.c (the copy's inode numbers
 * against the source's); the state they share is in
 * rootfs-recv-internal.h. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-recv-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/*
 * Room for the files: once every entry is known (PREWALK_END, before the
 * source freezes anything; else META_END), the data still to come must fit
 * in the copy's file system, with RFS_ROOM_MARGIN to spare.  A failure here
 * before the freeze leaves the tree running at the source, unchanged.
 */
static int check_room(struct rfs_receiver *r)
{
	struct statvfs sv;
	uint64_t total = 0, landed = r->bytes_in;

	if (r->room_checked)
		return 0;
	r->room_checked = true;
	for (size_t i = 0; i < r->n_ents; i++) {
		const struct rent *e = ENT(r, i);
		if (e->is_data && !e->removed && e->link_id < 0)
			total += e->size;
	}
	for (size_t i = 0; i < r->n_staged; i++)
		landed += r->staged[i].bytes;
	if (fstatvfs(r->rootfd, &sv) < 0)
		return dm_fail(neg_errno(), "%s: statvfs: %m", r->root);
	uint64_t need = total - MIN(total, landed), avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (need + RFS_ROOM_MARGIN > avail)
		return dm_fail(-ENOSPC, "not enough disk space here for the files: %" PRIu64 " MiB still to "
			       "come in %s (%" PRIu64 " MiB in all), %" PRIu64 " MiB free", (need + (1 << 20) - 1) >> 20,
			       r->root, (total + (1 << 20) - 1) >> 20, avail >> 20);
	return 0;
}

static json_t *stats_locked(struct rfs_receiver *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "entries", json_integer((json_int_t)r->n_ents));
	json_object_set_new(j, "files", json_integer((json_int_t)r->files_in));
	json_object_set_new(j, "bytes", json_integer((json_int_t)r->bytes_in));
	/* of them, sent before the freeze and linked in place */
	json_object_set_new(j, "presend_files", json_integer((json_int_t)r->pre_files));
	json_object_set_new(j, "presend_bytes", json_integer((json_int_t)r->pre_bytes));
	json_object_set_new(j, "cpu_before_resume_ms", json_real((double)r->cpu_frozen / 1e6));
	json_object_set_new(j, "metadata_ms", r->t_meta ? json_real(ns_to_ms(r->t_start, r->t_meta)) : json_null());
	json_object_set_new(j, "done_ms", r->t_done ? json_real(ns_to_ms(r->t_start, r->t_done)) : json_null());
	/* the lazy view: opens of files of the rootfs, those that had to wait */
	json_object_set_new(j, "opens", json_integer((json_int_t)r->opens));
	json_object_set_new(j, "misses", json_integer((json_int_t)r->misses));
	json_object_set_new(j, "misses_first_s", json_integer((json_int_t)r->misses_1s));
	json_object_set_new(j, "waits", json_integer((json_int_t)r->waits));
	json_object_set_new(j, "hit_rate", r->opens ? json_real((double)(r->opens - MIN(r->misses, r->opens)) / (double)r->opens)
						   : json_null());
	json_object_set_new(j, "miss_wait_ms", json_real((double)r->miss_wait_ns / 1e6));
	json_object_set_new(j, "miss_wait_max_ms", json_real((double)r->miss_wait_max_ns / 1e6));
	if (r->first_miss[0])
		json_object_set_new(j, "first_miss", json_string(r->first_miss));
	json_object_set_new(j, "first_miss_ms", r->t_first_miss ? json_real(ns_to_ms(r->t_start, r->t_first_miss)) : json_null());
	return j;
}

/* END: every file announced is in, those whose last chunks travel on the
 * miss channel included (wait for them) */
static int on_end(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->meta_done && r->files_in != r->files_announced && r->err > 0 && !r->stopping)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	bool ok = r->meta_done && r->files_in == r->files_announced;
	uint64_t in = r->files_in;
	pthread_mutex_unlock(&r->lock);
	if (!ok)
		return dm_fail(-EBADMSG, "rootfs end: %" PRIu64 " of %u files arrived", in, r->files_announced);
	return 0;
}

/* tests: the bulk reader stops after a chunk while held */
static void test_hold(struct rfs_receiver *r, int at)
{
	pthread_mutex_lock(&r->lock);
	if (r->hold == at) {
		r->held = true;
		pthread_cond_broadcast(&r->cond);
		while (r->hold == at && !r->stopping && r->err > 0)
			cond_wait_ms(&r->cond, &r->lock, 100);
		r->held = false;
	}
	pthread_mutex_unlock(&r->lock);
}

static int run_bulk(struct rfs_receiver *r)
{
	struct rfs_reader *rd = &r->bulk;
	_cleanup_free_ uint8_t *buf = xmalloc(RFS_CHUNK);
	for (;;) {
		struct net_frame f;
		test_hold(r, RFS_HOLD_BEFORE_FRAME);
		int k = net_recv_hdr(r->c, &f);
		if (k < 0)
			return dm_wrap(k, "the rootfs channel");
		switch (f.type) {
		case RFS_T_META_BATCH:
			if (!r->n_ents) {
				pthread_mutex_lock(&r->lock);
				r->cpu_meta0 = thread_cpu_ns();
				r->cpu_meta0_set = true;
				pthread_mutex_unlock(&r->lock);
			}
			if (f.len > RFS_CHUNK)
				return dm_fail(-EBADMSG, "rootfs metadata of %u bytes", f.len);
			k = net_recv_body(r->c, buf, f.len);
			if (k >= 0)
				k = rcv_on_meta_batch(r, buf, f.len);
			if (k < 0)
				return k;
			break;
		case RFS_T_PREWALK:
			if (f.len || r->n_ents)
				return dm_fail(-EBADMSG, "rootfs: PREWALK out of place");
			pthread_mutex_lock(&r->lock);
			r->prewalk = true;
			/* until PREWALK_END the source's freeze waits for us, and no
			 * restore runs here to yield to */
			if (r->background && r->tid && setpriority(PRIO_PROCESS, (id_t)r->tid, r->base_nice) < 0)
				pr_debug("nice: %m");
			pthread_mutex_unlock(&r->lock);
			break;
		case RFS_T_PREWALK_END:
			if (f.len || !r->prewalk || r->meta_done)
				return dm_fail(-EBADMSG, "rootfs: PREWALK_END out of place");
			/* the source freezes once the entries are made here: the
			 * restore then waits only for what changed since */
			k = check_room(r);
			if (k < 0)
				return k;
			rcv_want(r, 0, RFS_WANT_PREWALKED, 0);
			pthread_mutex_lock(&r->lock);
			r->cpu_meta0 = thread_cpu_ns(); /* (what the freeze brings from here) */
			if (r->background && r->tid && !r->waiting &&
			    setpriority(PRIO_PROCESS, (id_t)r->tid, MIN(r->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
				pr_debug("nice: %m");
			pthread_mutex_unlock(&r->lock);
			break;
		case RFS_T_PRE_FILE:
		case RFS_T_PRE_DATA:
		case RFS_T_PRE_END:
			k = rcv_on_pre_frame(r, &f, buf);
			if (k < 0)
				return k;
			break;
		case RFS_T_META_END: {
			if (f.len > RFS_CHUNK) /* (buf's size) */
				return dm_fail(-EBADMSG, "rootfs message of %u bytes", f.len);
			k = net_recv_body(r->c, buf, f.len);
			if (k < 0)
				return k;
			Dm__RootfsMetaEnd *m = dm__rootfs_meta_end__unpack(NULL, f.len, buf);
			if (!m)
				return dm_fail(-EBADMSG, "malformed rootfs metadata end");
			bool ok = !r->meta_done && m->entries == r->n_ents && m->files == r->files_announced;
			for (size_t i = 0; ok && i < r->n_ents; i++)
				ok = !S_ISDIR(ENT(r, i)->mode) || ENT(r, i)->dir_done || ENT(r, i)->removed;
			r->bytes_announced = m->bytes;
			dm__rootfs_meta_end__free_unpacked(m, NULL);
			if (!ok)
				return dm_fail(-EBADMSG, "rootfs metadata end: counts differ or a directory is not done (%zu entries, %u files)",
					       r->n_ents, r->files_announced);
			k = check_room(r);
			if (k < 0)
				return k;
			rcv_staged_drop(r);
			pthread_mutex_lock(&r->lock);
			r->meta_done = true;
			r->t_meta = clock_ns();
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->lock);
			pr_info("metadata of %zu entries in %.0f ms", r->n_ents, ns_to_ms(r->t_start, r->t_meta));
			break;
		}
		case RFS_T_END:
			if (f.len)
				return dm_fail(-EBADMSG, "rootfs end with a payload");
			k = on_end(r);
			if (k < 0)
				return k;
			pthread_mutex_lock(&r->lock);
			r->t_done = clock_ns();
			r->ended = true;
			json_t *st = stats_locked(r);
			pthread_mutex_unlock(&r->lock);
			/* what reading through the view costs now (lazy modes) */
			pthread_mutex_lock(&r->arrival_lock);
			json_t *ro = r->on_end ? r->on_end(r->on_end_arg) : NULL;
			pthread_mutex_unlock(&r->arrival_lock);
			json_object_set_new(st, "read_overhead", ro ? ro : json_null());
			k = mig_send_reply(r->c, RFS_T_DONE, true, 0, NULL, 0, st);
			json_decref(st);
			pr_info("%" PRIu64 " files, %.1f MiB in %.0f ms", r->files_in, (double)r->bytes_in / 1048576,
				ns_to_ms(r->t_start, r->t_done));
			return k;
		default:
			k = rcv_on_file_frame(rd, &f, buf);
			if (k > 0)
				return dm_fail(-EBADMSG, "unexpected frame %#x on the rootfs channel", f.type);
			if (k < 0)
				return k;
			if (f.type == RFS_T_CHUNK_END)
				test_hold(r, RFS_HOLD_AFTER_CHUNK);
			break;
		}
	}
}

static int run_miss(struct rfs_receiver *r)
{
	struct rfs_reader *rd = &r->miss;
	_cleanup_free_ uint8_t *buf = xmalloc(RFS_CHUNK);
	for (;;) {
		struct net_frame f;
		int k = net_recv_hdr(r->mc, &f);
		if (k < 0)
			return dm_wrap(k, "the rootfs miss channel");
		k = rcv_on_file_frame(rd, &f, buf);
		if (k > 0)
			return dm_fail(-EBADMSG, "unexpected frame %#x on the rootfs miss channel", f.type);
		if (k < 0)
			return k;
	}
}

void rcv_want(struct rfs_receiver *r, uint32_t id, uint32_t kind, uint64_t off)
{
	struct rfs_wire_want w = { .id = id, .kind = kind, .off = off };
	if (net_send_frame(r->mc, RFS_T_WANT, &w, sizeof(w)) < 0)
		pr_debug("WANT %u: %s", id, dm_last_error());
}

/* (lock) the transfer failed: the first error is kept, and the source told
 * why (it rolls back before the switch-over) */
static void fail_locked(struct rfs_receiver *r, int k)
{
	if (r->err <= 0)
		return;
	r->err = k;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-k));
	mig_send_reply(r->c, RFS_T_DONE, false, k, r->errmsg, 0, NULL);
	pthread_cond_broadcast(&r->cond);
}

static void *thread_main(void *arg)
{
	struct rfs_reader *rd = arg;
	struct rfs_receiver *r = rd->r;
	if (!rd->miss) {
		pthread_mutex_lock(&r->lock);
		r->tid = gettid();
		if (r->background && setpriority(PRIO_PROCESS, (id_t)r->tid, MIN(r->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
			pr_debug("nice %d: %m", RFS_BACKGROUND_NICE);
		pthread_mutex_unlock(&r->lock);
	}
	int k = rd->miss ? run_miss(r) : run_bulk(r);
	pthread_mutex_lock(&r->lock);
	if (!rd->miss && k >= 0 && r->err > 0) {
		r->err = 0;
		pthread_cond_broadcast(&r->cond);
	} else if (k < 0 && !r->stopping && !(rd->miss && r->ended)) {
		/* (the miss channel closes once the transfer is over: not an error) */
		fail_locked(r, k);
	}
	pthread_mutex_unlock(&r->lock);
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd = -1;
	/* the other reader may be blocked on its channel */
	if (k < 0 && !r->ended)
		net_chan_shutdown(rd->miss ? r->c : r->mc);
	return NULL;
}

int rfs_recv_start(struct net_chan *c, struct net_chan *miss, const char *root, struct rfs_receiver **ret)
{
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return dm_fail(neg_errno(), "%s: %m", root);
	struct rfs_receiver *r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->mc = miss;
	r->root = xstrdup(root);
	r->err = 1;
	r->base_nice = thread_nice_get();
	r->bulk = (struct rfs_reader){ .r = r, .c = c, .cur_id = -1, .fd = -1, .fd_id = -1 };
	r->miss = (struct rfs_reader){ .r = r, .c = miss, .miss = true, .cur_id = -1, .fd = -1, .fd_id = -1 };
	r->inos = rcv_inomap_new();
	r->t_start = clock_ns();
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->arrival_lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->rootfd < 0) {
		int k = dm_fail(neg_errno(), "%s: %m", root);
		rfs_recv_free(r);
		return k;
	}
	for (int i = 0; i < 2; i++) {
		struct rfs_reader *rd = i ? &r->miss : &r->bulk;
		int k = -pthread_create(&rd->thread, NULL, thread_main, rd);
		if (k < 0) {
			rfs_recv_free(r);
			return dm_fail(k, "cannot start the rootfs receiver: %s", strerror(-k));
		}
		rd->started = true;
	}
	*ret = r;
	return 0;
}

int rfs_recv_wait_all(struct rfs_receiver *r, int timeout_ms)
{
	uint64_t end = clock_ns() + (uint64_t)timeout_ms * 1000000;
	pthread_mutex_lock(&r->lock);
	while (r->err > 0 && clock_ns() < end)
		cond_wait_ms(&r->cond, &r->lock, 100);
	int k = r->err;
	pthread_mutex_unlock(&r->lock);
	if (k > 0)
		return -ETIMEDOUT;
	if (k < 0)
		return dm_fail(k, "receiving the files: %s", r->errmsg);
	return 0;
}

uint64_t rfs_recv_bytes(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t b = r->bytes_in;
	pthread_mutex_unlock(&r->lock);
	return b;
}

json_t *rfs_recv_stats(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	json_t *j = stats_locked(r);
	pthread_mutex_unlock(&r->lock);
	return j;
}

int rfs_recv_failed(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	int k = r->err < 0 ? r->err : 0;
	pthread_mutex_unlock(&r->lock);
	if (k < 0)
		return dm_fail(k, "receiving the files: %s", r->errmsg);
	return 0;
}

void rfs_recv_background(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	r->background = true;
	if (r->tid && setpriority(PRIO_PROCESS, (id_t)r->tid, MIN(r->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
		pr_debug("nice %d: %m", RFS_BACKGROUND_NICE);
	pthread_mutex_unlock(&r->lock);
}

void rfs_recv_resumed(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	/* the tree runs: its misses are ours to serve at full speed */
	if (r->background && r->tid && setpriority(PRIO_PROCESS, (id_t)r->tid, r->base_nice) < 0)
		pr_debug("nice back: %m");
	r->background = false;
	r->t_resumed = clock_ns();
	clockid_t cid;
	struct timespec ts;
	if (r->cpu_meta0_set && !pthread_getcpuclockid(r->bulk.thread, &cid) && !clock_gettime(cid, &ts))
		r->cpu_frozen = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec - r->cpu_meta0;
	pthread_mutex_unlock(&r->lock);
	rcv_want(r, 0, RFS_WANT_RESUMED, 0);
}

bool rfs_recv_all_in(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	/* (ended: END handled, every file checked in; DONE on its way) */
	bool a = r->err == 0 || (r->ended && r->err > 0);
	pthread_mutex_unlock(&r->lock);
	return a;
}

void rfs_recv_on_arrival(struct rfs_receiver *r, void (*fn)(void *arg, const char *rel), void *arg)
{
	pthread_mutex_lock(&r->arrival_lock);
	r->on_arrival = fn;
	r->on_arrival_arg = arg;
	pthread_mutex_unlock(&r->arrival_lock);
}

void rfs_recv_on_end(struct rfs_receiver *r, json_t *(*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&r->arrival_lock);
	r->on_end = fn;
	r->on_end_arg = arg;
	pthread_mutex_unlock(&r->arrival_lock);
}

void rfs_recv_test_hold(struct rfs_receiver *r, int hold)
{
	pthread_mutex_lock(&r->lock);
	r->hold = hold;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

uint64_t rfs_recv_test_entry_waits(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->entry_waits;
	pthread_mutex_unlock(&r->lock);
	return n;
}

bool rfs_recv_test_held(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	bool h = r->held;
	pthread_mutex_unlock(&r->lock);
	return h;
}

void rfs_recv_stop(struct rfs_receiver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < 2; i++) {
		struct rfs_reader *rd = i ? &r->miss : &r->bulk;
		if (!rd->started)
			continue;
		net_chan_shutdown(rd->c);
		pthread_join(rd->thread, NULL);
		rd->started = false;
	}
}

void rfs_recv_free(struct rfs_receiver *r)
{
	if (!r)
		return;
	rfs_recv_stop(r);
	rcv_staged_drop(r);
	free(r->staged);
	for (size_t i = 0; i < r->n_ents; i++) {
		free(ENT(r, i)->path);
		free(ENT(r, i)->chunk_in);
		free(ENT(r, i)->crcs);
	}
	for (size_t b = 0; b < ARRAY_SIZE(r->blk); b++)
		free(r->blk[b]);
	free(r->hash);
	rfs_inomap_put(r->inos);
	if (r->rootfd >= 0)
		close(r->rootfd);
	free(r->root);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->arrival_lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
