"""A simulated ZAB peer: the ``Peer`` core, a DataTree, and a disk that can tear.

``SimDisk`` survives crashes. It holds what was fsynced: the epochs, an
optional snapshot image (installed by a SNAP) and the txn log. ``ZabNode``
holds what a process holds: the ``Peer`` core, the tree, the *appended* log
(durable part plus writes not yet fsynced) and the fsync queue.

Executing a ``PeerReady`` (ready.py gives the contract): each ``Persist`` is
applied to the appended state at once (truncate rebuilds the tree, as
ZooKeeper reloads its database; a snapshot replaces the tree) and queued for
fsync with a seeded delay; when its fsync completes, it is applied to the
disk and its ``then`` packets leave. Commits are applied to the tree in
order. A crash drops the node: the disk keeps the fsynced Persists, plus,
when the seed says so, a prefix of the next unsynced records and a torn
partial record; restart encodes the log in ZooKeeper's format, runs the real
``scan_log`` over it (which discards the torn tail) and replays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zabpy.election import QuorumVerifier
from zabpy.jute import records as R
from zabpy.limits import ZAB_LOG_TAIL_MAX
from zabpy.storage.txnlog import decode_payload, encode_entry, encode_file_header, scan_log
from zabpy.tree.datatree import DataTree
from zabpy.zab import packets as P
from zabpy.zab.leader import ZabTimers
from zabpy.zab.peer import Peer, PeerLog, PeerReady
from zabpy.zab.ready import Persist, Snapshot, Txn

__all__ = ["SimDisk", "ZabNode", "replay"]


@dataclass
class SimDisk:
    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot: Snapshot | None = None
    log: list[Txn] = field(default_factory=list)

    def apply(self, p: Persist) -> None:
        if p.truncate_zxid is not None:
            assert self.snapshot is None or p.truncate_zxid >= self.snapshot.zxid
            self.log = [t for t in self.log if t[0].zxid <= p.truncate_zxid]
        if p.snapshot is not None:
            self.snapshot, self.log = p.snapshot, []
        self.log.extend(p.records)
        if p.accepted_epoch is not None:
            self.accepted_epoch = p.accepted_epoch
        if p.current_epoch is not None:
            self.current_epoch = p.current_epoch

    def base_zxid(self) -> int:
        return self.snapshot.zxid if self.snapshot is not None else 0

    def contains(self, zxid: int) -> bool:
        return zxid <= self.base_zxid() or any(t[0].zxid == zxid for t in self.log)


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


class ZabNode:
    def __init__(self, sid: int, quorum: QuorumVerifier, disk: SimDisk, rng: random.Random,
                 timers: ZabTimers, now_ms: int, **peer_options: int) -> None:
        self.sid = sid
        self.disk = disk
        self.rng = rng
        self.snapshot = disk.snapshot
        self.log: list[Txn] = list(disk.log)
        self.tree = replay(self.snapshot, self.log)
        tail = self.log[-ZAB_LOG_TAIL_MAX:]
        base = disk.base_zxid() if len(tail) == len(self.log) else self.log[-len(tail) - 1][0].zxid
        plog = PeerLog(disk.accepted_epoch, disk.current_epoch, base, tuple(tail))
        self.peer = Peer(sid, quorum, plog, rng, timers=timers,
                         snapshot_source=self._snapshot_source, **peer_options)
        self.fsync_queue: list[tuple[int, Persist]] = []
        self.applied: list[int] = []   # zxids applied since the tree was last rebuilt

    def _snapshot_source(self) -> Snapshot:
        return Snapshot(self.tree.last_processed_zxid, P.snapshot_bytes(self.tree, {}))

    @classmethod
    def restart(cls, sid: int, quorum: QuorumVerifier, disk: SimDisk, rng: random.Random,
                timers: ZabTimers, now_ms: int, **peer_options: int) -> "ZabNode":
        disk.log = _recover_log(disk.log, b"")
        return cls(sid, quorum, disk, rng, timers, now_ms, **peer_options)

    # ---- executing a ready ------------------------------------------------------
    def execute(self, ready: PeerReady, now_ms: int, fsync_ms: int) -> None:
        """Apply persists to the appended state and queue their fsync; apply commits."""
        for p in ready.zab.persist:
            self._apply_volatile(p)
            last = self.fsync_queue[-1][0] if self.fsync_queue else now_ms
            self.fsync_queue.append((max(last, now_ms + fsync_ms), p))
        for hdr, txn in ready.zab.commit:
            assert any(t[0].zxid == hdr.zxid for t in reversed(self.log)), \
                f"peer {self.sid} commits {hdr.zxid:#x}, which it never logged"
            self.tree.apply(hdr, txn)
            self.applied.append(hdr.zxid)

    def _apply_volatile(self, p: Persist) -> None:
        if p.truncate_zxid is not None:
            self.log = [t for t in self.log if t[0].zxid <= p.truncate_zxid]
            self.tree = replay(self.snapshot, self.log)
            self.applied = []
        if p.snapshot is not None:
            self.snapshot, self.log = p.snapshot, []
            self.tree = replay(self.snapshot, [])
            self.applied = []
        self.log.extend(p.records)

    def fsync_due(self, now_ms: int) -> list[Persist]:
        """Persists whose fsync completed by now (their ``then`` may leave)."""
        done = []
        while self.fsync_queue and self.fsync_queue[0][0] <= now_ms:
            _, p = self.fsync_queue.pop(0)
            self.disk.apply(p)
            done.append(p)
        return done

    def next_fsync_ms(self) -> int | None:
        return self.fsync_queue[0][0] if self.fsync_queue else None

    def crash(self, rng: random.Random) -> None:
        """Keep the fsynced state; maybe some unsynced records and a torn one."""
        if not self.fsync_queue or rng.random() < 0.5:
            return
        _, p = self.fsync_queue[0]
        if p.truncate_zxid is not None or p.snapshot is not None or not p.records:
            return
        keep = rng.randint(0, len(p.records) - 1)
        entries = self.disk.log + list(p.records[:keep])
        nxt = encode_entry(*p.records[keep])
        torn = nxt[:rng.randint(1, len(nxt) - 1)]
        self.disk.log = _recover_log(entries, torn)

    def last_logged(self) -> int:
        return self.log[-1][0].zxid if self.log else (self.snapshot.zxid if self.snapshot else 0)


def txn_bytes(txn: Txn) -> bytes:
    return P.proposal(*txn).data or b""


def make_txn(seq: int, rng: random.Random, existing: list[str]) -> tuple[R.TxnHeader, object]:
    """A workload txn: create a new node or set data on an existing one."""
    from zabpy.jute.constants import OpCode
    from zabpy.tree.acl import OPEN_ACL_UNSAFE
    if existing and rng.random() < 0.4:
        path = rng.choice(existing)
        return (R.TxnHeader(0x100 + seq % 3, seq, 0, 1000 + seq, OpCode.setData),
                R.SetDataTxn(path, f"v{seq}".encode(), seq))
    path = f"/n{seq}"
    existing.append(path)
    return (R.TxnHeader(0x100 + seq % 3, seq, 0, 1000 + seq, OpCode.create),
            R.CreateTxn(path, f"d{seq}".encode(), list(OPEN_ACL_UNSAFE), False, -1))
