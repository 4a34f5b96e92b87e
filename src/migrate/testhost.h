/* SPDX-License-Identifier: MIT */
/*
 * Two test hosts on one machine (tests/e2e, tests/containers, bench/,
 * `dmigrate demo`).  docs/net.md has the picture with the containers'
 * segment; in short:
 *
 *   host namespace:  ip route unreachable 198.18.0.0/15 and
 *                    ip -6 route unreachable 2001:db8:d1::/64 (so that
 *                    nothing addressed to the test ranges leaves the machine)
 *
 *   +----------- host "a" -----------+        +----------- host "b" -----------+
 *   | netns PREFIX-a                 |  veth  | netns PREFIX-b                 |
 *   |   PREFIX-a0 198.18.0.1/24  <-------------> PREFIX-b0 198.18.0.2/24      |
 *   |   [tbf 1gbit > pfifo_fast]     |        |   [tbf 1gbit > pfifo_fast]     |
 *   |   dmbr0 198.19.0.1/24      <-- veth --> dmbr0 198.19.0.2/24            |
 *   |     ^ PREFIX-cl                |  (al/bl)                              |
 *   | mount ns: tmpfs on             |        | mount ns: tmpfs on             |
 *   |   /var/lib/dmigrate, own /proc,|        |   /var/lib/dmigrate, own /proc,|
 *   |   /sys/fs/cgroup, /run/runc    |        |   /sys/fs/cgroup, /run/runc    |
 *   | cgroup ns: testhost-PREFIX-a   |        | cgroup ns: testhost-PREFIX-b   |
 *   | pid ns + uts ns: init = a      |        | pid ns + uts ns                |
 *   |   small reaper (pid 1)         |        |                                |
 *   +--------------------------------+        +--------------------------------+
 *        |
 *   netns PREFIX-c: PREFIX-c0 198.19.0.3/24 (the client, on a's bridge)
 *
 * The optional link: a token bucket (tbf) at 1 Gbit/s on each end, whose
 * queue is pfifo_fast, the queueing discipline a Linux host puts on a NIC by
 * default (net.core.default_qdisc): frames marked interactive go before
 * bulk ones.  fifo_link keeps tbf's own single FIFO instead: a bottleneck
 * that serves every flow in arrival order (a plain switch port).
 *
 * The containers' segment (198.19.0.0/24, 2001:db8:d1::/64): a bridge
 * dmbr0 in each host, the two joined by a veth pair, and a client network
 * namespace on it.  Containers take addresses from .16 (::16) on, the host
 * end of their veth on the bridge of the host they run in.
 *
 * Each host has cgroups of its own (testhost-PREFIX-a in every hierarchy,
 * below the cgroup of whoever ran `testhost up`) and a cgroup namespace
 * rooted there; its mount namespace mounts the hierarchies again, so
 * /sys/fs/cgroup in the host shows only its own cgroups, and /run/runc is
 * its own directory (TESTHOST_STATE_DIR/PREFIX/runc-a): runc in host b sees
 * neither host a's containers nor their cgroups.
 *
 * Everything else (the file system) is shared with the machine, so a
 * program started in host a can be restored in host b from the same paths.
 * Each host's init is a process of ours whose stdio is /dev/null (it must
 * not hold a caller's pipe open); a command "runs in a host" when it is a
 * child of a helper that joined the host's cgroups and the init's cgroup,
 * net, uts, pid and mount namespaces.  Everything made is recorded under
 * /run/dmigrate-testhost/PREFIX/ and removed by testhost_down(), which is
 * safe to call at any point (also after a half-failed testhost_up()).
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#define TESTHOST_PREFIX_DEFAULT "dmt"
#define TESTHOST_STATE_DIR "/run/dmigrate-testhost"

/* the containers' segment */
#define TESTHOST_BRIDGE "dmbr0"
#define TESTHOST_SEG_PREFIX "198.19.0."   /* .1 a's bridge, .2 b's, .3 the client */
#define TESTHOST_SEG_LEN 24
#define TESTHOST_SEG6_PREFIX "2001:db8:d1::"
#define TESTHOST_SEG6_LEN 64
#define TESTHOST_SEG6_NET "2001:db8:d1::/64"
#define TESTHOST_SEG_FIRST_FREE 16        /* containers: .16 - .254 */

struct testhost_opts {
	const char *prefix;  /* netns PREFIX-a/-b, veth PREFIX-a0/-b0; NULL: "dmt" (<= 10 chars) */
	bool tbf;            /* a token bucket on both veth ends */
	const char *rate;    /* tbf rate; NULL: "1gbit" */
	bool fifo_link;      /* tbf's own FIFO, not pfifo_fast, queues in front of the link */
};

/* Host index: 0 = "a" (198.18.0.1), 1 = "b" (198.18.0.2). */
const char *testhost_addr(int host);
/* "a"/"b" -> 0/1, else -EINVAL */
int testhost_parse(const char *name);

int testhost_up(const struct testhost_opts *o);
/* Remove everything testhost_up() recorded; idempotent. */
int testhost_down(const char *prefix);
/* The host's init (pid in the caller's pid namespace), -ENOENT if not up. */
int testhost_init_pid(const char *prefix, int host, pid_t *ret_pid);

/*
 * Start argv in the host, in the background: a new session, stdin from
 * /dev/null, stdout+stderr to out_path (appended) or /dev/null, cwd the
 * caller's.  ret_pid: the process as seen from the caller's pid namespace.
 * The process is not our child (the host's init reaps it).
 */
int testhost_spawn(const char *prefix, int host, char *const argv[], const char *out_path,
		   pid_t *ret_pid);
/* "key=value" lines that name what the hosts are made of (netns, addresses,
 * runc roots, cgroups, the segment), for scripts. */
int testhost_info(const char *prefix, FILE *out);
/* Run argv in the host with the caller's stdio and wait: its exit status
 * (0..255, 128+signal), or -errno if it could not be started. */
int testhost_run(const char *prefix, int host, char *const argv[]);
