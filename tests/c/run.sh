#!/usr/bin/env bash
# Builds the C shim (csrc/fs_posix.c + fs_common.c) with tests/c/test_shim.c
# under AddressSanitizer and UndefinedBehaviorSanitizer, and runs it.
# Without the sanitizer runtime, builds and runs without sanitizers.
# Usage: tests/c/run.sh   (from any directory; CC=clang to change compiler)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CC=${CC:-gcc}
OUT=tests/c/build
mkdir -p "$OUT"

CFLAGS=(-std=c11 -Wall -Wextra -Werror -g -O1 -Icsrc -pthread)
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

# The sanitizers need their runtime libraries: probe with a tiny program.
printf 'int main(void) { return 0; }\n' > "$OUT/probe.c"
if "$CC" "${SAN[@]}" "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1 \
        && "$OUT/probe" >/dev/null 2>&1; then
    echo "== sanitizers: address, undefined"
else
    echo "== sanitizer runtime missing: building WITHOUT sanitizers"
    SAN=()
fi
rm -f "$OUT/probe.c" "$OUT/probe"

echo "== building $OUT/test_shim with $CC"
"$CC" "${CFLAGS[@]}" ${SAN[@]+"${SAN[@]}"} \
    csrc/fs_common.c csrc/fs_posix.c tests/c/test_shim.c \
    -o "$OUT/test_shim"

echo "== running"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
TIMEOUT=()
if command -v timeout >/dev/null 2>&1; then
    TIMEOUT=(timeout 300) # a batch that waits to fill would hang
fi
if ${TIMEOUT[@]+"${TIMEOUT[@]}"} "$OUT/test_shim"; then
    echo "== C shim tests: OK"
else
    rc=$?
    echo "== C shim tests: FAILED (exit $rc)"
    exit "$rc"
fi
