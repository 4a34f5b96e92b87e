/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd of a restored process (uffd.h), and the lazy hook where
 * post-copy plugs in (restore.h).
 *
 * rst_uffd_open(), for the eager fill (pages.c, right after the address
 * space is mapped) and for the lazy hook alike:
 *
 *   fd = userfaultfd(O_CLOEXEC | O_NONBLOCK)          injected
 *   ioctl(fd, UFFDIO_API)                              alone (features read back)
 *   ioctl(fd, UFFDIO_REGISTER)                         one batch: every area, whole
 *   pidfd_getfd(pid, fd)                               the uffd is ours now
 *   close(fd)                                          injected
 *
 * The fd exists inside the process only between the first and the last
 * step, at the lowest free number, and nothing of the image is restored
 * meanwhile.  Credentials are still ours (userfaultfd() needs privileges
 * here, and UFFD_USER_MODE_ONLY would turn the kernel's own accesses into
 * EFAULT).
 *
 * The lazy hook runs once a process's own fds are in place and before its
 * credentials drop: every VMA holding lazy pages is registered and the
 * callback gets the uffd.  Pages already in place (non-lazy, and the eager
 * ones written by pages.c) never fault.  The eager fill's own uffd is closed
 * by then (an area is registered on one uffd at a time).
 */
#define LOG_PREFIX "restore: "
#include "restore/uffd.h"
#include "base/log.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

int rst_uffd_open(struct rst_ctx *c, struct rst_proc *p, const struct restore_lazy_area *areas,
		  size_t n, uint64_t features, int *ret_fd, uint64_t *ret_features)
{
	const Dm__Process *ip = p->img;
	int r, local = -1;
	long ufd;

	ufd = rst_inject(c, rst_main(p), SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	if (ufd < 0)
		return dm_fail((int)ufd, "pid %d: userfaultfd: %s", ip->pid, strerror((int)-ufd));

	struct rbatch *rb = xmalloc(sizeof(*rb));
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	uint64_t rapi = 0;
	rb_init(rb, c, rst_main(p));
	r = rb_stage(rb, &api, sizeof(api), &rapi);
	if (r >= 0)
		r = rb_add(rb, "ioctl(UFFDIO_API)", SYS_ioctl, (uint64_t)ufd, UFFDIO_API, rapi, 0, 0, 0);
	if (r >= 0)
		r = rb_run(rb); /* alone: its output is read back below */
	if (r >= 0) {
		const struct uffdio_api *got = batch_local(&rb->b, rapi);
		api.features = got ? got->features : 0;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct uffdio_register reg = {
			.range = { areas[i].start, areas[i].end - areas[i].start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		uint64_t rreg;
		r = rb_stage(rb, &reg, sizeof(reg), &rreg);
		if (r >= 0)
			r = rb_add(rb, "ioctl(UFFDIO_REGISTER)", SYS_ioctl, (uint64_t)ufd,
				   UFFDIO_REGISTER, rreg, 0, 0, 0);
	}
	if (r >= 0)
		r = rb_run(rb);
	free(rb);
	if (r >= 0) {
		local = (int)syscall(SYS_pidfd_getfd, p->pidfd, (int)ufd, 0);
		if (local < 0)
			r = dm_fail(neg_errno(), "pid %d: pidfd_getfd of its uffd: %m", ip->pid);
	}
	long cr = rst_inject(c, rst_main(p), SYS_close, (uint64_t)ufd, 0, 0, 0, 0, 0);
	if (r >= 0 && cr < 0)
		r = dm_fail((int)cr, "pid %d: closing its uffd: %s", ip->pid, strerror((int)-cr));
	if (r < 0) {
		if (local >= 0)
			close(local);
		return r;
	}
	*ret_fd = local;
	if (ret_features)
		*ret_features = api.features;
	return 0;
}

int lazy_register(struct rst_ctx *c, struct rst_proc *p)
{
	const Dm__Process *ip = p->img;
	_cleanup_free_ struct restore_lazy_area *areas = xcalloc(ip->n_vmas + 1, sizeof(*areas));
	uint64_t features = 0;
	size_t n = 0;
	int r, local = -1;

	if (!c->lazy)
		return 0;
	for (size_t i = 0; i < ip->n_vmas; i++)
		if (pages_vma_lazy(c, ip, ip->vmas[i]))
			areas[n++] = (struct restore_lazy_area){ ip->vmas[i]->start, ip->vmas[i]->end };
	if (!n)
		return 0;
	if (!c->o->lazy_cb)
		return dm_fail(-EINVAL, "pid %d: lazy pages but no page server to serve them", ip->pid);

	r = rst_uffd_open(c, p, areas, n, c->o->lazy_features, &local, &features);
	if (r < 0)
		return rst_wrap(r, "pid %d: lazy memory", ip->pid);

	/*
	 * The page server sees the image as registered: entries we wrote anyway
	 * (lazy pages of private file mappings) are not lazy in its view.
	 */
	Dm__Process view = *ip;
	_cleanup_free_ Dm__PagemapEntry *ents = xcalloc(ip->n_pagemap + 1, sizeof(*ents));
	_cleanup_free_ Dm__PagemapEntry **ptrs = xcalloc(ip->n_pagemap + 1, sizeof(*ptrs));
	for (size_t i = 0; i < ip->n_pagemap; i++) {
		ents[i] = *ip->pagemap[i];
		if (!pages_entry_deferred(c, ip, ip->pagemap[i]))
			ents[i].lazy = ents[i].remote = false;
		ptrs[i] = &ents[i];
	}
	view.pagemap = ptrs;

	struct restore_lazy_proc lp = {
		.pid = ip->pid, .host_pid = p->host_pid, .uffd = local, .features = features,
		.areas = areas, .n_areas = n, .img = &view,
	};
	r = c->o->lazy_cb(c->o->lazy_arg, &lp); /* the callee owns the uffd from here */
	if (r < 0)
		return rst_wrap(r, "pid %d: the page server refused its areas", ip->pid);
	pr_debug("pid %d: %zu lazy areas registered", ip->pid, n);
	return 0;
}
