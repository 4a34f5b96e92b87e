/* SPDX-License-Identifier: MIT */
/*
 * What the destination's modules share: dest.c (the phases of one
 * migration), dest-start.c (START's checks and preparation, ACCEPT),
 * dest-guardian.c (the child that kills a tree if we die),
 * dest-daemon.c (the accept loop, the sessions, the sweeps).  Not an
 * interface: the daemon's is mig_daemon_run() (migrate.h).
 */
#pragma once

#include "migrate/mig-internal.h"
#include "migrate/treecg.h"
#include "container/runc.h"
#include "container/docker-mig.h"
#include "mem/mem.h"
#include "restore/restore.h"
#include "compat.h"

#include <pthread.h>
#include <stdatomic.h>

#define LAZY_FEATURES \
	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

struct dsess {
	const struct mig_daemon_opts *o;
	struct net_chan *ctl;
	pthread_mutex_t lock;      /* fault, bulk hand-over */
	pthread_cond_t cond;
	struct net_chan *fault, *bulk;
	uint8_t session[NET_SESSION_LEN];
	char hex[NET_SESSION_HEX_LEN];
	enum mig_mode mode;
	/* post-copy: the source's eager pages arrive before the freeze, into
	 * the store (MigStart.eager_store), and pages of the lazy memory while
	 * a Docker container starts here (MigStart.store_lazy): a fault is
	 * served from it, the rest installed from it after the resume */
	bool eager_store, store_lazy;
	char *dir;                 /* incoming image dir */
	struct mem_store *store;
	struct mem_netsrc *netsrc;
	struct mem_lazy *lazy;
	bool fault_exact;          /* fault requests name the faulting byte (MigStart.fault_exact) */
	struct mig_wire_range *dirty;
	size_t n_dirty;
	pid_t root;
	int root_pidfd;
	struct { pid_t vpid, host; } *pids;  /* restored processes with lazy memory */
	size_t n_pids;
	unsigned vma_fixes;
	bool vma_checked;          /* the source's VMA_FIX came (or none is due) */
	bool resumed, committed;
	bool docker_early;         /* a Docker container was made for it (early_note) */
	bool lock_opened;          /* its Docker container's lock opened before the commit (restore_opts.lock_opened) */
	/* the Docker container started beside the source's preparation
	 * (MigStart.ready_later): READY goes when it runs */
	pthread_t dk_thread;
	bool dk_thread_on;
	int dk_r;
	char dk_err[DM_ERRMSG_MAX];
	struct restore_packets packets; /* NET_FRAMES: delivered to the tree as it is let go */
	uint64_t t_start, t_state_first, t_state, t_rootfs_wait, t_rootfs_ready, t_commit, t_resume, t_done;
	double store_wait_ms;      /* after the state, for the store's end (pre-sent memory in flight) */
	uint64_t fetch_store, fetch_net; /* the restore's lazy_fetch: pages from the store, from the source */
	double fetch_net_ms;       /* the source's round trips of those */
	json_t *prep_stats;      /* START to ACCEPT, step by step (ms from the session's start) */
	struct restore_stats resumed_stats; /* the restore's, read after the resume (the lock's counts) */
	json_t *restore_stats;
	struct mig_watchdog wd;    /* deadlines of the phases where only the peer can move */
	uint64_t reserved;         /* bytes of store_reserved this session holds */
	int guard_fd;              /* our end of the guardian's socket pair, -1 when none */
	pthread_mutex_t guard_lock; /* guard_fd: the handler's thread sends forks' uffds */
	struct treecg cg;          /* the tree's own cgroup (version NONE: none usable) */
	bool container;            /* a container's tree: runc made its cgroup (runc.h) */
	struct docker_dst *docker; /* docker:NAME: the container made here (docker-mig.h) */
	/* runc:ID: its container, started with the restore stub at START */
	struct runc_started runc_early;
	Dm__Container *runc_base;  /* what it was made from (MigStart.container_base) */
	json_t *ctr_stats;         /* its put-back's steps (the stats' restore.container) */
	struct runc_started *ctr_rs; /* while restore_tree() runs: its put-back (times) */
	struct runc_started *announce_rs; /* while restore_tree() runs: the container tree_runs() announces */
	uint64_t t_announced;        /* the container's addresses announced from (tree_runs()) */
	uint64_t t_restore, t_put_back; /* do_restore() began; the put-back ended */
	uint64_t t_lazy_made, t_inventory, t_restore_call; /* in do_restore(): the fault handler made, the inventory read, restore_tree() called */
	double ctr_done_ms;        /* runc_restore_done() after the tree runs */
	/* a Docker container's steps before the restore proper: the runtime's
	 * stub taken over, the volumes put in place, the container's own state
	 * put back (runc_restore_attach) */
	double dk_handoff_ms, dk_volumes_ms, dk_attach_ms;
	json_t *dk_putback;        /* runc_putback_stats_json() of that */
	uint64_t t_held;           /* the restore's hold: the tree complete and stopped */
	uint64_t t_resumed;        /* RESUMED sent: the restored tree waits for COMMIT */
	pid_t guard_pid;
	_Atomic bool finished;
	bool keep_root;            /* a restored root that runs on: reaped by the daemon */
	char *target;              /* "pid:N" on the source (for messages) */
	/* the tree's files (rootfs.h): announced in START, on their own channel */
	enum rfs_mode rfs_mode;    /* RFS_NONE: none move */
	char *rfs_src_dir;         /* the rootfs on the source: image paths under it */
	char *rfs_root;            /* STATE_DIR/rootfs/<session>: data/ the copy, root/ the lazy view */
	char *rfs_data, *rfs_mnt;
	struct net_chan *rfs_chan;
	struct net_chan *rfs_miss;  /* the chunks the tree is blocked on (rootfs.h) */
	struct rfs_receiver *rfs;
	struct rfs_view *view;     /* the lazy view the tree runs in (priority, lazy) */
	/* a Docker container's named volumes as trees (MigStart.docker_volume_trees):
	 * their channels as they joined (lock), then by volume, and receivers */
	size_t n_vol, n_vol_in;
	struct net_chan *vol_in[2 * MIG_VOLUME_TREES_MAX];
	struct net_chan *vol_chan[MIG_VOLUME_TREES_MAX], *vol_miss[MIG_VOLUME_TREES_MAX];
	struct rfs_receiver *vol[MIG_VOLUME_TREES_MAX];
	char *vol_name[MIG_VOLUME_TREES_MAX];
	pthread_t thread;
};

static inline int peer_timeout_ms(const struct dsess *s)
{
	return s->o->peer_timeout_ms > 0 ? s->o->peer_timeout_ms : MIG_WAIT_SILENT_MS;
}

/* ---- dest.c ------------------------------------------------------------- */

/* A session's thread (dsess.thread): its phases, then its cleanup; it sets
 * s->finished last. */
void *session_thread(void *arg);

/* ---- dest-start.c ------------------------------------------------------- */

/* START: its checks, the preparation, ACCEPT (NEED_IMAGE and the image
 * before it, for a Docker container whose image is not here) */
int handle_start(struct dsess *s);
/* The container's start, if it runs in its thread: over, and how it went. */
int dk_start_join(struct dsess *s);
/* at the session's end: what START reserved for it is free again */
void dst_unreserve(struct dsess *s);
/* the record of a container made at START (<state>/early/<session>); at
 * the session's end its removal with the container, unless the tree runs
 * in it; at the daemon's start, the containers of the records a killed
 * daemon left */
void early_note(struct dsess *s);
void early_settle(struct dsess *s);
void sweep_early(const struct mig_daemon_opts *o);

/* ---- dest-guardian.c ---------------------------------------------------- */

/* the guardian of the tree's cgroup (s->cg): forked before the restore */
int guardian_start(struct dsess *s);
/* a restored process, a uffd of the tree: the guardian kills it, keeps it */
void guardian_add(struct dsess *s, pid_t pid);
void guardian_add_uffd(struct dsess *s, int uffd);
/* mem_lazy_opts.on_fork_uffd (arg: the session) */
void guardian_fork_uffd(void *arg, int uffd);
/* commit: the guardian leaves the tree alone; else it kills it */
void guardian_end(struct dsess *s, bool commit);
