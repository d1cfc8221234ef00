"""Start-up to the first served request, Java ZooKeeper and zabpy side by side.

What ``bench.compare`` measures for start-up, repeated: each repetition
starts each server (alternating which goes first) on a fresh, empty data
directory with the benchmark's zoo.cfg (``servers.write_zoo_cfg``), waits
for the first served request (``Server.wait_ready``: overlapping session
handshakes, one every 20 ms) and stops it. Printed per server: the median,
min and max wall time from spawn to that request, and the server's own CPU
time up to that moment, which a shared machine disturbs much less than the
wall time. CPU time is read from ``/proc/<pid>/task/*/schedstat`` (run time in
nanoseconds, summed over the threads) right after the first request was
served, so it includes a few milliseconds of whatever the server does next.

    python -m bench.startup --reps 21
    python -m bench.startup --reps 21 --servers zabpy --zabpy-cmd 'python -m zabpy server {cfg}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from .servers import (DEFAULT_ZABPY_CMD, Server, ensure_java_zookeeper, ensure_zabpy_bytecode,
                      free_port, java_command, write_zoo_cfg,
                      zabpy_command)

__all__ = ["cpu_ns", "main", "measure_once"]


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds (0 if unreadable)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure_once(name: str, home: Path, zabpy_cmd: str) -> tuple[float, float]:
    """(seconds from spawn to the first served request, CPU seconds by then)."""
    port = free_port()
    cfg = write_zoo_cfg(home, port)
    cmd = java_command(cfg) if name == "java" else zabpy_command(cfg, zabpy_cmd)
    srv = Server(name, home, port, cmd)
    srv.start()
    try:
        wall = srv.wait_ready()
        cpu = cpu_ns(srv.pid) / 1e9
    finally:
        srv.stop()
    return wall, cpu


def _summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--servers", default="java,zabpy")
    ap.add_argument("--zabpy-cmd", default=DEFAULT_ZABPY_CMD)
    ap.add_argument("--json", help="also write the samples here")
    args = ap.parse_args(argv)
    names = [s for s in args.servers.split(",") if s]
    if "java" in names:
        ensure_java_zookeeper()
    if "zabpy" in names:
        ensure_zabpy_bytecode()
    samples: dict[str, dict[str, list[float]]] = {n: {"wall_s": [], "cpu_s": []} for n in names}
    with tempfile.TemporaryDirectory(prefix="zabpy-startup-") as tmp:
        for rep in range(args.reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                wall, cpu = measure_once(name, Path(tmp) / f"{rep}-{name}", args.zabpy_cmd)
                samples[name]["wall_s"].append(wall)
                samples[name]["cpu_s"].append(cpu)
    out = {n: {k: _summary(v) for k, v in s.items()} for n, s in samples.items()}
    print(f"{'server':8} {'wall median s':>14} {'min':>7} {'max':>7} {'cpu median s':>13} "
          f"{'min':>7} {'max':>7}  (n={args.reps})")
    for n, s in out.items():
        w, c = s["wall_s"], s["cpu_s"]
        print(f"{n:8} {w['median']:14.3f} {w['min']:7.3f} {w['max']:7.3f} {c['median']:13.3f} "
              f"{c['min']:7.3f} {c['max']:7.3f}")
    if "java" in out and "zabpy" in out:
        for k in ("wall_s", "cpu_s"):
            print(f"ratio zabpy/java, {k}: "
                  f"{out['zabpy'][k]['median'] / out['java'][k]['median']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": out, "samples": samples}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
