"""Many znodes, side by side with Java: memory, restart, snapshots, a bystander's p99.

    python -m bench.scale                        # N = 100,000 and 1,000,000, both servers
    python -m bench.scale --znodes 100000 --servers zabpy
    python -m bench.scale --huge                 # adds N = 10,000,000 (long; Java needs its
                                                 # default heap, a quarter of RAM, to hold it)
    python -m bench.scale --expire 100000        # a session owning 100k ephemerals expires
                                                 # (--close, --ensemble, --runs K: see
                                                 # bench.scale_more)

For each server and N, on a fresh standalone server (bench.servers: the same
zoo.cfg for both, forceSync=yes):

1. ``idle RSS``: RSS (the process and its children, bench.procfs) once it serves.
2. populate: N znodes of 100 bytes, 1,000 per parent (/scale/b<i>/n<j>),
   created by 8 sessions with 256 requests in flight each; ``RSS/znode`` is
   (RSS after populating - idle RSS) / N, read after SETTLE_S.
3. restart from the log: stop, start with snapCount=SNAP_COUNT (the populate
   ran with a snapCount so large that no snapshot was taken), ``restart (log)``
   is spawn -> first served request; both servers then write a snapshot of
   the whole tree (zabpy in a forked child, Java before it serves), which the
   bench waits out.
4. snapshot under load: one session reads a 100-byte znode at READ_RATE/s
   (an open loop: the bystander), another writes setData at WRITE_RATE/s,
   until the writes trigger a snapshot of the N-znode tree (snapCount/2 plus
   a random part of snapCount/2 writes) and it is complete. ``snapshot s`` is
   from the first sign of the snapshot (its file or, for zabpy, the forked
   writer) to a complete file; ``p99 quiet`` is the bystander's p99 before the
   snapshot started, ``p99 snap`` while it was written; ``peak RSS`` is the
   largest RSS of the server and its children during the snapshot (a forked
   writer's copy-on-write pages count in both, as RSS counts them).
   ``--snapshots K`` times K such snapshots (medians). ``peak PSS`` comes
   from one more snapshot, untimed: reading PSS walks the server's page
   tables under its mmap lock and stalls it (2-4x on the p99 during a 1M
   snapshot), so no timed round reads it.
5. restart from the snapshot: stop, start; ``restart (snap)`` and ``RSS after``.

The machine is shared, so times are indicative; RSS is the steadier measure.
JSON of every number goes to --out (default bench/results/scale.json).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

from zabpy.jute import OpCode
from zabpy.jute import records as R

from . import procfs
from .client import Call, Counters, Session
from .servers import (Server, ensure_java_zookeeper, ensure_zabpy_bytecode, free_port,
                      java_command, write_zoo_cfg, zabpy_command, DEFAULT_ZABPY_CMD)
from .stats import format_table
from .workloads import create_tree

__all__ = ["main", "run_one"]

MIB = 1024 * 1024
FAN = 1000  # children per parent
SESSIONS = 8
SETTLE_S = 2.0
SNAP_COUNT = 20_000
SNAP_COUNT_NONE = 1_000_000_000  # no snapshot while populating
READ_RATE = 200  # bystander reads per second
WRITE_RATE = 1000  # setData per second while waiting for a snapshot
POLL_S = 0.02
PSS_POLL_S = 0.5
SNAP_ROUNDS = 1  # timed snapshots per server and N (--snapshots)
VALUE = b"v" * 100
SNAP_TAIL = struct.pack(">i", 1) + b"/"
JAVA_ZNODES_MAX = 2_000_000  # above this Java needs more heap than this machine should give


def _cfg(home: Path, port: int, snap_count: int) -> Path:
    cfg = write_zoo_cfg(home, port)
    with open(cfg, "a") as f:
        f.write(f"snapCount={snap_count}\n")
    return cfg


def _server(name: str, home: Path, port: int, snap_count: int, zabpy_cmd: str) -> Server:
    cfg = _cfg(home, port, snap_count)
    cmd = java_command(cfg) if name == "java" else zabpy_command(cfg, zabpy_cmd)
    return Server(name, home, port, cmd)


def _leaf(i: int) -> str:
    return f"/scale/b{i // FAN}/n{i % FAN:04d}"


async def populate(port: int, n: int) -> list[str]:
    counters = Counters()
    first = await Session.open("127.0.0.1", port, counters)
    problems = await create_tree(first, ["/scale", "/scale/w"] +
                                 [f"/scale/b{b}" for b in range((n + FAN - 1) // FAN)])
    await first.close()
    per = (n + SESSIONS - 1) // SESSIONS

    async def part(k: int) -> list[str]:
        sess = await Session.open("127.0.0.1", port, counters)
        try:
            out: list[str] = []
            for start in range(k * per, min(n, (k + 1) * per), 50_000):
                stop = min(n, (k + 1) * per, start + 50_000)
                out += await create_tree(sess, [_leaf(i) for i in range(start, stop)], VALUE)
            return out
        finally:
            await sess.close()

    for got in await asyncio.gather(*(part(k) for k in range(SESSIONS))):
        problems += got
    return problems[:5]


def _snap_files(server: Server) -> dict[str, int]:
    d = server.home / "data" / "version-2"
    out = {}
    try:
        for name in os.listdir(d):
            if name.startswith("snapshot.") or name.startswith(".snapshot."):
                try:
                    out[name] = os.path.getsize(d / name)
                except OSError:
                    pass
    except OSError:
        pass
    return out


def fork_ms(server: Server) -> float | None:
    """How long zabpy's fork of its snapshot writer held the server (the
    last "fork N ms" of its log), or None (Java, or no snapshot)."""
    try:
        text = (server.home / "server.log").read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"; fork ([0-9.]+) ms\)", text)
    return float(found[-1]) if found else None


def _complete(server: Server, name: str) -> bool:
    if not name.startswith("snapshot."):
        return False
    try:
        with open(server.home / "data" / "version-2" / name, "rb") as f:
            f.seek(-5, os.SEEK_END)
            return f.read(5) == SNAP_TAIL
    except OSError:
        return False


def _busy(server: Server, before: dict[str, int]) -> bool:
    """A snapshot is being written: a forked child, or a new file not yet complete."""
    if len(procfs.descendants(server.pid)) > 1:
        return True
    return any(not _complete(server, n) for n in _snap_files(server) if n not in before)


def wait_snapshots_done(server: Server, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _busy(server, {}) and time.monotonic() < deadline:
        time.sleep(0.1)


def _p99(lat_ms: list[float]) -> float | None:
    if not lat_ms:
        return None
    s = sorted(lat_ms)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


async def snapshot_under_load(server: Server, timeout_s: float, pss: bool = False) -> dict:
    """One snapshot triggered by writes, the bystander's reads timed before and
    during it. ``pss``: also poll the PSS of the server and its writer, which
    walks their page tables in the kernel under each one's mmap lock, so that
    the server stalls whenever it maps or unmaps memory meanwhile (Python's
    allocator does, for arenas): those rounds' p99 pays for the measurement."""
    counters = Counters()
    reader = await Session.open("127.0.0.1", server.port, counters)
    writer = await Session.open("127.0.0.1", server.port, counters)
    before = _snap_files(server)
    samples: list[tuple[float, float]] = []  # (send time, latency ms)
    state = {"start": None, "end": None, "peak": 0, "peak_pss": 0, "pss_at": 0.0}
    loop = asyncio.get_running_loop()
    read_body = R.GetDataRequest(_leaf(0), False).to_bytes()

    async def read_one() -> None:
        fut = loop.create_future()
        t0 = time.monotonic()
        reader.request(OpCode.getData, read_body, Call(fut), timed=False)
        await fut
        samples.append((t0, (time.monotonic() - t0) * 1000))

    async def paced(rate: int, fn) -> None:
        t_next = time.monotonic()
        while state["end"] is None:
            fn()
            t_next += 1 / rate
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))

    tasks: set[asyncio.Task] = set()

    def spawn_read() -> None:
        t = asyncio.create_task(read_one())
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    def write() -> None:
        writer.request(OpCode.setData, R.SetDataRequest("/scale/w", VALUE, -1).to_bytes(),
                       None, timed=False)

    async def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = time.monotonic()
            files = _snap_files(server)
            kids = len(procfs.descendants(server.pid)) > 1
            new = [n for n in files if n not in before]
            if state["start"] is None and (new or kids):
                state["start"] = now
            if state["start"] is not None:
                state["peak"] = max(state["peak"], procfs.rss_bytes(server.pid))
                if pss and now - state["pss_at"] >= PSS_POLL_S:
                    # smaps_rollup walks the page tables (tens of ms for a 1M-znode
                    # server and its writer): in a thread, so that at least this loop,
                    # which times the bystander's reads, is not held up
                    state["pss_at"] = now
                    now_pss = await asyncio.to_thread(procfs.pss_bytes, server.pid)
                    state["peak_pss"] = max(state["peak_pss"], now_pss)
                if any(_complete(server, n) for n in new) and not kids:
                    state["end"] = now
                    return
            await asyncio.sleep(POLL_S)
        state["end"] = time.monotonic()
        state["timeout"] = True

    await asyncio.gather(paced(READ_RATE, spawn_read), paced(WRITE_RATE, write), watch())
    await asyncio.gather(*tasks, return_exceptions=True)
    await reader.close()
    await writer.close()
    start, end = state["start"], state["end"]
    quiet = [lat for t, lat in samples if start is None or t < start]
    during = [lat for t, lat in samples if start is not None and start <= t <= end]
    return {"fork_ms": fork_ms(server), "load_avg_1m": os.getloadavg()[0],
            "snapshot_s": (end - start) if start is not None and not state.get("timeout")
            else None, "p99_quiet_ms": _p99(quiet), "p99_snapshot_ms": _p99(during),
            "max_snapshot_ms": max(during) if during else None, "reads_during": len(during),
            "peak_rss_bytes": state["peak"] or None, "peak_pss_bytes": state["peak_pss"] or None,
            "timed_out": bool(state.get("timeout"))}


def _median(xs: list) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def snapshots_under_load(server: Server, timeout_s: float, rounds: int = SNAP_ROUNDS) -> dict:
    """``rounds`` timed snapshots (medians of their p99s and times, the largest
    peak RSS), then one more that only polls PSS for its peak: a PSS poll
    stalls the server it reads (snapshot_under_load), so it stays out of the
    timed rounds."""
    timed = []
    for _ in range(rounds):
        timed.append(asyncio.run(snapshot_under_load(server, timeout_s)))
        wait_snapshots_done(server)
    with_pss = asyncio.run(snapshot_under_load(server, timeout_s, pss=True))
    out = dict(timed[-1])
    for key in ("p99_quiet_ms", "p99_snapshot_ms", "snapshot_s", "fork_ms"):
        out[key] = _median([r[key] for r in timed])
    out["max_snapshot_ms"] = max((r["max_snapshot_ms"] or 0) for r in timed) or None
    out["reads_during"] = sum(r["reads_during"] for r in timed)
    out["peak_rss_bytes"] = max((r["peak_rss_bytes"] or 0) for r in timed) or None
    out["timed_out"] = any(r["timed_out"] for r in timed + [with_pss])
    out["snapshot_rounds"] = timed
    out["peak_pss_bytes"] = with_pss["peak_pss_bytes"]
    out["p99_snapshot_pss_polled_ms"] = with_pss["p99_snapshot_ms"]
    return out


def run_one(name: str, n: int, work: Path, zabpy_cmd: str = DEFAULT_ZABPY_CMD,
            log=print, snap_rounds: int = SNAP_ROUNDS) -> dict:
    home = work / f"{name}-{n}"
    shutil.rmtree(home, ignore_errors=True)
    port = free_port()
    out: dict = {"server": name, "znodes": n}
    server = _server(name, home, port, SNAP_COUNT_NONE, zabpy_cmd)
    try:
        server.start()
        server.wait_ready()
        time.sleep(SETTLE_S)
        out["idle_rss_bytes"] = server.rss_bytes()
        t0 = time.monotonic()
        out["problems"] = asyncio.run(populate(port, n))
        out["populate_s"] = time.monotonic() - t0
        time.sleep(SETTLE_S)
        out["loaded_rss_bytes"] = server.rss_bytes()
        out["rss_per_znode"] = (out["loaded_rss_bytes"] - out["idle_rss_bytes"]) / n
        log(f"  {name} {n:,}: populated in {out['populate_s']:.0f} s, "
            f"{out['rss_per_znode']:.0f} B/znode")
        server.stop()
        server = _server(name, home, port, SNAP_COUNT, zabpy_cmd)
        server.start()
        out["restart_log_s"] = server.wait_ready(timeout_s=1800)
        wait_snapshots_done(server)
        out.update(snapshots_under_load(server, timeout_s=600, rounds=snap_rounds))
        log(f"  {name} {n:,}: restart (log) {out['restart_log_s']:.1f} s, snapshot "
            f"{out['snapshot_s'] or 0:.1f} s, p99 {out['p99_quiet_ms'] or 0:.1f} -> "
            f"{out['p99_snapshot_ms'] or 0:.1f} ms, peak RSS {(out['peak_rss_bytes'] or 0) / MIB:.0f}"
            " MiB")
        wait_snapshots_done(server)
        server.stop()
        server.start()
        out["restart_snap_s"] = server.wait_ready(timeout_s=1800)
        wait_snapshots_done(server)
        time.sleep(SETTLE_S)
        out["restarted_rss_bytes"] = server.rss_bytes()
        log(f"  {name} {n:,}: restart (snapshot) {out['restart_snap_s']:.1f} s, RSS "
            f"{out['restarted_rss_bytes'] / MIB:.0f} MiB")
    except (RuntimeError, OSError) as e:
        out.setdefault("problems", []).append(str(e))
        log(f"  {name} {n:,}: {e}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def _cell(r: dict | None, key: str, scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    v = None if r is None else r.get(key)
    return "-" if v is None else fmt.format(v / scale)


def render(results: list[dict]) -> str:
    rows = []
    for r in results:
        rows.append([r["server"], f"{r['znodes']:,}",
                     _cell(r, "idle_rss_bytes", MIB, "{:.0f}"),
                     _cell(r, "loaded_rss_bytes", MIB, "{:.0f}"),
                     _cell(r, "rss_per_znode", 1, "{:.0f}"),
                     _cell(r, "restarted_rss_bytes", MIB, "{:.0f}"),
                     _cell(r, "restart_log_s", 1, "{:.1f}"), _cell(r, "restart_snap_s", 1, "{:.1f}"),
                     _cell(r, "snapshot_s", 1, "{:.1f}"),
                     _cell(r, "p99_quiet_ms", 1, "{:.1f}"), _cell(r, "p99_snapshot_ms", 1, "{:.1f}"),
                     _cell(r, "peak_rss_bytes", MIB, "{:.0f}"),
                     _cell(r, "peak_pss_bytes", MIB, "{:.0f}")])
    head = ["server", "znodes", "idle MiB", "loaded MiB", "B/znode", "restarted MiB",
            "restart log s", "restart snap s", "snapshot s", "p99 quiet ms", "p99 snap ms",
            "peak RSS MiB", "peak PSS MiB"]
    return format_table(head, rows)


def _run(a, sizes: list[int], servers: list[str], work: Path) -> list[dict]:
    from .scale_more import (run_count, run_expire, run_expire_ensemble, run_fanout,
                             run_prebuilt, run_snap_sync)

    def server_for(name: str):
        return lambda home, port: _server(name, home, port, SNAP_COUNT, a.zabpy_cmd)

    results = []
    for name in servers:
        if a.fanout:
            results.append(run_fanout(name, a.fanout, work, server_for(name)))
        if a.snap_sync:
            results.append(run_snap_sync(name, a.snap_sync, work, a.zabpy_cmd))
        if a.count:
            results.append(run_count(name, a.count, work, server_for(name)))
        for _ in range(a.runs if a.expire else 0):
            if a.ensemble:
                results.append(run_expire_ensemble(name, a.expire, work, a.zabpy_cmd,
                                                   close=a.close))
            else:
                results.append(run_expire(name, a.expire, work, server_for(name), close=a.close))
    if a.fanout or a.snap_sync or a.count or a.expire:
        return results
    for n in sizes:
        for name in servers:
            if name == "java" and n > JAVA_ZNODES_MAX:
                print(f"  java {n:,}: not run (its heap would need about {n * 3200 >> 30} GiB)")
                continue
            if a.prebuilt:
                results.append(run_prebuilt(
                    name, n, work, server_for(name),
                    functools.partial(snapshots_under_load, rounds=a.snapshots)))
            else:
                results.append(run_one(name, n, work, a.zabpy_cmd, snap_rounds=a.snapshots))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--znodes", type=int, action="append",
                   help="N (repeatable; default 100,000 and 1,000,000)")
    p.add_argument("--huge", action="store_true", help="also N = 10,000,000")
    p.add_argument("--servers", default="java,zabpy")
    p.add_argument("--zabpy-cmd", default=DEFAULT_ZABPY_CMD)
    p.add_argument("--workdir", help="where the data directories go (default: a temp dir)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scale.json"))
    p.add_argument("--prebuilt", action="store_true",
                   help="start from a snapshot file written directly (bench.scale_data) instead "
                        "of creating the znodes over the wire; restart and snapshot only")
    p.add_argument("--fanout", type=int, metavar="N",
                   help="only: getChildren of a node with N children, bystander p99")
    p.add_argument("--snap-sync", type=int, metavar="N",
                   help="only: a learner's SNAP of N znodes in a 3-member ensemble, "
                        "bystander p99 on the leader")
    p.add_argument("--count", type=int, metavar="N",
                   help="only: getAllChildrenNumber of N znodes back to back, bystander p99")
    p.add_argument("--expire", type=int, metavar="N",
                   help="only: a session owning N ephemerals expires, bystander p99")
    p.add_argument("--close", action="store_true",
                   help="with --expire: the session sends closeSession instead of expiring")
    p.add_argument("--ensemble", action="store_true",
                   help="with --expire: a 3-member ensemble, the bystander on a follower")
    p.add_argument("--runs", type=int, default=1, metavar="K",
                   help="with --expire: K runs per server")
    p.add_argument("--snapshots", type=int, default=SNAP_ROUNDS, metavar="K",
                   help="timed snapshots under load per server and N (medians; default "
                        f"{SNAP_ROUNDS}), then one more for the peak PSS")
    a = p.parse_args(argv)
    sizes = a.znodes or [100_000, 1_000_000]
    if a.huge:
        sizes.append(10_000_000)
    servers = [s for s in a.servers.split(",") if s]
    if "java" in servers:
        ensure_java_zookeeper()
    if "zabpy" in servers:
        ensure_zabpy_bytecode()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="zabpy-scale-"))
    results = []
    try:
        results = _run(a, sizes, servers, work)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if not (a.fanout or a.snap_sync or a.count or a.expire):
        print(render(results))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
