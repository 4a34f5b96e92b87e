/* SPDX-License-Identifier: MIT */
/* The destination's end of the rootfs channel, see rootfs.h. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sync.h"
#include "mem/mem.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	int fd;            /* open while its data arrives */
	uint32_t crc;
	bool arrived;
	bool is_data;      /* a regular file with data of its own */
};

struct rfs_receiver {
	struct net_chan *c;
	char *root;
	int rootfd;
	pthread_t thread;
	bool started;
	struct rent *ents;
	size_t n_ents, cap;
	uint32_t files_announced;
	uint64_t bytes_announced;
	bool meta_done;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;          /* > 0 running, 0 every file in, < 0 error */
	char errmsg[512];
	uint64_t t_start, t_meta, t_done;
	uint64_t files_in, bytes_in;
	/* the lazy view's side (rfs_recv_file etc.): paths sorted for lookups, once the metadata is in */
	uint32_t *by_path;
	uint8_t *asked;          /* entry id -> WANT sent (1 miss, 2 touch) */
	uint64_t opens, hits, misses, miss_wait_ns, miss_wait_max_ns;
	uint64_t t_first_miss;
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

static int make_entry(struct rfs_receiver *r, const Dm__RootfsEntry *m)
{
	const char *leaf;
	int r2;

	if (m->id != r->n_ents || r->meta_done || r->n_ents >= RFS_ENTRIES_MAX)
		return dm_fail(-EBADMSG, "rootfs entry %u out of place", m->id);
	bool is_root = m->id == 0;
	if (is_root ? m->path[0] || !S_ISDIR(m->mode) : !path_ok(m->path))
		return dm_fail(-EBADMSG, "rootfs entry %u: path '%.64s' refused (absolute, '..', or empty part)",
			       m->id, m->path);
	if (r->n_ents == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 1024;
		r->ents = xrealloc(r->ents, r->cap * sizeof(*r->ents));
	}
	struct rent *e = &r->ents[r->n_ents];
	*e = (struct rent){ .path = xstrdup(m->path), .mode = m->mode, .link_id = -1, .fd = -1,
			    .size = m->has_size ? m->size : 0 };
	e->times[0] = ns_ts(m->has_atime_ns ? m->atime_ns : 0);
	e->times[1] = ns_ts(m->has_mtime_ns ? m->mtime_ns : 0);
	r->n_ents++;
	uid_t uid = m->has_uid ? m->uid : 0;
	gid_t gid = m->has_gid ? m->gid : 0;
	mode_t perm = m->mode & 07777;

	if (is_root) {
		if (fchown(r->rootfd, uid, gid) < 0 || fchmod(r->rootfd, perm) < 0)
			return dm_fail(neg_errno(), "%s: %m", r->root);
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
		return set_xattrs(fd, m);
	}
	case S_IFREG: {
		if (m->has_link_id) {
			if (m->link_id >= m->id || !S_ISREG(r->ents[m->link_id].mode) || r->ents[m->link_id].link_id >= 0)
				return dm_fail(-EBADMSG, "%s: hard link to entry %u refused", m->path, m->link_id);
			e->link_id = m->link_id;
			_cleanup_close_ int src = open_beneath(r, r->ents[m->link_id].path, O_PATH, 0);
			if (src < 0)
				return dm_fail(src, "%s: %s", r->ents[m->link_id].path, strerror(-src));
			if (linkat(src, "", pfd, leaf, AT_EMPTY_PATH) < 0)
				return dm_fail(neg_errno(), "%s: link: %m", m->path);
			return 0;
		}
		if (!m->has_size || m->size > (1ULL << 46))
			return dm_fail(-EBADMSG, "%s: bad size", m->path);
		_cleanup_close_ int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		if (ftruncate(fd, (off_t)m->size) < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, perm) < 0 ||
		    futimens(fd, e->times) < 0)
			return dm_fail(neg_errno(), "%s: %m", m->path);
		e->is_data = true;
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

static struct rent *data_ent(struct rfs_receiver *r, uint32_t id)
{
	if (!r->meta_done || id >= r->n_ents)
		return NULL;
	struct rent *e = &r->ents[id];
	if (!S_ISREG(e->mode) || e->link_id >= 0 || e->arrived)
		return NULL;
	return e;
}

static int on_data(struct rfs_receiver *r, uint32_t len, uint8_t *buf)
{
	struct rfs_wire_data h;
	if (len < sizeof(h) || len - sizeof(h) > RFS_CHUNK)
		return dm_fail(-EBADMSG, "rootfs data frame of %u bytes", len);
	int k = net_recv_body(r->c, &h, sizeof(h));
	if (k < 0)
		return k;
	struct rent *e = data_ent(r, h.id);
	if (!e || h.len != len - sizeof(h) || !h.len || h.off > e->size || h.len > e->size - h.off)
		return dm_fail(-EBADMSG, "rootfs data %u+%u of entry %u out of range", (unsigned)h.off, h.len, h.id);
	k = net_recv_body(r->c, buf, h.len);
	if (k < 0)
		return k;
	if (e->fd < 0) {
		e->fd = open_beneath(r, e->path, O_WRONLY | O_NOFOLLOW, 0);
		if (e->fd < 0)
			return dm_fail(e->fd, "%s: %s", e->path, strerror(-e->fd));
		e->crc = (uint32_t)crc32(0, NULL, 0);
	}
	k = pwrite_all(e->fd, buf, h.len, (off_t)h.off);
	if (k < 0)
		return dm_fail(k, "%s: write: %s", e->path, strerror(-k));
	e->crc = (uint32_t)crc32(e->crc, buf, h.len);
	pthread_mutex_lock(&r->lock);
	r->bytes_in += h.len;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int on_file_end(struct rfs_receiver *r, const struct rfs_wire_file_end *fe)
{
	struct rent *e = data_ent(r, fe->id);
	if (!e || fe->reserved)
		return dm_fail(-EBADMSG, "rootfs file end of entry %u out of place", fe->id);
	if (e->fd < 0) {
		/* no data: empty, or holes only */
		e->fd = open_beneath(r, e->path, O_WRONLY | O_NOFOLLOW, 0);
		if (e->fd < 0)
			return dm_fail(e->fd, "%s: %s", e->path, strerror(-e->fd));
		e->crc = (uint32_t)crc32(0, NULL, 0);
	}
	struct stat st;
	if (fstat(e->fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: %m", e->path);
	if (fe->size != e->size || (uint64_t)st.st_size != e->size || fe->crc != e->crc)
		return dm_fail(-EIO, "%s arrived damaged: size %" PRIu64 " (want %" PRIu64 "), crc %08x (want %08x)",
			       e->path, (uint64_t)st.st_size, e->size, e->crc, fe->crc);
	if (futimens(e->fd, e->times) < 0)
		return dm_fail(neg_errno(), "%s: times: %m", e->path);
	close(e->fd);
	e->fd = -1;
	pthread_mutex_lock(&r->lock);
	e->arrived = true;
	r->files_in++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int on_end(struct rfs_receiver *r)
{
	if (!r->meta_done || r->files_in != r->files_announced)
		return dm_fail(-EBADMSG, "rootfs end: %" PRIu64 " of %u files arrived", r->files_in, r->files_announced);
	return 0;
}

static const struct rfs_receiver *sort_r;
static int cmp_by_path(const void *a, const void *b)
{
	return strcmp(sort_r->ents[*(const uint32_t *)a].path, sort_r->ents[*(const uint32_t *)b].path);
}

/* every entry is made: the directories' times (making their entries changed
 * them; the data that follows does not), the path index */
static int on_meta_end(struct rfs_receiver *r)
{
	r->by_path = xcalloc(r->n_ents + 1, sizeof(*r->by_path));
	r->asked = xcalloc(r->n_ents + 1, 1);
	for (size_t i = 0; i < r->n_ents; i++)
		r->by_path[i] = (uint32_t)i;
	sort_r = r;
	qsort(r->by_path, r->n_ents, sizeof(*r->by_path), cmp_by_path);
	for (size_t i = r->n_ents; i-- > 0;) {
		struct rent *e = &r->ents[i];
		if (!S_ISDIR(e->mode))
			continue;
		_cleanup_close_ int fd = i ? open_beneath(r, e->path, O_RDONLY | O_DIRECTORY, 0)
					   : fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0 || futimens(fd, e->times) < 0)
			return dm_fail(fd < 0 ? fd : neg_errno(), "%s: directory times", e->path);
	}
	return 0;
}

static json_t *stats_locked(struct rfs_receiver *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "entries", json_integer((json_int_t)r->n_ents));
	json_object_set_new(j, "files", json_integer((json_int_t)r->files_in));
	json_object_set_new(j, "bytes", json_integer((json_int_t)r->bytes_in));
	json_object_set_new(j, "metadata_ms", r->t_meta ? json_real(ns_to_ms(r->t_start, r->t_meta)) : json_null());
	json_object_set_new(j, "done_ms", r->t_done ? json_real(ns_to_ms(r->t_start, r->t_done)) : json_null());
	/* the lazy view: opens of files of the rootfs, those that had to wait */
	json_object_set_new(j, "opens", json_integer((json_int_t)r->opens));
	json_object_set_new(j, "misses", json_integer((json_int_t)r->misses));
	json_object_set_new(j, "hit_rate", r->opens ? json_real((double)r->hits / (double)r->opens) : json_null());
	json_object_set_new(j, "miss_wait_ms", json_real((double)r->miss_wait_ns / 1e6));
	json_object_set_new(j, "miss_wait_max_ms", json_real((double)r->miss_wait_max_ns / 1e6));
	json_object_set_new(j, "first_miss_ms", r->t_first_miss ? json_real(ns_to_ms(r->t_start, r->t_first_miss)) : json_null());
	return j;
}

static int run(struct rfs_receiver *r)
{
	_cleanup_free_ uint8_t *buf = xmalloc(RFS_CHUNK);
	for (;;) {
		struct net_frame f;
		int k = net_recv_hdr(r->c, &f);
		if (k < 0)
			return dm_wrap(k, "the rootfs channel");
		switch (f.type) {
		case RFS_T_ENTRY:
		case RFS_T_META_END: {
			if (f.len > NET_MSG_MAX)
				return dm_fail(-EBADMSG, "rootfs message of %u bytes", f.len);
			k = net_recv_body(r->c, buf, f.len);
			if (k < 0)
				return k;
			if (f.type == RFS_T_ENTRY) {
				Dm__RootfsEntry *m = dm__rootfs_entry__unpack(NULL, f.len, buf);
				if (!m)
					return dm_fail(-EBADMSG, "malformed rootfs entry");
				k = make_entry(r, m);
				dm__rootfs_entry__free_unpacked(m, NULL);
				if (k < 0)
					return k;
				break;
			}
			Dm__RootfsMetaEnd *m = dm__rootfs_meta_end__unpack(NULL, f.len, buf);
			if (!m)
				return dm_fail(-EBADMSG, "malformed rootfs metadata end");
			bool ok = !r->meta_done && m->entries == r->n_ents && m->files == r->files_announced;
			r->bytes_announced = m->bytes;
			dm__rootfs_meta_end__free_unpacked(m, NULL);
			if (!ok)
				return dm_fail(-EBADMSG, "rootfs metadata end: counts differ (%zu entries, %u files)",
					       r->n_ents, r->files_announced);
			k = on_meta_end(r);
			if (k < 0)
				return k;
			pthread_mutex_lock(&r->lock);
			r->meta_done = true;
			r->t_meta = clock_ns();
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->lock);
			pr_info("metadata of %zu entries in %.0f ms", r->n_ents, ns_to_ms(r->t_start, r->t_meta));
			break;
		}
		case RFS_T_DATA:
			k = on_data(r, f.len, buf);
			if (k < 0)
				return k;
			break;
		case RFS_T_FILE_END: {
			struct rfs_wire_file_end fe;
			if (f.len != sizeof(fe))
				return dm_fail(-EBADMSG, "rootfs file end of %u bytes", f.len);
			k = net_recv_body(r->c, &fe, sizeof(fe));
			if (k >= 0)
				k = on_file_end(r, &fe);
			if (k < 0)
				return k;
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
			json_t *st = stats_locked(r);
			pthread_mutex_unlock(&r->lock);
			k = mig_send_reply(r->c, RFS_T_DONE, true, 0, NULL, 0, st);
			json_decref(st);
			pr_info("%" PRIu64 " files, %.1f MiB in %.0f ms", r->files_in, (double)r->bytes_in / 1048576,
				ns_to_ms(r->t_start, r->t_done));
			return k;
		default:
			return dm_fail(-EBADMSG, "unexpected frame %#x on the rootfs channel", f.type);
		}
	}
}

static void *thread_main(void *arg)
{
	struct rfs_receiver *r = arg;
	int k = run(r);
	pthread_mutex_lock(&r->lock);
	r->err = k < 0 ? k : 0;
	if (k < 0) {
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-k));
		/* tell the source why; it rolls back before the switch-over */
		mig_send_reply(r->c, RFS_T_DONE, false, k, r->errmsg, 0, NULL);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
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

int rfs_recv_start(struct net_chan *c, const char *root, struct rfs_receiver **ret)
{
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return dm_fail(neg_errno(), "%s: %m", root);
	struct rfs_receiver *r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->root = xstrdup(root);
	r->err = 1;
	r->t_start = clock_ns();
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->rootfd < 0) {
		int k = dm_fail(neg_errno(), "%s: %m", root);
		rfs_recv_free(r);
		return k;
	}
	int k = -pthread_create(&r->thread, NULL, thread_main, r);
	if (k < 0) {
		rfs_recv_free(r);
		return dm_fail(k, "cannot start the rootfs receiver: %s", strerror(-k));
	}
	r->started = true;
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

int rfs_recv_wait_meta(struct rfs_receiver *r, int timeout_ms)
{
	uint64_t end = clock_ns() + (uint64_t)timeout_ms * 1000000;
	pthread_mutex_lock(&r->lock);
	while (!r->meta_done && r->err > 0 && clock_ns() < end)
		cond_wait_ms(&r->cond, &r->lock, 100);
	int k = r->meta_done ? 0 : r->err > 0 ? -ETIMEDOUT : r->err;
	pthread_mutex_unlock(&r->lock);
	if (k < 0 && k != -ETIMEDOUT)
		return dm_fail(k, "receiving the files: %s", r->errmsg);
	return k;
}

int64_t rfs_recv_lookup(struct rfs_receiver *r, const char *rel)
{
	if (!r->by_path)
		return -1;
	size_t lo = 0, hi = r->n_ents;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(r->ents[r->by_path[mid]].path, rel);
		if (!c)
			return r->by_path[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void want(struct rfs_receiver *r, uint32_t id, uint32_t kind)
{
	struct rfs_wire_want w = { .id = id, .kind = kind };
	if (net_send_frame(r->c, RFS_T_WANT, &w, sizeof(w)) < 0)
		pr_debug("WANT %u: %s", id, dm_last_error());
}

void rfs_recv_touch(struct rfs_receiver *r, int64_t dir)
{
	if (dir < 0 || (size_t)dir >= r->n_ents || !S_ISDIR(r->ents[dir].mode))
		return;
	pthread_mutex_lock(&r->lock);
	bool send = !(r->asked[dir] & 2) && r->files_in < r->files_announced;
	r->asked[dir] |= 2;
	pthread_mutex_unlock(&r->lock);
	if (send)
		want(r, (uint32_t)dir, RFS_WANT_TOUCH);
}

bool rfs_recv_pending(struct rfs_receiver *r, int64_t id, struct timespec times[2])
{
	if (id < 0 || (size_t)id >= r->n_ents)
		return false;
	struct rent *e = &r->ents[id];
	while (e->link_id >= 0)
		e = &r->ents[e->link_id];
	pthread_mutex_lock(&r->lock);
	bool p = e->is_data && !e->arrived;
	pthread_mutex_unlock(&r->lock);
	if (p && times) {
		times[0] = e->times[0];
		times[1] = e->times[1];
	}
	return p;
}

int rfs_recv_open(struct rfs_receiver *r, int64_t id)
{
	if (id < 0 || (size_t)id >= r->n_ents)
		return 0;
	int64_t d = id;
	while (r->ents[d].link_id >= 0)
		d = r->ents[d].link_id;
	struct rent *e = &r->ents[d];
	if (!e->is_data)
		return 0;
	pthread_mutex_lock(&r->lock);
	r->opens++;
	if (e->arrived) {
		r->hits++;
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	/* a miss: asked for at once, ahead of everything; the caller waits */
	uint64_t t = clock_ns();
	r->misses++;
	if (!r->t_first_miss)
		r->t_first_miss = t;
	bool send = !(r->asked[d] & 1);
	r->asked[d] |= 1;
	pthread_mutex_unlock(&r->lock);
	if (send)
		want(r, (uint32_t)d, RFS_WANT_MISS);
	pthread_mutex_lock(&r->lock);
	while (!e->arrived && r->err > 0)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	int k = e->arrived ? 0 : -EIO;
	uint64_t w = clock_ns() - t;
	r->miss_wait_ns += w;
	r->miss_wait_max_ns = MAX(r->miss_wait_max_ns, w);
	pthread_mutex_unlock(&r->lock);
	return k;
}

bool rfs_recv_all_in(struct rfs_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	bool a = r->err == 0;
	pthread_mutex_unlock(&r->lock);
	return a;
}

void rfs_recv_free(struct rfs_receiver *r)
{
	if (!r)
		return;
	if (r->started) {
		net_chan_shutdown(r->c);
		pthread_join(r->thread, NULL);
	}
	for (size_t i = 0; i < r->n_ents; i++) {
		if (r->ents[i].fd >= 0)
			close(r->ents[i].fd);
		free(r->ents[i].path);
	}
	free(r->ents);
	free(r->by_path);
	free(r->asked);
	if (r->rootfd >= 0)
		close(r->rootfd);
	free(r->root);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
