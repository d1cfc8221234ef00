"""The change log core (server/changes.py) without a server: what a watch
stream may resume from, bounded, in zxid order; and the events a txn read back
from a txn log yields (httpapi/disklog.py) match what the tree fires."""

from __future__ import annotations

from zabpy.httpapi.disklog import events_of_txn
from zabpy.jute import records as R
from zabpy.jute.constants import EVENT, OP
from zabpy.server.changes import ChangeLog
from zabpy.tree.datatree import DataTree


def _hdr(zxid, op=OP.setData, session=7):
    return R.TxnHeader(session, 1, zxid, 1000 + zxid, op)


def _trig(path, ev=EVENT.NodeDataChanged):
    return [(ev, path, ())]


def test_since_floor_and_eviction():
    log = ChangeLog(3, floor_zxid=10)
    assert log.since(10) == [] and log.since(9) is None
    for z in range(11, 16):
        log.record(_hdr(z), _trig(f"/n{z}"))
    # capacity 3: 13, 14, 15 kept; everything after 12 is known
    assert [c.zxid for c in log.since(12)] == [13, 14, 15]
    assert log.since(11) is None and log.oldest_zxid() == 12
    assert [c.zxid for c in log.since(14)] == [15]
    assert log.since(15) == [] and log.since(99) == []


def test_txns_without_changes_advance_but_are_not_kept():
    log = ChangeLog(2, floor_zxid=0)
    log.record(_hdr(1), _trig("/a"))
    log.record(_hdr(2, OP.createSession), [])
    log.record(_hdr(3, OP.error), [])
    log.record(_hdr(4), _trig("/b"))
    assert log.last_zxid == 4 and [c.zxid for c in log.since(0)] == [1, 4]
    log.record(_hdr(5), _trig("/c"))          # evicts 1: zxids 2..4 are still covered
    assert log.oldest_zxid() == 1 and [c.zxid for c in log.since(1)] == [4, 5]


def test_set_acl_is_kept_for_history_and_replays_are_ignored():
    log = ChangeLog(10, floor_zxid=0)
    log.record(_hdr(1, OP.setACL), [], R.SetACLTxn("/x", [], 1), (("ip:1.2.3.4",), "1.2.3.4"))
    (c,) = log.since(0)
    assert c.quiet_paths == ("/x",) and c.paths() == ["/x"] and c.client_ip == "1.2.3.4"
    log.record(_hdr(1), _trig("/x"))          # the same zxid again (a reload): ignored
    assert len(log.since(0)) == 1


def test_reset_moves_the_floor_and_wakes_readers():
    woken = []
    log = ChangeLog(10, floor_zxid=0)
    log.listener = lambda: woken.append(1)
    log.record(_hdr(1), _trig("/a"))
    log.reset(100)                            # a SNAP at zxid 100 replaced the tree
    assert log.since(1) is None and log.since(100) == [] and len(woken) == 2
    log.reset(50)                             # an older tree: nothing to forget
    assert log.oldest_zxid() == 100


def test_events_read_back_from_a_log_match_the_trees():
    """A txn log carries no triggers: derived from the txn, they must be
    what applying the txn fires."""
    tree = DataTree()
    acl = (R.ACL(31, R.Id("world", "anyone")),)
    txns = [(OP.create, R.CreateTxn("/a", b"", list(acl), False, 1)),
            (OP.create, R.CreateTxn("/a/b", b"", list(acl), True, 1)),
            (OP.setData, R.SetDataTxn("/a/b", b"x", 1)),
            (OP.delete, R.DeleteTxn("/a/b")),
            (OP.create, R.CreateTxn("/a/e", b"", list(acl), True, 2)),
            (OP.closeSession, R.CloseSessionTxn(["/a/e"]))]
    for zxid, (op, txn) in enumerate(txns, 1):
        hdr = R.TxnHeader(7 if zxid in (2, 5, 6) else 0, 1, zxid, 0, op)
        fired = [(ev, p) for ev, p, _acl in tree.apply(hdr, txn).triggers]
        derived = [(ev, p) for ev, p, _acl in events_of_txn(op, txn, lambda _p: acl)]
        assert sorted(derived) == sorted(fired), (op, fired, derived)


def _write_log(directory, zxids):
    from zabpy.storage.txnlog import encode_entry, encode_file_header
    vdir = directory / "version-2"
    vdir.mkdir(exist_ok=True)
    body = [encode_file_header()]
    for z in zxids:
        body.append(encode_entry(R.TxnHeader(7, 1, z, 1000, OP.setData),
                                 R.SetDataTxn(f"/n{z:x}", b"", 1)))
    (vdir / f"log.{zxids[0]:x}").write_bytes(b"".join(body) + bytes(16))


def test_logs_are_read_back_only_where_they_hold_every_txn(tmp_path):
    """A member given a SNAP has logs with a gap before its snapshot: a resume
    across it must be refused (410), never served with changes missing."""
    from zabpy.httpapi.disklog import oldest_on_disk, read_changes
    epoch1 = 1 << 32
    _write_log(tmp_path, [1, 2, 3, 4, 5])
    _write_log(tmp_path, [epoch1 | 1, epoch1 | 2])        # the next epoch: no gap
    _write_log(tmp_path, [(3 << 32) | 7, (3 << 32) | 8])  # after a SNAP: a gap
    d = str(tmp_path)
    acl = lambda _p: ()  # noqa: E731
    assert oldest_on_disk(d) == 0
    assert [c.zxid for c in read_changes(d, 0, epoch1 | 2, acl)] == [1, 2, 3, 4, 5, epoch1 | 1,
                                                                       epoch1 | 2]
    assert [c.zxid for c in read_changes(d, 3, 5, acl)] == [4, 5]
    assert read_changes(d, 0, (3 << 32) | 8, acl) is None      # across the gap
    assert read_changes(d, 2, 9, acl) is None                  # past what the logs hold
    assert [c.zxid for c in read_changes(d, (3 << 32) | 6, (3 << 32) | 8, acl)] == [
        (3 << 32) | 7, (3 << 32) | 8]
