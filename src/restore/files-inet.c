/* SPDX-License-Identifier: MIT */
/*
 * TCP and UDP sockets, IPv4 and IPv6 (the dump's side is dump/fd-inet.c;
 * docs/net.md, "Sockets and the network lock").
 *
 *   rst_inet_lock()    before any socket exists: the image's connections are
 *                      locked here too (the checkpoint's lock of the same name
 *                      is taken over in one nft transaction; on another host
 *                      it is new): a restored end must not reach a peer that
 *                      is not back yet, nor the peer it
 *   open()             in the restorer: options that differ from a new
 *                      socket's, then bind/connect/listen; an established
 *                      connection is rebuilt in repair mode (sequence numbers,
 *                      both queues, MSS, window scale, SACK, timestamps,
 *                      windows) and stays there
 *   rst_inet_resume()  once the tree is to run (after a migration's commit),
 *                      before it runs: the lock goes, then repair mode off
 *                      (a window probe the peer answers at once), the send
 *                      queue (sent but not acknowledged, and never sent)
 *                      written as ordinary data, SO_REUSEADDR and TCP_CORK
 *                      given back
 *   files_fini()       a restore that failed before that kills its sockets
 *                      still in repair mode (they send nothing) and keeps
 *                      the checkpoint's lock for the next try; a lock it
 *                      made itself goes.
 *
 * Listening sockets are made before any connection: an accepted
 * connection's socket shares its listener's port, and binding a listener
 * next to it would fail (the original's inherited the port at accept()).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/clock.h"
#include "base/log.h"
#include "net/inet.h"
#include "net/replay.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct rst_inet_conn {
	int fd;                 /* the description (fs->desc owns it) */
	const Dm__InetSk *s;
	bool bumped;            /* buffers raised for the queues: set back at resume */
};

struct rst_inet {
	struct rst_inet_conn *conns;
	size_t n_conns;
	char lock[80];
	bool lock_existed;      /* the checkpoint's: kept if the restore fails */
	bool resumed;
	bool listeners_done;
	int netns;              /* the tree's network namespace if not ours (a container's), else -1 */
	struct netlock_opener *opener; /* the lock's end, prepared in its namespace (NULL: the script) */
	bool netns_known;
};

static struct rst_inet *inet_of(struct rst_files *fs)
{
	if (!fs->inet) {
		fs->inet = xcalloc(1, sizeof(*fs->inet));
		fs->inet->netns = -1;
	}
	return fs->inet;
}

/*
 * The namespace the tree's sockets belong in: its root's (a container's
 * root was made by the runtime in the new namespace).  Its sockets are made
 * there, and it is locked there.
 */
static int tree_netns(struct rst_ctx *c, struct rst_inet *in)
{
	if (in->netns_known)
		return 0;
	int r = netns_of_pid(c->procs[0].host_pid, &in->netns);
	if (r < 0)
		return r;
	in->netns_known = true;
	return 0;
}

static const char *opt_name(int level, int name)
{
	static char buf[48];
	snprintf(buf, sizeof(buf), "%s option %d",
		 level == SOL_SOCKET ? "SOL_SOCKET" : level == IPPROTO_TCP ? "TCP"
		 : level == IPPROTO_UDP ? "UDP" : level == IPPROTO_IP ? "IP" : "IPv6", name);
	return buf;
}

static bool is_cork(const Dm__InetOpt *o)
{
	return (o->level == IPPROTO_TCP && o->name == TCP_CORK) ||
	       (o->level == IPPROTO_UDP && o->name == UDP_CORK);
}

/* A buffer size as SO_*BUF reports it (doubled) set back, whatever the limits (we are root). */
static int set_buf(int fd, int name, int reported)
{
	int v = reported / 2, force = name == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
	return setsockopt(fd, SOL_SOCKET, force, &v, sizeof(v)) < 0 ? neg_errno() : 0;
}

/*
 * Every recorded option whose value differs from the socket's now (a new
 * socket's default): set.  corks: only the corks (they hold data back),
 * else all but them.  The socket level goes last: IP_TOS also sets the
 * priority, which SO_PRIORITY may have changed since.
 */
static int set_opts(int fd, const Dm__InetSk *s, bool corks)
{
	for (size_t j = 0; j < 2 * s->n_opts; j++) {
		const Dm__InetOpt *o = s->opts[j % s->n_opts];
		uint8_t cur[64];
		socklen_t len = sizeof(cur);
		if ((o->level == SOL_SOCKET) != (j >= s->n_opts))
			continue;
		if (is_cork(o) != corks || o->value.len > sizeof(cur))
			continue;
		memset(cur, 0, sizeof(cur));
		if (getsockopt(fd, o->level, o->name, cur, &len) == 0 && len == o->value.len &&
		    !memcmp(cur, o->value.data, len))
			continue;
		int r = 0;
		if (o->level == SOL_SOCKET && (o->name == SO_SNDBUF || o->name == SO_RCVBUF) &&
		    o->value.len == sizeof(int)) {
			int v;
			memcpy(&v, o->value.data, sizeof(v));
			r = set_buf(fd, o->name, v);
		} else if (setsockopt(fd, o->level, o->name, o->value.data, (socklen_t)o->value.len) < 0) {
			r = neg_errno();
		}
		if (r < 0)
			return dm_fail(r, "setting %s: %s", opt_name(o->level, o->name), strerror(-r));
	}
	return 0;
}

static const Dm__InetOpt *find_opt(const Dm__InetSk *s, int level, int name)
{
	for (size_t i = 0; i < s->n_opts; i++)
		if (s->opts[i]->level == level && s->opts[i]->name == name)
			return s->opts[i];
	return NULL;
}

static socklen_t make_addr(const Dm__InetSk *s, bool src, struct sockaddr_storage *ss)
{
	const ProtobufCBinaryData *a = src ? &s->src_addr : &s->dst_addr;
	uint16_t port = htons((uint16_t)(src ? s->src_port : s->dst_port));

	memset(ss, 0, sizeof(*ss));
	if (s->family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
		v4->sin_family = AF_INET;
		v4->sin_port = port;
		memcpy(&v4->sin_addr, a->data, 4);
		return sizeof(*v4);
	}
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	v6->sin6_family = AF_INET6;
	v6->sin6_port = port;
	memcpy(&v6->sin6_addr, a->data, 16);
	return sizeof(*v6);
}

static const char *addr_str(const Dm__InetSk *s, bool src, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(s->family, (src ? s->src_addr : s->dst_addr).data, a, sizeof(a));
	snprintf(buf, len, s->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
		 src ? s->src_port : s->dst_port);
	return buf;
}

static int repair(int fd, int v)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &v, sizeof(v)) < 0 ? neg_errno() : 0;
}

static int set_u32(int fd, int name, uint32_t v)
{
	return setsockopt(fd, IPPROTO_TCP, name, &v, sizeof(v)) < 0 ? neg_errno() : 0;
}

/* All of buf into the socket (a repair queue, or ordinary data); smaller pieces if refused. */
static int send_all(int fd, const uint8_t *buf, size_t len)
{
	size_t chunk = 256 * 1024;
	while (len) {
		ssize_t n = send(fd, buf, MIN(len, chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		/* refused for its size (memory, a full queue): smaller; anything
		 * else (a reset: ECONNRESET, then EPIPE) is the answer */
		if (n < 0 && errno != EAGAIN && errno != ENOMEM && errno != ENOBUFS && errno != EMSGSIZE)
			return neg_errno();
		if (n <= 0) {
			if (chunk > 1024) {
				chunk /= 2;
				continue;
			}
			return n < 0 ? neg_errno() : -EIO;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Room for len bytes more than the buffer holds: the queues of a full socket. */
static int bump(int fd, int name, size_t len)
{
	int cur = 0;
	socklen_t sl = sizeof(cur);
	if (getsockopt(fd, SOL_SOCKET, name, &cur, &sl) < 0)
		return neg_errno();
	if ((size_t)cur >= 2 * len + 65536)
		return 0;
	return set_buf(fd, name, (int)MIN(2 * (2 * len + 65536), (size_t)INT32_MAX / 2));
}

static int tcp_established(struct rst_files *fs, int fd, const Dm__InetSk *s, bool *ret_bumped)
{
	const Dm__TcpConn *t = s->tcp;
	struct sockaddr_storage src, dst;
	socklen_t sl = make_addr(s, true, &src), dl = make_addr(s, false, &dst);
	int r;

	r = repair(fd, TCP_REPAIR_ON);
	if (r < 0)
		return dm_fail(r, "TCP_REPAIR: %s", strerror(-r));
	/* the queues' sequence numbers before their data is put back */
	if ((r = set_u32(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) < 0 ||
	    (r = set_u32(fd, TCP_QUEUE_SEQ, t->rcv_seq - (uint32_t)t->recv_queue.len)) < 0 ||
	    (r = set_u32(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) < 0 ||
	    (r = set_u32(fd, TCP_QUEUE_SEQ, t->snd_seq - (uint32_t)t->send_queue.len)) < 0)
		return dm_fail(r, "setting the sequence numbers: %s", strerror(-r));
	if (bind(fd, (struct sockaddr *)&src, sl) < 0)
		return dm_fail(neg_errno(), "bind: %m");
	/* in repair mode connect() sends nothing: the socket is ESTABLISHED at once */
	if (connect(fd, (struct sockaddr *)&dst, dl) < 0)
		return dm_fail(neg_errno(), "connect in repair mode: %m");

	struct tcp_repair_opt o[4];
	size_t n = 0;
	o[n++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, t->mss_clamp };
	if (t->tcpi_options & TCPI_OPT_SACK)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	if (t->tcpi_options & TCPI_OPT_WSCALE)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW, t->snd_wscale | (t->rcv_wscale << 16) };
	if (t->tcpi_options & TCPI_OPT_TIMESTAMPS)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, o, (socklen_t)(n * sizeof(o[0]))) < 0)
		return dm_fail(neg_errno(), "TCP_REPAIR_OPTIONS: %m");
	if (t->has_timestamp && (r = set_u32(fd, TCP_TIMESTAMP, t->timestamp)) < 0)
		return dm_fail(r, "TCP_TIMESTAMP: %s", strerror(-r));

	if (t->recv_queue.len + t->send_queue.len) {
		if ((r = bump(fd, SO_RCVBUF, t->recv_queue.len)) < 0 ||
		    (r = bump(fd, SO_SNDBUF, t->send_queue.len)) < 0)
			return dm_fail(r, "making room for the queues: %s", strerror(-r));
		*ret_bumped = true;
	}
	if (t->recv_queue.len &&
	    ((r = set_u32(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) < 0 ||
	     (r = send_all(fd, t->recv_queue.data, t->recv_queue.len)) < 0))
		return dm_fail(r, "putting back %zu bytes received, not read: %s", t->recv_queue.len,
			       strerror(-r));
	/*
	 * Sent, not acknowledged: not put back as sent.  Written in repair
	 * mode they would count as in flight and go out again only when this
	 * new socket's retransmission timer fires (it knows no round trip:
	 * a second or more), although the peer may never have had them (the
	 * lock dropped what the kernel sent while the tree was frozen).  The
	 * sequence starts at the first unacknowledged byte and rst_inet_resume()
	 * writes the whole queue as ordinary data once the lock is gone.
	 */
	struct tcp_repair_window w = { .snd_wl1 = t->snd_wl1, .snd_wnd = t->snd_wnd,
				       .max_window = t->max_window, .rcv_wnd = t->rcv_wnd,
				       .rcv_wup = t->rcv_wup };
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
		return dm_fail(neg_errno(), "TCP_REPAIR_WINDOW: %m");
	set_u32(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	(void)fs;
	return 0;
}

/*
 * A connection whose own address this network namespace does not have (a
 * Docker container on a default bridge gets the destination's address): it
 * cannot go on, so it ends as if the peer had closed it.  The stand-in is
 * made in repair mode, which sends nothing (the namespace is locked, and
 * nothing may leave for a peer that is not there): connected on loopback to
 * a port nobody listens on, then shut for reading.  The tree reads EOF; what
 * it writes meets a reset once the lock is gone.
 */
static int tcp_closed(int fd, int family)
{
	struct sockaddr_storage src = { .ss_family = (sa_family_t)family }, dst;
	socklen_t sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int r;

	if (family == AF_INET)
		((struct sockaddr_in *)&src)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&src)->sin6_addr = in6addr_loopback;
	dst = src;
	if (family == AF_INET)
		((struct sockaddr_in *)&dst)->sin_port = htons(1);
	else
		((struct sockaddr_in6 *)&dst)->sin6_port = htons(1);
	if ((r = repair(fd, TCP_REPAIR_ON)) < 0)
		return dm_fail(r, "a closed stand-in: TCP_REPAIR: %s", strerror(-r));
	if (bind(fd, (struct sockaddr *)&src, sl) < 0 || connect(fd, (struct sockaddr *)&dst, sl) < 0)
		return dm_fail(neg_errno(), "a closed stand-in on loopback: %m");
	if ((r = repair(fd, TCP_REPAIR_OFF_NO_WP)) < 0)
		return dm_fail(r, "a closed stand-in: leaving repair mode: %s", strerror(-r));
	if (shutdown(fd, SHUT_RD) < 0)
		return dm_fail(neg_errno(), "a closed stand-in: shutdown: %m");
	return 0;
}

static int open_one(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__InetSk *s = f->inet;
	struct sockaddr_storage ss;
	char a[80], b[80];
	socklen_t sl;
	bool tcp, bumped = false;
	int r;

	if (!s || (s->family != AF_INET && s->family != AF_INET6) ||
	    s->src_addr.len != (s->family == AF_INET ? 4u : 16u) || s->dst_addr.len != s->src_addr.len ||
	    (s->protocol != IPPROTO_TCP && s->protocol != IPPROTO_UDP) || s->src_port > 65535 ||
	    s->dst_port > 65535)
		return dm_fail(-EBADMSG, "bad socket in files.img");
	tcp = s->protocol == IPPROTO_TCP;
	if (tcp && s->state == TCP_ESTABLISHED && (!s->tcp || s->tcp->unsent > s->tcp->send_queue.len))
		return dm_fail(-EBADMSG, "TCP connection without its repair state in files.img");

	struct rst_inet *in = inet_of(fs);
	int back = -1;
	r = tree_netns(fs->c, in);
	if (r >= 0)
		r = netns_enter(in->netns, &back);
	if (r < 0)
		return r;
	/* a socket stays in the namespace it was made in: bind, connect, listen work there */
	_cleanup_close_ int fd = socket(s->family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC,
					s->protocol);
	int err = errno;
	/* is the connection's own address here? (only where the runtime chose it) */
	bool stand_in = false;
	if (fd >= 0 && tcp && s->state == TCP_ESTABLISHED && fs->c->o->inet_close_foreign) {
		_cleanup_close_ int probe = socket(s->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_storage pa;
		socklen_t pl = make_addr(s, true, &pa);
		if (s->family == AF_INET)
			((struct sockaddr_in *)&pa)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&pa)->sin6_port = 0;
		stand_in = probe >= 0 && bind(probe, (struct sockaddr *)&pa, pl) < 0 && errno == EADDRNOTAVAIL;
	}
	netns_leave(back);
	if (fd < 0)
		return dm_fail(-err, "socket: %s", strerror(err));
	r = set_opts(fd, s, false);
	if (r < 0)
		return r;
	if (!tcp || s->state == TCP_CLOSE) {
		sl = make_addr(s, true, &ss);
		if (s->src_port && bind(fd, (struct sockaddr *)&ss, sl) < 0)
			return dm_fail(neg_errno(), "%s socket: bind to %s: %m", tcp ? "TCP" : "UDP",
				       addr_str(s, true, a, sizeof(a)));
		sl = make_addr(s, false, &ss);
		if (!tcp && s->state == TCP_ESTABLISHED && connect(fd, (struct sockaddr *)&ss, sl) < 0)
			return dm_fail(neg_errno(), "UDP socket %s: connect to %s: %m",
				       addr_str(s, true, a, sizeof(a)), addr_str(s, false, b, sizeof(b)));
	} else if (s->state == TCP_LISTEN) {
		/*
		 * Bound in repair mode, which binds whatever holds the port: a
		 * listener without SO_REUSEADDR next to a TIME_WAIT of the old
		 * one.  listen() checks the port again with the process's own
		 * SO_REUSEADDR: a port really taken by another is refused there.
		 */
		const Dm__InetOpt *ru = find_opt(s, SOL_SOCKET, SO_REUSEADDR);
		int reuse = 0;
		if (ru && ru->value.len == sizeof(int))
			memcpy(&reuse, ru->value.data, sizeof(int));
		sl = make_addr(s, true, &ss);
		if ((r = repair(fd, TCP_REPAIR_ON)) < 0)
			return dm_fail(r, "TCP_REPAIR: %s", strerror(-r));
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
			return dm_fail(neg_errno(), "listening TCP socket: bind to %s: %m",
				       addr_str(s, true, a, sizeof(a)));
		if ((r = repair(fd, TCP_REPAIR_OFF_NO_WP)) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) < 0)
			return dm_fail(r < 0 ? r : neg_errno(), "leaving repair mode: %m");
		if (listen(fd, s->has_backlog ? (int)s->backlog : SOMAXCONN) < 0)
			return dm_fail(neg_errno(), "listen on %s: %m%s", addr_str(s, true, a, sizeof(a)),
				       errno == EADDRINUSE ? " (another socket holds the port)" : "");
	} else if (s->state == TCP_ESTABLISHED && stand_in) {
		r = tcp_closed(fd, s->family);
		if (r < 0)
			return rst_wrap(r, "TCP connection %s -> %s", addr_str(s, true, a, sizeof(a)),
					addr_str(s, false, b, sizeof(b)));
		pr_info("TCP connection %s -> %s: its address is not here, it ends (the tree reads EOF)",
			addr_str(s, true, a, sizeof(a)), addr_str(s, false, b, sizeof(b)));
	} else if (s->state == TCP_ESTABLISHED) {
		r = tcp_established(fs, fd, s, &bumped);
		if (r < 0)
			return rst_wrap(r, "TCP connection %s -> %s", addr_str(s, true, a, sizeof(a)),
					addr_str(s, false, b, sizeof(b)));
		in->conns = xrealloc(in->conns, (in->n_conns + 1) * sizeof(*in->conns));
		in->conns[in->n_conns++] = (struct rst_inet_conn){ .fd = fd, .s = s, .bumped = bumped };
	} else if (s->state == TCP_CLOSE_WAIT && fs->c->o->inet_close_foreign) {
		/* a connection that was closing where its address changed: it ends */
		r = tcp_closed(fd, s->family);
		if (r < 0)
			return rst_wrap(r, "TCP connection %s -> %s", addr_str(s, true, a, sizeof(a)),
					addr_str(s, false, b, sizeof(b)));
	} else {
		return dm_fail(-ENOTSUP, "TCP socket in state %s cannot be restored",
			       inet_state_name(s->state));
	}
	if (!(tcp && s->state == TCP_ESTABLISHED) && (r = set_opts(fd, s, true)) < 0)
		return r;
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int inet_open_timed(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	uint64_t t = clock_ns();
	int r = open_one(fs, f, ret_fd);
	fs->c->st.inet_ms += ns_to_ms(t, clock_ns());
	return r;
}

static int inet_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	struct rst_inet *in = inet_of(fs);
	const struct dm_checkpoint *ck = fs->c->ck;

	if (!in->listeners_done) {
		in->listeners_done = true;
		for (size_t i = 0; i < ck->files->n_files; i++) {
			const Dm__File *l = ck->files->files[i];
			int lfd;
			if (l == f || l->type != DM__FILE_TYPE__FILE_INET_SK || !l->inet ||
			    l->inet->protocol != IPPROTO_TCP || l->inet->state != TCP_LISTEN)
				continue;
			int r = rst_files_desc(fs, l->id, &lfd);
			if (r < 0)
				return r;
		}
	}
	return inet_open_timed(fs, f, ret_fd);
}

const struct rst_file_type rst_file_inet = { .name = "inet socket", .open = inet_open };

/* The image's TCP connections, for the lock. */
static size_t image_conns(const struct dm_checkpoint *ck, struct netlock_conn **ret)
{
	struct netlock_conn *c = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ck->files->n_files; i++) {
		const Dm__File *f = ck->files->files[i];
		const Dm__InetSk *s = f->inet;
		if (f->type != DM__FILE_TYPE__FILE_INET_SK || !s || s->protocol != IPPROTO_TCP ||
		    s->state != TCP_ESTABLISHED || s->src_addr.len > 16 || s->dst_addr.len > 16)
			continue;
		c = xrealloc(c, (n + 1) * sizeof(*c));
		c[n] = (struct netlock_conn){ .family = s->family, .sport = (uint16_t)s->src_port,
					      .dport = (uint16_t)s->dst_port };
		memcpy(c[n].src, s->src_addr.data, s->src_addr.len);
		memcpy(c[n].dst, s->dst_addr.data, s->dst_addr.len);
		n++;
	}
	*ret = c;
	return n;
}

static bool image_has_inet(const struct dm_checkpoint *ck)
{
	for (size_t i = 0; i < ck->files->n_files; i++)
		if (ck->files->files[i]->type == DM__FILE_TYPE__FILE_INET_SK)
			return true;
	return false;
}

/* Its opening after the commit and its removal, prepared now (we are in its
 * namespace): one sendmsg then, not a libnftables context made and a script
 * parsed in the client's gap.  Without it the script does the same. */
static void prepare_opener(struct rst_inet *in)
{
	if (netlock_opener_new(in->lock, &in->opener) < 0) {
		pr_warn("%s (the lock is opened with nft's script)", dm_last_error());
		dm_error_clear();
	}
}

/* netlock_open()/netlock_unlock() of in's lock: prepared (1), else the
 * script in its namespace (0) */
static int lock_end(struct rst_inet *in, bool remove)
{
	int back = -1, r;

	if (in->opener) {
		r = remove ? netlock_unlock_with(in->opener) : netlock_open_with(in->opener);
		/* opened already (its chains gone: docker_dst_unlock_early()) */
		if (r >= 0 || (!remove && r == -ENOENT)) {
			dm_error_clear();
			return 1;
		}
		pr_warn("%s (trying nft's script)", dm_last_error());
		dm_error_clear();
	}
	r = netns_enter(in->netns, &back);
	if (r >= 0)
		r = remove ? netlock_unlock(in->lock) : netlock_open(in->lock);
	netns_leave(back);
	return r;
}

int rst_inet_lock(struct rst_ctx *c)
{
	_cleanup_free_ struct netlock_conn *conns = NULL;
	size_t n = image_conns(c->ck, &conns);
	struct rst_inet *in;
	int r, back = -1;

	if (!image_has_inet(c->ck))
		return 0;
	in = inet_of(c->files);
	r = tree_netns(c, in);
	if (r < 0)
		return r;
	/* a container's namespace as a whole, the host's connection by connection */
	if (!n && in->netns < 0)
		return 0;
	if (in->netns >= 0)
		snprintf(in->lock, sizeof(in->lock), "%s", NETLOCK_NETNS_NAME);
	else if (c->ck->inv->net_lock && c->ck->inv->net_lock[0] && strlen(c->ck->inv->net_lock) < 64 &&
	    strspn(c->ck->inv->net_lock, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(c->ck->inv->net_lock))
		snprintf(in->lock, sizeof(in->lock), "%s", c->ck->inv->net_lock);
	else
		snprintf(in->lock, sizeof(in->lock), "dmigrate_restore_%d_%lld", (int)getpid(),
			 (long long)time(NULL));
	r = netns_enter(in->netns, &back);
	if (r < 0) {
		in->lock[0] = 0;
		return r;
	}
	if (in->netns >= 0 && c->o->netns_locked) {
		/* the caller's lock of the whole namespace, taken before it had
		 * an interface: kept as it is (installing it again is two nft
		 * transactions in the downtime) */
		in->lock_existed = true;
		prepare_opener(in);
		netns_leave(back);
		c->st.lock_taken = true;
		return 0;
	}
	in->lock_existed = netlock_exists(in->lock);
	r = in->netns >= 0 ? netlock_netns(in->lock) : netlock_conns(in->lock, conns, n);
	if (r >= 0)
		prepare_opener(in);
	netns_leave(back);
	if (r < 0)
		in->lock[0] = 0;
	c->st.lock_taken = r >= 0 && in->netns >= 0;
	return r;
}

int rst_inet_resume(struct rst_ctx *c)
{
	struct rst_inet *in = c->files ? c->files->inet : NULL;
	char a[80], b[80];
	int r;

	if (!in)
		return 0;
	in->resumed = true;
	/*
	 * The lock goes first, before a connection leaves repair mode and
	 * before the tree runs: from here on (on a destination, after the
	 * source's commit) these sockets are the connections, and what they
	 * acknowledge they hold.  Anything sent while still locked would be
	 * dropped and wait for a retransmission timer: the peer's backed-off
	 * one, or this new socket's, which knows no round trip yet (a second
	 * or more).  So the window probe below, the tree's first answer and
	 * the bytes the lock ate all reach the peer at once.
	 */
	if (in->lock[0] && c->o->lock_opened && *c->o->lock_opened) {
		c->st.unlock_prepared = true;	/* opened with its prepared messages before */
	} else if (in->lock[0]) {
		/* its counters stay until rst_inet_settled() has read them */
		r = lock_end(in, false);
		if (r < 0)
			return r;
		c->st.unlock_prepared = r == 1;
	}
	for (size_t i = 0; i < in->n_conns; i++) {
		const struct rst_inet_conn *k = &in->conns[i];
		const Dm__InetSk *s = k->s;
		const Dm__TcpConn *t = s->tcp;
		const Dm__InetOpt *o;
		int reuse = 0;

		/*
		 * TCP_REPAIR_OFF sends a window probe (a segment below the
		 * peer's window): the peer answers it with an ACK at once, which
		 * acknowledges what it got of ours and teaches the bridges on the
		 * way where this end is now.
		 */
		r = repair(k->fd, TCP_REPAIR_OFF);
		/* sent before the freeze but not acknowledged (tcp_established()
		 * kept them back), and never sent: ordinary data now, on the wire
		 * at once; what the peer has already it drops as a duplicate */
		if (r >= 0 && t->send_queue.len)
			r = send_all(k->fd, t->send_queue.data, t->send_queue.len);
		if (r == -EPIPE || r == -ECONNRESET) {
			/*
			 * The peer reset it (it gave up, or its end is gone) between
			 * the checkpoint and now: as it would have for the tree, the
			 * connection is closed.  Not a failure of the restore: the
			 * tree runs and finds it so; what it had sent and the peer
			 * had not acknowledged goes nowhere.
			 */
			pr_warn("TCP connection %s -> %s was reset by its peer before the tree ran: "
				"its %zu bytes not acknowledged are dropped, the tree finds it closed",
				addr_str(s, true, a, sizeof(a)), addr_str(s, false, b, sizeof(b)),
				t->send_queue.len);
			c->st.tcp_reset++;
			r = 0;
		}
		if (r >= 0 && k->bumped) {
			for (int j = 0; j < 2 && r >= 0; j++) {
				int name = j ? SO_RCVBUF : SO_SNDBUF, v;
				o = find_opt(s, SOL_SOCKET, name);
				if (o && o->value.len == sizeof(int)) {
					memcpy(&v, o->value.data, sizeof(v));
					r = set_buf(k->fd, name, v);
				}
			}
		}
		o = find_opt(s, SOL_SOCKET, SO_REUSEADDR);
		if (o && o->value.len == sizeof(int))
			memcpy(&reuse, o->value.data, sizeof(int));
		if (r >= 0 && setsockopt(k->fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) < 0)
			r = neg_errno();
		if (r >= 0)
			r = set_opts(k->fd, s, true);
		if (r < 0)
			return dm_fail(r, "TCP connection %s -> %s: leaving repair mode: %s",
				       addr_str(s, true, a, sizeof(a)), addr_str(s, false, b, sizeof(b)),
				       strerror(-r));
	}
	/* what the source's lock dropped reaches the connections now (the
	 * tree's own namespace only: the host's holds other services too) */
	struct restore_packets *kp = c->o->packets;
	if (kp && kp->len && in->netns >= 0) {
		int back = -1;
		if (netns_enter(in->netns, &back) >= 0 && net_frames_inject(kp->buf, kp->len, &kp->delivered) < 0)
			pr_warn("%s (the peers will retransmit)", dm_last_error());
		netns_leave(back);
		dm_error_clear();
	}
	return 0;
}

void rst_inet_settled(struct rst_ctx *c)
{
	struct rst_inet *in = c->files ? c->files->inet : NULL;
	int back = -1;

	if (!in || !in->lock[0] || !in->resumed)
		return;
	/* the tree runs now: no libnftables context beside it where the
	 * prepared socket does */
	if (in->opener &&
	    netlock_dropped_with(in->opener, &c->st.lock_tcp_dropped_in, &c->st.lock_tcp_dropped_out) >= 0) {
		c->st.lock_counted = true;
	} else {
		dm_error_clear();
		if (netns_enter(in->netns, &back) < 0 ||
		    netlock_dropped(in->lock, &c->st.lock_tcp_dropped_in, &c->st.lock_tcp_dropped_out) < 0)
			pr_warn("%s", dm_last_error());
		else
			c->st.lock_counted = true;
		netns_leave(back);
	}
	if (lock_end(in, true) >= 0) {
		in->lock[0] = 0;
		c->st.lock_removed = true;
	} else {
		pr_warn("%s", dm_last_error());
	}
	if (c->st.lock_counted)
		pr_info("the network lock dropped %" PRIu64 " TCP packets from the peers, %" PRIu64
			" from the tree's sockets", c->st.lock_tcp_dropped_in, c->st.lock_tcp_dropped_out);
}

void rst_inet_fini(struct rst_files *fs)
{
	struct rst_inet *in = fs->inet;

	if (!in)
		return;
	/* after the descriptions are closed: a failed restore's sockets went quietly */
	if (in->lock[0] && (in->resumed || !in->lock_existed) && lock_end(in, true) < 0)
		pr_warn("%s", dm_last_error());
	netlock_opener_free(in->opener);
	if (in->netns >= 0)
		close(in->netns);
	free(in->conns);
	free(in);
	fs->inet = NULL;
}
