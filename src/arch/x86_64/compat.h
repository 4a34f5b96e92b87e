/* SPDX-License-Identifier: MIT */
/*
 * Kernel uapi definitions newer than Debian 12's headers.  Each block is
 * guarded, so newer headers win.  Add, never remove: other modules use them.
 * Include this after the <linux/...> headers that would define the same.
 */
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>

/* ---- PROCMAP_QUERY: ioctl on /proc/PID/maps, Linux >= 6.11 (uapi linux/fs.h) ---- */
#ifndef PROCMAP_QUERY
#ifndef PROCFS_IOCTL_MAGIC
#define PROCFS_IOCTL_MAGIC 'f'
#endif

enum procmap_query_flags {
	PROCMAP_QUERY_VMA_READABLE = 0x01,
	PROCMAP_QUERY_VMA_WRITABLE = 0x02,
	PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
	PROCMAP_QUERY_VMA_SHARED = 0x08,
	PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
	PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};

struct procmap_query {
	__u64 size;		/* sizeof(struct procmap_query) */
	__u64 query_flags;	/* in */
	__u64 query_addr;	/* in */
	__u64 vma_start;	/* out */
	__u64 vma_end;		/* out */
	__u64 vma_flags;	/* out: PROCMAP_QUERY_VMA_* */
	__u64 vma_page_size;	/* out */
	__u64 vma_offset;	/* out: file offset in bytes */
	__u64 inode;		/* out */
	__u32 dev_major;	/* out */
	__u32 dev_minor;	/* out */
	__u32 vma_name_size;	/* in/out: buffer size; length with the NUL, 0 if no name */
	__u32 build_id_size;	/* in/out */
	__u64 vma_name_addr;	/* in */
	__u64 build_id_addr;	/* in */
};

#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif /* PROCMAP_QUERY */

/* ---- PAGEMAP_SCAN (Linux >= 6.7) and userfaultfd WP_ASYNC (>= 6.7) ---- */
#include <linux/userfaultfd.h>
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
struct page_region {
	__u64 start, end, categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	__u64 size, flags, start, end, walk_end, vec, vec_len, max_pages;
	__u64 category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* ---- prctl(PR_TIMER_CREATE_RESTORE_IDS): timer_create() takes the id to use, Linux >= 6.17 ---- */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

/* ---- struct sched_attr (uapi linux/sched/types.h; glibc 2.36 has no header for it) ---- */
/* SCHED_ATTR_SIZE_VER1: the first version plus the utilization clamps */
struct dm_sched_attr {
	__u32 size, sched_policy;
	__u64 sched_flags;
	__s32 sched_nice;
	__u32 sched_priority;
	__u64 sched_runtime, sched_deadline, sched_period;
	__u32 sched_util_min, sched_util_max;
};
