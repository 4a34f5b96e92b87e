/* SPDX-License-Identifier: MIT */
/*
 * Interfaces, addresses and IPv4 routes of a network namespace over
 * rtnetlink (rtnl.h).  The socket is made inside the namespace (the calling
 * thread enters it for the socket() call only: a socket stays in the
 * namespace it was made in), then three dumps.
 */
#define LOG_PREFIX "net: "
#include "net/rtnl.h"
#include "net/inet.h"
#include "base/log.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct dump {
	struct rtnl_info *info;
	int err;
};

static int link_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, IFLA_MAX) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int info_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, IFLA_INFO_MAX) < 0)
		return MNL_CB_OK;
	tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int on_link(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };
	struct rtnl_link l = { .ifindex = ifi->ifi_index, .up = ifi->ifi_flags & IFF_UP };

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifi), link_attr, tb);
	if (tb[IFLA_IFNAME])
		snprintf(l.name, sizeof(l.name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
	if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6) {
		const unsigned char *m = mnl_attr_get_payload(tb[IFLA_ADDRESS]);
		snprintf(l.mac, sizeof(l.mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
			 m[5]);
	}
	if (tb[IFLA_MTU])
		l.mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
	if (tb[IFLA_LINK])
		l.link = (int)mnl_attr_get_u32(tb[IFLA_LINK]);
	if (tb[IFLA_MASTER])
		l.master = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
	if (tb[IFLA_LINKINFO]) {
		const struct nlattr *ti[IFLA_INFO_MAX + 1] = { 0 };
		mnl_attr_parse_nested(tb[IFLA_LINKINFO], info_attr, ti);
		if (ti[IFLA_INFO_KIND])
			snprintf(l.kind, sizeof(l.kind), "%s", mnl_attr_get_str(ti[IFLA_INFO_KIND]));
	}
	struct rtnl_info *i = d->info;
	i->links = xrealloc(i->links, (i->n_links + 1) * sizeof(*i->links));
	i->links[i->n_links++] = l;
	return MNL_CB_OK;
}

static int addr_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, IFA_MAX) < 0)
		return MNL_CB_OK;
	tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int on_addr(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1] = { 0 };
	char text[INET6_ADDRSTRLEN];

	if (nlh->nlmsg_type != RTM_NEWADDR || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr, tb);
	/* as `ip addr` says "local": IFA_LOCAL where there is one (IPv4; the
	 * peer's is IFA_ADDRESS on a point-to-point link), else IFA_ADDRESS */
	const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	size_t want = ifa->ifa_family == AF_INET ? 4 : 16;
	if (!a || mnl_attr_get_payload_len(a) != want ||
	    !inet_ntop(ifa->ifa_family, mnl_attr_get_payload(a), text, sizeof(text)))
		return MNL_CB_OK;
	struct rtnl_addr e = { .ifindex = (int)ifa->ifa_index, .link_scope = ifa->ifa_scope == RT_SCOPE_LINK,
			       .ipv6 = ifa->ifa_family == AF_INET6 };
	snprintf(e.addr, sizeof(e.addr), "%s/%u", text, ifa->ifa_prefixlen);
	struct rtnl_info *i = d->info;
	i->addrs = xrealloc(i->addrs, (i->n_addrs + 1) * sizeof(*i->addrs));
	i->addrs[i->n_addrs++] = e;
	return MNL_CB_OK;
}

static int route_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, RTA_MAX) < 0)
		return MNL_CB_OK;
	tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static const char *proto_name(unsigned p, char *buf, size_t size)
{
	switch (p) {
	case RTPROT_KERNEL: return "kernel";
	case RTPROT_BOOT: return "boot";
	case RTPROT_STATIC: return "static";
	case RTPROT_DHCP: return "dhcp";
	case RTPROT_RA: return "ra";
	default: snprintf(buf, size, "%u", p); return buf;
	}
}

static const char *scope_name(unsigned s, char *buf, size_t size)
{
	switch (s) {
	case RT_SCOPE_LINK: return "link";
	case RT_SCOPE_HOST: return "host";
	case RT_SCOPE_SITE: return "site";
	default: snprintf(buf, size, "%u", s); return buf;
	}
}

static const char *type_name(unsigned t)
{
	switch (t) {
	case RTN_UNICAST: return "";
	case RTN_UNREACHABLE: return "unreachable";
	case RTN_BLACKHOLE: return "blackhole";
	case RTN_PROHIBIT: return "prohibit";
	case RTN_THROW: return "throw";
	default: return NULL;
	}
}

/* One IPv4 route of the main table as `ip -o route show` prints it (the
 * words `ip route replace` takes back); links must be read already. */
static int on_route(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	char dst[INET_ADDRSTRLEN + 4] = "default", a[INET_ADDRSTRLEN], nb[16], line[512];
	size_t n = 0;

	if (nlh->nlmsg_type != RTM_NEWROUTE || rt->rtm_family != AF_INET || (rt->rtm_flags & RTM_F_CLONED))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rt), route_attr, tb);
	unsigned table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rt->rtm_table;
	if (table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	const char *type = type_name(rt->rtm_type);
	if (tb[RTA_DST] && mnl_attr_get_payload_len(tb[RTA_DST]) == 4) {
		inet_ntop(AF_INET, mnl_attr_get_payload(tb[RTA_DST]), a, sizeof(a));
		if (rt->rtm_dst_len == 32)
			snprintf(dst, sizeof(dst), "%s", a);
		else
			snprintf(dst, sizeof(dst), "%s/%u", a, rt->rtm_dst_len);
	}
	if (!type || tb[RTA_MULTIPATH]) {
		if (!d->err)
			d->err = dm_fail(-ENOTSUP, "route %s: %s: not supported", dst,
					 tb[RTA_MULTIPATH] ? "several next hops" : "a route type of its own");
		return MNL_CB_OK;
	}
#define ADD(...) n += (size_t)snprintf(line + n, n < sizeof(line) ? sizeof(line) - n : 0, __VA_ARGS__)
	if (type[0])
		ADD("%s ", type);
	ADD("%s", dst);
	if (tb[RTA_GATEWAY] && mnl_attr_get_payload_len(tb[RTA_GATEWAY]) == 4 &&
	    inet_ntop(AF_INET, mnl_attr_get_payload(tb[RTA_GATEWAY]), a, sizeof(a)))
		ADD(" via %s", a);
	if (tb[RTA_OIF]) {
		const struct rtnl_link *l = rtnl_link_by_index(d->info, (int)mnl_attr_get_u32(tb[RTA_OIF]));
		if (l)
			ADD(" dev %s", l->name);
	}
	if (rt->rtm_protocol != RTPROT_BOOT)
		ADD(" proto %s", proto_name(rt->rtm_protocol, nb, sizeof(nb)));
	if (rt->rtm_scope != RT_SCOPE_UNIVERSE)
		ADD(" scope %s", scope_name(rt->rtm_scope, nb, sizeof(nb)));
	if (tb[RTA_PREFSRC] && mnl_attr_get_payload_len(tb[RTA_PREFSRC]) == 4 &&
	    inet_ntop(AF_INET, mnl_attr_get_payload(tb[RTA_PREFSRC]), a, sizeof(a)))
		ADD(" src %s", a);
	if (tb[RTA_PRIORITY])
		ADD(" metric %u", mnl_attr_get_u32(tb[RTA_PRIORITY]));
	if (rt->rtm_flags & RTNH_F_ONLINK)
		ADD(" onlink");
#undef ADD
	if (n >= sizeof(line)) {
		if (!d->err)
			d->err = dm_fail(-E2BIG, "route %s: too long", dst);
		return MNL_CB_OK;
	}
	struct rtnl_info *i = d->info;
	i->routes = xrealloc(i->routes, (i->n_routes + 1) * sizeof(*i->routes));
	i->routes[i->n_routes++] = xstrdup(line);
	return MNL_CB_OK;
}

static int dump(struct mnl_socket *nl, uint16_t type, int family, mnl_cb_t cb, struct dump *d)
{
	char buf[32768]; /* a dump's messages come in up to 32 KiB */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	static uint32_t seq0;
	uint32_t seq = ++seq0 + (uint32_t)time(NULL);
	int r;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	struct rtgenmsg *g = mnl_nlmsg_put_extra_header(nlh, type == RTM_GETLINK ? sizeof(struct ifinfomsg)
										 : type == RTM_GETADDR ? sizeof(struct ifaddrmsg)
												       : sizeof(struct rtmsg));
	g->rtgen_family = (unsigned char)family;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return dm_fail(neg_errno(), "rtnetlink: %m");
	unsigned portid = mnl_socket_get_portid(nl);
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (len < 0)
			return dm_fail(neg_errno(), "rtnetlink: %m");
		r = mnl_cb_run(buf, (size_t)len, seq, portid, cb, d);
		if (r < 0)
			return dm_fail(neg_errno(), "rtnetlink: %m");
		if (r == MNL_CB_STOP)
			return 0;
	}
}

int rtnl_read(int nsfd, struct rtnl_info *ret)
{
	struct dump d = { .info = ret };
	struct mnl_socket *nl;
	int back = -1, r;

	memset(ret, 0, sizeof(*ret));
	r = netns_enter(nsfd, &back);
	if (r < 0)
		return r;
	nl = mnl_socket_open(NETLINK_ROUTE);
	int e = errno;
	netns_leave(back);
	if (!nl)
		return dm_fail(-e, "rtnetlink socket: %s", strerror(e));
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = dm_fail(neg_errno(), "rtnetlink bind: %m");
		goto out;
	}
	r = dump(nl, RTM_GETLINK, AF_UNSPEC, on_link, &d);
	if (r >= 0)
		r = dump(nl, RTM_GETADDR, AF_UNSPEC, on_addr, &d);
	if (r >= 0)
		r = dump(nl, RTM_GETROUTE, AF_INET, on_route, &d);
	if (r >= 0 && d.err)
		r = d.err;
out:
	mnl_socket_close(nl);
	if (r < 0)
		rtnl_info_done(ret);
	return r;
}

void rtnl_info_done(struct rtnl_info *i)
{
	free(i->links);
	free(i->addrs);
	for (size_t k = 0; k < i->n_routes; k++)
		free(i->routes[k]);
	free(i->routes);
	memset(i, 0, sizeof(*i));
}

const struct rtnl_link *rtnl_link_by_index(const struct rtnl_info *i, int ifindex)
{
	for (size_t k = 0; k < i->n_links; k++)
		if (i->links[k].ifindex == ifindex)
			return &i->links[k];
	return NULL;
}
