"""Where a standalone zabpy server's CPU goes under a write workload, source trees side by side.

    python -m bench.profile_server --trees before=/work/wt-before,after=. \\
        [--workloads create,setData] [--duration 12] [--rounds 3] [--depth N] \\
        [--mode plain|cprofile|pyspy] [--native] [--out DIR]
    python -m bench.profile_server --table DIR...     # CPU per op by concern and tree
    python -m bench.profile_server --summarize DIR    # medians per mode, workload, tree
    python -m bench.profile_server --report FILE...   # concerns of .prof / .pyspy files

Each round starts one standalone server per tree (the benchmark's zoo.cfg,
forceSync=yes unless the tree's name ends in ``:nosync``; ``PYTHONPATH=tree``),
the order of the trees rotating from round to round, warms it up as
``bench.ab`` does, and runs each workload with ``bench.loadgen``'s defaults
(2 client processes x 8 sessions x 32 requests in flight, as
``bench.compare``; ``--depth`` changes the 32). The server is this file run
as a script (``--serve``): ``zabpy server zoo.cfg`` with two signal
handlers, so that a window covers exactly the load generator's timed phase
(``run_workload``'s ``on_timed`` hooks): SIGUSR1 opens it, SIGUSR2 closes
it and writes what it measured into the window directory
(``window-N.json``; ``window-N.prof`` too with --cprofile). A run records:

* ops/s, p99 and the server's CPU per op: ``bench.loadgen``'s (the process
  tree, snapshot writers included) and, from ``/proc/<pid>/task/*/{stat,
  status}``, the event loop's thread (user, system) and the other threads
  (the executor's, which write and fsync the txn log), with voluntary and
  involuntary context switches per op;
* the loop thread's share of the run on a CPU and runnable but waiting for
  one (``schedstat``), the ops per fsync (``mntr``'s ``zk_cnt_fsynctime``),
  the 1-minute load average, the machine's busy cores and the host's steal
  (``/proc/stat``), the busiest client process's share of a core;
* the collector's passes and their time (``gc.callbacks``, only inside the
  window: a callback per pass, nothing per allocation), with the concern
  whose allocation set each pass off.

Modes: ``plain`` adds nothing else (the CPU per op to quote); ``cprofile``
runs ``cProfile`` over the window (2.5-3x slower: its per-call cost inflates
code that makes many small Python calls, and uvloop's own C work between
callbacks is not seen by it); ``pyspy`` samples the server from outside with
``py-spy record --nonblocking`` (``--format raw``: folded stacks of every
thread, written to ``DIR/<tree>-<workload>-r<round>.pyspy``), which costs
the server little (``--native`` adds C frames but stops the process for each
sample). The concerns (jute codec, prep, apply, txn log, group commit, loop
and socket, server core, GC, other) come from one classification
(``classify``, ``classify_stack``) for py-spy stacks, cProfile entries and
GC passes alike. docs/perf/profiles-issue10.md is what it measured for issue 10.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import signal
import sys
import time

CATEGORIES = ("jute codec", "prep", "apply", "txn log", "group commit", "loop+socket",
              "server core", "gc", "other")

# functions of zabpy/server/standalone.py that are not the server core's own
_STANDALONE = {
    "_decode": "jute codec", "frame": "jute codec",
    "_prepare": "prep", "_quota_logs": "prep", "_recreate_session": "prep",
    "logged": "apply", "_apply_logged": "apply", "_apply_one": "apply",
    "_after_apply": "apply", "apply_txn": "apply", "_sessions_follow": "apply",
    "_record_change": "apply", "_fire": "apply", "_notifications": "apply",
    "_apply_part": "apply", "_apply_next": "apply", "_scan_waits": "apply",
}
_FINAL_ENCODE = {"write_reply", "multi_response", "_buffer", "_ustring", "to_bytes", "write"}
_RUNTIME_COMMIT = {"_sync_loop", "_persist", "_handle_txns", "flush_and_sync"}
# the concerns that own the records they build and encode: a txn made in prep,
# the txn's bytes for the log, a node's stat in apply
_CODEC_OWNERS = ("prep", "apply", "txn log")
_FUTURES_COMMIT = {"wrap_future", "_chain_future", "_copy_future_state", "_call_set_state",
                   "_set_state", "_call_check_cancel"}
_BUILTIN_LOOP = ("uvloop", "_socket", "socket.socket", "select.epoll", "_asyncio")
_BUILTIN_COMMIT = ("run_in_executor", "call_soon_threadsafe", "_thread", "queue")


@functools.lru_cache(maxsize=4096)
def classify(filename: str, func: str) -> str | None:
    """The concern a function belongs to, or None for a builtin whose time
    goes to its caller (``len``, ``struct.pack``...)."""
    f = filename.replace("\\", "/")
    if f and f[0] not in "/<~":
        f = "/" + f   # py-spy names files relative to their sys.path entry
    func = func.rpartition(".")[2] if "<" not in func else func   # py-spy's Class.method
    if f == "~" or f.startswith("<built-in"):   # a C function, as cProfile names it
        if "adler32" in func or "crc32" in func or "os.write" in func or "fsync" in func:
            return "txn log"
        if "gc." in func or "'gc'" in func:
            return "gc"
        if any(k in func for k in _BUILTIN_COMMIT):
            return "group commit"
        if any(k in func for k in _BUILTIN_LOOP):
            return "loop+socket"
        return None
    if f == "<string>" or "/zabpy/jute/" in f or f.endswith("/zabpy/protocol/connection.py"):
        return "jute codec"
    if f.endswith("/zabpy/server/standalone.py"):
        return _STANDALONE.get(func, "server core")
    if "/zabpy/pipeline/prep" in f or any(f.endswith(f"/zabpy/tree/{m}.py")
                                          for m in ("acl", "paths", "quota")):
        return "prep"
    if "/zabpy/pipeline/final" in f:   # the reply encoders, and reads
        return "jute codec" if func in _FINAL_ENCODE else "apply"
    if "/zabpy/tree/" in f:
        return "apply"
    if "/zabpy/storage/" in f:
        return "txn log"
    if "/zabpy/runtime/gc_policy" in f:
        return "gc"
    if f.endswith("/zabpy/runtime/server.py"):
        return "group commit" if func in _RUNTIME_COMMIT else "loop+socket"
    if f.endswith("/zabpy/runtime/fatal.py"):   # the guards around callbacks and tasks
        return "group commit" if func == "guard_task" else "loop+socket"
    if f.endswith("/asyncio/futures.py") and func in _FUTURES_COMMIT:
        return "group commit"
    if ("/asyncio/threads.py" in f or "/concurrent/futures/" in f or f.endswith("/threading.py")
            or f.endswith("/queue.py")):
        return "group commit"
    if "/asyncio/" in f or "/uvloop/" in f or f.endswith("/selectors.py"):
        return "loop+socket"
    if "/zabpy/session/" in f or "/zabpy/server/" in f:
        return "server core"
    if "/zabpy/" not in f and "/logging/" not in f and _stdlib(f):
        return None   # enum, dataclasses, functools...: the caller's concern
    return "other"


def classify_stack(frames) -> str:
    """The concern of a stack, given as (filename, function) from the
    innermost frame out: the innermost frame's that has one, except that the
    codec's frames go to prep, apply or the txn log when one of those called
    them (a txn built in prep, a txn's bytes for the log) and stay the
    codec's under the server core or the runtime (a request's decode, a
    reply's encode)."""
    cat = None
    for filename, func in frames:
        if not filename or filename.startswith("0x"):
            continue
        c = classify(filename, func)
        if c is None or (cat == "jute codec" and c == cat):
            continue
        if cat is None:
            cat = c
            if c == "jute codec":
                continue   # whose records: a request's, a reply's, a txn's?
        elif c in _CODEC_OWNERS:
            cat = c
        break
    return cat or "other"


def _frames_of(frame):
    """(filename, qualified name) of ``frame`` and its callers, innermost first."""
    while frame is not None:
        code = frame.f_code
        yield code.co_filename, getattr(code, "co_qualname", code.co_name)
        frame = frame.f_back


def _stdlib(f: str) -> bool:
    import sysconfig
    if f.startswith(sysconfig.get_paths()["stdlib"] + "/"):
        return True
    top = f.lstrip("/").split("/", 1)[0]
    return top.removesuffix(".py") in sys.stdlib_module_names


# ---- the server side: zabpy server with a measuring window --------------------


class _Window:
    """What the server process measures between SIGUSR1 and SIGUSR2."""

    def __init__(self, out_dir: str, cprofile: bool):
        self.out_dir = out_dir
        self.cprofile = cprofile
        self.n = 0
        self.prof = None
        self.open = False
        self.gc_passes = [0, 0, 0]
        self.gc_ns = [0, 0, 0]
        self.gc_collected = 0
        self.gc_by_concern = {}
        self._gc_concern = "other"
        self._gc_t0 = 0

    def _gc(self, phase: str, info: dict) -> None:
        if not self.open:
            return
        if phase == "start":
            # the concern whose allocation set the pass off: py-spy's samples
            # and cProfile's self times count the pass inside it
            self._gc_concern = classify_stack(_frames_of(sys._getframe(1)))
            self._gc_t0 = time.perf_counter_ns()
        elif self._gc_t0:   # not a pass that began before the window
            ns = time.perf_counter_ns() - self._gc_t0
            g = info["generation"]
            self.gc_passes[g] += 1
            self.gc_ns[g] += ns
            self.gc_by_concern[self._gc_concern] = self.gc_by_concern.get(self._gc_concern, 0) + ns
            self.gc_collected += info.get("collected", 0)
            self._gc_t0 = 0

    def start(self, *_) -> None:
        self.n += 1
        self.gc_passes, self.gc_ns, self.gc_collected = [0, 0, 0], [0, 0, 0], 0
        self.gc_by_concern: dict[str, int] = {}
        self._gc_t0 = 0
        self.open = True
        if self.cprofile:
            import cProfile
            self.prof = cProfile.Profile()
            self.prof.enable()

    def stop(self, *_) -> None:
        if not self.open:
            return
        if self.prof is not None:
            self.prof.disable()
        self.open = False
        base = os.path.join(self.out_dir, f"window-{self.n}")
        if self.prof is not None:
            self.prof.dump_stats(base + ".prof")
            self.prof = None
        tmp = base + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"gc_passes": self.gc_passes, "gc_ns": self.gc_ns,
                       "gc_collected": self.gc_collected,
                       "gc_by_concern": self.gc_by_concern}, f)
        os.replace(tmp, base + ".json")   # the driver waits for this name


def serve(cfg: str, out_dir: str, cprofile: bool) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]   # run as a script: bench/'s modules are not the server's
    w = _Window(out_dir, cprofile)
    gc.callbacks.append(w._gc)
    signal.signal(signal.SIGUSR1, w.start)
    signal.signal(signal.SIGUSR2, w.stop)
    from zabpy.cli.main import main
    return main(["server", cfg])


# ---- the driver: servers, load, /proc -----------------------------------------------------


def thread_stats(pid: int) -> dict[int, tuple]:
    """(utime s, stime s, voluntary, involuntary context switches) per thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                raw = f.read()
            fields = raw[raw.rindex(")") + 2:].split()
            vol = invol = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol = int(line.split()[1])
        except (OSError, ValueError):
            continue
        out[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick, vol, invol)
    return out


def machine_ticks() -> list[int]:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def _machine_delta(before: list[int], after: list[int]) -> dict:
    """The machine's cores busy (all processes) and the share stolen by the host."""
    if len(before) < 8 or len(after) < 8:
        return {}
    d = [a - b for a, b in zip(after, before)]
    total = sum(d) or 1
    return {"machine_busy": (total - d[3] - d[4]) / total * (os.cpu_count() or 1),
            "steal": d[7] / total}


def _thread_delta(pid: int, before: dict, after: dict, ops: int) -> dict:
    """Per-op CPU (us) and context switches of the loop thread and of the others."""
    def delta(tids):
        d = [0.0, 0.0, 0, 0]
        for t in tids:
            a = after[t]
            b = before.get(t, (0.0, 0.0, 0, 0))
            for i in range(4):
                d[i] += a[i] - b[i]
        return d
    main = delta([pid] if pid in after else [])
    rest = delta([t for t in after if t != pid])
    per = max(ops, 1)
    return {"main_user_us_op": main[0] * 1e6 / per, "main_sys_us_op": main[1] * 1e6 / per,
            "others_us_op": (rest[0] + rest[1]) * 1e6 / per,
            "main_vcsw_op": main[2] / per, "main_ivcsw_op": main[3] / per,
            "others_vcsw_op": rest[2] / per, "threads": len(after)}


def _wait_file(path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server wrote no {path}")
        time.sleep(0.05)


def start_server(name: str, tree: str, home, mode: str, force_sync: bool = True):
    """A standalone server of ``tree`` under this file's --serve, ready."""
    from pathlib import Path
    from zabpy.testing.server import free_ports
    from .servers import Server, write_zoo_cfg
    home = Path(home)
    port = free_ports(1)[0]
    cfg = write_zoo_cfg(home, port, force_sync=force_sync)
    with open(cfg, "a") as f:   # for zk_cnt_fsynctime
        f.write("4lw.commands.whitelist=mntr,srvr\n")
    wdir = home / "windows"
    wdir.mkdir(exist_ok=True)
    cmd = ["env", f"PYTHONPATH={os.path.abspath(tree)}", sys.executable,
           os.path.abspath(__file__), "--serve", str(cfg), "--window-dir", str(wdir)]
    if mode == "cprofile":
        cmd.append("--cprofile")
    srv = Server(name, home, port, cmd)
    srv.start()
    try:
        srv.wait_ready()
    except BaseException:
        srv.stop()
        raise
    srv.window_dir = str(wdir)
    srv.windows = 0
    return srv


def measure(srv, workload: str, duration_s: float, mode: str = "plain",
            pyspy_out: str | None = None, cfg=None, native: bool = False) -> dict:
    """One workload on ``srv`` with the window open over its timed phase."""
    from .ab import _fsyncs, _schedstat, _shares
    from .loadgen import LoadConfig, run_workload
    cfg = cfg or LoadConfig(port=srv.port, duration_s=duration_s)
    pid = srv.pid
    state: dict = {}

    def begin() -> None:
        state["threads0"] = thread_stats(pid)
        state["machine0"] = machine_ticks()
        state["sched0"], state["t0"] = _schedstat(pid), time.monotonic_ns()
        if mode == "pyspy":
            import subprocess
            state["spy"] = subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--threads",
                 "--format", "raw", "--output", pyspy_out, "--duration", str(int(duration_s) + 30)]
                # native frames need the process stopped for each sample
                + (["--native"] if native else ["--nonblocking"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.kill(pid, signal.SIGUSR1)

    def end() -> None:
        os.kill(pid, signal.SIGUSR2)
        state["sched1"], state["t1"] = _schedstat(pid), time.monotonic_ns()
        state["threads1"] = thread_stats(pid)
        state["machine1"] = machine_ticks()
        spy = state.get("spy")
        if spy is not None:
            spy.send_signal(signal.SIGINT)

    load = os.getloadavg()[0]
    f0 = _fsyncs(srv.port)
    r = run_workload(workload, cfg, pid, on_timed=(begin, end))
    f1 = _fsyncs(srv.port)
    row: dict = {"workload": workload, "server": srv.name, "mode": mode, "load": load,
                 "ok": r["ok"], "problems": r["problems"][:3], "ops": r["ops"],
                 "ops_s": r["throughput"], "p99_ms": r.get("p99_ms"),
                 "cpu_us_op": r["server_cpu_us_per_op"],
                 "client_cpu_max": max(r.get("client_cpu") or [0])}
    if "t1" not in state:
        return row
    srv.windows += 1
    win = os.path.join(srv.window_dir, f"window-{srv.windows}")
    _wait_file(win + ".json")
    with open(win + ".json") as f:
        g = json.load(f)
    ops = max(r["ops"], 1)
    row.update(_thread_delta(pid, state["threads0"], state["threads1"], ops))
    row.update(_shares(pid, state["sched0"], state["sched1"], state["t1"] - state["t0"]))
    row.update(_machine_delta(state["machine0"], state["machine1"]))
    row["gc_passes"] = g["gc_passes"]
    row["gc_us_op"] = sum(g["gc_ns"]) / 1e3 / ops
    row["gc_us_op_by_concern"] = {c: ns / 1e3 / ops for c, ns in g["gc_by_concern"].items()}
    row["ops_per_fsync"] = r["ops"] / (f1 - f0) if f0 is not None and f1 and f1 > f0 else None
    if mode == "cprofile":
        row["prof"] = win + ".prof"
    spy = state.get("spy")
    if spy is not None:
        _, err = spy.communicate(timeout=60)
        row["pyspy"] = pyspy_out
        if spy.returncode not in (0, -signal.SIGINT):
            row["pyspy_error"] = err.decode(errors="replace")[-500:]
    return row


# ---- reading profiles ------------------------------------------------------------------------


def pstats_by_category(path: str) -> tuple[dict[str, float], float]:
    """Self time (s) of a cProfile dump by concern, and the total; a builtin's
    time goes to its callers' concerns in proportion to what each spent in it."""
    import pstats
    stats = pstats.Stats(path).stats

    def cat_of(key, depth: int = 0) -> dict[str, float]:
        """How a unit of ``key``'s self time splits over the concerns."""
        filename, _, func = key
        c = classify(filename, func)
        if depth > 4 or (c is not None and c != "jute codec"):
            return {c or "other": 1.0}
        callers = stats[key][4]
        total = sum(v[2] for v in callers.values()) or 0.0
        if not total:
            return {c or "other": 1.0}
        out: dict[str, float] = {}
        for ck, v in callers.items():
            for cc, share in (cat_of(ck, depth + 1) if ck in stats else {"other": 1.0}).items():
                if c == "jute codec" and cc not in _CODEC_OWNERS:
                    cc = c   # a request's decode or a reply's encode
                out[cc] = out.get(cc, 0.0) + share * v[2] / total
        return out

    by: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    for key, (_, _, tt, _, _) in stats.items():
        for c, share in cat_of(key).items():
            by[c] += tt * share
    return by, sum(by.values())


def _frame_parts(frame: str) -> tuple[str, str]:
    """py-spy's 'func (file:line)' as (file, func)."""
    func, _, rest = frame.rpartition(" (")
    if not _:
        return "", frame
    return rest.rstrip(")").rsplit(":", 1)[0], func


def pyspy_by_category(path: str) -> tuple[dict[str, float], dict[str, float]]:
    """Samples of a py-spy raw file by concern: (loop thread, other threads).

    A sample goes to the innermost frame that has a concern (the codec's
    frames to prep, apply or the txn log when one of those called it); samples of
    threads other than the main one (the executor's, which write and fsync
    the log) are counted apart."""
    main: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    others: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            worker = "MainThread" not in frames[0] or any(
                "concurrent/futures/thread.py" in fr for fr in frames)
            cat = classify_stack(_frame_parts(fr) for fr in reversed(frames)
                                 if not fr.startswith("thread ("))
            (others if worker else main)[cat] += int(n)
    return main, others


def report(paths: list[str]) -> str:
    lines = []
    for p in paths:
        if p.endswith(".prof"):
            by, total = pstats_by_category(p)
            lines.append(f"{p}: cProfile self time {total:.2f} s")
            lines += [f"  {c:13s} {100 * v / total:5.1f}%" for c, v in by.items() if total]
        else:
            main, others = pyspy_by_category(p)
            n = sum(main.values())
            lines.append(f"{p}: {n:.0f} samples of the loop thread, "
                         f"{sum(others.values()):.0f} of executor threads")
            lines += [f"  {c:13s} {100 * v / n:5.1f}%" for c, v in main.items() if n]
    return "\n".join(lines)


def top_functions(path: str, n: int = 25) -> list[tuple[float, int, str]]:
    """The ``n`` functions of a cProfile dump with the most self time."""
    import pstats
    st = pstats.Stats(path).stats
    rows = sorted(((v[2], v[1], f"{k[0]}:{k[1]}({k[2]})") for k, v in st.items()), reverse=True)
    return rows[:n]


def _median(xs: list[float]) -> float | None:
    import statistics
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def concern_rows(row: dict) -> dict[str, float] | None:
    """A profiled run's loop-thread CPU per op (us) by concern. The profile
    gives the shares; the collector's time (``gc.callbacks``) is its own row,
    taken out of the concern whose allocation set each pass off (the
    profile counted the pass there); runs from before that was recorded
    take it out of every concern in proportion."""
    if row.get("pyspy") and os.path.exists(row["pyspy"]):
        by, _ = pyspy_by_category(row["pyspy"])
    elif row.get("prof") and os.path.exists(row["prof"]):
        by, _ = pstats_by_category(row["prof"])
    else:
        return None
    total = sum(by.values())
    if not total or row.get("main_user_us_op") is None:
        return None
    loop = row["main_user_us_op"] + row["main_sys_us_op"]
    gc_us = min(row.get("gc_us_op") or 0.0, loop)
    where = row.get("gc_us_op_by_concern")
    if where is None:
        out = {c: (loop - gc_us) * v / total for c, v in by.items() if c != "gc"}
        out["gc"] = gc_us + (loop - gc_us) * by.get("gc", 0.0) / total
        return out
    out = {c: loop * v / total for c, v in by.items()}
    for c, us in where.items():
        take = min(us, out.get(c, 0.0))
        out[c] = out.get(c, 0.0) - take
        out["gc"] = out.get("gc", 0.0) + take
    return out


def summarize(out_dir: str) -> str:
    """Medians per (mode, workload, server) of the runs in ``out_dir``, and
    the loop thread's CPU per op by concern for the profiled modes."""
    rows = _load_runs([out_dir])
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["workload"], r["server"]), []).append(r)
    keys = ("ops_s", "p99_ms", "cpu_us_op", "main_user_us_op", "main_sys_us_op", "others_us_op",
            "gc_us_op", "main_on_cpu", "main_waiting", "main_vcsw_op", "main_ivcsw_op",
            "others_vcsw_op", "ops_per_fsync", "client_cpu_max", "machine_busy", "steal",
            "load")
    lines = []
    for (mode, wl, srv), rs in sorted(groups.items()):
        m = {k: _median([r.get(k) for r in rs]) for k in keys}
        lines.append(f"{mode:8s} {wl:8s} {srv:8s} n={len(rs)} " + " ".join(
            f"{k}={v:.3g}" for k, v in m.items() if v is not None))
        per = [c for c in (concern_rows(r) for r in rs) if c]
        if per:
            med = {c: _median([p[c] for p in per]) for c in per[0]}
            tot = sum(med.values())
            lines.append("    loop us/op by concern (median of runs): " + ", ".join(
                f"{c} {v:.1f} ({100 * v / tot:.0f}%)" for c, v in med.items()))
    return "\n".join(lines)


def _load_runs(dirs: list[str]) -> list[dict]:
    rows = []
    for d in dirs:
        for mode in ("plain", "cprofile", "pyspy"):
            path = os.path.join(d, f"runs-{mode}.json")
            if os.path.exists(path):
                with open(path) as f:
                    rows += [json.loads(line) for line in f if line.strip()]
    return rows


def table(dirs: list[str]) -> str:
    """Per workload, the server's CPU per op by concern for each tree, as a
    markdown table: the loop thread's CPU per op and the executor threads'
    are the medians of the ``plain`` runs (no profiler); the loop's split is
    the py-spy samples of every ``pyspy`` run pooled; the collector's time
    (median of the plain runs, per concern that set its passes off) is
    taken out of the concern it struck in and shown as its own row."""
    rows = _load_runs(dirs)
    out = []
    for wl in sorted({r["workload"] for r in rows}):
        cols = {}
        for srv in sorted({r["server"] for r in rows if r["workload"] == wl}, reverse=True):
            plain = [r for r in rows if r["workload"] == wl and r["server"] == srv
                     and r["mode"] == "plain" and r.get("main_user_us_op") is not None]
            spy = [r for r in rows if r["workload"] == wl and r["server"] == srv
                   and r.get("pyspy") and os.path.exists(r["pyspy"])]
            if not plain or not spy:
                continue
            loop = _median([r["main_user_us_op"] + r["main_sys_us_op"] for r in plain])
            others = _median([r["others_us_op"] for r in plain])
            samples = {c: 0.0 for c in CATEGORIES}
            for r in spy:
                for c, n in pyspy_by_category(r["pyspy"])[0].items():
                    samples[c] += n
            n = sum(samples.values()) or 1.0
            with_gc = [r for r in plain if r.get("gc_us_op_by_concern") is not None]
            gc_where = {c: _median([r["gc_us_op_by_concern"].get(c, 0.0) for r in with_gc])
                        for c in CATEGORIES} if with_gc else {}
            us = {c: loop * samples[c] / n for c in CATEGORIES}
            for c, g in gc_where.items():
                if c != "gc":
                    take = min(g, us[c])
                    us[c] -= take
                    us["gc"] += take
            us["log write + fsync (executor threads)"] = others
            cols[srv] = (us, loop + others, len(plain), len(spy))
        if not cols:
            continue
        names = list(cols)
        out.append(f"{wl}: " + "; ".join(
            f"{s} {cols[s][1]:.1f} us/op ({cols[s][2]} plain runs, {cols[s][3]} py-spy runs)"
            for s in names))
        out.append("| concern | " + " | ".join(f"{s} us/op | {s} %" for s in names) + " |")
        out.append("|---|" + "---:|" * (2 * len(names)))
        for c in cols[names[0]][0]:
            cells = []
            for s in names:
                us, total = cols[s][0], cols[s][1]
                cells += [f"{us[c]:.1f}", f"{100 * us[c] / total:.0f}%"]
            out.append(f"| {c} | " + " | ".join(cells) + " |")
        out.append("| total | " + " | ".join(f"{cols[s][1]:.1f} | 100%" for s in names) + " |")
        out.append("")
    return "\n".join(out)


# ---- command line ------------------------------------------------------------------------------


def run(trees: dict[str, str], workloads: list[str], rounds: int, duration_s: float,
        mode: str, out_dir: str, native: bool = False, depth: int | None = None) -> list[dict]:
    import shutil
    import tempfile
    from pathlib import Path
    from .ab import ensure_zabpy_bytecode_at
    from .loadgen import LoadConfig, run_workload
    for tree in trees.values():
        ensure_zabpy_bytecode_at(tree)
    os.makedirs(out_dir, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zabpy-prof-"))
    rows: list[dict] = []
    names = list(trees)
    try:
        for rnd in range(rounds):
            k = rnd % len(names)
            for name in names[k:] + names[:k]:
                home = work / f"r{rnd}-{name}"
                # a name ending in ":nosync" runs its tree with forceSync=no
                srv = start_server(name, trees[name], home, mode,
                                   force_sync=not name.endswith(":nosync"))
                try:
                    time.sleep(2.0)
                    for w in ("getData", "create"):   # warm-up, as bench.ab
                        run_workload(w, LoadConfig(port=srv.port, duration_s=0.5), srv.pid)
                    for wl in workloads:
                        spy = os.path.join(out_dir, f"{name}-{wl}-r{rnd}.pyspy")
                        cfg = LoadConfig(port=srv.port, duration_s=duration_s, depth=depth)
                        row = measure(srv, wl, duration_s, mode, spy, cfg=cfg, native=native)
                        row["depth"] = depth
                        row["round"] = rnd
                        if row.get("prof"):
                            keep = os.path.join(out_dir, f"{name}-{wl}-r{rnd}.prof")
                            shutil.copy(row["prof"], keep)
                            row["prof"] = keep
                        rows.append(row)
                        print(_line(row), flush=True)
                finally:
                    srv.stop()
                shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(out_dir, f"runs-{mode}.json"), "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return rows


def _line(r: dict) -> str:
    def g(k, fmt="{:.1f}"):
        v = r.get(k)
        return "-" if v is None else fmt.format(v)
    return (f"r{r.get('round', 0)} {r['workload']:8s} {r['server']:7s} {r['mode']:8s} "
            f"{g('ops_s', '{:,.0f}')}/s p99 {g('p99_ms')} ms cpu {g('cpu_us_op')} us/op "
            f"(loop {g('main_user_us_op')}u+{g('main_sys_us_op')}s, others "
            f"{g('others_us_op')}) gc {g('gc_us_op', '{:.2f}')} us/op "
            f"loop on-cpu {g('main_on_cpu', '{:.2f}')} wait {g('main_waiting', '{:.2f}')} "
            f"vcsw/op {g('main_vcsw_op', '{:.3f}')} ops/fsync {g('ops_per_fsync', '{:.0f}')} "
            f"client {g('client_cpu_max', '{:.2f}')} machine busy {g('machine_busy', '{:.2f}')} "
            f"cores steal {g('steal', '{:.2f}')} load {g('load')}"
            + ("" if r["ok"] else f" FAILED {r['problems']}"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_server",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="",
                    help="name=path,... (zabpy source trees; a name ending in :nosync runs "
                         "its tree with forceSync=no)")
    ap.add_argument("--workloads", default="create,setData")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--duration", type=float, default=12.0, help="seconds per run")
    ap.add_argument("--depth", type=int, default=None,
                    help="requests in flight per session (default: the workload's, 32)")
    ap.add_argument("--mode", choices=("plain", "cprofile", "pyspy"), default="cprofile")
    ap.add_argument("--native", action="store_true",
                    help="pyspy mode: native frames too (the collector, uvloop, zlib)")
    ap.add_argument("--out", default="bench/results/profiles")
    ap.add_argument("--report", nargs="*", help="print the concerns of these .prof/.pyspy files")
    ap.add_argument("--summarize", metavar="DIR", help="medians of the runs an --out DIR holds")
    ap.add_argument("--table", nargs="*", metavar="DIR",
                    help="CPU per op by concern and tree, from the plain and pyspy runs of DIRs")
    ap.add_argument("--serve", help=argparse.SUPPRESS)   # the server side (a zoo.cfg)
    ap.add_argument("--window-dir", help=argparse.SUPPRESS)
    ap.add_argument("--cprofile", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        return serve(a.serve, a.window_dir, a.cprofile)
    if a.report:
        print(report(a.report))
        return 0
    if a.summarize:
        print(summarize(a.summarize))
        return 0
    if a.table:
        print(table(a.table))
        return 0
    trees = dict(item.split("=", 1) for item in a.trees.split(",") if item)
    if not trees:
        ap.error("--trees is required")
    rows = run(trees, a.workloads.split(","), a.rounds, a.duration, a.mode, a.out, a.native,
               a.depth)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
