"""The HTTP/JSON API: routes, identity, and answers (aiohttp on the server's loop).

Theory of operation
-------------------
``HttpApi(runtime, change_log)`` adds its routes to an aiohttp application
(the AdminServer's, or its own on ``zabpy.http.port``). Each request:

1. takes its identity from the connection — client IP, HTTP Basic
   ``user:password`` (a ``digest`` id), the client certificate when the API
   is served over TLS (an ``x509`` id) — and gets that identity's internal
   session from the ``SessionPool`` (``loopback.py``);
2. sends the ZooKeeper request over that session, so the core checks the
   path, the ACLs, the versions and assigns the zxid exactly as for a TCP
   client;
3. answers JSON: the reply's fields, or ``{"error": NAME, "code": N,
   "message": ...}`` with the status from ``wire.STATUS_OF``. Every answer
   carries ``X-Zxid``, the zxid of the reply header.

The watch stream (``stream.py``) and the history (``history.py``) read the
change log the core records into; the console (``console/``) is static
files that call this API. Routes are described once, in ``openapi.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os

from aiohttp import web

from .. import limits
from ..jute import records as R
from ..jute.codec import decode
from ..jute.constants import ERR, OP, OpCode
from ..tree.paths import validate_path
from .loopback import CallError, Identity, SessionPool
from .wire import (ApiError, acl_from_json, acl_json, create_flags, data_from_json, data_json,
                   error_body, multi_request, multi_results, stat_json)

__all__ = ["HttpApi", "API_PREFIX"]

log = logging.getLogger("zabpy.httpapi")

API_PREFIX = "/api/v1"
CONSOLE_DIR = os.path.join(os.path.dirname(__file__), "console")


def _json(body, status: int = 200, zxid: int | None = None) -> web.Response:
    headers = {"X-Zxid": str(zxid)} if zxid is not None else None
    return web.Response(text=json.dumps(body), status=status, content_type="application/json",
                        headers=headers)


def identity_of(request: web.Request) -> Identity:
    ip = request.remote or "?"
    credentials = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise ApiError(ERR.AUTHFAILED, "only HTTP Basic authorization is understood")
        try:
            credentials = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(ERR.AUTHFAILED, "malformed Basic credentials") from None
        if ":" not in credentials:
            raise ApiError(ERR.AUTHFAILED, "Basic credentials need user:password")
    cert = None
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is not None:
        cert = sslobj.getpeercert(binary_form=True)
    return Identity(ip, credentials, cert)


def _path(request: web.Request, sequential: bool = False) -> str:
    """The ``path`` parameter, checked as ZooKeeper's clients check it before
    sending (PathUtils.validatePath): the server would answer NONODE."""
    path = request.query.get("path")
    if path is None:
        raise ApiError(ERR.BADARGUMENTS, "the path query parameter is required")
    problem = validate_path(path, sequential=sequential)
    if problem is not None:
        raise ApiError(ERR.BADARGUMENTS, f"invalid path {path!r}: {problem}")
    return path


def _version(request: web.Request) -> int:
    text = request.query.get("version", "-1")
    try:
        return int(text)
    except ValueError:
        raise ApiError(ERR.BADARGUMENTS, f"version {text!r} is not an integer") from None


async def _body(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > limits.HTTP_BODY_BYTES_MAX:
        raise ApiError(ERR.BADARGUMENTS, "request body too large", status=413)
    raw = await request.content.read(limits.HTTP_BODY_BYTES_MAX + 1)
    if len(raw) > limits.HTTP_BODY_BYTES_MAX:
        raise ApiError(ERR.BADARGUMENTS, "request body too large", status=413)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(ERR.BADARGUMENTS, f"body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(ERR.BADARGUMENTS, "body must be a JSON object")
    return body


class HttpApi:
    def __init__(self, runtime, change_log):
        self.rt = runtime
        self.changes = change_log
        self.pool = SessionPool(runtime, runtime.config.http_sessions_max)
        from .stream import StreamHub
        self.streams = StreamHub(self)

    # ---- wiring ------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        p = API_PREFIX
        r = app.router
        r.add_get(p + "/node", self._wrap(self.get_node))
        r.add_post(p + "/node", self._wrap(self.create_node))
        r.add_put(p + "/node", self._wrap(self.set_node))
        r.add_delete(p + "/node", self._wrap(self.delete_node))
        r.add_get(p + "/children", self._wrap(self.children))
        r.add_get(p + "/stat", self._wrap(self.stat))
        r.add_get(p + "/acl", self._wrap(self.get_acl))
        r.add_put(p + "/acl", self._wrap(self.set_acl))
        r.add_post(p + "/multi", self._wrap(self.multi))
        r.add_post(p + "/sync", self._wrap(self.sync))
        r.add_get(p + "/whoami", self._wrap(self.whoami))
        r.add_get(p + "/server", self._wrap(self.server_info))
        r.add_get(p + "/history", self._wrap(self.history))
        r.add_get(p + "/watch", self._wrap(self.streams.watch))
        r.add_get("/watch", self._wrap(self.streams.watch))
        r.add_get(p + "/openapi.json", self.openapi)
        r.add_get("/console", self._console_index)
        r.add_get("/console/", self._console_index)
        r.add_static("/console/static", CONSOLE_DIR)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)

    async def _startup(self, _app) -> None:
        self.pool.start()

    async def _shutdown(self, _app) -> None:
        await self.streams.stop()
        await self.pool.stop()

    def _wrap(self, handler):
        async def run(request: web.Request):
            try:
                if request.method != "GET" and request.content_type != "application/json":
                    # a cross-site form or text/plain POST must not act with the
                    # browser's identity (its IP): such a request is "simple" and
                    # skips the CORS preflight; a JSON one does not
                    raise ApiError(ERR.BADARGUMENTS, "a request that changes something "
                                   "must be Content-Type: application/json", status=415)
                return await handler(request)
            except ApiError as e:
                return _json(error_body(e.code, str(e), request.query.get("path")), e.status)
            except CallError as e:
                return _json(error_body(e.code, str(e), request.query.get("path")), 503)
        run.__name__ = handler.__name__
        return run

    async def call(self, request: web.Request, op: int, record: R.Record | bytes,
                   check: bool = True) -> tuple[int, int, bytes]:
        """One request over the caller's internal session; an error code is
        raised as ApiError unless ``check`` is false."""
        identity = identity_of(request)
        session = await self.pool.get(identity)
        body = record if isinstance(record, bytes) else record.to_bytes()
        err, zxid, reply = await session.call(op, body)
        if err and check:
            raise ApiError(err, f"{_op_name(op)} answered {err}")
        return err, zxid, reply

    # ---- znodes --------------------------------------------------------------------------
    async def get_node(self, request: web.Request) -> web.Response:
        path = _path(request)
        _e, zxid, body = await self.call(request, OP.getData, R.GetDataRequest(path, False))
        rep = decode(R.GetDataResponse, body)
        return _json({"path": path, **data_json(rep.data), "stat": stat_json(rep.stat)},
                     zxid=zxid)

    async def create_node(self, request: web.Request) -> web.Response:
        body = await _body(request)
        flags, ttl = create_flags(body)
        path = _path(request, sequential=bool(flags & 2))
        data, acl = data_from_json(body), acl_from_json(body.get("acl"))
        if ttl != -1:
            rec = R.CreateTTLRequest(path, data, acl, flags, ttl)
            op = OP.createTTL
        else:
            rec, op = R.CreateRequest(path, data, acl, flags), OP.create2
            if flags == 4:
                op = OP.createContainer
        _e, zxid, reply = await self.call(request, op, rec)
        rep = decode(R.Create2Response, reply)
        return _json({"path": rep.path, "stat": stat_json(rep.stat)}, 201, zxid)

    async def set_node(self, request: web.Request) -> web.Response:
        path = _path(request)
        body = await _body(request)
        rec = R.SetDataRequest(path, data_from_json(body), _version(request))
        _e, zxid, reply = await self.call(request, OP.setData, rec)
        return _json({"path": path, "stat": stat_json(decode(R.SetDataResponse, reply).stat)},
                     zxid=zxid)

    async def delete_node(self, request: web.Request) -> web.Response:
        path = _path(request)
        _e, zxid, _r = await self.call(request, OP.delete, R.DeleteRequest(path,
                                                                           _version(request)))
        return _json({"path": path, "deleted": True}, zxid=zxid)

    async def children(self, request: web.Request) -> web.Response:
        path = _path(request)
        _e, zxid, body = await self.call(request, OP.getChildren2,
                                         R.GetChildren2Request(path, False))
        rep = decode(R.GetChildren2Response, body)
        return _json({"path": path, "children": sorted(rep.children),
                      "stat": stat_json(rep.stat)}, zxid=zxid)

    async def stat(self, request: web.Request) -> web.Response:
        path = _path(request)
        _e, zxid, body = await self.call(request, OP.exists, R.ExistsRequest(path, False))
        return _json({"path": path, "stat": stat_json(decode(R.ExistsResponse, body).stat)},
                     zxid=zxid)

    async def get_acl(self, request: web.Request) -> web.Response:
        path = _path(request)
        _e, zxid, body = await self.call(request, OP.getACL, R.GetACLRequest(path))
        rep = decode(R.GetACLResponse, body)
        return _json({"path": path, "acl": acl_json(rep.acl), "stat": stat_json(rep.stat)},
                     zxid=zxid)

    async def set_acl(self, request: web.Request) -> web.Response:
        path = _path(request)
        body = await _body(request)
        rec = R.SetACLRequest(path, acl_from_json(body.get("acl", [])), _version(request))
        _e, zxid, reply = await self.call(request, OP.setACL, rec)
        return _json({"path": path, "stat": stat_json(decode(R.SetACLResponse, reply).stat)},
                     zxid=zxid)

    async def multi(self, request: web.Request) -> web.Response:
        body = await _body(request)
        req = multi_request(body.get("ops"))
        err, zxid, reply = await self.call(request, OP.multi, req, check=False)
        if err and not reply:
            raise ApiError(err, f"multi answered {err}")
        results = multi_results(reply)
        failed = [r for r in results
                  if r["op"] == "error" and r["code"] not in (ERR.OK, ERR.RUNTIMEINCONSISTENCY)]
        if failed:
            first = failed[0]
            status = ApiError(first["code"]).status
            return _json({**error_body(first["code"], "multi failed"), "results": results},
                         status, zxid)
        return _json({"results": results}, zxid=zxid)

    async def sync(self, request: web.Request) -> web.Response:
        path = request.query.get("path", "/")
        _e, zxid, _r = await self.call(request, OP.sync, R.SyncRequest(path))
        return _json({"path": path, "zxid": zxid}, zxid=zxid)

    async def whoami(self, request: web.Request) -> web.Response:
        session = await self.pool.get(identity_of(request))
        return _json({"ids": [{"scheme": i.scheme, "id": i.id} for i in session.auth_ids()],
                      "session_id": f"0x{session.session_id:x}"})

    # ---- server, history, documents -------------------------------------------------------
    async def server_info(self, request: web.Request) -> web.Response:
        from .figures import server_figures
        return _json(server_figures(self.rt))

    async def history(self, request: web.Request) -> web.Response:
        from .history import history_answer
        path = _path(request)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise ApiError(ERR.BADARGUMENTS, "limit must be an integer") from None
        limit = max(1, min(limit, limits.HTTP_HISTORY_LIMIT_MAX))
        session = await self.pool.get(identity_of(request))
        return _json(await history_answer(self.rt, self.changes, path, limit,
                                          session.auth_ids()))

    async def openapi(self, request: web.Request) -> web.Response:
        from .openapi import openapi_document
        return _json(openapi_document())

    async def _console_index(self, request: web.Request) -> web.Response:
        return web.FileResponse(os.path.join(CONSOLE_DIR, "index.html"))


def _op_name(op: int) -> str:
    try:
        return OpCode(op).name
    except ValueError:
        return str(op)
