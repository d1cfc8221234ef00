"""Fairness: how long one bystander session waits while another client does
something big (issue 12: "no single request holds the loop").

    python -m bench.fairness                      # a fresh zabpy, every scenario
    python -m bench.fairness --port 2181          # a server already running (maxClientCnxns=0)
    python -m bench.fairness --scenarios multi --duration 10 --json out.json
    python -m bench.fairness --ensemble 3         # a fresh 3-member ensemble, every placement
    python -m bench.fairness --ensemble 3 --placements other --tick-ms 200

With ``--ensemble N`` the bench starts N zabpy members (tickTime ``--tick-ms``,
syncLimit 5) and runs each scenario once per placement of the two clients:
``other`` (aggressor on one follower, bystander on another), ``same`` (both
on one follower) and ``leader`` (aggressor on the leader, bystander on a
follower). Each row also says whether the ensemble kept its leader and epoch.

A bystander process sends one small getData at a time and records each
latency; meanwhile the aggressor (this process) runs one scenario in a loop:

- ``idle``: nothing (the baseline);
- ``multi``: a 10,000-op multi creating 10,000 nodes, then one deleting them;
- ``children``: getChildren2 of a node with 100,000 children;
- ``children_churn``: the same, after adding or removing a child each time
  (the first listing after a change encodes the whole list again);
- ``watch_storm``: 2,000 sessions watch one node; a setData every 0.5 s
  fires 2,000 events, and every session re-arms its watch.

It prints the bystander's p50 / p99 / max per scenario and how many of the
big requests completed. Latency is measured here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import selectors
import socket
import struct
import time

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode

ACL = [R.ACL(31, R.Id("world", "anyone"))]
MULTI_OPS = 10_000
CHILDREN = 100_000
WATCHERS = 2_000
STORM_INTERVAL_S = 0.5  # one storm every half second (if the last one is over)
SCENARIOS = ("idle", "multi", "children", "children_churn", "watch_storm")


class Wire:
    """A blocking client session (one request in flight unless pipelined)."""

    def __init__(self, port: int, timeout_s: float = 60.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.xid = 0
        self.send(R.ConnectRequest(0, 0, 30_000, 0, bytes(16), False).to_bytes())
        self.frame()

    def send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    out, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return out
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    def frames_nowait(self) -> list[bytes]:
        """What one recv brought, as whole frames (the rest stays buffered)."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack_from(">i", self.buf)
            if len(self.buf) < 4 + n:
                break
            out.append(self.buf[4:4 + n])
            self.buf = self.buf[4 + n:]
        return out

    def submit(self, op: int, body: bytes = b"") -> None:
        self.xid += 1
        self.send(struct.pack(">ii", self.xid, op) + body)

    def reply(self) -> tuple[int, int, bytes]:
        """(xid, err, body) of the next reply, notifications skipped."""
        while True:
            f = self.frame()
            xid, _, err = struct.unpack_from(">iqi", f)
            if xid != -1:
                return xid, err, f[16:]

    def call(self, op: int, body: bytes = b"") -> tuple[int, bytes]:
        self.submit(op, body)
        _, err, out = self.reply()
        return err, out


def multi_body(ops: list[bytes]) -> bytes:
    end = R.MultiHeader(-1, True, -1).to_bytes()
    return b"".join(ops) + end


def create_op(path: str) -> bytes:
    return R.MultiHeader(OpCode.create, False, -1).to_bytes() + \
        R.CreateRequest(path, b"", ACL, 0).to_bytes()


def delete_op(path: str) -> bytes:
    return R.MultiHeader(OpCode.delete, False, -1).to_bytes() + R.DeleteRequest(path, -1).to_bytes()


def bystander(port: int, stop_at: float, out) -> None:
    c = Wire(port)
    # in an ensemble its member may not have applied the create of /fair yet
    c.call(OpCode.sync, R.SyncRequest("/fair").to_bytes())
    body = R.GetDataRequest("/fair", False).to_bytes()
    lat = []
    while time.monotonic() < stop_at:
        t0 = time.monotonic_ns()
        err, _ = c.call(OpCode.getData, body)
        assert err == 0, err
        lat.append(time.monotonic_ns() - t0)
    out.put(lat)


def run_multi(c: Wire, stop_at: float) -> int:
    done = 0
    paths = [f"/fm/n{i:05d}" for i in range(MULTI_OPS)]
    creates = multi_body([create_op(p) for p in paths])
    deletes = multi_body([delete_op(p) for p in paths])
    while time.monotonic() < stop_at:
        for body in (creates, deletes):
            err, _ = c.call(OpCode.multi, body)
            assert err == 0, err
            done += 1
    return done


def setup_children(c: Wire) -> None:
    err, _ = c.call(OpCode.exists, R.ExistsRequest("/fc", False).to_bytes())
    if err == 0:
        return
    c.call(OpCode.create, R.CreateRequest("/fc", b"", ACL, 0).to_bytes())
    for start in range(0, CHILDREN, 5000):
        err, _ = c.call(OpCode.multi, multi_body(
            [create_op(f"/fc/child-{i:06d}") for i in range(start, start + 5000)]))
        assert err == 0, err


def run_children(c: Wire, stop_at: float) -> int:
    body = R.GetChildren2Request("/fc", False).to_bytes()
    done = 0
    while time.monotonic() < stop_at:
        err, _ = c.call(OpCode.getChildren2, body)
        assert err == 0, err
        done += 1
    return done


def run_children_churn(c: Wire, stop_at: float) -> int:
    body = R.GetChildren2Request("/fc", False).to_bytes()
    extra = "/fc/churn"
    done = 0
    while time.monotonic() < stop_at:
        if done % 2 == 0:
            err, _ = c.call(OpCode.create, R.CreateRequest(extra, b"", ACL, 0).to_bytes())
        else:
            err, _ = c.call(OpCode.delete, R.DeleteRequest(extra, -1).to_bytes())
        assert err == 0, err
        err, _ = c.call(OpCode.getChildren2, body)
        assert err == 0, err
        done += 1
    if done % 2:
        c.call(OpCode.delete, R.DeleteRequest(extra, -1).to_bytes())
    return done


def setup_watchers(port: int) -> list[Wire]:
    arm = R.GetDataRequest("/fw", True).to_bytes()
    watchers = []
    for _ in range(WATCHERS):
        w = Wire(port)
        w.call(OpCode.getData, arm)
        watchers.append(w)
    return watchers


def run_watch_storm(watchers: list[Wire], c: Wire, stop_at: float) -> int:
    arm = R.GetDataRequest("/fw", True).to_bytes()
    sel = selectors.DefaultSelector()  # epoll: more sockets than select() takes
    for w in watchers:
        sel.register(w.sock, selectors.EVENT_READ, w)
    set_body = R.SetDataRequest("/fw", b"x", -1).to_bytes()
    storms = 0
    next_at = time.monotonic()
    try:
        while time.monotonic() < stop_at:
            # paced, so that a faster server is not given more storms to serve
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += STORM_INTERVAL_S
            err, _ = c.call(OpCode.setData, set_body)
            assert err == 0, err
            waiting = len(watchers)
            while waiting:  # every watcher sees the event, re-arms, gets the answer
                ready = sel.select(30)
                assert ready, "watch events did not arrive"
                for key, _ in ready:
                    w = key.data
                    for f in w.frames_nowait():
                        if struct.unpack_from(">i", f)[0] == -1:
                            w.submit(OpCode.getData, arm)
                        else:
                            waiting -= 1
            storms += 1
    finally:
        sel.close()
        for w in watchers:
            w.sock.close()
    return storms


def prepare(c: Wire, scenarios) -> None:
    for path in ("/fair", "/fm", "/fw"):
        c.call(OpCode.create, R.CreateRequest(path, b"x" * 100, ACL, 0).to_bytes())
    if "children" in scenarios or "children_churn" in scenarios:
        setup_children(c)


def measure(port: int, scenario: str, duration_s: float, bystander_port: int | None = None
            ) -> dict:
    """``port``: the aggressor's server; ``bystander_port``: the bystander's
    (default the same)."""
    watchers = setup_watchers(port) if scenario == "watch_storm" else []
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    stop_at = time.monotonic() + duration_s
    proc = ctx.Process(target=bystander, args=(bystander_port or port, stop_at, q))
    proc.start()
    c = Wire(port)
    time.sleep(0.5)  # the bystander is connected and measuring
    if scenario == "multi":
        done = run_multi(c, stop_at)
    elif scenario == "children":
        done = run_children(c, stop_at)
    elif scenario == "children_churn":
        done = run_children_churn(c, stop_at)
    elif scenario == "watch_storm":
        done = run_watch_storm(watchers, c, stop_at)
    else:
        done = 0
        time.sleep(max(0.0, stop_at - time.monotonic()))
    lat = sorted(q.get(timeout=120))
    proc.join(30)
    c.sock.close()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6

    return {"scenario": scenario, "bystander_requests": len(lat), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": lat[-1] / 1e6, "big_requests_done": done}


PLACEMENTS = ("other", "same", "leader")


def leader_and_epoch(ens) -> tuple[int | None, int]:
    """The leader's id and the epoch of its last zxid (srvr)."""
    from zabpy.testing import four_letter_word

    sid = ens.leader()
    if sid is None:
        return None, -1
    text = four_letter_word("127.0.0.1", ens.client_ports[sid], "srvr", 10)
    zxid = next(line.split(": ")[1] for line in text.splitlines() if line.startswith("Zxid"))
    return sid, int(zxid, 16) >> 32


def placed(ens, placement: str) -> tuple[int, int]:
    """(aggressor's member, bystander's member) for a placement."""
    leader, _ = leader_and_epoch(ens)
    followers = [s for s in ens.sids if s != leader]
    if placement == "other":
        return followers[0], followers[1 % len(followers)]
    if placement == "same":
        return followers[0], followers[0]
    assert placement == "leader", placement
    return leader, followers[0]


def run_ensemble(args, scenarios) -> list[dict]:
    from zabpy.testing import ZabpyEnsemble

    rows = []
    with ZabpyEnsemble(args.ensemble, tick_time_ms=args.tick_ms, sync_limit=5,
                       extra="maxClientCnxns=0\nmaxSessionTimeout=60000") as ens:
        prepare(Wire(ens.client_ports[ens.leader()]), scenarios)
        for placement in [p for p in args.placements.split(",") if p]:
            for s in scenarios:
                ens.wait_serving()
                agg, by = placed(ens, placement)
                before = leader_and_epoch(ens)
                try:
                    row = measure(ens.client_ports[agg], s, args.duration, ens.client_ports[by])
                except (OSError, AssertionError):
                    print(f"{placement} {s} failed; the members' logs end so:\n"
                          f"{ens.diagnosis(40)}", flush=True)
                    raise
                after = leader_and_epoch(ens)
                row.update(placement=placement, aggressor=agg, bystander=by,
                           kept_leader=before == after)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, help="a running server (default: start a zabpy)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per scenario")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--ensemble", type=int, help="start an ensemble of this many members")
    ap.add_argument("--placements", default=",".join(PLACEMENTS),
                    help="with --ensemble: where the aggressor and the bystander connect")
    ap.add_argument("--tick-ms", type=int, default=2000, help="with --ensemble: tickTime")
    args = ap.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.ensemble:
        rows = run_ensemble(args, scenarios)
        print(f"{'placement':<9} {'scenario':<12} {'bystander ops':>13} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'max ms':>8} {'big done':>9} {'kept leader':>11}")
        for r in rows:
            print(f"{r['placement']:<9} {r['scenario']:<12} {r['bystander_requests']:>13} "
                  f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
                  f"{r['big_requests_done']:>9} {str(r['kept_leader']):>11}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    server = None
    port = args.port
    if port is None:
        from zabpy.testing import ZabpyServer
        server = ZabpyServer(subprocess=True, config_text="tickTime=2000\nmaxClientCnxns=0").start()
        port = server.port
    try:
        prepare(Wire(port), scenarios)
        rows = []
        for s in scenarios:
            rows.append(measure(port, s, args.duration))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"{'scenario':<12} {'bystander ops':>13} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'big done':>9}")
    for r in rows:
        print(f"{r['scenario']:<12} {r['bystander_requests']:>13} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['big_requests_done']:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
