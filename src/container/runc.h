/* SPDX-License-Identifier: MIT */
/*
 * runc (OCI) containers: checkpoint target `runc:ID` and restore under runc
 * (docs/containers.md).
 *
 * Checkpoint:
 *   runc_open(root, id)       runc's state of the container, its config, its
 *                             cgroup freezer; refusals that need no freeze
 *   runc_dump_hooks()         struct dump_container for dump_opts.container:
 *                             freeze/thaw of its cgroup, the tree check
 *   runc_record(images)       while the tree is frozen: hostname, mounts,
 *                             interfaces, cgroup limits, tmpfs contents (tar
 *                             files in the image), refusals of what runc does
 *                             not make again (run-time mounts, SysV IPC, ...)
 *   runc_record_head/_tail()  the same in two parts, a migration's second one
 *                             beside the dump of the processes
 *   runc_finish(leave)        after the dump: `runc delete` unless left running
 * Restore (the image's Inventory.container):
 *   runc_restore_start()      a config copy whose process is our static stub,
 *                             `runc run -d`, tmpfs contents and hostname put
 *                             back; restore_opts.stub_pid/stub_sock/root_fd
 *                             (= launch, prepare, put_back; a migration does
 *                             the first two at START and the put-back beside
 *                             the restore: runc_restore_put_back_async())
 *   runc_restore_done()       after restore_tree(): the config copy goes; on
 *                             failure the container goes too (`runc delete -f`)
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "base/child.h"
#include "dump/dump.h"
#include "image/image.h"
#include "restore/restore.h"

#define RUNC_DEFAULT_ROOT "/run/runc"
/* The config annotation that keeps the user's bundle across restores. */
#define RUNC_BUNDLE_ANNOTATION "org.dmigrate.bundle"

struct runc_ct;

int runc_open(const char *root, const char *id, struct runc_ct **ret);
pid_t runc_init_pid(const struct runc_ct *ct);
const char *runc_id(const struct runc_ct *ct);
/* The absolute path of its rootfs (root.path of its config, in its bundle). */
const char *runc_rootfs(const struct runc_ct *ct);
/* A destination, before the source freezes: runc runs here, the ID is free
 * under root (NULL: RUNC_DEFAULT_ROOT), the rootfs is here. */
int runc_check_here(const char *root, const char *id, const char *rootfs);
/* The bridges its veths' host ends are on (runc_bridges(), before the freeze:
 * unique, malloc'd), and a destination's check that it has each (in its own
 * network namespace, where the restore makes the veths again); given: the
 * one bridge of dmigrated --bridge instead. */
int runc_bridges(struct runc_ct *ct, char ***ret, size_t *ret_n);
int runc_check_bridges(const char *id, char *const *bridges, size_t n, bool given);
const struct dump_container *runc_dump_hooks(struct runc_ct *ct);
int runc_record(struct runc_ct *ct, const char *images_dir);
/* runc_record() in two parts, for a migration that dumps the tree beside the
 * second: head, what the dump reads of the record first (the namespaces)
 * and the host name; tail, the rest (IPC objects, network, fds on host
 * mounts, cgroup limits, mounts and tmpfs files), which reads nothing the
 * dump changes; the dump waits for its IPC objects before it reads them
 * (dump_container.wait_ipc). */
int runc_record_head(struct runc_ct *ct, const char *images_dir);
int runc_record_tail(struct runc_ct *ct, const char *images_dir);
/* how long runc_record()'s steps took (a new JSON object, ms) */
json_t *runc_record_stats_json(const struct runc_ct *ct);
/* The container belongs to a manager above runc (Docker): runc_finish()
 * leaves its deletion to it. */
void runc_set_managed(struct runc_ct *ct);
/* After a dump without --leave-running: the container is stopped: delete it. */
int runc_finish(struct runc_ct *ct, bool left_running);
void runc_free(struct runc_ct *ct);

struct runc_restore_opts {
	const char *images_dir;
	const char *bundle;     /* NULL: the recorded one */
	const char *name;       /* NULL: the recorded id */
	const char *root;       /* NULL: RUNC_DEFAULT_ROOT */
	const char *bridge;     /* NULL: each veth's host end on the bridge it was on */
	/* runc_restore_attach(): another runtime (Docker) made the container
	 * from its own config: its network and cgroup limits are its own */
	bool runtime_made;
	/* runc_restore_attach(): its network namespace is locked already
	 * (NETLOCK_NETNS_NAME), from its start */
	bool net_locked;
};

struct runc_started {
	char *id, *root, *tmp_bundle;
	pid_t pid;              /* the stub, the container's init (host pid) */
	int sock;               /* our end of the stub's transport */
	int root_fd;            /* the container's / (O_PATH) */
	bool net_locked;        /* its new network namespace is locked (NETLOCK_NETNS_NAME) */
	char **ann_if, **ann_addr; /* addresses to announce once the tree runs (n_ann) */
	size_t n_ann;
	int *shm_rmid;          /* SysV segments to remove again once the tree runs */
	size_t n_shm_rmid;
	/* how long each step of the put-back took (ms; the stats' "container") */
	struct runc_job *job;   /* runc_restore_put_back_async()'s thread */
	/* the network runc_restore_prepare() made (runc_net_key(): the record's
	 * interfaces and routes, packed), our ends not attached yet */
	uint8_t *net_made;
	size_t net_made_len;
	/* the new container's limits as runc made them (runc_cgroup_snapshot():
	 * at its launch, out of the downtime), to compare the record with, and
	 * an inotify watch on their files (cg_watch, if cg_watch_open: closed
	 * by runc_restore_done(), out of the downtime) */
	struct runc_cg_now {
		char *controller, *file, *dir, *value;
	} *cg_now;
	size_t n_cg_now;
	bool cg_snap, cg_watch_open;
	int cg_watch;
	/* how long each step of the put-back took (ms; the stats' "container") */
	struct runc_putback_times {
		double launch, early_lock, early_net, netlock, net, hostname, ipc, tmpfs, cgroup;
	} t;
};

/* s->t as JSON (a new object) */
json_t *runc_putback_stats_json(const struct runc_started *s);

/* Creates the container with the stub as its init; fills *ret (and, on
 * failure, has removed what it made).  = runc_restore_launch() and
 * runc_restore_put_back(). */
int runc_restore_start(const Dm__Container *m, const struct runc_restore_opts *o,
		       struct runc_started *ret);
/* Its first half, which needs only what the container was made from (m's
 * runtime, id, bundle and config): `runc run -d` of the stub, which waits.
 * A migration does it at START, before the source freezes anything
 * (runc_base_record()). */
int runc_restore_launch(const Dm__Container *m, const struct runc_restore_opts *o,
			struct runc_started *ret);
/* Between the two, what can be made from a description of the container
 * before it is frozen (base: what it was made from, and its interfaces and
 * routes as they were then, runc_base_record()): its new network namespace
 * locked; its veths made, addresses, its ends up, routes, our ends on their
 * bridges but down (nothing reaches the segment yet).  Put-back then only
 * sets our ends up, or, if the full record differs, makes the network
 * again.  On failure the container is removed. */
int runc_restore_prepare(const Dm__Container *base, const struct runc_restore_opts *o, struct runc_started *s);
/* Its second half, with the whole record: what runc did not make again
 * (network, host name, tmpfs files, IPC, cgroup limits).  On failure the
 * container is removed (runc_restore_done(s, false)). */
int runc_restore_put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s);
/* The same, in a migration's downtime: the network's check now (a network
 * that changed since START is made again now), the rest by a thread of
 * ours beside restore_tree(), which waits for it where it needs it:
 * restore_opts.beside_wait = runc_restore_wait, beside_arg = s (the SysV
 * IPC objects and tmpfs files before the tree's address spaces; our ends
 * of the veths made at START up on their bridges; the host name and cgroup
 * limits, which it applies once the tree's processes exist, before their
 * credentials and scheduling).  s must stay where it is until
 * runc_restore_done(), which ends the thread.  On failure the container is
 * removed. */
int runc_restore_put_back_async(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s);
int runc_restore_wait(void *s, int stage);
/* What the container was made from (runtime, id, bundle, config, runc
 * root) and its network interfaces and routes as they are now, packed (a
 * Container message, malloc'd): for runc_restore_launch() and
 * runc_restore_prepare() on the destination at START.  After
 * runc_dump_hooks(). */
int runc_base_record(struct runc_ct *ct, uint8_t **ret, size_t *ret_len);
/* a and b record the same container (runtime, id, bundle, config) */
bool runc_same_container(const Dm__Container *a, const Dm__Container *b);
/* A container another runtime made with the stub as its init (docker.h):
 * pid the stub (host pid), sock our end of its transport (taken over).  Puts
 * back what the runtime does not make (tmpfs files, host name); *ret as for
 * runc_restore_start(), without a container of ours to delete. */
int runc_restore_attach(const Dm__Container *m, const struct runc_restore_opts *o, pid_t pid,
			int sock, struct runc_started *ret);
/* The stub's config: the container's process made into the restore's stub. */
void runc_stub_process(json_t *config);
/* What the stub's container init gets: a memfd holding the stub (its fd
 * EXT_STUB_EXE) and a SOCK_DGRAM pair, [1] its transport (EXT_STUB_SOCK),
 * [0] ours. */
int runc_stub_fds(int *ret_exe, int ret_sock[2]);
/* The tree runs: its addresses announced on its segment (gratuitous ARP,
 * unsolicited NA), once; with unlock, its namespace's lock removed if it is
 * still ours (the restore removes the one it holds: a tree with sockets).
 * From restore_opts.after_resume, and runc_restore_done(). */
void runc_restore_announce(struct runc_started *s, bool unlock);
/* ok: the tree runs (runc_restore_announce() if not done yet); else the
 * container is deleted.  Frees *s. */
void runc_restore_done(struct runc_started *s, bool ok);
/*
 * A container runc_restore_launch() made (root, id, its temporary bundle)
 * that the daemon which made it never took nor removed (it died): deleted,
 * with the bundle, if runc shows it stopped (the stub exits when its
 * transport's other end closes).  1: gone (deleted, or runc does not know
 * it), 0: left (it runs: not a dead daemon's), -errno.
 */
int runc_sweep_early(const char *root, const char *id, const char *tmp_bundle);

/* Runs argv with stdin /dev/null, stdout and stderr into memfds; extra: fds
 * put at 3, 4, ... in the child; *ret_out, *ret_err (malloc'd, may be NULL)
 * what it printed.  It may take limit_ms (CHILD_WAIT_*, base/child.h): then
 * its process group is killed and -ETIMEDOUT comes back, named.  The exit
 * status (>= 0), or -errno with its message. */
int ctr_run(const char *const argv[], const int *extra, size_t n_extra, int limit_ms, char **ret_out,
	    char **ret_err);
/* ctr_run() with the child nice_inc nicer than us (at most 19). */
int ctr_run_nicer(const char *const argv[], const int *extra, size_t n_extra, int limit_ms, int nice_inc,
		  char **ret_out, char **ret_err);

/* Parses "runc:ID" / "pid:PID"; returns 1 for runc (id set), 0 for pid. */
int runc_parse_target(const char *arg, const char **ret_id, pid_t *ret_pid);
