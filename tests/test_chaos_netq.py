"""The NFQUEUE verdict loop (zabpy.chaos.netq) that gives the fault harness
latency, jitter, reordering and duplication on a kernel without netem:
two member namespaces of the harness's network, a UDP echo in one, probes
from the other through a delayed link. Root only, as the harness."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zabpy.chaos.net import Network, iptables_command, why_not_runnable

pytestmark = pytest.mark.skipif(why_not_runnable() is not None or iptables_command() is None,
                                reason=f"needs root and iptables: {why_not_runnable()}")

ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7007))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
"""

PROBE = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3.0)
dst = (sys.argv[1], 7007)
rtt = []
for i in range(5):                  # one at a time: round-trip times
    t = time.monotonic()
    s.sendto(b"r%d" % i, dst)
    while s.recv(64) != b"r%d" % i:
        pass
    rtt.append((time.monotonic() - t) * 1000)
seen = []


def take(wait_s):
    s.settimeout(wait_s)
    try:
        while True:
            d = s.recv(64)
            if not d.startswith(b"r"):
                seen.append(int(d))
    except socket.timeout:
        pass


for i in range(300):                # a burst: the order they come back in
    s.sendto(b"%d" % i, dst)
    take(0.001)                     # read as they come: the socket's buffer is small
take(1.5)
print(json.dumps({"rtt_ms": rtt, "seen": seen}))
"""


def _probe(net: Network, delay: dict) -> tuple[dict, str]:
    what = net.delay(1, **delay)
    try:
        out = subprocess.run(["ip", "netns", "exec", net.ns(1), sys.executable, "-c", PROBE,
                              net.addr(2)], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    finally:
        net.undelay_all()
    return json.loads(out), what


def test_delay_jitter_reordering_and_duplicates_are_what_the_loop_was_told():
    net = Network([1, 2], tag="netq")
    echo = None
    try:
        net.create()
        echo = subprocess.Popen(["ip", "netns", "exec", net.ns(2), sys.executable, "-c", ECHO,
                                 net.addr(2)], stdout=subprocess.PIPE, text=True)
        assert echo.stdout.readline().strip() == "ready"

        # 80 ms each way on member 1's link: every round trip crosses it twice.
        plain, what = _probe(net, {"delay_ms": 80})
        assert what == "netq delay 80ms, each way"
        assert min(plain["rtt_ms"]) >= 160, plain["rtt_ms"]
        assert sorted(plain["seen"]) == list(range(300))   # held, none lost or repeated
        assert plain["seen"] == list(range(300))          # a fixed delay keeps the order
        assert net.released[-1].counts.startswith("accepted "), net.released[-1].output

        # Jitter as wide as the delay, 30 % overtaking, 30 % sent twice.
        messy, _ = _probe(net, {"delay_ms": 30, "jitter_ms": 30, "reorder_pct": 30,
                                "duplicate_pct": 30, "seed": 5})
        seen = messy["seen"]
        assert set(seen) == set(range(300)), "a reordered packet was lost"
        assert len(seen) > 300, "no duplicates"
        assert any(b < a for a, b in zip(seen, seen[1:])), "no reordering"
        counts = dict(zip(net.released[-1].counts.split()[::2],
                          map(int, net.released[-1].counts.split()[1::2])))
        assert counts["duplicated"] > 0 and counts["overtaking"] > 0, counts

        # Healed: no rule, no loop left; the link is fast again.
        assert not net.queues
        rules = subprocess.run(["ip", "netns", "exec", net.ns(1), iptables_command(), "-S"],
                               capture_output=True, text=True).stdout
        assert "NFQUEUE" not in rules, rules
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        net.close()
    assert net.exists() == []
