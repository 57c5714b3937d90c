"""Runs every public read and write path in long loops and prints, per path,
how much the process grew beyond a loop doing nothing: references
(sys.gettotalrefcount, debug builds of CPython only), bytes traced by
tracemalloc (Python objects and PyMem_Malloc, so the streams' buffers too)
and resident memory (plain malloc: the C shim).  tests/test_leaks.py runs
it in a child process.

    python tests/leak_paths.py [N]     # prints one JSON object
"""
import gc
import json
import os
import socket
import sys
import tempfile
import tracemalloc
import types

import fastsock
from fastsock import DatagramBatch, Socket, Stream
from fastsock._stream import free_spare_buffers

DATA = bytes(range(256)) * 4            # 1 KiB


def sock_pair():
    a, b = socket.socketpair()
    return Socket.from_socket(a), Socket.from_socket(b)


def stream_pair(buffer_size=65536):
    a, b = sock_pair()
    return Stream(a, buffer_size=buffer_size), Stream(b, buffer_size=buffer_size)


def udp_pair():
    rx = fastsock.udp(("127.0.0.1", 0))
    tx = fastsock.udp(("127.0.0.1", 0), connect=rx.getsockname())
    return tx, rx


# Each maker opens what its path needs and returns (step, [things to
# close]); step() runs the path once and leaves nothing pending.

def socket_send_recv():
    a, b = sock_pair()

    def step():
        a.send(DATA)
        b.recv(len(DATA))
    return step, [a, b]


def socket_sendall_recv_into():
    a, b = sock_pair()
    buf = bytearray(len(DATA))

    def step():
        a.sendall(DATA)
        b.recv_into(buf)
    return step, [a, b]


def socket_gathered():
    a, b = sock_pair()
    bufs = [bytearray(100), bytearray(len(DATA))]

    def step():
        a.sendall_buffers([DATA[:100], memoryview(DATA)[100:]])
        a.sendmsg([DATA[:100], DATA[100:]])
        b.recvmsg_into(bufs)
        b.recvmsg(len(DATA))
    return step, [a, b]


def socket_datagrams():
    tx, rx = udp_pair()
    buf = bytearray(2048)
    to = rx.getsockname()

    def step():
        tx.send(DATA)
        tx.sendto(DATA, to)
        tx.send(DATA)
        rx.recvfrom(2048)
        rx.recvfrom_into(buf)
        rx.recv(2048)
    return step, [tx, rx]


def socket_batches():
    tx, rx = udp_pair()
    batch = DatagramBatch(8, 2048)
    to = rx.getsockname()

    def step():
        assert tx.send_batch([DATA] * 8) == 8
        assert tx.send_batch([DATA[:10], DATA[:20]], to) == 2
        got = 0
        while got < 10:
            n = rx.recv_batch(batch)
            for payload, sender in batch:
                len(payload)
            batch.address(0)
            batch.truncated(n - 1)
            batch[n - 1].release()
            got += n
    return step, [tx, rx]


def data_file():
    f = tempfile.TemporaryFile()
    f.write(DATA)
    f.flush()
    return f


def socket_sendfile():
    a, b = sock_pair()
    f = data_file()

    def step():
        a.sendfile(f, 0, len(DATA))
        b.recv(len(DATA), socket.MSG_WAITALL)
    return step, [a, b, f]


def socket_errors():
    a, b = sock_pair()
    a.settimeout(0)
    buf = bytearray(10)

    def step():
        for call, arg in ((a.recv, 10), (a.recv_into, buf)):
            try:
                call(arg)
            except BlockingIOError:
                pass
        try:
            a.send(12)
        except TypeError:
            pass
    return step, [a, b]


def socket_lifecycle():
    listener = Socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = listener.getsockname()

    def step():
        c = Socket()
        c.connect(address)
        s, peer = listener.accept()
        s.getpeername()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        std = c.to_socket()
        Socket.from_socket(std).close()
        s.close()
    return step, [listener]


def stream_reads():
    w, r = stream_pair()
    buf = bytearray(300)

    def step():
        w.write(DATA)
        w.write(b"line one\nline two\nend\r\n\r\n")
        w.flush()
        r.peek(10)
        r.read(100)
        r.read1(100)
        r.readinto(buf)
        r.readinto1(buf)
        r.readexactly(len(DATA) - 800)
        r.readline()
        next(r)
        r.readuntil(b"\r\n\r\n")
    return step, [w, r]


def stream_large_reads():
    # Reads larger than the buffer go straight into their destination.
    w, r = stream_pair(buffer_size=64)
    buf = bytearray(len(DATA))

    def step():
        w.writelines([DATA, DATA, DATA, DATA])
        w.flush()
        r.read(len(DATA))
        r.readexactly(len(DATA))
        r.readinto(buf)
        r.read1(len(DATA))
    return step, [w, r]


def stream_frames():
    w, r = stream_pair()
    buf = bytearray(len(DATA))
    frames = r.frames()

    def step():
        w.send_frame(DATA)
        w.send_frame([DATA[:10], DATA[10:]])
        w.send_frame(memoryview(DATA))
        w.flush()
        r.recv_frame()
        r.recv_frame_into(buf)
        next(frames)
    return step, [w, r]


def stream_large_frames():
    w, r = stream_pair(buffer_size=64)
    buf = bytearray(len(DATA))

    def step():
        w.send_frame(DATA)
        w.send_frame(DATA)
        w.flush()
        r.recv_frame()
        r.recv_frame_into(buf)
    return step, [w, r]


def stream_sendfile():
    w, r = stream_pair()
    f = data_file()

    def step():
        w.sendfile(f, 0, len(DATA))
        r.readexactly(len(DATA))
    return step, [w, r, f]


def stream_errors():
    # Failures: would-block reads (nothing lost), a separator past its
    # limit, a frame too large, a cut frame at EOF; each on a new pair, so
    # construction and close are measured too.
    def step():
        w, r = stream_pair()
        try:
            r.settimeout(0)
            w.write(b"\xff\xff")          # half a header: 2**32 - 1 bytes
            w.flush()
            for call, args in ((r.read, (10,)), (r.readexactly, (10,)),
                               (r.recv_frame, ())):
                try:
                    call(*args)
                except BlockingIOError:
                    pass
            try:
                r.readuntil(b"!", 1)
            except fastsock.LimitOverrunError:
                pass
            w.write(b"\xff\xff")
            w.flush()
            try:
                r.recv_frame()
            except fastsock.FrameTooLargeError:
                pass
            w.write_eof()
            r.read()
            try:
                r.readexactly(1)
            except fastsock.IncompleteReadError:
                pass
        finally:
            w.close()
            r.close()
    r = Stream.__new__(Stream)         # __init__ never ran: close and dealloc
    return step, [r]


def stream_lifecycle():
    listener = fastsock.listen(("127.0.0.1", 0))

    def step():
        with fastsock.connect(listener.address) as c:
            s, _ = listener.accept()
            with s:
                c.send_frame(b"hi")
                c.flush()
                s.recv_frame()
    return step, [listener]


def event_echo():
    # EventServer's loop: a frame read, split, handed to on_message, and
    # its reply queued and written; then a line and a send from the loop.
    def on_message(conn, message):
        conn.send(b"")
        return message
    server = fastsock.EventServer(("127.0.0.1", 0), on_message).start()
    client = fastsock.connect(server.address)

    def step():
        client.send_frame(DATA)
        client.recv_frame()
    return step, [client, types.SimpleNamespace(close=server.shutdown)]


def batch_lifecycle():
    def step():
        b = DatagramBatch(16, 1500)
        len(b)
        b.received
        b.release()
    return step, []


def planted_leak():
    # Not a fastsock path: proves that the measurement sees a leak.
    kept = []

    def step():
        kept.append(bytearray(64))
    return step, []


PATHS = [f for name, f in list(globals().items())
         if callable(f) and name.split("_")[0] in
         ("socket", "stream", "event", "batch", "planted")
         and name not in ("sock_pair", "stream_pair")]


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(make, n):
    step, opened = make()
    try:
        for _ in range(max(n // 10, 50)):     # warm-up: caches, free lists
            step()
        gc.collect()
        refs = getattr(sys, "gettotalrefcount", None)
        r0, m0 = refs() if refs else 0, rss()
        for _ in range(n):
            step()
        gc.collect()
        grown = {"refs": refs() - r0 if refs else None, "rss": rss() - m0}
        tracemalloc.start()
        t0 = tracemalloc.get_traced_memory()[0]
        for _ in range(n // 4):
            step()
        gc.collect()
        # Streams keep a few freed buffers for the next ones (a bounded
        # list): those that came to be traced are not growth.
        free_spare_buffers()
        grown["traced"] = tracemalloc.get_traced_memory()[0] - t0
        tracemalloc.stop()
        return grown
    finally:
        for f in opened:
            f.close()


def nothing():
    return (lambda: None), []


def main():
    # Growth beyond that of a loop doing nothing (the measurement's own:
    # a few references and bytes).
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    base = measure(nothing, n)
    paths = {}
    for make in PATHS:
        grown = measure(make, n)
        paths[make.__name__] = {k: None if v is None else v - base[k]
                                for k, v in grown.items()}
    print(json.dumps({"n": n, "asan": "asan" in os.environ.get(
        "LD_PRELOAD", ""), "paths": paths}))


if __name__ == "__main__":
    main()
