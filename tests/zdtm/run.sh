#!/bin/bash
# SPDX-License-Identifier: MIT
#
# zdtm runner: start each feature test, move it (checkpoint + restore, a
# migration, or nothing), compare the /proc views before and after, ask it
# to check itself (SIGTERM) and collect its verdict.
#
#   tests/zdtm/run.sh [--mode MODE] [--dmigrate PATH] [--build DIR]
#                     [--filter REGEX] [--keep] [--list] [--verbose]
#
# Modes (each is one function mode_<name> below; add a mode by adding one):
#   none       no checkpoint: the sanity run, every test must pass here
#   cr         dmigrate checkpoint, then dmigrate restore (default)
#   lazy       dmigrate checkpoint, then dmigrate restore --lazy
#   dump       dmigrate checkpoint --leave-running: the original goes on
#   post-copy, pre-copy, stop-and-copy, hybrid
#              dmigrate migrate pid:PID --to $ZDTM_MIGRATE_TO --mode MODE
#              (skipped unless ZDTM_MIGRATE_TO is set; see mode_migrate)
#
# A test is tests/zdtm/{static,transition}/NAME.c; its binary is
# BUILD/tests/zdtm/{static,transition}/NAME. Its first lines may hold
#   // zdtm: flags=F1,F2,...
# with these flags:
#   pidns            start it as pid 1 of a new PID namespace (zdtm_launch --pidns)
#   transition       its state changes while it is dumped (implied under transition/):
#                    only the root's maps and fds are compared, fd positions are not
#   expect=dump-fail the checkpoint must fail (non-zero exit) and leave the test
#                    running unharmed; it then checks itself as usual
#   dump-err=REGEX   with expect=dump-fail: the engine's error output must match
#                    REGEX (grep -Ei), i.e. the error names the culprit
#   refused-in=M1+M2 expect=dump-fail in those modes only (what one mode cannot
#                    bring back exactly, it refuses)
#   copies-in=M1+M2  in those modes the engine brings memory back exactly but
#                    without its copy-on-write sharing (a documented limit, or
#                    what migrate-opt asks for): the test gets --arg copies and
#                    checks the contents only; a migration's stats must count
#                    the copied pages (dump.cow.copied_pages)
#   nocmp=maps|fds|attrs  do not compare that view (say why in the test's comment)
#   distinct-fs      in the migrate modes, needs a destination with a file system
#                    of its own: SKIPped (before it runs) when ZDTM_SHARED_FS=1
#                    says that the source and destination share one
#   dump-opt=OPTION  one more option for `dmigrate checkpoint` (e.g. --ext-unix);
#                    the migrate modes do not take it
#   migrate-opt=OPTION  one more option for `dmigrate migrate` (e.g. --cow-max=4)
#   migrate-env=VAR=VALUE  that variable in `dmigrate migrate`'s environment (a knob,
#                    e.g. DMIGRATE_SHARED_PRESEND=0)
#   signal-after-move=SIG  send SIG to the root the instant the move returns
#                    (before any view is taken): the restored tree must already
#                    run in its final state; the check's SIGTERM follows once
#                    SIG has been taken (no longer pending)
#   peer             before the test, start its binary again with --arg peer
#                    and --out DIR/peer.result, outside the tree (its own
#                    session): a peer the tree talks to across the move; its
#                    verdict must be PASS too.  Skipped in the migrate modes
#                    (the peer stays on this host)
#
# Known-benign differences between the views before and after (not failures):
#   - numbers of pipe/socket/anon/shmem/deleted-file inodes: objects are new
#     after restore; they are renamed by order of first appearance, so which
#     fds and mappings share an object is still compared
#   - /dev/pts/N indexes: a pty pair cannot be given its old index back;
#     renamed the same way (the pairing is still compared)
#   - adjacent mappings with the same permissions and backing that the kernel
#     split or merged differently (anon_vma history): merged before comparing
#   - pids without a PID namespace: processes are keyed by depth and comm
#   - mnt_id in fdinfo; the position of O_APPEND fds (the shared log moves
#     with every line logged; writes go to the end anyway)
#   - attrs (lib/procview.py, not for transition tests): CPU times, counters,
#     memory counters, host ids, CPU/memory masks, soft-dirty and userfaultfd
#     VmFlags; the list and the reasons are at the top of procview.py
# Everything else in /proc/PID/maps (ranges, perms, offsets, devices, paths),
# in the fd table (targets, flags incl. O_CLOEXEC, positions), in the process
# tree (ns pids, comm, stopped/zombie state, thread ids in a PID namespace)
# must be identical.
#
# Output: one line per test, "PASS name (T s)", "FAIL name: reason (T s)" or
# "SKIP name: reason (T s)" (T: the test's duration, start to cleanup), then
# "N passed, N failed, N skipped". Exit 1 if any
# test failed. Environment knobs: ZDTM_TIMEOUT_READY, ZDTM_TIMEOUT_CHECKPOINT,
# ZDTM_TIMEOUT_RESTORE, ZDTM_TIMEOUT_RESULT (seconds), ZDTM_WORKDIR,
# ZDTM_NETNS (a /run/netns/NAME path: tests start in that network namespace).

set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

ZDTM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$ZDTM_DIR/../.." && pwd)

MODE=cr
BUILD=
DMIGRATE=
FILTER=
KEEP=0
LIST=0
VERBOSE=0
T_READY=${ZDTM_TIMEOUT_READY:-30}
T_CHECKPOINT=${ZDTM_TIMEOUT_CHECKPOINT:-120}
T_RESTORE=${ZDTM_TIMEOUT_RESTORE:-120}
T_RESULT=${ZDTM_TIMEOUT_RESULT:-60}

usage() {
	sed -n '4,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 2
}

while (($#)); do
	case $1 in
	--mode) MODE=${2:?}; shift ;;
	--mode=*) MODE=${1#*=} ;;
	--dmigrate) DMIGRATE=${2:?}; shift ;;
	--dmigrate=*) DMIGRATE=${1#*=} ;;
	--build) BUILD=${2:?}; shift ;;
	--build=*) BUILD=${1#*=} ;;
	--filter) FILTER=${2:?}; shift ;;
	--filter=*) FILTER=${1#*=} ;;
	--keep) KEEP=1 ;;
	--list) LIST=1 ;;
	--verbose | -v) VERBOSE=1 ;;
	-h | --help) usage ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done

if [[ -z $BUILD ]]; then
	for d in "$REPO/build" "$REPO/builddir"; do
		[[ -x $d/tests/zdtm/zdtm_launch ]] && { BUILD=$d; break; }
	done
fi
[[ -n $BUILD && -x $BUILD/tests/zdtm/zdtm_launch ]] || {
	echo "run.sh: no build dir with tests/zdtm/zdtm_launch (use --build DIR)" >&2
	exit 2
}
BUILD=$(cd "$BUILD" && pwd)
LAUNCH=$BUILD/tests/zdtm/zdtm_launch
[[ -n $DMIGRATE ]] || DMIGRATE=$BUILD/dmigrate

if ! declare -F "mode_${MODE//-/_}" >/dev/null 2>&1; then
	: # checked after the mode functions are defined
fi

# ---------------------------------------------------------------- helpers

log() { ((VERBOSE)) && echo "# $*" >&2; return 0; }

# Poll until "$@" succeeds or $1 seconds pass.
wait_until() {
	local t=$1 end
	shift
	end=$((SECONDS + t))
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.02
	done
	return 0
}

# STAT_REST: the stat of a process after its comm, from the state letter on
# (builtins only: these run in polling loops, and a fork costs tens of ms on
# a loaded host).
stat_rest() {
	local l
	STAT_REST=
	read -r l 2>/dev/null <"/proc/$1/stat" || return 1
	STAT_REST=${l##*) }
}

proc_alive() {
	stat_rest "$1" || return 1
	[[ -n $STAT_REST && ${STAT_REST:0:1} != Z && ${STAT_REST:0:1} != X ]]
}

proc_gone() { ! proc_alive "$1"; }

# Not even a zombie: the pid is free for a restore that wants it back.
pid_free() { [[ ! -e /proc/$1 ]]; }

file_exists() { [[ -e $1 ]]; }

# sig_taken PID SIG: no thread of PID has SIG pending, nor the process
# (SigPnd, ShdPnd of /proc/PID/task/*/status; builtins only)
sig_taken() {
	local n k v t
	n=$(kill -l "$2" 2>/dev/null) || return 0
	for t in /proc/"$1"/task/*/status; do
		while read -r k v; do
			case $k in
			SigPnd: | ShdPnd:) (((16#$v >> (n - 1)) & 1)) && return 1 ;;
			esac
		done <"$t" 2>/dev/null
	done
	return 0
}

# Start time of a process (field 22 of stat): with the pid, its identity.
# Pids wrap quickly here; a pid we saw earlier may name another process now.
# (STARTTIME set, builtins only)
proc_starttime() {
	local -a f
	STARTTIME=
	stat_rest "$1" || return 1
	read -ra f <<<"$STAT_REST"
	STARTTIME=${f[19]:-}
}

declare -A IDENT=()
remember() { [[ -n ${1:-} ]] && proc_starttime "$1" && IDENT[$1]=$STARTTIME; return 0; }
same_proc() { [[ -n ${1:-} && -n ${IDENT[$1]:-} ]] && proc_starttime "$1" && [[ $STARTTIME == "${IDENT[$1]}" ]]; }

# Kill everything that belongs to a test: the tree under each given root
# that is still the process we remembered, and whatever is in the session
# or process group of a root (children that setsid() or were orphaned; a
# pid in use as a session or group id is never reused, so this is safe
# also when the root itself is gone). Stop first, so that a forking loop
# cannot outrun us; again until a pass finds no process it had not stopped.
# Zombies are left to their reaper (a signal does nothing to them).
kill_test() {
	local -a roots=() ids=() all=() found=()
	local r p rounds
	local -A given=() seen=()
	for r in "$@"; do
		[[ -n $r && -z ${given[$r]:-} ]] || continue
		given[$r]=1
		ids+=("$r")
		same_proc "$r" && roots+=("$r")
	done
	for rounds in 1 2 3 4 5; do
		# one pass over /proc (a fork per process took seconds on a loaded
		# host): the live processes that are roots, in the group or session
		# of an id, or below one of those (by parent pid)
		mapfile -t found < <(
			cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots=" ${roots[*]} " -v ids=" ${ids[*]} " '
				function below(p,   q, r) {
					if (p in memo) return memo[p]
					memo[p] = 0
					q = ppid[p]
					r = (p in hit) || (q in ppid && below(q))
					memo[p] = r
					return r
				}
				{ pid = $1; sub(/.*\) /, "")	# state ppid pgrp session ...
				  ppid[pid] = $2; live[pid] = ($1 != "Z" && $1 != "X")
				  if (index(roots, " " pid " ") || index(ids, " " $3 " ") || index(ids, " " $4 " "))
					hit[pid] = 1 }
				END { for (p in ppid) if (live[p] && below(p)) print p }')
		local -a new=()
		for p in "${found[@]}"; do
			[[ -n ${seen[$p]:-} ]] || { seen[$p]=1; new+=("$p"); }
		done
		((${#new[@]})) || break
		kill -STOP "${new[@]}" 2>/dev/null
		all+=("${new[@]}")
		roots=("${all[@]}")
	done
	((${#all[@]})) || return 0
	kill -KILL "${all[@]}" 2>/dev/null
	for p in "${all[@]}"; do wait_until 5 proc_gone "$p"; done
	return 0
}

# ---------------------------------------------------------------- /proc views

# snapshot ROOT DIR: write DIR/tree, DIR/maps, DIR/fds, DIR/attrs for the tree
# under ROOT (lib/snapshot.py takes them in one process: a shell loop forking
# per fd took seconds per test on a loaded host).
snapshot() {
	local root=$1 dir=$2
	mkdir -p "$dir"
	if ! python3 "$ZDTM_DIR/lib/snapshot.py" "$root" "$dir" "$PIDNS" "$ONLY_ROOT" "$TRANSITION" \
		"$CMP_MAPS" "$CMP_FDS" "$CMP_ATTRS" 2>"$dir/snapshot.err"; then
		# a view that cannot be taken differs from any view: the compare fails
		echo "snapshot of $dir failed: $(tail -n 1 "$dir/snapshot.err")" >>"$dir/tree"
		: >>"$dir/raw.maps"
		: >>"$dir/raw.fds"
		: >>"$dir/attrs"
	fi
	# Stable sort by process key keeps each process's lines in address/fd order.
	sort -s -t$'\t' -k1,1 "$dir/raw.maps" | awk -f "$ZDTM_DIR/lib/maps.awk" >"$dir/maps"
	sort -s -t$'\t' -k1,1 "$dir/raw.fds" | awk -f "$ZDTM_DIR/lib/fds.awk" >"$dir/fds"
}

# compare PRE POST: prints the first differences, returns 1 when they differ.
compare_views() {
	local pre=$1 post=$2 v rc=0
	for v in tree maps fds attrs; do
		if ! diff -u "$pre/$v" "$post/$v" >"$post/$v.diff" 2>&1; then
			CMP_ERR="$v differ: $(grep -E '^[-+][^-+]' "$post/$v.diff" | head -4 | tr '\t\n' ' |')"
			rc=1
			break
		fi
	done
	return $rc
}

# ---------------------------------------------------------------- modes
#
# A mode function is called as mode_NAME PID with the test's variables set
# (W: work dir, IMG: image dir, EXPECT_DUMP_FAIL, DUMP_ERR). It moves the
# test and sets NEWPID to the root of the moved tree (host pid). It returns
# non-zero with ERR set when the move failed; SKIP set means the test is
# skipped in this mode. With EXPECT_DUMP_FAIL the dump must fail and the
# original must be left running: then NEWPID is the original pid.

run_dmigrate() {	# TIMEOUT LOG ARGS...
	local t=$1 out=$2
	shift 2
	echo "+ ${DM_ENV:+$DM_ENV }$DMIGRATE $*" >>"$out"
	# DM_ENV=VAR=VALUE: in its environment (a test's migrate-env)
	timeout -k 5 "$t" env ${DM_ENV:+"$DM_ENV"} "$DMIGRATE" "$@" </dev/null >>"$out" 2>&1
}

# The dump half shared by the modes: returns 0 when the caller must go on
# (dump succeeded as expected), 1 on failure (ERR set), 2 when an expected
# dump failure was seen and checked (NEWPID set, nothing more to do).
dump_step() {
	local pid=$1 rc
	shift
	run_dmigrate "$T_CHECKPOINT" "$W/checkpoint.log" checkpoint --pid "$pid" --images "$IMG" \
		--stats "$W/checkpoint.stats.json" ${DUMP_OPT:+"$DUMP_OPT"} "$@"
	rc=$?
	if ((EXPECT_DUMP_FAIL)); then
		if ((rc == 0)); then
			ERR="checkpoint succeeded, but it must fail for this test"
			return 1
		fi
		((rc == 124 || rc == 137)) && { ERR="checkpoint timed out (it should fail cleanly)"; return 1; }
		if [[ -n $DUMP_ERR ]] && ! grep -Eqi -- "$DUMP_ERR" "$W/checkpoint.log"; then
			ERR="checkpoint failed, but its error does not match /$DUMP_ERR/: $(tail -n 1 "$W/checkpoint.log")"
			return 1
		fi
		if ! proc_alive "$pid"; then
			ERR="failed checkpoint did not leave the test running"
			return 1
		fi
		NEWPID=$pid
		return 2
	fi
	if ((rc != 0)); then
		ERR="checkpoint failed (rc $rc): $(grep -v '^+ ' "$W/checkpoint.log" | tail -n 1)"
		return 1
	fi
	return 0
}

restore_step() {
	local rc
	rm -f "$W/restore.pid"
	run_dmigrate "$T_RESTORE" "$W/restore.log" restore --images "$IMG" --pidfile "$W/restore.pid" \
		--stats "$W/restore.stats.json" "$@"
	rc=$?
	# signal-after-move: at once, with builtins only
	if ((rc == 0)) && [[ -n $SIG_AFTER ]] && read -r NEWPID <"$W/restore.pid" 2>/dev/null; then
		kill -s "$SIG_AFTER" "$NEWPID" 2>/dev/null && SIG_SENT=1
	fi
	if ((rc != 0)); then
		ERR="restore failed (rc $rc): $(grep -v '^+ ' "$W/restore.log" | tail -n 1)"
		return 1
	fi
	NEWPID=$(tr -dc 0-9 <"$W/restore.pid" 2>/dev/null)
	if [[ -z $NEWPID ]]; then
		ERR="restore wrote no pid to --pidfile"
		return 1
	fi
	RESTORED=$NEWPID
	remember "$RESTORED"
	return 0
}

# supports_NAME (optional): returns non-zero, with UNSUPPORTED set, when this
# dmigrate cannot run the mode; every test then FAILs with that reason (a
# broken or incomplete binary must not turn the suite into skips).
engine_has() {	# COMMAND [OPTION]: does `dmigrate COMMAND --help` work (and name OPTION)?
	local help
	help=$("$DMIGRATE" "$1" --help 2>&1) || return 1
	[[ -z ${2:-} ]] || grep -q -- "$2" <<<"$help"
}

supports_cr() {
	engine_has checkpoint || { UNSUPPORTED="dmigrate has no checkpoint in this build"; return 1; }
	engine_has restore || { UNSUPPORTED="dmigrate has no restore in this build"; return 1; }
}

supports_lazy() {
	supports_cr || return 1
	engine_has restore --lazy || { UNSUPPORTED="dmigrate restore has no --lazy in this build"; return 1; }
}

supports_dump() {
	engine_has checkpoint --leave-running || { UNSUPPORTED="dmigrate has no checkpoint --leave-running"; return 1; }
}

mode_none() {
	NEWPID=$1
	return 0
}

mode_cr() {
	local rc
	dump_step "$1"
	rc=$?
	((rc == 2)) && return 0
	((rc == 0)) || return 1
	dumped_gone "$1" || return 1
	restore_step
}

# After a checkpoint without --leave-running the original must die, and be
# reaped (by us or the launcher), before a restore may ask for its pids.
dumped_gone() {
	if ! wait_until 10 proc_gone "$1"; then
		ERR="the dumped process is still alive after checkpoint"
		return 1
	fi
	if ! wait_until 10 pid_free "$1"; then
		ERR="the dumped process is still a zombie 10s after checkpoint"
		return 1
	fi
}

# restore --lazy resumes the tree, then keeps serving and pushing its pages:
# it may return only once all are in. So it runs in the background, the
# test goes on as soon as the pidfile names the restored root, and
# lazy_finish checks at the end that the command ended well by itself.
mode_lazy() {
	local rc
	local -a extra=()
	# The engine marks lazy pages at dump time when it supports --lazy there.
	"$DMIGRATE" checkpoint --help 2>&1 | grep -q -- '--lazy' && extra+=(--lazy)
	dump_step "$1" "${extra[@]}"
	rc=$?
	((rc == 2)) && return 0
	((rc == 0)) || return 1
	dumped_gone "$1" || return 1

	rm -f "$W/restore.pid" "$W/restore.rc"
	echo "+ $DMIGRATE restore --images $IMG --lazy" >>"$W/restore.log"
	(
		timeout -k 5 "$T_RESTORE" "$DMIGRATE" restore --images "$IMG" --pidfile "$W/restore.pid" \
			--stats "$W/restore.stats.json" --lazy </dev/null >>"$W/restore.log" 2>&1
		echo $? >"$W/restore.rc"
	) &
	LAZY_JOB=$!
	remember "$LAZY_JOB"
	disown "$LAZY_JOB"
	restored_or_done() { [[ -s $W/restore.pid || -s $W/restore.rc ]]; }
	if ! wait_until "$T_RESTORE" restored_or_done; then
		ERR="restore --lazy wrote no pidfile within ${T_RESTORE}s"
		return 1
	fi
	if [[ ! -s $W/restore.pid ]]; then
		ERR="restore --lazy failed (rc $(cat "$W/restore.rc")): $(grep -v '^+ ' "$W/restore.log" | tail -n 1)"
		return 1
	fi
	NEWPID=$(tr -dc 0-9 <"$W/restore.pid")
	RESTORED=$NEWPID
	remember "$RESTORED"
}

# After the test: the background restore --lazy must end by itself, well.
lazy_finish() {
	[[ -n $LAZY_JOB ]] || return 0
	local done_rc
	lazy_done() { [[ -s $W/restore.rc ]]; }
	if ! wait_until 30 lazy_done; then
		LAZY_ERR="restore --lazy still running 30s after the restored tree ended"
		same_proc "$LAZY_JOB" && kill_test "$LAZY_JOB"
		return 0
	fi
	done_rc=$(cat "$W/restore.rc")
	if [[ $done_rc != 0 ]]; then
		LAZY_ERR="restore --lazy ended with rc $done_rc: $(grep -v '^+ ' "$W/restore.log" | tail -n 1)"
	fi
}

mode_dump() {
	local rc
	dump_step "$1" --leave-running
	rc=$?
	((rc == 2)) && return 0
	((rc == 0)) || return 1
	proc_alive "$1" || { ERR="checkpoint --leave-running killed the test"; return 1; }
	NEWPID=$1
}

# Migration between two test hosts. Contract (to be met by `dmigrate
# migrate` when it lands): ZDTM_MIGRATE_TO=HOST:PORT names the destination
# daemon; the destination shares this file system (the result file is
# written there); the restored root's pid as seen here is written to the
# file given by --pidfile. The /proc views are compared as in the other modes,
# but for the namespaces (the tree ends in the other host's).
mode_migrate() {
	local pid=$1 how=$2 rc
	if [[ -z ${ZDTM_MIGRATE_TO:-} ]]; then
		SKIP="mode $how needs ZDTM_MIGRATE_TO=HOST:PORT (a test host's dmigrated)"
		return 1
	fi
	rm -f "$W/restore.pid"
	DM_ENV=$MIGRATE_ENV run_dmigrate "$T_CHECKPOINT" "$W/migrate.log" migrate "pid:$pid" \
		--to "$ZDTM_MIGRATE_TO" --mode "$how" --stats "$W/migrate.stats.json" --pidfile "$W/restore.pid" \
		${MIGRATE_OPT:+"$MIGRATE_OPT"}
	rc=$?
	if ((EXPECT_DUMP_FAIL)); then
		((rc != 0)) || { ERR="migration succeeded, but it must fail for this test"; return 1; }
		if [[ -n $DUMP_ERR ]] && ! grep -Eqi -- "$DUMP_ERR" "$W/migrate.log"; then
			ERR="migration failed, but its error does not match /$DUMP_ERR/: $(tail -n 1 "$W/migrate.log")"
			return 1
		fi
		proc_alive "$pid" || { ERR="failed migration did not leave the test running"; return 1; }
		NEWPID=$pid
		return 0
	fi
	((rc == 0)) || { ERR="migrate failed (rc $rc): $(tail -n 1 "$W/migrate.log")"; return 1; }
	NEWPID=$(tr -dc 0-9 <"$W/restore.pid" 2>/dev/null)
	[[ -n $NEWPID ]] || { ERR="migrate wrote no pid to --pidfile"; return 1; }
	RESTORED=$NEWPID
	remember "$RESTORED"
	# memory restored as copies is counted in the stats (and warned about)
	if ((COPIES)); then
		local copied
		copied=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dump"]["cow"]["copied_pages"])' \
			"$W/migrate.stats.json" 2>/dev/null)
		[[ $copied =~ ^[0-9]+$ ]] && ((copied > 0)) ||
			{ ERR="copies-in: the stats count no copied pages (dump.cow.copied_pages: ${copied:-absent})"; return 1; }
	fi
}

mode_post_copy() { mode_migrate "$1" post-copy; }
mode_pre_copy() { mode_migrate "$1" pre-copy; }
mode_stop_and_copy() { mode_migrate "$1" stop-and-copy; }
mode_hybrid() { mode_migrate "$1" hybrid; }

MODE_FN=mode_${MODE//-/_}
if ! declare -F "$MODE_FN" >/dev/null; then
	echo "run.sh: unknown mode '$MODE'" >&2
	exit 2
fi
if [[ $MODE != none && ! -x $DMIGRATE ]]; then
	echo "run.sh: no dmigrate binary at $DMIGRATE (use --dmigrate PATH)" >&2
	exit 2
fi
# every mode compares the /proc views before and after; a migration's tree
# ends in the other test host's namespaces, so there the namespace lines of
# the attribute view are left out (ZDTM_CROSS_HOST, lib/procview.py)
VIEWS=1
[[ $MODE == post-copy || $MODE == pre-copy || $MODE == stop-and-copy || $MODE == hybrid ]] &&
	export ZDTM_CROSS_HOST=1
UNSUPPORTED=
if declare -F "supports_${MODE//-/_}" >/dev/null; then
	"supports_${MODE//-/_}" || true
fi

# ---------------------------------------------------------------- one test

# Reads the "// zdtm:" line of a source file into FLAGS (comma separated).
read_flags() {
	FLAGS=$(sed -n '1,15s|^// zdtm:[[:space:]]*||p' "$1" | head -n 1 | sed -n 's/.*flags=\([^[:space:]]*\).*/\1/p')
}

has_flag() { [[ ",$FLAGS," == *",$1,"* ]]; }

flag_value() {	# key -> value of key=value in FLAGS
	local -a items
	local it
	IFS=, read -ra items <<<"$FLAGS"
	for it in "${items[@]}"; do [[ $it == "$1="* ]] && { echo "${it#*=}"; return 0; }; done
	return 1
}

# Prints the test log's tail under a failing line.
show_log() {
	((VERBOSE)) || return 0
	local f
	for f in "$W"/*.log; do
		[[ -s $f ]] || continue
		echo "#   --- ${f#"$W"/}"
		tail -n 15 "$f" | sed 's/^/#   /'
	done
}

run_one() {
	local name=$1 src=$2 bin=$3
	local launcher pid rc cmpfail= peerpid=
	W=$WORK/${name//\//_}
	IMG=$W/img
	rm -rf "$W"
	mkdir -p "$W/out" "$IMG"
	# Tests may drop to another uid: their result dir must stay writable.
	chmod 1777 "$W/out"
	local out=$W/out/result
	ERR=
	SKIP=
	NEWPID=
	RESTORED=
	LAZY_JOB=
	LAZY_ERR=
	COMPARE=1
	CMP_ERR=

	read_flags "$src"
	PIDNS=0
	TRANSITION=0
	EXPECT_DUMP_FAIL=0
	CMP_MAPS=1
	CMP_FDS=1
	CMP_ATTRS=1
	ONLY_ROOT=0
	has_flag pidns && PIDNS=1
	[[ $name == transition/* ]] && TRANSITION=1
	has_flag transition && TRANSITION=1
	[[ $(flag_value expect) == dump-fail ]] && EXPECT_DUMP_FAIL=1
	[[ +$(flag_value refused-in || true)+ == *+$MODE+* ]] && EXPECT_DUMP_FAIL=1
	DUMP_ERR=$(flag_value dump-err || true)
	DUMP_OPT=$(flag_value dump-opt || true)
	MIGRATE_OPT=$(flag_value migrate-opt || true)
	MIGRATE_ENV=$(flag_value migrate-env || true)
	COPIES=0
	[[ +$(flag_value copies-in || true)+ == *+$MODE+* ]] && COPIES=1
	SIG_AFTER=$(flag_value signal-after-move || true)
	SIG_SENT=
	[[ $(flag_value nocmp) == maps ]] && CMP_MAPS=0
	[[ $(flag_value nocmp) == fds ]] && CMP_FDS=0
	[[ $(flag_value nocmp) == attrs ]] && CMP_ATTRS=0
	((TRANSITION)) && ONLY_ROOT=1

	if [[ ! -x $bin ]]; then
		result FAIL "$name" "not built ($bin)"
		return
	fi
	if has_flag distinct-fs && [[ ${ZDTM_SHARED_FS:-0} == 1 ]] &&
		[[ $MODE == post-copy || $MODE == pre-copy || $MODE == stop-and-copy || $MODE == hybrid ]]; then
		result SKIP "$name" "needs hosts with distinct file systems (ZDTM_SHARED_FS=1)"
		return
	fi

	PEER=0
	has_flag peer && PEER=1
	if ((PEER)) && [[ $MODE == post-copy || $MODE == pre-copy || $MODE == stop-and-copy || $MODE == hybrid ]]; then
		result SKIP "$name" "its peer outside the tree stays on this host"
		return
	fi

	local -a largs=() wrap=() targs=()
	((PIDNS)) && largs+=(--pidns)
	((COPIES)) && targs=(--arg copies)
	# ZDTM_NETNS: start the test in that network namespace (the e2e runner's
	# source host, where its dmigrate runs: a tree in another namespace than
	# the dumper's is refused).  nsenter execs, so $! is still the launcher.
	[[ -n ${ZDTM_NETNS:-} ]] && wrap=(nsenter "--net=$ZDTM_NETNS")
	if ((PEER)); then
		"${wrap[@]}" setsid "$bin" --out "$W/out/peer.result" --arg peer </dev/null >>"$W/peer.log" 2>&1 &
		peerpid=$!
		remember "$peerpid"
		disown "$peerpid"
	fi
	"${wrap[@]}" "$LAUNCH" "${largs[@]}" -- "$bin" --out "$out" "${targs[@]}" </dev/null >>"$W/test.log" 2>&1 &
	launcher=$!
	remember "$launcher"
	# Not a job of ours any more: bash still reaps it, but does not report
	# "Killed" when the checkpoint or the cleanup ends it.
	disown "$launcher"

	launcher_or_ready() { [[ -e $out.ready || -e $out ]] || ! proc_alive "$launcher"; }
	if ! wait_until "$T_READY" launcher_or_ready; then
		ERR="no READY within ${T_READY}s"
	elif [[ ! -e $out.ready ]]; then
		ERR="exited before READY: $(cat "$out" 2>/dev/null || echo "no verdict (see test.log)")"
	fi
	pid=
	if [[ -z $ERR ]]; then
		pid=$(awk '$1 == "READY" { print $2 }' "$out.ready")
		[[ -n $pid ]] || ERR="bad ready file: $(cat "$out.ready")"
		remember "$pid"
	fi

	[[ -z $ERR ]] && ((VIEWS)) && snapshot "$pid" "$W/pre"
	# A verdict already published means a piece of the tree failed early.
	[[ -z $ERR && -e $out ]] && ERR="verdict before checkpoint: $(cat "$out")"

	if [[ -z $ERR ]]; then
		"$MODE_FN" "$pid" || true
		if [[ -z $ERR && -z $SKIP && -n $SIG_AFTER && -z $SIG_SENT ]]; then
			kill -s "$SIG_AFTER" "$NEWPID" 2>/dev/null || ERR="cannot send SIG$SIG_AFTER to $NEWPID"
		fi
	fi

	if [[ -z $ERR && -z $SKIP ]]; then
		if ! wait_until 10 proc_alive "$NEWPID"; then
			ERR="moved test (pid $NEWPID) is not running"
		else
			# signal-after-move: the snapshot and SIGTERM only once that
			# signal has been taken (the test is about which thread takes
			# it; its pending bit in the snapshot said only how fast this
			# machine delivered it; two signals in flight at once hung
			# signal_target, where the old, slower runner never sent them so)
			[[ -n $SIG_AFTER ]] && ! wait_until 10 sig_taken "$NEWPID" "$SIG_AFTER" &&
				log "$name: SIG$SIG_AFTER still pending after 10 s"
			if ((COMPARE)); then
				snapshot "$NEWPID" "$W/post"
				compare_views "$W/pre" "$W/post" || cmpfail=$CMP_ERR
			fi
		fi
	fi

	if [[ -z $ERR && -z $SKIP ]]; then
		kill -TERM "$NEWPID" 2>/dev/null
		result_or_gone() { [[ -e $out ]] || proc_gone "$NEWPID"; }
		wait_until "$T_RESULT" result_or_gone
		# It may still be writing: give a dying test a moment to publish.
		[[ -e $out ]] || wait_until 2 file_exists "$out"
		if [[ ! -e $out ]]; then
			if proc_alive "$NEWPID"; then
				ERR="no verdict within ${T_RESULT}s after SIGTERM"
			else
				ERR="died without a verdict (see $W/test.log)"
			fi
		fi
	fi

	# Let a passing test finish by itself; then remove whatever is left.
	[[ -n $NEWPID ]] && wait_until 10 proc_gone "$NEWPID"
	kill_test "$NEWPID" "$pid" "$RESTORED"
	same_proc "$launcher" && kill -KILL "$launcher" 2>/dev/null
	if [[ -n $peerpid ]]; then
		peer_gone() { ! same_proc "$peerpid"; }
		wait_until 10 peer_gone || kill_test "$peerpid"
	fi
	lazy_finish
	IDENT=()

	if [[ -n $SKIP ]]; then
		result SKIP "$name" "$SKIP"
	elif [[ -n $ERR ]]; then
		result FAIL "$name" "$ERR"
	elif ! grep -q '^PASS$' "$out"; then
		local v
		v=$(head -n 1 "$out")
		result FAIL "$name" "${v#FAIL: }"
	elif ((PEER)) && ! grep -q '^PASS$' "$W/out/peer.result" 2>/dev/null; then
		result FAIL "$name" "peer: $(head -n 1 "$W/out/peer.result" 2>/dev/null || echo "no verdict (see peer.log)")"
	elif [[ -n $cmpfail ]]; then
		result FAIL "$name" "$cmpfail"
	elif [[ -n $LAZY_ERR ]]; then
		result FAIL "$name" "$LAZY_ERR"
	else
		result PASS "$name"
	fi
	if ((!KEEP)); then
		rm -rf "$IMG"
		# Keep the logs of a failure only.
		[[ $LAST == PASS || $LAST == SKIP ]] && rm -rf "$W"
	fi
}

NPASS=0
NFAIL=0
NSKIP=0
LAST=

# seconds since CASE_T0 (a run_one's start), "1.23" (builtins only)
CASE_T0=${EPOCHREALTIME/./}
elapsed() {
	local us=$((${EPOCHREALTIME/./} - CASE_T0))
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}

# PASS/FAIL/SKIP lines end with the test's duration, "(1.23 s)"
result() {
	LAST=$1
	case $1 in
	PASS) echo "PASS $2 ($(elapsed) s)"; NPASS=$((NPASS + 1)) ;;
	SKIP) echo "SKIP $2: $3 ($(elapsed) s)"; NSKIP=$((NSKIP + 1)) ;;
	FAIL) echo "FAIL $2: $3 ($(elapsed) s)"; NFAIL=$((NFAIL + 1)); show_log ;;
	esac
}

# ---------------------------------------------------------------- main

if ((LIST)); then
	for src in "$ZDTM_DIR"/static/*.c "$ZDTM_DIR"/transition/*.c; do
		[[ -e $src ]] || continue
		read_flags "$src"
		n=${src#"$ZDTM_DIR"/}
		echo "${n%.c} ${FLAGS:--}"
	done
	exit 0
fi

if ((EUID != 0)); then
	echo "run.sh: must run as root (PID namespaces, credentials)" >&2
	exit 2
fi

WORK=${ZDTM_WORKDIR:-$(mktemp -d /tmp/zdtm.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"

trap 'echo "interrupted" >&2; exit 130' INT TERM

for src in "$ZDTM_DIR"/static/*.c "$ZDTM_DIR"/transition/*.c; do
	[[ -e $src ]] || continue
	name=${src#"$ZDTM_DIR"/}
	name=${name%.c}
	[[ -n $FILTER && ! $name =~ $FILTER ]] && continue
	CASE_T0=${EPOCHREALTIME/./}
	if [[ -n $UNSUPPORTED ]]; then
		result FAIL "$name" "mode $MODE: $UNSUPPORTED"
		continue
	fi
	run_one "$name" "$src" "$BUILD/tests/zdtm/$name"
done

if ((KEEP || NFAIL)); then
	echo "# work dir: $WORK"
else
	rm -rf "$WORK"
fi
echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
((NFAIL == 0))
