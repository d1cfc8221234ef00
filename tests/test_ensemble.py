"""Real ensembles of zabpy processes on 127.0.0.1 (issue: ensemble).

Each test starts its own members with free ports, talks to them with kazoo
and kills them with SIGKILL where a crash is the point. No fixed sleeps:
every wait is for a condition."""

from __future__ import annotations

import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from zabpy.testing import ZabpyEnsemble, four_letter_word, wait_for


def _client(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10,
                    connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(timeout=20)
    return c


def test_three_servers_elect_one_leader_and_replicate():
    with ZabpyEnsemble(3) as ens:
        modes = sorted(ens.mode(s) for s in ens.sids)
        assert modes == ["follower", "follower", "leader"]
        leader = ens.leader()
        wait_for(lambda: "zk_synced_followers\t2" in four_letter_word(
            "127.0.0.1", ens.client_ports[leader], "mntr"), 10, what="mntr shows 2 synced followers")
        writers = {sid: _client(ens.host(sid)) for sid in ens.sids}
        for sid, c in writers.items():
            c.create(f"/from-{sid}", str(sid).encode())
        for sid, c in writers.items():
            c.sync("/")
            assert sorted(x for x in c.get_children("/") if x.startswith("from-")) == \
                ["from-1", "from-2", "from-3"]
            assert c.get("/from-2")[0] == b"2"
        for c in writers.values():
            c.stop()


def test_ephemeral_of_a_follower_session_goes_with_the_session():
    with ZabpyEnsemble(3) as ens:
        follower = next(s for s in ens.sids if ens.mode(s) == "follower")
        other = next(s for s in ens.sids if s != follower)
        a = _client(ens.host(follower))
        b = _client(ens.host(other))
        a.create("/eph", b"", ephemeral=True)
        b.sync("/")
        assert b.exists("/eph") is not None
        a.stop()  # closeSession goes through the leader
        wait_for(lambda: b.exists("/eph") is None, 10, what="ephemeral removed everywhere")
        b.stop()


@pytest.mark.parametrize("size", [3, 5])
def test_kill_leader_under_load_no_acknowledged_write_lost(size):
    with ZabpyEnsemble(size) as ens:
        acked: list[str] = []
        stop = threading.Event()
        client = _client(ens.hosts)

        def writer():
            i = 0
            while not stop.is_set():
                path = f"/w{i}"
                try:
                    client.create(path, b"x")
                    acked.append(path)
                except KazooException:
                    pass  # not acknowledged: may or may not exist
                i += 1

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        wait_for(lambda: len(acked) >= 50, 20, what="writes before the crash")
        old = ens.leader()
        ens.kill(old)
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 50, 30, what="writes after the new leader")
        stop.set()
        t.join(30)
        assert ens.leader() not in (None, old)
        survivors = [s for s in ens.sids if s != old]
        for sid in survivors:
            c = _client(ens.host(sid))
            c.sync("/")
            present = set(c.get_children("/"))
            missing = [p for p in acked if p[1:] not in present]
            assert not missing, f"server {sid} lost acknowledged writes {missing[:5]}"
            c.stop()
        client.stop()


def test_restarted_member_catches_up():
    with ZabpyEnsemble(3) as ens:
        victim = next(s for s in ens.sids if ens.mode(s) == "follower")
        # Not connected to the victim: its kill would be an unretried ConnectionLoss.
        c = _client(",".join(ens.host(s) for s in ens.sids if s != victim))
        ens.kill(victim)
        for i in range(30):
            c.create(f"/while-down-{i}", b"v")
        ens.start(victim)
        ens.wait_serving([victim])
        v = _client(ens.host(victim))
        v.sync("/")
        assert sum(1 for x in v.get_children("/") if x.startswith("while-down-")) == 30
        v.stop()
        c.stop()


def test_observer_serves_reads_and_forwards_writes():
    with ZabpyEnsemble(3, observers=1) as ens:
        obs = ens.sids[-1]
        assert ens.mode(obs) == "observer"
        o = _client(ens.host(obs))
        o.create("/via-observer", b"o")
        p = _client(ens.host(1))
        p.sync("/")
        assert p.get("/via-observer")[0] == b"o"
        p.create("/via-participant", b"p")
        o.sync("/")
        assert o.get("/via-participant")[0] == b"p"
        o.stop()
        p.stop()


def test_session_moves_to_another_member_with_its_ephemerals():
    with ZabpyEnsemble(3) as ens:
        follower = next(s for s in ens.sids if ens.mode(s) == "follower")
        others = [s for s in ens.sids if s != follower]
        c = KazooClient(hosts=",".join([ens.host(follower)] + [ens.host(s) for s in others]),
                        randomize_hosts=False, timeout=10,
                        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
        c.start(timeout=20)
        session = c.client_id
        c.create("/mine", b"", ephemeral=True)
        ens.kill(follower)

        def back():
            try:
                return c.connected and c.exists("/mine") is not None
            except KazooException:
                return False  # the call raced the reconnect
        wait_for(back, 30, what="reconnected to another member")
        assert c.client_id == session
        watcher = _client(ens.host(others[0]))
        watcher.sync("/")
        assert watcher.get("/mine")[1].ephemeralOwner == session[0]
        c.stop()
        wait_for(lambda: watcher.exists("/mine") is None, 10, what="ephemeral gone on close")
        watcher.stop()


def test_sync_through_a_follower():
    """sync() on a follower goes to the leader and comes back as SYNC; the
    path need not exist (kazoo's test_sync)."""
    with ZabpyEnsemble(3) as ens:
        follower = next(s for s in ens.sids if ens.mode(s) == "follower")
        c = _client(ens.host(follower))
        for _ in range(20):
            assert c.sync("/") == "/"
            assert c.sync("/not_there") == "/not_there"
        c.stop()


def test_killed_leaders_rejoin_round_after_round():
    """Each killed leader, restarted on its data, rejoins as a follower (the
    election links of the survivors outlive the dead peer's connections)."""
    with ZabpyEnsemble(3) as ens:
        c = _client(ens.hosts)
        for i in range(4):
            old = ens.leader()
            ens.kill(old)
            c.retry(c.create, f"/round-{i}", b"x")
            ens.start(old)
            ens.wait_serving()
            assert ens.mode(old) == "follower"
        assert sorted(x for x in c.get_children("/") if x.startswith("round-")) == \
            [f"round-{i}" for i in range(4)]
        c.stop()
