"""No growth over long loops of every public read and write path.

tests/leak_paths.py runs each path thousands of times in a child process
(a fresh interpreter: nothing else allocates in it) and reports how much
it grew.  Under a debug build of CPython (python3.11-dbg, in CI) the
total reference count is checked too; under AddressSanitizer, resident
memory is not (ASan's quarantine holds freed memory: LeakSanitizer checks
that run instead).
"""
import json
import os
import subprocess
import sys

import pytest

import leak_paths

N = 4000
REFS = 100              # references over N steps: a leak of one per step is 4000
TRACED = 8 << 10        # bytes traced over N / 4 steps
RSS = 256 << 10         # resident bytes over N steps: about 64 bytes a step


@pytest.fixture(scope="module")
def growth():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, leak_paths.__file__, str(N)],
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def over_bounds(result, asan):
    over = []
    if result["refs"] is not None and abs(result["refs"]) > REFS:
        over.append(f"{result['refs']} references")
    if result["traced"] > TRACED:
        over.append(f"{result['traced']} bytes traced")
    if not asan and result["rss"] > RSS:
        over.append(f"{result['rss']} resident bytes")
    return over


@pytest.mark.parametrize("path", [m.__name__ for m in leak_paths.PATHS
                                  if m is not leak_paths.planted_leak])
def test_path_does_not_grow(growth, path):
    assert over_bounds(growth["paths"][path], growth["asan"]) == []


def test_the_check_sees_a_planted_leak(growth):
    # 64-byte objects kept on every step must trip every measure.
    over = over_bounds(growth["paths"]["planted_leak"], growth["asan"])
    expected = 1 + (not growth["asan"]) + hasattr(sys, "gettotalrefcount")
    assert len(over) == expected, over
