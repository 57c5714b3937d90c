"""Checks around every test: no descriptor may outlive the test that
opened it."""
import gc
import os
import time

import pytest

from socket_support import open_fds


def pytest_configure(config):
    # Both kinds run without LeakSanitizer in CI (.ci/run).
    config.addinivalue_line(
        "markers", "strace: runs processes under strace (ptrace), so it "
        "cannot run under LeakSanitizer, which uses ptrace itself")
    config.addinivalue_line(
        "markers", "leaky_import: imports a library that leaks at import "
        "(numpy's ufunc set-up), which LeakSanitizer would report at exit")


@pytest.fixture(autouse=True)
def no_descriptor_left():
    """Fails a test that leaves a descriptor open.  Descriptors opened
    before the test (pytest's own, wider-scoped fixtures) do not count.  One
    still open gets a garbage collection (an unreferenced socket is closed
    then) and up to two seconds to go: threads that the test started may
    still be closing theirs."""
    if not os.path.isdir("/proc/self/fd"):
        yield
        return
    before = open_fds()
    yield
    left = open_fds() - before
    deadline = time.monotonic() + 2.0
    while left and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
        left = open_fds() - before
    if left:
        pytest.fail("descriptors left open by the test: " + ", ".join(
            f"{fd} -> {what}" for fd, what in sorted(left)), pytrace=False)
