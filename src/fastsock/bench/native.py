"""The plain C references: their sources ship in the package (``c/``), and
are compiled with the system C compiler the first time they are needed,
then cached by the hash of the source and the compiler."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
# Extra flags a program needs to link.
FLAGS = {"echo_server": ["-pthread"]}

_built: Dict[str, Optional[str]] = {}
_errors: List[str] = []


def source(name: str) -> str:
    return os.path.join(SOURCES, name + ".c")


def compiler() -> Optional[str]:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "fastsock-bench")
    try:
        os.makedirs(path, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    path = os.path.join(tempfile.gettempdir(), f"fastsock-bench-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def build(name: str) -> Optional[str]:
    """Path of the compiled program c/<name>.c, or None when there is no C
    compiler, no source (an installation without them) or it fails to
    build (then `why_missing()` says so)."""
    if name in _built:
        return _built[name]
    cc = compiler()
    path = None
    if cc is not None and os.path.exists(source(name)):
        with open(source(name), "rb") as f:
            tag = hashlib.sha1(f.read() + cc.encode()).hexdigest()[:12]
        path = os.path.join(cache_dir(), f"{name}-{tag}")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            try:
                done = subprocess.run([cc, "-O2", "-o", tmp, source(name),
                                       *FLAGS.get(name, [])], capture_output=True, text=True)
                failed = done.stderr.strip()[:300] if done.returncode else None
            except OSError as e:
                failed = str(e)
            if failed is not None:
                _errors.append(f"{name}.c did not build with {cc} ({failed}): left out")
                path = None
            else:
                os.replace(tmp, path)
    _built[name] = path
    return path


def why_missing() -> str:
    """One line saying why the C references are left out."""
    if _errors:
        return _errors[0]
    if compiler() is None:
        return "no C compiler (cc or gcc, or $CC): the C references are left out"
    return "the C reference sources are not in this installation: left out"
