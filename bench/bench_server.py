"""W6 / G7 / G7p: requests/s and latency of fastsock's servers against others.

64 client connections send 64-byte frames (a 4-byte length, then the
payload) to an echo server and check each reply; the load comes from
src/fastsock/bench/c/loadgen.c (compiled with the system
cc), so the client is not
the bottleneck.  Servers run in their own processes pinned to one CPU, the
load generator to the other.  W6 keeps one request in flight per
connection, W6p sixteen (pipelined).  The servers:

    threading        socketserver.ThreadingTCPServer (Nagle off), recv() + sendall()
    threading-frame  the same, reading each frame (rfile.read) and writing its reply
    fastsock         fastsock.Server, handler: read1() + write()
    event-raw        fastsock.EventServer(framing="raw"): echo what each receive brought
    event-frame      fastsock.EventServer(framing="frame"): a callback per frame
    uvloop-raw       a uvloop Protocol: data_received() -> transport.write()
    uvloop-frame     the same, splitting frames in Python (as a uvloop user would)
    asyncio          an asyncio Protocol: data_received() -> transport.write()
    selectors        one thread, selectors.DefaultSelector, recv() + send()
    c-threads        plain C, one thread per connection, blocking recv + send
    c-epoll          plain C, one thread, epoll + recv + send

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

KINDS = ("threading", "fastsock", "event-raw", "event-frame", "uvloop-raw",
         "uvloop-frame", "asyncio", "c-epoll")
# Pipelined, every server splits frames (but the C reference, which echoes).
PIPELINED_KINDS = ("threading-frame", "event-frame", "uvloop-frame", "c-epoll")
BASELINE = "threading"
PIPELINED_BASELINE = "threading-frame"


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
            reconnect=False, depth=1):
    """Interleaved runs; returns {kind: [(rps, user_us_per_request,
    system_us_per_request, futex_per_request, switches_per_request,
    p99_us), ...]} (futex and switches None unless `counts`, which needs
    perf).  Each run waits for the machine to be `quiet` (that share idle)
    for a while first; 0: no waiting.  `reconnect`: a new connection for
    every request; `depth`: requests in flight per connection."""
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
                requests, elapsed, p99 = run_load(
                    loadgen, port, conns, seconds, client_cpu, size, reconnect,
                    depth)
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
                                      futex, switches, p99))
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
            requests, elapsed, _ = run_load(loadgen, port, conns, seconds,
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


def paired(results, kind, other):
    """Median of the per-round ratios of kind's req/s to other's: runs of one
    round are seconds apart, so this cancels most of the drift of a shared
    machine between rounds."""
    return statistics.median(a[0] / b[0] for a, b in zip(results[kind], results[other]))


def report(results, log=print, baseline=BASELINE):
    """Prints medians, min-max, p99 latency and two ratios against the
    baseline: of the medians, and paired (see paired())."""
    medians = {k: statistics.median(run[0] for run in v) for k, v in results.items()}
    base = baseline if baseline in results else None
    log(f"{'server':15s} {'median req/s':>12s} {'min':>8s} {'max':>8s} "
        f"{'p99 us':>8s} {'vs ' + baseline:>19s} {'paired':>7s} "
        f"{'user us/req':>11s} {'sys us/req':>10s} {'futex/req':>9s} "
        f"{'switches/req':>12s}")
    for kind, runs in results.items():
        rps = [run[0] for run in runs]
        column = [statistics.median(run[i] for run in runs)
                  if runs[0][i] is not None else float("nan")
                  for i in (1, 2, 3, 4, 5)]
        ratio = ratio_paired = float("nan")
        if base:
            ratio = medians[kind] / medians[base]
            ratio_paired = paired(results, kind, base)
        log(f"{kind:15s} {medians[kind]:12.0f} {min(rps):8.0f} {max(rps):8.0f} "
            f"{column[4]:8.0f} {ratio:18.2f}x {ratio_paired:6.2f}x "
            f"{column[0]:11.1f} {column[1]:10.1f} {column[2]:9.2f} "
            f"{column[3]:12.2f}")
    return medians


def report_goals(results, goals, log=print):
    """Each goal (kind, other, at least): the paired ratio, met or not; a
    report, never a verdict on a shared machine."""
    for kind, other, least in goals:
        if kind in results and other in results:
            ratio = paired(results, kind, other)
            log(f"  {kind} / {other}: {ratio:.2f}x (goal >= {least}x): "
                f"{'met' if ratio >= least else 'not met'}")


G7 = (("event-raw", "threading", 1.3), ("event-raw", "uvloop-raw", 1.1),
      ("event-raw", "c-epoll", 0.9), ("event-frame", "uvloop-frame", 1.1))
G7P = (("event-frame", "threading-frame", 10), ("event-frame", "uvloop-frame", 3))


def p99(results, kind):
    return statistics.median(run[5] for run in results[kind])


# ---- redis-benchmark: EventServer against a real redis-server ----------------------

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(cpu):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    deadline = time.monotonic() + 10
    import socket
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def redis_benchmark(port, pipeline, seconds, cpu):
    """Requests/s of one redis-benchmark run of about `seconds`."""
    requests = int(60000 * seconds * (8 if pipeline > 1 else 1))
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping_inline",
         "-c", "50", "-n", str(requests), "-P", str(pipeline), "--csv"],
        capture_output=True, text=True, timeout=seconds * 20 + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    for line in out.stdout.splitlines():
        fields = [f.strip('"') for f in line.split(",")]
        if fields[0] == "PING_INLINE":
            return float(fields[1])
    raise RuntimeError(f"redis-benchmark failed: {out.stdout} {out.stderr}")


def redis_compare(rounds, seconds, server_cpu, client_cpu):
    """{(server, pipeline): [requests/s, ...]}, interleaved."""
    results = {}
    redis, redis_port = start_redis(server_cpu)
    event, event_port = start_server("event-pong", server_cpu)
    try:
        for _ in range(rounds):
            for pipeline in (1, 16):
                for name, port in (("redis-server", redis_port),
                                   ("EventServer", event_port)):
                    results.setdefault((name, pipeline), []).append(
                        redis_benchmark(port, pipeline, seconds, client_cpu))
    finally:
        stop_server(redis)
        stop_server(event)
    return results


def redis_report(results, log=print):
    for pipeline in (1, 16):
        line = []
        for name in ("redis-server", "EventServer"):
            runs = results[(name, pipeline)]
            line.append(f"{name} {statistics.median(runs):9.0f} req/s "
                        f"({min(runs):.0f}-{max(runs):.0f})")
        ratio = statistics.median(
            e / r for e, r in zip(results[("EventServer", pipeline)],
                                  results[("redis-server", pipeline)]))
        log(f"  -P {pipeline:2d}: {'   '.join(line)}   EventServer/redis "
            f"{ratio:.2f}x (paired)")


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
    parser.add_argument("--pipelined-kinds", default=",".join(PIPELINED_KINDS),
                        help="servers of W6p, 16 frames in flight per "
                             "connection ('' to skip it)")
    parser.add_argument("--redis", action="store_true",
                        help="also run redis-benchmark -t ping_inline -c 50 "
                             "(-P 1 and -P 16) against EventServer and a real "
                             "redis-server")
    parser.add_argument("--quiet", type=float, default=0.8,
                        help="wait (15 s at most) for this share of idle CPU "
                             "before each run (0: do not wait)")
    parser.add_argument("--reconnect", action="store_true",
                        help="also measure with a new connection per request "
                             "(8 clients): the accept path and hand-off")
    parser.add_argument("--futex", action="store_true",
                        help="also count futex calls per request under strace")
    args = parser.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    print(f"W6: {args.connections} connections x 64-byte frames, one in flight "
          f"each, server on CPU {args.cpu}, load generator on CPU "
          f"{args.client_cpu}, {args.rounds} interleaved runs of "
          f"{args.seconds} s each")
    results = measure(kinds, args.rounds, args.seconds, args.connections,
                      server_cpu=args.cpu, client_cpu=args.client_cpu,
                      counts=perf_usable(), quiet=args.quiet)
    report(results)
    print("G7 (paired ratios):")
    report_goals(results, G7)
    if "event-raw" in results and "uvloop-raw" in results:
        print(f"  p99 latency, event-raw {p99(results, 'event-raw'):.0f} us, "
              f"uvloop-raw {p99(results, 'uvloop-raw'):.0f} us (goal: no worse)")
    pipelined = tuple(k for k in args.pipelined_kinds.split(",") if k)
    if pipelined:
        print("\nW6p: the same with 16 frames in flight per connection")
        results = measure(pipelined, args.rounds, args.seconds, args.connections,
                          server_cpu=args.cpu, client_cpu=args.client_cpu,
                          quiet=args.quiet, depth=16)
        report(results, baseline=PIPELINED_BASELINE)
        print("G7p (paired ratios):")
        report_goals(results, G7P)
    if args.redis:
        print(f"\nredis-benchmark -t ping_inline -c 50, {args.rounds} "
              f"interleaved runs:")
        redis_report(redis_compare(args.rounds, args.seconds, args.cpu,
                                   args.client_cpu))
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
