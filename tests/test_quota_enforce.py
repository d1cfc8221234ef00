"""Hard quotas and quota state across restarts, side by side with Java
ZooKeeper 3.8.0.

Both servers here are our own (not the session-wide pair): Java started with
``-Dzookeeper.enforceQuota=true``, zabpy as a real process whose zoo.cfg says
``enforceQuota=true`` (ZooKeeper turns an unknown zoo.cfg key into the JVM
property ``zookeeper.<key>``, so Java honours that spelling as well).

With enforcement on, prep checks each create and setData against the usage
already applied (ZooKeeperServer.checkQuota): past a soft limit it logs
``Message:Quota exceeded: ... Value:null`` through a RateLogger, past a hard
limit it fails the request with QUOTAEXCEEDED. Limits or stats it cannot
parse fail the request (a multi as a whole) with MARSHALLINGERROR.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import pytest

from conftest import Pair, create_req
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.runtime.config import parse_config
from zabpy.testing import ZabpyServer, four_letter_word, wait_for
from zabpy.testing.difffuzz.servers import JavaZooKeeper, java_missing

Q = "/zookeeper/quota"
ZOO_CFG = "tickTime=200\nenforceQuota=true"


@pytest.fixture(scope="module")
def servers():
    """(zabpy, java), both enforcing quotas, each with its own data dir."""
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-quota-")
    java = JavaZooKeeper(os.path.join(tmp, "java"), props=("-Dzookeeper.enforceQuota=true",))
    zabpy = ZabpyServer(subprocess=True, data_dir=os.path.join(tmp, "zabpy"), config_text=ZOO_CFG)
    try:
        java.start()
        zabpy.start()
        yield zabpy, java
    finally:
        zabpy.stop()
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def pair(servers):
    p = Pair(servers[0].port, servers[1].port)
    yield p
    p.close()


def set_quota(pair, path: str, limits: bytes) -> None:
    """What zkCli's setquota sends (its parent check aside)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        p = Q + "/" + "/".join(parts[:i])
        if pair.z.call(OpCode.exists, R.ExistsRequest(p, False)).err:
            pair.call(OpCode.create, create_req(p, None))
    pair.call(OpCode.create, create_req(f"{Q}{path}/zookeeper_limits", limits))
    pair.call(OpCode.create, create_req(f"{Q}{path}/zookeeper_stats", b"count=0,bytes=0"))


def stats(pair, path: str) -> bytes:
    reply = pair.call(OpCode.getData, R.GetDataRequest(f"{Q}{path}/zookeeper_stats", False))
    return dict(reply[2][1])["data"]


def quota_lines(log: str, path: str) -> list[str]:
    """The RateLogger lines about ``path``, from 'Message' (or '[N times]') on."""
    out = []
    for line in log.splitlines():
        m = re.search(r"(\[\d+ times\] )?Message: ?Quota exceeded: (\S+) .*", line)
        if m and m.group(2) == path:
            out.append(m.group(0))
    return out


def test_enforce_quota_is_a_zoo_cfg_key():
    assert parse_config("enforceQuota=true")[0].enforce_quota
    assert parse_config("zookeeper.enforceQuota=TRUE")[0].enforce_quota
    assert not parse_config("enforceQuota=yes")[0].enforce_quota  # Boolean.parseBoolean
    assert not parse_config("tickTime=200")[0].enforce_quota


def test_both_servers_say_they_enforce(servers):
    line = "zookeeper.enforceQuota = true, Quota Enforce enables"
    assert [line in srv.read_log() for srv in servers] == [True, True]


def test_hard_count_limit(pair, name):
    pair.call(OpCode.create, create_req(name, b"x"))
    set_quota(pair, name, b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3")
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.call(OpCode.create, create_req(f"{name}/b"))
    err = pair.call(OpCode.create, create_req(f"{name}/c"))[0]
    assert err == Err.QUOTAEXCEEDED
    # a sequential create names its node first, then fails all the same
    pair.call(OpCode.create, create_req(f"{name}/s-", flags=2))
    # setData changes no count; a delete frees room
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/a", b"more", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/b", -1))
    assert pair.call(OpCode.create, create_req(f"{name}/c"))[0] == Err.OK
    assert stats(pair, name) == b"count=3,bytes=5"


def test_hard_byte_limit_and_check_order(pair, name):
    """setData is checked after the ACL and before the version."""
    pair.call(OpCode.create, create_req(name, b"1234"))
    set_quota(pair, name, b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1")
    assert pair.call(OpCode.setData, R.SetDataRequest(name, b"12345678901", -1))[0] \
        == Err.QUOTAEXCEEDED
    assert pair.call(OpCode.setData, R.SetDataRequest(name, b"12345678901", 7))[0] \
        == Err.QUOTAEXCEEDED
    assert pair.call(OpCode.setData, R.SetDataRequest(name, b"1", 7))[0] == Err.BADVERSION
    pair.call(OpCode.setData, R.SetDataRequest(name, b"1234567890", -1))
    pair.call(OpCode.create, create_req(f"{name}/e", b""))       # no bytes: not checked
    assert pair.call(OpCode.create, create_req(f"{name}/f", b"1"))[0] == Err.QUOTAEXCEEDED
    pair.call(OpCode.setData, R.SetDataRequest(name, b"123", -1))  # shrinking is fine
    pair.call(OpCode.create, create_req(f"{name}/f", b"1234567"))
    assert stats(pair, name) == b"count=3,bytes=10"


def test_multi_checks_each_op_against_applied_usage(pair, name):
    """Inside a multi each create is checked against the usage before the
    multi (not counting its own earlier ops), so a multi can overshoot; an
    op that fails alone fails the multi at that op."""
    pair.call(OpCode.create, create_req(name))
    set_quota(pair, name, b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2")
    pair.multi([(OpCode.create, create_req(f"{name}/m1")),
                (OpCode.create, create_req(f"{name}/m2")),
                (OpCode.setData, R.SetDataRequest(f"{name}/m1", b"x", -1))])
    assert stats(pair, name) == b"count=3,bytes=1"
    reply = pair.multi([(OpCode.setData, R.SetDataRequest(f"{name}/m1", b"y", -1)),
                        (OpCode.create, create_req(f"{name}/m3")),
                        (OpCode.delete, R.DeleteRequest(f"{name}/m2", -1))])
    assert [r[1] for r in reply[2]] == [0, Err.QUOTAEXCEEDED, Err.RUNTIMEINCONSISTENCY]
    assert stats(pair, name) == b"count=3,bytes=1"


def test_pipelined_setdata_measures_from_the_pending_data():
    """(prep core) A setData's change in bytes is taken from the data an
    earlier, not yet applied, write of the node gives it (ZooKeeper's
    ChangeRecord.data), while the usage is the applied one."""
    from zabpy.pipeline.prep import PendingChanges, PrepContext, prepare
    from zabpy.tree import DataTree

    tree = DataTree()
    for i, (path, data) in enumerate([("/p", b"12345678"), (f"{Q}/p", None),
                                      (f"{Q}/p/zookeeper_limits", b"byteHardLimit=10"),
                                      (f"{Q}/p/zookeeper_stats", b"")], start=1):
        tree.create_node(path, data, (), 0, -1, i, 0)
    assert tree.nodes[f"{Q}/p/zookeeper_stats"].data == b"count=1,bytes=8"
    pending = PendingChanges(tree)
    ctx = PrepContext(1, [], enforce_quota=True)
    # pending "" then 4 bytes: +4 on the applied 8 fits; measured from the
    # applied 8 bytes it would be -4 and fit too, so try 7: +7 > 10 - 8
    assert prepare(OpCode.setData, R.SetDataRequest("/p", b"", -1), 5, pending, ctx)[0] \
        == OpCode.setData
    assert prepare(OpCode.setData, R.SetDataRequest("/p", b"1234567", -1), 6, pending,
                   ctx)[1] == R.ErrorTxn(Err.QUOTAEXCEEDED)
    assert ctx.quota_messages == ["Quota exceeded: /p [current bytes=15, hardByteLimit=10]"]
    ctx.quota_messages.clear()
    assert prepare(OpCode.setData, R.SetDataRequest("/p", b"12", -1), 7, pending, ctx)[0] \
        == OpCode.setData
    assert ctx.quota_messages == []


def test_unreadable_limits_fail_the_request(pair, name):
    """ZooKeeper answers MARSHALLINGERROR when it cannot parse the limits
    (or stats) it checks against, for a multi as a whole."""
    pair.call(OpCode.create, create_req(name))
    set_quota(pair, name, b"count=1")
    pair.call(OpCode.setData, R.SetDataRequest(f"{Q}{name}/zookeeper_limits", b"junk", -1))
    assert pair.call(OpCode.create, create_req(f"{name}/a"))[0] == Err.MARSHALLINGERROR
    assert pair.call(OpCode.setData, R.SetDataRequest(name, b"z", -1))[0] \
        == Err.MARSHALLINGERROR
    assert pair.multi([(OpCode.create, create_req("/elsewhere-" + name[1:])),
                       (OpCode.create, create_req(f"{name}/a"))])[0] == Err.MARSHALLINGERROR
    pair.call(OpCode.exists, R.ExistsRequest("/elsewhere-" + name[1:], False))
    pair.call(OpCode.setData, R.SetDataRequest(f"{Q}{name}/zookeeper_limits", b"", -1))
    pair.call(OpCode.create, create_req(f"{name}/a"))  # no limits: nothing to check


def test_soft_limits_log_as_zookeeper_does(servers, pair, name):
    """Soft limits let the request through and log a RateLogger line; a
    message repeated at once is counted and written when the next one comes
    (with one repeat the lines are the same whatever the timing)."""
    zabpy, java = servers
    pair.call(OpCode.create, create_req(name))
    set_quota(pair, name, b"count=2,bytes=3")
    pair.call(OpCode.create, create_req(f"{name}/a", b"12"))   # count 2, bytes 2: fits
    pair.call(OpCode.create, create_req(f"{name}/b"))          # count 3 > 2
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1234", -1))  # bytes 4 > 3
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/b", b"1", -1))     # bytes 5
    pair.call(OpCode.setData, R.SetDataRequest(f"{name}/b", b"2", -1))     # same size: no check
    pair.call(OpCode.create, create_req(f"{name}/c"))          # count 4
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/c", -1))
    pair.call(OpCode.create, create_req(f"{name}/c"))          # count 4 again: counted
    assert stats(pair, name) == b"count=4,bytes=5"
    other = f"{name}_other"
    set_quota(pair, other, b"count=0")
    pair.call(OpCode.create, create_req(other))                # another message: the flush
    want = quota_lines(java.read_log(), name)
    assert len(want) == 5, want
    got = wait_for(lambda: quota_lines(zabpy.read_log(), name) == want, 10,
                   what="zabpy's quota log lines")
    assert got


def test_quota_metrics_in_mntr(servers):
    """ZooKeeper's per-namespace quota gauge sets (limits, hard before soft,
    and usage, summed by top namespace) and the quota-exceeded counter set,
    after every test above did the same on both servers. Each set's keys
    are sorted here (Java lists them in hash order)."""
    def lines(srv):
        text = four_letter_word(srv.host, srv.port, "mntr", 5)
        return sorted(x for x in text.splitlines() if "quota" in x)

    zabpy, java = servers
    want = lines(java)
    assert any("quota_exceeded_error_per_namespace" in x for x in want), want
    assert lines(zabpy) == want


def test_quotas_survive_restarts(servers, pair, name):
    """The quota'd paths come back from the log (and, after a second restart,
    from the snapshot the first one wrote, which recounts every quota: a
    stats node a client wrote by hand is corrected then, on both)."""
    zabpy, java = servers
    pair.call(OpCode.create, create_req(name, b"ab"))
    pair.call(OpCode.create, create_req(f"{name}/a", b"cde"))
    set_quota(pair, name, b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5")
    pair.multi([(OpCode.create, create_req(f"{name}/m", b"12")),
                (OpCode.setData, R.SetDataRequest(f"{name}/a", b"c", -1)),
                (OpCode.delete, R.DeleteRequest(f"{name}/m", -1))])
    pair.call(OpCode.setData, R.SetDataRequest(f"{Q}{name}/zookeeper_stats",
                                               b"count=3,bytes=50", -1))
    pair.call(OpCode.create, create_req(f"{name}/b", b"z"))
    assert stats(pair, name) == b"count=4,bytes=51"
    zn, jn = pair.zn, pair.jn
    snaps = _snapshots(zabpy)
    for round_ in (1, 2):
        pair.close()
        zabpy.restart()
        java.stop()
        java.start()
        pair.__init__(zabpy.port, java.port)
        pair.zn.base, pair.zn.labels = zn.base, zn.labels
        pair.jn.base, pair.jn.labels = jn.base, jn.labels
        # the first restart replays the hand-written stats; the second recounts
        assert stats(pair, name) == (b"count=4,bytes=51" if round_ == 1 else b"count=3,bytes=4")
        if round_ == 1:   # zabpy snapshots after a replay, in the background
            wait_for(lambda: len(_snapshots(zabpy)) > len(snaps), 30, 0.05,
                     what="zabpy's snapshot after restart")
    assert pair.call(OpCode.create, create_req(f"{name}/c"))[0] == Err.OK
    assert pair.call(OpCode.create, create_req(f"{name}/d"))[0] == Err.OK
    assert pair.call(OpCode.create, create_req(f"{name}/e"))[0] == Err.QUOTAEXCEEDED
    assert stats(pair, name) == b"count=5,bytes=4"


def _snapshots(zabpy: ZabpyServer) -> list[str]:
    d = os.path.join(zabpy.data_dir, "version-2")
    return sorted(f for f in os.listdir(d) if f.startswith("snapshot.")) if os.path.isdir(d) \
        else []


def test_ensemble_enforces_on_the_leader_and_every_member_counts():
    """In an ensemble the leader's prep checks the quota (a write sent to a
    follower fails all the same); every member applies the same usage, and
    a member that was down catches up to it."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import QuotaExceededError

    from zabpy.testing import ZabpyEnsemble

    def client(hosts):
        c = KazooClient(hosts=hosts, timeout=10)
        c.start(timeout=20)
        return c

    with ZabpyEnsemble(3, extra="enforceQuota=true") as ens:
        follower = next(s for s in ens.sids if ens.mode(s) == "follower")
        c = client(ens.host(follower))
        c.create("/e", b"ab")
        c.create(f"{Q}/e/zookeeper_limits", b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3",
                 makepath=True)
        c.create(f"{Q}/e/zookeeper_stats", b"count=0,bytes=0")
        ens.kill(follower)   # misses the rest
        c.stop()
        c = client(",".join(ens.host(s) for s in ens.sids if s != follower))
        c.create("/e/a", b"123")
        tx = c.transaction()
        tx.create("/e/b")
        tx.set_data("/e/a", b"1")
        assert tx.commit()[0] == "/e/b"
        with pytest.raises(QuotaExceededError):
            c.create("/e/c")
        c.stop()
        ens.start(follower)
        ens.wait_serving()
        for sid in ens.sids:
            m = client(ens.host(sid))
            m.sync("/")
            assert m.get(f"{Q}/e/zookeeper_stats")[0] == b"count=3,bytes=3", sid
            with pytest.raises(QuotaExceededError):
                m.create("/e/c")
            m.stop()
        leader = ens.leader()
        assert "Message:Quota exceeded: /e [current count=4, hardCountLimit=3] Value:null" \
            in ens.log(leader)
