/* SPDX-License-Identifier: MIT */
/*
 * Can the restore make a tree's sessions and process groups?  The restore
 * (restore/tree.c) rebuilds them with fork, setsid() and setpgid() in a
 * fixed order; some shapes cannot be made that way (a process group whose
 * leader is gone, as a pipeline's whose first command ended; a session
 * whose leader is gone when the process was not reparented to the tree's
 * reaper).  This runs the same order without making anything, so that the
 * dump refuses such a tree while it still runs, and the restore refuses
 * such an image before it makes any process.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tree_ids {
	int32_t pid, ppid, sid, pgid; /* the image's (ppid 0: the root's parent) */
	bool subreaper;               /* PR_SET_CHILD_SUBREAPER */
};

/*
 * t[0] is the root and every parent comes before its children.  own_pidns:
 * the tree owns its PID namespace (its root is that namespace's init).
 * 0, or -ENOTSUP / -EBADMSG with the process and the id named (dm_fail).
 */
int tree_ids_check(const struct tree_ids *t, size_t n, bool own_pidns);
