"""Sessions: ephemerals on close and expiry, reconnect with id + password,
wrong password, timeout negotiation (zookeeper-facts.md §1.2), and the
container / TTL reaper (§1.6). Waits are conditions, never fixed sleeps."""

from __future__ import annotations

import pytest

from conftest import (OPEN_ACL, SESSION_MAX_MS, SESSION_MIN_MS, RawClient, create_req,
                      wait_for, zabpy_server)
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode


@pytest.fixture(scope="module")
def fast_zk():
    """A zabpy server with a short tick, so sessions expire quickly."""
    with zabpy_server(tick_time_ms=50, session_timeout_ms_min=200,
                      session_timeout_ms_max=2000) as server:
        yield server


def exists(client: RawClient, path: str) -> bool:
    return client.call(OpCode.exists, R.ExistsRequest(path, False)).err == Err.OK


def test_ephemerals_removed_on_close(kazoo_factory, name):
    owner, observer = kazoo_factory(), kazoo_factory()
    owner.create(name)
    owner.create(f"{name}/e", ephemeral=True)
    owner.create(f"{name}/s-", ephemeral=True, sequence=True)
    assert sorted(observer.get_children(name)) == ["e", "s-0000000001"]
    owner.stop()
    assert observer.get_children(name) == []
    assert observer.exists(name).cversion == 4  # two creates + two deletes


def test_ephemerals_removed_on_expiry(fast_zk, name):
    watcher = RawClient(fast_zk.port)
    dying = RawClient(fast_zk.port, timeout_ms=200)
    try:
        assert dying.connect_response.timeOut == 200
        dying.call(OpCode.create, create_req(name, b"", 1))
        watcher.call(OpCode.exists, R.ExistsRequest(name, True))
        # no more pings: the session expires after its timeout
        assert watcher.wait_event(1)[0].type == 2  # NodeDeleted
        assert not exists(watcher, name)
        again = RawClient(fast_zk.port, session_id=dying.session_id, passwd=dying.passwd)
        assert (again.connect_response.timeOut, again.session_id) == (0, 0)
        assert again.expect_closed()
        again.abort()
    finally:
        dying.abort()
        watcher.close()


def test_reconnect_keeps_session_and_ephemerals(pair, name):
    for c in (pair.z, pair.j):
        c.call(OpCode.create, create_req(name, b"", 1))
        sid, passwd = c.session_id, c.passwd
        c.abort()  # drop the connection, not the session
        back = RawClient(c.port, session_id=sid, passwd=passwd)
        assert back.session_id == sid and back.connect_response.timeOut > 0
        assert exists(back, name)
        got = back.call(OpCode.getEphemerals, R.GetEphemeralsRequest(name)).decode()
        assert got.ephemerals == [name]
        if c is pair.z:
            pair.z = back
        else:
            pair.j = back


@pytest.mark.parametrize("port_of", ["zk", "java_zk"])
def test_wrong_password_is_expired(request, port_of):
    port = request.getfixturevalue(port_of).port
    good = RawClient(port)
    bad_pw = bytes((b ^ 0xFF) for b in good.passwd)
    bad = RawClient(port, session_id=good.session_id, passwd=bad_pw)
    assert (bad.connect_response.timeOut, bad.connect_response.sessionId) == (0, 0)
    assert bad.connect_response.passwd == bytes(16)
    assert bad.expect_closed()
    bad.abort()
    # the session itself is untouched: its owner can (re)connect with the password
    back = RawClient(port, session_id=good.session_id, passwd=good.passwd)
    assert back.session_id == good.session_id
    assert exists(back, "/")
    good.abort()
    back.close()


def test_failed_reconnect_attempt_keeps_the_live_connection(zk, java_zk):
    """A documented, deliberate difference. ZooKeeper 3.8.0's
    processConnectRequest closes the session's current connection on any
    reconnect attempt with its id, before it checks the password, so anyone
    who knows (or guesses) a session id can cut its owner off. zabpy moves a
    session only after the password matched (standalone.py ``connect``): the
    wrong-password attempt is refused as expired and the owner's connection
    goes on. Both halves are checked here, so the test notices if either
    side changes."""
    still_open = {}
    for port in (zk.port, java_zk.port):
        good = RawClient(port)
        bad = RawClient(port, session_id=good.session_id, passwd=bytes(16))
        try:
            assert (bad.connect_response.timeOut, bad.session_id) == (0, 0)
            assert bad.expect_closed()         # the attempt was handled
            if port == java_zk.port:
                still_open[port] = not good.expect_closed()
            else:
                still_open[port] = good.call(OpCode.exists, R.ExistsRequest("/", False)).err == 0
        finally:
            bad.abort()
            good.close()
    assert still_open == {zk.port: True, java_zk.port: False}


def test_unknown_session_is_expired(zk, java_zk):
    answers = []
    for port in (zk.port, java_zk.port):
        c = RawClient(port, session_id=0x1234, passwd=bytes(16))
        cr = c.connect_response
        answers.append((cr.protocolVersion, cr.timeOut, cr.sessionId, cr.passwd, cr.readOnly))
        assert c.expect_closed()
        c.abort()
    assert answers[0] == answers[1]


@pytest.mark.parametrize("asked", [1, SESSION_MIN_MS + 1, 5000, SESSION_MAX_MS * 2])
def test_timeout_negotiation(zk, java_zk, asked):
    got = []
    for port in (zk.port, java_zk.port):
        c = RawClient(port, timeout_ms=asked)
        got.append((c.connect_response.timeOut, c.connect_response.readOnly,
                    c.connect_response.protocolVersion, len(c.passwd)))
        c.close()
    assert got[0] == got[1]


def test_close_session_reply_then_close(pair):
    for c in (pair.z, pair.j):
        rep = c.call(OpCode.closeSession)
        assert (rep.err, rep.body) == (0, b"")
        assert c.expect_closed()


# ---- container and TTL reaping -------------------------------------------------

@pytest.fixture
def reaping_zk():
    """A server whose reaper runs every 100 ms (znode.container.checkIntervalMs)."""
    with zabpy_server(tick_time_ms=50, extended_types_enabled=False,
                      container_check_interval_ms=100) as server:
        yield server


def test_container_reaped_once_emptied(reaping_zk, name):
    c = RawClient(reaping_zk.port)
    try:
        c.call(OpCode.createContainer, create_req(f"{name}c", b"", 4))
        c.call(OpCode.createContainer, create_req(f"{name}never", b"", 4))
        c.call(OpCode.create, create_req(f"{name}c/child"))
        c.call(OpCode.delete, R.DeleteRequest(f"{name}c/child", -1))
        wait_for(lambda: not exists(c, f"{name}c"), 10, 0.02, "container reaped")
        # a container that never had a child stays (maxNeverUsedIntervalMs = 0)
        c.call(OpCode.sync, R.SyncRequest("/"))
        assert exists(c, f"{name}never")
    finally:
        c.close()


def test_ttl_needs_extended_types(reaping_zk, name):
    c = RawClient(reaping_zk.port)
    try:
        rep = c.call(OpCode.createTTL, R.CreateTTLRequest(name, b"", OPEN_ACL, 5, 100))
        assert rep.err == Err.UNIMPLEMENTED
        rep = c.call(OpCode.createTTL, R.CreateTTLRequest(name, b"", OPEN_ACL, 6, 0))
        assert rep.err == Err.UNIMPLEMENTED  # checked before the ttl range
    finally:
        c.close()


@pytest.fixture
def reaping_ttl_zk():
    with zabpy_server(tick_time_ms=50, container_check_interval_ms=100) as server:
        yield server


def test_ttl_nodes_reaped(reaping_ttl_zk, name):
    c = RawClient(reaping_ttl_zk.port)
    try:
        c.call(OpCode.createTTL, R.CreateTTLRequest(f"{name}short", b"", OPEN_ACL, 5, 150))
        c.call(OpCode.createTTL, R.CreateTTLRequest(f"{name}long", b"", OPEN_ACL, 5, 600_000))
        c.call(OpCode.createTTL, R.CreateTTLRequest(f"{name}busy", b"", OPEN_ACL, 5, 150))
        c.call(OpCode.create, create_req(f"{name}busy/child"))
        wait_for(lambda: not exists(c, f"{name}short"), 10, 0.02, "TTL node reaped")
        assert exists(c, f"{name}long") and exists(c, f"{name}busy")
    finally:
        c.close()


def _id_clock_ms(session_id: int) -> int:
    """The millisecond clock value a session id was seeded from (the low 40
    bits, shifted up 16, below the server id byte)."""
    return (session_id >> 16) & ((1 << 40) - 1)


def test_session_ids_seeded_from_wall_time(java_zk):
    """ZooKeeper's initializeNextSessionId: (server id << 56) | ((clock << 24)
    >>> 8), then +1 per session. zabpy's clock is wall time, so ids do not
    repeat after a reboot; Debian's 3.8.0 uses its elapsed-time clock
    (System.nanoTime, CLOCK_MONOTONIC on Linux, as Python's monotonic), a
    deliberate difference checked here on both sides."""
    import time
    wall_before = int(time.time() * 1000) & ((1 << 40) - 1)
    with zabpy_server() as server:
        wall_after = int(time.time() * 1000) & ((1 << 40) - 1)
        ids = []
        for _ in range(2):
            c = RawClient(server.port)
            ids.append(c.session_id)
            c.close()
    assert ids[1] == ids[0] + 1 and ids[0] >> 56 == 1   # a standalone server is id 1
    assert wall_before <= _id_clock_ms(ids[0]) <= wall_after
    c = RawClient(java_zk.port)
    c.close()
    assert c.session_id >> 56 == 1
    assert _id_clock_ms(c.session_id) <= int(time.monotonic() * 1000)


MANY_EPHEMERALS = 1_200  # more than limits.CLOSE_SESSION_DELETES_PER_PART: closed in parts


def test_close_of_a_session_with_many_ephemerals_matches_java(pair, name):
    """Issue 19: a closeSession deleting more ephemerals than one part is
    applied in parts by zabpy; what a watcher and a reader see is Java's:
    the same events (Java fires them in hash-set order, so as sets), every
    ephemeral gone, the parents' cversion and numChildren, and the close's
    zxid as the parents' pzxid."""
    close_zxid = {}
    for c in (pair.z, pair.j):
        c.call(OpCode.create, create_req(name))
        c.call(OpCode.create, create_req(f"{name}/p"))
        owner = RawClient(c.port)
        for start in range(0, MANY_EPHEMERALS, 400):
            xids = [owner.submit(OpCode.create, create_req(f"{name}/e{i:05d}", b"", 1))
                    for i in range(start, start + 400)]
            assert all(owner.read_reply(x).err == Err.OK for x in xids)
        owner.call(OpCode.create, create_req(f"{name}/p/x", b"", 1))
        c.call(OpCode.getChildren, R.GetChildrenRequest(name, True))
        c.call(OpCode.exists, R.ExistsRequest(f"{name}/e00007", True))
        c.call(OpCode.getData, R.GetDataRequest(f"{name}/p/x", True))
        closed = owner.call(OpCode.closeSession)
        assert closed.err == Err.OK
        close_zxid[c] = closed.zxid
        owner.abort()
        c.wait_event(3)
        c.drain_events()
    seen = [sorted((e.type, e.path) for e in c.events) for c in (pair.z, pair.j)]
    assert seen[0] == seen[1] == sorted([(4, name), (2, f"{name}/e00007"),
                                         (2, f"{name}/p/x")])
    # name: 1,200 ephemerals created and deleted, and /p; name/p: x created and deleted
    for path, left, cversion in ((name, ["p"], 2 * MANY_EPHEMERALS + 1), (f"{name}/p", [], 2)):
        stats = []
        for c in (pair.z, pair.j):
            got = c.call(OpCode.getChildren2, R.GetChildren2Request(path, False)).decode()
            assert got.children == left
            assert got.stat.pzxid == close_zxid[c]
            stats.append((got.stat.cversion, got.stat.numChildren))
        assert stats[0] == stats[1] == (cversion, len(left))
