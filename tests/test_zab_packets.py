"""Quorum packets (facts 3.4): payloads and the no-length-prefix stream codec."""

import pytest

from zabpy.jute import records as R
from zabpy.jute.codec import DecodeError
from zabpy.jute.constants import OpCode
from zabpy.storage.snapshot import tree_digest
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.tree.datatree import DataTree
from zabpy.zab import packets as P
from zabpy.zab.packets import PacketType as T


def test_type_numbers_match_leader_java():
    assert (T.REQUEST, T.PROPOSAL, T.ACK, T.COMMIT, T.PING) == (1, 2, 3, 4, 5)
    assert (T.NEWLEADER, T.FOLLOWERINFO, T.UPTODATE, T.DIFF, T.TRUNC, T.SNAP) == (10, 11, 12, 13, 14, 15)
    assert (T.OBSERVERINFO, T.LEADERINFO, T.ACKEPOCH, T.INFORMANDACTIVATE) == (16, 17, 18, 19)


def test_zxid_layout():
    z = P.make_zxid(3, 7)
    assert z == (3 << 32) | 7 and P.epoch_of(z) == 3 and P.counter_of(z) == 7


def test_followerinfo_golden_bytes():
    pkt = P.learner_info(T.FOLLOWERINFO, 2, 5, 0x100000000)
    assert pkt.to_bytes().hex() == (
        "0000000b" "0000000500000000"          # type 11, zxid acceptedEpoch << 32
        "00000014" "0000000000000002" "00010000" "0000000100000000"  # LearnerInfo
        "ffffffff")                              # authinfo null
    assert P.parse_learner_info(pkt) == R.LearnerInfo(2, 0x10000, 0x100000000)


def test_payload_round_trips():
    hdr = R.TxnHeader(9, 3, P.make_zxid(1, 1), 55, OpCode.setData)
    txn = R.SetDataTxn("/a", b"v", 2)
    assert P.parse_txn(P.proposal(hdr, txn).data) == (hdr, txn)
    assert P.parse_request(P.request(1, 2, OpCode.create, b"xy")) == (1, 2, OpCode.create, b"xy")
    assert P.parse_ping_reply(P.ping_reply(0, {5: 100, 6: 200})) == [(5, 100), (6, 200)]
    assert P.parse_revalidate(P.revalidate(5, 100)) == (5, 100)
    assert P.parse_revalidate_reply(P.revalidate_reply(5, True)) == (5, True)
    assert P.parse_ack_epoch(P.ack_epoch(77, -1)) == (77, -1)


def sample_tree():
    t = DataTree()
    t.apply(R.TxnHeader(1, 1, 1, 5, OpCode.create),
            R.CreateTxn("/a", b"data", list(OPEN_ACL_UNSAFE), False, -1))
    t.apply(R.TxnHeader(1, 2, 2, 6, OpCode.create),
            R.CreateTxn("/a/b", None, list(OPEN_ACL_UNSAFE), True, -1))
    return t


def test_snap_image_round_trip():
    tree = sample_tree()
    image = P.snapshot_bytes(tree, {1: 3000})
    copy = DataTree()
    assert P.load_snapshot_bytes(image, copy, 2) == {1: 3000}
    assert tree_digest(copy) == tree_digest(tree) and copy.last_processed_zxid == 2
    assert copy.ephemerals == {1: {"/a/b": None}}


def test_stream_decoder_byte_by_byte_including_snap():
    image = P.snapshot_bytes(sample_tree(), {})
    pkts = [P.leader_info(4), P.packet(T.SNAP, 2, image), P.packet(T.COMMIT, 9),
            P.request(1, 2, OpCode.create, b"z", [R.Id("digest", "u:p")])]
    stream = b"".join(P.encode_packet(p) for p in pkts)
    # SNAP goes as an empty packet, then the image, then the signature.
    assert P.SNAP_SIGNATURE.encode() in stream
    dec = P.PacketDecoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == pkts


def test_stream_decoder_many_packets_per_read_split_anywhere():
    """Reads that carry many packets and end part-way into one (the common
    case under load) give every packet once, in order, wherever they split."""
    image = P.snapshot_bytes(sample_tree(), {})
    pkts = [P.packet(T.PROPOSAL, 5, b"x" * 40), P.packet(T.ACK, 5), P.packet(T.COMMIT, 5),
            P.packet(T.PING, 0, b""), P.request(1, 2, OpCode.create, b"z", []),
            P.request(1, 3, OpCode.setData, b"y", [R.Id("digest", "u:p")]),
            P.request(1, 4, OpCode.delete, b"w", [R.Id("ip", "127.0.0.1"), R.Id("sasl", "\u00fc")]),
            P.packet(T.SNAP, 2, image), P.packet(T.UPTODATE, 0)] * 3
    stream = b"".join(P.encode_packet(p) for p in pkts)
    for first in range(len(stream)):
        dec = P.PacketDecoder()
        got = dec.feed(stream[:first])
        for i in range(first, len(stream), 97):
            got += dec.feed(stream[i:i + 97])
        assert got == pkts, first


def test_stream_decoder_rejects_bad_lengths_and_signature():
    with pytest.raises(DecodeError):
        P.PacketDecoder().feed(b"\x00\x00\x00\x05" + b"\x00" * 8 + b"\xff\xff\xff\xfe")
    with pytest.raises(DecodeError):
        P.PacketDecoder().feed(b"\x00\x00\x00\x05" + b"\x00" * 8 + b"\x7f\xff\xff\xff")
    image = P.snapshot_bytes(DataTree(), {})
    bad = P.encode_packet(P.packet(T.SNAP, 0, image)).replace(b"BenWasHere", b"BenWasGone")
    with pytest.raises(DecodeError):
        P.PacketDecoder().feed(bad)
