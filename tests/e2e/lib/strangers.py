# SPDX-License-Identifier: MIT
# Clients without the key that connect to dmigrated and say nothing.
#   strangers.py HOST PORT N SECONDS
# Opens N silent connections, then one more: the daemon must close the extra
# one at once (its per-address limit is N) while the N are still waiting for
# their handshake.  Prints "extra refused" or "extra NOT refused: why" and
# then, for SECONDS, keeps N silent connections open (a connection the
# daemon drops at its handshake deadline is opened again).  Exit 1 if the
# extra one was not refused.
import select, socket, sys, time

host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


def closed(s, wait):
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        return s.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


conns = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
extra = socket.create_connection((host, port), timeout=10)
if not closed(extra, 30):
    verdict = "extra NOT refused: still open after 30 s"
else:
    still = sum(1 for s in conns if not closed(s, 0))
    verdict = "extra refused" if still == n else \
        "extra NOT refused: closed only after %d of the %d silent ones" % (n - still, n)
print(verdict, flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for i, s in enumerate(conns):
        if closed(s, 0):
            s.close()
            try:
                conns[i] = socket.create_connection((host, port), timeout=10)
            except OSError:
                pass
    time.sleep(0.2)
sys.exit(0 if verdict == "extra refused" else 1)
