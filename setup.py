"""Lists the compiled extensions; all metadata is in pyproject.toml."""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

SHIM = ["csrc/fs_common.c", "csrc/fs_win.c" if sys.platform == "win32" else "csrc/fs_posix.c"]
LIBS = ["ws2_32", "mswsock"] if sys.platform == "win32" else []
# FASTSOCK_CFLAGS adds flags to a debug or sanitizer build.
EXTRA = os.environ.get("FASTSOCK_CFLAGS", "").split()


def ext(name):
    return Extension(
        f"fastsock.{name}",
        [f"src/fastsock/{name}.pyx", *SHIM],
        include_dirs=["csrc"],
        libraries=LIBS,
        extra_compile_args=EXTRA,
        extra_link_args=EXTRA,
    )


setup(
    ext_modules=cythonize(
        [ext("_socket"), ext("_stream"), ext("_batch"), ext("_event")],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
