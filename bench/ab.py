"""Two or more zabpy source trees and Java ZooKeeper, standalone, in interleaved rounds.

    python -m bench.ab --trees main=/work/main,new=/work/wt-x \\
        [--workloads setData,mixed] [--rounds 5] [--duration 3] [--no-java]

``bench.compare`` compares one zabpy with Java. To see what a change does on
a loaded machine, the code before and after it must be measured side by
side: each round starts one standalone server per contender (Java, then
each tree's zabpy, run with ``PYTHONPATH=tree``; the benchmark's zoo.cfg,
forceSync=yes), warms each up as ``bench.compare`` does, then runs every
workload on each in turn, the order of the contenders rotating from round
to round so that none always runs first. Each run prints ops/s, p99, the
server's CPU per op, the 1-minute load average and, from
``/proc/<pid>/task/*/schedstat``, how much of the run the server's threads
were on a CPU and how much they were runnable but waiting for one (the
machine's other work had the cores): a server whose loop thread is busy or
waiting nearly all the time is bounded by CPU, one that is idle is bounded
by its pipeline; and the operations per fsync of the txn log (``mntr``'s
``zk_cnt_fsynctime`` before and after the run: the group commit's width).
The end prints medians over the rounds and ratios to Java.
Like ``bench.ab_ensemble``, for ensembles.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from . import ab_rounds
from .loadgen import LoadConfig, run_workload
from .servers import Server, java_command, write_zoo_cfg
from zabpy.testing.server import free_ports, mntr

WARM_UP_S = 1.0
SETTLE_S = 2.0


def _command(name: str, tree: str | None, cfg: Path) -> list[str]:
    if tree is None:
        return java_command(cfg, 0)
    return ["env", f"PYTHONPATH={tree}", sys.executable, "-m", "zabpy", "server", str(cfg)]


def _fsyncs(port: int) -> int | None:
    """fsyncs of the txn log so far: ``zk_cnt_fsynctime`` of ``mntr`` (both
    servers count one per fsync of the log)."""
    try:
        value = mntr(port).get("zk_cnt_fsynctime")
    except OSError:
        return None
    return None if value is None else int(float(value))


def _schedstat(pid: int) -> dict[int, tuple[int, int]]:
    """ns on a CPU and ns runnable but waiting, per thread of ``pid``."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = (int(x) for x in f.read().split()[:2])
        except (OSError, ValueError):
            continue
        out[int(tid)] = (run_ns, wait_ns)
    return out


def _shares(pid: int, before: dict, after: dict, wall_ns: int) -> dict:
    """Cores used by the whole server and by its main thread, and the
    main thread's share of the run spent runnable but off a CPU."""
    total = sum(r - before.get(t, (0, 0))[0] for t, (r, _) in after.items())
    run1, wait1 = after.get(pid, (0, 0))
    run0, wait0 = before.get(pid, (0, 0))
    return {"cores": total / wall_ns, "main_on_cpu": (run1 - run0) / wall_ns,
            "main_waiting": (wait1 - wait0) / wall_ns}


def _round(rnd: int, contenders: dict, workloads: list[str], duration_s: float, work: Path,
           results: dict) -> None:
    names = list(contenders)
    k = rnd % len(names)
    order = names[k:] + names[:k]
    servers: dict[str, Server] = {}
    try:
        for name in order:
            home = work / f"r{rnd}" / name
            port = free_ports(1)[0]
            cfg = write_zoo_cfg(home, port)
            with open(cfg, "a") as f:  # for zk_cnt_fsynctime, the same for every server
                f.write("4lw.commands.whitelist=mntr\n")
            srv = Server(name, home, port, _command(name, contenders[name], cfg))
            servers[name] = srv
            srv.start()
            srv.wait_ready()
        time.sleep(SETTLE_S)
        for srv in servers.values():
            for w in ("getData", "create"):
                run_workload(w, LoadConfig(port=srv.port, duration_s=WARM_UP_S / 2), srv.pid)
        for wl in workloads:
            for name in order:
                srv = servers[name]
                load = os.getloadavg()[0]
                f0 = _fsyncs(srv.port)
                s0, t0 = _schedstat(srv.pid), time.monotonic_ns()
                r = run_workload(wl, LoadConfig(port=srv.port, duration_s=duration_s), srv.pid)
                s1, t1 = _schedstat(srv.pid), time.monotonic_ns()
                f1 = _fsyncs(srv.port)
                sh = _shares(srv.pid, s0, s1, t1 - t0)
                # ops per fsync: the run's, its set-up and checks included
                fs = f1 - f0 if f0 is not None and f1 is not None else None
                row = {"ops_s": r["throughput"], "p99_ms": r.get("p99_ms"),
                       "cpu_us_op": r["server_cpu_us_per_op"], "ok": r["ok"], "load": load,
                       "client_cpu_max": max(r.get("client_cpu") or [0]),
                       "ops_per_fsync": r["ops"] / fs if fs else None, **sh}
                results.setdefault(wl, {}).setdefault(name, []).append(row)
                print(f"round {rnd} {wl:8s} {name:6s} {row['ops_s'] or 0:8.0f}/s "
                      f"p99 {row['p99_ms'] or 0:7.1f} ms  cpu {row['cpu_us_op'] or 0:5.1f} us/op  "
                      f"cores {sh['cores']:.2f} (main thread on cpu {sh['main_on_cpu']:.2f}, "
                      f"waiting {sh['main_waiting']:.2f})  ops/fsync "
                      f"{row['ops_per_fsync'] or 0:.0f}  load {load:.1f}"
                      + ("" if row["ok"] else f"  FAILED: {r['problems']}"), flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(work / f"r{rnd}", ignore_errors=True)


KEYS = ("ops_s", "p99_ms", "cpu_us_op", "cores", "main_on_cpu", "main_waiting", "ops_per_fsync",
        "load")


def medians(results: dict) -> list[str]:
    return ab_rounds.median_lines(results, KEYS, _median_line)


def _median_line(wl: str, n: str, m: dict, runs: int) -> str:
    return (f"{wl:8s} {n:6s} {m['ops_s']:8.0f}/s p99 {m['p99_ms']:7.1f} ms  "
            f"cpu {m['cpu_us_op']:5.1f} us/op  cores {m['cores']:.2f} "
            f"(main {m['main_on_cpu']:.2f} + waiting {m['main_waiting']:.2f})  "
            f"ops/fsync {m['ops_per_fsync']:.0f}  load {m['load']:.1f}  ({runs} runs)")


def main(argv: list[str] | None = None) -> int:
    a, trees = ab_rounds.parse_args(argv, "python -m bench.ab", __doc__, workloads="setData,mixed",
                                    rounds=5, duration_s=3.0)
    contenders: dict[str, str | None] = {} if a.no_java else {"java": None}
    contenders.update(trees)
    for tree in trees.values():  # as an installed package runs: from bytecode
        ensure_zabpy_bytecode_at(tree)
    workloads = a.workloads.split(",")
    results = ab_rounds.run_rounds(
        a.rounds, "zabpy-ab-",
        lambda rnd, work, out: _round(rnd, contenders, workloads, a.duration, work, out))
    return ab_rounds.report(results, medians(results), a.out)


def ensure_zabpy_bytecode_at(tree: str) -> None:
    """``ensure_zabpy_bytecode`` for the zabpy package under ``tree``."""
    import compileall
    compileall.compile_dir(os.path.join(tree, "zabpy"), quiet=1)


if __name__ == "__main__":
    sys.exit(main())
