"""fastsock: fast, friendly sockets with a C hot path."""
from fastsock._socket import Socket, socketpair as _socket_pair
from fastsock.errors import Error, FrameTooLargeError, IncompleteReadError, LimitOverrunError
from fastsock._stream import Stream, FrameIterator
from fastsock.client import Listener, connect, listen, socketpair
from fastsock.server import Server

__version__ = "0.1.0"

__all__ = [
    "Socket",
    "Stream",
    "FrameIterator",
    "Listener",
    "connect",
    "listen",
    "socketpair",
    "Server",
    "Error",
    "FrameTooLargeError",
    "IncompleteReadError",
    "LimitOverrunError",
]
