"""The Replica's read-only server without sockets (QuorumPeer.run, LOOKING:
the read-only server starts after max(2 s, tickTime) still looking, and is
dropped, its connections closed, when the election decides)."""

from __future__ import annotations

import random
import struct

from zabpy.election import MajorityQuorum
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, OpCode
from zabpy.protocol.connection import Connect, Request
from zabpy.server import ServerSettings
from zabpy.server.replica import Replica
from zabpy.tree.datatree import DataTree
from zabpy.zab.leader import ZabTimers


def _alone(tick_ms: int = 100, **settings) -> Replica:
    """Member 1 of three whose peers never answer: it stays LOOKING."""
    s = ServerSettings(server_id=1, tick_ms=tick_ms, session_timeout_ms_min=200,
                       session_timeout_ms_max=5000, **settings)
    r = Replica(s, MajorityQuorum([1, 2, 3]), DataTree(), {}, 0, 0, random.Random(1), 0,
                timers=ZabTimers(tick_ms, 10, 5))
    r.start(0)
    return r


def _drain(r: Replica):
    out = []
    while (ready := r.ready()):
        out.append(ready)
        r.advance(ready)
    r.advance(r.ready())
    return out


def _run_until(r: Replica, end_ms: int) -> None:
    now = 0
    while True:
        _drain(r)
        deadline = r.next_deadline_ms()
        if deadline is None or deadline > end_ms:
            return
        now = max(now, deadline)
        r.tick(now)


def test_read_only_server_starts_after_two_seconds_of_looking():
    r = _alone(read_only_mode_enabled=True, local_sessions_enabled=True)
    _run_until(r, 1999)
    assert not r.serving and r.mode == "looking"
    _run_until(r, 2000)
    assert r.serving and r.mode == "read-only"


def test_grace_period_is_tick_time_when_longer():
    r = _alone(tick_ms=3000, read_only_mode_enabled=True, local_sessions_enabled=True)
    _run_until(r, 2999)
    assert not r.serving
    _run_until(r, 3000)
    assert r.mode == "read-only"


def test_without_read_only_mode_a_looking_member_serves_nothing():
    r = _alone()
    _run_until(r, 10_000)
    assert not r.serving and r.mode == "looking"


def _connect(r: Replica, conn_id: int, read_only: bool) -> list:
    r.client_connected(conn_id, "127.0.0.1", 2000)
    req = R.ConnectRequest(0, 0, 1000, 0, bytes(16), read_only)
    r.client_event(conn_id, Connect(req), 2000)
    return _drain(r)


def test_read_only_clients_served_others_closed_writes_refused():
    r = _alone(read_only_mode_enabled=True, local_sessions_enabled=True)
    _run_until(r, 2000)
    out = _connect(r, 7, read_only=False)
    assert [c for rd in out for c in rd.client_close] == [7]
    assert not [s for rd in out for s in rd.client_send]

    out = _connect(r, 8, read_only=True)
    (cid, data), = [s for rd in out for s in rd.client_send]
    resp = R.ConnectResponse.read(Reader(data[4:]))
    assert cid == 8 and resp.readOnly and resp.sessionId >> 56 == 1 and resp.timeOut == 1000
    assert not [d for rd in out for d in rd.disk]   # a local session: nothing logged

    body = R.CreateRequest("/x", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).to_bytes()
    r.client_event(8, Request(1, OpCode.create, memoryview(body)), 2001)
    out = _drain(r)
    (_, frame), = [s for rd in out for s in rd.client_send]
    xid, zxid, err = struct.unpack_from(">iqi", frame, 4)
    assert (xid, zxid, err) == (1, 0, Err.NOTREADONLY)
    assert not [d for rd in out for d in rd.disk]


def test_without_local_sessions_a_new_read_only_session_is_refused():
    """ZooKeeper 3.8's read-only mode needs localSessionsEnabled (apache/zookeeper
    PR #1922): without it ZooKeeper answers a reply header where the client
    awaits a ConnectResponse; zabpy closes the connection."""
    r = _alone(read_only_mode_enabled=True)
    _run_until(r, 2000)
    assert r.mode == "read-only"
    out = _connect(r, 9, read_only=True)
    assert [c for rd in out for c in rd.client_close] == [9]
    assert not [s for rd in out for s in rd.client_send]
