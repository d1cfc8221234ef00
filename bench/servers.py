"""Start, probe, measure and stop the servers under test: Java ZooKeeper and zabpy.

Both servers get the same zoo.cfg (``write_zoo_cfg``): the same tickTime and
forceSync, a data directory under one work directory (so on the same disk),
a client port on 127.0.0.1, ``maxClientCnxns=0`` (the watch storm opens
10,000 connections from one address) and the admin HTTP server off. Only
the command differs:

* Java: ``java -cp zookeeper.jar:slf4j-log4j12.jar:log4j-1.2.jar
  -Dlog4j.configuration=file:... QuorumPeerMain zoo.cfg``. Debian's
  zookeeper.jar names its other dependencies in its manifest Class-Path, so
  those three jars are the whole classpath. Like Debian's scripts, no heap
  size is given (the JVM then allows a quarter of RAM). Upstream's zkEnv.sh
  uses -Xmx1000m, with which the 1 MiB-value workload runs Java out of
  memory: the committed log keeps the last 500 proposals, 500 MiB of them
  (``--java-heap-mb 1000`` reproduces that).
* zabpy: ``python -m zabpy server zoo.cfg`` by default, or any command
  template containing ``{cfg}``.

``ensure_zabpy_bytecode`` compiles zabpy's sources to ``__pycache__`` once, as
``pip install`` does for an installed package: an editable install under
``PYTHONDONTWRITEBYTECODE=1`` (our machines set it) never caches bytecode, so
every zabpy process would compile its ~130 modules again at start-up, about
0.15 s of CPU, while Java starts from the compiled classes in its jars. For
the same reason it writes zabpy's cache of compiled dataclass methods
(``zabpy/_codecache.py``, ``warm()``), which a server would otherwise write
at its first exit.

``ensure_java_zookeeper`` installs Debian's ``zookeeper`` package (and a
headless JRE) with apt-get when the jar or java is missing, and says so.

``Server.start`` records when the process was spawned, ``wait_ready`` polls
the client port until a session handshake succeeds (or ``srvr`` answers
with ``Mode:``) and returns the seconds from spawn to that first served
request. Each server runs in its own process group, which ``stop`` signals
(SIGTERM, then SIGKILL after a grace period), so nothing outlives a run;
use it as a context manager or call ``stop`` in a ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from zabpy.jute import records as R
from zabpy.jute import Reader

from . import procfs
from .client import Counters, Session, SessionError, connect_request_frame

__all__ = ["JAVA_JARS", "Server", "ensure_java_zookeeper", "free_port", "java_command",
           "probe", "server_version", "write_zoo_cfg", "zabpy_command", "DEFAULT_ZABPY_CMD",
           "ensure_zabpy_bytecode"]

JAVA_JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar",
             "/usr/share/java/log4j-1.2.jar")
JAVA_HEAP_MB = 0  # 0: no -Xmx, as Debian's scripts
DEFAULT_ZABPY_CMD = f"{shlex.quote(sys.executable)} -m zabpy server {{cfg}}"
READY_POLL_S = 0.02  # a new readiness probe starts this often
READY_PROBES_MAX = 100  # probes in flight at once
STOP_GRACE_S = 15.0

LOG4J_PROPERTIES = """\
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_zoo_cfg(home: Path, port: int, *, tick_ms: int = 2000, force_sync: bool = True) -> Path:
    """A standalone zoo.cfg in ``home`` with data in ``home/data``; returns its path."""
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    cfg = home / "zoo.cfg"
    cfg.write_text("\n".join([
        f"tickTime={tick_ms}",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir={data}",
        f"clientPort={port}",
        "clientPortAddress=127.0.0.1",
        "maxClientCnxns=0",
        f"forceSync={'yes' if force_sync else 'no'}",
        "admin.enableServer=false",
        "autopurge.purgeInterval=0",
        "",
    ]))
    return cfg


def java_command(cfg: Path, heap_mb: int = JAVA_HEAP_MB) -> list[str]:
    log4j = cfg.parent / "log4j.properties"
    log4j.write_text(LOG4J_PROPERTIES)
    heap = [f"-Xmx{heap_mb}m"] if heap_mb else []
    return ["java", *heap, "-cp", ":".join(JAVA_JARS),
            f"-Dlog4j.configuration=file:{log4j}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]


def zabpy_command(cfg: Path, template: str = DEFAULT_ZABPY_CMD) -> list[str]:
    return [part.replace("{cfg}", str(cfg)) for part in shlex.split(template)]


def ensure_zabpy_bytecode(log=print) -> int:
    """Compile the importable zabpy package's sources to bytecode where the
    cached bytecode is missing or older than its source (what ``pip install``
    does at install time); returns how many files it wrote, and logs that."""
    import compileall
    import io
    import zabpy
    root = Path(zabpy.__file__).parent
    quiet = io.StringIO()  # compileall prints a line per directory otherwise
    stdout, sys.stdout = sys.stdout, quiet
    try:
        before = {p: p.stat().st_mtime_ns for p in root.rglob("__pycache__/*.pyc")}
        compileall.compile_dir(str(root), quiet=1)
        after = {p: p.stat().st_mtime_ns for p in root.rglob("__pycache__/*.pyc")}
    finally:
        sys.stdout = stdout
    written = sum(1 for p, t in after.items() if before.get(p) != t)
    if written:
        log(f"bench: compiled {written} zabpy modules to bytecode under {root} "
            "(as pip install does; start-up then loads them instead of compiling)")
    # zabpy's dataclass methods, cached as bytecode is (zabpy/_codecache.py), by
    # a fresh interpreter that imports what the server does (with this one's path)
    path = os.pathsep.join(p for p in (str(root.parent), os.environ.get("PYTHONPATH")) if p)
    subprocess.run([sys.executable, "-c", "import zabpy._codecache as c; c.warm()"],
                   check=True, env=dict(os.environ, PYTHONPATH=path))
    return written


def ensure_java_zookeeper(log=print, run=subprocess.run, jars=JAVA_JARS,
                          java=lambda: shutil.which("java")) -> list[str]:
    """Make Java ZooKeeper runnable, installing Debian's package if needed.

    Returns what was done (empty when it was already there), and logs it.
    ``run``, ``jars`` and ``java`` are parameters so a test can use a fake.
    """
    done: list[str] = []
    if not all(Path(j).exists() for j in jars) or java() is None:
        cmd = ["apt-get", "install", "-y", "zookeeper", "default-jre-headless"]
        log(f"bench: Java ZooKeeper is missing; running `{' '.join(cmd)}`")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if run(cmd, env=env).returncode != 0:
            log("bench: that failed; running `apt-get update` and trying again")
            run(["apt-get", "update"], env=env, check=True)
            run(cmd, env=env, check=True)
        done.append(f"installed Debian's zookeeper package: `{' '.join(cmd)}`")
        log(f"bench: {done[-1]}")
    missing = [j for j in jars if not Path(j).exists()]
    if missing or java() is None:
        raise RuntimeError(f"Java ZooKeeper still not runnable: missing {missing or 'java'}")
    if not done:
        log(f"bench: Java ZooKeeper is installed ({jars[0]}); nothing to install")
    return done


def server_version(port: int) -> str | None:
    """The first line of ``srvr`` (e.g. "Zookeeper version: 3.8.0-..."), if it answers."""
    try:
        return _srvr("127.0.0.1", port, 2.0).splitlines()[0].strip() or None
    except (OSError, IndexError):
        return None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def _handshake(host: str, port: int, timeout_s: float) -> bool:
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(connect_request_frame(30_000))
        (n,) = struct.unpack(">i", _recv_exact(s, 4))
        resp = R.ConnectResponse.read(Reader(_recv_exact(s, n)))
        if resp.sessionId == 0:
            return False
        # Close the probe's session so it does not linger until it expires.
        s.sendall(struct.pack(">iii", 8, 1, -11))
        try:
            _recv_exact(s, 4)
        except (OSError, ConnectionError):
            pass
        return True


def _srvr(host: str, port: int, timeout_s: float) -> str:
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(b"srvr")
        out = bytearray()
        while chunk := s.recv(65536):
            out += chunk
        return out.decode("utf-8", "replace")


def probe(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when the server serves: a session handshake works, or srvr reports a Mode."""
    try:
        if _handshake(host, port, timeout_s):
            return True
    except ConnectionRefusedError:
        return False
    except (OSError, ConnectionError, ValueError):
        pass
    try:
        return "Mode:" in _srvr(host, port, timeout_s)
    except OSError:
        return False


async def _handshake_at(host: str, port: int) -> float | None:
    """time.monotonic() when a new session was established, or None if it was not."""
    try:
        sess = await Session.open(host, port, Counters(), connect_timeout_s=30)
    except SessionError:
        return None
    served = time.monotonic()
    try:
        await sess.close(5)
    except (SessionError, asyncio.TimeoutError):
        sess.abort()
    return served


class Server:
    """One server process under test (see the module docstring)."""

    def __init__(self, name: str, home: Path, port: int, command: list[str]):
        self.name = name
        self.home = home
        self.port = port
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self._log = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.home / "server.log", "ab")
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.home)

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds from spawn to the first served request; raises if it never serves.

        A server may accept connections before it can serve them (Java does
        while it loads its database, and leaves such a connection hanging), so
        probes overlap: a new session handshake starts every READY_POLL_S
        while earlier ones wait, and the first to succeed gives the time.
        """
        return asyncio.run(self._wait_ready(time.monotonic() + timeout_s, timeout_s))

    async def _wait_ready(self, deadline: float, timeout_s: float) -> float:
        probes: set[asyncio.Task] = set()
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                       f"see {self.home / 'server.log'}:\n{self.log_tail()}")
                if len(probes) < READY_PROBES_MAX:
                    probes.add(asyncio.create_task(_handshake_at("127.0.0.1", self.port)))
                done, probes = await asyncio.wait(probes, timeout=READY_POLL_S)
                served = [t.result() for t in done if t.result() is not None]
                if served:
                    return min(served) - self.spawned_at
        finally:
            for t in probes:
                t.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
        raise RuntimeError(f"{self.name} not serving after {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.home / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_bytes(self) -> int:
        return procfs.rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        return procfs.cpu_seconds(self.pid)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after a grace period."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass
        if p is not None:
            try:  # helpers left in the group after the leader exited
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
