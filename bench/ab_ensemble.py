"""Two or more zabpy source trees and Java ZooKeeper as 3-server ensembles, in interleaved rounds.

    python -m bench.ab_ensemble --trees main=/work/main,new=/work/wt-x \\
        [--workloads setData,create,paced_mixed] [--rounds 3] [--duration 4] [--no-java]

``bench.compare --ensemble 3`` compares one zabpy with Java. To see what a
change does on a loaded machine, the code before and after it must be
measured side by side: each round here starts one ensemble per server (Java,
then each tree's zabpy, its members started with ``PYTHONPATH=tree``), warms
each up, then runs every workload on each in turn, so that all see about the
same load. Each run prints ops/s, p99, the server CPU per op (utime + stime of
the three members during the timed phase / ops) and the 1-minute load
average; the end prints medians over the rounds and ratios to Java. CPU per
op is the steadier number when the load moves.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from . import ab_rounds
from .ensemble import Ensemble
from .loadgen import LoadConfig, run_workload
from .servers import java_command, zabpy_command

WARM_UP_S = 0.5
SETTLE_S = 2.0


def _commands(trees: dict[str, str], java: bool) -> dict:
    py = sys.executable
    out = {"java": lambda cfg: java_command(cfg, 0)} if java else {}
    for name, tree in trees.items():
        template = f"env PYTHONPATH={tree} {py} -m zabpy server {{cfg}}"
        out[name] = lambda cfg, t=template: zabpy_command(cfg, t)
    return out


def _round(rnd: int, commands: dict, workloads: list[str], duration_s: float, work: Path,
           results: dict) -> None:
    started: dict[str, Ensemble] = {}
    try:
        for name, cmd in commands.items():
            ens = Ensemble(name, work / f"r{rnd}" / name, cmd, 3)
            started[name] = ens
            ens.start()
            ens.wait_writable()
        time.sleep(SETTLE_S)
        for ens in started.values():
            for w in ("getData", "create"):
                run_workload(w, LoadConfig(port=ens.ports[0], ports=ens.ports,
                                           duration_s=WARM_UP_S), ens.pids)
        for wl in workloads:
            for name, ens in started.items():
                load = os.getloadavg()[0]
                r = run_workload(wl, LoadConfig(port=ens.ports[0], ports=ens.ports,
                                                duration_s=duration_s), ens.pids)
                row = {"ops_s": r["throughput"], "p99_ms": r.get("p99_ms"),
                       "cpu_us_op": r["server_cpu_us_per_op"], "ok": r["ok"], "load": load}
                results.setdefault(wl, {}).setdefault(name, []).append(row)
                print(f"round {rnd} {wl:12s} {name:8s} {row['ops_s'] or 0:8.0f}/s "
                      f"p99 {row['p99_ms'] or 0:8.1f} ms  cpu {row['cpu_us_op'] or 0:6.1f} us/op  "
                      f"load {load:.1f}{'' if row['ok'] else '  FAILED: ' + str(r['problems'])}",
                      flush=True)
    finally:
        for ens in started.values():
            ens.stop()
        shutil.rmtree(work / f"r{rnd}", ignore_errors=True)


def _medians(results: dict) -> list[str]:
    return ab_rounds.median_lines(results, ("ops_s", "p99_ms", "cpu_us_op"), _median_line)


def _median_line(wl: str, n: str, m: dict, runs: int) -> str:
    return (f"{wl:12s} {n:8s} {m['ops_s']:8.0f}/s p99 {m['p99_ms']:8.1f} ms  "
            f"cpu {m['cpu_us_op']:6.1f} us/op  ({runs} runs)")


def main(argv: list[str] | None = None) -> int:
    a, trees = ab_rounds.parse_args(argv, "python -m bench.ab_ensemble", __doc__,
                                    workloads="setData,create,paced_mixed", rounds=3,
                                    duration_s=4.0)
    commands = _commands(trees, not a.no_java)
    workloads = a.workloads.split(",")
    results = ab_rounds.run_rounds(
        a.rounds, "zabpy-ab-ensemble-",
        lambda rnd, work, out: _round(rnd, commands, workloads, a.duration, work, out))
    return ab_rounds.report(results, _medians(results), a.out)


if __name__ == "__main__":
    sys.exit(main())
