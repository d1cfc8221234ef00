"""The data tree: znodes, their stats, children and ephemerals.

State: ``nodes`` maps every absolute path to a ``DataNode`` ('/' included);
each node with children keeps their full paths in a dict (insertion order, so
iteration is deterministic; the str objects are the ``nodes`` keys, so a
child costs one dict entry); ``ephemerals`` maps a session id to the paths it
owns; ``containers`` and ``ttls`` list the nodes the reaper looks at.

Memory: a million znodes must fit comfortably, so a node is compact (issue
19): one bytes record holds its flag byte, its StatPersisted (only czxid,
ctime and ephemeralOwner while the node is unchanged since its creation, the
rest following from them) and its data; its ACL is a tuple shared by all
nodes with that ACL; a leaf has no child container. With 100-byte values
that is about 300 bytes per znode after a snapshot load, where a node with
eleven int attributes and a dict of child names took about 650.

Input: ``apply(header, txn)`` is the only mutator. The txn is the same record
that is logged and, in an ensemble, proposed; applying it twice (log replay
over a fuzzy snapshot) is tolerated: NODEEXISTS / NONODE come back as the
result, never as an exception. Reads are plain lookups.

Output: ``apply`` returns an ``ApplyResult`` with the error code, the created
path and the node's stat where the reply needs them, and the watch triggers
(event type, path, ACL) in the order ZooKeeper fires them.

Invariants: every node but '/' has its parent in ``nodes`` and is listed in
that parent's children; an ephemeral node is listed under its owner in
``ephemerals``; ``last_processed_zxid`` never decreases.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..jute.constants import CONTAINER_EPHEMERAL_OWNER, ERR, EVENT, OP
from ..jute.codec import decode
from ..jute import records as R
from ..limits import TREE_SHARED_ACLS_MAX
from .acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from .paths import basename, parent_of
from .quota import (QUOTA_ROOT, QuotaIndex, limit_leaf_quota_path, quota_stats_data,
                    stats_path, stats_text)

__all__ = ["DataNode", "ChildNames", "pack_record", "DataTree", "ApplyResult", "ttl_owner", "is_ttl_owner", "ttl_of", "replay_txn", "multi_failed",
           "encode_child_names", "child_name_at"]

_TTL_TOP = 0xFF << 56
_STAT = struct.Struct(">qqqqiiiqiiq")  # Stat in wire order (zookeeper.jute)

# A node's record: one bytes object holding a flag byte, its StatPersisted and
# its data. A node that was never changed after its creation (most leaves)
# keeps only czxid, ctime and ephemeralOwner: the other fields follow from
# them (mzxid = pzxid = czxid, mtime = ctime, all versions 0).
_FULL_BIT = 1  # the record holds all nine StatPersisted fields
_NODATA_BIT = 2  # data is null (-1 in jute), not b""
_FRESH = struct.Struct(">Bqqq")  # flags, czxid, ctime, ephemeralOwner
_FULL = struct.Struct(">Bqqqqiiiqq")  # flags, StatPersisted in its jute order
_FRESH_SIZE = _FRESH.size  # 25
_FULL_SIZE = _FULL.size  # 61
_INT = struct.Struct(">i")
_SLASHES = operator.methodcaller("count", "/")  # a path's depth, for sort keys
_ALL_PERMS = 31  # READ | WRITE | CREATE | DELETE | ADMIN
_LONG = struct.Struct(">q")
# offsets in a full record (flag byte, then StatPersisted)
_CVERSION_AT = 37
_AVERSION_AT = 41
_PZXID_AT = 53
_INT_MIN = 0x80000000
_INT_MASK = 0xFFFFFFFF
_NO_KIDS: dict[str, None] = {}
_KIDS_OF = operator.attrgetter("_kids")  # a node's child paths, None for a leaf


def child_name_at(paths: Iterable[str]) -> int:
    """Where a child's name starts in its path (all children share a parent)."""
    for p in paths:
        return p.rfind("/") + 1
    return 0


def encode_child_names(paths: Iterable[str], cut: int) -> bytes:
    """The names (each path from ``cut`` on) as jute ustrings, one after
    another: a getChildren list without its count. Names of one length in
    ASCII (the common case: sequential or generated names) are joined in
    one step, without a Python step per child."""
    names = [p[cut:] for p in paths]
    lengths = set(map(len, names))
    if len(lengths) == 1:
        sep = _INT.pack(lengths.pop()).decode("latin-1")
        text = sep + sep.join(names)
        if text.isascii():
            return text.encode("ascii")
    return b"".join(_INT.pack(len(b)) + b for b in (n.encode("utf-8") for n in names))


def multi_failed(txn: R.MultiTxn) -> bool:
    """A multi logged as failed: one of its sub-txns is an error."""
    return any(sub.type == OP.error for sub in txn.txns)


def ttl_owner(ttl_ms: int) -> int:
    """ephemeralOwner of a TTL node: top byte 0xFF, ttl in the low 40 bits (signed long)."""
    return (_TTL_TOP | ttl_ms) - (1 << 64)


def is_ttl_owner(owner: int) -> bool:
    return owner < 0 and owner != CONTAINER_EPHEMERAL_OWNER and (owner + (1 << 64)) >> 56 == 0xFF


def ttl_of(owner: int) -> int:
    return (owner + (1 << 64)) & ((1 << 40) - 1)


def pack_record(czxid: int, mzxid: int, ctime: int, mtime: int, version: int, cversion: int,
                aversion: int, owner: int, pzxid: int, data: bytes | memoryview | None) -> bytes:
    """A node's record (see DataNode) from its StatPersisted fields and data."""
    flags = _NODATA_BIT if data is None else 0
    if mzxid == czxid and pzxid == czxid and mtime == ctime and not (version or cversion
                                                                    or aversion):
        head = _FRESH.pack(flags, czxid, ctime, owner)
    else:
        head = _FULL.pack(flags | _FULL_BIT, czxid, mzxid, ctime, mtime, version, cversion,
                          aversion, owner, pzxid)
    return head + data if data else head


class ChildNames:
    """The names of a node's children (a read-only view; the node keeps
    their full paths, which are the tree's own keys, so no name is stored)."""

    __slots__ = ("_kids",)

    def __init__(self, kids: dict[str, None]) -> None:
        self._kids = kids

    def __len__(self) -> int:
        return len(self._kids)

    def __bool__(self) -> bool:
        return bool(self._kids)

    def __iter__(self) -> Iterator[str]:
        for p in self._kids:
            yield p[p.rfind("/") + 1:]

    def __contains__(self, name: object) -> bool:
        for p in self._kids:
            return isinstance(name, str) and p[:p.rfind("/") + 1] + name in self._kids
        return False


class DataNode:
    """One znode, compact: about 64 bytes of object plus its record.

    ``_rec`` is a single bytes object: a flag byte, the StatPersisted fields
    (all nine, or only czxid, ctime and ephemeralOwner while the rest still
    follow from them) and the data. ``acl`` is a tuple of ACL records shared
    by every node with the same ACL (the snapshot's ACL cache). ``_kids``
    holds the children's full paths — the same str objects the tree uses as
    keys, so a child costs one dict entry and no name — and is None for a
    leaf. ``children_wire`` caches the encoded child list for getChildren.

    The stat fields read and write as attributes (properties that unpack or
    repack the record); the tree's own mutators use the bulk setters.
    """

    __slots__ = ("_rec", "acl", "_kids", "children_wire")

    def __init__(self, data: bytes | None, acl: tuple, czxid: int = 0, ctime: int = 0,
                 ephemeral_owner: int = 0, record: bytes | None = None):
        if record is None:
            flags = _NODATA_BIT if data is None else 0
            record = _FRESH.pack(flags, czxid, ctime, ephemeral_owner)
            if data:
                record += data
        self._rec: bytes = record
        self.acl = acl
        self._kids: dict[str, None] | None = None
        # the encoded child list for getChildren, built on demand and dropped
        # whenever a child is added or removed (see add_child / remove_child)
        self.children_wire: bytes | None = None

    # ---- children --------------------------------------------------------

    @property
    def children(self) -> ChildNames:
        kids = self._kids
        return ChildNames(kids if kids is not None else _NO_KIDS)

    def child_paths(self) -> Iterable[str]:
        kids = self._kids
        return kids if kids is not None else _NO_KIDS

    def child_count(self) -> int:
        kids = self._kids
        return len(kids) if kids is not None else 0

    def encoded_children(self) -> bytes:
        """The child list as getChildren sends it (jute vector<ustring>),
        cached until a child is added or removed. Names of one length in
        ASCII (the common case: sequential or generated names) are joined
        in one step, so a node with a million children is encoded without a
        Python step per child."""
        wire = self.children_wire
        if wire is not None:
            return wire
        kids = self._kids
        if not kids:
            wire = b"\x00\x00\x00\x00"
        else:
            wire = _INT.pack(len(kids)) + encode_child_names(kids, child_name_at(kids))
        self.children_wire = wire
        return wire

    def children_signature(self) -> tuple[int, int, int]:
        """(children, cversion, pzxid): changes whenever a txn adds or
        removes a child (a create raises cversion, a delete sets pzxid)."""
        return self.child_count(), self.child_version(), self.child_zxid()

    def add_child(self, path: str) -> None:
        """List a child by its full path (the tree's key for it)."""
        kids = self._kids
        if kids is None:
            self._kids = {path: None}
        else:
            kids[path] = None
        self.children_wire = None

    def kids_for_load(self) -> dict[str, None]:
        """The container a snapshot load lists children in (made if this
        node has none yet; a fresh node has no cached child list to drop)."""
        kids = self._kids
        if kids is None:
            kids = self._kids = {}
        return kids

    def remove_child(self, path: str) -> None:
        kids = self._kids
        if kids is not None:
            kids.pop(path, None)
            if not kids:
                self._kids = None
        self.children_wire = None

    # ---- the record ----------------------------------------------------------

    def stat_fields(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """StatPersisted: czxid, mzxid, ctime, mtime, version, cversion,
        aversion, ephemeralOwner, pzxid."""
        rec = self._rec
        if rec[0] & _FULL_BIT:
            (_, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
             pzxid) = _FULL.unpack_from(rec)
            return czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid
        _, czxid, ctime, owner = _FRESH.unpack_from(rec)
        return czxid, czxid, ctime, ctime, 0, 0, 0, owner, czxid

    def persisted_bytes(self) -> bytes:
        """StatPersisted as jute writes it (60 bytes), for the snapshot."""
        rec = self._rec
        if rec[0] & _FULL_BIT:
            return rec[1:_FULL_SIZE]
        _, czxid, ctime, owner = _FRESH.unpack_from(rec)
        return _FULL.pack(0, czxid, czxid, ctime, ctime, 0, 0, 0, owner, czxid)[1:]

    @property
    def data(self) -> bytes | None:
        rec = self._rec
        flags = rec[0]
        if flags & _NODATA_BIT:
            return None
        return rec[_FULL_SIZE:] if flags & _FULL_BIT else rec[_FRESH_SIZE:]

    @data.setter
    def data(self, value: bytes | None) -> None:
        self._rec = pack_record(*self.stat_fields(), value)

    def data_length(self) -> int:
        rec = self._rec
        return len(rec) - (_FULL_SIZE if rec[0] & _FULL_BIT else _FRESH_SIZE)

    def _set(self, i: int, value: int) -> None:
        f = list(self.stat_fields())
        f[i] = value
        self._rec = pack_record(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], self.data)

    @property
    def czxid(self) -> int:
        return self.stat_fields()[0]

    @czxid.setter
    def czxid(self, value: int) -> None:
        self._set(0, value)

    @property
    def mzxid(self) -> int:
        return self.stat_fields()[1]

    @mzxid.setter
    def mzxid(self, value: int) -> None:
        self._set(1, value)

    @property
    def ctime(self) -> int:
        return self.stat_fields()[2]

    @ctime.setter
    def ctime(self, value: int) -> None:
        self._set(2, value)

    @property
    def mtime(self) -> int:
        return self.stat_fields()[3]

    @mtime.setter
    def mtime(self, value: int) -> None:
        self._set(3, value)

    @property
    def version(self) -> int:
        return self.stat_fields()[4]

    @version.setter
    def version(self, value: int) -> None:
        self._set(4, value)

    @property
    def cversion(self) -> int:
        return self.stat_fields()[5]

    @cversion.setter
    def cversion(self, value: int) -> None:
        self._set(5, value)

    @property
    def aversion(self) -> int:
        return self.stat_fields()[6]

    @aversion.setter
    def aversion(self, value: int) -> None:
        self._set(6, value)

    @property
    def ephemeral_owner(self) -> int:
        rec = self._rec
        return _FULL.unpack_from(rec)[8] if rec[0] & _FULL_BIT else _FRESH.unpack_from(rec)[3]

    @ephemeral_owner.setter
    def ephemeral_owner(self, value: int) -> None:
        self._set(7, value)

    @property
    def pzxid(self) -> int:
        return self.stat_fields()[8]

    @pzxid.setter
    def pzxid(self, value: int) -> None:
        self._set(8, value)

    def set_data(self, data: bytes | None, version: int, mzxid: int, mtime: int) -> None:
        """setData's change in one repack."""
        czxid, _, ctime, _, _, cversion, aversion, owner, pzxid = self.stat_fields()
        self._rec = pack_record(czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
                                pzxid, data)

    def child_version(self) -> int:
        """cversion, read without unpacking the other fields (create's hot path)."""
        rec = self._rec
        return _INT.unpack_from(rec, _CVERSION_AT)[0] if rec[0] & _FULL_BIT else 0

    def child_zxid(self) -> int:
        """pzxid, read without unpacking the other fields (delete's hot path)."""
        rec = self._rec
        return _LONG.unpack_from(rec, _PZXID_AT)[0] if rec[0] & _FULL_BIT \
            else _LONG.unpack_from(rec, 1)[0]

    def set_child_stat(self, cversion: int, pzxid: int) -> None:
        """A child created or deleted: cversion and pzxid in one repack (a
        full record is spliced: a parent's record is full after its first child)."""
        rec = self._rec
        if rec[0] & _FULL_BIT:
            self._rec = b"".join((rec[:_CVERSION_AT], _INT.pack(cversion),
                                  rec[_AVERSION_AT:_PZXID_AT], _LONG.pack(pzxid),
                                  rec[_FULL_SIZE:]))
            return
        czxid, mzxid, ctime, mtime, version, _, aversion, owner, _ = self.stat_fields()
        self._rec = pack_record(czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
                                pzxid, self.data)

    # ---- what clients see -------------------------------------------------------

    def _client_fields(self) -> tuple[int, int, int, int, int, int, int, int, int, int, int]:
        """The Stat a client sees, as a tuple in wire order. Two translations
        happen here, as in ZooKeeper: cversion is stored as the count of
        child creations (the sequence counter) but reported as creations +
        deletions, i.e. 2 * stored - numChildren (Java int arithmetic, so it
        wraps at 32 bits); and the container / TTL markers in ephemeralOwner
        are reported as 0."""
        rec = self._rec
        kids = self._kids
        n = len(kids) if kids is not None else 0
        if rec[0] & _FULL_BIT:
            (_, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
             pzxid) = _FULL.unpack_from(rec)
            size = len(rec) - _FULL_SIZE
            cversion = ((cversion * 2 - n + _INT_MIN) & _INT_MASK) - _INT_MIN
        else:
            _, czxid, ctime, owner = _FRESH.unpack_from(rec)
            mzxid = pzxid = czxid
            mtime = ctime
            version = aversion = 0
            cversion = ((_INT_MIN - n) & _INT_MASK) - _INT_MIN
            size = len(rec) - _FRESH_SIZE
        if owner < 0 and (owner == CONTAINER_EPHEMERAL_OWNER or is_ttl_owner(owner)):
            owner = 0
        return (czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, size, n, pzxid)

    def stat(self) -> R.Stat:
        return R.Stat(*self._client_fields())

    def stat_bytes(self) -> bytes:
        """The encoded Stat (68 bytes) without building a record: the read path.
        A leaf never changed since its creation (most reads) takes a shortcut."""
        rec = self._rec
        if self._kids is None and not rec[0] & _FULL_BIT:
            _, czxid, ctime, owner = _FRESH.unpack_from(rec)
            if owner < 0 and (owner == CONTAINER_EPHEMERAL_OWNER or is_ttl_owner(owner)):
                owner = 0
            return _STAT.pack(czxid, czxid, ctime, ctime, 0, 0, 0, owner, len(rec) - _FRESH_SIZE,
                              0, czxid)
        if rec[0] & _FULL_BIT:  # the same as _client_fields, without its tuple
            kids = self._kids
            n = len(kids) if kids is not None else 0
            (_, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
             pzxid) = _FULL.unpack_from(rec)
            if owner < 0 and (owner == CONTAINER_EPHEMERAL_OWNER or is_ttl_owner(owner)):
                owner = 0
            return _STAT.pack(czxid, mzxid, ctime, mtime, version,
                              ((cversion * 2 - n + _INT_MIN) & _INT_MASK) - _INT_MIN, aversion,
                              owner, len(rec) - _FULL_SIZE, n, pzxid)
        return _STAT.pack(*self._client_fields())

    def stat_persisted(self) -> R.StatPersisted:
        return R.StatPersisted(*self.stat_fields())

    def set_stat_persisted(self, s: R.StatPersisted) -> None:
        self._rec = pack_record(s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion,
                                s.aversion, s.ephemeralOwner, s.pzxid, self.data)


@dataclass
class ApplyResult:
    err: int = ERR.OK
    path: str | None = None
    stat: R.Stat | None = None
    # (event type, path, the ACL that decides delivery: the node's, or the
    # parent's for NodeChildrenChanged, as it was when the op applied)
    triggers: list[tuple[int, str, tuple]] = field(default_factory=list)
    multi: list["ApplyResult"] | None = None
    # the node written; its Stat is taken only when a reply needs it (see
    # ``stat_now``), except inside a multi, where later ops may change it
    node: "DataNode | None" = None

    def stat_now(self) -> R.Stat | None:
        if self.stat is None and self.node is not None:
            self.stat = self.node.stat()
        return self.stat


ROOT = "/"
ZOOKEEPER = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"


class DataTree:
    def __init__(self) -> None:
        self.nodes: dict[str, DataNode] = {}
        self.ephemerals: dict[int, dict[str, None]] = {}
        self.containers: dict[str, None] = {}
        self.ttls: dict[str, None] = {}
        self.quotas = QuotaIndex()
        self.last_processed_zxid = 0
        self._acls: dict[tuple, tuple] = {OPEN_ACL_UNSAFE: OPEN_ACL_UNSAFE,
                                          READ_ACL_UNSAFE: READ_ACL_UNSAFE}
        self._add_builtins()

    def _add_builtins(self) -> None:
        # The built-in nodes carry ACL key -1 in snapshots (open ACL), except
        # /zookeeper/config which ZooKeeper gives world:READ with aversion -1.
        for path in (ROOT, ZOOKEEPER, QUOTA, CONFIG):
            self.nodes[path] = DataNode(b"", OPEN_ACL_UNSAFE)
            if path != ROOT:
                self.nodes[parent_of(path)].add_child(path)
        cfg = self.nodes[CONFIG]
        cfg.acl = READ_ACL_UNSAFE
        cfg.aversion = -1

    def shared_acl(self, acl) -> tuple:
        """The node ACL tuple for a txn's ACL list: one tuple shared by every
        node with an equal ACL, as a snapshot load shares them (a tuple and
        its decoded records per node would cost about 200 bytes each, and
        the snapshot writer hashes a node's ACL only when it differs from
        the last node's). At most limits.TREE_SHARED_ACLS_MAX distinct ACLs
        are kept for sharing; past that, a new one is the node's own."""
        if acl and len(acl) == 1:  # most nodes: world:anyone, all perms, without hashing
            a = acl[0]
            if a.perms == _ALL_PERMS and a.id.id == "anyone" and a.id.scheme == "world":
                return OPEN_ACL_UNSAFE
        t = tuple(acl or ())
        shared = self._acls.get(t)
        if shared is not None:
            return shared
        if len(self._acls) < TREE_SHARED_ACLS_MAX:
            self._acls[t] = t
        return t

    # ---- reads -------------------------------------------------------------

    def get(self, path: str) -> DataNode | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        return sum(len(p) + n.data_length() for p, n in self.nodes.items())

    def ephemeral_count(self) -> int:
        return sum(len(v) for v in self.ephemerals.values())

    def count_descendants(self, path: str) -> int:
        """getAllChildrenNumber: the nodes below ``path`` (in ZooKeeper's
        words, the keys that start with ``path + "/"``)."""
        if path == ROOT:
            return len(self.nodes) - 1
        pending = self.descendants_start(path)
        total = 0
        while pending:
            total += self.count_part(pending, len(self.nodes))
        return total

    def descendants_start(self, path: str) -> list:
        """The work list of a count of ``path``'s descendants (``count_part``)."""
        kids = self.nodes[path]._kids
        return [kids] if kids else []

    def count_part(self, pending: list, budget: int) -> int:
        """A part of a count of descendants: takes about ``budget`` paths off
        ``pending`` (nodes' child dicts, or (list, start) for the rest of a
        long one), counts them and adds the child dicts of those that have
        children (the dicts themselves, not copies: a caller that spreads the
        parts over time keeps the nodes below unchanged meanwhile). Returns
        how many it counted; the count is done when ``pending`` is empty.
        Each run of paths is looked at in C (map, filter), not a Python step
        per node: about 0.4 us a node in a tree of a million (cache misses)."""
        get = self.nodes.__getitem__
        counted = 0
        while pending and counted < budget:
            item = pending.pop()
            room = budget - counted
            if type(item) is tuple:
                seq, start = item
                paths = seq[start:start + room]
                if start + room < len(seq):
                    pending.append((seq, start + room))
            elif len(item) > room:
                seq = list(item)
                paths = seq[:room]
                pending.append((seq, room))
            else:
                paths = item
            counted += len(paths)
            pending.extend(filter(None, map(_KIDS_OF, map(get, paths))))
        return counted

    # ---- the mutator ---------------------------------------------------------

    def apply(self, hdr: R.TxnHeader, txn: R.Record | None) -> ApplyResult:
        """Apply one txn (possibly a multi) and advance last_processed_zxid."""
        t = hdr.type
        if t == OP.multi:
            res = self._apply_multi(hdr, txn)
        else:
            res = self._apply_one(t, hdr, txn)
        if hdr.zxid > self.last_processed_zxid:
            self.last_processed_zxid = hdr.zxid
        return res

    def _apply_multi(self, hdr: R.TxnHeader, txn: R.MultiTxn) -> ApplyResult:
        out = ApplyResult(multi=[])
        self.apply_multi_part(hdr, txn, out, 0, len(txn.txns))
        return out

    def apply_multi_part(self, hdr: R.TxnHeader, txn: R.MultiTxn, out: ApplyResult,
                         start: int, stop: int, touched: dict | None = None,
                         failed: bool | None = None) -> None:
        """Apply sub-txns ``start``..``stop`` of a multi into ``out`` (a
        server cuts a large multi into such parts; it advances
        last_processed_zxid itself once the last part is in). ``touched``
        collects the paths whose nodes or child lists changed. A failed multi
        is logged with the real txns of the ops before the failure; applying
        it changes nothing, and those ops report OK. ``failed``: whether
        one sub-txn is an error, if the caller knows (a scan per part would
        make a large multi quadratic)."""
        subs = out.multi
        if failed is None:
            failed = multi_failed(txn)
        for sub in txn.txns[start:stop]:
            if failed and sub.type != OP.error:
                subs.append(ApplyResult(err=ERR.OK))
                continue
            rec_cls = R.TXN_RECORD.get(sub.type)
            rec = decode(rec_cls, sub.data or b"") if rec_cls is not None else None
            r = self._apply_one(sub.type, hdr, rec)
            r.stat_now()  # a later op of the same multi may change the node
            subs.append(r)
            out.triggers.extend(r.triggers)
            if touched is not None and rec is not None and getattr(rec, "path", None):
                touched[rec.path] = None
                touched[parent_of(rec.path)] = None

    def _apply_one(self, t: int, hdr: R.TxnHeader, txn) -> ApplyResult:
        zxid, time = hdr.zxid, hdr.time
        if t in (OP.create, OP.create2):
            owner = hdr.clientId if txn.ephemeral else 0
            return self.create_node(txn.path, txn.data, self.shared_acl(txn.acl), owner,
                                    txn.parentCVersion, zxid, time)
        if t == OP.createContainer:
            return self.create_node(txn.path, txn.data, self.shared_acl(txn.acl),
                                    CONTAINER_EPHEMERAL_OWNER, txn.parentCVersion, zxid, time)
        if t == OP.createTTL:
            return self.create_node(txn.path, txn.data, self.shared_acl(txn.acl), ttl_owner(txn.ttl),
                                    txn.parentCVersion, zxid, time)
        if t in (OP.delete, OP.deleteContainer):
            return self.delete_node(txn.path, zxid)
        if t in (OP.setData, OP.reconfig):
            return self._set_data(txn, zxid, time)
        if t == OP.setACL:
            return self._set_acl(txn)
        if t == OP.closeSession:
            return self.kill_session(hdr.clientId, zxid,
                                     txn.paths2Delete if txn is not None else None)
        if t == OP.error:
            return ApplyResult(err=txn.err)
        # createSession, check: nothing in the tree changes.
        return ApplyResult()

    def create_node(self, path: str, data: bytes | None, acl: tuple, owner: int,
                    parent_cversion: int, zxid: int, time: int) -> ApplyResult:
        parent_path = parent_of(path)
        node = self.insert_node(path, parent_path, data, acl, owner, parent_cversion, zxid, time)
        if isinstance(node, int):
            return ApplyResult(err=node)
        return ApplyResult(path=path, node=node,
                           triggers=[(EVENT.NodeCreated, path, acl),
                                     (EVENT.NodeChildrenChanged, parent_path,
                                      self.nodes[parent_path].acl)])

    def insert_node(self, path: str, parent_path: str, data: bytes | None, acl: tuple,
                    owner: int, parent_cversion: int, zxid: int, time: int) -> "DataNode | int":
        """create's change to the tree (``parent_path`` is ``parent_of(path)``):
        the new node, or NONODE / NODEEXISTS. Log replay calls it directly."""
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None:
            return ERR.NONODE
        if path in nodes:
            return ERR.NODEEXISTS
        cversion = parent.child_version()
        if parent_cversion == -1:
            parent_cversion = cversion + 1
        # Replaying over a fuzzy snapshot may see an older cversion; keep the max.
        if parent_cversion > cversion:
            parent.set_child_stat(parent_cversion, zxid)
        node = DataNode(data, acl, zxid, time, owner)
        parent.add_child(path)
        nodes[path] = node
        if owner != 0:
            self.index_owner(path, owner)
        if self.quotas.top or parent_path.startswith(QUOTA):
            self._quota_created(path, parent_path, basename(path), data)
        return node

    def delete_node(self, path: str, zxid: int) -> ApplyResult:
        out = ApplyResult()
        if not self.remove_node(path, zxid, out.triggers):
            out.err = ERR.NONODE
        return out

    def remove_node(self, path: str, zxid: int, triggers: list) -> bool:
        """delete's change to the tree, its watch triggers appended to
        ``triggers``; False when there is no such node (NONODE)."""
        node = self.nodes.get(path)
        if node is None or path == ROOT:
            return False
        self._delete(path, node, zxid, triggers)
        return True

    def _delete(self, path: str, node: DataNode, zxid: int, triggers: list) -> None:
        """Remove ``node`` (at ``path``, not '/') and append its two watch
        triggers (NodeDeleted, then the parent's NodeChildrenChanged)."""
        parent_path = parent_of(path)
        parent = self.nodes[parent_path]
        del self.nodes[path]
        parent.remove_child(path)
        if zxid > parent.child_zxid():
            parent.set_child_stat(parent.child_version(), zxid)
        owner = node.ephemeral_owner
        if owner == CONTAINER_EPHEMERAL_OWNER:
            self.containers.pop(path, None)
        elif is_ttl_owner(owner):
            self.ttls.pop(path, None)
        elif owner != 0:
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.pop(path, None)
                if not paths:
                    del self.ephemerals[owner]
        if self.quotas.top:
            self.quotas.node_removed(parent_path, basename(path))
            self._quota_update(path, -1, -node.data_length())
        triggers.append((EVENT.NodeDeleted, path, node.acl))
        triggers.append((EVENT.NodeChildrenChanged, parent_path, parent.acl))

    def _set_data(self, txn: R.SetDataTxn, zxid: int, time: int) -> ApplyResult:
        node = self.write_data(txn.path, txn.data, txn.version, zxid, time)
        if node is None:
            return ApplyResult(err=ERR.NONODE)
        return ApplyResult(node=node, triggers=[(EVENT.NodeDataChanged, txn.path, node.acl)])

    def write_data(self, path: str, data: bytes | None, version: int, zxid: int,
                   time: int) -> "DataNode | None":
        """setData's change to the tree: the node written, or None (NONODE)."""
        node = self.nodes.get(path)
        if node is None:
            return None
        if self.quotas.top:
            self._quota_update(path, 0, len(data or b"") - node.data_length())
        node.set_data(data, version, zxid, time)
        return node

    def _set_acl(self, txn: R.SetACLTxn) -> ApplyResult:
        node = self.nodes.get(txn.path)
        if node is None:
            return ApplyResult(err=ERR.NONODE)
        node.acl = self.shared_acl(txn.acl)
        node.aversion = txn.version
        return ApplyResult(node=node)

    # ---- quota usage (see quota.py) -------------------------------------------

    def _quota_created(self, path: str, parent_path: str, name: str, data) -> None:
        recount = self.quotas.node_added(parent_path, name)
        if recount is not None:
            self._recount_quota(recount)
        self._quota_update(path, 1, len(data or b""))

    def _recount_quota(self, quota_path: str) -> None:
        """updateQuotaForPath: the stats node gets the subtree's usage (0 and
        0 when the quota'd node does not exist), whatever it held."""
        stat = self.nodes.get(stats_path(quota_path))
        if stat is None:
            return
        top = self.nodes.get(quota_path or ROOT)
        count, size = self._usage(quota_path or ROOT, top) if top is not None else (0, 0)
        stat.data = stats_text({"count": count, "bytes": size})

    def setup_quota(self) -> None:
        """setupQuota, after a snapshot load: every limits node that is a leaf
        of the quota tree makes its path quota'd again and recounts it."""
        self.quotas = QuotaIndex()
        if QUOTA_ROOT not in self.nodes:
            return
        stack = [QUOTA_ROOT]
        while stack:
            path = stack.pop()
            node = self.nodes[path]
            kids = node._kids
            if kids is not None:
                stack.extend(reversed(kids))
                continue
            quota_path = limit_leaf_quota_path(path)
            if quota_path is not None:
                self._recount_quota(quota_path)
                self.quotas.add(quota_path)

    def _usage(self, path: str, node: DataNode) -> tuple[int, int]:
        """(nodes, data bytes) of a subtree, its top included."""
        count, size = 0, 0
        nodes = self.nodes
        stack = [node]
        while stack:
            n = stack.pop()
            count += 1
            size += n.data_length()
            kids = n._kids
            if kids is not None:
                stack.extend(nodes[cp] for cp in kids)
        return count, size

    def _quota_update(self, path: str, count_diff: int, bytes_diff: int) -> None:
        prefix = self.quotas.max_prefix(path)
        stat = self.nodes.get(stats_path(prefix)) if prefix is not None else None
        if stat is not None:
            data = quota_stats_data(stat.data, count_diff, bytes_diff)
            if data is not None:
                stat.data = data

    def kill_session(self, session_id: int, zxid: int, paths: list[str] | None) -> ApplyResult:
        """Delete a closed or expired session's ephemerals, deepest first."""
        out = ApplyResult()
        self.kill_session_part(session_id, zxid, self.kill_order(session_id, paths), out.triggers)
        self.ephemerals.pop(session_id, None)
        return out

    def kill_order(self, session_id: int, paths: list[str] | None) -> list[str]:
        """The paths a closeSession deletes, in the order it deletes them:
        the session's ephemerals in the tree and the txn's ``paths``
        (paths2Delete), deepest first, then by path. Two C-level sorts (the
        second is stable), so a session with 100k ephemerals costs no
        Python call per path (but some 30 ms in one step: a server applying
        a large close takes the same order in parts, tree/kill_order.py)."""
        owned = self.ephemerals.get(session_id, ())
        if paths:
            owned = dict.fromkeys(owned)
            owned.update(dict.fromkeys(paths))
        order = sorted(owned)
        order.sort(key=_SLASHES, reverse=True)
        return order

    def kill_session_part(self, session_id: int, zxid: int, paths: Iterable[str],
                          triggers: list) -> None:
        """Delete those of ``paths`` that are ``session_id``'s ephemerals
        (a server cuts a large closeSession into such parts; the caller
        drops the session's entry in ``ephemerals`` once all are in)."""
        nodes = self.nodes
        delete = self._delete
        for p in paths:
            node = nodes.get(p)
            if node is not None and node.ephemeral_owner == session_id:
                delete(p, node, zxid, triggers)

    # ---- snapshot support ------------------------------------------------------

    def walk(self):
        """Pre-order (path, node) walk, children in insertion order."""
        nodes = self.nodes
        stack = [ROOT]
        while stack:
            path = stack.pop()
            node = nodes[path]
            yield path, node
            kids = node._kids
            if kids is not None:
                stack.extend(reversed(kids))

    def add_restored_node(self, path: str, node: DataNode) -> None:
        """Insert a node read from a snapshot (parents come first in the walk)."""
        self.nodes[path] = node
        if path != ROOT:
            parent_path = parent_of(path)
            parent = self.nodes.get(parent_path)
            assert parent is not None, f"snapshot lists {path} before its parent"
            parent.add_child(path)
        owner = node.ephemeral_owner
        if owner != 0:
            self.index_owner(path, owner)

    def index_owner(self, path: str, owner: int) -> None:
        """List a restored node with a non-zero ephemeralOwner where the
        reapers and session expiry find it."""
        if owner == CONTAINER_EPHEMERAL_OWNER:
            self.containers[path] = None
        elif is_ttl_owner(owner):
            self.ttls[path] = None
        else:
            self.ephemerals.setdefault(owner, {})[path] = None

    def clear(self) -> None:
        """Empty the tree before a snapshot load (built-ins are in the snapshot)."""
        self.nodes = {}
        self.ephemerals = {}
        self.containers = {}
        self.ttls = {}
        self.quotas = QuotaIndex()
        self.last_processed_zxid = 0


def replay_txn(tree: DataTree, sessions: dict[int, int], hdr, txn) -> None:
    """Apply one logged txn to a tree and its session table (id -> timeout),
    as a restart replaying the log does."""
    if hdr.type == OP.createSession:
        sessions[hdr.clientId] = txn.timeOut
    elif hdr.type == OP.closeSession:
        sessions.pop(hdr.clientId, None)
    tree.apply(hdr, txn)
