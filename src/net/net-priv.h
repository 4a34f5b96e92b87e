/* SPDX-License-Identifier: MIT */
/* Inside net/: the context, the channel and the helpers shared by its files. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <openssl/ssl.h>

#include "net/net.h"

#define NET_PSK_LEN 32
#define NET_HELLO_MAX 4096 /* a Hello frame is tiny; refuse anything bigger */

struct net_ctx {
	atomic_int refs;
	bool insecure;
	int connect_timeout_ms, handshake_timeout_ms, io_timeout_ms; /* defaults applied */
	unsigned handshakes_per_addr, handshakes_max;                 /* defaults applied */
	char **features;                                              /* NULL-terminated */
	SSL_CTX *ssl_client, *ssl_server;                             /* NULL when insecure */
	uint8_t psk[NET_PSK_LEN];
};

struct net_sessions; /* listen.c: the sessions a listener knows */

struct net_chan {
	int fd;
	SSL *ssl; /* NULL in insecure mode */
	struct net_ctx *ctx;
	bool server;
	enum net_role role;
	uint32_t version;
	uint8_t session[NET_SESSION_LEN];
	char peer[64];
	char **peer_features; /* NULL-terminated */

	atomic_int io_timeout_ms; /* < 0: none; net_chan_set_timeout() from any thread */
	uint64_t deadline_ns; /* while handshaking: absolute limit, else 0 */
	atomic_bool shut;     /* net_chan_shutdown() */
	atomic_int err;       /* fatal transport error (TLS or socket), sticky */
	atomic_int tx_err;    /* the peer closed or reset it under a send: sends end, sticky (receives go on) */
	atomic_bool tls_eof;  /* EOF without close_notify: no SSL_shutdown then */

	/* Every SSL_* call on ssl, never held while waiting. */
	pthread_mutex_t ssl_lock;
	/* One whole frame at a time in each direction; taken before ssl_lock. */
	pthread_mutex_t send_lock, recv_lock;

	/* send side (send_lock) */
	uint32_t tx_seq;
	bool corked;          /* frames gather in cork until net_chan_uncork() */
	uint8_t *cork;        /* [NET_CORK_MAX] once corked */
	size_t cork_len;
	/* receive side (recv_lock) */
	uint32_t rx_seq;
	uint32_t rx_left; /* payload bytes of the current frame not read yet */
	int rx_err;       /* framing lost: sticky */
	uint8_t *rbuf;    /* insecure mode: small reads come from here */
	size_t rbuf_pos, rbuf_len;

	_Atomic uint64_t bytes_sent, bytes_recv, frames_sent, frames_recv, wire_sent, wire_recv;

	struct net_sessions *sessions; /* server side: where our session is counted */
};

/* chan.c */
int net_chan_new(struct net_ctx *ctx, int fd, bool server, struct net_chan **ret_chan);
int net_chan_tls_handshake(struct net_chan *c);
int net_chan_hello_client(struct net_chan *c, enum net_role role, const uint8_t *session);
int net_chan_hello_server(struct net_chan *c, struct net_sessions *sessions);
void net_chan_set_peer(struct net_chan *c);
void net_chan_start_deadline(struct net_chan *c);

/* tls.c */
int net_tls_new_ssl(struct net_chan *c);
/* errno-style code and a short OpenSSL reason for a failed SSL_* call */
const char *net_tls_reason(unsigned long e, char *buf, size_t len);

/* listen.c */
/* Check a channel's session against the listener's table and count the
 * channel in it.  On refusal returns -errno and a message in err. */
int net_sessions_join(struct net_sessions *s, enum net_role role, const uint8_t *session,
		      char *err, size_t errlen);
void net_sessions_leave(struct net_sessions *s, const uint8_t *session);
struct net_sessions *net_sessions_ref(struct net_sessions *s);
void net_sessions_unref(struct net_sessions *s);

static inline int net_timeout_or(int v, int def) { return v == 0 ? def : (v < 0 ? -1 : v); }
