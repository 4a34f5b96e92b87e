/* SPDX-License-Identifier: MIT */
/*
 * File locks (fcntl POSIX record locks, OFD locks, flock).
 *
 * Who owns a lock decides who takes it back:
 *   OFD, flock   the open file description: taken here, on our fd of the new
 *                description, before it is installed anywhere (the tracees
 *                then share the description and with it the lock);
 *   POSIX        the process (its fd table): taken inside the process by an
 *                injected fcntl(F_SETLK) once its fds are installed, on the
 *                fd it was taken through.  The restorer must never hold one:
 *                closing any fd of the file would drop it.
 * Every lock held at the checkpoint was compatible with the others, so the
 * only conflicts are with processes outside the tree: before injecting, a
 * probe from here (F_GETLK with the lock's own type) names the holder.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/syscall.h>

static void lock_desc(const Dm__FileLock *l, char *buf, size_t size)
{
	const char *kind = l->kind == DM__LOCK_KIND__LOCK_POSIX ? "POSIX"
			 : l->kind == DM__LOCK_KIND__LOCK_OFD	 ? "OFD"
								 : "flock";
	const char *type = l->write ? "WRITE" : "READ";

	if (l->kind == DM__LOCK_KIND__LOCK_FLOCK)
		snprintf(buf, size, "flock %s lock", l->write ? "exclusive" : "shared");
	else if (l->len)
		snprintf(buf, size, "%s %s lock on bytes %" PRIu64 "-%" PRIu64, kind, type, l->start,
			 l->start + l->len - 1);
	else
		snprintf(buf, size, "%s %s lock from byte %" PRIu64 " to the end", kind, type, l->start);
}

static struct flock to_flock(const Dm__FileLock *l)
{
	return (struct flock){ .l_type = l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET,
			       .l_start = (off_t)l->start, .l_len = (off_t)l->len };
}

/* Who holds what conflicts with l on fd (probing as owner cmd's kind), as text. */
static int conflict(int fd, int getcmd, const Dm__FileLock *l, const char *path)
{
	struct flock fl = to_flock(l);
	char what[128];

	lock_desc(l, what, sizeof(what));
	if (fcntl(fd, getcmd, &fl) < 0)
		return dm_fail(neg_errno(), "%s: cannot check the %s: %m", path, what);
	if (fl.l_type == F_UNLCK)
		return 0;
	if (fl.l_pid > 0)
		return dm_fail(-EAGAIN, "%s: the %s cannot be taken back: process %d outside the tree "
			       "holds a conflicting lock", path, what, fl.l_pid);
	if (fl.l_pid < 0)
		return dm_fail(-EAGAIN, "%s: the %s cannot be taken back: an open file outside the tree "
			       "holds a conflicting OFD lock", path, what);
	/* 0: a POSIX lock of a process this pid namespace does not see (the
	 * source's own frozen copy, when both hosts see the same file: shared
	 * storage holds the locks until the source's copy is gone) */
	return dm_fail(-EAGAIN, "%s: the %s cannot be taken back: a process outside this host's view "
		       "holds a conflicting lock (on shared storage: the source's frozen copy)", path, what);
}

int rst_locks_desc(const Dm__File *f, int fd)
{
	const char *path = f->path ? f->path : "file";
	char what[128];

	for (size_t i = 0; i < f->n_locks; i++) {
		const Dm__FileLock *l = f->locks[i];
		lock_desc(l, what, sizeof(what));
		if (l->kind == DM__LOCK_KIND__LOCK_FLOCK) {
			if (flock(fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
				continue;
			if (errno == EWOULDBLOCK)
				return dm_fail(-EAGAIN, "%s: the %s cannot be taken back: a process outside "
					       "the tree holds a conflicting flock lock", path, what);
			return dm_fail(neg_errno(), "%s: %s: %m", path, what);
		}
		struct flock fl = to_flock(l);
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			continue;
		if (errno == EAGAIN || errno == EACCES) {
			int r = conflict(fd, F_OFD_GETLK, l, path);
			if (r < 0)
				return r;
		}
		return dm_fail(neg_errno(), "%s: %s: %m", path, what);
	}
	return 0;
}

int rst_locks_posix(struct rbatch *rb, const Dm__File *f, const Dm__Fd *fd, int desc)
{
	const char *path = f->path ? f->path : "file";
	int r;

	for (size_t i = 0; i < fd->n_posix_locks; i++) {
		const Dm__FileLock *l = fd->posix_locks[i];
		struct flock fl = to_flock(l);
		uint64_t rp;

		r = conflict(desc, F_GETLK, l, path);
		if (r < 0)
			return r;
		r = rb_stage(rb, &fl, sizeof(fl), &rp);
		if (r < 0)
			return r;
		r = rb_add(rb, "fcntl(F_SETLK): a POSIX lock of the checkpoint", SYS_fcntl,
			   (uint64_t)fd->fd, F_SETLK, rp, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}
