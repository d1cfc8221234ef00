"""Election invariants, checked by the simulator after every step.

The checker keeps *ghost state*: every notification any peer actually sent,
as the network saw it (not as peers believe it). Against that record:

E1 evidence: a peer may settle on leader L (round e, zxid z, epoch p) only if
   a quorum of voters really sent either a LOOKING vote (L, z, e, p) or a
   settled (FOLLOWING/LEADING) notice naming (L, p). A decision without that
   evidence means a miscount, a stale tally or a mixed-up round.
E2 well-formed: the leader is a voter with non-zero weight; a peer settles
   LEADING exactly when it chose itself; voters never settle OBSERVING and
   observers settle nothing else.
E3 agreement: within one election round, no two different leaders are each
   chosen by a quorum of peers, counting every decision of the peers' current
   incarnations (``on_restart`` forgets a crashed peer's decisions: its
   logical clock restarts at 0, so its rounds are reused, and only ZAB's
   epochs protect those). Two quorums of deciders would share a peer that
   decided twice in one round for two leaders.
"""

from __future__ import annotations

from zabpy.election import QuorumVerifier, ServerState, Vote, decode_notification
from zabpy.jute.codec import DecodeError

__all__ = ["SimFailure", "ElectionChecker"]


class SimFailure(AssertionError):
    """An invariant or the liveness bound was violated."""


class ElectionChecker:
    def __init__(self, quorum: QuorumVerifier) -> None:
        self.quorum = quorum
        self._sent: dict[int, dict[tuple, None]] = {}
        self._deciders: dict[int, dict[int, dict[int, None]]] = {}  # round -> leader -> sids
        self.decisions = 0

    def on_send(self, src: int, payload: bytes) -> None:
        try:
            n = decode_notification(payload)
        except DecodeError:
            raise SimFailure(f"peer {src} sent a notification we cannot decode") from None
        if n.state == ServerState.LOOKING:
            key: tuple = ("looking", n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        elif n.state in (ServerState.FOLLOWING, ServerState.LEADING):
            key = ("settled", n.leader, n.peer_epoch)
        else:
            return
        self._sent.setdefault(src, {})[key] = None

    def on_restart(self, sid: int) -> None:
        for by_leader in self._deciders.values():
            for sids in by_leader.values():
                sids.pop(sid, None)

    def on_decide(self, sid: int, vote: Vote) -> None:
        self.decisions += 1
        self._check_well_formed(sid, vote)
        self._check_evidence(sid, vote)
        self._check_agreement(sid, vote)

    def _check_well_formed(self, sid: int, vote: Vote) -> None:
        q = self.quorum
        if not q.is_voter(vote.leader) or q.weight(vote.leader) == 0:
            raise SimFailure(f"E2: peer {sid} chose {vote.leader}, which cannot lead")
        if (vote.state == ServerState.LEADING) != (vote.leader == sid):
            raise SimFailure(f"E2: peer {sid} settled {vote.state.name} for leader {vote.leader}")
        if (vote.state == ServerState.OBSERVING) == q.is_voter(sid):
            raise SimFailure(f"E2: peer {sid} settled {vote.state.name}")

    def _check_evidence(self, sid: int, vote: Vote) -> None:
        looking = ("looking", vote.leader, vote.zxid, vote.election_epoch, vote.peer_epoch)
        settled = ("settled", vote.leader, vote.peer_epoch)
        backers = [s for s in self.quorum.voters
                   if looking in self._sent.get(s, {}) or settled in self._sent.get(s, {})]
        if not self.quorum.contains_quorum(backers):
            raise SimFailure(f"E1: peer {sid} settled on {vote} backed only by {backers}")

    def _check_agreement(self, sid: int, vote: Vote) -> None:
        by_leader = self._deciders.setdefault(vote.election_epoch, {})
        by_leader.setdefault(vote.leader, {})[sid] = None
        chosen = [leader for leader, sids in sorted(by_leader.items())
                  if self.quorum.contains_quorum(sids)]
        if len(chosen) > 1:
            raise SimFailure(f"E3: round {vote.election_epoch} chose leaders {chosen}")
