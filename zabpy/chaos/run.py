"""One harness run: network, ensemble, workloads, faults, heal, checks, report.

It moves this process into the bridge namespace (``enter_netns``) before any
thread starts, so run it as its own process (``python -m zabpy.chaos``).
Whatever happens, the servers are killed and the namespaces deleted: a
``finally``, an ``atexit`` hook, SIGTERM turned into SystemExit, and at the
next start a sweep of leftovers whose creating process is gone.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
import traceback

from .checks import check_register, check_set
from .cluster import Cluster
from .disk import WORKDIR_PREFIX, Disks, sweep_mounts
from .faults import FLAP_S, KINDS, POWER_KINDS, Injector, schedule
from .net import Network, _pid_alive, cleanup_leftovers, enter_netns
from .recipe_checks import check_ephemerals, check_lock, check_watches, register_zxids
from .recipes import ephemerals_left
from .report import render, slowest_record, slowest_write, unavailability
from .timeline import draw
from .workload import SESSION_TIMEOUT_S, Workloads

__all__ = ["run"]

CONVERGE_S = 90.0
# Sessions closed or abandoned at the end expire within their timeout (and
# a leader elected meanwhile gives each a whole new timeout).
EPHEMERALS_GONE_S = 3 * SESSION_TIMEOUT_S + 10


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run(seed: int, servers: int = 3, duration: float = 30.0, target: str = "zabpy",
        plant: str | None = None, kinds=KINDS, keep: bool = False, log=print,
        disk: str = "auto", report_dir: str | None = None,
        latency: tuple[float, float, float] | None = None) -> dict:
    removed = cleanup_leftovers() + sweep_mounts(_pid_alive)
    if removed:
        log(f"removed leftovers of earlier runs: {removed}")
    net = Network(list(range(1, servers + 1)), tag=f"{target[0]}{seed % 100000}")
    workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
    disks = Disks(workdir, net.sids, disk, track=any(k in POWER_KINDS for k in kinds))
    # A kept directory leaves the name the next run sweeps (the pid's).
    kept_dir = workdir.replace(WORKDIR_PREFIX, WORKDIR_PREFIX + "kept-", 1)
    cluster: Cluster | None = None
    wl: Workloads | None = None

    def cleanup():
        if wl is not None:
            wl.stop.set()
        if cluster is not None:
            cluster.stop_all()
        net.close()
        if keep:
            for d in list(disks.mounted):   # the file systems go with their mounts
                shutil.copytree(d, d + ".kept", symlinks=True, dirs_exist_ok=True)
        disks.close()
        if keep:
            os.rename(workdir, kept_dir)
            log(f"kept the servers' data (data*.kept) and logs in {kept_dir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        net.create()
        disk_what = disks.setup()
        enter_netns(net.bridge_ns)
        plants = set((plant or "").split(","))
        server_bug = next((b for b in ("local-sync", "no-fsync") if b in plants), None)
        cluster = Cluster(net, workdir, target, server_bug,
                          disks)
        for sid in net.sids:
            cluster.start(sid)
        t_start = cluster.wait_converged(CONVERGE_S if target == "zabpy" else 180,
                                         same_zxid=False)[0]
        log(f"{servers} {target} servers serving after {t_start:.1f}s "
            f"(netem {'available' if net.netem else 'missing: slow = tbf'})")
        if latency is not None:
            # Under the whole run: every member's packets, both ways.
            for sid in net.sids:
                what = net.delay(sid, *latency, seed=seed + sid, background=True)
            log(f"every member's link: {what} (for the whole run)")
        wl = Workloads(cluster.hosts, seed, plant=plant)
        wl.setup()
        inj = Injector(net, cluster, seed, disks)
        plan = schedule(seed, duration, kinds)
        wl.start()
        for f in plan:
            _sleep_until(wl, f.start)
            f.began = wl.now()
            inj.apply(f)
            log(f"{f.began:7.2f}s {f.kind}: {f.detail}")
            while wl.now() < f.start + f.hold:
                time.sleep(min(FLAP_S, max(0.0, f.start + f.hold - wl.now())))
                if wl.now() < f.start + f.hold:
                    inj.tick()
            inj.heal_all()
            f.healed = wl.now()
            dead = inj.unexpected_exits()
            if dead:
                raise RuntimeError(f"servers exited by themselves: {dead}; " + "; ".join(
                    f"{s}: {cluster.last_error(s)}" for s in sorted(dead)))
        _sleep_until(wl, duration)
        inj.heal_all()
        # Clients keep going through recovery, then stop; then every member
        # must serve at one zxid.
        t_heal = wl.now()
        log(f"{t_heal:7.2f}s healed; waiting for every member to serve")
        serve_s = cluster.wait_converged(CONVERGE_S, same_zxid=False,
                                         on_poll=inj.restart_exited)[0]
        time.sleep(1.0)
        wl.finish()
        # One more write so that every member's last zxid is in this epoch
        # (a leader elected after the last write reports its new epoch's zxid).
        wl.touch()
        converge_s, state = cluster.wait_converged(CONVERGE_S)
        log(f"{wl.now():7.2f}s converged: {state}")
        final = wl.read_final()
        left = ephemerals_left(cluster.hosts, EPHEMERALS_GONE_S)
        register, sets = wl.records("register"), wl.records("set")
        verdicts = {"register": check_register(register), "set": check_set(sets, final),
                    "lock": check_lock(wl.logs), "ephemeral": check_ephemerals(wl.logs, left),
                    "watch": check_watches(wl.logs, register_zxids(register),
                                           wl.final_czxid)}
        writes = [r for r in register + sets if r.kind in ("cas", "create")]
        bounds = [f.began for f in plan[1:]] + [t_heal]
        unavail = [unavailability(f, writes, b) for f, b in zip(plan, bounds)]
        slowest = [slowest_write(f, writes, b) for f, b in zip(plan, bounds)]
        meta = {"target": target, "servers": servers, "seed": seed, "duration": duration,
                "plant": plant, "network": f"namespaces {net.tag}-*, 198.18.0.0/24, netem "
                f"{'yes' if net.netem else 'no (slow links by tbf)'}; data dirs: {disk_what}"
                + (f"; every link delayed {latency[0]:g}+-{latency[1]:g} ms each way, "
                   f"{latency[2]:g}% reordered, for the whole run" if latency else ""),
                "latency": latency,
                "serve_s": serve_s,
                "final_state": {s: z for s, (_m, z) in state.items()}}
        records = [r for log in wl.logs for r in log.records]
        hosts = {log.id: log.host for log in wl.logs}
        net.undelay_all(background=True)
        meta["netq"] = {f"{q.sid}" + (f"<->{q.peer}" if q.peer is not None else ""): q.counts
                        for q in net.released if q.background}
        meta["op_ms"] = op_latency_ms(records)
        text = render(meta, plan, unavail, records, verdicts, wl.errors + wl.errors_soft,
                      slowest)
        result = {"text": text, "anomalies": sum(len(v.anomalies) for v in verdicts.values()),
                "verdicts": {k: {"anomalies": [dataclasses.asdict(a) for a in v.anomalies],
                                 "ops_checked": v.ops_checked, "undecided": v.undecided,
                                 "notes": v.notes} for k, v in verdicts.items()},
                "faults": [dataclasses.asdict(f) | {"unavailable_s": u, "slowest_write_s": w,
                                                    "slowest_write": _describe(
                                                        slowest_record(f, writes, b), hosts)}
                           for f, u, w, b in zip(plan, unavail, slowest, bounds)],
                "client_errors": wl.errors, "meta": meta,
                "server_pids": cluster.started_pids, "workdir": kept_dir if keep else None}
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
            with open(os.path.join(report_dir, "report.txt"), "w") as f:
                f.write(text)
            write_json(result, os.path.join(report_dir, "result.json"))
            try:
                draw(os.path.join(report_dir, "timeline.png"), meta, plan, wl.logs, verdicts,
                     wl.now())
            except ImportError as e:
                log(f"no timeline: {e} (pip install matplotlib)")
            if result["anomalies"]:
                _copy_logs(cluster, report_dir)
        return result
    except BaseException as e:
        log(f"run failed: {type(e).__name__}: {e}")
        if not isinstance(e, (RuntimeError, TimeoutError, KeyboardInterrupt, SystemExit)):
            log(traceback.format_exc())
        if cluster is not None:
            for sid in cluster.sids:
                tail = [line for line in cluster.log(sid).splitlines()
                        if "Processing srvr" not in line][-15:]
                log(f"--- server {sid} log tail\n" + "\n".join(tail))
            if report_dir:
                _copy_logs(cluster, report_dir)
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
        cleanup()
        atexit.unregister(cleanup)


def _describe(r, hosts: dict[int, str]) -> dict | None:
    """A write record for the JSON result: who, where, when."""
    if r is None:
        return None
    return {"client": r.client, "host": hosts.get(r.client), "session": f"{r.session:#x}",
            "kind": r.kind, "call": round(r.call, 3), "ret": round(r.ret, 3),
            "outcome": r.outcome, "zxid": r.zxid}


def op_latency_ms(records) -> dict[str, float]:
    """Percentiles of the answered client operations' latency (call to
    return), in ms, over the whole run."""
    spans = sorted((r.ret - r.call) * 1000 for r in records
                   if r.outcome in ("ok", "fail") and r.ret is not None
                   and r.kind in ("read", "sync-read", "cas", "create"))
    if not spans:
        return {}
    return {f"p{p}": round(spans[min(len(spans) - 1, len(spans) * p // 100)], 1)
            for p in (10, 50, 90, 99)} | {"n": len(spans)}


def _copy_logs(cluster: Cluster, report_dir: str) -> None:
    os.makedirs(report_dir, exist_ok=True)
    for name in sorted(os.listdir(cluster.dir)):
        if name.startswith("server") and name.endswith((".log", ".out")):
            shutil.copy(os.path.join(cluster.dir, name), os.path.join(report_dir, name))


def _sleep_until(wl: Workloads, t: float) -> None:
    while wl.now() < t:
        time.sleep(min(0.2, t - wl.now()))


def write_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.chmod(path, 0o644)
