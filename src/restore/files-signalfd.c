/* SPDX-License-Identifier: MIT */
/*
 * signalfd: made with its signal set (the raw 64-bit mask: glibc's sigset
 * functions refuse the signals it keeps for itself).  A signalfd reads the
 * signals of whoever reads it, so making it here is enough.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <sys/signalfd.h>
#include <sys/syscall.h>

static int signalfd_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	uint64_t mask;
	int r;

	(void)fs;
	if (!f->signalfd)
		return dm_fail(-EBADMSG, "signalfd without its signal set");
	mask = f->signalfd->sigmask;
	fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "signalfd (mask %#" PRIx64 "): %m", mask);
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "signalfd: status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_signalfd = { .name = "signalfd", .open = signalfd_open };
