"""Quota usage, side by side with Java ZooKeeper 3.8.0 (zookeeper-facts.md
§2.5): the server keeps ``/zookeeper/quota<path>/zookeeper_stats`` as
``count=N,bytes=M`` for the deepest quota'd path at or above each created,
deleted or changed node; creating a stats node recounts the subtree (the
quota'd node included). Every getData compares data and stat.

Each test removes the quota nodes it made: a quota on a /zookeeper subtree
counts them, and both servers live for the whole test session.
"""

from __future__ import annotations

import pytest

from conftest import RawClient, create_req, zabpy_server
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode

Q = "/zookeeper/quota"


@pytest.fixture
def quota(pair):
    """set(path, order): make the quota nodes of ``path``; stats(path): read
    its stats node on both servers; the nodes are deleted afterwards."""
    made: list[str] = []

    def make(path: str, stats_first: bool = False) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = Q + "/" + "/".join(parts[:i])
            if pair.z.call(OpCode.exists, R.ExistsRequest(p, False)).err:
                pair.call(OpCode.create, create_req(p, None))
                made.append(p)
        leaves = [("zookeeper_limits", b"count=10,bytes=100"), ("zookeeper_stats", b"count=0,bytes=0")]
        for leaf, data in (leaves[::-1] if stats_first else leaves):
            pair.call(OpCode.create, create_req(f"{Q}{path}/{leaf}", data))
            made.append(f"{Q}{path}/{leaf}")

    yield make
    # Clean-up compares outcomes only: both servers live for the whole test
    # session, so another test's session expiring between two deletes moves
    # one server's last zxid and not the other's.
    for p in reversed(made):
        zr, jr = pair.both(OpCode.delete, R.DeleteRequest(p, -1))
        assert zr[0] == jr[0], f"delete {p}: zabpy {zr} java {jr}"


def stats(pair, path: str):
    return pair.call(OpCode.getData, R.GetDataRequest(f"{Q}{path}/zookeeper_stats", False))


def data_of(reply) -> bytes:
    return dict(reply[2][1])["data"]


def test_usage_follows_creates_sets_deletes(pair, quota, name):
    pair.call(OpCode.create, create_req(name, b"abc"))
    pair.call(OpCode.create, create_req(f"{name}/a", b"12345"))
    quota(name)
    assert data_of(stats(pair, name)) == b"count=2,bytes=8"     # recounted, itself included
    pair.call(OpCode.create, create_req(f"{name}/b", b"xy"))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/b", -1))
    assert data_of(stats(pair, name)) == b"count=2,bytes=4"
    pair.multi([(OpCode.create, create_req(f"{name}/m", b"123")),
                (OpCode.setData, R.SetDataRequest(f"{name}/m", b"1", -1)),
                (OpCode.delete, R.DeleteRequest(f"{name}/m", -1))])
    assert data_of(stats(pair, name)) == b"count=2,bytes=4"
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a", -1))
    pair.call(OpCode.delete, R.DeleteRequest(name, -1))            # the quota'd node itself
    stats(pair, name)
    pair.call(OpCode.create, create_req(name, b"back"))
    stats(pair, name)


def test_nested_quota_takes_the_deepest(pair, quota, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a", b"1"))
    quota(name)
    quota(f"{name}/a", stats_first=True)   # stats before limits: recounted all the same
    pair.call(OpCode.create, create_req(f"{name}/a/c", b"zz"))
    assert data_of(stats(pair, name)) == b"count=2,bytes=1"
    assert data_of(stats(pair, f"{name}/a")) == b"count=2,bytes=3"
    pair.call(OpCode.delete, R.DeleteRequest(f"{Q}{name}/a/zookeeper_limits", -1))
    pair.call(OpCode.create, create_req(f"{Q}{name}/a/zookeeper_limits", b"count=1"))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a/c", -1))
    stats(pair, name)
    stats(pair, f"{name}/a")


def test_stats_text_as_statstrack_writes_it(pair, quota, name):
    """Unknown keys survive, sorted after count and bytes in StatsTrack's
    own layout; an absent count or bytes counts as -1."""
    pair.call(OpCode.create, create_req(name))
    quota(name)
    pair.call(OpCode.setData, R.SetDataRequest(f"{Q}{name}/zookeeper_stats",
                                               b"b=2,count=5,bytes=7,a=1", -1))
    pair.call(OpCode.create, create_req(f"{name}/e", b"e"))
    assert data_of(stats(pair, name)) == b"count=6,bytes=8=;a=1;b=2"
    pair.call(OpCode.setData, R.SetDataRequest(f"{Q}{name}/zookeeper_stats", b"", -1))
    pair.call(OpCode.create, create_req(f"{name}/f", b"f"))
    assert data_of(stats(pair, name)) == b"count=0,bytes=0"
    pair.call(OpCode.delete, R.DeleteRequest(f"{Q}{name}/zookeeper_limits", -1))
    pair.call(OpCode.create, create_req(f"{name}/g", b"ggg"))      # no quota: not counted
    stats(pair, name)
    pair.call(OpCode.create, create_req(f"{Q}{name}/zookeeper_limits", b"count=1"))


def test_quota_on_the_quota_tree(pair, quota, name):
    """A quota on a path inside /zookeeper/quota counts its own quota
    nodes, and the stats node changes without a txn of its own."""
    pair.call(OpCode.create, create_req(name))
    quota(name)
    quota(f"{Q}{name}")
    stats(pair, f"{Q}{name}")
    pair.call(OpCode.create, create_req(f"{Q}{name}/extra", b"12"))
    pair.call(OpCode.create, create_req(f"{name}/x", b"123"))
    stats(pair, f"{Q}{name}")
    stats(pair, name)
    pair.call(OpCode.delete, R.DeleteRequest(f"{Q}{name}/extra", -1))
    stats(pair, f"{Q}{name}")


def test_quota_paths_come_back_with_a_snapshot():
    """ZooKeeper's setupQuota: a tree loaded from a snapshot knows its
    quota'd paths again, and each stats node is recounted from the tree
    whatever it held (a limits node that is not a leaf is not a quota)."""
    from zabpy.storage.snapshot import deserialize_snapshot, serialize_snapshot
    from zabpy.tree import DataTree

    tree = DataTree()
    for i, (path, data) in enumerate([("/p", b"ab"), (f"{Q}/p", None),
                                      (f"{Q}/p/zookeeper_limits", b"count=9"),
                                      (f"{Q}/p/zookeeper_stats", b""),
                                      ("/n", b"x"), (f"{Q}/n", None),
                                      (f"{Q}/n/zookeeper_limits", None),
                                      (f"{Q}/n/zookeeper_limits/c", None),
                                      (f"{Q}/n/zookeeper_stats", b"")], start=1):
        tree.create_node(path, data, (), 0, -1, i, 0)
    tree.nodes[f"{Q}/p/zookeeper_stats"].data = b"count=50,bytes=50"  # drifted
    tree.nodes[f"{Q}/n/zookeeper_stats"].data = b"count=7,bytes=7"
    loaded = DataTree()
    deserialize_snapshot(b"".join(serialize_snapshot(tree, {}, 9)), loaded)
    assert loaded.quotas.paths() == ["/p"]
    assert loaded.nodes[f"{Q}/p/zookeeper_stats"].data == b"count=1,bytes=2"
    assert loaded.nodes[f"{Q}/n/zookeeper_stats"].data == b"count=7,bytes=7"
    loaded.create_node("/p/c", b"xyz", (), 0, -1, 10, 0)
    loaded.create_node("/n/c", b"xyz", (), 0, -1, 11, 0)
    assert loaded.nodes[f"{Q}/p/zookeeper_stats"].data == b"count=2,bytes=5"
    assert loaded.nodes[f"{Q}/n/zookeeper_stats"].data == b"count=7,bytes=7"


def test_stats_node_keeps_its_own_stat(pair, quota, name):
    """Usage changes the stats node's data (and so its dataLength) but never
    its mzxid, mtime or version: ZooKeeper writes it without a txn."""
    pair.call(OpCode.create, create_req(name, b"12"))
    quota(name)
    before = dict(stats(pair, name)[2][1])["stat"]
    pair.call(OpCode.create, create_req(f"{name}/a", b"1234567890"))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"", -1))
    after = stats(pair, name)
    assert data_of(after) == b"count=2,bytes=10"
    st = dict(dict(after[2][1])["stat"][1])
    assert st["mzxid"] == st["czxid"] and st["version"] == 0
    assert st["dataLength"] == len(b"count=2,bytes=10")
    assert dict(before[1])["mzxid"] == st["mzxid"]


def test_statstrack_separators_and_empty_values(pair, quota, name):
    """StatsTrack splits on runs of ',' and ';' and reads an empty value as
    -1 ("count==4": "count=" alone makes Java throw); a key may come twice
    (the last wins)."""
    pair.call(OpCode.create, create_req(name))
    quota(name)
    sp = f"{Q}{name}/zookeeper_stats"
    for text in (b"count=5;;bytes=7", b"count==4,bytes=3", b"bytes=1,count=2,count=4,,",
                 b"count=1,bytes=2=;zz=5;aa=-3", b"count=+3,bytes=0"):
        pair.call(OpCode.setData, R.SetDataRequest(sp, text, -1))
        pair.call(OpCode.create, create_req(f"{name}/n", b"ab"))
        pair.call(OpCode.delete, R.DeleteRequest(f"{name}/n", -1))
        pair.call(OpCode.create, create_req(f"{name}/n", b"abc"))
        stats(pair, name)
        pair.call(OpCode.delete, R.DeleteRequest(f"{name}/n", -1))


def test_deleting_outer_limits_keeps_the_inner_quota(pair, quota, name):
    """PathTrie.deletePath only unmarks a path: once the outer quota's
    limits node goes, the inner quota keeps counting, the outer stops."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/in"))
    quota(f"{name}/in")
    quota(name)
    pair.call(OpCode.create, create_req(f"{name}/in/x", b"1"))
    assert data_of(stats(pair, f"{name}/in")) == b"count=2,bytes=1"
    pair.call(OpCode.delete, R.DeleteRequest(f"{Q}{name}/zookeeper_limits", -1))
    pair.call(OpCode.create, create_req(f"{name}/in/y", b"22"))
    pair.call(OpCode.create, create_req(f"{name}/z", b"4444"))
    assert data_of(stats(pair, f"{name}/in")) == b"count=3,bytes=3"
    stats(pair, name)
    pair.call(OpCode.create, create_req(f"{Q}{name}/zookeeper_limits", b"count=1"))


def test_stats_of_a_missing_path_are_recounted_to_zero(pair, name):
    """A stats node made before its path exists still gets the recount:
    count=0,bytes=0 over whatever the client wrote."""
    made = [f"{Q}{name}", f"{Q}{name}/zookeeper_stats"]
    pair.call(OpCode.create, create_req(made[0]))
    pair.call(OpCode.create, create_req(made[1], b"count=9,bytes=9"))
    try:
        assert data_of(stats(pair, name)) == b"count=0,bytes=0"
    finally:
        for p in reversed(made):
            pair.call(OpCode.delete, R.DeleteRequest(p, -1))


def test_unreadable_stats_are_left_alone(name):
    """zabpy only: with a stats text StatsTrack cannot parse ("junk", or
    "count=" whose value Java's split drops), Java 3.8.0's apply throws and
    the server stops (checked by hand: its connections close for good);
    zabpy applies the write and leaves the stats as the client wrote them."""
    # its own server: the shared one must stay in step with the shared Java one
    with zabpy_server() as server:
        c = RawClient(server.port)
        try:
            _leave_unreadable_stats_alone(c, name)
        finally:
            c.close()


def _leave_unreadable_stats_alone(c, name):
    made = [name, f"{Q}{name}", f"{Q}{name}/zookeeper_limits", f"{Q}{name}/zookeeper_stats"]
    for p in made:
        assert c.call(OpCode.create, create_req(p, b"count=5" if "limits" in p else b"")).err == 0
    try:
        for junk in (b"junk", b"count=,bytes=1"):
            assert c.call(OpCode.setData, R.SetDataRequest(made[3], junk, -1)).err == 0
            assert c.call(OpCode.create, create_req(f"{name}/x", b"1")).err == 0
            assert c.call(OpCode.delete, R.DeleteRequest(f"{name}/x", -1)).err == 0
            reply = c.call(OpCode.getData, R.GetDataRequest(made[3], False))
            assert reply.err == 0 and reply.decode().data == junk
    finally:
        for p in reversed(made):
            c.call(OpCode.delete, R.DeleteRequest(p, -1))
