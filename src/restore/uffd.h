/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd of a restored process (lazy.c), shared by the two users
 * of it in the restore engine:
 *
 *   pages.c   fills private anonymous memory with UFFDIO_COPY, then closes
 *             the uffd (which unregisters its areas) before anything else
 *             touches that memory;
 *   lazy.c    hands it to the page server (restore_lazy_cb).
 */
#pragma once

#include "restore/rst.h"

/*
 * A userfaultfd of p's address space with areas registered whole
 * (UFFDIO_REGISTER_MODE_MISSING), in our hands: created inside p (the kernel
 * ties it to p's mm), UFFDIO_API with features, the areas registered, then
 * taken over with pidfd_getfd and its fd inside p closed again, so p's fd
 * table is as it was.  *ret_features (may be NULL): what UFFDIO_API granted.
 * p must be stopped under our ptrace, with its credentials still ours.
 */
int rst_uffd_open(struct rst_ctx *c, struct rst_proc *p, const struct restore_lazy_area *areas,
		  size_t n, uint64_t features, int *ret_fd, uint64_t *ret_features);
