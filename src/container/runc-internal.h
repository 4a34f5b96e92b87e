/* SPDX-License-Identifier: MIT */
/* Inside the runc containers' modules (runc*.c): the container as read
 * from runc, and the helpers they share. */
#pragma once

#include "container/runc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define APPEND(arr, n, v)                                                      \
	do {                                                                   \
		(arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr)));           \
		(arr)[(n)++] = (v);                                            \
	} while (0)
#define RUNC_COPY_PREFIX "/run/dmigrate/runc-"

struct runc_ct {
	char *root, *id;
	pid_t pid;
	char *bundle;
	char *copy_bundle;      /* a container we restored: the config copy runc runs it from */
	char *rootfs;           /* absolute */
	char *freezer;          /* v1: the freezer cgroup directory */
	char *cg2;              /* v2: the cgroup directory (cgroup.freeze) */
	json_t *state;          /* state.json */
	json_t *config;         /* the bundle's config.json */
	Dm__Container *msg;
	struct dump_container hooks;
	bool managed;           /* another manager's (Docker's): never `runc delete` it */
	/* runc_record_tail() reads the IPC namespace beside the dump (set by
	 * runc_record_head(): it will); the dump waits for it before it reads
	 * msg->ipc (dump_container.wait_ipc) */
	bool ipc_expected, ipc_done;
	pthread_mutex_t ipc_lock;
	pthread_cond_t ipc_cond;
	/* runc_record()'s steps (ms), for the stats */
	struct { double ns, hostname, net, fds, cgroup, mounts, ipc_wait; } rt;
	/* the network as runc_base_record() read it while the container ran,
	 * and the watches opened before that read (its namespace's and ours,
	 * rtnl_watch_open()): the frozen record takes it if neither saw a
	 * change and the init is in the same namespace (net_early_used) */
	Dm__Container *net_early;
	int net_watch[2];
	dev_t net_early_dev;
	ino_t net_early_ino;
	bool net_early_used;
};

/* ---- runc-cmd.c ---- */
const char *runc_msg(char *err);
int runc_in_ns(pid_t pid, const char *nstype, int (*fn)(void *), void *arg, char **ret_out);

/* ---- runc-cgroup.c ---- */
int runc_list_procs(void *arg, pid_t **ret, size_t *ret_n);
int runc_check_tree(void *arg, const pid_t *pids, size_t n);
void runc_record_cgroup(struct runc_ct *ct);
int runc_put_back_cgroup(const Dm__Container *m, struct runc_started *s);
/* The limits of the container s just made, read now (its launch): the
 * put-back compares the record with them instead of reading runc's state
 * and every file again in the downtime.  Without one (a failure here is
 * not one: the put-back reads them then), the put-back reads them. */
void runc_cgroup_snapshot(struct runc_started *s);
void runc_cgroup_snapshot_free(struct runc_started *s);

/* ---- runc-record.c ---- */
int runc_uts_hostname(pid_t pid, char **ret_get, const char *set);

/* ---- runc-net.c ---- */
int runc_record_net(struct runc_ct *ct);
/* Before runc_base_record()'s read of the network: the watches on it
 * (best effort: without them the frozen record reads it again). */
void runc_net_early_watch(struct runc_ct *ct);
/* That read's result (a message holding interfaces and routes), kept */
void runc_net_early_keep(struct runc_ct *ct, Dm__Container *net);
/* The frozen record's network: the early one if nothing changed since,
 * else read now (runc_record_net()) */
int runc_record_net_frozen(struct runc_ct *ct);
void runc_net_early_drop(struct runc_ct *ct);
bool runc_config_new_netns(const Dm__Container *m);
bool runc_has_veth(const Dm__Container *m);
/*
 * Our ends of the veths of a network namespace runc made, deleted (with
 * their pairs) while it is still locked: once its tree is dead the kernel
 * takes the namespace apart on a work queue, and its nftables lock goes
 * before its devices do: a peer's retransmission meeting its addresses then
 * was answered with a reset (a client's connection to the checkpointed
 * container died), and the names stayed taken for a restore right after.
 */
void runc_net_remove_ours(const Dm__Container *m);
int runc_net_lock(pid_t pid, struct runc_started *s);
void runc_net_key(const Dm__Container *m, uint8_t **ret, size_t *ret_len);
int runc_net_make(const Dm__Container *m, pid_t pid, const char *bridge, bool attach);
int runc_put_back_net(const Dm__Container *m, pid_t pid, const char *bridge, struct runc_started *s,
		      bool *attach_later);
/* Our ends of the container's veths up, on their bridges (the last step of
 * a network made early, which runc_put_back_net() left: *attach_later) */
int runc_net_attach(const Dm__Container *m, const char *bridge);
int runc_lock_and_announce(const Dm__Container *m, struct runc_started *s);

/* ---- runc-putback.c ---- */
int runc_put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s);
void runc_job_end(struct runc_started *s);
