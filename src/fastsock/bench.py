"""The headline benchmark: fastsock against the stdlib, side by side.

Run ``python -m fastsock.bench`` (``--quick`` for a short run). Each workload
runs the stdlib's fastest idiomatic code and fastsock's in turn (A B A B, so
drift on a shared machine hits both), the peer in a forked process, and
prints the median rate of each and the median of the per-pair ratios.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import fastsock

FRAME_PAYLOAD = 100
LINE = b"x" * 79 + b"\n"
PING = b"p" * 64


def _pin(cpu: int) -> None:
    # Pin each side to its own CPU where there are two, as WORKLOADS.md says.
    cpus = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cpus > 1:
        os.sched_setaffinity(0, {cpu % cpus})


def _fork(child: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _pin(1)
            child()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def _reap(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"benchmark peer failed (status {status})")


def _pair() -> Tuple[socket.socket, socket.socket]:
    # Loopback TCP, the path the goals are set on.
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


# ---- workloads: each returns operations per second -----------------------

def percall_recv_into(impl: str, n: int, timeout: Optional[float]) -> float:
    """recv_into on a socket with data queued (G9 with a timeout set)."""
    a, stdlib_b = socket.socketpair()
    b: Any = fastsock.Socket.from_socket(stdlib_b) if impl == "fastsock" else stdlib_b
    b.settimeout(timeout)
    buf = bytearray(64)
    chunk = b"x" * 64 * 256
    done = 0
    elapsed = 0.0
    while done < n:
        a.sendall(chunk)
        recv_into = b.recv_into
        t0 = time.perf_counter()
        for _ in range(256):
            recv_into(buf)
        elapsed += time.perf_counter() - t0
        done += 256
    a.close()
    b.close()
    return done / elapsed


def _timed_receive(batch: bytes, n: int, receive: Callable[[socket.socket], int]) -> float:
    """Messages per second that `receive` counts while a forked peer sends
    `batch` (1000 messages) n // 1000 times and closes."""
    a, b = _pair()

    def send() -> None:
        for _ in range(n // 1000):
            a.sendall(batch)
        a.close()

    pid = _fork(send)
    a.close()
    t0 = time.perf_counter()
    count = receive(b)
    elapsed = time.perf_counter() - t0
    b.close()
    _reap(pid)
    assert count == n // 1000 * 1000, count
    return count / elapsed


def count_frames_stdlib(b: socket.socket) -> int:
    """The best stdlib frame receiver (recv_into a big buffer, unpack_from):
    counts frames until EOF.  bench/ uses it too, so both measure one
    baseline."""
    unpack_from = struct.Struct("!I").unpack_from
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    recv_into = b.recv_into
    have = pos = count = 0
    while True:
        if pos:
            buf[:have - pos] = view[pos:have]
            have -= pos
            pos = 0
        got = recv_into(view[have:])
        if not got:
            return count
        have += got
        while have - pos >= 4:
            (size,) = unpack_from(buf, pos)
            end = pos + 4 + size
            if end > have:
                break
            msg = buf[pos + 4:end]
            pos = end
            count += 1


def count_frames_stream(stream: fastsock.Stream) -> int:
    """fastsock's frame receiver: counts ``stream.frames()`` until EOF."""
    count = 0
    for _frame in stream.frames():
        count += 1
    return count


def count_lines_stream(stream: fastsock.Stream) -> int:
    """fastsock's line receiver: counts ``for line in stream`` until EOF."""
    count = 0
    for _line in stream:
        count += 1
    return count


def count_lines_stdlib(b: socket.socket) -> int:
    """The stdlib's line receiver: ``for line in sock.makefile("rb")``."""
    count = 0
    with b.makefile("rb") as f:
        for _line in f:
            count += 1
    return count


def _on_stream(count: Callable[[fastsock.Stream], int]) -> Callable[[socket.socket], int]:
    def receive(b: socket.socket) -> int:
        with fastsock.Stream(b) as stream:
            return count(stream)
    return receive


def frames(impl: str, n: int) -> float:
    """W3/G3: 100-byte frames behind a 4-byte length, batched sender."""
    one = struct.pack("!I", FRAME_PAYLOAD) + b"f" * FRAME_PAYLOAD
    return _timed_receive(one * 1000, n, count_frames_stdlib if impl == "stdlib"
                          else _on_stream(count_frames_stream))


def lines(impl: str, n: int) -> float:
    """W4/G5: 80-byte lines."""
    return _timed_receive(LINE * 1000, n, count_lines_stdlib if impl == "stdlib"
                          else _on_stream(count_lines_stream))


def naive_frames(impl: str, n: int) -> float:
    """W3 naive/G4: one send per frame; the rate is the sender's."""
    a, b = _pair()

    def drain() -> None:
        a.close()
        buf = bytearray(1 << 20)
        while b.recv_into(buf):
            pass

    pid = _fork(drain)
    b.close()
    payload = b"f" * FRAME_PAYLOAD
    t0 = time.perf_counter()
    if impl == "stdlib":
        pack = struct.pack
        sendall = a.sendall
        for _ in range(n):
            sendall(pack("!I", FRAME_PAYLOAD) + payload)
        a.close()
    else:
        stream = fastsock.Stream(a)
        send_frame = stream.send_frame
        for _ in range(n):
            send_frame(payload)
        stream.close()
    elapsed = time.perf_counter() - t0
    _reap(pid)
    return n / elapsed


def ping_pong(impl: str, n: int) -> float:
    """W2/G2: 64-byte request/response, both ends on one CPU."""
    a, b = _pair()

    def echo() -> None:
        _pin(0)
        a.close()
        buf = bytearray(64)
        view = memoryview(buf)
        while True:
            got = 0
            while got < 64:
                r = b.recv_into(view[got:])
                if not r:
                    return
                got += r
            b.sendall(buf)

    pid = _fork(echo)
    b.close()
    _pin(0)
    t0 = time.perf_counter()
    if impl == "stdlib":
        buf = bytearray(64)
        view = memoryview(buf)
        for _ in range(n):
            a.sendall(PING)
            got = 0
            while got < 64:
                got += a.recv_into(view[got:])
        a.close()
    else:
        stream = fastsock.Stream(a)
        for _ in range(n):
            stream.write(PING)
            stream.readexactly(64)
        stream.close()
    elapsed = time.perf_counter() - t0
    _reap(pid)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    return n / elapsed


def datagrams(impl: str, n: int) -> float:
    """W5/G6: 64-byte datagrams, connected sockets, the receiver's rate."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    rx.connect(tx.getsockname())
    rx.settimeout(0.5)
    payload = b"d" * 64

    def send() -> None:
        rx.close()
        if impl == "stdlib":
            send_ = tx.send
            for _ in range(n):
                try:
                    send_(payload)
                except OSError:
                    pass
        else:
            ftx = fastsock.Socket.from_socket(tx)
            batch = [payload] * 64
            for _ in range(n // 64):
                try:
                    ftx.send_batch(batch)
                except OSError:
                    pass

    pid = _fork(send)
    tx.close()
    count = 0
    t0 = t_last = time.perf_counter()
    try:
        if impl == "stdlib":
            buf = bytearray(2048)
            recv_into = rx.recv_into
            while True:
                recv_into(buf)
                count += 1
                t_last = time.perf_counter() if count % 1024 == 0 else t_last
        else:
            frx = fastsock.Socket.from_socket(rx)
            rx.close()                  # detached: closing it is a no-op
            batch = fastsock.DatagramBatch(64, 2048)
            while True:
                count += frx.recv_batch(batch)
                t_last = time.perf_counter()
    except TimeoutError:
        pass
    if impl == "fastsock":
        frx.close()
    rx.close()
    _reap(pid)
    elapsed = max(t_last - t0, 1e-9)
    return count / elapsed


# ---- W7: connection set-up (G8) --------------------------------------------

REQUEST = b"0123456789abcdef"
#: Where a source checkout keeps the plain C references (absent from a wheel).
C_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                     os.pardir, "bench", "c")


def build_c(name: str) -> Optional[str]:
    """Compiles C_DIR/<name>.c with -O2 once per source version and returns
    the program's path; None without the source or a C compiler."""
    import hashlib
    import shutil
    import subprocess
    import tempfile

    source = os.path.join(C_DIR, name + ".c")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or not os.path.exists(source):
        return None
    with open(source, "rb") as f:
        tag = hashlib.sha1(f.read()).hexdigest()[:12]
    exe = os.path.join(tempfile.gettempdir(), f"fastsock-{name}-{tag}")
    if not os.path.exists(exe):
        subprocess.run([cc, "-O2", "-o", exe + ".tmp", source], check=True)
        os.replace(exe + ".tmp", exe)
    return exe


def _read16(conn: socket.socket, view: memoryview) -> None:
    got = 0
    while got < 16:
        r = conn.recv_into(view[got:])
        if not r:
            raise EOFError("the peer closed early")
        got += r


def serve_connections(impl: str, listener: Any, n: int) -> None:
    """W7 server: accepts n connections one at a time, answers each 16-byte
    request with itself and closes.  `listener`: a fastsock.Listener for
    "fastsock", else a listening stdlib socket."""
    accept = listener.accept
    if impl == "fastsock":
        for _ in range(n):
            stream, _addr = accept()
            stream.write(stream.readexactly(16))
            stream.close()
        return
    buf = bytearray(16)
    view = memoryview(buf)
    for _ in range(n):
        conn, _addr = accept()
        _read16(conn, view)
        conn.sendall(buf)
        conn.close()


def make_connections(impl: str, address: Tuple[str, int], n: int) -> None:
    """W7 client: n connections one after another, each sends 16 bytes,
    reads the 16-byte reply and closes.  impl: "fastsock"
    (fastsock.connect), "stdlib" (socket() + connect()) or
    "create_connection" (socket.create_connection)."""
    if impl == "fastsock":
        connect = fastsock.connect
        for _ in range(n):
            stream = connect(address)
            stream.write(REQUEST)
            stream.readexactly(16)
            stream.close()
        return
    view = memoryview(bytearray(16))
    create_connection = socket.create_connection
    new_socket = socket.socket
    for _ in range(n):
        if impl == "stdlib":
            conn = new_socket()
            conn.connect(address)
        else:
            conn = create_connection(address)
        conn.sendall(REQUEST)
        _read16(conn, view)
        conn.close()


def connections(impl: str, n: int) -> float:
    """W7/G8: connections per second, the client timed on CPU 0, the server
    of the same kind forked onto CPU 1 ("create_connection" is served by
    the stdlib server)."""
    if impl == "fastsock":
        listener: Any = fastsock.listen(("127.0.0.1", 0))
        address = listener.address
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        address = listener.getsockname()
    pid = _fork(lambda: serve_connections(impl, listener, n))
    # Only the child listens: if it fails, connecting fails rather than
    # hangs.  (Listener.close() would shut the shared socket down.)
    os.close(listener.socket.detach() if impl == "fastsock" else listener.detach())
    _pin(0)
    try:
        t0 = time.perf_counter()
        make_connections(impl, address, n)
        elapsed = time.perf_counter() - t0
    finally:
        _reap(pid)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
    return n / elapsed


def c_connections(exe: str, n: int) -> float:
    """W7 with the plain C client and server of bench/c/connect.c (`exe`,
    from build_c("connect")), pinned as connections() pins its sides."""
    import subprocess

    cpus = os.cpu_count() or 1
    server_cpu, client_cpu = ([str(1 % cpus)], ["0"]) if cpus > 1 else ([], [])
    server = subprocess.Popen([exe, "server", str(n)] + server_cpu,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        out = subprocess.run([exe, "client", port, str(n)] + client_cpu,
                             stdout=subprocess.PIPE, text=True, check=True,
                             timeout=120)
    finally:
        server.stdout.close()
        if server.wait(timeout=120) != 0:
            raise RuntimeError("the C server failed")
    return n / (int(out.stdout) / 1e9)


# ---- driver ---------------------------------------------------------------

WORKLOADS: Dict[str, Tuple[Callable[[str, int], float], int, str]] = {
    "recv_into, data ready": (lambda i, n: percall_recv_into(i, n, None), 200_000, "calls/s"),
    "recv_into, timeout set (G9)": (lambda i, n: percall_recv_into(i, n, 5.0), 200_000, "calls/s"),
    "frames, batched sender (G3)": (frames, 1_000_000, "msg/s"),
    "lines of 80 bytes (G5)": (lines, 1_000_000, "lines/s"),
    "send_frame per message (G4)": (naive_frames, 300_000, "msg/s"),
    "ping-pong 64 B, one CPU (G2)": (ping_pong, 20_000, "round trips/s"),
    "UDP 64 B datagrams (G6)": (datagrams, 200_000, "pkt/s"),
    "connect + 16 B + close (G8)": (connections, 5_000, "conn/s"),
}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastsock.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: 3 pairs, a tenth of the work")
    parser.add_argument("--runs", type=int, default=None, help="pairs of runs per workload (default 5)")
    parser.add_argument("-k", default="", help="only workloads whose name contains this")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 5)
    scale = 10 if args.quick else 1
    print(f"fastsock {fastsock.__version__} against the stdlib, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback; "
          f"median of {runs} interleaved pairs")
    print(f"{'workload':32} {'stdlib':>14} {'fastsock':>14} {'ratio':>7}  (min-max)")
    for name, (fn, n, unit) in WORKLOADS.items():
        if args.k and args.k not in name:
            continue
        count = max(n // scale, 1000)
        rates: Dict[str, List[float]] = {"stdlib": [], "fastsock": []}
        for _ in range(runs):
            for impl in ("stdlib", "fastsock"):
                rates[impl].append(fn(impl, count))
        ratios = [f / s for f, s in zip(rates["fastsock"], rates["stdlib"])]
        print(f"{name:32} {statistics.median(rates['stdlib']):>14,.0f} "
              f"{statistics.median(rates['fastsock']):>14,.0f} "
              f"{statistics.median(ratios):>6.2f}x  ({min(ratios):.2f}-{max(ratios):.2f})  {unit}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
