"""A data directory with N znodes, written directly as a snapshot file (or a log).

    python -m bench.scale_data /tmp/d 10000000          # /tmp/d/version-2/snapshot.<zxid>
    python -m bench.scale_data /tmp/d 0 --wide 1000000  # one node with a million children
    python -m bench.scale_data /tmp/d 1000000 --log     # snapshot.0 + log.1 of the creates

With ``--log`` (``build_logdir``) the same tree (without /wide) is in the
transaction log instead: an empty snapshot.0, then one session's
createSession, a create per znode in the order above and its closeSession,
as a server with snapshots turned off would have logged them. A restart then
replays every create (bench.scale_log).

Creating ten million znodes over the wire takes hours; writing the snapshot
ZooKeeper would have after creating them takes about a minute. The file is
written by the project's own writer (``zabpy.storage.write_snapshot_file``,
the same code a server's snapshot runs), so Java and zabpy both load it as
any other snapshot: ZooKeeper's format, the ACL cache, the digest and both
seals.

The tree is bench.scale's: znodes of 100 bytes (``VALUE``), 1,000 per parent,
at /scale/b<i>/n<j>, plus /scale/w (written by the snapshot measurement) and,
with ``wide``, /wide with that many children (c<j>, 10 bytes each). Every
node was "created" by one txn, in order: parents first, so czxid increases
along the walk and a parent's pzxid and cversion are those of its last
child, as if made by creates over the wire. Only the nodes above the leaves
are kept in memory (a ``DataTree`` of a few thousand nodes); the leaves are
made one at a time while the writer walks, so memory stays small at 10M.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from zabpy.jute import OpCode
from zabpy.jute import records as R
from zabpy.storage import TxnStore, write_snapshot_file
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.tree.datatree import DataNode, DataTree, pack_record

__all__ = ["build_datadir", "build_logdir", "leaf_path", "FAN", "VALUE"]

FAN = 1000  # children per parent
VALUE = b"v" * 100
WIDE_VALUE = b"w" * 10
CTIME_MS = 1_767_225_600_000  # 2026-01-01, the ctime/mtime of every node


def leaf_path(i: int) -> str:
    return f"/scale/b{i // FAN}/n{i % FAN:04d}"


class _Tree:
    """What ``serialize_snapshot`` reads of a tree: ``walk()`` (pre-order,
    parents first) and ``nodes`` (for the ACL cache). The parents are in
    ``top``; after each parent listed in ``leaves`` the walk makes its
    children."""

    def __init__(self, top: DataTree, leaves: dict[str, tuple[int, int, str, bytes]]):
        self.top = top
        self.nodes = top.nodes  # every leaf's ACL is the parents' (OPEN_ACL_UNSAFE)
        self.leaves = leaves

    def walk(self):
        for path, node in self.top.walk():
            yield path, node
            spec = self.leaves.get(path)
            if spec is None:
                continue
            first_zxid, count, fmt, value = spec
            for j in range(count):
                yield path + fmt.format(j), DataNode(value, OPEN_ACL_UNSAFE, first_zxid + j,
                                                     CTIME_MS, 0)


def _parent(zxid: int, children: int, last_child_zxid: int, data: bytes = b"") -> DataNode:
    rec = pack_record(zxid, zxid, CTIME_MS, CTIME_MS, 0, children, 0, 0,
                      last_child_zxid if children else zxid, data)
    return DataNode(None, OPEN_ACL_UNSAFE, record=rec)


def build_datadir(data_dir: Path, n: int, wide: int = 0) -> tuple[int, float]:
    """Write ``data_dir/version-2/snapshot.<zxid>``; returns (zxid, seconds)."""
    t0 = time.monotonic()
    snap_dir = Path(data_dir) / "version-2"
    snap_dir.mkdir(parents=True, exist_ok=True)
    parents = (n + FAN - 1) // FAN
    # zxids in creation order: /scale, /scale/w, the parents, the leaves, /wide, its children
    z_scale, z_w, z_first_parent = 1, 2, 3
    z_first_leaf = z_first_parent + parents
    z_wide = z_first_leaf + n
    last = z_wide + wide if wide else z_wide - 1
    top = DataTree()
    root = top.nodes["/"]
    top_kids = 1 + (1 if wide else 0)
    root_pzxid = z_wide if wide else z_scale
    top.nodes["/"] = DataNode(None, OPEN_ACL_UNSAFE, record=pack_record(
        0, 0, 0, 0, 0, top_kids, 0, 0, root_pzxid, root.data))
    top.nodes["/"]._kids = root._kids
    scale = _parent(z_scale, 1 + parents, z_first_parent + parents - 1 if parents else z_w)
    top.add_restored_node("/scale", scale)
    top.add_restored_node("/scale/w", DataNode(VALUE, OPEN_ACL_UNSAFE, z_w, CTIME_MS, 0))
    leaves: dict[str, tuple[int, int, str, bytes]] = {}
    for b in range(parents):
        count = min(FAN, n - b * FAN)
        first = z_first_leaf + b * FAN
        path = f"/scale/b{b}"
        top.add_restored_node(path, _parent(z_first_parent + b, count, first + count - 1))
        leaves[path] = (first, count, "/n{:04d}", VALUE)
    if wide:
        top.add_restored_node("/wide", _parent(z_wide, wide, z_wide + wide))
        leaves["/wide"] = (z_wide + 1, wide, "/c{:07d}", WIDE_VALUE)
    write_snapshot_file(str(snap_dir), _Tree(top, leaves), {}, last)
    return last, time.monotonic() - t0


SESSION_ID = 0x0100_0000_0000_0001
SESSION_TIMEOUT_MS = 30_000


def _logged_txns(n: int):
    """(TxnHeader, txn) of bench.scale's tree made over the wire, in zxid order."""
    acl = list(OPEN_ACL_UNSAFE)
    zxid = 0
    cxid = 0

    def hdr(op: int) -> R.TxnHeader:
        nonlocal zxid, cxid
        zxid += 1
        cxid += 1
        return R.TxnHeader(SESSION_ID, cxid, zxid, CTIME_MS + zxid, op)

    yield hdr(OpCode.createSession), R.CreateSessionTxn(SESSION_TIMEOUT_MS)
    parents = (n + FAN - 1) // FAN
    yield hdr(OpCode.create), R.CreateTxn("/scale", b"", acl, False, 1)
    yield hdr(OpCode.create), R.CreateTxn("/scale/w", VALUE, acl, False, 1)
    for b in range(parents):
        yield hdr(OpCode.create), R.CreateTxn(f"/scale/b{b}", b"", acl, False, b + 2)
    for i in range(n):
        yield hdr(OpCode.create), R.CreateTxn(leaf_path(i), VALUE, acl, False, i % FAN + 1)
    yield hdr(OpCode.closeSession), R.CloseSessionTxn([])


def build_logdir(data_dir: Path, n: int) -> tuple[int, float]:
    """``data_dir/version-2``: snapshot.0 and one log of the creates; returns
    (last zxid, seconds). The log is written by the server's own TxnStore."""
    t0 = time.monotonic()
    store = TxnStore(str(data_dir), force_sync=False)
    store.restore(DataTree())  # a fresh directory: writes snapshot.0
    last = 0
    for k, (hdr, txn) in enumerate(_logged_txns(n)):
        store.append(hdr, txn)
        last = hdr.zxid
        if k % 10_000 == 9_999:
            store.flush_and_sync()
    store.flush_and_sync()
    store.close()
    return last, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("znodes", type=int)
    p.add_argument("--wide", type=int, default=0, help="children of /wide")
    p.add_argument("--log", action="store_true",
                   help="the creates in the transaction log over an empty snapshot.0")
    a = p.parse_args(argv)
    if os.path.exists(os.path.join(a.data_dir, "version-2")) and \
            os.listdir(os.path.join(a.data_dir, "version-2")):
        print(f"{a.data_dir}/version-2 is not empty", file=sys.stderr)
        return 1
    if a.log:
        zxid, secs = build_logdir(Path(a.data_dir), a.znodes)
        print(f"snapshot.0 + log.1 up to zxid {zxid:#x}: {a.znodes:,} znodes in {secs:.1f} s")
        return 0
    zxid, secs = build_datadir(Path(a.data_dir), a.znodes, a.wide)
    print(f"snapshot.{zxid:x}: {a.znodes:,} znodes + {a.wide:,} wide in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
