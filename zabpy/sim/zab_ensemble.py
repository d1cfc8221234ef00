"""The deterministic ZAB ensemble: election + ZAB peers, a workload, faults, checks.

Like ``ensemble.Simulation`` (same seed discipline: every random choice
comes from a ``random.Random`` stream derived from the seed; the virtual
clock jumps from event to event), but each peer is a ``ZabNode``: FLE, the
ZAB roles, a DataTree and a disk that keeps only what was fsynced.

Events: election datagrams (the lossy ``Network``), quorum stream bytes and
closes (``ConnNetwork``), fsync completions (which release ``then``
packets), peer timers, scheduled faults and peer starts, and the workload:
writes proposed at the established leader, or forwarded by a serving
learner as REQUEST (the leader's "pipeline" turns them into txns), and
sync() calls forwarded by learners.

Faults during ``fault_ms``: crash (keeping only the fsynced state, maybe a
torn tail), crash the leader, restart, partitions (one way, both ways,
isolation), connection resets, a lossy election network. Then everything
heals and the workload stops; within ``liveness_ms`` one leader must be
established, every peer must serve under it, and all trees must be equal.

Checks: ``ZabChecker`` Z1-Z4 on every event, Z5-Z7 every ``check_every_ms``
and at the end; any core assertion also fails the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zabpy.election import MajorityQuorum, decode_notification, encode_notification
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.storage.snapshot import tree_digest
from zabpy.zab.leader import ZabTimers
from zabpy.zab.packets import describe
from zabpy.zab.ready import Phase

from .invariants import SimFailure
from .network import Network, NetworkFaults
from .zab_invariants import ZabChecker
from .zab_network import ConnNetwork
from .zab_node import SimDisk, ZabNode, make_txn

__all__ = ["ZabSimOptions", "ZabSimResult", "ZabSimulation"]

_FAULTS = ["crash", "crash", "crash-leader", "restart", "restart", "oneway", "symmetric",
           "isolate", "heal", "lossy", "reset"]


@dataclass
class ZabSimOptions:
    seed: int
    voters: int | None = None          # 3..5 from the seed when None
    observers: int | None = None       # 0..1
    fault_ms: int = 15_000
    liveness_ms: int = 40_000
    tick_ms: int = 200
    init_limit: int = 10
    sync_limit: int = 5
    check_every_ms: int = 500
    write_every_ms: int = 60
    committed_log_max: int | None = None   # small values force SNAP syncs


@dataclass
class ZabSimResult:
    ok: bool
    seed: int
    end_ms: int
    message: str
    trace: list[str] = field(default_factory=list)
    leader: int | None = None
    committed: int = 0


class ZabSimulation:
    def __init__(self, opts: ZabSimOptions) -> None:
        self.opts = opts
        seed = opts.seed
        setup = random.Random(f"{seed}/setup")
        self.fault_rng = random.Random(f"{seed}/faults")
        self.work_rng = random.Random(f"{seed}/work")
        self.disk_rng = random.Random(f"{seed}/disk")
        self.net = Network(random.Random(f"{seed}/net"), NetworkFaults())
        self.conns = ConnNetwork(random.Random(f"{seed}/conn"))
        voters = opts.voters if opts.voters is not None else setup.randint(3, 5)
        observers = opts.observers if opts.observers is not None else setup.choice([0, 0, 1])
        sids = list(range(1, voters + observers + 1))
        self.quorum = MajorityQuorum(sids[:voters], sids[voters:], 0x100000000)
        self.timers = ZabTimers(opts.tick_ms, opts.init_limit, opts.sync_limit)
        self.committed_log_max = (opts.committed_log_max if opts.committed_log_max is not None
                                  else setup.choice([10, 40, 500]))
        self.disks = {sid: SimDisk() for sid in sids}
        self.nodes: dict[int, ZabNode | None] = {sid: None for sid in sids}
        self.links: dict[int, dict[int, int]] = {sid: {} for sid in sids}   # sid -> other -> cid
        self.starts = {sid: setup.randint(0, 300) for sid in sids}
        self.loopback: list[tuple[int, R.QuorumPacket]] = []
        self.checker = ZabChecker(self.quorum)
        self.faults = _schedule(self.fault_rng, opts.fault_ms)
        self.now_ms = 0
        self.next_write_ms = 500
        self.next_check_ms = opts.check_every_ms
        self.seq = 0
        self.paths: list[str] = []
        self.pending_syncs: dict[int, list[int]] = {}
        self.trace: list[str] = []
        self.healed = False
        self.log(f"quorum {self.quorum!r} committed_log_max={self.committed_log_max}")

    def log(self, line: str) -> None:
        self.trace.append(f"{self.now_ms:>8} {line}")

    def up(self) -> list[int]:
        return [sid for sid, node in self.nodes.items() if node is not None]

    # ---- executing a node's ready -----------------------------------------------
    def _flush(self, sid: int) -> None:
        node = self.nodes[sid]
        assert node is not None
        while True:
            ready = node.peer.ready()
            if not ready.election and ready.zab.empty() and ready.connect is None \
                    and ready.state is None:
                return
            self._execute(sid, node, ready)
            node.peer.advance(ready)

    def _execute(self, sid: int, node: ZabNode, ready) -> None:
        for dst, n in ready.election:
            self.net.send(self.now_ms, sid, dst, encode_notification(n))
        if ready.state is not None:
            self.log(f"peer {sid} -> {ready.state.name}")
            self._close_all(sid)
            self.pending_syncs.pop(sid, None)  # the server fails those client calls
        if ready.connect is not None:
            reachable = (self.nodes[ready.connect] is not None
                         and not self.net.blocked(sid, ready.connect)
                         and not self.net.blocked(ready.connect, sid))
            conn = self.conns.dial(self.now_ms, sid, ready.connect, reachable)
            self.links[sid][ready.connect] = conn.cid
        z = ready.zab
        for p in z.persist:
            for txn in p.records:
                self.checker.on_logged(sid, txn)
        fsync_ms = self.disk_rng.randint(1, 30)
        node.execute(ready, self.now_ms, fsync_ms)
        if z.commit:
            self.checker.on_applied(sid, node)
            if node.peer.leader is not None and node.peer.leader.established:
                for txn in z.commit:
                    if txn[0].zxid > self.checker.last_committed:
                        self.checker.on_leader_commit(sid, txn)
        for dst, pkt in z.send:
            self._send(sid, dst, pkt)
        for dst in z.close:
            self._close(sid, dst)
        if z.phase == Phase.BROADCAST and node.peer.leader is not None:
            epoch = node.peer.leader.new_epoch
            self.log(f"peer {sid} established epoch {epoch}")
            self.checker.on_established(sid, epoch, node)
        for req in z.requests:
            if req.op == OpCode.create:
                self._propose(sid, node)
        for token in z.synced:
            queue = self.pending_syncs.get(sid, [])
            if not queue or queue.pop(0) != token:
                raise SimFailure(f"peer {sid}: sync {token} answered out of order")

    def _send(self, sid: int, dst: int, pkt: R.QuorumPacket) -> None:
        if dst == sid:
            self.loopback.append((sid, pkt))
            return
        cid = self.links[sid].get(dst)
        conn = self.conns.conns.get(cid) if cid is not None else None
        if conn is not None:
            self.conns.send(self.now_ms, conn, sid, pkt)

    def _close(self, sid: int, other: int) -> None:
        cid = self.links[sid].pop(other, None)
        conn = self.conns.conns.get(cid) if cid is not None else None
        if conn is not None:
            self.conns.close(self.now_ms, conn, sid)

    def _close_all(self, sid: int) -> None:
        for other in list(self.links[sid]):
            self._close(sid, other)

    # ---- workload ------------------------------------------------------------------
    def _propose(self, sid: int, node: ZabNode) -> None:
        self.seq += 1
        hdr, txn = make_txn(self.seq, self.work_rng, self.paths)
        zxid = node.peer.leader.next_zxid()
        node.peer.propose(R.TxnHeader(hdr.clientId, hdr.cxid, zxid, hdr.time, hdr.type), txn)

    def _workload(self) -> None:
        if self.now_ms < self.next_write_ms:
            return
        if self.healed and self.now_ms > self.opts.fault_ms + 2000:
            self.next_write_ms = 2**62  # the workload stops so the ensemble can converge
            return
        self.next_write_ms = self.now_ms + self.work_rng.randint(1, 2 * self.opts.write_every_ms)
        up = self.up()
        if not up:
            return
        sid = self.work_rng.choice(up)
        node = self.nodes[sid]
        peer = node.peer
        if peer.leader is not None and peer.leader.established:
            self._propose(sid, node)
        elif peer.learner is not None and peer.learner.serving:
            if self.work_rng.random() < 0.2:
                self.seq += 1
                if peer.forward(0x100, self.seq, OpCode.sync, b"", token=self.seq):
                    self.pending_syncs.setdefault(sid, []).append(self.seq)
            else:
                peer.forward(0x100, self.seq, OpCode.create, b"")
        self._flush(sid)

    # ---- faults ----------------------------------------------------------------------
    def _crash(self, sid: int) -> None:
        node = self.nodes[sid]
        if node is None:
            return
        node.crash(self.disk_rng)
        self.nodes[sid] = None
        self.conns.break_all_of(sid)
        self.links[sid] = {}
        self.pending_syncs.pop(sid, None)
        self.log(f"fault crash {sid}")

    def _apply_fault(self, action: str) -> None:
        rng, members = self.fault_rng, list(self.quorum.members)
        a, b = rng.sample(members, 2)
        if action == "crash-leader":
            leading = [s for s in self.up() if self.nodes[s].peer.leader is not None]
            a = leading[0] if leading else a
            action = "crash"
        if action == "crash":
            self._crash(a)
        elif action == "restart" and self.nodes[a] is None and a not in self.starts:
            self.starts[a] = self.now_ms + rng.randint(0, 500)
        elif action in ("oneway", "symmetric"):
            self.net.block(a, b, symmetric=action == "symmetric")
            self.conns.break_between(a, b)
            self.log(f"fault partition {a}->{b} {action}")
        elif action == "isolate":
            for other in members:
                if other != a:
                    self.net.block(a, other, symmetric=True)
                    self.conns.break_between(a, other)
            self.log(f"fault isolate {a}")
        elif action == "heal":
            self.net.heal()
            self.log("fault heal partitions")
        elif action == "lossy":
            f = self.net.faults
            f.drop, f.duplicate = rng.choice([0.0, 0.1, 0.3]), rng.choice([0.0, 0.1])
            f.delay_ms_max = rng.choice([5, 50, 200])
            self.log(f"fault net drop={f.drop} dup={f.duplicate} delay<={f.delay_ms_max}")
        elif action == "reset" and self.links[a]:
            other = sorted(self.links[a])[0]
            self.log(f"fault reset {a}<->{other}")
            self._close(a, other)
            if self.nodes[a] is not None:
                self.nodes[a].peer.disconnected(other, self.now_ms)
                self._flush(a)

    def _heal_all(self) -> None:
        self.net.heal()
        self.net.faults = NetworkFaults(delay_ms_max=min(self.net.faults.delay_ms_max, 50))
        for sid in self.quorum.members:
            if self.nodes[sid] is None and sid not in self.starts:
                self.starts[sid] = self.now_ms
        self.log("heal everything")

    # ---- the loop ----------------------------------------------------------------------
    def _next_event_ms(self) -> int:
        if self.loopback:
            return self.now_ms
        times = [t for t in (self.net.next_ms(), self.conns.next_ms()) if t is not None]
        times += [t for t, _ in self.faults[:1]] + list(self.starts.values())
        times += [self.next_check_ms, self.next_write_ms]
        if not self.healed:
            times.append(self.opts.fault_ms)
        for node in self.nodes.values():
            if node is not None:
                for t in (node.peer.next_deadline_ms(), node.next_fsync_ms()):
                    if t is not None:
                        times.append(t)
        return max(self.now_ms, min(times))

    def _step_once(self) -> None:
        self.now_ms = self._next_event_ms()
        now = self.now_ms
        while self.faults and self.faults[0][0] <= now:
            self._apply_fault(self.faults.pop(0)[1])
        if not self.healed and now >= self.opts.fault_ms:
            self.healed = True
            self._heal_all()
        for sid in sorted(s for s, t in self.starts.items() if t <= now):
            del self.starts[sid]
            self.nodes[sid] = ZabNode.restart(sid, self.quorum, self.disks[sid],
                                              random.Random(f"{self.opts.seed}/{sid}/{now}"),
                                              self.timers, now,
                                              committed_log_max=self.committed_log_max)
            self.log(f"peer {sid} starts at zxid {self.nodes[sid].last_logged():#x}")
            self.nodes[sid].peer.start(now)
            self._flush(sid)
        while self.loopback:
            sid, pkt = self.loopback.pop(0)
            if self.nodes[sid] is not None:
                self.nodes[sid].peer.step(sid, pkt, now)
                self._flush(sid)
        for sid in self.up():
            node = self.nodes[sid]
            for p in node.fsync_due(now):
                for dst, pkt in p.then:
                    self._send(sid, dst, pkt)
        while (d := self.net.pop_due(now)) is not None:
            node = self.nodes[d.dst]
            if node is not None:
                node.peer.step_election(d.src, decode_notification(d.payload), now)
                self._flush(d.dst)
        while (item := self.conns.pop_due(now)) is not None:
            self._deliver(*item)
        for sid in self.up():
            node = self.nodes[sid]
            t = node.peer.next_deadline_ms()
            if t is not None and t <= now:
                node.peer.tick(now)
                self._flush(sid)
        self._workload()
        if now >= self.next_check_ms:
            self.next_check_ms = now + self.opts.check_every_ms
            self.check_periodic()

    def _deliver(self, ev, packets) -> None:
        node = self.nodes[ev.dst]
        conn = self.conns.conns.get(ev.cid)
        if node is None:
            return
        if ev.kind == "closed":
            for other, cid in list(self.links[ev.dst].items()):
                if cid == ev.cid:
                    del self.links[ev.dst][other]
                    self.conns.conns.pop(ev.cid, None)
                    node.peer.disconnected(other, self.now_ms)
                    self._flush(ev.dst)
            return
        assert conn is not None
        src = conn.other(ev.dst)
        if self.links[ev.dst].get(src) != ev.cid:
            if ev.dst != conn.leader:
                return  # a learner's stale connection
            self._close(ev.dst, src)   # a learner reconnected: the new link replaces the old
            self.links[ev.dst][src] = ev.cid
        for pkt in packets:
            self.log(f"q {src}>{ev.dst} {describe(pkt)}")
            node.peer.step(src, pkt, self.now_ms)
            self._flush(ev.dst)

    def check_periodic(self) -> None:
        self.checker.check_durable(self.disks)
        for sid in self.up():
            node = self.nodes[sid]
            self.checker.check_replay(sid, node)
            peer = node.peer
            serving = (peer.leader is not None and peer.leader.established) or \
                (peer.learner is not None and peer.learner.serving)
            if serving:
                self.checker.check_serving(sid, node)

    def converged(self) -> int | None:
        leaders = [s for s in self.up() if self.nodes[s].peer.leader is not None
                   and self.nodes[s].peer.leader.established]
        if len(leaders) != 1 or len(self.up()) != len(self.nodes):
            return None
        leader = self.nodes[leaders[0]].peer.leader
        if leader.outstanding:
            return None
        digests = set()
        for sid in self.up():
            node = self.nodes[sid]
            learner = node.peer.learner
            if sid != leaders[0] and (learner is None or not learner.serving
                                      or learner.leader_sid != leaders[0]):
                return None
            if node.tree.last_processed_zxid != leader.history.last_zxid:
                return None
            digests.add(tree_digest(node.tree))
        return leaders[0] if len(digests) == 1 else None

    def run(self) -> ZabSimResult:
        deadline = self.opts.fault_ms + self.opts.liveness_ms
        try:
            while True:
                self._step_once()
                if self.healed and self.now_ms > self.opts.fault_ms + 2000 \
                        and (leader := self.converged()) is not None:
                    self.check_periodic()
                    self.log(f"converged leader={leader} committed={len(self.checker.committed)}")
                    return ZabSimResult(True, self.opts.seed, self.now_ms, "ok", self.trace,
                                        leader, len(self.checker.committed))
                if self.now_ms > deadline:
                    raise SimFailure(f"liveness: not converged {self.opts.liveness_ms} ms "
                                     "after healing")
        except AssertionError as e:
            self.log(f"FAILED {type(e).__name__} {e}")
            return ZabSimResult(False, self.opts.seed, self.now_ms, f"{type(e).__name__}: {e}",
                                self.trace, None, len(self.checker.committed))


def _schedule(rng: random.Random, fault_ms: int) -> list[tuple[int, str]]:
    out, t = [], 0
    while True:
        t += rng.randint(200, 2500)
        if t >= fault_ms:
            return out
        out.append((t, rng.choice(_FAULTS)))
