"""W6 / G7: requests/s of fastsock.Server against the stdlib's servers.

64 client connections doing 64-byte request/response against an echo
server; the load comes from src/fastsock/bench/c/loadgen.c (compiled with the
system cc), so the client is not the bottleneck.  Servers run in their own
processes pinned to one CPU, the load generator to the other.  In one run:

    fastsock   fastsock.Server, handler: read1() + write()
    threading  socketserver.ThreadingTCPServer, handler: recv() + sendall()
    asyncio    asyncio Protocol: data_received() -> transport.write()
    selectors  one thread, selectors.DefaultSelector, recv() + send()
    c-threads  plain C, one thread per connection, blocking recv + send
    c-epoll    plain C, one thread, epoll + recv + send

The two C servers (src/fastsock/bench/c/echo_server.c) bound what each server model can
get on this machine without Python: the thread-per-connection model pays a
context switch per request that no library on top of it can remove.

Runs are interleaved (A B C D A B C D ...), each a bounded time; medians,
min-max and ratios against ThreadingTCPServer are reported, with the server
CPU time per request, user and system (a server at ~100% of its CPU is the
limit; system time is the kernel's TCP and scheduling work) and, where
`perf` works, its futex calls and context switches per request counted
from kernel tracepoints (which, unlike strace, do not slow it down).

    python bench/bench_server.py [--rounds 5] [--seconds 2] [--futex]
    python -m pytest -s bench/bench_server.py   (pytest-benchmark; the same
                                                 runs, figures in extra_info)

--futex also counts futex calls per request of the threaded servers with
`strace -f -c --seccomp-bpf -e trace=futex` (under strace, so slower).
"""
import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

from fastsock.bench import native
from fastsock.bench.servers import run_load, start_server, stop_server

KINDS = ("fastsock", "threading", "asyncio", "selectors", "c-threads", "c-epoll")
BASELINE = "threading"


# ---- driving them ----------------------------------------------------------------

def idle_fraction(interval=0.3):
    """Share of all CPUs idle over `interval` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)      # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(threshold=0.8, patience=15.0):
    """On a shared machine, start a run only when others leave the CPUs
    mostly idle (up to `patience` seconds); returns the idle share seen."""
    deadline = time.monotonic() + patience
    while True:
        idle = idle_fraction()
        if idle >= threshold or time.monotonic() > deadline:
            return idle


def cpu_seconds(pid):
    """(user, system) CPU seconds of a process and all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class PerfCounts:
    """Counts a process's futex calls and context switches with `perf stat`
    (kernel tracepoints: unlike strace, it does not slow the process)."""

    EVENTS = ("syscalls:sys_enter_futex", "context-switches")

    def __init__(self, pid):
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", ",".join(self.EVENTS), "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.1)          # perf attaches before the load starts

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        counts = {}
        for line in self.proc.communicate(timeout=10)[1].splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[0].isdigit():
                counts[fields[2].rsplit(":", 1)[-1]] = int(fields[0])
        return counts


def perf_usable():
    try:
        return subprocess.run(["perf", "stat", "-e", PerfCounts.EVENTS[0], "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def measure(kinds=KINDS, rounds=5, seconds=2.0, conns=64, size=64,
            server_cpu=0, client_cpu=1, log=print, counts=False, quiet=0.8,
            reconnect=False):
    """Interleaved runs; returns {kind: [(rps, user_us_per_request,
    system_us_per_request, futex_per_request, switches_per_request), ...]}
    (the last two None unless `counts`, which needs perf).  Each run waits for the machine
    to be `quiet` (that share idle) for a while first; 0: no waiting.
    `reconnect`: a new connection for every request."""
    results = {kind: [] for kind in kinds}
    loadgen = native.build("loadgen")
    servers = {kind: start_server(kind, server_cpu) for kind in kinds}
    try:
        for r in range(rounds):
            for kind in kinds:
                proc, port = servers[kind]
                idle = wait_quiet(quiet) if quiet else 1.0
                perf = PerfCounts(proc.pid) if counts else None
                user0, sys0 = cpu_seconds(proc.pid)
                requests, elapsed = run_load(loadgen, port, conns, seconds,
                                             client_cpu, size, reconnect)
                user1, sys1 = cpu_seconds(proc.pid)
                # CPU time covers warm-up and drain too: scale by the
                # requests of the whole run, estimated from the rate.
                total = requests * (elapsed + 0.3) / elapsed
                futex = switches = None
                if perf is not None:
                    got = perf.stop()
                    futex = got.get("sys_enter_futex", 0) / total
                    switches = got.get("context-switches", 0) / total
                results[kind].append((requests / elapsed,
                                      (user1 - user0) / total * 1e6,
                                      (sys1 - sys0) / total * 1e6,
                                      futex, switches))
                log(f"round {r + 1} {kind:10s} {requests / elapsed:9.0f} req/s"
                    f"   (machine {idle:.0%} idle before)")
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    return results


def futex_per_request(kind, seconds=2.0, conns=64, server_cpu=0, client_cpu=1):
    """(futex calls, requests) of one run with strace counting futex calls."""
    with tempfile.TemporaryDirectory() as tmp:
        loadgen = native.build("loadgen")
        summary = os.path.join(tmp, "strace.txt")
        proc, port = start_server(kind, server_cpu, wrap=(
            "strace", "-f", "-c", "--seccomp-bpf", "-e", "trace=futex",
            "-o", summary))
        try:
            requests, elapsed = run_load(loadgen, port, conns, seconds,
                                         client_cpu)
        finally:
            # Stop the traced Python (the child of strace), then strace.
            child = subprocess.run(["pgrep", "-P", str(proc.pid)],
                                   capture_output=True, text=True).stdout.split()
            for pid in child:
                os.kill(int(pid), signal.SIGTERM)
            proc.wait(20)
        calls = 0
        with open(summary) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1] == "futex":
                    calls = int(parts[3])
        # Warm-up and drain requests are about 0.3 s more at the same rate.
        return calls, requests * (elapsed + 0.3) / elapsed


def report(results, log=print):
    """Prints medians, min-max and two ratios against ThreadingTCPServer:
    of the medians, and the median of each round's own ratio (runs of one
    round are seconds apart, so that one cancels most of the drift of a
    shared machine between rounds)."""
    medians = {k: statistics.median(run[0] for run in v) for k, v in results.items()}
    base = results.get(BASELINE)
    log(f"{'server':10s} {'median req/s':>12s} {'min':>8s} {'max':>8s} "
        f"{'vs threading':>12s} {'paired':>7s} {'user us/req':>11s} "
        f"{'sys us/req':>10s} {'futex/req':>9s} {'switches/req':>12s}")
    for kind, runs in results.items():
        rps = [run[0] for run in runs]
        column = [statistics.median(run[i] for run in runs)
                  if runs[0][i] is not None else float("nan") for i in (1, 2, 3, 4)]
        ratio = paired = float("nan")
        if base:
            ratio = medians[kind] / medians[BASELINE]
            paired = statistics.median(a[0] / b[0] for a, b in zip(runs, base))
        log(f"{kind:10s} {medians[kind]:12.0f} {min(rps):8.0f} {max(rps):8.0f} "
            f"{ratio:11.2f}x {paired:6.2f}x {column[0]:11.1f} {column[1]:10.1f} "
            f"{column[2]:9.2f} {column[3]:12.2f}")
    return medians


# ---- pytest-benchmark entry ---------------------------------------------------------

def test_w6_server_requests_per_second(benchmark):
    results = {}

    def run():
        results.update(measure(rounds=5, seconds=2.0, counts=perf_usable()))

    benchmark.pedantic(run, rounds=1, iterations=1)
    medians = report(results)
    benchmark.extra_info["requests_per_s"] = medians
    benchmark.extra_info["ratio_vs_threading"] = {
        k: v / medians[BASELINE] for k, v in medians.items()}
    assert all(v > 0 for v in medians.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=0, help="server CPU")
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--quiet", type=float, default=0.8,
                        help="wait (15 s at most) for this share of idle CPU "
                             "before each run (0: do not wait)")
    parser.add_argument("--reconnect", action="store_true",
                        help="also measure with a new connection per request "
                             "(8 clients): the accept path and hand-off")
    parser.add_argument("--futex", action="store_true",
                        help="also count futex calls per request under strace")
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    print(f"W6: {args.connections} connections x 64-byte request/response, "
          f"server on CPU {args.cpu}, load generator on CPU {args.client_cpu}, "
          f"{args.rounds} interleaved runs of {args.seconds} s each")
    report(measure(kinds, args.rounds, args.seconds, args.connections,
                   server_cpu=args.cpu, client_cpu=args.client_cpu,
                   counts=perf_usable(), quiet=args.quiet))
    if args.reconnect:
        print("\nW6 with a new connection per request (connect, 64-byte "
              "request/response, close), 8 clients:")
        report(measure(kinds, args.rounds, args.seconds, 8,
                       server_cpu=args.cpu, client_cpu=args.client_cpu,
                       quiet=args.quiet, reconnect=True))
    if args.futex:
        # Under strace every futex call stops the server, which changes the
        # contention it counts: interleave several runs and take medians.
        traced = {kind: [] for kind in ("fastsock", "threading") if kind in kinds}
        for _ in range(3):
            for kind, runs in traced.items():
                calls, requests = futex_per_request(kind, args.seconds,
                                                    args.connections, args.cpu,
                                                    args.client_cpu)
                runs.append(calls / requests)
        for kind, runs in traced.items():
            print(f"futex calls per request under strace, {kind}: median "
                  f"{statistics.median(runs):.1f} (runs: "
                  f"{', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
