/* SPDX-License-Identifier: MIT */
/*
 * migrate: a live migration of a process tree, both sides.
 *
 *   source: mig_source_run()   freeze, dump (no memory), send the state, serve
 *                              or push the memory, kill the frozen tree at the
 *                              end; on any failure before the destination's
 *                              resume: thaw, and the tree runs on unchanged
 *   destination: mig_daemon_run()  accept migrations (dmigrated), restore them
 *
 * Modes (one pipeline, different switches; see src/mem/mem.h):
 *   post-copy      dump without memory, restore at once, pages after resume
 *                  (faults on demand + neighbours on the fault channel, a
 *                  background push on the bulk channel)
 *   stop-and-copy  every page crosses the link while the tree is frozen
 *   pre-copy       rounds of dirty pages while the tree runs (uffd-wp async +
 *                  PAGEMAP_SCAN), then stop-and-copy of the rest
 *   hybrid         one pre-copy round, then post-copy for what changed
 *
 * Phases and the timeline (ms from start): start, freeze, state_sent,
 * resume, done; downtime = resume - freeze.  The stats JSON has them, bytes
 * per channel, pages by origin, fault latency p50/p99, pre-copy rounds, and
 * both sides' dump/restore details.
 */
#pragma once

#include "dump/dump.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "base/testpoint.h"
#include "base/util.h"
#include "net/net.h"
#include "migrate/rootfs.h"
#include "migrate/migrate.pb-c.h"

enum mig_mode { MIG_POST_COPY = 0, MIG_PRE_COPY, MIG_STOP_AND_COPY, MIG_HYBRID, _MIG_MODE_MAX };

const char *mig_mode_name(enum mig_mode m);
/* -EINVAL for an unknown name */
int mig_mode_parse(const char *s, enum mig_mode *ret);

struct mig_source_opts {
	pid_t pid;                 /* root of the tree (pid:PID) */
	const char *to;            /* ADDR:PORT of the destination's dmigrated */
	const struct net_key *key; /* NULL only with insecure */
	bool insecure;
	enum mig_mode mode;
	unsigned dump_threads;     /* 0: resource-aware pool */
	unsigned accept_wait_ms;   /* dump_opts.accept_wait_ms */
	unsigned quiet_wait_ms;    /* dump_opts.quiet_wait_ms (MIG_QUIET_WAIT_MS by the CLI) */
	struct src_guard *guard;   /* told of the network lock; disarmed at the switch-over (srcguard.h) */
	bool progress;             /* live display on stderr (a tty) */
	unsigned precopy_max_rounds;   /* 0: 12 */
	uint64_t precopy_stop_pages;   /* stop iterating below this many dirty pages; 0: 1024 */
	const char *work_dir;      /* where the (memory-less) image is written; NULL: /dev/shm */
	/* a container (runc:ID, src/container/runc.h): the dump's hooks; what it
	 * records while frozen goes into the image directory; gone() after the
	 * source's copy was killed (the runtime forgets it) */
	const struct dump_container *container;
	int (*container_record)(void *arg, const char *images_dir);
	/* optional: the rest of the record, which the dump does not read: made
	 * by a thread beside the dump, which waits for it before it writes the
	 * inventory (after container_record) */
	int (*container_record_beside)(void *arg, const char *images_dir);
	/* optional: its steps' times, for the stats (a new JSON object) */
	void *(*container_record_stats)(void *arg);
	void (*container_gone)(void *arg);
	/* right after COMMIT (the destination's copy runs), our copy frozen;
	 * tcp: the tree's TCP sockets as the dump found them (n of them) */
	void (*container_committed)(void *arg, const struct inet_sk_diag *tcp, size_t n);
	void *container_arg;
	const char *container_id;      /* checked by the destination before the freeze */
	const char *container_rootfs;
	/* what it was made from (runc_base_record()): started there at START */
	const uint8_t *container_base;
	size_t container_base_len;
	char **container_bridges;      /* the bridges its veths are on: checked there too */
	size_t n_container_bridges;
	const char *rootfs_dir;    /* the tree runs chrooted into it; its files move too (rootfs.h) */
	enum rfs_mode rootfs_mode; /* RFS_NONE without rootfs_dir */
	/* rootfs_dir is the container's own layer (a Docker container's overlay
	 * upper directory): the tree's paths are relative to its root, which is
	 * not rootfs_dir; the destination puts the files into its own layer */
	bool rootfs_is_layer;
	/* docker:NAME: the container as the source's dockerd describes it (the
	 * destination makes its own from it before the freeze) */
	const char *docker_inspect;
	/* its layer's directories (all: every one), made before it starts there */
	Dm__RootfsEntry **layer_dirs;
	size_t n_layer_dirs;
	bool layer_dirs_all;
	/* its image's layers (diff IDs, lowest first), in START */
	const char *const *image_layers;
	size_t n_image_layers;
	/* the destination lacks its image but has its first layers_here layers:
	 * write the image (a `docker save` tar without those) into fd;
	 * *skipped: the bytes left out */
	int (*image_save)(void *arg, int fd, uint32_t layers_here, uint64_t *skipped);
	/* docker:NAME: its named volumes (the local driver's), each a tree that
	 * moves as its layer does, before the freeze, if the destination takes
	 * them so (MigReply.docker_volume_trees); *volumes_moved is then set,
	 * and container_record leaves them out (else it puts them in the
	 * image, in the freeze) */
	const struct mig_volume *volumes;
	size_t n_volumes;
	bool *volumes_moved;
	/* the container's address is not the same at the destination (a Docker
	 * default bridge): its unaccepted connections are reset in the dump
	 * (dump_opts.reset_unaccepted), and what its locked namespace drops in
	 * the freeze is not taken to the destination (packets to an address
	 * the copy there does not have) */
	bool address_changes;
	/* post-copy, pre-copy, hybrid: the most memory (MiB) shared copy-on-write
	 * between parents and children that goes with the state, inside the
	 * downtime, to come back shared; more comes back as copies
	 * (dump_opts.inherit_max_pages; 0: always copies).  Unset:
	 * MIG_COW_MAX_MIB.  Stop-and-copy always inherits. */
	bool cow_max_set;
	uint64_t cow_max_mib;
};

#define MIG_COW_MAX_MIB 32
/* How long a container's freeze waits for its next answer (--quiet-wait) */
#define MIG_QUIET_WAIT_MS 50

/* a Docker container with more named volumes moves them as tars, in the freeze */
#define MIG_VOLUME_TREES_MAX 8
struct mig_volume {
	const char *name;          /* the volume's (the same on the destination) */
	const char *dir;           /* its data here (its mount point: /var/lib/docker/volumes/NAME/_data) */
	const char *at;            /* where the container sees it (Mounts[].Destination) */
};

struct mig_result {
	pid_t dest_pid;            /* the restored root, in the destination's pid namespace */
	json_t *stats;             /* owned by the caller (json_decref) */
	bool switched;             /* the destination resumed the tree (even if the end failed) */
};

/*
 * Migrate.  Returns 0 when the tree runs on the destination with all its
 * memory and the source copy is gone.  Before the switch-over any error
 * leaves the tree running here as before (ret->switched false).  After it,
 * an error (link lost while pages were still missing) leaves the source tree
 * stopped (SIGSTOP) and says so: the destination kills its incomplete copy.
 * ret->stats is set in every case where there is something to report.
 */
int mig_source_run(const struct mig_source_opts *o, struct mig_result *ret);

struct mig_daemon_opts {
	const char *listen;        /* NULL: "127.0.0.1:7070" */
	const struct net_key *key;
	bool insecure;
	const char *state_dir;     /* NULL: /var/lib/dmigrate */
	unsigned max_migrations;   /* stop after this many (0: run forever) */
	const char *ready_file;    /* written once listening ("ADDR:PORT\n") */
	bool keep_images;          /* debugging: leave incoming images in state_dir */
	int peer_timeout_ms;       /* a source silent this long before the restore is given up; 0: 60 s */
	const char *bridge;        /* a container's veths go on this bridge (NULL: the source's of the same name) */
};

/* Serve until SIGINT/SIGTERM (or max_migrations).  Several migrations at once
 * (MIG_SESSIONS_MAX), each on its own thread: one that fails takes only its own tree. */
int mig_daemon_run(const struct mig_daemon_opts *o);

/* The migration's test points (tests/e2e): base/testpoint.h. */
static inline void mig_test_point(const char *name)
{
	dm_test_point(name);
}
static inline bool mig_test_held(const char *name, uint64_t *since_ns)
{
	return dm_test_held(name, since_ns);
}
