#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A client that asks a service every INTERVAL (default 5 ms) and measures
the largest gap between two right answers: the downtime a user of the
service sees.  Runs until SIGTERM (or --seconds), then prints one JSON
object on stdout.

  gapclient.py http|redis TARGETS [--interval S] [--timeout S] [--ready FILE]

TARGETS: HOST:PORT[,HOST:PORT...]; a request that fails moves to the next
target (a service that moved to another host's published port).
  http   GET /index.html on a new connection each time (HTTP/1.0);
  redis  INCR bench:count on one connection, made again after an error;
         its answers count up by one: "redis_jumps" counts the answers that
         do not (an INCR whose answer was lost in the move skips one),
         "redis_back" those that went back (writes lost: a restarted redis)
--ready FILE is written at the first right answer; --status FILE holds the
time of the latest right answer (rewritten at most every 50 ms)."""
import argparse
import json
import os
import signal
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("kind", choices=["http", "redis"])
ap.add_argument("targets")
ap.add_argument("--interval", type=float, default=0.005)
ap.add_argument("--timeout", type=float, default=1.0)
ap.add_argument("--seconds", type=float, default=0)
ap.add_argument("--ready")
ap.add_argument("--status")
a = ap.parse_args()
targets = []
for t in a.targets.split(","):
    h, p = t.rsplit(":", 1)
    targets.append((h, int(p)))

stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

cur = 0
conn = None
last_incr = None
st = {"requests": 0, "right": 0, "errors": 0, "reconnects": 0, "redis_jumps": 0, "redis_back": 0,
      "max_gap_ms": 0.0, "gap_from": None, "gap_to": None, "first": None, "last": None,
      "last_error": None}


def http_once(h, p):
    with socket.create_connection((h, p), timeout=a.timeout) as s:
        s.settimeout(a.timeout)
        s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    if not buf.startswith(b"HTTP/1.") or b" 200 " not in buf.split(b"\r\n", 1)[0]:
        raise OSError("bad answer: %r" % buf[:60])


def redis_once(h, p):
    global conn, last_incr
    if conn is None:
        conn = socket.create_connection((h, p), timeout=a.timeout)
        conn.settimeout(a.timeout)
        st["reconnects"] += 1
    conn.sendall(b"*2\r\n$4\r\nINCR\r\n$11\r\nbench:count\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        d = conn.recv(4096)
        if not d:
            raise OSError("connection closed")
        buf += d
    if not buf.startswith(b":"):
        raise OSError("bad answer: %r" % buf[:60])
    v = int(buf[1:].strip())
    if last_incr is not None and v != last_incr + 1:
        st["redis_jumps"] += 1
        if v <= last_incr:
            st["redis_back"] += 1
    last_incr = v


once = http_once if a.kind == "http" else redis_once
start = time.monotonic()
nxt = start
prev = None
status_at = 0.0
while not stop and (a.seconds == 0 or time.monotonic() - start < a.seconds):
    st["requests"] += 1
    h, p = targets[cur]
    try:
        once(h, p)
        now = time.time()
        st["right"] += 1
        if prev is not None and (now - prev) * 1000 > st["max_gap_ms"]:
            st["max_gap_ms"] = (now - prev) * 1000
            st["gap_from"], st["gap_to"] = prev, now
        if st["first"] is None:
            st["first"] = now
            if a.ready:
                open(a.ready, "w").close()
        st["last"] = now
        prev = now
        if a.status and now - status_at >= 0.05:
            with open(a.status + ".tmp", "w") as f:
                f.write("%.6f\n" % now)
            os.rename(a.status + ".tmp", a.status)
            status_at = now
    except (OSError, ValueError) as e:
        st["errors"] += 1
        st["last_error"] = "%s:%d: %s" % (h, p, e)
        if conn is not None:
            conn.close()
            conn = None
        cur = (cur + 1) % len(targets)
    nxt += a.interval
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
    else:
        nxt = time.monotonic()
st["max_gap_ms"] = round(st["max_gap_ms"], 1)
print(json.dumps(st), flush=True)
