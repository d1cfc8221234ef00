"""Ensemble timings: cold start to first write, leader kill to next write,
and 3-server write / read throughput.

    python -m bench.ensemble [--runs 10] [--ops 3000]

Prints one JSON document. Times are wall-clock on this machine (2 cores
shared by 3 servers and the client), so read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyEnsemble

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _client(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10,
                    connection_retry=KazooRetry(max_tries=-1, delay=0.01, max_delay=0.1))
    c.start(timeout=60)
    return c


def _write_until_ok(c: KazooClient, path: str) -> None:
    while True:
        try:
            c.create(path, b"x")
            return
        except KazooException:
            time.sleep(0.005)


def cold_start_ms() -> float:
    t0 = time.monotonic()
    ens = ZabpyEnsemble(3)
    for sid in ens.sids:
        ens.start(sid)
    try:
        c = _client(ens.hosts)
        _write_until_ok(c, "/first")
        took = (time.monotonic() - t0) * 1000
        c.stop()
        return took
    finally:
        ens.__exit__()


def failover_ms(runs: int) -> list[float]:
    out = []
    with ZabpyEnsemble(3) as ens:
        c = _client(ens.hosts)
        for i in range(runs):
            leader = ens.leader()
            t0 = time.monotonic()
            ens.kill(leader)
            _write_until_ok(c, f"/after-kill-{i}")
            out.append((time.monotonic() - t0) * 1000)
            ens.start(leader)
            ens.wait_serving()
        c.stop()
    return out


async def _session(port: int, op: str, n: int, idx: int, depth: int = 50) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    cr = R.ConnectRequest(0, 0, 30000, 0, bytes(16), False).to_bytes()
    w.write(struct.pack(">i", len(cr)) + cr)
    size = struct.unpack(">i", await r.readexactly(4))[0]
    await r.readexactly(size)
    if op == "read":
        body = R.CreateRequest(f"/r{idx}", b"x" * 100, OPEN, 0).to_bytes()
        hdr = R.RequestHeader(0, OpCode.create).to_bytes()
        w.write(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
        size = struct.unpack(">i", await r.readexactly(4))[0]
        await r.readexactly(size)
    sent = got = 0
    while got < n:
        while sent < n and sent - got < depth:
            sent += 1
            if op == "write":
                rec = R.CreateRequest(f"/b{idx}-{sent}", b"x" * 100, OPEN, 0)
                opc = OpCode.create
            else:
                rec, opc = R.GetDataRequest(f"/r{idx}", False), OpCode.getData
            payload = R.RequestHeader(sent, opc).to_bytes() + rec.to_bytes()
            w.write(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", await r.readexactly(4))[0]
        data = await r.readexactly(size)
        hdr = R.ReplyHeader.read(Reader(data))
        if hdr.xid == -1:
            continue
        assert hdr.err == 0, hdr
        got += 1
    w.close()


async def _throughput(ports: list[int], op: str, ops: int, sessions: int) -> float:
    per = ops // sessions
    t0 = time.monotonic()
    await asyncio.gather(*[_session(ports[i % len(ports)], op, per, i) for i in range(sessions)])
    return per * sessions / (time.monotonic() - t0)


def throughput(ops: int) -> dict[str, float]:
    with ZabpyEnsemble(3) as ens:
        ports = [ens.client_ports[s] for s in ens.sids]
        w = asyncio.run(_throughput(ports, "write", ops, 6))
        r = asyncio.run(_throughput(ports, "read", ops * 3, 6))
    return {"write_ops_per_s": round(w), "read_ops_per_s": round(r)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--ops", type=int, default=3000)
    args = ap.parse_args()
    cold = [cold_start_ms() for _ in range(3)]
    fail = failover_ms(args.runs)
    out = {
        "cold_start_to_first_write_ms": {"runs": [round(x) for x in cold],
                                         "median": round(statistics.median(cold))},
        "leader_kill_to_next_write_ms": {"runs": [round(x) for x in fail],
                                         "median": round(statistics.median(fail))},
        "throughput_3_servers": throughput(args.ops),
        "tick_time_ms": 200,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
