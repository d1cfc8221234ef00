"""Log replay's fast path (zabpy/storage/replay.py) builds what the general path builds.

``restore(..., fast_replay=False)`` runs every logged txn through
decode_payload and replay_txn (the reference); the default takes the common
txns through ``FastApplier``. Generated logs — creates of every kind
(ephemeral, sequential-style parent cversions, containers, TTLs), deletes,
setData and reconfig, setACL, ACLs shared and not, null data, sessions
opened and closed (with and without paths2Delete), error txns, multis that
succeed and that failed, quota limits and stats nodes, TxnDigests, txns that
fail on replay (NODEEXISTS, NONODE) and torn or corrupt tails — are restored
both ways; the trees (every node's record, ACL and child order), the
sessions, the RestoreResult and the files left behind must be the same.

Reference: zookeeper-facts.md section 4.1 (log entry layout) and 4.3
(restore and torn tails); ZooKeeper's FileTxnSnapLog.restore / processTransaction.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from zabpy.jute import records as R
from zabpy.jute.constants import OP
from zabpy.storage import StorageError, write_snapshot_file
from zabpy.storage.recovery import restore
from zabpy.storage.replay import UNHANDLED, FastApplier
from zabpy.storage.snapshot import tree_digest
from zabpy.storage.txnlog import (LogScan, encode_entry, encode_file_header, encode_payload,
                                  iter_records, scan_log)
from zabpy.tree.datatree import DataTree, replay_txn

OPEN = [R.ACL(31, R.Id("world", "anyone"))]
ACLS = [OPEN, [R.ACL(1, R.Id("world", "anyone"))],
        [R.ACL(31, R.Id("digest", "u:abc=")), R.ACL(1, R.Id("world", "anyone"))],
        [R.ACL(31, R.Id("ip", "127.0.0.1"))], [], None]
PATHS = ["/a", "/a/b", "/a/b/c", "/c", "/c/d", "/e", "/a/f", "/zookeeper/config"]
QUOTA_SETUP = [("/zookeeper/quota/a", b""),
               ("/zookeeper/quota/a/zookeeper_limits", b"count=5,bytes=100"),
               ("/zookeeper/quota/a/zookeeper_stats", b"count=0,bytes=0")]


class LogGen:
    """Random txns over a small set of paths, so creates, deletes and
    setData both hit and miss (a replay applies failed ops as no-ops)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.zxid = 0
        self.sessions = [0x100 + i for i in range(4)]
        self.entries: list[bytes] = []
        self.model = DataTree()  # the tree so far, to pick paths ZooKeeper could have logged

    def hdr(self, session: int, op: int) -> R.TxnHeader:
        self.zxid += 1
        return R.TxnHeader(session, self.zxid, self.zxid, 1_700_000_000_000 + self.zxid, op)

    def data(self):
        r = self.rng.random()
        return None if r < 0.1 else b"" if r < 0.2 else bytes(self.rng.randrange(256)
                                                             for _ in range(self.rng.randrange(40)))

    def path(self) -> str:
        """Any path: a node that exists or one that does not."""
        if self.rng.random() < 0.6:
            return self.rng.choice(list(self.model.nodes))
        p = self.rng.choice(PATHS)
        return p if self.rng.random() < 0.7 else f"{p}/n{self.rng.randrange(12):010d}"

    def new_path(self) -> str:
        """Under a node that may hold children (not an ephemeral, as
        ZooKeeper's prep refuses), or now and then under a missing one."""
        nodes = self.model.nodes
        parents = [p for p, n in nodes.items() if n.ephemeral_owner == 0] \
            if self.rng.random() < 0.9 else PATHS
        parent = self.rng.choice(parents)
        return f"{'' if parent == '/' else parent}/n{self.rng.randrange(12):010d}"

    def leaf(self) -> str:
        """What a delete names: a node without children (ZooKeeper's prep
        refuses the rest), or a missing one."""
        leaves = [p for p, n in self.model.nodes.items()
                  if n.child_count() == 0 and not p.startswith("/zookeeper")]
        return self.rng.choice(leaves) if leaves and self.rng.random() < 0.8 else self.path() + "/x"

    def record(self, op: int):
        rng = self.rng
        cv = rng.choice([-1, rng.randrange(20)])
        if op in (OP.create, OP.create2):
            return R.CreateTxn(self.new_path(), self.data(), rng.choice(ACLS), rng.random() < 0.3, cv)
        if op == OP.createContainer:
            return R.CreateContainerTxn(self.new_path(), self.data(), rng.choice(ACLS), cv)
        if op == OP.createTTL:
            return R.CreateTTLTxn(self.new_path(), self.data(), rng.choice(ACLS), cv,
                                  rng.randrange(1, 1 << 40))
        if op in (OP.delete, OP.deleteContainer):
            return R.DeleteTxn(self.leaf())
        if op == OP.setData:
            return R.SetDataTxn(self.path(), self.data(), rng.randrange(-1, 5))
        if op == OP.reconfig:
            return R.SetDataTxn("/zookeeper/config", self.data(), rng.randrange(5))
        if op == OP.setACL:
            return R.SetACLTxn(self.path(), rng.choice(ACLS[:-1]), rng.randrange(5))
        if op == OP.check:
            return R.CheckVersionTxn(self.path(), rng.randrange(5))
        if op == OP.error:
            return R.ErrorTxn(rng.choice([-101, -110, -103]))
        raise AssertionError(op)

    def multi(self) -> R.MultiTxn:
        rng = self.rng
        ops = [rng.choice([OP.create, OP.create2, OP.delete, OP.setData, OP.check,
                           OP.createContainer, OP.createTTL])
               for _ in range(rng.randrange(1, 5))]
        ops.sort(key=lambda op: op != OP.delete)  # no create under a node deleted later on
        subs = [R.Txn(op, self.record(op).to_bytes()) for op in ops]
        r = rng.random()
        if r < 0.15:  # a failed multi: an error txn for each op, as ZooKeeper logs it
            subs = [R.Txn(OP.error, R.ErrorTxn(rng.choice([0, -101, -2])).to_bytes())
                    for _ in subs]
        elif r < 0.3:  # the real txns of the ops before the failing one, then its error
            subs.insert(rng.randrange(len(subs) + 1), R.Txn(OP.error, R.ErrorTxn(-101).to_bytes()))
        if rng.random() < 0.1:  # a sub-txn that only the general path applies
            subs.append(R.Txn(OP.setACL, R.SetACLTxn("/a", OPEN, 1).to_bytes()))
        return R.MultiTxn(subs)

    def step(self) -> None:
        rng = self.rng
        session = rng.choice(self.sessions + [0])
        r = rng.random()
        if r < 0.05:
            session = self.sessions[-1] + 1
            self.sessions.append(session)
            hdr, txn = self.hdr(session, OP.createSession), R.CreateSessionTxn(rng.randrange(30000))
        elif r < 0.09:
            hdr = self.hdr(session, OP.closeSession)
            txn = rng.choice([None, R.CloseSessionTxn([]), R.CloseSessionTxn([self.leaf()])])
        elif r < 0.16:
            hdr, txn = self.hdr(session, OP.multi), self.multi()
        else:
            op = rng.choice([OP.create] * 6 + [OP.create2, OP.createContainer, OP.createTTL,
                                               OP.delete, OP.delete, OP.deleteContainer,
                                               OP.setData, OP.setData, OP.reconfig, OP.setACL,
                                               OP.error, OP.check])
            hdr, txn = self.hdr(session, op), self.record(op)
        self.add(hdr, txn)

    def add(self, hdr, txn) -> None:
        digest = None
        # (a closeSession without its record never has a digest: the reader
        # could not tell the digest from a CloseSessionTxn, nor can ZooKeeper's)
        if self.rng.random() < 0.2 and txn is not None:
            digest = R.TxnDigest(self.rng.choice([2, 2, 1]), self.rng.randrange(-1 << 63, 1 << 63))
        self.entries.append(encode_entry(hdr, txn, digest))
        replay_txn(self.model, {}, hdr, txn)


def build(seed: int, n: int, quota: bool) -> LogGen:
    gen = LogGen(random.Random(seed))
    for s in gen.sessions:
        gen.add(gen.hdr(s, OP.createSession), R.CreateSessionTxn(10_000))
    gen.add(gen.hdr(gen.sessions[0], OP.create), R.CreateTxn("/a", b"x", OPEN, False, -1))
    if quota:
        for path, data in QUOTA_SETUP:
            gen.add(gen.hdr(gen.sessions[0], OP.create), R.CreateTxn(path, data, OPEN, False, -1))
    for _ in range(n):
        gen.step()
    return gen


def write_dir(d: str, entries: list[bytes], tail: bytes = b"") -> None:
    v = os.path.join(d, "version-2")
    os.makedirs(v)
    write_snapshot_file(v, DataTree(), {}, 0)
    with open(os.path.join(v, "log.1"), "wb") as f:
        f.write(encode_file_header() + b"".join(entries) + tail)


def tree_image(t: DataTree):
    return ([(p, n._rec, n.acl, list(n.child_paths())) for p, n in t.nodes.items()],
            {k: list(v) for k, v in t.ephemerals.items()}, list(t.containers), list(t.ttls),
            t.last_processed_zxid, tree_digest(t))


def restore_both(tmp_path, entries: list[bytes], tail: bytes = b""):
    """Restore copies of one data directory with and without the fast path."""
    out = []
    for fast in (True, False):
        d = str(tmp_path / f"fast-{fast}")
        write_dir(d, entries, tail)
        v = os.path.join(d, "version-2")
        tree = DataTree()
        try:
            res = restore(v, v, tree, fast_replay=fast)
        except Exception as e:  # noqa: BLE001 - the same failure both ways
            out.append(("raised", type(e), str(e).replace(d, "D"), tree_image(tree)))
            continue
        res.snapshot_path = os.path.basename(res.snapshot_path)
        res.truncated = [os.path.basename(p) for p in res.truncated]
        res.removed = [os.path.basename(p) for p in res.removed]
        files = {n: open(os.path.join(v, n), "rb").read() for n in sorted(os.listdir(v))}
        out.append((res, tree_image(tree), files))
    return out


TAILS = ["none", "cut", "zeros", "flip_last", "flip_middle", "garbage"]


def tear(entries: list[bytes], how: str, rng: random.Random) -> tuple[list[bytes], bytes]:
    if how == "none" or not entries:
        return entries, b""
    if how == "cut":  # a crash mid-write: part of the last record
        last = entries[-1]
        return entries[:-1], last[:rng.randrange(1, len(last))]
    if how == "zeros":  # preallocated padding after the last record
        return entries, bytes(rng.randrange(1, 5000))
    if how == "garbage":
        return entries, bytes([rng.randrange(1, 256) for _ in range(rng.randrange(1, 40))])
    i = len(entries) - 1 if how == "flip_last" else rng.randrange(len(entries))
    bad = bytearray(entries[i])
    bad[rng.randrange(12, len(bad) - 1)] ^= 0x40
    return entries[:i] + [bytes(bad)] + entries[i + 1:], b""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 150), quota=st.booleans(),
       tail=st.sampled_from(TAILS))
def test_fast_and_general_replay_build_the_same_tree(tmp_path_factory, seed, n, quota, tail):
    tmp_path = tmp_path_factory.mktemp("replay")
    gen = build(seed, n, quota)
    entries, extra = tear(gen.entries, tail, random.Random(seed))
    fast, general = restore_both(tmp_path, entries, extra)
    assert fast == general


def test_generated_logs_exercise_both_paths(tmp_path):
    """The generator makes what the fast path takes and what it leaves to the
    general path, both applied and failing, so the property test can fail."""
    gen = build(7, 400, True)
    tree = DataTree()
    fast = FastApplier(tree, {})
    handled = unhandled = 0
    for entry in gen.entries:
        payload = entry[12:-1]
        if fast.apply(payload) is UNHANDLED:
            unhandled += 1
            from zabpy.storage.txnlog import decode_payload
            hdr, txn, _ = decode_payload(payload)
            replay_txn(tree, fast.sessions, hdr, txn)
        else:
            handled += 1
    assert handled > 250 and unhandled > 20, (handled, unhandled)
    assert len(tree.nodes) > 10 and tree.ephemerals and tree.containers and tree.ttls


def test_quota_stats_follow_replayed_creates(tmp_path):
    entries = build(3, 0, True).entries
    gen = LogGen(random.Random(0))
    gen.zxid = len(entries)
    for i in range(3):
        gen.add(gen.hdr(0x100, OP.create), R.CreateTxn(f"/a/q{i}", b"12345", OPEN, False, -1))
    fast, general = restore_both(tmp_path, entries + gen.entries)
    assert fast == general
    nodes = dict((p, rec) for p, rec, _, _ in fast[1][0])
    assert nodes["/zookeeper/quota/a/zookeeper_stats"].endswith(b"count=4,bytes=16")


@pytest.mark.parametrize("how", ["middle", "gap"])
def test_corruption_and_gaps_fail_the_same_way(tmp_path, how):
    gen = build(11, 60, False)
    entries = list(gen.entries)
    if how == "middle":
        bad = bytearray(entries[20])
        bad[30] ^= 0x40
        entries[20] = bytes(bad)
    else:
        del entries[30]
    fast, general = restore_both(tmp_path, entries)
    assert fast == general
    assert fast[0] == "raised" and fast[1] is StorageError
    assert ("gap in the logs" if how == "gap" else "not a torn tail") in fast[2]


def _payload(hdr, txn, digest=None) -> bytes:
    return encode_payload(hdr, txn, digest)


HDR = R.TxnHeader(0x100, 1, 5, 1_700_000_000_000, OP.create)


@pytest.mark.parametrize("payload", [
    _payload(HDR, R.CreateTxn("/x", b"", OPEN, False, -1)) + b"\0",              # trailing byte
    _payload(HDR, R.CreateTxn("/x", b"", OPEN, False, -1)) + b"\0" * 13,         # not a digest
    _payload(HDR, R.CreateTxn(None, b"", OPEN, False, -1)),                      # null path
    _payload(HDR, R.CreateTxn("/x", b"", None, False, -1)),                      # null ACL list
    _payload(HDR, R.CreateTxn("/x", b"", OPEN, False, -1))[:-2],                 # short
    _payload(HDR, None)[:20],                                                    # header cut
    _payload(R.TxnHeader(1, 1, 5, 1, OP.closeSession), R.CloseSessionTxn([])),  # not taken
    _payload(R.TxnHeader(1, 1, 5, 1, OP.setACL), R.SetACLTxn("/x", OPEN, 1)),
    _payload(R.TxnHeader(1, 1, 5, 1, OP.multi),
             R.MultiTxn([R.Txn(OP.create, R.CreateTxn("/m", b"", OPEN, False, -1).to_bytes()),
                         R.Txn(OP.delete, R.DeleteTxn("/x").to_bytes() + b"\0")])),
    _payload(R.TxnHeader(1, 1, 5, 1, OP.multi),
             R.MultiTxn([R.Txn(OP.create, R.CreateTxn("/m", b"", OPEN, False, -1).to_bytes()),
                         R.Txn(OP.closeSession, R.CloseSessionTxn([]).to_bytes())])),
    _payload(R.TxnHeader(1, 1, 5, 1, OP.multi),
             R.MultiTxn([R.Txn(OP.create, None), R.Txn(OP.error, R.ErrorTxn(-1).to_bytes())])),
    _payload(R.TxnHeader(1, 1, 5, 1, OP.createSession), R.CreateSessionTxn(5))[:-1],
], ids=["trailing", "not-digest", "null-path", "null-acl", "short", "header-cut", "closeSession",
        "setACL", "multi-trailing", "multi-closeSession", "failed-multi-null", "session-short"])
def test_fast_path_leaves_what_it_does_not_take_untouched(payload):
    tree = DataTree()
    tree.nodes["/x"] = tree.nodes["/zookeeper"].__class__(b"", tree.nodes["/"].acl)
    before = tree_image(tree)
    sessions: dict[int, int] = {}
    assert FastApplier(tree, sessions).apply(payload) is UNHANDLED
    assert tree_image(tree) == before and sessions == {}


def test_digest_is_returned_and_multi_applies_whole():
    tree = DataTree()
    fast = FastApplier(tree, {})
    subs = [R.Txn(OP.create, R.CreateTxn("/m", b"1", OPEN, False, -1).to_bytes()),
            R.Txn(OP.create, R.CreateTxn("/m/e", b"2", OPEN, True, -1).to_bytes()),
            R.Txn(OP.setData, R.SetDataTxn("/m", b"3", 1).to_bytes())]
    got = fast.apply(_payload(R.TxnHeader(0x55, 1, 9, 7, OP.multi), R.MultiTxn(subs),
                              R.TxnDigest(2, -5)))
    assert got == (2, -5)
    assert tree.nodes["/m"].data == b"3" and tree.nodes["/m"].version == 1
    assert tree.ephemerals == {0x55: {"/m/e": None}} and tree.last_processed_zxid == 9


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tail=st.sampled_from(TAILS + ["header"]))
def test_iter_records_reports_what_scan_log_reports(seed, tail):
    rng = random.Random(seed)
    entries, extra = tear(build(seed, rng.randrange(30), False).entries, tail, rng)
    image = encode_file_header() + b"".join(entries) + extra
    if tail == "header":
        image = image[:rng.randrange(0, 16)] if rng.random() < 0.5 else \
            struct.pack(">i", 0x1234) + image[4:]
    ref = scan_log(image)
    out = LogScan()
    got = [(off, bytes(p)) for off, p in iter_records(image, out)]
    assert got == [(off, bytes(p)) for off, _z, p in ref.entries]
    assert (out.good_end, out.stop, out.detail, out.nonzero_after, out.valid_after, out.count) == \
        (ref.good_end, ref.stop, ref.detail, ref.nonzero_after, ref.valid_after, len(ref.entries))
