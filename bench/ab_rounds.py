"""What ``bench.ab`` (standalone) and ``bench.ab_ensemble`` (3-server
ensembles) share: their command line, the interleaved rounds in one scratch
directory, the medians over the rounds with ratios to Java, and the JSON of
every run.

Each benchmark brings its own round (start its servers, warm them up, run
each workload on each contender, append a row per run) and its own line per
median. The rounds fill ``results``, ``{workload: {contender: [row, ...]}}``;
a row has at least ``ops_s``, ``p99_ms``, ``cpu_us_op`` and ``ok``, and
``--out`` writes ``results`` as it is. The exit status is 1 when any run
failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

#: a round: (round number, the scratch directory, results to append its rows to)
Round = Callable[[int, Path, dict], None]
#: a median's line: (workload, contender, its medians, how many runs) -> text
MedianLine = Callable[[str, str, dict, int], str]


def parse_args(argv: list[str] | None, prog: str, doc: str, workloads: str, rounds: int,
               duration_s: float) -> tuple[argparse.Namespace, dict[str, str]]:
    """The options (defaults as given) and ``--trees`` as {name: path}."""
    ap = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    ap.add_argument("--trees", required=True, help="name=path,... (zabpy source trees)")
    ap.add_argument("--workloads", default=workloads)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--duration", type=float, default=duration_s, help="seconds per run")
    ap.add_argument("--no-java", action="store_true")
    ap.add_argument("--out", default=None, help="write the runs as JSON here")
    a = ap.parse_args(argv)
    trees = dict(item.split("=", 1) for item in a.trees.split(",") if item)
    return a, trees


def run_rounds(rounds: int, scratch_prefix: str, one_round: Round) -> dict:
    """``one_round`` for rounds 0 .. rounds-1 in a scratch directory removed
    afterwards; the results they filled."""
    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix=scratch_prefix))
    try:
        for rnd in range(rounds):
            one_round(rnd, work, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def median_lines(results: dict, keys: tuple[str, ...], line: MedianLine) -> list[str]:
    """A line per workload and contender: the median of each of ``keys``
    over its runs (runs without a value left out, 0 when none has one), then
    its ops/s, p99 and CPU per op as ratios to Java's when Java has all three."""
    lines = []
    for wl, per in results.items():
        med = {n: {k: statistics.median([r[k] for r in rows if r.get(k) is not None] or [0])
                   for k in keys} for n, rows in per.items()}
        java = med.get("java")
        for n, m in med.items():
            rel = ""
            if java and n != "java" and java["ops_s"] and java["p99_ms"] and java["cpu_us_op"]:
                rel = (f"  of java: ops/s {m['ops_s'] / java['ops_s']:.2f}x, "
                       f"p99 {m['p99_ms'] / java['p99_ms']:.2f}x, "
                       f"cpu {m['cpu_us_op'] / java['cpu_us_op']:.2f}x")
            lines.append(line(wl, n, m, len(per[n])) + rel)
    return lines


def report(results: dict, lines: list[str], out: str | None) -> int:
    """Print the medians, write ``results`` as JSON to ``out`` if given; 1
    when any run failed, else 0."""
    print("\nmedians\n" + "\n".join(lines))
    if out:
        Path(out).write_text(json.dumps(results, indent=1))
    failed = any(not r["ok"] for per in results.values() for rows in per.values() for r in rows)
    return 1 if failed else 0
