/* SPDX-License-Identifier: MIT */
/*
 * Character devices without state of their own, reopened by path: the
 * memory devices null, zero, full, random, urandom (major 1).  Any other
 * device, and a deleted device node, is refused.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <sys/sysmacros.h>

static bool chr_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_FILE && S_ISCHR(x->st->st_mode);
}

static int chr_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	unsigned maj = major(x->st->st_rdev), min = minor(x->st->st_rdev);

	(void)d;
	if (x->pf->deleted)
		return dm_fail(-ENOTSUP, "fd %d of process %d: the device node %s was deleted, it "
			       "cannot be reopened", x->pf->fd, x->p->pid, x->pf->target);
	if (maj != 1 || (min != 3 && min != 5 && min != 7 && min != 8 && min != 9))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: character device %s (%u:%u)",
			       x->pf->fd, x->p->pid, x->pf->target, maj, min);
	f->type = DM__FILE_TYPE__FILE_CHR;
	f->has_rdev = true;
	f->rdev = x->st->st_rdev;
	f->path = xstrdup(x->pf->target);
	return 0;
}

const struct dump_fd_type dump_fd_chr = { .name = "character device", .match = chr_match,
					  .dump = chr_dump };
