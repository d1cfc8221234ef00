"""The change log: the last N committed changes, in zxid order, for watch streams and history.

Theory of operation
-------------------
ZooKeeper's watches fire once and carry no zxid, so whatever changes between
an event and the next read, or while a client is away, is never seen. A
``ChangeLog`` keeps the changes a server core applied, each with its zxid,
so that a reader can ask for "everything after zxid Z" and get it in order
(the HTTP API's resumable watch stream, ``zabpy/httpapi/stream.py``, and its
change history).

State: a bounded deque of ``Change`` records (oldest first) and
``floor_zxid``: every change with a zxid above the floor is in the deque. A
reader may resume from any zxid at or above the floor; below it, changes
have been dropped (``since`` answers None: the HTTP API's 410 Gone).

Inputs: ``record(hdr, triggers, who)`` from a server core right after it
applied a txn to the tree (``StandaloneServer._record_change``; every role of
an ensemble member and the standalone server call it, in zxid order, from
the one place where a txn meets the tree); ``reset(zxid)`` when the tree was
replaced wholesale (a SNAP or TRUNC from the leader): the changes before it
are unknown here, so the floor moves up to it.

A change is the txn's watch triggers (event type, path, the ACL deciding
who may see it) — the same list that drives ZooKeeper's watches, so an
ephemeral deleted by a closed session or a container reaped is a change
too — plus the txn's header fields (zxid, time, session, op) and, when this
server took the request, who sent it (authenticated ids and client IP).
Txns that change nothing (errors, createSession) are not kept; setACL, which
fires no watch, is kept with its path for the history.

Invariants: zxids strictly increase along the deque; ``floor_zxid`` <= the
oldest change's zxid - 1 (i.e. below it); ``len(changes) <= capacity``.

It is pure: no clock (times come from the txn header), no I/O. ``listener``
is called (with no arguments) after each record so a runtime can wake its
readers; it must not call back into the core.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..jute.constants import EVENT, OP

__all__ = ["Change", "ChangeLog", "EVENT_NAMES", "OP_NAMES"]

EVENT_NAMES = {EVENT.NodeCreated: "created", EVENT.NodeDeleted: "deleted",
               EVENT.NodeDataChanged: "changed", EVENT.NodeChildrenChanged: "children"}

OP_NAMES = {OP.create: "create", OP.create2: "create", OP.createContainer: "createContainer",
            OP.createTTL: "createTTL", OP.delete: "delete", OP.deleteContainer: "deleteContainer",
            OP.setData: "setData", OP.setACL: "setACL", OP.multi: "multi",
            OP.closeSession: "closeSession", OP.createSession: "createSession",
            OP.reconfig: "reconfig", OP.check: "check", OP.error: "error"}


@dataclass(frozen=True, slots=True)
class Change:
    zxid: int
    time_ms: int          # the txn header's time (the leader's wall clock)
    session_id: int
    op: int               # the txn type (OP.*)
    # (event type, path, ACL) per watch trigger of the txn, in tree order
    events: tuple
    # paths the txn names that fire no watch (setACL)
    quiet_paths: tuple = ()
    # ("scheme:id", ...) and the client IP, when this server took the request
    auth_ids: tuple | None = None
    client_ip: str | None = None

    def paths(self) -> list[str]:
        """The znodes this change wrote (not the parents whose child list changed)."""
        out = [p for ev, p, _acl in self.events if ev != EVENT.NodeChildrenChanged]
        out.extend(self.quiet_paths)
        return out


class ChangeLog:
    def __init__(self, capacity: int, floor_zxid: int):
        assert capacity > 0, capacity
        self.capacity = capacity
        self.floor_zxid = floor_zxid
        self.last_zxid = floor_zxid
        self.changes: deque[Change] = deque()
        self.listener = None

    def record(self, hdr, triggers, txn=None, who: tuple | None = None) -> None:
        """The txn ``hdr`` was applied with these watch ``triggers``."""
        zxid = hdr.zxid
        if zxid <= self.last_zxid:
            return   # replayed again after a reload: already here, or before the floor
        self.last_zxid = zxid
        quiet = ()
        if hdr.type == OP.setACL and txn is not None:
            quiet = (txn.path,)
        if not triggers and not quiet:
            return
        ids, ip = who if who is not None else (None, None)
        if len(self.changes) >= self.capacity:
            self.floor_zxid = self.changes.popleft().zxid
        self.changes.append(Change(zxid, hdr.time, hdr.clientId, hdr.type, tuple(triggers),
                                   quiet, ids, ip))
        if self.listener is not None:
            self.listener()

    def reset(self, zxid: int) -> None:
        """The tree was replaced by one at ``zxid``: what came before is unknown here."""
        if zxid > self.last_zxid:
            self.changes.clear()
            self.floor_zxid = self.last_zxid = zxid
            if self.listener is not None:
                self.listener()

    def since(self, zxid: int) -> list[Change] | None:
        """Every change after ``zxid``, oldest first; None when some were dropped."""
        if zxid < self.floor_zxid:
            return None
        out = []
        for c in reversed(self.changes):
            if c.zxid <= zxid:
                break
            out.append(c)
        out.reverse()
        return out

    def oldest_zxid(self) -> int:
        """The lowest zxid a reader may resume from."""
        return self.floor_zxid
