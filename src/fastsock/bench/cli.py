"""python -m fastsock.bench: fastsock against the stdlib and plain C, side by
side in one run, on the workloads fastsock is judged on (W1-W7 below), and
the ratio of each of its goals (G1-G9).

Each workload runs the stdlib's fastest idiomatic code, fastsock's code and
the plain C reference in turn, round after round (A B C A B C ...), so that
drift on a shared machine hits all of them; the peer of the measured side
is another process.  Ratios are medians of per-round ratios.  Progress goes
to stderr; the report to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from typing import Any, Dict, List, Optional, TextIO

import fastsock
from fastsock.bench import native, report, syscalls
from fastsock.bench.workloads import Side, Workload, all_workloads


def machine() -> Dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    build = "debug" if sysconfig.get_config_var("Py_DEBUG") else "release"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        build += ", free-threaded"
    cc = native.compiler()
    cc_version = None
    if cc:
        try:
            cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                        timeout=10).stdout.splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            cc_version = cc
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": f"{build} build, {' '.join(platform.python_build())}, "
                        f"{platform.python_compiler()}",
        "fastsock": fastsock.__version__,
        "c_compiler": cc_version,
        "idle_before": idle_share(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def idle_share(interval: float = 0.5) -> Optional[float]:
    """Share of all CPUs idle over `interval`, from /proc/stat (how busy the
    machine was as the run began)."""
    def sample() -> List[int]:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    try:
        before = sample()
        time.sleep(interval)
        after = sample()
    except OSError:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return (delta[3] + delta[4]) / max(1, sum(delta))


class Progress:
    """One status line on stderr: workload, round, side, time left."""

    def __init__(self, plan: List[Workload], rounds: int, quick: bool,
                 stream: Optional[TextIO]) -> None:
        self.stream = stream
        self.tty = bool(stream and stream.isatty())
        self.start = time.monotonic()
        self.rounds = rounds
        self.quick = quick
        self.left = {w.id: rounds * len(w.sides) for w in plan}
        self.guess = {w.id: w.seconds / (5 if quick else 1) for w in plan}
        self.took: Dict[str, List[float]] = {w.id: [] for w in plan}

    def time_left(self) -> float:
        total = 0.0
        for wid, runs in self.left.items():
            took = self.took[wid]
            total += runs * (sum(took) / len(took) if took else self.guess[wid])
        return total

    def show(self, workload: Workload, round_: int, side: str) -> None:
        if not self.stream:
            return
        elapsed = time.monotonic() - self.start
        line = (f"[{elapsed:4.0f} s, about {self.time_left():3.0f} s left] {workload.id} "
                f"{workload.title}: round {round_}/{self.rounds}, {side}")
        if self.tty:
            self.stream.write("\r\033[K" + line[:150])
        elif side == workload.sides[0].key:
            self.stream.write(line.rsplit(",", 1)[0] + "\n")
        self.stream.flush()

    def ran(self, workload: Workload, seconds: float) -> None:
        self.left[workload.id] -= 1
        self.took[workload.id].append(seconds)

    def note(self, text: str) -> None:
        if self.stream:
            self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.stream and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def select(workloads: List[Workload], only: Optional[str]) -> List[Workload]:
    """The workloads `--only` names (W3 also picks W3n), in their order."""
    if not only:
        return workloads
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    known = {w.id.upper() for w in workloads}
    for w in wanted:
        if not any(k == w or (k.startswith(w) and k[len(w):].isalpha()) for k in known):
            raise ValueError(f"unknown workload {w!r} (known: {', '.join(sorted(known))})")
    return [w for w in workloads
            if any(w.id.upper() == x or (w.id.upper().startswith(x)
                                          and w.id[len(x):].isalpha()) for x in wanted)]


def runnable(workload: Workload) -> Workload:
    """Leaves out the sides whose C program cannot be built, with a note."""
    keep = []
    for side in workload.sides:
        if all(native.build(name) for name in side.needs):
            keep.append(side)
        else:
            workload.notes.append(f"{side.key} left out (see 'C:' above)")
    workload.sides = keep
    return workload


def one_run(side: Side, n: float) -> Dict[str, float]:
    """{"ops", "seconds", "rate", and what else the run reports}."""
    ops, seconds, *more = side.run(int(n))
    if ops <= 0 or seconds <= 0:
        raise RuntimeError(f"{ops} operations in {seconds:.3f} s")
    return {"ops": ops, "seconds": seconds, "rate": ops / seconds, **dict(*more)}


def measure(plan: List[Workload], rounds: int, quick: bool,
            progress: Progress) -> Dict[str, Dict[str, List[Dict[str, float]]]]:
    """{workload id: {side: [{"ops", "seconds", "rate"} per round]}}."""
    runs: Dict[str, Dict[str, List[Dict[str, float]]]] = {}
    for workload in plan:
        n = workload.quick_n if quick else workload.n
        runs[workload.id] = {side.key: [] for side in workload.sides}
        for r in range(1, rounds + 1):
            for side in workload.sides:
                progress.show(workload, r, side.key)
                t0 = time.monotonic()
                try:
                    figures = one_run(side, n)
                except RuntimeError as e:
                    # A run that fails (a peer that died, a load generator
                    # that saw errors, nothing done) is run again once, and
                    # said so.
                    note = f"{side.key}: round {r} failed and was run again ({e})"
                    workload.notes.append(note)
                    progress.note(note)
                    figures = one_run(side, n)
                progress.ran(workload, time.monotonic() - t0)
                runs[workload.id][side.key].append(figures)
    return runs


def parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fastsock.bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads:\n" + "\n".join(f"  {w.id:4} {w.title}" for w in all_workloads()))
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 3 rounds, about a fifth of the work per run")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per workload (default 5, --quick 3)")
    parser.add_argument("--only", metavar="W3,W6",
                        help="run only these workloads (W3 also picks W3n)")
    parser.add_argument("--json", metavar="FILE", help="write every run's figures to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the ratios with min-max whiskers (needs matplotlib: "
                             "pip install 'fastsock[bench]')")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        select(all_workloads(), args.only)
    except ValueError as e:
        parser.error(str(e))
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'fastsock[bench]'")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    progress_to = None if args.quiet else sys.stderr
    info = machine()
    plan = [runnable(w) for w in select(all_workloads(), args.only)]
    if any(w.notes for w in plan):
        info["c_missing"] = native.why_missing()
    progress = Progress(plan, rounds, args.quick, progress_to)
    if progress_to and native.compiler():
        progress.note("building the C references (cached after the first run)")
    runs = measure(plan, rounds, args.quick, progress)
    g9 = {}
    if not args.only:
        progress.note("G9: counting system calls with strace")
        g9 = {kind: syscalls.per_recv(kind) for kind in ("fastsock", "stdlib")}
    progress.done()
    result = report.build(info, plan, runs, rounds, args.quick, g9)
    report.show(result, sys.stdout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        report.plot(result, args.plot)
    return 0
