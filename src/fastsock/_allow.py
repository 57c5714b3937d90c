"""Server's and EventServer's `allow=`: who may connect, as a callable
``allow(address) -> bool`` made once at construction."""
from __future__ import annotations

import ipaddress
import socket as _stdlib
from typing import Any, Callable, Iterable, Optional, Union

Network = Union[str, ipaddress.IPv4Network, ipaddress.IPv6Network,
                ipaddress.IPv4Address, ipaddress.IPv6Address,
                ipaddress.IPv4Interface, ipaddress.IPv6Interface]
Allow = Union[None, Network, Iterable[Network], Callable[[Any], bool]]


class Networks:
    """allow= as a list of networks: admits a peer whose IP is in one."""

    __slots__ = ("v4", "v6")

    def __init__(self, items: Iterable[Network]) -> None:
        self.v4: list = []
        self.v6: list = []
        for item in items:
            net = network(item)
            (self.v4 if net.version == 4 else self.v6).append(net)

    def __call__(self, address: Any) -> bool:
        host = address[0].partition("%")[0]     # drop an IPv6 scope
        ip = ipaddress.ip_address(host)
        if ip.version == 6:
            if any(ip in net for net in self.v6):
                return True
            # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
            mapped = ip.ipv4_mapped
            return mapped is not None and any(mapped in net for net in self.v4)
        return any(ip in net for net in self.v4)


ONE_NETWORK = (str, ipaddress.IPv4Network, ipaddress.IPv6Network,
                ipaddress.IPv4Address, ipaddress.IPv6Address)


def network(item: Network) -> Union[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return item
    if isinstance(item, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return item.network
    if isinstance(item, (ipaddress.IPv4Address, ipaddress.IPv6Address, str)):
        # Strict: "10.0.0.1/8" has host bits set and is refused rather than
        # silently widened to a network the caller may not have meant.
        return ipaddress.ip_network(item)
    raise TypeError(f"allow: expected a network, an address or a string, "
                    f"got {type(item).__name__}")


def make_filter(allow: Allow, family: int) -> Optional[Callable[[Any], bool]]:
    if allow is None:
        return None
    if callable(allow):
        return allow
    if isinstance(allow, ONE_NETWORK):
        allow = (allow,)
    if family not in (_stdlib.AF_INET, _stdlib.AF_INET6):
        raise ValueError("allow: a network list needs a TCP address")
    try:
        items = list(allow)   # type: ignore[arg-type]
    except TypeError:
        raise TypeError("allow must be None, networks or a callable") from None
    return Networks(items)
