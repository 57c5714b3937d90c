"""Load: 1,000 concurrent connections to one Server, each moving frames with
content checked, then a graceful shutdown of all of them at once; nothing
lost, no thread or descriptor left after.  The
work runs in a child process (tests/load_server.py), which raises its own
RLIMIT_NOFILE from the usual soft limit of 1024."""
import json
import os
import resource
import subprocess
import sys

import fastsock

HERE = os.path.dirname(os.path.abspath(__file__))
FASTSOCK_PATH = os.path.dirname(os.path.dirname(fastsock.__file__))


def soft_limit_1024():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


def test_1000_connections_move_frames_and_leave_nothing():
    env = dict(os.environ, PYTHONPATH=FASTSOCK_PATH)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "load_server.py"),
         "--connections", "1000", "--rounds", "10"],
        env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=soft_limit_1024)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["peak_open"] == 1000
    assert result["frames"] == result["expected_frames"] == 10_000
    assert result["errors"] == []
    assert result["clients_saw_clean_eof"] == 1000       # shut down idle
    assert result["threads_left"] == 0 and result["descriptors_left"] == 0
    assert result["fd_limit"] > 2000
