#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer targets and run each for SECONDS from the corpus kept in
# the repo (tests/fuzz/corpus/TARGET/); a crash, a leak or a sanitizer report
# fails the run (exit 1) and leaves the input under tests/fuzz/out/.
#
#   tests/fuzz/build.sh [SECONDS] [TARGET...]     (default: 20 s each, every target)
#   tests/fuzz/build.sh --build-only [TARGET...]  build them, run nothing (tests/run.sh
#                                                 builds them beside other steps)
#
# DM_FUZZ_JOBS (default 2, at most the CPUs): how many targets run at once, and
# the compile jobs of the library.
#
# Targets (each says in its header what it feeds where):
#   fuzz_image      image files past their checksum + image_validate() (inventory
#                   included), and whole image directories through image_load()
#   fuzz_wire       dmigrated's control channel: Hello, START, the state (FILE,
#                   DATA, FILE_END, DIRTY, STATE_END), VMA fix-ups
#   fuzz_mem        dmigrated's page channels: PHASE, PAGES, ABSENT, PUSH_END
#   fuzz_rootfs     dmigrated's rootfs channels (the files it makes as root):
#                   the rootfs channel's frames, the miss channel's chunks;
#                   nothing may appear outside the receive root
#   fuzz_proc_maps  the /proc parsers
#
# The library is compiled with clang (-fsanitize=fuzzer-no-link,address,
# undefined) and -DDM_FUZZ_NO_CHECKSUM: image checksums are computed but not
# checked, so that mutated images reach the decoder.  Nothing of it goes into
# the normal builds.  Needs the generated protobuf sources of a meson build
# (DM_BUILD, default build/).  New corpus entries found while running go to
# tests/fuzz/out/corpus-TARGET/, not into the repo; tests/fuzz/corpus/ holds
# the seeds (build/tests/fuzz/fuzz_seeds writes them, see tests/fuzz/README.md)
# and the inputs of bugs found so far.
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${DM_BUILD:-$REPO/build}
OUT=$REPO/tests/fuzz/out
BUILD_ONLY=0
[[ ${1:-} == --build-only ]] && { BUILD_ONLY=1; shift; set -- 0 "$@"; }
SECS=${1:-20}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_image fuzz_wire fuzz_mem fuzz_proc_maps fuzz_rootfs)
JOBS=${DM_FUZZ_JOBS:-2}

command -v clang >/dev/null || { echo "FAIL fuzz: no clang (scripts/deps.sh installs it)"; exit 1; }
for g in image.pb-c.c rpc.pb-c.c src/migrate/migrate.pb-c.c src/container/runc-stub-bin.c; do
	[[ -f $BUILD/$g ]] || ninja -C "$BUILD" "$g" >/dev/null || { echo "FAIL fuzz: cannot generate $g in $BUILD"; exit 1; }
done
mkdir -p "$OUT/obj"

CFLAGS=(-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DDM_FUZZ_NO_CHECKSUM -std=gnu17 -pthread
	-I"$REPO/src" -I"$REPO/src/arch/x86_64" -I"$BUILD" -I"$BUILD/src" $(pkg-config --cflags fuse3))
LIBS=(-lprotobuf-c -ljansson -lssl -lcrypto -lz -lmnl -lfuse3 -lcurl -lnftables -larchive -lpthread)

# The library: every module but the front ends (src/cli, src/daemon).
srcs=()
for f in "$REPO"/src/*/*.c; do
	# runc-stub.c is a program of its own (no libc), embedded as runc-stub-bin.c
	case $f in */src/cli/* | */src/daemon/* | */src/container/runc-stub.c | */src/container/runtime-main.c) continue ;; esac
	srcs+=("$f")
done
srcs+=("$BUILD/image.pb-c.c" "$BUILD/rpc.pb-c.c" "$BUILD/src/migrate/migrate.pb-c.c"
	"$BUILD/src/container/runc-stub-bin.c")

# A small ninja file: recompiles what changed (headers and the .c files a
# target includes too, -MD), the library and each target.
LDFLAGS=("${CFLAGS[@]/fuzzer-no-link/fuzzer}")
{
	echo "cflags = ${CFLAGS[*]}"
	echo "ldflags = ${LDFLAGS[*]}"
	echo "libs = ${LIBS[*]}"
	echo "rule cc"
	echo "  command = clang \$cflags -MD -MF \$out.d -c \$in -o \$out"
	echo "  depfile = \$out.d"
	echo "  deps = gcc"
	echo "rule ar"
	echo "  command = rm -f \$out && ar rcs \$out \$in"
	echo "rule link"
	echo "  command = clang \$ldflags -MD -MF \$out.d -o \$out \$in \$libs"
	echo "  depfile = \$out.d"
	echo "  deps = gcc"
	objs=()
	for f in "${srcs[@]}"; do
		o=obj/$(echo "${f#"$REPO"/}" | tr / _).o
		objs+=("$o")
		echo "build $o: cc $f"
	done
	echo "build libdm-fuzz.a: ar ${objs[*]}"
	for f in "$REPO"/tests/fuzz/fuzz_*.c; do
		t=$(basename "$f" .c)
		[[ $t == fuzz_seeds ]] && continue	# a meson program (the seeds), no fuzz target
		echo "build $t: link $f libdm-fuzz.a"
	done
} >"$OUT/build.ninja.new"
cmp -s "$OUT/build.ninja.new" "$OUT/build.ninja" 2>/dev/null || mv "$OUT/build.ninja.new" "$OUT/build.ninja"
rm -f "$OUT/build.ninja.new"
if ! nice ninja -C "$OUT" -j "$JOBS" libdm-fuzz.a >"$OUT/build.log" 2>&1; then
	echo "FAIL fuzz: the library does not build with clang (see $OUT/build.log)"
	grep -E 'error' "$OUT/build.log" | head -20
	exit 1
fi
# The targets, in one ninja run (two at once in one directory would share its
# logs): one that does not build is reported by fuzz_one, the others run.
nice ninja -C "$OUT" -j "$JOBS" -k 0 "${TARGETS[@]}" >"$OUT/targets.build.log" 2>&1
((BUILD_ONLY)) && exit 0
# still something to do for a target: its build failed
declare -A BUILT=()
for t in "${TARGETS[@]}"; do
	ninja -C "$OUT" -n "$t" 2>&1 | grep -q 'no work to do' && BUILT[$t]=1
done

# One target (built above): run it SECS from its corpus; its result line (and the
# lines that say why it failed) go to $OUT/$t.result, exit 1 on failure.
fuzz_one() {
	local t=$1 src seeds run
	src=$REPO/tests/fuzz/$t.c
	[[ -f $src ]] || { echo "FAIL fuzz/$t: no $src"; return 1; }
	if [[ -z ${BUILT[$t]:-} ]]; then
		echo "FAIL fuzz/$t: does not build (see $OUT/targets.build.log)"
		grep -E -A3 "(error|FAILED).*" "$OUT/targets.build.log" | head -20
		return 1
	fi
	seeds=$REPO/tests/fuzz/corpus/${t#fuzz_}
	if [[ ! -d $seeds ]] || [[ -z $(ls -A "$seeds") ]]; then
		echo "FAIL fuzz/$t: no seed corpus in $seeds"
		return 1
	fi
	run=$OUT/corpus-${t#fuzz_}
	mkdir -p "$run"
	# the inputs of the bugs found so far, each whole (the corpus below is
	# cut at -max_len: a bug may need a longer input)
	local bugs=("$seeds"/bug-*)
	if [[ -e ${bugs[0]} ]] && ! (cd "$OUT" && DMIGRATE_NO_RT=1 ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$OUT/$t" -timeout=10 -rss_limit_mb=1536 "${bugs[@]}" >"$OUT/$t.bugs.log" 2>&1); then
		echo "FAIL fuzz/$t: an input of a bug found before fails again (see $OUT/$t.bugs.log)"
		grep -E 'ERROR|SUMMARY|Running: ' "$OUT/$t.bugs.log" | tail -4
		return 1
	fi
	# crash-*, leak-*, timeout-* land in $OUT; -timeout: one input may not
	# take 10 s; -rss_limit_mb: the machine is shared
	if (cd "$OUT" && DMIGRATE_NO_RT=1 ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$OUT/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1536 -max_len=$([[ $t == fuzz_image ]] && echo 262144 || echo 65536) \
		-print_final_stats=0 "$run" "$seeds" >"$OUT/$t.log" 2>&1); then
		echo "PASS fuzz/$t ($(grep -Eo 'cov: [0-9]+' "$OUT/$t.log" | tail -1), $(grep -Eo '#[0-9]+' "$OUT/$t.log" | tail -1 | tr -d '#') runs in ${SECS}s)"
	else
		echo "FAIL fuzz/$t: see $OUT/$t.log"
		grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$OUT/$t.log" | head -8
		return 1
	fi
}

# The targets run JOBS at a time (DM_FUZZ_JOBS, default 2, at most the CPUs):
# each is one single-threaded process, so on CI's two cores each still has a
# core of its own for its SECS, as when they ran one after the other.  Their
# lines are printed in the order of TARGETS.
RJOBS=${DM_FUZZ_JOBS:-2}
((RJOBS > $(nproc))) && RJOBS=$(nproc)
((RJOBS >= 1)) || RJOBS=1
for t in "${TARGETS[@]}"; do
	while (($(jobs -rp | wc -l) >= RJOBS)); do wait -n; done
	rm -f "$OUT/$t.result"
	fuzz_one "$t" >"$OUT/$t.result" 2>&1 &
done
wait
fail=0
for t in "${TARGETS[@]}"; do
	cat "$OUT/$t.result" 2>/dev/null
	# fuzz_one prints PASS, or FAIL and why; neither: it died
	grep -q "^PASS fuzz/$t " "$OUT/$t.result" 2>/dev/null && continue
	fail=1
	grep -q "^FAIL fuzz/$t" "$OUT/$t.result" 2>/dev/null || echo "FAIL fuzz/$t: no result (see $OUT/$t.log)"
done
exit $fail
