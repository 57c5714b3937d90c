"""G9: system calls per recv_into with a timeout set on a ready socket,
counted with strace (a C-level fact, so a count, not a rate)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

CALLS = 200
# Queues CALLS * 64 bytes on a socket pair, sets a timeout on the reading
# end and reads them back 64 at a time; prints the reading descriptor.
CHILD = """
import socket, sys
import fastsock
a, b = socket.socketpair()
if sys.argv[1] == "fastsock":
    b = fastsock.Socket.from_socket(b)
b.settimeout(5.0)
a.sendall(b"x" * 64 * {calls})
buf = bytearray(64)
recv_into = b.recv_into
for _ in range({calls}):
    recv_into(buf)
print(b.fileno())
""".format(calls=CALLS)


def per_recv(kind: str) -> Optional[float]:
    """System calls per recv_into for `kind` ("fastsock" or "stdlib"), or
    None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace")
        done = subprocess.run(
            [strace, "-f", "-qq", "-o", trace, "-e", "trace=socketpair,recvfrom,recvmsg,read,poll,ppoll,"
             "select,pselect6,epoll_wait,epoll_pwait", sys.executable, "-c", CHILD, kind],
            capture_output=True, text=True, timeout=60, env=dict(os.environ))
        if done.returncode != 0:
            return None
        fd = done.stdout.split()[-1]
        # The calls on that descriptor: recvfrom(fd, ...) or poll([{fd=fd, ...
        on_fd = re.compile(rf"^\d+\s+(\w+)\((?:{fd},|\[\{{fd={fd},)")
        with open(trace) as f:
            lines = f.read().splitlines()
        # Count from the socket pair on: imports read files on that number too.
        start = next(i for i, line in enumerate(lines) if "socketpair(" in line)
        calls = sum(1 for line in lines[start:] if on_fd.match(line))
    return calls / CALLS
