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
import shutil
import tempfile

import pytest

from conftest import JavaZooKeeper, java_missing, zabpy_server

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


@contextlib.contextmanager
def fresh_java():
    tmp = tempfile.mkdtemp(prefix="zabpy-clients-java-")
    server = JavaZooKeeper(tmp)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def fresh_zabpy(**overrides):
    with zabpy_server(**overrides) as server:
        yield server


def assert_same(zabpy_lines: list[str], java_lines: list[str], what: str) -> None:
    if zabpy_lines != java_lines:
        diff = "\n".join(difflib.unified_diff(java_lines, zabpy_lines, "java", "zabpy",
                                              lineterm="", n=2))
        raise AssertionError(f"{what}: zabpy's transcript differs from Java's\n{diff}")
