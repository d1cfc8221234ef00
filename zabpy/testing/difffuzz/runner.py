"""Run one seed against both servers and compare every step.

State: one ``Side`` per server (its connections by session label, its helper
session, its normalisation) and the generator. For each op the runner

1. performs it on zabpy, then on Java (``Side.perform``): the reply (or the
   connect response), the events the op's session read before its reply,
   then a ping round trip on every live session collects the events that came
   after; a session the server closed on its own (failed auth, unknown op)
   is reconnected and closed, so that it cannot expire later at a moment
   neither side controls;
2. settles: waits until the expected background work is done on that server
   — an expired session's close, containers and TTL nodes the reaper must
   delete (the generator makes at most one reapable at a time) — while
   pinging every live session of both servers so no session times out by
   accident;
3. compares the two outcomes, normalised (``normalise.Norm``): reply error
   and body, reply zxid, events per session with their place before/after
   the reply, sessions that died, the server's zxid after the step.

At the end it compares the whole tree: every path, its data, stat and ACL.
The first difference stops the seed and is returned with the replay command.
"""

from __future__ import annotations

import collections
import dataclasses
import struct
import time

from ...jute import records as R
from ...jute.codec import Reader, Writer
from ...jute.constants import OpCode
from .client import XID_AUTH, Closed, Conn, Frame, connect
from .generator import NORMAL_TIMEOUT_MS, Generator, Node, Op, is_reapable
from .normalise import Norm
from .servers import SUPER_AUTH

__all__ = ["Difference", "run_ops"]

SETTLE_TIMEOUT_S = 8.0
KEEPALIVE_S = 0.1
POLL_S = 0.02


@dataclasses.dataclass
class Difference:
    seed: int
    index: int          # op index; -1 for the final tree
    op: str
    zabpy: object
    java: object
    history: list[str]
    ops: int
    tree_notes: list[str] = dataclasses.field(default_factory=list)

    def report(self) -> str:
        lines = [f"difference at seed {self.seed}, op {self.index}: {self.op}"]
        lines += ["  recent ops:"] + [f"    {h}" for h in self.history[-12:]]
        lines += [f"  zabpy: {self.zabpy!r}", f"  java:  {self.java!r}"]
        lines += ["  tree differs at:"] + [f"    {n}" for n in self.tree_notes] \
            if self.tree_notes else []
        lines.append(f"  replay: python -m zabpy.testing.difffuzz --seed {self.seed} "
                     f"--ops {self.ops} -v")
        return "\n".join(lines)


class Side:
    """One server as the fuzzer sees it."""

    def __init__(self, name: str, port: int, runner: "Runner"):
        self.name, self.port, self.runner = name, port, runner
        self.conns: dict[str, Conn] = {}
        self.creds: dict[str, tuple[int, bytes, int]] = {}   # label -> id, passwd, timeout
        self.helper, resp = connect(port, NORMAL_TIMEOUT_MS)
        assert isinstance(resp, R.ConnectResponse) and resp.sessionId, resp
        _, rep = self.helper.request(XID_AUTH, OpCode.auth,
                                     R.AuthPacket(0, "digest", SUPER_AUTH).to_bytes())
        assert isinstance(rep, Frame) and rep.err == 0, rep
        self.norm = Norm(self._zxid())
        self.norm.labels[resp.sessionId] = "helper"

    def _zxid(self) -> int:
        _, rep = self.helper.request(self.helper.next_xid(), OpCode.exists,
                                     R.ExistsRequest("/", False).to_bytes())
        assert isinstance(rep, Frame), f"{self.name}: helper session lost: {rep}"
        return rep.zxid

    def _reply(self, op: int, rep) -> tuple:
        if isinstance(rep, Closed):
            return ("closed",)
        return (rep.err, self.norm.zxid(rep.zxid), self.norm.body(op, rep.err, rep.body))

    def _session_recreated(self, label: str, rep: Frame) -> tuple:
        """createSession on an established connection is answered, as Java
        3.8 does, with a ConnectResponse (protocol version 0 where a reply
        header's xid would be); its password must be the session's."""
        raw = struct.pack(">iqi", rep.xid, rep.zxid, rep.err) + rep.body
        resp = R.ConnectResponse.read(Reader(raw))
        return (self.norm.connect_response(resp), resp.passwd == self.creds[label][1])

    def _event(self, phase: str, f: Frame) -> tuple:
        ev = R.WatcherEvent.read(Reader(f.body))
        return (phase, ev.type, ev.state, ev.path, self.norm.zxid(f.zxid))

    def _connect(self, label: str, timeout_ms: int, session_id: int = 0,
                 passwd: bytes = bytes(16), last_zxid: int = 0):
        conn, resp = connect(self.port, timeout_ms, session_id, passwd, last_zxid)
        if isinstance(resp, Closed):
            return conn, ("closed",)
        if resp.sessionId and session_id == 0:
            self.norm.labels[resp.sessionId] = label
        if resp.sessionId and resp.timeOut > 0:
            self.conns[label] = conn
            self.creds[label] = (resp.sessionId, resp.passwd, timeout_ms)
        return conn, self.norm.connect_response(resp)

    # ---- one op ----------------------------------------------------------------------

    def perform(self, op: Op) -> tuple[dict, dict]:
        """(outcome, tree) of one op on this server."""
        z0 = self._zxid()
        events: dict[str, list] = {}
        dead: set[str] = set()
        expected_txns = 0
        conn = self.conns.get(op.session)
        if op.action == "open":
            _, reply = self._connect(op.session, op.timeout_ms)
        elif op.action in ("request", "close", "burst"):
            reply = self._requests(op, conn, events)
            if op.opcode == OpCode.closeSession:
                conn.abort()
                self.conns.pop(op.session)
                dead.add(op.session)
        elif op.action == "expire":
            conn.abort()
            self.conns.pop(op.session)
            dead.add(op.session)
            expected_txns = 1
            reply = None   # filled after the session expired
        else:   # reconnect
            reply = self._reconnect(op, conn)
        buried = self._drain(events, dead)
        tree = self._settle(z0, expected_txns)
        if op.action == "expire":
            sid, passwd, timeout = self.creds[op.session]
            c, reply = self._connect(op.session, timeout, sid, passwd)
            c.abort()
            self.conns.pop(op.session, None)
        buried.update(self._drain(events, dead))
        if dead:   # a closing session's ephemerals go in Java's HashSet order
            events = {k: sorted(v) for k, v in events.items()}
        outcome = {"reply": reply, "events": {k: v for k, v in events.items() if v},
                   "dead": sorted(dead), "buried": buried,
                   "zxid": self.norm.zxid(self._zxid())}
        return outcome, tree

    def _requests(self, op: Op, conn: Conn, events: dict):
        """Send one request, or a burst back to back; read the replies in order.
        An event is tagged with the index of the reply it came before."""
        reqs = op.burst or [op]
        for r in reqs:
            body = r.body(self.norm.base) if callable(r.body) else r.body
            conn.submit(r.xid if r.xid is not None else conn.next_xid(), r.opcode, body)
        replies, seen = [], events.setdefault(op.session, [])
        for i, r in enumerate(reqs):
            last_zxid = conn.last_zxid
            before, rep = conn.read_reply()
            if self is self.runner.sides[0]:
                self.runner.learn_kinds(r, rep)
            seen += [self._event(f"before {i}" if op.burst else "before", f) for f in before]
            if r.opcode == OpCode.createSession and isinstance(rep, Frame) and rep.xid == 0:
                conn.last_zxid = last_zxid   # not a reply header: no zxid in it
                replies.append(self._session_recreated(op.session, rep))
                continue
            replies.append(self._reply(r.opcode, rep))
        return tuple(replies) if op.burst else replies[0]

    def _reconnect(self, op: Op, conn: Conn):
        conn.abort()
        sid, passwd, timeout = self.creds[op.session]
        out = []
        if op.bad_password:
            c, resp = self._connect(op.session, timeout, sid, bytes(16), conn.last_zxid)
            c.abort()
            out.append(resp)
        _, resp = self._connect(op.session, timeout, sid, passwd, conn.last_zxid)
        out.append(resp)
        return tuple(out)

    def _drain(self, events: dict, dead: set) -> dict:
        """Ping every live session; bury the ones the server closed."""
        buried = {}
        for label in sorted(self.conns):
            conn = self.conns[label]
            ok = conn.ping()
            events.setdefault(label, []).extend(self._event("after", f) for f in conn.take_events())
            if not ok:
                self.conns.pop(label)
                dead.add(label)
                buried[label] = self._bury(label, conn)
        return buried

    def _bury(self, label: str, old: Conn):
        """Reconnect a session the server dropped and close it."""
        sid, passwd, timeout = self.creds[label]
        c, resp = self._connect(label, timeout, sid, passwd, old.last_zxid)
        self.conns.pop(label, None)
        if not c.alive:
            return (resp,)
        _, rep = c.request(c.next_xid(), OpCode.closeSession, b"")
        c.abort()
        return (resp, self._reply(OpCode.closeSession, rep))

    def _settle(self, z0: int, expected_txns: int) -> dict:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            # zxid first: the tree read after it shows at least that txn (an
            # expiry that empties a container must be seen with the container).
            enough = self._zxid() >= z0 + expected_txns
            tree = self.scan()
            reapable = sorted(p for p, n in tree.items() if is_reapable(n))
            if enough and not reapable:
                return tree
            if self is self.runner.sides[1] and reapable:
                self.runner.stats["reap waits"] += 1
            if time.monotonic() > deadline:
                return {"settle timed out": (reapable, enough)}
            self.runner.keepalive()
            time.sleep(POLL_S)

    def keepalive(self) -> None:
        for conn in self.conns.values():
            if conn.alive:
                conn.ping()

    # ---- the tree ----------------------------------------------------------------------

    def _multi_read(self, subs) -> list:
        w = Writer()
        for op, rec in subs:
            R.MultiHeader(int(op), False, -1).write(w)
            rec.write(w)
        R.MultiHeader(-1, True, -1).write(w)
        _, rep = self.helper.request(self.helper.next_xid(), OpCode.multiRead, w.getvalue())
        assert isinstance(rep, Frame) and rep.err == 0, f"{self.name}: tree read failed: {rep}"
        out, r = [], Reader(rep.body)
        while True:
            h = R.MultiHeader.read(r)
            if h.done:
                return out
            if h.type == OpCode.getData:
                out.append(R.GetDataResponse.read(r))
            elif h.type == OpCode.getChildren:
                out.append(R.GetChildrenResponse.read(r))
            else:
                out.append(R.ErrorResponse.read(r))

    def scan(self, full: bool = False) -> dict:
        """Every node, level by level, one multiRead per level (helper is super)."""
        tree: dict = {}
        kinds = {} if full else self.runner.refresh_kinds()
        level = ["/"]
        while level:
            subs = []
            for p in level:
                subs += [(OpCode.getData, R.GetDataRequest(p, False)),
                         (OpCode.getChildren, R.GetChildrenRequest(p, False))]
            results = self._multi_read(subs)
            nxt = []
            for i, p in enumerate(level):
                data, kids = results[2 * i], results[2 * i + 1]
                if not isinstance(data, R.GetDataResponse):
                    continue
                children = tuple(sorted(kids.children)) if isinstance(
                    kids, R.GetChildrenResponse) else ()
                st = data.stat
                if full:
                    tree[p] = (data.data, self.norm.stat(st), self._acl(p))
                else:
                    owner = kinds.get(p, self.norm.session(st.ephemeralOwner))
                    tree[p] = Node(owner, st.version, st.cversion, st.aversion, children)
                nxt += [("" if p == "/" else p) + "/" + c for c in children]
            level = nxt
        return tree

    def _acl(self, path: str):
        _, rep = self.helper.request(self.helper.next_xid(), OpCode.getACL,
                                     R.GetACLRequest(path).to_bytes())
        return self._reply(OpCode.getACL, rep)

    def close(self) -> None:
        for conn in self.conns.values():
            conn.abort()
        self.helper.abort()


class Runner:
    def __init__(self, seed: int, zport: int, jport: int, log=None, kinds=dict, stats=None):
        self.seed = seed
        self.log = log
        self.kinds = kinds
        self.stats = collections.Counter() if stats is None else stats
        self.gen = Generator(seed)
        self.sides: list[Side] = []
        self.sides = [Side("zabpy", zport, self), Side("java", jport, self)]
        self._last_keepalive = 0.0
        self.known_kinds: dict[str, int] = {}   # path -> container/TTL ephemeralOwner

    def refresh_kinds(self) -> dict[str, int]:
        """Which paths the reaper deletes, as zabpy's tree says; a path zabpy
        already reaped keeps its kind until it is gone on both servers."""
        for path, owner in self.kinds().items():
            if owner is None:
                self.known_kinds.pop(path, None)
            else:
                self.known_kinds[path] = owner
        return self.known_kinds

    def learn_kinds(self, op: Op, rep) -> None:
        """Right after zabpy's reply: a short TTL node may be reaped before the
        next tree read, so its kind comes from the request too."""
        self.refresh_kinds()
        if op.ttl_ms is not None and isinstance(rep, Frame) and rep.err == 0:
            path = R.Create2Response.read(Reader(rep.body)).path
            self.known_kinds[path] = ((0xFF << 56) | op.ttl_ms) - (1 << 64)

    def keepalive(self) -> None:
        now = time.monotonic()
        if now - self._last_keepalive >= KEEPALIVE_S:
            self._last_keepalive = now
            for side in self.sides:
                side.keepalive()

    def run(self, n_ops: int) -> Difference | None:
        history: list[str] = []
        try:
            for i in range(n_ops):
                op = self.gen.next()
                history.append(f"{i}: {op.session} {op.text}")
                if self.log:
                    self.log(history[-1])
                (zo, _), (jo, jtree) = (side.perform(op) for side in self.sides)
                if zo != jo:
                    return Difference(self.seed, i, f"{op.session} {op.text}", zo, jo,
                                      history, i + 1, self._tree_notes())
                if "settle timed out" in jtree:
                    return Difference(self.seed, i, "java did not settle", zo, jtree,
                                      history, i + 1)
                self._observe(op, jo, jtree)
                self._count(op, jo)
                for path in [p for p in self.known_kinds if p not in jtree]:
                    del self.known_kinds[path]
            zt, jt = (side.scan(full=True) for side in self.sides)
            if zt != jt:
                return _tree_difference(self.seed, zt, jt, history, n_ops)
            return None
        finally:
            for side in self.sides:
                side.close()

    def _count(self, op: Op, jo: dict) -> None:
        """What the seed exercised (printed by the command line)."""
        st = self.stats
        st["ops"] += 1
        for o in op.burst or [op]:
            st[o.text.split()[0] if o.action == "request" else o.action] += 1
        st["events"] += sum(len(v) for v in jo["events"].values())
        st["events before reply"] += sum(e[0].startswith("before")
                                         for v in jo["events"].values() for e in v)
        reply = jo["reply"]
        if op.action == "request" and isinstance(reply, tuple) and reply and reply[0] == 0:
            st["ok replies"] += 1
        st["sessions buried"] += len(jo["buried"])

    def _tree_notes(self) -> list[str]:
        """The paths whose node differs right after a difference, to help read it."""
        zt, jt = (side.scan(full=True) for side in self.sides)
        return [f"{p}: zabpy {zt.get(p)!r} java {jt.get(p)!r}"
                for p in sorted(set(zt) | set(jt)) if zt.get(p) != jt.get(p)][:6]

    def _observe(self, op: Op, jo: dict, jtree: dict) -> None:
        events = {k: [(e[1], e[3]) for e in v] for k, v in jo["events"].items()}
        reply = jo["reply"]
        err = reply[0] if isinstance(reply, tuple) and reply and isinstance(reply[0], int) \
            else None
        zx = jo["zxid"]
        delta = int(zx[1:]) if isinstance(zx, str) else 0
        self.gen.after(op, jtree, delta, set(jo["dead"]), events, err)


def _tree_difference(seed, zt: dict, jt: dict, history, n_ops) -> Difference:
    for path in sorted(set(zt) | set(jt)):
        if zt.get(path) != jt.get(path):
            return Difference(seed, -1, f"final tree at {path!r}", zt.get(path), jt.get(path),
                              history, n_ops)
    raise AssertionError("trees differ but no path does")


def run_ops(seed: int, n_ops: int, zport: int, jport: int, log=None,
            kinds=dict, stats=None) -> Difference | None:
    """``kinds()``: ephemeralOwner of the containers and TTL nodes by path;
    ``stats``, a Counter, gathers what the seed exercised."""
    return Runner(seed, zport, jport, log, kinds, stats).run(n_ops)
