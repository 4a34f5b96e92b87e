#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Frozen time of the serial dump (--dump-threads 1) against the resource-aware
# pool, for
#   a) a tree of 16 processes with 64 MiB each
#   b) one process with 1 GiB
# in each memory state and image directory asked for, every variant measured
# alternately within each round (this machine is noisy): medians of the rounds,
# and the pool/serial ratio per state and directory.
#
# Memory state (what the dump's own allocations cost; the tree's memory is
# always just faulted in by bench/memhog):
#   fresh  the page cache is dropped and the script waits 3 s first, so the
#          memory the dump takes (page cache or tmpfs pages of the image, its
#          buffers) was freed and, with free page reporting (this VM), handed
#          back to the host: the host backs each page anew when it is touched;
#   warm   an untimed dump of the same tree right before (its image deleted):
#          the memory the timed dump takes was just used and is still backed.
# Image directory: /dev/shm (tmpfs) by default; --dir DIR may be given more
# than once (e.g. --dir /dev/shm --dir /var/tmp for tmpfs and the disk); the
# file system of each is printed.
#
# Each row prints the medians of frozen_ms and of the phases that carry the
# page data (summed over the pool's workers: read, write, alloc; see
# docs/design.md "Where the frozen time goes").
#
# --pool-threads N runs the "pool" variant with exactly N workers (no sensors):
# what the hardware gives when the sensors would hold the pool back (a loaded
# host).
#
#   bench/dump-bench.sh [--build DIR] [--rounds N] [--dir IMGDIR]...
#                       [--state fresh|warm|both] [--only 16x64|1x1024]
#                       [--pool-threads N]
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
ROUNDS=3
DIRS=()
STATES=(fresh warm)
CASES=("16x64" "1x1024")
POOL=pool
usage() {
	echo "usage: $0 [--build DIR] [--rounds N] [--dir IMGDIR]... [--state fresh|warm|both] [--only 16x64|1x1024] [--pool-threads N]" >&2
	exit 2
}
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--dir) DIRS+=("$2"); shift 2 ;;
	--state)
		case $2 in
		fresh|warm) STATES=("$2") ;;
		both) STATES=(fresh warm) ;;
		*) usage ;;
		esac
		shift 2 ;;
	--only) CASES=("$2"); shift 2 ;;
	--pool-threads) POOL=$2; shift 2 ;;
	*) usage ;;
	esac
done
((${#DIRS[@]})) || DIRS=(/dev/shm)
DM=$BUILD/dmigrate
HOG=$BUILD/bench/memhog
for f in "$DM" "$HOG"; do [[ -x $f ]] || { echo "missing $f" >&2; exit 2; }; done
WORKS=()
for d in "${DIRS[@]}"; do
	mkdir -p "$d" || exit 2
	WORKS+=("$(mktemp -d "$d/dm-bench.XXXXXX")") || exit 2
done
OUT=$(mktemp -d /tmp/dm-bench-out.XXXXXX)
HOG_PGIDS=()
# memhog runs in its own session (setsid): its pid is its process group
kill_hogs() { for g in "${HOG_PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done; HOG_PGIDS=(); }
trap 'kill_hogs; rm -rf "${WORKS[@]}" "$OUT"' EXIT

CAN_DROP=0
[[ -w /proc/sys/vm/drop_caches ]] && CAN_DROP=1

fs_of() { stat -f -c %T "$1" 2>/dev/null | sed 's|ext2/ext3|ext4|'; }

start_hog() { # nproc mib -> pid
	local out=$OUT/hog.out
	: >"$out"
	setsid "$HOG" "$1" "$2" >"$out" 2>&1 </dev/null &
	for _ in $(seq 1 1200); do
		grep -q '^ready' "$out" && break
		sleep 0.1
	done
	awk '/^ready/{print $2}' "$out"
}

# the fields of one stats file a row reports
fields() {
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); p = j.get("frozen_phases", {})
w = lambda k: p.get(k, {}).get("wall_ms", float("nan"))
print(j["frozen_ms"], j["dump_threads_max"], w("read"), w("write"), w("alloc"))' "$1"
}

# one dump of a new tree: appends "frozen workers read write alloc" to $OUT/<key>
dump_once() { # key work nproc mib state threads
	local key=$1 work=$2 pid img=$2/img args=()
	[[ $6 == pool ]] || args=(--dump-threads "$6")
	pid=$(start_hog "$3" "$4")
	[[ -n $pid ]] || { echo "memhog did not start" >&2; return; }
	HOG_PGIDS+=("$pid")
	rm -rf "$img" "$work/warm"
	if [[ $5 == warm ]]; then
		"$DM" checkpoint --pid "$pid" --images "$work/warm" --leave-running "${args[@]}" >/dev/null 2>&1
		rm -rf "$work/warm"
	elif ((CAN_DROP)); then
		sync
		echo 3 >/proc/sys/vm/drop_caches
		sleep 3
	else
		sleep 3
	fi
	if "$DM" checkpoint --pid "$pid" --images "$img" "${args[@]}" --stats "$OUT/st.json" >/dev/null 2>&1; then
		fields "$OUT/st.json" >>"$OUT/$key"
	else
		echo "checkpoint failed ($key)" >&2
	fi
	kill_hogs
	rm -rf "$img"
}

median() { sort -g | awk '{a[NR]=$1} END{if (!NR) print "nan"; else print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{print $c}' "$OUT/$1" 2>/dev/null | median; }

echo "# dump-bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds, medians"
for i in "${!DIRS[@]}"; do
	echo "# images in ${DIRS[$i]} ($(fs_of "${DIRS[$i]}"))"
done
echo "# states: ${STATES[*]} (fresh: $( ((CAN_DROP)) && echo "page cache dropped" || echo "page cache NOT dropped (no permission)"), 3 s for free page reporting; warm: an untimed dump first)"
echo "# pool: $([[ $POOL == pool ]] && echo "resource-aware (sensors)" || echo "--dump-threads $POOL (no sensors)")"
echo "# alternation within a round: for each case, directory and state: serial, then pool"
for ((r = 0; r < ROUNDS; r++)); do
	for c in "${CASES[@]}"; do
		n=${c%x*} mib=${c#*x}
		for i in "${!DIRS[@]}"; do
			for s in "${STATES[@]}"; do
				dump_once "$c.$i.$s.serial" "${WORKS[$i]}" "$n" "$mib" "$s" 1
				dump_once "$c.$i.$s.pool" "${WORKS[$i]}" "$n" "$mib" "$s" "$POOL"
			done
		done
	done
done

printf '%-8s %-6s %-6s | %-34s | %-40s | %s\n' case fs state "serial frozen (read/write/alloc)" \
	"pool frozen (read/write/alloc, workers)" "pool/serial"
for c in "${CASES[@]}"; do
	for i in "${!DIRS[@]}"; do
		for s in "${STATES[@]}"; do
			k=$c.$i.$s
			sm=$(col "$k.serial" 1) pm=$(col "$k.pool" 1)
			printf '%-8s %-6s %-6s | %8.1f ms (%6.1f/%6.1f/%5.1f)     | %8.1f ms (%6.1f/%6.1f/%5.1f, %s)      | %.2f\n' \
				"$c" "$(fs_of "${DIRS[$i]}")" "$s" \
				"$sm" "$(col "$k.serial" 3)" "$(col "$k.serial" 4)" "$(col "$k.serial" 5)" \
				"$pm" "$(col "$k.pool" 3)" "$(col "$k.pool" 4)" "$(col "$k.pool" 5)" "$(col "$k.pool" 2)" \
				"$(echo "$pm / $sm" | bc -l 2>/dev/null || echo nan)"
		done
	done
done
echo "# per-round frozen_ms (serial / pool), for the spread:"
for c in "${CASES[@]}"; do
	for i in "${!DIRS[@]}"; do
		for s in "${STATES[@]}"; do
			k=$c.$i.$s
			echo "#   $c $(fs_of "${DIRS[$i]}") $s: serial $(awk '{printf "%.0f ", $1}' "$OUT/$k.serial" 2>/dev/null)/ pool $(awk '{printf "%.0f ", $1}' "$OUT/$k.pool" 2>/dev/null)"
		done
	done
done
