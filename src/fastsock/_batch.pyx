"""Datagram batches: many datagrams per system call.

``recv_batch`` fills a ``DatagramBatch`` with one ``fs_recv_batch`` call per
64 slots (recvmmsg on Linux, a loop of recvmsg elsewhere); ``send_batch``
sends a sequence of buffers with one ``fs_send_batch`` call per 64
(sendmmsg).  Neither makes a Python object per datagram: the batch hands out
memoryviews and addresses only when asked for them.
"""
import os
import socket as _stdlib

from cpython.buffer cimport PyBUF_WRITABLE, PyBUF_FORMAT
from cpython.buffer cimport PyBUF_ND, PyBUF_STRIDES, PyObject_CheckBuffer
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.memoryview cimport PyMemoryView_FromObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.sequence cimport (PySequence_Fast, PySequence_Fast_GET_ITEM,
                               PySequence_Fast_GET_SIZE)
from libc.stdint cimport int64_t

from fastsock._shim cimport *
from fastsock._socket cimport (STACK_BUFS, Socket, pin_buffers, release_views,
                               sender_address, set_batch_functions)


cdef enum:
    # fs_recv_batch/fs_send_batch take at most this many datagrams a call
    # (FS__MMSG_CHUNK in fs_posix.c: their mmsghdr array is on the stack);
    # longer batches loop here, in C.
    # (The pinned buffers of a chunk fit STACK_BUFS, on the stack.)
    CHUNK = 64
    # A run of at least this many same-size datagrams goes out as one
    # segmented send (fs_send_segments).
    MIN_RUN = 2

cdef int SOCK_STREAM = _stdlib.SOCK_STREAM
cdef int SOCK_DGRAM = _stdlib.SOCK_DGRAM
cdef int AF_INET = _stdlib.AF_INET
cdef int AF_INET6 = _stdlib.AF_INET6
cdef int IPPROTO_UDP = _stdlib.IPPROTO_UDP
# The kernel would fill every slot with the same peeked datagram.
cdef int MSG_PEEK = _stdlib.MSG_PEEK
# Takes the rest of a long batch without waiting; 0 where the OS has no
# such flag (then a blocking socket stops after the first 64).
cdef int MSG_DONTWAIT = getattr(_stdlib, "MSG_DONTWAIT", 0)

# FASTSOCK_DISABLE_GSO=1 sends every batch with sendmmsg: to compare, or
# to rule segmentation offload out when chasing a problem.
cdef bint SEGMENTS = not os.environ.get("FASTSOCK_DISABLE_GSO")


cdef class DatagramBatch:
    """DatagramBatch(count=64, size=65535): preallocated receive slots.

    ``len(batch)`` is the slot count, ``received`` the datagrams the last
    ``recv_batch`` put in.  ``batch[i]`` (i below ``received``) is a
    read-only memoryview of datagram i, ``address(i)`` its sender and
    ``truncated(i)`` whether it was cut to ``size`` bytes; iterating yields
    ``(memoryview, address)`` pairs.

    A view shows its slot until the next receive into the batch overwrites
    it.  Keeping a view past that is safe (the memory stays the batch's,
    and cannot be freed while any view is alive) but shows the new bytes:
    copy with ``bytes(view)`` what must outlive the next receive.
    ``memoryview(batch)`` is the whole slot area, slot i at ``i * size``.
    """

    def __cinit__(self, Py_ssize_t count=64, Py_ssize_t size=65535):
        cdef Py_ssize_t i, head
        self.export_slot = -1
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        head = sizeof(fs_addr_t) + sizeof(fs_dgram_t) + sizeof(fs_buf_t)
        if count > PY_SSIZE_T_MAX // (head + size):
            raise MemoryError(f"a batch of {count} x {size} bytes")
        # Zeroed: memoryview(batch) must not show stale heap contents.
        self.mem = PyMem_Calloc(count, head + size)
        if self.mem == NULL:
            raise MemoryError()
        self.addrs = <fs_addr_t *>self.mem
        self.dgrams = <fs_dgram_t *>(self.addrs + count)
        self.bufs = <fs_buf_t *>(self.dgrams + count)
        self.data = <char *>(self.bufs + count)
        self.count = count
        self.size = size
        for i in range(count):
            self.bufs[i].base = self.data + i * size
            self.bufs[i].len = size
            self.dgrams[i].bufs = &self.bufs[i]
            self.dgrams[i].nbufs = 1
            self.dgrams[i].addr = fs_addr_sa(&self.addrs[i])

    def __dealloc__(self):
        # Only reached with no export left: each one holds a reference.
        PyMem_Free(self.mem)

    def __repr__(self):
        if self.mem == NULL:
            return "<fastsock.DatagramBatch [released]>"
        return (f"<fastsock.DatagramBatch count={self.count} "
                f"size={self.size} received={self.received}>")

    def __reduce__(self):
        raise TypeError("cannot pickle 'DatagramBatch' object")

    cdef int check_live(self) except -1:
        if self.mem == NULL:
            raise ValueError("operation on a released DatagramBatch")
        return 0

    cdef Py_ssize_t slot(self, Py_ssize_t i) except -1:
        self.check_live()
        if i < 0:
            i += self.received
        if i < 0 or i >= self.received:
            raise IndexError(
                f"datagram index out of range ({self.received} received)")
        return i

    cdef Py_ssize_t length(self, Py_ssize_t i) noexcept:
        # With MSG_TRUNC in the flags the kernel reports the datagram's
        # full length, which can exceed the slot.
        return min(<Py_ssize_t>self.dgrams[i].len, self.size)

    def release(self):
        """Frees the slots now rather than when the batch is collected.
        BufferError while a view of it is alive or a receive is running;
        afterwards every use raises ValueError."""
        if self.mem == NULL:
            return
        if self.exports > 0:
            raise BufferError(
                f"{self.exports} view(s) of the batch still alive")
        PyMem_Free(self.mem)
        self.mem = NULL
        self.received = 0
        self.count = 0

    def __len__(self):
        self.check_live()
        return self.count

    def __getitem__(self, Py_ssize_t i):
        self.export_slot = self.slot(i)
        return PyMemoryView_FromObject(self)

    def __iter__(self):
        self.check_live()
        return _BatchIter(self)

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef Py_ssize_t i = self.export_slot
        self.export_slot = -1
        self.check_live()
        if flags & PyBUF_WRITABLE:
            raise BufferError("a DatagramBatch is read-only")
        if i >= 0:
            view.buf = self.data + i * self.size
            view.len = self.length(i)
        else:
            view.buf = self.data
            view.len = self.count * self.size
        view.obj = self
        view.readonly = 1
        view.itemsize = 1
        view.format = <char *>b"B" if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        # As PyBuffer_FillInfo: the shape and strides of a flat byte
        # buffer are its own len and itemsize.
        view.shape = &view.len if flags & PyBUF_ND else NULL
        view.strides = (&view.itemsize
                        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL)
        view.suboffsets = NULL
        view.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1

    cpdef object address(self, Py_ssize_t i):
        """The sender of datagram i, as ``recvfrom`` gives it (None when
        the OS gave none)."""
        cdef fs_addr_t *a = &self.addrs[self.slot(i)]
        self.last_obj = sender_address(a, &self.last_addr, self.last_obj)
        return self.last_obj

    cpdef bint truncated(self, Py_ssize_t i) except -1:
        """True if datagram i was longer than its slot (the rest is lost)."""
        return (self.dgrams[self.slot(i)].flags & FS_DGRAM_TRUNC) != 0


cdef class _BatchIter:
    # (memoryview, address) for each received datagram; reads `received`
    # at each step, so a receive during the iteration ends it early or
    # moves it on to the new datagrams, never past the filled slots.
    cdef DatagramBatch batch
    cdef Py_ssize_t i

    def __cinit__(self, DatagramBatch batch):
        self.batch = batch

    def __iter__(self):
        return self

    def __next__(self):
        cdef DatagramBatch b = self.batch
        cdef Py_ssize_t i = self.i
        b.check_live()
        if i >= b.received:
            raise StopIteration
        self.i = i + 1
        b.export_slot = i
        return PyMemoryView_FromObject(b), b.address(i)


cdef inline void reset_names(fs_dgram_t *d, size_t n) noexcept nogil:
    # fs_recv_batch reads addrlen as the room at addr and writes the length.
    cdef size_t i
    for i in range(n):
        d[i].addrlen = FS_ADDR_ROOM


cdef inline void set_names(DatagramBatch batch, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        batch.addrs[i].len = batch.dgrams[i].addrlen


cpdef int recv_batch(Socket sock, DatagramBatch batch, int flags=0) except -1:
    """Receives up to ``len(batch)`` datagrams; returns how many arrived.

    Blocking: waits for the first, then takes only what is already queued.
    Non-blocking: BlockingIOError if none is queued.  With a timeout:
    TimeoutError if none came in time.  ``flags`` go to the OS; with
    MSG_PEEK one datagram is looked at and left queued.
    """
    cdef int r = 0, chunk
    cdef Py_ssize_t got, want
    cdef int64_t deadline = 0
    cdef fs_sock_t fd
    if sock is None or batch is None:
        raise TypeError("recv_batch() needs a Socket and a DatagramBatch")
    sock.check_open()
    batch.check_live()
    if sock.type_ == SOCK_STREAM:
        raise ValueError("recv_batch() needs a datagram socket")
    want = 1 if flags & MSG_PEEK else batch.count
    chunk = <int>min(want, CHUNK)
    batch.received = 0
    # Counted as an export while the GIL is released, so that release()
    # from another thread cannot free the slots under the kernel's writes.
    batch.exports += 1
    try:
        while True:
            fd = sock.fd
            with nogil:
                reset_names(batch.dgrams, chunk)
                r = fs_recv_batch(fd, batch.dgrams, chunk, flags)
            if r >= 0:
                break
            sock.wait_or_raise(r, FS_POLLIN, &deadline)
        got = r
        # A full chunk: more may be queued.  Take it without waiting (a
        # blocking socket without MSG_DONTWAIT has no way not to wait).
        while r == chunk and got < want and (MSG_DONTWAIT != 0
                                             or sock.timeout_ns >= 0):
            chunk = <int>min(want - got, CHUNK)
            fd = sock.fd
            with nogil:
                reset_names(batch.dgrams + got, chunk)
                r = fs_recv_batch(fd, batch.dgrams + got, chunk,
                                  flags | MSG_DONTWAIT)
            if r <= 0:
                # Nothing more queued, or an error: what arrived stands.  A
                # lasting error comes back on the next call; a one-time
                # one (an ICMP report on a connected socket) is dropped.
                break
            got += r
    finally:
        batch.exports -= 1
    set_names(batch, got)
    batch.received = got
    return <int>got


cdef Py_ssize_t segment_run(const fs_buf_t *b, Py_ssize_t n) noexcept nogil:
    # How many datagrams from b[0] on one fs_send_segments can carry: the
    # same size again and again, perhaps ended by one shorter (the kernel
    # cuts the last segment short) but not empty (it would be lost).
    cdef size_t seg = b[0].len, total = b[0].len, size
    cdef Py_ssize_t k = 1
    if seg == 0:
        return 0
    while k < n and k < FS_SEGMENTS_MAX:
        size = b[k].len
        if size > seg or size == 0 or total + size > FS_SEGMENTS_BYTES:
            break
        total += size
        k += 1
        if size < seg:
            break
    return k


cdef Py_ssize_t plain_stretch(const fs_buf_t *b, Py_ssize_t n) noexcept nogil:
    # How many datagrams from b[0] on go with sendmmsg: up to where the
    # next run worth segmenting starts (at least one).
    cdef Py_ssize_t q = 1
    while q < n and segment_run(b + q, n - q) < MIN_RUN:
        q += 1
    return q


cpdef Py_ssize_t send_batch(Socket sock, object buffers,
                            object address=None) except -1:
    """Sends each buffer of ``buffers`` as one datagram, to ``address`` or
    the connected peer; returns how many were sent: ``buffers[:n]`` went,
    in order, and ``buffers[n:]`` did not.

    ``n`` is ``len(buffers)`` unless the socket could take no more within
    its timeout (at once, if non-blocking) or the OS refused datagram n
    (sending ``buffers[n:]`` again then raises the error).  Raises when not
    even the first datagram could go, as ``send`` does.

    On a UDP socket, a run of datagrams of one size (the last of it may be
    shorter) goes out as one send that the kernel splits into datagrams
    (segmentation offload, Linux 4.18+): several times cheaper than
    sendmmsg, and the same datagrams on the wire.  The rest, and every
    datagram where the OS cannot do that, go with sendmmsg.
    """
    cdef Py_buffer stack_views[STACK_BUFS]
    cdef fs_buf_t stack_bufs[STACK_BUFS]
    cdef Py_buffer *views
    cdef fs_buf_t *bufs
    cdef fs_dgram_t d[CHUNK]
    cdef fs_addr_t a
    cdef sockaddr *sa = NULL
    cdef fs_socklen_t salen = 0
    cdef Py_ssize_t count, sent = 0, pinned, n, i, done
    cdef int64_t deadline = 0
    cdef bint segments
    if sock is None:
        raise TypeError("send_batch() needs a Socket")
    sock.check_open()
    # Only UDP may be given segmented sends: another socket would take the
    # payloads as one datagram.
    segments = (SEGMENTS and sock.type_ == SOCK_DGRAM
                and (sock.family_ == AF_INET or sock.family_ == AF_INET6)
                and (sock.proto_ == 0 or sock.proto_ == IPPROTO_UDP))
    if PyObject_CheckBuffer(buffers):
        raise TypeError(
            "send_batch() takes a sequence of buffers, not one buffer")
    seq = PySequence_Fast(buffers, "send_batch() takes a sequence of buffers")
    count = PySequence_Fast_GET_SIZE(seq)
    if address is not None:
        sock.parse_address(address, &a)
        sa = fs_addr_sa(&a)
        salen = a.len
    while sent < count:
        n = min(count - sent, CHUNK)
        views = stack_views
        bufs = stack_bufs
        pinned = 0
        try:
            pin_buffers(seq, sent, n, False, 0, &views, &bufs, &pinned)
            for i in range(n):
                d[i].bufs = &bufs[i]
                d[i].nbufs = 1
                d[i].addr = sa
                d[i].addrlen = salen
            done = send_chunk(sock, bufs, d, n, segments, sent == 0,
                              &deadline)
            if done < n:
                return sent + done
        finally:
            release_views(views, pinned, stack_views)
        sent += n
    return sent


# Sends the datagrams bufs[0..n-1] (d: the same as descriptors, with their
# destination); returns how many went: all, or fewer when the socket took
# no more within its timeout or the OS refused one.  An error is raised
# instead while nothing of the whole call has gone (`first` and none of
# these), as send() raises it.
cdef Py_ssize_t send_chunk(Socket sock, fs_buf_t *bufs, fs_dgram_t *d,
                           Py_ssize_t n, bint segments, bint first,
                           int64_t *deadline) except -1:
    cdef Py_ssize_t done = 0, k, m
    cdef int r = 0
    cdef fs_sock_t fd
    while done < n:
        fd = sock.fd
        with nogil:
            k = segment_run(bufs + done, n - done) if segments else 0
            m = 0
            if k >= MIN_RUN:
                r = fs_send_segments(fd, bufs + done, k, bufs[done].len,
                                     d[done].addr, d[done].addrlen, 0)
                if r == FS_EOPNOTSUPP:
                    m = k       # not this run: sendmmsg takes it
            else:
                m = plain_stretch(bufs + done, n - done) if segments \
                    else n - done
            if m > 0:
                r = fs_send_batch(fd, d + done, m, 0)
        if r > 0:
            done += r
        elif (first and done == 0) or r == FS_EINTR:
            sock.wait_or_raise(r, FS_POLLOUT, deadline)
        elif r != FS_EAGAIN or sock.timeout_ns <= 0:
            return done
        else:
            try:
                sock.wait_or_raise(r, FS_POLLOUT, deadline)
            except TimeoutError:
                return done
    return done


# Socket.recv_batch() and Socket.send_batch() call these.
cdef int recv_batch_any(Socket sock, object batch, int flags) except -1:
    return recv_batch(sock, <DatagramBatch?>batch, flags)


cdef Py_ssize_t send_batch_any(Socket sock, object buffers,
                               object address) except -1:
    return send_batch(sock, buffers, address)


set_batch_functions(recv_batch_any, send_batch_any)
