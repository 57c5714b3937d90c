"""The low-level endpoint: a drop-in ``socket.socket`` on the C shim.

Every operation tries the system call first and waits (poll/WSAPoll) only
when the OS says it would block, against one deadline for the whole
operation (all of ``sendall``).  The GIL is released around every call that
can block; EINTR runs the signal handlers and retries (PEP 475).
"""
import errno
import io
import os
import socket as _stdlib
import sys
from operator import index as _index
import warnings

cimport cython
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport (PyErr_CheckSignals, PyErr_Clear,
                         PyErr_ExceptionMatches)
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.sequence cimport PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, INT64_MAX
from libc.string cimport memchr, memcmp, memcpy, memset, strcmp, strcpy

from fastsock._shim cimport *

if fs_init() < 0:
    raise ImportError("fastsock: the socket library could not be initialised")

cdef int AF_INET = _stdlib.AF_INET
cdef int AF_INET6 = _stdlib.AF_INET6
cdef int AF_UNIX = getattr(_stdlib, "AF_UNIX", -1)
cdef int SOCK_STREAM = _stdlib.SOCK_STREAM
# Flags that socket() takes in `type` but that are not the type (Linux).
cdef int SOCK_NONBLOCK = getattr(_stdlib, "SOCK_NONBLOCK", 0)
cdef int SOCK_CLOEXEC = getattr(_stdlib, "SOCK_CLOEXEC", 0)
cdef int IOV_MAX = fs_iov_max()

# The stdlib's own class and makefile, taken at import: code that patches
# socket.socket with a Socket subclass (a drop-in test, say) must not make
# from_socket()/to_socket()/makefile() call back into this class.
cdef object StdSocket = _stdlib.socket
cdef object std_makefile = _stdlib.socket.makefile
# socket.setblocking() takes any object from 3.12 on (an int before).
cdef bint SETBLOCKING_TAKES_ANY = sys.version_info >= (3, 12)
# The longest timeout the stdlib takes: its clock is int64 nanoseconds.
cdef double TIMEOUT_MAX = 9223372036.0

cdef enum:
    # fs_addr_ip_info() writes at most INET6_ADDRSTRLEN (46) bytes.
    HOST_MAX = 64


# sendto()'s "no third argument" (None is an address error, as in the
# stdlib, not a missing one).
_NOARG = object()

# sendfile()'s "use send() instead": the stdlib's own class where it has
# one, so a caller's `except socket._GiveupOnSendfile` keeps working.
_GiveupOnSendfile = getattr(_stdlib, "_GiveupOnSendfile", None)
if _GiveupOnSendfile is None:
    class _GiveupOnSendfile(Exception):
        """The OS has no zero-copy send for this file."""


class _PortError(OverflowError, ValueError):
    """A port outside 0-65535: the stdlib's OverflowError, and a ValueError."""


# ---- errors -----------------------------------------------------------

cdef int raise_oserror(int code) except -1:
    cdef int err_no = 0, winerror = 0
    cdef char msg[256]
    fs_error_info(code, &err_no, &winerror, msg, sizeof(msg))
    text = msg.decode("utf-8", "replace")
    if winerror:
        raise OSError(err_no, text, None, winerror)
    raise OSError(err_no, text)


cdef int raise_timeout() except -1:
    raise TimeoutError("timed out")


cdef int raise_closed() except -1:
    raise_oserror(FS_EBADF)


cdef int get_read_buffer(object obj, Py_buffer *view) except -1:
    # PyBUF_SIMPLE already says what the stdlib's "y*" says: TypeError for
    # an object without the buffer protocol, BufferError for a view that
    # is not C-contiguous.  No try block: this is on every send.
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    return 0


cdef int get_write_buffer(object obj, Py_buffer *view) except -1:
    if try_get_buffer(obj, view, PyBUF_WRITABLE) == 0:
        return 0
    # Read-only, not contiguous or no buffer at all: one TypeError, as the
    # stdlib's "w*" says; anything else (MemoryError) goes through as is.
    if not (PyErr_ExceptionMatches(TypeError)
            or PyErr_ExceptionMatches(BufferError)):
        return -1
    PyErr_Clear()
    raise TypeError(
        "a writable, C-contiguous bytes-like object is required, not "
        f"'{type(obj).__name__}'")


cdef void release_views(Py_buffer *views, Py_ssize_t n,
                        Py_buffer *stack) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        PyBuffer_Release(&views[i])
    if views != stack:
        PyMem_Free(views)


cdef Py_ssize_t pin_buffers(object seq, Py_ssize_t start, Py_ssize_t count,
                            bint writable, Py_ssize_t lead,
                            Py_buffer **views, fs_buf_t **bufs,
                            Py_ssize_t *pinned) except -1:
    cdef Py_ssize_t i, total = 0
    cdef Py_buffer *v
    cdef fs_buf_t *b
    if count > STACK_BUFS:
        v = <Py_buffer *>PyMem_Malloc(count * sizeof(Py_buffer)
                                      + (lead + count) * sizeof(fs_buf_t))
        if v == NULL:
            raise MemoryError()
        views[0] = v
        bufs[0] = <fs_buf_t *>(v + count)
    v = views[0]
    b = bufs[0] + lead
    for i in range(count):
        # A list may shrink while a buffer is pinned (__buffer__ can run
        # Python code): check before each read.
        if start + i >= PySequence_Fast_GET_SIZE(seq):
            raise RuntimeError(
                "the sequence changed size while its buffers were pinned")
        item = <object>PySequence_Fast_GET_ITEM(seq, start + i)
        if writable:
            get_write_buffer(item, &v[i])
        else:
            get_read_buffer(item, &v[i])
        pinned[0] += 1
        b[i].base = <char *>v[i].buf
        b[i].len = v[i].len
        total += v[i].len
    return total


cdef PyObject *alloc_bytes(Py_ssize_t size) except NULL:
    cdef PyObject *raw = new_raw_bytes(NULL, size)
    if raw == NULL:
        raise MemoryError()
    return raw


# Shrinks a bytes object made by alloc_bytes() to n bytes and returns it.
# Takes over the reference, also when it raises.
cdef object finish_bytes(PyObject *raw, Py_ssize_t n):
    if _PyBytes_Resize(&raw, n) < 0:
        raise MemoryError()
    obj = <object>raw
    Py_DECREF(raw)
    return obj


cdef int64_t timeout_to_ns(double t) noexcept:
    # Rounded up, as the stdlib rounds timeouts: a tiny timeout is still a
    # timeout, not non-blocking.  t < TIMEOUT_MAX, so this cannot overflow.
    cdef int64_t ns
    if t <= 0:
        return <int64_t>t
    ns = <int64_t>(t * 1e9)
    return ns + 1 if ns < t * 1e9 or ns == 0 else ns


# sendmsg()'s ancillary data as a list of (level, type, data), checked as
# the stdlib checks it ("iiy*": ints, not anything int() takes).
cdef list ancillary_items(object ancdata):
    items = []
    for item in ancdata:
        try:
            lvl, typ, data = item
        except (TypeError, ValueError):
            raise TypeError("ancillary data items must be (level, type, "
                            "data) sequences") from None
        items.append((_index(lvl), _index(typ), data))
    return items


# sendfile() leaves the file's position after what it sent, where the file
# has one (a pipe has not: seeking it would raise).
cdef bint can_seek(object file) except -1:
    seekable = getattr(file, "seekable", None)
    if seekable is not None:
        return seekable()
    return hasattr(file, "seek")


# ---- addresses ----------------------------------------------------------

cdef unsigned port_value(object port) except? 0:
    cdef int overflow
    cdef long value
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not '{type(port).__name__}'")
    # In C, not two rich comparisons (out of a long's range it reads -1).
    value = PyLong_AsLongAndOverflow(port, &overflow)
    if not 0 <= value <= 65535:
        raise _PortError("port must be 0-65535.")
    return <unsigned>value


# Returns 0 for a numeric host, 1 for one that was resolved (a result that
# may change, so sendto() does not cache it).
cdef int parse_ip(int family, object address, fs_addr_t *out) except -1:
    cdef uint32_t flowinfo = 0, scope_id = 0
    cdef unsigned port
    cdef int r
    if not isinstance(address, tuple):
        raise TypeError(
            f"{'AF_INET6' if family == AF_INET6 else 'AF_INET'} address must "
            f"be tuple, not {type(address).__name__}")
    n = len(address)
    if family == AF_INET and n != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    if family == AF_INET6 and not 2 <= n <= 4:
        raise TypeError(
            "AF_INET6 address must be a tuple (host, port[, flowinfo[, "
            "scopeid]])")
    host, port_obj = address[0], address[1]
    port = port_value(port_obj)
    if n > 2:
        if not 0 <= address[2] <= 0xFFFFF:
            raise _PortError("flowinfo must be 0-1048575.")
        flowinfo = address[2]
    if n > 3:
        scope_id = address[3]
    cdef const char *c_host = NULL
    cdef Py_ssize_t c_len = 0
    if isinstance(host, str):
        if PyUnicode_IS_COMPACT_ASCII(host):
            # As the stdlib: an ASCII name needs no IDNA codec (a pure
            # Python one, some 3,000 instructions per connect).
            c_host = PyUnicode_AsUTF8AndSize(host, &c_len)
        else:
            host = host.encode("idna")
    elif isinstance(host, (bytearray, memoryview)):
        host = bytes(host)
    elif not isinstance(host, bytes):
        raise TypeError(
            f"str, bytes or bytearray expected, not {type(host).__name__}")
    if not isinstance(host, str):
        c_host = host
        c_len = len(<bytes>host)
    # memchr: `b"\0" in host` first tries the bytes as an int and formats
    # the TypeError it catches (about 2,500 instructions).
    if memchr(c_host, 0, c_len) != NULL:
        raise TypeError("host name must not contain null character")
    r = fs_addr_ip(out, family, c_host, port, flowinfo, scope_id)
    if r == 1:
        # Not numeric: resolve it, as the stdlib does, without the GIL.
        with nogil:
            r = fs_resolve(out, family, c_host, port, flowinfo, scope_id)
        if r != 0:
            raise _stdlib.gaierror(r, fs_gai_strerror(r).decode())
        return 1
    if r < 0:
        raise_oserror(r)
    return 0


cdef int parse_unix(object address, fs_addr_t *out) except -1:
    if isinstance(address, str):
        path = os.fsencode(address)
    elif isinstance(address, (bytes, bytearray, memoryview)):
        path = bytes(address)
    elif isinstance(address, os.PathLike):
        path = os.fsencode(address)
    else:
        raise TypeError(
            "a bytes-like object, str or os.PathLike is required for an "
            f"AF_UNIX address, not '{type(address).__name__}'")
    if fs_addr_unix(out, path, len(path)) < 0:
        raise OSError(errno.EINVAL, "AF_UNIX path too long")
    return 0


# Whether `address` is the cached sendto() key: the same object, or a tuple
# of the same items of the same types (so (host, 1.0) is not taken for
# (host, 1), which parse_ip() would refuse).
cdef bint same_address(object address, object key) except -1:
    cdef Py_ssize_t i, n
    if address is key:
        return key is not None
    if type(address) is not tuple or type(key) is not tuple:
        return False
    n = len(<tuple>address)
    if n != len(<tuple>key):
        return False
    for i in range(n):
        x = (<tuple>address)[i]
        y = (<tuple>key)[i]
        if type(x) is not type(y) or x != y:
            return False
    return True


# The host string last made, and its text: a server accepting from one
# client host, or datagrams from one host's ports, build it once.
cdef char last_host_text[HOST_MAX]
cdef object last_host = None


cdef object host_string(const char *text):
    global last_host
    if last_host is None or strcmp(text, last_host_text) != 0:
        last_host = text.decode("ascii")
        strcpy(last_host_text, text)
    return last_host


cdef object make_ip_address(fs_addr_t *addr):
    cdef char host[HOST_MAX]
    cdef unsigned port = 0
    cdef uint32_t flowinfo = 0, scope_id = 0
    cdef int family = fs_addr_ip_info(addr, host, sizeof(host), &port,
                                      &flowinfo, &scope_id)
    if family == AF_INET:
        return (host_string(host), port)
    if family == AF_INET6:
        return (host_string(host), port, flowinfo, scope_id)
    return None


cdef object make_unix_address(fs_addr_t *addr):
    cdef const char *path
    cdef int n = fs_addr_unix_path(addr, &path)
    if n > 0 and path[0] == 0:
        return path[:n]         # abstract names are bytes, as in the stdlib
    return PyUnicode_DecodeFSDefaultAndSize(path, n)


cdef bint descriptor_is_open(object fileno) except -1:
    try:
        os.fstat(fileno)
    except (OSError, OverflowError, ValueError):
        return False
    return True


cdef object make_address(fs_addr_t *addr):
    if addr.len == 0:
        return None
    family = fs_addr_sa(addr).sa_family
    if family == AF_UNIX:
        return make_unix_address(addr)
    if family == AF_INET or family == AF_INET6:
        return make_ip_address(addr)
    return (family, b"")


cdef object sender_address(fs_addr_t *a, fs_addr_t *last, object last_obj):
    if (last_obj is not None and a.len == last.len
            and memcmp(fs_addr_sa(a), fs_addr_sa(last), a.len) == 0):
        return last_obj
    memcpy(last, a, sizeof(fs_addr_t))
    return make_address(a)


# ---- receiving ----------------------------------------------------------
# Inline, so that each caller gets its own copy with `a` known (NULL or
# not) and the hot path pays no extra call.

# One receive of up to n bytes into p, waiting as the socket's timeout
# says; with `a`, the sender's address goes there (recvfrom).
cdef inline fs_ssize_t receive(Socket sock, char *p, Py_ssize_t n, int flags,
                               fs_addr_t *a) except -1:
    cdef fs_ssize_t r
    cdef int64_t deadline = 0
    while True:
        with nogil:
            if a == NULL:
                r = fs_recv(sock.fd, p, n, flags)
            else:
                a.len = FS_ADDR_ROOM
                r = fs_recvfrom(sock.fd, p, n, flags, fs_addr_sa(a), &a.len)
        if r >= 0:
            return r
        sock.wait_or_raise(<int>r, FS_POLLIN, &deadline)


# recv_into() and recvfrom_into() (`a` not NULL): up to nbytes (0: all of
# it) straight into buffer.
cdef inline Py_ssize_t recv_into_buffer(Socket sock, object buffer,
                                        Py_ssize_t nbytes, int flags,
                                        fs_addr_t *a) except -1:
    cdef Py_buffer view
    sock.check_open()
    if nbytes < 0:
        raise_bad_size(a != NULL, -1)
    get_write_buffer(buffer, &view)
    try:
        if nbytes == 0:
            nbytes = view.len
        elif nbytes > view.len:
            raise_bad_size(a != NULL, 1)
        return receive(sock, <char *>view.buf, nbytes, flags, a)
    finally:
        PyBuffer_Release(&view)


# The stdlib's ValueError, as each call words it, for a negative size given
# to recv()/recvfrom() (`what` -2) or to recv_into()/recvfrom_into() (-1),
# or one above the buffer's (1).  Out of line: the callers stay small
# enough for the compiler to inline them.
cdef int raise_bad_size(bint recvfrom, int what) except -1:
    if what == -2:
        raise ValueError("negative buffersize in "
                         + ("recvfrom" if recvfrom else "recv"))
    if what == -1:
        raise ValueError("negative buffersize in "
                         + ("recvfrom_into" if recvfrom else "recv_into"))
    raise ValueError("nbytes is greater than the length of the buffer"
                     if recvfrom else "buffer too small for requested bytes")


# ---- the socket ---------------------------------------------------------

# No pickling support generated: a socket cannot be pickled (__getstate__).
# binding=False: methods are plain method descriptors, as the stdlib's; the
# default cyfunction dispatch cost about 115 instructions more per call
# (callgrind, recv_into), some 8% of a loopback recv_into.
@cython.auto_pickle(False)
@cython.binding(False)
cdef class Socket:
    """A drop-in ``socket.socket`` whose I/O runs in C.

    ``Socket(family=-1, type=-1, proto=-1, fileno=None)``: -1 means
    AF_INET, SOCK_STREAM and 0, or, with ``fileno``, what the OS says that
    socket is.  The timeout starts at ``socket.getdefaulttimeout()``.
    """

    def __cinit__(self):
        self.fd = FS_INVALID_SOCKET
        self.timeout_ns = -1
        self.timeout_s = -1.0

    def __init__(self, int family=-1, int type=-1, int proto=-1,
                 fileno=None):
        cdef int r, f = 0, t = 0, p = 0
        cdef fs_sock_t fd
        if fileno is not None:
            if not isinstance(fileno, int):
                raise TypeError(
                    "fileno must be an int, not "
                    f"'{_builtin_type(fileno).__name__}'")
            if fileno < 0:
                raise ValueError(f"negative file descriptor")
            fd = fileno
            r = fs_sock_info(fd, &f, &t, &p)
            if r == FS_EBADF and descriptor_is_open(fileno):
                # The shim folds "not a socket" into EBADF; the stdlib says
                # ENOTSOCK for an open file that is no socket.
                raise OSError(errno.ENOTSOCK, os.strerror(errno.ENOTSOCK))
            if r < 0:
                raise_oserror(r)
            family = f if family == -1 else family
            type = t if type == -1 else type
            proto = p if proto == -1 else proto
        else:
            family = AF_INET if family == -1 else family
            type = SOCK_STREAM if type == -1 else type
            proto = 0 if proto == -1 else proto
            with nogil:
                r = fs_socket(family, type, proto, &fd)
            if r < 0:
                raise_oserror(r)
        self.fd = fd
        self.family_ = family
        self.type_ = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        self.proto_ = proto
        default = _stdlib.getdefaulttimeout()
        if type & SOCK_NONBLOCK:
            self.set_timeout_value(0.0)
        elif default is not None or fileno is not None:
            self.set_timeout_value(default)
        # else: fs_socket() made it blocking, as timeout None says.

    def __del__(self):
        if self.fd != FS_INVALID_SOCKET:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
            fs_close(self.fd)
            self.fd = FS_INVALID_SOCKET

    def __dealloc__(self):
        if self.fd != FS_INVALID_SOCKET:
            fs_close(self.fd)

    def __repr__(self):
        # The stdlib's form, addresses included: code and people that read
        # socket reprs find the same fields.  str() of the enums, as the
        # stdlib's %s: "AddressFamily.AF_INET" before 3.11, "2" since.
        cls = _builtin_type(self)
        module = "fastsock" if cls is Socket else cls.__module__
        closed = self.fd == FS_INVALID_SOCKET
        text = (f"<{module}.{cls.__qualname__}{' [closed]' if closed else ''}"
                f" fd={self.fileno()}, family={self.family!s}, "
                f"type={self.type!s}, proto={self.proto_}")
        if not closed:
            for name, get in (("laddr", self.getsockname),
                              ("raddr", self.getpeername)):
                try:
                    addr = get()
                except OSError:
                    continue
                if addr:
                    text += f", {name}={addr}"
        return text + ">"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    # ---- helpers for this module and the ones that cimport it ---------

    cdef int check_open(self) except -1:
        if self.fd == FS_INVALID_SOCKET:
            raise_closed()
        return 0

    cdef int wait(self, int events, int64_t *deadline) except -1:
        cdef int ms, w
        while True:
            if self.fd == FS_INVALID_SOCKET:
                # Closed by another thread, before the wait (poll() would
                # ignore the -1 and sleep out the timeout) or during it.
                raise_closed()
            ms = -1
            if self.timeout_ns == 0:
                raise_oserror(FS_EAGAIN)
            if self.timeout_ns > 0:
                ms = ms_left(deadline, self.timeout_ns)
                if ms == 0:
                    raise_timeout()
            with nogil:
                w = fs_wait(self.fd, events, ms)
            if w > 0:
                return 0
            if w == FS_EINTR:
                PyErr_CheckSignals()
            elif w < 0:
                raise_oserror(w)
            # 0: the time is up, or poll() woke early; the top decides.

    cdef int wait_or_raise(self, int err, int events,
                           int64_t *deadline) except -1:
        if err == FS_EINTR:
            PyErr_CheckSignals()
            return 0
        if err == FS_EAGAIN and self.timeout_ns > 0:
            return self.wait(events, deadline)
        if self.fd == FS_INVALID_SOCKET:
            raise_closed()
        raise_oserror(err)

    cdef int parse_address(self, object address, fs_addr_t *out) except -1:
        if self.family_ == AF_INET or self.family_ == AF_INET6:
            return parse_ip(self.family_, address, out)
        if self.family_ == AF_UNIX:
            parse_unix(address, out)
            return 2
        raise OSError(errno.EAFNOSUPPORT,
                      f"address family {self.family_} is not supported")

    cdef int set_timeout_value(self, object value) except -1:
        cdef double t
        cdef int r
        if value is None:
            t = -1.0
        else:
            try:
                t = value
            except TypeError:
                raise TypeError("Timeout value must be int, float or None")
            if t != t:
                raise ValueError("Invalid value NaN (not a number)")
            if t < 0:
                raise ValueError("Timeout value out of range")
            if t >= TIMEOUT_MAX:
                raise OverflowError("timeout too large")
        # As the stdlib: a closed socket says EBADF here too.
        r = fs_set_nonblocking(self.fd, t >= 0)
        if r < 0:
            raise_oserror(r)
        self.timeout_s = t
        self.timeout_ns = timeout_to_ns(t)
        return 0

    # ---- identity -----------------------------------------------------

    @property
    def family(self):
        try:
            return _stdlib.AddressFamily(self.family_)
        except ValueError:
            return self.family_

    @property
    def type(self):
        try:
            return _stdlib.SocketKind(self.type_)
        except ValueError:
            return self.type_

    @property
    def proto(self):
        return self.proto_

    @property
    def timeout(self):
        return None if self.timeout_s < 0 else self.timeout_s

    def fileno(self):
        """The OS handle, or -1 once closed."""
        if self.fd == FS_INVALID_SOCKET:
            return -1
        return self.fd

    def detach(self):
        """Gives up the handle without closing it and returns it."""
        if self.fd == FS_INVALID_SOCKET:
            return -1
        fd = self.fd
        self.fd = FS_INVALID_SOCKET
        return fd

    def close(self):
        """Closes the handle (once; later calls do nothing)."""
        self.close_fd()

    cdef int close_fd(self) except -1:
        cdef fs_sock_t fd = self.fd
        cdef int r
        if self.io_refs > 0:
            self.close_pending = True
            return 0
        if fd == FS_INVALID_SOCKET:
            return 0
        self.fd = FS_INVALID_SOCKET
        with nogil:
            r = fs_close(fd)
        # ECONNRESET from close() means the peer went first: not an error
        # of ours (the stdlib ignores it too).
        if r < 0 and r != FS_ECONNRESET:
            raise_oserror(r)
        return 0

    @classmethod
    def from_socket(cls, sock):
        """Takes over a stdlib socket's handle and timeout; ``sock`` is
        detached."""
        if not isinstance(sock, StdSocket):
            raise TypeError(
                f"expected a socket.socket, not '{_builtin_type(sock).__name__}'")
        fd = sock.fileno()
        if fd < 0:
            raise_closed()
        # Built on the shared handle first, so a failure leaves `sock`
        # whole; the stdlib object lets go only once this one holds it.
        cdef Socket new = cls(sock.family, sock.type, sock.proto, fileno=fd)
        try:
            new.set_timeout_value(sock.gettimeout())
        except BaseException:
            new.fd = FS_INVALID_SOCKET
            raise
        sock.detach()
        return new

    def to_socket(self):
        """Hands the handle and timeout to a new ``socket.socket``; this
        object is detached."""
        self.check_open()
        sock = StdSocket(self.family_, self.type_, self.proto_,
                         fileno=self.fd)
        try:
            sock.settimeout(self.timeout)
        except BaseException:
            sock.detach()
            raise
        self.fd = FS_INVALID_SOCKET
        return sock

    def dup(self):
        """A new Socket on a duplicate of the handle."""
        cdef fs_sock_t fd
        cdef int r
        self.check_open()
        r = fs_dup(self.fd, &fd)
        if r < 0:
            raise_oserror(r)
        try:
            new = type(self)(self.family_, self.type_, self.proto_, fileno=fd)
        except BaseException:
            fs_close(fd)
            raise
        (<Socket?>new).set_timeout_value(self.timeout)
        return new

    def get_inheritable(self):
        cdef int r
        self.check_open()
        r = fs_get_inheritable(self.fd)
        if r < 0:
            raise_oserror(r)
        return r == 1

    def set_inheritable(self, inheritable):
        # An int that fits a C int (or __index__), as os.set_inheritable.
        cdef int on = _index(inheritable)
        cdef int r
        self.check_open()
        r = fs_set_inheritable(self.fd, on != 0)
        if r < 0:
            raise_oserror(r)

    # ---- modes --------------------------------------------------------

    def settimeout(self, value):
        """None: blocking; 0: non-blocking; > 0: seconds for each whole
        operation, then TimeoutError."""
        self.set_timeout_value(value)

    def gettimeout(self):
        return None if self.timeout_s < 0 else self.timeout_s

    def setblocking(self, flag):
        # As the running Python's stdlib takes it: any object, for its
        # truth, from 3.12 on; before, an int that fits a C long (or
        # __index__), so 1.5 and "yes" are a TypeError there.
        cdef bint blocking
        cdef long value
        if SETBLOCKING_TAKES_ANY:
            blocking = flag
        else:
            value = _index(flag)
            blocking = value != 0
        self.set_timeout_value(None if blocking else 0.0)

    def getblocking(self):
        return self.timeout_ns != 0

    # ---- connection set-up --------------------------------------------

    def bind(self, address):
        cdef fs_addr_t a
        cdef int r
        self.check_open()
        self.parse_address(address, &a)
        r = fs_bind(self.fd, fs_addr_sa(&a), a.len)
        if r < 0:
            raise_oserror(r)

    def listen(self, backlog=None):
        cdef int r, n
        self.check_open()
        n = min(128, _stdlib.SOMAXCONN) if backlog is None else max(backlog, 0)
        r = fs_listen(self.fd, n)
        if r < 0:
            raise_oserror(r)

    cdef int connect_impl(self, object address, bint raise_errors) except? -1:
        cdef fs_addr_t a
        if raise_errors:
            self.check_open()
        self.parse_address(address, &a)
        return self.connect_to(&a, raise_errors)

    cdef int connect_to(self, fs_addr_t *a, bint raise_errors) except? -1:
        cdef int r
        cdef int64_t deadline = 0
        if self.fd == FS_INVALID_SOCKET:
            return -FS_EBADF        # connect_ex() reports it, as the stdlib
        with nogil:
            r = fs_connect(self.fd, fs_addr_sa(a), a.len)
        if r == FS_EINTR:
            # The connection goes on in the kernel: wait for its outcome
            # rather than connect again (which would say EALREADY).
            PyErr_CheckSignals()
            r = FS_EINPROGRESS
        if r == FS_EINPROGRESS and self.timeout_ns != 0:
            if raise_errors:
                self.wait(FS_POLLOUT, &deadline)
            else:
                try:
                    self.wait(FS_POLLOUT, &deadline)
                except TimeoutError:
                    # The stdlib's connect_ex() says EWOULDBLOCK then.
                    return -FS_EAGAIN
            r = fs_connect_result(self.fd)
        if r < 0:
            if raise_errors:
                raise_oserror(r)
            return -r           # the errno (the WSA code on Windows)
        return 0

    def connect(self, address):
        """Connects; with a timeout the whole connect is bounded by it."""
        self.connect_impl(address, True)

    def connect_ex(self, address):
        """As connect(), but returns the errno instead of raising it."""
        return self.connect_impl(address, False)

    def accept(self):
        """Returns (Socket, address) for the next connection."""
        cdef fs_addr_t a
        conn = self.accept_socket(&a)
        # As the stdlib: the new socket takes the default timeout, blocking
        # unless one is set (fs_accept returns it in blocking mode).
        default = _stdlib.getdefaulttimeout()
        if default is not None:
            (<Socket>conn).set_timeout_value(default)
        return conn, make_address(&a)

    cdef Socket accept_socket(self, fs_addr_t *a):
        cdef fs_sock_t fd
        cdef int r
        cdef int64_t deadline = 0
        self.check_open()
        while True:
            a.len = FS_ADDR_ROOM
            with nogil:
                r = fs_accept(self.fd, fs_addr_sa(a), &a.len, &fd)
            if r >= 0:
                break
            self.wait_or_raise(r, FS_POLLIN, &deadline)
        cdef Socket conn
        if type(self) is Socket:
            conn = Socket.__new__(Socket)   # a direct tp_new, no method call
        else:
            conn = Socket.__new__(type(self))
        conn.fd = fd
        conn.family_ = self.family_
        conn.type_ = self.type_
        conn.proto_ = self.proto_
        return conn

    def shutdown(self, int how):
        cdef int r
        self.check_open()
        # The OS judges `how` (EINVAL), as with the stdlib.
        r = fs_shutdown(self.fd, how)
        if r < 0:
            raise_oserror(r)

    cdef object name(self, bint peer):
        cdef fs_addr_t a
        cdef int r
        self.check_open()
        memset(&a, 0, sizeof(a))
        a.len = FS_ADDR_ROOM
        if peer:
            r = fs_getpeername(self.fd, fs_addr_sa(&a), &a.len)
        else:
            r = fs_getsockname(self.fd, fs_addr_sa(&a), &a.len)
        if r < 0:
            raise_oserror(r)
        if self.family_ == AF_UNIX:
            return make_unix_address(&a)
        return make_address(&a)

    def getsockname(self):
        return self.name(False)

    def getpeername(self):
        return self.name(True)

    def setsockopt(self, int level, int optname, value, optlen=None):
        """setsockopt(level, optname, int | buffer) or
        setsockopt(level, optname, None, optlen)."""
        cdef int r, ival
        cdef unsigned int olen
        cdef Py_buffer view
        self.check_open()
        if value is None:
            if optlen is None:
                raise TypeError("setsockopt() with None needs optlen")
            olen = optlen
            r = fs_setsockopt(self.fd, level, optname, NULL, <fs_socklen_t>olen)
        elif optlen is not None:
            raise TypeError("setsockopt() takes optlen only with value None")
        elif isinstance(value, int):
            if not -0x80000000 <= value <= 0x7FFFFFFF:
                # The stdlib then tries the buffer form, and says this.
                raise TypeError("setsockopt() value must be a C int or a "
                                "bytes-like object")
            ival = value
            r = fs_setsockopt(self.fd, level, optname, &ival, sizeof(ival))
        else:
            get_read_buffer(value, &view)
            try:
                r = fs_setsockopt(self.fd, level, optname, view.buf,
                                  <fs_socklen_t>view.len)
            finally:
                PyBuffer_Release(&view)
        if r < 0:
            raise_oserror(r)

    def getsockopt(self, int level, int optname, buflen=None):
        """An int, or the option's bytes when buflen is given."""
        cdef int r, ival = 0
        cdef fs_socklen_t n
        self.check_open()
        if buflen is None or buflen == 0:    # 0 means an int too, as in C
            n = sizeof(ival)
            r = fs_getsockopt(self.fd, level, optname, &ival, &n)
            if r < 0:
                raise_oserror(r)
            return ival
        if not 0 < buflen <= 1024:
            raise OSError(errno.EINVAL, "getsockopt buflen out of range")
        cdef PyObject *raw = alloc_bytes(buflen)
        n = buflen
        r = fs_getsockopt(self.fd, level, optname, raw_bytes_data(raw), &n)
        if r < 0:
            Py_DECREF(raw)
            raise_oserror(r)
        return finish_bytes(raw, n)

    # ---- data: the hot path -------------------------------------------

    cpdef Py_ssize_t send(self, object data, int flags=0) except -1:
        """Sends some of data; returns how many bytes went."""
        cdef Py_buffer view
        cdef fs_ssize_t n
        cdef int64_t deadline = 0
        self.check_open()
        get_read_buffer(data, &view)
        try:
            while True:
                with nogil:
                    n = fs_send(self.fd, view.buf, view.len, flags)
                if n >= 0:
                    return n
                self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
        finally:
            PyBuffer_Release(&view)

    cpdef object sendall(self, object data, int flags=0):
        """Sends all of data; a timeout bounds the whole call."""
        cdef Py_buffer view
        cdef fs_ssize_t n = 0
        cdef Py_ssize_t sent = 0
        cdef int64_t deadline = 0
        cdef char *p
        self.check_open()
        get_read_buffer(data, &view)
        p = <char *>view.buf
        try:
            while True:
                with nogil:
                    n = fs_send(self.fd, p + sent, view.len - sent, flags)
                if n >= 0:
                    sent += n
                    if sent >= view.len:
                        return None
                    # A signal can cut a blocking send short without
                    # EINTR: run the handlers before sending on, or a
                    # handler that raises (Ctrl-C) would never be seen.
                    PyErr_CheckSignals()
                else:
                    self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
        finally:
            PyBuffer_Release(&view)

    cpdef Py_ssize_t recv_into(self, object buffer, Py_ssize_t nbytes=0,
                               int flags=0) except -1:
        """Receives up to nbytes (0: len(buffer)) straight into buffer."""
        return recv_into_buffer(self, buffer, nbytes, flags, NULL)

    def recv(self, Py_ssize_t bufsize, int flags=0):
        """Up to bufsize bytes; b"" at EOF."""
        cdef fs_ssize_t n
        self.check_open()
        if bufsize < 0:
            raise_bad_size(False, -2)
        cdef PyObject *raw = alloc_bytes(bufsize)
        try:
            n = receive(self, raw_bytes_data(raw), bufsize, flags, NULL)
        except BaseException:
            Py_DECREF(raw)
            raise
        return finish_bytes(raw, n)

    def sendto(self, data, flags_or_address, address=_NOARG, /):
        """sendto(data[, flags], address)."""
        cdef Py_buffer view
        cdef fs_ssize_t n
        cdef int flags = 0
        cdef int64_t deadline = 0
        cdef fs_addr_t a
        if address is _NOARG:
            address = flags_or_address
        else:
            flags = flags_or_address
        self.check_open()
        # A loop sending to one peer parses its address once (numeric
        # hosts only: a name is resolved each time, as the stdlib does).
        # The call works on its own copy: another thread may send to
        # another peer meanwhile and replace the cached one.
        if same_address(address, self.sendto_key):
            memcpy(&a, &self.sendto_addr, sizeof(fs_addr_t))
        elif self.parse_address(address, &a) == 0:
            memcpy(&self.sendto_addr, &a, sizeof(fs_addr_t))
            self.sendto_key = address
        get_read_buffer(data, &view)
        try:
            while True:
                with nogil:
                    n = fs_sendto(self.fd, view.buf, view.len, flags,
                                  fs_addr_sa(&a), a.len)
                if n >= 0:
                    return n
                self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
        finally:
            PyBuffer_Release(&view)

    cdef object last_sender(self, fs_addr_t *a):
        self.from_obj = sender_address(a, &self.from_addr, self.from_obj)
        return self.from_obj

    def recvfrom_into(self, buffer, Py_ssize_t nbytes=0, int flags=0):
        """(nbytes, address), the data written straight into buffer."""
        cdef fs_addr_t a
        n = recv_into_buffer(self, buffer, nbytes, flags, &a)
        return n, self.last_sender(&a)

    def recvfrom(self, Py_ssize_t bufsize, int flags=0):
        """(bytes, address)."""
        cdef fs_ssize_t n
        cdef fs_addr_t a
        self.check_open()
        if bufsize < 0:
            raise_bad_size(True, -2)
        cdef PyObject *raw = alloc_bytes(bufsize)
        try:
            n = receive(self, raw_bytes_data(raw), bufsize, flags, &a)
        except BaseException:
            Py_DECREF(raw)
            raise
        return finish_bytes(raw, n), self.last_sender(&a)

    # ---- gathered and scattered I/O -------------------------------------

    def sendall_buffers(self, buffers):
        """Sends every buffer of `buffers`, in as few system calls as the OS
        allows (IOV_MAX buffers a call), resuming after partial writes."""
        cdef Py_buffer stack_views[STACK_BUFS]
        cdef fs_buf_t stack_bufs[STACK_BUFS]
        cdef Py_buffer *views = stack_views
        cdef fs_buf_t *bufs = stack_bufs
        cdef fs_buf_t *cur
        cdef Py_ssize_t count, pinned = 0
        cdef size_t left, chunk
        cdef fs_ssize_t n = 0
        cdef int64_t deadline = 0
        self.check_open()
        seq = buffers if isinstance(buffers, (list, tuple)) else list(buffers)
        count = len(seq)
        try:
            pin_buffers(seq, 0, count, False, 0, &views, &bufs, &pinned)
            cur = bufs
            left = count
            while left > 0:
                chunk = min(left, <size_t>IOV_MAX)
                with nogil:
                    n = fs_sendv(self.fd, cur, chunk, 0)
                if n >= 0:
                    fs_bufs_advance(&cur, &left, n)
                    # As in sendall(): a partial send may hide a signal.
                    PyErr_CheckSignals()
                else:
                    self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
            return None
        finally:
            release_views(views, pinned, stack_views)

    def sendmsg(self, buffers, ancdata=(), int flags=0, address=None):
        """One gathered send with optional ancillary data and destination;
        returns the bytes sent (possibly fewer than all)."""
        cdef Py_buffer stack_views[STACK_BUFS]
        cdef fs_buf_t stack_bufs[STACK_BUFS]
        cdef Py_buffer *views = stack_views
        cdef fs_buf_t *bufs = stack_bufs
        cdef Py_ssize_t count, pinned = 0
        cdef fs_ssize_t n
        cdef fs_addr_t a
        cdef fs_addr_t *ap = NULL
        cdef size_t control_size = 0, used = 0
        cdef char *control = NULL
        cdef Py_buffer cview
        cdef int64_t deadline = 0
        cdef int r
        self.check_open()
        seq = buffers if isinstance(buffers, (list, tuple)) else list(buffers)
        count = len(seq)
        if count > IOV_MAX:
            raise OSError(errno.EMSGSIZE,
                          "sendmsg() takes at most IOV_MAX buffers")
        if address is not None:
            self.parse_address(address, &a)
            ap = &a
        items = ancillary_items(ancdata)
        try:
            pin_buffers(seq, 0, count, False, 0, &views, &bufs, &pinned)
            if items:
                for lvl, typ, data in items:
                    # Bytes, not items: an array of fds has 4-byte items.
                    control_size += fs_cmsg_space(memoryview(data).nbytes)
                if control_size == 0:
                    raise_oserror(FS_EOPNOTSUPP)
                control = <char *>PyMem_Malloc(control_size)
                if control == NULL:
                    raise MemoryError()
                for lvl, typ, data in items:
                    get_read_buffer(data, &cview)
                    r = fs_cmsg_put(control, control_size, &used, lvl, typ,
                                    cview.buf, cview.len)
                    PyBuffer_Release(&cview)
                    if r < 0:
                        raise_oserror(r)
            while True:
                with nogil:
                    n = fs_sendmsg(self.fd, bufs, count,
                                   fs_addr_sa(ap) if ap else NULL,
                                   ap.len if ap else 0, control, used, flags)
                if n >= 0:
                    return n
                self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
        finally:
            release_views(views, pinned, stack_views)
            PyMem_Free(control)

    cdef object recvmsg_impl(self, fs_buf_t *bufs, Py_ssize_t count,
                             Py_ssize_t ancbufsize, int flags):
        # Shared by recvmsg and recvmsg_into: returns (n, ancdata,
        # msg_flags, address).
        cdef fs_ssize_t n
        cdef fs_addr_t a
        cdef size_t controllen = 0, offset = 0, dlen
        cdef int msg_flags = 0, lvl, typ
        cdef const void *data
        cdef char *control = NULL
        cdef int64_t deadline = 0
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg")
        if ancbufsize > 0:
            control = <char *>PyMem_Malloc(ancbufsize)
            if control == NULL:
                raise MemoryError()
        try:
            while True:
                a.len = FS_ADDR_ROOM
                controllen = ancbufsize
                with nogil:
                    n = fs_recvmsg(self.fd, bufs, count, fs_addr_sa(&a), &a.len,
                                   control, &controllen, &msg_flags, flags)
                if n >= 0:
                    break
                self.wait_or_raise(<int>n, FS_POLLIN, &deadline)
            ancdata = []
            while fs_cmsg_next(control, controllen, &offset, &lvl, &typ, &data,
                               &dlen):
                ancdata.append((lvl, typ, (<const char *>data)[:dlen]))
        finally:
            PyMem_Free(control)
        return n, ancdata, msg_flags, make_address(&a)

    def recvmsg_into(self, buffers, Py_ssize_t ancbufsize=0, int flags=0):
        """Scattered receive: (nbytes, ancdata, msg_flags, address)."""
        cdef Py_buffer stack_views[STACK_BUFS]
        cdef fs_buf_t stack_bufs[STACK_BUFS]
        cdef Py_buffer *views = stack_views
        cdef fs_buf_t *bufs = stack_bufs
        cdef Py_ssize_t count, pinned = 0
        self.check_open()
        seq = buffers if isinstance(buffers, (list, tuple)) else list(buffers)
        count = len(seq)
        if count > IOV_MAX:
            raise OSError(errno.EMSGSIZE,
                          "recvmsg_into() takes at most IOV_MAX buffers")
        try:
            pin_buffers(seq, 0, count, True, 0, &views, &bufs, &pinned)
            return self.recvmsg_impl(bufs, count, ancbufsize, flags)
        finally:
            release_views(views, pinned, stack_views)

    def recvmsg(self, Py_ssize_t bufsize, Py_ssize_t ancbufsize=0,
                int flags=0):
        """(data, ancdata, msg_flags, address)."""
        cdef fs_buf_t buf
        self.check_open()
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        cdef PyObject *raw = alloc_bytes(bufsize)
        buf.base = raw_bytes_data(raw)
        buf.len = bufsize
        try:
            n, ancdata, msg_flags, address = self.recvmsg_impl(
                &buf, 1, ancbufsize, flags)
        except BaseException:
            Py_DECREF(raw)
            raise
        return finish_bytes(raw, n), ancdata, msg_flags, address

    # ---- files --------------------------------------------------------

    def sendfile(self, file, offset=0, count=None):
        """Sends a regular file with the OS's zero-copy call (sendfile,
        TransmitFile), falling back to send(); returns the bytes sent and
        leaves the file's position after them.  A timeout bounds the whole
        zero-copy transfer."""
        try:
            return self._sendfile_use_sendfile(file, offset, count)
        except _GiveupOnSendfile:
            return self._sendfile_use_send(file, offset, count)

    # The two halves keep the stdlib's names and contracts, so code written
    # against socket.socket's (a subclass, a test) works on this class too.

    def _check_sendfile_params(self, file, offset, count):
        self.check_open()
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if self.type_ != SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(
                    f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(
                    f"count must be a positive integer (got {count!r})")
        if not isinstance(offset, int):
            raise TypeError(f"offset must be an int (got {offset!r})")
        if offset < 0:
            raise ValueError(f"offset must be >= 0 (got {offset!r})")
        if self.timeout_ns == 0:
            raise ValueError("non-blocking sockets are not supported")

    def _sendfile_use_sendfile(self, file, offset=0, count=None):
        """The zero-copy half of sendfile(); raises socket's
        _GiveupOnSendfile before sending anything if the OS cannot do it
        for this file."""
        cdef int64_t pos, deadline = 0
        cdef size_t want
        cdef fs_ssize_t n = 0
        cdef int fd
        cdef Py_ssize_t total = 0
        self._check_sendfile_params(file, offset, count)
        try:
            fd = file.fileno()
        except (AttributeError, io.UnsupportedOperation) as err:
            raise _GiveupOnSendfile(err)    # not a file with a descriptor
        pos = offset
        try:
            while count is None or total < count:
                # Below 2 GiB a call: Linux sendfile() stops there anyway.
                want = 0x7FFF0000 if count is None else min(
                    count - total, 0x7FFF0000)
                with nogil:
                    n = fs_sendfile(self.fd, fd, &pos, want,
                                    self.timeout_ns < 0)
                if n > 0:
                    total += n
                    continue
                if n == 0:
                    break                   # the end of the file
                if total == 0 and n != FS_EAGAIN and n != FS_EINTR:
                    # Not a file the OS can send (a pipe, a closed
                    # descriptor...): as the stdlib, let send() try, and
                    # report what is still wrong then.
                    raise _GiveupOnSendfile(OSError(-n, "sendfile"))
                self.wait_or_raise(<int>n, FS_POLLOUT, &deadline)
            return total
        finally:
            if total > 0 and can_seek(file):
                file.seek(offset + total)

    def _sendfile_use_send(self, file, offset=0, count=None):
        """The fallback half of sendfile(): read() and sendall() in
        blocks (a timeout bounds each block)."""
        self._check_sendfile_params(file, offset, count)
        if offset:
            file.seek(offset)
        blocksize = min(count, 65536) if count else 65536
        total = 0
        try:
            while count is None or total < count:
                if count is not None:
                    blocksize = min(count - total, blocksize)
                data = file.read(blocksize)
                if not data:
                    break                   # the end of the file
                self.sendall(data)
                total += len(data)
            return total
        finally:
            if total > 0 and can_seek(file):
                file.seek(offset + total)

    # ---- stdlib compatibility -------------------------------------------

    def makefile(self, mode="r", buffering=None, *, encoding=None,
                 errors=None, newline=None):
        """A file object over this socket, as ``socket.socket.makefile``;
        the socket's handle stays open until it and the file are closed."""
        return std_makefile(self, mode, buffering, encoding=encoding,
                            errors=errors, newline=newline)

    def _decref_socketios(self):
        if self.io_refs > 0:
            self.io_refs -= 1
        if self.close_pending and self.io_refs == 0:
            self.close_pending = False
            self.close()

    @property
    def _io_refs(self):
        return self.io_refs

    @_io_refs.setter
    def _io_refs(self, value):
        self.io_refs = value

    @property
    def _closed(self):
        return self.fd == FS_INVALID_SOCKET

    def recv_batch(self, batch, int flags=0):
        """Receives up to len(batch) datagrams into a DatagramBatch (one
        recvmmsg where the OS has it); returns how many arrived."""
        if batch_recv == NULL:
            raise_batch_missing()
        return batch_recv(self, batch, flags)

    def send_batch(self, buffers, address=None):
        """Sends each buffer as one datagram (one sendmmsg where the OS has
        it, one segmented send for a run of one size on UDP under Linux);
        returns how many were sent, fewer only if the rest could not go."""
        if batch_send == NULL:
            raise_batch_missing()
        return batch_send(self, buffers, address)


cdef Socket new_socket(int family, int type):
    cdef fs_sock_t fd
    cdef int r
    cdef Socket s = Socket.__new__(Socket)
    # socket() never waits: keeping the GIL saves a release and a take.
    r = fs_socket(family, type, 0, &fd)
    if r < 0:
        raise_oserror(r)
    s.fd = fd
    s.family_ = family
    s.type_ = type
    return s


# fastsock._batch cimports this module and hands its functions over when it
# is imported (the package imports it), so this module needs no import of
# it; a direct C call, too, where an import per call cost about 1,200
# instructions (callgrind), a third of a small recv_batch.
cdef recv_batch_fn batch_recv = NULL
cdef send_batch_fn batch_send = NULL


cdef int set_batch_functions(recv_batch_fn recv,
                             send_batch_fn send) except -1:
    global batch_recv, batch_send
    batch_recv = recv
    batch_send = send
    return 0


cdef int raise_batch_missing() except -1:
    raise RuntimeError("fastsock._batch is not loaded: import fastsock")


_builtin_type = type


def socketpair(int family=-1, int type=-1, int proto=0):
    """A connected pair of Sockets (AF_UNIX where the OS has it, else
    loopback TCP), as ``socket.socketpair``."""
    cdef fs_sock_t fds[2]
    cdef int r
    if family == -1:
        family = AF_UNIX if AF_UNIX != -1 else AF_INET
    if type == -1:
        type = SOCK_STREAM
    r = fs_socketpair(family, type, proto, fds)
    if r < 0:
        raise_oserror(r)
    cdef Socket a = Socket.__new__(Socket)
    cdef Socket b = Socket.__new__(Socket)
    a.fd = fds[0]
    b.fd = fds[1]
    default = _stdlib.getdefaulttimeout()
    for s in (a, b):
        (<Socket>s).family_ = family
        # As Socket(): the flags are not the type, SOCK_NONBLOCK is mode.
        (<Socket>s).type_ = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        (<Socket>s).proto_ = proto
        if type & SOCK_NONBLOCK:
            (<Socket>s).set_timeout_value(0.0)
        elif default is not None:
            (<Socket>s).set_timeout_value(default)
    return a, b
