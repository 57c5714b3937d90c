"""fastsock: fast, friendly sockets with a C hot path."""
from fastsock._socket import Socket, socketpair as _socket_pair
from fastsock.datagram import DatagramBatch, udp
from fastsock.errors import Error, FrameTooLargeError, IncompleteReadError, LimitOverrunError

__version__ = "0.1.0"

__all__ = [
    "Socket",
    "DatagramBatch",
    "udp",
    "Error",
    "FrameTooLargeError",
    "IncompleteReadError",
    "LimitOverrunError",
]
