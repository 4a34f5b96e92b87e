// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=listening TCP socket on port [0-9]+ has 1 connections not yet accepted
/*
 * A listener with a connection the kernel has completed but the process
 * has not accept()ed: that connection has no fd and could not be brought
 * back, so the checkpoint is refused, named.  The client end, an
 * established connection of the tree, had been locked and put in repair
 * mode by then: the refusal gives it back.  Afterwards the connection is
 * accepted and carries bytes both ways, including those queued before.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	char buf[8];

	test_init(argc, argv);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al) || connect(c, (struct sockaddr *)&a, al))
		fail_errno("setup");
	if (test_write_all(c, "early", 5))
		fail_errno("write");
	struct pollfd p = { .fd = l, .events = POLLIN };
	if (poll(&p, 1, 30000) != 1)
		fail("the connection is not ready to be accepted");

	test_ready();
	test_wait_check();

	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		fail_errno("accept after the refused checkpoint");
	if (test_read_all(s, buf, 5) || memcmp(buf, "early", 5))
		fail("the bytes queued before the checkpoint are not there");
	if (test_write_all(s, "reply", 5) || test_read_all(c, buf, 5) || memcmp(buf, "reply", 5))
		fail("the connection does not carry bytes after the refused checkpoint");
	pass();
}
