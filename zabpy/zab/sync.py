"""How a leader syncs a learner: DIFF, TRUNC or SNAP (ZooKeeper's LearnerHandler.syncFollower).

``plan_sync(peer_zxid, history, log)`` decides from the learner's last zxid
and the leader's committed ``History`` (ZooKeeper's committedLog):

* P = last committed → empty DIFF; P above it → TRUNC(last);
* P inside the window → DIFF + the txns after P, or, when P is unknown
  (the learner logged txns that never committed), TRUNC(largest known
  zxid ≤ P) + the txns after that;
* P below the window → the on-disk txn log may still cover it: the plan is
  READ (the caller asks its executor for a ``LogRead``), and once the read
  is answered, ``plan_sync(..., log=txns)`` applies ZooKeeper's rules to the
  log followed by the history (``_from_log``); a log that does not reach
  back, has a gap before the history, or was not read gives SNAP.

``log_files_for`` and ``log_sync_fits`` are the executor's half of the
rule, kept here so the runtime and the simulator apply the same one:
ZooKeeper reads the log only when ``zookeeper.snapshotSizeFactor`` ≥ 0 and
the log files it would read weigh at most factor × the newest snapshot
file's size (ZKDatabase.calculateTxnLogSizeLimit, getProposalsFromTxnLog).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..limits import SNAPSHOT_SIZE_FACTOR_DEFAULT
from .history import History
from .ready import Txn

__all__ = ["SyncPlan", "plan_sync", "NOT_READ", "log_files_for", "log_sync_fits",
           "SNAPSHOT_SIZE_FACTOR_DEFAULT"]

DIFF, TRUNC, SNAP, READ = "DIFF", "TRUNC", "SNAP", "READ"
NOT_READ = object()                   # ``log`` when the disk was not asked yet


@dataclass(frozen=True, slots=True)
class SyncPlan:
    kind: str                  # DIFF, TRUNC, SNAP or READ
    zxid: int = 0              # the DIFF / TRUNC packet's zxid
    txns: tuple[Txn, ...] = ()  # committed txns to send (PROPOSAL + COMMIT each)


def plan_sync(peer: int, history: History, log: Sequence[Txn] | None | object = NOT_READ,
              *, log_sync: bool = True) -> SyncPlan:
    """The sync for a learner whose last zxid is ``peer`` (see the module doc).

    ``log``: NOT_READ before the disk was asked, then what ``LogRead``
    returned (None: no usable log). ``log_sync`` False: never ask the disk.
    """
    last = history.last_zxid
    if peer == last:
        return SyncPlan(DIFF, last)
    if peer > last:
        return SyncPlan(TRUNC, last)
    if peer >= history.base_zxid:
        if history.knows(peer):
            return SyncPlan(DIFF, last, tuple(history.after(peer)))
        known = history.known_at_or_below(peer)
        assert known is not None
        return SyncPlan(TRUNC, known, tuple(history.after(known)))
    if not log_sync or log is None:
        return SyncPlan(SNAP)
    if log is NOT_READ:
        return SyncPlan(READ)
    return _from_log(peer, log, history)  # type: ignore[arg-type]


def _from_log(peer: int, log: Sequence[Txn], history: History) -> SyncPlan:
    """ZooKeeper's queueCommittedProposals over the log, then the history after it."""
    if not log or log[0][0].zxid > peer:
        return SyncPlan(SNAP)        # the log starts after the learner's zxid
    new_epoch_peer = peer & 0xFFFFFFFF == 0   # e<<32: no txn has this zxid
    base = history.base_zxid
    kind: str | None = None
    op_zxid = history.last_zxid
    queued, prev = peer, -1
    out: list[Txn] = []
    for txn in log:
        z = txn[0].zxid
        if z > base:
            break                    # the history holds the rest
        if z < peer:
            prev = z
            continue
        if kind is None:
            if z == peer:
                kind = DIFF
                continue
            if new_epoch_peer:
                kind = DIFF
            elif z >> 32 != peer >> 32:
                return SyncPlan(SNAP)  # a TRUNC may not cross an epoch
            else:
                kind, op_zxid = TRUNC, prev   # the learner logged txns we never had
        if z > queued:
            out.append(txn)
            queued = z
    if kind is None and new_epoch_peer:
        kind = DIFF
    if kind is None or queued < base:
        return SyncPlan(SNAP)        # a gap between the log's end and the history
    return SyncPlan(kind, op_zxid, tuple(out) + tuple(history.after(queued)))


def log_files_for(files: Sequence[tuple[int, int]], zxid: int) -> tuple[int, int] | None:
    """Which log files a read from ``zxid`` takes, and what they weigh.

    ``files``: (starting zxid from the file name, size in bytes), ascending.
    ZooKeeper's FileTxnIterator takes every file starting at or after
    ``zxid`` plus the newest one starting before it, and reads from the
    oldest of those; its getStorageSize, measured once that first file is
    open, sums the sizes of the others. Returns (index of the first file,
    that size), or None without log files.
    """
    if not files:
        return None
    first = 0
    for i, (start, _size) in enumerate(files):
        if start < zxid:
            first = i
    return first, sum(size for _start, size in files[first + 1:])


def log_sync_fits(storage_size: int, snapshot_size: int, factor: float) -> bool:
    """ZooKeeper's snapshotSizeFactor rule: read the log only when it is cheaper.

    ``factor`` < 0 turns reading the log off. The limit is
    ``int(snapshot_size * factor)``; a limit of 0 (no snapshot, or factor 0)
    means no limit, as in ZKDatabase.getProposalsFromTxnLog.
    """
    if factor < 0:
        return False
    limit = int(snapshot_size * factor)
    return limit <= 0 or storage_size <= limit
