#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The gap a kept TCP client sees across a runc container migration, and
# where it goes: a service of tests/containers/mkbundle.sh in host a of the
# container test bed (docs/net.md, "Test hosts"), tests/containers/lib/client.py
# in the client namespace keeping ONE connection and sending a request every
# 5 ms, `dmigrate migrate runc:ID` to a dmigrated in host b; tcpdump in the
# client namespace records the connection, ARP and ICMPv6 meanwhile.
#
#   bench/tcpgap.sh [--build DIR] [--service redis|memcached|python-http|nginx]
#                   [--modes "stop-and-copy post-copy"] [--runs N]
#                   [--compare DMIGRATE] [--out FILE] [--pcap-dir DIR] [-v]
#                   [--client keep|fresh|stream]
#
# --client fresh: every request on a connection of its own (client.py
# --fresh: a client without keep-alive), so new connections are made
# throughout the migration; stream (redis, memcached): ONE connection on
# which requests go every 5 ms without waiting for the answers (client.py
# --stream); keep (default): ONE connection, a request every 5 ms after
# the answer to the last.
#
# --compare DMIGRATE: another dmigrate binary (an older build), run as
# variant "other" alternated with this build's ("this") within each run and
# mode, so that both meet the same load of this shared machine.
# Per run one JSON line on stdout (and appended to --out): mode, variant,
# gap_ms (the client's largest time between two answers), downtime_ms (the
# migration's --stats), excess_ms (gap - downtime), the destination lock's
# drops (net_lock_tcp_dropped_in/out, absent for builds without them), and
# from the capture: the segments each side sent again (same sequence
# range) during the gap.  -v: the capture around the largest gap (times in
# ms from the migration's start).  Then medians per mode and variant.
# Needs root and tcpdump (without it: no capture, the rest still runs).
set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=$REPO/build SVC=redis MODES="stop-and-copy post-copy" RUNS=3 OTHER='' OUT='' PCAPS='' VERBOSE=0 CLIENT=keep
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--service) SVC=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--compare) OTHER=$2; shift ;;
	--out) OUT=$2; shift ;;
	--pcap-dir) PCAPS=$2; shift ;;
	--client) CLIENT=$2; shift ;;
	-v) VERBOSE=1 ;;
	-h | --help) sed -n '4,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "tcpgap.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $CLIENT == @(keep|fresh|stream) ]] || { echo "tcpgap.sh: --client keep, fresh or stream, not $CLIENT" >&2; exit 2; }
DM=$BUILD/dmigrate
[[ -x $DM ]] || { echo "tcpgap.sh: no $DM (--build DIR)" >&2; exit 2; }
PREFIX=${DM_E2E_PREFIX:-dmtg}
CT_DIR=$REPO/tests/containers
# shellcheck source=../tests/containers/lib.sh
source "$CT_DIR/lib.sh"
PORT=$(ctr_port "$SVC") || { echo "tcpgap.sh: no service $SVC" >&2; exit 2; }
HAVE_TCPDUMP=0
command -v tcpdump >/dev/null && HAVE_TCPDUMP=1
WORK=$(mktemp -d /tmp/dmigrate-tcpgap.XXXXXX)
ID=$PREFIX-gap N=40
cleanup() {
	ctr_delete a "$ID"
	ctr_delete b "$ID"
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
"$DM" testhost up --prefix "$PREFIX" >"$WORK/up.log" 2>&1 || { echo "testhost up: $(tail -1 "$WORK/up.log")" >&2; exit 1; }
bundle=$BUILD/containers-bundles/$SVC
"$CT_DIR/mkbundle.sh" "$SVC" "$bundle" >/dev/null || exit 1
"$DM" keygen "$WORK/key" >/dev/null || exit 1

# one_run MODE VARIANT BINARY: one migration, one JSON line; a failure ends
# the whole run (what it left in the test hosts goes with them)
fail() {
	jq -cn --arg e "$1" '{error: $e}'
	exit 1
}
one_run() {
	local mode=$1 var=$2 bin=$3 out rc t0 tdpid kpid d=$WORK/run gap down
	rm -rf "$d" && mkdir -p "$d"
	ctr_delete a "$ID"
	ctr_delete b "$ID"
	ctr_host b "$bin" daemon --listen "$(ctr_info b.seg_addr):7070" --key "$WORK/key" --state-dir "$d/state" \
		--ready-file "$d/ready" --once >"$d/dmd.log" 2>&1 &
	out=$(ctr_start a "$ID" "$bundle" $N /dev/null) || fail "start: $out"
	ctr_ask "$SVC" "$(ctr_addr $N)" ctr_client >/dev/null || fail "$SVC does not answer"
	wait_for 20 test -s "$d/ready" || fail "no dmigrated in b: $(cat "$d/dmd.log")"
	if ((HAVE_TCPDUMP)); then
		ip netns exec "$PREFIX-c" tcpdump -i "$PREFIX-c0" -n -U -w "$d/c.pcap" \
			"tcp port $PORT or arp or icmp6" >/dev/null 2>&1 &
		tdpid=$!
	fi
	if [[ $CLIENT != keep ]]; then
		ctr_keep_start "$SVC" "$(ctr_addr $N)" "$d/keep" "--$CLIENT"
	else
		ctr_keep_start "$SVC" "$(ctr_addr $N)" "$d/keep"
	fi
	kpid=$CTR_KEEP_PID
	wait_for 30 ctr_keep_past "$d/keep" 100 || fail "the client does not start: $(cat "$d/keep.out")"
	t0=$EPOCHREALTIME
	ctr_host a "$bin" migrate "runc:$ID" --to "$(ctr_info b.seg_addr):7070" --key "$WORK/key" --mode "$mode" \
		--quiet --stats "$d/stats.json" >"$d/mig.log" 2>&1
	rc=$?
	local req
	req=$(ctr_keep_field "$d/keep" requests)
	wait_for 60 ctr_keep_past "$d/keep" $((req + 100))
	ctr_keep_stop "$kpid" "$d/keep"
	((HAVE_TCPDUMP)) && { kill "$tdpid"; wait "$tdpid"; }
	wait
	((rc == 0)) || fail "migrate: $(cat "$d/mig.log")"
	gap=$(ctr_keep_field "$d/keep" max_gap_ms)
	down=$(jq -r .downtime_ms "$d/stats.json")
	local cap='{}'
	if ((HAVE_TCPDUMP)); then
		[[ -n $PCAPS ]] && mkdir -p "$PCAPS" && cp "$d/c.pcap" "$PCAPS/$SVC-$mode-$var-$(date +%H%M%S).pcap"
		cap=$(tcpdump -n -tt -r "$d/c.pcap" 2>/dev/null | python3 "$HERE/lib/tcpgap-timeline.py" "$t0" \
			"$(ctr_addr $N).$PORT" $((VERBOSE)) 2>"$d/timeline") || cap='{}'
		((VERBOSE)) && sed 's/^/# /' "$d/timeline" >&2
	fi
	jq -cn --arg mode "$mode" --arg var "$var" --arg svc "$SVC" --argjson gap "$gap" --argjson down "$down" \
		--slurpfile st "$d/stats.json" --argjson cap "$cap" --arg client "$CLIENT" \
		'{service: $svc, client: $client, mode: $mode, variant: $var, gap_ms: ($gap * 10 | round / 10),
		  downtime_ms: ($down * 10 | round / 10), excess_ms: (($gap - $down) * 10 | round / 10),
		  net_lock_tcp_dropped_in: $st[0].destination.net_lock_tcp_dropped_in,
		  net_lock_tcp_dropped_out: $st[0].destination.net_lock_tcp_dropped_out,
		  packets_kept: $st[0].dump.net_lock_packets.kept,
		  packets_delivered: $st[0].destination.net_packets_delivered,
		  net_lock_ms: $st[0].dump.net_lock_ms, accept_wait_ms: $st[0].dump.accept_wait_ms} + $cap'
}
# wait_for SECONDS CMD...
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.1
	done
}

results=$WORK/results.jsonl
for ((r = 1; r <= RUNS; r++)); do
	for mode in $MODES; do
		variants=("this $DM")
		[[ -n $OTHER ]] && { ((r % 2)) && variants=("this $DM" "other $OTHER") || variants=("other $OTHER" "this $DM"); }
		for v in "${variants[@]}"; do
			# shellcheck disable=SC2086  # "VARIANT BINARY"
			line=$(one_run $mode $v) || { echo "$line"; exit 1; }
			echo "$line" | tee -a "$results"
			[[ -n $OUT ]] && echo "$line" >>"$OUT"
		done
	done
done
jq -rs 'group_by([.mode, .variant])[] |
	(sort_by(.gap_ms) | .[length / 2 | floor]) as $g | (sort_by(.excess_ms) | .[length / 2 | floor]) as $e |
	"# median \(.[0].mode) \(.[0].variant) (\(length) runs): gap \($g.gap_ms) ms, downtime \($g.downtime_ms) ms, gap - downtime \($e.excess_ms) ms"' \
	"$results"
