"""Differential check of EventServer's message splitter against a model.

One input picks a server (a framing, its limits, a buffer size) and the
chunks a client sends it over a Unix socket.  After each chunk the client
waits until the server has read all of it (SIOCOUTQ: the bytes of this
socket still unread by the peer), so every chunk is exactly one receive
of the loop.  Then the client ends its side, and what on_message received,
how the connection ended (on_close's exception) and the echoed replies
must match the model.

Servers are made once per process and kept (one per configuration).
"""
import atexit
import fcntl
import os
import queue
import shutil
import socket
import struct
import tempfile
import termios
import threading
import time

import fastsock
from fastsock import FrameTooLargeError, IncompleteReadError, LimitOverrunError

from streamcheck import Input

# (framing, max_frame or max_line, buffer_size)
CONFIGS = [
    ("frame", 300, 16), ("frame", 300, 65536), ("frame", 0, 64),
    ("line", 64, 16), ("line", 1, 16), ("line", 65536, 65536),
    (b"\r\n\r\n", 100, 16), (b"ab", 50, 64), ("raw", 0, 16),
]
WAIT = 5.0          # seconds: the server must take each chunk in this time


class Record:
    """What the server did with one connection."""

    def __init__(self):
        self.messages = []
        self.closed = threading.Event()
        self.error = None


class Server:
    def __init__(self, framing, limit, buffer_size):
        self.framing = framing
        self.limit = limit
        self.records = queue.Queue()
        self.dir = tempfile.mkdtemp(prefix="fastsock-fuzz-")
        self.path = os.path.join(self.dir, "s")
        limits = ({"max_frame": limit} if framing == "frame" else
                  {} if framing == "raw" else {"max_line": limit})
        self.server = fastsock.EventServer(
            self.path, self.on_message, framing=framing,
            on_connect=self.on_connect, on_close=self.on_close,
            buffer_size=buffer_size, **limits).start()

    def close(self):
        self.server.shutdown(timeout=1)
        shutil.rmtree(self.dir, ignore_errors=True)

    def on_connect(self, conn):
        conn.context = Record()
        self.records.put(conn.context)

    def on_message(self, conn, message):
        conn.context.messages.append(bytes(message))
        return message                      # echoed, framed the same way

    def on_close(self, conn, exc):
        conn.context.error = exc
        conn.context.closed.set()

    def split(self, data):
        """(messages, error the connection must end with) for a client that
        sent `data` then ended its side."""
        messages, pos = [], 0
        while pos < len(data):
            rest = data[pos:]
            if self.framing == "raw":     # one message per receive
                messages.append(rest)
                pos = len(data)
                break
            if self.framing == "frame":
                if len(rest) < 4:
                    break
                size = int.from_bytes(rest[:4], "big")
                if size > self.limit:
                    return messages, FrameTooLargeError()
                if len(rest) < 4 + size:
                    break
                messages.append(rest[4:4 + size])
                pos += 4 + size
                continue
            sep = b"\n" if self.framing == "line" else self.framing
            i = rest.find(sep, 0, self.limit)
            if i < 0:
                if len(rest) >= self.limit:
                    return messages, LimitOverrunError("", 0)
                break
            messages.append(rest[:i + len(sep)])
            pos += i + len(sep)
        if pos < len(data):
            return messages, IncompleteReadError(data[pos:], None)
        return messages, None

    def reply(self, messages):
        if self.framing == "frame":
            return b"".join(len(m).to_bytes(4, "big") + m for m in messages)
        return b"".join(messages)


SERVERS = {}


@atexit.register
def close_servers():
    while SERVERS:
        SERVERS.popitem()[1].close()


def unread(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                          b"\0\0\0\0"))[0]


def send_chunks(client, chunks):
    """Sends each chunk and waits until the server read it; stops early
    if the server ended the connection."""
    for chunk in chunks:
        try:
            client.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return
        deadline = time.monotonic() + WAIT
        while unread(client):
            assert time.monotonic() < deadline, "the server stopped reading"
            time.sleep(0.0001)


def check(data):
    inp = Input(data)
    config = CONFIGS[inp.byte() % len(CONFIGS)]
    if config not in SERVERS:
        SERVERS[config] = Server(*config)
    server = SERVERS[config]
    chunks = []
    while inp.left():
        chunk = inp.take(1 + inp.byte() % 64)
        if chunk:
            chunks.append(chunk)
    sent = b"".join(chunks)
    want, want_error = server.split(sent)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(WAIT)
        client.connect(server.path)
        record = server.records.get(timeout=WAIT)
        send_chunks(client, chunks)
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass                        # the server ended it already
        replies = b""
        while True:
            try:
                got = client.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            replies += got
        assert record.closed.wait(WAIT), "on_close never ran"
    finally:
        client.close()
    if server.framing == "raw":
        # However the receives cut it, all of it, in order.
        assert all(record.messages), (config, sent, record.messages)
        record.messages = [b"".join(record.messages)] if sent else []
    assert record.messages == want, (config, sent, record.messages, want)
    assert type(record.error) is type(want_error), (
        config, sent, record.error, want_error)
    if isinstance(want_error, IncompleteReadError):
        assert record.error.partial == want_error.partial, (
            config, sent, record.error.partial)
    echo = server.reply(want)
    if want_error is None or isinstance(want_error, IncompleteReadError):
        assert replies == echo, (config, sent, replies, echo)
    else:
        # Ended at once on a limit: the replies queued may be cut.
        assert echo.startswith(replies), (config, sent, replies, echo)
