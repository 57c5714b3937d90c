"""Per-call cost of the Socket hot path against the stdlib (WORKLOADS.md,
per-call facts; G9): recv_into, send, recvfrom_into and sendto of 64 bytes
on loopback with the data already queued (or room to send), each without a
timeout and with settimeout(5).

One process, pinned to one CPU; each round makes CALLS[op] calls in a plain
loop (the loop's own cost is in both).  Rounds alternate the stdlib and
fastsock (A B A B ...) so that drift on a shared machine hits both; the
table at the end gives the medians in ns per call and the ratio
stdlib / fastsock (above 1: fastsock is faster).

    python -m pytest bench/bench_socket.py          # pytest-benchmark runs
    python bench/bench_socket.py --rounds 41        # the A/B table only
"""
import argparse
import os
import socket
import statistics
import sys
import time

import pytest

import fastsock

SIZE = 64
# Calls per round.  Queued datagrams cost about 1 KiB of receive buffer
# each, and a stock rmem_max (208 KiB, doubled) must hold a round's worth.
CALLS = {"recv_into": 1000, "send": 1000, "recvfrom_into": 200,
         "sendto": 1000}
RCVBUF = 8 << 20
OPS = ("recv_into", "send", "recvfrom_into", "sendto")
TIMEOUTS = (None, 5.0)
IMPLS = {"stdlib": socket.socket, "fastsock": fastsock.Socket}


class Case:
    """Sockets for one (implementation, operation, timeout): `run()` makes
    CALLS[op] calls of the operation, `prepare()` queues the data they
    read or drains what the last run sent (not timed)."""

    def __init__(self, cls, op, timeout):
        self.op = op
        self.calls = CALLS[op]
        self.buf = bytearray(SIZE)
        self.msg = b"m" * SIZE
        stream = op in ("recv_into", "send")
        if stream:
            with cls() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                self.a = cls()
                self.a.connect(listener.getsockname())
                self.b, _ = listener.accept()
        else:
            self.a = cls(socket.AF_INET, socket.SOCK_DGRAM)
            self.b = cls(socket.AF_INET, socket.SOCK_DGRAM)
            self.a.bind(("127.0.0.1", 0))
            self.b.bind(("127.0.0.1", 0))
        for s in (self.a, self.b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF)
        # The measured socket gets the timeout; the helper stays blocking.
        self.a.settimeout(timeout)
        self.run = getattr(self, "run_" + op)
        self.prepare = getattr(self, "prepare_" + op)

    def close(self):
        self.a.close()
        self.b.close()

    # Each run_* binds the method once, as fast idiomatic code does.

    def prepare_recv_into(self):
        self.b.sendall(self.msg * self.calls)
        time.sleep(0.002)                   # let loopback deliver it all

    def run_recv_into(self):
        recv_into, buf = self.a.recv_into, self.buf
        for _ in range(self.calls):
            recv_into(buf)

    def prepare_send(self):
        self.b.settimeout(0)
        try:
            while self.b.recv_into(bytearray(1 << 20)):
                pass
        except BlockingIOError:
            pass
        self.b.settimeout(None)

    def run_send(self):
        send, msg = self.a.send, self.msg
        for _ in range(self.calls):
            send(msg)

    def prepare_recvfrom_into(self):
        sendto, msg, dest = self.b.sendto, self.msg, self.a.getsockname()
        for _ in range(self.calls):
            sendto(msg, dest)
        time.sleep(0.002)

    def run_recvfrom_into(self):
        recvfrom_into, buf = self.a.recvfrom_into, self.buf
        for _ in range(self.calls):
            recvfrom_into(buf)

    prepare_sendto = prepare_send           # drain the receiver

    def run_sendto(self):
        sendto, msg, dest = self.a.sendto, self.msg, self.b.getsockname()
        for _ in range(self.calls):
            sendto(msg, dest)


def pin():
    # Sender, receiver and softirq on one CPU: no cross-CPU wake-ups.
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})


def timed_round(case):
    case.prepare()
    start = time.perf_counter_ns()
    case.run()
    return (time.perf_counter_ns() - start) / case.calls


def ab_table(rounds):
    """{(op, timeout): {impl: [ns per call, one per round]}}, interleaved."""
    pin()
    results = {}
    for op in OPS:
        for timeout in TIMEOUTS:
            cases = {name: Case(cls, op, timeout)
                     for name, cls in IMPLS.items()}
            try:
                samples = {name: [] for name in IMPLS}
                for r in range(rounds + 2):       # 2 warm-up rounds
                    for name, case in cases.items():
                        ns = timed_round(case)
                        if r >= 2:
                            samples[name].append(ns)
                results[op, timeout] = samples
            finally:
                for case in cases.values():
                    case.close()
    return results


def format_table(medians):
    """medians: {(op, timeout): {impl: (median, low, high)}}."""
    lines = [f"{'operation':<15}{'timeout':>8}{'stdlib ns':>12}"
             f"{'fastsock ns':>13}{'stdlib/fastsock':>17}"]
    for (op, timeout), m in medians.items():
        std, fs = m["stdlib"][0], m["fastsock"][0]
        lines.append(
            f"{op:<15}{str(timeout):>8}{std:>12.0f}{fs:>13.0f}"
            f"{std / fs:>16.2f}x   (stdlib {m['stdlib'][1]:.0f}-"
            f"{m['stdlib'][2]:.0f}, fastsock {m['fastsock'][1]:.0f}-"
            f"{m['fastsock'][2]:.0f})")
    return "\n".join(lines)


# ---- pytest-benchmark ---------------------------------------------------------

# {(op, timeout): {impl: (median, min, max) ns per call}}
MEDIANS = {}


class _RatioReport:
    """Prints the ratio table in pytest's terminal summary (output written
    while tests run is captured and dropped)."""

    def pytest_terminal_summary(self, terminalreporter):
        medians = {key: per_impl for key, per_impl in MEDIANS.items()
                   if len(per_impl) == len(IMPLS)}
        if medians:
            terminalreporter.write_line(
                "\nper-call cost, ns per call, pytest-benchmark medians "
                "(run this file as a script for interleaved A/B rounds)\n"
                + format_table(medians))


@pytest.fixture(scope="module", autouse=True)
def ratio_report(request):
    pin()
    plugin = _RatioReport()
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "bench-socket-ratios")
    yield


# impl varies fastest, so stdlib and fastsock alternate through the run.
@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("timeout", TIMEOUTS, ids=["blocking", "timeout5"])
@pytest.mark.parametrize("op", OPS)
def test_per_call(benchmark, impl, op, timeout):
    case = Case(IMPLS[impl], op, timeout)
    try:
        benchmark.group = f"{op} timeout={timeout}"
        benchmark.extra_info["calls_per_round"] = case.calls
        benchmark.pedantic(case.run, setup=case.prepare, rounds=41,
                           warmup_rounds=2)
        stats = benchmark.stats.stats
        MEDIANS.setdefault((op, timeout), {})[impl] = tuple(
            seconds * 1e9 / case.calls
            for seconds in (stats.median, stats.min, stats.max))
    finally:
        case.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    results = ab_table(args.rounds)
    medians = {key: {name: (statistics.median(v), min(v), max(v))
                     for name, v in per_impl.items()}
               for key, per_impl in results.items()}
    print(f"per-call cost, ns per call, median of {args.rounds} interleaved "
          f"rounds (min-max), {SIZE}-byte payloads, CPython "
          f"{sys.version.split()[0]}")
    print(format_table(medians))


if __name__ == "__main__":
    main()
