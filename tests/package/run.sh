#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The Debian package as a user gets it: built from this tree, installed with
# apt-get, run, purged.  The machine is left as it was: the package and
# whatever its installation pulled in are purged at the end, also when a
# check fails or the run is interrupted.
#   package/build     scripts/deb.sh builds it (its Build-Depends installed
#                     with apt-get build-dep and checked against what meson
#                     used)
#   package/install   apt-get installs the .deb: its Depends resolve
#   package/files     dpkg -L holds the binaries, the unit, the man pages,
#                     bash completion, /etc/dmigrate/ (0700) and
#                     /etc/default/dmigrated as a conffile; the installed
#                     binaries are the package's version; the completion loads
#   package/unit      systemd-analyze verify says nothing of the installed
#                     unit (its binary and man pages are there); dmigrated
#                     started as the unit starts it (ExecStart with the
#                     Environment= and EnvironmentFile= as installed, %S,
#                     StateDirectory=: tests/package/unit-exec.py) with a key
#                     made where the configuration says, in a network and
#                     mount namespace of its own: it listens where the
#                     configuration says, and SIGTERM ends it with status 0
#   package/unit-check  the same check fails copies of the unit with a wrong
#                     binary path or an option dmigrated does not know
#   package/e2e/...   tests/e2e/run.sh --bin-dir on the installed binaries:
#                     post-copy of a forking workload, a migration refused
#                     before the freeze (a CPU feature b lacks), a wrong key
#   package/purge     apt-get purge leaves none of the package's files
#
#   tests/package/run.sh [--keep-deb DIR]
# DM_E2E_PREFIX: the test hosts' prefix (default dmpkg).
# Output: "PASS name" / "FAIL name: reason", then "N passed, N failed, N skipped".
set -u -o pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PREFIX=${DM_E2E_PREFIX:-dmpkg}
KEEP_DEB=
[[ ${1:-} == --keep-deb ]] && KEEP_DEB=$2
APT=(apt-get -y -q -o DPkg::Lock::Timeout=120)
passed=0 failed=0 skipped=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed, $skipped skipped"; ((failed == 0)); exit; }
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }
all_installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort; }

if ((EUID != 0)); then
	echo "SKIP package: needs root (apt-get install, namespaces)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
# never touch a dmigrate someone installed on purpose
if dpkg-query -W -f='${db:Status-Abbrev}' dmigrate 2>/dev/null | grep -q '^[a-z]i'; then
	bad package/install "the package dmigrate is installed on this machine already; not touched (apt-get purge dmigrate, then run again)"
	finish
fi

WORK=$(mktemp -d /tmp/dm-package.XXXXXX)
DAEMON=
INSTALLED=0
cleanup() {
	[[ -n $DAEMON ]] && kill -KILL "$DAEMON" 2>/dev/null
	if ((INSTALLED)); then
		"${APT[@]}" purge dmigrate >"$WORK/purge.log" 2>&1
		# what the installation pulled in (Depends missing before)
		local new
		new=$(comm -13 "$WORK/before.pkgs" <(all_installed))
		[[ -n $new ]] && "${APT[@]}" purge $new >>"$WORK/purge.log" 2>&1
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build
t0=$SECONDS
# no -dbgsym package: not tested, and its making costs time
if ! DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }noddebs" nice "$REPO/scripts/deb.sh" "$WORK/deb" >"$WORK/deb.log" 2>&1; then
	bad package/build "scripts/deb.sh: $(grep -v '^$' "$WORK/deb.log" | tail -n 3 | tr '\n' ' ')"
	finish
fi
DEB=$(ls "$WORK"/deb/dmigrate_*.deb 2>/dev/null | grep -v dbgsym | head -n 1)
[[ -n $KEEP_DEB ]] && mkdir -p "$KEEP_DEB" && cp "$WORK"/deb/*.deb "$KEEP_DEB"/
VERSION=$(dpkg-deb -f "$DEB" Version)
echo "# built $(basename "$DEB") in $((SECONDS - t0)) s"
ok package/build

# ---- install
all_installed >"$WORK/before.pkgs"
INSTALLED=1
if ! "${APT[@]}" install --no-install-recommends "$DEB" >"$WORK/install.log" 2>&1 || ! installed dmigrate; then
	bad package/install "apt-get install: $(grep -E '^(E:|dpkg:)' "$WORK/install.log" | head -n 3 | tr '\n' ' ')"
	finish
fi
ok package/install

# ---- files
dpkg -L dmigrate >"$WORK/files"
r=
for f in /usr/sbin/dmigrate /usr/sbin/dmigrated /usr/sbin/dmigrate-runc /etc/default/dmigrated /etc/dmigrate \
	/usr/share/man/man8/dmigrate.8.gz /usr/share/man/man8/dmigrated.8.gz \
	/usr/share/bash-completion/completions/dmigrate /usr/share/bash-completion/completions/dmigrated; do
	grep -qxF "$f" "$WORK/files" && [[ -e $f ]] || r+=" $f"
done
UNIT=$(grep -E '^(/usr)?/lib/systemd/system/dmigrated\.service$' "$WORK/files" | head -n 1)
[[ -n $UNIT && -f $UNIT ]] || r+=" dmigrated.service"
if [[ -n $r ]]; then
	r="not installed:$r"
elif ! dpkg-query -W -f='${Conffiles}\n' dmigrate | awk '{ print $1 }' | grep -qx /etc/default/dmigrated; then
	r="/etc/default/dmigrated is not a conffile (an upgrade would overwrite the administrator's settings)"
elif [[ $(stat -c %a /etc/dmigrate) != 700 ]]; then
	r="/etc/dmigrate has mode $(stat -c %a /etc/dmigrate), not 700"
elif [[ $(/usr/sbin/dmigrate --version 2>&1) != "dmigrate $VERSION" || $(/usr/sbin/dmigrated --version 2>&1) != "dmigrated $VERSION" ]]; then
	r="the installed binaries say '$(/usr/sbin/dmigrate --version 2>&1 | head -n 1)', '$(/usr/sbin/dmigrated --version 2>&1 | head -n 1)', not version $VERSION"
elif ! bash -c '. /usr/share/bash-completion/completions/dmigrate && complete -p dmigrate && complete -p dmigrated' >/dev/null 2>&1; then
	r="the installed completion does not register dmigrate and dmigrated"
fi
if [[ -n $r ]]; then bad package/files "$r"; else ok package/files; fi

# ---- the unit
unit_ok() {	# sets R: why not
	local out listen key keydir i
	if [[ -z $UNIT ]]; then
		R="no unit installed"
		return 1
	fi
	if command -v systemd-analyze >/dev/null; then
		out=$(systemd-analyze verify "$UNIT" 2>&1) || true
		[[ -z $out ]] || { R="systemd-analyze verify: $(tr '\n' ' ' <<<"$out")"; return 1; }
	fi
	# the configuration the unit reads is the one the package installed (the
	# '-' of an optional file would hide a wrong name)
	out=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$UNIT")
	[[ -n $out ]] || { R="the unit reads no EnvironmentFile"; return 1; }
	for i in $out; do
		[[ -f $i ]] || { R="the unit's EnvironmentFile $i is not there"; return 1; }
	done
	out=$(python3 "$HERE/unit-exec.py" "$UNIT" --print 2>&1) || { R="$out"; return 1; }
	echo "# the unit runs: $(tr '\n' ' ' <<<"$out")"
	listen=$(python3 "$HERE/unit-exec.py" "$UNIT" --getenv DMIGRATED_LISTEN)
	key=$(python3 "$HERE/unit-exec.py" "$UNIT" --getenv DMIGRATED_KEY)
	keydir=$(dirname "$key")
	[[ -n $listen && -n $key ]] || { R="the configuration names no listening address or no key"; return 1; }
	[[ -d $keydir ]] || { R="the key's directory $keydir is not there: dmigrate keygen $key fails"; return 1; }
	# its own network (the address may be in use here) and mount namespace:
	# the key made with the installed dmigrate in a tmpfs over its directory,
	# /var/lib a tmpfs (StateDirectory=); nothing outside is written
	unshare --mount --net --propagation private -- sh -c '
		ip link set lo up && mount -t tmpfs -o mode=0700 dmpkg-key "$1" && mount -t tmpfs dmpkg-state /var/lib &&
		/usr/sbin/dmigrate keygen "$2" >/dev/null && exec python3 "$3" "$4" --make-state-dirs' \
		_ "$keydir" "$key" "$HERE/unit-exec.py" "$UNIT" >"$WORK/daemon.out" 2>&1 &
	DAEMON=$!
	# listening (it read the key first), polled with a generous bound
	for ((i = 0; i < 600; i++)); do
		[[ -d /proc/$DAEMON && $(awk '{ print $3 }' "/proc/$DAEMON/stat" 2>/dev/null) != Z ]] || break
		nsenter --net="/proc/$DAEMON/ns/net" ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -qxF "$listen" && break
		sleep 0.05
	done
	if ! nsenter --net="/proc/$DAEMON/ns/net" ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -qxF "$listen"; then
		wait "$DAEMON"
		R="dmigrated as the unit starts it does not listen on $listen (exit $?): $(head -n 2 "$WORK/daemon.out" | tr '\n' ' ')"
		DAEMON=
		return 1
	fi
	[[ $(readlink "/proc/$DAEMON/exe") == /usr/sbin/dmigrated ]] ||
		{ R="the listening process is $(readlink "/proc/$DAEMON/exe"), not /usr/sbin/dmigrated"; return 1; }
	kill -TERM "$DAEMON"
	wait "$DAEMON"
	i=$?
	DAEMON=
	((i == 0)) || { R="dmigrated ended with status $i on SIGTERM: $(tail -n 2 "$WORK/daemon.out" | tr '\n' ' ')"; return 1; }
}
R=
if unit_ok; then ok package/unit; else bad package/unit "$R"; fi
# the check itself: copies of the installed unit with a wrong binary path or
# an option dmigrated does not know must fail it
r=
if [[ -n $UNIT ]]; then
	real=$UNIT
	UNIT=$WORK/dmigrated.service
	for edit in 's|^ExecStart=/usr/sbin/|ExecStart=/usr/lib/|' 's|^\(ExecStart=.*\) --state-dir |\1 --state-directory |'; do
		sed "$edit" "$real" >"$UNIT"
		if cmp -s "$real" "$UNIT"; then
			r+=" (sed '$edit' changed nothing)"
		elif unit_ok >/dev/null; then
			r+=" $(grep '^ExecStart=' "$UNIT")"
		fi
	done
	UNIT=$real
fi
if [[ -n $r ]]; then bad package/unit-check "the check passed broken units:$r"; else ok package/unit-check; fi

# ---- e2e against the installed binaries
bindir=$(dirname "$(grep -E '/s?bin/dmigrate$' "$WORK/files" | head -n 1)")
ip route replace unreachable 198.18.0.0/15 2>/dev/null
out=$(DM_E2E_PREFIX=$PREFIX "$REPO/tests/e2e/run.sh" --bin-dir "$bindir" --no-zdtm --no-rollback --no-safety \
	--modes post-copy --filter '^(work/busybox/post-copy|refuse/xfeature|auth/wrong-key)$' 2>&1)
rc=$?
n=$(grep -cE '^PASS ' <<<"$out")
grep -E '^(PASS|FAIL|SKIP) ' <<<"$out" | sed -E 's/^(PASS|FAIL|SKIP) /\1 package\/e2e\//'
passed=$((passed + n))
failed=$((failed + $(grep -cE '^FAIL ' <<<"$out")))
skipped=$((skipped + $(grep -cE '^SKIP ' <<<"$out")))
if ((n != 3)); then
	bad package/e2e "$n of the 3 cases passed (exit $rc): $(grep -vE '^(PASS|FAIL|SKIP) ' <<<"$out" | tail -n 2 | tr '\n' ' ')"
elif ((rc != 0)); then
	bad package/e2e "tests/e2e/run.sh exited $rc"
fi

# ---- purge
r=
if ! "${APT[@]}" purge dmigrate >"$WORK/purge.log" 2>&1; then
	r="apt-get purge: $(grep -E '^(E:|dpkg:)' "$WORK/purge.log" | head -n 2 | tr '\n' ' ')"
else
	new=$(comm -13 "$WORK/before.pkgs" <(all_installed))
	[[ -n $new ]] && "${APT[@]}" purge $new >>"$WORK/purge.log" 2>&1
	INSTALLED=0
	if dpkg-query -W -f='${db:Status-Abbrev}' dmigrate 2>/dev/null | grep -q '^[a-z]i'; then
		r="dmigrate is still installed"
	else
		while read -r f; do
			# (dpkg -L lists /lib, a link to usr/lib here)
			[[ -f $f || (-L $f && ! -d $f) ]] && r+=" $f"
		done <"$WORK/files"
		[[ -d /etc/dmigrate ]] && r+=" /etc/dmigrate"
		[[ -n $r ]] && r="left behind:$r"
		[[ -z $r && -n $(comm -3 "$WORK/before.pkgs" <(all_installed)) ]] &&
			r="the installed packages differ from before: $(comm -3 "$WORK/before.pkgs" <(all_installed) | tr -d '\t' | tr '\n' ' ')"
	fi
fi
if [[ -n $r ]]; then bad package/purge "$r"; else ok package/purge; fi
finish
