/* SPDX-License-Identifier: MIT */
/*
 * Regular files and directories.
 *
 * A regular file is reopened by path with its open flags (O_CREAT/O_TRUNC
 * stripped: a restore never creates or truncates a live file), checked
 * against the size and mtime recorded at dump (a file changed since is an
 * error: the process would see other data at its offset), and positioned.
 *
 * A deleted file (ghost_id) is recreated from ghost-<id>.img once, at its
 * old path if that is free (so /proc/PID/fd shows the same name, with
 * " (deleted)"), else next to it, and unlinked at once; we keep one fd of
 * it, and every description or mapping of it is a reopen of that fd through
 * /proc/self/fd.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

static int check_same(const Dm__File *f, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: fstat: %m", f->path);
	if (!S_ISREG(st.st_mode))
		return dm_fail(-ESTALE, "%s is no longer a regular file", f->path);
	if (f->has_size && (uint64_t)st.st_size != f->size)
		return dm_fail(-ESTALE, "%s changed since the checkpoint: size %" PRIu64 ", was %" PRIu64,
			       f->path, (uint64_t)st.st_size, f->size);
	if (f->has_mtime_ns) {
		uint64_t m = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
		if (m != f->mtime_ns)
			return dm_fail(-ESTALE, "%s changed since the checkpoint (mtime differs)", f->path);
	}
	return 0;
}

static int copy_range(int fd, int img, uint64_t off, uint64_t len, const char *name, const Dm__File *f)
{
	off_t in = (off_t)(DM_IMG_DATA_OFF + off), out = (off_t)off;
	int r;

	while (len) {
		ssize_t n = copy_file_range(img, &in, fd, &out, MIN(len, (uint64_t)1 << 30), 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
			lseek(fd, out, SEEK_SET);
			n = sendfile(fd, img, &in, MIN(len, (uint64_t)1 << 30));
			if (n > 0)
				out += n;
		}
		if (n <= 0) {
			r = n < 0 ? neg_errno() : -EIO;
			return dm_fail(r, "%s: copying into %s: %s", name, f->path, strerror(-r));
		}
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * The contents of ghost-<id>.img into fd: only its data extents (the holes
 * stay holes), then the recorded size.  An image without the extent list
 * holds all data.
 */
static int copy_in(int fd, int img, uint64_t len, const char *name, const Dm__File *f)
{
	int r;

	if (f->n_ghost_data % 2)
		return dm_fail(-EBADMSG, "%s: odd number of extent values", name);
	if (!f->n_ghost_data && !f->ghost_data) {
		r = copy_range(fd, img, 0, len, name, f);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < f->n_ghost_data; i += 2) {
		uint64_t off = f->ghost_data[i], n = f->ghost_data[i + 1];
		if (off > len || n > len - off)
			return dm_fail(-EBADMSG, "%s: extent %" PRIu64 "+%" PRIu64 " beyond its %" PRIu64
				       " bytes", name, off, n, len);
		r = copy_range(fd, img, off, n, name, f);
		if (r < 0)
			return r;
	}
	uint64_t size = f->has_size ? f->size : len;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = neg_errno();
		return dm_fail(r, "%s: size: %s", f->path, strerror(-r));
	}
	return 0;
}

/* Owner, group, mode and mtime of a recreated deleted file, as they were. */
static int ghost_meta(int fd, const Dm__File *f)
{
	if ((f->has_uid || f->has_gid) &&
	    fchown(fd, f->has_uid ? f->uid : (uid_t)-1, f->has_gid ? f->gid : (gid_t)-1) < 0)
		return dm_fail(neg_errno(), "deleted file %s: owner %u:%u: %m", f->path, f->uid, f->gid);
	/* after fchown, which clears set-id bits; open() applied our umask */
	if (f->has_mode && fchmod(fd, f->mode & 07777) < 0)
		return dm_fail(neg_errno(), "deleted file %s: mode %o: %m", f->path, f->mode & 07777);
	if (f->has_mtime_ns) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
					  { .tv_sec = (time_t)(f->mtime_ns / 1000000000ULL),
					    .tv_nsec = (long)(f->mtime_ns % 1000000000ULL) } };
		if (futimens(fd, ts) < 0)
			return dm_fail(neg_errno(), "deleted file %s: mtime: %m", f->path);
	}
	return 0;
}

/* Recreate a deleted file; returns our fd of it (kept in fs->ghosts). */
static int ghost_get(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	char name[64], *dir_s, *base_s;
	_cleanup_free_ char *dup1 = NULL, *dup2 = NULL, *alt = NULL;
	_cleanup_close_ int dfd = -1, img = -1, fd = -1;
	uint64_t len;
	int r;

	/* one file per inode: descriptions of the same deleted file have their own ghost ids */
	uint64_t key = f->has_ino ? f->ino : f->ghost_id;
	for (size_t i = 0; i < fs->n_ghosts; i++)
		if (fs->ghosts[i].id == key && fs->ghosts[i].dev == (f->has_dev ? f->dev : ~0ULL)) {
			*ret_fd = fs->ghosts[i].fd;
			return 0;
		}
	snprintf(name, sizeof(name), IMG_GHOST_FMT, f->ghost_id);
	r = image_open_raw(fs->c->img, name, IMG_GHOST, &img, &len);
	if (r < 0)
		return r;
	if (!f->path || f->path[0] != '/')
		return dm_fail(-EBADMSG, "deleted file %" PRIu64 " has no path", f->ghost_id);
	if (!strncmp(f->path, "/memfd:", 7)) {
		/* a memfd mapped privately: remade as a memfd of the same name */
		fd = memfd_create(f->path + 7, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0)
			return dm_fail(neg_errno(), "%s: memfd_create: %m", f->path);
		dfd = -1;
		r = copy_in(fd, img, len, name, f);
		if (r < 0)
			return r;
		r = ghost_meta(fd, f);
		if (r < 0)
			return r;
		goto keep;
	}
	dup1 = xstrdup(f->path);
	dup2 = xstrdup(f->path);
	dir_s = dirname(dup1);
	base_s = basename(dup2);
	r = rst_open_path(fs, dir_s, O_PATH | O_DIRECTORY, 0, &dfd);
	if (r < 0)
		return dm_fail(r, "deleted file %s: its directory: %s", f->path, strerror(-r));
	mode_t mode = f->has_mode ? (f->mode & 07777) : 0600;
	const char *leaf = base_s;
	fd = openat(dfd, leaf, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 && errno == EEXIST) {
		alt = xasprintf("%s.dmigrate-ghost-%" PRIu64, base_s, f->ghost_id);
		leaf = alt;
		fd = openat(dfd, leaf, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	}
	if (fd < 0)
		return dm_fail(neg_errno(), "deleted file %s: cannot recreate it: %m", f->path);
	r = copy_in(fd, img, len, name, f);
	if (r >= 0)
		r = ghost_meta(fd, f);
	if (r < 0) {
		unlinkat(dfd, leaf, 0);
		return r;
	}
	if (unlinkat(dfd, leaf, 0) < 0)
		return dm_fail(neg_errno(), "deleted file %s: unlink: %m", f->path);
keep:
	fs->ghosts = xrealloc(fs->ghosts, (fs->n_ghosts + 1) * sizeof(*fs->ghosts));
	fs->ghosts[fs->n_ghosts].id = key;
	fs->ghosts[fs->n_ghosts].dev = f->has_dev ? f->dev : ~0ULL;
	fs->ghosts[fs->n_ghosts].fd = fd;
	fs->n_ghosts++;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int reopen_fd(int fd, int flags, int *ret_fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int nfd = open(path, flags | O_CLOEXEC);
	if (nfd < 0)
		return neg_errno();
	*ret_fd = nfd;
	return 0;
}

/*
 * A /proc file: its path with the pid of the process (proc_pid, as the tree
 * sees it) replaced by the restored one's, and no size or mtime check.
 */
static int procfs_open(struct rst_files *fs, const Dm__File *f, int flags, int *ret_fd)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct statfs sfs;
	int r;

	if (!f->path || strncmp(f->path, "/proc/", 6))
		return dm_fail(-EBADMSG, "procfs file without a /proc path");
	if (f->has_proc_pid) {
		const char *rest = f->path + 6;
		struct rst_proc *p = rst_find(fs->c, f->proc_pid);
		rest += strspn(rest, "0123456789");
		if (!p || p->host_pid <= 0)
			return dm_fail(-ESRCH, "%s: process %d of the tree is not restored", f->path,
				       f->proc_pid);
		/* /proc/<pid>/task/<pid>/...: the main thread, the same number */
		if (!strncmp(rest, "/task/", 6)) {
			rest += 6 + strspn(rest + 6, "0123456789");
			path = xasprintf("/proc/%d/task/%d%s", p->host_pid, p->host_pid, rest);
		} else {
			path = xasprintf("/proc/%d%s", p->host_pid, rest);
		}
	} else {
		path = xstrdup(f->path);
	}
	r = rst_open_path(fs, path, flags, 0, &fd);
	if (r < 0)
		return dm_fail(r, "%s (now %s): %s", f->path, path, strerror(-r));
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
		return dm_fail(-ESTALE, "%s is no longer a /proc file", path);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int reg_do_open(struct rst_files *fs, const Dm__File *f, int flags, bool is_desc,
		       int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	int r;

	if (f->has_procfs && f->procfs) {
		r = procfs_open(fs, f, flags, &fd);
		if (r < 0)
			return r;
	} else if (f->has_ghost_id) {
		int g = -1;
		r = ghost_get(fs, f, &g);
		if (r < 0)
			return r;
		r = reopen_fd(g, flags, &fd);
		if (r < 0)
			return dm_fail(r, "deleted file %s: reopen: %s", f->path, strerror(-r));
	} else {
		if (!f->path)
			return dm_fail(-EBADMSG, "regular file without a path");
		r = rst_open_path(fs, f->path, flags, 0, &fd);
		if (r < 0)
			return dm_fail(r, "%s: %s", f->path, strerror(-r));
		r = check_same(f, fd);
		if (r < 0)
			return r;
	}
	if (is_desc && f->has_pos && f->pos && !(flags & O_PATH) &&
	    lseek(fd, (off_t)f->pos, SEEK_SET) < 0)
		return dm_fail(neg_errno(), "%s: lseek to %" PRIu64 ": %m", f->path, f->pos);
	if (is_desc && !(flags & O_PATH)) {
		r = rst_set_status_flags(f, fd);
		if (r < 0)
			return dm_fail(r, "%s: status flags: %s", f->path, strerror(-r));
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int reg_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	return reg_do_open(fs, f, rst_open_flags(f), true, ret_fd);
}

int rst_reg_open_for_map(struct rst_files *fs, const Dm__File *f, int accmode, int *ret_fd)
{
	return reg_do_open(fs, f, accmode | O_CLOEXEC, false, ret_fd);
}

static int dir_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	int flags = rst_open_flags(f) | O_DIRECTORY;
	int r;

	if ((flags & O_ACCMODE) != O_RDONLY)
		flags &= ~O_ACCMODE;
	r = rst_open_path(fs, f->path, flags, 0, &fd);
	if (r < 0)
		return dm_fail(r, "%s: %s", f->path, strerror(-r));
	/* a directory offset is a cookie of the file system: best effort */
	if (f->has_pos && f->pos && !(flags & O_PATH) && lseek(fd, (off_t)f->pos, SEEK_SET) < 0)
		pr_warn("%s: cannot restore the directory offset: %m", f->path);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_reg = { .name = "regular file", .open = reg_open };
const struct rst_file_type rst_file_dir = { .name = "directory", .open = dir_open };
