"""Quorum verifiers: majority and hierarchical (ZooKeeper QuorumMaj / QuorumHierarchical)."""

import pytest

from zabpy.election import HierarchicalQuorum, MajorityQuorum, quorum_from_config


def test_majority_needs_more_than_half_of_the_voters():
    q = MajorityQuorum([1, 2, 3, 4, 5], observers=[6])
    assert q.contains_quorum([1, 2, 3])
    assert not q.contains_quorum([1, 2])
    assert not q.contains_quorum([1, 2, 6])   # observers never count
    assert q.voters == (1, 2, 3, 4, 5) and q.observers == (6,)


def test_two_voters_need_both():
    q = MajorityQuorum([1, 2])
    assert not q.contains_quorum([1])
    assert q.contains_quorum([1, 2])


def test_hierarchical_majority_of_groups_each_by_weight():
    q = HierarchicalQuorum({1: [1, 2, 3], 2: [4, 5, 6], 3: [7, 8, 9]})
    assert q.contains_quorum([1, 2, 4, 5])          # two groups won
    assert not q.contains_quorum([1, 2, 3, 4])      # one group won
    assert not q.contains_quorum([1, 4, 7])         # no group won


def test_hierarchical_weights_and_zero_weight_groups():
    q = HierarchicalQuorum({1: [1, 2], 2: [3], 3: [4]}, weights={1: 2, 4: 0})
    assert q.weight(1) == 2 and q.weight(4) == 0
    # Group 3 weighs 0 and does not count: two groups remain, both must be won.
    assert q.contains_quorum([1, 3])               # 2 > 3//2 in group 1, and group 2
    assert not q.contains_quorum([2, 3, 4])        # 1 is not > 3//2 in group 1


def test_quorum_from_config_and_config_text():
    props = {"server.1": "127.0.0.1:2888:3888:participant;2181",
             "server.2": "127.0.0.1:2889:3889",
             "server.3": "127.0.0.1:2890:3890:observer", "version": "100000000"}
    q = quorum_from_config(props)
    assert isinstance(q, MajorityQuorum)
    assert q.voters == (1, 2) and q.observers == (3,) and q.version == 0x100000000
    assert q.to_config_text() == (
        "server.1=127.0.0.1:2888:3888:participant;2181\nserver.2=127.0.0.1:2889:3889\n"
        "server.3=127.0.0.1:2890:3890:observer\nversion=100000000")
    props.update({"group.1": "1:2", "weight.2": "3"})
    h = quorum_from_config(props)
    assert isinstance(h, HierarchicalQuorum) and h.weight(2) == 3 and h.weight(1) == 1
    assert "group.1=1:2\nweight.1=1\nweight.2=3\nversion=100000000" in h.to_config_text()


def test_hierarchical_config_requires_every_voter_in_a_group():
    with pytest.raises(ValueError):
        quorum_from_config({"server.1": "h:1:2", "server.2": "h:3:4", "group.1": "1"})


def test_oracle_majority_lets_one_of_two_voters_be_a_quorum_only_when_asked_and_allowed():
    # QuorumOracleMaj.containsQuorum (ZooKeeper 3.8, zookeeperOracleQuorums).
    from zabpy.election import OracleMajority
    q = OracleMajority([1, 2], oracle_path="/x")
    assert q.contains_quorum([1, 2])
    assert not q.contains_quorum([1])             # the oracle says no (no file yet)
    q.set_oracle(True)
    assert q.contains_quorum([1]) and q.contains_quorum([2])
    assert not q.contains_quorum([])              # never an empty set (zabpy, see class doc)
    assert not q.update_need_oracle([2])          # a leader with a follower: no oracle
    assert not q.contains_quorum([1])
    assert q.update_need_oracle([])
    assert q.contains_quorum([1])
    big = OracleMajority([1, 2, 3], oracle_path="/x")
    big.set_oracle(True)
    assert not big.contains_quorum([1]) and big.contains_quorum([1, 3])
    assert not MajorityQuorum([1, 2]).update_need_oracle([])
    text = {"server.1": "h:1:2", "server.2": "h:3:4"}
    assert isinstance(quorum_from_config(text, "/o"), OracleMajority)
    assert type(quorum_from_config(text)) is MajorityQuorum
