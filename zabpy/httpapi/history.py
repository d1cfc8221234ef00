"""Change history of a znode: who changed it and when.

Theory of operation
-------------------
``history_entries(changes, path, ids)`` picks, from ``Change`` records
(newest first), those that wrote ``path`` itself — created, changed,
deleted it, or set its ACL — and that the reader may READ (the ACL recorded
with the event, as for the watch stream). Each entry names the zxid, the
txn's time, the op, the session, and — when the server that answers took
the request itself — the session's authenticated ids and client IP, as the
server recorded them when it applied the txn.

Sources, newest first: the in-memory change log (``zabpy.http.changeLogSize``
changes, with ids and IP), then the txn logs still in the data directory
(zxid, time, op and session only: the log does not hold who). The answer
is bounded by ``limit`` (at most ``limits.HTTP_HISTORY_LIMIT_MAX``) and says
how far back it looked (``complete_from_zxid``).

``zabpy history`` (cli/history.py) prints the same entries, from a server's
HTTP API or straight from a data directory.
"""

from __future__ import annotations

import asyncio

from ..jute.constants import EVENT, PERM
from ..server.changes import EVENT_NAMES, OP_NAMES
from ..tree.acl import check_perm

__all__ = ["history_entries", "history_answer", "entry_json"]


def entry_json(change, kinds: list[str]) -> dict:
    return {"zxid": change.zxid, "zxid_hex": f"0x{change.zxid:x}", "time": change.time_ms,
            "op": OP_NAMES.get(change.op, str(change.op)), "events": kinds,
            "session": f"0x{change.session_id & 0xFFFFFFFFFFFFFFFF:x}",
            "auth_ids": list(change.auth_ids) if change.auth_ids is not None else None,
            "client_ip": change.client_ip}


def history_entries(changes, path: str, ids, skip_acl: bool, limit: int) -> list[dict]:
    """Entries for ``path`` from ``changes`` (an iterable, newest first)."""
    out = []
    for c in changes:
        kinds = []
        for ev, p, acl in c.events:
            if p == path and ev != EVENT.NodeChildrenChanged:
                if ids is not None and not check_perm(acl, PERM.READ, ids, skip_acl):
                    continue
                kinds.append(EVENT_NAMES.get(ev, str(ev)))
        if path in c.quiet_paths:
            kinds.append("acl")
        if kinds:
            out.append(entry_json(c, kinds))
            if len(out) >= limit:
                break
    return out


async def history_answer(rt, changes, path: str, limit: int, ids) -> dict:
    skip_acl = rt.config.skip_acl
    entries = history_entries(reversed(changes.changes), path, ids, skip_acl, limit)
    complete_from = changes.oldest_zxid()
    d = rt.config.data_log_dir or rt.config.data_dir
    if len(entries) < limit and d and rt.server is not None:
        from .disklog import acl_lookup, oldest_on_disk, read_changes
        oldest = await asyncio.to_thread(oldest_on_disk, d)
        if oldest is not None and oldest < complete_from:
            older = await asyncio.to_thread(read_changes, d, oldest, complete_from,
                                            acl_lookup(rt.server.tree))
            if older is not None:   # else the logs have a gap: memory only
                entries += history_entries(reversed(older), path, ids, skip_acl,
                                           limit - len(entries))
                complete_from = oldest
    return {"path": path, "entries": entries, "complete_from_zxid": complete_from,
            "sources": "memory (ids and client IP) then txn logs (zxid, time, op, session)"}
