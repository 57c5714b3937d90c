"""W6: 64 clients doing 64-byte request/response against an echo server,
the load from c/loadgen.c (one C epoll loop, so the client is not the
bottleneck).  The servers, each in its own process pinned to one CPU:

    fastsock   fastsock.Server, handler: read1() + write()
    event      fastsock.EventServer, framing "raw", the message returned
    threading  socketserver.ThreadingTCPServer (Nagle off), recv() + sendall()
    asyncio    asyncio Protocol: data_received() -> transport.write()
    selectors  one thread, selectors.DefaultSelector, recv() + send()
    c-threads  plain C, one thread per connection, blocking recv + send
    c-epoll    plain C, one thread, epoll + recv + send (c/echo_server.c)

A Python server runs as ``python -m fastsock.bench.servers KIND CPU``.
"""
import os
import signal
import subprocess
import sys

from fastsock.bench import native

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


def serve_event():
    import fastsock

    server = fastsock.EventServer(("127.0.0.1", 0), lambda conn, message: message,
                                  framing="raw", backlog=512)
    print(server.address[1], flush=True)
    server.serve_forever()


def serve_threading():
    import socketserver

    class Echo(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True      # as the other servers do

        def handle(self):
            recv, sendall = self.request.recv, self.request.sendall
            while True:
                data = recv(65536)
                if not data:
                    return
                sendall(data)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Echo)
    print(server.server_address[1], flush=True)
    server.serve_forever()


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


SERVERS = {"fastsock": serve_fastsock, "event": serve_event, "threading": serve_threading,
           "asyncio": serve_asyncio, "selectors": serve_selectors}



# ---- driving them ----------------------------------------------------------

def start_server(kind, cpu, wrap=()):
    """Starts server `kind` (SERVERS or C_KINDS) on `cpu`, under the command
    `wrap` if given; returns (process, port)."""
    if kind in C_KINDS:
        command = [native.build("echo_server"), C_KINDS[kind]]
    else:
        # The server imports fastsock as this process does (PYTHONPATH=src
        # for an in-place build, else the installed package).
        command = [sys.executable, "-m", "fastsock.bench.servers", kind, str(cpu)]
    pin = None
    if kind in C_KINDS and hasattr(os, "sched_setaffinity"):
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


def run_load(loadgen, port, conns, seconds, cpu, size=64, reconnect=False):
    """(requests, seconds) of c/loadgen.c against `port` (after 0.3 s of warm-up)."""
    out = subprocess.run(
        [loadgen, "-c", str(conns), "-d", str(seconds), "-w", "0.3",
         "-s", str(size), "-C", str(cpu), *(["-r"] if reconnect else []),
         "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=seconds + 30)
    fields = dict(item.split("=") for item in out.stdout.split())
    if out.returncode != 0 or int(fields["errors"]):
        raise RuntimeError(f"load generator failed: {out.stdout} {out.stderr}")
    return int(fields["requests"]), float(fields["seconds"])


def run_server(kind, seconds, conns=64, server_cpu=0, client_cpu=1):
    """W6 for the CLI: one run of `seconds` against a fresh server;
    (requests, seconds)."""
    proc, port = start_server(kind, server_cpu)
    try:
        return run_load(native.build("loadgen"), port, conns, seconds, client_cpu)
    finally:
        stop_server(proc)


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(sys.argv[2])})
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    SERVERS[sys.argv[1]]()
