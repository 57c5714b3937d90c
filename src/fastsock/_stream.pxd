# fastsock._stream: the file-like endpoint, read and write buffers in C.
#
# Threads: one reader and one writer may work at once.  Read state (rbuf,
# rpos, rend) belongs to readers, write state (wbuf, wlen) to writers.  A
# fast path that needs no system call runs entirely under the GIL and holds
# no pointer across a GIL release, so it takes no lock.  Every slow path
# (one that compacts, grows or fills a buffer without the GIL) holds that
# side's lock for its whole duration.
from libc.stdint cimport int64_t
from cpython.pythread cimport PyThread_type_lock

from fastsock._shim cimport fs_buf_t
from fastsock._socket cimport Socket


# One side's lock.  Taking and letting go of it is one atomic operation
# while no other thread wants it; a thread that must wait sleeps on
# `handoff`, which is held while nobody waits, and a holder that leaves
# with waiters counted releases it to pass the lock on.
ctypedef struct SideLock:
    long users                  # holders and waiters (0 or 1 holder)
    PyThread_type_lock handoff


cdef class Stream:
    cdef Socket sock               # the underlying endpoint (`socket`)
    # Read buffer: bytes [rpos, rend) are buffered and unread; [rend, rcap)
    # is free room for the next receive.  rcap grows past rbase only for a
    # line, a readuntil() limit or data kept after a timeout, and shrinks
    # back once the buffer is drained.
    cdef char *rbuf
    cdef Py_ssize_t rpos
    cdef Py_ssize_t rend
    cdef Py_ssize_t rcap
    cdef Py_ssize_t rbase           # buffer_size as given
    # Write buffer: wlen pending bytes; allocated at the first write.  Its
    # capacity wcap is 0 while unallocated and once closed, so the write
    # fast path needs no other test.
    cdef char *wbuf
    cdef Py_ssize_t wlen
    cdef Py_ssize_t wcap
    # Set while the write lock is held: the write fast path then stays out
    # of a buffer that another thread is sending.
    cdef bint wbusy
    # Frames: max_frame as given; frame_limit is max_frame, or -1 once a
    # too-large header broke the framing (one test in the hot path).
    cdef Py_ssize_t max_frame
    cdef Py_ssize_t frame_limit
    # A send error hit while a read flushed pending writes: raised by the
    # next write or flush rather than by the read (0: none).
    cdef int write_error
    cdef bint closed_
    cdef bint close_pending        # close() waits for a call in progress
    # Graceful shutdown (drain()).  `draining`: once set, a read at a
    # message boundary that would wait for the peer returns EOF instead.
    # `idle`: a reader is waiting in a receive at a boundary; set under
    # the GIL after testing `draining`, cleared right after the receive
    # returns.  drain() shuts the reading side down only when it is set.
    cdef bint draining
    cdef bint idle
    # Made by Listener.accept() and nothing received yet (see receive()).
    cdef bint fresh
    cdef SideLock rlock            # held by a reader's slow path
    cdef SideLock wlock            # held while the write buffer is sent
    cdef object __weakref__

    # ---- locks and closing ---------------------------------------------
    # Take a side's lock (waiting without the GIL if another thread has it);
    # raise ValueError if the stream is closed.
    cdef int lock_read(self) except -1
    cdef int lock_write(self) except -1
    # Release it, and finish a close() that was waiting for this call.
    cdef void unlock_read(self) noexcept
    cdef void unlock_write(self) noexcept
    # Take the write lock only if it is free at once: 1 if taken.
    cdef int try_lock_write(self) noexcept
    # Close the socket and free the buffers if no call is in progress.
    cdef void finish_close(self) noexcept
    cdef void free_buffers(self) noexcept
    cdef int check_open(self) except -1
    # __init__'s work once the arguments are checked: take over the open
    # stream socket s and allocate the read buffer.
    cdef int attach(self, Socket s, Py_ssize_t buffer_size,
                    Py_ssize_t max_frame) except -1

    # ---- receiving ------------------------------------------------------
    # One receive (recv flags `flags`) into iov[0..count-1] (count is 1 or
    # 2), after sending the pending writes; returns bytes received, 0 at EOF.
    # `boundary`: nothing of the message or read() call received yet (see
    # may_wait() and drain()).
    cdef Py_ssize_t receive(self, fs_buf_t *iov, int count, int flags,
                            int64_t *deadline, bint boundary) except -1
    # Before a wait at a boundary: 0 if draining and nothing has arrived
    # (the read returns EOF), else 1, with `idle` set at a boundary.
    cdef int may_wait(self, bint boundary) noexcept
    # Sends pending writes before a read waits, after the first send of
    # them stopped on `err`; stops early if data arrives (then *got holds
    # the receive's result): 1 if it received, else 0.  A broken
    # connection drops them and leaves its error in write_error.
    cdef int flush_before_read(self, int err, fs_buf_t *iov, int count,
                               int64_t *deadline, Py_ssize_t *got) except -1
    # Make rbuf able to hold `need` bytes from rpos (compact, grow, or
    # shrink a drained grown buffer); always leaves at least one free byte.
    cdef int make_room(self, Py_ssize_t need) except -1
    # One receive into the free room of rbuf; returns bytes, 0 at EOF.
    # At a boundary when nothing is buffered (the module's fill_from() is
    # told: read_into() may hold bytes of its call elsewhere).
    cdef Py_ssize_t fill(self, int64_t *deadline) except -1
    # Fill until n bytes are buffered: 1, or 0 at EOF with fewer.
    cdef int fill_to(self, Py_ssize_t n, int64_t *deadline) except -1
    # Put data back in front of the (empty) read buffer: used when a read
    # that went straight into its destination stops on an exception.
    cdef int unread(self, const char *head, Py_ssize_t headlen,
                    const char *data, Py_ssize_t n) except -1
    # Read n bytes into dst: buffered bytes first, then receives straight
    # into dst (with `spill`, rbuf is a second vector for what follows).
    # `all`: until n or EOF, else at most one receive.  On an exception the
    # bytes already in dst go back to the buffer (after `head`), so none is
    # lost.
    cdef Py_ssize_t read_into(self, char *dst, Py_ssize_t n, bint all,
                              bint spill, const char *head,
                              Py_ssize_t headlen, int64_t *deadline) except -1
    # readinto()/readinto1(): fast path, then read_into() under the lock.
    cdef Py_ssize_t readinto_impl(self, object b, bint all) except -1
    # A bytes object of `size` filled by read_into(), shrunk in place if
    # EOF came first.
    cdef object read_bytes(self, Py_ssize_t size, bint all, const char *head,
                           Py_ssize_t headlen, int64_t *deadline)
    # Offset of sep in the buffer at or after rpos + start, or -1.
    cdef Py_ssize_t find(self, const char *sep, Py_ssize_t seplen,
                         Py_ssize_t start) noexcept
    # Slow paths of readline/readexactly/frames, with the read lock held.
    cdef object readline_locked(self, Py_ssize_t limit)
    cdef object take(self, Py_ssize_t n)
    cdef Py_ssize_t frame_header(self, bint eof_ok, int64_t *deadline) except -2
    cdef object recv_frame_impl(self, bint eof_ok)

    # ---- sending -------------------------------------------------------
    # Send v[1..count] after the pending bytes (v[0] is set to them here),
    # as one gathered call (a loop of them past IOV_MAX) with send flags
    # `flags`; write lock held.  A broken connection drops the pending
    # bytes and raises; on any other exception (a timeout, a signal) the
    # unsent rest is kept.
    cdef int send_gathered(self, fs_buf_t *v, Py_ssize_t count,
                           int flags) except -1
    # Put the unsent rest cur[0..left-1] in the write buffer, in order, so
    # that nothing is lost and flush() sends it; in_wbuf: cur[0] is the
    # rest of the write buffer itself.
    cdef int keep_unsent(self, fs_buf_t *cur, size_t left,
                         bint in_wbuf) except -1
    # Append (small) or gather-send (large) one buffer.
    cdef int write_ptr(self, const char *p, Py_ssize_t n) except -1
    # Allocate the write buffer at the first write; give back a buffer
    # grown by a timeout once it drains.
    cdef int alloc_wbuf(self) except -1
    cdef void shrink_wbuf(self) noexcept
    # Send the pending bytes (send flags `flags`); write lock held.
    cdef int flush_locked(self, int flags) except -1
    cdef int raise_write_error(self) except -1

    cpdef Py_ssize_t write(self, object b) except -1
    cpdef object flush(self)
    cpdef object readexactly(self, Py_ssize_t n)
    cpdef object readline(self, object limit=*)
    cpdef object recv_frame(self)
    cpdef object send_frame(self, object payload)
    # send_frame()'s slow path: the payload as a list or tuple of buffers,
    # pinned, after its header; buffered or sent gathered.
    cdef int send_frame_parts(self, object seq) except -1


cdef class FrameIterator:
    cdef Stream stream              # yields its frames until a clean EOF
