#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Moving a runc container of a real service between the two test hosts of
# `dmigrate testhost` over a 1 Gbit/s link: the largest gap a client sees and
# the total time, for dmigrate's post-copy against CRIU 4.1's lazy migration
# of the same container through runc, and against dmigrate's post-copy of a
# bare process of the same memory size (issue 8, "Targets").
#
#   bench/runc-bench.sh [--build DIR] [--runs N] [--workloads LIST]
#                       [--variants LIST] [--mb MIB] [--state fresh|warm|as-is]
#                       [--redis-dict rehashing|at-rest]
#                       [--criu PATH] [--out FILE] [--keep]
#
# Test hosts: `dmigrate testhost up --tbf` (docs/net.md): each host its own
# network, mount, PID, UTS and cgroup namespaces, its own runc root and
# cgroups; the link 198.18.0.1 <-> .2 is a 1 Gbit/s token bucket each way
# and carries every method's pages; the containers' segment (a bridge in
# each host, the two linked) carries the client's traffic.  The bundle and
# its rootfs are on shared storage (the same path in both hosts).
#
# Workloads (tests/containers/mkbundle.sh bundles; a fresh container in
# host a, its veth on a's bridge, for every run and method):
#   redis      --mb MiB of keys (default 1024: DEBUG POPULATE of 1 KiB
#              values); --redis-dict says in what state its main hash
#              table is while it moves:
#                rehashing (default): as many keys as the power of two
#                  nearest MIB*1024 (1048576 for 1024), so the client's
#                  first new key doubles the table and redis moves its
#                  entries to the new one for about a minute, through the
#                  migration: every cron tick (10 a second) and every
#                  command move entries, which touches pages all over the
#                  heap (the hard case of a post-copy);
#                at-rest: 15/16 of that, so the table has room for the
#                  client's keys and nothing is rehashed
#   memcached  --mb MiB of data (MIB*1024 keys of 1 KiB, its cache sized
#              to hold them)
#   nginx      a master and two workers serving /srv
# The client (tests/containers/lib/client.py keep, in the client namespace)
# sends a request every 5 ms on ONE kept connection (redis, memcached: SET
# s:I; nginx: GET /index.html, keep-alive), never reconnects, and at the
# end reads back every value it wrote on that connection.
#
# Variants (methods), alternated within each run (the order rotates):
#   dmigrate   `dmigrate migrate runc:ID --mode post-copy` from host a to a
#              dmigrated in host b
#   criu-lazy  CRIU 4.1's post-copy through runc: `runc --criu CRIU
#              checkpoint --lazy-pages --page-server A:PORT --status-fd`
#              in a (pages stay behind a's page server), the images
#              without the pages copied to b's directory, `criu lazy-pages
#              --page-server` in b and `runc restore --lazy-pages -d` in b
#              (runc's own root); runc makes the container's network
#              namespace empty, so b's config has a prestart hook that
#              makes its veth again (same MAC and address, on b's bridge)
#              as a CNI plugin would; total: until the last page moved
#   (DMIGRATE_FAULT_TRACE=FILE and DMIGRATE_FAULT_TRACE_MS in the environment are passed to host b's
#   dmigrated: the faults after the switch-over, bench/faulttrace.py FILE, with
#   DMIGRATE_FAULT_TRACE_PC=1 the code that faulted, bench/faulttrace.py --list; DMD_VERBOSE=1: it logs
#   with -v, kept with --keep)
#   dmigrate:VAR=VAL[:VAR=VAL...]
#              the same with these variables in the environment of the
#              source's `dmigrate migrate` (its knobs, e.g. DMIGRATE_CHASE=0:
#              no pointer chasing), to compare settings in one run;
#              DM_BIN=PATH runs that dmigrate as the source instead (another
#              build: the destination is this build's dmigrated, which
#              serves an older source as it asks); DMD_BIN=PATH migrates to
#              a dmigrated of that dmigrate instead (one more daemon in host
#              b, started with the other), so that a change on both sides is
#              compared with its base in one run:
#              dmigrate:DM_BIN=OLD/dmigrate:DMD_BIN=OLD/dmigrate
#   bare       dmigrate's post-copy of a bare process (bench/migrate_hog.c,
#              idle) of the container's memory size (its processes' RSS as
#              measured in an earlier run of the workload), in host a's
#              network namespace: its gap is the largest between its own
#              1 ms heartbeats
#   bare-service the same service (redis, memcached; not nginx) as a bare
#              process, not in a container: the host's binary with the
#              container's arguments on another port, in host a's network
#              namespace, loaded the same way, moved by `dmigrate migrate
#              pid:PID --mode post-copy`; no client keeps a connection
#              (its address stays in a), so only its downtime_ms counts:
#              what the container adds to the same service's
# --criu: default /opt/criu-baseline/bin/criu
# (/work/shared/tools/install-criu-baseline.sh).
# --state: the machine's memory before each method: fresh (page cache
# dropped, 3 s for free page reporting: each page the destination takes is
# backed anew), warm (MIB MiB written and deleted in /dev/shm: backed
# memory), as-is (default: not controlled).  It is printed with the table.
#
# gap_ms: the largest time between two right answers of the client (bare:
# between two heartbeats, minus their 1 ms period) that overlaps the
# method's run, from its start to its end (a stall of the machine before
# the method began is not the method's); switch_gap_ms: the gap that spans
# the switch-over (the source's RESUMED; CRIU: its largest), which a stall
# of the machine later in the run does not hide; downtime_ms: the
# engine's own (freeze to resume, dmigrate's --stats; none for CRIU);
# total_ms: from the method's start until every page has moved.  One JSON
# line per run and method on stdout (and appended to --out), then the
# medians and their ratios, and for dmigrate's methods the medians of its
# steps (the source's dump and state, the destination's restore by phase,
# RESUMED to COMMIT, COMMIT to the tree running and the lock's opening)
# and where the client's gap that spans the resume lay (the largest, or one
# the client noted; it notes when each ended): from its start to the
# freeze, the engine's downtime, RESUMED to COMMIT, and from COMMIT to the
# answer that ended it (the service's first work on the destination: its
# faults).  A run whose largest gap lay later (a stall once the push began)
# and which noted none that spans the resume is left out of those parts,
# and the line says how many were.  DM_E2E_PREFIX names the test hosts
# (default dmrb).
set -u -o pipefail
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=
RUNS=3
WORKLOADS="redis memcached nginx"
VARIANTS="dmigrate criu-lazy bare"
MB=1024
REDIS_DICT=rehashing
STATE=as-is
OUT=
CRIU=/opt/criu-baseline/bin/criu
KEEP=0

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--workloads) WORKLOADS=$2; shift ;;
	--variants) VARIANTS=$2; shift ;;
	--mb) MB=$2; shift ;;
	--redis-dict) REDIS_DICT=$2; shift ;;
	--state) STATE=$2; shift ;;
	--out) OUT=$2; shift ;;
	--criu) CRIU=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '4,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "runc-bench: unknown argument $1 (--help)" >&2; exit 2 ;;
	esac
	shift
done
[[ -n $BUILD ]] || BUILD=$REPO/build
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "runc-bench: no build dir (--build DIR)" >&2; exit 2; }
DM=$BUILD/dmigrate
[[ -x $DM ]] || { echo "runc-bench: no dmigrate in $BUILD (--build DIR)" >&2; exit 2; }
((EUID == 0)) || { echo "runc-bench: needs root" >&2; exit 2; }
[[ $REDIS_DICT == @(rehashing|at-rest) ]] || { echo "runc-bench: --redis-dict rehashing|at-rest" >&2; exit 2; }
[[ $STATE == @(fresh|warm|as-is) ]] || { echo "runc-bench: --state fresh|warm|as-is" >&2; exit 2; }
[[ $MB =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "runc-bench: --mb and --runs are positive numbers" >&2; exit 2; }
for w in $WORKLOADS; do
	[[ $w == @(redis|memcached|nginx) ]] || { echo "runc-bench: unknown workload $w" >&2; exit 2; }
done
for v in $VARIANTS; do
	[[ $v == @(dmigrate|criu-lazy|bare|bare-service) || $v =~ ^dmigrate(:[A-Z_][A-Z0-9_]*=[^:[:space:]]*)+$ ]] ||
		{ echo "runc-bench: unknown variant $v" >&2; exit 2; }
done
[[ " $VARIANTS " == *" criu-lazy "* && ! -x $CRIU ]] &&
	{ echo "runc-bench: no CRIU at $CRIU (sh /work/shared/tools/install-criu-baseline.sh, or --criu PATH)" >&2; exit 2; }
for t in runc jq ip nsenter redis-cli cc; do
	command -v "$t" >/dev/null || { echo "runc-bench: $t not found (scripts/deps.sh)" >&2; exit 2; }
done

PREFIX=${DM_E2E_PREFIX:-dmrb}
# shellcheck source=../tests/containers/lib.sh
source "$REPO/tests/containers/lib.sh"
WORK=$(mktemp -d /tmp/dmigrate-runcbench.XXXXXX)
chmod 755 "$WORK"
DMD_PID=
declare -A DMD_PORT=()	# DMD_BIN path -> the port of its dmigrated in host b
DMD_PIDS=
HOG_PID=
CUR_ID=
LAZY_PIDS=

kill_hog() {
	[[ -n $HOG_PID ]] || return 0
	local init want d
	kill -KILL "$HOG_PID" 2>/dev/null
	# its copy in host b has the same pid number in b's pid namespace
	if init=$("$DM" testhost pid --prefix "$PREFIX" b 2>/dev/null); then
		want=$(readlink "/proc/$init/ns/pid")
		for d in /proc/[0-9]*; do
			[[ $(readlink "$d/ns/pid" 2>/dev/null) == "$want" ]] || continue
			[[ $(awk '/^NSpid:/ { print $NF }' "$d/status" 2>/dev/null) == "$HOG_PID" ]] &&
				kill -KILL "${d#/proc/}" 2>/dev/null
		done
	fi
	HOG_PID=
}
cleanup() {
	[[ -n $LAZY_PIDS ]] && kill -KILL $LAZY_PIDS 2>/dev/null
	[[ -n $CUR_ID ]] && { ctr_delete a "$CUR_ID"; ctr_delete b "$CUR_ID"; }
	kill_hog
	[[ -n $DMD_PID ]] && kill "$DMD_PID" 2>/dev/null
	[[ -n $DMD_PIDS ]] && kill $DMD_PIDS 2>/dev/null
	if ((KEEP)); then
		echo "# kept: test hosts $PREFIX (dmigrate testhost down --prefix $PREFIX), $WORK" >&2
	else
		"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "# $*" >&2; }
now_ms() { date +%s%3N; }
# wait_until SECONDS CMD...
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.1
	done
}

t0=$SECONDS
"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
"$DM" testhost up --prefix "$PREFIX" --tbf >"$WORK/up.log" 2>&1 || { echo "runc-bench: testhost up: $(tail -1 "$WORK/up.log")" >&2; exit 1; }
LINK_A=$(ctr_info a.addr)
ADDR_B=$(ctr_info b.addr)
HOST_A_SEG=$(ctr_info a.seg_addr)	# host a on the containers' segment (bare-service)
"$DM" keygen "$WORK/key" >/dev/null || exit 1
DMD_PID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
	env ${DMIGRATE_FAULT_TRACE:+DMIGRATE_FAULT_TRACE=$DMIGRATE_FAULT_TRACE} \
	${DMIGRATE_FAULT_TRACE_MS:+DMIGRATE_FAULT_TRACE_MS=$DMIGRATE_FAULT_TRACE_MS} "$DM" daemon ${DMD_VERBOSE:+-v} --listen "$ADDR_B:7070" --key "$WORK/key" --state-dir "$WORK/dmd-state" \
	--ready-file "$WORK/dmd.ready") || exit 1
wait_until 30 test -s "$WORK/dmd.ready" || { echo "runc-bench: dmigrated in b: $(tail -3 "$WORK/dmigrated.log")" >&2; exit 1; }
# the variants' other dmigrated (DMD_BIN=PATH), each on a port of its own
for v in $VARIANTS; do
	[[ $v == dmigrate:* ]] || continue
	IFS=: read -ra dkv <<<"${v#dmigrate:}"
	for e in "${dkv[@]}"; do
		[[ $e == DMD_BIN=* ]] || continue
		db=${e#DMD_BIN=}
		[[ -n ${DMD_PORT[$db]:-} ]] && continue
		[[ -x $db ]] || { echo "runc-bench: DMD_BIN=$db is not executable" >&2; exit 2; }
		dk=${#DMD_PORT[@]}
		DMD_PORT[$db]=$((7071 + dk))
		dp=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated-$dk.log" b -- \
			"$db" daemon --listen "$ADDR_B:${DMD_PORT[$db]}" --key "$WORK/key" --state-dir "$WORK/dmd-state-$dk" \
			--ready-file "$WORK/dmd-$dk.ready") || exit 1
		DMD_PIDS+=" $dp"
		wait_until 30 test -s "$WORK/dmd-$dk.ready" ||
			{ echo "runc-bench: $db's dmigrated in b: $(tail -3 "$WORK/dmigrated-$dk.log")" >&2; exit 1; }
	done
done
HOG=$WORK/migrate_hog
cc -O2 -pthread -o "$HOG" "$HERE/migrate_hog.c" || exit 1

# the bundles: mkbundle.sh's (idempotent); memcached's cache holds --mb MiB
# of 1 KiB items with their overhead
declare -A BUNDLE N_OF
bundle() {
	local out
	out=$("$REPO/tests/containers/mkbundle.sh" "$@" 2>&1) || { echo "runc-bench: mkbundle $*: $out" >&2; return 1; }
}
N=40
for w in $WORKLOADS; do
	case $w in
	memcached) bundle --mem $((MB * 3 / 2 + 64)) memcached "$BUILD/containers-bundles/memcached-bench" || exit 1
		src=$BUILD/containers-bundles/memcached-bench ;;
	*) bundle "$w" "$BUILD/containers-bundles/$w" || exit 1
		src=$BUILD/containers-bundles/$w ;;
	esac
	# host a's config: the bundle's, its rootfs by absolute path, and
	# runc's CRIU options (annotation org.criu.config: a file of ours, not
	# /etc/criu/runc.conf) for the checkpoint; host b's for CRIU's restore:
	# the same, and a prestart hook that makes the veth (runc's restore
	# makes the network namespace empty; the hook runs before CRIU restores
	# the sockets)
	N_OF[$w]=$N
	mkdir -p "$WORK/bundle-$w-a" "$WORK/bundle-$w-b"
	jq --arg root "$src/rootfs" --arg conf "$WORK/criu-a.conf" \
		'.root.path = $root | .annotations["org.criu.config"] = $conf' \
		"$src/config.json" >"$WORK/bundle-$w-a/config.json" || exit 1
	jq --arg root "$src/rootfs" --arg conf "$WORK/criu-b.conf" --arg hook "$WORK/netup-hook.sh" \
		--arg v "$(ctr_veth $N)" --arg mac "$(ctr_mac $N)" --arg addr "$(ctr_addr $N)/24" \
		'.root.path = $root | .annotations["org.criu.config"] = $conf
		 | .hooks.prestart = [{path: $hook, args: [$hook, $v, $mac, $addr]}]' \
		"$src/config.json" >"$WORK/bundle-$w-b/config.json" || exit 1
	BUNDLE[$w]=$WORK/bundle-$w-a
	N=$((N + 1))
done
# tcp-established: the client's connection is dumped and restored (repair
# mode); skip-in-flight: a connection half made does not fail the dump
printf 'tcp-established\nskip-in-flight\n' >"$WORK/criu-a.conf"
printf 'tcp-established\n' >"$WORK/criu-b.conf"
cat >"$WORK/netup-hook.sh" <<'EOF'
#!/bin/sh
# OCI prestart hook (runc restore in host b): the container's veth as
# tests/containers/lib.sh's ctr_netup makes it.  $1 our end, $2 MAC, $3 ADDR/LEN;
# the container's state (its pid) on stdin.  CRIU locks the namespace only
# after this hook (--empty-ns network, as runc restores it): a packet of the
# client arriving in between would meet no socket and reset the connection.
# So the hook takes CRIU's own lock first (the rules of CRIU's net.c: only
# packets of its repair sockets, mark 0xC114, pass); CRIU's lock rewrites the
# chain and its unlock after the restore removes it and both jumps.
set -e
pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
lock='*filter
:CRIU - [0:0]
-I INPUT -j CRIU
-I OUTPUT -j CRIU
-A CRIU -m mark --mark 0xC114 -j ACCEPT
-A CRIU -j DROP
COMMIT'
echo "$lock" | nsenter -t "$pid" -n iptables-restore -w --noflush
echo "$lock" | nsenter -t "$pid" -n ip6tables-restore -w --noflush
ip link add "$1" type veth peer name eth0 netns "$pid"
ip link set "$1" master dmbr0 up
nsenter -t "$pid" -n sh -ec "ip link set lo up; ip link set eth0 address $2; ip addr add $3 dev eth0; ip link set eth0 up"
EOF
chmod 755 "$WORK/netup-hook.sh"
say "hosts and bundles ready in $((SECONDS - t0)) s; link: tbf 1gbit ($LINK_A <-> $ADDR_B); $("$CRIU" --version 2>/dev/null | head -1) through $(runc --version | head -1)"

# ---------------------------------------------------------------- workloads

declare -A RSS_MB
# the keys each workload is loaded with (wl_start runs in $(...))
# redis: the power of two nearest MB*1024 keys (its table full: the next
# key doubles it), or 15/16 of it (room for the client's keys)
REDIS_KEYS=1
while ((REDIS_KEYS * 3 / 2 < MB * 1024)); do REDIS_KEYS=$((REDIS_KEYS * 2)); done
[[ $REDIS_DICT == at-rest ]] && REDIS_KEYS=$((REDIS_KEYS / 16 * 15))
declare -A LOADED=([redis]=$REDIS_KEYS [memcached]=$((MB * 1024)) [nginx]=0)
# wl_start WORKLOAD ID: the container in host a, answering, filled
wl_start() {
	local w=$1 id=$2 n=${N_OF[$1]} out k
	out=$(ctr_start a "$id" "${BUNDLE[$w]}" "$n" /dev/null) || { echo "$out"; return 1; }
	out=$(ctr_ask "$w" "$(ctr_addr "$n")" ctr_client) || { echo "no answer: $out"; return 1; }
	k=${LOADED[$w]}
	case $w in
	redis)
		out=$(ctr_client redis-cli -h "$(ctr_addr "$n")" DEBUG POPULATE "$k" key 1024 2>&1)
		[[ $out == OK ]] || { echo "DEBUG POPULATE: $out"; return 1; } ;;
	memcached)
		out=$(ctr_load memcached "$(ctr_addr "$n")" "$k" 1024 2>&1) || { echo "load: $out"; return 1; } ;;
	esac
}
# wl_count WORKLOAD HOST ID: how many keys it holds (redis DBSIZE,
# memcached curr_items)
wl_count() {
	local n=${N_OF[$1]}
	case $1 in
	redis) ctr_client redis-cli -h "$(ctr_addr "$n")" DBSIZE 2>/dev/null ;;
	memcached) printf 'stats\r\nquit\r\n' | ctr_client busybox nc "$(ctr_addr "$n")" 11211 2>/dev/null |
		tr -d '\r' | awk '$2 == "curr_items" { print $3 }' ;;
	*) echo 0 ;;
	esac
}
# wl_rss HOST ID: the RSS of the container's processes, MiB
wl_rss() {
	local p kb=0 r
	for p in $(ctr_cgroup_pids "$1" "$2"); do
		r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		kb=$((kb + ${r:-0}))
	done
	echo $(((kb + 1023) / 1024))
}

# the memory state before a method (--state)
settle() {
	case $STATE in
	fresh)
		sync
		[[ -w /proc/sys/vm/drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches
		sleep 3 ;;
	warm)
		dd if=/dev/zero of="$WORK/warm" bs=1M count="$MB" status=none
		rm -f "$WORK/warm" ;;
	esac
}

# ---------------------------------------------------------------- methods
# v_NAME WORKLOAD ID RUN K: sets V_HOST (where it runs afterwards),
# V_TOTAL_MS, V_DETAIL (JSON), or V_ERR and returns 1

v_dmigrate() {
	local id=$2 t0 t1 out e bin=$DM port=7070
	local -a envs=() vars=()
	# dmigrate:VAR=VAL:...: the source's environment (DM_BIN: its binary;
	# DMD_BIN: the destination's, started at the beginning)
	[[ $V_NAME == *:* ]] && IFS=: read -ra envs <<<"${V_NAME#*:}"
	for e in "${envs[@]}"; do
		if [[ $e == DM_BIN=* ]]; then
			bin=${e#DM_BIN=}
		elif [[ $e == DMD_BIN=* ]]; then
			port=${DMD_PORT[${e#DMD_BIN=}]}
		else
			vars+=("$e")
		fi
	done
	rm -f "$WORK/stats.json"
	t0=$(now_ms)
	out=$(ctr_host a env "${vars[@]}" "$bin" migrate "runc:$id" --to "$ADDR_B:$port" --key "$WORK/key" --mode post-copy \
		--stats "$WORK/stats.json" --quiet 2>&1) || { V_ERR="dmigrate migrate: $out"; return 1; }
	t1=$(now_ms)
	V_HOST=b
	V_TOTAL_MS=$((t1 - t0))
	# the whole --stats of every run, kept with --keep
	cp "$WORK/stats.json" "$WORK/stats-$id.json" 2>/dev/null; echo "$out" > "$WORK/out-$id.txt"
	V_DETAIL=$(jq -c "$STATS_JQ" "$WORK/stats.json" 2>/dev/null) || V_DETAIL='{}'
}
# what the method's detail keeps of dmigrate's --stats: where the time went
# (the phases' timestamps, ms from the start), the faults and their latency
# and the container's steps on both sides (the frozen window's record; the
# destination's put-back, restore phases, what runs after COMMIT)
STATS_JQ='{downtime_ms, total_ms, bytes: .bytes.total, start_unix, start_mono_ms, timestamps, working_set, eager_presend, vma_check_ms, ns_check_ms, pagemap_scan_ms, frozen_scan_ms, server_load_ms, server_add_ms, state_send_ms, state_bytes, pages_on_demand, pages_pushed, pages_chased, chases_continued, fault_yields, fault_paced, fault_pace_gaveup, pages_prefetched,
	fault_requests, fault_latency_us, container_record_ms, container_record, container_record_beside_ms, container_record_wait_ms, dump,
	restore: (.restore // {} | {restore_ms, phases, container, start_mono_ms, state_first_ms, state_received_ms, restore_from_ms,
	resume_at_ms, before_restore, pages_written, pages_fetched, pages_lazy, store_wait_ms,
	pages_fetched_store, pages_fetched_source, fetch_source_ms}), after_commit: (.destination // {} | {held_to_resumed_ms, resumed_to_commit_ms, commit_to_running_ms,
	commit_to_detached_ms, commit_to_announced_ms, container_done_ms, unlock_ms, unlock_prepared, settle_ms})}'


v_criu_lazy() {
	local w=$1 id=$2 port=$((27100 + $3 * 10 + $4)) x=$WORK/lazy t0 t1 t2 t3 t4 out rc ckp lpd rd i
	rm -rf "$x"
	mkdir -p "$x/img" "$x/wa" "$x/wb"
	mkfifo "$x/status"
	t0=$(now_ms)
	# CRIU writes a byte on the status fd once its page server is ready
	(timeout 300 head -c1 "$x/status" >"$x/status.got") &
	rd=$!
	ctr_host a sh -c 'exec 3>"$1"; shift; exec "$@"' sh "$x/status" \
		runc --criu "$CRIU" checkpoint --lazy-pages --page-server "$LINK_A:$port" --status-fd 3 \
		--tcp-established --image-path "$x/img" --work-path "$x/wa" "$id" >"$x/checkpoint.out" 2>&1 &
	ckp=$!
	LAZY_PIDS=$ckp
	wait "$rd"
	[[ -s $x/status.got ]] || {
		kill "$ckp" 2>/dev/null; wait "$ckp"
		V_ERR="runc checkpoint --lazy-pages: $(tail -n 2 "$x/checkpoint.out" | tr '\n' ' ') $(grep -m2 Error "$x/wa/dump.log" 2>/dev/null | tr '\n' ' ')"
		return 1
	}
	t1=$(now_ms)
	# the images without the pages go to b's own directory (as they would
	# over the network: they are a few MiB)
	mkdir -p "$x/imgb"
	cp -a "$x/img/." "$x/imgb/"
	ctr_host b "$CRIU" lazy-pages --page-server --address "$LINK_A" --port "$port" -D "$x/imgb" \
		-W "$x/wb" -o lazy-pages.log >"$x/lazy.out" 2>&1 &
	lpd=$!
	LAZY_PIDS="$ckp $lpd"
	wait_until 30 test -S "$x/wb/lazy-pages.socket"
	out=$(ctr_runc b --criu "$CRIU" restore -d --lazy-pages --tcp-established --image-path "$x/imgb" \
		--work-path "$x/wb" --bundle "$WORK/bundle-$w-b" "$id" </dev/null 2>&1)
	rc=$?
	t2=$(now_ms)
	if ((rc != 0)); then
		kill "$lpd" "$ckp" 2>/dev/null
		wait "$lpd" "$ckp"
		LAZY_PIDS=
		V_ERR="runc restore --lazy-pages in b: $(tail -n 1 <<<"$out") $(grep -m3 Error "$x/wb/restore.log" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
	# every page moved: the lazy-pages daemon ends, then a's runc (bounded)
	for ((i = 0; i < 3000; i++)); do kill -0 "$lpd" 2>/dev/null || break; sleep 0.1; done
	t3=$(now_ms)
	kill "$lpd" 2>/dev/null
	wait "$lpd"
	rc=$?
	for ((i = 0; i < 600; i++)); do kill -0 "$ckp" 2>/dev/null || break; sleep 0.1; done
	kill "$ckp" 2>/dev/null
	wait "$ckp"
	t4=$(now_ms)
	LAZY_PIDS=
	((rc == 0)) || { V_ERR="criu lazy-pages in b: exit $rc: $(grep -m3 Error "$x/wb/lazy-pages.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
	V_HOST=b
	V_TOTAL_MS=$((t3 - t0))
	V_DETAIL="{\"dump_ms\": $((t1 - t0)), \"restore_ms\": $((t2 - t1)), \"pages_ms\": $((t3 - t2)), \"source_released_ms\": $((t4 - t0)), \"images_bytes\": $(du -sb "$x/img" | cut -f1)}"
	rm -rf "$x"
}

# largest gap between the heartbeats in FILE, ms, minus their 1 ms period;
# with FROM_MS TO_MS (wall clock), of the gaps that overlap that window only;
# with AT_MS too, the gap that spans that moment instead (null: none)
beat_gap() {
	python3 - "$@" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
lo, hi = (float(sys.argv[2]) * 1e6, float(sys.argv[3]) * 1e6) if len(sys.argv) > 3 else (0, float("inf"))
t = sorted(struct.unpack_from("<Q", d, i)[0] for i in range(0, len(d) - 7, 8))
if len(sys.argv) > 4:
    at = float(sys.argv[4]) * 1e6
    g = [(b - a) / 1e6 - 1 for a, b in zip(t, t[1:]) if a <= at <= b]
    print("%.1f" % g[0] if g else "null")
else:
    print("%.1f" % max(((b - a) / 1e6 - 1 for a, b in zip(t, t[1:]) if b >= lo and a <= hi), default=0))
EOF
}

# dmigrate's post-copy of the bare process HOG_PID from host a's network
# namespace (the machine's mounts and pids) to host b, --stats in stats.json
migrate_bare() {
	nsenter --net="/run/netns/$PREFIX-a" "$DM" migrate "pid:$HOG_PID" --to "$ADDR_B:7070" --key "$WORK/key" \
		--mode post-copy --stats "$WORK/stats.json" --quiet 2>&1
}

v_bare() {
	local w=$1 mib=${RSS_MB[$1]} beat=$WORK/beat t0 t1 out i gap at
	rm -f "$beat" "$WORK/hog.out" "$WORK/stats.json"
	# only host a's network namespace (the machine's mounts and pids), as
	# bench/migrate.sh runs it
	nsenter --net="/run/netns/$PREFIX-a" setsid "$HOG" "$mib" 0 "$beat" </dev/null >"$WORK/hog.out" 2>&1 &
	disown
	for ((i = 0; i < 1200; i++)); do grep -q '^ready' "$WORK/hog.out" 2>/dev/null && break; sleep 0.05; done
	HOG_PID=$(awk '/^ready/ { print $2 }' "$WORK/hog.out")
	[[ -n $HOG_PID ]] || { V_ERR="migrate_hog $mib did not start: $(cat "$WORK/hog.out")"; return 1; }
	sleep 1	# a second of steady state before
	t0=$(now_ms)
	out=$(migrate_bare) || { V_ERR="dmigrate migrate pid:$HOG_PID: $out"; kill_hog; return 1; }
	t1=$(now_ms)
	sleep 1	# and after
	gap=$(beat_gap "$beat" "$t0" "$t1")	# the migration's window, as the clients' (client.py)
	# and the one that spans the switch-over (the source's RESUMED)
	at=$(jq -r 'if .start_unix and .timestamps.resume then .start_unix * 1000 + .timestamps.resume else empty end' \
		"$WORK/stats.json" 2>/dev/null)
	V_SWGAP=null
	[[ -z $at ]] || V_SWGAP=$(beat_gap "$beat" "$t0" "$t1" "$at")
	kill_hog
	V_HOST=b
	V_TOTAL_MS=$((t1 - t0))
	V_GAP=$gap
	V_DETAIL=$(jq -c --argjson mib "$mib" "{mib: \$mib} + $STATS_JQ" "$WORK/stats.json" 2>/dev/null) ||
		V_DETAIL="{\"mib\": $mib}"
}

v_bare_service() {
	local w=$1 port pid t0 t1 out i
	local ns=/run/netns/$PREFIX-a
	rm -f "$WORK/stats.json"
	case $w in
	redis)
		port=6391
		nsenter --net="$ns" setsid /usr/bin/redis-server --bind 0.0.0.0 --port $port --protected-mode no \
			--save "" --appendonly no --dir "$WORK" --daemonize no --enable-debug-command yes \
			</dev/null >"$WORK/svc.out" 2>&1 & ;;
	memcached)
		port=11291
		nsenter --net="$ns" setsid /usr/bin/memcached -u root -l 0.0.0.0 -p $port -m $((MB * 3 / 2 + 64)) \
			</dev/null >"$WORK/svc.out" 2>&1 & ;;
	*) V_ERR="bare-service: redis and memcached only"; return 1 ;;
	esac
	disown
	for ((i = 0; i < 200; i++)); do
		pid=$(nsenter --net="$ns" ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1)
		[[ -n $pid ]] && break
		sleep 0.05
	done
	HOG_PID=${pid#pid=}
	[[ -n $HOG_PID ]] || { V_ERR="$w did not start: $(cat "$WORK/svc.out")"; return 1; }
	# loaded as the container (host a's address on the containers' segment)
	case $w in
	redis) out=$(ctr_client redis-cli -h "$HOST_A_SEG" -p $port DEBUG POPULATE "${LOADED[$w]}" key 1024 2>&1)
		[[ $out == OK ]] || { V_ERR="DEBUG POPULATE: $out"; kill_hog; return 1; } ;;
	memcached) out=$(ctr_client /usr/bin/python3 "$CTR_CLIENT" memcached "$HOST_A_SEG" load "${LOADED[$w]}" \
			--size 1024 --port $port 2>&1) || { V_ERR="load: $out"; kill_hog; return 1; } ;;
	esac
	sleep 1	# a second of steady state before
	t0=$(now_ms)
	out=$(migrate_bare) || { V_ERR="dmigrate migrate pid:$HOG_PID ($w): $out"; kill_hog; return 1; }
	t1=$(now_ms)
	kill_hog
	V_HOST=b
	V_TOTAL_MS=$((t1 - t0))
	V_DETAIL=$(jq -c "$STATS_JQ" "$WORK/stats.json" 2>/dev/null) || V_DETAIL='{}'
}

# ---------------------------------------------------------------- runs

emit() {
	echo "$1"
	[[ -z $OUT ]] || echo "$1" >>"$OUT"
}
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# one_run WORKLOAD VARIANT RUN K
one_run() {
	local w=$1 v=$2 r=$3 k=$4 id=$PREFIX-$1-$3$4 fn=v_${2%%:*} keep=$WORK/keep kpid='' ok=true err='' measure='{}' gap=null
	local line req n before=null after=null rss=null out i
	fn=${fn//-/_}
	V_HOST=a V_TOTAL_MS=0 V_DETAIL='{}' V_ERR='' V_GAP='' V_SWGAP=null V_NAME=$v
	if [[ $v == bare-service ]]; then
		settle
		if v_bare_service "$w"; then gap=null; else ok=false err=$V_ERR; fi
	elif [[ $v == bare ]]; then
		if [[ -z ${RSS_MB[$w]:-} ]]; then
			# no run of this workload measured it yet: a container only for that
			CUR_ID=$id
			if out=$(wl_start "$w" "$id"); then
				# its processes may not be listed in its cgroup yet: 0 is no measure
				for ((i = 0; i < 100; i++)); do
					RSS_MB[$w]=$(wl_rss a "$id")
					((RSS_MB[$w] > 0)) && break
					sleep 0.1
				done
			fi
			ctr_delete a "$id"
			CUR_ID=
			((${RSS_MB[$w]:-0} > 0)) || { unset "RSS_MB[$w]"; ok=false err="the workload does not start: $out"; }
		fi
		if $ok; then
			settle
			if v_bare "$w"; then gap=$V_GAP; else ok=false err=$V_ERR; fi
		fi
	else
		n=${N_OF[$w]}
		CUR_ID=$id
		if ! out=$(wl_start "$w" "$id"); then
			ok=false err="the workload does not start: $out"
		else
			rss=$(wl_rss a "$id")
			RSS_MB[$w]=$rss
			before=$(wl_count "$w" a "$id")
			ctr_keep_start "$w" "$(ctr_addr "$n")" "$keep"
			kpid=$CTR_KEEP_PID
			wait_until 60 ctr_keep_past "$keep" 20 || { ok=false err="the client does not start: $(cat "$keep.out")"; }
			if $ok; then
				settle
				sleep 1	# a second of steady state before
				# the client's window: the method, from its start to its end
				kill -USR1 "$kpid" 2>/dev/null
				if "$fn" "$w" "$id" "$r" "$k"; then
					kill -USR2 "$kpid" 2>/dev/null
					# until the client has had 40 more right answers (bounded:
					# a service that does not answer again is an error)
					req=$(ctr_keep_field "$keep" requests)
					wait_until 120 ctr_keep_past "$keep" $((req + 40)) ||
						{ ok=false err="no answer on the kept connection after the method: $(cat "$keep.out")"; }
				else
					kill -USR2 "$kpid" 2>/dev/null
					ok=false err=$V_ERR
				fi
			fi
			# a method that failed may have left the service gone: no read-back
			$ok || kill -KILL "$kpid" 2>/dev/null
			# SIGTERM: it reads back what it wrote, then prints its result
			ctr_keep_stop "$kpid" || { $ok && ok=false err="client: $(tail -n 1 "$keep.out")"; }
			measure=$(tail -n 1 "$keep.out" | jq -c . 2>/dev/null) || measure='{}'
			# the largest gap in the method's window (one the machine made
			# before the method began is not the method's)
			gap=$(jq -r '.window.max_gap_ms // null | if . == null then null else (. * 10 | round / 10) end' <<<"$measure")
			if $ok && [[ $v == criu-lazy ]] &&
				out=$(ctr_host b nsenter -t "$(ctr_pid b "$id")" -n iptables-save 2>&1) && [[ $out == *CRIU* ]]; then
				ok=false err="CRIU's network lock is left in the container's namespace"
			fi
			if $ok && [[ $(ctr_status "$V_HOST" "$id") != running ]]; then
				ok=false err="not running in $V_HOST afterwards: '$(ctr_status "$V_HOST" "$id")'"
			fi
			if $ok && [[ $w != nginx ]]; then
				after=$(wl_count "$w" "$V_HOST" "$id")
				# every key loaded is there, and the client's s:I besides
				[[ $after =~ ^[0-9]+$ ]] && ((after >= LOADED[$w])) ||
					{ ok=false err="$w holds $after keys afterwards, $before before"; }
			fi
		fi
		ctr_delete a "$id"
		ctr_delete b "$id"
		CUR_ID=
	fi
	[[ $before =~ ^[0-9]+$ ]] || before=null
	[[ $after =~ ^[0-9]+$ ]] || after=null
	line=$(jq -cn --arg w "$w" --arg v "$v" --argjson r "$r" --argjson ok "$ok" --arg err "$err" \
		--argjson gap "${gap:-null}" --argjson total "$V_TOTAL_MS" --argjson method "$V_DETAIL" \
		--argjson measure "$measure" --argjson rss "${rss:-null}" --arg state "$STATE" \
		--argjson before "$before" --argjson after "$after" --argjson mb "$MB" --arg dict "$([[ $w == redis ]] && echo "$REDIS_DICT")" \
		--argjson swgap "${V_SWGAP:-null}" \
		'# the client'"'"'s gap that spans the switch-over (the source'"'"'s
		 # RESUMED), [its end (wall clock), ms]: its largest or one it noted
		 def span: if (($v | startswith("dmigrate")) | not) or $method.start_unix == null or
			$method.timestamps.resume == null then null
			else ($method.start_unix + $method.timestamps.resume / 1000) as $at |
			[($measure.window.gaps[]? // empty), ($measure.gaps[]? // empty),
			 [$measure.window.max_gap_end_unix, $measure.window.max_gap_ms]] |
			map(select(.[0] != null and .[1] != null and .[0] >= $at and .[0] - .[1] / 1000 <= $at)) |
			if length == 0 then null else max_by(.[1]) end end;
		 # and the one of each method: CRIU'"'"'s largest, the heartbeats'"'"'
		 def swgap: if $v == "criu-lazy" then $gap
			elif ($v | startswith("dmigrate")) | not then $swgap
			elif span == null then null else (span[1] * 10 | round / 10) end;
		{bench: "runc", workload: $w, variant: $v, run: $r, ok: $ok, gap_ms: $gap, switch_gap_ms: swgap,
		  switch_gap_end_unix: (span // [null])[0],
		  downtime_ms: ($method.downtime_ms // null), total_ms: $total, state: $state, mb: $mb,
		  redis_dict: (if $dict == "" then null else $dict end), rss_mib: $rss, keys_before: $before, keys_after: $after, method: $method, client: $measure}
		 + (if $err != "" then {error: $err} else {} end)')
	emit "$line"
	echo "$line" >>"$RESULTS"
	return 0
}

read -ra VLIST <<<"$VARIANTS"
for ((r = 1; r <= RUNS; r++)); do
	for w in $WORKLOADS; do
		# the order of the methods rotates from run to run
		for ((k = 0; k < ${#VLIST[@]}; k++)); do
			v=${VLIST[$(((k + r - 1) % ${#VLIST[@]}))]}
			[[ $v == bare-service && $w == nginx ]] && continue
			say "run $r: $w, $v"
			one_run "$w" "$v" "$r" "$k"
		done
	done
done

say "memory state: $STATE; runs: $RUNS; --mb $MB; link: tbf 1gbit$([[ " $WORKLOADS " == *" redis "* ]] && echo "; redis: $REDIS_KEYS keys, its dict $REDIS_DICT")"
say "medians of the runs that succeeded (ms); gap: largest gap the client saw; down: the engine's own"
jq -rs '
	def med: sort | if length == 0 then null else .[length / 2 | floor] end;
	def f: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
	def ratio(a; b): if a == null or b == null or b == 0 then "-" else (a / b * 100 | round / 100 | tostring) end;
	group_by(.workload)[] as $g |
	($g | group_by(.variant) | map({key: .[0].variant, value: {
		gap: (map(select(.ok) | .gap_ms) | med), down: (map(select(.ok) | .downtime_ms) | map(select(. != null)) | med),
		sw: (map(select(.ok) | .switch_gap_ms) | map(select(. != null)) | med),
		total: (map(select(.ok) | .total_ms) | med), ok: (map(select(.ok)) | length), n: length,
		err: (map(select(.ok | not) | .error) | first)}}) | from_entries) as $m |
	($m | to_entries[] | "#   \($g[0].workload) \(.key): gap \(.value.gap | f)  at the switch-over \(.value.sw | f)  down \(.value.down | f)  total \(.value.total | f)  (\(.value.ok)/\(.value.n) ok)" +
		(if .value.err then "  first error: \(.value.err)" else "" end)),
	($g | map(select(.ok and .method.restore != null)) | group_by(.variant)[] | . as $v |
		def m(p): $v | map(p | select(. != null)) | med | f;
		# where the client'"'"'s gap that spans the resume lay (the run'"'"'s
		# switch_gap_end_unix, above): its end (the client'"'"'s wall clock)
		# against the source'"'"'s timestamps (ms from start_unix); a run
		# none of whose noted gaps spans it has no parts
		def gsel: if .switch_gap_end_unix == null then null else [.switch_gap_end_unix, .switch_gap_ms] end;
		def ge(t): if gsel == null then null else (gsel[0] - .method.start_unix) * 1000 - .method.timestamps[t] end;
		def gp(t): if gsel == null then null
			else .method.timestamps[t] - ((gsel[0] - .method.start_unix) * 1000 - gsel[1]) end;
		# the destination'"'"'s times on the source'"'"'s timeline (one machine:
		# CLOCK_MONOTONIC at each start)
		def dt(k): if .method.restore.start_mono_ms == null or .method.start_mono_ms == null or .method.restore[k] == null then null
			else .method.restore[k] + .method.restore.start_mono_ms - .method.start_mono_ms end;
		def sub(a; b): if a == null or b == null then null else a - b end;
		"#   \($v[0].workload) \($v[0].variant) steps: dump \(m(.method.timestamps | .dumped - .freeze))" +
		", state out \(m(.method.timestamps | .state_sent - .dumped))" +
		", restore \(m(.method.restore.restore_ms)) (" +
		([ "stub", "tree", "memory", "fds", "threads", "lazy", "creds" ] |
			map(. as $k | "\($k) \(m(.method.restore.phases[$k + "_ms"]))") | join(", ")) + ")" +
		", RESUMED->COMMIT \(m(.method.after_commit.resumed_to_commit_ms))" +
		", COMMIT->running \(m(.method.after_commit.commit_to_detached_ms))" +
		" (unlock \(m(.method.after_commit.unlock_ms)))" +
		"\n#   \($v[0].workload) \($v[0].variant) frozen: dump \(m(.method.timestamps | .dumped - .freeze))" +
		", state written \(m(.method.timestamps | .state_sent - .dumped))" +
		", its first frame in \(m(sub(dt("state_first_ms"); .method.timestamps.dumped)))" +
		", all in \(m(sub(dt("state_received_ms"); .method.timestamps.state_sent)))" +
		", restore from \(m(sub(dt("restore_from_ms"); dt("state_received_ms"))))" +
		", restore to the resume \(m(sub(dt("resume_at_ms"); dt("restore_from_ms"))))" +
		", RESUMED at the source \(m(sub(.method.timestamps.resume; dt("resume_at_ms"))))" +
		"\n#   \($v[0].workload) \($v[0].variant) gap by part: before the freeze \(m(gp("freeze")))" +
		", frozen to RESUMED \(m(.method.timestamps | .resume - .freeze))" +
		", to COMMIT \(m(.method.timestamps | .commit - .resume))" +
		", COMMIT to the answer \(m(ge("commit")))" +
		($v | map(select(gsel != null)) | length) as $k |
		(if $k > 0 and $k < ($v | length) then
			" (\($k) of \($v | length) runs: no gap the client noted spans the others'"'"' switch-over)" else "" end)),
	"#   \($g[0].workload) ratios: dmigrate gap / criu-lazy gap \(ratio($m.dmigrate.gap; $m["criu-lazy"].gap)) (target <= 0.05)" +
		"; dmigrate gap / bare gap \(ratio($m.dmigrate.gap; $m.bare.gap)) (target <= 2)" +
		"; at the switch-over: dmigrate / criu-lazy \(ratio($m.dmigrate.sw; $m["criu-lazy"].sw)), dmigrate / bare \(ratio($m.dmigrate.sw; $m.bare.sw))" +
		"; dmigrate down / bare down \(ratio($m.dmigrate.down; $m.bare.down))" +
		(if $m["bare-service"] then "; dmigrate down / bare-service down \(ratio($m.dmigrate.down; $m["bare-service"].down))" else "" end) +
		"; total dmigrate / criu-lazy \(ratio($m.dmigrate.total; $m["criu-lazy"].total))"
	' "$RESULTS" >&2
