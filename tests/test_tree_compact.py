"""The compact znode record (zabpy/tree/datatree.py, DataNode).

A node keeps its StatPersisted and data in one bytes record, in a short form
while the node is unchanged since its creation; these pin that every field
reads back as written through both forms, that the client Stat is the one
ZooKeeper reports (zookeeper.jute Stat; cversion as creations + deletions,
DataTree.copyStat), and that the snapshot image of a tree survives a round
trip (FileSnap: the node list is pre-order, parents first).
"""

from __future__ import annotations

from zabpy.jute import records as R
from zabpy.jute.constants import CONTAINER_EPHEMERAL_OWNER, OpCode
from zabpy.storage.snapshot import deserialize_snapshot, serialize_snapshot, tree_digest
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.tree.datatree import DataNode, DataTree, pack_record, ttl_owner

ACL = list(OPEN_ACL_UNSAFE)
BIG = 0x1_0000_0007  # a zxid past 32 bits (epoch 1)
NOW = 1_700_000_000_123


def _fields(n: DataNode) -> tuple:
    return (n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion,
            n.ephemeral_owner, n.pzxid)


def test_a_new_node_reads_back_its_creation_fields():
    n = DataNode(b"abc", OPEN_ACL_UNSAFE, BIG, NOW, 0x55)
    assert _fields(n) == (BIG, BIG, NOW, NOW, 0, 0, 0, 0x55, BIG)
    assert n.data == b"abc" and n.data_length() == 3
    assert n.stat() == R.Stat(BIG, BIG, NOW, NOW, 0, 0, 0, 0x55, 3, 0, BIG)
    assert n.stat_bytes() == n.stat().to_bytes()


def test_null_and_empty_data_stay_apart():
    assert DataNode(None, OPEN_ACL_UNSAFE).data is None
    assert DataNode(b"", OPEN_ACL_UNSAFE).data == b""
    n = DataNode(b"x", OPEN_ACL_UNSAFE)
    n.data = None
    assert n.data is None and n.stat().dataLength == 0
    n.version = 3  # the long form keeps null data null too
    assert n.data is None and n.version == 3


def test_every_field_set_alone_reads_back_and_leaves_the_others():
    names = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
             "ephemeral_owner", "pzxid")
    for i, name in enumerate(names):
        n = DataNode(b"data", OPEN_ACL_UNSAFE, BIG, NOW, 7)
        before = list(_fields(n))
        value = -1 if name in ("version", "cversion", "aversion") else BIG + 100
        setattr(n, name, value)
        before[i] = value
        assert list(_fields(n)) == before, name
        assert n.data == b"data", name


def test_the_short_form_is_used_only_while_it_holds_everything():
    fresh = pack_record(BIG, BIG, NOW, NOW, 0, 0, 0, 0, BIG, b"d")
    changed = pack_record(BIG, BIG + 1, NOW, NOW, 0, 0, 0, 0, BIG, b"d")
    assert len(changed) - len(fresh) == 36  # mzxid, mtime, versions and pzxid stored
    n = DataNode(b"d", OPEN_ACL_UNSAFE, BIG, NOW)
    n.set_data(b"e", 1, BIG + 1, NOW + 5)
    assert _fields(n) == (BIG, BIG + 1, NOW, NOW + 5, 1, 0, 0, 0, BIG) and n.data == b"e"


def test_client_stat_translates_cversion_and_hides_container_and_ttl_owners():
    t = DataTree()
    t.apply(R.TxnHeader(1, 1, 1, NOW, OpCode.createContainer),
            R.CreateContainerTxn("/c", b"", ACL, 1))
    for i, z in enumerate((2, 3, 4)):
        t.apply(R.TxnHeader(1, z, z, NOW, OpCode.create),
                R.CreateTxn(f"/c/k{i}", b"", ACL, False, i + 1))
    t.apply(R.TxnHeader(1, 5, 5, NOW, OpCode.delete), R.DeleteTxn("/c/k0"))
    st = t.nodes["/c"].stat()
    # three creations, one deletion: 2 * 3 - 2 children = 4 changes
    assert (st.cversion, st.numChildren, st.pzxid, st.ephemeralOwner) == (4, 2, 5, 0)
    assert t.nodes["/c"].ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    ttl = DataNode(b"", OPEN_ACL_UNSAFE, 1, NOW, ttl_owner(5000))
    assert ttl.stat().ephemeralOwner == 0 and ttl.stat_bytes() == ttl.stat().to_bytes()


def test_children_are_listed_by_name_and_leaves_hold_no_container():
    t = DataTree()
    for z, p in enumerate(("/a", "/a/x", "/a/y"), 1):
        t.apply(R.TxnHeader(1, z, z, NOW, OpCode.create), R.CreateTxn(p, b"", ACL, False, -1))
    a = t.nodes["/a"]
    assert list(a.children) == ["x", "y"] and len(a.children) == 2
    assert "x" in a.children and "z" not in a.children and "/a/x" not in a.children
    assert t.nodes["/a/x"]._kids is None and not t.nodes["/a/x"].children
    t.apply(R.TxnHeader(1, 4, 4, NOW, OpCode.delete), R.DeleteTxn("/a/x"))
    t.apply(R.TxnHeader(1, 5, 5, NOW, OpCode.delete), R.DeleteTxn("/a/y"))
    assert a._kids is None and list(a.children) == [] and a.stat().numChildren == 0
    assert list(t.nodes["/"].children) == ["zookeeper", "a"]


def test_snapshot_round_trip_keeps_every_field_child_order_and_owner_index():
    t = DataTree()
    z = 0
    for p, owner in (("/p", 0), ("/p/b", 0), ("/p/a", 0), ("/p/e", 0x77), ("/q", 0)):
        z += 1
        t.apply(R.TxnHeader(owner or 1, BIG + z, BIG + z, NOW + z, OpCode.create),
                R.CreateTxn(p, b"v" * z if p != "/q" else None, ACL, bool(owner), -1))
    t.apply(R.TxnHeader(1, BIG + 9, BIG + 9, NOW + 9, OpCode.setData),
            R.SetDataTxn("/p/a", b"new", 4))
    image = b"".join(serialize_snapshot(t, {0x77: 3000}, t.last_processed_zxid))
    back = DataTree()
    got = deserialize_snapshot(image, back)
    assert got.sessions == {0x77: 3000} and got.digest == tree_digest(t) == tree_digest(back)
    assert list(back.nodes) == [p for p, _ in t.walk()]
    for path, node in t.nodes.items():
        other = back.nodes[path]
        assert (_fields(other), other.data, other.acl, list(other.children)) == \
            (_fields(node), node.data, node.acl, list(node.children)), path
    assert back.nodes["/q"].data is None
    assert back.ephemerals == {0x77: {"/p/e": None}}
    assert b"".join(serialize_snapshot(back, {0x77: 3000}, t.last_processed_zxid)) == image


def test_encoded_children_is_the_jute_vector_for_any_names():
    from zabpy.jute.codec import Reader
    t = DataTree()
    z = 0
    for names in (["n01", "n02", "n03"], ["a", "bb", "ccc"], ["é1", "é2"], ["x" * 200, "y" * 200]):
        z += 1
        parent = f"/p{z}"
        t.apply(R.TxnHeader(1, z, z, NOW, OpCode.create), R.CreateTxn(parent, b"", ACL, False, -1))
        for name in names:
            z += 1
            t.apply(R.TxnHeader(1, z, z, NOW, OpCode.create),
                    R.CreateTxn(f"{parent}/{name}", b"", ACL, False, -1))
        wire = t.nodes[parent].encoded_children()
        assert R.GetChildrenResponse.read(Reader(wire)).children == names
        assert R.GetChildrenResponse(names).to_bytes() == wire
    assert DataNode(b"", OPEN_ACL_UNSAFE).encoded_children() == b"\x00\x00\x00\x00"


def test_nodes_created_with_equal_acls_share_one_tuple_and_snapshot_as_one_entry():
    """A txn's ACL list becomes the tree's shared tuple (DataTree.shared_acl),
    as a snapshot load shares the ACL cache's: one tuple per distinct ACL,
    and the snapshot's ACL cache holds each once, however the nodes came."""
    digest = [R.ACL(31, R.Id("digest", "u:x"))]
    tree = DataTree()
    for i in range(4):
        # freshly decoded records each time, as every txn brings its own
        acl = [R.ACL(a.perms, R.Id(a.id.scheme, a.id.id)) for a in (ACL if i % 2 else digest)]
        tree.apply(R.TxnHeader(1, i, 10 + i, NOW, OpCode.create),
                   R.CreateTxn(f"/n{i}", b"", acl, False, i + 1))
    assert tree.nodes["/n1"].acl is tree.nodes["/n3"].acl is OPEN_ACL_UNSAFE
    assert tree.nodes["/n0"].acl is tree.nodes["/n2"].acl
    tree.apply(R.TxnHeader(1, 9, 20, NOW, OpCode.setACL), R.SetACLTxn("/n1", list(digest), 1))
    assert tree.nodes["/n1"].acl is tree.nodes["/n0"].acl
    loaded = DataTree()
    deserialize_snapshot(b"".join(serialize_snapshot(tree, {}, 20)), loaded)
    assert len({id(n.acl) for n in loaded.nodes.values()}) == 3  # open, digest, /zookeeper/config
    assert loaded.nodes["/n2"].acl == tree.nodes["/n2"].acl
    assert loaded.nodes["/n2"].acl is loaded.nodes["/n1"].acl
