#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds the Debian package with the distribution's tools (debhelper, meson
# build system: debian/) from a copy of this tree, and leaves the .deb in
# OUTDIR (default build-deb/).
#   scripts/deb.sh [OUTDIR]
# Then:  apt-get install ./build-deb/dmigrate_*.deb
#        DM_E2E_PREFIX=pk tests/e2e/run.sh --bin-dir /usr/sbin   (the e2e tests against it)
set -eu -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$(realpath -m "${1:-build-deb}")
scripts/deps.sh >/dev/null
# packaging tools: not needed to build or test from the repository
need=()
for p in debhelper dpkg-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
tmp=$(mktemp -d /tmp/dmigrate-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# dpkg-buildpackage writes its results beside the source tree: a copy of
# the files git knows (committed or not), so that nothing lands outside
src=$tmp/dmigrate-$version
mkdir "$src"
git ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null -T - -cf - --ignore-failed-read) |
	tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1 || {
	tail -n 40 "$tmp/build.log"
	echo "deb.sh: dpkg-buildpackage failed" >&2
	exit 1
}
mkdir -p "$OUT"
cp "$tmp"/*.deb "$OUT"/
ls -1 "$OUT"/dmigrate_"$version"_*.deb
