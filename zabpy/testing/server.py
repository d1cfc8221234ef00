"""A real zabpy server for tests: in-process (a thread running its own event
loop) or as a subprocess, on a free port, started in well under a second.

    with ZabpyServer() as zk:
        client = KazooClient(hosts=zk.hosts)

``ZabpyServer(subprocess=True)`` runs ``python -m zabpy server`` instead, for
tests that kill the process. Every server is stopped on exit, and a
subprocess's whole process group is killed if it does not stop in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from ..runtime.config import default_config, parse_config
from ..runtime.server import ServerRuntime

__all__ = ["ZabpyServer", "free_port", "free_ports", "four_letter_word", "mntr", "wait_for"]


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


# Ports handed out by this process. A port is free only until someone binds
# it, and a test may pick ports now and start the server later: without this
# record a later pick could hand out the same port again (the kernel reuses a
# released port), and two servers of one test would then collide.
_handed_out: set[tuple[str, int]] = set()
_handed_out_lock = threading.Lock()


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free ports, none of them handed out before by this
    process. The sockets stay bound until all are chosen."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        with _handed_out_lock:
            while len(ports) < n:
                s = socket.socket()
                socks.append(s)
                s.bind((host, 0))
                port = s.getsockname()[1]
                if (host, port) not in _handed_out:
                    ports.append(port)
            _handed_out.update((host, p) for p in ports)
        return ports
    finally:
        for s in socks:
            s.close()


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def mntr(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> dict[str, str]:
    """``mntr``'s keys and values (as text), from ZooKeeper or zabpy."""
    text = four_letter_word(host, port, "mntr", timeout)
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ZabpyServer:
    def __init__(self, *, config_text: str | None = None, data_dir: str | None = None,
                 subprocess: bool = False, port: int | None = None, **overrides):
        self.config_text = config_text
        self.data_dir = data_dir
        self.use_subprocess = subprocess
        self.overrides = overrides
        self.host = "127.0.0.1"
        self.port = port or 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: ServerRuntime | None = None
        self._proc: "subprocess.Popen | None" = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.log_path: str | None = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def runtime(self) -> ServerRuntime:
        assert self._runtime is not None, "only an in-process server has a runtime"
        return self._runtime

    def _config(self):
        if self.config_text is not None:
            cfg, _ = parse_config(self.config_text, source="test.cfg")
        else:
            cfg = default_config(tick_time_ms=self.overrides.pop("tick_time_ms", 200))
        fields = {"client_port": self.port, "client_port_address": self.host,
                  "admin_enable_server": self._wants_admin()}
        if self.data_dir:
            fields["data_dir"] = self.data_dir
            fields["data_log_dir"] = self.data_dir
        fields.update(self.overrides)
        return dataclasses.replace(cfg, **fields)

    def _wants_admin(self) -> bool:
        """The AdminServer stays off unless a test asks for it (an admin.*
        setting): ZooKeeper's default, 0.0.0.0:8080, is neither free nor local."""
        text = self.config_text or ""
        return (any(k in self.overrides for k in ("admin_server_port", "admin.serverPort"))
                or "admin.serverPort" in text
                or "admin.enableServer=true" in text.replace(" ", ""))

    # ---- in-process ---------------------------------------------------------

    def _start_thread(self) -> None:
        started = threading.Event()
        error: list[BaseException] = []
        cfg = self._config()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._runtime = ServerRuntime(cfg)
                loop.run_until_complete(self._runtime.start())
                loop.run_until_complete(self._runtime.wait_operations())
            except BaseException as e:  # reported to the starting thread
                error.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runtime.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="zabpy-server", daemon=True)
        self._thread.start()
        started.wait(30)
        if error:
            raise error[0]
        self.port = self._runtime.port

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the server's loop thread and return its result."""
        fut = asyncio.run_coroutine_threadsafe(self._acall(fn, *args), self._loop)
        return fut.result(10)

    @staticmethod
    async def _acall(fn, *args):
        return fn(*args)

    # ---- subprocess -------------------------------------------------------------

    def _start_process(self) -> None:
        if not self.port:
            self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="zabpy-test-")
        cfg_path = os.path.join(self._tmp.name, "zoo.cfg")
        lines = [self.config_text or "tickTime=200",
                 f"clientPort={self.port}", f"clientPortAddress={self.host}",
                 "4lw.commands.whitelist=*"]
        if not self._wants_admin() and "admin.enableServer" not in self.overrides:
            lines.append("admin.enableServer=false")
        if self.data_dir:
            lines.append(f"dataDir={self.data_dir}")
        for k, v in self.overrides.items():
            lines.append(f"{k}={v}")
        with open(cfg_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(self._tmp.name, "server.log")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "zabpy", "server", cfg_path],
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        wait_for(self._serving, 30, what=f"zabpy server on port {self.port}")

    def _serving(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"zabpy server exited with {self._proc.returncode}: "
                               + self.read_log()[-2000:])
        try:
            return "Mode:" in four_letter_word(self.host, self.port, "srvr", 1)
        except OSError:
            return False

    def read_log(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL the subprocess (a crash)."""
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    # ---- both ---------------------------------------------------------------------

    def start(self) -> "ZabpyServer":
        if self.use_subprocess:
            self._start_process()
        else:
            self._start_thread()
        return self

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                os.killpg(self._proc.pid, signal.SIGTERM)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                    self._proc.wait()
            self._proc = None
        if self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(30)
            self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "ZabpyServer":
        try:
            return self.start()
        except BaseException:
            self.__exit__()  # no process outlives a failed start
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
