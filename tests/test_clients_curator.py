"""Curator unchanged: Debian's Curator 5.4 recipes (libcurator-*-java).

tests/clients/CuratorScenarios.java, compiled here with javac, runs each
recipe under contention from several sessions and prints PASS or FAIL per
scenario: InterProcessMutex (no two holders, a shared counter exact),
LeaderLatch (handover on close), DistributedAtomicLong, CuratorCache (every
event, in order), SharedCount, InterProcessSemaphoreV2, barriers
(DistributedBarrier and DistributedDoubleBarrier), PersistentNode recreated
after its session is expired. Every scenario must pass on Java ZooKeeper, on
zabpy, standalone and as 3-server ensembles (tickTime 200 ms, the same
zoo.cfg for both), where LeaderLatch must also hand over when the server of
the leader's client is killed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from clients_common import CLIENT_SOURCES, JavaEnsemble, fresh_java, fresh_zabpy, missing
from zabpy.testing import ZabpyEnsemble

JARS = tuple(f"/usr/share/java/{j}.jar" for j in (
    "curator-recipes", "curator-framework", "curator-client", "zookeeper", "zookeeper-jute",
    "slf4j-api", "slf4j-nop", "guava"))
SCENARIOS = ["InterProcessMutex", "LeaderLatch", "DistributedAtomicLong", "CuratorCache",
             "SharedCount", "InterProcessSemaphoreV2", "Barriers", "PersistentNode"]


@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    missing(JARS, "libcurator-recipes-java")
    if shutil.which("javac") is None:
        pytest.skip("javac is not installed (Debian's default-jdk-headless; .ci/run installs it)")
    out = tmp_path_factory.mktemp("curator")
    cp = ":".join(JARS)
    subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", cp,
                    os.path.join(CLIENT_SOURCES, "CuratorScenarios.java")],
                   check=True, capture_output=True, text=True)
    return f"{out}:{cp}"


def java_cmd(classpath: str, *args: str) -> list[str]:
    return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", classpath, "CuratorScenarios",
            *args]


def run_standalone(classpath: str, hosts: str) -> list[str]:
    done = subprocess.run(java_cmd(classpath, "standalone", hosts), capture_output=True,
                          text=True, timeout=300)
    lines = done.stdout.splitlines()
    assert lines == [f"PASS {s}" for s in SCENARIOS], f"{done.stdout}\n{done.stderr[-3000:]}"
    return lines


def test_curator_recipes_on_java_zookeeper(classpath):
    with fresh_java() as java:
        run_standalone(classpath, java.hosts)


def test_curator_recipes_on_zabpy(classpath):
    with fresh_zabpy() as zabpy:
        run_standalone(classpath, zabpy.hosts)


@pytest.mark.parametrize("kind", ["java", "zabpy"])
def test_curator_recipes_and_leader_handover_on_an_ensemble(classpath, kind):
    with (JavaEnsemble if kind == "java" else ZabpyEnsemble)(3) as ens:
        run_standalone(classpath, ens.hosts)
        # Client i talks only to server i; kill the leader's server.
        proc = subprocess.Popen(java_cmd(classpath, "killleader",
                                         *(ens.host(sid) for sid in ens.sids)),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            assert first.startswith("LEADER "), first + proc.stderr.read()[-3000:]
            ens.kill(ens.sids[int(first.split()[1])])
            proc.stdin.write("killed\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert out.splitlines() == ["PASS LeaderLatch kill leader's server"], out + err[-3000:]
