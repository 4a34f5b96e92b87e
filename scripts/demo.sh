#!/bin/bash
# README's main job: dependencies, build, then a live migration between two
# local test hosts (dmigrate demo).
set -eu -o pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
[[ -f build/build.ninja ]] || meson setup build >/dev/null
ninja -C build >/dev/null
exec build/dmigrate demo "$@"
