/* SPDX-License-Identifier: MIT */
/*
 * The net context and TLS 1.3 with an external PSK (OpenSSL 3.0).
 *
 * PSK = HKDF-SHA256(ikm = key file, salt = "dmigrate-v1", info = below): the
 * key file's bytes never enter TLS directly, so a later use of the same key
 * for something else cannot collide with this one.  The PSK is offered with
 * psk_dhe_ke only (OpenSSL's default): every channel still runs an ECDHE
 * exchange, so recorded traffic stays secret even if the key leaks later.
 *
 * There are no certificates.  The client insists on a PSK handshake
 * (SSL_session_reused() afterwards) and verifies peers with an empty trust
 * store: a server that answers with a certificate instead of our PSK fails.
 */
#define LOG_PREFIX "net: "
#include "net/net-priv.h"
#include "base/log.h"

#include <string.h>
#include <sys/socket.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#define PSK_SALT "dmigrate-v1"
#define PSK_INFO "dmigrate tls1.3 external psk"

/* One suite on both sides: the PSK is bound to its hash.  AES-128-GCM is
 * TLS 1.3's mandatory suite, uses the same SHA-256 as the PSK derivation,
 * and cost ~10% less CPU per byte than AES-256-GCM in bench/net_throughput. */
#define TLS_SUITE "TLS_AES_128_GCM_SHA256"
static const unsigned char tls_suite_id[2] = { 0x13, 0x01 };

static int derive_psk(const struct net_key *key, uint8_t psk[NET_PSK_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key->bytes,
						  sizeof(key->bytes)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)PSK_SALT,
						  strlen(PSK_SALT)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)PSK_INFO,
						  strlen(PSK_INFO)),
		OSSL_PARAM_construct_end(),
	};
	int ok = kctx && EVP_KDF_derive(kctx, psk, NET_PSK_LEN, params) == 1;

	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	ERR_clear_error();
	return ok ? 0 : dm_fail(-EIO, "OpenSSL cannot derive the TLS key (HKDF)");
}

static SSL_SESSION *psk_session(SSL *ssl)
{
	struct net_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, tls_suite_id);
	SSL_SESSION *sess;

	if (!cipher)
		return NULL;
	sess = SSL_SESSION_new();
	if (!sess)
		return NULL;
	if (!SSL_SESSION_set1_master_key(sess, ctx->psk, sizeof(ctx->psk)) ||
	    !SSL_SESSION_set_cipher(sess, cipher) ||
	    !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

/* Client: offer our identity and PSK (also called again after a HelloRetryRequest, with md). */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **ret_sess)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, tls_suite_id);
	SSL_SESSION *sess;

	if (!cipher)
		return 0;
	if (md && md != SSL_CIPHER_get_handshake_digest(cipher)) {
		*id = NULL;
		*idlen = 0;
		*ret_sess = NULL;
		return 1;
	}
	sess = psk_session(ssl);
	if (!sess)
		return 0;
	*id = (const unsigned char *)NET_PSK_IDENTITY;
	*idlen = strlen(NET_PSK_IDENTITY);
	*ret_sess = sess;
	return 1;
}

/* Server: only our identity has a PSK; anything else gets none and the
 * handshake fails for want of a certificate. */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **ret_sess)
{
	*ret_sess = NULL;
	if (idlen != strlen(NET_PSK_IDENTITY) || memcmp(id, NET_PSK_IDENTITY, idlen) != 0)
		return 1;
	*ret_sess = psk_session(ssl);
	return *ret_sess ? 1 : 0;
}

static SSL_CTX *make_ssl_ctx(struct net_ctx *ctx, bool server)
{
	SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!s)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(s, TLS_SUITE)) {
		SSL_CTX_free(s);
		return NULL;
	}
	/* Non-blocking use: a write may return after each record, and the
	 * retry after WANT_WRITE may come from the same data at a new address. */
	SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
	/* Pull several records per recv() on big transfers. */
	SSL_CTX_set_read_ahead(s, 1);
	SSL_CTX_set_default_read_buffer_len(s, 64 * 1024);
	SSL_CTX_set_app_data(s, ctx);
	if (server) {
		SSL_CTX_set_num_tickets(s, 0);
		SSL_CTX_set_psk_find_session_callback(s, psk_find_cb);
	} else {
		SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_psk_use_session_callback(s, psk_use_cb);
	}
	return s;
}

int net_ctx_new(const struct net_config *cfg, const struct net_key *key, struct net_ctx **ret_ctx)
{
	struct net_ctx *ctx;
	size_t n = 0;
	int r;

	if (!cfg->insecure && !key)
		return dm_fail(-EINVAL, "a key is required unless the channel is insecure");

	ctx = xcalloc(1, sizeof(*ctx));
	atomic_init(&ctx->refs, 1);
	ctx->insecure = cfg->insecure;
	ctx->connect_timeout_ms = net_timeout_or(cfg->connect_timeout_ms, 5000);
	ctx->handshake_timeout_ms = net_timeout_or(cfg->handshake_timeout_ms, 5000);
	ctx->io_timeout_ms = net_timeout_or(cfg->io_timeout_ms, 60000);
	ctx->handshakes_per_addr = cfg->handshakes_per_addr ? cfg->handshakes_per_addr : NET_HANDSHAKES_PER_ADDR;
	ctx->handshakes_max = cfg->handshakes_max ? cfg->handshakes_max : NET_HANDSHAKES_MAX;
	while (cfg->features && cfg->features[n])
		n++;
	ctx->features = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		ctx->features[i] = xstrdup(cfg->features[i]);

	/* insecure: the commands warn, once (dmigrate migrate; the listener) */
	if (ctx->insecure) {
		*ret_ctx = ctx;
		return 0;
	}

	r = derive_psk(key, ctx->psk);
	if (r < 0)
		goto fail;
	ctx->ssl_client = make_ssl_ctx(ctx, false);
	ctx->ssl_server = make_ssl_ctx(ctx, true);
	if (!ctx->ssl_client || !ctx->ssl_server) {
		char why[256];
		r = dm_fail(-EIO, "cannot set up TLS 1.3 with %s: %s", TLS_SUITE,
			    net_tls_reason(ERR_peek_last_error(), why, sizeof(why)));
		ERR_clear_error();
		goto fail;
	}
	*ret_ctx = ctx;
	return 0;
fail:
	net_ctx_unref(ctx);
	return r;
}

struct net_ctx *net_ctx_ref(struct net_ctx *ctx)
{
	if (ctx)
		atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

void net_ctx_unref(struct net_ctx *ctx)
{
	if (!ctx || atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	SSL_CTX_free(ctx->ssl_client);
	SSL_CTX_free(ctx->ssl_server);
	for (char **f = ctx->features; f && *f; f++)
		free(*f);
	free(ctx->features);
	OPENSSL_cleanse(ctx->psk, sizeof(ctx->psk));
	free(ctx);
}

const char *net_tls_reason(unsigned long e, char *buf, size_t len)
{
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (reason)
		snprintf(buf, len, "%s", reason);
	else if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown TLS error");
	return buf;
}

/*
 * Our own socket BIO.  OpenSSL's BIO_s_socket() write()s, which raises
 * SIGPIPE when the peer is gone, and a library must not depend on the
 * program ignoring SIGPIPE: send(MSG_NOSIGNAL) instead.  It also counts
 * the bytes on the wire.
 */
static int bio_write(BIO *b, const char *buf, int len)
{
	struct net_chan *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
	atomic_fetch_add_explicit(&c->wire_sent, (uint64_t)n, memory_order_relaxed);
	return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct net_chan *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
	atomic_fetch_add_explicit(&c->wire_recv, (uint64_t)n, memory_order_relaxed);
	return (int)n;
}

static int bio_puts(BIO *b, const char *s)
{
	return bio_write(b, s, (int)strlen(s));
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH: /* nothing is buffered here */
	case BIO_CTRL_DUP:
		return 1;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dmigrate socket");

	if (!m)
		return;
	if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
	    !BIO_meth_set_puts(m, bio_puts) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
	    !BIO_meth_set_create(m, bio_create)) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

int net_tls_new_ssl(struct net_chan *c)
{
	SSL_CTX *sctx = c->server ? c->ctx->ssl_server : c->ctx->ssl_client;
	BIO *bio;

	pthread_once(&bio_once, bio_method_init);
	if (!bio_method)
		return dm_fail(-ENOMEM, "cannot create the OpenSSL BIO method");
	c->ssl = SSL_new(sctx);
	bio = c->ssl ? BIO_new(bio_method) : NULL;
	if (!bio) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
		return dm_fail(-ENOMEM, "cannot create a TLS connection object");
	}
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio); /* the SSL owns the BIO now */
	return 0;
}
