"""CPU instructions per operation in the standalone server's cores, counted
by valgrind (callgrind): steady on a loaded machine, where ops/s are not.

What one operation costs here is what the event loop spends on a request
in the cores: the request frame through ``ClientConnection`` (framing),
``StandaloneServer.request`` (decode, prep, the connection's queue), the
txn encoded as the log would write it (``txnlog.encode_entry``, no file),
``logged`` (apply to the tree, watch events, the reply frame), and
``ready``/``advance``. No sockets, no asyncio, no disk: what those cost is
the same whether the cores are compiled or not.

Requests come as a client with 16 in flight sends them: 16 frames per
``receive_data``, then one pump (persist, logged, replies).

Each workload is run twice, with N and with 2N operations, in fresh
processes under callgrind; instructions per op = (I(2N) - I(N)) / N, which
cancels start-up, imports and set-up (both runs build the same 2N request
frames up front, and run N or 2N of them).

    python -m bench.instr                       # all workloads, N=2000
    python -m bench.instr --workloads create,setData --n 4000
    python -m bench.instr --pure                # force the pure-Python build (ZABPY_PURE=1)
    python -m bench.instr --run create 2000 4000   # one run, no valgrind (what callgrind runs)

Needs valgrind (``apt-get install valgrind``). Runs take about a minute
per workload under callgrind on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

WORKLOADS = ("create", "setData", "getData", "exists", "getChildren", "delete", "mixed")
BATCH = 16          # frames per receive_data: a client with 16 requests in flight
VALUE = b"x" * 100  # znode data of the write workloads


def _frames(workload: str, total: int) -> list[bytes]:
    """``total`` request frames (length-prefixed), as a client sends them."""
    from zabpy.jute import records as R
    from zabpy.jute.constants import OP

    def req(xid: int, op: int, rec) -> bytes:
        body = R.RequestHeader(xid, op).to_bytes() + (rec.to_bytes() if rec is not None else b"")
        return len(body).to_bytes(4, "big") + body

    acl = [R.ACL(31, R.Id("world", "anyone"))]
    out = []
    for i in range(total):
        xid = i + 1
        path = f"/bench/n{i % 1000:06d}"
        if workload == "create":
            out.append(req(xid, OP.create, R.CreateRequest(f"/bench/c{i:08d}", VALUE, acl, 0)))
        elif workload == "setData":
            out.append(req(xid, OP.setData, R.SetDataRequest(path, VALUE, -1)))
        elif workload == "getData":
            out.append(req(xid, OP.getData, R.GetDataRequest(path, False)))
        elif workload == "exists":
            out.append(req(xid, OP.exists, R.ExistsRequest(path, False)))
        elif workload == "getChildren":
            out.append(req(xid, OP.getChildren2, R.GetChildren2Request("/small", False)))
        elif workload == "delete":
            out.append(req(xid, OP.delete, R.DeleteRequest(f"/del/d{i:08d}", -1)))
        elif workload == "mixed":
            # ZooKeeper's usual mix: mostly reads, a fifth writes
            if i % 5 == 0:
                out.append(req(xid, OP.setData, R.SetDataRequest(path, VALUE, -1)))
            else:
                out.append(req(xid, OP.getData, R.GetDataRequest(path, i % 10 == 1)))
        else:
            raise SystemExit(f"unknown workload {workload!r}; one of {', '.join(WORKLOADS)}")
    return out


class _Pump:
    """What the runtime does with a Ready, minus the I/O."""

    def __init__(self, server) -> None:
        from zabpy.storage.txnlog import encode_entry
        self.server = server
        self.encode_entry = encode_entry
        self.sent = 0
        self.errors = 0

    def flush(self, now_ms: int) -> None:
        srv = self.server
        while True:
            ready = srv.ready()
            if not ready:
                return
            srv.advance(ready)
            if ready.persist:
                for hdr, txn in ready.persist:
                    self.encode_entry(hdr, txn)
                srv.logged(ready.persist[-1][0].zxid, now_ms)
            for _cid, data in ready.send:
                self.sent += 1
                if data[16:20] != b"\0\0\0\0":  # the reply header's err
                    self.errors += 1
            assert not ready.close, ready


def run(workload: str, n: int, total: int) -> int:
    """Serve ``n`` requests of ``workload`` (``total`` frames are built);
    returns the replies sent."""
    from zabpy.jute import records as R
    from zabpy.protocol.connection import ClientConnection
    from zabpy.server.settings import ServerSettings
    from zabpy.server.standalone import StandaloneServer

    assert n <= total
    frames = _frames(workload, total)
    now = 1_000
    srv = StandaloneServer(ServerSettings(), now)
    pump = _Pump(srv)
    proto = ClientConnection()
    srv.connection_made(1, "127.0.0.1", now)
    connect = R.ConnectRequest(0, 0, 30000, 0, bytes(16), False).to_bytes()
    for ev in proto.receive_data(len(connect).to_bytes(4, "big") + connect):
        srv.connect(1, ev.request, now)
    pump.flush(now)
    pump.errors = 0  # the ConnectResponse has no reply header
    # the nodes the workloads read and write, made through the same path
    setup = [R.CreateRequest("/bench", b"", [R.ACL(31, R.Id("world", "anyone"))], 0),
             R.CreateRequest("/small", b"", [R.ACL(31, R.Id("world", "anyone"))], 0),
             R.CreateRequest("/del", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)]
    setup += [R.CreateRequest(f"/bench/n{i:06d}", VALUE, [R.ACL(31, R.Id("world", "anyone"))], 0)
              for i in range(1000)]
    setup += [R.CreateRequest(f"/small/k{i:02d}", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)
              for i in range(10)]
    if workload == "delete":
        setup += [R.CreateRequest(f"/del/d{i:08d}", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)
                  for i in range(total)]
    from zabpy.jute.constants import OP
    xid = -1000_000
    for rec in setup:
        xid += 1
        body = R.RequestHeader(xid, OP.create).to_bytes() + rec.to_bytes()
        for ev in proto.receive_data(len(body).to_bytes(4, "big") + body):
            srv.request(1, ev.xid, ev.op, ev.body, now)
        pump.flush(now)
    assert not pump.errors, pump.errors
    before = pump.sent
    # ---- measured: n requests, BATCH frames per read --------------------------
    for start in range(0, n, BATCH):
        now += 1
        for ev in proto.receive_data(b"".join(frames[start:min(start + BATCH, n)])):
            srv.request(1, ev.xid, ev.op, ev.body, now)
        pump.flush(now)
    replies = pump.sent - before
    assert replies >= n and not pump.errors, (replies, n, pump.errors)
    return replies


def _callgrind(workload: str, n: int, total: int, pure: bool) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if pure:
        env["ZABPY_PURE"] = "1"
    return callgrind_count("bench.instr", ["--run", workload, str(n), str(total)], env)


def callgrind_count(module: str, args: list[str], env: dict) -> int:
    """Instructions callgrind counts for ``python -m module args``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
               sys.executable, "-m", module, *args]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
        m = re.search(r"Collected : (\d+)", p.stderr)
        if m is None:
            raise SystemExit(f"no instruction count in callgrind's output:\n{p.stderr[-2000:]}")
        return int(m.group(1))


def build_kind() -> str:
    """Which build of the cores this process imported."""
    try:
        from zabpy import _build
    except ImportError:
        return "pure Python (no build switch in this tree)"
    return _build.describe()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.instr", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--n", type=int, default=2000, help="operations in the short run (2000)")
    ap.add_argument("--pure", action="store_true", help="measure the pure-Python build")
    ap.add_argument("--run", nargs=3, metavar=("WORKLOAD", "N", "TOTAL"),
                    help="one run without valgrind (what each callgrind run executes)")
    args = ap.parse_args(argv)
    if args.run:
        w, n, total = args.run[0], int(args.run[1]), int(args.run[2])
        replies = run(w, n, total)
        print(f"{w}: {n} requests, {replies} replies")
        return 0
    if args.pure:
        os.environ["ZABPY_PURE"] = "1"
    print(f"cores: {build_kind()}; N={args.n}; batch {BATCH}", flush=True)
    print(f"{'workload':<12} {'instr/op':>10}", flush=True)
    for w in args.workloads.split(","):
        i1 = _callgrind(w, args.n, 2 * args.n, args.pure)
        i2 = _callgrind(w, 2 * args.n, 2 * args.n, args.pure)
        print(f"{w:<12} {(i2 - i1) / args.n:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
