"""Hostile and careless clients (issue 12), side by side with Java ZooKeeper 3.8.0.

Each test sends the same raw bytes to zabpy and to Debian's ZooKeeper 3.8.0
and asserts the same answer (error code, reply zxid relative to the pair's
start), that the connection goes on, and that ``mntr``'s
``zk_outstanding_requests`` is back where it was: a request that is answered
or refused leaves the accounting exact (a leak there pauses every client
once globalOutstandingLimit is reached).

What Java 3.8.0 does, measured with these bytes:
- setWatches (101) / setWatches2 (105) with an empty or truncated body:
  MARSHALLINGERROR, reply zxid = last zxid (no txn), connection kept.
- createSession (-10) on an established connection, a body under 4 bytes:
  MARSHALLINGERROR through an error txn (a zxid is spent), kept (4 bytes
  or more: a createSession txn and a ConnectResponse, tests/test_difffuzz.py).
- deleteContainer (20) from a client, any body: BADARGUMENTS through an
  error txn (a zxid is spent), kept.
"""

from __future__ import annotations

import select
import socket

import pytest

from conftest import (OPEN_ACL, Pair, RawBody, RawClient, ServerClosed, four_letter_word,
                      wait_for, zabpy_server)
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import mntr


def mntr_int(port: int, key: str) -> int:
    return int(mntr(port)[key])


def outstanding(port: int) -> int:
    return mntr_int(port, "zk_outstanding_requests")


def assert_refused_and_kept(pair: Pair, op: int, body: bytes, err: int) -> None:
    before = (outstanding(pair.z.port), outstanding(pair.j.port))
    rep = pair.call(op, RawBody(body))
    assert rep[0] == err
    # the connection goes on and the request left the accounting
    assert pair.call(OpCode.exists, R.ExistsRequest("/", False))[0] == Err.OK
    assert (outstanding(pair.z.port), outstanding(pair.j.port)) == before


# The bytes: relativeZxid 0, a dataWatches list of 2**31-1 entries.
SET_WATCHES_HUGE_LIST = bytes(8) + b"\x7f\xff\xff\xff" + b"\x00\x00\x00\x02/a"


@pytest.mark.parametrize("op", [OpCode.setWatches, OpCode.setWatches2])
@pytest.mark.parametrize("body", [b"", bytes(4), SET_WATCHES_HUGE_LIST],
                         ids=["empty", "truncated", "huge-list"])
def test_malformed_set_watches_is_marshalling_error(pair, op, body):
    """Issue 12 item 1 (ZooKeeper: FinalRequestProcessor answers a body that
    does not deserialize with MARSHALLINGERROR)."""
    assert_refused_and_kept(pair, op, body, Err.MARSHALLINGERROR)


def test_create_session_on_established_connection(pair):
    """Issue 12 item 5: opcode -10 with an empty body (PrepRequestProcessor
    cannot read the timeout: an error txn)."""
    assert_refused_and_kept(pair, OpCode.createSession, b"", Err.MARSHALLINGERROR)
    assert_refused_and_kept(pair, OpCode.createSession, b"\x00\x01", Err.MARSHALLINGERROR)


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00\x10/a", b"\x00\x00\x00\x01/"],
                         ids=["empty", "malformed", "root"])
def test_delete_container_from_a_client(pair, body):
    """Issue 12 item 5: opcode 20 is the container reaper's; from a client,
    BADARGUMENTS whatever the body."""
    assert_refused_and_kept(pair, OpCode.deleteContainer, body, Err.BADARGUMENTS)


# ---- watches belong to the connection (issue 12 item 4) -------------------------

def watch_counts(port: int) -> tuple[int, int]:
    """(wchs "Total watches" — the data-watch table only, as ZooKeeper's —
    and mntr's zk_watch_count, both tables)."""
    text = four_letter_word("127.0.0.1", port, "wchs")
    return int(text.rsplit("Total watches:", 1)[1].split()[0]), mntr_int(port, "zk_watch_count")


def _arm_data(c, path):
    c.call(OpCode.getData, R.GetDataRequest(path, True))


def _arm_exists_missing(c, path):
    c.call(OpCode.exists, R.ExistsRequest(path + "/missing", True))


def _arm_children(c, path):
    c.call(OpCode.getChildren, R.GetChildrenRequest(path, True))


def _arm_persistent(c, path):
    c.call(OpCode.addWatch, R.AddWatchRequest(path, 0))


def _arm_recursive(c, path):
    c.call(OpCode.addWatch, R.AddWatchRequest(path, 1))


ARM = {"data": _arm_data, "exists": _arm_exists_missing, "children": _arm_children,
       "persistent": _arm_persistent, "recursive": _arm_recursive}


@pytest.mark.parametrize("kind", list(ARM))
@pytest.mark.parametrize("port_of", ["zk", "java_zk"])
def test_watches_go_with_the_connection(request, port_of, kind, name):
    """Issue 12 item 4. ZooKeeper 3.8 keys watches by connection (the
    ServerCnxn is the Watcher): NIOServerCnxn.close -> ZKDatabase.removeCnxn
    drops every one-shot, persistent and recursive watch of a connection as
    it goes. A client that comes back to its session re-arms them with
    setWatches; one that does not gets no event from the old ones."""
    port = request.getfixturevalue(port_of).port
    writer = RawClient(port)
    writer.call(OpCode.create, R.CreateRequest(name, b"", OPEN_ACL, 0))
    base = watch_counts(port)
    c = RawClient(port)
    ARM[kind](c, name)
    assert watch_counts(port)[1] > base[1]
    sid, passwd = c.session_id, c.passwd
    c.abort()  # a TCP drop: the session lives on
    wait_for(lambda: watch_counts(port) == base, 5, what="the dropped connection's watches gone")
    back = RawClient(port, session_id=sid, passwd=passwd)
    assert back.session_id == sid
    writer.call(OpCode.create, R.CreateRequest(name + "/missing", b"", OPEN_ACL, 0))
    writer.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    writer.call(OpCode.delete, R.DeleteRequest(name + "/missing", -1))
    writer.call(OpCode.delete, R.DeleteRequest(name, -1))
    assert back.drain_events() == []
    back.close()
    writer.close()


# ---- connections without a session (issue 12 item 2) -----------------------------

def _closed_by_server(socks: list[socket.socket]) -> list[socket.socket]:
    """The ones the server closed: it never sends to a connection without a
    session, so readable means EOF (or a reset)."""
    return select.select(socks, [], [], 0)[0]


def check_sessionless_connections_are_closed(port: int, count: int, timeout_s: float,
                                             limit: int | None = None) -> None:
    # connections that never finish the handshake (half send nothing, half
    # three bytes of a length prefix); with ``limit``, one more is refused
    socks = []
    try:
        for i in range(count if limit is None else limit + 1):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            if i % 2:
                socks[-1].sendall(b"\x00\x00\x00")
        if limit is not None:
            refused = wait_for(lambda: _closed_by_server(socks), 5, 0.01,
                               what="a refused connection")
            assert refused == [socks[-1]]
        wait_for(lambda: len(_closed_by_server(socks)) == len(socks), timeout_s, 0.05,
                 what="the server closing connections without a session")
        # every slot is free again: a new client from the same IP gets a session
        c = RawClient(port)
        assert c.session_id != 0
        c.close()
    finally:
        for s in socks:
            s.close()


def test_sessionless_connections_are_closed_zabpy():
    """Issue 12 item 2, with a short zookeeper.nio.sessionlessCnxnTimeout."""
    with zabpy_server(max_client_cnxns=6, sessionless_cnxn_timeout_ms=300) as zk:
        check_sessionless_connections_are_closed(zk.port, 6, 5, limit=6)


def test_sessionless_connections_are_closed_java(java_zk):
    """What Java 3.8.0 does (NIOServerCnxnFactory): a connection without a
    session sits in cnxnExpiryQueue, whose buckets are
    sessionlessCnxnTimeout (10 s default) wide, so it is closed 10-20 s after
    connecting (12.8 s measured for a silent one, a 3-byte one and a partial
    ConnectRequest alike, with tickTime 200: tickTime plays no part), and
    the maxClientCnxns (60) slots come back. The refusal itself is not
    checked here: Java counts a connection per IP only once its selector
    thread took it, so a burst gets past 60 (70 of 70 kept in one run, 60 of
    130 in another)."""
    check_sessionless_connections_are_closed(java_zk.port, 20, 25)


def test_sessionless_connections_are_closed_ensemble():
    """The same on an ensemble member (the replica ticks its server core),
    leader and follower alike."""
    from zabpy.testing import ZabpyEnsemble

    with ZabpyEnsemble(3, extra="maxClientCnxns=6\nnio.sessionlessCnxnTimeout=300") as ens:
        leader = ens.leader()
        follower = next(s for s in ens.sids if s != leader)
        for sid in (leader, follower):
            check_sessionless_connections_are_closed(ens.client_ports[sid], 6, 5, limit=6)


def _refused(port: int) -> bool:
    """A new connection from this IP is closed by the server at once (a
    refused one gets no handshake answer)."""
    try:
        RawClient(port).close()
    except (ServerClosed, OSError):
        return True
    return False


def test_a_slot_is_freed_as_soon_as_its_connection_goes():
    """Issue 12: maxClientCnxns counts connections per IP and frees a slot
    as soon as a connection goes, whether the client closes its session, drops
    the TCP connection, or the server closes it; no timeout (session or
    sessionless, both 30 s here) has to pass first."""
    with zabpy_server(max_client_cnxns=3, sessionless_cnxn_timeout_ms=30_000,
                      session_timeout_ms_max=30_000) as zk:
        clients = [RawClient(zk.port, timeout_ms=30_000) for _ in range(3)]
        try:
            assert _refused(zk.port)
            clients.pop().close()                      # closeSession, then the close
            clients.append(wait_for(lambda: _try_client(zk.port), 5, 0.02,
                                    what="a slot after a closed session"))
            assert _refused(zk.port)
            clients.pop(0).abort()                     # a TCP drop: the session lives on
            clients.append(wait_for(lambda: _try_client(zk.port), 5, 0.02,
                                    what="a slot after a dropped connection"))
            assert _refused(zk.port)
        finally:
            for c in clients:
                c.close()


def _try_client(port: int):
    try:
        return RawClient(port, timeout_ms=30_000)
    except (ServerClosed, OSError):
        return None


def test_a_member_not_serving_closes_a_silent_connection():
    """A member without a quorum answers only four-letter words; a connection
    that sends nothing is closed after the sessionless timeout all the same."""
    from zabpy.testing import ZabpyEnsemble

    with ZabpyEnsemble(3, extra="nio.sessionlessCnxnTimeout=300") as ens:
        lone = ens.sids[0]
        for sid in ens.sids[1:]:
            ens.kill(sid)
        wait_for(lambda: ens.mode(lone) in (None, "looking"), 30, 0.05,
                 what="the lone member to stop serving")
        s = socket.create_connection(("127.0.0.1", ens.client_ports[lone]), timeout=5)
        try:
            wait_for(lambda: _closed_by_server([s]), 10, 0.05, what="the silent connection closed")
        finally:
            s.close()


def test_sessionless_deadline_is_driven_by_tick():
    """The core never reads a clock: the runtime's tick closes a connection
    without a session once ``now_ms`` reaches its deadline, and a session
    established in time cancels it."""
    from zabpy.server.settings import ServerSettings
    from zabpy.server.standalone import StandaloneServer

    srv = StandaloneServer(ServerSettings(sessionless_cnxn_timeout_ms=100), now_ms=0)
    srv.connection_made(1, "10.0.0.1", 0)
    srv.connection_made(2, "10.0.0.1", 10)
    srv.connect(2, R.ConnectRequest(0, 0, 30000, 0, bytes(16), False), 20)
    srv.logged(srv.next_zxid - 1, 20)  # the session is durable: connection 2 is established
    srv.advance(srv.ready())
    srv.tick(99)
    assert srv.ready().close == ()
    srv.tick(100)
    ready = srv.ready()
    assert ready.close == (1,)
    srv.advance(ready)
    srv.tick(10_000)
    assert srv.ready().close == ()
