"""A real network path: two network namespaces joined by a veth pair, with
random packet loss (nftables drop rules) and a bandwidth limit (the tbf
qdisc; this kernel has no netem).  Streams, frames and datagram batches
cross it (tests/netpath_peer.py runs at each end): every stream byte and
frame must arrive intact and in order; datagram loss is counted, checked
against the drop counters and reported.

Needs root, `ip`, `tc` and `nft` (Debian: iproute2, nftables).  Without
them the tests say so and skip, unless FASTSOCK_NETNS=required (CI), where
they fail instead.  The addresses (10.77.0.0/24) exist only inside the
namespaces, which are removed when the tests end.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import netpath_peer

LOSS_TCP = 2            # percent of TCP packets dropped, each direction
LOSS_UDP = 5            # percent of datagrams dropped on the way to the server
RATE = "20mbit"
HERE = os.path.dirname(os.path.abspath(__file__))


def missing():
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return f"no '{tool}' command (apt-get install iproute2 nftables)"
    probe = subprocess.run(["ip", "netns", "add", f"fsprobe{os.getpid()}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"fsprobe{os.getpid()}"])
    return None


def tool_env():
    # ip, tc and nft are not ours: no sanitizer runtime preloaded into them.
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def run(*cmd, ns=None, stdin=None):
    if ns:
        cmd = ("ip", "netns", "exec", ns, *cmd)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                         env=tool_env(), input=stdin)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


class Path:
    """Namespaces a (client, 10.77.0.1) and b (server, 10.77.0.2)."""

    def __init__(self):
        tag = os.getpid()
        self.a, self.b = f"fastsock-a{tag}", f"fastsock-b{tag}"
        self.va, self.vb = f"fsa{tag}", f"fsb{tag}"
        self.client, self.server = "10.77.0.1", "10.77.0.2"

    def up(self):
        run("ip", "netns", "add", self.a)
        run("ip", "netns", "add", self.b)
        run("ip", "link", "add", self.va, "netns", self.a, "type", "veth",
            "peer", "name", self.vb, "netns", self.b)
        for ns, dev, addr in ((self.a, self.va, self.client),
                              (self.b, self.vb, self.server)):
            run("ip", "addr", "add", f"{addr}/24", "dev", dev, ns=ns)
            run("ip", "link", "set", dev, "up", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
            run("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
                RATE, "burst", "32kb", "latency", "50ms", ns=ns)
            # Dropped on arrival: a drop on the way out would be reported
            # to the sender (EPERM), which a real network never does.
            udp = (f'iifname "{dev}" meta l4proto udp numgen random mod 100 '
                   f"< {LOSS_UDP} counter drop" if ns == self.b else "")
            run("nft", "-f", "-", ns=ns, stdin=f"""
                table inet loss {{
                    chain arrive {{
                        type filter hook input priority 0; policy accept;
                        iifname "{dev}" meta l4proto tcp numgen random mod 100 < {LOSS_TCP} counter drop
                        {udp}
                    }}
                }}""")

    def down(self):
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True,
                           env=tool_env())

    def dropped(self, ns, proto):
        """Packets of `proto` that the loss rule in `ns` dropped."""
        rules = json.loads(run("nft", "-j", "list", "table", "inet", "loss",
                               ns=ns))
        for item in rules["nftables"]:
            expr = item.get("rule", {}).get("expr", [])
            if any(e.get("match", {}).get("right") == proto for e in expr):
                return next(e["counter"]["packets"] for e in expr
                            if "counter" in e)
        raise AssertionError(f"no {proto} rule in {ns}")

    def qdisc_drops(self, ns, dev):
        stats = json.loads(run("tc", "-s", "-j", "qdisc", "show", "dev", dev,
                               ns=ns))
        return sum(q.get("drops", 0) for q in stats)

    def udp_errors(self, ns):
        """Datagrams the receiving kernel dropped (buffer full)."""
        lines = run("cat", "/proc/net/snmp", ns=ns).splitlines()
        head, values = [l.split() for l in lines if l.startswith("Udp:")][:2]
        stats = dict(zip(head[1:], map(int, values[1:])))
        return stats["RcvbufErrors"]


@pytest.fixture(scope="module")
def path():
    why = missing()
    if why:
        if os.environ.get("FASTSOCK_NETNS") == "required":
            pytest.fail(f"the network-path tests cannot run here: {why}")
        pytest.skip(f"the network-path tests cannot run here: {why}")
    p = Path()
    try:
        p.up()
        yield p
    finally:
        p.down()


def peer(path, ns, role, host):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable,
         os.path.join(HERE, "netpath_peer.py"), role, host],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def exchange(path):
    """Runs both ends once; returns (client report, server report)."""
    server = peer(path, path.b, "server", path.server)
    try:
        assert server.stdout.readline().strip() == "ready", \
            server.stderr.read()
        client = peer(path, path.a, "client", path.server)
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err
        sout, serr = server.communicate(timeout=60)
        assert server.returncode == 0, serr
    finally:
        for p in (server, locals().get("client")):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    return json.loads(out), json.loads(sout)


def test_stream_bytes_arrive_intact_and_in_order(exchange):
    client, server = exchange
    size = netpath_peer.STREAM_BYTES
    assert server["stream_in"] == {"bytes": size, "intact": True}
    assert client["stream_back"] == {"bytes": size, "intact": True}


def test_frames_arrive_intact_and_in_order(exchange):
    client, server = exchange
    n = netpath_peer.FRAMES
    assert server["frames_in"] == {"count": n, "bad": 0}
    assert client["frames_back"] == {"count": n, "bad": 0}


def test_tcp_crossed_real_loss(path, exchange, capsys):
    # The streams above were retransmitted through drops, both ways.
    to_client, to_server = path.dropped(path.a, "tcp"), path.dropped(path.b, "tcp")
    with capsys.disabled():
        print(f"\nlossy path ({RATE}, {LOSS_TCP}% TCP drop rule): "
              f"{to_server} TCP packets dropped towards the server, "
              f"{to_client} towards the client; every byte arrived")
    assert to_client > 0 and to_server > 0


def test_datagram_loss_is_counted(path, exchange, capsys):
    client, server = exchange
    sent = client["datagrams_out"]["sent"]
    got = server["datagrams_in"]
    assert sent == netpath_peer.DATAGRAMS
    assert got["damaged"] == 0 and got["duplicates"] == 0
    lost = sent - got["received"]
    by_rule = path.dropped(path.b, "udp")
    by_queue = path.qdisc_drops(path.a, path.va)    # TCP's drops too
    by_receiver = path.udp_errors(path.b)
    with capsys.disabled():
        print(f"\nlossy path ({RATE}, {LOSS_UDP}% datagram drop rule): "
              f"{sent} datagrams sent, {got['received']} received, {lost} "
              f"lost ({100 * lost / sent:.1f}%): {by_rule} by the drop rule, "
              f"{by_receiver} by the receiver's full buffer (and at most "
              f"{by_queue} by the rate limiter's queue, TCP's drops "
              f"included); none damaged or duplicated")
    # Every loss is one the path made, not one fastsock made.
    assert by_rule > 0
    assert by_rule + by_receiver <= lost <= by_rule + by_receiver + by_queue
