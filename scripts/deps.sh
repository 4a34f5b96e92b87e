#!/bin/bash
# Debian packages that build and test dmigrate need (idempotent).
set -eu -o pipefail
# runc and the services (with their clients: redis-tools, curl; memcached's is
# busybox nc) of the container tests: tests/containers/mkbundle.sh builds
# their bundles from these packages' files
# libcurl4-openssl-dev: the Docker Engine API client (HTTP over dockerd's unix socket)
# libarchive-dev: a Docker image's `docker save` tar without the layers the destination has
# libnftables-dev: the network lock runs its nft scripts in process (no nft fork in the frozen window)
# docker.io (dockerd 20.10, containerd, /usr/bin/docker): the Docker tests run a
# dockerd of their own in each test host (tests/docker/lib.sh), with private
# /run, /var/lib/docker, /etc/docker: a system dockerd the package may start
# is neither used nor touched
# libclang-rt-dev: libFuzzer and the sanitizer runtimes of tests/fuzz (clang only recommends it)
# tcpdump: bench/tcpgap.sh records a kept client's connection across a migration
# debhelper, dpkg-dev, systemd (systemd.pc, systemd-analyze): the Debian
# package's build (scripts/deb.sh, which also runs apt-get build-dep for
# debian/control) and its test (tests/package/run.sh); with these, the
# suite's package step needs no archive
pkgs=(build-essential meson ninja-build pkg-config clang libclang-rt-dev
	protobuf-c-compiler libprotobuf-c-dev libcmocka-dev libjansson-dev
	libssl-dev zlib1g-dev libmnl-dev libfuse3-dev libcap-dev libseccomp-dev
	libcurl4-openssl-dev libnftables-dev libarchive-dev
	iproute2 util-linux procps psmisc python3 busybox-static jq
	runc redis-server redis-tools memcached nginx-light curl nftables
	docker.io tcpdump
	debhelper dpkg-dev systemd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
