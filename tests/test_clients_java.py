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
ordered list (the event thread also runs `sync`'s callback, so the script
syncs after a write whose event must be handled before `printwatches on`).
"""

from __future__ import annotations

import os
import re
import subprocess

from clients_common import (CLIENT_SOURCES, JAVA_CLIENT_JARS, assert_same, fresh_java,
                            fresh_zabpy, missing)

SCRIPT = os.path.join(CLIENT_SOURCES, "zkcli_session.txt")


def run_zkcli(port: int) -> tuple[int, str]:
    with open(SCRIPT) as f:
        script = f.read().replace("PORT", str(port))
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
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
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
