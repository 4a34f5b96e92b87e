/* SPDX-License-Identifier: MIT */
/*
 * After a container moved, its address is announced on its segment, as a
 * host that comes up does: a gratuitous ARP request (IPv4: sender and target
 * address both the container's, to the broadcast address) and an unsolicited
 * neighbour advertisement with the override flag (IPv6, RFC 4861 7.2.6, to
 * all nodes).  The bridges between the client and the new host learn the MAC
 * on the new port at once and the neighbours refresh their entries, instead
 * of waiting for the container's next packet.
 */
#define LOG_PREFIX "announce: "
#include "net/inet.h"
#include "base/log.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct garp {
	uint16_t htype, ptype;
	uint8_t hlen, plen;
	uint16_t op;
	uint8_t sha[6], spa[4], tha[6], tpa[4];
} __attribute__((packed));
_Static_assert(sizeof(struct garp) == 28, "ARP for IPv4 over Ethernet is 28 bytes");

struct una {
	struct nd_neighbor_advert na;
	uint8_t opt_type, opt_len, mac[6];   /* target link-layer address option */
} __attribute__((packed));
_Static_assert(sizeof(struct una) == 32, "NA with one link-layer option is 32 bytes");

static int mac_of(int fd, const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr = {};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return neg_errno();
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

static int arp(unsigned ifindex, const char *ifname, const struct in_addr *a)
{
	_cleanup_close_ int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	struct garp g = { .htype = htons(1), .ptype = htons(ETH_P_IP), .hlen = 6, .plen = 4,
			  .op = htons(1) };
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				  .sll_ifindex = (int)ifindex, .sll_halen = 6 };
	int r;

	if (fd < 0)
		return dm_fail(neg_errno(), "%s: AF_PACKET socket: %m", ifname);
	r = mac_of(fd, ifname, g.sha);
	if (r < 0)
		return dm_fail(r, "%s: its MAC address: %s", ifname, strerror(-r));
	memcpy(g.spa, a, 4);
	memcpy(g.tpa, a, 4);
	memset(to.sll_addr, 0xff, 6);
	if (sendto(fd, &g, sizeof(g), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return dm_fail(neg_errno(), "%s: gratuitous ARP: %m", ifname);
	return 0;
}

static int na(unsigned ifindex, const char *ifname, const struct in6_addr *a)
{
	_cleanup_close_ int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	struct una m = { .opt_type = ND_OPT_TARGET_LINKADDR, .opt_len = 1 };
	struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_addr = *a };
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_scope_id = ifindex };
	int hops = 255, r;

	if (fd < 0)
		return dm_fail(neg_errno(), "%s: ICMPv6 socket: %m", ifname);
	r = mac_of(fd, ifname, m.mac);
	if (r < 0)
		return dm_fail(r, "%s: its MAC address: %s", ifname, strerror(-r));
	m.na.nd_na_type = ND_NEIGHBOR_ADVERT;
	m.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
	m.na.nd_na_target = *a;
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	/* a receiver drops an NA whose hop limit is not 255 (it could come from off-link);
	 * the kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket */
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
	    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		return dm_fail(neg_errno(), "%s: ICMPv6 socket for the advertisement: %m", ifname);
	if (sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return dm_fail(neg_errno(), "%s: unsolicited neighbour advertisement: %m", ifname);
	return 0;
}

int net_announce(const char *ifname, const char *addr)
{
	char a[INET6_ADDRSTRLEN + 8];
	union { struct in_addr v4; struct in6_addr v6; } ad;
	unsigned ifindex = if_nametoindex(ifname);

	if (!ifindex)
		return dm_fail(neg_errno(), "no interface %s to announce %s on: %m", ifname, addr);
	snprintf(a, sizeof(a), "%s", addr);
	a[strcspn(a, "/")] = 0;
	if (inet_pton(AF_INET, a, &ad.v4) == 1)
		return arp(ifindex, ifname, &ad.v4);
	if (inet_pton(AF_INET6, a, &ad.v6) != 1)
		return dm_fail(-EINVAL, "%s: bad address '%s'", ifname, addr);
	/* a link-local address is the interface's own: nobody else had it */
	if (IN6_IS_ADDR_LINKLOCAL(&ad.v6))
		return 0;
	return na(ifindex, ifname, &ad.v6);
}
