"""fastsock.connect / listen / socketpair and Listener."""
import errno
import os
import socket
import sys
import threading
import time

import pytest

import fastsock
from fastsock import Listener, Stream, connect, listen, socketpair
from fastsock import client as client_module
from socket_support import needs_ipv6

T = 5.0


needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")
linux_only = pytest.mark.skipif(not os.uname().sysname == "Linux",
                                reason="Linux abstract namespace")


def serve_once(listener, handler):
    """Accepts one connection on a thread and runs handler(stream)."""
    def run():
        s, _ = listener.accept()
        with s:
            s.settimeout(T)
            handler(s)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def echo_line(s):
    s.write(s.readline().upper())


def test_connect_and_listen_tcp():
    with listen(("127.0.0.1", 0)) as lst:
        host, port = lst.address
        assert host == "127.0.0.1" and port > 0
        assert isinstance(lst, Listener)
        t = serve_once(lst, echo_line)
        with connect(("127.0.0.1", port), timeout=T) as s:
            assert isinstance(s, Stream)
            s.write(b"hello\n")
            assert s.readline() == b"HELLO\n"
        t.join(T)


def test_connect_defaults():
    with listen(("127.0.0.1", 0)) as lst:
        t = serve_once(lst, lambda s: s.read())
        with connect(lst.address) as s:
            assert s.timeout is None
            assert s.buffer_size == 65536
            assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        t.join(T)


def test_connect_options():
    with listen(("127.0.0.1", 0)) as lst:
        t = serve_once(lst, lambda s: s.read())
        with connect(lst.address, timeout=2.5, nodelay=False, buffer_size=1024,
                     max_frame=77, source_address=("127.0.0.1", 0)) as s:
            assert s.timeout == 2.5
            assert s.buffer_size == 1024
            assert s.max_frame == 77
            assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert s.socket.getsockname()[0] == "127.0.0.1"
        t.join(T)


def test_connect_by_name_tries_each_address():
    # "localhost" may resolve to ::1 first; the listener is IPv4 only, so a
    # failed IPv6 attempt must fall through to 127.0.0.1.
    with listen(("127.0.0.1", 0)) as lst:
        t = serve_once(lst, echo_line)
        with connect(("localhost", lst.address[1]), timeout=T) as s:
            s.write(b"x\n")
            assert s.readline() == b"X\n"
        t.join(T)


def test_connect_falls_back_to_the_next_address(monkeypatch):
    with listen(("127.0.0.1", 0)) as lst:
        port = lst.address[1]
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]        # bound, not listening
        calls = []

        def fake_getaddrinfo(host, p, *args):
            calls.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead_port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        monkeypatch.setattr(client_module._stdlib, "getaddrinfo", fake_getaddrinfo)
        t = serve_once(lst, echo_line)
        with connect(("example.invalid", port), timeout=T) as s:
            s.write(b"fallback\n")
            assert s.readline() == b"FALLBACK\n"
        assert calls == ["example.invalid"]
        t.join(T)
        dead.close()


def test_connect_refused_raises_the_stdlib_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        with pytest.raises(ConnectionRefusedError) as e:
            connect(("127.0.0.1", port), timeout=T)
        assert e.value.errno == errno.ECONNREFUSED
    finally:
        s.close()


def test_connect_checks_sizes_before_connecting():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]           # bound, not listening: refused
    try:
        with pytest.raises(ValueError):
            connect(("127.0.0.1", port), buffer_size=1)
        with pytest.raises(TypeError):
            connect(("127.0.0.1", port), max_frame=1.5)
    finally:
        s.close()


@pytest.mark.parametrize("host", ["127.0.0.1\0", "127.0.0.1\0x", b"127.0.0.1\0"])
def test_host_with_a_nul_is_refused_as_the_stdlib_does(host):
    for sock in (socket.socket(), fastsock.Socket()):
        with sock, pytest.raises(TypeError, match="null character"):
            sock.connect((host, 1))
    with pytest.raises((TypeError, OSError)):
        connect((host, 1), timeout=T)


@needs_ipv6
def test_connect_numeric_ipv6():
    with listen(("::1", 0)) as lst:
        t = serve_once(lst, echo_line)
        with connect(("::1", lst.address[1]), timeout=T) as s:
            assert s.socket.family == socket.AF_INET6
            assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            s.write(b"six\n")
            assert s.readline() == b"SIX\n"
        t.join(T)


def test_connect_unknown_host():
    with pytest.raises(socket.gaierror):
        connect(("no-such-host.invalid", 80), timeout=T)


@pytest.mark.parametrize("bad", [("127.0.0.1",), 80, None, ["127.0.0.1", 80]])
def test_connect_bad_address(bad):
    with pytest.raises(TypeError):
        connect(bad)


@needs_ipv6
def test_connect_ipv6():
    with listen(("::1", 0)) as lst:
        assert lst.address[0] == "::1"
        t = serve_once(lst, echo_line)
        with connect(("::1", lst.address[1]), timeout=T) as s:
            assert s.socket.family == socket.AF_INET6
            s.write(b"six\n")
            assert s.readline() == b"SIX\n"
        t.join(T)


@needs_ipv6
def test_listen_dualstack_accepts_ipv4():
    with listen(("", 0), dualstack=True) as lst:
        assert lst.socket.family == socket.AF_INET6
        t = serve_once(lst, echo_line)
        with connect(("127.0.0.1", lst.address[1]), timeout=T) as s:
            s.write(b"four\n")
            assert s.readline() == b"FOUR\n"
        t.join(T)


def test_listen_any_and_port_zero():
    with listen(("", 0)) as lst:
        assert lst.address[0] == "0.0.0.0"
        assert lst.address[1] > 0
        assert lst.fileno() >= 0


def test_listen_reuse_port():
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")
    with listen(("127.0.0.1", 0), reuse_port=True) as a:
        with listen(("127.0.0.1", a.address[1]), reuse_port=True) as b:
            assert a.address == b.address
        with pytest.raises(OSError):
            listen(("127.0.0.1", a.address[1]))


def test_listen_backlog():
    with listen(("127.0.0.1", 0), backlog=1) as lst:
        with connect(lst.address, timeout=T) as s:
            s2, addr = lst.accept()
            with s2:
                assert addr == s.socket.getsockname()


def test_listener_accept_gives_streams_with_options():
    with listen(("127.0.0.1", 0), buffer_size=2048, max_frame=99) as lst:
        with connect(lst.address, timeout=T) as c:
            s, addr = lst.accept()
            with s:
                assert isinstance(s, Stream)
                assert s.buffer_size == 2048 and s.max_frame == 99
                assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                c.send_frame(b"frame")
                c.flush()
                s.settimeout(T)
                assert s.recv_frame() == b"frame"


@pytest.mark.parametrize("client_first", [True, False])
@pytest.mark.parametrize("op", ["readexactly", "readline", "readinto", "recv_frame"])
def test_accepted_stream_first_read(client_first, op):
    # An accepted stream's first receive is tried without waiting; whether
    # the request is already there (client first) or comes later (the read
    # then waits as usual), and whatever read it is, the bytes are the same.
    request = b"\0\0\0\x05hello\n" + b"x" * 20
    with listen(("127.0.0.1", 0)) as lst:
        with connect(lst.address, timeout=T) as c:
            s, _ = lst.accept()
            with s:
                got = []
                def read():
                    if op == "readinto":
                        buf = bytearray(len(request))
                        got.append(bytes(buf[:s.readinto(buf)]))
                    elif op == "recv_frame":
                        got.append(b"\0\0\0\x05" + s.recv_frame())
                    else:
                        got.append(s.readexactly(10) if op == "readexactly"
                                   else s.readline())
                reader = threading.Thread(target=read)
                if client_first:
                    c.write(request)
                    c.flush()
                    time.sleep(0.05)        # the request is in the kernel
                reader.start()
                if not client_first:
                    time.sleep(0.05)        # the reader is waiting
                    c.write(request)
                    c.flush()
                reader.join(T)
                assert not reader.is_alive()
                assert got and got[0] and request.startswith(got[0])
                assert len(got[0]) >= (9 if op != "readinto" else 1)


def test_listener_nodelay_false_leaves_nagle_on():
    with listen(("127.0.0.1", 0), nodelay=False) as lst:
        with connect(lst.address, timeout=T):
            s, _ = lst.accept()
            with s:
                assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux property")
def test_accepted_sockets_inherit_nodelay_from_the_listener():
    # Listener sets TCP_NODELAY once on the listening socket on Linux,
    # relying on this, instead of once per accepted connection.
    for value in (1, 0):
        with socket.create_server(("127.0.0.1", 0)) as lst:
            lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, value)
            with socket.create_connection(lst.getsockname()):
                conn, _ = lst.accept()
                with conn:
                    assert bool(conn.getsockopt(socket.IPPROTO_TCP,
                                                socket.TCP_NODELAY)) == bool(value)


def test_listener_timeout():
    with listen(("127.0.0.1", 0)) as lst:
        lst.settimeout(0.05)
        assert lst.gettimeout() == 0.05
        with pytest.raises(TimeoutError):
            lst.accept()


def test_listener_iteration_ends_when_closed():
    lst = listen(("127.0.0.1", 0))
    got = []

    def run():
        for s, addr in lst:
            with s:
                got.append(s.read(3))
    t = threading.Thread(target=run)
    t.start()
    for _ in range(3):
        with connect(lst.address, timeout=T) as c:
            c.write(b"abc")
    while len(got) < 3 and t.is_alive():
        t.join(0.01)
    address = lst.address
    lst.close()
    if not sys.platform.startswith("linux"):
        # Elsewhere close() may not wake the accept() in progress: connect
        # once more so the loop sees the closed listener.
        try:
            connect(address, timeout=0.2).close()
        except OSError:
            pass
    t.join(T)
    assert not t.is_alive()
    assert got == [b"abc"] * 3
    assert lst.closed
    assert "closed" in repr(lst)


def test_listener_close_is_idempotent_and_accept_after_close():
    lst = listen(("127.0.0.1", 0))
    lst.close()
    lst.close()
    with pytest.raises(OSError):
        lst.accept()


@needs_unix
def test_unix_path(tmp_path):
    path = str(tmp_path / "sock")
    with listen(path) as lst:
        assert lst.address == path
        assert os.path.exists(path)
        t = serve_once(lst, echo_line)
        with connect(path, timeout=T) as s:
            assert s.socket.family == socket.AF_UNIX
            s.write(b"unix\n")
            assert s.readline() == b"UNIX\n"
        t.join(T)
    assert not os.path.exists(path)          # the listener removed its file


@needs_unix
def test_unix_pathlike_and_bytes(tmp_path):
    path = tmp_path / "sock2"
    with listen(path) as lst:
        t = serve_once(lst, echo_line)
        with connect(os.fsencode(str(path)), timeout=T) as s:
            s.write(b"p\n")
            assert s.readline() == b"P\n"
        t.join(T)


@needs_unix
def test_unix_file_replaced_is_not_removed(tmp_path):
    path = str(tmp_path / "sock3")
    lst = listen(path)
    os.unlink(path)
    with open(path, "w") as f:
        f.write("someone else's")
    lst.close()
    assert os.path.exists(path)


@linux_only
def test_unix_abstract_namespace():
    name = b"\0fastsock-test-%d" % os.getpid()
    with listen(name) as lst:
        assert lst.address == name
        t = serve_once(lst, echo_line)
        with connect(name, timeout=T) as s:
            s.write(b"abstract\n")
            assert s.readline() == b"ABSTRACT\n"
        t.join(T)


@needs_unix
def test_connect_unix_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        connect(str(tmp_path / "missing"), timeout=T)


def test_socketpair():
    a, b = socketpair(buffer_size=128, max_frame=10)
    with a, b:
        assert isinstance(a, Stream) and isinstance(b, Stream)
        assert a.buffer_size == 128 and b.max_frame == 10
        a.settimeout(T)
        b.settimeout(T)
        a.send_frame(b"to b")
        a.flush()
        assert b.recv_frame() == b"to b"
        b.write(b"to a\n")
        b.flush()
        assert a.readline() == b"to a\n"
    assert a.closed and b.closed


def test_exports():
    for name in ("Stream", "Listener", "connect", "listen", "socketpair"):
        assert name in fastsock.__all__
        assert getattr(fastsock, name) is not None
