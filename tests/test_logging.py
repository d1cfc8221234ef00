"""Logs and the event-loop pause monitor (GitHub issue #6).

One line per lifecycle event, on the zabpy.* loggers: start, bind,
AdminServer start, session expiry, a client's protocol error, slow fsync,
stop. The layout is ZooKeeper's log4j pattern with log4j level names; an
optional file rotates by size. The pause monitor is ZooKeeper's
JvmPauseMonitor for an asyncio loop: driven here by ``check`` (no clock) and
once for real by blocking the loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time

import pytest
from kazoo.client import KazooClient

from zabpy.admin.metrics import ServerMetrics
from zabpy.jute import records as R
from zabpy.runtime.logging import set_myid, setup_logging
from zabpy.runtime.pause_monitor import PauseMonitor, PauseMonitorSettings
from zabpy.testing import ZabpyServer, free_port, wait_for


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    for h in root.handlers:
        h.close()
    root.handlers[:], root.level = saved
    set_myid(None)


def test_layout_and_levels(restore_logging):
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    set_myid(2)
    logging.getLogger("zabpy.server").warning("fsync-ing took %dms", 1200)
    logging.getLogger("zabpy.server").debug("not shown")
    line = out.getvalue()
    assert line.count("\n") == 1
    assert " [myid:2] - WARN  [MainThread:zabpy.server@" in line
    assert line.endswith(" - fsync-ing took 1200ms\n")
    with pytest.raises(ValueError):
        setup_logging("LOUD")


def test_file_rotation(tmp_path, restore_logging):
    path = tmp_path / "zabpy.log"
    setup_logging("INFO", str(path), max_bytes=2000, backup_count=2, stream=io.StringIO())
    log = logging.getLogger("zabpy.test")
    for i in range(200):
        log.info("line %d of a rotating log", i)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["zabpy.log", "zabpy.log.1", "zabpy.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert "line 199 of a rotating log" in path.read_text()


def _messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def _orphan_session(port: int, timeout_ms: int) -> None:
    """Open a session and drop the socket without closing it: it must expire."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        body = R.ConnectRequest(0, 0, timeout_ms, 0, bytes(16)).to_bytes()
        s.sendall(len(body).to_bytes(4, "big") + body)
        s.recv(4096)


def test_lifecycle_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    admin = free_port()
    zk = ZabpyServer(data_dir=str(tmp_path), admin_server_port=admin,
                     admin_server_address="127.0.0.1", fsync_warning_threshold_ms=-1)
    with zk:
        text = _messages(caplog)
        assert f"binding to port 127.0.0.1:{zk.port}" in text
        assert "zabpy server started" in text
        assert f"Started AdminServer on address 127.0.0.1, port {admin}" in text
        client = KazooClient(hosts=zk.hosts)
        client.start()
        client.create("/x")  # every fsync is "slow" with a threshold of -1
        client.stop()
        client.close()
        assert "fsync-ing the write ahead log took" in _messages(caplog)
        _orphan_session(zk.port, 1)
        wait_for(lambda: "Expiring session" in _messages(caplog), what="session expiry line")
        with socket.create_connection(("127.0.0.1", zk.port), timeout=5) as s:
            s.sendall(b"\x7f\xff\xff\xff" + b"x" * 16)  # a frame longer than jute.maxbuffer
            wait_for(lambda: "Closing connection from 127.0.0.1" in _messages(caplog),
                     what="protocol error line")
    assert "zabpy server stopped" in _messages(caplog)
    warn = [r for r in caplog.records if "fsync-ing" in r.getMessage()]
    assert warn[0].levelno == logging.WARNING


class _Metrics:
    """The three attributes PauseMonitor uses, as plain values."""

    def __init__(self):
        self.observed: list[tuple[str, float]] = []
        self.pause_info_count = self.pause_warn_count = 0

    def observe(self, name: str, ms: float) -> None:
        self.observed.append((name, ms))


def test_pause_monitor_thresholds(caplog):
    caplog.set_level(logging.INFO, logger="zabpy.pause_monitor")
    m = _Metrics()
    mon = PauseMonitor(PauseMonitorSettings(sleep_ms=500, info_threshold_ms=1000,
                                            warn_threshold_ms=10000), m)
    assert mon.check(400) == 0 and m.observed == []  # woke early: no pause
    mon.check(600)
    mon.check(2500)
    mon.check(20500)
    assert m.observed == [("jvm_pause_time_ms", 100), ("jvm_pause_time_ms", 2000),
                          ("jvm_pause_time_ms", 20000)]
    assert (m.pause_info_count, m.pause_warn_count) == (1, 1)
    levels = [r.levelno for r in caplog.records if "Detected pause" in r.getMessage()]
    assert levels == [logging.INFO, logging.WARNING]


def test_pause_monitor_says_how_much_cpu_the_loop_used(caplog):
    # A pause the loop spent computing (its CPU ~ the pause) against one spent
    # waiting for a CPU on a loaded host: the log line tells them apart.
    caplog.set_level(logging.INFO, logger="zabpy.pause_monitor")
    mon = PauseMonitor(PauseMonitorSettings(sleep_ms=10, info_threshold_ms=20,
                                            warn_threshold_ms=10000), _Metrics())
    mon.check(260, cpu_ms=248.4)
    mon.check(260, cpu_ms=0.4)
    mon.check(260)
    lines = [r.getMessage() for r in caplog.records if "Detected pause" in r.getMessage()]
    assert lines[0].endswith("pause of approximately 250 ms, total pause: info level: 1, "
                             "warn level: 0, the loop's thread used 248 ms of CPU meanwhile")
    assert lines[1].endswith("used 0 ms of CPU meanwhile")
    assert "CPU" not in lines[2]


def test_pause_monitor_settings_from_zoo_cfg_keys():
    s = PauseMonitorSettings.from_raw({"jvm.pause.monitor": "false",
                                       "zookeeper.jvm.pause.sleep.time.ms": "250",
                                       "jvm.pause.warn-threshold.ms": "oops"})
    assert (s.enabled, s.sleep_ms, s.warn_threshold_ms) == (False, 250, 10000)
    assert PauseMonitorSettings.from_raw({}).enabled


def test_pause_monitor_sees_a_blocked_loop(caplog):
    caplog.set_level(logging.INFO, logger="zabpy.pause_monitor")
    metrics = ServerMetrics()
    mon = PauseMonitor(PauseMonitorSettings(sleep_ms=10, info_threshold_ms=20,
                                            warn_threshold_ms=100), metrics)

    async def main():
        task = asyncio.create_task(mon.run())
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # a callback that blocks the loop
        while metrics.pause_warn_count == 0:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 10))
    assert metrics.summaries["jvm_pause_time_ms"].max >= 100
    assert any(r.levelno == logging.WARNING and "Detected pause in event loop" in r.getMessage()
               for r in caplog.records)
