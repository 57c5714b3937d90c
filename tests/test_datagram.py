"""fastsock.datagram: udp() and the package's datagram exports."""
import gc
import os
import socket
import warnings

import pytest

import fastsock
from fastsock import DatagramBatch, Socket, udp

WAIT = 5.0


@pytest.fixture
def closing():
    socks = []
    yield socks.append
    for sock in socks:
        sock.close()


def roundtrip(tx, rx, payload=b"ping"):
    tx.settimeout(WAIT)
    rx.settimeout(WAIT)
    tx.send_batch([payload])
    batch = DatagramBatch(2, 64)
    assert rx.recv_batch(batch) == 1
    return bytes(batch[0]), batch.address(0)


def test_exports():
    assert fastsock.udp is udp
    assert fastsock.DatagramBatch is DatagramBatch
    assert {"udp", "DatagramBatch"} <= set(fastsock.__all__)


def test_unbound(closing):
    sock = udp()
    closing(sock)
    assert isinstance(sock, Socket)
    assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_DGRAM)
    assert sock.getsockname() == ("0.0.0.0", 0)


def test_bound_ipv4(closing):
    sock = udp(("127.0.0.1", 0))
    closing(sock)
    host, port = sock.getsockname()
    assert host == "127.0.0.1" and port > 0


def test_bound_and_connected_ipv6(closing):
    rx = udp(("::1", 0))
    closing(rx)
    tx = udp(connect=rx.getsockname())
    closing(tx)
    assert tx.family == rx.family == socket.AF_INET6
    assert tx.getpeername() == rx.getsockname()
    data, sender = roundtrip(tx, rx, b"six")
    assert data == b"six" and sender == tx.getsockname()


def test_ipv6_four_tuple(closing):
    sock = udp(("::1", 0, 0, 0))
    closing(sock)
    assert sock.family == socket.AF_INET6


def test_bound_and_connected_together(closing):
    rx = udp(("127.0.0.1", 0))
    closing(rx)
    tx = udp(("127.0.0.1", 0), connect=rx.getsockname())
    closing(tx)
    assert tx.getpeername() == rx.getsockname()
    assert roundtrip(tx, rx) == (b"ping", tx.getsockname())
    # The connected receiver only hears its peer.
    rx2 = udp(("127.0.0.1", 0), connect=tx.getsockname())
    closing(rx2)
    assert rx2.getpeername() == tx.getsockname()


def test_explicit_family(closing):
    sock = udp(family=socket.AF_INET6)
    closing(sock)
    assert sock.family == socket.AF_INET6
    any6 = udp(("", 0), family=socket.AF_INET6)
    closing(any6)
    assert any6.getsockname()[0] == "::"


def test_any_address_defaults_to_ipv4(closing):
    sock = udp(("", 0))
    closing(sock)
    assert sock.family == socket.AF_INET and sock.getsockname()[0] == "0.0.0.0"


def test_name_is_resolved_once_in_its_family(closing):
    family, *_, sockaddr = socket.getaddrinfo("localhost", 0, 0,
                                              socket.SOCK_DGRAM)[0]
    rx = udp(("localhost", 0))
    closing(rx)
    assert rx.family == family
    assert rx.getsockname()[0] == sockaddr[0]
    tx = udp(connect=("localhost", rx.getsockname()[1]))
    closing(tx)
    assert tx.family == family
    assert roundtrip(tx, rx)[0] == b"ping"


def test_numeric_bind_address_decides_family_of_named_peer(closing):
    rx = udp(("127.0.0.1", 0))
    closing(rx)
    tx = udp(("127.0.0.1", 0), connect=("localhost", rx.getsockname()[1]))
    closing(tx)
    assert tx.family == socket.AF_INET
    assert tx.getpeername() == rx.getsockname()


def test_unix_path(tmp_path, closing):
    path = os.fspath(tmp_path / "rx.sock")
    rx = udp(path)
    closing(rx)
    tx = udp(tmp_path / "tx.sock", connect=path)
    closing(tx)
    assert rx.family == socket.AF_UNIX and rx.type == socket.SOCK_DGRAM
    assert roundtrip(tx, rx, b"local") == (b"local", os.fspath(tmp_path / "tx.sock"))


def test_a_path_is_any_form_connect_takes(tmp_path, closing):
    # str, bytes, bytearray and os.PathLike name AF_UNIX paths here as in
    # fastsock.connect() and listen() (one test of the address kind).
    raw = os.fsencode(tmp_path / "b.sock")
    for address in (os.fspath(tmp_path / "s.sock"), raw, bytearray(raw[:-6] + b"a.sock"),
                    tmp_path / "p.sock"):
        sock = udp(address)
        closing(sock)
        assert sock.family == socket.AF_UNIX
        want = bytes(address) if isinstance(address, bytearray) else os.fsencode(address)
        assert os.fsencode(sock.getsockname()) == want



@pytest.mark.parametrize("address, exc", [
    (["127.0.0.1", 0], TypeError),
    (("127.0.0.1",), TypeError),
    (12, TypeError),
    (("127.0.0.1", 70000), OverflowError),
    (("127.0.0.1", "port"), TypeError),
])
def test_bad_address(address, exc):
    with pytest.raises(exc):
        udp(address)


def test_failure_closes_the_socket():
    # Family mismatch: an IPv4 socket cannot connect to an IPv6 peer.  The
    # socket made for it must be closed, not left to the collector.
    gc.collect()        # what earlier tests left is not this test's doing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError):
            udp(("127.0.0.1", 0), connect=("::1", 9))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
