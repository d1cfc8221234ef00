"""The ZAB safety properties the simulator checks (Zab paper §3.2 / Zab.tla).

Cheap checks run on every event:

Z1 PrimaryUniqueness (Zab.tla ``PrimaryUniqueness``, paper "at most one
   established leader per epoch"): two peers never both reach BROADCAST as
   leader of the same epoch.
Z2 Integrity / one proposal per zxid: every txn any peer logs or applies
   with a given zxid has the same bytes.
Z3 Total order on each peer: between two rebuilds of its tree a peer applies
   strictly increasing zxids.
Z4 Committed sequence (paper "Agreement"/"Total order"): txns a leader
   commits form one sequence with increasing zxids; a leader established in a
   later epoch has every committed txn in its log (``PrimaryIntegrity``).

Periodic checks (every ``check_every_ms`` and at the end; they cost a
replay):

Z5 Nothing committed is lost: every committed txn is durable on a quorum of
   voters (fsynced log or an installed snapshot covering it).
Z6 Serving peers agree with the committed sequence: a peer serving clients
   (an established leader, a learner past UPTODATE) has applied exactly the
   committed txns up to its last applied zxid — its tree is a prefix of the
   committed sequence. A read-only server is exempt: it serves what it last
   applied, including the txns it logged but never saw committed (applied
   when its role ended, as ZooKeeper fast-forwards its database); Z7 still
   holds for it.
Z7 Each peer's tree equals the replay of its (appended) log up to the last
   zxid it applied (``tree_digest`` compared).

Both periodic checks are incremental, so a check costs what changed since the
last one, not the whole history: Z7 keeps one replayed tree per peer and
applies only the log entries added since (it replays from scratch whenever
the peer restarted, its log was truncated or replaced by a snapshot, an entry
it applied is no longer the same object, or its last applied zxid went back);
Z6 keeps each peer's log as lists of zxids and encoded txns (one encoding per
txn object), extended as the log grows and rebuilt on the same conditions,
and compares one slice of it with one slice of the committed sequence.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from operator import is_
from typing import TYPE_CHECKING

from zabpy.election import QuorumVerifier
from zabpy.storage.snapshot import tree_digest
from zabpy.tree.datatree import DataTree
from zabpy.zab.ready import Snapshot, Txn

from .invariants import SimFailure
from .replica_node import replay, txn_bytes

if TYPE_CHECKING:
    from .replica_node import ReplicaNode

__all__ = ["ZabChecker"]


@dataclass
class _Replayed:
    """A peer's log replayed so far (Z7): ``log[:i]`` applied to ``tree``,
    stopped before the first entry past ``upto``."""

    node: "ReplicaNode"
    snapshot: Snapshot | None
    log: list[Txn]
    i: int
    upto: int
    tree: DataTree
    applied: list[Txn] = field(default_factory=list)    # log[:i], the very objects

    def fits(self, node: "ReplicaNode", upto: int) -> bool:
        """Is this still a prefix of what a full replay of ``node`` to ``upto`` does?
        (A truncate or a snapshot puts a new list in ``node.log``; an entry
        replaced in place is caught by identity, at C speed.)"""
        return (self.node is node and self.snapshot is node.snapshot and self.log is node.log
                and upto >= self.upto and self.i <= len(node.log)
                and all(map(is_, self.applied, node.log)))

    def advance(self, upto: int) -> None:
        log, i, tree = self.log, self.i, self.tree
        while i < len(log):
            hdr, txn = entry = log[i]
            if hdr.zxid > upto:
                break
            tree.apply(hdr, txn)
            self.applied.append(entry)
            i += 1
        self.i, self.upto = i, upto


@dataclass
class _LogBytes:
    """A peer's log as two lists (zxids, encoded txns), extended as the log grows (Z6)."""

    node: "ReplicaNode"
    log: list[Txn]
    txns: list[Txn] = field(default_factory=list)    # the entries listed, the very objects
    zxids: list[int] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    ascending: bool = True      # zxids strictly increase (then a range is a slice)

    def fits(self, node: "ReplicaNode") -> bool:
        return (self.node is node and self.log is node.log and len(self.txns) <= len(node.log)
                and all(map(is_, self.txns, node.log)))

    def extend(self, encode) -> None:
        zxids, raws = self.zxids, self.raws
        for t in self.log[len(zxids):]:
            z = t[0].zxid
            if zxids and z <= zxids[-1]:
                self.ascending = False
            self.txns.append(t)
            zxids.append(z)
            raws.append(encode(t))


class ZabChecker:
    def __init__(self, quorum: QuorumVerifier) -> None:
        self.quorum = quorum
        self.leaders: dict[int, int] = {}          # epoch -> sid established
        self.txns: dict[int, bytes] = {}           # zxid -> bytes, every txn seen
        self.committed: dict[int, bytes] = {}      # zxid -> bytes, in commit order
        self.last_committed = 0
        # ``committed`` as two lists in commit (= zxid) order, for Z6's slices
        self._committed_zxids: list[int] = []
        self._committed_raws: list[bytes] = []
        self._raw: dict[int, tuple[Txn, bytes]] = {}   # id(txn) -> (txn, its bytes)
        self._replayed: dict[int, _Replayed] = {}      # sid -> its log replayed so far (Z7)
        self._log_bytes: dict[int, _LogBytes] = {}     # sid -> its log as lists (Z6)

    def _bytes(self, txn: Txn) -> bytes:
        """``txn_bytes(txn)``, encoded once per txn object (the entry keeps
        the txn alive, so its id is not reused)."""
        hit = self._raw.get(id(txn))
        if hit is not None and hit[0] is txn:
            return hit[1]
        raw = txn_bytes(txn)
        self._raw[id(txn)] = (txn, raw)
        return raw

    def on_established(self, sid: int, epoch: int, node: "ReplicaNode") -> None:
        other = self.leaders.setdefault(epoch, sid)
        if other != sid:
            raise SimFailure(f"Z1: epoch {epoch} established by {other} and {sid}")
        logged = {t[0].zxid for t in node.log}
        base = node.snapshot.zxid if node.snapshot is not None else 0
        in_snapshot = set(node.snapshot_zxids)
        for zxid in self.committed:
            if zxid not in logged and (zxid > base or zxid not in in_snapshot):
                raise SimFailure(f"Z4: leader {sid} of epoch {epoch} lacks committed {zxid:#x}")
        # Establishing commits the leader's whole history (Zab phase 2): what its
        # snapshot holds, then its log.
        for zxid in node.snapshot_zxids:
            if zxid not in self.committed:
                self._commit(zxid, self.txns[zxid], sid)
        for txn in node.log:
            self._commit(txn[0].zxid, self._bytes(txn), sid)

    def on_logged(self, sid: int, txn, raw: bytes | None = None) -> None:
        """``raw``: the txn as encoded for the log, when the writer has it."""
        zxid, raw = txn[0].zxid, raw if raw is not None else self._bytes(txn)
        seen = self.txns.setdefault(zxid, raw)
        if seen != raw:
            raise SimFailure(f"Z2: peer {sid} logged a different txn at {zxid:#x}")

    def on_applied(self, sid: int, node: "ReplicaNode") -> None:
        a = node.applied
        if len(a) >= 2 and a[-1] <= a[-2]:
            raise SimFailure(f"Z3: peer {sid} applied {a[-1]:#x} after {a[-2]:#x}")

    def on_leader_commit(self, sid: int, txn) -> None:
        self._commit(txn[0].zxid, self._bytes(txn), sid)

    def _commit(self, zxid: int, raw: bytes, sid: int) -> None:
        seen = self.committed.get(zxid)
        if seen is not None:
            if seen != raw:
                raise SimFailure(f"Z4: {zxid:#x} committed with two contents")
            return
        if zxid <= self.last_committed:
            raise SimFailure(f"Z4: leader {sid} commits {zxid:#x} after {self.last_committed:#x}")
        self.committed[zxid] = raw
        self._committed_zxids.append(zxid)
        self._committed_raws.append(raw)
        self.last_committed = zxid

    # ---- periodic ---------------------------------------------------------------
    def check_durable(self, disks: dict) -> None:
        """Z5, over every peer's disk (crashed peers included)."""
        for zxid in self._committed_zxids[-200:]:
            holders = [sid for sid, disk in disks.items() if disk.contains(zxid)]
            if not self.quorum.contains_quorum(holders):
                raise SimFailure(f"Z5: committed {zxid:#x} durable only on {holders}")

    def check_serving(self, sid: int, node: "ReplicaNode") -> None:
        """Z6: a serving peer's applied state is a prefix of the committed sequence."""
        upto = node.tree.last_processed_zxid
        base = node.snapshot.zxid if node.snapshot is not None else 0
        lb = self._log_bytes.get(sid)
        if lb is None or not lb.fits(node):
            lb = self._log_bytes[sid] = _LogBytes(node, node.log)
        lb.extend(self._bytes)
        if lb.ascending:
            a, b = bisect_right(lb.zxids, base), bisect_right(lb.zxids, upto)
            zxids, raws = lb.zxids[a:b], lb.raws[a:b]
        else:
            zxids = [z for z in lb.zxids if base < z <= upto]
            raws = [r for z, r in zip(lb.zxids, lb.raws) if base < z <= upto]
        # committed zxids only increase, so the wanted part is one slice; the
        # same lists in the same order are the same mapping
        lo = bisect_right(self._committed_zxids, base)
        hi = bisect_right(self._committed_zxids, upto)
        if zxids == self._committed_zxids[lo:hi] and raws == self._committed_raws[lo:hi]:
            return
        mine = dict(zip(zxids, raws))
        want = {z: b for z, b in self.committed.items() if base < z <= upto}
        if mine != want:
            extra = sorted(set(mine) - set(want))[:3]
            missing = sorted(set(want) - set(mine))[:3]
            raise SimFailure(f"Z6: serving peer {sid} differs from the committed sequence up to "
                             f"{upto:#x}: extra {[hex(z) for z in extra]}, "
                             f"missing {[hex(z) for z in missing]}")

    def check_replay(self, sid: int, node: "ReplicaNode") -> None:
        """Z7: the tree is the replay of the log up to the last applied zxid."""
        upto = node.tree.last_processed_zxid
        done = self._replayed.get(sid)
        if done is None or not done.fits(node, upto):
            done = _Replayed(node, node.snapshot, node.log, 0, 0, replay(node.snapshot, [], None))
            self._replayed[sid] = done
        done.advance(upto)
        ref = done.tree
        if tree_digest(ref) != tree_digest(node.tree) or len(ref.nodes) != len(node.tree.nodes):
            raise SimFailure(f"Z7: peer {sid} tree differs from its log replayed to {upto:#x}")
