"""A quorum peer's loop: LOOKING → (FLE) → LEADING / FOLLOWING / OBSERVING → LOOKING.

State owned: the ``FastLeaderElection`` core, the current role (``Leader``,
``Learner`` or None while looking), a mirror of the peer's own log tail
(``History``: what a future leader role may DIFF from, and the entries the
tree has not applied yet), the epochs, and ``last_applied_zxid``.

Inputs: ``start(now_ms)``; ``step_election(sid, notification, now_ms)``;
``step(sid, quorum_packet, now_ms)``; ``disconnected(sid, now_ms)`` (a
quorum connection dropped); ``tick(now_ms)``; and the role's own calls
(``propose``, ``sync``, ``revalidate_reply`` on a leader; ``forward``,
``touch``, ``revalidate`` on a learner); ``log_read(token, txns, now_ms)``,
the answer to a leader's ``LogRead``. Output: ``ready() -> PeerReady``
(election notifications to send, the role's ``ZabReady``, a leader to dial,
a state change), then ``advance(ready)``.

Transitions (docs/zab.md has the diagram):

* the election decides → the role is created. Before it starts, the peer
  *fast-forwards*: logged txns its tree has not applied yet are committed
  (ZooKeeper's fastForwardDataBase), so a leader's tree holds its whole log
  and a learner's tree matches the last zxid it reports.
* the role's phase becomes LOOKING (quorum lost, leader silent, protocol
  error, connection lost) → the role is dropped and a new election round
  starts from the mirror's last zxid and the current epoch.
* a role reaching BROADCAST updates the advertised vote's epoch, as
  ZooKeeper's updateElectionVote does.

The mirror follows every ``Persist`` the role emits (truncate, snapshot,
append), so its ``last_zxid`` is the last *logged* zxid, what FLE votes with.

Dynamic reconfig: the peer owns the current config (``quorum``) and the
*pending* one: a reconfig txn it logged (found in what the role persists,
or in the restored log tail) whose config is newer than the current one,
ZooKeeper's last seen config. FLE tallies with both; a new leader term
starts with both (``Leader`` L8). A role's ``activate`` makes a config
current: a learner whose leader is no longer the designated one (or no
longer votes), or whose own role (observer or participant) changed, leaves
its role and the peer elects again, as ZooKeeper's processReconfig. A config
adopted from an election notification, or activated, goes out once in
``PeerReady.config`` (the replica rewrites /zookeeper/config, the executor
the dynamic config file and its addresses).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Callable

from ..election import FastLeaderElection, Notification, QuorumVerifier, ServerState, Vote
from ..election.reconfig import quorum_from_text
from ..jute.constants import OP
from ..jute import records as R
from ..jute.codec import Record, fast_frozen_init
from ..limits import ZAB_COMMITTED_LOG_MAX, ZAB_LOG_TAIL_MAX
from .follower import Learner
from .history import History
from .leader import Leader, ZabTimers
from .ready import EMPTY_READY, Outbox, Phase, Snapshot, Txn, ZabReady

# Phase members as module constants: compared on every packet, where a class
# attribute look-up on the enum costs more than the comparison.
_BROADCAST, _LOOKING = Phase.BROADCAST, Phase.LOOKING

__all__ = ["Peer", "PeerReady", "PeerLog"]


@dataclass(frozen=True, slots=True)
class PeerLog:
    """What the peer restored from disk: epochs and the log tail (all applied)."""

    accepted_epoch: int
    current_epoch: int
    base_zxid: int               # the snapshot's zxid, or where the tail starts
    entries: tuple[Txn, ...] = ()


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class PeerReady:
    election: tuple[tuple[int, Notification], ...] = ()
    zab: ZabReady = ZabReady()
    connect: int | None = None           # dial this leader's quorum port (new learner role)
    state: ServerState | None = None     # the peer's new state, when it changed
    config: QuorumVerifier | None = None  # a new current config (reconfig), once


_QUIET = PeerReady(zab=EMPTY_READY)  # the very object _take_peer tests for


class Peer:
    def __init__(self, my_sid: int, quorum: QuorumVerifier, log: PeerLog, rng: random.Random, *,
                 timers: ZabTimers = ZabTimers(), snapshot_source: Callable[[], Snapshot],
                 committed_log_max: int = ZAB_COMMITTED_LOG_MAX, log_sync: bool = False,
                 reconfig_enabled: bool = False, **fle_options: int) -> None:
        self.my_sid = my_sid
        self.quorum = quorum
        self.timers = timers
        self.snapshot_source = snapshot_source
        self.committed_log_max = committed_log_max
        # log_sync: a leader may ask its executor for LogReads (DIFF from the
        # on-disk log); tokens stay unique across terms so a late answer to an
        # earlier term is ignored.
        self.log_sync = log_sync
        self._read_tokens = itertools.count(1)
        self.log = History(log.base_zxid, log.entries, ZAB_LOG_TAIL_MAX)
        self.accepted_epoch = log.accepted_epoch
        self.current_epoch = log.current_epoch
        self.last_applied_zxid = self.log.last_zxid
        self.config = quorum.to_config_text().encode("utf-8")
        self.fle = FastLeaderElection(my_sid, quorum, self.log.last_zxid, self.current_epoch,
                                      rng, **fle_options)
        self.reconfig_enabled = reconfig_enabled
        self.fle.adopt_configs = reconfig_enabled
        self.pending: QuorumVerifier | None = None
        for txn in log.entries:
            self._saw_logged(txn)
        self._config_changed: QuorumVerifier | None = None
        self.role: Leader | Learner | None = None
        self.state = ServerState.LOOKING
        self._election: list[tuple[int, Notification]] = []
        self._zab = Outbox()
        self._connect: int | None = None
        self._state_changed: ServerState | None = None

    # ---- the verbs ----------------------------------------------------------------
    def start(self, now_ms: int) -> None:
        self.fle.start(now_ms, last_zxid=self.log.last_zxid, current_epoch=self.current_epoch)
        self._after(now_ms)

    def step_election(self, sid: int, n: Notification, now_ms: int) -> None:
        self.fle.step(sid, n, now_ms)
        self._after(now_ms)

    def step(self, sid: int, pkt: R.QuorumPacket, now_ms: int) -> None:
        if self.role is not None:
            self.role.step(sid, pkt, now_ms)
        self._after(now_ms)

    def step_many(self, sid: int, pkts: list[R.QuorumPacket],
                  now_ms: int) -> list[R.QuorumPacket]:
        """``step`` each of ``pkts`` (from one peer, in order). While the role
        broadcasts, its output is taken once after the last packet rather than
        after each: the queues keep their order, and nothing between two
        packets reads what taking it does (the log mirror, the election).
        A packet after which the role leaves broadcast, or activates a
        config, has its output taken at once, as ``step`` does. Returns the
        packets not stepped because there is no role (any, once a step
        ended it)."""
        deferred = False
        for i, pkt in enumerate(pkts):
            role = self.role
            if role is None:
                if deferred:
                    self._after(now_ms)
                return pkts[i:]
            role.step(sid, pkt, now_ms)
            if role.phase == _BROADCAST and not role.output_changes_peer():
                deferred = True
            else:
                self._after(now_ms)
                deferred = False
        if deferred:
            self._after(now_ms)
        return []

    def disconnected(self, sid: int, now_ms: int) -> None:
        if isinstance(self.role, Leader):
            self.role.disconnected(sid, now_ms)
        elif isinstance(self.role, Learner) and sid == self.role.leader_sid:
            self.role.disconnected(now_ms)
        self._after(now_ms)

    def log_read(self, token: int, txns: tuple[Txn, ...] | None, now_ms: int) -> None:
        if self.leader is not None:
            self.leader.log_read(token, txns)
        self._after(now_ms)

    def tick(self, now_ms: int) -> None:
        self.fle.tick(now_ms)
        if self.role is not None:
            self.role.tick(now_ms)
            if isinstance(self.role, Learner) and self.role.redial_due:
                self.role.redial_due = False   # F6 in follower.py: dial the leader again
                self._connect = self.role.leader_sid
        self._after(now_ms)

    def ready(self) -> PeerReady:
        self._drain_role()
        zab = self._zab.ready()
        if zab is EMPTY_READY and not self._election and self._connect is None \
                and self._state_changed is None and self._config_changed is None:
            return _QUIET   # most pumps find nothing: no allocation
        return PeerReady(tuple(self._election), zab, self._connect, self._state_changed,
                         self._config_changed)

    def advance(self, ready: PeerReady) -> None:
        if ready is _QUIET:
            return
        n = len(ready.election)
        assert tuple(self._election[:n]) == ready.election, "advance() with a stale ready"
        del self._election[:n]
        self._zab.advance(ready.zab)
        if ready.connect is not None and ready.connect == self._connect:
            self._connect = None
        if ready.state is not None and ready.state == self._state_changed:
            self._state_changed = None
        if ready.config is not None and ready.config is self._config_changed:
            self._config_changed = None

    def next_deadline_ms(self) -> int | None:
        t = self.fle.next_deadline_ms()
        if self.role is not None:
            r = self.role.next_deadline_ms()
            if r is not None and (t is None or r < t):
                t = r
        return t

    # ---- the role's calls (drained into the peer's output) ------------------------
    @property
    def leader(self) -> Leader | None:
        return self.role if isinstance(self.role, Leader) else None

    @property
    def learner(self) -> Learner | None:
        return self.role if isinstance(self.role, Learner) else None

    def propose(self, hdr: R.TxnHeader, txn: Record | None) -> int | None:
        zxid = self.leader.propose(hdr, txn) if self.leader is not None else None
        self._drain_role()
        return zxid

    def sync(self, token: Any) -> None:
        assert self.leader is not None
        self.leader.sync(token)
        self._drain_role()

    def forward(self, session_id: int, cxid: int, op: int, body: bytes,
                authinfo: list | None = None, token: Any = None) -> bool:
        ok = self.learner is not None and self.learner.forward(session_id, cxid, op, body,
                                                               authinfo, token)
        self._drain_role()
        return ok

    # ---- transitions ------------------------------------------------------------------
    def _after(self, now_ms: int) -> None:
        r = self.fle.ready()
        self._election.extend(r.send)
        self.fle.advance(r)
        if r.config is not None:
            self._set_config(r.config)
        if r.decided is not None and self.role is None:
            self._take_role(r.decided, now_ms)
        self._drain_role()
        if self.role is not None and self.role.phase == _LOOKING:
            self.role = None
            self._set_state(ServerState.LOOKING)
            self.fle.start(now_ms, last_zxid=self.log.last_zxid, current_epoch=self.current_epoch)
            self._after(now_ms)

    def _take_role(self, vote: Vote, now_ms: int) -> None:
        self._fast_forward()
        if vote.state == ServerState.LEADING:
            self.role = Leader(self.my_sid, self.quorum, self.log, self.accepted_epoch,
                               self.current_epoch, now_ms, timers=self.timers, config=self.config,
                               snapshot_source=self.snapshot_source,
                               committed_log_max=self.committed_log_max,
                               read_token=self._read_tokens.__next__ if self.log_sync else None,
                               pending=self.pending, reconfig_enabled=self.reconfig_enabled)
        else:
            self.role = Learner(self.my_sid, vote.leader, self.log.last_zxid, self.accepted_epoch,
                                self.current_epoch, now_ms,
                                observer=vote.state == ServerState.OBSERVING, timers=self.timers,
                                config_version=self.quorum.version)
            self._connect = vote.leader
        self._set_state(vote.state)

    def _fast_forward(self) -> None:
        pending = self.log.after(self.last_applied_zxid)
        assert self.last_applied_zxid >= self.log.base_zxid or not pending, "log tail too short"
        self._zab.commit.extend(pending)
        if pending:
            self.last_applied_zxid = pending[-1][0].zxid

    def _set_state(self, state: ServerState) -> None:
        self.state = state
        self._state_changed = state

    def _drain_role(self) -> None:
        """Move the role's output into the peer's, following it in the log mirror."""
        role = self.role
        if role is None:
            return
        r = role.drain()
        if r is None:
            return
        for p in r.persist:
            if p.truncate_zxid is not None:
                self.log.truncate(p.truncate_zxid)
                self.last_applied_zxid = min(self.last_applied_zxid, p.truncate_zxid)
                if self.pending is not None and self.pending.version > p.truncate_zxid:
                    self._set_pending(None)
            if p.snapshot is not None:
                self.log.reset(p.snapshot.zxid)
                self.last_applied_zxid = p.snapshot.zxid
            for txn in p.records:
                self.log.append(txn)
                if txn[0].type == OP.reconfig:
                    self._saw_logged(txn)
            if p.accepted_epoch is not None:
                self.accepted_epoch = p.accepted_epoch
            if p.current_epoch is not None:
                self.current_epoch = p.current_epoch
        for txn in r.commit:
            assert txn[0].zxid > self.last_applied_zxid, "commit out of order"
            self.last_applied_zxid = txn[0].zxid
        out = self._zab
        # one test per queue: most drains carry a packet or two of one kind
        if r.persist:
            out.persist.extend(r.persist)
        if r.commit:
            out.commit.extend(r.commit)
        if r.send:
            out.send.extend(r.send)
        if r.close:
            out.close.extend(r.close)
        if r.requests:
            out.requests.extend(r.requests)
        if r.touches:
            out.touches.extend(r.touches)
        if r.revalidate:
            out.revalidate.extend(r.revalidate)
        if r.revalidated:
            out.revalidated.extend(r.revalidated)
        if r.synced:
            out.synced.extend(r.synced)
        if r.reads:
            out.reads.extend(r.reads)
        for text, designated in r.activate:
            self._activate(role, text, designated)
        if r.activate and role.phase == _LOOKING:
            self._drain_role()   # the role a reconfig ended: its closes and phase
        if r.phase is not None:
            out.phase = r.phase
            if r.phase == _BROADCAST:
                self._update_vote(role)

    def _update_vote(self, role: Leader | Learner) -> None:
        vote = self.fle.current_vote
        if vote is not None and role.new_epoch is not None:
            self.fle.set_peer_state(self.state, Vote(vote.leader, vote.zxid, vote.election_epoch,
                                                     role.new_epoch, self.state))

    # ---- dynamic reconfig --------------------------------------------------------------
    def _saw_logged(self, txn: Txn) -> None:
        """A logged reconfig txn: its config is pending until activated."""
        hdr, body = txn
        if hdr.type != OP.reconfig or body is None:
            return
        try:
            qv = quorum_from_text((body.data or b"").decode("utf-8"), self.quorum.oracle_path)
        except (ValueError, AssertionError, UnicodeDecodeError):
            return
        if qv.version > self.quorum.version:
            self._set_pending(qv)

    def _set_pending(self, qv: QuorumVerifier | None) -> None:
        self.pending = qv
        self.fle.set_quorums(self.quorum, qv)

    def _set_config(self, qv: QuorumVerifier) -> None:
        self.quorum = qv
        self.config = qv.to_config_text().encode("utf-8")
        if self.pending is not None and self.pending.version <= qv.version:
            self.pending = None
        self.fle.set_quorums(qv, self.pending)
        self._config_changed = qv

    def _activate(self, role: Leader | Learner, text: bytes, designated: int | None) -> None:
        """processReconfig: make ``text`` the current config; a learner whose
        leader or own role it changes leaves (the peer elects again). Without
        reconfigEnabled it does nothing, as ZooKeeper's."""
        if not self.reconfig_enabled:
            return
        try:
            qv = quorum_from_text(text.decode("utf-8"), self.quorum.oracle_path)
        except (ValueError, AssertionError, UnicodeDecodeError):
            return
        prev = self.quorum
        if qv.version <= prev.version:
            return
        self._set_config(qv)
        if not isinstance(role, Learner) or prev.same_members(qv):
            return
        me = self.my_sid
        role_change = role.observer != (me in qv.observers)
        leader = role.leader_sid
        if designated is not None:
            leader_change = designated != leader
        else:
            leader_change = not (prev.is_voter(leader) and qv.is_voter(leader)) or \
                prev.spec(leader).split(":")[:2] != qv.spec(leader).split(":")[:2]
        if role_change or leader_change:
            role.leave()
