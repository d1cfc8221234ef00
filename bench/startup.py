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

Restart with a log to replay: ``--log-znodes N`` starts every run from a copy
of one data directory holding an empty snapshot.0 and a log of N creates
(bench.scale_data's ``--log`` form, built once; the copy is made before the
clock starts), so the time is the restore's: the log replayed, then (Java
before it serves, zabpy in a forked child whose CPU is not counted) a
snapshot. ``--baseline-cmd`` adds a third server, ``zabpy-base``, started by
that command (another checkout, e.g. ``env PYTHONPATH=/work/main python -m
zabpy server {cfg}``), so a change is measured before and after in the same
interleaved runs. The load average (1 min) before each run is reported.

    python -m bench.startup --reps 3 --log-znodes 1000000 \
        --baseline-cmd 'env PYTHONPATH=/work/main python -m zabpy server {cfg}'

``--snap-znodes N`` does the same from a data directory holding one snapshot
of N znodes (bench.scale_data, as ``bench.scale --prebuilt`` starts from) and
no log: the time is the snapshot's load.

Deterministically: ``--callgrind`` runs the zabpy command (and the baseline's)
once under valgrind's callgrind and counts the instructions from exec to the
server's first ``listen()`` on a socket and to its first ``accept4()`` (the
first client accepted: everything before serving it), with callgrind dumps
before those calls. A load-independent measure; it needs ``valgrind``.

    python -m bench.startup --callgrind \
        --baseline-cmd 'env PYTHONPATH=/work/main python -m zabpy server {cfg}'
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import tempfile
from pathlib import Path

from .servers import (DEFAULT_ZABPY_CMD, Server, ensure_java_zookeeper, ensure_zabpy_bytecode,
                      free_port, java_command, write_zoo_cfg,
                      zabpy_command)

__all__ = ["callgrind_startup", "cpu_ns", "main", "measure_once"]

READY_TIMEOUT_S = 60.0
RESTORE_TIMEOUT_S = 1800.0


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


def measure_once(name: str, home: Path, zabpy_cmd: str,
                 data: Path | None = None) -> tuple[float, float]:
    """(seconds from spawn to the first served request, CPU seconds by then);
    ``data``: a data directory to start from (copied first)."""
    port = free_port()
    cfg = write_zoo_cfg(home, port)
    if data is not None:
        shutil.copytree(data / "version-2", home / "data" / "version-2")
    cmd = java_command(cfg) if name == "java" else zabpy_command(cfg, zabpy_cmd)
    srv = Server(name, home, port, cmd)
    srv.start()
    try:
        wall = srv.wait_ready(timeout_s=READY_TIMEOUT_S if data is None else RESTORE_TIMEOUT_S)
        cpu = cpu_ns(srv.pid) / 1e9
    finally:
        srv.stop()
        if data is not None:
            shutil.rmtree(home, ignore_errors=True)  # a 1M-znode copy is hundreds of MB
    return wall, cpu


def callgrind_startup(home: Path, zabpy_cmd: str) -> tuple[int, int]:
    """(instructions from exec to the first listen(), to the first accept4())
    of ``zabpy_cmd`` on a fresh data directory under ``home``."""
    port = free_port()
    cfg = write_zoo_cfg(home, port)
    out = home / "callgrind.out"
    cmd = zabpy_command(cfg, zabpy_cmd)
    # valgrind goes after an ``env NAME=value ...`` prefix, on the interpreter itself
    at = 0
    if cmd[0] == "env":
        at = 1
        while at < len(cmd) and "=" in cmd[at]:
            at += 1
    cmd[at:at] = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                  "--dump-before=listen", "--dump-before=accept4"]
    srv = Server("zabpy", home, port, cmd)
    srv.start()
    try:
        srv.wait_ready(timeout_s=RESTORE_TIMEOUT_S)
    finally:
        srv.stop()
    parts = sorted(glob.glob(f"{out}.*"), key=lambda f: int(f.rsplit(".", 1)[1].split("-")[0]))
    total, to_listen, to_accept = 0, None, None
    for part in parts:  # each dump holds what ran since the one before
        text = Path(part).read_text()
        total += int(re.search(r"^totals: (\d+)", text, re.M).group(1))
        trigger = re.search(r"^desc: Trigger: (.*)$", text, re.M).group(1)
        if to_listen is None and "listen" in trigger:
            to_listen = total
        if to_accept is None and "accept4" in trigger:
            to_accept = total
    if to_listen is None or to_accept is None:
        raise SystemExit(f"callgrind dumps without a listen or an accept4 in {home}")
    return to_listen, to_accept


def _summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--servers", default="java,zabpy")
    ap.add_argument("--zabpy-cmd", default=DEFAULT_ZABPY_CMD)
    ap.add_argument("--json", help="also write the samples here")
    ap.add_argument("--log-znodes", type=int, default=0, metavar="N",
                    help="start from a log of N creates (see above)")
    ap.add_argument("--snap-znodes", type=int, default=0, metavar="N",
                    help="start from a snapshot of N znodes (see above)")
    ap.add_argument("--baseline-cmd", help="also run this zabpy command as 'zabpy-base'")
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions to the first listen and accept instead (see above)")
    args = ap.parse_args(argv)
    if args.callgrind:
        ensure_zabpy_bytecode()
        cmds = {"zabpy": args.zabpy_cmd}
        if args.baseline_cmd:
            cmds["zabpy-base"] = args.baseline_cmd
        print(f"{'server':10} {'to listen() M':>14} {'to accept() M':>14}")
        with tempfile.TemporaryDirectory(prefix="zabpy-startup-") as tmp:
            for name, cmd in cmds.items():
                to_listen, to_accept = callgrind_startup(Path(tmp) / name, cmd)
                print(f"{name:10} {to_listen / 1e6:14.1f} {to_accept / 1e6:14.1f}", flush=True)
        return 0
    names = [s for s in args.servers.split(",") if s]
    if args.baseline_cmd:
        names.append("zabpy-base")
    if "java" in names:
        ensure_java_zookeeper()
    if "zabpy" in names:
        ensure_zabpy_bytecode()
    samples: dict[str, dict[str, list[float]]] = {
        n: {"wall_s": [], "cpu_s": [], "load_1m": []} for n in names}
    with tempfile.TemporaryDirectory(prefix="zabpy-startup-") as tmp:
        data = None
        if args.log_znodes:
            from .scale_data import build_logdir
            data = Path(tmp) / "template"
            build_logdir(data, args.log_znodes)
        elif args.snap_znodes:
            from .scale_data import build_datadir
            data = Path(tmp) / "template"
            build_datadir(data, args.snap_znodes)
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                cmd = args.baseline_cmd if name == "zabpy-base" else args.zabpy_cmd
                load = os.getloadavg()[0]
                wall, cpu = measure_once("zabpy" if name == "zabpy-base" else name,
                                         Path(tmp) / f"{rep}-{name}", cmd, data)
                samples[name]["wall_s"].append(wall)
                samples[name]["cpu_s"].append(cpu)
                samples[name]["load_1m"].append(load)
                if data is not None:
                    print(f"  run {rep + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                          f"load {load:.1f}", flush=True)
    out = {n: {k: _summary(v) for k, v in s.items()} for n, s in samples.items()}
    print(f"{'server':10} {'wall median s':>14} {'min':>7} {'max':>7} {'cpu median s':>13} "
          f"{'min':>7} {'max':>7} {'load median':>12}  (n={args.reps}"
          f"{f', log of {args.log_znodes:,} creates' if args.log_znodes else ''}"
          f"{f', snapshot of {args.snap_znodes:,} znodes' if args.snap_znodes else ''})")
    for n, s in out.items():
        w, c = s["wall_s"], s["cpu_s"]
        print(f"{n:10} {w['median']:14.3f} {w['min']:7.3f} {w['max']:7.3f} {c['median']:13.3f} "
              f"{c['min']:7.3f} {c['max']:7.3f} {s['load_1m']['median']:12.1f}")
    if "java" in out and "zabpy" in out:
        for k in ("wall_s", "cpu_s"):
            print(f"ratio zabpy/java, {k}: "
                  f"{out['zabpy'][k]['median'] / out['java'][k]['median']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": out, "samples": samples}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
