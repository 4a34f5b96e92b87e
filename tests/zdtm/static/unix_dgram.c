// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Datagram unix sockets:
 *   - socketpair(SOCK_DGRAM) with datagrams of several sizes queued both
 *     ways (one empty, one of 100000 bytes, larger than a first peek);
 *   - a server bound to an abstract name, not connected, with datagrams
 *     queued from a named client, from an unnamed one and from a client
 *     connected to it (connect() by name, one way);
 *   - the connected client shut down for reading;
 *   - a datagram of 150000 bytes queued to the server by an unnamed socket
 *     with a large SO_SNDBUF, since closed;
 *   - a socket connected to itself, with a datagram to itself queued.
 * After restore each datagram comes back whole, in order, once, with the
 * sender's address; the one-way client still sends to the server.
 */
#include "zdtm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[1 << 18], chk[1 << 18];
static const size_t sizes[] = { 1, 700, 0, 100000, 64, 3 };

static socklen_t abstract(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(sa->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void expect_dgram(int fd, size_t len, uint64_t seed, const struct sockaddr_un *from,
			 socklen_t fromlen, const char *what)
{
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	ssize_t n = recvfrom(fd, chk, sizeof(chk), MSG_DONTWAIT, (struct sockaddr *)&sa, &sl);

	if (n < 0)
		fail_errno("%s: recv (%zu bytes expected)", what, len);
	if ((size_t)n != len)
		fail("%s: a datagram of %zd bytes, expected %zu", what, n, len);
	test_fill(buf, len + 8, seed);
	if (memcmp(chk, buf, len))
		fail("%s: the datagram's contents differ", what);
	if (from && (sl != fromlen || (fromlen && memcmp(&sa, from, fromlen))))
		fail("%s: sender address of %u bytes differs (expected %u)", what, sl, fromlen);
}

static bool rdhup(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLRDHUP };
	return poll(&pf, 1, 0) == 1 && (pf.revents & POLLRDHUP);
}

static void expect_empty(int fd, const char *what)
{
	ssize_t n = recv(fd, chk, 1, MSG_DONTWAIT);
	if (!(n < 0 && errno == EAGAIN))
		fail("%s: more datagrams than were queued (recv %zd)", what, n);
}

int main(int argc, char **argv)
{
	struct sockaddr_un srv_a, cl_a;
	socklen_t srv_l, cl_l;
	char name[64], cname[64];
	int p[2], srv, cl, anon, conn, big, self;
	struct sockaddr_un self_a;
	socklen_t self_l;

	test_init(argc, argv);
	snprintf(name, sizeof(name), "zdtm-dgram-srv-%d", getpid());
	snprintf(cname, sizeof(cname), "zdtm-dgram-cl-%d", getpid());
	srv_l = abstract(&srv_a, name);
	cl_l = abstract(&cl_a, cname);
	snprintf(cname, sizeof(cname), "zdtm-dgram-self-%d", getpid());
	self_l = abstract(&self_a, cname);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, p))
		fail_errno("socketpair");
	srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	cl = socket(AF_UNIX, SOCK_DGRAM, 0);
	anon = socket(AF_UNIX, SOCK_DGRAM, 0);
	conn = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (srv < 0 || cl < 0 || anon < 0 || conn < 0)
		fail_errno("socket");
	if (bind(srv, (struct sockaddr *)&srv_a, srv_l) || bind(cl, (struct sockaddr *)&cl_a, cl_l))
		fail_errno("bind");
	if (connect(conn, (struct sockaddr *)&srv_a, srv_l))
		fail_errno("connect");

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		test_fill(buf, sizes[i] + 8, 2200 + i);
		if (send(p[0], buf, sizes[i], 0) != (ssize_t)sizes[i])
			fail_errno("send %zu", sizes[i]);
		test_fill(buf, sizes[i] + 8, 2300 + i);
		if (send(p[1], buf, sizes[i], 0) != (ssize_t)sizes[i])
			fail_errno("send back %zu", sizes[i]);
	}
	test_fill(buf, 16, 2400);
	if (sendto(cl, buf, 10, 0, (struct sockaddr *)&srv_a, srv_l) != 10)
		fail_errno("sendto from the named client");
	test_fill(buf, 1008, 2401);
	if (sendto(anon, buf, 1000, 0, (struct sockaddr *)&srv_a, srv_l) != 1000)
		fail_errno("sendto from the unnamed client");
	test_fill(buf, 40, 2402);
	if (send(conn, buf, 33, 0) != 33)
		fail_errno("send from the connected client");
	big = socket(AF_UNIX, SOCK_DGRAM, 0);
	int sz = 400000;
	if (big < 0 || setsockopt(big, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)))
		fail_errno("big sender");
	test_fill(buf, 150008, 2403);
	if (sendto(big, buf, 150000, 0, (struct sockaddr *)&srv_a, srv_l) != 150000)
		fail_errno("sendto 150000 bytes");
	close(big);
	self = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (self < 0 || bind(self, (struct sockaddr *)&self_a, self_l) ||
	    connect(self, (struct sockaddr *)&self_a, self_l) || send(self, "self", 4, 0) != 4)
		fail_errno("a socket connected to itself");
	if (shutdown(conn, SHUT_RD))
		fail_errno("shutdown");
	if (!rdhup(conn))
		fail("no POLLRDHUP after shutdown(SHUT_RD)");

	test_ready();
	test_wait_check();

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		expect_dgram(p[1], sizes[i], 2200 + i, NULL, 0, "pair, first to second");
		expect_dgram(p[0], sizes[i], 2300 + i, NULL, 0, "pair, second to first");
	}
	expect_empty(p[0], "pair, first end");
	expect_empty(p[1], "pair, second end");
	if (send(p[0], "ping", 4, 0) != 4 || recv(p[1], chk, 8, 0) != 4 || memcmp(chk, "ping", 4))
		fail("the datagram pair is not connected after restore");

	struct sockaddr_un unnamed = { .sun_family = AF_UNIX }; /* an unnamed sender: no address */
	expect_dgram(srv, 10, 2400, &cl_a, cl_l, "server, from the named client");
	expect_dgram(srv, 1000, 2401, &unnamed, 0,
		     "server, from the unnamed client");
	expect_dgram(srv, 33, 2402, NULL, 0, "server, from the connected client");
	expect_dgram(srv, 150000, 2403, &unnamed, 0, "server, the big one from a closed socket");
	expect_empty(srv, "server");
	char b4[8];
	struct sockaddr_un got;
	socklen_t gotl = sizeof(got);
	if (recv(self, b4, sizeof(b4), MSG_DONTWAIT) != 4 || memcmp(b4, "self", 4))
		fail("the socket connected to itself lost its datagram");
	if (getpeername(self, (struct sockaddr *)&got, &gotl) || gotl != self_l || memcmp(&got, &self_a, self_l))
		fail("the socket connected to itself is not any more");

	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	if (getsockname(srv, (struct sockaddr *)&sa, &sl) || sl != srv_l || memcmp(&sa, &srv_a, sl))
		fail("the server's name differs after restore");
	if (send(conn, "more", 4, 0) != 4 || recv(srv, chk, 8, MSG_DONTWAIT) != 4 || memcmp(chk, "more", 4))
		fail("the connected client does not reach the server after restore");
	if (!rdhup(conn))
		fail("the client shut down for reading is not any more (no POLLRDHUP)");
	if (rdhup(srv))
		fail("the server is shut down for reading after restore");
	pass();
}
