"""Restart time and log write throughput of zabpy's TxnStore.

    python bench/restart.py [--nodes 100000] [--txns 20000] [--dir /tmp/x]
                            [--compression gz|snappy]

Restart: builds a data directory with N znodes (~100-byte data, 3 levels)
and measures ``TxnStore.restore`` (a) from a snapshot holding all N nodes,
(b) from snapshot.0 plus a log replay of the N creates, (c) the cost of
writing that snapshot (compressed by ``--compression``, as
snapshot.compression.method). Throughput: appends txns of 100 bytes and flushes
them in groups of 1 and of 100 (group commit), with forceSync yes and no.
Numbers go to stdout as a table; the machine and disk decide them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zabpy.jute import records as R  # noqa: E402
from zabpy.jute.constants import OpCode  # noqa: E402
from zabpy.storage import TxnStore  # noqa: E402
from zabpy.tree.acl import OPEN_ACL_UNSAFE  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

ACL = list(OPEN_ACL_UNSAFE)


def _create_txns(n: int):
    """(hdr, txn) creating n nodes under /b<i>/c<j> (parents first)."""
    zxid = 0
    per = max(1, int(n ** 0.5))
    cvers: dict[str, int] = {"/": 0}
    made = 0
    i = 0
    while made < n:
        parent = f"/b{i}"
        cvers["/"] += 1
        zxid += 1
        yield R.TxnHeader(1, zxid, zxid, 1_700_000_000_000 + zxid, OpCode.create), \
            R.CreateTxn(parent, b"p" * 100, ACL, False, cvers["/"])
        made += 1
        for j in range(min(per, n - made)):
            zxid += 1
            yield R.TxnHeader(1, zxid, zxid, 1_700_000_000_000 + zxid, OpCode.create), \
                R.CreateTxn(f"{parent}/c{j}", b"d" * 100, ACL, False, j + 1)
            made += 1
        i += 1


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_restart(root: str, nodes: int, compression: str = "") -> None:
    logs_dir = os.path.join(root, "logs-only")
    store = TxnStore(logs_dir, pre_alloc_size=64 << 20)
    tree = DataTree()
    store.restore(tree)
    for hdr, txn in _create_txns(nodes):
        store.append(hdr, txn)
        tree.apply(hdr, txn)
    store.flush_and_sync()
    store.close()
    snap_dir = os.path.join(root, "snapshot")
    snap_store = TxnStore(snap_dir, snapshot_compression_method=compression)
    snap_store.restore(DataTree())
    t_snap, _ = _timed(lambda: snap_store.snapshot_now(tree, {}))
    snap_store.close()
    t_logs, _ = _timed(lambda: TxnStore(logs_dir).restore(DataTree()))
    t_from_snap, _ = _timed(lambda: TxnStore(snap_dir).restore(DataTree()))
    size = max(os.path.getsize(os.path.join(snap_store.snap_dir, f))
               for f in os.listdir(snap_store.snap_dir))
    print(f"znodes                      {len(tree.nodes):>10}")
    print(f"snapshot size               {size / 1e6:>10.1f} MB")
    print(f"write snapshot              {t_snap * 1000:>10.0f} ms")
    print(f"restore from snapshot       {t_from_snap * 1000:>10.0f} ms")
    print(f"restore from log replay     {t_logs * 1000:>10.0f} ms")


def bench_throughput(root: str, txns: int) -> None:
    print(f"{'forceSync':<10} {'group':>6} {'txns/s':>10} {'fsyncs':>8}")
    for force in (True, False):
        for group in (1, 100):
            d = os.path.join(root, f"tp-{force}-{group}")
            store = TxnStore(d, force_sync=force)
            store.restore(DataTree())
            n = txns if group > 1 or not force else min(txns, 2000)
            t0 = time.perf_counter()
            for z in range(1, n + 1):
                store.append(R.TxnHeader(1, z, z, z, OpCode.setData), R.SetDataTxn("/x", b"v" * 100, z))
                if z % group == 0:
                    store.flush_and_sync()
            store.flush_and_sync()
            dt = time.perf_counter() - t0
            store.close()
            print(f"{'yes' if force else 'no':<10} {group:>6} {n / dt:>10.0f} {n // group:>8}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--txns", type=int, default=20_000)
    p.add_argument("--dir", help="where to build the data directories (default: a temp dir)")
    p.add_argument("--compression", choices=("", "gz", "snappy"), default="",
                   help="snapshot.compression.method of the snapshot written")
    args = p.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="zabpy-restart-")
    try:
        bench_restart(root, args.nodes, args.compression)
        print()
        bench_throughput(root, args.txns)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
