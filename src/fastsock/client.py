"""connect(), listen(), socketpair() and Listener: the typed facade that
makes Streams.  Every loop over bytes or messages is in the compiled
modules; here are only set-up calls."""
from __future__ import annotations

import os
import socket as _stdlib
import stat
import sys
from typing import Any, Iterator, List, Optional, Tuple, Union

from fastsock._args import (TCP_FAMILIES, check_address, check_int,
                            check_stream_options, check_timeout,
                            is_unix_address, split_address)
from fastsock._socket import Socket
from fastsock._socket import socketpair as _socket_pair
from fastsock._stream import Stream
from fastsock._stream import Acceptor as _Acceptor
from fastsock._stream import connect
from fastsock._stream import connect_stream as _connect_stream

__all__ = ["connect", "listen", "socketpair", "Listener"]

#: An IP address tuple, or an AF_UNIX path (a leading NUL: Linux's abstract
#: namespace).
Address = Union[Tuple[Any, ...], str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_MAX_FRAME = 16 * 2**20
_HAS_UNIX = hasattr(_stdlib, "AF_UNIX")


def _resolve(host: Any, port: int, flags: int = 0) -> List[Tuple[int, Any]]:
    """(family, sockaddr) pairs to try, in getaddrinfo's order.  A numeric
    host skips getaddrinfo (it costs a few microseconds)."""
    if isinstance(host, str) and host:
        family = _stdlib.AF_INET6 if ":" in host else _stdlib.AF_INET
        try:
            _stdlib.inet_pton(family, host)
        except (OSError, ValueError):
            pass
        else:
            return [(family, (host, port))]
    infos = _stdlib.getaddrinfo(host, port, 0, _stdlib.SOCK_STREAM, 0, flags)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


# Linux gives the sockets that a listening socket accepts its TCP_NODELAY
# (tests/test_client.py checks it): one setsockopt() per listener instead
# of one per connection.
_ACCEPT_INHERITS_NODELAY = sys.platform.startswith("linux")


def connect_by_name(address: Address, timeout: Optional[float], nodelay: bool,
                    source_address: Optional[Any], buffer_size: int,
                    max_frame: int) -> Stream:
    """connect() for a host name to resolve or an AF_UNIX path (connect()
    itself, in C, connects a numeric (host, port) in one call)."""
    # Checked before anything is resolved or connected.
    check_timeout(timeout)
    check_stream_options(buffer_size, max_frame)
    if source_address is not None:
        check_address(source_address)
    candidates: List[Tuple[int, Any]]
    if is_unix_address(address):
        candidates = [(_stdlib.AF_UNIX if _HAS_UNIX else -1, address)]
    else:
        host, port = split_address(address)
        candidates = _resolve(host, port)
    errors: List[OSError] = []
    for family, sockaddr in candidates:
        try:
            return _connect_stream(family, sockaddr, timeout, nodelay,
                                   source_address, buffer_size, max_frame)
        except OSError as exc:
            errors.append(exc)
    if not errors:
        raise OSError(f"getaddrinfo returned no address for {address!r}")
    # As socket.create_connection: the first failure is the telling one.
    raise errors[0]


class Listener(_Acceptor):
    """A listening socket whose accept() returns Streams.

    ``accept() -> (Stream, address)``; iterating yields the same pairs until
    the listener is closed.  A context manager.
    """

    __slots__ = ("_sock", "_family", "_unix", "_nodelay_each")

    def __init__(self, sock: Socket, *, buffer_size: int = 65536,
                 max_frame: int = _MAX_FRAME, nodelay: bool = True) -> None:
        if not isinstance(sock, Socket):
            raise TypeError(f"Listener needs a fastsock.Socket, not "
                            f"{type(sock).__name__!r}")
        check_stream_options(buffer_size, max_frame)
        self._sock = sock
        self._family = int(sock.family)
        # Whether each accepted socket needs TCP_NODELAY set; servers that
        # accept on this listener's socket themselves read it too.
        nodelay = nodelay and self._family in TCP_FAMILIES
        if nodelay and _ACCEPT_INHERITS_NODELAY:
            sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)
            nodelay = False
        self._nodelay_each = nodelay
        # accept() is the compiled base class's.
        _Acceptor.__init__(self, sock, nodelay, buffer_size, max_frame)
        # (path, device, inode) of a socket file we bound, to remove it at
        # close unless something else replaced it meanwhile.
        self._unix: Optional[Tuple[Any, int, int]] = None

    @property
    def address(self) -> Any:
        """The bound address (with the port chosen for port 0)."""
        return self._sock.getsockname()

    @property
    def socket(self) -> Socket:
        return self._sock

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, value: Optional[float]) -> None:
        """A timeout for accept() (None: wait forever)."""
        self._sock.settimeout(value)

    def gettimeout(self) -> Optional[float]:
        return self._sock.gettimeout()

    def close(self) -> None:
        """Stops listening (and removes the socket file it created).  On
        Linux this also wakes an accept() blocked in another thread."""
        if self._sock.fileno() >= 0:
            try:
                # close() alone leaves a blocked accept() asleep on Linux;
                # shutdown() makes it return.
                self._sock.shutdown(_stdlib.SHUT_RDWR)
            except OSError:
                pass
        self._sock.close()
        if self._unix is not None:
            path, dev, ino = self._unix
            self._unix = None
            try:
                st = os.stat(path)
                if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino):
                    os.unlink(path)
            except OSError:
                pass

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Tuple[Stream, Any]]:
        while True:
            try:
                yield self.accept()
            except OSError:
                if self.closed:
                    return
                raise

    def __repr__(self) -> str:
        if self.closed:
            return "<fastsock.Listener [closed]>"
        return f"<fastsock.Listener {self.address!r}>"


def listen(address: Address, *, backlog: int = 128, reuse_port: bool = False,
           dualstack: bool = False, buffer_size: int = 65536,
           max_frame: int = _MAX_FRAME, nodelay: bool = True) -> Listener:
    """A Listener bound to `address`: (host, port) (port 0 picks a free
    port, host "" every interface) or an AF_UNIX path.  `dualstack` listens
    on IPv6 and IPv4 with one socket; `reuse_port` sets SO_REUSEPORT."""
    check_int("backlog", backlog, -2**31, 2**31 - 1)
    check_stream_options(buffer_size, max_frame)
    sockaddr: Any
    if is_unix_address(address):
        family, sockaddr = (_stdlib.AF_UNIX if _HAS_UNIX else -1), address
    else:
        host, port = split_address(address)
        if dualstack:
            if not _stdlib.has_dualstack_ipv6():
                raise ValueError("dualstack (IPV6_V6ONLY=0) is not supported here")
            family, sockaddr = _stdlib.AF_INET6, (host or "::", port)
        elif host in ("", None):
            family, sockaddr = _stdlib.AF_INET, ("", port)
        else:
            family, sockaddr = _resolve(host, port, _stdlib.AI_PASSIVE)[0]
    sock = Socket(family, _stdlib.SOCK_STREAM)
    try:
        if family != getattr(_stdlib, "AF_UNIX", None):
            if os.name == "posix":
                # Restart without waiting for TIME_WAIT, as socketserver does
                # (on Windows SO_REUSEADDR would let others steal the port).
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEADDR, 1)
            if family == _stdlib.AF_INET6:
                sock.setsockopt(_stdlib.IPPROTO_IPV6, _stdlib.IPV6_V6ONLY,
                                0 if dualstack else 1)
        if reuse_port:
            if not hasattr(_stdlib, "SO_REUSEPORT"):
                raise ValueError("reuse_port is not supported on this platform")
            sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        listener = Listener(sock, buffer_size=buffer_size, max_frame=max_frame,
                            nodelay=nodelay)
        if family == getattr(_stdlib, "AF_UNIX", None):
            path = os.fsencode(sockaddr)
            if path and not path.startswith(b"\0"):
                st = os.stat(path)
                listener._unix = (path, st.st_dev, st.st_ino)
        return listener
    except BaseException:
        sock.close()
        raise


def socketpair(*, buffer_size: int = 65536,
               max_frame: int = _MAX_FRAME) -> Tuple[Stream, Stream]:
    """Two connected Streams (AF_UNIX where the OS has it, else loopback
    TCP)."""
    check_stream_options(buffer_size, max_frame)
    a, b = _socket_pair()
    try:
        return (Stream(a, buffer_size=buffer_size, max_frame=max_frame),
                Stream(b, buffer_size=buffer_size, max_frame=max_frame))
    except BaseException:
        a.close()
        b.close()
        raise
