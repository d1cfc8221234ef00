"""The AdminServer: ZooKeeper 3.8's admin commands as JSON over HTTP.

Theory of operation
-------------------
An aiohttp application on the server's own event loop (so a command reads
the server between two loop turns, like every other input) answers:

- ``GET <commandURL>`` (default ``/commands``): the list of commands, one
  HTML link per primary name, as ZooKeeper's CommandServlet prints it;
- ``GET <commandURL>/<name>``: ``commands.run_command(name)`` as JSON. Any
  alias works (``/commands/mntr``); an unknown name answers 200 with
  ``"error" : "Unknown command: <name>"``, as ZooKeeper 3.8 does.

The JSON is laid out as Jackson's default pretty printer does (ZooKeeper's
output), ``"key" : value`` with two-space indentation, so that an operator
diffing the two servers sees the same text. Other paths answer 404 and other
methods 405.

``bind_app`` is shared with the Prometheus endpoint: start an app on
host:port and return the bound port (port 0 picks a free one).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from .commands import COMMANDS, AdminContext, run_command

__all__ = ["AdminServer", "bind_app", "to_jackson_json"]

log = logging.getLogger("zabpy.admin")


def to_jackson_json(value, level: int = 0) -> str:
    """JSON text laid out as Jackson's DefaultPrettyPrinter writes it."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        pad = "  " * (level + 1)
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)} : {to_jackson_json(v, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(to_jackson_json(v, level) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


async def bind_app(app: web.Application, host: str, port: int,
                   ssl_context=None) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on host:port; returns the runner (for cleanup) and the bound port.

    Raises OSError when the address cannot be bound (the runner is cleaned up).
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = site._server  # aiohttp keeps the asyncio.Server here; the only way to a port 0
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    return runner, bound


class AdminServer:
    """admin.serverAddress:admin.serverPort, commands under admin.commandURL."""

    def __init__(self, runtime, command_url: str = "/commands", extra_routes=None):
        self.rt = runtime
        self.extra_routes = extra_routes   # adds more routes to the app (the HTTP API)
        self.command_url = "/" + command_url.strip("/")
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        base = self.command_url
        app.router.add_get(base, self._list)
        app.router.add_get(base + "/", self._list)
        app.router.add_get(base + "/{name:.+}", self._command)
        if self.extra_routes is not None:
            self.extra_routes(app)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        links = "".join(f'<a href="{self.command_url}/{name}">{name}</a>\n<br/>\n'
                        for name in sorted(COMMANDS))
        return web.Response(text=links, content_type="text/html")

    async def _command(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.rt.server is None:
            body = {"command": name, "error": "This ZooKeeper instance is not currently serving "
                    "requests"}
        else:
            body = run_command(name, AdminContext(self.rt))
        return web.Response(text=to_jackson_json(body), content_type="application/json")

    async def start(self, host: str, port: int) -> int:
        self._runner, self.port = await bind_app(self._app(), host, port)
        log.info("Started AdminServer on address %s, port %d and command URL %s",
                 host, self.port, self.command_url)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
