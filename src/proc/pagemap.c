/* SPDX-License-Identifier: MIT */
/*
 * Which pages of a range hold private anonymous data: one PAGEMAP_SCAN
 * ioctl (Linux >= 6.7) per vector of runs.  A page counts when it is present
 * or swapped out, and is neither a page-cache page (PAGE_IS_FILE: an
 * untouched page of a private file mapping reads back from the file) nor
 * the shared zero page.  The scan skips empty page tables, so its cost
 * follows the populated pages, not the size of the range.
 */
#include "proc/proc.h"
#include "base/util.h"
#include "compat.h"

#include <errno.h>
#include <sys/ioctl.h>

#define SCAN_VEC 512

int proc_pagemap_data_runs(int pagemap_fd, uint64_t start, uint64_t end, struct proc_range **runs,
			   size_t *cap, size_t *ret_n)
{
	struct page_region vec[SCAN_VEC];
	size_t n = 0;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			.vec = (uint64_t)vec,
			.vec_len = SCAN_VEC,
			.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO,
			.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO,
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		long got = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (got < 0)
			return -errno;
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
