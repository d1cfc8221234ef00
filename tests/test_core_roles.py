"""Leader and learner server cores wired by hand (no ZAB, no sockets): a
learner's client writes travel as forwarded requests, are prepared by the
leader, and answered by the learner when the commit comes back; reads are
local and wait behind the session's own forwarded writes."""

from __future__ import annotations

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, EventType, OpCode
from zabpy.server import LeaderServer, LearnerServer, ServerSettings
from zabpy.session import session_password

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _settings(sid):
    return ServerSettings(server_id=sid, tick_ms=100, session_timeout_ms_min=200,
                          session_timeout_ms_max=5000)


class Pair:
    """Leader (sid 1) and one learner (sid 2); ``pump`` plays ZAB's part:
    forwarded requests go to the leader, its txns commit at once and reach
    the learner in zxid order."""

    def __init__(self):
        self.now = 1000
        self.leader = LeaderServer(_settings(1), self.now)
        self.leader.start_epoch(1)
        self.learner = LearnerServer(_settings(2), self.now)
        self.sent: dict[int, list[bytes]] = {}

    def pump(self):
        for _ in range(10):
            lr = self.learner.ready()
            self.learner.advance(lr)
            for cid, data in lr.send:
                self.sent.setdefault(cid, []).append(data)
            for sid, cxid, op, body, ids in lr.forward:
                self.leader.submit_forwarded(sid, cxid, op, body, ids, self.now)
            ld = self.leader.ready()
            self.leader.advance(ld)
            if ld.persist:
                self.leader.logged(ld.persist[-1][0].zxid, self.now)
                for hdr, txn in ld.persist:
                    self.learner.apply_committed(hdr, txn, self.now)
            if not (lr or ld):
                return

    def replies(self, cid):
        out = [R.ReplyHeader.read(Reader(f[4:])) for f in self.sent.get(cid, [])]
        self.sent[cid] = []
        return out


def _connect(pair: Pair, cid: int) -> int:
    pair.learner.connection_made(cid, "127.0.0.1", pair.now)
    pair.learner.connect(cid, R.ConnectRequest(0, 0, 1000, 0, bytes(16), False), pair.now)
    pair.pump()
    (frame,) = pair.sent.pop(cid)
    resp = R.ConnectResponse.read(Reader(frame[4:]))
    assert resp.timeOut == 1000 and (resp.sessionId >> 56) == 2  # learner's id in the top byte
    return resp.sessionId


def test_session_created_through_the_leader():
    p = Pair()
    sid = _connect(p, 7)
    assert sid in p.leader.sessions.sessions and sid in p.learner.sessions.sessions


def test_write_forwarded_and_answered_on_commit_then_read_is_local():
    p = Pair()
    _connect(p, 7)
    p.learner.request(7, 1, OpCode.create, memoryview(R.CreateRequest("/x", b"v", OPEN, 0).to_bytes()), p.now)
    p.learner.request(7, 2, OpCode.getData, memoryview(R.GetDataRequest("/x", False).to_bytes()), p.now)
    assert not p.learner.ready().send  # the read waits behind the forwarded write
    p.pump()
    r1, r2 = p.replies(7)
    assert (r1.xid, r1.err, r2.xid, r2.err) == (1, Err.OK, 2, Err.OK)
    assert r1.zxid >> 32 == 1  # a zxid of the leader's epoch
    assert p.leader.tree.nodes["/x"].data == p.learner.tree.nodes["/x"].data == b"v"


def test_error_from_leader_prep_reaches_the_learners_client():
    p = Pair()
    _connect(p, 7)
    p.learner.request(7, 1, OpCode.delete, memoryview(R.DeleteRequest("/nope", -1).to_bytes()), p.now)
    p.pump()
    (r,) = p.replies(7)
    assert r.err == Err.NONODE


def test_watch_on_learner_fires_for_another_learner_clients_write():
    p = Pair()
    _connect(p, 7)
    _connect(p, 8)
    p.learner.request(8, 1, OpCode.exists, memoryview(R.ExistsRequest("/w", True).to_bytes()), p.now)
    p.pump()
    p.replies(8)
    p.learner.request(7, 1, OpCode.create, memoryview(R.CreateRequest("/w", b"", OPEN, 0).to_bytes()), p.now)
    p.pump()
    frames = p.sent[8]
    ev = R.WatcherEvent.read(Reader(frames[0][20:]))
    assert (ev.type, ev.path) == (EventType.NodeCreated, "/w")


def test_learner_never_expires_sessions_leader_does():
    p = Pair()
    sid = _connect(p, 7)
    p.learner.connection_lost(7, p.now)
    p.now += 10_000
    p.learner.tick(p.now)
    assert not p.learner.ready().forward and not p.learner.ready().persist
    p.leader.tick(p.now)
    p.pump()
    assert sid not in p.leader.sessions.sessions and sid not in p.learner.sessions.sessions


def test_touches_keep_a_learners_session_alive_on_the_leader():
    p = Pair()
    sid = _connect(p, 7)
    for _ in range(5):
        p.now += 800
        p.learner.request(7, -2, OpCode.ping, memoryview(b""), p.now)
        p.leader.touch_sessions(p.learner.take_touches(), p.now)
        p.leader.tick(p.now)
        p.pump()
    assert sid in p.leader.sessions.sessions


def test_close_session_of_a_learner_client_is_answered():
    """The closeSession txn carries the client's cxid, so the learner can
    answer the close it forwarded (the client waits for that reply)."""
    p = Pair()
    sid = _connect(p, 7)
    p.learner.request(7, 9, OpCode.closeSession, memoryview(b""), p.now)
    p.pump()
    (r,) = p.replies(7)
    assert (r.xid, r.err) == (9, Err.OK)
    assert 7 in p.learner.ready().close or sid not in p.learner.sessions.sessions


def test_reconnect_to_a_learner_waits_for_the_leaders_revalidate():
    """ZooKeeper's REVALIDATE: the learner attaches a reconnecting session
    only once the leader says it is alive."""
    p = Pair()
    sid = _connect(p, 7)
    passwd = session_password(sid)
    p.learner.connection_lost(7, p.now)
    p.learner.connection_made(8, "127.0.0.1", p.now)
    p.learner.connect(8, R.ConnectRequest(0, 0, 1000, sid, passwd, False), p.now)
    ready = p.learner.ready()
    p.learner.advance(ready)
    assert ready.revalidate == ((sid, 1000),) and not ready.send
    p.learner.revalidated(sid, sid in p.leader.sessions.sessions, p.now)
    (frame,) = p.learner.ready().send
    assert R.ConnectResponse.read(Reader(frame[1][4:])).sessionId == sid
    # a session the leader no longer knows is refused
    p.learner.connection_made(9, "127.0.0.1", p.now)
    p.learner.connect(9, R.ConnectRequest(0, 0, 1000, sid, passwd, False), p.now)
    p.learner.revalidated(sid, False, p.now)
    ready = p.learner.ready()
    resp = R.ConnectResponse.read(Reader(ready.send[-1][1][4:]))
    assert (resp.sessionId, resp.timeOut) == (0, 0) and 9 in ready.close
