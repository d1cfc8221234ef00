"""The ZAB learner role (follower, or observer) as a sans-IO state machine.

State owned: the phase (DISCOVERY → SYNCHRONIZATION → BROADCAST, LOOKING
once the role is over), the stage inside synchronization, the txns received
during sync, the proposals logged but not yet committed (``pending``, zxid
order), the epochs, the session touches to report in the next PING reply,
the forwarded sync() calls waiting for the leader's SYNC, and one timer.

Inputs: ``step(leader_sid, packet, now_ms)``, ``disconnected(now_ms)``,
``tick(now_ms)``; from the server: ``forward(...)`` (a write, session
change or sync() to hand to the leader as REQUEST), ``touch(session_id,
timeout_ms)``, ``revalidate(session_id, timeout_ms)``. Outputs: ``ready()`` /
``advance(ready)`` (see ``ready.py``). Creating a Learner queues its
FOLLOWERINFO / OBSERVERINFO: the executor dials the leader's quorum port and
sends it first.

Rules, with their Zab.tla action names:

F1 (FollowerProcessNEWEPOCH) LEADERINFO with newEpoch > acceptedEpoch:
   persist acceptedEpoch, then ACKEPOCH(lastLoggedZxid, currentEpoch) (in
   the Persist's ``then``); equal: ACKEPOCH(..., -1) after a barrier;
   smaller: leave (LOOKING).
F2 (FollowerProcessNEWLEADER / FollowerProcessSyncMessage) DIFF, TRUNC(z) or
   SNAP opens synchronization; PROPOSAL/COMMIT pairs follow, in zxid order.
   On NEWLEADER one Persist carries, in this order: the truncation, the
   snapshot, every txn received, the new currentEpoch; its ``then`` holds the
   NEWLEADER ACK and the ACKs of the uncommitted proposals. So the txns are
   durable before the epoch, and the epoch before the ack (the 3.8.5/3.9.3
   order that closes ZOOKEEPER-4643/4646/4785). The committed ones are
   applied (``commit``) after that Persist.
F3 (FollowerProcessUPTODATE) UPTODATE: serve clients; ACK(epoch << 32).
F4 (FollowerProcessPROPOSAL / FollowerProcessCOMMIT) a PROPOSAL is logged and
   ACKed after its fsync; a COMMIT must name the oldest pending proposal and
   applies it. An observer logs and applies each INFORM.
F6 dynamic reconfig: NEWLEADER's data is the leader's last seen config; it
   is activated at UPTODATE. COMMITANDACTIVATE (data: the designated
   leader's sid) commits the oldest pending proposal, a reconfig, and
   activates its config; an observer's INFORMANDACTIVATE carries that sid
   and then the txn, logged and applied as an INFORM. Activations go out in
   ``activate``, after the commits; the peer decides whether the role ends.
F5 liveness: a learner that hears nothing from its leader for initLimit
   ticks (syncLimit once past NEWLEADER), loses the connection, or sees the
   leader break the protocol, leaves: LOOKING, and the peer re-elects.
F6 (Learner.connectToLeader) a link lost before the leader said anything
   (its quorum port not open yet: it decided after us) is dialled again,
   ``LEARNER_CONNECT_RETRY_MS`` later, up to ``LEARNER_CONNECT_TRIES_MAX``
   attempts within initLimit ticks; ``redial_due`` tells the peer to dial,
   and FOLLOWERINFO / OBSERVERINFO is queued again behind the dial.
F7 PING is answered only once NEWLEADER is acked, never ahead of that ACK
   (``_on_ping``).
"""

from __future__ import annotations

from typing import Any

from ..jute import records as R
from ..jute.codec import DecodeError
from ..jute.constants import OP
from ..limits import (LEARNER_CONNECT_RETRY_MS, LEARNER_CONNECT_TRIES_MAX, ZAB_PENDING_SYNCS_MAX,
                      ZAB_TOUCHES_MAX)
from . import packets as P
from .leader import ZabTimers
from .packets import PKT as T
from .ready import HandsOut, Outbox, Persist, Phase, Snapshot, Txn

# Phase members as module constants: compared on every packet, where a class
# attribute look-up on the enum costs more than the comparison.
_BROADCAST, _LOOKING = Phase.BROADCAST, Phase.LOOKING

__all__ = ["Learner"]

# Stages, in order.
_INFO_SENT, _EPOCH_ACKED, _SYNCING, _NEWLEADER_ACKED, _SERVING = range(5)


class LeaderProtocolError(Exception):
    """The leader sent something out of order (internal: ends the role)."""


class Learner(HandsOut):
    """One follower or observer term of one peer; see the module docstring."""

    def __init__(self, my_sid: int, leader_sid: int, last_logged_zxid: int,
                 accepted_epoch: int, current_epoch: int, now_ms: int, *, observer: bool = False,
                 timers: ZabTimers = ZabTimers(), config_version: int = 0) -> None:
        assert my_sid != leader_sid
        self.my_sid = my_sid
        self.leader_sid = leader_sid
        self.observer = observer
        self.timers = timers
        self.last_logged_zxid = last_logged_zxid
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.new_epoch: int | None = None
        self.phase = Phase.DISCOVERY
        self.stage = _INFO_SENT
        self.last_heard_ms = now_ms
        self._truncate: int | None = None
        self._snapshot: Snapshot | None = None
        self._sync_txns: list[Txn] = []
        self._sync_committed = 0
        self.pending: dict[int, Txn] = {}
        self.touches: dict[int, int] = {}
        self.pending_syncs: list[Any] = []
        self.newleader_config: bytes | None = None   # F6: activated at UPTODATE
        self.started_ms = now_ms
        self.connect_tries = 1
        self.redial_at_ms: int | None = None
        self.redial_due = False
        self._heard = False
        kind = T.OBSERVERINFO if observer else T.FOLLOWERINFO
        self._info = P.learner_info(kind, my_sid, accepted_epoch, config_version)
        self._out = Outbox(phase=Phase.DISCOVERY)
        self._out.send.append((leader_sid, self._info))

    # ---- the verbs ------------------------------------------------------------
    def step(self, sid: int, pkt: R.QuorumPacket, now_ms: int) -> None:
        if self.phase == _LOOKING or sid != self.leader_sid:
            return
        self.last_heard_ms = now_ms
        self._heard = True
        try:
            self._dispatch(pkt)
        except (DecodeError, LeaderProtocolError):
            self._leave()
        self._check()

    def disconnected(self, now_ms: int) -> None:
        if self.phase == _LOOKING:
            return
        if self._may_redial(now_ms):
            self.redial_at_ms = now_ms + LEARNER_CONNECT_RETRY_MS
            return
        self._leave()

    def _may_redial(self, now_ms: int) -> bool:
        """F6: the leader never spoke on this link, tries and initLimit remain."""
        return (not self._heard and self.redial_at_ms is None and not self.redial_due
                and self.connect_tries < LEARNER_CONNECT_TRIES_MAX
                and now_ms + LEARNER_CONNECT_RETRY_MS < self.started_ms + self.timers.init_ms)

    def tick(self, now_ms: int) -> None:
        if self.phase == _LOOKING:
            return
        if self.redial_at_ms is not None and now_ms >= self.redial_at_ms:
            self.redial_at_ms = None
            self.redial_due = True
            self.connect_tries += 1
            self._out.send.append((self.leader_sid, self._info))
        deadline = self.next_deadline_ms()
        if deadline is not None and now_ms >= deadline:
            self._leave()

    def next_deadline_ms(self) -> int | None:
        if self.phase == _LOOKING:
            return None
        limit = self.timers.sync_ms if self.stage >= _NEWLEADER_ACKED else self.timers.init_ms
        if self.redial_at_ms is not None:
            return min(self.redial_at_ms, self.last_heard_ms + limit)
        return self.last_heard_ms + limit

    # ---- the server's side ----------------------------------------------------------
    @property
    def serving(self) -> bool:
        return self.phase == _BROADCAST

    def forward(self, session_id: int, cxid: int, op: int, body: bytes,
                authinfo: list | None = None, token: Any = None) -> bool:
        """Send a client's write (or sync(), session create/close) to the leader.

        For a sync() ``token`` comes back in ``synced`` when the leader's SYNC
        arrives. Returns False when not serving (the server refuses the request).
        """
        if self.phase != _BROADCAST:
            return False
        if op == OP.sync:
            if len(self.pending_syncs) >= ZAB_PENDING_SYNCS_MAX:
                return False
            self.pending_syncs.append(token)
        self._out.send.append((self.leader_sid, P.request(session_id, cxid, op, body, authinfo)))
        return True

    def touch(self, session_id: int, timeout_ms: int) -> None:
        """Record client activity; reported to the leader in the next PING reply."""
        if session_id in self.touches or len(self.touches) < ZAB_TOUCHES_MAX:
            self.touches[session_id] = timeout_ms

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        """Ask the leader whether a reconnecting client's session is still valid."""
        if self.phase == _BROADCAST:
            self._out.send.append((self.leader_sid, P.revalidate(session_id, timeout_ms)))

    # ---- packets ------------------------------------------------------------------
    def _dispatch(self, pkt: R.QuorumPacket) -> None:
        kind, stage = pkt.type, self.stage
        if kind == T.PING:
            self._on_ping(pkt, stage)
        elif kind == T.LEADERINFO and stage == _INFO_SENT:
            self._on_leader_info(pkt)
        elif kind in (T.DIFF, T.TRUNC, T.SNAP) and stage == _EPOCH_ACKED:
            self._on_sync_start(pkt)
        elif kind == T.PROPOSAL and stage == _SYNCING:
            self._sync_txns.append(self._next_txn(pkt))
        elif kind == T.COMMIT and stage == _SYNCING:
            i = self._sync_committed
            if i >= len(self._sync_txns) or self._sync_txns[i][0].zxid != pkt.zxid:
                raise LeaderProtocolError(f"sync COMMIT {pkt.zxid:#x} out of order")
            self._sync_committed += 1
        elif kind == T.NEWLEADER and stage == _SYNCING:
            self._on_newleader(pkt)
        elif kind == T.PROPOSAL and stage >= _NEWLEADER_ACKED and not self.observer:
            self._on_proposal(pkt)
        elif kind == T.COMMIT and stage >= _NEWLEADER_ACKED and not self.observer:
            self._on_commit(pkt.zxid)
        elif kind == T.INFORM and stage >= _NEWLEADER_ACKED and self.observer:
            txn = self._next_txn(pkt)
            self._out.persist.append(Persist(records=(txn,), payloads=(pkt.data,)))
            self._out.commit.append(txn)
        elif kind == T.UPTODATE and stage == _NEWLEADER_ACKED:
            self.stage, self.phase = _SERVING, Phase.BROADCAST
            self._out.phase = Phase.BROADCAST
            assert self.new_epoch is not None
            self._out.send.append((self.leader_sid, P.packet(T.ACK, P.make_zxid(self.new_epoch, 0))))
            if self.newleader_config:
                self._out.activate.append((self.newleader_config, None))
        elif kind == T.COMMITANDACTIVATE and stage >= _NEWLEADER_ACKED and not self.observer:
            designated = self._designated(pkt.data, exact=True)
            first = self.pending.get(next(iter(self.pending), None))
            self._on_commit(pkt.zxid)
            assert first is not None
            if first[0].type != OP.reconfig:
                raise LeaderProtocolError(f"COMMITANDACTIVATE of a {first[0].type} txn")
            self._out.activate.append((first[1].data or b"", designated))
        elif kind == T.INFORMANDACTIVATE and stage >= _NEWLEADER_ACKED and self.observer:
            designated = self._designated(pkt.data)
            data = pkt.data[8:]
            txn = self._next_txn(R.QuorumPacket(T.INFORM, pkt.zxid, data, None))
            if txn[0].type != OP.reconfig:
                raise LeaderProtocolError(f"INFORMANDACTIVATE of a {txn[0].type} txn")
            self._out.persist.append(Persist(records=(txn,), payloads=(data,)))
            self._out.commit.append(txn)
            self._out.activate.append((txn[1].data or b"", designated))
        elif kind == T.SYNC and stage == _SERVING:
            if not self.pending_syncs:
                raise LeaderProtocolError("SYNC without a pending sync()")
            self._out.synced.append(self.pending_syncs.pop(0))
        elif kind == T.REVALIDATE and stage == _SERVING:
            self._out.revalidated.append(P.parse_revalidate_reply(pkt))
        else:
            raise LeaderProtocolError(f"{P.describe(pkt)} in stage {stage}")

    def _on_ping(self, pkt: R.QuorumPacket, stage: int) -> None:
        """F7: a PING before NEWLEADER is acked goes unanswered, as in ZooKeeper's
        Learner.syncWithLeader: a Java leader reads the next packet after NEWLEADER
        as its ACK and drops a learner whose reply came first. Until UPTODATE the
        reply waits behind that ACK (a barrier); then it goes at once."""
        if stage < _NEWLEADER_ACKED:
            return
        reply = (self.leader_sid, P.ping_reply(pkt.zxid, self.touches))
        self.touches = {}
        if stage == _SERVING:
            self._out.send.append(reply)
        else:
            self._out.barrier(reply)

    def _on_leader_info(self, pkt: R.QuorumPacket) -> None:
        epoch = P.epoch_of(pkt.zxid)
        ack_current = self.current_epoch
        if epoch > self.accepted_epoch:
            self.accepted_epoch = epoch
            self._out.persist.append(Persist(
                accepted_epoch=epoch,
                then=((self.leader_sid, P.ack_epoch(self.last_logged_zxid, ack_current)),)))
        elif epoch == self.accepted_epoch:
            self._out.barrier((self.leader_sid, P.ack_epoch(self.last_logged_zxid, -1)))
        else:
            raise LeaderProtocolError(f"LEADERINFO epoch {epoch} < accepted {self.accepted_epoch}")
        self.new_epoch = epoch
        self.stage = _EPOCH_ACKED
        self.phase = self._out.phase = Phase.SYNCHRONIZATION

    @staticmethod
    def _designated(data: bytes | None, exact: bool = False) -> int:
        if data is None or len(data) < 8 or (exact and len(data) != 8):
            raise LeaderProtocolError("ACTIVATE without a designated leader")
        return int.from_bytes(data[:8], "big", signed=True)

    def _on_sync_start(self, pkt: R.QuorumPacket) -> None:
        if pkt.type == T.TRUNC:
            self._truncate = pkt.zxid
            self.last_logged_zxid = pkt.zxid
        elif pkt.type == T.SNAP:
            self._snapshot = Snapshot(pkt.zxid, pkt.data or b"")
            self.last_logged_zxid = pkt.zxid
        self.stage = _SYNCING

    def _next_txn(self, pkt: R.QuorumPacket) -> Txn:
        txn = P.parse_txn(pkt.data)
        zxid = txn[0].zxid
        if zxid != pkt.zxid or zxid <= self.last_logged_zxid:
            raise LeaderProtocolError(f"txn {zxid:#x} after {self.last_logged_zxid:#x}")
        self.last_logged_zxid = zxid
        return txn

    def _on_newleader(self, pkt: R.QuorumPacket) -> None:
        if P.epoch_of(pkt.zxid) != self.new_epoch:
            raise LeaderProtocolError(f"NEWLEADER for epoch {P.epoch_of(pkt.zxid)}")
        self.newleader_config = pkt.data or None
        committed = self._sync_txns[:self._sync_committed]
        uncommitted = self._sync_txns[self._sync_committed:]
        acks = [(self.leader_sid, P.packet(T.ACK, pkt.zxid))]
        if not self.observer:
            acks += [(self.leader_sid, P.packet(T.ACK, t[0].zxid)) for t in uncommitted]
        self._out.persist.append(Persist(
            truncate_zxid=self._truncate, snapshot=self._snapshot, records=tuple(self._sync_txns),
            current_epoch=self.new_epoch, then=tuple(acks)))
        self._out.commit.extend(committed)
        self.current_epoch = self.new_epoch
        self.pending = {t[0].zxid: t for t in uncommitted}
        self._sync_txns, self._sync_committed = [], 0
        self._truncate, self._snapshot = None, None
        self.stage = _NEWLEADER_ACKED

    def _on_proposal(self, pkt: R.QuorumPacket) -> None:
        txn = self._next_txn(pkt)
        self.pending[txn[0].zxid] = txn
        # The log gets the leader's bytes (digest included, as ZooKeeper's
        # learner logs it): decoded once to apply, never encoded again.
        self._out.persist.append(Persist(
            records=(txn,), payloads=(pkt.data,),
            then=((self.leader_sid, P.packet(T.ACK, txn[0].zxid)),)))

    def _on_commit(self, zxid: int) -> None:
        first = next(iter(self.pending), None)
        if first != zxid:
            raise LeaderProtocolError(f"COMMIT {zxid:#x} but oldest pending is {first}")
        self._out.commit.append(self.pending.pop(zxid))

    def leave(self) -> None:
        """The peer ends this role (a reconfig changed the leader or our role)."""
        if self.phase != _LOOKING:
            self._leave()

    def _leave(self) -> None:
        self.phase = self._out.phase = Phase.LOOKING
        self._out.close.append(self.leader_sid)

    def _check(self) -> None:
        # O(1): pending only grows at its end with zxids above last_logged_zxid
        # (_next_txn checks each), so dict order is zxid order and the ends suffice.
        if self.pending:
            assert next(iter(self.pending)) <= next(reversed(self.pending)) \
                <= self.last_logged_zxid
        assert self.accepted_epoch >= self.current_epoch or self.phase == _LOOKING
