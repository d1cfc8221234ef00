"""The two servers one fuzzer seed runs against, both fresh and configured
alike: Debian's Java ZooKeeper 3.8 (standalone, as tests/conftest.py starts
it) and an in-process zabpy server.

Both get extended types (TTL nodes), the same super digest, tickTime 200 ms,
session timeouts 400..20000 ms and a container/TTL check every
``CONTAINER_CHECK_MS`` so that the fuzzer's waits for a reaped node stay short.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

from ..server import ZabpyServer, four_letter_word, free_port, wait_for

__all__ = ["JavaZooKeeper", "java_missing", "server_pair", "reaped_kinds", "SUPER_AUTH"]

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # password "test"
SUPER_AUTH = b"super:test"
JAVA_JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/zookeeper-jute.jar",
             "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")
TICK_MS = 200
SESSION_MIN_MS = 400
SESSION_MAX_MS = 20000
# Java's reaper may post a second delete for a node whose first delete is
# still in the pipeline (an extra error txn): keep the interval well above a
# txn's latency, and skip Java's fsync.
CONTAINER_CHECK_MS = 250


def java_missing() -> str | None:
    """Why the Java side cannot run here, or None."""
    if shutil.which("java") is None:
        return "java is not installed"
    for jar in JAVA_JARS:
        if not os.path.exists(jar):
            return f"{jar} is absent (install Debian's zookeeper package)"
    return None


# JVM properties the fuzzer adds: a fast container/TTL reaper, and no fsync.
FUZZ_PROPS = (f"-Dznode.container.checkIntervalMs={CONTAINER_CHECK_MS}",
              "-Dzookeeper.forceSync=no")


class JavaZooKeeper:
    """Debian's ZooKeeper 3.8 in standalone mode on a free port (extended
    types on, the super digest set; ``props``: more JVM properties). The
    fuzzer and the side-by-side tests (tests/conftest.py) both use it."""

    def __init__(self, tmp: str, props: tuple[str, ...] = FUZZ_PROPS,
                 cfg_lines: tuple[str, ...] = (), jars: tuple[str, ...] = ()):
        self.tmp = tmp
        self.props = props
        self.cfg_lines = cfg_lines  # more zoo.cfg lines (secureClientPort, ssl.*)
        self.jars = jars            # more classpath (Netty for the TLS port)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        data = os.path.join(self.tmp, "data")
        os.makedirs(data, exist_ok=True)
        cfg = os.path.join(self.tmp, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime={TICK_MS}\ndataDir={data}\nclientPort={self.port}\n"
                    f"clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    f"4lw.commands.whitelist=*\nminSessionTimeout={SESSION_MIN_MS}\n"
                    f"maxSessionTimeout={SESSION_MAX_MS}\n")
            f.write("".join(line + "\n" for line in self.cfg_lines))
        log4j = os.path.join(self.tmp, "log4j.properties")
        with open(log4j, "w") as f:
            f.write("log4j.rootLogger=INFO, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n"
                    f"log4j.appender.F.File={self.tmp}/zookeeper.log\n"
                    "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.F.layout.ConversionPattern=%d %p %c{1} - %m%n\n")
        cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", ":".join(JAVA_JARS + self.jars),
               f"-Dlog4j.configuration=file:{log4j}",
               "-Dzookeeper.extendedTypesEnabled=true",
               f"-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
               "-Dzookeeper.admin.enableServer=false", *self.props,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        self.out = open(os.path.join(self.tmp, "stdout.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self._serving, 60, 0.05, what=f"Java ZooKeeper on port {self.port}")

    def _serving(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"java exited with {self.proc.returncode}: "
                               f"{self.read_log()[-3000:]}")
        try:
            return "Mode:" in four_letter_word(self.host, self.port, "srvr", 1)
        except OSError:
            return False

    def read_log(self) -> str:
        path = os.path.join(self.tmp, "zookeeper.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.out.close()
        self.proc = None


@contextlib.contextmanager
def server_pair():
    """Yield (zabpy ZabpyServer, java port), two fresh servers; stop both after."""
    reason = java_missing()
    if reason:
        raise RuntimeError(f"the differential fuzzer needs Java ZooKeeper: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-difffuzz-")
    java = JavaZooKeeper(tmp)
    zabpy = ZabpyServer(extended_types_enabled=True, super_digest=SUPER_DIGEST,
                        tick_time_ms=TICK_MS, session_timeout_ms_min=SESSION_MIN_MS,
                        session_timeout_ms_max=SESSION_MAX_MS,
                        container_check_interval_ms=CONTAINER_CHECK_MS)
    try:
        java.start()
        zabpy.start()
        yield zabpy, java.port
    finally:
        zabpy.stop()
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def reaped_kinds(zabpy: ZabpyServer) -> dict[str, int | None]:
    """ephemeralOwner of zabpy's containers and TTL nodes by path, None for
    its other nodes.

    ZooKeeper shows a client 0 as the ephemeralOwner of both (getClientEphemeralOwner),
    so no reply tells the fuzzer which nodes the reaper will delete; it reads
    zabpy's tree for that (on the server's own thread) and waits on each
    server for those nodes. A kind that differs on Java shows as a node Java
    never reaps: a settle timeout, reported as a difference."""
    def read():
        tree = zabpy.runtime.server.tree
        reaped = {p: tree.nodes[p].ephemeral_owner for p in (*tree.containers, *tree.ttls)}
        return {p: reaped.get(p) for p in tree.nodes if p}
    return zabpy.call(read)
