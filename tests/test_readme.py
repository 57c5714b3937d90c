"""Every ```python block of README.md runs as written, as a script a reader
pastes into a file: in a fresh interpreter under -X dev (which shows
ResourceWarning and the other warnings a user would see), with unclosed
sockets turned into errors, within a time bound."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastsock

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
# The child imports the fastsock this process tested: the installed wheel
# in CI, the source tree in development.
FASTSOCK_PATH = str(pathlib.Path(fastsock.__file__).resolve().parent.parent)
# Each example takes well under a second; a hang fails instead of waiting.
LIMIT = 60


def python_blocks(text):
    """(line number, code) of each fenced ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8")) if README.exists() else []


def test_the_readme_has_examples():
    assert README.exists(), f"{README} is missing"
    assert len(BLOCKS) >= 3


def test_python_blocks_are_found():
    text = "intro\n```python\nprint(1)\n```\n\n```sh\nls\n```\n```python\nx = 2\n```\n"
    assert python_blocks(text) == [(3, "print(1)\n"), (10, "x = 2\n")]


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_example_runs_as_written(tmp_path, line, code):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=FASTSOCK_PATH)
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LIMIT)
    where = f"README.md, the block at line {line}"
    assert done.returncode == 0, f"{where} failed:\n{done.stderr[-3000:]}"
    # A warning raised in a finaliser cannot fail the script; it is printed.
    assert "Warning" not in done.stderr, f"{where} warned:\n{done.stderr[-3000:]}"
