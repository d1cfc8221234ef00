"""3-server ensembles of Java ZooKeeper and of zabpy, side by side, and their fail-over timings.

    python -m bench.ensemble [--servers java,zabpy] [--runs 10] [--tick-ms 2000]

prints, as JSON, the median over ``--runs`` of two times for each server:

* cold start: spawn three members on empty data directories, until the
  first write (a create) succeeds;
* leader kill: ``kill -9`` of the leader (found with the ``srvr`` four-letter
  word, ``Mode: leader``) until the next write succeeds on a survivor; the
  killed member is then restarted and rejoins before the next run.

``python -m bench.compare --ensemble 3`` runs the same measurements after its
workloads and reports them as ratios zabpy / Java.

Both servers get the same configuration: the standalone bench's zoo.cfg
(``bench.servers.write_zoo_cfg``: tickTime, forceSync, 127.0.0.1, ...) plus
the ``server.N`` lines, ``4lw.commands.whitelist=*`` (Java answers only
``srvr`` by default; this makes both equal) and ``myid`` in each member's
data directory. Every member's client, quorum and election ports are free
ports on 127.0.0.1, all distinct.

A write is what "serving" means here: ``wait_writable`` starts a new write
attempt (a new session and one create, on the next live member in turn)
every few milliseconds while earlier attempts are still waiting, because a
member that is electing may hold a connection open or drop it; the first
attempt to succeed gives the time. Each member is a ``bench.servers.Server``
in its own process group, so ``stop`` leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zabpy.jute import Err, OpCode

from .client import Counters, Session, SessionError
from .servers import (DEFAULT_ZABPY_CMD, Server, _srvr, free_port, java_command,
                      write_zoo_cfg, zabpy_command)
from .workloads import _create_body

__all__ = ["Member", "Ensemble", "ensemble_ports", "write_ensemble_cfgs", "cold_start_s",
           "failover_s", "main"]

WRITE_POLL_S = 0.02  # a new write attempt starts this often
WRITE_ATTEMPTS_MAX = 50  # attempts in flight at once
ATTEMPT_TIMEOUT_S = 10.0  # one attempt (connect + create) gives up after this
SERVING_MODES = ("leader", "follower")


@dataclass(frozen=True)
class Member:
    sid: int  # myid, 1..n
    home: Path  # zoo.cfg, server.log; data/ holds myid
    cfg: Path
    client_port: int
    quorum_port: int
    election_port: int


def ensemble_ports(n: int) -> list[tuple[int, int, int]]:
    """(client, quorum, election) ports for ``n`` members, all distinct."""
    seen: set[int] = set()
    while len(seen) < 3 * n:
        seen.add(free_port())
    ports = sorted(seen)
    return [tuple(ports[3 * i:3 * i + 3]) for i in range(n)]


def write_ensemble_cfgs(home: Path, n: int = 3, *, tick_ms: int = 2000,
                        force_sync: bool = True) -> list[Member]:
    """One directory per member under ``home`` (s1, s2, ...) with zoo.cfg and data/myid."""
    ports = ensemble_ports(n)
    servers = [f"server.{i + 1}=127.0.0.1:{q}:{e}" for i, (_, q, e) in enumerate(ports)]
    members = []
    for i, (client, quorum, election) in enumerate(ports):
        sid = i + 1
        mhome = home / f"s{sid}"
        cfg = write_zoo_cfg(mhome, client, tick_ms=tick_ms, force_sync=force_sync)
        with cfg.open("a") as f:
            f.write("\n".join(["4lw.commands.whitelist=*", *servers, ""]))
        (mhome / "data" / "myid").write_text(f"{sid}\n")
        members.append(Member(sid, mhome, cfg, client, quorum, election))
    return members


def command_for(name: str, zabpy_cmd: str = DEFAULT_ZABPY_CMD,
                java_heap_mb: int = 0) -> Callable[[Path], list[str]]:
    """How to start one member of server ``name`` from its zoo.cfg."""
    if name == "java":
        return lambda cfg: java_command(cfg, java_heap_mb)
    return lambda cfg: zabpy_command(cfg, zabpy_cmd)


class Ensemble:
    """``n`` members of one server kind (see the module docstring)."""

    def __init__(self, name: str, home: Path, command: Callable[[Path], list[str]], n: int = 3,
                 *, tick_ms: int = 2000, force_sync: bool = True):
        self.name = name
        self.home = home
        self.members = write_ensemble_cfgs(home, n, tick_ms=tick_ms, force_sync=force_sync)
        self.servers = [Server(f"{name}.{m.sid}", m.home, m.client_port, command(m.cfg))
                        for m in self.members]
        self.started_at = 0.0

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(m.client_port for m in self.members)

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def start(self) -> None:
        self.started_at = time.monotonic()
        for s in self.servers:
            s.start()

    def wait_writable(self, timeout_s: float = 60.0) -> float:
        """Seconds from ``start`` until a write succeeded (raises if none does in time)."""
        return wait_writable(self, timeout_s) - self.started_at

    def mode(self, i: int) -> str | None:
        """What member ``i`` says in ``srvr`` (leader, follower...), None if it does not answer."""
        try:
            text = _srvr("127.0.0.1", self.members[i].client_port, 2.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode: "):
                return line[6:].strip()
        return None

    def leader(self) -> int | None:
        return next((i for i in range(len(self.members)) if self.mode(i) == "leader"), None)

    def kill(self, i: int) -> None:
        """kill -9 member ``i``: a crash, nothing flushed on the way out."""
        s = self.servers[i]
        if s.proc is not None and s.proc.poll() is None:
            os.killpg(s.proc.pid, signal.SIGKILL)
            s.proc.wait()
        s.stop()  # closes its log

    def alive(self) -> list[int]:
        return [i for i, s in enumerate(self.servers)
                if s.proc is not None and s.proc.poll() is None]

    def log_tails(self) -> str:
        return "\n".join(f"--- {s.name}:\n{s.log_tail(8)}" for s in self.servers)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def __enter__(self) -> "Ensemble":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def _write_at(port: int, path: str) -> float | None:
    """time.monotonic() when a create through a new session on ``port`` succeeded, else None."""
    try:
        sess = await Session.open("127.0.0.1", port, Counters(), timeout_ms=10_000,
                                  connect_timeout_s=ATTEMPT_TIMEOUT_S)
    except SessionError:
        return None
    try:
        err, _ = await sess.call(OpCode.create, _create_body(path, b""), ATTEMPT_TIMEOUT_S)
        done = time.monotonic() if err == Err.OK else None
        await sess.close(2.0)
        return done
    except (SessionError, OSError, asyncio.TimeoutError):
        sess.abort()
        return None


def wait_writable(ens: Ensemble, timeout_s: float = 60.0) -> float:
    """time.monotonic() of the first successful write on any live member."""
    return asyncio.run(_wait_writable(ens, time.monotonic() + timeout_s, timeout_s))


async def _wait_writable(ens: Ensemble, deadline: float, timeout_s: float) -> float:
    attempts: set[asyncio.Task] = set()
    stamp = time.time_ns()
    try:
        for k in itertools.count():
            if time.monotonic() >= deadline:
                break
            alive = ens.alive()
            if not alive:
                raise RuntimeError(f"{ens.name}: every member exited:\n{ens.log_tails()}")
            if len(attempts) < WRITE_ATTEMPTS_MAX:
                port = ens.members[alive[k % len(alive)]].client_port
                attempts.add(asyncio.create_task(_write_at(port, f"/bench-w{stamp}-{k}")))
            done, attempts = await asyncio.wait(attempts, timeout=WRITE_POLL_S)
            ok = [t.result() for t in done if t.result() is not None]
            if ok:
                return min(ok)
    finally:
        for t in attempts:
            t.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
    raise RuntimeError(f"{ens.name}: no write succeeded in {timeout_s} s:\n{ens.log_tails()}")


def wait_members_serving(ens: Ensemble, timeout_s: float = 60.0) -> None:
    """Until every member answers ``srvr`` as leader or follower (polls; raises on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(ens.mode(i) in SERVING_MODES for i in range(len(ens.members))):
            return
        if len(ens.alive()) < len(ens.members):
            raise RuntimeError(f"{ens.name}: a member exited:\n{ens.log_tails()}")
        time.sleep(WRITE_POLL_S)
    raise RuntimeError(f"{ens.name}: not every member serving after {timeout_s} s:\n"
                       f"{ens.log_tails()}")


def cold_start_s(make: Callable[[Path], Ensemble], home: Path, timeout_s: float = 60.0) -> float:
    """Spawn a fresh ensemble in ``home``; seconds until its first write succeeded."""
    ens = make(home)
    try:
        ens.start()
        return ens.wait_writable(timeout_s)
    finally:
        ens.stop()
        shutil.rmtree(home, ignore_errors=True)


def failover_s(ens: Ensemble, timeout_s: float = 60.0) -> float:
    """kill -9 the leader; seconds until the next write succeeded. Then restarts it and
    waits until all members serve again, ready for the next run."""
    wait_members_serving(ens, timeout_s)
    leader = ens.leader()
    if leader is None:
        raise RuntimeError(f"{ens.name}: no member says Mode: leader")
    t0 = time.monotonic()
    ens.kill(leader)
    took = wait_writable(ens, timeout_s) - t0
    ens.servers[leader].start()
    wait_members_serving(ens, timeout_s)
    return took


def measure(names: tuple[str, ...], runs: int, work: Path, make_for, log=print) -> dict:
    """Cold start and leader kill, ``runs`` times each, servers alternating.

    ``make_for(name)`` returns a function home -> Ensemble. Returns
    ``{name: {"cold_start_s": [...], "failover_s": [...], "problems": [...]}}``.
    """
    out = {n: {"cold_start_s": [], "failover_s": [], "problems": []} for n in names}
    for i in range(runs):
        for n in names:
            try:
                out[n]["cold_start_s"].append(cold_start_s(make_for(n), work / f"cold-{n}-{i}"))
            except (RuntimeError, OSError) as e:
                out[n]["problems"].append(f"cold start {i}: {e}")
    for n in names:
        ens = make_for(n)(work / f"failover-{n}")
        try:
            ens.start()
            ens.wait_writable()
            for i in range(runs):
                out[n]["failover_s"].append(failover_s(ens))
        except (RuntimeError, OSError) as e:
            out[n]["problems"].append(f"leader kill: {e}")
        finally:
            ens.stop()
            shutil.rmtree(work / f"failover-{n}", ignore_errors=True)
        log(f"  {n}: cold start {_fmt(out[n]['cold_start_s'])}, "
            f"leader kill to next write {_fmt(out[n]['failover_s'])}")
    return out


def _fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f} s of {len(xs)}" if xs else "no run"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.ensemble",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="java,zabpy")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tick-ms", type=int, default=2000)
    ap.add_argument("--no-force-sync", action="store_true")
    ap.add_argument("--zabpy-cmd", default=DEFAULT_ZABPY_CMD)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    names = tuple(s for s in a.servers.split(",") if s)

    def make_for(name: str):
        cmd = command_for(name, a.zabpy_cmd)
        return lambda home: Ensemble(name, home, cmd, tick_ms=a.tick_ms,
                                     force_sync=not a.no_force_sync)
    work = Path(tempfile.mkdtemp(prefix="zabpy-ensemble-bench-"))
    try:
        got = measure(names, a.runs, work, make_for, log=lambda m: print(m, file=sys.stderr))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {n: {"cold_start_to_first_write_s": statistics.median(g["cold_start_s"] or [0]),
               "leader_kill_to_next_write_s": statistics.median(g["failover_s"] or [0]),
               **g} for n, g in got.items()}
    print(json.dumps({"tick_ms": a.tick_ms, "runs": a.runs, "servers": out}, indent=1))
    return 1 if any(g["problems"] for g in got.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
