/* SPDX-License-Identifier: MIT */
/*
 * A runc container's network: its interfaces, addresses and routes read
 * over rtnetlink (no fork while it is frozen), the bridges its veths are on
 * checked at the destination; at the restore its veths made again (before
 * the freeze, down, then attached in the downtime), its namespace locked
 * until its sockets are restored, and its addresses announced once it runs.
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "net/inet.h"
#include "net/rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int exec_ip(void *arg)
{
	execvp("ip", (char *const *)arg);
	dprintf(2, "cannot run ip: %s", strerror(errno));
	return 127;
}

/* The network namespace of pid (nsfd -1: ours) read over rtnetlink: no
 * fork or exec of ip(8) while the container is frozen (net/rtnl.h). */
static int net_of(pid_t pid, struct rtnl_info *ret)
{
	_cleanup_close_ int ns = -1;
	int r = pid > 0 ? netns_of_pid(pid, &ns) : 0;

	if (r < 0)
		return r;
	return rtnl_read(ns, ret);
}

/* The other end of the container's veth l in our network namespace: its
 * ifindex is the container end's link, and its own link is the container
 * end's ifindex. */
static const struct rtnl_link *veth_peer(const struct rtnl_info *ours, const struct rtnl_link *l)
{
	const struct rtnl_link *p = rtnl_link_by_index(ours, l->link);

	return p && p->link == l->ifindex ? p : NULL;
}

/*
 * The bridges the host ends of the container's veths are on, read while it
 * runs (before the freeze): the destination must have each, or the
 * container would come back cut off.  Unique names, malloc'd; none when the
 * container has no network namespace of its own.
 */
int runc_bridges(struct runc_ct *ct, char ***ret, size_t *ret_n)
{
	struct rtnl_info in = { 0 }, ours = { 0 };
	char **v = NULL;
	size_t n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	/* in ours (or the host's, shared): its veths' ends are not told apart there */
	_cleanup_free_ char *nsp = xasprintf("/proc/%d/ns/net", (int)ct->pid);
	struct stat a, b;
	if (stat(nsp, &a) < 0)
		return dm_fail(neg_errno(), "container '%s': its network namespace: %m", ct->id);
	if (stat("/proc/self/ns/net", &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return 0;
	r = net_of(ct->pid, &in);
	if (r >= 0)
		r = net_of(0, &ours);
	for (size_t i = 0; r >= 0 && i < in.n_links; i++) {
		const struct rtnl_link *l = &in.links[i];
		const struct rtnl_link *peer = !strcmp(l->kind, "veth") ? veth_peer(&ours, l) : NULL;
		const struct rtnl_link *br = peer && peer->master ? rtnl_link_by_index(&ours, peer->master) : NULL;
		size_t k;
		if (!br)
			continue;
		for (k = 0; k < n && strcmp(v[k], br->name); k++)
			;
		if (k == n)
			APPEND(v, n, xstrdup(br->name));
	}
	rtnl_info_done(&in);
	rtnl_info_done(&ours);
	if (r < 0) {
		for (size_t k = 0; k < n; k++)
			free(v[k]);
		free(v);
		return dm_wrap(r, "container '%s': its network interfaces", ct->id);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int runc_check_bridges(const char *id, char *const *bridges, size_t n, bool given)
{
	struct rtnl_info ours;
	int r;

	if (!n)
		return 0;
	/* rtnetlink, not /sys/class/net: sysfs shows the namespace of whoever mounted it */
	r = rtnl_read(-1, &ours);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const struct rtnl_link *l = NULL;
		for (size_t k = 0; k < ours.n_links && !l; k++)
			if (!strcmp(ours.links[k].name, bridges[i]))
				l = &ours.links[k];
		bool bridge = l && !strcmp(l->kind, "bridge");
		if (!bridge && given)
			r = dm_fail(-ENODEV, "container '%s': its network interfaces go on bridge %s here "
				    "(dmigrated --bridge), and there is %s", id, bridges[i],
				    l ? "an interface of that name, but not a bridge" : "no bridge of that name");
		else if (!bridge)
			r = dm_fail(-ENODEV, "container '%s': its network interface is on bridge %s at the source, "
				    "and there is %s here", id, bridges[i],
				    l ? "an interface of that name, but not a bridge," : "no bridge of that name");
	}
	rtnl_info_done(&ours);
	return r;
}

int runc_record_net(struct runc_ct *ct)
{
	struct rtnl_info in = { 0 }, ours = { 0 };
	Dm__Container *m = ct->msg;
	bool own_netns = false;
	int r;

	for (size_t k = 0; k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k]->type, "net"))
			own_netns = !m->namespaces[k]->path;
	r = net_of(ct->pid, &in);
	if (r >= 0 && own_netns)
		r = net_of(0, &ours);
	if (r < 0) {
		rtnl_info_done(&in);
		return dm_wrap(r, "container '%s': its network interfaces", ct->id);
	}
	for (size_t i = 0; i < in.n_links; i++) {
		const struct rtnl_link *l = &in.links[i];
		Dm__ContainerNetIf *nif = xmalloc(sizeof(*nif));
		dm__container_net_if__init(nif);
		nif->name = xstrdup(l->name[0] ? l->name : "?");
		if (l->mac[0])
			nif->mac = xstrdup(l->mac);
		nif->has_mtu = true;
		nif->mtu = l->mtu;
		if (l->up)
			nif->has_up = nif->up = true;
		if (l->kind[0])
			nif->kind = xstrdup(l->kind);
		for (size_t k = 0; k < in.n_addrs; k++) {
			const struct rtnl_addr *a = &in.addrs[k];
			/* link-local IPv6 comes back by itself */
			if (a->ifindex == l->ifindex && !(a->ipv6 && a->link_scope))
				APPEND(nif->addrs, nif->n_addrs, xstrdup(a->addr));
		}
		APPEND(m->interfaces, m->n_interfaces, nif);
		if (!own_netns || !strcmp(nif->name, "lo") || r < 0)
			continue;
		/* runc makes an empty network namespace: what is in it now must be
		 * made again, which we can for a veth whose other end is ours */
		const struct rtnl_link *peer = !strcmp(l->kind, "veth") ? veth_peer(&ours, l) : NULL;
		if (!peer) {
			r = dm_fail(-ENOTSUP, "container '%s': network interface %s (%s) is in the network "
				    "namespace runc made and is not a veth whose other end is in ours: it "
				    "would not come back", ct->id, nif->name, l->kind[0] ? l->kind : "no kind");
			continue;
		}
		nif->peer_name = xstrdup(peer->name);
		const struct rtnl_link *br = peer->master ? rtnl_link_by_index(&ours, peer->master) : NULL;
		if (br)
			nif->peer_master = xstrdup(br->name);
	}
	for (size_t i = 0; r >= 0 && i < in.n_routes; i++)
		APPEND(m->routes, m->n_routes, xstrdup(in.routes[i]));
	rtnl_info_done(&in);
	rtnl_info_done(&ours);
	return r;
}

/* The container's network namespace, as /proc/PID/ns/net says now */
static int netns_id(pid_t pid, dev_t *dev, ino_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &st) < 0)
		return neg_errno();
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/*
 * The network is read twice in a migration: at START, while the container
 * runs (runc_base_record(): the destination makes it before the freeze),
 * and in the freeze, where the record must say what it is then.  The
 * second read (~0.4 ms: its namespace's links, addresses and routes, and
 * ours, over rtnetlink) ran beside the frozen dump, on the CPU its second
 * worker wants.  So watches are opened before the first read: the kernel
 * tells them of every change of links, addresses or routes in either
 * namespace; none told, and the init still in the namespace watched, the
 * first read is the record's.
 */
void runc_net_early_watch(struct runc_ct *ct)
{
	_cleanup_close_ int ns = -1;
	struct stat st;

	runc_net_early_drop(ct);
	/* the namespace watched is the one whose identity is kept (the init
	 * may change its own: runc_net_early_keep() and the freeze look again) */
	int r = netns_of_pid(ct->pid, &ns);
	if (r >= 0 && (ns >= 0 ? fstat(ns, &st) : stat("/proc/thread-self/ns/net", &st)) < 0)
		r = dm_fail(neg_errno(), "the network namespace of process %d: %m", (int)ct->pid);
	if (r >= 0) {
		ct->net_early_dev = st.st_dev;
		ct->net_early_ino = st.st_ino;
		r = rtnl_watch_open(ns, &ct->net_watch[0]);
	}
	if (r >= 0)
		r = rtnl_watch_open(-1, &ct->net_watch[1]);
	if (r < 0) {
		pr_debug("container '%s': no watch on its network (it is read again in the freeze): %s", ct->id,
			 dm_last_error());
		dm_error_clear();
		runc_net_early_drop(ct);
	}
}

void runc_net_early_keep(struct runc_ct *ct, Dm__Container *net)
{
	dev_t dev;
	ino_t ino;

	if (ct->net_early)
		dm__container__free_unpacked(ct->net_early, NULL);
	ct->net_early = net;
	/* read in the namespace watched, or not kept */
	if (netns_id(ct->pid, &dev, &ino) < 0 || dev != ct->net_early_dev || ino != ct->net_early_ino)
		runc_net_early_drop(ct);
}

/* The START read gone; the watches stay open until runc_net_early_drop()
 * (runc_free(): their close is not the freeze's work) */
static void net_early_forget(struct runc_ct *ct)
{
	if (ct->net_early)
		dm__container__free_unpacked(ct->net_early, NULL);
	ct->net_early = NULL;
}

void runc_net_early_drop(struct runc_ct *ct)
{
	for (int i = 0; i < 2; i++)
		if (ct->net_watch[i] >= 0) {
			close(ct->net_watch[i]);
			ct->net_watch[i] = -1;
		}
	net_early_forget(ct);
}

static bool net_early_holds(struct runc_ct *ct)
{
	dev_t dev;
	ino_t ino;

	if (!ct->net_early || ct->net_watch[0] < 0 || ct->net_watch[1] < 0)
		return false;
	if (netns_id(ct->pid, &dev, &ino) < 0 || dev != ct->net_early_dev || ino != ct->net_early_ino)
		return false;
	return rtnl_watch_changed(ct->net_watch[0]) == 0 && rtnl_watch_changed(ct->net_watch[1]) == 0;
}

int runc_record_net_frozen(struct runc_ct *ct)
{
	Dm__Container *m = ct->msg, *e = ct->net_early;

	ct->net_early_used = net_early_holds(ct);
	if (!ct->net_early_used) {
		net_early_forget(ct);
		return runc_record_net(ct);
	}
	/* taken over: the early message keeps nothing of them */
	for (size_t i = 0; i < e->n_interfaces; i++)
		APPEND(m->interfaces, m->n_interfaces, e->interfaces[i]);
	for (size_t i = 0; i < e->n_routes; i++)
		APPEND(m->routes, m->n_routes, e->routes[i]);
	e->n_interfaces = e->n_routes = 0;
	net_early_forget(ct);
	return 0;
}

static int ip_in(pid_t pid, const char *const argv[])
{
	_cleanup_free_ char *err = NULL;
	int r = pid > 0 ? runc_in_ns(pid, "net", exec_ip, (void *)argv, NULL) : ctr_run(argv, NULL, 0, CHILD_WAIT_HELPER_MS, NULL, &err);
	if (r > 0)
		return dm_fail(-EIO, "ip %s %s %s: %s", argv[1], argv[2], argv[3] ? argv[3] : "",
			       err ? err : "failed");
	return r;
}

/* The config makes the container a network namespace of its own (not one
 * it joins by path, which outlives it and may carry other traffic). */
bool runc_config_new_netns(const Dm__Container *m)
{
	json_error_t je;
	json_t *c = json_loadb((const char *)m->config.data, m->config.len, 0, &je), *e;
	bool own = false;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(c, "linux"), "namespaces"), i, e) {
		const char *t = json_str(e, "type");
		if (t && !strcmp(t, "network"))
			own = !json_str(e, "path");
	}
	json_decref(c);
	return own;
}

bool runc_has_veth(const Dm__Container *m)
{
	for (size_t i = 0; i < m->n_interfaces; i++)
		if (m->interfaces[i]->peer_name)
			return true;
	return false;
}

/*
 * The container's new network namespace is locked before it has an
 * interface: a peer's retransmission reaching it before the restore has
 * made the connection's socket would be answered with a RST.  The restore
 * of the sockets keeps the lock (restore_opts.netns_locked: same name) and
 * removes it after the resume; runc_restore_done() removes it in any case.
 */
int runc_net_lock(pid_t pid, struct runc_started *s)
{
	_cleanup_close_ int ns = -1;
	int back = -1;
	int r = netns_of_pid(pid, &ns);

	if (s->net_locked)
		return 0;
	if (r > 0)
		r = netns_enter(ns, &back);
	if (r >= 0 && ns >= 0) {
		r = netlock_netns(NETLOCK_NETNS_NAME);
		netns_leave(back);
		s->net_locked = r >= 0;
	}
	return r < 0 ? r : 0;
}

/* The network part of a record, packed: what the early put-back made its
 * network from (runc_started.net_made), compared with the full record's. */
void runc_net_key(const Dm__Container *m, uint8_t **ret, size_t *ret_len)
{
	Dm__Container k = DM__CONTAINER__INIT;

	k.runtime = k.id = k.bundle = (char *)"";
	k.n_interfaces = m->n_interfaces;
	k.interfaces = m->interfaces;
	k.n_routes = m->n_routes;
	k.routes = m->routes;
	*ret_len = dm__container__get_packed_size(&k);
	*ret = xmalloc(*ret_len ? *ret_len : 1);
	dm__container__pack(&k, *ret);
}

/*
 * The container's veths, as they were: its end with its name, MAC, MTU and
 * addresses, up, its routes; our end with its name, on the bridge it was on
 * (dmigrated --bridge: on that one instead), and with attach up.  Without
 * attach our end stays down: the container's end has no carrier and a port
 * that is down forwards nothing, so nothing of it reaches the segment (where
 * the source's copy still has the same addresses) until runc_net_attach().
 */
int runc_net_make(const Dm__Container *m, pid_t pid, const char *bridge, bool attach)
{
	/* over rtnetlink: a socket here for our ends, one in the container's
	 * namespace for its ends (each ip(8) run was a fork and an exec) */
	struct rtnl *here = NULL, *there = NULL;
	_cleanup_close_ int ns = -1;
	int r;

	if (!m->n_interfaces && !m->n_routes)
		return 0;
	r = netns_of_pid(pid, &ns);
	if (r >= 0)
		r = rtnl_open(-1, &here);
	if (r >= 0)
		r = rtnl_open(ns, &there);
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		if (!n->peer_name)
			continue;
		r = rtnl_veth_add(here, n->peer_name, n->name, pid, n->mac,
				  n->has_mtu ? n->mtu : 0);
		for (size_t k = 0; k < n->n_addrs && r >= 0; k++)
			r = rtnl_addr_add(there, n->name, n->addrs[k]);
		if (r >= 0 && n->up)
			r = rtnl_link_up(there, n->name, NULL);
		const char *master = n->peer_master ? bridge ? bridge : n->peer_master : NULL;
		/* without attach: on its bridge already (adding a port is the slow
		 * part), but down: a port that is down forwards nothing */
		if (r >= 0)
			r = attach ? rtnl_link_up(here, n->peer_name, master)
				   : master ? rtnl_link_master(here, n->peer_name, master) : 0;
	}
	/* routes the kernel did not make with the addresses (its end is up:
	 * without a carrier a route through it is made all the same) */
	for (size_t i = 0; i < m->n_routes && r >= 0; i++) {
		const char *rt = m->routes[i];
		if (strstr(rt, " proto kernel "))
			continue;
		r = rtnl_route_replace(there, rt);
		if (r != 0)
			continue;
		/* a word our parser does not know (an older image's ip line): ip(8) */
		_cleanup_free_ char *line = xstrdup(rt);
		const char *argv[64] = { "ip", "route", "replace" };
		size_t n = 3;
		for (char *tok = strtok(line, " \t"); tok && n < ARRAY_SIZE(argv) - 1; tok = strtok(NULL, " \t"))
			argv[n++] = tok;
		argv[n] = NULL;
		r = ip_in(pid, argv);
	}
	rtnl_close(here);
	rtnl_close(there);
	return r < 0 ? r : 0;
}

/* Our ends of what runc_net_make(attach false) made: up (on their bridges
 * already: naming the bridge again costs nothing and fails if it went). */
int runc_net_attach(const Dm__Container *m, const char *bridge)
{
	struct rtnl *here = NULL;
	int r = rtnl_open(-1, &here);

	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		if (n->peer_name)
			r = rtnl_link_up(here, n->peer_name, n->peer_master ? bridge ? bridge : n->peer_master : NULL);
	}
	rtnl_close(here);
	return r < 0 ? r : 0;
}

/* What runc_net_make() made (the record packed by runc_net_key()): gone (deleting
 * our end of a veth deletes the pair, its addresses and routes with it). */
static int net_unmake(const uint8_t *key, size_t len)
{
	Dm__Container *m = dm__container__unpack(NULL, len, key);
	struct rtnl *here = NULL;
	int r;

	if (!m)
		return dm_fail(-EBADMSG, "the network made at START does not unpack");
	r = rtnl_open(-1, &here);
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++)
		if (m->interfaces[i]->peer_name)
			r = rtnl_link_del(here, m->interfaces[i]->peer_name);
	rtnl_close(here);
	dm__container__free_unpacked(m, NULL);
	return r < 0 ? r : 0;
}

void runc_net_remove_ours(const Dm__Container *m)
{
	struct rtnl *here = NULL;

	if (!runc_config_new_netns(m) || !runc_has_veth(m) || rtnl_open(-1, &here) < 0) {
		dm_error_clear();
		return;
	}
	for (size_t i = 0; i < m->n_interfaces; i++) {
		const char *peer = m->interfaces[i]->peer_name;
		if (peer && if_nametoindex(peer) && rtnl_link_del(here, peer) < 0)
			pr_warn("%s", dm_last_error());
	}
	rtnl_close(here);
	dm_error_clear();
}

/* addr of interface ifname, to announce once the tree runs (runc_restore_done()) */
static void announce_add(struct runc_started *s, const char *ifname, const char *addr)
{
	s->ann_if = xrealloc(s->ann_if, (s->n_ann + 1) * sizeof(*s->ann_if));
	s->ann_addr = xrealloc(s->ann_addr, (s->n_ann + 1) * sizeof(*s->ann_addr));
	s->ann_if[s->n_ann] = xstrdup(ifname);
	s->ann_addr[s->n_ann++] = xstrdup(addr);
}

/* The addresses to announce once the tree runs: those of its veths that are up. */
static void net_announce_list(const Dm__Container *m, struct runc_started *s)
{
	for (size_t i = 0; i < m->n_interfaces; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		for (size_t k = 0; n->peer_name && n->up && k < n->n_addrs; k++)
			announce_add(s, n->name, n->addrs[k]);
	}
}

/*
 * The container's network, as it was, in the downtime: what runc_restore_
 * prepare() made before the freeze from the same description only needs
 * our ends attached; made from another (it changed since START), it goes
 * and is made again.  attach_later: in the first case, leave the attach
 * (runc_net_attach(): our ends up, on their bridges, which may wait for an
 * RCU grace period: 0.1-1.3 ms) to the caller, who does it beside the
 * restore; *attach_later says so.
 */
int runc_put_back_net(const Dm__Container *m, pid_t pid, const char *bridge, struct runc_started *s,
		      bool *attach_later)
{
	int r = 0;
	uint64_t t = clock_ns();

	if (attach_later)
		*attach_later = false;

	if (runc_has_veth(m) || s->net_made) {
		r = runc_net_lock(pid, s);
		s->t.netlock = ns_to_ms(t, clock_ns());
		if (r < 0)
			return r;
	}
	if (s->net_made) {
		_cleanup_free_ uint8_t *key = NULL;
		size_t len;
		runc_net_key(m, &key, &len);
		if (len == s->net_made_len && !memcmp(key, s->net_made, len)) {
			if (attach_later)
				*attach_later = true;
			else
				r = runc_net_attach(m, bridge);
		} else {
			pr_info("%s: its network changed since START: made again", s->id);
			r = net_unmake(s->net_made, s->net_made_len);
			if (r >= 0)
				r = runc_net_make(m, pid, bridge, true);
		}
		free(s->net_made);
		s->net_made = NULL;
	} else {
		r = runc_net_make(m, pid, bridge, true);
	}
	if (r >= 0)
		net_announce_list(m, s);
	return r;
}

/* Is addr ("A/P") one of the addresses of the namespace we are in? */
static bool address_here(const char *addr)
{
	_cleanup_free_ char *a = xstrdup(addr);
	struct sockaddr_storage ss = {};
	socklen_t sl;

	a[strcspn(a, "/")] = 0;
	if (inet_pton(AF_INET, a, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, a, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		sl = sizeof(struct sockaddr_in6);
	} else {
		return false;
	}
	_cleanup_close_ int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && bind(fd, (struct sockaddr *)&ss, sl) == 0;
}

/*
 * A container another runtime made with its network (Docker): its namespace
 * is locked at once (the restore of the sockets takes the lock over), and
 * the addresses it had that it has here again (a fixed address on a segment
 * both hosts share) are announced once the tree runs; the others (a default
 * bridge's, each host's own) are not announced.
 */
int runc_lock_and_announce(const Dm__Container *m, struct runc_started *s)
{
	_cleanup_close_ int ns = -1;
	int back = -1, r;

	if (!m->n_interfaces)
		return 0;
	r = netns_of_pid(s->pid, &ns);
	if (r > 0)
		r = netns_enter(ns, &back);
	if (r < 0 || ns < 0)
		return r;
	if (!s->net_locked) {
		r = netlock_netns(NETLOCK_NETNS_NAME);
		s->net_locked = r >= 0;
	}
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		for (size_t k = 0; k < n->n_addrs; k++)
			if (address_here(n->addrs[k]))
				announce_add(s, n->name, n->addrs[k]);
	}
	netns_leave(back);
	return r;
}
