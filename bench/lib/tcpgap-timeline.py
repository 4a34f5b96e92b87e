#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The capture of bench/tcpgap.sh (tcpdump -n -tt text on stdin): the
largest gap between two segments with data from the server, and what each
side sent again (a data segment whose sequence range it had sent before)
inside it.  Prints one JSON object; with VERBOSE=1 the capture around the
gap goes to stderr, times in ms from T0 (the migration's start).

    tcpgap-timeline.py T0 SERVER_ADDR.PORT VERBOSE
"""
import json
import re
import sys

t0, server, verbose = float(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
seg = re.compile(r"IP6? (\S+) > (\S+): Flags \[[^\]]*\], seq (\d+):(\d+),")
lines, data = [], []          # (ms, text); (ms, from_server, start, end)
for raw in sys.stdin:
    parts = raw.split(" ", 1)
    try:
        ms = (float(parts[0]) - t0) * 1000.0
    except ValueError:
        continue
    text = parts[1].rstrip("\n") if len(parts) > 1 else ""
    lines.append((ms, text))
    m = seg.search(text)
    if m:
        data.append((ms, m.group(1) == server, int(m.group(3)), int(m.group(4))))

best = (0.0, None, None)
prev = None
for ms, from_server, _, _ in data:
    if not from_server:
        continue
    if prev is not None and ms - prev > best[0]:
        best = (ms - prev, prev, ms)
    prev = ms
gap, a, b = best
seen = {True: set(), False: set()}
resent = {True: 0, False: 0}
for ms, from_server, start, end in data:
    if (start, end) in seen[from_server] and a is not None and a <= ms <= b:
        resent[from_server] += 1
    seen[from_server].add((start, end))
out = {"gap_capture_ms": round(gap, 1), "client_resent": resent[False], "server_resent": resent[True]}
if a is not None:
    out.update({"gap_from_ms": round(a, 1), "gap_to_ms": round(b, 1)})
    if verbose:
        for ms, text in lines:
            if a - 1 <= ms <= b + 1:
                print("%9.1f %s" % (ms, text[:150]), file=sys.stderr)
print(json.dumps(out))
