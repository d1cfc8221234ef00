"""Fast Leader Election as a sans-IO state machine.

State owned (one instance per peer, reused across elections):

* ``state``: the peer state carried in every notification this peer sends
  (LOOKING while electing; FOLLOWING / LEADING / OBSERVING once settled).
* ``election_epoch``: the logical clock, the number of the current round.
  It only grows, except when joining an established ensemble, which adopts
  that ensemble's round.
* the proposal: the vote this peer currently backs and advertises.
* ``recvset``: the latest vote of each voter in this round; ``outofelection``:
  the latest settled (FOLLOWING/LEADING) vote of each voter, of any round.
* timers: the notification interval (200 ms doubling to 60 s) after which
  the proposal is re-sent if nothing arrived, and the finalize deadline.

Inputs: ``start(now_ms)`` opens a round (logical clock + 1, vote for self,
notify every voter, self included: the transport loops that one back);
``step(sid, notification, now_ms)`` feeds a received notification;
``tick(now_ms)`` fires timers. Outputs: ``ready()`` gives the notifications to
send and, once, the decided vote; ``advance(ready)`` consumes them.

Rules (ZooKeeper 3.8 FastLeaderElection, facts section 3.3):

R1 vote order: see ``votes.vote_beats``.
R2 round start: logical clock + 1, vote for self, notify all voters.
R3 LOOKING notification from a higher round: adopt the round, clear the
   tally, back max(own initial vote, theirs) and re-broadcast. From a lower
   round: ignore it, but answer with our vote so the sender catches up.
   Same round and better: switch and re-broadcast. Either way it is tallied.
   Peers (or proposals) with zxid -1 take no part.
R3b (ours) same round and worse: answer with our better proposal. ZooKeeper
   stays silent, so a peer that entered the round late with a worse vote
   learns the better one only when someone's timer fires; the others' timers
   restart on every message, so that can take minutes (found by the
   simulator). The answer is an ordinary LOOKING notification, and it cannot
   loop: the sender adopts it, and equal votes are never answered.
R4 when the proposal is backed by a quorum of this round's votes, wait
   ``finalize_wait_ms``; a better notification in that window cancels the
   wait, any other notification is dropped and restarts it (ZooKeeper's
   poll loop). When the wait ends quietly, settle: LEADING if the proposal
   is us, else FOLLOWING (OBSERVING for a non-voter).
R5 FOLLOWING/LEADING notifications: a peer joins an established leader when
   a quorum reports the same leader (in this round, or in any round via the
   out-of-election set) and the leader itself reported LEADING (or, when we
   are the leader, the round is our own).
R6 a settled voter answers every LOOKING sender with its settled vote; every
   voter answers a non-voter (observer) at once with its current vote. A
   non-voter answers nobody (see ``_reply``): ZooKeeper's observers do, and
   an observer and a voter can then answer each other without end.
R7 if nothing arrives within the notification interval, re-send the
   proposal to all voters and double the interval, up to the maximum.
R8 non-voters (observers) propose nobody (Long.MIN_VALUE), never enter a
   tally and never become leader; they settle OBSERVING.

R9 the two-voter oracle (``quorum.OracleMajority``, ZooKeeper 3.8's
   QuorumOracleMaj and FastLeaderElection): every quorum check above may be
   won by the oracle. Besides, when the notification interval elapses and
   this round's tally backs the proposal (oracle included), settle at once
   (revalidateVoteset); and a LEADING notification that R5 does not accept
   is followed when the oracle is needed and says *no* (receivedLeading-
   Notification: a recovering voter whose oracle refuses it joins the
   leader the oracle authorized).

R10 dynamic reconfig: besides the current config the peer may hold a
   *pending* one (a reconfig it logged but did not see committed); while it
   does, notifications go to the voters of both, votes from either count,
   and every tally needs a quorum of each (ZooKeeper's termPredicate with
   the last seen config). A notification whose config is newer than ours is
   adopted while LOOKING: the new config replaces ours and a new round
   starts (ready().config hands it to the peer). A server that is in no
   config is a non-voting participant: it proposes nobody and follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zabpy.limits import (FLE_FINALIZE_WAIT_MS, FLE_NOTIFICATION_INTERVAL_MS_MAX,
                          FLE_NOTIFICATION_INTERVAL_MS_MIN)

from .quorum import QuorumVerifier
from .votes import LONG_MIN, Notification, ServerState, Vote, vote_beats, votes_agree

if TYPE_CHECKING:  # the core never imports random; the caller passes a seeded one
    import random

__all__ = ["ElectionReady", "FastLeaderElection"]


@dataclass(frozen=True, slots=True)
class ElectionReady:
    """What the election core asks for: notifications to send, and a decision."""

    send: tuple[tuple[int, Notification], ...] = ()
    decided: Vote | None = None
    config: QuorumVerifier | None = None    # R10: a newer config, adopted from a notification


_NOTHING = ElectionReady()


class FastLeaderElection:
    """One peer's leader election; see the module docstring for the rules."""

    def __init__(self, my_sid: int, quorum: QuorumVerifier, last_zxid: int, current_epoch: int,
                 rng: "random.Random", *,
                 notification_interval_ms_min: int = FLE_NOTIFICATION_INTERVAL_MS_MIN,
                 notification_interval_ms_max: int = FLE_NOTIFICATION_INTERVAL_MS_MAX,
                 finalize_wait_ms: int = FLE_FINALIZE_WAIT_MS) -> None:
        assert 0 < notification_interval_ms_min <= notification_interval_ms_max
        assert finalize_wait_ms >= 0
        self.my_sid = my_sid
        self.quorum = quorum
        # Kept for interface uniformity with other cores: FLE's rules use no randomness.
        self.rng = rng
        self.interval_ms_min = notification_interval_ms_min
        self.interval_ms_max = notification_interval_ms_max
        self.finalize_wait_ms = finalize_wait_ms
        self.config = quorum.to_config_text().encode("utf-8")
        self.pending: QuorumVerifier | None = None
        self.adopt_configs = False    # R10 with reconfigEnabled only, as processReconfig
        self._voters: tuple[int, ...] = quorum.voters
        self._adopted: QuorumVerifier | None = None
        self.last_zxid = last_zxid
        self.current_epoch = current_epoch
        self.state = ServerState.LOOKING
        self.election_epoch = 0
        self.proposal = self._initial_vote()
        self.current_vote: Vote | None = None
        self.recvset: dict[int, Vote] = {}
        self.outofelection: dict[int, Vote] = {}
        self.interval_ms = notification_interval_ms_min
        self.poll_deadline_ms: int | None = None
        self.finalize_deadline_ms: int | None = None
        self._outbox: list[tuple[int, Notification]] = []
        self._decided: Vote | None = None

    # ---- the three verbs -------------------------------------------------
    def start(self, now_ms: int, *, last_zxid: int | None = None,
              current_epoch: int | None = None) -> None:
        """Open a new round (R2); call again to re-elect after leaving a role."""
        if last_zxid is not None:
            self.last_zxid = last_zxid
        if current_epoch is not None:
            self.current_epoch = current_epoch
        self.state = ServerState.LOOKING
        self.election_epoch += 1
        self.proposal = self._initial_vote()
        self.recvset = {}
        self.outofelection = {}
        self.interval_ms = self.interval_ms_min
        self.poll_deadline_ms = now_ms + self.interval_ms
        self.finalize_deadline_ms = None
        self._send_notifications()
        self._check()

    def set_quorums(self, current: QuorumVerifier, pending: QuorumVerifier | None) -> None:
        """R10: the peer's current config, and its pending one (None: none)."""
        if pending is not None and pending.version <= current.version:
            pending = None
        self.quorum, self.pending = current, pending
        self.config = current.to_config_text().encode("utf-8")
        voters = set(current.voters) | set(pending.voters if pending is not None else ())
        self._voters = tuple(sorted(voters))

    def _is_voter(self, sid: int) -> bool:
        return sid in self._voters

    def _newer_config(self, n: Notification) -> QuorumVerifier | None:
        """R10: the config a notification carries, when newer than ours."""
        if not n.config or not self.adopt_configs:
            return None
        tail = n.config[-40:]
        at = tail.rfind(b"version=")
        try:
            version = int(tail[at + 8:], 16) if at >= 0 else -1
        except ValueError:
            return None
        if version <= self.quorum.version:
            return None
        from .reconfig import quorum_from_text   # noqa: PLC0415 (reconfig imports quorum)
        try:
            qv = quorum_from_text(n.config.decode("utf-8"), self.quorum.oracle_path)
        except (ValueError, AssertionError, UnicodeDecodeError):
            return None
        return qv if qv.version == version else None

    def step(self, sid: int, n: Notification, now_ms: int) -> None:
        """Feed one notification received from ``sid``."""
        self.tick(now_ms)
        if self.state == ServerState.LOOKING:
            qv = self._newer_config(n)
            if qv is not None:
                self.set_quorums(qv, self.pending)
                self._adopted = qv
                self.start(now_ms)
        if not self._is_voter(sid):
            # R6: a non-voter gets our current view immediately, whatever our state.
            self._reply(sid)
        elif self.state == ServerState.LOOKING:
            if n.state == ServerState.LOOKING and n.election_epoch < self.election_epoch:
                self._reply(sid)  # R3: help a lagging round catch up
            self._looking_receive(sid, n, now_ms)
        elif n.state == ServerState.LOOKING:
            self._reply(sid)  # R6
        self._check()

    def tick(self, now_ms: int) -> None:
        """Fire the finalize deadline (R4) or the notification interval (R7)."""
        if self.state != ServerState.LOOKING:
            return
        if self.finalize_deadline_ms is not None:
            if now_ms >= self.finalize_deadline_ms:
                self._settle(self.proposal.leader, self.proposal.zxid, self.election_epoch,
                             self.proposal.peer_epoch)
            return
        if self.poll_deadline_ms is not None and now_ms >= self.poll_deadline_ms:
            self._send_notifications()
            self.interval_ms = min(self.interval_ms * 2, self.interval_ms_max)
            self.poll_deadline_ms = now_ms + self.interval_ms
            if self.quorum.oracle_path is not None and self.recvset and self._backed_by_quorum(
                    self.recvset, Vote(self.proposal.leader, self.proposal.zxid,
                                       self.election_epoch, self.proposal.peer_epoch)):
                # R9: an oracle that said yes since the last notification
                self._settle(self.proposal.leader, self.proposal.zxid, self.election_epoch,
                             self.proposal.peer_epoch)

    def ready(self) -> ElectionReady:
        if not self._outbox and self._decided is None and self._adopted is None:
            return _NOTHING   # the usual case outside an election: no allocation
        return ElectionReady(tuple(self._outbox), self._decided, self._adopted)

    def advance(self, ready: ElectionReady) -> None:
        if ready is _NOTHING:
            return
        n = len(ready.send)
        assert tuple(self._outbox[:n]) == ready.send, "advance() with a stale ready"
        del self._outbox[:n]
        if ready.decided is not None:
            assert ready.decided == self._decided
            self._decided = None
        if ready.config is not None and ready.config is self._adopted:
            self._adopted = None

    # ---- queries and role changes ---------------------------------------
    def next_deadline_ms(self) -> int | None:
        """When ``tick`` next has work, for the runtime's or simulator's timer."""
        if self.state != ServerState.LOOKING:
            return None
        if self.finalize_deadline_ms is not None:
            return self.finalize_deadline_ms
        return self.poll_deadline_ms

    def set_peer_state(self, state: ServerState, vote: Vote | None = None) -> None:
        """Record the role the peer took (or a new settled vote) and keep answering.

        To look for a leader again, call ``start`` instead.
        """
        assert state != ServerState.LOOKING, "use start() to look for a leader"
        self.state = state
        if vote is not None:
            self.current_vote = vote
        assert self.current_vote is not None, "a settled peer needs a vote to advertise"
        self.poll_deadline_ms = None
        self.finalize_deadline_ms = None

    # ---- rules ------------------------------------------------------------
    def _initial_vote(self) -> Vote:
        """R8: a voter proposes itself; a non-voter proposes nobody."""
        if self.quorum.is_voter(self.my_sid):   # ZooKeeper's getInitId: the current config
            return Vote(self.my_sid, self.last_zxid, self.election_epoch, self.current_epoch)
        return Vote(LONG_MIN, LONG_MIN, self.election_epoch, LONG_MIN)

    def _notification(self, vote: Vote, state: ServerState, election_epoch: int) -> Notification:
        return Notification.of(vote, state, election_epoch, self.config)

    def _send_notifications(self) -> None:
        n = self._notification(self.proposal, ServerState.LOOKING, self.election_epoch)
        for sid in self._voters:
            self._outbox.append((sid, n))

    def _reply(self, sid: int) -> None:
        if not self._is_voter(self.my_sid):
            # A non-voter never answers: voters ignore what non-voters say
            # (they only answer them), so an answer is useless, and it would
            # ping-pong forever with a voter that answers every non-voter.
            return
        if self.state == ServerState.LOOKING or self.current_vote is None:
            n = self._notification(self.proposal, self.state, self.election_epoch)
        else:
            v = self.current_vote
            n = self._notification(v, self.state, v.election_epoch)
        self._outbox.append((sid, n))

    def _looking_receive(self, sid: int, n: Notification, now_ms: int) -> None:
        if self.finalize_deadline_ms is not None:
            if not vote_beats(n.vote(), self.proposal, self.quorum.weight):
                # R4: ZooKeeper's finalize poll consumes and drops anything not
                # better, and polls again for a full finalize wait.
                self.finalize_deadline_ms = now_ms + self.finalize_wait_ms
                return
            self.finalize_deadline_ms = None
        # Each received notification restarts ZooKeeper's poll timeout (R7).
        self.poll_deadline_ms = now_ms + self.interval_ms
        if not (self._is_voter(sid) and self._is_voter(n.leader)):
            return
        if n.state == ServerState.LOOKING:
            self._receive_looking(sid, n, now_ms)
        elif n.state in (ServerState.FOLLOWING, ServerState.LEADING):
            self._receive_settled(sid, n)

    def _receive_looking(self, sid: int, n: Notification, now_ms: int) -> None:
        if self.last_zxid == -1 or n.zxid == -1:
            return
        theirs = n.vote()
        if n.election_epoch > self.election_epoch:
            self.election_epoch = n.election_epoch
            self.recvset = {}
            mine = self._initial_vote()
            best = theirs if vote_beats(theirs, mine, self.quorum.weight) else mine
            self.proposal = Vote(best.leader, best.zxid, self.election_epoch, best.peer_epoch)
            self._send_notifications()
        elif n.election_epoch < self.election_epoch:
            return
        elif vote_beats(theirs, self.proposal, self.quorum.weight):
            self.proposal = Vote(n.leader, n.zxid, self.election_epoch, n.peer_epoch)
            self._send_notifications()
        elif vote_beats(self.proposal, theirs, self.quorum.weight):
            self._reply(sid)  # R3b: tell a same-round laggard now, not after our timers
        self.recvset[sid] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        target = Vote(self.proposal.leader, self.proposal.zxid, self.election_epoch,
                      self.proposal.peer_epoch)
        if self._backed_by_quorum(self.recvset, target):
            self.finalize_deadline_ms = now_ms + self.finalize_wait_ms

    def _receive_settled(self, sid: int, n: Notification) -> None:
        """R5: join an ensemble that already has (or is forming around) a leader."""
        vote = n.vote()
        if n.election_epoch == self.election_epoch:
            self.recvset[sid] = vote
            if (self._backed_by_quorum(self.recvset, vote)
                    and self._leader_confirmed(self.recvset, n.leader, n.election_epoch)):
                self._settle(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
                return
        self.outofelection[sid] = vote
        if (self._backed_by_quorum(self.outofelection, vote)
                and self._leader_confirmed(self.outofelection, n.leader, n.election_epoch)):
            self.election_epoch = n.election_epoch
            self._settle(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        elif (n.state == ServerState.LEADING and self.quorum.oracle_path is not None
              and self.quorum.need_oracle and not self.quorum.oracle):
            self._settle(n.leader, n.zxid, n.election_epoch, n.peer_epoch)   # R9

    def _backed_by_quorum(self, votes: dict[int, Vote], target: Vote) -> bool:
        sids = [sid for sid, v in votes.items() if votes_agree(v, target)]
        if self.pending is not None and not self.pending.contains_quorum(sids):
            return False
        return self.quorum.contains_quorum(sids)

    def _leader_confirmed(self, votes: dict[int, Vote], leader: int, election_epoch: int) -> bool:
        """ZooKeeper's checkLeader: the leader must itself say LEADING (or be us, this round)."""
        if leader != self.my_sid:
            v = votes.get(leader)
            return v is not None and v.state == ServerState.LEADING
        return self.election_epoch == election_epoch

    def _settle(self, leader: int, zxid: int, election_epoch: int, peer_epoch: int) -> None:
        if leader == self.my_sid:
            state = ServerState.LEADING
        elif self.my_sid not in self.quorum.observers:
            state = ServerState.FOLLOWING   # a voter, or a participant in no config (R10)
        else:
            state = ServerState.OBSERVING
        vote = Vote(leader, zxid, election_epoch, peer_epoch, state)
        self.state = state
        self.current_vote = vote
        self._decided = vote
        self.recvset = {}
        self.outofelection = {}
        self.poll_deadline_ms = None
        self.finalize_deadline_ms = None

    def _check(self) -> None:
        """Invariants that hold after every input."""
        assert self.interval_ms_min <= self.interval_ms <= self.interval_ms_max
        if self.state == ServerState.LOOKING:
            assert all(self._is_voter(s) for s in self.recvset)
            assert all(v.election_epoch == self.election_epoch or v.state != ServerState.LOOKING
                       for v in self.recvset.values())
        else:
            assert self.current_vote is not None
            assert self.finalize_deadline_ms is None and self.poll_deadline_ms is None
            assert (self.state == ServerState.LEADING) == (self.current_vote.leader == self.my_sid)
