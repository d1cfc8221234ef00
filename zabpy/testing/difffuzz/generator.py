"""The seeded operation generator of the differential fuzzer.

State it owns: the sessions it opened (label, live, short timeout, the
watches each may still hold), a ``random.Random`` from the seed. Inputs: the
tree as Java holds it after the last step (``Tree``, read by the runner's
helper session) and what each step did (``after``). Output: the next ``Op``.

The generator steers clear of three things, each for a stated reason:

- ZOOKEEPER-4466 (Java 3.8 keeps one watch mode per session and path, so a
  one-shot watch and a persistent one on the same path overwrite each other):
  a session's path keeps the first watch class it got (one-shot, persistent
  or persistent-recursive) for the connection's life.
- Java 3.8's ``containsWatcher`` answers checkWatches for any session's watch
  on the path: a session sends checkWatches only on paths where no other
  session may still hold a watch (a watch counts as held until the event
  that consumes it was seen, a removeWatches Any succeeded or the connection
  ended — an over-estimate, which only makes the generator more careful).
- Container and TTL reaping runs on a timer, so two nodes that become
  reapable together are deleted in an order neither side promises: an op is
  generated only if it can make at most one node reapable; the runner waits
  for that node to go before the next op.

Deliberately never generated (documented differences, see the package
docstring): check outside a multi, SASL, a wrong-password reconnect while
the session's connection is live.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

from ...jute import records as R
from ...jute.constants import OpCode
from .client import XID_AUTH, XID_PING, XID_SET_WATCHES
from .servers import SUPER_AUTH

__all__ = ["Op", "Node", "Tree", "Generator", "is_reapable", "SHORT_TIMEOUT_MS"]

NORMAL_TIMEOUT_MS = 15000
SHORT_TIMEOUT_MS = 1000          # sessions the fuzzer may let expire
MAX_LIVE_SESSIONS = 4
MAX_NODES = 45
LONG_TTL_MS = 3_600_000
SHORT_TTL_LIMIT_MS = 60_000      # a TTL below this expires during a run
CONTAINER_OWNER = -0x8000000000000000
NAMES = ("a", "b", "c")
ODD_PATHS = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/a/", "//a", "",
             "/a/../b", "/missing/x", "/a/.", "/zookeeper/x")
USERS = {"alice": "V55/p2T0OpjQ+low3NVAH4aLvm0=", "bob": "ikIaKsbtGweaHnb/jKn7OHqbunM=",
         "carol": "4ruPyIpMGhVrX6y0MJFb3MqVepY="}   # sha1 digests of user:pw / carol:x
AUTHS = ((0.30, "digest", b"alice:pw"), (0.12, "digest", b"alice:wrong"),
         (0.18, "digest", b"bob:pw"), (0.10, "digest", b"carol:x"),
         (0.03, "digest", SUPER_AUTH), (0.07, "ip", b"127.0.0.1"),
         (0.04, "digest", b"nocolon"), (0.03, "digest", None), (0.03, "digest", b""),
         (0.04, "foo", b"x"), (0.06, "digest", b"bob:wrong"))
FAILING_AUTH = {("digest", b"nocolon"), ("digest", None), ("digest", b""), ("foo", b"x")}


@dataclasses.dataclass(frozen=True)
class Node:
    owner: object          # a session label, 0, or a container/TTL encoding
    version: int
    cversion: int
    aversion: int
    children: tuple[str, ...]


Tree = dict  # path -> Node


def ttl_of(owner) -> int | None:
    if isinstance(owner, int) and owner < 0 and owner != CONTAINER_OWNER and (owner >> 56) == -1:
        return owner & ((1 << 40) - 1)
    return None


def is_short_ttl(node: Node) -> bool:
    ttl = ttl_of(node.owner)
    return ttl is not None and ttl < SHORT_TTL_LIMIT_MS


def may_be_reaped(node: Node) -> bool:
    """A node the reaper deletes once it has no children."""
    return node.owner == CONTAINER_OWNER or is_short_ttl(node)


def is_reapable(node: Node) -> bool:
    """A node the reaper deletes now (containers: once used, as ZooKeeper's)."""
    if node.children:
        return False
    return (node.owner == CONTAINER_OWNER and node.cversion > 0) or is_short_ttl(node)


@dataclasses.dataclass
class Op:
    """One step: a request on a session, or a session event.

    ``body`` is bytes, or a function of a server's base zxid (setWatches
    carries a zxid, which each server numbers differently)."""
    action: str                  # request | open | close | expire | reconnect
    session: str
    text: str
    opcode: int = 0
    body: bytes | Callable[[int], bytes] = b""
    xid: int | None = None
    timeout_ms: int = 0
    bad_password: bool = False
    ttl_ms: int | None = None     # a top-level createTTL in a TTL mode
    burst: list = dataclasses.field(default_factory=list)   # pipelined requests
    ends_burst: bool = False      # nothing may be pipelined after it


@dataclasses.dataclass
class SessionModel:
    label: str
    short: bool
    live: bool = True
    watch_class: dict = dataclasses.field(default_factory=dict)   # path -> class
    maybe: dict = dataclasses.field(default_factory=dict)         # path -> set of kinds
    rearm: dict | None = None     # watches to send back with setWatches after a reconnect
    rearm_zxid: int = 0

    def forget_watches(self) -> None:
        self.watch_class.clear()
        self.maybe.clear()


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.sessions: dict[str, SessionModel] = {}
        self.tree: Tree = {}
        self.zxid_delta = 0
        self._next_label = 1

    # ---- what happened -------------------------------------------------------------

    def after(self, op: Op, tree: Tree, zxid_delta: int, dead: set[str],
              events: dict[str, list[tuple[int, str]]], reply_err: int | None) -> None:
        """Update the model from the step as Java ran it."""
        self.tree = tree
        self.zxid_delta = zxid_delta
        s = self.sessions.get(op.session)
        if op.action == "open" and s is not None and op.session in dead:
            s.live = False
        for label in dead:
            m = self.sessions.get(label)
            if m is not None:
                m.live = False
                m.forget_watches()
        if op.action == "reconnect" and s is not None:
            # A client re-arms what it held, as ZooKeeper's ClientCnxn does.
            s.rearm = {p: set(k) for p, k in s.maybe.items() if k} if s.live else None
            s.rearm_zxid = self.zxid_delta
            s.forget_watches()
        if (op.action == "request" and op.opcode == OpCode.removeWatches and reply_err == 0
                and s is not None and op.text.endswith("type=3")):
            s.maybe.pop(op.text.split()[1], None)
        # An event setWatches fires for a path that changed consumes no watch
        # the session already had there: its own events prove nothing.
        re_armed = any(o.opcode in (OpCode.setWatches, OpCode.setWatches2)
                       for o in op.burst or [op])
        for label, evs in events.items():
            m = self.sessions.get(label)
            if m is None or (re_armed and label == op.session):
                continue
            for etype, path in evs:
                kinds = m.maybe.get(path)
                if not kinds:
                    continue
                if etype in (1, 2, 3):
                    kinds.difference_update(("data", "exist"))
                if etype in (2, 4):
                    kinds.discard("child")

    # ---- choices ------------------------------------------------------------------------

    def live(self) -> list[SessionModel]:
        return [s for s in self.sessions.values() if s.live]

    def _path(self, for_create: bool = False) -> str:
        rng = self.rng
        paths = sorted(p for p in self.tree if not p.startswith("/zookeeper"))
        r = rng.random()
        if r < 0.08 or not paths:
            return rng.choice(ODD_PATHS)
        watched = sorted({p for m in self.live() for p, k in m.maybe.items() if k})
        if watched and r < 0.3:
            # where the watches are, so that events happen
            path = rng.choice(watched)
            if for_create and rng.random() < 0.5 and path.count("/") < 4:
                path = ("" if path == "/" else path) + "/" + rng.choice(NAMES)
            return path
        if r < (0.35 if for_create else 0.6):
            return rng.choice(paths)
        parents = [p for p in paths if p.count("/") < 4] or ["/"]
        parent = rng.choice(parents)
        return ("" if parent == "/" else parent) + "/" + rng.choice(NAMES)

    def _data(self):
        return self.rng.choice((b"", b"x", b"hello", None, bytes(self.rng.randrange(256)
                                                                 for _ in range(7))))

    def _version(self, path: str) -> int:
        node = self.tree.get(path)
        r = self.rng.random()
        if r < 0.5:
            return -1
        if node is not None and r < 0.85:
            return node.version
        return self.rng.choice((0, 1, 2, -2))

    def _perms(self) -> int:
        return self.rng.choice((31, 31, 1, 0, 30, 15, 17, 3, 5, 28, self.rng.randrange(32)))

    def _id(self) -> R.Id:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return R.Id("world", "anyone")
        if r < 0.6:
            user = rng.choice(sorted(USERS))
            return R.Id("digest", f"{user}:{USERS[user]}")
        if r < 0.75:
            return R.Id("auth", "")
        if r < 0.9:
            return R.Id("ip", rng.choice(("127.0.0.1", "127.0.0.0/8", "10.0.0.1", "10.0.0.0/8")))
        return rng.choice((R.Id("digest", "nocolon"), R.Id("nosuch", "x"), R.Id("world", "bob"),
                           R.Id("ip", "300.1.1.1"), R.Id("super", "x")))

    def _acl(self) -> list[R.ACL]:
        r = self.rng.random()
        if r < 0.45:
            return [R.ACL(31, R.Id("world", "anyone"))]
        if r < 0.5:
            return []
        return [R.ACL(self._perms(), self._id()) for _ in range(self.rng.choice((1, 1, 2, 3)))]

    # ---- reapable-node accounting --------------------------------------------------------

    def _reap_parents(self, deleted: list[str], created_here: set[str]) -> set[str]:
        out = set()
        for p in deleted:
            parent = p.rsplit("/", 1)[0] or "/"
            node = self.tree.get(parent)
            if parent in created_here or (node is not None and may_be_reaped(node)):
                out.add(parent)
        return out

    def _ephemerals(self, label: str) -> list[str]:
        return [p for p, n in self.tree.items() if n.owner == label]

    def _close_is_safe(self, label: str) -> bool:
        return len(self._reap_parents(self._ephemerals(label), set())) <= 1

    # ---- the next step ---------------------------------------------------------------------

    def next(self) -> Op:
        live = self.live()
        if len(live) < 2:
            return self._open()
        for _ in range(50):
            op = self._pick(self.rng.choice(live))
            if op is not None:
                return op
        return Op("request", live[0].label, "ping", OpCode.ping, b"", XID_PING)

    def _open(self) -> Op:
        label = f"s{self._next_label}"
        self._next_label += 1
        short = self.rng.random() < 0.3
        self.sessions[label] = SessionModel(label, short)
        timeout = SHORT_TIMEOUT_MS if short else NORMAL_TIMEOUT_MS
        return Op("open", label, f"open timeout={timeout}", timeout_ms=timeout)

    def _pick(self, s: SessionModel) -> Op | None:
        from . import ops  # the request builders, one per opcode family
        rng = self.rng
        if s.rearm is not None:
            return self._rearm(s)
        r = rng.random()
        if r < 0.025 and len(self.live()) < MAX_LIVE_SESSIONS:
            return self._open()
        if r < 0.045:
            return Op("close", s.label, "closeSession", OpCode.closeSession) \
                if self._close_is_safe(s.label) else None
        if r < 0.075:
            if not s.short or not self._close_is_safe(s.label):
                return None
            return Op("expire", s.label, "expire (abort, wait)")
        if r < 0.095:
            return Op("reconnect", s.label, "reconnect", bad_password=rng.random() < 0.3)
        if r < 0.16:
            return self._burst(s, ops)
        if r < 0.205:
            scheme, cred = self._auth()
            if (scheme, cred) in FAILING_AUTH and not self._close_is_safe(s.label):
                return None
            return Op("request", s.label, f"auth {scheme} {cred!r}", OpCode.auth,
                      R.AuthPacket(0, scheme, cred).to_bytes(), XID_AUTH)
        return ops.request(self, s)

    def _burst(self, s: SessionModel, ops) -> Op | None:
        """2-4 requests sent back to back before any reply is read."""
        burst, removals = [], 0
        for _ in range(self.rng.randrange(2, 5)):
            op = ops.request(self, s)
            if op is None or op.opcode == 99 or op.ttl_ms is not None and \
                    op.ttl_ms < SHORT_TTL_LIMIT_MS:
                continue   # a short TTL node could be reaped between two requests
            # Each request makes at most one node reapable; so must the burst.
            removals += op.opcode in (OpCode.delete, OpCode.deleteContainer, OpCode.multi)
            if removals > 1:
                break
            burst.append(op)
            if op.ends_burst:
                break
        if len(burst) < 2:
            return None
        return Op("burst", s.label, "burst [" + "; ".join(o.text for o in burst) + "]",
                  burst=burst)

    def _rearm(self, s: SessionModel) -> Op:
        lists = {k: [] for k in ("data", "exist", "child", "persistent", "recursive")}
        for path, kinds in sorted(s.rearm.items()):
            for kind in sorted(kinds):
                cls = kind if kind in ("persistent", "recursive") else "oneshot"
                if self.may_watch(s, path, cls, kind):
                    lists[kind].append(path)
        s.rearm = None
        return self._set_watches_op(s, True, lists, s.rearm_zxid)

    def _auth(self):
        x = self.rng.random() * sum(w for w, _, _ in AUTHS)
        for w, scheme, cred in AUTHS:
            x -= w
            if x < 0:
                return scheme, cred
        return AUTHS[0][1:]

    # ---- watch bookkeeping used by ops -------------------------------------------------------

    def may_watch(self, s: SessionModel, path: str, cls: str, kind: str) -> bool:
        """Register a watch of ``kind`` unless it would mix classes (ZOOKEEPER-4466)."""
        have = s.watch_class.get(path)
        if have is not None and have != cls:
            return False
        s.watch_class[path] = cls
        s.maybe.setdefault(path, set()).add(kind)
        return True

    def may_check(self, s: SessionModel, path: str) -> bool:
        """No other session may hold a watch on ``path`` (Java's containsWatcher)."""
        return not any(o.maybe.get(path) for o in self.live() if o is not s)

    def set_watches_body(self, s: SessionModel, v2: bool):
        lists = {k: [] for k in ("data", "exist", "child", "persistent", "recursive")}
        for _ in range(self.rng.randrange(1, 5)):
            kind = self.rng.choice(sorted(lists) if v2 else ("data", "exist", "child"))
            path = self._path()
            cls = kind if kind in ("persistent", "recursive") else "oneshot"
            if self.may_watch(s, path, cls, kind) and path not in lists[kind]:
                lists[kind].append(path)
        return self._set_watches_op(s, v2, lists, self.rng.randrange(0, self.zxid_delta + 1))

    def _set_watches_op(self, s: SessionModel, v2: bool, lists: dict, delta: int) -> Op:
        text = f"setWatches{'2' if v2 else ''} rel=+{delta} {lists}"

        def body(base: int) -> bytes:
            if v2:
                return R.SetWatches2(base + delta, lists["data"], lists["exist"], lists["child"],
                                     lists["persistent"], lists["recursive"]).to_bytes()
            return R.SetWatches(base + delta, lists["data"], lists["exist"],
                                lists["child"]).to_bytes()
        op = OpCode.setWatches2 if v2 else OpCode.setWatches
        return Op("request", s.label, text, op, body, XID_SET_WATCHES)
