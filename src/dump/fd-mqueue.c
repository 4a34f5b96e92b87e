/* SPDX-License-Identifier: MIT */
/*
 * A POSIX message queue's descriptor: a file of the mqueue file system,
 * "/NAME".  The queue, its attributes and messages are the container's IPC
 * namespace's (container/ipc.c, read before the fds); the descriptor is
 * recorded by name and opened again in the new namespace at restore
 * (restore/files-mqueue.c).  Refused, named: a plain tree's (its queues are
 * the host's namespace's, not dumped) and one whose name was unlinked (the
 * queue is then not in the namespace's list, and no name reaches it).
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#define MQUEUE_MAGIC 0x19800202 /* ipc/mqueue.c: not in linux/magic.h */

static bool mq_match(const struct dump_fd *x)
{
	struct statfs sfs;

	return x->pf->kind == PROC_FD_FILE && S_ISREG(x->st->st_mode) && statfs(x->link, &sfs) == 0 &&
	       sfs.f_type == MQUEUE_MAGIC;
}

/* The container's IPC namespace was dumped and holds a queue of that name. */
static bool queue_dumped(const struct dump_ctx *d, const char *name)
{
	const struct dump_container *ct = d->opts.container;
	if (ct && ct->wait_ipc)
		ct->wait_ipc(ct->arg);
	const Dm__Container *m = ct ? ct->msg : NULL;
	const Dm__ContainerIpc *ipc = m ? m->ipc : NULL;

	for (size_t i = 0; ipc && i < ipc->n_mqueue; i++)
		if (!strcmp(ipc->mqueue[i]->name, name))
			return true;
	return false;
}

static int mq_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	const struct proc_fd *pf = x->pf;
	const char *name = pf->target[0] == '/' ? pf->target + 1 : pf->target;

	if (!d->opts.container)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: the POSIX message queue %s of the "
			       "host's IPC namespace (a queue is restored only with the IPC namespace a "
			       "container's runtime made)", pf->fd, x->p->pid, pf->target);
	if (pf->deleted || strchr(name, '/') || !queue_dumped(d, name))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: the POSIX message queue %s%s is "
			       "not in the container's IPC namespace%s: not restored", pf->fd, x->p->pid,
			       pf->target, pf->deleted ? " (deleted)" : "",
			       pf->deleted ? " (its name was unlinked)" : " that was dumped");
	f->type = DM__FILE_TYPE__FILE_MQUEUE;
	f->mqueue_name = xstrdup(name);
	return 0;
}

const struct dump_fd_type dump_fd_mqueue = { .name = "mqueue", .match = mq_match, .dump = mq_dump };
