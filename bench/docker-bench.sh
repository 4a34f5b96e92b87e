#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Moving a Docker container: downtime and total time, per workload and
# method, in the Docker test hosts of tests/docker/lib.sh (docs/docker-tests.md).
#
#   bench/docker-bench.sh [--build DIR] [--runs N] [--workloads LIST]
#                         [--variants LIST] [--mb MIB] [--files-mb MIB] [--out FILE]
#                         [--criu PATH] [--tbf] [--keep]
#
# --tbf: the test hosts' link (198.18.0.1 <-> .2) is 1 Gbit/s (testhost up
# --tbf); criu-lazy's page server listens on host a's end of it
#
# Workloads (a fresh container in host a for every run):
#   python-http  dm-python's `python3 -m http.server`, published on 8000;
#                bench/lib/gapclient.py in the client namespace GETs
#                /index.html every 5 ms
#   redis        dm-redis, published on 6379; the client sends INCR every
#                5 ms on one connection (made again after an error)
#   memtouch     dm-python's memtouch.py with MB=512 (--mb): its own
#                timestamps, every 10 ms, in `docker logs`
#   layer        python-http with --files-mb MiB (default 40) in files of
#                100 KiB written into its own layer (/srv/layer) before the run
#   volume       python-http with as much in a named volume (/srv/vol, one
#                volume per run, removed after it)
# DMIGRATE_FAULT_TRACE=FILE in the environment is passed to host b's
# dmigrated: the faults after the switch-over (bench/faulttrace.py FILE).
#
# Variants (methods), alternated within each run (the order rotates), so that
# they meet the same load of this shared machine:
#   docker-checkpoint  Docker's own: `docker checkpoint create` then
#                `docker start --checkpoint` of the same container on host a
#                (dockerd --experimental, CRIU 4.1 of --criu, default
#                /opt/criu-baseline/bin/criu: /work/shared/tools/install-criu-baseline.sh)
#   dmigrate-atfreeze  dmigrate as before the pre-send of the container's files:
#                its layer moved after the freeze (DMIGRATE_TEST_LAYER_AT_FREEZE=1),
#                its volumes as tars in it (DMIGRATE_TEST_VOLUMES_AS_TAR=1)
#   dmigrate     `dmigrate migrate docker:NAME --mode post-copy` from host a
#                to host b (`dmigrate setup` and a dmigrated in b), over the
#                hosts' link (--tbf: a 1 Gbit/s token bucket); memtouch's gap
#                is read across both hosts' logs (--keep-source keeps a's)
#   dmigrate-nohot  the same without its writes tracked (DMIGRATE_HOT_PUSH=0:
#                the pages in address order after the resume, the eager
#                pages in the freeze)
#   dmigrate-latepush  the same with the push begun after COMMIT
#                (DMIGRATE_TEST_LATE_PUSH=1), not while the destination
#                restores
#   dmigrate-earlybulk  the same with the whole push begun while the
#                destination restores (DMIGRATE_TEST_EARLY_BULK=1), not only
#                the working set
#   dmigrate-punchnow  the same to a destination that gives each page of
#                its store back to the kernel as it installs it, not in
#                batches (DMIGRATE_STORE_PUNCH_PAGES=1 in a second dmigrated
#                of host b, port 7071)
#   dmigrate-addrorder  the same with the lazy memory's pre-send and the
#                destination's background install in address order, not
#                smallest area first (DMIGRATE_LAZY_ORDER=address in both:
#                a third dmigrated of host b, port 7072)
#   dmigrate-slowscan  the same with the source's scans of written pages in
#                one exact PAGEMAP_SCAN pass (DMIGRATE_SCAN_FAST=0), not the
#                kernel's fast path for candidates first (mem/dirty.c): the
#                scan of what was written since the lazy memory went is in
#                the freeze
#   dmigrate-hybrid  the same in --mode hybrid (one pre-copy pass, then
#                post-copy)
#   criu-lazy    CRIU 4.1's post-copy from host a to host b through runc
#                (`runc checkpoint --lazy-pages`, `criu lazy-pages`, `docker
#                start --checkpoint` of an identical container in b, made
#                with the same arguments): python-http, redis, memtouch (not
#                layer and volume, whose containers are not made by one
#                command); the client's open connections are bound to the
#                container's address in a, which b cannot give back: CRIU
#                dumps and restores them closed (tcp-close in its runc.conf
#                for these runs), as dmigrate resets them; the client
#                connects to b's published port, as with dmigrate
#
# downtime: the largest gap between two right answers the client saw (for
# memtouch: between two consecutive timestamps, which must also count on by
# one: the same process, not a new one); total: from the method's start to
# its end (the container running again).  One JSON line per run and
# method on stdout (and appended to --out), then a summary (medians).
#
# A method is a function v_NAME (the variant name with - as _) called as
# `v_NAME WORKLOAD CONTAINER RUN` with the container running in host a; it
# sets V_HOST (a or b: where the container runs afterwards), V_TOTAL_MS and
# V_DETAIL (a JSON object), or V_ERR and returns 1.  A `dmigrate migrate
# docker:NAME` variant is one more such function (the clients already try
# host b's published port when host a's does not answer).
set -u -o pipefail
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=
RUNS=3
WORKLOADS="python-http redis memtouch"
VARIANTS="docker-checkpoint criu-lazy dmigrate"
MB=512
FILES_MB=40
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
	--files-mb) FILES_MB=$2; shift ;;
	--out) OUT=$2; shift ;;
	--criu) CRIU=$2; shift ;;
	--tbf) export DK_TESTHOST_ARGS=--tbf ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '4,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "docker-bench: unknown argument $1 (--help)" >&2; exit 2 ;;
	esac
	shift
done
[[ -n $BUILD ]] || BUILD=$REPO/build
DM=$(cd "$BUILD" 2>/dev/null && pwd)/dmigrate
[[ -x $DM ]] || { echo "docker-bench: no dmigrate in $BUILD (--build DIR)" >&2; exit 2; }
((EUID == 0)) || { echo "docker-bench: needs root" >&2; exit 2; }
[[ " $VARIANTS " == *" docker-checkpoint "* || " $VARIANTS " == *" criu-lazy "* ]] && [[ ! -x $CRIU ]] &&
	{ echo "docker-bench: no CRIU at $CRIU (sh /work/shared/tools/install-criu-baseline.sh, or --criu PATH)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dmigrate-dkbench.XXXXXX)
export DK_WORK=$WORK/hosts DK_PREFIX=${DM_E2E_PREFIX:-dmdkb} DK_EXPERIMENTAL=1
export DK_CACHE=${DK_CACHE:-$(dirname "$DM")/docker-rootfs}
# runc (started by dockerd's containerd) finds the baseline's CRIU first
mkdir -p "$WORK/criu-bin"
ln -s "$CRIU" "$WORK/criu-bin/criu"
export DK_DOCKERD_PATH=$WORK/criu-bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=../tests/docker/lib.sh
source "$REPO/tests/docker/lib.sh"
# runc's CRIU options (/etc/criu/runc.conf), the bench hosts' own
DK_MOUNTPOINTS+=(/etc/criu)

cleanup() {
	if ((KEEP)); then
		echo "# kept: DM=$DM DK_WORK=$DK_WORK DK_PREFIX=$DK_PREFIX; source tests/docker/lib.sh; dk_down; $WORK" >&2
	else
		dk_down
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "# $*" >&2; }
now_ms() { date +%s%3N; }
client_ns() { ip netns exec "$DK_PREFIX-c" "$@"; }

t0=$SECONDS
dk_up || exit 1
for h in a b; do
	mkdir -p "$DK_WORK/$h/etc-criu" "$DK_WORK/$h/criu-work"
	# tcp-established: an open client connection does not fail the dump;
	# skip-in-flight: nor one half made; work-dir keeps CRIU's logs
	printf 'tcp-established\nskip-in-flight\nwork-dir %s\n' "$DK_WORK/$h/criu-work" >"$DK_WORK/$h/etc-criu/runc.conf"
	dk_in $h mount -n --bind "$DK_WORK/$h/etc-criu" /etc/criu || exit 1
done
dk_images_build a && dk_images_copy a b || exit 1
SEG_A=$("$DM" testhost info --prefix "$DK_PREFIX" | sed -n 's/^a.seg_addr=//p')
SEG_B=$("$DM" testhost info --prefix "$DK_PREFIX" | sed -n 's/^b.seg_addr=//p')
LINK_A=$("$DM" testhost info --prefix "$DK_PREFIX" | sed -n 's/^a.addr=//p')
say "hosts and images ready in $((SECONDS - t0)) s; $("$CRIU" --version 2>/dev/null | head -1) for runc"

# ---------------------------------------------------------------- workloads

# wl_args WORKLOAD: what follows `docker run -d --name NAME` for the
# workloads made by one command (also the container CRIU's restore needs in b)
wl_args() {
	case $1 in
	python-http) echo "-p 8000:8000 dm-python python3 -m http.server 8000 --directory /srv" ;;
	redis) echo "-p 6379:6379 dm-redis" ;;
	memtouch) echo "-e MB=$MB dm-python" ;;
	esac
}

# wl_start WORKLOAD NAME: the container in host a, answering
wl_start() {
	local w=$1 n=$2 i
	case $w in
	layer | volume)
		local d=/srv/layer v=()
		[[ $w == volume ]] && d=/srv/vol v=(-v "$n-vol:/srv/vol")
		dk_in a docker run -d --name "$n" -p 8000:8000 "${v[@]}" dm-python \
			python3 -m http.server 8000 --directory /srv >/dev/null &&
			dk_in a docker exec "$n" python3 -c "import os, sys
os.makedirs(sys.argv[1], exist_ok=True)
for i in range(int(sys.argv[2]) * 10):
    open('%s/f%04d' % (sys.argv[1], i), 'wb').write(os.urandom(102400))" "$d" "$FILES_MB" ;;
	python-http | redis | memtouch)
		local args
		read -ra args <<<"$(wl_args "$w")"
		dk_in a docker run -d --name "$n" "${args[@]}" >/dev/null ;;
	esac || return 1
	for ((i = 0; i < 600; i++)); do
		case $w in
		python-http | layer | volume) client_ns curl -s --max-time 2 "http://$SEG_A:8000/index.html" 2>/dev/null | grep -q dmigrate && return 0 ;;
		redis) [[ $(client_ns redis-cli -h "$SEG_A" ping 2>/dev/null) == PONG ]] && return 0 ;;
		memtouch) (($(dk_in a docker logs "$n" 2>/dev/null | wc -l) > 100)) && return 0 ;;
		esac
		sleep 0.2
	done
	return 1
}
wl_port() { case $1 in python-http | layer | volume) echo 8000 ;; redis) echo 6379 ;; esac; }
wl_client() { case $1 in python-http | layer | volume) echo http ;; redis) echo redis ;; esac; }

# memtouch's gap: the largest difference of consecutive "N TIME" lines of
# the container's logs in hosts HOSTS (before and after a move), as JSON; N
# must count on by one across it
mt_gap() {
	local h
	for h in $1; do dk_in "$h" docker logs "$2" 2>/dev/null; done | sort -n -k2,2 | awk '
		$1 ~ /^[0-9]+$/ && NF == 2 {
			if (have) {
				g = ($2 - t) * 1000
				if (g > max) { max = g; n0 = p; n1 = $1; from = t }
			}
			have = 1; p = $1; t = $2; lines++
		}
		END { printf "{\"max_gap_ms\": %.1f, \"lines\": %d, \"gap_n\": [%d, %d], \"gap_from\": %.3f, \"same_process\": %s}\n",
			max, lines, n0, n1, from, (n1 == n0 + 1) ? "true" : "false" }'
}

# ---------------------------------------------------------------- methods

# criu_tcp tcp-established|tcp-close: what CRIU does with open connections
# (both hosts' runc.conf)
criu_tcp() {
	sed -i -e '/^tcp-established$/d' -e '/^tcp-close$/d' "$DK_WORK/a/etc-criu/runc.conf" "$DK_WORK/b/etc-criu/runc.conf"
	echo "$1" | tee -a "$DK_WORK/a/etc-criu/runc.conf" >>"$DK_WORK/b/etc-criu/runc.conf"
}

v_docker_checkpoint() {
	local w=$1 n=$2 r=$3 t0 t1 t2 out id
	criu_tcp tcp-established # a checkpoint restored in place keeps them
	id=$(dk_in a docker inspect --format '{{.Id}}' "$n") || { V_ERR="docker inspect"; return 1; }
	t0=$(now_ms)
	out=$(dk_in a docker checkpoint create "$n" "cp$r" 2>&1) || { V_ERR="docker checkpoint create: $out"; return 1; }
	# dockerd uploads the checkpoint to containerd's content store, which
	# refuses content it has already ("commit failed: ... already exists":
	# seen with redis in a third run): a file of its own makes it new
	date +%s%N >"$DK_WORK/a/lib-docker/containers/$id/checkpoints/cp$r/dm-nonce"
	t1=$(now_ms)
	out=$(dk_in a docker start --checkpoint "cp$r" "$n" 2>&1) || { V_ERR="docker start --checkpoint: $out"; return 1; }
	t2=$(now_ms)
	V_HOST=a
	V_TOTAL_MS=$((t2 - t0))
	V_DETAIL="{\"checkpoint_ms\": $((t1 - t0)), \"start_ms\": $((t2 - t1))}"
}

DMIG_UP=0
DMIGD_PORTS=" "
ADDR_B=
# once: the runtime registered in b; then a dmigrated there per port: 7070
# (the default) and any other a variant asks for (V_PORT, with V_DEST_ENV
# in its environment: a destination's knob, alternated in one run)
dmig_up() {
	local bin port=${V_PORT:-7070}
	bin=$(dirname "$DM")
	if ((!DMIG_UP)); then
		"$DM" keygen "$WORK/key" >/dev/null || return 1
		dk_in b "$DM" setup --runtime "$bin/dmigrate-runc" >&2 || return 1
		ADDR_B=$("$DM" testhost info --prefix "$DK_PREFIX" | sed -n 's/^b.addr=//p')
		DMIG_UP=1
	fi
	[[ $DMIGD_PORTS == *" $port "* ]] && return 0
	rm -f "$WORK/dmigrated-$port.ready"
	# shellcheck disable=SC2086 # V_DEST_ENV: words NAME=VALUE
	"$DM" testhost spawn --prefix "$DK_PREFIX" --log "$WORK/dmigrated-$port.log" b -- \
		env PATH=/usr/sbin:/usr/bin:/sbin:/bin ${DMIGRATE_FAULT_TRACE:+DMIGRATE_FAULT_TRACE=$DMIGRATE_FAULT_TRACE} ${V_DEST_ENV:-} \
		"$bin/src/daemon/dmigrated" --listen "$ADDR_B:$port" \
		--key "$WORK/key" --ready-file "$WORK/dmigrated-$port.ready" >/dev/null || return 1
	for ((i = 0; i < 300; i++)); do [[ -e $WORK/dmigrated-$port.ready ]] && break; sleep 0.1; done
	[[ -e $WORK/dmigrated-$port.ready ]] || return 1
	DMIGD_PORTS+="$port "
}

v_dmigrate() {
	local w=$1 n=$2 r=$3 t0 t1 out
	dmig_up || { V_ERR="dmigrate setup or dmigrated in b failed"; return 1; }
	t0=$(now_ms)
	out=$(dk_in a "$DM" migrate "docker:$n" --to "$ADDR_B:${V_PORT:-7070}" --key "$WORK/key" --mode "${V_MODE:-post-copy}" \
		--keep-source --stats "$WORK/mig-stats.json" 2>&1) || { V_ERR="dmigrate migrate: $out"; return 1; }
	t1=$(now_ms)
	V_HOST=b
	V_TOTAL_MS=$((t1 - t0))
	# where the client's gap lies: the freeze's wall clock (ms), and the
	# slowest fault after the switch-over (max_at_ms after COMMIT); the
	# downtime's phases (the dump, the state sent, the restore and the wait
	# for the layer's files in it); what of the layer went before the freeze
	cp "$WORK/mig-stats.json" "$WORK/mig-stats-${V_NAME:-dmigrate}-$w-$r.json" 2>/dev/null
	V_DETAIL=$(jq -c --argjson t0 "$t0" '{downtime_ms: .downtime_ms, total_ms: .total_ms, bytes: .bytes,
		freeze_wall_ms: (if .start_unix then .start_unix * 1000 + .timestamps.freeze else $t0 + .timestamps.freeze end), start_unix: .start_unix, timestamps: .timestamps, fault_latency_us: .destination.fault_latency_us,
		phases: {dump_ms: (.timestamps.dumped - .timestamps.freeze), state_sent_ms: (.timestamps.state_sent - .timestamps.dumped),
			resume_ms: (.timestamps.resume - .timestamps.state_sent),
			files_wait_ms: (if .restore.rootfs.ready_ms then .restore.rootfs.ready_ms - .restore.rootfs.wait_from_ms else null end)},
		layer: (.rootfs // {} | {files, bytes, presend: .presend, prewalk: .prewalk}),
		volumes: (.volumes // {} | {trees, list: [.list[]? | {name, files, bytes, presend: .presend | {files, bytes, used_files}}]})}' \
		"$WORK/mig-stats.json" 2>/dev/null) || V_DETAIL='{}'
}

v_dmigrate_latepush() {
	local DMIGRATE_TEST_LATE_PUSH=1 V_NAME=dmigrate-latepush
	export DMIGRATE_TEST_LATE_PUSH
	v_dmigrate "$@"
}

v_dmigrate_earlybulk() {
	local DMIGRATE_TEST_EARLY_BULK=1 V_NAME=dmigrate-earlybulk
	export DMIGRATE_TEST_EARLY_BULK
	v_dmigrate "$@"
}

v_dmigrate_punchnow() {
	local V_PORT=7071 V_DEST_ENV="DMIGRATE_STORE_PUNCH_PAGES=1" V_NAME=dmigrate-punchnow
	v_dmigrate "$@"
}

v_dmigrate_addrorder() {
	local DMIGRATE_LAZY_ORDER=address V_PORT=7072 V_DEST_ENV="DMIGRATE_LAZY_ORDER=address" V_NAME=dmigrate-addrorder
	export DMIGRATE_LAZY_ORDER
	v_dmigrate "$@"
}

v_dmigrate_slowscan() {
	local DMIGRATE_SCAN_FAST=0 V_NAME=dmigrate-slowscan
	export DMIGRATE_SCAN_FAST
	v_dmigrate "$@"
}

v_dmigrate_nohot() {
	local DMIGRATE_HOT_PUSH=0 V_NAME=dmigrate-nohot
	export DMIGRATE_HOT_PUSH
	v_dmigrate "$@"
}

v_dmigrate_hybrid() {
	local V_MODE=hybrid V_NAME=dmigrate-hybrid
	v_dmigrate "$@"
}

v_dmigrate_atfreeze() {
	local DMIGRATE_TEST_LAYER_AT_FREEZE=1 DMIGRATE_TEST_VOLUMES_AS_TAR=1 V_NAME=dmigrate-atfreeze
	export DMIGRATE_TEST_LAYER_AT_FREEZE DMIGRATE_TEST_VOLUMES_AS_TAR
	v_dmigrate "$@"
}

# CRIU 4.1's own post-copy of the Docker container from host a to host b,
# driven through runc as Docker has no lazy option (the recipe of
# /work/shared/tools/baseline-docker/docker_lazy.sh, across the two hosts):
# in a, `runc checkpoint --lazy-pages --page-server` of the container (its
# pages stay behind a page server on a's link address); the images without
# the pages are copied into the checkpoints of an identical container that
# b's dockerd created with the same arguments (wl_args);
# `criu lazy-pages` in b pulls from a's page server for `docker start
# --checkpoint` in b.  total: until the last page has moved.
v_criu_lazy() {
	local w=$1 n=$2 r=$3 x=$WORK/lazy-$3 sid did cp t0 t1 t2 t3 t4 t5 out port=27100 lpd ckp i
	local crpath=PATH=$WORK/criu-bin:/usr/sbin:/usr/bin:/sbin:/bin
	local args
	read -ra args <<<"$(wl_args "$w")"
	((${#args[@]})) || { V_ERR="criu-lazy: not for $w (its container is not made by one command)"; return 1; }
	rm -rf "$x"
	mkdir -p "$x/src" "$x/srcwork"
	sid=$(dk_in a docker inspect --format '{{.Id}}' "$n") || { V_ERR="docker inspect in a"; return 1; }
	# before the freeze: the container in b (created, not started)
	did=$(dk_in b docker create --name "$n" "${args[@]}" 2>&1) || { V_ERR="docker create in b: $did"; return 1; }
	# a client's open connection is bound to the container's address in a,
	# which b cannot give back ("Can't bind inet socket back"): CRIU dumps
	# and restores it closed, as dmigrate resets it
	criu_tcp tcp-close

	cp=$DK_WORK/b/lib-docker/containers/$did/checkpoints/cp
	mkfifo "$x/status"
	t0=$(now_ms)
	# criu writes a byte on the status fd when its page server is ready
	(timeout 300 head -c1 "$x/status" >"$x/status.got") &
	local rd=$!
	dk_in a env "$crpath" sh -c 'exec 3>"$1"; shift; exec "$@"' sh "$x/status" \
		runc --root /run/docker/runtime-runc/moby checkpoint --lazy-pages \
		--page-server "$LINK_A:$port" --status-fd 3 --image-path "$x/src" --work-path "$x/srcwork" "$sid" \
		>"$x/runc-checkpoint.out" 2>&1 &
	ckp=$!
	wait "$rd"
	[[ -s $x/status.got ]] || { kill "$ckp" 2>/dev/null; V_ERR="runc checkpoint --lazy-pages: $(tail -n 3 "$x/runc-checkpoint.out")"; return 1; }
	t1=$(now_ms)
	mkdir -p "$cp"
	cp -a "$x/src/." "$cp/"
	t2=$(now_ms)
	dk_in b env "$crpath" criu lazy-pages --page-server --address "$LINK_A" --port "$port" -D "$cp" \
		-W "$DK_WORK/b/criu-work" -o lazy-pages.log >"$x/lazy-pages.out" 2>&1 &
	lpd=$!
	for ((i = 0; i < 300; i++)); do [[ -S $DK_WORK/b/criu-work/lazy-pages.socket ]] && break; sleep 0.01; done
	printf 'lazy-pages\n' >>"$DK_WORK/b/etc-criu/runc.conf"
	out=$(dk_in b docker start --checkpoint cp "$n" 2>&1)
	local rc=$?
	sed -i '/^lazy-pages$/d' "$DK_WORK/b/etc-criu/runc.conf"
	criu_tcp tcp-established
	t3=$(now_ms)
	((rc == 0)) || { kill "$lpd" "$ckp" 2>/dev/null; V_ERR="docker start --checkpoint in b: $out"; return 1; }
	# every page moved: the lazy-pages daemon ends, then the source's runc
	wait "$lpd"
	t4=$(now_ms)
	wait "$ckp"
	t5=$(now_ms)
	V_HOST=b
	V_TOTAL_MS=$((t4 - t0))
	V_DETAIL="{\"dump_ms\": $((t1 - t0)), \"copy_ms\": $((t2 - t1)), \"start_ms\": $((t3 - t2)), \"pages_ms\": $((t4 - t3)), \"source_released_ms\": $((t5 - t0)), \"images_bytes\": $(du -sb "$x/src" | cut -f1)}"
	rm -rf "$x"
}

# ---------------------------------------------------------------- runs

emit() {
	echo "$1"
	[[ -z $OUT ]] || echo "$1" >>"$OUT"
}
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# one_run WORKLOAD VARIANT RUN
one_run() {
	local w=$1 v=$2 r=$3 n=bench-$1-$3 fn=v_${2//-/_} cpid='' status=$WORK/client.ready cout=$WORK/client.out line gap='{}' ok=true err='' dt i tend last
	V_HOST=a V_TOTAL_MS=0 V_DETAIL='{}' V_ERR=
	if ! wl_start "$w" "$n"; then
		err="the workload does not start: $(dk_in a docker logs "$n" 2>&1 | tail -n 3 | tr '\n' ' ')"
	else
		if [[ $w != memtouch ]]; then
			rm -f "$status" "$cout.status"
			# not through client_ns: $! must be the client (ip execs it)
			ip netns exec "$DK_PREFIX-c" /usr/bin/python3 "$HERE/lib/gapclient.py" "$(wl_client "$w")" \
				"$SEG_A:$(wl_port "$w"),$SEG_B:$(wl_port "$w")" --ready "$status" --status "$cout.status" --trace "$WORK/trace-$v-$w-$r" >"$cout" 2>&1 &
			cpid=$!
			for ((i = 0; i < 300; i++)); do [[ -e $status ]] && break; sleep 0.1; done
		fi
		sleep 1	# a second of steady state before
		if "$fn" "$w" "$n" "$r"; then
			# then until the service answers again after the method's end
			# (bounded: a service that does not come back is an error)
			tend=$(now_ms)
			for ((i = 0; i < 600; i++)); do
				if [[ $w == memtouch ]]; then
					last=$(dk_in "$V_HOST" docker logs --tail 1 "$n" 2>/dev/null | awk 'NF == 2 { print $2 }')
				else
					last=$(cat "$cout.status" 2>/dev/null)
				fi
				[[ $last =~ ^[0-9]+\.[0-9]+$ ]] && ((${last/./} / 1000 > tend)) && break
				sleep 0.1
			done
			((i < 600)) || { ok=false err="no answer within 60 s after the method's end"; }
			sleep 0.2	# and a little steady state after
		else
			ok=false err=$V_ERR
		fi
		if [[ -n $cpid ]]; then
			kill -TERM "$cpid" 2>/dev/null
			wait "$cpid"
			gap=$(tail -n 1 "$cout")
		else
			gap=$(mt_gap "$(echo a "$V_HOST" | tr ' ' '\n' | sort -u)" "$n")
		fi
		[[ $(jq -r '.max_gap_ms' <<<"$gap" 2>/dev/null) =~ ^[0-9.]+$ ]] || { ok=false err="no measurement: $gap"; gap='{}'; }
		if $ok && [[ $w == memtouch && $(jq -r .same_process <<<"$gap") != true ]]; then
			ok=false err="memtouch's counter does not go on across the gap: $gap"
		fi
		if $ok && [[ $w == redis && $(jq -r .redis_back <<<"$gap") != 0 ]]; then
			ok=false err="redis lost writes (its counter went back): $gap"
		fi
		if $ok && [[ $(dk_in "$V_HOST" docker inspect --format '{{.State.Running}}' "$n" 2>/dev/null) != true ]]; then
			ok=false err="not running in $V_HOST afterwards: $(dk_in "$V_HOST" docker logs "$n" 2>&1 | grep -v '^[0-9]' | tail -n 2 | tr '\n' ' ')"
		fi
	fi
	dt=$(jq -r '.max_gap_ms // null' <<<"$gap")
	line=$(jq -cn --arg w "$w" --arg v "$v" --argjson r "$r" --argjson ok "$ok" --arg err "$err" \
		--argjson down "${dt:-null}" --argjson total "$V_TOTAL_MS" --argjson method "$V_DETAIL" \
		--argjson measure "$gap" --arg host "$V_HOST" --argjson mb "$MB" --argjson fmb "$FILES_MB" \
		'{bench: "docker", workload: $w, variant: $v, run: $r, ok: $ok, downtime_ms: $down,
		  total_ms: $total, host_after: $host, method: $method, measure: $measure}
		 + (if $w == "memtouch" then {mb: $mb} else {} end)
		 + (if $w == "layer" or $w == "volume" then {files_mb: $fmb} else {} end)
		 + (if $err != "" then {error: $err} else {} end)')
	emit "$line"
	echo "$line" >>"$RESULTS"
	dk_in a docker rm -f "$n" >/dev/null 2>&1
	dk_in b docker rm -f "$n" >/dev/null 2>&1
	if [[ $w == volume ]]; then
		dk_in a docker volume rm "$n-vol" >/dev/null 2>&1
		dk_in b docker volume rm "$n-vol" >/dev/null 2>&1
	fi
	return 0
}

read -ra VLIST <<<"$VARIANTS"
for ((r = 1; r <= RUNS; r++)); do
	for w in $WORKLOADS; do
		# the order of the methods rotates from run to run
		for ((k = 0; k < ${#VLIST[@]}; k++)); do
			v=${VLIST[$(((k + r - 1) % ${#VLIST[@]}))]}
			[[ $v == criu-lazy && -z $(wl_args "$w") ]] && continue
			say "run $r: $w, $v"
			one_run "$w" "$v" "$r"
		done
	done
done

say "summary (medians of the runs that succeeded; ms):"
jq -rs 'group_by(.workload + " " + .variant)[] |
	(map(select(.ok)) | sort_by(.downtime_ms)) as $ok |
	(map(select(.ok)) | map(.total_ms) | sort) as $tot |
	"#   \(.[0].workload) \(.[0].variant): downtime \(if ($ok | length) > 0 then $ok[($ok | length) / 2 | floor].downtime_ms else "-" end)" +
	"  total \(if ($tot | length) > 0 then $tot[($tot | length) / 2 | floor] else "-" end)" +
	"  (\($ok | length)/\(length) ok)"' "$RESULTS" >&2
