"""Server metrics: ZooKeeper's counters and summaries, mntr, and Prometheus /metrics.

Theory of operation
-------------------
``ServerMetrics`` is ZooKeeper's ServerMetrics for one server: named
counters (``snap_count``, ``connection_rejected``, ...) and summaries of
millisecond timings (``fsynctime``, ``snapshottime``, ``readlatency``,
``jvm_pause_time_ms``, ...). The runtime feeds it where the fact happens
(``observe("fsynctime", ms)`` after each fsync); it never reads a clock.
A summary keeps count, sum, min and max over every observation and the
last ``limits.METRICS_SUMMARY_WINDOW`` values for its quantiles. mntr prints
them as ZooKeeper does (``zk_avg_fsynctime``, ``zk_p99_readlatency``, ...).

Prometheus: ``build_registry(runtime)`` makes a CollectorRegistry of its own
per server (tests run many servers in one process) holding
``ZabpyCollector``, which reads the live server at scrape time — the gauges
of ``commands.server_gauges`` and the counters and summaries above — plus the
client library's process/platform/GC collectors (ZooKeeper's exportJvmInfo).
Names are ZooKeeper's Prometheus provider's. Two differences forced by the
exposition library: summaries carry quantile samples computed here (the
Python client's Summary has none), and ZooKeeper-named counters are exposed
untyped under their exact name (``snap_count``), since the library would
rename a counter ``snap_count_total`` and ZooKeeper 3.8 exports no suffix.
zabpy's own counters (event-loop pauses) are true counters, ``*_total``.

``MetricsServer`` serves ``GET /metrics`` with aiohttp on the server's event
loop, so a scrape reads the state between two loop turns, never during one.
"""

from __future__ import annotations

import logging
from collections import deque

from aiohttp import web
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (CounterMetricFamily, GaugeMetricFamily, Metric,
                                            UnknownMetricFamily)
from prometheus_client.registry import Collector

from .. import limits
from .commands import AdminContext, server_gauges
from .http import bind_app

__all__ = ["ServerMetrics", "Summary", "ZabpyCollector", "build_registry", "MetricsServer",
           "PROMETHEUS_PROVIDER", "SUMMARIES", "COUNTERS"]

log = logging.getLogger("zabpy.metrics")

# metricsProvider.className that turns the exporter on, as in ZooKeeper.
PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

# ZooKeeper's summary names -> advanced (p50/p95/p99/p999 in mntr and
# 0.5/0.9/0.99 in Prometheus) or basic (median only), as ServerMetrics.java.
SUMMARIES: dict[str, bool] = {
    "fsynctime": False,
    "snapshottime": False,
    "dbinittime": False,
    "election_time": False,
    "follower_sync_time": False,
    "readlatency": True,
    "updatelatency": True,
    "quorum_ack_latency": True,
    "jvm_pause_time_ms": True,
}

# ZooKeeper's counter names that zabpy counts.
COUNTERS: tuple[str, ...] = (
    "snap_count", "commit_count", "proposal_count", "looking_count", "connection_rejected",
    "bytes_received_count", "unrecoverable_error_count", "stale_sessions_expired",
    "digest_mismatches_count", "diff_count",
)

_MNTR_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
_PROM_QUANTILES = {True: (0.5, 0.9, 0.99), False: (0.5,)}


class Summary:
    """Count, sum, min, max of every observation; quantiles over recent ones."""

    __slots__ = ("name", "advanced", "count", "total", "min", "max", "window")

    def __init__(self, name: str, advanced: bool):
        self.name = name
        self.advanced = advanced
        self.window: deque[int] = deque(maxlen=limits.METRICS_SUMMARY_WINDOW)
        self.reset()

    def reset(self) -> None:
        self.count = self.total = self.min = self.max = 0
        self.window.clear()

    def observe(self, value: int) -> None:
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value
        self.window.append(value)

    def quantile(self, q: float) -> int:
        if not self.window:
            return 0
        ordered = sorted(self.window)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def mntr_values(self) -> list[tuple[str, object]]:
        n = self.name
        avg = self.total / self.count if self.count else 0.0
        out: list[tuple[str, object]] = [
            (f"avg_{n}", round(avg, 4)), (f"min_{n}", self.min), (f"max_{n}", self.max),
            (f"cnt_{n}", self.count), (f"sum_{n}", self.total)]
        if self.advanced:
            out += [(f"{label}_{n}", self.quantile(q)) for label, q in _MNTR_QUANTILES]
        return out


class ServerMetrics:
    """One server's counters and summaries (ZooKeeper's ServerMetrics)."""

    def __init__(self) -> None:
        self.summaries = {n: Summary(n, adv) for n, adv in SUMMARIES.items()}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.fsync_threshold_exceeded = 0
        self.pause_info_count = 0  # loop pauses above the info threshold
        self.pause_warn_count = 0  # ... and above the warn threshold

    def observe(self, name: str, value_ms: float) -> None:
        self.summaries[name].observe(int(value_ms))

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def reset(self) -> None:
        """srst: ZooKeeper resets every ServerMetrics value with the server stats."""
        for s in self.summaries.values():
            s.reset()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.fsync_threshold_exceeded = 0

    def monitor_values(self) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = list(self.counters.items())
        out += [("event_loop_pause_info_count", self.pause_info_count),
                ("event_loop_pause_warn_count", self.pause_warn_count)]
        for s in self.summaries.values():
            out += s.mntr_values()
        return out


class ZabpyCollector(Collector):
    """Reads one server's state at scrape time (runs on the server's loop)."""

    def __init__(self, runtime):
        self.rt = runtime

    def collect(self):
        ctx = AdminContext(self.rt)
        if self.rt.server is None:
            return
        for name, value in server_gauges(ctx):
            yield GaugeMetricFamily(name, name, value=value)
        m: ServerMetrics | None = ctx.metrics
        if m is None:
            return
        for name, value in m.counters.items():
            yield UnknownMetricFamily(name, name, value=value)
        yield CounterMetricFamily("event_loop_pause_info", "event-loop pauses above the info "
                                  "threshold", value=m.pause_info_count)
        yield CounterMetricFamily("event_loop_pause_warn", "event-loop pauses above the warn "
                                  "threshold", value=m.pause_warn_count)
        for s in m.summaries.values():
            yield _summary_family(s)


def _summary_family(s: Summary) -> Metric:
    family = Metric(s.name, s.name, "summary")
    for q in _PROM_QUANTILES[s.advanced]:
        family.add_sample(s.name, {"quantile": str(q)}, float(s.quantile(q)))
    family.add_sample(s.name + "_count", {}, float(s.count))
    family.add_sample(s.name + "_sum", {}, float(s.total))
    return family


def build_registry(runtime, *, export_process_info: bool = True) -> CollectorRegistry:
    """A registry of its own for one server: its collector, plus the process,
    platform and GC collectors (ZooKeeper's exportJvmInfo, for Python)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ZabpyCollector(runtime))
    if export_process_info:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class MetricsServer:
    """``GET /metrics`` on metricsProvider.httpHost:httpPort."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner, self.port = await bind_app(app, host, port)
        log.info("Prometheus metrics provider started on %s:%d, path /metrics", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
