"""A timeline of the standalone server's group commits under load.

    python -m bench.timeline [--workload setData] [--duration 4] [--tree /path/to/zabpy]
    python -m bench.timeline --serve CFG OUT      # what the first command starts

Throughput that stays below what one busy core would give (the loop is idle
part of the time) is bounded by the pipeline rather than by CPU. This runs
one workload (``bench.loadgen``, the benchmark's client) against a zabpy
server whose runtime is wrapped, in its own process, to record when things
happen (``time.perf_counter_ns``; the loop thread's CPU time beside it):

- ``rx``: a client read handed to the core (start, end, bytes);
- ``append``: the core's prepared txns appended to the log buffer (count);
- ``dispatch``: the loop hands a flush to the fsync thread;
- ``sync``: in the thread, the flush (its start, the fsync's start and end,
  its end, txns written). The fsync's end is when the thread has the GIL
  back, which it waits for while the loop runs Python code;
- ``logged``: the core applies and answers what the fsync covered (start,
  end, zxid);
- ``write``: replies handed to the transports (frames).

The report: per group commit, the median and p90 of each step (hand-off to
the thread, fsync as seen from Python, hand-back to the loop, apply and
answer, until the next flush starts), txns per fsync, whether appends land
while an fsync runs (the overlap), and how busy the loop thread was. The
wrapping costs a few microseconds per event; it is a picture of where the
time goes, not a throughput measurement (use ``bench.ab`` for that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _serve(cfg: str, out: str, switch_us: int = 0) -> int:
    """Run ``zabpy server cfg`` with the runtime wrapped; write the events to ``out``."""
    import asyncio
    import atexit
    import threading

    from zabpy.cli import server as cli
    from zabpy.runtime import server as S
    from zabpy.server.standalone import StandaloneServer
    from zabpy.storage import files as F

    ns = time.perf_counter_ns
    cpu = time.thread_time_ns
    events: list = []
    add = events.append
    loop_thread = threading.get_ident()

    def wrap_loop(cls, name, kind, info):
        orig = getattr(cls, name)

        def wrapper(self, *args):
            t0, c0 = ns(), cpu()
            r = orig(self, *args)
            add((kind, t0, ns(), c0, cpu(), info(args)))
            return r
        setattr(cls, name, wrapper)

    wrap_loop(S.ServerRuntime, "_data", "rx", lambda a: len(a[1]))
    wrap_loop(S.ServerRuntime, "_persist", "append", lambda a: len(a[0]))
    wrap_loop(S.ServerRuntime, "_write", "write", lambda a: len(a[0]))
    wrap_loop(StandaloneServer, "logged", "logged", lambda a: a[0])

    orig_to_thread = asyncio.to_thread

    def to_thread(fn, *args, **kw):
        if getattr(fn, "__name__", "") == "flush_and_sync" and threading.get_ident() == loop_thread:
            add(("dispatch", ns(), 0, cpu(), 0, 0))
        return orig_to_thread(fn, *args, **kw)
    asyncio.to_thread = to_thread

    orig_flush = F.TxnStore.flush_and_sync
    orig_fsync = F.TxnStore._fsync
    marks: dict = {}

    def fsync(fd):
        marks["f0"] = ns()
        orig_fsync(fd)
        marks["f1"] = ns()

    def flush_and_sync(self):
        t0 = ns()
        n = len(self._pending)
        marks.clear()
        r = orig_flush(self)
        if n:
            add(("sync", t0, ns(), marks.get("f0", 0), marks.get("f1", 0), n))
        return r
    F.TxnStore.flush_and_sync = flush_and_sync
    F.TxnStore._fsync = staticmethod(fsync)

    if switch_us:
        sys.setswitchinterval(switch_us / 1e6)

    def dump():
        Path(out).write_text(json.dumps(events))
    atexit.register(dump)
    return cli.main([cfg])


def _schedstat(pid: int) -> dict:
    """Per thread of ``pid``: (name, ns on a CPU, ns waiting on a run queue)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = (int(x) for x in f.read().split()[:2])
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[int(tid)] = (name, run_ns, wait_ns)
    return out


def _threads(pid: int, before: dict, after: dict, wall_ns: int) -> dict:
    """Each thread's share of the wall time on a CPU and waiting for one
    (runnable, but the machine's other processes had the cores)."""
    rows = {}
    for tid, (name, run1, wait1) in after.items():
        name0, run0, wait0 = before.get(tid, (name, 0, 0))
        key = "loop" if tid == pid else f"{name}-{tid}"
        rows[key] = {"on_cpu": round((run1 - run0) / wall_ns, 3),
                     "runnable_waiting": round((wait1 - wait0) / wall_ns, 3)}
    return {k: v for k, v in rows.items() if v["on_cpu"] > 0.005}


def _pct(xs: list, q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def analyse(events: list, t_from: int, t_to: int) -> dict:
    """Per-commit steps (µs) and counts over the events between t_from and t_to (ns)."""
    ev = [e for e in events if t_from <= e[1] <= t_to]
    by: dict = {}
    for e in ev:
        by.setdefault(e[0], []).append(e)
    syncs = by.get("sync", [])
    dispatches = [e[1] for e in by.get("dispatch", [])]
    logged = by.get("logged", [])
    appends = by.get("append", [])
    steps: dict[str, list] = {k: [] for k in ("handoff", "pre_fsync", "fsync", "post_fsync",
                                              "handback", "apply", "thread_idle", "cycle")}
    batch = []
    di = li = 0
    prev = None
    for s in syncs:
        # a hand-off: the last dispatch after the previous flush ended
        while di < len(dispatches) and dispatches[di] <= s[1]:
            di += 1
        d = dispatches[di - 1] if di else None
        if d is not None and (prev is None or d >= prev[2]):
            steps["handoff"].append((s[1] - d) / 1e3)
        if prev is not None:
            steps["thread_idle"].append((s[1] - prev[2]) / 1e3)
            steps["cycle"].append((s[1] - prev[1]) / 1e3)
        prev = s
        if s[3]:
            steps["pre_fsync"].append((s[3] - s[1]) / 1e3)
            steps["fsync"].append((s[4] - s[3]) / 1e3)
            steps["post_fsync"].append((s[2] - s[4]) / 1e3)
        while li < len(logged) and logged[li][1] < s[2]:
            li += 1
        if li < len(logged):
            lg = logged[li]
            steps["handback"].append((lg[1] - s[2]) / 1e3)
            steps["apply"].append((lg[2] - lg[1]) / 1e3)
        batch.append(s[5])
    # txns appended while a flush was in the thread (its start .. its end)
    overlapped = appended_total = 0
    wi = 0
    for a in appends:
        appended_total += a[5]
        while wi < len(syncs) and syncs[wi][2] < a[1]:
            wi += 1
        if wi < len(syncs) and syncs[wi][1] <= a[1] <= syncs[wi][2]:
            overlapped += a[5]
    loop_events = [e for e in ev if e[0] in ("rx", "append", "write", "logged")]
    wall = (t_to - t_from) / 1e9
    busy = 0.0
    if loop_events:
        busy = (loop_events[-1][4] - loop_events[0][3]) / (loop_events[-1][2] - loop_events[0][1])
    rx = by.get("rx", [])
    rx_busy = sum(e[2] - e[1] for e in rx) / 1e9
    lg_busy = sum(e[2] - e[1] for e in logged) / 1e9
    thread_busy = sum(s[2] - s[1] for s in syncs) / 1e9
    return {
        "commits": len(syncs), "commits_per_s": round(len(syncs) / wall, 1) if wall else 0,
        "txns_per_commit": {"median": statistics.median(batch) if batch else 0,
                            "p10": _pct(batch, 0.1), "p90": _pct(batch, 0.9),
                            "mean": round(sum(batch) / len(batch), 1) if batch else 0},
        "steps_us": {k: {"median": round(statistics.median(v), 1) if v else 0,
                         "p90": round(_pct(v, 0.9), 1), "n": len(v)} for k, v in steps.items()},
        "txns_appended": appended_total,
        "appended_while_flush_in_thread": overlapped,
        "loop_cpu_fraction": round(busy, 3),
        "loop_in_rx_fraction": round(rx_busy / wall, 3) if wall else 0,
        "loop_in_logged_fraction": round(lg_busy / wall, 3) if wall else 0,
        "thread_in_flush_fraction": round(thread_busy / wall, 3) if wall else 0,
        "reads": len(rx),
        "logged_calls": len(logged),
        "reply_writes": len(by.get("write", [])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.timeline",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--serve", nargs=2, metavar=("CFG", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--workload", default="setData")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--tree", default=None, help="the zabpy source tree to run (PYTHONPATH)")
    ap.add_argument("--json", default=None, help="write the analysis here")
    ap.add_argument("--switch-us", type=int, default=0,
                    help="experiment: sys.setswitchinterval in the server (µs)")
    a = ap.parse_args(argv)
    if a.serve:
        return _serve(*a.serve, switch_us=a.switch_us)
    from .loadgen import LoadConfig, run_workload
    from .servers import Server, write_zoo_cfg
    from zabpy.testing.server import free_ports

    with tempfile.TemporaryDirectory(prefix="zabpy-timeline-") as tmp:
        home = Path(tmp)
        port = free_ports(1)[0]
        cfg = write_zoo_cfg(home, port)
        out = home / "events.json"
        here = str(Path(__file__).resolve().parent.parent)
        # this file as a script: zabpy comes from the tree, whatever its bench/ holds
        cmd = ["env", f"PYTHONPATH={a.tree or here}", sys.executable,
               str(Path(__file__).resolve()), "--serve", str(cfg), str(out),
               "--switch-us", str(a.switch_us)]
        srv = Server("zabpy", home, port, cmd)
        srv.start()
        try:
            srv.wait_ready()
            run_workload("getData", LoadConfig(port=port, duration_s=0.5), srv.pid)
            t0 = time.perf_counter_ns()
            load = os.getloadavg()[0]
            s0 = _schedstat(srv.pid)
            r = run_workload(a.workload, LoadConfig(port=port, duration_s=a.duration), srv.pid)
            s1 = _schedstat(srv.pid)
            t1 = time.perf_counter_ns()
        finally:
            srv.stop()
        events = json.loads(out.read_text())
    # the timed phase: skip the first and last 10% of the run's window
    span = t1 - t0
    res = analyse(events, t0 + span // 10, t1 - span // 10)
    res["threads"] = _threads(srv.pid, s0, s1, t1 - t0)
    res.update(workload=a.workload, ops_s=r["throughput"], ok=r["ok"],
               server_cpu_us_per_op=r["server_cpu_us_per_op"], load=load)
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
