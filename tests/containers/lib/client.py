#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A client of the container tests' services that speaks their protocols
itself (RESP for redis, memcached's text protocol, HTTP/1.1), on ONE TCP
connection, so that a test can tell a kept connection from a new one.

  client.py SERVICE ADDR load N [--size B]      SET keys k:0..k:N-1 (pipelined)
  client.py SERVICE ADDR verify N [--size B]    every key there with its value
  client.py SERVICE ADDR keep --status FILE [--interval-ms MS] [--stop-file F] [--fresh | --stream]

SERVICE: redis | memcached | python-http | nginx (ports as in lib.sh;
--port overrides).  `keep` sends a request every MS milliseconds (redis and
memcached: SET s:I I; http: GET /index.html with keep-alive), checks each
answer, and never reconnects: a closed or broken connection ends it at once
with an error.  It writes FILE (JSON: requests, last, max_gap_ms, error,
done) every 10 requests (from a thread: at most every 50 ms) and at the end; it ends on SIGTERM/SIGINT or when
the stop file exists, after reading every s:I back on the same connection
(redis, memcached).  Exit status 0 only if every answer was right.
--fresh: each request on a connection of its own, made for it and closed
after its answer (a client without keep-alive); the first connection only
reads the values back at the end.  --stream (redis, memcached): requests go
every MS milliseconds without waiting for the answers (a client that
streams: its bytes are in flight whenever the server stops); the answers
are read as they come, max_gap_ms is the longest time between two.
max_gap_ms is the longest time between two answers: a figure for reports
and benchmarks, never a verdict.  SIGUSR1 opens a window and SIGUSR2
closes it (a benchmark's method, from its start to its end): "window" has
the longest time between two answers that overlaps it (max_gap_ms,
max_gap_end_unix), so that a stall of the machine seconds before a
migration is not taken for the migration's, and "gaps": each gap in it
longer than the interval and a millisecond, [end (wall clock), ms] (the
first 400).
"""
import argparse
import json
import os
import signal
import socket
import sys
import time

PORTS = {"redis": 6379, "memcached": 11211, "python-http": 8000, "nginx": 80}


class Conn:
    def __init__(self, addr, port, timeout):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect((addr, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise ConnectionError("the server closed the connection")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d


def value(i, size):
    v = b"v%d-" % i
    return (v * (size // len(v) + 1))[:size] if size > len(v) else v


# ---- protocols: requests as bytes, answers read from the connection

def redis_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_reply(c):
    ln = c.line()
    t, rest = ln[:1], ln[1:]
    if t == b"+":
        return rest
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        d = c.exact(n + 2)
        return d[:-2]
    if t == b":":
        return int(rest)
    raise ValueError("redis: unexpected reply %r" % ln)


def mc_set(key, val):
    return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val)


def mc_get_reply(c, key):
    ln = c.line()
    if ln == b"END":
        return None
    parts = ln.split()
    if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != key:
        raise ValueError("memcached: unexpected reply %r" % ln)
    d = c.exact(int(parts[3]) + 2)[:-2]
    if c.line() != b"END":
        raise ValueError("memcached: no END after the value")
    return d


def http_get(c, host):
    c.send(b"GET /index.html HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n" % host.encode())
    status = c.line()
    if not status.startswith(b"HTTP/1.1 200"):
        raise ValueError("http: %r" % status)
    length = None
    while True:
        h = c.line()
        if not h:
            break
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
        if k.strip().lower() == b"connection" and v.strip().lower() == b"close":
            raise ValueError("http: the server closes the connection after each answer")
    if length is None:
        raise ValueError("http: no Content-Length")
    return c.exact(length)


# ---- load / verify

def batch_set(c, svc, items):
    if svc == "redis":
        c.send(b"".join(redis_cmd("SET", k, v) for k, v in items))
        for k, _ in items:
            r = redis_reply(c)
            if r != b"OK":
                raise ValueError("SET %s: %r" % (k, r))
    else:
        c.send(b"".join(mc_set(k, v) for k, v in items))
        for k, _ in items:
            r = c.line()
            if r != b"STORED":
                raise ValueError("set %s: %r" % (k, r))


def batch_get(c, svc, keys):
    if svc == "redis":
        c.send(b"".join(redis_cmd("GET", k) for k in keys))
        return [redis_reply(c) for _ in keys]
    c.send(b"".join(b"get %s\r\n" % k for k in keys))
    return [mc_get_reply(c, k) for k in keys]


def load(c, svc, n, size, verify):
    bad = 0
    for start in range(0, n, 500):
        idx = range(start, min(n, start + 500))
        keys = [b"k:%d" % i for i in idx]
        if verify:
            got = batch_get(c, svc, keys)
            for i, g in zip(idx, got):
                if g != value(i, size):
                    if bad < 5:
                        print("k:%d: %s" % (i, "missing" if g is None else "wrong value"), file=sys.stderr)
                    bad += 1
        else:
            batch_set(c, svc, [(k, value(i, size)) for k, i in zip(keys, idx)])
    if verify:
        print("%d keys checked, %d missing or wrong" % (n, bad))
    else:
        print("%d keys set (%d bytes each)" % (n, size))
    return bad == 0


# ---- keep

def stream(c, svc, stop, answered, args):
    """--stream: a thread sends, this one reads the answers in order"""
    import threading
    sent = [0]
    err = []

    def sender():
        try:
            while not stop[0] and not (args.stop_file and os.path.exists(args.stop_file)):
                i = sent[0]
                c.send(redis_cmd("SET", b"s:%d" % i, i) if svc == "redis" else mc_set(b"s:%d" % i, b"%d" % i))
                sent[0] = i + 1
                time.sleep(args.interval_ms / 1000.0)
        except OSError as e:
            err.append(e)
        stop[0] = True

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    i = 0
    while not (stop[0] and i >= sent[0]):
        if i >= sent[0]:
            time.sleep(0.001)
            continue
        r = redis_reply(c) if svc == "redis" else c.line()
        if r != (b"OK" if svc == "redis" else b"STORED"):
            raise ValueError("set s:%d: %r" % (i, r))
        answered(i)
        i += 1
    t.join()
    if err:
        raise err[0]
    return i


def keep(c0, svc, host, args):
    st = {"service": svc, "requests": 0, "last": -1, "max_gap_ms": 0.0, "gaps": [], "error": None, "done": False}
    stop = [False]

    def on_signal(*_):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    win = [None, None]  # monotonic: opened, closed

    def on_window(signum, _frame):
        if signum == signal.SIGUSR1:
            win[0], win[1] = time.monotonic(), None
            st["window"] = {"from_unix": time.time(), "max_gap_ms": 0.0, "max_gap_end_unix": None, "gaps": []}
        elif win[0] is not None and win[1] is None:
            win[1] = time.monotonic()
            st["window"]["to_unix"] = time.time()
    signal.signal(signal.SIGUSR1, on_window)
    signal.signal(signal.SIGUSR2, on_window)

    import threading
    wlock = threading.Lock()

    def write():
        with wlock:
            tmp = args.status + ".tmp"
            text = json.dumps(st)  # one call: the loop cannot change st meanwhile
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, args.status)

    # the status goes from a thread of its own: a rename on a disk file
    # system may wait for the journal (30 ms and more here), and in the
    # request loop such a wait was a gap of the client's own
    dirty = threading.Event()

    def writer():
        while True:
            dirty.wait()
            dirty.clear()
            write()
            time.sleep(0.05)

    write()
    threading.Thread(target=writer, daemon=True).start()
    prev = [time.monotonic()]

    def answered(i):
        """request i was answered right: the gap since the last answer (and
        when the largest ended, wall clock: to place it among a migration's
        --stats timestamps), the counts"""
        now = time.monotonic()
        gap = (now - prev[0]) * 1000.0
        if gap > st["max_gap_ms"]:
            st["max_gap_ms"] = gap
            st["max_gap_end_unix"] = time.time()
        w = st.get("window")
        # a gap that overlaps the window: it ends after it opened, began before it closed
        if w is not None and now >= win[0] and (win[1] is None or prev[0] <= win[1]):
            if gap > w["max_gap_ms"]:
                w["max_gap_ms"] = gap
                w["max_gap_end_unix"] = time.time()
            # and every one a millisecond longer than the interval (when it
            # ended, wall clock; ms): the one that spans a switch-over is
            # found among them whether or not it was the largest
            if gap > args.interval_ms + 1.0 and len(w["gaps"]) < 400:
                w["gaps"].append([round(time.time(), 4), round(gap, 1)])
        if gap > 15 and len(st["gaps"]) < 20:
            # every long one (when it ended, wall clock; ms): one before the
            # freeze is the preparation's, not the switch-over's
            st["gaps"].append([round(time.time(), 4), round(gap, 1)])
        prev[0] = now
        st["requests"] += 1
        st["last"] = i
        if (i + 1) % 10 == 0:
            dirty.set()

    i = 0
    try:
        if args.stream:
            i = stream(c0, svc, stop, answered, args)
        while not args.stream and not stop[0] and not (args.stop_file and os.path.exists(args.stop_file)):
            c = Conn(host, args.port or PORTS[svc], args.timeout) if args.fresh else c0
            if svc == "redis":
                c.send(redis_cmd("SET", b"s:%d" % i, i))
                r = redis_reply(c)
                if r != b"OK":
                    raise ValueError("SET s:%d: %r" % (i, r))
            elif svc == "memcached":
                c.send(mc_set(b"s:%d" % i, b"%d" % i))
                r = c.line()
                if r != b"STORED":
                    raise ValueError("set s:%d: %r" % (i, r))
            else:
                body = http_get(c, host)
                if body != b"dmigrate %s\n" % svc.encode():
                    raise ValueError("GET: %r" % body[:80])
            if args.fresh:
                c.s.close()
            answered(i)
            i += 1
            time.sleep(args.interval_ms / 1000.0)
        # every value written on this connection is there
        if svc in ("redis", "memcached"):
            for start in range(0, i, 500):
                idx = range(start, min(i, start + 500))
                got = batch_get(c0, svc, [b"s:%d" % j for j in idx])
                for j, g in zip(idx, got):
                    if g != b"%d" % j:
                        raise ValueError("s:%d: %s after the run" % (j, "missing" if g is None else "wrong"))
        st["done"] = True
    except (OSError, ValueError, ConnectionError) as e:
        st["error"] = "request %d: %s" % (i, e)
    write()
    print(json.dumps(st))
    return st["error"] is None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("service", choices=sorted(PORTS))
    p.add_argument("addr")
    p.add_argument("mode", choices=["load", "verify", "keep"])
    p.add_argument("n", nargs="?", type=int, default=0)
    p.add_argument("--port", type=int)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--status")
    p.add_argument("--interval-ms", type=float, default=5.0)
    p.add_argument("--stop-file")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds one answer may take (a migration's downtime is far below)")
    args = p.parse_args()
    port = args.port or PORTS[args.service]
    if args.mode in ("load", "verify") and args.service not in ("redis", "memcached"):
        p.error("load/verify: redis or memcached")
    if args.mode == "keep" and not args.status:
        p.error("keep: --status FILE")
    if args.stream and (args.fresh or args.service not in ("redis", "memcached")):
        p.error("--stream: redis or memcached, without --fresh")
    try:
        c = Conn(args.addr, port, args.timeout)
    except OSError as e:
        print("cannot connect to %s port %d: %s" % (args.addr, port, e), file=sys.stderr)
        return 1
    try:
        if args.mode == "keep":
            ok = keep(c, args.service, args.addr, args)
        else:
            ok = load(c, args.service, args.n, args.size, args.mode == "verify")
    except (OSError, ValueError, ConnectionError) as e:
        print("%s %s: %s" % (args.service, args.mode, e), file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
