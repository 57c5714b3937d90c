# Every C declaration the compiled modules use that Cython's own .pxd files
# do not give: csrc/fastsock.h as Cython sees it, and a few CPython calls.
from cpython.buffer cimport Py_buffer
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint32_t


# CPython's raw forms, for a bytes object made, filled in place and then
# shrunk (_PyBytes_Resize needs the only reference, which an `object` is
# not), and an unchecked PyObject_GetBuffer (get_write_buffer() looks at
# the result itself, which costs less on every receive than a try block).
cdef extern from "Python.h":
    PyObject *new_raw_bytes "PyBytes_FromStringAndSize"(const char *,
                                                         Py_ssize_t)
    char *raw_bytes_data "PyBytes_AS_STRING"(PyObject *)
    int _PyBytes_Resize(PyObject **, Py_ssize_t)
    void Py_DECREF(PyObject *)
    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)
    # A str whose characters are all ASCII, stored one byte each: its
    # UTF-8 form is those bytes (what the stdlib passes as a host name).
    bint PyUnicode_IS_COMPACT_ASCII(object)
    const char *PyUnicode_AsUTF8AndSize(object, Py_ssize_t *) except NULL
    int try_get_buffer "PyObject_GetBuffer"(object, Py_buffer *, int)


# csrc/fastsock.h: every function is nogil and returns >= 0 or a negative
# FS_E* code.


cdef extern from "fastsock.h" nogil:
    ctypedef int fs_sock_t          # int on POSIX, SOCKET on Windows
    ctypedef int fs_socklen_t
    ctypedef Py_ssize_t fs_ssize_t

    fs_sock_t FS_INVALID_SOCKET

    ctypedef struct fs_buf_t:       # iovec order on POSIX, set by the header
        char *base
        size_t len

    struct sockaddr:
        unsigned short sa_family

    ctypedef struct fs_addr_t:      # sockaddr_storage plus its length
        fs_socklen_t len
    sockaddr *fs_addr_sa(fs_addr_t *a)
    fs_socklen_t FS_ADDR_ROOM

    ctypedef struct fs_poller_t:    # opaque: only pointers to it
        pass

    ctypedef struct fs_pevent_t:    # one ready socket from fs_poller_wait
        void *data
        int events

    ctypedef struct fs_dgram_t:
        fs_buf_t *bufs
        size_t nbufs
        sockaddr *addr
        fs_socklen_t addrlen
        size_t len
        int flags

    enum:
        FS_EAGAIN
        FS_EINTR
        FS_EINPROGRESS
        FS_EBADF
        FS_EINVAL
        FS_ENOMEM
        FS_EOPNOTSUPP
        FS_ECONNRESET
        FS_EMFILE
        FS_ENFILE
        FS_ENOBUFS
        FS_POLLIN
        FS_POLLOUT
        FS_POLLERR
        FS_POLLER_DEFAULT
        FS_POLLER_POLL
        FS_DGRAM_TRUNC
        FS_SEGMENTS_MAX
        FS_SEGMENTS_BYTES

    int fs_init()
    void fs_error_info(int code, int *err_no, int *winerror, char *msg,
                       size_t size)
    int64_t fs_monotonic_ns()
    int fs_iov_max()

    int fs_socket(int family, int type, int proto, fs_sock_t *out)
    int fs_socketpair(int family, int type, int proto, fs_sock_t *out)
    int fs_close(fs_sock_t s)
    int fs_set_nonblocking(fs_sock_t s, int on)
    int fs_sock_info(fs_sock_t s, int *family, int *type, int *proto)
    int fs_dup(fs_sock_t s, fs_sock_t *out)
    int fs_get_inheritable(fs_sock_t s)
    int fs_set_inheritable(fs_sock_t s, int on)

    int fs_bind(fs_sock_t s, const sockaddr *addr, fs_socklen_t len)
    int fs_listen(fs_sock_t s, int backlog)
    int fs_connect(fs_sock_t s, const sockaddr *addr, fs_socklen_t len)
    int fs_connect_result(fs_sock_t s)
    int fs_accept(fs_sock_t s, sockaddr *addr, fs_socklen_t *len,
                  fs_sock_t *out)
    int fs_accept_nonblocking(fs_sock_t s, sockaddr *addr, fs_socklen_t *len,
                              fs_sock_t *out)
    int fs_shutdown(fs_sock_t s, int how)
    int fs_getsockname(fs_sock_t s, sockaddr *addr, fs_socklen_t *len)
    int fs_getpeername(fs_sock_t s, sockaddr *addr, fs_socklen_t *len)
    int fs_setsockopt(fs_sock_t s, int level, int name, const void *value,
                      fs_socklen_t len)
    int fs_getsockopt(fs_sock_t s, int level, int name, void *value,
                      fs_socklen_t *len)

    fs_ssize_t fs_send(fs_sock_t s, const void *buf, size_t len, int flags)
    fs_ssize_t fs_recv(fs_sock_t s, void *buf, size_t len, int flags)
    fs_ssize_t fs_sendto(fs_sock_t s, const void *buf, size_t len, int flags,
                         const sockaddr *addr, fs_socklen_t addrlen)
    fs_ssize_t fs_recvfrom(fs_sock_t s, void *buf, size_t len, int flags,
                           sockaddr *addr, fs_socklen_t *addrlen)
    fs_ssize_t fs_sendv(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                        int flags)
    fs_ssize_t fs_recvv(fs_sock_t s, fs_buf_t *bufs, size_t n, int flags)
    fs_ssize_t fs_sendmsg(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                          const sockaddr *addr, fs_socklen_t addrlen,
                          const void *control, size_t controllen, int flags)
    fs_ssize_t fs_recvmsg(fs_sock_t s, fs_buf_t *bufs, size_t n,
                          sockaddr *addr, fs_socklen_t *addrlen,
                          void *control, size_t *controllen, int *msg_flags,
                          int flags)
    fs_ssize_t fs_sendfile(fs_sock_t s, int fd, int64_t *offset, size_t count,
                           int blocking)
    int fs_recv_batch(fs_sock_t s, fs_dgram_t *d, size_t n, int flags)
    int fs_send_batch(fs_sock_t s, const fs_dgram_t *d, size_t n, int flags)
    int fs_send_segments(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                         size_t seg, const sockaddr *addr,
                         fs_socklen_t addrlen, int flags)
    int fs_wait(fs_sock_t s, int events, int timeout_ms)

    int fs_poller_new(int backend, fs_poller_t **out)
    void fs_poller_free(fs_poller_t *p)
    int fs_poller_add(fs_poller_t *p, fs_sock_t s, int events, void *data)
    int fs_poller_mod(fs_poller_t *p, fs_sock_t s, int events, void *data)
    int fs_poller_del(fs_poller_t *p, fs_sock_t s)
    int fs_poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                       int timeout_ms)
    int fs_poller_wake(fs_poller_t *p)
    const char *fs_poller_name(const fs_poller_t *p)

    int fs_addr_ip(fs_addr_t *a, int family, const char *host, unsigned port,
                   uint32_t flowinfo, uint32_t scope_id)
    int fs_resolve(fs_addr_t *a, int family, const char *host, unsigned port,
                   uint32_t flowinfo, uint32_t scope_id)
    const char *fs_gai_strerror(int code)
    int fs_addr_ip_info(const fs_addr_t *a, char *host, size_t hostlen,
                        unsigned *port, uint32_t *flowinfo,
                        uint32_t *scope_id)
    int fs_addr_unix(fs_addr_t *a, const char *path, size_t len)
    int fs_addr_unix_path(const fs_addr_t *a, const char **path)

    size_t fs_cmsg_space(size_t datalen)
    int fs_cmsg_put(void *control, size_t size, size_t *used, int level,
                    int type, const void *data, size_t len)
    int fs_cmsg_next(const void *control, size_t size, size_t *offset,
                     int *level, int *type, const void **data, size_t *len)

    void fs_bufs_advance(fs_buf_t **bufs, size_t *n, size_t sent)
    size_t fs_bufs_total(const fs_buf_t *bufs, size_t n)

    long fs_atomic_add(long *p, long delta)
    int fs_atomic_cas(long *p, long expected, long desired)
