/* SPDX-License-Identifier: MIT */
/*
 * The order in which the tree's files cross the link (issue 9): three
 * stacks and the set of files already sent.
 *
 *   1. the working set (exe, open files, mapped files of the frozen tasks),
 *      smallest on top
 *   2. when the restored tree touches a directory, its unsent files, pushed
 *      largest first so that the smallest is on top (a later touch lands
 *      above an earlier one)
 *   3. everything else, smallest on top (or, for --rootfs lazy, in walk
 *      order)
 *
 * Stack 1 empties before 2, 2 before 3.  A file being sent finishes before
 * a newly pushed file starts (non-preemptive), except a demand: a file the
 * tree is blocked on is sent at once, ahead of everything (a miss).  Files
 * move in chunks (the caller's), so a demand waits for one chunk at most.
 * No I/O here: the sender asks rfs_sched_next() which file to send a chunk
 * of, and says how far it got with rfs_sched_sent().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rfs_why { RFS_WORKING_SET, RFS_SAME_DIR, RFS_SMALL_FIRST, RFS_DEMAND, _RFS_WHY_MAX };
const char *rfs_why_name(enum rfs_why w); /* "working_set", "same_dir", "small_first", "demand" */

struct rfs_sched;

/* n files: their sizes and the id of their directory (any number; files
 * with the same dir are one directory).  walk_order: stack 3 in index
 * order instead of smallest first (--rootfs lazy, the Voyager order). */
struct rfs_sched *rfs_sched_new(const uint64_t *sizes, const uint32_t *dirs, size_t n, bool walk_order);
void rfs_sched_free(struct rfs_sched *s);

/* Before the first rfs_sched_next(): file i is in the working set. */
void rfs_sched_working_set(struct rfs_sched *s, uint32_t i);
/* The tree touched directory dir: its unsent files go on stack 2 (once per dir). */
void rfs_sched_touch(struct rfs_sched *s, uint32_t dir);
/* The tree is blocked on file i: next, ahead of everything.  false: already sent. */
bool rfs_sched_demand(struct rfs_sched *s, uint32_t i);

/* The file to send a chunk of now, and why; false once every file is sent. */
bool rfs_sched_next(struct rfs_sched *s, uint32_t *ret_i, enum rfs_why *ret_why);
/* There is a demand, pending or in progress: the tree is blocked on it
 * (before the resume, the sender sends only that, and what the restore
 * reads). */
bool rfs_sched_urgent(const struct rfs_sched *s);
/* A chunk of file i was sent; done: it was its last. */
void rfs_sched_sent(struct rfs_sched *s, uint32_t i, bool done);
bool rfs_sched_is_done(const struct rfs_sched *s, uint32_t i);
size_t rfs_sched_left(const struct rfs_sched *s);
