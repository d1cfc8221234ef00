"""bench.scale's measurements on data directories written directly (bench.scale_data).

    python -m bench.scale --prebuilt --znodes 1000000 --servers zabpy   # restart, snapshot
    python -m bench.scale --prebuilt --huge --servers zabpy             # N = 10,000,000
    python -m bench.scale --fanout 1000000                              # getChildren of 1M
    python -m bench.scale --snap-sync 1000000                           # a learner's SNAP

``run_prebuilt``: the data directory holds only a snapshot of N znodes
(bench.scale's tree); the server starts from it (``restart (snap)``: spawn ->
first served request, and the RSS after it), then the same snapshot under
load as bench.scale (``snapshots_under_load``: the bystander's p99 quiet and
during, the snapshot's time, the peak RSS of the server and its children,
and their peak PSS from one more, untimed snapshot).

``run_fanout``: /wide has N children (and the tree 1,000 other znodes). The
bystander reads at bench.scale.READ_RATE for QUIET_S, then one session calls
getChildren(/wide) back to back for FANOUT_S: the time per call and the
bystander's p99 quiet and during. The calling session runs in a process of
its own, so that reading its replies (12 MB each for N = 1,000,000) does not
hold the bystander's event loop and the p99 is the server's.

``run_snap_sync``: a 3-member ensemble; members 1 and 2 start from a snapshot
of N znodes, member 3 from an empty data directory. Once 1 and 2 serve, the
bystander reads from the leader for QUIET_S, then member 3 starts: it gets
the tree by SNAP. ``sync s`` is from member 3's spawn to its first served
request, and the bystander's p99 on the leader quiet and during the sync.

The machine is shared: times are indicative.
"""

from __future__ import annotations

import asyncio
import os
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from zabpy.jute import OpCode
from zabpy.jute import records as R

from . import procfs
from .client import Call, Counters, Session
from .ensemble import Ensemble, command_for
from .scale_data import build_datadir, leaf_path

__all__ = ["run_prebuilt", "run_fanout", "run_snap_sync", "bystander_during"]

QUIET_S = 3.0
FANOUT_S = 10.0
SETTLE_S = 2.0
READ_RATE = 200


def _p99(lat_ms: list[float]) -> float | None:
    if not lat_ms:
        return None
    s = sorted(lat_ms)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


async def bystander_during(port: int, action, quiet_s: float = QUIET_S) -> dict:
    """Reads of one znode at READ_RATE/s (open loop) for ``quiet_s``, then
    while ``await action()`` runs; p99 of each part and what action returned."""
    counters = Counters()
    reader = await Session.open("127.0.0.1", port, counters)
    loop = asyncio.get_running_loop()
    body = R.GetDataRequest(leaf_path(0), False).to_bytes()
    samples: list[tuple[float, float]] = []
    state: dict = {"start": None, "end": None}
    tasks: set[asyncio.Task] = set()

    async def read_one() -> None:
        fut = loop.create_future()
        t0 = time.monotonic()
        reader.request(OpCode.getData, body, Call(fut), timed=False)
        await fut
        samples.append((t0, (time.monotonic() - t0) * 1000))

    async def paced() -> None:
        t_next = time.monotonic()
        while state["end"] is None:
            t = asyncio.create_task(read_one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            t_next += 1 / READ_RATE
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))

    async def act() -> object:
        await asyncio.sleep(quiet_s)
        state["start"] = time.monotonic()
        try:
            return await action()
        finally:
            state["end"] = time.monotonic()

    _, result = await asyncio.gather(paced(), act())
    await asyncio.gather(*tasks, return_exceptions=True)
    await reader.close()
    quiet = [lat for t, lat in samples if t < state["start"]]
    during = [lat for t, lat in samples if state["start"] <= t <= state["end"]]
    return {"p99_quiet_ms": _p99(quiet), "p99_during_ms": _p99(during),
            "max_during_ms": max(during) if during else None, "reads_during": len(during),
            "action_s": state["end"] - state["start"], "action": result}


def run_prebuilt(name: str, n: int, work: Path, server_for, snapshot_under_load,
                 log=print) -> dict:
    """``server_for(home, port)`` makes the bench.servers.Server."""
    from .servers import free_port

    home = work / f"{name}-{n}-prebuilt"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "znodes": n, "prebuilt": True}
    zxid, secs = build_datadir(home / "data", n)
    out["build_s"] = secs
    log(f"  {name} {n:,}: snapshot file written in {secs:.0f} s")
    server = server_for(home, free_port())
    try:
        server.start()
        out["restart_snap_s"] = server.wait_ready(timeout_s=3600)
        time.sleep(SETTLE_S)
        out["restarted_rss_bytes"] = server.rss_bytes()
        log(f"  {name} {n:,}: start from the snapshot {out['restart_snap_s']:.1f} s, RSS "
            f"{out['restarted_rss_bytes'] / 2**20:.0f} MiB")
        out.update(snapshot_under_load(server, timeout_s=1800))
        log(f"  {name} {n:,}: snapshot {out['snapshot_s'] or 0:.1f} s, p99 "
            f"{out['p99_quiet_ms'] or 0:.1f} -> {out['p99_snapshot_ms'] or 0:.1f} ms (max "
            f"{out['max_snapshot_ms'] or 0:.0f} ms, {out['reads_during']} reads), peak RSS "
            f"{(out['peak_rss_bytes'] or 0) / 2**20:.0f} MiB, peak PSS "
            f"{(out['peak_pss_bytes'] or 0) / 2**20:.0f} MiB, fork {out['fork_ms'] or 0:.1f} ms, "
            f"load {out['load_avg_1m']:.1f}")
    except (RuntimeError, OSError) as e:
        out.setdefault("problems", []).append(str(e))
        log(f"  {name} {n:,}: {e}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def run_fanout(name: str, wide: int, work: Path, server_for, log=print) -> dict:
    from .servers import free_port

    home = work / f"{name}-wide-{wide}"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "children": wide}
    build_datadir(home / "data", 1000, wide=wide)
    port = free_port()
    server = server_for(home, port)
    try:
        server.start()
        server.wait_ready(timeout_s=1800)
        time.sleep(SETTLE_S)

        async def calls() -> dict:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, _fanout_calls, port, wide)

        got = asyncio.run(bystander_during(port, calls))
        act = got.pop("action")
        out.update(got, **act)
        out["s_per_call"] = got["action_s"] / act["calls"] if act["calls"] else None
        log(f"  {name} getChildren of {wide:,}: {act['calls']} calls, "
            f"{(out['s_per_call'] or 0) * 1000:.1f} ms each; bystander p99 {got['p99_quiet_ms'] or 0:.1f} -> "
            f"{got['p99_during_ms'] or 0:.1f} ms (max {got['max_during_ms'] or 0:.0f} ms)")
    except (RuntimeError, OSError, AssertionError) as e:
        out.setdefault("problems", []).append(repr(e))
        log(f"  {name} fan-out: {e!r}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def run_count(name: str, n: int, work: Path, server_for, log=print) -> dict:
    """getAllChildrenNumber(/scale) of a tree of ``n`` znodes back to back for
    FANOUT_S from one session, a bystander reading meanwhile (issue 19: zabpy
    counts a part per loop turn)."""
    from .servers import free_port

    home = work / f"{name}-count-{n}"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "counted": n}
    build_datadir(home / "data", n)
    port = free_port()
    server = server_for(home, port)
    try:
        server.start()
        server.wait_ready(timeout_s=1800)
        time.sleep(SETTLE_S)

        async def calls() -> dict:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                return await asyncio.get_running_loop().run_in_executor(pool, _count_calls, port)

        got = asyncio.run(bystander_during(port, calls))
        act = got.pop("action")
        out.update(got, **act, load_avg_1m=os.getloadavg()[0])
        out["s_per_call"] = got["action_s"] / act["calls"] if act["calls"] else None
        log(f"  {name} getAllChildrenNumber of {act['count']:,}: {act['calls']} calls, "
            f"{(out['s_per_call'] or 0) * 1000:.1f} ms each; bystander p99 "
            f"{got['p99_quiet_ms'] or 0:.1f} -> {got['p99_during_ms'] or 0:.1f} ms (max "
            f"{got['max_during_ms'] or 0:.0f} ms); load {out['load_avg_1m']:.1f}")
    except (RuntimeError, OSError, AssertionError) as e:
        out.setdefault("problems", []).append(repr(e))
        log(f"  {name} count: {e!r}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def _count_calls(port: int) -> dict:
    """getAllChildrenNumber(/scale) back to back for FANOUT_S (a process of its own)."""

    async def calls() -> dict:
        sess = await Session.open("127.0.0.1", port, Counters())
        body = R.GetAllChildrenNumberRequest("/scale").to_bytes()
        done, t_end, count = 0, time.monotonic() + FANOUT_S, 0
        while time.monotonic() < t_end:
            err, reply = await sess.call(OpCode.getAllChildrenNumber, body, timeout_s=120)
            assert err == 0, err
            count = int.from_bytes(reply[:4], "big")
            done += 1
        await sess.close()
        return {"calls": done, "count": count}

    return asyncio.run(calls())


def _fanout_calls(port: int, wide: int) -> dict:
    """getChildren(/wide) back to back for FANOUT_S (in a process of its own)."""

    async def calls() -> dict:
        sess = await Session.open("127.0.0.1", port, Counters())
        body = R.GetChildrenRequest("/wide", False).to_bytes()
        done, t_end, worst = 0, time.monotonic() + FANOUT_S, 0.0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            err, reply = await sess.call(OpCode.getChildren, body, timeout_s=120)
            worst = max(worst, time.monotonic() - t0)
            assert err == 0 and int.from_bytes(reply[:4], "big") == wide, err
            done += 1
        await sess.close()
        return {"calls": done, "slowest_s": worst}

    return asyncio.run(calls())


def run_snap_sync(name: str, n: int, work: Path, zabpy_cmd: str, log=print) -> dict:
    home = work / f"{name}-snapsync-{n}"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "znodes": n}
    ens = Ensemble(name, home, command_for(name, zabpy_cmd))
    build_datadir(ens.members[0].home / "data", n)
    shutil.copytree(ens.members[0].home / "data" / "version-2",
                    ens.members[1].home / "data" / "version-2")
    try:
        for s in ens.servers[:2]:
            s.start()
        for s in ens.servers[:2]:
            s.wait_ready(timeout_s=1800)
        deadline = time.monotonic() + 600
        while ens.leader() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        leader = ens.leader()
        assert leader is not None, ens.log_tails()
        time.sleep(SETTLE_S)
        joiner = ens.servers[2]

        async def sync() -> dict:
            joiner.start()
            t0 = time.monotonic()
            peak = 0
            # ``mode`` is a blocking srvr call to the joiner, whose loop is busy
            # loading the image: in a thread, so the bystander's loop (this
            # one) is not held by it.
            while await asyncio.to_thread(ens.mode, 2) not in ("follower", "leader"):
                peak = max(peak, procfs.rss_bytes(ens.servers[leader].pid))
                await asyncio.sleep(0.2)
                assert time.monotonic() - t0 < 1800, "no sync in 30 minutes"
            return {"sync_s": time.monotonic() - t0, "leader_peak_rss_bytes": peak}

        got = asyncio.run(bystander_during(ens.members[leader].client_port, sync))
        act = got.pop("action")
        out.update(got, **act)
        log(f"  {name} SNAP of {n:,} znodes: {act['sync_s']:.1f} s; bystander on the leader p99 "
            f"{got['p99_quiet_ms'] or 0:.1f} -> {got['p99_during_ms'] or 0:.1f} ms (max "
            f"{got['max_during_ms'] or 0:.0f} ms); leader peak RSS "
            f"{act['leader_peak_rss_bytes'] / 2**20:.0f} MiB")
    except (RuntimeError, OSError, AssertionError) as e:
        out.setdefault("problems", []).append(repr(e))
        log(f"  {name} SNAP sync: {e!r}")
    finally:
        ens.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out
