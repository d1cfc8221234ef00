"""Servers of one ensemble, each started inside its own network namespace
(``ip netns exec <ns> ...``): zabpy (``python -m zabpy server``) or Debian's
Java ZooKeeper 3.8 (QuorumPeerMain), configured alike. The harness talks to
them (4lw, clients) from the bridge namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..testing.difffuzz.servers import JAVA_JARS, java_missing
from ..testing.server import four_letter_word
from .disk import Disks
from .net import Network

__all__ = ["Cluster", "CLIENT_PORT", "TICK_MS"]

CLIENT_PORT = 2181
QUORUM_PORT = 2888
ELECTION_PORT = 3888
TICK_MS = 200
SERVING = ("leader", "follower", "observer", "standalone")


class Cluster:
    def __init__(self, net: Network, workdir: str, target: str = "zabpy",
                 server_bug: str | None = None, disks: Disks | None = None):
        assert target in ("zabpy", "java")
        assert server_bug is None or target == "zabpy"
        self.server_bug = server_bug
        if target == "java":
            reason = java_missing()
            if reason:
                raise RuntimeError(f"--target java: {reason}")
        self.net = net
        self.disks = disks
        self.dir = workdir
        self.target = target
        self.sids = net.sids
        self.procs: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        self.started_pids: list[int] = []   # every server process, for the tests
        self._write_configs()

    @property
    def hosts(self) -> list[str]:
        return [f"{self.net.addr(s)}:{CLIENT_PORT}" for s in self.sids]

    def _write_configs(self) -> None:
        servers = [f"server.{s}={self.net.addr(s)}:{QUORUM_PORT}:{ELECTION_PORT}:participant"
                   for s in self.sids]
        for sid in self.sids:
            data = (self.disks.data_dir(sid) if self.disks is not None
                    else os.path.join(self.dir, f"data{sid}"))
            os.makedirs(data, exist_ok=True)
            with open(os.path.join(data, "myid"), "w") as f:
                f.write(f"{sid}\n")
            cfg = [f"tickTime={TICK_MS}", "initLimit=10", "syncLimit=5", f"dataDir={data}",
                   f"clientPort={CLIENT_PORT}", f"clientPortAddress={self.net.addr(sid)}",
                   "4lw.commands.whitelist=*", "admin.enableServer=false", *servers]
            with open(self._cfg(sid), "w") as f:
                f.write("\n".join(cfg) + "\n")
            if self.target == "java":
                with open(os.path.join(self.dir, f"log4j{sid}.properties"), "w") as f:
                    f.write("log4j.rootLogger=INFO, F\n"
                            "log4j.appender.F=org.apache.log4j.FileAppender\n"
                            f"log4j.appender.F.File={self.dir}/server{sid}.log\n"
                            "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                            "log4j.appender.F.layout.ConversionPattern=%d %p %c{1} - %m%n\n")

    def _cfg(self, sid: int) -> str:
        return os.path.join(self.dir, f"zoo{sid}.cfg")

    def _command(self, sid: int) -> list[str]:
        if self.target == "zabpy" and self.server_bug:
            return [sys.executable, "-m", "zabpy.chaos.planted_server", self.server_bug,
                    self._cfg(sid)]
        if self.target == "zabpy":
            return [sys.executable, "-m", "zabpy", "server", self._cfg(sid)]
        log4j = os.path.join(self.dir, f"log4j{sid}.properties")
        return ["java", "-Xmx192m", "-XX:TieredStopAtLevel=1", "-cp", ":".join(JAVA_JARS),
                f"-Dlog4j.configuration=file:{log4j}", "-Dzookeeper.admin.enableServer=false",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", self._cfg(sid)]

    def log(self, sid: int) -> str:
        path = os.path.join(self.dir, f"server{sid}.log")
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def last_error(self, sid: int) -> str:
        """The last line of ``sid``'s log and output that names an error."""
        last = ""
        for name in (f"server{sid}.log", f"server{sid}.out"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                for line in open(path, errors="replace"):
                    if any(w in line for w in ("Exception:", "Error:", "ERROR", "CRITICAL")):
                        last = line.strip()
        return last

    # ---- processes -----------------------------------------------------------------

    def start(self, sid: int) -> None:
        assert sid not in self.procs
        out = os.path.join(self.dir, f"server{sid}.{'log' if self.target == 'zabpy' else 'out'}")
        env = dict(os.environ, **(self.disks.env(sid) if self.disks is not None else {}))
        if self.disks is not None:
            self.disks.before_start(sid)
        with open(out, "ab") as log:
            self.procs[sid] = subprocess.Popen(
                ["ip", "netns", "exec", self.net.ns(sid), *self._command(sid)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=os.getcwd(), env=env)
        self.started_pids.append(self.procs[sid].pid)

    def kill(self, sid: int) -> None:
        """SIGKILL: a crash, nothing flushed."""
        p = self.procs.pop(sid)
        self.paused.discard(sid)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def reap(self, sid: int) -> int:
        """Forget a member whose process ended by itself; its exit status."""
        p = self.procs.pop(sid)
        self.paused.discard(sid)
        try:
            os.killpg(p.pid, signal.SIGKILL)   # anything it left in its group
        except ProcessLookupError:
            pass
        return p.wait()

    def pause(self, sid: int) -> None:
        os.killpg(self.procs[sid].pid, signal.SIGSTOP)
        self.paused.add(sid)

    def resume(self, sid: int) -> None:
        if sid in self.procs:
            os.killpg(self.procs[sid].pid, signal.SIGCONT)
        self.paused.discard(sid)

    def stop_all(self) -> None:
        for sid in list(self.procs):
            try:
                self.kill(sid)
            except ProcessLookupError:
                pass

    def exited(self) -> dict[int, int]:
        """Members whose process ended by itself: sid -> exit code."""
        return {s: p.returncode for s, p in self.procs.items() if p.poll() is not None}

    # ---- state -----------------------------------------------------------------------

    def srvr(self, sid: int) -> dict[str, str]:
        try:
            text = four_letter_word(self.net.addr(sid), CLIENT_PORT, "srvr", 1.0)
        except OSError:
            return {}
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def mode(self, sid: int) -> str | None:
        return self.srvr(sid).get("Mode")

    def leader(self) -> int | None:
        for sid in self.sids:
            if sid in self.procs and sid not in self.paused and self.mode(sid) == "leader":
                return sid
        return None

    def converged(self, same_zxid: bool = True) -> tuple[bool, dict[int, tuple]]:
        """All members serving, one leader, every member at the same zxid."""
        state = {}
        for sid in self.sids:
            s = self.srvr(sid)
            state[sid] = (s.get("Mode"), s.get("Zxid"))
        modes = [m for m, _ in state.values()]
        zxids = {z for _, z in state.values()}
        ok = (all(m in SERVING for m in modes) and modes.count("leader") == 1
              and (len(zxids) == 1 or not same_zxid))
        return ok, state

    def wait_converged(self, timeout: float, same_zxid: bool = True, on_poll=None
                       ) -> tuple[float, dict[int, tuple]]:
        """Seconds until converged (or, with ``same_zxid`` false, until all
        serve under one leader); raises TimeoutError with each member's state.
        ``on_poll()`` runs before each look (restarting members, say)."""
        t0 = time.monotonic()
        state: dict = {}
        while time.monotonic() - t0 < timeout:
            if on_poll is not None:
                on_poll()
            ok, state = self.converged(same_zxid)
            if ok:
                return time.monotonic() - t0, state
            time.sleep(0.1)
        raise TimeoutError(f"ensemble did not converge in {timeout}s: {state}")
