/* fs_win.c - the shim on WinSock 2 (Windows Vista and later). */
#include "fastsock.h"
#include "fs_private.h"

#include <io.h>
#include <limits.h>
#include <mswsock.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32_WINNT) && _WIN32_WINNT < 0x0600
#  error "fastsock needs _WIN32_WINNT >= 0x0600 (InitOnce, WSAPoll bits)"
#endif

#ifdef _MSC_VER
#  pragma comment(lib, "ws2_32.lib")
#  pragma comment(lib, "mswsock.lib")
#endif

/* Older SDKs lack these; the values are the documented ones. */
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#  define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif
#ifndef MSG_TRUNC
#  define MSG_TRUNC 0x0100
#endif

/* ---- set-up and errors ------------------------------------------------ */

/* WSAGetLastError() is GetLastError(): this also reads the code that a
 * failed Win32 call (SetHandleInformation, ...) left behind. */
int fs_last_error(void)
{
    int e = WSAGetLastError();

    /* A failure that left no code must still read as one. */
    return e > 0 ? -e : FS_EINVAL;
}

static int fs__check(int r)
{
    return r == SOCKET_ERROR ? fs_last_error() : r;
}

static INIT_ONCE fs__wsa_once = INIT_ONCE_STATIC_INIT;
static int fs__wsa_status;

static BOOL CALLBACK fs__wsa_start(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA data;
    int r = WSAStartup(MAKEWORD(2, 2), &data);

    (void)once; (void)param; (void)ctx;
    if (r == 0 && data.wVersion != MAKEWORD(2, 2)) {
        WSACleanup();
        r = WSAVERNOTSUPPORTED;
    }
    /* WSAStartup returns its error instead of setting the last error.
     * The outcome is kept either way: a second attempt would fail too. */
    fs__wsa_status = r ? -r : 0;
    return TRUE;
}

/* Never paired with WSACleanup(): the library stays up until exit, as in
 * CPython. */
int fs_init(void)
{
    /* InitOnce publishes fs__wsa_status to every caller it releases. */
    if (!InitOnceExecuteOnce(&fs__wsa_once, fs__wsa_start, NULL, NULL))
        return fs_last_error();
    return fs__wsa_status;
}

/* The C runtime's errno for a WinSock (or Win32) code.  CPython itself
 * derives OSError.errno from winerror, so this matters to C callers and
 * to an OSError built without winerror. */
static const struct {
    int winerror;
    int err_no;
} fs__errnos[] = {
    {WSAEINTR, EINTR},
    {WSAEBADF, EBADF},
    {WSAEACCES, EACCES},
    {WSAEFAULT, EFAULT},
    {WSAEINVAL, EINVAL},
    {WSAEMFILE, EMFILE},
    {WSAEWOULDBLOCK, EAGAIN},
    {WSAEINPROGRESS, EINPROGRESS},
    {WSAEALREADY, EALREADY},
    {WSAENOTSOCK, ENOTSOCK},
    {WSAEDESTADDRREQ, EDESTADDRREQ},
    {WSAEMSGSIZE, EMSGSIZE},
    {WSAEPROTOTYPE, EPROTOTYPE},
    {WSAENOPROTOOPT, ENOPROTOOPT},
    {WSAEPROTONOSUPPORT, EPROTONOSUPPORT},
    {WSAESOCKTNOSUPPORT, EPROTONOSUPPORT},
    {WSAEOPNOTSUPP, EOPNOTSUPP},
    {WSAEPFNOSUPPORT, EAFNOSUPPORT},
    {WSAEAFNOSUPPORT, EAFNOSUPPORT},
    {WSAEADDRINUSE, EADDRINUSE},
    {WSAEADDRNOTAVAIL, EADDRNOTAVAIL},
    {WSAENETDOWN, ENETDOWN},
    {WSAENETUNREACH, ENETUNREACH},
    {WSAENETRESET, ENETRESET},
    {WSAECONNABORTED, ECONNABORTED},
    {WSAECONNRESET, ECONNRESET},
    {WSAENOBUFS, ENOBUFS},
    {WSAEISCONN, EISCONN},
    {WSAENOTCONN, ENOTCONN},
    {WSAESHUTDOWN, EPIPE},           /* FS_EPIPE: send after shutdown */
    {WSAETIMEDOUT, ETIMEDOUT},
    {WSAECONNREFUSED, ECONNREFUSED},
    {WSAELOOP, ELOOP},
    {WSAENAMETOOLONG, ENAMETOOLONG},
    {WSAEHOSTDOWN, EHOSTUNREACH},
    {WSAEHOSTUNREACH, EHOSTUNREACH},
    {WSAENOTEMPTY, ENOTEMPTY},
    {WSA_INVALID_HANDLE, EBADF},
    {WSA_INVALID_PARAMETER, EINVAL},
    {WSA_NOT_ENOUGH_MEMORY, ENOMEM},
    {WSA_OPERATION_ABORTED, ECANCELED},
    {ERROR_ACCESS_DENIED, EACCES},
    {ERROR_BROKEN_PIPE, EPIPE},
    {ERROR_NETNAME_DELETED, ECONNRESET},
    {ERROR_CONNECTION_ABORTED, ECONNABORTED},
    {ERROR_CONNECTION_REFUSED, ECONNREFUSED},
};

static int fs__errno(int winerror)
{
    size_t i;

    for (i = 0; i < sizeof(fs__errnos) / sizeof(fs__errnos[0]); i++) {
        if (fs__errnos[i].winerror == winerror)
            return fs__errnos[i].err_no;
    }
    return EINVAL; /* CPython's default for an unmapped code */
}

/* The system's message in UTF-8 (what the caller decodes), not the ANSI
 * code page that FormatMessageA would give on a localised system. */
static void fs__message(int winerror, char *msg, size_t size)
{
    WCHAR wide[512];
    char utf8[1536];
    DWORD n;
    int len = 0;

    n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM
                       | FORMAT_MESSAGE_IGNORE_INSERTS
                       | FORMAT_MESSAGE_MAX_WIDTH_MASK,
                       NULL, (DWORD)winerror,
                       MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT),
                       wide, sizeof(wide) / sizeof(wide[0]), NULL);
    /* Drop the trailing blanks and full stop, as CPython does. */
    while (n > 0 && (wide[n - 1] <= L' ' || wide[n - 1] == L'.'))
        n--;
    if (n > 0)
        len = WideCharToMultiByte(CP_UTF8, 0, wide, (int)n, utf8,
                                  (int)sizeof(utf8), NULL, NULL);
    if (len <= 0) {
        snprintf(msg, size, "Windows error %d", winerror);
        return;
    }
    /* Cut to fit, but never inside a UTF-8 sequence. */
    if ((size_t)len > size - 1) {
        len = (int)(size - 1);
        while (len > 0 && ((unsigned char)utf8[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(msg, utf8, (size_t)len);
    msg[len] = '\0';
}

void fs_error_info(int code, int *err_no, int *winerror, char *msg,
                   size_t size)
{
    *winerror = -code;
    *err_no = fs__errno(-code);
    if (size > 0)
        fs__message(-code, msg, size);
}

int64_t fs_monotonic_ns(void)
{
    LARGE_INTEGER now, freq;

    /* Neither call can fail since Windows XP. */
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    /* Split so that now * 10^9 cannot overflow. */
    return (now.QuadPart / freq.QuadPart) * 1000000000
           + (now.QuadPart % freq.QuadPart) * 1000000000 / freq.QuadPart;
}

/* WSASend/WSARecv have no documented limit; this bounds the caller's
 * stack arrays and matches Linux. */
int fs_iov_max(void)
{
    return 1024;
}

/* ---- lengths ----------------------------------------------------------- */

/* WinSock counts bytes in an int: a longer request becomes a short one. */
static int fs__clamp(size_t len)
{
    return len > INT_MAX ? INT_MAX : (int)len;
}

/* WSABUFs of one call on the stack; longer vectors go to the heap. */
#define FS__WSABUFS_STACK 64

/* Copies the leading buffers whose total fits in INT_MAX bytes (the count
 * comes back in a DWORD and WinSock misbehaves past INT_MAX) into WSABUFs:
 * into `stack` (FS__WSABUFS_STACK entries) or a heap block that the caller
 * frees if it is not `stack`.  A first buffer longer than that alone is
 * cut to INT_MAX, a short send or receive that the caller finishes.  An
 * empty list becomes one empty buffer, so that an empty datagram can be
 * sent.  Stores the count in *count; NULL when out of memory. */
static WSABUF *fs__wsabufs(const fs_buf_t *bufs, size_t n, WSABUF *stack,
                           DWORD *count)
{
    WSABUF *out = stack;
    size_t total = 0;
    size_t i;

    if (n > MAXDWORD)
        n = MAXDWORD;
    for (i = 0; i < n; i++) {
        if (bufs[i].len > (size_t)INT_MAX - total)
            break;
        total += bufs[i].len;
    }
    if (i == 0) {
        stack->buf = n > 0 ? bufs[0].base : NULL;
        stack->len = n > 0 ? INT_MAX : 0;
        *count = 1;
        return stack;
    }
    if (i > FS__WSABUFS_STACK) {
        out = (WSABUF *)malloc(i * sizeof(WSABUF));
        if (out == NULL)
            return NULL;
    }
    for (n = 0; n < i; n++) {
        out[n].buf = bufs[n].base;
        out[n].len = (ULONG)bufs[n].len;
    }
    *count = (DWORD)i;
    return out;
}

static size_t fs__wsabufs_total(const WSABUF *b, DWORD count)
{
    size_t total = 0;
    DWORD i;

    for (i = 0; i < count; i++)
        total += b[i].len;
    return total;
}

/* ---- life cycle -------------------------------------------------------- */

/* WSASocketW() for fs_socket() and fs_dup() (info: the socket to copy, or
 * NULL): a handle that is not inherited. */
static int fs__wsasocket(int family, int type, int proto,
                         WSAPROTOCOL_INFOW *info, fs_sock_t *out)
{
    SOCKET s;
    int err = fs_init();

    if (err < 0)
        return err;
    /* WSA_FLAG_OVERLAPPED is what socket() implies; fs_sendfile() needs
     * it to read the file at an offset. */
    s = WSASocketW(family, type, proto, info, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
        /* Windows 7 without SP1 rejects WSA_FLAG_NO_HANDLE_INHERIT. */
        s = WSASocketW(family, type, proto, info, 0, WSA_FLAG_OVERLAPPED);
        if (s != INVALID_SOCKET
            && !SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0)) {
            err = fs_last_error();
            closesocket(s);
            return err;
        }
    }
    if (s == INVALID_SOCKET)
        return fs_last_error();
    *out = s;
    return 0;
}

int fs_socket(int family, int type, int proto, fs_sock_t *out)
{
    return fs__wsasocket(family, type, proto, NULL, out);
}

int fs_close(fs_sock_t s)
{
    return closesocket(s) == 0 ? 0 : fs_last_error();
}

int fs_set_nonblocking(fs_sock_t s, int on)
{
    u_long mode = on != 0;

    return ioctlsocket(s, FIONBIO, &mode) == 0 ? 0 : fs_last_error();
}

int fs_sock_info(fs_sock_t s, int *family, int *type, int *proto)
{
    WSAPROTOCOL_INFOW info;
    struct sockaddr_storage ss;
    int len = (int)sizeof(info);
    int err = fs_init();

    if (err < 0)
        return err;
    /* First, so that a handle that is no socket fails with WSAENOTSOCK. */
    if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info,
                   &len) != 0)
        return fs_last_error();
    memset(&ss, 0, sizeof(ss));
    len = (int)sizeof(ss);
    /* getsockname() fails on an unbound socket (WSAEINVAL); the
     * protocol's family is the answer then. */
    if (getsockname(s, (struct sockaddr *)&ss, &len) == 0)
        *family = ss.ss_family;
    else
        *family = info.iAddressFamily;
    len = (int)sizeof(*type);
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)type, &len) != 0)
        return fs_last_error();
    *proto = info.iProtocol;
    return 0;
}

int fs_dup(fs_sock_t s, fs_sock_t *out)
{
    WSAPROTOCOL_INFOW info;
    int err = fs_init();

    if (err < 0)
        return err;
    if (WSADuplicateSocketW(s, GetCurrentProcessId(), &info) != 0)
        return fs_last_error();
    return fs__wsasocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
                         FROM_PROTOCOL_INFO, &info, out);
}

int fs_get_inheritable(fs_sock_t s)
{
    DWORD flags = 0;

    if (!GetHandleInformation((HANDLE)s, &flags))
        return fs_last_error();
    return (flags & HANDLE_FLAG_INHERIT) != 0;
}

int fs_set_inheritable(fs_sock_t s, int on)
{
    if (!SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT,
                              on ? HANDLE_FLAG_INHERIT : 0))
        return fs_last_error();
    return 0;
}

/* ---- addresses and options -------------------------------------------- */

int fs_connect_result(fs_sock_t s)
{
    int err = 0;
    int len = (int)sizeof(err);

    if (getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0)
        return fs_last_error();
    return err ? -err : 0;
}

/* fs__accept (fs_private.h). */
int fs__accept(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len,
               fs_sock_t *out, int nonblocking)
{
    u_long mode = nonblocking != 0;
    SOCKET c = accept(s, addr, len);

    if (c == INVALID_SOCKET)
        return fs_last_error();
    /* The new socket copies the listener's properties; make it private
     * (as CPython does) and set its mode.  FIONBIO fails only under
     * WSAEventSelect, which is the caller's business for a blocking
     * socket; a loop must not get a blocking one by surprise. */
    if (!SetHandleInformation((HANDLE)c, HANDLE_FLAG_INHERIT, 0)
        || (ioctlsocket(c, FIONBIO, &mode) != 0 && nonblocking)) {
        int err = fs_last_error();
        closesocket(c);
        return err;
    }
    *out = c;
    return 0;
}

int fs_setsockopt(fs_sock_t s, int level, int name, const void *value,
                  fs_socklen_t len)
{
    return fs__check(setsockopt(s, level, name, (const char *)value, len));
}

int fs_getsockopt(fs_sock_t s, int level, int name, void *value,
                  fs_socklen_t *len)
{
    return fs__check(getsockopt(s, level, name, (char *)value, len));
}

/* ---- socketpair -------------------------------------------------------- */

/* Whether a and b hold the same IP address and port. */
static int fs__same_addr(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port
               && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port
               && memcmp(&x->sin6_addr, &y->sin6_addr,
                         sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* Whether the accepted socket `srv` is the other end of `cli`: anything
 * on the machine can connect to the listener before cli does. */
static int fs__is_peer(fs_sock_t srv, fs_sock_t cli)
{
    struct sockaddr_storage a, b;
    int alen = (int)sizeof(a), blen = (int)sizeof(b);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (getpeername(srv, (struct sockaddr *)&a, &alen) != 0
        || getsockname(cli, (struct sockaddr *)&b, &blen) != 0
        || !fs__same_addr(&a, &b))
        return 0;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    alen = (int)sizeof(a);
    blen = (int)sizeof(b);
    return getsockname(srv, (struct sockaddr *)&a, &alen) == 0
           && getpeername(cli, (struct sockaddr *)&b, &blen) == 0
           && fs__same_addr(&a, &b);
}

/* Strangers accepted before our own connection, at most. */
#define FS__PAIR_STRANGERS 64

/* WinSock has no socketpair(): a loopback listener connects two TCP
 * sockets, as CPython's socket.socketpair() does on Windows. */
int fs_socketpair(int family, int type, int proto, fs_sock_t out[2])
{
    struct sockaddr_storage addr;
    fs_sock_t lsn = INVALID_SOCKET, cli = INVALID_SOCKET;
    fs_sock_t srv = INVALID_SOCKET;
    int len, err, tries, on = 1;

    if (family != AF_INET && family != AF_INET6)
        return -WSAEAFNOSUPPORT;
    if (type != SOCK_STREAM)
        return FS_EOPNOTSUPP;
    if (proto != 0 && proto != IPPROTO_TCP)
        return -WSAEPROTONOSUPPORT;

    memset(&addr, 0, sizeof(addr));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = (int)sizeof(*a);
    }
    else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = (int)sizeof(*a);
    }

    err = fs_socket(family, SOCK_STREAM, proto, &lsn);
    if (err < 0)
        return err;
    /* Without it, a socket bound later with SO_REUSEADDR could take over
     * the port and receive our connection. */
    if (setsockopt(lsn, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&on,
                   (int)sizeof(on)) != 0
        || bind(lsn, (struct sockaddr *)&addr, len) != 0
        || listen(lsn, SOMAXCONN) != 0
        || getsockname(lsn, (struct sockaddr *)&addr, &len) != 0) {
        err = fs_last_error();
        goto fail;
    }
    err = fs_socket(family, SOCK_STREAM, proto, &cli);
    if (err < 0)
        goto fail;
    /* Completes once the listener's backlog holds it, before accept(). */
    if (connect(cli, (struct sockaddr *)&addr, len) != 0) {
        err = fs_last_error();
        goto fail;
    }
    for (tries = 0;; tries++) {
        err = fs_accept(lsn, NULL, NULL, &srv);
        if (err < 0)
            goto fail;
        if (fs__is_peer(srv, cli))
            break;
        closesocket(srv);
        srv = INVALID_SOCKET;
        if (tries == FS__PAIR_STRANGERS) {
            err = FS_ECONNABORTED;
            goto fail;
        }
    }
    closesocket(lsn);
    out[0] = cli;
    out[1] = srv;
    return 0;

fail:
    if (cli != INVALID_SOCKET)
        closesocket(cli);
    closesocket(lsn);
    return err;
}

/* ---- data -------------------------------------------------------------- */

/* No SIGPIPE on Windows: the flags go through unchanged. */
fs_ssize_t fs_send(fs_sock_t s, const void *buf, size_t len, int flags)
{
    return fs__check(send(s, (const char *)buf, fs__clamp(len), flags));
}

/* A datagram longer than len fails with FS_EMSGSIZE (the start of it is in
 * buf), as CPython reports it on Windows; fs_recvmsg() and the batch say
 * MSG_TRUNC / FS_DGRAM_TRUNC instead. */
fs_ssize_t fs_recv(fs_sock_t s, void *buf, size_t len, int flags)
{
    return fs__check(recv(s, (char *)buf, fs__clamp(len), flags));
}

fs_ssize_t fs_sendto(fs_sock_t s, const void *buf, size_t len, int flags,
                     const struct sockaddr *addr, fs_socklen_t addrlen)
{
    return fs__check(sendto(s, (const char *)buf, fs__clamp(len), flags,
                            addr, addrlen));
}

fs_ssize_t fs_recvfrom(fs_sock_t s, void *buf, size_t len, int flags,
                       struct sockaddr *addr, fs_socklen_t *addrlen)
{
    return fs__check(recvfrom(s, (char *)buf, fs__clamp(len), flags, addr,
                              addr ? addrlen : NULL));
}

fs_ssize_t fs_sendmsg(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                      const struct sockaddr *addr, fs_socklen_t addrlen,
                      const void *control, size_t controllen, int flags)
{
    WSABUF stack[FS__WSABUFS_STACK], *b;
    DWORD count, sent = 0;
    int r;

    (void)control;
    /* WSASendMsg takes control data only for a few IP options; the
     * header promises none. */
    if (controllen != 0)
        return FS_EOPNOTSUPP;
    b = fs__wsabufs(bufs, n, stack, &count);
    if (b == NULL)
        return FS_ENOMEM;
    if (addr)
        r = WSASendTo(s, b, count, &sent, (DWORD)flags, addr, addrlen,
                      NULL, NULL);
    else
        r = WSASend(s, b, count, &sent, (DWORD)flags, NULL, NULL);
    r = r == 0 ? 0 : fs_last_error();
    if (b != stack)
        free(b);
    return r == 0 ? (fs_ssize_t)sent : r;
}

fs_ssize_t fs_sendv(fs_sock_t s, const fs_buf_t *bufs, size_t n, int flags)
{
    return fs_sendmsg(s, bufs, n, NULL, 0, NULL, 0, flags);
}

fs_ssize_t fs_recvmsg(fs_sock_t s, fs_buf_t *bufs, size_t n,
                      struct sockaddr *addr, fs_socklen_t *addrlen,
                      void *control, size_t *controllen, int *msg_flags,
                      int flags)
{
    WSABUF stack[FS__WSABUFS_STACK], *b;
    DWORD count, got = 0, fl = (DWORD)flags;
    int r;

    (void)control;
    b = fs__wsabufs(bufs, n, stack, &count);
    if (b == NULL)
        return FS_ENOMEM;
    if (addr)
        r = WSARecvFrom(s, b, count, &got, &fl, addr, addrlen, NULL, NULL);
    else
        r = WSARecv(s, b, count, &got, &fl, NULL, NULL);
    if (r != 0) {
        r = fs_last_error();
        /* The buffers hold the start of a longer datagram, the rest is
         * lost: what POSIX reports as a full read with MSG_TRUNC. */
        if (r == FS_EMSGSIZE) {
            got = (DWORD)fs__wsabufs_total(b, count);
            fl = MSG_TRUNC;
            r = 0;
        }
    }
    if (b != stack)
        free(b);
    if (r < 0)
        return r;
    if (controllen)
        *controllen = 0;
    if (msg_flags)
        *msg_flags = (int)fl;
    return (fs_ssize_t)got;
}

fs_ssize_t fs_recvv(fs_sock_t s, fs_buf_t *bufs, size_t n, int flags)
{
    return fs_recvmsg(s, bufs, n, NULL, NULL, NULL, NULL, NULL, flags);
}

/* ---- sendfile ---------------------------------------------------------- */

#if defined(_MSC_VER) || defined(_UCRT)
#  ifndef _MSC_VER
/* mingw-w64 links it from ucrtbase.dll but declares it nowhere. */
_CRTIMP _invalid_parameter_handler __cdecl
_set_thread_local_invalid_parameter_handler(_invalid_parameter_handler h);
#  endif

/* The CRT's invalid-parameter handler, which by default ends the process,
 * runs for a descriptor that is not open: silence it for this call. */
static void __cdecl fs__ignore_iph(const wchar_t *expr, const wchar_t *func,
                                   const wchar_t *file, unsigned int line,
                                   uintptr_t reserved)
{
    (void)expr; (void)func; (void)file; (void)line; (void)reserved;
}

static HANDLE fs__osfhandle(int fd)
{
    _invalid_parameter_handler old;
    intptr_t h;

    old = _set_thread_local_invalid_parameter_handler(fs__ignore_iph);
    h = _get_osfhandle(fd);
    _set_thread_local_invalid_parameter_handler(old);
    return (HANDLE)h;
}
#else
/* msvcrt.dll just fails with EBADF. */
static HANDLE fs__osfhandle(int fd)
{
    return (HANDLE)_get_osfhandle(fd);
}
#endif

/* One TransmitFile call sends at most this many bytes. */
#define FS__TRANSMIT_MAX ((DWORD)INT_MAX - 1)

/* The file is read at *offset through the OVERLAPPED (its file pointer is
 * not used), and the call waits for TransmitFile to finish: blocking
 * sockets only (see fastsock.h). */
fs_ssize_t fs_sendfile(fs_sock_t s, int fd, int64_t *offset, size_t count,
                       int blocking)
{
    HANDLE file, event;
    LARGE_INTEGER size;
    OVERLAPPED ov;
    DWORD want, sent = 0, fl = 0;
    int64_t left;
    int err = 0;

    if (fd < 0)
        return -WSAEBADF;
    if (!blocking)
        return FS_EOPNOTSUPP;
    file = fs__osfhandle(fd);
    if (file == INVALID_HANDLE_VALUE)
        return -WSAEBADF;
    /* TransmitFile reads disk files; pipes and consoles have no offset. */
    if (GetFileType(file) != FILE_TYPE_DISK || !GetFileSizeEx(file, &size))
        return FS_EOPNOTSUPP;
    if (*offset < 0)
        return FS_EINVAL;
    if (*offset >= size.QuadPart || count == 0)
        return 0;
    /* Bounded by the file's end, as nNumberOfBytesToWrite 0 would mean
     * "the whole file". */
    left = size.QuadPart - *offset;
    want = FS__TRANSMIT_MAX;
    if ((uint64_t)left < want)
        want = (DWORD)left;
    if (count < want)
        want = (DWORD)count;

    event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (event == NULL)
        return fs_last_error();
    memset(&ov, 0, sizeof(ov));
    ov.Offset = (DWORD)((uint64_t)*offset & 0xFFFFFFFFu);
    ov.OffsetHigh = (DWORD)((uint64_t)*offset >> 32);
    /* The low bit keeps the completion away from an I/O completion port
     * that the socket may be bound to: ov lives on this stack. */
    ov.hEvent = (HANDLE)((uintptr_t)event | 1);
    if (!TransmitFile(s, file, want, 0, &ov, NULL, 0)
        && WSAGetLastError() != WSA_IO_PENDING)
        err = fs_last_error();
    else if (!WSAGetOverlappedResult(s, &ov, &sent, TRUE, &fl))
        err = fs_last_error();
    CloseHandle(event);
    if (err < 0)
        return err;
    *offset += sent;
    return (fs_ssize_t)sent;
}

/* ---- batches ----------------------------------------------------------- */

/* Whether a datagram is queued.  FIONREAD counts bytes, so an empty
 * datagram is missed: the batch then just ends early. */
static int fs__queued(fs_sock_t s)
{
    u_long avail = 0;

    return ioctlsocket(s, FIONREAD, &avail) == 0 && avail > 0;
}

/* No recvmmsg: a loop, the later datagrams taken only if queued. */
int fs_recv_batch(fs_sock_t s, fs_dgram_t *d, size_t n, int flags)
{
    size_t i;

    for (i = 0; i < n && i < INT_MAX; i++) {
        int mflags = 0;
        fs_ssize_t r;

        if (i > 0 && !fs__queued(s))
            break;
        r = fs_recvmsg(s, d[i].bufs, d[i].nbufs, d[i].addr,
                       d[i].addr ? &d[i].addrlen : NULL, NULL, NULL,
                       &mflags, flags);
        if (r < 0) {
            if (i == 0)
                return (int)r;
            break;
        }
        if (!d[i].addr)
            d[i].addrlen = 0;
        d[i].len = (size_t)r;
        d[i].flags = (mflags & MSG_TRUNC) ? FS_DGRAM_TRUNC : 0;
    }
    return (int)i;
}

/* ---- readiness --------------------------------------------------------- */

/* select(), not WSAPoll(): before Windows 10 2004 (so on Server 2019)
 * WSAPoll() never reports a failed non-blocking connect and waits out the
 * whole timeout; select() reports it in exceptfds, as CPython relies on.
 * An fd_set is a list of handles, so FD_SETSIZE limits nothing here. */
int fs_wait(fs_sock_t s, int events, int timeout_ms)
{
    fd_set rd, wr, ex;
    struct timeval tv;
    int r, ready = 0;

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (events & FS_POLLIN)
        FD_SET(s, &rd);
    if (events & FS_POLLOUT)
        FD_SET(s, &wr);
    /* exceptfds also flags out-of-band data, which a reader must not
     * take for readiness, so only a writer (a connect) watches it; an
     * empty wait watches it too, as select() refuses three empty sets. */
    if ((events & FS_POLLOUT) || !(events & FS_POLLIN))
        FD_SET(s, &ex);
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    r = select(0, &rd, &wr, &ex, timeout_ms < 0 ? NULL : &tv);
    if (r == SOCKET_ERROR)
        return fs_last_error();
    if (FD_ISSET(s, &rd))
        ready |= FS_POLLIN;
    if (FD_ISSET(s, &wr))
        ready |= FS_POLLOUT;
    /* A failed connect counts as ready: fs_connect_result() reports it. */
    if (FD_ISSET(s, &ex))
        ready |= events;
    return ready;
}

/* ---- poller: WSAPoll ---------------------------------------------------- */

/*
 * The poll set of fs_common.c over WSAPoll(), woken through a loopback TCP
 * pair.  WSAPoll's quirks, and what this does about them:
 * - events may hold only POLLRDNORM, POLLRDBAND, POLLWRNORM (POLLPRI or
 *   POLLERR fail the whole call with WSAEINVAL): FS_POLLIN and FS_POLLOUT
 *   are POLLRDNORM and POLLWRNORM, nothing else is passed; interest 0 is
 *   events 0, for which it reports only POLLERR/POLLHUP/POLLNVAL.
 * - before Windows 10 2004 it never reports a failed non-blocking connect
 *   (the wait runs out): the poller is for accepted connections and
 *   listeners; wait for a connect with fs_wait(), which uses select().
 * - a peer's orderly close (even a half-close) is POLLHUP, so FS_POLLERR
 *   there can mean just the end of the stream (fastsock.h).
 * - a negative fd is documented as ignored, but wine reports it as
 *   POLLNVAL: muted sockets are left out of the array instead.
 * - the array must hold one valid socket: the wake-up socket is always
 *   there.
 */
struct fs_poller_s {
    SOCKET wake[2];           /* [0] polled for reading, [1] written to */
    volatile LONG wake_pending; /* 1 from a wake-up until a wait drains it */
    fs__pollset_t ps;
};

int fs__poll(fs__pollfd_t *fds, int n, int timeout_ms)
{
    int r = WSAPoll(fds, (ULONG)n, timeout_ms);

    return r == SOCKET_ERROR ? fs_last_error() : r;
}

/* The wake-up pair, both ends non-blocking.  Nagle is off on the writing
 * end, or a wake-up byte could wait for the ACK of the one before
 * (delayed ACK: up to 200 ms). */
static int fs__wake_open(fs_poller_t *p)
{
    int on = 1, err;

    err = fs_socketpair(AF_INET, SOCK_STREAM, 0, p->wake);
    if (err < 0)
        err = fs_socketpair(AF_INET6, SOCK_STREAM, 0, p->wake);
    if (err < 0)
        return err;
    err = fs_set_nonblocking(p->wake[0], 1);
    if (err == 0)
        err = fs_set_nonblocking(p->wake[1], 1);
    if (err == 0)
        err = fs__check(setsockopt(p->wake[1], IPPROTO_TCP, TCP_NODELAY,
                                   (const char *)&on, (int)sizeof(on)));
    if (err < 0) {
        closesocket(p->wake[0]);
        closesocket(p->wake[1]);
    }
    return err;
}

/* Consumes every pending wake-up; the flag is cleared first, so a wake-up
 * after it sends again and none is lost. */
static void fs__wake_drain(fs_poller_t *p)
{
    char buf[64];

    /* Drain, then clear the flag: see fs_posix.c for why this order. */
    while (recv(p->wake[0], buf, (int)sizeof(buf), 0) == (int)sizeof(buf))
        ;
    InterlockedExchange(&p->wake_pending, 0);
}

int fs_poller_new(int backend, fs_poller_t **out)
{
    fs_poller_t *p;
    int err;

    if (backend != FS_POLLER_DEFAULT && backend != FS_POLLER_POLL)
        return FS_EINVAL;
    p = (fs_poller_t *)calloc(1, sizeof(*p));
    if (p == NULL)
        return FS_ENOMEM;
    err = fs__wake_open(p);
    if (err == 0) {
        err = fs__pollset_init(&p->ps, p->wake[0]);
        if (err < 0) {
            closesocket(p->wake[0]);
            closesocket(p->wake[1]);
        }
    }
    if (err < 0) {
        free(p);
        return err;
    }
    *out = p;
    return 0;
}

void fs_poller_free(fs_poller_t *p)
{
    if (p == NULL)
        return;
    closesocket(p->wake[0]);
    closesocket(p->wake[1]);
    fs__pollset_free(&p->ps);
    free(p);
}

int fs__poller_ctl(fs_poller_t *p, int op, fs_sock_t s, int events,
                   void *data)
{
    return fs__pollset_ctl(&p->ps, op, s, events, data);
}

int fs__poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                    int timeout_ms)
{
    int woken, n = fs__pollset_wait(&p->ps, out, max, timeout_ms, &woken);

    if (woken)
        fs__wake_drain(p);
    return n;
}

int fs_poller_wake(fs_poller_t *p)
{
    char one = 1;

    if (InterlockedExchange(&p->wake_pending, 1))
        return 0; /* one is pending: the wait will return anyway */
    /* WSAEWOULDBLOCK: the pair is full, so a wake-up is already there. */
    if (send(p->wake[1], &one, 1, 0) == SOCKET_ERROR
        && WSAGetLastError() != WSAEWOULDBLOCK) {
        int err = fs_last_error();

        InterlockedExchange(&p->wake_pending, 0);
        return err;
    }
    return 0;
}

const char *fs_poller_name(const fs_poller_t *p)
{
    (void)p;
    return "wsapoll";
}

/* ---- ancillary data: none on Windows ---------------------------------- */

size_t fs_cmsg_space(size_t datalen)
{
    (void)datalen;
    return 0;
}

int fs_cmsg_put(void *control, size_t size, size_t *used, int level,
                int type, const void *data, size_t len)
{
    (void)control; (void)size; (void)used; (void)level; (void)type;
    (void)data; (void)len;
    return FS_EOPNOTSUPP;
}

int fs_cmsg_next(const void *control, size_t size, size_t *offset,
                 int *level, int *type, const void **data, size_t *len)
{
    (void)control; (void)size; (void)offset; (void)level; (void)type;
    (void)data; (void)len;
    return 0;
}
