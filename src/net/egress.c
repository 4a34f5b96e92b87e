/* SPDX-License-Identifier: MIT */
/*
 * Egress queueing: does the queue in front of this host's link serve the
 * frames marked interactive (faults) before those marked bulk?
 *
 * The bulk push of a post-copy migration shares the link with fault replies.
 * Where the host's queueing discipline orders traffic by priority
 * (pfifo_fast, prio, ets) or isolates flows (fq_codel, fq, cake, sfq,
 * fq_pie), a fault reply passes the queued bulk data, and the push may keep
 * as much in flight as TCP likes.  Where it is one FIFO (a bare tbf, htb or
 * pfifo), every byte of bulk data queued there delays the next fault: the
 * push must keep little in flight.  This module finds the device a connected
 * socket leaves by (the one holding its local address) and reads that
 * device's qdisc tree over rtnetlink (libmnl).
 */
#include "net/net.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Leaf qdiscs that serve by priority band or by flow, never one FIFO for all. */
static const char *const ordering[] = {
	"pfifo_fast", "prio", "ets", "skbprio", "fq_codel", "fq", "fq_pie", "cake", "sfq",
};

static bool kind_orders(const char *kind)
{
	for (size_t i = 0; i < ARRAY_SIZE(ordering); i++)
		if (!strcmp(kind, ordering[i]))
			return true;
	return false;
}

const char *net_queueing_name(enum net_queueing q)
{
	switch (q) {
	case NET_Q_PRIORITY: return "priority";
	case NET_Q_FIFO: return "fifo";
	default: return "unknown";
	}
}

enum net_queueing net_qdisc_classify(const struct net_qdisc *q, size_t n, char *desc, size_t desclen)
{
	const char *root = NULL, *leaf = NULL, *fifo = NULL;
	size_t leaves = 0;
	enum net_queueing v;

	for (size_t i = 0; i < n; i++)
		if (q[i].parent == TC_H_ROOT)
			root = q[i].kind;
	if (!root || !strcmp(root, "noqueue")) {
		snprintf(desc, desclen, "%s", root ? root : "no qdisc");
		return NET_Q_UNKNOWN;
	}
	for (size_t i = 0; i < n; i++) {
		/* ingress and clsact (same handle ffff:) see received packets only */
		if (q[i].parent == TC_H_INGRESS || TC_H_MAJ(q[i].handle) == TC_H_MAJ(TC_H_INGRESS))
			continue;
		/* a leaf: no other qdisc hangs from one of its classes */
		bool parent = false;
		for (size_t j = 0; j < n && !parent; j++)
			parent = j != i && q[j].parent != TC_H_ROOT &&
				 TC_H_MAJ(q[j].parent) == TC_H_MAJ(q[i].handle);
		if (parent)
			continue;
		leaves++;
		if (q[i].parent != TC_H_ROOT && !leaf)
			leaf = q[i].kind;
		if (!kind_orders(q[i].kind) && !fifo)
			fifo = q[i].kind;
	}
	v = !leaves ? NET_Q_UNKNOWN : fifo ? NET_Q_FIFO : NET_Q_PRIORITY;
	snprintf(desc, desclen, "%s%s%s%s%s", root, leaf ? " > " : "", leaf ? leaf : "",
		 fifo ? ": one fifo in " : "", fifo ? fifo : "");
	return v;
}

struct qdisc_dump {
	int ifindex;
	struct net_qdisc *q;
	size_t n, cap;
};

static int attr_kind(const struct nlattr *a, void *data)
{
	const char **kind = data;
	if (mnl_attr_get_type(a) == TCA_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
		*kind = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

static int on_qdisc(const struct nlmsghdr *nlh, void *data)
{
	struct qdisc_dump *d = data;
	const struct tcmsg *t = mnl_nlmsg_get_payload(nlh);
	const char *kind = NULL;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*t) || t->tcm_ifindex != d->ifindex)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*t), attr_kind, &kind);
	if (!kind)
		return MNL_CB_OK;
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 8;
		d->q = xrealloc(d->q, d->cap * sizeof(*d->q));
	}
	struct net_qdisc *e = &d->q[d->n++];
	e->handle = t->tcm_handle;
	e->parent = t->tcm_parent;
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	return MNL_CB_OK;
}

/* The qdiscs of one device, from an RTM_GETQDISC dump. */
static int read_qdiscs(int ifindex, struct net_qdisc **ret, size_t *ret_n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct qdisc_dump d = { .ifindex = ifindex };
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	int r;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		mnl_socket_close(nl);
		return r;
	}
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETQDISC;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	uint32_t seq = (uint32_t)time(NULL);
	nlh->nlmsg_seq = seq;
	struct tcmsg *t = mnl_nlmsg_put_extra_header(nlh, sizeof(*t));
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = ifindex;
	unsigned portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (len < 0) {
			r = -errno;
			goto out;
		}
		r = mnl_cb_run(buf, (size_t)len, seq, portid, on_qdisc, &d);
		if (r <= MNL_CB_STOP) {
			r = r < 0 ? -errno : 0;
			break;
		}
	}
out:
	mnl_socket_close(nl);
	if (r < 0) {
		free(d.q);
		return r;
	}
	*ret = d.q;
	*ret_n = d.n;
	return 0;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (!a || a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
	return false;
}

int net_egress_of(int fd, struct net_egress *ret)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ifaddrs *ifa = NULL;
	_cleanup_free_ struct net_qdisc *q = NULL;
	size_t n = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->queueing = NET_Q_UNKNOWN;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		if (same_addr(i->ifa_addr, &ss)) {
			snprintf(ret->ifname, sizeof(ret->ifname), "%s", i->ifa_name);
			break;
		}
	freeifaddrs(ifa);
	if (!ret->ifname[0])
		return -ENODEV;
	int ifindex = (int)if_nametoindex(ret->ifname);
	if (!ifindex)
		return -errno;
	r = read_qdiscs(ifindex, &q, &n);
	if (r < 0)
		return r;
	ret->queueing = net_qdisc_classify(q, n, ret->desc, sizeof(ret->desc));
	return 0;
}
