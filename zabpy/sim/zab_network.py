"""Simulated quorum connections: FIFO byte streams that break like TCP.

ZAB assumes FIFO channels, so quorum traffic does not go through the lossy
datagram ``Network`` (election traffic still does). A ``Conn`` joins a
learner and a leader; each direction delivers packets in order, each after a
seeded delay (never overtaking the previous one). Packets travel as bytes
through the real stream codec (``encode_packet`` / ``PacketDecoder``), split
at seeded points.

How connections fail:

* a partition between the two ends (or a crash of one end) *breaks* it
  silently: everything in flight and everything sent later is lost, and
  neither side is told; the ZAB timers must notice (as a TCP peer notices
  only by a read timeout);
* a close (a ``close`` action, a role change, a reset fault) tears it down
  and the other end learns of it (``disconnected``) after a delay;
* a dial across a partition fails after a connect timeout.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from zabpy.jute import records as R
from zabpy.zab.packets import PacketDecoder, encode_packet

__all__ = ["Conn", "ConnNetwork", "ConnEvent"]


@dataclass
class Conn:
    cid: int
    learner: int
    leader: int
    broken: bool = False
    closed: bool = False
    last_at: dict[int, int] = field(default_factory=dict)       # per destination
    decoders: dict[int, PacketDecoder] = field(default_factory=dict)

    def other(self, sid: int) -> int:
        return self.leader if sid == self.learner else self.learner


# not frozen: one is built per message, and a plain __init__ is cheaper (heaps order by (time, seq))
@dataclass(slots=True)
class ConnEvent:
    at_ms: int
    seq: int
    cid: int
    dst: int
    kind: str                     # "data" or "closed"
    data: bytes = b""


class ConnNetwork:
    def __init__(self, rng: random.Random, delay_ms_max: int = 20) -> None:
        self.rng = rng
        self.delay_ms_max = delay_ms_max
        self.conns: dict[int, Conn] = {}
        # (at_ms, seq, event): seq is unique, so the event itself is never compared
        self._heap: list[tuple[int, int, ConnEvent]] = []
        self._seq = 0
        self._next_cid = 0

    def _push(self, at_ms: int, cid: int, dst: int, kind: str, data: bytes = b"") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, self._seq,
                                    ConnEvent(at_ms, self._seq, cid, dst, kind, data)))

    def dial(self, now_ms: int, learner: int, leader: int, reachable: bool) -> Conn:
        self._next_cid += 1
        conn = Conn(self._next_cid, learner, leader)
        self.conns[conn.cid] = conn
        if not reachable:
            conn.broken = True
            self._push(now_ms + 200, conn.cid, learner, "closed")  # connect timeout
        return conn

    def send(self, now_ms: int, conn: Conn, src: int, pkt: R.QuorumPacket) -> None:
        if conn.broken or conn.closed:
            return
        dst = conn.other(src)
        at = max(conn.last_at.get(dst, 0), now_ms + self.rng.randint(1, self.delay_ms_max))
        conn.last_at[dst] = at
        raw = encode_packet(pkt)
        # Split the stream at a seeded point so the decoder sees partial packets.
        cut = self.rng.randint(0, len(raw))
        self._push(at, conn.cid, dst, "data", raw[:cut])
        self._push(at, conn.cid, dst, "data", raw[cut:])

    def close(self, now_ms: int, conn: Conn, by: int) -> None:
        if conn.closed:
            return
        conn.closed = True
        if not conn.broken:
            self._push(now_ms + self.rng.randint(1, self.delay_ms_max), conn.cid, conn.other(by),
                       "closed")
        del self.conns[conn.cid]

    def break_between(self, a: int, b: int) -> None:
        for conn in self.conns.values():
            if {conn.learner, conn.leader} == {a, b}:
                conn.broken = True

    def break_all_of(self, sid: int) -> None:
        for cid in [c for c, conn in self.conns.items() if sid in (conn.learner, conn.leader)]:
            self.conns[cid].broken = True
            del self.conns[cid]

    def next_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> tuple[ConnEvent, list[R.QuorumPacket]] | None:
        """The next event due, with the packets it completes (for data events)."""
        while self._heap and self._heap[0][0] <= now_ms:
            ev = heapq.heappop(self._heap)[2]
            conn = self.conns.get(ev.cid)
            if ev.kind == "closed":
                return ev, []
            if conn is None or conn.broken:
                continue
            dec = conn.decoders.setdefault(ev.dst, PacketDecoder())
            return ev, dec.feed(ev.data)
        return None
