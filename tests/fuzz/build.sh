#!/bin/bash
# Build and run the libFuzzer targets:  tests/fuzz/build.sh [SECONDS]
# Needs clang (libFuzzer) and the generated protobuf sources of a meson build.
set -eu -o pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${DM_BUILD:-$REPO/build}
OUT=$REPO/tests/fuzz/out
SECS=${1:-20}
mkdir -p "$OUT"
[[ -f $BUILD/image.pb-c.c ]] || ninja -C "$BUILD" image.pb-c.c image.pb-c.h
CFLAGS=(-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I"$REPO/src" -I"$REPO/src/arch/x86_64" -I"$BUILD")
clang "${CFLAGS[@]}" -o "$OUT/fuzz_image" "$REPO/tests/fuzz/fuzz_image.c" \
	"$REPO"/src/image/{image.c,validate.c} "$REPO"/src/base/{util.c,log.c,clock.c} \
	"$BUILD/image.pb-c.c" -lprotobuf-c -lz
mkdir -p "$OUT/corpus-image"
"$OUT/fuzz_image" -max_total_time="$SECS" -max_len=65536 "$OUT/corpus-image" "$REPO/tests/fuzz/seeds-image" 2>&1 | tail -3
if [[ -f $REPO/tests/fuzz/fuzz_proc_maps.c ]] && [[ -f $REPO/src/proc/maps.c ]]; then
	clang "${CFLAGS[@]}" -o "$OUT/fuzz_proc_maps" "$REPO/tests/fuzz/fuzz_proc_maps.c" "$REPO"/src/proc/*.c \
		"$REPO"/src/base/{util.c,log.c,clock.c} && \
	"$OUT/fuzz_proc_maps" -max_total_time="$SECS" 2>&1 | tail -3
fi
