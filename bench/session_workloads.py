"""Workloads about sessions rather than requests: the watch storm and session churn.

Watch storm
    ``cfg.watchers`` sessions (split over the client processes) each set an
    exists watch on one node; then one extra session in process 0 writes that
    node once, which must fire every watch. Each round is:

      1. every watcher session sends ``exists(path, watch=True)`` and waits
         for its reply (these are timed ops, checked like any other);
      2. all client processes meet at a barrier, so every watch is armed;
      3. process 0 stores the send time of the write in shared memory and
         sends ``setData(path)``;
      4. each process waits until every one of its sessions has received one
         NodeDataChanged event for the path (anything else is a bad reply).

    The latency samples are ``event received - write sent`` for every event
    (``time.monotonic_ns`` is one clock for all processes on Linux), and the
    throughput is events delivered per second of fire time, where a round's
    fire time is the slowest event of that round. There are exactly
    ``cfg.storm_rounds`` rounds, so the counts are exact:
    ``watch_events == watchers * rounds``.

    One session can hold only one watch per path, so 10,000 watchers means
    10,000 sessions (and connections); the servers are configured with
    ``maxClientCnxns=0``.

Session churn
    ``concurrency`` loops per process, each repeating: open a new connection
    and session, create an ephemeral node, send closeSession and wait for its
    reply and for the server to hang up. The latency sample is the whole
    cycle; ``verify`` checks that no ephemeral survived its session.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from zabpy.jute import CreateMode, EventType, OpCode
from zabpy.jute import records as R

from .client import Session, all_of
from .stats import split_evenly
from .workloads import ROOT, Workload, _create_body, children_count, create_tree

__all__ = ["WatchStorm", "SessionChurn"]


@dataclass
class WatchStorm(Workload):
    name: str = "watch_storm"
    description: str = "10,000 exists-watchers fired by one setData"

    def node(self) -> str:
        return f"{ROOT}/storm"

    async def prepare(self, cfg, sess):
        return await create_tree(sess, [ROOT, self.node()])

    async def run(self, w) -> None:
        cfg = w.cfg
        mine = split_evenly(cfg.watchers, w.procs, w.proc)
        scratch: list[int] = []  # reply latencies of arming requests are not the metric
        state = _StormState(self.node(), mine)
        sessions = await w.open_sessions(mine, latencies=scratch, on_watch=state.on_watch)
        writer = None
        if w.proc == 0:
            writer = (await w.open_sessions(1, latencies=scratch))[0]
        put = R.SetDataRequest(path=self.node(), data=b"x", version=-1).to_bytes()
        arm = R.ExistsRequest(path=self.node(), watch=True).to_bytes()
        round_max: list[int] = []
        await w.start()
        for _ in range(cfg.storm_rounds):
            state.new_round()
            for s in sessions:
                s.request(OpCode.exists, arm)
            await all_of(s.wait_below(1, cfg.reply_timeout_s) for s in sessions)
            await w.sync()
            if writer is not None:
                w.set_shared_ns(time.monotonic_ns())
                writer.request(OpCode.setData, put)
            await state.wait_all(cfg.reply_timeout_s)
            t_write = w.get_shared_ns()
            w.latencies.extend(t - t_write for t in state.times)
            round_max.append(max(state.times, default=t_write) - t_write)
            if writer is not None:
                await writer.wait_below(1, cfg.reply_timeout_s)
        await w.end()
        w.counters.bad_replies += state.unexpected
        w.extra["round_fire_ns"] = round_max
        await w.close_sessions(sessions + ([writer] if writer else []))

    def ops_done(self, counters) -> int:
        return counters.watch_events

    def throughput(self, results, counters, wall_s) -> float | None:
        """Events per second of fire time; a round lasts until its slowest event."""
        rounds = zip(*(r["extra"].get("round_fire_ns", []) for r in results))
        fire_ns = sum(max(per_proc) for per_proc in rounds)
        return counters.watch_events / (fire_ns / 1e9) if fire_ns else None

    def count_problems(self, cfg, counters) -> list[str]:
        want = cfg.watchers * cfg.storm_rounds
        if counters.watch_events != want:
            return [f"{counters.watch_events} watch events, expected {want}"]
        return []


class _StormState:
    """Counts this process's events for the current round."""

    def __init__(self, path: str, expected: int):
        self.path = path
        self.expected = expected
        self.times: list[int] = []
        self.unexpected = 0
        self.done: asyncio.Event | None = None

    def new_round(self) -> None:
        self.times = []
        self.done = asyncio.Event()
        if self.expected == 0:
            self.done.set()

    def on_watch(self, sess: Session, event: R.WatcherEvent, t_ns: int) -> None:
        if event.type != EventType.NodeDataChanged or event.path != self.path:
            self.unexpected += 1
            return
        self.times.append(t_ns)
        if len(self.times) >= self.expected and self.done is not None:
            self.done.set()

    async def wait_all(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass  # the shortfall shows in watch_events and fails the run


@dataclass
class SessionChurn(Workload):
    name: str = "session_churn"
    sessions: int = 8  # concurrent connect/create/close loops per process
    description: str = "connect, create ephemeral, closeSession, per cycle"

    def run_dir(self, cfg) -> str:
        return f"{ROOT}/churn/{cfg.run_id}"

    async def prepare(self, cfg, sess):
        return await create_tree(sess, [ROOT, f"{ROOT}/churn", self.run_dir(cfg)])

    async def run(self, w) -> None:
        n = w.cfg.sessions or self.sessions
        loops = [self._loop(w, w.global_index(i, n), w.budget(w.global_index(i, n), n * w.procs))
                 for i in range(n)]
        await w.start()
        await all_of(loops)
        await w.end()

    async def _loop(self, w, g: int, budget: int | None) -> None:
        cfg = w.cfg
        mode = int(CreateMode.EPHEMERAL)
        seq = 0
        while budget is None or seq < budget:
            if budget is None and time.monotonic_ns() >= w.deadline_ns:
                break
            t0 = time.monotonic_ns()
            sess = await Session.open(cfg.host, cfg.port, w.counters, timeout_ms=cfg.timeout_ms,
                                      latencies=[])
            sess.request(OpCode.create, _create_body(f"{self.run_dir(cfg)}/s{g}-{seq}", b"", mode))
            await sess.wait_below(1, cfg.reply_timeout_s)
            await sess.close(cfg.reply_timeout_s)
            w.latencies.append(time.monotonic_ns() - t0)
            seq += 1

    async def verify(self, cfg, sess, counters):
        problems = []
        left = await children_count(sess, self.run_dir(cfg))
        if left != 0:
            problems.append(f"{left} ephemerals outlived their closed sessions")
        if counters.sessions_closed != counters.sessions_opened:
            problems.append(f"{counters.sessions_opened} sessions opened, "
                            f"{counters.sessions_closed} closed")
        return problems
