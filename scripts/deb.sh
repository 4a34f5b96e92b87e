#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds the Debian package with the distribution's tools (debhelper, meson
# build system: debian/) from a copy of this tree, and leaves the .deb in
# OUTDIR (default build-deb/).
#   scripts/deb.sh [OUTDIR]
# Then:  apt-get install ./build-deb/dmigrate_*.deb
#        DM_E2E_PREFIX=pk tests/e2e/run.sh --bin-dir /usr/sbin --no-zdtm   (the e2e tests against it)
# tests/package/run.sh does all of it, and purges the package afterwards.
#
# The Build-Depends of debian/control are installed first (apt-get build-dep:
# a machine without them and without a reachable archive cannot build).
# After the build, every library meson found with pkg-config and every
# program it found must come from a package Build-Depends names (or one such
# a package depends on directly): a new
# dependency in meson.build that debian/control lacks fails here, not on a
# clean build machine later.
set -eu -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$(realpath -m "${1:-build-deb}")
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
# Debian's tools first, as on a build machine (not a pyenv shim's python3)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
tmp=$(mktemp -d /tmp/dmigrate-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# dpkg-buildpackage writes its results beside the source tree: a copy of
# the files git knows (committed or not), so that nothing lands outside
src=$tmp/dmigrate-$version
mkdir "$src"
git ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null -T - -cf - --ignore-failed-read) |
	tar -xf - -C "$src"
# what debian/control says the build needs (and build-essential), from the archive
if ! apt-get build-dep -y -o DPkg::Lock::Timeout=120 "$src" >"$tmp/build-dep.log" 2>&1; then
	tail -n 20 "$tmp/build-dep.log"
	echo "deb.sh: the Build-Depends of debian/control cannot be installed (apt-get build-dep; is the archive reachable?)" >&2
	exit 1
fi
# both cores unless the caller says otherwise (debhelper builds with -j1 then)
[[ ${DEB_BUILD_OPTIONS:-} == *parallel=* ]] || export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	tail -n 40 "$tmp/build.log"
	echo "deb.sh: dpkg-buildpackage failed" >&2
	exit 1
fi

# ---- Build-Depends against what the build used
bdeps=$(awk '
	/^Build-Depends:/ { on = 1; sub(/^Build-Depends:/, ""); print; next }
	on && /^[ \t]/ { print; next }
	{ on = 0 }' "$src/debian/control" | tr ',|' '\n\n' | sed -E 's/\(.*\)//; s/\[.*\]//; s/<.*>//; s/[ \t]//g; s/:[a-z]+$//' | grep .)
# and what those depend on directly (python3 brings /usr/bin/python3 in python3-minimal)
bdeps+=$'\n'$(dpkg-query -W -f='${Depends},${Pre-Depends}\n' $bdeps 2>/dev/null | tr ',|' '\n\n' |
	sed -E 's/\(.*\)//; s/[ \t]//g; s/:[a-z]+$//' | grep .)
log=$(ls "$src"/obj-*/meson-logs/meson-log.txt)
files=()
while read -r dep; do
	pc=$(pkg-config --path "$dep" 2>/dev/null) || { echo "deb.sh: meson found $dep, pkg-config does not" >&2; exit 1; }
	files+=("$pc")
done < <(sed -nE 's/^Run-time dependency ([^ ]+) found: YES.*/\1/p' "$log" | grep -vx threads | sort -u)
while read -r prog; do
	[[ $prog == "$src"/* ]] || files+=("$prog")
done < <(sed -nE 's/^Program [^ ]+ found: YES \((.*)\)$/\1/p' "$log" | sort -u)
owners() {	# FILE: the packages that hold it (dpkg -S knows /bin/x, not /usr/bin/x)
	local p
	for p in "$1" "$(realpath "$1")" "${1#/usr}"; do
		dpkg -S "$p" 2>/dev/null | sed -E 's/: \/.*//' | tr ',' '\n' | sed -E 's/^ +//; s/:[a-z0-9]+$//' | grep . && return 0
	done
	return 1
}
missing=
for f in "${files[@]}"; do
	pkgs=$(owners "$f") || { echo "deb.sh: no package holds $f (found by meson)" >&2; exit 1; }
	grep -qxF -f <(printf '%s\n' "$pkgs") <<<"$bdeps" || missing+=" $(head -n 1 <<<"$pkgs") ($f)"
done
if [[ -n $missing ]]; then
	echo "deb.sh: the build used what Build-Depends (debian/control) does not name:$missing" >&2
	exit 1
fi
mkdir -p "$OUT"
cp "$tmp"/*.deb "$OUT"/
ls -1 "$OUT"/dmigrate_"$version"_*.deb
