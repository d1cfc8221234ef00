"""A real zabpy ensemble for tests: N server processes on 127.0.0.1.

    with ZabpyEnsemble(3) as ens:
        client = KazooClient(hosts=ens.hosts)
        ens.kill(ens.leader())          # SIGKILL, as a crash
        ens.start(sid)                  # restart on the same data directory

Each member gets free client, quorum and election ports, its own data
directory with ``myid``, and a zoo.cfg in ZooKeeper's format; ``extra``
lines are added to each, with ``{sid}`` replaced by the member's id (a
per-member ``oraclePath``, say). Every process
is killed on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from .server import four_letter_word, free_ports, wait_for

__all__ = ["ZabpyEnsemble"]


class ZabpyEnsemble:
    def __init__(self, size: int = 3, *, observers: int = 0, tick_time_ms: int = 200,
                 init_limit: int = 10, sync_limit: int = 5, extra: str = ""):
        self.size = size
        self.observers = observers
        self.tick_time_ms = tick_time_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra = extra
        self._tmp = tempfile.TemporaryDirectory(prefix="zabpy-ensemble-")
        self.dir = self._tmp.name
        self.sids = list(range(1, size + observers + 1))
        ports = iter(free_ports(3 * len(self.sids)))
        self.client_ports = {sid: next(ports) for sid in self.sids}
        self._quorum_ports = {sid: next(ports) for sid in self.sids}
        self._election_ports = {sid: next(ports) for sid in self.sids}
        self.procs: dict[int, subprocess.Popen] = {}
        self._write_configs()

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_ports[s]}" for s in self.sids)

    def host(self, sid: int) -> str:
        return f"127.0.0.1:{self.client_ports[sid]}"

    def _write_configs(self) -> None:
        lines = []
        for sid in self.sids:
            role = "observer" if sid > self.size else "participant"
            lines.append(f"server.{sid}=127.0.0.1:{self._quorum_ports[sid]}:"
                         f"{self._election_ports[sid]}:{role}")
        for sid in self.sids:
            data = os.path.join(self.dir, f"data{sid}")
            os.makedirs(data, exist_ok=True)
            with open(os.path.join(data, "myid"), "w") as f:
                f.write(f"{sid}\n")
            peer_type = "observer" if sid > self.size else "participant"
            cfg = [f"tickTime={self.tick_time_ms}", f"initLimit={self.init_limit}",
                   f"syncLimit={self.sync_limit}", f"dataDir={data}",
                   f"clientPort={self.client_ports[sid]}", "clientPortAddress=127.0.0.1",
                   "4lw.commands.whitelist=*", "admin.enableServer=false",
                   f"peerType={peer_type}", *lines, self.extra.replace("{sid}", str(sid))]
            with open(self.cfg_path(sid), "w") as f:
                f.write("\n".join(cfg) + "\n")

    def cfg_path(self, sid: int) -> str:
        return os.path.join(self.dir, f"zoo{sid}.cfg")

    def log(self, sid: int) -> str:
        path = os.path.join(self.dir, f"server{sid}.log")
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    # ---- processes ---------------------------------------------------------------

    def start(self, sid: int) -> None:
        assert sid not in self.procs or self.procs[sid].poll() is not None
        with open(os.path.join(self.dir, f"server{sid}.log"), "ab") as log:
            self.procs[sid] = subprocess.Popen(
                [sys.executable, "-m", "zabpy", "server", self.cfg_path(sid)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sid: int) -> None:
        """SIGKILL: a crash, nothing flushed on the way out."""
        p = self.procs.pop(sid)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def mode(self, sid: int) -> str | None:
        try:
            text = four_letter_word("127.0.0.1", self.client_ports[sid], "srvr", 2)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode: "):
                return line[6:]
        return None

    def leader(self) -> int | None:
        for sid in self.procs:
            if self.mode(sid) == "leader":
                return sid
        return None

    def wait_serving(self, sids=None, timeout: float = 30.0) -> None:
        sids = list(self.procs) if sids is None else sids
        try:
            wait_for(lambda: all(self.mode(s) in ("leader", "follower", "observer")
                                 for s in sids), timeout, what=f"members {sids} serving")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.diagnosis()}") from None

    def diagnosis(self, lines: int = 25) -> str:
        """Each member's mode and the tail of its log, for a failed wait."""
        parts = []
        for sid in self.sids:
            tail = self.log(sid).splitlines()[-lines:]
            parts.append(f"--- member {sid}: mode {self.mode(sid)!r}\n" + "\n".join(tail))
        return "\n".join(parts)

    def __enter__(self) -> "ZabpyEnsemble":
        try:
            for sid in self.sids:
                self.start(sid)
            self.wait_serving()
        except BaseException:
            self.__exit__()  # no process outlives a failed start
            raise
        return self

    def __exit__(self, *exc) -> None:
        for sid in list(self.procs):
            self.kill(sid)
        self._tmp.cleanup()
