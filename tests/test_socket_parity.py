"""The same cases on socket.socket and on fastsock.Socket: whatever the stdlib
does here (results, exception types, errno), the drop-in must do too."""
import array
import errno
import io
import os
import pickle
import re
import selectors
import select
import socket
import struct
import sys
import threading
import time

import pytest

import fastsock
from socket_support import (GUARD, Interrupted, Reader, closing, needs_ipv6,
                            on_alarm, signal_raises, slow_peer,
                            tcp_pair, times_out_whole, udp_pair, unix_pair)

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"),
            pytest.param(socket.AF_INET6, id="ipv6", marks=needs_ipv6)]


@pytest.fixture(params=[socket.socket, fastsock.Socket],
                ids=["stdlib", "fastsock"])
def cls(request):
    return request.param


def unused_port(family=socket.AF_INET):
    # A port that was free a moment ago: nothing listens there.
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---- identity, modes, life cycle -------------------------------------------

def test_identity(cls):
    with cls(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.family == socket.AF_INET
        assert isinstance(s.family, socket.AddressFamily)
        assert s.type == socket.SOCK_STREAM
        assert isinstance(s.type, socket.SocketKind)
        assert s.proto == 0
        assert s.fileno() >= 0
    with cls(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert s.type == socket.SOCK_DGRAM


def test_default_arguments(cls):
    with cls() as s:
        assert (s.family, s.type, s.proto) == (
            socket.AF_INET, socket.SOCK_STREAM, 0)


def test_nonblock_flag_in_type(cls):
    with cls(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK) as s:
        assert s.type == socket.SOCK_STREAM
        assert s.gettimeout() == 0.0
        assert s.getblocking() is False


def test_from_fileno_detects_kind(cls):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        with cls(fileno=os.dup(src.fileno())) as s:
            assert (s.family, s.type) == (socket.AF_INET, socket.SOCK_DGRAM)


def test_timeout_modes(cls):
    with cls() as s:
        assert s.gettimeout() is None and s.timeout is None
        assert s.getblocking() is True
        s.settimeout(2.5)
        assert s.gettimeout() == 2.5 and s.timeout == 2.5
        assert s.getblocking() is True
        s.settimeout(0)
        assert s.gettimeout() == 0.0 and s.getblocking() is False
        s.setblocking(True)
        assert s.gettimeout() is None
        s.setblocking(False)
        assert s.gettimeout() == 0.0
        s.settimeout(None)
        assert s.getblocking() is True


def test_default_timeout_applies(cls):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(3.0)
    try:
        with cls() as s:
            assert s.gettimeout() == 3.0
    finally:
        socket.setdefaulttimeout(old)


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), (float("nan"), ValueError), ("1", TypeError),
    (1e300, OverflowError), ([], TypeError)])
def test_bad_timeouts(cls, value, error):
    with cls() as s:
        with pytest.raises(error):
            s.settimeout(value)
        assert s.gettimeout() is None       # unchanged


class Index:
    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def setblocking_outcome(cls, flag):
    with cls() as s:
        s.settimeout(2.0)
        try:
            s.setblocking(flag)
        except Exception as e:
            return type(e)
        return s.getblocking(), s.gettimeout()


@pytest.mark.parametrize("flag", [
    0, 1, -1, True, False, Index(0), Index(3), 2**100, 1.5, 0.0, "yes", "",
    None, [], [0]], ids=repr)
def test_setblocking_takes_what_this_pythons_stdlib_takes(flag):
    # An int (or __index__) that fits a C long before 3.12; any object,
    # for its truth, since: the drop-in follows the running Python.
    assert (setblocking_outcome(fastsock.Socket, flag)
            == setblocking_outcome(socket.socket, flag))


def test_setblocking_of_a_float_depends_on_the_python(cls):
    expected = (True, None) if sys.version_info >= (3, 12) else TypeError
    assert setblocking_outcome(cls, 1.5) == expected


def test_close_and_detach(cls):
    s = cls()
    fd = s.fileno()
    s.close()
    assert s.fileno() == -1
    s.close()                                   # twice is fine
    s = cls()
    fd = s.detach()
    assert s.fileno() == -1
    assert s.detach() == -1
    os.close(fd)                                # still open: we own it


def test_context_manager_closes(cls):
    with cls() as s:
        pass
    assert s.fileno() == -1


def test_repr(cls):
    with cls() as s:
        s.bind(("127.0.0.1", 0))
        text = repr(s)
        assert f"fd={s.fileno()}" in text and "laddr=" in text
    assert "[closed]" in repr(s)


@pytest.mark.parametrize("family, kind", [
    (socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),
    (socket.AF_UNIX, socket.SOCK_STREAM)])
def test_repr_fields_are_the_stdlibs(family, kind):
    # Everything after the class name, the descriptor's number aside, as
    # this Python's stdlib writes it (the enums as "AddressFamily.AF_INET"
    # before 3.11).
    def fields(sock):
        return re.sub(r"fd=\d+", "fd=N", repr(sock).split(" ", 1)[1])
    with socket.socket(family, kind) as a, fastsock.Socket(family, kind) as b:
        assert fields(b) == fields(a)
        a.close()
        b.close()
        assert fields(b) == fields(a)


def test_cannot_pickle(cls):
    with cls() as s:
        with pytest.raises(TypeError):
            pickle.dumps(s)


def test_inheritable(cls):
    with cls() as s:
        assert s.get_inheritable() is False
        s.set_inheritable(True)
        assert s.get_inheritable() is True


def test_dup(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.settimeout(4.0)
        c = a.dup()
        with c:
            assert c.fileno() != a.fileno()
            assert c.gettimeout() == 4.0
            assert type(c) is type(a)
            c.sendall(b"via dup")
            assert b.recv(100) == b"via dup"


# ---- use after close -----------------------------------------------------

CLOSED_CALLS = {
    "recv": lambda s: s.recv(1),
    "recv_into": lambda s: s.recv_into(bytearray(1)),
    "recvfrom": lambda s: s.recvfrom(1),
    "recvfrom_into": lambda s: s.recvfrom_into(bytearray(1)),
    "recvmsg": lambda s: s.recvmsg(1),
    "recvmsg_into": lambda s: s.recvmsg_into([bytearray(1)]),
    "send": lambda s: s.send(b"x"),
    "sendall": lambda s: s.sendall(b"x"),
    "sendto": lambda s: s.sendto(b"x", ("127.0.0.1", 9)),
    "sendmsg": lambda s: s.sendmsg([b"x"]),
    "bind": lambda s: s.bind(("127.0.0.1", 0)),
    "listen": lambda s: s.listen(),
    "accept": lambda s: s.accept(),
    "connect": lambda s: s.connect(("127.0.0.1", 9)),
    "shutdown": lambda s: s.shutdown(socket.SHUT_RDWR),
    "getsockname": lambda s: s.getsockname(),
    "getpeername": lambda s: s.getpeername(),
    "setsockopt": lambda s: s.setsockopt(socket.SOL_SOCKET,
                                         socket.SO_REUSEADDR, 1),
    "getsockopt": lambda s: s.getsockopt(socket.SOL_SOCKET,
                                         socket.SO_REUSEADDR),
    "settimeout": lambda s: s.settimeout(1.0),
    "setblocking": lambda s: s.setblocking(False),
}


@pytest.mark.parametrize("call", CLOSED_CALLS.values(), ids=CLOSED_CALLS)
def test_use_after_close_is_ebadf(cls, call):
    s = cls()
    s.close()
    with pytest.raises(OSError) as info:
        call(s)
    assert info.value.errno == errno.EBADF


def test_connect_ex_after_close_returns_ebadf(cls):
    s = cls()
    s.close()
    assert s.connect_ex(("127.0.0.1", 9)) == errno.EBADF


# ---- bad input -------------------------------------------------------------

BAD_STREAM_CALLS = {
    "recv negative": (lambda s: s.recv(-1), ValueError),
    "recv str size": (lambda s: s.recv("1"), TypeError),
    "recv_into bytes": (lambda s: s.recv_into(b"abc"), TypeError),
    "recv_into read-only view": (
        lambda s: s.recv_into(memoryview(b"abc")), TypeError),
    "recv_into non-contiguous": (
        lambda s: s.recv_into(memoryview(bytearray(8))[::2]), TypeError),
    "recv_into negative": (lambda s: s.recv_into(bytearray(4), -1),
                           ValueError),
    "recv_into larger than buffer": (
        lambda s: s.recv_into(bytearray(4), 5), ValueError),
    "recv_into str": (lambda s: s.recv_into("abc"), TypeError),
    "send str": (lambda s: s.send("abc"), TypeError),
    "send int": (lambda s: s.send(5), TypeError),
    "send non-contiguous": (
        lambda s: s.send(memoryview(b"abcdef")[::2]), BufferError),
    "sendall str": (lambda s: s.sendall("abc"), TypeError),
    "sendall None": (lambda s: s.sendall(None), TypeError),
    "send bad flags": (lambda s: s.send(b"x", "0"), TypeError),
    "recvmsg negative": (lambda s: s.recvmsg(-1), ValueError),
    "recvmsg negative ancillary": (lambda s: s.recvmsg(1, -1), ValueError),
    "recvmsg_into read-only": (lambda s: s.recvmsg_into([b"x"]), TypeError),
    "recvmsg_into not iterable": (lambda s: s.recvmsg_into(5), TypeError),
    "sendmsg not iterable": (lambda s: s.sendmsg(5), TypeError),
    "sendmsg str item": (lambda s: s.sendmsg(["x"]), TypeError),
    "sendmsg bad ancillary": (lambda s: s.sendmsg([b"x"], [(1, 2)]),
                              TypeError),
    "sendmsg float level": (lambda s: s.sendmsg([b"x"], [(1.0, 2, b"")]),
                            TypeError),
    "getsockopt buflen too big": (
        lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, 5000),
        OSError),
    "getsockopt buflen negative": (
        lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, -1),
        OSError),
    "setsockopt str": (lambda s: s.setsockopt(
        socket.SOL_SOCKET, socket.SO_REUSEADDR, "1"), TypeError),
    "setsockopt huge int": (lambda s: s.setsockopt(
        socket.SOL_SOCKET, socket.SO_REUSEADDR, 2 ** 40), TypeError),
    "setsockopt None without optlen": (lambda s: s.setsockopt(
        socket.SOL_SOCKET, socket.SO_REUSEADDR, None), TypeError),
    "shutdown bad how": (lambda s: s.shutdown(7), OSError),
}


@pytest.mark.parametrize("call, error", BAD_STREAM_CALLS.values(),
                         ids=BAD_STREAM_CALLS)
def test_bad_input_on_connected_stream(cls, call, error):
    a, b = tcp_pair(cls)
    with closing(a, b):
        with pytest.raises(error):
            call(a)
        # Nothing was lost or sent by the refused call.
        a.sendall(b"still fine")
        assert b.recv(100) == b"still fine"


BAD_ADDRESSES = {
    "port -1": (("127.0.0.1", -1), OverflowError),
    "port 65536": (("127.0.0.1", 65536), OverflowError),
    "port str": (("127.0.0.1", "80"), TypeError),
    "port float": (("127.0.0.1", 80.0), TypeError),
    "host int": ((1, 80), TypeError),
    "host with NUL": (("127.0.0.1\0", 80), TypeError),
    "list": (["127.0.0.1", 80], TypeError),
    "str": ("127.0.0.1", TypeError),
    "None": (None, TypeError),
    "one item": (("127.0.0.1",), TypeError),
    "three items": (("127.0.0.1", 80, 0), TypeError),
    "unresolvable": (("no-such-host.invalid", 80), socket.gaierror),
    "IPv6 host for IPv4": (("::1", 80), socket.gaierror),
}


@pytest.mark.parametrize("address, error", BAD_ADDRESSES.values(),
                         ids=BAD_ADDRESSES)
@pytest.mark.parametrize("method", ["bind", "connect", "connect_ex",
                                    "sendto"])
def test_bad_ipv4_addresses(cls, method, address, error):
    kind = socket.SOCK_DGRAM if method == "sendto" else socket.SOCK_STREAM
    with cls(socket.AF_INET, kind) as s:
        s.settimeout(GUARD)
        with pytest.raises(error):
            if method == "sendto":
                s.sendto(b"x", address)
            else:
                getattr(s, method)(address)


@needs_ipv6
@pytest.mark.parametrize("address, error", [
    (("::1",), TypeError), (("::1", 0, 0, 0, 0), TypeError),
    (("::1", 70000), OverflowError), (("::1", 0, -1), OverflowError),
    (("::1", 0, 1 << 20), OverflowError)])
def test_bad_ipv6_addresses(cls, address, error):
    with cls(socket.AF_INET6, socket.SOCK_STREAM) as s:
        with pytest.raises(error):
            s.bind(address)


def test_sendto_arguments(cls):
    a, b = udp_pair(cls)
    with closing(a, b):
        with pytest.raises(TypeError):
            a.sendto(b"x", 0, None)             # None is a bad address
        with pytest.raises(TypeError):
            a.sendto(b"x")
        a.sendto(b"one", b.getsockname())
        a.sendto(b"two", 0, b.getsockname())
        assert b.recv(10) == b"one"
        assert b.recv(10) == b"two"


def test_unix_path_too_long(cls):
    with cls(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        with pytest.raises(OSError):
            s.bind("x" * 200)


def test_fileno_argument_errors(cls):
    with pytest.raises(ValueError):
        cls(fileno=-5)
    with pytest.raises(TypeError):
        cls(fileno="3")
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            cls(fileno=r)                       # not a socket
        assert info.value.errno == errno.ENOTSOCK
        with pytest.raises(OSError) as info:
            cls(socket.AF_INET, socket.SOCK_STREAM, fileno=r)
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


# ---- stream data -------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_round_trip(cls, family):
    a, b = tcp_pair(cls, family)
    with closing(a, b):
        assert a.getpeername() == b.getsockname()
        assert b.getpeername() == a.getsockname()
        host = a.getsockname()[0]
        assert host == ("127.0.0.1" if family == socket.AF_INET else "::1")
        if family == socket.AF_INET6:
            assert len(a.getsockname()) == 4
        assert a.send(b"hello") == 5
        assert b.recv(5) == b"hello"
        b.sendall(b"x" * 100_000)
        got = bytearray()
        while len(got) < 100_000:
            got += a.recv(65536)
        assert got == b"x" * 100_000


def test_recv_into_writes_in_place(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.sendall(b"abcdef")
        buf = bytearray(b"........")
        view = memoryview(buf)
        n = 0
        while n < 6:
            n += b.recv_into(view[2 + n:], 6 - n)
        assert buf == b"..abcdef"
        a.sendall(b"XYZ")
        assert b.recv_into(buf, 2) == 2          # at most nbytes
        assert buf == b"XYabcdef"
        assert b.recv(10) == b"Z"                # the rest stayed queued


def test_recv_into_other_buffer_types(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        arr = array.array("i", [0, 0])
        a.sendall(struct.pack("=ii", 7, 9))
        n = 0
        view = memoryview(arr).cast("B")
        while n < 8:
            n += b.recv_into(view[n:])
        assert list(arr) == [7, 9]
        a.sendall(array.array("i", [1, 2, 3]))  # any buffer sends
        assert b.recv(12, socket.MSG_WAITALL) == array.array(
            "i", [1, 2, 3]).tobytes()


def test_eof_and_shutdown(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.sendall(b"last")
        a.shutdown(socket.SHUT_WR)
        assert b.recv(100) == b"last"
        assert b.recv(100) == b""
        assert b.recv_into(bytearray(4)) == 0
        b.sendall(b"reply")                      # the other way still works
        assert a.recv(100) == b"reply"


def test_recv_flags(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.sendall(b"peek")
        assert b.recv(4, socket.MSG_PEEK) == b"peek"
        assert b.recv(4, socket.MSG_WAITALL) == b"peek"


def test_connection_refused(cls):
    port = unused_port()
    with cls() as s:
        s.settimeout(GUARD)
        with pytest.raises(ConnectionRefusedError) as info:
            s.connect(("127.0.0.1", port))
        assert info.value.errno == errno.ECONNREFUSED
    with cls() as s:
        assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    with cls() as s:                            # blocking mode too
        assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_connect_ex_success_and_nonblocking(cls):
    with cls() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with cls() as s:
            assert s.connect_ex(listener.getsockname()) == 0
        with cls() as s:
            s.setblocking(False)
            code = s.connect_ex(listener.getsockname())
            assert code in (0, errno.EINPROGRESS)
        with cls() as s:
            s.setblocking(False)
            try:
                s.connect(listener.getsockname())
            except BlockingIOError as e:
                assert e.errno == errno.EINPROGRESS


def test_peer_reset(cls):
    a, b = tcp_pair(cls)
    with closing(a):
        # Closing with unread data (or SO_LINGER 0) sends a reset.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        b.close()
        time.sleep(0.05)
        with pytest.raises(ConnectionResetError) as info:
            a.recv(10)
        assert info.value.errno == errno.ECONNRESET


def test_broken_pipe(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        b.shutdown(socket.SHUT_RDWR)
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(BrokenPipeError) as info:
            a.send(b"x")
        assert info.value.errno == errno.EPIPE


def test_send_after_peer_closed_fails(cls):
    a, b = tcp_pair(cls)
    with closing(a):
        b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                a.sendall(b"x" * 65536)
                time.sleep(0.001)


def test_nonblocking_errors(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.setblocking(False)
        with pytest.raises(BlockingIOError) as info:
            a.recv(10)
        assert info.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
        with pytest.raises(BlockingIOError):
            a.recv_into(bytearray(10))
        with pytest.raises(BlockingIOError):
            while True:
                a.send(b"x" * 65536)            # fill the buffers
        with pytest.raises(BlockingIOError):
            a.sendall(b"x" * 65536)


def test_timeout_on_recv(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.settimeout(0.1)
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            a.recv(10)
        elapsed = time.monotonic() - start
        assert 0.09 <= elapsed < 2.0
        assert isinstance(info.value, socket.timeout)
        assert str(info.value) == "timed out"
        with pytest.raises(TimeoutError):
            a.recv_into(bytearray(10))
        b.sendall(b"late")                      # still usable afterwards
        assert a.recv(10) == b"late"


def test_timeout_bounds_whole_sendall(cls):
    """The peer drains a little every 20 ms, so each send() makes progress
    well within the timeout; only a deadline for the whole call ends it."""
    a, b = tcp_pair(cls)
    with closing(a, b):
        reader = slow_peer(a, b)
        payload = os.urandom(8 * 2 ** 20)       # 40 s at that pace
        times_out_whole(a, reader, 0.5, lambda: a.sendall(payload), payload)


def test_accept_timeout_and_result_type(cls):
    with cls() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.05)
        with pytest.raises(TimeoutError):
            listener.accept()
        with cls() as c:
            c.connect(listener.getsockname())
            conn, addr = listener.accept()
            with conn:
                assert type(conn) is cls
                assert addr == c.getsockname()
                # The stdlib rule: accepted sockets are blocking unless a
                # default timeout is set, whatever the listener's.
                assert conn.gettimeout() is None
                assert conn.family == socket.AF_INET


def test_accept_takes_default_timeout(cls):
    old = socket.getdefaulttimeout()
    with cls() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with cls() as c:
            c.connect(listener.getsockname())
            socket.setdefaulttimeout(2.0)
            try:
                conn, _ = listener.accept()
            finally:
                socket.setdefaulttimeout(old)
            with conn:
                assert conn.gettimeout() == 2.0


def test_connect_timeout(cls):
    # A listener with a full backlog never completes the handshake.
    with cls() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        extra = []
        try:
            with pytest.raises(TimeoutError):
                for _ in range(64):
                    s = cls()
                    extra.append(s)
                    s.settimeout(0.2)
                    s.connect(listener.getsockname())
            s = cls()
            extra.append(s)
            s.settimeout(0.2)
            assert s.connect_ex(listener.getsockname()) in (
                errno.EAGAIN, errno.EWOULDBLOCK)
        finally:
            for s in extra:
                s.close()


# ---- options, names ------------------------------------------------------------

def test_socket_options(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, False)
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        linger = struct.pack("ii", 1, 5)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == linger
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, 0) == \
            socket.SOCK_STREAM
        with pytest.raises(OSError) as info:
            a.setsockopt(socket.SOL_SOCKET, 12345, 1)
        assert info.value.errno in (errno.ENOPROTOOPT, errno.EINVAL)


def test_unbound_names(cls):
    with cls() as s:
        assert s.getsockname() == ("0.0.0.0", 0)
        with pytest.raises(OSError) as info:
            s.getpeername()
        assert info.value.errno == errno.ENOTCONN
    with cls(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        assert s.getsockname() == ""


def test_bind_resolves_names(cls):
    with cls() as s:
        s.bind(("localhost", 0))
        assert s.getsockname()[0] == "127.0.0.1"
    with cls() as s:
        s.bind(("", 0))
        assert s.getsockname()[0] == "0.0.0.0"


def test_listen_backlog_forms(cls):
    # None: the stdlib's default; a negative backlog is taken as 0.
    forms = ((None, min(128, socket.SOMAXCONN)), (0, 0), (-5, 0), (5, 5))
    for backlog, given in forms:
        with cls() as s:
            s.settimeout(GUARD)
            s.bind(("127.0.0.1", 0))
            if backlog is None:
                s.listen()
            else:
                s.listen(backlog)
            if sys.platform.startswith("linux"):
                # A listener's tcp_info holds the backlog the kernel took
                # in tcpi_sacked (u32 at offset 28), capped at somaxconn.
                with open("/proc/sys/net/core/somaxconn") as f:
                    cap = int(f.read())
                info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
                assert struct.unpack_from("I", info, 28)[0] == min(given, cap)
            # Even a backlog of 0 lets a connection in.
            with socket.create_connection(s.getsockname(), timeout=GUARD) as c:
                conn, addr = s.accept()
                conn.close()
                assert addr == c.getsockname()


# ---- datagrams -----------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_udp_sendto_recvfrom(cls, family):
    a, b = udp_pair(cls, family)
    with closing(a, b):
        assert a.sendto(b"ping", b.getsockname()) == 4
        data, addr = b.recvfrom(100)
        assert data == b"ping"
        assert addr == a.getsockname()
        buf = bytearray(10)
        a.sendto(b"pong", 0, b.getsockname())
        n, addr = b.recvfrom_into(buf)
        assert (n, bytes(buf[:n]), addr) == (4, b"pong", a.getsockname())
        a.sendto(b"0123456789", b.getsockname())
        n, addr = b.recvfrom_into(buf, 3)       # the rest is discarded
        assert (n, bytes(buf[:3])) == (3, b"012")
        assert a.sendto(b"", b.getsockname()) == 0
        assert b.recvfrom(10) == (b"", a.getsockname())


def test_udp_truncation_and_connect(cls):
    a, b = udp_pair(cls)
    with closing(a, b):
        a.connect(b.getsockname())
        assert a.getpeername() == b.getsockname()
        a.send(b"0123456789")
        assert b.recv(4) == b"0123"             # the rest of it is gone
        a.send(b"next")
        assert b.recv(100) == b"next"
        b.sendto(b"back", a.getsockname())
        assert a.recv(10) == b"back"


def test_udp_timeout_and_nonblocking(cls):
    a, b = udp_pair(cls)
    with closing(a, b):
        a.settimeout(0.05)
        with pytest.raises(TimeoutError):
            a.recvfrom(10)
        with pytest.raises(TimeoutError):
            a.recvfrom_into(bytearray(10))
        a.settimeout(0)
        with pytest.raises(BlockingIOError):
            a.recvfrom(10)


def test_udp_sendto_many_peers(cls):
    a, b = udp_pair(cls)
    c, d = udp_pair(cls)
    with closing(a, b, c, d):
        for i in range(20):
            for peer in (b, c, d):
                a.sendto(b"%d" % i, peer.getsockname())
        for peer in (b, c, d):
            assert [peer.recvfrom(10) for _ in range(20)] == [
                (b"%d" % i, a.getsockname()) for i in range(20)]


def test_udp_message_too_long(cls):
    a, b = udp_pair(cls)
    with closing(a, b):
        with pytest.raises(OSError) as info:
            a.sendto(b"x" * 70000, b.getsockname())
        assert info.value.errno == errno.EMSGSIZE


# ---- AF_UNIX -------------------------------------------------------------------

def test_unix_stream_path(cls, tmp_path):
    path = str(tmp_path / "sock")
    a, b = unix_pair(cls, path)
    with closing(a, b):
        assert a.getpeername() == path and b.getsockname() == path
        assert a.getsockname() == ""
        a.sendall(b"over unix")
        assert b.recv(100) == b"over unix"


def test_unix_abstract_namespace(cls):
    name = b"\0fastsock-test-%d-%d" % (os.getpid(), id(cls))
    a, b = unix_pair(cls, name)
    with closing(a, b):
        assert b.getsockname() == name          # bytes, NUL first
        assert a.getpeername() == name
        b.sendall(b"abstract")
        assert a.recv(100) == b"abstract"


def test_unix_pathlike_and_bytes(cls, tmp_path):
    with cls(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(os.fsencode(tmp_path / "b"))
        assert s.getsockname() == str(tmp_path / "b")


def test_unix_datagrams(cls, tmp_path):
    a = cls(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = cls(socket.AF_UNIX, socket.SOCK_DGRAM)
    with closing(a, b):
        b.settimeout(GUARD)
        a.bind(str(tmp_path / "a"))
        b.bind(str(tmp_path / "b"))
        a.sendto(b"dgram", str(tmp_path / "b"))
        assert b.recvfrom(100) == (b"dgram", str(tmp_path / "a"))


# ---- scatter/gather, ancillary data, files -----------------------------------

def test_sendmsg_recvmsg_into(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        assert a.sendmsg([b"ab", memoryview(b"cde"), bytearray(b"f")]) == 6
        x, y = bytearray(2), bytearray(10)
        n, anc, flags, addr = b.recvmsg_into([x, y])
        assert (n, anc, addr) == (6, [], None)
        assert bytes(x) + bytes(y[:4]) == b"abcdef"
        a.sendall(b"again")
        data, anc, flags, addr = b.recvmsg(100)
        assert (data, anc, addr) == (b"again", [], None)


def test_sendmsg_to_address(cls):
    a, b = udp_pair(cls)
    with closing(a, b):
        assert a.sendmsg([b"to ", b"you"], [], 0, b.getsockname()) == 6
        data, anc, flags, addr = b.recvmsg(100)
        assert (data, addr) == (b"to you", a.getsockname())
        a.sendto(b"0123456789", b.getsockname())
        data, anc, flags, addr = b.recvmsg(4)
        assert data == b"0123" and flags & socket.MSG_TRUNC


def test_pass_descriptors(cls):
    pair = socket.socketpair()
    a = cls(fileno=pair[0].detach())
    b = cls(fileno=pair[1].detach())
    r, w = os.pipe()
    with closing(a, b):
        b.settimeout(GUARD)
        try:
            fds = array.array("i", [r, w, r])   # 12 bytes of data
            a.sendmsg([b"fds"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                  fds)])
            size = socket.CMSG_SPACE(3 * fds.itemsize)
            data, anc, flags, addr = b.recvmsg(10, size)
            assert data == b"fds"
            [(level, kind, raw)] = anc
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            got = array.array("i")
            got.frombytes(raw)
            assert len(got) == 3
            try:
                os.write(got[1], b"through the passed fd")
                assert os.read(r, 100) == b"through the passed fd"
            finally:
                for fd in got:
                    os.close(fd)
        finally:
            os.close(r)
            os.close(w)


@pytest.fixture
def data_file(tmp_path):
    payload = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(payload)
    return path, payload


@pytest.mark.parametrize("offset, count", [(0, None), (1000, None),
                                           (1000, 5000), (0, 1)])
def test_sendfile(cls, data_file, offset, count):
    path, payload = data_file
    a, b = tcp_pair(cls)
    with closing(a, b), open(path, "rb") as f:
        reader = Reader(b)
        reader.start()
        sent = a.sendfile(f, offset, count)
        want = payload[offset:offset + count if count else None]
        assert sent == len(want)
        assert f.tell() == offset + sent
        a.shutdown(socket.SHUT_WR)
        assert reader.result() == want


def test_sendfile_not_a_regular_file(cls, data_file):
    path, payload = data_file
    a, b = tcp_pair(cls)
    with closing(a, b):
        reader = Reader(b)
        reader.start()
        assert a.sendfile(io.BytesIO(payload), 10, 100) == 100
        a.shutdown(socket.SHUT_WR)
        assert reader.result() == payload[10:110]


def test_sendfile_errors(cls, data_file):
    path, _ = data_file
    a, b = tcp_pair(cls)
    with closing(a, b):
        with open(path, "r") as text:
            with pytest.raises(ValueError):
                a.sendfile(text)
        with open(path, "rb") as f:
            with pytest.raises(ValueError):
                a.sendfile(f, count=0)
            with pytest.raises(TypeError):
                a.sendfile(f, count="1")
            a.settimeout(0)
            with pytest.raises(ValueError):
                a.sendfile(f)
    u, v = udp_pair(cls)
    with closing(u, v), open(path, "rb") as f:
        with pytest.raises(ValueError):
            u.sendfile(f)


def test_makefile(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        with a.makefile("wb") as w, b.makefile("rb") as r:
            w.write(b"line one\nline two\n")
            w.flush()
            assert r.readline() == b"line one\n"
            assert r.readline() == b"line two\n"
        f = b.makefile("r", encoding="utf-8")
        b.close()                               # the file keeps it open
        a.sendall("héllo\n".encode())
        assert f.readline() == "héllo\n"
        f.close()
        assert b.fileno() == -1


# ---- readiness -----------------------------------------------------------------

def test_fileno_with_selectors_and_select(cls):
    a, b = tcp_pair(cls)
    with closing(a, b), selectors.DefaultSelector() as sel:
        sel.register(b, selectors.EVENT_READ)   # takes the object itself
        assert sel.select(0) == []
        a.sendall(b"ready")
        events = sel.select(GUARD)
        assert [key.fileobj for key, _ in events] == [b]
        r, w, _ = select.select([b], [a], [], GUARD)
        assert r == [b] and w == [a]
        assert b.recv(10) == b"ready"
        sel.unregister(b)


def test_asyncio_sock_calls(cls):
    import asyncio
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(a, b"via asyncio")
            return await asyncio.wait_for(loop.sock_recv(b, 100), GUARD)
        assert asyncio.run(main()) == b"via asyncio"


# ---- signals and threads -----------------------------------------------------

@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timeout"])
def test_signal_handler_that_raises_interrupts_recv(cls, timeout):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.settimeout(timeout)
        start = time.monotonic()
        with signal_raises(0.1), pytest.raises(Interrupted):
            a.recv(10)
        assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timeout"])
def test_signal_handler_that_returns_lets_recv_go_on(cls, timeout):
    """PEP 475: the call is retried after the handler, and returns the data
    that arrives later."""
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.settimeout(timeout)
        calls = []
        sender = threading.Timer(0.3, b.sendall, (b"after the signal",))
        sender.start()
        try:
            with on_alarm(0.05, lambda *args: calls.append(1)):
                data = a.recv(100)
        finally:
            sender.join()
        assert calls, "the signal handler did not run"
        assert data == b"after the signal"


def test_signal_interrupts_blocked_sendall(cls):
    a, b = tcp_pair(cls)
    # Made before the alarm is set: a signal that lands while Python builds
    # it is handled only after the next call returns, which here is never
    # (under ASan on a loaded machine, building 64 MiB took long enough).
    data = b"x" * (64 * 2 ** 20)
    with closing(a, b):
        a.settimeout(None)
        with signal_raises(0.2), pytest.raises(Interrupted):
            a.sendall(data)                     # the peer never reads


def test_other_threads_run_while_one_blocks(cls):
    a, b = tcp_pair(cls)
    with closing(a, b):
        a.settimeout(GUARD)
        result = []
        blocked = threading.Thread(target=lambda: result.append(a.recv(10)))
        blocked.start()
        # This thread keeps running Python code while the other waits in
        # recv(): the GIL is released there.
        count = 0
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            count += 1
        assert count > 10_000
        b.sendall(b"done")
        blocked.join(GUARD)
        assert result == [b"done"]


def test_blocked_thread_does_not_stop_main(cls):
    a, b = tcp_pair(cls)
    c, d = tcp_pair(cls)
    with closing(a, b, c, d):
        got = []
        t = threading.Thread(target=lambda: got.append(a.recv(10)))
        t.start()
        for i in range(200):                    # the main thread's traffic
            c.sendall(b"%03d" % i)
            assert d.recv(3) == b"%03d" % i
        b.sendall(b"end")
        t.join(GUARD)
        assert got == [b"end"]
