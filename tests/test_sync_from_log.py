"""A learner behind the leader's committed history: DIFF from the on-disk txn log, or SNAP.

ZooKeeper 3.8's LearnerHandler.syncFollower: a learner whose last zxid is
older than the leader's in-memory committed log (500 txns) gets the txns
from the leader's txn log files when they weigh at most
zookeeper.snapshotSizeFactor (0.33) × the newest snapshot file
(ZKDatabase.calculateTxnLogSizeLimit / getProposalsFromTxnLog), else a SNAP.
The decision is ``zab.sync`` (unit tests below); the real-process test shows
a member 600 txns behind catching up by DIFF, without a snapshot installed.
"""

from __future__ import annotations

import os

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.limits import ZAB_COMMITTED_LOG_MAX
from zabpy.storage import datadir as D
from zabpy.testing import ZabpyEnsemble
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.zab import History
from zabpy.zab import packets as P
from zabpy.zab.sync import log_files_for, log_sync_fits, plan_sync


def txn(epoch, counter):
    z = P.make_zxid(epoch, counter)
    return (R.TxnHeader(7, counter, z, 0, OpCode.create),
            R.CreateTxn(f"/t{epoch}_{counter}", b"", list(OPEN_ACL_UNSAFE), False, -1))


def zxids(plan):
    return [(P.epoch_of(t[0].zxid), P.counter_of(t[0].zxid)) for t in plan.txns]


# ---- the decision ------------------------------------------------------------------

def _window():
    """History holding (1,8]..(1,10]: base (1,7), limit 3."""
    return History(P.make_zxid(1, 0), [txn(1, i) for i in range(1, 11)], limit=3)


def test_in_window_is_decided_without_the_disk():
    h = _window()
    assert plan_sync(P.make_zxid(1, 10), h).kind == "DIFF"
    assert plan_sync(P.make_zxid(1, 12), h).kind == "TRUNC"
    p = plan_sync(P.make_zxid(1, 8), h)
    assert p.kind == "DIFF" and zxids(p) == [(1, 9), (1, 10)]


def test_below_the_window_asks_the_disk_then_diffs_from_log_and_history():
    h = _window()
    peer = P.make_zxid(1, 3)
    assert plan_sync(peer, h).kind == "READ"
    assert plan_sync(peer, h, log_sync=False).kind == "SNAP"
    log = [txn(1, i) for i in range(1, 10)]     # the log read up to the last commit
    p = plan_sync(peer, h, log)
    assert (p.kind, p.zxid) == ("DIFF", P.make_zxid(1, 10))
    assert zxids(p) == [(1, i) for i in range(4, 11)]   # no txn twice, none missing


def test_log_that_does_not_reach_back_or_leaves_a_gap_gives_snap():
    h = _window()
    peer = P.make_zxid(1, 3)
    assert plan_sync(peer, h, None).kind == "SNAP"                         # not read
    assert plan_sync(peer, h, [txn(1, i) for i in range(4, 11)]).kind == "SNAP"   # starts after P
    assert plan_sync(peer, h, [txn(1, i) for i in range(1, 6)]).kind == "SNAP"    # gap to (1,7)


def test_learner_with_txns_we_never_had_is_truncated_within_its_epoch_only():
    h = History(P.make_zxid(2, 5), [txn(2, 6), txn(2, 7)], limit=2)
    log = [txn(1, 1), txn(1, 2), txn(2, 1), txn(2, 2), txn(2, 3), txn(2, 4), txn(2, 5)]
    # the learner logged (1,3), which we never had
    p = plan_sync(P.make_zxid(1, 3), h, log)
    assert p.kind == "SNAP"     # the next txn we have is of epoch 2: no TRUNC across epochs
    log = [txn(2, 1), txn(2, 2), txn(2, 4), txn(2, 5)]   # (2,3) never committed here
    p = plan_sync(P.make_zxid(2, 3), h, log)
    assert (p.kind, p.zxid) == ("TRUNC", P.make_zxid(2, 2))
    assert zxids(p) == [(2, 4), (2, 5), (2, 6), (2, 7)]
    # a new-epoch zxid (counter 0) names no txn: DIFF from the first txn after it
    p = plan_sync(P.make_zxid(2, 0), h, [txn(1, 9), txn(2, 1), txn(2, 2), txn(2, 3),
                                         txn(2, 4), txn(2, 5)])
    assert p.kind == "DIFF" and zxids(p)[0] == (2, 1) and len(p.txns) == 7


def test_snapshot_size_factor_rule():
    # FileTxnIterator: the newest file starting before the zxid and every later
    # one; getStorageSize counts all but the first (opened) file.
    files = [(0x100, 1000), (0x200, 64 << 20), (0x300, 64 << 20)]
    assert log_files_for(files, 0x250) == (1, 64 << 20)
    assert log_files_for(files, 0x100) == (0, 128 << 20)   # a file starting at P: the older too
    assert log_files_for(files, 0x50) == (0, 128 << 20)
    assert log_files_for([(0x100, 64 << 20)], 0x150) == (0, 0)
    assert log_files_for([], 5) is None
    assert log_sync_fits(0, 100, 0.33)               # one log file: nothing to weigh
    assert log_sync_fits(33, 100, 0.33) and not log_sync_fits(34, 100, 0.33)
    assert log_sync_fits(10**9, 0, 0.33)             # limit 0: no limit (ZooKeeper)
    assert not log_sync_fits(0, 100, -1)             # negative factor: never


# ---- real processes ------------------------------------------------------------------

def _snapshots(data_dir: str) -> list[int]:
    vdir = D.version_dir(data_dir)
    return sorted(int(n.split(".")[1], 16) for n in os.listdir(vdir) if n.startswith("snapshot."))


def test_member_restarted_far_behind_syncs_by_diff_from_the_log():
    missed = ZAB_COMMITTED_LOG_MAX + 100
    with ZabpyEnsemble(3) as ens:
        leader = ens.leader()
        victim = next(s for s in ens.sids if ens.mode(s) == "follower")
        c = KazooClient(hosts=",".join(ens.host(s) for s in ens.sids if s != victim),
                        timeout=10,
                        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
        c.start(timeout=20)
        c.ensure_path("/far")
        c.create("/far/before", b"b")
        data_dir = os.path.join(ens.dir, f"data{victim}")
        ens.kill(victim)
        first_missed = c.create("/far/n", b"", sequence=True)   # the zxids after the kill
        first_missed_zxid = c.exists(first_missed).czxid
        for start in range(0, missed, 100):
            for a in [c.create_async(f"/far/n{i}", b"v" * 20) for i in range(start, start + 100)]:
                a.get(timeout=20)
        ens.start(victim)
        ens.wait_serving([victim])
        v = KazooClient(hosts=ens.host(victim), timeout=10)
        v.start(timeout=20)
        v.sync("/far")
        assert len(v.get_children("/far")) == missed + 2
        assert v.get("/far/n599")[0] == b"v" * 20
        c.create("/after", b"a")    # and the broadcast goes on after the DIFF
        v.sync("/after")
        assert v.get("/after")[0] == b"a"
        v.stop()
        c.stop()
        # No snapshot came with the sync: every snapshot the member holds is of
        # its own state before the kill (ZooKeeper also saves one after a
        # restart that replayed its log), none of the leader's.
        assert all(z < first_missed_zxid for z in _snapshots(data_dir)), _snapshots(data_dir)
        assert "txns from the log for a learner's sync" in ens.log(leader), \
            ens.log(leader)[-3000:]


def test_store_reads_committed_txns_back_from_its_log_files(tmp_path):
    from zabpy.storage.files import TxnStore
    from zabpy.tree.datatree import DataTree

    store = TxnStore(str(tmp_path), pre_alloc_size=4096)
    store.restore(DataTree())                      # writes snapshot.0
    for i in range(1, 21):
        store.append(*txn(1, i))
    store.flush_and_sync()
    got = store.read_for_sync(P.make_zxid(1, 5), P.make_zxid(1, 12), 0.33)
    # one log file: nothing to weigh; from the file's first txn up to the bound
    assert [P.counter_of(t[0].zxid) for t in got] == list(range(1, 13))
    assert store.read_for_sync(P.make_zxid(1, 5), P.make_zxid(1, 12), -1) is None
    # a second file (as after a snapshot rolled the log) weighs more than
    # 0.33 x the tiny snapshot: a read that starts in the first file says no
    store.snapshot_now(DataTree(), {})
    for i in range(21, 31):
        store.append(*txn(1, i))
    store.flush_and_sync()
    assert store.read_for_sync(P.make_zxid(1, 5), P.make_zxid(1, 30), 0.33) is None
    assert len(store.read_for_sync(P.make_zxid(1, 5), P.make_zxid(1, 30), 0)) == 30
    # a read that starts in the newest file weighs nothing
    got = store.read_for_sync(P.make_zxid(1, 25), P.make_zxid(1, 30), 0.33)
    assert [P.counter_of(t[0].zxid) for t in got] == list(range(21, 31))
    store.close()
