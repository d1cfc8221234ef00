"""bench.scale's measurements on data directories written directly (bench.scale_data).

    python -m bench.scale --prebuilt --znodes 1000000 --servers zabpy   # restart, snapshot
    python -m bench.scale --prebuilt --huge --servers zabpy             # N = 10,000,000
    python -m bench.scale --fanout 1000000                              # getChildren of 1M
    python -m bench.scale --snap-sync 1000000                           # a learner's SNAP
    python -m bench.scale --expire 100000 [--close] [--ensemble]        # a session's ephemerals

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

``run_expire``: one session (in a process of its own, session timeout
EXPIRE_TIMEOUT_MS) creates N ephemerals under /exp; once the snapshots
those creates triggered are written, the bystander reads for QUIET_S, then
the bench kills the owning process and the server expires the session after
its timeout (``--close``: the session sends closeSession instead). Another
session polls exists(/exp) every EXPIRE_POLL_S for the number of children
left: ``wait s`` runs from the kill to the sending of the last poll whose reply
still counted N, ``deletes s`` from there to the first reply counting none,
and ``p99 during`` and ``max`` are the bystander's reads sent in the
deletes' time. The server prepares the close (lists the ephemerals) before
it logs and applies it, which may fall before that window: ``max from the
kill`` is the slowest read sent from the kill to the end.
``run_expire_ensemble`` does the same on a 3-member ensemble with the
owning session on one follower and the bystander and the poll on the other.

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
from .workloads import children_count, create_tree

__all__ = ["run_prebuilt", "run_fanout", "run_count", "run_snap_sync", "run_expire",
           "run_expire_ensemble", "bystander_during"]

QUIET_S = 3.0
FANOUT_S = 10.0
SETTLE_S = 2.0
READ_RATE = 200


def _p99(lat_ms: list[float]) -> float | None:
    if not lat_ms:
        return None
    s = sorted(lat_ms)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


async def bystander_during(port: int, action, quiet_s: float | None = None) -> dict:
    """Reads of one znode at READ_RATE/s (open loop) for ``quiet_s`` (default
    QUIET_S), then while ``await action()`` runs; p99 of each part and what
    action returned. An action that returns a dict with ``during_from`` and
    ``during_to`` (monotonic times) has only the reads sent between them count
    as during."""
    quiet_s = QUIET_S if quiet_s is None else quiet_s
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
    lo, hi = state["start"], state["end"]
    if isinstance(result, dict) and "during_from" in result:
        # the action names the part of it that counts (run_expire: from the
        # first ephemeral deleted to the last, not the session timeout before)
        lo, hi = result.pop("during_from"), result.pop("during_to")
    quiet = [lat for t, lat in samples if t < state["start"]]
    during = [lat for t, lat in samples if lo <= t <= hi]
    whole = [lat for t, lat in samples if state["start"] <= t <= state["end"]]
    return {"p99_quiet_ms": _p99(quiet), "p99_during_ms": _p99(during),
            "max_during_ms": max(during) if during else None, "reads_during": len(during),
            "max_action_ms": max(whole) if whole else None,
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


EXPIRE_PARENT = "/exp"
EXPIRE_TIMEOUT_MS = 4000  # the smallest session timeout at tickTime=2000 (two ticks)
EXPIRE_POLL_S = 0.01  # how often exists(/exp) reads how many ephemerals are left
EXPIRE_WAIT_S = 1800.0  # the whole expiry (the timeout, then the deletes) gives up after this
EPHEMERAL = 1  # CreateMode flags
_NUM_CHILDREN_AT = 56  # offset of Stat.numChildren in an exists reply


def run_expire(name: str, n: int, work: Path, server_for, *, close: bool = False,
               log=print) -> dict:
    """Standalone: one session owns ``n`` ephemerals under /exp, then expires
    (its process killed) or, with ``close``, sends closeSession; the
    bystander reads from the same server (see ``_expire_measure``)."""
    from .scale import wait_snapshots_done
    from .servers import free_port

    home = work / f"{name}-expire-{n}"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "ephemerals": n, "members": 1,
                 "how": "close" if close else "expire"}
    port = free_port()
    server = server_for(home, port)
    try:
        server.start()
        server.wait_ready(timeout_s=600)
        out.update(_expire_measure(port, port, n, close,
                                   settle=lambda: wait_snapshots_done(server)))
        _log_expire(out, log)
    except (RuntimeError, OSError, AssertionError) as e:
        out.setdefault("problems", []).append(repr(e))
        log(f"  {name} expiry of {n:,} ephemerals: {e!r}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def run_expire_ensemble(name: str, n: int, work: Path, zabpy_cmd: str, *, close: bool = False,
                        log=print) -> dict:
    """A 3-member ensemble: the owning session on one follower, the bystander
    (and the count of what is left) on the other follower."""
    from .scale import wait_snapshots_done

    home = work / f"{name}-expire3-{n}"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {"server": name, "ephemerals": n, "members": 3,
                 "how": "close" if close else "expire"}
    ens = Ensemble(name, home, command_for(name, zabpy_cmd))
    try:
        ens.start()
        for s in ens.servers:
            s.wait_ready(timeout_s=600)
        deadline = time.monotonic() + 600
        while ens.leader() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        leader = ens.leader()
        assert leader is not None, ens.log_tails()
        owner_at, bystander_at = [i for i in range(3) if i != leader]
        assert ens.mode(owner_at) == ens.mode(bystander_at) == "follower", ens.log_tails()

        def settle() -> None:
            for s in ens.servers:
                wait_snapshots_done(s)

        out.update(_expire_measure(ens.members[owner_at].client_port,
                                   ens.members[bystander_at].client_port, n, close, settle))
        _log_expire(out, log)
    except (RuntimeError, OSError, AssertionError) as e:
        out.setdefault("problems", []).append(repr(e))
        log(f"  {name} ensemble expiry of {n:,} ephemerals: {e!r}")
    finally:
        ens.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def _log_expire(out: dict, log) -> None:
    where = "3 members, bystander on a follower" if out["members"] == 3 else "standalone"
    log(f"  {out['server']} {out['how']} of a session owning {out['ephemerals']:,} ephemerals "
        f"({where}): timeout -> first delete {out['wait_s']:.1f} s, deletes "
        f"{out['expire_s']:.2f} s; bystander p99 {out['p99_quiet_ms'] or 0:.1f} -> "
        f"{out['p99_during_ms'] or 0:.1f} ms (max {out['max_during_ms'] or 0:.0f} ms, "
        f"{out['reads_during']} reads; max from the kill {out['max_action_ms'] or 0:.0f} ms); "
        f"left after {out['left_after']}; "
        f"load {out['load_avg_1m']:.1f}")


def _expire_measure(owner_port: int, watch_port: int, n: int, close: bool, settle) -> dict:
    """The owning session in a process of its own (``_own_ephemerals``)
    creates ``n`` ephemerals; ``settle()`` waits out the snapshots those
    writes triggered; then the bystander reads on ``watch_port`` for QUIET_S
    and the owner is killed (or told to close). exists(/exp) on
    ``watch_port`` every EXPIRE_POLL_S gives the ephemerals left: the
    deletes run from the last reply still counting ``n`` to the first
    counting none, and only the bystander's reads sent in between count as
    during."""
    asyncio.run(_make_parent(watch_port))
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    owner = ctx.Process(target=_own_ephemerals, args=(owner_port, n, theirs), daemon=True)
    owner.start()
    try:
        if not ours.poll(EXPIRE_WAIT_S):
            raise RuntimeError(f"no {n:,} ephemerals in {EXPIRE_WAIT_S:.0f} s")
        made = ours.recv()
        assert not made["problems"], made["problems"]
        settle()
        time.sleep(SETTLE_S)

        async def end_session() -> dict:
            poller = await Session.open("127.0.0.1", watch_port, Counters())
            try:
                if close:
                    ours.send("close")
                else:
                    owner.kill()  # the connection drops; the server expires the session
                return await _wait_deleted(poller, n, time.monotonic())
            finally:
                await poller.close()

        got = asyncio.run(bystander_during(watch_port, end_session))
    finally:
        if owner.is_alive():
            owner.kill()
        owner.join()
    act = got.pop("action")
    got.pop("action_s")
    left = asyncio.run(_children_left(watch_port))
    return {**got, **act, "timeout_ms": made["timeout_ms"], "left_after": left,
            "load_avg_1m": os.getloadavg()[0]}


async def _make_parent(port: int) -> None:
    """/exp, and the znode the bystander reads (leaf_path(0), 100 bytes)."""
    sess = await Session.open("127.0.0.1", port, Counters())
    leaf = leaf_path(0)
    parents = [leaf[:i] for i in range(1, len(leaf)) if leaf[i] == "/"]
    problems = await create_tree(sess, [EXPIRE_PARENT, *parents])
    problems += await create_tree(sess, [leaf], b"v" * 100)
    await sess.close()
    assert not problems, problems


async def _children_left(port: int) -> int | None:
    sess = await Session.open("127.0.0.1", port, Counters())
    try:
        return await children_count(sess, EXPIRE_PARENT)
    finally:
        await sess.close()


async def _wait_deleted(poller: Session, n: int, t_end_session: float) -> dict:
    """Poll exists(/exp) until it has no child; see ``_expire_measure``."""
    body = R.ExistsRequest(EXPIRE_PARENT, False).to_bytes()
    last_full = t_end_session
    first_short = None
    deadline = t_end_session + EXPIRE_WAIT_S
    while time.monotonic() < deadline:
        sent = time.monotonic()
        err, reply = await poller.call(OpCode.exists, body, timeout_s=EXPIRE_WAIT_S)
        now = time.monotonic()
        assert err == 0, err
        left = int.from_bytes(reply[_NUM_CHILDREN_AT:_NUM_CHILDREN_AT + 4], "big")
        if left >= n:
            last_full = sent
        elif first_short is None:
            first_short = now
        if left == 0:
            return {"during_from": last_full, "during_to": now,
                    "wait_s": last_full - t_end_session, "expire_s": now - last_full}
        await asyncio.sleep(EXPIRE_POLL_S)
    raise RuntimeError(f"ephemerals still left after {EXPIRE_WAIT_S:.0f} s")


def _own_ephemerals(port: int, n: int, conn) -> None:
    """The owning session (a process of its own): ``n`` ephemerals under
    /exp, then it pings until told to close, or until it is killed."""

    async def own() -> None:
        sess = await Session.open("127.0.0.1", port, Counters(), timeout_ms=EXPIRE_TIMEOUT_MS)
        problems: list[str] = []
        for start in range(0, n, 50_000):
            problems += await create_tree(
                sess, [f"{EXPIRE_PARENT}/e{i:07d}" for i in range(start, min(n, start + 50_000))],
                mode=EPHEMERAL)
        conn.send({"problems": problems[:5], "timeout_ms": sess.timeout_ms})
        ping_s = sess.timeout_ms / 3000
        t_ping = time.monotonic()
        while not conn.poll():
            if time.monotonic() - t_ping >= ping_s:
                sess.ping()
                t_ping = time.monotonic()
            await asyncio.sleep(0.05)
        conn.recv()
        await sess.close(timeout_s=EXPIRE_WAIT_S)

    asyncio.run(own())
