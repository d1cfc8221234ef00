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
from typing import Iterator

from ..jute import records as R
from ..jute.codec import DecodeError, Reader, Writer
from ..limits import SNAPSHOT_ACL_LISTS_MAX, SNAPSHOT_SESSIONS_MAX
from ..tree.acl import OPEN_ACL_UNSAFE
from ..tree.datatree import (_FRESH, _FRESH_SIZE, _FULL, _FULL_BIT, _FULL_SIZE, _NODATA_BIT,
                             DataNode, DataTree)

__all__ = ["SNAP_MAGIC", "SNAP_VERSION", "DIGEST_VERSION", "SnapshotError", "SnapshotContents",
           "serialize_snapshot", "deserialize_snapshot", "has_valid_tail", "tree_digest",
           "node_digest"]

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


def node_digest(path: str, node: DataNode) -> int:
    if path.startswith(_DIGEST_SKIP):
        return 0
    crc = zlib.crc32(b"" if path == "/" else path.encode("utf-8"))
    data = node.data
    if data:
        crc = zlib.crc32(data, crc)
    czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = node.stat_fields()
    return zlib.crc32(_DIGEST_STAT.pack(czxid, mzxid, pzxid, ctime, mtime, version, cversion,
                                        aversion, owner), crc)


def tree_digest(tree: DataTree) -> int:
    total = sum(node_digest(p, n) for p, n in tree.nodes.items()) & 0xFFFFFFFFFFFFFFFF
    return total - (1 << 64) if total >= 1 << 63 else total


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
        total &= 0xFFFFFFFFFFFFFFFF
        tail = struct.pack(">qiq", zxid, DIGEST_VERSION,
                           total - (1 << 64) if total >= 1 << 63 else total)
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


_KEY_STAT = struct.Struct(">qqqqqiiiqq")  # aclKey + StatPersisted, 68 bytes


def _read_nodes(r: Reader, tree: DataTree, acls: dict[int, tuple]) -> None:
    """The node list, parsed in one tight loop: it is most of a restart.

    Each node's record (see ``DataNode``) is packed straight from the
    snapshot's bytes: one struct unpack for the ACL key and the stat, one
    pack and one concatenation with the data, no per-field attribute work.
    """
    buf, pos, end = r.buf, r.pos, r.end
    unpack_int, unpack_key_stat = _INT.unpack_from, _KEY_STAT.unpack_from
    pack_fresh, pack_full = _FRESH.pack, _FULL.pack
    key_stat_size = _KEY_STAT.size
    nodes = tree.nodes
    while True:
        if pos + 4 > end:
            raise SnapshotError("node list is truncated")
        (n,) = unpack_int(buf, pos)
        if n < 0 or pos + 4 + n + 4 > end:
            raise SnapshotError(f"bad path length {n} at offset {pos}")
        pos += 4
        path = str(buf[pos : pos + n], "utf-8")
        pos += n
        if path == "/":
            r.pos = pos
            return
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
        node = DataNode(None, acl, record=rec)
        if not path:
            if "/" in nodes:
                raise SnapshotError("root listed twice")
            nodes["/"] = node
            continue
        i = path.rfind("/")
        parent = nodes.get(path[:i] if i > 0 else "/") if i >= 0 else None
        if parent is None:
            raise SnapshotError(f"node {path} is misplaced or listed before its parent")
        if nodes.setdefault(path, node) is not node:
            raise SnapshotError(f"node {path} is listed twice")
        parent.add_child(path)
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
                         digest: bool = True) -> SnapshotContents:
    """Load ``data`` into ``tree`` (cleared first); raises SnapshotError.

    With ``digest`` false (digest.enabled=false) nothing after the tree's
    seal is read, as ZooKeeper then ignores the digest section.
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
        _read_nodes(r, tree, {k: tree.shared_acl(acl) for k, acl in _read_acl_cache(r).items()})
        if "/" not in tree.nodes:
            raise SnapshotError("no root node")
        tree.setup_quota()  # as DataTree.deserialize ends: quotas found and recounted
        _check_seal(r, buf, "tree")
        out = SnapshotContents(sessions)
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
