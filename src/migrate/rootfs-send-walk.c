/* SPDX-License-Identifier: MIT */
/* The rootfs sender's snd_walk (rootfs-send.c): the tree listed in pre-order,
 * names sorted, each entry added to the arrays the two threads share (a
 * hard link's data carried by its first name), the directories on the
 * working set's paths walked first and the others deferred, each
 * directory's entries emitted once it is listed; before the freeze
 * (prewalk) every directory is watched with inotify from before its
 * listing; the scheduler's order of the files once the walk is over. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

int snd_cmp_inode(const void *a, const void *b)
{
	const struct inode_key *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

/* (the arrays move: the miss thread reads them under the lock) */
int snd_add_ent(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent)
{
	pthread_mutex_lock(&s->lock);
	int r = snd_add_ent_locked(s, path, st, parent);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int snd_add_ent_locked(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent)
{
	if (s->n_ents >= RFS_ENTRIES_MAX)
		return dm_fail(-E2BIG, "%s holds more than %u entries", s->dir, RFS_ENTRIES_MAX);
	if (s->n_ents == s->cap_ents) {
		s->cap_ents = s->cap_ents ? 2 * s->cap_ents : 1024;
		s->ents = xrealloc(s->ents, s->cap_ents * sizeof(*s->ents));
	}
	uint32_t id = (uint32_t)s->n_ents++;
	struct rfs_ent *e = &s->ents[id];
	*e = (struct rfs_ent){ .path = xstrdup(path), .st = *st, .parent = parent, .link_id = -1, .file = -1, .pre = -1 };
	if (!S_ISREG(st->st_mode))
		return 0;
	if (st->st_nlink > 1) {
		/* a hard link of a file met before: that entry carries the data */
		struct inode_key *k = xmalloc(sizeof(*k)), **found;
		*k = (struct inode_key){ st->st_dev, st->st_ino, id };
		found = tsearch(k, &s->inodes, snd_cmp_inode);
		if (!found)
			abort();
		if (*found != k) {
			free(k);
			e->link_id = (*found)->id;
			return 0;
		}
	}
	if (s->n_files == s->cap_files) {
		s->cap_files = s->cap_files ? 2 * s->cap_files : 1024;
		s->files = xrealloc(s->files, s->cap_files * sizeof(*s->files));
	}
	e->file = (int64_t)s->n_files;
	s->files[s->n_files++] = (struct rfs_file_state){ .ent = id, .fd = -1,
							  .n_chunks = rfs_chunks((uint64_t)st->st_size) };
	s->bytes_total += (uint64_t)st->st_size;
	if (snd_presend_take(s, e, &s->files[e->file]))
		return 0;
	for (size_t i = 0; i < s->n_ws; i++)
		if (s->ws_mapped[i] && !strcmp(s->ws[i], path)) {
			/* what the restore reads: sent during the walk, once its entry is out */
			s->early = xrealloc(s->early, (s->n_early + 1) * sizeof(*s->early));
			s->early[s->n_early++] = (uint32_t)e->file;
			break;
		}
	return 0;
}

int snd_cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the names in directory d but "." and "..", sorted: *ret_n of them
 * (malloc'd, each and the array) */
char **snd_dir_names(DIR *d, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	qsort(names, n, sizeof(*names), snd_cmp_name);
	*ret_n = n;
	return names;
}

/* dir (relative) is a working set path or one of its directories */
bool snd_on_ws_path(struct rfs_sender *s, const char *dir)
{
	size_t l = strlen(dir);
	for (size_t i = 0; i < s->n_ws; i++)
		if (!strncmp(s->ws[i], dir, l) && (s->ws[i][l] == '/' || !s->ws[i][l]))
			return true;
	return false;
}

/* the directory is watched (prewalk) from before its listing: what
 * changes in it until the freeze is looked at again then (delta) */
#define RFS_DIR_WATCH                                                                                         \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |          \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

static void watch_dir(struct rfs_sender *s, int fd, uint32_t self)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* (tests: $DMIGRATE_TEST_RFS_NOWATCH, as if no watch could be set) */
	int wd = getenv("DMIGRATE_TEST_RFS_NOWATCH") ? (errno = ENOSPC, -1) : inotify_add_watch(s->ino_fd, proc, RFS_DIR_WATCH);
	if (wd < 0) {
		/* (max_user_watches): every directory is listed again at the freeze */
		if (!s->watch_failed)
			pr_info("%s: inotify: %m: every directory is listed again at the freeze", s->dir);
		s->watch_failed = true;
		return;
	}
	if ((size_t)wd >= s->n_wd_dir) {
		size_t n = MAX((size_t)wd + 1, 2 * s->n_wd_dir);
		s->wd_dir = xrealloc(s->wd_dir, n * sizeof(*s->wd_dir));
		memset(s->wd_dir + s->n_wd_dir, 0, (n - s->n_wd_dir) * sizeof(*s->wd_dir));
		s->n_wd_dir = n;
	}
	s->wd_dir[wd] = self + 1;
}

/* pre-order, names sorted: a directory before what it holds; a
 * directory's entries are listed together (then it is done, dirs_done) */
int snd_walk(struct rfs_sender *s, const char *rel, uint32_t self)
{
	int fd = rel[0] ? openat(s->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			: openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) /* (its own offset: it is listed again) */;
	if (fd < 0)
		return dm_fail(neg_errno(), "%s/%s: %m", s->dir, rel);
	if (s->walking_pre)
		watch_dir(s, fd, self);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return dm_fail(neg_errno(), "%s/%s: %m", s->dir, rel);
	}
	size_t n;
	char **names = snd_dir_names(d, &n);
	int r = 0;
	uint32_t *subdirs = xcalloc(n + 1, sizeof(*subdirs));
	size_t n_sub = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct stat st;
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = dm_fail(neg_errno(), "%s/%s%s%s: %m", s->dir, rel, rel[0] ? "/" : "", names[i]);
			break;
		}
		_cleanup_free_ char *p = rel[0] ? xasprintf("%s/%s", rel, names[i]) : xstrdup(names[i]);
		if (S_ISSOCK(st.st_mode)) {
			r = dm_fail(-ENOTSUP, "--rootfs-dir: %s/%s is a socket: a socket file cannot be moved "
					      "(the socket it names stays here)", s->dir, p);
			break;
		}
		if (strlen(p) >= RFS_PATH_MAX) {
			r = dm_fail(-ENAMETOOLONG, "--rootfs-dir: %s/%s: path too long", s->dir, p);
			break;
		}
		r = snd_add_ent(s, p, &st, self);
		if (r >= 0 && S_ISDIR(st.st_mode))
			subdirs[n_sub++] = (uint32_t)(s->n_ents - 1);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	if (r < 0) {
		free(subdirs);
		return r;
	}
	s->dirs_done = xrealloc(s->dirs_done, (s->n_dirs_done + 1) * sizeof(*s->dirs_done));
	s->dirs_done[s->n_dirs_done++] = (struct dir_done){ .dir = self, .at = s->n_ents };
	/* its entries go now: the destination can look into it while the
	 * rest of the tree is walked; the files the restore reads go on the
	 * miss channel meanwhile */
	r = snd_emit(s);
	if (r >= 0 && !s->walking_pre)
		r = snd_send_early(s);
	if (r < 0) {
		free(subdirs);
		return r;
	}
	/* the directories on the working set's paths first, in the whole
	 * tree: the restore waits for their entries, not for the rest of the
	 * tree's; the others are walked after them (run()) */
	for (int pass = 0; pass < 2 && r >= 0; pass++)
		for (size_t i = 0; i < n_sub && r >= 0; i++) {
			_cleanup_free_ char *p = xstrdup(s->ents[subdirs[i]].path);
			if (snd_on_ws_path(s, p) != !pass)
				continue;
			if (pass && !s->ws_walked) {
				s->deferred = xrealloc(s->deferred, (s->n_deferred + 1) * sizeof(*s->deferred));
				s->deferred[s->n_deferred++] = subdirs[i];
				continue;
			}
			r = snd_walk(s, p, subdirs[i]);
		}
	free(subdirs);
	return r;
}

/* the order of the files, once the walk is over */
void snd_make_sched(struct rfs_sender *s)
{
	uint64_t *sizes = xcalloc(s->n_files + 1, sizeof(*sizes));
	uint32_t *dirs = xcalloc(s->n_files + 1, sizeof(*dirs));
	for (size_t f = 0; f < s->n_files; f++) {
		sizes[f] = (uint64_t)s->ents[s->files[f].ent].st.st_size;
		dirs[f] = s->ents[s->files[f].ent].parent;
	}
	s->sched = rfs_sched_new(sizes, dirs, s->n_files, s->mode == RFS_LAZY);
	free(sizes);
	free(dirs);
}

static int cmp_ent_path(const void *key, const void *e)
{
	return strcmp(key, ((const struct rfs_ent *)e)->path);
}

/* the entry of a relative path (entries are in walk order, not sorted: a
 * linear search over the few paths of the working set is fine) */
int64_t ent_of(struct rfs_sender *s, const char *rel)
{
	for (size_t i = 0; i < s->n_ents; i++)
		if (!s->ents[i].removed && !cmp_ent_path(rel, &s->ents[i]))
			return (int64_t)i;
	return -1;
}
/* the whole tree, the working set's directories first (pre: before the
 * freeze, every directory watched from before its listing) */
int snd_walk_all(struct rfs_sender *s, bool pre)
{
	s->walking_pre = pre;
	/* (lazy: no working set, the plain walk) */
	s->ws_walked = !s->n_ws;
	int r = snd_walk(s, "", 0);
	s->ws_walked = true;
	for (size_t i = 0; i < s->n_deferred && r >= 0; i++) {
		_cleanup_free_ char *p = xstrdup(s->ents[s->deferred[i]].path);
		r = snd_walk(s, p, s->deferred[i]);
	}
	s->walking_pre = false;
	if (r >= 0)
		r = snd_meta_batch_flush(s);
	return r;
}
