"""fastsock: fast, friendly sockets with a C hot path."""
from fastsock._socket import Socket
from fastsock._stream import FrameIterator, Stream
from fastsock.client import Listener, connect, listen, socketpair
from fastsock.datagram import DatagramBatch, udp
from fastsock.errors import Error, FrameTooLargeError, IncompleteReadError, LimitOverrunError
from fastsock.server import Server
from fastsock.event_server import EventConnection, EventServer

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
    "EventServer",
    "EventConnection",
    "DatagramBatch",
    "udp",
    "Error",
    "FrameTooLargeError",
    "IncompleteReadError",
    "LimitOverrunError",
]
