/* SPDX-License-Identifier: MIT */
/*
 * net/: keys, addresses, TLS-PSK and insecure channels over loopback,
 * framing, hostile peers (garbage, truncation, oversize, wrong magic,
 * wrong key, wrong version, silence), sessions, full duplex use.
 *
 * cmocka's assertions may only fail in the main thread: helper threads
 * record their results and the main thread checks them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/pkt_sched.h>
#include <netinet/in.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "base/log.h"
#include "net/inet.h"
#include "net/net.h"
#include "net/rtnl.h"
#include "migrate/mig-internal.h"

#include <jansson.h>
#include "rpc.pb-c.h"

static char tmpdir[64];
static struct net_key key_a, key_b;

#define HS_TIMEOUT_MS 2000

static int make_ctx(bool insecure, const struct net_key *key, int hs_ms, struct net_ctx **ret)
{
	static const char *const feats[] = { "pages-v1", "test", NULL };
	struct net_config cfg = {
		.insecure = insecure,
		.connect_timeout_ms = 2000,
		.handshake_timeout_ms = hs_ms ? hs_ms : HS_TIMEOUT_MS,
		.io_timeout_ms = 20000,
		.features = feats,
	};
	return net_ctx_new(&cfg, insecure ? NULL : key, ret);
}

/* ---- an accepting thread ---------------------------------------------------- */

struct acceptor {
	struct net_listener *l;
	int timeout_ms;
	pthread_t thread;
	int r;
	struct net_chan *c;
	char err[1024];
	uint64_t ns; /* how long net_accept took */
};

static void *accept_thread(void *p)
{
	struct acceptor *a = p;
	uint64_t t0 = clock_ns();

	a->r = net_accept(a->l, a->timeout_ms, &a->c);
	a->ns = clock_ns() - t0;
	snprintf(a->err, sizeof(a->err), "%s", dm_last_error());
	return NULL;
}

static void accept_start(struct acceptor *a, struct net_listener *l)
{
	*a = (struct acceptor){ .l = l, .timeout_ms = 5000 };
	assert_int_equal(pthread_create(&a->thread, NULL, accept_thread, a), 0);
}

static void accept_join(struct acceptor *a)
{
	pthread_join(a->thread, NULL);
}

static char *addr_of(struct net_listener *l, char buf[64])
{
	snprintf(buf, 64, "127.0.0.1:%u", net_listener_port(l));
	return buf;
}

/* A connected, authenticated pair of channels of one mode. */
struct pair {
	struct net_ctx *sctx, *cctx;
	struct net_listener *l;
	struct net_chan *srv, *cli;
};

static void pair_open(struct pair *p, bool insecure)
{
	struct acceptor a;
	char addr[64];

	memset(p, 0, sizeof(*p));
	assert_int_equal(make_ctx(insecure, &key_a, 0, &p->sctx), 0);
	assert_int_equal(make_ctx(insecure, &key_a, 0, &p->cctx), 0);
	assert_int_equal(net_listen(p->sctx, "127.0.0.1:0", &p->l), 0);
	accept_start(&a, p->l);
	int r = net_connect(p->cctx, addr_of(p->l, addr), NET_ROLE_CONTROL, NULL, &p->cli);
	if (r < 0)
		print_error("connect: %s\n", dm_last_error());
	accept_join(&a);
	if (a.r < 0)
		print_error("accept: %s\n", a.err);
	assert_int_equal(r, 0);
	assert_int_equal(a.r, 0);
	p->srv = a.c;
}

static void pair_close(struct pair *p)
{
	net_chan_close(p->cli);
	net_chan_close(p->srv);
	net_listener_free(p->l);
	net_ctx_unref(p->sctx);
	net_ctx_unref(p->cctx);
}

/* Raw TCP to a listener, for fake peers. */
static int raw_connect(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void raw_frame(int fd, uint32_t magic, uint16_t type, uint16_t flags, uint32_t len,
		      uint32_t seq, const void *payload, size_t paylen)
{
	struct net_wire_hdr h = {
		.magic = htole32(magic),
		.type = htole16(type),
		.flags = htole16(flags),
		.len = htole32(len),
		.seq = htole32(seq),
	};
	assert_int_equal(write_all(fd, &h, sizeof(h)), 0);
	if (paylen)
		assert_int_equal(write_all(fd, payload, paylen), 0);
}

static void raw_hello(int fd, uint32_t version, const char *role, const uint8_t *session,
		      uint32_t seq)
{
	Dm__Hello h = DM__HELLO__INIT;
	uint8_t buf[512];

	h.version = version;
	h.has_min_version = true;
	h.min_version = version;
	h.role = (char *)role;
	h.has_session = true;
	h.session.data = (uint8_t *)session;
	h.session.len = NET_SESSION_LEN;
	size_t n = dm__hello__pack(&h, buf);
	raw_frame(fd, NET_MAGIC, NET_T_HELLO, 0, (uint32_t)n, seq, buf, n);
}

/* Read one frame from a raw fd; returns the Hello it holds (or NULL). */
static Dm__Hello *raw_read_hello(int fd)
{
	struct net_wire_hdr h;
	uint8_t buf[4096];

	if (read_exact(fd, &h, sizeof(h)) < 0 || le32toh(h.magic) != NET_MAGIC ||
	    le16toh(h.type) != NET_T_HELLO || le32toh(h.len) > sizeof(buf))
		return NULL;
	if (read_exact(fd, buf, le32toh(h.len)) < 0)
		return NULL;
	return dm__hello__unpack(NULL, le32toh(h.len), buf);
}

/* ---- keys and addresses --------------------------------------------------------- */

static void test_key_file(void **state)
{
	char path[128], bad[128];
	struct net_key k1, k2;
	struct stat st;

	snprintf(path, sizeof(path), "%s/k", tmpdir);
	umask(077 & ~066); /* a lax umask must not matter */
	assert_int_equal(net_keygen(path), 0);
	umask(022);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 65);
	assert_int_equal(net_key_load(path, &k1), 0);
	assert_int_equal(net_keygen(path), -EEXIST); /* never overwrite */
	assert_int_equal(net_key_load(path, &k2), 0);
	assert_memory_equal(&k1, &k2, sizeof(k1));

	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(net_key_load(path, &k2), -EPERM);
	assert_non_null(strstr(dm_last_error(), "chmod 600"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(net_key_load(path, &k2), -EPERM);
	assert_int_equal(chmod(path, 0600), 0);

	static const char *const malformed[] = {
		"",
		"abcd\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nx",
	};
	snprintf(bad, sizeof(bad), "%s/bad", tmpdir);
	for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
		unlink(bad);
		int fd = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, malformed[i], strlen(malformed[i])), 0);
		close(fd);
		assert_int_equal(net_key_load(bad, &k2), -EBADMSG);
	}
	/* Upper case and CRLF are fine. */
	unlink(bad);
	int fd = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const char *ok = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
	assert_int_equal(write_all(fd, ok, strlen(ok)), 0);
	close(fd);
	assert_int_equal(net_key_load(bad, &k2), 0);
	assert_int_equal(k2.bytes[7], 0xef);
	assert_int_equal(net_key_load("/nonexistent/key", &k2), -ENOENT);
}

static void test_parse_addr(void **state)
{
	static const struct {
		const char *in;
		const char *host;
		int port; /* -1: must fail */
	} cases[] = {
		{ "hostB", "hostB", 7070 },
		{ "hostB:7071", "hostB", 7071 },
		{ "10.0.0.1:1", "10.0.0.1", 1 },
		{ "[::1]:7070", "::1", 7070 },
		{ "[fe80::1%eth0]:9", "fe80::1%eth0", 9 },
		{ "[::1]", "::1", 7070 },
		{ "::1", "::1", 7070 },
		{ "127.0.0.1:0", "127.0.0.1", 0 },
		{ "", NULL, -1 },
		{ ":7070", NULL, -1 },
		{ "host:", NULL, -1 },
		{ "host:65536", NULL, -1 },
		{ "host:-1", NULL, -1 },
		{ "host:12x", NULL, -1 },
		{ "[::1", NULL, -1 },
		{ "[]:80", NULL, -1 },
		{ "[::1]x", NULL, -1 },
		{ "[::1]:", NULL, -1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *host = NULL;
		uint16_t port = 0;
		int r = net_parse_addr(cases[i].in, NET_DEFAULT_PORT, &host, &port);
		if (cases[i].port < 0) {
			if (r != -EINVAL)
				print_error("'%s' accepted\n", cases[i].in);
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
		free(host);
	}
}

/* ---- round trips ------------------------------------------------------------------- */

static void roundtrip(bool insecure)
{
	struct net_chan_stats st;
	struct pair p;
	struct net_frame f;
	void *buf;

	pair_open(&p, insecure);
	assert_int_equal(net_chan_is_secure(p.cli), !insecure);
	assert_int_equal(net_chan_role(p.srv), NET_ROLE_CONTROL);
	assert_memory_equal(net_chan_session(p.srv), net_chan_session(p.cli), NET_SESSION_LEN);
	assert_int_equal(net_chan_version(p.srv), NET_PROTO_VERSION);
	assert_int_equal(net_chan_version(p.cli), NET_PROTO_VERSION);
	assert_true(net_chan_peer_has_feature(p.srv, "pages-v1"));
	assert_false(net_chan_peer_has_feature(p.cli, "nope"));
	assert_non_null(strstr(net_chan_peer(p.srv), "127.0.0.1:"));

	/* a protobuf message each way */
	Dm__Hello m = DM__HELLO__INIT;
	m.version = 42;
	m.role = (char *)"payload";
	assert_int_equal(net_send_msg(p.cli, NET_T_MIGRATE, &m.base), 0);
	ProtobufCMessage *got;
	assert_int_equal(net_recv_msg(p.srv, NET_T_MIGRATE, &dm__hello__descriptor, &got), 0);
	assert_int_equal(((Dm__Hello *)got)->version, 42);
	assert_string_equal(((Dm__Hello *)got)->role, "payload");
	protobuf_c_message_free_unpacked(got, NULL);

	/* an empty frame, and a wrong type, which leaves the channel usable */
	assert_int_equal(net_send_frame(p.srv, NET_T_RAW, NULL, 0), 0);
	assert_int_equal(net_recv_msg(p.cli, NET_T_MIGRATE, &dm__hello__descriptor, &got), -EBADMSG);
	assert_int_equal(net_send_frame(p.srv, NET_T_RAW, "hi", 2), 0);
	assert_int_equal(net_recv_frame(p.cli, 16, &f, &buf), 0);
	assert_int_equal(f.type, NET_T_RAW);
	assert_int_equal(f.len, 2);
	assert_string_equal(buf, "hi");
	free(buf);
	/* too big for the caller: skipped, still usable */
	assert_int_equal(net_send_frame(p.srv, NET_T_RAW, "0123456789", 10), 0);
	assert_int_equal(net_recv_frame(p.cli, 4, &f, &buf), -EBADMSG);
	/* undecodable protobuf */
	assert_int_equal(net_send_frame(p.srv, NET_T_MIGRATE, "\xff\xff\xff", 3), 0);
	assert_int_equal(net_recv_msg(p.cli, NET_T_MIGRATE, &dm__hello__descriptor, &got), -EBADMSG);
	assert_int_equal(net_send_frame(p.srv, NET_T_RAW, "ok", 2), 0);
	assert_int_equal(net_recv_frame(p.cli, 16, &f, &buf), 0);
	free(buf);

	/* pages: header + data gathered from two buffers */
	uint8_t *pg = xmalloc(3 * 4096);
	for (size_t i = 0; i < 3 * 4096; i++)
		pg[i] = (uint8_t)(i * 7);
	struct iovec iov[2] = { { pg, 4096 }, { pg + 4096, 2 * 4096 } };
	assert_int_equal(net_send_pages(p.cli, 5, 0x7f0000001000, 3, 9, iov, 2), 0);
	assert_int_equal(net_send_pages(p.cli, 5, 0x7f0000001001, 3, 0, iov, 2), -EINVAL);
	assert_int_equal(net_send_pages(p.cli, 5, 0x7f0000001000, 2, 0, iov, 2), -EINVAL);
	struct net_wire_pages ph;
	assert_int_equal(net_recv_hdr(p.srv, &f), 0);
	assert_int_equal(f.type, NET_T_PAGES);
	assert_int_equal(net_recv_pages_hdr(p.srv, &f, &ph), 0);
	assert_int_equal(ph.addr, 0x7f0000001000);
	assert_int_equal(ph.npages, 3);
	assert_int_equal(ph.space, 5);
	assert_int_equal(ph.flags, 9);
	uint8_t *dst = xcalloc(3, 4096);
	assert_int_equal(net_recv_hdr(p.srv, &f), -EINVAL); /* payload not consumed yet */
	assert_int_equal(net_recv_body(p.srv, dst, 4 * 4096), -EINVAL);
	assert_int_equal(net_recv_body(p.srv, dst, 3 * 4096), 0);
	assert_memory_equal(dst, pg, 3 * 4096);
	free(pg);
	free(dst);

	net_chan_get_stats(p.cli, &st);
	assert_int_equal(st.frames_sent, 3); /* Hello, message, pages */
	assert_true(st.bytes_sent > 16 * 2 + 3 * 4096);
	if (insecure)
		assert_int_equal(st.wire_sent, st.bytes_sent);
	else
		assert_true(st.wire_sent > st.bytes_sent); /* TLS records + handshake */
	assert_int_equal(st.frames_recv, 6);

	/* an orderly close: the peer sees -EPIPE at a frame boundary */
	net_chan_close(p.cli);
	p.cli = NULL;
	assert_int_equal(net_recv_hdr(p.srv, &f), -EPIPE);
	assert_int_equal(net_recv_hdr(p.srv, &f), -EPIPE); /* sticky */
	pair_close(&p);
}

static void test_roundtrip_tls(void **state) { roundtrip(false); }
static void test_roundtrip_insecure(void **state) { roundtrip(true); }

/* ---- 64 MiB in one frame, both directions at once ------------------------------------ */

#define BIG (64u << 20)

struct bigxfer {
	struct net_chan *c;
	uint8_t *src, *dst;
	int send_r, recv_r;
	pthread_t thread;
};

static void *big_sender(void *p)
{
	struct bigxfer *x = p;
	/* four pieces, so that gathering is exercised */
	struct iovec iov[4];
	for (int i = 0; i < 4; i++)
		iov[i] = (struct iovec){ x->src + i * (BIG / 4), BIG / 4 };
	x->send_r = net_send_framev(x->c, NET_T_RAW, iov, 4);
	return NULL;
}

static void big_receive(struct bigxfer *x)
{
	struct net_frame f;
	struct iovec iov[3] = {
		{ x->dst, 1 }, { x->dst + 1, BIG / 2 }, { x->dst + 1 + BIG / 2, BIG / 2 - 1 }
	};

	x->recv_r = net_recv_hdr(x->c, &f);
	if (x->recv_r == 0)
		x->recv_r = f.len == BIG ? net_recv_bodyv(x->c, iov, 3) : -EBADMSG;
}

static void *big_receiver(void *p)
{
	big_receive(p);
	return NULL;
}

static void big(bool insecure)
{
	struct bigxfer a, b; /* a: client sends, server receives; b: the reverse */
	struct pair p;
	uint64_t t0;

	pair_open(&p, insecure);
	a = (struct bigxfer){ .c = p.cli, .src = xmalloc(BIG), .dst = xmalloc(BIG) };
	b = (struct bigxfer){ .c = p.srv, .src = xmalloc(BIG), .dst = xmalloc(BIG) };
	for (size_t i = 0; i < BIG / 8; i++) {
		((uint64_t *)a.src)[i] = i * 0x9e3779b97f4a7c15ULL;
		((uint64_t *)b.src)[i] = ~i * 0x9e3779b97f4a7c15ULL;
	}

	/* each channel: one thread sends, another receives (full duplex) */
	struct bigxfer ra = { .c = p.srv, .dst = a.dst }, rb = { .c = p.cli, .dst = b.dst };
	pthread_t t_ra, t_rb;
	t0 = clock_ns();
	pthread_create(&a.thread, NULL, big_sender, &a);
	pthread_create(&b.thread, NULL, big_sender, &b);
	pthread_create(&t_ra, NULL, big_receiver, &ra);
	pthread_create(&t_rb, NULL, big_receiver, &rb);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	pthread_join(t_ra, NULL);
	pthread_join(t_rb, NULL);
	print_message("    2 x 64 MiB (%s) in %.0f ms\n", insecure ? "plain" : "TLS",
		      ns_to_ms(t0, clock_ns()));
	assert_int_equal(a.send_r, 0);
	assert_int_equal(b.send_r, 0);
	assert_int_equal(ra.recv_r, 0);
	assert_int_equal(rb.recv_r, 0);
	assert_memory_equal(a.src, a.dst, BIG);
	assert_memory_equal(b.src, b.dst, BIG);

	/* the largest page batch */
	struct iovec iov = { a.src, NET_PAGES_MAX * 4096 };
	assert_true(NET_PAGES_MAX >= BIG / 4096);
	assert_int_equal(net_send_pages(p.cli, 1, 0, NET_PAGES_MAX + 1, 0, &iov, 1), -EINVAL);

	free(a.src);
	free(a.dst);
	free(b.src);
	free(b.dst);
	pair_close(&p);
}

static void test_big_tls(void **state) { big(false); }
static void test_big_insecure(void **state) { big(true); }

/* ---- many small frames, both directions, two senders per side ---------------------- */

#define SMALL_N 20000

struct small {
	struct net_chan *c;
	uint32_t base; /* sender id in the top bits */
	int r;
};

static void *small_sender(void *p)
{
	struct small *s = p;
	for (uint32_t i = 0; i < SMALL_N && s->r == 0; i++) {
		uint32_t v[3] = { s->base | i, i * 3, ~i };
		s->r = net_send_frame(s->c, NET_T_RAW, v, 4 + (i % 3) * 4);
	}
	return NULL;
}

struct small_rx {
	struct net_chan *c;
	int r;
	uint32_t next[2]; /* per sender: frames keep their order */
};

static void *small_receiver(void *p)
{
	struct small_rx *x = p;
	for (int i = 0; i < 2 * SMALL_N && x->r == 0; i++) {
		struct net_frame f;
		uint32_t v[3] = { 0 };
		x->r = net_recv_hdr(x->c, &f);
		if (x->r == 0 && (f.len < 4 || f.len > 12))
			x->r = -EBADMSG;
		if (x->r == 0)
			x->r = net_recv_body(x->c, v, f.len);
		if (x->r == 0) {
			uint32_t who = v[0] >> 31, n = v[0] & 0x7fffffff;
			if (n != x->next[who] || f.len != 4 + (n % 3) * 4)
				x->r = -EILSEQ;
			if (f.len >= 8 && v[1] != n * 3)
				x->r = -EILSEQ;
			x->next[who]++;
		}
	}
	return NULL;
}

static void small(bool insecure)
{
	struct pair p;
	struct small s[4];
	struct small_rx rx[2];
	pthread_t ts[4], tr[2];
	uint64_t t0;

	pair_open(&p, insecure);
	t0 = clock_ns();
	for (int i = 0; i < 4; i++) {
		s[i] = (struct small){ .c = i < 2 ? p.cli : p.srv, .base = (uint32_t)(i & 1) << 31 };
		pthread_create(&ts[i], NULL, small_sender, &s[i]);
	}
	for (int i = 0; i < 2; i++) {
		rx[i] = (struct small_rx){ .c = i == 0 ? p.srv : p.cli };
		pthread_create(&tr[i], NULL, small_receiver, &rx[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(ts[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(tr[i], NULL);
	print_message("    4 x %d small frames (%s) in %.0f ms\n", SMALL_N,
		      insecure ? "plain" : "TLS", ns_to_ms(t0, clock_ns()));
	for (int i = 0; i < 4; i++)
		assert_int_equal(s[i].r, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rx[i].r, 0);
		assert_int_equal(rx[i].next[0], SMALL_N);
		assert_int_equal(rx[i].next[1], SMALL_N);
	}
	struct net_chan_stats st;
	net_chan_get_stats(p.srv, &st);
	assert_int_equal(st.frames_recv, 1 + 2 * SMALL_N);
	assert_int_equal(st.frames_sent, 1 + 2 * SMALL_N);
	pair_close(&p);
}

static void test_small_tls(void **state) { small(false); }
static void test_small_insecure(void **state) { small(true); }

/* ---- authentication and mode mismatches ----------------------------------------------- */

static void test_wrong_key(void **state)
{
	struct net_ctx *sctx, *cctx;
	struct net_listener *l;
	struct net_chan *c = NULL;
	struct acceptor a;
	char addr[64];
	uint64_t t0;

	assert_int_equal(make_ctx(false, &key_a, 0, &sctx), 0);
	assert_int_equal(make_ctx(false, &key_b, 0, &cctx), 0);
	assert_int_equal(net_listen(sctx, "127.0.0.1:0", &l), 0);
	accept_start(&a, l);
	t0 = clock_ns();
	int r = net_connect(cctx, addr_of(l, addr), NET_ROLE_CONTROL, NULL, &c);
	double ms = ns_to_ms(t0, clock_ns());
	print_message("    client: %s (%.1f ms)\n", dm_last_error(), ms);
	accept_join(&a);
	print_message("    server: %s (%.1f ms)\n", a.err, a.ns / 1e6);
	assert_int_equal(r, -EKEYREJECTED);
	assert_int_equal(a.r, -EKEYREJECTED);
	assert_null(c);
	assert_null(a.c);
	assert_true(ms < 1000);
	assert_true(a.ns < 1000000000ULL);

	/* the listener carries on */
	net_ctx_unref(cctx);
	assert_int_equal(make_ctx(false, &key_a, 0, &cctx), 0);
	accept_start(&a, l);
	assert_int_equal(net_connect(cctx, addr, NET_ROLE_CONTROL, NULL, &c), 0);
	accept_join(&a);
	assert_int_equal(a.r, 0);
	net_chan_close(a.c);
	net_chan_close(c);
	net_listener_free(l);
	net_ctx_unref(sctx);
	net_ctx_unref(cctx);
}

static void mode_mismatch(bool server_insecure)
{
	struct net_ctx *sctx, *cctx;
	struct net_listener *l;
	struct net_chan *c = NULL;
	struct acceptor a;
	char addr[64];
	uint64_t t0 = clock_ns();

	assert_int_equal(make_ctx(server_insecure, &key_a, 0, &sctx), 0);
	assert_int_equal(make_ctx(!server_insecure, &key_a, 0, &cctx), 0);
	assert_int_equal(net_listen(sctx, "127.0.0.1:0", &l), 0);
	accept_start(&a, l);
	int r = net_connect(cctx, addr_of(l, addr), NET_ROLE_CONTROL, NULL, &c);
	print_message("    client: %s\n", dm_last_error());
	accept_join(&a);
	print_message("    server: %s\n", a.err);
	assert_true(r < 0);
	assert_int_equal(a.r, -EPROTO);
	assert_true(ns_to_ms(t0, clock_ns()) < 1000);
	net_listener_free(l);
	net_ctx_unref(sctx);
	net_ctx_unref(cctx);
}

static void test_tls_client_insecure_server(void **state) { mode_mismatch(true); }
static void test_insecure_client_tls_server(void **state) { mode_mismatch(false); }

/* ---- hostile frames after the handshake -------------------------------------------------- */

static void hostile(void (*inject)(int fd), int expect, const char *what)
{
	struct pair p;
	struct net_frame f;

	pair_open(&p, true);
	/* The client's next frame number is 1 (after its Hello). */
	inject(net_chan_fd(p.cli));
	int r = net_recv_hdr(p.srv, &f);
	if (r == 0) {
		uint8_t buf[64];
		r = net_recv_body(p.srv, buf, MIN((size_t)f.len, sizeof(buf)));
	}
	print_message("    %-14s -> %s\n", what, dm_last_error());
	assert_int_equal(r, expect);
	/* the channel is dead from now on, without hanging */
	assert_int_equal(net_recv_hdr(p.srv, &f), expect);
	pair_close(&p);
}

static void inj_garbage(int fd)
{
	uint8_t g[256];
	for (size_t i = 0; i < sizeof(g); i++)
		g[i] = (uint8_t)(i * 131 + 17);
	assert_int_equal(write_all(fd, g, sizeof(g)), 0);
}
static void inj_magic(int fd) { raw_frame(fd, 0x12345678, NET_T_RAW, 0, 0, 1, NULL, 0); }
static void inj_oversize(int fd) { raw_frame(fd, NET_MAGIC, NET_T_RAW, 0, NET_FRAME_MAX + 1, 1, NULL, 0); }
static void inj_huge(int fd) { raw_frame(fd, NET_MAGIC, NET_T_RAW, 0, 0xffffffff, 1, NULL, 0); }
static void inj_flags(int fd) { raw_frame(fd, NET_MAGIC, NET_T_RAW, 0x8000, 0, 1, NULL, 0); }
static void inj_seq(int fd) { raw_frame(fd, NET_MAGIC, NET_T_RAW, 0, 0, 7, NULL, 0); }
static void inj_type0(int fd) { raw_frame(fd, NET_MAGIC, 0, 0, 0, 1, NULL, 0); }
static void inj_trunc_hdr(int fd)
{
	assert_int_equal(write_all(fd, "DMNF\x03", 5), 0);
	shutdown(fd, SHUT_WR);
}
static void inj_trunc_body(int fd)
{
	raw_frame(fd, NET_MAGIC, NET_T_RAW, 0, 100, 1, "0123456789", 10);
	shutdown(fd, SHUT_WR);
}
static void inj_tls_bytes(int fd)
{
	assert_int_equal(write_all(fd, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00", 16), 0);
}

static void test_hostile_frames(void **state)
{
	hostile(inj_garbage, -EBADMSG, "garbage");
	hostile(inj_magic, -EBADMSG, "wrong magic");
	hostile(inj_oversize, -EBADMSG, "oversized");
	hostile(inj_huge, -EBADMSG, "4 GiB length");
	hostile(inj_flags, -EBADMSG, "unknown flags");
	hostile(inj_seq, -EBADMSG, "sequence");
	hostile(inj_type0, -EBADMSG, "type 0");
	hostile(inj_trunc_hdr, -EBADMSG, "cut header");
	hostile(inj_trunc_body, -EBADMSG, "cut payload");
	hostile(inj_tls_bytes, -EPROTO, "TLS bytes");
}

static void test_hostile_pages(void **state)
{
	struct pair p;
	struct net_frame f;
	struct net_wire_pages ph = { .addr = htole64(0x1001), .npages = htole32(1) };
	uint8_t page[4096] = { 0 };

	pair_open(&p, true);
	int fd = net_chan_fd(p.cli);
	/* unaligned address */
	raw_frame(fd, NET_MAGIC, NET_T_PAGES, 0, sizeof(ph) + 4096, 1, &ph, sizeof(ph));
	assert_int_equal(write_all(fd, page, sizeof(page)), 0);
	/* npages does not match the length */
	ph.addr = htole64(0x1000);
	ph.npages = htole32(2);
	raw_frame(fd, NET_MAGIC, NET_T_PAGES, 0, sizeof(ph) + 4096, 2, &ph, sizeof(ph));
	assert_int_equal(write_all(fd, page, sizeof(page)), 0);
	/* address range wraps */
	ph.addr = htole64(0xfffffffffffff000ULL);
	ph.npages = htole32(2);
	raw_frame(fd, NET_MAGIC, NET_T_PAGES, 0, sizeof(ph) + 8192, 3, &ph, sizeof(ph));
	assert_int_equal(write_all(fd, page, sizeof(page)), 0);
	assert_int_equal(write_all(fd, page, sizeof(page)), 0);
	/* shorter than its header */
	raw_frame(fd, NET_MAGIC, NET_T_PAGES, 0, 8, 4, &ph, 8);
	/* then a good one */
	ph.npages = htole32(1);
	ph.addr = htole64(0x2000);
	page[0] = 0xaa;
	raw_frame(fd, NET_MAGIC, NET_T_PAGES, 0, sizeof(ph) + 4096, 5, &ph, sizeof(ph));
	assert_int_equal(write_all(fd, page, sizeof(page)), 0);

	for (int i = 0; i < 3; i++) {
		assert_int_equal(net_recv_hdr(p.srv, &f), 0);
		assert_int_equal(net_recv_pages_hdr(p.srv, &f, &ph), -EBADMSG);
		print_message("    %s\n", dm_last_error());
	}
	assert_int_equal(net_recv_hdr(p.srv, &f), 0);
	assert_int_equal(net_recv_pages_hdr(p.srv, &f, &ph), -EBADMSG);
	assert_int_equal(net_skip_body(p.srv), 0);
	assert_int_equal(net_recv_hdr(p.srv, &f), 0);
	assert_int_equal(net_recv_pages_hdr(p.srv, &f, &ph), 0);
	assert_int_equal(ph.addr, 0x2000);
	assert_int_equal(net_recv_body(p.srv, page, sizeof(page)), 0);
	assert_int_equal(page[0], 0xaa);
	pair_close(&p);
}

/* Bytes that break TLS records: an error on the receiving side, never a hang. */
static void test_hostile_tls_records(void **state)
{
	struct pair p;
	struct net_frame f;

	pair_open(&p, false);
	inj_garbage(net_chan_fd(p.cli));
	int r = net_recv_hdr(p.srv, &f);
	print_message("    %s\n", dm_last_error());
	assert_int_equal(r, -EPROTO);
	assert_int_equal(net_recv_hdr(p.srv, &f), -EPROTO);
	pair_close(&p);
}

/* ---- hostile or silent peers during the handshake -------------------------------------- */

static void test_handshake_garbage(void **state)
{
	struct net_ctx *ctx;
	struct net_listener *l;
	struct acceptor a;

	for (int insecure = 0; insecure < 2; insecure++) {
		assert_int_equal(make_ctx(insecure, &key_a, 0, &ctx), 0);
		assert_int_equal(net_listen(ctx, "127.0.0.1:0", &l), 0);
		accept_start(&a, l);
		int fd = raw_connect(net_listener_port(l));
		inj_garbage(fd);
		accept_join(&a);
		print_message("    %s: %s (%.1f ms)\n", insecure ? "plain" : "TLS", a.err, a.ns / 1e6);
		assert_true(a.r == -EPROTO || a.r == -EBADMSG);
		assert_true(a.ns < 1000000000ULL);
		close(fd);
		net_listener_free(l);
		net_ctx_unref(ctx);
	}
}

static void test_handshake_silent_client(void **state)
{
	struct net_ctx *ctx;
	struct net_listener *l;
	struct acceptor a;

	for (int insecure = 0; insecure < 2; insecure++) {
		assert_int_equal(make_ctx(insecure, &key_a, 300, &ctx), 0);
		assert_int_equal(net_listen(ctx, "127.0.0.1:0", &l), 0);
		accept_start(&a, l);
		int fd = raw_connect(net_listener_port(l));
		accept_join(&a);
		print_message("    %s: %s (%.1f ms)\n", insecure ? "plain" : "TLS", a.err, a.ns / 1e6);
		assert_int_equal(a.r, -ETIMEDOUT);
		assert_true(a.ns >= 290000000ULL && a.ns < 1500000000ULL);
		close(fd);
		net_listener_free(l);
		net_ctx_unref(ctx);
	}
	/* nobody connects at all */
	assert_int_equal(make_ctx(false, &key_a, 0, &ctx), 0);
	assert_int_equal(net_listen(ctx, "127.0.0.1:0", &l), 0);
	struct net_chan *c;
	assert_int_equal(net_accept(l, 50, &c), -ETIMEDOUT);
	net_listener_free(l);
	net_ctx_unref(ctx);
}

/*
 * net_accept_next: silent clients from one address hold only their own
 * handshakes; one more from that address is closed at once, and a client
 * from another address gets its channel while the silent ones wait.
 */
struct connector {
	struct net_ctx *ctx;
	char addr[64];
	pthread_t thread;
	int r;
	struct net_chan *c;
	char err[1024];
};

static void *connect_thread(void *p)
{
	struct connector *k = p;
	k->r = net_connect(k->ctx, k->addr, NET_ROLE_CONTROL, NULL, &k->c);
	snprintf(k->err, sizeof(k->err), "%s", dm_last_error());
	return NULL;
}

static int raw_connect_from(uint16_t port, const char *from)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(inet_pton(AF_INET, from, &src.sin_addr), 1);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* the server closed fd: EOF or a reset (waits up to 30 s for it) */
static bool closed_by_server(int fd, int wait_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;
	if (poll(&p, 1, wait_ms) <= 0)
		return false;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN);
}

static void test_handshake_limits(void **state)
{
	struct net_config cfg = { .handshake_timeout_ms = 60000, .handshakes_per_addr = 2 };
	struct net_ctx *ctx;
	struct net_listener *l;
	struct net_chan *c = NULL;
	struct connector k = { 0 };
	int silent[2], extra;

	for (int insecure = 0; insecure < 2; insecure++) {
		cfg.insecure = insecure;
		assert_int_equal(net_ctx_new(&cfg, insecure ? NULL : &key_a, &ctx), 0);
		assert_int_equal(net_listen(ctx, "127.0.0.1:0", &l), 0);
		for (int i = 0; i < 2; i++)
			silent[i] = raw_connect_from(net_listener_port(l), "127.0.0.2");
		extra = raw_connect_from(net_listener_port(l), "127.0.0.2");
		/* all three are accepted here; the third over the limit */
		assert_int_equal(net_accept_next(l, 300, &c), -ETIMEDOUT);
		assert_true(closed_by_server(extra, 30000));
		for (int i = 0; i < 2; i++)
			assert_false(closed_by_server(silent[i], 0));
		/* a client from another address is served meanwhile */
		assert_int_equal(make_ctx(insecure, &key_a, 30000, &k.ctx), 0);
		addr_of(l, k.addr);
		assert_int_equal(pthread_create(&k.thread, NULL, connect_thread, &k), 0);
		int r = net_accept_next(l, 30000, &c);
		pthread_join(k.thread, NULL);
		if (r < 0 || k.r < 0)
			print_error("accept %d: %s / connect %d: %s\n", r, dm_last_error(), k.r, k.err);
		assert_int_equal(r, 0);
		assert_int_equal(k.r, 0);
		assert_int_equal(net_chan_role(c), NET_ROLE_CONTROL);
		for (int i = 0; i < 2; i++)
			assert_false(closed_by_server(silent[i], 0));
		net_chan_close(c);
		net_chan_close(k.c);
		net_ctx_unref(k.ctx);
		/* freeing the listener ends the silent handshakes */
		net_listener_free(l);
		for (int i = 0; i < 2; i++) {
			assert_true(closed_by_server(silent[i], 30000));
			close(silent[i]);
		}
		close(extra);
		net_ctx_unref(ctx);
	}
}

static void test_handshake_silent_server(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct net_ctx *ctx;
	struct net_chan *c = NULL;
	char addr[64];

	/* A TCP listener that never accepts: the kernel completes the TCP
	 * handshake, then nothing answers. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	for (int insecure = 0; insecure < 2; insecure++) {
		assert_int_equal(make_ctx(insecure, &key_a, 300, &ctx), 0);
		uint64_t t0 = clock_ns();
		assert_int_equal(net_connect(ctx, addr, NET_ROLE_CONTROL, NULL, &c), -ETIMEDOUT);
		double ms = ns_to_ms(t0, clock_ns());
		print_message("    %s: %s (%.1f ms)\n", insecure ? "plain" : "TLS", dm_last_error(), ms);
		assert_true(ms >= 290 && ms < 1500);
		net_ctx_unref(ctx);
	}
	close(lfd);

	/* nothing listens at all */
	assert_int_equal(make_ctx(false, &key_a, 0, &ctx), 0);
	assert_int_equal(net_connect(ctx, addr, NET_ROLE_CONTROL, NULL, &c), -ECONNREFUSED);
	net_ctx_unref(ctx);
}

/* ---- versions --------------------------------------------------------------------------- */

static void test_version_mismatch(void **state)
{
	uint8_t session[NET_SESSION_LEN] = { 1, 2, 3 };
	struct net_ctx *ctx;
	struct net_listener *l;
	struct acceptor a;

	/* a future client that speaks only version 99 */
	assert_int_equal(make_ctx(true, NULL, 0, &ctx), 0);
	assert_int_equal(net_listen(ctx, "127.0.0.1:0", &l), 0);
	accept_start(&a, l);
	int fd = raw_connect(net_listener_port(l));
	raw_hello(fd, 99, "control", session, 0);
	Dm__Hello *reply = raw_read_hello(fd);
	accept_join(&a);
	print_message("    server: %s\n", a.err);
	assert_int_equal(a.r, -EPROTONOSUPPORT);
	assert_non_null(reply);
	assert_int_equal(reply->version, NET_PROTO_VERSION);
	assert_non_null(reply->error);
	assert_non_null(strstr(reply->error, "no protocol version in common"));
	dm__hello__free_unpacked(reply, NULL);
	close(fd);
	net_listener_free(l);

	/* a future server that speaks only version 99 */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));

	/* The fake server answers from a thread-free trick: the client's
	 * Hello lands in the socket buffer, our reply is read after. */
	int cfd = -1;
	struct net_chan *c = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cfd = accept(lfd, NULL, NULL);
		Dm__Hello *h = raw_read_hello(cfd);
		raw_hello(cfd, 99, h ? h->role : "x", h ? h->session.data : session, 0);
		char b;
		(void)read(cfd, &b, 1); /* until the client closes */
		_exit(0);
	}
	int r = net_connect(ctx, addr, NET_ROLE_CONTROL, NULL, &c);
	print_message("    client: %s\n", dm_last_error());
	assert_int_equal(r, -EPROTONOSUPPORT);
	waitpid(pid, NULL, 0);
	close(lfd);
	net_ctx_unref(ctx);
}

/* ---- sessions ------------------------------------------------------------------------------ */

static int connect_role(struct net_ctx *cctx, struct net_listener *l, enum net_role role,
			const uint8_t *session, struct net_chan **ret_cli, struct acceptor *a)
{
	char addr[64];
	accept_start(a, l);
	int r = net_connect(cctx, addr_of(l, addr), role, session, ret_cli);
	accept_join(a);
	return r;
}

static void test_sessions(void **state)
{
	struct net_ctx *sctx, *cctx;
	struct net_listener *l;
	struct net_chan *ctl, *fault, *bulk, *x = NULL, *ctl2;
	struct acceptor a;
	struct net_chan *s_ctl, *s_fault, *s_bulk, *s_ctl2;
	uint8_t bogus[NET_SESSION_LEN];

	assert_int_equal(make_ctx(false, &key_a, 0, &sctx), 0);
	assert_int_equal(make_ctx(false, &key_a, 0, &cctx), 0);
	assert_int_equal(net_listen(sctx, "127.0.0.1:0", &l), 0);

	assert_int_equal(net_connect(cctx, "127.0.0.1:1", NET_ROLE_FAULT, NULL, &x), -EINVAL);

	assert_int_equal(connect_role(cctx, l, NET_ROLE_CONTROL, NULL, &ctl, &a), 0);
	s_ctl = a.c;
	const uint8_t *sess = net_chan_session(ctl);
	assert_int_equal(connect_role(cctx, l, NET_ROLE_FAULT, sess, &fault, &a), 0);
	s_fault = a.c;
	assert_int_equal(connect_role(cctx, l, NET_ROLE_BULK, sess, &bulk, &a), 0);
	s_bulk = a.c;
	assert_int_equal(net_chan_role(s_fault), NET_ROLE_FAULT);
	assert_int_equal(net_chan_role(s_bulk), NET_ROLE_BULK);
	assert_memory_equal(net_chan_session(s_fault), sess, NET_SESSION_LEN);
	assert_memory_equal(net_chan_session(s_bulk), sess, NET_SESSION_LEN);

	/* a second migration gets its own session */
	assert_int_equal(connect_role(cctx, l, NET_ROLE_CONTROL, NULL, &ctl2, &a), 0);
	s_ctl2 = a.c;
	assert_memory_not_equal(net_chan_session(ctl2), sess, NET_SESSION_LEN);

	/* unknown session: refused, with the reason on both sides */
	memset(bogus, 0x5a, sizeof(bogus));
	assert_int_equal(connect_role(cctx, l, NET_ROLE_BULK, bogus, &x, &a), -ECONNREFUSED);
	print_message("    client: %s\n    server: %s\n", dm_last_error(), a.err);
	assert_non_null(strstr(dm_last_error(), "unknown session"));
	assert_int_equal(a.r, -ENOENT);
	/* a control channel cannot take over a live session */
	assert_int_equal(connect_role(cctx, l, NET_ROLE_CONTROL, sess, &x, &a), -ECONNREFUSED);
	assert_int_equal(a.r, -EEXIST);

	/* The session lives while any of its channels does. */
	uint8_t saved[NET_SESSION_LEN];
	memcpy(saved, sess, sizeof(saved));
	net_chan_close(s_ctl);
	net_chan_close(ctl);
	assert_int_equal(connect_role(cctx, l, NET_ROLE_ROOTFS, saved, &x, &a), 0);
	net_chan_close(a.c);
	net_chan_close(x);
	net_chan_close(s_fault);
	net_chan_close(s_bulk);
	net_chan_close(fault);
	net_chan_close(bulk);
	assert_int_equal(connect_role(cctx, l, NET_ROLE_FAULT, saved, &x, &a), -ECONNREFUSED);
	assert_int_equal(a.r, -ENOENT);

	/* channels outlive their listener */
	net_listener_free(l);
	assert_int_equal(net_send_frame(ctl2, NET_T_RAW, "x", 1), 0);
	struct net_frame f;
	assert_int_equal(net_recv_hdr(s_ctl2, &f), 0);
	assert_int_equal(net_skip_body(s_ctl2), 0);
	net_chan_close(s_ctl2);
	net_chan_close(ctl2);
	net_ctx_unref(sctx);
	net_ctx_unref(cctx);
}

/* ---- timeouts, shutdown, IPv6 ----------------------------------------------------------------- */

struct blocked {
	struct net_chan *c;
	int r;
	uint64_t ns;
};

static void *blocked_reader(void *p)
{
	struct blocked *b = p;
	struct net_frame f;
	uint64_t t0 = clock_ns();
	b->r = net_recv_hdr(b->c, &f);
	b->ns = clock_ns() - t0;
	return NULL;
}

static void test_shutdown_and_timeout(void **state)
{
	for (int insecure = 0; insecure < 2; insecure++) {
		struct pair p;
		struct blocked b;
		pthread_t t;
		struct net_frame f;

		pair_open(&p, insecure);
		/* a reader waiting forever is woken by net_chan_shutdown() */
		net_chan_set_timeout(p.srv, -1);
		b = (struct blocked){ .c = p.srv };
		pthread_create(&t, NULL, blocked_reader, &b);
		usleep(100 * 1000);
		net_chan_shutdown(p.srv);
		pthread_join(t, NULL);
		assert_int_equal(b.r, -ECANCELED);
		assert_true(b.ns < 1000000000ULL);
		assert_int_equal(net_send_frame(p.srv, NET_T_RAW, "x", 1), -ECANCELED);

		/* an idle peer: -ETIMEDOUT after the inactivity timeout */
		net_chan_set_timeout(p.cli, 200);
		uint64_t t0 = clock_ns();
		int r = net_recv_hdr(p.cli, &f);
		double ms = ns_to_ms(t0, clock_ns());
		/* the server side was shut down: the client may see its EOF first */
		assert_true(r == -EPIPE || r == -ETIMEDOUT);
		pair_close(&p);

		pair_open(&p, insecure);
		net_chan_set_timeout(p.cli, 200);
		t0 = clock_ns();
		r = net_recv_hdr(p.cli, &f);
		ms = ns_to_ms(t0, clock_ns());
		print_message("    %s: %s (%.0f ms)\n", insecure ? "plain" : "TLS", dm_last_error(), ms);
		assert_int_equal(r, -ETIMEDOUT);
		assert_true(ms >= 190 && ms < 1000);
		pair_close(&p);
	}
}

/*
 * The peer says why and closes while we are still sending (the rootfs
 * receiver's DONE with its error, then its channels shut down): our
 * sends fail (the peer resets the connection once our data reaches its
 * closed socket), but what it said before closing is still ours to read;
 * after it, the end of the channel.
 */
static void reason_then_reset(bool insecure)
{
	static char chunk[64 << 10];
	struct pair p;
	struct net_frame f;
	void *buf = NULL;
	int r = 0;

	pair_open(&p, insecure);
	net_chan_set_timeout(p.cli, 2000);
	assert_int_equal(net_send_frame(p.srv, NET_T_RAW, "no space", 8), 0);
	net_chan_shutdown(p.srv);
	/* a send after the peer's reset fails; give the reset time to come back */
	for (int i = 0; i < 200 && r >= 0; i++) {
		r = net_send_frame(p.cli, NET_T_RAW, chunk, sizeof(chunk));
		if (r >= 0)
			usleep(5000);
	}
	print_message("    %s: send: %s\n", insecure ? "plain" : "TLS", r < 0 ? dm_last_error() : "never failed");
	assert_true(r == -EPIPE || r == -ECONNRESET);
	/* the channel stays dead for sending */
	r = net_send_frame(p.cli, NET_T_RAW, "x", 1);
	assert_true(r == -EPIPE || r == -ECONNRESET);
	r = net_recv_frame(p.cli, 1024, &f, &buf);
	if (r < 0)
		print_error("recv after the failed send: %s\n", dm_last_error());
	assert_int_equal(r, 0);
	assert_int_equal(f.len, 8);
	assert_memory_equal(buf, "no space", 8);
	free(buf);
	buf = NULL;
	r = net_recv_frame(p.cli, 1024, &f, &buf);
	assert_true(r < 0);
	pair_close(&p);
}

static void test_reason_then_reset_tls(void **state) { reason_then_reset(false); }
static void test_reason_then_reset_insecure(void **state) { reason_then_reset(true); }

/*
 * The same between the hosts of a migration, with a watchdog (migrate/):
 * the destination gives up in a memory phase, says why on the control
 * channel (ABORT) and closes its data channel; the source's worker meets
 * the close there (EPIPE, ECONNRESET) and the watchdog fires for it.  It
 * shuts the data channel (the other workers stop) but leaves the control
 * channel, where the destination's reason is read (mig_peer_abort()) with
 * its code.  A deadline armed later still shuts the control channel.  The
 * source's phases read it so (source.c, src_peer_reason()); before, the
 * watchdog shut every channel and the reason was lost.
 */
struct worker_err {
	_Atomic int err;
};

static int worker_check(void *arg)
{
	return atomic_load(&((struct worker_err *)arg)->err);
}

static bool fired_within(struct mig_watchdog *w, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(&w->fired); i++)
		usleep(10000);
	return atomic_load(&w->fired);
}

static void abort_after_close(bool insecure)
{
	static char chunk[64 << 10];
	struct pair ctl, data;
	struct worker_err we = { 0 };
	struct mig_watchdog wd = { .check = worker_check, .check_arg = &we };
	struct net_frame f;
	void *buf = NULL;
	int r = 0;

	pair_open(&ctl, insecure);
	pair_open(&data, insecure);
	net_chan_set_timeout(data.cli, 2000);
	wd.chans[0] = ctl.cli;
	wd.chans[1] = data.cli;
	assert_int_equal(mig_watchdog_start(&wd), 0);
	/* the destination: its reason, then its data channel closed */
	assert_int_equal(mig_send_reply(ctl.srv, MIG_T_ABORT, false, -ENOSPC, "no space left for the pages", 0, NULL), 0);
	net_chan_shutdown(data.srv);
	/* the source's worker, sending pages */
	for (int i = 0; i < 200 && r >= 0; i++) {
		r = net_send_frame(data.cli, NET_T_RAW, chunk, sizeof(chunk));
		if (r >= 0)
			usleep(5000);
	}
	assert_true(mig_peer_closed(r));
	atomic_store(&we.err, r);
	assert_true(fired_within(&wd, 2000));
	/* the data channel is shut, its worker's error is the cause of what
	 * the shutdown does to the others */
	assert_int_equal(net_send_frame(data.cli, NET_T_RAW, "x", 1), -ECANCELED);
	assert_int_equal(mig_watchdog_error(&wd, -ECANCELED), r);
	/* the control channel still has the destination's word */
	dm_fail(-EPIPE, "ours");
	r = mig_peer_abort(ctl.cli, 2000);
	if (r >= 0)
		print_error("no ABORT read: %s\n", dm_last_error());
	assert_int_equal(r, -ENOSPC);
	assert_string_equal(dm_last_error(), "no space left for the pages");
	/* a deadline after it ends the control channel too */
	mig_watchdog_arm(&wd, "the peer", 100);
	usleep(600000);
	assert_int_equal(net_recv_frame(ctl.cli, 1024, &f, &buf), -ECANCELED);
	mig_watchdog_stop(&wd);
	pair_close(&data);
	pair_close(&ctl);
}

static void test_abort_after_close_tls(void **state) { abort_after_close(false); }
static void test_abort_after_close_insecure(void **state) { abort_after_close(true); }

/* mig_peer_abort() without an ABORT: a peer that closed the control channel
 * ends the wait at once, a silent one at the bound; the caller's error
 * message stays. */
static void test_peer_abort_none(void **state)
{
	struct pair p;
	uint64_t t;

	pair_open(&p, true);
	/* another frame first is passed over */
	assert_int_equal(mig_send_reply(p.srv, MIG_T_READY, true, 0, NULL, 0, NULL), 0);
	dm_fail(-EPIPE, "ours");
	t = clock_ns();
	assert_int_equal(mig_peer_abort(p.cli, 300), 0);
	assert_true(clock_ns() - t >= 290 * 1000000ULL);
	assert_string_equal(dm_last_error(), "ours");
	net_chan_shutdown(p.srv);
	t = clock_ns();
	assert_int_equal(mig_peer_abort(p.cli, 5000), 0);
	assert_true(clock_ns() - t < 2000 * 1000000ULL);
	assert_string_equal(dm_last_error(), "ours");
	pair_close(&p);
}

static void test_ipv6(void **state)
{
	struct net_ctx *ctx;
	struct net_listener *l;
	struct net_chan *c;
	struct acceptor a;
	char addr[64];

	assert_int_equal(make_ctx(false, &key_a, 0, &ctx), 0);
	if (net_listen(ctx, "[::1]:0", &l) < 0) {
		net_ctx_unref(ctx);
		skip(); /* no IPv6 loopback here */
	}
	snprintf(addr, sizeof(addr), "[::1]:%u", net_listener_port(l));
	accept_start(&a, l);
	assert_int_equal(net_connect(ctx, addr, NET_ROLE_CONTROL, NULL, &c), 0);
	accept_join(&a);
	assert_int_equal(a.r, 0);
	assert_non_null(strstr(net_chan_peer(a.c), "[::1]:"));
	net_chan_close(a.c);
	net_chan_close(c);
	net_listener_free(l);
	net_ctx_unref(ctx);
}

/* ---- setup --------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	char path[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_net.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(path, sizeof(path), "%s/a", tmpdir);
	if (net_keygen(path) < 0 || net_key_load(path, &key_a) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/b", tmpdir);
	if (net_keygen(path) < 0 || net_key_load(path, &key_b) < 0)
		return -1;
	dm_log_init(LOG_ERR, -1); /* the insecure warnings would flood the output */
	return 0;
}

static int group_teardown(void **state)
{
	rm_rf(tmpdir);
	return 0;
}

/* ---- egress queueing: which qdisc trees let fault replies pass the bulk push ---- */

#define QD(h, p, k) { .handle = (h), .parent = (p), .kind = k }
static void test_qdisc_classify(void **state)
{
	(void)state;
	char d[96];
	const struct net_qdisc tbf_prio[] = { QD(0x10000, TC_H_ROOT, "tbf"), QD(0x100000, 0x10001, "pfifo_fast") };
	assert_int_equal(net_qdisc_classify(tbf_prio, 2, d, sizeof(d)), NET_Q_PRIORITY);
	assert_string_equal(d, "tbf > pfifo_fast");
	const struct net_qdisc tbf[] = { QD(0x10000, TC_H_ROOT, "tbf") };
	assert_int_equal(net_qdisc_classify(tbf, 1, d, sizeof(d)), NET_Q_FIFO);
	assert_string_equal(d, "tbf: one fifo in tbf");
	const struct net_qdisc noq[] = { QD(0, TC_H_ROOT, "noqueue") };
	assert_int_equal(net_qdisc_classify(noq, 1, d, sizeof(d)), NET_Q_UNKNOWN);
	assert_int_equal(net_qdisc_classify(NULL, 0, d, sizeof(d)), NET_Q_UNKNOWN);
	/* a multi-queue NIC: mq and one child per queue */
	const struct net_qdisc mq[] = { QD(0x80010000, TC_H_ROOT, "mq"), QD(0, 0x80010001, "fq_codel"),
					QD(0, 0x80010002, "fq_codel") };
	assert_int_equal(net_qdisc_classify(mq, 3, d, sizeof(d)), NET_Q_PRIORITY);
	assert_string_equal(d, "mq > fq_codel");
	const struct net_qdisc mq_mixed[] = { QD(0x80010000, TC_H_ROOT, "mq"), QD(0, 0x80010001, "fq_codel"),
					      QD(0, 0x80010002, "pfifo") };
	assert_int_equal(net_qdisc_classify(mq_mixed, 3, d, sizeof(d)), NET_Q_FIFO);
	/* an ingress qdisc does not queue what we send */
	const struct net_qdisc ing[] = { QD(0, TC_H_ROOT, "pfifo_fast"), QD(0xffff0000, TC_H_INGRESS, "ingress") };
	assert_int_equal(net_qdisc_classify(ing, 2, d, sizeof(d)), NET_Q_PRIORITY);
	/* htb with its default (unlisted) fifo leaves; and with fq_codel leaves */
	const struct net_qdisc htb[] = { QD(0x10000, TC_H_ROOT, "htb") };
	assert_int_equal(net_qdisc_classify(htb, 1, d, sizeof(d)), NET_Q_FIFO);
	const struct net_qdisc htb_fq[] = { QD(0x10000, TC_H_ROOT, "htb"), QD(0x100000, 0x10010, "fq_codel"),
					    QD(0x200000, 0x10020, "sfq") };
	assert_int_equal(net_qdisc_classify(htb_fq, 3, d, sizeof(d)), NET_Q_PRIORITY);
	/* a three-level tree: only the leaves count */
	const struct net_qdisc deep[] = { QD(0x10000, TC_H_ROOT, "htb"), QD(0x20000, 0x10001, "tbf"),
					  QD(0x30000, 0x20001, "pfifo_fast") };
	assert_int_equal(net_qdisc_classify(deep, 3, d, sizeof(d)), NET_Q_PRIORITY);
	/* a short description buffer is cut, not overrun */
	char small[4];
	assert_int_equal(net_qdisc_classify(tbf_prio, 2, small, sizeof(small)), NET_Q_PRIORITY);
	assert_string_equal(small, "tbf");
}

/* The device a connected socket leaves by, and its qdiscs, read over rtnetlink. */
static void test_egress_of_loopback(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_true(l >= 0 && c >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	struct net_egress e;
	assert_int_equal(net_egress_of(c, &e), 0);
	assert_string_equal(e.ifname, "lo");
	/* loopback has no queue: nothing to say about priorities */
	assert_int_equal(e.queueing, NET_Q_UNKNOWN);
	assert_string_equal(e.desc, "noqueue");
	assert_string_equal(net_queueing_name(e.queueing), "unknown");
	assert_int_equal(net_egress_of(l + 1000, &e), -EBADF);
	close(c);
	close(l);
}

/* The lock's nft script: both directions of each connection, v4-mapped as IPv4, a netns lock. */
static void test_netlock_script(void **state)
{
	struct netlock_conn c[3] = { { .family = AF_INET, .sport = 5000, .dport = 41000 },
				     { .family = AF_INET6, .sport = 80, .dport = 50000 },
				     { .family = AF_INET6, .sport = 7, .dport = 8 } };
	(void)state;
	inet_pton(AF_INET, "127.0.0.1", c[0].src);
	inet_pton(AF_INET, "10.1.2.3", c[0].dst);
	inet_pton(AF_INET6, "::1", c[1].src);
	inet_pton(AF_INET6, "fe80::2", c[1].dst);
	inet_pton(AF_INET6, "::ffff:127.0.0.2", c[2].src);
	inet_pton(AF_INET6, "::ffff:127.0.0.3", c[2].dst);
	char *s = netlock_script("dm_t", c, 3, false);
	assert_non_null(strstr(s, "add table inet dm_t\ndelete table inet dm_t\ntable inet dm_t {"));
	assert_non_null(strstr(s, "type filter hook input priority -400; policy accept;"));
	/* out: from the tree's end; in: from the peer */
	assert_non_null(strstr(s, "ip saddr 127.0.0.1 ip daddr 10.1.2.3 tcp sport 5000 tcp dport 41000 counter name \"tcp_out\" drop"));
	assert_non_null(strstr(s, "ip saddr 10.1.2.3 ip daddr 127.0.0.1 tcp sport 41000 tcp dport 5000 counter name \"tcp_in\" drop"));
	assert_non_null(strstr(s, "ip6 saddr ::1 ip6 daddr fe80::2 tcp sport 80 tcp dport 50000 counter name \"tcp_out\" drop"));
	assert_non_null(strstr(s, "ip6 saddr fe80::2 ip6 daddr ::1 tcp sport 50000 tcp dport 80 counter name \"tcp_in\" drop"));
	assert_non_null(strstr(s, "ip saddr 127.0.0.2 ip daddr 127.0.0.3 tcp sport 7 tcp dport 8 counter name \"tcp_out\" drop"));
	free(s);
	s = netlock_script("dm_ns", NULL, 0, true);
	assert_non_null(strstr(s, "hook input priority -400; policy drop;"));
	assert_non_null(strstr(s, "hook output priority -400; policy drop;"));
	/* TCP counted each way, then dropped like the rest */
	assert_non_null(strstr(s, "counter tcp_in { }\n\tcounter tcp_out { }"));
	assert_non_null(strstr(s, "meta l4proto tcp counter name \"tcp_in\" drop"));
	assert_non_null(strstr(s, "meta l4proto tcp counter name \"tcp_out\" drop"));
	assert_null(strstr(s, "saddr"));
	free(s);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

/*
 * In a network namespace of its own (a child): sock_diag finds a loopback
 * connection by inode, the lock stops its bytes, the unlock lets the
 * retransmission through.  Exit status: the failed step, 0 if all is well.
 */
/* In a child: a network namespace of its own with lo up.  0, or the
 * child's exit status: 77 (no namespace here: skip), 2, 3. */
static int netns_lo_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };

	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	int io = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (io < 0 || ioctl(io, SIOCGIFFLAGS, &ifr) < 0)
		return 2;
	ifr.ifr_flags |= IFF_UP;
	int r = ioctl(io, SIOCSIFFLAGS, &ifr) < 0 ? 3 : 0;
	close(io);
	return r;
}

static int netlock_child(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct stat st;
	char buf[8];

	int up = netns_lo_up();
	if (up)
		return up;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(c, (struct sockaddr *)&a, al))
		return 4;
	int s = accept(l, NULL, NULL);
	if (s < 0 || fstat(c, &st))
		return 5;
	struct inet_sk_diag *v = NULL;
	size_t n = 0, k;
	if (inet_diag_list(NULL, AF_INET, IPPROTO_TCP, &v, &n) < 0)
		return 6;
	for (k = 0; k < n && v[k].ino != st.st_ino; k++)
		;
	if (k == n || v[k].state != 1 || v[k].dport != ntohs(a.sin_port) || memcmp(v[k].dst, &a.sin_addr, 4))
		return 7;
	struct netlock_conn conn = { .family = AF_INET, .sport = v[k].sport, .dport = v[k].dport };
	memcpy(conn.src, v[k].src, 4);
	memcpy(conn.dst, v[k].dst, 4);
	free(v);
	if (netlock_conns("dm_unit", &conn, 1) < 0 || !netlock_exists("dm_unit"))
		return 8;
	if (write(c, "locked", 6) != 6)
		return 9;
	/* dropped: nothing may arrive (a lock that works never makes this flaky) */
	if (readable(s, 300))
		return 10;
	/* opened (the restore's way): everything passes, the counters stay */
	if (netlock_open("dm_unit") < 0 || !netlock_exists("dm_unit"))
		return 11;
	/* the kernel retransmits: bounded generously */
	if (!readable(s, 30000) || read(s, buf, sizeof(buf)) != 6 || memcmp(buf, "locked", 6))
		return 12;
	/* the data segment (and its retransmissions) left c and were dropped on the way out;
	 * nothing came back in, s never had it to acknowledge */
	uint64_t in = 99, out = 0;
	if (netlock_dropped("dm_unit", &in, &out) < 0 || out < 1 || in != 0)
		return 13;
	if (netlock_unlock("dm_unit") < 0 || netlock_exists("dm_unit") || netlock_unlock("dm_unit") < 0)
		return 14;
	return 0;
}

/* fn in a child of its own (it unshares namespaces): 0 passes, 77 skips (no
 * CAP_SYS_ADMIN: no namespace of our own), anything else names the step */
static void run_child(int (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_netlock_live(void **state)
{
	(void)state;
	if (access("/usr/sbin/nft", X_OK)) {
		skip();
	}
	run_child(netlock_child);
}

/* In a namespace of its own: a listener, a connection to it; the listeners-only
 * list has the listener alone, the full list all three.  Exit: the failed step. */
static int diag_states_child(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	int up = netns_lo_up();
	if (up)
		return up;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(c, (struct sockaddr *)&a, al) || accept(l, NULL, NULL) < 0)
		return 4;
	struct inet_sk_diag *v = NULL;
	size_t n = 0;
	if (inet_diag_list_states(NULL, AF_INET, IPPROTO_TCP, 1u << 10 /* TCP_LISTEN */, &v, &n) < 0)
		return 5;
	if (n != 1 || v[0].state != 10 || v[0].sport != ntohs(a.sin_port))
		return 6;
	free(v);
	if (inet_diag_list(NULL, AF_INET, IPPROTO_TCP, &v, &n) < 0 || n != 3)
		return 7;
	free(v);
	return 0;
}

static void test_inet_diag_states(void **state)
{
	(void)state;
	run_child(diag_states_child);
}

/* the sock_diag key of connected socket fd (as the dump makes it: its own
 * address and its peer's) */
static void diag_key(int fd, struct inet_sk_diag *key)
{
	struct sockaddr_in me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	memset(key, 0, sizeof(*key));
	getsockname(fd, (struct sockaddr *)&me, &ml);
	getpeername(fd, (struct sockaddr *)&peer, &pl);
	key->family = AF_INET;
	key->protocol = IPPROTO_TCP;
	memcpy(key->src, &me.sin_addr, 4);
	memcpy(key->dst, &peer.sin_addr, 4);
	key->sport = ntohs(me.sin_port);
	key->dport = ntohs(peer.sin_port);
}

/*
 * In a namespace of its own: 40 connections to a listener; one sock_diag
 * socket (inet_diag_open) answers a lookup of each end with its own inode,
 * a lookup of a socket that does not exist with -ENOENT, a listeners-only
 * dump between them, and the lookups after those as before; a lookup
 * without a socket (NULL) as well.  Exit: the failed step.
 */
#define DIAG_CONNS 40
static int diag_shared_child(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int c[DIAG_CONNS], s[DIAG_CONNS];

	int up = netns_lo_up();
	if (up)
		return up;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, DIAG_CONNS) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return 4;
	for (int i = 0; i < DIAG_CONNS; i++)
		if ((c[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(c[i], (struct sockaddr *)&a, al) ||
		    (s[i] = accept(l, NULL, NULL)) < 0)
			return 5;
	struct inet_diag *d = NULL;
	if (inet_diag_open(&d) < 0)
		return 6;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2 * DIAG_CONNS; i++) {
			int fd = i % 2 ? s[i / 2] : c[i / 2];
			struct inet_sk_diag key, got;
			struct stat st;
			diag_key(fd, &key);
			if (fstat(fd, &st) || inet_diag_get(d, &key, &got) < 0)
				return 7;
			if (got.ino != st.st_ino || got.state != 1 /* TCP_ESTABLISHED */ || got.sport != key.sport)
				return 8;
			if (i == DIAG_CONNS) {
				/* no such socket (a port nobody has), then a dump: the socket goes on */
				key.dport = key.dport == 1 ? 2 : 1;
				if (inet_diag_get(d, &key, &got) != -ENOENT)
					return 9;
				struct inet_sk_diag *v = NULL;
				size_t n = 0;
				if (inet_diag_list_states(d, AF_INET, IPPROTO_TCP, 1u << 10 /* TCP_LISTEN */, &v, &n) < 0 ||
				    n != 1 || v[0].sport != ntohs(a.sin_port))
					return 10;
				free(v);
			}
		}
	}
	inet_diag_close(d);
	inet_diag_close(NULL);
	struct inet_sk_diag key, got;
	struct stat st;
	diag_key(c[0], &key);
	if (fstat(c[0], &st) || inet_diag_get(NULL, &key, &got) < 0 || got.ino != st.st_ino)
		return 11;
	return 0;
}

static void test_inet_diag_shared(void **state)
{
	(void)state;
	run_child(diag_shared_child);
}

/*
 * A context made ahead (netlock_ctx_new) locks the namespace it was made
 * in, from whatever namespace its caller is in then, and can be used
 * again (the second lock replaces the first).  Exit status: the failed
 * step, 0 if all is well.
 */
static int netlock_ctx_child(void)
{
	struct netlock_ctx *ctx = NULL;

	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	int a = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (a < 0 || netlock_ctx_new(&ctx) < 0)
		return 2;
	if (unshare(CLONE_NEWNET) < 0)	/* the caller elsewhere now */
		return 3;
	if (netlock_netns_with(ctx, "dm_unit_ctx") < 0 || netlock_netns_with(ctx, "dm_unit_ctx") < 0)
		return 4;
	if (netlock_exists("dm_unit_ctx"))
		return 5;	/* locked the caller's namespace */
	netlock_ctx_free(ctx);
	if (setns(a, CLONE_NEWNET) < 0)
		return 6;
	if (!netlock_exists("dm_unit_ctx"))
		return 7;	/* not the one it was made in */
	uint64_t in = 99, out = 99;
	if (netlock_dropped("dm_unit_ctx", &in, &out) < 0 || in != 0 || out != 0)
		return 8;
	if (netlock_unlock("dm_unit_ctx") < 0 || netlock_exists("dm_unit_ctx"))
		return 9;
	return 0;
}

/* `nft list table inet NAME` with NAME replaced by X (malloc'd), or NULL */
static char *list_table(const char *name)
{
	char cmd[128], *out = NULL;
	size_t cap = 0, len = 0;
	snprintf(cmd, sizeof(cmd), "nft list table inet %s 2>&1", name);
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, name);
		if (p)
			*p = 'X', memmove(p + 1, p + strlen(name), strlen(p + strlen(name)) + 1);
		size_t n = strlen(line);
		if (len + n + 1 > cap)
			out = realloc(out, cap = (len + n + 1) * 2);
		memcpy(out + len, line, n + 1);
		len += n;
	}
	return pclose(f) == 0 ? out : (free(out), NULL);
}

/* The prepared transaction (netlock_ctx_prepare) installs what the script
 * does: the same listing; twice (it replaces its own lock); a second name
 * falls back to the script.  Exit: the failed step. */
static int netlock_prepared_child(void)
{
	struct netlock_ctx *ctx = NULL;

	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	if (netlock_netns("dm_unit_script") < 0)
		return 2;
	char *want = list_table("dm_unit_script");
	if (!want || !strstr(want, "policy drop") || !strstr(want, "tcp_in"))
		return 3;
	if (netlock_ctx_new(&ctx) < 0 || netlock_ctx_prepare(ctx, "dm_unit_prep") < 0)
		return 4;
	/* 1: the prepared messages, not the script */
	if (netlock_netns_with(ctx, "dm_unit_prep") != 1 || netlock_netns_with(ctx, "dm_unit_prep") != 1)
		return 5;
	char *got = list_table("dm_unit_prep");
	if (!got || strcmp(got, want)) {
		fprintf(stderr, "script:\n%s\nprepared:\n%s\n", want, got ? got : "(none)");
		return 6;
	}
	if (netlock_netns_with(ctx, "dm_unit_other") != 0 || !netlock_exists("dm_unit_other"))
		return 7;
	uint64_t in = 99, out = 99;
	if (netlock_dropped("dm_unit_prep", &in, &out) < 0 || in != 0 || out != 0)
		return 8;
	if (netlock_open("dm_unit_prep") < 0 || netlock_unlock("dm_unit_prep") < 0 || netlock_exists("dm_unit_prep"))
		return 9;
	netlock_ctx_free(ctx);
	free(want);
	free(got);
	return 0;
}

/* a listing's counter values (the lines "packets N bytes M") cut out, in place */
static void drop_counts(char *list)
{
	char *p;
	while ((p = strstr(list, "packets "))) {
		char *e = strchr(p, '\n');
		memmove(p, e ? e : p + strlen(p), strlen(e ? e : p + strlen(p)) + 1);
	}
}

/*
 * The lock's end prepared (netlock_opener), made in the lock's namespace and
 * used from another, as the restore does after a commit: the connection's
 * bytes are dropped while locked and pass once opened; the opened table
 * lists as netlock_open()'s script leaves one (chains gone, counters
 * kept); the counters read over the socket are the script's; the removal
 * takes the table away and a second removal is no error.  Exit: the
 * failed step.
 */
static int netlock_opener_child(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct netlock_opener *o = NULL;
	char buf[8];

	int up = netns_lo_up();
	if (up)
		return up;
	int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0)
		return 2;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(c, (struct sockaddr *)&a, al))
		return 4;
	int s = accept(l, NULL, NULL);
	if (s < 0)
		return 5;
	/* the script's opened lock, for the listing */
	if (netlock_netns("dm_unit_ref") < 0 || netlock_open("dm_unit_ref") < 0)
		return 6;
	char *want = list_table("dm_unit_ref");
	if (!want || strstr(want, "chain") || !strstr(want, "tcp_in"))
		return 7;
	drop_counts(want);
	if (netlock_unlock("dm_unit_ref") < 0)
		return 8;
	if (netlock_netns("dm_unit_op") < 0 || netlock_opener_new("dm_unit_op", &o) < 0)
		return 9;
	if (write(c, "locked", 6) != 6)
		return 10;
	if (readable(s, 300))
		return 11;	/* the lock drops it */
	if (unshare(CLONE_NEWNET) < 0)	/* the caller elsewhere now */
		return 12;
	if (netlock_open_with(o) < 0)
		return 13;
	if (setns(home, CLONE_NEWNET) < 0)
		return 14;
	char *got = list_table("dm_unit_op");
	if (got)
		drop_counts(got);	/* the lock has dropped packets by now */
	if (!got || strcmp(got, want)) {
		fprintf(stderr, "script:\n%s\nprepared:\n%s\n", want, got ? got : "(none)");
		return 15;
	}
	/* the kernel retransmits: bounded generously */
	if (!readable(s, 30000) || read(s, buf, sizeof(buf)) != 6 || memcmp(buf, "locked", 6))
		return 16;
	uint64_t in = 99, out = 0, in2 = 98, out2 = 0;
	if (netlock_dropped_with(o, &in, &out) < 0 || out < 1 || in != 0)
		return 17;
	if (netlock_dropped("dm_unit_op", &in2, &out2) < 0 || in2 != in || out2 != out)
		return 18;
	if (netlock_unlock_with(o) < 0 || netlock_exists("dm_unit_op") || netlock_unlock_with(o) < 0)
		return 19;
	/* gone: opening it is an error, named */
	if (netlock_open_with(o) >= 0 || !strstr(dm_last_error(), "dm_unit_op"))
		return 20;
	netlock_opener_free(o);
	free(want);
	free(got);
	return 0;
}

static void test_netlock_opener(void **state)
{
	(void)state;
	if (access("/usr/sbin/nft", X_OK)) {
		skip();
	}
	run_child(netlock_opener_child);
}

static void test_netlock_prepared(void **state)
{
	(void)state;
	if (access("/usr/sbin/nft", X_OK)) {
		skip();
	}
	run_child(netlock_prepared_child);
}

static void test_netlock_ctx(void **state)
{
	(void)state;
	run_child(netlock_ctx_child);
}

/* ---- rtnl: what `ip` prints, read in process ---------------------------- */

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *cmd_out(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	char *buf = NULL;
	size_t len = 0;
	if (!f)
		return NULL;
	FILE *m = open_memstream(&buf, &len);
	int c;
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	pclose(f);
	return buf;
}

/* a namespace with a veth pair (one end in a second namespace, on a
 * bridge there), addresses of both families, routes of several kinds:
 * rtnl_read() gives what `ip -j -d link`, `ip -j addr` and `ip -o route` do */
static void test_rtnl_like_ip(void **state)
{
	char ns[32], ns2[32], cmd[2048], path[64];
	(void)state;
	if (geteuid() != 0)	/* namespaces of our own */
		skip();
	snprintf(ns, sizeof(ns), "dmut-rt%d", getpid());
	snprintf(ns2, sizeof(ns2), "dmut-rs%d", getpid());
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip netns add %1$s; ip netns add %2$s; "
		 "ip -n %2$s link add br9 type bridge; ip -n %2$s link set br9 up; "
		 "ip -n %1$s link add eth7 type veth peer name ve7 netns %2$s; "
		 "ip -n %2$s link set ve7 master br9 up; "
		 "ip -n %1$s link set eth7 address 02:42:c6:13:00:07 mtu 1450 up; ip -n %1$s link set lo up; "
		 "ip -n %1$s addr add 198.19.7.7/24 dev eth7; ip -n %1$s addr add fd00:7::7/64 dev eth7 nodad; "
		 "ip -n %1$s route add default via 198.19.7.1 dev eth7; "
		 "ip -n %1$s route add 198.19.80.0/20 via 198.19.7.2 dev eth7 proto static metric 50; "
		 "ip -n %1$s route add 198.19.99.9 dev eth7 scope link src 198.19.7.7; "
		 "ip -n %1$s route add unreachable 198.19.120.0/24; "
		 "ip -n %1$s link add dummy7 type dummy 2>/dev/null || true",
		 ns, ns2);
	int rc = sh(cmd);
	if (rc) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns, ns2);
		sh(cmd);
		fail_msg("setting up the namespaces failed (%d)", rc);
	}
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct rtnl_info in;
	int r = rtnl_read(fd, &in);
	close(fd);
	snprintf(cmd, sizeof(cmd), "ip -n %s -j -d link show", ns);
	char *links = cmd_out(cmd);
	snprintf(cmd, sizeof(cmd), "ip -n %s -j addr show", ns);
	char *addrs = cmd_out(cmd);
	snprintf(cmd, sizeof(cmd), "ip -n %s -o route show", ns);
	char *routes = cmd_out(cmd);
	snprintf(cmd, sizeof(cmd), "ip netns del %s; ip netns del %s", ns, ns2);
	sh(cmd);
	assert_int_equal(r, 0);

	json_t *jl = json_loads(links, 0, NULL), *ja = json_loads(addrs, 0, NULL), *e, *a;
	size_t i, k;
	assert_true(json_is_array(jl) && json_is_array(ja));
	assert_int_equal(json_array_size(jl), in.n_links);
	bool saw_veth = false;
	json_array_foreach(jl, i, e) {
		const struct rtnl_link *l = rtnl_link_by_index(&in, (int)json_integer_value(json_object_get(e, "ifindex")));
		assert_non_null(l);
		assert_string_equal(l->name, json_string_value(json_object_get(e, "ifname")));
		assert_int_equal(l->mtu, json_integer_value(json_object_get(e, "mtu")));
		const char *mac = json_string_value(json_object_get(e, "address"));
		if (mac && strlen(mac) == 17)
			assert_string_equal(l->mac, mac);
		const char *kind = json_string_value(json_object_get(json_object_get(e, "linkinfo"), "info_kind"));
		assert_string_equal(l->kind, kind ? kind : "");
		assert_int_equal(l->link, json_integer_value(json_object_get(e, "link_index")));
		bool up = false;
		json_array_foreach(json_object_get(e, "flags"), k, a)
			up |= !strcmp(json_string_value(a), "UP");
		assert_int_equal(l->up, up);
		if (!strcmp(l->name, "eth7")) {
			saw_veth = true;
			assert_string_equal(l->kind, "veth");
			assert_string_equal(l->mac, "02:42:c6:13:00:07");
			assert_true(l->link > 0 && l->up && l->mtu == 1450);
		}
	}
	assert_true(saw_veth);
	size_t want_addrs = 0;
	json_array_foreach(ja, i, e) {
		json_array_foreach(json_object_get(e, "addr_info"), k, a) {
			char text[80];
			snprintf(text, sizeof(text), "%s/%lld", json_string_value(json_object_get(a, "local")),
				 (long long)json_integer_value(json_object_get(a, "prefixlen")));
			bool found = false;
			for (size_t m = 0; m < in.n_addrs; m++)
				found |= in.addrs[m].ifindex == json_integer_value(json_object_get(e, "ifindex")) &&
					 !strcmp(in.addrs[m].addr, text);
			if (!found)
				fail_msg("address %s not read", text);
			want_addrs++;
		}
	}
	assert_int_equal(in.n_addrs, want_addrs);
	/* the routes, line by line, as `ip -o route` prints them */
	size_t nl = 0;
	for (char *line = strtok(routes, "\n"); line; line = strtok(NULL, "\n"), nl++) {
		size_t len = strlen(line);
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\\'))
			line[--len] = 0;
		assert_true(nl < in.n_routes);
		assert_string_equal(in.routes[nl], line);
	}
	assert_int_equal(in.n_routes, nl);
	assert_true(nl >= 5);
	json_decref(jl);
	json_decref(ja);
	free(links);
	free(addrs);
	free(routes);
	rtnl_info_done(&in);
}

/* what rtnl_read() gives, made again in an empty namespace with the rtnl
 * setters (as the restore of a container's network does), reads back the
 * same: the veth end with its MAC, MTU and addresses, up, and the routes */
static void test_rtnl_make_again(void **state)
{
	char ns[32], ns2[32], cmd[1024], path[64];
	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(ns, sizeof(ns), "dmut-ma%d", getpid());
	snprintf(ns2, sizeof(ns2), "dmut-mb%d", getpid());
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip netns add %1$s; ip netns add %2$s; "
		 "ip -n %1$s link add br5 type bridge; ip -n %1$s link set br5 up; "
		 "ip -n %1$s link add ve5 type veth peer name eth5; "
		 "ip -n %1$s link set eth5 address 02:42:c6:13:00:05 mtu 1400 up; ip -n %1$s link set ve5 master br5 up; "
		 "ip -n %1$s addr add 198.19.5.5/24 dev eth5; ip -n %1$s addr add fd00:5::5/64 dev eth5 nodad; "
		 "ip -n %1$s route add default via 198.19.5.1 dev eth5; "
		 "ip -n %1$s route add 198.19.64.0/20 via 198.19.5.2 dev eth5 proto static metric 70; "
		 "ip -n %1$s route add 198.19.99.5 dev eth5 scope link src 198.19.5.5; "
		 "ip -n %1$s route add unreachable 198.19.121.0/24",
		 ns, ns2);
	if (sh(cmd)) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns, ns2);
		sh(cmd);
		fail_msg("setting up the namespaces failed");
	}
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct rtnl_info a = { 0 }, b = { 0 };
	assert_int_equal(rtnl_read(fd, &a), 0);
	/* a process in the second namespace: a veth end goes there by pid */
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		char np[64];
		snprintf(np, sizeof(np), "/run/netns/%s", ns2);
		int nfd = open(np, O_RDONLY);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	for (int i = 0; i < 200; i++) {	/* until it is in there */
		char a1[64], a2[64];
		snprintf(cmd, sizeof(cmd), "/proc/%d/ns/net", p);
		ssize_t n1 = readlink(cmd, a1, sizeof(a1) - 1);
		snprintf(cmd, sizeof(cmd), "/proc/self/ns/net");
		ssize_t n2 = readlink(cmd, a2, sizeof(a2) - 1);
		if (n1 > 0 && n2 > 0 && (n1 != n2 || memcmp(a1, a2, (size_t)n1)))
			break;
		usleep(10000);
	}
	snprintf(path, sizeof(path), "/run/netns/%s", ns2);
	int fd2 = open(path, O_RDONLY | O_CLOEXEC);
	struct rtnl *here = NULL, *there = NULL;
	int r = rtnl_open(fd, &here);
	if (r >= 0)
		r = rtnl_open(fd2, &there);
	const struct rtnl_link *e = NULL;
	for (size_t i = 0; i < a.n_links; i++)
		if (!strcmp(a.links[i].name, "eth5"))
			e = &a.links[i];
	assert_non_null(e);
	if (r >= 0)
		r = rtnl_veth_add(here, "vx5", "eth5", p, e->mac, e->mtu);
	for (size_t i = 0; r >= 0 && i < a.n_addrs; i++)
		if (a.addrs[i].ifindex == e->ifindex && !(a.addrs[i].ipv6 && a.addrs[i].link_scope))
			r = rtnl_addr_add(there, "eth5", a.addrs[i].addr);
	if (r >= 0)
		r = rtnl_link_up(there, "eth5", NULL);
	if (r >= 0)
		r = rtnl_link_up(here, "vx5", "br5");
	for (size_t i = 0; r >= 0 && i < a.n_routes; i++)
		if (!strstr(a.routes[i], " proto kernel "))
			assert_int_equal(rtnl_route_replace(there, a.routes[i]), 1);
	int r2 = r >= 0 ? rtnl_read(fd2, &b) : -1;
	/* what the words say, refused: an unknown word, a bad address */
	int unk = there ? rtnl_route_replace(there, "198.19.77.0/24 dev eth5 realm 3") : -1;
	int bad = there ? rtnl_route_replace(there, "198.19.77.0/24 via not-an-address") : -1;
	int nodev = there ? rtnl_route_replace(there, "198.19.78.0/24 dev nosuch0") : 0;
	rtnl_close(here);
	rtnl_close(there);
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	close(fd);
	close(fd2);
	snprintf(cmd, sizeof(cmd), "ip -n %s link show vx5 | grep -q 'master br5'", ns);
	int on_bridge = sh(cmd);
	snprintf(cmd, sizeof(cmd), "ip netns del %s; ip netns del %s", ns, ns2);
	sh(cmd);
	assert_int_equal(r, 0);
	assert_int_equal(r2, 0);
	assert_int_equal(on_bridge, 0);
	assert_int_equal(unk, 0);
	assert_int_equal(bad, 0);
	assert_int_equal(nodev, -ENODEV);
	const struct rtnl_link *f = NULL;
	for (size_t i = 0; i < b.n_links; i++)
		if (!strcmp(b.links[i].name, "eth5"))
			f = &b.links[i];
	assert_non_null(f);
	assert_string_equal(f->mac, e->mac);
	assert_int_equal(f->mtu, e->mtu);
	assert_true(f->up && !strcmp(f->kind, "veth"));
	size_t na = 0, nb = 0;
	for (size_t i = 0; i < a.n_addrs; i++)
		if (a.addrs[i].ifindex == e->ifindex && !a.addrs[i].link_scope) {
			na++;
			bool found = false;
			for (size_t k = 0; k < b.n_addrs; k++)
				found |= b.addrs[k].ifindex == f->ifindex && !strcmp(b.addrs[k].addr, a.addrs[i].addr);
			if (!found)
				fail_msg("address %s not made again", a.addrs[i].addr);
		}
	for (size_t k = 0; k < b.n_addrs; k++)
		nb += b.addrs[k].ifindex == f->ifindex && !b.addrs[k].link_scope;
	assert_int_equal(na, nb);
	assert_int_equal(a.n_routes, b.n_routes);
	for (size_t i = 0; i < a.n_routes; i++)
		assert_string_equal(a.routes[i], b.routes[i]);
	rtnl_info_done(&a);
	rtnl_info_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_roundtrip_tls),
		cmocka_unit_test(test_roundtrip_insecure),
		cmocka_unit_test(test_big_tls),
		cmocka_unit_test(test_big_insecure),
		cmocka_unit_test(test_small_tls),
		cmocka_unit_test(test_small_insecure),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_tls_client_insecure_server),
		cmocka_unit_test(test_insecure_client_tls_server),
		cmocka_unit_test(test_hostile_frames),
		cmocka_unit_test(test_hostile_pages),
		cmocka_unit_test(test_hostile_tls_records),
		cmocka_unit_test(test_handshake_garbage),
		cmocka_unit_test(test_handshake_silent_client),
		cmocka_unit_test(test_handshake_silent_server),
		cmocka_unit_test(test_handshake_limits),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_shutdown_and_timeout),
		cmocka_unit_test(test_reason_then_reset_tls),
		cmocka_unit_test(test_reason_then_reset_insecure),
		cmocka_unit_test(test_abort_after_close_tls),
		cmocka_unit_test(test_abort_after_close_insecure),
		cmocka_unit_test(test_peer_abort_none),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_qdisc_classify),
		cmocka_unit_test(test_egress_of_loopback),
		cmocka_unit_test(test_netlock_script),
		cmocka_unit_test(test_netlock_live),
		cmocka_unit_test(test_netlock_ctx),
		cmocka_unit_test(test_netlock_prepared),
		cmocka_unit_test(test_netlock_opener),
		cmocka_unit_test(test_inet_diag_states),
		cmocka_unit_test(test_inet_diag_shared),
		cmocka_unit_test(test_rtnl_like_ip),
		cmocka_unit_test(test_rtnl_make_again),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
