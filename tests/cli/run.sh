#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Command-line behaviour on bad input: corrupted, truncated or foreign
# images, vanished processes, pids in use.  Each case checks the exit code,
# that the error names the culprit, and that nothing is left behind.
#   tests/cli/run.sh [--build DIR]
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build
[[ ${1:-} == --build ]] && BUILD=$2
DM=$BUILD/dmigrate
WORK=$(mktemp -d /tmp/dm-cli.XXXXXX)
passed=0 failed=0
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT

ok() { echo "PASS $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# a small workload: a counter in a loop, detached, with a known comm
start_sleeper() { # sets $pid (not in a subshell: this shell must be its parent)
	# one process, no children: orphans of a killed tree would be left to
	# pid 1 to reap, which on these machines it does not do promptly
	setsid "$BUILD/bench/memhog" 1 1 >/dev/null 2>&1 </dev/null &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 100); do [[ -r /proc/$pid/stat ]] && break; sleep 0.01; done
}

# wait until a pid is gone (our own child: reap it)
wait_gone() {
	wait "$1" 2>/dev/null
	for _ in $(seq 200); do [[ -e /proc/$1 ]] || return 0; sleep 0.01; done
	return 1
}

expect_restore_error() { # case image regex
	local out rc
	out=$("$DM" restore --images "$2" --pidfile "$WORK/pidfile" 2>&1)
	rc=$?
	if ((rc == 0)); then
		bad "$1" "restore succeeded on a bad image"
		[[ -f $WORK/pidfile ]] && kill -KILL -- "-$(cat "$WORK/pidfile")" 2>/dev/null
		sleep 0.2
		return
	fi
	if ! grep -Eq "$3" <<<"$out"; then
		bad "$1" "error does not match /$3/: $out"
		return
	fi
	# nothing half-restored: no process runs the image's command
	if [[ -n ${4:-} ]] && [[ -e /proc/$4 ]]; then
		bad "$1" "pid $4 exists after a failed restore"
		return
	fi
	ok "$1"
}

# --- corrupted images -------------------------------------------------
# the sleeper is a child of this shell: start it here, so that we can reap it
start_sleeper
"$DM" checkpoint --pid "$pid" --images "$WORK/img1" >"$WORK/img1.log" 2>&1 || { echo "FAIL checkpoint: $(cat "$WORK/img1.log")"; exit 1; }
wait_gone "$pid"
cp -a "$WORK/img1" "$WORK/c1"
printf '\xff' | dd of="$WORK/c1/inventory.img" bs=1 seek=0 conv=notrunc 2>/dev/null
expect_restore_error "bad magic" "$WORK/c1" "inventory.img: bad magic" "$pid"

cp -a "$WORK/img1" "$WORK/c2"
f=$WORK/c2/proc-$pid.img
printf '\x07' | dd of="$f" bs=1 seek=6 conv=notrunc 2>/dev/null
expect_restore_error "wrong version" "$WORK/c2" "proc-[0-9]+.img: unsupported image version" "$pid"

cp -a "$WORK/img1" "$WORK/c3"
f=$WORK/c3/proc-$pid.img
sz=$(stat -c %s "$f")
printf '\x55' | dd of="$f" bs=1 seek=$((sz - 3)) conv=notrunc 2>/dev/null
expect_restore_error "corrupted body" "$WORK/c3" "checksum mismatch" "$pid"

cp -a "$WORK/img1" "$WORK/c4"
f=$WORK/c4/pages-$pid.img
truncate -s 5000 "$f"
expect_restore_error "truncated pages" "$WORK/c4" "pages-[0-9]+.img.*(truncated|exceeds|past)" "$pid"

cp -a "$WORK/img1" "$WORK/c5"
rm -f "$WORK/c5"/files.img
expect_restore_error "missing file" "$WORK/c5" "files.img" "$pid"

mkdir -p "$WORK/c6"
expect_restore_error "empty directory" "$WORK/c6" "inventory.img" ""

expect_restore_error "no directory" "$WORK/nonexistent" "nonexistent" ""

# a good image restores (control for the cases above)
if "$DM" restore --images "$WORK/img1" --pidfile "$WORK/pidfile" >"$WORK/r.log" 2>&1; then
	r=$(cat "$WORK/pidfile")
	PIDS+=("$r")
	if [[ $r == "$pid" && -e /proc/$r ]]; then ok "good image restores with its pid"; else bad "good image" "pid $r (wanted $pid)"; fi
	# --- pid in use: the restored one holds it now
	expect_restore_error "pid in use" "$WORK/img1" "pid $pid is in use|in use" ""
	kill -KILL -- "-$r" 2>/dev/null
else
	bad "good image restores with its pid" "$(cat "$WORK/r.log")"
fi

# --- checkpoint errors ------------------------------------------------
out=$("$DM" checkpoint --pid 4194000 --images "$WORK/x1" 2>&1)
if (($? != 0)) && grep -q "4194000" <<<"$out" && [[ ! -e $WORK/x1 ]]; then ok "vanished process"; else bad "vanished process" "$out"; fi

out=$("$DM" checkpoint --pid $$ --images "$WORK/x2" --leave-running 2>&1)
# our own shell has a pipe to this test and maybe sockets: either it works
# (leave it running!) or it fails and leaves the shell as it was
if [[ -e /proc/$$ ]]; then ok "failed checkpoint leaves the tree running"; else bad "self" "shell gone"; fi

out=$("$DM" checkpoint --images "$WORK/x3" 2>&1)
if (($? == 2)); then ok "usage error"; else bad "usage error" "exit $? $out"; fi

out=$("$DM" show-image "$WORK/c3" 2>&1)
if (($? != 0)) && grep -q "checksum mismatch" <<<"$out"; then ok "show-image refuses a corrupted image"; else bad "show-image corrupted" "$out"; fi
if "$DM" show-image --json "$WORK/img1" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["processes"]' 2>/dev/null; then
	ok "show-image --json"
else
	bad "show-image --json" "not JSON"
fi

# --- demo-workload: progress from a small working set, the rest of the
# memory checked in the background (what the demo and the e2e tests run)
wl_start() { # ARGS...: sets $wpid, $wlog, $waddr (not in a subshell)
	wlog=$WORK/wl.$RANDOM.log
	setsid "$DM" demo-workload "$@" >"$wlog" 2>&1 </dev/null &
	wpid=$!
	PIDS+=("$wpid")
	wl_wait '^memory at ' || return 1
	waddr=$(sed -nE 's/^memory at 0x([0-9a-f]+):.*/\1/p' "$wlog")
}
wl_wait() { # REGEX [N]: N lines (default 1) of the log match, within 60 s
	for _ in $(seq 600); do
		(($(grep -cE "$1" "$wlog") >= ${2:-1})) && return 0
		sleep 0.1
	done
	return 1
}
wl_stop() { kill -KILL "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; }

# its reports touch the working set only: after the first background pass
# (the next one an hour away), with the referenced bits cleared, five
# reports later at most the working set (1 MiB; 2 MiB with a huge page)
# of its 64 MiB is referenced
t="demo-workload reports from its working set"
if ! wl_start --mib 64 --working-set 1 --check-every 3600000 || ! wl_wait 'memcheck pass=1 .*checksum=ok'; then
	bad "$t" "did not start: $(tail -n 2 "$wlog")"
else
	echo 1 >"/proc/$wpid/clear_refs"
	n=$(grep -c 'counter=' "$wlog")
	if ! wl_wait 'counter=[0-9]+ checksum=ok' $((n + 5)); then
		bad "$t" "no reports: $(tail -n 1 "$wlog")"
	else
		refd=$(awk -v a="$waddr" '$1 ~ "^" a "-" { on = 1; next } on && /^Referenced:/ { print $2; exit }' "/proc/$wpid/smaps")
		if [[ -z $refd ]]; then
			bad "$t" "no mapping at $waddr in smaps"
		elif ((refd > 4096)); then
			bad "$t" "$refd kB of its 64 MiB touched by five reports"
		else
			ok "$t"
		fi
	fi
fi
wl_stop

# a stale page (its version word put back) in the memory the main loop
# never touches: the background check says BAD and names it; the working
# set's reports stay ok
t="demo-workload's background check finds a stale page"
if ! wl_start --mib 8 --working-set 1 --check-every 20 || ! wl_wait 'memcheck pass=2 .*checksum=ok'; then
	bad "$t" "did not start: $(tail -n 2 "$wlog")"
else
	python3 -c 'import sys
with open("/proc/%s/mem" % sys.argv[1], "r+b", buffering=0) as f:
    f.seek(int(sys.argv[2], 16) + 1000 * 4096 + 8)
    f.write((0).to_bytes(8, "little"))' "$wpid" "$waddr"
	if ! wl_wait 'memcheck .*checksum=BAD .*first=1000( |$)'; then
		bad "$t" "not found: $(grep memcheck "$wlog" | tail -n 1)"
	elif grep -q 'counter=.*checksum=BAD' "$wlog"; then
		bad "$t" "the working set's check failed too"
	else
		ok "$t"
	fi
fi
wl_stop

echo "$passed passed, $failed failed, 0 skipped"
((failed == 0))
