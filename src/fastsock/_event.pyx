"""One event loop in C for many stream connections (EventServer's core).

The loop waits on the shim's poller with the GIL released, then, holding
the GIL once for the whole batch of ready sockets: accepts, receives into
one buffer that the loop owns, splits messages (frames, lines, a
delimiter, or raw receives) with the helpers Stream uses, calls
on_message once per message, and before it waits again writes each
connection's gathered replies with one system call.  A connection keeps
memory of its own only for a partial message or unsent replies.

Sockets are non-blocking: every receive and send is tried and returns at
once (EAGAIN), so nothing but the wait can block.  A new connection is read
as soon as it is accepted and joins the poller only if it is still open
after that: a short request/response connection costs accept, receive,
send and close.  See _event.pxd for the
threading rules.
"""
import errno
import logging
import socket as _stdlib

cimport cython
from cpython.buffer cimport PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memmove

from fastsock._shim cimport *
from fastsock._socket cimport (Socket, get_read_buffer, make_address,
                               ms_until, raise_oserror)
from fastsock._split cimport HEADER, find_sep, frame_length, put_header

from fastsock._errors import (Error, FrameTooLargeError, IncompleteReadError,
                             LimitOverrunError)

log = logging.getLogger("fastsock")

cdef enum:
    FRAME = 0
    LINE = 1
    DELIM = 2
    RAW = 3
    MAX_EVENTS = 256
    # Messages handled per connection per pass: a client that pipelines
    # without pause gets this many, then the others get their turn (as
    # memcached's reqs_per_event).
    BUDGET = 32
    # Replies up to this size are copied into the connection's write
    # buffer (one iovec for many small replies, the object freed at once);
    # larger ones are pinned and sent from the caller's memory.
    COPY_MAX = 4096
    # Buffers gathered into one send.
    IOV_BATCH = 64
    # Connections accepted per pass before the others are served.
    ACCEPT_BATCH = 64
    # Room for the rest of a partial line or delimited message.
    MIN_ROOM = 16384

cdef int IPPROTO_TCP = _stdlib.IPPROTO_TCP
cdef int TCP_NODELAY = _stdlib.TCP_NODELAY
cdef int AF_INET = _stdlib.AF_INET
cdef int AF_INET6 = _stdlib.AF_INET6
# accept() failures that mean the process or system is out of something:
# the pending connection stays queued and the listener stays readable, so
# accepting again at once would spin; the loop pauses accepting instead.
cdef tuple OUT_OF = tuple(-e for e in (FS_EMFILE, FS_ENFILE, FS_ENOBUFS,
                                       FS_ENOMEM))
cdef int64_t BACKOFF_FIRST = 5000000        # 5 ms, doubling
cdef int64_t BACKOFF_MAX = 1000000000       # 1 s

cdef dict FRAMINGS = {"frame": FRAME, "line": LINE, "raw": RAW}


cdef object os_error(int code):
    """The stdlib's OSError subclass for a negative FS_E* code, not raised."""
    try:
        raise_oserror(code)
    except OSError as exc:
        return exc


cdef inline void copy(void *dst, const void *src, size_t n) noexcept nogil:
    if n:
        memcpy(dst, src, n)


@cython.final
@cython.auto_pickle(False)
cdef class EventConnection:
    """One connection of an EventServer; see the EventServer docs.

    ``send``, ``send_frame``, ``sendall_buffers`` and ``close`` may be
    called from any thread; the rest only from the loop's thread (the
    callbacks)."""

    def __cinit__(self):
        # Dead until the loop admits it: one made from Python has no loop.
        self.fd = FS_INVALID_SOCKET
        self.dead = True

    def __dealloc__(self):
        self.release_output()
        self.free_input()

    def __repr__(self):
        state = "closed" if self.dead else "open"
        return f"<fastsock.EventConnection {state} {self.address_!r}>"

    # ---- queueing output -------------------------------------------------

    cdef int check_sendable(self) except -1:
        if self.dead or self.broken or self.closing:
            raise BrokenPipeError(errno.EPIPE, "the connection is closed")
        return 0

    cdef int check_loop_thread(self) except -1:
        if self.loop is None:
            raise RuntimeError("this connection has no event loop")
        if (self.loop.loop_thread != 0
                and PyThread_get_thread_ident() != self.loop.loop_thread):
            raise RuntimeError("only the event loop's thread may call this")
        return 0

    cdef out_piece *new_piece(self) except NULL:
        cdef out_piece *q
        cdef Py_ssize_t cap
        if self.qlen == self.qcap:
            if self.qhead > 0:
                # Sent pieces at the front: reuse their room.
                memmove(self.q, self.q + self.qhead,
                        (self.qlen - self.qhead) * sizeof(out_piece))
                self.qlen -= self.qhead
                self.qhead = 0
            else:
                cap = self.qcap * 2 if self.qcap else 8
                q = <out_piece *>PyMem_Realloc(self.q, cap * sizeof(out_piece))
                if q == NULL:
                    raise MemoryError()
                self.q = q
                self.qcap = cap
        self.qlen += 1
        return &self.q[self.qlen - 1]

    cdef int push_copy(self, const char *p, Py_ssize_t n) except -1:
        cdef out_piece *last
        cdef char *w
        cdef Py_ssize_t cap
        if n == 0:
            return 0
        if self.wlen + n > self.wcap:
            self.compact_wbuf()
        if self.wlen + n > self.wcap:
            cap = max(self.wcap * 2, self.wlen + n, 1024)
            w = <char *>PyMem_Realloc(self.wbuf, cap)
            if w == NULL:
                raise MemoryError()
            self.wbuf = w
            self.wcap = cap
        copy(self.wbuf + self.wlen, p, n)
        # Bytes that follow the last copied piece extend it: many small
        # replies become one iovec.
        last = &self.q[self.qlen - 1] if self.qlen > self.qhead else NULL
        if (last != NULL and not last.pinned
                and last.off + last.len == self.wlen):
            last.len += n
        else:
            last = self.new_piece()
            last.pinned = False
            last.off = self.wlen
            last.len = n
        self.wlen += n
        self.queued += n
        return 0

    cdef void compact_wbuf(self) noexcept:
        # Copied bytes already sent are at the front of wbuf: when they are
        # at least half of it, move the rest down, so that wbuf follows
        # what is queued, not what was ever sent (the queue of a busy
        # connection may never be empty).
        cdef Py_ssize_t i, lo = self.wlen
        for i in range(self.qhead, self.qlen):
            if not self.q[i].pinned:
                lo = self.q[i].off
                break
        if lo == 0 or lo * 2 < self.wlen:
            return
        memmove(self.wbuf, self.wbuf + lo, self.wlen - lo)
        self.wlen -= lo
        for i in range(self.qhead, self.qlen):
            if not self.q[i].pinned:
                self.q[i].off -= lo

    cdef int push_view(self, Py_buffer *view) except -1:
        # Takes over a pinned view: copies a small one (and releases it),
        # queues a large one as it is, released once sent.
        cdef out_piece *piece
        if view.len <= COPY_MAX:
            try:
                self.push_copy(<const char *>view.buf, view.len)
            finally:
                PyBuffer_Release(view)
            return 0
        try:
            piece = self.new_piece()
        except BaseException:
            PyBuffer_Release(view)
            raise
        memcpy(&piece.view, view, sizeof(Py_buffer))
        piece.pinned = True
        piece.off = 0
        piece.len = view.len
        self.queued += view.len
        return 0

    cdef int push_object(self, object obj) except -1:
        cdef Py_buffer view
        get_read_buffer(obj, &view)
        return self.push_view(&view)

    cdef int push_frame(self, object payload) except -1:
        cdef char head[HEADER]
        cdef Py_buffer view
        cdef Py_ssize_t total = 0
        if isinstance(payload, (list, tuple)):
            parts = [memoryview(part).cast("B") for part in payload]
            for part in parts:
                total += len(part)
            self.check_frame_size(total)
            put_header(head, total)
            self.push_copy(head, HEADER)
            for part in parts:
                self.push_object(part)
            return 0
        get_read_buffer(payload, &view)
        try:
            self.check_frame_size(view.len)
            put_header(head, view.len)
            self.push_copy(head, HEADER)
        except BaseException:
            PyBuffer_Release(&view)
            raise
        return self.push_view(&view)

    cdef int check_frame_size(self, Py_ssize_t n) except -1:
        if n > self.loop.max_frame:
            raise FrameTooLargeError(
                f"frame of {n} bytes is over max_frame ({self.loop.max_frame})")
        return 0

    cdef int queued_more(self) except -1:
        cdef EventLoop loop = self.loop
        if self.queued > loop.max_buffer:
            # The peer does not read: drop what is queued and end the
            # connection at the loop's next pass.
            self.broken = True
            self.error = Error(
                f"{self.queued} bytes queued, over max_buffer "
                f"({loop.max_buffer}): the peer does not read")
        loop.mark_dirty(self)
        return 0

    def send(self, data):
        """Queues ``data`` (any bytes-like object); never blocks.  Small
        data is copied, a large buffer is held (not copied) until sent."""
        self.check_sendable()
        self.push_object(data)
        self.queued_more()

    def send_frame(self, payload):
        """Queues one frame: a 4-byte big-endian length, then ``payload``
        (a buffer, or a list or tuple of buffers sent as one frame)."""
        self.check_sendable()
        self.push_frame(payload)
        self.queued_more()

    def sendall_buffers(self, buffers):
        """Queues every buffer of ``buffers``, in order."""
        self.check_sendable()
        # Taken whole first: iterating runs Python code, during which
        # another thread could queue its own sends between these.
        for b in tuple(buffers):
            self.push_object(b)
        self.queued_more()

    def close(self):
        """Ends the connection once everything queued is sent."""
        if self.dead or self.closing:
            return
        self.closing = True
        self.loop.mark_dirty(self)

    def abort(self):
        """Ends the connection now; what is queued is dropped."""
        self.check_loop_thread()
        if not self.dead:
            self.loop.end(self, None)

    def pause_reading(self):
        """Stops reading (and handling) this connection's messages."""
        self.check_loop_thread()
        if not self.user_paused:
            self.user_paused = True
            self.loop.update_interest(self)

    def resume_reading(self):
        self.check_loop_thread()
        if self.user_paused:
            self.user_paused = False
            if self.backlog:
                self.loop.queue_ready(self)
            self.loop.update_interest(self)

    @property
    def address(self):
        """The peer's address."""
        return self.address_

    @property
    def buffered(self):
        """Bytes queued and not sent yet."""
        return self.queued

    @property
    def closed(self):
        return self.dead or self.closing or self.broken

    # ---- memory ----------------------------------------------------------

    cdef void release_output(self) noexcept:
        cdef Py_buffer view
        cdef out_piece *piece
        while self.qhead < self.qlen:
            piece = &self.q[self.qhead]
            self.qhead += 1
            if piece.pinned:
                piece.pinned = False
                memcpy(&view, &piece.view, sizeof(Py_buffer))
                PyBuffer_Release(&view)
        PyMem_Free(self.q)
        PyMem_Free(self.wbuf)
        self.q = NULL
        self.wbuf = NULL
        self.qhead = self.qlen = self.qcap = 0
        self.wlen = self.wcap = 0
        self.queued = 0

    cdef void free_input(self) noexcept:
        PyMem_Free(self.ibuf)
        self.ibuf = NULL
        self.ipos = self.ilen = self.icap = self.iscan = 0


@cython.final
@cython.auto_pickle(False)
cdef class EventLoop:
    """The loop behind fastsock.EventServer (which checks the arguments)."""

    def __cinit__(self):
        self.lfd = FS_INVALID_SOCKET
        self.stop_deadline = -1

    def __init__(self, Socket listener, on_message, *, framing, on_connect,
                 on_close, allow, Py_ssize_t buffer_size, Py_ssize_t max_frame,
                 Py_ssize_t max_line, Py_ssize_t high_water,
                 Py_ssize_t low_water, Py_ssize_t max_buffer,
                 Py_ssize_t max_connections, double idle_timeout,
                 bint nodelay, str backend):
        cdef int r
        if self.poller != NULL or self.rbuf != NULL:
            raise RuntimeError("the event loop is already initialized")
        if isinstance(framing, bytes):
            self.framing = LINE if framing == b"\n" else DELIM
            self.delim = framing
        else:
            self.framing = FRAMINGS[framing]
            self.delim = b"\n"
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_close = on_close
        self.allow = allow
        self.buffer_size = buffer_size
        self.max_frame = max_frame
        self.max_line = max_line
        self.high_water = high_water
        self.low_water = low_water
        self.max_buffer = max_buffer
        self.max_conns = max_connections
        self.idle_ns = <int64_t>(idle_timeout * 1e9) if idle_timeout > 0 else 0
        self.nodelay = nodelay
        self.conns = set()
        self.dirty = []
        self.ready = []
        self.ended = []
        self.rbuf = <char *>PyMem_Malloc(buffer_size)
        if self.rbuf == NULL:
            raise MemoryError()
        r = fs_poller_new(FS_POLLER_POLL if backend == "poll"
                          else FS_POLLER_DEFAULT, &self.poller)
        if r < 0:
            raise_oserror(r)
        self.backend = fs_poller_name(self.poller).decode()
        self.listener = listener
        self.lfd = listener.fd
        self.family = listener.family_
        listener.setblocking(False)
        self.listen_on(True)

    def __dealloc__(self):
        if self.poller != NULL:
            fs_poller_free(self.poller)
        PyMem_Free(self.rbuf)

    @property
    def connections(self):
        return len(self.conns)

    @property
    def running(self):
        return self.running

    # ---- the loop ----------------------------------------------------------

    def run(self):
        """Serves until shutdown; returns once every connection has ended."""
        if self.running:
            raise RuntimeError("the event loop is already running")
        if self.poller == NULL:
            raise RuntimeError("the event loop has ended")
        self.running = True
        self.loop_thread = PyThread_get_thread_ident()
        try:
            while True:
                if self.stop_requested and not self.stopping:
                    self.begin_stop()
                if self.stopping and not self.conns:
                    break
                self.poll_once()
                # Checked after a pass, so that even timeout 0 sends the
                # replies to the messages begin_stop handled.
                if (self.stopping and self.stop_deadline >= 0
                        and fs_monotonic_ns() >= self.stop_deadline):
                    break
        finally:
            # Shutdown's time ran out, or the loop raised (Ctrl-C): abort
            # what is left, and tell the application about each, even if
            # an on_close raises KeyboardInterrupt (raised after the rest).
            pending = None
            try:
                for conn in list(self.conns):
                    self.end(conn, ConnectionAbortedError(
                        errno.ECONNABORTED,
                        "shutdown timed out" if self.stopping
                        else "server stopped"))
                while self.ended:
                    try:
                        self.report_ended()
                    except BaseException as exc:
                        if pending is None:
                            pending = exc
            finally:
                self.listen_on(False)
                self.listener = None
                self.lfd = FS_INVALID_SOCKET
                fs_poller_free(self.poller)
                self.poller = NULL
                self.running = False
                self.loop_thread = 0
            if pending is not None:
                raise pending

    def in_loop_thread(self):
        return (self.loop_thread != 0
                and PyThread_get_thread_ident() == self.loop_thread)

    def request_stop(self, timeout=None):
        """Begins a graceful shutdown; any thread, or a callback.  A
        later call may only bring the deadline closer."""
        cdef int64_t deadline
        if timeout is not None:
            deadline = fs_monotonic_ns() + <int64_t>(max(0.0, timeout) * 1e9)
            if self.stop_deadline < 0 or deadline < self.stop_deadline:
                self.stop_deadline = deadline
        self.stop_requested = True
        self.wake()

    cdef int wake(self) except -1:
        cdef int r
        if (self.poller != NULL and self.loop_thread != 0
                and PyThread_get_thread_ident() != self.loop_thread):
            r = fs_poller_wake(self.poller)
            if r < 0:
                raise_oserror(r)
        return 0

    cdef int poll_once(self) except -1:
        cdef int n, i, ms = self.timeout_ms()
        cdef fs_pevent_t *ev
        with nogil:
            n = fs_poller_wait(self.poller, self.events, MAX_EVENTS, ms)
        if n < 0:
            if n == FS_EINTR:
                PyErr_CheckSignals()      # raises if a handler did
                return 0
            raise_oserror(n)
        for i in range(n):
            ev = &self.events[i]
            if ev.data == NULL:
                self.accept_some()
            else:
                # Borrowed: self.conns holds every live connection, and
                # one that ends stays in self.ended until the pass is over.
                self.handle(<EventConnection>ev.data, ev.events)
        if self.ready:
            self.run_backlog()
        if self.idle_ns:
            self.expire_idle()
        if self.accept_resume and fs_monotonic_ns() >= self.accept_resume:
            self.accept_resume = 0
            self.listen_on(True)
        # Replies go out before the loop waits again.
        self.flush_dirty()
        self.report_ended()
        return 0

    cdef int timeout_ms(self) except? -2:
        cdef int64_t until = -1
        if self.ready or self.dirty or self.stop_requested and not self.stopping:
            return 0
        if self.idle_head is not None:
            until = self.idle_head.last_ns + self.idle_ns
        if self.accept_resume and (until < 0 or self.accept_resume < until):
            until = self.accept_resume
        if self.stop_deadline >= 0 and (until < 0 or self.stop_deadline < until):
            until = self.stop_deadline
        if until < 0:
            return -1
        return min(ms_until(until, fs_monotonic_ns()), 3600 * 1000)

    # ---- accepting -----------------------------------------------------------

    cdef int listen_on(self, bint on) except -1:
        cdef int r
        if on == self.listening or self.lfd == FS_INVALID_SOCKET:
            return 0
        if on:
            if (self.stopping or self.accept_resume
                    or 0 <= self.max_conns <= len(self.conns)):
                return 0
            r = fs_poller_add(self.poller, self.lfd, FS_POLLIN, NULL)
        else:
            r = fs_poller_del(self.poller, self.lfd)
        if r < 0:
            raise_oserror(r)
        self.listening = on
        return 0

    cdef int accept_some(self) except -1:
        cdef fs_addr_t addr
        cdef fs_sock_t fd
        cdef int r, k
        for k in range(ACCEPT_BATCH):
            if not self.listening:
                return 0
            addr.len = FS_ADDR_ROOM
            r = fs_accept_nonblocking(self.lfd, fs_addr_sa(&addr), &addr.len,
                                      &fd)
            if r < 0:
                if r == FS_EAGAIN:
                    return 0
                if r == FS_EINTR:
                    PyErr_CheckSignals()
                    continue
                if -r in OUT_OF:
                    # Out of descriptors or memory: try again after a
                    # back-off (doubling to a second), or as soon as a
                    # connection ends.
                    self.accept_backoff = min(
                        self.accept_backoff * 2 or BACKOFF_FIRST, BACKOFF_MAX)
                    log.warning("accept: %s; pausing %.3f s",
                                os_error(r), self.accept_backoff / 1e9)
                    self.listen_on(False)
                    self.accept_resume = fs_monotonic_ns() + self.accept_backoff
                    return 0
                if r == FS_EBADF or r == FS_EINVAL:
                    raise_oserror(r)
                continue                  # this connection only (aborted)
            self.accept_backoff = 0
            self.admit(fd, make_address(&addr))
        return 0

    cdef int admit(self, fs_sock_t fd, object address) except -1:
        cdef int one = 1
        cdef int r
        cdef EventConnection conn
        if self.allow is not None and (self.family == AF_INET
                                       or self.family == AF_INET6):
            try:
                ok = bool(self.allow(address))
            except Exception:
                log.exception("allow(%r) raised; refusing the peer", address)
                ok = False
            except BaseException:
                fs_close(fd)                  # KeyboardInterrupt: not leaked
                raise
            if not ok:
                fs_close(fd)
                self.refused += 1
                return 0
        if self.nodelay and (self.family == AF_INET or self.family == AF_INET6):
            fs_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
        conn = EventConnection.__new__(EventConnection)
        conn.loop = self
        conn.fd = fd
        conn.dead = False
        conn.address_ = address
        self.conns.add(conn)
        self.touch(conn)
        if 0 <= self.max_conns <= len(self.conns):
            self.listen_on(False)
        if self.on_connect is not None:
            try:
                self.on_connect(conn)
            except Exception as exc:
                log.exception("on_connect raised; closing the connection")
                conn.error = exc
                conn.closing = True
                self.mark_dirty(conn)
        # Try first: a client's request is usually there by the time its
        # connection is accepted, and a connection that is answered and
        # closed in this pass never touches the poller.  Registered after,
        # with what it then waits for.
        self.handle(conn, FS_POLLIN)
        return self.settle(conn)

    # ---- reading and splitting ----------------------------------------------

    cdef bint can_deliver(self, EventConnection conn) noexcept:
        return not (conn.dead or conn.closing or conn.broken
                    or conn.user_paused or conn.throttled)

    cdef int handle(self, EventConnection conn, int events) except -1:
        cdef int err
        if conn.dead:
            return 0
        if events & FS_POLLERR:
            # An error or hang-up: the receive or send that the connection
            # is waiting for tells which (EOF, or the error).  One waiting
            # for neither (paused) ends with the socket's error.
            if not conn.interest:
                err = fs_connect_result(conn.fd)
                return self.end(conn, os_error(err) if err < 0
                                else ConnectionResetError(errno.ECONNRESET,
                                                          "hang-up"))
            events |= conn.interest
        if events & FS_POLLOUT and conn.wblocked:
            self.flush(conn)
        if (events & FS_POLLIN and not conn.backlog and not conn.eof
                and self.can_deliver(conn)):
            self.read(conn)
            self.flush_replies(conn)
        return 0

    cdef int read(self, EventConnection conn) except -1:
        cdef fs_ssize_t n
        cdef Py_ssize_t used
        cdef bint into_ibuf = conn.ilen > conn.ipos
        if into_ibuf:
            try:
                self.make_room(conn)
            except MemoryError as exc:
                return self.end(conn, exc)    # this connection only
            n = fs_recv(conn.fd, conn.ibuf + conn.ilen, conn.icap - conn.ilen, 0)
        else:
            n = fs_recv(conn.fd, self.rbuf, self.buffer_size, 0)
        if n < 0:
            if n == FS_EAGAIN:
                return 0
            if n == FS_EINTR:
                PyErr_CheckSignals()
                return 0                   # level-triggered: comes back
            return self.fail(conn, <int>n)
        if n == 0:
            conn.eof = True
            if conn.ilen > conn.ipos and conn.error is None:
                conn.error = IncompleteReadError(
                    PyBytes_FromStringAndSize(conn.ibuf + conn.ipos,
                                              conn.ilen - conn.ipos),
                    (HEADER + frame_length(conn.ibuf + conn.ipos))
                    if self.framing == FRAME and conn.ilen - conn.ipos >= HEADER
                    else None)
            return self.settle(conn)
        if self.idle_ns:
            self.touch(conn)
        if self.framing == RAW:
            return self.deliver(conn, self.rbuf, n)
        if into_ibuf:
            conn.ilen += n
            used = self.split(conn, conn.ibuf + conn.ipos, conn.ilen - conn.ipos)
            conn.ipos += used
            if conn.ipos == conn.ilen:
                conn.free_input()
        else:
            used = self.split(conn, self.rbuf, n)
            if used < n and not conn.dead:
                try:
                    self.keep(conn, self.rbuf + used, n - used)
                except MemoryError as exc:
                    self.end(conn, exc)       # this connection only
        return 0

    cdef int keep(self, EventConnection conn, const char *p,
                  Py_ssize_t n) except -1:
        # What a receive left over: the start of a message, or messages
        # that the fairness bound deferred.  A partial frame gets room for
        # more of itself, so the next receive goes straight to its place,
        # but no more than about what has arrived: a header alone, which
        # anyone can send, reserves MIN_ROOM, not the max_frame it may
        # announce.
        cdef Py_ssize_t cap = n
        if (self.framing == FRAME and n >= HEADER and not conn.backlog
                and frame_length(p) <= self.max_frame):
            cap = min(HEADER + frame_length(p), n + max(n, MIN_ROOM))
        conn.ibuf = <char *>PyMem_Malloc(max(cap, 1))
        if conn.ibuf == NULL:
            raise MemoryError()
        memcpy(conn.ibuf, p, n)
        conn.ipos = 0
        conn.ilen = n
        conn.icap = max(cap, 1)
        return 0

    cdef int make_room(self, EventConnection conn) except -1:
        cdef Py_ssize_t have = conn.ilen - conn.ipos, want, need, room
        cdef char *p
        if conn.ipos:
            memmove(conn.ibuf, conn.ibuf + conn.ipos, have)
            conn.ipos = 0
            conn.ilen = have
        room = min(MIN_ROOM, self.buffer_size)
        if self.framing == FRAME and have >= HEADER:
            # The rest of the frame, but at most as much again as has
            # arrived: the buffer doubles as the bytes come, so its size
            # stays within twice what the peer really sent.
            need = HEADER + frame_length(conn.ibuf) - have
            room = max(room, min(need, max(have, MIN_ROOM)))
        want = have + room
        if want > conn.icap:
            p = <char *>PyMem_Realloc(conn.ibuf, want)
            if p == NULL:
                raise MemoryError()
            conn.ibuf = p
            conn.icap = want
        return 0

    cdef Py_ssize_t split(self, EventConnection conn, const char *base,
                          Py_ssize_t have) except -1:
        # Hands complete messages in base[0..have) to on_message, at most
        # BUDGET of them, and returns the bytes they took.  Sets
        # conn.backlog when it stopped with a complete message left.
        cdef Py_ssize_t pos = 0, size = 0, end
        cdef int budget = BUDGET
        cdef const char *sep = PyBytes_AS_STRING(self.delim)
        cdef Py_ssize_t seplen = len(self.delim)
        conn.backlog = False
        while pos < have:
            if self.framing == FRAME:
                if have - pos < HEADER:
                    break
                size = frame_length(base + pos)
                if size > self.max_frame:
                    self.end(conn, FrameTooLargeError(
                        f"frame of {size} bytes announced, over max_frame "
                        f"({self.max_frame})"))
                    return have
                end = pos + HEADER + size
                if end > have:
                    break
            else:
                # A partial line kept from earlier receives was searched
                # already up to conn.iscan: a line arriving in many small
                # pieces costs one pass over its bytes, not one per piece.
                end = find_sep(base + pos, min(have - pos, self.max_line),
                               sep, seplen, conn.iscan)
                if end < 0:
                    conn.iscan = max(0, have - pos - seplen + 1)
                    if have - pos >= self.max_line:
                        self.end(conn, LimitOverrunError(
                            f"no separator within max_line "
                            f"({self.max_line}) bytes", have - pos))
                        return have
                    break
                end = pos + end + seplen
                conn.iscan = 0
            if budget == 0 or not self.can_deliver(conn):
                if not conn.dead:
                    conn.backlog = True
                    if self.can_deliver(conn):
                        self.queue_ready(conn)
                break
            budget -= 1
            if self.framing == FRAME:
                self.deliver(conn, base + pos + HEADER, size)
            else:
                self.deliver(conn, base + pos, end - pos)
            pos = end
            if conn.dead:
                return have
        return pos

    cdef int deliver(self, EventConnection conn, const char *p,
                     Py_ssize_t n) except -1:
        cdef object msg = PyBytes_FromStringAndSize(p, n)
        try:
            reply = self.on_message(conn, msg)
            # A reply returned after close() in the same callback is sent
            # before the connection closes (a "Connection: close" answer).
            if reply is not None and not (conn.dead or conn.broken):
                if self.framing == FRAME:
                    conn.push_frame(reply)
                else:
                    conn.push_object(reply)
                conn.queued_more()
        except Exception as exc:
            log.exception("on_message raised; closing the connection")
            if not conn.dead:
                if conn.error is None:
                    conn.error = exc
                conn.closing = True
                self.mark_dirty(conn)
            return 0
        if conn.queued > self.high_water and not conn.throttled:
            # Back-pressure: stop reading and handling this connection's
            # messages until its replies drain below low_water.
            conn.throttled = True
            self.update_interest(conn)
        return 0

    cdef int queue_ready(self, EventConnection conn) except -1:
        # Once per pass at most: a connection listed twice would get twice
        # its share of messages.
        if not conn.in_ready:
            conn.in_ready = True
            self.ready.append(conn)
        return 0

    cdef int run_backlog(self) except -1:
        # Connections that stopped at the fairness bound: handle their next
        # messages from the kept input (no receive).
        cdef EventConnection conn
        cdef Py_ssize_t used
        ready = self.ready
        self.ready = []
        for conn in ready:
            conn.in_ready = False
            if not conn.backlog or not self.can_deliver(conn):
                continue
            used = self.split(conn, conn.ibuf + conn.ipos, conn.ilen - conn.ipos)
            conn.ipos += used
            if conn.ipos == conn.ilen:
                conn.free_input()
            self.flush_replies(conn)
            if not conn.backlog:
                self.maybe_finish(conn)
        return 0

    # ---- writing ------------------------------------------------------------

    cdef int mark_dirty(self, EventConnection conn) except -1:
        if not conn.dirty and not conn.dead:
            conn.dirty = True
            self.dirty.append(conn)
            self.wake()
        return 0

    cdef int flush_replies(self, EventConnection conn) except -1:
        # The replies to what one receive brought, gathered, go out at once
        # rather than after every other connection's callbacks: a pass over
        # many ready connections would otherwise delay the first one's
        # reply by all the others' work.
        if conn.qhead < conn.qlen and not (conn.wblocked or conn.dead
                                           or conn.broken):
            self.flush(conn)
        return 0

    cdef int flush_dirty(self) except -1:
        cdef EventConnection conn
        while self.dirty:
            dirty = self.dirty
            self.dirty = []
            for conn in dirty:
                conn.dirty = False
                if conn.dead:
                    continue
                if conn.broken:
                    self.end(conn, conn.error)
                elif not conn.wblocked:
                    self.flush(conn)
                else:
                    self.maybe_finish(conn)
        return 0

    cdef int flush(self, EventConnection conn) except -1:
        # Sends the queue with gathered sends until it is empty or the
        # socket is full; never holds a pointer into the queue across a
        # buffer release (see _event.pxd).
        cdef fs_buf_t iov[IOV_BATCH]
        cdef Py_ssize_t i, count
        cdef fs_ssize_t n, sent, total
        cdef out_piece *piece
        cdef Py_buffer view
        while conn.qhead < conn.qlen and not conn.dead:
            count = min(conn.qlen - conn.qhead, IOV_BATCH)
            total = 0
            for i in range(count):
                piece = &conn.q[conn.qhead + i]
                iov[i].base = ((<char *>piece.view.buf) if piece.pinned
                               else conn.wbuf) + piece.off
                iov[i].len = piece.len
                total += piece.len
            n = fs_sendv(conn.fd, iov, count, 0)
            if n < 0:
                if n == FS_EINTR:
                    PyErr_CheckSignals()
                    continue
                if n == FS_EAGAIN:
                    break
                return self.fail(conn, <int>n)
            conn.queued -= n
            sent = n
            while n > 0 and conn.qhead < conn.qlen:
                piece = &conn.q[conn.qhead]
                if n < piece.len:
                    piece.off += n
                    piece.len -= n
                    break
                n -= piece.len
                conn.qhead += 1
                if piece.pinned:
                    piece.pinned = False
                    memcpy(&view, &piece.view, sizeof(Py_buffer))
                    PyBuffer_Release(&view)      # may run Python code
            if sent < total:
                break                            # the socket is full
        if conn.dead:
            return 0
        if conn.qhead == conn.qlen:
            conn.release_output()
            conn.wblocked = False
        else:
            conn.wblocked = True
            if conn.queued > self.high_water:
                conn.throttled = True
        if conn.throttled and conn.queued <= self.low_water:
            conn.throttled = False
            if conn.backlog and self.can_deliver(conn):
                self.queue_ready(conn)
        return self.settle(conn)

    cdef int settle(self, EventConnection conn) except -1:
        # Ends a connection that is done; else it waits for what it now
        # needs.  In that order: one that ends is not re-registered first.
        self.maybe_finish(conn)
        return self.update_interest(conn)

    cdef int update_interest(self, EventConnection conn) except -1:
        cdef int want = 0, r
        if conn.dead:
            return 0
        if not (conn.eof or self.stopping) and self.can_deliver(conn):
            want = FS_POLLIN
        if conn.wblocked:
            want |= FS_POLLOUT
        if conn.registered and want == conn.interest:
            return 0
        if conn.registered:
            r = fs_poller_mod(self.poller, conn.fd, want, <void *>conn)
        else:
            # A new connection, added even with no interest: the poller
            # still reports an error or a hang-up once (fs__epoll_ctl).
            r = fs_poller_add(self.poller, conn.fd, want, <void *>conn)
        if r < 0:
            return self.fail(conn, r)
        conn.registered = True
        conn.interest = want
        return 0

    # ---- ending -------------------------------------------------------------

    cdef int maybe_finish(self, EventConnection conn) except -1:
        # A connection that is done (closed, at EOF, or shutting down) ends
        # once nothing is queued and no complete message waits.
        if conn.dead or conn.qhead < conn.qlen:
            return 0
        if conn.closing or conn.broken:
            return self.end(conn, conn.error)
        if (conn.eof or self.stopping) and not conn.backlog:
            return self.end(conn, conn.error)
        return 0

    cdef int fail(self, EventConnection conn, int code) except -1:
        return self.end(conn, os_error(code))

    cdef int end(self, EventConnection conn, object exc) except -1:
        # Closes the socket now; buffers are freed when the connection
        # object goes (a split may still be reading its input this pass),
        # and on_close runs at the end of the pass.
        if conn.dead:
            return 0
        conn.dead = True
        if conn.fd != FS_INVALID_SOCKET:
            if conn.registered:
                fs_poller_del(self.poller, conn.fd)
            fs_close(conn.fd)
            conn.fd = FS_INVALID_SOCKET
        conn.release_output()
        self.unlink_idle(conn)
        self.conns.discard(conn)
        self.ended.append((conn, exc))
        if not self.stopping:
            # Below max_connections again, and a descriptor is free for an
            # accept paused by EMFILE.
            self.accept_resume = 0
            self.listen_on(True)
        return 0

    cdef int report_ended(self) except -1:
        cdef EventConnection conn
        cdef Py_ssize_t i
        while self.ended:
            ended = self.ended
            self.ended = []
            for i in range(len(ended)):
                conn, exc = ended[i]
                conn.free_input()
                if self.on_close is None:
                    continue
                try:
                    self.on_close(conn, exc)
                except Exception:
                    log.exception("on_close raised")
                except BaseException:
                    # KeyboardInterrupt ends the loop, whose end reports
                    # the others: each on_close still runs once.
                    self.ended[:0] = ended[i + 1:]
                    raise
        return 0

    # ---- idle connections -----------------------------------------------------

    cdef void touch(self, EventConnection conn) noexcept:
        if not self.idle_ns:
            return
        conn.last_ns = fs_monotonic_ns()
        if self.idle_tail is conn:
            return
        self.unlink_idle(conn)
        conn.prev = self.idle_tail
        if self.idle_tail is not None:
            self.idle_tail.next = conn
        else:
            self.idle_head = conn
        self.idle_tail = conn

    cdef void unlink_idle(self, EventConnection conn) noexcept:
        if conn.prev is not None:
            conn.prev.next = conn.next
        elif self.idle_head is conn:
            self.idle_head = conn.next
        if conn.next is not None:
            conn.next.prev = conn.prev
        elif self.idle_tail is conn:
            self.idle_tail = conn.prev
        conn.prev = conn.next = None

    cdef int expire_idle(self) except -1:
        cdef int64_t now = fs_monotonic_ns()
        cdef EventConnection conn
        while (self.idle_head is not None
               and self.idle_head.last_ns + self.idle_ns <= now):
            conn = self.idle_head
            self.unlink_idle(conn)
            if conn.error is None:
                conn.error = TimeoutError(
                    f"no data for {self.idle_ns / 1e9:g} s (idle_timeout)")
            conn.closing = True
            self.mark_dirty(conn)
        return 0

    # ---- shutdown ---------------------------------------------------------------

    cdef int begin_stop(self) except -1:
        # Stop accepting and reading; what was received in full is still
        # handled (one last receive picks up what the peer sent before
        # now), then each connection ends once its replies are sent.
        cdef EventConnection conn
        self.stopping = True
        self.listen_on(False)
        if self.listener is not None:
            self.listener.close()
            self.lfd = FS_INVALID_SOCKET
        for conn in list(self.conns):
            if (not conn.backlog and not conn.eof
                    and self.can_deliver(conn)):
                self.read(conn)
            self.update_interest(conn)
            self.mark_dirty(conn)
        return 0
