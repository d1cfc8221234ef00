"""JSON <-> ZooKeeper wire records for the HTTP API (pure: no I/O).

Requests are built as the jute records a client sends; replies are decoded
from the records the core answers. Data travels in JSON both as base64
(``data_b64``, always) and as UTF-8 text (``data``, when it decodes); a
request may give either. Error codes map to HTTP statuses here, once.
"""

from __future__ import annotations

import base64
import binascii

from ..jute import records as R
from ..jute.codec import Reader, decode
from ..jute.constants import ERR, OP, Err

__all__ = ["ApiError", "STATUS_OF", "status_of", "error_body", "stat_json", "data_json",
           "data_from_json", "acl_from_json", "acl_json", "multi_request", "multi_results",
           "create_flags"]

# ZooKeeper's error code -> HTTP status
STATUS_OF = {
    ERR.NONODE: 404,
    ERR.NODEEXISTS: 409,
    ERR.NOTEMPTY: 409,
    ERR.BADVERSION: 412,
    ERR.NOAUTH: 403,
    ERR.AUTHFAILED: 401,
    ERR.NOCHILDRENFOREPHEMERALS: 400,
    ERR.BADARGUMENTS: 400,
    ERR.INVALIDACL: 400,
    ERR.MARSHALLINGERROR: 400,
    ERR.EPHEMERALONLOCALSESSION: 400,
    ERR.UNIMPLEMENTED: 501,
    ERR.QUOTAEXCEEDED: 429,
    ERR.THROTTLEDOP: 429,
    ERR.CONNECTIONLOSS: 503,
    ERR.SESSIONEXPIRED: 503,
    ERR.SESSIONMOVED: 503,
    ERR.NOTREADONLY: 503,
    ERR.OPERATIONTIMEOUT: 503,
    ERR.REQUESTTIMEOUT: 503,
    ERR.RECONFIGINPROGRESS: 503,
    ERR.RECONFIGDISABLED: 403,
}


def status_of(code: int) -> int:
    return STATUS_OF.get(code, 500)


def code_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return f"UNKNOWN({code})"


class ApiError(Exception):
    """A request the API answers with an error: a ZooKeeper code, or a plain HTTP one."""

    def __init__(self, code: int, message: str = "", status: int | None = None):
        super().__init__(message or code_name(code))
        self.code = code
        self.status = status if status is not None else status_of(code)


def error_body(code: int, message: str, path: str | None = None) -> dict:
    body = {"error": code_name(code), "code": code, "message": message}
    if path is not None:
        body["path"] = path
    return body


def stat_json(stat: R.Stat) -> dict:
    return {name: getattr(stat, name) for name, _t in R.STAT_FIELDS}


def data_json(data: bytes | None) -> dict:
    data = data or b""
    out = {"data_b64": base64.b64encode(data).decode("ascii")}
    try:
        out["data"] = data.decode("utf-8")
    except UnicodeDecodeError:
        out["data"] = None
    return out


def data_from_json(body: dict) -> bytes:
    if body.get("data_b64") is not None:
        try:
            return base64.b64decode(body["data_b64"], validate=True)
        except (binascii.Error, TypeError) as e:
            raise ApiError(ERR.BADARGUMENTS, f"data_b64 is not base64: {e}") from None
    text = body.get("data")
    if text is None:
        return b""
    if not isinstance(text, str):
        raise ApiError(ERR.BADARGUMENTS, "data must be a string")
    return text.encode("utf-8")


_PERMS = {"r": 1, "w": 2, "c": 4, "d": 8, "a": 16}


def _perms(value) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and all(ch in _PERMS for ch in value):
        return sum(_PERMS[ch] for ch in set(value))
    raise ApiError(ERR.BADARGUMENTS, f"perms {value!r}: an int or letters of 'rwcda'")


def acl_from_json(items) -> list:
    if items is None:
        return [R.ACL(31, R.Id("world", "anyone"))]
    if not isinstance(items, list) or not items:
        raise ApiError(ERR.INVALIDACL, "acl must be a non-empty list")
    out = []
    for a in items:
        if not isinstance(a, dict) or not isinstance(a.get("scheme"), str) \
                or not isinstance(a.get("id"), str):
            raise ApiError(ERR.INVALIDACL, f"acl entry {a!r}: needs scheme, id, perms")
        out.append(R.ACL(_perms(a.get("perms", 31)), R.Id(a["scheme"], a["id"])))
    return out


def acl_json(acl) -> list:
    out = []
    for a in acl:
        letters = "".join(ch for ch, bit in _PERMS.items() if a.perms & bit)
        out.append({"scheme": a.id.scheme, "id": a.id.id, "perms": a.perms, "letters": letters})
    return out


def create_flags(body: dict) -> tuple[int, int]:
    """(create mode flags, ttl) of a create request body."""
    if body.get("ephemeral"):
        # an HTTP request has no session of its own to tie the node to
        raise ApiError(ERR.BADARGUMENTS, "ephemeral znodes cannot be created over HTTP")
    seq = bool(body.get("sequential"))
    ttl = body.get("ttl")
    if body.get("container"):
        if seq or ttl:
            raise ApiError(ERR.BADARGUMENTS, "a container is neither sequential nor TTL")
        return 4, -1
    if ttl is not None:
        if not isinstance(ttl, int) or ttl <= 0:
            raise ApiError(ERR.BADARGUMENTS, "ttl must be a positive integer (ms)")
        return (6 if seq else 5), ttl
    return (2 if seq else 0), -1


def _int(value, name: str, default: int = -1) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(ERR.BADARGUMENTS, f"{name} must be an integer")
    return value


def multi_request(ops) -> bytes:
    """A multi body from [{"op": create|delete|setData|check, "path": ..., ...}]."""
    if not isinstance(ops, list) or not ops:
        raise ApiError(ERR.BADARGUMENTS, "ops must be a non-empty list")
    parts = []
    for o in ops:
        if not isinstance(o, dict) or not isinstance(o.get("path"), str):
            raise ApiError(ERR.BADARGUMENTS, f"op {o!r}: needs op and path")
        kind, path = o.get("op"), o["path"]
        if kind == "create":
            flags, ttl = create_flags(o)
            if ttl != -1:
                raise ApiError(ERR.BADARGUMENTS, "TTL creates are not allowed in a multi")
            op, rec = OP.create2, R.CreateRequest(path, data_from_json(o),
                                                  acl_from_json(o.get("acl")), flags)
        elif kind == "delete":
            op, rec = OP.delete, R.DeleteRequest(path, _int(o.get("version"), "version"))
        elif kind == "setData":
            op, rec = OP.setData, R.SetDataRequest(path, data_from_json(o),
                                                   _int(o.get("version"), "version"))
        elif kind == "check":
            op, rec = OP.check, R.CheckVersionRequest(path, _int(o.get("version"), "version"))
        else:
            raise ApiError(ERR.BADARGUMENTS, f"op {kind!r}: create, delete, setData or check")
        parts.append(R.MultiHeader(op, False, -1).to_bytes() + rec.to_bytes())
    parts.append(R.MultiHeader(-1, True, -1).to_bytes())
    return b"".join(parts)


def multi_results(body: bytes) -> list[dict]:
    r = Reader(body)
    out = []
    while True:
        h = R.MultiHeader.read(r)
        if h.done:
            return out
        if h.type == OP.create2:
            rec = R.Create2Response.read(r)
            out.append({"op": "create", "path": rec.path, "stat": stat_json(rec.stat)})
        elif h.type == OP.create:
            out.append({"op": "create", "path": R.CreateResponse.read(r).path})
        elif h.type == OP.setData:
            out.append({"op": "setData", "stat": stat_json(R.SetDataResponse.read(r).stat)})
        elif h.type == OP.delete:
            out.append({"op": "delete"})
        elif h.type == OP.check:
            out.append({"op": "check"})
        elif h.type == OP.error:
            err = R.ErrorResponse.read(r).err
            out.append({"op": "error", "error": code_name(err), "code": err})
        else:
            raise ValueError(f"unexpected multi result type {h.type}")


def decode_reply(cls, body: bytes):
    return decode(cls, body)
