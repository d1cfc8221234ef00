"""Soak: mixed load, churning sessions and bad clients against one zabpy
process for minutes or hours, sampling its RSS, open file descriptors,
connections, outstanding requests and a bystander's latency over time.

    python -m bench.soak --duration 120                  # CI size
    nice python -m bench.soak --duration 3600 --out soak.csv --chart soak.png

Load, each in its own thread (all share this process's GIL; the server is a
separate process):

- ``mixed``: sessions doing create / getData / setData (with watches) /
  delete on their own nodes, pipelined a little;
- ``churn``: sessions opened, given an ephemeral node, then closed or
  dropped (left to expire);
- ``fuzz``: protocol fuzzer cases (zabpy.testing.protofuzz), one after
  another;
- ``hog``: a session that pipelines getData of a 256 KiB node and reads
  nothing until the server closes it (zabpy.maxQueuedBytesPerConnection and
  its grace, shortened here);
- ``half_open``: connections that send part of a handshake and wait.

Every ``--interval`` seconds a row goes to the CSV: elapsed s, RSS MiB, fds,
alive connections, outstanding requests, znodes, the bystander's p50/p99 ms
in that interval, and the load's counters. At the end it prints the RSS and
fd count of the first and last quarter of the run (after ``--warmup``) and
exits 1 if ``--check`` is given and either grew more than its slack.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import socket
import statistics
import struct
import threading
import time

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.testing.protofuzz import make_case, run_case
from zabpy.testing.server import mntr

from .fairness import Wire

ACL = [R.ACL(31, R.Id("world", "anyone"))]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    def __init__(self, port: int, stop: threading.Event, seed: int):
        self.port = port
        self.stop = stop
        self.seed = seed
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.lat_ns: list[int] = []
        self.lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def error(self, key: str) -> None:
        with self.lock:
            self.errors[key] = self.errors.get(key, 0) + 1

    def run(self, name: str, fn) -> threading.Thread:
        def loop():
            while not self.stop.is_set():
                try:
                    fn()
                except (OSError, ConnectionError, AssertionError, struct.error) as e:
                    self.error(f"{name}: {type(e).__name__}")
                    time.sleep(0.2)
        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        return t

    # ---- the load -------------------------------------------------------------

    def mixed(self) -> None:
        c = Wire(self.port)
        rng = random.Random()
        base = f"/soak/m{rng.randrange(1 << 30)}"
        try:
            for i in range(200):
                if self.stop.is_set():
                    break
                path = f"{base}-{i % 20}"
                c.call(OpCode.create, R.CreateRequest(path, b"v" * rng.randrange(1, 2000),
                                                      ACL, 0).to_bytes())
                for _ in range(4):
                    c.submit(OpCode.getData, R.GetDataRequest(path, True).to_bytes())
                for _ in range(4):
                    c.reply()
                c.call(OpCode.setData, R.SetDataRequest(path, b"w", -1).to_bytes())
                c.call(OpCode.delete, R.DeleteRequest(path, -1).to_bytes())
                self.count("mixed_ops", 11)
            c.call(OpCode.closeSession)
        finally:
            c.sock.close()

    def churn(self) -> None:
        c = Wire(self.port)
        rng = random.Random()
        path = f"/soak/e{rng.randrange(1 << 30)}"
        c.call(OpCode.create, R.CreateRequest(path, b"", ACL, 1).to_bytes())  # ephemeral
        if rng.random() < 0.7:
            c.call(OpCode.closeSession)
            self.count("sessions_closed")
        else:
            self.count("sessions_dropped")  # left to expire
        c.sock.close()

    def fuzz(self) -> None:
        i = self.counts.get("fuzz_cases", 0)
        run_case(self.port, make_case(self.seed, i), read_s=0.02)
        self.count("fuzz_cases")

    def hog(self) -> None:
        c = Wire(self.port)
        frames = b"".join(
            struct.pack(">i", 8 + len(body)) + struct.pack(">ii", i + 1, OpCode.getData) + body
            for i, body in enumerate([R.GetDataRequest("/soak/big", False).to_bytes()] * 500))
        c.sock.sendall(frames)
        ping = struct.pack(">iii", 8, -2, OpCode.ping)
        deadline = time.monotonic() + 60
        try:  # never read; a ping now and then fails once the server closed us
            while not self.stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.5)
                c.sock.send(ping, socket.MSG_DONTWAIT)
        except (ConnectionResetError, BrokenPipeError, BlockingIOError):
            pass
        finally:
            c.sock.close()
        self.count("hogs")

    def half_open(self) -> None:
        socks = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(b"\x00\x00\x00")
            socks.append(s)
        time.sleep(3)
        for s in socks:
            s.close()
        self.count("half_open", 5)

    def bystander(self) -> None:
        c = Wire(self.port)
        body = R.GetDataRequest("/soak", False).to_bytes()
        try:
            while not self.stop.is_set():
                t0 = time.monotonic_ns()
                err, _ = c.call(OpCode.getData, body)
                assert err == 0, err
                with self.lock:
                    self.lat_ns.append(time.monotonic_ns() - t0)
                time.sleep(0.005)
        finally:
            c.sock.close()

    def take_latencies(self) -> list[int]:
        with self.lock:
            out, self.lat_ns = self.lat_ns, []
        return out


def prepare(port: int) -> None:
    c = Wire(port)
    for path, data in (("/soak", b"s"), ("/soak/big", b"b" * 256 * 1024)):
        c.call(OpCode.create, R.CreateRequest(path, data, ACL, 0).to_bytes())
    c.sock.close()


def summarize(rows: list[dict], warmup_s: float) -> dict:
    steady = [r for r in rows if r["elapsed_s"] >= warmup_s] or rows
    q = max(1, len(steady) // 4)
    first, last = steady[:q], steady[-q:]
    return {
        "rss_first_quarter_mib": round(statistics.median(r["rss_mib"] for r in first), 1),
        "rss_last_quarter_mib": round(statistics.median(r["rss_mib"] for r in last), 1),
        "rss_max_mib": round(max(r["rss_mib"] for r in steady), 1),
        "fds_first_quarter": statistics.median(r["fds"] for r in first),
        "fds_last_quarter": statistics.median(r["fds"] for r in last),
        "fds_max": max(r["fds"] for r in steady),
        "bystander_p99_ms_max": max((r["p99_ms"] for r in steady if r["p99_ms"] is not None),
                                    default=None),
    }


def chart(rows: list[dict], path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    t = [r["elapsed_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t, [r["rss_mib"] for r in rows])
    axes[0].set_ylabel("RSS MiB")
    axes[1].plot(t, [r["fds"] for r in rows], label="fds")
    axes[1].plot(t, [r["connections"] for r in rows], label="connections")
    axes[1].legend()
    axes[2].plot(t, [r["p99_ms"] or 0 for r in rows], label="bystander p99 ms")
    axes[2].plot(t, [r["p50_ms"] or 0 for r in rows], label="p50 ms")
    axes[2].legend()
    axes[2].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path)
    print(f"chart: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    ap.add_argument("--out", default="soak.csv")
    ap.add_argument("--chart", help="a PNG of RSS, fds and latency over time (matplotlib)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the server died, or RSS or fds grew from the first to the "
                         "last quarter after warm-up by more than the slack")
    ap.add_argument("--rss-slack-mib", type=float, default=20.0)
    ap.add_argument("--fd-slack", type=int, default=20)
    args = ap.parse_args(argv)

    from zabpy.testing import ZabpyServer
    import tempfile
    with tempfile.TemporaryDirectory(prefix="zabpy-soak-") as data, ZabpyServer(
            subprocess=True, data_dir=data,
            config_text="tickTime=500\nmaxClientCnxns=0\nsnapCount=20000\n"
                        "zabpy.queuedBytesGraceMs=2000\nnio.sessionlessCnxnTimeout=2000") as zk:
        pid, port = zk._proc.pid, zk.port
        prepare(port)
        stop = threading.Event()
        load = Load(port, stop, args.seed)
        threads = [load.run("bystander", load.bystander)]
        for _ in range(3):
            threads.append(load.run("mixed", load.mixed))
        for _ in range(2):
            threads.append(load.run("churn", load.churn))
        threads += [load.run("fuzz", load.fuzz), load.run("hog", load.hog),
                    load.run("half_open", load.half_open)]
        rows: list[dict] = []
        start = time.monotonic()
        with open(args.out, "w", newline="") as f:
            w = None
            while (elapsed := time.monotonic() - start) < args.duration:
                time.sleep(min(args.interval, max(0.0, args.duration - elapsed)))
                lat = sorted(load.take_latencies())
                m = mntr(port)
                row = {"elapsed_s": round(time.monotonic() - start, 1),
                       "rss_mib": round(rss_mib(pid), 1), "fds": fd_count(pid),
                       "connections": int(m.get("zk_num_alive_connections", 0)),
                       "outstanding": int(m.get("zk_outstanding_requests", 0)),
                       "znodes": int(m.get("zk_znode_count", 0)),
                       "p50_ms": round(lat[len(lat) // 2] / 1e6, 2) if lat else None,
                       "p99_ms": round(lat[int(len(lat) * 0.99)] / 1e6, 2) if lat else None,
                       **{k: v for k, v in sorted(load.counts.items())}}
                rows.append(row)
                if w is None:
                    w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
                    w.writeheader()
                w.writerow(row)
                f.flush()
                print(row, flush=True)
        stop.set()
        for t in threads:
            t.join(10)
        alive = zk._proc.poll() is None
    summary = summarize(rows, args.warmup)
    summary.update(server_alive=alive, counts=load.counts, errors=load.errors)
    print(summary)
    if args.chart:
        chart(rows, args.chart)
    if args.check:
        grew = (summary["rss_last_quarter_mib"] - summary["rss_first_quarter_mib"]
                > args.rss_slack_mib
                or summary["fds_last_quarter"] - summary["fds_first_quarter"] > args.fd_slack)
        return 1 if grew or not alive else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
