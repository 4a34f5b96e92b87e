// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=unix.socket.fd.[0-9]+.of.process.[0-9]+.\(unix_ext_peer\).is.connected.to./.*/ext[.a-z]*.outside.the.tree
/*
 * A unix stream connected to a listener outside the tree: an echo server
 * run by an orphaned grandchild (reparented away: not part of the tree).
 * The checkpoint must be refused, naming the fd, the process and the
 * peer's path, and leave the connection working: after the failed
 * checkpoint a message still comes back from the echo server.
 */
#include "zdtm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The outsider: echoes on one connection, exits on EOF or after a bound. */
static void echo_server(int l)
{
	int s = accept(l, NULL, NULL);
	char b[64];

	close(l);
	if (s < 0)
		_exit(1);
	for (;;) {
		struct pollfd pf = { .fd = s, .events = POLLIN };
		if (poll(&pf, 1, 600 * 1000) != 1)
			_exit(0);
		ssize_t n = read(s, b, sizeof(b));
		if (n <= 0 || write(s, b, (size_t)n) != n)
			_exit(0);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl;
	int l, c, st;
	char b[8] = { 0 };

	test_init(argc, argv);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", test_path("ext"));
	unlink(sa.sun_path);
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sl) || listen(l, 1))
		fail_errno("listener");
	pid_t mid = fork();
	if (mid < 0)
		fail_errno("fork");
	if (mid == 0) {
		if (fork() == 0)
			echo_server(l);
		_exit(0);
	}
	close(l);
	if (test_waitpid(mid, &st, 0) != mid)
		fail_errno("waitpid");
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sl))
		fail_errno("connect");
	if (write(c, "one", 3) != 3 || test_read_all(c, b, 3) || memcmp(b, "one", 3))
		fail("no echo before the checkpoint");

	test_ready();
	test_wait_check();

	if (write(c, "two", 3) != 3 || test_read_all(c, b, 3) || memcmp(b, "two", 3))
		fail("no echo after the refused checkpoint");
	close(c); /* the echo server sees EOF and exits */
	unlink(sa.sun_path);
	pass();
}
