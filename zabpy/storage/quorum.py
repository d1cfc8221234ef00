"""What a quorum peer needs of its data directory beyond a standalone server:
the epoch files, cutting the log back (TRUNC) and installing a leader's
snapshot (SNAP).

``acceptedEpoch`` / ``currentEpoch`` live in dataDir/version-2 as decimal
text, written atomically (temporary file, fsync, rename, fsync of the
directory), as ZooKeeper writes them. A missing file is derived from the
last logged zxid's epoch; acceptedEpoch below currentEpoch is refused.

``truncate_after(store, zxid)`` removes every logged txn above ``zxid``:
log files that start above it are deleted, the one that spans it is cut at
the end of its last record at or below ``zxid``, and snapshots above it are
deleted. ``install_snapshot(store, tree, sessions)`` writes the leader's
image as a durable snapshot first and only then deletes the logs and
snapshots it supersedes, so a crash in between loses nothing.
"""

from __future__ import annotations

import os

from . import datadir as D
from .files import TxnStore
from .txnlog import scan_log
from .recovery import StorageError

__all__ = ["read_epochs", "write_epoch", "truncate_after", "install_snapshot"]

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"


def _read_epoch(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        raise StorageError(f"{path}: not an epoch: {text!r}") from None


def read_epochs(store: TxnStore, last_zxid: int) -> tuple[int, int]:
    """(acceptedEpoch, currentEpoch); missing files default to the last zxid's epoch."""
    default = last_zxid >> 32
    current = _read_epoch(os.path.join(store.snap_dir, CURRENT_EPOCH))
    accepted = _read_epoch(os.path.join(store.snap_dir, ACCEPTED_EPOCH))
    current = default if current is None else current
    accepted = current if accepted is None else accepted
    if accepted < current:
        raise StorageError(f"{store.snap_dir}: acceptedEpoch {accepted} is below currentEpoch "
                           f"{current}")
    return accepted, current


def write_epoch(store: TxnStore, name: str, value: int) -> None:
    assert name in (ACCEPTED_EPOCH, CURRENT_EPOCH)
    path = os.path.join(store.snap_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{value}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    D.fsync_dir(store.snap_dir)


def truncate_after(store: TxnStore, zxid: int) -> None:
    """Remove every logged txn above ``zxid`` (the log must be flushed first)."""
    store.flush_and_sync()
    store._close_log()  # the next append opens a new log file
    for start, path in D.list_zxid_files(store.log_dir, D.LOG_PREFIX):
        if start > zxid:
            os.unlink(path)
            continue
        with open(path, "rb") as f:
            data = f.read()
        scan = scan_log(data)
        cut = None
        for offset, z, _payload in scan.entries:
            if z > zxid:
                cut = offset
                break
        if cut is not None:
            os.truncate(path, cut)
    for snap_zxid, path in D.list_zxid_files(store.snap_dir, D.SNAP_PREFIX):
        if snap_zxid > zxid:
            os.unlink(path)
    D.fsync_dir(store.log_dir)
    with store._lock:
        store._last_appended_zxid = zxid


def install_snapshot(store: TxnStore, tree, sessions: dict[int, int]) -> None:
    """Make the leader's image durable, then drop what it supersedes."""
    store.flush_and_sync()
    store._close_log()
    zxid = tree.last_processed_zxid
    store.snapshot_now(tree, sessions)  # durable (tmp + fsync + rename) before anything goes
    for _start, path in D.list_zxid_files(store.log_dir, D.LOG_PREFIX):
        os.unlink(path)
    for snap_zxid, path in D.list_zxid_files(store.snap_dir, D.SNAP_PREFIX):
        if snap_zxid > zxid:
            os.unlink(path)
    D.fsync_dir(store.log_dir)
    with store._lock:
        store._last_appended_zxid = zxid
