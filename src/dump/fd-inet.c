/* SPDX-License-Identifier: MIT */
/*
 * TCP and UDP sockets, IPv4 and IPv6 (docs/net.md, "Sockets and the network
 * lock").
 *
 * Before any fd is read (dump_inet_prepare, the tree frozen): the tree's
 * socket inodes are matched with sock_diag's view of this network namespace,
 * the established TCP connections among them are locked (net/netlock.c:
 * their packets are dropped both ways) and put in repair mode through a copy
 * of the fd (pidfd_getfd).  From then on their queues cannot change, a
 * socket closed by the checkpoint's kill sends nothing (no FIN, no RST), and
 * what the dump reads is what the restore brings back.
 *
 * Per fd (dump_inet_fd, on a pool worker): state, addresses, the options
 * (raw getsockopt values; the restore sets those that differ from a new
 * socket's), and for an established connection the repair state: sequence
 * numbers, both queues (peeked in repair mode), MSS, window scale, SACK,
 * timestamps, windows.  What cannot come back exactly is refused, named.
 *
 * Release: with the tree going on (--leave-running, or a failure) every
 * repaired socket leaves repair mode (TCP_REPAIR_OFF sends a window probe),
 * gets its SO_REUSEADDR back (repair mode overwrites it) and the lock goes.
 * With the tree killed the lock stays when the image is to be restored here
 * (opts.keep_net_lock: the restore removes it), else it goes with the tree.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/clock.h"
#include "base/log.h"
#include "net/answer.h"
#include "net/inet.h"
#include "net/replay.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

struct inet_entry {
	struct inet_sk_diag dg;
	pid_t pid;              /* a holder (host pid) and its fd */
	int fd;
	int dup;                /* our copy, while in repair mode; -1 otherwise */
	int reuse;              /* SO_REUSEADDR before repair mode overwrote it */
};

struct dump_inet {
	struct inet_entry *e;
	size_t n;
	char lock[64];          /* nft table, "" if none */
	int netns;              /* the tree's network namespace when not ours (a container's), else -1 */
	size_t n_locked;        /* connections locked and repaired */
	double lock_ms;         /* nft's run, in the frozen window */
	bool prelocked;         /* locked before the freeze (dump_inet_prelock) */
	double accept_wait_ms;  /* how long the running tree had to accept its queued connections */
	unsigned diag_dumps;    /* sock_diag dumps made in the freeze (of the 4 kinds) */
	double diag_ms;         /* the matching of the tree's sockets with sock_diag's records */
	unsigned diag_lookups;  /* sockets looked up alone then (inet_diag_get) */
	uint32_t accept_left;   /* connections still queued on its listeners then */
	struct netlock_ctx *nft; /* made in netns before the freeze (dump_inet_warm) */
	struct net_capture *cap; /* what the namespace's lock drops (opts.net_capture) */
	struct net_capture_stats cap_st;
	bool captured;          /* cap_st is read */
	uint8_t *back;          /* what dump_net_frames() gave and was given back (dump_net_frames_back) */
	size_t back_len;
	size_t replayed;        /* delivered here again after a rollback */
	struct net_answer_watch *answers; /* dump_inet_quiet()'s, closed with the rest */
	double quiet_ms;        /* how long the freeze waited for an answer */
	int quiet_answer;       /* 1: one went out, 0: none in time, <0: not watched */
	uint64_t quiet_segments;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct inet_entry *x = a, *y = b;
	return (x->dg.ino > y->dg.ino) - (x->dg.ino < y->dg.ino);
}

static struct inet_entry *find_entry(struct dump_inet *in, uint64_t ino)
{
	struct inet_entry key = { .dg.ino = ino };
	return in ? bsearch(&key, in->e, in->n, sizeof(*in->e), entry_cmp) : NULL;
}

static int pidfd_dup(pid_t pid, int fd, int *ret)
{
	_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return neg_errno();
	int x = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	if (x < 0)
		return neg_errno();
	*ret = x;
	return 0;
}

static int repair(int fd, int on)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0 ? neg_errno() : 0;
}

/* connections queued on the TCP listeners of this namespace, not yet
 * accepted; -errno */
static int64_t queued_on_listeners(bool *any_listener)
{
	int64_t n = 0;

	*any_listener = false;
	for (int k = 0; k < 2; k++) {
		_cleanup_free_ struct inet_sk_diag *v = NULL;
		size_t nv = 0;
		/* listeners only: no walk of the host's established sockets */
		int r = inet_diag_list_states(NULL, k ? AF_INET6 : AF_INET, IPPROTO_TCP, 1u << TCP_LISTEN, &v, &nv);
		if (r < 0)
			return r;
		for (size_t i = 0; i < nv; i++) {
			if (v[i].state != TCP_LISTEN)
				continue;
			*any_listener = true;
			n += v[i].rqueue;
		}
	}
	return n;
}

static unsigned accept_wait(const struct dump_ctx *d)
{
	return d->opts.accept_wait_ms ? d->opts.accept_wait_ms : DUMP_ACCEPT_WAIT_MS;
}

int dump_inet_warm(struct dump_ctx *d)
{
	struct dump_inet *in;
	int r, back = -1;

	/* a container in a network namespace that is not ours */
	if (!d->opts.container || d->inet)
		return 0;
	in = xcalloc(1, sizeof(*in));
	in->netns = -1;
	d->inet = in;
	r = netns_of_pid(d->opts.pid, &in->netns);
	if (r <= 0)
		return r;
	r = netns_enter(in->netns, &back);
	if (r < 0)
		return r;
	/* the lock's nftables context, ready, and its transaction built as
	 * nf_tables messages: in the frozen window the lock is one sendmsg.
	 * Without them it is made by libnftables then (only slower). */
	if (netlock_ctx_new(&in->nft) < 0 || netlock_ctx_prepare(in->nft, NETLOCK_NETNS_NAME) < 0) {
		pr_warn("%s (the network lock is made when it is needed)", dm_last_error());
		dm_error_clear();
	}
	netns_leave(back);
	return 0;
}

/* The context stays until the tree is resumed or killed (dump_inet_close):
 * its socket's close waits for the lock's transaction's destroy work, an
 * RCU grace period (8-16 ms on some machines), which the frozen window
 * must not.  It holds the namespace until then: a container deleted after
 * the checkpoint is deleted after that. */
static int lock_netns(struct dump_inet *in)
{
	return in->nft ? netlock_netns_with(in->nft, in->lock) : netlock_netns(in->lock);
}

/*
 * The freeze comes right after the service's next answer (docs/net.md,
 * "The moment of the freeze"), at most opts.quiet_wait_ms later.  Best
 * effort: a watch that cannot be made freezes at once.
 */
void dump_inet_quiet(struct dump_ctx *d)
{
	struct dump_inet *in = d->inet;
	int back = -1, r;

	if (!d->opts.quiet_wait_ms || !d->opts.container || !in || in->netns < 0 || in->answers)
		return;
	in->quiet_answer = -1;
	r = netns_enter(in->netns, &back);
	if (r >= 0) {
		r = net_answer_watch_start(&in->answers);
		netns_leave(back);
	}
	if (r >= 0) {
		uint64_t t0 = clock_ns();
		r = net_answer_wait(in->answers, d->opts.quiet_wait_ms);
		in->quiet_ms = ns_to_ms(t0, clock_ns());
		in->quiet_segments = net_answer_segments(in->answers);
		net_answer_watch_stop(in->answers);
		if (r >= 0)
			in->quiet_answer = r;
	}
	if (r < 0) {
		pr_warn("%s (frozen without waiting for an answer)", dm_last_error());
		dm_error_clear();
		return;
	}
	pr_info("%s after %.1f ms", in->quiet_answer ? "an answer went out: freezing" :
		"no answer went out: freezing", in->quiet_ms);
}

int dump_inet_prelock(struct dump_ctx *d)
{
	struct dump_inet *in = d->inet;
	bool listening = false;
	int64_t queued;
	int r, back = -1;

	/* a container in a network namespace that is not ours (the freeze would
	 * lock it as a whole too: here only sooner); dump_inet_warm() found it */
	if (!d->opts.container || !in || in->netns < 0 || in->prelocked)
		return 0;
	r = netns_enter(in->netns, &back);
	if (r < 0)
		return r;
	queued = queued_on_listeners(&listening);
	if (queued < 0 || !listening) {
		/* nothing to accept: the lock comes with the freeze, as for any tree */
		netns_leave(back);
		dm_error_clear();
		return 0;
	}
	if (d->opts.net_capture && net_capture_start(&in->cap) < 0) {
		pr_warn("%s (the peers will retransmit what the lock drops)", dm_last_error());
		dm_error_clear();
	}
	snprintf(in->lock, sizeof(in->lock), "%s", NETLOCK_NETNS_NAME);
	uint64_t t0 = clock_ns();
	r = lock_netns(in);
	in->lock_ms = ns_to_ms(t0, clock_ns());
	if (r < 0) {
		in->lock[0] = 0;
		net_capture_free(in->cap);
		in->cap = NULL;
		netns_leave(back);
		return r;
	}
	in->prelocked = true;
	if (d->opts.on_lock)
		d->opts.on_lock(d->opts.on_lock_arg, in->netns, in->lock);
	/*
	 * Nothing new gets in now (a SYN is dropped, and kept for the
	 * destination), and the running tree takes what its listeners have
	 * queued: a connection not yet accepted cannot be restored (no call
	 * puts a socket back into a listener's queue), an accepted one is an
	 * ordinary connection of the tree.
	 */
	t0 = clock_ns();
	while (queued > 0 && ns_to_ms(t0, clock_ns()) < accept_wait(d)) {
		usleep(1000);
		queued = queued_on_listeners(&listening);
	}
	in->accept_wait_ms = ns_to_ms(t0, clock_ns());
	in->accept_left = queued > 0 ? (uint32_t)queued : 0;
	netns_leave(back);
	dm_error_clear();
	pr_info("network namespace locked before the freeze; its listeners' queues %s in %.1f ms",
		in->accept_left ? "still hold connections" : "are empty", in->accept_wait_ms);
	return 0;
}

/*
 * Which of the 4 sock_diag dumps (TCP, TCPv6, UDP, UDPv6) the tree's sockets
 * need: a dump of TCP sockets walks the host's whole table of established
 * sockets (every namespace shares it), a millisecond or more inside the
 * freeze, for nothing when the tree has none of that kind.  A socket's
 * protocol is its xattr system.sockprotoname ("TCP", "TCPv6", "UDP",
 * "UNIX", ...), read through /proc/PID/fd/N without taking the fd.  Any
 * doubt (a read that fails, very many sockets) asks for all four.
 */
/* The kinds the sockets of w are (kind[i]: 0 TCP, 1 TCPv6, 2 UDP, 3
 * UDPv6, -1 another), need[k]: some is of kind k; false when unknown (too
 * many to ask each, or one whose protocol cannot be read: every kind is
 * needed then, and kind[] is not to be used). */
static bool socket_kinds(const struct inet_entry *w, size_t n, bool need[4], int *kind)
{
	static const char *const names[4] = { "TCP", "TCPv6", "UDP", "UDPv6" };

	for (int k = 0; k < 4; k++)
		need[k] = n > 256;
	for (size_t i = 0; i < n && n <= 256; i++) {
		char path[64], proto[32];
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", w[i].pid, w[i].fd);
		ssize_t len = getxattr(path, "system.sockprotoname", proto, sizeof(proto) - 1);
		if (len <= 0) {
			for (int k = 0; k < 4; k++)
				need[k] = true;
			return false;
		}
		proto[len] = 0;
		kind[i] = -1;
		for (int k = 0; k < 4; k++)
			if (!strcmp(proto, names[k])) {
				need[k] = true;
				kind[i] = k;
			}
	}
	return n <= 256;
}

/* entry w of the tree, with its record: into in (sorted by inode) */
static void add_entry(struct dump_inet *in, const struct inet_entry *w, const struct inet_sk_diag *g)
{
	in->e = xrealloc(in->e, (in->n + 1) * sizeof(*in->e));
	in->e[in->n] = *w;
	in->e[in->n].dg = *g;
	in->n++;
	/* keep it sorted for find_entry (few sockets: insertion) */
	for (size_t j = in->n - 1; j > 0 && in->e[j - 1].dg.ino > in->e[j].dg.ino; j--) {
		struct inet_entry t = in->e[j];
		in->e[j] = in->e[j - 1];
		in->e[j - 1] = t;
	}
}

/* the records of v that are sockets of the tree (want, sorted by inode)
 * and not in yet: into in */
static void add_matching(struct dump_inet *in, const struct inet_entry *want, size_t n_want,
			 const struct inet_sk_diag *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct inet_entry key = { .dg.ino = v[i].ino };
		const struct inet_entry *w = v[i].ino ? bsearch(&key, want, n_want, sizeof(*want), entry_cmp) : NULL;
		if (w && !find_entry(in, v[i].ino))
			add_entry(in, w, &v[i]);
	}
}

/* the address of a socket as sock_diag names it */
static bool diag_addr(const struct sockaddr_storage *ss, int *family, uint8_t addr[16], uint16_t *port)
{
	memset(addr, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		memcpy(addr, &a->sin_addr, 4);
		*port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		memcpy(addr, &a->sin6_addr, 16);
		*port = ntohs(a->sin6_port);
	} else {
		return false;
	}
	*family = ss->ss_family;
	return true;
}

/*
 * The tree's TCP sockets without a dump of every state: such a dump walks
 * the host's whole table of established sockets, each family (2-9 ms here,
 * in the frozen window; more with many TIME_WAIT sockets of past clients
 * in the namespace).  Its listeners come from a dump of listeners only (no
 * walk of that table), each other socket is looked up by the addresses its
 * fd names (getsockname, getpeername).  What is not found so (bound but
 * neither listening nor connected, bound to a device...) leaves need[k]
 * set: its family is dumped whole, as before.  want[i]'s kind in kind[i]
 * (0 TCP, 1 TCPv6, else not TCP).  Every request goes on diag.
 */
static int tcp_by_address(struct dump_inet *in, struct inet_diag *diag, const struct inet_entry *want,
			  size_t n_want, const int *kind, bool need[4])
{
	bool left[2] = { false, false };

	for (int k = 0; k < 2; k++) {
		_cleanup_free_ struct inet_sk_diag *v = NULL;
		size_t n = 0;
		if (!need[k])
			continue;
		in->diag_dumps++;
		int r = inet_diag_list_states(diag, k ? AF_INET6 : AF_INET, IPPROTO_TCP, 1u << TCP_LISTEN, &v, &n);
		if (r < 0)
			return r;
		add_matching(in, want, n_want, v, n);
	}
	for (size_t i = 0; i < n_want; i++) {
		if (kind[i] != 0 && kind[i] != 1)
			continue;
		if (find_entry(in, want[i].dg.ino))
			continue;
		_cleanup_close_ int fd = -1;
		struct sockaddr_storage me, peer;
		socklen_t ml = sizeof(me), pl = sizeof(peer);
		struct inet_sk_diag key = { .protocol = IPPROTO_TCP }, got;
		int fam2 = 0;
		bool found = pidfd_dup(want[i].pid, want[i].fd, &fd) >= 0 &&
			     getsockname(fd, (struct sockaddr *)&me, &ml) >= 0 &&
			     getpeername(fd, (struct sockaddr *)&peer, &pl) >= 0 &&
			     diag_addr(&me, &key.family, key.src, &key.sport) && diag_addr(&peer, &fam2, key.dst, &key.dport);
		if (found) {
			in->diag_lookups++;
			found = inet_diag_get(diag, &key, &got) >= 0 && got.ino == want[i].dg.ino;
		}
		if (!found) {
			left[kind[i]] = true;
			dm_error_clear();
			continue;
		}
		add_entry(in, &want[i], &got);
	}
	need[0] = left[0];
	need[1] = left[1];
	return 0;
}

int dump_inet_prepare(struct dump_ctx *d)
{
	struct dump_inet *in = d->inet ? d->inet : xcalloc(1, sizeof(*in));
	struct inet_entry *want = NULL;
	struct netlock_conn *c = NULL;
	struct inet_diag *diag = NULL;
	_cleanup_free_ int *kind = NULL;
	size_t n_want = 0, nc = 0;
	int r, back = -1;

	if (!d->inet) {
		d->inet = in;
		in->netns = -1;
	}
	/* the tree's sockets: inode, and one holder to copy the fd from */
	for (size_t i = 0; i < d->nprocs; i++) {
		_cleanup_(proc_fd_list_done) struct proc_fd_list fds = {};
		struct dproc *p = d->procs[i];
		if (p->zombie)
			continue;
		r = proc_read_fds(p->pid, &fds);
		if (r < 0)
			return dm_fail(r, "process %d: cannot list fds: %s", p->pid, strerror(-r));
		for (size_t k = 0; k < fds.n; k++) {
			if (fds.fds[k].kind != PROC_FD_SOCKET)
				continue;
			want = xrealloc(want, (n_want + 1) * sizeof(*want));
			want[n_want++] = (struct inet_entry){ .dg.ino = fds.fds[k].ino, .pid = p->pid,
							      .fd = fds.fds[k].fd, .dup = -1 };
		}
	}
	if (!n_want)
		return 0;	/* no lock to make (its context goes with dump_inet_close) */
	qsort(want, n_want, sizeof(*want), entry_cmp);
	/* a container's sockets are in its namespace: sock_diag and nft run there */
	r = in->netns >= 0 ? 1 : netns_of_pid(d->procs[0]->pid, &in->netns);
	if (r < 0)
		goto out;
	r = netns_enter(in->netns, &back);
	if (r < 0)
		goto out;
	/* one sock_diag socket for every request below, in the tree's namespace */
	uint64_t t_diag = clock_ns();
	r = inet_diag_open(&diag);
	if (r < 0)
		goto out;

	static const int kinds[4][2] = { { AF_INET, IPPROTO_TCP }, { AF_INET6, IPPROTO_TCP },
					 { AF_INET, IPPROTO_UDP }, { AF_INET6, IPPROTO_UDP } };
	bool need[4];
	kind = xcalloc(n_want, sizeof(*kind));
	if (socket_kinds(want, n_want, need, kind)) {
		r = tcp_by_address(in, diag, want, n_want, kind, need);
		if (r < 0)
			goto out;
	}
	for (int k = 0; k < 4; k++) {
		_cleanup_free_ struct inet_sk_diag *v = NULL;
		size_t n = 0;
		if (!need[k])
			continue;
		in->diag_dumps++;
		r = inet_diag_list(diag, kinds[k][0], kinds[k][1], &v, &n);
		if (r < 0 && kinds[k][1] == IPPROTO_UDP) {
			/* no udp_diag here: a UDP socket of the tree is refused by its fd */
			pr_warn("%s", dm_last_error());
			dm_error_clear();
			continue;
		}
		if (r < 0)
			goto out;
		add_matching(in, want, n_want, v, n);
	}
	inet_diag_close(diag);
	diag = NULL;
	in->diag_ms = ns_to_ms(t_diag, clock_ns());

	/* lock the established connections, then freeze their state */
	for (size_t i = 0; i < in->n; i++) {
		const struct inet_sk_diag *g = &in->e[i].dg;
		if (g->protocol != IPPROTO_TCP || g->state != TCP_ESTABLISHED)
			continue;
		c = xrealloc(c, (nc + 1) * sizeof(*c));
		c[nc] = (struct netlock_conn){ .family = g->family, .sport = g->sport, .dport = g->dport };
		memcpy(c[nc].src, g->src, 16);
		memcpy(c[nc].dst, g->dst, 16);
		nc++;
	}
	/*
	 * A container's namespace is locked as a whole as soon as it has a
	 * socket of ours: no packet in or out, so neither a connection's bytes
	 * nor a new connection to a listener (it would wait in the backlog,
	 * not in the image) get in while the state is read.
	 */
	if (!nc && (in->netns < 0 || !in->n)) {
		r = 0;
		goto out;
	}
	if (in->netns >= 0)	/* the name the restore of a namespace takes over */
		snprintf(in->lock, sizeof(in->lock), "%s", NETLOCK_NETNS_NAME);
	else
		snprintf(in->lock, sizeof(in->lock), "dmigrate_%d_%llu", d->procs[0]->pid,
			 (unsigned long long)d->procs[0]->start_time);
	/* before the lock: nothing it drops goes unseen */
	if (in->netns >= 0 && d->opts.net_capture && !in->cap && !in->prelocked && net_capture_start(&in->cap) < 0) {
		pr_warn("%s (the peers will retransmit what the lock drops)", dm_last_error());
		dm_error_clear();
	}
	uint64_t t0 = clock_ns();
	/* locked before the freeze: it stays as it is */
	r = in->prelocked ? 0 : in->netns >= 0 ? lock_netns(in) : netlock_conns(in->lock, c, nc);
	if (!in->prelocked)
		in->lock_ms = ns_to_ms(t0, clock_ns());
	if (r >= 0 && !in->prelocked && d->opts.on_lock)
		d->opts.on_lock(d->opts.on_lock_arg, in->netns, in->lock);
	in->n_locked = nc;
	if (r < 0) {
		in->lock[0] = 0;
		goto out;
	}
	for (size_t i = 0; i < in->n; i++) {
		struct inet_entry *e = &in->e[i];
		socklen_t len = sizeof(e->reuse);
		int fd;
		if (e->dg.protocol != IPPROTO_TCP || e->dg.state != TCP_ESTABLISHED)
			continue;
		r = pidfd_dup(e->pid, e->fd, &fd);
		if (r < 0) {
			r = dm_fail(r, "process %d: fd %d: cannot copy the socket: %s", e->pid, e->fd,
				    strerror(-r));
			goto out;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &e->reuse, &len) < 0 || (r = repair(fd, TCP_REPAIR_ON)) < 0) {
			r = r < 0 ? r : neg_errno();
			close(fd);
			r = dm_fail(r, "fd %d of process %d: cannot put the TCP connection in repair mode "
				    "(TCP_REPAIR): %s", e->fd, e->pid, strerror(-r));
			goto out;
		}
		e->dup = fd;
	}
	r = 0;
out:
	inet_diag_close(diag);
	netns_leave(back);
	free(want);
	free(c);
	return r;
}

void dump_inet_stats(const struct dump_ctx *d, json_t *obj)
{
	if (d->inet && d->inet->answers) {
		json_t *q = json_object();
		json_object_set_new(q, "ms", json_real(d->inet->quiet_ms));
		json_object_set_new(q, "answer", json_boolean(d->inet->quiet_answer > 0));
		json_object_set_new(q, "segments", json_integer((json_int_t)d->inet->quiet_segments));
		json_object_set_new(obj, "quiet_wait", q);
	}
	if (!d->inet || !d->inet->n)
		return;
	json_object_set_new(obj, "inet_sockets", json_integer((json_int_t)d->inet->n));
	json_object_set_new(obj, "tcp_connections_locked", json_integer((json_int_t)d->inet->n_locked));
	json_object_set_new(obj, "sock_diag_dumps", json_integer((json_int_t)d->inet->diag_dumps));
	json_object_set_new(obj, "sock_diag_ms", json_real(d->inet->diag_ms));
	json_object_set_new(obj, "sock_diag_lookups", json_integer((json_int_t)d->inet->diag_lookups));
	if (d->inet->n_locked || d->inet->prelocked)
		json_object_set_new(obj, "net_lock_ms", json_real(d->inet->lock_ms));
	if (d->inet->prelocked) {
		json_object_set_new(obj, "net_locked_before_freeze", json_true());
		json_object_set_new(obj, "accept_wait_ms", json_real(d->inet->accept_wait_ms));
	}
	json_t *k = dump_net_frames_stats(d);
	if (k)
		json_object_set_new(obj, "net_lock_packets", k);
}

json_t *dump_net_frames_stats(const struct dump_ctx *d)
{
	if (!d->inet || !d->inet->captured)
		return NULL;
	const struct net_capture_stats *st = &d->inet->cap_st;
	json_t *k = json_object();
	json_object_set_new(k, "kept", json_integer((json_int_t)st->kept));
	json_object_set_new(k, "bytes", json_integer((json_int_t)st->bytes));
	json_object_set_new(k, "over_limit", json_integer((json_int_t)st->over));
	json_object_set_new(k, "lost", json_integer((json_int_t)st->lost));
	if (d->inet->replayed)
		json_object_set_new(k, "delivered_here", json_integer((json_int_t)d->inet->replayed));
	return k;
}

size_t dump_tcp_sockets(const struct dump_ctx *d, struct inet_sk_diag **ret)
{
	const struct dump_inet *in = d->inet;
	size_t n = 0;

	*ret = NULL;
	for (size_t i = 0; in && i < in->n; i++) {
		if (in->e[i].dg.protocol != IPPROTO_TCP)
			continue;
		*ret = xrealloc(*ret, (n + 1) * sizeof(**ret));
		(*ret)[n++] = in->e[i].dg;
	}
	return n;
}

void dump_net_frames(struct dump_ctx *d, uint8_t **buf, size_t *len)
{
	struct dump_inet *in = d->inet;

	*buf = NULL;
	*len = 0;
	if (in && in->captured) {
		/* taken already: what was given back, once */
		*buf = in->back;
		*len = in->back_len;
		in->back = NULL;
		in->back_len = 0;
		return;
	}
	if (!in || !in->cap)
		return;
	/* stopped, not closed: dump_inet_close() */
	net_capture_finish(in->cap, buf, len, &in->cap_st);
	in->captured = true;
}

/*
 * The tree's namespace is the container's own (runc made it; it ends with
 * the container), not one its config joins by path (which outlives it).
 */
static bool netns_own(const struct dump_ctx *d)
{
	const Dm__Container *m = d->opts.container ? d->opts.container->msg : NULL;

	if (!m || !d->inet || d->inet->netns < 0)
		return false;
	for (size_t i = 0; i < m->n_namespaces; i++)
		if (!strcmp(m->namespaces[i]->type, "net"))
			return !m->namespaces[i]->path;
	return true;
}

const char *dump_inet_lock(const struct dump_ctx *d)
{
	/* a container's own namespace goes with it, and its lock: nothing to hand on */
	return d->inet && d->inet->lock[0] && !netns_own(d) ? d->inet->lock : NULL;
}

void dump_inet_release(struct dump_ctx *d, bool killed)
{
	struct dump_inet *in = d->inet;

	if (!in)
		return;
	for (size_t i = 0; i < in->n; i++) {
		struct inet_entry *e = &in->e[i];
		if (e->dup < 0)
			continue;
		if (!killed) {
			/* TCP_REPAIR_OFF sets sk_reuse to "no": give the process's value back */
			if (repair(e->dup, TCP_REPAIR_OFF) < 0 ||
			    setsockopt(e->dup, SOL_SOCKET, SO_REUSEADDR, &e->reuse, sizeof(e->reuse)) < 0)
				pr_warn("fd %d of process %d: leaving repair mode: %m", e->fd, e->pid);
		}
		/* killed: still in repair mode, the last close sends nothing */
		close(e->dup);
		e->dup = -1;
	}
	/*
	 * A container's own namespace stays locked when its tree was killed:
	 * it ends with the container, and until then a peer's retransmission
	 * must not meet an unlocked namespace without the socket (a RST would
	 * end the connection that the destination is bringing back).  A
	 * namespace the config joins outlives the container: its lock is the
	 * host's kind, handed to the restore or removed.
	 */
	if (in->lock[0] && killed && netns_own(d)) {
		in->lock[0] = 0;
	} else if (in->lock[0] && (!killed || !d->opts.keep_net_lock)) {
		int back = -1;
		_cleanup_free_ uint8_t *kept = NULL;
		size_t len = 0;
		/* the tree goes on here: what the lock dropped is its own again */
		if (!killed)
			dump_net_frames(d, &kept, &len);
		if (netns_enter(in->netns, &back) < 0 || netlock_unlock_in(in->nft, in->lock) < 0)
			pr_warn("%s", dm_last_error());
		else if (len && net_frames_inject(kept, len, &in->replayed) < 0)
			pr_warn("%s", dm_last_error());
		netns_leave(back);
		in->lock[0] = 0;
	}
}

void dump_net_frames_back(struct dump_ctx *d, uint8_t *buf, size_t len)
{
	struct dump_inet *in = d->inet;

	if (!in || !in->captured || in->back || !len) {
		free(buf);
		return;
	}
	in->back = buf;
	in->back_len = len;
}

void dump_inet_close(struct dump_ctx *d)
{
	struct dump_inet *in = d->inet;

	if (!in)
		return;
	free(in->back);
	in->back = NULL;
	in->back_len = 0;
	net_capture_free(in->cap);
	in->cap = NULL;
	net_answer_watch_free(in->answers);
	in->answers = NULL;
	netlock_ctx_free(in->nft);
	in->nft = NULL;
}

void dump_inet_free(struct dump_ctx *d)
{
	if (!d->inet)
		return;
	for (size_t i = 0; i < d->inet->n; i++)
		if (d->inet->e[i].dup >= 0)
			close(d->inet->e[i].dup);
	if (d->inet->netns >= 0)
		close(d->inet->netns);
	dump_inet_close(d);
	free(d->inet->e);
	free(d->inet);
	d->inet = NULL;
}

/* ------------------------------------------------------------ per fd */

struct optdesc {
	int level, name;
	bool tcp_only, udp_only;
};

/* What a service sets on its sockets; the restore sets those that differ from a new socket's. */
static const struct optdesc opts_sol[] = {
	{ SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT }, { SOL_SOCKET, SO_KEEPALIVE },
	{ SOL_SOCKET, SO_BROADCAST }, { SOL_SOCKET, SO_PRIORITY }, { SOL_SOCKET, SO_RCVLOWAT },
	{ SOL_SOCKET, SO_MARK }, { SOL_SOCKET, SO_LINGER }, { SOL_SOCKET, SO_OOBINLINE },
	{ SOL_SOCKET, SO_RCVTIMEO }, { SOL_SOCKET, SO_SNDTIMEO }, { SOL_SOCKET, SO_BINDTODEVICE },
	{ SOL_SOCKET, SO_DONTROUTE }, { SOL_SOCKET, SO_TIMESTAMP }, { SOL_SOCKET, SO_TIMESTAMPNS },
	{ SOL_SOCKET, SO_NO_CHECK }, { SOL_SOCKET, SO_TIMESTAMPING }, { SOL_SOCKET, SO_BUSY_POLL },
	{ SOL_SOCKET, SO_ZEROCOPY }, { SOL_SOCKET, SO_SELECT_ERR_QUEUE },
	{ SOL_SOCKET, SO_SNDBUF }, { SOL_SOCKET, SO_RCVBUF },
	{ IPPROTO_TCP, TCP_NODELAY, true }, { IPPROTO_TCP, TCP_KEEPIDLE, true },
	{ IPPROTO_TCP, TCP_KEEPINTVL, true }, { IPPROTO_TCP, TCP_KEEPCNT, true },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT, true }, { IPPROTO_TCP, TCP_CONGESTION, true },
	{ IPPROTO_TCP, TCP_DEFER_ACCEPT, true }, { IPPROTO_TCP, TCP_NOTSENT_LOWAT, true },
	{ IPPROTO_TCP, TCP_SYNCNT, true }, { IPPROTO_TCP, TCP_LINGER2, true },
	{ IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, true }, { IPPROTO_TCP, TCP_FASTOPEN, true },
	{ IPPROTO_TCP, TCP_INQ, true }, { IPPROTO_TCP, TCP_CORK, true },
	{ IPPROTO_UDP, UDP_CORK, false, true }, { IPPROTO_UDP, UDP_SEGMENT, false, true },
	{ IPPROTO_UDP, UDP_GRO, false, true },
};
static const struct optdesc opts_ip[] = {
	{ IPPROTO_IP, IP_TOS }, { IPPROTO_IP, IP_TTL }, { IPPROTO_IP, IP_FREEBIND },
	{ IPPROTO_IP, IP_TRANSPARENT }, { IPPROTO_IP, IP_RECVERR }, { IPPROTO_IP, IP_PKTINFO },
	{ IPPROTO_IP, IP_RECVTOS }, { IPPROTO_IP, IP_RECVTTL }, { IPPROTO_IP, IP_MTU_DISCOVER },
	{ IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT }, { IPPROTO_IP, IP_RECVORIGDSTADDR }, { IPPROTO_IP, IP_MULTICAST_TTL, false, true },
	{ IPPROTO_IP, IP_MULTICAST_LOOP, false, true },
};
static const struct optdesc opts_ip6[] = {
	{ IPPROTO_IPV6, IPV6_V6ONLY }, { IPPROTO_IPV6, IPV6_TCLASS }, { IPPROTO_IPV6, IPV6_UNICAST_HOPS },
	{ IPPROTO_IPV6, IPV6_RECVPKTINFO }, { IPPROTO_IPV6, IPV6_RECVERR },
	{ IPPROTO_IPV6, IPV6_MTU_DISCOVER }, { IPPROTO_IPV6, IPV6_FREEBIND },
	{ IPPROTO_IPV6, IPV6_TRANSPARENT }, { IPPROTO_IPV6, IPV6_RECVTCLASS },
	{ IPPROTO_IPV6, IPV6_RECVHOPLIMIT }, { IPPROTO_IPV6, IPV6_DONTFRAG }, { IPPROTO_IPV6, IPV6_MULTICAST_HOPS, false, true },
	{ IPPROTO_IPV6, IPV6_MULTICAST_LOOP, false, true },
};

static void add_opt(Dm__InetSk *s, int level, int name, const void *val, size_t len)
{
	Dm__InetOpt *o = PB_NEW(Dm__InetOpt, dm__inet_opt__init);
	o->level = level;
	o->name = name;
	o->value.data = xmalloc(len ? len : 1);
	memcpy(o->value.data, val, len);
	o->value.len = len;
	s->opts = xrealloc(s->opts, (s->n_opts + 1) * sizeof(*s->opts));
	s->opts[s->n_opts++] = o;
}

static void read_opts(int fd, const struct optdesc *t, size_t n, bool tcp, Dm__InetSk *s, int reuse)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[64];
		socklen_t len = sizeof(buf);
		if ((t[i].tcp_only && !tcp) || (t[i].udp_only && tcp))
			continue;
		if (t[i].level == SOL_SOCKET && t[i].name == SO_REUSEADDR && reuse >= 0) {
			/* repair mode overwrote it: the value from before */
			add_opt(s, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
			continue;
		}
		memset(buf, 0, sizeof(buf));
		if (getsockopt(fd, t[i].level, t[i].name, buf, &len) < 0)
			continue; /* not of this kind of socket, or this kernel */
		add_opt(s, t[i].level, t[i].name, buf, len);
	}
}

static int peek_queue(int fd, int queue, uint32_t len, uint32_t *ret_seq, ProtobufCBinaryData *out)
{
	socklen_t sl = sizeof(*ret_seq);

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)) < 0 ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, ret_seq, &sl) < 0)
		return neg_errno();
	if (!len)
		return 0;
	/* one byte more than there should be: proves that there is no more */
	out->data = xmalloc(len + 1);
	ssize_t n = recv(fd, out->data, len + 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return neg_errno();
	if ((size_t)n != len)
		return -EAGAIN;
	out->len = len;
	return 0;
}

static int dump_tcp_conn(int fd, Dm__TcpConn *t)
{
	struct tcp_info ti = {};
	struct tcp_repair_window w = {};
	socklen_t len = sizeof(ti);
	int inq = 0, outq = 0, unsent = 0, none = TCP_NO_QUEUE, r;
	uint32_t v;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return neg_errno();
	t->tcpi_options = ti.tcpi_options;
	if (ti.tcpi_options & TCPI_OPT_WSCALE) {
		t->has_snd_wscale = t->has_rcv_wscale = true;
		t->snd_wscale = ti.tcpi_snd_wscale;
		t->rcv_wscale = ti.tcpi_rcv_wscale;
	}
	len = sizeof(v);
	if (getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &v, &len) < 0)	/* repair mode: mss_clamp */
		return neg_errno();
	t->mss_clamp = v;
	if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) {
		len = sizeof(v);
		if (getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &v, &len) < 0)
			return neg_errno();
		t->has_timestamp = true;
		t->timestamp = v;
	}
	len = sizeof(w);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) < 0)
		return neg_errno();
	t->snd_wl1 = w.snd_wl1;
	t->snd_wnd = w.snd_wnd;
	t->max_window = w.max_window;
	t->rcv_wnd = w.rcv_wnd;
	t->rcv_wup = w.rcv_wup;
	if (ioctl(fd, SIOCINQ, &inq) < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0 ||
	    ioctl(fd, SIOCOUTQNSD, &unsent) < 0)
		return neg_errno();
	r = peek_queue(fd, TCP_RECV_QUEUE, (uint32_t)inq, &t->rcv_seq, &t->recv_queue);
	if (r >= 0)
		r = peek_queue(fd, TCP_SEND_QUEUE, (uint32_t)outq, &t->snd_seq, &t->send_queue);
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &none, sizeof(none));
	if (r < 0)
		return r;
	t->has_recv_queue = inq > 0;
	t->has_send_queue = outq > 0;
	t->has_unsent = true;
	t->unsent = (uint32_t)unsent;
	return 0;
}

static bool inet_match(const struct dump_fd *x)
{
	int dom = 0;
	socklen_t len = sizeof(dom);

	if (x->pf->kind != PROC_FD_SOCKET)
		return false;
	_cleanup_close_ int fd = (int)syscall(SYS_pidfd_getfd, x->p->pidfd, x->pf->fd, 0);
	return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 &&
	       (dom == AF_INET || dom == AF_INET6);
}

static int inet_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	struct dproc *p = x->p;
	const struct proc_fd *pf = x->pf;
	struct inet_entry *e = find_entry(d->inet, x->st->st_ino);
	_cleanup_close_ int fd = -1;
	int type = 0, proto = 0, dom = 0, r;
	socklen_t len = sizeof(int);

	r = dump_fd_dup(x, &fd);
	if (r < 0)
		return r;
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len);
	len = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
	len = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
	if (!e && (proto == IPPROTO_TCP || proto == IPPROTO_UDP))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (%s %s): sock_diag does not "
			       "show it (for UDP the kernel needs udp_diag)", pf->fd, p->pid, pf->target,
			       dom == AF_INET6 ? "AF_INET6" : "AF_INET", proto == IPPROTO_TCP ? "TCP" : "UDP");
	if (!e || (type != SOCK_STREAM && type != SOCK_DGRAM) ||
	    (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: %s (%s %s, protocol %d)",
			       pf->fd, p->pid, pf->target, dom == AF_INET6 ? "AF_INET6" : "AF_INET",
			       type == SOCK_RAW ? "SOCK_RAW" : type == SOCK_STREAM ? "SOCK_STREAM"
				: type == SOCK_DGRAM ? "SOCK_DGRAM" : "other type", proto);

	const struct inet_sk_diag *g = &e->dg;
	const char *what = proto == IPPROTO_TCP ? "TCP" : "UDP";
	bool tcp = proto == IPPROTO_TCP;
	/* where its address changes, a connection ends anyway: one that was
	 * already closing (the peer's FIN in, CLOSE_WAIT; ours out, FIN_WAIT)
	 * or still connecting goes as it is and ends there (a closed stand-in) */
	bool ending = tcp && d->opts.reset_unaccepted &&
		      (g->state == TCP_CLOSE_WAIT || g->state == TCP_FIN_WAIT1 || g->state == TCP_FIN_WAIT2 ||
		       g->state == TCP_LAST_ACK || g->state == TCP_CLOSING || g->state == TCP_SYN_SENT);
	if (tcp && !ending && g->state != TCP_LISTEN && g->state != TCP_ESTABLISHED && g->state != TCP_CLOSE)
		return dm_fail(-ENOTSUP, "fd %d of process %d: %s socket %s:%u in state %s, which cannot "
			       "be restored (only LISTEN, ESTABLISHED and CLOSE are)", pf->fd, p->pid, what,
			       pf->target, g->sport, inet_state_name(g->state));
	if (tcp && g->state == TCP_LISTEN && g->rqueue && d->opts.reset_unaccepted) {
		/*
		 * The tree never saw them, and they could not go on where it goes
		 * (its address changes): reset, as a server too busy to take them
		 * would.  The tree is frozen and its namespace locked: nobody else
		 * accepts, and no new one completes meanwhile.
		 */
		unsigned n = 0;
		struct pollfd pl = { fd, POLLIN, 0 };
		while (poll(&pl, 1, 0) == 1 && (pl.revents & POLLIN)) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				break;
			struct linger lg = { 1, 0 };
			setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(c);
			n++;
		}
		pr_info("fd %d of process %d: %u connections to port %u not yet accepted were reset",
			pf->fd, p->pid, n, g->sport);
	} else if (tcp && g->state == TCP_LISTEN && g->rqueue && d->inet->prelocked)
		return dm_fail(-ENOTSUP, "fd %d of process %d: listening TCP socket on port %u has %u "
			       "connections not yet accepted (the service did not take them within %u ms "
			       "of the network lock: --accept-wait), which cannot be restored", pf->fd, p->pid,
			       g->sport, g->rqueue, accept_wait(d));
	else if (tcp && g->state == TCP_LISTEN && g->rqueue)
		return dm_fail(-ENOTSUP, "fd %d of process %d: listening TCP socket on port %u has %u "
			       "connections not yet accepted, which cannot be restored", pf->fd, p->pid,
			       g->sport, g->rqueue);
	if (tcp && g->state == TCP_ESTABLISHED && g->shutdown && d->opts.reset_unaccepted)
		ending = true;
	else if (tcp && g->state == TCP_ESTABLISHED && g->shutdown)
		return dm_fail(-ENOTSUP, "fd %d of process %d: TCP connection %u -> %u was shut down "
			       "(%s), which cannot be restored", pf->fd, p->pid, g->sport, g->dport,
			       g->shutdown == 3 ? "both ways" : g->shutdown & 2 ? "for writing" : "for reading");
	if (!tcp) {
		int inq = 0;
		if (ioctl(fd, SIOCINQ, &inq) == 0 && (inq > 0 || g->rqueue))
			return dm_fail(-ENOTSUP, "fd %d of process %d: UDP socket on port %u has datagrams "
				       "queued, unread (%u bytes of memory), which are not restored", pf->fd,
				       p->pid, g->sport, g->rqueue);
		if (g->wqueue)
			return dm_fail(-ENOTSUP, "fd %d of process %d: UDP socket on port %u has %u bytes "
				       "being sent (corked), which are not restored", pf->fd, p->pid,
				       g->sport, g->wqueue);
	}

	/* a link-local IPv6 address needs its interface (the scope), which the image does not keep yet */
	for (int k = 0; k < 2 && g->family == AF_INET6; k++) {
		const uint8_t *ad = k ? g->dst : g->src;
		if (ad[0] == 0xfe && (ad[1] & 0xc0) == 0x80)
			return dm_fail(-ENOTSUP, "fd %d of process %d: %s socket on port %u uses the "
				       "link-local IPv6 address of an interface, which is not restored yet",
				       pf->fd, p->pid, what, g->sport);
	}
	/* what a socket may carry that cannot be read back */
	socklen_t flen = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &flen) == 0 && flen > 0)
		return dm_fail(-ENOTSUP, "fd %d of process %d: %s socket on port %u has a socket filter "
			       "(SO_ATTACH_FILTER), which is not restored", pf->fd, p->pid, what, g->sport);
	char ulp[16] = "";
	socklen_t ulen = sizeof(ulp) - 1;
	if (tcp && getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &ulen) == 0 && ulp[0])
		return dm_fail(-ENOTSUP, "fd %d of process %d: TCP socket on port %u has the upper layer "
			       "protocol %s (TCP_ULP, e.g. kernel TLS), which is not restored", pf->fd, p->pid,
			       g->sport, ulp);

	Dm__InetSk *s = f->inet = PB_NEW(Dm__InetSk, dm__inet_sk__init);
	f->type = DM__FILE_TYPE__FILE_INET_SK;
	s->family = g->family;
	s->type = type;
	s->protocol = proto;
	s->state = g->state;
	size_t alen = g->family == AF_INET6 ? 16 : 4;
	s->src_addr.data = xmalloc(alen);
	s->dst_addr.data = xmalloc(alen);
	memcpy(s->src_addr.data, g->src, alen);
	memcpy(s->dst_addr.data, g->dst, alen);
	s->src_addr.len = s->dst_addr.len = alen;
	s->src_port = g->sport;
	s->dst_port = g->dport;
	if (ending) {
		/* recorded as closing, without its repair state: it ends */
		s->state = TCP_CLOSE_WAIT;
		pr_info("fd %d of process %d: TCP connection %u -> %u (%s) ends where the tree goes "
			"(its address changes)", pf->fd, p->pid, g->sport, g->dport, inet_state_name(g->state));
		return 0;
	}
	if (tcp && g->state == TCP_LISTEN) {
		s->has_backlog = true;
		s->backlog = g->wqueue;
	}
	read_opts(fd, opts_sol, ARRAY_SIZE(opts_sol), tcp, s, e->dup >= 0 ? e->reuse : -1);
	if (g->family == AF_INET)
		read_opts(fd, opts_ip, ARRAY_SIZE(opts_ip), tcp, s, -1);
	else
		read_opts(fd, opts_ip6, ARRAY_SIZE(opts_ip6), tcp, s, -1);
	if (tcp && g->state != TCP_ESTABLISHED) {
		uint8_t v[4];
		socklen_t l = sizeof(v);
		if (getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, v, &l) == 0)
			add_opt(s, IPPROTO_TCP, TCP_MAXSEG, v, l);
	}
	if (tcp && g->state == TCP_ESTABLISHED) {
		if (e->dup < 0)
			return dm_fail(-EPROTO, "fd %d of process %d: TCP connection %u -> %u was not put in "
				       "repair mode (it was established after the freeze)", pf->fd, p->pid,
				       g->sport, g->dport);
		s->tcp = PB_NEW(Dm__TcpConn, dm__tcp_conn__init);
		r = dump_tcp_conn(fd, s->tcp);
		if (r < 0)
			return dm_fail(r, "fd %d of process %d: reading the TCP connection %u -> %u in repair "
				       "mode: %s", pf->fd, p->pid, g->sport, g->dport, strerror(-r));
	}
	return 0;
}

const struct dump_fd_type dump_fd_inet = { .name = "TCP/UDP socket", .match = inet_match,
					   .dump = inet_dump };
