"""fastsock.Server: serving, back-pressure, access control, shutdown, abuse."""
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fastsock
import fastsock.server
from fastsock import Server
from socket_support import need_tool

HERE = os.path.dirname(os.path.abspath(__file__))
# The child imports the fastsock this process tested: the installed wheel
# in CI, the source tree in development.
FASTSOCK_PATH = os.path.dirname(os.path.dirname(fastsock.__file__))
LIMIT = 10.0      # no single wait in this file may take longer


def open_fds():
    return len(os.listdir("/dev/fd"))


def wait_until(predicate, timeout=LIMIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def client(address, family=socket.AF_INET):
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(LIMIT)
        sock.connect(address)
        return sock
    return socket.create_connection(address[:2], timeout=LIMIT)


def echo(stream, address):
    while True:
        data = stream.read1(65536)
        if not data:
            return
        stream.write(data)


def round_trip(address, payload=b"ping"):
    with client(address) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def peer_closed(sock):
    """True if the server closed sock without sending anything."""
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def serve():
    """Starts servers and makes sure each is shut down after the test."""
    started = []

    def make(address, handler, **kwargs):
        server = Server(address, handler, **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.shutdown(timeout=LIMIT)


# ---- life cycle ------------------------------------------------------------

def test_start_serve_shutdown_repeatedly_leaves_no_descriptor_or_thread():
    round_trip_ok = []
    Server(("127.0.0.1", 0), echo).shutdown()   # warm up lazy imports
    fds, threads = open_fds(), threading.active_count()
    for _ in range(20):
        server = Server(("127.0.0.1", 0), echo).start()
        round_trip_ok.append(round_trip(server.address, b"abc") == b"abc")
        with client(server.address) as idle:
            wait_until(lambda: server.connections == 1)
            server.shutdown(timeout=LIMIT)
            assert peer_closed(idle)
        assert server.connections == 0
    assert all(round_trip_ok) and len(round_trip_ok) == 20
    assert open_fds() == fds
    assert threading.active_count() == threads


def test_address_is_known_at_construction_and_context_manager_shuts_down():
    with Server(("127.0.0.1", 0), echo) as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        # Listening already: the kernel completes the handshake.
        pending = socket.create_connection(server.address, timeout=LIMIT)
        server.start()
        pending.sendall(b"early")
        assert recv_exactly(pending, 5) == b"early"
        pending.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=LIMIT)
    assert "closed" in repr(server)


def test_serve_forever_in_a_thread_and_no_second_start():
    server = Server(("127.0.0.1", 0), echo)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert round_trip(server.address, b"xyz") == b"xyz"
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        server.shutdown(timeout=LIMIT)
        thread.join(LIMIT)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        server.serve_forever()
    server.shutdown()           # a second shutdown is harmless


def test_constructor_checks_its_arguments():
    with pytest.raises(TypeError):
        Server(("127.0.0.1", 0), "not callable")
    with pytest.raises(ValueError):
        Server(("127.0.0.1", 0), echo, max_connections=0)
    with pytest.raises(ValueError):
        Server(("127.0.0.1", 0), echo, buffer_size=0)


def test_stream_is_closed_when_the_handler_returns(serve):
    seen = []

    def handler(stream, address):
        seen.append((stream, address))
        stream.write(b"hello")

    server = serve(("127.0.0.1", 0), handler)
    with client(server.address) as sock:
        assert recv_exactly(sock, 6) == b"hello"    # 5 bytes, then EOF
        stream, address = seen[0]
        assert address == sock.getsockname()
        assert isinstance(stream, fastsock.Stream)
    wait_until(lambda: stream.closed)
    wait_until(lambda: server.connections == 0)


def test_handlers_get_tcp_nodelay_on(serve):
    # Inherited from the listening socket where the kernel does that
    # (Linux), else set per connection.
    def handler(stream, address):
        value = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        stream.write(b"1" if value else b"0")

    server = serve(("127.0.0.1", 0), handler)
    with client(server.address) as sock:
        assert recv_exactly(sock, 1) == b"1"


# ---- many clients -----------------------------------------------------------

def test_500_concurrent_clients_request_response(serve):
    def handler(stream, address):
        # Request: 4-byte id + 60 bytes; reply: the bytes reversed.
        while True:
            try:
                request = stream.readexactly(64)
            except EOFError:
                return
            stream.write(request[::-1])

    server = serve(("127.0.0.1", 0), handler, backlog=512)
    socks = [client(server.address) for _ in range(500)]
    try:
        wait_until(lambda: server.connections == 500)
        for rnd in range(3):
            requests = []
            for i, sock in enumerate(socks):
                request = struct.pack("!I", i) + bytes([rnd]) * 60
                requests.append(request)
                sock.sendall(request)
            for sock, request in zip(socks, requests):
                assert recv_exactly(sock, 64) == request[::-1]
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: server.connections == 0)


def test_handler_threads_are_reused(serve):
    idents = []

    def handler(stream, address):
        idents.append(threading.get_ident())
        stream.write(b"k")

    server = serve(("127.0.0.1", 0), handler)
    for _ in range(5):
        with client(server.address) as sock:
            assert recv_exactly(sock, 2) == b"k"
        wait_until(lambda: server.connections == 0)
    assert len(idents) == 5 and len(set(idents)) == 1


# ---- failures in handlers and peers -------------------------------------------

def test_handler_exception_is_logged_with_traceback(serve, caplog):
    def handler(stream, address):
        if stream.read1(1) == b"!":
            raise ValueError("boom from the handler")
        stream.write(b"fine")

    caplog.set_level(logging.ERROR, logger="fastsock")
    server = serve(("127.0.0.1", 0), handler)
    with client(server.address) as sock:
        sock.sendall(b"!")
        assert peer_closed(sock)
    wait_until(lambda: server.connections == 0)
    records = [r for r in caplog.records if r.name == "fastsock"]
    assert len(records) == 1
    assert records[0].exc_info[0] is ValueError
    assert "boom from the handler" in caplog.text
    assert "Traceback" in caplog.text
    with client(server.address) as sock:
        sock.sendall(b"?")
        assert recv_exactly(sock, 5) == b"fine"


def test_client_that_sends_nothing_does_not_block_others(serve):
    server = serve(("127.0.0.1", 0), echo)
    with client(server.address):
        wait_until(lambda: server.connections == 1)
        assert round_trip(server.address, b"others") == b"others"
        wait_until(lambda: server.connections == 1)    # the silent one stays
    wait_until(lambda: server.connections == 0)


def test_client_reset_mid_request(serve, caplog):
    got = []

    def handler(stream, address):
        try:
            got.append(stream.readexactly(100))
        except (ConnectionResetError, EOFError) as exc:
            got.append(exc)

    server = serve(("127.0.0.1", 0), handler)
    sock = client(server.address)
    sock.sendall(b"x" * 10)
    wait_until(lambda: server.connections == 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()                         # RST instead of FIN
    wait_until(lambda: server.connections == 0)
    assert len(got) == 1 and isinstance(got[0], (ConnectionResetError, EOFError))
    with client(server.address) as sock:       # and the next client is served
        sock.sendall(b"y" * 100)
        wait_until(lambda: len(got) == 2)
    assert got[1] == b"y" * 100
    wait_until(lambda: server.connections == 0)


def test_reset_escaping_the_handler_is_logged_and_server_goes_on(serve, caplog):
    caplog.set_level(logging.ERROR, logger="fastsock")
    started = threading.Event()

    served = []

    def handler(stream, address):
        started.set()
        served.append(stream.readexactly(100))

    server = serve(("127.0.0.1", 0), handler)
    sock = client(server.address)
    sock.sendall(b"half")
    assert started.wait(LIMIT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    wait_until(lambda: server.connections == 0)
    assert any(r.exc_info and issubclass(r.exc_info[0], (OSError, EOFError))
               for r in caplog.records)
    with client(server.address) as again:
        again.sendall(b"y" * 100)
        wait_until(lambda: served == [b"y" * 100])


# ---- back-pressure ------------------------------------------------------------

def test_max_connections_stops_accepting_until_one_ends(serve):
    running = []

    def handler(stream, address):
        running.append(address)
        echo(stream, address)

    server = serve(("127.0.0.1", 0), handler, max_connections=2)
    first, second = client(server.address), client(server.address)
    wait_until(lambda: len(running) == 2)
    third = client(server.address)       # handshake done by the kernel
    third.sendall(b"waiting")
    time.sleep(0.3)
    assert len(running) == 2 and server.connections == 2
    third.settimeout(0.1)
    with pytest.raises(TimeoutError):
        third.recv(16)
    first.close()
    third.settimeout(LIMIT)
    assert recv_exactly(third, 7) == b"waiting"
    assert len(running) == 3 and server.connections == 2
    for sock in (second, third):
        sock.close()
    wait_until(lambda: server.connections == 0)


# ---- shutdown -------------------------------------------------------------------

def test_shutdown_wakes_handlers_blocked_in_reads_and_lets_replies_out():
    outcomes = []

    def handler(stream, address):
        outcomes.append(stream.read())     # blocks until EOF
        stream.write(b"bye")

    server = Server(("127.0.0.1", 0), handler).start()
    socks = [client(server.address) for _ in range(5)]
    wait_until(lambda: server.connections == 5)
    time.sleep(0.05)                       # let them block in read()
    start = time.monotonic()
    server.shutdown(timeout=LIMIT)
    assert time.monotonic() - start < 2.0
    assert outcomes == [b""] * 5
    for sock in socks:
        assert recv_exactly(sock, 4) == b"bye"     # then EOF
        sock.close()


def test_shutdown_lets_a_busy_handler_finish():
    def handler(stream, address):
        request = stream.readexactly(3)
        time.sleep(0.3)
        stream.write(request.upper())

    server = Server(("127.0.0.1", 0), handler).start()
    with client(server.address) as sock:
        sock.sendall(b"abc")
        wait_until(lambda: server.connections == 1)
        time.sleep(0.05)
        start = time.monotonic()
        server.shutdown()
        assert time.monotonic() - start >= 0.2
        assert recv_exactly(sock, 4) == b"ABC"


def test_shutdown_timeout_breaks_a_handler_stuck_writing():
    errors = []

    def handler(stream, address):
        try:
            while True:                    # the peer never reads
                stream.write(b"z" * 65536)
                stream.flush()
        except OSError as exc:
            errors.append(exc)

    server = Server(("127.0.0.1", 0), handler).start()
    with client(server.address) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_until(lambda: server.connections == 1)
        time.sleep(0.1)
        start = time.monotonic()
        server.shutdown(timeout=0.2)
        assert 0.15 < time.monotonic() - start < 3.0
    assert server.connections == 0
    assert len(errors) == 1


def test_shutdown_called_from_a_handler():
    done = threading.Event()
    holder = {}

    def handler(stream, address):
        stream.write(b"ok")
        stream.flush()
        holder["server"].shutdown(timeout=LIMIT)
        done.set()

    server = holder["server"] = Server(("127.0.0.1", 0), handler).start()
    with client(server.address) as sock:
        assert recv_exactly(sock, 2) == b"ok"
    assert done.wait(LIMIT)
    wait_until(lambda: server.connections == 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=LIMIT)


class FailingAccept:
    """Stands in for the listening socket: accept() fails as told, then
    works.  Lets the loop's handling of each errno be tested exactly."""

    def __init__(self, sock, failures):
        self.sock = sock
        self.failures = list(failures)
        self.calls = 0

    def fileno(self):
        return self.sock.fileno()

    def accept(self):
        self.calls += 1
        if self.failures:
            raise OSError(self.failures.pop(0), os.strerror(errno.EIO))
        return self.sock.accept()


@pytest.mark.parametrize("failure", [errno.ECONNABORTED, errno.EMFILE,
                                     errno.ENFILE, errno.ENOBUFS, errno.EPROTO])
def test_accept_loop_survives_accept_errors_without_spinning(failure, caplog):
    server = Server(("127.0.0.1", 0), echo)
    fake = server._sock = FailingAccept(server._sock, [failure] * 5)
    cpu = time.process_time()
    server.start()
    try:
        assert round_trip(server.address, b"after") == b"after"
        assert fake.calls >= 6 and not fake.failures
    finally:
        server.shutdown(timeout=LIMIT)
    # Five pauses of 5, 10, 20, 40, 80 ms at most: no busy loop.
    assert time.process_time() - cpu < 0.5
    if failure != errno.ECONNABORTED and failure != errno.EPROTO:
        assert "pausing" in caplog.text


def test_accept_loop_stops_on_a_closed_listener_and_logs(caplog):
    caplog.set_level(logging.ERROR, logger="fastsock")
    server = Server(("127.0.0.1", 0), echo)
    server._sock = FailingAccept(server._sock, [errno.EBADF])
    server.start()
    wait_until(lambda: server._loop_done.is_set())
    assert "accept loop failed" in caplog.text
    server.shutdown(timeout=LIMIT)


def test_ctrl_c_interrupts_serve_forever_in_the_main_thread():
    # Python's own handler even when this process started with SIGINT
    # ignored (nohup, some CI runners), where the signal would be lost.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    server = Server(("127.0.0.1", 0), echo)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    # Should the signal be lost anyway, this ends serve_forever() and the
    # test fails instead of hanging.
    guard = threading.Timer(LIMIT, server.shutdown)
    timer.start()
    guard.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            server.serve_forever()
    finally:
        timer.cancel()
        guard.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 2.0
    # What Ctrl-C gives in any loop: nothing chained under it.
    assert caught.value.__context__ is None
    server.shutdown(timeout=LIMIT)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=LIMIT)


def test_shutdown_before_start_closes_everything():
    fds = open_fds()
    server = Server(("127.0.0.1", 0), echo)
    server.shutdown()
    assert open_fds() == fds
    with pytest.raises(RuntimeError):
        server.start()


def test_idle_handler_threads_end_after_a_while(monkeypatch):
    monkeypatch.setattr(fastsock.server, "_IDLE_SECONDS", 0.1)
    threads = threading.active_count()
    server = Server(("127.0.0.1", 0), echo).start()
    try:
        socks = [client(server.address) for _ in range(3)]
        wait_until(lambda: server.connections == 3)
        for sock in socks:
            sock.close()
        wait_until(lambda: server.connections == 0)
        # Three handler threads and the accept loop, then the idle ones go.
        wait_until(lambda: threading.active_count() == threads + 1)
        assert round_trip(server.address, b"new") == b"new"
    finally:
        server.shutdown(timeout=LIMIT)
    assert threading.active_count() == threads


# ---- access control ---------------------------------------------------------------

def refused_by(server):
    before = server.refused
    with client(server.address) as sock:
        closed = peer_closed(sock)
    wait_until(lambda: server.refused == before + 1)
    return closed


@pytest.mark.parametrize("allow", [
    ["10.0.0.0/8"],
    "192.168.0.0/16",
    [ipaddress.ip_network("172.16.0.0/12"), "::1/128"],
    [],
])
def test_allow_list_refuses_peers_outside(serve, allow):
    ran = []
    server = serve(("127.0.0.1", 0), lambda s, a: ran.append(a), allow=allow)
    assert refused_by(server)
    assert refused_by(server)
    assert server.refused == 2 and ran == [] and server.connections == 0


@pytest.mark.parametrize("allow", [
    ["127.0.0.0/8"],
    ["10.0.0.0/8", ipaddress.ip_network("127.0.0.1/32")],
    [ipaddress.ip_address("127.0.0.1")],
    [ipaddress.ip_interface("127.1.2.3/8")],
])
def test_allow_list_admits_peers_inside(serve, allow):
    server = serve(("127.0.0.1", 0), echo, allow=allow)
    assert round_trip(server.address, b"in") == b"in"
    assert server.refused == 0


def test_allow_ipv6_and_dual_stack(serve):
    v6 = serve(("::1", 0), echo, allow=["::1/128"])
    assert round_trip(v6.address, b"six") == b"six"
    only_v4 = serve(("::1", 0), echo, allow=["127.0.0.0/8"])
    assert refused_by(only_v4)
    # A dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1; an IPv4
    # network still matches it.
    dual = serve(("", 0), echo, dualstack=True, allow=["127.0.0.0/8"])
    port = dual.address[1]
    assert round_trip(("127.0.0.1", port), b"four") == b"four"
    v6_only = serve(("", 0), echo, dualstack=True, allow=["::1/128"])
    with client(("127.0.0.1", v6_only.address[1])) as sock:
        assert peer_closed(sock)
    wait_until(lambda: v6_only.refused == 1)
    assert round_trip(("::1", v6_only.address[1]), b"six") == b"six"


def test_allow_callable_decides_and_a_raising_one_refuses(serve, caplog):
    asked = []

    def allow(address):
        asked.append(address)
        return len(asked) % 2 == 0      # refuse, admit, refuse, ...

    server = serve(("127.0.0.1", 0), echo, allow=allow)
    assert refused_by(server)
    assert round_trip(server.address, b"2nd") == b"2nd"
    assert server.refused == 1
    assert all(a[0] == "127.0.0.1" for a in asked) and len(asked) == 2

    def broken(address):
        raise RuntimeError("allow is broken")

    caplog.set_level(logging.ERROR, logger="fastsock")
    server = serve(("127.0.0.1", 0), echo, allow=broken)
    assert refused_by(server)
    assert "allow is broken" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize("bad", [
    ["10.0.0.300/8"], ["not a network"], ["10.0.0.1/8"], ["::1/129"], "999.0.0.0/8",
])
def test_invalid_network_raises_value_error_at_construction(bad):
    fds = open_fds()
    with pytest.raises(ValueError):
        Server(("127.0.0.1", 0), echo, allow=bad)
    assert open_fds() == fds


def test_allow_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError):
        Server(("127.0.0.1", 0), echo, allow=[42])
    with pytest.raises(TypeError):
        Server(("127.0.0.1", 0), echo, allow=42)


# ---- address families ---------------------------------------------------------

def test_ipv6(serve):
    server = serve(("::1", 0), echo)
    assert server.address[0] == "::1"
    with socket.create_connection(server.address[:2], timeout=LIMIT) as sock:
        sock.sendall(b"v6")
        assert recv_exactly(sock, 2) == b"v6"


def test_dual_stack_accepts_both_families(serve):
    server = serve(("", 0), echo, dualstack=True)
    port = server.address[1]
    assert round_trip(("127.0.0.1", port), b"4") == b"4"
    assert round_trip(("::1", port), b"6") == b"6"


def test_unix_socket_and_its_file_is_removed(tmp_path):
    path = str(tmp_path / "srv.sock")
    addresses = []

    def handler(stream, address):
        addresses.append(address)
        echo(stream, address)

    server = Server(path, handler).start()
    assert server.address == path
    assert round_trip(path, b"unix") == b"unix"
    assert addresses == [""]
    server.shutdown(timeout=LIMIT)
    assert not os.path.exists(path)


def test_unix_abstract_namespace(serve):
    name = "\0fastsock-test-%d" % os.getpid()
    server = serve(name, echo)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(LIMIT)
        sock.connect(name)
        sock.sendall(b"abs")
        assert recv_exactly(sock, 3) == b"abs"


def test_allow_networks_on_a_unix_socket_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        Server(str(tmp_path / "s"), echo, allow=["127.0.0.0/8"])


def test_reuse_port_lets_two_servers_share_a_port(serve):
    first = serve(("127.0.0.1", 0), echo, reuse_port=True)
    second = serve(first.address, echo, reuse_port=True)
    assert second.address == first.address
    fds = open_fds()
    with pytest.raises(OSError) as info:
        Server(first.address, echo)
    assert info.value.errno == errno.EADDRINUSE
    assert open_fds() == fds            # nothing left open by the failure
    assert round_trip(first.address, b"rp") == b"rp"


# ---- out of descriptors -----------------------------------------------------------

FLOOD_SERVER = textwrap.dedent("""
    import os, resource, sys
    from fastsock import Server
    from test_server import echo

    server = Server(("127.0.0.1", 0), echo, backlog=512).start()
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    print(server.address[1], flush=True)
    for line in sys.stdin:
        if line.strip() == "cpu":
            t = os.times()
            print(t.user + t.system, server.connections, flush=True)
    server.shutdown(timeout=5)
""")


def test_flood_beyond_the_descriptor_limit_then_still_serves():
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([FASTSOCK_PATH, HERE]))
    proc = subprocess.Popen([sys.executable, "-c", FLOOD_SERVER], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        port = int(proc.stdout.readline())

        def cpu():
            proc.stdin.write("cpu\n")
            proc.stdin.flush()
            used, conns = proc.stdout.readline().split()
            return float(used), int(conns)

        for _ in range(150):       # far beyond the 40 descriptors it has
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=LIMIT))
        time.sleep(0.3)
        used_before, conns = cpu()
        assert 10 < conns < 40
        time.sleep(1.5)            # a spinning accept loop would burn ~1.5 s
        used_after, conns_after = cpu()
        assert used_after - used_before < 0.3
        assert conns_after == conns
        # The connections it did take work.
        socks[0].sendall(b"a")
        assert socks[0].recv(1) == b"a"
        for sock in socks:
            sock.close()
        socks = []
        # The backlog drains (each queued peer is gone) and it serves again.
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                assert round_trip(("127.0.0.1", port), b"after") == b"after"
                break
            except (ConnectionResetError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        for sock in socks:
            sock.close()
        out, err = proc.communicate(timeout=LIMIT)
    assert proc.returncode == 0, err
    assert "Too many open files" in err      # logged once, as a warning


# ---- a load generator nobody here wrote --------------------------------------------

def http_handler(stream, address):
    body = b"hello from fastsock\n"
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    while True:
        line = stream.readline()
        if not line:
            return
        while line not in (b"\r\n", b"\n"):      # skip the headers
            line = stream.readline()
            if not line:
                return
        stream.write(reply)


@pytest.fixture(scope="module")
def wrk():
    return need_tool("wrk")


def test_wrk_keep_alive_http_has_no_errors(serve, wrk):
    server = serve(("127.0.0.1", 0), http_handler)
    url = "http://127.0.0.1:%d/" % server.address[1]
    out = subprocess.run([wrk, "-t1", "-c32", "-d2s", "--timeout", "2s", url],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    match = re.search(r"(\d+) requests in", out.stdout)
    assert match and int(match.group(1)) > 0, out.stdout
    assert "Socket errors" not in out.stdout, out.stdout
    assert "Non-2xx" not in out.stdout, out.stdout
    wait_until(lambda: server.connections == 0)
