"""Replays every fuzz input kept in the repository (fuzz/corpus: the
minimised corpus; fuzz/regressions: every input that ever failed) through
its target, against the modules under test.  The fuzzing itself is
fuzz/run.sh; this keeps what it found checked on every test run."""
import pathlib
import sys

import pytest

FUZZ = pathlib.Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))
from targets import TARGETS, finish  # noqa: E402


@pytest.mark.parametrize("kept", ["corpus", "regressions"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kept_inputs_pass(target, kept):
    inputs = sorted((FUZZ / kept / target).glob("*"))
    if kept == "corpus":
        assert inputs, f"fuzz/corpus/{target} is empty"
    try:
        for path in inputs:
            try:
                TARGETS[target](path.read_bytes())
            except AssertionError as exc:
                raise AssertionError(f"fuzz/{kept}/{target}/{path.name}: "
                                     f"{exc}") from exc
    finally:
        finish()
