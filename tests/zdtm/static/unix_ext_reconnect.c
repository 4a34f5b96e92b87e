// SPDX-License-Identifier: MIT
// zdtm: flags=dump-opt=--ext-unix,distinct-fs,refused-in=post-copy+pre-copy+stop-and-copy+hybrid
/*
 * checkpoint --ext-unix: sockets connected to servers outside the tree (an
 * orphaned grandchild, reparented away) are connected to the same names
 * again at restore:
 *   - a stream to an echo server's path: after restore it talks to the
 *     server over a new connection (the server accepts it; the old one saw
 *     EOF when the original was killed, or goes on with --leave-running);
 *   - an autobound datagram socket connected to a datagram echo server's
 *     path: after restore it still sends there and gets the answers.
 * The migrate modes have no --ext-unix: they refuse it.
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

/* The outsider: stream echo on every connection in turn, datagram echo to
 * the sender; gone on "quit" or after two idle minutes. */
static void servers(int l, int d)
{
	struct pollfd pf[3] = { { .fd = l, .events = POLLIN }, { .fd = d, .events = POLLIN },
				{ .fd = -1, .events = POLLIN } };
	char b[64];

	for (;;) {
		if (poll(pf, 3, 120 * 1000) <= 0)
			_exit(0);
		if (pf[0].revents & POLLIN) {
			if (pf[2].fd >= 0)
				close(pf[2].fd);
			pf[2].fd = accept(l, NULL, NULL);
		}
		if (pf[1].revents & POLLIN) {
			struct sockaddr_un from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(d, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);
			if (n > 0)
				sendto(d, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
		if (pf[2].fd >= 0 && (pf[2].revents & (POLLIN | POLLHUP))) {
			ssize_t n = read(pf[2].fd, b, sizeof(b));
			if (n == 4 && !memcmp(b, "quit", 4))
				_exit(0);
			if (n <= 0 || write(pf[2].fd, b, (size_t)n) != n) {
				close(pf[2].fd);
				pf[2].fd = -1;
			}
		}
	}
}

static socklen_t path_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void echo(int fd, const char *msg, const char *what)
{
	char b[16] = { 0 };
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) != (ssize_t)strlen(msg))
		fail_errno("%s: send", what);
	if (poll(&pf, 1, 30000) != 1 || recv(fd, b, sizeof(b), 0) != (ssize_t)strlen(msg) ||
	    memcmp(b, msg, strlen(msg)))
		fail("%s: no echo of '%s'", what, msg);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa, da;
	socklen_t sl, dl;
	int l, d, c, u, st;

	test_init(argc, argv);
	sl = path_addr(&sa, test_path("xs"));
	dl = path_addr(&da, test_path("xd"));
	unlink(sa.sun_path);
	unlink(da.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	d = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (l < 0 || d < 0 || bind(l, (struct sockaddr *)&sa, sl) || listen(l, 4) ||
	    bind(d, (struct sockaddr *)&da, dl))
		fail_errno("servers");
	pid_t mid = fork();
	if (mid < 0)
		fail_errno("fork");
	if (mid == 0) {
		/* a session of its own: the restore needs our pid, so it must not
		 * stay in use as the outsider's process group or session */
		if (fork() == 0 && setsid() > 0)
			servers(l, d);
		_exit(0);
	}
	close(l);
	close(d);
	if (test_waitpid(mid, &st, 0) != mid)
		fail_errno("waitpid");
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	u = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (c < 0 || u < 0 || connect(c, (struct sockaddr *)&sa, sl))
		fail_errno("connect");
	if (bind(u, (struct sockaddr *)&(struct sockaddr_un){ .sun_family = AF_UNIX }, sizeof(sa_family_t)) ||
	    connect(u, (struct sockaddr *)&da, dl))
		fail_errno("datagram client");
	echo(c, "one", "stream before");
	echo(u, "d1", "datagram before");

	test_ready();
	test_wait_check();

	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	if (getpeername(c, (struct sockaddr *)&got, &gl) || gl != sl || memcmp(&got, &sa, sl))
		fail("the stream's peer is not %s after restore", sa.sun_path);
	echo(c, "two", "stream after");
	echo(u, "d2", "datagram after");
	send(c, "quit", 4, MSG_NOSIGNAL);
	unlink(sa.sun_path);
	unlink(da.sun_path);
	pass();
}
