"""A large multi decoded, prepared and applied a part at a time, so that
other sessions are served between the parts (issue 12: one request must not
hold the loop). ``SlicedPrep`` is the first half (below); ``SlicedApply``:

State: the multi being applied (its ``InFlight``), the ``ApplyResult`` built
so far, how many sub-txns are in, the paths changed so far, and, once the
tree holds the whole multi, how many of its watch events are out.

``SlicedClose`` applies a closeSession whose session owns many ephemerals
(issue 19: 100k of them took seconds in one step) the same way: its deletes,
deepest first, a part at a time (after parts that put them in that order),
then its watch events; it stays one txn. ``SlicedClosePrep`` prepares such
a close a part at a time, as ``SlicedPrep`` a large multi.

The server core owns one of these at a time and, while it exists, applies
no later txn. Atomicity as other sessions see it (for a closeSession read
"delete" for "sub-txn"):

- a read of a path the multi already changed (a node, or a parent's child
  list and stat; for a close, more broadly: the parents of its paths and
  any of their children no longer in the tree, see ``SlicedClose``) waits
  until the multi is complete, and so do reads that
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

import operator
import struct
from itertools import chain, islice, repeat
from typing import Iterator

from ..jute import records as R
from ..jute.codec import DecodeError, Reader
from ..jute.constants import Err, OpCode
from ..pipeline.prep import (MULTI_WRITE_OPS, ClosePrep, MultiPrep, PrepError, PrepFailure,
                             decode_multi_part)
from ..tree.datatree import (ApplyResult, DataTree, child_name_at, encode_child_names,
                             multi_failed)
from ..tree.kill_order import KillOrder
from ..tree.paths import parent_of

__all__ = ["SlicedApply", "SlicedChildren", "SlicedClose", "SlicedClosePrep", "SlicedCount",
           "SlicedDecode",
           "SlicedEphemerals", "SlicedPrep", "SlicedScan", "encode_paths"]

# Reads that are not about one node: they wait for the whole multi.
_ALWAYS_WAIT = frozenset({
    OpCode.multiRead, OpCode.getAllChildrenNumber, OpCode.getEphemerals, OpCode.sync,
    OpCode.addWatch, OpCode.checkWatches, OpCode.removeWatches, OpCode.setWatches,
    OpCode.setWatches2,
})
_NEVER_WAIT = frozenset({OpCode.ping, OpCode.whoAmI})
_COUNT = struct.Struct(">i")
_INT = _COUNT
_CREATES = frozenset({OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL})
_DELETES = frozenset({OpCode.delete, OpCode.deleteContainer})


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

    def apply_part(self, tree: DataTree, watched: bool = True) -> None:
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
        return self._path_waits("/" if path == "" else path)

    def _path_waits(self, path: str) -> bool:
        """A read of ``path`` would see part of the txn."""
        return path in self.touched


class SlicedClose(SlicedApply):
    """A closeSession's deletes, ``ops_per_part`` at a time. The paths and
    their order are those of the tree's ``kill_order`` (the session's
    ephemerals and the txn's paths2Delete, deepest first, then by path), so
    the result is the unsliced ``kill_session``'s, events in the same order;
    they are put in order ``paths_per_part`` at a time (``KillOrder``) in the
    parts before the first delete (the tree is still the one before the
    close: nothing waits, every read is answered as before it).

    Once parts delete, a read waits (``read_waits``) when it is of a parent
    of the close's paths, or of a child of one that is no longer in the
    tree: deleted by the close, or never there (no other txn is applied
    meanwhile; such a read waiting changes no answer). That needs no
    record per path deleted: for 100k ephemerals such a dict grew by
    resizes of some 5 ms and freed 100k paths in the close's last turn."""

    def __init__(self, item, ops_per_part: int, triggers_per_part: int, paths_per_part: int):
        assert item.hdr.type == OpCode.closeSession
        self.item = item
        self.out = ApplyResult()
        self.ops_per_part = ops_per_part
        self.triggers_per_part = triggers_per_part
        self.paths_per_part = paths_per_part
        self.applied = 0           # paths handled (deleted, or not the session's)
        self.fired = 0
        self.order: KillOrder | None = None
        self.paths: Iterator[str] | None = None   # in order, once known
        self.nodes: dict = {}      # the tree's, once parts delete
        self.finished = False

    @property
    def in_tree(self) -> bool:
        return self.finished

    def _path_waits(self, path: str) -> bool:
        if not self.applied:
            return False  # nothing deleted yet
        order = self.order
        assert order is not None
        parents = order.parents
        if path in parents:
            return True
        return parent_of(path) in parents and path not in self.nodes

    def apply_part(self, tree: DataTree, watched: bool = True) -> None:
        """``watched``: some watch or a change log could take this part's
        events. When nothing could, they are not kept: a watch set later
        is on a path a later part deletes (a read of a path already
        deleted waits for the whole close), and for a session owning 100k
        ephemerals that spares 200k live tuples, which the collector's
        passes scanned while the close went on. The part that takes the
        last paths into the order deletes the first ones too."""
        sid = self.item.hdr.clientId
        order = self.order
        if order is None:
            txn = self.item.txn
            order = self.order = KillOrder(tree.ephemerals.get(sid, {}),
                                           txn.paths2Delete if txn is not None else None,
                                           self.paths_per_part)
        paths = self.paths
        if paths is None:
            if not order.step():
                return
            paths = self.paths = order.paths()
            self.nodes = tree.nodes
        total = order.total
        part = list(islice(paths, min(self.ops_per_part, total - self.applied)))
        tree.kill_session_part(sid, self.item.hdr.zxid, part,
                               self.out.triggers if watched else [])
        self.applied += len(part)
        if self.applied == total:
            tree.ephemerals.pop(sid, None)
            self.finished = True


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


class SlicedClosePrep:
    """A closeSession of a session owning many ephemerals, prepared a part
    per ``work`` call (``ClosePrep``) as a large multi is (``SlicedPrep``):
    its zxid and header are taken first, and the server prepares no other
    txn until it is handed to the log. ``conn`` and ``entry``: the client's
    closeSession, or None (an expiry, or a learner's forwarded close)."""

    def __init__(self, conn, entry, hdr: R.TxnHeader, prep: ClosePrep) -> None:
        self.conn, self.entry, self.hdr, self.prep = conn, entry, hdr, prep
        self.session_id = hdr.clientId


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


class SlicedScan:
    """A read answered from many nodes, computed a part per ``work`` call
    (issue 19): a long child list that is not cached (``SlicedChildren``),
    getAllChildrenNumber of a large subtree (``SlicedCount``), getEphemerals
    of a session owning many ephemerals (``SlicedEphemerals``).

    Consistency: the answer is the one of the moment it is finished, as any
    read's. While a scan is under way the server applies no txn that would
    change its answer (``waits_for``; such a txn, and every txn after it,
    waits in order until the scans it waits for are done), nor a txn of a
    session whose read it is (as ZooKeeper, which applies no write of a
    session before that session's earlier reads are answered: the zxids a
    session is answered with never go back), and starts no new scan while a
    txn waits so (the scan's read waits instead), so writes are never
    starved. Any other txn is applied as usual, and its watch events go
    out: they do not contradict the answer that follows them. This is what
    ZooKeeper does, more finely: its CommitProcessor applies no committed
    write while any read is being processed.

    ``waiters``: the (connection id, entry) of the reads answered by this
    scan (several getChildren of one node share the encoding), ``sessions``
    their session ids."""

    def __init__(self, conn_id: int, session_id: int, entry) -> None:
        self.waiters: list = [(conn_id, entry)]
        self.sessions: dict[int, None] = {session_id: None}
        # the txn last judged by ``waits_for`` (typed, or mypyc takes it for
        # None and the compiled build fails on the first txn), and the verdict
        self._hdr: object = None
        self._verdict = False

    def join(self, conn_id: int, session_id: int, entry) -> None:
        """Another read answered by this scan."""
        self.waiters.append((conn_id, entry))
        self.sessions[session_id] = None

    def step(self, tree: DataTree) -> bool:
        """One more part; True once the answer is complete."""
        raise NotImplementedError

    def changed_by(self, hdr, txn, tree: DataTree) -> bool:
        """Whether applying this txn could change the answer."""
        raise NotImplementedError

    def body_parts(self, tree: DataTree) -> list | None:
        """The reply body in parts once complete, or None: answered as any
        read (a child list, from the cache the scan filled)."""
        raise NotImplementedError

    def waits_for(self, hdr, txn, tree: DataTree) -> bool:
        """``changed_by``, judged once per txn (the txn at the head of the
        apply order is asked again on every try until it may go)."""
        if hdr is not self._hdr:
            self._hdr = hdr
            self._verdict = hdr.clientId in self.sessions or self.changed_by(hdr, txn, tree)
        return self._verdict


def _first_path(data: bytes | None) -> str | None:
    """The path of an encoded create or delete txn (its first field)."""
    if not data or len(data) < 4:
        return None
    (n,) = _INT.unpack_from(data)
    if n < 0 or 4 + n > len(data):
        return None
    return bytes(data[4:4 + n]).decode("utf-8", "replace")


def _multi_changes(txn) -> list:
    """(txn type, path) of each create and delete a multi makes; none when
    it failed (it then changes nothing)."""
    if txn is None or multi_failed(txn):
        return []
    return [(sub.type, _first_path(sub.data)) for sub in txn.txns
            if sub.type in _CREATES or sub.type in _DELETES]


def _closed_paths(hdr, txn, tree: DataTree):
    """What a closeSession may delete: the session's ephemerals and the
    txn's paths2Delete."""
    owned = tree.ephemerals.get(hdr.clientId, ())
    listed = txn.paths2Delete if txn is not None and txn.paths2Delete else ()
    return chain(owned, listed)


def _under(paths, prefix: str) -> bool:
    """Any of ``paths`` starts with ``prefix`` (in C: no Python step per path)."""
    return any(map(str.startswith, paths, repeat(prefix)))


class SlicedChildren(SlicedScan):
    """The child list of a node with many children, encoded a part per
    ``work`` call for a getChildren at the head of its connection's queue
    (the first listing after a change encodes the whole list). The txns
    that would add or remove one of its children wait meanwhile, so the list
    is still the node's when it is done: it becomes the node's cached one
    and the reads waiting for it are answered as any read, from the cache."""

    def __init__(self, conn_id: int, session_id: int, entry, path: str, node,
                 names_per_part: int):
        super().__init__(conn_id, session_id, entry)
        self.path, self.node = path, node
        self.prefix = path if path == "/" else path + "/"
        self.names_per_part = names_per_part
        self.signature = node.children_signature()
        self.paths = list(node.child_paths())
        self.cut = child_name_at(self.paths)
        self.parts: list[bytes] = []
        self.encoded = 0

    def step(self, tree: DataTree) -> bool:
        stop = min(self.encoded + self.names_per_part, len(self.paths))
        self.parts.append(encode_child_names(self.paths[self.encoded:stop], self.cut))
        self.encoded = stop
        return stop == len(self.paths)

    def changed_by(self, hdr, txn, tree: DataTree) -> bool:
        t = hdr.type
        if t in _CREATES or t in _DELETES:
            return parent_of(txn.path) == self.path
        if t == OpCode.multi:
            return any(p is not None and parent_of(p) == self.path
                       for _, p in _multi_changes(txn))
        if t == OpCode.closeSession:   # grandchildren too: said in C, and rare
            return _under(_closed_paths(hdr, txn, tree), self.prefix)
        return False

    def body_parts(self, tree: DataTree) -> list | None:
        """Caches the list on the node (the reads are then answered from it)."""
        node = self.node
        # ``is self.node``, not ``is node``: mypy would narrow the local to
        # Optional by it (and mypyc refuse the module)
        assert tree.nodes.get(self.path) is self.node \
            and node.children_signature() == self.signature, \
            f"the child list of {self.path} changed while it was encoded in parts"
        if node.children_wire is None:
            node.children_wire = _COUNT.pack(len(self.paths)) + b"".join(self.parts)
        return None


class SlicedCount(SlicedScan):
    """getAllChildrenNumber of a node with many nodes below it: counted
    ``nodes_per_part`` nodes per ``work`` call (``DataTree.count_part``).
    The creates and deletes below the node wait meanwhile."""

    def __init__(self, conn_id: int, session_id: int, entry, path: str, tree: DataTree,
                 nodes_per_part: int):
        super().__init__(conn_id, session_id, entry)
        self.prefix = path + "/"
        self.nodes_per_part = nodes_per_part
        self.pending = tree.descendants_start(path)
        self.total = 0

    def step(self, tree: DataTree) -> bool:
        self.total += tree.count_part(self.pending, self.nodes_per_part)
        return not self.pending

    def changed_by(self, hdr, txn, tree: DataTree) -> bool:
        t = hdr.type
        if t in _CREATES or t in _DELETES:
            return txn.path.startswith(self.prefix)
        if t == OpCode.multi:
            return any(p is not None and p.startswith(self.prefix)
                       for _, p in _multi_changes(txn))
        if t == OpCode.closeSession:
            return _under(_closed_paths(hdr, txn, tree), self.prefix)
        return False

    def body_parts(self, tree: DataTree) -> list | None:
        return [_COUNT.pack(self.total)]


def encode_paths(paths: list) -> bytes:
    """Paths as jute ustrings, one after another (a vector without its
    count), in C: no Python step per path."""
    raw = list(map(str.encode, paths))
    return b"".join(map(bytes.__add__, map(_INT.pack, map(len, raw)), raw))


class SlicedEphemerals(SlicedScan):
    """getEphemerals of a session owning many ephemerals: filtered by the
    prefix and encoded ``paths_per_part`` paths per ``work`` call. The
    session's ephemeral creates, the deletes of its ephemerals and its
    close wait meanwhile."""

    def __init__(self, conn_id: int, session_id: int, entry, owned: dict, prefix: str | None,
                 paths_per_part: int):
        super().__init__(conn_id, session_id, entry)
        self.session_id = session_id
        self.owned = owned
        self.paths = list(owned)
        self.prefix = prefix
        self.paths_per_part = paths_per_part
        self.parts: list[bytes] = []
        self.done = 0
        self.count = 0

    def step(self, tree: DataTree) -> bool:
        stop = min(self.done + self.paths_per_part, len(self.paths))
        part = self.paths[self.done:stop]
        if self.prefix is not None:
            part = list(filter(operator.methodcaller("startswith", self.prefix), part))
        self.count += len(part)
        self.parts.append(encode_paths(part))
        self.done = stop
        return stop == len(self.paths)

    def changed_by(self, hdr, txn, tree: DataTree) -> bool:
        t = hdr.type
        mine = hdr.clientId == self.session_id
        if t in (OpCode.create, OpCode.create2):
            return mine and bool(txn.ephemeral)
        if t in _DELETES:
            return txn.path in self.owned
        if t == OpCode.multi:
            return any((mine and op in _CREATES) or (op in _DELETES and p in self.owned)
                       for op, p in _multi_changes(txn))
        return t == OpCode.closeSession and mine

    def body_parts(self, tree: DataTree) -> list | None:
        return [_COUNT.pack(self.count), *self.parts]
