"""fastsock.Server: a thread-per-connection server with back-pressure.

The accept loop runs on one thread and hands each admitted connection to a
handler thread.  Handler threads are kept after their connection ends and
reused for the next one: the hand-off is one put on a C queue
(``_queue.SimpleQueue``) instead of a thread start per connection.  Nothing
here runs per byte or per request: the accept is ``Socket.accept`` and the
handler reads and writes through the C ``Stream``.

Shutdown is graceful, as Go's ``http.Server.Shutdown`` is: stop accepting
(taking what the listen backlog holds, rather than resetting it);
``Stream.drain()`` every open connection, which ends at once (with EOF) a
handler waiting at a message boundary with nothing of the next message
received, and makes every other handler's next boundary read end the same
way once it has finished its message and its reply; wait for the handlers;
and only when the time given runs out, shut down what is left in both
directions.
"""
from __future__ import annotations

import errno
import logging
import selectors
import socket as _stdlib
import threading
from queue import Empty, SimpleQueue
from typing import Any, Callable, Optional

from fastsock._socket import Socket
from fastsock._stream import Stream
from fastsock._allow import Allow, make_filter
from fastsock._args import (check_int, check_stream_options, check_timeout,
                            is_unix_address, set_nodelay)
from fastsock.client import Address, listen

__all__ = ["Server"]

log = logging.getLogger("fastsock")

Handler = Callable[[Stream, Any], object]

# accept() failures that concern one connection only (it was aborted or
# hit a network error before we took it: see accept(2), "Error handling"):
# take the next one at once.
_SKIP = frozenset(
    getattr(errno, name) for name in (
        "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN",
        "ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EPERM",
        "ECONNRESET")
    if hasattr(errno, name))
# Any other failure pauses the loop, EMFILE, ENFILE, ENOBUFS and ENOMEM
# above all: out of descriptors or memory the connection stays queued and
# the listener stays readable, so retrying at once would spin.  The pause
# lasts until a connection ends or the back-off (doubling up to a second)
# runs out.  Only a listener that is gone ends the loop.
_FATAL = frozenset((errno.EBADF, errno.EINVAL, errno.ENOTSOCK))
_BACKOFF_FIRST = 0.005
_BACKOFF_MAX = 1.0
# An idle handler thread waits this long for a new connection, then ends.
_IDLE_SECONDS = 30.0
# After the grace period of shutdown(), how long to wait for handlers
# whose connections were shut down in both directions.
_FORCE_WAIT = 2.0

_NEW, _SERVING, _STOPPING, _CLOSED = range(4)


class Server:
    """A threaded stream server: ``handler(stream, address)`` per connection.

    Binds and listens at construction, so ``address`` is known at once.
    ``serve_forever()`` runs the accept loop in the calling thread,
    ``start()`` in a background thread; ``shutdown()`` stops it.  Each
    connection's handler runs on its own thread; the stream is closed when
    the handler returns.  A handler that raises is logged (logger
    ``fastsock``) and the server goes on.

    ``max_connections`` caps the open connections: at the cap the server
    stops accepting (new clients wait in the listen backlog) until one
    ends.  ``allow`` admits peers by network list or by a callable
    ``allow(address) -> bool``; a refused peer is closed before any handler
    runs and counted in ``refused``.  ``timeout`` is each connection's
    stream timeout (None: blocking), so that a client that sends nothing
    cannot hold a thread forever.
    """

    def __init__(self, address: Address, handler: Handler, *, backlog: int = 128,
                 reuse_port: bool = False, max_connections: Optional[int] = None,
                 buffer_size: int = 65536, allow: Allow = None,
                 dualstack: bool = False, timeout: Optional[float] = None) -> None:
        # Every argument is checked before binding, so a bad one leaves
        # nothing open.
        if not callable(handler):
            raise TypeError("handler must be callable")
        check_int("backlog", backlog, -2**31, 2**31 - 1)
        if max_connections is not None:
            check_int("max_connections", max_connections, 1)
        check_stream_options(buffer_size, 0)
        check_timeout(timeout)
        if timeout is not None and timeout <= 0:
            # 0 would make each handler's stream non-blocking.
            raise ValueError("timeout must be positive or None")
        self._allow = make_filter(allow, -1 if is_unix_address(address) else _stdlib.AF_INET)
        self._handler = handler
        self._max = max_connections
        self._buffer_size = buffer_size
        self._timeout = timeout
        self._backlog = max(backlog, 1)
        # The accept loop sleeps in select() on the listener and this pair;
        # a byte on it wakes the loop for shutdown or when it paused.
        self._wake_r, self._wake_w = _stdlib.socketpair()
        try:
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._listener = listen(address, backlog=backlog,
                                    reuse_port=reuse_port, dualstack=dualstack)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise
        self._sock = self._listener.socket
        self._sock.settimeout(0)      # the loop waits in select(), see below
        self._address = self._listener.address
        self._family = int(self._sock.family)
        self._cond = threading.Condition(threading.Lock())
        self._state = _NEW
        self._count = 0                  # connections open (handlers running)
        self._refused = 0
        self._paused = False             # accept loop waits for a connection to end
        self._open: dict = {}            # Stream -> None, for shutdown
        self._idle = 0                   # handler threads waiting for work
        self._workers: set = set()
        self._jobs: SimpleQueue = SimpleQueue()
        self._loop_thread: Optional[int] = None
        self._loop_done = threading.Event()
        self._loop_done.set()

    # ---- properties ----------------------------------------------------

    @property
    def address(self) -> Any:
        """The bound address (with the real port when 0 was asked for)."""
        return self._address

    @property
    def connections(self) -> int:
        """Connections open now (handlers running)."""
        return self._count

    @property
    def refused(self) -> int:
        """Peers refused by ``allow`` so far."""
        return self._refused

    def fileno(self) -> int:
        return self._sock.fileno()

    def __repr__(self) -> str:
        state = ("new", "serving", "stopping", "closed")[self._state]
        return (f"<fastsock.Server {state} address={self._address!r} "
                f"connections={self._count}>")

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- running -------------------------------------------------------

    def serve_forever(self) -> None:
        """Accepts connections until ``shutdown()``."""
        with self._cond:
            self._begin()
        self._loop_thread = threading.get_ident()
        try:
            self._accept_loop()
        finally:
            self._loop_thread = None
            self._loop_done.set()

    def start(self) -> "Server":
        """Serves in a background thread; returns once it is accepting."""
        with self._cond:
            self._begin()
        ready = threading.Event()

        def run() -> None:
            self._loop_thread = threading.get_ident()
            ready.set()
            try:
                self._accept_loop()
            except BaseException:
                log.exception("fastsock.Server: accept loop failed")
            finally:
                self._loop_thread = None
                self._loop_done.set()

        thread = threading.Thread(target=run, daemon=True,
                                  name=f"fastsock.Server {self._address!r}")
        thread.start()
        ready.wait()
        return self

    def _begin(self) -> None:
        if self._state != _NEW:
            raise RuntimeError("the server is already serving or was shut down")
        self._state = _SERVING
        self._loop_done.clear()

    def _accept_loop(self) -> None:
        accept = self._sock.accept
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._wake_r, selectors.EVENT_READ)
            sel.register(self._sock, selectors.EVENT_READ)
            backoff = 0.0
            while self._state == _SERVING:
                # Try first, wait only when nothing is queued.
                try:
                    accepted = accept()
                except BlockingIOError:
                    # Waits below, out of this handler: a Ctrl-C there must
                    # not show up chained to this BlockingIOError.
                    accepted = None
                except OSError as exc:
                    if self._state != _SERVING:
                        break
                    if exc.errno in _SKIP:
                        continue
                    if exc.errno in _FATAL:
                        raise
                    backoff = min(backoff * 2, _BACKOFF_MAX) or _BACKOFF_FIRST
                    if backoff == _BACKOFF_FIRST:
                        log.warning("fastsock.Server %r: cannot accept (%s); "
                                    "pausing until a connection ends",
                                    self._address, exc)
                    self._pause(sel, backoff)
                    continue
                if accepted is None:
                    self._wait(sel, None)
                    continue
                conn, addr = accepted
                backoff = 0.0
                if self._dispatch(conn, addr):
                    self._pause(sel, None)
        finally:
            sel.close()

    def _wait(self, sel: selectors.BaseSelector, timeout: Optional[float]) -> None:
        for key, _ in sel.select(timeout):
            if key.fileobj is self._wake_r:
                try:
                    while self._wake_r.recv(512):
                        pass
                except OSError:
                    pass

    def _pause(self, sel: selectors.BaseSelector, timeout: Optional[float]) -> None:
        """Stops watching the listener until a connection ends (at the
        connection cap: timeout None) or the back-off runs out."""
        sel.unregister(self._sock)
        try:
            with self._cond:
                self._paused = True
            while self._state == _SERVING:
                if timeout is None and (self._max is None or self._count < self._max):
                    break
                self._wait(sel, timeout)
                if timeout is not None:
                    break
        finally:
            with self._cond:
                self._paused = False
            sel.register(self._sock, selectors.EVENT_READ)

    def _dispatch(self, conn: Socket, addr: Any) -> bool:
        """Hands conn to a handler thread; true if now at the cap."""
        if self._allow is not None and not self._admitted(addr):
            self._refused += 1
            conn.close()
            log.debug("fastsock.Server %r: refused %r", self._address, addr)
            return False
        with self._cond:
            self._count += 1
            full = self._max is not None and self._count >= self._max
            if self._idle:
                self._idle -= 1
                self._jobs.put((conn, addr))
                return full
        thread = threading.Thread(target=self._work, args=(conn, addr),
                                  daemon=True, name="fastsock.Server handler")
        with self._cond:
            self._workers.add(thread)
        try:
            thread.start()
        except RuntimeError:
            # Out of threads: drop this connection, keep serving the rest.
            log.exception("fastsock.Server: cannot start a handler thread")
            with self._cond:
                self._workers.discard(thread)
            conn.close()
            self._ended()
        return full

    def _admitted(self, addr: Any) -> bool:
        try:
            return bool(self._allow(addr))   # type: ignore[misc]
        except Exception:
            log.exception("fastsock.Server: allow(%r) raised; refusing", addr)
            return False

    # ---- handler threads -----------------------------------------------

    def _work(self, conn: Optional[Socket], addr: Any) -> None:
        try:
            while conn is not None:
                self._serve(conn, addr)
                with self._cond:
                    if self._state >= _STOPPING:
                        return
                    self._idle += 1
                while True:
                    try:
                        job = self._jobs.get(timeout=_IDLE_SECONDS)
                        break
                    except Empty:
                        with self._cond:
                            # Idle count above the queued jobs: one of the
                            # idle threads may go, and it is this one.
                            if self._idle > 0:
                                self._idle -= 1
                                return
                conn, addr = job if job is not None else (None, None)
        finally:
            with self._cond:
                self._workers.discard(threading.current_thread())
                self._cond.notify_all()

    def _serve(self, conn: Socket, addr: Any) -> None:
        stream = None
        try:
            # Replies are small and latency matters (as Listener does;
            # where accepted sockets inherit it, the listener has it).
            # A peer gone already is the handler's to find out.
            if self._listener._nodelay_each:
                try:
                    set_nodelay(conn, self._family)
                except OSError:
                    pass
            if self._timeout is not None:
                conn.settimeout(self._timeout)
            stream = Stream(conn, buffer_size=self._buffer_size)
            with self._cond:
                self._open[stream] = None
                if self._state >= _STOPPING:
                    # Accepted before shutdown began: a request already
                    # here is served, else its first read ends at once.
                    stream.drain()
            self._handler(stream, addr)
        except BaseException as exc:
            if self._state >= _STOPPING and isinstance(exc, (OSError, EOFError)):
                log.debug("fastsock.Server: handler for %r ended by shutdown: %r",
                          addr, exc)
            elif isinstance(exc, TimeoutError) and self._timeout is not None:
                log.info("fastsock.Server: connection from %r timed out", addr)
            else:
                log.exception("fastsock.Server: handler for %r raised", addr)
        finally:
            if stream is not None:
                with self._cond:
                    self._open.pop(stream, None)
                _close_quietly(stream)
            else:
                conn.close()
            self._ended()

    def _ended(self) -> None:
        with self._cond:
            self._count -= 1
            wake = self._paused
            self._cond.notify_all()
        if wake:
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass      # full (a wake-up is pending anyway) or closed

    # ---- shutdown --------------------------------------------------------

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stops the server gracefully and waits for its handlers.

        Stops accepting, hands the connections still queued in the
        listener to handlers (their requests may be there already), and
        closes the listener.  Each open connection is
        drained (``Stream.drain()``): a handler waiting in a read at a
        message boundary, with nothing of the next message received, gets
        end-of-file at once; every other handler finishes its message and
        its reply, and its next read at a boundary gets end-of-file.  Waits
        up to ``timeout`` seconds (None: as long as it takes) for the
        handlers to return; connections whose handlers are still running
        after that are shut down in both directions.  Calling it again, or
        from a handler, is allowed.
        """
        with self._cond:
            if self._state == _CLOSED:
                return
            was_serving = self._state == _SERVING
            self._state = _STOPPING
        self._wake()
        me = threading.current_thread()
        if was_serving and self._loop_thread != threading.get_ident():
            self._loop_done.wait()
        if was_serving:
            self._take_backlog()
        self._listener.close()        # and removes its AF_UNIX socket file
        mine = 1 if me in self._workers else 0
        with self._cond:
            # Under the lock: a handler starting now drains its own stream
            # (see _serve), so none is missed.
            for stream in self._open:
                stream.drain()
            if not self._cond.wait_for(lambda: self._count <= mine, timeout):
                log.warning("fastsock.Server %r: %d handlers still running "
                            "after %s s; shutting their connections down",
                            self._address, self._count - mine, timeout)
                for stream in self._open:
                    _shutdown_quietly(stream, _stdlib.SHUT_RDWR)
                self._cond.wait_for(lambda: self._count <= mine, _FORCE_WAIT)
            # Idle handler threads wait on the queue: one None each.
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0
            self._cond.wait_for(lambda: not (self._workers - {me}), _FORCE_WAIT)
            self._state = _CLOSED
        self._wake_r.close()
        self._wake_w.close()

    def _take_backlog(self) -> None:
        """Hands the connections still queued in the listener to handlers:
        closing the listener would reset them, and their clients may have
        sent a request in full already.  Each handler starts drained (see
        _serve): it answers a request that is there and ends at once
        otherwise.  At most one backlog's worth, so a flood cannot hold
        shutdown here."""
        for _ in range(self._backlog):
            try:
                conn, addr = self._sock.accept()
            except OSError:
                return
            self._dispatch(conn, addr)

    def server_close(self) -> None:
        """socketserver's name for closing: the same as shutdown()."""
        self.shutdown()


def _shutdown_quietly(stream: Stream, how: int) -> None:
    # The handler may have closed its stream already: nothing to wake then.
    try:
        stream.socket.shutdown(how)
    except OSError:
        pass


def _close_quietly(stream: Stream) -> None:
    # close() flushes: the peer may be gone, which is not the handler's fault.
    try:
        stream.close()
    except OSError as exc:
        log.debug("fastsock.Server: closing a stream: %r", exc)
