/* SPDX-License-Identifier: MIT */
/*
 * net: the channels between the two hosts of a migration.
 *
 *   dmigrate (source, client)                dmigrated (destination, server)
 *   net_connect(ctx, "hostB:7070", CONTROL)  ---> net_listen() / net_accept()
 *   net_connect(..., FAULT, session)         ---> same session: joins the migration
 *   net_connect(..., BULK,  session)         --->
 *
 * Every channel is one TCP connection.  Unless the context is insecure it is
 * TLS 1.3 with an external PSK derived (HKDF-SHA256) from a 32-byte key file
 * that both hosts hold: a finished handshake proves to each side that the
 * other holds the key (mutual authentication), and a wrong key fails the
 * handshake on both sides with -EKEYREJECTED.  No certificates are involved.
 *
 * Wire format, after TLS (or straight on TCP in insecure mode):
 *
 *   +------------------------------- struct net_wire_hdr (16 bytes, LE) ---+
 *   | magic "DMNF" | type u16 | flags u16 | len u32 | seq u32              |
 *   +-----------------------------------------------------------------------+
 *   | len bytes of payload: a protobuf message, or a raw payload such as     |
 *   | struct net_wire_pages (24 bytes) + npages * 4096 bytes of page data    |
 *   +-----------------------------------------------------------------------+
 *
 * seq counts frames per direction from 0: a receiver that gets another value
 * has lost framing (a bug), which is reported rather than parsed on.  The
 * first frame each way is a Hello (proto/rpc.proto): the client sends its
 * version range, the channel's role and the session id; the server answers
 * with its own, or with an error string when it refuses the channel.
 *
 * Errors: functions return >= 0 or -errno, and set dm_last_error() to a
 * message naming the peer.  Notable codes:
 *   -EKEYREJECTED     TLS handshake failed in a way that means "not the same key"
 *   -EPROTO           other TLS failures, a TLS peer talking to an insecure one
 *   -EBADMSG          malformed frame (magic, flags, length, sequence,
 *                     truncated frame, undecodable protobuf, unexpected type)
 *   -EPROTONOSUPPORT  no protocol version in common
 *   -ECONNREFUSED     the server refused the channel (unknown session, role)
 *   -ETIMEDOUT        connect, handshake or I/O timeout
 *   -EPIPE            the peer closed the channel at a frame boundary
 *   -ECANCELED        net_chan_shutdown() was called
 * After a transport or framing error the channel is dead: every later call
 * returns the same error.  A type mismatch in net_recv_msg() leaves it usable.
 * One exception: a send that finds the connection closed or reset by the
 * peer (-EPIPE, -ECONNRESET) ends the sending side only; what the peer sent
 * before it closed (its reason, typically) is still received, then its end.
 *
 * Threads.  OpenSSL forbids concurrent SSL_read/SSL_write on one SSL object,
 * and blocking I/O cannot hold a lock while it waits.  So channel sockets are
 * non-blocking and every SSL_* call runs under the channel's ssl_lock, which
 * is released while the thread waits in poll().  The rules for callers:
 *   - any number of threads may send on a channel: each net_send_*() sends one
 *     whole frame under the channel's send lock, frames never interleave;
 *   - one thread at a time receives: net_recv_hdr() and the net_recv_body()
 *     calls that consume that frame must come from the same thread (the
 *     one-call helpers net_recv_frame()/net_recv_msg() are atomic anyway);
 *   - a sender and a receiver may run at the same time (full duplex);
 *   - net_chan_shutdown() may be called from any thread, net_chan_close()
 *     only once no other thread uses the channel.
 * Lock order inside a channel: send_lock or recv_lock, then ssl_lock.
 *
 * Kernel TLS: not used.  kTLS needs OpenSSL's socket BIO, whose writes raise
 * SIGPIPE (we use our own BIO with MSG_NOSIGNAL), and this kernel has no "tls"
 * TCP ULP anyway (net.ipv4.tcp_available_ulp lists only mptcp), so OpenSSL
 * would fall back to user-space crypto.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <protobuf-c/protobuf-c.h>

#include "base/util.h"

#define NET_PROTO_VERSION 1u     /* what this build speaks */
#define NET_PROTO_VERSION_MIN 1u /* oldest peer it still understands */
#define NET_DEFAULT_PORT 7070
#define NET_KEY_LEN 32
#define NET_SESSION_LEN 16
#define NET_PSK_IDENTITY "dmigrate-v1"

#define NET_MAGIC 0x464e4d44u                   /* "DMNF" little endian */
#define NET_FRAME_MAX ((64u << 20) + 4096u)     /* payload bytes of one frame */
#define NET_MSG_MAX (16u << 20)                 /* protobuf payload bytes */
#define NET_PAGES_MAX ((NET_FRAME_MAX - sizeof(struct net_wire_pages)) / DM_PAGE_SIZE)

/* Frame types.  net owns 1..0xff; each module gets a range for its own. */
enum net_type {
	NET_T_HELLO = 1,     /* Dm__Hello, first frame both ways */
	NET_T_PAGES = 2,     /* struct net_wire_pages + page data */
	NET_T_RAW = 3,       /* opaque bytes (tests, bench) */
	NET_T_MIGRATE = 0x100, /* 0x100..0x1ff: migrate/ control messages */
	NET_T_MEM = 0x200,     /* 0x200..0x2ff: mem/ requests and replies */
	NET_T_ROOTFS = 0x300,  /* 0x300..0x3ff: rootfs/ */
};

/* On the wire, little endian. */
struct net_wire_hdr {
	uint32_t magic; /* NET_MAGIC */
	uint16_t type;  /* enum net_type */
	uint16_t flags; /* none defined yet: must be 0 */
	uint32_t len;   /* payload bytes that follow, <= NET_FRAME_MAX */
	uint32_t seq;   /* frame number in this direction, from 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct net_wire_hdr) == 16, "frame header is 16 bytes on the wire");

/* Start of a NET_T_PAGES payload; npages * 4096 bytes follow. */
struct net_wire_pages {
	uint64_t addr;   /* page aligned */
	uint32_t npages; /* 1..NET_PAGES_MAX */
	uint32_t space;  /* which address space (mem/ defines the numbering) */
	uint32_t flags;  /* mem/ defines them */
	uint32_t reserved; /* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct net_wire_pages) == 24, "pages header is 24 bytes on the wire");

enum net_role {
	NET_ROLE_CONTROL = 0, /* first channel: creates the session */
	NET_ROLE_FAULT,       /* page faults: small, latency critical */
	NET_ROLE_BULK,        /* pushed pages: large buffers */
	NET_ROLE_ROOTFS,      /* files: metadata and bulk data */
	NET_ROLE_ROOTFS_MISS, /* files: requests and the chunks the tree is blocked on */
	NET_ROLE_VOLUME,      /* a Docker volume's files (as rootfs; first frame: VOLUME_INDEX) */
	NET_ROLE_VOLUME_MISS, /* its requests and the chunks it is blocked on (as rootfs-miss) */
	_NET_ROLE_MAX,
};
const char *net_role_name(enum net_role role);
/* -EINVAL for an unknown name */
int net_role_from_name(const char *name);

/* ---- keys --------------------------------------------------------------- */
struct net_key {
	uint8_t bytes[NET_KEY_LEN];
};
/* Write a fresh random key as 64 hex digits + "\n", mode 0600.  -EEXIST if
 * path exists (never overwritten). */
int net_keygen(const char *path);
/* Read a key written by net_keygen().  -EPERM if the file is accessible by
 * group or others or owned by another user, -EBADMSG if malformed. */
int net_key_load(const char *path, struct net_key *ret_key);

/* ---- addresses ---------------------------------------------------------- */
/* "host", "host:port", "1.2.3.4:7070", "[::1]:7070", "[::1]", "::1" (bare IPv6
 * without port).  ret_host is malloc()ed. */
int net_parse_addr(const char *s, uint16_t default_port, char **ret_host, uint16_t *ret_port);

/* ---- context: key, mode, timeouts; shared by all channels of a process --- */
struct net_config {
	bool insecure;             /* plain TCP, no authentication: benchmarks only */
	int connect_timeout_ms;    /* TCP connect; 0: 5000, < 0: none */
	int handshake_timeout_ms;  /* TLS + Hello, whole; 0: 5000, < 0: none */
	int io_timeout_ms;         /* a send/recv making no progress; 0: 60000, < 0: none */
	const char *const *features; /* NULL-terminated, announced in Hello; may be NULL */
	/* server side, net_accept_next(): handshakes in progress at once from
	 * one peer address, and in all; 0: NET_HANDSHAKES_PER_ADDR, _MAX */
	unsigned handshakes_per_addr, handshakes_max;
};
#define NET_HANDSHAKES_PER_ADDR 8 /* a source opens 3 channels per migration, one after the other */
#define NET_HANDSHAKES_MAX 64

struct net_ctx;
/* key may be NULL only when cfg->insecure.  The context copies both. */
int net_ctx_new(const struct net_config *cfg, const struct net_key *key, struct net_ctx **ret_ctx);
struct net_ctx *net_ctx_ref(struct net_ctx *ctx);
void net_ctx_unref(struct net_ctx *ctx); /* NULL is fine */
static inline void net_ctx_unrefp(struct net_ctx **p) { net_ctx_unref(*p); }
#define _cleanup_net_ctx_ _cleanup_(net_ctx_unrefp)

/* ---- channels ----------------------------------------------------------- */
struct net_chan;

/*
 * Client: connect to addr (net_parse_addr syntax, default port 7070), TLS
 * handshake, Hello.  For NET_ROLE_CONTROL pass session = NULL and a fresh
 * random session id is made; every other role must pass the session of an
 * open control channel (net_chan_session()).
 */
int net_connect(struct net_ctx *ctx, const char *addr, enum net_role role,
		const uint8_t *session, struct net_chan **ret_chan);

/* Close (sends TLS close_notify if the channel is healthy).  NULL is fine. */
void net_chan_close(struct net_chan *c);
static inline void net_chan_closep(struct net_chan **p) { net_chan_close(*p); }
#define _cleanup_net_chan_ _cleanup_(net_chan_closep)
/* Wake every thread blocked on this channel (they get -ECANCELED) and make
 * further I/O fail.  Thread-safe; the channel must still be closed. */
void net_chan_shutdown(struct net_chan *c);

enum net_role net_chan_role(const struct net_chan *c);
const uint8_t *net_chan_session(const struct net_chan *c); /* NET_SESSION_LEN bytes */
const char *net_chan_peer(const struct net_chan *c);       /* "1.2.3.4:7070", "[::1]:7070" */
uint32_t net_chan_version(const struct net_chan *c);       /* negotiated */
bool net_chan_is_secure(const struct net_chan *c);
bool net_chan_peer_has_feature(const struct net_chan *c, const char *feature);
/* For poll()ing from an event loop.  Readable does not mean a whole frame is
 * there (a receive then blocks, within the timeout, for the rest), and bytes
 * already read from the socket (a TLS record, or the plain-mode read buffer)
 * do not make the fd readable: check net_chan_has_pending() before polling. */
int net_chan_fd(const struct net_chan *c);
/* Received bytes are waiting inside the channel.  Call from the receiving thread. */
bool net_chan_has_pending(struct net_chan *c);
/* Anything to receive, now or within timeout_ms: 1 (bytes inside the channel,
 * or the fd readable), 0 (timeout), or poll()'s -1.  Receiving thread. */
int net_chan_poll_in(struct net_chan *c, int timeout_ms);
/* The same with a timeout in microseconds (ppoll). */
int net_chan_poll_in_us(struct net_chan *c, long timeout_us);
/* Bytes sent on the channel that the peer's kernel has not acknowledged yet
 * (queued or in flight: SIOCOUTQ), or -errno. */
int net_chan_unacked(const struct net_chan *c);
/* Acknowledge what was received at once, and the next segments too
 * (TCP_QUICKACK: the kernel leaves quick-ack mode by itself, so the
 * receiving thread says it again after each frame).  A channel whose peer
 * paces on the acknowledgements: the fault channel. */
void net_chan_quickack(const struct net_chan *c);

/*
 * Many small frames in a row (a migration's state: a few frames for each of
 * its ~20-30 image files, each its own TLS record and send(), 0.5-0.7 ms
 * for 10-50 KiB): between net_chan_cork() and net_chan_uncork() the frames
 * are gathered, in order, and go out NET_CORK_MAX at a time (a frame larger
 * than that goes alone, after what was gathered).  Nothing that waits for
 * the peer may come in between: what is gathered is not sent.
 * net_chan_uncork() sends the rest; it returns the first error of either.
 */
#define NET_CORK_MAX (64u * 1024)
void net_chan_cork(struct net_chan *c);
int net_chan_uncork(struct net_chan *c);
/* Inactivity timeout of later sends/receives; < 0: wait forever. */
void net_chan_set_timeout(struct net_chan *c, int io_timeout_ms);

struct net_chan_stats {
	uint64_t bytes_sent, bytes_recv;   /* frame headers + payloads */
	uint64_t frames_sent, frames_recv;
	uint64_t wire_sent, wire_recv;     /* on the socket: + TLS records, handshake */
};
/* Counters are atomics: any thread may read them at any time. */
void net_chan_get_stats(const struct net_chan *c, struct net_chan_stats *ret);

/* Session ids as 32 hex digits + NUL, for logs and stats files. */
#define NET_SESSION_HEX_LEN (2 * NET_SESSION_LEN + 1)
char *net_session_hex(const uint8_t *session, char buf[static NET_SESSION_HEX_LEN]);

/* ---- sending (any thread; one frame per call) --------------------------- */
int net_send_frame(struct net_chan *c, uint16_t type, const void *data, size_t len);
/* Payload gathered from iov (big buffers go out without a copy). */
int net_send_framev(struct net_chan *c, uint16_t type, const struct iovec *iov, int iovcnt);
/* A protobuf message as one frame; at most NET_MSG_MAX bytes packed. */
int net_send_msg(struct net_chan *c, uint16_t type, const ProtobufCMessage *msg);
/* NET_T_PAGES: a pages header, then the page data gathered from iov, whose
 * total must be npages * 4096.  addr must be page aligned. */
int net_send_pages(struct net_chan *c, uint32_t space, uint64_t addr, uint32_t npages,
		   uint32_t flags, const struct iovec *iov, int iovcnt);

/* ---- receiving (one thread at a time) ----------------------------------- */
struct net_frame {
	uint16_t type;
	uint16_t flags;
	uint32_t len; /* payload bytes */
};
/* Read and check the next frame header.  Its payload must then be consumed
 * entirely (net_recv_body*, net_skip_body, net_recv_pages_hdr) before the
 * next net_recv_hdr(). */
int net_recv_hdr(struct net_chan *c, struct net_frame *ret_frame);
/* Read exactly len bytes of the current frame's payload (len <= what is left). */
int net_recv_body(struct net_chan *c, void *buf, size_t len);
int net_recv_bodyv(struct net_chan *c, const struct iovec *iov, int iovcnt);
int net_skip_body(struct net_chan *c);
/* For a NET_T_PAGES frame: read and check the pages header (length matches
 * npages, alignment, no overflow); the page data is then read with
 * net_recv_body*(). */
int net_recv_pages_hdr(struct net_chan *c, const struct net_frame *f, struct net_wire_pages *ret);

/* Next whole frame into a malloc()ed buffer (NUL-terminated for convenience).
 * A payload larger than max is skipped and -EBADMSG returned. */
int net_recv_frame(struct net_chan *c, size_t max, struct net_frame *ret_frame,
		   void **ret_buf);
/* Next frame must be of this type and decode as desc (free the result with
 * protobuf_c_message_free_unpacked()).  Another type: the frame is skipped,
 * -EBADMSG, the channel stays usable. */
int net_recv_msg(struct net_chan *c, uint16_t type, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg);

/* ---- server side -------------------------------------------------------- */
struct net_listener;
/* Listen on addr (NULL: "127.0.0.1:7070"; port 0 picks a free port).  The
 * listener keeps the sessions of its channels: a control channel creates
 * one, a later channel must name a live session to join it, and a session
 * ends when its last channel is closed. */
int net_listen(struct net_ctx *ctx, const char *addr, struct net_listener **ret_listener);
void net_listener_free(struct net_listener *l); /* NULL is fine */
static inline void net_listener_freep(struct net_listener **p) { net_listener_free(*p); }
#define _cleanup_net_listener_ _cleanup_(net_listener_freep)
int net_listener_fd(const struct net_listener *l);
uint16_t net_listener_port(const struct net_listener *l);

/* Wait up to timeout_ms (< 0: forever) for a connection (-ETIMEDOUT), then
 * do the TLS handshake and Hello within the handshake timeout.  A failed
 * handshake returns its error; the listener stays usable. */
int net_accept(struct net_listener *l, int timeout_ms, struct net_chan **ret_chan);
/* The same in two steps, so that an event loop can accept and hand the
 * handshake to a worker thread: net_listener_accept_fd() does not block
 * (-EAGAIN when nothing is pending); net_listener_handshake() takes the fd
 * (closes it on failure) and is thread-safe. */
int net_listener_accept_fd(struct net_listener *l);
int net_listener_handshake(struct net_listener *l, int fd, struct net_chan **ret_chan);
/*
 * For a server that must not stall on a slow or silent client: every
 * connection gets its handshake (TLS + Hello, within the handshake timeout)
 * on a thread of its own, so that one peer that says nothing cannot hold up
 * the channels of another.  Waits up to timeout_ms (< 0: forever) for a
 * channel whose handshake succeeded (-ETIMEDOUT).  A connection beyond the
 * limits (handshakes_per_addr from its address, handshakes_max in all) is
 * closed at once; failed handshakes and refusals are logged here, never
 * returned.  One caller thread at a time; net_listener_free() ends the
 * handshakes still in progress and waits for their threads.
 */
int net_accept_next(struct net_listener *l, int timeout_ms, struct net_chan **ret_chan);

/*
 * Egress queueing (egress.c): whether the queue in front of the link a
 * connected socket leaves by serves interactive-priority frames before bulk
 * ones.  net_egress_of() finds the device holding the socket's local address
 * and classifies its qdisc tree; net_qdisc_classify() is the rule alone.
 */
enum net_queueing {
	NET_Q_UNKNOWN,  /* no qdisc (noqueue: a virtual device), or unreadable */
	NET_Q_FIFO,     /* some leaf is one FIFO for every flow (tbf, htb, pfifo...) */
	NET_Q_PRIORITY, /* every leaf orders by band or flow (pfifo_fast, fq_codel...) */
};
struct net_qdisc {
	uint32_t handle, parent; /* parent TC_H_ROOT for the root */
	char kind[16];
};
struct net_egress {
	char ifname[16];
	enum net_queueing queueing;
	char desc[96]; /* "tbf > pfifo_fast", "tbf: one fifo in tbf" */
};
enum net_queueing net_qdisc_classify(const struct net_qdisc *q, size_t n, char *desc, size_t desclen);
int net_egress_of(int fd, struct net_egress *ret);
const char *net_queueing_name(enum net_queueing q);
