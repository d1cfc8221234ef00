"""python -m zabpy.chaos --seed N [--servers 3|5] [--duration S] [--target zabpy|java]
                        [--faults K,...] [--report-dir DIR] [--disk auto|loop|tmpfs|none]
                        [--latency MS[:JITTER_MS[:REORDER_PCT]]]

The seed fixes the fault schedule (kinds, start times, how long each holds)
and the clients' choices; which member a fault hits is drawn when it starts
(the leader is whoever leads then), and timing is real, so a replay meets
the same faults but not always the same interleaving. --report-dir gets
report.txt, result.json, timeline.png, and the servers' logs when a checker
found an anomaly or the harness failed. On failure the replay command is
printed.

--latency delays every member's packets, both ways, for the whole run (an
NFQUEUE verdict loop per member: zabpy/chaos/netq.py; needs iptables), and
the scheduled faults come and go on top of it.

Exit status: 0 no anomaly, 1 anomalies found, 2 the harness failed,
77 cannot run here (not root, no iproute2): the message says why."""

from __future__ import annotations

import argparse
import shlex
import sys

from .faults import ALL_KINDS, KINDS
from .net import why_not_runnable


PLANTS = ("stale-read", "phantom-ack", "double-lock", "local-sync", "no-fsync")
SERVER_PLANTS = ("local-sync", "no-fsync")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m zabpy.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--servers", type=int, choices=(3, 5), default=3)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of faults")
    p.add_argument("--target", choices=("zabpy", "java"), default="zabpy")
    p.add_argument("--faults", default=",".join(KINDS),
                   help=f"comma-separated kinds to draw from (default: all of {','.join(KINDS)}; "
                        "also power-loss (kill -9 losing what was not fsynced) and "
                        "power-loss-all (every member at once), only when named)")
    p.add_argument("--json", help="also write the result as JSON here")
    p.add_argument("--report-dir", help="write report.txt, result.json, timeline.png here")
    p.add_argument("--keep", action="store_true", help="keep the data and log directory")
    p.add_argument("--disk", choices=("auto", "loop", "tmpfs", "none"), default="auto",
                   help="each member's dataDir: its own ext4 on a loop device (auto: else "
                        "tmpfs), or none (disk faults are then skipped)")
    p.add_argument("--latency", help="every link, the whole run: MS[:JITTER_MS[:REORDER_PCT]] "
                                     "each way (e.g. 20:10:25)")
    # Planted client-side bugs, for the tests that show the checkers catch them.
    p.add_argument("--plant", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    kinds = tuple(k for k in a.faults.split(",") if k)
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad or not kinds:
        p.error(f"unknown fault kinds {bad}; choose from {','.join(ALL_KINDS)}")
    if a.plant and set(a.plant.split(",")) - set(PLANTS):
        p.error(f"--plant takes {', '.join(PLANTS)}")
    planted = set((a.plant or "").split(","))
    if planted & set(SERVER_PLANTS) and a.target != "zabpy":
        p.error("--plant local-sync and no-fsync plant a bug in zabpy's server")
    if len(planted & set(SERVER_PLANTS)) > 1:
        p.error("one server bug at a time")
    latency = None
    if a.latency:
        try:
            parts = [float(x) for x in a.latency.split(":")]
            assert 1 <= len(parts) <= 3 and all(x >= 0 for x in parts) and parts[-1] <= 100
        except (ValueError, AssertionError):
            p.error("--latency takes MS[:JITTER_MS[:REORDER_PCT]], e.g. 20:10:25")
        latency = tuple(parts + [0.0] * (3 - len(parts)))
    reason = why_not_runnable()
    if reason:
        print(f"SKIPPED: {reason}", file=sys.stderr)
        return 77
    from .run import run, write_json
    try:
        result = run(a.seed, a.servers, a.duration, a.target, a.plant, kinds, a.keep,
                     log=lambda m: print(m, file=sys.stderr, flush=True), disk=a.disk,
                     report_dir=a.report_dir, latency=latency)
    except Exception as e:
        print(f"HARNESS FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"replay: {replay_command(a)}", file=sys.stderr)
        return 2
    print(result["text"], end="")
    if a.json:
        write_json(result, a.json)
    if result["anomalies"]:
        print(f"replay: {replay_command(a)}")
    return 1 if result["anomalies"] else 0


def replay_command(a: argparse.Namespace) -> str:
    cmd = [sys.executable, "-m", "zabpy.chaos", "--seed", str(a.seed), "--servers",
           str(a.servers), "--duration", f"{a.duration:g}", "--target", a.target,
           "--faults", a.faults, "--disk", a.disk]
    if a.plant:
        cmd += ["--plant", a.plant]
    if a.latency:
        cmd += ["--latency", a.latency]
    if a.report_dir:
        cmd += ["--report-dir", a.report_dir + "-replay"]
    return " ".join(shlex.quote(c) for c in cmd)


if __name__ == "__main__":
    sys.exit(main())
