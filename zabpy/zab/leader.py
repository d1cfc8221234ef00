"""The ZAB leader role as a sans-IO state machine (facts 3.5; Zab paper phases 1-3).

State owned: the phase (DISCOVERY → SYNCHRONIZATION → BROADCAST, or LOOKING
once the role is over), the epoch being established, one ``_LearnerState``
per connected learner, the committed ``History`` (DIFF source), the
outstanding proposals with their ACK sets, and the timers.

Inputs: ``step(sid, packet, now_ms)`` (a packet from a learner, or the
leader's own ACK looped back: see ``ready``), ``disconnected(sid, now_ms)``,
``tick(now_ms)``; from the server pipeline ``next_zxid()`` and ``propose(hdr, txn)``,
``sync(token)``, ``learner_sync(sid)``, ``revalidate_reply(sid, session_id, valid)``. Outputs:
``ready() -> ZabReady`` / ``advance(ready)`` (see ``ready.py``).

Rules, with their Zab.tla action names:

L1 (LeaderProcessCEPOCH) wait for FOLLOWERINFO from a quorum of voters (the
   leader counts itself), then newEpoch = max(acceptedEpoch of all of them,
   observers and self included) + 1. The leader persists acceptedEpoch and
   only then sends LEADERINFO (it travels in that Persist's ``then``).
L1' a learner whose FOLLOWERINFO carries an acceptedEpoch above the epoch
   already decided would refuse LEADERINFO forever (F1): the leader gives up
   the term (LOOKING), and the next election decides an epoch above it.
L2 (LeaderProcessACKEPOCH) an ACKEPOCH whose (currentEpoch, lastZxid) beats
   the leader's own makes the leader give up (LOOKING). Once a quorum has
   acked the epoch the leader persists currentEpoch; its own NEWLEADER ack is
   an ACK to itself in that Persist's ``then``.
L3 (LeaderSyncFollower) each learner that acked the epoch is synced from its
   last zxid P (``sync.plan_sync``): P = last committed → empty DIFF; P above
   it → TRUNC(last); P in the in-memory window → DIFF, preceded by
   TRUNC(largest zxid we know ≤ P) when we do not know P; P below the window
   → a ``LogRead`` of the on-disk log, and on its answer DIFF/TRUNC from the
   log and the window, or SNAP (from ``snapshot_source``). The
   committed txns go as PROPOSAL+COMMIT pairs, then NEWLEADER, then every
   outstanding proposal (followers only). From then on the learner gets
   every new PROPOSAL/COMMIT (observers: INFORM after commit).
L4 (LeaderProcessACKLD) a quorum of NEWLEADER acks establishes the leader
   (phase BROADCAST); every learner whose NEWLEADER ack arrived gets
   UPTODATE (later ones at once).
L5 (LeaderBroadcastPropose / LeaderProcessACK / LeaderCommit) the leader
   owns zxid allocation (``next_zxid``: epoch << 32 | counter); ``propose`` logs it (the leader's ACK to itself
   waits for the fsync) and sends PROPOSAL; proposals commit strictly in zxid
   order once a quorum of voters (the leader included) acked.
L6 liveness: PING every tick/2; a learner not heard from within syncLimit
   ticks (initLimit until its NEWLEADER ACK, ZooKeeper's LearnerHandler socket
   timeout; a Java learner writes a snapshot before that ACK) is dropped; a leader without a
   quorum heard from within syncLimit ticks, or not established within
   initLimit ticks of each phase, goes LOOKING; so does a zxid counter that
   would wrap.
L8 dynamic reconfig (ZooKeeper 3.5+). A reconfig txn (``propose`` of an
   OP.reconfig SetDataTxn, whose data is the new config text and whose zxid
   is its version) makes that config *pending*: from it on, every proposal
   (the reconfig itself included) commits only once a quorum of the current
   *and* of the pending config acked it, and no further reconfig is
   prepared (RECONFIGINPROGRESS). Its commit *activates* the config: the
   leader picks the designated leader (itself if it still votes with the same
   quorum address, else the highest voter of the new config that acked),
   sends COMMITANDACTIVATE to followers and INFORMANDACTIVATE to observers,
   and, if it is not the designated leader, ends its term. A term that
   starts with a pending config (one a voter logged but did not see
   committed; or, with reconfig enabled, the initial version-0 config, which
   ZooKeeper re-versions to the new epoch's first zxid) needs quorums of
   both for its epoch and NEWLEADER, and activates it once established.
   A learner that sent FOLLOWERINFO is a follower (it gets proposals) whether
   or not it votes: that is how a joining server catches up before the
   reconfig that adds it; only voters' ACKs count.
L7 two voters with an oracle (``election.OracleMajority``): every quorum
   check above may be won by the oracle; the oracle counts only while the
   leader has no follower, which it records whenever a follower starts
   syncing and whenever it finds itself without a quorum.

Each learner's packets leave in the order produced: the only deferred
(``then``) packet to a learner is its LEADERINFO, and nothing else is sent to
it before it answers with ACKEPOCH.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..election.quorum import QuorumVerifier
from ..election.reconfig import ReconfigError, next_quorum, quorum_from_text
from ..jute import records as R
from ..jute.codec import DecodeError, Record
from ..jute.constants import ERR, OP
from ..limits import ZAB_COMMITTED_LOG_MAX, ZAB_OUTSTANDING_MAX, ZXID_COUNTER_MAX
from . import packets as P
from .history import History
from .packets import PKT as T
from .ready import ForwardedRequest, HandsOut, LogRead, Outbox, Persist, Phase, Snapshot, Txn
from .sync import NOT_READ, READ, SNAP, TRUNC, plan_sync

__all__ = ["Leader", "ZabTimers"]

# Phase members as module constants: compared on every packet, where a class
# attribute look-up on the enum costs more than the comparison.
_BROADCAST, _LOOKING = Phase.BROADCAST, Phase.LOOKING

# Learner stages, in order (_READING: its sync waits for a LogRead).
_INFO, _EPOCH_ACKED, _READING, _SYNCING, _NEWLEADER_ACKED, _UPTODATE = range(6)


@dataclass(frozen=True, slots=True)
class ZabTimers:
    """tickTime, initLimit and syncLimit (zoo.cfg)."""

    tick_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5

    @property
    def init_ms(self) -> int:
        return self.tick_ms * self.init_limit

    @property
    def sync_ms(self) -> int:
        return self.tick_ms * self.sync_limit


@dataclass
class _LearnerState:
    observer: bool
    accepted_epoch: int
    last_heard_ms: int
    stage: int = _INFO
    peer_last_zxid: int = -1
    read_token: int | None = None


@dataclass
class _Proposal:
    txn: Txn
    acks: dict[int, None] = field(default_factory=dict)
    quorums: tuple[QuorumVerifier, ...] = ()     # each must hold a quorum of acks (L8)
    config: QuorumVerifier | None = None         # a reconfig's new config


class Leader(HandsOut):
    """One leadership term of one peer; see the module docstring."""

    def __init__(self, my_sid: int, quorum: QuorumVerifier, log: History, accepted_epoch: int,
                 current_epoch: int, now_ms: int, *, timers: ZabTimers = ZabTimers(),
                 config: bytes = b"", snapshot_source: Callable[[], Snapshot],
                 committed_log_max: int = ZAB_COMMITTED_LOG_MAX,
                 read_token: Callable[[], int] | None = None,
                 pending: QuorumVerifier | None = None, reconfig_enabled: bool = False) -> None:
        assert quorum.is_voter(my_sid), "only a voter leads"
        self.my_sid = my_sid
        self.quorum = quorum
        # L8: the last seen config when newer than the current one (None: none)
        self.pending = pending if pending is not None and pending.version > quorum.version \
            else None
        self.reconfig_enabled = reconfig_enabled
        self.timers = timers
        self.config = config
        self.snapshot_source = snapshot_source
        # Tokens for LogReads, unique across this peer's terms; None: never read the log.
        self.read_token = read_token
        # The leader's whole log becomes committed history once it is established.
        self.history = History(log.base_zxid, log.entries(), committed_log_max)
        self.last_logged_zxid = log.last_zxid
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        # What L2 compares every ACKEPOCH against: (currentEpoch, lastZxid) at start.
        self.summary = (current_epoch, log.last_zxid)
        self.new_epoch: int | None = None
        self.phase = Phase.DISCOVERY
        self.learners: dict[int, _LearnerState] = {}
        self.epoch_acks: dict[int, None] = {}
        self.newleader_acks: dict[int, None] = {}
        self.outstanding: dict[int, _Proposal] = {}
        self.last_proposed = log.last_zxid
        self.pending_syncs: list[tuple[int, int | None, Any]] = []
        self.phase_deadline_ms = now_ms + timers.init_ms
        self.next_ping_ms = now_ms + timers.tick_ms // 2
        self._out = Outbox(phase=Phase.DISCOVERY)
        self._decide_epoch()

    # ---- the verbs ------------------------------------------------------------
    def step(self, sid: int, pkt: R.QuorumPacket, now_ms: int) -> None:
        if self.phase == _LOOKING:
            return
        if sid == self.my_sid:
            if pkt.type == T.ACK:
                self._on_ack(sid, pkt.zxid)
            return
        if pkt.type in (T.FOLLOWERINFO, T.OBSERVERINFO):
            self._on_info(sid, pkt, now_ms)
            return
        learner = self.learners.get(sid)
        if learner is None:
            return  # from a connection we already dropped
        learner.last_heard_ms = now_ms
        try:
            self._dispatch(sid, learner, pkt)
        except DecodeError:
            self._drop(sid)  # the learner broke the protocol: close its connection
        self._check()

    def disconnected(self, sid: int, now_ms: int) -> None:
        self.learners.pop(sid, None)

    def log_read(self, token: int, txns: tuple[Txn, ...] | None) -> None:
        """The answer to a ``LogRead`` (None: no usable log): finish that learner's sync."""
        if self.phase == _LOOKING:
            return
        for sid, learner in self.learners.items():
            if learner.stage == _READING and learner.read_token == token:
                learner.read_token = None
                self._sync_learner(sid, learner, txns)
                break
        self._check()

    def tick(self, now_ms: int) -> None:
        if self.phase == _LOOKING:
            return
        if self.phase != _BROADCAST and now_ms >= self.phase_deadline_ms:
            self._step_down()
            return
        for sid, learner in list(self.learners.items()):
            # initLimit until the NEWLEADER ACK, as ZooKeeper's learner socket
            # timeout: a learner may take long to truncate or snapshot the sync.
            limit = self.timers.sync_ms if learner.stage >= _NEWLEADER_ACKED else self.timers.init_ms
            if now_ms - learner.last_heard_ms >= limit:
                self._drop(sid)
        if self.phase == _BROADCAST:
            # A learner being synced counts, as in ZooKeeper (LearnerHandler.synced():
            # alive and within its first ack deadline); a silent one is dropped above.
            heard = [self.my_sid] + [s for s, l in self.learners.items()
                                     if l.stage >= _SYNCING]
            if not self._has_quorums(heard):
                # L7: a two-voter oracle may let us lead alone, committing what
                # waits for the lost follower's ack (ZooKeeper's
                # overrideQuorumDecision, then revalidateOutstandingProp).
                if not (self.quorum.update_need_oracle(self._followers())
                        and self.quorum.contains_quorum(heard)):
                    self._step_down()
                    return
                self._commit_ready()
        if now_ms >= self.next_ping_ms:
            self.next_ping_ms = now_ms + max(1, self.timers.tick_ms // 2)
            ping = P.packet(T.PING, self.last_proposed)
            for sid, learner in self.learners.items():
                if learner.stage >= _SYNCING:
                    self._out.send.append((sid, ping))

    def next_deadline_ms(self) -> int | None:
        if self.phase == _LOOKING:
            return None
        times = [self.next_ping_ms]
        if self.phase != _BROADCAST:
            times.append(self.phase_deadline_ms)
        return min(times)

    # ---- the server pipeline's side --------------------------------------------
    @property
    def established(self) -> bool:
        return self.phase == _BROADCAST

    def next_zxid(self) -> int:
        """The zxid the next proposal must carry: the leader alone allocates
        zxids (epoch << 32 | counter), and the server's prep asks it here."""
        epoch = self.new_epoch
        assert epoch is not None
        last = self.last_proposed
        # epoch_of / counter_of inline: prep and propose ask this for every write
        counter = (last & 0xFFFFFFFF) + 1 if last >> 32 == epoch else 1
        return P.make_zxid(epoch, counter)

    def propose(self, hdr: R.TxnHeader, txn: Record | None) -> int | None:
        """Log and broadcast a prepared txn (L5); ``hdr.zxid`` must be ``next_zxid()``.

        Returns the zxid, or None when the leader cannot take proposals now
        (not established, too many outstanding, or the counter would wrap,
        which also ends the term).
        """
        if self.phase != _BROADCAST or len(self.outstanding) >= ZAB_OUTSTANDING_MAX:
            return None
        zxid = self.next_zxid()
        if P.counter_of(zxid) >= ZXID_COUNTER_MAX:
            self._step_down()
            return None
        assert hdr.zxid == zxid, f"proposal carries {hdr.zxid:#x}, the next zxid is {zxid:#x}"
        entry = (hdr, txn)
        assert not self.outstanding or zxid > next(reversed(self.outstanding)), "out of order"
        config = None
        if hdr.type == OP.reconfig:
            assert self.pending is None, "a reconfig prepared while another is pending"
            config = self.pending = quorum_from_text((txn.data or b"").decode(),
                                                     self.quorum.oracle_path)
            assert config.version == zxid
        self.outstanding[zxid] = _Proposal(entry, quorums=self._quorums(), config=config)
        self.last_proposed = zxid
        self.last_logged_zxid = zxid
        pkt = P.proposal(*entry)
        # The PROPOSAL's data is the log payload: encoded once, logged as is.
        self._out.persist.append(Persist(records=(entry,), payloads=(pkt.data,),
                                         then=((self.my_sid, P.packet(T.ACK, zxid)),)))
        for sid, learner in self.learners.items():
            if learner.stage >= _SYNCING and not learner.observer:
                self._out.send.append((sid, pkt))
        return zxid

    def sync(self, token: Any) -> None:
        """A local client's sync(): ``token`` comes back in ``synced`` once every
        txn proposed so far is committed."""
        self._sync(None, token)

    def learner_sync(self, sid: int) -> None:
        """A sync() learner ``sid`` forwarded, reached in the pipeline: SYNC
        goes back once every txn proposed so far is committed."""
        if self.phase == _BROADCAST:
            self._sync(sid, None)

    def revalidate_reply(self, sid: int, session_id: int, valid: bool) -> None:
        if sid in self.learners:
            self._out.send.append((sid, P.revalidate_reply(session_id, valid)))

    # ---- discovery (L1, L2) ------------------------------------------------------
    def _on_info(self, sid: int, pkt: R.QuorumPacket, now_ms: int) -> None:
        try:
            info = P.parse_learner_info(pkt)
        except DecodeError:
            self._out.close.append(sid)
            return
        # L8: a FOLLOWERINFO makes a follower, voter or not (a server joining)
        observer = pkt.type == T.OBSERVERINFO
        if info.serverid != sid or sid == self.my_sid:
            self._out.close.append(sid)
            return
        accepted = P.epoch_of(pkt.zxid)
        if self.new_epoch is not None and accepted > self.new_epoch:
            # The learner promised a later epoch than ours (it led, or followed a
            # leader, that never established it) and refuses our LEADERINFO.
            # ZooKeeper's learner retries until the next election happens for
            # another reason; we end the term so the next epoch covers it (L1').
            self._step_down()
            return
        # A reconnecting learner starts over; the transport replaced its connection.
        self.learners[sid] = _LearnerState(observer, accepted, now_ms)
        if self.new_epoch is None:
            self._decide_epoch()
        else:
            self._out.barrier((sid, P.leader_info(self.new_epoch)))

    def _decide_epoch(self) -> None:
        connected = [self.my_sid] + list(self.learners)
        if not self._has_quorums(connected):
            return
        epochs = [self.accepted_epoch] + [l.accepted_epoch for l in self.learners.values()]
        self.new_epoch = max(epochs) + 1
        self.accepted_epoch = self.new_epoch
        self.epoch_acks[self.my_sid] = None
        info = P.leader_info(self.new_epoch)
        self._out.persist.append(Persist(accepted_epoch=self.new_epoch,
                                         then=tuple((sid, info) for sid in self.learners)))
        self._maybe_epoch_acked()

    def _on_ack_epoch(self, sid: int, learner: _LearnerState, pkt: R.QuorumPacket) -> None:
        if learner.stage != _INFO or self.new_epoch is None:
            raise DecodeError("unexpected ACKEPOCH")
        last_zxid, current_epoch = P.parse_ack_epoch(pkt)
        learner.stage = _EPOCH_ACKED
        learner.peer_last_zxid = last_zxid
        if self.phase != Phase.DISCOVERY:
            self._sync_learner(sid, learner)
            return
        if current_epoch != -1 and (current_epoch, last_zxid) > self.summary:
            self._step_down()  # L2: a learner knows more than we do
            return
        if not learner.observer:
            self.epoch_acks[sid] = None
        self._maybe_epoch_acked()

    def _maybe_epoch_acked(self) -> None:
        assert self.new_epoch is not None
        if self._has_quorums(self.epoch_acks):
            self.phase = self._out.phase = Phase.SYNCHRONIZATION
            if self.reconfig_enabled and self.quorum.version == 0 and self.pending is None:
                # ZOOKEEPER-1783: the initial config gets the new epoch's first zxid as its version
                self.pending = quorum_from_text(self.quorum.to_config_text(),
                                                self.quorum.oracle_path)
                self.pending.version = P.make_zxid(self.new_epoch, 0)
            self.phase_deadline_ms += self.timers.init_ms
            self.current_epoch = self.new_epoch
            ack = P.packet(T.ACK, P.make_zxid(self.new_epoch, 0))
            self._out.persist.append(Persist(current_epoch=self.new_epoch,
                                             then=((self.my_sid, ack),)))
            for other, l in self.learners.items():
                if l.stage == _EPOCH_ACKED:
                    self._sync_learner(other, l)

    # ---- synchronization (L3, L4) ----------------------------------------------
    def _sync_learner(self, sid: int, learner: _LearnerState, log=NOT_READ) -> None:
        assert self.new_epoch is not None
        plan = plan_sync(learner.peer_last_zxid, self.history, log,
                         log_sync=self.read_token is not None)
        out = self._out.send
        if plan.kind == READ:
            assert self.read_token is not None
            learner.stage = _READING
            learner.read_token = self.read_token()
            # Up to the last commit, not only the window's base: commits that
            # arrive while the disk reads may push the window past the base.
            self._out.reads.append(LogRead(learner.read_token, learner.peer_last_zxid,
                                           self.history.last_zxid))
            return
        if plan.kind == SNAP:
            snap = self.snapshot_source()
            assert self.history.knows(snap.zxid), f"snapshot at {snap.zxid:#x} outside history"
            out.append((sid, P.packet(T.SNAP, snap.zxid, snap.data)))
            txns: Sequence[Txn] = self.history.after(snap.zxid)
        else:
            out.append((sid, P.packet(T.TRUNC if plan.kind == TRUNC else T.DIFF, plan.zxid)))
            txns = plan.txns
        for txn in txns:
            out.append((sid, P.proposal(*txn)))
            out.append((sid, P.packet(T.COMMIT, txn[0].zxid)))
        out.append((sid, P.newleader(self.new_epoch, self._newleader_config())))
        if not learner.observer:
            # After NEWLEADER, not before it as ZooKeeper queues them: a 3.8.0
            # learner logs and forgets what it holds uncommitted at NEWLEADER,
            # and the COMMIT of such a proposal then fails on an empty list (a
            # NullPointerException in Learner.syncWithLeader, fixed in later
            # releases). Sent after it, each is logged as a broadcast
            # proposal. Proposals are outstanding only once the leader is
            # established, so NEWLEADER's meaning (the history up to it) stays.
            for prop in self.outstanding.values():
                out.append((sid, P.proposal(*prop.txn)))
        learner.stage = _SYNCING
        if not learner.observer:
            self.quorum.update_need_oracle(self._followers())   # L7

    def _followers(self) -> list[int]:
        """ZooKeeper's forwardingFollowers: voters being synced or synced."""
        return [s for s, l in self.learners.items() if not l.observer and l.stage >= _SYNCING]

    def _on_newleader_ack(self, sid: int) -> None:
        if sid != self.my_sid:
            learner = self.learners[sid]
            if learner.stage != _SYNCING:
                return  # the ACK a learner sends after UPTODATE
            learner.stage = _NEWLEADER_ACKED
            if self.phase == _BROADCAST:
                self._uptodate(sid, learner)
                return
            if learner.observer:
                return
        self.newleader_acks[sid] = None
        if self.phase == Phase.SYNCHRONIZATION and self._has_quorums(self.newleader_acks):
            self.phase = self._out.phase = Phase.BROADCAST
            for other, l in self.learners.items():
                if l.stage == _NEWLEADER_ACKED:
                    self._uptodate(other, l)
            if self.pending is not None and not self.outstanding:
                new = self.pending
                self._activate(new, self._designated(new, self.newleader_acks))

    def _uptodate(self, sid: int, learner: _LearnerState) -> None:
        learner.stage = _UPTODATE
        self._out.send.append((sid, P.packet(T.UPTODATE, -1)))

    # ---- broadcast (L5) --------------------------------------------------------------
    def _dispatch(self, sid: int, learner: _LearnerState, pkt: R.QuorumPacket) -> None:
        kind = pkt.type
        if kind == T.ACKEPOCH:
            self._on_ack_epoch(sid, learner, pkt)
        elif kind == T.ACK:
            if not learner.observer or P.counter_of(pkt.zxid) == 0:
                self._on_ack(sid, pkt.zxid)
        elif kind == T.PING:
            self._out.touches.extend(P.parse_ping_reply(pkt))
        elif kind == T.REQUEST and learner.stage == _UPTODATE and self.phase == _BROADCAST:
            session_id, cxid, op, body = P.parse_request(pkt)
            # a sync() too: the pipeline hands it back (``learner_sync``) in
            # its place among the requests before it, which may not be
            # proposed yet (ZooKeeper's ProposalRequestProcessor)
            self._out.requests.append(ForwardedRequest(sid, session_id, cxid, op, body,
                                                       tuple(pkt.authinfo or ())))
        elif kind == T.REVALIDATE:
            session_id, timeout = P.parse_revalidate(pkt)
            self._out.revalidate.append((sid, session_id, timeout))

    def _on_ack(self, sid: int, zxid: int) -> None:
        epoch = self.new_epoch
        if epoch is not None and zxid == epoch << 32:   # make_zxid(epoch, 0): NEWLEADER's
            self._on_newleader_ack(sid)
            return
        prop = self.outstanding.get(zxid)
        if prop is None:
            return  # already committed, or from an older term
        qs = prop.quorums   # one config, or two while a reconfig is pending (L8)
        if not (qs[0].is_voter(sid) or (len(qs) > 1 and qs[1].is_voter(sid))):
            return  # not a voter of any config the proposal needs
        prop.acks[sid] = None
        self._commit_ready()

    def _commit_ready(self) -> None:
        while self.outstanding:
            zxid, prop = next(iter(self.outstanding.items()))
            qs = prop.quorums
            if not qs[0].contains_quorum(prop.acks) or \
                    (len(qs) > 1 and not qs[1].contains_quorum(prop.acks)):
                return
            del self.outstanding[zxid]
            self.history.append(prop.txn)
            self._out.commit.append(prop.txn)
            if prop.config is not None:
                self._commit_reconfig(zxid, prop)
                if self.phase == _LOOKING:
                    return
                continue
            commit, inform = P.packet(T.COMMIT, zxid), None
            for sid, learner in self.learners.items():
                if learner.stage < _SYNCING:
                    continue
                if learner.observer:
                    inform = inform or P.proposal(*prop.txn, kind=T.INFORM)
                    self._out.send.append((sid, inform))
                else:
                    self._out.send.append((sid, commit))
            if self.pending_syncs:
                self._answer_syncs()

    def _sync(self, sid: int | None, token: Any) -> None:
        if self.outstanding:
            self.pending_syncs.append((self.last_proposed, sid, token))
        else:
            self._answer_sync(sid, token)

    def _answer_syncs(self) -> None:
        committed = self.history.last_zxid
        while self.pending_syncs and self.pending_syncs[0][0] <= committed:
            _, sid, token = self.pending_syncs.pop(0)
            self._answer_sync(sid, token)

    def _answer_sync(self, sid: int | None, token: Any) -> None:
        if sid is None:
            self._out.synced.append(token)
        elif sid in self.learners:
            self._out.send.append((sid, P.packet(T.SYNC, 0)))

    # ---- dynamic reconfig (L8) ----------------------------------------------------------
    def _quorums(self) -> tuple[QuorumVerifier, ...]:
        return (self.quorum,) if self.pending is None else (self.quorum, self.pending)

    def _has_quorums(self, sids) -> bool:
        sids = list(sids)
        return all(q.contains_quorum(sids) for q in self._quorums())

    def _newleader_config(self) -> bytes:
        return (self.pending or self.quorum).to_config_text().encode()

    def prepare_reconfig(self, joining: str | None, leaving: str | None,
                         new_members: str | None, from_config: int, zxid: int, *,
                         standalone_enabled: bool = True) -> QuorumVerifier:
        """The config a reconfig request at ``zxid`` makes, checked as ZooKeeper's
        prep checks it; raises ``ReconfigError`` with the answer's error code."""
        if self.pending is not None:
            raise ReconfigError(ERR.RECONFIGINPROGRESS, "Reconfig in progress")
        if from_config != -1 and from_config != self.quorum.version:
            raise ReconfigError(ERR.BADVERSION, f"Reconfiguration from version {from_config} "
                                f"failed -- last seen version is {self.quorum.version}")
        qv = next_quorum(self.quorum, joining, leaving, new_members, zxid,
                         standalone_enabled=standalone_enabled)
        if not self.quorum_synced(qv):
            raise ReconfigError(ERR.NEWCONFIGNOQUORUM, "Reconfig failed - there must be a "
                                "connected and synced quorum in new configuration")
        return qv

    def quorum_synced(self, qv: QuorumVerifier) -> bool:
        """Leader.isQuorumSynced: a quorum of ``qv``'s voters is us or synced followers."""
        ids = [self.my_sid] if qv.is_voter(self.my_sid) else []
        ids += [s for s, l in self.learners.items()
                if not l.observer and l.stage >= _SYNCING and qv.is_voter(s)]
        return qv.contains_quorum(ids)

    def _designated(self, new: QuorumVerifier, acks) -> int:
        """getDesignatedLeader: we stay if we vote in ``new`` at the same quorum
        address; else the highest voter of ``new`` that acked."""
        if new.is_voter(self.my_sid) and \
                new.spec(self.my_sid).split(":")[:2] == self.quorum.spec(self.my_sid).split(":")[:2]:
            return self.my_sid
        voters = [s for s in acks if s != self.my_sid and new.is_voter(s)]
        return max(voters) if voters else self.my_sid

    def _commit_reconfig(self, zxid: int, prop: _Proposal) -> None:
        new = prop.config
        assert new is not None
        designated = self._designated(new, prop.acks)
        hdr, txn = prop.txn
        leader_id = designated.to_bytes(8, "big", signed=True)
        commit = P.packet(T.COMMITANDACTIVATE, zxid, leader_id)
        inform = P.packet(T.INFORMANDACTIVATE, zxid, leader_id + P.proposal(hdr, txn).data)
        for sid, learner in self.learners.items():
            if learner.stage >= _SYNCING:
                self._out.send.append((sid, inform if learner.observer else commit))
        self._answer_syncs()
        self._activate(new, designated)

    def _activate(self, new: QuorumVerifier, designated: int) -> None:
        self.quorum = new
        if self.pending is not None and self.pending.version <= new.version:
            self.pending = None
        self._out.activate.append((new.to_config_text().encode(), designated))
        # Proposals still outstanding keep the quorums they were proposed under.
        if designated != self.my_sid:
            # allowedToCommit = false: the designated leader takes over
            self._step_down()

    # ---- endings ---------------------------------------------------------------------
    def _drop(self, sid: int) -> None:
        self.learners.pop(sid, None)
        self._out.close.append(sid)

    def _step_down(self) -> None:
        self.phase = self._out.phase = Phase.LOOKING
        for sid in list(self.learners):
            self._drop(sid)
        self.outstanding.clear()
        self.pending_syncs.clear()

    def _check(self) -> None:
        """Invariants after every input."""
        # O(1): propose() keeps the outstanding zxids ascending (dict order),
        # so only the oldest needs comparing with the committed history.
        if self.outstanding:
            assert next(iter(self.outstanding)) > self.history.last_zxid
            assert next(reversed(self.outstanding)) <= self.last_proposed
        assert self.last_proposed >= self.history.last_zxid
        if self.phase == _BROADCAST:
            assert self.new_epoch is not None and self.current_epoch == self.new_epoch
