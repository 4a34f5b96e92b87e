#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The long soak: N migrations (default 100) of a small forking workload
# back and forth between the two test hosts, each host running dmigrated,
# the modes in turn (post-copy, stop-and-copy, pre-copy, hybrid), and in
# two of every ten a link cut: before the switch-over (the migration must
# fail and the workload run on where it was) or, in post-copy, after it
# for 3 s, shorter than a dead link (the migration must wait it out and
# complete).
#
# Each migration's result must be the expected one: exit status, the
# workload reports from the right host with its counter going on, its
# checks ok, no copy left on the other host.  Afterwards nothing may have
# leaked in either dmigrated: open fds, threads, processes in the test
# hosts, network namespaces, cgroups, temporary files (source work dir,
# incoming images), memory (RSS: at most +16 MiB).  The figures are
# printed before and after (the "before" after two warm-up migrations).
# Then both daemons stop on SIGTERM; with a sanitizer build (--build
# build-asan) LeakSanitizer's verdict on them counts too.
#
#   tests/soak/run.sh [--build DIR | --bin-dir DIR] [--count N] [-v]
#   DM_E2E_PREFIX=NAME (test hosts, default dmsoak)
# Output: "PASS soak/... (T s)", "FAIL soak/...: reason (T s)" (T: since the
# previous line), "N passed, N failed, N skipped".
set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
SOAK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SOAK_DIR/../.." && pwd)
BUILD=$REPO/build BIN_DIR= COUNT=100 VERBOSE=0
PREFIX=${DM_E2E_PREFIX:-dmsoak}
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--bin-dir) BIN_DIR=$2; shift ;;
	--count) COUNT=$2; shift ;;
	-v) VERBOSE=1 ;;
	-h | --help) sed -n '4,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "soak: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
if [[ -n $BIN_DIR ]]; then
	DM=$(cd "$BIN_DIR" && pwd)/dmigrate
	DMD=("${DM%/*}/dmigrated")
else
	DM=$(cd "$BUILD" && pwd)/dmigrate
	DMD=("$DM" daemon)
fi
[[ -x $DM ]] || { echo "soak: no dmigrate ($DM)" >&2; exit 2; }
[[ $COUNT =~ ^[0-9]+$ ]] && ((COUNT >= 2)) || { echo "soak: --count N, N >= 2" >&2; exit 2; }
if ((EUID != 0)); then
	echo "SKIP soak: needs root"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
command -v busybox >/dev/null || { echo "SKIP soak: no busybox"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }

WORK=$(mktemp -d /tmp/dmigrate-soak.XXXXXX)
chmod 755 "$WORK"
KEY=$WORK/key
MODES=(post-copy stop-and-copy pre-copy hybrid)
declare -A ADDR=([a]=198.18.0.1 [b]=198.18.0.2) DPID=()
NPASS=0 NFAIL=0
WL_NS= WL_LOG=$WORK/workload.log

log() { ((VERBOSE)) && echo "# $*" >&2; return 0; }
# seconds since CASE_T0 (the previous result), "1.23"
CASE_T0=${EPOCHREALTIME/./}
elapsed() {
	local us=$((${EPOCHREALTIME/./} - CASE_T0))
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}
pass() { echo "PASS $1 ($(elapsed) s)"; NPASS=$((NPASS + 1)); CASE_T0=${EPOCHREALTIME/./}; }
fail() { echo "FAIL $1: $2 ($(elapsed) s)"; NFAIL=$((NFAIL + 1)); CASE_T0=${EPOCHREALTIME/./}; }
other() { [[ $1 == a ]] && echo b || echo a; }
in_host() { local h=$1; shift; "$DM" testhost run --prefix "$PREFIX" "$h" -- "$@"; }
wait_until() {	# SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.05
	done
}

cleanup() {
	local h p
	for h in a b; do
		[[ -n ${DPID[$h]:-} ]] && kill -KILL "${DPID[$h]}" 2>/dev/null
		[[ -n $WL_NS ]] && p=$(host_pid "$h" "$WL_NS") && kill -KILL "$p" 2>/dev/null
	done
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host_ns() { readlink "/proc/$("$DM" testhost pid --prefix "$PREFIX" "$1")/ns/pid"; }
host_procs() {	# H: "PID NSPID NSSID" of every live process in host H's pid namespace
	local want=${HOSTNS[$1]} d
	want=${want//[/\\[}
	want=${want//]/\\]}
	for d in $(find /proc/[0-9]*/ns/pid -maxdepth 0 -lname "$want" 2>/dev/null); do
		d=${d%/ns/pid}
		awk -v p="${d#/proc/}" '/^NSpid:/ { n = $NF } /^NSsid:/ { s = $NF } /^State:/ { z = $2 }
			END { if (z != "Z" && n != "") print p, n, s }' "$d/status" 2>/dev/null
	done
	return 0	# a process that ended meanwhile is not an error
}
host_holds() {	# H NSPID: a process of H (a zombie too) has NSPID as its pid, group or session
	local want=${HOSTNS[$1]} d
	want=${want//[/\\[}
	want=${want//]/\\]}
	for d in $(find /proc/[0-9]*/ns/pid -maxdepth 0 -lname "$want" 2>/dev/null); do
		awk -v n="$2" '/^NS(pid|pgid|sid):/ && $NF == n { f = 1 } END { exit !f }' "${d%/ns/pid}/status" 2>/dev/null && return 0
	done
	return 1
}
host_pid() {	# H NSPID: the pid here of NSPID in H
	host_procs "$1" | awk -v n="$2" '$2 == n && !found { print $1; found = 1 } END { exit !found }'
}

# ---------------------------------------------------------------- state

# last report of the workload: "COUNTER HOST"
last_report() { awk 'NF >= 3 && $1 ~ /^[0-9]+$/ { c = $1; h = $2 } END { print c, h }' "$WL_LOG"; }
reports_from() {	# HOST N: a report from HOST with a counter above N
	local r
	r=$(last_report)
	[[ ${r#* } == "$PREFIX-$1" ]] && ((${r%% *} > $2))
}

daemon_stat() {	# H: "fds threads rss_kb" of host H's dmigrated
	local p=${DPID[$1]}
	echo "$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) $(awk '/^Threads:/ { t = $2 } /^VmRSS:/ { r = $2 } END { print t, r }' "/proc/$p/status")"
}
# processes of a host that are not the workload's (its session)
other_procs() { host_procs "$1" | awk -v s="$WL_NS" '$3 != s' | wc -l; }
netns_of_hosts() { local h; for h in a b; do host_procs "$h" | while read -r p _; do readlink "/proc/$p/ns/net"; done; done | sort -u | wc -l; }
cgroups() { find /sys/fs/cgroup -type d -name '*dmigrat*' -newer "$WORK/start" 2>/dev/null | wc -l; }
tmpfiles() {
	local n
	n=$(find "$WORK/wd-a" "$WORK/wd-b" -mindepth 1 2>/dev/null | wc -l)
	for h in a b; do n=$((n + $(in_host "$h" find /var/lib/dmigrate -mindepth 2 2>/dev/null | wc -l))); done
	echo "$n"
}
declare -A FD0=()	# each daemon's fds once ready, before any migration
daemon_fds() { find "/proc/${DPID[$1]}/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
snapshot() {	# NAME: every figure, one "key=value" a word
	local h s
	for h in a b; do
		# a session that just ended is closed by the daemon's main loop a
		# moment later (its channels, the tree's pidfds): wait for the fds
		# it had before any migration, a while; a leak still shows
		wait_until 10 eval '(($(daemon_fds "$h") <= FD0[$h]))'
		read -r fd th rss <<<"$(daemon_stat "$h")"
		s+="dmigrated-$h.fds=$fd dmigrated-$h.threads=$th dmigrated-$h.rss_kb=$rss host-$h.other_procs=$(other_procs "$h") "
	done
	s+="netns=$(netns_of_hosts) cgroups=$(cgroups) tmpfiles=$(tmpfiles)"
	echo "$s" >"$WORK/snap.$1"
}
snapval() { tr ' ' '\n' <"$WORK/snap.$1" | sed -n "s/^$2=//p"; }

# ---------------------------------------------------------------- setup

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
if ! "$DM" testhost up --prefix "$PREFIX" >"$WORK/up.log" 2>&1; then
	fail soak/setup "cannot make the test hosts: $(tail -n 1 "$WORK/up.log")"
	echo "$NPASS passed, $NFAIL failed, 0 skipped"
	exit 1
fi
declare -A HOSTNS=([a]=$(host_ns a) [b]=$(host_ns b))
"$DM" keygen "$KEY" >/dev/null
touch "$WORK/start"
mkdir -p "$WORK/wd-a" "$WORK/wd-b"
for h in a b; do
	DPID[$h]=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated-$h.log" "$h" -- \
		"${DMD[@]}" --listen "${ADDR[$h]}:7070" --key "$KEY" --ready-file "$WORK/ready-$h" -v)
	wait_until 20 test -e "$WORK/ready-$h" || { fail soak/setup "dmigrated in $h did not start"; echo "$NPASS passed, $NFAIL failed, 0 skipped"; exit 1; }
	FD0[$h]=$(daemon_fds "$h")
done
: >"$WL_LOG"
wpid=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WL_LOG" a -- busybox sh "$REPO/tests/e2e/lib/counter.sh")
WL_NS=$(awk '/^NSpid:/ { print $NF }' "/proc/$wpid/status")
wait_until 20 reports_from a 2 || { fail soak/setup "the workload does not report"; echo "$NPASS passed, $NFAIL failed, 0 skipped"; exit 1; }

# ---------------------------------------------------------------- one migration

# migrate_once I FROM: the I-th migration from host FROM; prints the host
# the workload runs on afterwards; a FAIL line says what went wrong
migrate_once() {
	local i=$1 from=$2 to mode cut= t before c rc marks=$WORK/marks out=$WORK/migrate.out expect_to
	to=$(other "$from")
	mode=${MODES[$((i % 4))]}
	# two in ten: a link cut, before the switch-over (5, 15, ...) or after it (8, 18, ...)
	((i % 10 == 5)) && cut=before
	((i % 10 == 8)) && cut=after
	[[ $cut == after ]] && mode=post-copy	# a cut after the switch-over is waited out in post-copy
	t="soak/$i/$from-$to/$mode${cut:+/cut-$cut}"
	before=$(last_report)
	c=${before%% *}
	local -a env=()
	local t0=$SECONDS
	rm -rf "$marks"
	mkdir -p "$marks"
	case $cut in
	before) env=(DMIGRATE_TEST_PAUSE=src-frozen DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=3000) ;;
	after) env=(DMIGRATE_TEST_PAUSE=src-resumed DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=500) ;;
	esac
	in_host "$from" env "${env[@]}" "$DM" migrate "pid:$WL_NS" --to "${ADDR[$to]}:7070" --key "$KEY" \
		--mode "$mode" --work-dir "$WORK/wd-$from" --quiet >"$out" 2>&1 &
	local mpid=$!
	if [[ -n $cut ]]; then
		if wait_until 60 test -e "$marks/${env[0]#*=}"; then
			in_host "$from" ip link set "$PREFIX-${from}0" down
			[[ $cut == after ]] && sleep 3
			[[ $cut == before ]] && wait "$mpid"
			in_host a ip link set "$PREFIX-a0" up
			in_host b ip link set "$PREFIX-b0" up
		fi
	fi
	wait "$mpid"
	rc=$?
	expect_to=$to
	[[ $cut == before ]] && expect_to=$from
	if [[ $cut == before ]] && ((rc == 0)); then
		fail "$t" "the migration succeeded although the link was cut before the switch-over"
	elif [[ $cut == before ]] && ! grep -q 'runs on here' "$out"; then
		fail "$t" "no rollback message: $(tail -n 1 "$out")"
	elif [[ $cut != before ]] && ((rc != 0)); then
		fail "$t" "exit $rc: $(grep -v '^(' "$out" | tail -n 1)"
	elif ! wait_until 30 reports_from "$expect_to" "$c"; then
		fail "$t" "the workload does not report from $expect_to after $c (last: $(last_report))"
	elif grep -qv ' ok$' <(awk 'NF >= 3 && $1 ~ /^[0-9]+$/' "$WL_LOG"); then
		fail "$t" "a report is not ok: $(awk 'NF >= 3 && $1 ~ /^[0-9]+$/ && $3 != "ok"' "$WL_LOG" | head -n 1)"
	elif ! wait_until 15 eval '! host_pid "$(other "$expect_to")" "$WL_NS" >/dev/null'; then
		fail "$t" "a copy of the workload is left in $(other "$expect_to")"
	elif ! wait_until 15 eval '! host_holds "$(other "$expect_to")" "$WL_NS"'; then
		# its pid must be free there for the way back
		fail "$t" "pid $WL_NS is still held in $(other "$expect_to") (a zombie, or its group or session)"
	else
		log "$t: ok ($(last_report)), $((SECONDS - t0)) s"
		pass "$t"
	fi
	# where it runs, whatever was expected
	host_pid "$expect_to" "$WL_NS" >/dev/null || expect_to=$(other "$expect_to")
	echo "$expect_to" >"$WORK/where"
}

# ---------------------------------------------------------------- main

where=a
start=$SECONDS
for ((i = 1; i <= COUNT; i++)); do
	migrate_once "$i" "$where"
	where=$(cat "$WORK/where")
	# the workload must run somewhere to go on
	host_pid "$where" "$WL_NS" >/dev/null || { fail soak/workload "the workload is gone (last: $(last_report))"; break; }
	((i == 2)) && snapshot before
	((i == COUNT / 2 && i > 2)) && snapshot middle
done
if [[ ! -e $WORK/snap.before ]]; then
	fail soak/no-leaks "the soak stopped before its first figures"
	echo "$NPASS passed, $NFAIL failed, 0 skipped"
	exit 1
fi
snapshot after
echo "# $COUNT migrations in $((SECONDS - start)) s"
echo "# before (after 2 migrations): $(cat "$WORK/snap.before")"
[[ -e $WORK/snap.middle ]] && echo "# middle ($((COUNT / 2)) migrations):  $(cat "$WORK/snap.middle")"
echo "# after  ($COUNT migrations):  $(cat "$WORK/snap.after")"
# the figures that must not change, and RSS at most +16 MiB
t=soak/no-leaks
r=
for k in $(tr ' ' '\n' <"$WORK/snap.before" | sed 's/=.*//'); do
	b=$(snapval before "$k") a=$(snapval after "$k")
	case $k in
	*.rss_kb) ((a > b + 16384)) && r+=" $k $b -> $a" ;;
	*) [[ $a == "$b" ]] || r+=" $k $b -> $a" ;;
	esac
done
for h in a b; do
	[[ -d /proc/${DPID[$h]} ]] || r+=" dmigrated in $h died"
done
if [[ -n $r ]]; then fail "$t" "leaked:$r"; else pass "$t"; fi
# the daemons stop as on SIGTERM; in a sanitizer build, LeakSanitizer then
# reports what they still hold that nothing points to
t=soak/clean-exit
r=
for h in a b; do
	p=${DPID[$h]}
	kill -TERM "$p" 2>/dev/null
	wait_until 30 eval '[[ ! -d /proc/$p || $(awk "{ print \$3 }" /proc/$p/stat 2>/dev/null) == Z ]]' || r+=" dmigrated in $h did not stop on SIGTERM"
	DPID[$h]=
	grep -qE 'ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:' "$WORK/dmigrated-$h.log" &&
		r+=" dmigrated in $h: $(grep -m1 -E 'ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:|SUMMARY' "$WORK/dmigrated-$h.log")"
done
if [[ -n $r ]]; then fail "$t" "$r"; else pass "$t"; fi
echo "$NPASS passed, $NFAIL failed, 0 skipped"
((NFAIL == 0))
