// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=UDP socket on port [0-9]+ has datagrams queued
/*
 * A UDP socket with a datagram queued, not yet read: not restored, so the
 * checkpoint is refused, naming the socket, and the test runs on: the
 * datagram is still there, and the socket still receives.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	char buf[16];
	int inq = 0;

	test_init(argc, argv);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || s < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(u, (struct sockaddr *)&a, &al))
		fail_errno("socket");
	if (sendto(s, "queued", 6, 0, (struct sockaddr *)&a, al) != 6)
		fail_errno("sendto");
	struct pollfd p = { .fd = u, .events = POLLIN };
	if (poll(&p, 1, 30000) != 1)
		fail("the datagram did not arrive");

	test_ready();
	test_wait_check();

	if (ioctl(u, FIONREAD, &inq) || inq != 6)
		fail("the queued datagram is gone (%d bytes queued)", inq);
	if (recv(u, buf, sizeof(buf), 0) != 6 || memcmp(buf, "queued", 6))
		fail("wrong datagram");
	if (sendto(s, "later", 5, 0, (struct sockaddr *)&a, al) != 5)
		fail_errno("sendto");
	if (poll(&p, 1, 30000) != 1 || recv(u, buf, sizeof(buf), 0) != 5)
		fail("no datagram after the refused checkpoint");
	pass();
}
