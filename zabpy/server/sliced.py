"""A large multi decoded, prepared and applied a part at a time, so that
other sessions are served between the parts (issue 12: one request must not
hold the loop). ``SlicedPrep`` is the first half (below); ``SlicedApply``:

State: the multi being applied (its ``InFlight``), the ``ApplyResult`` built
so far, how many sub-txns are in, the paths changed so far, and, once the
tree holds the whole multi, how many of its watch events are out.

``SlicedClose`` applies a closeSession whose session owns many ephemerals
(issue 19: 100k of them took seconds in one step) the same way: its deletes,
deepest first, a part at a time, then its watch events; it stays one txn.

The server core owns one of these at a time and, while it exists, applies
no later txn. Atomicity as other sessions see it (for a closeSession read
"delete" for "sub-txn"):

- a read of a path the multi already changed (a node, or a parent's child
  list and stat) waits until the multi is complete, and so do reads that
  are not about one path (multiRead, getAllChildrenNumber, getEphemerals,
  sync, the watch ops): no read sees part of the multi;
- a read of any other path is answered at once, with what it was before
  the multi and the reply zxid of the txn before it, which is what it
  would see if the multi came just after it;
- watch events go out only after the last part is in (so no client
  learns of the multi before all of it is visible), in parts too, and the
  waiting reads are answered after all of them, as the multi's own reply.
"""

from __future__ import annotations

import struct

from ..jute import records as R
from ..jute.codec import DecodeError, Reader
from ..jute.constants import Err, OpCode
from ..pipeline.prep import MULTI_WRITE_OPS, MultiPrep, PrepError, PrepFailure, decode_multi_part
from ..tree.datatree import (ApplyResult, DataTree, child_name_at, encode_child_names,
                             multi_failed)
from ..tree.paths import parent_of

__all__ = ["SlicedApply", "SlicedChildren", "SlicedClose", "SlicedDecode", "SlicedPrep"]

# Reads that are not about one node: they wait for the whole multi.
_ALWAYS_WAIT = frozenset({
    OpCode.multiRead, OpCode.getAllChildrenNumber, OpCode.getEphemerals, OpCode.sync,
    OpCode.addWatch, OpCode.checkWatches, OpCode.removeWatches, OpCode.setWatches,
    OpCode.setWatches2,
})
_NEVER_WAIT = frozenset({OpCode.ping, OpCode.whoAmI})
_COUNT = struct.Struct(">i")


class SlicedApply:
    def __init__(self, item, ops_per_part: int, triggers_per_part: int):
        assert item.hdr.type == OpCode.multi
        self.item = item
        self.out = ApplyResult(multi=[])
        self.ops_per_part = ops_per_part
        self.triggers_per_part = triggers_per_part
        self.applied = 0           # sub-txns in the tree
        self.fired = 0             # watch events handed out
        self.touched: dict[str, None] = {}
        self.failed = multi_failed(item.txn)

    @property
    def in_tree(self) -> bool:
        return self.applied == len(self.item.txn.txns)

    @property
    def done(self) -> bool:
        return self.in_tree and self.fired == len(self.out.triggers)

    def apply_part(self, tree: DataTree) -> None:
        stop = min(self.applied + self.ops_per_part, len(self.item.txn.txns))
        tree.apply_multi_part(self.item.hdr, self.item.txn, self.out, self.applied, stop,
                              self.touched, self.failed)
        self.applied = stop

    def next_triggers(self) -> list:
        assert self.in_tree
        part = self.out.triggers[self.fired:self.fired + self.triggers_per_part]
        self.fired += len(part)
        return part

    def read_waits(self, op: int, req) -> bool:
        if op in _NEVER_WAIT:
            return False
        if op in _ALWAYS_WAIT:
            return True
        path = getattr(req, "path", None)
        if not isinstance(path, str):
            return False  # answered without the tree (malformed, unknown)
        return ("/" if path == "" else path) in self.touched


class SlicedClose(SlicedApply):
    """A closeSession's deletes, ``ops_per_part`` at a time. The paths and
    their order are fixed at the first part (the tree's ``kill_order``:
    the session's ephemerals and the txn's paths2Delete, deepest first), so
    the result is the unsliced ``kill_session``'s, events in the same order."""

    def __init__(self, item, ops_per_part: int, triggers_per_part: int):
        assert item.hdr.type == OpCode.closeSession
        self.item = item
        self.out = ApplyResult()
        self.ops_per_part = ops_per_part
        self.triggers_per_part = triggers_per_part
        self.applied = 0           # paths handled (deleted, or not the session's)
        self.fired = 0
        self.touched = {}
        self.paths: list[str] | None = None

    @property
    def in_tree(self) -> bool:
        return self.paths is not None and self.applied == len(self.paths)

    def apply_part(self, tree: DataTree) -> None:
        sid = self.item.hdr.clientId
        if self.paths is None:
            txn = self.item.txn
            self.paths = tree.kill_order(sid, txn.paths2Delete if txn is not None else None)
        stop = min(self.applied + self.ops_per_part, len(self.paths))
        part = self.paths[self.applied:stop]
        tree.kill_session_part(sid, self.item.hdr.zxid, part, self.out.triggers)
        touched = self.touched
        for path in part:
            touched[path] = None
            touched[parent_of(path)] = None
        self.applied = stop
        if stop == len(self.paths):
            tree.ephemerals.pop(sid, None)


class SlicedPrep:
    """A large multi decoded, then prepared, a part at a time. Its zxid is
    taken first; the server prepares no other txn (writes, sessions opened or
    closed) until it is handed to the log, since they share the pending
    changes and must follow it in zxid order. Reads go on: they see the
    tree, which the multi has not touched yet. ``result`` is set at the end:
    (txn type, txn, the decoded ops or None when the body did not decode)."""

    def __init__(self, conn, entry, session_id: int, cxid: int, body: bytes, zxid: int, ctx,
                 ops_per_part: int):
        # conn and entry: None for a request a learner forwarded to the leader
        self.conn, self.entry, self.zxid, self.ctx = conn, entry, zxid, ctx
        self.session_id, self.cxid = session_id, cxid
        self.ops_per_part = ops_per_part
        self.reader = Reader(memoryview(body))
        self.ops: list = []
        self.decoded = False
        self.decode_error: str | None = None
        self.multi: MultiPrep | None = None
        self.result: tuple | None = None

    def step(self, pending, session_alive: bool) -> bool:
        """One part; True once ``result`` is set. Errors come in the order
        of the unsliced path: a body that does not decode, then a session
        gone, then an op no multi takes."""
        if not self.decoded:
            try:
                self.decoded = decode_multi_part(self.reader, MULTI_WRITE_OPS, self.ops,
                                                 self.ops_per_part)
            except DecodeError as e:
                self.decode_error = str(e)
                self.result = (OpCode.error, R.ErrorTxn(Err.MARSHALLINGERROR), None)
                return True
            return False
        if self.multi is None:
            if not session_alive:
                self.result = (OpCode.error, R.ErrorTxn(Err.SESSIONEXPIRED), self.ops)
                return True
            if any(sub is None for _, sub in self.ops):
                self.result = (OpCode.error, R.ErrorTxn(Err.MARSHALLINGERROR), self.ops)
                return True
            self.multi = MultiPrep(self.ops, self.zxid, pending, self.ctx)
        try:
            if not self.multi.step(self.ops_per_part):
                return False
        except (PrepError, PrepFailure) as e:
            self.result = (OpCode.error, R.ErrorTxn(e.code), self.ops)
            return True
        self.result = (*self.multi.result(), self.ops)
        return True


class SlicedDecode:
    """A large multi body a learner forwarded whole, decoded a part at a time
    for the reply it gives when the leader's commit comes back (the leader
    decodes and prepares it itself). ``ops`` is the decoded list once
    ``step`` returned True, or None when the body does not decode."""

    def __init__(self, entry, body: bytes, ops_per_part: int):
        self.entry = entry
        self.ops_per_part = ops_per_part
        self.reader = Reader(memoryview(body))
        self.ops: list | None = []

    def step(self) -> bool:
        assert self.ops is not None
        try:
            return decode_multi_part(self.reader, MULTI_WRITE_OPS, self.ops, self.ops_per_part)
        except DecodeError:
            self.ops = None
            return True


class SlicedChildren:
    """The child list of a node with many children, encoded a part per
    ``work`` call for a getChildren at the head of its connection's queue
    (the first listing after a change re-encodes the whole list). The names
    are taken at the start; once all are encoded, the list becomes the
    node's cached one if no child came or went meanwhile, and the read is
    answered as any read, at that moment, from the cache (or, if the list
    changed, encoded then in one piece)."""

    def __init__(self, conn_id: int, entry, node, names_per_part: int):
        self.conn_id, self.entry, self.node = conn_id, entry, node
        self.names_per_part = names_per_part
        self.signature = node.children_signature()
        self.paths = list(node.child_paths())
        self.cut = child_name_at(self.paths)
        self.parts: list[bytes] = []
        self.encoded = 0

    def step(self) -> bool:
        """One more part; True once every name is encoded."""
        stop = min(self.encoded + self.names_per_part, len(self.paths))
        self.parts.append(encode_child_names(self.paths[self.encoded:stop], self.cut))
        self.encoded = stop
        return stop == len(self.paths)

    def finish(self, tree: DataTree, path: str) -> None:
        """Cache the list on the node if it is still the tree's and unchanged."""
        node = self.node
        # ``is self.node``, not ``is node``: mypy would narrow the local to
        # Optional by it (and mypyc refuse the module)
        if tree.nodes.get(path) is self.node and node.children_wire is None \
                and node.children_signature() == self.signature:
            node.children_wire = _COUNT.pack(len(self.paths)) + b"".join(self.parts)
