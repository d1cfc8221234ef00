"""Read-only mode (``readonlymode.enabled``) with real processes: a member cut
off from its quorum serves read-only clients until the quorum is back.

As ZooKeeper 3.8's ReadOnlyZooKeeperServer (QuorumPeer starts it after
max(2 s, tickTime) of LOOKING): read-only sessions are local ones, writes
and sync() are answered NOTREADONLY (-119), a client that did not ask for a
read-only session is disconnected, ``isro`` says "ro", and when the member
joins a quorum again every read-only connection is closed."""

from __future__ import annotations


import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import ZabpyEnsemble, four_letter_word, wait_for
from rawclient import RawClient

RO = "readonlymode.enabled=true\nlocalSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true"


def _isro(ens: ZabpyEnsemble, sid: int) -> str:
    return four_letter_word("127.0.0.1", ens.client_ports[sid], "isro")


def _cut_off(ens: ZabpyEnsemble, keep: int) -> None:
    for sid in list(ens.procs):
        if sid != keep:
            ens.kill(sid)
    wait_for(lambda: ens.mode(keep) == "read-only", 20, what=f"member {keep} read-only")


@pytest.fixture
def ensemble():
    with ZabpyEnsemble(3, extra=RO) as ens:
        ens.wait_serving()
        c = KazooClient(hosts=ens.hosts, timeout=10)
        c.start(timeout=20)
        c.create("/ro/data", b"v1", makepath=True)
        for sid in ens.sids:   # every member has it, whichever is kept
            wait_for(lambda: _has(ens, sid, "/ro/data"), 10, what=f"/ro/data on {sid}")
        c.stop()
        yield ens


def _has(ens: ZabpyEnsemble, sid: int, path: str) -> bool:
    raw = RawClient(ens.client_ports[sid])
    try:
        raw.handshake()
        hdr, _ = raw.call(OpCode.exists, R.ExistsRequest(path, False))
        return hdr.err == 0
    finally:
        raw.close()


def test_cut_off_member_serves_reads_refuses_writes_and_returns_to_read_write(ensemble):
    ens = ensemble
    keep = 1
    assert _isro(ens, keep) == "rw"
    _cut_off(ens, keep)
    assert _isro(ens, keep) == "ro"
    states = []
    c = KazooClient(hosts=ens.host(keep), read_only=True, timeout=10, connection_retry=None)
    c.add_listener(states.append)
    c.start(timeout=20)
    try:
        assert c.client_state == KeeperState.CONNECTED_RO
        assert c.get("/ro/data")[0] == b"v1"
        assert c.get_children("/ro") == ["data"]
        with pytest.raises(NotReadOnlyCallError):
            c.create("/ro/new")
        with pytest.raises(NotReadOnlyCallError):
            c.set("/ro/data", b"v2")
        with pytest.raises(NotReadOnlyCallError):
            c.delete("/ro/data")
        assert c.get("/ro/data")[0] == b"v1"

        # the quorum comes back: the member leaves read-only mode, its
        # read-only connections are closed and the client finds read-write
        for sid in ens.sids:
            if sid != keep:
                ens.start(sid)
        ens.wait_serving()
        assert _isro(ens, keep) == "rw"
        wait_for(lambda: c.client_state == KeeperState.CONNECTED, 30,
                 what="client back in read-write mode")
        c.set("/ro/data", b"v2")
        assert c.get("/ro/data")[0] == b"v2"
    finally:
        c.stop()
        c.close()


def test_read_only_wire_answers(ensemble):
    """The raw protocol: NOTREADONLY with the tree's zxid for writes and
    sync(), readOnly true in the ConnectResponse, a non-read-only client or a
    global session's reconnection disconnected without an answer, a local
    session's closeSession answered without a txn."""
    ens = ensemble
    keep = 2
    g = RawClient(ens.client_ports[keep])
    g.handshake(timeout_ms=30000)   # a global session, made while the quorum is there
    global_id, global_pw = g.session_id, g.passwd
    g.close()
    _cut_off(ens, keep)
    zxid = int(four_letter_word("127.0.0.1", ens.client_ports[keep], "srvr")
               .split("Zxid: ")[1].split()[0], 16)

    plain = RawClient(ens.client_ports[keep])
    plain.send_frame(R.ConnectRequest(0, 0, 10000, 0, bytes(16), False).to_bytes())
    assert plain.closed_by_server()

    back = RawClient(ens.client_ports[keep])
    back.send_frame(R.ConnectRequest(0, 0, 30000, global_id, global_pw, True).to_bytes())
    assert back.closed_by_server()

    ro = RawClient(ens.client_ports[keep])
    resp = ro.handshake(read_only=True)
    assert resp.readOnly and resp.timeOut > 0 and resp.sessionId >> 56 == keep
    for op, rec in [(OpCode.create, R.CreateRequest("/ro/x", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)),
                    (OpCode.setData, R.SetDataRequest("/ro/data", b"", -1)),
                    (OpCode.delete, R.DeleteRequest("/ro/data", -1)),
                    (OpCode.sync, R.SyncRequest("/"))]:
        hdr, _ = ro.call(op, rec)
        assert (hdr.err, hdr.zxid) == (Err.NOTREADONLY, zxid), op
    hdr, body = ro.call(OpCode.getData, R.GetDataRequest("/ro/data", False))
    assert hdr.err == 0 and hdr.zxid == zxid
    hdr, _ = ro.call(OpCode.closeSession)
    assert (hdr.err, hdr.zxid) == (0, zxid)
    assert ro.closed_by_server()
    ro.close()
    assert "zk_local_sessions\t0" in four_letter_word("127.0.0.1", ens.client_ports[keep], "mntr")
