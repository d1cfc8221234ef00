"""Fast Leader Election rules, one test per rule (facts 3.3; fle.py R1..R8).

Core tests: build the object, feed notifications, assert on ready(). No
sockets, no clock: time is an argument.
"""

import random

from zabpy.election import (FastLeaderElection, HierarchicalQuorum, MajorityQuorum, Notification,
                            ServerState, Vote)
from zabpy.election.votes import LONG_MIN

LOOKING, FOLLOWING, LEADING, OBSERVING = (ServerState.LOOKING, ServerState.FOLLOWING,
                                          ServerState.LEADING, ServerState.OBSERVING)
Q3 = MajorityQuorum([1, 2, 3])


def make(sid, quorum=Q3, zxid=10, epoch=1, **kw):
    return FastLeaderElection(sid, quorum, zxid, epoch, random.Random(0), **kw)


def drain(fle):
    ready = fle.ready()
    fle.advance(ready)
    return ready


def note(leader, zxid, round_, epoch=1, state=LOOKING):
    return Notification(state, leader, zxid, round_, epoch)


def proposals(ready):
    return {(to, n.leader, n.election_epoch, n.state) for to, n in ready.send}


def test_r2_round_start_votes_for_self_and_notifies_every_voter():
    fle = make(2)
    fle.start(now_ms=0)
    ready = drain(fle)
    assert fle.election_epoch == 1 and fle.state == LOOKING
    assert proposals(ready) == {(1, 2, 1, LOOKING), (2, 2, 1, LOOKING), (3, 2, 1, LOOKING)}
    assert all(n.config.startswith(b"server.1=") for _, n in ready.send)
    fle.start(now_ms=5)
    assert fle.election_epoch == 2


def test_r3_higher_round_is_adopted_and_the_best_vote_rebroadcast():
    fle = make(1, zxid=50)
    fle.start(0)
    drain(fle)
    fle.step(2, note(2, 10, round_=5), 1)   # newer round, worse vote
    ready = drain(fle)
    assert fle.election_epoch == 5
    assert fle.proposal.leader == 1           # own initial vote is better
    assert proposals(ready) == {(s, 1, 5, LOOKING) for s in (1, 2, 3)}
    assert set(fle.recvset) == {2}


def test_r3_higher_round_with_better_vote_switches():
    fle = make(1, zxid=5)
    fle.start(0)
    drain(fle)
    fle.step(3, note(3, 10, round_=4), 1)
    assert fle.proposal.leader == 3 and fle.election_epoch == 4
    assert proposals(drain(fle)) == {(s, 3, 4, LOOKING) for s in (1, 2, 3)}


def test_r3_lower_round_is_not_tallied_but_answered():
    fle = make(1)
    fle.start(0)
    fle.step(2, note(2, 10, round_=9), 1)
    drain(fle)
    fle.step(3, note(3, 99, round_=2), 2)     # older round, even with a better vote
    ready = drain(fle)
    assert fle.proposal.leader == 2 and 3 not in fle.recvset
    assert proposals(ready) == {(3, 2, 9, LOOKING)}


def test_r3_same_round_better_switches_worse_is_tallied_and_answered():
    fle = make(2)
    fle.start(0)
    drain(fle)
    fle.step(1, note(1, 10, round_=1), 1)     # same zxid, lower sid: worse
    # R3b (ours): the laggard is told our better vote at once.
    assert proposals(drain(fle)) == {(1, 2, 1, LOOKING)} and fle.recvset[1].leader == 1
    fle.step(1, note(2, 10, round_=1), 2)     # equal votes are never answered
    assert drain(fle).send == ()
    fle.step(3, note(3, 10, round_=1), 2)     # same zxid, higher sid: better
    assert proposals(drain(fle)) == {(s, 3, 1, LOOKING) for s in (1, 2, 3)}


def test_r3_zxid_minus_one_takes_no_part():
    fle = make(1)
    fle.start(0)
    drain(fle)
    fle.step(3, note(3, -1, round_=1), 1)
    assert fle.proposal.leader == 1 and fle.recvset == {}


def test_r4_quorum_then_finalize_wait_then_lead():
    fle = make(3, finalize_wait_ms=200)
    fle.start(0)
    drain(fle)
    fle.step(3, note(3, 10, 1), 10)           # own vote, looped back
    fle.step(1, note(3, 10, 1), 20)           # quorum {1, 3} backs 3
    assert fle.finalize_deadline_ms == 220
    fle.tick(219)
    assert fle.ready().decided is None
    fle.tick(220)
    decided = drain(fle).decided
    assert decided == Vote(3, 10, 1, 1, LEADING) and fle.state == LEADING


def test_r4_follower_settles_following():
    fle = make(1)
    fle.start(0)
    fle.step(3, note(3, 10, 1), 1)
    fle.step(1, note(3, 10, 1), 2)
    fle.tick(1000)
    assert drain(fle).decided == Vote(3, 10, 1, 1, FOLLOWING)


def test_r4_better_vote_during_finalize_cancels_it():
    fle = make(1, zxid=10)
    fle.start(0)
    fle.step(2, note(2, 10, 1), 1)
    fle.step(1, note(2, 10, 1), 2)
    assert fle.finalize_deadline_ms == 202
    fle.step(3, note(3, 10, 1), 100)          # better: back to the election
    assert fle.finalize_deadline_ms is None and fle.proposal.leader == 3
    fle.tick(500)
    assert fle.ready().decided is None


def test_r4_other_notifications_during_finalize_restart_the_wait():
    fle = make(1)
    fle.start(0)
    fle.step(2, note(2, 10, 1), 1)
    fle.step(1, note(2, 10, 1), 2)
    fle.step(2, note(2, 10, 1), 150)          # not better: dropped, wait restarts
    assert fle.finalize_deadline_ms == 350


def test_r5_join_established_leader_from_out_of_election_notices():
    fle = make(1)
    fle.start(0)
    fle.step(2, note(3, 40, 7, state=FOLLOWING), 1)
    assert fle.state == LOOKING                # leader not yet confirmed LEADING
    fle.step(3, note(3, 40, 7, state=LEADING), 2)
    decided = drain(fle).decided
    assert decided.leader == 3 and decided.state == FOLLOWING
    assert fle.election_epoch == 7             # the ensemble's round is adopted


def test_r5_no_join_without_a_quorum():
    fle = make(1, quorum=MajorityQuorum([1, 2, 3, 4, 5]))
    fle.start(0)
    fle.step(3, note(3, 40, 7, state=LEADING), 1)
    fle.step(2, note(3, 40, 7, state=FOLLOWING), 2)
    assert fle.state == LOOKING
    fle.step(4, note(3, 40, 7, state=FOLLOWING), 3)
    assert fle.state == FOLLOWING


def test_r6_settled_peer_answers_looking_senders_only():
    fle = make(1)
    fle.start(0)
    fle.step(2, note(3, 40, 7, state=FOLLOWING), 1)
    fle.step(3, note(3, 40, 7, state=LEADING), 2)
    drain(fle)
    fle.step(2, note(2, 5, 1), 3)
    assert proposals(drain(fle)) == {(2, 3, 7, FOLLOWING)}
    fle.step(2, note(3, 40, 7, state=FOLLOWING), 4)
    assert drain(fle).send == ()
    fle.set_peer_state(LEADING, Vote(1, 10, 8, 2, LEADING))
    fle.step(3, note(3, 5, 1), 5)
    assert proposals(drain(fle)) == {(3, 1, 8, LEADING)}


def test_r6_non_voter_is_answered_at_once_and_never_tallied():
    fle = make(1, quorum=MajorityQuorum([1, 2, 3], [4]))
    fle.start(0)
    drain(fle)
    fle.step(4, Notification(LOOKING, LONG_MIN, LONG_MIN, 1, LONG_MIN), 1)
    assert proposals(drain(fle)) == {(4, 1, 1, LOOKING)} and fle.recvset == {}


def test_r7_resend_with_exponential_backoff_capped():
    fle = make(1, notification_interval_ms_min=200, notification_interval_ms_max=1000)
    fle.start(0)
    drain(fle)
    deadlines = []
    for _ in range(5):
        t = fle.next_deadline_ms()
        deadlines.append(t)
        fle.tick(t)
        assert len(drain(fle).send) == 3       # re-sent to every voter
    assert deadlines == [200, 600, 1400, 2400, 3400]


def test_r7_any_notification_restarts_the_interval():
    fle = make(1)
    fle.start(0)
    fle.step(2, note(2, 1, 1), 150)
    assert fle.next_deadline_ms() == 350


def test_r8_observer_proposes_nobody_and_settles_observing():
    q = MajorityQuorum([1, 2, 3], [4])
    obs = make(4, quorum=q)
    obs.start(0)
    ready = drain(obs)
    assert {to for to, _ in ready.send} == {1, 2, 3}   # voters only, not itself
    assert all(n.leader == LONG_MIN for _, n in ready.send)
    obs.step(3, note(3, 10, 1), 1)
    obs.step(2, note(3, 10, 1), 2)
    obs.tick(1000)
    assert drain(obs).decided == Vote(3, 10, 1, 1, OBSERVING)


def test_weight_zero_voter_is_never_proposed():
    q = HierarchicalQuorum({1: [1, 2, 3]}, weights={3: 0})
    fle = make(1, quorum=q, zxid=1)
    fle.start(0)
    fle.step(3, note(3, 99, 1), 1)
    assert fle.proposal.leader == 1


def test_two_servers_need_each_other():
    q = MajorityQuorum([1, 2])
    a, b = make(1, quorum=q), make(2, quorum=q)
    a.start(0)
    b.start(0)
    for fle in (a, b):
        for _ in range(3):
            fle.tick(fle.next_deadline_ms())
            for to, n in drain(fle).send:
                if to == fle.my_sid:
                    fle.step(to, n, fle.next_deadline_ms() - 1)
    assert a.state == b.state == LOOKING       # alone, neither decides
    now = 10_000
    for _ in range(4):                         # now let them talk
        for src, dst in ((a, b), (b, a)):
            for to, n in drain(src).send:
                (a if to == 1 else b).step(src.my_sid, n, now)
        now += 300
        a.tick(now)
        b.tick(now)
    assert a.state == FOLLOWING and b.state == LEADING


def _oracle_quorum(says):
    from zabpy.election import OracleMajority
    q = OracleMajority([1, 2], oracle_path="/oracle")
    q.set_oracle(says)
    return q


def test_r9_lone_voter_leads_when_its_oracle_says_1():
    fle = make(1, quorum=_oracle_quorum(True), finalize_wait_ms=200)
    fle.start(0)
    drain(fle)
    fle.step(1, note(1, 10, 1), 5)            # its own vote is a quorum now
    fle.tick(205)
    assert drain(fle).decided == Vote(1, 10, 1, 1, LEADING)


def test_r9_oracle_saying_1_later_is_seen_when_the_interval_elapses():
    q = _oracle_quorum(False)
    fle = make(1, quorum=q)
    fle.start(0)
    drain(fle)
    fle.step(1, note(1, 10, 1), 5)
    fle.tick(10_000)
    assert fle.state == LOOKING               # alone, and the oracle says no
    q.set_oracle(True)
    fle.tick(fle.next_deadline_ms())          # revalidateVoteset: settle at once
    assert drain(fle).decided.state == LEADING


def test_r9_leading_notification_is_followed_when_the_oracle_says_no():
    fle = make(1, quorum=_oracle_quorum(False))
    fle.start(0)
    fle.step(2, note(2, 40, 7, state=LEADING), 1)
    decided = drain(fle).decided
    assert decided.leader == 2 and decided.state == FOLLOWING
    # with a plain majority, one LEADING voter of two is not enough
    fle = make(1, quorum=MajorityQuorum([1, 2]))
    fle.start(0)
    fle.step(2, note(2, 40, 7, state=LEADING), 1)
    assert fle.state == LOOKING
