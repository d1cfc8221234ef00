"""Resumable watch streams: ``GET /watch`` as Server-Sent Events.

Theory of operation
-------------------
A stream is a reader of the change log (``server/changes.py``) with a
position, the zxid of the last change it has passed. It starts at the
log's newest zxid, or at the zxid the client names (``Last-Event-ID`` or
``?since=``, decimal or ``0x`` hex). Each turn it takes every change after
its position, keeps the events under its path (the path itself and, with
``recursive=1``, everything below; without it, the path and its direct
children's creation and deletion show as ``children`` of the path) that
its identity may READ by the ACL the core recorded with the event (the
rule ZooKeeper applies to watch notifications), and writes one SSE message
per zxid:

    id: <zxid, decimal>
    event: change
    data: {"zxid": ..., "time": ..., "session": "0x..", "op": "setData",
           "events": [{"type": "changed", "path": "/a"}]}

then moves its position to the last change taken (matching or not) and
waits for the core's next record (``ChangeLog.listener`` wakes every
stream). A client that reconnects with the last id it saw gets every later
change, in zxid order, with nothing missed: the log is bounded
(``zabpy.http.changeLogSize``), and when the position is older than the
log's floor the changes in between are read from the txn logs on disk
(``disklog.py``) if they are still there. Otherwise the answer is 410 Gone
with ``oldest_zxid``, the oldest position this server can resume from; a
live stream that falls that far behind (its client reads too slowly) gets
an ``event: gone`` message and is closed.

Bounds: at most ``limits.HTTP_STREAMS_MAX`` streams; a stream's writes wait
for its socket (aiohttp drains), so a slow client costs its own stream only.
Every ``KEEPALIVE_S`` an idle stream sends a comment line.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from .. import limits
from ..jute.constants import EVENT, PERM
from ..server.changes import EVENT_NAMES, OP_NAMES
from ..tree.acl import check_perm
from .wire import ApiError, error_body

__all__ = ["StreamHub", "parse_zxid", "render_change"]

log = logging.getLogger("zabpy.httpapi")

KEEPALIVE_S = 15.0
RENDER_CACHE_MAX = 4096   # encoded messages kept for the streams to share
CHECK_S = 1.0     # an idle stream looks this often whether its client is still there


def parse_zxid(text: str) -> int:
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise ApiError(-8, f"zxid {text!r} is neither decimal nor 0x hex") from None


def _under(path: str, prefix: str, recursive: bool) -> bool:
    if path == prefix:
        return True
    if not recursive:
        return False
    return prefix == "/" or path.startswith(prefix + "/")


def render_change(change, prefix: str, recursive: bool, ids: list, skip_acl: bool,
                  cache: dict | None = None) -> bytes | None:
    """The SSE message of one change for one reader, or None when nothing in it
    is theirs. ``cache``: messages by (zxid, the events kept), shared by the
    streams (many readers of one subtree encode each change once)."""
    kept = []
    for i, (ev, path, acl) in enumerate(change.events):
        if _under(path, prefix, recursive) and check_perm(acl, PERM.READ, ids, skip_acl):
            kept.append(i)
    quiet = [p for p in change.quiet_paths if _under(p, prefix, recursive)]
    if not kept and not quiet:
        return None
    key = (change.zxid, tuple(kept), tuple(quiet))
    if cache is not None:
        msg = cache.get(key)
        if msg is not None:
            return msg
    events = [{"type": EVENT_NAMES.get(change.events[i][0], str(change.events[i][0])),
               "path": change.events[i][1]} for i in kept]
    events += [{"type": "acl", "path": p} for p in quiet]
    body = {"zxid": change.zxid, "zxid_hex": f"0x{change.zxid:x}", "time": change.time_ms,
            "session": f"0x{change.session_id & 0xFFFFFFFFFFFFFFFF:x}",
            "op": OP_NAMES.get(change.op, str(change.op)), "events": events}
    msg = (f"id: {change.zxid}\nevent: change\ndata: "
           f"{json.dumps(body, separators=(',', ':'))}\n\n").encode()
    if cache is not None:
        if len(cache) >= RENDER_CACHE_MAX:
            cache.clear()
        cache[key] = msg
    return msg


class StreamHub:
    def __init__(self, api):
        self.api = api
        self.changes = api.changes
        self._waiter: asyncio.Future | None = None
        self.count = 0
        self.closing = False
        self._rendered: dict = {}
        self._responses: set = set()
        self.changes.listener = self._changed

    def _changed(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    async def _wait_change(self, timeout_s: float) -> None:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), timeout_s)
        except asyncio.TimeoutError:
            return

    def _disk_dir(self) -> str | None:
        c = self.api.rt.config
        return c.data_log_dir or c.data_dir

    async def _catch_up(self, since: int) -> tuple[list, int] | None:
        """Changes after ``since`` from memory, or from the txn logs, or None
        (gone); with the zxid they reach (read in the same turn as the last of them)."""
        backlog = self.changes.since(since)
        if backlog is not None:
            return backlog, self.changes.last_zxid
        from .disklog import acl_lookup, oldest_on_disk, read_changes
        d = self._disk_dir()
        oldest = await asyncio.to_thread(oldest_on_disk, d) if d else None
        if oldest is None or since < oldest:
            return None
        upto = self.changes.floor_zxid
        tree = self.api.rt.server.tree if self.api.rt.server is not None else None
        if tree is None:
            return None
        older = await asyncio.to_thread(read_changes, d, since, upto, acl_lookup(tree))
        if older is None:
            return None   # the logs do not hold that range whole
        newer = self.changes.since(upto)
        if newer is None:
            return None
        return older + newer, self.changes.last_zxid

    async def oldest_zxid(self) -> int:
        d = self._disk_dir()
        from .disklog import oldest_on_disk
        disk = await asyncio.to_thread(oldest_on_disk, d) if d else None
        floor = self.changes.oldest_zxid()
        return min(floor, disk) if disk is not None else floor

    async def _gone(self, since: int) -> web.Response:
        oldest = await self.oldest_zxid()
        body = error_body(-1, f"changes after zxid 0x{since:x} are no longer kept; the oldest "
                          f"zxid to resume from is 0x{oldest:x}")
        body.update(error="GONE", code=410, oldest_zxid=oldest, oldest_zxid_hex=f"0x{oldest:x}")
        return web.Response(text=json.dumps(body), status=410, content_type="application/json")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        prefix = request.query.get("path", "/")
        if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
            raise ApiError(-8, f"bad path {prefix!r}")
        recursive = request.query.get("recursive", "0").lower() in ("1", "true", "yes")
        resume = request.headers.get("Last-Event-ID") or request.query.get("since")
        session = await self.api.pool.get(_identity(request))
        ids = session.auth_ids()
        skip_acl = self.api.rt.config.skip_acl
        if self.count >= limits.HTTP_STREAMS_MAX:
            raise ApiError(-127, f"more than {limits.HTTP_STREAMS_MAX} watch streams", 503)
        if resume:
            pos = parse_zxid(resume)
            caught = await self._catch_up(pos)
            if caught is None:
                return await self._gone(pos)
            backlog, upto = caught
            upto = max(upto, pos)   # a member behind the client's zxid sends from there on
        else:
            pos = upto = self.changes.last_zxid
            backlog = []
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        self.count += 1
        self._responses.add(resp)
        try:
            await resp.prepare(request)
            await resp.write(f"retry: 1000\n: zabpy watch {prefix} from 0x{pos:x}\n\n".encode())
            await self._pump(resp, request.transport, upto, backlog, prefix, recursive, ids,
                             skip_acl)
        except (ConnectionResetError, asyncio.CancelledError):
            pass   # the client went away (or the server stops): nothing to answer
        finally:
            self.count -= 1
            self._responses.discard(resp)
        return resp

    async def _pump(self, resp, transport, upto, backlog, prefix, recursive, ids,
                    skip_acl) -> None:
        """``backlog``: every change up to ``upto`` not yet sent (read in one turn)."""
        while True:
            out = []
            for change in backlog:
                msg = render_change(change, prefix, recursive, ids, skip_acl, self._rendered)
                if msg is not None:
                    out.append(msg)
                if len(out) >= 512:
                    await resp.write(b"".join(out))
                    out = []
            if out:
                await resp.write(b"".join(out))
            pos = upto
            idle_s = 0.0
            while self.changes.last_zxid <= pos and not self.closing:
                if transport is None or transport.is_closing():
                    return   # the client went away
                await self._wait_change(CHECK_S)
                idle_s += CHECK_S
                if idle_s >= KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    idle_s = 0.0
            if self.closing:
                return
            backlog = self.changes.since(pos)
            upto = self.changes.last_zxid
            if backlog is None:
                oldest = self.changes.oldest_zxid()
                await resp.write(f"event: gone\ndata: {json.dumps({'oldest_zxid': oldest})}\n\n"
                                 .encode())
                return

    async def stop(self) -> None:
        """Every stream ends (the server stops); their clients will resume elsewhere."""
        self.closing = True
        self._changed()


def _identity(request):
    from .api import identity_of
    return identity_of(request)


assert EVENT.NodeCreated in EVENT_NAMES
