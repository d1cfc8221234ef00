"""The standalone server core without sockets: feed events, assert on ready().

These pin the ordering rules the core owns: nothing is answered before the
log says it is durable, replies leave in request order per session, and a
watch event precedes any later reply that reflects its change."""

from __future__ import annotations

import struct

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, EventType, OpCode
from zabpy.server import ServerSettings, StandaloneServer
from zabpy.session import session_password

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _frames(ready, conn_id):
    return [data for cid, data in ready.send if cid == conn_id]


def _reply(data: bytes) -> R.ReplyHeader:
    return R.ReplyHeader.read(Reader(data[4:]))


class Harness:
    def __init__(self, **kw):
        self.now = 1_000
        self.srv = StandaloneServer(ServerSettings(tick_ms=100, session_timeout_ms_min=200,
                                                   session_timeout_ms_max=2000, **kw), self.now)

    def step(self):
        ready = self.srv.ready()
        self.srv.advance(ready)
        return ready

    def durable(self):
        """Make everything persisted so far durable, return what follows."""
        ready = self.step()
        if ready.persist:
            self.srv.logged(ready.persist[-1][0].zxid, self.now)
        return ready, self.step()

    def open_session(self, conn_id: int) -> int:
        self.srv.connection_made(conn_id, "127.0.0.1", self.now)
        self.srv.connect(conn_id, R.ConnectRequest(0, 0, 1000, 0, bytes(16), False), self.now)
        before, after = self.durable()
        assert before.persist[0][0].type == OpCode.createSession
        assert not _frames(before, conn_id), "no ConnectResponse before createSession is durable"
        (resp,) = _frames(after, conn_id)
        cr = R.ConnectResponse.read(Reader(resp[4:]))
        assert cr.passwd == session_password(cr.sessionId)
        return cr.sessionId

    def request(self, conn_id, xid, op, rec):
        self.srv.request(conn_id, xid, op, memoryview(rec.to_bytes()), self.now)


def test_write_is_answered_only_after_logged():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/a", b"x", OPEN, 0))
    ready = h.step()
    assert [hdr.type for hdr, _ in ready.persist] == [OpCode.create]
    assert not _frames(ready, 1)
    assert "/a" not in h.srv.tree.nodes  # not applied before durable
    h.srv.logged(ready.persist[0][0].zxid, h.now)
    (reply,) = _frames(h.step(), 1)
    assert _reply(reply).err == Err.OK and "/a" in h.srv.tree.nodes


def test_read_waits_behind_the_same_sessions_write():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/a", b"x", OPEN, 0))
    h.request(1, 2, OpCode.getData, R.GetDataRequest("/a", False))
    ready = h.step()
    assert not _frames(ready, 1), "the read must not overtake the pending write"
    h.srv.logged(ready.persist[0][0].zxid, h.now)
    replies = [_reply(f) for f in _frames(h.step(), 1)]
    assert [(r.xid, r.err) for r in replies] == [(1, Err.OK), (2, Err.OK)]


def test_other_sessions_reads_do_not_see_undurable_writes():
    h = Harness()
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.create, R.CreateRequest("/a", b"x", OPEN, 0))
    h.request(2, 1, OpCode.exists, R.ExistsRequest("/a", False))
    (r,) = [_reply(f) for f in _frames(h.step(), 2)]
    assert r.err == Err.NONODE


def test_pipelined_writes_see_pending_changes():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/a", b"", OPEN, 0))
    h.request(1, 2, OpCode.create, R.CreateRequest("/a/b", b"", OPEN, 0))
    h.request(1, 3, OpCode.create, R.CreateRequest("/a/s-", b"", OPEN, 2))
    h.request(1, 4, OpCode.delete, R.DeleteRequest("/a", -1))
    before, after = h.durable()
    assert len(before.persist) == 4
    replies = [_reply(f) for f in _frames(after, 1)]
    assert [r.err for r in replies] == [Err.OK, Err.OK, Err.OK, Err.NOTEMPTY]
    assert [r.zxid for r in replies] == sorted(r.zxid for r in replies)
    assert "/a/s-0000000001" in h.srv.tree.nodes


def test_watch_event_precedes_later_reply():
    h = Harness()
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.create, R.CreateRequest("/w", b"", OPEN, 0))
    h.durable()
    h.request(2, 1, OpCode.getData, R.GetDataRequest("/w", True))
    h.step()
    h.request(1, 2, OpCode.setData, R.SetDataRequest("/w", b"new", -1))
    h.request(2, 2, OpCode.getData, R.GetDataRequest("/w", False))
    before, after = h.durable()
    frames = _frames(before, 2) + _frames(after, 2)
    kinds = [_reply(f).xid for f in frames]
    # the read that was answered before the change is durable sees old data...
    # ...and the notification (xid -1) arrives once the change is applied
    assert -1 in kinds
    ev_frame = frames[kinds.index(-1)]
    ev = R.WatcherEvent.read(Reader(ev_frame[20:]))
    assert (ev.type, ev.path) == (EventType.NodeDataChanged, "/w")


def _events(ready, conn_id):
    out = []
    for f in _frames(ready, conn_id):
        if _reply(f).xid == -1:
            ev = R.WatcherEvent.read(Reader(f[20:]))
            out.append((ev.type, ev.path))
    return out


def test_watch_event_needs_read_unless_skip_acl():
    """CVE-2024-23944: no READ on the node, no event; ZooKeeper's checkACL
    returns before looking at the ACL when skipACL is set (javap of
    ZooKeeperServer.checkACL in Debian's 3.8.0-11+deb12u2)."""
    for skip_acl, expect in ((False, []), (True, [(EventType.NodeCreated, "/w")])):
        h = Harness(skip_acl=skip_acl)
        h.open_session(1)
        h.open_session(2)
        h.request(2, 1, OpCode.exists, R.ExistsRequest("/w", True))
        h.step()
        h.request(1, 1, OpCode.create, R.CreateRequest("/w", b"", [R.ACL(30, OPEN[0].id)], 0))
        before, after = h.durable()
        assert _events(after, 2) == expect, skip_acl
        assert not h.srv.watches.data.get("/w"), "the one-shot watch is consumed either way"


def test_session_expiry_deletes_ephemerals_through_the_log():
    h = Harness()
    sid = h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/e", b"", OPEN, 1))
    h.durable()
    assert h.srv.tree.ephemerals == {sid: {"/e": None}}
    h.srv.connection_lost(1, h.now)
    h.now += 5_000
    h.srv.tick(h.now)
    before, _ = h.durable()
    assert [hdr.type for hdr, _ in before.persist] == [OpCode.closeSession]
    assert "/e" not in h.srv.tree.nodes and sid not in h.srv.sessions.sessions


def test_close_session_deletes_ephemerals_still_being_created():
    """ZooKeeper's PrepRequestProcessor adds the session's outstanding ephemeral
    creates to a closeSession's deletes (and takes the child from the parent's
    pending count), so a create of that path right after the close succeeds.
    Found by the simulator (tests/test_zab_sim.py REGRESSION_SEEDS)."""
    h = Harness()
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.create, R.CreateRequest("/p", b"", OPEN, 0))
    h.durable()
    h.request(1, 2, OpCode.create, R.CreateRequest("/p/e", b"", OPEN, 1))   # ephemeral, pending
    h.request(1, 3, OpCode.closeSession, R.CloseSessionTxn([]))              # body ignored
    h.request(2, 1, OpCode.create, R.CreateRequest("/p/e", b"", OPEN, 0))
    h.request(2, 2, OpCode.delete, R.DeleteRequest("/p", -1))                 # /p still has /p/e
    before, after = h.durable()
    close = [txn for hdr, txn in before.persist if hdr.type == OpCode.closeSession]
    assert close[0].paths2Delete == ["/p/e"]
    replies = [_reply(f) for f in _frames(after, 2)]
    assert [r.err for r in replies] == [Err.OK, Err.NOTEMPTY]
    assert h.srv.tree.nodes["/p/e"].ephemeral_owner == 0


def test_write_of_a_closing_session_becomes_a_sessionexpired_error_txn():
    """ZooKeeper's prep calls checkSession first: a write of a session that is
    closing (or gone) is logged as ErrorTxn(SESSIONEXPIRED), never applied.
    Found by the simulator (tests/test_zab_sim.py REGRESSION_SEEDS, seed 90)."""
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/k", b"", OPEN, 0))
    h.durable()
    h.request(1, 2, OpCode.closeSession, R.CloseSessionTxn([]))
    h.request(1, 3, OpCode.setData, R.SetDataRequest("/k", b"late", -1))
    before, _ = h.durable()
    (hdr, txn), = [(hd, t) for hd, t in before.persist if hd.cxid == 3]
    assert (hdr.type, txn.err) == (OpCode.error, Err.SESSIONEXPIRED)
    assert h.srv.tree.nodes["/k"].data == b""


def test_failed_write_consumes_a_zxid():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.delete, R.DeleteRequest("/missing", -1))
    before, after = h.durable()
    (hdr, txn), = before.persist
    assert hdr.type == OpCode.error and txn.err == Err.NONODE
    assert _reply(_frames(after, 1)[0]).zxid == hdr.zxid


def test_failed_multi_changes_nothing():
    h = Harness()
    h.open_session(1)
    body = (R.MultiHeader(OpCode.create, False, -1).to_bytes()
            + R.CreateRequest("/m1", b"", OPEN, 0).to_bytes()
            + R.MultiHeader(OpCode.delete, False, -1).to_bytes()
            + R.DeleteRequest("/nope", -1).to_bytes()
            + R.MultiHeader(OpCode.create, False, -1).to_bytes()
            + R.CreateRequest("/m2", b"", OPEN, 0).to_bytes()
            + R.MultiHeader(-1, True, -1).to_bytes())
    h.srv.request(1, 1, OpCode.multi, memoryview(body), h.now)
    _, after = h.durable()
    (f,) = _frames(after, 1)
    r = Reader(f[20:])
    errs = []
    for _ in range(3):
        mh = R.MultiHeader.read(r)
        errs.append(R.ErrorResponse.read(r).err)
        assert mh.type == OpCode.error
    assert errs == [Err.OK, Err.NONODE, Err.RUNTIMEINCONSISTENCY]
    assert "/m1" not in h.srv.tree.nodes and "/m2" not in h.srv.tree.nodes


def test_log_failure_stops_writes_but_reads_go_on():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.create, R.CreateRequest("/a", b"", OPEN, 0))
    h.step()
    h.srv.log_failed("No space left on device")
    ready = h.step()
    assert any(level == "error" and "transaction log" in line for level, line in ready.logs)
    assert _reply(_frames(ready, 1)[0]).err == Err.SYSTEMERROR
    h.request(1, 2, OpCode.exists, R.ExistsRequest("/", False))
    assert _reply(_frames(h.step(), 1)[0]).err == Err.OK
    h.request(1, 3, OpCode.create, R.CreateRequest("/b", b"", OPEN, 0))
    ready = h.step()
    assert not ready.persist and _reply(_frames(ready, 1)[0]).err == Err.SYSTEMERROR


def test_frame_length_prefix_matches_payload():
    h = Harness()
    h.open_session(1)
    h.request(1, 1, OpCode.exists, R.ExistsRequest("/", False))
    (f,) = _frames(h.step(), 1)
    assert struct.unpack(">i", f[:4])[0] == len(f) - 4


def test_a_long_child_list_is_encoded_in_parts_and_then_cached():
    """Issue 12: the first getChildren after a change encodes the whole list;
    a list longer than limits.CHILDREN_ENCODE_PER_PART is encoded a part
    per ``work`` call, while another connection's read is answered; the
    read is answered once the list is done, from the cache it leaves."""
    from zabpy import limits

    h = Harness()
    n = 2 * limits.CHILDREN_ENCODE_PER_PART + 1
    tree = h.srv.tree
    tree.create_node("/big", b"", tuple(OPEN), 0, 1, 2, 0)
    for i in range(n):
        tree.create_node(f"/big/c{i:06d}", b"", tuple(OPEN), 0, i + 2, i + 3, 0)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getChildren2, R.GetChildren2Request("/big", False))
    assert not _frames(h.step(), 1) and h.srv.busy
    h.request(2, 1, OpCode.exists, R.ExistsRequest("/big", False))
    assert len(_frames(h.step(), 2)) == 1          # the other connection goes on
    parts = 0
    while h.srv.busy:
        h.srv.work(h.now)
        parts += 1
        frames = _frames(h.step(), 1)
        assert not frames or not h.srv.busy
    assert parts == 3
    resp = R.GetChildren2Response.read(Reader(frames[0][4 + 16:]))
    assert len(resp.children) == n and resp.children[-1] == f"c{n - 1:06d}"
    assert tree.nodes["/big"].children_wire is not None
    h.request(1, 2, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    assert len(_frames(h.step(), 1)) == 1 and not h.srv.busy   # from the cache at once


def test_a_create_under_a_list_being_encoded_waits_for_it():
    """Issue 19: while a long child list is encoded in parts, a create
    under that node waits (its txn is durable, not applied): the list is
    answered as of the moment it is done, without the new child, and no
    whole re-encode follows; the create is applied and answered after it,
    and the next listing shows it. A create elsewhere is applied at once."""
    from zabpy import limits

    h = Harness()
    n = limits.CHILDREN_ENCODE_PER_PART + 1
    _wide(h, n)
    h.srv.tree.create_node("/other", b"", tuple(OPEN), 0, 1, 2, 0)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    assert h.srv.busy
    h.request(2, 1, OpCode.create, R.CreateRequest("/big/late", b"", OPEN, 0))
    h.request(2, 2, OpCode.create, R.CreateRequest("/other/x", b"", OPEN, 0))
    before, after = h.durable()
    assert len(before.persist) == 2
    assert not _frames(after, 2) and "/big/late" not in h.srv.tree.nodes
    assert "/other/x" not in h.srv.tree.nodes   # in order: behind the held create
    while h.srv.busy:
        h.srv.work(h.now)
    ready = h.step()
    (listing,) = _frames(ready, 1)
    resp = R.GetChildrenResponse.read(Reader(listing[4 + 16:]))
    assert len(resp.children) == n and "late" not in resp.children
    assert [_reply(f).err for f in _frames(ready, 2)] == [Err.OK, Err.OK]
    h.request(1, 2, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    while h.srv.busy:
        h.srv.work(h.now)
    (listing,) = _frames(h.step(), 1)
    assert "late" in R.GetChildrenResponse.read(Reader(listing[4 + 16:])).children


def test_a_create_elsewhere_is_applied_while_a_list_is_encoded():
    from zabpy import limits

    h = Harness()
    _wide(h, limits.CHILDREN_ENCODE_PER_PART + 1)
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    h.request(2, 1, OpCode.create, R.CreateRequest("/elsewhere", b"", OPEN, 0))
    _, after = h.durable()
    assert [_reply(f).err for f in _frames(after, 2)] == [Err.OK] and h.srv.busy


def _split_frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">i", data, pos)
        out.append(data[pos:pos + 4 + n])
        pos += 4 + n
    return out


def _wide(h: Harness, n: int) -> None:
    tree = h.srv.tree
    tree.create_node("/big", b"", tuple(OPEN), 0, 1, 2, 0)
    for i in range(n):
        tree.create_node(f"/big/c{i:06d}", b"", tuple(OPEN), 0, i + 2, i + 3, 0)
    tree.last_processed_zxid = n + 2


def test_a_long_reply_goes_out_a_part_per_turn_and_what_follows_it_waits():
    """Issue 19: a getChildren2 reply of 1.1 MB (100,000 names) is sent
    limits.REPLY_BYTES_PER_PART a ``work`` call, straight from the node's
    cached list, as of the read's place in the order: a child created
    while it goes out is not in it; the child watch it set fires, and the
    event follows the reply, then the same session's next reply (which
    shows the child), never in between. Another session is served at once."""
    from zabpy import limits
    from zabpy.server.standalone import frame

    h = Harness()
    n = 100_000
    _wide(h, n)
    node = h.srv.tree.nodes["/big"]
    wire = node.encoded_children()   # cached, as after a first listing
    for sid in (1, 2, 3):
        h.open_session(sid)
    want = frame(1, h.srv.tree.last_processed_zxid, 0, wire + node.stat_bytes())
    h.request(1, 1, OpCode.getChildren2, R.GetChildren2Request("/big", True))
    h.request(1, 2, OpCode.exists, R.ExistsRequest("/big", False))
    got = _frames(h.step(), 1)
    assert len(got) == 1 and len(got[0]) <= 2 * limits.REPLY_BYTES_PER_PART and h.srv.busy
    h.request(2, 1, OpCode.exists, R.ExistsRequest("/big", False))
    assert len(_frames(h.step(), 2)) == 1            # the other connection goes on
    h.request(3, 1, OpCode.create, R.CreateRequest("/big/late", b"", OPEN, 0))
    before, after = h.durable()
    got += _frames(after, 1)
    assert len(_frames(after, 3)) == 1               # the create is answered
    turns = 0
    while h.srv.busy:
        h.srv.work(h.now)
        got += _frames(h.step(), 1)
        turns += 1
    assert turns >= len(want) // (2 * limits.REPLY_BYTES_PER_PART)
    reply, event, exists = _split_frames(b"".join(got))
    assert reply == want                              # byte for byte, without /big/late
    assert _reply(event).xid == -1
    ev = R.WatcherEvent.read(Reader(event[4 + 16:]))
    assert (ev.type, ev.path) == (EventType.NodeChildrenChanged, "/big")
    assert _reply(exists).xid == 2
    assert R.ExistsResponse.read(Reader(exists[4 + 16:])).stat.numChildren == n + 1


def test_a_long_reply_waits_for_its_send_budget():
    """The parts of a long reply go out while the connection's send budget
    lasts (zabpy.maxQueuedBytesPerConnection less what its client has not
    read); then the core waits, not busy, for the runtime's grant."""
    from zabpy import limits

    h = Harness(send_budget_bytes=3 * limits.REPLY_BYTES_PER_PART)
    _wide(h, 100_000)
    h.srv.tree.nodes["/big"].encoded_children()
    h.open_session(1)
    h.request(1, 1, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    sent = sum(map(len, _frames(h.step(), 1)))
    while h.srv.busy:
        h.srv.work(h.now)
        sent += sum(map(len, _frames(h.step(), 1)))
    assert 3 * limits.REPLY_BYTES_PER_PART <= sent < 100_000 * 11
    h.srv.grant(1, 10 * limits.REPLY_BYTES_PER_PART, h.now)
    assert h.srv.busy
    while h.srv.busy:
        h.srv.work(h.now)
        sent += sum(map(len, _frames(h.step(), 1)))
    assert sent == 4 + 16 + 4 + 100_000 * 11


def test_a_connection_closes_only_after_its_long_reply_is_out():
    """The session expires while a long reply to it goes out in parts: the
    connection is closed after the last part, never before (the bytes
    already promised to the client are not cut off mid-frame)."""
    h = Harness()
    _wide(h, 100_000)
    h.srv.tree.nodes["/big"].encoded_children()
    h.open_session(1)
    h.request(1, 1, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    sent = _frames(h.step(), 1)
    assert h.srv.busy
    h.now += 10_000
    h.srv.tick(h.now)                    # the session expires: closeSession
    closed_at = None
    for turn in range(100):
        ready = h.step()
        sent += _frames(ready, 1)
        if ready.persist:
            h.srv.logged(ready.persist[-1][0].zxid, h.now)
        if 1 in ready.close:
            closed_at = turn
            break
        h.srv.work(h.now)
    assert closed_at is not None and not h.srv.busy
    (reply,) = _split_frames(b"".join(sent))
    assert _reply(reply).xid == 1 and len(reply) == 4 + 16 + 4 + 100_000 * 11


def test_long_replies_to_many_connections_take_turns():
    """Eight connections read the same long list at once: a ``work`` call
    hands out about limits.REPLY_BYTES_PER_TURN in all, the connections
    taking turns, and each gets its whole reply."""
    from zabpy import limits
    from zabpy.server.standalone import frame

    h = Harness()
    _wide(h, 100_000)
    node = h.srv.tree.nodes["/big"]
    want_body = node.encoded_children()
    conns = range(1, 9)
    for c in conns:
        h.open_session(c)
    zxid = h.srv.tree.last_processed_zxid
    for c in conns:
        h.request(c, 1, OpCode.getChildren, R.GetChildrenRequest("/big", False))
    first = h.step()
    got = {c: _frames(first, c) for c in conns}
    while h.srv.busy:
        h.srv.work(h.now)
        ready = h.step()
        assert sum(len(d) for _, d in ready.send) <= (limits.REPLY_BYTES_PER_TURN
                                                      + limits.REPLY_BYTES_PER_PART)
        for c in conns:
            got[c] += _frames(ready, c)
    for c in conns:
        assert b"".join(got[c]) == frame(1, zxid, 0, want_body)


def _owner_of_many(h, n: int) -> None:
    """Session 1 owns ``n`` ephemerals /p/eNNNNN; session 2 is open."""
    h.open_session(1)
    h.open_session(2)
    h.request(1, 1, OpCode.create, R.CreateRequest("/p", b"", OPEN, 0))
    for i in range(n):
        h.request(1, 2 + i, OpCode.create, R.CreateRequest(f"/p/e{i:05d}", b"", OPEN, 1))
    h.durable()
    assert len(h.srv.tree.nodes["/p"].children) == n


def test_a_watch_set_while_a_large_close_is_applied_gets_its_event():
    """Issue 19: a closeSession of 1,200 ephemerals is applied 500 per part
    (sliced.SlicedClose). With no watch anywhere a part keeps no events;
    a watch set between parts on an ephemeral not yet deleted still gets
    its NodeDeleted, from the part that deletes it."""
    h = Harness()
    _owner_of_many(h, 1200)
    h.request(1, 9999, OpCode.closeSession, R.CloseSessionTxn([]))
    h.durable()   # logged: the close is under way
    h.srv.work(h.now)   # its first part
    sliced = h.srv._sliced
    assert sliced is not None and 0 < sliced.applied < 1200
    assert sliced.out.triggers == []   # nobody watches: nothing kept
    h.request(2, 1, OpCode.exists, R.ExistsRequest("/p/e01100", True))
    (reply,) = _frames(h.step(), 2)
    assert _reply(reply).err == Err.OK   # not deleted yet, answered at once: a watch
    frames = []
    while h.srv.busy:
        h.srv.work(h.now)
        frames += _frames(h.step(), 2)
    assert "/p/e01100" not in h.srv.tree.nodes and not h.srv.tree.nodes["/p"].children
    events = [R.WatcherEvent.read(Reader(f[20:])) for f in frames if _reply(f).xid == -1]
    assert [(e.type, e.path) for e in events] == [(EventType.NodeDeleted, "/p/e01100")]


def _pump(h, log: list, sent: dict) -> None:
    """Make durable whatever is persisted and work until the core is idle."""
    while True:
        ready = h.step()
        log.extend(ready.persist)
        for c in sent:
            sent[c] += _frames(ready, c)
        if ready.persist:
            h.srv.logged(ready.persist[-1][0].zxid, h.now)
        elif h.srv.busy:
            h.srv.work(h.now)
        elif not ready:
            return


def _close_of_many(h, name: str, n: int):
    """Session 1 owns ``n`` ephemerals /p/<name>NNNNN and 40 /p/q/fNNN (two
    depths), makes one more and closes, the close pipelined behind it;
    session 2 watches some of them and reads one meanwhile; session 3
    writes behind the close. Returns what the log got, what each
    connection was sent, the tree's nodes and digest."""
    from zabpy.storage.snapshot import tree_digest

    for c in (1, 2, 3):
        h.open_session(c)
    h.request(1, 1, OpCode.create, R.CreateRequest("/p", b"", OPEN, 0))
    h.request(1, 2, OpCode.create, R.CreateRequest("/p/q", b"", OPEN, 0))
    for i in range(n):
        h.request(1, 3 + i, OpCode.create, R.CreateRequest(f"/p/{name}{i:05d}", b"", OPEN, 1))
    for i in range(40):
        h.request(1, 3 + n + i, OpCode.create, R.CreateRequest(f"/p/q/f{i:03d}", b"d", OPEN, 1))
    h.durable()
    log: list = []
    sent: dict = {1: [], 2: [], 3: []}
    for xid, path in enumerate((f"/p/{name}00007", "/p/q/f005", f"/p/{name}{n - 1:05d}")):
        h.request(2, 1 + xid, OpCode.exists, R.ExistsRequest(path, True))
    h.request(2, 4, OpCode.getChildren, R.GetChildrenRequest("/p/q", True))
    h.request(1, 9_000, OpCode.create, R.CreateRequest("/p/late", b"", OPEN, 1))
    h.request(1, 9_001, OpCode.closeSession, R.CloseSessionTxn([]))
    h.request(3, 1, OpCode.create, R.CreateRequest("/p/after", b"", OPEN, 0))
    h.request(3, 2, OpCode.delete, R.DeleteRequest("/p/q", -1))   # empty after the close
    h.request(2, 5, OpCode.getData, R.GetDataRequest(f"/p/{name}00050", False))
    _pump(h, log, sent)
    nodes = {p: (node.stat_bytes(), node.data) for p, node in h.srv.tree.nodes.items()}
    return log, sent, nodes, tree_digest(h.srv.tree)


def test_a_close_prepared_and_applied_in_parts_is_the_whole_close():
    """Issue 19: a closeSession of many ephemerals is prepared
    (``SlicedClosePrep``), put in order and applied (``SlicedClose``) in
    parts; the log, every reply and watch event, and the tree (its digest
    too) are those of the close made in one step: with the paths listed in
    the txn, and with names so long that the list passes
    limits.CLOSE_SESSION_PATHS_BYTES_MAX and the txn has none."""
    for name, n in (("e", 160), ("x" * 990, 1100)):
        parts = _close_of_many(Harness(close_paths_per_part=50, close_deletes_per_part=20),
                               name, n)
        whole = _close_of_many(Harness(multi_ops_per_part=0), name, n)
        assert parts[0] == whole[0]
        assert parts[1] == whole[1] and parts[2] == whole[2] and parts[3] == whole[3]
        (close,) = [txn for hdr, txn in whole[0] if hdr.type == OpCode.closeSession]
        if n == 160:
            assert close.paths2Delete == sorted(
                [f"/p/e{i:05d}" for i in range(n)] + [f"/p/q/f{i:03d}" for i in range(40)]
                + ["/p/late"])
        else:
            assert close is None
        events = [(t, p) for t, p in (_event(f) for f in parts[1][2]) if t is not None]
        assert events == [(EventType.NodeChildrenChanged, "/p/q"),   # at /p/q/f000
                          (EventType.NodeDeleted, "/p/q/f005"),
                          (EventType.NodeDeleted, f"/p/{name}00007"),
                          (EventType.NodeDeleted, f"/p/{name}{n - 1:05d}")]
        assert [_reply(f).err for f in parts[1][3]] == [Err.OK, Err.OK]


def _event(f: bytes):
    if _reply(f).xid != -1:
        return None, None
    ev = R.WatcherEvent.read(Reader(f[20:]))
    return ev.type, ev.path


def test_reads_and_writes_while_a_large_close_is_prepared_and_applied():
    """While the close is prepared in parts, other sessions' reads are
    answered at once (the tree is the one before it) and their writes
    wait (they take later zxids); while its deletes are put in order
    nothing is deleted yet, and a watch set then gets its event; once parts
    delete, a read of a path not yet deleted is answered at once, a read of
    a deleted one and the writes behind the close wait for all of it."""
    h = Harness(close_paths_per_part=50, close_deletes_per_part=20)
    _owner_of_many(h, 300)
    h.open_session(3)
    h.request(1, 9_000, OpCode.closeSession, R.CloseSessionTxn([]))
    h.request(3, 1, OpCode.create, R.CreateRequest("/after", b"", OPEN, 0))
    ready = h.step()
    assert not ready.persist, "prepared in parts: nothing logged yet, the create behind it waits"
    h.srv.work(h.now)
    h.request(2, 1, OpCode.getData, R.GetDataRequest("/p/e00299", False))
    (reply,) = _frames(h.step(), 2)
    assert _reply(reply).err == Err.OK
    steps = 1
    while True:
        ready = h.step()
        if ready.persist:
            break
        h.srv.work(h.now)
        steps += 1
        assert steps < 50
    assert steps >= 300 // 50, "one part per 50 paths"
    # the close's turn came: it and the create that waited behind it, in order
    assert [hdr.type for hdr, _ in ready.persist] == [OpCode.closeSession, OpCode.create]
    h.srv.logged(ready.persist[-1][0].zxid, h.now)
    h.srv.work(h.now)   # ordering its deletes, 50 paths a part: nothing deleted yet
    assert h.srv._sliced is not None and h.srv._sliced.applied == 0
    assert len(h.srv.tree.nodes["/p"].children) == 300
    h.request(2, 2, OpCode.exists, R.ExistsRequest("/p/e00299", True))
    (reply,) = _frames(h.step(), 2)
    assert _reply(reply).err == Err.OK
    while h.srv._sliced.applied == 0:
        h.srv.work(h.now)
    h.request(2, 3, OpCode.getData, R.GetDataRequest("/p/e00290", False))   # not deleted yet
    h.request(2, 4, OpCode.getData, R.GetDataRequest("/p/e00000", False))   # deleted
    frames = _frames(h.step(), 2)
    assert [(_reply(f).xid, _reply(f).err) for f in frames] == [(3, Err.OK)]
    assert "/after" not in h.srv.tree.nodes
    while h.srv.busy:
        h.srv.work(h.now)
        frames += _frames(h.step(), 2)
    frames += _frames(h.step(), 2)
    assert [_event(f) for f in frames if _reply(f).xid == -1] == \
        [(EventType.NodeDeleted, "/p/e00299")]
    assert [(_reply(f).xid, _reply(f).err) for f in frames if _reply(f).xid != -1] == \
        [(3, Err.OK), (4, Err.NONODE)]
    assert "/after" in h.srv.tree.nodes and not h.srv.tree.nodes["/p"].children


def test_while_a_close_deletes_reads_under_its_parents_wait_and_others_do_not():
    """SlicedClose keeps no record per deleted path: once parts delete, a
    read of a parent of the close's paths, or of one of their children no
    longer in the tree (deleted, or never there: no other txn is applied
    meanwhile, so waiting changes no answer), waits for the whole close;
    a read of a child still there, or of any path elsewhere, is answered
    at once."""
    h = Harness(close_paths_per_part=50, close_deletes_per_part=20)
    _owner_of_many(h, 100)
    h.request(2, 1, OpCode.create, R.CreateRequest("/q", b"", OPEN, 0))
    h.durable()
    h.request(1, 9_000, OpCode.closeSession, R.CloseSessionTxn([]))
    while h.srv._prepping is not None:   # prepared in parts
        h.srv.work(h.now)
    h.durable()
    while not h.srv._sliced.applied:
        h.srv.work(h.now)
    reads = [("/p/e00099", Err.OK), ("/q/none", Err.NONODE), ("/q", Err.OK),
             ("/p/never", None), ("/p/e00001", None), ("/p", None)]
    for xid, (path, _) in enumerate(reads, 1):
        h.request(2, 100 + xid, OpCode.exists, R.ExistsRequest(path, False))
    at_once = [(_reply(f).xid - 100, _reply(f).err) for f in _frames(h.step(), 2)]
    # replies leave in request order: the first read that waits holds the rest
    assert at_once == [(1, Err.OK), (2, Err.NONODE), (3, Err.OK)]
    while h.srv.busy:
        h.srv.work(h.now)
    later = [(_reply(f).xid - 100, _reply(f).err) for f in _frames(h.step(), 2)]
    assert later == [(4, Err.NONODE), (5, Err.NONODE), (6, Err.OK)]
