"""zabpy's HTTP/JSON API: znode operations, resumable watch streams (SSE),
change history and a web console, served by aiohttp beside the AdminServer.
Off unless ``zabpy.http.enabled=true``; see docs/http-api.md."""

__all__ = ["api", "loopback", "stream", "history", "wire", "openapi", "disklog", "figures"]
