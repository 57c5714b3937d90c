#!/usr/bin/env bash
# Cross-compiles the Windows shim (csrc/fs_win.c + fs_common.c) with
# mingw-w64 under -Werror and links tests/c/test_shim.c into an .exe
# against ws2_32 and mswsock, proving the Windows code compiles and links.
# Runs the .exe under wine only if `wine` is already on PATH (wine is big,
# CI does not need it).  Usage: tests/c/win_check.sh   (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CC=x86_64-w64-mingw32-gcc
OUT=tests/c/build/win
mkdir -p "$OUT"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "== $CC missing: installing gcc-mingw-w64-x86-64"
    SUDO=()
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    ${SUDO[@]+"${SUDO[@]}"} apt-get install -y --no-install-recommends \
            gcc-mingw-w64-x86-64 \
        || { ${SUDO[@]+"${SUDO[@]}"} apt-get update \
             && ${SUDO[@]+"${SUDO[@]}"} apt-get install -y \
                    --no-install-recommends gcc-mingw-w64-x86-64; }
fi

CFLAGS=(-std=c11 -Wall -Wextra -Werror -O2 -Icsrc)
echo "== compiling with $("$CC" --version | head -n 1)"
for src in csrc/fs_win.c csrc/fs_common.c tests/c/test_shim.c; do
    obj="$OUT/$(basename "${src%.c}").o"
    echo "   $src -> $obj"
    "$CC" "${CFLAGS[@]}" -c "$src" -o "$obj"
done

echo "== linking $OUT/test_shim.exe"
"$CC" "$OUT/fs_win.o" "$OUT/fs_common.o" "$OUT/test_shim.o" \
    -o "$OUT/test_shim.exe" -lws2_32 -lmswsock
echo "== Windows shim compiles and links: OK"

if ! command -v wine >/dev/null 2>&1; then
    echo "== wine not on PATH: not running the .exe (optional)"
    exit 0
fi

echo "== running under $(wine --version 2>/dev/null || echo wine)"
PREFIX=$(mktemp -d)
cleanup() {
    WINEPREFIX="$PREFIX" wineserver -k >/dev/null 2>&1 || true
    rm -rf "$PREFIX"
}
trap cleanup EXIT
TIMEOUT=()
if command -v timeout >/dev/null 2>&1; then
    TIMEOUT=(timeout 600) # the first run also creates the wine prefix
fi
if WINEPREFIX="$PREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
        ${TIMEOUT[@]+"${TIMEOUT[@]}"} wine "$OUT/test_shim.exe" \
        </dev/null; then
    echo "== Windows shim tests under wine: OK"
else
    rc=$?
    echo "== Windows shim tests under wine: FAILED (exit $rc)"
    exit "$rc"
fi
