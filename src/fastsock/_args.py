"""The facade's argument checks, shared by client, server, event_server and
datagram: each raises what the compiled call would raise, but before
anything is resolved, bound or connected.  Also what kind an address is,
and the one option set on every TCP connection."""
from __future__ import annotations

import os
import socket as _stdlib
from typing import Any, Optional, Tuple

from fastsock._socket import Socket, _PortError

# Stream's own limits (see Stream.__init__).
MIN_BUFFER = 16
MAX_HEADER = 2**32 - 1
TCP_FAMILIES = (_stdlib.AF_INET, _stdlib.AF_INET6)


def is_unix_address(address: object) -> bool:
    """An AF_UNIX path (str, bytes-like or os.PathLike), as Socket takes
    one; anything else must be an IP address tuple."""
    return isinstance(address, (str, bytes, bytearray, os.PathLike))


def split_address(address: object) -> Tuple[Any, int]:
    """(host, port) of an IP address tuple, both checked."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(
            "address must be a (host, port) tuple or an AF_UNIX path, not "
            f"{address!r}")
    host, port = address[0], address[1]
    if host is not None and not isinstance(host, (str, bytes, bytearray)):
        raise TypeError(f"host must be a str, bytes or None, not "
                        f"{type(host).__name__!r}")
    check_port(port)
    return host, port


def check_port(port: object) -> None:
    # The errors of Socket.connect/bind (a _PortError is the stdlib's
    # OverflowError and a ValueError), raised before getaddrinfo.
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, not {type(port).__name__!r}")
    if not 0 <= port <= 0xFFFF:
        raise _PortError("port must be 0-65535.")


def check_address(address: object) -> None:
    """An AF_UNIX path, or a (host, port[, ...]) tuple with its parts
    checked."""
    if not is_unix_address(address):
        split_address(address)


def check_timeout(timeout: object) -> None:
    # The errors of Socket.settimeout().
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("Timeout value must be int, float or None")
    if timeout != timeout:
        raise ValueError("Invalid value NaN (not a number)")
    if timeout < 0:
        raise ValueError("Timeout value out of range")


def check_int(name: str, value: object, low: int, high: Optional[int] = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"{low} to {high}"
        raise ValueError(f"{name} must be {bound}")


def check_stream_options(buffer_size: object, max_frame: object) -> None:
    """The Stream options, checked before a socket is bound or connected,
    so that no connection is made only to fail."""
    check_int("buffer_size", buffer_size, MIN_BUFFER)
    check_int("max_frame", max_frame, 0, MAX_HEADER)


def set_nodelay(sock: Socket, family: Optional[int] = None) -> None:
    """TCP_NODELAY on a TCP socket; `family`, when the caller knows it,
    saves reading sock.family (which builds an enum member each time)."""
    if family is None:
        family = int(sock.family)
    if family in TCP_FAMILIES:
        sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)
