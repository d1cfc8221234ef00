"""The data directory: file names, listings, snapshot validity, retention.

ZooKeeper keeps its files in ``<dataDir>/version-2`` (snapshots) and
``<dataLogDir>/version-2`` (logs; the same directory when dataLogDir is not
set). A file's zxid is the hex number after the first dot
(``log.1a``, ``snapshot.1a``, ``snapshot.1a.gz``), parsed exactly as
ZooKeeper's Util.getZxidFromName does, so both programs agree on which files
exist. Listings are sorted by zxid. A snapshot's compression is told by its
name's last part (``storage.snapstream``).

Retention (``purge``) is ZooKeeper's PurgeTxnLog rule, used by autopurge
(DatadirCleanupManager), ``zkCleanup.sh`` and ``zabpy purge``: keep the N
newest *valid* snapshots; delete every snapshot and log whose zxid is below
the oldest kept snapshot, except the newest log that starts at or before it
(it may hold the txns that follow that snapshot).
"""

from __future__ import annotations

import logging
import os

from ..limits import SNAP_RETAIN_COUNT_MIN
from . import snapstream
from .snapshot import SnapshotError, has_valid_tail

__all__ = ["VERSION_DIR", "LOG_PREFIX", "SNAP_PREFIX", "version_dir", "zxid_from_name",
           "log_name", "snapshot_name", "list_zxid_files", "is_valid_snapshot",
           "read_snapshot_file", "find_valid_snapshots", "logs_from", "purge", "fsync_dir"]

log = logging.getLogger("zabpy.storage")

VERSION_DIR = "version-2"
LOG_PREFIX = "log"
SNAP_PREFIX = "snapshot"
SNAP_TMP_PREFIX = ".snapshot."


def version_dir(base: str) -> str:
    """``base/version-2``; a path that already ends in version-2 is kept."""
    base = os.path.abspath(base)
    return base if os.path.basename(base) == VERSION_DIR else os.path.join(base, VERSION_DIR)


def zxid_from_name(name: str, prefix: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != prefix:
        return None
    try:
        zxid = int(parts[1], 16)
    except ValueError:
        return None
    return zxid if 0 <= zxid < 1 << 64 else None


def log_name(zxid: int) -> str:
    return f"{LOG_PREFIX}.{zxid:x}"


def snapshot_name(zxid: int, method: str = snapstream.PLAIN) -> str:
    """``snapshot.<hex zxid>`` plus the compression suffix (Util.makeSnapshotName)."""
    return f"{SNAP_PREFIX}.{zxid:x}{snapstream.suffix(method)}"


def list_zxid_files(directory: str, prefix: str) -> list[tuple[int, str]]:
    """(zxid, path) of the files named ``prefix.<hex>...``, ascending zxid."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        zxid = zxid_from_name(name, prefix)
        if zxid is not None:
            out.append((zxid, os.path.join(directory, name)))
    out.sort()
    return out


def read_snapshot_file(path: str) -> bytes:
    """The snapshot's jute bytes, inflated by the file's own suffix (.gz, .snappy);
    raises OSError, or SnapshotError for a damaged compressed file."""
    with open(path, "rb") as f:
        raw = f.read()
    return snapstream.decode(snapstream.method_of_name(os.path.basename(path)), raw)


def is_valid_snapshot(path: str) -> bool:
    """ZooKeeper's cheap check: the file ends with the seal's int 1 and '/'.

    ZooKeeper checks only the magic of a compressed file; zabpy inflates it
    and checks the seal too, so retention never counts a torn one as kept.
    """
    name = os.path.basename(path)
    if zxid_from_name(name, SNAP_PREFIX) is None:
        return False
    method = snapstream.method_of_name(name)
    try:
        if method != snapstream.PLAIN:
            with open(path, "rb") as f:
                if not snapstream.has_magic(method, f.read(8)):
                    return False
            return has_valid_tail(read_snapshot_file(path))
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < 10:
                return False
            f.seek(size - 5)
            return has_valid_tail(b"\0" * 5 + f.read(5))
    except (OSError, SnapshotError):
        return False


def find_valid_snapshots(snap_dir: str, n: int) -> list[tuple[int, str]]:
    """Up to ``n`` valid snapshots, newest first."""
    out = []
    for zxid, path in reversed(list_zxid_files(snap_dir, SNAP_PREFIX)):
        if is_valid_snapshot(path):
            out.append((zxid, path))
            if len(out) >= n:
                break
    return out


def logs_from(log_dir: str, zxid: int) -> list[tuple[int, str]]:
    """The newest log starting at or before ``zxid`` and every later log."""
    files = list_zxid_files(log_dir, LOG_PREFIX)
    start = 0
    for fzxid, _ in files:
        if fzxid > zxid:
            break
        start = max(start, fzxid)
    return [(z, p) for z, p in files if z >= start]


def purge(snap_dir: str, log_dir: str, keep: int) -> list[str]:
    """Delete what the ``keep`` newest valid snapshots do not need; return the paths."""
    if keep < SNAP_RETAIN_COUNT_MIN:
        raise ValueError(f"snapshot retain count must be at least {SNAP_RETAIN_COUNT_MIN}")
    snaps = find_valid_snapshots(snap_dir, keep)
    if not snaps:
        return []
    least = snaps[-1][0]
    retained = {p for _, p in logs_from(log_dir, least)}
    doomed = [p for z, p in list_zxid_files(log_dir, LOG_PREFIX) if z < least and p not in retained]
    doomed += [p for z, p in list_zxid_files(snap_dir, SNAP_PREFIX) if z < least]
    removed = []
    for path in doomed:
        try:
            os.unlink(path)
            removed.append(path)
            log.info("purge: removed %s", path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("purge: failed to remove %s: %s", path, e)
    return removed


def fsync_dir(directory: str) -> None:
    """Make a created, renamed or removed name durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
