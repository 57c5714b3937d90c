"""Load: N concurrent connections to one fastsock.Server, each moving frames
whose content is checked, then a graceful shutdown with every connection
still open and its handler idle, and nothing left behind.

    PYTHONPATH=src python3 tests/load_server.py --connections 1000 --rounds 5

Runs in its own process (tests/test_load.py starts it) because it raises
RLIMIT_NOFILE and starts a thread per connection.  Prints one JSON line:
the counts, the time taken, and what was left (threads, descriptors).
Exits non-zero if a frame was lost or wrong, or something was left.
"""
import argparse
import json
import os
import random
import resource
import struct
import sys
import threading
import time

import fastsock

LIMIT = 120.0     # seconds any one wait may take


def open_fds():
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd")
                          else "/dev/fd"))


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        try:        # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            sys.exit(f"RLIMIT_NOFILE: need {need} descriptors, the hard "
                     f"limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need


def handler(stream, address):
    # Each reply: the request's payload reversed, so that a reply sent to
    # the wrong connection, cut or reordered shows.
    for payload in stream.frames():
        stream.send_frame(payload[::-1])


def payload_for(rng, conn, rnd, max_size):
    size = rng.randrange(8, max_size)
    head = struct.pack(">II", conn, rnd)
    return head + rng.randbytes(size - 8)


def drive(streams, first, rounds, max_size, seed, counts, errors):
    """One client thread: each round sends a frame on each of its
    connections, then reads and checks every reply."""
    rng = random.Random(seed)
    try:
        for rnd in range(rounds):
            sent = []
            for i, stream in enumerate(streams):
                payload = payload_for(rng, first + i, rnd, max_size)
                stream.send_frame(payload)
                stream.flush()
                sent.append(payload)
            for stream, payload in zip(streams, sent):
                reply = stream.recv_frame()
                if reply != payload[::-1]:
                    errors.append(f"connection {first}: wrong reply in round "
                                  f"{rnd} ({len(reply)} bytes for "
                                  f"{len(payload)})")
                    return
                counts.append(len(payload))
    except Exception as exc:          # reported, and the run fails
        errors.append(f"client thread {first}: {exc!r}")


def _ends_cleanly(stream):
    try:
        stream.recv_frame()
    except EOFError as exc:
        return not isinstance(exc, fastsock.IncompleteReadError)
    except OSError:
        return False
    return False          # a frame nobody asked for


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-size", type=int, default=20000,
                        help="largest frame payload, bytes")
    parser.add_argument("--client-threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.connections

    # Both ends of every connection live here, plus slack.
    limit = raise_fd_limit(2 * n + 256)
    fastsock.Server(("127.0.0.1", 0), handler).shutdown()  # lazy imports
    threads_before, fds_before = threading.active_count(), open_fds()

    start = time.monotonic()
    server = fastsock.Server(("127.0.0.1", 0), handler, backlog=n,
                             buffer_size=4096).start()
    streams = []
    errors, counts = [], []
    peak = 0
    try:
        for _ in range(n):
            streams.append(fastsock.connect(server.address, timeout=LIMIT,
                                            buffer_size=4096))
        deadline = time.monotonic() + LIMIT
        while server.connections < n:
            if time.monotonic() > deadline:
                sys.exit(f"only {server.connections} of {n} connections "
                         "were admitted")
            time.sleep(0.01)
        connected = time.monotonic() - start
        peak = server.connections
        share = -(-n // args.client_threads)
        clients = [threading.Thread(
            target=drive,
            args=(streams[i:i + share], i, args.rounds, args.max_size,
                  args.seed + i, counts, errors))
            for i in range(0, n, share)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(LIMIT)
        stuck = sum(thread.is_alive() for thread in clients)
        moved = time.monotonic() - start - connected
        # Every handler now waits for its next frame: shutdown() must end
        # them all at once, each client seeing a clean EOF.
        began = time.monotonic()
        server.shutdown(timeout=LIMIT)
        shutdown_seconds = time.monotonic() - began
        clean_eof = sum(_ends_cleanly(stream) for stream in streams)
    finally:
        for stream in streams:
            stream.close()
        server.shutdown(timeout=LIMIT)
    # Handler threads end with their connections; give the last ones a
    # moment to leave the thread list.
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    result = {
        "connections": n,
        "peak_open": peak,
        "frames": len(counts),
        "expected_frames": n * args.rounds,
        "payload_bytes": sum(counts),
        "connect_seconds": round(connected, 2),
        "transfer_seconds": round(moved, 2),
        "frames_per_second": round(len(counts) / moved) if moved else None,
        "shutdown_seconds": round(shutdown_seconds, 3),
        "clients_saw_clean_eof": clean_eof,
        "errors": errors[:5],
        "stuck_client_threads": stuck,
        "threads_left": threading.active_count() - threads_before,
        "descriptors_left": open_fds() - fds_before,
        "fd_limit": limit,
    }
    print(json.dumps(result), flush=True)
    ok = (not errors and not stuck and len(counts) == n * args.rounds
          and peak == n and clean_eof == n and result["threads_left"] == 0
          and result["descriptors_left"] == 0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
