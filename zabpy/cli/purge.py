"""`zabpy purge DATADIR [-n COUNT] [--data-log-dir DIR]`: ZooKeeper's zkCleanup.sh.

Keeps the COUNT newest valid snapshots (at least 3, default 3) and the logs
they need, and deletes older snapshots and logs, exactly as
org.apache.zookeeper.server.PurgeTxnLog does (see zabpy/storage/datadir.py).
DATADIR is the configured dataDir (its version-2 subdirectory is used) or the
version-2 directory itself. Prints one line per removed file.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..limits import SNAP_RETAIN_COUNT_MIN
from ..storage import datadir as D

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zabpy purge", description=__doc__.splitlines()[0])
    p.add_argument("data_dir", metavar="DATADIR", help="dataDir (snapshots; logs too unless -l)")
    p.add_argument("-n", "--count", type=int, default=SNAP_RETAIN_COUNT_MIN,
                   help=f"snapshots to keep (>= {SNAP_RETAIN_COUNT_MIN}, default %(default)s)")
    p.add_argument("-l", "--data-log-dir", metavar="DIR", help="dataLogDir, when set in zoo.cfg")
    return p


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.count < SNAP_RETAIN_COUNT_MIN:
        print(f"zabpy purge: count must be at least {SNAP_RETAIN_COUNT_MIN}", file=sys.stderr)
        return 2
    snap_dir = D.version_dir(args.data_dir)
    log_dir = D.version_dir(args.data_log_dir or args.data_dir)
    for d in dict.fromkeys((snap_dir, log_dir)):
        if not os.path.isdir(d):
            print(f"zabpy purge: {d} does not exist", file=sys.stderr)
            return 2
    for path in D.purge(snap_dir, log_dir, args.count):
        print(f"Removing file: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
