/* SPDX-License-Identifier: MIT */
/* signalfd: the set of signals it reads, from fdinfo. */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <string.h>

static bool signalfd_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_ANON && x->pf->anon == PROC_ANON_SIGNALFD;
}

static int signalfd_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	uint64_t mask;
	int r = proc_fdinfo_signalfd(x->fi, &mask);

	(void)d;
	if (r < 0)
		return dm_fail(r, "process %d: fd %d (signalfd): its fdinfo has no sigmask: %s",
			       x->p->pid, x->pf->fd, strerror(-r));
	f->type = DM__FILE_TYPE__FILE_SIGNALFD;
	f->signalfd = PB_NEW(Dm__SignalfdFile, dm__signalfd_file__init);
	f->signalfd->sigmask = mask;
	return 0;
}

const struct dump_fd_type dump_fd_signalfd = { .name = "signalfd", .match = signalfd_match,
					       .dump = signalfd_dump };
