"""ZooKeeper's snapshot format (FileSnap), pure: a tree in, bytes out, and back.

Layout of ``snapshot.<hex zxid>`` (all jute, big-endian)::

    FileHeader        magic ZKSN, version 2, dbid -1
    sessions          int count, then (id:long, timeout:int)*
    ACL cache         int count, then (key:long, vector<ACL>)*; keys start at 1
    nodes             pre-order (path:ustring, data:buffer, aclKey:long, StatPersisted)*
                      root's path is ""; key -1 means OPEN_ACL_UNSAFE (built-ins)
    "/"               ustring, ends the node list
    seal              long Adler32 of every byte so far, then ustring "/"
    ZxidDigest        zxid:long, digestVersion:int (2), digest:long   (3.6+)
    seal              Adler32 of every byte so far (first seal included), "/"

``serialize_snapshot`` yields the file in chunks (the forked writer streams
them to disk). Our snapshots are exact images at ``zxid`` (taken from a
forked copy), so the digest is the tree's digest at that zxid.

``deserialize_snapshot`` fills an empty ``DataTree`` and returns the sessions
and the stored digest; it checks every length, the node order (parents
first) and both seals, raising ``SnapshotError`` on any problem so the caller
can fall back to an older snapshot. ``has_valid_tail`` is ZooKeeper's cheap
validity test (last five bytes are int 1 and '/').

``tree_digest`` is ZooKeeper's DigestCalculator v2: the wrapping 64-bit sum,
over nodes not under ``/zookeeper/``, of CRC32(path ‖ data ‖ czxid, mzxid,
pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner) with the
root's path as "".
"""

from __future__ import annotations

import operator
import struct
import zlib
from dataclasses import dataclass
from itertools import compress, count, islice, repeat
from typing import Iterator

from ..jute import records as R
from ..jute.codec import DecodeError, Reader, Writer
from ..limits import SNAPSHOT_ACL_LISTS_MAX, SNAPSHOT_SESSIONS_MAX
from ..tree.acl import OPEN_ACL_UNSAFE
from ..tree.datatree import (_FRESH, _FRESH_SIZE, _FULL, _FULL_BIT, _FULL_SIZE, _NODATA_BIT,
                             DataNode, DataTree)

__all__ = ["SNAP_MAGIC", "SNAP_VERSION", "DIGEST_VERSION", "SnapshotError", "SnapshotContents",
           "serialize_snapshot", "deserialize_snapshot", "has_valid_tail", "tree_digest",
           "node_digest", "record_digest", "signed_digest", "DigestSince"]

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
SNAP_VERSION = 2
SNAP_DBID = -1
DIGEST_VERSION = 2
OPEN_ACL_KEY = -1
_BUILTIN_OPEN = ("/", "/zookeeper", "/zookeeper/quota")
_DIGEST_SKIP = "/zookeeper/"
_CHUNK_BYTES = 1 << 20

_DIGEST_STAT = struct.Struct(">qqqqqiiiq")  # DigestCalculator order, 60 bytes
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_INT_LONG = struct.Struct(">iq")
_SEAL_TAIL = _INT.pack(1) + b"/"
_KEY_PERSISTED = struct.Struct(">qqqqqiiiqq")  # ACL key, then StatPersisted in jute order
_NO_DATA = _INT.pack(-1)
_ACL_OF = operator.attrgetter("acl")


class SnapshotError(ValueError):
    """The bytes are not a complete, intact snapshot."""


@dataclass
class SnapshotContents:
    sessions: dict[int, int]
    digest_zxid: int | None = None
    digest_version: int | None = None
    digest: int | None = None
    tree_digest: int | None = None  # the loaded tree's, when asked for (sum_digest)


def node_digest(path: str, node: DataNode) -> int:
    if path.startswith(_DIGEST_SKIP):
        return 0
    return record_digest(path, node._rec)


def record_digest(path: str, rec: bytes) -> int:
    """A node's digest from its path and record (``DataNode``), whatever its
    path: callers leave out the nodes under /zookeeper/."""
    crc = zlib.crc32(b"" if path == "/" else path.encode("utf-8"))
    if rec[0] & _FULL_BIT:
        persisted = rec[1:_FULL_SIZE]
        # StatPersisted's fields in DigestCalculator's order have the same
        # widths: czxid, mzxid, then pzxid, then ctime .. ephemeralOwner
        return zlib.crc32(persisted[16:52], zlib.crc32(persisted[52:], zlib.crc32(
            persisted[:16], zlib.crc32(rec[_FULL_SIZE:], crc))))
    _, czxid, ctime, owner = _FRESH.unpack_from(rec)
    return zlib.crc32(_DIGEST_STAT.pack(czxid, czxid, czxid, ctime, ctime, 0, 0, 0, owner),
                      zlib.crc32(rec[_FRESH_SIZE:], crc))


def signed_digest(total: int) -> int:
    """A sum of node digests as the signed 64-bit long ZooKeeper keeps."""
    total &= 0xFFFFFFFFFFFFFFFF
    return total - (1 << 64) if total >= 1 << 63 else total


def tree_digest(tree: DataTree) -> int:
    return signed_digest(sum(node_digest(p, n) for p, n in tree.nodes.items()))


class DigestSince:
    """The digest of a tree as it was when this was made (a snapshot just
    loaded, its digest summed while loading), kept current without a walk of
    every node: ``now`` takes out the digests of the nodes changed or
    deleted since and adds those of the nodes changed or created. Every
    change to a node's stat or data replaces its record, an immutable bytes
    object (``DataNode``), so the changed nodes are those whose record object
    is not the one seen here; finding them is C-level iteration (for a
    million nodes 0.1 s when no node was added or deleted, 0.5 s otherwise,
    against 1.0 s for the walk). Holds the tree's paths, nodes and records
    until dropped."""

    def __init__(self, tree: DataTree, digest: int) -> None:
        nodes = tree.nodes
        self.digest = digest
        self.paths = list(nodes)
        self.nodes = list(nodes.values())
        self.recs = list(map(_REC_OF, self.nodes))

    def now(self, tree: DataTree) -> int:
        nodes, paths, base_nodes, base_recs = tree.nodes, self.paths, self.nodes, self.recs
        total = self.digest
        kept = len(paths)
        if len(nodes) == kept and list(nodes.values()) == base_nodes:
            # the same node objects in the same places (nodes compare by
            # identity): only records may have changed
            current = base_nodes
            touched = map(operator.is_not, map(_REC_OF, base_nodes), base_recs)
        else:
            current = list(map(nodes.get, paths, repeat(_GONE, kept)))
            touched = map(operator.or_, map(operator.is_not, current, base_nodes),
                          map(operator.is_not, map(_REC_OF, current), base_recs))
        for i in compress(count(), touched):
            path = paths[i]
            system = path.startswith(_DIGEST_SKIP)
            if not system:
                total -= record_digest(path, base_recs[i])
            node = current[i]
            if node is not base_nodes[i]:
                kept -= 1  # deleted (or replaced: its successor is counted below)
            elif not system:
                total += record_digest(path, node._rec)
        if len(nodes) > kept:
            # A dict keeps its order and appends new keys, so the nodes added
            # since are the last ones; a node seen here among them means that
            # does not hold, and the walk answers instead.
            seen = set(map(id, base_nodes))
            for path, node in islice(nodes.items(), kept, None):
                if id(node) in seen:
                    return tree_digest(tree)
                if not path.startswith(_DIGEST_SKIP):
                    total += record_digest(path, node._rec)
        return signed_digest(total)


class _Gone:
    """Stands in for a node no longer in the tree (its record is None)."""

    __slots__ = ()
    _rec = None


_GONE = _Gone()
_REC_OF = operator.attrgetter("_rec")


def _system_digest(tree: DataTree) -> int:
    """The digests of the nodes under /zookeeper/ (a handful: config, quotas),
    which a load's running sum counted and the tree digest leaves out."""
    nodes = tree.nodes
    top = nodes.get("/zookeeper")
    stack = list(top.child_paths()) if top is not None else []
    total = 0
    while stack:
        path = stack.pop()
        node = nodes[path]
        total += record_digest(path, node._rec)
        stack.extend(node.child_paths())
    return total


def _acl_keys(tree: DataTree) -> tuple[dict[int, int], Writer]:
    """Number the distinct ACL lists 1..n in the order of ``tree.nodes`` and
    encode the cache. The result maps each node ACL tuple's id() to its key:
    nodes share their ACL tuples (DataTree.shared_acl, a snapshot load), so
    the scan is two C-level passes with no hashing of ACL records per node,
    and the writer's lookup is an int. ids are lookup keys only: the numbers
    follow the nodes' order, so the bytes are deterministic."""
    acls = list(map(_ACL_OF, tree.nodes.values()))
    by_id = dict(zip(map(id, acls), acls))  # one entry per tuple object, first seen first
    del acls
    keys: dict[tuple, int] = {}
    key_of_id: dict[int, int] = {}
    for ident, acl in by_id.items():
        key = keys.get(acl)
        if key is None:
            key = keys[acl] = len(keys) + 1
        key_of_id[ident] = key
    w = Writer()
    w.int(len(keys))
    for acl, key in keys.items():
        w.long(key)
        w.int(len(acl))
        for entry in acl:
            entry.write(w)
    return key_of_id, w


def _seal(adler: int) -> bytes:
    return _LONG.pack(adler) + _SEAL_TAIL


def serialize_snapshot(tree: DataTree, sessions: dict[int, int], zxid: int,
                       digest: bool = True) -> Iterator[bytes]:
    """Yield the bytes of ``snapshot.<zxid>`` for ``tree`` and ``sessions``."""
    adler = 1
    out = bytearray(struct.pack(">iiq", SNAP_MAGIC, SNAP_VERSION, SNAP_DBID))
    out += _INT.pack(len(sessions))
    for sid in sorted(sessions):
        out += struct.pack(">qi", sid, sessions[sid])
    keys, cache = _acl_keys(tree)
    out += cache.out
    pack_int, pack_long, crc32 = _INT.pack, _LONG.pack, zlib.crc32
    unpack_fresh, pack_key_fresh, pack_digest = _FRESH.unpack_from, _KEY_PERSISTED.pack, \
        _DIGEST_STAT.pack
    last_acl: tuple | None = None
    last_key = 0
    total = 0  # the tree digest, summed in the same walk (see tree_digest)
    # The loop reads each node's record bytes directly, as the forked writer
    # runs it for every znode: a node's StatPersisted is its record's bytes
    # 1..61, or, for a node never changed (most leaves), follows from czxid,
    # ctime and ephemeralOwner, packed with the ACL key in one step.
    for path, node in tree.walk():
        raw = b"" if path == "/" else path.encode("utf-8")
        rec = node._rec
        flags = rec[0]
        data = rec[_FULL_SIZE:] if flags & _FULL_BIT else rec[_FRESH_SIZE:]
        out += pack_int(len(raw))
        out += raw
        if flags & _NODATA_BIT:
            out += _NO_DATA
        else:
            out += pack_int(len(data))
            out += data
        acl = node.acl
        if path in _BUILTIN_OPEN and acl == OPEN_ACL_UNSAFE:
            key = OPEN_ACL_KEY
        else:
            if acl is not last_acl:
                last_acl, last_key = acl, keys[id(acl)]
            key = last_key
        if flags & _FULL_BIT:
            persisted = rec[1:_FULL_SIZE]
            out += pack_long(key)
            out += persisted
            if digest and not path.startswith(_DIGEST_SKIP):
                # DigestCalculator's order (czxid, mzxid, pzxid, ctime, mtime,
                # version, cversion, aversion, ephemeralOwner) has the
                # StatPersisted widths: the bytes are moved, not repacked
                total += crc32(persisted[16:52], crc32(persisted[52:], crc32(
                    persisted[:16], crc32(data, crc32(raw)))))
        else:
            _, czxid, ctime, owner = unpack_fresh(rec)
            out += pack_key_fresh(key, czxid, czxid, ctime, ctime, 0, 0, 0, owner, czxid)
            if digest and not path.startswith(_DIGEST_SKIP):
                total += crc32(pack_digest(czxid, czxid, czxid, ctime, ctime, 0, 0, 0, owner),
                               crc32(data, crc32(raw)))
        if len(out) >= _CHUNK_BYTES:
            adler = zlib.adler32(out, adler)
            yield bytes(out)
            out.clear()
    out += pack_int(1) + b"/"
    adler = zlib.adler32(out, adler)
    seal = _seal(adler)
    out += seal
    if digest:
        # The second seal covers everything, the first seal included.
        tail = struct.pack(">qiq", zxid, DIGEST_VERSION, signed_digest(total))
        out += tail
        out += _seal(zlib.adler32(seal + tail, adler))
    yield bytes(out)


def has_valid_tail(data: bytes | memoryview) -> bool:
    return len(data) >= 10 and bytes(data[-5:]) == _SEAL_TAIL


def _read_sessions(r: Reader) -> dict[int, int]:
    count = r.int()
    if count < 0 or count > SNAPSHOT_SESSIONS_MAX or count * 12 > r.remaining():
        raise SnapshotError(f"bad session count {count}")
    sessions: dict[int, int] = {}
    for _ in range(count):
        sid = r.long()
        sessions[sid] = r.int()
    return sessions


def _read_acl_cache(r: Reader) -> dict[int, tuple]:
    count = r.int()
    if count < 0 or count > SNAPSHOT_ACL_LISTS_MAX or count * 12 > r.remaining():
        raise SnapshotError(f"bad ACL cache size {count}")
    cache: dict[int, tuple] = {OPEN_ACL_KEY: OPEN_ACL_UNSAFE}
    for _ in range(count):
        key = r.long()
        n = r.int()
        if n < 0 or n > r.remaining():
            raise SnapshotError(f"bad ACL list length {n} for key {key}")
        cache[key] = tuple(R.ACL.read(r) for _ in range(n))
    return cache


def _read_nodes(r: Reader, tree: DataTree, acls: dict[int, tuple], digest: bool) -> int:
    """The node list, parsed in one tight loop: it is most of a restart.

    Each node's record (see ``DataNode``) is packed straight from the
    snapshot's bytes: one struct unpack for the ACL key and the stat, one
    pack and one concatenation with the data, no per-field attribute work.
    Siblings come one after another (pre-order), so the parent found for
    one serves the next. With ``digest`` the tree's digest is summed on the
    way (over every node: the caller takes out those under /zookeeper/),
    which costs less than a walk of the built tree; else 0 is returned.
    """
    buf, pos, end = r.buf, r.pos, r.end
    unpack_int, unpack_key_stat = _INT.unpack_from, _KEY_PERSISTED.unpack_from
    pack_fresh, pack_full, pack_digest = _FRESH.pack, _FULL.pack, _DIGEST_STAT.pack
    crc32 = zlib.crc32
    key_stat_size = _KEY_PERSISTED.size
    nodes = tree.nodes
    total = 0
    parent_path = None
    kids: dict[str, None] = {}
    while True:
        if pos + 4 > end:
            raise SnapshotError("node list is truncated")
        (n,) = unpack_int(buf, pos)
        if n < 0 or pos + 4 + n + 4 > end:
            raise SnapshotError(f"bad path length {n} at offset {pos}")
        pos += 4
        raw = buf[pos : pos + n]
        path = str(raw, "utf-8")
        pos += n
        if path == "/":
            r.pos = pos
            return total
        (dn,) = unpack_int(buf, pos)
        pos += 4
        data_at = pos
        if dn > 0:
            pos += dn
        elif dn < -1:
            raise SnapshotError(f"bad data length {dn} for node {path or '/'}")
        if pos + key_stat_size > end:
            raise SnapshotError(f"bad data length {dn} for node {path or '/'}")
        (key, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
         pzxid) = unpack_key_stat(buf, pos)
        pos += key_stat_size
        acl = acls.get(key)
        if acl is None:
            raise SnapshotError(f"node {path or '/'} refers to unknown ACL key {key}")
        flags = _NODATA_BIT if dn == -1 else 0
        if mzxid == czxid and pzxid == czxid and mtime == ctime and not (version or cversion
                                                                        or aversion):
            rec = pack_fresh(flags, czxid, ctime, owner)
        else:
            rec = pack_full(flags | _FULL_BIT, czxid, mzxid, ctime, mtime, version, cversion,
                            aversion, owner, pzxid)
        if dn > 0:
            rec += buf[data_at : data_at + dn]
        if digest:
            crc = crc32(raw)
            if dn > 0:
                crc = crc32(buf[data_at : data_at + dn], crc)
            total += crc32(pack_digest(czxid, mzxid, pzxid, ctime, mtime, version, cversion,
                                       aversion, owner), crc)
        node = DataNode(None, acl, 0, 0, 0, rec)
        if not path:
            if "/" in nodes:
                raise SnapshotError("root listed twice")
            nodes["/"] = node
            continue
        i = path.rfind("/")
        if i < 0:
            raise SnapshotError(f"node {path} is not an absolute path")
        prefix = path[:i] if i else "/"
        if prefix != parent_path:
            parent = nodes.get(prefix)
            if parent is None:
                raise SnapshotError(f"node {path} is misplaced or listed before its parent")
            parent_path = prefix
            kids = parent.kids_for_load()
        if nodes.setdefault(path, node) is not node:
            raise SnapshotError(f"node {path} is listed twice")
        kids[path] = None
        if owner:
            tree.index_owner(path, owner)


def _check_seal(r: Reader, data: memoryview, what: str) -> None:
    expected = zlib.adler32(data[: r.pos])
    stored = r.long()
    if r.ustring() != "/":
        raise SnapshotError(f"{what} seal is not followed by '/'")
    if stored != expected:
        raise SnapshotError(f"{what} checksum {stored:#x} != computed {expected:#x}")


def deserialize_snapshot(data: bytes | bytearray | memoryview, tree: DataTree,
                         digest: bool = True, sum_digest: bool = False) -> SnapshotContents:
    """Load ``data`` into ``tree`` (cleared first); raises SnapshotError.

    With ``digest`` false (digest.enabled=false) nothing after the tree's
    seal is read, as ZooKeeper then ignores the digest section. With
    ``sum_digest`` the loaded tree's digest (``tree_digest``) is summed while
    loading, into ``SnapshotContents.tree_digest``.
    """
    buf = data if isinstance(data, memoryview) else memoryview(data)
    r = Reader(buf)
    tree.clear()
    try:
        magic, version, _dbid = r.int(), r.int(), r.long()
        if magic != SNAP_MAGIC or version != SNAP_VERSION:
            raise SnapshotError(f"bad magic {magic:#x} or version {version}")
        sessions = _read_sessions(r)
        # the tree's shared tuples, so nodes created later share them too
        total = _read_nodes(r, tree, {k: tree.shared_acl(acl)
                                      for k, acl in _read_acl_cache(r).items()}, sum_digest)
        if "/" not in tree.nodes:
            raise SnapshotError("no root node")
        out = SnapshotContents(sessions)
        if sum_digest:  # before setup_quota, which may rewrite quota stats nodes
            out.tree_digest = signed_digest(total - _system_digest(tree))
        tree.setup_quota()  # as DataTree.deserialize ends: quotas found and recounted
        _check_seal(r, buf, "tree")
        if r.remaining() == 0 or not digest:
            return out  # written without a digest (digest.enabled=false or pre-3.6)
        out.digest_zxid, out.digest_version = r.long(), r.int()
        if out.digest_version < 2:
            text = r.ustring()
            out.digest = int(text, 16) if text else 0
        else:
            out.digest = r.long()
        _check_seal(r, buf, "digest")
        if r.remaining():
            # 3.9 appends lastProcessedZxid and a third seal; accept that shape.
            r.long()
            _check_seal(r, buf, "zxid")
        if r.remaining():
            raise SnapshotError(f"{r.remaining()} trailing bytes")
        return out
    except DecodeError as e:
        raise SnapshotError(f"truncated or malformed: {e}") from None
    except ValueError as e:
        if isinstance(e, SnapshotError):
            raise
        raise SnapshotError(f"malformed: {e}") from None
