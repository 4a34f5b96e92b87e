/* SPDX-License-Identifier: MIT */
/*
 * The control channel of a migration (frames NET_T_MIGRATE + n).
 *
 *   source (dmigrate migrate)                     destination (dmigrated)
 *   START {mode, target, store_bytes,  -------->  checks what it could not run (CPU
 *          xcr0, tree_bytes}                     xsave features, kernel, memory, disk),
 *                                                makes its work dir
 *                                     <--------  ACCEPT {ok | error}   (before any freeze)
 *   fault + bulk channels join the session
 *   [pre-copy, hybrid: bulk carries PHASE STORE + PRECOPY pages while the tree runs;
 *    post-copy with START.eager_store taken by ACCEPT: PHASE STORE, the private file
 *    mappings' copied pages, and with START.store_lazy (a Docker container starting
 *    there) the unwritten anonymous pages until READY, PUSH_END]
 *   -- freeze, dump --
 *   FILE {name, size}, DATA {off,len}+bytes..., FILE_END     (per image file, sparse)
 *   DIRTY [{space, addr, npages}...]   (pages sent before the freeze and written since)
 *   STATE_END {files, bytes}  -------->  [store modes, hybrid, eager_store: waits for bulk PUSH_END]
 *                                        restore (lazy: pages come later), the tree
 *                                        complete but stopped (held, frozen in its cgroup)
 *                                     <--------  RESUMED {root_pid, stats}  | ABORT
 *   [SIGSTOP queued to the frozen tree]
 *   [NET_FRAMES  -------------------->  kept: the packets the source's lock dropped]
 *   COMMIT  -------------------------->  the tree runs (without COMMIT in time: killed, it never ran);
 *                                        the kept packets are delivered to it as it is let go
 *   [post-copy, hybrid: bulk: PHASE INSTALL + pushed pages; fault: requests/replies]
 *                                     <--------  MEM_DONE {stats}   (every page is in)
 *   -- kill the frozen source --
 *   FIN ------------------------------>  releases everything
 *
 * ABORT {error} may come from either side at any point before COMMIT; the
 * source then thaws its tree and the destination removes what it made.  The
 * destination kills before it sends ABORT, and never runs its copy before
 * COMMIT; the source never thaws its copy once it has sent COMMIT.
 */
#pragma once

#include <stdint.h>

#include "net/net.h"

enum mig_frame_type {
	MIG_T_START = NET_T_MIGRATE + 1,    /* Dm__MigStart */
	MIG_T_ACCEPT = NET_T_MIGRATE + 2,   /* Dm__MigReply */
	MIG_T_FILE = NET_T_MIGRATE + 3,     /* Dm__MigFile */
	MIG_T_DATA = NET_T_MIGRATE + 4,     /* struct mig_wire_extent + len bytes */
	MIG_T_FILE_END = NET_T_MIGRATE + 5, /* empty */
	MIG_T_DIRTY = NET_T_MIGRATE + 6,    /* struct mig_wire_range[] */
	MIG_T_STATE_END = NET_T_MIGRATE + 7, /* Dm__MigStateEnd */
	MIG_T_RESUMED = NET_T_MIGRATE + 8,  /* Dm__MigReply */
	MIG_T_COMMIT = NET_T_MIGRATE + 9,   /* empty */
	MIG_T_MEM_DONE = NET_T_MIGRATE + 10, /* Dm__MigReply */
	MIG_T_FIN = NET_T_MIGRATE + 11,     /* empty */
	MIG_T_ABORT = NET_T_MIGRATE + 12,   /* Dm__MigReply */
	MIG_T_VMA_FIX = NET_T_MIGRATE + 13, /* struct mig_wire_vma_fix[], after COMMIT */
	/* docker: the destination lacks the container's image (instead of
	 * ACCEPT): the source sends `docker save` of it, then ACCEPT or ABORT */
	MIG_T_NEED_IMAGE = NET_T_MIGRATE + 14, /* Dm__MigReply */
	MIG_T_IMAGE_DATA = NET_T_MIGRATE + 15, /* 1..MIG_DATA_MAX bytes of the image's tar */
	MIG_T_IMAGE_END = NET_T_MIGRATE + 16,  /* empty */
	/* right before COMMIT, at most once, if ACCEPT said net_frames: the TCP
	 * packets the source's network lock dropped (net/replay.h records,
	 * 1..NET_FRAMES_MAX bytes), delivered to the tree when it is let go */
	MIG_T_NET_FRAMES = NET_T_MIGRATE + 17,
	/* after ACCEPT that said ready_later: the destination's container
	 * started (ok) or not (the reason); the source freezes only after it */
	MIG_T_READY = NET_T_MIGRATE + 18,   /* Dm__MigReply */
};

#define MIG_DATA_MAX (1u << 20)        /* bytes of one DATA frame */
#define MIG_NAME_MAX 64
#define MIG_FILES_MAX 100000u
#define MIG_RANGES_MAX 65536u          /* ranges per DIRTY frame */

struct mig_wire_extent {
	uint64_t off;
	uint32_t len;       /* 1..MIG_DATA_MAX bytes follow */
	uint32_t reserved;  /* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct mig_wire_extent) == 16, "extent header is 16 bytes on the wire");

struct mig_wire_range {
	uint32_t space;
	uint32_t reserved;  /* 0 */
	uint64_t addr;
	uint64_t npages;
} __attribute__((packed));
_Static_assert(sizeof(struct mig_wire_range) == 24, "range is 24 bytes on the wire");

/* A VMA whose madvise state changed on the source just before the freeze
 * (dump_vmflags_verify): the destination applies it to the running process. */
#define MIG_VMA_FIX_MAX 4096u
struct mig_wire_vma_fix {
	uint32_t space;     /* image pid */
	uint32_t madv;      /* DM_MADV_* the VMA has */
	uint32_t madv_was;  /* DM_MADV_* restored */
	uint32_t reserved;  /* 0 */
	uint64_t start, end;
} __attribute__((packed));
_Static_assert(sizeof(struct mig_wire_vma_fix) == 32, "vma fix is 32 bytes on the wire");
