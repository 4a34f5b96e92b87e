/* SPDX-License-Identifier: MIT */
/*
 * A network namespace's interfaces, addresses and IPv4 routes, read over
 * rtnetlink (libmnl) in process: what `ip -d link`, `ip addr` and `ip -o
 * route` print, without running them.  A container's network is recorded
 * while it is frozen, where each fork and exec of `ip` cost 10-40 ms.
 */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>

struct rtnl_link {
	int ifindex;
	char name[IF_NAMESIZE];
	char mac[18];          /* "" without a hardware address of 6 bytes */
	unsigned mtu;
	bool up;               /* IFF_UP */
	char kind[32];         /* IFLA_INFO_KIND ("veth", "bridge"...), "" for none */
	int link;              /* IFLA_LINK: a veth's peer's ifindex (in its namespace); 0 none */
	int master;            /* IFLA_MASTER: ifindex of its bridge; 0 none */
};

struct rtnl_addr {
	int ifindex;
	char addr[64];         /* "ADDR/PREFIX" */
	bool link_scope;       /* RT_SCOPE_LINK */
	bool ipv6;
};

struct rtnl_info {
	struct rtnl_link *links;
	size_t n_links;
	struct rtnl_addr *addrs;
	size_t n_addrs;
	char **routes;         /* IPv4 main table, as `ip -o route show` lines */
	size_t n_routes;
};

/* Of the network namespace nsfd (-1: the calling thread's).  -errno,
 * dm_fail'ed. */
int rtnl_read(int nsfd, struct rtnl_info *ret);
void rtnl_info_done(struct rtnl_info *i);
const struct rtnl_link *rtnl_link_by_index(const struct rtnl_info *i, int ifindex);

/*
 * A watch on what rtnl_read() reads of the namespace nsfd (-1: the calling
 * thread's): a socket that the kernel tells of every change of its links,
 * addresses and IPv4 routes from its opening on.  Open it before the read
 * it guards.  rtnl_watch_changed(): 1 when a change was told (or a notice
 * lost: the socket's buffer overran), 0 when none, -errno; it does not
 * wait.
 */
int rtnl_watch_open(int nsfd, int *ret_fd);
int rtnl_watch_changed(int fd);

/*
 * Making a container's network again (what `ip link add ... type veth peer
 * ... netns`, `ip addr add`, `ip link set ... master/up` and `ip route
 * replace` do), over rtnetlink in process.  A handle is a socket in one
 * network namespace (nsfd -1: the calling thread's).
 */
struct rtnl;
int rtnl_open(int nsfd, struct rtnl **ret);
void rtnl_close(struct rtnl *h);
/* A veth pair: ours (in h's namespace) and its peer, made directly in the
 * namespace of peer_ns_pid with the MAC (NULL: the kernel's) and MTU (0:
 * the default) given. */
int rtnl_veth_add(struct rtnl *h, const char *ours, const char *peer, pid_t peer_ns_pid, const char *peer_mac,
		  unsigned peer_mtu);
/* "ADDR/PREFIX" on interface ifname; IPv6 without duplicate address detection */
int rtnl_addr_add(struct rtnl *h, const char *ifname, const char *addr);
/* master: a bridge's name (NULL: unchanged); then up */
int rtnl_link_up(struct rtnl *h, const char *ifname, const char *master);
/* on the bridge master, its state unchanged (a port that is down forwards nothing) */
int rtnl_link_master(struct rtnl *h, const char *ifname, const char *master);
/* The interface goes (a veth: both ends) */
int rtnl_link_del(struct rtnl *h, const char *ifname);
/* An IPv4 route given as rtnl_read() (`ip -o route`) words: 1 done, 0 it
 * has a word this parser does not know (the caller runs ip(8) for it). */
int rtnl_route_replace(struct rtnl *h, const char *line);
