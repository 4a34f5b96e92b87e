/* SPDX-License-Identifier: MIT */
/*
 * Waiting for a child we forked or exec'd, with a limit (docs/migration.md,
 * "Every wait has a limit").  A wedged runc (a hook that hangs, a lock it
 * waits for) or helper would otherwise hold a checkpoint, a restore or the
 * daemon's migration slot for good.  On expiry the child is killed (its
 * whole process group when it leads one: runc's hooks, a shell's children)
 * and reaped, and the error names what hung: "runc delete ct1 did not
 * finish in 30 s (killed)"; the caller then does its usual cleanup.
 *
 * DMIGRATE_CHILD_TIMEOUT_MS (tests) lowers every limit to that value.
 */
#pragma once
#include "base/util.h"

#include <sys/types.h>

/* runc state, delete, kill, update: runc's own bookkeeping and its hooks */
#define CHILD_WAIT_RUNC_MS 30000
/* runc run, runc create: a container made (namespaces, cgroups, mounts, its hooks) */
#define CHILD_WAIT_RUNC_RUN_MS 60000
/* a helper of ours in a namespace that does a few syscalls (hostname, ip,
 * mq_open, a bind or a connect in the tree's root, removing segments) */
#define CHILD_WAIT_HELPER_MS 10000
/* one that copies data, its time bound by the data's size: tar of a tmpfs or
 * a volume, the SysV segments of an IPC namespace written back */
#define CHILD_WAIT_COPY_MS 600000
/* after the SIGKILL: until the kernel has ended it (a killable wait) */
#define CHILD_WAIT_KILL_MS 5000

/* limit_ms, or DMIGRATE_CHILD_TIMEOUT_MS if that is set and lower */
int child_limit_ms(int limit_ms);

/*
 * Waits for the child pid (__WALL) at most child_limit_ms(limit_ms); its wait
 * status in *ret_status.  When the limit expires: SIGKILL to its process
 * group if it leads one (else to it), reaped, and -ETIMEDOUT with "WHAT did
 * not finish in N s (killed)", WHAT made from fmt.  Other failures: -errno,
 * with their message.
 */
int child_wait_limit(pid_t pid, int limit_ms, int *ret_status, const char *fmt, ...) _printf_(4, 5);
