#!/usr/bin/env bash
# Builds the extensions with clang, libFuzzer's coverage counters and
# AddressSanitizer in a copy of the tree (no instrumented module lands in
# src/), then runs the fuzz targets for SECONDS in all (shared equally),
# each starting from its corpus in fuzz/corpus/ and the inputs in
# fuzz/regressions/.  New inputs go to a
# temporary folder; with FUZZ_MERGE=1 the corpus is replaced by a
# minimised merge of old and new.  A crash fails the run and its input is
# copied to fuzz/regressions/<target>/, which tests/test_fuzz_corpus.py
# replays on every test run.
# Needs clang, libclang-rt-14-dev, llvm and `pip install atheris`.
# Usage: fuzz/run.sh [SECONDS in all, default 60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TOTAL=${1:-60}
shift || true
TARGETS=("$@")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cp -r src csrc setup.py pyproject.toml README.md "$WORK/"
(
    cd "$WORK"
    CC=clang LDSHARED="clang -shared" \
        FASTSOCK_CFLAGS="-fsanitize=fuzzer-no-link,address -g -O1" \
        "$PY" setup.py -q build_ext --inplace --force >/dev/null 2>&1
)
ATHERIS=$("$PY" -c 'import atheris; print(atheris.path())')
# Python with the fuzzer's ASan runtime loaded first, and the copy's modules.
fz() {
    LD_PRELOAD="$ATHERIS/asan_with_fuzzer.so" ASAN_OPTIONS=detect_leaks=0 \
        PYTHONPATH="$WORK/src" "$PY" "$@"
}
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=($(fz -c '
import sys; sys.path.insert(0, "fuzz")
import targets; print(*targets.TARGETS)'))
SECS=$(( TOTAL / ${#TARGETS[@]} ))
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/new/$t" "fuzz/corpus/$t" "fuzz/regressions/$t"
    log="$WORK/$t.log"
    if ! fz fuzz/fuzz.py "$t" \
            -max_total_time="$SECS" -max_len=4096 -timeout=10 \
            -artifact_prefix="$WORK/crash-$t-" \
            "$WORK/new/$t" "fuzz/corpus/$t" "fuzz/regressions/$t" >"$log" 2>&1; then
        status=1
        tail -n 40 "$log"
        for f in "$WORK"/crash-"$t"-*; do
            [ -e "$f" ] && cp "$f" "fuzz/regressions/$t/" \
                && echo "FAILED: $t; input kept as fuzz/regressions/$t/$(basename "$f")"
        done
    fi
    # libFuzzer's last line: "Done N runs in S second(s)".
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1)
    echo "fuzz $t: ${runs:-no summary (see above)}, corpus $(ls "fuzz/corpus/$t" | wc -l) + $(ls "$WORK/new/$t" | wc -l) new"
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ $status = 0 ]; then
        mkdir -p "$WORK/merged/$t"
        fz fuzz/fuzz.py "$t" -merge=1 -max_len=4096 "$WORK/merged/$t" \
            "fuzz/corpus/$t" "$WORK/new/$t" >"$WORK/merge-$t.log" 2>&1 \
            || { tail -n 20 "$WORK/merge-$t.log"; exit 1; }
        rm -f "fuzz/corpus/$t"/*
        cp "$WORK/merged/$t"/* "fuzz/corpus/$t/"
        echo "fuzz $t: corpus merged to $(ls "fuzz/corpus/$t" | wc -l) inputs"
    fi
done
exit $status
