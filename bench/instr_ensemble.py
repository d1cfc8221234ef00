"""CPU instructions per write in a 3-member ensemble's cores, counted by
valgrind (callgrind): the ensemble twin of ``bench.instr``, steady on a
loaded machine where ensemble ops/s are not.

Three ``Replica`` objects run in one process, joined by an executor that
does what the asyncio runtime does with their ``Ready``, minus sockets,
timers and files: every quorum packet is encoded (``encode_packet``) and
decoded again (``PacketDecoder``, the packets one peer sent in one turn
decoded from one buffer, as one read would), and each member's disk writes
become durable together once per turn (one group fsync). Clients are
spread over the members as in ``bench.compare --ensemble`` (12 sessions,
session i on member i % 3), each with 16 requests in flight per turn.
What is counted is all three members' cores plus this executor; the
executor's share is the same before and after a change to the cores.

Each workload runs twice, with N and 2N operations, in fresh processes
under callgrind; instructions per op = (I(2N) - I(N)) / N, which cancels
start-up, the election and set-up (both runs build the same 2N requests up
front).

    python -m bench.instr_ensemble                       # setData and create, N=960
    python -m bench.instr_ensemble --workloads setData --n 1920
    python -m bench.instr_ensemble --run setData 960 1920   # one run, no valgrind

Needs valgrind. Each callgrind run takes a few minutes on a loaded 2-core
machine.
"""

from __future__ import annotations

import argparse
import random
import sys

from .instr import build_kind, callgrind_count

WORKLOADS = ("setData", "create")
SESSIONS = 12
DEPTH = 16          # requests per session per turn
DATA_NODES = 200    # setData targets
VALUE = bytes(100)


class _Ensemble:
    """Three replicas and a runtime-like executor (see the module docstring)."""

    def __init__(self) -> None:
        from zabpy.election import MajorityQuorum
        from zabpy.server import ServerSettings
        from zabpy.server.replica import Replica
        from zabpy.tree.datatree import DataTree
        from zabpy.zab.leader import ZabTimers
        self.now = 1000
        quorum = MajorityQuorum([1, 2, 3])
        timers = ZabTimers(tick_ms=100, init_limit=10, sync_limit=5)
        self.replicas = {
            sid: Replica(ServerSettings(server_id=sid, tick_ms=100, session_timeout_ms_min=200,
                                        session_timeout_ms_max=30_000), quorum, DataTree(), {},
                         0, 0, random.Random(sid), self.now, timers=timers)
            for sid in quorum.voters}
        self.disk: dict[int, list] = {sid: [] for sid in self.replicas}
        self.wire: dict[tuple[int, int], list[bytes]] = {}   # (to, from) -> encoded packets
        self.election: list = []
        self.decoders: dict = {}
        self.client_out: dict[int, list[bytes]] = {}
        for r in self.replicas.values():
            r.start(self.now)
        for sid in self.replicas:
            self.flush(sid)

    def flush(self, sid: int) -> None:
        from zabpy.server.replica import Send
        from zabpy.zab.packets import encode_packet
        r = self.replicas[sid]
        while ready := r.ready():
            self.disk[sid].extend(ready.disk)
            self.election.extend((dst, sid, n) for dst, n in ready.election)
            for op in ready.quorum:
                if isinstance(op, Send):
                    self.wire.setdefault((op.server_id, sid), []).append(encode_packet(op.packet))
            for cid, data in ready.client_send:
                self.client_out.setdefault(cid, []).append(data)
            r.advance(ready)

    def run(self) -> None:
        """Deliver and make durable until nothing moves."""
        from zabpy.zab.packets import PacketDecoder
        while True:
            for sid, writes in self.disk.items():
                if writes:
                    self.disk[sid] = []
                    assert not any(w.reloads for w in writes), "no disk to reload from here"
                    self.replicas[sid].durable(writes[-1].token, self.now)
                    self.flush(sid)
            if not (self.wire or self.election):
                if not any(self.disk.values()):
                    return
                continue
            votes, self.election = self.election, []
            for dst, src, n in votes:
                self.replicas[dst].election_received(src, n, self.now)
                self.flush(dst)
            wire, self.wire = self.wire, {}
            for (dst, src), chunks in wire.items():
                dec = self.decoders.setdefault((dst, src), PacketDecoder())
                self.replicas[dst].quorum_received_many(src, dec.feed(b"".join(chunks)),
                                                        self.now)
                self.flush(dst)

    def settle(self) -> int:
        """Advance virtual time until every member serves; the leader's id."""
        from zabpy.election import ServerState
        for _ in range(200):
            self.run()
            if all(r.serving for r in self.replicas.values()):
                return next(s for s, r in self.replicas.items()
                            if r.peer.state == ServerState.LEADING)
            self.now = min(d for r in self.replicas.values()
                           if (d := r.next_deadline_ms()) is not None)
            for sid, r in self.replicas.items():
                r.tick(self.now)
                self.flush(sid)
        raise SystemExit("the ensemble did not settle")


def _requests(workload: str, total: int) -> list:
    """``total`` (op, body) pairs in the order the sessions issue them."""
    from zabpy.jute import records as R
    from zabpy.jute.constants import OP
    acl = [R.ACL(31, R.Id("world", "anyone"))]
    g = random.Random(1)
    out = []
    for i in range(total):
        if workload == "setData":
            rec = R.SetDataRequest(f"/n{g.randrange(DATA_NODES)}", VALUE, -1)
            out.append((OP.setData, rec.to_bytes()))
        elif workload == "create":
            out.append((OP.create, R.CreateRequest(f"/c{i:08d}", VALUE, acl, 0).to_bytes()))
        else:
            raise SystemExit(f"unknown workload {workload!r}; one of {WORKLOADS}")
    return out


def run(workload: str, n: int, total: int) -> int:
    """Build the ensemble, sessions and ``total`` requests; issue the first ``n``."""
    from zabpy.jute import records as R
    from zabpy.jute.constants import OP
    from zabpy.protocol.connection import Connect, Request
    ens = _Ensemble()
    ens.settle()
    sessions = []
    for i in range(SESSIONS):
        sid, cid = 1 + i % 3, 100 + i
        ens.replicas[sid].client_connected(cid, "127.0.0.1", ens.now)
        ens.replicas[sid].client_event(
            cid, Connect(R.ConnectRequest(0, 0, 30_000, 0, bytes(16), False)), ens.now)
        ens.flush(sid)
        sessions.append((sid, cid))
    ens.run()
    acl = [R.ACL(31, R.Id("world", "anyone"))]
    sid0, cid0 = sessions[0]
    for k in range(DATA_NODES):
        body = R.CreateRequest(f"/n{k}", VALUE, acl, 0).to_bytes()
        ens.replicas[sid0].client_event(cid0, Request(k + 1, OP.create, memoryview(body)),
                                        ens.now)
    ens.flush(sid0)
    ens.run()
    reqs = _requests(workload, total)
    ens.client_out.clear()
    xid, done = DATA_NODES + 1, 0
    while done < n:
        for sid, cid in sessions:
            r = ens.replicas[sid]
            for op, body in reqs[done:min(done + DEPTH, n)]:
                r.client_event(cid, Request(xid, op, memoryview(body)), ens.now)
                xid += 1
            done = min(done + DEPTH, n)
            ens.flush(sid)
        ens.run()
    replies, errors = _replies(ens.client_out)
    assert replies >= n and not errors, (replies, n, errors[:5])
    return replies


def _replies(out: dict[int, list[bytes]]) -> tuple[int, list[int]]:
    """How many reply frames the clients got, and the error codes among them."""
    import struct
    count, errors = 0, []
    for chunks in out.values():
        buf = b"".join(chunks)
        pos = 0
        while pos < len(buf):
            (size,) = struct.unpack_from(">i", buf, pos)
            xid, _zxid, err = struct.unpack_from(">iqi", buf, pos + 4)
            if xid >= 0:    # not a watch event or a ping
                count += 1
                if err:
                    errors.append(err)
            pos += 4 + size
    return count, errors


def _callgrind(workload: str, n: int, total: int) -> int:
    import os
    return callgrind_count("bench.instr_ensemble", ["--run", workload, str(n), str(total)],
                           dict(os.environ, PYTHONHASHSEED="0"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.instr_ensemble",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--n", type=int, default=960, help="operations in the short run (960)")
    ap.add_argument("--run", nargs=3, metavar=("WORKLOAD", "N", "TOTAL"),
                    help="one run without valgrind (what each callgrind run executes)")
    args = ap.parse_args(argv)
    if args.run:
        w, n, total = args.run[0], int(args.run[1]), int(args.run[2])
        print(f"{w}: {run(w, n, total)} replies")
        return 0
    print(f"cores: {build_kind()}; 3 members, {SESSIONS} sessions x {DEPTH} in flight")
    for w in args.workloads.split(","):
        i1 = _callgrind(w, args.n, 2 * args.n)
        i2 = _callgrind(w, 2 * args.n, 2 * args.n)
        print(f"{w:10s} {(i2 - i1) / args.n:12,.0f} instructions/op (all three members)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
