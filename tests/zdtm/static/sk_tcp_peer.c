// SPDX-License-Identifier: MIT
// zdtm: flags=peer
/*
 * A TCP connection to a peer outside the tree: the runner starts this
 * program a second time, with --arg peer, beside the tree (flag "peer").
 * Both ends stream numbered bytes to each other all the time, the peer
 * also while the tree is frozen, dumped, killed and restored: its packets
 * then must be neither acknowledged (bytes not in the image would be lost)
 * nor answered with a RST, and nothing of the tree may reach it.  After
 * restore the tree reads on: every byte of the peer's stream arrives once,
 * in order; the peer checks the tree's stream the same way, and that it
 * never saw a reset, and publishes its verdict, which the tree reads.
 */
#include "zdtm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED_TREE 11
#define SEED_PEER 23
#define CHUNK 2048
#define AFTER (256 * 1024)	/* bytes the tree must receive after its restore */

static uint8_t pat(unsigned seed, uint64_t i)
{
	return (uint8_t)(i * 131 + seed + (i >> 9) * 7);
}

struct stream {
	int fd;
	unsigned rx_seed, tx_seed;
	uint64_t rx, tx;
	bool eof;
	const char *who;
};

/* One step: read what there is (checked), write one chunk if there is room. */
static void step(struct stream *s, bool send_more, int timeout_ms)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN | (send_more ? POLLOUT : 0) };
	uint8_t buf[65536];

	if (poll(&p, 1, timeout_ms) < 0) {
		if (errno == EINTR)
			return;
		fail_errno("%s: poll", s->who);
	}
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			fail("%s: the connection failed after %llu bytes received: %m", s->who,
			     (unsigned long long)s->rx);
		if (n == 0)
			s->eof = true;
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != pat(s->rx_seed, s->rx + (uint64_t)k))
				fail("%s: byte %llu of the stream is wrong (lost or repeated bytes)", s->who,
				     (unsigned long long)(s->rx + (uint64_t)k));
		if (n > 0)
			s->rx += (uint64_t)n;
	}
	if (send_more && (p.revents & POLLOUT)) {
		for (int k = 0; k < CHUNK; k++)
			buf[k] = pat(s->tx_seed, s->tx + (uint64_t)k);
		ssize_t n = send(s->fd, buf, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			fail("%s: the connection failed after %llu bytes sent: %m", s->who,
			     (unsigned long long)s->tx);
		if (n > 0)
			s->tx += (uint64_t)n;
		test_sleep_ms(5);	/* a steady trickle, not a flood */
	}
}

/* Outside the tree: accept the tree's connection, stream until its EOF. */
static void peer(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	char tmp[256];
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		fail_errno("peer: listen");
	snprintf(tmp, sizeof(tmp), "%s.tmp", test_path("port"));
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", ntohs(a.sin_port)) < 0 || fclose(f) || rename(tmp, test_path("port")))
		fail_errno("peer: port file");
	struct pollfd p = { .fd = l, .events = POLLIN };
	if (poll(&p, 1, 60000) != 1)
		fail("peer: the tree never connected");
	struct stream s = { .fd = accept4(l, NULL, NULL, SOCK_CLOEXEC), .rx_seed = SEED_TREE,
			    .tx_seed = SEED_PEER, .who = "peer" };
	if (s.fd < 0)
		fail_errno("peer: accept");
	close(l);
	uint64_t end = test_now_ns() + 600ULL * 1000000000ULL;
	while (!s.eof) {
		if (test_now_ns() > end)
			fail("peer: the tree did not finish within 600 s");
		step(&s, true, 20);
	}
	/* the tree has all it needs: our end too */
	shutdown(s.fd, SHUT_WR);
	test_msg("peer: received %llu bytes, sent %llu, no reset", (unsigned long long)s.rx,
		 (unsigned long long)s.tx);
	pass();
}

static bool port_there(void *arg)
{
	(void)arg;
	return access(test_path("port.peer"), R_OK) == 0;
}

static bool peer_done(void *arg)
{
	(void)arg;
	return access(test_path("peer"), R_OK) == 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char buf[256];

	test_init(argc, argv);
	if (test_arg && !strcmp(test_arg, "peer"))
		peer();
	/* the peer's files: DIR/port.peer.result and its verdict DIR/peer.result */
	if (!test_poll(port_there, NULL, 30000))
		fail("no peer (the runner starts it for the flag 'peer')");
	if (test_read_file(test_path("port.peer"), buf, sizeof(buf)) <= 0)
		fail("cannot read the peer's port");
	a.sin_port = htons((uint16_t)atoi(buf));
	struct stream s = { .fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .rx_seed = SEED_PEER,
			    .tx_seed = SEED_TREE, .who = "tree" };
	if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&a, sizeof(a)))
		fail_errno("connect to the peer");
	while (s.rx < 64 * 1024)
		step(&s, true, 20);

	test_ready();
	while (!test_stopped())
		step(&s, true, 20);

	/* restored: the stream goes on, both ways */
	uint64_t want = s.rx + AFTER, end = test_now_ns() + 120ULL * 1000000000ULL;
	while (s.rx < want && !s.eof) {
		if (test_now_ns() > end)
			fail("tree: only %llu bytes from the peer within 120 s after restore",
			     (unsigned long long)(s.rx + AFTER - want));
		step(&s, true, 20);
	}
	if (s.eof)
		fail("tree: the peer closed the connection");
	shutdown(s.fd, SHUT_WR);
	while (!s.eof) {
		if (test_now_ns() > end)
			fail("tree: the peer did not finish");
		step(&s, false, 100);
	}
	if (!test_poll(peer_done, NULL, 30000))
		fail("tree: no verdict from the peer");
	if (test_read_file(test_path("peer"), buf, sizeof(buf)) <= 0 || strncmp(buf, "PASS", 4))
		fail("the peer says: %s", buf);
	test_msg("tree: received %llu bytes, sent %llu", (unsigned long long)s.rx, (unsigned long long)s.tx);
	pass();
}
