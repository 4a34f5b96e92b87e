/* SPDX-License-Identifier: MIT */
/* The source's end of the rootfs channels, see rootfs.h.
 *
 * Two threads.  The bulk thread walks DIR, sends the metadata and, once the
 * tree runs on the destination, every file in the scheduler's order, on the
 * rootfs channel (priority: the working set's files and the walk before the
 * freeze, the tree watched with inotify, and at the freeze what changed
 * since: delta()).  The miss thread reads the destination's requests on the
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
 * scheduler, resumed and the stats. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"
#include "mem/mem.h"
#include "proc/proc.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

struct rfs_ent {
	char *path;        /* relative to the rootfs, "" for itself */
	struct stat st;
	uint32_t parent;   /* entry id of its directory */
	int64_t link_id;   /* hard link of an earlier entry, or -1 */
	int64_t file;      /* index among the files with data (the scheduler's), or -1 */
	int32_t pre;       /* its data went before the freeze, unchanged since: that pre-send, or -1 */
	bool removed;      /* gone between the walk and the freeze (REMOVE sent) */
};

/* a file of the working set sent before the freeze (PRE_*) */
struct rfs_pre {
	int fd;
	int wd;            /* its inotify watch, set before its stat */
	struct stat st;    /* before its data was read */
	uint64_t bytes;    /* of data sent */
	bool bad;          /* changed since (an inotify event), or not sent whole */
	bool used;         /* an ENTRY names it */
	uint32_t ent;      /* that ENTRY */
};

/* a file the tree may write without its times changing (open for writing,
 * mapped shared and writable) */
struct rfs_writer {
	dev_t dev;
	ino_t ino;
};

struct rfs_file_state {
	uint32_t ent;
	int fd;
	enum rfs_why why;       /* of its first chunk */
	uint32_t n_chunks, next, n_sent;
	bool done;              /* FILE_END sent */
	bool presend;           /* its data went before the freeze (done from the start) */
	bool removed;           /* its entry is gone (done, nothing of it goes) */
	bool ending;            /* its last chunk is sent: FILE_END is on its way (lock) */
	uint8_t end_sent;       /* FILE_END went: SENT_BULK, SENT_MISS (lock) */
	uint8_t end_ch;         /* the channel its last chunk's thread sends FILE_END on (lock) */
	uint64_t end_at;        /* on the bulk channel: its bytes on the wire before it (lock) */
	int users;              /* threads reading fd (lock) */
	uint8_t *sent;          /* per chunk: SENT_* and BUSY_* (lock) */
	uint64_t *bulk_at;      /* per chunk sent on the bulk channel: its bytes on the wire before it (lock) */
	uint32_t *crcs;         /* per chunk: crc32 of its data */
};

struct dir_done {
	uint32_t dir;
	size_t at;              /* its last entry is entry at - 1 */
};

struct chunk_want {
	uint32_t f, chunk;
};

struct rfs_sender {
	struct net_chan *c;    /* rootfs: metadata, files in order (the bulk thread) */
	struct net_chan *mc;   /* miss: requests in, the chunks asked for out (the miss thread) */
	pthread_t miss_thread;
	bool miss_started;
	bool miss_ended;       /* the miss thread returned (lock) */
	bool stopping;         /* rfs_send_stop() (lock) */
	char *dir;
	int dirfd;
	enum rfs_mode mode;
	bool layer;            /* a container's layer or volume: every file before the freeze */
	char *layer_at;        /* where the tree sees it ("/", or a volume's mount point), no trailing / */
	pid_t root;
	pthread_t thread;
	bool started;
	struct rfs_ent *ents;
	size_t n_ents, cap_ents;
	struct rfs_file_state *files;
	size_t n_files, cap_files;
	void *inodes;          /* tsearch: struct inode_key of files with more than one name */
	struct rfs_sched *sched;
	uint8_t *buf, *mbuf;   /* a chunk, the bulk thread's and the miss thread's */
	uint8_t batch[RFS_BATCH_MAX];   /* META_BATCH being filled */
	size_t batch_len;
	int batch_err;
	size_t meta_next;               /* entries put in batches */
	size_t meta_dirs;               /* of dirs_done, DIR_ENDs put */
	/* the walk: directories in the order their entries were complete; the
	 * working set's paths (relative), whose directories are walked first */
	struct dir_done *dirs_done;
	size_t n_dirs_done;
	char **ws;
	bool *ws_mapped;
	size_t n_ws;
	uint32_t *early;       /* mapped files of the working set, not sent yet (the restore reads them) */
	bool ws_walked;        /* every directory on the working set's paths is listed */
	uint32_t *deferred;    /* directories off those paths, walked after them */
	size_t n_deferred;
	size_t n_early;
	uint32_t *touched;     /* directories touched during the walk (lock) */
	size_t n_touched;
	/* the files the restore reads (the exe, mapped files), handed to the
	 * miss thread as their entries go out: it sends them on its channel,
	 * a chunk at a time, when no miss waits (lock); wake: an eventfd */
	uint32_t *push;
	size_t push_head, push_n;
	int wake;
	/* the working set sent before the freeze, checked at the walk; the
	 * tree's writers (rfs_writer) when the working set was taken */
	struct rfs_pre *pre;
	size_t n_pre;
	int32_t *wd_pre;       /* [wd]: the pre-send watched by wd, + 1 (0: none) */
	size_t n_wd_pre;
	uint32_t *pre_by_ino;  /* the pre-sends by inode, sorted (presend_take) */
	int ino_fd;            /* inotify: the pre-sent files' watches */
	struct rfs_writer *writers;
	size_t n_writers;
	struct rfs_writer *pre_writers;  /* before and after the walk (prewalk) */
	size_t n_pre_writers;
	/* priority: the walk before the freeze (prewalk); each directory watched
	 * (wd_dir[wd] = its id + 1) from before its listing; at the freeze what
	 * changed is listed and stated again (delta) */
	bool prewalk, walking_pre, watch_failed;
	uint32_t *wd_dir;
	size_t n_wd_dir;
	uint8_t *dirty;        /* per entry, at the freeze: D_* */
	size_t n_dirty;
	uint32_t *kids, *kid_off;  /* the entries walked before the freeze, by directory */
	size_t n_kids_ents;
	size_t delta_updates, delta_removes, delta_adds;
	bool presend_done;     /* (lock) */
	bool frozen;           /* rfs_send_frozen() (lock) */
	uint64_t t_pre_done, pre_bytes, pre_used_bytes;
	uint64_t walk_cpu_ns;  /* the bulk thread's CPU from the freeze to the walk's end */
	uint64_t t_prewalked;  /* the walk before the freeze ended */
	bool prewalk_acked;    /* WANT PREWALKED: the destination made those entries (lock) */
	uint64_t t_prewalk_acked;
	size_t pre_used, pre_stale;
	/* chunks the tree is blocked on, FIFO (the miss thread's) */
	struct chunk_want *cw;
	size_t cw_head, cw_n, cw_cap;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;               /* the thread's end: > 0 running, 0 DONE, < 0 error */
	char errmsg[512];
	/* stats (lock) */
	bool resumed;          /* the destination said RESUMED (eager: from the start) (lock) */
	pid_t tid;             /* the thread's (lock) */
	bool background;       /* niced while the tree is dumped (lock) */
	int base_nice;         /* the starter's nice: foreground; background is 10 more */
	uint64_t t_resumed;
	uint64_t t_start, t_walked, t_meta_sent, t_ws_ready, t_end, t_done;
	uint64_t files_by[_RFS_WHY_MAX], bytes_by[_RFS_WHY_MAX];
	uint64_t files_sent, bytes_sent, bytes_total, misses, touches;
	json_t *dest;
};

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

/* ---- the walk ---- */

struct inode_key {
	dev_t dev;
	ino_t ino;
	uint32_t id;
};

static int cmp_inode(const void *a, const void *b)
{
	const struct inode_key *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static int add_ent_locked(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent);
static bool presend_take(struct rfs_sender *s, struct rfs_ent *e, struct rfs_file_state *fs);

/* (the arrays move: the miss thread reads them under the lock) */
static int add_ent(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent)
{
	pthread_mutex_lock(&s->lock);
	int r = add_ent_locked(s, path, st, parent);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int add_ent_locked(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent)
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
		found = tsearch(k, &s->inodes, cmp_inode);
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
	if (presend_take(s, e, &s->files[e->file]))
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

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dir (relative) is a working set path or one of its directories */
static bool on_ws_path(struct rfs_sender *s, const char *dir)
{
	size_t l = strlen(dir);
	for (size_t i = 0; i < s->n_ws; i++)
		if (!strncmp(s->ws[i], dir, l) && (s->ws[i][l] == '/' || !s->ws[i][l]))
			return true;
	return false;
}

static int emit(struct rfs_sender *s);
static int send_early(struct rfs_sender *s);

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
static int walk(struct rfs_sender *s, const char *rel, uint32_t self)
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
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	qsort(names, n, sizeof(*names), cmp_name);
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
		r = add_ent(s, p, &st, self);
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
	r = emit(s);
	if (r >= 0 && !s->walking_pre)
		r = send_early(s);
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
			if (on_ws_path(s, p) != !pass)
				continue;
			if (pass && !s->ws_walked) {
				s->deferred = xrealloc(s->deferred, (s->n_deferred + 1) * sizeof(*s->deferred));
				s->deferred[s->n_deferred++] = subdirs[i];
				continue;
			}
			r = walk(s, p, subdirs[i]);
		}
	free(subdirs);
	return r;
}

/* the order of the files, once the walk is over */
static void make_sched(struct rfs_sender *s)
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
static int64_t ent_of(struct rfs_sender *s, const char *rel)
{
	for (size_t i = 0; i < s->n_ents; i++)
		if (!s->ents[i].removed && !cmp_ent_path(rel, &s->ents[i]))
			return (int64_t)i;
	return -1;
}

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

static void ws_free(struct rfs_sender *s)
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
static void working_set_paths(struct rfs_sender *s)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = proc_tree_pids(s->root, &pids);
	char link[320];
	ws_free(s);
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

static void working_set(struct rfs_sender *s)
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
 * walk (presend_take) and at the freeze (delta) */
static int presend(struct rfs_sender *s)
{
	working_set_paths(s);
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
static bool presend_take(struct rfs_sender *s, struct rfs_ent *e, struct rfs_file_state *fs)
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

static void presend_close(struct rfs_sender *s)
{
	for (size_t i = 0; i < s->n_pre; i++)
		if (s->pre[i].fd >= 0) {
			close(s->pre[i].fd);
			s->pre[i].fd = -1;
		}
	if (s->ino_fd >= 0)
		close(s->ino_fd);
	s->ino_fd = -1;
}

/* ---- sending ---- */

static int batch_flush(struct rfs_sender *s)
{
	if (!s->batch_len)
		return 0;
	int r = net_send_frame(s->c, RFS_T_META_BATCH, s->batch, s->batch_len);
	s->batch_len = 0;
	return r;
}

/* room for a record of len bytes in the batch (sent first if full) */
static uint8_t *batch_add(struct rfs_sender *s, uint32_t type, size_t len)
{
	struct rfs_wire_rec h = { .type = type, .len = (uint32_t)len };
	if (s->batch_len + sizeof(h) + len > RFS_BATCH_MAX)
		s->batch_err = s->batch_err ?: batch_flush(s);
	memcpy(s->batch + s->batch_len, &h, sizeof(h));
	uint8_t *p = s->batch + s->batch_len + sizeof(h);
	s->batch_len += sizeof(h) + len;
	return p;
}

static int send_entry_as(struct rfs_sender *s, uint32_t id, uint32_t type);
static int send_entry(struct rfs_sender *s, uint32_t id)
{
	return send_entry_as(s, id, RFS_T_ENTRY);
}

/* ENTRY (a new one) or UPDATE (one sent before the freeze, changed since) */
static int send_entry_as(struct rfs_sender *s, uint32_t id, uint32_t type)
{
	const struct rfs_ent *e = &s->ents[id];
	Dm__RootfsEntry m = DM__ROOTFS_ENTRY__INIT;
	char target[RFS_PATH_MAX];
	char names[8192];
	Dm__RootfsXattr xa[32], *xp[32];
	uint8_t *vals[32] = {};
	int r;

	m.id = id;
	m.path = e->path;
	m.mode = e->st.st_mode;
	m.has_uid = m.has_gid = true;
	m.uid = e->st.st_uid;
	m.gid = e->st.st_gid;
	m.has_atime_ns = m.has_mtime_ns = true;
	m.atime_ns = (int64_t)e->st.st_atim.tv_sec * 1000000000LL + e->st.st_atim.tv_nsec;
	m.mtime_ns = (int64_t)e->st.st_mtim.tv_sec * 1000000000LL + e->st.st_mtim.tv_nsec;
	m.has_ino = true;
	m.ino = e->st.st_ino;
	if (e->pre >= 0) {
		m.has_presend = true;
		m.presend = (uint32_t)e->pre;
	}
	if (e->link_id >= 0) {
		m.has_link_id = true;
		m.link_id = (uint32_t)e->link_id;
	} else if (S_ISREG(e->st.st_mode)) {
		m.has_size = true;
		m.size = (uint64_t)e->st.st_size;
	} else if (S_ISLNK(e->st.st_mode)) {
		ssize_t k = readlinkat(s->dirfd, e->path, target, sizeof(target) - 1);
		if (k < 0)
			return dm_fail(neg_errno(), "%s/%s: %m", s->dir, e->path);
		target[k] = 0;
		m.target = target;
	} else if (S_ISCHR(e->st.st_mode) || S_ISBLK(e->st.st_mode)) {
		m.has_rdev = true;
		m.rdev = e->st.st_rdev;
	}
	/* extended attributes (not of symlinks: a user.* one cannot be on a link) */
	if (!S_ISLNK(e->st.st_mode) && e->link_id < 0) {
		_cleanup_free_ char *full = xasprintf("%s/%s", s->dir, e->path);
		ssize_t k = llistxattr(full, names, sizeof(names));
		size_t nx = 0;
		for (ssize_t o = 0; k > 0 && o < k && nx < 32; o += (ssize_t)strlen(names + o) + 1) {
			ssize_t vl = lgetxattr(full, names + o, NULL, 0);
			if (vl < 0)
				continue;
			vals[nx] = xmalloc((size_t)vl + 1);
			vl = lgetxattr(full, names + o, vals[nx], (size_t)vl);
			if (vl < 0) {
				free(vals[nx]);
				vals[nx] = NULL;
				continue;
			}
			dm__rootfs_xattr__init(&xa[nx]);
			xa[nx].name = names + o;
			xa[nx].value.data = vals[nx];
			xa[nx].value.len = (size_t)vl;
			xp[nx] = &xa[nx];
			nx++;
		}
		m.n_xattrs = nx;
		m.xattrs = xp;
	}
	size_t len = protobuf_c_message_get_packed_size(&m.base);
	r = 0;
	if (len > RFS_BATCH_MAX - sizeof(struct rfs_wire_rec))
		r = dm_fail(-E2BIG, "%s/%s: its metadata (%zu bytes of extended attributes and names) is too large",
			    s->dir, e->path, len);
	else
		protobuf_c_message_pack(&m.base, batch_add(s, type, len));
	for (size_t i = 0; i < 32; i++)
		free(vals[i]);
	return r;
}

static void set_err(struct rfs_sender *s, int r)
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

/* ---- chunks, from either thread ---- */

/* per chunk (fs->sent), and per file for its FILE_END (fs->end_sent): on
 * which channel it went or is going.  The bulk thread sends a chunk once.
 * The miss thread sends a chunk asked for that nobody sent, and sends again,
 * on its channel, one that the bulk thread sent when more than
 * RFS_RESEND_AHEAD bytes of the bulk channel were not yet acknowledged in
 * front of it: it may wait there behind that much bulk data (in the socket,
 * in the host's queue), longer than its journey on the miss channel, whose
 * frames pass the bulk channel's in a priority queue.  Less than that, and
 * the copy on its way comes about as soon as a second one would. */
enum { SENT_BULK = 1, SENT_MISS = 2, BUSY_BULK = 4, BUSY_MISS = 8 };
#define ON_MISS(miss, bulk_bit) ((miss) ? (bulk_bit) << 1 : (bulk_bit))
#define RFS_RESEND_AHEAD (2ull * RFS_CHUNK)
/* the bulk channel's unsent bytes in its socket: what a new file waits behind */
#define RFS_BULK_NOTSENT (256u << 10)

/* while the tree is dumped the sender yields the CPU to the dump, which
 * the downtime waits for (the walk goes on when the dump waits for the
 * tree); rfs_send_foreground() once the dump is over */
#define RFS_BACKGROUND_NICE 10

/* (lock) chunk c of file f is sent or being sent on that thread's channel
 * (the bulk thread: on any) */
static bool chunk_taken(const struct rfs_file_state *fs, uint32_t c, bool miss)
{
	if (miss)
		return fs->sent && fs->sent[c] & (SENT_MISS | BUSY_MISS);
	return fs->done || fs->ending || (fs->sent && fs->sent[c]);
}

/* bytes of the bulk channel the peer acknowledged (TCP), 0 if unknown */
static uint64_t bulk_acked(struct rfs_sender *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(net_chan_fd(s->c), IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return 0;
	return ti.tcpi_bytes_acked;
}

/* (lock) the miss thread leaves chunk c to the bulk channel: it went there
 * (or is going) with little in front of it */
static bool bulk_has_it(struct rfs_sender *s, const struct rfs_file_state *fs, uint32_t c)
{
	if (!fs->sent || !(fs->sent[c] & (SENT_BULK | BUSY_BULK)))
		return false;
	if (!fs->n_chunks)
		return true; /* an empty file: its FILE_END only (send_whole_on_miss) */
	return fs->bulk_at[c] <= bulk_acked(s) + RFS_RESEND_AHEAD;
}

/* the file's FILE_END on channel ch: its size, the crc of its chunks' crcs */
static int send_file_end(struct rfs_sender *s, struct net_chan *ch, uint32_t f)
{
	pthread_mutex_lock(&s->lock);
	const struct rfs_file_state *fs = &s->files[f];
	struct rfs_wire_file_end fe = { .id = fs->ent, .size = (uint64_t)s->ents[fs->ent].st.st_size, .why = fs->why,
					.crc = (uint32_t)crc32(crc32(0, NULL, 0), (const uint8_t *)fs->crcs,
							       fs->n_chunks * sizeof(*fs->crcs)) };
	pthread_mutex_unlock(&s->lock);
	return net_send_frame(ch, RFS_T_FILE_END, &fe, sizeof(fe));
}

/*
 * Chunk c of file f on channel ch (buf: RFS_CHUNK bytes of the thread's):
 * its data extents (holes are skipped), CHUNK_END; then FILE_END if it was
 * the file's last (an empty file has only that).  Nothing if it is taken
 * (chunk_taken).  *ret_done: this call completed the file.
 */
static int send_chunk(struct rfs_sender *s, struct net_chan *ch, uint8_t *buf, uint32_t f, uint32_t c,
		      enum rfs_why why, bool *ret_done)
{
	bool miss = ch == s->mc;
	uint64_t sent = 0;
	int r;

	*ret_done = false;
	pthread_mutex_lock(&s->lock);
	struct rfs_file_state *fs = &s->files[f];
	const struct rfs_ent *e = &s->ents[fs->ent];
	const char *path = e->path;
	uint64_t size = (uint64_t)e->st.st_size;
	uint32_t ent = fs->ent, n_chunks = fs->n_chunks;
	if (chunk_taken(fs, c, miss) || (!n_chunks && (fs->ending || fs->done))) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (!fs->sent) {
		fs->why = why;
		fs->sent = xcalloc(fs->n_chunks + 1, 1);
		fs->crcs = xcalloc(fs->n_chunks + 1, sizeof(*fs->crcs));
		fs->bulk_at = xcalloc(fs->n_chunks + 1, sizeof(*fs->bulk_at));
	}
	fs->sent[c] |= ON_MISS(miss, BUSY_BULK);
	if (!miss) {
		struct net_chan_stats cs;
		net_chan_get_stats(ch, &cs);
		fs->bulk_at[c] = cs.wire_sent;
	}
	if (fs->fd < 0 && n_chunks) {
		fs->fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
		if (fs->fd < 0 && errno == EPERM)
			fs->fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fs->fd < 0) {
			r = dm_fail(neg_errno(), "%s/%s: %m", s->dir, path);
			pthread_mutex_unlock(&s->lock);
			return r;
		}
	}
	int fd = fs->fd;
	fs->users++;
	pthread_mutex_unlock(&s->lock);

	/* the data, outside the lock (the other thread sends other chunks meanwhile) */
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	r = 0;
	if (c < n_chunks) {
		uint64_t pos = (uint64_t)c * RFS_CHUNK, end = MIN(pos + RFS_CHUNK, size);
		while (pos < end) {
			off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
			if (data < 0 || (uint64_t)data >= end)
				break; /* only a hole is left in this chunk */
			off_t hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > end)
				hole = (off_t)end;
			uint32_t len = (uint32_t)((uint64_t)hole - (uint64_t)data);
			r = pread_exact(fd, buf, len, data);
			if (r < 0) {
				r = dm_fail(r, "%s/%s: read: %s (did it shrink?)", s->dir, path, strerror(-r));
				break;
			}
			struct rfs_wire_data h = { .id = ent, .len = len, .off = (uint64_t)data };
			struct iovec iov[2] = { { &h, sizeof(h) }, { buf, len } };
			r = net_send_framev(ch, RFS_T_DATA, iov, 2);
			if (r < 0)
				break;
			crc = (uint32_t)crc32(crc, buf, len);
			pos = (uint64_t)data + len;
			sent += len;
		}
		if (r >= 0) {
			struct rfs_wire_chunk_end ce = { .id = ent, .chunk = c, .crc = crc };
			r = net_send_frame(ch, RFS_T_CHUNK_END, &ce, sizeof(ce));
		}
	}

	pthread_mutex_lock(&s->lock);
	fs = &s->files[f];
	fs->users--;
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	bool first = !(fs->sent[c] & (SENT_BULK | SENT_MISS));
	fs->sent[c] = (uint8_t)((fs->sent[c] & ~ON_MISS(miss, BUSY_BULK)) | ON_MISS(miss, SENT_BULK));
	if (first && c < n_chunks) {
		fs->crcs[c] = htole32(crc);
		fs->n_sent++;
	}
	while (fs->next < fs->n_chunks && fs->sent[fs->next])
		fs->next++;
	s->bytes_by[why] += sent;
	s->bytes_sent += sent;
	bool last = first && fs->n_sent == fs->n_chunks && !fs->ending;
	if (last) {
		fs->ending = true;
		fs->end_ch = ON_MISS(miss, SENT_BULK);
		if (!miss) {
			struct net_chan_stats cs;
			net_chan_get_stats(ch, &cs);
			fs->end_at = cs.wire_sent;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return 0;
	r = send_file_end(s, ch, f);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	fs = &s->files[f];
	fs->end_sent |= ON_MISS(miss, SENT_BULK);
	if (fs->fd >= 0 && !fs->users) {
		close(fs->fd);
		fs->fd = -1;
	}
	fs->done = true;
	if (!fs->presend) {
		/* (a pre-sent file counted when its ENTRY went: this is a copy the
		 * destination asked for, having lost that one) */
		s->files_by[fs->why]++;
		s->files_sent++;
	}
	if (s->sched)
		rfs_sched_sent(s->sched, f, true);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	*ret_done = true;
	return 0;
}

/* A whole file the tree is blocked on (an open that may change it): its
 * chunks on the miss channel (bulk_has_it: those left to the bulk
 * channel), then its FILE_END there too if it went on the bulk channel
 * with more than RFS_RESEND_AHEAD in front of it. */
static int send_whole_on_miss(struct rfs_sender *s, uint32_t f)
{
	pthread_mutex_lock(&s->lock);
	uint32_t n = MAX(s->files[f].n_chunks, 1u);
	pthread_mutex_unlock(&s->lock);
	for (uint32_t c = 0; c < n; c++) {
		pthread_mutex_lock(&s->lock);
		bool skip = bulk_has_it(s, &s->files[f], c);
		pthread_mutex_unlock(&s->lock);
		bool fdone;
		int r = skip ? 0 : send_chunk(s, s->mc, s->mbuf, f, c, RFS_DEMAND, &fdone);
		if (r < 0)
			return r;
	}
	/* every chunk went on some channel (the crcs are known once the file
	 * is ending): its end here too, unless it went here already or the
	 * bulk channel has it close */
	pthread_mutex_lock(&s->lock);
	const struct rfs_file_state *fs = &s->files[f];
	bool again = fs->ending && fs->end_ch == SENT_BULK && !(fs->end_sent & SENT_MISS) &&
		     fs->end_at > bulk_acked(s) + RFS_RESEND_AHEAD;
	if (again)
		s->files[f].end_sent |= SENT_MISS;
	pthread_mutex_unlock(&s->lock);
	return again ? send_file_end(s, s->mc, f) : 0;
}

/* ---- the miss thread ---- */

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
			queued = !chunk_taken(fs, (uint32_t)c, true) && !bulk_has_it(s, fs, (uint32_t)c);
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

static int read_peer(struct rfs_sender *s, bool block, bool *ret_done);

/* A channel of ours broke: the destination may have said why on the rootfs
 * channel first (DONE with its error, as it gives up): that is the reason,
 * not the closed channel. */
static int peer_said(struct rfs_sender *s, int r, const char *what)
{
	char mine[DM_ERRMSG_MAX];
	bool done = false;

	snprintf(mine, sizeof(mine), "%s", dm_last_error());
	if (net_chan_poll_in(s->c, 500) > 0) {
		int k = read_peer(s, true, &done);
		if (k < 0 && k != r)
			return k;
	}
	dm_fail(r, "%s", mine);
	return dm_wrap(r, "%s", what);
}

/* one request from the destination on the miss channel; block: wait for it.
 * 0: none there (not blocking), 1: one handled */
static int read_want(struct rfs_sender *s, bool block)
{
	if (!block && !net_chan_has_pending(s->mc)) {
		struct pollfd p = { .fd = net_chan_fd(s->mc), .events = POLLIN };
		if (poll(&p, 1, 0) <= 0)
			return 0;
	}
	struct net_frame f;
	void *buf = NULL;
	int r = net_recv_frame(s->mc, 4096, &f, &buf);
	if (r < 0)
		return peer_said(s, r, "the rootfs miss channel");
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
				skip = bulk_has_it(s, &s->files[f], c);
				pthread_mutex_unlock(&s->lock);
			}
			r = c == CW_WHOLE ? send_whole_on_miss(s, f)
			    : skip	  ? 0
					  : send_chunk(s, s->mc, s->mbuf, f, c, RFS_DEMAND, &fdone);
		} else if (push) {
			r = send_chunk(s, s->mc, s->mbuf, f, c, RFS_WORKING_SET, &fdone);
		} else {
			r = 0;
		}
		if (r < 0)
			return r;
	}
}

static void *miss_thread_main(void *arg)
{
	struct rfs_sender *s = arg;
	int r = miss_run(s);
	pthread_mutex_lock(&s->lock);
	/* the end of the transfer, or a stop: the channel closes, not an error */
	bool quiet = s->stopping || s->err <= 0;
	s->miss_ended = true;
	pthread_mutex_unlock(&s->lock);
	if (!quiet) {
		pr_debug("miss thread: %s", dm_last_error());
		set_err(s, r);
		/* the bulk thread may be blocked on its channel */
		net_chan_shutdown(s->c);
	}
	return NULL;
}

/* ---- the bulk thread ---- */

/* a frame from the destination on the rootfs channel: only DONE comes
 * there; block: wait for it */
static int read_peer(struct rfs_sender *s, bool block, bool *ret_done)
{
	if (!block && !net_chan_has_pending(s->c)) {
		struct pollfd p = { .fd = net_chan_fd(s->c), .events = POLLIN };
		if (poll(&p, 1, 0) <= 0)
			return 0;
	}
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
		} else {
			pthread_mutex_lock(&s->lock);
			s->dest = mig_reply_stats(rep);
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

/* the entries walked and not sent yet, a directory's DIR_END after its
 * last entry; the batch goes when it is full and at the end of the root
 * or of a directory on the working set's paths (what the restore looks
 * into first) */
static int emit(struct rfs_sender *s)
{
	int r = 0;
	for (;;) {
		for (; r >= 0 && s->meta_dirs < s->n_dirs_done && s->dirs_done[s->meta_dirs].at <= s->meta_next;
		     s->meta_dirs++) {
			struct rfs_wire_dir_end de = { .id = s->dirs_done[s->meta_dirs].dir };
			memcpy(batch_add(s, RFS_T_DIR_END, sizeof(de)), &de, sizeof(de));
			if (!de.id || on_ws_path(s, s->ents[de.id].path))
				r = batch_flush(s);
		}
		if (r < 0 || s->meta_next >= s->n_ents)
			break;
		size_t i = s->meta_next++;
		r = send_entry(s, (uint32_t)i);
		r = r ?: s->batch_err;
	}
	return r ?: s->batch_err;
}

/* the mapped files of the working set met so far (the restore reads
 * them): to the miss thread, which sends them at once on its channel, in
 * parallel with the walk (sent by the walk, their data stood in front of
 * the next directory's entries, or after every directory of the working
 * set's paths, the restore waited for the exe's chunk) */
static int send_early(struct rfs_sender *s)
{
	if (!s->n_early)
		return 0;
	if (s->batch_len) {
		/* their entries first */
		int r = batch_flush(s);
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


/* ---- the walk before the freeze, and what changed until the freeze ---- */

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
	return send_entry_as(s, id, RFS_T_UPDATE);
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
		struct inode_key k = { e->st.st_dev, e->st.st_ino, id }, **found = tfind(&k, &s->inodes, cmp_inode);
		if (found && (*found)->id == id) {
			struct inode_key *old = *found;
			tdelete(&k, &s->inodes, cmp_inode);
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
	memcpy(batch_add(s, RFS_T_REMOVE, sizeof(de)), &de, sizeof(de));
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
	int r = add_ent_locked(s, p, &st, d);
	if (r < 0)
		return r;
	s->delta_adds++;
	mark(s, d, D_CHECK | D_DIREND);
	if (!S_ISDIR(st.st_mode))
		return emit(s);
	/* (walk takes the lock for its entries) */
	pthread_mutex_unlock(&s->lock);
	r = walk(s, p, (uint32_t)(s->n_ents - 1));
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
			r = send_entry_as(s, id, RFS_T_UPDATE);
			bits |= D_DIREND;
		}
		if (r >= 0 && bits & D_DIREND) {
			struct rfs_wire_dir_end de = { .id = id };
			memcpy(batch_add(s, RFS_T_DIR_END, sizeof(de)), &de, sizeof(de));
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
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), cmp_name);
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
		if (!bsearch(&leaf, names, n, sizeof(*names), cmp_name))
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
static int delta(struct rfs_sender *s)
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
		r = emit(s);
	pthread_mutex_unlock(&s->lock);
	if (r >= 0 && (s->delta_updates || s->delta_removes || s->delta_adds))
		pr_info("changed between the walk and the freeze: %zu updated, %zu removed, %zu new", s->delta_updates,
			s->delta_removes, s->delta_adds);
	return r ?: s->batch_err;
}

/* the whole tree, the working set's directories first (pre: before the
 * freeze, every directory watched from before its listing) */
static int walk_all(struct rfs_sender *s, bool pre)
{
	s->walking_pre = pre;
	/* (lazy: no working set, the plain walk) */
	s->ws_walked = !s->n_ws;
	int r = walk(s, "", 0);
	s->ws_walked = true;
	for (size_t i = 0; i < s->n_deferred && r >= 0; i++) {
		_cleanup_free_ char *p = xstrdup(s->ents[s->deferred[i]].path);
		r = walk(s, p, s->deferred[i]);
	}
	s->walking_pre = false;
	if (r >= 0)
		r = batch_flush(s);
	return r;
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
		r = presend(s);
		if (r >= 0)
			r = mig_send_empty(s->c, RFS_T_PREWALK);
		if (r >= 0)
			r = walk_all(s, true);
		if (r >= 0) {
			/* the writers again, now that every directory is watched */
			working_set_paths(s);
			s->pre_writers = xrealloc(s->pre_writers, (s->n_pre_writers + s->n_writers + 1) * sizeof(*s->pre_writers));
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
			r = acked ? 0 : read_peer(s, false, &done);
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
		working_set_paths(s);
	/* the entries go as the walk lists them (prewalk: what changed since) */
	r = s->prewalk ? delta(s) : walk_all(s, false);
	if (r >= 0)
		r = send_early(s);
	if (r >= 0)
		r = batch_flush(s);
	if (r < 0)
		return r;
	Dm__RootfsMetaEnd me;
	meta_counts(s, &me);
	r = net_send_msg(s->c, RFS_T_META_END, &me.base);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	make_sched(s);
	for (size_t f = 0; f < s->n_files; f++)
		if (s->files[f].done) /* a miss's during the walk */
			rfs_sched_sent(s->sched, (uint32_t)f, true);
	for (size_t i = 0; i < s->n_touched; i++)
		rfs_sched_touch(s->sched, s->touched[i]);
	working_set(s);
	s->t_walked = s->t_meta_sent = clock_ns();
	s->walk_cpu_ns = thread_cpu_ns() - cpu0;
	presend_close(s);
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
			r = read_peer(s, false, &done);
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
				r = read_peer(s, false, &done);
				if (r < 0)
					return r;
				usleep(5000);
				continue;
			}
		}
		bool fdone;
		r = send_chunk(s, s->c, s->buf, f, c, why, &fdone);
		if (r < 0)
			return r;
		if (!fdone) {
			pthread_mutex_lock(&s->lock);
			rfs_sched_sent(s->sched, f, false);
			pthread_mutex_unlock(&s->lock);
		}
		r = read_peer(s, false, &done);
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
		r = read_peer(s, true, &done);
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
	if (r < 0)
		pr_debug("sender: %s", dm_last_error());
	set_err(s, r < 0 ? r : 0);
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
	s->base_nice = mig_thread_nice();
	s->root = root;
	s->err = 1;
	pthread_mutex_init(&s->lock, NULL);
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
	if (fstat(s->dirfd, &st) < 0 || add_ent(s, "", &st, 0) < 0) {
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
	r = -pthread_create(&s->miss_thread, NULL, miss_thread_main, s);
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
	ws_free(s);
	presend_close(s);
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
