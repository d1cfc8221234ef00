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
   Each file is walked record by record (``txnlog.iter_records``: a payload
   is applied as soon as its checksum is verified, no list of the file's
   records is built). The common txns go straight from their bytes into the
   tree (``storage/replay.py``, ``FastApplier``); every other txn, and any
   the fast path does not take, goes through ``decode_payload`` and
   ``replay_txn`` (``fast_replay=False`` sends all of them there; the tests
   compare the two).
4. Where a log file stops early (``txnlog.iter_records``, as ``scan_log``), the question is
   whether what follows could hold an acknowledged write. If a complete,
   checksum-valid record follows the bad spot, it is corruption in the middle:
   ``StorageError`` with the file and offset. Otherwise it is a torn tail: in
   the last log file it is truncated away (and a log left with no txn is
   removed, so the next log file can take its name); in an older file it just
   ends that file, as in ZooKeeper, and the continuity check decides.

A multi is one record, so a torn tail never leaves half of one applied.
No snapshot but logs present is refused unless ``trust_empty_snapshot``
(``zookeeper.snapshot.trust.empty``, meant for data directories of 3.4
servers, which wrote no snapshot.0): then the logs are replayed over an
empty tree, with a warning. Nothing at all is a fresh data directory.

Digests (``digest_enabled``, ``zookeeper.digest.enabled``), as FileSnap and
DataTree check them: the snapshot's ZxidDigest names the zxid whose tree
digest it holds. ZooKeeper's snapshots are fuzzy, so that zxid may lie above
the file's; the tree is compared with it once that txn has been replayed
(at once when it is the snapshot's own zxid, as in zabpy's exact
snapshots). A digest of zxid 0 (empty), below the snapshot zxid, or of
another digest version is not compared; one the logs never reach is
reported with a warning. Once past that point, the tree after the last
replayed txn is compared with the TxnDigest that ZooKeeper logged with it
(ZooKeeper compares after every txn; the final one suffices to catch a
divergence without an O(tree) pass per txn). A mismatch is logged as an
error and counted (``digest_mismatches``, the server's
digest_mismatches_count); like ZooKeeper, the server still starts. No
comparison walks the tree: the snapshot's digest is summed while its nodes
are read, and later ones add what the replay changed (``DigestSince``).
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import struct
from dataclasses import dataclass, field

from ..jute.codec import DecodeError
from ..limits import SNAPSHOT_CANDIDATES_MAX
from ..tree.datatree import DataTree, replay_txn
from . import datadir as D
from .snapshot import DIGEST_VERSION, DigestSince, SnapshotError, deserialize_snapshot, tree_digest
from .replay import UNHANDLED, FastApplier
from .txnlog import FILE_HEADER_LEN, HEADER, LogScan, decode_payload, iter_records

__all__ = ["StorageError", "RestoreResult", "restore"]

log = logging.getLogger("zabpy.storage")

_LONG = struct.Struct(">q")  # a TxnHeader's zxid, at offset 12 of a payload


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
    digest_ok: bool | None = None      # None: no digest was compared
    digest_checks: int = 0             # digests compared (snapshot's, log's)
    digest_mismatches: int = 0
    trusted_empty: bool = False        # logs replayed without a snapshot
    # (zxid, digest) of the snapshot's digest still to be compared (fuzzy snapshot)
    pending_digest: tuple[int, int] | None = None
    # (zxid, digest) logged with the last replayed txn, when comparable
    last_txn_digest: tuple[int, int] | None = None
    # the loaded snapshot's tree digest, kept current through the replay;
    # dropped when the restore ends (it holds every node)
    digest_since: DigestSince | None = field(default=None, repr=False, compare=False)


def _remove_stale_tmp(snap_dir: str) -> None:
    for name in os.listdir(snap_dir):
        if name.startswith(D.SNAP_TMP_PREFIX) and name.endswith(".tmp"):
            os.unlink(os.path.join(snap_dir, name))
            log.warning("removed unfinished snapshot %s", name)


def _compare_digest(tree: DataTree, zxid: int, expected: int, what: str,
                    out: RestoreResult, actual: int | None = None) -> None:
    if actual is None:
        since = out.digest_since
        actual = since.now(tree) if since is not None else tree_digest(tree)
    ok = actual == expected
    out.digest_checks += 1
    out.digest_ok = ok if out.digest_ok is None else out.digest_ok and ok
    if not ok:
        out.digest_mismatches += 1
        log.error("Digests are not matching at zxid %#x: %s holds %d, the restored tree %d",
                  zxid, what, expected, actual)


def _take_snapshot_digest(path: str, zxid: int, contents, tree: DataTree,
                          out: RestoreResult) -> None:
    """DataTree.deserializeZxidDigest + compareSnapshotDigests at load."""
    dzxid = contents.digest_zxid
    if dzxid is None:
        return  # no digest section (pre-3.6, digest.enabled=false, or not read)
    if dzxid <= 0:
        log.info("the digest value is empty in snapshot %s", path)
        return
    if dzxid < zxid:
        log.info("snapshot %s: its digest is of zxid %#x, below the snapshot's %#x; "
                 "not comparing it", path, dzxid, zxid)
        return
    if contents.digest_version != DIGEST_VERSION:
        log.info("snapshot %s: digest version %s, ours is %d; not comparing it", path,
                 contents.digest_version, DIGEST_VERSION)
        return
    if dzxid == zxid:
        _compare_digest(tree, zxid, contents.digest, f"snapshot {path}", out, contents.tree_digest)
    else:
        out.pending_digest = (dzxid, contents.digest)


def _load_snapshot(snap_dir: str, log_dir: str, tree: DataTree, out: RestoreResult,
                   trust_empty_snapshot: bool, digest_enabled: bool) -> None:
    all_snaps = D.list_zxid_files(snap_dir, D.SNAP_PREFIX)
    problems = []
    for zxid, path in reversed(all_snaps[-SNAPSHOT_CANDIDATES_MAX:]):
        try:
            contents = deserialize_snapshot(D.read_snapshot_file(path), tree,
                                            digest=digest_enabled, sum_digest=digest_enabled)
        except (SnapshotError, OSError) as e:
            log.warning("snapshot %s is unusable (%s); trying an older one", path, e)
            problems.append(f"{os.path.basename(path)}: {e}")
            out.skipped_snapshots.append(path)
            continue
        tree.last_processed_zxid = zxid
        out.sessions, out.snapshot_path, out.snapshot_zxid = contents.sessions, path, zxid
        if contents.tree_digest is not None:
            out.digest_since = DigestSince(tree, contents.tree_digest)
        _take_snapshot_digest(path, zxid, contents, tree, out)
        return
    # Nothing loaded: leave the tree as a fresh one (built-in nodes only).
    tree.__init__()
    if problems:
        raise StorageError(f"no usable snapshot in {snap_dir}: " + "; ".join(problems))
    logs = D.list_zxid_files(log_dir, D.LOG_PREFIX)
    if not logs:
        return
    if not trust_empty_snapshot:
        raise StorageError(f"No snapshot found, but there are log entries. Something is broken! "
                           f"(no snapshot in {snap_dir}, first log {logs[0][1]}; set "
                           f"zookeeper.snapshot.trust.empty=true only when upgrading from 3.4)")
    log.warning("No snapshot found, but there are log entries. This should only be allowed "
                "during upgrading. (zookeeper.snapshot.trust.empty: replaying %s and later "
                "logs over an empty tree)", logs[0][1])
    out.trusted_empty = True


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
    return scan.count == 0


def _replay_file(path: str, data, tree: DataTree, out: RestoreResult,
                 fast: FastApplier | None) -> LogScan:
    """Apply the txns of one log file image after ``out.last_zxid``; the
    common ones through ``fast`` (storage/replay.py), the rest (or all,
    without it) through decode_payload and replay_txn."""
    scan = LogScan()
    sessions = out.sessions
    apply_fast = fast.apply if fast is not None else None
    zxid_at = _LONG.unpack_from
    last = out.last_zxid
    replayed = out.replayed
    try:
        for offset, payload in iter_records(data, scan):
            zxid = zxid_at(payload, 12)[0]  # payload_zxid, inlined
            if zxid <= last:
                continue
            if (zxid >> 32) == (last >> 32) and zxid != last + 1 or (zxid >> 32) < (last >> 32):
                raise StorageError(f"{path}: txn {zxid:#x} at offset {offset} follows {last:#x}: "
                                   f"transactions are missing (gap in the logs)")
            digest = apply_fast(payload) if apply_fast is not None else UNHANDLED
            if digest is UNHANDLED:
                try:
                    hdr, txn, d = decode_payload(payload)
                except DecodeError as e:
                    raise StorageError(f"{path}: undecodable txn at offset {offset}: {e}") from None
                replay_txn(tree, sessions, hdr, txn)
                digest = None if d is None else (d.version, d.treeDigest)
            last = zxid
            replayed += 1
            if out.pending_digest is None:
                out.last_txn_digest = (zxid, digest[1]) if digest is not None and \
                    digest[0] == DIGEST_VERSION else None
            else:
                _track_pending_digest(tree, zxid, out)
    finally:
        out.last_zxid = last
        out.replayed = replayed
    if scan.stop == HEADER and len(data) >= FILE_HEADER_LEN:
        raise StorageError(f"{path}: not a ZooKeeper transaction log ({scan.detail})")
    return scan


def _track_pending_digest(tree: DataTree, zxid: int, out: RestoreResult) -> None:
    """After replaying ``zxid`` while the fuzzy snapshot's digest waits for its zxid."""
    out.last_txn_digest = None
    if zxid == out.pending_digest[0]:
        expected = out.pending_digest[1]
        out.pending_digest = None
        _compare_digest(tree, zxid, expected, "the snapshot's digest", out)


def _replay_logs(log_dir: str, tree: DataTree, out: RestoreResult, fast_replay: bool) -> None:
    files = D.logs_from(log_dir, out.snapshot_zxid)
    fast = FastApplier(tree, out.sessions) if fast_replay else None
    for i, (_, path) in enumerate(files):
        is_last = i == len(files) - 1
        data = _map_log(path)
        # On an error the traceback's frames hold views of the mapping; it
        # is unmapped when they go. Otherwise drop the scan's payload views
        # and unmap now: close() raises BufferError if anything still holds
        # one (a txn keeping a view of a file that may be truncated next).
        scan = _replay_file(path, data, tree, out, fast)
        remove = _check_tail(path, scan, is_last, out)
        good_end = scan.good_end
        scan = None
        if isinstance(data, mmap.mmap):
            data.close()
        if path in out.truncated:
            if remove:
                os.unlink(path)
                out.removed.append(path)
            else:
                os.truncate(path, good_end)
            D.fsync_dir(log_dir)


def _map_log(path: str) -> "mmap.mmap | bytes":
    """A log file's bytes, mapped rather than read: a log is preallocated
    (64 MiB by default) and mostly a hole, so reading it whole copied tens
    of MiB of zeros per file at every start; mapped, the hole costs page
    faults on the kernel's zero page and the scan's compares."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def restore(snap_dir: str, log_dir: str, tree: DataTree, *, trust_empty_snapshot: bool = False,
            digest_enabled: bool = True, fast_replay: bool = True) -> RestoreResult:
    """Load the newest valid snapshot and replay the logs after it into ``tree``
    (``fast_replay``: the common txns through storage/replay.py; False runs
    every txn through the general path, as the tests compare)."""
    out = RestoreResult()
    _remove_stale_tmp(snap_dir)
    # Everything a restore builds lives on and forms no cycle: a collection
    # meanwhile would scan the growing tree and free nothing (0.4-0.9 s of
    # a million-node load). A server freezes it all afterwards
    # (GcPolicy.restoring).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _load_snapshot(snap_dir, log_dir, tree, out, trust_empty_snapshot, digest_enabled)
        out.last_zxid = out.snapshot_zxid
        _replay_logs(log_dir, tree, out, fast_replay)
        if tree.last_processed_zxid < out.last_zxid:
            tree.last_processed_zxid = out.last_zxid
        if out.pending_digest is not None:
            log.warning("Highest txn zxid %#x is not covering the snapshot digest zxid %#x, "
                        "which might lead to inconsistent state", out.last_zxid,
                        out.pending_digest[0])
        elif digest_enabled and out.last_txn_digest is not None:
            _compare_digest(tree, out.last_txn_digest[0], out.last_txn_digest[1],
                            "the transaction log", out)
    finally:
        out.digest_since = None
        if collecting:
            gc.enable()
    log.info("restored %s (zxid %#x) + %d txns; last zxid %#x", out.snapshot_path,
             out.snapshot_zxid, out.replayed, out.last_zxid)
    return out
