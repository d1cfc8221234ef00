"""The loop turns of a large close, measured in the standalone core (issue 19).

    python -m bench.close_turns                      # 100,000 ephemerals, expiry
    python -m bench.close_turns --ephemerals 50000   # few enough for the txn to list them
    python -m bench.close_turns --shuffled           # created in no order (uuid-like names)

One session creates N ephemerals /exp/eNNNNNNN through the core (no sockets,
no log: every write is made durable at once), its connection drops and it
expires; then the core is driven as the runtime drives it, one ``work`` call
per loop turn while it is ``busy``. Each call (and the tick that expires the
session, and the ``logged`` that applies the close) is timed in the thread's
CPU time, so that the numbers hold on a loaded machine: what one turn of the
server costs, not how long a bystander waited. Prints per kind of turn how
many there were, the longest and the sum.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import defaultdict

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.server import ServerSettings, StandaloneServer

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _names(n: int, shuffled: bool) -> list[str]:
    if not shuffled:
        return [f"/exp/e{i:07d}" for i in range(n)]
    rng = random.Random(19)
    return [f"/exp/{rng.getrandbits(64):016x}" for _ in range(n)]


def measure(n: int, shuffled: bool = False) -> list[tuple[str, float]]:
    now = 1_000
    srv = StandaloneServer(ServerSettings(tick_ms=100, session_timeout_ms_min=200,
                                          session_timeout_ms_max=2000), now)

    def step():
        ready = srv.ready()
        srv.advance(ready)
        return ready

    def durable():
        ready = step()
        if ready.persist:
            srv.logged(ready.persist[-1][0].zxid, now)

    srv.connection_made(1, "127.0.0.1", now)
    srv.connect(1, R.ConnectRequest(0, 0, 1000, 0, bytes(16), False), now)
    durable()
    step()
    srv.request(1, 1, OpCode.create, memoryview(R.CreateRequest("/exp", b"", OPEN, 0).to_bytes()),
                now)
    for i, path in enumerate(_names(n, shuffled)):
        srv.request(1, 2 + i, OpCode.create,
                    memoryview(R.CreateRequest(path, b"", OPEN, 1).to_bytes()), now)
        if i % 1000 == 999:
            durable()
            step()
    durable()
    step()
    assert len(srv.tree.ephemerals[next(iter(srv.tree.ephemerals))]) == n
    gc.collect()
    srv.connection_lost(1, now)
    now += 5_000
    turns: list[tuple[str, float]] = []
    t0 = time.thread_time()
    srv.tick(now)
    turns.append(("tick: the session expires", time.thread_time() - t0))
    while True:
        t0 = time.thread_time()
        ready = step()
        if ready.persist:
            srv.logged(ready.persist[-1][0].zxid, now)
            turns.append(("logged: the close is applied", time.thread_time() - t0))
            continue
        if not srv.busy:
            return turns
        what = srv._prepping if srv._prepping is not None else srv._sliced
        srv.work(now)
        turns.append((f"work: {type(what).__name__}", time.thread_time() - t0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ephemerals", type=int, default=100_000)
    p.add_argument("--shuffled", action="store_true",
                   help="names in no order (the sorted runs must be merged)")
    a = p.parse_args(argv)
    turns = measure(a.ephemerals, a.shuffled)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, cpu_s in turns:
        by_kind[kind].append(cpu_s * 1000)
    print(f"close of a session owning {a.ephemerals:,} ephemerals"
          f"{' (shuffled names)' if a.shuffled else ''}: CPU ms per loop turn")
    for kind, ms in by_kind.items():
        print(f"  {kind:32s} turns {len(ms):4d}  longest {max(ms):6.2f}  sum {sum(ms):7.1f}")
    print(f"  longest of all: {max(ms for _, ms in ((k, t * 1000) for k, t in turns)):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
