#!/usr/bin/python3
"""A service that accepts only when allowed (tests/containers/run.sh,
runc/migrate-accept): listens on port 9000, writes /tmp/dm-acc-ready, and
before each accept() waits while /tmp/dm-acc-hold exists; every accepted
connection is echoed line by line on a thread of its own."""
import os
import socket
import threading
import time


def echo(c):
    while True:
        d = c.recv(4096)
        if not d:
            return
        c.sendall(d)


l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 9000))
l.listen(8)
open("/tmp/dm-acc-ready", "w").close()
while True:
    while os.path.exists("/tmp/dm-acc-hold"):
        time.sleep(0.005)
    c, _ = l.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
