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

from aiohttp import web
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (CounterMetricFamily, GaugeMetricFamily, Metric,
                                            UnknownMetricFamily)
from prometheus_client.registry import Collector

from ..tree.quota import quota_gauges
from .commands import AdminContext, server_gauges
from .http import bind_app

__all__ = ["ServerMetrics", "Summary", "ZabpyCollector", "build_registry", "MetricsServer",
           "PROMETHEUS_PROVIDER", "SUMMARIES", "COUNTERS"]

log = logging.getLogger("zabpy.metrics")

from .counters import (_PROM_QUANTILES, COUNTERS, PROMETHEUS_PROVIDER, SUMMARIES,  # noqa: F401
                       ServerMetrics, Summary)


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
        # ZooKeeper's gauge and counter sets carry their key as the label "key"
        for name, values in quota_gauges(self.rt.server.tree.nodes).items():
            family = GaugeMetricFamily(name, name, labels=["key"])
            for ns, v in sorted(values.items()):
                family.add_metric([ns], v)
            yield family
        exceeded = UnknownMetricFamily("quota_exceeded_error_per_namespace",
                                       "quota_exceeded_error_per_namespace", labels=["key"])
        for ns, n in sorted(self.rt.server.stats.quota_exceeded.items()):
            exceeded.add_metric([ns], n)
        yield exceeded
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
