/* SPDX-License-Identifier: MIT */
/*
 * A cgroup per migrated tree, so that the destination can stop and kill the
 * tree as a whole: processes it forked after the resume included, which no
 * list of pids made at the restore knows.
 *
 *   cgroup v2 (a cgroup2 mount with cgroup.kill, Linux >= 5.14):
 *       MNT/dmigrate/NAME; cgroup.freeze holds it, cgroup.kill kills it
 *   else the v1 freezer hierarchy:
 *       MNT/dmigrate/NAME; killed by freeze, SIGKILL to every pid of
 *       cgroup.procs, thaw, until it is empty (a frozen task cannot fork
 *       away while its pid is read)
 *
 * The trees live beside the daemon's own cgroup, not below it: a tree that
 * migrated in must survive a restart of dmigrated (a service manager kills
 * the service's cgroup with its subgroups).
 *
 * treecg_kill() and treecg_remove() only make system calls (no malloc, no
 * stdio): the guardian, a fork of the multithreaded daemon, calls them.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

enum treecg_version { TREECG_NONE = 0, TREECG_V1_FREEZER = 1, TREECG_V2 = 2 };

struct treecg {
	enum treecg_version version;
	char path[512]; /* the tree's cgroup directory */
};

/* Make the cgroup NAME ([A-Za-z0-9._-]).  want: TREECG_NONE picks v2 where it
 * has cgroup.kill, else the v1 freezer; or forces one.  -errno (dm_error) when
 * no hierarchy is usable. */
int treecg_create(const char *name, enum treecg_version want, struct treecg *ret);
/* Move process pid (our pid namespace) into it. */
int treecg_add(const struct treecg *cg, pid_t pid);
/* v2: freeze (no task of it runs) or thaw; v1: a no-op (-EOPNOTSUPP). */
int treecg_freeze(const struct treecg *cg, bool frozen);
/* SIGKILL every process in it until it is empty, for at most timeout_ms:
 * 0, or -ETIMEDOUT with processes left. */
int treecg_kill(const struct treecg *cg, int timeout_ms);
/* rmdir: 0, -EBUSY while populated. */
int treecg_remove(const struct treecg *cg);
/* Is anything in it? (cgroup.procs not empty) */
bool treecg_populated(const struct treecg *cg);
/* The daemon's start: rmdir the empty tree cgroups older than min_age_s that
 * an earlier daemon left (it removes its own once their tree has ended, but
 * not after its death).  Returns how many. */
int treecg_sweep_stale(int min_age_s);
