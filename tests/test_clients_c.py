"""The C client unchanged: Debian's libzookeeper-mt 3.8.

tests/clients/c_client.c, compiled here with gcc, runs one scenario (sync and
async API, every create mode, versions, ACLs and digest auth, a failed auth
scheme, multi, watches from two sessions, 1 MB of data, 100 pipelined async
creates, timeout negotiation, expiry by a session taken over and closed)
against a fresh Java ZooKeeper and a fresh zabpy; the transcripts, which
print zxids and versions as they are, must be identical. The program prints
events and completions at fixed points, so no normalisation is needed.

`cli_mt` (zookeeper-bin) runs batch commands on both servers too (its own
log lines, times, session ids and zxids masked).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from clients_common import CLIENT_SOURCES, assert_same, fresh_java, fresh_zabpy, missing

HEADER = "/usr/include/zookeeper/zookeeper.h"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"


@pytest.fixture(scope="module")
def c_client(tmp_path_factory) -> str:
    missing([HEADER], "libzookeeper-mt-dev")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    exe = str(tmp_path_factory.mktemp("cclient") / "c_client")
    subprocess.run(["gcc", "-O1", "-Wall", "-DTHREADED", "-o", exe,
                    os.path.join(CLIENT_SOURCES, "c_client.c"), "-lzookeeper_mt", "-lpthread"],
                   check=True, capture_output=True, text=True)
    return exe


def run_c(exe: str, port: int) -> list[str]:
    done = subprocess.run([exe, f"127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout.splitlines()


def test_c_client_transcript_identical_on_java_and_zabpy(c_client):
    with fresh_java() as java:
        java_lines = run_c(c_client, java.port)
    with fresh_zabpy() as zabpy:
        zabpy_lines = run_c(c_client, zabpy.port)
    # The scenario ran as meant on Java (the reference), not only alike on both.
    for line in ("low timeout: 400", "high timeout: 20000", "get 1 MB: ok len=1000000 same=1",
                 "multi failing: bad version [ok] [ok] [bad version] [run time inconsistency]",
                 "B get mine with auth: ok m", "  S-E session expired", "  B deleted /capi/e",
                 "  S-C session auth_failed", "reconnect expired: 1"):
        assert line in java_lines, f"{line!r} missing from Java's transcript"
    assert [x for x in java_lines if re.fullmatch(r"  acreate \d\d .*", x)] == \
        [f"  acreate {i:02d} ok" for i in range(100)]
    assert_same(zabpy_lines, java_lines, "C client")


def run_cli_mt(port: int, cmd: str) -> str:
    done = subprocess.run([CLI_MT, "-h", f"127.0.0.1:{port}", "-c", cmd], capture_output=True,
                          text=True, timeout=30)
    return done.stdout + done.stderr


# cli_mt prints these from its watcher thread while the main thread prints the
# command's output, so they may land anywhere, even inside another line: they
# are cut out wherever they are, and counted instead.
SESSION_NOTICES = (r"Watcher SESSION_EVENT state = CONNECTED_STATE",
                   r"Got a new session id: 0x[0-9a-f]+")


def normalise_cli_mt(text: str) -> list[str]:
    out = []
    for notice in SESSION_NOTICES:
        text, n = re.subn(notice, "", text)
        out.append(f"{notice}: {n} times")
    for line in text.splitlines():
        if "ZOO_INFO" in line or "ZOO_DEBUG" in line or not line.strip():
            continue  # the library's own log lines: times, thread ids, session ids
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"([cm]time) ?= ?.*", r"\1=T", line)
        line = re.sub(r"0x[0-9a-f]{9,}", "SESSION", line)
        # each run is a session, left to expire: its expiry may land between runs
        line = re.sub(r"([cm]zxid)=[0-9a-f]+", r"\1=Z", line)
        line = re.sub(r"^time = \d+ msec", "time = T", line)
        out.append(line)
    # children print one per tab-indented line, in the server's (unspecified) order
    kids = sorted(x for x in out if x.startswith("\t") and "=" not in x)
    return [x for x in out if not (x.startswith("\t") and "=" not in x)] + kids


@pytest.mark.skipif(not os.path.exists(CLI_MT), reason=f"{CLI_MT} is absent: install Debian's "
                    "zookeeper-bin (.ci/run does)")
def test_cli_mt_batch_commands_identical_on_java_and_zabpy():
    missing([CLI_MT], "zookeeper-bin")
    # (not `exists`: cli_mt 3.8's batch mode never exits after it)
    # cli_mt's create takes no data; its batch `exists` never exits (3.8).
    cmds = ["create /b", "create /b", "create2 /b/c", "set /b hello", "get /b", "ls /",
            "ls2 /b", "delete /b", "delete /b/c", "delete /b", "get /b", "od", "ls /"]
    results = {}
    for kind, start in (("java", fresh_java), ("zabpy", fresh_zabpy)):
        with start() as server:
            results[kind] = [normalise_cli_mt(run_cli_mt(server.port, c)) for c in cmds]
    assert "hello" in results["java"][4], results["java"][4]
    for cmd, j, z in zip(cmds, results["java"], results["zabpy"]):
        assert_same(z, j, f"cli_mt {cmd!r}")
