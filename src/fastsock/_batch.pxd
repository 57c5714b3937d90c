# fastsock._batch: many datagrams per system call (recvmmsg/sendmmsg).
from fastsock._shim cimport fs_addr_t, fs_buf_t, fs_dgram_t
from fastsock._socket cimport Socket


cdef class DatagramBatch:
    # One allocation holds, in order: the sender addresses, the per-slot
    # descriptors handed to fs_recv_batch, their buffers and the slots.
    cdef void *mem             # NULL once released
    cdef fs_addr_t *addrs      # sender of slot i (len set at receive)
    cdef fs_dgram_t *dgrams    # what fs_recv_batch fills
    cdef fs_buf_t *bufs        # slot i: data + i * size, size bytes
    cdef char *data
    cdef readonly Py_ssize_t count      # slots
    cdef readonly Py_ssize_t size       # bytes a slot holds
    cdef readonly Py_ssize_t received   # slots filled by the last receive
    # Live buffer exports (memoryviews handed out) plus receives running:
    # release() refuses while it is not zero.
    cdef Py_ssize_t exports
    # __getitem__ sets it for __getbuffer__: the slot to export, or -1 for
    # the whole slot area (a plain memoryview(batch)).
    cdef Py_ssize_t export_slot
    # The last address object made and the raw sockaddr it came from, so a
    # run of datagrams from one peer builds one tuple.
    cdef fs_addr_t last_addr
    cdef object last_obj

    # ValueError once released.
    cdef int check_live(self) except -1
    # The slot of datagram i (negative counts from the end), or IndexError.
    cdef Py_ssize_t slot(self, Py_ssize_t i) except -1
    # Bytes of datagram in slot i held by the slot (at most size).
    cdef Py_ssize_t length(self, Py_ssize_t i) noexcept
    cpdef object address(self, Py_ssize_t i)
    cpdef bint truncated(self, Py_ssize_t i) except -1


# Receives up to batch.count datagrams; returns how many arrived.
cpdef int recv_batch(Socket sock, DatagramBatch batch, int flags=*) except -1
# Sends each buffer as one datagram; returns how many were sent.
cpdef Py_ssize_t send_batch(Socket sock, object buffers,
                            object address=*) except -1
