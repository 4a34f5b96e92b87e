/* SPDX-License-Identifier: MIT */
/* The rootfs sender's working set (rootfs-send.c): the paths the tree's
 * tasks hold (exe, cwd, root, open fds, mapped files) and the files they may
 * write without their times changing; before the freeze (priority mode, a
 * container's layer) those files are sent while the tree runs, each watched
 * with inotify (PRE_FILE, PRE_DATA, PRE_END), and taken at the walk when
 * nothing changed since (presend_take). */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A path of the tree's (a link of /proc/PID, a line of its maps) below
 * DIR, relative to it; NULL if it is not.  A container's layer
 * (s->layer) is not where the tree's paths point: they are in the overlay
 * mounted in the container's own mount namespace, and /proc shows them
 * from its root ("/tmp/count"), which is the layer's root (layer_at "/";
 * a volume's: its mount point): the same path in the layer names the file
 * if the layer has it. */
static const char *below_dir(const struct rfs_sender *s, const char *path)
{
	size_t l = strlen(s->dir);
	if (!strncmp(path, s->dir, l) && (path[l] == '/' || !path[l]))
		return path[l] ? path + l + 1 : "";
	if (s->layer && path[0] == '/') {
		l = strlen(s->layer_at);
		if (strncmp(path, s->layer_at, l) || (path[l] != '/' && path[l]))
			return NULL;
		path += l;
		while (*path == '/')
			path++;
		return path;
	}
	return NULL;
}

/* mapped: the exe or a mapped file, which the restore reads (the pages of
 * a private mapping that the tree changed are written over the file's) */
static void ws_add(struct rfs_sender *s, const char *host_path, bool mapped)
{
	const char *rel = below_dir(s, host_path);
	if (!rel)
		return;
	for (size_t i = 0; i < s->n_ws; i++)
		if (!strcmp(s->ws[i], rel)) {
			s->ws_mapped[i] |= mapped;
			return;
		}
	s->ws = xrealloc(s->ws, (s->n_ws + 1) * sizeof(*s->ws));
	s->ws_mapped = xrealloc(s->ws_mapped, (s->n_ws + 1) * sizeof(*s->ws_mapped));
	s->ws_mapped[s->n_ws] = mapped;
	s->ws[s->n_ws++] = xstrdup(rel);
}

static void ws_link(struct rfs_sender *s, const char *link, bool mapped)
{
	char target[PATH_MAX + 1];
	ssize_t k = readlink(link, target, sizeof(target) - 1);
	if (k > 0) {
		target[k] = 0;
		ws_add(s, target, mapped);
	}
}

/* a file the tree may change without its times changing: open for
 * writing (writes change them, but maybe within one tick of the clock),
 * or mapped shared and writable (a write through a page already writable
 * changes nothing, and tmpfs never updates them for mapped writes) */
static void add_writer(struct rfs_sender *s, const struct stat *st)
{
	s->writers = xrealloc(s->writers, (s->n_writers + 1) * sizeof(*s->writers));
	s->writers[s->n_writers++] = (struct rfs_writer){ st->st_dev, st->st_ino };
}

/* path: what the tree opened or mapped (a /proc link or a path of its
 * maps); a layer's file is the layer's inode at the same path (the one
 * path leads to is the overlay's, of another device) */
static void note_writer(struct rfs_sender *s, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		add_writer(s, &st);
	if (!s->layer)
		return;
	char target[PATH_MAX + 1];
	ssize_t k = strncmp(path, "/proc/", 6) ? -1 : readlink(path, target, sizeof(target) - 1);
	if (k > 0)
		target[k] = 0;
	const char *rel = below_dir(s, k > 0 ? target : path);
	if (rel && rel[0] && fstatat(s->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		add_writer(s, &st);
}

static bool is_writer(const struct rfs_sender *s, const struct stat *st)
{
	for (size_t i = 0; i < s->n_writers; i++)
		if (s->writers[i].dev == st->st_dev && s->writers[i].ino == st->st_ino)
			return true;
	return false;
}

/* fd of process pid was opened for writing */
static bool fd_writable(pid_t pid, const char *fd)
{
	char path[320], line[128];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	FILE *f = fopen(path, "re");
	bool w = false;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long fl;
		if (sscanf(line, "flags: %lo", &fl) == 1) {
			w = (fl & O_ACCMODE) != O_RDONLY;
			break;
		}
	}
	if (f)
		fclose(f);
	return w;
}

void snd_ws_free(struct rfs_sender *s)
{
	for (size_t i = 0; i < s->n_ws; i++)
		free(s->ws[i]);
	free(s->ws);
	free(s->ws_mapped);
	free(s->writers);
	s->ws = NULL;
	s->ws_mapped = NULL;
	s->writers = NULL;
	s->n_ws = s->n_writers = 0;
}

/* the working set: exe, cwd, root, every open fd, every mapped file of the
 * tree's tasks (their paths; the files among them go on stack 1), and the
 * files they may write (note_writer) */
void snd_working_set_paths(struct rfs_sender *s)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = proc_tree_pids(s->root, &pids);
	char link[320];
	snd_ws_free(s);
	for (size_t i = 0; i < n; i++) {
		static const char *const links[] = { "exe", "cwd", "root" };
		for (size_t k = 0; k < ARRAY_SIZE(links); k++) {
			snprintf(link, sizeof(link), "/proc/%d/%s", pids[i], links[k]);
			ws_link(s, link, k == 0);
		}
		snprintf(link, sizeof(link), "/proc/%d/fd", pids[i]);
		DIR *d = opendir(link);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(link, sizeof(link), "/proc/%d/fd/%s", pids[i], de->d_name);
			ws_link(s, link, false);
			if (fd_writable(pids[i], de->d_name))
				note_writer(s, link);
		}
		if (d)
			closedir(d);
		snprintf(link, sizeof(link), "/proc/%d/maps", pids[i]);
		FILE *f = fopen(link, "re");
		char line[PATH_MAX + 128];
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strchr(line, '/');
			if (!p)
				continue;
			p[strcspn(p, "\n")] = 0;
			ws_add(s, p, true);
			/* "start-end rw-s ...": shared and writable */
			const char *perm = strchr(line, ' ');
			if (perm && perm[1] && perm[2] == 'w' && perm[3] && perm[4] == 's')
				note_writer(s, p);
		}
		if (f)
			fclose(f);
	}
	dm_error_clear();
}

void snd_working_set(struct rfs_sender *s)
{
	for (size_t i = 0; i < s->n_ws; i++) {
		int64_t e = ent_of(s, s->ws[i]);
		if (e < 0)
			continue;
		while (s->ents[e].link_id >= 0)
			e = s->ents[e].link_id;
		if (s->ents[e].file >= 0)
			rfs_sched_working_set(s->sched, (uint32_t)s->ents[e].file);
	}
}

/* ---- the working set before the freeze ---- */

/* path (relative) below the rootfs, read-only, never through a symlink */
static int open_below(struct rfs_sender *s, const char *rel)
{
	struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, s->dirfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == EPERM) {
		how.flags &= ~(uint64_t)O_NOATIME;
		fd = (int)syscall(SYS_openat2, s->dirfd, rel, &how, sizeof(how));
	}
	return fd;
}

/* a change inotify reports makes the pre-sent copy stale (not IN_ACCESS,
 * IN_OPEN: reads; IN_ATTRIB: the ENTRY sent after the freeze carries the
 * attributes, but its ctime is compared anyway) */
#define RFS_PRE_WATCH (IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)

/* One file of the working set, read while the tree runs: watched first,
 * then its stat, then its data (PRE_FILE, PRE_DATA..., PRE_END).  A file
 * that is empty, over the budget, or that the tree may write without its
 * times changing (is_writer) is left for after the freeze. */
static int presend_one(struct rfs_sender *s, const char *rel, uint64_t *budget)
{
	int fd = open_below(s, rel);
	if (fd < 0)
		return 0;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int wd = inotify_add_watch(s->ino_fd, proc, RFS_PRE_WATCH);
	struct stat st;
	if (wd < 0 || fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	if ((size_t)wd < s->n_wd_pre && s->wd_pre[wd]) {
		/* another name of one sent already (one watch per inode: the
		 * same wd, which stays) */
		close(fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode) || !st.st_size || (uint64_t)st.st_size > *budget || is_writer(s, &st)) {
		inotify_rm_watch(s->ino_fd, wd);
		close(fd);
		return 0;
	}
	uint32_t k = (uint32_t)s->n_pre;
	struct rfs_wire_pre h = { .pre = k, .size = (uint64_t)st.st_size };
	int r = net_send_frame(s->c, RFS_T_PRE_FILE, &h, sizeof(h));
	/* (tests: a destination that refuses the file closes its channels
	 * meanwhile; what we send next meets them closed) */
	if (r >= 0)
		mig_test_point("src-rootfs-pre-file");
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	uint64_t pos = 0, size = (uint64_t)st.st_size, sent = 0;
	bool whole = true;
	while (r >= 0 && pos < size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0 || (uint64_t)data >= size)
			break; /* only a hole is left */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		uint64_t end = MIN((uint64_t)hole, ((uint64_t)data / RFS_CHUNK + 1) * RFS_CHUNK);
		uint32_t len = (uint32_t)(end - (uint64_t)data);
		if (pread_exact(fd, s->buf, len, data) < 0) {
			/* it shrank: what went is dropped at the walk */
			whole = false;
			break;
		}
		struct rfs_wire_data d = { .id = k, .len = len, .off = (uint64_t)data };
		struct iovec iov[2] = { { &d, sizeof(d) }, { s->buf, len } };
		r = net_send_framev(s->c, RFS_T_PRE_DATA, iov, 2);
		crc = (uint32_t)crc32(crc, s->buf, len);
		pos = end;
		sent += len;
	}
	if (r >= 0) {
		h.crc = crc;
		r = net_send_frame(s->c, RFS_T_PRE_END, &h, sizeof(h));
	}
	if (s->layer) {
		/* (its watch keeps the inode, so its number names no other file
		 * until the freeze; a layer's thousands of files need no fd each) */
		close(fd);
		fd = -1;
	}
	if ((size_t)wd >= s->n_wd_pre) {
		size_t n = MAX((size_t)wd + 1, 2 * s->n_wd_pre);
		s->wd_pre = xrealloc(s->wd_pre, n * sizeof(*s->wd_pre));
		memset(s->wd_pre + s->n_wd_pre, 0, (n - s->n_wd_pre) * sizeof(*s->wd_pre));
		s->n_wd_pre = n;
	}
	s->wd_pre[wd] = (int32_t)k + 1;
	s->pre = xrealloc(s->pre, (s->n_pre + 1) * sizeof(*s->pre));
	s->pre[s->n_pre++] = (struct rfs_pre){ .fd = fd, .wd = wd, .st = st, .bytes = sent, .bad = !whole };
	s->pre_bytes += sent;
	*budget -= (uint64_t)st.st_size;
	return r;
}

struct pre_cand {
	const char *rel;
	bool mapped;
	uint64_t size;
};

/* what the restore reads first (the exe, mapped files), then the open
 * files; smallest first in each */
static int cmp_cand(const void *a, const void *b)
{
	const struct pre_cand *x = a, *y = b;
	if (x->mapped != y->mapped)
		return x->mapped ? -1 : 1;
	return x->size < y->size ? -1 : x->size > y->size;
}

/* the regular files of a layer with data (relative paths, their sizes),
 * for the pre-send; no more than RFS_LAYER_PRESEND_FILES */
struct layer_scan {
	char **paths;
	uint64_t *sizes;
	size_t n, max;
};

static void scan_layer(struct rfs_sender *s, const char *rel, struct layer_scan *ls, unsigned depth)
{
	int fd = rel[0] ? openat(s->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			: openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return; /* (gone meanwhile: the walk sees what is there) */
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) && ls->n < ls->max) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		_cleanup_free_ char *p = rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		if (strlen(p) >= RFS_PATH_MAX)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 256) {
			scan_layer(s, p, ls, depth + 1);
		} else if (S_ISREG(st.st_mode) && st.st_size > 0) {
			ls->paths = xrealloc(ls->paths, (ls->n + 1) * sizeof(*ls->paths));
			ls->sizes = xrealloc(ls->sizes, (ls->n + 1) * sizeof(*ls->sizes));
			ls->sizes[ls->n] = (uint64_t)st.st_size;
			ls->paths[ls->n++] = TAKE_PTR(p);
		}
	}
	closedir(d);
}

static int cmp_pre_ino(const void *a, const void *b, void *arg)
{
	const struct rfs_pre *pre = arg, *x = &pre[*(const uint32_t *)a], *y = &pre[*(const uint32_t *)b];
	if (x->st.st_ino != y->st.st_ino)
		return x->st.st_ino < y->st.st_ino ? -1 : 1;
	return x->st.st_dev < y->st.st_dev ? -1 : x->st.st_dev > y->st.st_dev;
}

/* priority: the working set of the running tree, before the freeze (the
 * restore then finds the exe and mapped files complete, the tree its open
 * files); a container's layer (s->layer): every file of it, the working
 * set's first, then the smallest first, up to RFS_LAYER_PRESEND_MAX (the
 * restore waits for every file of a layer: eager).  Checked again at the
 * snd_walk (presend_take) and at the freeze (delta) */
int snd_presend(struct rfs_sender *s)
{
	snd_working_set_paths(s);
	struct layer_scan ls = { 0 };
	if (s->layer) {
		/* one inotify watch per file: the directories' watches (the walk,
		 * after this) must find room too */
		ls.max = RFS_LAYER_PRESEND_FILES;
		_cleanup_fclose_ FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
		unsigned long w;
		if (f && fscanf(f, "%lu", &w) == 1)
			ls.max = MIN(ls.max, w / 2);
		scan_layer(s, "", &ls, 0);
	}
	_cleanup_free_ struct pre_cand *c = xcalloc(s->n_ws + ls.n + 1, sizeof(*c));
	size_t n = 0;
	for (size_t i = 0; i < s->n_ws; i++) {
		struct stat st;
		if (!s->ws[i][0] || fstatat(s->dirfd, s->ws[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		c[n++] = (struct pre_cand){ s->ws[i], s->ws_mapped[i], (uint64_t)st.st_size };
	}
	/* (a working set's file listed again goes once: presend_one sees its watch) */
	for (size_t i = 0; i < ls.n; i++)
		c[n++] = (struct pre_cand){ ls.paths[i], false, ls.sizes[i] };
	qsort(c, n, sizeof(*c), cmp_cand);
	uint64_t budget = s->layer ? RFS_LAYER_PRESEND_MAX : RFS_PRESEND_MAX;
	int r = 0;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = presend_one(s, c[i].rel, &budget);
	for (size_t i = 0; i < ls.n; i++)
		free(ls.paths[i]);
	free(ls.paths);
	free(ls.sizes);
	if (r < 0)
		return dm_wrap(r, s->layer ? "sending the layer before the freeze" : "sending the working set before the freeze");
	s->pre_by_ino = xcalloc(s->n_pre + 1, sizeof(*s->pre_by_ino));
	for (size_t i = 0; i < s->n_pre; i++)
		s->pre_by_ino[i] = (uint32_t)i;
	qsort_r(s->pre_by_ino, s->n_pre, sizeof(*s->pre_by_ino), cmp_pre_ino, s->pre);
	s->t_pre_done = clock_ns();
	pr_info("%zu files of the %s, %.1f MiB, sent before the freeze", s->n_pre, s->layer ? "layer" : "working set",
		(double)s->pre_bytes / 1048576);
	return 0;
}

/* the pre-send of the file (dev, ino), or -1 */
static int64_t pre_of(struct rfs_sender *s, dev_t dev, ino_t ino)
{
	size_t lo = 0, hi = s->n_pre;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct stat *m = &s->pre[s->pre_by_ino[mid]].st;
		if (m->st_ino == ino && m->st_dev == dev)
			return s->pre_by_ino[mid];
		if (m->st_ino < ino || (m->st_ino == ino && m->st_dev < dev))
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* (lock) At the walk, a file with data of its own: if it went before the
 * freeze and is the same now (no inotify event, same inode, size, mtime
 * and ctime, and no task of the frozen tree may write it unseen), its
 * ENTRY says so and nothing more of it goes; true then. */
bool snd_presend_take(struct rfs_sender *s, struct rfs_ent *e, struct rfs_file_state *fs)
{
	/* (one pre-send per inode: presend_one) */
	int64_t at = s->pre_by_ino ? pre_of(s, e->st.st_dev, e->st.st_ino) : -1;
	if (at >= 0 && !s->pre[at].used) {
		size_t i = (size_t)at;
		struct rfs_pre *p = &s->pre[i];
		const struct stat *a = &p->st, *b = &e->st;
		if (p->bad || a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
		    a->st_mtim.tv_nsec != b->st_mtim.tv_nsec || a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
		    a->st_ctim.tv_nsec != b->st_ctim.tv_nsec || is_writer(s, b)) {
			if (!p->bad)
				pr_debug("%s changed after it was sent: sent again", e->path);
			p->bad = true;
			s->pre_stale++;
			return false;
		}
		p->used = true;
		p->ent = (uint32_t)(e - s->ents);
		e->pre = (int32_t)i;
		fs->done = fs->presend = true;
		fs->why = RFS_WORKING_SET;
		s->files_by[RFS_WORKING_SET]++;
		s->bytes_by[RFS_WORKING_SET] += p->bytes;
		s->files_sent++;
		s->bytes_sent += p->bytes;
		s->pre_used++;
		s->pre_used_bytes += p->bytes;
		return true;
	}
	return false;
}

/*
 * The pre-sent files' fds, and with all, the inotify instance.  Its close
 * waits for a grace period (fsnotify_destroy_group flushes the group's
 * destruction: 14-15 ms here), so once the delta is read it stays open,
 * unread, until the sender is freed after the switch-over: closed where
 * the walk ends, under the sender's lock, it held the main thread's
 * rfs_send_foreground() in the downtime (a Docker container's state
 * phase: 14-19 ms in two runs of three).
 */
void snd_presend_close(struct rfs_sender *s, bool all)
{
	for (size_t i = 0; i < s->n_pre; i++)
		if (s->pre[i].fd >= 0) {
			close(s->pre[i].fd);
			s->pre[i].fd = -1;
		}
	if (all && s->ino_fd >= 0) {
		close(s->ino_fd);
		s->ino_fd = -1;
	}
}
