#!/usr/bin/python3
"""One redis connection that writes when told to (tests/containers/run.sh,
runc/migrate-replay-*): connect to ADDR:6379, write our local port to
DIR/port, wait for DIR/go, send one SET, write DIR/sent, then wait (up to
--timeout s) for the answer and write it to DIR/answer."""
import argparse, os, socket, time

ap = argparse.ArgumentParser()
ap.add_argument("addr")
ap.add_argument("dir")
ap.add_argument("--key", default="dm-replay")
ap.add_argument("--timeout", type=float, default=120)
a = ap.parse_args()

def put(name, text):
    tmp = os.path.join(a.dir, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(a.dir, name))

s = socket.create_connection((a.addr, 6379), timeout=10)
put("port", str(s.getsockname()[1]))
end = time.monotonic() + a.timeout
while not os.path.exists(os.path.join(a.dir, "go")):
    if time.monotonic() > end:
        raise SystemExit("never told to send")
    time.sleep(0.02)
s.sendall(b"SET %s sent-while-frozen\r\n" % a.key.encode())
put("sent", "")
s.settimeout(max(1.0, end - time.monotonic()))
got = b""
while not got.endswith(b"\r\n"):
    k = s.recv(64)
    if not k:
        break
    got += k
put("answer", got.decode(errors="replace").strip())
