#!/bin/bash
# Debian packages that build and test dmigrate need (idempotent).
set -eu -o pipefail
pkgs=(build-essential meson ninja-build pkg-config clang
	protobuf-c-compiler libprotobuf-c-dev libcmocka-dev libjansson-dev
	libssl-dev zlib1g-dev libmnl-dev libfuse3-dev libcap-dev libseccomp-dev
	iproute2 util-linux procps psmisc python3 busybox-static jq)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
