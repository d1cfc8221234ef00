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
        self.http_api = None     # httpapi.HttpApi when zabpy.http.enabled
        self._http_runner = None  # its own app's runner, on zabpy.http.port
        self.http_port: int | None = None
        self.pause_monitor = None  # a runtime.pause_monitor.PauseMonitor once started
        self._pause_task: asyncio.Task | None = None

    @property
    def admin_port(self) -> int | None:
        return self.admin.port if self.admin is not None else None

    @property
    def metrics_port(self) -> int | None:
        return self.prometheus.port if self.prometheus is not None else None

    def needs_preload(self) -> bool:
        """Whether ``start`` imports a large module (aiohttp, prometheus-client)."""
        c = self.rt.config
        return (c.admin_enable_server or c.http_enabled
                or c.metrics_provider_class == PROMETHEUS_PROVIDER)

    def preload(self) -> None:
        """Import what ``start`` will need (run in a worker thread)."""
        c = self.rt.config
        if c.admin_enable_server or c.http_enabled:
            from . import http  # noqa: F401
        if c.http_enabled:
            from ..httpapi import api  # noqa: F401
        if c.metrics_provider_class == PROMETHEUS_PROVIDER:
            from . import metrics  # noqa: F401

    async def start(self) -> None:
        c = self.rt.config
        extra = None
        if c.http_enabled:
            from ..httpapi.api import HttpApi
            self.http_api = HttpApi(self.rt, self.rt.changes)
            if c.http_port is None:
                extra = self.http_api.add_routes
            else:
                await self._start_http_api(c)
        if c.admin_enable_server:
            await self._start_admin(c.admin_server_address, c.admin_server_port,
                                    c.admin_command_url, extra)
            if extra is not None and self.admin is not None:
                self.http_port = self.admin.port
                log.info("Started the HTTP API on the AdminServer's port %d (/api/v1, "
                         "/watch, /console/)", self.http_port)
        elif extra is not None:
            log.error("zabpy.http.enabled without zabpy.http.port needs the AdminServer "
                      "(admin.enableServer=true); the HTTP API is not started")
        if c.metrics_provider_class == PROMETHEUS_PROVIDER:
            from .metrics import MetricsServer, build_registry
            server = MetricsServer(build_registry(self.rt))
            await server.start(c.metrics_http_host, c.metrics_http_port)
            self.prometheus = server
        elif c.metrics_provider_class:
            log.warning("metricsProvider.className=%s is not supported; only %s exports metrics",
                        c.metrics_provider_class, PROMETHEUS_PROVIDER)
        from ..runtime.pause_monitor import PauseMonitor, PauseMonitorSettings
        settings = PauseMonitorSettings.from_raw(c.raw)
        if settings.enabled:
            self.pause_monitor = PauseMonitor(settings, self.metrics)
            self._pause_task = asyncio.create_task(self.pause_monitor.run())

    async def _start_http_api(self, c) -> None:
        """The HTTP API on its own port (zabpy.http.port), HTTPS with zabpy.http.tls."""
        from aiohttp import web
        from .http import bind_app
        app = web.Application(client_max_size=2 * c.jute_maxbuffer)
        self.http_api.add_routes(app)
        ssl_ctx = None
        if c.http_tls:
            from ..runtime.tls import server_ssl_context
            ssl_ctx = server_ssl_context(c)
        host = c.http_address or c.admin_server_address
        self._http_runner, self.http_port = await bind_app(app, host, c.http_port, ssl_ctx)
        log.info("Started the HTTP API on %s:%d%s", host, self.http_port,
                 " (TLS)" if ssl_ctx is not None else "")

    async def _start_admin(self, host: str, port: int, url: str, extra=None) -> None:
        from .http import AdminServer
        admin = AdminServer(self.rt, url, extra)
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
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
