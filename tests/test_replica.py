"""The Replica without sockets: the object the asyncio host and the simulator drive.

A tiny executor (``Cluster``) delivers every message at once and in order,
and makes disk writes durable when the test says so, so each test can stop
between "logged" and "durable" and look at the Ready. References: the Zab
paper §3 (phases), facts 3.5 (ZooKeeper's packets), and the ordering rule
"txns durable, then the epoch, then the ack" (ZOOKEEPER-4643/4646/4785).
"""

from __future__ import annotations

import random

import pytest

from zabpy.election import MajorityQuorum, ServerState
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, EventType, OpCode
from zabpy.protocol.connection import Connect, Request
from zabpy.server import ServerSettings
from zabpy.server.replica import Dial, Replica, Send
from zabpy.session import session_password
from zabpy.tree.datatree import DataTree
from zabpy.zab import packets as P
from zabpy.zab.leader import ZabTimers
from zabpy.zab.packets import PacketType as T

OPEN = [R.ACL(31, R.Id("world", "anyone"))]
TIMERS = ZabTimers(tick_ms=100, init_limit=10, sync_limit=5)


class Cluster:
    """Replicas joined by perfect FIFO links; durable on demand (or at once)."""

    def __init__(self, n: int = 3, auto_durable: bool = True):
        self.now = 1000
        self.auto_durable = auto_durable
        quorum = MajorityQuorum(list(range(1, n + 1)))
        self.replicas = {
            sid: Replica(ServerSettings(server_id=sid, tick_ms=100, session_timeout_ms_min=200,
                                        session_timeout_ms_max=5000), quorum, DataTree(), {}, 0,
                         0, random.Random(sid), self.now, timers=TIMERS)
            for sid in quorum.voters}
        self.pending_disk: dict[int, list] = {sid: [] for sid in self.replicas}
        self.inbox: list = []            # (dst, kind, src, payload)
        self.client_out: dict[int, list[bytes]] = {}
        self.closed: list[int] = []
        self.linked: dict[int, set] = {sid: set() for sid in self.replicas}
        for r in self.replicas.values():
            r.start(self.now)
        self.flush_all()

    def flush(self, sid: int):
        r = self.replicas[sid]
        while (ready := r.ready()):
            for w in ready.disk:
                self.pending_disk[sid].append(w)
            for dst, n in ready.election:
                self.inbox.append((dst, "election", sid, n))
            for op in ready.quorum:
                if isinstance(op, Send):
                    self.inbox.append((op.server_id, "quorum", sid, op.packet))
                elif isinstance(op, Dial):
                    self.linked[sid].add(op.server_id)
            for cid, data in ready.client_send:
                self.client_out.setdefault(cid, []).append(data)
            self.closed.extend(ready.client_close)
            r.advance(ready)

    def make_durable(self, sid: int):
        writes, self.pending_disk[sid] = self.pending_disk[sid], []
        if writes:
            assert not any(w.reloads for w in writes), "this executor keeps no disk to reload"
            self.replicas[sid].durable(writes[-1].token, self.now)
            self.flush(sid)

    def flush_all(self):
        for sid in self.replicas:
            self.flush(sid)

    def run(self, rounds: int = 200):
        for _ in range(rounds):
            if self.auto_durable:
                for sid in self.replicas:
                    self.make_durable(sid)
            if not self.inbox:
                if not self.auto_durable or not any(self.pending_disk.values()):
                    return
                continue
            batch, self.inbox = self.inbox, []
            self.deliver(batch)

    def deliver(self, batch: list):
        """Hands each message of one turn to its member, one at a time."""
        for dst, kind, src, payload in batch:
            r = self.replicas[dst]
            if kind == "election":
                r.election_received(src, payload, self.now)
            else:
                r.quorum_received(src, payload, self.now)
            self.flush(dst)

    def tick(self, ms: int):
        self.now += ms
        for sid, r in self.replicas.items():
            r.tick(self.now)
            self.flush(sid)
        self.run()

    def settle(self):
        """Advance virtual time deadline by deadline until every replica serves."""
        for _ in range(100):
            self.run()
            if all(r.serving for r in self.replicas.values()):
                return
            deadlines = [r.next_deadline_ms() for r in self.replicas.values()]
            self.now = max(self.now, min(d for d in deadlines if d is not None))
            for sid, r in self.replicas.items():
                r.tick(self.now)
                self.flush(sid)
        raise AssertionError("the ensemble did not settle")

    def leader(self) -> int:
        (sid,) = [s for s, r in self.replicas.items() if r.peer.state == ServerState.LEADING]
        return sid

    def follower(self) -> int:
        return next(s for s, r in self.replicas.items() if r.peer.state == ServerState.FOLLOWING)

    # ---- a raw client on one replica ----------------------------------------------
    def connect(self, sid: int, cid: int, session_id: int = 0, passwd: bytes = bytes(16)) -> R.ConnectResponse:
        r = self.replicas[sid]
        r.client_connected(cid, "127.0.0.1", self.now)
        r.client_event(cid, Connect(R.ConnectRequest(0, 0, 1000, session_id, passwd, False)),
                       self.now)
        self.flush(sid)
        self.run()
        (frame,) = self.client_out.pop(cid)
        return R.ConnectResponse.read(Reader(frame[4:]))

    def request(self, sid: int, cid: int, xid: int, op: int, req=None):
        body = memoryview(req.to_bytes() if req is not None else b"")
        self.replicas[sid].client_event(cid, Request(xid, op, body), self.now)
        self.flush(sid)

    def replies(self, cid: int) -> list[R.ReplyHeader]:
        return [R.ReplyHeader.read(Reader(f[4:])) for f in self.client_out.pop(cid, [])]


@pytest.fixture
def cluster():
    c = Cluster()
    c.settle()
    return c


def test_three_replicas_elect_and_serve(cluster):
    states = sorted(r.peer.state for r in cluster.replicas.values())
    assert states == [ServerState.FOLLOWING, ServerState.FOLLOWING, ServerState.LEADING]
    assert cluster.replicas[cluster.leader()].mode == "leader"


def test_write_on_a_follower_is_answered_after_commit_and_reads_are_local(cluster):
    f = cluster.follower()
    resp = cluster.connect(f, 7)
    assert resp.timeOut == 1000 and resp.sessionId >> 56 == f   # the learner's id in the top byte
    cluster.request(f, 7, 1, OpCode.create, R.CreateRequest("/x", b"v", OPEN, 0))
    cluster.request(f, 7, 2, OpCode.getData, R.GetDataRequest("/x", False))
    assert 7 not in cluster.client_out        # the read waits behind the forwarded write
    cluster.run()
    r1, r2 = cluster.replies(7)
    assert (r1.xid, r1.err, r2.xid, r2.err) == (1, Err.OK, 2, Err.OK)
    leader = cluster.replicas[cluster.leader()]
    epoch = leader.peer.leader.new_epoch
    assert r1.zxid >> 32 == epoch            # the ZAB leader allocated it
    for r in cluster.replicas.values():
        assert r.tree.nodes["/x"].data == b"v"


def test_leader_allocates_zxids_in_order_for_local_and_forwarded_writes(cluster):
    lead, f = cluster.leader(), cluster.follower()
    cluster.connect(lead, 1)
    cluster.connect(f, 2)
    cluster.request(lead, 1, 1, OpCode.create, R.CreateRequest("/a", b"", OPEN, 0))
    cluster.request(f, 2, 1, OpCode.create, R.CreateRequest("/b", b"", OPEN, 0))
    cluster.run()
    (ra,), (rb,) = cluster.replies(1), cluster.replies(2)
    assert P.epoch_of(ra.zxid) == P.epoch_of(rb.zxid) and rb.zxid == ra.zxid + 1


def test_error_from_the_leaders_prep_reaches_the_followers_client(cluster):
    f = cluster.follower()
    cluster.connect(f, 7)
    cluster.request(f, 7, 1, OpCode.delete, R.DeleteRequest("/nope", -1))
    cluster.run()
    (r,) = cluster.replies(7)
    assert r.err == Err.NONODE


def test_a_followers_ack_waits_for_its_fsync():
    """Zab paper §3.2 / FollowerProcessPROPOSAL: ACK only once the proposal is durable."""
    c = Cluster()
    c.settle()
    lead, f = c.leader(), c.follower()
    c.connect(lead, 1)
    c.auto_durable = False
    c.request(lead, 1, 1, OpCode.create, R.CreateRequest("/d", b"", OPEN, 0))
    c.run()
    zxid = c.replicas[lead].peer.leader.last_proposed
    assert [w.records[0][0].zxid for w in c.pending_disk[f]] == [zxid]   # logged, not durable
    assert not c.inbox and not c.replies(1)
    c.make_durable(f)
    assert [(d, p.type, p.zxid) for d, k, s, p in c.inbox] == [(lead, T.ACK, zxid)]
    c.run()
    assert not c.replies(1)        # one ACK of three: no quorum until the leader's own is durable
    c.make_durable(lead)
    c.run()
    (r,) = c.replies(1)
    assert (r.err, r.zxid) == (Err.OK, zxid)


def test_the_leaders_own_ack_is_stepped_in_only_once_durable():
    c = Cluster()
    c.settle()
    lead = c.leader()
    c.connect(lead, 1)
    c.auto_durable = False
    c.request(lead, 1, 1, OpCode.create, R.CreateRequest("/o", b"", OPEN, 0))
    c.run()
    prop = next(iter(c.replicas[lead].peer.leader.outstanding.values()))
    assert list(prop.acks) == []               # not even the leader's own ACK yet
    c.make_durable(lead)
    c.run()
    assert list(prop.acks) == [lead]
    assert not c.replies(1)
    for sid in c.replicas:
        c.make_durable(sid)
    c.run()
    (r,) = c.replies(1)
    assert r.err == Err.OK


def test_advance_refuses_a_ready_it_did_not_hand_out(cluster):
    r = cluster.replicas[1]
    r.ready()
    other = cluster.replicas[2].ready()
    with pytest.raises(AssertionError, match="did not hand out"):
        r.advance(other)


def test_durable_must_not_go_back_or_ahead(cluster):
    r = cluster.replicas[cluster.leader()]
    with pytest.raises(AssertionError):
        r.durable(r._next_token + 5, cluster.now)


def test_learner_never_expires_sessions_the_leader_does(cluster):
    f = cluster.follower()
    sid = cluster.connect(f, 7).sessionId
    cluster.replicas[f].client_closed(7, cluster.now)
    for _ in range(40):
        cluster.tick(100)
        assert sid not in cluster.replicas[cluster.leader()].server.sessions.sessions or \
            sid in cluster.replicas[f].server.sessions.sessions
    for r in cluster.replicas.values():
        assert sid not in r.server.sessions.sessions


def test_follower_activity_reported_in_pings_keeps_the_session_alive(cluster):
    f = cluster.follower()
    sid = cluster.connect(f, 7).sessionId
    for _ in range(40):
        cluster.request(f, 7, -2, OpCode.ping)
        cluster.tick(100)
    assert sid in cluster.replicas[cluster.leader()].server.sessions.sessions


def test_reconnect_to_a_follower_waits_for_the_leaders_revalidate(cluster):
    """ZooKeeper's REVALIDATE: the learner attaches a reconnecting session only
    once the leader says it is alive."""
    lead = cluster.leader()
    f = cluster.follower()
    sid = cluster.connect(lead, 1).sessionId
    r = cluster.replicas[f]
    r.client_connected(9, "127.0.0.1", cluster.now)
    r.client_event(9, Connect(R.ConnectRequest(0, 0, 1000, sid, session_password(sid), False)),
                   cluster.now)
    cluster.flush(f)
    assert 9 not in cluster.client_out            # waiting for the leader's answer
    cluster.run()
    (frame,) = cluster.client_out.pop(9)
    assert R.ConnectResponse.read(Reader(frame[4:])).sessionId == sid


def test_watch_on_one_follower_fires_for_a_write_through_another():
    c = Cluster(n=3)
    c.settle()
    lead = c.leader()
    f1, f2 = [s for s in c.replicas if s != lead]
    c.connect(f1, 8)
    c.connect(f2, 7)
    c.request(f1, 8, 1, OpCode.exists, R.ExistsRequest("/w", True))
    c.run()
    c.replies(8)
    c.request(f2, 7, 1, OpCode.create, R.CreateRequest("/w", b"", OPEN, 0))
    c.run()
    (frame,) = c.client_out.pop(8)
    ev = R.WatcherEvent.read(Reader(frame[20:]))
    assert (ev.type, ev.path) == (EventType.NodeCreated, "/w")


def test_close_session_of_a_followers_client_is_answered_and_closes(cluster):
    f = cluster.follower()
    sid = cluster.connect(f, 7).sessionId
    cluster.request(f, 7, 9, OpCode.closeSession)
    cluster.run()
    (r,) = cluster.replies(7)
    assert (r.xid, r.err) == (9, Err.OK)
    assert 7 in cluster.closed
    assert all(sid not in x.server.sessions.sessions for x in cluster.replicas.values())


def test_losing_the_role_closes_every_client_connection(cluster):
    f = cluster.follower()
    cluster.connect(f, 7)
    lead = cluster.leader()
    cluster.replicas[f].quorum_disconnected(lead, cluster.now)
    cluster.flush(f)
    assert 7 in cluster.closed and not cluster.replicas[f].serving


class BatchedCluster(Cluster):
    """Delivers each turn's quorum packets from one member to another in one
    ``quorum_received_many`` call, as one read of the runtime's transport does."""

    largest_batch = 0

    def deliver(self, batch: list):
        links: dict = {}
        for dst, kind, src, payload in batch:
            if kind == "election":
                self.replicas[dst].election_received(src, payload, self.now)
                self.flush(dst)
            else:
                links.setdefault((dst, src), []).append(payload)
        for (dst, src), pkts in links.items():
            self.largest_batch = max(self.largest_batch, len(pkts))
            self.replicas[dst].quorum_received_many(src, pkts, self.now)
            self.flush(dst)


def _writes_everywhere(c: Cluster) -> list:
    """Sessions on every member, 3 turns of pipelined creates and setDatas; what
    every client got back and every member's tree, as comparable values."""
    c.settle()
    for sid in c.replicas:
        c.connect(sid, 10 + sid)
    for turn in range(3):
        for sid in c.replicas:
            cid = 10 + sid
            for k in range(5):
                xid = 100 * turn + 2 * k
                c.request(sid, cid, xid, OpCode.create,
                          R.CreateRequest(f"/b{sid}-{turn}-{k}", b"v", OPEN, 0))
                c.request(sid, cid, xid + 1, OpCode.setData,
                          R.SetDataRequest(f"/b{1 + (sid % 3)}-{max(turn - 1, 0)}-{k}",
                                           bytes([turn]), -1))
        c.run()
    replies = {cid: [(h.xid, h.zxid, h.err) for h in c.replies(cid)] for cid in (11, 12, 13)}
    trees = {sid: sorted((p, n.data, n.stat_fields()) for p, n in r.tree.nodes.items())
             for sid, r in c.replicas.items()}
    return [replies, trees]


def test_packets_delivered_in_batches_give_what_one_at_a_time_gives():
    """A read that brings many packets from one peer is stepped as a batch
    (``Peer.step_many``: the role's output taken once after them): the same
    zxids, replies and trees as packets delivered one by one."""
    one_by_one = _writes_everywhere(Cluster())
    c = BatchedCluster()
    batched = _writes_everywhere(c)
    assert c.largest_batch >= 10
    assert one_by_one == batched
    replies, trees = batched
    assert all(len(r) == 30 for r in replies.values())
    assert sum(err == Err.OK for r in replies.values() for _, _, err in r) >= 45
    assert trees[1] == trees[2] == trees[3]
