"""Dynamic reconfig in the cores: the config rules, the ZAB leader, the election tally.

References: ZooKeeper's zookeeperReconfig.md; Shraer et al., "Dynamic
Reconfiguration of Primary/Backup Clusters" (USENIX ATC 2012) §4: a
reconfig commits with a quorum of the old *and* of the new config, and so
does every proposal after it until it is activated; the leader then sends
COMMITANDACTIVATE naming the designated leader. The expected strings and
orders below were captured from Debian's Java ZooKeeper 3.8
(tests/test_reconfig.py compares the live answers side by side).
"""

import pytest

from test_zab_cores import TIMERS, drain, establish, info, proposed
from zabpy.election import FastLeaderElection, MajorityQuorum, Vote
from zabpy.election.quorum import chm_order, member_order
from zabpy.election.reconfig import ReconfigError, next_quorum, normalize_spec, quorum_from_text
from zabpy.jute import records as R
from zabpy.jute.constants import ERR, OP
from zabpy.zab import History, Leader, PacketType as T, Phase, Snapshot
from zabpy.zab import packets as P


def spec(sid, role="participant"):
    return f"10.0.0.{sid}:2888:3888:{role};10.0.0.{sid}:2181"


Q3 = MajorityQuorum([1, 2, 3], (), 0x100000000, {s: spec(s) for s in (1, 2, 3)})


# ---- the rules: specs, new membership, Java's orders -------------------------------------

@pytest.mark.parametrize("value, text", [
    ("0.0.0.0:1234:2345:observer;3456", "0.0.0.0:1234:2345:observer;0.0.0.0:3456"),
    ("127.0.0.1:1235:2346;127.0.0.1:3457", "127.0.0.1:1235:2346:participant;127.0.0.1:3457"),
    ("[::1]:1237:2349:observer;[::1]:3459",
     "[0:0:0:0:0:0:0:1]:1237:2349:observer;[0:0:0:0:0:0:0:1]:3459"),
    ("h:1:2:PARTICIPANT", "h:1:2:participant"),
])
def test_server_spec_is_rendered_as_java_renders_it(value, text):
    assert normalize_spec(value) == text


@pytest.mark.parametrize("value", ["127.0.0.1:1", "h:1:2:voter", "h:x:2", "h:1:2;a;b"])
def test_malformed_server_spec(value):
    with pytest.raises(ValueError):
        normalize_spec(value)


@pytest.mark.parametrize("joining, leaving, new_members, code", [
    ("some thing", None, None, ERR.BADARGUMENTS),              # no '='
    ("server.x=127.0.0.1:1:2;3", None, None, ERR.MARSHALLINGERROR),   # Java: NumberFormatException
    (None, "abc", None, ERR.MARSHALLINGERROR),
    ("server.5=127.0.0.1:1", None, None, ERR.BADARGUMENTS),
    ("server.101=0.0.0.0:1236:2348:observer", None, None, ERR.BADARGUMENTS),  # no client port
    (None, "1,2", None, ERR.BADARGUMENTS),                     # one voter left
    (None, "1,2,3", None, ERR.BADARGUMENTS),
    (None, None, "foo", ERR.BADARGUMENTS),
])
def test_refused_requests_and_their_codes(joining, leaving, new_members, code):
    with pytest.raises(ReconfigError) as e:
        next_quorum(Q3, joining, leaving, new_members, 0x100000005)
    assert e.value.code == code


def test_incremental_and_whole_membership():
    qv = next_quorum(Q3, "server.4=" + spec(4, "observer"), "3", None, 0x100000007)
    assert (qv.voters, qv.observers, qv.version) == ((1, 2), (4,), 0x100000007)
    assert qv.to_config_text().split("\n")[-1] == "version=100000007"
    whole = next_quorum(Q3, None, None, "server.1=" + spec(1) + ",server.2=" + spec(2), 9)
    assert whole.voters == (1, 2) and whole.version == 9
    # standaloneEnabled=false lets one voter remain
    assert next_quorum(Q3, None, "1,2", None, 10, standalone_enabled=False).voters == (3,)


def test_members_are_listed_in_javas_hashmap_order():
    assert member_order([3, 1, 2]) == [1, 2, 3]
    assert member_order([1, 2, 3, 100, 996, 998]) == [1, 2, 3, 996, 100, 998]
    assert member_order([1, 2, 3, 100, 997, 102, 998]) == [1, 2, 3, 100, 997, 102, 998]


def test_properties_order_is_javas_concurrent_hashmap_order():
    # zoo.cfg keys as Java 3.8 rewrote them (editStaticConfig), twice in a row
    first = ["tickTime", "initLimit", "syncLimit", "dataDir", "clientPort", "clientPortAddress",
             "4lw.commands.whitelist", "reconfigEnabled", "admin.enableServer",
             "server.1", "server.2", "server.3"]
    assert [k for k in chm_order(first) if not k.startswith("server.")] == [
        "dataDir", "4lw.commands.whitelist", "syncLimit", "reconfigEnabled",
        "clientPortAddress", "admin.enableServer", "clientPort", "initLimit", "tickTime"]
    second = ["dataDir", "4lw.commands.whitelist", "syncLimit", "reconfigEnabled",
              "clientPortAddress", "admin.enableServer", "clientPort", "initLimit", "tickTime",
              "dynamicConfigFile"]
    assert [k for k in chm_order(second) if k != "dynamicConfigFile"] == [
        "admin.enableServer", "dataDir", "4lw.commands.whitelist", "clientPort", "initLimit",
        "tickTime", "syncLimit", "reconfigEnabled", "clientPortAddress"]


# ---- the ZAB leader (Leader L8) -----------------------------------------------------------

def leader_with(peers, reconfig_enabled=False):
    leader = Leader(1, Q3, History(0, ()), 1, 1, 0, timers=TIMERS,
                    snapshot_source=lambda: Snapshot(0, b"snap"), reconfig_enabled=reconfig_enabled)
    # a joining server (4, 5) sends FOLLOWERINFO like any follower
    extra = [p for p in peers if p[0] > 3]
    establish(leader, [p for p in peers if p[0] <= 3])
    for sid, last in extra:
        leader.step(sid, info(sid, 2), 0)
        leader.step(sid, P.ack_epoch(last, 1), 0)
    drain(leader)
    assert leader.phase == Phase.BROADCAST
    return leader


def propose_reconfig(leader, joining=None, leaving=None):
    zxid = leader.next_zxid()
    qv = leader.prepare_reconfig(joining, leaving, None, -1, zxid)
    hdr = R.TxnHeader(7, 1, zxid, 0, OP.reconfig)
    assert leader.propose(hdr, R.SetDataTxn("/zookeeper/config",
                                            qv.to_config_text().encode(), -1)) == zxid
    return zxid, qv


def test_proposals_go_to_joining_followers_whose_acks_count_once_they_vote():
    leader = leader_with([(2, 0), (3, 0), (4, 0), (5, 0)])
    z, qv = propose_reconfig(leader, joining=f"server.4={spec(4)},server.5={spec(5)}")
    z2 = proposed(leader)        # proposed while the reconfig is pending: both quorums too
    sent = drain(leader).send
    assert {sid for sid, pkt in sent if pkt.type == T.PROPOSAL} == {2, 3, 4, 5}
    for sid in (1, 4, 5):        # 3 of the new 5, but only 1 of the old 3
        leader.step(sid, P.packet(T.ACK, z), 0)
        leader.step(sid, P.packet(T.ACK, z2), 0)
    assert not drain(leader).commit
    leader.step(2, P.packet(T.ACK, z), 0)
    leader.step(2, P.packet(T.ACK, z2), 0)
    r = drain(leader)
    assert [t[0].zxid for t in r.commit] == [z, z2]
    assert leader.quorum.voters == (1, 2, 3, 4, 5)


def test_old_quorum_alone_does_not_commit_a_reconfig():
    leader = leader_with([(2, 0), (3, 0), (4, 0), (5, 0)])
    z, qv = propose_reconfig(leader, joining=f"server.4={spec(4)},server.5={spec(5)}",
                             leaving="3")
    z2 = proposed(leader)
    drain(leader)
    for sid in (1, 3):                  # old {1,2,3}: 1,3 is a quorum; new {1,2,4,5}: 1 is not
        leader.step(sid, P.packet(T.ACK, z), 0)
        leader.step(sid, P.packet(T.ACK, z2), 0)
    assert not drain(leader).commit
    leader.step(4, P.packet(T.ACK, z), 0)
    leader.step(5, P.packet(T.ACK, z), 0)   # new: 1,4,5 of 4 voters
    r = drain(leader)
    assert [t[0].zxid for t in r.commit] == [z]      # z2 still lacks the new config's quorum
    activate = [(sid, pkt) for sid, pkt in r.send if pkt.type == T.COMMITANDACTIVATE]
    assert sorted(sid for sid, _ in activate) == [2, 3, 4, 5]
    assert all(pkt.zxid == z and pkt.data == (1).to_bytes(8, "big") for _, pkt in activate)
    assert r.activate == ((qv.to_config_text().encode(), 1),)
    assert leader.quorum.voters == (1, 2, 4, 5) and leader.pending is None
    leader.step(4, P.packet(T.ACK, z2), 0)
    leader.step(5, P.packet(T.ACK, z2), 0)
    assert [t[0].zxid for t in drain(leader).commit] == [z2]


def test_reconfig_refusals_in_zookeepers_order():
    leader = leader_with([(2, 0), (3, 0)])
    z = leader.next_zxid()
    with pytest.raises(ReconfigError) as e:
        leader.prepare_reconfig(None, None, None, 0x5, z)
    assert e.value.code == ERR.BADVERSION
    with pytest.raises(ReconfigError) as e:     # 4, 5, 6 are not connected: 3 of 6 synced
        leader.prepare_reconfig(f"server.4={spec(4)},server.5={spec(5)},server.6={spec(6)}",
                                None, None, -1, z)
    assert e.value.code == ERR.NEWCONFIGNOQUORUM
    propose_reconfig(leader, joining=f"server.9={spec(9, 'observer')}")
    with pytest.raises(ReconfigError) as e:
        leader.prepare_reconfig(None, "9", None, -1, leader.next_zxid())
    assert e.value.code == ERR.RECONFIGINPROGRESS


def test_a_leader_that_leaves_designates_an_acking_voter_and_ends_its_term():
    leader = leader_with([(2, 0), (3, 0)])
    z, qv = propose_reconfig(leader, leaving="1")
    drain(leader)
    for sid in (1, 2, 3):
        leader.step(sid, P.packet(T.ACK, z), 0)
    r = drain(leader)
    activate = [pkt for _, pkt in r.send if pkt.type == T.COMMITANDACTIVATE]
    assert activate and all(int.from_bytes(p.data, "big") == 3 for p in activate)
    assert r.phase == Phase.LOOKING and sorted(r.close) == [2, 3]


def test_first_term_with_reconfig_enabled_versions_the_config_by_its_epoch():
    # ZOOKEEPER-1783: version 0 becomes the new epoch's first zxid
    q0 = MajorityQuorum([1, 2, 3], (), 0, {s: spec(s) for s in (1, 2, 3)})
    leader = Leader(1, q0, History(0, ()), 1, 1, 0, timers=TIMERS,
                    snapshot_source=lambda: Snapshot(0, b"snap"), reconfig_enabled=True)
    r = establish(leader)
    newleader = [pkt for _, pkt in r.send if pkt.type == T.NEWLEADER]
    assert newleader and newleader[0].data.decode().endswith("version=200000000")
    r = drain(leader)
    assert leader.phase == Phase.BROADCAST and leader.quorum.version == 0x200000000
    assert r.activate == ((leader.quorum.to_config_text().encode(), 1),)


# ---- the election tally (FLE R10) -----------------------------------------------------------

def test_a_pending_config_needs_its_own_quorum_in_the_tally():
    fle = FastLeaderElection(1, Q3, 5, 1, None)
    pending = quorum_from_text("\n".join(f"server.{s}={spec(s)}" for s in (1, 2, 3, 4, 5))
                               + "\nversion=100000009")
    fle.set_quorums(Q3, pending)
    target = Vote(1, 5, 1, 1)
    votes = {1: target, 2: target}
    assert not fle._backed_by_quorum(votes, target)     # old yes, new (2 of 5) no
    votes[4] = target
    assert fle._backed_by_quorum(votes, target)
    assert set(fle._voters) == {1, 2, 3, 4, 5}           # notifications go to both configs
