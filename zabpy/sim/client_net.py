"""Simulated client connections: FIFO byte streams between SimClients and servers.

A ``ClientLink`` joins one client and one server. Bytes in each direction
arrive in order, each chunk after a seeded delay that never overtakes the
previous one. The server end owns a real ``protocol.ClientConnection`` (the
framing core the asyncio runtime uses), so requests are parsed from bytes
exactly as in production.

Events, popped in time order: ``open`` (the server accepts or refuses),
``c2s`` / ``s2c`` (bytes), ``close_to_client`` / ``close_to_server`` (the
other end closed; delivered after everything sent before the close). A
crashed server's links break: its clients learn it after a delay, as a TCP
client learns of a reset.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from zabpy.protocol.connection import ClientConnection

__all__ = ["ClientLink", "ClientNet", "ClientEvent"]


@dataclass
class ClientLink:
    cid: int
    client_id: int
    server_id: int
    proto: ClientConnection = field(default_factory=ClientConnection)
    accepted: bool = False
    client_closed: bool = False      # the client end is gone (told or closed itself)
    server_closed: bool = False      # the server end is gone
    last_at: dict[str, int] = field(default_factory=dict)


# not frozen: one is built per message, and a plain __init__ is cheaper (heaps order by (time, seq))
@dataclass(slots=True)
class ClientEvent:
    at_ms: int
    seq: int
    cid: int
    kind: str
    data: bytes = b""


class ClientNet:
    def __init__(self, rng: random.Random, delay_ms_max: int = 10) -> None:
        self.rng = rng
        self.delay_ms_max = delay_ms_max
        self.links: dict[int, ClientLink] = {}
        # (at_ms, seq, event): seq is unique, so the event itself is never compared
        self._heap: list[tuple[int, int, ClientEvent]] = []
        self._seq = 0
        self._next_cid = 0

    def _push(self, now_ms: int, link: ClientLink, way: str, kind: str, data: bytes = b"") -> None:
        at = max(link.last_at.get(way, 0), now_ms + self.rng.randint(1, self.delay_ms_max))
        link.last_at[way] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, ClientEvent(at, self._seq, link.cid, kind,
                                                               data)))

    def open(self, now_ms: int, client_id: int, server_id: int, handshake: bytes) -> ClientLink:
        self._next_cid += 1
        link = ClientLink(self._next_cid, client_id, server_id)
        self.links[link.cid] = link
        self._push(now_ms, link, "c2s", "open")
        self._push(now_ms, link, "c2s", "c2s", handshake)
        return link

    def to_server(self, now_ms: int, link: ClientLink, data: bytes) -> None:
        if not link.client_closed:
            self._push(now_ms, link, "c2s", "c2s", data)

    def to_client(self, now_ms: int, link: ClientLink, data: bytes) -> None:
        if not link.server_closed:
            self._push(now_ms, link, "s2c", "s2c", data)

    def close_by_server(self, now_ms: int, link: ClientLink) -> None:
        if not link.server_closed:
            link.server_closed = True
            self._push(now_ms, link, "s2c", "close_to_client")

    def close_by_client(self, now_ms: int, link: ClientLink) -> None:
        if not link.client_closed:
            link.client_closed = True
            self._push(now_ms, link, "c2s", "close_to_server")

    def break_server(self, now_ms: int, server_id: int) -> None:
        """The server crashed: its ends vanish, its clients learn it after a delay."""
        for link in list(self.links.values()):
            if link.server_id == server_id and not link.server_closed:
                link.server_closed = True
                link.last_at["s2c"] = max(link.last_at.get("s2c", 0), now_ms)
                self._push(now_ms + 2 * self.delay_ms_max, link, "s2c", "close_to_client")

    def next_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> tuple[ClientEvent, ClientLink] | None:
        """The next event due; the harness ignores what reaches an end already closed."""
        if self._heap and self._heap[0][0] <= now_ms:
            ev = heapq.heappop(self._heap)[2]
            return ev, self.links[ev.cid]
        return None

    def idle(self) -> bool:
        return not self._heap
