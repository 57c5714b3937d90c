"""Differential check of Stream's readers against a plain Python model.

One input of arbitrary bytes is decoded into a stream's settings and a
script: writes of chunks to the peer, EOF, and read calls.  Everything
runs on one thread over an AF_UNIX socket pair, so the chunks the stream
receives are exactly the writes made between its reads.  The stream is
non-blocking (or has a tiny timeout), so a read that needs bytes not yet
written raises BlockingIOError (TimeoutError) and must consume nothing:
the model says, before each call, what must come out.

`check(data, ops)` runs one input; the fuzz targets and the replay test
in tests/ call it.  No atheris here, so the corpus replays without it.
"""
import socket

import fastsock
from fastsock import FrameTooLargeError, IncompleteReadError, LimitOverrunError

BLOCK = object()    # the call must wait for bytes that were not sent yet


class Input:
    """Reads numbers and bytes off the front of the fuzzer's input."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def left(self):
        return len(self.data) - self.pos

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n):
        b = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(b)
        return b


class Model:
    """What the peer sent and the stream has not handed out yet."""

    def __init__(self, max_frame):
        self.pending = bytearray()
        self.eof = False
        self.broken = False         # a too-large frame header was seen
        self.max_frame = max_frame

    def consume(self, n):
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    # Each method returns the value the call must return, BLOCK, or an
    # exception instance (type and attributes must match), and consumes.

    def read(self, n):
        p = self.pending
        if n < 0:
            return self.consume(len(p)) if self.eof else BLOCK
        if len(p) >= n or self.eof:
            return self.consume(n)
        return BLOCK

    def readexactly(self, n):
        p = self.pending
        if len(p) >= n:
            return self.consume(n)
        if self.eof:
            return IncompleteReadError(self.consume(len(p)), n)
        return BLOCK

    def readline(self, limit):
        p = self.pending
        i = p.find(b"\n")
        if i >= 0 and (limit < 0 or i + 1 <= limit):
            return self.consume(i + 1)
        if 0 <= limit <= len(p):
            return self.consume(limit)
        return self.consume(len(p)) if self.eof else BLOCK

    def readuntil(self, sep, limit):
        p = self.pending
        i = p.find(sep)
        if i > limit or (i < 0 and len(p) - len(sep) + 1 > limit):
            return LimitOverrunError("", 0)
        if i >= 0:
            return self.consume(i + len(sep))
        if self.eof:
            return IncompleteReadError(self.consume(len(p)), None)
        return BLOCK

    def frame(self, room=None, eof_ok=False):
        """recv_frame (room None), recv_frame_into(buffer of `room` bytes),
        or a frames() iterator's next (eof_ok)."""
        p = self.pending
        if self.broken:
            return fastsock.Error()
        if len(p) < 4:
            if not self.eof:
                return BLOCK
            if not p:
                return StopIteration() if eof_ok else EOFError()
            return IncompleteReadError(self.consume(len(p)), 4)
        size = int.from_bytes(p[:4], "big")
        if size > self.max_frame:
            self.broken = True
            return FrameTooLargeError()
        if room is not None and size > room:
            return ValueError()
        if len(p) >= 4 + size:
            self.consume(4)
            return self.consume(size)
        if self.eof:
            self.consume(4)
            return IncompleteReadError(self.consume(len(p)), size)
        return BLOCK


def same_error(got, want):
    if type(got) is not type(want):
        return False
    if isinstance(want, IncompleteReadError):
        return got.partial == want.partial and got.expected == want.expected
    return True


class Run:
    """One decoded input: a stream, its peer, the model, the script."""

    def __init__(self, data):
        self.inp = Input(data)
        b = self.inp.byte()
        # Small buffers reach the paths that grow the buffer and that read
        # large messages straight into their destination.
        self.bufsize = 65536 if b == 255 else 16 + b % 64
        b = self.inp.byte()
        max_frame = 16 << 20 if b == 255 else b * 3
        self.timeout = 0.0005 if self.inp.byte() & 1 else 0.0
        self.blocked = TimeoutError if self.timeout else BlockingIOError
        self.model = Model(max_frame)
        a, b = socket.socketpair()
        self.peer = a
        try:
            self.stream = fastsock.Stream(b, buffer_size=self.bufsize,
                                          max_frame=max_frame)
        except BaseException:
            a.close()
            b.close()
            raise
        self.stream.settimeout(self.timeout)

    def close(self):
        self.peer.close()
        self.stream.close()

    def size(self):
        """A read size: mostly small, sometimes at the buffer's edges."""
        b = self.inp.byte()
        if b < 200:
            return b
        r = self.bufsize
        edges = (-1, r - 1, r, r + 1, 2 * r, 2 * r + 3, 4 * r + 5)
        return edges[b % len(edges)]

    def separator(self):
        n = 1 + self.inp.byte() % 4
        return self.inp.take(n) or b"\n"

    # ---- the script's steps ----------------------------------------------

    def write(self):
        n = self.inp.byte()
        chunk = self.inp.take(n)
        if not self.model.eof and chunk:
            self.peer.sendall(chunk)
            self.model.pending += chunk

    def write_eof(self):
        if not self.model.eof:
            self.peer.shutdown(socket.SHUT_WR)
            self.model.eof = True

    def expect(self, want, call, *args, result=None):
        """Runs call(*args) and compares it with the model's answer.
        `result` maps the call's return value to what is compared."""
        try:
            got = call(*args)
        except BaseException as exc:    # compared below, then re-raised
            if want is BLOCK and type(exc) is self.blocked:
                return
            if isinstance(want, BaseException) and same_error(exc, want):
                return
            raise AssertionError(
                f"{call.__name__}{args}: raised {exc!r}, model says "
                f"{want!r}") from exc
        if result is not None:
            got = result(got)
        if isinstance(want, BaseException) or want is BLOCK or got != want:
            raise AssertionError(
                f"{call.__name__}{args}: returned {got!r}, model says "
                f"{want!r}")

    def expect_prefix(self, call, limit, consumes, *args, result=None):
        """Calls whose result is whatever is buffered (read1, readinto1,
        peek): a non-empty prefix of the pending bytes, at most `limit`
        long (None: any), or b"" at EOF; they consume what they return."""
        m = self.model
        if limit == 0:
            want = b""
        elif not m.pending:
            want = b"" if m.eof else BLOCK
        else:
            want = None
        try:
            got = call(*args)
        except BaseException as exc:
            if want is BLOCK and type(exc) is self.blocked:
                return
            raise AssertionError(
                f"{call.__name__}{args}: raised {exc!r}, pending "
                f"{bytes(m.pending)!r} eof={m.eof}") from exc
        if result is not None:
            got = result(got)
        if want is None:
            ok = (0 < len(got) <= (limit if limit and limit > 0 else len(got))
                  and m.pending.startswith(got))
        else:
            ok = got == want
        if not ok:
            raise AssertionError(
                f"{call.__name__}{args}: returned {got!r}, pending "
                f"{bytes(m.pending)!r} eof={m.eof} limit={limit}")
        if consumes:
            m.consume(len(got))

    def read(self):
        n = self.size()
        self.expect(self.model.read(n), self.stream.read, n)

    def read1(self):
        n = self.size()
        self.expect_prefix(self.stream.read1, n, True, n)

    def readinto(self):
        n = max(self.size(), 0)
        buf = bytearray(n)
        self.expect(self.model.read(n), self.stream.readinto, buf,
                    result=lambda k: bytes(buf[:k]))

    def readinto1(self):
        n = max(self.size(), 0)
        buf = bytearray(n)
        self.expect_prefix(self.stream.readinto1, n, True, buf,
                           result=lambda k: bytes(buf[:k]))

    def readexactly(self):
        n = max(self.size(), 0)
        self.expect(self.model.readexactly(n), self.stream.readexactly, n)

    def peek(self):
        self.expect_prefix(self.stream.peek, None, False, self.size())

    def readline(self):
        n = self.size()
        self.expect(self.model.readline(n), self.stream.readline, n)

    def next_line(self):
        want = self.model.readline(-1)
        if want == b"":
            want = StopIteration()
        self.expect(want, next, self.stream)

    def readuntil(self):
        sep = self.separator()
        limit = max(self.size(), 1)
        self.expect(self.model.readuntil(sep, limit), self.stream.readuntil,
                    sep, limit)

    def readlines(self):
        # readlines reads to EOF: only then has it a model's answer.
        if self.model.eof:
            want = []
            while self.model.pending:
                want.append(self.model.readline(-1))
            self.expect(want, self.stream.readlines)

    def recv_frame(self):
        self.expect(self.model.frame(), self.stream.recv_frame)

    def recv_frame_into(self):
        n = max(self.size(), 0)
        buf = bytearray(n)
        want = self.model.frame(room=n)
        if isinstance(want, bytes):
            want = (len(want), want)
        self.expect(want, self.stream.recv_frame_into, buf,
                    result=lambda k: (k, bytes(buf[:k])))

    def next_frame(self):
        self.expect(self.model.frame(eof_ok=True), next, self.stream.frames())

    def finish(self):
        """At the end: EOF, and the rest comes out whole."""
        self.write_eof()
        self.expect(self.model.read(-1), self.stream.read)
        self.expect(b"", self.stream.read)


FRAMES = (Run.write, Run.write, Run.write_eof, Run.recv_frame,
          Run.recv_frame_into, Run.next_frame, Run.peek)
LINES = (Run.write, Run.write, Run.write_eof, Run.readline, Run.readuntil,
         Run.next_line, Run.readlines, Run.peek)
STREAM = (Run.write, Run.write, Run.write, Run.write_eof, Run.read, Run.read1,
          Run.readinto, Run.readinto1, Run.readexactly, Run.peek,
          Run.readline, Run.readuntil, Run.next_line, Run.recv_frame,
          Run.recv_frame_into, Run.next_frame)


def check(data, steps):
    """Runs one input: raises AssertionError where the stream and the
    model disagree."""
    run = Run(data)
    try:
        while run.inp.left():
            steps[run.inp.byte() % len(steps)](run)
        run.finish()
    finally:
        run.close()
