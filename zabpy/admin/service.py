"""The operations surface of one running server: AdminServer, /metrics, pause monitor.

Theory of operation
-------------------
``OperationsServices(runtime)`` is created with the runtime and owns its
``ServerMetrics`` (``runtime.metrics``). ``start()`` runs after the client
port is bound and starts, as ZooKeeper does:

- the AdminServer when ``admin.enableServer`` (default true, port 8080).
  A port that cannot be bound is logged as a warning and the server goes on
  without it (ZooKeeper: "Problem starting AdminServer");
- the Prometheus endpoint only when ``metricsProvider.className`` names
  ZooKeeper's PrometheusMetricsProvider. A bind failure here is fatal in
  ZooKeeper (the provider fails to start) and is raised here too;
- the event-loop pause monitor task (unless ``jvm.pause.monitor=false``).

``stop()`` undoes all of it and is safe to call after a partial start.
"""

from __future__ import annotations

import asyncio
import logging

from ..runtime.pause_monitor import PauseMonitor, PauseMonitorSettings
from .counters import PROMETHEUS_PROVIDER, ServerMetrics

# aiohttp and prometheus-client are imported when a server is started, not
# with the runtime: a server answers its first client without them.

__all__ = ["OperationsServices"]

log = logging.getLogger("zabpy.admin")


class OperationsServices:
    def __init__(self, runtime):
        self.rt = runtime
        self.metrics = ServerMetrics()
        self.admin = None        # http.AdminServer once started
        self.prometheus = None   # metrics.MetricsServer once started
        self.pause_monitor: PauseMonitor | None = None
        self._pause_task: asyncio.Task | None = None

    @property
    def admin_port(self) -> int | None:
        return self.admin.port if self.admin is not None else None

    @property
    def metrics_port(self) -> int | None:
        return self.prometheus.port if self.prometheus is not None else None

    def preload(self) -> None:
        """Import what ``start`` will need (run in a worker thread)."""
        c = self.rt.config
        if c.admin_enable_server:
            from . import http  # noqa: F401
        if c.metrics_provider_class == PROMETHEUS_PROVIDER:
            from . import metrics  # noqa: F401

    async def start(self) -> None:
        c = self.rt.config
        if c.admin_enable_server:
            await self._start_admin(c.admin_server_address, c.admin_server_port,
                                    c.admin_command_url)
        if c.metrics_provider_class == PROMETHEUS_PROVIDER:
            from .metrics import MetricsServer, build_registry
            server = MetricsServer(build_registry(self.rt))
            await server.start(c.metrics_http_host, c.metrics_http_port)
            self.prometheus = server
        elif c.metrics_provider_class:
            log.warning("metricsProvider.className=%s is not supported; only %s exports metrics",
                        c.metrics_provider_class, PROMETHEUS_PROVIDER)
        settings = PauseMonitorSettings.from_raw(c.raw)
        if settings.enabled:
            self.pause_monitor = PauseMonitor(settings, self.metrics)
            self._pause_task = asyncio.create_task(self.pause_monitor.run())

    async def _start_admin(self, host: str, port: int, url: str) -> None:
        from .http import AdminServer
        admin = AdminServer(self.rt, url)
        try:
            await admin.start(host, port)
        except OSError as e:
            log.warning("Problem starting AdminServer on %s:%d: %s; continuing without it",
                        host, port, e)
            return
        self.admin = admin

    async def stop(self) -> None:
        if self._pause_task is not None:
            self._pause_task.cancel()
            try:
                await self._pause_task
            except asyncio.CancelledError:
                pass
            self._pause_task = None
        for server in (self.admin, self.prometheus):
            if server is not None:
                await server.stop()
        self.admin = self.prometheus = None
