"""Shared by the real-client tests (test_clients_*.py): a fresh Java ZooKeeper
and a fresh zabpy, configured alike, and the comparison of two normalised
transcripts.

Each client scenario starts from empty trees on both servers, so that zxids,
sequence numbers and child counts printed by a client are comparable as they
are; only values that legitimately differ (times, session ids, ports) are
masked by each test's normaliser.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import subprocess

import pytest

from conftest import JAVA_JARS, java_missing, java_server, zabpy_server
from zabpy.testing import ZabpyEnsemble

JAVA_CLIENT_JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/zookeeper-jute.jar",
                    "/usr/share/java/commons-cli.jar", "/usr/share/java/slf4j-api.jar",
                    "/usr/share/java/slf4j-nop.jar")
CLIENT_SOURCES = os.path.join(os.path.dirname(__file__), "clients")


def missing(paths, package: str) -> None:
    """Skip, naming the Debian package, when a file it installs is absent."""
    reason = java_missing()
    if reason:
        pytest.skip(f"reference server missing: {reason}")
    for p in paths:
        if not os.path.exists(p):
            pytest.skip(f"{p} is absent: install Debian's {package} (.ci/run does)")


def fresh_java():
    return java_server(prefix="zabpy-clients-java-")


@contextlib.contextmanager
def fresh_zabpy(**overrides):
    with zabpy_server(**overrides) as server:
        yield server


class JavaEnsemble(ZabpyEnsemble):
    """Java ZooKeeper 3.8 members on the very zoo.cfg files ZabpyEnsemble
    writes (ZooKeeper's format), so both ensembles are configured alike."""

    def start(self, sid: int) -> None:
        assert sid not in self.procs or self.procs[sid].poll() is not None
        log4j = os.path.join(self.dir, f"log4j{sid}.properties")
        with open(log4j, "w") as f:
            f.write("log4j.rootLogger=INFO, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n"
                    f"log4j.appender.F.File={self.dir}/server{sid}.log\n"
                    "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.F.layout.ConversionPattern=%d %p %c{1} - %m%n\n")
        with open(os.path.join(self.dir, f"stdout{sid}.log"), "ab") as out:
            self.procs[sid] = subprocess.Popen(
                ["java", "-Xmx192m", "-XX:TieredStopAtLevel=1", "-cp", ":".join(JAVA_JARS),
                 f"-Dlog4j.configuration=file:{log4j}", "-Dzookeeper.admin.enableServer=false",
                 "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg_path(sid)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_serving(self, sids=None, timeout: float = 90.0) -> None:
        super().wait_serving(sids, timeout)  # three JVMs start on a shared machine


def assert_same(zabpy_lines: list[str], java_lines: list[str], what: str) -> None:
    if zabpy_lines != java_lines:
        diff = "\n".join(difflib.unified_diff(java_lines, zabpy_lines, "java", "zabpy",
                                              lineterm="", n=2))
        raise AssertionError(f"{what}: zabpy's transcript differs from Java's\n{diff}")
