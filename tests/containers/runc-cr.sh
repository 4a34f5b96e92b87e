#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Checkpoint and restore of a runc container on one host (docs/containers.md):
# the busybox counter of mkbundle.sh, with a seccomp filter, no_new_privs and
# the default capabilities.
#
#   tests/containers/runc-cr.sh [--build DIR] [--filter REGEX]
#
# Cases:
#   cr          checkpoint runc:ID (the container goes), restore: the same
#               ID runs under runc with its init as pid 1, the counter goes
#               on from the value it had (not from 1), the host name set at
#               run time, a file in its /dev/shm tmpfs, files, a directory,
#               a link and a FIFO made in runc's /dev tmpfs, the memory and pids
#               limits set with `runc update` are back, CapEff,
#               CapPrm, CapBnd, NoNewPrivs, Seccomp and Seccomp_filters of the
#               init are what they were; runc state/exec/kill/delete work
#   leave       checkpoint --leave-running: it runs on, same init, counting
#   refused     a netlink socket in the init's tree (uevent started by the
#               init): the checkpoint fails naming it, the container runs
#               on, thawed, its pid the same, no partial image
#   not-tree    a process of `runc exec` (its parent is runc, or the host's
#               reaper once runc goes: never below the init): refused, named,
#               the container runs on, thawed
#   refused-ns  a tmpfs mounted at run time: refused, named, the container
#               runs on
#   ipc         dm-ipc (tests/containers/dm-ipc.c) as the init: SysV shm
#               (attached twice, one not attached), semaphores, a message
#               queue, POSIX queues with messages, a segment removed while
#               attached; a part of a segment mapped, an mq_notify
#               registration and a descriptor of an unlinked queue are
#               each refused, named, the container running on; a checkpoint
#               --leave-running leaves the namespace as it was (ipcs and the
#               queues' files compared); checkpoint + restore: the same seen
#               from outside, and dm-ipc finds every id, owner, mode, size,
#               value, message and both attachments as they were
#   ipc-joined  a config that joins an IPC namespace by path (one made by
#               the test, holding a segment): the checkpoint does not take
#               its objects, the restore (which joins it again) makes none
#   refused-net a veth in the network namespace runc made whose other end is
#               in a third namespace: refused, named
#   net         a veth whose other end is on a bridge of ours (CNI's way): its
#               name, MAC, MTU, address and default route are back, our end
#               on the bridge, and it answers a ping
#   host-file   its stdout a file of the host (no path to it inside): refused
#   bad-image   a restore from a corrupted image, or from a bundle that is not
#               there, fails naming it and leaves no container, no config copy
#   lazy        checkpoint --lazy, restore --lazy (pages served after the
#               resume from the image): it runs on from where it was
#   freezer-v2  the same with the v2 cgroup forced (runc chose v1 here): its
#               cgroup.procs is what is seized; --leave-running leaves it
#               thawed, a restore goes on counting
#   forks       the init's tree forks all the time (a subshell that leaves a
#               child to the init, every 10 ms): every process is seized with
#               its cgroup's list, then the walk from the init; three
#               checkpoints --leave-running and a checkpoint + restore find
#               the tree whole (nothing refused as outside it), and it goes on
#   chain       a restored container checkpointed again (from runc's copy of
#               its config) and restored under another name (--name)
#   hung-state  a runc whose `state` hangs (lib/runc-hang: a hook that never
#               returns, in a child of its own), the limit lowered to 3 s
#               (DMIGRATE_CHILD_TIMEOUT_MS): the checkpoint fails naming it
#               ("runc state ID did not finish in 3 s"), the container runs
#               on, thawed, no partial image, the hung runc and its child gone
#   hung-run    a restore whose `runc run` hangs once it made the container:
#               it fails naming it, the container it made is deleted, no
#               config copy is left, the hung runc and its child are gone;
#               the same image then restores (the counter goes on)
# Each case prints PASS/FAIL; the last line is "N passed, N failed, N skipped".
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build
FILTER=.
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--filter) FILTER=$2; shift ;;
	*) echo "usage: $0 [--build DIR] [--filter REGEX]" >&2; exit 2 ;;
	esac
	shift
done
DM=$BUILD/dmigrate
WORK=$(mktemp -d /tmp/dm-runc.XXXXXX)
ROOT=$WORK/state
B=$WORK/bundle
R=(runc --root "$ROOT")
passed=0 failed=0 skipped=0
IDS=()
EXECS=()
NETNS=()
BRIDGES=()

cleanup() {
	local id
	for p in "${EXECS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for id in "${IDS[@]}"; do "${R[@]}" delete -f "$id" >/dev/null 2>&1; done
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
	for n in "${BRIDGES[@]}"; do ip link del "$n" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# seconds since CASE_T0 (the previous result), "1.23"
CASE_T0=${EPOCHREALTIME/./}
elapsed() {
	local us=$((${EPOCHREALTIME/./} - CASE_T0))
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}
ok() { echo "PASS $1 ($(elapsed) s)"; passed=$((passed + 1)); CASE_T0=${EPOCHREALTIME/./}; }
bad() { echo "FAIL $1: $2 ($(elapsed) s)"; failed=$((failed + 1)); CASE_T0=${EPOCHREALTIME/./}; }
want() { [[ $1 =~ $FILTER ]]; }

if ! command -v runc >/dev/null; then
	echo "SKIP all: runc is not installed (scripts/deps.sh)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
"$REPO/tests/containers/mkbundle.sh" busybox "$B" >/dev/null || { echo "FAIL bundle: mkbundle.sh"; exit 1; }
# a seccomp filter and no_new_privs: the restored init must be as confined
jq '.process.noNewPrivileges = true |
    .linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
                      syscalls: [{names: ["swapon", "swapoff"], action: "SCMP_ACT_ERRNO"}]}' \
	"$B/config.json" >"$WORK/config.json" && cp "$WORK/config.json" "$B/config.json"
# mkbundle's stamp covers its own inputs: the edited config is ours from here

init_pid() { local o; o=$("${R[@]}" state "$1" 2>/dev/null) && jq -r '.pid // 0' <<<"$o" || echo 0; }
status_of() { local o; o=$("${R[@]}" state "$1" 2>/dev/null) && jq -r '.status // "none"' <<<"$o" || echo none; }
confinement() { grep -E '^(CapEff|CapPrm|CapBnd|CapInh|NoNewPrivs|Seccomp|Seccomp_filters):' "/proc/$1/status"; }
counter() { cat "$B/rootfs/tmp/counter" 2>/dev/null; }
# the counter as a number (the file is rewritten each tick: a read may find it
# empty); while the container runs
counter_now() {
	local v
	for _ in $(seq 100); do v=$(counter); [[ $v =~ ^[0-9]+$ ]] && { echo "$v"; return 0; }; sleep 0.02; done
	return 1
}
# after the checkpoint killed it: its last value, or the one read before
# (killed between the truncation and the write)
counter_after() { local v; v=$(counter); [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo "$1"; }
# cgfile ID CONTROLLER FILE: a v1 cgroup file of the container (v2: the unified one)
cgfile() {
	local d
	d=$(jq -r --arg c "$2" '.cgroup_paths[$c] // .cgroup_paths[""]' "$ROOT/$1/state.json")
	cat "$d/$3" 2>/dev/null || cat "$d/${3/limit_in_bytes/max}"
}

start() { # id [bundle]
	IDS+=("$1")
	"${R[@]}" run -d --bundle "${2:-$B}" "$1" </dev/null >/dev/null 2>&1 || return 1
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || return 1
	# far enough from 1 that a counter started again would show (see case_cr)
	local v
	for _ in $(seq 150); do v=$(counter); [[ $v =~ ^[0-9]+$ ]] && ((v >= 5)) && return 0; sleep 0.1; done
	return 1
}

# wait (bounded) until the counter file holds something else than $1
counter_moves_from() {
	local v
	for _ in $(seq 150); do
		v=$(counter)
		[[ $v =~ ^[0-9]+$ && $v != "$1" ]] && { echo "$v"; return 0; }
		sleep 0.1
	done
	return 1
}

# the freezer (v1) and cgroup.freeze (v2) of a container say it runs
thawed() {
	local st p
	st=$(cat "$ROOT/$1/state.json")
	p=$(jq -r '.cgroup_paths.freezer // empty' <<<"$st")
	if [[ -n $p && -e $p/freezer.state ]]; then
		[[ $(cat "$p/freezer.state") == THAWED ]] || return 1
	fi
	p=$(jq -r '.cgroup_paths[""] // empty' <<<"$st")
	if [[ -n $p && -e $p/cgroup.events ]]; then
		grep -q '^frozen 0' "$p/cgroup.events" || return 1
	fi
	return 0
}

source "$REPO/tests/containers/lib.sh"

case_cr() {
	local id=dmcr$$ img=$WORK/img-cr pid before after v0 v1 vb out
	start "$id" || { bad cr "the container does not count"; return; }
	"${R[@]}" exec --cap CAP_SYS_ADMIN "$id" hostname dm-changed || { bad cr "hostname"; return; }
	"${R[@]}" exec "$id" sh -c 'echo in-tmpfs >/dev/shm/kept' || { bad cr "tmpfs file"; return; }
	# files a service made in runc's /dev tmpfs (beside runc's devices)
	"${R[@]}" exec "$id" sh -c 'echo in-dev >/dev/dm-kept && chmod 640 /dev/dm-kept &&
		mkdir -p /dev/dm-dir/sub && echo deep >/dev/dm-dir/sub/f && ln -s dm-kept /dev/dm-link &&
		mkfifo /dev/dm-fifo' || { bad cr "files in /dev"; return; }
	"${R[@]}" update --memory 67108864 --pids-limit 77 "$id" || { bad cr "runc update"; return; }
	pid=$(init_pid "$id")
	vb=$(counter_now)
	before=$(confinement "$pid")
	# what is compared is confinement indeed: filter mode, no_new_privs, few caps
	grep -q $'^Seccomp:\t2' <<<"$before" && grep -q $'^NoNewPrivs:\t1' <<<"$before" &&
		! grep -q $'^CapEff:\t000001ffffffffff' <<<"$before" ||
		{ bad cr "the container is not confined as configured: $(echo $before)"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) ||
		{ bad cr "checkpoint: $out"; return; }
	[[ $(status_of "$id") == none ]] || { bad cr "the container is still there after the checkpoint: $(status_of "$id") $out"; return; }
	v0=$(counter_after "$vb")
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" 2>&1) || { bad cr "restore: $out"; return; }
	[[ $(status_of "$id") == running ]] || { bad cr "runc state: $(status_of "$id")"; return; }
	pid=$(init_pid "$id")
	# it goes on from v0 (+1, or more if this shell was slow to look); a
	# counter started again would be below v0 for v0 ticks
	v1=$(counter_moves_from "$v0") || { bad cr "the counter stays at $v0"; return; }
	((v1 > v0)) || { bad cr "the counter went from $v0 to $v1 (restarted?)"; return; }
	out=$("${R[@]}" exec "$id" cat /proc/1/cmdline | tr '\0' ' ')
	[[ $out == "/bin/sh -c i=0; while"* ]] || { bad cr "pid 1 in the container is '$out'"; return; }
	[[ $(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status") == 1 ]] || { bad cr "runc's pid is not pid 1"; return; }
	out=$("${R[@]}" exec "$id" hostname)
	[[ $out == dm-changed ]] || { bad cr "hostname is '$out'"; return; }
	out=$("${R[@]}" exec "$id" cat /dev/shm/kept)
	[[ $out == in-tmpfs ]] || { bad cr "/dev/shm/kept holds '$out'"; return; }
	out=$("${R[@]}" exec "$id" sh -c 'cat /dev/dm-kept /dev/dm-dir/sub/f; stat -c %a /dev/dm-kept;
		readlink /dev/dm-link; test -p /dev/dm-fifo && echo fifo; test -c /dev/null && echo null' | tr '\n' ' ')
	[[ $out == "in-dev deep 640 dm-kept fifo null " ]] || { bad cr "runc's /dev holds '$out'"; return; }
	out=$(cgfile "$id" memory memory.limit_in_bytes)/$(cgfile "$id" pids pids.max)
	[[ $out == 67108864/77 ]] || { bad cr "cgroup limits (memory/pids) are $out, not 67108864/77"; return; }
	after=$(confinement "$pid")
	[[ $before == "$after" ]] || { bad cr "confinement differs: before: $(echo $before) after: $(echo $after)"; return; }
	"${R[@]}" list | grep -q "^$id " || { bad cr "runc list does not show it"; return; }
	"${R[@]}" kill "$id" KILL || { bad cr "runc kill"; return; }
	for _ in $(seq 100); do [[ $(status_of "$id") == stopped ]] && break; sleep 0.1; done
	[[ $(status_of "$id") == stopped ]] || { bad cr "not stopped after runc kill: $(status_of "$id")"; return; }
	"${R[@]}" delete "$id" || { bad cr "runc delete"; return; }
	[[ $(status_of "$id") == none ]] || { bad cr "still there after runc delete"; return; }
	ok cr
}

case_leave() {
	local id=dmlv$$ img=$WORK/img-leave pid out
	start "$id" || { bad leave "the container does not count"; return; }
	pid=$(init_pid "$id")
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" --leave-running 2>&1) ||
		{ bad leave "checkpoint: $out"; return; }
	[[ $(status_of "$id") == running && $(init_pid "$id") == "$pid" ]] || { bad leave "not running on"; return; }
	thawed "$id" || { bad leave "left frozen"; return; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad leave "the counter stopped"; return; }
	[[ -f $img/inventory.img ]] || { bad leave "no image"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok leave
}

case_refused() {
	local id=dmrf$$ img=$WORK/img-refused b2=$WORK/bundle-uevent pid out
	# the same rootfs; the init starts uevent (a netlink socket) in the
	# background: a process of its tree holds what the engine cannot restore
	mkdir -p "$b2"
	jq --arg root "$B/rootfs" '.root.path = $root |
	    .process.args[2] = "uevent </dev/null >/dev/null 2>&1 & " + .process.args[2]' \
		"$B/config.json" >"$b2/config.json"
	start "$id" "$b2" || { bad refused "the container does not count"; return; }
	pid=$(init_pid "$id")
	for _ in $(seq 200); do pgrep -P "$pid" -x uevent >/dev/null && break; sleep 0.05; done
	pgrep -P "$pid" -x uevent >/dev/null || { bad refused "uevent did not start"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1)
	if (($? == 0)); then bad refused "the checkpoint succeeded"; return; fi
	grep -Eq 'unsupported fd [0-9]+ of process [0-9]+.*NETLINK' <<<"$out" ||
		{ bad refused "the error does not name the socket: $out"; return; }
	grep -q "container $id runs on, unchanged" <<<"$out" || { bad refused "no 'runs on': $out"; return; }
	[[ $(status_of "$id") == running && $(init_pid "$id") == "$pid" ]] || { bad refused "not running on"; return; }
	thawed "$id" || { bad refused "left frozen"; return; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad refused "the counter stopped"; return; }
	[[ ! -e $img ]] || { bad refused "a partial image is left"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok refused
}

case_not_tree() {
	local id=dmnt$$ img=$WORK/img-nt out
	start "$id" || { bad not-tree "the container does not count"; return; }
	"${R[@]}" exec "$id" sleep 1000 </dev/null >/dev/null 2>&1 &
	EXECS+=($!)
	disown $!
	# until `sleep 1000` is in the container's cgroup
	local cg p found=0
	cg=$(jq -r '.cgroup_paths.freezer // .cgroup_paths[""]' "$ROOT/$id/state.json")
	for _ in $(seq 200); do
		for p in $(cat "$cg/cgroup.procs"); do
			[[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == "sleep 1000 " ]] && found=1
		done
		((found)) && break
		sleep 0.05
	done
	((found)) || { bad not-tree "runc exec sleep 1000 did not start"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1)
	if (($? == 0)); then bad not-tree "the checkpoint succeeded"; return; fi
	grep -Eq 'process [0-9]+ \(sleep\) is in container .* not below its init' <<<"$out" ||
		{ bad not-tree "the error does not name the process: $out"; return; }
	[[ $(status_of "$id") == running ]] && thawed "$id" || { bad not-tree "not running on, thawed"; return; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad not-tree "the counter stopped"; return; }
	kill -KILL "${EXECS[@]}" 2>/dev/null
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok not-tree
}

# refused NAME WHAT REGEX: the checkpoint of $id fails naming WHAT (REGEX), and
# the container runs on, thawed, counting
expect_refused() {
	local name=$1 id=$2 re=$3 img=$WORK/img-$1 out
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1)
	if (($? == 0)); then bad "$name" "the checkpoint succeeded"; return 1; fi
	grep -Eq "$re" <<<"$out" || { bad "$name" "the error does not match /$re/: $out"; return 1; }
	[[ $(status_of "$id") == running ]] && thawed "$id" || { bad "$name" "not running on, thawed"; return 1; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad "$name" "the counter stopped"; return 1; }
	[[ ! -e $img ]] || { bad "$name" "a partial image is left"; return 1; }
}

case_refused_ns() {
	local id=dmns$$
	start "$id" || { bad refused-ns "the container does not count"; return; }
	# a mount made at run time: not in the config, runc would not make it
	"${R[@]}" exec --cap CAP_SYS_ADMIN "$id" mount -t tmpfs none /srv || { bad refused-ns "mount"; return; }
	expect_refused refused-ns "$id" "tmpfs mount at /srv was made at run time" || return
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok refused-ns
}

IPC_DIR=$B/rootfs/tmp
ipc_ack() { ctr_ipc_ack "$IPC_DIR" "$1"; }
ipc_cmd() { ctr_ipc_cmd "$IPC_DIR" "$1"; }
ipc_view() { ctr_ipc_view "$1"; }

case_ipc() {
	local id=dmipc$$ b2=$WORK/bundle-ipc img=$WORK/img-ipc pid out before after
	local prog=$BUILD/tests/containers/dm-ipc
	[[ -x $prog ]] || { bad ipc "no $prog (ninja -C $BUILD)"; return; }
	cp "$prog" "$B/rootfs/dm-ipc" && rm -f "$IPC_DIR"/dm-ipc.* || { bad ipc "cannot put dm-ipc in the rootfs"; return; }
	mkdir -p "$b2"
	jq --arg root "$B/rootfs" '.root.path = $root | .process.args = ["/dm-ipc", "/tmp"]' \
		"$B/config.json" >"$b2/config.json"
	IDS+=("$id")
	"${R[@]}" run -d --bundle "$b2" "$id" </dev/null >/dev/null 2>&1 || { bad ipc "runc run"; return; }
	out=$(ipc_ack ready) || { bad ipc "$out"; return; }
	pid=$(init_pid "$id")
	before=$(ipc_view "$pid")
	grep -q '^0x444d0001 ' <<<"$before" && grep -q '^0x444d0003 ' <<<"$before" &&
		grep -q 'QSIZE:15' <<<"$before" || { bad ipc "the namespace does not hold the objects: $before"; return; }
	# what cannot come back is refused, named, and the container runs on
	local cmd re
	for cmd in part notify unlinked; do
		case $cmd in
		part) re="process [0-9]+: part of SysV shared memory segment id [0-9]+ \\(12288 bytes from offset 0 of 12411\\)" ;;
		notify) re="POSIX message queue /dmq2 has an mq_notify registration \\(of process [0-9]+" ;;
		unlinked) re="unsupported fd [0-9]+ of process [0-9]+: the POSIX message queue /dmq3 \\(deleted\\) is not in the container's IPC namespace \\(its name was unlinked\\)" ;;
		esac
		out=$(ipc_cmd "$cmd") || { bad ipc "$cmd: $out"; return; }
		out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) &&
			{ bad ipc "$cmd: the checkpoint succeeded"; return; }
		grep -Eq "$re" <<<"$out" || { bad ipc "$cmd: the error does not match /$re/: $out"; return; }
		[[ $(status_of "$id") == running && $(init_pid "$id") == "$pid" ]] && thawed "$id" ||
			{ bad ipc "$cmd: not running on, thawed"; return; }
		[[ ! -e $img ]] || { bad ipc "$cmd: a partial image is left"; return; }
		out=$(ipc_cmd clean) || { bad ipc "clean: $out"; return; }
	done
	# reading the queues leaves them as they were (the source's side of a rollback)
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img-leave" --leave-running 2>&1) ||
		{ bad ipc "checkpoint --leave-running: $out"; return; }
	after=$(ipc_view "$pid")
	[[ $after == "$before" ]] || { bad ipc "a checkpoint changed the namespace: $(diff <(echo "$before") <(echo "$after"))"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) || { bad ipc "checkpoint: $out"; return; }
	# show-image names them; the init's three attachments are SysV VMAs
	out=$("$DM" show-image --json "$img" | jq -c '[(.container.ipc | [(.shm|length), (.sem|length),
		(.msq[0].messages), ([.mqueue[].messages]|add)]), ([.processes[0].vmas[] | select(.kind == "SYSV_SHM")] | length)]')
	[[ $out == "[[3,1,4,4],3]" ]] || { bad ipc "show-image --json: $out"; return; }
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" 2>&1) || { bad ipc "restore: $out"; return; }
	[[ $(status_of "$id") == running ]] || { bad ipc "runc state: $(status_of "$id")"; return; }
	after=$(ipc_view "$(init_pid "$id")")
	[[ $after == "$before" ]] || { bad ipc "the namespace differs after the restore: $(diff <(echo "$before") <(echo "$after"))"; return; }
	# and from inside: every id, owner, mode, size, value, message, the two attachments
	out=$(ipc_cmd check) || { bad ipc "$out"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok ipc
}

# a config that joins an IPC namespace by path (one of ours, not the
# machine's: the suite may run this beside other tests)
case_ipc_joined() {
	local id=dmij$$ b3=$WORK/bundle-joinedipc img=$WORK/img-joinedipc ns=$WORK/ipcns out before after
	touch "$ns" && unshare --ipc="$ns" true || { bad ipc-joined "unshare --ipc=$ns"; return; }
	mkdir -p "$b3"
	jq --arg root "$B/rootfs" --arg ns "$ns" '.root.path = $root |
	    .linux.namespaces |= map(if .type == "ipc" then .path = $ns else . end)' \
		"$B/config.json" >"$b3/config.json"
	# it outlives the container with what it holds: not the container's to dump or make
	nsenter --ipc="$ns" ipcmk -M 4096 >/dev/null || { bad ipc-joined "ipcmk"; umount "$ns"; return; }
	before=$(nsenter --ipc="$ns" ipcs -m | grep -v '^$')
	start "$id" "$b3" || { bad ipc-joined "the container does not count"; umount "$ns"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) ||
		{ bad ipc-joined "checkpoint: $out"; umount "$ns"; return; }
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" 2>&1) ||
		{ bad ipc-joined "restore: $out"; umount "$ns"; return; }
	after=$(nsenter --ipc="$ns" ipcs -m | grep -v '^$')
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	umount "$ns"
	[[ -z $(ls "$img" | grep sysvshm) ]] || { bad ipc-joined "the joined namespace's segment is in the image"; return; }
	[[ $after == "$before" ]] || { bad ipc-joined "its segments changed: $(diff <(echo "$before") <(echo "$after"))"; return; }
	ok ipc-joined
}

case_refused_net() {
	local id=dmnet$$ pid
	start "$id" || { bad refused-net "the container does not count"; return; }
	pid=$(init_pid "$id")
	# a veth whose other end is in a third network namespace: not ours to make
	ip netns add "dmx$$" && NETNS+=("dmx$$") &&
		ip link add "dmd$$" type veth peer name "dmp$$" netns "dmx$$" && ip link set "dmd$$" netns "$pid" ||
		{ bad refused-net "ip link"; return; }
	expect_refused refused-net "$id" "network interface dmd$$ \\(veth\\) is in the network namespace runc made and is not a veth whose other end is in ours" || return
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok refused-net
}

# its veth (the other end on a bridge of ours, as CNI's bridge plugin does)
# comes back: name, MAC, MTU, address, route, our end on the bridge.  "Ours"
# is a network namespace of the test's own (its bridge, its address range,
# the ping from it, dmigrate run in it): nothing on the machine's own network,
# and two runs at once do not meet
case_net() {
	local id=dmvn$$ img=$WORK/img-net pid out before after br=dmb$$ h=dmh$$ ns=dmn$$
	start "$id" || { bad net "the container does not count"; return; }
	pid=$(init_pid "$id")
	in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
	ip netns add "$ns" && NETNS+=("$ns") && ip -n "$ns" link set lo up &&
		ip -n "$ns" link add "$br" type bridge && ip -n "$ns" addr add 10.213.77.1/24 dev "$br" &&
		ip -n "$ns" link set "$br" up && ip link add "$h" netns "$ns" type veth peer name eth0 netns "$pid" &&
		ip -n "$ns" link set "$h" master "$br" up && nsenter --net="/proc/$pid/ns/net" sh -c "
			ip link set eth0 address 02:00:0a:d5:4d:02 mtu 1400 && ip addr add 10.213.77.2/24 dev eth0 &&
			ip link set eth0 up && ip route add default via 10.213.77.1" || { bad net "network setup"; return; }
	in_ns busybox ping -c 1 -W 5 10.213.77.2 >/dev/null || { bad net "no answer before the checkpoint"; return; }
	view() { nsenter --net="/proc/$1/ns/net" sh -c 'ip -br link show eth0 | sed "s/@if[0-9]*//" | tr -s " "
		ip -o -4 addr show dev eth0 | awk "{print \$4}"; ip link show eth0 | grep -o "mtu [0-9]*"; ip route show default'; }
	before=$(view "$pid")
	out=$(in_ns "$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) || { bad net "checkpoint: $out"; return; }
	ip -n "$ns" link show "$h" >/dev/null 2>&1 && { bad net "our end outlived the container"; return; }
	out=$(in_ns "$DM" restore --images "$img" --runc-root "$ROOT" 2>&1) || { bad net "restore: $out"; return; }
	pid=$(init_pid "$id")
	after=$(view "$pid")
	[[ $before == "$after" ]] || { bad net "eth0 differs: before: $(echo $before) after: $(echo $after)"; return; }
	[[ $(ip -n "$ns" -j link show "$h" | jq -r '.[0].master') == "$br" ]] || { bad net "our end is not on $br"; return; }
	in_ns busybox ping -c 1 -W 5 10.213.77.2 >/dev/null || { bad net "no answer after the restore"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok net
}

case_host_file() {
	local id=dmhf$$
	# its stdout is a file of the host, not reachable inside the container
	IDS+=("$id")
	"${R[@]}" run -d --bundle "$B" "$id" </dev/null >"$WORK/host.log" 2>&1 ||
		{ bad host-file "runc run"; return; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad host-file "the container does not count"; return; }
	expect_refused host-file "$id" "fd 1 of process [0-9]+ \\(sh\\) in container '$id' is $WORK/host.log, on a mount outside the container" || return
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok host-file
}

# a restore that fails makes nothing: no container, no config copy
case_bad_image() {
	local id=dmbi$$ img=$WORK/img-bad out copies
	start "$id" || { bad bad-image "the container does not count"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" --leave-running 2>&1) ||
		{ bad bad-image "checkpoint: $out"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	copies=$(ls /run/dmigrate 2>/dev/null | wc -l)
	# a good image whose bundle is not there: refused before runc runs
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" --runc-bundle "$WORK/nowhere" 2>&1)
	if (($? == 0)); then bad bad-image "the restore from a missing bundle succeeded"; return; fi
	grep -q "rootfs $WORK/nowhere/rootfs is not here" <<<"$out" || { bad bad-image "missing rootfs: $out"; return; }
	[[ $(status_of "$id") == none ]] || { bad bad-image "a container is left after the missing bundle"; return; }
	# a byte of the init's image changed: its checksum fails, before runc runs
	printf 'X' | dd of="$img/proc-1.img" bs=1 seek=100 conv=notrunc 2>/dev/null
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" 2>&1)
	if (($? == 0)); then bad bad-image "the restore succeeded"; return; fi
	grep -q "proc-1.img" <<<"$out" || { bad bad-image "the error does not name the file: $out"; return; }
	[[ $(status_of "$id") == none ]] || { bad bad-image "a container is left: $(status_of "$id")"; return; }
	(($(ls /run/dmigrate 2>/dev/null | wc -l) == copies)) || { bad bad-image "a config copy is left in /run/dmigrate"; return; }
	ok bad-image
}

case_lazy() {
	local id=dmlz$$ v0 v1 vb out
	start "$id" || { bad lazy "the container does not count"; return; }
	vb=$(counter_now)
	# an empty tmpfs whose top was changed: no archive, its attributes back
	"${R[@]}" exec "$id" chmod 1770 /dev/shm || { bad lazy "chmod /dev/shm"; return; }
	out=$("$DM" checkpoint "runc:$id" --lazy --runc-root "$ROOT" --images "$WORK/img-lazy" 2>&1) ||
		{ bad lazy "checkpoint --lazy: $out"; return; }
	"$DM" show-image "$WORK/img-lazy" | grep -q "tmpfs /dev/shm: empty (mode 1770" ||
		{ bad lazy "the empty /dev/shm is not recorded as such: $("$DM" show-image "$WORK/img-lazy" | grep tmpfs)"; return; }
	v0=$(counter_after "$vb")
	out=$("$DM" restore --lazy --images "$WORK/img-lazy" --runc-root "$ROOT" 2>&1) ||
		{ bad lazy "restore --lazy: $out"; return; }
	[[ $(status_of "$id") == running ]] || { bad lazy "runc state: $(status_of "$id")"; return; }
	v1=$(counter_moves_from "$v0") && ((v1 > v0)) || { bad lazy "counter $v0 -> ${v1:-}"; return; }
	out=$("${R[@]}" exec "$id" stat -c %a /dev/shm)
	[[ $out == 1770 ]] || { bad lazy "/dev/shm's mode is $out, not 1770"; return; }
	out=$("${R[@]}" exec "$id" cat /proc/1/cmdline | tr '\0' ' ')
	[[ $out == "/bin/sh -c i=0; while"* ]] || { bad lazy "pid 1 in the container is '$out'"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok lazy
}

# the v2 freezer (cgroup.freeze), which runc's hybrid mode here does not
# choose: forced for the test; the container runs on thawed, then moves
case_v2() {
	local id=dmv2$$ vb v0 v1 out
	start "$id" || { bad freezer-v2 "the container does not count"; return; }
	out=$(DMIGRATE_TEST_FREEZER=v2 "$DM" checkpoint "runc:$id" --runc-root "$ROOT" \
		--images "$WORK/img-v2a" --leave-running 2>&1) || { bad freezer-v2 "checkpoint: $out"; return; }
	[[ $(show_freezer "$WORK/img-v2a") == v2 ]] || { bad freezer-v2 "not frozen with v2"; return; }
	thawed "$id" && [[ $(status_of "$id") == running ]] || { bad freezer-v2 "left frozen"; return; }
	vb=$(counter_now)
	out=$(DMIGRATE_TEST_FREEZER=v2 "$DM" checkpoint "runc:$id" --runc-root "$ROOT" \
		--images "$WORK/img-v2b" 2>&1) || { bad freezer-v2 "checkpoint: $out"; return; }
	v0=$(counter_after "$vb")
	out=$("$DM" restore --images "$WORK/img-v2b" --runc-root "$ROOT" 2>&1) || { bad freezer-v2 "restore: $out"; return; }
	v1=$(counter_moves_from "$v0") && ((v1 > v0)) || { bad freezer-v2 "counter $v0 -> ${v1:-}"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok freezer-v2
}
show_freezer() { "$DM" show-image --json "$1" | jq -r '.container.freezer // empty'; }

case_forks() {
	local id=dmfk$$ b2=$WORK/bundle-forks vb v0 v1 out
	mkdir -p "$b2"
	# orphans too: the subshell's sleep goes to the init when the subshell ends
	jq --arg root "$B/rootfs" '.root.path = $root |
	    .process.args[2] = "while :; do ( sleep 0.05 & ); sleep 0.01; done & " + .process.args[2]' \
		"$B/config.json" >"$b2/config.json"
	start "$id" "$b2" || { bad forks "the container does not count"; return; }
	for k in 1 2 3; do
		out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$WORK/img-fk$k" \
			--leave-running 2>&1) || { bad forks "checkpoint $k --leave-running: $out"; return; }
		[[ $(status_of "$id") == running ]] || { bad forks "not running after checkpoint $k"; return; }
	done
	vb=$(counter_now)
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$WORK/img-fk" 2>&1) ||
		{ bad forks "checkpoint: $out"; return; }
	v0=$(counter_after "$vb")
	out=$("$DM" restore --images "$WORK/img-fk" --runc-root "$ROOT" 2>&1) || { bad forks "restore: $out"; return; }
	v1=$(counter_moves_from "$v0") && ((v1 > v0)) || { bad forks "counter $v0 -> ${v1:-}"; return; }
	# the loop and its children were in the tree (the init, its loop's
	# subshell, a sleep at least)
	out=$(ls "$WORK/img-fk" | grep -c "^proc-" || true)
	((out >= 3)) || { bad forks "the image holds $out processes: no fork was caught"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok forks
}

case_chain() {
	local id=dmch$$ id2=dmch2$$ v0 v1 vb out
	start "$id" || { bad chain "the container does not count"; return; }
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$WORK/img-ch1" 2>&1) &&
		out=$("$DM" restore --images "$WORK/img-ch1" --runc-root "$ROOT" 2>&1) ||
		{ bad chain "first checkpoint/restore: $out"; return; }
	IDS+=("$id2")
	vb=$(counter_now)
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$WORK/img-ch2" 2>&1) ||
		{ bad chain "checkpoint of the restored container: $out"; return; }
	v0=$(counter_after "$vb")
	out=$("$DM" restore --images "$WORK/img-ch2" --runc-root "$ROOT" --name "$id2" 2>&1) ||
		{ bad chain "restore --name: $out"; return; }
	[[ $(status_of "$id2") == running ]] || { bad chain "$id2 is $(status_of "$id2")"; return; }
	v1=$(counter_moves_from "$v0") && ((v1 > v0)) || { bad chain "counter $v0 -> ${v1:-}"; return; }
	[[ $("${R[@]}" state "$id2" | jq -r '.annotations["org.dmigrate.bundle"]') == "$B" ]] ||
		{ bad chain "the user's bundle is lost"; return; }
	"${R[@]}" delete -f "$id2" >/dev/null 2>&1
	ok chain
}

# the fake runc (lib/runc-hang) in place of runc, the limits lowered:
# hang_env VERB CMD...
HANG_BIN=$WORK/hang-bin
HANG_SLEEP=$((80000 + $$ % 9999))
hang_env() {
	local verb=$1
	shift
	mkdir -p "$HANG_BIN" && ln -sf "$REPO/tests/containers/lib/runc-hang" "$HANG_BIN/runc"
	# bounded: without a limit on the wait for runc, the command would hang
	timeout 120 env PATH="$HANG_BIN:$PATH" DM_RUNC_REAL="$(command -v runc)" DM_RUNC_HANG="$verb" \
		DM_RUNC_SLEEP=$HANG_SLEEP DMIGRATE_CHILD_TIMEOUT_MS=3000 "$@"
}
# the hung runc's child is gone (killed with its runc's process group)
hang_gone() { ! pgrep -f "^sleep $HANG_SLEEP\$" >/dev/null; }

case_hung_state() {
	local id=dmhs$$ img=$WORK/img-hs pid out
	start "$id" || { bad hung-state "the container does not count"; return; }
	pid=$(init_pid "$id")
	out=$(hang_env state "$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1)
	case $? in
	0) bad hung-state "the checkpoint succeeded"; return ;;
	124) bad hung-state "the checkpoint hung (killed after 120 s): $out"; return ;;
	esac
	grep -q "runc state $id did not finish in 3 s (killed)" <<<"$out" ||
		{ bad hung-state "the error does not name the hung runc: $out"; return; }
	[[ $(status_of "$id") == running && $(init_pid "$id") == "$pid" ]] || { bad hung-state "not running on"; return; }
	thawed "$id" || { bad hung-state "left frozen"; return; }
	ctr_counter_advances "$B/rootfs/tmp/counter" >/dev/null || { bad hung-state "the counter stopped"; return; }
	[[ ! -e $img ]] || { bad hung-state "a partial image is left"; return; }
	hang_gone || { bad hung-state "the hung runc's child (sleep $HANG_SLEEP) runs on"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok hung-state
}

case_hung_run() {
	local id=dmhr$$ img=$WORK/img-hr out vb v0 v1
	start "$id" || { bad hung-run "the container does not count"; return; }
	vb=$(counter_now)
	out=$("$DM" checkpoint "runc:$id" --runc-root "$ROOT" --images "$img" 2>&1) ||
		{ bad hung-run "checkpoint: $out"; return; }
	v0=$(counter_after "$vb")
	out=$(hang_env run "$DM" restore --images "$img" --runc-root "$ROOT" 2>&1)
	case $? in
	0) bad hung-run "the restore succeeded"; return ;;
	124) bad hung-run "the restore hung (killed after 120 s): $out"; return ;;
	esac
	grep -q "runc run $id did not finish in 3 s (killed)" <<<"$out" ||
		{ bad hung-run "the error does not name the hung runc: $out"; return; }
	[[ $(status_of "$id") == none ]] || { bad hung-run "the container it made is left: $(status_of "$id")"; return; }
	# (ours: made from this run's bundle; other runs may make theirs meanwhile)
	out=$(grep -ls -- "$B" /run/dmigrate/runc-*/config.json)
	[[ -z $out ]] || { bad hung-run "a config copy is left: $out"; return; }
	hang_gone || { bad hung-run "the hung runc's child (sleep $HANG_SLEEP) runs on"; return; }
	# nothing of the image was used up: it restores
	out=$("$DM" restore --images "$img" --runc-root "$ROOT" 2>&1) || { bad hung-run "the restore after: $out"; return; }
	v1=$(counter_moves_from "$v0") && ((v1 > v0)) || { bad hung-run "counter $v0 -> ${v1:-}"; return; }
	"${R[@]}" delete -f "$id" >/dev/null 2>&1
	ok hung-run
}

t0=$(date +%s.%N)
want cr && case_cr
want leave && case_leave
want refused && case_refused
want not-tree && case_not_tree
want refused-ns && case_refused_ns
want ipc && case_ipc
want ipc-joined && case_ipc_joined
want refused-net && case_refused_net
want net && case_net
want host-file && case_host_file
want bad-image && case_bad_image
want lazy && case_lazy
want freezer-v2 && case_v2
want forks && case_forks
want chain && case_chain
want hung-state && case_hung_state
want hung-run && case_hung_run
echo "# $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
