"""Server.shutdown is graceful (API.md, "Listener and Server"): handlers
waiting at a message boundary end at once with EOF, a request begun or sent
before the shutdown is answered, and only the timeout cuts what is left.
Every case runs with real clients over loopback TCP."""
import logging
import socket
import struct
import threading
import time

import pytest

from fastsock import IncompleteReadError, Server
from test_server import LIMIT, peer_closed, recv_exactly, wait_until

SIZE = 8          # request size of the "read" and "readexactly" kinds


# How a request of each kind is read, sent and answered.  read_request
# returns None at EOF at a message boundary.

def read_frame(stream):
    try:
        return stream.recv_frame()
    except EOFError as exc:
        if isinstance(exc, IncompleteReadError):
            raise
        return None


def read_line(stream):
    return stream.readline() or None


def read_n(stream):
    data = stream.read(SIZE)
    if len(data) not in (0, SIZE):
        raise IncompleteReadError(data, SIZE)
    return data or None


def read_exactly(stream):
    try:
        return stream.readexactly(SIZE)
    except IncompleteReadError as exc:
        if exc.partial:
            raise
        return None


KINDS = {
    # kind: (read a request, encode a request, encode a reply)
    "frame": (read_frame, lambda p: struct.pack(">I", len(p)) + p,
              lambda p: struct.pack(">I", len(p)) + p),
    "line": (read_line, lambda p: p + b"\n", lambda p: p),
    "read": (read_n, lambda p: p, lambda p: p),
    "readexactly": (read_exactly, lambda p: p, lambda p: p),
}


def request_payload(i):
    return b"req%05d" % i          # SIZE bytes


def make_handler(kind, outcomes, streams=None, work=0.0, reply_pieces=1):
    """A request/response loop: each request's reply is its payload in
    upper case.  Records ("served", payload) per request and "eof" or the
    exception that ended it."""
    read = KINDS[kind][0]

    def handler(stream, address):
        if streams is not None:
            streams.append(stream)
        try:
            while True:
                request = read(stream)
                if request is None:
                    outcomes.append("eof")
                    return
                payload = request.rstrip(b"\n")
                if work:
                    time.sleep(work)             # computing the answer
                reply = KINDS[kind][2](payload.upper())
                step = -(-len(reply) // reply_pieces)
                for i in range(0, len(reply), step):
                    if i:
                        time.sleep(0.05)         # a slow reply
                    stream.write(reply[i:i + step])
                    stream.flush()
                outcomes.append(("served", payload))
        except BaseException as exc:
            outcomes.append(exc)
            raise

    return handler


def expected_reply(kind, i):
    return KINDS[kind][2](request_payload(i).upper())


def client(server):
    return socket.create_connection(server.address, timeout=LIMIT)


def shutdown_in_thread(server, timeout=LIMIT):
    """Starts server.shutdown(timeout) on a thread; returns the thread and
    a dict that gets the time it took."""
    took = {}

    def run():
        start = time.monotonic()
        server.shutdown(timeout=timeout)
        took["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=run)
    thread.start()
    return thread, took


def refused(address):
    try:
        socket.create_connection(address, timeout=LIMIT).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_idle_handlers_end_at_once_with_eof(kind):
    outcomes = []
    server = Server(("127.0.0.1", 0), make_handler(kind, outcomes)).start()
    socks = [client(server) for _ in range(4)]
    try:
        for i, sock in enumerate(socks):      # one round trip each: the
            sock.sendall(KINDS[kind][1](request_payload(i)))   # handler is
            reply = expected_reply(kind, i)                    # back in its
            assert recv_exactly(sock, len(reply)) == reply     # read loop
        time.sleep(0.05)
        start = time.monotonic()
        server.shutdown(timeout=LIMIT)
        assert time.monotonic() - start < 2.0
        assert outcomes.count("eof") == 4, outcomes
        assert all(peer_closed(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert server.connections == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_request_begun_before_shutdown_is_answered(kind):
    # Half the request before the shutdown, the rest after it began.
    outcomes, streams = [], []
    server = Server(("127.0.0.1", 0),
                    make_handler(kind, outcomes, streams)).start()
    with client(server) as sock:
        request = KINDS[kind][1](request_payload(7))
        sock.sendall(request[:len(request) // 2])
        wait_until(lambda: streams)
        time.sleep(0.05)
        thread, took = shutdown_in_thread(server)
        wait_until(lambda: streams[0].draining)
        assert refused(server.address)
        time.sleep(0.05)
        sock.sendall(request[len(request) // 2:])
        reply = expected_reply(kind, 7)
        assert recv_exactly(sock, len(reply)) == reply
        assert peer_closed(sock)              # then EOF at the boundary
        thread.join(LIMIT)
    assert not thread.is_alive() and took["seconds"] < 2.0
    assert outcomes == [("served", request_payload(7)), "eof"]


def test_a_busy_handler_finishes_replies_then_ends_at_its_next_read():
    outcomes = []
    server = Server(("127.0.0.1", 0),
                    make_handler("frame", outcomes, work=0.4)).start()
    with client(server) as sock:
        sock.sendall(KINDS["frame"][1](request_payload(1)))
        wait_until(lambda: server.connections == 1)
        time.sleep(0.1)                       # the handler is computing
        start = time.monotonic()
        server.shutdown(timeout=LIMIT)
        took = time.monotonic() - start
        reply = expected_reply("frame", 1)
        assert recv_exactly(sock, len(reply)) == reply
        assert peer_closed(sock)
    # It waited for the work, and no longer: the handler's next read ended
    # at once rather than at the timeout.
    assert 0.15 < took < 2.0
    assert outcomes == [("served", request_payload(1)), "eof"]


def test_a_slow_reply_goes_out_whole():
    outcomes = []
    server = Server(("127.0.0.1", 0),
                    make_handler("line", outcomes, reply_pieces=4)).start()
    with client(server) as sock:
        sock.sendall(KINDS["line"][1](request_payload(2)))
        wait_until(lambda: server.connections == 1)
        start = time.monotonic()
        server.shutdown(timeout=LIMIT)
        assert time.monotonic() - start >= 0.1   # three pauses of 50 ms
        reply = expected_reply("line", 2)
        assert recv_exactly(sock, len(reply)) == reply
        assert peer_closed(sock)
    assert outcomes == [("served", request_payload(2)), "eof"]


def test_pipelined_requests_sent_before_shutdown_are_all_answered():
    outcomes = []
    server = Server(("127.0.0.1", 0),
                    make_handler("frame", outcomes, work=0.1)).start()
    with client(server) as sock:
        sock.sendall(b"".join(KINDS["frame"][1](request_payload(i))
                              for i in range(3)))
        wait_until(lambda: server.connections == 1)
        server.shutdown(timeout=LIMIT)
        replies = b"".join(expected_reply("frame", i) for i in range(3))
        assert recv_exactly(sock, len(replies)) == replies
        assert peer_closed(sock)
    assert outcomes == [("served", request_payload(i)) for i in range(3)] + ["eof"]


def test_a_request_waiting_in_the_listen_backlog_is_answered():
    # At max_connections the server stops accepting: the second client
    # waits in the backlog, its request sent in full.  Closing the
    # listener would reset it; shutdown() takes it and answers instead.
    outcomes = []
    server = Server(("127.0.0.1", 0), make_handler("frame", outcomes),
                    max_connections=1).start()
    with client(server) as first, client(server) as queued:
        first.sendall(KINDS["frame"][1](request_payload(1)))
        reply = expected_reply("frame", 1)
        assert recv_exactly(first, len(reply)) == reply
        queued.sendall(KINDS["frame"][1](request_payload(2)))
        time.sleep(0.1)
        assert server.connections == 1          # still in the backlog
        server.shutdown(timeout=LIMIT)
        assert peer_closed(first)
        reply = expected_reply("frame", 2)
        assert recv_exactly(queued, len(reply)) == reply
        assert peer_closed(queued)
    assert sorted(o for o in outcomes if o != "eof") == [
        ("served", request_payload(1)), ("served", request_payload(2))]


def test_an_idle_connection_in_the_backlog_ends_at_once():
    server = Server(("127.0.0.1", 0), make_handler("line", []),
                    max_connections=1).start()
    with client(server) as first, client(server) as queued:
        wait_until(lambda: server.connections == 1)
        start = time.monotonic()
        server.shutdown(timeout=LIMIT)
        assert time.monotonic() - start < 2.0
        assert peer_closed(first) and peer_closed(queued)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_timeout_cuts_a_request_that_never_completes(kind):
    outcomes = []
    server = Server(("127.0.0.1", 0), make_handler(kind, outcomes)).start()
    with client(server) as sock:
        request = KINDS[kind][1](request_payload(3))
        sock.sendall(request[:len(request) // 2])    # the rest never comes
        wait_until(lambda: server.connections == 1)
        time.sleep(0.05)
        start = time.monotonic()
        server.shutdown(timeout=0.3)
        assert 0.25 < time.monotonic() - start < 3.0
        assert peer_closed(sock)
    assert server.connections == 0
    assert len(outcomes) == 1 and isinstance(outcomes[0], (OSError, EOFError))


def test_requests_sent_before_shutdown_are_answered_under_load():
    """Request/response clients keep going while shutdown starts: every
    request whose send returned before shutdown() was called gets its whole
    reply; the others get a whole reply or none, never part of one."""
    outcomes = []
    server = Server(("127.0.0.1", 0), make_handler("frame", outcomes)).start()
    results = []
    lock = threading.Lock()
    started = threading.Barrier(21)

    def run(n):
        sent_at = answered = None
        sock = client(server)
        try:
            started.wait(LIMIT)
            i = 0
            while True:
                i += 1
                payload = b"%03d%05d" % (n, i % 100000)
                sock.sendall(struct.pack(">I", 8) + payload)
                sent_at = time.monotonic()
                reply = recv_exactly(sock, 12)
                if len(reply) < 12:
                    answered = reply
                    break
                assert reply == struct.pack(">I", 8) + payload.upper()
        except ConnectionResetError:
            answered = b"reset"
        finally:
            sock.close()
            with lock:
                results.append((sent_at, answered))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    started.wait(LIMIT)
    time.sleep(0.3)
    stop = time.monotonic()
    server.shutdown(timeout=LIMIT)
    for thread in threads:
        thread.join(LIMIT)
    assert len(results) == 20
    for sent_at, answered in results:
        # The last request went unanswered: sent after the shutdown began,
        # and cut at a boundary (nothing of a reply came).
        assert answered in (b"", b"reset")
        assert sent_at >= stop
    assert not [o for o in outcomes if isinstance(o, BaseException)]


def test_a_handler_that_enters_a_read_after_shutdown_began_ends_at_once():
    outcomes, streams = [], []
    release = threading.Event()

    def handler(stream, address):
        streams.append(stream)
        release.wait(LIMIT)                   # busy before its first read
        outcomes.append(stream.readline())

    server = Server(("127.0.0.1", 0), handler).start()
    with client(server) as sock:
        wait_until(lambda: streams)
        thread, took = shutdown_in_thread(server)
        wait_until(lambda: streams[0].draining)
        release.set()
        thread.join(LIMIT)
        assert peer_closed(sock)
    assert outcomes == [b""] and took["seconds"] < 2.0


def test_connection_timeout_frees_the_thread_of_a_silent_client(caplog):
    caplog.set_level(logging.INFO, logger="fastsock")
    outcomes = []
    server = Server(("127.0.0.1", 0), make_handler("frame", outcomes),
                    timeout=0.3).start()
    try:
        with client(server) as silent, client(server) as active:
            start = time.monotonic()
            for i in range(4):     # keeps going past the silent one's end
                active.sendall(KINDS["frame"][1](request_payload(i)))
                reply = expected_reply("frame", i)
                assert recv_exactly(active, len(reply)) == reply
                time.sleep(0.1)
            assert peer_closed(silent)
            assert 0.25 < time.monotonic() - start < 5.0
            wait_until(lambda: server.connections == 1)
    finally:
        server.shutdown(timeout=LIMIT)
    assert "timed out" in caplog.text
    assert sum(isinstance(o, TimeoutError) for o in outcomes) == 1


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "1"])
def test_connection_timeout_is_checked(bad):
    with pytest.raises((TypeError, ValueError)):
        Server(("127.0.0.1", 0), print, timeout=bad)
