/* SPDX-License-Identifier: MIT */
/*
 * memfd: the object is the shared memory object of its id (pages.c:
 * made once with its name and exact size, filled from shmem-<id>.img, and
 * mapped by the processes' MAP_SHARED mappings of it); each description is
 * a new open of it through /proc/self/fd with its own access mode, offset
 * and status flags; a MAP_PRIVATE mapping of it maps such a description
 * too (rst_memfd_open_for_map).  Seals: pages.c adds them when it makes the
 * object, before any mapping (a read-only shared mapping of a write-sealed
 * memfd must not be able to become writable), except F_SEAL_FUTURE_WRITE,
 * which allows the writable mappings that existed: it (and F_SEAL_SEAL with
 * it) is added here once every process has its mappings and fds (finish).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A new description of the memfd of f, opened with flags. */
static int reopen(struct rst_files *fs, const Dm__File *f, int flags, int *ret_fd)
{
	const Dm__MemfdFile *m = f->memfd;
	char path[64];
	int obj, fd, r;

	if (!m || !f->path)
		return dm_fail(-EBADMSG, "memfd without its object");
	r = shmem_get(fs->c, m->shmem_id, f->path, &obj);
	if (r < 0)
		return r;
	if (f->has_mode && fchmod(obj, f->mode & 07777) < 0)
		return dm_fail(neg_errno(), "memfd %s: mode %#o: %m", m->name, f->mode & 07777);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", obj);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "memfd %s: a new description of it: %m", m->name);
	*ret_fd = fd;
	return 0;
}

int rst_memfd_open_for_map(struct rst_files *fs, const Dm__File *f, int accmode, int *ret_fd)
{
	return reopen(fs, f, accmode, ret_fd);
}

static int memfd_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__MemfdFile *m = f->memfd;
	_cleanup_close_ int fd = -1;
	int r = reopen(fs, f, rst_open_flags(f), &fd);

	if (r < 0)
		return r;
	if (f->has_pos && f->pos && lseek(fd, (off_t)f->pos, SEEK_SET) < 0)
		return dm_fail(neg_errno(), "memfd %s: offset %" PRIu64 ": %m", m->name, f->pos);
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "memfd %s: status flags: %s", m->name, strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int memfd_finish(struct rst_files *fs)
{
	const Dm__FileTable *ft = fs->c->ck->files;

	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		int obj, cur, r;

		if (f->type != DM__FILE_TYPE__FILE_MEMFD || !f->memfd->has_seals || !f->memfd->seals)
			continue;
		r = shmem_get(fs->c, f->memfd->shmem_id, f->path, &obj);
		if (r < 0)
			return r;
		cur = fcntl(obj, F_GET_SEALS);
		if (cur < 0)
			return dm_fail(neg_errno(), "memfd %s: F_GET_SEALS: %m", f->memfd->name);
		if (!(f->memfd->seals & ~(unsigned)cur))
			continue; /* another description of the same memfd did it */
		if (fcntl(obj, F_ADD_SEALS, (int)(f->memfd->seals & ~(unsigned)cur)) < 0)
			return dm_fail(neg_errno(), "memfd %s: adding its seals %#x: %m", f->memfd->name,
				       f->memfd->seals);
	}
	return 0;
}

const struct rst_file_type rst_file_memfd = { .name = "memfd", .open = memfd_open,
					      .finish = memfd_finish };
