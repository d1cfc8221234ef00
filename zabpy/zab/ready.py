"""What a ZAB core asks for: ``ZabReady`` and its parts, and the collector that builds it.

The ordering rules are in the type (STYLE.md "Put the ordering in the output
type"). An executor (the asyncio runtime or the simulator) handles one
``ZabReady`` in this order:

1. ``persist``, in order. Each ``Persist`` is carried out as:
   truncate the log after ``truncate_zxid`` (and rebuild the tree from what
   is left: ZooKeeper reloads its database) → install ``snapshot`` (replace
   tree and sessions with the image, and save it durably; the log restarts
   after it) → append ``records`` → fsync → write ``accepted_epoch`` then
   ``current_epoch`` (atomically, tmp + rename) → only now send ``then``.
   ``payloads``, when not empty, holds each record's log payload already
   encoded (the PROPOSAL's data: TxnHeader ‖ txn ‖ digest), so the log
   writes those bytes instead of encoding the record a second time.
   A later Persist's ``then`` never leaves before an earlier Persist is
   durable; a Persist with nothing to write is a pure barrier ("send after
   everything before is durable"). This is how "txns durable, then the epoch,
   then the ack" (ZOOKEEPER-4643/4646/4785) is kept: no executor can send an
   ACK or an ACKEPOCH early.
2. ``commit``: apply each (TxnHeader, txn) to the tree, in order. Its records
   were appended by this or an earlier Persist (not necessarily fsynced).
3. ``send``: packets safe to send now. A packet addressed to the core's own
   sid is a loopback: hand it back to ``step(my_sid, packet)`` (the leader
   counts its own ACK this way, once its log write is durable).
4. ``close``: quorum connections to drop (a leader dropping a silent
   learner; a learner leaving its leader).
5. the rest are notices for the server: ``phase`` (a role change; LOOKING
   means the role is over and the peer must re-elect), ``requests`` (REQUESTs
   forwarded by learners, for the leader's pipeline), ``touches`` (session
   activity reported in PINGs), ``revalidate`` (sessions a learner asks
   about), ``revalidated`` (the leader's answer, at a learner), ``synced``
   (sync() tokens whose answer may now be sent).
6. ``reads``: ``LogRead``s, a leader asking for committed txns from its
   on-disk log; each is carried out after the writes handed out before it
   and answered with ``log_read(token, txns)``, an input like any other.

Then the executor calls ``advance(ready)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ..jute import records as R
from ..jute.codec import Record, fast_frozen_init

__all__ = ["Phase", "Snapshot", "Persist", "LogRead", "ForwardedRequest", "ZabReady", "Outbox",
           "HandsOut", "Txn", "Envelope", "EMPTY_READY"]

Txn = tuple[R.TxnHeader, Record | None]
Envelope = tuple[int, R.QuorumPacket]


class Phase(IntEnum):
    """Where a role stands (Zab paper phases; LOOKING = back to election)."""

    LOOKING = 0
    DISCOVERY = 1
    SYNCHRONIZATION = 2
    BROADCAST = 3     # leader: established (quorum of NEWLEADER acks); learner: UPTODATE seen


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """A sessions + tree image (SNAP payload) reflecting every txn up to ``zxid``.

    On a leader ``data`` may also be an image the executor is still
    producing (``runtime/snap_image.py``: a forked child serializes it off
    the event loop); the core only passes it on in the SNAP packet."""

    zxid: int
    data: bytes


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Persist:
    truncate_zxid: int | None = None
    snapshot: Snapshot | None = None
    records: tuple[Txn, ...] = ()
    accepted_epoch: int | None = None
    current_epoch: int | None = None
    then: tuple[Envelope, ...] = ()
    payloads: tuple[bytes, ...] = ()   # empty, or records' encoded payloads, one each

    def __post_init__(self) -> None:
        assert not self.payloads or len(self.payloads) == len(self.records), \
            "payloads: none, or one per record"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class LogRead:
    """Read committed txns from the on-disk log, for a learner the in-memory
    history no longer covers (ZooKeeper's DIFF from the txn log).

    The executor answers ``log_read(token, txns)``: the logged txns with zxid
    <= ``upto_zxid``, starting with the first txn of the log file that holds
    ``after_zxid`` (ZooKeeper's TxnLogProposalIterator starts there too), or
    None when the log does not reach back that far, cannot be read, or when
    ``history.log_sync_fits`` says a snapshot is cheaper. It runs after every
    disk write handed out before it."""

    token: int
    after_zxid: int
    upto_zxid: int


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """A REQUEST from learner ``sid``: the leader's pipeline prepares it."""

    sid: int
    session_id: int
    cxid: int
    op: int
    body: bytes
    authinfo: tuple


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ZabReady:
    persist: tuple[Persist, ...] = ()
    commit: tuple[Txn, ...] = ()
    send: tuple[Envelope, ...] = ()
    close: tuple[int, ...] = ()
    phase: Phase | None = None
    requests: tuple[ForwardedRequest, ...] = ()
    touches: tuple[tuple[int, int], ...] = ()
    revalidate: tuple[tuple[int, int, int], ...] = ()
    revalidated: tuple[tuple[int, bool], ...] = ()
    synced: tuple[Any, ...] = ()
    reads: tuple[LogRead, ...] = ()
    # dynamic reconfig: (config text, designated leader or None) to make the
    # peer's current config, after the commits above (COMMITANDACTIVATE,
    # INFORMANDACTIVATE, a NEWLEADER's config at UPTODATE, a leader's own)
    activate: tuple[tuple[bytes, int | None], ...] = ()

    def empty(self) -> bool:
        return not (self.persist or self.commit or self.send or self.close or self.requests
                    or self.touches or self.revalidate or self.revalidated or self.synced
                    or self.reads or self.activate or self.phase is not None)


@dataclass
class Outbox:
    """The mutable side of ZabReady inside a core; ``take`` snapshots it."""

    persist: list[Persist] = field(default_factory=list)
    commit: list[Txn] = field(default_factory=list)
    send: list[Envelope] = field(default_factory=list)
    close: list[int] = field(default_factory=list)
    phase: Phase | None = None
    requests: list[ForwardedRequest] = field(default_factory=list)
    touches: list[tuple[int, int]] = field(default_factory=list)
    revalidate: list[tuple[int, int, int]] = field(default_factory=list)
    revalidated: list[tuple[int, bool]] = field(default_factory=list)
    synced: list[Any] = field(default_factory=list)
    reads: list[LogRead] = field(default_factory=list)
    activate: list[tuple[bytes, int | None]] = field(default_factory=list)

    def barrier(self, *envelopes: Envelope) -> None:
        """Send ``envelopes`` only after everything persisted so far is durable."""
        self.persist.append(Persist(then=tuple(envelopes)))

    def ready(self) -> ZabReady:
        # The hot path (every packet, every pump) is an empty outbox: hand out
        # one shared empty value instead of building ten tuples.
        if not (self.persist or self.commit or self.send or self.close or self.requests
                or self.touches or self.revalidate or self.revalidated or self.synced
                or self.reads or self.activate or self.phase is not None):
            return EMPTY_READY
        return ZabReady(tuple(self.persist), tuple(self.commit), tuple(self.send),
                        tuple(self.close), self.phase, tuple(self.requests), tuple(self.touches),
                        tuple(self.revalidate), tuple(self.revalidated), tuple(self.synced),
                        tuple(self.reads), tuple(self.activate))

    def drain(self) -> "Outbox | None":
        """Hand everything queued over as an Outbox of its own and start empty
        (None when nothing is queued): what ``ready`` then ``advance`` do, for
        the peer that takes a role's output after every packet, without
        building a frozen ZabReady and checking it back each time."""
        if not (self.persist or self.commit or self.send or self.close or self.requests
                or self.touches or self.revalidate or self.revalidated or self.synced
                or self.reads or self.activate or self.phase is not None):
            return None
        taken = Outbox(self.persist, self.commit, self.send, self.close, self.phase,
                       self.requests, self.touches, self.revalidate, self.revalidated,
                       self.synced, self.reads, self.activate)
        self.persist, self.commit, self.send, self.close = [], [], [], []
        self.requests, self.touches, self.revalidate, self.revalidated = [], [], [], []
        self.synced, self.reads, self.activate = [], [], []
        self.phase = None
        return taken

    def advance(self, r: ZabReady) -> None:
        """Drop what ``r`` carried; anything added since stays for the next ready."""
        if r is EMPTY_READY:
            return
        # one test per queue (every packet passes here: no getattr loop)
        if r.persist:
            _drop(self.persist, r.persist, "persist")
        if r.commit:
            _drop(self.commit, r.commit, "commit")
        if r.send:
            _drop(self.send, r.send, "send")
        if r.close:
            _drop(self.close, r.close, "close")
        if r.requests:
            _drop(self.requests, r.requests, "requests")
        if r.touches:
            _drop(self.touches, r.touches, "touches")
        if r.revalidate:
            _drop(self.revalidate, r.revalidate, "revalidate")
        if r.revalidated:
            _drop(self.revalidated, r.revalidated, "revalidated")
        if r.synced:
            _drop(self.synced, r.synced, "synced")
        if r.reads:
            _drop(self.reads, r.reads, "reads")
        if r.activate:
            _drop(self.activate, r.activate, "activate")
        if r.phase is not None and self.phase == r.phase:
            self.phase = None


def _drop(queue: list, taken: tuple, name: str) -> None:
    n = len(taken)
    # The ready is a prefix of the queue: its ends are the very same objects
    # (identity, O(1); comparing values would cost a deep dataclass __eq__ per
    # element on every packet).
    assert len(queue) >= n and queue[0] is taken[0] and queue[n - 1] is taken[-1], \
        f"advance() with a stale ready ({name})"
    del queue[:n]


_QUEUES = ("persist", "commit", "send", "close", "requests", "touches", "revalidate",
           "revalidated", "synced", "reads", "activate")
assert _QUEUES == tuple(f for f in ZabReady.__dataclass_fields__ if f != "phase"), \
    "Outbox.advance drops each queue of ZabReady by name"
EMPTY_READY = ZabReady()


class HandsOut:
    """What a ZAB role (Leader, Learner) offers its peer: its outbox's
    output, read, acknowledged or taken at once. The role keeps the outbox
    in ``_out``."""

    _out: Outbox

    def ready(self) -> ZabReady:
        return self._out.ready()

    def advance(self, ready: ZabReady) -> None:
        self._out.advance(ready)

    def output_changes_peer(self) -> bool:
        """Whether the output queued so far moves the peer (a new phase, a
        config to activate), so that it must be taken before the next input."""
        return self._out.phase is not None or bool(self._out.activate)

    def drain(self) -> Outbox | None:
        """Everything ``ready`` would hand out, taken at once (``Outbox.drain``)."""
        return self._out.drain()
