/* SPDX-License-Identifier: MIT */
/* The rootfs receiver's side of the lazy view (rootfs-recv.c,
 * rootfs-fuse.c): an entry by path, the waits of the tree's threads for a
 * directory's entries, a whole file or a chunk (each asked for at once on
 * the miss channel: WANT), and the counts of those waits; while a thread of
 * the tree waits, the bulk reader runs at the starter's priority. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-recv-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int64_t rfs_recv_lookup(struct rfs_receiver *r, const char *rel)
{
	pthread_mutex_lock(&r->lock);
	int64_t id = hash_find(r, rel);
	pthread_mutex_unlock(&r->lock);
	return id;
}

/* (lock) directory id is complete, or the transfer broke */
static void waiting_locked(struct rfs_receiver *r, int d);

static int wait_dir_locked(struct rfs_receiver *r, int64_t id)
{
	if (ENT(r, id)->dir_done)
		return 0;
	waiting_locked(r, 1);
	while (!ENT(r, id)->dir_done && r->err > 0)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	waiting_locked(r, -1);
	return ENT(r, id)->dir_done ? 0 : -EIO;
}

int rfs_recv_wait_path(struct rfs_receiver *r, const char *rel)
{
	int k;
	pthread_mutex_lock(&r->lock);
	/* the root first: its entry is the first */
	while (!r->n_ents && r->err > 0)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	if (!r->n_ents) {
		pthread_mutex_unlock(&r->lock);
		return -EIO;
	}
	if (r->prewalk && !r->meta_done) {
		/* the entries came before the freeze: what changed since comes
		 * before META_END (PREWALK came before the first entry) */
		waiting_locked(r, 1);
		while (!r->meta_done && r->err > 0)
			cond_wait_ms(&r->cond, &r->lock, 1000);
		waiting_locked(r, -1);
		if (!r->meta_done) {
			pthread_mutex_unlock(&r->lock);
			return -EIO;
		}
	}
	k = wait_dir_locked(r, 0);
	/* then each directory on the way: one of the source's (made by the
	 * time its parent is done), or not (the tree's own: nothing to wait for) */
	char p[RFS_PATH_MAX];
	size_t l = strlen(rel);
	for (size_t i = 1; k >= 0 && l < sizeof(p) && i <= l; i++) {
		if (rel[i] != '/' && rel[i])
			continue;
		memcpy(p, rel, i);
		p[i] = 0;
		int64_t id = hash_find(r, p);
		if (id < 0 || !S_ISDIR(ENT(r, id)->mode))
			break;
		k = wait_dir_locked(r, id);
	}
	pthread_mutex_unlock(&r->lock);
	return k;
}

void rfs_recv_touch(struct rfs_receiver *r, int64_t dir)
{
	pthread_mutex_lock(&r->lock);
	if (dir < 0 || (size_t)dir >= r->n_ents || !S_ISDIR(ENT(r, dir)->mode)) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	bool send = !(ENT(r, dir)->asked & 2) && (!r->meta_done || r->files_in < r->files_announced);
	ENT(r, dir)->asked |= 2;
	pthread_mutex_unlock(&r->lock);
	if (send)
		rcv_want(r, (uint32_t)dir, RFS_WANT_TOUCH, 0);
}

/* (lock) the file of entry id (its first name), NULL if it has no data of its own */
static struct rent *file_of(struct rfs_receiver *r, int64_t id, int64_t *ret_id)
{
	if (id < 0 || (size_t)id >= r->n_ents)
		return NULL;
	while (ENT(r, id)->link_id >= 0)
		id = ENT(r, id)->link_id;
	*ret_id = id;
	return ENT(r, id)->is_data ? ENT(r, id) : NULL;
}

bool rfs_recv_pending(struct rfs_receiver *r, int64_t id, struct timespec times[2])
{
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_of(r, id, &id);
	bool p = e && !e->arrived;
	if (p && times) {
		times[0] = e->times[0];
		times[1] = e->times[1];
	}
	pthread_mutex_unlock(&r->lock);
	return p;
}

/* (lock) a wait of the tree's, from t: counted */
static void count_wait(struct rfs_receiver *r, uint64_t t, const struct rent *e, uint64_t off)
{
	if (!r->t_first_miss)
		snprintf(r->first_miss, sizeof(r->first_miss), "%s@%" PRIu64, e->path, off);
	uint64_t w = clock_ns() - t;
	r->waits++;
	r->miss_wait_ns += w;
	r->miss_wait_max_ns = MAX(r->miss_wait_max_ns, w);
	if (!r->t_first_miss)
		r->t_first_miss = t;
}

/* (lock) a thread of the tree starts (+1) or ends (-1) a wait for data:
 * while one waits, the bulk reader runs at the starter's priority even in
 * the background (the chunk may be in its socket, behind data it has not
 * read yet, and the restore, which it yields to, waits for it) */
static void waiting_locked(struct rfs_receiver *r, int d)
{
	r->waiting += d;
	if (!r->background || !r->tid || (d > 0 ? r->waiting != 1 : r->waiting != 0))
		return;
	if (setpriority(PRIO_PROCESS, (id_t)r->tid, d > 0 ? r->base_nice : MIN(r->base_nice + RFS_BACKGROUND_NICE, 19)) < 0)
		pr_debug("nice: %m");
}

int rfs_recv_open(struct rfs_receiver *r, int64_t id, bool write)
{
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_of(r, id, &id);
	if (!e) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	r->opens++;
	if (e->arrived || !write) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	/* it may change the file: all its data first, asked for at once */
	uint64_t t = clock_ns();
	bool send = !(e->asked & 1);
	e->asked |= 1;
	pthread_mutex_unlock(&r->lock);
	if (send)
		rcv_want(r, (uint32_t)id, RFS_WANT_MISS, RFS_WANT_WHOLE);
	pthread_mutex_lock(&r->lock);
	waiting_locked(r, 1);
	while (!e->arrived && r->err > 0)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	waiting_locked(r, -1);
	int k = e->arrived ? 1 : -EIO;
	count_wait(r, t, e, 0);
	pthread_mutex_unlock(&r->lock);
	return k;
}

int rfs_recv_read(struct rfs_receiver *r, int64_t id, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_of(r, id, &id);
	if (!e || e->arrived || !len || off >= e->size) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	uint32_t c0 = (uint32_t)(off / RFS_CHUNK);
	uint32_t c1 = (uint32_t)((MIN(off + len, e->size) - 1) / RFS_CHUNK);
	uint64_t t = clock_ns();
	bool waited = false, ok = true;
	for (uint32_t c = c0; c <= c1 && ok; c++) {
		if (e->arrived || e->chunk_in[c] & 1)
			continue;
		/* a miss: this chunk, ahead of everything */
		waited = true;
		if (!(e->chunk_in[c] & 2)) {
			e->chunk_in[c] |= 2;
			pthread_mutex_unlock(&r->lock);
			rcv_want(r, (uint32_t)id, RFS_WANT_MISS, (uint64_t)c * RFS_CHUNK);
			pthread_mutex_lock(&r->lock);
		}
		waiting_locked(r, 1);
		while (!e->arrived && !(e->chunk_in[c] & 1) && r->err > 0)
			cond_wait_ms(&r->cond, &r->lock, 1000);
		waiting_locked(r, -1);
		ok = e->arrived || e->chunk_in[c] & 1;
	}
	if (waited)
		count_wait(r, t, e, off);
	pthread_mutex_unlock(&r->lock);
	return !ok ? -EIO : waited;
}

void rfs_recv_note_miss(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	r->misses++;
	if (r->t_resumed && clock_ns() - r->t_resumed <= 1000000000ull)
		r->misses_1s++;
	pthread_mutex_unlock(&r->lock);
}
