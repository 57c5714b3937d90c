"""W6: 64 clients sending 64-byte frames (a 4-byte length, then the
payload) to an echo server and checking each reply, one or more in flight;
the load from c/loadgen.c (one C epoll loop, so the client is not the
bottleneck).  The servers, each in its own process pinned to one CPU:

    threading        socketserver.ThreadingTCPServer (Nagle off), recv() + sendall()
    threading-frame  the same, reading each frame (rfile.read) and writing its reply
    fastsock         fastsock.Server, handler: read1() + write()
    event-raw        fastsock.EventServer(framing="raw"): echo what each receive brought
    event-frame      fastsock.EventServer(framing="frame"): a callback per frame
    event-pong       fastsock.EventServer(framing="line") answering "+PONG" (redis-benchmark)
    uvloop-raw       a uvloop Protocol: data_received() -> transport.write()
    uvloop-frame     the same, splitting frames in Python (as a uvloop user would)
    asyncio          an asyncio Protocol: data_received() -> transport.write()
    selectors        one thread, selectors.DefaultSelector, recv() + send()
    c-threads        plain C, one thread per connection, blocking recv + send
    c-epoll          plain C, one thread, epoll + recv + send (c/echo_server.c)

A Python server runs as ``python -m fastsock.bench.servers KIND CPU``.
"""
import os
import signal
import subprocess
import sys

from fastsock.bench import native
from fastsock.bench.streams import MEASURED_CPU, PEER_CPU

C_KINDS = {"c-threads": "threads", "c-epoll": "epoll"}


# ---- the servers (each runs in its own process) -----------------------------

def serve_fastsock():
    import fastsock

    def echo(stream, address):
        read1, write = stream.read1, stream.write
        while True:
            data = read1(65536)
            if not data:
                return
            write(data)

    server = fastsock.Server(("127.0.0.1", 0), echo, backlog=512)
    print(server.address[1], flush=True)
    server.serve_forever()


def threading_server(handler):
    import socketserver

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve_threading():
    import socketserver

    class Echo(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True   # not held back by Nagle

        def handle(self):
            recv, sendall = self.request.recv, self.request.sendall
            while True:
                data = recv(65536)
                if not data:
                    return
                sendall(data)

    threading_server(Echo)


def serve_threading_frame():
    import socketserver

    class Frames(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True

        def handle(self):
            read, write = self.rfile.read, self.wfile.write
            while True:
                header = read(4)
                if len(header) < 4:
                    return
                write(header + read(int.from_bytes(header, "big")))

    threading_server(Frames)


def serve_event(framing):
    import fastsock

    server = fastsock.EventServer(("127.0.0.1", 0), lambda conn, message: message,
                                  framing=framing, backlog=512)
    print(server.address[1], flush=True)
    server.serve_forever()


def serve_uvloop(framing):
    import asyncio

    import uvloop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.write = transport.write

        def data_received(self, data):
            self.write(data)

    class Frames(asyncio.Protocol):
        def connection_made(self, transport):
            self.write = transport.write
            self.buf = bytearray()

        def data_received(self, data):
            buf = self.buf
            buf += data
            while len(buf) >= 4:
                end = 4 + int.from_bytes(buf[:4], "big")
                if len(buf) < end:
                    break
                payload = bytes(buf[4:end])
                del buf[:end]
                self.write(len(payload).to_bytes(4, "big") + payload)

    async def main():
        server = await asyncio.get_running_loop().create_server(
            Frames if framing == "frame" else Echo, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    uvloop.run(main())


def serve_asyncio():
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.write = transport.write

        def data_received(self, data):
            self.write(data)

    async def main():
        server = await asyncio.get_running_loop().create_server(
            Echo, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_selectors():
    import selectors
    import socket

    sel = selectors.DefaultSelector()
    lsock = socket.create_server(("127.0.0.1", 0), backlog=512)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ)
    print(lsock.getsockname()[1], flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is lsock:
                conn, _ = lsock.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if data:
                sock.send(data)    # 64 bytes always fit an empty send buffer
            else:
                sel.unregister(sock)
                sock.close()


def serve_event_pong():
    import fastsock

    server = fastsock.EventServer(("127.0.0.1", 0), lambda conn, line: b"+PONG\r\n",
                                  framing="line", backlog=512)
    print(server.address[1], flush=True)
    server.serve_forever()


SERVERS = {"fastsock": serve_fastsock, "threading": serve_threading,
           "threading-frame": serve_threading_frame,
           "event-raw": lambda: serve_event("raw"),
           "event-frame": lambda: serve_event("frame"),
           "event-pong": serve_event_pong,
           "uvloop-raw": lambda: serve_uvloop("raw"),
           "uvloop-frame": lambda: serve_uvloop("frame"),
           "asyncio": serve_asyncio, "selectors": serve_selectors}


# ---- driving them ----------------------------------------------------------

def start_server(kind, cpu, wrap=()):
    """Starts server `kind` (SERVERS or C_KINDS) on `cpu` (-1: not pinned),
    under the command `wrap` if given; returns (process, port)."""
    if kind in C_KINDS:
        command = [native.build("echo_server"), C_KINDS[kind]]
    else:
        # The server imports fastsock as this process does (PYTHONPATH=src
        # for an in-place build, else the installed package).
        command = [sys.executable, "-m", "fastsock.bench.servers", kind, str(cpu)]
    pin = None
    if kind in C_KINDS and cpu >= 0:
        pin = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
    proc = subprocess.Popen([*wrap, *command], stdout=subprocess.PIPE, text=True,
                            preexec_fn=pin)
    port = int(proc.stdout.readline())
    return proc, port


def stop_server(proc):
    proc.terminate()        # the server's SIGTERM handler exits at once
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_load(loadgen, port, conns, seconds, cpu, size=64, reconnect=False,
             depth=1):
    """(requests, seconds, p99 latency in microseconds) of one run of
    frames with `depth` requests in flight per connection."""
    out = subprocess.run(
        [loadgen, "-c", str(conns), "-d", str(seconds), "-w", "0.3", "-f",
         "-s", str(size), "-p", str(depth), "-C", str(cpu),
         *(["-r"] if reconnect else []), "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=seconds + 30)
    fields = dict(item.split("=") for item in out.stdout.split())
    if out.returncode != 0 or int(fields["errors"]):
        raise RuntimeError(f"load generator failed: {out.stdout} {out.stderr}".strip())
    return int(fields["requests"]), float(fields["seconds"]), float(fields["p99_us"])


def run_server(kind, seconds, depth=1, conns=64):
    """W6 for the CLI: one run of `seconds` against a fresh server on the
    peer CPU, the load generator on the other, `depth` frames in flight per
    connection; (requests, seconds, {"p99_us": ...})."""
    server_cpu, client_cpu = (-1, -1) if PEER_CPU is None else (PEER_CPU, MEASURED_CPU)
    proc, port = start_server(kind, server_cpu)
    try:
        requests, elapsed, p99 = run_load(native.build("loadgen"), port, conns, seconds,
                                          client_cpu, depth=depth)
        return requests, elapsed, {"p99_us": p99}
    except RuntimeError as e:
        raise RuntimeError(f"{kind} server, depth {depth}: {e}") from None
    finally:
        stop_server(proc)


if __name__ == "__main__":
    if int(sys.argv[2]) >= 0:
        os.sched_setaffinity(0, {int(sys.argv[2])})
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    SERVERS[sys.argv[1]]()
