"""EventServer: one C event loop, a callback per message.

Every test runs on both pollers (epoll and the portable poll() loop, forced
with FASTSOCK_POLLER=poll).  Clients are plain stdlib sockets, so that the
server is not only tested against fastsock's own stream.
"""
import gc
import logging
import os
import resource
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

import fastsock
from socket_support import need_tool, needs_ipv6

HOST = "127.0.0.1"


@pytest.fixture(params=["epoll", "poll"], autouse=True)
def backend(request, monkeypatch):
    monkeypatch.setenv("FASTSOCK_POLLER", request.param)
    return request.param


@contextmanager
def serving(on_message, address=(HOST, 0), **kw):
    server = fastsock.EventServer(address, on_message, **kw).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def client(server, timeout=10):
    sock = socket.create_connection(server.address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    (n,) = struct.unpack(">I", recv_exactly(sock, 4))
    return recv_exactly(sock, n)


def assert_no_frame_within(sock, seconds):
    """Nothing arrives on sock for `seconds`; its timeout is 5 s after."""
    sock.settimeout(seconds)
    with pytest.raises(socket.timeout):
        recv_frame(sock)
    sock.settimeout(5)


def recv_until_eof(sock):
    out = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def echo(conn, message):
    return message


# ---- the backend switch ------------------------------------------------

def test_the_backend_switch_chooses_the_poller(backend):
    with serving(echo) as server:
        expected = "poll" if backend == "poll" else (
            "epoll" if sys.platform.startswith("linux") else "poll")
        assert server.backend == expected


# ---- framings: every split point, many messages per receive --------------

MESSAGES = [b"a", b"", b"hello world", b"x" * 300]


def encoded(framing, messages):
    if framing == "frame":
        return b"".join(frame(m) for m in messages)
    sep = b"\n" if framing == "line" else framing
    return b"".join(m.replace(sep[:1], b"_") + sep for m in messages)


@pytest.mark.parametrize("framing", ["frame", "line", b"\r\n\r\n", b"|"])
def test_messages_split_at_every_byte_boundary(framing):
    got = []
    with serving(lambda conn, m: got.append(m) or m, framing=framing) as server:
        stream = encoded(framing, MESSAGES)
        with client(server) as sock:
            for cut in range(1, len(stream)):
                got.clear()
                sock.sendall(stream[:cut])
                time.sleep(0.0005)          # usually a receive of its own
                sock.sendall(stream[cut:])
                replies = recv_exactly(sock, len(stream))
                assert replies == stream, cut
                expected = ([m for m in MESSAGES] if framing == "frame" else
                            [s + (b"\n" if framing == "line" else framing)
                             for s in encoded(framing, MESSAGES).split(
                                 b"\n" if framing == "line" else framing)[:-1]])
                assert got == expected, cut


@pytest.mark.parametrize("framing", ["frame", "line", b"\r\n"])
def test_many_messages_per_receive_replies_in_order(framing):
    messages = [b"%06d" % i for i in range(5000)]
    with serving(echo, framing=framing) as server:
        stream = encoded(framing, messages)
        with client(server) as sock:
            sock.sendall(stream)
            assert recv_exactly(sock, len(stream)) == stream


def test_raw_framing_hands_over_what_each_receive_brought():
    sizes = []

    def on_message(conn, data):
        sizes.append(len(data))
        return data.upper()

    with serving(on_message, framing="raw") as server:
        payload = os.urandom(200000).hex().encode()
        with client(server) as sock:
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload.upper()
    assert sum(sizes) == len(payload)
    assert all(0 < s <= 65536 for s in sizes)


def test_large_frames_in_both_directions():
    with serving(echo, max_frame=8 << 20) as server:
        with client(server) as sock:
            for size in (0, 1, 65535, 65536, 65537, 3 << 20):
                payload = os.urandom(size)
                sock.sendall(frame(payload))
                assert recv_frame(sock) == payload


def test_a_reply_can_be_a_sequence_of_buffers_and_any_buffer():
    def on_message(conn, m):
        conn.send_frame([b"a", bytearray(b"b"), memoryview(b"cd")])
        conn.sendall_buffers([frame(b"x"), memoryview(frame(b"y" * 10000))])
        conn.send(frame(b"z"))
        return None

    with serving(on_message) as server:
        with client(server) as sock:
            sock.sendall(frame(b"go"))
            assert recv_frame(sock) == b"abcd"
            assert recv_frame(sock) == b"x"
            assert recv_frame(sock) == b"y" * 10000
            assert recv_frame(sock) == b"z"


# ---- callbacks -----------------------------------------------------------

def test_connect_and_close_callbacks_see_each_connection_once():
    events = []
    closed = threading.Event()

    def on_connect(conn):
        conn.context = {"n": 0}
        events.append(("connect", conn.address))

    def on_message(conn, m):
        conn.context["n"] += 1
        return m

    def on_close(conn, exc):
        events.append(("close", conn.context["n"], exc))
        closed.set()

    with serving(on_message, on_connect=on_connect, on_close=on_close) as server:
        with client(server) as sock:
            for i in range(3):
                sock.sendall(frame(b"m"))
                recv_frame(sock)
            name = sock.getsockname()
        assert closed.wait(5)
        assert server.connections == 0
    assert events == [("connect", name), ("close", 3, None)]


def test_a_callback_that_raises_is_logged_and_closes_that_connection_only(caplog):
    def on_message(conn, m):
        if m == b"boom":
            raise ZeroDivisionError("boom")
        return m

    with caplog.at_level(logging.ERROR, logger="fastsock"):
        with serving(on_message) as server:
            with client(server) as good, client(server) as bad:
                good.sendall(frame(b"1"))
                assert recv_frame(good) == b"1"
                bad.sendall(frame(b"ok") + frame(b"boom") + frame(b"never"))
                assert recv_frame(bad) == b"ok"
                assert recv_until_eof(bad) == b""       # closed, nothing more
                good.sendall(frame(b"2"))
                assert recv_frame(good) == b"2"
    assert any("ZeroDivisionError" in r.exc_text for r in caplog.records
               if r.exc_text)


@pytest.mark.parametrize("hook", ["greet", "pause", "close", "raise"])
def test_a_request_waiting_at_accept_is_read_after_on_connect(hook):
    # The loop tries a receive right after accepting: here the request is
    # there already (it waited in the backlog), and on_connect still runs
    # first and decides what happens to it.
    admitted, closed = [], []

    def on_connect(conn):
        admitted.append(conn)
        if len(admitted) < 3:
            return
        if hook == "greet":
            conn.send_frame(b"hello")
        elif hook == "pause":
            conn.pause_reading()
        elif hook == "close":
            conn.close()
        else:
            raise ZeroDivisionError("no")

    def on_message(conn, m):
        if m == b"resume":
            admitted[2].resume_reading()
        return m

    def on_close(conn, exc):
        closed.append((conn, exc))

    with serving(on_message, on_connect=on_connect, on_close=on_close,
                 max_connections=2) as server:
        first, second = client(server), client(server)
        for s in (first, second):
            s.sendall(frame(b"in"))
            assert recv_frame(s) == b"in"
        late = client(server)                    # waits in the backlog
        late.sendall(frame(b"request"))
        first.close()                            # makes room: late is accepted
        if hook == "greet":
            assert recv_frame(late) == b"hello"
            assert recv_frame(late) == b"request"
        elif hook == "pause":
            assert_no_frame_within(late, 0.3)
            second.sendall(frame(b"resume"))
            assert recv_frame(second) == b"resume"
            assert recv_frame(late) == b"request"
        else:
            # Closed with the request unread: the kernel resets rather
            # than ends the connection.  No answer, either way.
            try:
                assert recv_until_eof(late) == b""
            except ConnectionResetError:
                pass
            assert wait_for(lambda: any(c is admitted[2] for c, _ in closed))
            exc = next(e for c, e in closed if c is admitted[2])
            assert (exc is None) if hook == "close" else isinstance(exc, ZeroDivisionError)
        for s in (second, late):
            s.close()


def test_accepted_connections_have_tcp_nodelay():
    # Set once on the listening socket where accepted sockets inherit it
    # (Linux), else on each: either way the server's end has it.  The
    # server's descriptor is found by its peer, the client's address.
    def server_end_nodelay(peer):
        for name in os.listdir("/proc/self/fd"):
            try:
                if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                    continue
                dup = socket.socket(fileno=os.dup(int(name)))
            except OSError:
                continue                         # closed meanwhile
            with dup:
                try:
                    if dup.type == socket.SOCK_STREAM and dup.getpeername() == peer:
                        return dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                except OSError:
                    continue
        raise AssertionError("the server's end was not found")

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to find the server's descriptor")
    with serving(echo) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert recv_frame(sock) == b"x"
            assert server_end_nodelay(sock.getsockname()) != 0
    with serving(echo, nodelay=False) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert recv_frame(sock) == b"x"
            assert server_end_nodelay(sock.getsockname()) == 0


FIRST_PASS_SERVER = """
import sys, fastsock
ended = []
def on_connect(conn):
    print("admitted", flush=True)
def on_message(conn, m):
    conn.close()
    return m
def on_close(conn, exc):
    ended.append(exc)
    if len(ended) == 2:
        server.shutdown(0)
server = fastsock.EventServer(("127.0.0.1", 0), on_message, framing="raw",
                              max_connections=1, on_connect=on_connect,
                              on_close=on_close)
print(server.address[1], flush=True)
server.serve_forever()
"""


@pytest.mark.strace
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="Linux's accepted sockets inherit TCP_NODELAY")
def test_a_connection_answered_in_its_first_pass_never_touches_the_poller(tmp_path):
    # A request waiting at accept is read at once, answered and closed in
    # the same pass: no epoll_ctl (add, modify or delete) and no
    # setsockopt for that connection, only accept, receive, send, close.
    strace = need_tool("strace")
    trace = tmp_path / "trace"
    child = subprocess.Popen(
        [strace, "-qq", "-o", str(trace), sys.executable, "-c", FIRST_PASS_SERVER],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(fastsock.__file__))] + sys.path)))
    try:
        port = int(child.stdout.readline())
        with socket.create_connection((HOST, port), timeout=10) as holder:
            assert child.stdout.readline() == "admitted\n"
            with socket.create_connection((HOST, port), timeout=10) as late:
                late.sendall(b"request")          # waits in the backlog
                holder.sendall(b"x")              # answered, closed: late is accepted
                assert recv_until_eof(holder) == b"x"
                assert recv_until_eof(late) == b"request"
                late_port = late.getsockname()[1]
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    lines = trace.read_text().splitlines()
    accepted = next(i for i, line in enumerate(lines)
                    if line.startswith("accept4(") and f"htons({late_port})" in line)
    fd = lines[accepted].rsplit("= ", 1)[1]
    calls = []
    for line in lines[accepted + 1:]:
        name, _, args = line.partition("(")
        if args.startswith(f"{fd},") or args.startswith(f"{fd})") or f", {fd}, " in args:
            calls.append(name)
        if line.startswith(f"close({fd})"):
            break
    assert calls == ["recvfrom", "sendmsg", "close"], calls


def test_on_close_gets_the_error_of_an_unclean_end():
    got = []
    done = threading.Event()

    def on_close(conn, exc):
        got.append(exc)
        done.set()

    with serving(echo, on_close=on_close) as server:
        with client(server) as sock:
            sock.sendall(frame(b"abc")[:5])      # header and 1 payload byte
        assert done.wait(5)
    assert isinstance(got[0], fastsock.IncompleteReadError)
    assert got[0].partial == frame(b"abc")[:5]


def test_send_from_another_thread_while_the_loop_is_busy():
    pool = ThreadPoolExecutor(4)

    def slow_work(conn, m):
        time.sleep(0.001)
        conn.send_frame(m[::-1])

    def on_message(conn, m):
        pool.submit(slow_work, conn, m)

    with serving(on_message) as server:
        socks = [client(server) for _ in range(8)]
        try:
            for round_ in range(20):
                for i, s in enumerate(socks):
                    s.sendall(frame(b"%d-%d" % (i, round_)))
                for i, s in enumerate(socks):
                    assert recv_frame(s) == (b"%d-%d" % (i, round_))[::-1]
        finally:
            for s in socks:
                s.close()
    pool.shutdown()


def test_close_from_another_thread_sends_what_is_queued_first():
    def on_message(conn, m):
        def later():
            conn.send_frame(b"last")
            conn.close()
        threading.Thread(target=later).start()

    with serving(on_message) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert recv_frame(sock) == b"last"
            assert recv_until_eof(sock) == b""


def test_send_after_close_raises_broken_pipe():
    conns = []
    with serving(lambda c, m: conns.append(c)) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert wait_for(lambda: conns)
        assert wait_for(lambda: server.connections == 0)
    with pytest.raises(BrokenPipeError):
        conns[0].send(b"late")
    assert conns[0].closed


def test_loop_thread_only_methods_refuse_other_threads():
    conns = []
    with serving(lambda c, m: conns.append(c)) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert wait_for(lambda: conns)
            for name in ("pause_reading", "resume_reading", "abort"):
                with pytest.raises(RuntimeError):
                    getattr(conns[0], name)()


def test_bad_replies_and_arguments_are_type_errors():
    with pytest.raises(TypeError):
        fastsock.EventServer((HOST, 0), None)
    with pytest.raises(ValueError):
        fastsock.EventServer((HOST, 0), echo, framing="json")
    with pytest.raises(ValueError):
        fastsock.EventServer((HOST, 0), echo, framing=b"")
    with pytest.raises(ValueError):
        fastsock.EventServer((HOST, 0), echo, low_water=10, high_water=5)
    with pytest.raises(ValueError):
        fastsock.EventServer((HOST, 0), echo, buffer_size=-1)
    with pytest.raises(TypeError):
        fastsock.EventServer((HOST, 0), echo, idle_timeout="1")
    with pytest.raises(ValueError):
        fastsock.EventServer((HOST, 0), echo, allow=["10.0.0.1/8"])

    # A reply that is not a buffer is logged and closes the connection.
    with serving(lambda c, m: 42) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert recv_until_eof(sock) == b""


def test_resume_from_a_callback_of_another_connection():
    paused = []

    def on_message(conn, m):
        if m == b"pause":
            conn.pause_reading()
            paused.append(conn)
            return b"paused"
        if m == b"resume":
            paused[0].resume_reading()
            return b"resumed"
        return m

    with serving(on_message) as server:
        with client(server) as a, client(server) as b:
            a.sendall(frame(b"pause") + frame(b"one") + frame(b"two"))
            assert recv_frame(a) == b"paused"
            assert_no_frame_within(a, 0.2)
            b.sendall(frame(b"resume"))
            assert recv_frame(b) == b"resumed"
            assert recv_frame(a) == b"one"
            assert recv_frame(a) == b"two"


def test_abort_drops_the_queue_and_closes_at_once():
    def on_message(conn, m):
        conn.send_frame(b"dropped")
        conn.abort()

    with serving(on_message) as server:
        with client(server) as sock:
            sock.sendall(frame(b"x"))
            assert recv_until_eof(sock) == b""
        assert wait_for(lambda: server.connections == 0)


# ---- limits --------------------------------------------------------------

def test_a_frame_over_max_frame_closes_the_connection():
    got = []
    done = threading.Event()
    with serving(echo, max_frame=100,
                 on_close=lambda c, e: (got.append(e), done.set())) as server:
        with client(server) as sock:
            sock.sendall(frame(b"y" * 100))
            assert recv_frame(sock) == b"y" * 100
            sock.sendall(struct.pack(">I", 101))
            assert recv_until_eof(sock) == b""
        assert done.wait(5)
    assert isinstance(got[0], fastsock.FrameTooLargeError)


@pytest.mark.parametrize("framing", ["line", b"\r\n"])
def test_a_line_over_max_line_closes_the_connection(framing):
    got = []
    done = threading.Event()
    sep = b"\n" if framing == "line" else framing
    with serving(echo, framing=framing, max_line=64,
                 on_close=lambda c, e: (got.append(e), done.set())) as server:
        with client(server) as sock:
            ok = b"a" * (64 - len(sep)) + sep       # exactly max_line
            sock.sendall(ok)
            assert recv_exactly(sock, len(ok)) == ok
            sock.sendall(b"b" * 65)
            assert recv_until_eof(sock) == b""
        assert done.wait(5)
    assert isinstance(got[0], fastsock.LimitOverrunError)


def test_idle_timeout_closes_silent_connections_only():
    closed = []
    with serving(echo, idle_timeout=0.3,
                 on_close=lambda c, e: closed.append(e)) as server:
        with client(server) as silent, client(server) as chatty:
            start = time.monotonic()
            for _ in range(10):
                chatty.sendall(frame(b"."))
                assert recv_frame(chatty) == b"."
                time.sleep(0.05)
            assert recv_until_eof(silent) == b""
            elapsed = time.monotonic() - start
            assert 0.25 <= elapsed < 3
            chatty.sendall(frame(b"still"))
            assert recv_frame(chatty) == b"still"
    assert isinstance(closed[0], TimeoutError)


def test_max_connections_stops_accepting_until_one_ends():
    with serving(echo, max_connections=2) as server:
        a, b = client(server), client(server)
        for s in (a, b):
            s.sendall(frame(b"x"))
            assert recv_frame(s) == b"x"
        c = client(server)                       # waits in the backlog
        c.sendall(frame(b"third"))
        assert_no_frame_within(c, 0.3)
        assert server.connections == 2
        a.close()
        assert recv_frame(c) == b"third"
        b.close()
        c.close()


def test_allow_refuses_and_counts():
    with serving(echo, allow=lambda addr: False) as server:
        with client(server) as sock:
            assert recv_until_eof(sock) == b""
        assert wait_for(lambda: server.refused == 1)
    with serving(echo, allow=["127.0.0.0/8"]) as server:
        with client(server) as sock:
            sock.sendall(frame(b"in"))
            assert recv_frame(sock) == b"in"
        assert server.refused == 0


# ---- back-pressure and fairness -------------------------------------------

def test_a_client_that_stops_reading_is_throttled_at_high_water():
    ended = []
    peak = [0]
    big = b"z" * 60000

    def on_message(conn, m):
        peak[0] = max(peak[0], conn.buffered)
        return big                              # 60 kB per small request

    with serving(on_message, high_water=1 << 20, low_water=1 << 18,
                 max_buffer=4 << 20,
                 on_close=lambda c, e: ended.append(e)) as server:
        with client(server) as greedy, client(server) as fine:
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            # Never reads: replies pile up to high_water, then the server
            # stops reading it; the unread requests wait in the kernel.
            greedy.setblocking(False)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    greedy.send(frame(b"r") * 1000)
                except BlockingIOError:
                    break
            time.sleep(0.2)
            fine.sendall(frame(b"q"))
            assert recv_frame(fine) == big      # the others are served
            assert server.connections == 2      # throttled, not aborted
    # Messages were handled until the queue reached high_water, and none
    # once it was over (so it never grew past it by more than one reply).
    assert (1 << 20) - len(big) - 8 <= peak[0] <= 1 << 20
    assert len(ended) == 2


def test_queue_over_max_buffer_aborts_that_connection_only():
    ended = []
    done = threading.Event()
    sent = [0]

    def on_message(conn, m):
        if m == b"flood":
            # A callback that ignores back-pressure: 10 MB to a client that
            # does not read, with max_buffer at 1 MB.
            for _ in range(100):
                conn.send(b"w" * 100000)
                sent[0] += 1
        return b"ok"

    def on_close(conn, exc):
        ended.append(exc)
        done.set()

    with serving(on_message, max_buffer=1 << 20, high_water=512 << 10,
                 low_water=128 << 10, on_close=on_close) as server:
        with client(server) as slow, client(server) as other:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(frame(b"flood"))
            assert done.wait(5)
            other.sendall(frame(b"x"))
            assert recv_frame(other) == b"ok"
    assert isinstance(ended[0], fastsock.Error)
    assert "max_buffer" in str(ended[0])
    # The send past max_buffer ended it; the next one raised.
    assert sent[0] <= 11


def test_one_flooding_client_does_not_starve_63_others():
    stop = threading.Event()
    with serving(echo) as server:
        flood = client(server)
        burst = frame(b"f" * 16) * 4096

        def drain():
            try:
                recv_until_eof(flood)
            except OSError:
                pass                    # reset when the test closes it

        def flooder():
            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            while not stop.is_set():
                try:
                    flood.sendall(burst)
                except OSError:
                    return

        t = threading.Thread(target=flooder, daemon=True)
        t.start()
        time.sleep(0.1)
        socks = [client(server) for _ in range(63)]
        worst = 0.0
        try:
            for round_ in range(5):
                for s in socks:
                    start = time.monotonic()
                    s.sendall(frame(b"ping"))
                    assert recv_frame(s) == b"ping"
                    worst = max(worst, time.monotonic() - start)
        finally:
            stop.set()
            flood.shutdown(socket.SHUT_RDWR)
            flood.close()
            t.join(5)
            for s in socks:
                s.close()
    # A generous bound for a shared 2-core machine: a starved client
    # would wait for the whole flood, which never ends.
    assert worst < 2.0


# ---- shutdown ------------------------------------------------------------

def test_shutdown_sends_the_replies_of_complete_requests():
    release = threading.Event()
    seen = []

    def on_message(conn, m):
        seen.append(m)
        return m * 2

    server = fastsock.EventServer((HOST, 0), on_message).start()
    socks = [client(server) for _ in range(20)]
    for i, s in enumerate(socks):
        s.sendall(frame(b"%d" % i))
    assert wait_for(lambda: len(seen) == 20)
    for i, s in enumerate(socks):
        s.sendall(frame(b"req%d" % i))      # complete, maybe not read yet
    time.sleep(0.05)
    server.shutdown(timeout=5)
    for i, s in enumerate(socks):
        assert recv_frame(s) == b"%d" % i * 2
        assert recv_frame(s) == b"req%d" % i * 2
        assert recv_until_eof(s) == b""
        s.close()
    assert server.connections == 0
    with pytest.raises(OSError):
        client(server, timeout=1)


def test_shutdown_from_a_callback():
    def on_message(conn, m):
        if m == b"stop":
            server.shutdown()
        return m

    server = fastsock.EventServer((HOST, 0), on_message).start()
    with client(server) as sock:
        sock.sendall(frame(b"stop"))
        assert recv_frame(sock) == b"stop"
        assert recv_until_eof(sock) == b""
    server._thread.join(5)
    assert not server._thread.is_alive()


def test_shutdown_timeout_aborts_a_connection_that_never_drains():
    ended = []

    def on_message(conn, m):
        conn.send(b"q" * (8 << 20))
        return None

    server = fastsock.EventServer((HOST, 0), on_message, max_buffer=64 << 20,
                                  on_close=lambda c, e: ended.append(e)).start()
    sock = client(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(frame(b"x"))
    time.sleep(0.1)
    start = time.monotonic()
    server.shutdown(timeout=0.3)
    assert time.monotonic() - start < 3
    assert isinstance(ended[0], ConnectionAbortedError)
    sock.close()


def test_no_descriptor_or_thread_leak_over_repeated_start_and_shutdown():
    def fds():
        return len(os.listdir("/proc/self/fd"))

    def one_round():
        with serving(echo) as server:
            with client(server) as sock:
                sock.sendall(frame(b"x"))
                assert recv_frame(sock) == b"x"

    one_round()
    gc.collect()
    before_fds, before_threads = fds(), threading.active_count()
    for _ in range(30):
        one_round()
    # Threads and descriptors left by earlier tests may still be ending
    # (fewer is fine); a leak of one per round would be 30 more.
    assert wait_for(lambda: (gc.collect(), fds() <= before_fds)[1])
    assert wait_for(lambda: threading.active_count() <= before_threads)


def test_serve_forever_ends_with_keyboard_interrupt_and_closes_everything():
    code = textwrap.dedent("""
        import os, signal, socket, struct, threading, fastsock
        closed = []
        server = fastsock.EventServer(("127.0.0.1", 0), lambda c, m: m,
                                      on_close=lambda c, e: closed.append(e))
        s = socket.create_connection(server.address)
        s.sendall(struct.pack(">I", 1) + b"x")
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            server.serve_forever()
        except KeyboardInterrupt as e:
            assert e.__context__ is None and e.__cause__ is None
            print("interrupted", type(closed[0]).__name__, server.connections)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.split() == ["interrupted", "ConnectionAbortedError", "0"], out.stderr


# ---- families ------------------------------------------------------------

def test_unix_socket(tmp_path):
    path = str(tmp_path / "s")
    with serving(echo, address=path, framing="line") as server:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"hello\n")
            assert recv_exactly(sock, 6) == b"hello\n"


@needs_ipv6
def test_ipv6_and_dualstack():
    with serving(echo, address=("::1", 0)) as server:
        with socket.create_connection(server.address[:2], timeout=5) as sock:
            sock.sendall(frame(b"six"))
            assert recv_frame(sock) == b"six"
    with serving(echo, address=("::", 0), dualstack=True) as server:
        port = server.address[1]
        for host in ("127.0.0.1", "::1"):
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(frame(host.encode()))
                assert recv_frame(sock) == host.encode()


def test_reuse_port_two_servers_one_port():
    with serving(echo, reuse_port=True) as a:
        with serving(echo, address=a.address, reuse_port=True) as b:
            assert a.address == b.address
            with client(a) as sock:
                sock.sendall(frame(b"r"))
                assert recv_frame(sock) == b"r"


# ---- many connections ------------------------------------------------------

# The server and the clients run in processes of their own, so that the
# server's RSS counts only its side, and neither needs more descriptors than
# the hard limit gives one process.
MANY_SERVER = textwrap.dedent("""
    import resource, sys, fastsock
    N = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (N + 100, N + 100))

    def rss_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    server = fastsock.EventServer(("127.0.0.1", 0), lambda c, m: m[::-1],
                                  backlog=4096).start()
    print(server.address[1], rss_kib(), flush=True)
    for command in sys.stdin:
        if command.strip() == "rss":
            print(server.connections, rss_kib(), flush=True)
        elif command.strip() == "stop":
            server.shutdown(timeout=30)
            print(server.connections, flush=True)
            break
""")

MANY_CLIENTS = textwrap.dedent("""
    import resource, socket, struct, sys
    N, port = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (N + 100, N + 100))
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60)
             for i in range(N)]
    # Every connection moves one request at once; each reply is checked.
    for i, s in enumerate(socks):
        s.sendall(struct.pack(">I", 6) + b"%06d" % i)
    for i, s in enumerate(socks):
        head = s.recv(4, socket.MSG_WAITALL)
        body = s.recv(6, socket.MSG_WAITALL)
        assert head == struct.pack(">I", 6) and body == (b"%06d" % i)[::-1], i
    print("checked", N, flush=True)
    sys.stdin.readline()                 # idle until told to close
    for s in socks:
        s.close()
""")


def test_ten_thousand_concurrent_connections():
    n = 10000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard >= n + 100, (
        f"the hard descriptor limit ({hard}) is below {n + 100}")
    server = subprocess.Popen([sys.executable, "-c", MANY_SERVER, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    clients = None
    try:
        port, rss_before = map(int, server.stdout.readline().split())
        clients = subprocess.Popen(
            [sys.executable, "-c", MANY_CLIENTS, str(n), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert clients.stdout.readline().split() == ["checked", str(n)]
        server.stdin.write("rss\n")
        server.stdin.flush()
        open_now, rss_idle = map(int, server.stdout.readline().split())
        assert open_now == n
        per_connection = (rss_idle - rss_before) / n
        print(f"server RSS per idle connection: {per_connection:.2f} KiB")
        # The goal is 2 KiB.  Under AddressSanitizer (CI's second run) every
        # allocation carries redzones and PYTHONMALLOC=malloc: 3.5-3.6 KiB
        # measured there, so that run gets a looser bound.
        sanitized = "libasan" in os.environ.get("LD_PRELOAD", "")
        assert per_connection < (6.0 if sanitized else 2.0)
        server.stdin.write("stop\n")
        server.stdin.flush()
        assert server.stdout.readline().split() == ["0"]
        clients.stdin.write("\n")
        clients.stdin.flush()
        assert clients.wait(60) == 0
        assert server.wait(60) == 0
    finally:
        for p in (server, clients):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


# ---- real clients nobody here wrote ---------------------------------------

HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def test_wrk_keep_alive_http_has_no_errors():
    wrk = need_tool("wrk")
    with serving(lambda c, m: HTTP_REPLY, framing=b"\r\n\r\n") as server:
        port = server.address[1]
        out = subprocess.run([wrk, "-t1", "-c32", "-d1s", f"http://{HOST}:{port}/"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Socket errors" not in out.stdout, out.stdout
    assert "Non-2xx" not in out.stdout, out.stdout
    requests = int(out.stdout.split(" requests in ")[0].split()[-1])
    assert requests > 1000, out.stdout


@pytest.mark.parametrize("pipeline", [1, 16])
def test_redis_benchmark_ping_inline_has_no_errors(pipeline):
    bench = need_tool("redis-benchmark", "redis-tools")
    answered = [0]

    def on_message(conn, line):
        answered[0] += 1
        return b"+PONG\r\n"

    with serving(on_message, framing="line") as server:
        port = server.address[1]
        out = subprocess.run(
            [bench, "-h", HOST, "-p", str(port), "-t", "ping_inline", "-n", "20000",
             "-c", "50", "-P", str(pipeline), "-q"],
            capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PING_INLINE" in out.stdout, out.stdout
    assert "rror" not in out.stdout + out.stderr.replace(
        "WARNING: Could not fetch server CONFIG", ""), out.stdout + out.stderr
    assert answered[0] >= 20000


EMFILE_SERVER = textwrap.dedent("""
    import logging, os, resource, sys, fastsock
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    server = fastsock.EventServer(("127.0.0.1", 0), lambda c, m: m)
    # Room for 5 accepted connections, no more.
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 5, 4096))
    server.start()
    print(server.address[1], flush=True)
    sys.stdin.readline()
    print(server.connections, flush=True)
    server.shutdown(timeout=5)
""")


def test_out_of_descriptors_pauses_accepting_and_recovers():
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline())
        clients = [socket.create_connection((HOST, port), timeout=10)
                   for _ in range(20)]
        try:
            time.sleep(0.3)
            # The first ones are served while the rest wait in the backlog.
            served = 0
            for i, c in enumerate(clients):
                c.settimeout(0.5)
                c.sendall(frame(b"%d" % i))
                try:
                    assert recv_frame(c) == b"%d" % i
                    served += 1
                except socket.timeout:
                    break
            assert 1 <= served < 20
            # As connections end, the waiting ones are accepted and served.
            for c in clients[:served]:
                c.close()
            for i, c in enumerate(clients[served:], served):
                c.settimeout(10)
                if i > served:
                    c.sendall(frame(b"%d" % i))
                assert recv_frame(c) == b"%d" % i
                c.close()
        finally:
            for c in clients:
                c.close()
        out, err = proc.communicate("\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    pauses = err.count("accept: ")
    # Paused and logged, with a back-off: a loop that retried at once would
    # log thousands of times.
    assert 1 <= pauses < 100, err


# ---- robustness: memory, ending, errors ------------------------------------

def run_child(code, timeout=60, env=None):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_copy_buffer_stays_bounded_while_the_queue_never_empties():
    # Another thread keeps ~300 KiB queued while the peer reads slowly, so
    # the queue is never empty: the bytes already sent from the copy buffer
    # must be reused, not kept until the queue drains (it never does).
    out = run_child("""
        import os, socket, tempfile, threading, time, tracemalloc, fastsock
        TOTAL, CHUNK = 32 << 20, b"x" * 1000
        def produce(conn):
            sent = 0
            while sent < TOTAL:
                if conn.buffered < (300 << 10):
                    conn.send(CHUNK)
                    sent += len(CHUNK)
                else:
                    time.sleep(0.0002)
        path = os.path.join(tempfile.mkdtemp(), "s")
        server = fastsock.EventServer(
            path, lambda c, m: None, framing="raw",
            on_connect=lambda c: threading.Thread(target=produce, args=(c,)).start())
        tracemalloc.start()
        server.start()
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        got, buf = 0, bytearray(65536)
        while got < TOTAL:
            got += s.recv_into(buf)
            time.sleep(0.0002)
        print(tracemalloc.get_traced_memory()[1])
        s.close()
        server.shutdown(timeout=5)
    """)
    assert int(out) < 8 << 20, f"peak {int(out) >> 20} MiB for 32 MiB sent"


def test_a_connection_not_made_by_the_loop_refuses_every_method():
    # EventConnection objects come from the loop; one made from Python has
    # no loop and must raise, not crash the interpreter.
    out = run_child("""
        from fastsock._event import EventConnection
        for conn in (EventConnection.__new__(EventConnection),):
            assert conn.closed
            for name, args in (("send", (b"x",)), ("send_frame", (b"x",)),
                               ("sendall_buffers", ([b"x"],)),
                               ("pause_reading", ()), ("resume_reading", ()),
                               ("abort", ())):
                try:
                    getattr(conn, name)(*args)
                except (BrokenPipeError, RuntimeError):
                    pass
                else:
                    raise AssertionError(name)
            conn.close()
        print("ok")
    """)
    assert out.split() == ["ok"]
    # Nor may a loop be set up twice (its connections would be dropped
    # while the poller still points at them).
    with serving(echo) as server:
        with pytest.raises(RuntimeError):
            server._loop.__init__(
                server._listener.socket, echo, framing="frame", on_connect=None,
                on_close=None, allow=None, buffer_size=64, max_frame=64,
                max_line=64, high_water=64, low_water=0, max_buffer=64,
                max_connections=-1, idle_timeout=0.0, nodelay=True,
                backend="default")
        with client(server) as sock:
            sock.sendall(frame(b"still"))
            assert recv_frame(sock) == b"still"


def serve_expecting_interrupt(server):
    """serve_forever() on a thread; `raised` gets True if it ends with
    KeyboardInterrupt."""
    raised = []

    def serve():
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            raised.append(True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, raised


def test_on_close_runs_for_every_connection_when_one_raises_keyboard_interrupt():
    closed = []

    def on_close(conn, exc):
        closed.append(conn)
        if len(closed) == 1:
            raise KeyboardInterrupt

    server = fastsock.EventServer((HOST, 0), echo, on_close=on_close)
    thread, raised = serve_expecting_interrupt(server)
    socks = [client(server) for _ in range(3)]
    for s in socks:
        s.sendall(frame(b"x"))
        assert recv_frame(s) == b"x"
    server.shutdown(timeout=5)      # the three end in one pass
    thread.join(5)
    assert not thread.is_alive() and raised == [True]
    assert len(closed) == 3 and len(set(closed)) == 3
    assert server.connections == 0 and not server._loop.running
    for s in socks:
        s.close()


def test_a_second_shutdown_with_a_timeout_ends_a_first_that_waits():
    # A paused connection with a complete message pending keeps a plain
    # shutdown() waiting; shutdown(timeout=0) from elsewhere must end it.
    ended = []

    def on_message(conn, m):
        conn.pause_reading()
        return m

    server = fastsock.EventServer((HOST, 0), on_message,
                                  on_close=lambda c, e: ended.append(e)).start()
    sock = client(server)
    sock.sendall(frame(b"1") + frame(b"2"))
    assert recv_frame(sock) == b"1"
    first = threading.Thread(target=server.shutdown, daemon=True)
    first.start()
    first.join(0.3)
    assert first.is_alive()         # waits for the paused connection
    second = threading.Thread(target=server.shutdown, args=(0,), daemon=True)
    second.start()
    second.join(5)
    first.join(1)
    assert not second.is_alive() and not first.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], ConnectionAbortedError)
    sock.close()


def test_out_of_memory_for_one_connection_closes_that_connection_only():
    # A 1 GiB frame (under max_frame) streams into a process whose address
    # space cannot hold it: the buffer doubles as the bytes come until an
    # allocation fails; that connection ends with MemoryError, the loop and
    # the other connections go on.
    out = run_child("""
        import resource, socket, struct, fastsock
        closed = []
        server = fastsock.EventServer(("127.0.0.1", 0), lambda c, m: m,
                                      max_frame=1 << 30,
                                      on_close=lambda c, e: closed.append(e)).start()
        good = socket.create_connection(server.address, timeout=10)
        bad = socket.create_connection(server.address, timeout=10)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0])
        resource.setrlimit(resource.RLIMIT_AS, ((vm << 10) + (96 << 20), hard))
        chunk = b"y" * (1 << 20)
        try:
            bad.sendall(struct.pack(">I", 1 << 30))
            for _ in range(512):
                bad.sendall(chunk)
        except OSError:
            pass                        # reset once the server gave up
        try:
            assert bad.recv(10) == b""
        except ConnectionResetError:
            pass
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        good.sendall(struct.pack(">I", 2) + b"ok")
        assert good.recv(10) == struct.pack(">I", 2) + b"ok"
        print(type(closed[0]).__name__, server.connections)
        good.close()
        server.shutdown(timeout=5)
    """, env=dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "")
                  # In the sanitizer run: a NULL from malloc, as without it.
                  + ":allocator_may_return_null=1"))
    assert out.split() == ["MemoryError", "1"]


def test_a_frame_header_alone_reserves_no_more_than_what_arrived():
    # 200 peers each announce a 16 MiB frame and send 10 bytes of it: the
    # server must not reserve 16 MiB each (3.2 GiB in all) for bytes that
    # may never come.  Its address space is measured, so memory that was
    # reserved but never touched counts too.
    out = run_child("""
        import socket, struct, time, fastsock

        def vm_kib():
            status = open("/proc/self/status").read()
            return int(status.split("VmSize:")[1].split()[0])

        server = fastsock.EventServer(("127.0.0.1", 0), lambda c, m: m).start()
        before = vm_kib()
        socks = []
        for _ in range(200):
            s = socket.create_connection(server.address, timeout=10)
            s.sendall(struct.pack(">I", 16 << 20) + b"0123456789")
            socks.append(s)
        deadline = time.monotonic() + 10
        while server.connections < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        print(server.connections, (vm_kib() - before) // 1024)
        for s in socks:
            s.close()
        server.shutdown(timeout=5)
    """)
    connections, grown_mib = map(int, out.split())
    assert connections == 200
    assert grown_mib < 64, grown_mib


def test_shutdown_with_timeout_zero_still_sends_the_replies_it_handled():
    # b's request arrives while the loop is busy; shutdown(timeout=0) then
    # begins.  Whatever on_message handled gets its reply before the abort.
    entered, go, seen = threading.Event(), threading.Event(), []

    def on_message(conn, m):
        seen.append(m)
        if m == b"slow":
            entered.set()
            go.wait(5)
        return m

    server = fastsock.EventServer((HOST, 0), on_message).start()
    a, b = client(server), client(server)
    b.sendall(frame(b"hi"))
    assert recv_frame(b) == b"hi"
    a.sendall(frame(b"slow"))
    assert entered.wait(5)
    b.sendall(frame(b"late"))
    stopper = threading.Thread(target=server.shutdown, args=(0,), daemon=True)
    stopper.start()
    time.sleep(0.1)
    go.set()
    stopper.join(5)
    assert not stopper.is_alive()
    assert recv_frame(a) == b"slow"
    if b"late" in seen:
        assert recv_frame(b) == b"late"
    assert recv_until_eof(b) == b""
    a.close()
    b.close()


def test_start_is_not_left_waiting_by_a_shutdown_that_races_it(monkeypatch):
    # A shutdown() from another thread between start()'s check and its
    # thread running must not leave start() waiting for ever.
    server = fastsock.EventServer((HOST, 0), echo)
    real_thread = threading.Thread

    class Racing(real_thread):
        def start(self):
            other = real_thread(target=server.shutdown, daemon=True)
            other.start()
            other.join(0.3)
            super().start()

    monkeypatch.setattr(fastsock.event_server.threading, "Thread", Racing)
    starter = real_thread(target=lambda: server.start(), daemon=True)
    starter.start()
    starter.join(5)
    monkeypatch.undo()
    assert not starter.is_alive()
    assert wait_for(lambda: server._done.is_set())


def test_allow_raising_keyboard_interrupt_does_not_leak_the_descriptor():
    def allow(address):
        raise KeyboardInterrupt

    def fds():
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    server = fastsock.EventServer((HOST, 0), echo, allow=allow)
    thread, raised = serve_expecting_interrupt(server)
    with client(server) as sock:
        thread.join(5)
        assert raised == [True]
    assert fds() == before


def test_a_reply_returned_after_close_is_sent_before_the_connection_closes():
    def on_message(conn, request):
        conn.close()                    # "Connection: close"
        return HTTP_REPLY

    with serving(on_message, framing=b"\r\n\r\n") as server:
        with client(server) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert recv_until_eof(sock) == HTTP_REPLY
