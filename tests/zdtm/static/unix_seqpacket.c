// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * SOCK_SEQPACKET unix sockets keep message boundaries:
 *   - a socketpair with messages of 1, 5000, 2 and 40000 bytes queued one
 *     way and three the other way;
 *   - a connection accepted from a listener bound to an abstract name, with
 *     messages queued on the accepted side; the listener stays.
 * After restore each recv() returns exactly one message, whole, in order
 * (MSG_TRUNC tells a message cut short), and nothing more.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[1 << 17], chk[1 << 17];
static const size_t fwd[] = { 1, 5000, 2, 40000 }, back[] = { 300, 7, 1000 };

static void put(int fd, size_t len, uint64_t seed)
{
	test_fill(buf, len + 8, seed);
	if (send(fd, buf, len, 0) != (ssize_t)len)
		fail_errno("send %zu", len);
}

static void expect_msg(int fd, size_t len, uint64_t seed, const char *what)
{
	struct iovec iov = { chk, sizeof(chk) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

	if (n < 0)
		fail_errno("%s: recv (a message of %zu bytes expected)", what, len);
	if ((size_t)n != len || (mh.msg_flags & MSG_TRUNC))
		fail("%s: a message of %zd bytes (flags %#x), expected %zu", what, n, mh.msg_flags, len);
	test_fill(buf, len + 8, seed);
	if (memcmp(chk, buf, len))
		fail("%s: the message's contents differ", what);
}

static void expect_empty(int fd, const char *what)
{
	ssize_t n = recv(fd, chk, 1, MSG_DONTWAIT);
	if (!(n < 0 && errno == EAGAIN))
		fail("%s: more messages than were queued (recv %zd)", what, n);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl;
	int p[2], l, c, s;

	test_init(argc, argv);
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "zdtm-seqpacket-%d", getpid());
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, p))
		fail_errno("socketpair");
	l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sl) || listen(l, 4) ||
	    connect(c, (struct sockaddr *)&sa, sl) || (s = accept(l, NULL, NULL)) < 0)
		fail_errno("listen/connect/accept");
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		put(p[0], fwd[i], 2500 + i);
	for (size_t i = 0; i < ARRAY_SIZE(back); i++)
		put(p[1], back[i], 2600 + i);
	put(c, 12, 2700);
	put(c, 60000, 2701);
	put(s, 9, 2702);

	test_ready();
	test_wait_check();

	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		expect_msg(p[1], fwd[i], 2500 + i, "pair, first to second");
	for (size_t i = 0; i < ARRAY_SIZE(back); i++)
		expect_msg(p[0], back[i], 2600 + i, "pair, second to first");
	expect_empty(p[0], "pair, first end");
	expect_empty(p[1], "pair, second end");
	expect_msg(s, 12, 2700, "accepted side");
	expect_msg(s, 60000, 2701, "accepted side");
	expect_msg(c, 9, 2702, "client side");
	expect_empty(s, "accepted side");
	expect_empty(c, "client side");

	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	if (getsockname(s, (struct sockaddr *)&got, &gl) || gl != sl || memcmp(&got, &sa, sl))
		fail("the accepted socket's name differs from its listener's");
	gl = sizeof(got);
	if (getpeername(c, (struct sockaddr *)&got, &gl) || gl != sl || memcmp(&got, &sa, sl))
		fail("the client's peer name differs from the listener's");
	/* the listener still takes connections */
	int c2 = socket(AF_UNIX, SOCK_SEQPACKET, 0), s2;
	if (c2 < 0 || connect(c2, (struct sockaddr *)&sa, sl) || (s2 = accept(l, NULL, NULL)) < 0)
		fail_errno("a new connection after restore");
	put(c2, 5, 2703);
	expect_msg(s2, 5, 2703, "new connection");
	pass();
}
