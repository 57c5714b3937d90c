/*
 * fs_private.h - private to csrc/: what fs_common.c and the platform files
 * share.  Cython never sees this header.
 *
 * fs_common.c holds the calls that read the same on POSIX and WinSock
 * (bind, listen, connect, the accept pair, shutdown, the name queries);
 * the platform files provide the parts below that differ.  For the
 * poller, fs_common.c checks the arguments of the public fs_poller_* calls
 * and keeps the socket set behind the poll() and WSAPoll() backends; the
 * platform files run the backends and own the wake-up channel.
 */
#ifndef FS_PRIVATE_H_
#define FS_PRIVATE_H_

#include "fastsock.h"

/* accept() into *out, not inherited, in non-blocking mode if asked (what
 * fs_accept and fs_accept_nonblocking do).  0 or FS_E*. */
int fs__accept(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len,
               fs_sock_t *out, int nonblocking);

#ifdef _WIN32
typedef WSAPOLLFD fs__pollfd_t;
#else
typedef struct pollfd fs__pollfd_t;
#endif

/* What fs_poller_add/mod accept: FS_POLLERR is output only. */
#define FS__INTEREST (FS_POLLIN | FS_POLLOUT)

/* One entry of the index: a socket and its slot, or slot -1 (free). */
typedef struct fs__slotref_s {
    fs_sock_t sock;
    int slot;
} fs__slotref_t;

/*
 * fds[0] is the wake-up channel's read end, always polled for reading.
 * Slots [1, active) are polled; [active, n) are muted: interest-0 sockets
 * whose FS_POLLERR was reported, kept out of the poll call so that a
 * hang-up cannot wake it again and again (see fastsock.h).  A slot moves
 * when another is removed or muted, so the index maps a socket to its
 * slot: open addressing with linear probing, at most half full.  It is
 * keyed by the socket's value, which works for POSIX descriptors and for
 * WinSock handles alike (sparse multiples of 4, which no table indexed by
 * descriptor could hold).  Measured with 10,000 sockets on Linux: 1.3
 * probes per lookup on average, 2 at most; fs_poller_mod 12-70 ns, while
 * one poll() over the same sockets takes 1.0-1.3 ms.  A table indexed by
 * descriptor could save a few nanoseconds where they do not matter.
 */
typedef struct fs__pollset_s {
    fs__pollfd_t *fds;
    void **data;            /* the caller's pointer for each slot */
    int n, active, cap;     /* slots used, slots polled, room */
    int next;               /* the next scan starts here, in [1, active) */
    fs__slotref_t *index;
    size_t index_mask;      /* entries - 1; entries is a power of two */
} fs__pollset_t;

/* An empty set that polls `wake` for reading.  0 or FS_ENOMEM. */
int fs__pollset_init(fs__pollset_t *ps, fs_sock_t wake);
void fs__pollset_free(fs__pollset_t *ps);

/* What fs__poller_ctl() does. */
#define FS__CTL_ADD 1
#define FS__CTL_MOD 2
#define FS__CTL_DEL 3

/* fs_poller_add/mod/del on the set (arguments already checked). */
int fs__pollset_ctl(fs__pollset_t *ps, int op, fs_sock_t s, int events,
                    void *data);

/* Polls the set once (max > 0) and writes the events to out; *woken is set
 * to 1 if the wake-up channel is readable (the caller drains it), else 0.
 * Returns the count or the poll call's error. */
int fs__pollset_wait(fs__pollset_t *ps, fs_pevent_t *out, int max,
                     int timeout_ms, int *woken);

/* The platform's poll call: poll() or WSAPoll(), errors translated. */
int fs__poll(fs__pollfd_t *fds, int n, int timeout_ms);

/* The platform files' backends, called by fs_poller_add/mod/del and
 * fs_poller_wait once the arguments are checked: op is FS__CTL_*; the wait
 * consumes the wake-ups itself. */
int fs__poller_ctl(fs_poller_t *p, int op, fs_sock_t s, int events,
                   void *data);
int fs__poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                    int timeout_ms);

#endif /* FS_PRIVATE_H_ */
