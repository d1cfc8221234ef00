"""Client-visible guarantees, checked over simulated clients' histories.

Inputs: the ``SimClient`` objects of a run (their ``history``, ``watch_log``
and ``connections``), the ensemble's committed txn sequence as a list of
(TxnHeader, txn record) in zxid order, the final tree of every server
(``{server_id: DataTree}``) and the time the run ended (everything committed
by then has been applied and delivered).

The reference is an independent model (``Model``): a dict of path -> node
(data, version, child-creation counter, ephemeral owner, children) plus the
live sessions. It never uses zabpy's DataTree or pipeline. ``replay`` walks
the committed sequence in zxid order: a txn that carries a client's request
(its header's session id and cxid name an op in a history) is replayed from
the op's *arguments*, so the model computes what the request should have
done and that is compared with both the txn and the reply; any other txn
(createSession, a closeSession by expiry, a container delete) is applied as
logged. Reads are evaluated against the model at their reply zxid.

Checks (each raises SimFailure naming clients, sessions, xids and zxids):

a ``check_acknowledged_writes_survive`` — atomicity and durability
b ``check_writes_linearizable`` — real-time order and results per the model
c ``check_session_order`` — per session, replies in xid order, zxids never back
d ``check_sync_reads`` and ``check_reads`` — sync(), single system image
e ``check_final_trees`` — closed sessions' ephemerals gone; trees equal model
f ``check_watches`` — one-shot, and delivered to a connected client

``check_all(clients, committed, final_trees, end_ms)`` runs them all.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from ..jute import records as R
from ..jute.codec import decode
from ..jute.constants import CreateMode, Err, EventType, OpCode
from .client import OpRecord, WatchEvent, WatchRecord
from .invariants import SimFailure

__all__ = ["Model", "Expect", "Replay", "replay", "check_all", "check_acknowledged_writes_survive",
           "check_writes_linearizable", "check_session_order", "check_sync_reads",
           "check_reads", "check_final_trees", "check_watches"]

# Replies a server gives without logging a txn (a write refused before prep).
NO_TXN_ERRS = frozenset({Err.SESSIONMOVED, Err.SYSTEMERROR, Err.CONNECTIONLOSS,
                         Err.NOTREADONLY})
SESSION_ERRS = frozenset({Err.SESSIONEXPIRED, Err.SESSIONMOVED})
BUILTINS = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")
DATA_EVENTS = frozenset({EventType.NodeCreated, EventType.NodeDataChanged, EventType.NodeDeleted})
CHILD_EVENTS = frozenset({EventType.NodeChildrenChanged, EventType.NodeDeleted})


def _parent(path: str) -> str:
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def _who(rec: OpRecord) -> str:
    return (f"client {rec.client_id} session 0x{rec.session_id:x} xid {rec.xid} "
            f"{OpCode(rec.op).name}({rec.path})")


@dataclass
class Node:
    data: bytes | None
    owner: int = 0
    version: int = 0
    seq: int = 0  # child creations so far: the next sequential suffix
    mzxid: int = 0
    children: dict[str, None] = field(default_factory=dict)

    def copy(self) -> "Node":
        return Node(self.data, self.owner, self.version, self.seq, self.mzxid, dict(self.children))


@dataclass
class Expect:
    """What the model says a write does: err, created path, new version."""

    err: int = Err.OK
    path: str | None = None
    version: int | None = None
    subs: tuple["Expect", ...] | None = None


class _Failed(Exception):
    def __init__(self, err: int):
        self.err = err


class Model:
    """ZooKeeper's data model, as simply as it can be said."""

    def __init__(self, local_sessions: bool = False) -> None:
        # localSessionsEnabled: a session lives from its first request on,
        # with no createSession txn, until a closeSession txn (if it was
        # upgraded) or for ever (a local close leaves no trace in the log)
        self.local_sessions = local_sessions
        self.nodes: dict[str, Node] = {p: Node(b"") for p in BUILTINS}
        for p in BUILTINS[1:]:
            self.nodes[_parent(p)].children[p.rsplit("/", 1)[1]] = None
        self.live: dict[int, None] = {}
        self.closed: dict[int, int] = {}  # session -> zxid of its closeSession
        self.triggers: list[tuple[int, int, str]] = []  # (zxid, event type, path)

    # ---- primitive changes (raise _Failed with ZooKeeper's error code) -----

    def _create(self, path: str, data, mode: int, owner: int, zxid: int, out: list) -> str:
        parent = self.nodes.get(_parent(path))
        if parent is None:
            raise _Failed(Err.NONODE)
        if mode in (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL):
            path = path + "%010d" % parent.seq
        if path in self.nodes:
            raise _Failed(Err.NODEEXISTS)
        if parent.owner != 0:
            raise _Failed(Err.NOCHILDRENFOREPHEMERALS)
        eph = mode in (CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL)
        self.nodes[path] = Node(data, owner if eph else 0, mzxid=zxid)
        parent.seq += 1
        parent.children[path.rsplit("/", 1)[1]] = None
        out += [(zxid, EventType.NodeCreated, path),
                (zxid, EventType.NodeChildrenChanged, _parent(path))]
        return path

    def _delete(self, path: str, version: int, zxid: int, out: list) -> None:
        node = self.nodes.get(path)
        if node is None or _parent(path) not in self.nodes or path == "/":
            raise _Failed(Err.NONODE)
        if version != -1 and version != node.version:
            raise _Failed(Err.BADVERSION)
        if node.children:
            raise _Failed(Err.NOTEMPTY)
        del self.nodes[path]
        del self.nodes[_parent(path)].children[path.rsplit("/", 1)[1]]
        out += [(zxid, EventType.NodeDeleted, path),
                (zxid, EventType.NodeChildrenChanged, _parent(path))]

    def _set_data(self, path: str, data, version: int, zxid: int, out: list) -> int:
        node = self.nodes.get(path)
        if node is None:
            raise _Failed(Err.NONODE)
        if version != -1 and version != node.version:
            raise _Failed(Err.BADVERSION)
        node.data, node.version, node.mzxid = data, node.version + 1, zxid
        out.append((zxid, EventType.NodeDataChanged, path))
        return node.version

    def _check(self, path: str, version: int) -> None:
        node = self.nodes.get(path)
        if node is None:
            raise _Failed(Err.NONODE)
        if version != -1 and version != node.version:
            raise _Failed(Err.BADVERSION)

    def _one(self, op: int, path, data, version, flags, session: int, zxid: int,
             out: list) -> Expect:
        if op in (OpCode.create, OpCode.create2):
            return Expect(path=self._create(path, data, flags, session, zxid, out), version=0)
        if op == OpCode.delete:
            self._delete(path, version, zxid, out)
            return Expect()
        if op == OpCode.setData:
            return Expect(version=self._set_data(path, data, version, zxid, out))
        if op == OpCode.check:
            self._check(path, version)
            return Expect()
        raise AssertionError(f"model has no op {op}")

    # ---- whole requests --------------------------------------------------------

    def apply_op(self, rec: OpRecord, zxid: int) -> Expect:
        """The request ``rec``, committed at ``zxid``: change the model and say
        what the reply must be."""
        out: list = []
        if self.local_sessions and rec.session_id not in self.closed:
            self.live.setdefault(rec.session_id, None)
        if rec.session_id not in self.live:
            return Expect(err=Err.SESSIONEXPIRED)
        if rec.op == OpCode.closeSession:
            self.close_session(rec.session_id, zxid)
            return Expect()
        if rec.op == OpCode.multi:
            return self._multi(rec, zxid)
        try:
            exp = self._one(rec.op, rec.path, rec.data, rec.version, rec.flags, rec.session_id,
                            zxid, out)
        except _Failed as e:
            return Expect(err=e.err)
        self.triggers += out
        return exp

    def _multi(self, rec: OpRecord, zxid: int) -> Expect:
        saved = {p: n.copy() for p, n in self.nodes.items()}
        out: list = []
        subs: list[Expect] = []
        for op, path, data, version, flags in rec.sub:
            try:
                subs.append(self._one(op, path, data, version, flags, rec.session_id, zxid, out))
            except _Failed as e:
                # All or nothing: earlier ops report OK, later ones
                # RUNTIMEINCONSISTENCY, and nothing changes.
                self.nodes = saved
                n = len(subs)
                rest = len(rec.sub) - n - 1
                return Expect(subs=tuple([Expect()] * n + [Expect(err=e.err)]
                                         + [Expect(err=Err.RUNTIMEINCONSISTENCY)] * rest))
        self.triggers += out
        return Expect(subs=tuple(subs))

    def close_session(self, session: int, zxid: int) -> None:
        """closeSession (asked or by expiry) deletes the session's ephemerals."""
        owned = sorted((p for p, n in self.nodes.items() if n.owner == session),
                       key=lambda p: (-p.count("/"), p))
        for p in owned:
            self._delete(p, -1, zxid, self.triggers)
        self.live.pop(session, None)
        self.closed[session] = zxid

    def apply_txn(self, hdr: R.TxnHeader, txn) -> None:
        """A txn no client history explains: apply it as logged."""
        t, zxid, out = hdr.type, hdr.zxid, self.triggers
        if t == OpCode.createSession:
            self.live[hdr.clientId] = None
        elif t == OpCode.closeSession:
            self.close_session(hdr.clientId, zxid)
        elif t == OpCode.multi:
            subs = [(s.type, decode(R.TXN_RECORD[s.type], s.data or b"")) for s in txn.txns]
            if all(st != OpCode.error for st, _ in subs):
                for st, sub in subs:
                    self._apply_plain(st, hdr.clientId, sub, zxid, out)
        else:
            self._apply_plain(t, hdr.clientId, txn, zxid, out)

    def _apply_plain(self, t: int, session: int, txn, zxid: int, out: list) -> None:
        try:
            if t in (OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL):
                mode = CreateMode.EPHEMERAL if getattr(txn, "ephemeral", False) else 0
                self._create(txn.path, txn.data, mode, session, zxid, out)
            elif t in (OpCode.delete, OpCode.deleteContainer):
                self._delete(txn.path, -1, zxid, out)
            elif t == OpCode.setData:
                self._set_data(txn.path, txn.data, -1, zxid, out)
        except _Failed as e:
            raise SimFailure(f"committed txn 0x{zxid:x} type {t} on {txn.path} cannot apply: "
                             f"{Err(e.err).name}") from None

    # ---- reads -----------------------------------------------------------------

    def final_state(self) -> dict[str, tuple]:
        return {p: (n.data or b"", n.owner) for p, n in self.nodes.items()
                if not p.startswith("/zookeeper")}


@dataclass
class Replay:
    model: Model
    expected: dict[tuple[int, int], tuple[int, Expect]]  # (session, xid) -> (zxid, expect)
    txn_of: dict[tuple[int, int], int]                  # (session, cxid) -> zxid
    disagreements: list[str]
    read_mismatches: list[str]


def _writes(clients) -> dict[tuple[int, int], OpRecord]:
    return {(r.session_id, r.xid): r for c in clients for r in c.history if r.is_write}


def _reads(clients) -> list[OpRecord]:
    # A read-only server's answers are left out: it serves the tree it last
    # had, which holds the txns it logged (fast-forwarded when its role
    # ended, as ZooKeeper's does), committed or not; no guarantee covers it.
    reads = [r for c in clients for r in c.history
             if r.outcome == "ok" and not r.is_write and r.op != OpCode.sync
             and r.err in (Err.OK, Err.NONODE) and not c.connections[r.conn].read_only]
    return sorted(reads, key=lambda r: (r.zxid, r.client_id, r.xid))


def replay(clients, committed, local_sessions: bool = False) -> Replay:
    """Walk the committed sequence through the model (see the module doc)."""
    writes = _writes(clients)
    reads = _reads(clients)
    model = Model(local_sessions)
    rp = Replay(model, {}, {}, [], [])
    ri = 0
    for hdr, txn in committed:
        while ri < len(reads) and reads[ri].zxid < hdr.zxid:
            _eval_read(model, reads[ri], rp.read_mismatches)
            ri += 1
        rec = writes.get((hdr.clientId, hdr.cxid)) if hdr.cxid > 0 else None
        if rec is None:
            model.apply_txn(hdr, txn)
            continue
        rp.txn_of[(hdr.clientId, hdr.cxid)] = hdr.zxid
        exp = model.apply_op(rec, hdr.zxid)
        rp.expected[(rec.session_id, rec.xid)] = (hdr.zxid, exp)
        why = _txn_disagrees(rec, hdr, txn, exp)
        if why:
            rp.disagreements.append(f"txn 0x{hdr.zxid:x} of {_who(rec)}: {why}")
    for rec in reads[ri:]:
        _eval_read(model, rec, rp.read_mismatches)
    return rp


def _txn_outcome(t: int, txn) -> tuple[int, str | None]:
    if t == OpCode.error:
        return txn.err, None
    return Err.OK, getattr(txn, "path", None) if t in (OpCode.create, OpCode.create2) else None


def _txn_disagrees(rec: OpRecord, hdr: R.TxnHeader, txn, exp: Expect) -> str | None:
    """Does the logged txn say the same as the model about this request?"""
    if exp.err in SESSION_ERRS:
        ok = hdr.type == OpCode.error and txn.err in SESSION_ERRS
        return None if ok else f"model: session closed, txn type {hdr.type}"
    if hdr.type != OpCode.error and hdr.type != rec.op and not (
            rec.op == OpCode.create2 and hdr.type == OpCode.create):
        return f"txn type {hdr.type} for op {rec.op}"
    if exp.subs is None:
        got = _txn_outcome(hdr.type, txn)
        want = (exp.err, exp.path if rec.op in (OpCode.create, OpCode.create2) else None)
        return None if got == want else f"txn says {got}, model says {want}"
    if hdr.type != OpCode.multi:
        return f"multi logged as type {hdr.type}"
    subs = [(s.type, decode(R.TXN_RECORD[s.type], s.data or b"")) for s in txn.txns]
    failed = any(t == OpCode.error for t, _ in subs)
    got = [(_txn_outcome(t, s)[0], None if failed else _txn_outcome(t, s)[1]) for t, s in subs]
    want = [(e.err, e.path if op in (OpCode.create, OpCode.create2) else None)
            for e, (op, *_rest) in zip(exp.subs, rec.sub)]
    return None if got == want else f"multi txn says {got}, model says {want}"


def _eval_read(model: Model, rec: OpRecord, out: list) -> None:
    node = model.nodes.get(rec.path)
    res = rec.result
    if node is None:
        if rec.err != Err.NONODE:
            out.append(f"{_who(rec)} at zxid 0x{rec.zxid:x}: found a node the model lacks")
        return
    if rec.err != Err.OK:
        out.append(f"{_who(rec)} at zxid 0x{rec.zxid:x}: NONODE, the model has the node")
        return
    if rec.op in (OpCode.getChildren, OpCode.getChildren2):
        if sorted(res.children or ()) != sorted(node.children):
            out.append(f"{_who(rec)} at zxid 0x{rec.zxid:x}: children {sorted(res.children)} "
                       f"!= model {sorted(node.children)}")
        return
    st = res.stat
    if st.version != node.version or st.mzxid != node.mzxid:
        out.append(f"{_who(rec)} at zxid 0x{rec.zxid:x}: version/mzxid {st.version}/"
                   f"0x{st.mzxid:x} != model {node.version}/0x{node.mzxid:x}")
    if rec.op == OpCode.getData and (res.data or b"") != (node.data or b""):
        out.append(f"{_who(rec)} at zxid 0x{rec.zxid:x}: data {res.data!r} != {node.data!r}")


# ---- the checks ------------------------------------------------------------------

def check_acknowledged_writes_survive(clients, committed, local_sessions: bool = False) -> None:
    """(a) Atomicity and reliability (Programmer's Guide, "ZooKeeper
    guarantees": "updates either succeed or fail"; "once an update has been
    applied, it will persist"): every write a client saw answered, error or
    not, is a committed txn at the reply's zxid carrying its session id and
    xid; and every committed txn naming a client's (session, xid) was asked
    for, exactly once."""
    by_zxid = {hdr.zxid: hdr for hdr, _ in committed}
    writes = _writes(clients)
    logged = {(hdr.clientId, hdr.cxid) for hdr, _ in committed}
    for rec in writes.values():
        if rec.outcome != "ok" or rec.err in NO_TXN_ERRS:
            continue
        if local_sessions and rec.op == OpCode.closeSession and rec.err == Err.OK \
                and (rec.session_id, rec.xid) not in logged:
            continue   # a local session's close: answered without a txn
        hdr = by_zxid.get(rec.zxid)
        if hdr is None:
            raise SimFailure(f"a: {_who(rec)} acknowledged at zxid 0x{rec.zxid:x} "
                             f"(err {rec.err}), but no committed txn has that zxid")
        if (hdr.clientId, hdr.cxid) != (rec.session_id, rec.xid):
            raise SimFailure(f"a: {_who(rec)} acknowledged at zxid 0x{rec.zxid:x}, but that "
                             f"txn is session 0x{hdr.clientId:x} cxid {hdr.cxid}")
    sessions = {r.session_id: None for c in clients for r in c.history}
    seen: dict[tuple[int, int], int] = {}
    for hdr, _ in committed:
        key = (hdr.clientId, hdr.cxid)
        if hdr.clientId not in sessions or hdr.cxid <= 0:
            continue
        if key not in writes:
            raise SimFailure(f"a: txn 0x{hdr.zxid:x} names session 0x{hdr.clientId:x} xid "
                             f"{hdr.cxid}, which no client sent as a write")
        if key in seen:
            raise SimFailure(f"a: session 0x{hdr.clientId:x} xid {hdr.cxid} committed twice: "
                             f"0x{seen[key]:x} and 0x{hdr.zxid:x}")
        seen[key] = hdr.zxid


def check_writes_linearizable(clients, committed, rp: Replay | None = None) -> None:
    """(b) Sequential consistency and linearizable writes (Programmer's
    Guide: "updates from a client will be applied in the order that they
    were sent"; ZooKeeper's writes are linearizable): the committed zxid
    order is the linearization. (i) a write that completed before another
    was invoked has the smaller zxid; (ii) the committed txn and the reply
    of every write equal what the model computes replaying that order."""
    rp = rp or replay(clients, committed)
    writes = list(_writes(clients).values())
    placed = []  # (zxid, rec) of every write that took effect
    for rec in writes:
        z = rp.txn_of.get((rec.session_id, rec.xid))
        if z is not None:
            placed.append((z, rec))
    done = sorted(((r.complete_ms, z, r) for z, r in placed if r.outcome == "ok"),
                  key=lambda t: (t[0], t[1]))
    i, best = 0, None
    for z, rec in sorted(placed, key=lambda t: (t[1].invoke_ms, t[0])):
        while i < len(done) and done[i][0] < rec.invoke_ms:
            if best is None or done[i][1] > best[0]:
                best = (done[i][1], done[i][2])
            i += 1
        if best is not None and best[0] >= z:
            raise SimFailure(f"b: {_who(best[1])} completed at {best[1].complete_ms} ms with zxid "
                             f"0x{best[0]:x} before {_who(rec)} was invoked at {rec.invoke_ms} "
                             f"ms, which committed earlier at 0x{z:x}")
    if rp.disagreements:
        raise SimFailure("b: committed txn disagrees with the model: " + rp.disagreements[0])
    for rec in writes:
        if rec.outcome == "ok" and (rec.session_id, rec.xid) in rp.expected:
            why = _reply_disagrees(rec, *rp.expected[(rec.session_id, rec.xid)])
            if why:
                raise SimFailure(f"b: {_who(rec)} at zxid 0x{rec.zxid:x}: {why}")


def _reply_disagrees(rec: OpRecord, zxid: int, exp: Expect) -> str | None:
    res = rec.result
    if exp.err in SESSION_ERRS:
        return None if rec.err in SESSION_ERRS else f"err {rec.err}, model: session closed"
    if exp.subs is not None:
        if rec.err != Err.OK or res.subs is None or len(res.subs) != len(exp.subs):
            return f"multi answered err {rec.err} subs {res.subs}, model expects {exp.subs}"
        for got, want in zip(res.subs, exp.subs):
            why = _result_disagrees(got, want, zxid)
            if why:
                return "multi op: " + why
        return None
    return _result_disagrees(res, exp, zxid)


def _result_disagrees(res, exp: Expect, zxid: int) -> str | None:
    if res.err != exp.err:
        return f"err {_name(res.err)}, model says {_name(exp.err)}"
    if exp.err:
        return None
    if res.path is not None and exp.path is not None and res.path != exp.path:
        return f"created {res.path}, model says {exp.path}"
    st = res.stat
    if st is not None and exp.version is not None and (st.version, st.mzxid) != (exp.version,
                                                                                   zxid):
        return f"stat version/mzxid {st.version}/0x{st.mzxid:x}, model {exp.version}/0x{zxid:x}"
    return None


def _name(err: int) -> str:
    return Err(err).name if err in Err._value2member_map_ else str(err)


def check_session_order(clients) -> None:
    """(c) Sequential consistency per session, as a client sees it (the
    Java client fails a connection on an out-of-order xid; "a client will
    never see a view older than one it has seen", Programmer's Guide):
    replies arrive in xid order and their zxids never go back, across the
    connections of one session."""
    for c in clients:
        last: dict[int, OpRecord] = {}
        for rec in sorted((r for r in c.history if r.outcome == "ok"), key=lambda r: r.seq):
            prev = last.get(rec.session_id)
            last[rec.session_id] = rec
            if prev is None:
                continue
            if rec.xid <= prev.xid:
                raise SimFailure(f"c: {_who(rec)} answered after xid {prev.xid}: out of order")
            if rec.zxid < prev.zxid:
                raise SimFailure(f"c: {_who(rec)} answered with zxid 0x{rec.zxid:x} after "
                                 f"xid {prev.xid} saw 0x{prev.zxid:x}: zxid went back")


def check_sync_reads(clients) -> None:
    """(d) sync() (Programmer's Guide: a read after sync() sees every update
    that completed before the sync was issued — "Simultaneously Consistent
    Cross-Client Views"): the read's reply zxid is at least the zxid of every
    write acknowledged, to anyone, before the sync was invoked."""
    # (two local closeSessions may share a time and a zxid: no txn of their own)
    done = sorted(((r.complete_ms, r.zxid, r) for c in clients for r in c.history
                   if r.is_write and r.outcome == "ok" and r.err not in NO_TXN_ERRS),
                  key=lambda t: t[:2])
    times = [t for t, _, _ in done]
    # top[i]: the write with the highest zxid among done[:i + 1] (the first such)
    top: list[tuple[int, OpRecord]] = []
    for _, z, w in done:
        top.append((z, w) if not top or z > top[-1][0] else top[-1])
    for c in clients:
        syncs = {(r.session_id, r.xid): r for r in c.history if r.op == OpCode.sync}
        for rec in c.history:
            if rec.after_sync is None or rec.outcome != "ok":
                continue
            sync = syncs[(rec.session_id, rec.after_sync)]
            n = bisect_left(times, sync.invoke_ms)     # writes completed before the sync
            if not n:
                continue
            z, w = top[n - 1]
            if rec.zxid < z:
                raise SimFailure(f"d: {_who(rec)} after sync xid {sync.xid} (invoked "
                                 f"{sync.invoke_ms} ms) read at zxid 0x{rec.zxid:x}, but "
                                 f"{_who(w)} completed at {w.complete_ms} ms with 0x{z:x}")


def check_reads(clients, committed, rp: Replay | None = None) -> None:
    """(d') Single system image (Programmer's Guide): a read answered at
    zxid Z shows the tree after exactly the committed txns up to Z (data,
    version, mzxid, existence, children)."""
    rp = rp or replay(clients, committed)
    if rp.read_mismatches:
        raise SimFailure(f"d: read disagrees with the committed prefix: {rp.read_mismatches[0]}")


def check_final_trees(clients, committed, final_trees, rp: Replay | None = None) -> None:
    """(e) Ephemeral nodes live exactly as long as their session (Programmer's
    Guide, "Ephemeral Nodes"), and every server holds one image (single
    system image): no node of a session whose closeSession committed is
    left anywhere, and each final tree equals the model (paths, data,
    ephemeral owners; /zookeeper aside)."""
    rp = rp or replay(clients, committed)
    closed = rp.model.closed
    want = rp.model.final_state()
    for sid, tree in sorted(final_trees.items()):
        for path, node in tree.nodes.items():
            if node.ephemeral_owner in closed:
                raise SimFailure(f"e: server {sid} keeps ephemeral {path} of session "
                                 f"0x{node.ephemeral_owner:x}, closed at zxid "
                                 f"0x{closed[node.ephemeral_owner]:x}")
        got = {p: (n.data or b"", n.ephemeral_owner) for p, n in tree.nodes.items()
               if not p.startswith("/zookeeper")}
        if got != want:
            extra = sorted(set(got) - set(want))
            missing = sorted(set(want) - set(got))
            differ = sorted(p for p in set(got) & set(want) if got[p] != want[p])
            raise SimFailure(f"e: server {sid} tree differs from the model: extra {extra[:5]}, "
                             f"missing {missing[:5]}, different {differ[:5]}")


def _watch_class(kind: str) -> str:
    return "child" if kind == "child" else "data"  # an exist watch sits in the data table


def _event_classes(etype: int) -> tuple[str, ...]:
    if etype == EventType.NodeChildrenChanged:
        return ("child",)
    if etype == EventType.NodeDeleted:
        return ("data", "child")
    return ("data",)


def check_watches(clients, committed, end_ms: int, rp: Replay | None = None) -> None:
    """(f) Watches (Programmer's Guide, "ZooKeeper Watches"): a watch is a
    one-time trigger — each event consumes a registration made before it and
    not yet consumed; and timeliness — a registration whose path changed
    later (a committed txn after the registration's zxid) is delivered if
    its connection stayed up to the end of the run (``end_ms``)."""
    rp = rp or replay(clients, committed)
    triggers: dict[tuple[str, str], list[int]] = {}
    for zxid, etype, path in rp.model.triggers:
        for cls in _event_classes(etype):
            triggers.setdefault((path, cls), []).append(zxid)
    for c in clients:
        armed: dict[tuple[int, str, str], WatchRecord] = {}
        for w in c.watch_log:
            if isinstance(w, WatchRecord):
                armed[(w.session_id, w.path, _watch_class(w.kind))] = w
                continue
            hit = [k for k in _event_classes(w.type) if (w.session_id, w.path, k) in armed]
            if not hit:
                raise SimFailure(f"f: client {c.client_id} session 0x{w.session_id:x} got "
                                 f"{EventType(w.type).name} {w.path} at {w.at_ms} ms with no "
                                 f"watch armed (fired twice, or never set)")
            for k in hit:
                del armed[(w.session_id, w.path, k)]
        _check_delivered(c, triggers, end_ms)


def _check_delivered(c, triggers: dict, end_ms: int) -> None:
    events: dict[tuple[int, str], list[WatchEvent]] = {}
    for e in c.watch_log:
        if isinstance(e, WatchEvent):
            events.setdefault((e.session_id, e.path), []).append(e)
    for w in c.watch_log:
        if not isinstance(w, WatchRecord) or w.maybe:
            continue
        conn = c.connections[w.conn]
        if conn.end_ms is not None and conn.end_ms < end_ms:
            continue  # the connection ended: the event may be lost with it
        cls = _watch_class(w.kind)
        later = [z for z in triggers.get((w.path, cls), ()) if z > w.zxid]
        if not later:
            continue
        want = DATA_EVENTS if cls == "data" else CHILD_EVENTS
        if not any(e.seq > w.seq and e.type in want
                   for e in events.get((w.session_id, w.path), ())):
            raise SimFailure(f"f: client {c.client_id} session 0x{w.session_id:x} watched "
                             f"{w.path} ({w.kind}, xid {w.xid}, zxid 0x{w.zxid:x}); txn "
                             f"0x{later[0]:x} triggered it, and no event was delivered")


def check_all(clients, committed, final_trees, end_ms: int,
              local_sessions: bool = False) -> None:
    """Every check above, sharing one replay of the committed sequence."""
    check_acknowledged_writes_survive(clients, committed, local_sessions)
    check_session_order(clients)
    rp = replay(clients, committed, local_sessions)
    check_writes_linearizable(clients, committed, rp)
    check_sync_reads(clients)
    check_reads(clients, committed, rp)
    check_final_trees(clients, committed, final_trees, rp)
    check_watches(clients, committed, end_ms, rp)
