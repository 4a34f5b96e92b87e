#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end tests: real migrations between two test hosts on this machine
# (dmigrate testhost: network, mount, pid and uts namespaces, veth).
#
#   tests/e2e/run.sh [--build DIR | --bin-dir DIR] [--filter REGEX] [--zdtm-filter REGEX]
#                    [--modes "m1 m2"] [--no-zdtm] [--zdtm-all] [--no-rollback] [--no-safety]
#                    [--no-others] [--tbf] [--keep] [-v]
#
# --no-rollback, --no-safety, --no-zdtm, --no-others leave out the groups
# rollback/, safety/, zdtm/ and all the others: runners with their own test
# hosts (DM_E2E_PREFIX) can share the groups out (tests/run.sh runs four:
# the zdtm/ cases in two, by --modes).
#
# --bin-dir DIR: the installed dmigrate and dmigrated of DIR (e.g. /usr/sbin
# after installing the package) instead of a build's; --build is still read
# for the zdtm programs.
#
# Groups (test names are GROUP/...; --filter selects by name):
#   auth/...       a wrong key is refused on both sides; the tree runs on
#   waits/...      the source dmigrate stopped (SIGSTOP) before the switch-over:
#                  b gives up after its --peer-timeout, names the phase, and
#                  takes the next migration; the source then rolls back
#   waits/mem-done the destination never says MEM_DONE after the switch-over
#                  (test point): the source gives up after its silent bound,
#                  names the wait and keeps its copy stopped
#   concurrent/... four workloads migrate a -> b at once; the source of one is
#                  killed: it fails alone, the three others complete
#   refuse/...     a source claiming an xsave feature b's CPU lacks is refused
#                  at START, before the freeze: the tree runs on in a
#   strangers/...  silent clients without the key (from host b's address)
#                  hold only their own connections: a migration from a
#                  completes meanwhile, one over the per-address limit is
#                  closed at once
#   hostile/...    malformed frames, messages, files and images from a broken
#                  source are refused; dmigrated lives on and still migrates
#   work/W/MODE    a workload (python3 loop, busybox sh loop that forks, the
#                  sqlite3 writer holding its database's locks on the
#                  hosts' shared file system: refused, named, it runs on in a
#                  (post-copy and stop-and-copy only),
#                  demo's C program: working-set checksum, whole memory checked
#                  in the background) migrates from a to b in each mode, goes
#                  on from where it was (counter, host name changes, memory
#                  checks stay ok, one whole pass in b), its /proc/PID/cmdline
#                  in b reads as in a once migrate has returned (its stack's
#                  arguments: in post-copy every page is in then), nothing is
#                  left on a
#   zdtm/MODE/T    every zdtm program migrated by tests/zdtm/run.sh in MODE,
#                  checked by the program's own verdict: all of them in
#                  post-copy (the lazy restore, the page server); in pre-copy,
#                  stop-and-copy and hybrid, whose restores share post-copy's
#                  file, socket and process code, the memory, process, thread,
#                  signal and transition programs (--zdtm-all: every program
#                  in every mode)
#   rootfs/MODE    a tree chrooted into a directory of host a's own tmpfs (b
#                  cannot see it) migrates with --rootfs-dir: b's copy equals
#                  the source (inode numbers, types, modes, owners, times,
#                  holes, links, xattrs, devices, contents), the tree reads
#                  its open and mapped files and walks the rest right in b,
#                  its write stays; the working set went first, before the
#                  freeze with every entry, the restore waited for no data
#                  (stats); in
#                  b, before they arrived: a listed file's blocks right at
#                  once after its arrival, a read of a large file's last
#                  chunk brings that chunk only
#   rootfs/changed-before-freeze  the tree changes after its working set and
#                  entries went (before the freeze): b's copy is the tree at
#                  the freeze, the stale copy not used
#   rootfs/none    shared storage (an identical DIR in b): nothing moves
#   rootfs/no-space  b has no room for the files: refused before the freeze,
#                  the tree runs on in a
#   rootfs/no-space-reset  the same, the source's threads held in the order
#                  that lost b's reason (its send into the channel b closed
#                  fails first): b's reason is still the error
#   rootfs/wire-version  a source speaking another rootfs frame format is
#                  refused at START, both versions named; the tree runs on in a
#   rootfs/kill-dest  dmigrated killed with the view mounted, before the restore: the
#                  tree runs on in a, files unchanged; the next dmigrated
#                  removes the dead view and the copy
#   resilience/... the link down for 12 s after the switch-over: both sides
#                  wait for it and the migration completes
#   link/queue-Q   the source reads the queue in front of its link (pfifo_fast
#                  under tbf: priority; bare tbf: fifo; none: unknown) and says
#                  so in the stats; the migration completes with each
#   mem/chase      post-copy of a program walking a linked list spread one
#                  node per page over 64 MiB, in random order: every walk in
#                  b is right, and the source followed the pointers of the
#                  faulting nodes (stats pages_chased > 0: none without it)
#   mem/push-background  post-copy of cprog256, each side held once its
#                  push went to the background: the source's pusher and b's
#                  receiver of the pushed pages run 10 nicer than the test;
#                  the migration completes, every page right
#   mem/local-fault-event  hybrid (b's store makes a fault local: b's uffd
#                  thread installs the page itself) of lib/localfault.c, with
#                  b's first local fault held (test point) while another
#                  thread of the tree drops memory (MADV_DONTNEED: a REMOVE
#                  event queued, which only that uffd thread reads): the
#                  page is asked of the source, the migration completes,
#                  every page is right
#   mem/pull-skips-store  hybrid of cprog with b's local pusher held until
#                  its puller has run: the pages of b's store are installed
#                  from it, not asked of the source again; every page right
#   mem/eager-presend  post-copy (its writes tracked) of a program writing
#                  4 of the 16 pages of its data segment every millisecond
#                  (lib/datawrite.c): the 16 went before
#                  the freeze, the 4 again in it, the 12 were taken from the
#                  store there; every tick in b checks all 16
#   mem/store-refused  b refuses the pages of the stop-and-copy push (its
#                  store too small: the source announced less); b closes its
#                  channels after its ABORT, the source's pusher meets the close
#                  first and its watchdog shuts the other channels (test point
#                  src-push-failed): the source still names b's reason, the
#                  tree runs on in a, unchanged, b keeps nothing
#   mem/store-refused-pre-copy  the same in pre-copy's first round, which the
#                  source's main thread sends itself while b waits for the state
#   vmflags/...    post-copy reads the VMA flags before the freeze: a madvise()
#                  in that gap (test point src-vmflags-read) is applied on b
#   rollback/...   the peer killed or the link cut at each phase (test points,
#                  DMIGRATE_TEST_PAUSE): before the switch-over the workload
#                  runs on in a, unchanged, and b keeps nothing; after it, the
#                  source keeps its copy stopped
#   safety/...     a forking workload; kill -9 of either side, or a signal to
#                  dmigrate migrate, at each phase, or a COMMIT that cannot
#                  be sent: exactly one copy runs afterwards (or none, the
#                  source's stopped and how to resume it printed), its memory
#                  intact, b keeps nothing else
#
# Output: "PASS name (T s)", "FAIL name: reason (T s)", "SKIP name: reason
# (T s)" (T: the case's duration), then "N passed, N failed, N skipped".
# Exit status 1 if anything failed.
set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
BUILD=
FILTER=
ZFILTER=
MODES="post-copy stop-and-copy pre-copy hybrid"	# tests/run.sh shares these out to two zdtm runners
ZDTM=1
ZDTM_ALL=0
ROLLBACK=1
SAFETY=1
OTHERS=1
TBF=
KEEP=0
VERBOSE=0
PREFIX=${DM_E2E_PREFIX:-dme2e}	# distinct prefixes let two runs share a machine
BIN_DIR=

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--bin-dir) BIN_DIR=$2; shift ;;
	--filter) FILTER=$2; shift ;;
	--zdtm-filter) ZFILTER=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--no-zdtm) ZDTM=0 ;;
	--zdtm-all) ZDTM_ALL=1 ;;
	--no-rollback) ROLLBACK=0 ;;
	--no-safety) SAFETY=0 ;;
	--no-others) OTHERS=0 ;;
	--tbf) TBF=--tbf ;;
	--keep) KEEP=1 ;;
	-v | --verbose) VERBOSE=1 ;;
	-h | --help) sed -n '4,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
if [[ -z $BUILD && -z $BIN_DIR ]]; then
	for d in "$REPO/build" "$REPO/builddir" /work/build-mig; do
		[[ -x $d/dmigrate ]] && { BUILD=$d; break; }
	done
fi
if [[ -n $BIN_DIR ]]; then
	[[ -x $BIN_DIR/dmigrate && -x $BIN_DIR/dmigrated ]] ||
		{ echo "run.sh: no dmigrate and dmigrated in $BIN_DIR" >&2; exit 2; }
	DM=$(cd "$BIN_DIR" && pwd)/dmigrate
	DMD=("${DM%/*}/dmigrated")
	((ZDTM)) && [[ -z $BUILD ]] && { echo "run.sh: the zdtm programs are in a build dir (--build DIR, or --no-zdtm)" >&2; exit 2; }
else
	[[ -n $BUILD && -x $BUILD/dmigrate ]] || { echo "run.sh: no build dir with dmigrate (--build DIR)" >&2; exit 2; }
	DM=$BUILD/dmigrate
	DMD=("$DM" daemon)	# dmigrated: the same front end as a verb of dmigrate
fi
[[ -n $BUILD ]] && BUILD=$(cd "$BUILD" && pwd)
if ((EUID != 0)); then
	echo "SKIP e2e: needs root (namespaces, ptrace)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

WORK=$(mktemp -d /tmp/dmigrate-e2e.XXXXXX)
chmod 755 "$WORK" # zdtm tests that change uid write their verdict below it
KEY=$WORK/key
ADDR_A=198.18.0.1
ADDR_B=198.18.0.2
NPASS=0 NFAIL=0 NSKIP=0
DAEMON_PID=
DAEMON_ARGS=()	# more options for dmigrated (start_daemon)
WL_PID= WL_NS= WL_LOG=

log() { ((VERBOSE)) && echo "# $*" >&2; return 0; }
# A case's duration: from its selected() (or the previous result) to its
# result; DUR, when set, is given (the zdtm runner's own measure).
CASE_T0=${EPOCHREALTIME/./}
elapsed() {
	local us=$((${EPOCHREALTIME/./} - CASE_T0))
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}
result() {
	local d=${DUR:-$(elapsed)}
	case $1 in
	PASS) echo "PASS $2 ($d s)"; NPASS=$((NPASS + 1)) ;;
	SKIP) echo "SKIP $2: $3 ($d s)"; NSKIP=$((NSKIP + 1)) ;;
	FAIL) echo "FAIL $2: $3 ($d s)"; NFAIL=$((NFAIL + 1)) ;;
	esac
	CASE_T0=${EPOCHREALTIME/./}
}
# verdict NAME WHY: FAIL with WHY when it says something, else PASS
verdict() {
	if [[ -n $2 ]]; then
		result FAIL "$1" "$2"
	else
		result PASS "$1"
	fi
}
selected() {
	[[ -z $FILTER || $1 =~ $FILTER ]] || return 1
	CASE_T0=${EPOCHREALTIME/./}
}

wait_until() {	# SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.05
	done
}

in_host() { local h=$1; shift; "$DM" testhost run --prefix "$PREFIX" "$h" -- "$@"; }

# the `dmigrate migrate` among the descendants of job PID (an `in_host` runs it
# below testhost's helper)
migrate_below() {
	local -a todo=("$1")
	local p
	while ((${#todo[@]})); do
		p=${todo[0]}
		todo=("${todo[@]:1}")
		if [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == "$DM migrate "* ]]; then
			echo "$p"
			return 0
		fi
		todo+=($(cat /proc/"$p"/task/*/children 2>/dev/null))
	done
	return 1
}

cleanup() {
	stop_workload
	stop_daemon
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	if ((KEEP)); then echo "# work dirs: $WORK /tmp/dmz.$$.*" >&2; else rm -rf "$WORK" /tmp/dmz.$$.*; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- daemon

start_daemon() {	# [KEYFILE] [ENV=VAL...]: dmigrated in host b
	local key=${1:-$KEY}
	shift
	stop_daemon
	rm -f "$WORK/ready"
	DAEMON_PID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
		env "$@" "${DMD[@]}" --listen "$ADDR_B:7070" --key "$key" --ready-file "$WORK/ready" -v \
		"${DAEMON_ARGS[@]}") || return 1
	wait_until 10 test -e "$WORK/ready"
}

stop_daemon() {
	[[ -n $DAEMON_PID ]] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait_until 10 gone "$DAEMON_PID" || kill -KILL "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

gone() { [[ ! -d /proc/$1 ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
# no connection of host a to the daemon in b is established any more (the
# daemon's end reached them: CLOSE-WAIT, or reset)
src_saw_dest_end() { [[ -z $(in_host a ss -Htn state established dst "$ADDR_B:7070") ]]; }
pstate() { sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null; }

# pid (as seen here) of the process whose pid in host H's namespace is NSPID
host_pid() {	# H NSPID
	local init want d
	init=$("$DM" testhost pid --prefix "$PREFIX" "$1") || return 1
	for d in /proc/[0-9]*; do
		[[ $d/ns/pid -ef /proc/$init/ns/pid ]] 2>/dev/null || continue
		[[ $(awk '/^NSpid:/ { print $NF }' "$d/status" 2>/dev/null) == "$2" ]] || continue
		[[ $(pstate "${d#/proc/}") == Z ]] && continue
		echo "${d#/proc/}"
		return 0
	done
	return 1
}

# ---------------------------------------------------------------- workloads

# start_workload NAME: in host a; sets WL_PID (here), WL_NS (in a), WL_LOG
start_workload() {
	local name=$1 cmd
	stop_workload
	WL_LOG=$WORK/$name.$RANDOM.log
	: >"$WL_LOG"
	case $name in
	python3) cmd=(python3 "$E2E_DIR/lib/counter.py" "$WL_LOG") ;;
	forker) cmd=(python3 "$E2E_DIR/lib/forker.py" "$WL_LOG") ;;
	# the same with a SIGCONT handler (a "sigcont N HOST" line each)
	forker-cont) cmd=(env FORKER_CATCH_CONT=1 python3 "$E2E_DIR/lib/forker.py" "$WL_LOG") ;;
	sqlite) cmd=(python3 "$E2E_DIR/lib/sqlite_writer.py" "$WL_LOG" "$SQL_DIR/wl.sqlite") ;;
	busybox) cmd=(busybox sh "$E2E_DIR/lib/counter.sh") ;;
	cprog) cmd=("$WORK/dmigrate-workload" demo-workload --mib 64) ;;
	cprog256) cmd=("$WORK/dmigrate-workload" demo-workload --mib 256) ;;
	esac
	if [[ $name == python3 || $name == forker* || $name == sqlite ]]; then
		WL_PID=$("$DM" testhost spawn --prefix "$PREFIX" a -- "${cmd[@]}") || return 1
	else
		WL_PID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WL_LOG" a -- "${cmd[@]}") || return 1
	fi
	WL_NS=$(awk '/^NSpid:/ { print $NF }' "/proc/$WL_PID/status")
	wait_until 20 has_lines 3
}

stop_workload() {
	[[ -n $WL_NS ]] || return 0
	local p
	for h in a b; do
		p=$(host_pid "$h" "$WL_NS") && kill -KILL "$p" 2>/dev/null
	done
	[[ -n $WL_PID ]] && kill -KILL "$WL_PID" 2>/dev/null
	# forks of the workload (a stopped one would never notice its parent's end)
	for h in a b; do
		for p in $(tree_procs "$h"); do kill -KILL "$p" 2>/dev/null; done
	done
	WL_PID= WL_NS=
}

# pids (here) of the processes in host H that are not ours (comm dmigrate:
# the host's init, dmigrated, its guardians, dmigrate migrate; comm
# dmigrated: the installed daemon of --bin-dir): the workload and whatever it
# forked
tree_procs() {	# H
	local init d comm st
	init=$("$DM" testhost pid --prefix "$PREFIX" "$1") || return 0
	# builtins only: a fork per /proc entry costs seconds on a loaded host
	for d in /proc/[0-9]*; do
		[[ $d/ns/pid -ef /proc/$init/ns/pid ]] 2>/dev/null || continue
		read -r comm 2>/dev/null <"$d/comm" || continue
		[[ $comm == dmigrate || $comm == dmigrated ]] && continue
		read -r st 2>/dev/null <"$d/stat" || continue
		st=${st##*) }
		[[ ${st:0:1} == Z ]] && continue
		echo "${d#/proc/}"
	done
}

# the states of the workload's processes in host H, sorted and unique ("S T")
tree_states() {	# H
	local p
	for p in $(tree_procs "$1"); do pstate "$p"; done | sort -u | tr '\n' ' '
}
b_empty() { [[ -z $(tree_procs b) ]]; }

# pid (here) of the `dmigrate migrate` of the workload running in host a: in
# host a's pid namespace (host pids start at 10000, as the machine's may: a
# migration of another run, e.g. the zdtm programs', may name the same number)
migrate_pid() {
	local init
	init=$("$DM" testhost pid --prefix "$PREFIX" a) || return 1
	pgrep --ns "$init" --nslist pid -f "^$DM migrate pid:$WL_NS " | head -n 1 | grep .
}

has_lines() { (($(wc -l <"$WL_LOG") >= $1)); }

# last report: "COUNTER HOST OK" (all three workload formats)
last_report() {
	awk '
	/counter=/ { c = h = k = ""
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "counter") c = kv[2]; if (kv[1] == "host") h = kv[2]; if (kv[1] == "checksum") k = kv[2]
		}
		if (c != "") line = c " " h " " k; next }
	NF >= 3 && $1 ~ /^[0-9]+$/ { line = $1 " " $2 " " $3 }
	END { print line }' "$WL_LOG"
}

# the C workload's background check read its whole memory in HOST
memcheck_from() { grep -q " memcheck .* host=$1 " "$WL_LOG"; }

any_bad() { grep -Eq '(^[0-9]+ [^ ]+ BAD$|^(child|cold) [0-9.]+ [^ ]+ BAD$|checksum=BAD)' "$WL_LOG"; }

# wait for a report from HOST with a counter above N
reports_from() {	# HOST N
	local r
	r=$(last_report)
	set -- "$1" "$2" $r
	[[ ${4:-} == "$1" ]] && (($3 > $2))
}

# the migration in the background ($MPID) ended within SECONDS; else it is
# killed, and the dmigrate below it: 1.  Its status is the caller's `wait "$MPID"`.
migration_ended() {	# SECONDS
	local mp
	wait_until "$1" job_done "$MPID" && return 0
	mp=$(migrate_below "$MPID") && kill -KILL "$mp"
	kill -KILL "$MPID" 2>/dev/null
	return 1
}

migrate() {	# MODE [extra args...]: run in host a, stats in $WORK/stats.json; output in $WORK/migrate.out
	local mode=$1
	shift
	in_host a "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode "$mode" \
		--stats "$WORK/stats.json" --pidfile "$WORK/dest.pid" "$@" >"$WORK/migrate.out" 2>&1
}

# ---------------------------------------------------------------- tests

test_auth() {
	local t=auth/wrong-key
	selected "$t" || return 0
	"$DM" keygen "$WORK/other.key" >/dev/null
	if ! start_daemon "$WORK/other.key" || ! start_workload python3; then
		result FAIL "$t" "setup failed"
		return
	fi
	local before
	before=$(last_report)
	if migrate post-copy; then
		result FAIL "$t" "a migration with the wrong key succeeded"
	elif ! grep -Eqi 'key|auth' "$WORK/migrate.out"; then
		result FAIL "$t" "the error does not say why: $(tail -n 1 "$WORK/migrate.out")"
	elif ! grep -Eqi 'key|auth|handshake|TLS' "$WORK/dmigrated.log"; then
		result FAIL "$t" "dmigrated did not log the refused peer"
	elif ! wait_until 5 reports_from "$PREFIX-a" "${before%% *}"; then
		result FAIL "$t" "the workload stopped reporting in a"
	else
		result PASS "$t"
	fi
	start_daemon
}

test_workload() {	# WORKLOAD MODE
	local t=work/$1/$2 before c dest args
	selected "$t" || return 0
	if ! start_workload "$1"; then
		result FAIL "$t" "the workload did not start"
		return
	fi
	sleep 0.5
	before=$(last_report)
	args=$(tr '\0' ' ' <"/proc/$WL_PID/cmdline")
	if ! migrate "$2"; then
		result FAIL "$t" "migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		return
	fi
	c=${before%% *}
	if ! wait_until 20 reports_from "$PREFIX-b" "$c"; then
		result FAIL "$t" "no report from b after the migration (last: $(last_report))"
	elif [[ $1 == cprog ]] && ! wait_until 60 memcheck_from "$PREFIX-b"; then
		result FAIL "$t" "no check of the whole memory ended in b (last: $(grep memcheck "$WL_LOG" | tail -n 1))"
	elif any_bad; then
		result FAIL "$t" "a memory check failed: $(grep -m1 BAD "$WL_LOG")"
	elif ! gone "$WL_PID"; then
		result FAIL "$t" "the source process $WL_PID is still there"
	elif ! dest=$(host_pid b "$WL_NS"); then
		result FAIL "$t" "no process $WL_NS in b"
	elif [[ $(tr '\0' ' ' <"/proc/$dest/cmdline") != "$args" ]]; then
		# its arguments (in its stack, restored lazily in post-copy: every
		# page is in once migrate has returned) read as they did in a
		result FAIL "$t" "its arguments in b read '$(tr '\0' ' ' <"/proc/$dest/cmdline")', not '$args'"
	elif ! jq -e '.ok and .downtime_ms != null and .total_ms != null' "$WORK/stats.json" >/dev/null 2>&1 &&
		! python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["ok"] and j["downtime_ms"] is not None else 1)' "$WORK/stats.json"; then
		result FAIL "$t" "stats incomplete"
	else
		log "$t: $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("downtime %.0f ms total %.0f ms" % (j["downtime_ms"], j["total_ms"]))' "$WORK/stats.json"); in b: ${args:0:60}"
		result PASS "$t"
	fi
	stop_workload
}

# File locks: python3's sqlite3 writes a database in transactions, holding
# its POSIX locks most of the time (issue 11: migrated mid-run it died on b
# with "disk I/O error" when they were dropped).  The test hosts share one
# file system, as hosts on shared storage do: the source's frozen copy still
# holds the locks when b would take them, so the migration must fail before
# the switch-over, naming the lock, and the writer runs on in a with its
# database intact.  (A copy of the database on b's own disk would not do
# either: sqlite sees another inode at that path and turns read-only.)
test_sqlite() {	# MODE
	local t=work/sqlite/$1 before c
	selected "$t" || return 0
	SQL_DIR=$WORK
	rm -f "$SQL_DIR"/wl.sqlite*
	if ! start_workload sqlite; then
		result FAIL "$t" "the workload did not start"
	else
		sleep 0.5
		before=$(last_report)
		c=${before%% *}
		if migrate "$1"; then
			result FAIL "$t" "the migration succeeded although the frozen source holds the database's locks"
		elif ! grep -q 'lock .*cannot be taken back' "$WORK/migrate.out"; then
			result FAIL "$t" "the refusal does not name the lock: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		elif ! wait_until 20 reports_from "$PREFIX-a" "$((c + 5))"; then
			result FAIL "$t" "the writer does not go on in a (last: $(last_report))"
		elif grep -q BAD "$WL_LOG"; then
			result FAIL "$t" "the database went wrong: $(grep -m1 BAD "$WL_LOG")"
		else
			result PASS "$t"
		fi
	fi
	stop_workload
	rm -f "$SQL_DIR"/wl.sqlite*
}

test_zdtm() {	# MODE
	local mode=$1 line name verdict rest
	selected "zdtm/$mode/" || return 0
	local -a zf=()
	if [[ -n $ZFILTER ]]; then
		zf=(--filter "$ZFILTER")
	elif ((!ZDTM_ALL)) && [[ $mode == stop-and-copy || $mode == hybrid || $mode == pre-copy ]]; then
		# keeps the suite's time in bounds (each program costs a migration)
		zf=(--filter 'mem_|transition/|fork|thread|zombie|pgid|stopped|sig|vdso')
	fi
	# the test hosts share this machine's file system: tests flagged
	# distinct-fs (a FIFO is one object for both hosts) are skipped up front;
	# a short work dir: static/dir_fd fails with long ones (also in mode none)
	local zrc
	# the programs start in host a's network namespace, where its dmigrate
	# runs: a tree in another one than the dumper's is refused (and would
	# come back in the wrong one)
	E2E_DMIGRATE=$DM E2E_PREFIX=$PREFIX E2E_KEY=$KEY ZDTM_MIGRATE_TO=$ADDR_B:7070 ZDTM_SHARED_FS=1 \
		ZDTM_NETNS=/run/netns/$PREFIX-a \
		ZDTM_WORKDIR=/tmp/dmz.$$.${mode:0:2} \
		"$REPO/tests/zdtm/run.sh" --mode "$mode" --build "$BUILD" \
		--dmigrate "$E2E_DIR/lib/dmigrate-a.sh" "${zf[@]}" >"$WORK/zdtm-$mode.out" 2>&1
	zrc=$?
	# the runner itself failed (usage, setup): no test line would say so
	if ! grep -Eq '^[0-9]+ passed, [0-9]+ failed' "$WORK/zdtm-$mode.out" ||
		{ ((zrc != 0)) && ! grep -q '^FAIL ' "$WORK/zdtm-$mode.out"; }; then
		result FAIL "zdtm/$mode" "tests/zdtm/run.sh ended with status $zrc: $(tail -n 1 "$WORK/zdtm-$mode.out")"
	fi
	local DUR
	while read -r verdict name rest; do
		# the runner's lines end with the program's duration
		DUR=
		[[ $rest =~ ^(.*)\ ?\(([0-9.]+)\ s\)$ ]] && { DUR=${BASH_REMATCH[2]}; rest=${BASH_REMATCH[1]}; }
		rest=${rest% }
		case $verdict in
		PASS) result PASS "zdtm/$mode/$name" ;;
		FAIL) result FAIL "zdtm/$mode/${name%:}" "$rest" ;;
		SKIP) result SKIP "zdtm/$mode/${name%:}" "$rest" ;;
		esac
	done < <(grep -E '^(PASS|FAIL|SKIP) ' "$WORK/zdtm-$mode.out")
}

# start_paused_migration POINT MS: post-copy migration of the workload in the
# background, pausing MS ms at test point POINT; sets MPID; fails (after
# reaping it) when the point is not reached
start_paused_migration() {
	local point=$1 ms=$2 marks=$WORK/marks
	rm -rf "$marks"
	mkdir -p "$marks"
	in_host a env DMIGRATE_TEST_PAUSE="$point" DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS="$ms" \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode post-copy \
		--stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1 &
	MPID=$!
	wait_until 30 test -e "$marks/$point" && return 0
	wait "$MPID"
	return 1
}

# start_program T NAME SECONDS READY LOG [ARGS...]: builds lib/NAME.c, runs
# it in host a (WL_PID, WL_NS) as NAME LOG ARGS..., and waits SECONDS for a
# line of LOG matching READY; else case T fails (the program stopped) and
# this returns 1
start_program() {
	local t=$1 name=$2 secs=$3 ready=$4 log=$5
	shift 5
	if ! cc -O2 -o "$WORK/$name" "$E2E_DIR/lib/$name.c"; then
		result FAIL "$t" "cannot build the test program"
		return 1
	fi
	WL_PID=$("$DM" testhost spawn --prefix "$PREFIX" a -- "$WORK/$name" "$log" "$@") ||
		{ result FAIL "$t" "spawn failed"; return 1; }
	WL_NS=$(awk '/^NSpid:/ { print $NF }' "/proc/$WL_PID/status")
	if ! wait_until "$secs" grep -q "$ready" "$log"; then
		result FAIL "$t" "the program did not start: $(tail -n 2 "$log")"
		stop_workload
		return 1
	fi
}

# vmflags/madvise-in-gap: the workload marks a VMA MADV_DONTFORK after the
# source's early read of the VMA flags and before its freeze; on b the VMA
# must have it (the source finds the change after the switch-over and b
# applies it inside the running process)
test_vmflags() {
	local t=vmflags/madvise-in-gap log=$WORK/madv.log rc pid fixes
	selected "$t" || return 0
	: >"$log"
	start_program "$t" madv_flip 10 '^ready 0' "$log" || return
	if ! start_paused_migration src-vmflags-read 1500; then
		result FAIL "$t" "never reached the test point: $(tail -n 1 "$WORK/migrate.out")"
		stop_workload
		return
	fi
	kill -USR1 "$WL_PID"
	wait_until 5 grep -q '^flipped 1' "$log"
	touch "$WORK/marks/src-vmflags-read.go"
	wait "$MPID"
	rc=$?
	fixes=$(jq -r '.vma_fixes // "none"' "$WORK/stats.json" 2>/dev/null)
	if ((rc != 0)); then
		result FAIL "$t" "migration failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! grep -q '^flipped 1' "$log"; then
		result FAIL "$t" "the program did not flip the flag in time: $(cat "$log")"
	elif [[ $fixes != 1 ]]; then
		result FAIL "$t" "the source found $fixes changed VMAs, not 1"
	elif ! pid=$(host_pid b "$WL_NS"); then
		result FAIL "$t" "no process on b"
	else
		kill -TERM "$pid"
		if wait_until 10 grep -q '^PASS' "$log"; then
			result PASS "$t"
		else
			result FAIL "$t" "on b: $(tail -n 1 "$log")"
		fi
	fi
	stop_workload
}

# mem/eager-presend: post-copy, which tracks the tree's writes, sends the
# written pages of private file mappings (eager: a userfaultfd cannot serve
# them) before the freeze; those written again since must come in the
# image, not from the store: lib/datawrite.c writes a counter into 4 pages
# of its data segment every millisecond and checks them and 12 pages
# written once, in a and in b.  The migration waits at the test point after
# the pre-send until the program has logged another tick (100 more writes):
# so the 4 pages are written after they went, however fast the machine
test_eager_presend() {
	local t=mem/eager-presend log=$WORK/datawrite.log n
	selected "$t" || return 0
	: >"$log"
	start_program "$t" datawrite 20 "^tick .* uts=$PREFIX-a ok" "$log" || return
	if ! start_paused_migration src-presend 30000; then
		result FAIL "$t" "never reached the test point: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		stop_workload
		return
	fi
	n=$(grep -c '^tick' "$log")
	more_ticks() { (($(grep -c '^tick' "$log") > n)); }
	if ! wait_until 20 more_ticks; then
		result FAIL "$t" "the program logged nothing while the migration waited: $(tail -n 1 "$log")"
		touch "$WORK/marks/src-presend.go"
		wait "$MPID"
		stop_workload
		return
	fi
	touch "$WORK/marks/src-presend.go"
	if ! wait "$MPID"; then
		result FAIL "$t" "migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 20 grep -q "^tick .* uts=$PREFIX-b ok" "$log"; then
		result FAIL "$t" "no right tick in b: $(tail -n 1 "$log")"
	elif grep -q BAD "$log"; then
		result FAIL "$t" "$(grep -m1 BAD "$log")"
	elif ! jq -e '.eager_presend.pages >= 16 and .eager_presend.written_after >= 4 and
		.dump.pages_at_destination >= 12' "$WORK/stats.json" >/dev/null 2>&1; then
		result FAIL "$t" "the data pages did not go before the freeze, or none was written after: $(jq -c '{eager_presend, at_dest: .dump.pages_at_destination}' "$WORK/stats.json" 2>/dev/null)"
	else
		log "$t: $(jq -c '{eager_presend, at_dest: .dump.pages_at_destination, pages: .dump.pages}' "$WORK/stats.json")"
		result PASS "$t"
	fi
	stop_workload
}

# mem/store-refused: b refuses the pages of a memory phase before the
# resume (MODE stop-and-copy: its push; pre-copy: the first round).  The
# source announces a tree and a store of 1 byte
# (DMIGRATE_TEST_FORGE_MEM_BYTES): b makes a store of 64 MiB, its floor,
# for a tree of 256 MiB.  b says why on the control channel (ABORT), then
# closes its channels: the source's pusher (or its main thread, sending a
# round) meets that close (a broken pipe or a reset), not the reason.  In
# stop-and-copy the source waits at src-push-failed until its watchdog has
# seen the pusher fail and shut the channels (the order that lost b's
# reason).  The source's error must be b's reason; the tree runs on in a,
# unchanged; b keeps nothing of it and logs the same cause
test_store_refused() {	# MODE
	local t=mem/store-refused marks=$WORK/marks-store why= rc c logged phase=memory
	local -a pause=(DMIGRATE_TEST_PAUSE=src-push-failed DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=1500)
	# pre-copy: the first round's own send meets b's close (no worker), in
	# the phase that prepares
	[[ $1 == pre-copy ]] && { t=mem/store-refused-pre-copy phase=prepare; pause=(); }
	selected "$t" || return 0
	logged=$(grep -c 'failed: receiving memory: the page store is full' "$WORK/dmigrated.log")
	if ! start_workload cprog256; then
		result FAIL "$t" "the workload did not start"
		return
	fi
	rm -rf "$marks"
	mkdir -p "$marks"
	in_host a env DMIGRATE_TEST_FORGE_MEM_BYTES=1 "${pause[@]}" "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" \
		--key "$KEY" --mode "$1" --stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1
	rc=$?
	c=$(last_report)
	c=${c%% *}
	if ((rc == 0)); then
		why="the migration succeeded"
	elif ((${#pause[@]})) && [[ ! -e $marks/src-push-failed ]]; then
		why="the push did not fail: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! grep -q 'the destination failed: receiving memory: the page store is full' "$WORK/migrate.out"; then
		why="b's reason lost: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! grep -q 'runs on here, unchanged' "$WORK/migrate.out"; then
		why="no rollback message: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif [[ $(jq -r '.failed_phase' "$WORK/stats.json" 2>/dev/null) != "$phase" ]]; then
		why="the stats do not name the $phase phase: $(jq -c '{ok, failed_phase}' "$WORK/stats.json" 2>&1)"
	elif gone "$WL_PID" || ! wait_until 20 reports_from "$PREFIX-a" "$c"; then
		why="the tree does not run on in a (state $(pstate "$WL_PID"))"
	elif any_bad; then
		why="a memory check failed after the rollback: $(grep -m1 BAD "$WL_LOG")"
	elif ! wait_until 10 b_empty; then
		why="b still runs processes of the tree: $(tree_procs b)"
	elif ! wait_until 10 eval 'test -z "$(in_host b ls -A /var/lib/dmigrate/incoming 2>/dev/null)"'; then
		why="b kept images: $(in_host b ls -A /var/lib/dmigrate/incoming | tr '\n' ' ')"
	elif ! wait_until 10 eval 'test "$(grep -c "failed: receiving memory: the page store is full" "$WORK/dmigrated.log")" -gt "$logged"'; then
		why="dmigrated did not log the cause: $(grep 'failed:' "$WORK/dmigrated.log" | tail -n 1)"
	fi
	verdict "$t" "$why"
	stop_workload
}

# mem/chase: pointer chasing on the way through (the destination asks its
# uffds for the exact fault address, the source follows the words around
# it); the walks in b check the list, the stats say pages were chased
test_chase() {
	local t=mem/chase log=$WORK/listwalk.log chased
	selected "$t" || return 0
	: >"$log"
	start_program "$t" listwalk 20 "^walk .* uts=$PREFIX-a ok" "$log" 64 || return
	if ! migrate post-copy; then
		result FAIL "$t" "migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 20 grep -q "^walk .* uts=$PREFIX-b ok" "$log"; then
		result FAIL "$t" "no right walk in b: $(tail -n 1 "$log")"
	elif grep -q BAD "$log"; then
		result FAIL "$t" "$(grep -m1 BAD "$log")"
	elif chased=$(jq -r '.pages_chased // 0' "$WORK/stats.json" 2>/dev/null) && ! ((chased > 0)); then
		result FAIL "$t" "no page was chased (pages_chased ${chased:-none}, on demand $(jq -r .pages_on_demand "$WORK/stats.json" 2>/dev/null))"
	else
		log "$t: $(jq -c '{pages_chased, pages_on_demand, pages_prefetched}' "$WORK/stats.json")"
		result PASS "$t"
	fi
	stop_workload
}

# mem/local-fault-event: b's uffd thread installs a local fault's page (one of
# hybrid's store) itself; an address-space event queued on the uffd (a thread
# of the tree freeing memory, as a thread's exit frees its stack: REMOVE)
# makes every install fail with EAGAIN until that same thread reads it, so it
# must not wait there (598a386: it did, and waited for itself for good).
# lib/localfault.c migrates in hybrid; b holds its push (dst-local-push,
# dst-pull) and
# its first local fault, read but not installed (dst-lazy-local-fault); the
# tree's other thread then drops its scratch pages with MADV_DONTNEED and
# waits in the kernel for the event to be read; then both go on.  The page
# must be asked of the source, the migration complete within a bound (a
# deadlock fails the case there, not the suite), every data page hold its
# pattern and every dropped page zeros.
event_queued() { grep -Eqs '^userfaultfd_' /proc/"$1"/task/*/wchan; }
job_done() { ! kill -0 "$1" 2>/dev/null; }

test_local_fault_event() {
	local t=mem/local-fault-event log=$WORK/localfault.log marks=$WORK/lfmarks trig=$WORK/localfault.trigger
	local pid why= held
	selected "$t" || return 0
	rm -rf "$marks" "$trig".*
	mkdir -p "$marks"
	: >"$log"
	if ! start_daemon "$KEY" DMIGRATE_TEST_PAUSE=dst-local-push,dst-pull,dst-lazy-local-fault DMIGRATE_TEST_MARK="$marks" \
		DMIGRATE_TEST_PAUSE_MS=30000; then
		result FAIL "$t" "dmigrated did not start"
		start_daemon
		return
	fi
	if ! start_program "$t" localfault 20 "^ready uts=$PREFIX-a " "$log" "$trig"; then
		start_daemon
		return
	fi
	migrate hybrid &
	MPID=$!
	if ! wait_until 60 grep -q "^armed uts=$PREFIX-b " "$log"; then
		why="the tree did not run in b (marks: $(ls "$marks" | tr '\n' ' ')): $(tail -n 1 "$log")"
	else
		# b's next local fault is held; the tree reads its data pages
		touch "$marks/dst-lazy-local-fault.arm" "$trig.read"
		if ! wait_until 20 test -e "$marks/dst-lazy-local-fault"; then
			why="b held no local fault (marks: $(ls "$marks" | tr '\n' ' '))"
		elif ! pid=$(host_pid b "$WL_NS"); then
			why="no process $WL_NS in b"
		else
			touch "$trig.free"
			wait_until 10 event_queued "$pid" ||
				why="the tree's MADV_DONTNEED queued no event in 10 s (wchan: $(cat /proc/"$pid"/task/*/wchan 2>/dev/null | tr '\n' ' '))"
		fi
	fi
	touch "$marks/dst-lazy-local-fault.go" "$marks/dst-local-push.go" "$marks/dst-pull.go"
	if ! migration_ended 30; then
		why=${why:-"the migration did not complete within 30 s of the release (b's uffd thread waits for the event it should read?): $(tail -n 2 "$log" | tr '\n' ' ')"}
	fi
	wait "$MPID"
	local rc=$?
	held=$(grep -o 'test point dst-lazy-local-fault: process [0-9]*, local page 0x[0-9a-f]*' "$WORK/dmigrated.log" | tail -n 1)
	held=${held##* }
	if [[ -n $why ]]; then
		:
	elif ((rc != 0)); then
		why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 20 grep -q "^check .* uts=$PREFIX-b " "$log"; then
		why="no check in b: $(tail -n 1 "$log")"
	elif grep -q BAD "$log"; then
		why=$(grep -m1 BAD "$log")
	elif [[ -z $held ]] || ! grep -q "the local page $held met an address-space event queued: asked of the source" "$WORK/dmigrated.log"; then
		why="the held fault (page ${held:-?}) was not asked of the source"
	elif ! jq -e '.ok and .pages_local > 0 and .destination.faults_remote > 0 and .destination.removes > 0 and
		.destination.local_fallbacks > 0' "$WORK/stats.json" >/dev/null 2>&1; then
		why="stats: $(jq -c '{ok, pages_local, faults_remote: .destination.faults_remote, removes: .destination.removes, local_fallbacks: .destination.local_fallbacks}' "$WORK/stats.json" 2>/dev/null)"
	else
		log "$t: page $held asked of the source; $(jq -c '{pages_local, pages_on_demand, faults_remote: .destination.faults_remote, removes: .destination.removes, total_ms}' "$WORK/stats.json")"
	fi
	verdict "$t" "$why"
	stop_workload
	rm -f "$trig".*
	start_daemon
}

# mem/pull-skips-store: once the source's push has ended, b's puller asks
# for every page still missing; a page b's store holds is the local
# pusher's to install, and asked of the source too it crossed the link twice
# (the whole store, when the local pusher was slower than the source's push).
# cprog's 64 MiB migrate in hybrid (its first pass puts them in b's store);
# b holds its local pusher (dst-local-push) until its puller (dst-pull) has
# had a second to ask, then lets it go: the pages of the store must be
# installed from it (pages_local), and the source asked for nothing but the
# tree's own faults (its fault_requests against b's faults_remote: the
# puller asking for the store's pages made ~200 more in that second, one
# page each crossing again, the rest skipped as sent); every page of the
# tree right in b.
test_pull_skips_store() {
	local t=mem/pull-skips-store marks=$WORK/psmarks why= before c
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	if ! start_daemon "$KEY" DMIGRATE_TEST_PAUSE=dst-local-push,dst-pull DMIGRATE_TEST_MARK="$marks" \
		DMIGRATE_TEST_PAUSE_MS=30000; then
		result FAIL "$t" "dmigrated did not start"
		start_daemon
		return
	fi
	if ! start_workload cprog; then
		result FAIL "$t" "the workload did not start"
		start_daemon
		return
	fi
	sleep 0.5
	before=$(last_report)
	migrate hybrid &
	MPID=$!
	if ! wait_until 60 test -e "$marks/dst-pull"; then
		why="b's puller never started (marks: $(ls "$marks" | tr '\n' ' '))"
	elif ! test -e "$marks/dst-local-push"; then
		why="b's local pusher is not held (marks: $(ls "$marks" | tr '\n' ' '))"
	else
		touch "$marks/dst-pull.go"
		sleep 1
	fi
	touch "$marks/dst-local-push.go" "$marks/dst-pull.go"
	if ! migration_ended 60; then
		why=${why:-"the migration did not end within 60 s"}
	fi
	wait "$MPID"
	local rc=$?
	c=${before%% *}
	if [[ -n $why ]]; then
		:
	elif ((rc != 0)); then
		why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 20 reports_from "$PREFIX-b" "$c"; then
		why="no report from b after the migration (last: $(last_report))"
	elif ! wait_until 60 memcheck_from "$PREFIX-b"; then
		why="no check of the whole memory ended in b (last: $(grep memcheck "$WL_LOG" | tail -n 1))"
	elif any_bad; then
		why="a memory check failed: $(grep -m1 BAD "$WL_LOG")"
	elif ! jq -e '.ok and .destination.pages_local > 8192 and
		.fault_requests - .destination.faults_remote <= 8' "$WORK/stats.json" >/dev/null 2>&1; then
		why="the store's pages were asked again: $(jq -c '{pages_total, fault_requests, faults_remote: .destination.faults_remote, local: .destination.pages_local, on_demand: .destination.pages_on_demand, pushed: .destination.pages_pushed}' "$WORK/stats.json" 2>/dev/null)"
	else
		log "$t: $(jq -c '{pages_total, fault_requests, faults_remote: .destination.faults_remote, local: .destination.pages_local, pushed: .destination.pages_pushed}' "$WORK/stats.json")"
	fi
	verdict "$t" "$why"
	stop_workload
	start_daemon
}

# mem/push-background: once the tree runs in b, the threads that move the rest
# of a post-copy's pages go PUSH_NICE_STEP (10) nicer than they were (the
# source's pusher, b's receiver of the pushed pages): each held at its test
# point right after, its nice is read from /proc and it is let go at once
# (either may come first: each one's frames may wait for the other)
thread_nice_of() {	# PID COMM: the nice of PID's thread named COMM
	local t
	for t in /proc/"$1"/task/*; do
		[[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] || continue
		sed 's/.*) //' "$t/stat" | awk '{ print $17 }'
		return 0
	done
	return 1
}

test_push_background() {
	local t=mem/push-background marks=$WORK/pbmarks why= mp src= dst= want i
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	# both sides start at the test's own nice
	want=$(($(nice) + 10))
	((want >= 10)) || want=10
	((want <= 19)) || want=19
	if ! start_daemon "$KEY" DMIGRATE_TEST_PAUSE=dst-bulk-background DMIGRATE_TEST_MARK="$marks" \
		DMIGRATE_TEST_PAUSE_MS=30000 || ! start_workload cprog256; then
		result FAIL "$t" "setup failed"
		start_daemon
		return
	fi
	sleep 0.5
	in_host a env DMIGRATE_TEST_PAUSE=src-push-background DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=30000 \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode post-copy --stats "$WORK/stats.json" \
		>"$WORK/migrate.out" 2>&1 &
	MPID=$!
	for ((i = 0; i < 600 && (${#src} == 0 || ${#dst} == 0); i++)); do
		if [[ -z $src && -e $marks/src-push-background ]]; then
			mp=$(migrate_below "$MPID") && src=$(thread_nice_of "$mp" dm-push) || src=none
			touch "$marks/src-push-background.go"
		fi
		if [[ -z $dst && -e $marks/dst-bulk-background ]]; then
			dst=$(thread_nice_of "$DAEMON_PID" dm-bulk) || dst=none
			touch "$marks/dst-bulk-background.go"
		fi
		sleep 0.1
	done
	touch "$marks/src-push-background.go" "$marks/dst-bulk-background.go"
	if [[ -z $src || -z $dst ]]; then
		why="the push never went to the background (marks: $(ls "$marks" | tr '\n' ' '))"
	elif [[ $src != "$want" ]]; then
		why="the source's pusher runs at nice $src, not $want"
	elif [[ $dst != "$want" ]]; then
		why="b's receiver of the pushed pages runs at nice $dst, not $want"
	fi
	if ! migration_ended 120; then
		why=${why:-"the migration did not end within 120 s"}
	fi
	wait "$MPID"
	local rc=$?
	if [[ -z $why ]] && ((rc != 0)); then
		why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif [[ -z $why ]] && ! wait_until 60 memcheck_from "$PREFIX-b"; then
		why="no check of the whole memory ended in b (last: $(grep memcheck "$WL_LOG" | tail -n 1))"
	elif [[ -z $why ]] && any_bad; then
		why="a memory check failed: $(grep -m1 BAD "$WL_LOG")"
	fi
	[[ -n $why ]] || log "$t: the source's pusher and b's receiver at nice $want"
	verdict "$t" "$why"
	stop_workload
	start_daemon
}

# resilience/link-cut-after-switch: after the switch-over the link goes down
# for 12 s (longer than the ~7-10 s in which a dead link is declared before
# it); both sides wait for it, say so, and the migration completes
test_link_cut_after_switch() {
	local t=resilience/link-cut-after-switch rc c
	selected "$t" || return 0
	if ! start_workload python3; then
		result FAIL "$t" "setup failed"
		return
	fi
	if ! start_paused_migration src-resumed 1000; then
		result FAIL "$t" "never reached src-resumed: $(tail -n 1 "$WORK/migrate.out")"
		stop_workload
		return
	fi
	cut_link
	sleep 12
	fix_link
	wait "$MPID"
	rc=$?
	c=$(last_report)
	c=${c%% *}
	if ((rc != 0)); then
		result FAIL "$t" "migration failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! grep -q 'is the link down' "$WORK/migrate.out"; then
		result FAIL "$t" "the source did not say the link stalled"
	elif ! wait_until 10 reports_from "$PREFIX-b" "$c"; then
		result FAIL "$t" "the workload does not go on in b"
	elif any_bad; then
		result FAIL "$t" "memory check failed"
	else
		result PASS "$t"
	fi
	stop_workload
}

cut_link() { in_host a ip link set "$PREFIX-a0" down; }
fix_link() { in_host a ip link set "$PREFIX-a0" up; in_host b ip link set "$PREFIX-b0" up; }

# rollback/POINT/KIND: pause at POINT, then kill the peer or cut the link
test_rollback() {	# POINT KIND MODE
	local point=$1 kind=$2 mode=$3 t="rollback/$1/$2" c marks=$WORK/marks rc mpid before
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	local -a denv=() senv=() lenv=()
	# the cut link is declared dead on both sides after ~4 s, not ~7-10 s
	# (the wait this case expects to end; the rollback is what it checks)
	[[ $kind == link ]] && lenv=(DMIGRATE_TEST_LINK_DEAD_S=4)
	[[ $point == dst-* ]] && denv=(DMIGRATE_TEST_PAUSE="$point" DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=4000)
	if ! start_daemon "$KEY" "${denv[@]}" "${lenv[@]}" || ! start_workload python3; then
		result FAIL "$t" "setup failed"
		return
	fi
	[[ $point == src-* ]] && senv=(DMIGRATE_TEST_PAUSE="$point" DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=4000)
	senv+=("${lenv[@]}")
	in_host a env "${senv[@]}" "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode "$mode" \
		--stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 30 test -e "$marks/$point"; then
		wait "$mpid"
		result FAIL "$t" "never reached $point: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		fix_link
		return
	fi
	if [[ $kind == peer ]]; then
		kill -KILL "$DAEMON_PID"
		DAEMON_PID=
	else
		cut_link
	fi
	# done: the side that paused goes on at once (the pause is an upper bound)
	touch "$marks/$point.go"
	wait "$mpid"
	rc=$?
	fix_link
	c=$(last_report)
	c=${c%% *}
	if [[ $point == src-resumed ]]; then
		# after the switch-over: our copy is kept, stopped
		if ((rc == 0)); then
			result FAIL "$t" "the migration succeeded although the peer was killed"
		elif [[ $(pstate "$WL_PID") != T ]]; then
			result FAIL "$t" "the source tree is not left stopped (state $(pstate "$WL_PID"))"
		elif ! grep -q 'left stopped' "$WORK/migrate.out"; then
			result FAIL "$t" "the error does not say the tree is stopped: $(tail -n 1 "$WORK/migrate.out")"
		elif wait_until 3 host_pid b "$WL_NS" >/dev/null; then
			result FAIL "$t" "b still runs a copy"
		else
			kill -CONT "$WL_PID"
			if wait_until 5 reports_from "$PREFIX-a" "$c"; then
				result PASS "$t"
			else
				result FAIL "$t" "the source did not go on after SIGCONT"
			fi
		fi
	elif ((rc == 0)); then
		result FAIL "$t" "the migration succeeded"
	elif gone "$WL_PID"; then
		result FAIL "$t" "the workload died in a: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 5 reports_from "$PREFIX-a" "$c"; then
		result FAIL "$t" "the workload does not go on in a (state $(pstate "$WL_PID"))"
	elif any_bad; then
		result FAIL "$t" "memory check failed after the rollback"
	elif ! grep -q 'runs on here' "$WORK/migrate.out"; then
		result FAIL "$t" "no rollback message: $(tail -n 1 "$WORK/migrate.out")"
	elif ! wait_until 8 eval '! host_pid b "$WL_NS" >/dev/null'; then
		result FAIL "$t" "b still has a process $WL_NS"
	else
		# a restarted daemon removes what a killed one left
		start_daemon
		if [[ -n $(in_host b ls -A /var/lib/dmigrate/incoming 2>/dev/null) ]]; then
			result FAIL "$t" "images left in b's /var/lib/dmigrate/incoming"
		else
			result PASS "$t"
		fi
	fi
	stop_workload
	[[ -n $DAEMON_PID ]] || start_daemon
}

# strangers/silent-clients: 8 silent connections from b's own address (the
# per-address limit), kept open for the whole test, while a migrates to b
test_strangers() {
	local t=strangers/silent-clients spid before
	selected "$t" || return 0
	if ! start_workload python3; then
		result FAIL "$t" "setup failed"
		return
	fi
	: >"$WORK/strangers.out"
	in_host b python3 "$E2E_DIR/lib/strangers.py" "$ADDR_B" 7070 8 60 >"$WORK/strangers.out" 2>&1 &
	spid=$!
	if ! wait_until 40 grep -q extra "$WORK/strangers.out"; then
		result FAIL "$t" "the stranger did not connect: $(tail -n 1 "$WORK/strangers.out")"
		kill "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		stop_workload
		return
	fi
	before=$(last_report)
	if ! grep -q '^extra refused' "$WORK/strangers.out"; then
		result FAIL "$t" "$(head -n 1 "$WORK/strangers.out")"
	elif ! migrate post-copy; then
		result FAIL "$t" "migrate failed beside silent clients: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 20 reports_from "$PREFIX-b" "${before%% *}"; then
		result FAIL "$t" "no report from b after the migration (last: $(last_report))"
	elif ! grep -q 'handshakes from .* are in progress' "$WORK/dmigrated.log"; then
		result FAIL "$t" "dmigrated did not log the refused connection"
	else
		result PASS "$t"
	fi
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	stop_workload
}

# waits/source-stopped: stop-and-copy; the source dmigrate is stopped right
# after it sent the state, before the memory.  b (--peer-timeout 4) gives up
# on its own, says which phase it waited for, and is free for the next
# migration; after SIGCONT the source finds the link gone and rolls back.
test_source_stopped() {
	local t=waits/source-stopped marks=$WORK/marks mpid spid rc before
	selected "$t" || return 0
	DAEMON_ARGS=(--peer-timeout 4)
	rm -rf "$marks"
	mkdir -p "$marks"
	if ! start_daemon || ! start_workload python3; then
		result FAIL "$t" "setup failed"
		DAEMON_ARGS=()
		start_daemon
		return
	fi
	in_host a env DMIGRATE_TEST_PAUSE=src-state-sent DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=6000 \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode stop-and-copy \
		>"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 30 test -e "$marks/src-state-sent" || ! spid=$(migrate_below "$mpid"); then
		wait "$mpid"
		result FAIL "$t" "never reached src-state-sent: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	else
		kill -STOP "$spid"
		if ! wait_until 60 grep -q 'failed: nothing came from the peer for 4 s while waiting for the memory before the restore' \
			"$WORK/dmigrated.log"; then
			kill -CONT "$spid"
			wait "$mpid"
			result FAIL "$t" "b did not give the stopped source up: $(tail -n 1 "$WORK/dmigrated.log")"
		else
			touch "$marks/src-state-sent.go"
			kill -CONT "$spid"
			wait "$mpid"
			rc=$?
			before=$(last_report)
			if ((rc == 0)); then
				result FAIL "$t" "the migration succeeded"
			elif ! wait_until 10 reports_from "$PREFIX-a" "${before%% *}"; then
				result FAIL "$t" "the workload does not go on in a after the rollback"
			elif ! migrate stop-and-copy; then
				result FAIL "$t" "b did not take the next migration: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
			elif ! wait_until 20 reports_from "$PREFIX-b" 0; then
				result FAIL "$t" "the next migration's workload does not run in b"
			else
				result PASS "$t"
			fi
		fi
	fi
	stop_workload
	DAEMON_ARGS=()
	start_daemon
}

# waits/mem-done: the destination has every page but never says MEM_DONE (test
# point dst-before-mem-done holds it; its kernel still answers the link's
# keepalives, so the link's patience never ends).  The source gives it up
# after its silent bound (MIG_WAIT_MEM_DONE_MS, 3 s here through
# DMIGRATE_TEST_WAIT_MEM_DONE_MS), says what it waited for, and keeps its
# copy stopped; at most one copy runs (b's, if its late MEM_DONE went out)
test_mem_done_bound() {
	local t=waits/mem-done marks=$WORK/marks mpid rc
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	if ! start_daemon "$KEY" DMIGRATE_TEST_PAUSE=dst-before-mem-done DMIGRATE_TEST_MARK="$marks" \
		DMIGRATE_TEST_PAUSE_MS=60000 || ! start_workload python3; then
		result FAIL "$t" "setup failed"
		start_daemon
		return
	fi
	in_host a env DMIGRATE_TEST_WAIT_MEM_DONE_MS=3000 "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" \
		--key "$KEY" --mode post-copy >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 60 test -e "$marks/dst-before-mem-done"; then
		wait "$mpid"
		result FAIL "$t" "b never reached dst-before-mem-done: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	else
		# the bound under test ends it: without it, only b's 60 s pause would
		wait "$mpid"
		rc=$?
		touch "$marks/dst-before-mem-done.go"
		if ((rc == 0)); then
			result FAIL "$t" "the migration succeeded: the source waited until b's pause ended"
		elif ! grep -q 'nothing came from the peer for 3 s while waiting for MEM_DONE' "$WORK/migrate.out"; then
			result FAIL "$t" "the error does not name the wait: $(grep -v '^(' "$WORK/migrate.out" | tail -n 2)"
		elif [[ $(pstate "$WL_PID") != T ]] || ! grep -q 'left stopped' "$WORK/migrate.out"; then
			result FAIL "$t" "a's copy is not left stopped (state $(pstate "$WL_PID")): $(tail -n 1 "$WORK/migrate.out")"
		else
			result PASS "$t"
		fi
	fi
	stop_workload
	start_daemon
}

# concurrent/four-at-once: four python3 counters migrate from a to b at the
# same time (post-copy); each source pauses at src-connected, so all four
# sessions are open on b at once.  The source of #3 is killed there: its
# migration fails and its workload runs on in a, the three others complete.
all_marked() { local k; for k in 0 1 2 3; do [[ -e $WORK/cmarks$k/src-connected ]] || return 1; done; }

test_concurrent() {
	local t=concurrent/four-at-once i why= spid
	local -a pids=() nss=() logs=() mpids=() befores=() rcs=()
	selected "$t" || return 0
	for i in 0 1 2 3; do
		logs[i]=$WORK/conc$i.log
		: >"${logs[i]}"
		pids[i]=$("$DM" testhost spawn --prefix "$PREFIX" a -- python3 "$E2E_DIR/lib/counter.py" "${logs[i]}") ||
			{ why="spawn failed"; break; }
		nss[i]=$(awk '/^NSpid:/ { print $NF }' "/proc/${pids[i]}/status")
	done
	for i in 0 1 2 3; do
		[[ -n $why ]] && break
		WL_LOG=${logs[i]}
		wait_until 20 has_lines 3 || why="workload $i did not start"
	done
	if [[ -z $why ]]; then
		for i in 0 1 2 3; do
			rm -rf "$WORK/cmarks$i"
			mkdir -p "$WORK/cmarks$i"
			WL_LOG=${logs[i]}
			befores[i]=$(last_report)
			in_host a env DMIGRATE_TEST_PAUSE=src-connected DMIGRATE_TEST_MARK="$WORK/cmarks$i" DMIGRATE_TEST_PAUSE_MS=6000 \
				"$DM" migrate "pid:${nss[i]}" --to "$ADDR_B:7070" --key "$KEY" --mode post-copy \
				>"$WORK/cmig$i.out" 2>&1 &
			mpids[i]=$!
		done
		if ! wait_until 60 all_marked; then
			why="not all four were accepted at once: $(grep -h -v '^(' "$WORK"/cmig*.out | tail -n 2 | tr '\n' ' ')"
		elif ! spid=$(migrate_below "${mpids[3]}"); then
			why="no source process for #3"
		else
			kill -KILL "$spid"
		fi
		# all four were open at once: the pauses may end
		for i in 0 1 2 3; do touch "$WORK/cmarks$i/src-connected.go"; done
		for i in 0 1 2 3; do
			wait "${mpids[i]}"
			rcs[i]=$?
		done
	fi
	for i in 0 1 2; do
		[[ -n $why ]] && break
		WL_LOG=${logs[i]}
		if ((rcs[i] != 0)); then
			why="migration $i failed: $(grep -v '^(' "$WORK/cmig$i.out" | tail -n 1)"
		elif ! wait_until 20 reports_from "$PREFIX-b" "${befores[i]%% *}"; then
			why="workload $i does not go on in b (last: $(last_report))"
		elif any_bad; then
			why="workload $i: memory check failed"
		fi
	done
	if [[ -z $why ]]; then
		WL_LOG=${logs[3]}
		if ((rcs[3] == 0)); then
			why="the migration whose source was killed succeeded"
		elif ! wait_until 10 reports_from "$PREFIX-a" "${befores[3]%% *}"; then
			why="workload 3 does not run on in a"
		elif ! wait_until 10 eval '! host_pid b "${nss[3]}" >/dev/null'; then
			why="b still has a copy of workload 3"
		elif gone "$DAEMON_PID"; then
			why="dmigrated died"
		fi
	fi
	if [[ -z $why ]]; then result PASS "$t"; else result FAIL "$t" "$why"; fi
	for i in 0 1 2 3; do
		[[ -n ${nss[i]:-} ]] || continue
		for h in a b; do
			spid=$(host_pid "$h" "${nss[i]}") && kill -KILL "$spid" 2>/dev/null
		done
		kill -KILL "${pids[i]}" 2>/dev/null
	done
}

# refuse/xfeature: the source claims (DMIGRATE_TEST_FORGE_XCR0) an xsave
# component this CPU lacks; b refuses at START, naming it, before anything
# is frozen: the workload never stops in a
missing_xfeature() {
	if ! grep -qw amx_tile /proc/cpuinfo; then echo 60000
	elif ! grep -qw avx512f /proc/cpuinfo; then echo e0
	else echo 4000000000000000; fi
}

test_refuse_xfeature() {
	local t=refuse/xfeature before
	selected "$t" || return 0
	if ! start_workload python3; then
		result FAIL "$t" "setup failed"
		return
	fi
	before=$(last_report)
	if in_host a env DMIGRATE_TEST_FORGE_XCR0="$(missing_xfeature)" "$DM" migrate "pid:$WL_NS" \
		--to "$ADDR_B:7070" --key "$KEY" --mode post-copy >"$WORK/migrate.out" 2>&1; then
		result FAIL "$t" "the migration succeeded"
	elif ! grep -q 'lacks xsave features the tree .*bit' "$WORK/migrate.out"; then
		result FAIL "$t" "the error does not name the feature: $(tail -n 1 "$WORK/migrate.out")"
	elif ! grep -q 'nothing was changed' "$WORK/migrate.out" || grep -q 'freeze \.\.\.' "$WORK/migrate.out"; then
		result FAIL "$t" "not refused before the freeze: $(tail -n 1 "$WORK/migrate.out")"
	elif ! wait_until 10 reports_from "$PREFIX-a" "${before%% *}"; then
		result FAIL "$t" "the workload does not run on in a"
	elif host_pid b "$WL_NS" >/dev/null; then
		result FAIL "$t" "b has a copy"
	else
		result PASS "$t"
	fi
	stop_workload
}

# safety/POINT/ACTION/MODE: the forking workload (forker.py) migrates in
# MODE; at test point POINT (src-*: dmigrate migrate, dst-*: dmigrated)
# ACTION happens: kill-source (kill -9 dmigrate migrate), kill-dest (kill -9
# dmigrated), sigint/sighup (to dmigrate migrate), none (the point does it:
# src-commit-unsent shuts the source's control channel under its COMMIT;
# b-cont: with the workload's SIGCONT handler).  WANT says where the one
# copy runs afterwards: a (rolled back: b's copy never ran, not one line from
# b), b (a's copy is gone or stopped), none (a's copy is stopped, b has
# nothing left, the way to resume a's copy was printed; SIGCONT resumes it).
# In every case b keeps no process of the tree (forks included) unless the
# tree runs there, and every memory check stays ok.
test_safety() {	# POINT ACTION MODE WANT [b-forked|b-cont]
	# the pause at POINT is long: the test ends it (POINT.go) once it has acted.
	# A short one let the migration go on before a slow host had acted: a
	# SIGINT at src-state-sent then came after the switch-over (the full run
	# once failed safety/src-state-sent/sigint/stop-and-copy so)
	local point=$1 action=$2 mode=$3 want=$4 t="safety/$1/$2/$3" marks=$WORK/marks rc mpid c sp pause=30000
	local wl=forker
	[[ ${5:-} == b-cont ]] && { wl=forker-cont; t+=/sigcont-handler; }
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	local -a denv=() senv=()
	[[ $point == dst-* ]] && denv=(DMIGRATE_TEST_PAUSE="$point" DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=$pause)
	[[ $point == src-* ]] && senv=(DMIGRATE_TEST_PAUSE="$point" DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=$pause)
	# a guardian slow to run (a loaded host): b's copy would read zeros meanwhile if the
	# guardian did not hold the uffds (its cold buffer is read in that time)
	[[ $action == kill-dest && ${5:-} == b-forked ]] && denv+=(DMIGRATE_TEST_GUARDIAN_DELAY_MS=4000)
	if ! start_daemon "$KEY" "${denv[@]}" || ! start_workload "$wl" || ! wait_until 20 grep -q '^child' "$WL_LOG"; then
		result FAIL "$t" "setup failed"
		return
	fi
	in_host a env "${senv[@]}" "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode "$mode" \
		--stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 60 test -e "$marks/$point" || ! sp=$(migrate_pid); then
		wait "$mpid"
		result FAIL "$t" "never reached $point: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		stop_workload
		return
	fi
	if [[ ${5:-} == b-forked ]] && ! wait_until 25 grep -q "^child [0-9.]* $PREFIX-b " "$WL_LOG"; then
		touch "$marks/$point.go"
		wait "$mpid"
		result FAIL "$t" "b's copy did not fork"
		stop_workload
		return
	fi
	case $action in
	kill-source) kill -KILL "$sp" ;;
	# dead (its sockets closed: the source sees the end) before the pause ends, or
	# on a loaded host the source may go on to COMMIT first (then its copy stays
	# stopped: a safe end, but not the one this case is about)
	# and the source's sockets have its end (a loaded host took a while to
	# process it: the source, let go first, saw nothing yet and committed)
	kill-dest) kill -KILL "$DAEMON_PID"; wait_until 10 gone "$DAEMON_PID"; DAEMON_PID=
		wait_until 10 src_saw_dest_end ;;
	sigint) kill -INT "$sp" ;;
	sighup) kill -HUP "$sp" ;;
	none) ;;
	esac
	touch "$marks/$point.go"
	wait "$mpid"
	rc=$?
	c=$(last_report)
	c=${c%% *}
	local why=
	case $want in
	a)
		if [[ $action != kill-source ]] && ((rc == 0)); then
			why="the migration succeeded"
		elif ! wait_until 10 reports_from "$PREFIX-a" "$c"; then
			why="the workload does not go on in a (states: $(tree_states a))"
		elif ! wait_until 10 b_empty; then
			why="b still runs processes of the tree: $(tree_procs b)"
		elif grep -q " $PREFIX-b " "$WL_LOG"; then
			why="b's copy ran (two copies): $(grep -m1 " $PREFIX-b " "$WL_LOG")"
		elif [[ $action == sig* ]] && ! grep -q "interrupted by ${action^^}" "$WORK/migrate.out"; then
			why="the error does not name the signal: $(tail -n 1 "$WORK/migrate.out")"
		elif [[ $action == kill-dest || $action == none ]] && ! grep -q 'runs on here' "$WORK/migrate.out"; then
			why="no rollback message: $(tail -n 1 "$WORK/migrate.out")"
		elif [[ $point == src-commit-unsent ]] && ! grep -q 'COMMIT could not be sent' "$WORK/migrate.out"; then
			why="the error does not say COMMIT was not sent: $(tail -n 1 "$WORK/migrate.out")"
		fi ;;
	b)
		if [[ $action == sig* ]] && ((rc != 0)); then
			why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		elif [[ $action == sig* ]] && ! grep -q "${action^^} ignored" "$WORK/migrate.out"; then
			why="the signal was not reported as ignored"
		elif ! wait_until 20 reports_from "$PREFIX-b" "$c"; then
			why="the workload does not go on in b (last: $(last_report))"
		elif ! wait_until 5 eval '[[ -z $(tree_states a | tr -d "T ") ]]'; then
			why="a copy still runs in a (states: $(tree_states a))"
		fi ;;
	none)
		if ((rc == 0)); then
			why="the migration succeeded"
		elif ! wait_until 15 b_empty; then
			why="b still runs processes of the tree: $(tree_procs b)"
		elif [[ $(tree_states a) != "T " ]]; then
			why="a's copy is not stopped (states: $(tree_states a))"
		elif ! grep -q 'kill -CONT' "$WORK/migrate.out" "$WORK/dmigrated.log"; then
			why="nobody said how to resume a's copy"
		else
			c=$(last_report)
			c=${c%% *}
			for sp in $(tree_procs a); do kill -CONT "$sp"; done
			wait_until 10 reports_from "$PREFIX-a" "$c" || why="a's copy does not go on after SIGCONT"
		fi ;;
	esac
	if [[ -z $why ]] && any_bad; then
		why="a memory check failed: $(grep -m1 BAD "$WL_LOG")"
	fi
	if [[ -n $why ]]; then
		result FAIL "$t" "$why"
		((VERBOSE)) && { cat "$WORK/migrate.out"; tail -n 20 "$WORK/dmigrated.log"; } >&2
	else
		result PASS "$t"
	fi
	stop_workload
	[[ -n $DAEMON_PID ]] || start_daemon
}

# safety/restore-lazy-sigint: `restore --lazy` is the only page source of
# the tree it restored: SIGINT while pages are missing is reported, not
# obeyed, and every page arrives (the workload's memory checks stay ok)
test_restore_lazy_sigint() {
	local t=safety/restore-lazy-sigint img=/var/lib/dmigrate/lazy-img marks=$WORK/marks rpid c rc
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	if ! start_workload python3 || ! in_host a "$DM" checkpoint --pid "$WL_NS" --images "$img" --lazy >"$WORK/ckpt.out" 2>&1; then
		result FAIL "$t" "setup failed: $(tail -n 1 "$WORK/ckpt.out" 2>/dev/null)"
		stop_workload
		return
	fi
	c=$(last_report)
	c=${c%% *}
	wait_until 10 eval '[[ ! -d /proc/$WL_PID ]]' # reaped by host a's init: its pid is free
	in_host a env DMIGRATE_TEST_PAUSE=restore-lazy-serving DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=1500 \
		"$DM" restore --images "$img" --lazy >"$WORK/restore.out" 2>&1 &
	rpid=$!
	if ! wait_until 30 test -e "$marks/restore-lazy-serving" ||
		! rpid=$(pgrep --ns "$("$DM" testhost pid --prefix "$PREFIX" a)" --nslist pid -f "^$DM restore --images $img" |
			head -n 1 | grep .); then
		wait
		result FAIL "$t" "never reached the test point: $(tail -n 1 "$WORK/restore.out")"
		stop_workload
		return
	fi
	kill -INT "$rpid"
	touch "$marks/restore-lazy-serving.go"
	wait_until 30 gone "$rpid"
	wait %% 2>/dev/null
	rc=$?
	if ! grep -q 'SIGINT ignored' "$WORK/restore.out"; then
		result FAIL "$t" "restore did not report the signal (rc $rc): $(tail -n 1 "$WORK/restore.out")"
	elif ! wait_until 10 reports_from "$PREFIX-a" "$c"; then
		result FAIL "$t" "the restored workload does not go on (last: $(last_report))"
	elif ! wait_until 10 eval 'c2=$(last_report); ((${c2%% *} > c + 10))' || any_bad; then
		result FAIL "$t" "memory check failed: $(grep -m1 BAD "$WL_LOG")"
	else
		result PASS "$t"
	fi
	in_host a rm -rf "$img"
	stop_workload
}

# safety/zero-reads/kill-dest/post-copy: dmigrated killed right after COMMIT,
# while the tree on b faults in its 256 MiB, its guardian slow to run (a
# loaded host, 3 s): b's copy must not read a single zero page meanwhile.
# Closing the daemon's uffds unregisters the ranges; the guardian holds
# references to them until the tree is dead, so faults wait instead.
test_zero_reads() {
	local t=safety/zero-reads/kill-dest/post-copy marks=$WORK/marks rc mpid
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	if ! start_daemon "$KEY" DMIGRATE_TEST_GUARDIAN_DELAY_MS=3000 || ! start_workload cprog256; then
		result FAIL "$t" "setup failed"
		return
	fi
	in_host a env DMIGRATE_TEST_PAUSE=src-resumed DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=30000 \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode post-copy >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 60 test -e "$marks/src-resumed"; then
		wait "$mpid"
		result FAIL "$t" "never reached src-resumed: $(tail -n 1 "$WORK/migrate.out")"
		stop_workload
		return
	fi
	kill -KILL "$DAEMON_PID"
	DAEMON_PID=
	touch "$marks/src-resumed.go"
	wait "$mpid"
	rc=$?
	if ((rc == 0)); then
		result FAIL "$t" "the migration succeeded"
	elif ! wait_until 20 b_empty; then
		result FAIL "$t" "b still runs the tree: $(tree_procs b)"
	elif any_bad; then
		result FAIL "$t" "b's copy read zeros: $(grep -m1 BAD "$WL_LOG")"
	elif [[ $(tree_states a) != "T " ]]; then
		result FAIL "$t" "a's copy is not stopped (states: $(tree_states a))"
	else
		result PASS "$t"
	fi
	stop_workload
	[[ -n $DAEMON_PID ]] || start_daemon
}

# hostile/NAME: a broken source speaking to an --insecure dmigrated: refused, and
# the daemon still serves a real migration afterwards
test_hostile() {
	local names="garbage bad-magic huge-frame bad-seq bad-mode bad-protobuf too-much-memory path-escape
		extent-out-of-range wrong-file-count bad-image no-creds tree-too-big xfeature-missing" n hpid
	selected hostile/ || [[ $FILTER =~ hostile ]] || return 0
	hpid=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/hostile-dmigrated.log" b -- \
		"${DMD[@]}" --listen "$ADDR_B:7071" --insecure --ready-file "$WORK/hready" -v) || return
	wait_until 10 test -e "$WORK/hready"
	for n in $names; do
		selected "hostile/$n" || continue
		if ! in_host a timeout 30 python3 "$E2E_DIR/lib/hostile.py" "$ADDR_B" 7071 "$n" >"$WORK/hostile.out" 2>&1; then
			result FAIL "hostile/$n" "not refused: $(tail -n 1 "$WORK/hostile.out")"
		elif gone "$hpid"; then
			result FAIL "hostile/$n" "dmigrated died"
			return
		else
			result PASS "hostile/$n"
		fi
	done
	# still serving: a real migration through the same daemon
	if selected hostile/then-a-real-one && start_workload busybox; then
		local ok=1 try
		for try in 1 2 3 4 5 6 7 8 9 10; do
			# one migration at a time: "busy" while the last broken session ends
			in_host a "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7071" --insecure --quiet >"$WORK/migrate.out" 2>&1 && { ok=0; break; }
			grep -q busy "$WORK/migrate.out" || break
			sleep 0.5
		done
		if ((ok == 0)) && wait_until 10 reports_from "$PREFIX-b" 0; then
			result PASS hostile/then-a-real-one
		else
			result FAIL hostile/then-a-real-one "$(tail -n 1 "$WORK/migrate.out")"
		fi
		stop_workload
	fi
	kill -TERM "$hpid" 2>/dev/null
}

# The source reads the queue in front of its link: where it serves the fault
# channel first (pfifo_fast under a token bucket, a host's default), the push
# fills the link; where it is one FIFO (a bare tbf) or unknown (noqueue), the
# push keeps little in flight.  Each case migrates and checks what stats say.
link_queue() {	# prio|fifo|none: host a's end of the link as testhost up --tbf [--fifo-link] makes it, or bare
	local dev=$PREFIX-a0
	tc -n "$PREFIX-a" qdisc del dev "$dev" root 2>/dev/null
	[[ $1 == none ]] && return 0
	tc -n "$PREFIX-a" qdisc add dev "$dev" root handle 1: tbf rate 1gbit burst 256kb latency 50ms || return 1
	[[ $1 == fifo ]] || tc -n "$PREFIX-a" qdisc add dev "$dev" parent 1:1 handle 10: pfifo_fast
}

test_link_queue() {
	local q want t before
	for q in prio fifo none; do
		t=link/queue-$q
		selected "$t" || continue
		link_queue "$q"
		case $q in prio) want=priority ;; fifo) want=fifo ;; none) want=unknown ;; esac
		if ! start_workload cprog; then
			result FAIL "$t" "the workload did not start"
			continue
		fi
		before=$(last_report)
		if ! migrate post-copy; then
			result FAIL "$t" "migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
		elif [[ $(jq -r '.link_queue.queueing // "none"' "$WORK/stats.json") != "$want" ]]; then
			result FAIL "$t" "link_queue says $(jq -c '.link_queue' "$WORK/stats.json"), want $want"
		elif ! wait_until 20 reports_from "$PREFIX-b" "${before%% *}" || any_bad; then
			result FAIL "$t" "the workload did not go on in b (last: $(last_report))"
		else
			log "$t: $(jq -c '.link_queue' "$WORK/stats.json")"
			result PASS "$t"
		fi
		stop_workload
	done
	# back to what testhost up made
	link_queue "$([[ -n $TBF ]] && echo prio || echo none)"
}

# rootfs/MODE: a tree chrooted into a directory of host a's own tmpfs, which
# host b cannot see, migrates with --rootfs-dir: the files land under b's
# dmigrated state dir and the tree runs chrooted into that copy.  The
# workload (lib/rootfs_work.c) keeps a file open and one mapped, checks
# them again after the move, walks /data checking every file, writes one.
# Afterwards every entry of the copy is the source's (inode number, type,
# mode, size, owner, mtime, allocated blocks: holes; symlink targets;
# contents), hard links are one inode, the xattr, fifo and device are
# there, and the stats say the working set went first.
RFS_DIR=/var/lib/dmigrate/rfsrc
tree_listing() {	# DIR: one line per entry, /out (the workload writes there) left out
	(cd "$1" && find . -path ./out -prune -o -printf '%P %i %M %s %U %G %T@ %b %l\n' | sort)
}
# the rootfs in host a and the workload chrooted into it; FAIL and 1 if not
start_rootfs_workload() {	# TEST
	local t=$1
	if [[ ! -x $WORK/rootfs_work ]] && ! cc -static -O2 -o "$WORK/rootfs_work" "$E2E_DIR/lib/rootfs_work.c"; then
		result FAIL "$t" "cannot build lib/rootfs_work.c (static)"
		return 1
	fi
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	if ! in_host a python3 "$E2E_DIR/lib/mkrootfs.py" "$RFS_DIR" "$WORK/rootfs_work" 6 30; then
		result FAIL "$t" "cannot make the rootfs"
		return 1
	fi
	if in_host b test -e "$RFS_DIR"; then
		result FAIL "$t" "host b sees host a's $RFS_DIR: the test would prove nothing"
		return 1
	fi
	WL_LOG=$WORK/rootfs.$RANDOM.log
	: >"$WL_LOG"
	WL_PID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WL_LOG" a -- chroot "$RFS_DIR" /bin/work) ||
		{ result FAIL "$t" "spawn failed"; return 1; }
	WL_NS=$(awk '/^NSpid:/ { print $NF }' "/proc/$WL_PID/status")
	if ! wait_until 20 grep -q '^ready ' "$WL_LOG"; then
		result FAIL "$t" "the workload did not start: $(tail -n 1 "$WL_LOG")"
		stop_workload
		return 1
	fi
}
b_rootfs_clean() { in_host b sh -c '! grep -q dmigrate-rootfs /proc/self/mounts && [ -z "$(ls /var/lib/dmigrate/rootfs 2>/dev/null)" ]'; }

# rootfs/kill-dest: dmigrated killed (-9) with the lazy view mounted and the
# files arriving, before the restore: the source rolls back, the tree
# runs on in a with its files unchanged, b runs nothing of it, and the next
# dmigrated unmounts the dead view and removes the copy
test_rootfs_kill_dest() {
	local t=rootfs/kill-dest marks=$WORK/marks ainit src before rc why=
	selected "$t" || return 0
	rm -rf "$marks"
	mkdir -p "$marks"
	start_daemon "$KEY" DMIGRATE_TEST_PAUSE=dst-rootfs-received DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=30000 ||
		{ result FAIL "$t" "dmigrated did not start"; return; }
	start_rootfs_workload "$t" || { start_daemon; return; }
	ainit=$("$DM" testhost pid --prefix "$PREFIX" a)
	src=/proc/$ainit/root$RFS_DIR
	before=$(tree_listing "$src")
	migrate post-copy --rootfs-dir "$RFS_DIR" &
	local mpid=$!
	if ! wait_until 30 test -e "$marks/dst-rootfs-received"; then
		why="the destination never got to the restore: $(tail -n 2 "$WORK/dmigrated.log" | tr '\n' ' ')"
	fi
	kill -KILL "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	wait "$mpid"
	rc=$?
	if [[ -n $why ]]; then
		:
	elif ((rc == 0)); then
		why="the migration succeeded"
	elif ! grep -q 'runs on here' "$WORK/migrate.out"; then
		why="no rollback message: $(tail -n 1 "$WORK/migrate.out")"
	elif gone "$WL_PID" || [[ $(pstate "$WL_PID") == T ]]; then
		why="the tree does not run on in a (state $(pstate "$WL_PID"))"
	elif ! wait_until 15 b_empty; then
		why="b still runs processes of the tree: $(tree_procs b)"
	elif [[ $(tree_listing "$src") != "$before" ]]; then
		why="the files changed in a"
	elif ! start_daemon; then
		why="dmigrated did not start again"
	elif ! wait_until 10 b_rootfs_clean; then
		why="the new dmigrated left the dead view or the copy: $(in_host b ls /var/lib/dmigrate/rootfs | tr '\n' ' ')"
	fi
	verdict "$t" "$why"
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	[[ -n $DAEMON_PID ]] || start_daemon
	in_host b sh -c 'for m in /var/lib/dmigrate/rootfs/*/root; do umount -l "$m"; done; rm -rf /var/lib/dmigrate/rootfs/*' 2>/dev/null
}

# rootfs/none: shared storage (an identical copy, cp -a, at the same path in
# b, made beforehand): --rootfs none moves no file, the tree runs on b's
# copy of DIR and reads it right
test_rootfs_none() {
	local t=rootfs/none ainit binit why=
	selected "$t" || return 0
	start_rootfs_workload "$t" || return
	ainit=$("$DM" testhost pid --prefix "$PREFIX" a)
	binit=$("$DM" testhost pid --prefix "$PREFIX" b)
	cp -a "/proc/$ainit/root$RFS_DIR" "/proc/$binit/root$RFS_DIR"
	if ! migrate post-copy --rootfs-dir "$RFS_DIR" --rootfs none; then
		why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 60 grep -q '^wrote ' "$WL_LOG"; then
		why="the workload did not finish in b: $(tail -n 1 "$WL_LOG")"
	elif ! grep -q "^first-read $PREFIX-b ok" "$WL_LOG" || ! grep -Eq "^walk $PREFIX-b files=[0-9]+ ok" "$WL_LOG"; then
		why="reads went wrong in b: $(grep -E '^(first-read|walk)' "$WL_LOG" | tr '\n' ' ')"
	elif [[ $(cat "/proc/$binit/root$RFS_DIR/out/written.txt") != "written on $PREFIX-b" ]]; then
		why="the write is not in b's DIR"
	elif ! python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["rootfs"] == {"mode": "none"} and "rootfs" not in j["bytes"] else 1)' "$WORK/stats.json"; then
		why="files moved, or the stats do not say none"
	fi
	verdict "$t" "$why"
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	in_host b rm -rf "$RFS_DIR"
}

# rootfs/no-space: b's file system for the copies (a tmpfs of 8 MiB here)
# cannot hold the tree's files: the destination says so once the walk has
# told it their size, before anything is frozen; the tree runs on in a, was
# never stopped, and b keeps nothing of it
# b's file system for the copies a tmpfs of 8 MiB, too small for the tree's
# files (no_space_end takes it away)
no_space_mount() {
	in_host b sh -c 'mkdir -p /var/lib/dmigrate/rootfs && mount -t tmpfs -o size=8m dmtest-small /var/lib/dmigrate/rootfs' ||
		{ result FAIL "$1" "cannot mount the small tmpfs in b"; stop_workload; return 1; }
}

# what is wrong with a refusal for the space (migrate.out, the tree, b), ""
# if nothing; NOSPACE_LOST: the words when b's reason is not there
no_space_why() {
	if ! grep -q 'not enough disk space here for the files' "$WORK/migrate.out"; then
		echo "$NOSPACE_LOST: $(grep -v '^(' "$WORK/migrate.out" | tail -n 2 | tr '\n' ' ')"
	elif ! grep -q 'nothing was changed' "$WORK/migrate.out"; then
		echo "the tree was frozen before the refusal: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif gone "$WL_PID" || [[ $(pstate "$WL_PID") == T ]]; then
		echo "the tree does not run on in a (state $(pstate "$WL_PID"))"
	elif ! wait_until 15 b_empty; then
		echo "b still runs processes of the tree: $(tree_procs b)"
	elif ! wait_until 10 b_rootfs_clean; then
		echo "b kept the copy: $(in_host b ls /var/lib/dmigrate/rootfs | tr '\n' ' ')"
	fi
}

no_space_end() {
	verdict "$1" "$2"
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	in_host b sh -c 'umount -l /var/lib/dmigrate/rootfs' 2>/dev/null
}

test_rootfs_no_space() {
	local t=rootfs/no-space why= rc
	selected "$t" || return 0
	start_rootfs_workload "$t" || return
	no_space_mount "$t" || return
	migrate post-copy --rootfs-dir "$RFS_DIR"
	rc=$?
	if ((rc == 0)); then
		why="the migration succeeded"
	else
		why=$(NOSPACE_LOST="not refused for the space" no_space_why)
	fi
	no_space_end "$t" "$why"
}

# rootfs/no-space-reset: the same refusal, with the source's two threads
# in the order that lost its reason (test points, DMIGRATE_TEST_PAUSE): b
# refuses the first file sent before the freeze (DONE with its error on
# the rootfs channel) and shuts its channels down; the miss thread, which
# sees its channel end first, waits (src-rootfs-miss-failed); the bulk
# thread, held after that file's header (src-rootfs-pre-file), then sends
# its data into the closed channel, which b's kernel resets: its send
# fails (Broken pipe), and it ends first (src-rootfs-bulk-ended).  The
# source must still say b's reason, not the reset; and dmigrated's log the
# same cause, not the source closing the session
test_rootfs_no_space_reset() {
	local t=rootfs/no-space-reset marks=$WORK/marks-reset mpid why= p logged
	selected "$t" || return 0
	logged=$(grep -c 'failed: receiving the files: not enough disk space' "$WORK/dmigrated.log")
	start_rootfs_workload "$t" || return
	no_space_mount "$t" || return
	rm -rf "$marks"
	mkdir -p "$marks"
	in_host a env DMIGRATE_TEST_PAUSE=src-rootfs-pre-file,src-rootfs-miss-failed,src-rootfs-bulk-ended \
		DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=20000 "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" \
		--key "$KEY" --mode post-copy --rootfs-dir "$RFS_DIR" >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 20 test -e "$marks/src-rootfs-miss-failed"; then
		why="the miss thread did not see b close its channel (marks: $(ls "$marks" | tr '\n' ' '))"
	else
		touch "$marks/src-rootfs-pre-file.go"
		wait_until 20 test -e "$marks/src-rootfs-bulk-ended" ||
			why="the bulk thread did not fail on the closed channel (marks: $(ls "$marks" | tr '\n' ' '))"
	fi
	for p in src-rootfs-pre-file src-rootfs-miss-failed src-rootfs-bulk-ended; do
		touch "$marks/$p.go"
	done
	if wait "$mpid"; then
		why=${why:-"the migration succeeded"}
	fi
	[[ -n $why ]] || why=$(NOSPACE_LOST="b's reason lost" no_space_why)
	if [[ -z $why ]] && ! wait_until 10 eval 'test "$(grep -c "failed: receiving the files: not enough disk space" "$WORK/dmigrated.log")" -gt "$logged"'; then
		why="dmigrated did not log the cause: $(grep 'failed:' "$WORK/dmigrated.log" | tail -n 1)"
	fi
	no_space_end "$t" "$why"
}

# rootfs/wire-version: a source whose rootfs frames are of another version
# (DMIGRATE_TEST_RFS_WIRE=1: the format before versions) is refused at
# START, before the freeze, the versions named; the tree runs on in a
test_rootfs_wire_version() {
	local t=rootfs/wire-version why=
	selected "$t" || return 0
	start_rootfs_workload "$t" || return
	if in_host a env DMIGRATE_TEST_RFS_WIRE=1 "$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" \
		--mode post-copy --rootfs-dir "$RFS_DIR" >"$WORK/migrate.out" 2>&1; then
		why="the migration succeeded"
	elif ! grep -q 'rootfs wire protocol version 1, this dmigrated version 3' "$WORK/migrate.out"; then
		why="the error does not name both versions: $(tail -n 1 "$WORK/migrate.out")"
	elif ! grep -q 'nothing was changed' "$WORK/migrate.out" || grep -q 'freeze \.\.\.' "$WORK/migrate.out"; then
		why="not refused before the freeze: $(tail -n 1 "$WORK/migrate.out")"
	elif [[ $(pstate "$WL_PID") != [SR] ]]; then
		why="the tree does not run on in a (state $(pstate "$WL_PID"))"
	elif host_pid b "$WL_NS" >/dev/null; then
		why="b has a copy"
	elif ! wait_until 10 b_rootfs_clean; then
		why="b kept a view or a copy"
	fi
	verdict "$t" "$why"
	stop_workload
	in_host a rm -rf "$RFS_DIR"
}

# Reads in b, through the view (VIEW, the tree's root there), of files that
# have not arrived (the sender holds them): a file listed before its data
# came shows the size and blocks the source has at once after it arrived
# (read through its other name: the kernel's cached attributes of the first
# are dropped on arrival, not left for their 1 s); the last bytes of a large
# file come right, and the copy then holds that chunk only, not the whole
# file (a miss waits for its chunk).  Prints "ok ..." or what went wrong.
late_reads() {	# VIEW SRC
	local out blocks
	out=$(python3 - "$1" "$2" <<'PY' 2>&1
import os, sys
view, src = sys.argv[1], sys.argv[2]
def content(path, off, n):
    h = 2166136261
    for c in path.encode():
        h = ((h ^ c) * 16777619) & 0xffffffff
    return bytes(((h & 0xff) + off + i) & 0xff for i in range(n))
import time
s0, t0 = os.lstat(view + "/late/small.txt"), time.monotonic()
if s0.st_blocks:
    sys.exit("late/small.txt was in before it was read (%d blocks): the sender did not hold it" % s0.st_blocks)
if open(view + "/late/small-link", "rb").read() != content("/late/small.txt", 0, 10000):
    sys.exit("late/small-link read wrong")
# the read returns once its chunk is in; the file's end (and the view's
# invalidation of what the kernel cached at s0) follows within moments.
# Polled for half the view's 1 s attribute cache only: without the
# invalidation the stale attributes would last past it.
want = os.lstat(src + "/late/small.txt")
while True:
    s1 = os.lstat(view + "/late/small.txt")
    if (s1.st_size, s1.st_blocks) == (want.st_size, want.st_blocks) or time.monotonic() - t0 > 0.5:
        break
    time.sleep(0.01)
if (s1.st_size, s1.st_blocks) != (want.st_size, want.st_blocks):
    sys.exit("late/small.txt shows size %d, %d blocks after it arrived; the source: %d, %d" %
             (s1.st_size, s1.st_blocks, want.st_size, want.st_blocks))
size = os.lstat(src + "/late/large.bin").st_size
fd = os.open(view + "/late/large.bin", os.O_RDONLY)
got = os.pread(fd, 4096, size - 4096)
os.close(fd)
if got != content("/late/large.bin", size - 4096, 4096):
    sys.exit("the last bytes of late/large.bin read wrong")
print("ok")
PY
)
	[[ $out == ok ]] || { echo "$out" | tail -n 1; return; }
	# the copy under the view: the last chunk of large.bin, no more
	blocks=$(in_host b sh -c 'stat -c %b /var/lib/dmigrate/rootfs/*/data/late/large.bin')
	if ! ((blocks > 0 && blocks * 512 <= 1048576)); then
		echo "late/large.bin: the copy holds $blocks blocks after a read of its last chunk (want that chunk only)"
	else
		echo "ok (large.bin: $blocks blocks in the copy)"
	fi
}

test_rootfs() {	# MODE
	local mode=$1 t=rootfs/$1 ainit dest src copy why marks=$WORK/marks mpid rc
	selected "$t" || return 0
	start_rootfs_workload "$t" || return
	ainit=$("$DM" testhost pid --prefix "$PREFIX" a)
	src=/proc/$ainit/root$RFS_DIR
	# the sender holds everything but the working set and what the tree
	# misses until the workload has walked /data in b: it resumed before
	# its files were in, and every file it read was a miss served at once
	rm -rf "$marks"
	mkdir -p "$marks"
	in_host a env DMIGRATE_TEST_PAUSE=src-rootfs-hold DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=60000 \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode "$mode" --rootfs-dir "$RFS_DIR" \
		--stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	wait_until 60 grep -q '^walk ' "$WL_LOG"
	# while the sender still holds what nobody waits for: files of /late,
	# which the workload never touches, read in b through the view
	local late=
	if dest=$(host_pid b "$WL_NS"); then
		late=$(late_reads "/proc/$dest/root" "$src")
	else
		late="no process $WL_NS in b"
	fi
	touch "$marks/src-rootfs-hold.go"
	wait "$mpid"
	rc=$?
	if ((rc != 0)); then
		result FAIL "$t" "migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif [[ $late != ok* ]]; then
		result FAIL "$t" "reads of files not yet arrived: $late"
	elif ! wait_until 60 grep -q '^wrote ' "$WL_LOG"; then
		result FAIL "$t" "the workload did not finish in b: $(tail -n 1 "$WL_LOG")"
	elif ! grep -q "^first-read $PREFIX-b ok" "$WL_LOG"; then
		result FAIL "$t" "the working set read wrong in b: $(grep '^first-read' "$WL_LOG")"
	elif ! grep -Eq "^walk $PREFIX-b files=[0-9]+ ok" "$WL_LOG"; then
		result FAIL "$t" "a file read wrong in b: $(grep '^walk' "$WL_LOG")"
	elif ! grep -q "^wrote $PREFIX-b\$" "$WL_LOG"; then
		result FAIL "$t" "the write failed in b"
	elif ! dest=$(host_pid b "$WL_NS"); then
		result FAIL "$t" "no process $WL_NS in b"
	elif ! copy=$(readlink "/proc/$dest/root") || [[ $copy != /var/lib/dmigrate/rootfs/* ]]; then
		result FAIL "$t" "the tree in b is not chrooted into a copy in the state dir (root: $copy)"
	# its root as a's was: setuid programs and device nodes work (no nosuid, nodev)
	elif awk '$5 == "/" { print $6 }' "/proc/$dest/mountinfo" | grep -Eq 'nosuid|nodev'; then
		result FAIL "$t" "the tree's root in b is mounted $(awk '$5 == "/" { print $6 }' "/proc/$dest/mountinfo")"
	# (what the kernel cached of a file before its data arrived, st_blocks
	# of link-f003 say, is dropped on arrival: listed at once)
	elif ! diff <(tree_listing "$src") <(tree_listing "/proc/$dest/root") >"$WORK/rootfs.diff"; then
		result FAIL "$t" "the copy differs: $(head -n 4 "$WORK/rootfs.diff" | tr '\n' ' ')"
	elif diff -r --no-dereference -x out "$src/" "/proc/$dest/root/" 2>&1 |
		grep -Ev '^File .* is a (fifo|character special file) while file .* is a (fifo|character special file)$' >"$WORK/rootfs.diff"; then
		result FAIL "$t" "contents differ: $(head -n 2 "$WORK/rootfs.diff" | tr '\n' ' ')"
	elif [[ $(stat -c %i "/proc/$dest/root/data/d02/f003") != $(stat -c %i "/proc/$dest/root/data/d02/link-f003") ]]; then
		result FAIL "$t" "a hard link became two files"
	elif [[ $(getfattr --only-values -n user.dmigrate "/proc/$dest/root/data/d00/f004" 2>/dev/null ||
		python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.dmigrate").decode(), end="")' "/proc/$dest/root/data/d00/f004") != kept ]]; then
		result FAIL "$t" "the xattr was lost"
	elif [[ $(stat -c '%F %t:%T' "/proc/$dest/root/dev/null") != "character special file 1:3" ]]; then
		result FAIL "$t" "the device node was not made again"
	elif [[ $(cat "/proc/$dest/root/out/written.txt") != "written on $PREFIX-b" ]]; then
		result FAIL "$t" "the tree's write is not in the copy"
	elif ! why=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["rootfs"]
by = j["sent_by_priority"]
assert j["files_sent"] == j["files"] and j["files"] > 180, "files %d of %d" % (j["files_sent"], j["files"])
# the exe and the mapped file go before the resume; the open file after it,
# unless the tree reads it first (a miss, on its own channel: a demand)
assert by["working_set"]["files"] >= 2, "working set %s" % by["working_set"]
assert by["working_set"]["files"] + by["demand"]["files"] >= 3, "working set %s, demand %s" % (by["working_set"], by["demand"])
d = j["destination"]
assert d["files"] == j["files"], "destination %s" % d
resume = json.load(open(sys.argv[1]))["timestamps"]["resume"]
assert resume < j["last_file_ms"], "resumed at %.0f ms, after the last file (%.0f ms)" % (resume, j["last_file_ms"])
assert d["misses"] >= 1 and by["demand"]["files"] >= 1, "no miss served: %s, %s" % (d, by["demand"])
# the working set (exe, mapped file, open file) and every entry went before
# the freeze: the restore waited for no data, the tree changed nothing since
pre, pw = j["presend"], j["prewalk"]
assert pre["used_files"] >= 3 and not pre["stale_files"], "presend %s" % pre
assert pw["made_ms"] is not None and not (pw["updated"] or pw["removed"] or pw["added"]), "prewalk %s" % pw
rs = json.load(open(sys.argv[1]))["restore"]["rootfs"]
assert rs["waits"] == 0, "the restore waited for data: %s" % rs
# the view read against the copy once all was in: a sample of its small files
ro = j["read_overhead"]
assert ro and ro["files"] >= 8 and ro["bytes"] > 0 and ro["cold"] > 0 and ro["warm"] > 0, "read_overhead %s" % ro
assert ro == d["read_overhead"], "read_overhead %s, destination %s" % (ro, d["read_overhead"])
# once every file is in, opens go in FUSE passthrough (most of the probe: a file the tree
# holds open from before stays cached)
assert ro["passthrough"] and ro["passthrough_opens"] >= ro["files"] and not ro["passthrough_refused"], "passthrough: %s" % ro
print("%d files, %.1f MiB, working set %d files ready at %.0f ms, resumed at %.0f ms, last file at %.0f ms, %d misses (%.1f ms wait max), view read %.1fx cold, %.1fx cached (%d files, %d opens in passthrough)" % (
      j["files"], j["bytes"] / 1048576, by["working_set"]["files"], j["working_set_ready_ms"], resume, j["last_file_ms"],
      d["misses"], d["miss_wait_max_ms"], ro["cold"], ro["warm"], ro["files"], ro["passthrough_opens"]))' "$WORK/stats.json" 2>&1); then
		result FAIL "$t" "stats: $(echo "$why" | tail -n 1)"
	else
		log "$t: $why"
		result PASS "$t"
	fi
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	# dmigrated unmounts the view and removes the copy once the tree is gone
	if ! wait_until 20 b_rootfs_clean; then
		result FAIL "$t/cleanup" "the copy or its view is still in b after the tree ended"
		in_host b sh -c 'umount -l /var/lib/dmigrate/rootfs/*/root; rm -rf /var/lib/dmigrate/rootfs/*' 2>/dev/null
	fi
}

# rootfs/changed-before-freeze: with --rootfs priority the working set's
# files and the whole tree's entries go before the freeze; the source is
# paused right after (test point src-rootfs-presend) and the tree changes
# in a: the mapped file of the working set written in place (same size), a
# file of /data appended to, one removed, one made.  The copy in b must be
# the tree at the freeze (every entry, every byte, compared with a's), and
# the stats must say the pre-sent copy was stale and what the delta did.
# (The workload's own check of its mapped file then fails: it changed
# under it; its walk of /data must pass.)
test_rootfs_changed() {
	local t=rootfs/changed-before-freeze ainit dest src why= marks=$WORK/marks mpid rc
	selected "$t" || return 0
	start_rootfs_workload "$t" || return
	ainit=$("$DM" testhost pid --prefix "$PREFIX" a)
	src=/proc/$ainit/root$RFS_DIR
	rm -rf "$marks"
	mkdir -p "$marks"
	in_host a env DMIGRATE_TEST_PAUSE=src-rootfs-presend DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=30000 \
		"$DM" migrate "pid:$WL_NS" --to "$ADDR_B:7070" --key "$KEY" --mode post-copy --rootfs-dir "$RFS_DIR" \
		--stats "$WORK/stats.json" >"$WORK/migrate.out" 2>&1 &
	mpid=$!
	if ! wait_until 30 test -e "$marks/src-rootfs-presend"; then
		why="the source never reached src-rootfs-presend: $(tail -n 1 "$WORK/migrate.out")"
	elif ! python3 - "$src" <<'PY'
import os, sys
root = sys.argv[1]
def content(path, off, n):
    h = 2166136261
    for c in path.encode():
        h = ((h ^ c) * 16777619) & 0xffffffff
    return bytes(((h & 0xff) + off + i) & 0xff for i in range(n))
# the mapped file, in place: same size, other bytes (its mtime and ctime may not move within a clock tick)
with open(root + "/ws/lib.bin", "r+b") as f:
    f.seek(8192)
    f.write(b"\xaa" * 4096)
# appended to (still the workload's pattern), removed, made
p = "/data/d00/f001"
n = os.path.getsize(root + p)
with open(root + p, "ab") as f:
    f.write(content(p, n, 5000))
os.unlink(root + "/data/d01/f002")
with open(root + "/data/d01/new.bin", "wb") as f:
    f.write(content("/data/d01/new.bin", 0, 70000))
PY
	then
		why="cannot change the tree in a"
	fi
	touch "$marks/src-rootfs-presend.go"
	wait "$mpid"
	rc=$?
	if [[ -n $why ]]; then
		:
	elif ((rc != 0)); then
		why="migrate failed: $(grep -v '^(' "$WORK/migrate.out" | tail -n 1)"
	elif ! wait_until 60 grep -q '^wrote ' "$WL_LOG"; then
		why="the workload did not finish in b: $(tail -n 1 "$WL_LOG")"
	elif ! grep -Eq "^walk $PREFIX-b files=[0-9]+ ok" "$WL_LOG"; then
		why="a file read wrong in b: $(grep '^walk' "$WL_LOG")"
	elif ! dest=$(host_pid b "$WL_NS"); then
		why="no process $WL_NS in b"
	elif ! diff <(tree_listing "$src") <(tree_listing "/proc/$dest/root") >"$WORK/rootfs.diff"; then
		why="the copy differs: $(head -n 4 "$WORK/rootfs.diff" | tr '\n' ' ')"
	elif diff -r --no-dereference -x out "$src/" "/proc/$dest/root/" 2>&1 |
		grep -Ev '^File .* is a (fifo|character special file) while file .* is a (fifo|character special file)$' >"$WORK/rootfs.diff"; then
		why="contents differ: $(head -n 2 "$WORK/rootfs.diff" | tr '\n' ' ')"
	elif ! why=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["rootfs"]
pre, pw = j["presend"], j["prewalk"]
assert pre["files"] >= 3 and pre["stale_files"] >= 1 and pre["used_files"] >= 1, "presend %s" % pre
assert pw["updated"] >= 2 and pw["removed"] >= 1 and pw["added"] >= 1, "prewalk %s" % pw
print("presend %s, delta %s" % (pre, pw))' "$WORK/stats.json" 2>&1); then
		why="stats: $(echo "$why" | tail -n 1)"
	else
		log "$t: $why"
		why=
	fi
	verdict "$t" "$why"
	stop_workload
	in_host a rm -rf "$RFS_DIR"
	if ! wait_until 20 b_rootfs_clean; then
		result FAIL "$t/cleanup" "the copy or its view is still in b after the tree ended"
		in_host b sh -c 'umount -l /var/lib/dmigrate/rootfs/*/root; rm -rf /var/lib/dmigrate/rootfs/*' 2>/dev/null
	fi
}

# ---------------------------------------------------------------- main

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
if ! "$DM" testhost up --prefix "$PREFIX" $TBF; then
	result FAIL setup "cannot make the test hosts"
	echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
	exit 1
fi
"$DM" keygen "$KEY" >/dev/null
# the C workload runs from a copy: a restorer cannot give a process its own binary as exe
cp "$DM" "$WORK/dmigrate-workload"
start_daemon || { result FAIL setup "dmigrated did not start"; echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"; exit 1; }

if ((OTHERS)); then
	test_auth
	test_strangers
	test_source_stopped
	test_mem_done_bound
	test_concurrent
	test_refuse_xfeature
	test_hostile
	for mode in $MODES; do
		for w in python3 busybox cprog; do
			if [[ $w == busybox ]] && ! command -v busybox >/dev/null; then
				selected "work/$w/$mode" && result FAIL "work/$w/$mode" "no busybox (scripts/deps.sh installs busybox-static)"
				continue
			fi
			test_workload "$w" "$mode"
		done
	done
	for mode in post-copy stop-and-copy; do
		test_sqlite "$mode"
	done
	test_vmflags
	test_chase
	test_push_background
	test_local_fault_event
	test_pull_skips_store
	test_eager_presend
	test_store_refused stop-and-copy
	test_store_refused pre-copy
	test_link_cut_after_switch
	test_link_queue
	for mode in post-copy stop-and-copy; do
		test_rootfs "$mode"
	done
	test_rootfs_changed
	test_rootfs_kill_dest
	test_rootfs_none
	test_rootfs_no_space
	test_rootfs_no_space_reset
	test_rootfs_wire_version
fi
if ((ROLLBACK)); then
	for kind in peer link; do
		test_rollback src-connected "$kind" post-copy
		test_rollback src-precopy "$kind" pre-copy
		test_rollback src-frozen "$kind" post-copy
		test_rollback src-state-sent "$kind" stop-and-copy
		test_rollback dst-state-received "$kind" post-copy
		test_rollback dst-restored "$kind" post-copy
	done
	test_rollback src-resumed peer post-copy
fi
if ((SAFETY)); then
	test_restore_lazy_sigint
	test_zero_reads
	# signals to dmigrate migrate: before the switch-over they roll back, after it they are reported
	test_safety src-state-sent sigint stop-and-copy a
	test_safety src-resumed sigint post-copy b
	test_safety src-resumed sighup stop-and-copy b
	# COMMIT could not be sent: a's copy runs on (its SIGSTOP taken back
	# unseen), or, where the tree catches SIGCONT, stays stopped
	test_safety src-commit-unsent none post-copy a
	test_safety src-commit-unsent none stop-and-copy a
	test_safety src-commit-unsent none post-copy none b-cont
	# kill -9 of either side at each phase
	for action in kill-source kill-dest; do
		test_safety src-connected "$action" post-copy a
		test_safety src-frozen "$action" post-copy a
		test_safety src-state-sent "$action" post-copy a
		test_safety dst-restored "$action" stop-and-copy a
		test_safety src-resumed-received "$action" post-copy a
		test_safety dst-resumed "$action" post-copy none
		test_safety src-resumed "$action" post-copy none b-forked
		test_safety src-resumed "$action" stop-and-copy b
	done
	start_daemon # without the test points and hooks of the cases above
fi
if ((ZDTM)); then
	for mode in $MODES; do
		test_zdtm "$mode"
	done
fi
echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
((NFAIL == 0))
