/* SPDX-License-Identifier: MIT */
/*
 * Channels: non-blocking I/O with timeouts (plain or TLS), framing, and the
 * Hello exchange.  The locking rules are in net.h.
 */
#define LOG_PREFIX "net: "
#include "net/net-priv.h"
#include "base/clock.h"
#include "base/log.h"
#include "rpc.pb-c.h"

#include <endian.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#define RBUF_SIZE (64u * 1024)
/* A TLS frame up to this size is sent as one SSL_write (one record, one
 * send()): a fault reply (header + pages header + one page) fits. */
#define COALESCE_MAX (16u * 1024)

static const char *const role_names[_NET_ROLE_MAX] = {
	[NET_ROLE_CONTROL] = "control",
	[NET_ROLE_FAULT] = "fault",
	[NET_ROLE_BULK] = "bulk",
	[NET_ROLE_ROOTFS] = "rootfs",
	[NET_ROLE_ROOTFS_MISS] = "rootfs-miss",
	[NET_ROLE_VOLUME] = "volume",
	[NET_ROLE_VOLUME_MISS] = "volume-miss",
};

const char *net_role_name(enum net_role role)
{
	return (unsigned)role < _NET_ROLE_MAX ? role_names[role] : "unknown";
}

int net_role_from_name(const char *name)
{
	for (int i = 0; name && i < _NET_ROLE_MAX; i++)
		if (!strcmp(name, role_names[i]))
			return i;
	return -EINVAL;
}

char *net_session_hex(const uint8_t *session, char buf[static NET_SESSION_HEX_LEN])
{
	for (size_t i = 0; i < NET_SESSION_LEN; i++)
		snprintf(buf + 2 * i, 3, "%02x", session[i]);
	return buf;
}

/* ---- channel object ---------------------------------------------------- */

int net_chan_new(struct net_ctx *ctx, int fd, bool server, struct net_chan **ret_chan)
{
	struct net_chan *c = xcalloc(1, sizeof(*c));
	int r;

	c->fd = fd;
	c->ctx = net_ctx_ref(ctx);
	c->server = server;
	atomic_init(&c->io_timeout_ms, ctx->io_timeout_ms);
	atomic_init(&c->shut, false);
	atomic_init(&c->err, 0);
	atomic_init(&c->tx_err, 0);
	atomic_init(&c->tls_eof, false);
	pthread_mutex_init(&c->ssl_lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	snprintf(c->peer, sizeof(c->peer), "fd %d", fd);
	if (!ctx->insecure) {
		r = net_tls_new_ssl(c);
		if (r < 0) {
			c->fd = -1; /* the caller still owns fd */
			net_chan_close(c);
			return r;
		}
	}
	*ret_chan = c;
	return 0;
}

void net_chan_set_peer(struct net_chan *c)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, port);
	}
}

void net_chan_start_deadline(struct net_chan *c)
{
	int ms = c->ctx->handshake_timeout_ms;
	c->deadline_ns = ms < 0 ? 0 : clock_ns() + (uint64_t)ms * 1000000ULL;
}

void net_chan_close(struct net_chan *c)
{
	if (!c)
		return;
	if (c->ssl) {
		/* close_notify tells the peer that the end is not a truncation;
		 * sent once, not waited for, and only on a healthy channel
		 * (OpenSSL forbids SSL_shutdown after a fatal error). */
		if (c->fd >= 0 && atomic_load(&c->err) == 0 && atomic_load(&c->tx_err) == 0 && !atomic_load(&c->shut) &&
		    !atomic_load(&c->tls_eof) && SSL_is_init_finished(c->ssl)) {
			pthread_mutex_lock(&c->ssl_lock);
			SSL_shutdown(c->ssl);
			pthread_mutex_unlock(&c->ssl_lock);
		}
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->sessions) {
		net_sessions_leave(c->sessions, c->session);
		net_sessions_unref(c->sessions);
	}
	for (char **f = c->peer_features; f && *f; f++)
		free(*f);
	free(c->peer_features);
	free(c->rbuf);
	free(c->cork);
	pthread_mutex_destroy(&c->ssl_lock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->recv_lock);
	net_ctx_unref(c->ctx);
	free(c);
}

void net_chan_shutdown(struct net_chan *c)
{
	if (!c)
		return;
	atomic_store(&c->shut, true);
	/* Wakes pollers: the socket becomes readable (EOF) and writable (EPIPE). */
	shutdown(c->fd, SHUT_RDWR);
}

enum net_role net_chan_role(const struct net_chan *c) { return c->role; }
const uint8_t *net_chan_session(const struct net_chan *c) { return c->session; }
const char *net_chan_peer(const struct net_chan *c) { return c->peer; }
uint32_t net_chan_version(const struct net_chan *c) { return c->version; }
bool net_chan_is_secure(const struct net_chan *c) { return c->ssl != NULL; }
int net_chan_fd(const struct net_chan *c) { return c->fd; }
void net_chan_set_timeout(struct net_chan *c, int io_timeout_ms)
{
	atomic_store(&c->io_timeout_ms, io_timeout_ms);
}

int net_chan_poll_in(struct net_chan *c, int timeout_ms)
{
	return net_chan_poll_in_us(c, timeout_ms < 0 ? -1 : timeout_ms * 1000L);
}

int net_chan_poll_in_us(struct net_chan *c, long timeout_us)
{
	struct pollfd p = { .fd = net_chan_fd(c), .events = POLLIN };
	struct timespec ts = { timeout_us / 1000000, (timeout_us % 1000000) * 1000 };
	return net_chan_has_pending(c) ? 1 : ppoll(&p, 1, timeout_us < 0 ? NULL : &ts, NULL);
}

void net_chan_quickack(const struct net_chan *c)
{
	int one = 1;
	setsockopt(net_chan_fd(c), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

int net_chan_unacked(const struct net_chan *c)
{
	int n = 0;
	if (ioctl(net_chan_fd(c), SIOCOUTQ, &n) < 0)
		return neg_errno();
	return n;
}

bool net_chan_has_pending(struct net_chan *c)
{
	bool pending;

	if (!c->ssl)
		return c->rbuf_pos < c->rbuf_len;
	pthread_mutex_lock(&c->ssl_lock);
	pending = SSL_has_pending(c->ssl);
	pthread_mutex_unlock(&c->ssl_lock);
	return pending;
}

bool net_chan_peer_has_feature(const struct net_chan *c, const char *feature)
{
	for (char **f = c->peer_features; f && *f; f++)
		if (!strcmp(*f, feature))
			return true;
	return false;
}

void net_chan_get_stats(const struct net_chan *c, struct net_chan_stats *ret)
{
	/* The counters are only ever added to: relaxed loads are enough. */
	struct net_chan *m = (struct net_chan *)c;
	ret->bytes_sent = atomic_load_explicit(&m->bytes_sent, memory_order_relaxed);
	ret->bytes_recv = atomic_load_explicit(&m->bytes_recv, memory_order_relaxed);
	ret->frames_sent = atomic_load_explicit(&m->frames_sent, memory_order_relaxed);
	ret->frames_recv = atomic_load_explicit(&m->frames_recv, memory_order_relaxed);
	ret->wire_sent = atomic_load_explicit(&m->wire_sent, memory_order_relaxed);
	ret->wire_recv = atomic_load_explicit(&m->wire_recv, memory_order_relaxed);
}

/* ---- waiting ----------------------------------------------------------- */

static int ms_until(uint64_t now, uint64_t limit)
{
	uint64_t ms = (limit - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int chan_dead(struct net_chan *c)
{
	int e = atomic_load(&c->err);

	if (atomic_load(&c->shut))
		return dm_fail(-ECANCELED, "channel to %s was shut down", c->peer);
	if (e)
		return dm_fail(e, "channel to %s failed earlier (%s)", c->peer, strerror(-e));
	return 0;
}

/* Record a fatal transport error (first one wins) and return it. */
static int chan_fatal(struct net_chan *c, int err)
{
	int zero = 0;

	if (atomic_load(&c->shut))
		err = dm_fail(-ECANCELED, "channel to %s was shut down", c->peer);
	atomic_compare_exchange_strong(&c->err, &zero, err);
	return err;
}

/*
 * A send found the connection closed or reset by the peer (EPIPE,
 * ECONNRESET): nothing more can be sent (first error wins, sticky), but
 * what the peer sent before it closed is still in the socket and is
 * received as usual, then its end.  A peer that refuses says why and
 * closes: its reason must not be lost to our send's error (the rootfs
 * receiver's DONE with its error, then its channels shut down while our
 * data still comes: its kernel resets the connection).
 */
static int chan_tx_closed(struct net_chan *c, int err)
{
	int zero = 0;

	if (atomic_load(&c->shut))
		return chan_fatal(c, -ECANCELED);
	atomic_compare_exchange_strong(&c->tx_err, &zero, err);
	return err;
}

static int chan_tx_dead(struct net_chan *c)
{
	int e = atomic_load(&c->tx_err);

	if (e)
		return dm_fail(e, "%s closed the channel earlier (%s)", c->peer, strerror(-e));
	return 0;
}

/*
 * Wait until fd is ready for events, or fail once the handshake deadline or
 * the inactivity timeout (counted from since) has passed.  cap_ms bounds
 * the wait for the cases where another thread may consume the readiness we
 * wait for.  Returns 0 to retry the operation: after a spurious wake-up the
 * operation simply finds nothing and comes back.
 */
static int chan_wait(struct net_chan *c, short events, uint64_t since, int cap_ms)
{
	uint64_t now = clock_ns();
	struct pollfd p = { .fd = c->fd, .events = events };
	int timeout = -1, idle_ms = atomic_load(&c->io_timeout_ms);

	if (atomic_load(&c->shut))
		return chan_fatal(c, -ECANCELED);
	if (c->deadline_ns) {
		if (now >= c->deadline_ns)
			return dm_fail(-ETIMEDOUT, "handshake with %s timed out after %d ms",
				       c->peer, c->ctx->handshake_timeout_ms);
		timeout = ms_until(now, c->deadline_ns);
	} else if (idle_ms >= 0) {
		uint64_t limit = since + (uint64_t)idle_ms * 1000000ULL;
		if (now >= limit)
			return chan_fatal(c, dm_fail(-ETIMEDOUT, "%s: no data moved for %d ms",
						     c->peer, idle_ms));
		timeout = ms_until(now, limit);
	}
	if (cap_ms >= 0 && (timeout < 0 || timeout > cap_ms))
		timeout = cap_ms;
	if (poll(&p, 1, timeout) < 0 && errno != EINTR)
		return chan_fatal(c, neg_errno());
	return 0;
}

/* ---- raw byte I/O ------------------------------------------------------- */

/* The error of a failed TLS call, as -errno with a message. */
static int tls_error(struct net_chan *c, const char *op, bool handshake, int ssl_err,
		     int sys_errno, unsigned long e)
{
	char why[256];
	int reason = e ? ERR_GET_REASON(e) : 0;

	if (ssl_err == SSL_ERROR_SYSCALL && !e) {
		if (sys_errno)
			return dm_fail(-sys_errno, "TLS %s with %s: %s", op, c->peer,
				       strerror(sys_errno));
		return 0; /* EOF */
	}
	if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return 0; /* EOF without close_notify: the caller judges */
	net_tls_reason(e, why, sizeof(why));
	if (handshake) {
		/* Wrong key: the server cannot verify the binder of the
		 * client's PSK ("binder does not verify") and OpenSSL 3.0
		 * answers with an illegal_parameter alert, which is all the
		 * client learns.  Between two dmigrate peers with the same TLS
		 * setup nothing else in the handshake raises it. */
		if (reason == SSL_R_BINDER_DOES_NOT_VERIFY || reason == SSL_R_BAD_PSK ||
		    reason == SSL_R_BAD_PSK_IDENTITY)
			return dm_fail(-EKEYREJECTED,
				       "TLS handshake with %s failed: %s: the peer does not hold "
				       "the same key",
				       c->peer, why);
		if (reason == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER ||
		    reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR ||
		    reason == SSL_R_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY)
			return dm_fail(-EKEYREJECTED,
				       "TLS handshake with %s failed: %s: the peer rejected our "
				       "key (it holds another one)",
				       c->peer, why);
		if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG)
			return dm_fail(-EPROTO,
				       "TLS handshake with %s failed: %s (is the peer in insecure "
				       "mode, or not dmigrate?)",
				       c->peer, why);
		return dm_fail(-EPROTO, "TLS handshake with %s failed: %s", c->peer, why);
	}
	return dm_fail(-EPROTO, "TLS %s with %s failed: %s", op, c->peer, why);
}

/*
 * One TLS call under ssl_lock, retried until it moves data.  Returns bytes
 * moved (> 0), 0 on EOF (read only), or -errno.
 */
static ssize_t tls_io(struct net_chan *c, bool write, void *buf, size_t len, uint64_t *since)
{
	int want = len > INT_MAX ? INT_MAX : (int)len;

	for (;;) {
		int n, err = 0, sys_errno = 0, r;
		unsigned long e = 0;

		pthread_mutex_lock(&c->ssl_lock);
		ERR_clear_error();
		errno = 0;
		n = write ? SSL_write(c->ssl, buf, want) : SSL_read(c->ssl, buf, want);
		if (n <= 0) {
			sys_errno = errno;
			err = SSL_get_error(c->ssl, n);
			e = ERR_peek_last_error();
		}
		pthread_mutex_unlock(&c->ssl_lock);

		if (n > 0) {
			*since = clock_ns();
			return n;
		}
		switch (err) {
		case SSL_ERROR_WANT_READ:
			/* A writer that needs to read races with the reader
			 * thread for the same bytes: wait in small slices. */
			r = chan_wait(c, POLLIN, *since, write ? 10 : -1);
			break;
		case SSL_ERROR_WANT_WRITE:
			r = chan_wait(c, POLLOUT, *since, write ? -1 : 10);
			break;
		case SSL_ERROR_ZERO_RETURN:
			return 0; /* close_notify */
		default:
			ERR_clear_error();
			r = tls_error(c, write ? "write" : "read", false, err, sys_errno, e);
			if (r == 0) {
				atomic_store(&c->tls_eof, true);
				if (!write)
					return 0;
				r = dm_fail(-EPIPE, "%s closed the connection", c->peer);
			}
			if (write && (r == -EPIPE || r == -ECONNRESET))
				return chan_tx_closed(c, r);
			return chan_fatal(c, r);
		}
		if (r < 0)
			return r;
	}
}

static ssize_t raw_recv(struct net_chan *c, void *buf, size_t len, uint64_t *since)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		int r;

		if (n >= 0) {
			if (n > 0) {
				*since = clock_ns();
				atomic_fetch_add_explicit(&c->wire_recv, (uint64_t)n,
							  memory_order_relaxed);
			}
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			r = neg_errno();
			return chan_fatal(c, dm_fail(r, "receive from %s: %s", c->peer, strerror(-r)));
		}
		r = chan_wait(c, POLLIN, *since, -1);
		if (r < 0)
			return r;
	}
}

/* Some bytes (> 0), 0 on EOF, or -errno. */
static ssize_t chan_read_some(struct net_chan *c, void *buf, size_t len, uint64_t *since)
{
	ssize_t n;

	if (c->ssl)
		return tls_io(c, false, buf, len, since);
	/* Plain TCP: without a buffer every small frame would cost two
	 * recv() calls (header, payload); big payloads go straight through. */
	if (c->rbuf_pos == c->rbuf_len) {
		if (len >= RBUF_SIZE / 2)
			return raw_recv(c, buf, len, since);
		if (!c->rbuf)
			c->rbuf = xmalloc(RBUF_SIZE);
		n = raw_recv(c, c->rbuf, RBUF_SIZE, since);
		if (n <= 0)
			return n;
		c->rbuf_pos = 0;
		c->rbuf_len = (size_t)n;
	}
	n = (ssize_t)MIN(len, c->rbuf_len - c->rbuf_pos);
	memcpy(buf, c->rbuf + c->rbuf_pos, (size_t)n);
	c->rbuf_pos += (size_t)n;
	return n;
}

/* Exactly len bytes; -EPIPE on EOF with *ret_done telling how far it got. */
static int chan_read_exact(struct net_chan *c, void *buf, size_t len, size_t *ret_done)
{
	uint64_t since = clock_ns();
	size_t done = 0;
	int r = 0;

	while (done < len) {
		ssize_t n = chan_read_some(c, (char *)buf + done, len - done, &since);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0) {
			r = atomic_load(&c->shut) ? chan_fatal(c, -ECANCELED) : -EPIPE;
			break;
		}
		done += (size_t)n;
	}
	atomic_fetch_add_explicit(&c->bytes_recv, done, memory_order_relaxed);
	if (ret_done)
		*ret_done = done;
	return r;
}

/* Write the whole iov (modified in place) or fail. */
static int chan_write_iov(struct net_chan *c, struct iovec *iov, int iovcnt)
{
	uint64_t since = clock_ns();
	int r;

	while (iovcnt > 0) {
		ssize_t n;

		if (iov->iov_len == 0) {
			iov++;
			iovcnt--;
			continue;
		}
		if (c->ssl) {
			n = tls_io(c, true, iov->iov_base, iov->iov_len, &since);
			if (n < 0)
				return (int)n;
		} else {
			struct msghdr mh = { .msg_iov = iov,
					     .msg_iovlen = iovcnt < IOV_MAX ? (size_t)iovcnt : IOV_MAX };
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					r = chan_wait(c, POLLOUT, since, -1);
					if (r < 0)
						return r;
					continue;
				}
				r = neg_errno();
				if (atomic_load(&c->shut))
					return chan_fatal(c, -ECANCELED);
				if (r == -EPIPE || r == -ECONNRESET)
					return chan_tx_closed(c, dm_fail(r, "%s closed the connection", c->peer));
				return chan_fatal(c, dm_fail(r, "send to %s: %s", c->peer, strerror(-r)));
			}
			since = clock_ns();
			atomic_fetch_add_explicit(&c->wire_sent, (uint64_t)n, memory_order_relaxed);
		}
		atomic_fetch_add_explicit(&c->bytes_sent, (uint64_t)n, memory_order_relaxed);
		while (n > 0) {
			size_t k = MIN((size_t)n, iov->iov_len);
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= k;
			n -= (ssize_t)k;
			if (iov->iov_len == 0) {
				iov++;
				iovcnt--;
			}
		}
	}
	return 0;
}

/* ---- TLS handshake ------------------------------------------------------- */

/* A plain-TCP dmigrate client starts with our frame magic: say so clearly
 * instead of letting OpenSSL call it "wrong version number". */
static int check_insecure_client(struct net_chan *c)
{
	uint64_t since = clock_ns();
	uint8_t b[4];

	for (;;) {
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_PEEK);
		if (n >= 0) {
			uint32_t magic;
			memcpy(&magic, b, sizeof(magic));
			if (n == (ssize_t)sizeof(b) && le32toh(magic) == NET_MAGIC)
				return dm_fail(-EPROTO,
					       "%s speaks dmigrate without TLS (insecure mode), this "
					       "side requires TLS",
					       c->peer);
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return 0; /* SSL_accept will report it */
		int r = chan_wait(c, POLLIN, since, -1);
		if (r < 0)
			return r;
	}
}

int net_chan_tls_handshake(struct net_chan *c)
{
	uint64_t since = clock_ns();
	int r;

	if (c->server) {
		r = check_insecure_client(c);
		if (r < 0)
			return r;
	}
	for (;;) {
		int n, err = 0, sys_errno = 0;
		unsigned long e = 0;

		pthread_mutex_lock(&c->ssl_lock);
		ERR_clear_error();
		errno = 0;
		n = c->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
		if (n <= 0) {
			sys_errno = errno;
			err = SSL_get_error(c->ssl, n);
			e = ERR_peek_last_error();
		}
		pthread_mutex_unlock(&c->ssl_lock);
		if (n == 1)
			break;
		if (err == SSL_ERROR_WANT_READ)
			r = chan_wait(c, POLLIN, since, -1);
		else if (err == SSL_ERROR_WANT_WRITE)
			r = chan_wait(c, POLLOUT, since, -1);
		else {
			ERR_clear_error();
			r = tls_error(c, "handshake", true, err, sys_errno, e);
			if (r == 0)
				r = dm_fail(-ECONNRESET,
					    "%s closed the connection during the TLS handshake (does "
					    "it hold the same key? is it in insecure mode?)",
					    c->peer);
		}
		if (r < 0)
			return chan_fatal(c, r);
	}
	/* Without a PSK there is no authentication at all. */
	if (!SSL_session_reused(c->ssl))
		return chan_fatal(c, dm_fail(-EKEYREJECTED,
					     "TLS handshake with %s did not use the shared key",
					     c->peer));
	pr_debug("TLS with %s: %s, %s", c->peer, SSL_get_version(c->ssl),
		 SSL_get_cipher_name(c->ssl));
	return 0;
}

/* ---- framing ------------------------------------------------------------- */

/* Under send_lock: what net_chan_cork() gathered goes out. */
static int cork_flush(struct net_chan *c)
{
	if (!c->cork_len)
		return 0;
	struct iovec one = { .iov_base = c->cork, .iov_len = c->cork_len };
	c->cork_len = 0;
	return chan_write_iov(c, &one, 1);
}

void net_chan_cork(struct net_chan *c)
{
	pthread_mutex_lock(&c->send_lock);
	if (!c->cork)
		c->cork = xmalloc(NET_CORK_MAX);
	c->corked = true;
	pthread_mutex_unlock(&c->send_lock);
}

int net_chan_uncork(struct net_chan *c)
{
	pthread_mutex_lock(&c->send_lock);
	int r = chan_dead(c);
	if (r == 0)
		r = chan_tx_dead(c);
	if (r == 0)
		r = cork_flush(c);
	c->cork_len = 0;
	c->corked = false;
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

static int send_frame(struct net_chan *c, uint16_t type, const struct iovec *payload, int n)
{
	struct iovec stack_iov[9];
	struct net_wire_hdr h;
	size_t len = 0;
	int r;

	if (n < 0 || (n > 0 && !payload))
		return dm_fail(-EINVAL, "bad iovec for a frame to %s", c->peer);
	for (int i = 0; i < n; i++) {
		len += payload[i].iov_len;
		if (len > NET_FRAME_MAX)
			return dm_fail(-EMSGSIZE, "frame of type %#x to %s exceeds %u bytes", type,
				       c->peer, NET_FRAME_MAX);
	}

	pthread_mutex_lock(&c->send_lock);
	r = chan_dead(c);
	if (r == 0)
		r = chan_tx_dead(c);
	if (r < 0)
		goto out;
	h = (struct net_wire_hdr){
		.magic = htole32(NET_MAGIC),
		.type = htole16(type),
		.flags = 0,
		.len = htole32((uint32_t)len),
		.seq = htole32(c->tx_seq),
	};
	if (c->corked) {
		if (c->cork_len + sizeof(h) + len > NET_CORK_MAX)
			r = cork_flush(c);
		if (r == 0 && sizeof(h) + len <= NET_CORK_MAX) {
			memcpy(c->cork + c->cork_len, &h, sizeof(h));
			c->cork_len += sizeof(h);
			for (int i = 0; i < n; i++) {
				memcpy(c->cork + c->cork_len, payload[i].iov_base, payload[i].iov_len);
				c->cork_len += payload[i].iov_len;
			}
			c->tx_seq++;
			atomic_fetch_add_explicit(&c->frames_sent, 1, memory_order_relaxed);
			goto out;
		}
		if (r < 0)
			goto out;
	}
	if (c->ssl && sizeof(h) + len <= COALESCE_MAX) {
		uint8_t buf[COALESCE_MAX];
		size_t off = sizeof(h);
		memcpy(buf, &h, sizeof(h));
		for (int i = 0; i < n; i++) {
			memcpy(buf + off, payload[i].iov_base, payload[i].iov_len);
			off += payload[i].iov_len;
		}
		struct iovec one = { .iov_base = buf, .iov_len = off };
		r = chan_write_iov(c, &one, 1);
	} else {
		_cleanup_free_ struct iovec *heap = NULL;
		struct iovec *iov = stack_iov;
		if ((size_t)n + 1 > ARRAY_SIZE(stack_iov))
			iov = heap = xcalloc((size_t)n + 1, sizeof(*iov));
		iov[0] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
		memcpy(iov + 1, payload, (size_t)n * sizeof(*iov));
		r = chan_write_iov(c, iov, n + 1);
	}
	if (r == 0) {
		c->tx_seq++;
		atomic_fetch_add_explicit(&c->frames_sent, 1, memory_order_relaxed);
	}
	/* A failed write leaves half a frame on the wire: chan_fatal() (or
	 * chan_tx_closed(), for sending) has already marked the channel dead. */
out:
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int net_send_framev(struct net_chan *c, uint16_t type, const struct iovec *iov, int iovcnt)
{
	return send_frame(c, type, iov, iovcnt);
}

int net_send_frame(struct net_chan *c, uint16_t type, const void *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	return send_frame(c, type, &iov, len ? 1 : 0);
}

int net_send_msg(struct net_chan *c, uint16_t type, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	_cleanup_free_ uint8_t *buf = NULL;

	if (len > NET_MSG_MAX)
		return dm_fail(-EMSGSIZE, "%s message of %zu bytes to %s exceeds %u bytes",
			       msg->descriptor->name, len, c->peer, NET_MSG_MAX);
	buf = xmalloc(len);
	protobuf_c_message_pack(msg, buf);
	return net_send_frame(c, type, buf, len);
}

int net_send_pages(struct net_chan *c, uint32_t space, uint64_t addr, uint32_t npages,
		   uint32_t flags, const struct iovec *iov, int iovcnt)
{
	struct iovec stack_iov[9];
	_cleanup_free_ struct iovec *heap = NULL;
	struct iovec *v = stack_iov;
	struct net_wire_pages ph;
	size_t total = 0;

	if (!PAGE_ALIGNED(addr) || npages == 0 || npages > NET_PAGES_MAX ||
	    addr + (uint64_t)npages * DM_PAGE_SIZE < addr || iovcnt < 0)
		return dm_fail(-EINVAL, "bad page range %#" PRIx64 " + %u pages for %s", addr,
			       npages, c->peer);
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total != (size_t)npages * DM_PAGE_SIZE)
		return dm_fail(-EINVAL, "%u pages to %s but %zu bytes of data", npages, c->peer,
			       total);
	ph = (struct net_wire_pages){
		.addr = htole64(addr),
		.npages = htole32(npages),
		.space = htole32(space),
		.flags = htole32(flags),
	};
	if ((size_t)iovcnt + 1 > ARRAY_SIZE(stack_iov))
		v = heap = xcalloc((size_t)iovcnt + 1, sizeof(*v));
	v[0] = (struct iovec){ .iov_base = &ph, .iov_len = sizeof(ph) };
	memcpy(v + 1, iov, (size_t)iovcnt * sizeof(*v));
	return send_frame(c, NET_T_PAGES, v, iovcnt + 1);
}

/* Receive side, all with recv_lock held. */

static int recv_fail(struct net_chan *c, int err)
{
	if (c->rx_err == 0)
		c->rx_err = err;
	return err;
}

static int recv_hdr_locked(struct net_chan *c, struct net_frame *ret)
{
	struct net_wire_hdr h;
	uint32_t magic, len, seq;
	uint16_t type, flags;
	size_t got;
	int r;

	if (c->rx_err)
		return dm_fail(c->rx_err, "channel from %s is unusable after an earlier error",
			       c->peer);
	r = chan_dead(c);
	if (r < 0)
		return r;
	if (c->rx_left)
		return dm_fail(-EINVAL, "%u payload bytes of the previous frame from %s not read",
			       c->rx_left, c->peer);

	r = chan_read_exact(c, &h, sizeof(h), &got);
	if (r == -EPIPE && got == 0)
		return recv_fail(c, dm_fail(-EPIPE, "%s closed the channel", c->peer));
	if (r == -EPIPE)
		return recv_fail(c, dm_fail(-EBADMSG,
					    "%s closed the channel in the middle of a frame header "
					    "(%zu of %zu bytes)",
					    c->peer, got, sizeof(h)));
	if (r < 0)
		return recv_fail(c, r);

	magic = le32toh(h.magic);
	type = le16toh(h.type);
	flags = le16toh(h.flags);
	len = le32toh(h.len);
	seq = le32toh(h.seq);
	if (magic != NET_MAGIC) {
		const uint8_t *b = (const uint8_t *)&h;
		if (b[0] == 0x16 && b[1] == 0x03)
			return recv_fail(c, dm_fail(-EPROTO,
						    "%s speaks TLS, this side is in insecure mode",
						    c->peer));
		return recv_fail(c, dm_fail(-EBADMSG,
					    "bad frame from %s: magic %#010x, expected %#010x "
					    "(not dmigrate, or framing lost)",
					    c->peer, magic, NET_MAGIC));
	}
	if (flags)
		return recv_fail(c, dm_fail(-EBADMSG, "bad frame from %s: unknown flags %#x",
					    c->peer, flags));
	if (len > NET_FRAME_MAX)
		return recv_fail(c, dm_fail(-EBADMSG,
					    "bad frame from %s: payload of %u bytes exceeds the "
					    "limit of %u",
					    c->peer, len, NET_FRAME_MAX));
	if (seq != c->rx_seq)
		return recv_fail(c, dm_fail(-EBADMSG,
					    "bad frame from %s: sequence %u, expected %u (framing "
					    "lost)",
					    c->peer, seq, c->rx_seq));
	if (type == 0)
		return recv_fail(c, dm_fail(-EBADMSG, "bad frame from %s: type 0", c->peer));
	c->rx_seq++;
	c->rx_left = len;
	atomic_fetch_add_explicit(&c->frames_recv, 1, memory_order_relaxed);
	*ret = (struct net_frame){ .type = type, .flags = flags, .len = len };
	return 0;
}

static int recv_body_locked(struct net_chan *c, void *buf, size_t len)
{
	size_t got;
	int r;

	if (c->rx_err)
		return c->rx_err;
	if (len > c->rx_left)
		return dm_fail(-EINVAL, "reading %zu bytes from a frame of %s with %u left", len,
			       c->peer, c->rx_left);
	r = chan_read_exact(c, buf, len, &got);
	if (r == -EPIPE)
		return recv_fail(c, dm_fail(-EBADMSG,
					    "truncated frame: %s closed the channel with %zu "
					    "payload bytes missing",
					    c->peer, c->rx_left - got));
	if (r < 0)
		return recv_fail(c, r);
	c->rx_left -= (uint32_t)len;
	return 0;
}

static int skip_body_locked(struct net_chan *c)
{
	uint8_t scratch[4096];
	int r = 0;

	while (c->rx_left && r == 0)
		r = recv_body_locked(c, scratch, MIN((size_t)c->rx_left, sizeof(scratch)));
	return r;
}

int net_recv_hdr(struct net_chan *c, struct net_frame *ret_frame)
{
	pthread_mutex_lock(&c->recv_lock);
	int r = recv_hdr_locked(c, ret_frame);
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

int net_recv_body(struct net_chan *c, void *buf, size_t len)
{
	pthread_mutex_lock(&c->recv_lock);
	int r = recv_body_locked(c, buf, len);
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

int net_recv_bodyv(struct net_chan *c, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	int r = 0;

	pthread_mutex_lock(&c->recv_lock);
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total > c->rx_left)
		r = dm_fail(-EINVAL, "reading %zu bytes from a frame of %s with %u left", total,
			    c->peer, c->rx_left);
	for (int i = 0; r == 0 && i < iovcnt; i++)
		r = recv_body_locked(c, iov[i].iov_base, iov[i].iov_len);
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

int net_skip_body(struct net_chan *c)
{
	pthread_mutex_lock(&c->recv_lock);
	int r = skip_body_locked(c);
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

int net_recv_pages_hdr(struct net_chan *c, const struct net_frame *f, struct net_wire_pages *ret)
{
	struct net_wire_pages ph = { 0 };
	uint64_t addr;
	uint32_t npages;
	int r;

	if (f->type != NET_T_PAGES || f->len < sizeof(ph))
		return dm_fail(-EBADMSG, "frame from %s (type %#x, %u bytes) is not a page batch",
			       c->peer, f->type, f->len);
	pthread_mutex_lock(&c->recv_lock);
	r = recv_body_locked(c, &ph, sizeof(ph));
	if (r < 0)
		goto out;
	addr = le64toh(ph.addr);
	npages = le32toh(ph.npages);
	/* A bad header makes the data meaningless: skip it, keep the channel. */
	if (npages == 0 || npages > NET_PAGES_MAX ||
	    (uint64_t)f->len != sizeof(ph) + (uint64_t)npages * DM_PAGE_SIZE) {
		r = dm_fail(-EBADMSG, "page batch from %s: %u pages in a frame of %u bytes",
			    c->peer, npages, f->len);
	} else if (!PAGE_ALIGNED(addr) || addr + (uint64_t)npages * DM_PAGE_SIZE < addr) {
		r = dm_fail(-EBADMSG, "page batch from %s: bad address %#" PRIx64 " (+%u pages)",
			    c->peer, addr, npages);
	} else if (ph.reserved) {
		r = dm_fail(-EBADMSG, "page batch from %s: reserved field set", c->peer);
	}
	if (r < 0) {
		int s = skip_body_locked(c);
		r = s < 0 ? s : r;
		goto out;
	}
	*ret = (struct net_wire_pages){
		.addr = addr,
		.npages = npages,
		.space = le32toh(ph.space),
		.flags = le32toh(ph.flags),
	};
out:
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

static int recv_frame_locked(struct net_chan *c, size_t max, struct net_frame *ret_frame,
			     void **ret_buf)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct net_frame f = { 0 };
	int r;

	r = recv_hdr_locked(c, &f);
	if (r < 0)
		return r;
	if (f.len > max) {
		r = skip_body_locked(c);
		if (r < 0)
			return r;
		return dm_fail(-EBADMSG, "frame of type %#x from %s has %u bytes, more than %zu",
			       f.type, c->peer, f.len, max);
	}
	buf = xmalloc((size_t)f.len + 1);
	r = recv_body_locked(c, buf, f.len);
	if (r < 0)
		return r;
	buf[f.len] = 0;
	*ret_frame = f;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}

int net_recv_frame(struct net_chan *c, size_t max, struct net_frame *ret_frame, void **ret_buf)
{
	pthread_mutex_lock(&c->recv_lock);
	int r = recv_frame_locked(c, max, ret_frame, ret_buf);
	pthread_mutex_unlock(&c->recv_lock);
	return r;
}

static int recv_msg_max(struct net_chan *c, uint16_t type, const ProtobufCMessageDescriptor *desc,
			size_t max, ProtobufCMessage **ret_msg)
{
	_cleanup_free_ void *buf = NULL;
	ProtobufCMessage *m = NULL;
	struct net_frame f = { 0 };
	int r;

	pthread_mutex_lock(&c->recv_lock);
	r = recv_hdr_locked(c, &f);
	if (r == 0 && f.type != type) {
		r = skip_body_locked(c);
		if (r == 0)
			r = dm_fail(-EBADMSG, "expected a %s frame (type %#x) from %s, got type %#x",
				    desc->short_name, type, c->peer, f.type);
	} else if (r == 0 && f.len > max) {
		r = skip_body_locked(c);
		if (r == 0)
			r = dm_fail(-EBADMSG, "%s message from %s has %u bytes, more than %zu",
				    desc->short_name, c->peer, f.len, max);
	} else if (r == 0) {
		buf = xmalloc((size_t)f.len + 1);
		r = recv_body_locked(c, buf, f.len);
	}
	pthread_mutex_unlock(&c->recv_lock);
	if (r < 0)
		return r;

	m = protobuf_c_message_unpack(desc, NULL, f.len, buf);
	if (!m)
		return dm_fail(-EBADMSG, "undecodable %s message (%u bytes) from %s",
			       desc->short_name, f.len, c->peer);
	*ret_msg = m;
	return 0;
}

int net_recv_msg(struct net_chan *c, uint16_t type, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg)
{
	return recv_msg_max(c, type, desc, NET_MSG_MAX, ret_msg);
}

/* ---- Hello ----------------------------------------------------------------- */

static void hello_freep(Dm__Hello **h)
{
	if (*h)
		dm__hello__free_unpacked(*h, NULL);
}

static int recv_hello(struct net_chan *c, Dm__Hello **ret)
{
	ProtobufCMessage *m = NULL;
	int r = recv_msg_max(c, NET_T_HELLO, &dm__hello__descriptor, NET_HELLO_MAX, &m);
	if (r < 0)
		return r;
	*ret = (Dm__Hello *)m;
	return 0;
}

static int send_hello(struct net_chan *c, const char *role, const uint8_t *session,
		      const char *error)
{
	Dm__Hello h = DM__HELLO__INIT;
	size_t n = 0;

	while (c->ctx->features[n])
		n++;
	h.version = NET_PROTO_VERSION;
	h.has_min_version = true;
	h.min_version = NET_PROTO_VERSION_MIN;
	h.role = (char *)role;
	if (session) {
		h.has_session = true;
		h.session.data = (uint8_t *)session;
		h.session.len = NET_SESSION_LEN;
	}
	h.n_features = n;
	h.features = c->ctx->features;
	h.error = (char *)error;
	return net_send_msg(c, NET_T_HELLO, &h.base);
}

/* Highest version both sides speak, or -EPROTONOSUPPORT. */
static int negotiate(struct net_chan *c, const Dm__Hello *h, char *err, size_t errlen)
{
	uint32_t peer_min = h->has_min_version ? h->min_version : h->version;
	uint32_t v = MIN(h->version, NET_PROTO_VERSION);

	if (peer_min > h->version || v < MAX(peer_min, NET_PROTO_VERSION_MIN)) {
		snprintf(err, errlen,
			 "no protocol version in common: the %s speaks %u..%u, the %s %u..%u",
			 c->server ? "client" : "server", peer_min, h->version,
			 c->server ? "server" : "client", NET_PROTO_VERSION_MIN, NET_PROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	c->version = v;
	return 0;
}

static void keep_features(struct net_chan *c, const Dm__Hello *h)
{
	c->peer_features = xcalloc(h->n_features + 1, sizeof(char *));
	for (size_t i = 0; i < h->n_features; i++)
		c->peer_features[i] = xstrdup(h->features[i]);
}

int net_chan_hello_client(struct net_chan *c, enum net_role role, const uint8_t *session)
{
	_cleanup_(hello_freep) Dm__Hello *h = NULL;
	char err[256];
	int r;

	c->role = role;
	memcpy(c->session, session, NET_SESSION_LEN);
	r = send_hello(c, net_role_name(role), c->session, NULL);
	if (r < 0)
		return r;
	r = recv_hello(c, &h);
	if (r == -EPIPE || r == -ECONNRESET)
		return dm_fail(r, "%s closed the connection instead of answering our Hello (%s)",
			       c->peer, c->ssl ? "it refused the channel" :
						 "is it in TLS mode? this side is insecure");
	if (r < 0)
		return r;
	if (h->error)
		return dm_fail(h->version < NET_PROTO_VERSION_MIN || h->version > NET_PROTO_VERSION ?
				       -EPROTONOSUPPORT : -ECONNREFUSED,
			       "%s refused the %s channel: %s", c->peer, net_role_name(role),
			       h->error);
	r = negotiate(c, h, err, sizeof(err));
	if (r < 0)
		return dm_fail(r, "%s: %s", c->peer, err);
	if (strcmp(h->role, net_role_name(role)) != 0 || !h->has_session ||
	    h->session.len != NET_SESSION_LEN ||
	    memcmp(h->session.data, c->session, NET_SESSION_LEN) != 0)
		return dm_fail(-EBADMSG, "%s answered the Hello of a %s channel with another "
					 "role or session",
			       c->peer, net_role_name(role));
	keep_features(c, h);
	return 0;
}

int net_chan_hello_server(struct net_chan *c, struct net_sessions *sessions)
{
	_cleanup_(hello_freep) Dm__Hello *h = NULL;
	char err[256], hex[NET_SESSION_HEX_LEN];
	int r, role;

	r = recv_hello(c, &h);
	if (r < 0)
		return r;

	/* Every refusal is answered, so that the client can say why. */
	r = negotiate(c, h, err, sizeof(err));
	role = net_role_from_name(h->role);
	if (r == 0 && role < 0) {
		snprintf(err, sizeof(err), "unknown channel role '%.32s'", h->role);
		r = -EINVAL;
	}
	if (r == 0 && (!h->has_session || h->session.len != NET_SESSION_LEN)) {
		snprintf(err, sizeof(err), "Hello without a %d-byte session id", NET_SESSION_LEN);
		r = -EBADMSG;
	}
	if (r == 0) {
		c->role = (enum net_role)role;
		memcpy(c->session, h->session.data, NET_SESSION_LEN);
		r = net_sessions_join(sessions, c->role, c->session, err, sizeof(err));
		if (r == 0)
			c->sessions = net_sessions_ref(sessions);
	}
	if (r < 0) {
		const uint8_t *sess = h->has_session && h->session.len == NET_SESSION_LEN ?
					      h->session.data : NULL;
		/* Best effort: the refusal is what matters locally. */
		(void)send_hello(c, h->role, sess, err);
		return dm_fail(r, "refused a channel from %s: %s", c->peer, err);
	}
	keep_features(c, h);
	r = send_hello(c, h->role, c->session, NULL);
	if (r < 0)
		return r;
	pr_debug("%s channel from %s joins session %s (protocol %u)", net_role_name(c->role),
		 c->peer, net_session_hex(c->session, hex), c->version);
	return 0;
}
