"""Decode replies and replace only what legitimately differs between two
servers, so that equal behaviour gives equal values.

- zxids become ``+N``: the distance from the zxid the server had when the
  fuzzer's helper session opened (both servers start fresh, so a write that
  consumes a zxid on one server and not on the other shows up everywhere
  after it). Zero and earlier zxids stay as they are.
- ctime and mtime become ``T`` (non-zero) — wall clocks differ.
- session ids (a ConnectResponse's id, a stat's ephemeralOwner) become the
  fuzzer's session label (``s1``, ``s2`` …), so the sequence of ids is not
  compared, only which session owns what. Container and TTL owners (extended
  types) are kept: they are the same encoding on both.
- children lists (getChildren, getChildren2, getEphemerals, in or out of a
  multiRead) are sorted: Java answers in HashSet order.

Everything else — error codes, every body byte we can decode, trailing bytes
— is compared as is. A body that does not decode is compared as hex.
"""

from __future__ import annotations

import dataclasses

from ...jute import records as R
from ...jute.codec import Reader
from ...jute.constants import OpCode

__all__ = ["Norm", "RESPONSE_RECORD"]

# Response record of each op (None: header only).
RESPONSE_RECORD = {
    OpCode.create: R.CreateResponse, OpCode.create2: R.Create2Response,
    OpCode.createContainer: R.Create2Response, OpCode.createTTL: R.Create2Response,
    OpCode.delete: None, OpCode.exists: R.SetDataResponse, OpCode.getData: R.GetDataResponse,
    OpCode.setData: R.SetDataResponse, OpCode.getACL: R.GetACLResponse,
    OpCode.setACL: R.SetDataResponse, OpCode.getChildren: R.GetChildrenResponse,
    OpCode.getChildren2: R.GetChildren2Response, OpCode.sync: R.SyncResponse,
    OpCode.check: R.SetDataResponse, OpCode.checkWatches: None, OpCode.removeWatches: None,
    OpCode.getEphemerals: R.GetEphemeralsResponse,
    OpCode.getAllChildrenNumber: R.GetAllChildrenNumberResponse,
    OpCode.addWatch: R.ErrorResponse, OpCode.whoAmI: R.WhoAmIResponse,
    OpCode.setWatches: None, OpCode.setWatches2: None, OpCode.closeSession: None,
    OpCode.ping: None, OpCode.auth: None, OpCode.deleteContainer: None,
}
MULTI_RESULT = {
    OpCode.create: R.CreateResponse, OpCode.create2: R.Create2Response,
    OpCode.createContainer: R.Create2Response, OpCode.createTTL: R.Create2Response,
    OpCode.setData: R.SetDataResponse, OpCode.getData: R.GetDataResponse,
    OpCode.getChildren: R.GetChildrenResponse, OpCode.error: R.ErrorResponse,
    OpCode.delete: None, OpCode.check: None,
}
UNORDERED = (R.GetChildrenResponse, R.GetChildren2Response, R.GetEphemeralsResponse)


class Norm:
    """The normalisation of one server's values."""

    def __init__(self, base_zxid: int):
        self.base = base_zxid
        self.labels: dict[int, str] = {}   # session id -> fuzzer label

    def zxid(self, z: int):
        return f"+{z - self.base}" if z > self.base else z

    def session(self, sid: int):
        return self.labels.get(sid, sid)

    def stat(self, st: R.Stat) -> tuple:
        d = dataclasses.asdict(st)
        for k in ("czxid", "mzxid", "pzxid"):
            d[k] = self.zxid(d[k])
        for k in ("ctime", "mtime"):
            d[k] = "T" if d[k] > 0 else d[k]
        d["ephemeralOwner"] = self.session(d["ephemeralOwner"])
        return tuple(d.items())

    def value(self, v):
        if isinstance(v, R.Stat):
            return self.stat(v)
        if isinstance(v, (list, tuple)):
            return tuple(self.value(x) for x in v)
        if dataclasses.is_dataclass(v):
            fields = [(f.name, self.value(getattr(v, f.name))) for f in dataclasses.fields(v)]
            if isinstance(v, UNORDERED):
                fields[0] = (fields[0][0], tuple(sorted(fields[0][1] or ())))
            return (type(v).__name__, tuple(fields))
        return v

    def body(self, op: int, err: int, body: bytes):
        """The decoded, normalised body of a reply to ``op``."""
        if not body:
            return None
        try:
            if op in (OpCode.multi, OpCode.multiRead):
                return self._multi(body)
            cls = RESPONSE_RECORD.get(op)
            if err or cls is None:
                return ("raw", body.hex())
            r = Reader(body)
            rec = cls.read(r)
            rest = bytes(r.buf[r.pos:r.end])
            return self.value(rec) if not rest else (self.value(rec), "trailing", rest.hex())
        except Exception as e:  # undecodable: compare the bytes
            return ("undecodable", type(e).__name__, body.hex())

    def _multi(self, body: bytes):
        r = Reader(body)
        out = []
        while True:
            h = R.MultiHeader.read(r)
            if h.done:
                return tuple(out)
            cls = MULTI_RESULT.get(h.type)
            rec = cls.read(r) if cls is not None else None
            out.append((h.type, h.err, self.value(rec)))

    def connect_response(self, resp: R.ConnectResponse) -> tuple:
        return ("ConnectResponse", resp.protocolVersion, resp.timeOut,
                self.session(resp.sessionId), len(resp.passwd or b""), resp.readOnly)
