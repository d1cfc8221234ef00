"""prepare_close_session against outstanding changes (ZooKeeper's
PrepRequestProcessor, closeSession: every outstanding delete drops a path,
every outstanding ephemeral of the session adds one)."""

from zabpy.jute import records as R
from zabpy.jute.constants import CreateMode, OpCode
from zabpy.pipeline.prep import (ClosePrep, PendingChanges, PrepContext, close_session_txn,
                                 prepare, prepare_close_session)
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


def _random_case(rng, names, long_names: bool):
    """A tree where session A owns ephemerals under a few parents (and B
    some), with pending changes a close must take in: A's ephemerals being
    created, A's deleted (and made again by B). The same prepared requests
    on two PendingChanges of one tree (prep does not change the tree)."""
    tree = DataTree()
    zxid = 1
    parents = ["/", "/a", "/a/b", "/c", "/a/b/-"]
    for p in parents[1:]:
        tree.apply(R.TxnHeader(B, zxid, zxid, 0, OpCode.create), R.CreateTxn(p, b"", ACL, False, 1))
        zxid += 1
    pad = "x" * 990 if long_names else ""
    made = []
    for i in range(rng.randint(0, 60) if not long_names else 1200):
        parent = rng.choice(parents)
        path = (parent if parent != "/" else "") + "/" + pad + "".join(
            rng.choice(names) for _ in range(rng.randint(1, 3))) + (str(i) if pad else "")
        if path in tree.nodes:
            continue
        owner = A if rng.random() < 0.9 else B
        tree.apply(R.TxnHeader(owner, zxid, zxid, 0, OpCode.create),
                   R.CreateTxn(path, b"", ACL, True, 1))
        made.append(path)
        zxid += 1
    pendings = [PendingChanges(tree), PendingChanges(tree)]
    steps = []
    for _ in range(rng.randint(0, 6)):
        kind = rng.random()
        if kind < 0.4 or not made:
            parent = rng.choice(parents)
            path = (parent if parent != "/" else "") + "/new" + str(zxid)
            steps.append((OpCode.create, R.CreateRequest(path, b"", ACL, int(CreateMode.EPHEMERAL)),
                          A))
        elif kind < 0.8:
            steps.append((OpCode.delete, R.DeleteRequest(rng.choice(made), -1), B))
        else:
            path = rng.choice(made)
            steps.append((OpCode.delete, R.DeleteRequest(path, -1), B))
            steps.append((OpCode.create, R.CreateRequest(path, b"", ACL,
                                                          int(CreateMode.EPHEMERAL)), B))
    for op, req, sid in steps:
        for pending in pendings:
            prepare(op, req, zxid, pending, PrepContext(sid, []))
        zxid += 1
    return tree, pendings, zxid


def _in_parts(pending, zxid: int, per_step: int):
    cp = ClosePrep(A, zxid, pending, per_step)
    steps = 1
    while not cp.step():
        steps += 1
    return cp.finish(pending), steps


def test_a_close_prepared_in_parts_is_the_whole_prep():
    """Issue 19: ClosePrep sizes, counts and (when the txn lists them)
    sorts and merges the paths a part at a time; its txn and the pending
    changes it leaves are prepare_close_session's and close_session_txn's:
    paths listed in order below limits.CLOSE_SESSION_PATHS_BYTES_MAX, none
    beyond it (the long names), each parent's child count, the deletes of
    paths being created, the closing mark."""
    import random

    rng = random.Random(1919)
    names = ["a", "b", "a0", "z", "a.b", "-", "~", "é"]
    seen_long = seen_listed = 0
    for case in range(300):
        long_names = case % 25 == 0
        tree, (whole, parts), zxid = _random_case(rng, names, long_names)
        want = close_session_txn(prepare_close_session(A, zxid, whole))
        got, steps = _in_parts(parts, zxid, rng.randint(1, 9) if not long_names else 97)
        assert got == want, case
        assert parts.by_path == whole.by_path and parts.closing == whole.closing, case
        seen_long += want is None
        seen_listed += want is not None and len(want.paths2Delete) > 20 and steps > 3
    assert seen_long >= 10 and seen_listed >= 100


def _tree_with_ephemerals_of_a(n: int) -> DataTree:
    """/p (B's), with A's ephemerals /p/e00 .. made at zxids 2 .. n + 1."""
    tree = DataTree()
    tree.apply(R.TxnHeader(B, 1, 1, 0, OpCode.create), R.CreateTxn("/p", b"", ACL, False, 1))
    for i in range(n):
        tree.apply(R.TxnHeader(A, 2 + i, 2 + i, 0, OpCode.create),
                   R.CreateTxn(f"/p/e{i:02d}", b"", ACL, True, 2 + i))
    return tree


def test_txns_applied_while_a_close_is_prepared_leave_its_result_alone():
    """The server prepares nothing else while a close is prepared in parts,
    but applies earlier txns: the session's own pending ephemeral enters
    the tree (its record goes), the parent's pending count with it. The
    close still deletes it and leaves later preps the tree as it will be."""
    tree = _tree_with_ephemerals_of_a(30)
    pending = PendingChanges(tree)
    create = R.CreateRequest("/p/late", b"", ACL, int(CreateMode.EPHEMERAL))
    hdr = R.TxnHeader(A, 99, 40, 0, OpCode.create)
    ttype, txn = prepare(OpCode.create, create, 40, pending, PrepContext(A, []))
    assert ttype == OpCode.create and pending.get("/p").child_count == 31
    cp = ClosePrep(A, 41, pending, 4)
    assert not cp.step()
    tree.apply(hdr, txn)           # the create is applied between two parts
    pending.applied(40)
    assert "/p/late" not in pending.by_path and tree.nodes["/p"].child_count() == 31
    while not cp.step():
        pass
    record = cp.finish(pending)
    assert record.paths2Delete == [f"/p/e{i:02d}" for i in range(30)] + ["/p/late"]
    assert pending.get("/p").child_count == 0 and pending.get("/p/late") is None
    assert pending.get("/p/e07") is None and pending.closing == {A: 41}
    ctx_b = PrepContext(B, [])
    assert prepare(OpCode.delete, R.DeleteRequest("/p", -1), 42, pending, ctx_b)[0] == OpCode.delete


def test_a_close_prepared_in_parts_lists_its_paths_up_to_the_limit_in_bytes():
    """Sized a part at a time, in UTF-8 bytes (é takes two): a list of
    exactly limits.CLOSE_SESSION_PATHS_BYTES_MAX bytes goes in the txn, one
    byte more and the txn has none, as close_session_txn decides."""
    from zabpy import limits

    size = limits.CLOSE_SESSION_PATHS_BYTES_MAX
    k = (size - 4 - 4 - 1 - 4 - 2) // 2
    wide = "/" + "é" * k
    rest = size - 4 - (4 + 1 + 2 * k) - 4   # the second path's bytes
    for extra, listed in ((0, True), (1, False)):
        tree = DataTree()
        paths = [wide, "/" + "b" * (rest - 1 + extra)]
        for i, p in enumerate(paths):
            tree.apply(R.TxnHeader(A, i, 1 + i, 0, OpCode.create), R.CreateTxn(p, b"", ACL, True, 1))
        want = close_session_txn(prepare_close_session(A, 9, PendingChanges(tree)))
        got, steps = _in_parts(PendingChanges(tree), 9, 1)
        assert got == want and (got is not None) == listed and steps >= 2
        if listed:
            assert len(got.to_bytes()) == size


def test_a_close_prepared_in_parts_reads_the_trees_paths_in_place_and_starts_again_on_a_change():
    """With no pending change of the session's ephemerals (an expiry),
    ClosePrep reads the tree's dict of them a part at a time instead of
    copying 100k paths in one step. Should it change all the same (a txn
    nothing here prepared), the prep starts again from a copy: its txn is
    the unsliced prep's of that moment."""
    tree = _tree_with_ephemerals_of_a(20)
    pending = PendingChanges(tree)
    cp = ClosePrep(A, 50, pending, 3)
    assert cp._owned is tree.ephemerals[A]   # read in place
    assert not cp.step()
    tree.apply(R.TxnHeader(A, 0, 40, 0, OpCode.create), R.CreateTxn("/p/zz", b"", ACL, True, 40))
    while not cp.step():
        pass
    assert cp._owned is None   # started again from a copy
    want = prepare_close_session(A, 50, PendingChanges(tree))
    assert cp.finish(pending).paths2Delete == want and "/p/zz" in want
    assert pending.get("/p").child_count == 0
