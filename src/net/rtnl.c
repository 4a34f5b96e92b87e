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
#include <sys/socket.h>
#include <unistd.h>

/* a socket in one network namespace (rtnl_open, rtnl.h) */
struct rtnl {
	struct mnl_socket *nl;
	uint32_t seq;
};

struct dump {
	struct rtnl_info *info;
	int err;
};

/* An attribute table being filled: tb[0..max] */
struct attrs {
	const struct nlattr **tb;
	int max;
};

static int put_attr(const struct nlattr *a, void *data)
{
	const struct attrs *t = data;

	if (mnl_attr_type_valid(a, (uint16_t)t->max) >= 0)
		t->tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

/* the attributes after a message's header of hdrlen bytes into tb[0..max] */
static void parse_attrs(const struct nlmsghdr *nlh, size_t hdrlen, const struct nlattr **tb, int max)
{
	struct attrs t = { tb, max };
	mnl_attr_parse(nlh, (unsigned)hdrlen, put_attr, &t);
}

static int on_link(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };
	struct rtnl_link l = { .ifindex = ifi->ifi_index, .up = ifi->ifi_flags & IFF_UP };

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	parse_attrs(nlh, sizeof(*ifi), tb, IFLA_MAX);
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
		mnl_attr_parse_nested(tb[IFLA_LINKINFO], put_attr, &(struct attrs){ ti, IFLA_INFO_MAX });
		if (ti[IFLA_INFO_KIND])
			snprintf(l.kind, sizeof(l.kind), "%s", mnl_attr_get_str(ti[IFLA_INFO_KIND]));
	}
	struct rtnl_info *i = d->info;
	i->links = xrealloc(i->links, (i->n_links + 1) * sizeof(*i->links));
	i->links[i->n_links++] = l;
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
	parse_attrs(nlh, sizeof(*ifa), tb, IFA_MAX);
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
	parse_attrs(nlh, sizeof(*rt), tb, RTA_MAX);
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
	struct rtnl *h = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = rtnl_open(nsfd, &h);
	if (r < 0)
		return r;
	r = dump(h->nl, RTM_GETLINK, AF_UNSPEC, on_link, &d);
	if (r >= 0)
		r = dump(h->nl, RTM_GETADDR, AF_UNSPEC, on_addr, &d);
	if (r >= 0)
		r = dump(h->nl, RTM_GETROUTE, AF_INET, on_route, &d);
	if (r >= 0 && d.err)
		r = d.err;
	rtnl_close(h);
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

/* ---- making ------------------------------------------------------------- */

/* An rtnetlink socket (flags: SOCK_*) in the network namespace nsfd (-1:
 * the calling thread's): a socket stays in the namespace it was made in */
static int route_socket(int nsfd, int flags, int *ret_fd)
{
	int back = -1, r = netns_enter(nsfd, &back);

	if (r < 0)
		return r;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE);
	int e = errno;
	netns_leave(back);
	if (fd < 0)
		return dm_fail(-e, "rtnetlink socket: %s", strerror(e));
	*ret_fd = fd;
	return 0;
}

int rtnl_open(int nsfd, struct rtnl **ret)
{
	struct mnl_socket *nl;
	int fd, r = route_socket(nsfd, 0, &fd);

	if (r < 0)
		return r;
	nl = mnl_socket_fdopen(fd);
	if (!nl) {
		r = dm_fail(neg_errno(), "rtnetlink socket: %m");
		close(fd);
		return r;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = dm_fail(neg_errno(), "rtnetlink bind: %m");
		mnl_socket_close(nl);
		return r;
	}
	*ret = xcalloc(1, sizeof(**ret));
	(*ret)->nl = nl;
	(*ret)->seq = (uint32_t)time(NULL);
	return 0;
}

int rtnl_watch_open(int nsfd, int *ret_fd)
{
	int fd, r;

	*ret_fd = -1;
	r = route_socket(nsfd, SOCK_NONBLOCK, &fd);
	if (r < 0)
		return r;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
					       RTMGRP_IPV4_ROUTE };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = dm_fail(neg_errno(), "rtnetlink bind (notifications): %m");
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int rtnl_watch_changed(int fd)
{
	char b[64];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC);

	if (n >= 0 || errno == ENOBUFS)
		return 1;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : neg_errno();
}

void rtnl_close(struct rtnl *h)
{
	if (!h)
		return;
	mnl_socket_close(h->nl);
	free(h);
}

/* Sends a request built in buf and waits for its ACK: 0 or -errno (the
 * kernel's answer), dm_fail'ed with what. */
static int request(struct rtnl *h, struct nlmsghdr *nlh, const char *what)
{
	char buf[8192];

	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++h->seq;
	if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0)
		return dm_fail(neg_errno(), "%s: rtnetlink: %m", what);
	ssize_t len = mnl_socket_recvfrom(h->nl, buf, sizeof(buf));
	if (len < 0)
		return dm_fail(neg_errno(), "%s: rtnetlink: %m", what);
	if (mnl_cb_run(buf, (size_t)len, h->seq, mnl_socket_get_portid(h->nl), NULL, NULL) < 0)
		return dm_fail(neg_errno(), "%s: %m", what);
	return 0;
}

static int mac_parse(const char *s, unsigned char m[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		m[i] = (unsigned char)v[i];
	}
	return 0;
}

int rtnl_veth_add(struct rtnl *h, const char *ours, const char *peer, pid_t peer_ns_pid, const char *peer_mac,
		  unsigned peer_mtu)
{
	char buf[4096], what[128];
	unsigned char mac[6];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	snprintf(what, sizeof(what), "veth %s (peer %s in the namespace of process %d)", ours, peer, peer_ns_pid);
	if (peer_mac && mac_parse(peer_mac, mac) < 0)
		return dm_fail(-EINVAL, "%s: bad MAC %s", what, peer_mac);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ours);
	struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *pe = mnl_attr_nest_start(nlh, 1 /* VETH_INFO_PEER */);
	/* the peer's own ifinfomsg, then its attributes */
	struct ifinfomsg *pi = mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	memset(pi, 0, sizeof(*pi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, (uint32_t)peer_ns_pid);
	if (peer_mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	if (peer_mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, peer_mtu);
	mnl_attr_nest_end(nlh, pe);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, li);
	return request(h, nlh, what);
}

static int if_index(struct rtnl *h, const char *ifname, const char *what)
{
	char buf[4096];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtnl_info in = { 0 };
	struct dump d = { .info = &in };

	/* RTM_GETLINK by name through this handle's namespace */
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++h->seq;
	mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0)
		return dm_fail(neg_errno(), "%s: rtnetlink: %m", what);
	ssize_t len = mnl_socket_recvfrom(h->nl, buf, sizeof(buf));
	if (len < 0)
		return dm_fail(neg_errno(), "%s: rtnetlink: %m", what);
	int r = mnl_cb_run(buf, (size_t)len, h->seq, mnl_socket_get_portid(h->nl), on_link, &d);
	int idx = r >= 0 && in.n_links ? in.links[0].ifindex : 0;
	rtnl_info_done(&in);
	if (r < 0)
		return dm_fail(neg_errno(), "%s: no interface %s here: %m", what, ifname);
	return idx ? idx : dm_fail(-ENODEV, "%s: no interface %s here", what, ifname);
}

int rtnl_addr_add(struct rtnl *h, const char *ifname, const char *addr)
{
	char buf[1024], what[160], a[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	unsigned prefix;
	const char *slash = strchr(addr, '/');

	snprintf(what, sizeof(what), "address %s on %s", addr, ifname);
	if (!slash || (size_t)(slash - addr) >= sizeof(a) || sscanf(slash + 1, "%u", &prefix) != 1)
		return dm_fail(-EINVAL, "%s: not ADDR/PREFIX", what);
	memcpy(a, addr, (size_t)(slash - addr));
	a[slash - addr] = 0;
	int family = strchr(a, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, a, bin) != 1 || prefix > (family == AF_INET ? 32u : 128u))
		return dm_fail(-EINVAL, "%s: not an address", what);
	int idx = if_index(h, ifname, what);
	if (idx < 0)
		return idx;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)idx;
	ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	size_t blen = family == AF_INET ? 4 : 16;
	mnl_attr_put(nlh, IFA_LOCAL, blen, bin);
	mnl_attr_put(nlh, IFA_ADDRESS, blen, bin);
	if (family == AF_INET6)
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	return request(h, nlh, what);
}

static int link_set(struct rtnl *h, const char *ifname, const char *master, bool up)
{
	char buf[1024], what[160];
	int mi = 0;

	snprintf(what, sizeof(what), "%s %s%s%s", ifname, master ? "on " : "", master ? master : "", up ? " up" : "");
	int idx = if_index(h, ifname, what);
	if (idx < 0)
		return idx;
	if (master) {
		mi = if_index(h, master, what);
		if (mi < 0)
			return mi;
	}
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_index = idx;
	ifi->ifi_flags = up ? IFF_UP : 0;
	ifi->ifi_change = up ? IFF_UP : 0;
	if (master)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)mi);
	return request(h, nlh, what);
}

int rtnl_link_up(struct rtnl *h, const char *ifname, const char *master)
{
	return link_set(h, ifname, master, true);
}

int rtnl_link_master(struct rtnl *h, const char *ifname, const char *master)
{
	return link_set(h, ifname, master, false);
}

int rtnl_link_del(struct rtnl *h, const char *ifname)
{
	char buf[256], what[160];

	snprintf(what, sizeof(what), "deleting %s", ifname);
	int idx = if_index(h, ifname, what);
	if (idx < 0)
		return idx;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_DELLINK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_index = idx;
	return request(h, nlh, what);
}

static bool word_in(const char *w, const char *const *list, unsigned *ret)
{
	for (unsigned i = 0; list[i]; i++)
		if (!strcmp(w, list[i])) {
			*ret = i;
			return true;
		}
	return false;
}

int rtnl_route_replace(struct rtnl *h, const char *line)
{
	static const char *const types[] = { "unicast", "unreachable", "blackhole", "prohibit", "throw", NULL };
	static const unsigned type_val[] = { RTN_UNICAST, RTN_UNREACHABLE, RTN_BLACKHOLE, RTN_PROHIBIT, RTN_THROW };
	_cleanup_free_ char *copy = xstrdup(line);
	char buf[1024], what[300];
	struct in_addr dst = { 0 }, gw = { 0 }, src = { 0 };
	unsigned dst_len = 0, proto = RTPROT_BOOT, scope = RT_SCOPE_UNIVERSE, type = RTN_UNICAST, k;
	bool has_gw = false, has_src = false, has_metric = false, onlink = false, has_scope = false;
	uint32_t metric = 0;
	int oif = 0;
	char *save = NULL, *w = strtok_r(copy, " \t", &save);

	snprintf(what, sizeof(what), "route %s", line);
	if (w && word_in(w, types, &k)) {
		type = type_val[k];
		w = strtok_r(NULL, " \t", &save);
	}
	if (!w)
		return 0;
	if (strcmp(w, "default")) {
		char *sl = strchr(w, '/');
		if (sl)
			*sl = 0;
		if (inet_pton(AF_INET, w, &dst) != 1)
			return 0;
		dst_len = 32;
		if (sl && (sscanf(sl + 1, "%u", &dst_len) != 1 || dst_len > 32))
			return 0;
	}
	while ((w = strtok_r(NULL, " \t", &save))) {
		char *v = NULL;
		if (strcmp(w, "onlink") && !(v = strtok_r(NULL, " \t", &save)))
			return 0;
		if (!strcmp(w, "via")) {
			if (inet_pton(AF_INET, v, &gw) != 1)
				return 0;
			has_gw = true;
		} else if (!strcmp(w, "dev")) {
			oif = if_index(h, v, what);
			if (oif < 0)
				return oif;
		} else if (!strcmp(w, "proto")) {
			static const char *const protos[] = { "unspec", "redirect", "kernel", "boot", "static", NULL };
			if (!word_in(v, protos, &proto) && sscanf(v, "%u", &proto) != 1)
				return 0;
			if (!strcmp(v, "dhcp"))
				proto = RTPROT_DHCP;
		} else if (!strcmp(w, "scope")) {
			has_scope = true;
			if (!strcmp(v, "link"))
				scope = RT_SCOPE_LINK;
			else if (!strcmp(v, "host"))
				scope = RT_SCOPE_HOST;
			else if (!strcmp(v, "global"))
				scope = RT_SCOPE_UNIVERSE;
			else if (sscanf(v, "%u", &scope) != 1 || scope > 255)
				return 0;
		} else if (!strcmp(w, "src")) {
			if (inet_pton(AF_INET, v, &src) != 1)
				return 0;
			has_src = true;
		} else if (!strcmp(w, "metric")) {
			if (sscanf(v, "%u", &metric) != 1)
				return 0;
			has_metric = true;
		} else if (!strcmp(w, "onlink")) {
			onlink = true;
		} else {
			return 0;	/* a word of ip's we do not parse */
		}
	}
	/* as ip(8) does: a route through a device without a gateway is a link one */
	if (!has_scope && type == RTN_UNICAST && !has_gw && oif)
		scope = RT_SCOPE_LINK;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = (unsigned char)dst_len;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = (unsigned char)proto;
	rt->rtm_scope = (unsigned char)scope;
	rt->rtm_type = (unsigned char)type;
	rt->rtm_flags = onlink ? RTNH_F_ONLINK : 0;
	if (dst_len)
		mnl_attr_put(nlh, RTA_DST, 4, &dst);
	if (has_gw)
		mnl_attr_put(nlh, RTA_GATEWAY, 4, &gw);
	if (oif)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)oif);
	if (has_src)
		mnl_attr_put(nlh, RTA_PREFSRC, 4, &src);
	if (has_metric)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, metric);
	int r = request(h, nlh, what);
	return r < 0 ? r : 1;
}
