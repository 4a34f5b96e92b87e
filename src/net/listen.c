/* SPDX-License-Identifier: MIT */
/*
 * Addresses, connecting, listening, and the sessions that join the several
 * channels of one migration on the server side.
 */
#define LOG_PREFIX "net: "
#include "net/net-priv.h"
#include "base/clock.h"
#include "base/log.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <openssl/rand.h>

/* ---- addresses ----------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *ret)
{
	unsigned long v;

	if (parse_ulong(s, &v) < 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int net_parse_addr(const char *s, uint16_t default_port, char **ret_host, uint16_t *ret_port)
{
	const char *host = s, *colon, *rest = NULL;
	size_t hostlen;
	uint16_t port = default_port;

	if (!s || !*s)
		return dm_fail(-EINVAL, "empty address");
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end == s + 1)
			return dm_fail(-EINVAL, "bad address '%s': expected [IPv6]:port", s);
		host = s + 1;
		hostlen = (size_t)(end - host);
		if (end[1] == ':')
			rest = end + 2;
		else if (end[1])
			return dm_fail(-EINVAL, "bad address '%s': junk after ']'", s);
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			hostlen = strlen(s); /* bare IPv6, no port */
		} else if (colon) {
			hostlen = (size_t)(colon - s);
			rest = colon + 1;
		} else {
			hostlen = strlen(s);
		}
		if (hostlen == 0)
			return dm_fail(-EINVAL, "bad address '%s': no host", s);
	}
	if (rest && parse_port(rest, &port) < 0)
		return dm_fail(-EINVAL, "bad address '%s': bad port '%s'", s, rest);
	*ret_host = strndup(host, hostlen);
	if (!*ret_host)
		return -ENOMEM;
	*ret_port = port;
	return 0;
}

static int resolve(const char *addr, bool passive, struct addrinfo **ret)
{
	_cleanup_free_ char *host = NULL;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
	};
	char port_s[8];
	uint16_t port = 0;
	int r;

	r = net_parse_addr(addr, NET_DEFAULT_PORT, &host, &port);
	if (r < 0)
		return r;
	snprintf(port_s, sizeof(port_s), "%u", port);
	r = getaddrinfo(host, port_s, &hints, ret);
	if (r == EAI_SYSTEM)
		return dm_fail(neg_errno(), "cannot resolve '%s': %m", host);
	if (r)
		return dm_fail(-EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(r));
	return 0;
}

static void set_sockopts(int fd)
{
	int one = 1;
	/* All roles: every frame is written in one go (one SSL_write or one
	 * sendmsg), so Nagle would only delay the last segment of a frame, and
	 * for control and fault replies that delay is the latency we measure. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- client ------------------------------------------------------------------ */

static int connect_one(struct net_ctx *ctx, const struct addrinfo *ai, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	uint64_t start = clock_ns();
	int err = 0;
	socklen_t len = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return neg_errno();
	set_sockopts(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return neg_errno();
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int timeout = -1, n;
			if (ctx->connect_timeout_ms >= 0) {
				uint64_t spent = (clock_ns() - start) / 1000000;
				if (spent >= (uint64_t)ctx->connect_timeout_ms)
					return -ETIMEDOUT;
				timeout = ctx->connect_timeout_ms - (int)spent;
			}
			n = poll(&p, 1, timeout);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return neg_errno();
			if (n > 0)
				break;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return neg_errno();
		if (err)
			return -err;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int net_connect(struct net_ctx *ctx, const char *addr, enum net_role role,
		const uint8_t *session, struct net_chan **ret_chan)
{
	struct addrinfo *ais = NULL;
	struct net_chan *c = NULL;
	uint8_t sess[NET_SESSION_LEN];
	int fd = -1, r;

	if ((unsigned)role >= _NET_ROLE_MAX)
		return dm_fail(-EINVAL, "bad channel role %d", role);
	if (role != NET_ROLE_CONTROL && !session)
		return dm_fail(-EINVAL, "a %s channel needs the session of a control channel",
			       net_role_name(role));
	if (session)
		memcpy(sess, session, sizeof(sess));
	else if (RAND_bytes(sess, sizeof(sess)) != 1)
		return dm_fail(-EIO, "cannot make a session id: the random generator failed");

	r = resolve(addr, false, &ais);
	if (r < 0)
		return r;
	r = -EHOSTUNREACH;
	for (struct addrinfo *ai = ais; ai; ai = ai->ai_next) {
		r = connect_one(ctx, ai, &fd);
		if (r == 0)
			break;
	}
	freeaddrinfo(ais);
	if (r < 0)
		return dm_fail(r, "cannot connect to %s: %s", addr,
			       r == -ETIMEDOUT ? "timed out" : strerror(-r));

	r = net_chan_new(ctx, fd, false, &c);
	if (r < 0) {
		close(fd);
		return r;
	}
	net_chan_set_peer(c);
	net_chan_start_deadline(c);
	if (c->ssl)
		r = net_chan_tls_handshake(c);
	if (r == 0)
		r = net_chan_hello_client(c, role, sess);
	if (r < 0) {
		net_chan_close(c);
		return r;
	}
	c->deadline_ns = 0;
	*ret_chan = c;
	return 0;
}

/* ---- sessions -------------------------------------------------------------- */

struct session {
	uint8_t id[NET_SESSION_LEN];
	unsigned nchan;
};

struct net_sessions {
	atomic_int refs;
	pthread_mutex_t lock;
	struct session *v;
	size_t n, cap;
};

static struct net_sessions *sessions_new(void)
{
	struct net_sessions *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

struct net_sessions *net_sessions_ref(struct net_sessions *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void net_sessions_unref(struct net_sessions *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->v);
	free(s);
}

static struct session *sessions_find(struct net_sessions *s, const uint8_t *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!memcmp(s->v[i].id, id, NET_SESSION_LEN))
			return &s->v[i];
	return NULL;
}

int net_sessions_join(struct net_sessions *s, enum net_role role, const uint8_t *session,
		      char *err, size_t errlen)
{
	char hex[NET_SESSION_HEX_LEN];
	struct session *e;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	e = sessions_find(s, session);
	if (role == NET_ROLE_CONTROL) {
		/* A control channel starts a migration: its id must be new,
		 * or two migrations would share their channels. */
		if (e) {
			snprintf(err, errlen, "session %s is already in use",
				 net_session_hex(session, hex));
			r = -EEXIST;
		} else {
			if (s->n == s->cap) {
				s->cap = s->cap ? 2 * s->cap : 8;
				s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
			}
			e = &s->v[s->n++];
			memcpy(e->id, session, NET_SESSION_LEN);
			e->nchan = 1;
		}
	} else if (!e) {
		snprintf(err, errlen, "unknown session %s (no open control channel)",
			 net_session_hex(session, hex));
		r = -ENOENT;
	} else {
		e->nchan++;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void net_sessions_leave(struct net_sessions *s, const uint8_t *session)
{
	struct session *e;

	pthread_mutex_lock(&s->lock);
	e = sessions_find(s, session);
	if (e && --e->nchan == 0)
		*e = s->v[--s->n];
	pthread_mutex_unlock(&s->lock);
}

/* ---- server ---------------------------------------------------------------- */

/* A handshake in progress on its own thread (net_accept_next). */
struct hs {
	struct hs *next;
	struct net_listener *l;
	int fd;          /* the connection: the thread owns it */
	int shut_fd;     /* a dup of it, to end the handshake from net_listener_free() */
	char addr[INET6_ADDRSTRLEN]; /* the peer's address, without the port */
};

struct net_listener {
	int fd;
	uint16_t port;
	struct net_ctx *ctx;
	struct net_sessions *sessions;

	/* net_accept_next() */
	pthread_mutex_t hs_lock;
	pthread_cond_t hs_cond;    /* a handshake thread ended */
	struct hs *hs;             /* in progress */
	unsigned hs_running;
	bool closing;
	struct net_chan **ready;   /* handshakes done, oldest first */
	size_t n_ready, cap_ready;
	int wake_fd;               /* eventfd: a handshake ended */
	uint64_t refused_log_ns;   /* refusals are logged at most once a second */
	unsigned refused_quiet;
};

int net_listen(struct net_ctx *ctx, const char *addr, struct net_listener **ret_listener)
{
	struct addrinfo *ais = NULL;
	struct sockaddr_storage ss = { 0 };
	socklen_t sslen = sizeof(ss);
	struct net_listener *l;
	_cleanup_close_ int fd = -1;
	int r, one = 1;

	if (!addr)
		addr = "127.0.0.1";
	r = resolve(addr, true, &ais);
	if (r < 0)
		return r;
	r = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = ais; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			r = neg_errno();
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			r = 0;
			break;
		}
		r = neg_errno();
		closep(&fd);
		fd = -1;
	}
	freeaddrinfo(ais);
	if (r < 0)
		return dm_fail(r, "cannot listen on %s: %s", addr, strerror(-r));
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
		return dm_fail(neg_errno(), "getsockname: %m");

	l = xcalloc(1, sizeof(*l));
	l->fd = TAKE_FD(fd);
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
						   ((struct sockaddr_in *)&ss)->sin_port);
	l->ctx = net_ctx_ref(ctx);
	l->sessions = sessions_new();
	pthread_mutex_init(&l->hs_lock, NULL);
	pthread_cond_init(&l->hs_cond, NULL);
	l->wake_fd = -1;
	if (ctx->insecure)
		pr_warn("INSECURE listener on %s (port %u): no authentication, no encryption: anyone "
			"who can reach this port can make this host run code or read the memory it "
			"receives. Benchmarks on a private link only.", addr, l->port);
	*ret_listener = l;
	return 0;
}

void net_listener_free(struct net_listener *l)
{
	if (!l)
		return;
	close(l->fd);
	/* end the handshakes in progress (they fail at once) and wait for their threads */
	pthread_mutex_lock(&l->hs_lock);
	l->closing = true;
	for (struct hs *h = l->hs; h; h = h->next)
		shutdown(h->shut_fd, SHUT_RDWR);
	while (l->hs_running)
		pthread_cond_wait(&l->hs_cond, &l->hs_lock);
	pthread_mutex_unlock(&l->hs_lock);
	for (size_t i = 0; i < l->n_ready; i++)
		net_chan_close(l->ready[i]);
	free(l->ready);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->hs_lock);
	pthread_cond_destroy(&l->hs_cond);
	net_sessions_unref(l->sessions); /* open channels keep their own reference */
	net_ctx_unref(l->ctx);
	free(l);
}

int net_listener_fd(const struct net_listener *l) { return l->fd; }
uint16_t net_listener_port(const struct net_listener *l) { return l->port; }

int net_listener_accept_fd(struct net_listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return dm_fail(neg_errno(), "accept: %m");
	}
}

int net_listener_handshake(struct net_listener *l, int fd, struct net_chan **ret_chan)
{
	struct net_chan *c;
	int r;

	set_sockopts(fd);
	r = net_chan_new(l->ctx, fd, true, &c);
	if (r < 0) {
		close(fd);
		return r;
	}
	net_chan_set_peer(c);
	net_chan_start_deadline(c);
	if (c->ssl)
		r = net_chan_tls_handshake(c);
	if (r == 0)
		r = net_chan_hello_server(c, l->sessions);
	if (r < 0) {
		net_chan_close(c);
		return r;
	}
	c->deadline_ns = 0;
	*ret_chan = c;
	return 0;
}

int net_accept(struct net_listener *l, int timeout_ms, struct net_chan **ret_chan)
{
	uint64_t start = clock_ns();

	for (;;) {
		struct pollfd p = { .fd = l->fd, .events = POLLIN };
		int timeout = -1, n, fd;

		if (timeout_ms >= 0) {
			uint64_t spent = (clock_ns() - start) / 1000000;
			timeout = spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
		}
		n = poll(&p, 1, timeout);
		if (n < 0 && errno != EINTR)
			return dm_fail(neg_errno(), "poll on the listener: %m");
		if (n > 0) {
			fd = net_listener_accept_fd(l);
			if (fd >= 0)
				return net_listener_handshake(l, fd, ret_chan);
			if (fd != -EAGAIN) /* another thread took it: wait again */
				return fd;
		}
		if (n == 0 && timeout == 0)
			return dm_fail(-ETIMEDOUT, "no connection within %d ms", timeout_ms);
		if (n == 0 && timeout_ms >= 0 &&
		    (clock_ns() - start) / 1000000 >= (uint64_t)timeout_ms)
			return dm_fail(-ETIMEDOUT, "no connection within %d ms", timeout_ms);
	}
}

/* ---- handshakes off the accept loop ------------------------------------------- */

static void *hs_thread(void *arg)
{
	struct hs *h = arg;
	struct net_listener *l = h->l;
	struct net_chan *c = NULL;
	uint64_t one = 1;
	int r;

	r = net_listener_handshake(l, h->fd, &c);
	if (r < 0)
		pr_warn("refused a connection: %s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
	pthread_mutex_lock(&l->hs_lock);
	for (struct hs **pp = &l->hs; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	close(h->shut_fd);
	if (c && l->closing) {
		net_chan_close(c);
		c = NULL;
	}
	if (c) {
		if (l->n_ready == l->cap_ready) {
			l->cap_ready = l->cap_ready ? 2 * l->cap_ready : 8;
			l->ready = xrealloc(l->ready, l->cap_ready * sizeof(*l->ready));
		}
		l->ready[l->n_ready++] = c;
	}
	if (l->wake_fd >= 0)
		(void)!write(l->wake_fd, &one, sizeof(one));
	l->hs_running--;
	pthread_cond_broadcast(&l->hs_cond);
	pthread_mutex_unlock(&l->hs_lock);
	free(h);
	return NULL;
}

static void peer_addr(const struct sockaddr_storage *ss, char buf[INET6_ADDRSTRLEN])
{
	const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
						    (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	if (!inet_ntop(ss->ss_family, a, buf, INET6_ADDRSTRLEN))
		snprintf(buf, INET6_ADDRSTRLEN, "?");
}

/* Under hs_lock: NULL if the connection may start its handshake, else why not. */
static const char *hs_refusal(struct net_listener *l, const char *addr, char *why, size_t len)
{
	unsigned same = 0;

	if (l->closing)
		return "the listener is closing";
	if (l->hs_running >= l->ctx->handshakes_max) {
		snprintf(why, len, "%u handshakes are in progress (the limit)", l->hs_running);
		return why;
	}
	for (struct hs *h = l->hs; h; h = h->next)
		same += !strcmp(h->addr, addr);
	if (same >= l->ctx->handshakes_per_addr) {
		snprintf(why, len, "%u handshakes from %s are in progress (the limit per address)", same, addr);
		return why;
	}
	return NULL;
}

/* Start the handshake of a new connection on a thread, or close it at once. */
static void hs_admit(struct net_listener *l, int fd, const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN], why[160];
	const char *no;
	pthread_attr_t attr;
	pthread_t t;
	struct hs *h;

	peer_addr(ss, addr);
	pthread_mutex_lock(&l->hs_lock);
	no = hs_refusal(l, addr, why, sizeof(why));
	if (!no) {
		h = xcalloc(1, sizeof(*h));
		h->l = l;
		h->fd = fd;
		h->shut_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		snprintf(h->addr, sizeof(h->addr), "%s", addr);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (h->shut_fd < 0 || pthread_create(&t, &attr, hs_thread, h) != 0) {
			if (h->shut_fd >= 0)
				close(h->shut_fd);
			free(h);
			no = "cannot start a handshake thread";
		} else {
			h->next = l->hs;
			l->hs = h;
			l->hs_running++;
		}
		pthread_attr_destroy(&attr);
	}
	if (no) {
		uint64_t now = clock_ns();
		close(fd);
		if (now - l->refused_log_ns >= 1000000000ULL) {
			if (l->refused_quiet)
				pr_warn("refused a connection from %s: %s (and %u more refusals in the last second)",
					addr, no, l->refused_quiet);
			else
				pr_warn("refused a connection from %s: %s", addr, no);
			l->refused_log_ns = now;
			l->refused_quiet = 0;
		} else {
			l->refused_quiet++;
		}
	}
	pthread_mutex_unlock(&l->hs_lock);
}

int net_accept_next(struct net_listener *l, int timeout_ms, struct net_chan **ret_chan)
{
	uint64_t start = clock_ns();

	if (l->wake_fd < 0) {
		l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (l->wake_fd < 0)
			return dm_fail(neg_errno(), "eventfd: %m");
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN }, { .fd = l->wake_fd, .events = POLLIN } };
		int timeout = -1, n;

		pthread_mutex_lock(&l->hs_lock);
		if (l->n_ready) {
			*ret_chan = l->ready[0];
			memmove(l->ready, l->ready + 1, --l->n_ready * sizeof(*l->ready));
			pthread_mutex_unlock(&l->hs_lock);
			return 0;
		}
		pthread_mutex_unlock(&l->hs_lock);
		if (timeout_ms >= 0) {
			uint64_t spent = (clock_ns() - start) / 1000000;
			if (spent >= (uint64_t)timeout_ms)
				return dm_fail(-ETIMEDOUT, "no connection within %d ms", timeout_ms);
			timeout = timeout_ms - (int)spent;
		}
		n = poll(p, 2, timeout);
		if (n < 0 && errno != EINTR)
			return dm_fail(neg_errno(), "poll on the listener: %m");
		if (n <= 0)
			continue;
		if (p[1].revents) {
			uint64_t v;
			(void)!read(l->wake_fd, &v, sizeof(v));
		}
		while (p[0].revents) {
			struct sockaddr_storage ss = { 0 };
			socklen_t sslen = sizeof(ss);
			int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					pr_warn("accept: %m");
				break;
			}
			set_sockopts(fd);
			hs_admit(l, fd, &ss);
		}
	}
}
