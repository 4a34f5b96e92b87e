/* SPDX-License-Identifier: MIT */
/*
 * The source's guard: what a checkpoint or a migration changed about a
 * tree that runs on if it dies before it is done with it (kill -9, a crash,
 * the OOM killer), undone by a small process of its own.
 *
 * Before the switch-over our death lets the tree run again (the kernel
 * detaches its tracees), but two things would stay as the migration left
 * them: the network lock of its namespace (an nftables table that drops
 * every packet: the service would be unreachable for good) and a Docker
 * container's restart policy, held at "no" for the migration.  The guard is
 * a process started before the freeze (`dmigrate __guard`, exec'd: the
 * source is multithreaded), in a session of its own (a terminal's Ctrl-C
 * does not reach it); it is told each of those changes as it is made, and
 * on the end of its socket without "disarm" (our death) it undoes them:
 * the lock removed in its namespace, the policy put back through dockerd's
 * API, at the nice its parent had.  Until then it runs at nice 19: its
 * start must not take a CPU from the service that is about to move.
 * Disarmed (the switch-over is decided, or the changes were undone by us),
 * it does nothing and leaves when its socket ends (src_guard_free()).
 */
#pragma once

struct src_guard;

/* Starts the guard process.  -errno, dm_fail'ed. */
int src_guard_start(struct src_guard **ret);
/* The network lock name was installed in the namespace nsfd (-1: ours). */
void src_guard_netlock(struct src_guard *g, int nsfd, const char *name);
/* Docker container id at docker_host has restart policy "no" instead of
 * policy (its JSON). */
void src_guard_docker_policy(struct src_guard *g, const char *docker_host, const char *id, const char *policy);
/* Nothing to undo any more: the guard idles until src_guard_free(). */
void src_guard_disarm(struct src_guard *g);
/* Armed again, with what it was told before the disarm: the switch-over
 * was not made after all (a COMMIT that could not be sent). */
void src_guard_rearm(struct src_guard *g);
/* Disarms, waits for the guard, frees. */
void src_guard_free(struct src_guard *g);

/* `dmigrate __guard [NICE]`: the guard's body, its socket at fd 3; NICE:
 * the nice its undo runs at (its parent's). */
int src_guard_main(const char *nice_arg);
