#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Command-line behaviour on bad input: corrupted, truncated or foreign
# images, vanished processes, pids in use.  Each case checks the exit code,
# that the error names the culprit, and that nothing is left behind.
#   tests/cli/run.sh [--build DIR]
set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
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

# a pid file that cannot be written is refused before anything is restored
out=$("$DM" restore --images "$WORK/img1" --pidfile "$WORK/nodir/pidfile" 2>&1)
rc=$?
if ((rc == 1)) && grep -q "cannot write the pid file $WORK/nodir/pidfile: No such file or directory (nothing was restored)" <<<"$out" &&
	[[ ! -e /proc/$pid ]]; then
	ok "restore: unwritable pid file"
else
	bad "restore: unwritable pid file" "rc $rc, /proc/$pid $([[ -e /proc/$pid ]] && echo exists || echo absent): $out"
	kill -KILL -- "-$pid" 2>/dev/null
	for _ in $(seq 500); do [[ -e /proc/$pid ]] || break; sleep 0.01; done
fi

# so is a stats file
out=$("$DM" restore --images "$WORK/img1" --stats "$WORK/nodir/s.json" 2>&1)
rc=$?
if ((rc == 1)) && grep -q "cannot write the statistics to $WORK/nodir/s.json: No such file or directory (nothing was restored)" <<<"$out" &&
	[[ ! -e /proc/$pid ]]; then
	ok "restore: unwritable stats file"
else
	bad "restore: unwritable stats file" "rc $rc, /proc/$pid $([[ -e /proc/$pid ]] && echo exists || echo absent): $out"
	kill -KILL -- "-$pid" 2>/dev/null
	for _ in $(seq 500); do [[ -e /proc/$pid ]] || break; sleep 0.01; done
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

# --- a pid still held by the checkpointed tree's zombie ---------------
# The tree's root is the child of a parent that reaps it late (a slow init,
# as PID 1 is on these machines) or never: right after the checkpoint (which
# kills it) its pid is a zombie's.  A restore waits for it (at most 2 s): the
# late parent reaps it once it sees the restore waiting (its -v line), and
# the restore succeeds with the pid; the parent that never reaps makes it
# refuse, naming the zombie and its parent.
# zparent LOG: a python3 parent of a memhog (its own session) that reaps it
# only when LOG (a restore's output) says the restore waits for its pid, or
# never (LOG ""); sets $pid (the memhog) and $zp (the parent)
zparent() {
	local out=$WORK/zparent.$RANDOM
	python3 - "$BUILD/bench/memhog" "$1" >"$out" <<'PY' &
import os, sys, time
hog, log = sys.argv[1], sys.argv[2]
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    os.execv(hog, [hog, "1", "1"])
print(pid, flush=True)
while True:
    if log and os.path.exists(log) and b"waiting for it to go" in open(log, "rb").read():
        os.waitpid(pid, 0)
        log = ""
    time.sleep(0.005)
PY
	zp=$!
	disown "$zp"
	PIDS+=("$zp")
	pid=
	for _ in $(seq 500); do pid=$(cat "$out" 2>/dev/null); [[ -n $pid ]] && break; sleep 0.01; done
	PIDS+=("$pid")
	for _ in $(seq 500); do [[ -r /proc/$pid/stat ]] && break; sleep 0.01; done
}
# until pid is a zombie (bounded)
zombie() {
	for _ in $(seq 500); do [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]] && return 0; sleep 0.01; done
	return 1
}

t="restore: waits for a pid its zombie still holds"
rm -f "$WORK/zw.log"
zparent "$WORK/zw.log"
if ! "$DM" checkpoint --pid "$pid" --images "$WORK/zw" >"$WORK/zw-ck.log" 2>&1; then
	bad "$t" "checkpoint: $(cat "$WORK/zw-ck.log")"
elif ! zombie "$pid"; then
	bad "$t" "pid $pid is not a zombie after the checkpoint"
elif ! "$DM" -v restore --images "$WORK/zw" --pidfile "$WORK/zw.pid" >"$WORK/zw.log" 2>&1; then
	bad "$t" "restore: $(cat "$WORK/zw.log")"
elif [[ $(cat "$WORK/zw.pid") != "$pid" ]] || ! grep -q "pid $pid: process $pid (memhog), with that pid, is a zombie its parent $zp (python3) has not reaped: waiting" "$WORK/zw.log"; then
	bad "$t" "pid $(cat "$WORK/zw.pid") (wanted $pid), or no wait said: $(cat "$WORK/zw.log")"
else
	ok "$t"
fi
kill -KILL -- "-$pid" "$zp" 2>/dev/null

t="restore: a pid its zombie holds for good is refused, named"
zparent ""
if ! "$DM" checkpoint --pid "$pid" --images "$WORK/zr" >"$WORK/zr-ck.log" 2>&1; then
	bad "$t" "checkpoint: $(cat "$WORK/zr-ck.log")"
elif ! zombie "$pid"; then
	bad "$t" "pid $pid is not a zombie after the checkpoint"
else
	expect_restore_error "$t" "$WORK/zr" "pid $pid is in use: process $pid \\(memhog\\), with that pid, is a zombie its parent $zp \\(python3\\) has not reaped \\(waited 2 s\\)" ""
fi
kill -KILL "$zp" 2>/dev/null

# --- checkpoint errors ------------------------------------------------
# refuse CASE RC REGEX CMD...: the command exits RC, its output matches REGEX
# (the cause, in the user's terms), says it once, and claims nothing about a
# tree it never froze ("left running", "runs on")
refuse() {
	local name=$1 want=$2 re=$3 out rc
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	out=$(grep -v -- 'INSECURE\|--insecure' <<<"$out")
	if ((rc != want)); then
		bad "$name" "exit $rc (wanted $want): $out"
	elif ! grep -Eq -- "$re" <<<"$out"; then
		bad "$name" "error does not match /$re/: $out"
	elif grep -Eqi 'left running|runs on|unchanged' <<<"$out"; then
		bad "$name" "claims something about a tree it did not touch: $out"
	elif (($(grep -c . <<<"$out") != 1)); then
		bad "$name" "more than one line: $out"
	else
		ok "$name"
	fi
}

# a pid that was just freed (a reaped child of ours)
true &
gone=$!
wait "$gone"
refuse "checkpoint: no such process" 1 "^dmigrate: checkpoint failed: no process $gone\$" \
	"$DM" checkpoint --pid "$gone" --images "$WORK/x1"
[[ -e $WORK/x1 ]] && bad "checkpoint: no such process" "left $WORK/x1 behind"

refuse "checkpoint: pid 1" 1 "process 1 is the init of this PID namespace" \
	"$DM" checkpoint --pid 1 --images "$WORK/x1"
[[ -e $WORK/x1 ]] && bad "checkpoint: pid 1" "left $WORK/x1 behind"

# this shell is an ancestor of the dmigrate it starts: its tree holds dmigrate
refuse "checkpoint: own ancestor" 1 "process $$ is an ancestor of this dmigrate" \
	"$DM" checkpoint --pid $$ --images "$WORK/x2" --leave-running
[[ -e $WORK/x2 ]] && bad "checkpoint: own ancestor" "left $WORK/x2 behind"

# a thread id is not a process
python3 -c 'import threading,time,sys; threading.Thread(target=time.sleep, args=(600,), daemon=True).start(); time.sleep(600)' \
	</dev/null >/dev/null 2>&1 &
th=$!
PIDS+=("$th")
disown "$th"
tid=
for _ in $(seq 300); do
	tid=$(ls "/proc/$th/task" 2>/dev/null | grep -vx "$th" | head -n 1)
	[[ -n $tid ]] && break
	sleep 0.05
done
refuse "checkpoint: a thread id" 1 "$tid is a thread of process $th, not a process" \
	"$DM" checkpoint --pid "$tid" --images "$WORK/x1"
kill -KILL "$th" 2>/dev/null

start_sleeper
: >"$WORK/afile"
refuse "checkpoint: images path is a file" 1 "cannot open image directory $WORK/afile: Not a directory" \
	"$DM" checkpoint --pid "$pid" --images "$WORK/afile" --leave-running

# --- migrate refusals (before any connection: no daemon needed) ---------
refuse "migrate: pid 1" 1 "^dmigrate: migration failed: process 1 is the init of this PID namespace" \
	"$DM" migrate pid:1 --to 127.0.0.1:9 --insecure
refuse "migrate: no such process" 1 "^dmigrate: migration failed: no process $gone\$" \
	"$DM" migrate "pid:$gone" --to 127.0.0.1:9 --insecure
refuse "migrate: not pid:PID" 2 "the target must be pid:PID \\(got '$pid'\\)" \
	"$DM" migrate "$pid" --to 127.0.0.1:9 --insecure
# a migration that fails before the freeze says so, and the tree does run on
out=$("$DM" migrate "pid:$pid" --to 127.0.0.1:9 --insecure 2>&1)
rc=$?
if ((rc == 1)) && grep -q "nothing was changed: process $pid runs on here: cannot connect to 127.0.0.1:9" <<<"$out" &&
	[[ $(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat") == [RS] ]]; then
	ok "migrate: peer refuses the connection"
else
	bad "migrate: peer refuses the connection" "rc $rc: $out"
fi
refuse "migrate: unwritable pid file" 1 "cannot write the pid file $WORK/nodir/p: No such file or directory \\(nothing was done\\)" \
	"$DM" migrate "pid:$pid" --to 127.0.0.1:9 --insecure --pidfile "$WORK/nodir/p"
refuse "migrate: unwritable stats file" 1 "cannot write the statistics to $WORK/nodir/s.json: No such file or directory \\(nothing was done\\)" \
	"$DM" migrate "pid:$pid" --to 127.0.0.1:9 --insecure --stats "$WORK/nodir/s.json"
refuse "checkpoint: unwritable stats file" 1 "cannot write the statistics to $WORK/nodir/s.json: No such file or directory \\(nothing was done\\)" \
	"$DM" checkpoint --pid "$pid" --images "$WORK/cs" --stats "$WORK/nodir/s.json"
if [[ -e $WORK/cs || $(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat") != [RS] ]]; then
	bad "checkpoint: unwritable stats file leaves the tree alone" "$(ls -d "$WORK/cs" 2>&1); $(cat "/proc/$pid/stat")"
fi
# --insecure is said once, by each command
if (($(grep -ci insecure <<<"$out") == 1)); then ok "migrate: --insecure warns once"; else bad "migrate: --insecure warns once" "$out"; fi
"$DM" daemon --listen 127.0.0.1:0 --insecure >"$WORK/daemon.log" 2>&1 &
dpid=$!
PIDS+=("$dpid")
for _ in $(seq 1000); do grep -q "INSECURE listener" "$WORK/daemon.log" && break; sleep 0.01; done
kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null
if grep -q "INSECURE listener on 127.0.0.1:0 (port [0-9]*)" "$WORK/daemon.log" &&
	(($(grep -ci insecure "$WORK/daemon.log") == 1)); then
	ok "daemon: --insecure warns once"
else
	bad "daemon: --insecure warns once" "$(cat "$WORK/daemon.log")"
fi
kill -KILL "$pid"
wait_gone "$pid"

# a refusal made on a dump worker thread reaches the user with the object
# named (not "Operation not supported"): DMIGRATE_TEST_POOL_WORKERS keeps
# the fd dump off the thread that reports the error
setsid python3 -c 'import socket,time; s=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); s.bind((0,0)); time.sleep(600)' \
	</dev/null >/dev/null 2>&1 &
nl=$!
PIDS+=("$nl")
disown "$nl" # no "Killed" line from this shell when it is killed below
for _ in $(seq 300); do ls -l "/proc/$nl/fd" 2>/dev/null | grep -q 'socket:' && break; sleep 0.05; done
out=$(DMIGRATE_TEST_POOL_WORKERS=1 "$DM" checkpoint --pid "$nl" --images "$WORK/x4" --dump-threads 3 2>&1)
rc=$?
st=$(sed -E 's/.*\) (.).*/\1/' "/proc/$nl/stat" 2>/dev/null)
if ((rc == 1)) && grep -Eq "unsupported fd [0-9]+ of process $nl: socket:\[[0-9]+\] \(AF_NETLINK\)" <<<"$out" &&
	grep -q "process $nl runs on, unchanged" <<<"$out" && [[ $st == S && ! -e $WORK/x4 ]]; then
	ok "refusal on a worker thread names the object"
else
	bad "refusal on a worker thread names the object" "rc $rc state '$st': $out"
fi
kill -KILL "$nl" 2>/dev/null
wait_gone "$nl"

# inotify events queued at the checkpoint are not carried: the checkpoint
# says so (a warning naming the process, the fd and the bytes) and succeeds
mkdir -p "$WORK/watched"
setsid python3 -c '
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x100) < 0: sys.exit(1)
open(os.path.join(sys.argv[1], "new"), "w").close()
open(sys.argv[1] + "/.ready", "w").close()
time.sleep(600)' "$WORK/watched" </dev/null >/dev/null 2>&1 &
ino=$!
PIDS+=("$ino")
disown "$ino"
for _ in $(seq 300); do [[ -e $WORK/watched/.ready ]] && break; sleep 0.05; done
out=$("$DM" checkpoint --pid "$ino" --images "$WORK/x5" --leave-running 2>&1)
rc=$?
if ((rc == 0)) && grep -Eq "process $ino: fd [0-9]+ \(inotify\): [1-9][0-9]* bytes of events not yet read are dropped" <<<"$out" &&
	[[ -e /proc/$ino ]]; then
	ok "checkpoint warns of dropped inotify events"
else
	bad "checkpoint warns of dropped inotify events" "rc $rc: $out"
fi
kill -KILL "$ino" 2>/dev/null
wait_gone "$ino"

# --stats: where the frozen time went, phase by phase.  Every phase is
# there; on one worker the phases add up to no more than the frozen time, on
# N workers to no more than N times it; the copy buffers were all made
# before the freeze; the image directory's file system is named, and the
# page files were written (pre-touched) before the freeze, and cut to their
# pages after it (a reservation longer than the pages is cut only once the
# tree runs again: the header bounds the pages, the file ends with them).
setsid "$BUILD/bench/memhog" 2 16 >"$WORK/hog.out" 2>&1 </dev/null &
hog=$!
PIDS+=("$hog")
disown "$hog"
for _ in $(seq 600); do grep -q '^ready' "$WORK/hog.out" && break; sleep 0.1; done
SHM=$(mktemp -d /dev/shm/dm-cli.XXXXXX)
for v in "1 $WORK/st1" "2 $SHM/st2"; do
	read -r n dir <<<"$v"
	t="checkpoint --stats: frozen phases ($n workers, $(stat -f -c %T "$(dirname "$dir")"))"
	if ! out=$("$DM" checkpoint --pid "$hog" --images "$dir" --dump-threads "$n" --leave-running \
		--stats "$dir.json" 2>&1); then
		bad "$t" "checkpoint failed: $out"
		continue
	fi
	if out=$(python3 - "$dir.json" "$n" "$(stat -f -c %T "$(dirname "$dir")")" "$dir" <<'PY' 2>&1
import glob, json, os, struct, sys
j = json.load(open(sys.argv[1])); n = int(sys.argv[2]); fs = sys.argv[3]
pages = glob.glob(os.path.join(sys.argv[4], "pages-*.img"))
assert len(pages) == 2, pages
for f in pages:
    with open(f, "rb") as fh:
        payload = struct.unpack_from("<Q", fh.read(16), 8)[0]
    assert payload >= 16 << 20 and os.path.getsize(f) == 4096 + payload, (f, payload, os.path.getsize(f))
names = ["pool", "proc", "parasite", "vmas", "pagemap", "cow", "alloc", "read", "write", "fds", "image"]
ph = j["frozen_phases"]
assert sorted(ph) == sorted(names), ph.keys()
for k in names:
    for f in ("wall_ms", "cpu_ms", "count"):
        assert ph[k][f] >= 0, (k, f)
    # a lap's CPU time is its thread's: never more than its wall time (1 ms of clock skew)
    assert ph[k]["cpu_ms"] <= ph[k]["wall_ms"] + 1, (k, ph[k])
# 32 MiB of data: 8 chunks at least, each read and written
assert ph["read"]["count"] >= 8 and ph["write"]["count"] >= 8, ph
assert ph["parasite"]["count"] == 2 and ph["vmas"]["count"] == 2, ph
wall = sum(ph[k]["wall_ms"] for k in names)
assert abs(wall - j["frozen_phases_wall_ms"]) < 0.01, (wall, j["frozen_phases_wall_ms"])
assert j["dump_threads_max"] == n
assert wall <= j["frozen_ms"] * n + 0.01, (wall, j["frozen_ms"], n)
assert j["copy_buffers"] == n and j["copy_buffers_late"] == 0, j
# chunks copied beside another worker on the same process: none with one
# worker; with two, as many as the other worker's chunk lasts (a preempted
# worker's chunk can last while the other copies most of the process)
assert (j["copy_chunks_shared"] == 0) if n == 1 else (0 <= j["copy_chunks_shared"] <= ph["read"]["count"]), j
assert 0 <= j["resume_ms"] and j["stopped_ms"] >= j["freeze_ms"] + j["frozen_ms"], j
assert (j["images_fs"] == "tmpfs") == (fs == "tmpfs"), (j["images_fs"], fs)
assert j["prealloc_pretouch"] is True, j
PY
	); then
		ok "$t"
	else
		bad "$t" "$out"
	fi
done
rm -rf "$SHM"
kill -KILL -- "-$hog" 2>/dev/null

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

# --- dmigrate setup against a private dockerd (its own script: it can run alone)
out=$("$REPO/tests/cli/docker-setup.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed'
if [[ $(tail -n 1 <<<"$out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
	passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2])) skipped=$((skipped + BASH_REMATCH[3]))
	((rc != 0 && BASH_REMATCH[2] == 0)) && bad "docker-setup.sh" "exit status $rc"
else
	bad "docker-setup.sh" "no summary line: $(tail -n 3 <<<"$out")"
fi

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
