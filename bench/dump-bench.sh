#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Frozen time of the serial dump (--dump-threads 1) against the resource-aware
# pool, measured alternately in the same run (this machine is noisy), for
#   a) a tree of 16 processes with 64 MiB each
#   b) one process with 1 GiB
# and, when CRIU 4.1 is installed (../shared/tools/install-criu-baseline.sh),
# checkpoint + restore of the 1 GiB process against CRIU's dump + restore.
#
#   bench/dump-bench.sh [--build DIR] [--rounds N] [--dir IMGDIR]
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
ROUNDS=3
IMGROOT=/dev/shm
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--dir) IMGROOT=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--rounds N] [--dir IMGDIR]" >&2; exit 2 ;;
	esac
done
DM=$BUILD/dmigrate
HOG=$BUILD/bench/memhog
WORK=$(mktemp -d "$IMGROOT/dm-bench.XXXXXX")
HOG_PGIDS=()
# memhog runs in its own session (setsid): its pid is its process group
kill_hogs() { for g in "${HOG_PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done; HOG_PGIDS=(); }
trap 'kill_hogs; rm -rf "$WORK"' EXIT

start_hog() { # nproc mib -> pid
	local out=$WORK/hog.out
	: >"$out"
	setsid "$HOG" "$1" "$2" >"$out" 2>&1 </dev/null &
	for _ in $(seq 1 600); do
		grep -q '^ready' "$out" && break
		sleep 0.1
	done
	awk '/^ready/{print $2}' "$out"
}

json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# one dump: prints frozen_ms
dump_once() { # nproc mib threads-arg
	local pid img=$WORK/img
	pid=$(start_hog "$1" "$2")
	HOG_PGIDS+=("$pid")
	rm -rf "$img"
	if [[ $3 == pool ]]; then
		"$DM" checkpoint --pid "$pid" --images "$img" --stats "$WORK/st.json" >/dev/null 2>&1
	else
		"$DM" checkpoint --pid "$pid" --images "$img" --dump-threads "$3" --stats "$WORK/st.json" >/dev/null 2>&1
	fi || { echo "checkpoint failed" >&2; kill_hogs; echo nan; return; }
	kill_hogs
	echo "$(json_field "$WORK/st.json" frozen_ms) $(json_field "$WORK/st.json" dump_threads_max)"
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bench_case() { # label nproc mib
	local s=() p=() thr=1
	for ((r = 0; r < ROUNDS; r++)); do
		read -r ms _ < <(dump_once "$2" "$3" 1)
		s+=("$ms")
		read -r ms thr < <(dump_once "$2" "$3" pool)
		p+=("$ms")
	done
	local ms mp
	ms=$(printf '%s\n' "${s[@]}" | median)
	mp=$(printf '%s\n' "${p[@]}" | median)
	printf '%-28s serial %8.1f ms   pool %8.1f ms (%s workers)   ratio %.2f\n' "$1" "$ms" "$mp" "$thr" \
		"$(echo "$mp / $ms" | bc -l)"
}

echo "# frozen time, median of $ROUNDS alternating rounds, images in $IMGROOT"
bench_case "16 processes x 64 MiB" 16 64
bench_case "1 process x 1 GiB" 1 1024
