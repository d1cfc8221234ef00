"""Final stage: answer reads from the tree and turn applied txns into replies.

Reads run when they reach the head of their session's queue, so they see
every write the same session sent before them. ``read`` returns
``(err, body_bytes)``: ``body`` is the encoded response record, or b"" when
the reply is a bare header. Watches asked for by a read are registered here
(only when the read succeeds, except exists, which also watches a missing
node — ZooKeeper's exist watch).

``write_reply`` encodes the response to a write from the ``ApplyResult`` of
its txn, by the op code the client used.
"""

from __future__ import annotations

import struct

import dataclasses

from ..jute import records as R
from ..jute.codec import Writer
from ..jute.constants import ERR, OP, PERM, WatcherType
from ..tree.acl import check_perm, java_set_order
from ..tree.datatree import ApplyResult, DataTree
from ..tree.watches import WatchManager

__all__ = ["Encoded", "ReadContext", "ephemerals_prefix", "read", "write_reply",
           "multi_response"]


class ReadContext:
    __slots__ = ("tree", "watches", "session_id", "auth_ids", "skip_acl")

    def __init__(self, tree: DataTree, watches: WatchManager, session_id: int, auth_ids: list,
                 skip_acl: bool):
        self.tree = tree
        self.watches = watches
        self.session_id = session_id
        self.auth_ids = auth_ids
        self.skip_acl = skip_acl


_INT = struct.Struct(">i")


class Encoded:
    """A response already in wire form: the hot reads skip building records.
    ``tail`` follows ``data`` (getChildren2's stat after the child list), so
    that a long cached list is not copied to build a response: the server
    sends a reply over ``limits.REPLY_BYTES_PER_PART`` in pieces
    (server/standalone.py, ``Pieces``) straight from ``data`` and ``tail``."""

    __slots__ = ("data", "tail")

    def __init__(self, data: bytes, tail: bytes = b""):
        self.data = data
        self.tail = tail

    def to_bytes(self) -> bytes:
        return self.data + self.tail if self.tail else self.data

    def write(self, w) -> None:
        w.out += self.data
        w.out += self.tail


def _buffer(data: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if data is None else _INT.pack(len(data)) + data


def _ustring(text: str | None) -> bytes:
    if text is None:
        return b"\xff\xff\xff\xff"
    raw = text.encode("utf-8")
    return _INT.pack(len(raw)) + raw


def _readable(ctx: ReadContext, node) -> bool:
    return check_perm(node.acl, PERM.READ, ctx.auth_ids, ctx.skip_acl)


def _lookup(ctx: ReadContext, path: str):
    """A read names a node by its exact key, unvalidated, as in ZooKeeper,
    whose tree also keeps the root under '' (so getData('') reads '/')."""
    return ctx.tree.nodes.get("/" if path == "" else path)


def _get_data(ctx: ReadContext, req) -> tuple[int, R.Record | None]:
    if req.path is None:
        return ERR.MARSHALLINGERROR, None
    node = _lookup(ctx, req.path)
    if node is None:
        return ERR.NONODE, None
    if not _readable(ctx, node):
        return ERR.NOAUTH, None
    if req.watch:
        ctx.watches.add_data_watch(req.path, ctx.session_id)
    return ERR.OK, Encoded(_buffer(node.data) + node.stat_bytes())


def _get_children(ctx: ReadContext, req, with_stat: bool) -> tuple[int, R.Record | None]:
    if req.path is None:
        return ERR.MARSHALLINGERROR, None
    node = _lookup(ctx, req.path)
    if node is None:
        return ERR.NONODE, None
    if not _readable(ctx, node):
        return ERR.NOAUTH, None
    if req.watch:
        ctx.watches.add_child_watch(req.path, ctx.session_id)
    wire = node.encoded_children()
    if with_stat:
        return ERR.OK, Encoded(wire, node.stat_bytes())
    return ERR.OK, Encoded(wire)


def _exists(ctx: ReadContext, req) -> tuple[int, R.Record | None]:
    # exists is the one read ZooKeeper checks for a NUL in the path.
    if req.path is None:
        return ERR.MARSHALLINGERROR, None
    if "\0" in req.path:
        return ERR.BADARGUMENTS, None
    node = _lookup(ctx, req.path)
    if req.watch:
        ctx.watches.add_data_watch(req.path, ctx.session_id)
    if node is None:
        return ERR.NONODE, None
    return ERR.OK, Encoded(node.stat_bytes())


def _get_acl(ctx: ReadContext, req) -> tuple[int, R.Record | None]:
    if req.path is None:
        return ERR.MARSHALLINGERROR, None
    node = _lookup(ctx, req.path)
    if node is None:
        return ERR.NONODE, None
    if not check_perm(node.acl, PERM.READ | PERM.ADMIN, ctx.auth_ids, ctx.skip_acl):
        return ERR.NOAUTH, None
    acl = list(node.acl)
    if not check_perm(node.acl, PERM.ADMIN, ctx.auth_ids, ctx.skip_acl):
        # Without ADMIN the digest hashes are not shown (ZOOKEEPER-1392).
        acl = [R.ACL(a.perms, R.Id(a.id.scheme, a.id.id.split(":", 1)[0] + ":x"))
               if a.id.scheme == "digest" else a for a in acl]
    return ERR.OK, R.GetACLResponse(acl, node.stat())


def _all_children_number(ctx: ReadContext, req) -> tuple[int, R.Record | None]:
    if req.path is None:
        return ERR.MARSHALLINGERROR, None
    node = _lookup(ctx, req.path)
    if node is None:
        return ERR.NONODE, None
    if not _readable(ctx, node):
        return ERR.NOAUTH, None
    if req.path == "":
        # ZooKeeper counts keys starting with '' + '/': every node, root included.
        return ERR.OK, R.GetAllChildrenNumberResponse(ctx.tree.node_count())
    return ERR.OK, R.GetAllChildrenNumberResponse(ctx.tree.count_descendants(req.path))


# What Java's String.trim() takes off: every char up to U+0020.
_JAVA_TRIM = "".join(map(chr, range(33)))


def ephemerals_prefix(prefix: str | None) -> str | None:
    """getEphemerals' prefix as ZooKeeper's FinalRequestProcessor takes it:
    None (every ephemeral of the session) when it is null, or blank or "/"
    once trimmed as Java trims; otherwise the prefix itself, untrimmed."""
    if prefix is None:
        return None
    trimmed = prefix.strip(_JAVA_TRIM)
    return None if trimmed in ("", "/") else prefix


def _ephemerals(ctx: ReadContext, req) -> tuple[int, R.Record | None]:
    prefix = ephemerals_prefix(req.prefixPath)
    owned = ctx.tree.ephemerals.get(ctx.session_id, {})
    if prefix is None:
        return ERR.OK, R.GetEphemeralsResponse(list(owned))
    return ERR.OK, R.GetEphemeralsResponse([p for p in owned if p.startswith(prefix)])


def _watch_op(ctx: ReadContext, op: int, req) -> tuple[int, R.Record | None]:
    # ZooKeeper 3.8 fails an unknown mode or watcher type while decoding the
    # enum, which it answers as MARSHALLINGERROR. Watcher types 4 and 5
    # (persistent ones) came in 3.9.
    if op == OP.addWatch:
        if req.mode not in (0, 1):
            return ERR.MARSHALLINGERROR, None
        ctx.watches.add_persistent(req.path, ctx.session_id, recursive=req.mode == 1)
        return ERR.OK, R.ErrorResponse(0)
    if req.type not in (WatcherType.Children, WatcherType.Data, WatcherType.Any):
        return ERR.MARSHALLINGERROR, None
    if op == OP.checkWatches:
        ok = ctx.watches.has_watch(req.path, ctx.session_id, req.type)
        return (ERR.OK if ok else ERR.NOWATCHER), None
    removed = ctx.watches.remove(req.path, ctx.session_id, req.type)
    return (ERR.OK if removed else ERR.NOWATCHER), None


def who_am_i(auth_ids: list) -> R.WhoAmIResponse:
    """whoAmI as ZooKeeper answers it: a digest id shows only its user name,
    and the ids come in the iteration order of the Java hash set that holds
    them (bucket order of a ConcurrentHashMap, insertion order within one),
    which clients can observe."""
    infos = []
    for i in java_set_order(auth_ids):
        user = i.id.split(":", 1)[0] if i.scheme == "digest" and i.id else i.id
        if i.scheme == "super":
            user = ""  # no provider is registered for "super": AuthUtil gives no user
        infos.append(R.ClientInfo(i.scheme, user if user is not None else ""))
    return R.WhoAmIResponse(infos)


def read(ctx: ReadContext, op: int, req) -> tuple[int, R.Record | None]:
    if op == OP.getData:
        return _get_data(ctx, req)
    if op == OP.exists:
        return _exists(ctx, req)
    if op == OP.getChildren:
        return _get_children(ctx, req, False)
    if op == OP.getChildren2:
        return _get_children(ctx, req, True)
    if op == OP.getACL:
        return _get_acl(ctx, req)
    if op == OP.getAllChildrenNumber:
        return _all_children_number(ctx, req)
    if op == OP.getEphemerals:
        return _ephemerals(ctx, req)
    if op == OP.sync:
        return ERR.OK, R.SyncResponse(req.path)
    if op in (OP.addWatch, OP.checkWatches, OP.removeWatches):
        return _watch_op(ctx, op, req)
    if op == OP.whoAmI:
        return ERR.OK, who_am_i(ctx.auth_ids)
    if op == OP.multiRead:
        if any(sub is None for _, sub in req):
            # A write inside multiRead. ZooKeeper decodes the whole record
            # first: a read mixed with writes (or an op no multi takes) fails
            # there, and no body goes out; ops all of the write kind decode,
            # its loop then fails on the first one with the empty
            # MultiResponse already made, and that goes out after the error
            # header (found by the differential fuzzer).
            if all(sub_op in _TXN_KIND_OPS for sub_op, _ in req):
                return ERR.MARSHALLINGERROR, _MultiReadResponse([])
            return ERR.MARSHALLINGERROR, None
        # ZooKeeper rebuilds each sub-request without its watch flag, so a
        # multiRead never sets a watch.
        results = []
        for sub_op, sub in req:
            results.append((sub_op, *read(ctx, sub_op, dataclasses.replace(sub, watch=False))))
        return ERR.OK, _MultiReadResponse(results)
    return ERR.UNIMPLEMENTED, None


# The ops ZooKeeper's MultiOperationRecord decodes as the transaction kind.
_TXN_KIND_OPS = frozenset({OP.create, OP.create2, OP.createContainer,
                           OP.createTTL, OP.delete, OP.setData, OP.check})


class _MultiReadResponse:
    """multiRead answer: per op a MultiHeader and its response or error."""

    def __init__(self, results: list[tuple[int, int, R.Record | None]]):
        self.results = results

    def to_bytes(self) -> bytes:
        w = Writer()
        for op, err, rec in self.results:
            if err:
                R.MultiHeader(OP.error, False, err).write(w)
                R.ErrorResponse(err).write(w)
            else:
                R.MultiHeader(op, False, 0).write(w)
                assert rec is not None
                rec.write(w)
        R.MultiHeader(-1, True, -1).write(w)
        return w.getvalue()


def multi_response(ops: list[tuple[int, object]], res: ApplyResult) -> bytes:
    w = Writer()
    failed = any(s.err for s in res.multi or ())  # once: per op it made a 10k-op multi quadratic
    for (op, _), sub in zip(ops, res.multi or ()):
        if failed:
            R.MultiHeader(OP.error, False, sub.err).write(w)
            R.ErrorResponse(sub.err).write(w)
        elif op in (OP.create, OP.create2):
            # ZooKeeper 3.8.0 answers create2 inside a multi like a create
            # (ZOOKEEPER-4026, fixed in 3.8.2); we follow the package.
            R.MultiHeader(OP.create, False, 0).write(w)
            R.CreateResponse(sub.path).write(w)
        elif op in (OP.createTTL, OP.createContainer):
            R.MultiHeader(OP.create2, False, 0).write(w)
            R.Create2Response(sub.path, sub.stat).write(w)
        elif op == OP.setData:
            R.MultiHeader(op, False, 0).write(w)
            R.SetDataResponse(sub.stat).write(w)
        else:  # delete, check
            R.MultiHeader(op, False, 0).write(w)
    R.MultiHeader(-1, True, -1).write(w)
    return w.getvalue()


def write_reply(op: int, req, res: ApplyResult) -> tuple[int, bytes]:
    """(err, body) for the reply to a write, from its applied txn."""
    if op == OP.multi:
        if res.multi is None:  # the whole multi was refused (see prep)
            return res.err, b""
        return ERR.OK, multi_response(req, res)
    if res.err:
        return res.err, b""
    # The bodies are encoded straight from the applied result (as
    # CreateResponse, Create2Response and SetDataResponse would encode them)
    # without building the response record: these are the hot writes.
    if op == OP.create:
        return ERR.OK, _ustring(res.path)
    if op in (OP.create2, OP.createTTL, OP.createContainer):
        stat = res.stat
        if stat is None and res.node is not None:
            return ERR.OK, _ustring(res.path) + res.node.stat_bytes()
        return ERR.OK, R.Create2Response(res.path, res.stat_now()).to_bytes()
    if op in (OP.setData, OP.setACL):
        node = res.node
        assert node is not None
        return ERR.OK, node.stat_bytes()
    if op == OP.reconfig:
        # GetDataResponse of /zookeeper/config: the new config text and its stat
        node = res.node
        assert node is not None
        data = node.data or b""
        return ERR.OK, len(data).to_bytes(4, "big") + data + node.stat_bytes()
    return ERR.OK, b""
