"""ZAB leader and learner cores: feed packets, assert on ready().

Each test names the Zab.tla action (or the Zab paper section) whose rule it
checks; facts 3.5 gives ZooKeeper's variant of each.
"""

import pytest

from zabpy.election import MajorityQuorum
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.zab import History, Leader, Learner, PacketType as T, Phase, Snapshot, ZabTimers
from zabpy.zab import packets as P

TIMERS = ZabTimers(tick_ms=100, init_limit=10, sync_limit=5)
Q3 = MajorityQuorum([1, 2, 3])


def txn(epoch, counter):
    z = P.make_zxid(epoch, counter)
    return (R.TxnHeader(7, counter, z, 0, OpCode.create),
            R.CreateTxn(f"/t{epoch}_{counter}", b"", list(OPEN_ACL_UNSAFE), False, -1))


def proposed(leader):
    """Propose a txn carrying the zxid the leader allocates next."""
    z = leader.next_zxid()
    hdr, body = txn(P.epoch_of(z), P.counter_of(z))
    return leader.propose(hdr, body)


def drain(core):
    r = core.ready()
    core.advance(r)
    return r


def info(sid, accepted_epoch, observer=False):
    kind = T.OBSERVERINFO if observer else T.FOLLOWERINFO
    return P.learner_info(kind, sid, accepted_epoch, 0)


def new_leader(entries=(), accepted=1, current=1, snapshot=Snapshot(0, b"snap"), limit=500):
    log = History(0, entries)
    return Leader(1, Q3, log, accepted, current, 0, timers=TIMERS,
                  snapshot_source=lambda: snapshot, committed_log_max=limit)


def establish(leader, peers=((2, 0), (3, 0))):
    """Run discovery and sync with learners given as (sid, last zxid)."""
    for sid, _ in peers:
        leader.step(sid, info(sid, 1), 0)
    for sid, last in peers:
        leader.step(sid, P.ack_epoch(last, 1), 0)
    r = drain(leader)
    for p in r.persist:
        for dst, pkt in p.then:
            if dst == 1:
                leader.step(1, pkt, 0)
    for sid, _ in peers:
        leader.step(sid, P.packet(T.ACK, P.make_zxid(leader.new_epoch, 0)), 0)
    return r


# ---- discovery ------------------------------------------------------------------

def test_new_epoch_is_max_accepted_plus_one_and_leaderinfo_waits_for_the_write():
    # Zab.tla LeaderProcessCEPOCH: newEpoch = max(acceptedEpoch of a quorum) + 1.
    leader = new_leader(accepted=3, current=3)
    leader.step(2, info(2, 5), 0)
    r = drain(leader)
    (p,) = r.persist
    assert p.accepted_epoch == 6 and leader.new_epoch == 6
    assert p.then == ((2, P.leader_info(6)),)
    assert not r.send  # LEADERINFO only after acceptedEpoch is durable
    leader.step(3, info(3, 0), 0)  # a late learner: behind a barrier too
    assert drain(leader).persist[0].then == ((3, P.leader_info(6)),)


def test_leader_gives_up_its_term_for_a_learner_that_accepted_a_later_epoch():
    """L1' (found by the simulator, seed 22): a voter that accepted epoch e' >
    our epoch refuses LEADERINFO (FollowerProcessNEWEPOCH); the leader ends
    its term so the next election decides an epoch above e'."""
    leader = new_leader()
    establish(leader)
    assert drain(leader).phase == Phase.BROADCAST
    leader.step(2, info(2, leader.new_epoch + 1), 0)
    assert drain(leader).phase == Phase.LOOKING
    # an equal accepted epoch is fine: the learner acks it with -1
    leader = new_leader()
    establish(leader)
    drain(leader)
    leader.step(2, info(2, leader.new_epoch), 0)
    assert leader.phase == Phase.BROADCAST


def test_learner_persists_accepted_epoch_before_ackepoch():
    # Zab.tla FollowerProcessNEWEPOCH.
    f = Learner(2, 1, P.make_zxid(1, 4), 1, 1, 0, timers=TIMERS)
    assert drain(f).send == ((1, info(2, 1)),)
    f.step(1, P.leader_info(2), 0)
    (p,) = drain(f).persist
    assert p.accepted_epoch == 2 and p.then == ((1, P.ack_epoch(P.make_zxid(1, 4), 1)),)


def test_learner_refuses_an_older_epoch():
    f = Learner(2, 1, 0, 5, 5, 0, timers=TIMERS)
    f.step(1, P.leader_info(4), 0)
    r = drain(f)
    assert r.phase == Phase.LOOKING and r.close == (1,)


def test_leader_gives_up_when_a_follower_is_more_recent():
    # Zab.tla LeaderProcessACKEPOCH (ZooKeeper: "Follower is ahead of the leader").
    leader = new_leader([txn(1, 1)])
    leader.step(2, info(2, 1), 0)
    leader.step(2, P.ack_epoch(P.make_zxid(1, 9), 1), 0)
    assert drain(leader).phase == Phase.LOOKING


# ---- synchronization -------------------------------------------------------------

def sync_packets(leader, sid):
    return [pkt for dst, pkt in leader.ready().send if dst == sid]


def test_sync_by_diff_trunc_and_snap():
    # Zab.tla LeaderSyncFollower; facts 3.5 "sync".
    history = [txn(1, i) for i in range(1, 6)]
    leader = new_leader(history, limit=3)   # holds (1,3]..(1,5]; base (1,2)
    leader.step(2, info(2, 1), 0)
    leader.step(3, info(3, 1), 0)
    leader.step(2, P.ack_epoch(P.make_zxid(1, 3), 1), 0)
    leader.step(3, P.ack_epoch(P.make_zxid(1, 9), 1), 0)
    kinds2 = [(p.type, P.counter_of(p.zxid)) for p in sync_packets(leader, 2)]
    assert kinds2 == [(T.DIFF, 5), (T.PROPOSAL, 4), (T.COMMIT, 4), (T.PROPOSAL, 5),
                      (T.COMMIT, 5), (T.NEWLEADER, 0)]
    kinds3 = [(p.type, P.counter_of(p.zxid)) for p in sync_packets(leader, 3)]
    assert kinds3 == [(T.TRUNC, 5), (T.NEWLEADER, 0)]


def test_sync_by_snap_when_the_learner_is_older_than_the_window():
    history = [txn(1, i) for i in range(1, 6)]
    leader = new_leader(history, snapshot=Snapshot(P.make_zxid(1, 4), b"image"), limit=3)
    leader.step(2, info(2, 1), 0)
    leader.step(2, P.ack_epoch(P.make_zxid(1, 1), 1), 0)
    pkts = sync_packets(leader, 2)
    assert (pkts[0].type, pkts[0].data) == (T.SNAP, b"image")
    assert [p.type for p in pkts[1:]] == [T.PROPOSAL, T.COMMIT, T.NEWLEADER]


def test_unknown_tail_is_truncated_before_the_diff():
    # A learner holding (1,3) from a lost epoch-1 proposal the leader never saw.
    leader = new_leader([txn(1, 1), txn(1, 2), txn(2, 1)], accepted=2, current=2)
    leader.step(2, info(2, 2), 0)
    leader.step(2, P.ack_epoch(P.make_zxid(1, 3), 1), 0)
    pkts = sync_packets(leader, 2)
    assert (pkts[0].type, pkts[0].zxid) == (T.TRUNC, P.make_zxid(1, 2))
    assert pkts[1].zxid == P.make_zxid(2, 1)


def test_learner_newleader_persists_txns_then_epoch_then_acks():
    # Zab.tla FollowerProcessNEWLEADER, with the ZOOKEEPER-4643 order: one
    # Persist holds the txns and currentEpoch; the ACK is in its ``then``.
    f = Learner(2, 1, 0, 1, 1, 0, timers=TIMERS)
    f.step(1, P.leader_info(2), 0)
    drain(f)
    f.step(1, P.packet(T.DIFF, P.make_zxid(1, 2)), 0)
    for t in (txn(1, 1), txn(1, 2)):
        f.step(1, P.proposal(*t), 0)
    f.step(1, P.packet(T.COMMIT, P.make_zxid(1, 1)), 0)
    assert drain(f).empty()
    f.step(1, P.newleader(2, b""), 0)
    r = drain(f)
    (p,) = r.persist
    assert [t[0].zxid for t in p.records] == [P.make_zxid(1, 1), P.make_zxid(1, 2)]
    assert p.current_epoch == 2
    assert p.then == ((1, P.packet(T.ACK, P.make_zxid(2, 0))), (1, P.packet(T.ACK, P.make_zxid(1, 2))))
    assert [t[0].zxid for t in r.commit] == [P.make_zxid(1, 1)]
    assert not r.send
    f.step(1, P.packet(T.UPTODATE, -1), 0)
    r = drain(f)
    assert r.phase == Phase.BROADCAST and f.serving


def test_quorum_of_newleader_acks_establishes_and_sends_uptodate():
    # Zab.tla LeaderProcessACKLD.
    leader = new_leader()
    establish(leader, peers=((2, 0),))
    r = drain(leader)
    assert leader.established and r.phase == Phase.BROADCAST
    assert (2, P.packet(T.UPTODATE, -1)) in r.send


# ---- broadcast -----------------------------------------------------------------------

def test_commit_needs_a_quorum_and_goes_in_zxid_order():
    # Zab.tla LeaderProcessACK / LeaderCommit; paper §3.2 "total order".
    leader = new_leader()
    establish(leader)
    drain(leader)
    z1 = proposed(leader)
    z2 = proposed(leader)
    assert (z1, z2) == (P.make_zxid(2, 1), P.make_zxid(2, 2))
    r = drain(leader)
    assert [p.then for p in r.persist] == [((1, P.packet(T.ACK, z1)),), ((1, P.packet(T.ACK, z2)),)]
    assert [pkt.type for _, pkt in r.send] == [T.PROPOSAL] * 4
    leader.step(2, P.packet(T.ACK, z2), 0)
    leader.step(1, P.packet(T.ACK, z2), 0)
    assert not drain(leader).commit  # z2 has a quorum, but z1 does not yet
    leader.step(1, P.packet(T.ACK, z1), 0)
    assert not drain(leader).commit  # the leader alone is not a quorum of 3
    leader.step(3, P.packet(T.ACK, z1), 0)
    r = drain(leader)
    assert [t[0].zxid for t in r.commit] == [z1, z2]
    assert [pkt.zxid for _, pkt in r.send if pkt.type == T.COMMIT] == [z1, z1, z2, z2]


def test_learner_acks_a_proposal_only_after_fsync_and_rejects_a_commit_out_of_order():
    # Zab.tla FollowerProcessPROPOSAL / FollowerProcessCOMMIT.
    f = Learner(2, 1, 0, 1, 1, 0, timers=TIMERS)
    for pkt in (P.leader_info(1), P.packet(T.DIFF, 0), P.newleader(1, b""),
                P.packet(T.UPTODATE, -1)):
        f.step(1, pkt, 0)
    drain(f)
    f.step(1, P.proposal(*txn(1, 1)), 0)
    f.step(1, P.proposal(*txn(1, 2)), 0)
    r = drain(f)
    assert [p.then for p in r.persist] == [((1, P.packet(T.ACK, P.make_zxid(1, 1))),),
                                           ((1, P.packet(T.ACK, P.make_zxid(1, 2))),)]
    assert not r.send
    f.step(1, P.packet(T.COMMIT, P.make_zxid(1, 2)), 0)
    assert drain(f).phase == Phase.LOOKING


def test_observer_gets_inform_and_never_acks():
    f = Learner(4, 1, 0, 1, 1, 0, observer=True, timers=TIMERS)
    for pkt in (P.leader_info(1), P.packet(T.DIFF, 0), P.newleader(1, b""),
                P.packet(T.UPTODATE, -1)):
        f.step(1, pkt, 0)
    drain(f)
    f.step(1, P.proposal(*txn(1, 1), kind=T.INFORM), 0)
    r = drain(f)
    assert r.persist[0].then == () and [t[0].zxid for t in r.commit] == [P.make_zxid(1, 1)]


def test_forwarded_sync_is_answered_after_outstanding_proposals_commit():
    # facts 3.5 sync(): SYNC after the last outstanding proposal commits.
    leader = new_leader()
    establish(leader)
    drain(leader)
    z = proposed(leader)
    leader.step(2, P.request(5, 1, OpCode.sync, b""), 0)
    r = drain(leader)
    # the pipeline hands it back in its turn (ZooKeeper's ProposalRequestProcessor)
    assert [(q.sid, q.op) for q in r.requests] == [(2, OpCode.sync)]
    leader.learner_sync(2)
    leader.sync("local")
    r = drain(leader)
    assert not any(pkt.type == T.SYNC for _, pkt in r.send) and not r.synced
    leader.step(1, P.packet(T.ACK, z), 0)
    leader.step(3, P.packet(T.ACK, z), 0)
    r = drain(leader)
    assert (2, P.packet(T.SYNC, 0)) in r.send and r.synced == ("local",)


def test_ping_reply_carries_session_touches():
    leader = new_leader()
    establish(leader)
    drain(leader)
    leader.tick(TIMERS.tick_ms)
    pings = [(d, p) for d, p in drain(leader).send if p.type == T.PING]
    assert {d for d, _ in pings} == {2, 3}
    f = Learner(2, 1, 0, 1, 1, 0, timers=TIMERS)
    for pkt in (P.leader_info(1), P.packet(T.DIFF, 0), P.newleader(1, b""),
                P.packet(T.UPTODATE, -1)):
        f.step(1, pkt, 0)
    drain(f)
    f.touch(0xabc, 4000)
    f.step(1, pings[0][1], 0)
    (reply,) = [p for _, p in drain(f).send if p.type == T.PING]
    leader.step(2, reply, 0)
    assert drain(leader).touches == ((0xabc, 4000),)


def test_ping_before_newleader_ack_is_unanswered_then_waits_behind_the_ack():
    """F7 (ZooKeeper's Learner.syncWithLeader ignores PING until UPTODATE): a
    Java leader takes the packet after NEWLEADER as its ACK, so no PING reply
    may leave before it. Found in a mixed ensemble: a Java 3.8 leader dropped
    a zabpy follower ("Next packet was supposed to be an ACK, but received
    packet: PING")."""
    ping = P.packet(T.PING, 0)
    f = Learner(2, 1, 0, 1, 1, 0, timers=TIMERS)
    drain(f)                                  # FOLLOWERINFO
    f.step(1, ping, 0)                        # discovery: nothing to say
    assert drain(f).send == ()
    f.step(1, P.leader_info(1), 0)
    f.step(1, P.packet(T.DIFF, 0), 0)
    f.step(1, ping, 0)                        # syncing: still nothing
    r = drain(f)
    assert [p.type for _, p in r.send] == []
    f.step(1, P.newleader(1, b""), 0)
    f.step(1, ping, 0)                        # NEWLEADER taken, its ACK not yet durable
    r = drain(f)
    assert r.send == ()
    thens = [tuple(p.type for _, p in ps.then) for ps in r.persist if ps.then]
    assert thens[-2:] == [(T.ACK,), (T.PING,)]    # the reply only behind the ACK


def test_outstanding_proposals_follow_newleader():
    """A 3.8.0 Java learner forgets at NEWLEADER the proposals it holds
    uncommitted, and a later COMMIT of one crashes its sync; so a proposal
    outstanding while a learner syncs goes after NEWLEADER (L3)."""
    leader = new_leader()
    establish(leader, peers=((2, 0),))
    drain(leader)
    z = proposed(leader)
    drain(leader)
    leader.step(3, info(3, 0), 0)
    drain(leader)
    leader.step(3, P.ack_epoch(0, 0), 0)
    kinds = [(p.type, p.zxid) for d, p in drain(leader).send if d == 3]
    newleader = kinds.index((T.NEWLEADER, P.make_zxid(leader.current_epoch, 0)))
    assert (T.PROPOSAL, z) in kinds[newleader:]


# ---- liveness --------------------------------------------------------------------------

def test_leader_without_a_quorum_for_sync_limit_steps_down():
    # facts 3.5 liveness: the leader checks every tick that a quorum is synced.
    leader = new_leader()
    establish(leader)
    drain(leader)
    leader.step(2, P.packet(T.PING, 0), TIMERS.sync_ms - 1)
    leader.tick(TIMERS.sync_ms)        # 3 is silent but 1+2 is a quorum
    assert leader.established
    leader.tick(2 * TIMERS.sync_ms)    # now 2 is silent too
    r = drain(leader)
    assert r.phase == Phase.LOOKING and set(r.close) == {2, 3}


def test_learner_syncing_has_init_limit_until_its_newleader_ack():
    """L6 (LearnerHandler: initLimit socket timeout until the NEWLEADER ACK,
    syncLimit after). Found in a mixed ensemble: a Java learner told to TRUNC
    writes a snapshot before it acks NEWLEADER and took longer than syncLimit."""
    leader = new_leader()
    establish(leader, peers=((2, 0),))
    drain(leader)
    leader.step(3, info(3, 1), 0)
    leader.step(3, P.ack_epoch(0, 1), 0)
    assert any(p.type == T.NEWLEADER for d, p in drain(leader).send if d == 3)
    for now in (TIMERS.sync_ms, TIMERS.init_ms - 1):
        leader.step(2, P.ping_reply(0, {}), now)    # the quorum stays
        leader.tick(now)
        assert 3 not in drain(leader).close
    leader.step(2, P.ping_reply(0, {}), TIMERS.init_ms)
    leader.tick(TIMERS.init_ms)
    assert 3 in drain(leader).close
    leader.step(3, info(3, 1), TIMERS.init_ms)       # once acked: syncLimit
    leader.step(3, P.ack_epoch(0, 1), TIMERS.init_ms)
    drain(leader)
    leader.step(3, P.packet(T.ACK, P.make_zxid(leader.new_epoch, 0)), TIMERS.init_ms)
    drain(leader)
    now = TIMERS.init_ms + TIMERS.sync_ms
    leader.step(2, P.ping_reply(0, {}), now)
    leader.tick(now)
    assert 3 in drain(leader).close


def test_learner_that_hears_nothing_leaves():
    f = Learner(2, 1, 0, 0, 0, 0, timers=TIMERS)
    f.tick(TIMERS.init_ms - 1)
    assert f.phase == Phase.DISCOVERY
    f.tick(TIMERS.init_ms)
    assert drain(f).phase == Phase.LOOKING


def test_learner_dials_a_silent_leader_again_as_zookeeper_does():
    """F6 (Learner.connectToLeader): a Java leader binds its quorum port only
    after FLE's finalize wait, so a learner that decided first is refused.
    It retries every LEARNER_CONNECT_RETRY_MS, at most LEARNER_CONNECT_TRIES_MAX
    attempts, resending its FOLLOWERINFO behind each dial; then it leaves."""
    from zabpy.limits import LEARNER_CONNECT_RETRY_MS as RETRY, LEARNER_CONNECT_TRIES_MAX
    f = Learner(2, 1, 0, 0, 0, 0, timers=TIMERS)
    assert drain(f).send == ((1, info(2, 0)),)
    now = 0
    for attempt in range(2, LEARNER_CONNECT_TRIES_MAX + 1):
        f.disconnected(now)
        assert drain(f).phase is None and f.phase == Phase.DISCOVERY and not f.redial_due
        assert f.next_deadline_ms() == now + RETRY
        f.tick(now + RETRY - 1)
        assert not f.redial_due
        now += RETRY
        f.tick(now)
        assert f.redial_due and f.connect_tries == attempt
        f.redial_due = False        # the peer took the dial
        assert drain(f).send == ((1, info(2, 0)),)
    f.disconnected(now)             # the fifth refusal ends the term
    assert drain(f).phase == Phase.LOOKING


def test_learner_leaves_at_once_when_a_leader_that_spoke_drops_it():
    f = Learner(2, 1, 0, 0, 0, 0, timers=TIMERS)
    drain(f)
    f.step(1, P.leader_info(1), 5)
    drain(f)
    f.disconnected(10)
    assert drain(f).phase == Phase.LOOKING and not f.redial_due


def test_learner_redials_only_within_init_limit():
    f = Learner(2, 1, 0, 0, 0, 0, timers=TIMERS)
    drain(f)
    f.disconnected(TIMERS.init_ms - 50)   # no time left for a retry
    assert drain(f).phase == Phase.LOOKING


def test_leader_not_established_within_init_limit_goes_looking():
    leader = new_leader()
    leader.tick(TIMERS.init_ms)
    assert drain(leader).phase == Phase.LOOKING


@pytest.mark.parametrize("counter", [0xFFFFFFFE])
def test_zxid_counter_wrap_forces_reelection(counter):
    leader = new_leader()
    establish(leader)
    drain(leader)
    leader.last_proposed = P.make_zxid(leader.new_epoch, counter)
    assert proposed(leader) is None
    assert drain(leader).phase == Phase.LOOKING


# ---- the two-voter oracle (L7) and DIFF from the on-disk log (L3) ------------------

def _loop_acks(leader):
    r = drain(leader)
    for p in r.persist:
        for dst, pkt in p.then:
            if dst == leader.my_sid:
                leader.step(dst, pkt, 0)
    return r


def test_lone_leader_with_oracle_establishes_keeps_leading_and_commits_after_its_own_ack():
    from zabpy.election import OracleMajority
    q = OracleMajority([1, 2], oracle_path="/o")
    q.set_oracle(True)
    leader = Leader(1, q, History(0), 1, 1, 0, timers=TIMERS,
                    snapshot_source=lambda: Snapshot(0, b""))
    _loop_acks(leader)                          # acceptedEpoch, then currentEpoch + own ack
    _loop_acks(leader)
    assert leader.established
    z = proposed(leader)
    leader.tick(TIMERS.sync_ms)                 # no follower: the oracle keeps us leading
    assert leader.phase == Phase.BROADCAST
    assert z in leader.outstanding              # not committed before our own fsync
    _loop_acks(leader)
    assert z not in leader.outstanding and leader.history.last_zxid == z
    q.set_oracle(False)
    leader.tick(TIMERS.sync_ms * 2)
    assert leader.phase == Phase.LOOKING


def test_learner_below_the_window_waits_for_a_log_read_then_gets_a_diff():
    history = [txn(1, i) for i in range(1, 11)]
    tokens = iter(range(7, 100))
    leader = Leader(1, Q3, History(0, history), 1, 1, 0, timers=TIMERS,
                    snapshot_source=lambda: Snapshot(P.make_zxid(1, 10), b"image"),
                    committed_log_max=3, read_token=tokens.__next__)
    leader.step(2, info(2, 1), 0)
    leader.step(2, P.ack_epoch(P.make_zxid(1, 2), 1), 0)
    r = drain(leader)
    assert [(x.token, x.after_zxid, x.upto_zxid) for x in r.reads] == \
        [(7, P.make_zxid(1, 2), P.make_zxid(1, 10))]
    assert not [p for dst, p in r.send if dst == 2]      # nothing until the disk answers
    leader.log_read(99, tuple(history))                  # another term's answer: ignored
    assert not drain(leader).send
    leader.log_read(7, tuple(history))
    kinds = [(p.type, P.counter_of(p.zxid)) for p in sync_packets(leader, 2)]
    assert kinds[0] == (T.DIFF, 10) and kinds[-1][0] == T.NEWLEADER
    assert [c for t, c in kinds if t == T.PROPOSAL] == list(range(3, 11))
    # no usable log: SNAP
    leader.step(3, info(3, 1), 0)
    leader.step(3, P.ack_epoch(P.make_zxid(1, 1), 1), 0)
    (read,) = drain(leader).reads
    leader.log_read(read.token, None)
    assert sync_packets(leader, 3)[0].type == T.SNAP
