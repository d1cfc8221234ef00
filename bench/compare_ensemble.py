"""``python -m bench.compare --ensemble 3``: zabpy against Java ZooKeeper as 3-server ensembles.

The standalone comparison (``bench.compare``) says little about what a
replicated write costs, so this mode measures the same things on
ensembles, side by side, reported as ratios zabpy / Java:

1. Rounds (``--rounds``). Each round starts a fresh ensemble of each server
   (``bench.ensemble.Ensemble``: three processes, one zoo.cfg each with the
   standalone bench's keys plus ``server.N`` lines and myid, free ports on
   127.0.0.1), waits until a write succeeds, reads the idle RSS of all
   members, warms each up, then runs every workload on Java, on zabpy, the
   next workload on Java... Only one ensemble is under load at a time. The
   load generator's sessions are spread over the members (session i on
   member i % 3), 2 processes x 8 sessions x 32 in flight as standalone.
   Workloads: create, setData, getData, exists, mixed, and paced_mixed, an
   open loop at 2,000 ops/s (90% reads) whose p99 is the latency of an
   ensemble that is busy but not saturated.
2. Server CPU per op: the CPU time (utime + stime in /proc) of all three
   members during the timed phase, divided by the ops completed.
3. Fail-over (``bench.ensemble.measure``), ``--runs`` times per server
   (10; quick 3): cold start of three members to the first write, and
   ``kill -9`` of the leader (``srvr`` says ``Mode: leader``) to the next
   write. The tables show medians.

Output, exit status and result files are those of the standalone mode:
results.json and chart.png go to ``--out`` (default bench/results/ensemble/),
any failed run is listed under FAILED and exits 1, and 2 means a server's
ensemble could not be started at all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from . import chart
from .compare import MIB, SETTLE_S, Plan, _meta, _run_line, cpu_table, summarize, workload_table
from .ensemble import Ensemble, command_for, measure
from .loadgen import LoadConfig, run_workload
from .servers import ensure_java_zookeeper, ensure_zabpy_bytecode, server_version
from .stats import format_ratio, format_table, median, ratio

__all__ = ["main", "run_rounds", "summarize_ensemble", "render_ensemble"]


def _maker(plan: Plan, name: str):
    """home -> a new (not started) ensemble of server ``name``, configured by ``plan``."""
    cmd = command_for(name, plan.zabpy_cmd, plan.java_heap_mb)
    return lambda home: Ensemble(name, home, cmd, plan.ensemble, tick_ms=plan.tick_ms,
                                 force_sync=plan.force_sync)


def _load_cfg(plan: Plan, ens: Ensemble, **kw) -> LoadConfig:
    base = LoadConfig(port=ens.ports[0], ports=ens.ports, procs=plan.procs,
                      duration_s=plan.duration_s, depth=plan.depth, rate_ops_s=plan.rate_ops_s)
    return replace(base, **kw)


def _warm_up(plan: Plan, ens: Ensemble, log) -> None:
    for name in ("getData", "create"):
        r = run_workload(name, _load_cfg(plan, ens, duration_s=plan.warmup_s / 2), ens.pids)
        if not r["ok"]:
            log(f"  warning: warm-up {name} on {ens.name}: {r['problems']}")


def _start_round(plan: Plan, home: Path, samples: dict, failures: list[str], rnd: int,
                 log) -> tuple[list[Ensemble], list[Ensemble]]:
    """Start one ensemble per server; returns (all started, those that serve)."""
    started, serving = [], []
    for name in plan.servers:
        ens = _maker(plan, name)(home / name)
        started.append(ens)
        try:
            ens.start()
            samples[name]["start_s"].append(ens.wait_writable())
            serving.append(ens)
        except (RuntimeError, OSError) as e:
            failures.append(f"round {rnd}: {name} ensemble did not start: {e}")
            log(f"  {failures[-1]}")
            ens.stop()
    return started, serving


def run_rounds(plan: Plan, work: Path, logs: Path,
               log=print) -> tuple[list[dict], dict, list[str]]:
    """Every workload on every server's ensemble, alternating, ``plan.rounds`` times."""
    runs: list[dict] = []
    samples: dict = {n: {"start_s": [], "idle_rss_bytes": []} for n in plan.servers}
    failures: list[str] = []
    for rnd in range(plan.rounds):
        started: list[Ensemble] = []
        try:
            started, serving = _start_round(plan, work / f"round{rnd}", samples, failures,
                                            rnd, log)
            time.sleep(SETTLE_S)  # background start-up work, before reading RSS
            for ens in serving:
                samples[ens.name]["idle_rss_bytes"].append(
                    sum(s.rss_bytes() for s in ens.servers))
                _warm_up(plan, ens, log)
            for wl in plan.workloads:
                for ens in serving:
                    r = run_workload(wl, _load_cfg(plan, ens), ens.pids)
                    r.update(server=ens.name, round=rnd, members=plan.ensemble)
                    runs.append(r)
                    log(_run_line(r))
        finally:
            for ens in started:
                ens.stop()
            _keep_failed_logs(started, [r for r in runs if r["round"] == rnd], rnd, logs, log)
        shutil.rmtree(work / f"round{rnd}", ignore_errors=True)
    return runs, samples, failures


def _keep_failed_logs(ensembles: list[Ensemble], runs: list[dict], rnd: int, logs: Path,
                      log) -> None:
    for ens in ensembles:
        failed = any(not r["ok"] for r in runs if r["server"] == ens.name)
        crashed = any(s.proc is not None and s.proc.returncode not in (0, -15, 143)
                      for s in ens.servers)
        if not (failed or crashed):
            continue
        logs.mkdir(parents=True, exist_ok=True)
        for s in ens.servers:
            if (s.home / "server.log").exists():
                dest = logs / f"ensemble-round{rnd}-{s.name}.log"
                shutil.copy(s.home / "server.log", dest)
                log(f"  kept {s.name}'s log of round {rnd}: {dest}")


def _check_startable(plan: Plan, work: Path, versions: dict) -> dict[str, str]:
    """Start each server's ensemble once until a write succeeds; {name: why not} for failures."""
    broken = {}
    for name in plan.servers:
        ens = _maker(plan, name)(work / f"probe-{name}")
        try:
            ens.start()
            ens.wait_writable(60)
            versions[name] = server_version(ens.ports[0])
        except (RuntimeError, OSError) as e:
            broken[name] = str(e)
        finally:
            ens.stop()
            shutil.rmtree(work / f"probe-{name}", ignore_errors=True)
    return broken


def summarize_ensemble(runs: list[dict], samples: dict, timings: dict) -> dict:
    """Medians per workload (as the standalone mode) and of the ensemble timings."""
    summary = summarize(runs, {}, {})
    resources: dict = {}
    for name, s in samples.items():
        resources[name] = {"idle_rss_bytes": median(s["idle_rss_bytes"]),
                           "round_start_to_write_s": median(s["start_s"])}
    for name, t in timings.items():
        resources.setdefault(name, {}).update(
            cold_start_s=median(t["cold_start_s"]), failover_s=median(t["failover_s"]),
            cold_start_runs=len(t["cold_start_s"]), failover_runs=len(t["failover_s"]))
    summary["resources"] = resources
    return summary


def render_ensemble(summary: dict, servers: tuple[str, ...], members: int) -> str:
    """The printed report: workloads, ensemble timings and CPU tables (medians)."""
    cols = list(servers[:2])
    both = len(cols) > 1
    res = summary["resources"]
    metrics = [(f"cold start of {members} to first write (s)", "cold_start_s", 1),
               ("kill -9 leader to next write (s)", "failover_s", 1),
               (f"idle RSS of {members} members (MiB)", "idle_rss_bytes", MIB)]
    rows = []
    for label, key, scale in metrics:
        vals = [res.get(s, {}).get(key) for s in cols]
        vals = [None if v is None else v / scale for v in vals]
        rows.append([label] + vals + ([format_ratio(ratio(vals[1], vals[0]))] if both else []))
    runs = {s: res.get(s, {}).get("failover_runs") for s in cols}
    return "\n".join([
        f"{members}-server ensembles; sessions spread over the members", "",
        workload_table(summary, cols), "",
        format_table([f"ensemble of {members}"] + cols + (["ratio"] if both else []), rows),
        f"timings: medians of {', '.join(f'{s} {n}' for s, n in runs.items())} runs.", "",
        cpu_table(summary, cols)])


def main(plan: Plan, out_dir: Path, workdir: str | None) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    actions = ensure_java_zookeeper() if "java" in plan.servers else []
    if "zabpy" in plan.servers and ensure_zabpy_bytecode():
        actions.append("compiled zabpy's modules to bytecode (as pip install does)")
    work = Path(tempfile.mkdtemp(prefix="zabpy-bench-ensemble-", dir=workdir))
    t0 = time.monotonic()
    runs: list[dict] = []
    timings: dict = {}
    try:
        versions: dict = {}
        broken = _check_startable(plan, work, versions)
        for name, version in versions.items():
            print(f"bench: {name}: {version or 'no srvr answer'}")
        for name, why in broken.items():
            print(f"bench: {name} ensemble cannot start, so it is not benchmarked:\n{why}\n")
        plan = replace(plan, servers=tuple(s for s in plan.servers if s not in broken))
        if not plan.servers:
            return 2
        print(f"bench: {plan.ensemble}-server ensembles of {', '.join(plan.servers)}; "
              f"{plan.rounds} rounds of {len(plan.workloads)} workloads, {plan.duration_s} s "
              f"each; work dir {work}")
        runs, samples, start_failures = run_rounds(plan, work, out_dir / "logs")
        print(f"bench: cold start and leader kill, {plan.runs} runs per server")
        timings = measure(plan.servers, plan.runs, work, lambda n: _maker(plan, n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _report(plan, out_dir, runs, samples, timings, start_failures,
                   _meta(plan, actions, broken, time.monotonic() - t0) | {"versions": versions})


def _report(plan: Plan, out_dir: Path, runs: list[dict], samples: dict, timings: dict,
            start_failures: list[str], meta: dict) -> int:
    summary = summarize_ensemble(runs, samples, timings)
    print()
    print(render_ensemble(summary, plan.servers, plan.ensemble))
    failures = [f"{r['workload']} on {r['server']} round {r['round']}: {'; '.join(r['problems'])}"
                for r in runs if not r["ok"]]
    failures += [f"{n}: {p}" for n, t in timings.items() for p in t["problems"]]
    failures += start_failures
    result = {"meta": meta, "summary": summary, "runs": runs, "timings": timings,
              "failures": failures}
    (out_dir / "results.json").write_text(json.dumps(result, indent=1, default=str))
    drawn = chart.draw(summary, out_dir / "chart.png", plan.servers)
    print(f"\nbench: wrote {out_dir / 'results.json'}"
          + (f" and {out_dir / 'chart.png'}" if drawn else " (no chart: matplotlib missing)"))
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
    broken = meta.get("not_run") or {}
    if broken:
        print(f"\nNOT RUN: {', '.join(broken)} (could not start; see above)")
    return 1 if failures else (2 if broken else 0)
