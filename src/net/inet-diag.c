/* SPDX-License-Identifier: MIT */
/*
 * sock_diag (inet_diag) reader: state, addresses, queues and inode of every
 * TCP or UDP socket of this network namespace.  The dump matches a tree's
 * socket fds to these by inode.  Requests go on a struct inet_diag: one
 * netlink socket for as many requests as the caller makes (a dump's
 * lookups, one per socket of the tree), each request numbered; a reply of
 * an earlier request left unread (one that failed half-way) is skipped.
 */
#define LOG_PREFIX "inet-diag: "
#include "net/inet.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct inet_diag {
	struct mnl_socket *nl;
	unsigned port;
	unsigned seq;  /* of the last request */
};

struct list {
	struct inet_sk_diag *v;
	size_t n, cap;
	int protocol;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	uint8_t *shut = data;
	if (mnl_attr_get_type(a) == INET_DIAG_SHUTDOWN && mnl_attr_get_payload_len(a) >= 1)
		*shut = *(const uint8_t *)mnl_attr_get_payload(a);
	return MNL_CB_OK;
}

static int msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct list *l = data;
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*m))
		return MNL_CB_ERROR;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	struct inet_sk_diag *s = &l->v[l->n++];
	memset(s, 0, sizeof(*s));
	s->family = m->idiag_family;
	s->protocol = l->protocol;
	s->state = m->idiag_state;
	memcpy(s->src, m->id.idiag_src, 16);
	memcpy(s->dst, m->id.idiag_dst, 16);
	s->sport = ntohs(m->id.idiag_sport);
	s->dport = ntohs(m->id.idiag_dport);
	s->ifindex = m->id.idiag_if;
	s->rqueue = m->idiag_rqueue;
	s->wqueue = m->idiag_wqueue;
	s->ino = m->idiag_inode;
	mnl_attr_parse(nlh, sizeof(*m), attr_cb, &s->shutdown);
	return MNL_CB_OK;
}

int inet_diag_open(struct inet_diag **ret)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!nl)
		return dm_fail(neg_errno(), "sock_diag: cannot open a netlink socket: %m");
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = neg_errno();
		mnl_socket_close(nl);
		return dm_fail(r, "sock_diag: bind: %m");
	}
	struct inet_diag *d = xcalloc(1, sizeof(*d));
	d->nl = nl;
	d->port = mnl_socket_get_portid(nl);
	d->seq = (unsigned)time(NULL);
	*ret = d;
	return 0;
}

void inet_diag_close(struct inet_diag *d)
{
	if (!d)
		return;
	mnl_socket_close(d->nl);
	free(d);
}

static void inet_diag_closep(struct inet_diag **d)
{
	inet_diag_close(*d);
}

/* d, or when NULL a socket of the call's own (in *own, closed by the caller) */
static int diag_of(struct inet_diag *d, struct inet_diag **own, struct inet_diag **ret)
{
	if (!d) {
		int r = inet_diag_open(own);
		if (r < 0)
			return r;
		d = *own;
	}
	*ret = d;
	return 0;
}

/* nlh, numbered as d's next request, sent */
static int send_req(struct inet_diag *d, struct nlmsghdr *nlh, const char *what)
{
	nlh->nlmsg_seq = ++d->seq;
	if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0)
		return dm_fail(neg_errno(), "sock_diag: %s: %m", what);
	return 0;
}

/* The next datagram of d's replies to its last request (those of earlier
 * ones, left unread, are skipped): its length, or -1 and errno. */
static ssize_t recv_reply(struct inet_diag *d, void *buf, size_t size)
{
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(d->nl, buf, size);
		if (n < 0)
			return -1;
		const struct nlmsghdr *h = buf;
		if (mnl_nlmsg_ok(h, (int)n) && h->nlmsg_seq != d->seq)
			continue;
		return n;
	}
}

/* The request naming one socket of key (its family, protocol, addresses,
 * ports, device) in nlh's payload. */
static void put_req(struct nlmsghdr *nlh, const struct inet_sk_diag *key, uint32_t states)
{
	struct inet_diag_req_v2 *req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = (uint8_t)key->family;
	req->sdiag_protocol = (uint8_t)key->protocol;
	req->idiag_states = states;
	req->id.idiag_sport = htons(key->sport);
	req->id.idiag_dport = htons(key->dport);
	memcpy(req->id.idiag_src, key->src, 16);
	memcpy(req->id.idiag_dst, key->dst, 16);
	req->id.idiag_if = key->ifindex;
	req->id.idiag_cookie[0] = req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
}

int inet_diag_list(struct inet_diag *d, int family, int protocol, struct inet_sk_diag **ret, size_t *ret_n)
{
	return inet_diag_list_states(d, family, protocol, ~0U, ret, ret_n);
}

int inet_diag_list_states(struct inet_diag *d, int family, int protocol, uint32_t states,
			  struct inet_sk_diag **ret, size_t *ret_n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE > 32768 ? MNL_SOCKET_BUFFER_SIZE : 32768];
	_cleanup_(inet_diag_closep) struct inet_diag *own = NULL;
	struct list l = { .protocol = protocol };
	int r = diag_of(d, &own, &d);

	if (r < 0)
		return r;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	struct inet_diag_req_v2 *req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = (uint8_t)family;
	req->sdiag_protocol = (uint8_t)protocol;
	req->idiag_states = states;
	req->idiag_ext = 1 << (INET_DIAG_SHUTDOWN - 1);
	r = send_req(d, nlh, "send");
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = recv_reply(d, buf, sizeof(buf));
		if (n < 0) {
			r = dm_fail(neg_errno(), "sock_diag: receive: %m");
			goto out;
		}
		int cr = mnl_cb_run(buf, (size_t)n, d->seq, d->port, msg_cb, &l);
		if (cr == MNL_CB_STOP)
			break;
		if (cr < 0) {
			/* a kernel without UDP diag (CONFIG_INET_UDP_DIAG) answers ENOENT */
			r = dm_fail(errno ? neg_errno() : -EPROTO, "sock_diag of %s %s sockets: %m",
				    family == AF_INET6 ? "IPv6" : "IPv4", protocol == IPPROTO_UDP ? "UDP" : "TCP");
			goto out;
		}
	}
out:
	if (r < 0) {
		free(l.v);
		return r;
	}
	*ret = l.v;
	*ret_n = l.n;
	return 0;
}

int inet_diag_get(struct inet_diag *d, const struct inet_sk_diag *key, struct inet_sk_diag *ret)
{
	char buf[8192];
	_cleanup_(inet_diag_closep) struct inet_diag *own = NULL;
	struct list l = { .protocol = key->protocol };
	int r = diag_of(d, &own, &d);

	if (r < 0)
		return r;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST;	/* one socket, looked up: no walk */
	put_req(nlh, key, ~0U);
	((struct inet_diag_req_v2 *)mnl_nlmsg_get_payload(nlh))->idiag_ext = 1 << (INET_DIAG_SHUTDOWN - 1);
	r = send_req(d, nlh, "send");
	if (r < 0)
		return r;
	ssize_t n = recv_reply(d, buf, sizeof(buf));
	if (n < 0)
		return dm_fail(neg_errno(), "sock_diag: receive: %m");
	/* one answer: the socket's record, or an error (ENOENT: no such socket) */
	errno = 0;
	if (mnl_cb_run(buf, (size_t)n, d->seq, d->port, msg_cb, &l) < 0 || l.n != 1)
		r = errno == ENOENT || !errno ? -ENOENT : neg_errno();
	else
		*ret = l.v[0];
	free(l.v);
	return r;
}

const char *inet_state_name(unsigned state)
{
	static const char *const names[] = {
		[1] = "ESTABLISHED", [2] = "SYN_SENT", [3] = "SYN_RECV", [4] = "FIN_WAIT1",
		[5] = "FIN_WAIT2", [6] = "TIME_WAIT", [7] = "CLOSE", [8] = "CLOSE_WAIT",
		[9] = "LAST_ACK", [10] = "LISTEN", [11] = "CLOSING", [12] = "NEW_SYN_RECV",
	};
	return state < ARRAY_SIZE(names) && names[state] ? names[state] : "unknown state";
}

/* SOCK_DESTROY of one TCP socket on d: 1 destroyed, 0 gone meanwhile */
static int destroy_one(struct inet_diag *d, const struct inet_sk_diag *g)
{
	char buf[256];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DESTROY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	struct inet_sk_diag key = *g;
	key.protocol = IPPROTO_TCP;
	put_req(nlh, &key, 1u << g->state);
	int r = send_req(d, nlh, "destroy");
	if (r < 0)
		return r;
	ssize_t got = recv_reply(d, buf, sizeof(buf));
	if (got > 0 && mnl_cb_run(buf, (size_t)got, d->seq, d->port, NULL, NULL) >= 0)
		return 1;
	if (errno == EOPNOTSUPP)
		return dm_fail(-EOPNOTSUPP, "sock_diag: the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY)");
	return 0; /* another error: the socket went meanwhile */
}

/*
 * Every TCP socket of the calling thread's network namespace but those in
 * TIME_WAIT is destroyed (SOCK_DESTROY, CONFIG_INET_DIAG_DESTROY): a
 * connection's peer gets a reset, a listener goes.  The count in *ret_n.
 */
int inet_diag_destroy_tcp(unsigned *ret_n)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	_cleanup_(inet_diag_closep) struct inet_diag *d = NULL;
	unsigned n = 0;
	int r = inet_diag_open(&d);

	for (size_t f = 0; f < ARRAY_SIZE(fams) && r >= 0; f++) {
		struct inet_sk_diag *v = NULL;
		size_t k = 0;
		r = inet_diag_list(d, fams[f], IPPROTO_TCP, &v, &k);
		for (size_t i = 0; r >= 0 && i < k; i++) {
			if (v[i].state == TCP_TIME_WAIT || v[i].state == TCP_CLOSE)
				continue;
			r = destroy_one(d, &v[i]);
			if (r > 0)
				n++;
		}
		free(v);
	}
	if (ret_n)
		*ret_n = n;
	return r < 0 ? r : 0;
}

int inet_diag_destroy_these(const struct inet_sk_diag *v, size_t k, unsigned *ret_n)
{
	_cleanup_(inet_diag_closep) struct inet_diag *d = NULL;
	unsigned n = 0;
	int r = inet_diag_open(&d);

	for (size_t i = 0; r >= 0 && i < k; i++) {
		if (v[i].protocol != IPPROTO_TCP || v[i].state == TCP_TIME_WAIT || v[i].state == TCP_CLOSE)
			continue;
		r = destroy_one(d, &v[i]);
		if (r > 0)
			n++;
	}
	if (ret_n)
		*ret_n = n;
	return r < 0 ? r : 0;
}
