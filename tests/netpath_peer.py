"""One end of the lossy-network tests (tests/test_netpath.py), run inside a
network namespace with `ip netns exec`.

    python netpath_peer.py server HOST   # prints "ready", then a JSON report
    python netpath_peer.py client HOST   # prints a JSON report

Three exchanges over one path, each checked byte for byte against the
same seeded generators on both ends: a 2 MiB stream each way, 1,000
frames of mixed sizes echoed back, then paced datagram batches, which the
server counts (lost, duplicated, damaged).
"""
import json
import random
import sys
import threading
import time

import fastsock

PORT = 7700
STREAM_BYTES = 2 << 20
FRAMES = 1000
DATAGRAMS = 4000
BATCH = 16
BUFFER = 16384      # the streams' buffer: some frames are larger
IDLE = 2.0          # the server stops counting datagrams after this silence


def pattern(seed, n):
    return random.Random(seed).randbytes(n)


def frame(i):
    # Mostly small, some larger than the streams' buffers, some empty.
    n = (0, 1, 17, 300, 4096, 20000)[i % 6] + i % 7
    return pattern(1000 + i, n)


def datagram(seq):
    return seq.to_bytes(4, "big") + pattern(seq, 16 + seq % 1200)


def serve(host):
    listener = fastsock.listen((host, PORT), buffer_size=BUFFER)
    udp = fastsock.udp((host, PORT))
    print("ready", flush=True)
    report = {}
    # 1. A stream: checked chunk by chunk as it arrives, then one back.
    s, _ = listener.accept()
    with s:
        s.settimeout(60)
        want, got, intact = pattern(1, STREAM_BYTES), 0, True
        while got < STREAM_BYTES:
            chunk = s.read1(65536)
            if not chunk:
                break
            intact = intact and chunk == want[got:got + len(chunk)]
            got += len(chunk)
        report["stream_in"] = {"bytes": got, "intact": intact}
        s.write(pattern(2, STREAM_BYTES))
    # 2. Frames, each checked and echoed.
    s, _ = listener.accept()
    with s:
        s.settimeout(60)
        count = bad = 0
        for i, payload in enumerate(s.frames()):
            bad += payload != frame(i)
            s.send_frame(payload)
            count += 1
        report["frames_in"] = {"count": count, "bad": bad}
    # 3. Datagrams: counted until the client has been silent IDLE seconds.
    batch = fastsock.DatagramBatch(64, 2048)
    seen, damaged, duplicates = set(), 0, 0
    udp.settimeout(30)                  # the first one
    while True:
        try:
            udp.recv_batch(batch)
        except TimeoutError:
            break
        udp.settimeout(IDLE)
        for payload, _ in batch:
            seq = int.from_bytes(payload[:4], "big")
            if seq >= DATAGRAMS or bytes(payload) != datagram(seq):
                damaged += 1
            elif seq in seen:
                duplicates += 1
            else:
                seen.add(seq)
    report["datagrams_in"] = {"received": len(seen), "damaged": damaged,
                              "duplicates": duplicates}
    udp.close()
    listener.close()
    print(json.dumps(report), flush=True)


def client(host):
    report = {}
    with fastsock.connect((host, PORT), timeout=60, buffer_size=BUFFER) as c:
        c.write(pattern(1, STREAM_BYTES))
        c.flush()
        back = c.readexactly(STREAM_BYTES)
        report["stream_back"] = {"bytes": len(back),
                                 "intact": back == pattern(2, STREAM_BYTES)}
    with fastsock.connect((host, PORT), timeout=60, buffer_size=BUFFER) as c:
        # Full duplex: a thread sends every frame while this one reads the
        # echoes, so neither side's buffers have to hold them all.
        def send():
            for i in range(FRAMES):
                c.send_frame(frame(i))
            c.write_eof()
        sender = threading.Thread(target=send)
        sender.start()
        echoed = bad = 0
        for i, payload in enumerate(c.frames()):
            bad += payload != frame(i)
            echoed += 1
        sender.join()
        report["frames_back"] = {"count": echoed, "bad": bad}
    with fastsock.udp(connect=(host, PORT)) as u:
        sent = 0
        for first in range(0, DATAGRAMS, BATCH):
            batch = [datagram(seq) for seq in range(first, first + BATCH)]
            while batch:        # send_batch may send only some of them
                n = u.send_batch(batch)
                sent += n
                batch = batch[n:]
            time.sleep(0.01)    # at most 1 MB/s: inside the path's rate
        report["datagrams_out"] = {"sent": sent}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](sys.argv[2])
