#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The whole test suite, as README.md says: builds dmigrate (normal and
# ASan+UBSan), runs the unit tests in both builds, the install and Debian
# package checks (tests/install, tests/package), the zdtm feature suite in
# every engine mode, the fuzz targets (20 s each), the e2e migration tests,
# the container tests and a short soak.
# The last line is the summary: "N passed, N failed, N skipped".
#
#   tests/run.sh [--quick]     --quick: skip the sanitizer build
set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DM_BUILD:-$REPO/build}
ASAN_BUILD=${DM_ASAN_BUILD:-$REPO/build-asan}
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1

passed=0 failed=0 skipped=0
note() { printf '%s\n' "$*"; }
# sections and their durations, printed before the summary (CI's budget)
sect="" sect_t0=$SECONDS
times=()
section() {
	[[ -n $sect ]] && times+=("$sect: $((SECONDS - sect_t0)) s")
	sect=$1 sect_t0=$SECONDS
	[[ -n $1 ]] && note "# $1"
}

# count "N passed, N failed, N skipped" of a sub-runner's last line; a runner
# that exits non-zero counts as a failure even when its summary says none
add_summary() {
	local line=$1 rc=${2:-0} name=${3:-runner}
	if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
		if ((rc != 0 && BASH_REMATCH[2] == 0)); then
			note "FAIL $name: exit status $rc"
			failed=$((failed + 1))
		fi
	else
		note "FAIL $name: no summary line (got: $line)"
		failed=$((failed + 1))
	fi
}

build() {
	local dir=$1
	shift
	if [[ ! -f $dir/build.ninja ]]; then
		meson setup "$dir" "$REPO" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

# One run per tests/unit/test_*.c: a source whose binary was not built (left
# out of tests/unit/meson.build) fails, it is not skipped.
run_units() {
	local dir=$1 tag=$2 src name t
	for src in "$REPO"/tests/unit/test_*.c; do
		name=$(basename "$src" .c)
		t=$dir/tests/unit/$name
		if [[ ! -x $t ]]; then
			note "FAIL unit$tag/$name: not built (is it listed in tests/unit/meson.build?)"
			failed=$((failed + 1))
			continue
		fi
		if (cd "$dir" && timeout 300 "$t" >"$dir/$name.log" 2>&1); then
			note "PASS unit$tag/$name"
			passed=$((passed + 1))
		else
			note "FAIL unit$tag/$name (log: $dir/$name.log)"
			tail -20 "$dir/$name.log"
			failed=$((failed + 1))
		fi
	done
}

section "build: $BUILD"
if ! build "$BUILD" -Dwerror=true; then
	note "FAIL build"
	echo "0 passed, 1 failed"
	exit 1
fi
run_units "$BUILD" ""

# The other builds (the ASan tree, the fuzz targets) compile in the background,
# niced, while the steps that need only the normal build run (install ...
# zdtm): those leave a core idle much of the time.  Their sections wait for
# them; how long is printed.
BG_LOG=$BUILD.bg-builds.log
bg_builds() {	# their output to $BG_LOG, one status line each to $BUILD.bg-builds.status.log
	local rc=0
	if ((QUICK == 0)); then
		build "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false || rc=1
		echo "asan build: $rc" >>"$BUILD.bg-builds.status.log"
	fi
	# the fuzz step reports a failure here (it builds again and says why)
	DM_BUILD=$BUILD "$REPO/tests/fuzz/build.sh" --build-only
	echo "fuzz build: $?" >>"$BUILD.bg-builds.status.log"
	return $rc
}
: >"$BUILD.bg-builds.status.log"
(renice -n 19 -p $BASHPID >/dev/null; bg_builds) >"$BG_LOG" 2>&1 &
BG_PID=$! BG_RC=0
bg_wait() {	# wait for the background builds (once), say how long
	[[ -n $BG_PID ]] || return 0
	local t0=$SECONDS
	wait "$BG_PID"
	BG_RC=$?
	BG_PID=
	note "# waited $((SECONDS - t0)) s for the background builds ($(tr '\n' ' ' <"$BUILD.bg-builds.status.log" | sed 's/ $//'))"
}

section "install"
out=$("$REPO/tests/install/run.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc install

# the Debian package: built with scripts/deb.sh, installed with apt-get,
# checked (files, the unit's command line), a few e2e cases against the
# installed binaries, purged (with what it pulled in) whatever happened
section "package"
out=$("$REPO/tests/package/run.sh" 2>&1)
rc=$?
printf '%s\n' "$out"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc package

section "cli"
out=$("$REPO/tests/cli/run.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 cli\//"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc cli

section "containers (runc)"
out=$("$REPO/tests/containers/runc-cr.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 runc\//"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc runc

# zdtm: every engine mode the build supports
for mode in cr dump lazy; do
	section "zdtm --mode $mode"
	out=$("$REPO/tests/zdtm/run.sh" --mode "$mode" --build "$BUILD" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 zdtm-$mode\//"
	add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc "zdtm-$mode"
done

if ((QUICK == 0)); then
	section "sanitizer build: $ASAN_BUILD"
	bg_wait
	if ((BG_RC == 0)); then
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_units "$ASAN_BUILD" "-asan"
	else
		cat "$BG_LOG"
		note "FAIL asan build"
		failed=$((failed + 1))
	fi
fi

# fuzz targets: each runs a fixed time from the corpus in the repo; a crash,
# leak or sanitizer report is a failure (tests/fuzz/build.sh)
section "fuzz"
bg_wait
out=$(DM_BUILD=$BUILD "$REPO/tests/fuzz/build.sh" "${DM_FUZZ_SECONDS:-20}" 2>&1)
rc=$?
printf '%s\n' "$out"
fz_pass=$(grep -c '^PASS fuzz/' <<<"$out")
fz_fail=$(grep -c '^FAIL fuzz' <<<"$out")
passed=$((passed + fz_pass))
failed=$((failed + fz_fail))
if ((rc != 0 && fz_fail == 0)); then
	note "FAIL fuzz: tests/fuzz/build.sh exited $rc"
	failed=$((failed + 1))
fi

# e2e in four runners at once, each with test hosts of its own (prefixes
# P, Pf, Pz, Py; nothing else is shared): rollback/ and safety/ (a migration
# paused at each phase, then a kill or a cut link), the zdtm programs'
# migrations (zdtm/) in post-copy, and in the three other modes (together the
# e2e runner's MODES), and every other group.  Much of their time is waiting
# (pauses, timeouts the cases expect, the programs' own sleeps).
section "e2e"
E2E_PFX=${DM_E2E_PREFIX:-dme2e}
E2E_PFX=${E2E_PFX:0:9}	# one letter more for the others (testhost: 10 at most)
e2e_parts=(others faults zdtm-post-copy zdtm-others)
e2e_pids=()
for name in "${e2e_parts[@]}"; do
	case $name in
	others) pfx=$E2E_PFX args=(--no-zdtm --no-rollback --no-safety) ;;
	faults) pfx=${E2E_PFX}f args=(--no-zdtm --no-others) ;;
	zdtm-post-copy) pfx=${E2E_PFX}z args=(--no-others --no-rollback --no-safety --modes post-copy) ;;
	zdtm-others) pfx=${E2E_PFX}y args=(--no-others --no-rollback --no-safety --modes "stop-and-copy pre-copy hybrid") ;;
	esac
	DM_E2E_PREFIX=$pfx "$REPO/tests/e2e/run.sh" --build "$BUILD" "${args[@]}" >"$BUILD.e2e-$name.log" 2>&1 &
	e2e_pids+=($!)
done
for i in "${!e2e_parts[@]}"; do
	name=${e2e_parts[i]}
	wait "${e2e_pids[i]}"
	rc=$?
	out=$(<"$BUILD.e2e-$name.log")
	printf '%s\n' "$out"
	add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc "e2e ($name)"
done

# runc containers of real services in the test hosts (bundles built once in
# the build dir); runc missing is a failure
section "containers"
out=$("$REPO/tests/containers/run.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 containers\//"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc containers

# Docker: two dockerds in the test hosts, the test images built once (their
# rootfs tarballs kept in the build dir); docker missing is a failure
section "docker"
out=$("$REPO/tests/docker/run.sh" --build "$BUILD" 2>&1)
rc=$?
printf '%s\n' "$out"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc docker

# the soak, short: 8 migrations back and forth (tests/soak/run.sh --count 100 is the long one)
section "soak (short)"
out=$("$REPO/tests/soak/run.sh" --build "$BUILD" --count 8 2>&1)
rc=$?
printf '%s\n' "$out"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)" $rc soak

section ""
note "# durations: $(IFS=,; echo "${times[*]}")"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
