#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The whole test suite, as README.md says: builds dmigrate (normal and
# ASan+UBSan), runs the unit tests in both builds, the zdtm feature suite in
# every engine mode, the e2e migration tests when they exist, and a short soak.
# The last line is the summary: "N passed, N failed, N skipped".
#
#   tests/run.sh [--quick]     --quick: skip the sanitizer build
set -u -o pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DM_BUILD:-$REPO/build}
ASAN_BUILD=${DM_ASAN_BUILD:-$REPO/build-asan}
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1

passed=0 failed=0 skipped=0
note() { printf '%s\n' "$*"; }

# count "N passed, N failed, N skipped" of a sub-runner's last line
add_summary() {
	local line=$1
	if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
	else
		note "FAIL runner: no summary line (got: $line)"
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

run_units() {
	local dir=$1 tag=$2
	for t in "$dir"/tests/unit/test_*; do
		[[ -x $t && -f $t ]] || continue
		local name
		name=$(basename "$t")
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

note "# build: $BUILD"
if ! build "$BUILD" -Dwerror=true; then
	note "FAIL build"
	echo "0 passed, 1 failed"
	exit 1
fi
run_units "$BUILD" ""

if ((QUICK == 0)); then
	note "# sanitizer build: $ASAN_BUILD"
	if build "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false; then
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_units "$ASAN_BUILD" "-asan"
	else
		note "FAIL asan build"
		failed=$((failed + 1))
	fi
fi

note "# install"
out=$("$REPO/tests/install/run.sh" --build "$BUILD" 2>&1)
printf '%s\n' "$out"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)"

note "# cli"
out=$("$REPO/tests/cli/run.sh" --build "$BUILD" 2>&1)
printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 cli\//"
add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)"

# zdtm: every engine mode the build supports
for mode in cr dump lazy; do
	note "# zdtm --mode $mode"
	out=$("$REPO/tests/zdtm/run.sh" --mode "$mode" --build "$BUILD" 2>&1)
	printf '%s\n' "$out" | sed "s/^\(PASS\|FAIL\|SKIP\) /\1 zdtm-$mode\//"
	add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)"
done

if [[ -x $REPO/tests/e2e/run.sh ]]; then
	note "# e2e"
	out=$("$REPO/tests/e2e/run.sh" --build "$BUILD" 2>&1)
	printf '%s\n' "$out"
	add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)"
fi

# the soak, short: 8 migrations back and forth (tests/soak/run.sh --count 100 is the long one)
if [[ -x $REPO/tests/soak/run.sh ]]; then
	note "# soak (short)"
	out=$("$REPO/tests/soak/run.sh" --build "$BUILD" --count 8 2>&1)
	printf '%s\n' "$out"
	add_summary "$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)"
fi

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
