/* SPDX-License-Identifier: MIT */
/*
 * net/: keys, addresses, TLS-PSK and insecure channels over loopback,
 * framing, hostile peers (garbage, truncation, oversize, wrong magic,
 * wrong key, wrong version, silence), sessions, full duplex use.  What
 * runs against the kernel's network (egress qdiscs, the network lock,
 * sock_diag, rtnetlink) is in test_net_live.c.
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

/* ---- corked frames ------------------------------------------------------------------- */

/*
 * net_chan_cork(): nothing leaves while what is gathered is under
 * NET_CORK_MAX; then every frame arrives whole and in order, the small
 * ones gathered and the ones larger than the cork alone, and the frame
 * counts are the frames', not the sends'.
 */
#define CORK_N 40
static size_t cork_len(int i)
{
	static const size_t sizes[] = { 1000, 30000, 5, 200000, 70000, 0, 65536 - 16, 12 };
	return sizes[i % 8];
}

struct cork_rx {
	struct net_chan *c;
	int r, got;
};

static void *cork_receiver(void *p)
{
	struct cork_rx *x = p;
	uint8_t *buf = xmalloc(200000);
	for (int i = 0; i < CORK_N && x->r == 0; i++) {
		struct net_frame f;
		x->r = net_recv_hdr(x->c, &f);
		if (x->r == 0 && f.len != cork_len(i))
			x->r = -EBADMSG;
		if (x->r == 0 && f.len)
			x->r = net_recv_body(x->c, buf, f.len);
		for (size_t k = 0; x->r == 0 && k < f.len; k++)
			if (buf[k] != (uint8_t)(i * 7 + k))
				x->r = -EILSEQ;
		x->got += x->r == 0;
	}
	free(buf);
	return NULL;
}

static void corked(bool insecure)
{
	struct pair p;
	struct cork_rx rx;
	pthread_t tr;
	uint8_t *buf = xmalloc(200000);

	pair_open(&p, insecure);
	struct net_chan_stats st0;
	net_chan_get_stats(p.cli, &st0);
	net_chan_cork(p.cli);
	/* the first frame alone: gathered, not sent */
	for (size_t k = 0; k < cork_len(0); k++)
		buf[k] = (uint8_t)(k);
	assert_int_equal(net_send_frame(p.cli, NET_T_RAW, buf, cork_len(0)), 0);
	assert_int_equal(net_chan_poll_in(p.srv, 100), 0);
	rx = (struct cork_rx){ .c = p.srv };
	pthread_create(&tr, NULL, cork_receiver, &rx);
	for (int i = 1; i < CORK_N; i++) {
		for (size_t k = 0; k < cork_len(i); k++)
			buf[k] = (uint8_t)(i * 7 + k);
		assert_int_equal(net_send_frame(p.cli, NET_T_RAW, buf, cork_len(i)), 0);
	}
	assert_int_equal(net_chan_uncork(p.cli), 0);
	pthread_join(tr, NULL);
	assert_int_equal(rx.r, 0);
	assert_int_equal(rx.got, CORK_N);
	struct net_chan_stats st;
	net_chan_get_stats(p.cli, &st);
	assert_int_equal(st.frames_sent - st0.frames_sent, CORK_N);
	/* uncorked: a frame goes at once */
	uint32_t v = 42;
	assert_int_equal(net_send_frame(p.cli, NET_T_RAW, &v, sizeof(v)), 0);
	assert_int_equal(net_chan_poll_in(p.srv, 2000), 1);
	pair_close(&p);
	free(buf);
}

static void test_cork_tls(void **state) { corked(false); }
static void test_cork_insecure(void **state) { corked(true); }

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

/*
 * An image file goes as its runs of data: a raw image's header page with a
 * few bytes, a page of zeros with data in the middle, trailing zeros: the
 * extents received, applied to a file of the announced size (zeros), give
 * the file back, and far fewer bytes went than it holds.  buf_next_data()
 * keeps a zero gap shorter than MIG_ZERO_GAP inside a run.
 */
static void test_file_zero_runs(void **state)
{
	uint8_t b[4096] = { 0 };
	size_t e;
	assert_int_equal(buf_next_data(b, sizeof(b), 0, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), sizeof(b));
	b[5] = 1;
	assert_int_equal(buf_next_data(b, sizeof(b), 0, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), 0);
	assert_int_equal(e, 64);
	assert_int_equal(buf_next_data(b, sizeof(b), 64, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), sizeof(b));
	b[64 + 128] = 2; /* a gap of 128 zeros: one run */
	assert_int_equal(buf_next_data(b, sizeof(b), 0, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), 0);
	assert_int_equal(e, 256);
	b[256 + MIG_ZERO_GAP + 7] = 3; /* a gap of MIG_ZERO_GAP: two */
	assert_int_equal(buf_next_data(b, sizeof(b), 0, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), 0);
	assert_int_equal(e, 256);
	assert_int_equal(buf_next_data(b, sizeof(b), e, MIG_ZERO_LINE, MIG_ZERO_GAP, &e), 256 + MIG_ZERO_GAP);
	assert_int_equal(e, 256 + MIG_ZERO_GAP + 64);
	b[4095] = 4; /* in the last line */
	size_t a = buf_next_data(b, sizeof(b), e, MIG_ZERO_LINE, MIG_ZERO_GAP, &e);
	assert_int_equal(a, 4096 - 64);
	assert_int_equal(e, 4096);

	char dir[] = "/tmp/dm-zero-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	size_t size = 5 * 4096 + 100;
	uint8_t *f = calloc(1, size);
	f[0] = 'D'; f[1] = 'M';                           /* a header */
	memset(f + 2 * 4096 + 1000, 0xab, 300);           /* data amid zeros */
	memset(f + 3 * 4096, 0xcd, 4096);                 /* a full page */
	f[5 * 4096 + 10] = 1;                             /* the tail */
	int fd = openat(dfd, "x.img", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f, size), (ssize_t)size);
	close(fd);

	struct pair p;
	pair_open(&p, true);
	uint64_t sent = 0;
	assert_int_equal(mig_send_file(p.srv, dfd, "x.img", &sent), 0);
	assert_true(sent < 4096 + 400 + 4096 + 200);
	uint8_t *g = NULL;
	size_t gsize = 0;
	uint64_t got = 0;
	for (bool end = false; !end;) {
		ProtobufCMessage *m = NULL;
		uint16_t type;
		uint32_t len;
		assert_int_equal(mig_recv(p.cli, &type, &len, &m), 0);
		if (type == MIG_T_FILE) {
			gsize = ((Dm__MigFile *)m)->size;
			g = calloc(1, gsize);
		} else if (type == MIG_T_DATA) {
			struct mig_wire_extent x;
			assert_int_equal(net_recv_body(p.cli, &x, sizeof(x)), 0);
			assert_true(x.off + x.len <= gsize);
			assert_int_equal(net_recv_body(p.cli, g + x.off, x.len), 0);
			got += x.len;
		} else {
			assert_int_equal(type, MIG_T_FILE_END);
			end = true;
		}
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(gsize, size);
	assert_int_equal(got, sent);
	assert_memory_equal(g, f, size);
	pair_close(&p);
	free(f);
	free(g);
	unlinkat(dfd, "x.img", 0);
	close(dfd);
	rmdir(dir);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_file_zero_runs),
		cmocka_unit_test(test_roundtrip_tls),
		cmocka_unit_test(test_roundtrip_insecure),
		cmocka_unit_test(test_big_tls),
		cmocka_unit_test(test_big_insecure),
		cmocka_unit_test(test_small_tls),
		cmocka_unit_test(test_small_insecure),
		cmocka_unit_test(test_cork_tls),
		cmocka_unit_test(test_cork_insecure),
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
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
