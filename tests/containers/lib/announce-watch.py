#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Wait for a host's announcement of its addresses on a segment.

  announce-watch.py IFACE --ready FILE --timeout S [--v4 ADDR] [--v6 ADDR]

Listens on IFACE (AF_PACKET) and exits 0 once it has seen, for every address
given, a gratuitous ARP (sender address = target address = ADDR) or an
unsolicited neighbour advertisement (ICMPv6 136 to ff02::1, override flag,
target ADDR).  FILE is written once it listens.  Exit 1 at the timeout,
naming what it did not see.
"""
import argparse
import ipaddress
import select
import socket
import sys
import time

ETH_P_ALL = 3

p = argparse.ArgumentParser()
p.add_argument("iface")
p.add_argument("--ready", required=True)
p.add_argument("--timeout", type=float, default=30)
p.add_argument("--v4")
p.add_argument("--v6")
a = p.parse_args()
want = {}
if a.v4:
    want["v4"] = ipaddress.IPv4Address(a.v4).packed
if a.v6:
    want["v6"] = ipaddress.IPv6Address(a.v6).packed

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind((a.iface, 0))
open(a.ready, "w").close()
end = time.monotonic() + a.timeout
while want and time.monotonic() < end:
    r, _, _ = select.select([s], [], [], max(0, end - time.monotonic()))
    if not r:
        break
    f = s.recv(2048)
    if len(f) < 14:
        continue
    et = int.from_bytes(f[12:14], "big")
    if et == 0x0806 and len(f) >= 42 and "v4" in want:
        spa, tpa = f[28:32], f[38:42]
        if spa == tpa == want["v4"]:
            del want["v4"]
    elif et == 0x86DD and len(f) >= 54 + 24 and "v6" in want:
        nh, dst, icmp = f[20], f[38:54], f[54:]
        if nh == 58 and icmp[0] == 136 and dst == ipaddress.IPv6Address("ff02::1").packed \
                and icmp[4] & 0x20 and icmp[8:24] == want["v6"]:
            del want["v6"]
if want:
    print("not announced: " + ", ".join(sorted(want)))
    sys.exit(1)
print("announced")
