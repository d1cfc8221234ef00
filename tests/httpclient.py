"""A small real HTTP client for the HTTP API tests: JSON calls and an SSE reader.

Built on http.client (a real TCP client, nothing shared with the server's
code), so a test sees exactly the bytes a shell script with curl would.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl


class Api:
    def __init__(self, port: int, host: str = "127.0.0.1", *, auth: str | None = None,
                 context: ssl.SSLContext | None = None, source_ip: str | None = None):
        self.host, self.port, self.auth, self.context = host, port, auth, context
        self.source_ip = source_ip

    def _conn(self, timeout: float = 30):
        src = (self.source_ip, 0) if self.source_ip else None
        if self.context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.context, source_address=src)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=src)

    def headers(self, extra: dict | None = None) -> dict:
        h = {"Content-Type": "application/json"}
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        h.update(extra or {})
        return h

    def request(self, method: str, url: str, body=None) -> tuple[int, dict, dict]:
        conn = self._conn()
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, url, body=data, headers=self.headers())
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed = json.loads(raw) if "json" in ctype else raw.decode()
            return resp.status, parsed, dict(resp.getheaders())
        finally:
            conn.close()

    def get(self, url):
        return self.request("GET", url)[:2]

    def post(self, url, body=None):
        return self.request("POST", url, body if body is not None else {})[:2]

    def put(self, url, body=None):
        return self.request("PUT", url, body if body is not None else {})[:2]

    def delete(self, url):
        return self.request("DELETE", url)[:2]

    def stream(self, url: str, last_event_id: str | None = None) -> "SseStream":
        conn = self._conn(timeout=60)
        extra = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            extra["Last-Event-ID"] = last_event_id
        conn.request("GET", url, headers=self.headers(extra))
        return SseStream(conn, conn.getresponse())


class SseStream:
    """Reads Server-Sent Events: (id, event, data) per message."""

    def __init__(self, conn, resp):
        self.conn, self.resp = conn, resp
        self.status = resp.status

    def body_json(self) -> dict:
        return json.loads(self.resp.read())

    def events(self):
        msg_id = event = None
        data: list[str] = []
        while True:
            line = self.resp.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield msg_id, event or "message", json.loads("\n".join(data))
                msg_id, event, data = None, None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                msg_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)

    def close(self) -> None:
        """Cut the stream (the socket closes under the reader)."""
        try:
            self.resp.close()
        finally:
            self.conn.close()


def with_http_api(ens) -> dict[int, int]:
    """Turn the HTTP API on, on a free port of its own, for every member of a
    not yet started ``ZabpyEnsemble``; the ports by server id."""
    from zabpy.testing import free_ports

    ports = dict(zip(ens.sids, free_ports(len(ens.sids))))
    for sid in ens.sids:
        with open(ens.cfg_path(sid), "a") as f:
            f.write(f"zabpy.http.enabled=true\nzabpy.http.port={ports[sid]}\n"
                    "zabpy.http.address=127.0.0.1\n")
    return ports
