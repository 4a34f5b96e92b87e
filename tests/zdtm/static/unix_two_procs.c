// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,distinct-fs
/*
 * Unix connections between two processes of the tree:
 *   - a stream accepted by the parent from a listener bound to a path,
 *     connected by the child, the listener then closed (the accepted socket
 *     keeps the listener's name); data queued both ways;
 *   - a socketpair split across fork(): each process keeps one end, a
 *     datagram queued each way.
 * After restore each side reads exactly what the other had sent, and the
 * two still talk to each other.
 */
#include "zdtm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[1 << 16], chk[1 << 16];

static void expect_data(int fd, size_t len, uint64_t seed, const char *what)
{
	if (test_read_all(fd, chk, len))
		fail_errno("%s: read %zu bytes", what, len);
	test_fill(buf, len + 8, seed);
	if (memcmp(chk, buf, len))
		fail("%s: the data differs", what);
}

static void expect_dgram(int fd, size_t len, uint64_t seed, const char *what)
{
	ssize_t n = recv(fd, chk, sizeof(chk), MSG_DONTWAIT);
	test_fill(buf, len + 8, seed);
	if (n != (ssize_t)len || memcmp(chk, buf, len))
		fail("%s: a datagram of %zd bytes, expected %zu", what, n, len);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl;
	int l, s, d[2], bar[2];
	pid_t child;

	test_init(argc, argv);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", test_path("two"));
	unlink(sa.sun_path);
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sl) || listen(l, 1))
		fail_errno("listener");
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, d))
		fail_errno("socketpair");
	test_barrier_init(bar);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		close(l);
		close(d[0]);
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sl))
			fail_errno("child: connect");
		test_fill(buf, 20000, 2800);
		test_write_all(c, buf, 20000);
		test_fill(buf, 108, 2801);
		if (send(d[1], buf, 100, 0) != 100)
			fail_errno("child: send");
		test_barrier_done(bar);
		test_wait_check();
		expect_data(c, 7000, 2802, "child: the parent's stream data");
		expect_dgram(d[1], 55, 2803, "child: the parent's datagram");
		if (write(c, "bye", 3) != 3 || send(d[1], "dg", 2, 0) != 2)
			fail_errno("child: write after restore");
		_exit(0);
	}
	close(d[1]);
	if ((s = accept(l, NULL, NULL)) < 0)
		fail_errno("accept");
	close(l);
	test_fill(buf, 7000, 2802);
	test_write_all(s, buf, 7000);
	test_fill(buf, 64, 2803);
	if (send(d[0], buf, 55, 0) != 55)
		fail_errno("send");
	test_barrier_wait(bar);

	test_ready();
	test_wait_check();

	expect_data(s, 20000, 2800, "parent: the child's stream data");
	expect_dgram(d[0], 100, 2801, "parent: the child's datagram");
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	if (getsockname(s, (struct sockaddr *)&got, &gl) || gl != sl || memcmp(&got, &sa, sl))
		fail("the accepted socket lost its listener's name");
	test_stop_children(&child, 1, "the connected child");
	char b[4] = { 0 };
	if (test_read_all(s, b, 3) || memcmp(b, "bye", 3))
		fail("parent: no 'bye' from the child after restore");
	if (recv(d[0], b, 4, MSG_DONTWAIT) != 2)
		fail("parent: no datagram from the child after restore");
	unlink(sa.sun_path);
	pass();
}
