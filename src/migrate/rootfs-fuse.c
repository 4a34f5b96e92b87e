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
 * the tree can open it, and only the tree writes it after).  Once every
 * file is in, opens are answered with FUSE passthrough where the kernel has
 * it: reads, writes and mmap of such a file go straight to its copy, and
 * cost no round trip through this process.  libfuse 3.14 has no API for it,
 * so the view mounts with its own /dev/fuse descriptor and reads and writes
 * that device through libfuse's custom I/O hooks, which add the flags to the
 * INIT and OPEN replies (docs/migration.md, "The way out of FUSE").
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
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
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
	/* the device (our own mount, custom I/O) and passthrough */
	int devfd;
	pthread_mutex_t dev_lock;
	bool pt_offered, pt_on;   /* the kernel offered FUSE_PASSTHROUGH; INIT took it */
	uint64_t init_unique;
	struct pt_req *reqs;      /* OPEN and CREATE requests awaiting their replies */
	size_t n_reqs, cap_reqs;
	struct pt_node *nodes;    /* nodes with open files: their io mode */
	size_t n_nodes, cap_nodes;
	_Atomic uint64_t pt_opens, cached_opens, pt_refused;
	struct rfs_view *next;    /* the list of views, for the device hooks */
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
	/* passthrough: whether the kernel took it, and the opens in each io
	 * mode so far (the probe's included) */
	return json_pack("{s:I, s:I, s:f, s:f, s:f, s:b, s:I, s:I, s:I}", "files", (json_int_t)used, "bytes",
			 (json_int_t)bytes, "cold", (double)cold / (double)plain, "warm", (double)warm / (double)plain,
			 "plain_ms", (double)plain / 1e6, "passthrough", v->pt_on, "passthrough_opens",
			 (json_int_t)atomic_load(&v->pt_opens), "cached_opens", (json_int_t)atomic_load(&v->cached_opens),
			 "passthrough_refused", (json_int_t)atomic_load(&v->pt_refused));
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

/* ------------------------------------------------------------ the device */

/*
 * The view's /dev/fuse descriptor is ours (mounted by us, read and written
 * through libfuse's custom I/O), so that the replies libfuse 3.14 builds can
 * carry what it has no API for: FUSE passthrough (Linux 6.9+).
 *
 *  - INIT: where the kernel offers FUSE_PASSTHROUGH, the reply takes it with
 *    a stack depth of 1 (the copy must not itself be a stacked file system;
 *    the view then cannot be stacked under one either).
 *  - OPEN, CREATE: once every file is in, a file's open is answered in
 *    passthrough: its copy's descriptor is registered with the device
 *    (FUSE_DEV_IOC_BACKING_OPEN) and the reply names it (FOPEN_PASSTHROUGH,
 *    backing_id).  The kernel requires one io mode per inode at a time: an
 *    inode with a cached open may not get a passthrough one and the reverse
 *    (the open fails with EIO), and every passthrough open of an inode must
 *    name the same backing file.  So each node with open files keeps its
 *    mode, count and backing id; the mode is chosen again only when its
 *    count is back to 0 (RELEASE), and the backing id is closed then.
 *
 * The kernel's structures are those of linux/fuse.h; the fields newer than
 * Debian 12's headers sit in what they call padding: fuse_open_out's
 * backing_id is its padding, fuse_init_out's max_stack_depth the first word
 * of its unused[].
 */
#define K_FUSE_PASSTHROUGH_HI (1u << (37 - 32)) /* FUSE_PASSTHROUGH, in flags2 */
#define K_FOPEN_PASSTHROUGH (1u << 7)
#define K_FOPEN_NOFLUSH (1u << 5)
struct k_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define K_FUSE_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct k_backing_map)
#define K_FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

struct pt_req {
	uint64_t unique, nodeid;
	uint32_t opcode;
};

enum { PT_NONE, PT_CACHED, PT_PASS };
struct pt_node {
	uint64_t nodeid;
	int mode;
	uint32_t count;
	int32_t backing_id;
	bool had_pass; /* once in passthrough: the page cache may be stale for a cached open
	                * (kept, with its count at 0, until the kernel forgets the node) */
};

static pthread_mutex_t views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rfs_view *views;

static struct rfs_view *view_of_dev(int fd)
{
	pthread_mutex_lock(&views_lock);
	struct rfs_view *v = views;
	while (v && v->devfd != fd)
		v = v->next;
	pthread_mutex_unlock(&views_lock);
	return v;
}

static void views_del(struct rfs_view *v)
{
	pthread_mutex_lock(&views_lock);
	for (struct rfs_view **p = &views; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	pthread_mutex_unlock(&views_lock);
}

static bool passthrough_wanted(void)
{
	return !env_off("DMIGRATE_FUSE_PASSTHROUGH");
}

/* dev_lock held */
static struct pt_node *node_get(struct rfs_view *v, uint64_t nodeid, bool make)
{
	for (size_t i = 0; i < v->n_nodes; i++)
		if (v->nodes[i].nodeid == nodeid)
			return &v->nodes[i];
	if (!make)
		return NULL;
	if (v->n_nodes == v->cap_nodes) {
		v->cap_nodes = v->cap_nodes ? 2 * v->cap_nodes : 64;
		v->nodes = xrealloc(v->nodes, v->cap_nodes * sizeof(*v->nodes));
	}
	v->nodes[v->n_nodes] = (struct pt_node){ .nodeid = nodeid };
	return &v->nodes[v->n_nodes++];
}

/* RELEASE of one open file of nodeid (dev_lock held) */
static void node_release(struct rfs_view *v, uint64_t nodeid)
{
	struct pt_node *n = node_get(v, nodeid, false);
	if (!n || !n->count || --n->count)
		return;
	if (n->backing_id > 0) {
		uint32_t id = (uint32_t)n->backing_id;
		if (ioctl(v->devfd, K_FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
			pr_debug("backing close %u: %m", id);
		n->backing_id = 0;
	}
	n->mode = PT_NONE;
	if (!n->had_pass)
		*n = v->nodes[--v->n_nodes];
}

/* FORGET: the kernel dropped the node's inode, and its page cache with it:
 * nothing of a passthrough past is left to mind (dev_lock held) */
static void node_forget(struct rfs_view *v, uint64_t nodeid)
{
	struct pt_node *n = node_get(v, nodeid, false);
	if (n && !n->count)
		*n = v->nodes[--v->n_nodes];
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	struct fuse_in_header h;
	struct rfs_view *v;

	if (n < (ssize_t)sizeof(h) || !(v = view_of_dev(fd)))
		return n;
	memcpy(&h, buf, sizeof(h));
	pthread_mutex_lock(&v->dev_lock);
	switch (h.opcode) {
	case FUSE_INIT: {
		struct fuse_init_in in = { 0 };
		memcpy(&in, (char *)buf + sizeof(h), MIN(sizeof(in), (size_t)n - sizeof(h)));
		v->init_unique = h.unique;
		v->pt_offered = (in.flags & FUSE_INIT_EXT) && (in.flags2 & K_FUSE_PASSTHROUGH_HI);
		break;
	}
	case FUSE_OPEN:
	case FUSE_CREATE:
		if (v->n_reqs == v->cap_reqs) {
			v->cap_reqs = v->cap_reqs ? 2 * v->cap_reqs : 32;
			v->reqs = xrealloc(v->reqs, v->cap_reqs * sizeof(*v->reqs));
		}
		v->reqs[v->n_reqs++] = (struct pt_req){ h.unique, h.nodeid, h.opcode };
		break;
	case FUSE_RELEASE:
		node_release(v, h.nodeid);
		break;
	case FUSE_FORGET:
		node_forget(v, h.nodeid);
		break;
	case FUSE_BATCH_FORGET: {
		struct fuse_batch_forget_in b;
		size_t off = sizeof(h) + sizeof(b);
		if ((size_t)n < off)
			break;
		memcpy(&b, (char *)buf + sizeof(h), sizeof(b));
		for (uint32_t i = 0; i < b.count && off + sizeof(struct fuse_forget_one) <= (size_t)n; i++) {
			struct fuse_forget_one one;
			memcpy(&one, (char *)buf + off, sizeof(one));
			node_forget(v, one.nodeid);
			off += sizeof(one);
		}
		break;
	}
	}
	pthread_mutex_unlock(&v->dev_lock);
	return n;
}

/* every file in: the view's own state, under its lock */
static bool view_all_in(struct rfs_view *v)
{
	pthread_rwlock_rdlock(&v->lock);
	bool all = !v->r || rfs_recv_all_in(v->r);
	pthread_rwlock_unlock(&v->lock);
	return all;
}

/* the io mode of one open (dev_lock held): oo changed in place; true if it was */
static bool choose_mode(struct rfs_view *v, uint64_t nodeid, struct fuse_open_out *oo)
{
	struct pt_node *n = node_get(v, nodeid, true);
	struct vfile *f = (struct vfile *)(uintptr_t)oo->fh;
	bool pass = v->pt_on && f && f->fd >= 0 &&
		    (n->mode == PT_PASS || (n->mode == PT_NONE && view_all_in(v)));

	if (pass && n->backing_id <= 0) {
		struct k_backing_map map = { .fd = f->fd };
		int id = ioctl(v->devfd, K_FUSE_DEV_IOC_BACKING_OPEN, &map);
		if (id > 0) {
			n->backing_id = id;
		} else {
			if (!atomic_fetch_add(&v->pt_refused, 1))
				pr_warn("passthrough refused for a file (%m): its reads stay in FUSE");
			pass = false;
		}
	}
	if (pass) {
		/* nothing but passthrough (the kernel fails the open with EIO
		 * on any other flag but NOFLUSH; keep_cache among them) */
		oo->open_flags = (oo->open_flags & K_FOPEN_NOFLUSH) | K_FOPEN_PASSTHROUGH;
		oo->padding = (uint32_t)n->backing_id;
		n->mode = PT_PASS;
		n->had_pass = true;
		n->count++;
		atomic_fetch_add(&v->pt_opens, 1);
		return true;
	}
	/* (a node in passthrough always has its backing id: never here) */
	n->mode = PT_CACHED;
	n->count++;
	atomic_fetch_add(&v->cached_opens, 1);
	if (n->had_pass && (oo->open_flags & FOPEN_KEEP_CACHE)) {
		oo->open_flags &= ~(uint32_t)FOPEN_KEEP_CACHE; /* written past the page cache */
		return true;
	}
	return false;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fuse_out_header oh;
	struct rfs_view *v;
	char body[sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)];
	size_t blen = 0;
	bool changed = false;

	if (count < 1 || iov[0].iov_len != sizeof(oh) || !(v = view_of_dev(fd)))
		return writev(fd, iov, count);
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (!oh.unique) /* a notification */
		return writev(fd, iov, count);
	for (int i = 1; i < count; i++) {
		if (blen + iov[i].iov_len > sizeof(body)) {
			blen = SIZE_MAX;
			break;
		}
		memcpy(body + blen, iov[i].iov_base, iov[i].iov_len);
		blen += iov[i].iov_len;
	}
	pthread_mutex_lock(&v->dev_lock);
	if (oh.unique == v->init_unique) {
		v->init_unique = 0;
		struct fuse_init_out io;
		if (!oh.error && blen != SIZE_MAX && blen >= offsetof(struct fuse_init_out, unused) + 4 &&
		    v->pt_offered && passthrough_wanted()) {
			memcpy(&io, body, MIN(sizeof(io), blen));
			if (!(io.flags & FUSE_WRITEBACK_CACHE)) {
				io.flags |= FUSE_INIT_EXT;
				io.flags2 |= K_FUSE_PASSTHROUGH_HI;
				io.unused[0] = 1; /* max_stack_depth */
				memcpy(body, &io, MIN(sizeof(io), blen));
				v->pt_on = changed = true;
			}
		}
	} else {
		for (size_t i = 0; i < v->n_reqs; i++) {
			if (v->reqs[i].unique != oh.unique)
				continue;
			struct pt_req q = v->reqs[i];
			v->reqs[i] = v->reqs[--v->n_reqs];
			size_t off = q.opcode == FUSE_CREATE ? sizeof(struct fuse_entry_out) : 0;
			if (oh.error || blen == SIZE_MAX || blen < off + sizeof(struct fuse_open_out))
				break;
			struct fuse_open_out oo;
			uint64_t nodeid = q.nodeid;
			if (q.opcode == FUSE_CREATE)
				memcpy(&nodeid, body, sizeof(nodeid)); /* fuse_entry_out.nodeid */
			memcpy(&oo, body + off, sizeof(oo));
			if (choose_mode(v, nodeid, &oo)) {
				memcpy(body + off, &oo, sizeof(oo));
				changed = true;
			}
			break;
		}
	}
	pthread_mutex_unlock(&v->dev_lock);
	if (!changed)
		return writev(fd, iov, count);
	struct iovec out[2] = { iov[0], { body, blen } };
	return writev(fd, out, 2);
}

/* mount the view at mnt with a /dev/fuse of our own, its I/O through the hooks above */
static int dev_mount(struct rfs_view *v, const char *mnt)
{
	static const struct fuse_custom_io io = { .read = dev_read, .writev = dev_writev };
	char opts[160];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return dm_fail(neg_errno(), "the lazy view of the files: /dev/fuse: %m");
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions,allow_other",
		 fd, (unsigned)getuid(), (unsigned)getgid());
	/* neither nosuid nor nodev (libfuse's defaults): the tree's own root had
	 * neither, and its setuid programs and device nodes work as they did */
	if (mount("dmigrate-rootfs", mnt, "fuse.dmigrate", 0, opts) < 0) {
		int e = neg_errno();
		close(fd);
		return dm_fail(e, "the lazy view of the files: cannot mount FUSE at %s: %m", mnt);
	}
	v->devfd = fd;
	pthread_mutex_lock(&views_lock);
	v->next = views;
	views = v;
	pthread_mutex_unlock(&views_lock);
	if (fuse_session_custom_io(fuse_get_session(v->f), &io, fd) < 0) {
		views_del(v);
		umount2(mnt, MNT_DETACH);
		close(fd);
		v->devfd = -1;
		return dm_fail(-EIO, "the lazy view of the files: libfuse refused the device");
	}
	return 0;
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
	v->devfd = -1;
	pthread_rwlock_init(&v->lock, NULL);
	pthread_mutex_init(&v->dev_lock, NULL);
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
	k = dev_mount(v, mnt);
	if (k < 0) {
		fuse_destroy(v->f);
		v->f = NULL;
		goto fail;
	}
	k = -pthread_create(&v->thread, NULL, loop_main, v);
	if (k < 0) {
		umount2(v->mnt, MNT_DETACH);
		views_del(v);
		fuse_destroy(v->f); /* closes the device */
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
		/* lazily: a tree still in it keeps it until it leaves */
		umount2(v->mnt, MNT_DETACH);
		pthread_join(v->thread, NULL);
	}
	views_del(v);
	if (v->f)
		fuse_destroy(v->f); /* closes the device */
	free(v->nodes);
	free(v->reqs);
	pthread_mutex_destroy(&v->dev_lock);
	if (v->bfd >= 0)
		close(v->bfd);
	rfs_inomap_put(v->inos);
	pthread_rwlock_destroy(&v->lock);
	free(v->mnt);
	free(v);
}
