"""Multi-process load generator: runs one workload against one server, checks it.

The parent process prepares the server's data (``Workload.prepare``), forks
``cfg.procs`` client processes, and waits with them at a start barrier. Each
client process runs its own asyncio loop with many pipelined sessions
(``bench.client.Session``) and returns what it counted. Several processes
keep the client from being the bottleneck on a multi-core machine; to show
that it was not, every result carries the CPU each client process used
during the timed phase (as a fraction of one core) and the CPU the server
used (in cores). A client process near 1.0 would mean the client limited
the run; ``python -m bench.compare`` prints the busiest one. The server's
CPU is read from /proc for every server process given (all members of an
ensemble), and reported in cores and in microseconds per completed op.

Against an ensemble (``LoadConfig.ports`` lists every member's client port),
session ``g`` (numbered over all client processes) connects to member
``g % len(ports)``. Setup and checks use the first member; before its checks
read anything back, a ``sync`` makes that member catch up with the leader.

After the run the parent merges the counters, computes throughput and the
latency percentiles, runs ``Workload.verify`` against the server, and lists
every problem: any reply error, failed content check, protocol error, lost
connection, missing reply or missing watch event. A run with problems has
``ok = False``; callers report it and fail.

Command line, against a running server::

    python -m bench.loadgen --port 2181 --workload getData,create --duration 5 --procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from zabpy.jute import OpCode
from zabpy.jute import records as R

from . import procfs
from .client import Counters, Session, SessionError, all_of, describe
from .session_workloads import SessionChurn, WatchStorm
from .stats import split_evenly, summarize_latencies, us_per_op
from .workloads import (LARGE_VALUE_BYTES, Create, Exists, GetChildren, GetData, Large, Mixed,
                        Paced, SetData)

__all__ = ["LoadConfig", "WORKLOADS", "WorkerCtx", "run_workload", "main"]

WORKLOADS = {w.name: w for w in (Create(), SetData(), GetData(), Exists(), Mixed(),
                                 GetChildren(), WatchStorm(), SessionChurn(), Large(), Paced())}
OPEN_CONCURRENCY = 64  # connects in flight per process (the listen backlog is small)
PING_CHECK_S = 1.0


@dataclass(frozen=True)
class LoadConfig:
    host: str = "127.0.0.1"
    port: int = 2181
    ports: tuple[int, ...] = ()  # an ensemble's client ports; () means just ``port``
    procs: int = 2  # client processes
    sessions: int | None = None  # per process; None: the workload's default
    depth: int | None = None  # requests in flight per session; None: workload default
    duration_s: float = 5.0  # timed phase length, when ops is None
    ops: int | None = None  # exact total budget instead of a duration (tests)
    value_bytes: int = 100
    data_nodes: int = 1000
    children: int = 10_000
    watchers: int = 10_000
    storm_rounds: int = 3
    large_value_bytes: int = LARGE_VALUE_BYTES
    rate_ops_s: float = 2000.0  # paced workloads: total request rate of all sessions
    timeout_ms: int = 30_000  # requested session timeout
    reply_timeout_s: float = 60.0  # a reply slower than this is a failure
    run_timeout_s: float = 600.0  # a whole run, including connecting sessions
    run_id: str = ""


class WorkerCtx:
    """What a workload sees inside one client process."""

    def __init__(self, cfg: LoadConfig, proc: int, start_barrier, end_barrier, sync_barrier,
                 shared):
        self.cfg = cfg
        self.proc = proc
        self.procs = cfg.procs
        self.counters = Counters()
        self.latencies: list[int] = []
        self.extra: dict = {}
        self.sessions: list[Session] = []
        self.deadline_ns: int | None = None
        self.t_start = self.t_end = 0
        self.cpu_start = self.cpu_end = 0.0
        self._start_barrier = start_barrier
        self._end_barrier = end_barrier
        self._sync_barrier = sync_barrier
        self._shared = shared

    def global_index(self, i: int, n: int) -> int:
        return self.proc * n + i

    def port_for(self, g: int) -> int:
        """The client port session ``g`` connects to: member ``g % members``."""
        ports = self.cfg.ports or (self.cfg.port,)
        return ports[g % len(ports)]

    def budget(self, g: int, slots: int) -> int | None:
        return None if self.cfg.ops is None else split_evenly(self.cfg.ops, slots, g)

    async def open_sessions(self, n: int, **kw) -> list[Session]:
        kw.setdefault("latencies", self.latencies)
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(port: int) -> Session:
            async with gate:
                return await Session.open(self.cfg.host, port, self.counters,
                                          timeout_ms=self.cfg.timeout_ms, **kw)
        sessions = list(await all_of(one(self.port_for(self.global_index(i, n)))
                                     for i in range(n)))
        self.sessions.extend(sessions)
        return sessions

    async def close_sessions(self, sessions: list[Session]) -> None:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(s: Session) -> None:
            async with gate:
                await s.close(self.cfg.reply_timeout_s)
        await all_of(one(s) for s in sessions)
        closed = {id(s) for s in sessions}
        self.sessions = [s for s in self.sessions if id(s) not in closed]

    async def start(self) -> None:
        """Meet every client process and the parent; the timed phase begins."""
        await asyncio.to_thread(self._start_barrier.wait)
        self.t_start = time.monotonic_ns()
        self.cpu_start = time.process_time()
        if self.cfg.ops is None:
            self.deadline_ns = self.t_start + int(self.cfg.duration_s * 1e9)

    async def end(self) -> None:
        """The timed phase is over; meet the others so the parent can read the server's CPU."""
        self.t_end = time.monotonic_ns()
        self.cpu_end = time.process_time()
        await asyncio.to_thread(self._end_barrier.wait)

    async def sync(self) -> None:
        """Meet every client process (not the parent)."""
        await asyncio.to_thread(self._sync_barrier.wait)

    def set_shared_ns(self, v: int) -> None:
        self._shared.value = v

    def get_shared_ns(self) -> int:
        return self._shared.value

    async def keep_alive(self) -> None:
        """Ping sessions that have been quiet for a third of their timeout."""
        while True:
            await asyncio.sleep(PING_CHECK_S)
            now = time.monotonic_ns()
            for s in self.sessions:
                if not s.closed and now - s.last_send_ns > s.timeout_ms * 1_000_000 // 3:
                    s.ping()


async def _worker_async(name: str, ctx: WorkerCtx) -> dict:
    pinger = asyncio.create_task(ctx.keep_alive())
    try:
        await asyncio.wait_for(WORKLOADS[name].run(ctx), ctx.cfg.run_timeout_s)
    finally:
        pinger.cancel()
        for s in ctx.sessions:
            s.abort()
    return {
        "counters": ctx.counters.to_dict(),
        "latencies": array("q", ctx.latencies).tobytes(),
        "t_start": ctx.t_start, "t_end": ctx.t_end,
        "cpu_s": ctx.cpu_end - ctx.cpu_start,
        "extra": ctx.extra,
    }


def _worker(name, cfg, proc, barriers, shared, conn) -> None:
    ctx = WorkerCtx(cfg, proc, *barriers, shared)
    try:
        result = asyncio.run(_worker_async(name, ctx))
    except BaseException as e:  # reported to the parent, which fails the run
        for b in barriers:
            b.abort()
        result = {"error": f"client {proc}: {describe(e)}",
                  "traceback": traceback.format_exc(),
                  "counters": ctx.counters.to_dict()}
    conn.send(result)
    conn.close()


async def _with_session(cfg: LoadConfig, fn, sync: bool = False) -> tuple[list[str], Counters]:
    """Run ``fn(session)`` (prepare or verify); a broken connection is a problem, not a crash.

    With ``sync`` (checks against an ensemble) the member first syncs with the
    leader, so it has applied every write the clients saw answered elsewhere.
    """
    counters = Counters()
    port = cfg.ports[0] if cfg.ports else cfg.port
    try:
        sess = await Session.open(cfg.host, port, counters, timeout_ms=cfg.timeout_ms)
    except SessionError as e:
        return [str(e)], counters
    try:
        if sync:
            err, _ = await sess.call(OpCode.sync, R.SyncRequest(path="/").to_bytes(),
                                     cfg.reply_timeout_s)
            if err:
                await sess.close()
                return [f"sync before the checks: err {err}"], counters
        problems = await fn(sess)
        await sess.close()
        return problems, counters
    except (SessionError, OSError, asyncio.TimeoutError) as e:
        sess.abort()
        return [f"prepare/verify: {describe(e)}"], counters


def run_workload(name: str, cfg: LoadConfig,
                 server_pid: int | Sequence[int] | None = None,
                 on_timed: tuple | None = None) -> dict:
    """Run one workload once; returns a JSON-able result (see module docstring).

    ``server_pid`` is the server's process, or every member's of an ensemble;
    their CPU during the timed phase is reported. ``on_timed``, a pair of
    callables, is called in this process as the timed phase starts and as it
    ends, beside the server CPU reads (``bench.profile_server`` starts and
    stops a profile of the server there).
    """
    wl = WORKLOADS[name]
    pids = _pids(server_pid)
    if not cfg.run_id:
        cfg = replace(cfg, run_id=f"r{time.time_ns() // 1_000_000:x}")
    problems, _ = asyncio.run(_with_session(cfg, lambda s: wl.prepare(cfg, s)))
    results = _run_clients(name, cfg, pids, on_timed) if not problems else []
    counters = Counters()
    for r in results:
        counters.merge(Counters.from_dict(r["counters"]))
        if "error" in r:
            problems.append(r["error"])
    problems += counters.failures()
    if results and all("error" not in r for r in results):
        vp, _ = asyncio.run(_with_session(cfg, lambda s: wl.verify(cfg, s, counters),
                                          sync=len(cfg.ports) > 1))
        problems += vp
    return _summarize(wl, cfg, results, counters, problems)


def _pids(server_pid: int | Sequence[int] | None) -> tuple[int, ...]:
    if server_pid is None:
        return ()
    return (server_pid,) if isinstance(server_pid, int) else tuple(server_pid)


def _run_clients(name: str, cfg: LoadConfig, pids: tuple[int, ...],
                 on_timed: tuple | None = None) -> list[dict]:
    ctx = mp.get_context("fork")
    # start and end include the parent, which reads the server's CPU time at both.
    barriers = (ctx.Barrier(cfg.procs + 1, timeout=cfg.run_timeout_s),
                ctx.Barrier(cfg.procs + 1, timeout=cfg.run_timeout_s),
                ctx.Barrier(cfg.procs, timeout=cfg.run_timeout_s))
    shared = ctx.Value("q", 0)
    pipes, procs = [], []
    for i in range(cfg.procs):
        parent_end, child_end = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, daemon=True,
                        args=(name, cfg, i, barriers, shared, child_end))
        p.start()
        child_end.close()
        pipes.append(parent_end)
        procs.append(p)
    server_cpu_s = elapsed = None
    try:
        try:
            barriers[0].wait()
            cpu0 = procfs.cpu_seconds_total(pids) if pids else None
            t0 = time.monotonic()
            if on_timed is not None:
                on_timed[0]()
            barriers[1].wait()
            if cpu0 is not None:
                server_cpu_s = procfs.cpu_seconds_total(pids) - cpu0
                elapsed = time.monotonic() - t0
            if on_timed is not None:
                on_timed[1]()
        except threading.BrokenBarrierError:
            pass  # a client failed; its result says why
        results = [_receive(pipe, cfg.run_timeout_s, i) for i, pipe in enumerate(pipes)]
        if server_cpu_s is not None:
            results[0]["server_cpu_s"] = server_cpu_s
            results[0]["server_cpu_cores"] = server_cpu_s / elapsed
        return results
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


def _receive(pipe, timeout_s: float, i: int) -> dict:
    if pipe.poll(timeout_s):
        try:
            return pipe.recv()
        except EOFError:
            pass
    return {"error": f"client {i}: no result (crashed or timed out)", "counters": {}}


def _summarize(wl, cfg: LoadConfig, results: list[dict], counters: Counters,
               problems: list[str]) -> dict:
    lat = array("q")
    for r in results:
        lat.frombytes(r.get("latencies", b""))
    good = [r for r in results if "error" not in r]
    wall_s = None
    if good:
        wall_s = (max(r["t_end"] for r in good) - min(r["t_start"] for r in good)) / 1e9
    throughput = wl.throughput(good, counters, wall_s) if good else None
    if results:
        problems += wl.count_problems(cfg, counters)
    cpu = [r["cpu_s"] for r in good]
    server_cpu = results[0].get("server_cpu_cores") if results else None
    server_cpu_s = results[0].get("server_cpu_s") if results else None
    ops = wl.ops_done(counters)
    out = {
        "workload": wl.name,
        "ok": not problems,
        "problems": problems,
        "ops": ops,
        "throughput": throughput,
        "wall_s": wall_s,
        "samples": len(lat),
        "client_cpu": [c / wall_s for c in cpu] if wall_s else [],
        "server_cpu_cores": server_cpu,
        "server_cpu_s": server_cpu_s,
        "server_cpu_us_per_op": us_per_op(server_cpu_s, ops),
        "counters": counters.to_dict(),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("host",)},
    }
    out.update(summarize_latencies(lat))
    tracebacks = [r["traceback"] for r in results if "traceback" in r]
    if tracebacks:
        out["traceback"] = tracebacks[0]
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads:\n" + "\n".join(f"  {n:<16} {w.description}"
                                         for n, w in WORKLOADS.items()))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2181)
    ap.add_argument("--ports", default="",
                    help="an ensemble's client ports, comma-separated (sessions spread over them)")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="ops/s of all sessions together, for paced workloads")
    ap.add_argument("--workload", default=",".join(WORKLOADS),
                    help=f"comma-separated, from: {', '.join(WORKLOADS)}")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=None, help="per client process")
    ap.add_argument("--depth", type=int, default=None, help="requests in flight per session")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per workload")
    ap.add_argument("--ops", type=int, default=None, help="exact op budget instead of a duration")
    ap.add_argument("--watchers", type=int, default=10_000)
    ap.add_argument("--storm-rounds", type=int, default=3)
    ap.add_argument("--children", type=int, default=10_000)
    ap.add_argument("--server-pid", default="",
                    help="server pids, comma-separated, to report the servers' CPU")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    ports = tuple(int(p) for p in a.ports.split(",") if p)
    cfg = LoadConfig(host=a.host, port=ports[0] if ports else a.port, ports=ports,
                     procs=a.procs, sessions=a.sessions, depth=a.depth,
                     duration_s=a.duration, ops=a.ops, watchers=a.watchers,
                     storm_rounds=a.storm_rounds, children=a.children, rate_ops_s=a.rate)
    pids = [int(p) for p in a.server_pid.split(",") if p]
    failed = False
    for name in a.workload.split(","):
        if name not in WORKLOADS:
            print(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
            return 2
        r = run_workload(name, cfg, pids)
        cpu = ", ".join(f"{c:.2f}" for c in r["client_cpu"])
        tput = r["throughput"] or 0
        print(f"{name:16} {tput:12,.0f}/s  p50 {r['p50_ms'] or 0:8.3f} ms  "
              f"p99 {r['p99_ms'] or 0:8.3f} ms  ops {r['ops']:>8}  client cpu [{cpu}]  "
              f"server cpu {r['server_cpu_us_per_op'] or 0:.1f} us/op  "
              f"{'OK' if r['ok'] else 'FAILED: ' + '; '.join(r['problems'])}")
        failed |= not r["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
