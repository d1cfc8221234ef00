"""Dynamic reconfig (ZooKeeper 3.5+, zookeeperReconfig.md) with real processes.

* Side by side with Debian's Java ZooKeeper 3.8: two 3-member ensembles on
  the same zoo.cfg lines run the same reconfig requests; the answers (error
  codes, in ZooKeeper's order of checks: disabled, fromConfig, the request's
  form, the new config's voters, a synced quorum of them, and only then the
  ACL), /zookeeper/config (text, version, stat) and the files written
  (zoo.cfg.dynamic.<version>, the rewritten zoo.cfg, zoo.cfg.bak) must match.
* Membership changes while a client keeps writing: a server joins, moves
  its client port, an observer is swapped for a voter, the leader is
  removed; no acknowledged write is lost and every member ends on the same
  config.
* standaloneEnabled=false: a one-server ensemble grows to two.
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NewConfigNoQuorumError

from clients_common import JavaEnsemble, assert_same
from conftest import java_missing
from zabpy.testing import ZabpyEnsemble
from zabpy.testing.server import free_ports, wait_for

SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="      # password "test"
EXTRA = f"reconfigEnabled=true\nDigestAuthenticationProvider.superDigest={SUPER}"


def _client(hosts: str, auth: bool = False) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10, connection_retry={"max_tries": -1, "delay": 0.05},
                    auth_data=[("digest", "super:test")] if auth else None)
    c.start(timeout=30)
    return c


def _answer(client: KazooClient, **kw) -> str:
    try:
        data, stat = client.reconfig(**kw)
    except KazooException as e:
        return type(e).__name__
    return "OK " + data.decode()


# (who, reconfig arguments): the same list runs against Java and zabpy.
PHANTOM = "127.0.0.1:1{n}:2{n}:participant;127.0.0.1:3{n}"
STEPS = [
    ("anyone", dict(joining="server.999=0.0.0.0:1234:2345:observer;3456")),
    ("anyone", dict(joining="some thing")),
    ("anyone", dict(joining="server.999=0.0.0.0:1234:2345:observer;3456", from_config=5)),
    ("anyone", dict(leaving="1,2,3")),
    ("super", dict(joining="server.x=127.0.0.1:1:2;3")),
    ("super", dict(leaving="abc")),
    ("super", dict(joining="server.5=127.0.0.1:1")),
    ("super", dict(joining="server.101=0.0.0.0:1236:2348:observer")),
    ("super", dict(leaving="1,2")),
    ("super", dict(new_members="foo")),
    ("super", dict(joining="server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456")),
    ("super", dict(joining="server.998=" + PHANTOM.format(n=998))),
    ("super", dict(joining="server.997=" + PHANTOM.format(n=997) + ",server.12=127.0.0.1:4:5;6")),
    ("super", dict(joining="server.996=" + PHANTOM.format(n=996))),
    ("super", dict(joining="server.102=[::1]:1237:2349:observer;[::1]:3459")),
    ("super", dict(leaving="996,997,998,100,12,102")),
    ("super", "whole"),         # new_members: the current membership, non-incremental
    ("super", "from-current"),  # from_config: the current version
]


def _run_steps(ens: ZabpyEnsemble) -> list[str]:
    # A follower answers: Java's leader lists members sharing a hash bucket
    # (sids of 16 and more) in the order its requests built them, every
    # other member in the order of the config text it parsed; zabpy always so.
    leader = ens.leader()
    hosts = ens.host(min(s for s in ens.sids if s != leader))
    anyone, su = _client(hosts), _client(hosts, auth=True)
    try:
        out = []
        for who, kw in STEPS:
            client = su if who == "super" else anyone
            if kw in ("whole", "from-current"):
                su.sync("/zookeeper/config")
                data, _ = su.get("/zookeeper/config")
                text = data.decode()
                if kw == "whole":
                    kw = dict(new_members=",".join(text.split("\n")[:-1]))
                else:
                    kw = dict(from_config=int(text.rsplit("version=", 1)[1], 16))
            args = dict(joining=None, leaving=None, new_members=None)
            args.update(kw)
            out.append(_answer(client, **args))
        anyone.sync("/zookeeper/config")
        data, stat = anyone.get("/zookeeper/config")
        out.append(f"config {data.decode()!r} version={stat.version} czxid={stat.czxid} "
                   f"mzxid={stat.mzxid:x} aversion={stat.aversion} len={stat.dataLength}")
        return out
    finally:
        anyone.stop()
        su.stop()


def _mask(ens: ZabpyEnsemble, text: str) -> str:
    """Each member's ports and the ensemble's directory become names."""
    for sid in ens.sids:
        for kind, ports in (("c", ens.client_ports), ("q", ens._quorum_ports),
                            ("e", ens._election_ports)):
            text = re.sub(rf"\b{ports[sid]}\b", f"<{kind}{sid}>", text)
    return text.replace(os.path.realpath(ens.dir), "<dir>").replace(ens.dir, "<dir>")


def _files(ens: ZabpyEnsemble) -> list[str]:
    out = []
    for name in sorted(os.listdir(ens.dir)):
        if name.startswith("zoo") and ".cfg" in name and not name.endswith(".tmp"):
            with open(os.path.join(ens.dir, name)) as f:
                out.append(f"--- {name}\n" + f.read())
    return _mask(ens, "\n".join(out)).split("\n")


def test_reconfig_answers_and_files_match_java():
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    with JavaEnsemble(3, extra=EXTRA) as java, ZabpyEnsemble(3, extra=EXTRA) as ours:
        java_out = [_mask(java, line) for line in _run_steps(java)]
        our_out = [_mask(ours, line) for line in _run_steps(ours)]
        steps = [repr(s) for s in STEPS] + ["final /zookeeper/config"]

        def lines(out):
            return [f"{step} -> {line}" for step, answer in zip(steps, out)
                    for line in answer.split("\n")]
        assert_same(lines(our_out), lines(java_out), "reconfig answers")
        # every member has written the last config (the followers' files
        # follow their COMMITANDACTIVATE)
        try:
            wait_for(lambda: _files(ours) == _files(java), 20,
                     what="zabpy's config files to be Java's")
        except TimeoutError:
            assert_same(_files(ours), _files(java), "config files")


# ---- membership changes under a write load ------------------------------------------------

class Writer(threading.Thread):
    """Creates /load/n-<seq> in a loop; remembers every create acknowledged."""

    def __init__(self, hosts: str):
        super().__init__(daemon=True)
        self.client = _client(hosts)
        self.client.ensure_path("/load")
        self.acked: list[str] = []
        self.failures = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            n += 1
            try:
                self.client.create(f"/load/n-{n:06d}", b"x")
                self.acked.append(f"n-{n:06d}")
            except KazooException:
                self.failures += 1   # not acknowledged: may or may not exist
                time.sleep(0.05)

    def wait_more(self, count: int = 20, timeout: float = 30) -> None:
        target = len(self.acked) + count
        wait_for(lambda: len(self.acked) >= target, timeout, what=f"{count} more writes")

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        self.client.stop()


class GrowingEnsemble(ZabpyEnsemble):
    """A ZabpyEnsemble with ports ready for members that join later."""

    def __init__(self, size: int, joiners: int, **kw):
        super().__init__(size, **kw)
        extra = free_ports(3 * joiners)
        for i in range(joiners):
            sid = len(self.sids) + 1
            self.sids.append(sid)
            self.client_ports[sid], self._quorum_ports[sid], self._election_ports[sid] = \
                extra[3 * i:3 * i + 3]
        self.joiners = self.sids[-joiners:]

    def __enter__(self):
        try:
            for sid in self.sids:
                if sid not in self.joiners:
                    self.start(sid)
            self.wait_serving()
        except BaseException:
            self.__exit__()
            raise
        return self

    def spec(self, sid: int, role: str) -> str:
        return (f"server.{sid}=127.0.0.1:{self._quorum_ports[sid]}:{self._election_ports[sid]}"
                f":{role};127.0.0.1:{self.client_ports[sid]}")

    def start_joiner(self, sid: int, members: dict[int, str]) -> None:
        """A new server whose config is the ensemble's plus itself (the way
        zookeeperReconfig.md adds a server)."""
        data = os.path.join(self.dir, f"data{sid}")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, "myid"), "w") as f:
            f.write(f"{sid}\n")
        lines = [f"tickTime={self.tick_time_ms}", f"initLimit={self.init_limit}",
                 f"syncLimit={self.sync_limit}", f"dataDir={data}", "4lw.commands.whitelist=*",
                 "admin.enableServer=false", self.extra]
        lines += [self.spec(s, role) for s, role in sorted(members.items())]
        with open(self.cfg_path(sid), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.start(sid)

    def config(self, sid: int) -> str:
        c = _client(self.host(sid))
        try:
            c.sync("/zookeeper/config")
            return c.get("/zookeeper/config")[0].decode()
        finally:
            c.stop()


def _reconfig(hosts: str, auth: bool = True, **kw) -> str:
    """As an operator would: retried while the new config has no synced quorum yet."""
    su = _client(hosts, auth=auth)
    try:
        args = dict(joining=None, leaving=None, new_members=None)
        args.update(kw)
        deadline = time.monotonic() + 30
        while True:
            try:
                return su.reconfig(**args)[0].decode()
            except NewConfigNoQuorumError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        su.stop()


def test_add_swap_and_remove_the_leader_under_load():
    """zookeeperReconfig.md's three changes while a client writes; ZAB's
    guarantee (no acknowledged write lost) holds across each."""
    with GrowingEnsemble(3, 1, observers=1, extra=EXTRA) as ens:
        writer = Writer(ens.hosts)
        writer.start()
        try:
            # 1. add a server: it follows as a non-voter, then a reconfig adds it
            writer.wait_more()
            ens.start_joiner(5, {1: "participant", 2: "participant", 3: "participant",
                                 4: "observer", 5: "participant"})
            ens.wait_serving([5])
            text = _reconfig(ens.hosts, joining=ens.spec(5, "participant"))
            assert ens.spec(5, "participant") in text
            writer.wait_more()
            # 1b. move its client port: it listens on the new one
            old_port, ens.client_ports[5] = ens.client_ports[5], free_ports(1)[0]
            text = _reconfig(ens.hosts, joining=ens.spec(5, "participant"))
            assert f";127.0.0.1:{ens.client_ports[5]}" in text
            wait_for(lambda: ens.mode(5) == "follower", 30, what="server 5 on its new client port")
            assert old_port != ens.client_ports[5]
            writer.wait_more()
            # 2. swap the observer for a voter: 4 votes, a follower becomes an observer
            leader = ens.leader()
            follower = min(s for s in (1, 2, 3) if s != leader)
            text = _reconfig(ens.hosts, joining=ens.spec(4, "participant") + "," +
                             ens.spec(follower, "observer"))
            assert ens.spec(4, "participant") in text and ens.spec(follower, "observer") in text
            wait_for(lambda: ens.mode(4) == "follower" and ens.mode(follower) == "observer",
                     30, what="the observer and the follower to swap roles")
            writer.wait_more()
            # 3. remove the leader: the designated leader takes over
            leader = ens.leader()
            text = _reconfig(ens.hosts, leaving=str(leader))
            assert f"server.{leader}=" not in text
            rest = [s for s in ens.sids if s != leader]
            wait_for(lambda: ens.leader() in rest, 30, what="a leader of the new config")
            ens.wait_serving(rest)
            writer.wait_more()
        finally:
            writer.stop()
        # every member serving the last config agrees on it and holds every acked write
        final = ens.config(rest[0])
        reader = _client(",".join(ens.host(s) for s in rest))
        try:
            reader.sync("/load")
            children = set(reader.get_children("/load"))
        finally:
            reader.stop()
        lost = [n for n in writer.acked if n not in children]
        assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"
        assert len(writer.acked) >= 80
        for sid in rest:
            wait_for(lambda: ens.config(sid) == final, 20, what=f"member {sid}'s config")
        version = final.rsplit("version=", 1)[1]
        for sid in rest:
            with open(ens.cfg_path(sid)) as f:
                assert f"dynamicConfigFile={os.path.realpath(ens.cfg_path(sid))}.dynamic.{version}" \
                    in f.read()


def test_standalone_disabled_single_server_grows_and_restarts_from_its_files():
    """standaloneEnabled=false: one server is a quorum peer (leader of
    itself) and a reconfig can add a second voter; with skipACL=yes anyone
    may ask. A restarted member reads zoo.cfg's dynamicConfigFile."""
    extra = EXTRA + "\nstandaloneEnabled=false\nskipACL=yes"
    with GrowingEnsemble(1, 1, extra=extra) as ens:
        assert ens.mode(1) == "leader"
        c = _client(ens.host(1))
        c.create("/before", b"1")
        ens.start_joiner(2, {1: "participant", 2: "participant"})
        ens.wait_serving([2])
        text = _reconfig(ens.host(1), auth=False, joining=ens.spec(2, "participant"))
        assert ens.spec(2, "participant") in text
        c.create("/after", b"2")
        c.stop()
        c2 = _client(ens.host(2))
        try:
            c2.sync("/")
            assert c2.exists("/before") and c2.exists("/after")
        finally:
            c2.stop()
        wait_for(lambda: ens.config(2) == text, 20, what="member 2's config")
        with open(ens.cfg_path(1)) as f:
            assert "dynamicConfigFile=" in f.read()
        ens.kill(1)
        ens.start(1)
        ens.wait_serving([1, 2])
        assert ens.config(1) == text == ens.config(2)
        # back to one voter: allowed with standaloneEnabled=false
        text = _reconfig(ens.host(1), auth=False, leaving="2")
        assert "server.2=" not in text
