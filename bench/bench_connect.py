"""W7/G8: connection set-up, one connection after another.

Each connection: connect, a 16-byte request, the 16-byte reply, close.  The
client is timed on one CPU; the server, of the same kind, runs in its own
process on the other.  Six kinds, interleaved A B C D E F A B C D E F so
drift on a shared machine hits all alike:

    c                  plain C client and server (src/fastsock/bench/c/connect.c, -O2)
    fastsock           fastsock.connect() + Listener.accept(), Streams
    stdlib             socket.socket() + connect(), socket.accept()
    create_connection  socket.create_connection(), socket.accept()
    raw                the least a Python loop can do: the C-level
                       _socket.socket (client) and the descriptor from the
                       C-level accept with os.read/os.write/os.close
                       (server), no Python-level wrapper on either side
    event              fastsock.connect() + an EventServer (framing "raw",
                       a callback per request that replies and closes)

"raw" is no library's API: it shows where the interpreter alone puts a
Python loop against the C program, which is the ceiling for fastsock.

The round functions are fastsock.bench.streams.connections() and
c_connections(), which ``python -m fastsock.bench`` runs too.  Rates are
connections per second; the table gives medians, min-max and the median of
the per-round ratios, and the CPU time per connection of both sides
(what the implementation spends, which a loaded machine blurs less than
the rate).  G8: fastsock >= 0.9x c and >= 1.2x stdlib.

--syscalls counts the system calls per connection of each side of each
kind with ``strace -ff``; --instructions counts the user-space
instructions per connection of each side with callgrind, against the C
program as the other side.  Both take the difference of two runs of
different lengths, so start-up and set-up cancel out.  --sides times each
side of fastsock and raw alone against the C program, interleaved with
the C pair and the Python pairs.

    python -m pytest bench/bench_connect.py -s
    python bench/bench_connect.py [--rounds 7] [--count 3000]
    python bench/bench_connect.py --syscalls | --instructions | --sides
"""
import argparse
import collections
import os
import re
import resource
import statistics
import socket
import subprocess
import sys
import tempfile
import time

import fastsock
from fastsock.bench import native
from fastsock.bench.streams import (MEASURED_CPU, PEER_CPU, c_connections, connections,
                                    event_server, make_connections, pin,
                                    serve_connections, unpin)

KINDS = ("c", "fastsock", "stdlib", "create_connection", "raw", "event")
RATIOS = (("fastsock", "c"), ("fastsock", "stdlib"), ("stdlib", "c"),
          ("fastsock", "create_connection"), ("raw", "c"), ("fastsock", "raw"),
          ("event", "c"), ("event", "fastsock"))


def cpu_seconds():
    """CPU time, user and system, of this process and its reaped children:
    both sides of a round, whichever kind (the C client and server are
    children, a Python server is a forked child)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(kind, count):
    """(connections per second, CPU microseconds per connection of both
    sides, start-up of the round included) of one round of `kind`."""
    cpu = cpu_seconds()
    ops, seconds = c_connections(count) if kind == "c" else connections(kind, count)
    return ops / seconds, (cpu_seconds() - cpu) / ops * 1e6


def compare(rounds=5, count=3000, kinds=KINDS, out=print):
    """Interleaved rounds of each kind: {kind: [rate, ...]} and the
    medians of the per-round ratios."""
    exe = native.build("connect") if "c" in kinds else None
    if exe is None and "c" in kinds:
        out("no C compiler: the C reference is left out")
        kinds = tuple(k for k in kinds if k != "c")
    rates = {kind: [] for kind in kinds}
    cpu = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            rate, used = run(kind, count)
            rates[kind].append(rate)
            cpu[kind].append(used)
    out(f"W7: {count} connections per round, {rounds} interleaved rounds, "
        f"client on CPU {MEASURED_CPU}, server on CPU {PEER_CPU}")
    out(f"{'':18} {'conn/s median':>13} {'min-max':>17}   "
        f"{'CPU us/conn, both sides (min-max)':>33}")
    for kind, values in rates.items():
        out(f"{kind:18} {statistics.median(values):13,.0f} "
            f"{min(values):8,.0f}-{max(values):<8,.0f}   "
            f"{statistics.median(cpu[kind]):14.0f} "
            f"({min(cpu[kind]):.0f}-{max(cpu[kind]):.0f})")
    ratios = {}
    for num, den in RATIOS:
        if num in rates and den in rates:
            each = [a / b for a, b in zip(rates[num], rates[den])]
            ratios[f"{num}/{den}"] = statistics.median(each)
            out(f"{num} / {den}: {statistics.median(each):.2f}x "
                f"({min(each):.2f}-{max(each):.2f})")
    return rates, ratios


# ---- system calls per connection --------------------------------------------

CALL = re.compile(r"^(?:\d+ +)?([a-z0-9_]+)\(")


def trace(kind, count, exe, folder):
    """{role: Counter of system calls} of one run of `count` connections
    under strace -ff; the role of each process is read off its calls."""
    prefix = os.path.join(folder, f"{kind}-{count}")
    subprocess.run(["strace", "-ff", "-qq", "-o", prefix, sys.executable,
                    os.path.abspath(__file__), "--one", kind, str(count)],
                   check=True, stdout=subprocess.DEVNULL)
    roles = {}
    for name in os.listdir(folder):
        if not name.startswith(f"{kind}-{count}."):
            continue
        calls = collections.Counter()
        with open(os.path.join(folder, name)) as f:
            for line in f:
                m = CALL.match(line)
                if m:
                    calls[m.group(1)] += 1
        if calls["accept4"] + calls["accept"] >= count:
            roles["server"] = calls
        elif calls["connect"] >= count:
            roles["client"] = calls
    return roles


def syscalls(count=2000, kinds=KINDS, out=print):
    """System calls per connection of each side: the difference between a
    run of 2 * count and one of count connections, divided by count."""
    exe = native.build("connect") if "c" in kinds else None
    kinds = tuple(k for k in kinds if k != "c" or exe)
    result = {}
    out(f"system calls per connection (strace -ff, runs of {2 * count} "
        f"minus {count} connections)")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as folder:
            short, long_ = (trace(kind, n, exe, folder) for n in (count, 2 * count))
        for role in ("client", "server"):
            diff = long_[role] - short[role]
            per = {k: v / count for k, v in diff.items() if v / count >= 0.05}
            result[(kind, role)] = per
            detail = ", ".join(f"{k} {v:.2g}" for k, v in
                               sorted(per.items(), key=lambda kv: -kv[1]))
            out(f"{kind:18} {role:6} {sum(per.values()):5.1f}  {detail}")
    return result


# ---- user-space instructions per connection ---------------------------------

def one_side(role, kind, count, pinned=False):
    """Runs the `role` side of `kind` for `count` connections against the
    C program as the other side (so a trace of this process sees one side).
    Returns connections per second: the client's loop timed here, or the C
    client's own time.  `pinned`: each side on its CPU, as in compare()."""
    exe = native.build("connect")
    cpus = ({"client": MEASURED_CPU, "server": PEER_CPU}
            if pinned and PEER_CPU is not None else {})
    def peer_cpu(peer):
        return [str(cpus[peer])] if cpus else []
    if role == "client":
        server = subprocess.Popen([exe, "server", str(count)] + peer_cpu("server"),
                                  stdout=subprocess.PIPE, text=True)
        address = ("127.0.0.1", int(server.stdout.readline()))
        pin(cpus.get("client"))
        try:
            start = time.perf_counter()
            make_connections("fastsock" if kind == "event" else kind, address, count)
            seconds = time.perf_counter() - start
        finally:
            unpin()
        server.stdout.close()
        assert server.wait(timeout=120) == 0
        return count / seconds
    if kind == "event":
        server, serve = event_server(count)      # closes itself when done
        port, close = server.address[1], None
    else:
        if kind == "fastsock":
            listener = fastsock.listen(("127.0.0.1", 0))
            port = listener.address[1]
        else:
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]
        close = listener.close

        def serve():
            serve_connections("stdlib" if kind == "create_connection" else kind,
                              listener, count)
    client = subprocess.Popen([exe, "client", str(port), str(count)] + peer_cpu("client"),
                              stdout=subprocess.PIPE, text=True)
    pin(cpus.get("server"))
    try:
        serve()
    finally:
        unpin()
    nanoseconds = int(client.communicate(timeout=120)[0])
    assert client.returncode == 0
    if close is not None:
        close()
    return count / (nanoseconds / 1e9)


def sides(rounds=9, count=3000, kinds=("fastsock", "raw"), out=print):
    """Each side of each kind alone, the C program as its peer, against
    the C pair in the same round: where a Python side costs, and whether
    two Python sides cost more together than each alone."""
    if native.build("connect") is None:
        raise RuntimeError(native.why_missing())
    names = ["c"] + [f"{kind} {role}" for kind in kinds
                     for role in ("client", "server")] + list(kinds)
    rates = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            if name == "c" or name in kinds:
                ops, seconds = (c_connections(count) if name == "c"
                                else connections(name, count))
                rates[name].append(ops / seconds)
            else:
                kind, role = name.split()
                rates[name].append(one_side(role, kind, count, pinned=True))
    out(f"W7, each side against the C program: {count} connections per round, "
        f"{rounds} interleaved rounds; the ratio is the median of the "
        f"per-round ratios to the C pair")
    for name in names:
        each = [a / c for a, c in zip(rates[name], rates["c"])]
        peer = ("C server" if name.endswith("client") else
                "C client" if name.endswith("server") else
                "both sides" if name != "c" else "")
        out(f"{name:18} {peer:10} {statistics.median(rates[name]):9,.0f} conn/s  "
            f"{statistics.median(each):.3f}x C ({min(each):.2f}-{max(each):.2f})")
    return rates


VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]


def callgrind(role, kind, count):
    """Instructions that callgrind counts in one run of one side."""
    if kind != "c":
        traced = subprocess.Popen(
            VALGRIND + [os.path.realpath(sys.executable), os.path.abspath(__file__),
                        "--side", role, kind, str(count)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONHASHSEED="0"))
        peer = None
    else:
        # The C side under callgrind, its peer natively.
        exe = native.build("connect")
        if role == "server":
            traced = subprocess.Popen(VALGRIND + [exe, "server", str(count)],
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            port = traced.stdout.readline().strip()
            peer = subprocess.Popen([exe, "client", port, str(count)],
                                    stdout=subprocess.DEVNULL)
        else:
            peer = subprocess.Popen([exe, "server", str(count)],
                                    stdout=subprocess.PIPE, text=True)
            port = peer.stdout.readline().strip()
            traced = subprocess.Popen(VALGRIND + [exe, "client", port, str(count)],
                                      stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
    stderr = traced.communicate(timeout=900)[1]
    if peer is not None:
        peer.wait(timeout=120)
    found = re.search(r"Collected : (\d+)", stderr)
    if traced.returncode != 0 or not found:
        raise RuntimeError(f"callgrind failed: {stderr[-500:]}")
    return int(found.group(1))


def instructions(count=300, kinds=KINDS, out=print):
    """User-space instructions per connection of each side: the difference
    between a run of 3 * count and one of count connections."""
    result = {}
    out(f"user-space instructions per connection (callgrind, runs of "
        f"{3 * count} minus {count} connections, the other side the C program)")
    for kind in kinds:
        for role in ("client", "server"):
            if (kind, role) in (("create_connection", "server"), ("event", "client")):
                continue            # the stdlib server; fastsock's client
            per = (callgrind(role, kind, 3 * count) - callgrind(role, kind, count)) / (2 * count)
            result[(kind, role)] = per
            out(f"{kind:18} {role:6} {per:8,.0f}")
    return result


# ---- pytest-benchmark ---------------------------------------------------------

def test_g8_connect(benchmark):
    """The interleaved comparison above; its table is the result (the time
    pytest-benchmark shows is that of the whole comparison)."""
    lines = []
    rounds = int(os.environ.get("FASTSOCK_BENCH_ROUNDS", "5"))
    count = int(3000 * float(os.environ.get("FASTSOCK_BENCH_SCALE", "1.0")))
    rates, ratios = benchmark.pedantic(
        compare, kwargs={"rounds": rounds, "count": max(count, 100),
                         "out": lines.append}, rounds=1, iterations=1)
    print("\n" + "\n".join(lines))
    benchmark.extra_info.update(
        {f"{k} conn/s": statistics.median(v) for k, v in rates.items()})
    benchmark.extra_info.update(ratios)
    assert {"fastsock", "stdlib"} <= set(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--syscalls", action="store_true",
                        help="count system calls per connection instead")
    parser.add_argument("--instructions", action="store_true",
                        help="count user-space instructions per connection instead")
    parser.add_argument("--sides", action="store_true",
                        help="time each side of fastsock and raw against the C program")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--side", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, count = args.one
        run(kind, int(count))
    elif args.side:
        role, kind, count = args.side
        one_side(role, kind, int(count))
    elif args.syscalls:
        syscalls(args.count, tuple(args.kinds.split(",")))
    elif args.sides:
        sides(args.rounds, args.count)
    elif args.instructions:
        instructions(min(args.count, 300), tuple(args.kinds.split(",")))
    else:
        compare(args.rounds, args.count, tuple(args.kinds.split(",")))


if __name__ == "__main__":
    main()
