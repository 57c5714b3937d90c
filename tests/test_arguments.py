"""Bad arguments fail before any I/O (API.md, Principles): every public call
raises TypeError or ValueError before it resolves, connects, binds or sends.

Each case runs against witnesses that would see any I/O: a listener that
must accept no connection, a datagram socket and a stream peer that must
receive nothing, a directory where no socket file may appear, and a
getaddrinfo that fails the test if it is called."""
import math
import os
import socket

import pytest

import fastsock
from fastsock import (DatagramBatch, FrameTooLargeError, Listener, Server,
                      Socket, Stream)

T = 5.0


class Witness:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.path = str(tmp_path / "sock")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.tcp = ("127.0.0.1", self.port)
        self.dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dgram.bind(("127.0.0.1", 0))
        self.dgram.setblocking(False)
        # A connected pair: `stream`/`sock` are ours, `peer` must get nothing.
        a, self.peer = socket.socketpair()
        self.peer.setblocking(False)
        self.sock = Socket.from_socket(a)
        self.sock.settimeout(T)
        b, self.stream_peer = socket.socketpair()
        self.stream_peer.setblocking(False)
        self.stream = Stream(b)
        self.stream.settimeout(T)
        self.udp = Socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.settimeout(T)
        self.fresh = Socket()           # neither bound nor connected
        self.file = open(__file__, "rb")
        self.text = open(__file__)

    def saw_nothing(self):
        try:
            self.listener.accept()[0].close()
            return "a connection was made"
        except BlockingIOError:
            pass
        for name, sock in (("datagram", self.dgram), ("peer", self.peer),
                           ("stream peer", self.stream_peer)):
            try:
                data = sock.recv(65536)
                return f"the {name} received {data[:20]!r}"
            except BlockingIOError:
                pass
        if os.listdir(self.dir):
            return f"a file was created: {os.listdir(self.dir)}"
        return None

    def close(self):
        for obj in (self.listener, self.dgram, self.peer, self.sock,
                    self.stream, self.stream_peer, self.udp, self.fresh,
                    self.file, self.text):
            obj.close()


@pytest.fixture
def witness(tmp_path, monkeypatch):
    w = Witness(tmp_path)

    def resolved(*args, **kwargs):
        raise AssertionError(f"getaddrinfo{args} was called")

    monkeypatch.setattr(socket, "getaddrinfo", resolved)
    yield w
    monkeypatch.undo()
    w.close()


def handler(stream, address):
    pass


NAN = float("nan")
# (call, case): each takes the witness and must raise TypeError/ValueError.
CASES = {
    # ---- connect() ----
    "connect buffer_size -1": lambda w: fastsock.connect(w.tcp, buffer_size=-1),
    "connect buffer_size 8": lambda w: fastsock.connect(w.tcp, buffer_size=8),
    "connect buffer_size str": lambda w: fastsock.connect(w.tcp, buffer_size="4096"),
    "connect max_frame -1": lambda w: fastsock.connect(w.tcp, max_frame=-1),
    "connect max_frame 2**32": lambda w: fastsock.connect(w.tcp, max_frame=2**32),
    "connect timeout -1": lambda w: fastsock.connect(w.tcp, timeout=-1),
    "connect timeout nan": lambda w: fastsock.connect(w.tcp, timeout=NAN),
    "connect timeout str": lambda w: fastsock.connect(w.tcp, timeout="1"),
    "connect port 70000 by name": lambda w: fastsock.connect(("localhost", 70000)),
    "connect port str by name": lambda w: fastsock.connect(("localhost", "80")),
    "connect host int": lambda w: fastsock.connect((127, w.port)),
    "connect address int": lambda w: fastsock.connect(80),
    "connect source_address int": lambda w: fastsock.connect(w.tcp, source_address=5),
    "connect source port -1": lambda w: fastsock.connect(
        w.tcp, source_address=("127.0.0.1", -1)),
    "connect by name bad buffer_size": lambda w: fastsock.connect(
        ("localhost", w.port), buffer_size=0),
    "connect unix bad max_frame": lambda w: fastsock.connect(w.path, max_frame=-5),
    # ---- listen() ----
    "listen unix buffer_size -1": lambda w: fastsock.listen(w.path, buffer_size=-1),
    "listen unix max_frame str": lambda w: fastsock.listen(w.path, max_frame="1"),
    "listen unix backlog str": lambda w: fastsock.listen(w.path, backlog="5"),
    "listen unix backlog 2**40": lambda w: fastsock.listen(w.path, backlog=2**40),
    "listen port 70000 by name": lambda w: fastsock.listen(("localhost", 70000)),
    "listen host float": lambda w: fastsock.listen((1.5, 0)),
    "listen by name bad buffer_size": lambda w: fastsock.listen(
        ("localhost", 0), buffer_size=1),
    # ---- socketpair() ----
    "socketpair buffer_size 3": lambda w: fastsock.socketpair(buffer_size=3),
    "socketpair max_frame str": lambda w: fastsock.socketpair(max_frame="x"),
    # ---- udp() ----
    "udp family str": lambda w: fastsock.udp(("127.0.0.1", 0), family="inet"),
    "udp port 70000": lambda w: fastsock.udp(("127.0.0.1", 70000)),
    "udp port by name": lambda w: fastsock.udp(("localhost", -1)),
    "udp connect port by name": lambda w: fastsock.udp(
        w.path, connect=("localhost", 70000)),
    "udp address int": lambda w: fastsock.udp(5),
    # ---- Server() ----
    "Server handler": lambda w: Server(w.path, "not callable"),
    "Server max_connections 0": lambda w: Server(w.path, handler, max_connections=0),
    "Server max_connections str": lambda w: Server(w.path, handler, max_connections="9"),
    "Server buffer_size 8": lambda w: Server(w.path, handler, buffer_size=8),
    "Server timeout 0": lambda w: Server(w.path, handler, timeout=0),
    "Server timeout str": lambda w: Server(w.path, handler, timeout="1"),
    "Server backlog str": lambda w: Server(w.path, handler, backlog="1"),
    "Server allow bad network": lambda w: Server(("127.0.0.1", 0), handler,
                                                 allow=["10.0.0.1/8"]),
    "Server allow networks on unix": lambda w: Server(w.path, handler,
                                                      allow=["10.0.0.0/8"]),
    "Server port by name": lambda w: Server(("localhost", 70000), handler),
    # ---- Listener, Stream construction ----
    "Listener buffer_size": lambda w: Listener(w.sock, buffer_size=0),
    "Listener not a socket": lambda w: Listener(object()),
    "Stream buffer_size": lambda w: Stream(w.sock, buffer_size=8),
    "Stream max_frame": lambda w: Stream(w.sock, max_frame=-1),
    # ---- Stream writes: nothing pending goes out either ----
    "Stream.write str": lambda w: (w.stream.write(b"pending"), w.stream.write("x")),
    "Stream.send_frame str": lambda w: w.stream.send_frame("text"),
    "Stream.send_frame int in sequence": lambda w: w.stream.send_frame([b"a", 5]),
    "Stream.writelines bad": lambda w: w.stream.writelines([5]),
    "Stream.readexactly -1": lambda w: w.stream.readexactly(-1),
    "Stream.read str": lambda w: w.stream.read("5"),
    "Stream.readline str": lambda w: w.stream.readline("5"),
    "Stream.readuntil empty": lambda w: w.stream.readuntil(b""),
    "Stream.readuntil limit 0": lambda w: w.stream.readuntil(b"\n", 0),
    "Stream.recv_frame_into bytes": lambda w: w.stream.recv_frame_into(b"ro"),
    "Stream.readinto bytes": lambda w: w.stream.readinto(b"ro"),
    "Stream.settimeout -1": lambda w: w.stream.settimeout(-1),
    # ---- Socket ----
    "Socket family str": lambda w: Socket("inet"),
    "Socket fileno -1": lambda w: Socket(fileno=-1),
    "Socket.connect port": lambda w: w.sock.connect(("127.0.0.1", 70000)),
    "Socket.connect_ex port": lambda w: w.fresh.connect_ex(("127.0.0.1", -1)),
    "Socket.connect address str": lambda w: w.fresh.connect("127.0.0.1"),
    "Socket.bind port": lambda w: w.fresh.bind(("127.0.0.1", 70000)),
    "Socket.listen str": lambda w: w.fresh.listen("5"),
    "Socket.send str": lambda w: w.sock.send("text"),
    "Socket.sendall str": lambda w: w.sock.sendall("text"),
    "Socket.sendall_buffers bad item": lambda w: w.sock.sendall_buffers([b"a", 5]),
    "Socket.sendmsg bad item": lambda w: w.sock.sendmsg([b"a", "b"]),
    "Socket.sendto bad port": lambda w: w.udp.sendto(b"x", ("127.0.0.1", 70000)),
    "Socket.sendto str": lambda w: w.udp.sendto("x", w.dgram.getsockname()),
    "Socket.send_batch bad item": lambda w: w.udp.send_batch(
        [b"a", 5], w.dgram.getsockname()),
    "Socket.send_batch bad address": lambda w: w.udp.send_batch(
        [b"a"], ("127.0.0.1", 70000)),
    "Socket.recv -1": lambda w: w.sock.recv(-1),
    "Socket.recv_into bytes": lambda w: w.sock.recv_into(b"ro"),
    "Socket.recv_into too many": lambda w: w.sock.recv_into(bytearray(2), 5),
    "Socket.recvfrom -1": lambda w: w.udp.recvfrom(-1),
    "Socket.recvmsg_into bytes": lambda w: w.sock.recvmsg_into([b"ro"]),
    "Socket.recv_batch not a batch": lambda w: w.udp.recv_batch(object()),
    "Socket.settimeout nan": lambda w: w.sock.settimeout(NAN),
    "Socket.setsockopt str": lambda w: w.sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, "big"),
    "Socket.sendfile offset -1": lambda w: w.sock.sendfile(w.file, offset=-1),
    "Socket.sendfile text file": lambda w: w.sock.sendfile(w.text),
    "DatagramBatch count 0": lambda w: DatagramBatch(0, 100),
    "DatagramBatch size -1": lambda w: DatagramBatch(4, -1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_fail_before_any_io(witness, case):
    if "unix" in case and not hasattr(socket, "AF_UNIX"):
        pytest.skip("no AF_UNIX here")
    with pytest.raises((TypeError, ValueError)):
        CASES[case](witness)
    # What a stream had pending must not have gone out either.
    witness.stream.settimeout(0)
    assert witness.saw_nothing() is None


def test_send_frame_too_large_sends_nothing():
    a, peer = socket.socketpair()
    with peer, Stream(a, max_frame=10) as stream:
        stream.write(b"pending")
        with pytest.raises(FrameTooLargeError):      # a ValueError
            stream.send_frame(b"x" * 11)
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(100)


def test_every_public_call_has_a_case():
    """A public name of the package or a public method of Socket/Stream
    that takes arguments appears in some case above."""
    names = " ".join(CASES)
    for name in ("connect", "listen", "socketpair", "udp", "Server",
                 "Listener", "Stream", "Socket", "DatagramBatch"):
        assert name in names, name
    for method in ("connect", "connect_ex", "bind", "listen", "send",
                   "sendall", "sendall_buffers", "sendmsg", "sendto",
                   "send_batch", "recv", "recv_into", "recvfrom",
                   "recvmsg_into", "recv_batch", "settimeout", "setsockopt",
                   "sendfile"):
        assert f"Socket.{method} " in names, method
    for method in ("write", "send_frame", "writelines", "read", "readline",
                   "readexactly", "readuntil", "recv_frame_into", "readinto",
                   "settimeout"):
        assert f"Stream.{method} " in names, method
