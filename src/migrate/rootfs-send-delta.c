/* SPDX-License-Identifier: MIT */
/* What changed in the rootfs between the walk before the freeze and the
 * freeze (rootfs-send.c, priority mode and a container's layer): the inotify
 * events of the watched directories and pre-sent files, and the files the
 * tree may write unseen, mark entries to look at again (mark); at the freeze
 * snd_delta() lists those directories again and states those entries, and sends
 * what differs (UPDATE, REMOVE, new entries, DIR_END). */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

enum { D_RELIST = 1, D_CHECK = 2, D_FORCE = 4, D_DIREND = 8 };

static void mark(struct rfs_sender *s, uint32_t id, uint8_t bits)
{
	if (id >= s->n_dirty) {
		size_t n = MAX(s->n_ents, 2 * s->n_dirty);
		n = MAX(n, (size_t)id + 1);
		s->dirty = xrealloc(s->dirty, n);
		memset(s->dirty + s->n_dirty, 0, n - s->n_dirty);
		s->n_dirty = n;
	}
	s->dirty[id] |= bits;
}

static const char *leaf_of(const char *path)
{
	const char *l = strrchr(path, '/');
	return l ? l + 1 : path;
}

/* the entries of directory d walked before the freeze (by index), and
 * those added since (a scan of the new ones) */
static void build_kids(struct rfs_sender *s)
{
	if (s->kids)
		return;
	size_t n = s->n_kids_ents = s->n_ents;
	s->kid_off = xcalloc(n + 2, sizeof(*s->kid_off));
	s->kids = xcalloc(n + 1, sizeof(*s->kids));
	for (size_t i = 1; i < n; i++)
		s->kid_off[s->ents[i].parent + 1]++;
	for (size_t i = 0; i < n; i++)
		s->kid_off[i + 1] += s->kid_off[i];
	_cleanup_free_ uint32_t *at = xcalloc(n + 1, sizeof(*at));
	for (size_t i = 1; i < n; i++) {
		uint32_t p = s->ents[i].parent;
		s->kids[s->kid_off[p] + at[p]++] = (uint32_t)i;
	}
}

/* the live entry named leaf in directory d, or -1 */
static int64_t kid_named(struct rfs_sender *s, uint32_t d, const char *leaf)
{
	build_kids(s);
	if (d < s->n_kids_ents)
		for (uint32_t k = s->kid_off[d]; k < s->kid_off[d + 1]; k++)
			if (!s->ents[s->kids[k]].removed && !strcmp(leaf_of(s->ents[s->kids[k]].path), leaf))
				return s->kids[k];
	for (size_t i = s->n_kids_ents; i < s->n_ents; i++)
		if (s->ents[i].parent == d && i && !s->ents[i].removed && !strcmp(leaf_of(s->ents[i].path), leaf))
			return (int64_t)i;
	return -1;
}

/* what went of a file before the freeze is not its content any more */
static void undo_presend(struct rfs_sender *s, uint32_t id)
{
	struct rfs_ent *e = &s->ents[id];
	if (e->file < 0 || !s->files[e->file].presend)
		return;
	struct rfs_file_state *fs = &s->files[e->file];
	struct rfs_pre *p = &s->pre[e->pre];
	s->files_by[RFS_WORKING_SET]--;
	s->bytes_by[RFS_WORKING_SET] -= p->bytes;
	s->files_sent--;
	s->bytes_sent -= p->bytes;
	s->pre_used--;
	s->pre_used_bytes -= p->bytes;
	s->pre_stale++;
	p->bad = true;
	fs->presend = fs->done = false;
	e->pre = -1;
}

static void remove_ent(struct rfs_sender *s, uint32_t id);

/* (lock) a regular file that changed between the walk and the freeze: it
 * is emptied there to its new size, and its data goes as any file's */
static int update_file(struct rfs_sender *s, uint32_t id, const struct stat *st)
{
	struct rfs_ent *e = &s->ents[id];
	struct rfs_file_state *fs = &s->files[e->file];
	undo_presend(s, id);
	s->bytes_total += (uint64_t)st->st_size - (uint64_t)e->st.st_size;
	e->st = *st;
	if (fs->fd >= 0)
		close(fs->fd);
	fs->fd = -1;
	fs->n_chunks = rfs_chunks((uint64_t)st->st_size);
	s->delta_updates++;
	for (size_t i = 0; i < s->n_ws; i++)
		if (s->ws_mapped[i] && !strcmp(s->ws[i], e->path)) {
			/* what the restore reads: after the delta, on the miss channel */
			s->early = xrealloc(s->early, (s->n_early + 1) * sizeof(*s->early));
			s->early[s->n_early++] = (uint32_t)e->file;
			break;
		}
	return snd_send_entry_as(s, id, RFS_T_UPDATE);
}

/* (lock) an entry gone: a directory's entries first, the other names of a
 * file before it (they are looked at again: their directories listed) */
static void remove_ent(struct rfs_sender *s, uint32_t id)
{
	struct rfs_ent *e = &s->ents[id];
	if (e->removed || !id)
		return;
	if (S_ISDIR(e->st.st_mode)) {
		build_kids(s);
		if (id < s->n_kids_ents)
			for (uint32_t k = s->kid_off[id]; k < s->kid_off[id + 1]; k++)
				remove_ent(s, s->kids[k]);
		for (size_t i = s->n_kids_ents; i < s->n_ents; i++)
			if (s->ents[i].parent == id && i)
				remove_ent(s, (uint32_t)i);
	}
	if (e->file >= 0) {
		for (size_t i = 0; e->st.st_nlink > 1 && i < s->n_ents; i++)
			if (s->ents[i].link_id == (int64_t)id && !s->ents[i].removed) {
				remove_ent(s, (uint32_t)i);
				mark(s, s->ents[i].parent, D_RELIST);
			}
		struct inode_key k = { e->st.st_dev, e->st.st_ino, id }, **found = tfind(&k, &s->inodes, snd_cmp_inode);
		if (found && (*found)->id == id) {
			struct inode_key *old = *found;
			tdelete(&k, &s->inodes, snd_cmp_inode);
			free(old);
		}
		struct rfs_file_state *fs = &s->files[e->file];
		undo_presend(s, id);
		fs->done = fs->removed = true;
		if (fs->fd >= 0)
			close(fs->fd);
		fs->fd = -1;
		s->bytes_total -= (uint64_t)e->st.st_size;
	}
	e->removed = true;
	s->delta_removes++;
	struct rfs_wire_dir_end de = { .id = id };
	memcpy(snd_meta_batch_add(s, RFS_T_REMOVE, sizeof(de)), &de, sizeof(de));
	mark(s, e->parent, D_CHECK | D_DIREND);
}

/* (lock) a name in directory d that is new since the walk: its entry (a
 * directory: walked, with what it holds) */
static int add_new(struct rfs_sender *s, uint32_t d, const char *leaf)
{
	_cleanup_free_ char *p = d ? xasprintf("%s/%s", s->ents[d].path, leaf) : xstrdup(leaf);
	struct stat st;
	if (fstatat(s->dirfd, p, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : dm_fail(neg_errno(), "%s/%s: %m", s->dir, p);
	if (S_ISSOCK(st.st_mode))
		return dm_fail(-ENOTSUP, "--rootfs-dir: %s/%s is a socket: a socket file cannot be moved "
					 "(the socket it names stays here)", s->dir, p);
	if (strlen(p) >= RFS_PATH_MAX)
		return dm_fail(-ENAMETOOLONG, "--rootfs-dir: %s/%s: path too long", s->dir, p);
	int r = snd_add_ent_locked(s, p, &st, d);
	if (r < 0)
		return r;
	s->delta_adds++;
	mark(s, d, D_CHECK | D_DIREND);
	if (!S_ISDIR(st.st_mode))
		return snd_emit(s);
	/* (walk takes the lock for its entries) */
	pthread_mutex_unlock(&s->lock);
	r = snd_walk(s, p, (uint32_t)(s->n_ents - 1));
	pthread_mutex_lock(&s->lock);
	return r;
}

static bool stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_mode != b->st_mode || a->st_uid != b->st_uid || a->st_gid != b->st_gid ||
	       a->st_size != b->st_size || a->st_nlink != b->st_nlink || a->st_rdev != b->st_rdev ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec ||
	       a->st_ctim.tv_sec != b->st_ctim.tv_sec || a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

/* (lock) an entry that may have changed: the same file (type and inode)
 * with other attributes is updated (a regular file's data again, a
 * directory's attributes), another file at its name replaces it */
static int check_ent(struct rfs_sender *s, uint32_t id, uint8_t bits)
{
	struct rfs_ent *e = &s->ents[id];
	struct stat st;
	if (e->removed)
		return 0;
	if (id ? fstatat(s->dirfd, e->path, &st, AT_SYMLINK_NOFOLLOW) < 0 : fstat(s->dirfd, &st) < 0) {
		if (!id || (errno != ENOENT && errno != ENOTDIR))
			return dm_fail(neg_errno(), "%s/%s: %m", s->dir, e->path);
		mark(s, e->parent, D_RELIST);
		return 0;
	}
	bool same = (st.st_mode & S_IFMT) == (e->st.st_mode & S_IFMT) && st.st_ino == e->st.st_ino &&
		    st.st_dev == e->st.st_dev;
	if (!same || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && stat_changed(&e->st, &st))) {
		if (!id)
			return dm_fail(-EBUSY, "--rootfs-dir %s was replaced while it was read", s->dir);
		uint32_t d = e->parent;
		_cleanup_free_ char *leaf = xstrdup(leaf_of(e->path));
		remove_ent(s, id);
		return add_new(s, d, leaf);
	}
	if (S_ISDIR(st.st_mode)) {
		int r = 0;
		if (stat_changed(&e->st, &st)) {
			e->st = st;
			s->delta_updates++;
			r = snd_send_entry_as(s, id, RFS_T_UPDATE);
			bits |= D_DIREND;
		}
		if (r >= 0 && bits & D_DIREND) {
			struct rfs_wire_dir_end de = { .id = id };
			memcpy(snd_meta_batch_add(s, RFS_T_DIR_END, sizeof(de)), &de, sizeof(de));
		}
		return r ?: s->batch_err;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	uint32_t t = id;
	while (s->ents[t].link_id >= 0)
		t = (uint32_t)s->ents[t].link_id;
	bool changed = stat_changed(&s->ents[t].st, &st);
	e->st = st;
	if (changed || bits & D_FORCE)
		return update_file(s, t, &st);
	return 0;
}

/* (lock) directory d listed again: names gone are removed, new ones added,
 * the others checked */
static int relist(struct rfs_sender *s, uint32_t d)
{
	if (s->ents[d].removed)
		return 0;
	const char *rel = s->ents[d].path;
	int fd = d ? openat(s->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		   : openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (!d || (errno != ENOENT && errno != ENOTDIR))
			return dm_fail(neg_errno(), "%s/%s: %m", s->dir, rel);
		mark(s, s->ents[d].parent, D_RELIST);
		return 0;
	}
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return dm_fail(neg_errno(), "%s/%s: %m", s->dir, rel);
	}
	size_t n;
	char **names = snd_dir_names(dir, &n);
	closedir(dir);
	build_kids(s);
	int r = 0;
	/* gone (its entries walked before the freeze, and those added since) */
	size_t k0 = d < s->n_kids_ents ? s->kid_off[d] : 0, k1 = d < s->n_kids_ents ? s->kid_off[d + 1] : 0;
	for (size_t k = k0, i; r >= 0 && (k < k1 || k - k1 + s->n_kids_ents < s->n_ents); k++) {
		i = k < k1 ? s->kids[k] : k - k1 + s->n_kids_ents;
		struct rfs_ent *e = &s->ents[i];
		if (!i || e->parent != d || e->removed)
			continue;
		const char *leaf = leaf_of(e->path);
		if (!bsearch(&leaf, names, n, sizeof(*names), snd_cmp_name))
			remove_ent(s, (uint32_t)i);
		else
			mark(s, (uint32_t)i, D_CHECK);
	}
	/* new */
	for (size_t i = 0; i < n && r >= 0; i++)
		if (kid_named(s, d, names[i]) < 0)
			r = add_new(s, d, names[i]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	mark(s, d, D_CHECK | D_DIREND);
	return r ?: s->batch_err;
}

/*
 * The tree is frozen (prewalk): what changed since the walk, from the
 * inotify events of the watched directories and pre-sent files, and the
 * files the tree may write without an event (open for writing, mapped
 * shared and writable: before the walk, after it and now), is looked at
 * again and sent (UPDATE, REMOVE, new entries, DIR_END).  A full event
 * queue, or a directory that could not be watched: every directory listed
 * again.
 */
int snd_delta(struct rfs_sender *s)
{
	bool all = s->watch_failed;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t k;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while ((k = read(s->ino_fd, buf, sizeof(buf))) > 0)
		for (ssize_t o = 0; o < k;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + o);
			o += (ssize_t)(sizeof(*ev) + ev->len);
			if (ev->mask & IN_Q_OVERFLOW) {
				all = true;
				continue;
			}
			if (ev->wd >= 0 && (size_t)ev->wd < s->n_wd_pre && s->wd_pre[ev->wd]) {
				struct rfs_pre *p = &s->pre[s->wd_pre[ev->wd] - 1];
				p->bad = true;
				if (p->used)
					mark(s, p->ent, D_CHECK | D_FORCE);
			}
			if (ev->wd < 0 || (size_t)ev->wd >= s->n_wd_dir || !s->wd_dir[ev->wd])
				continue;
			uint32_t d = s->wd_dir[ev->wd] - 1;
			if (ev->len && ev->name[0]) {
				int64_t c = ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) ? -1
													   : kid_named(s, d, ev->name);
				if (c < 0)
					mark(s, d, D_RELIST);
				else
					mark(s, (uint32_t)c, D_CHECK);
			} else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				if (!d)
					all = true;
				else
					mark(s, s->ents[d].parent, D_RELIST);
			} else {
				mark(s, d, D_CHECK);
			}
		}
	/* the files the tree may write unseen; the pre-sent files' own check */
	for (int pass = 0; pass < 2; pass++) {
		const struct rfs_writer *w = pass ? s->writers : s->pre_writers;
		size_t nw = pass ? s->n_writers : s->n_pre_writers;
		for (size_t j = 0; j < nw; j++)
			for (size_t i = 0; i < s->n_ents; i++)
				if (!s->ents[i].removed && S_ISREG(s->ents[i].st.st_mode) &&
				    s->ents[i].st.st_dev == w[j].dev && s->ents[i].st.st_ino == w[j].ino)
					mark(s, (uint32_t)i, D_CHECK | D_FORCE);
	}
	for (size_t i = 0; i < s->n_pre; i++)
		if (s->pre[i].used && s->pre[i].bad)
			mark(s, s->pre[i].ent, D_CHECK | D_FORCE);
	if (all)
		for (size_t i = 0; i < s->n_ents; i++)
			if (S_ISDIR(s->ents[i].st.st_mode))
				mark(s, (uint32_t)i, D_RELIST);
	/* until nothing is left to look at (a removal may send its other
	 * names' directories to be listed again) */
	for (bool more = true; more && r >= 0;) {
		more = false;
		for (size_t i = 0; i < s->n_dirty && r >= 0; i++)
			if (s->dirty[i] & D_RELIST) {
				s->dirty[i] &= (uint8_t)~D_RELIST;
				r = relist(s, (uint32_t)i);
				more = true;
			}
		for (size_t i = 0; i < s->n_dirty && r >= 0; i++)
			if (s->dirty[i] & D_CHECK && !(s->dirty[i] & D_RELIST)) {
				uint8_t bits = s->dirty[i];
				s->dirty[i] = 0;
				r = check_ent(s, (uint32_t)i, bits);
				more = true;
			}
	}
	if (r >= 0)
		r = snd_emit(s);
	pthread_mutex_unlock(&s->lock);
	if (r >= 0 && (s->delta_updates || s->delta_removes || s->delta_adds))
		pr_info("changed between the walk and the freeze: %zu updated, %zu removed, %zu new", s->delta_updates,
			s->delta_removes, s->delta_adds);
	return r ?: s->batch_err;
}
