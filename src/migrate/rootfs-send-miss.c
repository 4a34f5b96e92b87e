/* SPDX-License-Identifier: MIT */
/* The rootfs sender's miss thread (rootfs-send.c): it reads the
 * destination's requests on the miss channel (WANT: a chunk or a whole file
 * the tree is blocked on, PREWALKED, RESUMED, TOUCH) and sends each chunk
 * asked for at once there; while none waits, the files the restore reads,
 * which the walk hands over (send_early), a chunk at a time. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CW_WHOLE UINT32_MAX /* chunk_want.chunk: the whole file */
/* how often the miss thread, while no request comes, looks whether the transfer is over */
#define RFS_MISS_CHECK_MS 500

static void want_chunk(struct rfs_sender *s, uint32_t f, uint32_t chunk)
{
	for (size_t k = s->cw_head; k < s->cw_n; k++)
		if (s->cw[k].f == f && s->cw[k].chunk == chunk)
			return;
	if (s->cw_head == s->cw_n)
		s->cw_head = s->cw_n = 0;
	if (s->cw_n == s->cw_cap) {
		s->cw_cap = s->cw_cap ? 2 * s->cw_cap : 64;
		s->cw = xrealloc(s->cw, s->cw_cap * sizeof(*s->cw));
	}
	s->cw[s->cw_n++] = (struct chunk_want){ f, chunk };
}

/* (lock) */
static int handle_want_locked(struct rfs_sender *s, const struct rfs_wire_want *w)
{
	if (w->id >= s->n_ents)
		return dm_fail(-EBADMSG, "request for entry %u of %zu", w->id, s->n_ents);
	int64_t e = w->id;
	if (w->kind == RFS_WANT_MISS) {
		while (s->ents[e].link_id >= 0)
			e = s->ents[e].link_id;
		if (s->ents[e].file < 0)
			return 0;
		uint32_t f = (uint32_t)s->ents[e].file;
		const struct rfs_file_state *fs = &s->files[f];
		bool queued;
		if (w->off == RFS_WANT_WHOLE || !fs->n_chunks) {
			/* the whole file, at once, on the miss channel */
			queued = !(fs->end_sent & SENT_MISS);
			if (queued)
				want_chunk(s, f, CW_WHOLE);
		} else {
			/* only the chunk the tree is blocked on, at once (again if
			 * it went on the bulk channel: it is not there yet) */
			uint64_t c = w->off / RFS_CHUNK;
			if (c >= fs->n_chunks)
				return dm_fail(-EBADMSG, "request for byte %" PRIu64 " of %s (%" PRIu64 " bytes)", w->off,
					       s->ents[e].path, (uint64_t)s->ents[e].st.st_size);
			queued = !snd_chunk_taken(fs, (uint32_t)c, true) && !snd_bulk_has_it(s, fs, (uint32_t)c);
			if (queued)
				want_chunk(s, f, (uint32_t)c);
		}
		if (queued) {
			s->misses++;
			pr_debug("miss: %s (byte %" PRIu64 ")", s->ents[e].path, w->off);
		}
	} else if (w->kind == RFS_WANT_PREWALKED) {
		s->prewalk_acked = true;
		s->t_prewalk_acked = clock_ns();
		pthread_cond_broadcast(&s->cond);
	} else if (w->kind == RFS_WANT_RESUMED) {
		s->resumed = true;
		s->t_resumed = clock_ns();
		pthread_cond_broadcast(&s->cond);
	} else if (w->kind == RFS_WANT_TOUCH) {
		if (!S_ISDIR(s->ents[e].st.st_mode))
			return 0;
		if (s->sched) {
			rfs_sched_touch(s->sched, (uint32_t)e);
		} else {
			/* (during the walk: once the scheduler is there) */
			s->touched = xrealloc(s->touched, (s->n_touched + 1) * sizeof(*s->touched));
			s->touched[s->n_touched++] = (uint32_t)e;
		}
		s->touches++;
	} else {
		return dm_fail(-EBADMSG, "request of unknown kind %u", w->kind);
	}
	return 0;
}

/* one request from the destination on the miss channel; block: wait for it.
 * 0: none there (not blocking), 1: one handled */
static int read_want(struct rfs_sender *s, bool block)
{
	if (!block && net_chan_poll_in(s->mc, 0) <= 0)
		return 0;
	struct net_frame f;
	void *buf = NULL;
	int r = net_recv_frame(s->mc, 4096, &f, &buf);
	if (r < 0)
		return dm_wrap(r, "the rootfs miss channel");
	if (f.type == RFS_T_WANT && f.len == sizeof(struct rfs_wire_want)) {
		pthread_mutex_lock(&s->lock);
		r = handle_want_locked(s, buf);
		pthread_mutex_unlock(&s->lock);
	} else {
		r = dm_fail(-EBADMSG, "unexpected frame %#x (%u bytes) on the rootfs miss channel", f.type, f.len);
	}
	free(buf);
	return r < 0 ? r : 1;
}

/* (lock) a chunk of a pushed file to send now; false: none */
static bool next_push_locked(struct rfs_sender *s, uint32_t *ret_f, uint32_t *ret_c)
{
	while (s->push_head < s->push_n) {
		uint32_t f = s->push[s->push_head];
		const struct rfs_file_state *fs = &s->files[f];
		for (uint32_t c = 0; !fs->done && !fs->ending && c < MAX(fs->n_chunks, 1u); c++)
			if (!fs->sent || !fs->sent[c]) {
				*ret_f = f;
				*ret_c = c;
				return true;
			}
		s->push_head++;
	}
	return false;
}

/*
 * Until a request comes, or a file is pushed: 0; 1: the transfer is over
 * (the destination said DONE, or it failed: its error is the bulk thread's),
 * no request will be served any more; or the channel's error.  The wait for
 * requests is as long as the transfer, which the session bounds (its silence
 * watchdog while it waits for the files, which shuts every channel down,
 * this one too, and names why; rfs_send_stop()): a destination that keeps
 * the miss channel open and says nothing once it has every file holds
 * nothing (it used to hold this thread until the session's end).
 */
static int miss_wait(struct rfs_sender *s)
{
	if (net_chan_has_pending(s->mc))
		return 0;
	struct pollfd p[2] = { { .fd = net_chan_fd(s->mc), .events = POLLIN }, { .fd = s->wake, .events = POLLIN } };
	for (;;) {
		int n = poll(p, 2, RFS_MISS_CHECK_MS);
		if (n < 0 && errno != EINTR)
			return dm_fail(neg_errno(), "the rootfs miss thread: poll: %m");
		if (n > 0)
			break;
		pthread_mutex_lock(&s->lock);
		bool over = s->err <= 0 || s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (over)
			return 1;
	}
	uint64_t v;
	if (p[1].revents & POLLIN && read(s->wake, &v, sizeof(v)) < 0)
		pr_debug("wake: %m");
	return 0;
}

/* the requests, as they come; each chunk asked for goes at once, on the
 * miss channel (requests that came meanwhile are read between chunks);
 * when none waits, a chunk of a file the restore reads (send_early) */
static int miss_run(struct rfs_sender *s)
{
	for (;;) {
		int r;
		uint32_t f, c;
		bool fdone, skip = false, push;
		pthread_mutex_lock(&s->lock);
		push = next_push_locked(s, &f, &c);
		bool stop = s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			return dm_fail(-ECANCELED, "the rootfs transfer was stopped");
		if (s->cw_head == s->cw_n && !push) {
			r = miss_wait(s);
			if (r != 0)
				return r < 0 ? r : 0;
		}
		do {
			r = read_want(s, false);
			if (r < 0)
				return r;
		} while (r > 0);
		if (s->cw_head < s->cw_n) {
			f = s->cw[s->cw_head].f;
			c = s->cw[s->cw_head++].chunk;
			if (c != CW_WHOLE) {
				/* (the bulk thread may have taken it since it was asked for) */
				pthread_mutex_lock(&s->lock);
				skip = snd_bulk_has_it(s, &s->files[f], c);
				pthread_mutex_unlock(&s->lock);
			}
			r = c == CW_WHOLE ? snd_send_whole_on_miss(s, f)
			    : skip	  ? 0
					  : snd_send_chunk(s, s->mc, s->mbuf, f, c, RFS_DEMAND, &fdone);
		} else if (push) {
			r = snd_send_chunk(s, s->mc, s->mbuf, f, c, RFS_WORKING_SET, &fdone);
		} else {
			r = 0;
		}
		if (r < 0)
			return r;
	}
}

void *snd_miss_thread_main(void *arg)
{
	struct rfs_sender *s = arg;
	int r = miss_run(s);
	pthread_mutex_lock(&s->lock);
	/* the end of the transfer, or a stop: the channel closes, not an error */
	bool quiet = s->stopping || s->err <= 0;
	pthread_mutex_unlock(&s->lock);
	if (!quiet && r < 0) {
		/* the destination's reason, if it gave one, before ours */
		mig_test_point("src-rootfs-miss-failed");
		r = snd_peer_reason(s, r);
	}
	pthread_mutex_lock(&s->lock);
	quiet = s->stopping || s->err <= 0 || r >= 0;
	s->miss_ended = true;
	pthread_mutex_unlock(&s->lock);
	if (!quiet) {
		pr_debug("miss thread: %s", dm_last_error());
		snd_set_err(s, r);
		/* the bulk thread may be blocked on its channel */
		net_chan_shutdown(s->c);
	}
	return NULL;
}

/* the mapped files of the working set met so far (the restore reads
 * them): to the miss thread, which sends them at once on its channel, in
 * parallel with the snd_walk (sent by the walk, their data stood in front of
 * the next directory's entries, or after every directory of the working
 * set's paths, the restore waited for the exe's chunk) */
int snd_send_early(struct rfs_sender *s)
{
	if (!s->n_early)
		return 0;
	if (s->batch_len) {
		/* their entries first */
		int r = snd_meta_batch_flush(s);
		if (r < 0)
			return r;
	}
	/* smallest first */
	while (s->n_early) {
		size_t k = 0;
		for (size_t i = 1; i < s->n_early; i++)
			if (s->ents[s->files[s->early[i]].ent].st.st_size < s->ents[s->files[s->early[k]].ent].st.st_size)
				k = i;
		pthread_mutex_lock(&s->lock);
		s->push = xrealloc(s->push, (s->push_n + 1) * sizeof(*s->push));
		s->push[s->push_n++] = s->early[k];
		pthread_mutex_unlock(&s->lock);
		s->early[k] = s->early[--s->n_early];
	}
	uint64_t one = 1;
	if (write(s->wake, &one, sizeof(one)) < 0)
		pr_debug("wake: %m");
	return 0;
}
