"""fastsock: fast, friendly sockets with a C hot path."""
from fastsock._socket import Socket, socketpair as _socket_pair
from fastsock.errors import Error, FrameTooLargeError, IncompleteReadError, LimitOverrunError
from fastsock.server import Server

__version__ = "0.1.0"

__all__ = [
    "Socket",
    "Server",
    "Error",
    "FrameTooLargeError",
    "IncompleteReadError",
    "LimitOverrunError",
]
