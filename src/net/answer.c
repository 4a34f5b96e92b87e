/* SPDX-License-Identifier: MIT */
/*
 * The moment to freeze a service: right after it answered (answer.h).
 *
 * A packet socket in the container's network namespace, made as the
 * network lock's capture is (net_tcp_packet_socket(), replay.c) but for
 * outgoing TCP, 128 bytes of each (the headers); a segment that carries
 * data and PSH ends an answer (or a request the service makes: the same
 * moment for its peer).  Its close waits for an RCU grace period (8-16 ms
 * on some machines): it is stopped (a filter that drops all) when the wait
 * ends and closed after the switch-over.
 */
#define LOG_PREFIX "net: "
#include "net/answer.h"
#include "net/replay.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define SNAP 128

struct net_answer_watch {
	int fd;
	uint64_t segments; /* outgoing TCP segments seen, data or not */
};

int net_answer_watch_start(struct net_answer_watch **ret)
{
	int fd = net_tcp_packet_socket(PACKET_OUTGOING, SNAP, 0, false);

	if (fd < 0)
		return dm_fail(fd, "cannot set up the packet socket that sees the service's answers: %s",
			       strerror(-fd));
	*ret = xcalloc(1, sizeof(**ret));
	(*ret)->fd = fd;
	return 0;
}

/* The TCP payload's length the headers of packet p (len bytes of it
 * captured) announce; 0 for a segment without data or headers we cannot
 * read. */
size_t net_tcp_payload(const uint8_t *p, size_t len)
{
	size_t ip_len, ip_hdr;

	if (len < 1)
		return 0;
	switch (p[0] >> 4) {
	case 4:
		if (len < 20)
			return 0;
		ip_hdr = (size_t)(p[0] & 15) * 4;
		ip_len = (size_t)p[2] << 8 | p[3];
		break;
	case 6:
		if (len < 40)
			return 0;
		ip_hdr = 40;
		ip_len = ((size_t)p[4] << 8 | p[5]) + 40;
		break;
	default:
		return 0;
	}
	if (ip_hdr < 20 || len < ip_hdr + 13)
		return 0;
	size_t tcp_hdr = (size_t)(p[ip_hdr + 12] >> 4) * 4;
	return ip_len > ip_hdr + tcp_hdr ? ip_len - ip_hdr - tcp_hdr : 0;
}

/* The segment that ends a write of the service's: data, and PSH (the last
 * segment of what one send() gave TCP; an answer larger than a segment
 * goes out whole before it).  A segment whose IPv4 header says no length
 * (BIG TCP's, over 64 KiB) is not seen: the wait runs to its bound. */
bool net_tcp_answer_end(const uint8_t *p, size_t len)
{
	if (!net_tcp_payload(p, len))
		return false;
	size_t ip_hdr = (p[0] >> 4) == 4 ? (size_t)(p[0] & 15) * 4 : 40;
	return len > ip_hdr + 13 && (p[ip_hdr + 13] & 0x08);
}

int net_answer_wait(struct net_answer_watch *w, unsigned timeout_ms)
{
	uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000;
	uint8_t pkt[SNAP];

	for (;;) {
		ssize_t n;
		while ((n = recv(w->fd, pkt, sizeof(pkt), 0)) >= 0) {
			w->segments++;
			if (net_tcp_answer_end(pkt, (size_t)n))
				return 1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return dm_fail(neg_errno(), "reading the service's answers: %m");
		uint64_t now = clock_ns();
		if (now >= deadline)
			return 0;
		struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
		int left = (int)((deadline - now + 999999) / 1000000);
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return dm_fail(neg_errno(), "waiting for the service's answers: %m");
	}
}

uint64_t net_answer_segments(const struct net_answer_watch *w)
{
	return w ? w->segments : 0;
}

void net_answer_watch_stop(struct net_answer_watch *w)
{
	if (w)
		net_packet_socket_stop(w->fd); /* it only costs: a segment more read */
}

void net_answer_watch_free(struct net_answer_watch *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w);
}
