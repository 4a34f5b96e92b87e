# SPDX-License-Identifier: MIT
# e2e workload: a python3 loop that keeps a counter, some heap and a 16 MiB
# buffer whose digest it checks; one line per step: "N HOST ok|BAD".
import hashlib, socket, sys, time

out = open(sys.argv[1], "a", buffering=1)
buf = bytearray(hashlib.sha256(str(k).encode()).digest()[k % 32] for k in range(1 << 16)) * 256
want = hashlib.md5(buf).hexdigest()
heap = []
i = 0
while True:
    i += 1
    heap.append(str(i) * 10)
    if len(heap) > 5000:
        heap = heap[2500:]
    ok = hashlib.md5(buf).hexdigest() == want if i % 5 == 0 else True
    out.write("%d %s %s\n" % (i, socket.gethostname(), "ok" if ok else "BAD"))
    time.sleep(0.1)
