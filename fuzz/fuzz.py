"""libFuzzer entry point (atheris) for fastsock's parsers of untrusted bytes.

    python fuzz/fuzz.py TARGET [libFuzzer options] [corpus dirs]

TARGET is a name from targets.py.  fuzz/run.sh builds the instrumented
extensions and runs them all.
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from targets import TARGETS  # noqa: E402


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} "
                 "[libFuzzer options] [corpus dirs]")
    # libFuzzer runs argv[0] through the shell for -merge and -fork: it
    # must be the whole command, interpreter and target included.
    command = f"{sys.executable} {os.path.abspath(__file__)} {sys.argv[1]}"
    atheris.Setup([command, *sys.argv[2:]], TARGETS[sys.argv[1]])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
