"""Side-by-side benchmark of zabpy against Java ZooKeeper.

Usage::

    python -m bench.compare                   # full run, both servers (6-10 min on 2 cores)
    python -m bench.compare --quick           # smaller, about 2 min
    python -m bench.compare --servers java    # one server only
    python -m bench.compare --zabpy-cmd 'python -m zabpy server {cfg}' --out results/
    python -m bench.compare --workloads getData,create --rounds 5 --duration 3
    python -m bench.compare --ensemble 3 --quick   # 3-server ensembles (bench.compare_ensemble)

What it does, in order:

1. Makes sure Java ZooKeeper can run: if Debian's jar is missing it runs
   ``apt-get install -y zookeeper default-jre-headless`` and says so.
2. Rounds (``--rounds``, default 3). Each round starts both servers fresh
   (empty data directories under one work directory, the same zoo.cfg
   apart from the port: ``bench.servers.write_zoo_cfg``), records the time
   from spawn to the first served request and the idle RSS, warms each up
   (JIT and caches; untimed), then runs every workload on server A, then on
   B, then the next workload: A, B, A, B... so slow drifts of a shared
   machine hit both alike. Only one server is under load at a time.
3. Memory and restart, one server at a time: fresh start, create
   ``--znodes`` (100,000) znodes of 100 bytes, wait, read RSS; stop; start
   again on the same data and time the first served request; check that
   every znode came back.
4. Client check (full runs only): getData with the same sessions spread
   over 1, P and 2P client processes on each server; throughput that does
   not grow with more client processes shows the client was not the
   bottleneck.
5. Prints a table of medians per workload (throughput, p50, p99, each with
   the ratio zabpy / Java), a resources table, and where the CPU went (the
   server's cores and CPU microseconds per op, with their ratio; the busiest
   client process's share of a core shows the client was not the
   bottleneck); writes ``results.json`` and ``chart.png`` into ``--out``
   (default bench/results/, which git ignores).

Every reply's error code is checked by the load generator (``bench.loadgen``);
any run with errors, missing replies or missing watch events is listed under
"FAILED" and the exit status is 1. Exit status 2 means a server could not be
started at all. See bench/README.md for how to read and reproduce results.

``--ensemble 3`` runs the same comparison on 3-server ensembles instead
(``bench.compare_ensemble``), with the same tables, exit status and files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import chart
from .client import Counters, Session
from .loadgen import WORKLOADS, LoadConfig, run_workload
from .servers import (DEFAULT_ZABPY_CMD, Server, ensure_java_zookeeper, ensure_zabpy_bytecode,
                      free_port, java_command,
                      server_version, write_zoo_cfg, zabpy_command)
from .stats import format_ratio, format_table, median, ratio
from .workloads import children_count

__all__ = ["Plan", "main", "summarize", "render_tables", "workload_table", "cpu_table"]

SERVERS = ("java", "zabpy")
# paced_mixed (an open loop at a fixed rate) is the ensemble mode's latency workload.
STANDALONE_WORKLOADS = tuple(w for w in WORKLOADS if w != "paced_mixed")
ENSEMBLE_WORKLOADS = ("create", "setData", "getData", "exists", "mixed", "paced_mixed")
MIB = 1024 * 1024
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SETTLE_S = 2.0  # let a server finish background work before reading its RSS


@dataclass(frozen=True)
class Plan:
    servers: tuple[str, ...] = SERVERS
    workloads: tuple[str, ...] = STANDALONE_WORKLOADS
    rounds: int = 3
    duration_s: float = 4.0
    procs: int = 2
    watchers: int = 10_000
    storm_rounds: int = 3
    znodes: int = 100_000
    warmup_s: float = 2.0
    tick_ms: int = 2000
    force_sync: bool = True
    java_heap_mb: int = 0  # 0: no -Xmx (Debian's default); see bench/servers.py
    zabpy_cmd: str = DEFAULT_ZABPY_CMD
    depth: int | None = None  # requests in flight per session; None: each workload's own
    rate_ops_s: float = 2000.0  # paced_mixed
    ensemble: int = 0  # members per ensemble; 0: standalone servers
    runs: int = 10  # ensemble mode: cold starts and leader kills per server


QUICK = dict(rounds=2, duration_s=1.5, watchers=2_000, storm_rounds=2, znodes=20_000,
             warmup_s=1.0, runs=3)


def _command(plan: Plan, name: str, cfg: Path) -> list[str]:
    if name == "java":
        return java_command(cfg, plan.java_heap_mb)
    return zabpy_command(cfg, plan.zabpy_cmd)


def _new_server(plan: Plan, name: str, home: Path) -> Server:
    port = free_port()
    cfg = write_zoo_cfg(home, port, tick_ms=plan.tick_ms, force_sync=plan.force_sync)
    return Server(name, home, port, _command(plan, name, cfg))


def _load_cfg(plan: Plan, server: Server, **kw) -> LoadConfig:
    base = LoadConfig(port=server.port, procs=plan.procs, duration_s=plan.duration_s,
                      watchers=plan.watchers, storm_rounds=plan.storm_rounds, depth=plan.depth,
                      rate_ops_s=plan.rate_ops_s)
    return replace(base, **kw)


def _warm_up(plan: Plan, server: Server) -> None:
    for name in ("getData", "create"):
        r = run_workload(name, _load_cfg(plan, server, duration_s=plan.warmup_s / 2), server.pid)
        if not r["ok"]:
            print(f"  warning: warm-up {name} on {server.name}: {r['problems']}")


def run_rounds(plan: Plan, work: Path, logs: Path,
               log=print) -> tuple[list[dict], dict, list[str]]:
    """Phase 2: every workload on every server, alternating, ``plan.rounds`` times.

    Returns the runs, the start-time and idle-RSS samples per server, and the
    servers that failed to start in some round (they sit that round out).
    A server's log is kept in ``logs`` when any of its runs in a round failed.
    """
    runs: list[dict] = []
    samples: dict = {n: {"start_s": [], "idle_rss_bytes": []} for n in plan.servers}
    failures: list[str] = []
    for rnd in range(plan.rounds):
        started = [_new_server(plan, n, work / f"round{rnd}" / n) for n in plan.servers]
        servers = []
        try:
            for s in started:
                try:
                    s.start()
                    samples[s.name]["start_s"].append(s.wait_ready())
                    servers.append(s)
                except (RuntimeError, OSError) as e:
                    failures.append(f"round {rnd}: {s.name} did not start: {e}")
                    log(f"  {failures[-1]}")
                    s.stop()
            time.sleep(SETTLE_S)
            for s in servers:
                samples[s.name]["idle_rss_bytes"].append(s.rss_bytes())
                _warm_up(plan, s)
            for wl in plan.workloads:
                for s in servers:
                    r = run_workload(wl, _load_cfg(plan, s), s.pid)
                    r.update(server=s.name, round=rnd)
                    runs.append(r)
                    log(_run_line(r))
        finally:
            for s in started:
                s.stop()
            _keep_failed_logs(started, [r for r in runs if r["round"] == rnd], rnd, logs, log)
        shutil.rmtree(work / f"round{rnd}", ignore_errors=True)
    return runs, samples, failures


def _keep_failed_logs(servers: list[Server], runs: list[dict], rnd: int, logs: Path,
                      log) -> None:
    for s in servers:
        failed = any(not r["ok"] for r in runs if r["server"] == s.name)
        crashed = s.proc is not None and s.proc.returncode not in (0, -15, 143)
        if (failed or crashed) and (s.home / "server.log").exists():
            logs.mkdir(parents=True, exist_ok=True)
            dest = logs / f"round{rnd}-{s.name}.log"
            shutil.copy(s.home / "server.log", dest)
            log(f"  kept {s.name}'s log of round {rnd}: {dest}")


def _run_line(r: dict) -> str:
    t = r["throughput"]
    status = "ok" if r["ok"] else "FAILED: " + "; ".join(r["problems"])
    cpu = max(r["client_cpu"], default=0)
    return (f"  round {r['round']} {r['workload']:<16} {r['server']:<6} "
            f"{(t or 0):>10,.0f}/s p50 {(r['p50_ms'] or 0):7.2f} ms "
            f"p99 {(r['p99_ms'] or 0):7.2f} ms  server {r.get('server_cpu_us_per_op') or 0:6.1f} "
            f"us/op  client cpu {cpu:.2f}  {status}")


async def _count(port: int, path: str) -> int | None:
    counters = Counters()
    sess = await Session.open("127.0.0.1", port, counters)
    try:
        return await children_count(sess, path)
    finally:
        await sess.close()


def measure_memory_restart(plan: Plan, name: str, work: Path, log=print) -> dict:
    """Phase 3 for one server: RSS with ``plan.znodes`` znodes, then restart time."""
    server = _new_server(plan, name, work / f"mem-{name}")
    out: dict = {"znodes": plan.znodes, "problems": []}
    try:
        _load_and_restart(plan, server, out, log)
    except (RuntimeError, OSError) as e:
        out["problems"].append(str(e))
        log(f"  {name}: {e}")
    finally:
        server.stop()
        shutil.rmtree(work / f"mem-{name}", ignore_errors=True)
    return out


def _load_and_restart(plan: Plan, server: Server, out: dict, log) -> None:
    server.start()
    server.wait_ready()
    cfg = _load_cfg(plan, server, ops=plan.znodes, duration_s=0, run_id="mem")
    r = run_workload("create", cfg, server.pid)
    out["problems"] += r["problems"]
    out["create_throughput"] = r["throughput"]
    time.sleep(SETTLE_S)
    out["loaded_rss_bytes"] = server.rss_bytes()
    out["disk_bytes"] = _tree_bytes(server.home / "data")
    server.stop()
    server.start()
    out["restart_s"] = server.wait_ready()
    got = asyncio.run(_count(server.port, "/bench/create/mem"))
    if got != plan.znodes:
        out["problems"].append(f"after restart {got} of {plan.znodes} znodes are there")
    log(f"  {server.name}: {plan.znodes} znodes -> RSS {out['loaded_rss_bytes'] / MIB:.0f} "
        f"MiB, restart {out['restart_s']:.2f} s"
        + (f"  PROBLEMS {out['problems']}" if out["problems"] else ""))


def client_check(plan: Plan, work: Path, log=print) -> dict:
    """getData with 1, P and 2P client processes on each server.

    The total number of sessions (and so of requests in flight) stays that of
    the measured runs; only the number of processes sharing them changes, so
    what varies is the client's CPU capacity. If more client processes do not
    bring more throughput, the client was not what limited the runs (on a
    small machine more processes may even cost throughput, taking CPU from
    the server).
    """
    total_sessions = plan.procs * WORKLOADS["getData"].sessions
    out: dict = {}
    for name in plan.servers:
        server = _new_server(plan, name, work / f"check-{name}")
        rows: dict = {}
        try:
            server.start()
            server.wait_ready()
            _warm_up(plan, server)
            for procs in sorted({1, plan.procs, 2 * plan.procs}):
                cfg = _load_cfg(plan, server, procs=procs,
                                sessions=max(1, total_sessions // procs))
                r = run_workload("getData", cfg, server.pid)
                rows[procs] = {"throughput": r["throughput"], "ok": r["ok"],
                               "client_cpu_max": max(r["client_cpu"], default=None)}
                log(f"  {name}: getData with {procs} client processes: "
                    f"{(r['throughput'] or 0):,.0f}/s" + ("" if r["ok"] else " FAILED"))
        except (RuntimeError, OSError) as e:
            log(f"  {name}: {e}")
        finally:
            server.stop()
            shutil.rmtree(work / f"check-{name}", ignore_errors=True)
        out[name] = rows
    return out


def _tree_bytes(path: Path) -> int:
    """Disk space used, like du: blocks, not sizes (Java pads its logs sparsely to 64 MiB)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def summarize(runs: list[dict], samples: dict, memory: dict) -> dict:
    """Medians per workload and server, and per resource metric."""
    table: dict = {}
    for r in runs:
        cell = table.setdefault(r["workload"], {}).setdefault(r["server"], {"runs": []})
        cell["runs"].append(r)
    medians: dict = {}
    for wl, per_server in table.items():
        medians[wl] = {}
        for srv, cell in per_server.items():
            rs = cell["runs"]
            medians[wl][srv] = {
                "throughput": median(r["throughput"] for r in rs),
                "p50_ms": median(r["p50_ms"] for r in rs),
                "p99_ms": median(r["p99_ms"] for r in rs),
                "server_cpu_cores": median(r["server_cpu_cores"] for r in rs),
                "server_cpu_us_per_op": median(r.get("server_cpu_us_per_op") for r in rs),
                "client_cpu_max": median(max(r["client_cpu"], default=None) for r in rs),
                "runs": len(rs),
                "failed": sum(not r["ok"] for r in rs),
            }
    resources: dict = {}
    for srv, s in samples.items():
        resources[srv] = {"start_s": median(s["start_s"]),
                          "idle_rss_bytes": median(s["idle_rss_bytes"])}
    for srv, m in memory.items():
        resources.setdefault(srv, {}).update(
            loaded_rss_bytes=m.get("loaded_rss_bytes"), restart_s=m.get("restart_s"),
            disk_bytes=m.get("disk_bytes"), znodes=m.get("znodes"))
    return {"workloads": medians, "resources": resources}


def _v(summary_cell: dict | None, key: str):
    return None if summary_cell is None else summary_cell.get(key)


def render_tables(summary: dict, servers: tuple[str, ...] = SERVERS) -> str:
    """The printed report: workloads, resources and CPU tables (medians)."""
    cols = list(servers[:2])
    both = len(cols) > 1
    out = [workload_table(summary, cols), ""]
    out.append(format_table(["resource"] + cols + (["ratio"] if both else []),
                            _resource_rows(summary["resources"], cols, both)))
    out += ["", cpu_table(summary, cols)]
    check = summary.get("client_check") or {}
    procs = sorted({p for rows in check.values() for p in rows})
    if procs:
        out.append("")
        out.append(format_table(
            ["client processes"] + [f"{s} getData ops/s" for s in cols],
            [[p] + [_v((check.get(s) or {}).get(p), "throughput") for s in cols]
             for p in procs]))
        out.append("throughput that does not grow with client processes was not limited "
                   "by the client.")
    return "\n".join(out)


def _with_ratio(vals: list, both: bool) -> list:
    return vals + ([format_ratio(ratio(vals[1], vals[0]))] if both else [])


def workload_table(summary: dict, cols: list[str]) -> str:
    """Throughput, p50 and p99 per workload and server, each with the ratio cols[1] / cols[0]."""
    both = len(cols) > 1
    headers = ["workload"]
    for metric in ("ops/s", "p50 ms", "p99 ms"):
        headers += [f"{s} {metric}" for s in cols] + (["ratio"] if both else [])
    headers.append("failed/runs")
    rows = []
    for wl, per in summary["workloads"].items():
        row: list = [wl]
        for key in ("throughput", "p50_ms", "p99_ms"):
            row += _with_ratio([_v(per.get(s), key) for s in cols], both)
        failed = sum(_v(per.get(s), "failed") or 0 for s in cols)
        total = sum(_v(per.get(s), "runs") or 0 for s in cols)
        rows.append(row + [f"{failed}/{total}"])
    out = format_table(headers, rows)
    if both:
        out += (f"\nratio = {cols[1]} / {cols[0]}: above 1 means {cols[1]} has more throughput "
                f"(or higher, worse latency or CPU).")
    return out


def cpu_table(summary: dict, cols: list[str]) -> str:
    """Where the CPU went: server cores, server CPU µs per op (with ratio), busiest client."""
    both = len(cols) > 1
    headers = (["workload"] + [f"{s} server µs/op" for s in cols] + (["ratio"] if both else [])
               + [h for s in cols for h in (f"{s} server cores", f"{s} busiest client")])
    rows = [[wl] + _with_ratio([_v(per.get(s), "server_cpu_us_per_op") for s in cols], both)
            + [_v(per.get(s), k) for s in cols for k in ("server_cpu_cores", "client_cpu_max")]
            for wl, per in summary["workloads"].items()]
    return "\n".join([
        format_table(headers, rows),
        "server µs/op = CPU time (utime+stime from /proc) of every server process during the "
        "timed phase / ops completed.",
        "busiest client = CPU share of one core used by the busiest client process "
        "in the timed phase; well below 1 means the client was not the bottleneck."])


def _resource_rows(resources: dict, cols: list[str], both: bool) -> list[list]:
    znodes = next((r.get("znodes") for r in resources.values() if r.get("znodes")), None)
    metrics = [("idle RSS (MiB)", "idle_rss_bytes", MIB),
               (f"RSS with {znodes or '?':,} znodes (MiB)" if znodes else "RSS loaded (MiB)",
                "loaded_rss_bytes", MIB),
               (f"disk used, {znodes:,} znodes (MiB)" if znodes else "disk used (MiB)",
                "disk_bytes", MIB),
               ("start to first request (s)", "start_s", 1),
               (f"restart with {znodes:,} znodes (s)" if znodes else "restart (s)",
                "restart_s", 1)]
    rows = []
    for label, key, scale in metrics:
        vals = [resources.get(s, {}).get(key) for s in cols]
        vals = [None if v is None else v / scale for v in vals]
        rows.append([label] + vals + ([format_ratio(ratio(vals[1], vals[0]))] if both else []))
    return rows


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.compare",
                                 description="Benchmark zabpy against Java ZooKeeper.",
                                 epilog="See the module docstring and bench/README.md.")
    ap.add_argument("--quick", action="store_true", help="short run (about 2 minutes)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="java,zabpy (in run order)")
    ap.add_argument("--workloads", default=None,
                    help=f"comma-separated, from {', '.join(WORKLOADS)} (default: "
                         f"{','.join(STANDALONE_WORKLOADS)}; with --ensemble: "
                         f"{','.join(ENSEMBLE_WORKLOADS)})")
    ap.add_argument("--ensemble", type=int, default=0, metavar="N",
                    help="compare N-server ensembles (3) instead of standalone servers")
    ap.add_argument("--runs", type=int,
                    help="--ensemble: cold starts and leader kills per server (10; quick 3)")
    ap.add_argument("--depth", type=int, default=None,
                    help="requests in flight per session (default: each workload's, 32)")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="paced_mixed: ops/s of all sessions together")
    ap.add_argument("--rounds", type=int, help="A/B rounds (default 3, quick 2)")
    ap.add_argument("--duration", type=float, help="seconds per workload run (default 4)")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--watchers", type=int, help="watch storm size (default 10,000)")
    ap.add_argument("--znodes", type=int, help="znodes for memory/restart (default 100,000)")
    ap.add_argument("--skip-memory", action="store_true", help="skip the memory/restart phase")
    ap.add_argument("--skip-client-check", action="store_true",
                    help="skip getData with 1/P/2P client processes (never run with --quick)")
    ap.add_argument("--zabpy-cmd", default=DEFAULT_ZABPY_CMD,
                    help="zabpy server command; {cfg} is replaced by the zoo.cfg path")
    ap.add_argument("--java-heap-mb", type=int, default=0,
                    help="Java -Xmx in MiB (default: none, as Debian's scripts)")
    ap.add_argument("--tick-ms", type=int, default=2000)
    ap.add_argument("--no-force-sync", action="store_true", help="forceSync=no for both")
    ap.add_argument("--workdir", default=None,
                    help="parent of both servers' data directories (default: a temp dir)")
    ap.add_argument("--out", default=None,
                    help="directory for results.json, chart.png and logs of failed runs "
                         "(default: bench/results, with --ensemble bench/results/ensemble)")
    return ap.parse_args(argv)


def _plan(a: argparse.Namespace) -> Plan:
    plan = Plan(**QUICK) if a.quick else Plan()
    over = {"rounds": a.rounds, "duration_s": a.duration, "watchers": a.watchers,
            "znodes": a.znodes, "runs": a.runs}
    plan = replace(plan, **{k: v for k, v in over.items() if v is not None})
    servers = tuple(s for s in a.servers.split(",") if s)
    default = ENSEMBLE_WORKLOADS if a.ensemble else STANDALONE_WORKLOADS
    workloads = tuple(w for w in a.workloads.split(",") if w) if a.workloads else default
    if a.ensemble and a.ensemble < 3:
        raise SystemExit("--ensemble needs at least 3 servers")
    bad = [s for s in servers if s not in SERVERS] + [w for w in workloads if w not in WORKLOADS]
    if bad or not servers:
        raise SystemExit(f"unknown server or workload: {bad}; servers {SERVERS}, "
                         f"workloads {tuple(WORKLOADS)}")
    return replace(plan, servers=servers, workloads=workloads, procs=a.procs,
                   zabpy_cmd=a.zabpy_cmd, java_heap_mb=a.java_heap_mb, tick_ms=a.tick_ms,
                   force_sync=not a.no_force_sync, depth=a.depth, rate_ops_s=a.rate,
                   ensemble=a.ensemble)


def _check_startable(plan: Plan, work: Path, versions: dict) -> dict[str, str]:
    """Start each server once; returns {name: why it cannot run} for those that fail,
    and fills ``versions`` with what each says in ``srvr``."""
    broken = {}
    for name in plan.servers:
        s = _new_server(plan, name, work / f"probe-{name}")
        try:
            s.start()
            s.wait_ready(30)
            versions[name] = server_version(s.port)
        except (RuntimeError, OSError) as e:
            broken[name] = str(e)
        finally:
            s.stop()
            shutil.rmtree(work / f"probe-{name}", ignore_errors=True)
    return broken


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    plan = _plan(a)
    if plan.ensemble:
        from . import compare_ensemble  # it builds on this module
        return compare_ensemble.main(plan, Path(a.out or RESULTS_DIR / "ensemble"), a.workdir)
    out_dir = Path(a.out or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    actions = ensure_java_zookeeper() if "java" in plan.servers else []
    if "zabpy" in plan.servers and ensure_zabpy_bytecode():
        actions.append("compiled zabpy's modules to bytecode (as pip install does)")
    work = Path(tempfile.mkdtemp(prefix="zabpy-bench-", dir=a.workdir))
    t0 = time.monotonic()
    try:
        versions: dict = {}
        broken = _check_startable(plan, work, versions)
        for name, version in versions.items():
            print(f"bench: {name}: {version or 'no srvr answer'}")
        for name, why in broken.items():
            print(f"bench: {name} server cannot start, so it is not benchmarked:\n{why}\n")
        plan = replace(plan, servers=tuple(s for s in plan.servers if s not in broken))
        if not plan.servers:
            return 2
        print(f"bench: servers {', '.join(plan.servers)}; {plan.rounds} rounds of "
              f"{len(plan.workloads)} workloads, {plan.duration_s} s each; work dir {work}")
        runs, samples, start_failures = run_rounds(plan, work, out_dir / "logs")
        memory, check = {}, {}
        if not a.skip_memory:
            print("bench: memory and restart")
            memory = {n: measure_memory_restart(plan, n, work) for n in plan.servers}
        if not a.quick and not a.skip_client_check:
            print("bench: is the client the bottleneck? (getData, more client processes)")
            check = client_check(plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs, samples, memory)
    summary["client_check"] = check
    print()
    print(render_tables(summary, plan.servers))
    failures = [f"{r['workload']} on {r['server']} round {r['round']}: {'; '.join(r['problems'])}"
                for r in runs if not r["ok"]]
    failures += [f"memory/restart on {n}: {p}" for n, m in memory.items() for p in m["problems"]]
    failures += start_failures
    result = {"meta": _meta(plan, actions, broken, time.monotonic() - t0) | {"versions": versions},
              "summary": summary, "runs": runs, "memory": memory, "failures": failures}
    (out_dir / "results.json").write_text(json.dumps(result, indent=1, default=str))
    drawn = chart.draw(summary, out_dir / "chart.png", plan.servers)
    print(f"\nbench: wrote {out_dir / 'results.json'}"
          + (f" and {out_dir / 'chart.png'}" if drawn else " (no chart: matplotlib missing)"))
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
    if broken:
        print(f"\nNOT RUN: {', '.join(broken)} (could not start; see above)")
    return 1 if failures else (2 if broken else 0)


def _meta(plan: Plan, actions: list[str], broken: dict, elapsed_s: float) -> dict:
    return {"plan": asdict(plan),
            "installed": actions, "not_run": broken, "elapsed_s": elapsed_s,
            "python": sys.version, "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


if __name__ == "__main__":
    sys.exit(main())
