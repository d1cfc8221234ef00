"""Reads computed in parts (issue 19; server/sliced.py, ``SlicedScan``):
getAllChildrenNumber of a large subtree, getEphemerals of a session owning
many ephemerals and a long child list that is not cached are computed a part
per ``work`` call, with small parts here (ServerSettings). The standalone core
without sockets: feed events, assert on ready().

The rules pinned: another connection is served between the parts; a txn that
would change the answer waits until it is given (and every txn after it, in
order), so the answer is the state when it is done, as ZooKeeper's, which
applies no write while a read is being processed; other txns are applied
meanwhile; a txn of the reading session waits too, so the zxids it is
answered with never go back; while a txn waits, a new scan of another session
waits for it (no starvation); a lost connection's scan is dropped; ``settle``
finishes a scan and then applies what it held back."""

from __future__ import annotations

import struct

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, OpCode

from test_core_standalone import OPEN, Harness, _frames, _reply

PART = 10


def _harness() -> Harness:
    return Harness(count_nodes_per_part=PART, ephemerals_per_part=PART, children_per_part=PART)


def _tree(h: Harness, parents: int = 10, kids: int = 10) -> int:
    """/a/p<i>/k<j> created through the server; returns the count below /a."""
    h.open_session(9)
    h.request(9, 1, OpCode.create, R.CreateRequest("/a", b"", OPEN, 0))
    h.request(9, 2, OpCode.create, R.CreateRequest("/other", b"", OPEN, 0))
    xid = 3
    for i in range(parents):
        h.request(9, xid, OpCode.create, R.CreateRequest(f"/a/p{i}", b"", OPEN, 0))
        xid += 1
        for j in range(kids):
            h.request(9, xid, OpCode.create, R.CreateRequest(f"/a/p{i}/k{j}", b"", OPEN, 0))
            xid += 1
    h.durable()
    return parents * (kids + 1)


def _count(frame: bytes) -> int:
    assert _reply(frame).err == Err.OK
    return struct.unpack_from(">i", frame, 4 + 16)[0]


def _finish(h: Harness) -> None:
    while h.srv.busy:
        h.srv.work(h.now)


def test_a_count_goes_in_parts_and_other_connections_are_served():
    h = _harness()
    n = _tree(h)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    assert not _frames(h.step(), 1) and h.srv.busy
    h.request(2, 1, OpCode.exists, R.ExistsRequest("/a", False))
    assert len(_frames(h.step(), 2)) == 1
    parts = 0
    while h.srv.busy:
        h.srv.work(h.now)
        parts += 1
    assert parts >= n // PART - 1
    (frame,) = _frames(h.step(), 1)
    assert _count(frame) == n
    # the root and "" are counted without a walk
    h.request(1, 2, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/"))
    (frame,) = _frames(h.step(), 1)
    assert _count(frame) == len(h.srv.tree.nodes) - 1 and not h.srv.busy


def test_a_count_of_a_small_subtree_is_answered_at_once():
    h = _harness()
    _tree(h, parents=1, kids=3)
    h.open_session(1)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    (frame,) = _frames(h.step(), 1)
    assert _count(frame) == 4 and not h.srv.busy


def test_a_create_below_waits_for_the_count_and_one_elsewhere_does_not():
    h = _harness()
    n = _tree(h)
    h.open_session(1)
    h.open_session(2)
    h.open_session(3)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.request(3, 1, OpCode.create, R.CreateRequest("/other/x", b"", OPEN, 0))
    h.request(2, 1, OpCode.create, R.CreateRequest("/a/p3/new", b"", OPEN, 0))
    h.request(3, 2, OpCode.create, R.CreateRequest("/other/y", b"", OPEN, 0))
    _, after = h.durable()
    # applied in order: /other/x goes, the create below /a waits, /other/y behind it
    assert [_reply(f).err for f in _frames(after, 3)] == [Err.OK]
    assert not _frames(after, 2) and "/a/p3/new" not in h.srv.tree.nodes
    _finish(h)
    ready = h.step()
    (frame,) = _frames(ready, 1)
    assert _count(frame) == n
    assert [_reply(f).err for f in _frames(ready, 2)] == [Err.OK]
    assert [_reply(f).err for f in _frames(ready, 3)] == [Err.OK]
    assert _reply(frame).zxid < _reply(_frames(ready, 2)[0]).zxid


def test_a_delete_then_create_cannot_make_a_count_no_state_had():
    """Deletes in the part counted first, then creates in the part counted
    last: without the wait a count could see the deleted nodes and the new
    ones at once (more than ever existed)."""
    h = _harness()
    n = _tree(h)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.srv.work(h.now)
    for j in range(5):
        h.request(2, 1 + j, OpCode.delete, R.DeleteRequest(f"/a/p9/k{j}", -1))
    for j in range(5):
        h.request(2, 10 + j, OpCode.create, R.CreateRequest(f"/a/p0/new{j}", b"", OPEN, 0))
    h.durable()
    _finish(h)
    (frame,) = _frames(h.step(), 1)
    assert _count(frame) == n   # before all ten txns


def test_the_reading_sessions_own_later_write_waits_for_its_count():
    h = _harness()
    _tree(h)
    h.open_session(1)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.request(1, 2, OpCode.create, R.CreateRequest("/other/mine", b"", OPEN, 0))
    h.request(1, 3, OpCode.exists, R.ExistsRequest("/other/mine", False))
    h.durable()
    assert "/other/mine" not in h.srv.tree.nodes
    _finish(h)
    frames = _frames(h.step(), 1)
    replies = [_reply(f) for f in frames]
    assert [(r.xid, r.err) for r in replies] == [(1, Err.OK), (2, Err.OK), (3, Err.OK)]
    zxids = [r.zxid for r in replies]
    assert zxids == sorted(zxids)


def test_a_new_count_waits_while_a_txn_waits_and_then_sees_it():
    h = _harness()
    n = _tree(h)
    for c in (1, 2, 3):
        h.open_session(c)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.request(2, 1, OpCode.create, R.CreateRequest("/a/p0/held", b"", OPEN, 0))
    h.durable()
    h.request(3, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    assert h.srv._scan_held and len(h.srv._scans) == 1   # the new one did not start
    _finish(h)
    ready = h.step()
    assert _count(_frames(ready, 1)[0]) == n
    assert _reply(_frames(ready, 2)[0]).err == Err.OK
    assert _count(_frames(ready, 3)[0]) == n + 1


def test_ephemerals_in_parts_and_a_delete_of_one_waits():
    h = _harness()
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.create, R.CreateRequest("/e", b"", OPEN, 0))
    names = [f"/e/x{i:03d}" for i in range(35)]
    for i, p in enumerate(names):
        h.request(1, 2 + i, OpCode.create, R.CreateRequest(p, b"", OPEN, 1))
    h.durable()
    h.request(1, 100, OpCode.getEphemerals, R.GetEphemeralsRequest("/e/x01"))
    h.request(1, 101, OpCode.getEphemerals, R.GetEphemeralsRequest(" / "))   # Java trims: all
    assert h.srv.busy
    h.request(2, 1, OpCode.delete, R.DeleteRequest(names[0], -1))
    h.durable()
    assert names[0] in h.srv.tree.nodes
    _finish(h)
    ready = h.step()
    first, every = _frames(ready, 1)
    got = R.GetEphemeralsResponse.read(Reader(first[4 + 16:])).ephemerals
    assert got == [p for p in names if p.startswith("/e/x01")]
    # the delete waited for the first listing only: the second, which came
    # to the head while it waited, starts after it (no starvation)
    assert R.GetEphemeralsResponse.read(Reader(every[4 + 16:])).ephemerals == names[1:]
    assert [_reply(f).err for f in _frames(ready, 2)] == [Err.OK]


def test_listings_of_one_node_share_one_encoding():
    h = _harness()
    _tree(h, parents=30, kids=0)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getChildren, R.GetChildrenRequest("/a", False))
    h.request(2, 1, OpCode.getChildren2, R.GetChildren2Request("/a", False))
    assert len(h.srv._scans) == 1
    _finish(h)
    ready = h.step()
    a = R.GetChildrenResponse.read(Reader(_frames(ready, 1)[0][4 + 16:])).children
    b = R.GetChildren2Response.read(Reader(_frames(ready, 2)[0][4 + 16:])).children
    assert a == b == [f"p{i}" for i in range(30)]


def test_a_lost_connections_count_is_dropped_and_what_it_held_goes_on():
    h = _harness()
    _tree(h)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.request(2, 1, OpCode.create, R.CreateRequest("/a/p0/held", b"", OPEN, 0))
    h.durable()
    h.srv.connection_lost(1, h.now)
    _finish(h)
    assert [_reply(f).err for f in _frames(h.step(), 2)] == [Err.OK]


def test_settle_finishes_a_count_then_applies_what_it_held():
    h = _harness()
    n = _tree(h)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/a"))
    h.request(2, 1, OpCode.create, R.CreateRequest("/a/p0/held", b"", OPEN, 0))
    h.durable()
    h.srv.settle(h.now)
    assert not h.srv.busy and "/a/p0/held" in h.srv.tree.nodes
    ready = h.step()
    assert _count(_frames(ready, 1)[0]) == n
    assert [_reply(f).err for f in _frames(ready, 2)] == [Err.OK]
