"""Simulated clients against the real standalone server core, and the
client-visible checks (ZooKeeper Programmer's Guide, "ZooKeeper guarantees":
sequential consistency, atomicity, single system image, reliability,
timeliness; sync(); one-time watches).

``StandaloneRun`` is a small deterministic harness: bytes travel through
``ClientConnection`` into ``StandaloneServer``, the persisted txns are
"logged" at random moments (so several writes are in flight), server bytes
reach clients in random chunks, connections are dropped and resumed, and
some clients stay away long enough for their session to expire. No event
loop, no sleep: one seeded ``random.Random`` drives everything.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace

import pytest

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, OpCode
from zabpy.protocol.connection import ClientConnection, Connect
from zabpy.server import ServerSettings, StandaloneServer
from zabpy.sim.client import SimClient, WatchEvent, WatchRecord
from zabpy.sim.client_checks import (CHILD_EVENTS, DATA_EVENTS, check_acknowledged_writes_survive, check_all,
                                     check_final_trees, check_reads, check_session_order,
                                     check_sync_reads, check_watches, check_writes_linearizable)
from zabpy.sim.invariants import SimFailure
from zabpy.tree.datatree import DataNode


class StandaloneRun:
    def __init__(self, seed: int, n_clients: int = 4):
        self.rng = random.Random(seed)
        self.now = 1_000
        self.srv = StandaloneServer(ServerSettings(tick_ms=50, session_timeout_ms_min=300,
                                                   session_timeout_ms_max=2000), self.now)
        self.clients = [SimClient(i, random.Random(seed * 1000 + i), timeout_ms=400)
                        for i in range(n_clients)]
        self.committed: list = []
        self.unlogged: list = []
        self.conn_of: dict[int, int] = {}      # client id -> its live conn id
        self.protos: dict[int, ClientConnection] = {}
        self.outbox: dict[int, bytearray] = {}  # conn id -> bytes not yet delivered
        self.closing: dict[int, None] = {}
        self.client_of: dict[int, int] = {}     # conn id -> client id
        self.away_until: dict[int, int] = {}
        self.next_conn = 1

    # ---- moving bytes ----------------------------------------------------------

    def _to_server(self, conn_id: int, data: bytes) -> None:
        for ev in self.protos[conn_id].receive_data(data):
            if isinstance(ev, Connect):
                self.srv.connect(conn_id, ev.request, self.now)
            else:
                self.srv.request(conn_id, ev.xid, ev.op, ev.body, self.now)
        self._pump()

    def _pump(self) -> None:
        while True:
            ready = self.srv.ready()
            if not ready:
                return
            self.srv.advance(ready)
            self.unlogged.extend(ready.persist)
            for cid, data in ready.send:
                if cid in self.outbox:
                    self.outbox[cid] += data
            for cid in ready.close:
                if cid in self.outbox:
                    self.closing[cid] = None

    def _log_some(self, everything: bool = False) -> None:
        if not self.unlogged:
            return
        n = len(self.unlogged) if everything else self.rng.randint(1, len(self.unlogged))
        batch, self.unlogged = self.unlogged[:n], self.unlogged[n:]
        self.committed.extend(batch)
        self.srv.logged(batch[-1][0].zxid, self.now)
        self._pump()

    def _deliver(self, conn_id: int, everything: bool = False) -> None:
        box = self.outbox[conn_id]
        n = len(box) if everything else self.rng.randint(0, len(box))
        data = bytes(box[:n])
        del box[:n]
        client = self.clients[self.client_of[conn_id]]
        if data:
            client.receive(data, self.now)
        if not box and conn_id in self.closing:
            self._drop(conn_id)

    def _drop(self, conn_id: int) -> None:
        cid = self.client_of.pop(conn_id)
        self.outbox.pop(conn_id)
        self.protos.pop(conn_id)
        self.closing.pop(conn_id, None)
        self.srv.connection_lost(conn_id, self.now)
        self._pump()
        if self.conn_of.get(cid) == conn_id:
            del self.conn_of[cid]
            self.clients[cid].disconnected(self.now)

    def _connect(self, client: SimClient) -> None:
        conn_id = self.next_conn
        self.next_conn += 1
        self.conn_of[client.client_id] = conn_id
        self.client_of[conn_id] = client.client_id
        self.protos[conn_id] = ClientConnection()
        self.outbox[conn_id] = bytearray()
        self.srv.connection_made(conn_id, "10.0.0.1", self.now)
        self._to_server(conn_id, client.handshake_bytes(self.now))

    # ---- the run ---------------------------------------------------------------

    def step(self) -> None:
        rng = self.rng
        self.now += rng.randint(0, 3)
        client = rng.choice(self.clients)
        conn_id = self.conn_of.get(client.client_id)
        roll = rng.random()
        if conn_id is None:
            if client.needs_connection and self.now >= self.away_until.get(client.client_id, 0):
                self._connect(client)
        elif roll < 0.004:
            # The connection breaks; sometimes the client stays away past its
            # session timeout, so it comes back to an expired session.
            self._drop(conn_id)
            away = rng.choice((0, 5, 50, 900))
            self.away_until[client.client_id] = self.now + away
        elif roll < 0.55:
            data = client.next_request(self.now)
            if data is not None:
                self._to_server(conn_id, data)
        else:
            self._deliver(conn_id)
        if rng.random() < 0.3:
            self._log_some()
        self.srv.tick(self.now)
        self._pump()

    def finish(self) -> int:
        """Log and deliver everything; the run's end time."""
        for _ in range(3):
            self._log_some(everything=True)
            for conn_id in list(self.outbox):
                if conn_id in self.outbox:
                    self._deliver(conn_id, everything=True)
        return self.now

    def run(self, steps: int) -> int:
        for _ in range(steps):
            self.step()
        return self.finish()


def _run(seed: int, steps: int = 16_000) -> tuple[StandaloneRun, int]:
    run = StandaloneRun(seed)
    end = run.run(steps)
    return run, end


@pytest.fixture(scope="module")
def good_run():
    return _run(7)


def _ops(run):
    return [r for c in run.clients for r in c.history]


def test_standalone_histories_pass_every_check(good_run):
    run, end = good_run
    ops = _ops(run)
    assert len(ops) > 2000, len(ops)
    ok = [r for r in ops if r.outcome == "ok"]
    kinds = {r.op for r in ok}
    assert {OpCode.create, OpCode.create2, OpCode.delete, OpCode.setData, OpCode.getData,
            OpCode.exists, OpCode.multi, OpCode.sync, OpCode.closeSession} <= kinds
    errs = {r.err for r in ok}
    assert {Err.OK, Err.NONODE, Err.NODEEXISTS, Err.BADVERSION} <= errs
    assert any(r.outcome == "unknown" for r in ops), "no op was cut off by a disconnect"
    assert any(r.after_sync is not None and r.outcome == "ok" for r in ops)
    assert any(isinstance(w, WatchEvent) for c in run.clients for w in c.watch_log)
    assert any(r.op == OpCode.multi and r.result.subs and any(s.err for s in r.result.subs)
               for r in ok), "no multi failed"
    sessions = {r.session_id for r in ops}
    assert len(sessions) > len(run.clients), "no client ever started a second session"
    check_all(run.clients, run.committed, {1: run.srv.tree}, end)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_more_seeds_pass(seed):
    run, end = _run(seed, 6000)
    check_all(run.clients, run.committed, {1: run.srv.tree}, end)


def test_same_seed_same_history():
    a, _ = _run(11, 3000)
    b, _ = _run(11, 3000)
    assert [c.history for c in a.clients] == [c.history for c in b.clients]
    assert [c.watch_log for c in a.clients] == [c.watch_log for c in b.clients]
    assert a.committed == b.committed


# ---- each check can fail ---------------------------------------------------------

def _mutable(good_run):
    run, end = good_run
    return copy.deepcopy(run.clients), list(run.committed), end


def _acked_writes(clients, op=None, err=None):
    return [r for c in clients for r in c.history if r.is_write and r.outcome == "ok"
            and (op is None or r.op == op) and (err is None or r.err == err)]


def test_dropped_acknowledged_txn_is_caught(good_run):
    clients, committed, _ = _mutable(good_run)
    rec = _acked_writes(clients, OpCode.setData, Err.OK)[10]
    committed = [(h, t) for h, t in committed if h.zxid != rec.zxid]
    with pytest.raises(SimFailure, match=r"a: .*no committed txn has that zxid"):
        check_acknowledged_writes_survive(clients, committed)


def test_reordered_commits_are_caught(good_run):
    """Swap the txns of two writes that did not overlap in real time."""
    clients, committed, _ = _mutable(good_run)
    writes = sorted(_acked_writes(clients, OpCode.setData, Err.OK), key=lambda r: r.zxid)
    a = writes[5]
    b = next(w for w in writes if w.invoke_ms > a.complete_ms)
    i = next(k for k, (h, _) in enumerate(committed) if h.zxid == a.zxid)
    j = next(k for k, (h, _) in enumerate(committed) if h.zxid == b.zxid)
    (ha, ta), (hb, tb) = committed[i], committed[j]
    committed[i] = (replace(hb, zxid=ha.zxid), tb)
    committed[j] = (replace(ha, zxid=hb.zxid), ta)
    with pytest.raises(SimFailure, match=r"b: .*completed at .* before .* committed earlier"):
        check_writes_linearizable(clients, committed)


def test_flipped_error_code_is_caught(good_run):
    clients, committed, _ = _mutable(good_run)
    rec = _acked_writes(clients, OpCode.setData, Err.BADVERSION)[0]
    rec.err = rec.result.err = Err.OK
    with pytest.raises(SimFailure, match=r"b: .*err OK, model says BADVERSION"):
        check_writes_linearizable(clients, committed)


def test_wrong_sequential_name_is_caught(good_run):
    clients, committed, _ = _mutable(good_run)
    rec = next(r for r in _acked_writes(clients, err=Err.OK)
               if r.op in (OpCode.create, OpCode.create2) and r.path.endswith("q-"))
    rec.result.path = rec.result.path[:-1] + "9"
    with pytest.raises(SimFailure, match=r"b: .*created .*9, model says"):
        check_writes_linearizable(clients, committed)


def test_reply_zxid_going_back_is_caught(good_run):
    clients, _, _ = _mutable(good_run)
    c = clients[0]
    done = sorted((r for r in c.history if r.outcome == "ok"), key=lambda r: r.seq)
    a, b = next((x, y) for x, y in zip(done, done[1:])
                if x.session_id == y.session_id and y.zxid > x.zxid)
    b.zxid = a.zxid - 1
    with pytest.raises(SimFailure, match="c: .*zxid went back"):
        check_session_order(clients)


def test_reply_out_of_xid_order_is_caught(good_run):
    clients, _, _ = _mutable(good_run)
    done = sorted((r for r in clients[1].history if r.outcome == "ok"), key=lambda r: r.seq)
    a, b = next((x, y) for x, y in zip(done, done[1:]) if x.session_id == y.session_id)
    a.seq, b.seq = b.seq, a.seq
    with pytest.raises(SimFailure, match="c: .*out of order"):
        check_session_order(clients)


def test_stale_read_after_sync_is_caught(good_run):
    clients, _, _ = _mutable(good_run)
    for c in clients:
        syncs = {r.xid: r for r in c.history if r.op == OpCode.sync}
        for rec in c.history:
            if rec.after_sync is not None and rec.outcome == "ok" and rec.zxid > 1:
                if syncs[rec.after_sync].invoke_ms > 1_100:
                    rec.zxid = 1
                    with pytest.raises(SimFailure, match="d: .*after sync xid"):
                        check_sync_reads(clients)
                    return
    raise AssertionError("no sync read to break")


def test_read_of_a_value_never_committed_is_caught(good_run):
    clients, committed, _ = _mutable(good_run)
    rec = next(r for c in clients for r in c.history
               if r.op == OpCode.getData and r.outcome == "ok" and r.err == Err.OK)
    rec.result.data = b"never written"
    with pytest.raises(SimFailure, match="d: read disagrees .*data b'never written'"):
        check_reads(clients, committed)


def test_ephemeral_of_closed_session_left_behind_is_caught(good_run):
    run, end = good_run
    clients, committed, _ = _mutable(good_run)
    closed = next(h.clientId for h, _ in committed if h.type == OpCode.closeSession)
    tree = copy.deepcopy(run.srv.tree)
    tree.nodes["/e"].add_child("/e/ghost")
    tree.nodes["/e/ghost"] = DataNode(b"", tree.nodes["/e"].acl, ephemeral_owner=closed)
    with pytest.raises(SimFailure, match=f"e: server 1 keeps ephemeral /e/ghost of session "
                                         f"0x{closed:x}"):
        check_final_trees(clients, committed, {1: tree})
    tree2 = copy.deepcopy(run.srv.tree)
    tree2.nodes["/k0" if "/k0" in tree2.nodes else "/"].data = b"diverged"
    with pytest.raises(SimFailure, match="e: server 2 tree differs"):
        check_final_trees(clients, committed, {2: tree2})


def test_dropped_watch_event_is_caught(good_run):
    """Drop an event the client must have received: its registration's
    connection stayed up to the end and a committed change triggered it."""
    clients, committed, end = _mutable(good_run)
    for c in clients:
        open_conns = {k.conn for k in c.connections if k.end_ms is None}
        regs = [w for w in c.watch_log if isinstance(w, WatchRecord) and w.conn in open_conns
                and not w.maybe]
        for w in regs:
            types = CHILD_EVENTS if w.kind == "child" else DATA_EVENTS
            evs = [e for e in c.watch_log if isinstance(e, WatchEvent) and e.seq > w.seq
                   and e.path == w.path and e.session_id == w.session_id and e.type in types]
            if len(evs) == 1:
                c.watch_log.remove(evs[0])
                with pytest.raises(SimFailure, match="f: .*no event was delivered"):
                    check_watches(clients, committed, end)
                return
    raise AssertionError("no delivered event on a connection open at the end")


def test_watch_firing_twice_is_caught(good_run):
    clients, committed, end = _mutable(good_run)
    c = next(c for c in clients if any(isinstance(e, WatchEvent) for e in c.watch_log))
    i, ev = next((i, e) for i, e in enumerate(c.watch_log) if isinstance(e, WatchEvent))
    c.watch_log.insert(i + 1, replace(ev, seq=ev.seq))
    with pytest.raises(SimFailure, match="f: .*no watch armed"):
        check_watches(clients, committed, end)


def test_client_wire_bytes():
    """The handshake and a request are framed exactly as a real client frames them."""
    c = SimClient(0, random.Random(1), timeout_ms=30_000)
    hs = c.handshake_bytes(0)
    assert hs[:4] == (len(hs) - 4).to_bytes(4, "big")
    req = R.ConnectRequest.read(Reader(hs[4:]))
    assert (req.protocolVersion, req.lastZxidSeen, req.timeOut, req.sessionId) == (0, 0, 30_000, 0)
    assert c.next_request(0) is None, "nothing is sent before the session is granted"
    resp = R.ConnectResponse(0, 30_000, 0x77, bytes(range(16)), False).to_bytes()
    c.receive(len(resp).to_bytes(4, "big") + resp[:5], 1)
    assert not c.connected
    c.receive(resp[5:], 1)
    assert c.connected and c.session_id == 0x77
    data = c.next_request(2)
    xid, op = int.from_bytes(data[4:8], "big", signed=True), int.from_bytes(data[8:12], "big")
    assert xid == 1 and c.history[0].op == op
    c.disconnected(3)
    assert c.history[0].outcome == "unknown"
    hs2 = c.handshake_bytes(4)
    assert int.from_bytes(hs2[20:28], "big") == 0x77, "resumes the same session"
    expired = R.ConnectResponse(0, 0, 0, bytes(16), False).to_bytes()
    c.receive(len(expired).to_bytes(4, "big") + expired, 5)
    assert c.needs_connection and c.session_id == 0, "an expired session is forgotten"
    hs3 = c.handshake_bytes(6)
    assert int.from_bytes(hs3[20:28], "big") == 0, "and a new one is asked for"
    c.disconnected(7)  # the server refused the handshake (closed without answering)
    assert c.needs_connection
    assert c.watch_log == [] and [k.end_ms for k in c.connections] == [3, 5, 7]


def test_txn_that_disagrees_with_the_model_is_caught(good_run):
    """A committed error txn whose code is not what the model computes."""
    clients, committed, _ = _mutable(good_run)
    rec = _acked_writes(clients, OpCode.setData, Err.BADVERSION)[0]
    i = next(k for k, (h, _) in enumerate(committed) if h.zxid == rec.zxid)
    committed[i] = (committed[i][0], R.ErrorTxn(Err.NONODE))
    with pytest.raises(SimFailure, match=r"b: committed txn disagrees .*BADVERSION"):
        check_writes_linearizable(clients, committed)
