"""An outside check of the drop-in claim: CPython's own test_socket (the
stdlib's `test.test_socket`) run with socket.socket replaced by a
fastsock.Socket subclass, in a child process (tests/cpython_socket_runner.py).

Every test class of that module runs.  A test may fail only if it is listed
in EXPECTED_FAILURES with the reason (CPython internals, or what fastsock
leaves out on purpose), and the pass count must not drop below MIN_PASSED.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import fastsock

RUNNER = pathlib.Path(__file__).with_name("cpython_socket_runner.py")

EXPECTED_FAILURES = {
    "test.test_socket.GeneralModuleTests.test_SocketType_is_socketobject":
        "asserts isinstance(s, _socket.socket), CPython's C type",
    "test.test_socket.GeneralModuleTests.test_socket_methods":
        "asserts the private _socket.socket._accept() exists",
    "test.test_socket.ThreadedVSOCKSocketStreamTest.testStream":
        "AF_VSOCK: fastsock speaks IPv4, IPv6 and AF_UNIX addresses only",
    "test.test_socket.BasicVSOCKTest.testSocketBufferSize":
        "AF_VSOCK: its 64-bit socket options are not special-cased",
}

# Measured with CPython 3.11.7 on Linux: 717 tests, 609 passed, 104
# skipped (the same skips as with the stdlib's own socket: other OSes,
# TIPC, AF_ALG, ...), and the 4 expected failures.
MIN_PASSED = 609


def stdlib_test_socket_classes():
    # Without CPython's test package there is nothing to list; the report
    # fixture then fails every test below with the reason.
    sys.path.insert(0, str(RUNNER.parent))
    try:
        import cpython_socket_runner
        from test import test_socket
    except ImportError:
        return []
    finally:
        sys.path.remove(str(RUNNER.parent))
    return cpython_socket_runner.test_classes(test_socket)


CLASSES = stdlib_test_socket_classes()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    try:
        from test import test_socket  # noqa: F401
    except ImportError as e:
        pytest.fail("CPython's test suite (the stdlib's `test` package) is "
                    f"not installed, so test_socket cannot run: {e}")
    out = tmp_path_factory.mktemp("cpython") / "report.json"
    package_root = str(pathlib.Path(fastsock.__file__).parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + sys.path))
    done = subprocess.run([sys.executable, str(RUNNER), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"the CPython test run crashed ({done.returncode}):\n"
        f"{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def test_ran_on_fastsock(report):
    # Hundreds of sockets were made by the drop-in class, not the stdlib's.
    assert report["created"] > 500


@pytest.mark.parametrize("name", CLASSES)
def test_cpython_class(report, name):
    result = report["classes"][name]
    unexpected = {test: why for test, why in result["failed"].items()
                  if test not in EXPECTED_FAILURES}
    assert not unexpected, f"{name}: failures not expected:\n" + "\n".join(
        f"  {test}: {why}" for test, why in unexpected.items())


def test_expected_failures_still_fail(report):
    """Keeps the list honest: an entry that now passes must be removed."""
    passed = {test for r in report["classes"].values() for test in r["passing"]}
    now_passing = sorted(passed & EXPECTED_FAILURES.keys())
    assert not now_passing, f"these pass now, drop them: {now_passing}"


def test_pass_count(report):
    passed = sum(r["passed"] for r in report["classes"].values())
    ran = sum(r["ran"] for r in report["classes"].values())
    assert passed >= MIN_PASSED, f"{passed} of {ran} passed"
