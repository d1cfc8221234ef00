"""Local sessions (``localSessionsEnabled``) with real processes, counting
txns by the leader's zxid.

As ZooKeeper 3.8 (UpgradeableSessionTracker, QuorumZooKeeperServer
.checkUpgradeSession): a new session on an ensemble member is local — no
createSession txn, none for its closeSession either; its writes cost their
own txn only; its first ephemeral create (a create, create2 or a multi
holding one) upgrades it with a createSession txn ahead of the create, or,
with ``localSessionsUpgradingEnabled=false``, fails EPHEMERALONLOCALSESSION;
it is known only to its server, so it cannot move to another one and dies
with it. A standalone server ignores the setting (SessionTrackerImpl)."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import EphemeralOnLocalSessionError

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyEnsemble, ZabpyServer, four_letter_word, mntr, wait_for
from rawclient import RawClient

LOCAL = "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true"
LOCAL_NO_UPGRADE = "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=false"


def _zxid(port: int) -> int:
    """The txn counter of the last zxid (each test stays in one epoch; a
    fresh leader shows 0 before its first txn, epoch<<32 | n after)."""
    text = four_letter_word("127.0.0.1", port, "srvr")
    return int(text.split("Zxid: ")[1].split()[0], 16) & 0xFFFFFFFF


def _mntr(port: int, key: str) -> int:
    return int(mntr(port)[f"zk_{key}"])


def _client(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=20)
    return c


def _member(ens: ZabpyEnsemble, role: str) -> int:
    return next(s for s in ens.sids if ens.mode(s) == role)


def _settled(port: int, expected: int) -> None:
    wait_for(lambda: _zxid(port) == expected, 10,
             what=f"leader zxid {expected:#x} (now {_zxid(port):#x})")


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_local_session_costs_no_txn_until_an_ephemeral_upgrades_it(role):
    with ZabpyEnsemble(3, extra=LOCAL) as ens:
        ens.wait_serving()
        member = _member(ens, role)
        leader_port = ens.client_ports[ens.leader()]
        port = ens.client_ports[member]
        before = _zxid(leader_port)

        c = _client(ens.host(member))
        assert c.get_children("/") == ["zookeeper"]
        assert _mntr(port, "local_sessions") == 1
        assert _mntr(port, "global_sessions") == 0
        c.create("/persistent", b"p")        # its own txn, nothing more
        _settled(leader_port, before + 1)
        c.stop()                             # closeSession of a local session: no txn
        c.close()
        assert _mntr(port, "local_sessions") == 0

        e = _client(ens.host(member))
        e.create("/eph", b"", ephemeral=True)  # createSession + create
        _settled(leader_port, before + 3)
        assert _mntr(port, "local_sessions") == 0
        assert _mntr(port, "global_sessions") == 1
        other = next(s for s in ens.sids if s != member)
        o = _client(ens.host(other))
        o.sync("/")
        assert o.exists("/eph").ephemeralOwner == e.client_id[0]
        e.create("/eph2", b"", ephemeral=True)  # already global: one txn
        _settled(leader_port, before + 4)
        e.stop()                                 # a global closeSession: one txn
        e.close()
        _settled(leader_port, before + 5)
        wait_for(lambda: o.exists("/eph") is None, 10, what="upgraded session's ephemeral gone")
        o.stop()
        o.close()


def test_multi_with_an_ephemeral_create_upgrades():
    with ZabpyEnsemble(3, extra=LOCAL) as ens:
        ens.wait_serving()
        member = _member(ens, "follower")
        leader_port = ens.client_ports[ens.leader()]
        before = _zxid(leader_port)
        c = _client(ens.host(member))
        t = c.transaction()
        t.create("/m1", b"")
        t.create("/m2", b"", ephemeral=True)
        assert t.commit() == ["/m1", "/m2"]
        _settled(leader_port, before + 2)     # createSession + the multi
        assert _mntr(ens.client_ports[member], "global_sessions") == 1
        c.stop()
        c.close()


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_ephemeral_on_local_session_without_upgrading(role):
    with ZabpyEnsemble(3, extra=LOCAL_NO_UPGRADE) as ens:
        ens.wait_serving()
        member = _member(ens, role)
        leader_port = ens.client_ports[ens.leader()]
        before = _zxid(leader_port)
        c = _client(ens.host(member))
        with pytest.raises(EphemeralOnLocalSessionError):
            c.create("/eph", b"", ephemeral=True)
        # ZooKeeper spends a zxid on it (an error txn), and nothing else
        _settled(leader_port, before + 1)
        c.sync("/")
        assert c.exists("/eph") is None
        assert _mntr(ens.client_ports[member], "local_sessions") == 1
        c.create("/plain", b"")
        _settled(leader_port, before + 2)
        c.stop()
        c.close()


def test_local_session_cannot_move_and_dies_with_its_server():
    with ZabpyEnsemble(3, extra=LOCAL) as ens:
        ens.wait_serving()
        home = _member(ens, "follower")
        away = next(s for s in ens.sids if s != home)
        raw = RawClient(ens.client_ports[home])
        raw.handshake(timeout_ms=30000)
        sid, pw = raw.session_id, raw.passwd
        assert sid >> 56 == home
        hdr, _ = raw.call(OpCode.exists, R.ExistsRequest("/", False))
        assert hdr.err == 0

        moved = RawClient(ens.client_ports[away])
        assert moved.handshake(session_id=sid, passwd=pw).timeOut == 0   # expired there
        moved.close()

        again = RawClient(ens.client_ports[home])   # back home it is alive
        assert again.handshake(session_id=sid, passwd=pw).timeOut > 0
        again.close()

        ens.kill(home)
        ens.start(home)
        ens.wait_serving()
        reborn = RawClient(ens.client_ports[home])
        assert reborn.handshake(session_id=sid, passwd=pw).timeOut == 0
        reborn.close()
        raw.close()


def test_standalone_ignores_local_sessions():
    cfg = "tickTime=200\nlocalSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n" \
          "4lw.commands.whitelist=*\n"
    with ZabpyServer(config_text=cfg) as srv:
        before = _zxid(srv.port)
        c = _client(srv.hosts)
        assert _zxid(srv.port) == before + 1   # a createSession txn, as ZooKeeper's standalone
        assert _mntr(srv.port, "local_sessions") == 0
        c.stop()
        c.close()
