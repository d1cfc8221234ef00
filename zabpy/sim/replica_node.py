"""A simulated ensemble member: the real ``Replica`` over a disk that can tear.

``SimDisk`` survives crashes. It holds what was fsynced: the epochs, an
optional snapshot image (installed by a SNAP) and the txn log.
``ReplicaNode`` holds what a process holds: the ``Replica`` (election, ZAB,
the role's server core and the tree), the *appended* log (the durable part
plus writes not yet fsynced) and the fsync queue.

Carrying out a ``Ready``'s disk writes: each ``DiskWrite`` is applied to the
appended log at once and queued for fsync with a seeded delay; when its
fsync completes it is applied to the disk and the replica hears
``durable(token)`` — for a run of plain appends, once for the run (group
commit); a truncating or snapshot-installing write reports alone, with the
tree its disk now replays to. A crash keeps the disk: the fsynced writes,
plus, when the seed says so, a prefix of the next unsynced records and a
torn partial record; restart writes the log in ZooKeeper's format, runs the
real ``scan_log`` over it (which drops the torn tail) and replays.

A ``LogRead`` (a leader's DIFF from its log) completes after the fsyncs
queued before it, with a seeded delay, and reads the disk as it then is: its
log since the last installed snapshot is one log file, measured and chosen
by the same rule (``zab.sync``) the runtime applies to real files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from zabpy.election import QuorumVerifier
from zabpy.server.replica import DiskWrite, Loaded, LogRead, Replica
from zabpy.server.settings import ServerSettings
from zabpy.storage.txnlog import decode_payload, encode_entry, encode_file_header, scan_log
from zabpy.tree.datatree import DataTree, replay_txn
from zabpy.zab import packets as P
from zabpy.zab.leader import ZabTimers
from zabpy.zab.ready import Snapshot, Txn
from zabpy.zab.sync import log_files_for, log_sync_fits

__all__ = ["SimDisk", "ReplicaNode", "replay", "txn_bytes"]


@dataclass
class SimDisk:
    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot: Snapshot | None = None
    log: list[Txn] = field(default_factory=list)
    snapshot_zxids: tuple[int, ...] = ()       # the txns the snapshot's tree holds
    _zxids: set[int] | None = field(default=None, repr=False)   # what ``log`` holds

    def apply(self, w: DiskWrite, snapshot_zxids: tuple[int, ...] = ()) -> Loaded | None:
        """Carry out ``w``; a reloading write returns the tree left after its
        truncate / snapshot, before its records (what the replica reloads)."""
        loaded = None
        if w.truncate_zxid is not None:
            assert self.snapshot is None or w.truncate_zxid >= self.snapshot.zxid
            self.log = [t for t in self.log if t[0].zxid <= w.truncate_zxid]
        if w.snapshot is not None:
            self.snapshot, self.log = w.snapshot, []
            self.snapshot_zxids = snapshot_zxids
        if w.reloads:
            loaded = self.load()
        self.log.extend(w.records)
        if w.reloads:
            self._zxids = None
        elif self._zxids is not None:
            self._zxids.update(t[0].zxid for t in w.records)
        if w.accepted_epoch is not None:
            self.accepted_epoch = w.accepted_epoch
        if w.current_epoch is not None:
            self.current_epoch = w.current_epoch
        return loaded

    def history(self) -> list[int]:
        """The zxids of every txn the tree ``load()`` rebuilds has applied."""
        return list(self.snapshot_zxids) + [t[0].zxid for t in self.log]

    def base_zxid(self) -> int:
        return self.snapshot.zxid if self.snapshot is not None else 0

    def contains(self, zxid: int) -> bool:
        if zxid <= self.base_zxid():
            return True
        if self._zxids is None:
            self._zxids = {t[0].zxid for t in self.log}
        return zxid in self._zxids

    def load(self) -> Loaded:
        """What a restart (or ZooKeeper's database reload) rebuilds from this disk."""
        tree = DataTree()
        sessions = {}
        if self.snapshot is not None:
            sessions = P.load_snapshot_bytes(self.snapshot.data, tree, self.snapshot.zxid)
        for hdr, txn in self.log:
            replay_txn(tree, sessions, hdr, txn)
        return Loaded(tree, sessions)


def replay(snapshot: Snapshot | None, log: list[Txn], upto: int | None = None) -> DataTree:
    """The tree a snapshot plus a log replay gives (what a restart rebuilds)."""
    tree = DataTree()
    if snapshot is not None:
        P.load_snapshot_bytes(snapshot.data, tree, snapshot.zxid)
    for hdr, txn in log:
        if upto is not None and hdr.zxid > upto:
            break
        tree.apply(hdr, txn)
    return tree


def txn_bytes(txn: Txn) -> bytes:
    return P.proposal(*txn).data or b""


def _recover_log(entries: list[Txn], torn: bytes) -> list[Txn]:
    """Write the log as ZooKeeper would, tear its tail, and read it back."""
    image = encode_file_header() + b"".join(encode_entry(h, t) for h, t in entries) + torn
    scan = scan_log(image)
    assert scan.valid_after is None, "the simulated log is corrupt, not torn"
    out = []
    for _, _, payload in scan.entries:
        hdr, txn, _ = decode_payload(payload)
        out.append((hdr, txn))
    return out


class ReplicaNode:
    def __init__(self, sid: int, quorum: QuorumVerifier, disk: SimDisk, rng: random.Random,
                 settings: ServerSettings, timers: ZabTimers, now_ms: int,
                 snapshot_history: Callable[[Snapshot], tuple[int, ...]],
                 **peer_options: int) -> None:
        self.sid = sid
        self.disk = disk
        self.snapshot_history = snapshot_history
        disk.log, disk._zxids = _recover_log(disk.log, b""), None
        self.snapshot = disk.snapshot
        self.snapshot_zxids = disk.snapshot_zxids
        self.log: list[Txn] = list(disk.log)
        self.applied: list[int] = disk.history()   # zxids the replica's tree holds, in order
        loaded = disk.load()
        self.replica = Replica(settings, quorum, loaded.tree, loaded.sessions,
                               disk.accepted_epoch, disk.current_epoch, rng, now_ms,
                               timers=timers, **peer_options)
        self.fsync_queue: list[tuple[int, DiskWrite, tuple[int, ...]]] = []
        self.read_queue: list[tuple[int, LogRead]] = []
        # the replica's next deadline and ``busy``, as of the last Ready the simulator took
        self.deadline_ms: int | None = None
        self.busy = False

    @property
    def tree(self) -> DataTree:
        return self.replica.tree

    @property
    def peer(self):
        return self.replica.peer

    def reloading(self) -> bool:
        return any(w.reloads for _, w, _ in self.fsync_queue)

    # ---- disk writes -----------------------------------------------------------------
    def submit(self, w: DiskWrite, now_ms: int, fsync_ms: int) -> None:
        if w.truncate_zxid is not None:
            self.log = [t for t in self.log if t[0].zxid <= w.truncate_zxid]
        zxids: tuple[int, ...] = ()
        if w.snapshot is not None:
            self.snapshot, self.log = w.snapshot, []
            self.snapshot_zxids = zxids = self.snapshot_history(w.snapshot)
        self.log.extend(w.records)
        last = self.fsync_queue[-1][0] if self.fsync_queue else now_ms
        self.fsync_queue.append((max(last, now_ms + fsync_ms), w, zxids))

    def fsync_due(self, now_ms: int) -> list[tuple[int, Loaded | None]]:
        """(token, loaded) reports for the writes whose fsync completed by now."""
        out: list[tuple[int, Loaded | None]] = []
        while self.fsync_queue and self.fsync_queue[0][0] <= now_ms:
            _, w, zxids = self.fsync_queue.pop(0)
            loaded = self.disk.apply(w, zxids)
            if loaded is not None:
                out.append((w.token, loaded))
                # the zxids of the tree the replica now takes: the disk's before the records
                history = self.disk.history()
                self.applied = history[:len(history) - len(w.records)]
            elif out and out[-1][1] is None:
                out[-1] = (w.token, None)      # group commit: one report for the run
            else:
                out.append((w.token, None))
        return out

    def next_fsync_ms(self) -> int | None:
        times = [q[0][0] for q in (self.fsync_queue, self.read_queue) if q]
        return min(times) if times else None

    # ---- log reads ---------------------------------------------------------------------
    def submit_read(self, r: LogRead, now_ms: int, delay_ms: int) -> None:
        last = self.fsync_queue[-1][0] if self.fsync_queue else now_ms
        self.read_queue.append((max(last, now_ms + delay_ms), r))

    def reads_due(self, now_ms: int, factor: float) -> list[tuple[int, tuple[Txn, ...] | None]]:
        out = []
        while self.read_queue and self.read_queue[0][0] <= now_ms:
            _, r = self.read_queue.pop(0)
            out.append((r.token, self._read(r, factor)))
        return out

    def _read(self, r: LogRead, factor: float) -> tuple[Txn, ...] | None:
        log = self.disk.log
        if not log:
            return None
        size = sum(len(encode_entry(h, t)) for h, t in log)
        chosen = log_files_for([(log[0][0].zxid, size)], r.after_zxid)
        snap_size = len(self.disk.snapshot.data) if self.disk.snapshot is not None else 0
        if chosen is None or not log_sync_fits(chosen[1], snap_size, factor):
            return None
        return tuple(t for t in log if t[0].zxid <= r.upto_zxid)

    def crash(self, rng: random.Random) -> None:
        """Keep the fsynced state; maybe some unsynced records and a torn one."""
        if not self.fsync_queue or rng.random() < 0.5:
            return
        _, w, _ = self.fsync_queue[0]
        if not w.append_only or not w.records:
            return
        keep = rng.randint(0, len(w.records) - 1)
        entries = self.disk.log + list(w.records[:keep])
        nxt = encode_entry(*w.records[keep])
        torn = nxt[:rng.randint(1, len(nxt) - 1)]
        self.disk.log, self.disk._zxids = _recover_log(entries, torn), None

    def last_logged(self) -> int:
        return self.log[-1][0].zxid if self.log else (self.snapshot.zxid if self.snapshot else 0)
