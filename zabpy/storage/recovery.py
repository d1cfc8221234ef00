"""Restore: newest valid snapshot, then every logged txn after it.

Inputs: the snapshot and log directories, an empty ``DataTree``. Output: the
tree as of the last durable txn, the sessions {id: timeout_ms}, and a
``RestoreResult`` describing what was read and repaired.

1. Stale ``.snapshot.*.tmp`` files (a snapshot writer that died) are removed.
2. Snapshots are tried newest first (at most SNAPSHOT_CANDIDATES_MAX, as
   FileSnap does); the first that passes every length and both seal
   checks wins. A corrupt or partial one is skipped with a warning: the
   older snapshot plus the logs still reach the same state, and the
   continuity check below proves it. Snapshot files that exist but none of
   which loads is an error, never a silent empty tree.
3. Logs are read from the newest one that starts at or before the snapshot's
   zxid (``datadir.logs_from``). Txns at or below the snapshot zxid are
   skipped (their checksums are still verified). Every txn after it must
   continue the sequence: zxid + 1 in the same epoch, or a later epoch.
   A gap means a missing or damaged file: ``StorageError`` naming it.
4. Where a log file stops early (``txnlog.scan_log``), the question is
   whether what follows could hold an acknowledged write. If a complete,
   checksum-valid record follows the bad spot, it is corruption in the middle:
   ``StorageError`` with the file and offset. Otherwise it is a torn tail: in
   the last log file it is truncated away (and a log left with no txn is
   removed, so the next log file can take its name); in an older file it just
   ends that file, as in ZooKeeper, and the continuity check decides.

A multi is one record, so a torn tail never leaves half of one applied.
No snapshot but logs present is refused (ZooKeeper's "trust empty snapshot"
guard); nothing at all is a fresh data directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..jute.codec import DecodeError
from ..jute.constants import OpCode
from ..limits import SNAPSHOT_CANDIDATES_MAX
from ..tree.datatree import DataTree, replay_txn
from . import datadir as D
from .snapshot import SnapshotError, deserialize_snapshot, tree_digest
from .txnlog import FILE_HEADER_LEN, HEADER, LogScan, decode_payload, scan_log

__all__ = ["StorageError", "RestoreResult", "restore"]

log = logging.getLogger("zabpy.storage")


class StorageError(Exception):
    """The data directory cannot be loaded without losing data; names the file."""


@dataclass
class RestoreResult:
    sessions: dict[int, int] = field(default_factory=dict)
    snapshot_path: str | None = None
    snapshot_zxid: int = 0
    last_zxid: int = 0
    replayed: int = 0
    skipped_snapshots: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    digest_ok: bool | None = None


def _remove_stale_tmp(snap_dir: str) -> None:
    for name in os.listdir(snap_dir):
        if name.startswith(D.SNAP_TMP_PREFIX) and name.endswith(".tmp"):
            os.unlink(os.path.join(snap_dir, name))
            log.warning("removed unfinished snapshot %s", name)


def _load_snapshot(snap_dir: str, log_dir: str, tree: DataTree, out: RestoreResult) -> None:
    all_snaps = D.list_zxid_files(snap_dir, D.SNAP_PREFIX)
    problems = []
    for zxid, path in reversed(all_snaps[-SNAPSHOT_CANDIDATES_MAX:]):
        try:
            contents = deserialize_snapshot(D.read_snapshot_file(path), tree)
        except (SnapshotError, OSError, EOFError) as e:
            log.warning("snapshot %s is unusable (%s); trying an older one", path, e)
            problems.append(f"{os.path.basename(path)}: {e}")
            out.skipped_snapshots.append(path)
            continue
        tree.last_processed_zxid = zxid
        out.sessions, out.snapshot_path, out.snapshot_zxid = contents.sessions, path, zxid
        if contents.digest_zxid == zxid and contents.digest_version == 2:
            out.digest_ok = tree_digest(tree) == contents.digest
            if not out.digest_ok:
                log.error("snapshot %s: tree digest differs from the stored one", path)
        return
    # Nothing loaded: leave the tree as a fresh one (built-in nodes only).
    tree.__init__()
    if problems:
        raise StorageError(f"no usable snapshot in {snap_dir}: " + "; ".join(problems))
    logs = D.list_zxid_files(log_dir, D.LOG_PREFIX)
    if logs:
        raise StorageError(f"no snapshot in {snap_dir} but transaction logs exist "
                           f"(first: {logs[0][1]}); refusing to start from an empty tree")


def _check_tail(path: str, scan: LogScan, is_last: bool, out: RestoreResult) -> bool:
    """Judge where a log file stopped; True when the file should be removed."""
    if scan.clean:
        return False
    if scan.valid_after is not None:
        raise StorageError(f"{path}: corrupt transaction log ({scan.detail}); a valid record "
                           f"follows at offset {scan.valid_after}, so this is not a torn tail")
    if scan.stop == HEADER and scan.good_end == 0 and scan.nonzero_after and not is_last:
        raise StorageError(f"{path}: {scan.detail}")
    if not is_last:
        log.warning("%s ends early (%s); continuing with the next log", path, scan.detail)
        return False
    log.warning("%s: torn tail (%s); truncating to %d bytes", path, scan.detail, scan.good_end)
    out.truncated.append(path)
    return not scan.entries


def _replay_file(path: str, data: bytes, tree: DataTree, out: RestoreResult) -> LogScan:
    scan = scan_log(data)
    if scan.stop == HEADER and len(data) >= FILE_HEADER_LEN:
        raise StorageError(f"{path}: not a ZooKeeper transaction log ({scan.detail})")
    sessions = out.sessions
    for offset, zxid, payload in scan.entries:
        last = out.last_zxid
        if zxid <= last:
            continue
        if (zxid >> 32) == (last >> 32) and zxid != last + 1 or (zxid >> 32) < (last >> 32):
            raise StorageError(f"{path}: txn {zxid:#x} at offset {offset} follows {last:#x}: "
                               f"transactions are missing (gap in the logs)")
        try:
            hdr, txn, _digest = decode_payload(payload)
        except DecodeError as e:
            raise StorageError(f"{path}: undecodable txn at offset {offset}: {e}") from None
        replay_txn(tree, sessions, hdr, txn)
        out.last_zxid = zxid
        out.replayed += 1
    return scan


def _replay_logs(log_dir: str, tree: DataTree, out: RestoreResult) -> None:
    files = D.logs_from(log_dir, out.snapshot_zxid)
    for i, (_, path) in enumerate(files):
        is_last = i == len(files) - 1
        with open(path, "rb") as f:
            data = f.read()
        scan = _replay_file(path, data, tree, out)
        remove = _check_tail(path, scan, is_last, out)
        if path in out.truncated:
            if remove:
                os.unlink(path)
                out.removed.append(path)
            else:
                os.truncate(path, scan.good_end)
            D.fsync_dir(log_dir)


def restore(snap_dir: str, log_dir: str, tree: DataTree) -> RestoreResult:
    """Load the newest valid snapshot and replay the logs after it into ``tree``."""
    out = RestoreResult()
    _remove_stale_tmp(snap_dir)
    _load_snapshot(snap_dir, log_dir, tree, out)
    out.last_zxid = out.snapshot_zxid
    _replay_logs(log_dir, tree, out)
    if tree.last_processed_zxid < out.last_zxid:
        tree.last_processed_zxid = out.last_zxid
    log.info("restored %s (zxid %#x) + %d txns; last zxid %#x", out.snapshot_path,
             out.snapshot_zxid, out.replayed, out.last_zxid)
    return out
