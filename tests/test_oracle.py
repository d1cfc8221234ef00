"""The two-server oracle (QuorumOracleMaj, zoo.cfg ``oraclePath``), with real processes.

ZooKeeper 3.8's zookeeperOracleQuorums: each of the two servers reads its
own oracle file; '1' authorizes it to go on alone when the other one is
faulty. The survivor of a failure keeps or takes leadership when its file
says 1, and serves nothing when it says 0 (until the file says 1). The
restarted server joins the survivor as a follower.
"""

from __future__ import annotations

import os
import time

import pytest
from kazoo.client import KazooClient

from zabpy.testing import ZabpyEnsemble, wait_for


def _oracle(tmp_path, sid: int, value: str) -> None:
    path = os.path.join(tmp_path, f"oracle{sid}")
    with open(path + ".tmp", "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)


def _ensemble(tmp_path) -> ZabpyEnsemble:
    for sid in (1, 2):
        _oracle(tmp_path, sid, "0")
    return ZabpyEnsemble(2, extra=f"oraclePath={tmp_path}/oracle{{sid}}")


def _writes(ens: ZabpyEnsemble, sid: int, path: str) -> None:
    c = KazooClient(hosts=ens.host(sid), timeout=10)
    c.start(timeout=20)
    try:
        c.create(path, b"x")
        assert c.get(path)[0] == b"x"
    finally:
        c.stop()
        c.close()


def _stays_down(ens: ZabpyEnsemble, sid: int, seconds: float) -> None:
    """A refusal has no event to wait for: watch the member for a while."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert ens.mode(sid) not in ("leader", "follower"), ens.diagnosis()
        time.sleep(0.05)


@pytest.mark.parametrize("kill", ["follower", "leader"])
def test_survivor_whose_oracle_says_1_leads_alone_and_serves_writes(tmp_path, kill):
    with _ensemble(tmp_path) as ens:
        leader = ens.leader()
        follower = 3 - leader
        victim = leader if kill == "leader" else follower
        survivor = 3 - victim
        _writes(ens, survivor, "/before")
        _oracle(tmp_path, survivor, "1")
        ens.kill(victim)
        wait_for(lambda: ens.mode(survivor) == "leader", 30, what="the survivor leading")
        _writes(ens, survivor, "/alone")
        # The victim comes back (its oracle says 0): it follows the survivor.
        ens.start(victim)
        ens.wait_serving([victim])
        assert ens.mode(victim) == "follower" and ens.mode(survivor) == "leader"
        c = KazooClient(hosts=ens.host(victim), timeout=10)
        c.start(timeout=20)
        c.sync("/alone")
        assert c.exists("/alone") and c.exists("/before")
        c.stop()
        c.close()


@pytest.mark.parametrize("kill", ["follower", "leader"])
def test_survivor_whose_oracle_says_0_serves_nothing_until_it_says_1(tmp_path, kill):
    with _ensemble(tmp_path) as ens:
        leader = ens.leader()
        victim = leader if kill == "leader" else 3 - leader
        survivor = 3 - victim
        ens.kill(victim)
        wait_for(lambda: ens.mode(survivor) is None, 30, what="the survivor no longer serving")
        _stays_down(ens, survivor, 3.0)
        # The failure detector now says the other server is faulty.
        _oracle(tmp_path, survivor, "1")
        wait_for(lambda: ens.mode(survivor) == "leader", 90, what="the survivor leading")
        _writes(ens, survivor, "/late")
