/* SPDX-License-Identifier: MIT */
/*
 * net/replay.c: the packets a locked namespace drops are kept and delivered
 * later.  The records a peer sends are checked; between two namespaces
 * joined by a veth pair, a client's bytes sent while the server's
 * namespace is locked reach the server's socket by delivery alone (the
 * client's own retransmissions are blocked), exactly once, over IPv4 and
 * IPv6, and the connection goes on.  net/answer.c: the answers a namespace
 * sends are seen, and nothing else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "net/answer.h"
#include "net/inet.h"
#include "net/replay.h"

/* a TCP packet (20-byte header, payload n bytes) of IP version v */
static size_t tcp_packet(uint8_t *p, int v, size_t n)
{
	size_t ip = v == 4 ? 20 : 40, len = ip + 20 + n;
	memset(p, 0, len);
	if (v == 4) {
		p[0] = 0x45;
		p[2] = (uint8_t)(len >> 8);
		p[3] = (uint8_t)len;
		p[8] = 64;
		p[9] = IPPROTO_TCP;
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)((len - 40) >> 8);
		p[5] = (uint8_t)(len - 40);
		p[6] = IPPROTO_TCP;
		p[7] = 64;
	}
	p[ip + 12] = 5 << 4;
	return len;
}

static size_t record(uint8_t *buf, size_t at, const uint8_t *p, size_t n)
{
	uint32_t le = htole32((uint32_t)n);
	memcpy(buf + at, &le, 4);
	memcpy(buf + at + 4, p, n);
	return at + 4 + n;
}

static void test_frames_check(void **state)
{
	uint8_t p4[100], p6[120], buf[1024];
	size_t n4 = tcp_packet(p4, 4, 10), n6 = tcp_packet(p6, 6, 20), len, n = 0;
	(void)state;

	len = record(buf, 0, p4, n4);
	len = record(buf, len, p6, n6);
	assert_int_equal(net_frames_check(buf, len, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(net_frames_check(buf, 0, &n), 0);
	assert_int_equal(n, 0);
	/* cut inside a record, inside a length */
	assert_int_equal(net_frames_check(buf, len - 1, &n), -EBADMSG);
	assert_int_equal(net_frames_check(buf, 2, &n), -EBADMSG);
	/* a length that runs past the end */
	uint32_t big = htole32(100000);
	memcpy(buf, &big, 4);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	/* UDP */
	p4[9] = IPPROTO_UDP;
	len = record(buf, 0, p4, n4);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	p4[9] = IPPROTO_TCP;
	/* an IPv4 total length that is not the record's */
	p4[3]++;
	len = record(buf, 0, p4, n4);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	p4[3]--;
	/* a fragment */
	p4[6] = 0x20;
	len = record(buf, 0, p4, n4);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	p4[6] = 0;
	/* a TCP data offset past the packet */
	p6[40 + 12] = 15 << 4;
	len = record(buf, 0, p6, n6);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	/* not IP */
	p4[0] = 0x55;
	len = record(buf, 0, p4, n4);
	assert_int_equal(net_frames_check(buf, len, &n), -EBADMSG);
	/* more than a peer may send */
	assert_int_equal(net_frames_check(buf, NET_FRAMES_MAX + 1, &n), -EBADMSG);
}

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int ns_fd(const char *name)
{
	char path[96];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* a socket made in namespace nsfd (the thread comes back) */
static int socket_in(int nsfd, int family)
{
	int back = -1, fd = -1;
	if (netns_enter(nsfd, &back) < 0)
		return -1;
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	netns_leave(back);
	return fd;
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

/* read until want is complete or the bound passes; the bytes read */
static size_t read_upto(int fd, char *buf, size_t want, int ms)
{
	size_t got = 0;
	uint64_t end = clock_ns() + (uint64_t)ms * 1000000;
	while (got < want && clock_ns() < end) {
		if (!readable(fd, 100))
			continue;
		ssize_t k = recv(fd, buf + got, want - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

struct conn {
	int cli, srv;
};

static void connect_pair(int srvns, int clins, int family, const char *addr, struct conn *c)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a = { 0 };
	socklen_t al;
	int l = socket_in(srvns, family);

	assert_true(l >= 0);
	if (family == AF_INET) {
		a.in.sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &a.in.sin_addr), 1);
		al = sizeof(a.in);
	} else {
		a.in6.sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &a.in6.sin6_addr), 1);
		al = sizeof(a.in6);
	}
	assert_int_equal(bind(l, &a.sa, al), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, &a.sa, &al), 0);
	c->cli = socket_in(clins, family);
	assert_true(c->cli >= 0);
	assert_int_equal(connect(c->cli, &a.sa, al), 0);
	c->srv = accept(l, NULL, NULL);
	assert_true(c->srv >= 0);
	close(l);
}

/* a connection over IPv4 and one over IPv6, from cli's namespace to srv's */
static void connect_pairs(int srvns, int clins, struct conn *c4, struct conn *c6)
{
	connect_pair(srvns, clins, AF_INET, "198.19.71.1", c4);
	connect_pair(srvns, clins, AF_INET6, "fd00:71::1", c6);
}

static void close_pairs(int srvns, int clins, struct conn *c4, struct conn *c6)
{
	close(c4->cli);
	close(c4->srv);
	close(c6->cli);
	close(c6->srv);
	close(srvns);
	close(clins);
}

/* the lock's count of TCP packets dropped coming in, in namespace nsfd */
static uint64_t dropped_in(int nsfd, const char *lock)
{
	uint64_t in = 0, out = 0;
	int back = -1;
	assert_int_equal(netns_enter(nsfd, &back), 0);
	assert_int_equal(netlock_dropped(lock, &in, &out), 0);
	netns_leave(back);
	return in;
}

static void in_ns(int nsfd, int (*fn)(const char *), const char *arg)
{
	int back = -1;
	assert_int_equal(netns_enter(nsfd, &back), 0);
	assert_int_equal(fn(arg), 0);
	netns_leave(back);
}

static char srv[32], cli[32];

/* the namespaces go whatever the test's end (a failed assertion leaves the function) */
static int teardown_ns(void **state)
{
	char cmd[160];
	(void)state;
	if (srv[0]) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", srv, cli);
		if (system(cmd) < 0)
			return -1;
	}
	return 0;
}

/* Two namespaces joined by a veth pair, 198.19.71.1 and fd00:71::1 the server's */
static void setup_pair(int *ret_sfd, int *ret_cfd)
{
	char cmd[1024];
	snprintf(srv, sizeof(srv), "dmut-rps%d", getpid());
	snprintf(cli, sizeof(cli), "dmut-rpc%d", getpid());
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip netns add %1$s; ip netns add %2$s; "
		 "ip -n %1$s link add eth0 type veth peer name eth0 netns %2$s; "
		 "ip -n %1$s link set lo up; ip -n %2$s link set lo up; "
		 "ip -n %1$s addr add 198.19.71.1/24 dev eth0; ip -n %2$s addr add 198.19.71.2/24 dev eth0; "
		 "ip -n %1$s addr add fd00:71::1/64 dev eth0 nodad; ip -n %2$s addr add fd00:71::2/64 dev eth0 nodad; "
		 "ip -n %1$s link set eth0 up; ip -n %2$s link set eth0 up",
		 srv, cli);
	int rc = sh(cmd);
	int sfd = ns_fd(srv), cfd = ns_fd(cli);
	if (rc || sfd < 0 || cfd < 0) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", srv, cli);
		sh(cmd);
		fail_msg("setting up the namespaces failed (%d)", rc);
	}
	*ret_sfd = sfd;
	*ret_cfd = cfd;
}

static void test_capture_deliver(void **state)
{
	int sfd, cfd;
	(void)state;
	if (geteuid() != 0)
		skip();
	setup_pair(&sfd, &cfd);

	struct conn c4, c6;
	connect_pairs(sfd, cfd, &c4, &c6);

	/* the server's namespace locked, as a frozen container's, the capture first */
	struct net_capture *cap = NULL;
	int back = -1;
	assert_int_equal(netns_enter(sfd, &back), 0);
	assert_int_equal(net_capture_start(&cap), 0);
	assert_int_equal(netlock_netns("dmut_replay"), 0);
	netns_leave(back);

	/* sent while locked: dropped (wait until the lock has counted both) */
	assert_int_equal(send(c4.cli, "hello", 5, 0), 5);
	assert_int_equal(send(c6.cli, "HELLO6", 6, 0), 6);
	uint64_t end = clock_ns() + 10000000000ull;
	while (dropped_in(sfd, "dmut_replay") < 2 && clock_ns() < end)
		usleep(10000);
	assert_true(dropped_in(sfd, "dmut_replay") >= 2);
	/* from now on the client's retransmissions never arrive */
	in_ns(cfd, netlock_netns, "dmut_replay_cli");

	uint8_t *buf = NULL;
	size_t len = 0, sent = 0, n = 0;
	struct net_capture_stats st;
	net_capture_finish(cap, &buf, &len, &st);
	assert_true(st.kept >= 2);
	assert_int_equal(st.bytes + 4 * st.kept, len);
	{
		/* stopped, still open (its close waits a grace period: later);
		 * asked again, it has nothing more and the same counts */
		uint8_t *again = (uint8_t *)"x";
		size_t alen = 1;
		struct net_capture_stats st2;
		net_capture_finish(cap, &again, &alen, &st2);
		assert_null(again);
		assert_int_equal(alen, 0);
		assert_int_equal(st2.kept, st.kept);
		assert_int_equal(st2.bytes, st.bytes);
		net_capture_free(cap);
	}
	assert_int_equal(net_frames_check(buf, len, &n), 0);
	assert_int_equal(n, st.kept);
	/* each kept packet's checksum is right: computed again, it is the same */
	for (size_t pos = 0; pos < len;) {
		uint32_t le;
		memcpy(&le, buf + pos, 4);
		size_t k = le32toh(le);
		uint8_t *q = malloc(k);
		memcpy(q, buf + pos + 4, k);
		assert_int_equal(net_tcp_checksum(q, k), 0);
		assert_memory_equal(q, buf + pos + 4, k);
		free(q);
		pos += 4 + k;
	}

	/* unlocked, delivered (twice: the second is a duplicate TCP drops) */
	assert_int_equal(netns_enter(sfd, &back), 0);
	assert_int_equal(netlock_unlock("dmut_replay"), 0);
	assert_int_equal(net_frames_inject(buf, len, &sent), 0);
	assert_int_equal(sent, n);
	assert_int_equal(net_frames_inject(buf, len, &sent), 0);
	/* a packet for an address that is not the namespace's is not sent out */
	uint8_t other[2048];
	uint32_t le0;
	memcpy(&le0, buf, 4);
	size_t k0 = le32toh(le0);
	assert_true(k0 + 4 <= sizeof(other) && (buf[4] >> 4) == 4);
	memcpy(other, buf, k0 + 4);
	other[4 + 19] = 9;	/* 198.19.71.1 -> 198.19.71.9, on the link but not here */
	assert_int_equal(net_frames_inject(other, k0 + 4, &sent), 0);
	assert_int_equal(sent, 0);
	netns_leave(back);
	free(buf);

	char got[16] = "";
	assert_int_equal(read_upto(c4.srv, got, 5, 10000), 5);
	assert_memory_equal(got, "hello", 5);
	assert_int_equal(read_upto(c6.srv, got, 6, 10000), 6);
	assert_memory_equal(got, "HELLO6", 6);

	/* the connections go on: no byte twice, answers reach the client */
	in_ns(cfd, netlock_unlock, "dmut_replay_cli");
	assert_int_equal(send(c4.cli, "X", 1, 0), 1);
	assert_int_equal(read_upto(c4.srv, got, 1, 10000), 1);
	assert_int_equal(got[0], 'X');
	assert_int_equal(send(c4.srv, "ok", 2, 0), 2);
	assert_int_equal(read_upto(c4.cli, got, 2, 10000), 2);
	assert_memory_equal(got, "ok", 2);
	assert_int_equal(send(c6.cli, "Y", 1, 0), 1);
	assert_int_equal(read_upto(c6.srv, got, 1, 10000), 1);
	assert_int_equal(got[0], 'Y');

	close_pairs(sfd, cfd, &c4, &c6);
}

/* The headers' payload length, and the answers a watch sees going out of a
 * namespace: data, not a pure ACK, not what comes in, nothing once stopped. */
static void test_answer_watch(void **state)
{
	uint8_t p[256];
	int sfd, cfd, back = -1;
	(void)state;

	assert_int_equal(net_tcp_payload(p, tcp_packet(p, 4, 0)), 0);
	assert_int_equal(net_tcp_payload(p, tcp_packet(p, 4, 7)), 7);
	assert_int_equal(net_tcp_payload(p, tcp_packet(p, 6, 0)), 0);
	assert_int_equal(net_tcp_payload(p, tcp_packet(p, 6, 9)), 9);
	/* only the headers captured: the length is the header's */
	tcp_packet(p, 4, 100);
	assert_int_equal(net_tcp_payload(p, 40), 100);
	/* the end of an answer: data and PSH */
	tcp_packet(p, 4, 5);
	assert_false(net_tcp_answer_end(p, 45));
	p[20 + 13] |= 0x08;
	assert_true(net_tcp_answer_end(p, 45));
	{
		size_t k = tcp_packet(p, 4, 0);
		p[20 + 13] = 0x18; /* PSH without data: not an answer */
		assert_false(net_tcp_answer_end(p, k));
	}
	tcp_packet(p, 6, 3);
	p[40 + 13] = 0x18;
	assert_true(net_tcp_answer_end(p, 63));
	tcp_packet(p, 4, 100);
	/* headers cut short, or not IP */
	assert_int_equal(net_tcp_payload(p, 32), 0);
	p[0] = 0x15;
	assert_int_equal(net_tcp_payload(p, 140), 0);

	if (geteuid() != 0)
		skip();
	setup_pair(&sfd, &cfd);
	struct conn c4, c6;
	connect_pairs(sfd, cfd, &c4, &c6);

	struct net_answer_watch *w = NULL;
	assert_int_equal(netns_enter(sfd, &back), 0);
	assert_int_equal(net_answer_watch_start(&w), 0);
	netns_leave(back);

	/* a request comes in and is read: what goes out is an ACK at most */
	char got[16];
	assert_int_equal(send(c4.cli, "GET", 3, 0), 3);
	assert_int_equal(read_upto(c4.srv, got, 3, 10000), 3);
	assert_int_equal(net_answer_wait(w, 300), 0);
	/* the answer goes out */
	assert_int_equal(send(c4.srv, "ok", 2, 0), 2);
	assert_int_equal(net_answer_wait(w, 10000), 1);
	assert_int_equal(read_upto(c4.cli, got, 2, 10000), 2);
	/* over IPv6 too */
	assert_int_equal(send(c6.srv, "ok6", 3, 0), 3);
	assert_int_equal(net_answer_wait(w, 10000), 1);
	assert_int_equal(read_upto(c6.cli, got, 3, 10000), 3);
	assert_true(net_answer_segments(w) >= 2);
	/* a client's data in the client's namespace is not the server's answer */
	assert_int_equal(send(c4.cli, "again", 5, 0), 5);
	assert_int_equal(read_upto(c4.srv, got, 5, 10000), 5);
	assert_int_equal(net_answer_wait(w, 300), 0);
	/* stopped: nothing more is seen */
	net_answer_watch_stop(w);
	assert_int_equal(send(c4.srv, "late", 4, 0), 4);
	assert_int_equal(read_upto(c4.cli, got, 4, 10000), 4);
	assert_int_equal(net_answer_wait(w, 300), 0);
	net_answer_watch_free(w);

	close_pairs(sfd, cfd, &c4, &c6);
}

int main(void)
{
	dm_log_init(LOG_WARN, -1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_check),
		cmocka_unit_test_teardown(test_capture_deliver, teardown_ns),
		cmocka_unit_test_teardown(test_answer_watch, teardown_ns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
