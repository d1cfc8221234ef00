"""Client workloads that record histories: kazoo clients, each on its own
thread, reaching the servers by their namespace addresses.

Every operation becomes a ``Record``: client, session, kind, call and return
times (seconds since the run began), outcome ("ok", "fail" = definitely did
not happen, "info" = unknown: a timeout or a lost connection) and values.

- register: one znode; plain reads (getData), sync()+getData, and
  compare-and-set (setData with the version last read, a value never
  written before);
- set: sequential creates under one parent, each with a unique value.

``plant`` injects a client-side bug for the checkers to catch: "stale-read"
answers a sync()+read with the register's initial value after the client's
own CAS was acknowledged; "phantom-ack" reports a create acknowledged that
was never sent; "double-lock" (recipes.py) has a lock client believe it
holds the lock once without taking it.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import recipes

__all__ = ["Record", "Workloads", "REGISTER", "SET_PARENT", "INIT_VALUE"]

REGISTER = "/chaos-register"
SET_PARENT = "/chaos-set"
INIT_VALUE = "init"
TOUCH = "/chaos-converge"
OP_TIMEOUT_S = 3.0
SESSION_TIMEOUT_S = 4.0
PAUSE_S = 0.01


@dataclass
class Record:
    client: int
    session: int
    kind: str            # read, sync-read, cas, create
    call: float
    ret: float | None = None
    outcome: str = "info"
    value: Any = None    # read: value; cas: (from, to); create: value
    version: int | None = None   # read: the version read; cas: expected; ok cas: new
    result: Any = None   # create: the path; cas ok: the new version
    err: str = ""
    zxid: int | None = None   # register: the mzxid of the value read or written


@dataclass
class ClientLog:
    id: int
    workload: str
    host: str
    records: list[Record] = field(default_factory=list)
    states: list[tuple[float, str]] = field(default_factory=list)  # kazoo's, as reported
    gen: int = 0          # connection drops (SUSPENDED or LOST) so far
    raw_events: list[tuple] = field(default_factory=list)  # (gen, type, watchers fired)


class Workloads:
    def __init__(self, hosts: list[str], seed: int, register_clients: int = 3,
                 set_clients: int = 2, plant: str | None = None, lock_clients: int = 2,
                 ephemeral_clients: int = 2, watch_clients: int = 1):
        self.hosts = hosts
        self.rng = random.Random(seed)
        self.plant = set((plant or "").split(",")) - {""}
        self.logs: list[ClientLog] = []
        kinds = (["register"] * register_clients + ["set"] * set_clients + ["lock"] * lock_clients
                 + ["ephemeral"] * ephemeral_clients + ["watch"] * watch_clients)
        for i, kind in enumerate(kinds):
            self.logs.append(ClientLog(i + 1, kind, hosts[i % len(hosts)]))
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.errors_soft: list[str] = []     # worth a line, not a failed run
        self.session_timeout_ms = int(SESSION_TIMEOUT_S * 1000)
        self.final_czxid: dict[int, int] = {}   # the set's sequence number -> czxid
        self.t0 = time.monotonic()
        logging.getLogger("kazoo").setLevel(logging.CRITICAL)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _client(self, first: str):
        from kazoo.client import KazooClient
        others = [h for h in self.hosts if h != first]
        # The first host gets every client's first connection, spreading them.
        return KazooClient(hosts=",".join([first, *others]), timeout=SESSION_TIMEOUT_S,
                           randomize_hosts=False, connection_retry={"max_tries": -1,
                                                                    "max_delay": 0.5})

    def setup(self) -> None:
        zk = self._client(self.hosts[0])
        zk.start(timeout=30)
        try:
            zk.ensure_path(SET_PARENT)
            zk.ensure_path(recipes.EPH_PARENT)
            if not zk.exists(REGISTER):
                zk.create(REGISTER, INIT_VALUE.encode())
        finally:
            zk.stop()
            zk.close()

    def start(self) -> None:
        for log in self.logs:
            seed = self.rng.randrange(2 ** 32)
            target = {"register": self._register, "set": self._set,
                      "lock": recipes.lock, "ephemeral": recipes.ephemeral,
                      "watch": recipes.watch}[log.workload]
            if log.workload not in ("register", "set"):
                target = functools.partial(target, self)
            t = threading.Thread(target=self._run, args=(target, log, seed),
                                 name=f"chaos-client-{log.id}", daemon=True)
            self.threads.append(t)
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(OP_TIMEOUT_S * 4 + SESSION_TIMEOUT_S)

    def _run(self, target, log: ClientLog, seed: int) -> None:
        zk = self._client(log.host)

        def on_state(state, log=log):
            # On kazoo's connection thread, in order with what it reads.
            log.states.append((self.now(), str(state)))
            if state != "CONNECTED":
                log.gen += 1
        zk.add_listener(on_state)
        try:
            zk.start(timeout=30)
            target(zk, log, random.Random(seed))
        except Exception as e:  # reported: a client that died checks nothing
            self.errors.append(f"client {log.id}: {type(e).__name__}: {e}")
        finally:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass

    @staticmethod
    def _session(zk) -> int:
        cid = zk.client_id
        return cid[0] if cid else 0

    def _finish(self, rec: Record, outcome: str, err: str = "") -> Record:
        rec.ret, rec.outcome, rec.err = self.now(), outcome, err
        return rec

    # ---- register ----------------------------------------------------------------------

    def _register(self, zk, log: ClientLog, rng: random.Random) -> None:
        from kazoo.exceptions import BadVersionError
        known: tuple[str, int] | None = None     # (value, version) last read
        n = 0
        acked = False
        planted = False
        while not self.stop.is_set():
            choice = rng.random()
            if known is None or choice < 0.35:
                kind = "read" if choice < 0.2 or known is None else "sync-read"
            else:
                kind = "sync-read" if choice < 0.6 else "cas"
            rec = Record(log.id, self._session(zk), kind, self.now())
            log.records.append(rec)
            try:
                if kind == "cas":
                    n += 1
                    value = f"c{log.id}-{n}"
                    rec.value, rec.version = (known[0], value), known[1]
                    try:
                        stat = zk.set_async(REGISTER, value.encode(), known[1]).get(
                            timeout=OP_TIMEOUT_S)
                    except BadVersionError:
                        self._finish(rec, "fail", "BadVersion")
                        known = None
                    else:
                        rec.result, rec.zxid = stat.version, stat.mzxid
                        self._finish(rec, "ok")
                        known, acked = (value, stat.version), True
                else:
                    if kind == "sync-read":
                        zk.sync_async(REGISTER).get(timeout=OP_TIMEOUT_S)
                    data, stat = zk.get_async(REGISTER).get(timeout=OP_TIMEOUT_S)
                    rec.value, rec.version, rec.zxid = data.decode(), stat.version, stat.mzxid
                    if ("stale-read" in self.plant and kind == "sync-read" and acked
                            and not planted):
                        rec.value, rec.version, planted = INIT_VALUE, 0, True
                    self._finish(rec, "ok")
                    known = (rec.value, rec.version)
            except Exception as e:
                # A read that failed did nothing; a CAS may or may not have happened.
                self._finish(rec, "info" if kind == "cas" else "fail", type(e).__name__)
                if kind == "cas":
                    known = None
                self.stop.wait(0.1)
            self.stop.wait(PAUSE_S)

    # ---- set ---------------------------------------------------------------------------

    def _set(self, zk, log: ClientLog, rng: random.Random) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            value = f"s{log.id}-{n}"
            rec = Record(log.id, self._session(zk), "create", self.now(), value=value)
            log.records.append(rec)
            try:
                path = zk.create_async(SET_PARENT + "/e-", value.encode(),
                                       sequence=True).get(timeout=OP_TIMEOUT_S)
                rec.result = path
                self._finish(rec, "ok")
            except Exception as e:
                self._finish(rec, "info", type(e).__name__)
                self.stop.wait(0.1)
            if "phantom-ack" in self.plant and n == 20 and log is self._set_logs()[0]:
                fake = Record(log.id, rec.session, "create", self.now(), value=f"s{log.id}-x")
                fake.result = SET_PARENT + "/e-%010d" % 9_999_999_000
                log.records.append(self._finish(fake, "ok"))
            self.stop.wait(PAUSE_S)

    # ---- the final state ---------------------------------------------------------------

    def touch(self) -> None:
        """A write outside the histories (on its own node)."""
        zk = self._client(self.hosts[0])
        zk.start(timeout=30)
        try:
            zk.ensure_path(TOUCH)
            zk.set(TOUCH, b"x")
        finally:
            zk.stop()
            zk.close()

    def read_final(self) -> dict[str, str]:
        """The set's children after the run: path -> value."""
        from kazoo.exceptions import NoNodeError
        zk = self._client(self.hosts[0])
        zk.start(timeout=30)
        try:
            zk.sync(SET_PARENT)
            out = {}
            try:
                children = zk.get_children(SET_PARENT)
            except NoNodeError:
                # The parent itself was lost (it was created before the run's
                # writes, so every acknowledged create is lost with it): the
                # set checker reports each one.
                self.errors.append(f"{SET_PARENT} is gone after the run")
                return out
            for child in children:
                data, stat = zk.get(f"{SET_PARENT}/{child}")
                out[f"{SET_PARENT}/{child}"] = data.decode()
                self.final_czxid[int(child.rsplit("-", 1)[1])] = stat.czxid
            return out
        finally:
            zk.stop()
            zk.close()

    def _set_logs(self) -> list[ClientLog]:
        return [log for log in self.logs if log.workload == "set"]

    def records(self, workload: str) -> list[Record]:
        return [r for log in self.logs if log.workload == workload for r in log.records]
