/* SPDX-License-Identifier: MIT */
/*
 * net/ against the kernel: which egress qdisc trees let a fault reply pass
 * the bulk push (net/egress.c), the network lock (netlock: its nft script
 * and a live lock in a namespace of its own), the sock_diag lookups
 * (inet-diag), and rtnetlink as `ip` sees it (rtnl).  Split from
 * test_net.c, which keeps the channels, TLS and hostile peers.
 *
 * cmocka's assertions may only fail in the main thread: children made with
 * run_child() return an exit status the main thread checks.
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
	int b = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (b < 0 || setns(a, CLONE_NEWNET) < 0)
		return 6;
	if (!netlock_exists("dm_unit_ctx"))
		return 7;	/* not the one it was made in */
	uint64_t in = 99, out = 99;
	if (netlock_dropped("dm_unit_ctx", &in, &out) < 0 || in != 0 || out != 0)
		return 8;
	/* removed through the kept context (its script: not prepared), from
	 * elsewhere again; twice is no error */
	if (setns(b, CLONE_NEWNET) < 0 || netlock_unlock_in(ctx, "dm_unit_ctx") != 0 ||
	    netlock_unlock_in(ctx, "dm_unit_ctx") != 0 || setns(a, CLONE_NEWNET) < 0)
		return 9;
	if (netlock_exists("dm_unit_ctx"))
		return 10;
	netlock_ctx_free(ctx);
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
	/* the prepared socket removes a lock too (a rollback's), and twice */
	if (netlock_netns_with(ctx, "dm_unit_prep") != 1 || netlock_unlock_in(ctx, "dm_unit_prep") != 1 ||
	    netlock_exists("dm_unit_prep") || netlock_unlock_in(ctx, "dm_unit_prep") != 1)
		return 10;
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

static int group_setup(void **state)
{
	(void)state;
	dm_log_init(LOG_ERR, -1); /* as test_net.c: the warnings would flood the output */
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
