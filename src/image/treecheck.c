/* SPDX-License-Identifier: MIT */
/*
 * The restore's order of fork, setsid() and setpgid() (restore/tree.c),
 * run on ids alone.  Keep the two in step: tree.c's comments say why each
 * step is where it is; a change there is a change here.
 */
#define LOG_PREFIX "image: "
#include "image/treecheck.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <stdlib.h>

struct pidx {
	int32_t pid;
	uint32_t i;
};

struct sim {
	const struct tree_ids *t;
	size_t n;
	bool own_pidns;
	int32_t *cur_sid, *cur_pgid; /* per process, map_id() values; 0 external */
	int32_t *want_sid, *want_pgid; /* per process, map_id() of its ids */
	bool *made;
	size_t *parent;
	struct pidx *by_pid;           /* sorted by pid */
	uint32_t *kids, *kid_at;       /* p's children: kids[kid_at[p] .. kid_at[p + 1]), in order */
};

static int cmp_pidx(const void *a, const void *b)
{
	int32_t x = ((const struct pidx *)a)->pid, y = ((const struct pidx *)b)->pid;
	return (x > y) - (x < y);
}

static ssize_t find(const struct sim *s, int32_t pid)
{
	struct pidx key = { pid, 0 };
	const struct pidx *f = bsearch(&key, s->by_pid, s->n, sizeof(*s->by_pid), cmp_pidx);
	return f ? (ssize_t)f->i : -1;
}

/* > 0 a process of the tree, 0 the root's own from outside, < 0 a gone one's */
static int32_t map_id(const struct sim *s, int32_t id, int32_t root_id)
{
	if (find(s, id) >= 0)
		return id;
	if (id == root_id)
		return 0;
	return -id;
}

static int32_t want_sid(const struct sim *s, size_t i)
{
	return s->want_sid[i];
}

static int32_t want_pgid(const struct sim *s, size_t i)
{
	return s->want_pgid[i];
}

static int subtree(struct sim *s, size_t p);

static int child(struct sim *s, size_t ch, int32_t sid, int32_t pgid)
{
	int32_t want = want_sid(s, ch);

	if (want != s->t[ch].pid && want != sid) {
		if (want < 0)
			return dm_fail(-ENOTSUP, "pid %d: the leader of its session %d is gone, and its "
				       "parent %d is not the reaper of the tree: such a session cannot be "
				       "restored", s->t[ch].pid, s->t[ch].sid, s->t[ch].ppid);
		return dm_fail(-ENOTSUP, "pid %d: its session %d is neither its own nor its parent's: "
			       "such a session cannot be restored", s->t[ch].pid, s->t[ch].sid);
	}
	s->made[ch] = true;
	s->cur_sid[ch] = sid;
	s->cur_pgid[ch] = pgid;
	return subtree(s, ch);
}

static int subtree(struct sim *s, size_t p)
{
	bool leader = s->t[p].sid == s->t[p].pid;
	int r;

	/* sessions of gone leaders: a helper under the reaper makes each */
	const uint32_t *kid = s->kids + s->kid_at[p], nk = s->kid_at[p + 1] - s->kid_at[p];

	if (p == 0 && (s->own_pidns || s->t[0].subreaper)) {
		for (uint32_t j = 0; j < nk; j++) {
			int32_t sid = want_sid(s, kid[j]);
			if (sid >= 0 || s->made[kid[j]])
				continue;
			for (uint32_t k = j; k < nk; k++) {
				if (want_sid(s, kid[k]) != sid)
					continue;
				r = child(s, kid[k], sid, sid);
				if (r < 0)
					return r;
			}
		}
	}
	for (uint32_t j = 0; j < nk; j++) {
		int32_t sid = want_sid(s, kid[j]);
		if ((sid < 0 && s->made[kid[j]]) || (leader && sid == s->t[p].pid))
			continue;
		r = child(s, kid[j], s->cur_sid[p], s->cur_pgid[p]);
		if (r < 0)
			return r;
	}
	if (!leader)
		return 0;
	s->cur_sid[p] = s->cur_pgid[p] = s->t[p].pid;
	for (uint32_t j = 0; j < nk; j++) {
		if (want_sid(s, kid[j]) != s->t[p].pid)
			continue;
		r = child(s, kid[j], s->cur_sid[p], s->cur_pgid[p]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* leaders first, then members; a member joins a group of its own session */
static int groups(struct sim *s)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n; i++) {
			int32_t want = want_pgid(s, i);
			bool is_leader = want == s->t[i].pid;
			if (want == s->cur_pgid[i] || (pass == 0) != is_leader)
				continue;
			if (want <= 0)
				return dm_fail(-ENOTSUP, "pid %d: its process group %d cannot be restored: %s",
					       s->t[i].pid, s->t[i].pgid,
					       want < 0 ? "its leader is gone (a pipeline whose first command "
							  "ended?)"
							: "it is the group of the tree's root, from outside "
							  "the tree");
			if (!is_leader) {
				ssize_t l = find(s, want);
				if (l < 0 || s->cur_pgid[l] != want || s->cur_sid[l] != s->cur_sid[i])
					return dm_fail(-ENOTSUP, "pid %d: its process group %d is in "
						       "another session: it cannot be restored",
						       s->t[i].pid, s->t[i].pgid);
			}
			s->cur_pgid[i] = want;
		}
	}
	return 0;
}

int tree_ids_check(const struct tree_ids *t, size_t n, bool own_pidns)
{
	struct sim s = { t, n, own_pidns };
	int r;

	if (!n)
		return 0;
	s.cur_sid = xcalloc(n, sizeof(*s.cur_sid));
	s.cur_pgid = xcalloc(n, sizeof(*s.cur_pgid));
	s.want_sid = xcalloc(n, sizeof(*s.want_sid));
	s.want_pgid = xcalloc(n, sizeof(*s.want_pgid));
	s.made = xcalloc(n, sizeof(*s.made));
	s.parent = xcalloc(n, sizeof(*s.parent));
	s.by_pid = xcalloc(n, sizeof(*s.by_pid));
	s.kids = xcalloc(n, sizeof(*s.kids));
	s.kid_at = xcalloc(n + 1, sizeof(*s.kid_at));
	for (size_t i = 0; i < n; i++)
		s.by_pid[i] = (struct pidx){ t[i].pid, (uint32_t)i };
	qsort(s.by_pid, n, sizeof(*s.by_pid), cmp_pidx);
	for (size_t i = 0; i < n; i++) {
		s.want_sid[i] = map_id(&s, t[i].sid, t[0].sid);
		s.want_pgid[i] = map_id(&s, t[i].pgid, t[0].pgid);
	}
	r = 0;
	for (size_t i = 1; i < n && r >= 0; i++) {
		ssize_t p = find(&s, t[i].ppid);
		if (p < 0 || (size_t)p >= i)
			r = dm_fail(-EBADMSG, "pid %d: its parent %d is not an earlier process of the tree",
				    t[i].pid, t[i].ppid);
		else
			s.parent[i] = (size_t)p;
	}
	/* children by parent, in the tree's order (a counting sort) */
	if (r >= 0) {
		_cleanup_free_ uint32_t *fill = xcalloc(n, sizeof(*fill));
		for (size_t i = 1; i < n; i++)
			s.kid_at[s.parent[i] + 1]++;
		for (size_t p = 0; p < n; p++)
			s.kid_at[p + 1] += s.kid_at[p];
		for (size_t i = 1; i < n; i++)
			s.kids[s.kid_at[s.parent[i]] + fill[s.parent[i]]++] = (uint32_t)i;
	}
	if (r >= 0) {
		int32_t rsid = s.want_sid[0];
		if (rsid != 0 && rsid != t[0].pid)
			r = dm_fail(-EBADMSG, "root pid %d: session %d is a process of its tree", t[0].pid,
				    t[0].sid);
	}
	if (r >= 0)
		r = subtree(&s, 0);
	if (r >= 0)
		r = groups(&s);
	free(s.cur_sid);
	free(s.cur_pgid);
	free(s.want_sid);
	free(s.want_pgid);
	free(s.made);
	free(s.parent);
	free(s.by_pid);
	free(s.kids);
	free(s.kid_at);
	return r;
}
