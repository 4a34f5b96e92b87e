/* SPDX-License-Identifier: MIT */
/* The rootfs receiver's entries (rootfs-recv.c): the metadata records of
 * META_BATCH (ENTRY, UPDATE, REMOVE, DIR_END) made on disk below the root,
 * every path resolved beneath it (openat2, no symlink followed), each
 * entry's id found by path (a hash table the lazy view reads too); a file
 * sent before the freeze is linked in place, complete. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-recv-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

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
int rcv_open_beneath(struct rfs_receiver *r, const char *path, int flags, mode_t mode)
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
		return rcv_open_beneath(r, ".", O_PATH | O_DIRECTORY, 0);
	}
	_cleanup_free_ char *dir = strndup(path, (size_t)(slash - path));
	*ret_leaf = slash + 1;
	return rcv_open_beneath(r, dir, O_PATH | O_DIRECTORY, 0);
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
int64_t hash_find(struct rfs_receiver *r, const char *rel)
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
		rcv_inomap_add(r->inos, r->made_ino, m->ino);
		return k;
	}
	struct stat st;
	int fd = m->id ? rcv_open_beneath(r, m->path, O_PATH | O_NOFOLLOW, 0) : fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return dm_fail(fd, "%s: %s", m->path, strerror(-fd));
	k = fstat(fd, &st) < 0 ? dm_fail(neg_errno(), "%s: %m", m->path) : 0;
	close(fd);
	if (k >= 0)
		rcv_inomap_add(r->inos, st.st_ino, m->ino);
	return k;
}

/* the copy's inode number of the entry being made, from fd */
static void note_ino(struct rfs_receiver *r, int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		r->made_ino = st.st_ino;
}

/* fd: the file of entry e, just made, a file with data of its own (none of
 * its chunks in yet) */
static void data_file(struct rfs_receiver *r, struct rent *e, int fd, uint64_t size)
{
	note_ino(r, fd);
	e->is_data = true;
	e->n_chunks = rfs_chunks(size);
	e->chunk_in = xcalloc(e->n_chunks + 1, 1);
	e->crcs = xcalloc(e->n_chunks + 1, sizeof(*e->crcs));
	r->files_announced++;
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
	data_file(r, e, fd, m->size);
	int k = set_xattrs(fd, m);
	if (k < 0 || lost) {
		if (k >= 0) {
			/* (made under the lock of nothing: the view cannot see it before its DIR_END) */
			e->asked = 1;
			rcv_want(r, m->id, RFS_WANT_MISS, RFS_WANT_WHOLE);
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
		_cleanup_close_ int fd = rcv_open_beneath(r, m->path, O_RDONLY | O_DIRECTORY, 0);
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
			_cleanup_close_ int src = rcv_open_beneath(r, ENT(r, m->link_id)->path, O_PATH, 0);
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
		data_file(r, e, fd, m->size);
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

/* every entry of a directory is made: its times (making them changed them;
 * nothing below changes them again), and the view may look into it */
static int on_dir_end(struct rfs_receiver *r, const struct rfs_wire_dir_end *de)
{
	/* (again for a directory that changed between the walk and the freeze) */
	if (de->id >= r->n_ents || !S_ISDIR(ENT(r, de->id)->mode) || ENT(r, de->id)->removed ||
	    (ENT(r, de->id)->dir_done && !r->prewalk))
		return dm_fail(-EBADMSG, "rootfs directory end of entry %u out of place", de->id);
	struct rent *e = ENT(r, de->id);
	_cleanup_close_ int fd = de->id ? rcv_open_beneath(r, e->path, O_RDONLY | O_DIRECTORY, 0)
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
				: rcv_open_beneath(r, m->path, S_ISDIR(m->mode) ? O_RDONLY | O_DIRECTORY : O_WRONLY | O_NOFOLLOW, 0);
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
int rcv_on_meta_batch(struct rfs_receiver *r, const uint8_t *buf, uint32_t len)
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
		_cleanup_close_ int fd = rcv_open_beneath(&r, m->path, O_RDONLY | O_DIRECTORY, 0);
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
