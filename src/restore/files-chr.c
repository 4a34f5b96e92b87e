/* SPDX-License-Identifier: MIT */
/*
 * Character devices without state of their own: the memory devices of
 * major 1 (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, ...),
 * reopened by path.  The device number must match the image's: a path that
 * now names another device would give the process another file.  Devices
 * with state (tun, input, ...) are refused until a module knows them.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static int chr_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	if (f->has_rdev && major(f->rdev) != 1)
		return dm_fail(-ENOTSUP, "%s: character device %u:%u is not supported", f->path,
			       major(f->rdev), minor(f->rdev));
	r = rst_open_path(fs, f->path, rst_open_flags(f), 0, &fd);
	if (r < 0)
		return dm_fail(r, "%s: %s", f->path, strerror(-r));
	if (fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: fstat: %m", f->path);
	if (!S_ISCHR(st.st_mode) || (f->has_rdev && st.st_rdev != f->rdev) ||
	    (!f->has_rdev && major(st.st_rdev) != 1))
		return dm_fail(-ESTALE, "%s: now device %u:%u, not the checkpoint's", f->path,
			       major(st.st_rdev), minor(st.st_rdev));
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "%s: status flags: %s", f->path, strerror(-r));
	if (f->has_pos && f->pos)
		lseek(fd, (off_t)f->pos, SEEK_SET); /* meaningless for most, harmless */
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_chr = { .name = "character device", .open = chr_open };
