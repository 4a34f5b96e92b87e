/* SPDX-License-Identifier: MIT */
/*
 * Docker containers as migration targets (`docker:NAME`, docs/docker.md).
 *
 * Source: the container is found through dockerd's API (docker.h); its tree is
 * the runc container under Docker's runc state root, frozen, dumped and
 * recorded as any runc container (runc.h); its restart policy is set to "no"
 * until the migration ends (dockerd must not start it again when its tree is
 * killed), put back if the migration fails before the switch-over.  On
 * success the container is removed (or kept, stopped, with --keep-source).
 *
 * Destination: before the source freezes anything, the container is created
 * through the destination's dockerd like the source's (docker_create_body),
 * with the runtime "dmigrate" (`dmigrate setup`), and announced to that
 * runtime (handoff.h).  Its own layer (the source's overlay upper directory)
 * arrives with the rootfs mechanism and is put in its upper directory before
 * it starts; then `docker start` runs dmigrate-runc, whose stub becomes the
 * restored tree's root.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "container/handoff.h"
#include "container/runc.h"
#include "migrate/migrate.pb-c.h"

#define DOCKER_RUNTIME_NAME "dmigrate"

struct docker_src;

/* name: the container (name or id); runc_root NULL: Docker's runc state root
 * for the container's runtime.  Refuses what cannot move, before anything is
 * changed. */
int docker_src_open(const char *name, const char *runc_root, struct docker_src **ret);
struct runc_ct *docker_src_runc(struct docker_src *ds);
const char *docker_src_inspect_text(const struct docker_src *ds);
/* the container's own layer (overlay2's upper directory), NULL without one */
const char *docker_src_layer(const struct docker_src *ds);
const char *docker_src_name(const struct docker_src *ds);
/* Its layer's directories, parents first, with their overlay xattrs (all:
 * every one is listed); owned by ds. */
int docker_src_layer_dirs(struct docker_src *ds, Dm__RootfsEntry ***ret, size_t *ret_n, bool *ret_all);
/* While frozen: its named volumes' contents into the image directory. */
int docker_src_record_volumes(struct docker_src *ds, const char *images_dir);
/* Its named volumes, to move as trees (the strings are ds's); a volume of
 * another driver than local is refused, named, before anything changes. */
struct mig_volume;
int docker_src_volumes(struct docker_src *ds, struct mig_volume **ret, size_t *ret_n);
/* Its image's layers (diff IDs, lowest first; none if the image is gone). */
const char *const *docker_src_image_layers(const struct docker_src *ds, size_t *ret_n);
/* `docker save` of the container's image into fd (the destination lacks it),
 * without the layer files of its first layers_here layers (the destination
 * has them); *ret_skipped: the bytes left out. */
int docker_src_save_image(struct docker_src *ds, int fd, uint32_t layers_here, uint64_t *ret_skipped);
/* After COMMIT: where its address changes, its connections here are reset
 * (their peers learn at once, instead of timing out). */
void docker_src_committed(struct docker_src *ds, const struct inet_sk_diag *tcp, size_t n_tcp);
/* On Docker's default bridge, whose subnet is each host's own: the
 * container gets the destination's address, its connections end. */
bool docker_src_address_changes(const struct docker_src *ds);
/* Before the freeze: restart policy "no" (put back by docker_src_end(false)). */
int docker_src_hold(struct docker_src *ds);
/* What docker_src_hold() changed, for the source's guard: the dockerd, the
 * container's id and its policy (JSON, malloc'd); false if nothing. */
bool docker_src_held(const struct docker_src *ds, const char **ret_host, const char **ret_id, char **ret_policy);
/* The policy of container id was put back (by the guard): its record goes. */
void docker_src_held_forget(const char *id);
/* After the migration: moved (the tree was killed: remove the container, or
 * leave it stopped when keep), or not (the policy comes back). */
void docker_src_end(struct docker_src *ds, bool moved, bool keep);
void docker_src_free(struct docker_src *ds);

struct docker_dst;

/* At START: inspect_text is the source's inspect, layers its image's diff
 * IDs.  Checks (dockerd, the runtime, the name, bind mount sources, whether
 * the image is here and, if not, how many of its layers are). */
int docker_dst_prepare(const char *inspect_text, const char *const *layers, size_t n_layers,
		       struct docker_dst **ret);
bool docker_dst_needs_image(const struct docker_dst *dd);
/* the image is not here: how many of its first layers are */
uint32_t docker_dst_layers_here(const struct docker_dst *dd);
const char *docker_dst_image_name(const struct docker_dst *dd);
/* The image's `docker save` tar, read from fd until EOF, into dockerd. */
int docker_dst_load_image(struct docker_dst *dd, int fd);
/* The container, made like the source's, announced to its runtime. */
int docker_dst_create(struct docker_dst *dd);
const char *docker_dst_id(const struct docker_dst *dd);
/* where the container's own layer goes (its overlay upper directory) */
const char *docker_dst_layer(const struct docker_dst *dd);
/* `docker start` and the runtime's hand-off: the stub runs and waits (the
 * container's layer must be complete, or its directories made: see
 * docs/docker.md). */
int docker_dst_start(struct docker_dst *dd);
/* The stub (started now if it was not): *h is the caller's (handoff_close). */
int docker_dst_take_handoff(struct docker_dst *dd, struct handoff *h);
/* Its network namespace was locked when it started (runc_restore_opts.net_locked). */
bool docker_dst_net_locked(const struct docker_dst *dd);
/*
 * A container whose address changes (a default bridge): none of the tree's
 * connections is restored (stand-ins), only its listeners, so the lock
 * guards nothing once the restore is done; it goes before RESUMED, so that a
 * client the source resets at its COMMIT and that reconnects here at once
 * does not find it (a dropped SYN waits a second for its retransmission).
 * Any other container: nothing (its lock goes as the tree runs).
 */
bool docker_dst_unlock_early(struct docker_dst *dd); /* true: it was opened */
/* The volumes' contents from the image (docker_src_record_volumes) into
 * the container's volumes here, before its tree is restored. */
int docker_dst_put_volumes(struct docker_dst *dd, const char *images_dir);
/* name is one of the source container's named volumes */
bool docker_dst_has_volume(const struct docker_dst *dd, const char *name);
/* The data directory here of the container's volume name (made with it),
 * emptied: what the image put there at create comes again from the
 * source, with what the container changed (*ret: malloc'ed). */
int docker_dst_volume_dir(struct docker_dst *dd, const char *name, char **ret);
/* The migration failed: the container goes (with the volumes made for it). */
void docker_dst_abort(struct docker_dst *dd);
/*
 * The container is made with restart policy "no", whatever the source's:
 * if its stub exited (our daemon died before the restore) or its tree was
 * killed (its memory incomplete), dockerd must not start it again from its
 * image while the source's copy runs or waits.  The migration complete
 * (every page here), the source's policy is set.  -errno.
 */
int docker_dst_complete(struct docker_dst *dd);
/*
 * What a later daemon needs to remove the container made here if this one
 * dies before the session ends (docker_sweep_early): lines of text, malloc'd.
 */
char *docker_dst_early_record(const struct docker_dst *dd);
/* The container such a record names: removed with the volumes made for it
 * if it does not run (1), left if it runs (0), -errno. */
int docker_sweep_early(char *record);
void docker_dst_free(struct docker_dst *dd);
