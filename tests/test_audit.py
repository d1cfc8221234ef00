"""The audit log (audit.enable=true): ZooKeeper 3.8's lines, compared side by
side with Java ZooKeeper doing the same writes."""

from __future__ import annotations

import re
import shutil
import tempfile

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.security import make_digest_acl

from zabpy.testing import ZabpyServer, wait_for
from zabpy.testing.difffuzz.servers import FUZZ_PROPS, JavaZooKeeper, java_missing

_LINE = re.compile(r"\b(INFO|ERROR)\b.*?((?:session|user)=[^\n]*\tresult=(?:success|failure|invoked))$")


def audit_lines(log_text: str) -> list[tuple[str, str]]:
    out = []
    for line in log_text.splitlines():
        m = _LINE.search(line)
        if m and "operation=" in m.group(2) and "operation=server" not in m.group(2):
            out.append((m.group(1), re.sub(r"session=0x[0-9a-f]+", "session=S", m.group(2))))
    return out


def workload(hosts: str) -> int:
    """Writes of every audited kind; returns how many audit lines they make."""
    c = KazooClient(hosts, auth_data=[("digest", "alice:secret")])
    c.start(timeout=20)
    try:
        c.create("/audit", b"x")
        c.create("/audit/e-", b"", ephemeral=True, sequence=True)
        c.create("/audit/eph", b"", ephemeral=True)
        with pytest.raises(NodeExistsError):
            c.create("/audit", b"again")
        c.set("/audit", b"y")
        c.set_acls("/audit", [make_digest_acl("alice", "secret", all=True)])
        with pytest.raises(NoNodeError):
            c.delete("/audit/missing")
        t = c.transaction()
        t.create("/audit/m", b"")
        t.set_data("/audit/m", b"z")
        t.check("/audit/m", 1)
        t.delete("/audit/m")
        t.commit()
        t = c.transaction()
        t.create("/audit/n", b"")
        t.delete("/audit/absent")
        t.commit()
        c.create("/audit/c", b"")
        c.delete("/audit/c")
    finally:
        c.stop()
        c.close()
    return 15  # 2 for the closed session's ephemerals


EXPECTED = [
    ("INFO", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/audit\tznode_type=persistent\tresult=success"),
    ("INFO", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/audit/e-0000000000\tznode_type=ephemeral_sequential\tresult=success"),
    ("INFO", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/audit/eph\tznode_type=ephemeral\tresult=success"),
    ("ERROR", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/audit\tznode_type=persistent\tresult=failure"),
    ("INFO", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=setData\tznode=/audit\tresult=success"),
    ("INFO", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=setAcl\tznode=/audit\tacl=digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa\tresult=success"),
    ("ERROR", "session=S\tuser=alice,127.0.0.1\tip=127.0.0.1\toperation=delete\tznode=/audit/missing\tresult=failure"),
]


def _check(lines, n):
    assert len(lines) == n, lines
    assert lines[:len(EXPECTED)] == EXPECTED
    ops = [dict(kv.split("=", 1) for kv in text.split("\t"))["operation"] for _, text in lines]
    assert ops[len(EXPECTED):] == ["create", "setData", "delete", "multiOperation", "create",
                                   "delete", "ephemeralZNodeDeletionOnSessionCloseOrExpire",
                                   "ephemeralZNodeDeletionOnSessionCloseOrExpire"]


def test_audit_lines_match_zookeeper():
    with ZabpyServer(config_text="tickTime=200\naudit.enable=true", subprocess=True) as zk:
        n = workload(zk.hosts)
        wait_for(lambda: len(audit_lines(zk.read_log())) >= n, what="audit lines")
        ours = audit_lines(zk.read_log())
        assert "operation=serverStart\tresult=success" in zk.read_log()
        assert "Slf4jAuditLogger" in zk.read_log()  # the logger operators route
    _check(ours, n)
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-audit-")
    java = JavaZooKeeper(tmp, props=FUZZ_PROPS + ("-Dzookeeper.audit.enable=true",))
    try:
        java.start()
        workload(java.hosts)
        wait_for(lambda: len(audit_lines(java.read_log())) >= n, what="Java's audit lines")
        theirs = audit_lines(java.read_log())
    finally:
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    assert ours == theirs


def test_audit_off_by_default():
    with ZabpyServer(config_text="tickTime=200", subprocess=True) as zk:
        c = KazooClient(zk.hosts)
        c.start(timeout=20)
        c.create("/quiet", b"")
        c.stop()
        c.close()
        assert "operation=" not in zk.read_log()


def test_audit_in_an_ensemble():
    """Each server audits the writes of its own clients; every server logs
    the ephemerals of a closed session (ZooKeeper's DataTree does)."""
    from zabpy.testing import ZabpyEnsemble

    with ZabpyEnsemble(3, extra="audit.enable=true") as ens:
        leader = ens.leader()
        follower = next(s for s in ens.sids if s != leader)
        clients = {}
        for sid in (leader, follower):
            c = KazooClient(ens.host(sid))
            c.start(timeout=20)
            c.create(f"/from-{sid}", b"", ephemeral=True)
            clients[sid] = c
        for c in clients.values():
            c.stop()
            c.close()

        def lines(sid):
            return audit_lines(ens.log(sid))

        for sid in (leader, follower):
            wait_for(lambda: len([t for _, t in lines(sid)
                                  if "ephemeralZNodeDeletion" in t]) == 2, what=f"server {sid}")
            own = [t for _, t in lines(sid) if "operation=create" in t]
            assert own == [f"session=S\tuser=127.0.0.1\tip=127.0.0.1\toperation=create"
                           f"\tznode=/from-{sid}\tznode_type=ephemeral\tresult=success"]
