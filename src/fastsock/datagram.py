"""Datagram sockets: ``udp()``, and ``DatagramBatch`` for ``recv_batch``.

    sock = fastsock.udp(("127.0.0.1", 0))
    batch = fastsock.DatagramBatch(64, 2048)
    n = sock.recv_batch(batch)
    for data, address in batch:
        ...
"""
from __future__ import annotations

import os
import socket as _stdlib
from typing import Any, Optional, Tuple, Union

from fastsock._batch import DatagramBatch
from fastsock._socket import Socket
from fastsock._args import check_port, is_unix_address

__all__ = ["DatagramBatch", "udp"]

#: (host, port) for IPv4, (host, port[, flowinfo[, scope_id]]) for IPv6, or
#: an AF_UNIX path.
Address = Union[Tuple[Any, ...], str, bytes, "os.PathLike[Any]"]

_AF_UNIX: Optional[int] = getattr(_stdlib, "AF_UNIX", None)
# Hosts that Socket.bind/connect understand without a lookup and that say
# nothing about the family.
_ANY_FAMILY_HOSTS = ("", b"", "<broadcast>", b"<broadcast>")


def udp(
    address: Optional[Address] = None,
    *,
    family: Optional[int] = None,
    connect: Optional[Address] = None,
) -> Socket:
    """A datagram socket, bound to ``address`` if given, connected to
    ``connect`` if given.

    ``family=None`` takes the family from the addresses (``connect`` looked
    at first): AF_UNIX for a path, the family of a numeric host, or else of
    the first address getaddrinfo gives for a name; AF_INET when neither
    says.  A name is resolved once, in that family.
    """
    # Checked before anything is resolved, bound or connected.
    if family is not None and (not isinstance(family, int)
                               or isinstance(family, bool)):
        raise TypeError(f"family must be an int or None, not "
                        f"{type(family).__name__!r}")
    for given in (address, connect):
        if isinstance(given, tuple) and len(given) >= 2:
            check_port(given[1])
    if family is None:
        family = _family_of(connect, address)
    bind_to = _resolved(address, family)
    connect_to = _resolved(connect, family)
    sock = Socket(family, _stdlib.SOCK_DGRAM)
    try:
        if bind_to is not None:
            sock.bind(bind_to)
        if connect_to is not None:
            sock.connect(connect_to)
    except BaseException:
        sock.close()
        raise
    return sock


def _numeric_family(host: object) -> Optional[int]:
    """AF_INET or AF_INET6 for a numeric host, else None."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return None
    for family, text in ((_stdlib.AF_INET, host),
                         (_stdlib.AF_INET6, host.partition("%")[0])):
        try:
            _stdlib.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        return family
    return None


def _family_of(*addresses: Optional[Address]) -> int:
    names = []
    for address in addresses:
        if address is None:
            continue
        if is_unix_address(address):
            if _AF_UNIX is None:
                raise ValueError("AF_UNIX paths are not supported here")
            return _AF_UNIX
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError(
                "a datagram address is (host, port), an IPv6 tuple or a "
                f"path, not {address!r}")
        if len(address) > 2:
            return _stdlib.AF_INET6
        found = _numeric_family(address[0])
        if found is not None:
            return found
        if address[0] not in _ANY_FAMILY_HOSTS:
            names.append(address)
    if names:
        host, port = names[0]
        return _stdlib.getaddrinfo(host, port, 0, _stdlib.SOCK_DGRAM)[0][0]
    return _stdlib.AF_INET


def _resolved(address: Optional[Address], family: int) -> Optional[Address]:
    """The address with a host name resolved (in `family`), so that bind
    and connect do not look it up again."""
    if (address is None or is_unix_address(address) or not isinstance(address, tuple)
            or len(address) != 2 or address[0] in _ANY_FAMILY_HOSTS
            or _numeric_family(address[0]) is not None
            or family not in (_stdlib.AF_INET, _stdlib.AF_INET6)):
        return address
    host, port = address
    return _stdlib.getaddrinfo(host, port, family, _stdlib.SOCK_DGRAM)[0][4]
