"""The benchmark workloads: what each client process sends, and what is checked.

A workload has three parts, run in this order for every measured run:

``prepare(cfg)``  (once, in the parent process, untimed)
    creates the nodes the workload reads (idempotent: shared data made by an
    earlier run on the same server is reused) and a directory for this run.
``run(w)``        (in every client process; ``w`` is a ``loadgen.WorkerCtx``)
    opens sessions, calls ``await w.start()`` (a barrier across all client
    processes, which starts the clock), does the timed work, calls
    ``w.end()``, and closes its sessions.
``verify(cfg, counters)``  (in the parent, untimed)
    reads the server's state back and returns problems (for example: the
    run directory must hold exactly as many nodes as creates succeeded).

Most workloads are closed loops: each session keeps ``depth`` requests in
flight, so they measure throughput and latency under full load. ``Paced``
is an open loop instead: every session sends at a fixed rate (all sessions
together ``cfg.rate_ops_s``, 2,000/s by default) whether or not earlier
replies have come back, so its p99 is the latency of a server that is busy
but not saturated.

Work is bounded either by time (``cfg.duration_s``) or, for tests, by an
exact op budget (``cfg.ops``) that is split deterministically over all
sessions of all processes, so a small run has exactly predictable counts.

Request bodies are encoded with ``zabpy.jute`` records, once per distinct
request where possible; create paths differ per request, so a create is the
jute-encoded path string followed by a pre-encoded constant tail.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass

from zabpy.jute import Err, OpCode, Perms
from zabpy.jute import records as R

from .client import Call, Counters, Session, all_of

__all__ = ["Workload", "GetData", "Exists", "SetData", "Mixed", "Create", "GetChildren", "Large",
           "Paced", "drive", "pace", "LARGE_VALUE_BYTES", "OPEN_ACL", "create_tree",
           "children_count"]

# jute.maxbuffer is 0xfffff (1 MiB - 1 byte) on both servers and bounds the whole
# request frame, so a "1 MiB value" is 1 MiB less 1 KiB of room for header and path.
LARGE_VALUE_BYTES = 1024 * 1024 - 1024
OPEN_ACL = [R.ACL(perms=int(Perms.ALL), id=R.Id(scheme="world", id="anyone"))]
SETUP_DEPTH = 256  # pipelined requests when creating shared data

_INT = struct.Struct(">i")
ROOT = "/bench"


def _create_body(path: str, data: bytes, mode: int = 0) -> bytes:
    return R.CreateRequest(path=path, data=data, acl=OPEN_ACL, flags=mode).to_bytes()


def _create_tail(data: bytes, mode: int = 0) -> bytes:
    """The bytes after the path in a CreateRequest (the path is encoded first)."""
    return _create_body("", data, mode)[4:]


def _path_bytes(path: str) -> bytes:
    raw = path.encode()
    return _INT.pack(len(raw)) + raw


async def create_tree(sess: Session, paths: list[str], data: bytes = b"",
                      mode: int = 0) -> list[str]:
    """Create ``paths`` in order, pipelined (``mode``: CreateMode flags, 1 for
    ephemerals); an existing node is fine. Returns problems."""
    problems: list[str] = []
    loop = asyncio.get_running_loop()
    futs: list[asyncio.Future] = []
    for i, path in enumerate(paths):
        fut = loop.create_future()
        futs.append(fut)
        sess.request(OpCode.create, _create_body(path, data, mode), Call(fut), timed=False)
        if len(sess.pending) >= SETUP_DEPTH:
            await sess.wait_below(SETUP_DEPTH // 2, 120)
    await sess.wait_below(1, 120)
    for path, fut in zip(paths, futs):
        err = fut.result()[0] if fut.done() else None
        if err not in (Err.OK, Err.NODEEXISTS):
            problems.append(f"create {path}: err {err}")
    return problems


async def children_count(sess: Session, path: str) -> int | None:
    """Number of children of ``path`` (None if it does not exist)."""
    err, body = await sess.call(OpCode.getChildren,
                                R.GetChildrenRequest(path=path, watch=False).to_bytes())
    if err:
        return None
    return _INT.unpack_from(body, 0)[0]


@dataclass
class Workload:
    """Base: a pipelined workload driven by ``source(w, sess_index) -> next(seq)``."""

    name: str = ""
    sessions: int = 8  # per client process, unless the config says otherwise
    depth: int = 32  # requests in flight per session
    description: str = ""

    async def prepare(self, cfg, sess: Session) -> list[str]:
        return []

    async def verify(self, cfg, sess: Session, counters: Counters) -> list[str]:
        return []

    def ops_done(self, counters: Counters) -> int:
        """The unit of work this workload reports (default: successful replies)."""
        return counters.ok

    def throughput(self, results: list[dict], counters: Counters, wall_s: float | None):
        """Ops per second over the timed phase of all client processes."""
        return counters.ok / wall_s if wall_s else None

    def count_problems(self, cfg, counters: Counters) -> list[str]:
        """Counts that must hold beyond 'every request answered without error'."""
        return []

    def source(self, w, g: int):
        """A function seq -> (op, body, check) for global session index ``g``."""
        raise NotImplementedError

    async def setup_sessions(self, w, sessions: list[Session]) -> None:
        """Untimed per-session preparation in the client process (default: none)."""

    async def run(self, w) -> None:
        n = w.cfg.sessions or self.sessions
        depth = w.cfg.depth or self.depth
        sessions = await w.open_sessions(n)
        await self.setup_sessions(w, sessions)
        srcs = [self.source(w, w.global_index(i, n)) for i in range(n)]
        budgets = [w.budget(w.global_index(i, n), n * w.procs) for i in range(n)]
        await w.start()
        await all_of(drive(w, s, src, b, depth) for s, src, b in zip(sessions, srcs, budgets))
        await w.end()
        await w.close_sessions(sessions)


async def drive(w, sess: Session, source, budget: int | None, depth: int) -> None:
    """Keep ``depth`` requests in flight until the budget or the deadline is reached.

    Refilling only once a quarter of the window has drained batches sends into
    one write and one wake-up, which keeps the client's CPU per request low.
    """
    seq = 0
    deadline = w.deadline_ns
    low = max(1, depth - max(1, depth // 4))
    while budget is None or seq < budget:
        room = depth - len(sess.pending)
        if budget is not None:
            room = min(room, budget - seq)
        for _ in range(room):
            op, body, check = source(seq)
            sess.send(op, body, check)
            seq += 1
        sess.flush()
        if deadline is not None and time.monotonic_ns() >= deadline:
            break
        await sess.wait_below(low, w.cfg.reply_timeout_s)
    await sess.wait_below(1, w.cfg.reply_timeout_s)


async def pace(w, sess: Session, source, budget: int | None, depth: int, interval_ns: int,
               offset_ns: int) -> None:
    """Send one request every ``interval_ns``, starting ``offset_ns`` after the start.

    An open loop: a send does not wait for earlier replies, and a late loop
    catches up at once, so a slow server is not offered less work. Only when
    ``depth`` requests are pending on the session (the server is far behind)
    does it wait, which bounds memory. Latency is timed from the actual send.
    """
    seq = 0
    next_ns = w.t_start + offset_ns
    while budget is None or seq < budget:
        if w.deadline_ns is not None and next_ns >= w.deadline_ns:
            break
        delay_ns = next_ns - time.monotonic_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)
        if len(sess.pending) >= depth:
            await sess.wait_below(depth, w.cfg.reply_timeout_s)
        op, body, check = source(seq)
        sess.request(op, body, check)
        seq += 1
        next_ns += interval_ns
    await sess.wait_below(1, w.cfg.reply_timeout_s)


# ---- shared read data ----------------------------------------------------------

def data_path(k: int) -> str:
    return f"{ROOT}/data/n-{k:05d}"


async def prepare_data(cfg, sess: Session) -> list[str]:
    """/bench/data/n-00000.. with cfg.value_bytes each, unless already there."""
    last = data_path(cfg.data_nodes - 1)
    err, _ = await sess.call(OpCode.exists, R.ExistsRequest(path=last, watch=False).to_bytes())
    if err == Err.OK:
        return []
    paths = [ROOT, f"{ROOT}/data"]
    problems = await create_tree(sess, paths)
    return problems + await create_tree(sess, [data_path(k) for k in range(cfg.data_nodes)],
                                        bytes(cfg.value_bytes))


def _data_check(size: int):
    def check(body: memoryview) -> bool:
        return len(body) >= 4 and _INT.unpack_from(body, 0)[0] == size
    return check


def _pick(g: int, seq: int, n: int) -> int:
    return (g * 7919 + seq) % n


@dataclass
class GetData(Workload):
    name: str = "getData"
    description: str = "getData of 100-byte values (1,000 nodes)"

    async def prepare(self, cfg, sess):
        return await prepare_data(cfg, sess)

    def source(self, w, g):
        n = w.cfg.data_nodes
        bodies = [R.GetDataRequest(path=data_path(k), watch=False).to_bytes() for k in range(n)]
        check = _data_check(w.cfg.value_bytes)
        op = int(OpCode.getData)
        return lambda seq: (op, bodies[_pick(g, seq, n)], check)


@dataclass
class Exists(Workload):
    name: str = "exists"
    description: str = "exists on existing nodes"

    async def prepare(self, cfg, sess):
        return await prepare_data(cfg, sess)

    def source(self, w, g):
        n = w.cfg.data_nodes
        bodies = [R.ExistsRequest(path=data_path(k), watch=False).to_bytes() for k in range(n)]
        op = int(OpCode.exists)
        return lambda seq: (op, bodies[_pick(g, seq, n)], None)


@dataclass
class SetData(Workload):
    name: str = "setData"
    description: str = "setData of 100-byte values, version -1"

    async def prepare(self, cfg, sess):
        return await prepare_data(cfg, sess)

    def source(self, w, g):
        n = w.cfg.data_nodes
        value = bytes(w.cfg.value_bytes)
        bodies = [R.SetDataRequest(path=data_path(k), data=value, version=-1).to_bytes()
                  for k in range(n)]
        op = int(OpCode.setData)
        return lambda seq: (op, bodies[_pick(g, seq, n)], None)


@dataclass
class Mixed(Workload):
    name: str = "mixed"
    description: str = "90% getData / 10% setData"

    async def prepare(self, cfg, sess):
        return await prepare_data(cfg, sess)

    def source(self, w, g):
        get = GetData().source(w, g)
        put = SetData().source(w, g)
        return lambda seq: put(seq) if seq % 10 == 9 else get(seq)


@dataclass
class Create(Workload):
    name: str = "create"
    description: str = "create persistent 100-byte nodes, unique paths"

    def run_dir(self, cfg) -> str:
        return f"{ROOT}/create/{cfg.run_id}"

    async def prepare(self, cfg, sess):
        return await create_tree(sess, [ROOT, f"{ROOT}/create", self.run_dir(cfg)])

    def source(self, w, g):
        prefix = f"{self.run_dir(w.cfg)}/s{g}-"
        tail = _create_tail(bytes(w.cfg.value_bytes))
        op = int(OpCode.create)
        return lambda seq: (op, _path_bytes(prefix + str(seq)) + tail, None)

    async def verify(self, cfg, sess, counters):
        n = await children_count(sess, self.run_dir(cfg))
        if n != counters.ok:
            return [f"{self.run_dir(cfg)} has {n} children, {counters.ok} creates succeeded"]
        return []


@dataclass
class GetChildren(Workload):
    name: str = "getChildren_10k"
    sessions: int = 4
    depth: int = 8
    description: str = "getChildren of a node with 10,000 children"

    def parent(self) -> str:
        return f"{ROOT}/children"

    async def prepare(self, cfg, sess):
        if await children_count(sess, self.parent()) == cfg.children:
            return []
        problems = await create_tree(sess, [ROOT, self.parent()])
        kids = [f"{self.parent()}/c-{i:05d}" for i in range(cfg.children)]
        return problems + await create_tree(sess, kids)

    def source(self, w, g):
        body = R.GetChildrenRequest(path=self.parent(), watch=False).to_bytes()
        want = w.cfg.children

        def check(b: memoryview) -> bool:
            return len(b) >= 4 and _INT.unpack_from(b, 0)[0] == want
        op = int(OpCode.getChildren)
        return lambda seq: (op, body, check)


@dataclass
class Large(Workload):
    name: str = "value_1mib"
    sessions: int = 2
    depth: int = 2
    description: str = "setData then getData of 1 MiB (less 1 KiB) values, one node per session"

    def node(self, cfg, g: int) -> str:
        return f"{ROOT}/large/{cfg.run_id}-s{g}"

    async def prepare(self, cfg, sess):
        return await create_tree(sess, [ROOT, f"{ROOT}/large"])

    async def setup_sessions(self, w, sessions):
        n = len(sessions)
        for i, s in enumerate(sessions):
            s.request(OpCode.create, _create_body(self.node(w.cfg, w.global_index(i, n)), b""),
                      timed=False)
        await all_of(s.wait_below(1, w.cfg.reply_timeout_s) for s in sessions)

    def source(self, w, g):
        size = w.cfg.large_value_bytes
        path = self.node(w.cfg, g)
        put = R.SetDataRequest(path=path, data=bytes(size), version=-1).to_bytes()
        get = R.GetDataRequest(path=path, watch=False).to_bytes()
        check = _data_check(size)
        sop, gop = int(OpCode.setData), int(OpCode.getData)
        return lambda seq: (gop, get, check) if seq % 2 else (sop, put, None)



@dataclass
class Paced(Workload):
    name: str = "paced_mixed"
    description: str = "open loop at --rate ops/s (2,000): 90% getData / 10% setData"

    async def prepare(self, cfg, sess):
        return await prepare_data(cfg, sess)

    def source(self, w, g):
        return Mixed().source(w, g)

    async def run(self, w) -> None:
        n = w.cfg.sessions or self.sessions
        depth = w.cfg.depth or self.depth
        total = n * w.procs
        interval_ns = int(total * 1e9 / w.cfg.rate_ops_s)
        sessions = await w.open_sessions(n)
        gs = [w.global_index(i, n) for i in range(n)]
        srcs = [self.source(w, g) for g in gs]
        budgets = [w.budget(g, total) for g in gs]
        await w.start()
        await all_of(pace(w, s, src, b, depth, interval_ns, g * interval_ns // total)
                     for s, src, b, g in zip(sessions, srcs, budgets, gs))
        await w.end()
        await w.close_sessions(sessions)
