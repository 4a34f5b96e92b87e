// SPDX-License-Identifier: MIT
// zdtm: flags=distinct-fs
/*
 * A stream listener bound to a path (socket file mode 0640):
 *   - one connection accepted, data queued both ways;
 *   - two connections pending in its backlog (connected, not accepted), the
 *     first with a client bound to a path of its own;
 * After restore the socket file is there with its mode, the pending
 * connections are accepted in order and reach their clients, the accepted
 * one keeps its data, and a new client connects and is accepted.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t path_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void roundtrip(int a, int b, const char *msg, const char *what)
{
	char got[64] = { 0 };
	size_t n = strlen(msg);

	if (write(a, msg, n) != (ssize_t)n || test_read_all(b, got, n) || memcmp(got, msg, n))
		fail("%s: '%s' did not arrive", what, msg);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa, ca, got;
	socklen_t sl, cl, gl;
	char path[108], cpath[108], data[32];
	struct stat st;
	int l, c1, s1, p1, p2;

	test_init(argc, argv);
	snprintf(path, sizeof(path), "%s", test_path("lsock"));
	snprintf(cpath, sizeof(cpath), "%s", test_path("csock"));
	unlink(path);
	unlink(cpath);
	sl = path_addr(&sa, path);
	cl = path_addr(&ca, cpath);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sl) || listen(l, 8) || chmod(path, 0640))
		fail_errno("listener");
	c1 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c1 < 0 || connect(c1, (struct sockaddr *)&sa, sl) || (s1 = accept(l, NULL, NULL)) < 0)
		fail_errno("first connection");
	p1 = socket(AF_UNIX, SOCK_STREAM, 0);
	p2 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (p1 < 0 || p2 < 0 || bind(p1, (struct sockaddr *)&ca, cl) ||
	    connect(p1, (struct sockaddr *)&sa, sl) || connect(p2, (struct sockaddr *)&sa, sl))
		fail_errno("pending connections");
	if (write(c1, "to-server", 9) != 9 || write(s1, "to-client", 9) != 9)
		fail_errno("write");

	test_ready();
	test_wait_check();

	if (stat(path, &st) || !S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640)
		fail("socket file %s: missing or mode %o (was 0640)", path, st.st_mode & 07777);
	if (test_read_all(s1, data, 9) || memcmp(data, "to-server", 9))
		fail("accepted connection: the client's queued data");
	if (test_read_all(c1, data, 9) || memcmp(data, "to-client", 9))
		fail("accepted connection: the server's queued data");
	roundtrip(c1, s1, "again", "accepted connection");

	int a1 = accept(l, (struct sockaddr *)&got, &(socklen_t){ sizeof(got) });
	if (a1 < 0)
		fail_errno("accepting the first pending connection");
	gl = sizeof(got);
	if (getpeername(a1, (struct sockaddr *)&got, &gl) || gl != cl || memcmp(&got, &ca, cl))
		fail("the first pending connection is not from the client bound to %s", cpath);
	roundtrip(p1, a1, "p1", "first pending connection");
	roundtrip(a1, p1, "p1-back", "first pending connection, back");
	int a2 = accept(l, NULL, NULL);
	if (a2 < 0)
		fail_errno("accepting the second pending connection");
	roundtrip(p2, a2, "p2", "second pending connection");

	int c3 = socket(AF_UNIX, SOCK_STREAM, 0), a3;
	if (c3 < 0 || connect(c3, (struct sockaddr *)&sa, sl))
		fail_errno("a new client after restore");
	if ((a3 = accept(l, NULL, NULL)) < 0)
		fail_errno("accepting the new client");
	roundtrip(c3, a3, "new", "new connection");
	gl = sizeof(got);
	if (getsockname(a3, (struct sockaddr *)&got, &gl) || gl != sl || memcmp(&got, &sa, sl))
		fail("a new accepted socket does not have the listener's name");
	unlink(path);
	unlink(cpath);
	pass();
}
