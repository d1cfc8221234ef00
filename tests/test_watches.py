"""Watches, side by side with Java ZooKeeper 3.8.0 (zookeeper-facts.md §1.5).

setWatches is tested with the raw client: kazoo 2.11 drops its watchers on
every lost connection (it fires a NONE event) instead of re-arming them.

Events are compared as (type, state, path) lists after a ping round trip,
so every event the server sent before the ping reply has arrived.
"""

from __future__ import annotations

import pytest

from conftest import OPEN_ACL, SUPER_AUTH, Pair, RawClient, create_req, zabpy_server
from zabpy.jute import records as R
from zabpy.jute.constants import Err, EventType, OpCode, WatcherType

CREATED, DELETED, CHANGED, CHILDREN = 1, 2, 3, 4
SYNC = 3


def test_one_shot_watches_fire_once(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/a", True))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, True))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/b", True))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1", -1))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/a", b"2", -1))
    pair.call(OpCode.create, create_req(f"{name}/b"))
    pair.call(OpCode.create, create_req(f"{name}/c"))
    assert pair.events() == [(CHANGED, SYNC, f"{name}/a"), (CREATED, SYNC, f"{name}/b"),
                             (CHILDREN, SYNC, name)]
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/b", -1))
    assert pair.events() == []


def test_delete_fires_data_child_and_parent(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/a", True))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(f"{name}/a", True))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, True))
    pair.call(OpCode.setACL, R.SetACLRequest(f"{name}/a", [R.ACL(31, R.Id("world", "anyone"))], -1))
    assert pair.events() == []  # setACL fires nothing
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a", -1))
    pair.events()


def test_watch_on_missing_node_and_failed_reads(pair, name):
    """exists on a missing node sets a watch; getData on a missing node does not."""
    pair.call(OpCode.exists, R.ExistsRequest(name, True))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/x", True))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(f"{name}/x", True))
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/x"))
    assert pair.events() == [(CREATED, SYNC, name)]


def test_event_arrives_before_later_reply(name):
    """A client sees the event before any reply that reflects the change."""
    # its own server: the shared one must stay in step with the shared Java one
    with zabpy_server() as zk:
        _event_before_later_reply(zk, name)


def _event_before_later_reply(zk, name):
    watcher, writer = RawClient(zk.port), RawClient(zk.port)
    try:
        writer.call(OpCode.create, create_req(name))
        watcher.call(OpCode.getData, R.GetDataRequest(name, True))
        writer.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
        xid = watcher.submit(OpCode.getData, R.GetDataRequest(name, False))
        watcher.read_reply(xid)
        assert watcher.log[-2:] == [("event", CHANGED, name), ("reply", xid)]
    finally:
        watcher.close()
        writer.close()


def test_set_watches_after_reconnect(pair, name):
    """SetWatches: at most one coalesced event per watch, by the zxids."""
    pair.call(OpCode.create, create_req(name))
    for p in ("same", "changed", "gone", "kids", "kids_same"):
        pair.call(OpCode.create, create_req(f"{name}/{p}"))
    rel = {c: c.call(OpCode.exists, R.ExistsRequest("/", False)).zxid for c in (pair.z, pair.j)}
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/changed", b"x", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/gone", -1))
    pair.call(OpCode.create, create_req(f"{name}/kids/k"))
    pair.call(OpCode.create, create_req(f"{name}/born"))
    sw = {c: R.SetWatches(rel[c],
                          [f"{name}/same", f"{name}/changed", f"{name}/gone"],
                          [f"{name}/born", f"{name}/unborn"],
                          [f"{name}/kids", f"{name}/kids_same", f"{name}/gone"])
          for c in (pair.z, pair.j)}
    pair.z.call(OpCode.setWatches, sw[pair.z], xid=-8)
    pair.j.call(OpCode.setWatches, sw[pair.j], xid=-8)
    first = pair.events()
    assert sorted(first) == sorted([(CHANGED, SYNC, f"{name}/changed"),
                                    (DELETED, SYNC, f"{name}/gone"),
                                    (DELETED, SYNC, f"{name}/gone"),
                                    (CHILDREN, SYNC, f"{name}/kids"),
                                    (CREATED, SYNC, f"{name}/born")])
    # the re-armed ones fire later, once
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/same", b"y", -1))
    pair.call(OpCode.create, create_req(f"{name}/kids_same/k"))
    pair.call(OpCode.create, create_req(f"{name}/unborn"))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/changed", b"z", -1))
    assert sorted(pair.events()) == sorted([(CHANGED, SYNC, f"{name}/same"),
                                            (CHILDREN, SYNC, f"{name}/kids_same"),
                                            (CREATED, SYNC, f"{name}/unborn")])


def test_persistent_watch(pair, name):
    """addWatch mode 0: data and child events of the node, not removed on fire."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.addWatch, R.AddWatchRequest(name, 0))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"1", -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"2", -1))
    pair.call(OpCode.create, create_req(f"{name}/c"))
    pair.call(OpCode.create, create_req(f"{name}/c/gc"))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/c/gc", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/c", -1))
    pair.call(OpCode.delete, R.DeleteRequest(name, -1))
    pair.call(OpCode.create, create_req(name))
    pair.events()


def test_persistent_recursive_watch(pair, name):
    """addWatch mode 1: created/deleted/changed below, no NodeChildrenChanged."""
    pair.call(OpCode.addWatch, R.AddWatchRequest(name, 1))
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/c"))
    pair.call(OpCode.create, create_req(f"{name}/c/gc"))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/c/gc", b"1", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/c/gc", -1))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/c", True))  # plus a one-shot
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/c", b"1", -1))
    pair.call(OpCode.create, create_req(f"{name}x"))  # sibling with a common prefix
    pair.events()
    pair.call(OpCode.addWatch, R.AddWatchRequest(name, 7))   # bad mode
    pair.call(OpCode.addWatch, R.AddWatchRequest(f"{name}//bad", 0))


def test_check_and_remove_watches(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.getData, R.GetDataRequest(name, True))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, True))
    for t in (WatcherType.Children, WatcherType.Data, WatcherType.Any, 4, 5, 9):
        pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, t))
    pair.call(OpCode.removeWatches, R.RemoveWatchesRequest(name, WatcherType.Children))
    pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, WatcherType.Children))
    pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, WatcherType.Data))
    pair.call(OpCode.removeWatches, R.RemoveWatchesRequest(name, WatcherType.Children))
    pair.call(OpCode.removeWatches, R.RemoveWatchesRequest(name, WatcherType.Any))
    pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, WatcherType.Any))
    pair.call(OpCode.addWatch, R.AddWatchRequest(name, 0))
    pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, WatcherType.Data))
    pair.call(OpCode.checkWatches, R.CheckWatchesRequest(name, WatcherType.Any))
    pair.call(OpCode.removeWatches, R.RemoveWatchesRequest(name, WatcherType.Any))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    assert pair.events() == []


def test_watches_belong_to_their_session(pair, name):
    """Another session's write fires this session's watch; a closed
    session's watches are gone."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.getData, R.GetDataRequest(name, True))
    for c in (pair.z, pair.j):
        other = RawClient(c.port)
        other.call(OpCode.getData, R.GetDataRequest(name, True))
        other.close()
        w = RawClient(c.port)
        w.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
        w.close()
    assert pair.events() == [(CHANGED, SYNC, name)]
    assert Err.OK == 0 and EventType.NodeDataChanged == CHANGED


# ---- delivery honours READ (CVE-2024-23944, ZOOKEEPER-4799) -------------------

NO_READ = [R.ACL(30, R.Id("world", "anyone"))]


@pytest.fixture
def sessions(zk, java_zk):
    """A factory of extra session pairs, closed at the end."""
    made: list[Pair] = []

    def make() -> Pair:
        made.append(Pair(zk.port, java_zk.port))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _auth_super(p: Pair) -> None:
    for c in (p.z, p.j):
        assert c.call(OpCode.auth, R.AuthPacket(0, "digest", SUPER_AUTH), xid=-4).err == 0


def test_one_shot_event_needs_read_and_is_consumed(pair, sessions, name):
    """exists-watch on a node created without READ: no NodeCreated, and the
    watch is gone (a later change after an open setACL sends nothing)."""
    watcher, root = sessions(), sessions()
    _auth_super(root)
    for w in (watcher, root):
        w.call(OpCode.exists, R.ExistsRequest(name, True))
    pair.call(OpCode.create, create_req(name, b"", 0, [R.ACL(0, R.Id("world", "anyone"))]))
    assert watcher.events() == []
    assert root.events() == [(CREATED, SYNC, name)]      # super reads everything
    pair.call(OpCode.setACL, R.SetACLRequest(name, [R.ACL(31, R.Id("world", "anyone"))], -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    assert watcher.events() == []


def test_recursive_and_persistent_events_need_read(pair, sessions, name):
    """One session per mode: Java 3.8 mixes modes on one path (ZOOKEEPER-4466)."""
    recursive, persistent = sessions(), sessions()
    pair.call(OpCode.create, create_req(name))
    recursive.call(OpCode.addWatch, R.AddWatchRequest(name, 1))
    persistent.call(OpCode.addWatch, R.AddWatchRequest(name, 0))
    pair.call(OpCode.create, create_req(f"{name}/t", b"", 0, NO_READ))
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/t", b"x", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/t", -1))
    pair.call(OpCode.create, create_req(f"{name}/u"))
    assert recursive.events() == [(CREATED, SYNC, f"{name}/u")]
    assert persistent.events() == [(CHILDREN, SYNC, name)] * 3
    pair.call(OpCode.setACL, R.SetACLRequest(name, NO_READ, -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"y", -1))
    pair.call(OpCode.create, create_req(f"{name}/v"))
    assert recursive.events() == [(CREATED, SYNC, f"{name}/v")]
    assert persistent.events() == []


def test_child_event_needs_read_on_parent(pair, sessions, name):
    watcher = sessions()
    pair.call(OpCode.create, create_req(name))
    watcher.call(OpCode.getChildren, R.GetChildrenRequest(name, True))
    watcher.call(OpCode.getData, R.GetDataRequest(name, True))
    pair.call(OpCode.setACL, R.SetACLRequest(name, NO_READ, -1))
    pair.call(OpCode.create, create_req(f"{name}/c"))      # child watch consumed, unseen
    pair.call(OpCode.setACL, R.SetACLRequest(name, OPEN_ACL, -1))
    pair.call(OpCode.create, create_req(f"{name}/d"))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    assert watcher.events() == [(CHANGED, SYNC, name)]


def test_closing_session_ephemerals_it_cannot_read(pair, sessions, name):
    """A closing session's own ephemerals: NodeDeleted reaches only the
    sessions with READ on them, the closing one included (its events come
    before the closeSession reply)."""
    owner, reader, root = sessions(), sessions(), sessions()
    _auth_super(root)
    pair.call(OpCode.create, create_req(name))
    owner.call(OpCode.create, create_req(f"{name}/hidden", b"", 1, NO_READ))
    owner.call(OpCode.create, create_req(f"{name}/open", b"", 1))
    for w in (owner, reader, root):   # (the stats differ: ephemeralOwner)
        for leaf in ("hidden", "open"):
            w.both(OpCode.exists, R.ExistsRequest(f"{name}/{leaf}", True))
    owner.call(OpCode.closeSession)
    assert [(e.type, e.path) for e in owner.z.events] == \
        [(e.type, e.path) for e in owner.j.events] == [(DELETED, f"{name}/open")]
    assert reader.events() == [(DELETED, SYNC, f"{name}/open")]
    # the deletion order is Java's HashSet order: compare as sets
    for c in (root.z, root.j):
        assert sorted((e.type, e.path) for e in c.drain_events()) == \
            [(DELETED, f"{name}/hidden"), (DELETED, f"{name}/open")]


def test_recursive_watch_has_a_child_table_half(pair, sessions, name):
    """ZooKeeper 3.8 files a recursive watch in both watch tables.
    removeWatches Children removes the (inert) child half: OK, and then
    checkWatches Children says NOWATCHER while data events still come;
    removeWatches Data leaves the child half, which answers Children and Any
    and still delivers NodeDeleted below the path. One path per session:
    Java's containsWatcher answers for another session's watch on the path."""
    pair.call(OpCode.create, create_req(name))
    by_remove = {}
    for t in (WatcherType.Children, WatcherType.Data):
        s, base = sessions(), f"{name}/{int(t)}"
        by_remove[t] = s, base
        pair.call(OpCode.create, create_req(base))
        pair.call(OpCode.create, create_req(f"{base}/x"))
        s.call(OpCode.addWatch, R.AddWatchRequest(base, 1))
        s.call(OpCode.checkWatches, R.CheckWatchesRequest(base, WatcherType.Children))
        s.call(OpCode.removeWatches, R.RemoveWatchesRequest(base, t))
        for check in (WatcherType.Children, WatcherType.Data, WatcherType.Any):
            s.call(OpCode.checkWatches, R.CheckWatchesRequest(base, check))
        pair.call(OpCode.create, create_req(f"{base}/x/y"))
        pair.call(OpCode.setData, R.SetDataRequest(f"{base}/x", b"1", -1))
        pair.call(OpCode.delete, R.DeleteRequest(f"{base}/x/y", -1))
        pair.call(OpCode.delete, R.DeleteRequest(f"{base}/x", -1))
        s.call(OpCode.checkWatches, R.CheckWatchesRequest(base, WatcherType.Children))
    s, base = by_remove[WatcherType.Children]
    assert s.events() == [(CREATED, SYNC, f"{base}/x/y"), (CHANGED, SYNC, f"{base}/x"),
                          (DELETED, SYNC, f"{base}/x/y"), (DELETED, SYNC, f"{base}/x")]
    s, base = by_remove[WatcherType.Data]
    assert s.events() == [(DELETED, SYNC, f"{base}/x/y"), (DELETED, SYNC, f"{base}/x")]
