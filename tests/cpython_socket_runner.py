"""Runs CPython's own Lib/test/test_socket.py (the stdlib's `test.test_socket`
module, imported, not copied) with socket.socket replaced by a subclass of
fastsock.Socket, and writes the outcome of every test as JSON.

    python tests/cpython_socket_runner.py OUT.json [ClassName ...]
    python tests/cpython_socket_runner.py --table [ClassName ...]

It runs in a child process (tests/test_cpython_socket.py starts it): the
patch is process-wide, and a crash or a hang must not take pytest with it.
"""
import inspect
import json
import socket
import sys
import unittest

import fastsock


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


def run(names=None):
    from test import test_socket
    names = names or test_classes(test_socket)
    results = {}
    original = socket.socket
    socket.socket = DropIn
    try:
        test_socket.setUpModule()
        for name in names:
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(
                getattr(test_socket, name))
            ids = [test.id() for test in suite]   # run() drops the tests
            outcome = unittest.TestResult()
            suite.run(outcome)
            failed = {test.id(): last_line(trace)
                      for test, trace in outcome.failures + outcome.errors}
            skipped = [test.id() for test, _ in outcome.skipped]
            results[name] = {
                "ran": outcome.testsRun,
                "failed": failed,
                "skipped": skipped,
                "passed": outcome.testsRun - len(failed) - len(skipped),
                "passing": [test for test in ids
                            if test not in failed and test not in skipped],
            }
    finally:
        socket.socket = original
        unittest.case.doModuleCleanups()
    return {"classes": results, "created": DropIn.created}


def table(report):
    rows = [f"{'class':<44} {'ran':>4} {'pass':>4} {'fail':>4} {'skip':>4}"]
    for name, r in report["classes"].items():
        rows.append(f"{name:<44} {r['ran']:>4} {r['passed']:>4} "
                    f"{len(r['failed']):>4} {len(r['skipped']):>4}")
    totals = [sum(r[k] if isinstance(r[k], int) else len(r[k])
                  for r in report["classes"].values())
              for k in ("ran", "passed", "failed", "skipped")]
    rows.append(f"{'total':<44} " + " ".join(f"{t:>4}" for t in totals))
    return "\n".join(rows)


if __name__ == "__main__":
    target, classes = sys.argv[1], sys.argv[2:]
    report = run(classes)
    if target == "--table":
        print(table(report))
        for r in report["classes"].values():
            for test, why in r["failed"].items():
                print(f"FAILED {test}: {why}")
    else:
        with open(target, "w") as f:
            json.dump(report, f)
