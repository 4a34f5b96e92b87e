// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=fd [0-9]+ of process [0-9]+: TCP socket .* in state CLOSE_WAIT
/*
 * A TCP connection whose peer has closed (CLOSE_WAIT: the FIN is queued,
 * not yet read) cannot be restored yet: the checkpoint is refused, naming
 * the fd and the state.  By then the dump had put the tree's other
 * connection, an established IPv6 one with SO_REUSEADDR set, in repair mode
 * and locked it: the refusal must give it back as it was.  Afterwards it
 * carries bytes both ways, its SO_REUSEADDR is still set, the bytes queued
 * before are there, and the first connection reads its EOF.
 */
#include "zdtm.h"

#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pair(int family, int *a, int *b, int reuse)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t sl = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, sl) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&ss, &sl))
		fail_errno("listener");
	*a = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*a < 0 || setsockopt(*a, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) ||
	    connect(*a, (struct sockaddr *)&ss, sl))
		fail_errno("connect");
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*b < 0)
		fail_errno("accept");
	close(l);
}

static void expect(int fd, const char *want, const char *what)
{
	char buf[16] = "";
	size_t n = strlen(want);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 30000) != 1 || test_read_all(fd, buf, n) || memcmp(buf, want, n))
		fail("%s: expected '%s'", what, want);
}

int main(int argc, char **argv)
{
	int c1, s1, c2, s2, v = 0;
	socklen_t vl = sizeof(v);
	char buf[4];

	test_init(argc, argv);
	pair(AF_INET, &c1, &s1, 0);
	pair(AF_INET6, &c2, &s2, 1);
	close(c1);			/* s1: CLOSE_WAIT */
	if (test_write_all(c2, "queued", 6) || test_write_all(s2, "back", 4))
		fail_errno("write");

	test_ready();
	test_wait_check();

	if (getsockopt(c2, SOL_SOCKET, SO_REUSEADDR, &v, &vl) || v != 1)
		fail("SO_REUSEADDR of the established connection is %d after the refused checkpoint", v);
	expect(s2, "queued", "server end");
	expect(c2, "back", "client end");
	if (test_write_all(c2, "more", 4))
		fail_errno("write after the refused checkpoint");
	expect(s2, "more", "server end, new bytes");
	if (read(s1, buf, sizeof(buf)) != 0)
		fail("the CLOSE_WAIT end does not read its EOF");
	pass();
}
