// SPDX-License-Identifier: MIT
/*
 * Listening TCP sockets, IPv4 and IPv6, with the options services set.
 * After restore each listens on the same address and port with the same
 * options (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_RCVBUF, TCP_NODELAY,
 * TCP_KEEPIDLE, IP_TOS then SO_PRIORITY, TCP_DEFER_ACCEPT, IPV6_V6ONLY) and accepts a new connection
 * that carries bytes both ways.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct opt {
	int level, name, value;
	const char *what;
};

static const struct opt v4_opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR" },
	{ SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE" },
	{ SOL_SOCKET, SO_RCVBUF, 100000, "SO_RCVBUF" },
	{ IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY" },
	{ IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE" },
	/* IP_TOS sets the priority too: SO_PRIORITY after it must win */
	{ IPPROTO_IP, IP_TOS, 0x10, "IP_TOS" },
	{ SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY" },
};
static const struct opt v6_opts[] = {
	{ IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY" },
	{ SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT" },
	{ IPPROTO_TCP, TCP_DEFER_ACCEPT, 3, "TCP_DEFER_ACCEPT" },
};

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, name, &v, &l))
		fail_errno("getsockopt(%d, %d)", level, name);
	return v;
}

static int listener(int family, const struct opt *o, size_t n, int *vals, struct sockaddr_storage *ss,
		    socklen_t *sl)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_errno("socket");
	for (size_t i = 0; i < n; i++)
		if (setsockopt(fd, o[i].level, o[i].name, &o[i].value, sizeof(int)))
			fail_errno("setsockopt %s", o[i].what);
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*sl = sizeof(*a);
	}
	if (bind(fd, (struct sockaddr *)ss, *sl) || listen(fd, 17))
		fail_errno("bind/listen");
	if (getsockname(fd, (struct sockaddr *)ss, sl))
		fail_errno("getsockname");
	for (size_t i = 0; i < n; i++)
		vals[i] = getint(fd, o[i].level, o[i].name);
	return fd;
}

static void check(int fd, const char *name, const struct opt *o, size_t n, const int *vals,
		  const struct sockaddr_storage *ss, socklen_t sl)
{
	struct sockaddr_storage now;
	socklen_t nl = sizeof(now);

	if (getsockname(fd, (struct sockaddr *)&now, &nl) || nl != sl || memcmp(&now, ss, sl))
		fail("%s: bound to another address or port after restore", name);
	if (getint(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		fail("%s: not listening after restore", name);
	for (size_t i = 0; i < n; i++) {
		int v = getint(fd, o[i].level, o[i].name);
		if (v != vals[i])
			fail("%s: %s is %d after restore, was %d", name, o[i].what, v, vals[i]);
	}
	/* a new connection, accepted, bytes both ways */
	int c = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (const struct sockaddr *)ss, sl))
		fail_errno("%s: connect after restore", name);
	/* TCP_DEFER_ACCEPT: the listener wakes up once data arrives */
	if (test_write_all(c, "ping", 4))
		fail_errno("%s: write", name);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 30000) != 1)
		fail("%s: no connection to accept after restore", name);
	int a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	char buf[4];
	if (a < 0)
		fail_errno("%s: accept", name);
	if (test_read_all(a, buf, 4) || memcmp(buf, "ping", 4) || test_write_all(a, "pong", 4) ||
	    test_read_all(c, buf, 4) || memcmp(buf, "pong", 4))
		fail("%s: the accepted connection does not carry bytes", name);
	close(a);
	close(c);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage s4, s6;
	socklen_t l4, l6;
	int v4[ARRAY_SIZE(v4_opts)], v6[ARRAY_SIZE(v6_opts)];

	test_init(argc, argv);
	int f4 = listener(AF_INET, v4_opts, ARRAY_SIZE(v4_opts), v4, &s4, &l4);
	int f6 = listener(AF_INET6, v6_opts, ARRAY_SIZE(v6_opts), v6, &s6, &l6);
	fcntl(f6, F_SETFL, O_NONBLOCK);

	test_ready();
	test_wait_check();

	if (!(fcntl(f6, F_GETFL) & O_NONBLOCK))
		fail("IPv6 listener lost O_NONBLOCK");
	check(f4, "IPv4 listener", v4_opts, ARRAY_SIZE(v4_opts), v4, &s4, l4);
	check(f6, "IPv6 listener", v6_opts, ARRAY_SIZE(v6_opts), v6, &s6, l6);
	pass();
}
