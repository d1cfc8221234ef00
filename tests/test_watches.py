"""Watches, side by side with Java ZooKeeper 3.8.0 (zookeeper-facts.md §1.5).

setWatches is tested with the raw client: kazoo 2.11 drops its watchers on
every lost connection (it fires a NONE event) instead of re-arming them.

Events are compared as (type, state, path) lists after a ping round trip,
so every event the server sent before the ping reply has arrived.
"""

from __future__ import annotations

from conftest import RawClient, create_req
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


def test_event_arrives_before_later_reply(zk, name):
    """A client sees the event before any reply that reflects the change."""
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
