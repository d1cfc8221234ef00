"""A txn is encoded once on the write path, and the bytes stay ZooKeeper's.

The leader's PROPOSAL data is the log payload (TxnHeader ‖ txn ‖ digest, as
Util.marshallTxnEntry lays it out; zookeeper-facts.md 3.4 and 4.1), so the
leader and its followers log those very bytes instead of encoding the record
again. These tests pin that the shortcut changes no byte: a log written from
payloads is identical to one written from records, the ZAB cores hand the
PROPOSAL's bytes to the log, and the quorum stream codec's struct fast paths
write and read exactly what the generic jute record does.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import Workload  # noqa: E402
from test_zab_cores import drain, establish, new_leader, proposed, txn, TIMERS  # noqa: E402

from zabpy.jute import records as R  # noqa: E402
from zabpy.storage import TxnStore  # noqa: E402
from zabpy.storage.txnlog import encode_entry, encode_entry_payload, encode_payload  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402
from zabpy.zab import Learner, PacketType as T  # noqa: E402
from zabpy.zab import packets as P  # noqa: E402


def _log_bytes(d, txns, *, from_payloads: bool) -> dict[str, bytes]:
    store = TxnStore(str(d), pre_alloc_size=64 * 1024)
    store.restore(DataTree())
    for i, (hdr, body) in enumerate(txns):
        if from_payloads:
            store.append_payload(hdr.zxid, P.proposal(hdr, body).data)
        else:
            store.append(hdr, body)
        if i % 7 == 0:
            store.flush_and_sync()
    store.flush_and_sync()
    store.close()
    vdir = os.path.join(str(d), "version-2")
    return {n: open(os.path.join(vdir, n), "rb").read() for n in sorted(os.listdir(vdir))}


def test_log_written_from_proposal_payloads_is_byte_identical(tmp_path):
    # facts 4.1: checksum, length, TxnHeader+txn, 'B'; every txn kind the workload makes.
    w = Workload(seed=11)
    txns = [w.step() for _ in range(300)]
    assert _log_bytes(tmp_path / "a", txns, from_payloads=False) == \
        _log_bytes(tmp_path / "b", txns, from_payloads=True)
    for hdr, body in txns:
        assert encode_entry_payload(encode_payload(hdr, body)) == encode_entry(hdr, body)


def test_leader_logs_the_proposal_bytes_it_sends():
    # Zab.tla LeaderBroadcastPropose: the proposal logged is the proposal sent.
    leader = new_leader()
    establish(leader)
    drain(leader)
    z = proposed(leader)
    r = drain(leader)
    (p,) = r.persist
    sent = [pkt for _, pkt in r.send if pkt.type == T.PROPOSAL]
    assert len(sent) == 2 and all(pkt is sent[0] for pkt in sent)
    assert p.payloads == (sent[0].data,) and p.records[0][0].zxid == z
    assert p.payloads[0] == encode_payload(*p.records[0])


def test_follower_logs_the_leaders_bytes():
    # Zab.tla FollowerProcessPROPOSAL: log the txn as received, then ACK.
    f = Learner(2, 1, 0, 1, 1, 0, timers=TIMERS)
    for pkt in (P.leader_info(1), P.packet(T.DIFF, 0), P.newleader(1, b""),
                P.packet(T.UPTODATE, -1)):
        f.step(1, pkt, 0)
    drain(f)
    prop = P.proposal(*txn(1, 1))
    f.step(1, prop, 0)
    (p,) = drain(f).persist
    assert p.payloads == (prop.data,)
    assert p.records == (txn(1, 1),)


def test_observer_logs_the_inform_bytes():
    f = Learner(4, 1, 0, 1, 1, 0, observer=True, timers=TIMERS)
    for pkt in (P.leader_info(1), P.packet(T.DIFF, 0), P.newleader(1, b""),
                P.packet(T.UPTODATE, -1)):
        f.step(1, pkt, 0)
    drain(f)
    inform = P.proposal(*txn(1, 1), kind=T.INFORM)
    f.step(1, inform, 0)
    assert drain(f).persist[0].payloads == (inform.data,)


_PACKETS = [
    R.QuorumPacket(T.ACK, P.make_zxid(3, 9), None, None),
    R.QuorumPacket(T.COMMIT, P.make_zxid(3, 9), None, None),
    P.proposal(*txn(3, 10)),
    P.packet(T.PING, P.make_zxid(3, 10), b""),
    P.request(0x55, 7, 1, b"body", []),
    P.request(0x55, 8, 1, b"", [R.Id("digest", "bob:x"), R.Id("ip", "127.0.0.1")]),
    P.packet(T.UPTODATE, -1),
]


def test_packet_fast_paths_write_the_jute_record_bytes():
    # facts 3.4: QuorumPacket {type:int, zxid:long, data:buffer, authinfo:vector<Id>}.
    for pkt in _PACKETS:
        assert P.encode_packet(pkt) == pkt.to_bytes(), pkt


def test_packet_decoder_reads_any_split_of_the_stream():
    stream = b"".join(P.encode_packet(p) for p in _PACKETS)
    for cut in range(len(stream) + 1):
        d = P.PacketDecoder()
        assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == _PACKETS, cut
    d = P.PacketDecoder()
    got = []
    for i in range(len(stream)):
        got += d.feed(stream[i:i + 1])
    assert got == _PACKETS
