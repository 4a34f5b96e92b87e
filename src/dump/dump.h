/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint of a running process tree.
 *
 * The dump is split so that migration can reuse it:
 *   dump_freeze()   seize every thread of the tree (the tree stops);
 *   dump_collect()  run the parallel dump (pool) and write the image;
 *   dump_release()  kill the frozen tree, or let it run again.
 * Between collect and release the tree stays frozen: in post-copy the
 * source's page server reads its memory with process_vm_readv.
 */
#pragma once

#include <jansson.h>
#include <sys/types.h>

#include "base/util.h"
#include "image/image.h"

struct pool_sensors;

/*
 * A container target (src/container/): the tree is a container's, its root
 * the container's init.  Its own mount, network, UTS, IPC, PID and cgroup
 * namespaces are allowed (the runtime makes them again at restore); every
 * process of the tree must share the root's.  The container's cgroup is
 * frozen while every thread is seized, so nothing forks away meanwhile.
 */
struct dump_container {
	/* The host pids of every process in the container's cgroup (malloc'd):
	 * they are seized and stopped at once, before the walk from the root. */
	int (*list)(void *arg, pid_t **ret, size_t *ret_n);
	/* The tree stopped, after the walk: the tree's host pids.  Refuses what
	 * is in the container and not in the tree. */
	int (*check_tree)(void *arg, const pid_t *pids, size_t n);
	/* Optional: msg->ipc is complete (the record reads it beside the dump):
	 * called before the dump reads it. */
	int (*wait_ipc)(void *arg);
	/* Optional: the tree is about to be killed (dump_release(DUMP_KILL)),
	 * its network still locked */
	void (*before_kill)(void *arg);
	void *arg;
	const Dm__Container *msg;  /* Inventory.container (complete by dump_collect) */
};

struct dump_opts {
	pid_t pid;                /* root of the tree (host pid) */
	const struct dump_container *container; /* NULL: a plain process tree */
	const char *images_dir;
	unsigned dump_threads;    /* 0: resource-aware pool; N: exactly N workers */
	/* with dump_threads 0: the pool's sensors, made by the caller ahead of
	 * the freeze (pool_proc_sensors_new()): their window since then is the
	 * pool's first (pool_opts.window_open); NULL: the pool's own, from
	 * dump_freeze() on */
	const struct pool_sensors *pool_sensors;
	/*
	 * lazy: mark the private pages a task does not need before it runs as
	 * PagemapEntry.lazy (restore --lazy registers them on userfaultfd and
	 * serves them after resume).  lazy_remote: and leave their contents out
	 * of pages-*.img (post-copy: a page server on the frozen source serves
	 * them; the file keeps the same offsets, sparse).  Eager pages are always
	 * in the file.
	 */
	bool lazy;
	bool lazy_remote;
	/* connections queued on a listener, not yet accepted, are reset (the
	 * tree's address changes: a Docker container on a default bridge)
	 * instead of refusing the dump */
	bool reset_unaccepted;
	/*
	 * With lazy_remote: do not read the page map of private anonymous VMAs
	 * while the tree is frozen (PAGEMAP_SCAN costs ~15 ms per GiB of touched
	 * memory): each becomes one run of lazy pages marked sparse, covering the
	 * whole VMA; the page server scans it after the resume and tells which
	 * pages hold nothing.  Keeps the freeze flat in memory size (post-copy).
	 */
	bool defer_pagemap;
	/*
	 * Store every private page of each process, also those a child still
	 * shares copy-on-write with its parent (no Process.inherited).
	 */
	bool no_inherit;
	/*
	 * With lazy_remote: the most pages of parents that their children
	 * inherit (eager: read, sent and written inside the downtime); when the
	 * tree has more, every inherited run goes back into its child's page
	 * map (restored as copies) and the stats say so.  0: no bound.  With
	 * defer_pagemap a child's VMA that its parent has the same way is
	 * scanned in the freeze (not deferred) to find them.
	 */
	uint64_t inherit_max_pages;
	/*
	 * With lazy_remote: is the page at addr of the process (image pid)
	 * already at the destination, unchanged since (a pre-copy round sent
	 * it)?  An eager page that is becomes PagemapEntry.now (remote, written
	 * before the task runs from there) instead of going with the state.
	 */
	bool (*page_at_dest)(void *arg, pid_t vpid, uint64_t addr);
	void *page_at_dest_arg;
	/*
	 * Read the VMA flags (smaps, a walk of every page table) just before the
	 * freeze instead of in it; a process whose VMAs changed in between is
	 * read again in the freeze.  dump_vmflags_verify() finds the flags
	 * changed without a VMA change (a whole-VMA madvise in the gap).
	 */
	bool early_vmflags;
	/*
	 * The namespaces of the tree's threads are not checked in the freeze:
	 * the caller calls dump_check_namespaces() before it lets a copy of
	 * the tree run (a migration: while the destination restores, before
	 * COMMIT).  A failed dump checks them first: a tree refused for its
	 * namespaces is told so, whatever else failed.
	 */
	bool defer_ns_check;
	/*
	 * The tree is killed and its image restored on this host later
	 * (`checkpoint`): the network lock of its TCP connections stays in place
	 * after the kill, named in the image, and the restore removes it.
	 * Otherwise the lock goes when the tree is released.
	 */
	bool keep_net_lock;
	/*
	 * A container with TCP listeners is locked before the freeze and may
	 * accept what they have queued for up to this long (0: the default,
	 * DUMP_ACCEPT_WAIT_MS); what is still queued then refuses the dump.
	 */
	unsigned accept_wait_ms;
	/*
	 * A tree in a network namespace of its own (a container's) is frozen
	 * right after its next answer goes out (an outgoing TCP segment with
	 * data, net/answer.h), waiting at most this long for one; 0: at once.
	 */
	unsigned quiet_wait_ms;
	/*
	 * A tree in a network namespace of its own (a container's) that is
	 * locked as a whole: keep the TCP packets the lock drops (net/replay.h)
	 * for dump_net_frames() (a migration delivers them on the destination)
	 * and, when the tree goes on here, deliver them to it after the unlock.
	 */
	bool net_capture;
	/* Told of each network lock as it is installed (its namespace, -1 for
	 * ours, and name): the source's guard removes it if we die first. */
	void (*on_lock)(void *arg, int nsfd, const char *name);
	void *on_lock_arg;
	/*
	 * A unix socket connected to a peer outside the tree is reconnected to
	 * the peer's name at restore instead of being refused (a new
	 * connection: the peer sees the old one closed and a new one made).
	 */
	bool ext_unix;
	/* Called after that read, right before the freeze (tests pause there). */
	void (*before_freeze)(void *arg);
	void *before_freeze_arg;
	/* Optional: dump_collect() calls it before it writes the inventory,
	 * which holds container->msg (a container's record made beside the
	 * dump by the caller); < 0 fails the dump (its message set). */
	int (*before_inventory)(void *arg);
	void *before_inventory_arg;
};

struct dump_ctx;
struct inet_sk_diag;

enum dump_release_action { DUMP_KILL, DUMP_RESUME };

/*
 * Can pid be the root of a checkpointed tree?  0, or -errno with
 * dm_last_error() saying why in the user's terms: no such process, a zombie,
 * a thread id (not a process), the init of this PID namespace, this dmigrate
 * or one of its ancestors (the tree would contain dmigrate itself).
 * dump_freeze() checks it first; a migration asks before it connects.
 */
/*
 * The pages around a thread's stack pointer that a lazy dump keeps eager
 * (the one it points into and the 4 below, which its next calls use: each
 * would be a remote fault right after the resume), [*start, *end).
 */
#define DUMP_STACK_EAGER_BELOW 4
static inline void dump_stack_eager(uint64_t sp, uint64_t *start, uint64_t *end)
{
	uint64_t page = sp & ~(uint64_t)(DM_PAGE_SIZE - 1);
	*start = page >= DUMP_STACK_EAGER_BELOW * DM_PAGE_SIZE ? page - DUMP_STACK_EAGER_BELOW * DM_PAGE_SIZE : 0;
	*end = page + DM_PAGE_SIZE;
}

int dump_check_root(pid_t pid);
/* A thread blocked in vfork() cannot be stopped: refused (-EBUSY), named. */
int dump_check_vfork(pid_t pid, pid_t tid);

int dump_freeze(const struct dump_opts *o, struct dump_ctx **ret_ctx);
/* When dump_freeze() began to stop the tree (clock_ns): where the tree's
 * downtime starts. */
uint64_t dump_freeze_started(const struct dump_ctx *d);
int dump_collect(struct dump_ctx *d);
/* Always succeeds in the end; returns the first error of releasing. */
int dump_release(struct dump_ctx *d, enum dump_release_action action);
/*
 * The TCP packets that reached the tree's locked namespace so far
 * (opts.net_capture), as net/replay.h records: *buf malloc'd, NULL and 0
 * when none.  The capture stops: they are the caller's to deliver.
 */
void dump_net_frames(struct dump_ctx *d, uint8_t **buf, size_t *len);
/* They did not go after all (the switch-over was not made): a rollback's
 * release delivers them to the tree here (takes buf; the next
 * dump_net_frames() gives it). */
void dump_net_frames_back(struct dump_ctx *d, uint8_t *buf, size_t len);
/* The tree's TCP sockets as the dump found them (each one's addresses and
 * state): *ret malloc'd, NULL when there is none.  How many. */
size_t dump_tcp_sockets(const struct dump_ctx *d, struct inet_sk_diag **ret);
/* What dump_net_frames() took, in the stats' words ({kept, bytes, ...}); NULL if nothing was kept. */
json_t *dump_net_frames_stats(const struct dump_ctx *d);
/* After DUMP_KILL: wait (bounded) until the tree's pids are free again, the
 * root's excepted (its parent reaps it). -ETIMEDOUT names the pid. */
int dump_wait_gone(struct dump_ctx *d, int timeout_ms);
void dump_free(struct dump_ctx *d);

/* Stats of the last collect: freeze_ms, frozen_ms, processes, threads, vmas,
 * pages, bytes, dump_threads_* ... added to obj. */
void dump_stats_json(const struct dump_ctx *d, json_t *obj);

/* A VMA whose recorded flags (Vma.madv) changed between the early read and
 * the freeze: madv is what the frozen tree has. */
struct dump_vma_change {
	pid_t pid;                /* image pid */
	uint64_t start, end;
	uint32_t madv_was, madv;  /* DM_MADV_* */
};
/* After collect, tree still frozen: the changes (*ret malloc'd, may be NULL
 * when *ret_n is 0); -ESTALE if a VMA itself changed (a bug: it is frozen). */
int dump_vmflags_verify(struct dump_ctx *d, struct dump_vma_change **ret, size_t *ret_n);

/* The Vma.madv bits (DM_MADV_*) of smaps VmFlags (PROC_VMF_*). */
uint32_t dump_madv_bits(uint64_t vmflags);

/*
 * The check of the frozen tree's namespaces that opts.defer_ns_check left
 * out of the freeze: every thread's, against ours (and a container's init).
 * Refused, named, as the freeze would have.
 */
int dump_check_namespaces(struct dump_ctx *d);

/* Frozen tree access for page servers: host pid of an image pid, or -1. */
pid_t dump_host_pid(const struct dump_ctx *d, pid_t image_pid);
