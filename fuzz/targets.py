"""The fuzz targets by name.  Each takes one input of arbitrary bytes and
raises AssertionError where fastsock and its model disagree.  No atheris
here: tests/test_fuzz_corpus.py replays the corpus through these.

- frames: recv_frame, recv_frame_into and frames(), with max_frame;
- lines:  readline, readuntil, line iteration, readlines (limits and
          separators);
- stream: every read call (read, read1, readinto, readinto1, readexactly,
          peek, readline, readuntil, the frame reads) interleaved;
- events: EventServer's splitter (frame, line, delimiter, raw) fed
          chunks over a Unix socket, messages and replies checked.
"""
import eventcheck
import streamcheck


def _stream_target(steps):
    return lambda data: streamcheck.check(data, steps)


TARGETS = {
    "frames": _stream_target(streamcheck.FRAMES),
    "lines": _stream_target(streamcheck.LINES),
    "stream": _stream_target(streamcheck.STREAM),
    "events": eventcheck.check,
}


def finish():
    """Ends what the targets keep between inputs (the event servers)."""
    eventcheck.close_servers()
