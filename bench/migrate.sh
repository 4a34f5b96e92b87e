#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Live migration benchmark: a process with SIZE MiB of touched memory, idle
# or writing, migrated between two test hosts joined by a 1 Gbit/s link
# (veth + tbf), in every mode, and CRIU 4.1's lazy migration of the same
# program over the same link when it is installed
# (../shared/tools/install-criu-baseline.sh).  One run, one table: downtime
# (ours: freeze -> resumed; and the largest gap in the program's own
# 1 ms heartbeat, i.e. what a client saw), total time, bytes moved, the ratio
# of the total time to bytes/link rate, and ratios to our stop-and-copy.
#
#   bench/migrate.sh [--build DIR] [--sizes "256 1024 4096"] [--modes "..."]
#                    [--loads "idle write"] [--rate PAGES_PER_S] [--repeat N]
#                    [--no-criu] [--insecure] [--fifo-link] [--json FILE]
#
# The link's queue is pfifo_fast under the token bucket (a Linux host's
# default: interactive frames first, so fault replies pass the bulk push);
# --fifo-link makes it tbf's single FIFO (a bottleneck that serves every
# flow in arrival order).
#
# Ratios are computed inside one run only: this machine is shared and noisy.
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=
SIZES="256 1024"
MODES="stop-and-copy pre-copy post-copy hybrid"
LOADS="idle write"
RATE=5000
REPEAT=1
CRIU=/opt/criu-baseline/bin/criu
USE_CRIU=1
INSECURE=
FIFO_LINK=
JSON=
PREFIX=dmbench
LINK_BPS=125000000 # 1 Gbit/s

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--loads) LOADS=$2; shift ;;
	--rate) RATE=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--no-criu) USE_CRIU=0 ;;
	--insecure) INSECURE=1 ;;
	--fifo-link) FIFO_LINK=--fifo-link ;;
	--json) JSON=$2; shift ;;
	-h | --help) sed -n '4,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--build DIR] [--sizes ...] [--modes ...] [--loads ...]" >&2; exit 2 ;;
	esac
	shift
done
if [[ -z $BUILD ]]; then
	for d in "$REPO/build" /work/build-mig; do [[ -x $d/dmigrate ]] && { BUILD=$d; break; }; done
fi
DM=$BUILD/dmigrate
[[ -x $DM ]] || { echo "no dmigrate in $BUILD" >&2; exit 2; }
[[ -x $CRIU ]] || USE_CRIU=0

WORK=$(mktemp -d /tmp/dmigrate-bench.XXXXXX)
chmod 755 "$WORK"
HOG=$WORK/migrate_hog
cc -O2 -pthread -o "$HOG" "$REPO/bench/migrate_hog.c" || exit 1
ROWS=$WORK/rows.tsv
: >"$ROWS"
DPID=

cleanup() {
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null
	# a CRIU that did not finish, and what is left of the program
	[[ -n ${CRIU_PIDS:-} ]] && kill -KILL $CRIU_PIDS 2>/dev/null
	kill_hog
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_host() { local h=$1; shift; "$DM" testhost run --prefix "$PREFIX" "$h" -- "$@"; }
wait_file() { for _ in $(seq 1 600); do [[ -s $1 ]] && return 0; sleep 0.05; done; return 1; }

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
"$DM" testhost up --prefix "$PREFIX" --tbf $FIFO_LINK || exit 1
"$DM" keygen "$WORK/key" >/dev/null
SEC=(--key "$WORK/key")
[[ -n $INSECURE ]] && SEC=(--insecure)
DPID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
	"$DM" daemon --listen 198.18.0.2:7070 "${SEC[@]}" --ready-file "$WORK/ready") || exit 1
wait_file "$WORK/ready" || { echo "dmigrated did not start" >&2; exit 1; }

# start_hog SIZE LOAD: sets HOG_PID, BEAT.  The program runs in host a's
# network namespace only (the machine's mounts and pids): CRIU 4.1 cannot
# dump a process whose fds live in another mount namespace than it knows
# (test host a's), and both tools must move the same thing.
start_hog() {
	local rate=0
	[[ $2 == write ]] && rate=$RATE
	BEAT=$WORK/beat.$RANDOM
	rm -f "$WORK/hog.out"
	nsenter --net="/run/netns/$PREFIX-a" setsid "$HOG" "$1" "$rate" "$BEAT" </dev/null >"$WORK/hog.out" 2>&1 &
	disown
	for _ in $(seq 1 1200); do grep -q '^ready' "$WORK/hog.out" 2>/dev/null && break; sleep 0.05; done
	HOG_PID=$(awk '/^ready/ { print $2 }' "$WORK/hog.out")
	[[ -n $HOG_PID ]] || return 1
	sleep 1
}
in_a() { nsenter --net="/run/netns/$PREFIX-a" "$@"; }

# The hog by pid: where it started, and its copy in host b (same pid number
# in b's pid namespace: both tools keep pids).
kill_hog() {
	[[ -n ${HOG_PID:-} ]] || return 0
	local init want d
	kill -KILL "$HOG_PID" 2>/dev/null
	if init=$("$DM" testhost pid --prefix "$PREFIX" b 2>/dev/null); then
		want=$(readlink "/proc/$init/ns/pid")
		for d in /proc/[0-9]*; do
			[[ $(readlink "$d/ns/pid" 2>/dev/null) == "$want" ]] || continue
			[[ $(awk '/^NSpid:/ { print $NF }' "$d/status" 2>/dev/null) == "$HOG_PID" ]] &&
				kill -KILL "${d#/proc/}" 2>/dev/null
		done
	fi
	HOG_PID=
	sleep 0.3
}

# largest gap between heartbeats, in ms, minus the 1 ms period
beat_gap() {
	python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
t = [struct.unpack_from("<Q", d, i)[0] for i in range(0, len(d) - 7, 8)]
t.sort()
print("%.1f" % max(((b - a) / 1e6 - 1 for a, b in zip(t, t[1:])), default=0))
EOF
}

run_ours() {	# SIZE LOAD MODE
	local size=$1 load=$2 mode=$3
	start_hog "$size" "$load" || return 1
	if ! in_a "$DM" migrate "pid:$HOG_PID" --to 198.18.0.2:7070 "${SEC[@]}" --mode "$mode" \
		--stats "$WORK/stats.json" --quiet >"$WORK/mig.out" 2>&1; then
		echo "# $mode $size $load failed: $(tail -n 1 "$WORK/mig.out")" >&2
		kill_hog
		return 1
	fi
	sleep 1.5
	# BENCH_KEEP_STATS=DIR keeps every run's stats JSON (where the time goes)
	[[ -n ${BENCH_KEEP_STATS:-} ]] && cp "$WORK/stats.json" "$BENCH_KEEP_STATS/$mode-$size-$load.$SECONDS.json" && cp "$WORK/mig.out" "$BENCH_KEEP_STATS/$mode-$size-$load.$SECONDS.out"
	local gap
	gap=$(beat_gap "$BEAT")
	kill_hog
	python3 - "$WORK/stats.json" "$size" "$load" "$mode" "$gap" >>"$ROWS" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
fl = j.get("fault_latency_us", {})
print("\t".join(str(x) for x in (sys.argv[4], sys.argv[2], sys.argv[3], "%.1f" % j["downtime_ms"], sys.argv[5],
      "%.0f" % j["total_ms"], j["bytes"]["total"], "%.0f" % fl.get("p50", 0), "%.0f" % fl.get("p99", 0),
      j.get("pages_on_demand", 0), j.get("pages_prefetched", 0), j.get("pages_pushed", 0))))
EOF
}

# CRIU 4.1 lazy migration: dump --lazy-pages with a page server on host a,
# the images copied to host b, lazy-pages daemon + restore --lazy-pages there.
run_criu() {	# SIZE LOAD
	local size=$1 load=$2 src=$WORK/criu-src dst=$WORK/criu-dst t0 t1
	rm -rf "$src" "$dst"
	mkdir -p "$src" "$dst"
	start_hog "$size" "$load" || return 1
	# CRIU's lazy restore raises RLIMIT_NOFILE to fs.nr_open; root here lacks
	# CAP_SYS_RESOURCE to go past the hard limit: make them equal meanwhile
	local nr_open
	nr_open=$(cat /proc/sys/fs/nr_open)
	sysctl -qw fs.nr_open="$(ulimit -Hn)"
	t0=$(date +%s%N)
	in_a "$CRIU" dump -t "$HOG_PID" -D "$src" --lazy-pages --address 198.18.0.1 --port 27000 \
		--tcp-established -o dump.log >/dev/null 2>&1 &
	local dump=$!
	# the state is complete once the inventory is written; the dump then serves pages
	for _ in $(seq 1 6000); do [[ -s $src/inventory.img ]] && break; sleep 0.005; done
	cp -a "$src/." "$dst/"
	# the lazy-pages daemon needs host b's network only (the restore needs its pids)
	nsenter --net="/run/netns/$PREFIX-b" "$CRIU" lazy-pages --page-server --address 198.18.0.1 --port 27000 \
		-D "$dst" -o lazy.log >/dev/null 2>&1 &
	local lazy=$!
	CRIU_PIDS="$dump $lazy"
	for _ in $(seq 1 2000); do [[ -S $dst/lazy-pages.socket ]] && break; sleep 0.002; done
	if ! in_host b "$CRIU" restore -D "$dst" --lazy-pages -d -o restore.log >/dev/null 2>&1; then
		echo "# criu $size $load: restore failed: $(tail -n 2 "$dst/restore.log" | tr '\n' ' ')" >&2
		kill "$dump" "$lazy" 2>/dev/null
		wait
		sysctl -qw fs.nr_open="$nr_open"
		kill_hog
		return 1
	fi
	# a lazy migration that stalls must not hold the benchmark forever
	local w
	for w in $(seq 1 1200); do
		kill -0 "$dump" 2>/dev/null || kill -0 "$lazy" 2>/dev/null || break
		sleep 0.1
	done
	kill "$dump" "$lazy" 2>/dev/null
	wait "$dump" "$lazy"
	CRIU_PIDS=
	t1=$(date +%s%N)
	sysctl -qw fs.nr_open="$nr_open"
	sleep 1.5
	# BENCH_KEEP_STATS=DIR keeps every run's stats JSON (where the time goes)
	[[ -n ${BENCH_KEEP_STATS:-} ]] && cp "$WORK/stats.json" "$BENCH_KEEP_STATS/$mode-$size-$load.$SECONDS.json" && cp "$WORK/mig.out" "$BENCH_KEEP_STATS/$mode-$size-$load.$SECONDS.out"
	local gap
	gap=$(beat_gap "$BEAT")
	kill_hog
	printf 'criu-lazy\t%s\t%s\t%s\t%s\t%.0f\t%s\t0\t0\t0\t0\t0\n' "$size" "$load" "-" "$gap" \
		"$(echo "($t1 - $t0) / 1000000" | bc -l)" "$((size << 20))" >>"$ROWS"
}

for size in $SIZES; do
	for load in $LOADS; do
		for ((rep = 0; rep < REPEAT; rep++)); do
			for mode in $MODES; do
				# once more if it failed: the program's pid may be taken in b
				run_ours "$size" "$load" "$mode" || run_ours "$size" "$load" "$mode"
			done
			((USE_CRIU)) && run_criu "$size" "$load"
		done
	done
done

echo
echo "link: tbf 1gbit, queue $([[ -n $FIFO_LINK ]] && echo "tbf's single FIFO" || echo "pfifo_fast (priority bands)")"
python3 - "$ROWS" "$LINK_BPS" "${JSON:-}" <<'EOF'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
link = int(sys.argv[2])
keys = ["mode", "mib", "load", "downtime_ms", "gap_ms", "total_ms", "bytes", "p50_us", "p99_us", "on_demand", "prefetched", "pushed"]
recs = []
for r in rows:
    d = dict(zip(keys, r))
    for k in keys[3:]:
        d[k] = None if d[k] == "-" else float(d[k])
    d["mib"] = int(d["mib"])
    recs.append(d)
def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
groups = {}
for d in recs:
    groups.setdefault((d["mib"], d["load"], d["mode"]), []).append(d)
agg = {k: {f: med([d[f] for d in v]) for f in keys[3:]} for k, v in groups.items()}
print()
print("%-13s %6s %-5s %10s %9s %9s %9s %8s %8s %8s %8s %8s" % ("mode", "MiB", "load", "downtime", "gap(cli)", "total", "MiB moved",
      "tot/ideal", "down/s&c", "tot/s&c", "p50 us", "p99 us"))
for (mib, load, mode), a in sorted(agg.items(), key=lambda x: (x[0][0], x[0][1], x[0][2])):
    sc = agg.get((mib, load, "stop-and-copy"), {})
    ideal = a["bytes"] / link * 1000 if a["bytes"] else None
    f = lambda x, p="%.0f": (p % x) if x is not None else "-"
    r = lambda x, y: "%.3f" % (x / y) if x is not None and y else "-"
    down = a["downtime_ms"] if a["downtime_ms"] is not None else a["gap_ms"]
    sdown = sc.get("downtime_ms")
    print("%-13s %6d %-5s %10s %9s %9s %9s %8s %8s %8s %8s %8s" % (mode, mib, load, f(a["downtime_ms"], "%.1f"), f(a["gap_ms"], "%.1f"),
          f(a["total_ms"]), f(a["bytes"] / 1048576 if a["bytes"] else None), r(a["total_ms"], ideal), r(down, sdown),
          r(a["total_ms"], sc.get("total_ms")), f(a["p50_us"]), f(a["p99_us"])))
# the targets of the issue, where this run has the numbers
print()
for load in sorted({k[1] for k in agg}):
    sizes = sorted({k[0] for k in agg if k[1] == load})
    for mib in sizes:
        pc = agg.get((mib, load, "post-copy")); cr = agg.get((mib, load, "criu-lazy")); sc = agg.get((mib, load, "stop-and-copy"))
        if pc and cr and cr["gap_ms"]:
            print("post-copy downtime / CRIU lazy (client gap), %d MiB %s: %.3f (target <= 0.3)" % (mib, load, pc["gap_ms"] / cr["gap_ms"]))
        if pc and sc:
            print("post-copy downtime / our stop-and-copy, %d MiB %s: %.3f (target <= 0.1)" % (mib, load, pc["downtime_ms"] / sc["downtime_ms"]))
        if pc:
            print("post-copy fault latency p99/p50, %d MiB %s: %.2f (target <= 3)" % (mib, load, (pc["p99_us"] or 0) / max(pc["p50_us"] or 1, 1)))
            print("post-copy total / (bytes/link), %d MiB %s: %.3f (target <= 1.15)" % (mib, load, pc["total_ms"] / (pc["bytes"] / link * 1000)))
    pcs = [(m, agg[(m, load, "post-copy")]) for m in sizes if (m, load, "post-copy") in agg]
    if len(pcs) > 1:
        print("post-copy downtime %d MiB / %d MiB, %s: %.3f (target <= 1.2)" % (pcs[-1][0], pcs[0][0], load, pcs[-1][1]["downtime_ms"] / pcs[0][1]["downtime_ms"]))
if sys.argv[3]:
    json.dump({"rows": recs, "link_bytes_per_s": link}, open(sys.argv[3], "w"), indent=2)
EOF
