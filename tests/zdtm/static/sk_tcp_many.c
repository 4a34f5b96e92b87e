// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Many established loopback TCP connections in one process: 120 clients
 * connected to its listener, both ends of each held, each end with its own
 * bytes queued unread (the dump looks each socket up by its addresses, one
 * sock_diag request per socket, all on one netlink socket: 240 of them
 * here, and the listener; past 256 sockets it dumps the tables instead).
 * After restore every end reads exactly its peer's bytes (no connection
 * swapped with another), every connection carries new bytes both ways, and
 * the listener accepts.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CONNS 120

static int cli[CONNS], srv[CONNS];

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* what end `side` of connection i says: its own, and of a length of its own */
static size_t words(int i, char side, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "%c%03d:%.*s|", side, i, i % 23, "abcdefghijklmnopqrstuvw");
}

/* fd, an end of connection i, writes its side's words */
static void say(int fd, int i, char side, const char *when)
{
	char buf[64];
	size_t n = words(i, side, buf, sizeof(buf));
	if (test_write_all(fd, buf, n))
		fail_errno("connection %d: %s write%s", i, side == 'c' ? "client" : "server", when);
}

static void expect(int fd, int i, char side, const char *when)
{
	char want[64], got[64];
	size_t n = words(i, side, want, sizeof(want));
	if (test_read_all(fd, got, n) || memcmp(got, want, n))
		fail("connection %d: the %s end did not read what its peer wrote %s", i, side == 'c' ? "server" : "client",
		     when);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	test_init(argc, argv);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, CONNS) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		fail_errno("listener");
	for (int i = 0; i < CONNS; i++) {
		struct sockaddr_in me, peer;
		socklen_t ml = sizeof(me), pl = sizeof(peer);
		cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cli[i] < 0 || connect(cli[i], (struct sockaddr *)&a, al) ||
		    (srv[i] = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC)) < 0 ||
		    getsockname(cli[i], (struct sockaddr *)&me, &ml))
			fail_errno("connection %d", i);
		/* accepted in order: this end is cli[i]'s */
		if (me.sin_port != peer.sin_port)
			fail("connection %d: accepted another client's connection", i);
		timeouts(cli[i]);
		timeouts(srv[i]);
		say(cli[i], i, 'c', "");
		say(srv[i], i, 's', "");
	}
	test_msg("%d connections, each end with bytes queued", CONNS);

	test_ready();
	test_wait_check();

	for (int i = 0; i < CONNS; i++) {
		expect(srv[i], i, 'c', "before the checkpoint");
		expect(cli[i], i, 's', "before the checkpoint");
	}
	for (int i = 0; i < CONNS; i++) {
		say(srv[i], i, 's', " after restore");
		say(cli[i], i, 'c', " after restore");
	}
	for (int i = 0; i < CONNS; i++) {
		expect(cli[i], i, 's', "after restore");
		expect(srv[i], i, 'c', "after restore");
	}
	test_listener_accepts(l, (struct sockaddr *)&a, al);
	pass();
}
