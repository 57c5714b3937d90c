"""fastsock.EventServer: one event loop, a callback per message.

Where ``Server`` gives each connection a thread (and pays a thread switch
per request), ``EventServer`` serves every connection from one loop in C
(``fastsock._event``): it reads, splits messages and writes replies in C
and calls ``on_message(conn, message)`` once per complete message.  This
module checks the arguments, binds, and runs the loop on a thread.
"""
from __future__ import annotations

import os
import socket as _stdlib
import threading
from typing import Any, Callable, Optional, Union

from fastsock._event import EventConnection, EventLoop
from fastsock._allow import Allow, make_filter
from fastsock._args import is_unix_address
from fastsock.client import Address, listen

__all__ = ["EventServer", "EventConnection"]

# FASTSOCK_POLLER=poll forces the portable poll() loop where the OS has a
# better one (epoll): the test suite runs the servers on both.
_BACKENDS = {"": "default", "default": "default", "epoll": "default",
             "poll": "poll"}

OnMessage = Callable[[EventConnection, bytes], object]


def _backend() -> str:
    name = os.environ.get("FASTSOCK_POLLER", "").lower()
    if name not in _BACKENDS:
        raise ValueError(f"FASTSOCK_POLLER={name!r}: expected 'poll' or 'epoll'")
    return _BACKENDS[name]


def _size(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}")
    return value


def _framing(framing: object) -> Union[str, bytes]:
    if isinstance(framing, (bytes, bytearray)):
        if not framing:
            raise ValueError("framing: an empty delimiter")
        return bytes(framing)
    if framing in ("frame", "line", "raw"):
        return framing   # type: ignore[return-value]
    raise ValueError(f"framing must be 'frame', 'line', 'raw' or a bytes "
                     f"delimiter, not {framing!r}")


class EventServer:
    """A stream server whose one event loop calls ``on_message(conn,
    message)`` per complete message; a reply returned is sent back framed
    the same way.  See API.md, "EventServer"."""

    def __init__(self, address: Address, on_message: OnMessage, *,
                 framing: Union[str, bytes] = "frame",
                 on_connect: Optional[Callable[[EventConnection], object]] = None,
                 on_close: Optional[Callable[[EventConnection, Optional[BaseException]], object]] = None,
                 backlog: int = 128, reuse_port: bool = False,
                 dualstack: bool = False, max_connections: Optional[int] = None,
                 allow: Allow = None, buffer_size: int = 65536,
                 max_frame: int = 16 * 2**20, max_line: int = 65536,
                 high_water: int = 1 << 20, low_water: int = 256 << 10,
                 max_buffer: int = 64 << 20, idle_timeout: Optional[float] = None,
                 nodelay: bool = True) -> None:
        # Every argument is checked before anything is bound.
        for name, cb in (("on_message", on_message), ("on_connect", on_connect),
                         ("on_close", on_close)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable")
        if on_message is None:
            raise TypeError("on_message must be callable")
        framing = _framing(framing)
        buffer_size = _size("buffer_size", buffer_size, 16)
        max_frame = _size("max_frame", max_frame, 0)
        if max_frame > 0xFFFFFFFF:
            raise ValueError("max_frame must fit the 4-byte header")
        max_line = _size("max_line", max_line)
        if isinstance(framing, bytes) and len(framing) > max_line:
            raise ValueError("the delimiter is longer than max_line")
        high_water = _size("high_water", high_water, 0)
        low_water = _size("low_water", low_water, 0)
        max_buffer = _size("max_buffer", max_buffer)
        if low_water > high_water:
            raise ValueError("low_water must not be above high_water")
        if high_water > max_buffer:
            raise ValueError("high_water must not be above max_buffer")
        if max_connections is not None:
            max_connections = _size("max_connections", max_connections)
        _size("backlog", backlog, 0)
        if idle_timeout is not None:
            if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
                raise TypeError("idle_timeout must be a number or None")
            if not idle_timeout > 0:
                raise ValueError("idle_timeout must be positive")
        backend = _backend()
        allow_fn = make_filter(allow, -1 if is_unix_address(address) else _stdlib.AF_INET)

        # The listener sets TCP_NODELAY once where accepted sockets inherit
        # it (Linux); the loop sets it per connection only where not.
        self._listener = listen(address, backlog=backlog, reuse_port=reuse_port,
                                dualstack=dualstack, nodelay=nodelay)
        try:
            self._address = self._listener.address
            self._loop = EventLoop(
                self._listener.socket, on_message, framing=framing,
                on_connect=on_connect, on_close=on_close, allow=allow_fn,
                buffer_size=buffer_size, max_frame=max_frame, max_line=max_line,
                high_water=high_water, low_water=low_water,
                max_buffer=max_buffer,
                max_connections=-1 if max_connections is None else max_connections,
                idle_timeout=float(idle_timeout or 0),
                nodelay=self._listener._nodelay_each,
                backend=backend)
        except BaseException:
            self._listener.close()
            raise
        self._lock = threading.Lock()
        self._started = False
        self._running = threading.Event()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ---- properties ---------------------------------------------------

    @property
    def address(self) -> Any:
        """The bound address (with the real port when 0 was asked for)."""
        return self._address

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._loop.connections

    @property
    def refused(self) -> int:
        """Peers refused by ``allow`` so far."""
        return self._loop.refused

    @property
    def backend(self) -> str:
        """The poller the loop uses: ``"epoll"``, ``"poll"`` or ``"wsapoll"``."""
        return self._loop.backend

    def fileno(self) -> int:
        """The listening socket's descriptor (-1 once closed)."""
        return self._listener.fileno()

    # ---- running --------------------------------------------------------

    def serve_forever(self) -> None:
        """Runs the loop in this thread until ``shutdown()``."""
        self._claim()
        self._serve()

    def start(self) -> "EventServer":
        """Runs the loop in a background thread; returns the server."""
        # Claimed here, not in the thread: a shutdown() racing this call
        # then stops the loop instead of leaving start() waiting for it.
        self._claim()
        self._thread = threading.Thread(target=self._serve,
                                        name="fastsock-event-loop", daemon=True)
        self._thread.start()
        self._running.wait()
        return self

    def _claim(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("the server is already running or has ended")
            self._started = True

    def _serve(self) -> None:
        self._running.set()
        try:
            self._loop.run()
        finally:
            self._listener.close()
            self._done.set()

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stops accepting and reading, handles the complete messages
        already received, sends their replies and closes each connection
        once its queue is empty; after ``timeout`` seconds aborts what is
        left.  From a callback it only begins the shutdown (the loop ends
        after the callback returns).  A reply still being computed on
        another thread is not waited for: a connection with nothing queued
        and no complete message left is closed, so finish such work (e.g.
        shut the pool down) before calling this."""
        if timeout is not None and not timeout >= 0:
            raise ValueError("timeout must be None or >= 0")
        with self._lock:
            started = self._started
            self._started = True      # a later serve_forever() is refused
        if not started:
            self._listener.close()
            self._done.set()
            return
        self._loop.request_stop(timeout)
        if self._thread is threading.current_thread() or self._loop.in_loop_thread():
            return
        self._done.wait()
        if self._thread is not None:
            self._thread.join()

    def server_close(self) -> None:
        """Closes the listener (``shutdown()`` does it too)."""
        self._listener.close()

    def __enter__(self) -> "EventServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<fastsock.EventServer {self._address!r} {self.backend}>"
