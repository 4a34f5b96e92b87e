// SPDX-License-Identifier: MIT
/*
 * UDP sockets: one bound (IPv4, SO_BROADCAST, IP_TOS), one bound IPv6 and
 * one IPv6 connected to it.  After restore each has its address, peer and
 * options, and datagrams go through: connected -> bound, bound -> connected,
 * a new socket -> the IPv4 one.  (Datagrams queued at the checkpoint are
 * refused: sk_udp_queued.)
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void addr_of(int fd, struct sockaddr_storage *ss, socklen_t *sl, bool peer)
{
	*sl = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)ss, sl))
		fail_errno(peer ? "getpeername" : "getsockname");
}

static void same(int fd, const struct sockaddr_storage *ss, socklen_t sl, bool peer, const char *what)
{
	struct sockaddr_storage now;
	socklen_t nl;
	addr_of(fd, &now, &nl, peer);
	if (nl != sl || memcmp(&now, ss, sl))
		fail("%s is another after restore", what);
}

static void recv_one(int fd, const char *want, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[64];
	if (poll(&p, 1, 30000) != 1)
		fail("%s: no datagram", what);
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
		fail("%s: wrong datagram", what);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage a4, a6, c6, p6;
	socklen_t l4, l6, lc, lp;
	int one = 1, tos = IPTOS_LOWDELAY, v;
	socklen_t vl = sizeof(v);

	test_init(argc, argv);
	int u4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int u6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (u4 < 0 || u6 < 0 || c < 0)
		fail_errno("socket");
	if (setsockopt(u4, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) ||
	    setsockopt(u4, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)))
		fail_errno("setsockopt");
	if (bind(u4, (struct sockaddr *)&s4, sizeof(s4)) || bind(u6, (struct sockaddr *)&s6, sizeof(s6)))
		fail_errno("bind");
	addr_of(u4, &a4, &l4, false);
	addr_of(u6, &a6, &l6, false);
	if (connect(c, (struct sockaddr *)&a6, l6))
		fail_errno("connect");
	addr_of(c, &c6, &lc, false);
	addr_of(c, &p6, &lp, true);

	test_ready();
	test_wait_check();

	same(u4, &a4, l4, false, "IPv4 UDP socket's address");
	same(u6, &a6, l6, false, "IPv6 UDP socket's address");
	same(c, &c6, lc, false, "connected UDP socket's address");
	same(c, &p6, lp, true, "connected UDP socket's peer");
	if (getsockopt(u4, SOL_SOCKET, SO_BROADCAST, &v, &vl) || v != 1)
		fail("SO_BROADCAST lost");
	vl = sizeof(v);
	if (getsockopt(u4, IPPROTO_IP, IP_TOS, &v, &vl) || v != tos)
		fail("IP_TOS is %d after restore, was %d", v, tos);
	if (send(c, "to-bound", 8, 0) != 8)
		fail_errno("send on the connected socket");
	recv_one(u6, "to-bound", "bound IPv6 socket");
	if (sendto(u6, "to-conn", 7, 0, (struct sockaddr *)&c6, lc) != 7)
		fail_errno("sendto");
	recv_one(c, "to-conn", "connected socket");
	int n = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n < 0 || sendto(n, "new", 3, 0, (struct sockaddr *)&a4, l4) != 3)
		fail_errno("sendto the IPv4 socket");
	recv_one(u4, "new", "bound IPv4 socket");
	pass();
}
