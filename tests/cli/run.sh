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
passed=0 failed=0 skipped=0
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

# --- what this host cannot run: refused before anything is made --------
# an xsave component this CPU lacks (AMX, else AVX-512, else a reserved bit)
missing_xfeature() {
	if ! grep -qw amx_tile /proc/cpuinfo; then echo 60000
	elif ! grep -qw avx512f /proc/cpuinfo; then echo e0
	else echo 4000000000000000; fi
}
# the image's recorded XCR0 (Inventory field 220) made to claim it: a field
# appended to a protobuf message overrides an earlier one; the CRC is redone
forge_inventory() { # DIR FIELD HEX
	python3 - "$1/inventory.img" "$2" "$3" <<'PY'
import struct, sys, zlib
path, field, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 16)
b = open(path, "rb").read()
magic, kind, ver, plen, crc, res = struct.unpack("<IHHQII", b[:24])
def varint(n):
    out = b""
    while True:
        x = n & 0x7F
        n >>= 7
        if not n:
            return out + bytes([x])
        out += bytes([x | 0x80])
payload = b[24:24 + plen] + varint(field << 3) + varint(extra)
open(path, "wb").write(struct.pack("<IHHQII", magic, kind, ver, len(payload), zlib.crc32(payload), res) + payload)
PY
}
cp -a "$WORK/img1" "$WORK/c7"
forge_inventory "$WORK/c7" 220 "$(missing_xfeature)"
expect_restore_error "xsave feature this CPU lacks" "$WORK/c7" "lacks xsave features the tree uses: .*bit" "$pid"

# an instruction set this CPU lacks (Inventory.cpuid_1_ecx 222, cpuid_7_ebx 223, cpuid_7_ecx 224)
missing=
for f in rdseed:223:18 sha_ni:223:29 avx512f:223:16 avx512vbmi:224:1 gfni:224:8 vaes:224:9 avx2:223:5 movbe:222:22; do
	grep -qw "${f%%:*}" /proc/cpuinfo || { missing=$f; break; }
done
if [[ -z $missing ]]; then
	echo "SKIP instruction set this CPU lacks: this CPU has all the candidates"
	skipped=$((skipped + 1))
else
	IFS=: read -r name field bit <<<"$missing"
	cp -a "$WORK/img1" "$WORK/c8"
	forge_inventory "$WORK/c8" "$field" "$(printf '%x' $((1 << bit)))"
	expect_restore_error "instruction set this CPU lacks" "$WORK/c8" "lacks instruction sets the tree may use: $name" "$pid"
fi

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

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
