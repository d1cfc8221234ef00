"""The Java client unchanged: Debian's zkCli (ZooKeeperMain 3.8) runs one
scripted session (tests/clients/zkcli_session.txt, every zkCli command and
flag, their error paths, two sessions) against a fresh Java ZooKeeper and a
fresh zabpy, and the normalised transcripts must be identical.

One JVM per server reads the commands on stdin (no JLine on the classpath,
so ZooKeeperMain reads plain lines). Normalisation masks what legitimately
differs: ctime/mtime, ephemeral owners (session ids), ports; it sorts
bracketed lists and runs of `ls -R` paths (hash order on Java). Watch
notifications are printed by the client's event thread and race with the
main thread's output, so they are taken out and compared as their own
ordered list (the event thread also runs `sync`'s callback, so the script syncs
before `printwatches off` and `on`: every event before is then printed, or
not, as the script says).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess

import pytest

from clients_common import (CLIENT_SOURCES, JAVA_CLIENT_JARS, JavaEnsemble, assert_same,
                            fresh_java, fresh_zabpy, missing)
from zabpy.testing import ZabpyEnsemble

SCRIPT = os.path.join(CLIENT_SOURCES, "zkcli_session.txt")
ENSEMBLE_SCRIPT = os.path.join(CLIENT_SOURCES, "zkcli_ensemble.txt")


def run_zkcli(port: int, script_path: str = SCRIPT,
              ports: dict[int, int] | None = None) -> tuple[int, str]:
    with open(script_path) as f:
        script = f.read()
    for sid, p in sorted((ports or {}).items(), reverse=True):
        script = script.replace(f"PORT{sid}", str(p))
    script = script.replace("PORT", str(port))
    cmd = ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", ":".join(JAVA_CLIENT_JARS),
           "org.apache.zookeeper.ZooKeeperMain", "-server", f"127.0.0.1:{port}"]
    done = subprocess.run(cmd, input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    return done.returncode, done.stdout


def _sort_path_runs(lines: list[str]) -> list[str]:
    out, run = [], []
    for line in lines + [""]:
        if line.startswith("/") and " " not in line:
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    return out[:-1]


def normalise(run: tuple[int, str]) -> tuple[list[str], list[str]]:
    """(output lines ending with the exit code, watch notifications), masked."""
    code, text = run
    out, events = [], []
    for line in text.splitlines():
        if line.startswith("WatchedEvent "):
            events.append(line)
            continue
        if line in ("", "WATCHER::"):
            continue
        line = re.sub(r"127\.0\.0\.1(:\d+)+", "127.0.0.1:PORT", line)
        line = re.sub(r"^([cm]time) = .*", r"\1 = T", line)
        line = re.sub(r"^ephemeralOwner = 0x(?!0$)[0-9a-f]+$", "ephemeralOwner = SESSION", line)
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            line = "[" + ", ".join(sorted(m.group(1).split(", "))) + "]"
        out.append(line)
    # `quit` closes the session and exits: its Closed event may or may not print.
    if events and "state:Closed" in events[-1]:
        events.pop()
    return _sort_path_runs(out) + [f"exit code {code}"], events


def test_zkcli_session_identical_on_java_and_zabpy():
    missing(JAVA_CLIENT_JARS, "zookeeper")
    with fresh_java() as java:
        java_out, java_events = normalise(run_zkcli(java.port))
    with fresh_zabpy() as zabpy:
        zabpy_out, zabpy_events = normalise(run_zkcli(zabpy.port))
    # The script really ran on Java: each command family left its mark.
    for mark in ("Created /c/ttl", "Created /c/seqeph-0000000004", "digest: u", "Sync is OK",
                 "Output quota for /q count=3,bytes=100=;byteHardLimit=1000;countHardLimit=5",
                 "KeeperErrorCode = Reconfig is disabled", "Insufficient permission : /c/acl",
                 "KeeperErrorCode = No such watcher for /w", "[/e2/mine]"):
        assert mark in java_out, f"{mark!r} missing from Java's transcript"
    assert any("PersistentWatchRemoved" in e for e in java_events), java_events
    assert len(java_out) > 300
    assert_same(zabpy_out, java_out, "zkCli output")
    assert_same(zabpy_events, java_events, "zkCli watch notifications")


@pytest.fixture(scope="module")
def ensembles():
    """A 3-member Java ensemble and a 3-member zabpy ensemble, one zoo.cfg form."""
    missing(JAVA_CLIENT_JARS, "zookeeper")
    with contextlib.ExitStack() as stack:
        yield {"java": stack.enter_context(JavaEnsemble(3)),
               "zabpy": stack.enter_context(ZabpyEnsemble(3))}


def test_zkcli_session_on_ensembles_identical(ensembles):
    """Writes through one member, reads after sync through the others
    (`connect` moves the session's client between members), the quorum's
    refusals (TTL without extended types, reconfig disabled, the config
    node's ACL), quotas."""
    runs = {kind: normalise(run_zkcli(ens.client_ports[1], ENSEMBLE_SCRIPT, ens.client_ports))
            for kind, ens in ensembles.items()}
    java_out = runs["java"][0]
    for mark in ("KeeperErrorCode = Unimplemented for /e/ttl", "Sync is OK", "y",
                 "KeeperErrorCode = Reconfig is disabled",
                 "Insufficient permission : /zookeeper/config/y", "[s-0000000001]"):
        assert mark in java_out, f"{mark!r} missing from Java's transcript"
    assert_same(runs["zabpy"][0], java_out, "zkCli output on ensembles")
    assert_same(runs["zabpy"][1], runs["java"][1], "zkCli watch notifications on ensembles")


def test_zkcli_config_on_ensembles_identical(ensembles, tmp_path):
    """Each member's /zookeeper/config holds the membership (Java writes it at
    start, outside any txn: dataVersion -1); zkCli `config` prints it."""
    script = tmp_path / "config.txt"
    script.write_text("".join(f"connect 127.0.0.1:PORT{sid}\nconfig\nconfig -c\n"
                              f"get -s /zookeeper/config\n" for sid in (1, 2, 3)) + "quit\n")
    runs = {kind: normalise(run_zkcli(ens.client_ports[1], str(script), ens.client_ports))[0]
            for kind, ens in ensembles.items()}
    assert runs["java"].count("server.3=127.0.0.1:PORT:participant") == 6, runs["java"]
    assert runs["java"].count("dataVersion = -1") == 3, runs["java"]
    assert_same(runs["zabpy"], runs["java"], "zkCli config on ensembles")


def test_zabpy_ensemble_config_node_holds_the_membership():
    """Regression (found by the test above): zabpy left /zookeeper/config
    empty in quorum mode. Checked with kazoo on every member, no Java needed."""
    from kazoo.client import KazooClient

    with ZabpyEnsemble(3) as ens:
        expected = "\n".join(
            [f"server.{sid}=127.0.0.1:{ens._quorum_ports[sid]}:{ens._election_ports[sid]}"
             f":participant" for sid in ens.sids] + ["version=0"]).encode()
        for sid in ens.sids:
            client = KazooClient(hosts=ens.host(sid))
            client.start(timeout=30)
            try:
                data, stat = client.get("/zookeeper/config")
                assert data == expected
                assert (stat.version, stat.mzxid, stat.aversion) == (-1, 0, -1)
                assert stat.mtime > 0
            finally:
                client.stop()
                client.close()
