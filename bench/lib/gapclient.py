#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A client that asks a service every INTERVAL (default 5 ms) and measures
the largest gap between two right answers: the downtime a user of the
service sees.  Runs until SIGTERM (or --seconds), then prints one JSON
object on stdout.

  gapclient.py http|redis TARGETS [--interval S] [--timeout S] [--ready FILE]

TARGETS: HOST:PORT[,HOST:PORT...]; a request that fails moves to the next
target (a service that moved to another host's published port).
  http   GET /index.html on a new connection each time (HTTP/1.0), each
         in a thread of its own: a request whose SYN was lost (the kernel
         sends it again only after a second) does not hold back the next
         ones, so the gap is the service's, to within INTERVAL; at most
         --max-pending at once (a tick that finds that many is skipped);
  redis  INCR bench:count on one connection, made again after an error;
         its answers count up by one: "redis_jumps" counts the answers that
         do not (an INCR whose answer was lost in the move skips one),
         "redis_back" those that went back (writes lost: a restarted redis)
Only answers before the SIGTERM end a gap (after it no request is made, so a
late answer would make a gap of the client's own).
--ready FILE is written at the first right answer; --status FILE holds the
time of the latest right answer (rewritten at most every 50 ms); --trace FILE
gets a line per answer: its time, "ok" or "err", the target and the error."""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("kind", choices=["http", "redis"])
ap.add_argument("targets")
ap.add_argument("--interval", type=float, default=0.005)
ap.add_argument("--timeout", type=float, default=3.0)
ap.add_argument("--max-pending", type=int, default=400)
ap.add_argument("--seconds", type=float, default=0)
ap.add_argument("--ready")
ap.add_argument("--status")
ap.add_argument("--trace")
a = ap.parse_args()
targets = []
for t in a.targets.split(","):
    h, p = t.rsplit(":", 1)
    targets.append((h, int(p)))

stop = False
trace = []


stopped_at = None


def on_term(*_):
    global stop, stopped_at
    stop = True
    stopped_at = time.time()


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

cur = 0
conn = None
last_incr = None
st = {"requests": 0, "right": 0, "errors": 0, "reconnects": 0, "redis_jumps": 0, "redis_back": 0,
      "max_gap_ms": 0.0, "gap_from": None, "gap_to": None, "first": None, "last": None,
      "last_error": None, "skipped": 0}


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


lock = threading.Lock()
prev = None
pending = 0


def right(h, p):
    """an answer came right, now (the time is taken under the lock: the
    answers are counted in the order of their times)"""
    global prev
    with lock:
        now = time.time()
        st["right"] += 1
        if a.trace:
            trace.append("%.6f ok %s:%d" % (now, h, p))
        # an answer after the stop (a request whose SYN was lost, answered
        # on the kernel's retry a second later) ends no gap: no request
        # was made after the stop that could have been answered earlier
        late = stopped_at is not None and now > stopped_at
        if not late and prev is not None and (now - prev) * 1000 > st["max_gap_ms"]:
            st["max_gap_ms"] = (now - prev) * 1000
            st["gap_from"], st["gap_to"] = prev, now
        if st["first"] is None:
            st["first"] = now
            if a.ready:
                open(a.ready, "w").close()
        if prev is None or now > prev:
            prev = now
            st["last"] = now


def wrong(h, p, e):
    with lock:
        st["errors"] += 1
        st["last_error"] = "%s:%d: %s" % (h, p, e)
        if a.trace:
            trace.append("%.6f err %s:%d %s" % (time.time(), h, p, e))


def http_job(h, p):
    global pending, cur
    try:
        http_once(h, p)
        right(h, p)
    except (OSError, ValueError) as e:
        wrong(h, p, e)
        with lock:
            if targets[cur] == (h, p):
                cur = (cur + 1) % len(targets)
    finally:
        with lock:
            pending -= 1


def status_writer():
    """the time of the last right answer in --status every 50 ms, from a
    thread of its own: a rename on a disk file system may wait for the
    journal (30 ms and more here), which in the answer path (under the
    lock) was a gap of the client's own"""
    done = None
    while True:
        time.sleep(0.05)
        with lock:
            last = st["last"]
        if last is not None and last != done:
            with open(a.status + ".tmp", "w") as f:
                f.write("%.6f\n" % last)
            os.rename(a.status + ".tmp", a.status)
            done = last


if a.status:
    threading.Thread(target=status_writer, daemon=True).start()
start = time.monotonic()
nxt = start
while not stop and (a.seconds == 0 or time.monotonic() - start < a.seconds):
    h, p = targets[cur]
    if a.kind == "http":
        with lock:
            busy = pending >= a.max_pending
            if not busy:
                pending += 1
                st["requests"] += 1
            else:
                st["skipped"] += 1
        if not busy:
            threading.Thread(target=http_job, args=(h, p), daemon=True).start()
    else:
        st["requests"] += 1
        try:
            redis_once(h, p)
            right(h, p)
        except (OSError, ValueError) as e:
            wrong(h, p, e)
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
# the requests under way end within their timeout
end = time.monotonic() + a.timeout + 1
while pending and time.monotonic() < end:
    time.sleep(0.01)
st["max_gap_ms"] = round(st["max_gap_ms"], 1)
if a.trace:
    with open(a.trace, "w") as f:
        f.write("".join(t + "\n" for t in trace))
print(json.dumps(st), flush=True)
