"""Stream workloads G1-G5 of WORKLOADS.md, each against the stdlib in the
same run (G8, connection set-up, is in bench_connect.py).

Run: PYTHONPATH=src python -m pytest bench/bench_stream.py -q -s

The peer of each measured side is a forked child process on loopback TCP.
The measured side runs on CPU 1 and the peer on CPU 0 (both on CPU 0 for
ping-pong, as WORKLOADS.md measures it), where the machine has two CPUs.
Rounds are interleaved: before each fastsock round (timed by
pytest-benchmark), the pedantic setup runs and times one round of each
stdlib variant, so drift on a shared machine hits both.  At the end a table
gives the medians (min-max) and the ratio fastsock/stdlib of the rates.

Environment: FASTSOCK_BENCH_ROUNDS (default 5), FASTSOCK_BENCH_SCALE
(default 1.0, multiplies the message counts).
"""
import os
import socket
import statistics
import struct
import time

import pytest

import fastsock
from fastsock.bench.streams import (count_frames_stdlib, count_frames_stream, count_lines_stdlib,
                                    count_lines_stream)

ROUNDS = int(os.environ.get("FASTSOCK_BENCH_ROUNDS", "5"))
SCALE = float(os.environ.get("FASTSOCK_BENCH_SCALE", "1.0"))
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
PEER_CPU = CPUS[0] if CPUS else None
SELF_CPU = CPUS[1] if len(CPUS) > 1 else PEER_CPU
RESULTS = []


def count(n):
    return max(1, int(n * SCALE))


def pin(cpu):
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


@pytest.fixture(scope="module", autouse=True)
def pinned(request):
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    if before is not None:
        os.sched_setaffinity(0, before)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not RESULTS:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"fastsock vs stdlib, medians of {ROUNDS} interleaved rounds "
            f"(measured side on CPU {SELF_CPU}, peer on CPU {PEER_CPU}; "
            f"G2: both on CPU {PEER_CPU}):")
        for line in RESULTS:
            reporter.write_line("  " + line)


# ---- processes -------------------------------------------------------------

class Peer:
    """A forked child connected to us over loopback TCP, running
    role(sock, *args) on CPU `cpu`; `self.sock` is our end (stdlib)."""

    def __init__(self, role, *args, cpu=PEER_CPU):
        with socket.create_server(("127.0.0.1", 0)) as lst:
            pid = os.fork()
            if pid == 0:                                   # child
                code = 0
                try:
                    pin(cpu)
                    sock = socket.create_connection(lst.getsockname())
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    role(sock, *args)
                    sock.close()
                except BaseException:
                    import traceback
                    traceback.print_exc()
                    code = 1
                os._exit(code)
            self.pid = pid
            self.sock, _ = lst.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def stream(self, **kwargs):
        """Our end as a fastsock Stream (the stdlib socket is taken over)."""
        return fastsock.Stream(self.sock, **kwargs)

    def wait(self):
        _, status = os.waitpid(self.pid, 0)
        assert status == 0, "the peer process failed"


def wait_go(sock):
    assert sock.recv(1) == b"g"


def send_blocks(sock, block, times, use_fastsock):
    """Sends `block` `times` times once told to go, then closes."""
    wait_go(sock)
    if use_fastsock:
        s = fastsock.Stream(sock)
        for _ in range(times):
            s.write(block)
        s.close()
    else:
        for _ in range(times):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)


def echo(sock, size, use_fastsock, timeout):
    """Answers each `size`-byte message with itself until EOF."""
    sock.settimeout(timeout)
    if use_fastsock:
        s = fastsock.Stream(sock)
        try:
            while True:
                s.write(s.readexactly(size))
        except EOFError:
            return
    buf = bytearray(size)
    view = memoryview(buf)
    while True:
        n = sock.recv_into(buf)
        if not n:
            return
        while n < size:
            n += sock.recv_into(view[n:])
        sock.sendall(buf)


def count_frames(sock, total):
    """Receives `total` frames (with the fast receiver) and answers b"k"."""
    s = fastsock.Stream(sock)
    n = 0
    for _ in s.frames():
        n += 1
        if n == total:
            break
    s.write(b"k")
    s.flush()
    s.read()


# ---- the measuring frame ---------------------------------------------------

def measure(benchmark, name, unit, amount, fastsock_round, stdlib_rounds):
    """Times fastsock_round with pytest-benchmark and, interleaved with it,
    each stdlib variant (a dict name -> round).  A round is a function that
    prepares and returns a timed callable.  Reports rates in `unit` per
    second for `amount` units per round."""
    stdlib_times = {k: [] for k in stdlib_rounds}

    def setup():
        for key, prepare in stdlib_rounds.items():
            run = prepare()
            t0 = time.perf_counter()
            run()
            stdlib_times[key].append(time.perf_counter() - t0)
        return (fastsock_round(),), {}

    benchmark.pedantic(lambda run: run(), setup=setup, rounds=ROUNDS,
                       iterations=1, warmup_rounds=0)
    fast = benchmark.stats.stats
    fast_median = fast.median

    def rate(t):
        return amount / t
    best_key = min(stdlib_times, key=lambda k: statistics.median(stdlib_times[k]))
    best = stdlib_times[best_key]
    ratio = statistics.median(best) / fast_median
    benchmark.extra_info.update({
        "unit": f"{unit}/s",
        "fastsock_rate": rate(fast_median),
        "stdlib_best": best_key,
        "stdlib_rates": {k: rate(statistics.median(v)) for k, v in stdlib_times.items()},
        "ratio": ratio,
    })
    stdlib_text = ", ".join(
        f"{k} {fmt(rate(statistics.median(v)))} ({fmt(rate(max(v)))}-{fmt(rate(min(v)))})"
        for k, v in stdlib_times.items())
    line = (f"{name}: fastsock {fmt(rate(fast_median))} {unit}/s "
            f"({fmt(rate(fast.max))}-{fmt(rate(fast.min))}); stdlib {stdlib_text}; "
            f"ratio {ratio:.2f}x vs stdlib {best_key}")
    RESULTS.append(line)
    return ratio


def fmt(x):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


# ---- G1: bulk ----------------------------------------------------------------

def test_g1_bulk_readinto(benchmark):
    pin(SELF_CPU)
    block = os.urandom(1 << 20)
    times = count(128)

    def fastsock_round():
        peer = Peer(send_blocks, block, times, True)
        s = peer.stream()
        buf = bytearray(1 << 20)

        def run():
            s.socket.send(b"g")
            total = 0
            while True:
                n = s.readinto(buf)
                if not n:
                    break
                total += n
            assert total == len(block) * times
            s.close()
            peer.wait()
        return run

    def stdlib_round(chunk):
        def prepare():
            peer = Peer(send_blocks, block, times, False)
            sock = peer.sock
            buf = bytearray(chunk)

            def run():
                sock.send(b"g")
                total = 0
                while True:
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    total += n
                assert total == len(block) * times
                sock.close()
                peer.wait()
            return run
        return prepare

    measure(benchmark, "G1 bulk, 1 MiB writes", "B", len(block) * times,
            fastsock_round, {"recv_into 1 MiB": stdlib_round(1 << 20),
                             "recv_into 64 KiB": stdlib_round(1 << 16)})


# ---- G2: ping-pong -------------------------------------------------------------

@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timeout"])
def test_g2_ping_pong(benchmark, timeout):
    pin(PEER_CPU)                     # both ends on one CPU
    req = os.urandom(64)
    trips = count(3000)

    def fastsock_round():
        peer = Peer(echo, 64, True, timeout)
        s = peer.stream()
        s.settimeout(timeout)

        def run():
            write, readexactly = s.write, s.readexactly
            for _ in range(trips):
                write(req)
                readexactly(64)
            s.close()
            peer.wait()
        return run

    def stdlib_round():
        peer = Peer(echo, 64, False, timeout)
        sock = peer.sock
        sock.settimeout(timeout)
        buf = bytearray(64)
        view = memoryview(buf)

        def run():
            sendall, recv_into = sock.sendall, sock.recv_into
            for _ in range(trips):
                sendall(req)
                n = recv_into(buf)
                while n < 64:
                    n += recv_into(view[n:])
            sock.close()
            peer.wait()
        return run

    measure(benchmark, f"G2 ping-pong 64 B, one CPU, {'timeout 5 s' if timeout else 'blocking'}",
            "round trips", trips, fastsock_round, {"sendall+recv_into": stdlib_round})


# ---- G3 and G5: a batched sender, messages counted as they arrive -------------------

def batched_rounds(message, times, count_stream, count_stdlib):
    """(messages, fastsock's round, the stdlib's round) for a peer that, once
    it reads b"g", sends `times` 64 KiB blocks of `message`: each round counts
    the messages with the receiver of fastsock.bench (the CLI measures the
    same loops) and checks the total."""
    per_block = 65536 // len(message)
    block = message * per_block
    total = per_block * times

    def fastsock_round():
        peer = Peer(send_blocks, block, times, False)
        s = peer.stream()

        def run():
            s.socket.send(b"g")
            assert count_stream(s) == total
            s.close()
            peer.wait()
        return run

    def stdlib_round():
        peer = Peer(send_blocks, block, times, False)
        sock = peer.sock

        def run():
            sock.send(b"g")
            assert count_stdlib(sock) == total
            sock.close()
            peer.wait()
        return run

    return total, fastsock_round, stdlib_round


# ---- G3: frames ---------------------------------------------------------------

FRAME = struct.pack(">I", 100) + os.urandom(100)


def test_g3_frames(benchmark):
    pin(SELF_CPU)
    total, fastsock_round, stdlib_round = batched_rounds(
        FRAME, count(4000), count_frames_stream, count_frames_stdlib)
    measure(benchmark, "G3 frames 4+100 B, batched sender", "msg", total,
            fastsock_round, {"recv_into+unpack_from": stdlib_round})


# ---- G4: send_frame per message ----------------------------------------------

def test_g4_send_frame(benchmark):
    pin(SELF_CPU)
    payload = os.urandom(100)
    total = count(100_000)

    def fastsock_round():
        peer = Peer(count_frames, total)
        s = peer.stream()

        def run():
            send_frame = s.send_frame
            for _ in range(total):
                send_frame(payload)
            s.flush()
            assert s.read(1) == b"k"
            s.close()
            peer.wait()
        return run

    def stdlib_round():
        peer = Peer(count_frames, total)
        sock = peer.sock

        def run():
            sendall, pack = sock.sendall, struct.Struct(">I").pack
            for _ in range(total):
                sendall(pack(len(payload)) + payload)
            assert sock.recv(1) == b"k"
            sock.close()
            peer.wait()
        return run

    measure(benchmark, "G4 one frame per call (4+100 B)", "msg", total,
            fastsock_round, {"sendall per frame": stdlib_round})


# ---- G5: lines ------------------------------------------------------------------

def test_g5_lines(benchmark):
    pin(SELF_CPU)
    line = os.urandom(40).hex()[:79].encode() + b"\n"
    total, fastsock_round, stdlib_round = batched_rounds(
        line, count(1500), count_lines_stream, count_lines_stdlib)
    measure(benchmark, "G5 lines of 80 B", "lines", total, fastsock_round,
            {"makefile('rb')": stdlib_round})
