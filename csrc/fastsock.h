/*
 * fastsock.h - the portable socket API that the Cython layer sees.
 *
 * Everything platform-specific about sockets lives behind this header:
 * fs_posix.c implements it with the Berkeley API, fs_win.c with WinSock 2,
 * fs_common.c holds the platform-free helpers.  The shim never includes
 * Python.h: the GIL, signals and exceptions belong to the caller, so this
 * layer can be tested and sanitized in plain C.
 *
 * Conventions (all functions):
 * - Return >= 0 on success or a negative FS_E* code.  Nothing outside csrc/
 *   reads errno or WSAGetLastError().
 * - Nothing retries: FS_EINTR goes back to the caller, who must run the
 *   signal handlers (PEP 475) and call again.
 * - A call blocks only if the socket is in blocking mode (the caller
 *   releases the GIL around it); on a non-blocking socket it returns
 *   FS_EAGAIN instead, and fs_wait() waits for readiness.
 * - Buffers are borrowed for the duration of the call, never kept.
 */
#ifndef FASTSOCK_H_
#define FASTSOCK_H_

#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
#  include <winsock2.h>
#  include <ws2tcpip.h>
#  include <errno.h>

/* A WinSock handle.  Never an int: SOCKET is pointer-sized on Win64. */
typedef SOCKET fs_sock_t;
#  define FS_INVALID_SOCKET INVALID_SOCKET

/* A buffer with a size_t length, as on POSIX.  WSABUF counts in a ULONG,
 * so fs_win.c copies an array into WSABUFs per call, cutting it where the
 * lengths stop fitting: a buffer of 4 GiB or more is then sent or filled
 * in parts, never cut silently to its low 32 bits. */
typedef struct fs_buf_s {
    char *base;
    size_t len;
} fs_buf_t;

typedef int fs_socklen_t;
typedef long long fs_ssize_t;

/* Portable error codes: the negated WSA code, which fs_win.c reports. */
#  define FS_EAGAIN        (-WSAEWOULDBLOCK)
#  define FS_EINTR         (-WSAEINTR)
#  define FS_EINPROGRESS   (-WSAEWOULDBLOCK) /* connect() in progress */
#  define FS_EALREADY      (-WSAEALREADY)
#  define FS_EISCONN       (-WSAEISCONN)
#  define FS_EBADF         (-WSAENOTSOCK)
#  define FS_EINVAL        (-WSAEINVAL)
#  define FS_ENOMEM        (-WSA_NOT_ENOUGH_MEMORY)
#  define FS_EMSGSIZE      (-WSAEMSGSIZE)
#  define FS_ENOTCONN      (-WSAENOTCONN)
#  define FS_EOPNOTSUPP    (-WSAEOPNOTSUPP)
#  define FS_ECONNABORTED  (-WSAECONNABORTED)
#  define FS_ECONNRESET    (-WSAECONNRESET)
#  define FS_EMFILE        (-WSAEMFILE)
#  define FS_ENFILE        (-WSAEMFILE)      /* WinSock has one limit */
#  define FS_ENOBUFS       (-WSAENOBUFS)
#  define FS_ETIMEDOUT     (-WSAETIMEDOUT)
#  define FS_EPIPE         (-WSAESHUTDOWN)   /* send after shutdown */
#  define FS_ECONNREFUSED  (-WSAECONNREFUSED)

/* fs_wait() and poller events, the WSAPoll bits. */
#  define FS_POLLIN  POLLRDNORM
#  define FS_POLLOUT POLLWRNORM
#  define FS_POLLERR POLLERR

#else /* POSIX */
#  include <errno.h>
#  include <sys/types.h>
#  include <sys/socket.h>
#  include <sys/uio.h>
#  include <poll.h>

/* A POSIX descriptor. */
typedef int fs_sock_t;
#  define FS_INVALID_SOCKET (-1)

/* Laid out like struct iovec so an array goes straight to writev/sendmsg. */
typedef struct fs_buf_s {
    char *base;
    size_t len;
} fs_buf_t;

typedef socklen_t fs_socklen_t;
typedef ssize_t fs_ssize_t;

/* Portable error codes: the negated errno (EWOULDBLOCK is folded into
 * EAGAIN by fs_posix.c where the two differ). */
#  define FS_EAGAIN        (-EAGAIN)
#  define FS_EINTR         (-EINTR)
#  define FS_EINPROGRESS   (-EINPROGRESS)
#  define FS_EALREADY      (-EALREADY)
#  define FS_EISCONN       (-EISCONN)
#  define FS_EBADF         (-EBADF)
#  define FS_EINVAL        (-EINVAL)
#  define FS_ENOMEM        (-ENOMEM)
#  define FS_EMSGSIZE      (-EMSGSIZE)
#  define FS_ENOTCONN      (-ENOTCONN)
#  define FS_EOPNOTSUPP    (-EOPNOTSUPP)
#  define FS_ECONNABORTED  (-ECONNABORTED)
#  define FS_ECONNRESET    (-ECONNRESET)
#  define FS_EMFILE        (-EMFILE)
#  define FS_ENFILE        (-ENFILE)
#  define FS_ENOBUFS       (-ENOBUFS)
#  define FS_ETIMEDOUT     (-ETIMEDOUT)
#  define FS_EPIPE         (-EPIPE)
#  define FS_ECONNREFUSED  (-ECONNREFUSED)

#  define FS_POLLIN  POLLIN
#  define FS_POLLOUT POLLOUT
#  define FS_POLLERR POLLERR

/* sendmmsg and UDP segmentation offload: fs_posix.c sends batches with
 * them; elsewhere fs_common.c sends one datagram per call. */
#  ifdef __linux__
#    define FS_HAVE_MMSG 1
#  endif
#endif

/* One datagram of a batch: fs_recv_batch() fills `len`, `addrlen` and
 * `flags`; fs_send_batch() reads `bufs`, `nbufs`, `addr`, `addrlen`. */
typedef struct fs_dgram_s {
    fs_buf_t *bufs;              /* payload buffers (one for receives) */
    size_t nbufs;
    struct sockaddr *addr;       /* sender/destination, may be NULL */
    fs_socklen_t addrlen;        /* in: room at addr; out: its length */
    size_t len;                  /* out: bytes received */
    int flags;                   /* out: FS_DGRAM_TRUNC if cut short */
} fs_dgram_t;

#define FS_DGRAM_TRUNC 1

/* A socket address of any family, with its length. */
typedef struct fs_addr_s {
    struct sockaddr_storage ss;
    fs_socklen_t len;
} fs_addr_t;

/* The room for a sockaddr in an fs_addr_t: what `len` says before a call
 * that fills one (accept, recvfrom, getsockname, ...). */
#define FS_ADDR_ROOM ((fs_socklen_t)sizeof(struct sockaddr_storage))

#define fs_addr_sa(a) ((struct sockaddr *)&(a)->ss)

#ifdef __cplusplus
extern "C" {
#endif

/* ---- set-up and errors ------------------------------------------------ */

/* Initialises the platform's socket library (WSAStartup on Windows) once
 * per process.  Safe to call many times and from several threads; only the
 * first call does work.  Returns 0 or a negative error. */
int fs_init(void);

/* The calling thread's last socket error as a negative FS_E* code
 * (errno or WSAGetLastError(), translated in one place). */
int fs_last_error(void);

/* Splits a negative FS_E* code into what the stdlib's OSError takes:
 * *err_no gets the C errno value, *winerror the WinSock code on Windows
 * (0 elsewhere).  Writes a human message of at most size-1 bytes to msg. */
void fs_error_info(int code, int *err_no, int *winerror, char *msg,
                   size_t size);

/* Monotonic clock in nanoseconds, for deadlines.  Never fails. */
int64_t fs_monotonic_ns(void);

/* Most buffers that one fs_sendv()/fs_recvv() call accepts (IOV_MAX). */
int fs_iov_max(void);

/* ---- life cycle -------------------------------------------------------- */

/* Creates a socket, not inherited by child processes (CLOEXEC or
 * HANDLE_FLAG_INHERIT off), in blocking mode.  Stores it in *out. */
int fs_socket(int family, int type, int proto, fs_sock_t *out);

/* Creates a connected pair of stream sockets (AF_UNIX on POSIX; on Windows,
 * two loopback TCP sockets).  Not inherited, blocking. */
int fs_socketpair(int family, int type, int proto, fs_sock_t out[2]);

/* Closes the socket.  The handle is invalid afterwards even on error
 * (POSIX close() must not be retried on EINTR). */
int fs_close(fs_sock_t s);

/* Sets (on != 0) or clears non-blocking mode (O_NONBLOCK, FIONBIO). */
int fs_set_nonblocking(fs_sock_t s, int on);

/* Reads the socket's family, type and protocol from the OS, for a socket
 * handed over by number.  Returns FS_EBADF if s is not a socket. */
int fs_sock_info(fs_sock_t s, int *family, int *type, int *proto);

/* Stores in *out a new handle on the same socket, not inherited, which the
 * caller closes with fs_close().  POSIX: fcntl(F_DUPFD_CLOEXEC); both
 * handles share one open file, so O_NONBLOCK set on one holds for both.
 * Windows: WSADuplicateSocketW() and WSASocketW(FROM_PROTOCOL_INFO), as
 * CPython's socket.dup() (DuplicateHandle is unsafe on sockets that a
 * layered provider wraps); the copy's blocking mode is unspecified, so
 * the caller sets it.  Never blocks.  Fails if s is not open (FS_EBADF)
 * or, on Windows, not a socket (POSIX duplicates any descriptor). */
int fs_dup(fs_sock_t s, fs_sock_t *out);

/* 1 if child processes inherit s (no FD_CLOEXEC; HANDLE_FLAG_INHERIT set),
 * 0 if not, or a negative error (an invalid handle).  Never blocks. */
int fs_get_inheritable(fs_sock_t s);

/* Lets child processes inherit s (on != 0) or not (on == 0): FD_CLOEXEC
 * with fcntl(), HANDLE_FLAG_INHERIT with SetHandleInformation().  Returns
 * 0 or a negative error.  Never blocks. */
int fs_set_inheritable(fs_sock_t s, int on);

/* ---- addresses and options (never block, but for connect/accept) ------- */

int fs_bind(fs_sock_t s, const struct sockaddr *addr, fs_socklen_t len);
int fs_listen(fs_sock_t s, int backlog);

/* Starts or completes a connection.  On a non-blocking socket returns
 * FS_EINPROGRESS; wait for FS_POLLOUT and then call fs_connect_result(). */
int fs_connect(fs_sock_t s, const struct sockaddr *addr, fs_socklen_t len);

/* The outcome of a non-blocking connect once the socket is writable:
 * 0 if connected, else the negative error (SO_ERROR). */
int fs_connect_result(fs_sock_t s);

/* Accepts a connection into *out (blocking mode, not inherited); stores the
 * peer's address in addr/len when addr is not NULL.  May block. */
int fs_accept(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len,
              fs_sock_t *out);

/* Like fs_accept(), but the new socket is in non-blocking mode (and not
 * inherited): one accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) on Linux and the
 * BSDs, accept() and then fcntl()/ioctlsocket() elsewhere.  For event
 * loops, which accept on a non-blocking listener: FS_EAGAIN when no
 * connection is pending. */
int fs_accept_nonblocking(fs_sock_t s, struct sockaddr *addr,
                          fs_socklen_t *len, fs_sock_t *out);

/* how: 0 read side, 1 write side, 2 both (SHUT_* and SD_* agree). */
int fs_shutdown(fs_sock_t s, int how);

int fs_getsockname(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len);
int fs_getpeername(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len);
int fs_setsockopt(fs_sock_t s, int level, int name, const void *value,
                  fs_socklen_t len);
int fs_getsockopt(fs_sock_t s, int level, int name, void *value,
                  fs_socklen_t *len);

/* ---- data -------------------------------------------------------------- */
/* Lengths above INT_MAX are clamped on Windows; the result is then a short
 * transfer, as the caller must already handle.  All may block. */

/* Bytes sent (may be fewer than len). */
fs_ssize_t fs_send(fs_sock_t s, const void *buf, size_t len, int flags);

/* Bytes received; 0 means the peer closed (or len was 0). */
fs_ssize_t fs_recv(fs_sock_t s, void *buf, size_t len, int flags);

fs_ssize_t fs_sendto(fs_sock_t s, const void *buf, size_t len, int flags,
                     const struct sockaddr *addr, fs_socklen_t addrlen);

/* Stores the sender's address in addr/len when addr is not NULL. */
fs_ssize_t fs_recvfrom(fs_sock_t s, void *buf, size_t len, int flags,
                       struct sockaddr *addr, fs_socklen_t *addrlen);

/* Gathered send of n buffers (n <= fs_iov_max()) in one system call:
 * sendmsg/WSASend.  Returns bytes sent, possibly fewer than the total;
 * see fs_bufs_advance(). */
fs_ssize_t fs_sendv(fs_sock_t s, const fs_buf_t *bufs, size_t n, int flags);

/* Scattered receive into n buffers in one system call (recvmsg/WSARecv). */
fs_ssize_t fs_recvv(fs_sock_t s, fs_buf_t *bufs, size_t n, int flags);

/* sendmsg() with an optional destination and ancillary data.  Ancillary
 * data is POSIX-only: on Windows a non-empty control returns
 * FS_EOPNOTSUPP. */
fs_ssize_t fs_sendmsg(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                      const struct sockaddr *addr, fs_socklen_t addrlen,
                      const void *control, size_t controllen, int flags);

/* recvmsg(): scattered receive, sender's address into addr/addrlen when
 * addr is not NULL, ancillary data into control (*controllen in: room,
 * out: used), and the message flags (MSG_TRUNC, MSG_CTRUNC, ...) into
 * *msg_flags. */
fs_ssize_t fs_recvmsg(fs_sock_t s, fs_buf_t *bufs, size_t n,
                      struct sockaddr *addr, fs_socklen_t *addrlen,
                      void *control, size_t *controllen, int *msg_flags,
                      int flags);

/* Sends up to count bytes of the open file `fd` (a C runtime descriptor)
 * from *offset with the OS's zero-copy call (sendfile, TransmitFile), and
 * advances *offset by what was sent.  Returns bytes sent (0 at the file's
 * end) or FS_EOPNOTSUPP where the OS has no such call for this pair.
 * `blocking` says whether s is in blocking mode, which WinSock cannot
 * report.  sendfile() follows the mode itself (FS_EAGAIN when a
 * non-blocking socket is full).  TransmitFile ignores it and runs until
 * everything is sent, which no timeout can bound (a cancelled call may
 * never end, wine shows), so fs_win.c uses it only when blocking and
 * returns FS_EOPNOTSUPP otherwise: the caller copies, as the stdlib's
 * socket.sendfile() always does on Windows. */
fs_ssize_t fs_sendfile(fs_sock_t s, int fd, int64_t *offset, size_t count,
                       int blocking);

/* Receives up to n datagrams into d[0..n-1] (each with one buffer): one
 * recvmmsg() on Linux, a loop of recvfrom elsewhere.  Returns how many
 * arrived (>= 1), or an error if none did.  Never waits for the batch to
 * fill: after the first datagram, the rest are taken only if queued
 * (MSG_DONTWAIT / a non-blocking loop). */
int fs_recv_batch(fs_sock_t s, fs_dgram_t *d, size_t n, int flags);

/* Sends n datagrams: one sendmmsg() on Linux, a loop elsewhere.  Returns
 * how many were sent (>= 1), or an error if none was. */
int fs_send_batch(fs_sock_t s, const fs_dgram_t *d, size_t n, int flags);

/* Sends n datagrams whose payloads are bufs[0..n-1], each exactly `seg`
 * bytes but the last (1 to seg bytes), as ONE send that the kernel splits
 * (UDP generic segmentation offload: UDP_SEGMENT, Linux 4.18+): one pass
 * through the network stack instead of n, several times cheaper than
 * fs_send_batch.  Only for AF_INET/AF_INET6 UDP sockets: any other would
 * take the payloads as one datagram, so the caller must check.  At most
 * FS_SEGMENTS_MAX datagrams and FS_SEGMENTS_BYTES bytes.  All or nothing:
 * returns n or a negative error.  FS_EOPNOTSUPP where the OS cannot
 * segment, or not this send (a segment over the path MTU, no checksum
 * offload, IPsec, SO_NO_CHECK): send them with fs_send_batch instead,
 * which reports any error that is not about segmenting. */
int fs_send_segments(fs_sock_t s, const fs_buf_t *bufs, size_t n, size_t seg,
                     const struct sockaddr *addr, fs_socklen_t addrlen,
                     int flags);
#define FS_SEGMENTS_MAX 64          /* UDP_MAX_SEGMENTS of older kernels */
#define FS_SEGMENTS_BYTES 65000     /* below 65507, UDP's IPv4 maximum */

/* Waits until s is ready for `events` (FS_POLLIN and/or FS_POLLOUT) or
 * timeout_ms passes (-1: forever).  Returns the ready events (> 0), 0 on
 * timeout, or a negative error (FS_EINTR on a signal). */
int fs_wait(fs_sock_t s, int events, int timeout_ms);

/* ---- poller: readiness of many sockets (event loops) ------------------- */
/*
 * One thread (the loop) registers sockets once, changes a socket's
 * interest only when it changes, and waits for many at once; any thread
 * may wake it.  Level-triggered: a socket stays reported while it is
 * ready and interesting, so the loop may read or write as little as it
 * likes per wake-up.
 *
 * Backends: epoll on Linux (each socket added once with EPOLL_CTL_ADD and
 * modified only by fs_poller_mod(), never re-armed per wait); poll() on
 * other POSIX systems, WSAPoll() on Windows: an array of sockets with an
 * index from socket to slot, so that add, mod and del cost O(1) and a
 * wait costs one pass over the sockets with interest.
 *
 * Events: `events` (in) is FS_POLLIN, FS_POLLOUT, both, or 0.  Out, a
 * socket's events are what is ready among its interest, plus FS_POLLERR
 * when the OS reports an error or a hang-up on it (EPOLLERR/EPOLLHUP,
 * POLLERR/POLLHUP/POLLNVAL).  FS_POLLERR says "look at this socket": the
 * next fs_recv()/fs_send() on it returns at once, with the error or with
 * 0 at the end of the stream, so a loop treats it as readiness for the
 * interest it has.  It may come alone: a peer's close is POLLHUP without
 * POLLRDNORM for WSAPoll (even a half-close), and a reset is POLLERR.  On
 * Linux a TCP peer's close is FS_POLLIN alone (the EOF to read), a reset
 * FS_POLLIN | FS_POLLERR, and an AF_UNIX peer's close both.
 *
 * Interest 0 (a paused connection) gets no readiness at all, but still
 * FS_POLLERR for an error or hang-up, which cannot be cleared by reading:
 * so that a level-triggered report cannot spin the loop, it comes ONCE per
 * fs_poller_add()/fs_poller_mod() call, and the socket is then left
 * unwatched until the next fs_poller_mod() (which arms it again) or
 * fs_poller_del().  The loop should fs_poller_del() and close it, or look
 * with fs_recv()/fs_connect_result() what it was.  Whether a hang-up
 * behind data not yet read is reported is the OS's choice (Linux: at
 * once; wine: only once the data is read).
 *
 * Threads: only the loop thread calls add/mod/del/wait/free; the
 * poller is not locked.  fs_poller_wake() may be called from any thread
 * and, on POSIX, from a signal handler.
 */
typedef struct fs_poller_s fs_poller_t;           /* opaque */

/* One ready socket, filled by fs_poller_wait(): the caller's `data` given
 * to fs_poller_add()/fs_poller_mod(), and its events (see above). */
typedef struct fs_pevent_s {
    void *data;
    int events;
} fs_pevent_t;

#define FS_POLLER_DEFAULT 0   /* epoll on Linux, poll() on other POSIX,
                                 WSAPoll on Windows */
#define FS_POLLER_POLL    1   /* the portable poll()/WSAPoll loop, also on
                                 Linux (to test it there) */

/* Creates a poller with `backend` (FS_POLLER_*) and its wake-up channel
 * (an eventfd on Linux, a pipe on other POSIX, a loopback socket pair on
 * Windows: non-blocking, not inherited) and stores it in *out.  Errors:
 * FS_EINVAL for an unknown backend, FS_ENOMEM, FS_EMFILE/FS_ENFILE, or
 * what creating the channel fails with.  Never blocks. */
int fs_poller_new(int backend, fs_poller_t **out);

/* Frees the poller and its wake-up channel.  The registered sockets are
 * the caller's: they are neither closed nor changed.  NULL is ignored. */
void fs_poller_free(fs_poller_t *p);

/* Registers s, which must not be registered already, with interest
 * `events` (FS_POLLIN | FS_POLLOUT, or 0) and the caller's `data`, given
 * back with each of its events (never read nor freed here).  FS_EINVAL for
 * other bits in events or a socket registered twice; epoll's errors for a
 * socket it cannot watch (FS_EBADF, -EPERM for a regular file); the poll
 * backends find a bad socket only when waiting (FS_POLLERR).  Never
 * blocks. */
int fs_poller_add(fs_poller_t *p, fs_sock_t s, int events, void *data);

/* Changes the interest and data of a registered socket: call it only when
 * the interest changes (with epoll it is a system call).  Arms an
 * interest-0 socket again for one FS_POLLERR (see above).  Errors as for
 * fs_poller_add(); FS_EINVAL if s is not registered.  Events of s that
 * an earlier fs_poller_wait() returned keep the old data. */
int fs_poller_mod(fs_poller_t *p, fs_sock_t s, int events, void *data);

/* Unregisters s: call it BEFORE closing s (a closed descriptor leaves
 * epoll by itself, but a poll set would report it as FS_POLLERR, and a
 * new socket with the same number could not be added).  FS_EINVAL if s is
 * not registered.  Events of s that an earlier fs_poller_wait() returned
 * are still in the caller's array: a loop that removes a socket while it
 * works through that array must skip them itself. */
int fs_poller_del(fs_poller_t *p, fs_sock_t s);

/* Waits until a registered socket is ready (see Events above), the poller
 * is woken, or timeout_ms passes (negative: forever; 0: just look), and
 * writes up to `max` (> 0, else FS_EINVAL) events to out[0..].  Returns
 * how many: 0 on a timeout or after a wake-up with nothing ready (the
 * wake-up is consumed here, never reported as an event).  With more ready
 * sockets than max, later calls report the others first (epoll's ready
 * list rotates; the poll backends start each scan after the last socket
 * reported), so none starves.  FS_EINTR when a signal arrives: nothing is
 * retried in C; run the handlers and call again.  Blocks: release the GIL
 * around it. */
int fs_poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                   int timeout_ms);

/* Makes the fs_poller_wait() under way, or else the next one, return
 * promptly.  Wake-ups before a wait coalesce into one, and a wake-up
 * while one is pending costs no system call.  Any thread; on POSIX also
 * a signal handler (an atomic flag and write() only).  Returns 0, or the
 * error of writing to the channel.  Never blocks. */
int fs_poller_wake(fs_poller_t *p);

/* The backend's name: "epoll", "poll" or "wsapoll".  Never fails. */
const char *fs_poller_name(const fs_poller_t *p);

/* ---- addresses (fs_common.c) ------------------------------------------- */

/* Fills *a with an AF_INET or AF_INET6 address from a numeric host
 * ("" is the any-address, "<broadcast>" the IPv4 broadcast address).
 * Returns 0, 1 if host is not a numeric address of that family (resolve it
 * with fs_resolve()), or FS_EINVAL for a bad family. Never blocks. */
int fs_addr_ip(fs_addr_t *a, int family, const char *host, unsigned port,
               uint32_t flowinfo, uint32_t scope_id);

/* Resolves host with getaddrinfo() and fills *a with the first address of
 * `family` (AF_UNSPEC: any).  Blocks.  Returns 0 or the getaddrinfo error
 * (an EAI_* value, for socket.gaierror); see fs_gai_strerror().  For
 * IPv6, flowinfo is set and scope_id too unless it is 0. */
int fs_resolve(fs_addr_t *a, int family, const char *host, unsigned port,
               uint32_t flowinfo, uint32_t scope_id);
const char *fs_gai_strerror(int code);

/* Decodes an AF_INET/AF_INET6 address: the numeric host into host (room
 * for 46 bytes at least), the port, and for IPv6 flowinfo and scope_id.
 * Returns the family, or FS_EINVAL for another family or too little room. */
int fs_addr_ip_info(const fs_addr_t *a, char *host, size_t hostlen,
                    unsigned *port, uint32_t *flowinfo, uint32_t *scope_id);

/* Fills *a with an AF_UNIX address; a path starting with a NUL byte is the
 * Linux abstract namespace.  FS_EINVAL if it does not fit, FS_EOPNOTSUPP
 * where the OS has no AF_UNIX. */
int fs_addr_unix(fs_addr_t *a, const char *path, size_t len);

/* Points *path at the AF_UNIX path in *a and returns its length (without
 * the trailing NUL of a filesystem path; 0 for an unnamed socket). */
int fs_addr_unix_path(const fs_addr_t *a, const char **path);

/* ---- ancillary data (sendmsg/recvmsg control messages; POSIX only) ---- */

/* Room one control message with datalen bytes of data takes (CMSG_SPACE);
 * 0 where the OS has no ancillary data. */
size_t fs_cmsg_space(size_t datalen);

/* Appends a control message at control + *used (size bytes in all) and
 * advances *used.  FS_EINVAL if it does not fit, FS_EOPNOTSUPP on
 * Windows.  The data is copied. */
int fs_cmsg_put(void *control, size_t size, size_t *used, int level,
                int type, const void *data, size_t len);

/* Reads the control message at *offset of a received control buffer of
 * `size` bytes: 1 and its fields (data points into control) with *offset
 * moved to the next, or 0 when there is none left.  Data cut short by
 * MSG_CTRUNC is reported with the length that fits. */
int fs_cmsg_next(const void *control, size_t size, size_t *offset,
                 int *level, int *type, const void **data, size_t *len);

/* ---- fs_common.c: platform-free helpers -------------------------------- */

/* After a send of `sent` bytes from *bufs[0..*n-1], drops what went out:
 * advances *bufs past whole buffers and trims the first partial one in
 * place.  The caller's array is modified; the data is not. */
void fs_bufs_advance(fs_buf_t **bufs, size_t *n, size_t sent);

/* The sum of the lengths of bufs[0..n-1]. */
size_t fs_bufs_total(const fs_buf_t *bufs, size_t n);

/* ---- atomics (the Cython modules' stream locks) ------------------------ */

/* MSVC's C compiler spells it __inline before C11 mode. */
#if defined(_MSC_VER) && !defined(__cplusplus)
#  define FS_INLINE __inline
#else
#  define FS_INLINE inline
#endif

/* Adds delta to *p as one atomic step; returns the value before. */
static FS_INLINE long fs_atomic_add(long *p, long delta)
{
#ifdef _WIN32
    return InterlockedExchangeAdd((volatile LONG *)p, delta);
#else
    return __atomic_fetch_add(p, delta, __ATOMIC_SEQ_CST);
#endif
}

/* If *p is `expected`, sets it to `desired` as one atomic step: 1 then,
 * else 0. */
static FS_INLINE int fs_atomic_cas(long *p, long expected, long desired)
{
#ifdef _WIN32
    return InterlockedCompareExchange((volatile LONG *)p, desired,
                                      expected) == expected;
#else
    return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* FASTSOCK_H_ */
