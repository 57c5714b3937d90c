# fastsock._socket: the low-level endpoint over the C shim.
# Other compiled modules (the stream, the datagram batches) cimport this to
# reach the descriptor and the retry logic without Python-level dispatch.
from libc.stdint cimport int64_t
from cpython.buffer cimport Py_buffer

from fastsock._shim cimport fs_sock_t, fs_addr_t, fs_buf_t


# Raises the stdlib's OSError subclass for a negative FS_E* code.
cdef int raise_oserror(int code) except -1

# Pins `obj` for reading (any C-contiguous buffer) / for writing into,
# with the errors of the stdlib's "y*" and "w*" converters: reading raises
# TypeError for a non-buffer and BufferError for a non-contiguous view,
# writing raises TypeError for both and for a read-only buffer.
cdef int get_read_buffer(object obj, Py_buffer *view) except -1
cdef int get_write_buffer(object obj, Py_buffer *view) except -1


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
    # After a call failed with `err`: returns 0 to try again (the signal
    # handlers ran after EINTR, or the socket became ready for `events`
    # within the deadline) or raises.  *deadline starts at 0 and is set at
    # the first wait, so a call that succeeds at once never reads a clock.
    cdef int retry(self, int err, int events, int64_t *deadline) except -1
    # Python address -> sockaddr, per this socket's family; returns 0 for a
    # numeric IP address, 1 for a resolved name, 2 for an AF_UNIX path.
    cdef int parse_address(self, object address, fs_addr_t *out) except -1
    cdef int set_timeout_value(self, object value) except -1
    # connect()/connect_ex(): 0, or the errno when raise_errors is false.
    cdef int connect_impl(self, object address, bint raise_errors) except? -1
    # The sender's address object, reused while the sender stays the same.
    cdef object last_sender(self, fs_addr_t *addr)
    # recvmsg()/recvmsg_into(): (nbytes, ancdata, msg_flags, address).
    cdef object recvmsg_impl(self, fs_buf_t *bufs, Py_ssize_t count,
                             Py_ssize_t ancbufsize, int flags)

    cpdef Py_ssize_t send(self, object data, int flags=*) except -1
    cpdef Py_ssize_t recv_into(self, object buffer, Py_ssize_t nbytes=*,
                               int flags=*) except -1
    cpdef object sendall(self, object data, int flags=*)
