"""Shared helpers for the storage tests: a seeded txn workload, a store
written with it and reopened, and tree comparison.

``Workload`` produces valid txns of every kind ZooKeeper logs (session
create/close, create in all modes, setData, setACL, delete, multi that
succeed and multi that fail, error txns) against a model ``DataTree`` it
applies them to, so the txns are exactly what a server would have logged.
"""

from __future__ import annotations

import os
import random

from zabpy.jute import records as R
from zabpy.jute.codec import encode
from zabpy.jute.constants import Err, OpCode
from zabpy.storage import TxnStore, tree_digest
from zabpy.tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, digest_id
from zabpy.tree.datatree import DataTree

# bob:pw, so a client that authenticates as bob may read the ACL unredacted.
DIGEST_ACL = (R.ACL(31, R.Id("digest", digest_id("bob:pw"))),
              R.ACL(1, R.Id("world", "anyone")))
ACLS = (OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, DIGEST_ACL)


class Workload:
    """Generates (TxnHeader, record) pairs and applies them to ``self.tree``."""

    def __init__(self, seed: int = 0, zxid: int = 0, time_ms: int = 1_700_000_000_000,
                 timeouts: tuple[int, ...] = (4000, 10000, 30000)):
        self.timeouts = timeouts
        self.rng = random.Random(seed)
        self.tree = DataTree()
        self.sessions: dict[int, int] = {}
        self.zxid = zxid
        self.time_ms = time_ms
        self.serial = 0
        self.next_session = 0x1000

    def _hdr(self, session: int, op: int) -> R.TxnHeader:
        self.zxid += 1
        self.time_ms += 7
        return R.TxnHeader(session, self.zxid & 0x7FFFFFFF, self.zxid, self.time_ms, op)

    def _apply(self, hdr, txn):
        if hdr.type == OpCode.createSession:
            self.sessions[hdr.clientId] = txn.timeOut
        elif hdr.type == OpCode.closeSession:
            self.sessions.pop(hdr.clientId, None)
        self.tree.apply(hdr, txn)
        return hdr, txn

    def _paths(self) -> list[str]:
        return [p for p in self.tree.nodes if not p.startswith("/zookeeper") and p != "/"]

    def _new_child(self) -> tuple[str, int]:
        parents = ["/"] + [p for p in self._paths() if self.tree.nodes[p].ephemeral_owner == 0]
        parent = self.rng.choice(parents)
        self.serial += 1
        path = ("" if parent == "/" else parent) + f"/n{self.serial:010d}"
        return path, self.tree.nodes[parent].cversion + 1

    def _create_txn(self):
        path, pcv = self._new_child()
        data = self.rng.randbytes(self.rng.randrange(0, 40))
        acl = list(self.rng.choice(ACLS))
        kind = self.rng.randrange(6)
        if kind == 0 and self.sessions:
            return OpCode.create, R.CreateTxn(path, data, acl, True, pcv), self.rng.choice(list(self.sessions))
        if kind == 1:
            return OpCode.createContainer, R.CreateContainerTxn(path, data, acl, pcv), 0
        if kind == 2:
            return OpCode.createTTL, R.CreateTTLTxn(path, data, acl, pcv, 60_000), 0
        return OpCode.create2 if kind == 3 else OpCode.create, R.CreateTxn(path, data, acl, False, pcv), 0

    def step(self) -> tuple[R.TxnHeader, R.Record | None]:
        r = self.rng.random()
        paths = self._paths()
        if r < 0.06 or not self.sessions:
            self.next_session += 1
            return self._apply(self._hdr(self.next_session, OpCode.createSession),
                               R.CreateSessionTxn(self.rng.choice(self.timeouts)))
        if r < 0.09:
            sid = self.rng.choice(list(self.sessions))
            owned = sorted(self.tree.ephemerals.get(sid, {}))
            return self._apply(self._hdr(sid, OpCode.closeSession), R.CloseSessionTxn(owned))
        if r < 0.45 or not paths:
            op, txn, owner = self._create_txn()
            return self._apply(self._hdr(owner or self.next_session, op), txn)
        path = self.rng.choice(paths)
        node = self.tree.nodes[path]
        if r < 0.65:
            txn = R.SetDataTxn(path, self.rng.randbytes(self.rng.randrange(0, 60)), node.version + 1)
            return self._apply(self._hdr(self.next_session, OpCode.setData), txn)
        if r < 0.70:
            txn = R.SetACLTxn(path, list(self.rng.choice(ACLS)), node.aversion + 1)
            return self._apply(self._hdr(self.next_session, OpCode.setACL), txn)
        if r < 0.80 and not node.children:
            return self._apply(self._hdr(self.next_session, OpCode.delete), R.DeleteTxn(path))
        if r < 0.90:
            return self._apply(self._hdr(self.next_session, OpCode.multi), self._multi(path))
        if r < 0.95:
            subs = [R.Txn(OpCode.error, encode(R.ErrorTxn(Err.OK))),
                    R.Txn(OpCode.error, encode(R.ErrorTxn(Err.BADVERSION)))]
            return self._apply(self._hdr(self.next_session, OpCode.multi), R.MultiTxn(subs))
        return self._apply(self._hdr(self.next_session, OpCode.error), R.ErrorTxn(Err.NONODE))

    def _multi(self, path: str) -> R.MultiTxn:
        node = self.tree.nodes[path]
        child, pcv = self._new_child()
        subs = [R.Txn(OpCode.check, encode(R.CheckVersionTxn(path, node.version))),
                R.Txn(OpCode.setData, encode(R.SetDataTxn(path, b"multi", node.version + 1))),
                R.Txn(OpCode.create, encode(R.CreateTxn(child, b"m", list(OPEN_ACL_UNSAFE), False, pcv)))]
        return R.MultiTxn(subs)

    def txns(self, n: int) -> list[tuple[R.TxnHeader, R.Record | None]]:
        return [self.step() for _ in range(n)]


def write_workload(store: TxnStore, w: Workload, n: int, *, flush_every: int,
                   snap_at: tuple[int, ...] = (), digests: bool = False,
                   wrong_last_digest: bool = False) -> TxnStore:
    """Run ``n`` txns of ``w`` through ``store`` (restored from nothing): a
    flush every ``flush_every`` txns and at each of ``snap_at``, where a
    snapshot follows; each txn with the tree's digest if ``digests`` (the
    last one off by one if ``wrong_last_digest``). The store is flushed and
    closed at the end."""
    store.restore(DataTree())
    for i in range(n):
        hdr, txn = w.step()
        off = wrong_last_digest and i == n - 1
        store.append(hdr, txn, R.TxnDigest(2, tree_digest(w.tree) + off) if digests else None)
        if i % flush_every == 0 or i in snap_at:
            store.flush_and_sync()
        if i in snap_at:
            store.snapshot_now(w.tree, w.sessions)
    store.flush_and_sync()
    store.close()
    return store


def reopened(store: TxnStore) -> tuple[DataTree, dict[int, int], TxnStore]:
    """``store`` restored into a new tree: the tree, the sessions, the store."""
    tree = DataTree()
    sessions = store.restore(tree)
    return tree, sessions, store


def tree_image(tree: DataTree) -> dict:
    """Everything a snapshot must preserve, in a comparable form."""
    out = {}
    for path, node in tree.nodes.items():
        out[path] = (node.data, tuple(node.acl), node.stat_persisted(), sorted(node.children))
    return out


def assert_same_tree(a: DataTree, b: DataTree) -> None:
    ia, ib = tree_image(a), tree_image(b)
    assert sorted(ia) == sorted(ib)
    for path in ia:
        assert ia[path] == ib[path], path
    assert {k: sorted(v) for k, v in a.ephemerals.items()} == {k: sorted(v) for k, v in b.ephemerals.items()}
    assert sorted(a.containers) == sorted(b.containers)
    assert sorted(a.ttls) == sorted(b.ttls)
    assert a.last_processed_zxid == b.last_processed_zxid


def sockets_of(pid: int) -> list[str]:
    """The sockets process ``pid`` holds open (from /proc)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.append(target)
    return out
