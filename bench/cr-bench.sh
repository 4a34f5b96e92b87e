#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Checkpoint + restore against CRIU 4.1 (the baseline), measured alternately in the same run
# (this machine is noisy), medians of the rounds:
#   a) one process with 1 GiB of touched memory (bench/memhog 1 1024): end to end wall time of
#      `dmigrate checkpoint` + `dmigrate restore` against `criu dump` + `criu restore -d`, plus
#      the engines' own figures (dmigrate frozen_ms / restore_ms, CRIU frozen_time /
#      restore_time); target: dmigrate / CRIU <= 0.5;
#   b) restore of a small process (bench/memhog 1 4): dmigrate restore_ms (target < 20 ms) and
#      CRIU's restore_time for comparison;
#   c) the serial dump against the resource-aware pool (16 x 64 MiB) is bench/dump-bench.sh;
#      --dump-bench runs it at the end (memory states fresh and warm, the same --dir).
# Both engines write their images under the same directory (default /dev/shm; --dir to
# change, e.g. /var/tmp for the disk).  Every restored process is checked: alive, and its memory
# equal to what memhog wrote (bench/memcheck); outside the timed part.
# --state sets the memory state before each timed checkpoint or dump (both engines alike):
#   fresh  drop the page cache and wait 3 s (free page reporting hands freed memory back to the
#          host, which then backs each page the engine allocates anew: expensive on a VM);
#   warm   write and delete MIB MiB in the image directory first (the memory the engine will
#          allocate for its image was just used and is backed);
#   as-is  (default) nothing: whatever the previous round left.
# CRIU 4.1 is installed when missing with ../shared/tools/install-criu-baseline.sh (relative to
# the repository); without that script the CRIU rows print SKIP.
#
#   bench/cr-bench.sh [--build DIR] [--rounds N] [--small-rounds N] [--dir IMGDIR]
#                     [--mib N] [--small-mib N] [--only big|small|none] [--dump-bench]
#                     [--profile OUTDIR] [--ckpt-args "ARGS"] [--state fresh|warm|as-is]
# --ckpt-args: extra arguments for `dmigrate checkpoint` (e.g. "--dump-threads 2").
# --profile: after the rounds, `perf record -g` one dmigrate checkpoint and one restore of the
# big process and print the top of `perf report --no-children` for each (data kept in OUTDIR).
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
ROUNDS=3
SMALL_ROUNDS=7
IMGROOT=/dev/shm
MIB=1024
SMALL_MIB=4
ONLY=
DUMP_BENCH=0
PROFILE=
CKPT_ARGS=()
STATE=as-is
usage() {
	echo "usage: $0 [--build DIR] [--rounds N] [--small-rounds N] [--dir IMGDIR] [--mib N]" \
		"[--small-mib N] [--only big|small|none] [--dump-bench] [--profile OUTDIR] [--ckpt-args ARGS]" \
		"[--state fresh|warm|as-is]" >&2
	exit 2
}
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--small-rounds) SMALL_ROUNDS=$2; shift 2 ;;
	--dir) IMGROOT=$2; shift 2 ;;
	--mib) MIB=$2; shift 2 ;;
	--small-mib) SMALL_MIB=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--dump-bench) DUMP_BENCH=1; shift ;;
	--profile) PROFILE=$2; shift 2 ;;
	--ckpt-args) read -r -a CKPT_ARGS <<<"$2"; shift 2 ;;
	--state) STATE=$2; shift 2; [[ $STATE == @(fresh|warm|as-is) ]] || usage ;;
	*) usage ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd) || exit 2
DM=$BUILD/dmigrate
HOG=$BUILD/bench/memhog
MEMCHECK=$BUILD/bench/memcheck
CRIU_PREFIX=${CRIU_PREFIX:-/opt/criu-baseline}
CRIU=$CRIU_PREFIX/bin/criu
CRIU_INSTALL=$REPO/../shared/tools/install-criu-baseline.sh
for f in "$DM" "$HOG" "$MEMCHECK"; do
	[[ -x $f ]] || { echo "missing $f: build with: meson setup $BUILD $REPO && ninja -C $BUILD" >&2; exit 2; }
done
mkdir -p "$IMGROOT" || exit 2
WORK=$(mktemp -d "$IMGROOT/cr-bench.XXXXXX") || exit 2

# Every pid this script started or restored; killed (by pid) on exit, if it still runs our
# memhog (a pid can be reused by someone else's process meanwhile).
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		[[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == "$HOG "* ]] && kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "${EPOCHREALTIME/./}"; } # microseconds
ms_since() { echo "scale=1; ($(now) - $1) / 1000" | bc; }

# state letter of a pid, or "-" when it is gone
pstate() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -; return; }
	s=${s##*) }
	echo "${s%% *}"
}

# waits (up to 10 s) until pid is gone: the pid must be free before the restore
wait_gone() {
	local i st
	for ((i = 0; i < 1000; i++)); do
		st=$(pstate "$1")
		[[ $st == - ]] && return 0
		sleep 0.01
	done
	echo "# pid $1 still there (state $st)" >&2
	return 1
}

HOG_PID='' HOG_JOB=''
start_hog() { # mib tag: sets HOG_PID (the memhog root)
	local out=$WORK/hog-$2.out i
	: >"$out"
	setsid "$HOG" 1 "$1" >"$out" 2>&1 </dev/null &
	HOG_JOB=$!
	disown "$HOG_JOB" # no "Killed" notices; bash still reaps it
	PIDS+=("$HOG_JOB")
	for ((i = 0; i < 1200; i++)); do
		grep -q '^ready' "$out" && break
		sleep 0.05
	done
	HOG_PID=$(awk '/^ready/{print $2}' "$out")
	[[ -n $HOG_PID ]] || { echo "memhog did not start: $(cat "$out")" >&2; exit 1; }
	PIDS+=("$HOG_PID")
}

# the memory state before a timed checkpoint or dump (--state)
settle() {
	case $STATE in
	fresh)
		sync
		[[ -w /proc/sys/vm/drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches
		sleep 3 ;;
	warm)
		dd if=/dev/zero of="$WORK/warm" bs=1M count="$MIB" status=none
		rm -f "$WORK/warm" ;;
	esac
}

# the dumped hog was killed by the engine; its pid must be free (reaped: bash reaps its disowned
# children on SIGCHLD) before the restore
reap_hog() {
	wait_gone "$HOG_PID"
}

# restored pid alive, and its memory what memhog wrote
check_restored() { # pid mib engine
	local st
	st=$(pstate "$1")
	if [[ $st == - || $st == Z || $st == X ]]; then
		echo "# $3: restored pid $1 is not alive (state $st)" >&2
		return 1
	fi
	if ! grep -q memhog "/proc/$1/cmdline" 2>/dev/null; then
		echo "# $3: pid $1 is not memhog: $(tr '\0' ' ' <"/proc/$1/cmdline")" >&2
		return 1
	fi
	"$MEMCHECK" "$1" "$2" >/dev/null || { echo "# $3: memory of restored pid $1 differs" >&2; return 1; }
	[[ $(pstate "$1") == [SR] ]] || { echo "# $3: pid $1 state $(pstate "$1") after the check" >&2; return 1; }
}

kill_restored() {
	kill -KILL "$1" 2>/dev/null
	wait_gone "$1"
}

json_field() { python3 -c "import json,sys; print('%.1f' % float(json.load(open(sys.argv[1])).get(sys.argv[2], 'nan')))" "$1" "$2" 2>/dev/null || echo nan; }

# CRIU's stats-dump / stats-restore (protobuf, no crit here): prints the fields in ms.
# stats.proto: stats_entry { dump = 1; restore = 2 }; dump_stats_entry { freezing_time = 1;
# frozen_time = 2; memdump_time = 3; memwrite_time = 4; ...}; restore_stats_entry {
# pages_compared = 1; pages_skipped_cow = 2; forking_time = 3; restore_time = 4; ... } (usec).
criu_stats() { # file field...
	python3 - "$@" <<'PY'
import struct, sys
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1; v |= (c & 0x7f) << s; s += 7
        if c < 0x80: return v, i
def fields(b):
    i, out = 0, {}
    while i < len(b):
        k, i = varint(b, i)
        if k & 7 == 0: v, i = varint(b, i)
        elif k & 7 == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        else: raise SystemExit("bad wire type")
        out[k >> 3] = v
    return out
names = {'freezing_time': (1, 1), 'frozen_time': (1, 2), 'memdump_time': (1, 3),
         'memwrite_time': (1, 4), 'forking_time': (2, 3), 'restore_time': (2, 4)}
try:
    b = open(sys.argv[1], 'rb').read()
    n = struct.unpack_from('<I', b, 8)[0]      # two magics, then a size-prefixed entry
    top = fields(b[12:12 + n])
    res = []
    for f in sys.argv[2:]:
        sub, fld = names[f]
        res.append('%.1f' % (fields(top[sub])[fld] / 1000.0))
    print(' '.join(res))
except Exception:
    print(' '.join('nan' for _ in sys.argv[2:]))
PY
}

median() { grep -v -e nan -e '^$' | sort -g | awk '{a[NR]=$1} END{if (!NR) print "nan"; else print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { if [[ $1 == nan || $2 == nan ]]; then echo nan; else printf "%.2f" "$(echo "$1 / $2" | bc -l)"; fi; }
fmt() { if [[ $1 == nan ]]; then printf '%*s' "$2" "-"; else printf '%*.1f' "$2" "$1"; fi; }

# ---- the baseline ----
CRIU_OK=0
CRIU_WHY=
criu_ready() { [[ -x $CRIU ]] && "$CRIU" --version 2>/dev/null | grep -q 'Version: 4'; }
if criu_ready; then
	CRIU_OK=1
elif [[ -f $CRIU_INSTALL ]]; then
	echo "# installing the CRIU baseline: sh $CRIU_INSTALL $CRIU_PREFIX" >&2
	sh "$CRIU_INSTALL" "$CRIU_PREFIX" >&2 && criu_ready && CRIU_OK=1 || CRIU_WHY="install failed"
else
	CRIU_WHY="no $CRIU and no $CRIU_INSTALL"
fi
CRIU_VER=$( ((CRIU_OK)) && "$CRIU" --version | awk '/Version/{print $2}')

# ---- dmigrate restore available? ----
DM_OK=1
DM_WHY=
probe=$("$DM" restore --images "$WORK/none" 2>&1)
if [[ $probe == *"not part of this build"* ]]; then
	DM_OK=0
	DM_WHY="dmigrate restore is not part of this build"
fi

# One dmigrate checkpoint + restore.  Sets RES="ckpt_wall frozen_ms rst_wall restore_ms
# dump_threads_max" (nan where a step failed; the reason on stderr).  Runs in this shell (no $(...)) so that the
# pids it starts are known to cleanup().
dm_round() { # mib tag
	local img=$WORK/dm-$2 t pid cw fz rw rs thr=nan
	rm -rf "$img"
	start_hog "$1" "dm$2"
	pid=$HOG_PID
	settle
	t=$(now)
	if ! "$DM" checkpoint --pid "$pid" --images "$img" "${CKPT_ARGS[@]}" --stats "$WORK/dm-ck.json" >"$WORK/dm-ck.log" 2>&1; then
		echo "# dmigrate checkpoint --pid $pid failed: $(tail -3 "$WORK/dm-ck.log")" >&2
		kill -KILL "$pid" 2>/dev/null; reap_hog; RES="nan nan nan nan nan"; return
	fi
	cw=$(ms_since "$t")
	fz=$(json_field "$WORK/dm-ck.json" frozen_ms)
	thr=$(json_field "$WORK/dm-ck.json" dump_threads_max)
	thr=${thr%.0}
	reap_hog || { RES="$cw $fz nan nan $thr"; return; }
	if ((!DM_OK)); then
		rm -rf "$img"; RES="$cw $fz nan nan $thr"; return
	fi
	t=$(now)
	if ! "$DM" restore --images "$img" --stats "$WORK/dm-rs.json" >"$WORK/dm-rs.log" 2>&1; then
		rw=$(ms_since "$t")
		echo "# dmigrate restore --images $img failed after $rw ms: $(tail -3 "$WORK/dm-rs.log"); pid $pid state $(pstate "$pid")" >&2
		kill_restored "$pid"; rm -rf "$img"; RES="$cw $fz nan nan $thr"; return
	fi
	rw=$(ms_since "$t")
	rs=$(json_field "$WORK/dm-rs.json" restore_ms)
	if ! check_restored "$pid" "$1" dmigrate; then
		rw=nan rs=nan
	fi
	kill_restored "$pid"
	rm -rf "$img"
	RES="$cw $fz $rw $rs $thr"
}

# One CRIU dump + restore; RES as above without the last field.
criu_round() { # mib tag
	local img=$WORK/criu-$2 t pid cw fz rw rs
	rm -rf "$img"; mkdir -p "$img"
	start_hog "$1" "criu$2"
	pid=$HOG_PID
	settle
	t=$(now)
	if ! "$CRIU" dump -t "$pid" -D "$img" -o dump.log >/dev/null 2>&1; then
		echo "# criu dump -t $pid failed: $(grep -m3 Error "$img/dump.log")" >&2
		kill -KILL "$pid" 2>/dev/null; reap_hog; rm -rf "$img"; RES="nan nan nan nan"; return
	fi
	cw=$(ms_since "$t")
	fz=$(criu_stats "$img/stats-dump" frozen_time)
	reap_hog || { rm -rf "$img"; RES="$cw $fz nan nan"; return; }
	t=$(now)
	if ! "$CRIU" restore -D "$img" -d -o restore.log >/dev/null 2>&1; then
		rw=$(ms_since "$t")
		echo "# criu restore -D $img -d failed after $rw ms: $(grep -m3 Error "$img/restore.log")" >&2
		kill_restored "$pid"; rm -rf "$img"; RES="$cw $fz nan nan"; return
	fi
	rw=$(ms_since "$t")
	PIDS+=("$pid")
	rs=$(criu_stats "$img/stats-restore" restore_time)
	if ! check_restored "$pid" "$1" CRIU; then
		rw=nan rs=nan
	fi
	kill_restored "$pid"
	rm -rf "$img"
	RES="$cw $fz $rw $rs"
}

fs_of() { df -T "$1" 2>/dev/null | awk 'NR==2{print $2}'; }
echo "# cr-bench: dmigrate $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) ($BUILD) vs CRIU ${CRIU_VER:-SKIP}"
((${#CKPT_ARGS[@]})) && echo "# dmigrate checkpoint ${CKPT_ARGS[*]}"
echo "# images in $IMGROOT ($(fs_of "$IMGROOT")), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
case $STATE in
fresh) echo "# memory state: fresh (page cache $([[ -w /proc/sys/vm/drop_caches ]] && echo dropped || echo "NOT dropped: no permission"), 3 s wait before each timed run)" ;;
warm) echo "# memory state: warm ($MIB MiB written and deleted in the image directory before each timed run)" ;;
*) echo "# memory state: as-is (not controlled: --state fresh|warm)" ;;
esac
((CRIU_OK)) || echo "# CRIU: SKIP ($CRIU_WHY)"
((DM_OK)) || echo "# dmigrate restore: SKIP ($DM_WHY)"

# ---- a) checkpoint + restore of the big process ----
big() {
	local r dm=() cr=() a b
	echo
	echo "## a) checkpoint + restore, 1 process x $MIB MiB (memhog 1 $MIB), median of $ROUNDS alternating rounds"
	for ((r = 0; r < ROUNDS; r++)); do
		# alternate which engine goes first
		if ((r % 2 == 0)); then
			dm_round "$MIB" "$r"; a=$RES
			b="nan nan nan nan"; ((CRIU_OK)) && criu_round "$MIB" "$r" && b=$RES
		else
			b="nan nan nan nan"; ((CRIU_OK)) && criu_round "$MIB" "$r" && b=$RES
			dm_round "$MIB" "$r"; a=$RES
		fi
		dm+=("$a"); cr+=("$b")
		echo "#  round $r: dmigrate ckpt/frozen/restore/restore_ms/workers [$a]  CRIU dump/frozen/restore/restore_time [$b]"
	done
	local dmm=() crm=() i
	for i in 1 2 3 4; do
		dmm+=("$(printf '%s\n' "${dm[@]}" | awk -v c=$i '{print $c}' | median)")
		crm+=("$(printf '%s\n' "${cr[@]}" | awk -v c=$i '{print $c}' | median)")
	done
	# totals per round, then the median
	local dmt crt dme cre
	dmt=$(printf '%s\n' "${dm[@]}" | awk '{ if ($1=="nan"||$3=="nan") print "nan"; else print $1+$3 }' | median)
	crt=$(printf '%s\n' "${cr[@]}" | awk '{ if ($1=="nan"||$3=="nan") print "nan"; else print $1+$3 }' | median)
	dme=$(printf '%s\n' "${dm[@]}" | awk '{ if ($2=="nan"||$4=="nan") print "nan"; else print $2+$4 }' | median)
	cre=$(printf '%s\n' "${cr[@]}" | awk '{ if ($2=="nan"||$4=="nan") print "nan"; else print $2+$4 }' | median)
	printf '%-22s %12s %12s %12s %12s %14s %14s\n' "(ms, medians)" "ckpt wall" "frozen" "restore wall" "restore(eng)" "total wall" "frozen+restore"
	printf '%-22s %12s %12s %12s %12s %14s %14s\n' "dmigrate" "$(fmt "${dmm[0]}" 12)" "$(fmt "${dmm[1]}" 12)" \
		"$(fmt "${dmm[2]}" 12)" "$(fmt "${dmm[3]}" 12)" "$(fmt "$dmt" 14)" "$(fmt "$dme" 14)"
	if ((CRIU_OK)); then
		printf '%-22s %12s %12s %12s %12s %14s %14s\n' "CRIU $CRIU_VER" "$(fmt "${crm[0]}" 12)" "$(fmt "${crm[1]}" 12)" \
			"$(fmt "${crm[2]}" 12)" "$(fmt "${crm[3]}" 12)" "$(fmt "$crt" 14)" "$(fmt "$cre" 14)"
		local rr=() k
		for k in 0 1 2 3; do rr+=("$(ratio "${dmm[$k]}" "${crm[$k]}")"); done
		printf '%-22s %12s %12s %12s %12s %14s %14s\n' "ratio dmigrate/CRIU" "${rr[@]}" "$(ratio "$dmt" "$crt")" "$(ratio "$dme" "$cre")"
		echo "checkpoint+restore wall ratio dmigrate/CRIU: $(ratio "$dmt" "$crt") (target <= 0.5)"
	else
		printf '%-22s %s\n' "CRIU" "SKIP ($CRIU_WHY)"
	fi
}

# ---- b) restore of a small process ----
small() {
	local r dm=() cr=() a b
	echo
	echo "## b) restore of a small process (memhog 1 $SMALL_MIB), median of $SMALL_ROUNDS alternating rounds"
	for ((r = 0; r < SMALL_ROUNDS; r++)); do
		if ((r % 2 == 0)); then
			dm_round "$SMALL_MIB" "s$r"; a=$RES
			b="nan nan nan nan"; ((CRIU_OK)) && criu_round "$SMALL_MIB" "s$r" && b=$RES
		else
			b="nan nan nan nan"; ((CRIU_OK)) && criu_round "$SMALL_MIB" "s$r" && b=$RES
			dm_round "$SMALL_MIB" "s$r"; a=$RES
		fi
		dm+=("$a"); cr+=("$b")
	done
	local dw ds cw cs
	dw=$(printf '%s\n' "${dm[@]}" | awk '{print $3}' | median)
	ds=$(printf '%s\n' "${dm[@]}" | awk '{print $4}' | median)
	cw=$(printf '%s\n' "${cr[@]}" | awk '{print $3}' | median)
	cs=$(printf '%s\n' "${cr[@]}" | awk '{print $4}' | median)
	printf '#  dmigrate restore_ms per round: %s\n' "$(printf '%s\n' "${dm[@]}" | awk '{printf "%s ", $4}')"
	printf '%-22s %14s %14s\n' "(ms, medians)" "restore(eng)" "restore wall"
	printf '%-22s %14s %14s\n' "dmigrate" "$(fmt "$ds" 14)" "$(fmt "$dw" 14)"
	if ((CRIU_OK)); then
		printf '%-22s %14s %14s\n' "CRIU $CRIU_VER" "$(fmt "$cs" 14)" "$(fmt "$cw" 14)"
		printf '%-22s %14s %14s\n' "ratio dmigrate/CRIU" "$(ratio "$ds" "$cs")" "$(ratio "$dw" "$cw")"
	else
		printf '%-22s %s\n' "CRIU" "SKIP ($CRIU_WHY)"
	fi
	echo "small restore_ms: $(fmt "$ds" 1) ms (target < 20 ms)"
}

# ---- profile ----
profile() {
	local out=$1 img=$WORK/prof pid
	mkdir -p "$out" || return
	command -v perf >/dev/null || { echo "# profile: no perf" >&2; return; }
	echo
	echo "## profile: 1 process x $MIB MiB, images in $IMGROOT, data in $out"
	rm -rf "$img"
	start_hog "$MIB" prof
	pid=$HOG_PID
	perf record -q -g -o "$out/checkpoint.data" -- "$DM" checkpoint --pid "$pid" --images "$img" "${CKPT_ARGS[@]}" \
		--stats "$out/checkpoint.json" >"$out/checkpoint.log" 2>&1 || echo "# profile: checkpoint failed" >&2
	reap_hog
	echo "### dmigrate checkpoint: frozen_ms $(json_field "$out/checkpoint.json" frozen_ms)"
	perf report -i "$out/checkpoint.data" --no-children --stdio --percent-limit 2 -g none 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -25
	if ((DM_OK)); then
		perf record -q -g -o "$out/restore.data" -- "$DM" restore --images "$img" \
			--stats "$out/restore.json" >"$out/restore.log" 2>&1 || echo "# profile: restore failed" >&2
		PIDS+=("$pid")
		echo "### dmigrate restore: restore_ms $(json_field "$out/restore.json" restore_ms)"
		perf report -i "$out/restore.data" --no-children --stdio --percent-limit 2 -g none 2>/dev/null |
			grep -v -e '^#' -e '^$' | head -25
		kill_restored "$pid"
	fi
	rm -rf "$img"
}

[[ $ONLY == "" || $ONLY == big ]] && big
[[ $ONLY == "" || $ONLY == small ]] && small
[[ -n $PROFILE ]] && profile "$PROFILE"
if ((DUMP_BENCH)); then
	echo
	echo "## c) serial dump vs resource-aware pool: bench/dump-bench.sh --build $BUILD --rounds $ROUNDS --dir $IMGROOT"
	"$REPO/bench/dump-bench.sh" --build "$BUILD" --rounds "$ROUNDS" --dir "$IMGROOT"
else
	echo
	echo "## c) serial dump vs resource-aware pool (16 x 64 MiB): run bench/dump-bench.sh --build $BUILD (or --dump-bench here)"
fi
