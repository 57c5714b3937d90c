"""fastsock.Stream: every read and write of the contract, frames, timeouts,
EOF, threads, bad input.  Every blocking call has a timeout so a bug fails
the test instead of hanging the suite."""
import array
import errno
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsock
from fastsock import (Error, FrameTooLargeError, IncompleteReadError,
                      LimitOverrunError, Stream)

T = 5.0          # seconds: the bound on any call that could hang on a bug


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


@pytest.fixture
def pair():
    """(fastsock Stream, stdlib socket) connected over AF_UNIX."""
    made = []

    def make(buffer_size=65536, max_frame=16 * 2**20, timeout=T):
        a, b = socket.socketpair()
        a.settimeout(timeout)
        b.settimeout(T)
        s = Stream(a, buffer_size=buffer_size, max_frame=max_frame)
        made.append((s, b))
        return s, b

    yield make
    for s, b in made:
        s.close()
        b.close()


@pytest.fixture
def tcp_pair():
    """(fastsock Stream, stdlib socket) connected over loopback TCP."""
    made = []

    def make(buffer_size=65536, timeout=T):
        with socket.create_server(("127.0.0.1", 0)) as srv:
            c = socket.create_connection(srv.getsockname(), timeout=T)
            p, _ = srv.accept()
        p.settimeout(T)
        c.settimeout(timeout)
        s = Stream(c, buffer_size=buffer_size)
        made.append((s, p))
        return s, p

    yield make
    for s, p in made:
        s.close()
        p.close()


def later(delay, fn, *args):
    """Runs fn(*args) on a thread after `delay` seconds."""
    t = threading.Timer(delay, fn, args)
    t.start()
    return t


def drain(sock, n):
    """Reads exactly n bytes from a stdlib socket."""
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


# ---- construction and io.BufferedIOBase ----------------------------------

def test_is_a_buffered_io(pair):
    s, _ = pair()
    assert isinstance(s, io.BufferedIOBase)
    assert isinstance(s, io.IOBase)
    assert s.readable() and s.writable() and not s.seekable()
    assert not s.isatty()
    assert s.mode == "rwb"
    assert s.fileno() == s.socket.fileno() >= 0
    assert s.buffer_size == 65536
    assert s.max_frame == 16 * 2**20
    with pytest.raises(io.UnsupportedOperation):
        s.tell()
    with pytest.raises(io.UnsupportedOperation):
        s.seek(0)


def test_takes_over_a_stdlib_socket():
    a, b = socket.socketpair()
    a.settimeout(2.5)
    fd = a.fileno()
    s = Stream(a)
    try:
        assert a.fileno() == -1             # detached
        assert s.fileno() == fd
        assert isinstance(s.socket, fastsock.Socket)
        assert s.timeout == 2.5
    finally:
        s.close()
        b.close()


@pytest.mark.parametrize("kwargs, exc", [
    (dict(buffer_size=15), ValueError),
    (dict(buffer_size=-1), ValueError),
    (dict(max_frame=-1), ValueError),
    (dict(max_frame=2**32), ValueError),
    (dict(max_frame="1"), TypeError),
    (dict(buffer_size="1"), TypeError),
])
def test_bad_arguments(kwargs, exc):
    a, b = socket.socketpair()
    try:
        with pytest.raises(exc):
            Stream(a, **kwargs)
        assert a.fileno() >= 0      # a refused socket is not taken over
    finally:
        a.close()
        b.close()


def test_bad_sockets():
    with pytest.raises(TypeError):
        Stream(3)
    with pytest.raises(TypeError):
        Stream(None)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError):
            Stream(u)
    finally:
        u.close()
    f = fastsock.Socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError):
            Stream(f)
    finally:
        f.close()
    c = fastsock.Socket()
    c.close()
    with pytest.raises(OSError) as e:
        Stream(c)
    assert e.value.errno == errno.EBADF


def test_init_twice_and_pickle(pair):
    s, _ = pair()
    with pytest.raises(RuntimeError):
        s.__init__(s.socket)
    import pickle
    with pytest.raises(TypeError):
        pickle.dumps(s)


# ---- reads ---------------------------------------------------------------

def test_read_sizes(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"0123456789" * 30)
    assert s.read(0) == b""
    assert s.read(5) == b"01234"
    assert s.read(100) == (b"56789" + b"0123456789" * 10)[:100]
    b.shutdown(socket.SHUT_WR)
    rest = s.read()
    assert len(rest) == 300 - 105
    assert s.read() == b""
    assert s.read(10) == b""
    assert s.read(None) == b""


def test_read_to_eof_grows_past_the_buffer(pair):
    s, b = pair(buffer_size=64)
    data = os.urandom(100_000)
    t = later(0, lambda: (b.sendall(data), b.shutdown(socket.SHUT_WR)))
    assert s.read(-1) == data
    t.join()


def test_read_short_at_eof(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"x" * 1000)
    b.shutdown(socket.SHUT_WR)
    assert s.read(5000) == b"x" * 1000        # larger than the buffer
    s2, b2 = pair(buffer_size=64)
    b2.sendall(b"y" * 30)
    b2.shutdown(socket.SHUT_WR)
    assert s2.read(50) == b"y" * 30           # within the buffer


def test_read1_takes_buffered_bytes_first(pair):
    s, b = pair()
    b.sendall(b"abc")
    assert s.peek() == b"abc"
    b.sendall(b"def")
    time.sleep(0.05)
    assert s.read1(100) == b"abc"             # no receive: only buffered
    assert s.read1(100) == b"def"
    assert s.read1(0) == b""
    b.sendall(b"ghij")
    assert s.read1(2) == b"gh"
    assert s.read1() == b"ij"
    b.shutdown(socket.SHUT_WR)
    assert s.read1(10) == b""


def test_read1_large_is_one_receive(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"z" * 500)
    got = s.read1(1000)
    assert 0 < len(got) <= 500 and set(got) == {ord("z")}
    b.sendall(b"w" * 300)
    got = s.read1(2**40)                  # capped, never a huge allocation
    assert 0 < len(got) <= 300 and set(got) == {ord("w")}


@pytest.mark.parametrize("make", [bytearray, lambda n: memoryview(bytearray(n)),
                                  lambda n: array.array("b", bytes(n))])
def test_readinto_kinds(pair, make):
    s, b = pair(buffer_size=64)
    data = os.urandom(1000)
    b.sendall(data)
    buf = make(1000)
    assert s.readinto(buf) == 1000
    assert bytes(buf) == data


@pytest.mark.leaky_import
def test_readinto_numpy(pair):
    import numpy as np
    s, b = pair()
    b.sendall(bytes(range(256)) * 4)
    arr = np.zeros(1024, dtype=np.uint8)
    assert s.readinto(arr) == 1024
    assert arr.tobytes() == bytes(range(256)) * 4


def test_readinto_stops_only_at_eof(pair):
    s, b = pair(buffer_size=64)
    t = later(0.05, lambda: (b.sendall(b"a" * 10), time.sleep(0.05),
                             b.sendall(b"b" * 10), b.shutdown(socket.SHUT_WR)))
    buf = bytearray(100)
    assert s.readinto(buf) == 20
    assert buf[:20] == b"a" * 10 + b"b" * 10
    assert s.readinto(buf) == 0
    t.join()


def test_readinto1_one_receive(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"12345")
    buf = bytearray(1000)
    assert s.readinto1(buf) == 5
    assert buf[:5] == b"12345"
    b.sendall(b"678")
    assert s.peek() == b"678"
    b.sendall(b"9")
    time.sleep(0.05)
    assert s.readinto1(buf) == 3              # buffered only, no receive


def test_readinto_16mib_without_a_copy(pair):
    # A read bigger than the buffer goes straight into the destination: no
    # allocation near its size may appear while it runs.
    s, b = pair()
    size = 16 * 2**20
    data = os.urandom(size)
    dest = bytearray(size)
    t = threading.Thread(target=b.sendall, args=(data,))
    tracemalloc.start()
    try:
        t.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        assert s.readinto(dest) == size
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        t.join()
    assert dest == data
    assert peak < 1 * 2**20, f"peak {peak} bytes during a 16 MiB readinto"


def test_readinto_rejects_bad_buffers(pair):
    s, b = pair()
    with pytest.raises(TypeError):
        s.readinto(b"read-only")
    with pytest.raises(TypeError):
        s.readinto(memoryview(bytearray(10))[::2])
    with pytest.raises(TypeError):
        s.readinto(None)


def test_readexactly(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"a" * 50)
    later(0.05, b.sendall, b"b" * 50)
    assert s.readexactly(0) == b""
    assert s.readexactly(60) == b"a" * 50 + b"b" * 10
    big = os.urandom(10_000)                  # larger than the buffer
    b.sendall(big)
    assert s.readexactly(40) == b"b" * 40
    assert s.readexactly(10_000) == big
    with pytest.raises(ValueError):
        s.readexactly(-1)
    with pytest.raises(TypeError):
        s.readexactly("3")


@pytest.mark.parametrize("n", [30, 5000])
def test_readexactly_eof(pair, n):
    s, b = pair(buffer_size=64)
    b.sendall(b"q" * 20)
    b.shutdown(socket.SHUT_WR)
    with pytest.raises(IncompleteReadError) as e:
        s.readexactly(n)
    assert e.value.partial == b"q" * 20
    assert e.value.expected == n
    assert isinstance(e.value, EOFError) and isinstance(e.value, Error)
    assert s.read() == b""


def test_readline(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"one\ntwo\nthree")
    assert s.readline() == b"one\n"
    assert s.readline(2) == b"tw"
    assert s.readline(10) == b"o\n"
    assert s.readline(0) == b""
    b.shutdown(socket.SHUT_WR)
    assert s.readline() == b"three"
    assert s.readline() == b""


def test_readline_longer_than_the_buffer(pair):
    s, b = pair(buffer_size=64)
    long = b"L" * 10_000 + b"\n"
    b.sendall(long + b"short\n")
    assert s.readline() == long
    assert s.readline() == b"short\n"
    b.sendall(b"M" * 500 + b"\n")
    assert s.readline(100) == b"M" * 100


def test_readuntil(pair):
    s, b = pair(buffer_size=64)
    b.sendall(b"abc\r\n\r\nbody")
    assert s.readuntil(b"\r\n\r\n") == b"abc\r\n\r\n"
    b.sendall(b"--\n")
    assert s.readuntil() == b"body--\n"
    # A separator split across receives.
    b.sendall(b"x" * 100 + b"EN")
    later(0.05, b.sendall, b"D!")
    assert s.readuntil(b"END") == b"x" * 100 + b"END"
    assert s.read(1) == b"!"


def test_readuntil_limit_overrun_keeps_the_data(pair):
    s, b = pair(buffer_size=64)
    data = b"y" * 300
    b.sendall(data)
    with pytest.raises(LimitOverrunError) as e:
        s.readuntil(b"\n", limit=100)
    assert e.value.consumed > 100
    assert isinstance(e.value, ValueError)
    b.sendall(b"\nrest")
    # Found, but beyond the limit: still an error, still readable.
    with pytest.raises(LimitOverrunError) as e:
        s.readuntil(b"\n", limit=100)
    assert e.value.consumed > 100
    assert s.readuntil(b"\n", limit=1000) == data + b"\n"
    assert s.read(4) == b"rest"


def test_readuntil_limit_larger_than_the_buffer(pair):
    s, b = pair(buffer_size=64)
    data = b"z" * 5000 + b"|"
    later(0, b.sendall, data)
    assert s.readuntil(b"|", limit=10_000) == data


def test_readuntil_eof(pair):
    s, b = pair()
    b.sendall(b"no separator")
    b.shutdown(socket.SHUT_WR)
    with pytest.raises(IncompleteReadError) as e:
        s.readuntil(b"\n")
    assert e.value.partial == b"no separator"
    assert e.value.expected is None


def test_readuntil_bad_arguments(pair):
    s, _ = pair()
    with pytest.raises(ValueError):
        s.readuntil(b"")
    with pytest.raises(ValueError):
        s.readuntil(b"\n", limit=0)
    with pytest.raises(TypeError):
        s.readuntil("\n")


def test_peek(pair):
    s, b = pair()
    b.sendall(b"hello")
    assert s.peek() == b"hello"
    assert s.peek(2) == b"hello"              # all buffered, not consumed
    assert s.read(5) == b"hello"
    b.shutdown(socket.SHUT_WR)
    assert s.peek() == b""


def test_iteration_and_readlines(pair):
    s, b = pair(buffer_size=64)
    lines = [b"a" * n + b"\n" for n in (0, 1, 63, 64, 65, 200, 3)]
    b.sendall(b"".join(lines) + b"tail")
    b.shutdown(socket.SHUT_WR)
    got = []
    for line in s:
        got.append(line)
        if len(got) == 2:
            break
    got += s.readlines()
    assert got == lines + [b"tail"]
    assert list(s) == []


def test_readlines_hint(pair):
    s, b = pair()
    b.sendall(b"aa\nbb\ncc\ndd\n")
    b.shutdown(socket.SHUT_WR)
    assert s.readlines(4) == [b"aa\n", b"bb\n"]
    assert s.readlines() == [b"cc\n", b"dd\n"]


@pytest.mark.parametrize("bad", ["1", 1.5, b"x"])
def test_bad_sizes(pair, bad):
    s, _ = pair()
    for call in (s.read, s.read1, s.readline, s.readlines):
        with pytest.raises(TypeError):
            call(bad)


# ---- writes --------------------------------------------------------------

def test_small_writes_wait_for_flush(pair):
    s, b = pair()
    assert s.write(b"abc") == 3
    assert s.write(bytearray(b"de")) == 2
    assert s.write(memoryview(b"f")) == 1
    assert s.write(array.array("b", b"g")) == 1
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(10)                            # gathered, not sent yet
    s.flush()
    b.settimeout(T)
    assert drain(b, 7) == b"abcdefg"


def test_large_write_goes_out_with_the_pending_bytes(pair):
    s, b = pair(buffer_size=64)
    s.write(b"head-")
    big = os.urandom(100_000)
    t = threading.Thread(target=lambda: out.append(drain(b, 100_005)))
    out = []
    t.start()
    assert s.write(big) == 100_000
    t.join(T)
    assert out == [b"head-" + big]


def test_write_that_overflows_goes_in_order(pair):
    s, b = pair(buffer_size=64)
    parts = [bytes([65 + i % 26]) * (i * 7 % 50 + 1) for i in range(200)]
    for p in parts:
        s.write(p)
    s.flush()
    assert drain(b, sum(map(len, parts))) == b"".join(parts)


def test_writelines(pair):
    s, b = pair()
    s.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
    s.writelines(x for x in [b"d"])
    s.flush()
    assert drain(b, 4) == b"abcd"


def test_write_rejects_bad_input(pair):
    s, _ = pair()
    for bad in ("text", None, 3):
        with pytest.raises(TypeError):
            s.write(bad)
    with pytest.raises(BufferError):    # not C-contiguous: as the stdlib
        s.write(memoryview(b"abcd")[::2])
    with pytest.raises(TypeError):
        s.writelines([b"ok", "text"])


def test_request_response_without_flush(tcp_pair):
    # The read flushes the request before it waits for the answer.
    s, p = tcp_pair()

    def echo():
        with p.makefile("rwb") as f:
            for line in f:
                f.write(line.upper())
                f.flush()
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    for i in range(50):
        s.write(b"ping %d\n" % i)
        assert s.readline() == b"PING %d\n" % i
    s.write(b"x" * 200_000 + b"\n")           # larger than both buffers
    assert s.readline() == b"X" * 200_000 + b"\n"
    s.send_frame(b"abc")
    s.write(b"\n")
    assert s.readexactly(8) == b"\x00\x00\x00\x03ABC\n"
    s.close()
    t.join(T)


def test_request_response_without_flush_nonblocking_socket(pair):
    s, b = pair(timeout=T)
    s.write(b"question")
    later(0.05, lambda: (drain(b, 8), b.sendall(b"answer")))
    assert s.readexactly(6) == b"answer"


def test_write_eof(pair):
    s, b = pair()
    s.write(b"last words")
    s.write_eof()
    assert drain(b, 100) == b"last words"     # then EOF
    b.sendall(b"reply")
    assert s.read(5) == b"reply"              # the read side stays open


def test_sendfile(pair):
    s, b = pair()
    body = os.urandom(300_000)
    with tempfile.TemporaryFile() as f:
        f.write(body)
        f.flush()
        f.seek(0)
        s.write(b"header:")
        out = []
        t = threading.Thread(target=lambda: out.append(drain(b, 7 + len(body))))
        t.start()
        assert s.sendfile(f) == len(body)
        t.join(T)
    assert out == [b"header:" + body]


def test_peer_reset_surfaces_on_write(pair):
    s, b = pair()
    b.close()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(100):
            s.write(b"x" * 100_000)
            s.flush()


def test_read_keeps_the_answer_when_the_flush_fails(tcp_pair):
    # The peer answers and closes before our pending bytes go out: the
    # read still returns the answer, the next flush reports the failure.
    s, p = tcp_pair()
    p.sendall(b"bye\n")
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close()                                  # RST
    time.sleep(0.05)
    s.write(b"late")
    try:
        line = s.readline()
    except ConnectionResetError:
        return                                 # the reset won the race
    assert line in (b"bye\n", b"")
    with pytest.raises(OSError):
        s.write(b"more" * 50_000)
        s.flush()


def test_write_timeout_loses_nothing(pair):
    # A write that times out keeps its unsent rest; flush() sends it once.
    s, b = pair(buffer_size=1024, timeout=0.2)
    s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = os.urandom(2_000_000)
    with pytest.raises(TimeoutError):
        s.write(data)
    out = []
    t = threading.Thread(target=lambda: out.append(drain(b, len(data))))
    t.start()
    s.settimeout(T)
    s.flush()
    t.join(T)
    assert out == [data]


def test_tiny_send_buffer(pair):
    s, b = pair(buffer_size=128)
    s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
    frames = [os.urandom(n) for n in range(0, 3000, 37)]
    out = []
    t = threading.Thread(target=lambda: out.append(
        drain(b, sum(len(f) + 4 for f in frames))))
    t.start()
    for f in frames:
        s.send_frame(f)
    s.flush()
    t.join(T)
    assert out == [b"".join(map(frame, frames))]


# ---- close -----------------------------------------------------------------

def test_close_flushes_and_is_idempotent(pair):
    s, b = pair()
    s.write(b"pending")
    s.close()
    assert s.closed
    s.close()
    assert drain(b, 100) == b"pending"
    assert s.socket.fileno() == -1


def test_close_sends_the_last_bytes_at_once_even_if_the_socket_lives_on():
    # A duplicated descriptor (or one a child inherited) keeps the socket
    # open past close(): the last bytes must still leave now, not when a
    # kernel timer fires (as they would if sent with MSG_MORE).
    with socket.create_server(("127.0.0.1", 0)) as lst:
        with socket.create_connection(lst.getsockname(), timeout=T) as peer:
            conn, _ = lst.accept()
            keep = os.dup(conn.fileno())
            try:
                stream = fastsock.Stream(conn)
                stream.write(b"last words")
                start = time.monotonic()
                stream.close()
                peer.settimeout(T)
                assert peer.recv(100) == b"last words"
                assert time.monotonic() - start < 0.15   # the timer: ~0.2 s
            finally:
                os.close(keep)


def test_closed_stream_raises_value_error(pair):
    s, _ = pair()
    s.close()
    calls = [
        lambda: s.read(), lambda: s.read(1), lambda: s.read1(1),
        lambda: s.readinto(bytearray(1)), lambda: s.readinto1(bytearray(1)),
        lambda: s.readexactly(1), lambda: s.readexactly(0),
        lambda: s.readline(), lambda: s.readuntil(),
        lambda: s.readlines(), lambda: s.peek(), lambda: next(iter(s)),
        lambda: s.write(b"x"), lambda: s.write(b""), lambda: s.writelines([]),
        lambda: s.flush(), lambda: s.write_eof(), lambda: s.send_frame(b"x"),
        lambda: s.recv_frame(), lambda: s.recv_frame_into(bytearray(4)),
        lambda: s.frames(), lambda: s.fileno(), lambda: s.readable(),
        lambda: s.__enter__(), lambda: s.sendfile(io.BytesIO(b"x")),
        lambda: s.detach(),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def test_frames_iterator_after_close(pair):
    s, b = pair()
    it = s.frames()
    s.close()
    with pytest.raises(ValueError):
        next(it)


def test_context_manager(pair):
    s, b = pair()
    with s as same:
        assert same is s
        s.write(b"bye")
    assert s.closed
    assert drain(b, 3) == b"bye"


def test_detach(pair):
    s, b = pair()
    s.write(b"flushed")
    sock = s.detach()
    try:
        assert s.closed
        assert isinstance(sock, fastsock.Socket) and sock.fileno() >= 0
        assert drain(b, 7) == b"flushed"
    finally:
        sock.close()


def test_unclosed_stream_warns_and_flushes():
    a, b = socket.socketpair()
    s = Stream(a)
    s.write(b"from __del__")
    with pytest.warns(ResourceWarning):
        del s
        import gc
        gc.collect()
    b.settimeout(T)
    assert drain(b, 100) == b"from __del__"
    b.close()


@pytest.mark.parametrize("buffer_size", [16, 65536])
def test_threads_contending_for_each_side_lose_and_tear_nothing(buffer_size):
    # Four writers and four readers on one stream pair: each side's lock is
    # taken and passed between threads that wait for it; every frame must
    # arrive whole, once.  A 16-byte buffer sends every frame through the
    # slow paths.
    a, b = fastsock.socketpair(buffer_size=buffer_size)
    a.settimeout(T)
    b.settimeout(T)
    writers, readers, count = 4, 4, 300
    got, errors = [], []

    def write(w):
        try:
            for i in range(count):
                a.send_frame(struct.pack("!II", w, i) + b"x" * (i % 40))
                if i % 3 == 0:
                    a.flush()
            a.flush()
        except BaseException as exc:
            errors.append(exc)

    def read():
        try:
            mine = [b.recv_frame() for _ in range(writers * count // readers)]
            got.extend(mine)
        except BaseException as exc:
            errors.append(exc)

    threads = ([threading.Thread(target=write, args=(w,)) for w in range(writers)]
               + [threading.Thread(target=read) for _ in range(readers)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(4 * T)
    try:
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        frames = sorted(struct.unpack("!II", f[:8]) + (len(f),) for f in got)
        assert frames == sorted((w, i, 8 + i % 40) for w in range(writers)
                                for i in range(count))
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("op", ["readexactly", "frames", "readline", "readinto"])
def test_close_from_another_thread_wakes_a_blocked_read(pair, op):
    s, b = pair(timeout=None)
    result = []

    def reader():
        try:
            if op == "readexactly":
                s.readexactly(10)
            elif op == "frames":
                list(s.frames())
            elif op == "readline":
                s.readline()
            else:
                s.readinto(bytearray(1 << 20))
            result.append("returned")
        except (OSError, EOFError, ValueError) as exc:
            result.append(exc)
    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    assert t.is_alive()
    fd = s.socket.fileno()
    assert fd >= 0
    s.close()
    t.join(T)
    assert not t.is_alive(), "close() did not wake the reader"
    assert result
    assert s.socket.fileno() == -1           # closed once the call ended
    # The number was released only after the call ended: no crash, and a
    # new descriptor may now reuse it.
    again = socket.socket()
    again.close()


def test_close_from_another_thread_wakes_a_blocked_write(pair):
    s, b = pair(timeout=None)
    s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    result = []

    def writer():
        try:
            s.write(b"w" * 10_000_000)
            result.append("returned")
        except (OSError, ValueError) as exc:
            result.append(exc)
    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.1)
    assert t.is_alive()
    s.close()
    t.join(T)
    assert not t.is_alive()
    assert result and isinstance(result[0], OSError)


# ---- frames ----------------------------------------------------------------

def test_frames_roundtrip():
    a, b = fastsock.socketpair(buffer_size=64)
    a.settimeout(T)
    b.settimeout(T)
    try:
        payloads = [b"", b"x", os.urandom(59), os.urandom(60), os.urandom(61),
                    os.urandom(1000), os.urandom(100_000)]
        t = threading.Thread(target=lambda: ([a.send_frame(p) for p in payloads],
                                             a.write_eof()))
        t.start()
        assert b.recv_frame() == payloads[0]
        buf = bytearray(200_000)
        n = b.recv_frame_into(buf)
        assert buf[:n] == payloads[1]
        assert list(b.frames()) == payloads[2:]
        with pytest.raises(EOFError):
            b.recv_frame()
        with pytest.raises(EOFError):
            b.recv_frame_into(buf)
        t.join(T)
    finally:
        a.close()
        b.close()


def test_send_frame_kinds(pair):
    s, b = pair(buffer_size=64)
    s.send_frame(b"bytes")
    s.send_frame(bytearray(b"bytearray"))
    s.send_frame(memoryview(b"view"))
    s.send_frame([b"a", bytearray(b"b"), memoryview(b"c")])
    s.send_frame((b"tu", b"ple"))
    s.send_frame(x for x in (b"ge", b"n"))
    s.send_frame([])
    s.send_frame([b"p%d" % i for i in range(20)])      # past the stack array
    s.send_frame([b"big", os.urandom(500)])              # past the buffer
    s.flush()
    expect = [b"bytes", b"bytearray", b"view", b"abc", b"tuple", b"gen", b"",
              b"".join(b"p%d" % i for i in range(20))]
    data = drain(b, sum(len(e) + 4 for e in expect) + 507)
    assert data.startswith(b"".join(map(frame, expect)))
    assert struct.unpack(">I", data[-507:-503])[0] == 503


def test_send_frame_rejects_bad_input(pair):
    s, _ = pair()
    for bad in ("text", 5, None, [b"ok", "text"], [b"ok", 3]):
        with pytest.raises(TypeError):
            s.send_frame(bad)
    s.send_frame(b"after")                     # the stream is still usable


def test_send_frame_above_max_frame_sends_nothing(pair):
    s, b = pair(max_frame=100)
    with pytest.raises(FrameTooLargeError):
        s.send_frame(b"x" * 101)
    with pytest.raises(FrameTooLargeError):
        s.send_frame([b"x" * 60, b"y" * 41])
    s.send_frame(b"x" * 100)
    s.flush()
    assert drain(b, 104) == frame(b"x" * 100)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)


def test_huge_header_fails_at_once_without_allocating(pair):
    s, b = pair()
    b.sendall(b"\xff\xff\xff\xff" + b"x" * 100)
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(FrameTooLargeError):
            s.recv_frame()
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 2**20
    # Framing is broken for good; other reads still work.
    for call in (s.recv_frame, lambda: s.recv_frame_into(bytearray(10)),
                 lambda: next(s.frames())):
        with pytest.raises(Error):
            call()
    assert s.read(4) == b"\xff\xff\xff\xff"


def test_huge_header_in_frames_iterator(pair):
    s, b = pair(max_frame=1000)
    b.sendall(frame(b"ok") + struct.pack(">I", 1001) + b"z" * 1001)
    it = s.frames()
    assert next(it) == b"ok"
    with pytest.raises(FrameTooLargeError):
        next(it)
    with pytest.raises(Error):
        next(it)


def test_huge_header_in_recv_frame_into(pair):
    s, b = pair()
    b.sendall(b"\x80\x00\x00\x00")
    with pytest.raises(FrameTooLargeError):
        s.recv_frame_into(bytearray(10))


def test_recv_frame_into_too_small_leaves_the_frame(pair):
    s, b = pair(buffer_size=64)
    b.sendall(frame(b"0123456789") + frame(os.urandom(300)))
    with pytest.raises(ValueError):
        s.recv_frame_into(bytearray(9))
    assert s.recv_frame() == b"0123456789"
    with pytest.raises(ValueError):
        s.recv_frame_into(bytearray(299))
    buf = bytearray(300)
    assert s.recv_frame_into(buf) == 300
    with pytest.raises(TypeError):
        s.recv_frame_into(b"read-only")


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_eof_inside_a_header(pair, cut):
    s, b = pair()
    b.sendall(frame(b"whole") + frame(b"abc")[:cut])
    b.shutdown(socket.SHUT_WR)
    assert s.recv_frame() == b"whole"
    with pytest.raises(IncompleteReadError) as e:
        s.recv_frame()
    assert e.value.partial == frame(b"abc")[:cut]
    assert e.value.expected == 4
    with pytest.raises(EOFError):
        s.recv_frame()


@pytest.mark.parametrize("size", [50, 5000])
@pytest.mark.parametrize("how", ["recv_frame", "recv_frame_into", "frames"])
def test_eof_inside_a_payload(pair, size, how):
    s, b = pair(buffer_size=64)
    payload = os.urandom(size)
    b.sendall(frame(payload)[:4 + size // 2])
    b.shutdown(socket.SHUT_WR)
    with pytest.raises(IncompleteReadError) as e:
        if how == "recv_frame":
            s.recv_frame()
        elif how == "frames":
            list(s.frames())
        else:
            s.recv_frame_into(bytearray(size))
    assert e.value.partial == payload[:size // 2]
    assert e.value.expected == size


def test_frame_iterator_needs_a_stream(pair):
    s, b = pair()
    with pytest.raises(TypeError):
        fastsock.FrameIterator()
    with pytest.raises(TypeError):
        fastsock.FrameIterator(None)
    with pytest.raises(TypeError):
        fastsock.FrameIterator.__new__(fastsock.FrameIterator)
    b.sendall(frame(b"direct"))
    assert next(fastsock.FrameIterator(s)) == b"direct"


def test_uninitialised_stream_is_closed():
    s = Stream.__new__(Stream)
    assert s.closed
    for call in (s.read, s.readline, s.recv_frame, lambda: s.write(b"x"),
                 lambda: next(s)):
        with pytest.raises(ValueError):
            call()
    s.close()


def test_frames_ends_at_clean_eof(pair):
    s, b = pair()
    b.sendall(frame(b"1") + frame(b"22"))
    b.shutdown(socket.SHUT_WR)
    it = s.frames()
    assert iter(it) is it
    assert list(it) == [b"1", b"22"]
    assert list(it) == []


# ---- timeouts never lose data ------------------------------------------------

READS = {
    "read": (lambda s, n: s.read(n)),
    "readexactly": (lambda s, n: s.readexactly(n)),
    "readinto": (lambda s, n: (lambda b: bytes(b[:s.readinto(b)]))(bytearray(n))),
    "readline": (lambda s, n: s.readline()),
    "readuntil": (lambda s, n: s.readuntil(b"\n", limit=1 << 20)),
    "iter": (lambda s, n: next(s)),
    "recv_frame": (lambda s, n: s.recv_frame()),
    "recv_frame_into": (lambda s, n: (lambda b: bytes(b[:s.recv_frame_into(b)]))(bytearray(n))),
    "frames": (lambda s, n: next(s.frames())),
}


@pytest.mark.parametrize("size", [40, 3000])
@pytest.mark.parametrize("kind", sorted(READS))
def test_timeout_in_the_middle_then_the_rest(pair, kind, size):
    s, b = pair(buffer_size=64, timeout=0.1)
    body = bytes((i * 7 + 1) % 256 for i in range(size - 1)).replace(b"\n", b"-")
    if kind in ("recv_frame", "recv_frame_into", "frames"):
        message, expect = frame(body + b"!"), body + b"!"
    else:
        message = expect = body + b"\n"
    read = READS[kind]
    for cut in (2, len(message) // 2, len(message) - 1):
        b.sendall(message[:cut])
        with pytest.raises(TimeoutError):
            read(s, len(expect))
        b.sendall(message[cut:])
        assert read(s, len(expect)) == expect, (kind, cut)


def test_timeout_in_read_to_eof(pair):
    s, b = pair(buffer_size=64, timeout=0.1)
    b.sendall(b"a" * 500)
    with pytest.raises(TimeoutError):
        s.read()
    b.sendall(b"b" * 500)
    b.shutdown(socket.SHUT_WR)
    assert s.read() == b"a" * 500 + b"b" * 500


def test_timeout_bounds_the_whole_call(pair):
    # Data trickling in below the timeout per piece must not extend it.
    s, b = pair(timeout=0.3)
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.05):
            b.sendall(b"x")
    t = threading.Thread(target=trickle)
    t.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            s.readexactly(1000)
        assert time.monotonic() - t0 < 1.5
    finally:
        stop.set()
        t.join(T)


def test_nonblocking_read_keeps_data(pair):
    s, b = pair(timeout=0)
    b.sendall(b"par")
    with pytest.raises(BlockingIOError):
        s.readexactly(6)
    b.sendall(b"tial")
    time.sleep(0.05)
    assert s.readexactly(6) == b"partia"


def test_settimeout_is_the_sockets(pair):
    s, _ = pair()
    s.settimeout(1.5)
    assert s.timeout == s.gettimeout() == s.socket.gettimeout() == 1.5
    s.settimeout(None)
    assert s.timeout is None
    with pytest.raises(ValueError):
        s.settimeout(-1)


# ---- drain(): graceful shutdown, one message at a time ------------------------

BOUNDARY_READS = {
    "recv_frame": lambda s: s.recv_frame(),
    "frames": lambda s: list(s.frames()),
    "recv_frame_into": lambda s: s.recv_frame_into(bytearray(10)),
    "readline": lambda s: s.readline(),
    "readuntil": lambda s: s.readuntil(b"END"),
    "read(n)": lambda s: s.read(10),
    "read()": lambda s: s.read(),
    "read1": lambda s: s.read1(10),
    "peek": lambda s: s.peek(),
    "readexactly": lambda s: s.readexactly(10),
    "readexactly large": lambda s: s.readexactly(1000),
    "readinto large": lambda s: s.readinto(bytearray(1000)),
}


def read_in_thread(fn, s):
    out = []

    def run():
        try:
            out.append(fn(s))
        except (EOFError, OSError, ValueError) as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def is_eof(result):
    if isinstance(result, IncompleteReadError):
        return result.partial == b""
    return isinstance(result, EOFError) or result in (b"", [], 0)


@pytest.mark.parametrize("timeout", [None, T])
@pytest.mark.parametrize("read", sorted(BOUNDARY_READS))
def test_drain_wakes_a_reader_idle_at_a_boundary_with_eof(tcp_pair, read, timeout):
    s, b = tcp_pair(buffer_size=64, timeout=timeout)
    t, out = read_in_thread(BOUNDARY_READS[read], s)
    time.sleep(0.1)
    assert t.is_alive()
    start = time.monotonic()
    assert s.drain() is True
    t.join(T)
    assert not t.is_alive() and time.monotonic() - start < 2
    assert is_eof(out[0]), out
    s.write(b"and so is ours")       # the sending side stays open
    s.flush()
    assert drain(b, 14) == b"and so is ours"


@pytest.mark.parametrize("read", sorted(BOUNDARY_READS))
def test_drain_lets_a_begun_message_finish_then_ends_the_next_read(pair, read):
    s, b = pair(buffer_size=64)
    messages = {"recv_frame": frame(b"0123456789"), "frames": frame(b"0123456789"),
                "recv_frame_into": frame(b"0123456789"),
                "readline": b"012345678\n", "readuntil": b"0123456END",
                "readexactly large": bytes(1000), "readinto large": bytes(1000)}
    message = messages.get(read, b"0123456789")
    b.sendall(message[:3])
    t, out = read_in_thread(BOUNDARY_READS[read], s)
    time.sleep(0.1)
    assert s.drain() is False               # busy: it holds bytes of one
    time.sleep(0.05)
    b.sendall(message[3:])
    if read == "read()":
        b.shutdown(socket.SHUT_WR)        # read() reads to the real EOF
    t.join(T)
    assert not t.is_alive()
    if read in ("read1", "peek"):         # one receive: what had come
        assert out == [b"012"]
        return
    expected = {"recv_frame": b"0123456789", "frames": [b"0123456789"],
                "recv_frame_into": 10, "readinto large": 1000,
                "read(n)": b"0123456789", "read()": b"0123456789",
                "readexactly": b"0123456789"}
    assert out == [expected.get(read, message)]
    # The next read at the boundary ends at once.
    start = time.monotonic()
    assert is_eof(_eof_of(BOUNDARY_READS[read], s))
    assert time.monotonic() - start < 1


def _eof_of(fn, s):
    try:
        return fn(s)
    except EOFError as exc:
        return exc


def test_drain_serves_what_is_already_in_the_kernel(pair):
    s, b = pair()
    b.sendall(frame(b"one") + frame(b"two"))
    time.sleep(0.05)
    assert s.drain() is False
    assert s.draining
    assert list(s.frames()) == [b"one", b"two"]     # then EOF at once


def test_drain_of_a_closed_stream_does_nothing(pair):
    s, b = pair()
    s.close()
    assert s.drain() is False


# ---- threads and signals --------------------------------------------------------

def test_concurrent_reader_and_writer():
    # One thread writes frames on a stream while another reads the echoes.
    a, b = fastsock.socketpair(buffer_size=256)
    for s in (a, b):
        s.settimeout(T)
    n = 3000
    sent = [os.urandom(i % 700) for i in range(n)]

    def echo():
        for msg in b.frames():
            b.send_frame(msg)
            b.flush()
        b.write_eof()
    got = []

    def reader():
        for msg in a.frames():
            got.append(msg)
            if len(got) == n:
                return
    threads = [threading.Thread(target=echo), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for msg in sent:
        a.send_frame(msg)
    a.flush()
    threads[1].join(2 * T)
    a.write_eof()
    threads[0].join(T)
    a.close()
    b.close()
    assert not any(t.is_alive() for t in threads)
    assert got == sent


def test_full_duplex_bulk_does_not_deadlock():
    # Both ends write a lot while reading: the read-side flush must not wait
    # for the send alone.
    a, b = fastsock.socketpair(buffer_size=1024)
    for s in (a, b):
        s.settimeout(T)
        s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    total = 2_000_000
    errors = []

    def side(s):
        try:
            got = 0
            sent = 0
            while got < total or sent < total:
                if sent < total:
                    s.write(b"d" * 1000)
                    sent += 1000
                if got < total:
                    got += len(s.read1(65536))
            s.flush()
        except Exception as exc:          # pragma: no cover - reported below
            errors.append(exc)
    ts = [threading.Thread(target=side, args=(s,)) for s in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(4 * T)
    a.close()
    b.close()
    assert not errors
    assert not any(t.is_alive() for t in ts)


def signal_main_thread_later(delay):
    """Sends SIGALRM to the main thread after `delay` seconds.  A timer
    signal would go to any thread of the process, and only one delivered to
    the thread blocked in the call interrupts it."""
    main = threading.main_thread().ident
    t = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGALRM))
    t.start()
    return t


needs_pthread_kill = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill") or
    threading.current_thread() is not threading.main_thread(),
    reason="needs signal.pthread_kill and the main thread")


@needs_pthread_kill
def test_signal_during_a_blocking_read_runs_the_handler(pair):
    s, b = pair(timeout=None)
    hits = []
    old = signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
    try:
        t = signal_main_thread_later(0.05)
        data = later(0.3, b.sendall, b"after the signal")
        assert s.readexactly(16) == b"after the signal"
        t.join()
        data.join()
    finally:
        signal.signal(signal.SIGALRM, old)
    assert hits == [1]


def boom(*args):
    raise KeyboardInterrupt


@needs_pthread_kill
def test_signal_during_a_large_readinto_runs_the_handler_at_once(pair):
    # The large read waits for all its bytes in one receive: a signal that
    # cuts it short must still run the handler, and lose nothing.
    s, b = pair(buffer_size=64, timeout=None)
    old = signal.signal(signal.SIGALRM, boom)
    try:
        b.sendall(b"first part")
        t = signal_main_thread_later(0.1)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            s.readinto(bytearray(10_000))
        assert time.monotonic() - t0 < 2
        t.join()
    finally:
        signal.signal(signal.SIGALRM, old)
    b.sendall(b"x" * 9_990)
    buf = bytearray(10_000)
    assert s.readinto(buf) == 10_000
    assert buf == b"first part" + b"x" * 9_990


@needs_pthread_kill
def test_signal_handler_exception_propagates_and_keeps_data(pair):
    s, b = pair(timeout=None)
    old = signal.signal(signal.SIGALRM, boom)
    try:
        b.sendall(b"half")
        t = signal_main_thread_later(0.05)
        with pytest.raises(KeyboardInterrupt):
            s.readexactly(8)
        t.join()
    finally:
        signal.signal(signal.SIGALRM, old)
    b.sendall(b"full")
    assert s.readexactly(8) == b"halffull"


# ---- property tests: a stdlib sender splits at random points ------------------

def send_split(sock, data, cuts, delays):
    """Sends data in pieces cut at `cuts`, sleeping a little between some."""
    pos = 0
    for i, cut in enumerate(sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]):
        if cut > pos:
            sock.sendall(data[pos:cut])
            pos = cut
            if delays and delays[i % len(delays)]:
                time.sleep(0.001)
    sock.shutdown(socket.SHUT_WR)


PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
buffer_sizes = st.sampled_from([64, 100, 1000, 4096, 65536])
cut_points = st.lists(st.integers(min_value=0, max_value=10**6), max_size=30)
delay_flags = st.lists(st.booleans(), max_size=8)


def run_split(buffer_size, data, cuts, delays, receive):
    a, b = socket.socketpair()
    a.settimeout(T)
    b.settimeout(T)
    s = Stream(a, buffer_size=buffer_size)
    t = threading.Thread(target=send_split, args=(b, data, cuts, delays))
    t.start()
    try:
        return receive(s)
    finally:
        t.join(T)
        s.close()
        b.close()


@PROPERTY
@given(payloads=st.lists(st.binary(max_size=3000), max_size=40),
       buffer_size=buffer_sizes, cuts=cut_points, delays=delay_flags,
       how=st.sampled_from(["frames", "recv_frame", "recv_frame_into"]))
def test_property_frames(payloads, buffer_size, cuts, delays, how):
    data = b"".join(map(frame, payloads))

    def receive(s):
        if how == "frames":
            return list(s.frames())
        out = []
        buf = bytearray(3000)
        while True:
            try:
                if how == "recv_frame":
                    out.append(s.recv_frame())
                else:
                    out.append(bytes(buf[:s.recv_frame_into(buf)]))
            except EOFError:
                return out
    assert run_split(buffer_size, data, cuts, delays, receive) == payloads


@PROPERTY
@given(lines=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
                      max_size=60),
       tail=st.binary(max_size=50).map(lambda b: b.replace(b"\n", b"")),
       buffer_size=buffer_sizes, cuts=cut_points, delays=delay_flags,
       how=st.sampled_from(["iter", "readline", "readuntil"]))
def test_property_lines(lines, tail, buffer_size, cuts, delays, how):
    expect = [line + b"\n" for line in lines] + ([tail] if tail else [])
    data = b"".join(expect)

    def receive(s):
        if how == "iter":
            return list(s)
        out = []
        while True:
            if how == "readline":
                line = s.readline()
                if not line:
                    return out
                out.append(line)
            else:
                try:
                    out.append(s.readuntil(b"\n", limit=1 << 20))
                except IncompleteReadError as e:
                    if e.partial:
                        out.append(e.partial)
                    return out
    assert run_split(buffer_size, data, cuts, delays, receive) == expect


@PROPERTY
@given(data=st.binary(min_size=0, max_size=200_000), buffer_size=buffer_sizes,
       cuts=cut_points, delays=delay_flags,
       chunks=st.lists(st.integers(min_value=1, max_value=100_000), min_size=1,
                       max_size=10),
       how=st.sampled_from(["read", "read1", "readinto", "readinto1",
                            "readexactly"]))
def test_property_blobs(data, buffer_size, cuts, delays, chunks, how):
    def receive(s):
        out = bytearray()
        i = 0
        while True:
            n = chunks[i % len(chunks)]
            i += 1
            if how in ("read", "read1"):
                piece = getattr(s, how)(n)
            elif how == "readexactly":
                try:
                    piece = s.readexactly(n)
                except IncompleteReadError as e:
                    out += e.partial
                    return bytes(out)
            else:
                buf = bytearray(n)
                piece = buf[:getattr(s, how)(buf)]
            if not piece:
                return bytes(out)
            out += piece
    assert run_split(buffer_size, data, cuts, delays, receive) == data


@PROPERTY
@given(data=st.binary(max_size=5000), max_frame=st.integers(0, 6000),
       buffer_size=buffer_sizes, cuts=cut_points)
def test_property_garbage_never_crashes(data, max_frame, buffer_size, cuts):
    # Untrusted headers: every outcome is a frame, a clean end or one of the
    # documented errors, and a too-large header stops frame reads for good.
    a, b = socket.socketpair()
    a.settimeout(T)
    b.settimeout(T)
    s = Stream(a, buffer_size=buffer_size, max_frame=max_frame)
    t = threading.Thread(target=send_split, args=(b, data, cuts, []))
    t.start()
    try:
        total = 0
        while True:
            try:
                payload = s.recv_frame()
            except FrameTooLargeError:
                with pytest.raises(Error):
                    s.recv_frame()
                break
            except IncompleteReadError as e:
                assert len(e.partial) < e.expected
                break
            except EOFError:
                assert total == len(data)
                break
            assert len(payload) <= max_frame
            total += 4 + len(payload)
    finally:
        t.join(T)
        s.close()
        b.close()


# ---- memory ------------------------------------------------------------------

LEAK_CHILD = r"""
import os, socket, struct, sys, threading, tracemalloc
import fastsock
a, b = fastsock.socketpair(buffer_size=4096)
payload = struct.pack(">I", 100) + b"p" * 100
N = 100_000
def sender():
    chunk = payload * 500
    for _ in range(N // 500):
        b.write(chunk)
    b.flush()
t = threading.Thread(target=sender)
t.start()
for _ in range(1000):
    a.recv_frame()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
rss0 = rss()
for _ in range(N - 1000):
    a.recv_frame()
after = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
t.join()
print(after - before, rss() - rss0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_memory_growth_over_100k_recv_frame():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", LEAK_CHILD], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    traced, rss = map(int, out.stdout.split())
    assert traced < 64 * 1024, f"{traced} bytes still traced"
    # AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.
    if "asan" not in os.environ.get("LD_PRELOAD", ""):
        assert rss < 4 * 2**20, f"RSS grew by {rss} bytes"
