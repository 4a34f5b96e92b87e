/* SPDX-License-Identifier: MIT */
/* eventfd: its counter and EFD_SEMAPHORE, from fdinfo. */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <string.h>

static bool eventfd_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_ANON && x->pf->anon == PROC_ANON_EVENTFD;
}

static int eventfd_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	struct proc_eventfd e;
	int r = proc_fdinfo_eventfd(x->fi, &e);

	(void)d;
	if (r < 0)
		return dm_fail(r, "process %d: fd %d (eventfd): its fdinfo has no counter: %s", x->p->pid,
			       x->pf->fd, strerror(-r));
	f->type = DM__FILE_TYPE__FILE_EVENTFD;
	f->eventfd = PB_NEW(Dm__EventfdFile, dm__eventfd_file__init);
	f->eventfd->count = e.count;
	f->eventfd->has_semaphore = true;
	f->eventfd->semaphore = e.semaphore;
	return 0;
}

const struct dump_fd_type dump_fd_eventfd = { .name = "eventfd", .match = eventfd_match,
					      .dump = eventfd_dump };
