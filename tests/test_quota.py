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

from conftest import create_req
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
    for p in reversed(made):
        pair.call(OpCode.delete, R.DeleteRequest(p, -1))


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
    quota'd paths again (the stats data itself is in the snapshot)."""
    from zabpy.tree import DataTree, DataNode

    tree = DataTree()
    for i, (path, data) in enumerate([("/p", b"ab"), (f"{Q}/p", None),
                                      (f"{Q}/p/zookeeper_limits", b"count=9"),
                                      (f"{Q}/p/zookeeper_stats", b"")], start=1):
        tree.create_node(path, data, (), 0, -1, i, 0)
    loaded = DataTree()
    loaded.clear()
    for path, node in tree.walk():
        copy = DataNode(node.data, node.acl)
        loaded.add_restored_node(path, copy)
    loaded.create_node("/p/c", b"xyz", (), 0, -1, 9, 0)
    assert loaded.nodes[f"{Q}/p/zookeeper_stats"].data == b"count=2,bytes=5"
