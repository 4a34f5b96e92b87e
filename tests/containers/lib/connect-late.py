#!/usr/bin/python3
"""Connect to ADDR:PORT at once, write DIR/connected, wait for DIR/go, send
one line and write what comes back to DIR/answer (runc/migrate-accept)."""
import os
import socket
import sys
import time

addr, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((addr, port), timeout=10)
open(os.path.join(d, "connected"), "w").close()
end = time.monotonic() + 180
while not os.path.exists(os.path.join(d, "go")):
    if time.monotonic() > end:
        raise SystemExit("never told to send")
    time.sleep(0.02)
s.settimeout(60)
s.sendall(b"ping\n")
got = b""
while not got.endswith(b"\n"):
    k = s.recv(64)
    if not k:
        break
    got += k
with open(os.path.join(d, "answer.tmp"), "w") as f:
    f.write(got.decode(errors="replace").strip())
os.rename(os.path.join(d, "answer.tmp"), os.path.join(d, "answer"))
