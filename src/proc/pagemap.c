/* SPDX-License-Identifier: MIT */
/*
 * Which pages of a range hold private anonymous data: one PAGEMAP_SCAN
 * ioctl (Linux >= 6.7) per vector of runs.  A page counts when it is present
 * or swapped out, and is neither a page-cache page (PAGE_IS_FILE: an
 * untouched page of a private file mapping reads back from the file) nor
 * the shared zero page.  The scan skips empty page tables, so its cost
 * follows the populated pages, not the size of the range; one ioctl finds
 * at most PROC_SCAN_CHUNK_BYTES of data (the mmap lock, the CPU).
 */
#include "proc/proc.h"
#include "base/util.h"
#include "compat.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>

#define SCAN_VEC 512

#ifndef PAGE_IS_GUARD
#define PAGE_IS_GUARD (1 << 8) /* Linux 6.14: a MADV_GUARD_INSTALL marker */
#endif

/* PAGE_IS_GUARD is known to this kernel (older ones refuse the bit: EINVAL) */
static _Atomic int guard_known = -1;

static int scan_runs(int pagemap_fd, uint64_t start, uint64_t end, bool guards, struct proc_range **runs,
		     size_t *cap, size_t *ret_n)
{
	struct page_region vec[SCAN_VEC];
	size_t n = 0;
	uint64_t guard = guard_known != 0 ? PAGE_IS_GUARD : 0;

	while (start < end) {
		/* data: present or swapped, neither page cache, the zero page, nor a
		 * guard marker (which reads as EIO); guards: only the markers */
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			/* data: at most a chunk's worth found a call (a span of VMAs
			 * crosses the gaps between them: a bound on the addresses
			 * would be millions of calls); guards are rare */
			.max_pages = guards ? 0 : PROC_SCAN_CHUNK_BYTES / 4096,
			.vec = (uint64_t)vec,
			.vec_len = SCAN_VEC,
			.category_inverted = guards ? 0 : PAGE_IS_FILE | PAGE_IS_PFNZERO | guard,
			.category_mask = guards ? PAGE_IS_GUARD : PAGE_IS_FILE | PAGE_IS_PFNZERO | guard,
			.category_anyof_mask = guards ? 0 : PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = guards ? PAGE_IS_GUARD : PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		long got = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (got < 0 && errno == EINVAL && guard_known < 0) {
			guard_known = 0;
			if (guards)
				break; /* no guard regions on this kernel */
			guard = 0;
			continue;
		}
		if (got < 0)
			return -errno;
		thread_background_breathe(); /* between chunks, in a walk */
		if (guard)
			guard_known = 1;
		for (long k = 0; k < got; k++) {
			struct proc_range r = { vec[k].start, vec[k].end };
			/* A full vector may end inside a huge page that walk_end
			 * does not cover yet: never go back before what we have. */
			if (n && r.start < (*runs)[n - 1].end)
				r.start = (*runs)[n - 1].end;
			if (r.start >= r.end)
				continue;
			if (n && (*runs)[n - 1].end == r.start) {
				(*runs)[n - 1].end = r.end; /* present then swapped: one run */
				continue;
			}
			if (n == *cap) {
				*cap = *cap ? *cap * 2 : 64;
				*runs = xrealloc(*runs, *cap * sizeof(**runs));
			}
			(*runs)[n++] = r;
		}
		uint64_t next = a.walk_end;
		if (n && (*runs)[n - 1].end > next)
			next = (*runs)[n - 1].end;
		if (next >= end || next <= start)
			break;
		start = next;
	}
	*ret_n = n;
	return 0;
}

int proc_pagemap_data_runs(int pagemap_fd, uint64_t start, uint64_t end, struct proc_range **runs,
			   size_t *cap, size_t *ret_n)
{
	return scan_runs(pagemap_fd, start, end, false, runs, cap, ret_n);
}

int proc_pagemap_guard_runs(int pagemap_fd, uint64_t start, uint64_t end, struct proc_range **runs,
			    size_t *cap, size_t *ret_n)
{
	*ret_n = 0;
	return scan_runs(pagemap_fd, start, end, true, runs, cap, ret_n);
}
