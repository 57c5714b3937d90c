"""The file-like endpoint: buffered reads, lines and frames split in C,
gathered writes.

Reads come from a C buffer refilled with one receive of up to buffer_size;
lines are found with memchr and frames (4-byte big-endian length, then the
payload) are parsed in C, and each message becomes a bytes object built
straight from the buffer.  Reads larger than the buffer go straight into
their destination.  Small writes gather in a C write buffer; a write that
would overflow it goes out in one gathered system call with what is
pending.  See _stream.pxd for the threading rules.
"""
cimport cython

import io
import socket as _stdlib
import warnings

from cpython.buffer cimport PyBuffer_Release, PyObject_CheckBuffer
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact,
                            PyBytes_FromStringAndSize, PyBytes_GET_SIZE)
from cpython.exc cimport PyErr_CheckSignals
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock,
                               PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_release_lock)
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memchr, memcmp, memcpy, memmove

from fastsock._shim cimport *
from fastsock._socket cimport (STACK_BUFS, Socket, alloc_bytes, finish_bytes,
                               get_read_buffer, get_write_buffer,
                               make_address, ms_left, new_socket, pin_buffers,
                               port_value,
                               raise_oserror, release_views)
from fastsock._split cimport (HEADER, NEWLINE, find_sep, frame_length,
                              put_header)

from fastsock._errors import (Error, FrameTooLargeError, IncompleteReadError,
                              LimitOverrunError)

cdef enum:
    # A frame header must fit the buffer with room to spare.
    MIN_BUFFER = 16
    # The largest single read1() result.
    READ1_MAX = 1 << 20

cdef int IOV_MAX = fs_iov_max()
# Lets a blocking socket try a send or a receive without waiting (not on
# Windows, where a read then flushes pending writes with a blocking send).
cdef int MSG_DONTWAIT = getattr(_stdlib, "MSG_DONTWAIT", 0)
cdef int MSG_WAITALL = getattr(_stdlib, "MSG_WAITALL", 0)
cdef int SOCK_STREAM = _stdlib.SOCK_STREAM
cdef int SHUT_RD = _stdlib.SHUT_RD          # SD_RECEIVE on Windows: the same 0
cdef int SHUT_WR = _stdlib.SHUT_WR          # SD_SEND: 1
cdef int SHUT_RDWR = _stdlib.SHUT_RDWR      # SD_BOTH: 2
cdef uint32_t MAX_HEADER = 0xFFFFFFFF


cdef int raise_closed_file() except -1:
    raise ValueError("I/O operation on closed file.")


# Stream()'s buffer_size and max_frame, checked before any I/O.
cdef int check_sizes(Py_ssize_t buffer_size, object max_frame) except -1:
    if buffer_size < MIN_BUFFER:
        raise ValueError(f"buffer_size must be at least {MIN_BUFFER}")
    cdef int overflow
    if not isinstance(max_frame, int):
        raise TypeError("max_frame must be an int")
    # In C, not two rich comparisons of the int object (out of a long
    # long's range, it reads as -1).
    if not 0 <= PyLong_AsLongLongAndOverflow(max_frame, &overflow) <= MAX_HEADER:
        raise ValueError("max_frame must be 0 to 2**32 - 1 (the header's "
                         "range)")
    return 0


# read(n)/read1(n)/readline(n) sizes: None or negative mean "no limit".
cdef Py_ssize_t size_arg(object n) except? -2:
    if n is None:
        return -1
    if not isinstance(n, int):
        raise TypeError(
            f"argument should be integer or None, not '{type(n).__name__}'")
    return -1 if n < 0 else n


# A send failed for good (the connection is broken, not merely slow):
# pending bytes are dropped rather than kept for a flush that cannot work.
cdef bint broken(BaseException exc):
    return isinstance(exc, OSError) and not isinstance(
        exc, (TimeoutError, BlockingIOError, InterruptedError))


# memcpy() that also takes an empty, possibly NULL, source or destination
# (an empty buffer's pointer may be NULL; memcpy declares both non-null).
cdef inline void copy(void *dst, const void *src, size_t n) noexcept nogil:
    if n:
        memcpy(dst, src, n)


# The stream's sends: send_iov() sends cur[0..left-1] in gathered calls of
# at most IOV_MAX buffers, and send_one() the last one with send(), until
# all went or a call failed (send_then_receive() makes one try of its own
# and hands any rest to these).  Each returns 0 or that
# call's FS_E* code, with the vector moved past what went.
cdef inline fs_ssize_t send_one(fs_sock_t fd, fs_buf_t *b,
                                int flags) noexcept nogil:
    cdef fs_ssize_t n
    while b.len > 0:
        n = fs_send(fd, b.base, b.len, flags)
        if n < 0:
            return n
        b.base += n
        b.len -= n
    return 0


cdef inline fs_ssize_t send_iov(fs_sock_t fd, fs_buf_t **cur, size_t *left,
                                int flags) noexcept nogil:
    cdef fs_ssize_t n
    while left[0] > 1:
        n = fs_sendv(fd, cur[0], min(left[0], <size_t>IOV_MAX), flags)
        if n < 0:
            return n
        fs_bufs_advance(cur, left, n)
    if left[0] == 1:
        n = send_one(fd, cur[0], flags)
        if n < 0:
            return n
        cur[0] += 1
        left[0] = 0
    return 0


cdef inline fs_ssize_t recv_iov(fs_sock_t fd, fs_buf_t *iov, int count,
                                int flags) noexcept nogil:
    if count == 1:
        return fs_recv(fd, iov[0].base, iov[0].len, flags)
    return fs_recvv(fd, iov, count, flags)


# Stream.receive()'s first job, with the write lock taken (it is let go
# here): send the pending bytes, then receive.  Returns 1 if *n is the
# result of a receive (bytes, or a negative FS_E* code to handle), 0 if
# none was tried.  Inline, and the rare partial send is out of line
# (flush_rest_then_receive): a request/response pays no extra call.
cdef inline int send_then_receive(Stream self, fs_buf_t *iov, int count,
                                  int flags, int64_t *deadline,
                                  fs_ssize_t *n, bint boundary) except -1:
    cdef fs_ssize_t sent
    cdef Py_ssize_t pending = self.wlen
    cdef fs_sock_t fd = self.sock.fd
    cdef int64_t timeout = self.sock.timeout_ns
    cdef int ms = 0, w = 0
    cdef bint tried = False
    # Draining at a boundary (see Stream.drain()): send the pending bytes
    # but do not wait here; receive()'s loop decides between EOF and a
    # receive.
    cdef bint wait = not (boundary and self.draining)
    if timeout > 0:
        ms = ms_left(deadline, timeout)
    # Request/response: the pending bytes go out in one send and the answer
    # is awaited in the same release of the GIL (with a timeout, by a wait
    # first: it cannot be there yet, so a receive tried first would only
    # fail).  The write lock is let go before the wait, so a writer thread
    # is never held up by a reader.
    self.idle = boundary and wait
    with nogil:
        sent = fs_send(fd, self.wbuf, pending,
                       MSG_DONTWAIT if timeout < 0 else 0)
        if sent == pending:
            # wbusy stays set: a writer running meanwhile takes the slow
            # path, and the lock orders its append after this.
            self.wlen = 0
            let_go(&self.wlock)
            if wait:
                if timeout < 0:
                    n[0] = recv_iov(fd, iov, count, flags)
                    tried = True
                elif ms > 0:
                    w = fs_wait(fd, FS_POLLIN, ms)
                    if w > 0:
                        n[0] = recv_iov(fd, iov, count, flags)
                        tried = True
        # Cleared as soon as the receive returns, still without the GIL:
        # drain() must not take a reader holding the first bytes of a
        # message for an idle one.
        self.idle = False
    if sent != pending:
        return flush_rest_then_receive(self, sent, iov, count, deadline, n)
    if try_take(&self.wlock):
        self.wbusy = False      # else its holder clears it
        let_go(&self.wlock)
    if w == FS_EINTR:
        PyErr_CheckSignals()
    return tried


# send_then_receive() when its one send did not take all the pending bytes
# (`sent`: how many it did, or a negative FS_E* code): keeps the rest and
# flushes it while receiving.  Lets the write lock go.
cdef int flush_rest_then_receive(Stream self, fs_ssize_t sent, fs_buf_t *iov,
                                 int count, int64_t *deadline,
                                 fs_ssize_t *n) except -1:
    cdef Py_ssize_t got = 0
    cdef fs_buf_t pending
    pending.base = self.wbuf
    pending.len = self.wlen
    try:
        if sent > 0:
            pending.base += sent
            pending.len -= sent
        self.keep_unsent(&pending, 1, True)
        if self.flush_before_read(<int>sent if sent < 0 else FS_EAGAIN,
                                  iov, count, deadline, &got):
            n[0] = got
            return 1
    finally:
        self.unlock_write()
    return 0


# write()'s fast path, under the GIL and without the write lock: appends
# p[0..n-1] to the write buffer if it fits and no send is using the buffer
# (wbusy).  The first write takes the buffer here: with none yet, no send
# can share it (a pending write error leaves it to write_ptr to report).
cdef inline bint buffered(Stream self, const char *p,
                          Py_ssize_t n) except -1:
    if self.wbusy:
        return False
    if self.wbuf == NULL and self.write_error == 0:
        self.alloc_wbuf()
    if n > self.wcap - self.wlen:
        return False
    copy(self.wbuf + self.wlen, p, n)
    self.wlen += n
    return True


# One receive into the free room of the read buffer; returns bytes, 0 at
# EOF.  Inline: fill() is this with `boundary` when nothing is buffered.
cdef inline Py_ssize_t fill_from(Stream self, int64_t *deadline,
                                 bint boundary) except -1:
    cdef fs_buf_t iov
    cdef Py_ssize_t n
    self.make_room(0)
    iov.base = self.rbuf + self.rend
    iov.len = self.rcap - self.rend
    n = self.receive(&iov, 1, 0, deadline, boundary)
    self.rend += n
    return n


# ---- buffers and locks, recycled ------------------------------------------
# A program that opens short connections one after another would pay, per
# stream, a malloc and a free of buffer_size bytes for each direction and
# two lock allocations: about 2,500 instructions (callgrind) a side of a
# connection.  An ending stream hands them back here and the next stream
# takes them first.  At most SPARE of each are kept (256 KiB with the
# default buffers while no stream needs them).  The GIL guards these lists,
# as it guards the PyMem calls.
cdef enum:
    SPARE = 4

ctypedef struct Spare:
    char *buf
    Py_ssize_t size

cdef Spare spare[SPARE]             # oldest first
cdef int spare_bufs = 0
cdef PyThread_type_lock spare_lock[2 * SPARE]
cdef int spare_locks = 0


cdef void drop_spare(int i) noexcept:
    global spare_bufs
    spare_bufs -= 1
    memmove(&spare[i], &spare[i + 1], (spare_bufs - i) * sizeof(Spare))


# The newest spare buffer of `size` bytes, else a new one.
cdef char *take_buffer(Py_ssize_t size) noexcept:
    cdef int i
    cdef char *p
    for i in range(spare_bufs - 1, -1, -1):
        if spare[i].size == size:
            p = spare[i].buf
            drop_spare(i)
            return p
    return <char *>PyMem_Malloc(size)


# Takes back a buffer of `size` bytes (NULL: nothing to do), kept if it
# has the stream's `usual` size (one grown for a large message is freed).
# When the list is full the oldest spare goes, so that sizes no stream asks
# for any more do not hold the places.
cdef void give_buffer(char *p, Py_ssize_t size, Py_ssize_t usual) noexcept:
    global spare_bufs
    if p == NULL or size != usual:
        PyMem_Free(p)
        return
    if spare_bufs == SPARE:
        PyMem_Free(spare[0].buf)
        drop_spare(0)
    spare[spare_bufs].buf = p
    spare[spare_bufs].size = size
    spare_bufs += 1


def free_spare_buffers():
    """Frees the spare buffers (a memory measurement that must not count
    them: tests/leak_paths.py)."""
    global spare_bufs
    while spare_bufs > 0:
        spare_bufs -= 1
        PyMem_Free(spare[spare_bufs].buf)


# A SideLock's handoff lock, held (see _stream.pxd); NULL without memory.
cdef PyThread_type_lock take_handoff() noexcept:
    global spare_locks
    cdef PyThread_type_lock lock
    if spare_locks > 0:
        spare_locks -= 1
        return spare_lock[spare_locks]
    lock = PyThread_allocate_lock()
    if lock != NULL:
        PyThread_acquire_lock(lock, NOWAIT_LOCK)
    return lock


# Takes back the handoff lock of a stream being freed.  With no user left
# it is held, as take_handoff() gives it: every method that takes a side's
# lock lets it go before it returns, and holds a reference to the stream
# meanwhile.
cdef void give_handoff(PyThread_type_lock lock) noexcept:
    global spare_locks
    if lock == NULL:
        return
    if spare_locks == 2 * SPARE:
        PyThread_free_lock(lock)
        return
    spare_lock[spare_locks] = lock
    spare_locks += 1


cdef inline bint try_take(SideLock *l) noexcept nogil:
    return fs_atomic_cas(&l.users, 0, 1)


# Waits for the lock (call without the GIL).
cdef inline void take(SideLock *l) noexcept nogil:
    if fs_atomic_add(&l.users, 1) != 0:
        PyThread_acquire_lock(l.handoff, WAIT_LOCK)


cdef inline void let_go(SideLock *l) noexcept nogil:
    if fs_atomic_add(&l.users, -1) != 1:
        PyThread_release_lock(l.handoff)


# binding=False: methods are plain method descriptors, as Socket's (the
# default cyfunction dispatch costs about 115 instructions more per call).
@cython.binding(False)
cdef class Stream:
    """A buffered, file-like stream over a connected stream socket.

    ``Stream(sock, *, buffer_size=65536, max_frame=16 * 2**20)``: ``sock``
    is a fastsock ``Socket`` or a stdlib socket (taken over: it is
    detached).  Readable, writable, not seekable; one thread may read while
    another writes.
    """

    def __cinit__(self):
        self.closed_ = True         # until __init__ succeeds
        self.frame_limit = -1
        self.rlock.handoff = take_handoff()
        self.wlock.handoff = take_handoff()
        if self.rlock.handoff == NULL or self.wlock.handoff == NULL:
            raise MemoryError()

    def __init__(self, sock, *, Py_ssize_t buffer_size=65536,
                 max_frame=16 * 2**20):
        cdef Socket s
        if self.sock is not None:
            raise RuntimeError("Stream.__init__ called twice")
        check_sizes(buffer_size, max_frame)
        if isinstance(sock, Socket):
            s = sock
        elif isinstance(sock, _stdlib.socket):
            if sock.type != SOCK_STREAM:
                raise ValueError("a stream (SOCK_STREAM) socket is required")
            s = Socket.from_socket(sock)
        else:
            raise TypeError("Stream() needs a fastsock.Socket or a "
                            f"socket.socket, not '{type(sock).__name__}'")
        if s.type_ != SOCK_STREAM:
            raise ValueError("a stream (SOCK_STREAM) socket is required")
        s.check_open()
        self.attach(s, buffer_size, max_frame)

    cdef int attach(self, Socket s, Py_ssize_t buffer_size,
                    Py_ssize_t max_frame) except -1:
        self.rbuf = take_buffer(buffer_size)
        if self.rbuf == NULL:
            raise MemoryError()
        self.rcap = self.rbase = buffer_size
        self.max_frame = self.frame_limit = max_frame
        self.sock = s
        self.closed_ = False
        return 0

    def __dealloc__(self):
        self.free_buffers()
        give_handoff(self.rlock.handoff)
        give_handoff(self.wlock.handoff)

    def __del__(self):
        # As io does: an unclosed stream is flushed and closed when it goes.
        if not self.closed_:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self):
        if self.closed_:
            return "<fastsock.Stream [closed]>"
        return f"<fastsock.Stream fd={self.sock.fileno()}>"

    def __getstate__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    # ---- locks and closing ---------------------------------------------

    cdef int lock_read(self) except -1:
        if not try_take(&self.rlock):
            with nogil:
                take(&self.rlock)
        if self.closed_:
            self.unlock_read()
            raise_closed_file()
        return 0

    cdef void unlock_read(self) noexcept:
        let_go(&self.rlock)
        if self.close_pending:
            self.finish_close()

    cdef int lock_write(self) except -1:
        if not try_take(&self.wlock):
            with nogil:
                take(&self.wlock)
        # While set, the write fast path stays out of the buffer being sent.
        self.wbusy = True
        if self.closed_:
            self.unlock_write()
            raise_closed_file()
        return 0

    cdef int try_lock_write(self) noexcept:
        if not try_take(&self.wlock):
            return 0
        if self.closed_:
            let_go(&self.wlock)
            return 0
        self.wbusy = True
        return 1

    cdef void unlock_write(self) noexcept:
        self.wbusy = False
        let_go(&self.wlock)
        if self.close_pending:
            self.finish_close()

    cdef void finish_close(self) noexcept:
        # Only when no call holds a buffer or the descriptor: a call still
        # running finishes the close when it unlocks, so the descriptor
        # number cannot be reused under it.
        if not try_take(&self.rlock):
            return
        if not try_take(&self.wlock):
            let_go(&self.rlock)
            return
        self.close_pending = False
        self.free_buffers()
        try:
            self.sock.close_fd()
        except BaseException:
            pass
        let_go(&self.wlock)
        let_go(&self.rlock)

    cdef void free_buffers(self) noexcept:
        give_buffer(self.rbuf, self.rcap, self.rbase)
        give_buffer(self.wbuf, self.wcap, self.rbase)
        self.rbuf = self.wbuf = NULL
        self.rpos = self.rend = self.rcap = 0
        self.wlen = self.wcap = 0

    cdef int check_open(self) except -1:
        if self.closed_:
            raise_closed_file()
        return 0

    def close(self):
        """Flushes, then closes the stream and its socket.  From another
        thread, wakes a call blocked on the stream (it sees EOF or an
        OSError)."""
        if self.closed_:
            return
        try:
            if self.wlen > 0 and self.try_lock_write():
                try:
                    # Not with MSG_MORE, though the FIN would then ride on
                    # these bytes (8 segments instead of 10 per short
                    # connection): should the socket outlive this close (its
                    # descriptor duplicated or inherited by a child), the
                    # kernel would hold them for about 200 ms.
                    self.flush_locked(0)
                finally:
                    self.wbusy = False
                    let_go(&self.wlock)
        finally:
            self.closed_ = True
            self.close_pending = True
            self.finish_close()
            if self.close_pending:
                # A call is in progress in another thread: shutting the
                # socket down makes a blocked receive return and a blocked
                # send fail; the descriptor is closed when that call ends.
                fs_shutdown(self.sock.fd, SHUT_RDWR)

    @property
    def closed(self):
        return self.closed_

    def __enter__(self):
        self.check_open()
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- io.BufferedIOBase ---------------------------------------------

    def readable(self):
        self.check_open()
        return True

    def writable(self):
        self.check_open()
        return True

    def seekable(self):
        self.check_open()
        return False

    def isatty(self):
        self.check_open()
        return False

    def fileno(self):
        self.check_open()
        return self.sock.fileno()

    def tell(self):
        raise io.UnsupportedOperation("Stream is not seekable")

    def seek(self, pos, whence=0):
        raise io.UnsupportedOperation("Stream is not seekable")

    def truncate(self, pos=None):
        raise io.UnsupportedOperation("Stream is not seekable")

    def detach(self):
        """Flushes and hands over the socket; the stream is then closed and
        the socket stays open.  Buffered unread bytes are discarded."""
        self.check_open()
        self.flush()
        self.lock_read()
        try:
            self.lock_write()
        except BaseException:
            self.unlock_read()
            raise
        sock = self.sock
        self.sock = Socket.__new__(Socket)   # closed placeholder
        self.closed_ = True
        self.close_pending = True
        self.unlock_write()
        self.unlock_read()
        return sock

    @property
    def mode(self):
        return "rwb"

    @property
    def socket(self):
        """The underlying fastsock Socket."""
        return self.sock

    @property
    def buffer_size(self):
        return self.rbase

    @property
    def max_frame(self):
        return self.max_frame

    @property
    def timeout(self):
        return self.sock.timeout

    def settimeout(self, value):
        """None: blocking; 0: non-blocking; > 0: seconds for each whole
        call.  The same setting as the socket's."""
        self.sock.set_timeout_value(value)

    def gettimeout(self):
        return self.sock.timeout

    def drain(self):
        """Graceful shutdown of the reading side, one message at a time
        (what Server.shutdown does to each connection).  From now on, a
        read at a message boundary (nothing of the next frame, line or
        read() received) that would wait for the peer returns EOF at once;
        a message already begun, or already in the kernel, is still read
        whole.  A reader waiting at a boundary now, with nothing received,
        is woken with EOF: returns True then.  The sending side stays
        open."""
        if self.closed_:
            return False
        self.draining = True
        # The reader holds the read lock while idle, so the descriptor
        # stays open here.  Bytes already in the kernel mean the reader is
        # about to wake with a message: it is left alone.  A byte arriving
        # between this test and the shutdown started after the shutdown.
        if self.idle and fs_wait(self.sock.fd, FS_POLLIN, 0) == 0:
            fs_shutdown(self.sock.fd, SHUT_RD)  # the read sees EOF
            return True
        return False

    @property
    def draining(self):
        """True once drain() was called."""
        return self.draining

    # ---- receiving: the machinery ---------------------------------------

    cdef int may_wait(self, bint boundary) noexcept:
        # Graceful shutdown (see drain()): a read at a message boundary
        # about to wait for the peer.  While draining it ends (0: EOF)
        # unless bytes are already in the kernel; else the reader is
        # marked idle, so that drain() can wake it.  The test of `draining`
        # and the setting of `idle` happen under the GIL, as drain() does
        # its part, so one of the two always sees the other.
        if boundary:
            if self.draining and fs_wait(self.sock.fd, FS_POLLIN, 0) == 0:
                return 0
            self.idle = True
        return 1

    cdef Py_ssize_t receive(self, fs_buf_t *iov, int count, int flags,
                            int64_t *deadline, bint boundary) except -1:
        cdef fs_ssize_t n = 0
        cdef fs_sock_t fd = self.sock.fd
        cdef bint tried = False
        if self.wlen > 0 and self.try_lock_write():
            tried = send_then_receive(self, iov, count, flags, deadline, &n,
                                      boundary)
        if self.fresh:
            # A client sends its request as soon as it is connected, so an
            # accepted stream's first message is usually in the kernel when
            # the server reads: take it without letting the GIL go (about
            # 600 instructions).  If it is not there yet, this costs one
            # non-blocking call before the usual blocking receive.
            self.fresh = False
            if not tried and MSG_DONTWAIT != 0 and self.sock.timeout_ns < 0:
                n = recv_iov(fd, iov, count, flags | MSG_DONTWAIT)
                tried = n != FS_EAGAIN
        while True:
            if tried:
                if n >= 0:
                    return n
                if not self.may_wait(boundary):
                    return 0
                try:
                    self.sock.wait_or_raise(<int>n, FS_POLLIN, deadline)
                finally:
                    self.idle = False
            if not self.may_wait(boundary):
                return 0
            with nogil:
                n = recv_iov(fd, iov, count, flags)
                self.idle = False
            tried = True

    cdef int flush_before_read(self, int err, fs_buf_t *iov, int count,
                               int64_t *deadline, Py_ssize_t *got) except -1:
        # Never waits for the send alone: if the peer is not reading (its
        # window is full) it may be sending to us, so wait for either
        # direction, or two peers flushing at each other would deadlock.
        cdef fs_ssize_t n
        cdef fs_sock_t fd = self.sock.fd
        cdef int flags = MSG_DONTWAIT if self.sock.timeout_ns < 0 else 0
        cdef fs_buf_t pending
        while True:
            if err == FS_EINTR:
                PyErr_CheckSignals()
            elif err != FS_EAGAIN:
                # The peer is gone; what it sent may still be readable, so
                # the read goes on and the next write or flush reports it.
                self.write_error = err
                self.wlen = 0
                return 0
            else:
                with nogil:
                    n = recv_iov(fd, iov, count, flags)
                if n >= 0:
                    got[0] = n
                    return 1
                if n == FS_EAGAIN:
                    self.sock.wait(FS_POLLIN | FS_POLLOUT, deadline)
                else:
                    self.sock.wait_or_raise(<int>n, FS_POLLIN, deadline)
            pending.base = self.wbuf
            pending.len = self.wlen
            with nogil:
                err = <int>send_one(fd, &pending, flags)
            self.keep_unsent(&pending, 1, True)
            if pending.len == 0:
                return 0

    cdef int make_room(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t have = self.rend - self.rpos
        cdef Py_ssize_t newcap
        cdef char *p
        if have == 0:
            self.rpos = self.rend = 0
            if self.rcap > self.rbase and need <= self.rbase:
                # A grown buffer goes back to its size once drained.
                p = <char *>PyMem_Realloc(self.rbuf, self.rbase)
                if p != NULL:
                    self.rbuf = p
                    self.rcap = self.rbase
        if need <= have:
            need = have + 1
        if self.rpos + need <= self.rcap:
            return 0
        if self.rpos > 0:
            memmove(self.rbuf, self.rbuf + self.rpos, have)
            self.rpos = 0
            self.rend = have
        if need > self.rcap:
            newcap = max(need, 2 * self.rcap)
            p = <char *>PyMem_Realloc(self.rbuf, newcap)
            if p == NULL:
                raise MemoryError()
            self.rbuf = p
            self.rcap = newcap
        return 0

    cdef Py_ssize_t fill(self, int64_t *deadline) except -1:
        return fill_from(self, deadline, self.rend == self.rpos)

    cdef int fill_to(self, Py_ssize_t n, int64_t *deadline) except -1:
        while self.rend - self.rpos < n:
            self.make_room(n)
            if self.fill(deadline) == 0:
                return 0
        return 1

    cdef int unread(self, const char *head, Py_ssize_t headlen,
                    const char *data, Py_ssize_t n) except -1:
        cdef Py_ssize_t have = self.rend - self.rpos
        cdef Py_ssize_t front = headlen + n
        if front == 0:
            return 0
        self.make_room(have + front)
        memmove(self.rbuf + self.rpos + front, self.rbuf + self.rpos, have)
        copy(self.rbuf + self.rpos, head, headlen)
        copy(self.rbuf + self.rpos + headlen, data, n)
        self.rend += front
        return 0

    cdef Py_ssize_t read_into(self, char *dst, Py_ssize_t n, bint all,
                              bint spill, const char *head,
                              Py_ssize_t headlen, int64_t *deadline) except -1:
        cdef Py_ssize_t got = min(self.rend - self.rpos, n)
        cdef Py_ssize_t r
        cdef fs_buf_t iov[2]
        copy(dst, self.rbuf + self.rpos, got)
        self.rpos += got
        if got == n or (got > 0 and not all):
            return got
        try:
            while got < n:
                if n - got >= self.rbase:
                    # Straight into the destination.  With `spill`, the
                    # read buffer takes what follows in the same receive
                    # (a message: saves a receive for the next one).  Not
                    # for readinto(), where it would mean a second copy of
                    # bulk data; there a blocking socket asks the kernel
                    # for all of it at once (MSG_WAITALL: one system call
                    # where there would be several; it still returns early
                    # at EOF, on a signal or a shutdown).
                    self.make_room(0)
                    iov[0].base = dst + got
                    iov[0].len = n - got
                    iov[1].base = self.rbuf + self.rend
                    iov[1].len = self.rcap - self.rend
                    r = self.receive(
                        iov, 2 if spill else 1,
                        MSG_WAITALL if all and not spill
                        and self.sock.timeout_ns < 0 else 0, deadline,
                        got == 0 and headlen == 0)
                    if r > n - got:
                        self.rend += r - (n - got)
                        r = n - got
                    elif 0 < r < n - got and all:
                        # A signal cuts MSG_WAITALL short with no EINTR:
                        # run the handlers now (PEP 475), the bytes counted
                        # first so that an exception keeps them.
                        got += r
                        PyErr_CheckSignals()
                        continue
                else:
                    # Empty buffer: a boundary only if nothing of this
                    # call was taken yet.
                    r = fill_from(self, deadline, got == 0 and headlen == 0)
                    r = min(r, n - got)
                    copy(dst + got, self.rbuf + self.rpos, r)
                    self.rpos += r
                if r == 0:
                    break
                got += r
                if not all:
                    break
        except BaseException:
            self.unread(head, headlen, dst, got)
            raise
        return got

    cdef Py_ssize_t find(self, const char *sep, Py_ssize_t seplen,
                         Py_ssize_t start) noexcept:
        return find_sep(self.rbuf + self.rpos, self.rend - self.rpos, sep,
                        seplen, start)

    cdef object read_bytes(self, Py_ssize_t size, bint all, const char *head,
                           Py_ssize_t headlen, int64_t *deadline):
        cdef PyObject *raw = alloc_bytes(size)
        cdef Py_ssize_t got
        try:
            got = self.read_into(raw_bytes_data(raw), size, all, True, head,
                                 headlen, deadline)
        except BaseException:
            Py_DECREF(raw)
            raise
        # Short at EOF: shrunk in place rather than copied.
        return finish_bytes(raw, got)

    cdef object take(self, Py_ssize_t n):
        cdef object b = PyBytes_FromStringAndSize(self.rbuf + self.rpos, n)
        self.rpos += n
        return b

    cdef object readline_locked(self, Py_ssize_t limit):
        cdef Py_ssize_t i, have, start = 0
        cdef int64_t deadline = 0
        while True:
            have = self.rend - self.rpos
            i = self.find(b"\n", 1, start)
            if i >= 0:
                i += 1
                return self.take(i if limit < 0 or i <= limit else limit)
            if 0 <= limit <= have:
                return self.take(limit)
            start = have
            if self.fill(&deadline) == 0:   # grows the buffer for a long line
                return self.take(self.rend - self.rpos)

    # ---- reads ----------------------------------------------------------

    def read(self, n=-1):
        """n bytes, fewer only at EOF; n = -1 (or None): up to EOF."""
        cdef Py_ssize_t size = size_arg(n), have
        cdef int64_t deadline = 0
        self.check_open()
        have = self.rend - self.rpos
        if 0 <= size <= have:
            return self.take(size)
        self.lock_read()
        try:
            if size < 0:
                # To EOF, in the read buffer itself: a timeout keeps it all.
                while True:
                    have = self.rend - self.rpos
                    self.make_room(have + self.rbase)
                    if self.fill(&deadline) == 0:
                        return self.take(self.rend - self.rpos)
            if size <= self.rbase:
                self.fill_to(size, &deadline)
                return self.take(min(size, self.rend - self.rpos))
            return self.read_bytes(size, True, NULL, 0, &deadline)
        finally:
            self.unlock_read()

    def read1(self, n=-1):
        """Buffered bytes, or else the result of at most one receive."""
        cdef Py_ssize_t size = size_arg(n), have
        cdef int64_t deadline = 0
        self.check_open()
        have = self.rend - self.rpos
        if have > 0 or size == 0:
            return self.take(have if size < 0 else min(size, have))
        self.lock_read()
        try:
            if size > self.rbase:
                # One receive straight into the result, whose size is
                # capped: read1(2**40) must not try to allocate 1 TiB.
                return self.read_bytes(min(size, READ1_MAX), False, NULL, 0,
                                       &deadline)
            self.fill(&deadline)
            have = self.rend - self.rpos
            return self.take(have if size < 0 else min(size, have))
        finally:
            self.unlock_read()

    cdef Py_ssize_t readinto_impl(self, object b, bint all) except -1:
        cdef Py_buffer view
        cdef Py_ssize_t have
        cdef int64_t deadline = 0
        self.check_open()
        get_write_buffer(b, &view)
        try:
            have = self.rend - self.rpos
            if have >= view.len or (have > 0 and not all):
                have = min(have, view.len)
                copy(view.buf, self.rbuf + self.rpos, have)
                self.rpos += have
                return have
            self.lock_read()
            try:
                return self.read_into(<char *>view.buf, view.len, all,
                                      False, NULL, 0, &deadline)
            finally:
                self.unlock_read()
        finally:
            PyBuffer_Release(&view)

    def readinto(self, b):
        """Fills b (fewer bytes only at EOF) and returns the count; large
        reads go straight into b."""
        return self.readinto_impl(b, True)

    def readinto1(self, b):
        """As readinto, with at most one receive."""
        return self.readinto_impl(b, False)

    cpdef object readexactly(self, Py_ssize_t n):
        """Exactly n bytes, or IncompleteReadError at EOF (with .partial)."""
        cdef int64_t deadline = 0
        self.check_open()
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if self.rend - self.rpos >= n:
            return self.take(n)
        self.lock_read()
        try:
            if n <= self.rbase:
                if not self.fill_to(n, &deadline):
                    raise IncompleteReadError(self.take(self.rend - self.rpos),
                                              n)
                return self.take(n)
            result = self.read_bytes(n, True, NULL, 0, &deadline)
            if PyBytes_GET_SIZE(result) < n:
                raise IncompleteReadError(result, n)
            return result
        finally:
            self.unlock_read()

    cpdef object readline(self, object limit=-1):
        """One line with its b"\\n" (without one at EOF); at most `limit`
        bytes if limit >= 0.  b"" at EOF."""
        cdef Py_ssize_t lim = size_arg(limit), have
        cdef const char *start
        cdef const char *nl
        self.check_open()
        have = self.rend - self.rpos
        if have > 0:
            start = self.rbuf + self.rpos
            nl = <const char *>memchr(start, NEWLINE,
                                      have if lim < 0 else min(have, lim))
            if nl != NULL:
                return self.take(nl - start + 1)
        self.lock_read()
        try:
            return self.readline_locked(lim)
        finally:
            self.unlock_read()

    def readuntil(self, separator=b"\n", Py_ssize_t limit=65536):
        """Data up to and including `separator`.  LimitOverrunError if it
        does not start within `limit` bytes (the data stays readable);
        IncompleteReadError at EOF (.partial: what was left)."""
        cdef Py_buffer view
        cdef Py_ssize_t i, have, start = 0
        cdef int64_t deadline = 0
        self.check_open()
        get_read_buffer(separator, &view)
        try:
            if view.len == 0:
                raise ValueError("Separator should be at least one-byte string")
            if limit <= 0:
                raise ValueError("limit must be positive")
            self.lock_read()
            try:
                while True:
                    i = self.find(<const char *>view.buf, view.len, start)
                    if i > limit:
                        raise LimitOverrunError(
                            "Separator is found, but chunk is longer than "
                            "limit", i)
                    if i >= 0:
                        return self.take(i + view.len)
                    have = self.rend - self.rpos
                    if have - view.len + 1 > limit:
                        raise LimitOverrunError(
                            "Separator is not found, and chunk exceed the "
                            "limit", have - view.len + 1)
                    start = max(0, have - view.len + 1)
                    if self.fill(&deadline) == 0:
                        raise IncompleteReadError(
                            self.take(self.rend - self.rpos), None)
            finally:
                self.unlock_read()
        finally:
            PyBuffer_Release(&view)

    def peek(self, n=1):
        """Buffered bytes, not consumed (one receive if none is buffered);
        b"" at EOF."""
        cdef int64_t deadline = 0
        self.check_open()
        if self.rend == self.rpos:
            self.lock_read()
            try:
                self.fill(&deadline)
            finally:
                self.unlock_read()
        return PyBytes_FromStringAndSize(self.rbuf + self.rpos,
                                         self.rend - self.rpos)

    def readlines(self, hint=-1):
        """The remaining lines, stopping once `hint` bytes were read."""
        cdef Py_ssize_t h = size_arg(hint), total = 0
        lines = []
        while True:
            line = self.readline(-1)
            if not line:
                return lines
            lines.append(line)
            total += PyBytes_GET_SIZE(line)
            if 0 < h <= total:
                return lines

    def __iter__(self):
        self.check_open()
        return self

    def __next__(self):
        # The hot path of `for line in stream`: one memchr and one bytes
        # object per line, built straight from the buffer.
        cdef Py_ssize_t have = self.rend - self.rpos
        cdef const char *start
        cdef const char *nl
        if have > 0:
            start = self.rbuf + self.rpos
            nl = <const char *>memchr(start, NEWLINE, have)
            if nl != NULL:
                have = nl - start + 1
                self.rpos += have
                return PyBytes_FromStringAndSize(start, have)
        self.lock_read()
        try:
            line = self.readline_locked(-1)
        finally:
            self.unlock_read()
        if PyBytes_GET_SIZE(line) == 0:
            raise StopIteration
        return line

    # ---- frames -----------------------------------------------------------

    cdef Py_ssize_t frame_header(self, bint eof_ok,
                                 int64_t *deadline) except -2:
        # Buffers the next header and returns the length it announces
        # (the header stays unread); -1 at a clean EOF if eof_ok.
        cdef Py_ssize_t size, have
        if self.frame_limit < 0:
            raise Error("the stream's framing is broken (a frame was too "
                        "large); frame reads are refused")
        if not self.fill_to(HEADER, deadline):
            have = self.rend - self.rpos
            if have == 0:
                if eof_ok:
                    return -1
                raise EOFError("end of stream")
            # Cut inside the header: .partial is the header's bytes.
            raise IncompleteReadError(self.take(have), HEADER)
        size = frame_length(self.rbuf + self.rpos)
        if size > self.max_frame:
            self.frame_limit = -1
            raise FrameTooLargeError(
                f"frame of {size} bytes announced; max_frame is "
                f"{self.max_frame}")
        return size

    cdef object recv_frame_impl(self, bint eof_ok):
        cdef char head[HEADER]
        cdef int64_t deadline = 0
        cdef Py_ssize_t size = self.frame_header(eof_ok, &deadline)
        if size < 0:
            return None
        if size + HEADER <= self.rbase:
            if not self.fill_to(size + HEADER, &deadline):
                self.rpos += HEADER
                raise IncompleteReadError(self.take(self.rend - self.rpos),
                                          size)
            self.rpos += HEADER
            return self.take(size)
        # Larger than the buffer: straight into the result.
        copy(head, self.rbuf + self.rpos, HEADER)
        self.rpos += HEADER
        result = self.read_bytes(size, True, head, HEADER, &deadline)
        if PyBytes_GET_SIZE(result) < size:
            raise IncompleteReadError(result, size)
        return result

    cpdef object recv_frame(self):
        """The next frame's payload.  EOFError at a clean EOF between
        frames, IncompleteReadError (.partial, .expected) inside one,
        FrameTooLargeError for a header above max_frame."""
        cdef Py_ssize_t have = self.rend - self.rpos, size
        cdef const char *p
        self.check_open()
        if have >= HEADER:
            p = self.rbuf + self.rpos
            size = frame_length(p)
            if size <= self.frame_limit and size + HEADER <= have:
                self.rpos += size + HEADER
                return PyBytes_FromStringAndSize(p + HEADER, size)
        self.lock_read()
        try:
            return self.recv_frame_impl(False)
        finally:
            self.unlock_read()

    def recv_frame_into(self, buffer):
        """Writes the next frame's payload into buffer, returns its length.
        A frame that does not fit raises ValueError and stays unread."""
        cdef Py_buffer view
        cdef Py_ssize_t size, got
        cdef char head[HEADER]
        cdef int64_t deadline = 0
        self.check_open()
        get_write_buffer(buffer, &view)
        try:
            self.lock_read()
            try:
                size = self.frame_header(False, &deadline)
                if size > view.len:
                    raise ValueError(
                        f"frame of {size} bytes does not fit a buffer of "
                        f"{view.len} bytes")
                copy(head, self.rbuf + self.rpos, HEADER)
                self.rpos += HEADER
                got = self.read_into(<char *>view.buf, size, True, True, head,
                                     HEADER, &deadline)
                if got < size:
                    raise IncompleteReadError(
                        PyBytes_FromStringAndSize(<char *>view.buf, got), size)
                return size
            finally:
                self.unlock_read()
        finally:
            PyBuffer_Release(&view)

    def frames(self):
        """An iterator over the payloads of the coming frames; it ends at a
        clean EOF."""
        self.check_open()
        return FrameIterator.__new__(FrameIterator, self)

    # ---- sending ------------------------------------------------------------

    cdef int raise_write_error(self) except -1:
        cdef int err = self.write_error
        if err:
            self.write_error = 0
            raise_oserror(err)
        return 0

    cdef int alloc_wbuf(self) except -1:
        if self.wbuf == NULL:
            self.wbuf = take_buffer(self.rbase)
            if self.wbuf == NULL:
                raise MemoryError()
            self.wcap = self.rbase
        return 0

    cdef int send_gathered(self, fs_buf_t *v, Py_ssize_t count,
                           int flags) except -1:
        cdef fs_buf_t *cur = v
        cdef size_t left = count + 1
        cdef fs_ssize_t err
        cdef int64_t deadline = 0
        cdef fs_sock_t fd = self.sock.fd
        v[0].base = self.wbuf
        v[0].len = self.wlen
        if self.wlen == 0:
            cur += 1
            left -= 1
        while True:
            with nogil:
                err = send_iov(fd, &cur, &left, flags)
            if left == 0:
                break
            try:
                self.sock.wait_or_raise(<int>err, FS_POLLOUT, &deadline)
            except BaseException as exc:
                if broken(exc):
                    self.wlen = 0
                    raise
                self.keep_unsent(cur, left, cur == v)
                raise
        self.wlen = 0
        self.shrink_wbuf()
        return 0

    cdef int keep_unsent(self, fs_buf_t *cur, size_t left,
                         bint in_wbuf) except -1:
        cdef size_t rest, i
        cdef char *p
        self.wlen = 0
        if in_wbuf and left > 0:
            memmove(self.wbuf, cur[0].base, cur[0].len)
            self.wlen = cur[0].len
            cur += 1
            left -= 1
        rest = fs_bufs_total(cur, left)
        if rest == 0:
            return 0
        if self.wlen + rest > <size_t>self.wcap:
            p = <char *>PyMem_Realloc(self.wbuf, self.wlen + rest)
            if p == NULL:
                raise MemoryError()
            self.wbuf = p
            self.wcap = self.wlen + rest
        for i in range(left):
            copy(self.wbuf + self.wlen, cur[i].base, cur[i].len)
            self.wlen += cur[i].len
        return 0

    cdef void shrink_wbuf(self) noexcept:
        cdef char *p
        if self.wcap > self.rbase and self.wlen <= self.rbase:
            p = <char *>PyMem_Realloc(self.wbuf, self.rbase)
            if p != NULL:
                self.wbuf = p
                self.wcap = self.rbase

    cdef int write_ptr(self, const char *p, Py_ssize_t n) except -1:
        cdef fs_buf_t v[2]
        self.lock_write()
        try:
            self.raise_write_error()
            self.alloc_wbuf()
            if n <= self.wcap - self.wlen:
                copy(self.wbuf + self.wlen, p, n)
                self.wlen += n
                return 0
            v[1].base = <char *>p
            v[1].len = n
            self.send_gathered(v, 1, 0)
        finally:
            self.unlock_write()
        return 0

    cdef int flush_locked(self, int flags) except -1:
        cdef fs_buf_t v[1]
        self.raise_write_error()
        # The pending bytes alone: send_gathered's loop, which also keeps
        # an unsent rest in order on a timeout and shrinks the buffer.
        return self.send_gathered(v, 0, flags)

    cpdef Py_ssize_t write(self, object b) except -1:
        """Buffers b (a write that would overflow the buffer goes out at
        once, gathered with what is pending, b not copied); returns len(b).
        On a timeout the unsent rest stays buffered for flush()."""
        cdef Py_buffer view
        cdef Py_ssize_t n
        if self.closed_:
            raise_closed_file()
        if PyBytes_CheckExact(b):
            n = PyBytes_GET_SIZE(b)
            # bytes cannot change and our caller holds it: no pin.
            if not buffered(self, PyBytes_AS_STRING(b), n):
                self.write_ptr(PyBytes_AS_STRING(b), n)
            return n
        get_read_buffer(b, &view)
        try:
            if not buffered(self, <const char *>view.buf, view.len):
                self.write_ptr(<const char *>view.buf, view.len)
            return view.len
        finally:
            PyBuffer_Release(&view)

    def writelines(self, lines):
        """Writes each buffer of an iterable, in order."""
        self.check_open()
        for b in lines:
            self.write(b)

    cpdef object flush(self):
        """Sends all pending writes."""
        self.check_open()
        if self.wlen == 0 and self.write_error == 0:
            return None
        self.lock_write()
        try:
            self.flush_locked(0)
        finally:
            self.unlock_write()

    def write_eof(self):
        """Flushes, then shuts down the sending side (the peer reads EOF)."""
        cdef int r
        self.check_open()
        self.lock_write()
        try:
            self.flush_locked(0)
            r = fs_shutdown(self.sock.fd, SHUT_WR)
            if r < 0:
                raise_oserror(r)
        finally:
            self.unlock_write()

    def sendfile(self, file, offset=0, count=None):
        """Flushes, then sends the file with the OS's zero-copy call;
        returns the bytes sent."""
        self.check_open()
        self.lock_write()
        try:
            self.flush_locked(0)
            return self.sock.sendfile(file, offset, count)
        finally:
            self.unlock_write()

    cpdef object send_frame(self, object payload):
        """Buffers one frame: a 4-byte big-endian length, then the payload
        (a buffer, or a sequence of buffers sent as one frame).  Above
        max_frame: FrameTooLargeError, and nothing is sent."""
        cdef Py_ssize_t n
        cdef char *w
        if self.closed_:
            raise_closed_file()
        if PyBytes_CheckExact(payload):
            n = PyBytes_GET_SIZE(payload)
            if (not self.wbusy and n + HEADER <= self.wcap - self.wlen
                    and n <= self.max_frame):
                w = self.wbuf + self.wlen
                put_header(w, n)
                copy(w + HEADER, PyBytes_AS_STRING(payload), n)
                self.wlen += n + HEADER
                return None
        self.send_frame_parts(frame_parts(payload))
        return None

    cdef int send_frame_parts(self, object seq) except -1:
        cdef Py_buffer stack_views[STACK_BUFS]
        cdef fs_buf_t stack_bufs[STACK_BUFS + 2]
        cdef Py_buffer *views = stack_views
        cdef fs_buf_t *bufs = stack_bufs
        cdef Py_ssize_t count = len(seq), pinned = 0, total, i
        cdef char head[HEADER]
        try:
            # bufs[0]: send_gathered's, for the pending bytes; bufs[1]: the
            # header.
            total = pin_buffers(seq, 0, count, False, 2, &views, &bufs,
                                &pinned)
            if total > self.max_frame:
                raise FrameTooLargeError(
                    f"frame of {total} bytes; max_frame is {self.max_frame}")
            put_header(head, total)
            bufs[1].base = head
            bufs[1].len = HEADER
            self.lock_write()
            try:
                self.raise_write_error()
                self.alloc_wbuf()
                if total + HEADER <= self.wcap - self.wlen:
                    for i in range(1, count + 2):
                        copy(self.wbuf + self.wlen, bufs[i].base, bufs[i].len)
                        self.wlen += bufs[i].len
                else:
                    self.send_gathered(bufs, count + 1, 0)
            finally:
                self.unlock_write()
        finally:
            release_views(views, pinned, stack_views)
        return 0


# send_frame()'s payload as a list or tuple of buffers.
cdef object frame_parts(object payload):
    if PyObject_CheckBuffer(payload):
        return (payload,)
    if isinstance(payload, (list, tuple)):
        return payload
    if isinstance(payload, str):
        raise TypeError("a bytes-like object or a sequence of them is "
                        "required, not 'str'")
    try:
        return list(payload)
    except TypeError:
        raise TypeError(
            "a bytes-like object or a sequence of them is required, "
            f"not '{type(payload).__name__}'") from None


cdef class FrameIterator:
    """Yields the payload of each frame of a Stream until a clean EOF."""

    def __cinit__(self, Stream stream not None):
        # In __cinit__, so that no way of making one leaves `stream` None.
        self.stream = stream

    def __iter__(self):
        return self

    def __next__(self):
        # The hot path of `for msg in stream.frames()`: a header parsed and
        # one bytes object built straight from the buffer per frame.
        cdef Stream s = self.stream
        cdef Py_ssize_t have = s.rend - s.rpos, size
        cdef const char *p
        if have >= HEADER:
            p = s.rbuf + s.rpos
            size = frame_length(p)
            if size <= s.frame_limit and size + HEADER <= have:
                s.rpos += size + HEADER
                return PyBytes_FromStringAndSize(p + HEADER, size)
        s.check_open()
        s.lock_read()
        try:
            frame = s.recv_frame_impl(True)
        finally:
            s.unlock_read()
        if frame is None:
            raise StopIteration
        return frame


io.BufferedIOBase.register(Stream)


# ---- connection set-up: the Streams of client.connect() and Listener.accept()
# One call each, so that the work per connection that C does not do (Python
# calls, argument parsing, getdefaulttimeout()) stays out of the way.

cdef int AF_INET = _stdlib.AF_INET
cdef int AF_INET6 = _stdlib.AF_INET6
cdef int IPPROTO_TCP = _stdlib.IPPROTO_TCP
cdef int TCP_NODELAY = _stdlib.TCP_NODELAY
cdef object getdefaulttimeout = _stdlib.getdefaulttimeout


cdef int numeric_address(object address, fs_addr_t *a) except -1:
    """For a (host, port) pair whose host is a numeric address in a str:
    its sockaddr in *a and AF_INET or AF_INET6, else 0 (a name, a path)."""
    cdef Py_ssize_t n
    cdef const char *c
    cdef int family
    cdef unsigned port
    if type(address) is not tuple or len(address) != 2:
        return 0
    host = address[0]
    if not isinstance(host, str) or not PyUnicode_IS_COMPACT_ASCII(host):
        return 0
    c = PyUnicode_AsUTF8AndSize(host, &n)
    # fs_addr_ip() takes "" and "<broadcast>", which are names to
    # getaddrinfo(); and an embedded NUL would cut the text short.
    if n == 0 or c[0] == b'<' or memchr(c, 0, n) != NULL:
        return 0
    family = AF_INET6 if memchr(c, b':', n) != NULL else AF_INET
    port = port_value(address[1])
    return family if fs_addr_ip(a, family, c, port, 0, 0) == 0 else 0


cdef int set_nodelay(Socket s) except -1:
    cdef int one = 1
    cdef int r = fs_setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one,
                               sizeof(one))
    if r < 0:
        raise_oserror(r)
    return 0


# connect() for one address: `address`, or if `a` is not NULL, that
# address already parsed.
cdef Stream open_stream(int family, object address, fs_addr_t *a,
                        object timeout, bint nodelay, object source_address,
                        Py_ssize_t buffer_size, Py_ssize_t max_frame):
    cdef Socket s = new_socket(family, SOCK_STREAM)
    cdef Stream stream
    try:
        if timeout is not None:
            s.set_timeout_value(timeout)
        if nodelay and (family == AF_INET or family == AF_INET6):
            set_nodelay(s)
        if source_address is not None:
            s.bind(source_address)
        if a != NULL:
            s.connect_to(a, True)
        else:
            s.connect_impl(address, True)
        stream = Stream.__new__(Stream)
        stream.attach(s, buffer_size, max_frame)
        return stream
    except BaseException:
        s.close_fd()
        raise


def connect_stream(int family, object address, object timeout, bint nodelay,
                   object source_address, Py_ssize_t buffer_size,
                   object max_frame):
    """client.connect() for one address: a new socket of `family`, its
    timeout, TCP_NODELAY (TCP only), the source address bound, connect(),
    and the Stream over it."""
    check_sizes(buffer_size, max_frame)
    return open_stream(family, address, NULL, timeout, nodelay,
                       source_address, buffer_size, max_frame)


def connect(address, *, timeout=None, bint nodelay=True,
            source_address=None, Py_ssize_t buffer_size=65536,
            max_frame=16 * 2**20):
    """A Stream connected to `address`: a (host, port) tuple, whose
    addresses (IPv4 and IPv6) are tried in getaddrinfo's order, or an
    AF_UNIX path.  `timeout` bounds each connection attempt and stays the
    stream's timeout; `nodelay` sets TCP_NODELAY; `source_address` is
    bound first."""
    # A numeric (host, port) is connected here in one call, with no
    # Python-level frame on the way (fastsock.client has the rest).
    cdef fs_addr_t a
    cdef int family
    check_sizes(buffer_size, max_frame)
    family = numeric_address(address, &a)
    if family != 0:
        return open_stream(family, address, &a, timeout, nodelay,
                           source_address, buffer_size, max_frame)
    from fastsock.client import connect_by_name
    return connect_by_name(address, timeout, nodelay, source_address,
                           buffer_size, max_frame)


@cython.auto_pickle(False)
@cython.binding(False)
cdef class Acceptor:
    """The compiled half of fastsock.Listener: accept() in one call, with
    no Python-level frame on the way."""
    cdef Socket listening
    cdef bint nodelay
    cdef Py_ssize_t buffer_size
    cdef object max_frame

    def __init__(self, Socket sock not None, bint nodelay,
                 Py_ssize_t buffer_size, max_frame):
        """`nodelay`: set TCP_NODELAY on each accepted socket (a TCP
        listener whose sockets do not inherit it)."""
        check_sizes(buffer_size, max_frame)
        self.listening = sock
        self.nodelay = nodelay
        self.buffer_size = buffer_size
        self.max_frame = max_frame

    def accept(self):
        """Waits for the next connection: (Stream, peer address).  The
        stream is blocking, as socket.accept() makes it unless a default
        timeout is set."""
        cdef fs_addr_t a
        cdef Stream stream
        if self.listening is None:
            raise TypeError("Acceptor.__init__ was not called")
        cdef Socket s = self.listening.accept_socket(&a)
        try:
            if self.nodelay:
                set_nodelay(s)
            default = getdefaulttimeout()
            if default is not None:
                s.set_timeout_value(default)
            stream = Stream.__new__(Stream)
            stream.attach(s, self.buffer_size, self.max_frame)
            stream.fresh = True
            return stream, make_address(&a)
        except BaseException:
            s.close_fd()
            raise
