#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Docker tests: two Docker hosts on this machine (tests/docker/lib.sh: a
# dockerd with its own containerd in each test host of `dmigrate testhost`,
# nothing shared), started once per run, and the test images
# (tests/docker/mkrootfs.sh), built once in host a and loaded into b.
#
#   tests/docker/run.sh [--build DIR] [--filter REGEX] [--keep] [-v]
#
# Cases (names are GROUP/NAME; --filter selects by name):
#   docker/images   dm-bb, dm-python, dm-redis, dm-nginx have the same image
#                   ID in a and b (docker save | docker load); dropped from
#                   b, an image is missing there (`docker create --pull
#                   never` fails, named) until it is copied again, same ID
#   docker/hosts    each host's dockerd is its own (its ID, overlay2, its
#                   data root /var/lib/docker, its socket): a dm-bb container
#                   of the same name in each; b does not see a's container
#                   nor an image only a has, nor a file in a's data root;
#                   the counter reaches `docker logs`, `docker exec` reads
#                   /tmp/count, `docker stop` and `docker rm` work; the
#                   client namespace reaches host b across a's bridge
#   docker/services dm-redis, dm-nginx (a master, 1 worker), dm-python's
#                   http.server answer on their published ports from the
#                   client namespace; dm-python's memtouch (MB=16) prints
#                   its timestamps every 10 ms
#   docker/restart  b's dockerd stopped (dk_dockerd_stop): b's docker CLI
#                   cannot connect, a's answers; started again after a change
#                   to its daemon.json: the change holds, its images are kept
#   docker/cleanup  (last; not with --keep) dk_down, from a shell that does
#                   not know the work dir (as after a killed run), leaves no dockerd,
#                   containerd, shim or container process, no network
#                   namespace, cgroup, mount point it made or file
#
# The rootfs tarballs are kept in DIR/docker-rootfs (a second run imports
# them without building).  DM_E2E_PREFIX names the test hosts (default dmdk).
# Output: "PASS name", "FAIL name: reason", "SKIP name: reason", then
# "N passed, N failed, N skipped".  Exit status 1 if anything failed.
#
# A case is a function t_NAME that calls `result` once; add it to CASES and
# RUN below.  Hosts and images are made before the first selected case;
# cases leave the hosts as they found them (their containers removed).
set -u -o pipefail
export LC_ALL=C

DK_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$DK_TESTS/../.." && pwd)
BUILD=
FILTER=
KEEP=0
VERBOSE=0

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--filter) FILTER=$2; shift ;;
	--keep) KEEP=1 ;;
	-v | --verbose) VERBOSE=1 ;;
	-h | --help) sed -n '4,/^# "N passed/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
if [[ -z $BUILD ]]; then
	for d in "$REPO/build" "$REPO/builddir"; do
		[[ -x $d/dmigrate ]] && { BUILD=$d; break; }
	done
fi
[[ -n $BUILD && -x $BUILD/dmigrate ]] || { echo "run.sh: no build dir with dmigrate (--build DIR)" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)
DM=$BUILD/dmigrate
export DK_CACHE=${DK_CACHE:-$BUILD/docker-rootfs}

NPASS=0 NFAIL=0 NSKIP=0
log() { ((VERBOSE)) && echo "# $*" >&2; return 0; }
result() {
	case $1 in
	PASS) echo "PASS $2"; NPASS=$((NPASS + 1)) ;;
	SKIP) echo "SKIP $2: $3"; NSKIP=$((NSKIP + 1)) ;;
	FAIL) echo "FAIL $2: $3"; NFAIL=$((NFAIL + 1)) ;;
	esac
}
summary() { echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"; }
selected() { [[ -z $FILTER ]] || [[ $1 =~ $FILTER ]]; }

if ((EUID != 0)); then
	echo "SKIP docker: needs root (namespaces, dockerd)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
# installed by scripts/deps.sh: missing is a failure, not a skip
missing=
for t in dockerd containerd runc jq ip curl redis-cli busybox flock; do
	command -v "$t" >/dev/null || missing+=" $t"
done
[[ -x /usr/bin/docker ]] || missing+=" /usr/bin/docker"
if [[ -n $missing ]]; then
	result FAIL docker/setup "not found:$missing (scripts/deps.sh installs them)"
	summary
	exit 1
fi

# shellcheck source=lib.sh
source "$DK_TESTS/lib.sh" || exit 2
WORK=$(mktemp -d /tmp/dmigrate-dk.XXXXXX)
export DK_WORK=$WORK/hosts
PREFIX=$DK_PREFIX
CLIENT_NS=$PREFIX-c

HOSTS_UP=0
cleanup() {
	if ((KEEP)); then
		echo "# kept: docker hosts $PREFIX (DM=$DM DK_WORK=$DK_WORK DK_PREFIX=$PREFIX; source tests/docker/lib.sh; dk_down), $WORK" >&2
	else
		((HOSTS_UP)) && dk_down
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS CMD...
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.1
	done
}
client() { ip netns exec "$CLIENT_NS" "$@"; }
seg_addr() { "$DM" testhost info --prefix "$PREFIX" | sed -n "s/^$1.seg_addr=//p"; }
# rm -f of containers, quietly
dk_rm() { local h=$1; shift; dk_in "$h" docker rm -f "$@" >/dev/null 2>&1; return 0; }

# the hosts, then the images built in a and loaded into b (once)
setup() {
	local t0=$SECONDS out
	HOSTS_UP=1
	out=$(dk_up 2>&1) || { result FAIL docker/setup "docker hosts: $out"; return 1; }
	log "docker hosts up in $((SECONDS - t0)) s"
	t0=$SECONDS
	out=$(dk_images_build a 2>&1) || { result FAIL docker/setup "images: $out"; return 1; }
	out=$(dk_images_copy a b 2>&1) || { result FAIL docker/setup "images to b: $out"; return 1; }
	log "images built and copied in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- cases

t_images() {
	local t=docker/images img ia ib out
	for img in "${DK_IMAGES[@]}"; do
		ia=$(dk_image_id a "$img") && [[ $ia == sha256:* ]] || { result FAIL $t "$img: no ID in a"; return; }
		ib=$(dk_image_id b "$img") || { result FAIL $t "$img: not in b"; return; }
		[[ $ia == "$ib" ]] || { result FAIL $t "$img: ID $ia in a, $ib in b"; return; }
	done
	# a host without an image, then with it again
	dk_image_drop b dm-bb || { result FAIL $t "dm-bb is still in b after dk_image_drop"; return; }
	out=$(dk_in b docker create --pull never --name dk-noimg dm-bb 2>&1) &&
		{ dk_rm b dk-noimg; result FAIL $t "b created a container of an image it lacks"; return; }
	[[ $out == *"No such image"* ]] || { result FAIL $t "b's error for the missing image: $out"; return; }
	[[ -n $(dk_image_id a dm-bb) ]] || { result FAIL $t "dropping dm-bb in b dropped it in a"; return; }
	out=$(dk_images_copy a b dm-bb 2>&1) || { result FAIL $t "$out"; return; }
	[[ $(dk_image_id b dm-bb) == "$(dk_image_id a dm-bb)" ]] || { result FAIL $t "dm-bb copied again: another ID"; return; }
	result PASS $t
}

t_hosts() {
	local t=docker/hosts h id ida idb out n0 ok
	# two daemons: their own IDs, overlay2, the default data root
	ida=$(dk_in a docker info --format '{{.ID}} {{.Driver}} {{.DockerRootDir}}') &&
		idb=$(dk_in b docker info --format '{{.ID}} {{.Driver}} {{.DockerRootDir}}') ||
		{ result FAIL $t "docker info failed"; return; }
	[[ ${ida#* } == "overlay2 /var/lib/docker" && ${idb#* } == "overlay2 /var/lib/docker" ]] ||
		{ result FAIL $t "docker info: a '$ida', b '$idb'"; return; }
	[[ ${ida%% *} != "${idb%% *}" ]] || { result FAIL $t "a and b talk to the same dockerd (${ida%% *})"; return; }
	# Debian's CLI (20.10, as dockerd), not a newer one earlier in the caller's PATH
	out=$(dk_in a sh -c 'command -v docker')
	[[ $out == /usr/bin/docker ]] || { result FAIL $t "the docker CLI in the hosts is $out"; return; }
	# the default socket and data root are each host's own
	for h in a b; do
		out=$(dk_in $h sh -c 'test -S /run/docker.sock && test -S /var/run/docker.sock && echo ok')
		[[ $out == ok ]] || { result FAIL $t "no /var/run/docker.sock in $h"; return; }
	done
	[[ -S /run/docker.sock && $(stat -L -c %i /run/docker.sock) == $(dk_in a stat -L -c %i /run/docker.sock) ]] &&
		{ result FAIL $t "host a's socket is the machine's"; return; }
	dk_in a touch /var/lib/docker/dk-only-a || { result FAIL $t "cannot write a's data root"; return; }
	dk_in b test -e /var/lib/docker/dk-only-a && { result FAIL $t "b sees a file of a's data root"; return; }
	[[ -e /var/lib/docker/dk-only-a ]] && { result FAIL $t "the machine sees a file of a's data root"; return; }
	dk_in a rm -f /var/lib/docker/dk-only-a
	# a container of the same name in each host
	ida=$(dk_in a docker run -d --name dk-bb dm-bb 2>&1) || { result FAIL $t "docker run in a: $ida"; return; }
	idb=$(dk_in b docker run -d --name dk-bb dm-bb 2>&1) || { dk_rm a dk-bb; result FAIL $t "docker run in b: $idb"; return; }
	ok=0
	t_hosts_1 && ok=1
	dk_rm a dk-bb
	dk_rm b dk-bb
	((ok)) && result PASS $t
}
t_hosts_1() {
	# shellcheck disable=SC2034  # n1: set in an eval
	local t=docker/hosts out n0 n1
	[[ $(dk_in a docker ps -q --no-trunc) == "$ida" ]] || { result FAIL $t "a's docker ps: $(dk_in a docker ps -q --no-trunc)"; return 1; }
	[[ $(dk_in b docker ps -q --no-trunc) == "$idb" ]] || { result FAIL $t "b's docker ps: $(dk_in b docker ps -q --no-trunc)"; return 1; }
	dk_in b docker inspect "$ida" >/dev/null 2>&1 && { result FAIL $t "b knows a's container $ida"; return 1; }
	dk_in a docker tag dm-bb dk-only-a || { result FAIL $t "docker tag in a"; return 1; }
	out=$(dk_in b docker image inspect dk-only-a 2>&1) && { result FAIL $t "b sees a's image dk-only-a"; return 1; }
	dk_in a docker rmi dk-only-a >/dev/null
	# the counter: docker logs shows its lines, exec reads /tmp/count, both grow
	wait_until 60 eval '[[ $(dk_in a docker logs dk-bb 2>/dev/null | tail -n 1) -ge 3 ]] 2>/dev/null' ||
		{ result FAIL $t "docker logs: '$(dk_in a docker logs dk-bb 2>&1 | tail -n 3)'"; return 1; }
	out=$(dk_in a docker logs dk-bb 2>&1 | head -n 3 | tr '\n' ' ')
	[[ $out == "1 2 3 " ]] || { result FAIL $t "docker logs begins '$out'"; return 1; }
	n0=$(dk_in a docker exec dk-bb cat /tmp/count) && [[ $n0 =~ ^[0-9]+$ ]] ||
		{ result FAIL $t "docker exec cat /tmp/count: '$n0'"; return 1; }
	wait_until 60 eval 'n1=$(dk_in a docker exec dk-bb cat /tmp/count) && ((n1 > n0))' ||
		{ result FAIL $t "the counter does not advance past $n0"; return 1; }
	# stop (SIGTERM to a shell as pid 1 is ignored: docker kills it after
	# the timeout, 1 s here), then rm
	dk_in a docker stop -t 1 dk-bb >/dev/null || { result FAIL $t "docker stop failed"; return 1; }
	out=$(dk_in a docker inspect --format '{{.State.Status}}' dk-bb)
	[[ $out == exited ]] || { result FAIL $t "after docker stop: $out"; return 1; }
	[[ $(dk_in b docker inspect --format '{{.State.Status}}' dk-bb) == running ]] ||
		{ result FAIL $t "stopping a's dk-bb changed b's"; return 1; }
	dk_in a docker rm dk-bb >/dev/null || { result FAIL $t "docker rm failed"; return 1; }
	dk_in a docker inspect dk-bb >/dev/null 2>&1 && { result FAIL $t "dk-bb is still in a after docker rm"; return 1; }
	# the segment still forwards across a's bridge (dockerd's FORWARD rules)
	wait_until 20 client busybox ping -c 1 -W 2 "$(seg_addr b)" >/dev/null 2>&1 ||
		{ result FAIL $t "the client does not reach host b ($(seg_addr b))"; return 1; }
	return 0
}

t_services() {
	local t=docker/services ok=0
	t_services_1 && ok=1
	dk_rm a dk-redis dk-nginx dk-http dk-mem
	((ok)) && result PASS $t
}
t_services_1() {
	local t=docker/services addr out n procs
	addr=$(seg_addr a)
	out=$( {
		dk_in a docker run -d --name dk-redis -p 6379:6379 dm-redis &&
		dk_in a docker run -d --name dk-nginx -p 8080:80 dm-nginx &&
		dk_in a docker run -d --name dk-http -p 8000:8000 dm-python python3 -m http.server 8000 --directory /srv &&
		dk_in a docker run -d --name dk-mem -e MB=16 dm-python; } 2>&1) || { result FAIL $t "docker run: $out"; return 1; }
	wait_until 60 eval '[[ $(client redis-cli -h "$addr" -p 6379 ping 2>/dev/null) == PONG ]]' ||
		{ result FAIL $t "redis: no PONG on $addr:6379"; return 1; }
	out=$(client redis-cli -h "$addr" set dk v1 && client redis-cli -h "$addr" get dk)
	[[ $out == $'OK\nv1' ]] || { result FAIL $t "redis set/get: $out"; return 1; }
	wait_until 60 eval '[[ $(client curl -sS --max-time 5 "http://$addr:8080/index.html" 2>/dev/null) == "dmigrate nginx" ]]' ||
		{ result FAIL $t "nginx: no answer on $addr:8080"; return 1; }
	out=$(client curl -sS --max-time 30 "http://$addr:8080/blob-8m" | wc -c)
	((out == 8 << 20)) || { result FAIL $t "nginx: blob-8m is $out bytes"; return 1; }
	procs=$(dk_in a docker top dk-nginx -o pid,args | tail -n +2)
	[[ $(grep -c 'nginx: master' <<<"$procs") == 1 && $(grep -c 'nginx: worker' <<<"$procs") == 1 ]] ||
		{ result FAIL $t "nginx is not a master and 1 worker: $procs"; return 1; }
	out=$(dk_in a docker logs dk-nginx 2>&1 >/dev/null)
	[[ $out == *"start worker process"* ]] || { result FAIL $t "nginx's stderr in docker logs: $out"; return 1; }
	wait_until 60 eval '[[ $(client curl -sS --max-time 5 "http://$addr:8000/index.html" 2>/dev/null) == "dmigrate python-http" ]]' ||
		{ result FAIL $t "http.server: no answer on $addr:8000"; return 1; }
	# memtouch: ready, then "N TIME" lines 10 ms apart (N counts up)
	wait_until 60 eval '(($(dk_in a docker logs dk-mem 2>/dev/null | wc -l) > 50))' ||
		{ result FAIL $t "memtouch: $(dk_in a docker logs dk-mem 2>&1 | tail -n 3)"; return 1; }
	out=$(dk_in a docker logs dk-mem 2>&1 | head -n 51)
	[[ $(head -n 1 <<<"$out") == "ready MB=16 pages=4096" ]] || { result FAIL $t "memtouch: $(head -n 1 <<<"$out")"; return 1; }
	n=$(tail -n 50 <<<"$out" | awk 'NR == 1 { p = $1; t = $2; next } $1 != p + 1 || $2 <= t { bad = 1 } { p = $1; t = $2 } END { print bad ? "bad" : "ok" }')
	[[ $n == ok ]] || { result FAIL $t "memtouch's lines: $(tail -n 5 <<<"$out" | tr '\n' '|')"; return 1; }
	[[ $(dk_in a docker inspect --format '{{.State.Running}}' dk-mem) == true ]] || { result FAIL $t "memtouch exited"; return 1; }
	return 0
}

# host b's dockerd down: b's docker CLI says so, a's goes on; started again
# with a change to its daemon.json (as `dmigrate setup` makes one): the
# change is in effect, b's images are still there
t_restart() {
	local t=docker/restart out id0
	id0=$(dk_image_id b dm-bb)
	dk_dockerd_stop b
	out=$(dk_in b docker ps 2>&1) && { result FAIL $t "b's docker ps answers with its dockerd stopped"; return; }
	[[ $out == *"Cannot connect to the Docker daemon"* ]] || { result FAIL $t "b's docker ps: $out"; return; }
	dk_in a docker ps >/dev/null 2>&1 || { result FAIL $t "a's dockerd went down with b's"; return; }
	jq '.labels = ["dk.restart=yes"]' "$DK_WORK/b/etc-docker/daemon.json" >"$DK_WORK/daemon.json" &&
		cp "$DK_WORK/daemon.json" "$DK_WORK/b/etc-docker/daemon.json" || { result FAIL $t "daemon.json"; return; }
	dk_dockerd_start b && dk_wait_ready b 2>"$DK_WORK/restart.err" ||
		{ result FAIL $t "b does not come back: $(cat "$DK_WORK/restart.err")"; return; }
	out=$(dk_in b docker info --format '{{json .Labels}}')
	[[ $out == '["dk.restart=yes"]' ]] || { result FAIL $t "b's labels after the restart: $out"; return; }
	[[ $(dk_image_id b dm-bb) == "$id0" && -n $id0 ]] || { result FAIL $t "b's dm-bb is gone after the restart"; return; }
	result PASS $t
}

t_cleanup() {
	local t=docker/cleanup h pids p out mps id cg shown
	pids=
	for h in a b; do
		p=$(_dk_dockerd_pid $h) || { result FAIL $t "no dockerd in $h"; return; }
		pids+=" $p $(pgrep -P "$p" | tr '\n' ' ')"
	done
	# a container left running in a, and its processes
	dk_in a docker run -d --name dk-left dm-bb >/dev/null || { result FAIL $t "docker run"; return; }
	id=$(dk_in a docker inspect --format '{{.Id}}' dk-left)
	pids+=" $(pgrep -f "containerd-shim.*$id" | tr '\n' ' ')"
	# its processes, as the machine sees them: its cgroup in host a's
	cg=$("$DM" testhost info --prefix "$PREFIX" | sed -n 's/^a.cgroup=//p' | grep -m1 /pids)
	shown=$(cat "$cg/docker/$id/cgroup.procs" 2>/dev/null | tr '\n' ' ')
	[[ -n $shown ]] || { result FAIL $t "no process in $cg/docker/$id"; return; }
	mps=$(cat "$DK_STATE/made" 2>/dev/null)
	log "cleanup: before dk_down $((SECONDS - t0)) s"
	# from a shell that does not know the work dir, as after a killed run:
	# the set's record names it
	(unset DK_WORK; dk_down)
	log "cleanup: dk_down done $((SECONDS - t0)) s"
	HOSTS_UP=0
	for p in $pids $shown; do
		wait_until 20 eval "[[ ! -d /proc/$p ]] || [[ \$(awk '{print \$3}' /proc/$p/stat 2>/dev/null) == Z ]]" ||
			{ result FAIL $t "process $p ($(cat /proc/$p/comm 2>/dev/null)) survives"; return; }
	done
	for p in "$PREFIX-a" "$PREFIX-b" "$PREFIX-c"; do
		[[ -e /run/netns/$p ]] && { result FAIL $t "netns $p is left"; return; }
	done
	out=$(find /sys/fs/cgroup -maxdepth 6 -type d -name "testhost-$PREFIX-*" 2>/dev/null)
	[[ -z $out ]] || { result FAIL $t "cgroups left: $out"; return; }
	out=$(grep -F "$WORK" /proc/self/mountinfo)
	[[ -z $out ]] || { result FAIL $t "mounts left: $out"; return; }
	[[ -e $DK_WORK/a || -e $DK_WORK/b ]] && { result FAIL $t "files left: $(ls "$DK_WORK")"; return; }
	if [[ ! -e $DK_STATE/sets ]]; then
		for p in $mps; do
			[[ -e $p ]] && { result FAIL $t "mount point $p it made is left"; return; }
		done
	fi
	[[ -e $DK_STATE/sets/$PREFIX ]] && { result FAIL $t "$DK_STATE/sets/$PREFIX is left"; return; }
	out=$(dk_down 2>&1) || { result FAIL $t "a second dk_down: $out"; return; }
	result PASS $t
}

# ---------------------------------------------------------------- run

CASES=(docker/images docker/hosts docker/services docker/restart)
declare -A RUN=(
	[docker/restart]=t_restart
	[docker/images]=t_images
	[docker/hosts]=t_hosts
	[docker/services]=t_services
)
todo=()
for c in "${CASES[@]}" docker/cleanup; do selected "$c" && todo+=("$c"); done
if ((${#todo[@]})); then
	if ! setup; then
		summary
		exit 1
	fi
	for c in "${todo[@]}"; do
		[[ $c == docker/cleanup ]] && continue
		t0=$SECONDS
		${RUN[$c]}
		log "$c: $((SECONDS - t0)) s"
	done
	# what the daemons said, when something failed (their logs go with the hosts)
	((NFAIL == 0)) || dk_logs 20 | sed 's/^/# /'
	if selected docker/cleanup && ((KEEP == 0)); then
		t0=$SECONDS
		t_cleanup
		log "docker/cleanup: $((SECONDS - t0)) s"
	fi
fi
summary
((NFAIL == 0))
