"""Helpers shared by the Socket tests: connected pairs built with any socket
class (socket.socket or fastsock.Socket), and the descriptor listing that
the leak guard in conftest.py uses."""
import contextlib
import os
import shutil
import signal
import socket
import threading
import time

import pytest

# Every socket a test creates gets this timeout unless the test is about
# blocking mode, so that a bug fails the test instead of hanging the suite.
GUARD = 10.0


def has_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = has_ipv6()
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback here")


def need_tool(command, package=None):
    """The path of an outside program a test runs; a clear failure (never a
    skip) when it is missing, naming how to install it."""
    path = shutil.which(command)
    spec = command if package in (None, command) else f"{command}={package}"
    assert path, (f"{command} is missing: sh tests/install_tools.sh {spec} "
                  f"installs it from Debian's packages (.ci/run does)")
    return path


def open_fds():
    """{(descriptor, what it points at)} of this process."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add((int(fd), os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:         # the listing's own descriptor, now closed
            pass
    return fds


def connected_pair(cls, family, address, timeout=GUARD):
    """(client, server): a stream listener made with `cls` bound at
    `address`, a client connected to it and the accepted socket."""
    with cls(family, socket.SOCK_STREAM) as listener:
        listener.settimeout(timeout)
        listener.bind(address)
        listener.listen()
        client = cls(family, socket.SOCK_STREAM)
        try:
            client.settimeout(timeout)
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    server.settimeout(timeout)
    return client, server


def tcp_pair(cls, family=socket.AF_INET, timeout=GUARD):
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    return connected_pair(cls, family, (host, 0), timeout)


def unix_pair(cls, address, timeout=GUARD):
    return connected_pair(cls, socket.AF_UNIX, address, timeout)


def udp_pair(cls, family=socket.AF_INET, timeout=GUARD):
    """Two bound datagram sockets (not connected)."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    a = cls(family, socket.SOCK_DGRAM)
    b = cls(family, socket.SOCK_DGRAM)
    for s in (a, b):
        s.settimeout(timeout)
        s.bind((host, 0))
    return a, b


def closing(*socks):
    """Context manager closing every socket on exit."""
    class _Closing:
        def __enter__(self):
            return socks

        def __exit__(self, *exc):
            for s in socks:
                s.close()
    return _Closing()


class Reader(threading.Thread):
    """Reads `sock` to EOF in the background, `chunk` bytes every `pause`
    seconds (a slow peer), into `self.data`."""

    def __init__(self, sock, chunk=65536, pause=0.0):
        super().__init__(daemon=True)
        self.sock, self.chunk, self.pause = sock, chunk, pause
        self.data = bytearray()
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                got = self.sock.recv(self.chunk)
                if not got:
                    return
                self.data += got
                if self.pause:
                    self.stop.wait(self.pause)
        except BaseException as e:      # handed to the test thread
            self.error = e

    def result(self, timeout=GUARD):
        self.join(timeout)
        assert not self.is_alive(), "reader thread did not finish"
        if self.error is not None:
            raise self.error
        return bytes(self.data)


def slow_peer(sender, receiver):
    """Makes `receiver` drain 4 KiB every 20 ms (200 KB/s) through a small
    send buffer on `sender`: each send makes progress, the whole takes long.
    (A tiny SO_RCVBUF would stall TCP itself in zero-window probes.)"""
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    reader = Reader(receiver, chunk=4096, pause=0.02)
    reader.start()
    return reader


def times_out_whole(sender, reader, timeout, send, payload):
    """Runs send() with `timeout` against a slow_peer() reader; checks that
    TimeoutError ends the whole call after about `timeout` and that what
    arrived is a prefix of `payload`; returns the bytes that arrived."""
    sender.settimeout(timeout)
    start = time.monotonic()
    try:
        send()
    except TimeoutError:
        pass
    else:
        raise AssertionError("the send did not time out")
    elapsed = time.monotonic() - start
    assert timeout * 0.9 <= elapsed < timeout + 2.5, elapsed
    reader.stop.set()
    sender.shutdown(socket.SHUT_WR)
    data = reader.result()
    assert 0 < len(data) < len(payload)
    assert data == payload[:len(data)]          # in order, nothing lost
    return data


class Interrupted(Exception):
    """Raised by the signal handler of signal_raises()."""


@contextlib.contextmanager
def on_alarm(delay, handler, interval=0.0):
    """Runs `handler` on SIGALRM `delay` seconds from now (main thread), and
    every `interval` seconds after that if not 0."""
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, delay, interval)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def signal_raises(delay):
    """A signal in `delay` seconds whose handler raises Interrupted.

    Sent again every `delay` seconds until the handler runs: on a busy
    machine the first one can land before the call under test blocks, and
    Python then runs its handler only at a later bytecode, after that call,
    which would block for ever.  The next signal interrupts it (EINTR)."""
    def handler(signum, frame):
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise Interrupted()
    return on_alarm(delay, handler, interval=delay)
