/* SPDX-License-Identifier: MIT */
/*
 * The contents of a container's IPC namespace (docs/containers.md, "IPC"):
 * SysV shared memory segments, semaphore sets and message queues, and POSIX
 * message queues.  runc makes the namespace empty; these put them back.
 *
 * Both run in a child that setns()es into the namespace of pid: the
 * interfaces (SHM_STAT, MSG_COPY, mq_open, the *_next_id sysctls) act on the
 * caller's IPC namespace.
 *
 *   ipc_dump_*()   while the tree is frozen: every object with its ids,
 *                  owners, modes, values and messages, read without being
 *                  consumed (SysV: MSG_COPY; POSIX queues: read and written
 *                  back in the same order at once); the contents of each shm
 *                  segment go to sysvshm-<id>.img in the image directory.
 *                  Refuses, named, what would not come back: a queue with
 *                  an mq_notify registration, a segment of huge pages.
 *   ipc_restore()  before the tree's processes exist: each object made
 *                  again with the id it had (/proc/sys/kernel/{shm,sem,msg}_next_id), by
 *                  its creator's uid and gid, then given its owner, mode,
 *                  values, messages and contents; a segment that was
 *                  removed while attached is removed again once the tree
 *                  has attached it (ipc_remove_shm()).
 *
 * Not restorable and not visible to a dumper: a process's semadj (SEM_UNDO)
 * values; they are lost (docs/containers.md).  Not even detectable: the
 * undo list kcmp(KCMP_SYSVSEM) could compare is allocated for any process
 * that made a thread (CLONE_SYSVSEM), not only by SEM_UNDO.
 */
#pragma once

#include <sys/types.h>

#include "image/image.h"

#define IPC_SHM_IMG_FMT "sysvshm-%d.img"

struct ipc_dump;

/*
 * The dump runs beside the caller (the other steps of a container's record,
 * in the same frozen window): started, then always finished (*ret NULL when
 * the namespace holds nothing; it frees j).  It is never killed: it may be
 * between reading a POSIX queue and writing its messages back.
 */
int ipc_dump_start(pid_t pid, const char *images_dir, struct ipc_dump **ret);
int ipc_dump_finish(struct ipc_dump *j, Dm__ContainerIpc **ret);
int ipc_restore(pid_t pid, const char *images_dir, const Dm__ContainerIpc *m);
/* The segments that had been removed while attached (SHM_DEST): their ids
 * (*ret_ids malloc'd), removed again by ipc_remove_shm() once the tree is
 * restored (its attachments made). */
size_t ipc_removed_shm(const Dm__ContainerIpc *m, int **ret_ids);
int ipc_remove_shm(pid_t pid, const int *ids, size_t n);
