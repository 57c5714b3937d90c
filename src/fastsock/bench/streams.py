"""The TCP stream workloads W1-W4 and W7 of WORKLOADS.md: each side is the
stdlib's fastest idiomatic code, fastsock's, or the plain C reference
(c/stream.c, c/connect.c), on loopback.

Every ``run_*`` function makes one run of `n` operations and returns
``(operations, seconds)``.  The measured end runs on MEASURED_CPU and its
peer on PEER_CPU where there are two CPUs (both on PEER_CPU for W2, as
WORKLOADS.md measures ping-pong); the peer is a forked process or a C
program given the socket's descriptor.
"""
from __future__ import annotations

import _socket
import os
import socket
import struct
import subprocess
import time
from typing import Any, Callable, List, Optional, Tuple

import fastsock
from fastsock.bench import native

Run = Tuple[float, float]
FRAME_PAYLOAD = 100
FRAME = struct.pack("!I", FRAME_PAYLOAD) + b"f" * FRAME_PAYLOAD
LINE = b"x" * 79 + b"\n"
PING = b"p" * 64
REQUEST = b"0123456789abcdef"
MIB = 1 << 20
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
PEER_CPU: Optional[int] = _CPUS[0] if len(_CPUS) > 1 else None
MEASURED_CPU: Optional[int] = _CPUS[1] if len(_CPUS) > 1 else None


def pin(cpu: Optional[int]) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def unpin() -> None:
    if _CPUS:
        os.sched_setaffinity(0, _CPUS)


def c_program(name: str) -> str:
    """The path of C reference `name`; the workloads that need one are left
    out beforehand where there is no compiler."""
    path = native.build(name)
    if path is None:
        raise RuntimeError(f"C reference {name} unavailable: {native.why_missing()}")
    return path


def fork(child: Callable[[], Any], cpu: Optional[int] = PEER_CPU) -> int:
    """Runs child() in a forked process on `cpu`; returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            pin(cpu)
            child()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"benchmark peer failed (status {status})")


def tcp_pair() -> Tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair, Nagle off on both ends."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def start_c(args: List[str], cpu: Optional[int], fds: Tuple[int, ...] = (),
            **popen: Any) -> subprocess.Popen:
    """Starts a C reference program on `cpu`, handing it descriptors `fds`."""
    return subprocess.Popen(args, pass_fds=fds, stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: pin(cpu)) if cpu is not None else None,
                            **popen)


def c_figures(proc: subprocess.Popen) -> Run:
    """The "<count> <ns>" line a C reference prints, once it has ended."""
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"C reference {proc.args!r} failed ({proc.returncode})")
    count, ns = out.split()
    return float(count), int(ns) / 1e9


def _measured(receive: Callable[[], float]) -> Run:
    """Times receive() on MEASURED_CPU; it returns its operation count."""
    pin(MEASURED_CPU)
    try:
        t0 = time.perf_counter()
        count = receive()
        return count, time.perf_counter() - t0
    finally:
        unpin()


# ---- W1: bulk transfer ------------------------------------------------------

def _send_bulk(sock: socket.socket, total: int, use_fastsock: bool) -> None:
    chunk = bytes(MIB)
    if use_fastsock:
        with fastsock.Stream(sock) as stream:
            for _ in range(total // MIB):
                stream.write(chunk)
    else:
        for _ in range(total // MIB):
            sock.sendall(chunk)
        sock.close()


def read_all(readinto: Callable[[Any], int], buf: Any) -> int:
    """Bytes read by readinto(buf) calls until EOF."""
    got = 0
    while True:
        r = readinto(buf)
        if not r:
            return got
        got += r


def run_bulk(impl: str, n: int) -> Run:
    """W1: n MiB in 1 MiB writes; the receiver's MB/s.  impl: stdlib
    (recv_into 1 MiB), stdlib-64k (recv_into 64 KiB), fastsock
    (Stream.write / Stream.readinto 1 MiB), c."""
    a, b = tcp_pair()
    total = n * MIB
    if impl == "c":
        sender = start_c([c_program("stream"), "bulk-send", str(a.fileno()), str(total),
                          str(MIB)], PEER_CPU, (a.fileno(),))
        a.close()
        receiver = start_c([c_program("stream"), "bulk-recv", str(b.fileno()), str(MIB)],
                           MEASURED_CPU, (b.fileno(),))
        b.close()
        got, seconds = c_figures(receiver)
        sender.wait(60)
        return got / 1e6, seconds
    def send_all() -> None:
        b.close()
        _send_bulk(a, total, impl == "fastsock")

    pid = fork(send_all)
    a.close()
    buf = bytearray(MIB)

    def receive() -> float:
        if impl == "fastsock":
            with fastsock.Stream(b) as stream:
                return read_all(stream.readinto, buf)
        return read_all(b.recv_into, memoryview(buf)[:64 << 10] if impl == "stdlib-64k" else buf)

    got, seconds = _measured(receive)
    b.close()
    reap(pid)
    assert got == total, got
    return got / 1e6, seconds


# ---- W3 and W4: many small messages -----------------------------------------

def count_frames_stdlib(b: socket.socket) -> int:
    """The best stdlib frame receiver (recv_into a big buffer, unpack_from):
    counts frames until EOF.  bench/ uses it too, so both measure one
    baseline."""
    unpack_from = struct.Struct("!I").unpack_from
    buf = bytearray(MIB)
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
            msg = buf[pos + 4:end]  # noqa: F841 - a receiver hands each message on
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


def _receive_batches(message: bytes, n: int, impl: str, c_mode: str,
                     count_stdlib: Callable[[socket.socket], int],
                     count_stream: Callable[[fastsock.Stream], int]) -> Run:
    """A forked peer sends n messages in batches of 1000 (one sendall each);
    the measured side counts them until EOF."""
    a, b = tcp_pair()
    batch = message * 1000

    def send() -> None:
        b.close()
        for _ in range(n // 1000):
            a.sendall(batch)
        a.close()

    pid = fork(send)
    a.close()
    if impl == "c":
        got, seconds = c_figures(start_c([c_program("stream"), c_mode, str(b.fileno())],
                                         MEASURED_CPU, (b.fileno(),)))
    elif impl == "fastsock":
        got, seconds = _measured(lambda: count_stream(fastsock.Stream(b)))
    else:
        got, seconds = _measured(lambda: count_stdlib(b))
    b.close()
    reap(pid)
    assert got == n // 1000 * 1000, got
    return got, seconds


def run_frames(impl: str, n: int) -> Run:
    """W3: 100-byte frames behind a 4-byte length, batched sender; the
    receiver's messages/s."""
    return _receive_batches(FRAME, n, impl, "frames", count_frames_stdlib, count_frames_stream)


def run_lines(impl: str, n: int) -> Run:
    """W4: 80-byte lines; the receiver's lines/s."""
    return _receive_batches(LINE, n, impl, "lines", count_lines_stdlib, count_lines_stream)


def run_send_frames(impl: str, n: int) -> Run:
    """W3 naive: one call per 100-byte frame, then a flush; the sender's
    messages/s until the peer has them all (it closes when it has)."""
    a, b = tcp_pair()

    def drain() -> None:
        a.close()
        buf = bytearray(MIB)
        while b.recv_into(buf):
            pass
        b.close()

    pid = fork(drain)
    b.close()
    if impl == "c":
        result = c_figures(start_c([c_program("stream"), "send-frames", str(a.fileno()),
                                    str(n), str(FRAME_PAYLOAD)], MEASURED_CPU, (a.fileno(),)))
    else:
        payload = FRAME[4:]

        def send() -> float:
            if impl == "fastsock":
                stream = fastsock.Stream(a)
                send_frame = stream.send_frame
                for _ in range(n):
                    send_frame(payload)
                stream.flush()
                stream.socket.shutdown(socket.SHUT_WR)
                stream.read(1)
                stream.close()
            else:
                pack, sendall = struct.Struct("!I").pack, a.sendall
                for _ in range(n):
                    sendall(pack(FRAME_PAYLOAD) + payload)
                a.shutdown(socket.SHUT_WR)
                a.recv(1)
            return n

        result = _measured(send)
    a.close()
    reap(pid)
    return result


# ---- W2: ping-pong ---------------------------------------------------------------

def _python_echo(b: socket.socket) -> None:
    buf = bytearray(len(PING))
    view = memoryview(buf)
    while True:
        got = 0
        while got < len(buf):
            r = b.recv_into(view[got:])
            if not r:
                return
            got += r
        b.sendall(buf)


def run_ping_pong(impl: str, n: int) -> Run:
    """W2: 64-byte request and reply, both ends on one CPU; round trips/s.
    The echo peer is the C one where there is a compiler (so that the
    client's own cost shows), else Python.  impl: stdlib, fastsock, their
    "-timeout" forms (settimeout(5) on the client), c."""
    a, b = tcp_pair()
    echo = native.build("stream")
    if echo:
        peer: Any = start_c([echo, "echo", str(b.fileno()), str(len(PING))], PEER_CPU,
                            (b.fileno(),))
    else:
        def echo_peer() -> None:
            a.close()
            _python_echo(b)

        peer = fork(echo_peer)
    b.close()
    if impl == "c":
        result = c_figures(start_c([c_program("stream"), "ping", str(a.fileno()), str(n),
                                    str(len(PING))], PEER_CPU, (a.fileno(),)))
    else:
        base, _, timeout = impl.partition("-")

        def client() -> float:
            if base == "fastsock":
                stream = fastsock.Stream(a)
                stream.settimeout(5.0 if timeout else None)
                write, readexactly = stream.write, stream.readexactly
                for _ in range(n):
                    write(PING)
                    readexactly(64)
                stream.close()
            else:
                a.settimeout(5.0 if timeout else None)
                buf = bytearray(64)
                view = memoryview(buf)
                sendall, recv_into = a.sendall, a.recv_into
                for _ in range(n):
                    sendall(PING)
                    got = 0
                    while got < 64:
                        got += recv_into(view[got:])
            return n

        pin(PEER_CPU)
        try:
            t0 = time.perf_counter()
            result = (client(), time.perf_counter() - t0)
        finally:
            unpin()
    a.close()
    if echo:
        peer.wait(60)
    else:
        reap(peer)
    return result


# ---- W7: connect, exchange, close --------------------------------------------------

def _read16(conn: Any, view: memoryview) -> None:
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
    if impl == "raw":
        _serve_raw(listener, n)
        return
    buf = bytearray(16)
    view = memoryview(buf)
    for _ in range(n):
        conn, _addr = accept()
        _read16(conn, view)
        conn.sendall(buf)
        conn.close()


def _serve_raw(listener: socket.socket, n: int) -> None:
    """The "raw" W7 server: the descriptor from the C-level accept, then
    os.read, os.write and os.close on it, no socket object at all."""
    accept = listener._accept  # type: ignore[attr-defined]
    read, write, close = os.read, os.write, os.close
    for _ in range(n):
        fd, _addr = accept()
        request = read(fd, 16)
        while len(request) < 16:
            more = read(fd, 16 - len(request))
            if not more:
                raise EOFError("the peer closed early")
            request += more
        if write(fd, request) != 16:
            raise OSError("short write of 16 bytes")
        close(fd)


def make_connections(impl: str, address: Tuple[str, int], n: int) -> None:
    """W7 client: n connections one after another, each sends 16 bytes,
    reads the 16-byte reply and closes.  impl: "fastsock"
    (fastsock.connect), "stdlib" (socket() + connect()),
    "create_connection" (socket.create_connection) or "raw" (the C type
    under socket.socket, _socket.socket, without its Python wrapper)."""
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
    new_socket = _socket.socket if impl == "raw" else socket.socket
    for _ in range(n):
        if impl != "create_connection":
            conn = new_socket()
            conn.connect(address)
        else:
            conn = create_connection(address)
        conn.sendall(REQUEST)
        _read16(conn, view)
        conn.close()


def event_server(n: int) -> Tuple[Any, Callable[[], None]]:
    """The "event" W7 server: (an EventServer that answers each 16-byte
    request with itself and closes, serve) where serve() runs it until n
    connections have ended and raises if any ended with an error."""
    ended: List[Any] = []

    def on_message(conn: Any, message: bytes) -> bytes:
        if len(message) != 16:
            raise ValueError(f"a request of {len(message)} bytes, not 16")
        conn.close()
        return message

    def on_close(conn: Any, exc: Optional[BaseException]) -> None:
        ended.append(exc)
        if len(ended) == n:
            server.shutdown(0)

    server = fastsock.EventServer(("127.0.0.1", 0), on_message, framing="raw",
                                  on_close=on_close)

    def serve() -> None:
        server.serve_forever()
        failed = [exc for exc in ended if exc is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} connections failed: {failed[0]!r}")
    return server, serve


def _fork_event_server(n: int) -> Tuple[int, Tuple[str, int]]:
    """(pid, address) of an event_server(n) forked onto PEER_CPU.  The child
    makes the server (an event loop is not to be shared across a fork) and
    sends its port back through a pipe."""
    port_r, port_w = os.pipe()

    def child() -> None:
        os.close(port_r)
        server, serve = event_server(n)
        os.write(port_w, b"%d\n" % server.address[1])
        os.close(port_w)
        serve()
    pid = fork(child, PEER_CPU)
    os.close(port_w)
    with os.fdopen(port_r) as f:
        line = f.readline()
    try:
        return pid, ("127.0.0.1", int(line))
    except ValueError:
        reap(pid)                   # raises: the child failed before its port
        raise


def connections(impl: str, n: int) -> Run:
    """W7/G8: n connections; the client timed on MEASURED_CPU, the server
    of the same kind forked onto PEER_CPU ("create_connection" is served by
    the stdlib server, "raw" by _serve_raw(), "event" by event_server()
    with fastsock.connect as the client)."""
    if impl == "event":
        pid, address = _fork_event_server(n)
    else:
        if impl == "fastsock":
            listener: Any = fastsock.listen(("127.0.0.1", 0))
            address = listener.address
        else:
            listener = socket.create_server(("127.0.0.1", 0))
            address = listener.getsockname()
        pid = fork(lambda: serve_connections(impl, listener, n), PEER_CPU)
        # Only the child listens: if it fails, connecting fails rather than
        # hangs.  (Listener.close() would shut the shared socket down.)
        os.close(listener.socket.detach() if impl == "fastsock" else listener.detach())
    client_impl = "fastsock" if impl == "event" else impl

    def client() -> float:
        make_connections(client_impl, address, n)
        return n

    try:
        return _measured(client)
    finally:
        reap(pid)


def c_connections(n: int) -> Run:
    """W7 with the plain C client and server of c/connect.c, pinned as
    connections() pins its sides."""
    exe = native.build("connect")
    if exe is None:
        raise RuntimeError(native.why_missing())
    server_cpu, client_cpu = (([str(PEER_CPU)], [str(MEASURED_CPU)])
                              if PEER_CPU is not None else ([], []))
    server = subprocess.Popen([exe, "server", str(n)] + server_cpu,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        port = server.stdout.readline().strip()
        out = subprocess.run([exe, "client", port, str(n)] + client_cpu,
                             stdout=subprocess.PIPE, text=True, check=True,
                             timeout=120)
    finally:
        server.stdout.close()
        if server.wait(timeout=120) != 0:
            raise RuntimeError("the C server failed")
    return n, int(out.stdout) / 1e9
