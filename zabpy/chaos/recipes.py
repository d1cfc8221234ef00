"""Workloads on sessions, ephemerals, watches and kazoo's Lock recipe. Each
runs on a client thread of ``Workloads`` (workload.py) and appends
``Record``s to its ``ClientLog``; the checkers are in recipe_checks.py.

Every client's connection states are recorded as kazoo reports them
(``ClientLog.states``, and ``ClientLog.gen`` counts the drops: kazoo drops
every watch of a connection that was lost, firing its watchers with a NONE
event, so "while connected" means "within one ``gen``").

- lock: ``zk.Lock(LOCK_PATH)``: acquire (with a timeout), hold a few tens
  of ms, release. A hold is recorded from acquire's return to release's
  call; the checker ends it earlier if the client's connection was
  suspended meanwhile (a holder must then assume it lost the lock).
- ephemeral: each round opens a new session, creates an ephemeral node
  named after it, checks for 1-3 s that the node is there (``exists``),
  then closes the session. Each round also creates an *orphan*: an
  ephemeral made over a raw socket (kazoo's serializers) whose connection
  is then dropped without closeSession, so only expiry removes it. After
  the run every member must hold no ephemeral at all.
- watch: a data watch on the register and a child watch on the set's
  parent, on one session, each registered again after its event; between
  events, plain reads of the register. A hook on kazoo's connection thread
  (``_read_watch_event``) sees every WATCHER_EVENT before kazoo pops its
  watchers and credits it to the registration it fires, so "fired once"
  is counted where the bytes arrive and in their order.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .workload import ClientLog, Workloads

__all__ = ["LOCK_PATH", "EPH_PARENT", "lock", "ephemeral", "watch", "orphan_ephemeral",
           "ephemerals_left"]

LOCK_PATH = "/chaos-lock"
EPH_PARENT = "/chaos-eph"
LOCK_WAIT_S = 6.0
_HOLDING: set[int] = set()    # lock clients holding now (for the planted bug only)
EPHEMERAL_FLAG = 1
EVENT_NAMES = {1: "CREATED", 2: "DELETED", 3: "CHANGED", 4: "CHILD"}   # WatcherEvent types


def lock(wl: "Workloads", zk, log: "ClientLog", rng: random.Random) -> None:
    from .workload import Record
    lk = zk.Lock(LOCK_PATH, identifier=f"client-{log.id}")
    n = 0
    while not wl.stop.is_set():
        n += 1
        if "double-lock" in wl.plant and n == 10 and log.id == _first(wl, "lock"):
            # The planted bug: believe we hold the lock without taking it,
            # while another client holds it.
            deadline = wl.now() + 5.0
            while not (_HOLDING - {log.id}) and wl.now() < deadline:
                wl.stop.wait(0.005)
            rec = Record(log.id, wl._session(zk), "lock", wl.now())
            log.records.append(wl._finish(rec, "ok"))
            wl.stop.wait(0.3)
            rec.result = wl.now()
            continue
        rec = Record(log.id, wl._session(zk), "lock", wl.now())
        log.records.append(rec)
        try:
            got = lk.acquire(timeout=LOCK_WAIT_S)
        except Exception as e:  # noqa: BLE001 - recorded: the lock was not taken
            wl._finish(rec, "info", type(e).__name__)
            wl.stop.wait(0.1)
            continue
        if not got:
            wl._finish(rec, "fail", "timeout")
            continue
        wl._finish(rec, "ok")
        rec.session = wl._session(zk)
        _HOLDING.add(log.id)
        wl.stop.wait(rng.uniform(0.02, 0.12))
        rec.result = wl.now()               # the holder stops believing it holds
        _HOLDING.discard(log.id)
        try:
            lk.release()
        except Exception as e:  # noqa: BLE001 - its node goes with its session
            rec.err = f"release: {type(e).__name__}"
        wl.stop.wait(rng.uniform(0.0, 0.05))


def _first(wl: "Workloads", workload: str) -> int:
    return min(log.id for log in wl.logs if log.workload == workload)


def ephemeral(wl: "Workloads", zk, log: "ClientLog", rng: random.Random) -> None:
    """``zk`` (the thread's own client) only makes the parent; each round
    has a session of its own."""
    from .workload import Record
    n = 0
    host = log.host
    while not wl.stop.is_set():
        n += 1
        orphan = Record(log.id, 0, "orphan", wl.now(), value=f"{EPH_PARENT}/o{log.id}-{n}")
        log.records.append(orphan)
        try:
            orphan.session = orphan_ephemeral(host, orphan.value, wl.session_timeout_ms)
            wl._finish(orphan, "ok")
        except Exception as e:  # noqa: BLE001 - recorded: unknown whether it was made
            wl._finish(orphan, "info", type(e).__name__)
        session = wl._client(host)
        try:
            session.start(timeout=10)
        except Exception as e:  # noqa: BLE001 - a round that never began
            wl.errors_soft.append(f"client {log.id}: session start: {type(e).__name__}")
            _close(session)
            wl.stop.wait(0.2)
            continue
        try:
            _ephemeral_round(wl, session, log, rng, f"{EPH_PARENT}/c{log.id}-{n}", Record)
        finally:
            rec = Record(log.id, wl._session(session), "close", wl.now())
            log.records.append(rec)
            try:
                session.stop()
                wl._finish(rec, "ok")
            except Exception as e:  # noqa: BLE001 - it expires instead
                wl._finish(rec, "info", type(e).__name__)
            session.close()


def _ephemeral_round(wl, zk, log, rng, path: str, Record) -> None:
    from .workload import OP_TIMEOUT_S
    sid = wl._session(zk)
    rec = Record(log.id, sid, "eph-create", wl.now(), value=path)
    log.records.append(rec)
    try:
        zk.create_async(path, b"", ephemeral=True).get(timeout=OP_TIMEOUT_S)
        wl._finish(rec, "ok")
    except Exception as e:  # noqa: BLE001 - an unknown create checks nothing
        wl._finish(rec, "info", type(e).__name__)
        return
    until = wl.now() + rng.uniform(1.0, 3.0)
    while wl.now() < until and not wl.stop.is_set():
        chk = Record(log.id, wl._session(zk), "eph-check", wl.now(), value=path)
        log.records.append(chk)
        try:
            stat = zk.exists_async(path).get(timeout=OP_TIMEOUT_S)
            chk.result = stat.ephemeralOwner if stat is not None else None
            wl._finish(chk, "ok")
        except Exception as e:  # noqa: BLE001
            wl._finish(chk, "fail", type(e).__name__)
            if type(e).__name__ in ("SessionExpiredError", "ConnectionClosedError"):
                return
        wl.stop.wait(0.1)


def _close(zk) -> None:
    try:
        zk.stop()
        zk.close()
    except Exception:  # noqa: BLE001 - best effort
        pass


def orphan_ephemeral(host: str, path: str, timeout_ms: int) -> int:
    """Open a session over a raw socket, create an ephemeral ``path``, and
    drop the connection without closing the session; its id."""
    from kazoo.protocol.serialization import ACL, Connect, Create, Id
    addr, port = host.rsplit(":", 1)
    with socket.create_connection((addr, int(port)), timeout=3.0) as s:
        _send(s, bytes(Connect(0, 0, timeout_ms, 0, b"\0" * 16, False).serialize()))
        resp = _recv(s)
        _proto, _timeout, session_id = struct.unpack_from(">iiq", resp)
        if session_id == 0:
            raise ConnectionError("server refused the session")
        body = Create(path, b"", [ACL(31, Id("world", "anyone"))], EPHEMERAL_FLAG).serialize()
        _send(s, struct.pack(">ii", 1, Create.type) + bytes(body))
        reply = _recv(s)
        xid, _zxid, err = struct.unpack_from(">iqi", reply)
        if xid != 1 or err != 0:
            raise ConnectionError(f"create {path}: xid {xid} err {err}")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return session_id


def _send(s: socket.socket, data: bytes) -> None:
    s.sendall(struct.pack(">i", len(data)) + data)


def _recv(s: socket.socket) -> bytes:
    n = struct.unpack(">i", _exact(s, 4))[0]
    return _exact(s, n)


def _exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def watch(wl: "Workloads", zk, log: "ClientLog", rng: random.Random) -> None:
    """Two chains of registrations on one session: a data watch on the
    register and a child watch on the set's parent, each set again once it
    fired; plain reads of the register in between."""
    from .workload import OP_TIMEOUT_S, REGISTER, SET_PARENT, Record
    _hook_watch_events(zk, log, {REGISTER: "data", SET_PARENT: "child"})
    pending: dict[str, Record | None] = {"data": None, "child": None}
    fired = {"data": threading.Event(), "child": threading.Event()}
    any_fired = threading.Event()
    while not wl.stop.is_set():
        for kind in ("data", "child"):
            if pending[kind] is not None and not fired[kind].is_set():
                continue
            fired[kind] = threading.Event()
            rec = Record(log.id, wl._session(zk), "watch-reg", wl.now())
            rec.value = {"gen": log.gen, "events": 0, "none": 0, "kind": kind}
            log.records.append(rec)
            reg = _Registration(rec, (fired[kind], any_fired))
            try:
                # No timeout of our own: kazoo registers the watch when the
                # reply comes, so a reply we gave up on would still register.
                if kind == "data":
                    _data, stat = zk.get(REGISTER, watch=reg)
                    rec.version = stat.version
                else:
                    _children, stat = zk.get_children(SET_PARENT, watch=reg, include_data=True)
                    rec.version = stat.cversion
                rec.result = log.gen
                wl._finish(rec, "ok")
                pending[kind] = rec
            except Exception as e:  # noqa: BLE001 - no watch was set
                wl._finish(rec, "fail", type(e).__name__)
                pending[kind] = None
                wl.stop.wait(0.1)
        any_fired.clear()
        if any(f.is_set() for f in fired.values()) or any_fired.wait(rng.uniform(0.05, 0.3)):
            continue
        current = pending["data"]
        if current is None:
            continue
        rd = Record(log.id, wl._session(zk), "watch-read", wl.now())
        log.records.append(rd)
        try:
            _data, stat = zk.get_async(REGISTER).get(timeout=OP_TIMEOUT_S)
            # What the pending registration had seen when this reply came:
            # events are credited on the connection thread before it.
            rd.version, rd.result = stat.version, log.gen
            rd.value = {"reg_version": current.version, "reg_gen": current.result,
                        "reg_call": current.call, "events": current.value["events"],
                        "none": current.value["none"]}
            wl._finish(rd, "ok")
        except Exception as e:  # noqa: BLE001
            wl._finish(rd, "fail", type(e).__name__)


class _Registration:
    """The watcher of one registration (a fresh object each time: kazoo
    keeps watchers in a set)."""

    def __init__(self, rec, events: tuple[threading.Event, ...]):
        self.rec = rec
        self.events = events

    def __call__(self, event) -> None:
        if event.type == "NONE":
            self.rec.value["none"] += 1
        for e in self.events:
            e.set()


def _hook_watch_events(zk, log: "ClientLog", paths: dict[str, str]) -> None:
    """Credit each WATCHER_EVENT on ``paths`` (path -> "data" or "child") to
    the registrations kazoo is about to fire, on the connection thread,
    before kazoo pops them; ``log.raw_events`` gets (gen, type, path,
    registrations fired, the record of the one fired)."""
    from kazoo.protocol.serialization import Watch
    conn = zk._connection
    original = conn._read_watch_event

    def read_watch_event(buffer, offset):
        event, _ = Watch.deserialize(buffer, offset)
        kind = paths.get(event.path)
        if kind is not None:
            table = zk._data_watchers if kind == "data" else zk._child_watchers
            regs = [w for w in table.get(event.path, ()) if isinstance(w, _Registration)]
            # The registration's record, not its version: kazoo adds the
            # watcher on this thread before the caller's thread reads the
            # reply, so the version may not be filled in yet.
            log.raw_events.append((log.gen, EVENT_NAMES.get(event.type, str(event.type)),
                                   event.path, len(regs), regs[0].rec if regs else None))
            for w in regs:
                w.rec.value["events"] += 1
        return original(buffer, offset)
    conn._read_watch_event = read_watch_event


def ephemerals_left(hosts: list[str], wait_s: float, log=None) -> dict[str, list[str]]:
    """Each member's children of EPH_PARENT, read from that member alone,
    once every member has none or after ``wait_s``: host -> children."""
    import time
    from kazoo.client import KazooClient
    left: dict[str, list[str]] = {}
    clients = {}
    try:
        for h in hosts:
            zk = KazooClient(hosts=h, timeout=10)
            zk.start(timeout=30)
            clients[h] = zk
        deadline = time.monotonic() + wait_s
        while True:
            left = {h: sorted(zk.get_children(EPH_PARENT)) for h, zk in clients.items()
                    if zk.exists(EPH_PARENT)}
            left = {h: c for h, c in left.items() if c}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)
    finally:
        for zk in clients.values():
            _close(zk)
