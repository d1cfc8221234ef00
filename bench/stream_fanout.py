"""Watch-stream fan-out: N SSE subscribers × M changes/s, and what it costs the server.

    python -m bench.stream_fanout --subscribers 100 --rate 500 --duration 10
    python -m bench.stream_fanout --quick        # a small sanity run (seconds)

Starts ``python -m zabpy server`` (a subprocess, in-memory, HTTP API on),
opens N watch streams (``GET /api/v1/watch?path=/fanout&recursive=1``) from
one asyncio client process, and sets one of 10 znodes under /fanout at a
paced M changes per second for the duration (a kazoo client in a thread).
Then it waits until every subscriber has every change (or a timeout), and
reports:

- changes written, events expected (N × changes) and delivered, and whether
  every subscriber got every zxid in order (missing / out-of-order counts);
- server CPU seconds (utime+stime of the server process, /proc) for the run
  and per delivered event, and the same for a baseline run of the writes
  with no subscriber (so the fan-out's own cost is the difference);
- delivery lag: from the write's request (it includes the write's own
  latency) to each subscriber's receipt, p50 / p99 / max, in ms (one clock:
  all in this process).

The numbers depend on the machine and its load; nothing here is a test.
``--json PATH`` writes the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from bench import procfs
from bench.servers import free_port, probe

PATH = "/fanout"


def _start_server(home: str, client_port: int, http_port: int) -> subprocess.Popen:
    cfg = os.path.join(home, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=2000\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\nzabpy.http.enabled=true\n"
                f"zabpy.http.port={http_port}\nzabpy.http.address=127.0.0.1\n"
                "zabpy.http.changeLogSize=200000\n4lw.commands.whitelist=*\n")
    log = open(os.path.join(home, "server.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "zabpy", "server", cfg], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not probe("127.0.0.1", client_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start; see {home}/server.log")
        time.sleep(0.05)
    return proc


def _wait_http(port: int, timeout_s: float = 30) -> None:
    import socket
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP API did not open port {port}") from None
            time.sleep(0.05)


class Subscriber:
    def __init__(self):
        self.zxids: list[int] = []
        self.recv_s: list[float] = []
        self.ready = asyncio.Event()

    async def run(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /api/v1/watch?path={PATH}&recursive=1 HTTP/1.1\r\n"
                     f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        try:
            while not stop.is_set():
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b": zabpy watch"):
                    self.ready.set()
                elif line.startswith(b"id: "):
                    self.zxids.append(int(line[4:]))
                    self.recv_s.append(time.monotonic())
        finally:
            writer.close()


def _writer(client_port: int, rate: float, duration_s: float, acks: dict) -> int:
    from kazoo.client import KazooClient
    kz = KazooClient(hosts=f"127.0.0.1:{client_port}")
    kz.start()
    try:
        kz.ensure_path(PATH)
        nodes = [f"{PATH}/n{i}" for i in range(10)]
        for n in nodes:
            kz.ensure_path(n)
        start = time.monotonic()
        sent = 0
        pending = []
        while True:
            now = time.monotonic()
            if now - start >= duration_s:
                break
            due = int((now - start) * rate)
            while sent < due:
                pending.append((kz.set_async(nodes[sent % 10], b"x"), time.monotonic()))
                sent += 1
            for p, t in pending:
                if p.ready():
                    acks[p.get().mzxid] = t
            pending = [(p, t) for p, t in pending if not p.ready()]
            time.sleep(0.002)
        for p, t in pending:
            acks[p.get(timeout=30).mzxid] = t
        return sent
    finally:
        kz.stop()
        kz.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _run(subscribers: int, rate: float, duration_s: float, http_port: int,
               client_port: int, pid: int) -> dict:
    stop = asyncio.Event()
    subs = [Subscriber() for _ in range(subscribers)]
    tasks = [asyncio.create_task(s.run(http_port, stop)) for s in subs]
    if subs:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 60)
    acks: dict[int, float] = {}
    cpu0 = procfs.cpu_seconds(pid)
    t0 = time.monotonic()
    sent = await asyncio.to_thread(_writer, client_port, rate, duration_s, acks)
    expected = sorted(acks)
    deadline = time.monotonic() + 60
    while subs and time.monotonic() < deadline:
        if all(len(s.zxids) >= len(expected) for s in subs):
            break
        await asyncio.sleep(0.05)
    wall = time.monotonic() - t0
    cpu = procfs.cpu_seconds(pid) - cpu0
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    wanted = set(expected)
    delivered = missing = disorder = 0
    lags = []
    for s in subs:
        got = [z for z in s.zxids if z in wanted]
        delivered += len(got)
        missing += len(wanted - set(got))
        disorder += sum(1 for a, b in zip(got, got[1:]) if b <= a)
        for z, r in zip(s.zxids, s.recv_s):
            if z in acks:
                lags.append((r - acks[z]) * 1000)
    return {"subscribers": subscribers, "rate": rate, "duration_s": duration_s,
            "changes": sent, "events_expected": sent * subscribers,
            "events_delivered": delivered, "missing": missing, "out_of_order": disorder,
            "server_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "server_cpu_us_per_event": round(cpu / delivered * 1e6, 1) if delivered else None,
            "lag_ms_p50": round(_pct(lags, 0.5), 2), "lag_ms_p99": round(_pct(lags, 0.99), 2),
            "lag_ms_max": round(max(lags), 2) if lags else 0.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stream_fanout", description=__doc__)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--rate", type=float, default=500, help="changes per second")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="10 subscribers, 100/s, 2 s")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    if args.quick:
        args.subscribers, args.rate, args.duration = 10, 100, 2.0
    with tempfile.TemporaryDirectory(prefix="zabpy-fanout-") as home:
        client_port, http_port = free_port(), free_port()
        proc = _start_server(home, client_port, http_port)
        try:
            _wait_http(http_port)   # the HTTP API starts beside the client port
            base = asyncio.run(_run(0, args.rate, args.duration, http_port, client_port,
                                    proc.pid))
            res = asyncio.run(_run(args.subscribers, args.rate, args.duration, http_port,
                                   client_port, proc.pid))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    res["baseline_server_cpu_s"] = base["server_cpu_s"]
    fan = res["server_cpu_s"] - base["server_cpu_s"]
    res["fanout_cpu_us_per_event"] = (round(fan / res["events_delivered"] * 1e6, 1)
                                      if res["events_delivered"] else None)
    for k, v in res.items():
        print(f"{k:>28}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    ok = res["missing"] == 0 and res["out_of_order"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    threading.current_thread().name = "main"
    sys.exit(main())
