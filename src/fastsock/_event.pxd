# fastsock._event: one event loop in C serving many stream connections,
# a Python callback per complete message (EventServer's core).
#
# Threads: everything here runs on the loop thread, under the GIL, except
# the send*() and close() methods of EventConnection, which any thread may
# call.  They need no lock of their own: they only touch a connection's
# output queue and the loop's `dirty` list with the GIL held, and the loop
# never holds a pointer into those across a call that can release the GIL
# (a Python callback, a buffer release).  The GIL is released only around
# the poller's wait.
from cpython.buffer cimport Py_buffer
from libc.stdint cimport int64_t

from fastsock._shim cimport fs_sock_t, fs_poller_t, fs_pevent_t
from fastsock._socket cimport Socket


# One piece of queued output: a pinned buffer sent without a copy, or bytes
# copied into the connection's wbuf (then `view` is unused).
cdef struct out_piece:
    Py_buffer view
    bint pinned
    Py_ssize_t off        # next unsent byte: in view.buf, or in wbuf
    Py_ssize_t len        # unsent bytes left


cdef class EventConnection:
    cdef EventLoop loop
    cdef fs_sock_t fd              # FS_INVALID_SOCKET once ended
    cdef object address_
    cdef public object context     # the application's, per connection
    cdef int interest              # events registered with the poller
    cdef bint registered           # added to the poller (after the first read)
    cdef bint user_paused          # pause_reading()
    cdef bint throttled            # queued went over high_water; until low_water
    cdef bint closing              # close(): end once the queue is sent
    cdef bint eof                  # the peer sent its last byte
    cdef bint dead                 # ended: on_close is due or done
    cdef bint broken               # over max_buffer: ends at the next pass
    cdef bint dirty                # in loop.dirty: flush at the end of the pass
    cdef bint backlog              # ibuf may hold messages not yet handled
    cdef bint wblocked             # the last flush could not send everything
    cdef bint in_ready             # listed in loop.ready for this pass
    cdef object error              # why it ends, for on_close (None: clean)
    # Input kept between passes (a partial message, or messages left by the
    # fairness bound): bytes [ipos, ilen) of ibuf, capacity icap.  NULL
    # while empty, so an idle connection holds no receive memory.
    cdef char *ibuf
    cdef Py_ssize_t ipos
    cdef Py_ssize_t ilen
    cdef Py_ssize_t icap
    # Lines and delimiters: how far the kept input was searched already
    # (from ipos), so that a new receive resumes the search there.
    cdef Py_ssize_t iscan
    # Output: pieces q[qhead..qlen) in order; small ones copied into wbuf
    # (wlen used of wcap).  Both freed once everything is sent.
    cdef out_piece *q
    cdef Py_ssize_t qhead
    cdef Py_ssize_t qlen
    cdef Py_ssize_t qcap
    cdef char *wbuf
    cdef Py_ssize_t wlen
    cdef Py_ssize_t wcap
    cdef Py_ssize_t queued         # unsent bytes in all pieces (`buffered`)
    # The idle list, least recently active first (only with idle_timeout).
    cdef int64_t last_ns
    cdef EventConnection prev
    cdef EventConnection next
    cdef object __weakref__

    # Queue n bytes at p by copying them (small writes, frame headers).
    cdef int push_copy(self, const char *p, Py_ssize_t n) except -1
    cdef void compact_wbuf(self) noexcept
    # Queue obj: copied when small, else pinned and held until sent.
    cdef int push_object(self, object obj) except -1
    # The same for a view already pinned (taken over: released here).
    cdef int push_view(self, Py_buffer *view) except -1
    cdef int check_frame_size(self, Py_ssize_t n) except -1
    # Queue a frame: header, then the payload (a buffer or a sequence).
    cdef int push_frame(self, object payload) except -1
    # After something was queued: limits, and a flush at the pass's end.
    cdef int queued_more(self) except -1
    cdef out_piece *new_piece(self) except NULL
    cdef int check_sendable(self) except -1
    cdef int check_loop_thread(self) except -1
    cdef void release_output(self) noexcept
    cdef void free_input(self) noexcept


cdef class EventLoop:
    cdef fs_poller_t *poller
    cdef Socket listener           # None once closed
    cdef fs_sock_t lfd
    cdef bint listening            # the listener is in the poll set
    cdef int family
    cdef int framing               # FRAME, LINE, DELIM or RAW
    cdef bytes delim               # the separator for LINE and DELIM
    cdef object on_message
    cdef object on_connect
    cdef object on_close
    cdef object allow              # None, or allow(address) -> bool
    cdef Py_ssize_t buffer_size
    cdef Py_ssize_t max_frame
    cdef Py_ssize_t max_line
    cdef Py_ssize_t high_water
    cdef Py_ssize_t low_water
    cdef Py_ssize_t max_buffer
    cdef Py_ssize_t max_conns      # -1: no cap
    cdef int64_t idle_ns           # 0: no idle timeout
    cdef bint nodelay
    cdef readonly Py_ssize_t refused
    cdef readonly str backend      # the poller: epoll, poll or wsapoll
    cdef char *rbuf                # the one receive buffer, buffer_size bytes
    cdef set conns                 # every live connection (keeps it alive)
    cdef list dirty                # connections with output to flush
    cdef list ready                # connections with a backlog to handle
    cdef list ended                # ended this pass: (conn, exc) for on_close
    cdef EventConnection idle_head
    cdef EventConnection idle_tail
    cdef unsigned long loop_thread # 0 while not running
    cdef bint running
    cdef bint stop_requested
    cdef bint stopping             # shutdown has begun on the loop thread
    cdef int64_t stop_deadline     # -1: wait for every connection
    cdef int64_t accept_resume     # 0, or when a paused accept loop goes on
    cdef int64_t accept_backoff
    cdef fs_pevent_t events[256]

    cdef int poll_once(self) except -1
    cdef int timeout_ms(self) except? -2
    cdef int accept_some(self) except -1
    cdef int admit(self, fs_sock_t fd, object address) except -1
    cdef int listen_on(self, bint on) except -1
    cdef int handle(self, EventConnection conn, int events) except -1
    cdef int read(self, EventConnection conn) except -1
    cdef int keep(self, EventConnection conn, const char *p,
                  Py_ssize_t n) except -1
    cdef int make_room(self, EventConnection conn) except -1
    cdef Py_ssize_t split(self, EventConnection conn, const char *base,
                          Py_ssize_t have) except -1
    cdef int deliver(self, EventConnection conn, const char *p,
                     Py_ssize_t n) except -1
    cdef int queue_ready(self, EventConnection conn) except -1
    cdef int run_backlog(self) except -1
    cdef int flush(self, EventConnection conn) except -1
    # flush() now if replies are queued and the socket is not known full.
    cdef int flush_replies(self, EventConnection conn) except -1
    cdef int flush_dirty(self) except -1
    cdef int settle(self, EventConnection conn) except -1
    cdef int update_interest(self, EventConnection conn) except -1
    cdef bint can_deliver(self, EventConnection conn) noexcept
    cdef int maybe_finish(self, EventConnection conn) except -1
    cdef int end(self, EventConnection conn, object exc) except -1
    cdef int fail(self, EventConnection conn, int code) except -1
    cdef int report_ended(self) except -1
    cdef void touch(self, EventConnection conn) noexcept
    cdef void unlink_idle(self, EventConnection conn) noexcept
    cdef int expire_idle(self) except -1
    cdef int begin_stop(self) except -1
    cdef int mark_dirty(self, EventConnection conn) except -1
    cdef int wake(self) except -1
