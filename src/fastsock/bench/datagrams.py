"""W5: 64-byte UDP datagrams on loopback, a sender process blasting at a
receiver process: the stdlib at its best (connected ``send``,
``recv_into``), fastsock (``send_batch``/``recv_batch`` of 64) and the
plain C reference (``sendmmsg``/``recvmmsg`` of 64, c/udp_mmsg.c), which
all speak one small protocol (see c/udp_mmsg.c).  The rate is datagrams
received per second, timed by the receiver from its first datagram to the
sender's end marker.

Workers run as ``python -m fastsock.bench.datagrams recv|send IMPL ARGS``.
"""
import os
import select
import socket
import subprocess
import sys
import time

import fastsock
from fastsock.bench import native

SIZE = 64
PER_CALL = 64
RCVBUF = 4 << 20
# ---- workers (each runs in its own process) ------------------------------

def stdlib_recv(count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    buf = bytearray(2048)
    recv_into = sock.recv_into
    recv_into(buf)
    start = time.perf_counter_ns()
    got = 1
    while got < count:
        if not recv_into(buf):
            break
        got += 1
    return got, time.perf_counter_ns() - start


def fastsock_recv(count):
    sock = fastsock.udp(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    print(sock.getsockname()[1], flush=True)
    batch = fastsock.DatagramBatch(PER_CALL, 2048)
    recv_batch = sock.recv_batch
    got = recv_batch(batch)
    start = time.perf_counter_ns()
    while got < count:
        n = recv_batch(batch)
        if not len(batch[n - 1]):
            # The end marker (only ever followed by more markers).
            got += sum(1 for view, _ in batch if len(view))
            break
        got += n
    return got, time.perf_counter_ns() - start


def stdlib_send(port, count, size):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    payload = bytes(size)
    start = time.perf_counter_ns()
    for _ in range(count):
        send(payload)
    return sock, count, time.perf_counter_ns() - start


def fastsock_send(port, count, size):
    sock = fastsock.udp(connect=("127.0.0.1", port))
    batch = [bytes(size)] * PER_CALL
    send_batch = sock.send_batch
    sent = 0
    start = time.perf_counter_ns()
    while sent < count - PER_CALL:
        sent += send_batch(batch)
    sent += send_batch(batch[:count - sent])
    return sock, sent, time.perf_counter_ns() - start


def worker(role, impl, args):
    """`recv COUNT` or `send PORT COUNT SIZE`, printing what the C program
    prints (see c/udp_mmsg.c)."""
    if role == "recv":
        got, ns = globals()[impl + "_recv"](int(args[0]))
        print(got, ns, flush=True)
        return
    sock, sent, ns = globals()[impl + "_send"](*map(int, args))
    print(sent, ns, flush=True)
    # End markers until the parent has the receiver's figures (one marker
    # could be dropped like any datagram) or the receiver is gone.
    try:
        while not select.select([sys.stdin], [], [], 0.001)[0]:
            sock.send(b"")
    except ConnectionRefusedError:
        pass
    sock.close()


# ---- the driver ------------------------------------------------------------

def start(impl, role, args, exe, env, cpu, **popen):
    """Starts one end: IMPL[-VARIANT] (see IMPLS) as `role` on `cpu`."""
    base, _, variant = impl.partition("-")
    args = [str(a) for a in args]
    if base == "c":
        gso = variant == "gso" and role == "send"
        cmd = [exe, role, *args, *(["gso"] if gso else [])]
    else:
        cmd = [sys.executable, "-m", "fastsock.bench.datagrams", role, base, *args]
    if variant == "mmsg":
        env = dict(env, FASTSOCK_DISABLE_GSO="1")
    return subprocess.Popen(cmd, text=True, env=env, preexec_fn=pinned(cpu),
                            stdout=subprocess.PIPE, **popen)


def pinned(cpu):
    """A preexec_fn that puts the child on one CPU, where there are two."""
    def pin():
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    return pin


def worker_env():
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastsock.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def exchange(impl, count, exe, env):
    """One run: (received, receiver's seconds, sent, sender's seconds).
    `impl` names both ends, or "sender>receiver"; `exe` is the C
    reference's path."""
    send_impl, _, recv_impl = impl.partition(">")
    recv_impl = recv_impl or send_impl
    rx = start(recv_impl, "recv", [count], exe, env, 0)
    tx = None
    try:
        port = int(rx.stdout.readline())
        tx = start(send_impl, "send", [port, count, SIZE], exe, env, 1,
                   stdin=subprocess.PIPE)
        sent, send_ns = map(int, tx.stdout.readline().split())
        got, recv_ns = map(int, rx.stdout.readline().split())
    finally:
        for proc in (tx, rx):
            if proc is None:
                continue
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return got, recv_ns / 1e9, sent, send_ns / 1e9


def run_pair(impl, count, exe, env):
    """One run: (received per second, sent per second, datagrams lost)."""
    got, recv_s, sent, send_s = exchange(impl, count, exe, env)
    return got / recv_s, sent / send_s, count - got


def run_datagrams(impl, n):
    """W5 for the CLI: (datagrams received, the receiver's seconds)."""
    exe = native.build("udp_mmsg") if impl.startswith("c") else None
    got, seconds, _, _ = exchange(impl, n, exe, worker_env())
    return got, seconds


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3:])
