/* SPDX-License-Identifier: MIT */
/* eventfd: made with its flags, its counter written back. */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>

static int eventfd_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__EventfdFile *e = f->eventfd;
	_cleanup_close_ int fd = -1;
	int r;

	(void)fs;
	if (!e)
		return dm_fail(-EBADMSG, "eventfd without its counter");
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (e->semaphore ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return dm_fail(neg_errno(), "eventfd: %m");
	if (e->count && write(fd, &e->count, sizeof(e->count)) != sizeof(e->count))
		return dm_fail(neg_errno(), "eventfd: writing its counter %" PRIu64 ": %m", e->count);
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "eventfd: status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_eventfd = { .name = "eventfd", .open = eventfd_open };
