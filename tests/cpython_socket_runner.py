"""Runs CPython's own Lib/test/test_socket.py (the stdlib's `test.test_socket`
module, imported, not copied) with socket.socket replaced by a subclass of
fastsock.Socket, and writes the outcome of every test as JSON.

    python tests/cpython_socket_runner.py [--stdlib] OUT.json [ClassName ...]
    python tests/cpython_socket_runner.py [--stdlib] --table [ClassName ...]

--stdlib runs the same tests on the stdlib's own socket: the reference that
tests/test_cpython_socket.py compares with, since what passes there depends
on the Python version and the machine.  It runs in a child process (that
test starts it): the patch is process-wide, and a crash or a hang must not
take pytest with it.
"""
import faulthandler
import inspect
import json
import socket
import sys
import unittest

import fastsock


# The slowest class takes a few seconds (about 30 under a sanitizer).
CLASS_LIMIT = 180


class DropIn(fastsock.Socket):
    """fastsock.Socket under the stdlib's name; counts the sockets made, so
    the caller can tell that the tests really ran on fastsock."""
    created = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        DropIn.created += 1


def test_classes(module):
    return [name for name, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, unittest.TestCase)
            and unittest.defaultTestLoader.loadTestsFromTestCase(
                obj).countTestCases()]


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else ""


class Outcome(unittest.TestResult):
    """A TestResult that also lists the tests that passed.  A class skipped
    or failed in setUpClass shows up once in `skipped` or `errors`, under the
    name unittest gives it, and none of its tests counts as run or passed."""

    def __init__(self):
        super().__init__()
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def run(names=None, patch=True):
    from test import test_socket
    names = names or test_classes(test_socket)
    results = {}
    original = socket.socket
    if patch:
        socket.socket = DropIn
    try:
        test_socket.setUpModule()
        for name in names:
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(
                getattr(test_socket, name))
            outcome = Outcome()
            # A class that hangs ends the run with every thread's stack on
            # stderr, which the caller shows, instead of a bare kill.
            faulthandler.dump_traceback_later(CLASS_LIMIT, exit=True)
            try:
                suite.run(outcome)
            finally:
                faulthandler.cancel_dump_traceback_later()
            failed = {test.id(): last_line(trace)
                      for test, trace in outcome.failures + outcome.errors
                      + [(test, "unexpected success")
                         for test in outcome.unexpectedSuccesses]}
            results[name] = {
                "ran": outcome.testsRun,
                "failed": failed,
                "skipped": [test.id() for test, _ in outcome.skipped],
                "passing": outcome.passed,
            }
    finally:
        socket.socket = original
        unittest.case.doModuleCleanups()
    return {"classes": results, "created": DropIn.created}


def table(report):
    rows = [f"{'class':<44} {'ran':>4} {'pass':>4} {'fail':>4} {'skip':>4}"]
    totals = [0, 0, 0, 0]
    for name, r in report["classes"].items():
        row = [r["ran"], len(r["passing"]), len(r["failed"]), len(r["skipped"])]
        totals = [t + n for t, n in zip(totals, row)]
        rows.append(f"{name:<44} " + " ".join(f"{n:>4}" for n in row))
    rows.append(f"{'total':<44} " + " ".join(f"{t:>4}" for t in totals))
    return "\n".join(rows)


if __name__ == "__main__":
    args = sys.argv[1:]
    patch = "--stdlib" not in args
    if not patch:
        args.remove("--stdlib")
    target, classes = args[0], args[1:]
    report = run(classes, patch)
    if target == "--table":
        print(table(report))
        for r in report["classes"].values():
            for test, why in r["failed"].items():
                print(f"FAILED {test}: {why}")
    else:
        with open(target, "w") as f:
            json.dump(report, f)
