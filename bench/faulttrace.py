#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What a restored tree touches right after the resume, from a fault trace.

    DMIGRATE_FAULT_TRACE=FILE [DMIGRATE_FAULT_TRACE_MS=1000] dmigrated ...
    bench/faulttrace.py FILE [--ms 300] [--json]

The trace (src/mem/faulttrace.c, kept by the fault handler of
src/mem/lazy.c) holds every userfaultfd fault event of the first
DMIGRATE_FAULT_TRACE_MS after COMMIT let the tree go: time, address, thread,
kind (R asked of the source, L installed locally, Z zero page, H arrived
while queued, D asked already), how long it waited and the window asked
for; then the maps of each restored process.  This prints, for the faults
of the first --ms:

* by kind and by thread; the time each thread spent waiting for pages;
* by VMA (file, [stack], [heap], anonymous with its size), with how the
  faults in it were spread: a run (next page, or within the window of the
  fault before it in that VMA) or a jump;
* when they came (10 ms buckets);
* how many faulted on a page an earlier fault's window had asked for
  (the window caught it, but it had not arrived yet).

--list prints every fault of the first --ms instead, in order: when, which
thread, its kind and wait, where (VMA and offset) and the instruction that
faulted (the trace's pc: the file it is mapped from and the offset, with
the nearest symbol `nm -D` knows there: redis and Python export theirs).
"""
import argparse
import bisect
import collections
import json
import signal
import subprocess
import sys

PAGE = 4096


def load(path):
    head, recs, maps = None, [], {}
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "fault_trace" in j:
                head = j
            elif "maps_of" in j:
                maps[j["maps_of"]] = j["lines"]
            else:
                j["addr"] = int(j["addr"], 16)
                j["win"] = int(j["win"], 16)
                j["pc"] = int(j.get("pc", "0"), 16)
                recs.append(j)
    return head, recs, maps


def parse_map(line):
    f = line.split(None, 5)
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    name = f[5].strip() if len(f) > 5 else ""
    return (lo, hi, f[1], name)


def parse_map_full(line):
    f = line.split(None, 5)
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    return (lo, hi, f[1], f[5].strip() if len(f) > 5 else "", int(f[2], 16))


def vma_of(maps, space, a):
    for lo, hi, perm, name in maps.get(space, []):
        if lo <= a < hi:
            mib = (hi - lo) / (1 << 20)
            label = name or ("anon %s %.1f MiB" % (perm, mib))
            return (lo, label)
    return (0, "?")


_syms = {}


def dynsyms(path):
    """(addresses, names) of the functions path exports, sorted; empty when
    nm cannot read it"""
    if path not in _syms:
        pairs = []
        try:
            out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "tTwWiI":
                pairs.append((int(f[0], 16), f[2]))
        pairs.sort()
        _syms[path] = ([a for a, _ in pairs], [n for _, n in pairs])
    return _syms[path]


def code_at(maps, space, pc):
    """the faulting instruction: file+offset and the nearest exported symbol"""
    if not pc:
        return "-"
    for lo, hi, perm, name, off in maps.get(space, []):
        if lo <= pc < hi:
            if not name.startswith("/"):
                return "%s+%#x" % (name or "anon", pc - lo)
            rel = pc - lo + off
            addrs, names = dynsyms(name)
            i = bisect.bisect_right(addrs, rel) - 1
            base = name.rsplit("/", 1)[-1]
            return "%s:%s+%#x" % (base, names[i], rel - addrs[i]) if i >= 0 else "%s+%#x" % (base, rel)
    return "%#x" % pc


def where(maps, space, a):
    for lo, hi, perm, name, off in maps.get(space, []):
        if lo <= a < hi:
            label = name.rsplit("/", 1)[-1] if name else "anon %.1f MiB" % ((hi - lo) / (1 << 20))
            return "%s +%d KiB" % (label, (a - lo) // 1024)
    return "?"


def listing(recs, maps_full):
    print("%9s %6s %4s %7s  %-28s %s" % ("ms", "tid", "kind", "wait_us", "where", "code"))
    for r in recs:
        print("%9.3f %6d %4s %7d  %-28s %s" % (r["t_ms"], r["tid"], r["kind"], r["lat_us"],
                                              where(maps_full, r["space"], r["addr"]),
                                              code_at(maps_full, r["space"], r.get("pc", 0))))


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # | head
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--ms", type=float, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--list", action="store_true")
    o = ap.parse_args()
    head, recs, lines = load(o.trace)
    maps = {k: [parse_map(x) for x in v] for k, v in lines.items()}
    recs = [r for r in recs if r["t_ms"] <= o.ms]
    if o.list:
        listing(recs, {k: [parse_map_full(x) for x in v] for k, v in lines.items()})
        return
    out = collections.OrderedDict()
    out["faults"] = len(recs)
    out["by_kind"] = dict(collections.Counter(r["kind"] for r in recs))
    remote = [r for r in recs if r["kind"] == "R"]
    thr = collections.defaultdict(lambda: [0, 0.0])
    for r in recs:
        thr[r["tid"]][0] += 1
        thr[r["tid"]][1] += r["lat_us"] / 1000.0
    out["by_thread"] = {str(t): {"faults": v[0], "wait_ms": round(v[1], 1)} for t, v in sorted(thr.items())}
    # per VMA, with runs vs jumps
    per = collections.OrderedDict()
    last = {}
    asked = set()  # pages some earlier window asked for
    caught = 0
    for r in sorted(remote, key=lambda r: r["t_ms"]):
        lo, label = vma_of(maps, r["space"], r["addr"])
        v = per.setdefault((lo, label), {"vma": label, "faults": 0, "wait_ms": 0.0, "run": 0, "jump": 0,
                                        "pages": set(), "first_ms": r["t_ms"], "last_ms": r["t_ms"]})
        v["faults"] += 1
        v["wait_ms"] += r["lat_us"] / 1000.0
        v["pages"].add(r["addr"])
        v["last_ms"] = r["t_ms"]
        p = last.get(lo)
        if p is not None and abs(r["addr"] - p["addr"]) <= max(p["win_n"], 2) * PAGE:
            v["run"] += 1
        elif p is not None:
            v["jump"] += 1
        last[lo] = r
        if (r["space"], r["addr"]) in asked:
            caught += 1
        for k in range(r["win_n"]):
            asked.add((r["space"], r["win"] + k * PAGE))
    out["remote"] = len(remote)
    out["remote_wait_ms"] = round(sum(r["lat_us"] for r in remote) / 1000.0, 1)
    out["in_an_earlier_window"] = caught
    rows = sorted(per.values(), key=lambda v: -v["faults"])
    for v in rows:
        pg = sorted(v["pages"])
        v["span_kib"] = (pg[-1] - pg[0] + PAGE) // 1024
        v["distinct_pages"] = len(pg)
        del v["pages"]
        v["wait_ms"] = round(v["wait_ms"], 1)
        v["first_ms"] = round(v["first_ms"], 1)
        v["last_ms"] = round(v["last_ms"], 1)
    out["by_vma"] = rows
    buckets = collections.Counter(int(r["t_ms"] // 10) * 10 for r in remote)
    out["remote_per_10ms"] = {str(k): buckets[k] for k in sorted(buckets)}
    if o.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return
    print("faults in the first %g ms: %d %s; remote %d, waited %.1f ms in all; %d on a page an earlier window asked for"
          % (o.ms, out["faults"], out["by_kind"], out["remote"], out["remote_wait_ms"], caught))
    print("threads:", ", ".join("%s: %d faults, %.1f ms" % (t, v["faults"], v["wait_ms"])
                                for t, v in out["by_thread"].items()))
    print("%-48s %6s %8s %5s %5s %9s %8s" % ("vma", "faults", "wait_ms", "run", "jump", "span_kib", "ms"))
    for v in rows:
        print("%-48s %6d %8.1f %5d %5d %9d %4.0f-%-4.0f" % (v["vma"][-48:], v["faults"], v["wait_ms"], v["run"],
                                                           v["jump"], v["span_kib"], v["first_ms"], v["last_ms"]))
    print("remote faults per 10 ms:", " ".join("%s:%d" % kv for kv in out["remote_per_10ms"].items()))


if __name__ == "__main__":
    main()
