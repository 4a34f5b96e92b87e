/* SPDX-License-Identifier: MIT */
/*
 * What the network lock drops, kept and delivered later: see replay.h.
 *
 * The capture is a packet socket (SOCK_DGRAM: the network header on,
 * without the link's) in the container's namespace.  Taps on received
 * packets run before the IP layer and its netfilter hooks, so it sees what
 * the lock then drops.  A classic BPF filter keeps only TCP over IPv4 and
 * IPv6 addressed to this host, not through loopback; the socket is made for
 * no protocol, filtered, then bound to all of them, so nothing unfiltered
 * is queued in between.  The packets wait in the socket's buffer until the
 * migration takes them (a frozen window is short); a packet whose checksum
 * a local sender left to the hardware (TP_STATUS_CSUMNOTREADY, from
 * another namespace of this machine) gets it computed.
 *
 * Delivery: a raw socket with the IP header included, in the namespace of
 * the restored tree, sends each packet to its destination address, which
 * is local there: it loops back and enters TCP as a received packet would,
 * checksum checked.
 */
#define LOG_PREFIX "net: "
#include "net/replay.h"
#include "base/log.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36
#endif

struct net_capture {
	int fd;
	bool stopped;           /* read, and its filter drops all */
	struct net_capture_stats st;
};

/* The offset of the TCP segment of packet p, or 0 if p is not a whole,
 * well-formed IPv4 or IPv6 TCP packet (no fragment, no extension header). */
static size_t tcp_offset(const uint8_t *p, size_t len)
{
	size_t off;

	if (len < 20 || len > NET_FRAME_IP_MAX)
		return 0;
	switch (p[0] >> 4) {
	case 4:
		off = (size_t)(p[0] & 15) * 4;
		if (off < 20 || off + 20 > len || ((size_t)p[2] << 8 | p[3]) != len || p[9] != IPPROTO_TCP ||
		    (p[6] & 0x3f) || p[7]) /* MF or a fragment offset */
			return 0;
		break;
	case 6:
		off = 40;
		if (len < off + 20 || ((size_t)p[4] << 8 | p[5]) + 40 != len || p[6] != IPPROTO_TCP)
			return 0;
		break;
	default:
		return 0;
	}
	size_t doff = (size_t)(p[off + 12] >> 4) * 4;
	return doff >= 20 && off + doff <= len ? off : 0;
}

static uint64_t sum16(const uint8_t *p, size_t n, uint64_t s)
{
	for (; n > 1; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

/* The TCP checksum of packet p (segment at off), written in place. */
static void tcp_checksum(uint8_t *p, size_t len, size_t off)
{
	size_t seg = len - off;
	uint64_t s = 0;

	if ((p[0] >> 4) == 4)
		s = sum16(p + 12, 8, s);        /* source and destination */
	else
		s = sum16(p + 8, 32, s);
	s += IPPROTO_TCP + seg;
	p[off + 16] = p[off + 17] = 0;
	s = sum16(p + off, seg, s);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	uint16_t c = (uint16_t)~s;
	p[off + 16] = (uint8_t)(c >> 8);
	p[off + 17] = (uint8_t)c;
}

int net_tcp_checksum(uint8_t *p, size_t len)
{
	size_t off = tcp_offset(p, len);

	if (!off)
		return -EBADMSG;
	tcp_checksum(p, len, off);
	return 0;
}

int net_tcp_packet_socket(uint32_t pkttype, uint32_t snap, int rcvbuf, bool auxdata)
{
	const struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, pkttype, 0, 10),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_IFINDEX)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 8, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PROTOCOL)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 2),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),          /* IPv4: protocol */
		BPF_JUMP(BPF_JMP | BPF_JA, 2, 0, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 3),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),          /* IPv6: next header */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, snap),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(code), .filter = (struct sock_filter *)code };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;

	if (fd < 0)
		return neg_errno();
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0 ||
	    (auxdata && setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0) ||
	    (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	return fd;
}

int net_packet_socket_stop(int fd)
{
	struct sock_filter none[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog drop = { .len = ARRAY_SIZE(none), .filter = none };
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &drop, sizeof(drop)) < 0 ? neg_errno() : 0;
}

int net_capture_start(struct net_capture **ret)
{
	/* received (PACKET_HOST), not on loopback (ifindex 1), TCP over IPv4 or IPv6 */
	int fd = net_tcp_packet_socket(PACKET_HOST, 0x40000, 16 << 20, true);

	if (fd < 0)
		return dm_fail(fd, "cannot set up the packet socket that keeps what the network lock drops: %s",
			       strerror(-fd));
	*ret = xcalloc(1, sizeof(**ret));
	(*ret)->fd = fd;
	return 0;
}

void net_capture_free(struct net_capture *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

void net_capture_finish(struct net_capture *c, uint8_t **ret_buf, size_t *ret_len, struct net_capture_stats *st)
{
	_cleanup_free_ uint8_t *pkt = xmalloc(NET_FRAME_IP_MAX + 1);
	uint8_t *buf = NULL;
	size_t len = 0;

	*ret_buf = NULL;
	*ret_len = 0;
	if (!c || c->stopped) {
		if (st)
			*st = c ? c->st : (struct net_capture_stats){ 0 };
		return;
	}
	/* nothing more is queued: then what is there is read */
	int rs = net_packet_socket_stop(c->fd);
	if (rs < 0)
		pr_warn("the network lock's capture: cannot stop it: %s", strerror(-rs));
	c->stopped = true;
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
		struct iovec iov = { .iov_base = pkt, .iov_len = NET_FRAME_IP_MAX + 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t k = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		size_t n = (size_t)k, off = n <= NET_FRAME_IP_MAX ? tcp_offset(pkt, n) : 0;
		if (!off) {
			c->st.over += n > NET_FRAME_IP_MAX;
			continue;
		}
		for (struct cmsghdr *m = CMSG_FIRSTHDR(&mh); m; m = CMSG_NXTHDR(&mh, m)) {
			struct tpacket_auxdata aux;
			if (m->cmsg_level != SOL_PACKET || m->cmsg_type != PACKET_AUXDATA)
				continue;
			memcpy(&aux, CMSG_DATA(m), sizeof(aux));
			if (aux.tp_status & TP_STATUS_CSUMNOTREADY)
				tcp_checksum(pkt, n, off);
		}
		if (len + 4 + n > NET_FRAMES_MAX) {
			c->st.over++;
			continue;
		}
		buf = xrealloc(buf, len + 4 + n);
		uint32_t le = htole32((uint32_t)n);
		memcpy(buf + len, &le, 4);
		memcpy(buf + len + 4, pkt, n);
		len += 4 + n;
		c->st.kept++;
		c->st.bytes += n;
	}
	struct tpacket_stats ts;
	socklen_t tl = sizeof(ts);
	if (!getsockopt(c->fd, SOL_PACKET, PACKET_STATISTICS, &ts, &tl))
		c->st.lost += ts.tp_drops;
	if (st)
		*st = c->st;
	*ret_buf = buf;
	*ret_len = len;
}

/* the next record at *pos: its packet and length; 0 at the end, -EBADMSG */
static int next_record(const uint8_t *buf, size_t len, size_t *pos, const uint8_t **p, size_t *n)
{
	uint32_t le;

	if (*pos == len)
		return 0;
	if (len - *pos < 4)
		return -EBADMSG;
	memcpy(&le, buf + *pos, 4);
	*n = le32toh(le);
	if (*n > len - *pos - 4)
		return -EBADMSG;
	*p = buf + *pos + 4;
	*pos += 4 + *n;
	return 1;
}

int net_frames_check(const uint8_t *buf, size_t len, size_t *ret_n)
{
	const uint8_t *p;
	size_t pos = 0, n, i = 0;
	int r;

	if (len > NET_FRAMES_MAX)
		return dm_fail(-EBADMSG, "%zu bytes of packets to deliver (at most %u)", len, NET_FRAMES_MAX);
	while ((r = next_record(buf, len, &pos, &p, &n)) > 0) {
		if (!tcp_offset(p, n))
			return dm_fail(-EBADMSG, "packet %zu of those to deliver is not a TCP packet over IPv4 or IPv6", i);
		i++;
	}
	if (r < 0)
		return dm_fail(r, "packet %zu of those to deliver runs past their end", i);
	*ret_n = i;
	return 0;
}

/*
 * Is the packet's destination an address of this namespace?  A packet for
 * another one (a Docker container on a default bridge gets another address
 * on another host) would not loop back: it would be routed out, a forged
 * packet on the network.  Asked by binding a datagram socket to it.
 */
static bool dest_local(const uint8_t *p)
{
	bool v6 = (p[0] >> 4) == 6;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a = { 0 };
	socklen_t al;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	if (v6) {
		a.in6.sin6_family = AF_INET6;
		memcpy(&a.in6.sin6_addr, p + 24, 16);
		al = sizeof(a.in6);
	} else {
		a.in.sin_family = AF_INET;
		memcpy(&a.in.sin_addr, p + 16, 4);
		al = sizeof(a.in);
	}
	bool ok = bind(fd, &a.sa, al) == 0;
	close(fd);
	return ok;
}

int net_frames_inject(const uint8_t *buf, size_t len, size_t *ret_sent)
{
	uint8_t last[16] = { 0 };
	size_t last_len = 0;
	bool last_ok = false;
	int fd[2] = { -1, -1 }, r = 0;
	const uint8_t *p;
	size_t pos = 0, n, sent = 0;

	while (next_record(buf, len, &pos, &p, &n) > 0) {
		bool v6 = (p[0] >> 4) == 6;
		union {
			struct sockaddr sa;
			struct sockaddr_in in;
			struct sockaddr_in6 in6;
		} to = { 0 };
		socklen_t tl;

		if (!tcp_offset(p, n))
			continue;
		/* one answer per address in a row (they come in runs) */
		size_t al = v6 ? 16 : 4;
		const uint8_t *da = p + (v6 ? 24 : 16);
		if (al != last_len || memcmp(last, da, al)) {
			memcpy(last, da, al);
			last_len = al;
			last_ok = dest_local(p);
			if (!last_ok)
				pr_debug("kept packets for an address that is not here are not delivered");
		}
		if (!last_ok)
			continue;
		if (fd[v6] < 0) {
			int one = 1;
			fd[v6] = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
			if (fd[v6] >= 0 && v6 && setsockopt(fd[v6], IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof(one)) < 0) {
				close(fd[v6]);
				fd[v6] = -1;
			}
			if (fd[v6] < 0) {
				r = dm_fail(neg_errno(), "cannot open a raw socket to deliver what the network lock dropped: %m");
				break;
			}
		}
		if (v6) {
			to.in6.sin6_family = AF_INET6;
			memcpy(&to.in6.sin6_addr, p + 24, 16);
			tl = sizeof(to.in6);
		} else {
			to.in.sin_family = AF_INET;
			memcpy(&to.in.sin_addr, p + 16, 4);
			tl = sizeof(to.in);
		}
		if (sendto(fd[v6], p, n, 0, &to.sa, tl) == (ssize_t)n)
			sent++;
		else
			pr_debug("a kept packet was not delivered: %m");
	}
	for (int i = 0; i < 2; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	*ret_sent = sent;
	return r;
}
