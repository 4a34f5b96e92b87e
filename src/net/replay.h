/* SPDX-License-Identifier: MIT */
/*
 * What the network lock drops, kept and delivered later (replay.c).
 *
 * While a container is frozen its network namespace is locked: every TCP
 * packet in or out is dropped, so the kernel acknowledges nothing that is
 * not in the image.  A dropped packet is not lost to TCP (its sender
 * retransmits it) but it costs time: the sender's first retransmission
 * comes after its retransmission timeout, 200 ms at least on Linux, often
 * longer once it has backed off, so the client of a service frozen for
 * 50 ms waited 200-400 ms.  A capture (a packet socket in the namespace,
 * opened before the lock) keeps a copy of every TCP packet that reaches the
 * container from outside while it is locked; once the restored sockets are
 * the connections (the lock open, repair mode off), the copies are
 * delivered to them as if they had just arrived.  TCP takes each exactly as
 * it would the sender's retransmission: bytes it holds already (a packet
 * that got in before the lock) are a duplicate and dropped, the rest is
 * new.  So nothing is acknowledged that the image lacks, and the client's
 * request is answered as soon as the service runs again.
 *
 * The records (NET_FRAMES on the wire, docs/migration.md): for each packet
 * a 4-byte little-endian length, then the IPv4 or IPv6 packet with its TCP
 * segment (no link header).  Only TCP is kept: UDP has no sequence numbers
 * to make a duplicate harmless.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_FRAMES_MAX (1u << 20) /* bytes of records kept (and sent) at most */
#define NET_FRAME_IP_MAX 65535u   /* one packet */

struct net_capture;

struct net_capture_stats {
	uint64_t kept;          /* TCP packets kept */
	uint64_t bytes;         /* their size */
	uint64_t over;          /* TCP packets past NET_FRAMES_MAX, not kept */
	uint64_t lost;          /* dropped by the kernel (the socket's buffer was full) */
};

/*
 * Start keeping the TCP packets that reach the calling thread's network
 * namespace from its interfaces (not loopback).  -errno, dm_fail'ed.
 */
int net_capture_start(struct net_capture **ret);
/*
 * A packet socket in the calling thread's network namespace (SOCK_DGRAM: from
 * the network header on) for TCP over IPv4 and IPv6 of one packet type
 * (PACKET_HOST: received; PACKET_OUTGOING: sent), not through loopback, snap
 * bytes of each: a classic BPF filter, attached before the socket is bound
 * to every protocol, so nothing unfiltered is queued in between.  rcvbuf:
 * its buffer (0: the default); auxdata: PACKET_AUXDATA.  The fd, or -errno.
 * The capture's and net/answer.c's.
 */
int net_tcp_packet_socket(uint32_t pkttype, uint32_t snap, int rcvbuf, bool auxdata);
/* Such a socket queues nothing more (a filter that drops all); 0 or -errno.
 * Its close waits for an RCU grace period: later. */
int net_packet_socket_stop(int fd);
/*
 * Stop: the records of what was kept (malloc'd, NULL and 0 when nothing),
 * the counts in *st (may be NULL).  The capture keeps nothing more (its
 * filter drops all) but stays open: a packet socket's close waits for an
 * RCU grace period (8-16 ms on some machines), so net_capture_free() comes
 * after the switch-over.  Once stopped, a second call returns nothing.
 */
void net_capture_finish(struct net_capture *c, uint8_t **ret_buf, size_t *ret_len, struct net_capture_stats *st);
/* Close (an RCU grace period: not in a frozen window).  NULL: nothing. */
void net_capture_free(struct net_capture *c);

/* Check records from a peer: every packet a well-formed IPv4 or IPv6 TCP
 * packet.  *ret_n: how many.  -EBADMSG, dm_fail'ed, naming the first bad one. */
int net_frames_check(const uint8_t *buf, size_t len, size_t *ret_n);

/*
 * Deliver the records' packets into the calling thread's network
 * namespace, in order, as received packets (a raw socket sends each to its
 * destination, a local address: it comes in through loopback).  *ret_sent:
 * how many went.  A packet the namespace refuses is skipped (its sender
 * retransmits it); -errno only when no raw socket can be made.
 */
int net_frames_inject(const uint8_t *buf, size_t len, size_t *ret_sent);

/* Compute the TCP checksum of packet p in place (a capture does it for a
 * packet whose sender left it to the hardware).  -EBADMSG: not TCP. */
int net_tcp_checksum(uint8_t *p, size_t len);
