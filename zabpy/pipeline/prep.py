"""Prep stage: turn a write request into the txn that will be logged.

A write is checked against the tree *plus the writes already prepared but
not yet applied* (ZooKeeper's outstanding changes): a create of /a/b right
after a pipelined create of /a must see /a. ``PendingChanges`` keeps one
``ChangeRecord`` per path touched by an in-flight txn; applying a txn drops
the records it made.

Errors are values: ``PrepError(code)`` is raised inside this module only and
turned into an ErrorTxn by ``prepare``, which never raises. Every write gets
a txn, failed ones included (they consume a zxid, as in ZooKeeper).

Check order (error precedence) follows ZooKeeper 3.8, see
zookeeper-facts.md section 1.1.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, replace
from heapq import merge
from itertools import chain, islice, repeat
from typing import Callable, Iterator

from ..jute import records as R
from ..jute.codec import DecodeError, Reader
from ..jute.constants import CONTAINER_EPHEMERAL_OWNER, ERR, OP, PERM, CreateMode
from .. import limits
from ..tree.acl import OPEN_ACL_UNSAFE, check_perm, fix_acl
from ..tree.datatree import DataTree, is_ttl_owner, ttl_owner
from ..tree.paths import validate_path
from ..tree.quota import StatsError, check_quota, limits_path, stats_path, top_namespace

__all__ = ["ChangeRecord", "ClosePrep", "PendingChanges", "PrepContext", "children_lost",
           "close_session_txn",
           "prepare",
           "prepare_close_session",
           "WRITE_OPS",
           "decode_multi", "decode_multi_part", "creates_ephemeral", "MultiPrep",
           "MULTI_WRITE_OPS", "MULTI_READ_OPS"]

WRITE_OPS = frozenset({OP.create, OP.create2, OP.createContainer, OP.createTTL,
                       OP.delete, OP.setData, OP.setACL, OP.multi,
                       OP.reconfig, OP.check})
MULTI_WRITE_OPS = frozenset({OP.create, OP.create2, OP.createContainer,
                             OP.createTTL, OP.delete, OP.setData, OP.check})
MULTI_READ_OPS = frozenset({OP.getData, OP.getChildren})


class PrepError(Exception):
    def __init__(self, code: int):
        self.code = code


class PrepFailure(Exception):
    """Where ZooKeeper's prep throws something other than a KeeperException:
    the whole request, a multi included, becomes one error txn."""

    def __init__(self, code: int):
        self.code = code


@dataclass(slots=True)
class ChangeRecord:
    """What prep needs to know of a node as of the last prepared txn."""

    zxid: int
    path: str
    exists: bool
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    ephemeral_owner: int = 0
    child_count: int = 0
    acl: tuple = ()
    data: bytes | None = None  # setData's quota check measures the change from it


class PendingChanges:
    """ZooKeeper's outstanding changes: the last record of each path written
    by a txn prepared but not yet applied (``by_path``, with ``order`` for
    forgetting them), and the sessions whose closeSession is prepared but not
    yet applied (``closing``: session id -> the close's zxid). A node of the
    tree owned by a closing session and with no record of its own is gone as
    far as prep is concerned: a session with 100k ephemerals costs one entry
    here, not 100k records."""

    def __init__(self, tree: DataTree):
        self.tree = tree
        self.by_path: dict[str, ChangeRecord] = {}
        self.order: list[ChangeRecord] = []
        self.closing: dict[int, int] = {}

    def get(self, path: str) -> ChangeRecord | None:
        rec = self.by_path.get(path)
        if rec is not None:
            return rec if rec.exists else None
        node = self.tree.nodes.get(path)
        if node is None:
            return None
        # one unpack of the node's packed stat, not one per field
        _, _, _, _, version, cversion, aversion, owner, _ = node.stat_fields()
        if owner and self.closing and owner in self.closing:
            return None
        return ChangeRecord(-1, path, True, version, cversion, aversion, owner,
                            node.child_count(), node.acl, node.data)

    def add(self, rec: ChangeRecord) -> None:
        self.by_path[rec.path] = rec
        self.order.append(rec)

    def applied(self, zxid: int) -> None:
        """Forget records made by txns up to ``zxid`` (now in the tree)."""
        order, by_path = self.order, self.by_path
        i = 0
        for rec in order:
            if rec.zxid > zxid:
                break
            path = rec.path
            if by_path.get(path) is rec:
                del by_path[path]
            i += 1
        if i:
            del order[:i]
        if self.closing:
            for sid in [s for s, z in self.closing.items() if z <= zxid]:
                del self.closing[sid]

    def rollback(self, zxid: int) -> None:
        """Undo the records of the txn ``zxid`` (a failed multi), the last
        ones added, restoring the record each path had before. By zxid, not
        by position: a multi prepared in parts sees earlier txns applied
        (``applied`` trims the front of ``order``) while it is prepared."""
        order = self.order
        end = len(order)
        while end and order[end - 1].zxid == zxid:
            end -= 1
        if end == len(order):
            return
        del order[end:]
        self.by_path = {}
        for rec in order:
            self.by_path[rec.path] = rec


_SPLIT_LAST = operator.methodcaller("rpartition", "/")
_HEAD = operator.itemgetter(0)


def children_lost(paths: list[str]) -> dict[str, int]:
    """How many of the sorted ``paths`` each parent loses. The paths under
    one parent are one run of the sorted list (the run ends at the first
    path not below it: bisected); when every path of a run is one level
    below the parent, which is the rule for ephemerals (they have no
    children), the run's length is the count, with no Python step per path
    (a session owning 100k ephemerals under one parent: one bisection and
    one join). Otherwise each path of the run counts for its own parent."""
    lost: Counter = Counter()
    i, n = 0, len(paths)
    while i < n:
        first = paths[i]
        cut = first.rfind("/")
        parent = first[:cut]
        # below parent: from "parent/" up to "parent0" ("0" follows "/")
        j = bisect_left(paths, parent + "0", i)
        run = paths[i:j]
        if "".join(run).count("/") == (parent.count("/") + 1) * len(run):
            lost[parent or "/"] += len(run)
        else:
            for p, k in Counter(map(_HEAD, map(_SPLIT_LAST, run))).items():
                lost[p or "/"] += k
        i = j
    return lost


def _outstanding(session_id: int, owned: dict[str, None],
                 pending: PendingChanges) -> tuple[list[str], list[str]]:
    """The session's ephemerals with a pending record of their own (being
    created, ``recorded``) and those of the tree being deleted or made
    again by another session (``gone``)."""
    recorded = []
    gone = []
    for path, rec in pending.by_path.items():
        # Only the latest record of a path is kept: one of another owner means
        # the session's node was deleted and made again by someone else
        # (ZooKeeper walks every outstanding change: the delete drops it).
        if rec.exists and rec.ephemeral_owner == session_id:
            recorded.append(path)
        elif path in owned:
            gone.append(path)
    return recorded, gone


def _closed_set(owned: dict[str, None], recorded: list[str], gone: list[str]) -> list[str]:
    """The paths a close deletes, unsorted (the tree's, in its order, then
    those being created)."""
    if not recorded and not gone:
        return list(owned)
    paths = dict.fromkeys(owned)
    paths.update(dict.fromkeys(recorded))
    for path in gone:
        del paths[path]
    return list(paths)


def _record_close(session_id: int, zxid: int, pending: PendingChanges, lost: dict[str, int],
                  recorded: list[str]) -> None:
    # One record per parent with all its lost children (a session's
    # ephemerals mostly share a few parents).
    for parent_path, count in lost.items():
        parent = pending.get(parent_path)
        if parent is not None:
            pending.add(replace(parent, zxid=zxid,
                                child_count=max(0, parent.child_count - count)))
    for path in recorded:
        pending.add(ChangeRecord(zxid, path, False))
    pending.closing[session_id] = zxid


def prepare_close_session(session_id: int, zxid: int, pending: PendingChanges) -> list[str]:
    """The ephemerals a closeSession txn deletes, recorded as pending deletes.

    As ZooKeeper's PrepRequestProcessor: the session's ephemerals in the tree,
    plus those it is creating in txns not yet applied, minus those already
    being deleted; each parent loses a child in its pending record, so a
    later request sees the tree as it will be once the close is applied.
    Those only in the tree are hidden by marking the session closing (see
    ``PendingChanges``); those with a pending record get a delete record.
    ``ClosePrep`` does the same a part at a time.
    """
    owned = pending.tree.ephemerals.get(session_id, {})
    recorded, gone = _outstanding(session_id, owned, pending)
    out = sorted(_closed_set(owned, recorded, gone))
    _record_close(session_id, zxid, pending, children_lost(out), recorded)
    return out


def _count_lost(chunk: list[str], joined: str, lost: dict[str, int]) -> None:
    """Add to ``lost`` the children each parent loses by ``chunk`` (any
    order; ``joined`` is the chunk joined). When every path is a child of
    the first's parent, which is the rule for a session's ephemerals, the
    count is the chunk's length, with no Python step per path."""
    first = chunk[0]
    parent = first[:first.rfind("/")]
    prefix = parent + "/"
    # each path under prefix has at least its slashes: equal counts, all children
    if joined.count("/") == prefix.count("/") * len(chunk) \
            and all(map(str.startswith, chunk, repeat(prefix))):
        key = parent or "/"
        lost[key] = lost.get(key, 0) + len(chunk)
        return
    for p, k in Counter(map(_HEAD, map(_SPLIT_LAST, chunk))).items():
        key = p or "/"
        lost[key] = lost.get(key, 0) + k


class ClosePrep:
    """``prepare_close_session`` and ``close_session_txn`` a part at a time,
    for a session owning many ephemerals (issue 19: 100,000 took some 27 ms
    in one step). Each ``step`` takes ``per_step`` of the paths the close
    deletes: first their size in the txn and the children each parent
    loses; then, only when the list fits in
    limits.CLOSE_SESSION_PATHS_BYTES_MAX, sorts each part taken, and at
    last merges them a part at a time into the txn's sorted list.
    ``finish`` records the close in the pending changes as
    prepare_close_session does and returns the txn's record (None: no list).

    The server prepares no other txn until it is finished, but applies
    earlier ones. When none of those prepared and not yet applied touches
    the session's ephemerals (no pending record of one of them, none of an
    ephemeral of the session: the rule when a session expires), the tree's
    dict of them does not change meanwhile and is read a part at a time;
    otherwise (or should it change all the same) the paths are taken at
    once, as the unsliced prep takes them (the tree's ephemerals, plus the
    session's pending creates, minus pending deletes), and the parts go
    over that copy (applying earlier txns moves their changes from the
    pending records to the tree: the close's paths are the same)."""

    def __init__(self, session_id: int, zxid: int, pending: PendingChanges, per_step: int):
        assert per_step >= 1
        self.session_id, self.zxid, self.per_step = session_id, zxid, per_step
        self.pending = pending
        self._start(lazy=True)

    def _start(self, lazy: bool) -> None:
        pending, session_id = self.pending, self.session_id
        owned = pending.tree.ephemerals.get(session_id, {})
        self._owned: dict[str, None] | None = None
        if lazy and not any(r.path in owned or (r.exists and r.ephemeral_owner == session_id)
                            for r in pending.order):
            self.recorded: list[str] = []
            self._owned, self._owned_size = owned, len(owned)
            self.count = len(owned)
            self._source: Iterator[str] = iter(owned)
        else:
            self.recorded, gone = _outstanding(session_id, owned, pending)
            paths = _closed_set(owned, self.recorded, gone)
            self.count = len(paths)
            self._source = iter(paths)
        self.size = 4 + 4 * self.count   # the record: a count, a length per path, ...
        self.lost: dict[str, int] = {}
        self.sized = 0                   # paths sized and counted
        # the record lists the paths (known once all are sized)
        self.listed = self.count == 0
        self.runs: list[list[str]] = []  # the parts taken, sorted when listed
        self.sorted_upto = 0
        self.merged: Iterator[str] | None = None
        self.out: list[str] = []         # the record's list, merged so far

    def _changed(self) -> bool:
        owned = self._owned
        return owned is not None and (
            self.pending.tree.ephemerals.get(self.session_id) is not owned
            or len(owned) != self._owned_size)

    def step(self) -> bool:
        """One part; True once ``finish`` may be called."""
        n, k = self.count, self.per_step
        if self.sized < n:
            if self._changed():   # not foreseen: start again from a copy
                self._start(lazy=False)
                return False
            chunk = list(islice(self._source, min(k, n - self.sized)))
            joined = "".join(chunk)
            self.size += len(joined) if joined.isascii() else len(joined.encode())
            _count_lost(chunk, joined, self.lost)
            self.runs.append(chunk)
            self.sized += len(chunk)
            if self.sized < n:
                return False
            self.listed = self.size <= limits.CLOSE_SESSION_PATHS_BYTES_MAX
            if not self.listed:
                self.runs = []
            return not self.listed
        if not self.listed:
            return True
        if self.sorted_upto < len(self.runs):
            self.runs[self.sorted_upto].sort()
            self.sorted_upto += 1
            return False
        merged = self.merged
        if merged is None:
            runs = sorted(self.runs, key=_HEAD)
            self.runs = []
            # runs that follow one another (paths created in order) are chained
            if all(a[-1] < b[0] for a, b in zip(runs, runs[1:])):
                merged = self.merged = chain.from_iterable(runs)
            else:
                merged = self.merged = merge(*runs)
        self.out.extend(islice(merged, min(k, n - len(self.out))))
        return len(self.out) == n

    def finish(self, pending: PendingChanges) -> R.CloseSessionTxn | None:
        assert pending is self.pending
        assert self.sized == self.count and (not self.listed or len(self.out) == self.count)
        _record_close(self.session_id, self.zxid, pending, dict(sorted(self.lost.items())),
                      self.recorded)
        return R.CloseSessionTxn(self.out) if self.listed else None


def close_session_txn(paths: list[str]) -> R.CloseSessionTxn | None:
    """A closeSession's record: its ``paths2Delete``, or None (no record)
    when the list would take more than limits.CLOSE_SESSION_PATHS_BYTES_MAX
    bytes; then every member deletes the session's ephemerals in its own
    tree, as ZooKeeper does with zookeeper.closeSessionTxn.enabled=false."""
    # a count, then per path a length and its UTF-8 bytes (at most 4 per
    # code point): the exact size only when the cheap bound is over, from
    # one joined string (no Python call per path)
    bound = 4 + 4 * len(paths) + 4 * sum(map(len, paths))
    if bound > limits.CLOSE_SESSION_PATHS_BYTES_MAX:
        size = 4 + 4 * len(paths) + len("".join(paths).encode())
        if size > limits.CLOSE_SESSION_PATHS_BYTES_MAX:
            return None
    return R.CloseSessionTxn(paths)


@dataclass
class PrepContext:
    session_id: int
    auth_ids: list
    extended_types: bool = False
    skip_acl: bool = False
    reconfig_enabled: bool = False
    standalone: bool = True
    # non-zero: an ephemeral create fails with this code (a local session that
    # may not be upgraded, or a session the leader knows of no global one)
    ephemeral_error: int = 0
    # ACL schemes of the configured authProviders beyond ip and digest
    acl_schemes: frozenset = frozenset()
    records_out: list = field(default_factory=list)
    enforce_quota: bool = False  # zookeeper.enforceQuota
    # "Quota exceeded: ..." lines for the server's rate-limited log, and the
    # top namespace of each request a hard limit failed (a metric)
    quota_messages: list = field(default_factory=list)
    quota_exceeded: list = field(default_factory=list)
    # the leader's reconfig check: (request, zxid) -> the new config text, or
    # PrepError; None where reconfig is not served (standalone: UNIMPLEMENTED)
    reconfig: Callable | None = None


def _check(rec: ChangeRecord, perm: int, ctx: PrepContext) -> None:
    if not check_perm(rec.acl, perm, ctx.auth_ids, ctx.skip_acl):
        raise PrepError(ERR.NOAUTH)


def _valid_path(path: str | None, sequential: bool = False) -> str:
    if path is None or validate_path(path, sequential=sequential) is not None:
        raise PrepError(ERR.BADARGUMENTS)
    return path


def _parent_path(path: str) -> str:
    """Everything before the last slash, '' naming the root as in ZooKeeper
    (whose tree keeps the root under both '' and '/')."""
    return path[: path.rfind("/")] or "/"


# Nodes a client may not delete (ZooKeeper's isSpecialPath).
_SPECIAL_PATHS = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")


_MODES: dict = {int(m): m for m in CreateMode}  # a dict lookup; the enum call is slow


# flags -> (is_ephemeral, is_sequential, is_container, is_ttl) as plain bools:
# create reads them several times, and each CreateMode property is a call
_MODE_KINDS: dict = {int(m): (m.is_ephemeral, m.is_sequential, m.is_container, m.is_ttl)
                     for m in CreateMode}


def _create_mode(op: int, req, ctx: PrepContext) -> tuple[bool, bool, bool, bool]:
    """The kinds of the create mode (``_MODE_KINDS``); PrepError if refused."""
    ttl = req.ttl if op == OP.createTTL else -1
    kinds = _MODE_KINDS.get(req.flags)
    if kinds is None:
        raise PrepError(ERR.BADARGUMENTS)
    is_ttl = kinds[3]
    if is_ttl and not ctx.extended_types:
        raise PrepError(ERR.UNIMPLEMENTED)
    if is_ttl:
        if not 0 < ttl <= limits.TTL_MS_MAX:
            raise PrepError(ERR.BADARGUMENTS)
    elif ttl >= 0:
        raise PrepError(ERR.BADARGUMENTS)
    if op == OP.createTTL and not is_ttl:
        # ZooKeeper 3.8.0 lets a createTTL with a non-TTL mode and a negative
        # ttl through and then fails applying it; a correct server refuses it.
        raise PrepError(ERR.BADARGUMENTS)
    return kinds


def _create(op: int, req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    is_ephemeral, is_sequential, is_container, is_ttl = _create_mode(op, req, ctx)
    if is_ephemeral and ctx.ephemeral_error:
        # ZooKeeper checks the session right after the mode (validateCreateRequest)
        raise PrepError(ctx.ephemeral_error)
    path = req.path
    if path is None:
        # ZooKeeper fails a null path with an internal error, answered as
        # MARSHALLINGERROR; so do we.
        raise PrepError(ERR.MARSHALLINGERROR)
    if "/" not in path or "\0" in path:
        raise PrepError(ERR.BADARGUMENTS)
    acl, err = fix_acl(req.acl, ctx.auth_ids, ctx.acl_schemes)
    if err:
        raise PrepError(err)
    assert acl is not None
    # For a sequential create the client may name the parent with a trailing
    # '/', so the parent is everything before the last slash ('' is the root).
    parent = pending.get(path[: path.rfind("/")] or "/")  # _parent_path, inlined
    if parent is None:
        raise PrepError(ERR.NONODE)
    if parent.acl is not OPEN_ACL_UNSAFE:  # which lets anyone do anything
        _check(parent, PERM.CREATE, ctx)
    if is_sequential:
        path = path + "%010d" % parent.cversion
    _valid_path(path)
    if pending.get(path) is not None:
        raise PrepError(ERR.NODEEXISTS)
    if parent.ephemeral_owner != 0 and parent.ephemeral_owner != CONTAINER_EPHEMERAL_OWNER \
            and not is_ttl_owner(parent.ephemeral_owner):
        raise PrepError(ERR.NOCHILDRENFOREPHEMERALS)
    new_cversion = parent.cversion + 1
    if ctx.enforce_quota:
        _check_quota(path, None, req.data, 1, pending.tree, ctx)
    # The txn follows the op code and the pending record the mode, as in
    # ZooKeeper: createContainer always makes a container, and a plain create
    # with the CONTAINER flag makes a persistent node.
    if op == OP.createContainer:
        txn = R.CreateContainerTxn(path, req.data, list(acl), new_cversion)
    elif op == OP.createTTL:
        txn = R.CreateTTLTxn(path, req.data, list(acl), new_cversion, req.ttl)
    else:
        txn = R.CreateTxn(path, req.data, list(acl), is_ephemeral, new_cversion)
    if is_container:
        owner = CONTAINER_EPHEMERAL_OWNER
    elif is_ttl:
        owner = ttl_owner(req.ttl)
    else:
        owner = ctx.session_id if is_ephemeral else 0
    ttype = OP.create if op == OP.create else op
    pending.add(ChangeRecord(zxid, parent.path, True, parent.version, new_cversion, parent.aversion,
                             parent.ephemeral_owner, parent.child_count + 1, parent.acl,
                             parent.data))
    pending.add(ChangeRecord(zxid, path, True, 0, 0, 0, owner, 0, acl, req.data))
    return ttype, txn


def _delete(req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    # ZooKeeper checks only the shape of the path here (a slash, no NUL, not
    # a built-in node); a malformed but well-shaped path is just missing.
    path = req.path
    if path is None:
        raise PrepError(ERR.MARSHALLINGERROR)
    if "/" not in path or "\0" in path or path in _SPECIAL_PATHS:
        raise PrepError(ERR.BADARGUMENTS)
    parent = pending.get(_parent_path(path))
    if parent is None:
        raise PrepError(ERR.NONODE)
    _check(parent, PERM.DELETE, ctx)
    node = pending.get(path)
    if node is None:
        raise PrepError(ERR.NONODE)
    if req.version != -1 and req.version != node.version:
        raise PrepError(ERR.BADVERSION)
    if node.child_count > 0:
        raise PrepError(ERR.NOTEMPTY)
    pending.add(ChangeRecord(zxid, parent.path, True, parent.version, parent.cversion,
                             parent.aversion, parent.ephemeral_owner, parent.child_count - 1,
                             parent.acl, parent.data))
    pending.add(ChangeRecord(zxid, path, False))
    return OP.delete, R.DeleteTxn(path)


def _set_data(req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    path = _valid_path(req.path)
    if path not in pending.by_path and not ctx.enforce_quota:
        return _set_data_applied(req, path, zxid, pending, ctx)
    node = pending.get(path)
    if node is None:
        raise PrepError(ERR.NONODE)
    if node.acl is not OPEN_ACL_UNSAFE:  # which lets anyone do anything
        _check(node, PERM.WRITE, ctx)
    if ctx.enforce_quota:
        _check_quota(path, node.data, req.data, 0, pending.tree, ctx)
    if req.version != -1 and req.version != node.version:
        raise PrepError(ERR.BADVERSION)
    new_version = node.version + 1
    pending.add(ChangeRecord(zxid, path, True, new_version, node.cversion, node.aversion,
                             node.ephemeral_owner, node.child_count, node.acl, req.data))
    return OP.setData, R.SetDataTxn(path, req.data, new_version)


def _set_data_applied(req, path: str, zxid: int, pending: PendingChanges, ctx: PrepContext):
    """``_set_data`` of a node no prepared txn has changed, without quotas
    (the common case): the checks and the outcome are the same, read from
    the tree's node itself rather than from the ChangeRecord ``pending.get``
    would make of it first (an object and a copy of the data less)."""
    node = pending.tree.nodes.get(path)
    if node is None:
        raise PrepError(ERR.NONODE)
    _, _, _, _, version, cversion, aversion, owner, _ = node.stat_fields()
    if owner and pending.closing and owner in pending.closing:
        raise PrepError(ERR.NONODE)   # as pending.get: its session is closing
    acl = node.acl
    if acl is not OPEN_ACL_UNSAFE and not check_perm(acl, PERM.WRITE, ctx.auth_ids,
                                                     ctx.skip_acl):
        raise PrepError(ERR.NOAUTH)
    if req.version != -1 and req.version != version:
        raise PrepError(ERR.BADVERSION)
    pending.add(ChangeRecord(zxid, path, True, version + 1, cversion, aversion, owner,
                             node.child_count(), acl, req.data))
    return OP.setData, R.SetDataTxn(path, req.data, version + 1)


def _set_acl(req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    path = _valid_path(req.path)
    acl, err = fix_acl(req.acl, ctx.auth_ids, ctx.acl_schemes)
    if err:
        raise PrepError(err)
    assert acl is not None
    node = pending.get(path)
    if node is None:
        raise PrepError(ERR.NONODE)
    _check(node, PERM.ADMIN, ctx)
    if req.version != -1 and req.version != node.aversion:
        raise PrepError(ERR.BADVERSION)
    new_aversion = node.aversion + 1
    pending.add(ChangeRecord(zxid, path, True, node.version, node.cversion, new_aversion,
                             node.ephemeral_owner, node.child_count, acl, node.data))
    return OP.setACL, R.SetACLTxn(path, list(acl), new_aversion)


def _check_version(req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    path = _valid_path(req.path)
    node = pending.get(path)
    if node is None:
        raise PrepError(ERR.NONODE)
    _check(node, PERM.READ, ctx)
    if req.version != -1 and req.version != node.version:
        raise PrepError(ERR.BADVERSION)
    # ZooKeeper logs the version the node would have next, not the one asked.
    return OP.check, R.CheckVersionTxn(path, node.version + 1)


def _check_quota(path: str, last: bytes | None, data: bytes | None, count_diff: int,
                 tree: DataTree, ctx: PrepContext) -> None:
    """ZooKeeperServer.checkQuota: against the applied tree, not the pending
    changes (a multi's creates are each checked against the same usage)."""
    if not ctx.enforce_quota or not tree.quotas:
        return
    prefix = tree.quotas.max_prefix(path)
    if prefix is None:
        return
    limits, stats = tree.nodes.get(limits_path(prefix)), tree.nodes.get(stats_path(prefix))
    try:
        found = check_quota(prefix, limits.data if limits is not None else None,
                            stats.data if stats is not None else None,
                            len(data or b"") - len(last or b""), count_diff)
    except StatsError:
        raise PrepFailure(ERR.MARSHALLINGERROR) from None
    ctx.quota_messages.extend(found.messages)
    if found.exceeded:
        ns = top_namespace(path)
        if ns is not None:
            ctx.quota_exceeded.append(ns)
        raise PrepError(ERR.QUOTAEXCEEDED)


def _prep_one(op: int, req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    if op in (OP.create, OP.create2, OP.createContainer, OP.createTTL):
        return _create(op, req, zxid, pending, ctx)
    if op == OP.delete:
        return _delete(req, zxid, pending, ctx)
    if op == OP.setData:
        return _set_data(req, zxid, pending, ctx)
    if op == OP.setACL:
        return _set_acl(req, zxid, pending, ctx)
    if op == OP.check:
        return _check_version(req, zxid, pending, ctx)
    if op == OP.reconfig:
        return _reconfig(req, zxid, pending, ctx)
    raise PrepError(ERR.UNIMPLEMENTED)


def _reconfig(req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    """PrepRequestProcessor's reconfig: disabled, standalone, then the leader's
    checks (in progress, fromConfig, the new membership, a synced quorum of
    it), and only then WRITE on /zookeeper/config (super or skipACL). The txn
    is a SetDataTxn of the new config text with version -1."""
    if not ctx.reconfig_enabled:
        raise PrepError(ERR.RECONFIGDISABLED)
    if ctx.reconfig is None:
        raise PrepError(ERR.UNIMPLEMENTED)
    text = ctx.reconfig(req, zxid)
    node = pending.get("/zookeeper/config")
    assert node is not None, "/zookeeper/config is built in"
    _check(node, PERM.WRITE, ctx)
    data = text.encode("utf-8")
    pending.add(ChangeRecord(zxid, node.path, True, -1, node.cversion, node.aversion,
                             node.ephemeral_owner, node.child_count, node.acl, data))
    return OP.reconfig, R.SetDataTxn(node.path, data, -1)


def creates_ephemeral(op: int, req) -> bool:
    """A create, create2, or a multi holding one, of an ephemeral node: what
    makes ZooKeeper upgrade a local session (checkUpgradeSession)."""
    if op == OP.multi and isinstance(req, list):
        return any(sub in (OP.create, OP.create2) and _is_ephemeral(rec)
                   for sub, rec in req)
    return op in (OP.create, OP.create2) and _is_ephemeral(req)


def _is_ephemeral(req) -> bool:
    mode = _MODES.get(getattr(req, "flags", None))
    return mode is not None and mode.is_ephemeral


def decode_multi(body: memoryview | bytes, allowed: frozenset) -> list[tuple[int, object]]:
    """Decode a multi / multiRead body into (op, request record) pairs.
    A malformed body raises DecodeError; an op not allowed in this kind of
    multi is returned as (op, None) so the caller can answer with an error;
    a create record with a TTL mode as (op, UNBUILDABLE_CREATE)."""
    r = Reader(body)
    ops: list[tuple[int, object]] = []
    while not decode_multi_part(r, allowed, ops, limits.JUTE_MAXBUFFER):
        pass
    return ops


def decode_multi_part(r: Reader, allowed: frozenset, ops: list, count: int) -> bool:
    """Decode up to ``count`` more ops of a multi body from ``r`` into
    ``ops`` (a large multi is decoded a part at a time); True once the end
    marker is read."""
    for _ in range(count):
        h = R.MultiHeader.read(r)
        if h.done:
            return True
        if len(ops) >= limits.JUTE_MAXBUFFER:
            raise DecodeError("too many ops in multi")
        cls = R.REQUEST_RECORD.get(h.type)
        if cls is None:
            raise DecodeError(f"op {h.type} has no request record")
        rec = cls.read(r)
        if h.type in _CREATE_OPS and h.type in allowed:
            ops.append(_multi_create(h.type, rec))
        else:
            ops.append((h.type, rec if h.type in allowed else None))
    return False


_CREATE_OPS = frozenset({OP.create, OP.create2, OP.createContainer,
                         OP.createTTL})


# A plain create record with a TTL mode: ZooKeeper rebuilds it as a createTTL
# op that carries no TTL, and its prep fails on it with an internal error
# (MARSHALLINGERROR for the whole multi) -- but only if it gets that far: after
# an earlier sub-op failed, it is answered RUNTIMEINCONSISTENCY like the rest.
UNBUILDABLE_CREATE = object()


def _multi_create(op: int, rec) -> tuple[int, object]:
    """A create sub-op as ZooKeeper's MultiOperationRecord rebuilds it: the
    kind comes from the flags (unknown flags count as persistent and fail in
    prep), not from the op code. A createTTL with another mode drops its TTL."""
    mode = _MODES.get(rec.flags)
    if mode is not None and mode.is_ttl:
        return (op, rec) if op == OP.createTTL else (op, UNBUILDABLE_CREATE)
    if op == OP.createTTL:
        rec = R.CreateRequest(rec.path, rec.data, rec.acl, rec.flags)
    if mode is not None and mode.is_container:
        return OP.createContainer, rec
    return OP.create, rec


class MultiPrep:
    """A multi's ops prepared in order, a part at a time if need be (no
    other write may be prepared in between: they share ``pending``).
    ``step`` raises PrepError / PrepFailure when the whole multi fails (its
    change records already undone)."""

    def __init__(self, ops: list, zxid: int, pending: PendingChanges, ctx: PrepContext):
        self.ops, self.zxid, self.pending, self.ctx = ops, zxid, pending, ctx
        self.txns: list[R.Txn] = []
        self.failed = False

    def step(self, count: int) -> bool:
        """Prepare up to ``count`` more ops; True when all are."""
        for op, req in self.ops[len(self.txns):len(self.txns) + count]:
            if self.failed:
                self.txns.append(R.Txn(OP.error,
                                       R.ErrorTxn(ERR.RUNTIMEINCONSISTENCY).to_bytes()))
                continue
            if req is UNBUILDABLE_CREATE:
                # ZooKeeper leaves the earlier sub-ops' change records in place
                # until the error txn is applied (a request prepped meanwhile
                # sees nodes that never come); they are undone here.
                self.pending.rollback(self.zxid)
                raise PrepError(ERR.MARSHALLINGERROR)
            try:
                ttype, txn = _prep_one(op, req, self.zxid, self.pending, self.ctx)
                self.txns.append(R.Txn(ttype, txn.to_bytes()))
            except PrepError as e:
                self.failed = True
                self.pending.rollback(self.zxid)
                self.txns.append(R.Txn(OP.error, R.ErrorTxn(e.code).to_bytes()))
            except PrepFailure:
                self.pending.rollback(self.zxid)
                raise
        return len(self.txns) == len(self.ops)

    def result(self):
        return OP.multi, R.MultiTxn(self.txns)


def _multi(ops: list, zxid: int, pending: PendingChanges, ctx: PrepContext):
    m = MultiPrep(ops, zxid, pending, ctx)
    m.step(len(ops))
    return m.result()


def prepare(op: int, req, zxid: int, pending: PendingChanges, ctx: PrepContext):
    """Returns (txn type, txn record). Never raises for a client's mistake."""
    try:
        if op == OP.multi:
            if any(sub is None for _, sub in req):
                # A read (or setACL) inside a multi: ZooKeeper fails the
                # whole request with
                # MARSHALLINGERROR and logs it as an error txn.
                raise PrepError(ERR.MARSHALLINGERROR)
            return _multi(req, zxid, pending, ctx)
        return _prep_one(op, req, zxid, pending, ctx)
    except (PrepError, PrepFailure) as e:
        return OP.error, R.ErrorTxn(e.code)
