"""Cost of one read through the standalone core, in CPU instructions.

    python bench/readpath.py --op getData --count 2000          # wall time per op
    python bench/readpath.py --callgrind                        # instructions per op

A read is fed to ``StandaloneServer`` as a decoded frame and its reply taken
from ``ready()``: request parsing, the session queue, the tree lookup, the
ACL check and the reply encoding, with no sockets. ``--callgrind`` runs this
script under ``valgrind --tool=callgrind`` twice per op (with ``--count 0``
and with ``--count N``) and prints the difference divided by N: the
instructions one op costs. Unlike time, that count does not depend on what
else the machine runs, so it is what to compare before and after a change
of the data tree. The tree holds ``--znodes`` leaves beside the nodes read.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zabpy.jute import records as R  # noqa: E402
from zabpy.jute.constants import OpCode  # noqa: E402
from zabpy.server import ServerSettings, StandaloneServer  # noqa: E402

OPEN = [R.ACL(31, R.Id("world", "anyone"))]
OPS = ("getData", "exists", "getChildren", "getChildren2")
FAN_OUT = 10


class Core:
    """One standalone core with one session; writes are made durable at once."""

    def __init__(self) -> None:
        self.now = 1_000
        self.srv = StandaloneServer(ServerSettings(tick_ms=100), self.now)
        self.xid = 0
        self.srv.connection_made(1, "127.0.0.1", self.now)
        self.srv.connect(1, R.ConnectRequest(0, 0, 10_000, 0, bytes(16), False), self.now)
        self.settle()

    def settle(self) -> int:
        ready = self.srv.ready()
        self.srv.advance(ready)
        sent = len(ready.send)
        if ready.persist:
            self.srv.logged(ready.persist[-1][0].zxid, self.now)
            ready = self.srv.ready()
            self.srv.advance(ready)
            sent += len(ready.send)
        return sent

    def send(self, op: int, rec: R.Record) -> None:
        self.xid += 1
        self.srv.request(1, self.xid, op, memoryview(rec.to_bytes()), self.now)

    def populate(self, znodes: int) -> None:
        self.send(OpCode.create, R.CreateRequest("/a", b"v" * 100, OPEN, 0))
        self.send(OpCode.create, R.CreateRequest("/p", b"", OPEN, 0))
        self.settle()
        for i in range(FAN_OUT):
            self.send(OpCode.create, R.CreateRequest(f"/p/child-{i:04d}", b"c", OPEN, 0))
        self.send(OpCode.create, R.CreateRequest("/bulk", b"", OPEN, 0))
        self.settle()
        for i in range(znodes):
            self.send(OpCode.create, R.CreateRequest(f"/bulk/n{i:08d}", b"d" * 100, OPEN, 0))
            if i % 512 == 511:
                self.settle()
        self.settle()


def _request(op: str) -> tuple[int, R.Record]:
    if op == "getData":
        return OpCode.getData, R.GetDataRequest("/a", False)
    if op == "exists":
        return OpCode.exists, R.ExistsRequest("/a", False)
    if op == "getChildren":
        return OpCode.getChildren, R.GetChildrenRequest("/p", False)
    return OpCode.getChildren2, R.GetChildren2Request("/p", False)


def run(op: str, count: int, znodes: int) -> float:
    core = Core()
    core.populate(znodes)
    code, rec = _request(op)
    core.send(code, rec)  # the first read builds any cache (children_wire)
    assert core.settle() == 1
    t0 = time.perf_counter()
    for _ in range(count):
        core.send(code, rec)
        core.settle()
    return time.perf_counter() - t0


def _instructions(op: str, count: int, znodes: int) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, __file__, "--op", op, "--count", str(count),
                        "--znodes", str(znodes)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
        assert m is not None, "no summary line in the callgrind output"
        return int(m.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", choices=OPS, default="getData")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--znodes", type=int, default=1000)
    p.add_argument("--callgrind", action="store_true",
                   help="instructions per op for every op (valgrind must be installed)")
    args = p.parse_args()
    if not args.callgrind:
        dt = run(args.op, args.count, args.znodes)
        if args.count:
            print(f"{args.op:<14} {dt / args.count * 1e6:8.2f} us/op")
        return 0
    print(f"{'op':<14} {'instructions/op':>16}")
    for op in OPS:
        base = _instructions(op, 0, args.znodes)
        full = _instructions(op, args.count, args.znodes)
        print(f"{op:<14} {(full - base) / args.count:>16.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
