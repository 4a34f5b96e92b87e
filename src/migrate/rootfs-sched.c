/* SPDX-License-Identifier: MIT */
/* The three stacks of the rootfs transfer, see rootfs-sched.h. */
#include "migrate/rootfs-sched.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

enum { ST_PENDING, ST_STARTED, ST_DONE };

struct stack {
	uint32_t *v;
	size_t n, cap;
};

struct rfs_sched {
	size_t n, left;
	uint64_t *size;
	uint32_t *dir;
	uint8_t *state;
	/* files by directory: by_dir[dir_start[k] .. dir_start[k+1]) are those of dir_ids[k] */
	uint32_t *by_dir, *dir_ids;
	size_t *dir_start, n_dirs;
	uint8_t *dir_touched;
	struct stack stk[3];   /* RFS_WORKING_SET, RFS_SAME_DIR, RFS_SMALL_FIRST */
	struct stack demand;   /* FIFO: demand.v[demand_head..n) */
	size_t demand_head;
	int64_t cur;           /* file in progress (non-preemptive), -1: none */
	enum rfs_why cur_why;
};

const char *rfs_why_name(enum rfs_why w)
{
	static const char *const n[_RFS_WHY_MAX] = { "working_set", "same_dir", "small_first", "demand" };
	return (unsigned)w < _RFS_WHY_MAX ? n[w] : "?";
}

static void push(struct stack *s, uint32_t i)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = i;
}

/* qsort context: no qsort_r portability worries, one sort at a time per sched */
static const uint64_t *sort_sizes;

/* largest first: pushed in this order, the smallest ends on top */
static int by_size_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (sort_sizes[x] != sort_sizes[y])
		return sort_sizes[x] < sort_sizes[y] ? 1 : -1;
	return x < y ? 1 : x > y ? -1 : 0; /* equal sizes: the lower index on top */
}

static int by_dir_then_index(const void *a, const void *b)
{
	uint32_t x = ((const uint32_t *)a)[0], y = ((const uint32_t *)b)[0];
	if (x != y)
		return x < y ? -1 : 1;
	x = ((const uint32_t *)a)[1];
	y = ((const uint32_t *)b)[1];
	return x < y ? -1 : x > y;
}

struct rfs_sched *rfs_sched_new(const uint64_t *sizes, const uint32_t *dirs, size_t n, bool walk_order)
{
	struct rfs_sched *s = xcalloc(1, sizeof(*s));
	s->n = s->left = n;
	s->size = xmalloc((n + 1) * sizeof(*s->size));
	s->dir = xmalloc((n + 1) * sizeof(*s->dir));
	s->state = xcalloc(n + 1, 1);
	memcpy(s->size, sizes, n * sizeof(*sizes));
	memcpy(s->dir, dirs, n * sizeof(*dirs));
	s->cur = -1;

	/* the directory index */
	uint32_t (*pairs)[2] = xmalloc((n + 1) * sizeof(*pairs));
	for (size_t i = 0; i < n; i++) {
		pairs[i][0] = dirs[i];
		pairs[i][1] = (uint32_t)i;
	}
	qsort(pairs, n, sizeof(*pairs), by_dir_then_index);
	s->by_dir = xmalloc((n + 1) * sizeof(*s->by_dir));
	s->dir_ids = xmalloc((n + 1) * sizeof(*s->dir_ids));
	s->dir_start = xmalloc((n + 2) * sizeof(*s->dir_start));
	for (size_t i = 0; i < n; i++) {
		if (!i || pairs[i][0] != pairs[i - 1][0]) {
			s->dir_ids[s->n_dirs] = pairs[i][0];
			s->dir_start[s->n_dirs++] = i;
		}
		s->by_dir[i] = pairs[i][1];
	}
	s->dir_start[s->n_dirs] = n;
	s->dir_touched = xcalloc(s->n_dirs + 1, 1);
	free(pairs);

	/* stack 3: everything, the smallest (or the first walked) on top */
	uint32_t *all = xmalloc((n + 1) * sizeof(*all));
	for (size_t i = 0; i < n; i++)
		all[i] = (uint32_t)(walk_order ? n - 1 - i : i);
	if (!walk_order) {
		sort_sizes = s->size;
		qsort(all, n, sizeof(*all), by_size_desc);
	}
	for (size_t i = 0; i < n; i++)
		push(&s->stk[RFS_SMALL_FIRST], all[i]);
	free(all);
	return s;
}

void rfs_sched_free(struct rfs_sched *s)
{
	if (!s)
		return;
	for (int k = 0; k < 3; k++)
		free(s->stk[k].v);
	free(s->demand.v);
	free(s->size);
	free(s->dir);
	free(s->state);
	free(s->by_dir);
	free(s->dir_ids);
	free(s->dir_start);
	free(s->dir_touched);
	free(s);
}

void rfs_sched_working_set(struct rfs_sched *s, uint32_t i)
{
	if (i >= s->n)
		return;
	struct stack *w = &s->stk[RFS_WORKING_SET];
	for (size_t k = 0; k < w->n; k++)
		if (w->v[k] == i)
			return;
	push(w, i);
	/* keep it sorted: largest at the bottom, smallest on top */
	sort_sizes = s->size;
	qsort(w->v, w->n, sizeof(*w->v), by_size_desc);
}

void rfs_sched_touch(struct rfs_sched *s, uint32_t dir)
{
	size_t lo = 0, hi = s->n_dirs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->dir_ids[mid] < dir)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= s->n_dirs || s->dir_ids[lo] != dir || s->dir_touched[lo])
		return;
	s->dir_touched[lo] = 1;
	size_t a = s->dir_start[lo], b = s->dir_start[lo + 1], k = 0;
	uint32_t *v = xmalloc((b - a + 1) * sizeof(*v));
	for (size_t j = a; j < b; j++)
		if (s->state[s->by_dir[j]] == ST_PENDING)
			v[k++] = s->by_dir[j];
	sort_sizes = s->size;
	qsort(v, k, sizeof(*v), by_size_desc);
	for (size_t j = 0; j < k; j++)
		push(&s->stk[RFS_SAME_DIR], v[j]);
	free(v);
}

bool rfs_sched_demand(struct rfs_sched *s, uint32_t i)
{
	if (i >= s->n || s->state[i] == ST_DONE)
		return false;
	for (size_t k = s->demand_head; k < s->demand.n; k++)
		if (s->demand.v[k] == i)
			return true;
	push(&s->demand, i);
	return true;
}

bool rfs_sched_next(struct rfs_sched *s, uint32_t *ret_i, enum rfs_why *ret_why)
{
	/* a demand first, ahead of the file in progress */
	while (s->demand_head < s->demand.n) {
		uint32_t d = s->demand.v[s->demand_head];
		if (s->state[d] == ST_DONE) {
			s->demand_head++;
			continue;
		}
		s->state[d] = ST_STARTED;
		*ret_i = d;
		*ret_why = RFS_DEMAND;
		return true;
	}
	if (s->demand_head == s->demand.n)
		s->demand_head = s->demand.n = 0;
	/* the file in progress finishes (non-preemptive) */
	if (s->cur >= 0 && s->state[s->cur] != ST_DONE) {
		*ret_i = (uint32_t)s->cur;
		*ret_why = s->cur_why;
		return true;
	}
	s->cur = -1;
	for (int k = 0; k < 3; k++) {
		struct stack *st = &s->stk[k];
		while (st->n) {
			uint32_t i = st->v[--st->n];
			if (s->state[i] != ST_PENDING)
				continue;
			s->state[i] = ST_STARTED;
			s->cur = i;
			s->cur_why = (enum rfs_why)k;
			*ret_i = i;
			*ret_why = (enum rfs_why)k;
			return true;
		}
	}
	/* a file started by a demand and left unfinished (cannot be: a demand runs to the end) */
	for (size_t i = 0; i < s->n; i++)
		if (s->state[i] == ST_STARTED) {
			s->cur = (int64_t)i;
			s->cur_why = RFS_DEMAND;
			*ret_i = (uint32_t)i;
			*ret_why = RFS_DEMAND;
			return true;
		}
	return false;
}

bool rfs_sched_urgent(const struct rfs_sched *s)
{
	for (size_t k = s->demand_head; k < s->demand.n; k++)
		if (s->state[s->demand.v[k]] != ST_DONE)
			return true;
	return s->cur >= 0 && s->state[s->cur] != ST_DONE && s->cur_why == RFS_DEMAND;
}

void rfs_sched_sent(struct rfs_sched *s, uint32_t i, bool done)
{
	if (i >= s->n || s->state[i] == ST_DONE)
		return;
	s->state[i] = done ? ST_DONE : ST_STARTED;
	if (done)
		s->left--;
}

bool rfs_sched_is_done(const struct rfs_sched *s, uint32_t i)
{
	return i < s->n && s->state[i] == ST_DONE;
}

size_t rfs_sched_left(const struct rfs_sched *s)
{
	return s->left;
}
