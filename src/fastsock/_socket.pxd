# fastsock._socket: the low-level endpoint over the C shim.
# Other compiled modules (the stream, the datagram batches) cimport this to
# reach the descriptor, the waits and the buffer pinning without
# Python-level dispatch.
from libc.stdint cimport int64_t, INT64_MAX
from cpython.buffer cimport Py_buffer

from cpython.object cimport PyObject

from fastsock._shim cimport fs_sock_t, fs_addr_t, fs_buf_t, fs_monotonic_ns


# Raises the stdlib's OSError subclass for a negative FS_E* code.
cdef int raise_oserror(int code) except -1

# Pins `obj` for reading (any C-contiguous buffer) / for writing into,
# with the errors of the stdlib's "y*" and "w*" converters: reading raises
# TypeError for a non-buffer and BufferError for a non-contiguous view,
# writing raises TypeError for both and for a read-only buffer.
cdef int get_read_buffer(object obj, Py_buffer *view) except -1
cdef int get_write_buffer(object obj, Py_buffer *view) except -1


cdef enum:
    # Pinned buffers of a gathered call live on the caller's stack up to
    # this count (send_batch's chunk of 64 datagrams fits); more take one
    # heap block (uvloop does the same).
    STACK_BUFS = 64

# Pins seq[start .. start + count - 1] (seq a list or tuple; writable
# buffers if `writable`) into (*views)[i] and points (*bufs)[lead + i] at
# each; the first `lead` slots of *bufs are left for the caller (a frame
# header).  *views and *bufs start at the caller's stack arrays of
# STACK_BUFS views and lead + STACK_BUFS bufs, and move to one heap block
# for more.  *pinned counts what was pinned, so the caller's
# `finally: release_views(...)` releases exactly that, also when this
# raises half-way.  Returns the bytes pinned.
cdef Py_ssize_t pin_buffers(object seq, Py_ssize_t start, Py_ssize_t count,
                            bint writable, Py_ssize_t lead,
                            Py_buffer **views, fs_buf_t **bufs,
                            Py_ssize_t *pinned) except -1
# Releases views[0..n-1], and frees them unless they are the stack array.
cdef void release_views(Py_buffer *views, Py_ssize_t n,
                        Py_buffer *stack) noexcept

# Milliseconds from `now` to `until` (monotonic nanoseconds) for fs_wait(),
# rounded up (a wait that ends early would only wait again) and capped at
# an int; 0 once it has passed.
cdef inline int ms_until(int64_t until, int64_t now) noexcept nogil:
    if until <= now:
        return 0
    return <int>min((until - now - 1) // 1000000 + 1, 0x7FFFFFFF)

# ms_until(*deadline), where a *deadline of 0 is started here at now +
# timeout_ns, so a call that succeeds at once never reads the clock.
# (Inline: Stream.receive() calls it on every request with a timeout.)
cdef inline int ms_left(int64_t *deadline, int64_t timeout_ns) noexcept nogil:
    cdef int64_t now = fs_monotonic_ns()
    if deadline[0] == 0:
        deadline[0] = now + timeout_ns
        if deadline[0] < now:       # a timeout of centuries
            deadline[0] = INT64_MAX
    return ms_until(deadline[0], now)


# A new bytes object of `size` bytes to fill in place, and the same shrunk
# to n bytes (finish_bytes takes over the reference, also when it raises).
cdef PyObject *alloc_bytes(Py_ssize_t size) except NULL
cdef object finish_bytes(PyObject *raw, Py_ssize_t n)

# sockaddr -> Python address, as the stdlib makes it.
cdef object make_address(fs_addr_t *addr)

# The Python address of the sender *a, for a cache of one: last_obj again
# when *a is the sockaddr *last, else a new object, with *a copied to *last
# (the caller keeps the result as its new last_obj).  A run of datagrams
# from one peer then builds no tuple and no host string each.
cdef object sender_address(fs_addr_t *a, fs_addr_t *last, object last_obj)


cdef class Socket:
    cdef fs_sock_t fd           # FS_INVALID_SOCKET once closed or detached
    cdef int family_            # plain ints; the properties make enums
    cdef int type_
    cdef int proto_
    cdef int64_t timeout_ns     # -1 blocking, 0 non-blocking, > 0 timeout
    cdef double timeout_s       # the same, as settimeout() was given it
    cdef int io_refs            # makefile() objects still open
    cdef bint close_pending     # close() waits for io_refs to drop to 0
    cdef object __weakref__

    # sendto(): the last destination object and its parsed form, so a
    # loop sending to one peer parses the address once.
    cdef object sendto_key
    cdef fs_addr_t sendto_addr
    # recvfrom(): the last sender and the Python address made for it, so
    # datagrams from one peer do not build a tuple and a host string each.
    cdef fs_addr_t from_addr
    cdef object from_obj

    # EBADF if closed.
    cdef int check_open(self) except -1
    # close() without the Python-level call (Stream closes its socket so).
    cdef int close_fd(self) except -1
    # accept() without the address object and the default timeout: a new
    # blocking Socket of this class, the peer's sockaddr in *a.
    cdef Socket accept_socket(self, fs_addr_t *a)
    # The one wait: until the socket is ready for `events` (returns 0),
    # for ever if it is blocking, else until *deadline (TimeoutError; see
    # ms_left); BlockingIOError at once if it is non-blocking.  Signals
    # run their handlers and the wait goes on (PEP 475).
    cdef int wait(self, int events, int64_t *deadline) except -1
    # After a call failed with `err`: returns 0 to try the call again (the
    # signal handlers ran after EINTR, or wait() saw the socket ready after
    # EAGAIN with a timeout), or raises the error.
    cdef int wait_or_raise(self, int err, int events,
                           int64_t *deadline) except -1
    # Python address -> sockaddr, per this socket's family; returns 0 for a
    # numeric IP address, 1 for a resolved name, 2 for an AF_UNIX path.
    cdef int parse_address(self, object address, fs_addr_t *out) except -1
    cdef int set_timeout_value(self, object value) except -1
    # getsockname() / getpeername() (peer).
    cdef object name(self, bint peer)
    # connect()/connect_ex(): 0, or the errno when raise_errors is false.
    cdef int connect_impl(self, object address, bint raise_errors) except? -1
    # connect_impl() to an address already parsed.
    cdef int connect_to(self, fs_addr_t *a, bint raise_errors) except? -1
    # The sender's address object, reused while the sender stays the same.
    cdef object last_sender(self, fs_addr_t *addr)
    # recvmsg()/recvmsg_into(): (nbytes, ancdata, msg_flags, address).
    cdef object recvmsg_impl(self, fs_buf_t *bufs, Py_ssize_t count,
                             Py_ssize_t ancbufsize, int flags)

    cpdef Py_ssize_t send(self, object data, int flags=*) except -1
    cpdef Py_ssize_t recv_into(self, object buffer, Py_ssize_t nbytes=*,
                               int flags=*) except -1
    cpdef object sendall(self, object data, int flags=*)


# A port number checked as the stdlib checks it (TypeError, OverflowError).
cdef unsigned port_value(object port) except? 0

# A new blocking Socket(family, type) without __init__'s argument parsing
# and getdefaulttimeout() (for callers that set the timeout themselves).
cdef Socket new_socket(int family, int type)


# Socket.recv_batch() and send_batch() run fastsock._batch's functions,
# which that module hands over here when it is imported: it cimports this
# module, so this one imports nothing of it.
ctypedef int (*recv_batch_fn)(Socket, object, int) except -1
ctypedef Py_ssize_t (*send_batch_fn)(Socket, object, object) except -1
cdef int set_batch_functions(recv_batch_fn recv,
                             send_batch_fn send) except -1
