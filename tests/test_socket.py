"""fastsock.Socket beyond the stdlib's surface: handing descriptors over,
gathered sends, the one-system-call timeout path (G9), thread safety."""
import array
import ast
import errno
import gc
import mmap
import os
import pathlib
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref

import pytest

import fastsock
from fastsock import Socket
from socket_support import (GUARD, Interrupted, Reader, closing, need_tool,
                            signal_raises, slow_peer, tcp_pair,
                            times_out_whole)

IOV_MAX = os.sysconf("SC_IOV_MAX")


# ---- from_socket / to_socket ------------------------------------------------

@pytest.mark.parametrize("timeout", [None, 0.0, 2.5])
def test_from_socket_takes_descriptor_and_timeout(timeout):
    a, b = socket.socketpair()
    with closing(a, b):
        a.settimeout(timeout)
        fd = a.fileno()
        s = Socket.from_socket(a)
        with s:
            assert a.fileno() == -1               # detached, not closed
            assert s.fileno() == fd
            assert s.gettimeout() == timeout
            assert (s.family, s.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
            s.sendall(b"moved")
            assert b.recv(10) == b"moved"


@pytest.mark.parametrize("timeout", [None, 0.0, 2.5])
def test_to_socket_hands_descriptor_and_timeout(timeout):
    a, b = tcp_pair(Socket)
    with closing(a, b):
        a.settimeout(timeout)
        fd = a.fileno()
        s = a.to_socket()
        with s:
            assert type(s) is socket.socket
            assert a.fileno() == -1
            assert s.fileno() == fd
            assert s.gettimeout() == timeout
            assert s.getblocking() == (timeout != 0.0)
            s.sendall(b"back")
            assert b.recv(10) == b"back"


def test_from_socket_rejects_others():
    with pytest.raises(TypeError):
        Socket.from_socket(5)
    a, b = tcp_pair(Socket)
    with closing(a, b):
        with pytest.raises(TypeError):
            Socket.from_socket(a)                 # not a stdlib socket
    s = socket.socket()
    s.close()
    with pytest.raises(OSError) as info:
        Socket.from_socket(s)
    assert info.value.errno == errno.EBADF
    closed = Socket()
    closed.close()
    with pytest.raises(OSError) as info:
        closed.to_socket()
    assert info.value.errno == errno.EBADF


def test_round_trip_through_stdlib():
    a, b = socket.socketpair()
    with closing(b):
        a.settimeout(1.5)
        back = Socket.from_socket(a).to_socket()
        with back:
            assert back.gettimeout() == 1.5
            back.sendall(b"again")
            assert b.recv(10) == b"again"


def test_from_socket_subclass():
    class Mine(Socket):
        pass
    a, b = socket.socketpair()
    with closing(b):
        with Mine.from_socket(a) as m:
            assert type(m) is Mine


def test_drop_in_when_patched_as_socket_socket(monkeypatch):
    """With socket.socket replaced by a Socket subclass, the stdlib's own
    helpers (create_connection, makefile...) build and use fastsock
    sockets, and to_socket()/from_socket() still mean the real stdlib
    class."""
    class DropIn(Socket):
        pass
    monkeypatch.setattr(socket, "socket", DropIn)
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert type(server) is DropIn
        with socket.create_connection(server.getsockname(), GUARD) as c:
            conn, _ = server.accept()
            with conn:
                assert type(c) is DropIn and type(conn) is DropIn
                with c.makefile("wb") as w, conn.makefile("rb") as r:
                    w.write(b"hi\n")
                    w.flush()
                    assert r.readline() == b"hi\n"
                std = conn.to_socket()
                with std:
                    monkeypatch.undo()
                    assert type(std) is socket.socket


# ---- sendall_buffers -----------------------------------------------------------

def make_buffers(count, seed=0):
    """`count` buffers of assorted types and sizes (some empty)."""
    out = []
    for i in range(count):
        size = (i * 7919 + seed) % 300
        data = bytes((i + j) & 0xFF for j in range(size))
        kind = i % 5
        if kind == 0:
            out.append(data)
        elif kind == 1:
            out.append(bytearray(data))
        elif kind == 2:
            out.append(memoryview(b"??" + data + b"??")[2:2 + size])
        elif kind == 3:
            out.append(array.array("B", data))
        else:
            out.append(memoryview(data).cast("B"))
    return out


def joined(buffers):
    return b"".join(bytes(b) for b in buffers)


@pytest.mark.parametrize("count", [0, 1, 8, 9, IOV_MAX, 3 * IOV_MAX + 17])
def test_sendall_buffers_sends_every_byte_in_order(count):
    a, b = tcp_pair(Socket)
    with closing(a, b):
        buffers = make_buffers(count)
        reader = Reader(b)
        reader.start()
        assert a.sendall_buffers(buffers) is None
        a.shutdown(socket.SHUT_WR)
        assert reader.result() == joined(buffers)


def test_sendall_buffers_partial_writes_slow_reader():
    """A tiny send buffer and a slow reader force many partial writes, some
    ending inside a buffer, across more than IOV_MAX buffers."""
    a, b = tcp_pair(Socket)
    with closing(a, b):
        # (A tiny SO_RCVBUF too would stall TCP itself: zero-window probes.)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
        buffers = make_buffers(2 * IOV_MAX + 500, seed=3)
        buffers.append(os.urandom(200_000))       # and one large one
        buffers.extend(make_buffers(IOV_MAX + 1, seed=5))
        reader = Reader(b, chunk=1500, pause=0.0005)
        reader.start()
        a.sendall_buffers(buffers)
        a.shutdown(socket.SHUT_WR)
        data = reader.result()
        want = joined(buffers)
        assert len(data) == len(want)
        assert data == want


def test_sendall_buffers_takes_any_iterable():
    a, b = tcp_pair(Socket)
    with closing(a, b):
        a.sendall_buffers(bytes([i]) * 3 for i in range(5))
        with mmap.mmap(-1, 10) as m:
            m[:] = b"0123456789"
            a.sendall_buffers((m, b"end"))
        a.shutdown(socket.SHUT_WR)
        assert b.recv(100, socket.MSG_WAITALL) == (
            b"\0\0\0\1\1\1\2\2\2\3\3\3\4\4\4" + b"0123456789end")


@pytest.mark.parametrize("buffers, error", [
    (5, TypeError),
    ([b"ok", "text"], TypeError),
    ([b"ok", None], TypeError),
    ([b"ok", memoryview(b"abcdef")[::2]], BufferError),
])
def test_sendall_buffers_bad_input_sends_nothing(buffers, error):
    a, b = tcp_pair(Socket)
    with closing(a, b):
        with pytest.raises(error):
            a.sendall_buffers(buffers)
        a.sendall(b"!")
        assert b.recv(10) == b"!"                  # "ok" never went out


def test_sendall_buffers_timeout_bounds_whole_call():
    a, b = tcp_pair(Socket)
    with closing(a, b):
        reader = slow_peer(a, b)
        buffers = [os.urandom(4096) for _ in range(2048)]   # 8 MiB
        times_out_whole(a, reader, 0.4, lambda: a.sendall_buffers(buffers),
                        joined(buffers))


def test_sendall_buffers_errors():
    a, b = tcp_pair(Socket)
    with closing(a):
        b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(200):
                a.sendall_buffers([b"x" * 65536] * 4)
                time.sleep(0.001)
    closed = Socket()
    closed.close()
    with pytest.raises(OSError) as info:
        closed.sendall_buffers([b"x"])
    assert info.value.errno == errno.EBADF
    s = Socket()
    with s:
        s.setblocking(False)
        with pytest.raises(OSError):
            s.sendall_buffers([b"x"])               # not connected


def test_sendall_buffers_signal_interrupts():
    a, b = tcp_pair(Socket)
    # Made before the alarm is set: a signal that lands while Python builds
    # it is handled only after the next call returns, which here is never.
    data = [b"x" * 2 ** 20] * 64
    with closing(a, b):
        a.settimeout(None)
        with signal_raises(0.2), pytest.raises(Interrupted):
            a.sendall_buffers(data)             # the peer never reads


def test_sendmsg_more_than_iov_max_buffers():
    a, b = tcp_pair(Socket)
    with closing(a, b):
        with pytest.raises(OSError) as info:
            a.sendmsg([b"x"] * (IOV_MAX + 1))
        assert info.value.errno == errno.EMSGSIZE
        with pytest.raises(OSError) as info:
            b.recvmsg_into([bytearray(1)] * (IOV_MAX + 1))
        assert info.value.errno == errno.EMSGSIZE


def test_recvmsg_into_many_buffers():
    a, b = tcp_pair(Socket)
    with closing(a, b):
        payload = os.urandom(IOV_MAX)
        a.sendall(payload)
        bufs = [bytearray(1) for _ in range(IOV_MAX)]
        got = 0
        while got == 0:
            got, _, _, _ = b.recvmsg_into(bufs)
        assert b"".join(bufs)[:got] == payload[:got]


# ---- G9: timeouts cost no extra system call ---------------------------------

CHILD = textwrap.dedent('''
    import os, select, socket, sys
    import fastsock
    cls = fastsock.Socket if sys.argv[1] == "fastsock" else socket.socket
    marker = os.open(os.devnull, os.O_WRONLY)

    def pair(kind):
        if kind == socket.SOCK_STREAM:
            with cls() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                a = cls()
                a.connect(listener.getsockname())
                b, _ = listener.accept()
        else:
            a, b = cls(socket.AF_INET, kind), cls(socket.AF_INET, kind)
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
        return a, b

    tcp_a, tcp_b = pair(socket.SOCK_STREAM)
    udp_a, udp_b = pair(socket.SOCK_DGRAM)
    buf = bytearray(64)
    msg = b"m" * 64
    dest = udp_b.getsockname()

    def queue(send, receiver):
        # Sent, and seen by the receiving socket before the measured call.
        send()
        assert select.select([receiver], [], [], 5)[0]

    ops = {
        "recv_into": (lambda: queue(lambda: tcp_b.sendall(msg), tcp_a),
                      lambda: tcp_a.recv_into(buf)),
        "send": (lambda: tcp_b.recv_into(buf), lambda: tcp_a.send(msg)),
        "recvfrom_into": (
            lambda: queue(lambda: udp_b.sendto(msg, udp_a.getsockname()),
                          udp_a),
            lambda: udp_a.recvfrom_into(buf)),
        "sendto": (lambda: udp_b.recvfrom_into(buf),
                   lambda: udp_a.sendto(msg, dest)),
    }
    for timeout in (None, 5.0):
        for s in (tcp_a, tcp_b, udp_a, udp_b):
            s.settimeout(timeout)
        for name, (prepare, call) in ops.items():
            for i in range(4):          # the first run warms caches up
                if name.startswith("recv"):
                    prepare()           # data queued before the call
                label = f"{name} {timeout} {i}".encode()
                os.write(marker, b"<<" + label)
                call()
                os.write(marker, b">>" + label)
                if name.startswith("send"):
                    prepare()           # drain what was sent
''')

SYSCALL = re.compile(r'^(\d+)\s+(\w+)\((.*)$')
MARK = re.compile(r'^write\(\d+, "(<<|>>)([^"]*)"')


# The allocator's own calls: an instrumented malloc (the ASan run) maps
# pages when it likes, which is not the socket path making a call.
MEMORY = frozenset(("mmap", "munmap", "mremap", "madvise", "mprotect", "brk"))


def syscalls_between_markers(kind, tmp_path):
    """{label: [system call names]} made by each measured call of CHILD run
    under strace for socket class `kind`."""
    strace = need_tool("strace")      # it counts system calls for goal G9
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / f"strace-{kind}.txt"
    package_root = str(pathlib.Path(fastsock.__file__).parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + sys.path))
    subprocess.run([strace, "-f", "-qq", "-o", str(out), sys.executable,
                    str(script), kind], check=True, env=env, timeout=60)
    calls, current, pid = {}, None, None
    for line in out.read_text().splitlines():
        m = SYSCALL.match(line)
        if not m:
            continue
        line_pid, name, rest = m.groups()
        mark = MARK.match(f"{name}({rest}")
        if mark:
            if mark.group(1) == "<<":
                current, pid = mark.group(2), line_pid
                calls[current] = []
            else:
                assert mark.group(2) == current, line
                current = None
        elif current is not None and line_pid == pid and name not in MEMORY:
            calls[current].append(name)
    assert len(calls) == 2 * 4 * 4, "markers missing from the trace"
    return calls


EXPECTED = {"recv_into": "recvfrom", "send": "sendto",
            "recvfrom_into": "recvfrom", "sendto": "sendto"}


@pytest.mark.strace
def test_one_system_call_per_operation_even_with_timeout(tmp_path):
    """G9: on a ready socket, recv_into/send/recvfrom_into/sendto make
    exactly one system call, with or without a timeout (no poll first)."""
    calls = syscalls_between_markers("fastsock", tmp_path)
    for label, names in calls.items():
        op, timeout, run = label.split()
        if run == "0":
            continue                # warm-up
        assert names == [EXPECTED[op]], (label, names)


@pytest.mark.strace
def test_strace_check_sees_the_stdlib_poll(tmp_path):
    """The same measurement on the stdlib finds its poll() before each call
    when a timeout is set: proof that the check above could fail."""
    calls = syscalls_between_markers("stdlib", tmp_path)
    for label, names in calls.items():
        op, timeout, run = label.split()
        if run == "0":
            continue
        if timeout == "None":
            assert names == [EXPECTED[op]], (label, names)
        else:
            assert names == ["poll", EXPECTED[op]], (label, names)


# ---- threads ---------------------------------------------------------------------

def test_sendto_from_two_threads_reaches_the_right_peers():
    """sendto() caches the last parsed address; a thread sending elsewhere
    at the same time must not redirect the other's datagrams."""
    sender = Socket(socket.AF_INET, socket.SOCK_DGRAM)
    peers = [Socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    with closing(sender, *peers):
        for p in peers:
            p.bind(("127.0.0.1", 0))
            p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rounds = 2000
        counts = [0, 0]

        def send(i):
            addr = peers[i].getsockname()
            tag = b"%d" % i
            for _ in range(rounds):
                sender.sendto(tag, addr)
                counts[i] += 1
                if counts[i] % 200 == 0:
                    time.sleep(0.001)            # let the reader catch up
        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(GUARD)
        for i, p in enumerate(peers):
            p.setblocking(False)
            got = []
            try:
                while True:
                    got.append(p.recv(10))
            except BlockingIOError:
                pass
            assert got, "nothing arrived"
            assert set(got) == {b"%d" % i}


def test_close_from_another_thread_during_a_timed_wait():
    """The waiting call ends with EBADF, not a timeout, and never touches
    whatever descriptor reuses the number."""
    a, b = tcp_pair(Socket)
    with closing(a, b):
        a.settimeout(0.5)
        closer = threading.Timer(0.1, a.close)
        closer.start()
        try:
            with pytest.raises(OSError) as info:
                a.recv(10)
        finally:
            closer.join()
        assert info.value.errno == errno.EBADF
        assert a.fileno() == -1


def test_recv_in_threads_on_many_sockets():
    pairs = [tcp_pair(Socket) for _ in range(8)]
    try:
        results = {}

        def serve(i, s):
            results[i] = s.recv(100)
        threads = [threading.Thread(target=serve, args=(i, b))
                   for i, (a, b) in enumerate(pairs)]
        for t in threads:
            t.start()
        for i, (a, b) in reversed(list(enumerate(pairs))):
            a.sendall(b"to %d" % i)
        for t in threads:
            t.join(GUARD)
        assert results == {i: b"to %d" % i for i in range(8)}
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# ---- life cycle ------------------------------------------------------------------

def test_unclosed_socket_warns_and_closes():
    s = Socket()
    fd = s.fileno()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del s
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    with pytest.raises(OSError):
        os.fstat(fd)                              # really closed


def test_weakref():
    s = Socket()
    ref = weakref.ref(s)
    assert ref() is s
    s.close()
    del s
    gc.collect()
    assert ref() is None


def test_subclass_accept_returns_subclass():
    class Mine(Socket):
        pass
    a, b = tcp_pair(Mine)
    with closing(a, b):
        assert type(a) is Mine and type(b) is Mine


def test_socketpair_helper():
    from fastsock._socket import socketpair
    a, b = socketpair()
    with closing(a, b):
        assert a.family == socket.AF_UNIX and a.type == socket.SOCK_STREAM
        a.sendall(b"pair")
        assert b.recv(10) == b"pair"
    a, b = socketpair(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    with closing(a, b):
        assert a.type == socket.SOCK_DGRAM
        assert a.gettimeout() == 0.0
        with pytest.raises(BlockingIOError):
            a.recv(1)


def test_sendfile_from_a_pipe():
    """The stdlib sends nothing from a pipe (it trusts st_size, 0 there);
    fastsock falls back to read() and sends what the pipe holds."""
    a, b = tcp_pair(Socket)
    with closing(a, b):
        r, w = os.pipe()
        with open(r, "rb") as pipe_in, open(w, "wb") as pipe_out:
            pipe_out.write(b"from a pipe")
            pipe_out.close()
            assert a.sendfile(pipe_in) == len(b"from a pipe")
        assert b.recv(100) == b"from a pipe"


def test_sendfile_timeout_bounds_whole_transfer(tmp_path):
    path = tmp_path / "big"
    payload = os.urandom(8 * 2 ** 20)
    path.write_bytes(payload)
    a, b = tcp_pair(Socket)
    with closing(a, b), open(path, "rb") as f:
        reader = slow_peer(a, b)
        data = times_out_whole(a, reader, 0.4, lambda: a.sendfile(f),
                               payload)
        assert f.tell() >= len(data)      # the position follows what went


# ---- the stub ---------------------------------------------------------------------

def test_stub_lists_the_public_api():
    """_socket.pyi declares every public name of the module and of Socket,
    and nothing that is not there."""
    import fastsock._socket as mod
    stub = pathlib.Path(mod.__file__).with_name("_socket.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    # Private names the facade imports (_PortError) are declared too.
    assert all(hasattr(mod, n) for n in declared)
    module_names = {n for n in declared if not n.startswith("_")}
    [cls_node] = [n for n in tree.body
                  if isinstance(n, ast.ClassDef) and n.name == "Socket"]
    method_names = {n.name for n in cls_node.body
                    if isinstance(n, ast.FunctionDef)}
    assert module_names == {n for n in dir(mod) if not n.startswith("_")
                            and callable(getattr(mod, n))
                            and getattr(getattr(mod, n), "__module__", "")
                            == mod.__name__}
    public = {n for n in dir(Socket) if not n.startswith("_")}
    assert method_names >= public
    assert method_names - public <= {
        "__init__", "__enter__", "__exit__", "__del__", "__repr__",
        "__getstate__"} | {n for n in dir(Socket) if n.startswith("_")}
