# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# Two Docker hosts on one machine, for the Docker tests and bench/docker-bench.sh
# (docs/containers.md, "Docker test hosts").  Sourced; needs
#   DM       the dmigrate binary (its `testhost` makes the two hosts)
#   DK_WORK  a work directory of this run (dk_up makes DK_WORK/a and DK_WORK/b)
# and takes
#   DK_PREFIX      the test hosts' prefix (default $DM_E2E_PREFIX or dmdk)
#   DK_CACHE       where the images' rootfs tarballs are kept between runs
#                  (default: DIR/docker-rootfs next to $DM)
#   DK_EXPERIMENTAL=1  dockerd --experimental (docker checkpoint)
#   DK_TESTHOST_ARGS   more arguments of `testhost up` (--tbf: the 1 Gbit link)
#   DK_DOCKERD_PATH    PATH of dockerd (and so of containerd and runc: the
#                  CRIU that runc finds), default Debian's
#
# Each test host (`dmigrate testhost`: its own network, mount, PID, UTS and
# cgroup namespaces) runs its own dockerd, which starts its own containerd.
# Inside the host's mount namespace, private mounts cover the default paths,
# so that dockerd, the docker CLI and dmigrate there use them unchanged:
#   /run                 a tmpfs of the host's own (/run/docker.sock,
#                        /run/docker, /run/containerd; /run/runc stays the
#                        host's runc root of `testhost`)
#   /var/lib/docker      DK_WORK/H/lib-docker     (data root, overlay2)
#   /var/lib/containerd  DK_WORK/H/lib-containerd
#   /etc/docker          DK_WORK/H/etc-docker     (daemon.json)
# Nothing is shared: host b sees none of host a's images, layers or
# containers.  Host a's default bridge is 172.17.0.0/16, b's 172.18.0.0/16
# (two machines' default bridges do not share a segment).  dockerd's log:
# DK_WORK/H/dockerd.log.
#
#   dk_up                   both hosts, both dockerds ready (or prints why not)
#   dk_down                 every container, dockerd, containerd, mount,
#                           cgroup and file dk_up made; twice is fine
#   dk_in H CMD...          CMD in host H (a or b), Debian's docker first in PATH
#   dk_wait_ready H         dockerd of H answers (bounded; its log on failure)
#   dk_dockerd_stop H, dk_dockerd_start H, dk_dockerd_restart H
#                           dockerd of H down (SIGTERM), up again (its
#                           daemon.json as it is now), both and ready
#   dk_logs                 the tail of both dockerd logs (on a failure)
#   dk_images_build H       the images (dm-bb, dm-python, dm-redis, dm-nginx)
#                           imported in H from cached rootfs tarballs
#   dk_images_copy F T [IMG...]  docker save in F | docker load in T (same IDs)
#   dk_image_drop H IMG     H without IMG (the "image missing" case)
#   dk_image_id H IMG       the image's ID in H

DK_PREFIX=${DK_PREFIX:-${DM_E2E_PREFIX:-dmdk}}
DK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DK_IMAGES=(dm-bb dm-python dm-redis dm-nginx)
DK_READY_SECONDS=${DK_READY_SECONDS:-240}
# the machine's record of the docker test hosts that are up, and of the mount
# points dk_up had to create (removed when the last set goes)
DK_STATE=/run/dmigrate-docker
# the default paths covered in each host (and made on the machine if missing)
DK_MOUNTPOINTS=(/var/lib/docker /var/lib/containerd /etc/docker)

_dk_err() { echo "docker hosts: $*" >&2; }

dk_in() {
	local h=$1
	shift
	"$DM" testhost run --prefix "$DK_PREFIX" "$h" -- \
		env -u DOCKER_HOST -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin "$@"
}

# the host's dockerd pid (as seen from the machine), "" when it does not run
_dk_dockerd_pid() {
	local f=$DK_WORK/$1/dockerd.pid p
	[[ -f $f ]] || return 1
	p=$(<"$f")
	[[ $p =~ ^[0-9]+$ && -d /proc/$p && $(cat "/proc/$p/comm" 2>/dev/null) == dockerd ]] && echo "$p"
}

dk_wait_ready() {
	local h=$1 end=$((SECONDS + DK_READY_SECONDS)) out
	while :; do
		# (a daemon not answering yet fails the command; its words vary)
		if out=$(dk_in "$h" docker info --format '{{.Driver}}' 2>&1); then
			[[ $out == overlay2 ]] && return 0
			_dk_err "host $h: dockerd's storage driver is '$out', not overlay2"
			break
		fi
		if ! _dk_dockerd_pid "$h" >/dev/null; then
			_dk_err "host $h: dockerd is not running"
			break
		fi
		((SECONDS >= end)) && { _dk_err "host $h: dockerd does not answer after $DK_READY_SECONDS s"; break; }
		sleep 0.2
	done
	echo "--- host $h: $DK_WORK/$h/dockerd.log (last lines):" >&2
	tail -n 25 "$DK_WORK/$h/dockerd.log" >&2 2>/dev/null
	return 1
}

# the mount points of DK_MOUNTPOINTS the machine lacks: made, and recorded
_dk_mountpoints() {
	local m
	mkdir -p "$DK_STATE/sets" || return 1
	for m in "${DK_MOUNTPOINTS[@]}"; do
		[[ -d $m ]] && continue
		mkdir -p "$m" || return 1
		echo "$m" >>"$DK_STATE/made"
	done
}

# the host's private mounts over the default paths (in its mount namespace)
_dk_mounts() {
	local h=$1 d=$DK_WORK/$1
	mkdir -p "$d/run" "$d/lib-docker" "$d/lib-containerd" "$d/etc-docker" || return 1
	chmod 0711 "$d/lib-docker"
	dk_in "$h" sh -ec '
		d=$1
		# a tmpfs of its own on /run, with the host runc root kept at /run/runc
		mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$d/run"
		mkdir "$d/run/runc" "$d/run/lock"
		mount -n --bind /run/runc "$d/run/runc"
		mount -n --move "$d/run" /run
		mount -n --bind "$d/lib-docker" /var/lib/docker
		mount -n --bind "$d/lib-containerd" /var/lib/containerd
		mount -n --bind "$d/etc-docker" /etc/docker' sh "$d"
}

# the host's /etc/docker/daemon.json as dk_up writes it (later changes, such
# as a runtime that `dmigrate setup` registers, are kept across restarts)
_dk_daemon_json() {
	local h=$1 bip=172.17.0.1/16 exp=false
	[[ $h == b ]] && bip=172.18.0.1/16
	[[ ${DK_EXPERIMENTAL:-0} == 1 ]] && exp=true
	cat >"$DK_WORK/$h/etc-docker/daemon.json" <<-EOF
	{
		"storage-driver": "overlay2",
		"bip": "$bip",
		"experimental": $exp,
		"log-driver": "json-file"
	}
	EOF
}

# dk_dockerd_start H: dockerd in H (as configured by its /etc/docker); its
# log is appended to DK_WORK/H/dockerd.log
dk_dockerd_start() {
	local h=$1 d=$DK_WORK/$1 pid
	_dk_dockerd_pid "$h" >/dev/null && { _dk_err "host $h: dockerd runs already"; return 1; }
	# the segment's bridge (dmbr0) forwards as before dockerd: with
	# br_netfilter, bridged frames pass the FORWARD chain, whose policy
	# dockerd sets to DROP when it turns forwarding on
	dk_in "$h" sh -c 'for t in iptables ip6tables; do
			$t -C FORWARD -i dmbr0 -o dmbr0 -j ACCEPT 2>/dev/null ||
				$t -I FORWARD -i dmbr0 -o dmbr0 -j ACCEPT || exit 1
		done' || { _dk_err "host $h: iptables"; return 1; }
	echo "--- dockerd started $(date -u +%FT%T.%3NZ)" >>"$d/dockerd.log"
	pid=$("$DM" testhost spawn --prefix "$DK_PREFIX" --log "$d/dockerd.log" "$h" -- \
		env -u DOCKER_HOST -u NOTIFY_SOCKET PATH="${DK_DOCKERD_PATH:-/usr/sbin:/usr/bin:/sbin:/bin}" \
		dockerd) || { _dk_err "host $h: cannot start dockerd"; return 1; }
	echo "$pid" >"$d/dockerd.pid"
}

# dk_dockerd_stop H: H's dockerd stopped (SIGTERM, bounded; its containers
# stop with it), as a daemon that is down; dk_dockerd_start H and
# dk_wait_ready H bring it back
dk_dockerd_stop() {
	local pid i
	pid=$(_dk_dockerd_pid "$1") || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 600; i++)); do
		[[ -d /proc/$pid ]] || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	_dk_err "host $1: dockerd did not stop within 60 s: killed"
}

# dk_dockerd_restart H: stopped, started, ready (e.g. after a change to its
# /etc/docker/daemon.json that SIGHUP does not reload)
dk_dockerd_restart() { dk_dockerd_stop "$1" && dk_dockerd_start "$1" && dk_wait_ready "$1"; }

dk_up() {
	local h
	[[ -n ${DK_WORK:-} ]] || { _dk_err "DK_WORK is not set"; return 1; }
	command -v dockerd >/dev/null && [[ -x /usr/bin/docker ]] ||
		{ _dk_err "dockerd or /usr/bin/docker not found (Debian package docker.io: scripts/deps.sh)"; return 1; }
	dk_down
	mkdir -p "$DK_WORK" || return 1
	(flock 9 && _dk_mountpoints && echo "$DK_WORK" >"$DK_STATE/sets/$DK_PREFIX") 9>>/run/dmigrate-docker.lock ||
		{ _dk_err "cannot make the mount points ${DK_MOUNTPOINTS[*]}"; return 1; }
	# shellcheck disable=SC2086  # DK_TESTHOST_ARGS: words (e.g. --tbf)
	"$DM" testhost up --prefix "$DK_PREFIX" ${DK_TESTHOST_ARGS:-} >"$DK_WORK/testhost-up.log" 2>&1 ||
		{ _dk_err "testhost up: $(tail -n 1 "$DK_WORK/testhost-up.log")"; return 1; }
	for h in a b; do
		_dk_mounts "$h" || { _dk_err "host $h: private mounts failed"; return 1; }
		_dk_daemon_json "$h" || return 1
		dk_dockerd_start "$h" || return 1
	done
	for h in a b; do
		dk_wait_ready "$h" || return 1
	done
}

# dk_down: containers removed and dockerd stopped while it can, then the test
# hosts (their pid namespaces end every process left: containerd, shims;
# their mount namespaces every mount), then the files
dk_down() {
	local h work works=() stoppers=() rec=
	[[ -n ${DK_WORK:-} ]] && works+=("$DK_WORK")
	# and a set left by an earlier run of this prefix (killed): its work directory
	[[ -f $DK_STATE/sets/$DK_PREFIX ]] && rec=$(<"$DK_STATE/sets/$DK_PREFIX")
	[[ -n $rec && $rec != "${DK_WORK:-}" ]] && works+=("$rec")
	for work in "${works[@]}"; do
		# both hosts at once: a dockerd takes seconds to stop
		for h in a b; do
			(
				pid=$(DK_WORK=$work _dk_dockerd_pid "$h") || exit 0
				ids=$(DK_WORK=$work dk_in "$h" timeout 60 docker ps -aq 2>/dev/null)
				# shellcheck disable=SC2086
				[[ -n $ids ]] && DK_WORK=$work dk_in "$h" timeout 120 docker rm -f $ids >/dev/null 2>&1
				kill -TERM "$pid" 2>/dev/null
				for ((i = 0; i < 300; i++)); do
					[[ -d /proc/$pid ]] || exit 0
					sleep 0.1
				done
				kill -KILL "$pid" 2>/dev/null
			) &
			stoppers+=($!)
		done
	done
	((${#stoppers[@]} == 0)) || wait "${stoppers[@]}"
	"$DM" testhost down --prefix "$DK_PREFIX" >/dev/null 2>&1
	for work in "${works[@]}"; do
		for h in a b; do
			# the mounts went with the host's mount namespace: plain files
			rm -rf "${work:?}/$h"
		done
	done
	(
		flock 9
		rm -f "$DK_STATE/sets/$DK_PREFIX"
		if [[ -d $DK_STATE/sets && -z $(ls -A "$DK_STATE/sets") ]]; then
			if [[ -f $DK_STATE/made ]]; then
				while read -r m; do rmdir "$m" 2>/dev/null; done <"$DK_STATE/made"
			fi
			rm -rf "$DK_STATE"
			rm -f /run/dmigrate-docker.lock
		fi
	) 9>>/run/dmigrate-docker.lock
	return 0
}

dk_logs() {
	local h
	for h in a b; do
		[[ -f ${DK_WORK:-}/$h/dockerd.log ]] || continue
		echo "--- host $h: dockerd.log (last lines)"
		tail -n "${1:-20}" "$DK_WORK/$h/dockerd.log"
	done
}

# ---- images ------------------------------------------------------------------

DK_CACHE=${DK_CACHE:-$(dirname "$DM")/docker-rootfs}

dk_image_id() { dk_in "$1" docker image inspect --format '{{.Id}}' "$2" 2>/dev/null; }

# dk_images_build H: each image of DK_IMAGES imported in H from its rootfs
# tarball (built by mkrootfs.sh into DK_CACHE if missing or out of date)
dk_images_build() {
	local h=$1 img out c pids=() rc=0 i
	# the tarballs one after the other (mkbundle.sh shares its bundles), the
	# imports at once
	for img in "${DK_IMAGES[@]}"; do
		out=$("$DK_DIR/mkrootfs.sh" "$img" "$DK_CACHE" 2>&1) || { _dk_err "$img: $out"; return 1; }
	done
	for img in "${DK_IMAGES[@]}"; do
		local changes=() args=()
		mapfile -t changes <"$DK_CACHE/$img.changes"
		for c in "${changes[@]}"; do args+=(--change "$c"); done
		dk_in "$h" docker import "${args[@]}" "$DK_CACHE/$img.tar" "$img:latest" >"$DK_WORK/import-$img.out" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" && continue
		_dk_err "${DK_IMAGES[$i]}: docker import: $(cat "$DK_WORK/import-${DK_IMAGES[$i]}.out")"
		rc=1
	done
	return $rc
}

# dk_images_copy FROM TO [IMG...]: docker save | docker load (the same IDs)
dk_images_copy() {
	local from=$1 to=$2 out
	shift 2
	(($#)) || set -- "${DK_IMAGES[@]}"
	out=$( (dk_in "$from" docker save "$@" | dk_in "$to" docker load) 2>&1) ||
		{ _dk_err "docker save in $from | docker load in $to: $out"; return 1; }
}

# dk_image_drop H IMG: H has no IMG (its containers of it removed first)
dk_image_drop() {
	local h=$1 img=$2 ids
	ids=$(dk_in "$h" docker ps -aq --filter "ancestor=$img")
	# shellcheck disable=SC2086
	[[ -z $ids ]] || dk_in "$h" docker rm -f $ids >/dev/null
	dk_in "$h" docker rmi -f "$img" >/dev/null 2>&1
	! dk_in "$h" docker image inspect "$img" >/dev/null 2>&1
}
