/* SPDX-License-Identifier: MIT */
/* The destination's end of the rootfs channels, see rootfs.h.
 *
 * Two threads read: the bulk reader the rootfs channel (metadata, the
 * files in the source's order, END), the miss reader the miss channel (the
 * chunks the view asked for there).  Chunks of one file may come on both,
 * and its FILE_END on either before the other's chunks: a file has arrived
 * once its FILE_END and all its chunks are in, which the thread that
 * completes it checks (finish_file).  Each reader writes through a file
 * descriptor of its own. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"
#include "mem/mem.h"

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

struct rent {
	char *path;
	uint32_t mode;
	uint64_t size;
	struct timespec times[2];
	int64_t link_id;
	int64_t next_link; /* the next name of the same file (a chain from the file's entry), or -1 */
	bool arrived;
	uint8_t end_in;    /* FILE_END came: on CH_BULK, CH_MISS (lock) */
	bool finishing;    /* a reader checks it, the file is complete (lock) */
	uint32_t end_crc;  /* FILE_END's crc of the chunks' crcs */
	int writers;       /* readers writing a chunk of it (lock) */
	bool is_data;      /* a regular file with data of its own */
	bool dir_done;     /* a directory whose entries are all made (DIR_END) */
	bool removed;      /* REMOVE: gone (its id is not used again) */
	uint8_t asked;     /* WANT sent: 1 the whole file, 2 touch (lock) */
	uint32_t n_chunks, n_in;
	uint8_t *chunk_in; /* per chunk: 1 in, 2 asked for, CH_BULK, CH_MISS: came there (lock) */
	uint32_t *crcs;    /* per chunk: crc32 of its data (little-endian) */
};

#define RBLK 4096u
#define ENT(r, id) (&(r)->blk[(size_t)(id) / RBLK][(size_t)(id) % RBLK])

struct rfs_inomap {
	pthread_mutex_t lock;
	int refs;
	uint64_t *copy, *src;    /* copy[k] -> src[k], open addressing on copy; 0: empty */
	uint64_t *srcs;          /* the source's numbers, open addressing */
	size_t mask, n;
};

/* while the restore runs the receiver makes the entries the restore does
 * not look into: it yields the CPU to it (the restore waits for what it
 * needs on the FUSE threads, which keep their priority) */
#define RFS_BACKGROUND_NICE 10

static size_t ino_slot(const uint64_t *t, size_t mask, uint64_t ino)
{
	size_t k = (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 17) & mask;
	while (t[k] && t[k] != ino)
		k = (k + 1) & mask;
	return k;
}

static struct rfs_inomap *inomap_new(void)
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

static void inomap_add(struct rfs_inomap *m, uint64_t copy_ino, uint64_t src_ino)
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

/* what the copy's file system keeps free beside the files (check_room) */
#define RFS_ROOM_MARGIN (16ULL << 20)

/* one channel's reader: the chunk whose DATA frames are arriving, and the
 * file it writes to */
struct rfs_reader {
	struct rfs_receiver *r;
	struct net_chan *c;
	bool miss;              /* the miss channel's */
	pthread_t thread;
	bool started;
	int64_t cur_id;
	uint32_t cur_chunk, cur_crc;
	int fd;                 /* open on entry fd_id, or -1 */
	int64_t fd_id;
};

/* a file of the working set sent before the freeze (PRE_*): an unnamed
 * file in the root until an ENTRY names it (linked there) or META_END */
struct rfs_staged {
	int fd;            /* -1: none could be made (no O_TMPFILE here): its data was dropped */
	uint64_t size, next, bytes;  /* next: where its data may go on (in order) */
	uint32_t crc;
	bool complete;     /* PRE_END came, size and crc right */
};

struct rfs_receiver {
	struct net_chan *c;     /* rootfs: metadata, files, END, DONE */
	struct net_chan *mc;    /* miss: WANTs out, the chunks asked for in */
	struct rfs_reader bulk, miss;
	char *root;
	int rootfd;
	/* entries in blocks that never move (the view holds pointers to
	 * them); a new block and a larger hash table are made under lock */
	struct rent *blk[RFS_ENTRIES_MAX / RBLK + 1];
	size_t n_ents;             /* made (lock for the view) */
	size_t n_made;             /* entries made on disk, files ready for data (lock) */
	uint32_t *hash;            /* path -> entry id + 1, open addressing (lock) */
	struct rfs_inomap *inos;
	size_t hash_mask;
	uint32_t files_announced;
	uint64_t bytes_announced;
	bool prewalk;              /* PREWALK: the entries until META_END may change (lock) */
	bool room_checked;         /* the copy's file system has room for the files */
	struct rfs_staged *staged;  /* the bulk reader's */
	size_t n_staged;
	uint64_t pre_files, pre_bytes;  /* taken in (linked) */
	uint64_t made_ino;         /* the copy's st_ino of the entry just made, if known (0: not) */
	/* the bulk reader's CPU at its first entry (after the freeze; prewalk:
	 * at PREWALK_END), and from then to the resume: what the files cost
	 * while the tree is frozen */
	uint64_t cpu_meta0, cpu_frozen;
	bool cpu_meta0_set;
	bool meta_done;
	bool ended;                /* END handled, DONE on its way: the channels may close (lock) */
	bool stopping;             /* rfs_recv_stop() (lock) */
	int hold;                  /* tests: rfs_recv_test_hold() (lock) */
	bool held;
	uint64_t entry_waits;      /* the miss reader waited for an entry to be made (lock) */
	pthread_mutex_t arrival_lock; /* held while on_arrival runs */
	pid_t tid;                 /* the thread's (lock) */
	bool background;           /* niced while the restore runs (lock) */
	int base_nice;             /* the starter's nice: foreground; background is 10 more */
	int waiting;               /* the tree's threads waiting for data (lock) */
	void (*on_arrival)(void *arg, const char *rel);
	void *on_arrival_arg;
	json_t *(*on_end)(void *arg);  /* every file in, before DONE (arrival_lock) */
	void *on_end_arg;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;          /* > 0 running, 0 every file in, < 0 error */
	char errmsg[512];
	uint64_t t_start, t_meta, t_done;
	uint64_t files_in, bytes_in;
	/* the lazy view's side */
	uint64_t opens, misses, waits, miss_wait_ns, miss_wait_max_ns;
	uint64_t t_resumed, misses_1s;  /* the tree runs here; its misses in the first second after */
	uint64_t t_first_miss;
	char first_miss[128];    /* the path and byte of the first wait */
};

/* relative, no empty, "." or ".." component */
static bool path_ok(const char *p)
{
	if (!*p || *p == '/' || strlen(p) >= RFS_PATH_MAX)
		return false;
	for (const char *c = p; *c;) {
		size_t l = strcspn(c, "/");
		if (!l || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += l;
		if (*c == '/' && !*++c)
			return false;
	}
	return true;
}

/* an fd of path's directory below the root (confined), and its last component */
static int open_beneath(struct rfs_receiver *r, const char *path, int flags, mode_t mode)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = (flags & O_CREAT) ? mode : 0,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
					   RESOLVE_NO_XDEV };
	int fd = (int)syscall(SYS_openat2, r->rootfd, path, &how, sizeof(how));
	return fd < 0 ? neg_errno() : fd;
}

static int parent_of(struct rfs_receiver *r, const char *path, const char **ret_leaf)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*ret_leaf = path;
		return open_beneath(r, ".", O_PATH | O_DIRECTORY, 0);
	}
	_cleanup_free_ char *dir = strndup(path, (size_t)(slash - path));
	*ret_leaf = slash + 1;
	return open_beneath(r, dir, O_PATH | O_DIRECTORY, 0);
}

static struct timespec ns_ts(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
}

static int set_xattrs(int fd, const Dm__RootfsEntry *m)
{
	for (size_t i = 0; i < m->n_xattrs; i++)
		if (fsetxattr(fd, m->xattrs[i]->name, m->xattrs[i]->value.data, m->xattrs[i]->value.len, 0) < 0)
			return dm_fail(neg_errno(), "%s: xattr %s: %m", m->path, m->xattrs[i]->name);
	return 0;
}

static uint32_t path_hash(const char *p)
{
	uint32_t h = 2166136261u;
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

/* (lock) */
static int64_t hash_find(struct rfs_receiver *r, const char *rel)
{
	if (!r->hash)
		return -1;
	for (size_t k = path_hash(rel) & r->hash_mask;; k = (k + 1) & r->hash_mask) {
		uint32_t v = r->hash[k];
		if (!v)
			return -1;
		if (!ENT(r, v - 1)->removed && !strcmp(ENT(r, v - 1)->path, rel))
			return v - 1;
	}
}

/* (lock) */
static void hash_add(struct rfs_receiver *r, uint32_t id)
{
	if (!r->hash || 2 * (id + 1) > r->hash_mask + 1) {
		size_t hs = r->hash ? 2 * (r->hash_mask + 1) : 4096;
		free(r->hash);
		r->hash = xcalloc(hs, sizeof(*r->hash));
		r->hash_mask = hs - 1;
		for (uint32_t i = 0; i < id; i++) {
			size_t k = path_hash(ENT(r, i)->path) & r->hash_mask;
			while (r->hash[k])
				k = (k + 1) & r->hash_mask;
			r->hash[k] = i + 1;
		}
	}
	size_t k = path_hash(ENT(r, id)->path) & r->hash_mask;
	while (r->hash[k])
		k = (k + 1) & r->hash_mask;
	r->hash[k] = id + 1;
}

static int make_entry_at(struct rfs_receiver *r, const Dm__RootfsEntry *m);

/* an entry, and its inode number here against the source's */
static int make_entry_ino(struct rfs_receiver *r, const Dm__RootfsEntry *m);

/* (the miss channel's data may come before its entry is made: its reader
 * waits for n_made) */
static int make_entry(struct rfs_receiver *r, const Dm__RootfsEntry *m)
{
	int k = make_entry_ino(r, m);
	if (k >= 0) {
		pthread_mutex_lock(&r->lock);
		r->n_made = (size_t)m->id + 1;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	return k;
}

static int make_entry_ino(struct rfs_receiver *r, const Dm__RootfsEntry *m)
{
	r->made_ino = 0;
	int k = make_entry_at(r, m);
	if (k < 0 || !m->has_ino)
		return k;
	if (r->made_ino) {
		/* (known from the descriptor it was made with) */
		inomap_add(r->inos, r->made_ino, m->ino);
		return k;
	}
	struct stat st;
	int fd = m->id ? open_beneath(r, m->path, O_PATH | O_NOFOLLOW, 0) : fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return dm_fail(fd, "%s: %s", m->path, strerror(-fd));
	k = fstat(fd, &st) < 0 ? dm_fail(neg_errno(), "%s: %m", m->path) : 0;
	close(fd);
	if (k >= 0)
		inomap_add(r->inos, st.st_ino, m->ino);
	return k;
}

/* A chunk may come twice, once on each channel: the source sends again on
 * the miss channel a chunk the tree is blocked on that it sent on the bulk
 * channel (it may be queued there behind bulk data).  The first to come
 * is written; the other is checked and dropped.  The same for FILE_END. */
enum { CH_BULK = 4, CH_MISS = 8 };

static void want(struct rfs_receiver *r, uint32_t id, uint32_t kind, uint64_t off);

/* the copy's inode number of the entry being made, from fd */
static void note_ino(struct rfs_receiver *r, int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		r->made_ino = st.st_ino;
}

/*
 * A file whose data came before the freeze (m->presend) and did not change
 * since (the source checked): its unnamed copy is linked at leaf, complete.
 * A copy this host could not keep (no O_TMPFILE): an empty file, asked for
 * whole at once on the miss channel.
 */
static int make_present(struct rfs_receiver *r, struct rent *e, const Dm__RootfsEntry *m, int pfd, const char *leaf)
{
	struct rfs_staged *p = m->presend < r->n_staged ? &r->staged[m->presend] : NULL;
	if (!p || (p->fd >= 0 && (!p->complete || p->size != m->size)))
		return dm_fail(-EBADMSG, "%s: names file %u sent before the freeze, which did not come whole", m->path,
			       m->presend);
	uid_t uid = m->has_uid ? m->uid : 0;
	gid_t gid = m->has_gid ? m->gid : 0;
	bool lost = p->fd < 0;
	_cleanup_close_ int fd = -1;
	if (lost) {
		fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)m->size) < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
	} else {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
		if (linkat(AT_FDCWD, proc, pfd, leaf, AT_SYMLINK_FOLLOW) < 0)
			return dm_fail(neg_errno(), "%s: link: %m", m->path);
		fd = TAKE_FD(p->fd);
	}
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, m->mode & 07777) < 0 || futimens(fd, e->times) < 0)
		return dm_fail(neg_errno(), "%s: %m", m->path);
	note_ino(r, fd);
	e->is_data = true;
	e->n_chunks = rfs_chunks(m->size);
	e->chunk_in = xcalloc(e->n_chunks + 1, 1);
	e->crcs = xcalloc(e->n_chunks + 1, sizeof(*e->crcs));
	r->files_announced++;
	int k = set_xattrs(fd, m);
	if (k < 0 || lost) {
		if (k >= 0) {
			/* (made under the lock of nothing: the view cannot see it before its DIR_END) */
			e->asked = 1;
			want(r, m->id, RFS_WANT_MISS, RFS_WANT_WHOLE);
		}
		return k;
	}
	pthread_mutex_lock(&r->lock);
	memset(e->chunk_in, 1 | CH_BULK, e->n_chunks);
	e->n_in = e->n_chunks;
	e->end_in = CH_BULK;
	e->finishing = true;
	e->arrived = true;
	r->files_in++;
	r->pre_files++;
	r->pre_bytes += p->bytes;
	r->bytes_in += p->bytes;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int make_entry_at(struct rfs_receiver *r, const Dm__RootfsEntry *m)
{
	const char *leaf;
	int r2;

	if (m->id != r->n_ents || r->meta_done || r->n_ents >= RFS_ENTRIES_MAX)
		return dm_fail(-EBADMSG, "rootfs entry %u out of place", m->id);
	if (!r->blk[m->id / RBLK]) {
		struct rent *b = xcalloc(RBLK, sizeof(*b));
		pthread_mutex_lock(&r->lock);
		r->blk[m->id / RBLK] = b;
		pthread_mutex_unlock(&r->lock);
	}
	bool is_root = m->id == 0;
	if (is_root ? m->path[0] || !S_ISDIR(m->mode) : !path_ok(m->path))
		return dm_fail(-EBADMSG, "rootfs entry %u: path '%.64s' refused (absolute, '..', or empty part)",
			       m->id, m->path);
	struct rent *e = ENT(r, r->n_ents);
	*e = (struct rent){ .path = xstrdup(m->path), .mode = m->mode, .link_id = -1, .next_link = -1,
			    .size = m->has_size ? m->size : 0 };
	e->times[0] = ns_ts(m->has_atime_ns ? m->atime_ns : 0);
	e->times[1] = ns_ts(m->has_mtime_ns ? m->mtime_ns : 0);
	/* made below; the view finds it once its directory's DIR_END is in */
	pthread_mutex_lock(&r->lock);
	r->n_ents++;
	if (hash_find(r, e->path) >= 0) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EBADMSG, "rootfs entry %u: %.64s sent twice", m->id, m->path);
	}
	hash_add(r, m->id);
	pthread_mutex_unlock(&r->lock);
	uid_t uid = m->has_uid ? m->uid : 0;
	gid_t gid = m->has_gid ? m->gid : 0;
	mode_t perm = m->mode & 07777;

	if (is_root) {
		if (fchown(r->rootfd, uid, gid) < 0 || fchmod(r->rootfd, perm) < 0)
			return dm_fail(neg_errno(), "%s: %m", r->root);
		note_ino(r, r->rootfd);
		return set_xattrs(r->rootfd, m);
	}
	_cleanup_close_ int pfd = parent_of(r, m->path, &leaf);
	if (pfd < 0)
		return dm_fail(pfd, "rootfs entry %s: its directory: %s", m->path, strerror(-pfd));
	switch (m->mode & S_IFMT) {
	case S_IFDIR: {
		/* a container's layer: its directories may be there already (rfs_make_dirs) */
		struct stat dst;
		if (mkdirat(pfd, leaf, 0700) < 0 &&
		    !(errno == EEXIST && fstatat(pfd, leaf, &dst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(dst.st_mode)))
			return dm_fail(neg_errno(), "%s: mkdir: %m", m->path);
		_cleanup_close_ int fd = open_beneath(r, m->path, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0)
			return dm_fail(fd, "%s: %s", m->path, strerror(-fd));
		if (fchown(fd, uid, gid) < 0 || fchmod(fd, perm) < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		note_ino(r, fd);
		return set_xattrs(fd, m);
	}
	case S_IFREG: {
		if (m->has_link_id) {
			if (m->link_id >= m->id || !S_ISREG(ENT(r, m->link_id)->mode) || ENT(r, m->link_id)->link_id >= 0 ||
			    ENT(r, m->link_id)->removed)
				return dm_fail(-EBADMSG, "%s: hard link to entry %u refused", m->path, m->link_id);
			e->link_id = m->link_id;
			e->next_link = ENT(r, m->link_id)->next_link;
			ENT(r, m->link_id)->next_link = m->id;
			_cleanup_close_ int src = open_beneath(r, ENT(r, m->link_id)->path, O_PATH, 0);
			if (src < 0)
				return dm_fail(src, "%s: %s", ENT(r, m->link_id)->path, strerror(-src));
			if (linkat(src, "", pfd, leaf, AT_EMPTY_PATH) < 0)
				return dm_fail(neg_errno(), "%s: link: %m", m->path);
			return 0;
		}
		if (!m->has_size || m->size > (1ULL << 46))
			return dm_fail(-EBADMSG, "%s: bad size", m->path);
		if (m->has_presend)
			return make_present(r, e, m, pfd, leaf);
		_cleanup_close_ int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		if (ftruncate(fd, (off_t)m->size) < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, perm) < 0 ||
		    futimens(fd, e->times) < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		note_ino(r, fd);
		e->is_data = true;
		e->n_chunks = rfs_chunks(m->size);
		e->chunk_in = xcalloc(e->n_chunks + 1, 1);
		e->crcs = xcalloc(e->n_chunks + 1, sizeof(*e->crcs));
		r->files_announced++;
		return set_xattrs(fd, m);
	}
	case S_IFLNK:
		if (!m->target || !m->target[0] || strlen(m->target) >= RFS_PATH_MAX)
			return dm_fail(-EBADMSG, "%s: symlink without a target", m->path);
		/* made as it was; it is never followed here (RESOLVE_NO_SYMLINKS) */
		if (symlinkat(m->target, pfd, leaf) < 0)
			return dm_fail(neg_errno(), "%s: symlink: %m", m->path);
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
		if (mknodat(pfd, leaf, (m->mode & S_IFMT) | 0600, m->has_rdev ? (dev_t)m->rdev : 0) < 0)
			return dm_fail(neg_errno(), "%s: mknod: %m", m->path);
		r2 = fchmodat(pfd, leaf, perm, 0);
		if (r2 < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		break;
	default:
		return dm_fail(-EBADMSG, "%s: file type %#o refused", m->path, m->mode & S_IFMT);
	}
	if (fchownat(pfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return dm_fail(neg_errno(), "%s: chown: %m", m->path);
	if (!S_ISLNK(m->mode) && (m->mode & S_IFMT) != S_IFLNK && fchmodat(pfd, leaf, perm, 0) < 0)
		return dm_fail(neg_errno(), "%s: chmod: %m", m->path);
	if (utimensat(pfd, leaf, e->times, AT_SYMLINK_NOFOLLOW) < 0)
		return dm_fail(neg_errno(), "%s: times: %m", m->path);
	return 0;
}

#define CH_BIT(rd) ((rd)->miss ? CH_MISS : CH_BULK)

/* (lock) the entry of a file with data of its own (arrived or not).  The
 * source sends the files the restore reads on the miss channel as soon as
 * their entries are out on the rootfs channel: the miss reader may get
 * their data first, and waits for the bulk reader to make them (the bulk
 * reader's own data always comes after its entry). */
static struct rent *file_ent(struct rfs_reader *rd, uint32_t id)
{
	struct rfs_receiver *r = rd->r;
	/* (prewalk: the entry may be updated until META_END, which comes
	 * before any data but the files pushed on the miss channel) */
	bool wait = rd->miss && (id >= r->n_made || r->prewalk);
	if (wait && !r->meta_done)
		r->entry_waits++;
	while (wait && !r->meta_done && (id >= r->n_made || r->prewalk) && r->err > 0 && !r->stopping)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	if (id >= r->n_made)
		return NULL;
	struct rent *e = ENT(r, id);
	/* (a removed file has no data: its name may be another entry's now) */
	return e->is_data && !e->removed ? e : NULL;
}

/* the reader's descriptor of entry id, for writing */
static int open_data(struct rfs_reader *rd, uint32_t id, const char *path)
{
	if (rd->fd >= 0 && rd->fd_id == id)
		return rd->fd;
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd_id = -1;
	rd->fd = open_beneath(rd->r, path, O_WRONLY | O_NOFOLLOW, 0);
	if (rd->fd < 0) {
		int k = rd->fd;
		rd->fd = -1;
		return dm_fail(k, "%s: %s", path, strerror(-k));
	}
	rd->fd_id = id;
	return rd->fd;
}

/* DATA: within one chunk, the frames of a chunk together, in order, on
 * one channel; written unless the chunk is in (from the other channel) */
static int on_data(struct rfs_reader *rd, uint32_t len, uint8_t *buf)
{
	struct rfs_receiver *r = rd->r;
	struct rfs_wire_data h;
	if (len < sizeof(h) || len - sizeof(h) > RFS_CHUNK)
		return dm_fail(-EBADMSG, "rootfs data frame of %u bytes", len);
	int k = net_recv_body(rd->c, &h, sizeof(h));
	if (k < 0)
		return k;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, h.id);
	uint64_t c = h.off / RFS_CHUNK;
	bool ok = e && h.len == len - sizeof(h) && h.len && h.off <= e->size && h.len <= e->size - h.off &&
		  (h.off + h.len - 1) / RFS_CHUNK == c &&
		  (rd->cur_id < 0 ? !(e->chunk_in[c] & CH_BIT(rd)) : rd->cur_id == h.id && rd->cur_chunk == c);
	bool write = ok && !(e->chunk_in[c] & 1);
	if (ok)
		e->chunk_in[c] |= CH_BIT(rd);
	if (write)
		e->writers++;
	pthread_mutex_unlock(&r->lock);
	if (!ok)
		return dm_fail(-EBADMSG, "rootfs data %" PRIu64 "+%u of entry %u out of place", h.off, h.len, h.id);
	k = net_recv_body(rd->c, buf, h.len);
	if (k >= 0 && write) {
		int fd = open_data(rd, h.id, e->path);
		k = fd < 0 ? fd : pwrite_all(fd, buf, h.len, (off_t)h.off);
		if (k < 0 && fd >= 0)
			k = dm_fail(k, "%s: write: %s", e->path, strerror(-k));
	}
	if (write) {
		pthread_mutex_lock(&r->lock);
		e->writers--;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	if (k < 0)
		return k;
	if (rd->cur_id < 0) {
		rd->cur_id = h.id;
		rd->cur_chunk = (uint32_t)c;
		rd->cur_crc = (uint32_t)crc32(0, NULL, 0);
	}
	rd->cur_crc = (uint32_t)crc32(rd->cur_crc, buf, h.len);
	if (write) {
		pthread_mutex_lock(&r->lock);
		r->bytes_in += h.len;
		pthread_mutex_unlock(&r->lock);
	}
	return 0;
}

/*
 * File id has its FILE_END and all its chunks: checked (size, crc of the
 * chunks' crcs), its times set, arrived.  Called by the reader that
 * completed it (e->finishing, taken under the lock).
 */
static int finish_file(struct rfs_reader *rd, uint32_t id)
{
	struct rfs_receiver *r = rd->r;
	struct rent *e = ENT(r, id);
	_cleanup_close_ int fd = open_beneath(r, e->path, O_WRONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return dm_fail(fd, "%s: %s", e->path, strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: %m", e->path);
	uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), (const uint8_t *)e->crcs, e->n_chunks * sizeof(*e->crcs));
	if ((uint64_t)st.st_size != e->size || e->end_crc != crc)
		return dm_fail(-EIO, "%s arrived damaged: size %" PRIu64 " (want %" PRIu64 "), crc %08x (want %08x)",
			       e->path, (uint64_t)st.st_size, e->size, crc, e->end_crc);
	if (futimens(fd, e->times) < 0)
		return dm_fail(neg_errno(), "%s: times: %m", e->path);
	/* the readers' descriptors of it go (no chunk of it comes any more) */
	if (rd->fd_id == id) {
		close(rd->fd);
		rd->fd = -1;
		rd->fd_id = -1;
	}
	pthread_mutex_lock(&r->lock);
	/* a write of a chunk that came on both channels at once may be going on */
	while (e->writers)
		cond_wait_ms(&r->cond, &r->lock, 100);
	e->arrived = true;
	r->files_in++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* what the kernel cached of it before (st_blocks, times) is stale now
	 * (not under r->lock: the kernel may wait for a read of the file to end) */
	pthread_mutex_lock(&r->arrival_lock);
	if (r->on_arrival)
		for (int64_t i = id; i >= 0; i = ENT(r, i)->next_link)
			r->on_arrival(r->on_arrival_arg, ENT(r, i)->path);
	pthread_mutex_unlock(&r->arrival_lock);
	return 0;
}

/* (lock) the file is complete and nobody checks it yet: this reader will */
static bool take_finish_locked(struct rent *e)
{
	if (!e->end_in || e->n_in != e->n_chunks || e->finishing)
		return false;
	e->finishing = true;
	return true;
}

/* CHUNK_END: checked, then the tree's reads of it go on (a chunk that came
 * on the other channel first: checked against it, dropped) */
static int on_chunk_end(struct rfs_reader *rd, const struct rfs_wire_chunk_end *ce)
{
	struct rfs_receiver *r = rd->r;
	uint32_t crc = rd->cur_id >= 0 ? rd->cur_crc : (uint32_t)crc32(0, NULL, 0);
	bool had_data = rd->cur_id >= 0;
	bool cur_ok = !had_data || (rd->cur_id == ce->id && rd->cur_chunk == ce->chunk);
	rd->cur_id = -1;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, ce->id);
	if (!e || ce->reserved || ce->chunk >= e->n_chunks || !cur_ok ||
	    (!had_data && e->chunk_in[ce->chunk] & CH_BIT(rd))) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EBADMSG, "rootfs chunk end %u of entry %u out of place", ce->chunk, ce->id);
	}
	e->chunk_in[ce->chunk] |= CH_BIT(rd);
	if (crc != ce->crc || (e->chunk_in[ce->chunk] & 1 && le32toh(e->crcs[ce->chunk]) != crc)) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EIO, "%s arrived damaged: bytes %" PRIu64 "-%" PRIu64 ": crc %08x (want %08x)", e->path,
			       (uint64_t)ce->chunk * RFS_CHUNK, MIN((uint64_t)(ce->chunk + 1) * RFS_CHUNK, e->size), crc,
			       ce->crc);
	}
	if (e->chunk_in[ce->chunk] & 1) {
		/* the other channel's copy is in */
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	e->crcs[ce->chunk] = htole32(crc);
	e->chunk_in[ce->chunk] |= 1;
	e->n_in++;
	bool fin = take_finish_locked(e);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return fin ? finish_file(rd, ce->id) : 0;
}

/* FILE_END: the file is complete once its chunks are in (some may still
 * travel on the other channel); it may come on both channels */
static int on_file_end(struct rfs_reader *rd, const struct rfs_wire_file_end *fe)
{
	struct rfs_receiver *r = rd->r;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, fe->id);
	if (!e || fe->reserved || e->end_in & CH_BIT(rd) || rd->cur_id >= 0) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EBADMSG, "rootfs file end of entry %u out of place", fe->id);
	}
	if (fe->size != e->size || (e->end_in && fe->crc != e->end_crc)) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EIO, "%s arrived damaged: size %" PRIu64 " (want %" PRIu64 "), crc %08x (want %08x)",
			       e->path, fe->size, e->size, fe->crc, e->end_crc);
	}
	bool first = !e->end_in;
	e->end_in |= CH_BIT(rd);
	e->end_crc = fe->crc;
	bool fin = first && take_finish_locked(e);
	pthread_mutex_unlock(&r->lock);
	return fin ? finish_file(rd, fe->id) : 0;
}

/* every entry of a directory is made: its times (making them changed them;
 * nothing below changes them again), and the view may look into it */
static int on_dir_end(struct rfs_receiver *r, const struct rfs_wire_dir_end *de)
{
	/* (again for a directory that changed between the walk and the freeze) */
	if (de->id >= r->n_ents || !S_ISDIR(ENT(r, de->id)->mode) || ENT(r, de->id)->removed ||
	    (ENT(r, de->id)->dir_done && !r->prewalk))
		return dm_fail(-EBADMSG, "rootfs directory end of entry %u out of place", de->id);
	struct rent *e = ENT(r, de->id);
	_cleanup_close_ int fd = de->id ? open_beneath(r, e->path, O_RDONLY | O_DIRECTORY, 0)
					 : fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || futimens(fd, e->times) < 0)
		return dm_fail(fd < 0 ? fd : neg_errno(), "%s: directory times", e->path);
	pthread_mutex_lock(&r->lock);
	e->dir_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* the extended attributes of fd, as m has them (those it had go first) */
static int reset_xattrs(int fd, const Dm__RootfsEntry *m)
{
	char names[8192];
	ssize_t k = flistxattr(fd, names, sizeof(names));
	for (ssize_t o = 0; k > 0 && o < k; o += (ssize_t)strlen(names + o) + 1)
		if (fremovexattr(fd, names + o) < 0 && errno != ENODATA)
			return dm_fail(neg_errno(), "%s: xattr %s: %m", m->path, names + o);
	return set_xattrs(fd, m);
}

/* UPDATE (between PREWALK and META_END): an entry that changed between
 * the walk and the freeze, the same file still: a regular file's data
 * comes again (it is emptied to its new size), a directory's attributes */
static int update_entry(struct rfs_receiver *r, const Dm__RootfsEntry *m)
{
	struct rent *e = m->id < r->n_ents ? ENT(r, m->id) : NULL;
	if (!r->prewalk || r->meta_done || !e || e->removed || (e->mode & S_IFMT) != (m->mode & S_IFMT) ||
	    strcmp(e->path, m->path) || m->has_link_id || e->link_id >= 0 || m->has_presend ||
	    !(S_ISDIR(m->mode) || (S_ISREG(m->mode) && e->is_data)) || (S_ISREG(m->mode) && (!m->has_size || m->size > (1ULL << 46))))
		return dm_fail(-EBADMSG, "rootfs update of entry %u out of place", m->id);
	_cleanup_close_ int fd = !m->id ? fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0)
				: open_beneath(r, m->path, S_ISDIR(m->mode) ? O_RDONLY | O_DIRECTORY : O_WRONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return dm_fail(fd < 0 ? fd : neg_errno(), "%s: %s", m->path, strerror(fd < 0 ? -fd : errno));
	struct timespec times[2] = { ns_ts(m->has_atime_ns ? m->atime_ns : 0), ns_ts(m->has_mtime_ns ? m->mtime_ns : 0) };
	if (S_ISREG(m->mode)) {
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)m->size) < 0 || futimens(fd, times) < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		uint32_t n = rfs_chunks(m->size);
		pthread_mutex_lock(&r->lock);
		if (e->arrived)
			r->files_in--;
		e->arrived = e->finishing = false;
		e->end_in = 0;
		e->asked = 0;
		e->n_in = 0;
		e->size = m->size;
		e->n_chunks = n;
		free(e->chunk_in);
		free(e->crcs);
		e->chunk_in = xcalloc(n + 1, 1);
		e->crcs = xcalloc(n + 1, sizeof(*e->crcs));
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_lock(&r->lock);
	e->mode = m->mode;
	e->times[0] = times[0];
	e->times[1] = times[1];
	pthread_mutex_unlock(&r->lock);
	if (fchown(fd, m->has_uid ? m->uid : 0, m->has_gid ? m->gid : 0) < 0 || fchmod(fd, m->mode & 07777) < 0)
		return dm_fail(neg_errno(), "%s: %m", m->path);
	return reset_xattrs(fd, m);
}

/* REMOVE (between PREWALK and META_END): an entry gone between the walk
 * and the freeze (a directory's entries went before it, the other names
 * of a file before the one that carries its data) */
static int remove_entry(struct rfs_receiver *r, uint32_t id)
{
	struct rent *e = id && id < r->n_ents ? ENT(r, id) : NULL;
	if (!r->prewalk || r->meta_done || !e || e->removed || (e->link_id < 0 && e->next_link >= 0))
		return dm_fail(-EBADMSG, "rootfs removal of entry %u out of place", id);
	const char *leaf;
	_cleanup_close_ int pfd = parent_of(r, e->path, &leaf);
	if (pfd < 0 || unlinkat(pfd, leaf, S_ISDIR(e->mode) ? AT_REMOVEDIR : 0) < 0)
		return dm_fail(pfd < 0 ? pfd : neg_errno(), "%s: remove: %s", e->path, strerror(pfd < 0 ? -pfd : errno));
	pthread_mutex_lock(&r->lock);
	if (e->is_data) {
		r->files_announced--;
		if (e->arrived)
			r->files_in--;
	}
	if (e->link_id >= 0)
		for (struct rent *p = ENT(r, e->link_id); p; p = p->next_link >= 0 ? ENT(r, p->next_link) : NULL)
			if (p->next_link == (int64_t)id) {
				p->next_link = e->next_link;
				break;
			}
	e->removed = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* entries and directory ends, in order: records {type, len, bytes} */
static int on_meta_batch(struct rfs_receiver *r, const uint8_t *buf, uint32_t len)
{
	for (uint32_t off = 0; off < len;) {
		struct rfs_wire_rec h;
		if (len - off < sizeof(h))
			return dm_fail(-EBADMSG, "rootfs metadata: a record cut short");
		memcpy(&h, buf + off, sizeof(h));
		off += sizeof(h);
		if (h.len > len - off)
			return dm_fail(-EBADMSG, "rootfs metadata: a record of %u bytes cut short", h.len);
		int k;
		if (h.type == RFS_T_ENTRY) {
			Dm__RootfsEntry *m = dm__rootfs_entry__unpack(NULL, h.len, buf + off);
			if (!m)
				return dm_fail(-EBADMSG, "malformed rootfs entry");
			k = make_entry(r, m);
			dm__rootfs_entry__free_unpacked(m, NULL);
		} else if (h.type == RFS_T_UPDATE) {
			Dm__RootfsEntry *m = dm__rootfs_entry__unpack(NULL, h.len, buf + off);
			if (!m)
				return dm_fail(-EBADMSG, "malformed rootfs entry");
			k = update_entry(r, m);
			dm__rootfs_entry__free_unpacked(m, NULL);
		} else if (h.type == RFS_T_REMOVE && h.len == sizeof(struct rfs_wire_dir_end)) {
			struct rfs_wire_dir_end de;
			memcpy(&de, buf + off, sizeof(de));
			k = remove_entry(r, de.id);
		} else if (h.type == RFS_T_DIR_END && h.len == sizeof(struct rfs_wire_dir_end)) {
			struct rfs_wire_dir_end de;
			memcpy(&de, buf + off, sizeof(de));
			k = on_dir_end(r, &de);
		} else {
			k = dm_fail(-EBADMSG, "rootfs metadata: a record of type %#x (%u bytes)", h.type, h.len);
		}
		if (k < 0)
			return k;
		off += h.len;
	}
	return 0;
}

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

/* one frame of file data (DATA, CHUNK_END, FILE_END), either channel; 1: not one of those */
static int on_file_frame(struct rfs_reader *rd, const struct net_frame *f, uint8_t *buf)
{
	int k;
	switch (f->type) {
	case RFS_T_DATA:
		return on_data(rd, f->len, buf);
	case RFS_T_CHUNK_END: {
		struct rfs_wire_chunk_end ce;
		if (f->len != sizeof(ce))
			return dm_fail(-EBADMSG, "rootfs chunk end of %u bytes", f->len);
		k = net_recv_body(rd->c, &ce, sizeof(ce));
		return k < 0 ? k : on_chunk_end(rd, &ce);
	}
	case RFS_T_FILE_END: {
		struct rfs_wire_file_end fe;
		if (f->len != sizeof(fe))
			return dm_fail(-EBADMSG, "rootfs file end of %u bytes", f->len);
		k = net_recv_body(rd->c, &fe, sizeof(fe));
		return k < 0 ? k : on_file_end(rd, &fe);
	}
	default:
		return 1;
	}
}

/* the files sent before the freeze are not wanted any more: the unnamed ones go */
static void staged_drop(struct rfs_receiver *r)
{
	for (size_t i = 0; i < r->n_staged; i++)
		if (r->staged[i].fd >= 0) {
			close(r->staged[i].fd);
			r->staged[i].fd = -1;
		}
}

/* PRE_FILE, PRE_DATA, PRE_END (before any entry): a file of the working
 * set, into an unnamed file in the root (O_TMPFILE, the same file system
 * as the copy: linked in place by its ENTRY).  Where none can be made, its
 * data is read and dropped, and its ENTRY asks for it again. */
static int on_pre_frame(struct rfs_receiver *r, const struct net_frame *f, uint8_t *buf)
{
	struct rfs_staged *p;
	int k;
	if (r->n_ents)
		return dm_fail(-EBADMSG, "rootfs: a file sent before the freeze after the entries began");
	if (f->type == RFS_T_PRE_DATA) {
		struct rfs_wire_data h;
		if (f->len < sizeof(h) || f->len - sizeof(h) > RFS_CHUNK)
			return dm_fail(-EBADMSG, "rootfs pre-send data frame of %u bytes", f->len);
		k = net_recv_body(r->c, &h, sizeof(h));
		if (k < 0)
			return k;
		p = r->n_staged ? &r->staged[r->n_staged - 1] : NULL;
		if (!p || p->complete || h.id != r->n_staged - 1 || h.len != f->len - sizeof(h) || !h.len ||
		    h.off < p->next || h.off > p->size || h.len > p->size - h.off)
			return dm_fail(-EBADMSG, "rootfs pre-send data %" PRIu64 "+%u of file %u out of place", h.off, h.len,
				       h.id);
		k = net_recv_body(r->c, buf, h.len);
		if (k < 0)
			return k;
		if (p->fd >= 0 && (k = pwrite_all(p->fd, buf, h.len, (off_t)h.off)) < 0)
			return dm_fail(k, "%s: a file sent before the freeze: write: %s", r->root, strerror(-k));
		p->crc = (uint32_t)crc32(p->crc, buf, h.len);
		p->next = h.off + h.len;
		p->bytes += h.len;
		return 0;
	}
	struct rfs_wire_pre h;
	if (f->len != sizeof(h))
		return dm_fail(-EBADMSG, "rootfs pre-send frame %#x of %u bytes", f->type, f->len);
	k = net_recv_body(r->c, &h, sizeof(h));
	if (k < 0)
		return k;
	if (f->type == RFS_T_PRE_FILE) {
		if (h.pre != r->n_staged || h.crc || h.size > (1ULL << 46) ||
		    (r->n_staged && !r->staged[r->n_staged - 1].complete) || r->n_staged >= RFS_ENTRIES_MAX)
			return dm_fail(-EBADMSG, "rootfs pre-send file %u out of place", h.pre);
		/* room for it (the rest is checked once the walk has told us all) */
		struct statvfs sv;
		if (fstatvfs(r->rootfd, &sv) == 0 && h.size + RFS_ROOM_MARGIN > (uint64_t)sv.f_bavail * sv.f_frsize)
			return dm_fail(-ENOSPC, "not enough disk space here for the files: a file of %" PRIu64
				       " MiB to come in %s, %" PRIu64 " MiB free", (h.size + (1 << 20) - 1) >> 20,
				       r->root, ((uint64_t)sv.f_bavail * sv.f_frsize) >> 20);
		r->staged = xrealloc(r->staged, (r->n_staged + 1) * sizeof(*r->staged));
		p = &r->staged[r->n_staged++];
		*p = (struct rfs_staged){ .size = h.size, .crc = (uint32_t)crc32(0, NULL, 0) };
		/* (tests: $DMIGRATE_TEST_RFS_NO_TMPFILE, a file system without them) */
		p->fd = getenv("DMIGRATE_TEST_RFS_NO_TMPFILE") ? (errno = EOPNOTSUPP, -1)
							       : openat(r->rootfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		struct rlimit rl;
		if (p->fd < 0 && errno == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			/* a container's layer: every file of it is held here until
			 * the walk links it (as many as the hard limit allows) */
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
				p->fd = openat(r->rootfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			else
				errno = EMFILE;
		}
		if (p->fd < 0) {
			pr_info("%s: no unnamed file (%m): the working set comes after the freeze", r->root);
		} else if (ftruncate(p->fd, (off_t)h.size) < 0) {
			return dm_fail(neg_errno(), "%s: a file sent before the freeze: %m", r->root);
		}
		return 0;
	}
	/* PRE_END */
	p = r->n_staged ? &r->staged[r->n_staged - 1] : NULL;
	if (!p || p->complete || h.pre != r->n_staged - 1 || h.size != p->size)
		return dm_fail(-EBADMSG, "rootfs pre-send end of file %u out of place", h.pre);
	if (h.crc != p->crc)
		return dm_fail(-EIO, "a file sent before the freeze arrived damaged: crc %08x (want %08x)", p->crc,
			       h.crc);
	p->complete = true;
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
				k = on_meta_batch(r, buf, f.len);
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
			want(r, 0, RFS_WANT_PREWALKED, 0);
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
			k = on_pre_frame(r, &f, buf);
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
			staged_drop(r);
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
			k = on_file_frame(rd, &f, buf);
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
		k = on_file_frame(rd, &f, buf);
		if (k > 0)
			return dm_fail(-EBADMSG, "unexpected frame %#x on the rootfs miss channel", f.type);
		if (k < 0)
			return k;
	}
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

int rfs_make_dirs(const char *root, Dm__RootfsEntry *const *dirs, size_t n)
{
	struct rfs_receiver r = { .root = (char *)root };
	int k = 0;

	r.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r.rootfd < 0)
		return dm_fail(neg_errno(), "%s: %m", root);
	for (size_t i = 0; i < n && k >= 0; i++) {
		const Dm__RootfsEntry *m = dirs[i];
		const char *leaf;
		if (!path_ok(m->path) || !S_ISDIR(m->mode)) {
			k = dm_fail(-EBADMSG, "layer directory '%.64s' refused", m->path);
			break;
		}
		_cleanup_close_ int pfd = parent_of(&r, m->path, &leaf);
		if (pfd < 0) {
			k = dm_fail(pfd, "layer directory %s: its parent: %s", m->path, strerror(-pfd));
			break;
		}
		if (mkdirat(pfd, leaf, 0700) < 0 && errno != EEXIST) {
			k = dm_fail(neg_errno(), "%s: mkdir: %m", m->path);
			break;
		}
		_cleanup_close_ int fd = open_beneath(&r, m->path, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0) {
			k = dm_fail(fd, "%s: %s", m->path, strerror(-fd));
			break;
		}
		if (fchown(fd, m->has_uid ? m->uid : 0, m->has_gid ? m->gid : 0) < 0 || fchmod(fd, m->mode & 07777) < 0)
			k = dm_fail(neg_errno(), "%s: %m", m->path);
		else
			k = set_xattrs(fd, m);
	}
	close(r.rootfd);
	return k;
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
	r->base_nice = mig_thread_nice();
	r->bulk = (struct rfs_reader){ .r = r, .c = c, .cur_id = -1, .fd = -1, .fd_id = -1 };
	r->miss = (struct rfs_reader){ .r = r, .c = miss, .miss = true, .cur_id = -1, .fd = -1, .fd_id = -1 };
	r->inos = inomap_new();
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

static void want(struct rfs_receiver *r, uint32_t id, uint32_t kind, uint64_t off)
{
	struct rfs_wire_want w = { .id = id, .kind = kind, .off = off };
	if (net_send_frame(r->mc, RFS_T_WANT, &w, sizeof(w)) < 0)
		pr_debug("WANT %u: %s", id, dm_last_error());
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
		want(r, (uint32_t)dir, RFS_WANT_TOUCH, 0);
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
		want(r, (uint32_t)id, RFS_WANT_MISS, RFS_WANT_WHOLE);
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
			want(r, (uint32_t)id, RFS_WANT_MISS, (uint64_t)c * RFS_CHUNK);
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

struct rfs_inomap *rfs_recv_inomap(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->inos->lock);
	r->inos->refs++;
	pthread_mutex_unlock(&r->inos->lock);
	return r->inos;
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
	want(r, 0, RFS_WANT_RESUMED, 0);
}

void rfs_recv_note_miss(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	r->misses++;
	if (r->t_resumed && clock_ns() - r->t_resumed <= 1000000000ull)
		r->misses_1s++;
	pthread_mutex_unlock(&r->lock);
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
	staged_drop(r);
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
