"""The OpenAPI 3.0 document of the HTTP API, served at ``/api/v1/openapi.json``.

Written once here, as data; tests/test_http_openapi.py checks it is a valid
OpenAPI document and that it names exactly the routes the API serves.
"""

from __future__ import annotations

from .wire import STATUS_OF, code_name

__all__ = ["openapi_document", "ROUTES"]

_PATH = {"name": "path", "in": "query", "required": True, "schema": {"type": "string"},
         "description": "absolute znode path, e.g. /app/config"}
_VERSION = {"name": "version", "in": "query", "required": False,
            "schema": {"type": "integer", "default": -1},
            "description": "expected version (-1: any)"}
_SINCE = {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "resume after this zxid (decimal or 0x hex); same as Last-Event-ID"}
_LAST_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
            "schema": {"type": "string"}, "description": "the last event id seen (a zxid)"}
_RECURSIVE = {"name": "recursive", "in": "query", "required": False,
              "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
              "description": "1: every znode below the path too"}
_WATCH_PATH = dict(_PATH, required=False, description="the subtree's root (default /)")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors() -> dict:
    statuses = sorted(set(STATUS_OF.values()) | {500})
    return {str(s): _json(_ref("Error"), "ZooKeeper error: " + ", ".join(
        code_name(c) for c, st in STATUS_OF.items() if st == s) or "other")
            for s in statuses}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, params: list, ok: dict, body: dict | None = None,
        ok_status: str = "200") -> dict:
    op = {"summary": summary, "parameters": params, "responses": {ok_status: ok, **_errors()}}
    if body is not None:
        op["requestBody"] = body
    return op


# (url, method) -> operation; the API's routes (api.HttpApi.add_routes)
ROUTES = {
    ("/api/v1/node", "get"): _op("getData: a znode's data and stat", [_PATH], _json(_ref("Node"))),
    ("/api/v1/node", "post"): _op("create a znode (persistent, sequential, container or TTL)",
                                  [_PATH], _json(_ref("PathStat"), "Created"),
                                  _body(_ref("CreateBody")), "201"),
    ("/api/v1/node", "put"): _op("setData with a version check", [_PATH, _VERSION],
                                 _json(_ref("PathStat")), _body(_ref("Data"))),
    ("/api/v1/node", "delete"): _op("delete with a version check", [_PATH, _VERSION],
                                    _json({"type": "object"})),
    ("/api/v1/children", "get"): _op("getChildren2: child names and stat", [_PATH],
                                     _json(_ref("Children"))),
    ("/api/v1/stat", "get"): _op("exists: the stat", [_PATH], _json(_ref("PathStat"))),
    ("/api/v1/acl", "get"): _op("getACL", [_PATH], _json(_ref("AclAnswer"))),
    ("/api/v1/acl", "put"): _op("setACL with an ACL version check", [_PATH, _VERSION],
                                _json(_ref("PathStat")),
                                _body({"type": "object", "properties": {
                                    "acl": {"type": "array", "items": _ref("Acl")}}})),
    ("/api/v1/multi", "post"): _op("multi: create, delete, setData, check; all or nothing", [],
                                   _json({"type": "object"}),
                                   _body({"type": "object", "properties": {
                                       "ops": {"type": "array", "items": _ref("MultiOp")}}})),
    ("/api/v1/sync", "post"): _op("sync: this server catches up with the leader",
                                  [dict(_PATH, required=False)], _json({"type": "object"})),
    ("/api/v1/whoami", "get"): _op("the ids this request is authorized as", [],
                                   _json({"type": "object"})),
    ("/api/v1/server", "get"): _op("mntr and srvr figures, ensemble members and roles", [],
                                   _json({"type": "object"})),
    ("/api/v1/history", "get"): _op(
        "who changed a znode and when (newest first)",
        [_PATH, {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "default": 100, "maximum": 10000}}],
        _json(_ref("History"))),
    ("/api/v1/watch", "get"): {
        "summary": "a resumable watch stream (Server-Sent Events), one event per zxid",
        "parameters": [_WATCH_PATH, _RECURSIVE, _SINCE, _LAST_ID],
        "responses": {
            "200": {"description": "text/event-stream: `id: <zxid>`, `event: change`, "
                                   "`data: <Change JSON>`; `event: gone` if the reader fell "
                                   "behind what is kept",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "410": _json(_ref("Gone"), "the zxid is older than what this server keeps"),
            **{k: v for k, v in _errors().items() if k != "410"}}},
    ("/watch", "get"): {"summary": "the same stream as /api/v1/watch",
                        "parameters": [_WATCH_PATH, _RECURSIVE, _SINCE, _LAST_ID],
                        "responses": {"200": {"description": "text/event-stream"},
                                      "410": _json(_ref("Gone"))}},
    ("/api/v1/openapi.json", "get"): {"summary": "this document",
                                      "responses": {"200": _json({"type": "object"})}},
}

_STAT = {"type": "object", "properties": {k: {"type": "integer"} for k in (
    "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeralOwner",
    "dataLength", "numChildren", "pzxid")}}

SCHEMAS = {
    "Stat": _STAT,
    "Error": {"type": "object", "required": ["error", "code", "message"], "properties": {
        "error": {"type": "string", "description": "ZooKeeper's code name, e.g. NONODE"},
        "code": {"type": "integer", "description": "ZooKeeper's code, e.g. -101"},
        "message": {"type": "string"}, "path": {"type": "string"}}},
    "Gone": {"type": "object", "properties": {
        "error": {"type": "string", "enum": ["GONE"]}, "code": {"type": "integer"},
        "message": {"type": "string"}, "oldest_zxid": {"type": "integer"},
        "oldest_zxid_hex": {"type": "string"}}},
    "Data": {"type": "object", "properties": {
        "data": {"type": "string", "nullable": True, "description": "UTF-8 text"},
        "data_b64": {"type": "string", "description": "base64; wins over data"}}},
    "Node": {"type": "object", "properties": {
        "path": {"type": "string"}, "data": {"type": "string", "nullable": True},
        "data_b64": {"type": "string"}, "stat": _ref("Stat")}},
    "PathStat": {"type": "object", "properties": {"path": {"type": "string"},
                                                  "stat": _ref("Stat")}},
    "Children": {"type": "object", "properties": {
        "path": {"type": "string"}, "children": {"type": "array", "items": {"type": "string"}},
        "stat": _ref("Stat")}},
    "Acl": {"type": "object", "required": ["scheme", "id"], "properties": {
        "scheme": {"type": "string"}, "id": {"type": "string"},
        "perms": {"oneOf": [{"type": "integer"}, {"type": "string"}],
                  "description": "bits (r=1 w=2 c=4 d=8 a=16) or letters of rwcda"}}},
    "AclAnswer": {"type": "object", "properties": {
        "path": {"type": "string"}, "acl": {"type": "array", "items": _ref("Acl")},
        "stat": _ref("Stat")}},
    "CreateBody": {"allOf": [_ref("Data"), {"type": "object", "properties": {
        "acl": {"type": "array", "items": _ref("Acl")},
        "sequential": {"type": "boolean"}, "container": {"type": "boolean"},
        "ttl": {"type": "integer", "description": "ms; needs extendedTypesEnabled"}}}]},
    "MultiOp": {"allOf": [_ref("Data"), {"type": "object", "required": ["op", "path"],
                                         "properties": {
        "op": {"type": "string", "enum": ["create", "delete", "setData", "check"]},
        "path": {"type": "string"}, "version": {"type": "integer"},
        "acl": {"type": "array", "items": _ref("Acl")}, "sequential": {"type": "boolean"}}}]},
    "Change": {"type": "object", "properties": {
        "zxid": {"type": "integer"}, "zxid_hex": {"type": "string"}, "time": {"type": "integer"},
        "session": {"type": "string"}, "op": {"type": "string"},
        "events": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string",
                     "enum": ["created", "deleted", "changed", "children", "acl"]},
            "path": {"type": "string"}}}}}},
    "History": {"type": "object", "properties": {
        "path": {"type": "string"}, "complete_from_zxid": {"type": "integer"},
        "entries": {"type": "array", "items": {"type": "object", "properties": {
            "zxid": {"type": "integer"}, "time": {"type": "integer"}, "op": {"type": "string"},
            "session": {"type": "string"},
            "auth_ids": {"type": "array", "nullable": True, "items": {"type": "string"}},
            "client_ip": {"type": "string", "nullable": True},
            "events": {"type": "array", "items": {"type": "string"}}}}}}},
}


def openapi_document() -> dict:
    paths: dict[str, dict] = {}
    for (url, method), op in ROUTES.items():
        paths.setdefault(url, {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "zabpy HTTP/JSON API", "version": "1",
                 "description": "ZooKeeper operations, resumable watch streams and change "
                                "history over HTTP. Identity: HTTP Basic user:password is a "
                                "digest id, a TLS client certificate an x509 id, the client "
                                "address an ip id; every request is checked against the "
                                "znode's ACL. See docs/http-api.md."},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{}, {"basic": []}],
    }
