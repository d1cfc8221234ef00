"""Simulated nodes: the ``Node`` protocol and the election-only node.

The simulator drives every node through the same four verbs as the real
runtime: ``step`` (a message arrived), ``tick`` (time passed), ``ready``
(what must be done) and ``advance`` (it was done). Messages are bytes, so the
real codecs run on every hop. A node also tells the simulator when it next
needs a tick (``next_deadline_ms``), which lets the virtual clock jump
straight to the next event.

``ElectionNode`` wraps one ``FastLeaderElection``. A ZAB peer will implement
the same protocol and add its own fields to ``NodeReady`` (persist, reply).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from zabpy.election import (FastLeaderElection, QuorumVerifier, ServerState, Vote,
                            decode_notification, encode_notification)
from zabpy.jute.codec import DecodeError

__all__ = ["Node", "NodeReady", "ElectionNode"]


@dataclass(frozen=True, slots=True)
class NodeReady:
    send: tuple[tuple[int, bytes], ...] = ()
    decided: Vote | None = None   # an election settled
    inner: Any = None             # the core's own ready value, handed back to advance


class Node(Protocol):
    sid: int

    def start(self, now_ms: int) -> None: ...
    def step(self, src: int, payload: bytes, now_ms: int) -> None: ...
    def tick(self, now_ms: int) -> None: ...
    def ready(self) -> NodeReady: ...
    def advance(self, ready: NodeReady) -> None: ...
    def next_deadline_ms(self) -> int | None: ...


class ElectionNode:
    """A peer that only runs Fast Leader Election (and re-runs it on demand)."""

    def __init__(self, sid: int, quorum: QuorumVerifier, last_zxid: int, current_epoch: int,
                 rng: random.Random, **fle_options: int) -> None:
        self.sid = sid
        self.fle = FastLeaderElection(sid, quorum, last_zxid, current_epoch, rng, **fle_options)
        self.malformed = 0

    @property
    def state(self) -> ServerState:
        return self.fle.state

    @property
    def vote(self) -> Vote | None:
        """The settled vote, or None while looking."""
        return None if self.fle.state == ServerState.LOOKING else self.fle.current_vote

    def start(self, now_ms: int) -> None:
        self.fle.start(now_ms)

    def step(self, src: int, payload: bytes, now_ms: int) -> None:
        try:
            n = decode_notification(payload)
        except DecodeError:
            self.malformed += 1  # the real transport drops it the same way
            return
        self.fle.step(src, n, now_ms)

    def tick(self, now_ms: int) -> None:
        self.fle.tick(now_ms)

    def ready(self) -> NodeReady:
        r = self.fle.ready()
        send = tuple((dst, encode_notification(n)) for dst, n in r.send)
        return NodeReady(send, r.decided, r)

    def advance(self, ready: NodeReady) -> None:
        self.fle.advance(ready.inner)

    def next_deadline_ms(self) -> int | None:
        return self.fle.next_deadline_ms()
