#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What keeping copy-on-write sharing costs a live migration: a prefork tree
# (a parent with SIZE MiB of private memory and WORKERS children that only
# read it) migrated between two test hosts, once with the sharing kept
# (--cow-max above SIZE: the parent's shared pages go with the state, inside
# the downtime) and once as copies (--cow-max 0), the two variants alternated
# within one run.  Per size and variant: the medians of the downtime, of the
# source's frozen time and of its "cow" and "image" phases, the state's
# bytes, the parent's pages a pre-copy round left at the destination, and the
# tree's Pss_Anon on the destination afterwards; then the
# downtime added per MiB shared (median of the pairwise differences over the
# parent's pages its children share, its own heap included).
#
#   bench/cow-bench.sh [--build DIR] [--sizes "16 64 256"] [--workers N]
#                      [--modes "post-copy"] [--repeat N] [--no-tbf]
#
# --no-tbf: the veth pair without the 1 Gbit/s token bucket (the link is then
# this machine's memory bandwidth).  Ratios are computed inside one run only:
# this machine is shared and noisy.
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=
SIZES="16 64 256"
WORKERS=4
MODES=post-copy
REPEAT=3
TBF=--tbf
PREFIX=dmcowb

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--workers) WORKERS=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--no-tbf) TBF= ;;
	-h | --help) sed -n '4,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--build DIR] [--sizes ...] [--workers N] [--modes ...] [--repeat N] [--no-tbf]" >&2; exit 2 ;;
	esac
	shift
done
[[ -n $BUILD ]] || BUILD=$REPO/build
DM=$BUILD/dmigrate
[[ -x $DM ]] || { echo "no dmigrate in $BUILD" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dmigrate-cowbench.XXXXXX)
chmod 755 "$WORK"
ROWS=$WORK/rows.tsv
: >"$ROWS"
DPID= TREE=

cleanup() {
	kill_tree
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_file() { for _ in $(seq 1 600); do [[ -s $1 ]] && return 0; sleep 0.05; done; return 1; }

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
"$DM" testhost up --prefix "$PREFIX" $TBF || exit 1
"$DM" keygen "$WORK/key" >/dev/null
DPID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
	"$DM" daemon --listen 198.18.0.2:7070 --key "$WORK/key" --ready-file "$WORK/ready") || exit 1
wait_file "$WORK/ready" || { echo "dmigrated did not start" >&2; exit 1; }

# The prefork tree: the workers die with the parent (their parent-death
# signal; the root's own would be refused), which the bench kills by pid.
cat >"$WORK/prefork.py" <<'EOF'
import ctypes, os, sys, time
size, workers = int(sys.argv[1]) << 20, int(sys.argv[2])
buf = bytearray(os.urandom(4096)) * (size // 4096)
libc = ctypes.CDLL(None)
for _ in range(workers):
    if os.fork() == 0:
        libc.prctl(1, 9)            # PR_SET_PDEATHSIG, SIGKILL
        s = sum(buf[i] for i in range(0, size, 4096))  # reads only
        while True:
            time.sleep(1)
print("ready", os.getpid(), flush=True)
while True:
    time.sleep(1)
EOF

start_tree() {	# SIZE
	rm -f "$WORK/tree.out"
	nsenter --net="/run/netns/$PREFIX-a" setsid python3 "$WORK/prefork.py" "$1" "$WORKERS" \
		</dev/null >"$WORK/tree.out" 2>&1 &
	disown
	for _ in $(seq 1 1200); do grep -q '^ready' "$WORK/tree.out" 2>/dev/null && break; sleep 0.05; done
	TREE=$(awk '/^ready/ { print $2 }' "$WORK/tree.out")
	[[ -n $TREE ]] || return 1
	sleep 1 # the workers' reads
}

# the tree's root in host b (same pid number in b's pid namespace)
root_in_b() {
	local init want d
	init=$("$DM" testhost pid --prefix "$PREFIX" b 2>/dev/null) || return 1
	want=$(readlink "/proc/$init/ns/pid")
	for d in /proc/[0-9]*; do
		[[ $(readlink "$d/ns/pid" 2>/dev/null) == "$want" ]] || continue
		[[ $(awk '/^NSpid:/ { print $NF }' "$d/status" 2>/dev/null) == "$TREE" ]] && { echo "${d#/proc/}"; return 0; }
	done
	return 1
}

tree_pss_kb() {	# ROOT: Pss_Anon of the root and its children
	local root=$1 sum=0 p
	for p in "$root" $(cat "/proc/$root/task/$root/children" 2>/dev/null); do
		sum=$((sum + $(awk '/^Pss_Anon:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	echo "$sum"
}

kill_tree() {
	[[ -n ${TREE:-} ]] || return 0
	local b
	b=$(root_in_b) && kill -KILL "$b" 2>/dev/null
	kill -KILL "$TREE" 2>/dev/null
	TREE=
	sleep 0.3
}

run_one() {	# MODE SIZE VARIANT
	local mode=$1 size=$2 variant=$3 max b pss
	[[ $variant == shared ]] && max=$((size * 2 + 64)) || max=0
	start_tree "$size" || { echo "# the tree did not start" >&2; return 1; }
	if ! nsenter --net="/run/netns/$PREFIX-a" "$DM" migrate "pid:$TREE" --to 198.18.0.2:7070 --key "$WORK/key" \
		--mode "$mode" --cow-max "$max" --stats "$WORK/stats.json" --quiet >"$WORK/mig.out" 2>&1; then
		echo "# $mode $size $variant failed: $(tail -n 1 "$WORK/mig.out")" >&2
		kill_tree
		return 1
	fi
	sleep 1 # post-copy: the rest of the memory arrives
	pss=0
	b=$(root_in_b) && pss=$(tree_pss_kb "$b")
	kill_tree
	python3 - "$WORK/stats.json" "$mode" "$size" "$variant" "$pss" >>"$ROWS" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1])); d = j["dump"]; ph = d.get("frozen_phases", {}); cow = d.get("cow", {})
print("\t".join(str(x) for x in (sys.argv[2], sys.argv[3], sys.argv[4], "%.1f" % j["downtime_ms"],
      "%.1f" % d.get("frozen_ms", 0), "%.1f" % ph.get("cow", {}).get("wall_ms", 0),
      "%.1f" % ph.get("image", {}).get("wall_ms", 0), j.get("state_bytes", j.get("bytes", {}).get("state", 0)),
      cow.get("eager_pages", 0), cow.get("copied_pages", 0), sys.argv[5], cow.get("at_destination_pages", 0))))
EOF
}

for mode in $MODES; do
	for size in $SIZES; do
		for ((i = 0; i < REPEAT; i++)); do
			# alternated, the order swapped every other round
			if ((i % 2)); then v1=copies v2=shared; else v1=shared v2=copies; fi
			run_one "$mode" "$size" "$v1"
			run_one "$mode" "$size" "$v2"
		done
	done
done

link="veth, no tbf"; [[ -n $TBF ]] && link="1 Gbit/s tbf"
echo "# link: $link; $WORKERS workers; $REPEAT runs per variant (medians)"
python3 - "$ROWS" <<'EOF'
import statistics as st, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r[0], int(r[1]), r[2]), []).append(r)
print("%-10s %5s %-7s %9s %9s %7s %8s %10s %8s %8s %8s %9s" % ("mode", "MiB", "variant", "downtime", "frozen",
      "cow", "image", "state_B", "eager_p", "at_dst_p", "copied_p", "pss_kB"))
for (m, s, v), rs in sorted(by.items()):
    med = lambda k: st.median(float(r[k]) for r in rs)
    print("%-10s %5d %-7s %9.1f %9.1f %7.1f %8.1f %10.0f %8.0f %8.0f %8.0f %9.0f" % (m, s, v, med(3), med(4),
          med(5), med(6), med(7), med(8), med(11), med(9), med(10)))
# downtime added per MiB shared: pairwise differences within the run
for (m, s) in sorted({(k[0], k[1]) for k in by}):
    a, b = by.get((m, s, "shared"), []), by.get((m, s, "copies"), [])
    d = [float(x[3]) - float(y[3]) for x, y in zip(a, b)]
    f = [float(x[4]) - float(y[4]) for x, y in zip(a, b)]
    # per MiB of the parent's shared pages (its heap too)
    mib = st.median(float(x[8]) for x in a) * 4096 / 2**20 if a else 0
    if d and mib:
        print("%s %d MiB (%.1f MiB shared): downtime +%.1f ms (%.2f ms/MiB), frozen +%.1f ms (%.2f ms/MiB)" % (
              m, s, mib, st.median(d), st.median(d) / mib, st.median(f), st.median(f) / mib))
EOF
