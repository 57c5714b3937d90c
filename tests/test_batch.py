"""fastsock._batch: DatagramBatch, Socket.recv_batch and Socket.send_batch."""
import errno
import gc
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fastsock
from fastsock import DatagramBatch, Socket
from fastsock._batch import recv_batch, send_batch
from fastsock._socket import socketpair
from socket_support import need_tool, on_alarm

# Every blocking call in this file has a timeout, so a bug fails a test
# instead of hanging the suite.
WAIT = 5.0


def dgram_socket(family=socket.AF_INET, host="127.0.0.1"):
    sock = Socket(family, socket.SOCK_DGRAM)
    sock.settimeout(WAIT)
    sock.bind((host, 0))
    return sock


def connected_pair(family=socket.AF_INET, host="127.0.0.1"):
    """(sender, receiver): the sender connected to the receiver."""
    rx = dgram_socket(family, host)
    tx = dgram_socket(family, host)
    tx.connect(rx.getsockname())
    yield tx, rx
    tx.close()
    rx.close()


@pytest.fixture
def pair():
    yield from connected_pair()


@pytest.fixture
def pair6():
    yield from connected_pair(socket.AF_INET6, "::1")


@pytest.fixture
def unix_pair():
    """A connected AF_UNIX datagram pair: its queue is short (the sender
    blocks or gets EAGAIN when the receiver falls behind), which makes
    partial batches reproducible."""
    a, b = socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield a, b
    a.close()
    b.close()


def late(delay, tx, count=1):
    """A timer sending `count` datagrams after `delay`: it ends a blocking
    receive that a bug would leave waiting, so the test fails, not hangs."""
    timer = threading.Timer(delay, tx.send_batch, ([b"late"] * count,))
    timer.start()
    return timer


def payloads(batch):
    return [bytes(view) for view, _ in batch]


def receive(sock, count, size):
    """The payloads of `count` datagrams, however many receives it takes
    (each bounded by the socket's timeout)."""
    batch = DatagramBatch(min(count, 256), size)
    got = []
    while len(got) < count:
        sock.recv_batch(batch)
        got.extend(payloads(batch))
    return got


# ---- the batch object ---------------------------------------------------

def test_defaults():
    batch = DatagramBatch()
    assert (len(batch), batch.count, batch.size, batch.received) == (
        64, 64, 65535, 0)
    assert list(batch) == []
    assert "count=64" in repr(batch)
    batch = DatagramBatch(size=100, count=3)
    assert (len(batch), batch.size) == (3, 100)


@pytest.mark.parametrize("count, size", [(0, 10), (-1, 10), (4, 0), (4, -5)])
def test_bad_sizes(count, size):
    with pytest.raises(ValueError):
        DatagramBatch(count, size)


def test_bad_types():
    with pytest.raises(TypeError):
        DatagramBatch(4.0, 100)
    with pytest.raises(TypeError):
        DatagramBatch("4")


def test_too_large():
    with pytest.raises(MemoryError):
        DatagramBatch(2 ** 40, 2 ** 30)


def test_empty_batch_indexing():
    batch = DatagramBatch(4, 16)
    for call in (batch.__getitem__, batch.address, batch.truncated):
        with pytest.raises(IndexError):
            call(0)


def test_not_picklable():
    import pickle
    with pytest.raises(TypeError):
        pickle.dumps(DatagramBatch(1, 1))


# ---- receiving ----------------------------------------------------------

def test_counts_contents_addresses(pair):
    tx, rx = pair
    data = [b"first", b"second datagram", bytes(range(256)) * 4]
    assert tx.send_batch(data) == 3
    batch = DatagramBatch(8, 2048)
    assert rx.recv_batch(batch) == 3
    assert batch.received == 3 and len(batch) == 8
    assert [bytes(batch[i]) for i in range(3)] == data
    assert payloads(batch) == data
    assert batch[-1] == data[-1]
    sender = tx.getsockname()
    assert [batch.address(i) for i in range(3)] == [sender] * 3
    # One peer, one address object.
    assert batch.address(0) is batch.address(2)
    assert not any(batch.truncated(i) for i in range(3))
    for call in (batch.__getitem__, batch.address, batch.truncated):
        with pytest.raises(IndexError):
            call(3)
        with pytest.raises(IndexError):
            call(-4)


def test_views_are_read_only_and_owned_by_batch(pair):
    tx, rx = pair
    tx.send(b"abc")
    batch = DatagramBatch(2, 16)
    rx.recv_batch(batch)
    view = batch[0]
    assert view.readonly and view.obj is batch
    assert view.format == "B" and view.shape == (3,) and view.strides == (1,)
    with pytest.raises(TypeError):
        view[0] = 1
    with pytest.raises(TypeError):
        Socket.recv_into(rx, batch)     # not a writable buffer


def test_whole_area_buffer(pair):
    tx, rx = pair
    tx.send_batch([b"aa", b"bbb"])
    batch = DatagramBatch(3, 4)
    rx.recv_batch(batch)
    whole = memoryview(batch)
    assert whole.nbytes == 12 and whole.readonly
    assert bytes(whole) == b"aa\0\0bbb\0\0\0\0\0"


def test_senders_alternate(pair):
    tx, rx = pair
    other = dgram_socket()
    try:
        for i in range(3):
            tx.send(b"a%d" % i)
            other.sendto(b"b%d" % i, rx.getsockname())
        batch = DatagramBatch(16, 64)
        assert rx.recv_batch(batch) == 6
        expected = [tx.getsockname(), other.getsockname()] * 3
        assert [batch.address(i) for i in range(6)] == expected
        assert [address for _, address in batch] == expected
    finally:
        other.close()


def test_truncation(pair):
    tx, rx = pair
    tx.send_batch([b"x" * 10, b"y" * 11, b"z" * 9])
    batch = DatagramBatch(4, 10)
    assert rx.recv_batch(batch) == 3
    assert payloads(batch) == [b"x" * 10, b"y" * 10, b"z" * 9]
    assert [batch.truncated(i) for i in range(3)] == [False, True, False]


def test_msg_trunc_flag_is_clamped_to_slot(pair):
    # With MSG_TRUNC the kernel reports the full length; the view must not
    # reach past its slot.
    tx, rx = pair
    tx.send_batch([b"q" * 100, b"r" * 3])
    batch = DatagramBatch(2, 8)
    assert rx.recv_batch(batch, socket.MSG_TRUNC) == 2
    assert payloads(batch) == [b"q" * 8, b"r" * 3]
    assert batch.truncated(0) and not batch.truncated(1)


def test_empty_datagrams(pair):
    tx, rx = pair
    assert tx.send_batch([b"", b"x", b""]) == 3
    batch = DatagramBatch(4, 8)
    assert rx.recv_batch(batch) == 3
    assert payloads(batch) == [b"", b"x", b""]
    assert not batch.truncated(0)


def test_reuse(pair):
    tx, rx = pair
    batch = DatagramBatch(4, 32)
    tx.send_batch([b"one", b"two", b"three"])
    assert rx.recv_batch(batch) == 3
    tx.send_batch([b"four"])
    assert rx.recv_batch(batch) == 1
    assert payloads(batch) == [b"four"]
    with pytest.raises(IndexError):
        batch[1]


def test_batch_larger_than_queue_does_not_wait(pair):
    tx, rx = pair
    rx.settimeout(None)
    tx.send_batch([b"1", b"2", b"3"])
    # Were the call to wait for the batch to fill, these would fill it.
    filler = late(2.0, tx, 64)
    try:
        batch = DatagramBatch(64, 16)
        assert rx.recv_batch(batch) == 3
        assert payloads(batch) == [b"1", b"2", b"3"]
    finally:
        filler.cancel()


def test_more_than_one_chunk(pair):
    # 64 datagrams a system call at most: longer batches take several,
    # in order, all in one recv_batch/send_batch.
    tx, rx = pair
    data = [struct.pack("!I", i) * 4 for i in range(300)]
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    assert tx.send_batch(data) == 300
    batch = DatagramBatch(300, 16)
    assert rx.recv_batch(batch) == 300
    assert payloads(batch) == data


def test_chunk_boundary_without_more_queued(pair):
    tx, rx = pair
    rx.settimeout(None)
    tx.send_batch([b"%d" % i for i in range(64)])
    batch = DatagramBatch(100, 8)
    timer = late(2.0, tx)
    try:
        # A full first chunk must not block waiting for a second one.
        assert rx.recv_batch(batch) == 64
    finally:
        timer.cancel()


def test_tiny_send_buffer(pair):
    # The smallest SO_SNDBUF: the sender waits for room rather than
    # failing or dropping, and the receiver gets every datagram.
    tx, rx = pair
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    data = [bytes([i]) * 1500 for i in range(200)]
    assert tx.send_batch(data) == 200
    assert receive(rx, 200, 2048) == data


def test_ipv6(pair6):
    tx, rx = pair6
    assert tx.send_batch([b"six", b"v6"]) == 2
    batch = DatagramBatch(4, 16)
    assert rx.recv_batch(batch) == 2
    assert payloads(batch) == [b"six", b"v6"]
    host, port, flowinfo, scope_id = batch.address(1)
    assert (host, port) == tx.getsockname()[:2] and host == "::1"


def test_unix_datagrams_have_no_address(unix_pair):
    a, b = unix_pair
    a.send_batch([b"u1", b"u2"])
    batch = DatagramBatch(4, 8)
    b.settimeout(WAIT)
    assert b.recv_batch(batch) == 2
    assert list(batch) == [(b"u1", None), (b"u2", None)]


def test_msg_peek(pair):
    tx, rx = pair
    tx.send_batch([b"p1", b"p2", b"p3"])
    batch = DatagramBatch(8, 8)
    assert rx.recv_batch(batch, socket.MSG_PEEK) == 1
    assert payloads(batch) == [b"p1"]
    assert rx.recv_batch(batch) == 3
    assert payloads(batch) == [b"p1", b"p2", b"p3"]


def test_recv_batch_module_function(pair):
    tx, rx = pair
    assert send_batch(tx, [b"m"]) == 1
    batch = DatagramBatch(1, 4)
    assert recv_batch(rx, batch) == 1 and batch[0] == b"m"


# ---- blocking, non-blocking, timeouts -----------------------------------

def test_non_blocking_empty(pair):
    _, rx = pair
    rx.setblocking(False)
    batch = DatagramBatch(4, 8)
    with pytest.raises(BlockingIOError):
        rx.recv_batch(batch)
    assert batch.received == 0


def test_timeout(pair):
    tx, rx = pair
    rx.settimeout(0.05)
    batch = DatagramBatch(4, 8)
    tx.send(b"old")
    rx.recv_batch(batch)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        rx.recv_batch(batch)
    assert time.monotonic() - start >= 0.045
    # A failed receive leaves nothing to read back.
    assert batch.received == 0 and list(batch) == []


def test_timeout_waits_for_late_data(pair):
    tx, rx = pair
    rx.settimeout(WAIT)
    timer = threading.Timer(0.1, tx.send_batch, ([b"late1", b"late2"],))
    timer.start()
    batch = DatagramBatch(4, 8)
    try:
        n = rx.recv_batch(batch)
    finally:
        timer.join()
    assert 1 <= n <= 2 and batch[0] == b"late1"


def test_signal_during_wait_retries(pair):
    # PEP 475: a signal while waiting runs the handler, then the call goes
    # on waiting for the same deadline.
    tx, rx = pair
    hits = []
    timer = threading.Timer(0.3, tx.send, (b"after signal",))
    try:
        with on_alarm(0.05, lambda *a: hits.append(1)):
            timer.start()
            batch = DatagramBatch(2, 32)
            assert rx.recv_batch(batch) == 1
            assert batch[0] == b"after signal" and hits == [1]
    finally:
        timer.join()


def test_signal_handler_exception_propagates(pair):
    tx, rx = pair
    rx.settimeout(None)

    def boom(*args):
        raise KeyboardInterrupt

    timer = late(3.0, tx)
    try:
        with on_alarm(0.05, boom), pytest.raises(KeyboardInterrupt):
            rx.recv_batch(DatagramBatch(2, 8))
    finally:
        timer.cancel()


# ---- memory safety of the views ------------------------------------------

def test_view_kept_past_next_receive_is_safe(pair):
    # Chosen behaviour: a receive into a batch whose views are alive is
    # allowed; the views keep pointing into the batch's own memory (never
    # freed under them) and show the slot's new bytes.
    tx, rx = pair
    batch = DatagramBatch(2, 8)
    tx.send(b"AAAAAAAA")
    rx.recv_batch(batch)
    kept = batch[0]
    tx.send(b"BB")
    rx.recv_batch(batch)
    assert batch[0] == b"BB"
    assert len(kept) == 8 and bytes(kept[:2]) == b"BB"
    del batch
    gc.collect()
    assert bytes(kept[:2]) == b"BB"     # the view keeps the batch alive


def test_release_refuses_under_live_views(pair):
    tx, rx = pair
    batch = DatagramBatch(2, 8)
    tx.send(b"x")
    rx.recv_batch(batch)
    views = [batch[0], memoryview(batch)]
    pairs = list(batch)
    with pytest.raises(BufferError):
        batch.release()
    del views, pairs
    batch.release()
    batch.release()                     # a second release does nothing
    assert "released" in repr(batch)
    for call in (len, list, memoryview, lambda b: b[0],
                 lambda b: rx.recv_batch(b)):
        with pytest.raises(ValueError):
            call(batch)


def test_release_refused_while_receiving(pair):
    # A receive blocked in another thread (GIL released) holds the slots:
    # freeing them then would let the kernel write into freed memory.
    tx, rx = pair
    batch = DatagramBatch(4, 8)
    result = []
    reader = threading.Thread(target=lambda: result.append(rx.recv_batch(batch)))
    reader.start()
    try:
        time.sleep(0.1)
        with pytest.raises(BufferError):
            batch.release()
    finally:
        tx.send(b"wake")
        reader.join(WAIT)
    assert result == [1] and batch[0] == b"wake"
    batch.release()


# ---- sending ------------------------------------------------------------

def test_send_batch_inputs(pair):
    tx, rx = pair
    import array
    data = [b"bytes", bytearray(b"ba"), memoryview(b"mv"),
            array.array("B", [1, 2])]
    assert tx.send_batch(data) == 4
    assert tx.send_batch(iter([b"gen"])) == 1
    assert tx.send_batch(()) == 0
    batch = DatagramBatch(8, 16)
    assert rx.recv_batch(batch) == 5
    assert payloads(batch) == [b"bytes", b"ba", b"mv", b"\x01\x02", b"gen"]


def test_send_batch_to_address():
    rx = dgram_socket()
    tx = Socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.settimeout(WAIT)
    try:
        assert tx.send_batch([b"to", b"addr"], rx.getsockname()) == 2
        batch = DatagramBatch(4, 8)
        assert rx.recv_batch(batch) == 2
        assert payloads(batch) == [b"to", b"addr"]
        with pytest.raises(OSError) as info:
            tx.send_batch([b"nowhere"])     # not connected, no address
        assert info.value.errno == errno.EDESTADDRREQ
    finally:
        tx.close()
        rx.close()


@pytest.mark.parametrize("bad, exc", [
    (b"one buffer", TypeError),
    (bytearray(b"one buffer"), TypeError),
    (123, TypeError),
    (["text"], TypeError),
    ([b"ok", None], TypeError),
    ([memoryview(b"abcdef")[::2]], BufferError),  # not contiguous: as the stdlib
])
def test_send_batch_bad_input(pair, bad, exc):
    tx, _ = pair
    with pytest.raises(exc):
        tx.send_batch(bad)


def test_bad_arguments(pair):
    tx, rx = pair
    with pytest.raises(TypeError):
        rx.recv_batch(bytearray(100))
    with pytest.raises(TypeError):
        rx.recv_batch(None)
    with pytest.raises(TypeError):
        recv_batch(None, DatagramBatch(1, 1))
    with pytest.raises(TypeError):
        send_batch(socket.socket(), [b"x"])
    with pytest.raises(TypeError):
        tx.send_batch([b"x"], ("127.0.0.1", "port"))


def test_stream_socket_refused():
    a, b = socketpair()
    try:
        with pytest.raises(ValueError):
            a.recv_batch(DatagramBatch(1, 8))
    finally:
        a.close()
        b.close()


def test_closed_socket(pair):
    tx, rx = pair
    rx.close()
    tx.close()
    with pytest.raises(OSError) as info:
        rx.recv_batch(DatagramBatch(1, 8))
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        tx.send_batch([b"x"])
    assert info.value.errno == errno.EBADF


def test_error_after_first_datagram_returns_count(pair):
    # The OS refuses datagram 1 (too large): 0 went, 1 and 2 did not; the
    # caller learns how many went, and resending the rest raises.
    tx, rx = pair
    data = [b"ok", b"x" * 70000, b"never"]
    assert tx.send_batch(data) == 1
    with pytest.raises(OSError) as info:
        tx.send_batch(data[1:])
    assert info.value.errno == errno.EMSGSIZE
    batch = DatagramBatch(4, 8)
    assert rx.recv_batch(batch) == 1 and batch[0] == b"ok"


def test_partial_send_non_blocking(unix_pair):
    a, b = unix_pair
    a.setblocking(False)
    n = a.send_batch([b"%05d" % i for i in range(1000)])
    assert 0 < n < 1000                  # the receiver's queue is full
    with pytest.raises(BlockingIOError):
        a.send_batch([b"more"])
    # Exactly buffers[:n] went, in order.
    b.setblocking(False)
    batch = DatagramBatch(2000, 8)
    assert b.recv_batch(batch) == n
    assert payloads(batch) == [b"%05d" % i for i in range(n)]


def test_partial_send_timeout(unix_pair):
    a, b = unix_pair
    a.settimeout(0.05)
    n = a.send_batch([b"t"] * 1000)
    assert 0 < n < 1000
    with pytest.raises(TimeoutError):
        a.send_batch([b"t"])


def test_blocking_send_waits_for_reader(unix_pair):
    # Blocking: every datagram goes, however many times the queue fills.
    a, b = unix_pair
    a.settimeout(WAIT)
    b.settimeout(WAIT)
    total = 3000
    got = []

    def reader():
        got.extend(receive(b, total, 8))

    thread = threading.Thread(target=reader)
    thread.start()
    data = [struct.pack("!I", i) for i in range(total)]
    assert a.send_batch(data) == total
    thread.join(WAIT)
    assert got == data


# ---- segmentation offload (runs of one size in one send) ------------------

SEGMENTED_SIZES = [5, 5, 5, 3, 7, 7, 0, 0, 9, 9, 9, 9, 2, 0, 4, 4, 1, 1, 1]


@pytest.mark.parametrize("fixture", ["pair", "pair6"])
def test_segmented_runs_keep_datagram_boundaries(request, fixture):
    # Runs of one size (some ended by a shorter datagram), single ones and
    # empty ones in between: every datagram arrives alone, in order.
    tx, rx = request.getfixturevalue(fixture)
    data = [bytes([65 + i]) * size for i, size in enumerate(SEGMENTED_SIZES)]
    assert tx.send_batch(data) == len(data)
    batch = DatagramBatch(64, 16)
    assert rx.recv_batch(batch) == len(data)
    assert payloads(batch) == data
    assert {batch.address(i) for i in range(len(data))} == {tx.getsockname()}


def test_segmented_runs_within_byte_limit(pair):
    # 64 x 1500 bytes is more than one segmented send may carry (65000):
    # the run is split; 40000-byte datagrams never pair up.
    tx, rx = pair
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    data = [struct.pack("!H", i) * 750 for i in range(64)]
    data += [bytes([i]) * 40000 for i in range(3)]
    assert tx.send_batch(data) == 67
    assert receive(rx, 67, 40000) == data


SO_NO_CHECK = 11    # Linux: UDP without checksums, which cannot be segmented


@pytest.mark.skipif(sys.platform != "linux", reason="Linux socket option")
def test_segmentation_refused_falls_back(pair):
    tx, rx = pair
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    data = [b"%04d" % i for i in range(100)]
    assert tx.send_batch(data) == 100
    assert receive(rx, 100, 8) == data


SYSCALL_PROBE = textwrap.dedent("""
    import socket, sys
    import fastsock
    from fastsock._socket import socketpair
    if sys.argv[1] == "udp":
        rx = fastsock.udp(("127.0.0.1", 0))
        tx = fastsock.udp(connect=rx.getsockname())
    else:
        tx, rx = socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    assert tx.send_batch([b"s" * 64] * 64) == 64
    assert rx.recv_batch(fastsock.DatagramBatch(64, 128)) == 64
""")


@pytest.mark.strace
@pytest.mark.skipif(sys.platform != "linux", reason="Linux offload")
@pytest.mark.parametrize("kind, disable, segmented", [
    ("udp", "", True), ("udp", "1", False), ("unix", "", False)])
def test_which_send_is_used(kind, disable, segmented):
    # strace shows the system calls: one segmented sendmsg for a run on
    # UDP; sendmmsg where it is switched off, and always on AF_UNIX (which
    # would take the run as one datagram).
    strace = need_tool("strace")
    env = dict(os.environ, FASTSOCK_DISABLE_GSO=disable,
               PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=sendmsg,sendmmsg", "-o",
         "/dev/stderr", sys.executable, "-c", SYSCALL_PROBE, kind],
        env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    calls = re.findall(r"\b(sendmsg|sendmmsg)\(", out.stderr)
    assert calls == (["sendmsg"] if segmented else ["sendmmsg"])
    assert ("UDP_SEGMENT" in out.stderr or "cmsg_type=0x67" in out.stderr
            or "cmsg_type=103" in out.stderr) == segmented


# ---- a long run ---------------------------------------------------------

def test_100k_sequence(pair):
    """100k numbered datagrams through send_batch/recv_batch with flow
    control (the sender stays at most WINDOW ahead of the receiver).  Loss
    on loopback is possible (the receive queue overflows under load), so it
    is measured and bounded, not assumed away; whatever arrived must be
    intact, unduplicated and in order."""
    tx, rx = pair
    total, per = 100_000, 64
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    # What the receive queue holds, at about 4 KiB of kernel memory per
    # small datagram (it may be much less than asked: net.core.rmem_max).
    window = max(per, min(1024, rx.getsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF) // 4096))
    rx.settimeout(1.0)
    head = struct.Struct("!Q")
    filler = bytes(range(56))
    progress = threading.Condition()
    state = {"seen": 0, "done": False}
    seqs = []
    bad = []

    def receive():
        batch = DatagramBatch(256, 128)
        while True:
            try:
                rx.recv_batch(batch)
            except TimeoutError:
                break                   # idle: the rest was lost
            last = -1
            for view, _ in batch:
                seq = head.unpack_from(view)[0]
                if len(view) != 64 or view[8:] != filler:
                    bad.append(seq)
                seqs.append(seq)
                last = seq
            with progress:
                state["seen"] = last + 1
                progress.notify()
            if last == total - 1:
                break
        with progress:
            state["done"] = True
            progress.notify()

    reader = threading.Thread(target=receive)
    reader.start()
    start = time.monotonic()
    sent = 0
    while sent < total:
        with progress:
            progress.wait_for(
                lambda: sent - state["seen"] < window or state["done"], WAIT)
        if state["done"]:
            break
        n = min(per, total - sent)
        sent += tx.send_batch(
            [head.pack(seq) + filler for seq in range(sent, sent + n)])
    reader.join(WAIT + 2)
    elapsed = time.monotonic() - start
    assert not reader.is_alive()
    lost = total - len(seqs)
    print(f"\n100k datagrams: {len(seqs)} received, {lost} lost "
          f"({100 * lost / total:.3f}%), {elapsed:.2f} s")
    assert sent == total
    assert bad == []
    assert len(set(seqs)) == len(seqs)          # no duplicates
    assert seqs == sorted(seqs)                 # in order
    assert all(0 <= s < total for s in seqs)
    assert lost <= total // 100                 # at most 1 %
