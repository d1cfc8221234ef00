"""prepare_close_session against outstanding changes (ZooKeeper's
PrepRequestProcessor, closeSession: every outstanding delete drops a path,
every outstanding ephemeral of the session adds one)."""

from zabpy.jute import records as R
from zabpy.jute.constants import CreateMode, OpCode
from zabpy.pipeline.prep import PendingChanges, PrepContext, prepare, prepare_close_session
from zabpy.tree.datatree import DataTree

A, B = 0x100, 0x200
ACL = [R.ACL(31, R.Id("world", "anyone"))]


def _tree_with_ephemeral_of_a() -> DataTree:
    tree = DataTree()
    tree.apply(R.TxnHeader(A, 1, 1, 0, OpCode.create), R.CreateTxn("/e", b"", ACL, True, 1))
    return tree


def test_node_deleted_and_made_again_by_another_session_is_not_closed_with_it():
    """Found by the simulator (python -m zabpy.sim --seed 5 --read-only 1): the
    closing session's ephemeral was deleted and created again by another
    session in txns not yet applied; the close deleted the other's node."""
    tree = _tree_with_ephemeral_of_a()
    pending = PendingChanges(tree)
    ctx_b = PrepContext(B, [])
    assert prepare(OpCode.delete, R.DeleteRequest("/e", -1), 2, pending, ctx_b)[0] == OpCode.delete
    create = R.CreateRequest("/e", b"", ACL, int(CreateMode.EPHEMERAL))
    assert prepare(OpCode.create, create, 3, pending, ctx_b)[0] == OpCode.create
    assert prepare_close_session(A, 4, pending) == []
    assert prepare_close_session(B, 5, pending) == ["/e"]


def test_own_ephemerals_applied_and_outstanding_are_closed():
    tree = _tree_with_ephemeral_of_a()
    pending = PendingChanges(tree)
    create = R.CreateRequest("/f", b"", ACL, int(CreateMode.EPHEMERAL))
    assert prepare(OpCode.create, create, 2, pending, PrepContext(A, []))[0] == OpCode.create
    assert prepare_close_session(A, 3, pending) == ["/e", "/f"]


def test_closing_session_hides_its_tree_ephemerals_from_later_txns():
    """Issue 19: the ephemerals a prepared close deletes from the tree get no
    record each; the session is marked closing until the close is applied.
    Later txns see them gone (as ZooKeeper's outstanding deletes make them)
    and the parent with fewer children."""
    tree = DataTree()
    tree.apply(R.TxnHeader(A, 1, 1, 0, OpCode.create), R.CreateTxn("/p", b"", ACL, False, 1))
    for i, zxid in enumerate((2, 3)):
        tree.apply(R.TxnHeader(A, zxid, zxid, 0, OpCode.create),
                   R.CreateTxn(f"/p/e{i}", b"", ACL, True, i + 2))
    pending = PendingChanges(tree)
    assert prepare_close_session(A, 4, pending) == ["/p/e0", "/p/e1"]
    assert len(pending.by_path) == 1 and pending.get("/p").child_count == 0
    ctx_b = PrepContext(B, [])
    assert prepare(OpCode.delete, R.DeleteRequest("/p/e0", -1), 5, pending, ctx_b) == \
        (OpCode.error, R.ErrorTxn(-101))  # NONODE
    create = R.CreateRequest("/p/e1", b"", ACL, int(CreateMode.EPHEMERAL))
    assert prepare(OpCode.create, create, 6, pending, ctx_b)[0] == OpCode.create
    assert prepare(OpCode.delete, R.DeleteRequest("/p", -1), 7, pending, ctx_b)[0] == OpCode.error
    tree.apply(R.TxnHeader(A, 0, 4, 0, OpCode.closeSession), R.CloseSessionTxn(["/p/e0", "/p/e1"]))
    pending.applied(4)
    assert pending.closing == {} and pending.get("/p/e0") is None
    assert pending.get("/p/e1").ephemeral_owner == B  # B's create, still pending


def test_children_lost_counts_each_parent_as_a_counter_does():
    """prepare_close_session's count of the children each parent loses
    (``children_lost``: a run of the sorted paths per parent, bisected) is
    the plain count, also where names with '-' or '.' sort between a
    parent's children and deeper paths sit in a run."""
    import random
    from collections import Counter
    from zabpy.pipeline.prep import children_lost

    rng = random.Random(19)
    names = ["a", "b", "a0", "z", "a.b", "-", "~", "é"]
    for _ in range(2000):
        paths = sorted({"/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
                        for _ in range(rng.randint(0, 12))})
        plain = Counter(p.rpartition("/")[0] or "/" for p in paths)
        assert dict(children_lost(paths)) == dict(plain), paths
    wide = [f"/exp/e{i:06d}" for i in range(20_000)]
    assert dict(children_lost(wide)) == {"/exp": 20_000}
