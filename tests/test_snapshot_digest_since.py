"""The tree digest a restart compares, without walking the tree for it.

A restore checks ZooKeeper's tree digest (DigestCalculator v2) twice: against
the snapshot's stored digest once the snapshot is loaded, and against the
digest logged with the last replayed txn. The first is summed while the
snapshot's nodes are read (``deserialize_snapshot(..., sum_digest=True)``),
the second comes from it plus the nodes the replay changed
(``DigestSince``). Both must equal ``tree_digest``, the walk over every
node, whatever the txns did: created, changed, deleted, deleted and created
again, ephemerals closed, quota nodes (left out of the digest) rewritten.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import Workload, write_workload  # noqa: E402

from zabpy.jute import OpCode  # noqa: E402
from zabpy.jute import records as R  # noqa: E402
from zabpy.storage import TxnStore, serialize_snapshot, tree_digest  # noqa: E402
from zabpy.storage.recovery import restore  # noqa: E402
from zabpy.storage.snapshot import DigestSince, deserialize_snapshot  # noqa: E402
from zabpy.tree.acl import OPEN_ACL_UNSAFE  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

OPEN = list(OPEN_ACL_UNSAFE)


def _with_quota(w: Workload) -> None:
    """A quota on a path (nodes under /zookeeper/quota, outside the digest)
    and a node with null data, so the load's sum has both to leave out or
    take in."""
    def txn(op, rec):
        w._apply(w._hdr(w.next_session, op), rec)

    txn(OpCode.create, R.CreateTxn("/q", b"", OPEN, False, w.tree.nodes["/"].cversion + 1))
    txn(OpCode.create, R.CreateTxn("/zookeeper/quota/q", b"", OPEN, False, 1))
    txn(OpCode.create, R.CreateTxn("/zookeeper/quota/q/zookeeper_limits",
                                   b"count=5,bytes=-1", OPEN, False, 1))
    txn(OpCode.create, R.CreateTxn("/zookeeper/quota/q/zookeeper_stats",
                                   b"count=1,bytes=0", OPEN, False, 2))
    txn(OpCode.create, R.CreateTxn("/q/null", None, OPEN, False, 1))


def _loaded(w: Workload) -> tuple[DataTree, object]:
    image = b"".join(serialize_snapshot(w.tree, w.sessions, w.zxid))
    tree = DataTree()
    contents = deserialize_snapshot(image, tree, sum_digest=True)
    tree.last_processed_zxid = w.zxid
    return tree, contents


@pytest.mark.parametrize("seed", range(6))
def test_the_digest_summed_while_loading_is_the_walks(seed):
    w = Workload(seed=seed)
    w.txns(300)
    _with_quota(w)
    tree, contents = _loaded(w)
    assert tree.nodes["/q/null"].data is None
    assert contents.tree_digest == tree_digest(tree) == tree_digest(w.tree) == contents.digest
    # Asked not to, the load sums nothing.
    again = DataTree()
    assert deserialize_snapshot(b"".join(serialize_snapshot(w.tree, w.sessions, w.zxid)),
                                again).tree_digest is None


@pytest.mark.parametrize("seed", range(8))
def test_the_digest_since_the_load_follows_every_kind_of_change(seed):
    w = Workload(seed=100 + seed)
    _with_quota(w)
    w.txns(200)
    tree, contents = _loaded(w)
    since = DigestSince(tree, contents.tree_digest)
    w.tree = tree  # the workload goes on against the loaded tree
    for _ in range(6):
        w.txns(60)
        assert since.now(tree) == tree_digest(tree)
    # A path deleted and created again is a new node (and a different
    # record); the quota's stats node changes outside the digest.
    loaded = dict(zip(since.paths, since.nodes))
    victim = next(p for p, n in tree.nodes.items() if loaded.get(p) is n and not n.children
                  and p != "/" and not p.startswith("/zookeeper"))
    parent = victim.rsplit("/", 1)[0] or "/"
    w._apply(w._hdr(w.next_session, OpCode.delete), R.DeleteTxn(victim))
    w._apply(w._hdr(w.next_session, OpCode.create),
             R.CreateTxn(victim, b"again", OPEN, False, tree.nodes[parent].cversion + 1))
    assert loaded[victim] is not tree.nodes[victim]
    if "/q" not in tree.nodes:  # the workload may have deleted it
        w._apply(w._hdr(w.next_session, OpCode.create),
                 R.CreateTxn("/q", b"", OPEN, False, tree.nodes["/"].cversion + 1))
    stats = tree.nodes["/zookeeper/quota/q/zookeeper_stats"].data
    w._apply(w._hdr(w.next_session, OpCode.create),
             R.CreateTxn("/q/more", b"x" * 10, OPEN, False, tree.nodes["/q"].cversion + 1))
    assert tree.nodes["/zookeeper/quota/q/zookeeper_stats"].data != stats
    assert since.now(tree) == tree_digest(tree)


def test_records_changed_in_place_only():
    """No node added or deleted since the load (setData, setACL): the same
    node objects in the same places, only their records replaced."""
    w = Workload(seed=5)
    w.txns(200)
    tree, contents = _loaded(w)
    since = DigestSince(tree, contents.tree_digest)
    assert since.now(tree) == tree_digest(tree)
    w.tree = tree
    for path in [p for p in tree.nodes if p.startswith("/n")][:20]:
        node = tree.nodes[path]
        w._apply(w._hdr(w.next_session, OpCode.setData),
                 R.SetDataTxn(path, path.encode(), node.version + 1))
        w._apply(w._hdr(w.next_session, OpCode.setACL),
                 R.SetACLTxn(path, OPEN, node.aversion + 1))
    assert list(tree.nodes.values()) == since.nodes
    assert since.now(tree) == tree_digest(tree) != contents.tree_digest


def test_a_node_moved_to_the_end_of_the_dict_falls_back_to_the_walk():
    """``now`` takes the nodes added since from the end of the tree's dict;
    a node of the load found there (re-inserted, which no txn does) makes it
    walk instead of miscounting."""
    w = Workload(seed=7)
    w.txns(150)
    tree, contents = _loaded(w)
    since = DigestSince(tree, contents.tree_digest)
    w.tree = tree
    w.txns(40)
    path = next(p for p in tree.nodes if p.startswith("/n"))
    tree.nodes[path] = tree.nodes.pop(path)
    w._apply(w._hdr(w.next_session, OpCode.create),
             R.CreateTxn("/late", b"", OPEN, False, tree.nodes["/"].cversion + 1))
    assert since.now(tree) == tree_digest(tree)


@pytest.mark.parametrize("fast_replay", [True, False])
def test_a_restore_compares_the_logged_digest_after_replay(tmp_path, fast_replay):
    """Snapshot in the middle of the log, each txn logged with its digest:
    the restore's comparison after the replay agrees, and catches a wrong
    digest on the last txn."""
    for bad in (False, True):
        d = tmp_path / f"bad-{bad}"
        w = Workload(seed=42)
        write_workload(TxnStore(str(d), pre_alloc_size=4096), w, 400, flush_every=7,
                       snap_at=(200,), digests=True, wrong_last_digest=bad)
        tree = DataTree()
        vdir = str(d / "version-2")
        result = restore(vdir, vdir, tree, fast_replay=fast_replay)
        assert result.snapshot_zxid > 0 and result.replayed == 400 - 201
        assert result.digest_checks == 2  # the snapshot's, then the last logged txn's
        assert result.digest_mismatches == (1 if bad else 0)
        assert result.digest_since is None  # dropped: it held every node
        assert tree_digest(tree) == tree_digest(w.tree)
