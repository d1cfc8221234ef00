"""A real ensemble whose members are zabpy or Java ZooKeeper 3.8 processes.

    with MixedEnsemble("jzz", observers=1) as ens:   # sid 1 Java, 2-3 zabpy, 4 observer
        client = KazooClient(hosts=ens.hosts)
        ens.stop(1); ens.start(1, "zabpy")           # same dataDir and myid, other kind
        ens.pause(2); ens.resume(2)                  # SIGSTOP / SIGCONT: a partition

Theory of operation
-------------------
``kinds`` is one letter a member, sid 1 first: ``j`` runs Debian's
``QuorumPeerMain`` (the jars tests/conftest.py uses), ``z`` runs
``python -m zabpy server``. The last ``observers`` sids are observers. Every
member gets free client, quorum and election ports, its own data directory
with ``myid``, and one zoo.cfg that both kinds read (the same lines a
ZooKeeper operator writes; ``extra`` adds more, ``{sid}`` replaced). A member
can be stopped and started again as the other kind on the same data
directory: that is a migration step. Each member's output, whichever kind ran
it, is appended to ``server<sid>.log`` so one file shows its whole history.

Every process runs in its own process group and is killed on exit.
``ZABPY_JAVA_XMX`` sizes the JVMs (default 160m).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from ..storage.txnlog import decode_payload, scan_log
from .difffuzz.servers import JAVA_JARS, java_missing
from .server import four_letter_word, free_ports, wait_for

__all__ = ["MixedEnsemble", "java_missing", "sync_kind", "JAVA", "ZABPY"]

JAVA, ZABPY = "java", "zabpy"
_KIND = {"j": JAVA, "z": ZABPY}
SERVING = ("leader", "follower", "observer")


class MixedEnsemble:
    def __init__(self, kinds: str, *, observers: int = 0, tick_time_ms: int = 200,
                 init_limit: int = 10, sync_limit: int = 5, extra: str = "",
                 order: list[int] | None = None, root: str | None = None):
        assert kinds and set(kinds) <= set(_KIND), kinds
        self.kinds = {sid: _KIND[k] for sid, k in enumerate(kinds, 1)}
        self.sids = list(self.kinds)
        self.voters = self.sids[:len(self.sids) - observers]
        self.observers = self.sids[len(self.sids) - observers:]
        self.tick_time_ms = tick_time_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra = extra
        self.order = order
        self._tmp = tempfile.TemporaryDirectory(prefix="zabpy-mixed-", dir=root)
        self.dir = self._tmp.name
        ports = iter(free_ports(3 * len(self.sids)))
        self.client_ports = {sid: next(ports) for sid in self.sids}
        self.quorum_ports = {sid: next(ports) for sid in self.sids}
        self.election_ports = {sid: next(ports) for sid in self.sids}
        self.procs: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        self._write_configs()

    # ---- configuration -------------------------------------------------------------

    @property
    def hosts(self) -> str:
        return ",".join(self.host(s) for s in self.sids)

    def host(self, sid: int) -> str:
        return f"127.0.0.1:{self.client_ports[sid]}"

    def data_dir(self, sid: int) -> str:
        return os.path.join(self.dir, f"data{sid}")

    def cfg_path(self, sid: int) -> str:
        return os.path.join(self.dir, f"zoo{sid}.cfg")

    def log_path(self, sid: int) -> str:
        return os.path.join(self.dir, f"server{sid}.log")

    def _write_configs(self) -> None:
        servers = []
        for sid in self.sids:
            role = "observer" if sid in self.observers else "participant"
            servers.append(f"server.{sid}=127.0.0.1:{self.quorum_ports[sid]}:"
                           f"{self.election_ports[sid]}:{role}")
        for sid in self.sids:
            os.makedirs(self.data_dir(sid), exist_ok=True)
            with open(os.path.join(self.data_dir(sid), "myid"), "w") as f:
                f.write(f"{sid}\n")
            peer_type = "observer" if sid in self.observers else "participant"
            cfg = [f"tickTime={self.tick_time_ms}", f"initLimit={self.init_limit}",
                   f"syncLimit={self.sync_limit}", f"dataDir={self.data_dir(sid)}",
                   f"clientPort={self.client_ports[sid]}", "clientPortAddress=127.0.0.1",
                   "4lw.commands.whitelist=*", "admin.enableServer=false",
                   f"peerType={peer_type}", *servers, self.extra.replace("{sid}", str(sid))]
            with open(self.cfg_path(sid), "w") as f:
                f.write("\n".join(cfg) + "\n")
        with open(os.path.join(self.dir, "log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=INFO, O\nlog4j.appender.O=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.O.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.O.layout.ConversionPattern=%d [java] %p %c{1} - %m%n\n")

    def _command(self, sid: int, kind: str) -> list[str]:
        if kind == ZABPY:
            return [sys.executable, "-m", "zabpy", "server", self.cfg_path(sid)]
        xmx = os.environ.get("ZABPY_JAVA_XMX", "160m")
        return ["java", f"-Xmx{xmx}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-cp", ":".join(JAVA_JARS),
                f"-Dlog4j.configuration=file:{self.dir}/log4j.properties",
                "-Dzookeeper.admin.enableServer=false", "-Dzookeeper.forceSync=no",
                "-Dzookeeper.jmx.log4j.disable=true",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg_path(sid)]

    # ---- processes -------------------------------------------------------------------

    def start(self, sid: int, kind: str | None = None) -> None:
        """Start member ``sid`` (as ``kind``, which it keeps from then on)."""
        assert sid not in self.procs, f"member {sid} is running"
        if kind is not None:
            self.kinds[sid] = kind
        with open(self.log_path(sid), "ab") as log:
            log.write(f"==== {time.strftime('%H:%M:%S')} start member {sid} as "
                      f"{self.kinds[sid]}\n".encode())
            log.flush()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.procs[sid] = subprocess.Popen(self._command(sid, self.kinds[sid]), stdout=log,
                                               stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True)

    def stop(self, sid: int, timeout: float = 20.0) -> None:
        """SIGTERM and wait: an operator's clean stop."""
        self._end(sid, signal.SIGTERM, timeout)

    def kill(self, sid: int) -> None:
        """SIGKILL: a crash, nothing flushed on the way out."""
        self._end(sid, signal.SIGKILL, 20.0)

    def _end(self, sid: int, sig: int, timeout: float) -> None:
        p = self.procs.pop(sid)
        self._signal(p, sig)
        if sid in self.paused:
            # After the signal: a SIGKILLed member must not run again (a paused
            # member killed never reads what waits in its sockets); a SIGTERM
            # is handled once it runs.
            self.paused.discard(sid)
            self._signal(p, signal.SIGCONT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(p, signal.SIGKILL)
            p.wait()

    @staticmethod
    def _signal(p: subprocess.Popen, sig: int) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass

    def pause(self, sid: int) -> None:
        """SIGSTOP: the member vanishes from the network without closing a socket."""
        self._signal(self.procs[sid], signal.SIGSTOP)
        self.paused.add(sid)

    def resume(self, sid: int) -> None:
        self.paused.discard(sid)
        self._signal(self.procs[sid], signal.SIGCONT)

    def start_all(self, order: list[int] | None = None) -> None:
        """Start every member; with ``order``, each one only once the one
        before listens on its client port (its election has begun)."""
        for sid in order or self.sids:
            self.start(sid)
            if order:
                self.wait_listening(sid)

    def wait_listening(self, sid: int, timeout: float = 60.0) -> None:
        def listening():
            if self.procs[sid].poll() is not None:
                raise RuntimeError(f"member {sid} exited:\n{self.diagnosis()}")
            try:
                socket.create_connection(("127.0.0.1", self.client_ports[sid]), 1).close()
                return True
            except OSError:
                return False
        wait_for(listening, timeout, 0.02, what=f"member {sid} listening")

    def running(self) -> list[int]:
        return [s for s in self.procs if s not in self.paused]

    # ---- what the members say ------------------------------------------------------

    def srvr(self, sid: int) -> dict[str, str]:
        """``srvr`` as a dict ({} when the member does not answer)."""
        return self._words(sid, "srvr", ": ")

    def mntr(self, sid: int) -> dict[str, str]:
        return self._words(sid, "mntr", "\t")

    def _words(self, sid: int, word: str, sep: str) -> dict[str, str]:
        if sid in self.paused or sid not in self.procs:
            return {}
        try:
            text = four_letter_word("127.0.0.1", self.client_ports[sid], word, 2)
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            key, found, value = line.partition(sep)
            if found:
                out[key.strip()] = value.strip()
        return out

    def mode(self, sid: int) -> str | None:
        return self.srvr(sid).get("Mode")

    def zxid(self, sid: int) -> int | None:
        z = self.srvr(sid).get("Zxid")
        return int(z, 16) if z else None

    def leader(self) -> int | None:
        for sid in self.running():
            if self.mode(sid) == "leader":
                return sid
        return None

    def wait_serving(self, sids=None, timeout: float = 60.0) -> None:
        sids = self.running() if sids is None else list(sids)
        try:
            wait_for(lambda: all(self.mode(s) in SERVING for s in sids) and self._one_leader(sids),
                     timeout, 0.02, what=f"members {sids} serving under one leader")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.diagnosis()}") from None

    def _one_leader(self, sids) -> bool:
        voters = [s for s in sids if s in self.voters]
        return not voters or sum(self.mode(s) == "leader" for s in voters) == 1

    def wait_synced(self, sids=None, timeout: float = 60.0) -> int:
        """Wait until ``sids`` (default: all running) serve and report one zxid."""
        sids = self.running() if sids is None else list(sids)
        self.wait_serving(sids, timeout)

        def same():
            zxids = {self.zxid(s) for s in sids}
            return len(zxids) == 1 and None not in zxids and zxids.pop()
        try:
            return wait_for(same, timeout, 0.02, what=f"members {sids} at one zxid")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.diagnosis()}") from None

    def wait_caught_up(self, sid: int, timeout: float = 60.0) -> None:
        """Wait until ``sid`` serves and has applied what the leader had applied
        when the wait began (writes may go on meanwhile)."""
        self.wait_serving(timeout=timeout)
        target = self.zxid(self.leader())
        wait_for(lambda: (self.zxid(sid) or 0) >= target, timeout, 0.02,
                 what=f"member {sid} at zxid >= {target:#x}")

    def logged_txns(self, sid: int) -> list:
        """(TxnHeader, txn record) of every txn in the member's log files
        (either kind writes ZooKeeper's format; Java with forceSync=no still
        flushes each batch to the file)."""
        out = []
        vdir = os.path.join(self.data_dir(sid), "version-2")
        for name in sorted(os.listdir(vdir)) if os.path.isdir(vdir) else ():
            if name.startswith("log."):
                with open(os.path.join(vdir, name), "rb") as f:
                    scan = scan_log(f.read())
                out.extend(decode_payload(p)[:2] for _off, _zxid, p in scan.entries)
        return out

    def log(self, sid: int) -> str:
        path = self.log_path(sid)
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def log_since(self, sid: int, mark: int) -> str:
        """The member's log after byte ``mark`` (``log_size`` taken earlier)."""
        with open(self.log_path(sid), "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def log_size(self, sid: int) -> int:
        path = self.log_path(sid)
        return os.path.getsize(path) if os.path.exists(path) else 0

    def diagnosis(self, lines: int = 30) -> str:
        parts = []
        for sid in self.sids:
            tail = self.log(sid).splitlines()[-lines:]
            parts.append(f"--- member {sid} ({self.kinds[sid]}): mode {self.mode(sid)!r}\n"
                         + "\n".join(tail))
        return "\n".join(parts)

    def __enter__(self) -> "MixedEnsemble":
        try:
            self.start_all(self.order)
            self.wait_serving()
        except BaseException:
            self.__exit__()  # no process outlives a failed start
            raise
        return self

    def __exit__(self, *exc) -> None:
        for sid in list(self.procs):
            self.kill(sid)
        if os.environ.get("ZABPY_MIXED_KEEP"):
            print(f"mixed ensemble kept in {self.dir}", file=sys.stderr)
            self._tmp._finalizer.detach()  # the directory outlives this object
            return
        self._tmp.cleanup()


def sync_kind(log_text: str) -> list[str]:
    """The sync modes a learner's log shows it received (either kind's words)."""
    found = []
    for line in log_text.splitlines():
        m = re.search(r"Getting a (diff|snapshot) from (?:the )?leader|(Truncating) log", line)
        if m:
            found.append({"diff": "DIFF", "snapshot": "SNAP"}.get(m.group(1), "TRUNC"))
    return found
