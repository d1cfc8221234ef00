"""Latency, jitter, reordering, loss and duplication without ``tc netem``:
a userspace verdict loop on an nfnetlink queue.

Theory of operation
-------------------
This kernel has no ``sch_netem`` and nft has no ``queue`` statement, but the
xtables NFQUEUE target is built in. So inside a member's namespace an
``iptables`` rule sends the packets of the link to be slowed (everything on
``eth0``, or only what goes to and comes from one peer) to queue N::

    iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num N --queue-bypass
    iptables -A INPUT  -i eth0 -j NFQUEUE --queue-num N --queue-bypass

and this process, started in that namespace, binds queue N over an
``AF_NETLINK`` / ``NETLINK_NETFILTER`` socket (the nfnetlink_queue protocol,
spoken here with ``struct``; no library). For every packet the kernel sends
an ``NFQNL_MSG_PACKET`` with the packet's id, and holds the packet until it
gets an ``NFQNL_MSG_VERDICT`` for that id. The loop:

* drops a packet with probability ``loss`` (verdict ``NF_DROP``);
* otherwise gives it a release time, now + ``delay`` + uniform(-``jitter``,
  +``jitter``) (never before now), or, with probability ``reorder``, now:
  such a packet overtakes the ones held (netem's "reorder"); jitter wider
  than the gap between packets reorders them too;
* at its release time accepts it (``NF_ACCEPT``). Verdicts are single, by
  id, so they may come in any order: the kernel looks each id up;
* with probability ``duplicate``, also sends a copy of the packet (the
  queue then copies packets, not only their metadata) through a raw IP
  socket carrying ``MARK_DUP``, which the iptables rules let pass.

Each direction is delayed by ``delay``: with both rules a round trip through
the member gains ``2 * delay`` (one way out, one way in).

``--queue-bypass`` means a packet passes unqueued while no process listens:
if this loop dies, the link is fast again rather than cut. The harness
removes the rules before it stops the loop.

Bounds: at most ``MAX_HELD`` packets held (the queue's own length is set to
that; beyond it the kernel drops, as a full netem queue would). The seeded
``random.Random`` makes the draws repeatable for one packet sequence; the
packets themselves come as the network makes them.

Run: ``python -m zabpy.chaos.netq --queue N --delay-ms D [--jitter-ms J]
[--reorder P] [--loss P] [--duplicate P] [--seed S]`` inside the namespace
(``ip netns exec``). It prints ``ready`` once bound, and on SIGTERM prints
how many packets it accepted, dropped, duplicated and reordered.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

__all__ = ["Queue", "main", "MARK_DUP", "rules"]

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQA_CFG_F_GSO = 1 << 2
NFQNL_COPY_META, NFQNL_COPY_PACKET = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
MARK_DUP = 0x5A1
MAX_HELD = 8192
RCVBUF = 8 << 20
RECV_BYTES = 1 << 17

_NLH = struct.Struct("=IHHII")        # len, type, flags, seq, portid
_NFGEN = struct.Struct("!BBH")        # family, version, res_id (the queue number)
_NLA = struct.Struct("=HH")           # len, type
_PKT_HDR = struct.Struct("!IHB")      # packet id, hw protocol, hook


def _attr(kind: int, payload: bytes) -> bytes:
    n = _NLA.size + len(payload)
    return _NLA.pack(n, kind) + payload + bytes(-n % 4)


def _msg(msg_type: int, queue: int, attrs: bytes, seq: int, flags: int = NLM_F_REQUEST,
         family: int = socket.AF_UNSPEC) -> bytes:
    body = _NFGEN.pack(family, 0, queue) + attrs
    return _NLH.pack(_NLH.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq,
                     0) + body


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out = {}
    while off + _NLA.size <= end:
        n, kind = _NLA.unpack_from(buf, off)
        if n < _NLA.size:
            break
        out[kind & 0x3FFF] = buf[off + _NLA.size:off + n]
        off += (n + 3) & ~3
    return out


def rules(queue: int, peer: str | None = None, table: str = "filter") -> list[list[str]]:
    """The iptables rules (arguments after ``-A``/``-D``) that send a
    member's traffic on eth0, or only its traffic with ``peer``, to
    ``queue``; duplicates (``MARK_DUP``) pass.

    A packet accepted by a queue's verdict leaves its chain, so a second
    queue in the same chain would never see it: two delays of one member
    go in different tables (``mangle`` runs before ``filter``), and each
    packet waits in both."""
    out = ["-t", table, "OUTPUT", "-o", "eth0"] + (["-d", peer] if peer else [])
    inp = ["-t", table, "INPUT", "-i", "eth0"] + (["-s", peer] if peer else [])
    tail = ["-m", "mark", "!", "--mark", str(MARK_DUP), "-j", "NFQUEUE", "--queue-num",
            str(queue), "--queue-bypass"]
    return [out + tail, inp + tail]


class Queue:
    """One bound nfnetlink queue and the packets it holds."""

    def __init__(self, queue: int, delay_ms: float, jitter_ms: float = 0.0,
                 reorder: float = 0.0, loss: float = 0.0, duplicate: float = 0.0,
                 seed: int = 0):
        assert delay_ms >= 0 and 0 <= jitter_ms and 0 <= reorder <= 1 and 0 <= loss <= 1
        assert 0 <= duplicate <= 1
        self.queue = queue
        self.delay_s, self.jitter_s = delay_ms / 1000.0, jitter_ms / 1000.0
        self.reorder, self.loss, self.duplicate = reorder, loss, duplicate
        self.rng = random.Random(seed)
        self.held: list[tuple[float, int, int]] = []   # (release time, arrival n, packet id)
        self.copies: dict[int, bytes] = {}              # packet id -> payload to send twice
        self.counts = {"accepted": 0, "dropped": 0, "duplicated": 0, "overtaking": 0,
                       "overflow": 0}
        self.arrivals = 0
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)   # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.raw = None
        if duplicate > 0:
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK_DUP)
        self._bind()

    def _request(self, attrs: bytes) -> None:
        """Send one config message and wait for its acknowledgement."""
        self.seq += 1
        self.sock.send(_msg(NFQNL_MSG_CONFIG, self.queue, attrs, self.seq,
                            NLM_F_REQUEST | NLM_F_ACK, socket.AF_INET))
        while True:
            data = self.sock.recv(RECV_BYTES)
            off = 0
            while off + _NLH.size <= len(data):
                n, kind, _flags, seq, _pid = _NLH.unpack_from(data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    err = struct.unpack_from("=i", data, off + _NLH.size)[0]
                    if err:
                        raise OSError(-err, f"nfqueue {self.queue} config: {os.strerror(-err)}")
                    return
                off += (n + 3) & ~3

    def _bind(self) -> None:
        self._request(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND,
                                                      socket.AF_INET)))
        mode, rng = (NFQNL_COPY_PACKET, 0xFFFF) if self.raw else (NFQNL_COPY_META, 0)
        params = _attr(NFQA_CFG_PARAMS, struct.pack("!IB", rng, mode))
        params += _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", MAX_HELD))
        if not self.raw:
            # Whole GSO super-packets, unsegmented: fewer packets to hold.
            flags = struct.pack("!I", NFQA_CFG_F_GSO)
            params += _attr(NFQA_CFG_FLAGS, flags) + _attr(NFQA_CFG_MASK, flags)
        self._request(params)

    def close(self) -> None:
        for _t, _n, pid in self.held:
            self._verdict(pid, NF_ACCEPT)
        self.held.clear()
        try:
            self._request(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND,
                                                          socket.AF_INET)))
        except OSError:
            pass     # the namespace may be going away; the kernel unbinds on close
        self.sock.close()
        if self.raw:
            self.raw.close()

    def _verdict(self, packet_id: int, verdict: int) -> None:
        self.seq += 1
        attrs = _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
        self.sock.send(_msg(NFQNL_MSG_VERDICT, self.queue, attrs, self.seq))

    def _arrive(self, packet_id: int, payload: bytes | None, now: float) -> None:
        self.arrivals += 1
        r = self.rng
        if self.loss and r.random() < self.loss:
            self._verdict(packet_id, NF_DROP)
            self.counts["dropped"] += 1
            return
        if len(self.held) >= MAX_HELD:
            self._verdict(packet_id, NF_DROP)
            self.counts["overflow"] += 1
            return
        if self.reorder and r.random() < self.reorder:
            release = now
            if self.held:
                self.counts["overtaking"] += 1
        else:
            release = now + max(0.0, self.delay_s + r.uniform(-self.jitter_s, self.jitter_s))
        if payload is not None and self.duplicate and r.random() < self.duplicate:
            self.copies[packet_id] = payload
        heapq.heappush(self.held, (release, self.arrivals, packet_id))

    def _release(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            _t, _n, pid = heapq.heappop(self.held)
            self._verdict(pid, NF_ACCEPT)
            self.counts["accepted"] += 1
            copy = self.copies.pop(pid, None)
            if copy is not None and len(copy) >= 20:
                try:
                    self.raw.sendto(copy, (socket.inet_ntoa(copy[16:20]), 0))
                    self.counts["duplicated"] += 1
                except OSError:
                    pass     # a copy that cannot be sent is a copy lost: what a net does

    def _receive(self, now: float) -> None:
        try:
            data = self.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                return
            raise
        off = 0
        while off + _NLH.size <= len(data):
            n, kind, _flags, _seq, _pid = _NLH.unpack_from(data, off)
            if n < _NLH.size:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = _attrs(data, off + _NLH.size + _NFGEN.size, off + n)
                hdr = a.get(NFQA_PACKET_HDR)
                if hdr is not None:
                    self._arrive(_PKT_HDR.unpack_from(hdr)[0], a.get(NFQA_PAYLOAD), now)
            elif kind == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, off + _NLH.size)[0]
                if err:
                    print(f"netq {self.queue}: netlink error {os.strerror(-err)}",
                          file=sys.stderr, flush=True)
            off += (n + 3) & ~3

    def run(self, stop) -> None:
        """Hold and release packets until ``stop()`` is true."""
        fd = self.sock.fileno()
        while not stop():
            now = time.monotonic()
            self._release(now)
            wait = (self.held[0][0] - now) if self.held else 0.5
            ready, _, _ = select.select([fd], [], [], max(0.0, min(wait, 0.5)))
            if ready:
                self._receive(time.monotonic())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m zabpy.chaos.netq", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0, help="fraction sent at once")
    p.add_argument("--loss", type=float, default=0.0, help="fraction dropped")
    p.add_argument("--duplicate", type=float, default=0.0, help="fraction sent twice")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    q = Queue(a.queue, a.delay_ms, a.jitter_ms, a.reorder, a.loss, a.duplicate, a.seed)
    print("ready", flush=True)
    try:
        q.run(lambda: bool(stopping))
    finally:
        q.close()
        print(" ".join(f"{k} {v}" for k, v in q.counts.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
