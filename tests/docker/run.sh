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
#   docker/migrate-bb-MODE  (post-copy, stop-and-copy) `dmigrate migrate
#                   docker:NAME` of the dm-bb counter (restart policy
#                   always) from a to b: gone from a; on b running, same
#                   name, image, policy, runtime dmigrate; its count goes on
#                   from where it was (logs and /tmp/count: the container's
#                   layer moved; files added in /etc and a new directory, a
#                   deleted one; a file of its named volume), docker
#                   logs/exec/stop/rm work there
#   docker/migrate-layer  the container's layer and its volumes go before the
#                   freeze: in the layer and in a named volume a file changed,
#                   one removed, one added after their pre-send (the source
#                   paused at src-rootfs-presend) are on b as at the freeze,
#                   and a whiteout made then; a file the tree writes through a
#                   descriptor it holds has every line on b; a hard link, big
#                   files, a whiteout, an anonymous volume's file; the stats
#                   show the pre-sends and the deltas
#   docker/migrate-python   dm-python memtouch (MB=64, 64 pages rewritten every
#                   10 ms), post-copy: memory sent while b starts the
#                   container (some of it written again before the freeze);
#                   every page checked on b after the move (SIGUSR1: VERIFIED)
#   docker/migrate-redis    dm-redis with 2000 keys and a client writing
#                   (INCR through a's published port) until the switch:
#                   on b's published port every key, the counter at least
#                   the last value a acknowledged; a connection held through
#                   the move is reset at the switch-over (its address
#                   changed), and redis on b drops its end; what the
#                   namespace lock dropped is not taken to b
#   docker/migrate-nginx    dm-nginx (master + worker): answers on b's
#                   published port after the move, master and worker there
#   docker/migrate-image   a container of an image only a has (a commit of
#                   dm-bb with a file): b asks for it, saying it has its
#                   first layer (dm-bb's); a sends its `docker save` without
#                   that layer before the freeze; on b the image has the
#                   same ID and name, and the commit's file
#   docker/migrate-samenet  dm-redis with a fixed address on a network of
#                   the segment both hosts share (dk-seg on their linked
#                   bridges): a client's ONE connection (an INCR every 10 ms,
#                   each answer the next number) goes on through the move;
#                   same address on b
#   docker/refuse   refused before the freeze, named, nothing left behind
#                   (also a port b's docker start cannot give: the start
#                   fails beside a's preparation, a rolls back)
#                   (the container runs on in a, its policy unchanged, b
#                   has no container of that name): an unknown container, a
#                   bind mount source b lacks, a network b lacks, dockerd down at the source,
#                   dockerd unreachable at the destination
#   docker/dest-killed  dmigrated in b killed (-9) after it made and started
#                   the container: rollback, a's runs on; b's stops and is not
#                   started again (policy `no` there until a migration
#                   completes, `always` after); the next dmigrated removes it
#                   and a second migration succeeds
#   docker/src-killed  dmigrate migrate killed (-9) while the container is
#                   frozen: it runs on in a and its guard puts its restart
#                   policy (always) back; b keeps nothing
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

# ---------------------------------------------------------------- migration

DMD=$BUILD/src/daemon/dmigrated
MIG_UP=0
ADDR_B=
# once: `dmigrate setup` in b (the runtime dmigrate), dmigrated in b
mig_up() {
	local out
	((MIG_UP)) && return 0
	ADDR_B=$("$DM" testhost info --prefix "$PREFIX" | sed -n 's/^b.addr=//p')
	"$DM" keygen "$WORK/key" >/dev/null || { echo "keygen failed"; return 1; }
	out=$(dk_in b "$DM" setup --runtime "$BUILD/dmigrate-runc" 2>&1) || { echo "dmigrate setup in b: $out"; return 1; }
	log "setup: $out"
	rm -f "$WORK/ready"
	"$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
		env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$DMD" --listen "$ADDR_B:7070" --key "$WORK/key" \
		--ready-file "$WORK/ready" -v >/dev/null || { echo "cannot start dmigrated in b"; return 1; }
	wait_until 30 test -e "$WORK/ready" || { echo "dmigrated in b is not ready: $(tail -n 3 "$WORK/dmigrated.log")"; return 1; }
	MIG_UP=1
}
# mig NAME [dmigrate migrate options...]: docker:NAME from a to b
mig() {
	local n=$1
	shift
	dk_in a "$DM" migrate "docker:$n" --to "$ADDR_B:7070" --key "$WORK/key" --stats "$WORK/stats-$n.json" "$@"
}
mig_fail() { result FAIL "$1" "$2 (dmigrated: $(tail -n 2 "$WORK/dmigrated.log" | tr '\n' '|'))"; }
# the first number b's copy printed, and how far a's had got
logs_first() { dk_in "$1" docker logs "$2" 2>/dev/null | head -n 1; }
logs_last() { dk_in "$1" docker logs "$2" 2>/dev/null | tail -n 1; }

t_mig_bb() {
	local mode=$1 t=docker/migrate-bb-$1 ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	dk_in a docker run -d --name dk-mbb --restart always -v "dk-vol-$mode:/data" dm-bb >/dev/null || { result FAIL "$t" "docker run"; return; }
	t_mig_bb_1 && ok=1
	dk_rm a dk-mbb
	dk_rm b dk-mbb
	dk_in a docker volume rm "dk-vol-$mode" >/dev/null 2>&1
	dk_in b docker volume rm "dk-vol-$mode" >/dev/null 2>&1
	((ok)) && result PASS "$t"
}
t_mig_bb_1() {
	local out na nb c0 c1 st
	wait_until 60 eval '[[ $(logs_last a dk-mbb) -ge 5 ]] 2>/dev/null' || { result FAIL "$t" "the counter does not run in a"; return 1; }
	# files its layer has in directories of the image that runc looks into
	# (/etc: the hosts file's mount) and in a new one, and a deleted file
	# and a file in its named volume
	dk_in a docker exec dk-mbb sh -c 'echo e1 >/etc/dk-added && mkdir -p /new/d && echo n1 >/new/d/f && rm /bin/true &&
		echo v1 >/data/vf' || { result FAIL "$t" "docker exec in a"; return 1; }
	out=$(mig dk-mbb --mode "$mode" 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	out=$(dk_in b docker exec dk-mbb sh -c 'cat /etc/dk-added /new/d/f /data/vf; test -e /bin/true && echo true-back' 2>&1)
	[[ $out == $'e1\nn1\nv1' ]] || { result FAIL "$t" "its layer and volume in b: '$out'"; return 1; }
	[[ $(dk_in b docker volume inspect --format '{{.Name}}' "dk-vol-$mode" 2>&1) == "dk-vol-$mode" ]] ||
		{ result FAIL "$t" "no volume dk-vol-$mode in b"; return 1; }
	na=$(grep -c . <<<"$out")
	log "migrate: $out"
	out=$(dk_in a docker inspect dk-mbb 2>&1) && { result FAIL "$t" "dk-mbb is still in a"; return 1; }
	st=$(dk_in b docker inspect --format '{{.State.Status}} {{.Config.Image}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Runtime}}' dk-mbb 2>&1)
	[[ $st == "running dm-bb always dmigrate" ]] || { result FAIL "$t" "in b: $st"; return 1; }
	[[ $(dk_in b docker ps --format '{{.Names}}') == dk-mbb ]] || { result FAIL "$t" "b's docker ps: $(dk_in b docker ps)"; return 1; }
	# b's copy goes on counting from where a's was (not from 1: not a new container)
	wait_until 30 eval '[[ -n $(logs_first b dk-mbb) ]]' || { result FAIL "$t" "nothing in b's docker logs"; return 1; }
	nb=$(logs_first b dk-mbb)
	((nb > 5)) || { result FAIL "$t" "b's copy printed $nb first: it started again"; return 1; }
	# (a read between the counter's truncation and its write is empty)
	wait_until 10 eval 'c0=$(dk_in b docker exec dk-mbb cat /tmp/count) && [[ $c0 =~ ^[0-9]+$ ]]' &&
		((c0 >= nb)) || { result FAIL "$t" "docker exec cat /tmp/count in b: '$c0' (first log $nb)"; return 1; }
	wait_until 30 eval 'c1=$(dk_in b docker exec dk-mbb cat /tmp/count) && ((c1 > c0))' || { result FAIL "$t" "the counter does not advance in b"; return 1; }
	[[ $(jq -r .mode "$WORK/stats-dk-mbb.json" 2>/dev/null) == "$mode" ]] || { result FAIL "$t" "--stats: $(head -c 200 "$WORK/stats-dk-mbb.json")"; return 1; }
	# b started the container beside a's preparation: ACCEPT came first,
	# READY later, and the freeze only after READY
	jq -e '.timestamps | .connected and .ready and .connected <= .ready and .ready <= .freeze' \
		"$WORK/stats-dk-mbb.json" >/dev/null ||
		{ result FAIL "$t" "the container did not start beside the preparation: $(jq -c .timestamps "$WORK/stats-dk-mbb.json")"; return 1; }
	dk_in b docker stop -t 1 dk-mbb >/dev/null && [[ $(dk_in b docker inspect --format '{{.State.Status}}' dk-mbb) == exited ]] ||
		{ result FAIL "$t" "docker stop in b"; return 1; }
	dk_in b docker rm dk-mbb >/dev/null || { result FAIL "$t" "docker rm in b"; return 1; }
	return 0
}

# the layer goes before the freeze: a file changed, one removed, one added
# between its pre-send and the freeze (the source paused there) arrive as
# they are at the freeze; a file the tree holds open for writing, written
# through, arrives whole; hard links, a whiteout
t_mig_layer() {
	local t=docker/migrate-layer ok=0
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	dk_in a docker run -d --name dk-mly -v dk-vol-ly:/data -v /anon dm-bb sh -c 'exec 3>>/tmp/held 4>>/data/vheld; i=0
		while :; do i=$((i + 1)); echo $i; echo $i >&3; echo $i >&4; sleep 0.1; done' >/dev/null ||
		{ result FAIL "$t" "docker run"; return; }
	t_mig_layer_1 && ok=1
	dk_rm a -v dk-mly
	dk_rm b -v dk-mly
	dk_in a docker volume rm dk-vol-ly >/dev/null 2>&1
	dk_in b docker volume rm dk-vol-ly >/dev/null 2>&1
	((ok)) && result PASS "$t"
}
t_mig_layer_1() {
	local out marks=$WORK/marks-layer mpid nb st
	wait_until 60 eval '[[ $(logs_last a dk-mly) -ge 3 ]] 2>/dev/null' || { result FAIL "$t" "the counter does not run in a"; return 1; }
	dk_in a docker exec dk-mly sh -c 'mkdir -p /srv/d && head -c 3000000 /dev/urandom >/srv/d/big && md5sum /srv/d/big >/srv/big.md5 &&
		echo keep >/srv/keep && echo mod1 >/srv/mod && echo gone >/srv/gone && echo h >/srv/h1 && ln /srv/h1 /srv/h2 && rm /bin/true &&
		head -c 2000000 /dev/urandom >/data/vbig && md5sum /data/vbig >/srv/vbig.md5 && echo v1 >/data/vmod && echo vg >/data/vgone &&
		echo anon1 >/anon/a' ||
		{ result FAIL "$t" "docker exec in a"; return 1; }
	mkdir -p "$marks"
	dk_in a env DMIGRATE_TEST_PAUSE=src-rootfs-presend DMIGRATE_TEST_MARK="$marks" DMIGRATE_TEST_PAUSE_MS=60000 \
		"$DM" migrate docker:dk-mly --to "$ADDR_B:7070" --key "$WORK/key" --stats "$WORK/stats-dk-mly.json" \
		>"$WORK/mly.out" 2>&1 &
	mpid=$!
	wait_until 60 test -e "$marks/src-rootfs-presend" || { kill "$mpid"; wait "$mpid"; result FAIL "$t" "the source never reached src-rootfs-presend: $(tail -n 2 "$WORK/mly.out")"; return 1; }
	dk_in a docker exec dk-mly sh -c 'echo mod2-longer >/srv/mod && rm /srv/gone && echo added >/srv/added && rm /bin/false &&
		echo v2-longer >/data/vmod && rm /data/vgone && echo vadded >/data/vadd'
	st=$?
	touch "$marks/src-rootfs-presend.go"
	wait "$mpid" || { mig_fail "$t" "migrate: $(tail -n 3 "$WORK/mly.out")"; return 1; }
	((st == 0)) || { result FAIL "$t" "docker exec in a after the pre-send"; return 1; }
	out=$(dk_in b docker exec dk-mly sh -c 'cat /srv/keep /srv/mod /srv/added; test -e /srv/gone && echo gone-back
		test -e /bin/true && echo true-back; test -e /bin/false && echo false-back; md5sum /srv/d/big | cmp -s - /srv/big.md5 || echo big-differs
		cat /data/vmod /data/vadd; test -e /data/vgone && echo vgone-back; md5sum /data/vbig | cmp -s - /srv/vbig.md5 || echo vbig-differs
		cat /anon/a
		[ "$(stat -c %h.%i /srv/h1)" = "$(stat -c %h.%i /srv/h2)" ] && stat -c %h /srv/h1' 2>&1)
	[[ $out == $'keep\nmod2-longer\nadded\nv2-longer\nvadded\nanon1\n2' ]] || { result FAIL "$t" "its layer and volume in b: '$out'"; return 1; }
	# written through the held descriptor until the freeze: every number, in order
	wait_until 30 eval '[[ -n $(logs_first b dk-mly) ]]' || { result FAIL "$t" "nothing in b's docker logs"; return 1; }
	nb=$(logs_first b dk-mly)
	for f in /tmp/held /data/vheld; do
		out=$(dk_in b docker exec dk-mly cat $f | awk -v nb="$nb" '$1 != NR { print "line " NR ": " $1; exit } END { if (NR < nb - 1) print NR " lines, b began at " nb }')
		[[ -z $out ]] || { result FAIL "$t" "$f in b: $out"; return 1; }
	done
	# the layer and the volume went before the freeze, the change after it;
	# not the files the tree holds open for writing (its paths, from its
	# own root, found in the layer and in the volume): the layer's seven
	# (big, big.md5, keep, mod, gone, h1 = h2, vbig.md5) and the volume's
	# three (vbig, vmod, vgone), without held and vheld
	st=$(jq -c '[.rootfs, (.volumes.list[]? | select(.name == "dk-vol-ly"))] | map({layer, presend: .presend | {files, used_files, stale_files}, prewalk: .prewalk | {updated, removed, added}})' "$WORK/stats-dk-mly.json" 2>&1)
	jq -e '.rootfs.layer and .rootfs.presend.files == 7 and .rootfs.presend.used_files >= 4 and
		.rootfs.presend.stale_files >= 1 and .rootfs.prewalk.removed >= 1 and .rootfs.prewalk.added >= 1 and
		.volumes.trees and (.volumes.list | length) == 2 and
		(.volumes.list[] | select(.name == "dk-vol-ly") | .presend.files == 3 and .presend.used_files == 1 and
		 .prewalk.removed >= 1 and .prewalk.added >= 1)' \
		"$WORK/stats-dk-mly.json" >/dev/null || { result FAIL "$t" "stats: $st"; return 1; }
	log "$t: $st"
	return 0
}

t_mig_python() {
	local t=docker/migrate-python ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	# 64 pages rewritten every 10 ms: some after the pre-send took them
	dk_in a docker run -d --name dk-mpy -e MB=64 -e TOUCH=64 dm-python >/dev/null || { result FAIL "$t" "docker run"; return; }
	t_mig_python_1 && ok=1
	dk_rm a dk-mpy
	dk_rm b dk-mpy
	((ok)) && result PASS "$t"
}
t_mig_python_1() {
	local out
	wait_until 120 eval '[[ $(dk_in a docker logs dk-mpy 2>/dev/null | wc -l) -gt 20 ]]' || { result FAIL "$t" "memtouch does not run in a: $(dk_in a docker logs dk-mpy 2>&1 | tail -n 2)"; return 1; }
	out=$(mig dk-mpy --mode post-copy 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	# its memory went while b started the container, some of it written
	# again before the freeze (those copies dropped in b); the freeze came
	# after what was in flight of it was acknowledged (drain_ms), b says how
	# long its restore waited for the store's end (store_wait_ms)
	jq -e '.eager_presend.lazy_pages > 0 and .eager_presend.written_after > 0 and .destination.pages_local > 0 and
		(.eager_presend | has("drain_ms") and has("in_flight_bytes")) and (.restore | has("store_wait_ms"))' \
		"$WORK/stats-dk-mpy.json" >/dev/null ||
		{ result FAIL "$t" "pre-send: $(jq -c '[.eager_presend, .destination.pages_local, .restore.store_wait_ms]' "$WORK/stats-dk-mpy.json")"; return 1; }
	wait_until 30 eval '[[ $(dk_in b docker logs dk-mpy 2>/dev/null | wc -l) -gt 20 ]]' || { result FAIL "$t" "memtouch does not go on in b: $(dk_in b docker logs dk-mpy 2>&1 | tail -n 2)"; return 1; }
	# its arguments (in its stack, moved lazily) read right in b's ps once
	# migrate has returned
	out=$(dk_in b docker top dk-mpy -o pid,args 2>&1 | tail -n +2 | sed 's/^ *[0-9]* *//')
	[[ $out == "/usr/bin/python3 /opt/dm/memtouch.py" ]] || { result FAIL "$t" "docker top in b: '$out'"; return 1; }
	dk_in b docker kill -s USR1 dk-mpy >/dev/null || { result FAIL "$t" "docker kill -s USR1 in b"; return 1; }
	wait_until 60 eval 'dk_in b docker logs dk-mpy 2>&1 | grep -q -e "^VERIFIED" -e BAD' || { result FAIL "$t" "no verdict: $(dk_in b docker logs dk-mpy 2>&1 | tail -n 2)"; return 1; }
	out=$(dk_in b docker logs dk-mpy 2>&1 | grep -e "^VERIFIED" -e BAD)
	[[ $out == "VERIFIED pages=16384" ]] || { result FAIL "$t" "memory in b: $out"; return 1; }
	[[ $(dk_in b docker inspect --format '{{.State.Running}}' dk-mpy) == true ]] || { result FAIL "$t" "memtouch exited in b"; return 1; }
	return 0
}

t_mig_redis() {
	local t=docker/migrate-redis ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	dk_in a docker run -d --name dk-mredis -p 6379:6379 dm-redis >/dev/null || { result FAIL "$t" "docker run"; return; }
	t_mig_redis_1 && ok=1
	[[ -n ${WPID:-} ]] && kill "$WPID" 2>/dev/null
	[[ -n ${HPID:-} ]] && kill "$HPID" 2>/dev/null
	dk_rm a dk-mredis
	dk_rm b dk-mredis
	((ok)) && result PASS "$t"
}
t_mig_redis_1() {
	local aa ab out last got
	aa=$(seg_addr a)
	ab=$(seg_addr b)
	wait_until 60 eval '[[ $(client redis-cli -h "$aa" ping 2>/dev/null) == PONG ]]' || { result FAIL "$t" "redis does not answer in a"; return 1; }
	# 2000 keys, then a writer: INCR through a's published port until it fails
	for ((i = 0; i < 2000; i++)); do echo "SET k$i v$i-$((i * 7))"; done | client redis-cli -h "$aa" >/dev/null ||
		{ result FAIL "$t" "loading the keys"; return 1; }
	: >"$WORK/incr.log"
	( while client redis-cli -h "$aa" incr ctr >>"$WORK/incr.log" 2>/dev/null; do sleep 0.005; done ) &
	WPID=$!
	wait_until 30 eval '[[ $(wc -l <"$WORK/incr.log") -ge 20 ]]' || { result FAIL "$t" "the writer does not write"; return 1; }
	# and a client holding one connection: on the default bridge the container's
	# address changes, so the connection ends: the client gets a reset at the
	# switch-over (not a wait for a frozen process), and on b redis reads EOF
	# on its end and drops it
	client python3 -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], 6379)); s.settimeout(90)
print("held", flush=True)
while True:
    try:
        s.sendall(b"INCR held\r\n")
        if not s.recv(64): print("ended: EOF", flush=True); break
    except socket.timeout: print("ended: timeout", flush=True); break
    except OSError as e: print("ended:", e, flush=True); break
    time.sleep(0.01)' "$aa" >"$WORK/held.log" 2>&1 &
	HPID=$!
	wait_until 30 grep -q held "$WORK/held.log" || { result FAIL "$t" "the held connection: $(cat "$WORK/held.log")"; return 1; }
	out=$(mig dk-mredis --mode post-copy 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	# redis has five threads in its PID namespace's init: the killed source
	# copy is reaped at once (each thread's exit taken as it comes)
	[[ $out != *"not reaped"* ]] || { result FAIL "$t" "the source's copy: $(grep 'not reaped' <<<"$out")"; return 1; }
	wait_until 30 eval '! kill -0 $WPID 2>/dev/null' || { result FAIL "$t" "the writer still writes to a after the move"; return 1; }
	WPID=
	# its address changes: what the lock dropped (the writer's SYNs to a's
	# published port) is not taken to b, where it would open connections
	# the writer answers with a reset (docs/net.md)
	jq -e '.dump.net_lock_packets == null' "$WORK/stats-dk-mredis.json" >/dev/null ||
		{ result FAIL "$t" "packets kept for b: $(jq -c .dump.net_lock_packets "$WORK/stats-dk-mredis.json")"; return 1; }
	# and b's namespace was open before the switch-over: the writer, reset
	# at a's COMMIT, reconnects to b at once (a SYN its lock dropped would
	# wait a second)
	jq -e '.restore.docker.unlocked_before_commit == true' "$WORK/stats-dk-mredis.json" >/dev/null ||
		{ result FAIL "$t" "b's lock: $(jq -c .restore.docker "$WORK/stats-dk-mredis.json")"; return 1; }
	last=$(grep -E '^[0-9]+$' "$WORK/incr.log" | tail -n 1)
	wait_until 30 eval '[[ $(client redis-cli -h "$ab" ping 2>/dev/null) == PONG ]]' || { result FAIL "$t" "redis does not answer on b's published port"; return 1; }
	got=$(client redis-cli -h "$ab" get ctr)
	((got >= last && got <= last + 1)) || { result FAIL "$t" "ctr is $got in b, a acknowledged $last"; return 1; }
	out=$(for ((i = 0; i < 2000; i++)); do echo "GET k$i"; done | client redis-cli -h "$ab" | awk -v bad=0 '$0 != "v" NR-1 "-" (NR-1)*7 { bad++ } END { print NR, bad }')
	[[ $out == "2000 0" ]] || { result FAIL "$t" "keys in b: $out (lines, wrong)"; return 1; }
	# the held connection was reset at the switch-over
	wait_until 30 grep -q ended "$WORK/held.log" || { result FAIL "$t" "the held connection still waits after the move"; return 1; }
	grep -q -e "ended: EOF" -e "reset by peer" "$WORK/held.log" || { result FAIL "$t" "the held connection: $(cat "$WORK/held.log")"; return 1; }
	# its restored end read EOF and redis let it go: only this redis-cli is connected
	wait_until 30 eval '[[ $(client redis-cli -h "$ab" info clients | tr -d "\r" | sed -n "s/^connected_clients://p") == 1 ]]' ||
		{ result FAIL "$t" "clients in b: $(client redis-cli -h "$ab" client list | tr -d '\r' | tr '\n' '|')"; return 1; }
	return 0
}

t_mig_nginx() {
	local t=docker/migrate-nginx ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	dk_in a docker run -d --name dk-mngx -p 8080:80 dm-nginx >/dev/null || { result FAIL "$t" "docker run"; return; }
	t_mig_nginx_1 && ok=1
	dk_rm a dk-mngx
	dk_rm b dk-mngx
	((ok)) && result PASS "$t"
}
t_mig_nginx_1() {
	local aa ab out procs
	aa=$(seg_addr a)
	ab=$(seg_addr b)
	wait_until 60 eval '[[ $(client curl -sS --max-time 5 "http://$aa:8080/index.html" 2>/dev/null) == "dmigrate nginx" ]]' ||
		{ result FAIL "$t" "nginx does not answer in a"; return 1; }
	out=$(mig dk-mngx --mode post-copy 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	wait_until 30 eval '[[ $(client curl -sS --max-time 5 "http://$ab:8080/index.html" 2>/dev/null) == "dmigrate nginx" ]]' ||
		{ result FAIL "$t" "nginx does not answer on b's published port"; return 1; }
	out=$(client curl -sS --max-time 30 "http://$ab:8080/blob-8m" | sha256sum | cut -c1-16)
	[[ $out == "$(client curl -sS --max-time 30 "http://$ab:8080/blob-8m" | sha256sum | cut -c1-16)" && -n $out ]] ||
		{ result FAIL "$t" "blob-8m differs between two downloads"; return 1; }
	procs=$(dk_in b docker top dk-mngx -o pid,args | tail -n +2)
	[[ $(grep -c 'nginx: master' <<<"$procs") == 1 && $(grep -c 'nginx: worker' <<<"$procs") == 1 ]] ||
		{ result FAIL "$t" "in b, not a master and 1 worker: $procs"; return 1; }
	return 0
}

t_mig_image() {
	local t=docker/migrate-image ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	t_mig_image_1 && ok=1
	dk_rm a dk-mimg dk-tmp
	dk_rm b dk-mimg
	dk_in a docker rmi dk-onlya >/dev/null 2>&1
	dk_in b docker rmi dk-onlya >/dev/null 2>&1
	((ok)) && result PASS "$t"
}
t_mig_image_1() {
	local out ida idb st
	# an image only a has (a commit of a container with a file of its own:
	# dm-bb's layer and one more), its container in a
	dk_in a docker run -d --name dk-tmp dm-bb >/dev/null &&
		dk_in a docker exec dk-tmp sh -c 'echo only-in-a >/onlya' &&
		dk_in a docker commit dk-tmp dk-onlya >/dev/null &&
		dk_rm a dk-tmp && dk_in a docker run -d --name dk-mimg --restart always dk-onlya >/dev/null ||
		{ result FAIL "$t" "making dk-onlya"; return 1; }
	ida=$(dk_image_id a dk-onlya)
	dk_in b docker image inspect "$ida" >/dev/null 2>&1 && { result FAIL "$t" "b has the image already"; return 1; }
	wait_until 30 eval '[[ $(logs_last a dk-mimg) -ge 3 ]] 2>/dev/null' || { result FAIL "$t" "the counter does not run in a"; return 1; }
	out=$(mig dk-mimg 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	# b has dm-bb, whose layer is the image's first: only the commit's goes
	st=$(jq -c '.image' "$WORK/stats-dk-mimg.json")
	jq -e '.image.layers == 2 and .image.layers_at_destination == 1 and .image.bytes_left_out > 1000000 and
		.image.bytes < .image.bytes_left_out' "$WORK/stats-dk-mimg.json" >/dev/null ||
		{ result FAIL "$t" "the layer b has was not left out: image $st"; return 1; }
	log "$t: image $st"
	idb=$(dk_image_id b dk-onlya)
	[[ $idb == "$ida" ]] || { result FAIL "$t" "b's dk-onlya is '$idb', a's $ida"; return 1; }
	st=$(dk_in b docker inspect --format '{{.State.Status}} {{.Config.Image}}' dk-mimg 2>&1)
	[[ $st == "running dk-onlya" ]] || { result FAIL "$t" "in b: $st"; return 1; }
	st=$(dk_in b docker exec dk-mimg cat /onlya 2>&1)
	[[ $st == only-in-a ]] || { result FAIL "$t" "the commit's file in b: $st"; return 1; }
	return 0
}

# a network on the segment both hosts share (their bridges dmbr0 are linked)
seg_net() {
	local h gw
	for h in a b; do
		gw=$(seg_addr $h)
		dk_in $h docker network inspect dk-seg >/dev/null 2>&1 && continue
		dk_in $h docker network create -d bridge --subnet 198.19.0.0/24 --gateway "$gw" \
			--ip-range 198.19.0.128/25 -o com.docker.network.bridge.name=dmbr0 dk-seg >/dev/null || return 1
	done
}

t_mig_samenet() {
	local t=docker/migrate-samenet ok=0
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	seg_net || { result FAIL "$t" "docker network create dk-seg"; return; }
	dk_in a docker run -d --name dk-mseg --network dk-seg --ip 198.19.0.150 dm-redis >/dev/null ||
		{ result FAIL "$t" "docker run"; return; }
	t_mig_samenet_1 && ok=1
	[[ -n ${HPID:-} ]] && kill "$HPID" 2>/dev/null
	dk_rm a dk-mseg
	dk_rm b dk-mseg
	((ok)) && result PASS "$t"
}
t_mig_samenet_1() {
	local out ip
	wait_until 60 eval '[[ $(client redis-cli -h 198.19.0.150 ping 2>/dev/null) == PONG ]]' || { result FAIL "$t" "redis does not answer in a"; return 1; }
	# ONE connection, an INCR every 10 ms, each answer the next number, through the move
	client python3 -c 'import socket, sys, time
s = socket.create_connection(("198.19.0.150", 6379)); s.settimeout(60)
print("held", flush=True)
for i in range(1, 601):
    s.sendall(b"INCR c\r\n"); r = s.recv(64)
    if r != b":%d\r\n" % i: print("wrong", i, r, flush=True); sys.exit(1)
    time.sleep(0.01)
print("done", flush=True)' >"$WORK/held.log" 2>&1 &
	HPID=$!
	wait_until 30 grep -q held "$WORK/held.log" || { result FAIL "$t" "the client: $(cat "$WORK/held.log")"; return 1; }
	sleep 1
	out=$(mig dk-mseg 2>&1) || { mig_fail "$t" "migrate: $out"; return 1; }
	# its address stays: b's lock stays until the tree runs (its connections
	# are restored in repair mode behind it)
	jq -e '.restore.docker.unlocked_before_commit == false' "$WORK/stats-dk-mseg.json" >/dev/null ||
		{ result FAIL "$t" "b's lock: $(jq -c .restore.docker "$WORK/stats-dk-mseg.json")"; return 1; }
	wait "$HPID"
	HPID=
	[[ $(tail -n 1 "$WORK/held.log") == done ]] || { result FAIL "$t" "the connection through the move: $(tail -n 2 "$WORK/held.log" | tr '\n' ' ')"; return 1; }
	ip=$(dk_in b docker inspect --format '{{(index .NetworkSettings.Networks "dk-seg").IPAddress}}' dk-mseg 2>&1)
	[[ $ip == 198.19.0.150 ]] || { result FAIL "$t" "in b its address is $ip"; return 1; }
	dk_in a docker inspect dk-mseg >/dev/null 2>&1 && { result FAIL "$t" "dk-mseg is still in a"; return 1; }
	return 0
}

# a refusal: exit status, the message, a's container running on, b clean
refused() {
	local name=$1 want=$2 out=$3 rc=$4 c0 c1
	((rc != 0)) || { result FAIL "$t" "$name: the migration did not fail"; return 1; }
	[[ $out == *"$want"* ]] || { result FAIL "$t" "$name: the message does not say '$want': $out"; return 1; }
	dk_in b docker inspect "$name" >/dev/null 2>&1 && { result FAIL "$t" "$name: a container is left in b"; return 1; }
	[[ -z $(dk_in b sh -c 'ls /run/dmigrate/docker 2>/dev/null') ]] || { result FAIL "$t" "$name: hand-off sockets left in b"; return 1; }
	dk_in a docker inspect "$name" >/dev/null 2>&1 || return 0
	[[ $(dk_in a docker inspect --format '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}' "$name") == "running always" ]] ||
		{ result FAIL "$t" "$name: in a: $(dk_in a docker inspect --format '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}' "$name")"; return 1; }
	c0=$(logs_last a "$name")
	wait_until 30 eval 'c1=$(logs_last a "$name") && ((c1 > c0))' || { result FAIL "$t" "$name: the counter stopped in a"; return 1; }
	return 0
}

t_refuse() {
	local t=docker/refuse ok=0 out
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	t_refuse_1 && ok=1
	dk_rm a dk-rbind dk-rsrc dk-rnet dk-rvol dk-rport
	dk_rm b dk-rport-b
	dk_in a docker volume rm dk-vol-b >/dev/null 2>&1
	dk_in b docker volume rm dk-vol-b >/dev/null 2>&1
	dk_in a docker network rm dk-onlya >/dev/null 2>&1
	dk_in a rm -rf /run/dk-only-a
	[[ -n ${DPID2:-} ]] && kill "$DPID2" 2>/dev/null
	((ok)) && result PASS "$t"
}
t_refuse_1() {
	local out rc
	out=$(mig dk-nosuch 2>&1); rc=$?
	refused dk-nosuch "No such container" "$out" $rc || return 1
	# a bind mount whose source only a has (its private /run)
	dk_in a mkdir -p /run/dk-only-a && dk_in a docker run -d --name dk-rbind --restart always -v /run/dk-only-a:/data dm-bb >/dev/null ||
		{ result FAIL "$t" "docker run -v"; return 1; }
	wait_until 30 eval '[[ -n $(logs_last a dk-rbind) ]]'
	out=$(mig dk-rbind 2>&1); rc=$?
	refused dk-rbind "/run/dk-only-a, which is not on this host" "$out" $rc || return 1
	# a network only a has
	dk_in a docker network create dk-onlya >/dev/null && dk_in a docker run -d --name dk-rnet --restart always --network dk-onlya dm-bb >/dev/null ||
		{ result FAIL "$t" "docker network create / run"; return 1; }
	wait_until 30 eval '[[ -n $(logs_last a dk-rnet) ]]'
	out=$(mig dk-rnet 2>&1); rc=$?
	refused dk-rnet "network dk-onlya, which is not on this host" "$out" $rc || return 1
	# a volume of its volume's name that b has already
	dk_in b docker volume create dk-vol-b >/dev/null && dk_in a docker run -d --name dk-rvol --restart always -v dk-vol-b:/data dm-bb >/dev/null ||
		{ result FAIL "$t" "docker volume create / run -v"; return 1; }
	wait_until 30 eval '[[ -n $(logs_last a dk-rvol) ]]'
	out=$(mig dk-rvol 2>&1); rc=$?
	refused dk-rvol "a volume of that name exists on this host already" "$out" $rc || return 1
	# a published port b's dockerd cannot give (a container of b holds it): b
	# starts the container beside a's preparation, its start fails, READY
	# says why and a rolls back before anything is frozen
	dk_in b docker run -d --name dk-rport-b -p 18080:8080 dm-bb >/dev/null &&
		dk_in a docker run -d --name dk-rport --restart always -p 18080:8080 dm-bb >/dev/null ||
		{ result FAIL "$t" "docker run -p"; return 1; }
	wait_until 30 eval '[[ -n $(logs_last a dk-rport) ]]'
	out=$(mig dk-rport 2>&1); rc=$?
	refused dk-rport "port is already allocated" "$out" $rc || return 1
	[[ $out == *"nothing was changed"* || $out == *"runs on here"* ]] ||
		{ result FAIL "$t" "dk-rport: not rolled back: $out"; return 1; }
	# dockerd unreachable at the source
	dk_in a docker run -d --name dk-rsrc --restart always dm-bb >/dev/null || { result FAIL "$t" "docker run"; return 1; }
	wait_until 30 eval '[[ -n $(logs_last a dk-rsrc) ]]'
	out=$(dk_in a env DOCKER_HOST=unix:///run/dk-nodockerd.sock "$DM" migrate docker:dk-rsrc --to "$ADDR_B:7070" --key "$WORK/key" 2>&1); rc=$?
	refused dk-rsrc "cannot reach dockerd at unix:///run/dk-nodockerd.sock" "$out" $rc || return 1
	# ... and at the destination: a second dmigrated in b whose DOCKER_HOST answers nothing
	rm -f "$WORK/ready2"
	DPID2=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated2.log" b -- \
		env PATH=/usr/sbin:/usr/bin:/sbin:/bin DOCKER_HOST=unix:///run/dk-nodockerd.sock "$DMD" \
		--listen "$ADDR_B:7071" --key "$WORK/key" --ready-file "$WORK/ready2") &&
		wait_until 30 test -e "$WORK/ready2" || { result FAIL "$t" "second dmigrated"; return 1; }
	out=$(dk_in a "$DM" migrate docker:dk-rsrc --to "$ADDR_B:7071" --key "$WORK/key" 2>&1); rc=$?
	refused dk-rsrc "cannot reach dockerd at unix:///run/dk-nodockerd.sock" "$out" $rc || return 1
	return 0
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
	# (the counter truncates the file then writes it: a read in between is
	# empty, so a number is waited for)
	wait_until 10 eval 'n0=$(dk_in a docker exec dk-bb cat /tmp/count) && [[ $n0 =~ ^[0-9]+$ ]]' ||
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

# docker/dest-killed: dmigrated in b killed (-9) after it made and started
# the container (paused after the state): the migration rolls back and a's
# container runs on; b's container stops (its stub's transport closed) and
# dockerd does not start it again although its policy is `always` (it is
# `no` there until a migration completes); the next dmigrated with that
# state directory removes it, and a second migration succeeds.
dk_dmd() {	# [ENV=V...]: a dmigrated in b on port 7074 (docker/refuse leaves one on 7071), state in $WORK/dmdk-state
	rm -f "$WORK/dmdk.ready"
	"$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmdk.log" b -- \
		env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@" "$DMD" --listen "$ADDR_B:7074" --key "$WORK/key" \
		--state-dir "$WORK/dmdk-state" --ready-file "$WORK/dmdk.ready" -v >/dev/null || return 1
	wait_until 30 test -e "$WORK/dmdk.ready"
}
dk_dmd_kill() { pkill -KILL -f "^$DMD --listen $ADDR_B:7074 "; }
t_dest_killed() {
	local t=docker/dest-killed ok=0
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	t_dest_killed_1 && ok=1
	dk_dmd_kill
	dk_rm a dk-dk
	dk_rm b dk-dk
	((ok)) && result PASS "$t"
}
t_dest_killed_1() {
	local mark=$WORK/mark-dk mpid out st
	rm -rf "$mark" "$WORK/dmdk-state"
	mkdir -p "$mark"
	dk_dmd DMIGRATE_TEST_PAUSE=dst-state-received DMIGRATE_TEST_MARK="$mark" DMIGRATE_TEST_PAUSE_MS=60000 ||
		{ result FAIL "$t" "dmigrated on 7074: $(tail -n 3 "$WORK/dmdk.log")"; return 1; }
	dk_in a docker run -d --name dk-dk --restart always dm-bb >/dev/null || { result FAIL "$t" "docker run"; return 1; }
	wait_until 60 eval '[[ $(logs_last a dk-dk) -ge 3 ]] 2>/dev/null' || { result FAIL "$t" "the counter does not run in a"; return 1; }
	dk_in a "$DM" migrate docker:dk-dk --to "$ADDR_B:7074" --key "$WORK/key" --mode post-copy >"$WORK/dk.out" 2>&1 &
	mpid=$!
	wait_until 90 eval "test -e '$mark/dst-state-received' || ! kill -0 $mpid 2>/dev/null"
	[[ -e $mark/dst-state-received ]] || { result FAIL "$t" "b never paused: $(cat "$WORK/dk.out")"; return 1; }
	st=$(dk_in b docker inspect --format '{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}' dk-dk 2>&1)
	[[ $st == "true no" ]] || { result FAIL "$t" "b's container before the kill: '$st' (running, policy no)"; return 1; }
	dk_dmd_kill || { result FAIL "$t" "no dmigrated to kill"; return 1; }
	wait "$mpid" && { result FAIL "$t" "the migration succeeded"; return 1; }
	grep -q "rolled back" "$WORK/dk.out" || { result FAIL "$t" "no rollback: $(cat "$WORK/dk.out")"; return 1; }
	[[ $(dk_in a docker inspect --format '{{.State.Running}}' dk-dk) == true ]] || { result FAIL "$t" "a's container does not run"; return 1; }
	wait_until 30 eval '[[ $(dk_in b docker inspect --format "{{.State.Running}}" dk-dk) == false ]]' ||
		{ result FAIL "$t" "b's container still runs after its dmigrated died"; return 1; }
	# dockerd would restart a stopped `always` container at once: give it the chance
	sleep 2
	st=$(dk_in b docker inspect --format '{{.State.Running}} {{.RestartCount}}' dk-dk 2>&1)
	[[ $st == "false 0" ]] || { result FAIL "$t" "dockerd started b's container again: '$st'"; return 1; }
	dk_dmd || { result FAIL "$t" "the second dmigrated on 7074: $(tail -n 3 "$WORK/dmdk.log")"; return 1; }
	out=$(dk_in b docker inspect --format '{{.State.Status}}' dk-dk 2>&1) && { result FAIL "$t" "b keeps it: $out"; return 1; }
	out=$(dk_in a "$DM" migrate docker:dk-dk --to "$ADDR_B:7074" --key "$WORK/key" --mode post-copy 2>&1) ||
		{ result FAIL "$t" "the second migration: $out"; return 1; }
	st=$(dk_in b docker inspect --format '{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}' dk-dk 2>&1)
	[[ $st == "true always" ]] || { result FAIL "$t" "b's container after the migration: '$st'"; return 1; }
	return 0
}

# docker/src-killed: dmigrate migrate killed (-9) while the container is
# frozen (src-frozen): its tree runs on in a, and the guard puts back the
# restart policy the migration held at `no` (and removes the namespace's
# lock); b keeps nothing.
t_src_killed() {
	local t=docker/src-killed ok=0
	mig_up >"$WORK/mig-up.log" 2>&1 || { result FAIL "$t" "$(cat "$WORK/mig-up.log")"; return; }
	t_src_killed_1 && ok=1
	dk_rm a dk-sk
	dk_rm b dk-sk
	((ok)) && result PASS "$t"
}
t_src_killed_1() {
	local mark=$WORK/mark-sk mpid st c0
	rm -rf "$mark"
	mkdir -p "$mark"
	dk_in a docker run -d --name dk-sk --restart always dm-bb >/dev/null || { result FAIL "$t" "docker run"; return 1; }
	wait_until 60 eval '[[ $(logs_last a dk-sk) -ge 3 ]] 2>/dev/null' || { result FAIL "$t" "the counter does not run in a"; return 1; }
	dk_in a env DMIGRATE_TEST_PAUSE=src-frozen DMIGRATE_TEST_MARK="$mark" DMIGRATE_TEST_PAUSE_MS=60000 \
		"$DM" migrate docker:dk-sk --to "$ADDR_B:7070" --key "$WORK/key" --mode post-copy >"$WORK/sk.out" 2>&1 &
	mpid=$!
	wait_until 90 eval "test -e '$mark/src-frozen' || ! kill -0 $mpid 2>/dev/null"
	[[ -e $mark/src-frozen ]] || { result FAIL "$t" "the migration never paused: $(cat "$WORK/sk.out")"; return 1; }
	st=$(dk_in a docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' dk-sk 2>&1)
	[[ $st == no ]] || { kill $mpid; result FAIL "$t" "a's policy while migrating: '$st' (no)"; return 1; }
	pkill -KILL -f "^$DM migrate docker:dk-sk " || { result FAIL "$t" "no migrate process to kill"; return 1; }
	wait "$mpid"
	wait_until 30 eval '[[ $(dk_in a docker inspect --format "{{.HostConfig.RestartPolicy.Name}}" dk-sk) == always ]]' ||
		{ result FAIL "$t" "a's restart policy stays '$(dk_in a docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' dk-sk)': $(cat "$WORK/sk.out")"; return 1; }
	c0=$(logs_last a dk-sk)
	wait_until 30 eval '[[ $(logs_last a dk-sk) -gt $c0 ]] 2>/dev/null' || { result FAIL "$t" "a's counter stopped at $c0"; return 1; }
	wait_until 30 eval '! dk_in b docker inspect dk-sk >/dev/null 2>&1' || { result FAIL "$t" "b keeps dk-sk"; return 1; }
	return 0
}

# ---------------------------------------------------------------- run

CASES=(docker/images docker/hosts docker/services docker/restart docker/migrate-bb-post-copy
	docker/migrate-bb-stop-and-copy docker/migrate-layer docker/migrate-python docker/migrate-redis docker/migrate-nginx
	docker/migrate-image docker/migrate-samenet docker/refuse docker/dest-killed docker/src-killed)
declare -A RUN=(
	[docker/restart]=t_restart
	[docker/images]=t_images
	[docker/hosts]=t_hosts
	[docker/services]=t_services
	[docker/migrate-bb-post-copy]="t_mig_bb post-copy"
	[docker/migrate-bb-stop-and-copy]="t_mig_bb stop-and-copy"
	[docker/migrate-layer]=t_mig_layer
	[docker/migrate-python]=t_mig_python
	[docker/migrate-redis]=t_mig_redis
	[docker/migrate-nginx]=t_mig_nginx
	[docker/migrate-image]=t_mig_image
	[docker/migrate-samenet]=t_mig_samenet
	[docker/refuse]=t_refuse
	[docker/dest-killed]=t_dest_killed
	[docker/src-killed]=t_src_killed
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
