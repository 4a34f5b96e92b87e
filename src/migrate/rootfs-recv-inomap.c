/* SPDX-License-Identifier: MIT */
/* The copy's inode numbers against the source's (rootfs.h: rfs_inomap):
 * two open-addressing tables under their own lock, filled as the receiver
 * makes the entries and read by the lazy view (stat, readdir), which holds
 * a reference that may outlive the receiver. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-recv-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <stdlib.h>

struct rfs_inomap {
	pthread_mutex_t lock;
	int refs;
	uint64_t *copy, *src;    /* copy[k] -> src[k], open addressing on copy; 0: empty */
	uint64_t *srcs;          /* the source's numbers, open addressing */
	size_t mask, n;
};

static size_t ino_slot(const uint64_t *t, size_t mask, uint64_t ino)
{
	size_t k = (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 17) & mask;
	while (t[k] && t[k] != ino)
		k = (k + 1) & mask;
	return k;
}

struct rfs_inomap *rcv_inomap_new(void)
{
	struct rfs_inomap *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->refs = 1;
	return m;
}

/* (lock) room for one more pair: the tables at most half full */
static void inomap_grow(struct rfs_inomap *m)
{
	if (m->copy && 2 * (m->n + 1) <= m->mask + 1)
		return;
	size_t hs = m->copy ? 2 * (m->mask + 1) : 1024;
	uint64_t *copy = xcalloc(hs, sizeof(*copy)), *src = xcalloc(hs, sizeof(*src)), *srcs = xcalloc(hs, sizeof(*srcs));
	for (size_t k = 0; m->copy && k <= m->mask; k++) {
		if (m->copy[k]) {
			size_t j = ino_slot(copy, hs - 1, m->copy[k]);
			copy[j] = m->copy[k];
			src[j] = m->src[k];
		}
		if (m->srcs[k])
			srcs[ino_slot(srcs, hs - 1, m->srcs[k])] = m->srcs[k];
	}
	free(m->copy);
	free(m->src);
	free(m->srcs);
	m->copy = copy;
	m->src = src;
	m->srcs = srcs;
	m->mask = hs - 1;
}

void rcv_inomap_add(struct rfs_inomap *m, uint64_t copy_ino, uint64_t src_ino)
{
	if (!copy_ino || !src_ino)
		return;
	pthread_mutex_lock(&m->lock);
	inomap_grow(m);
	size_t k = ino_slot(m->copy, m->mask, copy_ino);
	if (!m->copy[k])
		m->n++;
	m->copy[k] = copy_ino;
	m->src[k] = src_ino;
	m->srcs[ino_slot(m->srcs, m->mask, src_ino)] = src_ino;
	pthread_mutex_unlock(&m->lock);
}

uint64_t rfs_inomap_get(struct rfs_inomap *m, uint64_t copy_ino)
{
	uint64_t r = copy_ino;
	if (!m || !copy_ino)
		return r;
	pthread_mutex_lock(&m->lock);
	if (m->copy) {
		size_t k = ino_slot(m->copy, m->mask, copy_ino);
		if (m->copy[k])
			r = m->src[k];
		else if (m->srcs[ino_slot(m->srcs, m->mask, copy_ino)])
			r = copy_ino | (1ULL << 63); /* the tree's own file: not one of the source's numbers */
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

void rfs_inomap_put(struct rfs_inomap *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	bool last = !--m->refs;
	pthread_mutex_unlock(&m->lock);
	if (!last)
		return;
	free(m->copy);
	free(m->src);
	free(m->srcs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct rfs_inomap *rfs_recv_inomap(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->inos->lock);
	r->inos->refs++;
	pthread_mutex_unlock(&r->inos->lock);
	return r->inos;
}
