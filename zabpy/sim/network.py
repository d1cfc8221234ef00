"""A virtual network: seeded drops, delays, reordering, duplicates, partitions.

Every message sent becomes zero or more deliveries in a heap ordered by
(delivery time, sequence number), so equal times keep send order and a run
is a pure function of the seed. Faults:

* drop: each message is lost with probability ``drop``;
* duplicate: each delivered message is delivered twice with ``duplicate``;
* delay/reorder: each copy is delayed uniformly in [delay_ms_min, delay_ms_max],
  so later messages can overtake earlier ones;
* partitions: a blocked (src, dst) pair loses everything sent while blocked,
  and anything in flight is lost at delivery time; blocking both pairs is a
  symmetric partition.

Messages a node sends to itself are loopback: delivered at once, never lost.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

__all__ = ["NetworkFaults", "Network", "Delivery"]


@dataclass
class NetworkFaults:
    drop: float = 0.0
    duplicate: float = 0.0
    delay_ms_min: int = 1
    delay_ms_max: int = 20


# not frozen: one is built per message, and a plain __init__ is cheaper (heaps order by (time, seq))
@dataclass(slots=True)
class Delivery:
    at_ms: int
    seq: int
    src: int
    dst: int
    payload: bytes


class Network:
    def __init__(self, rng: random.Random, faults: NetworkFaults | None = None) -> None:
        self.rng = rng
        self.faults = faults or NetworkFaults()
        # (at_ms, seq, event): seq is unique, so the event itself is never compared
        self._heap: list[tuple[int, int, Delivery]] = []
        self._seq = 0
        self._blocked: dict[tuple[int, int], None] = {}
        self.sent = 0
        self.lost = 0

    def blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self._blocked

    def block(self, src: int, dst: int, symmetric: bool = False) -> None:
        self._blocked[(src, dst)] = None
        if symmetric:
            self._blocked[(dst, src)] = None

    def heal(self) -> None:
        self._blocked.clear()

    def partitions(self) -> list[tuple[int, int]]:
        return sorted(self._blocked)

    def _push(self, at_ms: int, src: int, dst: int, payload: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, self._seq,
                                    Delivery(at_ms, self._seq, src, dst, payload)))

    def send(self, now_ms: int, src: int, dst: int, payload: bytes) -> None:
        self.sent += 1
        if src == dst:
            self._push(now_ms, src, dst, payload)
            return
        f = self.faults
        if self.blocked(src, dst) or self.rng.random() < f.drop:
            self.lost += 1
            return
        copies = 2 if self.rng.random() < f.duplicate else 1
        for _ in range(copies):
            self._push(now_ms + self.rng.randint(f.delay_ms_min, f.delay_ms_max), src, dst, payload)

    def next_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> Delivery | None:
        """The next delivery due by ``now_ms`` that no partition swallowed."""
        while self._heap and self._heap[0][0] <= now_ms:
            d = heapq.heappop(self._heap)[2]
            if d.src != d.dst and self.blocked(d.src, d.dst):
                self.lost += 1
                continue
            return d
        return None
