# SPDX-License-Identifier: MIT
# e2e workload that forks: like counter.py (a counter, a 16 MiB buffer whose
# digest it checks: "N HOST ok|BAD"), and every 5th step it forks a child
# that lives on by itself (until killed: the parent kills the oldest beyond
# 4) and checks its copy of the buffer every 2 s ("child N.K HOST ok|BAD"):
# a copy of the tree that ran for a while has children born where it ran.
# A cold 8 MiB buffer is checked once, 15 steps after each move.
import hashlib, os, signal, socket, sys, time

out = open(sys.argv[1], "a", buffering=1)
if os.environ.get("FORKER_CATCH_CONT") == "1":
    # a tree that sees a SIGCONT (e2e safety/src-commit-unsent/.../sigcont-handler)
    signal.signal(signal.SIGCONT, lambda *_: out.write("sigcont %s\n" % socket.gethostname()))
buf = bytearray(hashlib.sha256(str(k).encode()).digest()[k % 32] for k in range(1 << 16)) * 256
want = hashlib.md5(buf).hexdigest()
# a cold buffer, read once 15 steps after each move to another host ("cold N
# HOST ok|BAD"): pages that post-copy brings only if they are asked for
cold = bytearray(hashlib.sha256(str(k).encode()).digest()[(k * 7) % 32] for k in range(1 << 16)) * 128
want_cold = hashlib.md5(cold).hexdigest()
last_host, cold_at = socket.gethostname(), -1
kids = []
i = 0
while True:
    i += 1
    ok = hashlib.md5(buf).hexdigest() == want if i % 5 == 0 else True
    host = socket.gethostname()
    out.write("%d %s %s\n" % (i, host, "ok" if ok else "BAD"))
    if host != last_host:
        last_host, cold_at = host, i + 15
    if i == cold_at:
        out.write("cold %d %s %s\n" % (i, host, "ok" if hashlib.md5(cold).hexdigest() == want_cold else "BAD"))
    if i % 5 == 0:
        if len(kids) >= 4:
            os.kill(kids[0], 9)
            os.waitpid(kids[0], 0)
            kids = kids[1:]
        pid = os.fork()
        if pid == 0:
            # lives until killed, wherever it runs, checking its copy of the buffer
            k = 0
            while True:
                good = hashlib.md5(buf).hexdigest() == want
                out.write("child %d.%d %s %s\n" % (i, k, socket.gethostname(), "ok" if good else "BAD"))
                k += 1
                time.sleep(2)
        kids.append(pid)
    time.sleep(0.1)
