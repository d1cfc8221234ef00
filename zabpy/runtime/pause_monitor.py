"""The event-loop pause monitor: Python's analogue of ZooKeeper's JvmPauseMonitor.

Theory of operation
-------------------
ZooKeeper's JvmPauseMonitor sleeps a fixed time in a thread and treats any
extra time it slept as a pause of the JVM or the host (a GC, swapping, a
stalled VM). A zabpy server runs on one asyncio loop, and what stalls it is
a callback that blocks the loop (a long snapshot serialization, a slow
synchronous call) as well as the host itself. So the monitor is a task on
that loop: it sleeps ``sleep_ms``, and the time beyond ``sleep_ms`` it took
to wake up is how long the loop could not run anything.

Each measurement goes to the ``jvm_pause_time_ms`` summary (ZooKeeper's
name, kept so dashboards work). A pause above ``info_threshold_ms`` is
logged at INFO and counted, one above ``warn_threshold_ms`` at WARN, as in
ZooKeeper; both counts are exported (``event_loop_pause_info_total`` and
``event_loop_pause_warn_total``).

Configuration uses ZooKeeper's keys: ``jvm.pause.monitor``,
``jvm.pause.sleep.time.ms`` (500), ``jvm.pause.info-threshold.ms`` (1000),
``jvm.pause.warn-threshold.ms`` (10000). Unlike ZooKeeper, the monitor is on
unless ``jvm.pause.monitor=false``: a blocked event loop is the commonest
stall of a Python server, and the check costs one wake-up per sleep.
``check`` holds the decision and takes the measured time as an argument, so
tests drive it without a clock.

Each logged pause also says how much CPU the loop's thread used during it
(``time.thread_time``): a pause the loop spent computing (a callback doing too
much work at once) uses about as much CPU as it lasted, while one with little
CPU was spent waiting (for a CPU on a loaded host, or in a blocking call).
That split is what told the leader's copies of a large SNAP image apart from
the load of a shared machine (issue 19).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .. import limits

__all__ = ["PauseMonitor", "PauseMonitorSettings"]

log = logging.getLogger("zabpy.pause_monitor")

_PREFIX = "zookeeper."


@dataclass(frozen=True)
class PauseMonitorSettings:
    enabled: bool = True
    sleep_ms: int = 500
    info_threshold_ms: int = 1000
    warn_threshold_ms: int = 10000

    @classmethod
    def from_raw(cls, raw: dict[str, str]) -> "PauseMonitorSettings":
        """Read ZooKeeper's jvm.pause.* keys (with or without ``zookeeper.``)
        from a config's raw key table; a bad value keeps the default."""
        def get(key: str) -> str | None:
            return raw.get(key, raw.get(_PREFIX + key))

        def num(key: str, default: int) -> int:
            text = get(key)
            try:
                return int(text.strip()) if text is not None else default
            except ValueError:
                log.warning("Ignoring %s=%r: not an integer, using %d", key, text, default)
                return default

        d = cls()
        enabled = get("jvm.pause.monitor")
        return cls(
            enabled=d.enabled if enabled is None else enabled.strip().lower() == "true",
            sleep_ms=max(num("jvm.pause.sleep.time.ms", d.sleep_ms),
                         limits.PAUSE_MONITOR_SLEEP_MS_MIN),
            info_threshold_ms=num("jvm.pause.info-threshold.ms", d.info_threshold_ms),
            warn_threshold_ms=num("jvm.pause.warn-threshold.ms", d.warn_threshold_ms),
        )


class PauseMonitor:
    """Counts into a ``zabpy.admin.metrics.ServerMetrics`` (or anything with
    ``observe(name, ms)``, ``pause_info_count`` and ``pause_warn_count``)."""

    def __init__(self, settings: PauseMonitorSettings, metrics):
        self.settings = settings
        self.metrics = metrics
        self.total_extra_ms = 0

    def check(self, elapsed_ms: float, cpu_ms: float | None = None) -> float:
        """One measurement: the sleep of ``sleep_ms`` took ``elapsed_ms``, while
        the loop's thread used ``cpu_ms`` of CPU (None: not measured).
        Returns the pause (extra time) in ms."""
        s, m = self.settings, self.metrics
        extra = elapsed_ms - s.sleep_ms
        if extra < 0:
            return 0.0
        m.observe("jvm_pause_time_ms", extra)
        self.total_extra_ms += extra
        if extra > s.warn_threshold_ms:
            m.pause_warn_count += 1
            log.warning(self._message(extra, cpu_ms))
        elif extra > s.info_threshold_ms:
            m.pause_info_count += 1
            log.info(self._message(extra, cpu_ms))
        return extra

    def _message(self, extra_ms: float, cpu_ms: float | None) -> str:
        m = self.metrics
        cpu = "" if cpu_ms is None else f", the loop's thread used {cpu_ms:.0f} ms of CPU meanwhile"
        return (f"Detected pause in event loop or host machine (a blocking callback, "
                f"swapping, a stalled VM): pause of approximately {extra_ms:.0f} ms, total pause: "
                f"info level: {m.pause_info_count}, warn level: {m.pause_warn_count}{cpu}")

    async def run(self) -> None:
        s = self.settings
        log.info("Starting event-loop pause monitor with infoThresholdMs:%d warnThresholdMs:%d "
                 "and sleepTimeMs:%d", s.info_threshold_ms, s.warn_threshold_ms, s.sleep_ms)
        while True:
            t0, cpu0 = time.monotonic(), time.thread_time()
            await asyncio.sleep(s.sleep_ms / 1000)
            self.check((time.monotonic() - t0) * 1000, (time.thread_time() - cpu0) * 1000)
