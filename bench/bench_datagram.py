"""W5/G6: 64-byte UDP datagrams on loopback.

Throughput (G6): a sender process (on CPU 1) blasts COUNT datagrams at a
receiver process (on CPU 0), several ways in the same run, interleaved
A B C A B C: the stdlib at its best (connected ``send``, ``recv_into``),
fastsock (``send_batch``/``recv_batch`` of 64) and a C program
(``sendmmsg``/``recvmmsg`` of 64, src/fastsock/bench/c/udp_mmsg.c, built with the
system compiler), plus fastsock without segmentation offload and the C
program with it (see IMPLS), to show what the offload brings.  The rate is
datagrams received per second, timed by the receiver from its first
datagram to the sender's end marker; what the receive queue dropped is
reported as loss.

Receive cost: ns per datagram to take 64 queued datagrams, fastsock
``recv_batch`` (with and without reading every view and address) against
the stdlib's ``recvfrom_into`` and ``recv_into`` loops.

    python -m pytest bench/bench_datagram.py -s      # both, with pytest-benchmark
    python bench/bench_datagram.py --rounds 5 --count 100000   # G6 only
"""
import argparse
import os
import socket
import statistics

import pytest

import fastsock
from fastsock.bench import native
from fastsock.bench.datagrams import PER_CALL, RCVBUF, SIZE, run_pair, worker_env

# stdlib: connected send / recv_into; fastsock: send_batch / recv_batch of
# 64, segmentation offload on; fastsock-mmsg: the same with
# FASTSOCK_DISABLE_GSO=1 (sendmmsg only); c: sendmmsg / recvmmsg of 64;
# c-gso: the C sender with UDP_SEGMENT, as send_batch does it.
IMPLS = ("stdlib", "fastsock", "c", "fastsock-mmsg", "c-gso")
# G6 is the first two; the others say how much of it is the offload.
RATIOS = (("fastsock", "stdlib"), ("fastsock", "c"),
          ("fastsock-mmsg", "stdlib"), ("fastsock-mmsg", "c"),
          ("fastsock", "c-gso"))


def uses_c(impl):
    return any(end.partition("-")[0] == "c" for end in impl.split(">"))


def compare(rounds=5, count=100_000, impls=IMPLS, out=print):
    exe = native.build("udp_mmsg") if any(map(uses_c, impls)) else None
    if exe is None and any(map(uses_c, impls)):
        out("no C compiler: the C reference is left out")
        impls = tuple(i for i in impls if not uses_c(i))
    env = worker_env()
    runs = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl in impls:          # interleaved, so drift hits all alike
            runs[impl].append(run_pair(impl, count, exe, env))
    out(f"G6: {count} datagrams of {SIZE} B per run, {rounds} runs each, "
        f"receiver on CPU 0, sender on CPU 1")
    out(f"{'':14} {'received/s median':>18} {'(min-max)':>20} "
        f"{'sent/s median':>14} {'lost median (max)':>18}")
    result = {}
    for impl, rows in runs.items():
        rates = [r[0] for r in rows]
        result[impl] = statistics.median(rates)
        out(f"{impl:14} {result[impl]:18,.0f} "
            f"{min(rates):>9,.0f}-{max(rates):<10,.0f} "
            f"{statistics.median(r[1] for r in rows):14,.0f} "
            f"{statistics.median(r[2] for r in rows):>11,.0f} "
            f"({max(r[2] for r in rows)})")
    ratios = {}
    for num, den in RATIOS:
        if num in result and den in result:
            ratios[f"{num}/{den}"] = result[num] / result[den]
            out(f"{num} / {den}: {ratios[f'{num}/{den}']:.2f}")
    return result, ratios, runs


# ---- pytest-benchmark ------------------------------------------------------

def test_g6_throughput(benchmark):
    """The interleaved comparison above; its table is the result (the time
    pytest-benchmark shows is that of the whole comparison)."""
    lines = []
    result, ratios, runs = benchmark.pedantic(
        compare, kwargs={"out": lines.append}, rounds=1, iterations=1)
    print("\n" + "\n".join(lines))
    benchmark.extra_info.update(
        {f"{k} received/s": v for k, v in result.items()})
    benchmark.extra_info.update(ratios)
    benchmark.extra_info["lost"] = {k: [r[2] for r in v]
                                    for k, v in runs.items()}
    assert set(result) >= {"stdlib", "fastsock"}


@pytest.fixture
def queued():
    """A receiver and a way to queue PER_CALL datagrams on it."""
    rx = fastsock.udp(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    tx = fastsock.udp(connect=rx.getsockname())
    batch = [bytes(SIZE)] * PER_CALL
    stdlib_rx = socket.socket(fileno=os.dup(rx.fileno()))

    def fill():
        tx.send_batch(batch)
        return (), {}

    yield rx, stdlib_rx, fill
    stdlib_rx.close()
    tx.close()
    rx.close()


def receive_cost(benchmark, fill, receive):
    benchmark.group = f"receive {PER_CALL} queued datagrams of {SIZE} B"
    benchmark.pedantic(receive, setup=fill, rounds=300, warmup_rounds=20)
    benchmark.extra_info["ns per datagram"] = (
        benchmark.stats.stats.median * 1e9 / PER_CALL)


def test_recv_cost_fastsock_recv_batch(benchmark, queued):
    rx, _, fill = queued
    batch = fastsock.DatagramBatch(PER_CALL, 2048)
    receive_cost(benchmark, fill, lambda: rx.recv_batch(batch))


def test_recv_cost_fastsock_recv_batch_views_addresses(benchmark, queued):
    rx, _, fill = queued
    batch = fastsock.DatagramBatch(PER_CALL, 2048)

    def receive():
        rx.recv_batch(batch)
        for view, address in batch:
            pass

    receive_cost(benchmark, fill, receive)


@pytest.mark.parametrize("method", ["recvfrom_into", "recv_into"])
def test_recv_cost_stdlib(benchmark, queued, method):
    _, rx, fill = queued
    buf = bytearray(2048)
    call = getattr(rx, method)

    def receive():
        for _ in range(PER_CALL):
            call(buf)

    receive_cost(benchmark, fill, receive)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="comma-separated; SENDER>RECEIVER mixes two")
    args = parser.parse_args()
    compare(args.rounds, args.count, tuple(args.impls.split(",")))


if __name__ == "__main__":
    main()
