/* SPDX-License-Identifier: MIT */
/*
 * memfd: its name, size, seals, and its contents, saved as the shared
 * memory object of its inode (shmem-<ino>.img, sparse), the same one its
 * MAP_SHARED mappings refer to (Vma.shmem_id): fds and mappings, of one
 * process or several, get one object back.  A MAP_PRIVATE mapping of a
 * memfd refers to a File of this type too (dump_file_path), so that its
 * pages not yet copied on write stay those of the memfd.  hugetlb memfds
 * are refused.
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

int dump_memfd_fill(struct dump_ctx *d, int fd, const struct stat *st, const char *what, Dm__File *f)
{
	struct statfs sfs;
	int seals;

	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
		return dm_fail(-ENOTSUP, "%s: a hugetlb memfd (%s) is not supported", what, f->path);
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return dm_fail(neg_errno(), "%s: F_GET_SEALS: %m", what);
	f->type = DM__FILE_TYPE__FILE_MEMFD;
	Dm__MemfdFile *m = f->memfd = PB_NEW(Dm__MemfdFile, dm__memfd_file__init);
	m->name = xstrdup(f->path + strlen("/memfd:"));
	m->shmem_id = st->st_ino;
	m->size = (uint64_t)st->st_size;
	m->has_seals = true;
	m->seals = (uint32_t)seals;
	return dump_shmem_fd(d, fd, st->st_ino, what);
}

static int memfd_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	const struct proc_fd *pf = x->pf;
	char what[80];

	/* a new description for reading: the process's may be write-only */
	_cleanup_close_ int fd = open(x->link, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d (%s): cannot reopen the memfd: %m",
			       x->p->pid, pf->fd, pf->target);
	f->path = xstrdup(pf->target);
	snprintf(what, sizeof(what), "process %d: fd %d (memfd)", x->p->pid, pf->fd);
	return dump_memfd_fill(d, fd, x->st, what, f);
}

const struct dump_fd_type dump_fd_memfd = { .name = "memfd", .match = memfd_match, .dump = memfd_dump };
