/* SPDX-License-Identifier: MIT */
/*
 * memfd: its name, size, seals, and its contents, saved as the shared
 * memory object of its inode (shmem-<ino>.img, sparse), the same one its
 * MAP_SHARED mappings refer to (Vma.shmem_id): fds and mappings, of one
 * process or several, get one object back.  hugetlb memfds are refused.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/statfs.h>

static bool memfd_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_MEMFD;
}

static int memfd_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	const struct proc_fd *pf = x->pf;
	struct statfs sfs;
	char what[64];
	int seals;

	/* a new description for reading: the process's may be write-only */
	_cleanup_close_ int fd = open(x->link, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d (%s): cannot reopen the memfd: %m",
			       x->p->pid, pf->fd, pf->target);
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (a hugetlb memfd)", pf->fd,
			       x->p->pid, pf->target);
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return dm_fail(neg_errno(), "process %d: fd %d (%s): F_GET_SEALS: %m", x->p->pid, pf->fd,
			       pf->target);
	f->type = DM__FILE_TYPE__FILE_MEMFD;
	f->path = xstrdup(pf->target);
	Dm__MemfdFile *m = f->memfd = PB_NEW(Dm__MemfdFile, dm__memfd_file__init);
	m->name = xstrdup(pf->target + strlen("/memfd:"));
	m->shmem_id = x->st->st_ino;
	m->size = (uint64_t)x->st->st_size;
	m->has_seals = true;
	m->seals = (uint32_t)seals;
	snprintf(what, sizeof(what), "process %d: fd %d (memfd)", x->p->pid, pf->fd);
	return dump_shmem_fd(d, fd, x->st->st_ino, what);
}

const struct dump_fd_type dump_fd_memfd = { .name = "memfd", .match = memfd_match, .dump = memfd_dump };
