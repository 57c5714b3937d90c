"""What the benchmark runs: the workloads of WORKLOADS.md, each with the
stdlib's fastest idiomatic code (the first side, the baseline), fastsock
and the plain C reference, and the goals G1-G9 as ratios between sides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import fastsock
from fastsock.bench import datagrams, servers, streams

# (operations, seconds), or with a dict of other figures of the run
Run = Union[Tuple[float, float], Tuple[float, float, Dict[str, float]]]


@dataclass
class Side:
    key: str                        # "stdlib", "fastsock", "c", ...
    label: str                      # the code it runs, in a few words
    run: Callable[[int], Run]       # one run of n operations
    needs: Sequence[str] = ()       # C programs (c/<name>.c) it cannot run without
    versus: str = "stdlib"          # the side its ratio in the table is to


@dataclass
class Workload:
    id: str
    title: str
    unit: str
    n: float                        # operations per run (W6: seconds of load)
    quick_n: float
    sides: List[Side]
    seconds: float                  # a guess at one full run, for the time-left estimate
    notes: List[str] = field(default_factory=list)


def _side(key: str, label: str, fn: Callable[[str, int], Run], impl: Optional[str] = None,
          needs: Sequence[str] = ()) -> Side:
    return Side(key, label, lambda n: fn(impl or key, n), needs)


def all_workloads() -> List[Workload]:
    c_stream = ("stream",)
    has_event = hasattr(fastsock, "EventServer")
    try:
        import uvloop  # noqa: F401
        has_uvloop = True
    except ImportError:
        has_uvloop = False

    def server(key: str, label: str, kind: str, depth: int = 1) -> Side:
        needs = ("loadgen", "echo_server") if kind.startswith("c-") else ("loadgen",)
        return Side(key, label, lambda n: servers.run_server(kind, n, depth), needs)

    w6 = [server("stdlib", "socketserver.ThreadingTCPServer", "threading"),
          server("fastsock", "fastsock.Server, read1() + write()", "fastsock")]
    w6p = [server("stdlib", "ThreadingTCPServer, rfile.read frames", "threading-frame", 16)]
    notes6: List[str] = []
    if has_event:
        w6.append(server("event", "fastsock.EventServer, framing 'raw'", "event-raw"))
        w6p.append(server("event", "fastsock.EventServer, framing 'frame'", "event-frame", 16))
    else:
        notes6.append("fastsock.EventServer is not in this version: G7 not measured")
    if has_uvloop:
        w6.append(server("uvloop", "uvloop Protocol, echo", "uvloop-raw"))
        w6p.append(server("uvloop", "uvloop Protocol, frames split in Python", "uvloop-frame",
                          16))
    else:
        notes6.append("uvloop is not installed (pip install uvloop): left out")
    w6.append(server("c", "C epoll loop, recv + send", "c-epoll"))
    w6p.append(server("c", "C epoll loop, recv + send", "c-epoll", 16))
    return [
        Workload("W1", "bulk TCP, 1 MiB writes, receiver's rate", "MB/s", 256, 64, [
            _side("stdlib", "sendall / recv_into(1 MiB)", streams.run_bulk),
            _side("stdlib-64k", "sendall / recv_into(64 KiB)", streams.run_bulk),
            _side("fastsock", "Stream.write / Stream.readinto(1 MiB)", streams.run_bulk),
            _side("c", "send / recv(1 MiB)", streams.run_bulk, needs=c_stream),
        ], seconds=0.3),
        Workload("W2", "ping-pong 64 B, both ends on one CPU, one echo peer for all",
                 "round trips/s", 20_000, 5_000, [
            _side("stdlib", "sendall + recv_into", streams.run_ping_pong),
            _side("fastsock", "Stream.write + readexactly(64)", streams.run_ping_pong),
            _side("c", "send + recv", streams.run_ping_pong, needs=c_stream),
            _side("stdlib-timeout", "the same, settimeout(5)", streams.run_ping_pong),
            Side("fastsock-timeout", "settimeout(5); ratio to stdlib-timeout",
                 lambda n: streams.run_ping_pong("fastsock-timeout", n), versus="stdlib-timeout"),
        ], seconds=0.6),
        Workload("W3", "frames (4-byte length + 100 B), batched sender", "msg/s",
                 2_000_000, 400_000, [
            _side("stdlib", "recv_into + unpack_from", streams.run_frames),
            _side("fastsock", "for msg in stream.frames()", streams.run_frames),
            _side("c", "recv + parse in place", streams.run_frames, needs=c_stream),
        ], seconds=0.3),
        Workload("W3n", "frames, one send per frame (sender's rate)", "msg/s",
                 300_000, 60_000, [
            _side("stdlib", "sendall(pack(n) + payload)", streams.run_send_frames),
            _side("fastsock", "send_frame() each, one flush()", streams.run_send_frames),
            _side("c", "send per frame", streams.run_send_frames, needs=c_stream),
        ], seconds=1.0),
        Workload("W4", "80-byte lines", "lines/s", 2_000_000, 400_000, [
            _side("stdlib", "for line in sock.makefile('rb')", streams.run_lines),
            _side("fastsock", "for line in stream", streams.run_lines),
            _side("c", "recv + memchr", streams.run_lines, needs=c_stream),
        ], seconds=0.3),
        Workload("W5", "UDP 64 B datagrams, receiver's rate", "pkt/s", 200_000, 50_000, [
            _side("stdlib", "connected send / recv_into", datagrams.run_datagrams),
            _side("fastsock", "send_batch / recv_batch of 64", datagrams.run_datagrams),
            _side("c", "sendmmsg / recvmmsg of 64", datagrams.run_datagrams,
                  needs=("udp_mmsg",)),
        ], seconds=1.2),
        Workload("W6", "64 clients x 64 B frames, one in flight, server's rate", "req/s",
                 2, 1, w6, seconds=2.6, notes=notes6),
        Workload("W6p", "the same, 16 frames in flight per client", "req/s", 2, 1, w6p,
                 seconds=2.6, notes=list(notes6)),
        Workload("W7", "connect + 16 B exchange + close, client's rate", "conn/s", 2_000, 500, [
            _side("stdlib", "socket() + connect(), accept()", streams.connections),
            _side("stdlib-create", "create_connection(), accept()", streams.connections,
                  "create_connection"),
            _side("fastsock", "fastsock.connect, Listener.accept", streams.connections),
            Side("c", "socket + connect, accept", streams.c_connections, ("connect",)),
        ], seconds=0.5),
    ]


# ---- goals ---------------------------------------------------------------------------

@dataclass
class Check:
    workload: str
    side: str
    against: Tuple[str, ...]        # the best of these in the same round
    goal: float                     # the ratio must be at least this
    # "rate": side's rate / theirs; "p99_us": their p99 latency / side's
    # (at least 1: no worse than theirs).
    metric: str = "rate"


@dataclass
class Goal:
    id: str
    text: str
    checks: List[Check]


GOALS = [
    Goal("G1", "W1 Stream.readinto >= 1.0 x the best stdlib receiver",
         [Check("W1", "fastsock", ("stdlib", "stdlib-64k"), 1.0)]),
    Goal("G2", "W2 Stream.write + readexactly >= 0.97 x C and >= 1.05 x stdlib; "
               ">= 1.10 x stdlib with a timeout on both",
         [Check("W2", "fastsock", ("c",), 0.97), Check("W2", "fastsock", ("stdlib",), 1.05),
          Check("W2", "fastsock-timeout", ("stdlib-timeout",), 1.10)]),
    Goal("G3", "W3 stream.frames() >= 4 x stdlib and >= 0.4 x C",
         [Check("W3", "fastsock", ("stdlib",), 4.0), Check("W3", "fastsock", ("c",), 0.4)]),
    Goal("G4", "W3 send_frame per message >= 8 x stdlib",
         [Check("W3n", "fastsock", ("stdlib",), 8.0)]),
    Goal("G5", "W4 for line in stream >= 3 x stdlib and >= 0.5 x C",
         [Check("W4", "fastsock", ("stdlib",), 3.0), Check("W4", "fastsock", ("c",), 0.5)]),
    Goal("G6", "W5 send_batch/recv_batch >= 1.4 x stdlib and >= 0.9 x C sendmmsg",
         [Check("W5", "fastsock", ("stdlib",), 1.4), Check("W5", "fastsock", ("c",), 0.9)]),
    Goal("G7", "W6 EventServer >= 1.3 x ThreadingTCPServer, >= 1.1 x uvloop, >= 0.9 x C "
               "epoll; p99 latency no worse than uvloop's",
         [Check("W6", "event", ("stdlib",), 1.3), Check("W6", "event", ("uvloop",), 1.1),
          Check("W6", "event", ("c",), 0.9),
          Check("W6", "event", ("uvloop",), 1.0, metric="p99_us")]),
    Goal("G7p", "W6p EventServer(framing='frame') >= 10 x ThreadingTCPServer, >= 3 x uvloop "
                "with framing in Python",
         [Check("W6p", "event", ("stdlib",), 10.0), Check("W6p", "event", ("uvloop",), 3.0)]),
    Goal("G8", "W7 fastsock.connect >= 0.9 x C and >= 1.2 x stdlib socket() + connect()",
         [Check("W7", "fastsock", ("c",), 0.9), Check("W7", "fastsock", ("stdlib",), 1.2)]),
    Goal("G9", "a recv with a timeout set on a ready socket: exactly one system call", []),
]
