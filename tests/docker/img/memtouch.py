# SPDX-License-Identifier: MIT
# dm-python's memory workload: MB MiB (env, default 0), every page written
# with a pattern of its index; then every PERIOD_MS (default 10) one line
# "N TIME" (tick, wall clock in seconds) on stdout, after rewriting TOUCH
# pages (default 1) and checking one page written before.  A page that does
# not hold what was written prints "BAD page P: want X, got Y" on stderr and
# exits 3 (a migration that lost or zeroed memory shows).  SIGUSR1: every
# page is checked at the next tick: "VERIFIED pages=N" on stdout, or BAD.
import os
import signal
import sys
import time

MB = int(os.environ.get("MB", "0"))
PERIOD = float(os.environ.get("PERIOD_MS", "10")) / 1000
TOUCH = max(1, int(os.environ.get("TOUCH", "1")))
PAGE = 4096

buf = bytearray(MB << 20)
pages = len(buf) // PAGE
val = [0] * pages          # what page p holds at offsets 0 and PAGE-1
for p in range(pages):
    v = (p * 7 + 1) & 0xff
    buf[p * PAGE] = v
    buf[p * PAGE + PAGE - 1] = v
    val[p] = v
print("ready MB=%d pages=%d" % (MB, pages), flush=True)

verify = False


def on_usr1(sig, frame):
    global verify
    verify = True


signal.signal(signal.SIGUSR1, on_usr1)
n = 0
while True:
    n += 1
    if verify:
        verify = False
        for q in range(pages):
            got = (buf[q * PAGE], buf[q * PAGE + PAGE - 1])
            if got != (val[q], val[q]):
                print("BAD page %d: want %d, got %d/%d" % (q, val[q], got[0], got[1]), file=sys.stderr, flush=True)
                sys.exit(3)
        print("VERIFIED pages=%d" % pages, flush=True)
    if pages:
        for k in range(TOUCH):
            p = (n * TOUCH + k) % pages
            v = (n + p) & 0xff
            buf[p * PAGE] = v
            buf[p * PAGE + PAGE - 1] = v
            val[p] = v
        q = (n * 7919) % pages
        got = (buf[q * PAGE], buf[q * PAGE + PAGE - 1])
        if got != (val[q], val[q]):
            print("BAD page %d: want %d, got %d/%d" % (q, val[q], got[0], got[1]), file=sys.stderr, flush=True)
            sys.exit(3)
    print("%d %.6f" % (n, time.time()), flush=True)
    time.sleep(PERIOD)
