/* SPDX-License-Identifier: MIT */
/*
 * The lazy view of a tree's rootfs on the destination (see rootfs.h): a
 * FUSE file system (libfuse3, the path-based API) over the copy that the
 * receiver fills.  Every operation works on the copy relative to its
 * directory fd; the kernel resolves paths one component at a time (through
 * our getattr), and opens below it use openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), so nothing reaches outside the copy.
 *
 * Caching: entries and attributes are cached by the kernel (1 s) and file
 * pages are kept across opens (kernel_cache: a file's data is final before
 * the tree can open it, and only the tree writes it after).  Reads of data
 * not in the page cache cost a round trip through this process: the price
 * of staying in FUSE once everything has arrived (libfuse 3.14 has no FUSE
 * passthrough; docs/migration.md).
 */
#define FUSE_USE_VERSION 31
#define LOG_PREFIX "rootfs view: "
#include "migrate/rootfs.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* requests the view served, by kind, and the time spent in them (their
 * waits for the files included): what the restore costs through FUSE */
enum { VOP_GETATTR, VOP_READLINK, VOP_READDIR, VOP_OPEN, VOP_READ, VOP_XATTR, _VOP_MAX };
static const char *const vop_names[_VOP_MAX] = { "getattr", "readlink", "readdir", "open", "read", "xattr" };

struct rfs_view {
	_Atomic uint64_t ops[_VOP_MAX], op_ns[_VOP_MAX], op_max_ns[_VOP_MAX];
	struct fuse *f;
	pthread_t thread;
	bool running;
	int bfd;                  /* the copy */
	char *mnt;
	pthread_rwlock_t lock;    /* r: NULL once detached */
	struct rfs_receiver *r;
	struct rfs_receiver *rcv; /* the same, kept to unregister from it */
	struct rfs_inomap *inos;  /* the source's inode numbers (kept after detach) */
	_Atomic pid_t probe_tid;  /* the read-overhead probe's requests are not the tree's */
};

/* an open file of the tree: fi->fh */
struct vfile {
	int fd;
	int64_t id;               /* its entry, -1: the tree's own */
	bool waited;              /* a read of it had to wait (one miss) */
};

static struct vfile *vf(const struct fuse_file_info *fi)
{
	return (struct vfile *)(uintptr_t)fi->fh;
}

static struct rfs_view *view(void)
{
	return fuse_get_context()->private_data;
}

/* a request of the read-overhead probe, not of the tree */
static bool probing(struct rfs_view *v)
{
	pid_t t = atomic_load(&v->probe_tid);
	return t && fuse_get_context()->pid == t;
}

/* "/a/b" -> "a/b", "/" -> "." */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int64_t entry_of(struct rfs_view *v, const char *path)
{
	const char *p = rel(path);
	return rfs_recv_lookup(v->r, strcmp(p, ".") ? p : "");
}

/* (lock) every directory on the way to path is made, path itself if it
 * is one of the source's directories: what the tree sees of them is final */
static int settled(struct rfs_view *v, const char *path)
{
	const char *p = rel(path);
	return v->r ? rfs_recv_wait_path(v->r, strcmp(p, ".") ? p : "") : 0;
}

static int settle(struct rfs_view *v, const char *path)
{
	pthread_rwlock_rdlock(&v->lock);
	int r = settled(v, path);
	pthread_rwlock_unlock(&v->lock);
	return r;
}

/* the directory of path, told to the receiver (its files go next) */
static void touch_parent(struct rfs_view *v, const char *path)
{
	const char *p = rel(path);
	const char *slash = strrchr(p, '/');
	if (!strcmp(p, "."))
		return;
	if (!slash) {
		rfs_recv_touch(v->r, 0);
		return;
	}
	char *d = strndup(p, (size_t)(slash - p));
	rfs_recv_touch(v->r, rfs_recv_lookup(v->r, d));
	free(d);
}

static int open_beneath(struct rfs_view *v, const char *path, int flags, mode_t mode)
{
	/* openat2 refuses what open() ignores: a mode with its type bits (FUSE's
	 * create passes S_IFREG), flags it does not know */
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
				.mode = (flags & O_CREAT) ? (mode & 07777) : 0,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, v->bfd, rel(path), &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* wait for a file's data before the tree may change it */
static int need_data(struct rfs_view *v, const char *path)
{
	int r = 0;
	pthread_rwlock_rdlock(&v->lock);
	if (v->r && (r = settled(v, path)) >= 0 && (r = rfs_recv_open(v->r, entry_of(v, path), true)) > 0)
		rfs_recv_note_miss(v->r);
	pthread_rwlock_unlock(&v->lock);
	return r < 0 ? r : 0;
}

/* a change of the tree's tree shape (rename, rmdir of a directory): only
 * once every file is in, so that the receiver's paths stay true */
static int need_all(struct rfs_view *v)
{
	for (;;) {
		pthread_rwlock_rdlock(&v->lock);
		bool done = !v->r || rfs_recv_all_in(v->r);
		pthread_rwlock_unlock(&v->lock);
		if (done)
			return 0;
		usleep(20000);
	}
}

static void creds(int fd, const char *name, int dirfd)
{
	struct fuse_context *c = fuse_get_context();
	if (fd >= 0) {
		if (fchown(fd, c->uid, c->gid) < 0)
			pr_debug("chown: %m");
	} else if (fchownat(dirfd, name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		pr_debug("chown %s: %m", name);
	}
}

static int v_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = fi ? 0 : settle(v, path);
	if (r < 0)
		return r;
	r = fi ? fstat(vf(fi)->fd, st) : fstatat(v->bfd, rel(path), st, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return -errno;
	st->st_ino = rfs_inomap_get(v->inos, st->st_ino);
	pthread_rwlock_rdlock(&v->lock);
	if (v->r && path) {
		struct timespec ts[2];
		touch_parent(v, path);
		/* a file still arriving shows the times it will have */
		if (S_ISREG(st->st_mode) && rfs_recv_pending(v->r, entry_of(v, path), ts)) {
			st->st_atim = ts[0];
			st->st_mtim = ts[1];
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return 0;
}

static int v_readlink(const char *path, char *buf, size_t size)
{
	int r = settle(view(), path);
	if (r < 0)
		return r;
	ssize_t k = readlinkat(view()->bfd, rel(path), buf, size - 1);
	if (k < 0)
		return -errno;
	buf[k] = 0;
	return 0;
}

static int v_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		     enum fuse_readdir_flags flags)
{
	struct rfs_view *v = view();
	int fd = settle(v, path);
	if (fd < 0)
		return fd;
	fd = open_beneath(v, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	pthread_rwlock_rdlock(&v->lock);
	if (v->r)
		rfs_recv_touch(v->r, entry_of(v, path));
	pthread_rwlock_unlock(&v->lock);
	struct dirent *de;
	while ((de = readdir(d))) {
		/* d_ino as stat says it (the source's numbers) */
		struct stat st = { .st_ino = rfs_inomap_get(v->inos, de->d_ino), .st_mode = DTTOIF(de->d_type) };
		if (fill(buf, de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int new_vfile(struct fuse_file_info *fi, int fd, int64_t id)
{
	struct vfile *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->id = id;
	fi->fh = (uint64_t)(uintptr_t)f;
	return 0;
}

/* A read-only open waits for nothing: its reads wait for the chunks they
 * need.  An open that may change the file waits for all of it. */
static int v_open(const char *path, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int64_t id = -1;
	int r = 0;
	pthread_rwlock_rdlock(&v->lock);
	if (v->r && !probing(v) && (r = settled(v, path)) >= 0) {
		id = entry_of(v, path);
		if ((r = rfs_recv_open(v->r, id, write)) > 0)
			rfs_recv_note_miss(v->r);
	}
	pthread_rwlock_unlock(&v->lock);
	if (r < 0)
		return r;
	int fd = open_beneath(v, path, fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY), 0);
	if (fd < 0)
		return fd;
	fi->keep_cache = 1;
	return new_vfile(fi, fd, id);
}

static int v_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = need_data(v, path); /* O_CREAT of a file that exists (O_TRUNC included) */
	if (r < 0)
		return r;
	int fd = open_beneath(v, path, fi->flags | O_CREAT, mode);
	if (fd < 0)
		return fd;
	creds(fd, NULL, -1);
	return new_vfile(fi, fd, -1);
}

static int v_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	struct vfile *f = vf(fi);
	if (f->id >= 0) {
		int r = 0;
		pthread_rwlock_rdlock(&v->lock);
		/* the chunks it needs (a miss each, asked for at once) */
		if (v->r && (r = rfs_recv_read(v->r, f->id, (uint64_t)off, size)) > 0 && !f->waited) {
			f->waited = true;
			rfs_recv_note_miss(v->r);
		}
		pthread_rwlock_unlock(&v->lock);
		if (r < 0)
			return r;
	}
	ssize_t k = pread(f->fd, buf, size, off);
	return k < 0 ? -errno : (int)k;
}

static int v_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t k = pwrite(vf(fi)->fd, buf, size, off);
	return k < 0 ? -errno : (int)k;
}

static int v_release(const char *path, struct fuse_file_info *fi)
{
	close(vf(fi)->fd);
	free(vf(fi));
	return 0;
}

static int v_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return (datasync ? fdatasync(vf(fi)->fd) : fsync(vf(fi)->fd)) < 0 ? -errno : 0;
}

static int v_statfs(const char *path, struct statvfs *st)
{
	return fstatvfs(view()->bfd, st) < 0 ? -errno : 0;
}

/* parent fd and leaf name of path; *leaf points into path */
static int parent(struct rfs_view *v, const char *path, const char **leaf)
{
	int r = settle(v, path);
	if (r < 0)
		return r;
	const char *p = rel(path);
	const char *slash = strrchr(p, '/');
	if (!slash) {
		*leaf = p;
		return fcntl(v->bfd, F_DUPFD_CLOEXEC, 0);
	}
	*leaf = slash + 1;
	char *d = strndup(p, (size_t)(slash - p));
	int fd = open_beneath(v, d, O_PATH | O_DIRECTORY, 0);
	free(d);
	return fd;
}

static int v_mkdir(const char *path, mode_t mode)
{
	struct rfs_view *v = view();
	const char *leaf;
	int pfd = parent(v, path, &leaf);
	if (pfd < 0)
		return pfd;
	int r = mkdirat(pfd, leaf, mode) < 0 ? -errno : 0;
	if (!r)
		creds(-1, leaf, pfd);
	close(pfd);
	return r;
}

static int v_mknod(const char *path, mode_t mode, dev_t dev)
{
	struct rfs_view *v = view();
	const char *leaf;
	int pfd = parent(v, path, &leaf);
	if (pfd < 0)
		return pfd;
	int r = mknodat(pfd, leaf, mode, dev) < 0 ? -errno : 0;
	if (!r)
		creds(-1, leaf, pfd);
	close(pfd);
	return r;
}

static int v_symlink(const char *target, const char *path)
{
	struct rfs_view *v = view();
	const char *leaf;
	int pfd = parent(v, path, &leaf);
	if (pfd < 0)
		return pfd;
	int r = symlinkat(target, pfd, leaf) < 0 ? -errno : 0;
	if (!r)
		creds(-1, leaf, pfd);
	close(pfd);
	return r;
}

static int v_unlink(const char *path)
{
	struct rfs_view *v = view();
	int r = need_data(v, path); /* the receiver still writes it */
	if (r < 0)
		return r;
	const char *leaf;
	int pfd = parent(v, path, &leaf);
	if (pfd < 0)
		return pfd;
	r = unlinkat(pfd, leaf, 0) < 0 ? -errno : 0;
	close(pfd);
	return r;
}

static int v_rmdir(const char *path)
{
	struct rfs_view *v = view();
	const char *leaf;
	int pfd = parent(v, path, &leaf);
	if (pfd < 0)
		return pfd;
	int r = unlinkat(pfd, leaf, AT_REMOVEDIR) < 0 ? -errno : 0;
	close(pfd);
	return r;
}

static int v_rename(const char *from, const char *to, unsigned int flags)
{
	struct rfs_view *v = view();
	need_all(v);
	const char *lf, *lt;
	int pf = parent(v, from, &lf);
	if (pf < 0)
		return pf;
	int pt = parent(v, to, &lt);
	if (pt < 0) {
		close(pf);
		return pt;
	}
	int r = (int)syscall(SYS_renameat2, pf, lf, pt, lt, flags) < 0 ? -errno : 0;
	close(pf);
	close(pt);
	return r;
}

static int v_link(const char *from, const char *to)
{
	struct rfs_view *v = view();
	int r = need_data(v, from);
	if (r < 0)
		return r;
	int src = open_beneath(v, from, O_PATH, 0);
	if (src < 0)
		return src;
	const char *leaf;
	int pfd = parent(v, to, &leaf);
	if (pfd < 0) {
		close(src);
		return pfd;
	}
	r = linkat(src, "", pfd, leaf, AT_EMPTY_PATH) < 0 ? -errno : 0;
	close(src);
	close(pfd);
	return r;
}

static int v_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = need_data(v, path);
	if (r < 0)
		return r;
	if (fi)
		return fchmod(vf(fi)->fd, mode) < 0 ? -errno : 0;
	return fchmodat(v->bfd, rel(path), mode, 0) < 0 ? -errno : 0;
}

static int v_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = need_data(v, path);
	if (r < 0)
		return r;
	if (fi)
		return fchown(vf(fi)->fd, uid, gid) < 0 ? -errno : 0;
	return fchownat(v->bfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int v_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = need_data(v, path);
	if (r < 0)
		return r;
	if (fi)
		return ftruncate(vf(fi)->fd, size) < 0 ? -errno : 0;
	int fd = open_beneath(v, path, O_WRONLY, 0);
	if (fd < 0)
		return fd;
	r = ftruncate(fd, size) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int v_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct rfs_view *v = view();
	int r = need_data(v, path);
	if (r < 0)
		return r;
	if (fi)
		return futimens(vf(fi)->fd, tv) < 0 ? -errno : 0;
	return utimensat(v->bfd, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* xattrs through /proc/self/fd of an O_PATH fd (no *at forms) */
static int xpath(struct rfs_view *v, const char *path, char buf[64])
{
	int fd = settle(v, path);
	if (fd < 0)
		return fd;
	fd = open_beneath(v, path, O_PATH | O_NOFOLLOW, 0);
	if (fd >= 0)
		snprintf(buf, 64, "/proc/self/fd/%d", fd);
	return fd;
}

static int v_getxattr(const char *path, const char *name, char *val, size_t size)
{
	char p[64];
	int fd = xpath(view(), path, p);
	if (fd < 0)
		return fd;
	ssize_t k = getxattr(p, name, val, size);
	int e = errno;
	close(fd);
	return k < 0 ? -e : (int)k;
}

static int v_listxattr(const char *path, char *list, size_t size)
{
	char p[64];
	int fd = xpath(view(), path, p);
	if (fd < 0)
		return fd;
	ssize_t k = listxattr(p, list, size);
	int e = errno;
	close(fd);
	return k < 0 ? -e : (int)k;
}

static int v_setxattr(const char *path, const char *name, const char *val, size_t size, int flags)
{
	char p[64];
	int fd = xpath(view(), path, p);
	if (fd < 0)
		return fd;
	int r = setxattr(p, name, val, size, flags) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int v_removexattr(const char *path, const char *name)
{
	char p[64];
	int fd = xpath(view(), path, p);
	if (fd < 0)
		return fd;
	int r = removexattr(p, name) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static void *v_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;          /* the source's inode numbers (hard links stay one inode) */
	cfg->readdir_ino = 0;      /* (readdir gives them itself) */
	cfg->kernel_cache = 1;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->nullpath_ok = 0;
	return fuse_get_context()->private_data;
}

static void counted(int op, uint64_t t)
{
	struct rfs_view *v = view();
	if (probing(v))
		return;
	uint64_t ns = clock_ns() - t, max = atomic_load(&v->op_max_ns[op]);
	atomic_fetch_add(&v->ops[op], 1);
	atomic_fetch_add(&v->op_ns[op], ns);
	while (ns > max && !atomic_compare_exchange_weak(&v->op_max_ns[op], &max, ns))
		;
}

static int w_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	uint64_t t = clock_ns();
	int r = v_getattr(path, st, fi);
	counted(VOP_GETATTR, t);
	return r;
}

static int w_readlink(const char *path, char *buf, size_t size)
{
	uint64_t t = clock_ns();
	int r = v_readlink(path, buf, size);
	counted(VOP_READLINK, t);
	return r;
}

static int w_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		     enum fuse_readdir_flags flags)
{
	uint64_t t = clock_ns();
	int r = v_readdir(path, buf, fill, off, fi, flags);
	counted(VOP_READDIR, t);
	return r;
}

static int w_open(const char *path, struct fuse_file_info *fi)
{
	uint64_t t = clock_ns();
	int r = v_open(path, fi);
	counted(VOP_OPEN, t);
	return r;
}

static int w_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	uint64_t t = clock_ns();
	int r = v_read(path, buf, size, off, fi);
	counted(VOP_READ, t);
	return r;
}

static int w_getxattr(const char *path, const char *name, char *val, size_t size)
{
	uint64_t t = clock_ns();
	int r = v_getxattr(path, name, val, size);
	counted(VOP_XATTR, t);
	return r;
}

/*
 * The read overhead of the view once every file is in (the receiver asks
 * before it answers DONE): a sample of the copy's small files (directory
 * order, up to PROBE_FILES files of at most 1 MiB, PROBE_BYTES in all) read
 * from the copy (its page cache), then through the view with its page cache dropped first
 * (every read a round trip through our FUSE threads, as a read the kernel
 * has not cached costs the tree), then through the view again (cached).
 * The ratios are the view's time over the copy's.  Our own requests are
 * left out of the view's counts and the receiver's opens.
 */
#define PROBE_FILES 64
#define PROBE_BYTES (4u << 20)
#define PROBE_DIRS 64

struct probe_file {
	char rel[256];
	off_t size;
};

static size_t probe_pick(int bfd, struct probe_file *pf)
{
	char (*dirs)[256] = xcalloc(PROBE_DIRS, sizeof(*dirs));
	size_t nd = 1, n = 0;
	uint64_t bytes = 0;

	snprintf(dirs[0], sizeof(dirs[0]), ".");
	for (size_t i = 0; i < nd && n < PROBE_FILES && bytes < PROBE_BYTES; i++) {
		int dfd = openat(bfd, dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (!d) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)) && n < PROBE_FILES && bytes < PROBE_BYTES) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char rel[256];
			if (snprintf(rel, sizeof(rel), "%s/%s", dirs[i], de->d_name) >= (int)sizeof(rel))
				continue;
			struct stat st;
			if (fstatat(bfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISDIR(st.st_mode) && nd < PROBE_DIRS) {
				memcpy(dirs[nd++], rel, sizeof(rel));
			} else if (S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= (1 << 20) &&
				   bytes + (uint64_t)st.st_size <= PROBE_BYTES) {
				memcpy(pf[n].rel, rel, sizeof(rel));
				pf[n++].size = st.st_size;
				bytes += (uint64_t)st.st_size;
			}
		}
		closedir(d);
	}
	free(dirs);
	return n;
}

/* ns to read rel below dirfd whole (drop: its page cache first); 0 on error */
static uint64_t probe_read(int dirfd, const char *rel, bool drop, uint8_t *buf, size_t len)
{
	int fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (drop)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	uint64_t t = clock_ns();
	ssize_t k;
	while ((k = read(fd, buf, len)) > 0)
		;
	t = clock_ns() - t;
	close(fd);
	return k < 0 ? 0 : t ? t : 1;
}

static json_t *probe_overhead(void *arg)
{
	struct rfs_view *v = arg;
	_cleanup_free_ struct probe_file *pf = xcalloc(PROBE_FILES, sizeof(*pf));
	_cleanup_free_ uint8_t *buf = xmalloc(1 << 20);
	_cleanup_close_ int mfd = open(v->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t n = probe_pick(v->bfd, pf), used = 0;
	uint64_t plain = 0, cold = 0, warm = 0, bytes = 0;

	if (mfd < 0 || !n)
		return NULL;
	atomic_store(&v->probe_tid, (pid_t)syscall(SYS_gettid));
	for (size_t i = 0; i < n; i++) {
		/* the copy twice: the second read is of its page cache, as the
		 * view's own reads of it are */
		uint64_t p = probe_read(v->bfd, pf[i].rel, false, buf, 1 << 20);
		p = p ? probe_read(v->bfd, pf[i].rel, false, buf, 1 << 20) : 0;
		uint64_t c = p ? probe_read(mfd, pf[i].rel, true, buf, 1 << 20) : 0;
		uint64_t w = c ? probe_read(mfd, pf[i].rel, false, buf, 1 << 20) : 0;
		if (!w)
			continue; /* gone meanwhile (the tree runs) */
		plain += p;
		cold += c;
		warm += w;
		bytes += (uint64_t)pf[i].size;
		used++;
	}
	atomic_store(&v->probe_tid, 0);
	if (!used)
		return NULL;
	return json_pack("{s:I, s:I, s:f, s:f, s:f}", "files", (json_int_t)used, "bytes", (json_int_t)bytes,
			 "cold", (double)cold / (double)plain, "warm", (double)warm / (double)plain, "plain_ms",
			 (double)plain / 1e6);
}

json_t *rfs_view_stats(struct rfs_view *v)
{
	json_t *j = json_object();
	for (int op = 0; v && op < _VOP_MAX; op++) {
		uint64_t n = atomic_load(&v->ops[op]);
		if (n)
			json_object_set_new(j, vop_names[op],
					    json_pack("{s:I, s:f, s:f}", "n", (json_int_t)n, "ms",
						      (double)atomic_load(&v->op_ns[op]) / 1e6, "max_ms",
						      (double)atomic_load(&v->op_max_ns[op]) / 1e6));
	}
	return j;
}

static const struct fuse_operations ops = {
	.init = v_init,
	.getattr = w_getattr,
	.readlink = w_readlink,
	.readdir = w_readdir,
	.open = w_open,
	.create = v_create,
	.read = w_read,
	.write = v_write,
	.release = v_release,
	.fsync = v_fsync,
	.statfs = v_statfs,
	.mkdir = v_mkdir,
	.mknod = v_mknod,
	.symlink = v_symlink,
	.unlink = v_unlink,
	.rmdir = v_rmdir,
	.rename = v_rename,
	.link = v_link,
	.chmod = v_chmod,
	.chown = v_chown,
	.truncate = v_truncate,
	.utimens = v_utimens,
	.getxattr = w_getxattr,
	.listxattr = v_listxattr,
	.setxattr = v_setxattr,
	.removexattr = v_removexattr,
};

/* a file arrived: what the kernel cached of its names (st_blocks and the
 * times of before, pages) goes; the next stat asks us again */
static void on_arrival(void *arg, const char *path)
{
	struct rfs_view *v = arg;
	char p[RFS_PATH_MAX + 2];
	snprintf(p, sizeof(p), "/%s", path);
	int r = fuse_invalidate_path(v->f, p);
	if (r < 0 && r != -ENOENT)
		pr_debug("invalidate %s: %s", p, strerror(-r));
}

static void *loop_main(void *arg)
{
	struct rfs_view *v = arg;
	fuse_loop_mt(v->f, 0);
	return NULL;
}

int rfs_view_start(struct rfs_receiver *r, const char *backing, const char *mnt, struct rfs_view **ret)
{
	struct rfs_view *v = xcalloc(1, sizeof(*v));
	char *argv[] = { "dmigrated-rootfs", "-o", "allow_other,default_permissions,fsname=dmigrate-rootfs,"
						  "subtype=dmigrate",
			 NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int k;

	v->r = r;
	v->bfd = -1;
	pthread_rwlock_init(&v->lock, NULL);
	v->mnt = xstrdup(mnt);
	v->bfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->bfd < 0) {
		k = dm_fail(neg_errno(), "%s: %m", backing);
		goto fail;
	}
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST) {
		k = dm_fail(neg_errno(), "%s: %m", mnt);
		goto fail;
	}
	v->f = fuse_new(&args, &ops, sizeof(ops), v);
	fuse_opt_free_args(&args);
	if (!v->f) {
		k = dm_fail(-EIO, "the lazy view of the files: libfuse refused its options");
		goto fail;
	}
	if (fuse_mount(v->f, mnt) < 0) {
		k = dm_fail(-EIO, "the lazy view of the files: cannot mount FUSE at %s (is /dev/fuse there?)", mnt);
		fuse_destroy(v->f);
		v->f = NULL;
		goto fail;
	}
	k = -pthread_create(&v->thread, NULL, loop_main, v);
	if (k < 0) {
		fuse_unmount(v->f);
		fuse_destroy(v->f);
		v->f = NULL;
		dm_fail(k, "the lazy view: no thread: %s", strerror(-k));
		goto fail;
	}
	v->running = true;
	v->rcv = r;
	v->inos = rfs_recv_inomap(r);
	rfs_recv_on_arrival(r, on_arrival, v);
	rfs_recv_on_end(r, probe_overhead, v);
	*ret = v;
	return 0;
fail:
	rfs_view_free(v);
	return k;
}

void rfs_view_detach(struct rfs_view *v)
{
	if (!v)
		return;
	pthread_rwlock_wrlock(&v->lock);
	v->r = NULL;
	pthread_rwlock_unlock(&v->lock);
	if (v->rcv) {
		rfs_recv_on_arrival(v->rcv, NULL, NULL);
		rfs_recv_on_end(v->rcv, NULL, NULL);
	}
	v->rcv = NULL;
}

void rfs_view_free(struct rfs_view *v)
{
	if (!v)
		return;
	rfs_view_detach(v);
	if (v->running) {
		fuse_exit(v->f);
		fuse_unmount(v->f);
		pthread_join(v->thread, NULL);
	}
	if (v->f)
		fuse_destroy(v->f);
	if (v->bfd >= 0)
		close(v->bfd);
	rfs_inomap_put(v->inos);
	pthread_rwlock_destroy(&v->lock);
	free(v->mnt);
	free(v);
}
