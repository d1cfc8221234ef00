"""Per-session limits (zabpy's own, off by default): what one session may hold.

Theory of operation
-------------------
ZooKeeper bounds nothing per session: one client can create millions of
ephemerals or watches, or pile up requests, and every client pays. Three
limits, each 0 (off) unless set in zoo.cfg, are checked when a request
arrives, before it is queued (``refusal``); a request over a limit is
answered in its place in the connection's order with an error code, takes
no zxid and changes nothing, and the session goes on:

- ``zabpy.maxEphemeralsPerSession``: a create (or a multi) that would take
  the session's ephemerals — those in the tree plus ephemeral creates still
  queued on its connection — past the limit gets QUOTAEXCEEDED (-125);
- ``zabpy.maxWatchesPerSession``: a read that would set a watch (getData,
  exists, getChildren with watch=true; addWatch) while the session holds
  the limit already gets QUOTAEXCEEDED (-125), and no watch is set;
- ``zabpy.maxRequestBytesPerConnection``: a request whose body would take
  the bytes of the connection's unanswered requests past the limit gets
  THROTTLEDOP (-127). A request is always taken when nothing is outstanding,
  so a limit below one request's size cannot lock a client out.

The first refusal of each kind for a session writes one log line naming the
session and the limit; later ones are only counted (``refused``), so a
misbehaving client cannot flood the log. The bookkeeping is per connection
and per session and O(1) per request, but for the watch count: the
connection keeps an upper bound (watches it asked for), and only when that
reaches the limit are the session's watches counted in the table (watches
that fired are gone), so a session well below its limit costs nothing.

Pure: called by the server core with its state.
"""

from __future__ import annotations

from ..jute.constants import ERR, OP
from ..jute.codec import DecodeError
from ..pipeline.prep import MULTI_WRITE_OPS, creates_ephemeral, decode_multi, _is_ephemeral

__all__ = ["SessionLimits", "refusal"]

_WATCH_READS = (OP.getData, OP.exists, OP.getChildren, OP.getChildren2)


class SessionLimits:
    def __init__(self, ephemerals_max: int, watches_max: int, request_bytes_max: int):
        self.ephemerals_max = ephemerals_max
        self.watches_max = watches_max
        self.request_bytes_max = request_bytes_max
        self.logged: dict[tuple[int, str], None] = {}   # (session, kind) already logged
        self.refused = 0
        # a plain attribute: the server core reads it on every request
        self.on = bool(ephemerals_max or watches_max or request_bytes_max)

    def session_closed(self, session_id: int) -> None:
        for kind in ("ephemerals", "watches", "request bytes"):
            self.logged.pop((session_id, kind), None)


def _ephemeral_creates(op: int, req) -> int:
    if op == OP.multi:
        if isinstance(req, list):
            return _multi_ephemerals(req)
        if hasattr(req, "ephemerals"):
            # a large multi kept as bytes to be decoded in parts: count it
            # once (only with this limit on), or it would go past the limit
            if req.ephemerals is None:
                try:
                    req.ephemerals = _multi_ephemerals(decode_multi(req.body, MULTI_WRITE_OPS))
                except DecodeError:
                    req.ephemerals = 0   # answered MARSHALLINGERROR when decoded
            return req.ephemerals
        return 0
    return 1 if creates_ephemeral(op, req) else 0


def _multi_ephemerals(ops: list) -> int:
    return sum(1 for sub, rec in ops if sub in (OP.create, OP.create2) and _is_ephemeral(rec))


def _session_watches(watches, session_id: int) -> int:
    return (sum(1 for w in watches.data.values() if session_id in w)
            + sum(1 for w in watches.child.values() if session_id in w))


def refusal(lim: SessionLimits, server, conn, op: int,
            req, size: int) -> tuple[int, str | None] | None:
    """(error code, log line or None once logged) when this request goes
    over a limit, else None. (The compiled server core checks this type.)"""
    sid = conn.session_id
    if lim.request_bytes_max and conn.queue and conn.queued_bytes + size > lim.request_bytes_max:
        return _refuse(lim, sid, "request bytes", ERR.THROTTLEDOP,
                       f"{conn.queued_bytes} bytes of requests outstanding on its connection "
                       f"from {conn.peer_ip}, limit {lim.request_bytes_max} "
                       "(zabpy.maxRequestBytesPerConnection)")
    if lim.ephemerals_max:
        n = _ephemeral_creates(op, req)
        if n:
            held = len(server.tree.ephemerals.get(sid, ()))
            queued = sum(_ephemeral_creates(e.op, e.req) for e in conn.queue if e.is_write)
            if held + queued + n > lim.ephemerals_max:
                return _refuse(lim, sid, "ephemerals", ERR.QUOTAEXCEEDED,
                               f"{held + queued} ephemerals, limit {lim.ephemerals_max} "
                               "(zabpy.maxEphemeralsPerSession)")
    if lim.watches_max and (op == OP.addWatch or (op in _WATCH_READS
                                                  and getattr(req, "watch", False))):
        if conn.watches_asked >= lim.watches_max:
            conn.watches_asked = _session_watches(server.watches, sid)
        if conn.watches_asked >= lim.watches_max:
            return _refuse(lim, sid, "watches", ERR.QUOTAEXCEEDED,
                           f"{conn.watches_asked} watches, limit {lim.watches_max} "
                           "(zabpy.maxWatchesPerSession)")
        conn.watches_asked += 1
    return None


def _refuse(lim: SessionLimits, sid: int, kind: str, err: int,
            detail: str) -> tuple[int, str | None]:
    lim.refused += 1
    key = (sid, kind)
    if key in lim.logged:
        return err, None
    lim.logged[key] = None
    return err, (f"Session 0x{sid & 0xFFFFFFFFFFFFFFFF:x} is over its {kind} limit: {detail}; "
                 f"answering {'THROTTLEDOP' if err == ERR.THROTTLEDOP else 'QUOTAEXCEEDED'} "
                 "(logged once per session)")
