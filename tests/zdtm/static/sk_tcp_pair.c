// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * An established loopback TCP connection between two processes of the
 * tree, with bytes queued both ways: the child's receive buffer is full
 * (the parent's send queue holds the rest, never sent: the window is
 * closed), and the parent has 1000 bytes from the child it has not read.
 * The parent's listener stays open next to the connection it accepted (the
 * same port).  The parent also holds both ends of an IPv6 connection
 * with a few bytes unread each way.  After restore every byte arrives
 * once, in order, the connections carry new bytes both ways, and the
 * listener accepts.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BIG (4 << 20)
#define SMALL 1000

static uint8_t *big, small[1008];

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 60 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Both ends of an IPv6 loopback connection, in this process. */
static void v6_pair(int *a, int *b)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t sl = sizeof(s);
	int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&s, sl) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&s, &sl))
		fail_errno("IPv6 listener");
	*a = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*a < 0 || connect(*a, (struct sockaddr *)&s, sl) || (*b = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		fail_errno("IPv6 connection");
	close(l);
	timeouts(*a);
	timeouts(*b);
}

static void child(int sk, int go)
{
	uint64_t n;
	uint8_t *got = malloc(BIG);
	char buf[4];

	if (!got)
		fail("child: no memory");
	if (test_read_all(go, &n, sizeof(n)))
		fail("child: no go from the parent");
	if (n > BIG)
		fail("child: bad length");
	if (test_read_all(sk, got, n))
		fail_errno("child: reading the %llu bytes queued to it", (unsigned long long)n);
	if (memcmp(got, big, n)) {
		size_t i = 0;
		while (got[i] == big[i])
			i++;
		fail("child: byte %zu of %llu differs after restore", i, (unsigned long long)n);
	}
	if (test_write_all(sk, "done", 4) || test_read_all(sk, buf, 4) || memcmp(buf, "bye!", 4))
		fail("child: the connection does not carry new bytes");
	_exit(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int go[2], barrier[2], one = 1, small_rcv = 8192, sndbuf = 65536;
	uint64_t sent = 0;
	char buf[4];

	test_init(argc, argv);
	big = malloc(BIG);
	if (!big)
		fail("no memory");
	test_fill(big, BIG, 2600);
	test_fill(small, sizeof(small), 2601);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		fail_errno("listener");
	if (pipe(go))
		fail_errno("pipe");
	test_barrier_init(barrier);

	pid_t pid = fork();
	if (pid < 0)
		fail_errno("fork");
	if (pid == 0) {
		close(go[1]);
		close(l);
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0 || setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small_rcv, sizeof(small_rcv)) ||
		    connect(c, (struct sockaddr *)&a, al))
			fail_errno("child: connect");
		timeouts(c);
		if (test_write_all(c, small, SMALL))
			fail_errno("child: write");
		test_barrier_done(barrier);
		child(c, go[0]);
	}
	close(go[0]);
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) ||
	    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		fail_errno("accept");
	/* fill the child's receive buffer and our send queue: write until the window closes */
	fcntl(s, F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t n = send(s, big + sent, BIG - sent, MSG_DONTWAIT);
		if (n > 0) {
			sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			/* loopback delivers as it sends: once more after a pause */
			struct pollfd p = { .fd = s, .events = POLLOUT };
			if (poll(&p, 1, 200) == 1)
				continue;
			break;
		}
		fail_errno("send");
	}
	fcntl(s, F_SETFL, 0);
	timeouts(s);
	test_barrier_wait(barrier);
	int inq = 0, outq = 0;
	for (int i = 0; i < 3000 && inq < SMALL; i++) {
		ioctl(s, SIOCINQ, &inq);
		if (inq < SMALL)
			test_sleep_ms(10);
	}
	ioctl(s, SIOCOUTQ, &outq);
	if (inq != SMALL || outq <= 0)
		fail("setup: %d bytes from the child (want %d), %d queued to it (want some)", inq, SMALL, outq);
	test_msg("%llu bytes sent to the child, %d of them still in our send queue",
		 (unsigned long long)sent, outq);
	int x6, y6;
	v6_pair(&x6, &y6);
	if (test_write_all(x6, small, 100) || test_write_all(y6, small + 200, 300))
		fail_errno("IPv6 write");

	test_ready();
	test_wait_check();

	uint8_t v6[300];
	if (test_read_all(y6, v6, 100) || memcmp(v6, small, 100) || test_read_all(x6, v6, 300) ||
	    memcmp(v6, small + 200, 300))
		fail("the bytes queued on the IPv6 connection are not all there after restore");
	if (test_write_all(x6, "six", 3) || test_read_all(y6, v6, 3) || memcmp(v6, "six", 3))
		fail("the IPv6 connection does not carry new bytes");
	if (test_write_all(go[1], &sent, sizeof(sent)))
		fail_errno("write(go)");
	uint8_t got[SMALL];
	if (test_read_all(s, got, SMALL) || memcmp(got, small, SMALL))
		fail("parent: the %d bytes from the child are not all there after restore", SMALL);
	if (test_read_all(s, buf, 4) || memcmp(buf, "done", 4))
		fail("parent: no 'done' from the child");
	if (test_write_all(s, "bye!", 4))
		fail_errno("parent: write");
	test_reap_ok(pid, "child");

	/* the listener, restored before the connection on its port, accepts */
	test_listener_accepts(l, (struct sockaddr *)&a, al);
	pass();
}
