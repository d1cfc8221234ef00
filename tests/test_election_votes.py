"""Votes, their total order and the notification wire format (facts 3.2, 3.3)."""

import struct

import pytest

from zabpy.election import (MajorityQuorum, Notification, ServerState, Vote, decode_notification,
                            encode_notification, vote_beats, votes_agree)
from zabpy.election.quorum import HierarchicalQuorum
from zabpy.jute import DecodeError
from zabpy.limits import ELECTION_PACKET_BYTES_MAX

ONE = MajorityQuorum([1, 2, 3]).weight


# ---- total order (facts 3.3 "vote order": peerEpoch, then zxid, then sid) ----

def test_higher_peer_epoch_beats_higher_zxid():
    assert vote_beats(Vote(1, zxid=5, election_epoch=1, peer_epoch=3),
                      Vote(2, zxid=99, election_epoch=1, peer_epoch=2), ONE)


def test_higher_zxid_beats_higher_sid_at_equal_epoch():
    assert vote_beats(Vote(1, 10, 1, 2), Vote(3, 9, 1, 2), ONE)
    assert not vote_beats(Vote(3, 9, 1, 2), Vote(1, 10, 1, 2), ONE)


def test_sid_breaks_ties_and_order_is_strict():
    assert vote_beats(Vote(3, 10, 1, 2), Vote(2, 10, 1, 2), ONE)
    assert not vote_beats(Vote(2, 10, 1, 2), Vote(2, 10, 1, 2), ONE)


def test_election_epoch_takes_no_part_in_the_order():
    assert not vote_beats(Vote(1, 10, 9, 2), Vote(2, 10, 1, 2), ONE)


def test_weight_zero_candidate_never_wins():
    q = HierarchicalQuorum({1: [1, 2, 3]}, weights={3: 0})
    assert not vote_beats(Vote(3, 99, 1, 9), Vote(1, 0, 1, 0), q.weight)
    # An observer (not a voter) has weight 0 as well.
    assert not vote_beats(Vote(4, 99, 1, 9), Vote(1, 0, 1, 0), MajorityQuorum([1, 2, 3], [4]).weight)


def test_votes_agree_full_match_when_looking_and_leader_epoch_when_settled():
    a = Vote(3, 10, 2, 1)
    assert votes_agree(a, Vote(3, 10, 2, 1, ServerState.FOLLOWING))
    assert not votes_agree(a, Vote(3, 10, 1, 1))           # other round
    settled = Vote(3, 10, 2, 1, ServerState.FOLLOWING)
    assert votes_agree(settled, Vote(3, 77, 5, 1, ServerState.LEADING))
    assert not votes_agree(settled, Vote(3, 10, 2, 2, ServerState.LEADING))


# ---- notification bytes (facts 3.2) ----

def test_notification_golden_bytes_version_2():
    config = b"server.1=127.0.0.1:2888:3888:participant\nversion=100000000"
    n = Notification(ServerState.FOLLOWING, leader=3, zxid=0x100000007, election_epoch=5,
                     peer_epoch=1, version=2, config=config)
    golden = (struct.pack(">i", 1) + struct.pack(">q", 3) + struct.pack(">q", 0x100000007)
              + struct.pack(">q", 5) + struct.pack(">q", 1) + struct.pack(">i", 2)
              + struct.pack(">i", len(config)) + config)
    assert encode_notification(n) == golden
    assert decode_notification(golden) == n


def test_notification_without_config_is_44_bytes():
    n = Notification(ServerState.LOOKING, 1, 2, 3, 4)
    assert len(encode_notification(n)) == 44
    assert decode_notification(encode_notification(n)) == n


def test_legacy_28_byte_form_derives_peer_epoch_from_zxid():
    raw = struct.pack(">iqqq", 0, 2, (7 << 32) | 3, 4)
    n = decode_notification(raw)
    assert (n.state, n.leader, n.zxid, n.election_epoch, n.peer_epoch, n.version) == (
        ServerState.LOOKING, 2, (7 << 32) | 3, 4, 7, 0)


def test_legacy_40_byte_form_ignores_its_version_field():
    raw = struct.pack(">iqqqqi", 2, 2, 9, 4, 6, 1)
    n = decode_notification(raw)
    assert (n.state, n.peer_epoch, n.version, n.config) == (ServerState.LEADING, 6, 0, b"")


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00" * 27,                                             # shorter than any form
    b"\x00" * 33,                                             # between the legacy forms
    struct.pack(">iqqqqi", 9, 1, 1, 1, 1, 1),                 # unknown state
    struct.pack(">iqqqqi", 0, 1, 1, 1, 1, 2) + b"\x00",       # v2 cut inside config length
    struct.pack(">iqqqqii", 0, 1, 1, 1, 1, 2, 10) + b"abc",   # config shorter than declared
    struct.pack(">iqqqqii", 0, 1, 1, 1, 1, 2, -1),            # negative config length
    b"\x00" * (ELECTION_PACKET_BYTES_MAX + 1),                # over the packet bound
])
def test_malformed_notifications_raise_decode_error(raw):
    with pytest.raises(DecodeError):
        decode_notification(raw)
