"""The deterministic ensemble simulation: N election peers, faults, checks.

One ``Simulation`` owns a virtual clock, a ``Network`` and the nodes. Every
random choice comes from ``random.Random`` streams derived from the seed, and
the clock jumps from event to event (a delivery, a node's timer, a scheduled
fault, a stand-in check), so the same seed always yields the same trace.

Phases: during ``fault_ms`` a seeded schedule crashes and restarts peers,
partitions links one way or both ways, isolates peers and changes the drop
and duplicate rates. At ``fault_ms`` everything heals: partitions lift,
crashed peers restart, nothing more is lost or duplicated (delays remain).
The run then must converge (every peer settled on one leader, which leads)
within ``liveness_ms``, or it fails.

Stand-in for ZAB. Without ZAB a settled peer would wait forever for a leader
that is gone. ``StandIn`` plays ZAB's part in liveness only: a follower or
observer whose leader is down, not LEADING or unreachable, or a leader
without a reachable quorum of followers, for ``establish_timeout_ms`` (as
initLimit/syncLimit would), goes back to LOOKING. When ZAB peers exist they
replace this class and report their role changes themselves.

After every step the ``ElectionChecker`` invariants run; a violation raises
``SimFailure`` and the run ends with the seed to replay.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from zabpy.election import HierarchicalQuorum, MajorityQuorum, QuorumVerifier, ServerState

from .invariants import ElectionChecker, SimFailure
from .network import Network, NetworkFaults
from .node import ElectionNode, Node

__all__ = ["SimOptions", "SimResult", "Simulation"]

# A run that delivers more than this is a message storm (a reply loop), not an election.
SIM_DELIVERIES_MAX = 200_000


@dataclass
class SimOptions:
    seed: int
    voters: int | None = None          # 3..7, drawn from the seed when None
    observers: int | None = None       # 0..2
    hierarchical: bool | None = None
    fault_ms: int = 20_000
    interval_ms_max: int = 60_000
    establish_timeout_ms: int = 20_000   # initLimit x tickTime in a default zoo.cfg
    check_every_ms: int = 500
    liveness_ms: int | None = None     # after healing; default from the timers


@dataclass
class SimResult:
    ok: bool
    seed: int
    end_ms: int
    message: str
    trace: list[str] = field(default_factory=list)
    leader: int | None = None


class Simulation:
    def __init__(self, opts: SimOptions) -> None:
        self.opts = opts
        seed = opts.seed
        setup = random.Random(f"{seed}/setup")
        self.fault_rng = random.Random(f"{seed}/faults")
        self.net = Network(random.Random(f"{seed}/net"), NetworkFaults())
        n_voters = opts.voters if opts.voters is not None else setup.randint(3, 7)
        n_observers = opts.observers if opts.observers is not None else setup.choice([0, 0, 1, 2])
        hier = opts.hierarchical if opts.hierarchical is not None else setup.random() < 0.25
        self.quorum = _make_quorum(setup, n_voters, n_observers, hier)
        self.history: dict[int, tuple[int, int]] = {}
        for sid in self.quorum.members:
            epoch = setup.randint(0, 2)
            zxid = (epoch << 32) | setup.randint(0, 3)
            self.history[sid] = (zxid, epoch + setup.choice([0, 0, 1]))
        self.nodes: dict[int, Node | None] = {sid: None for sid in self.quorum.members}
        self.starts: dict[int, int] = {sid: setup.randint(0, 300) for sid in self.quorum.members}
        self.checker = ElectionChecker(self.quorum)
        self.standin = StandIn(self, opts.establish_timeout_ms)
        self.faults = _fault_schedule(self.fault_rng, opts.fault_ms)
        self.now_ms = 0
        self.delivered = 0
        self.trace: list[str] = []
        self.liveness_ms = opts.liveness_ms or (3 * opts.interval_ms_max
                                                + 6 * opts.establish_timeout_ms + 10_000)
        self.log(f"quorum {self.quorum!r} observers={self.quorum.observers} "
                 f"history={sorted(self.history.items())}")

    # ---- plumbing -----------------------------------------------------
    def log(self, line: str) -> None:
        self.trace.append(f"{self.now_ms:>8} {line}")

    def _new_node(self, sid: int) -> ElectionNode:
        zxid, epoch = self.history[sid]
        return ElectionNode(sid, self.quorum, zxid, epoch, random.Random(f"{self.opts.seed}/{sid}"),
                            notification_interval_ms_max=self.opts.interval_ms_max)

    def _flush(self, sid: int) -> None:
        node = self.nodes[sid]
        assert node is not None
        ready = node.ready()
        for dst, payload in ready.send:
            self.checker.on_send(sid, payload)
            self.net.send(self.now_ms, sid, dst, payload)
        if ready.decided is not None:
            v = ready.decided
            self.log(f"peer {sid} settles {v.state.name} leader={v.leader} round={v.election_epoch}")
            self.checker.on_decide(sid, v)
        node.advance(ready)

    def up(self) -> list[int]:
        return [sid for sid, node in self.nodes.items() if node is not None]

    # ---- faults ---------------------------------------------------------
    def _apply_fault(self, action: str) -> None:
        rng, members = self.fault_rng, list(self.quorum.members)
        a, b = rng.sample(members, 2)
        if action == "crash-leader":
            leading = [s for s in self.up() if self.nodes[s].state == ServerState.LEADING]
            a = leading[0] if leading else a
            action = "crash"
        if action == "crash" and self.nodes[a] is not None:
            self.nodes[a] = None
            self.log(f"fault crash {a}")
        elif action == "restart" and self.nodes[a] is None and self.starts.get(a) is None:
            self.starts[a] = self.now_ms
        elif action in ("oneway", "symmetric"):
            self.net.block(a, b, symmetric=action == "symmetric")
            self.log(f"fault partition {a}->{b} {action}")
        elif action == "isolate":
            for other in members:
                if other != a:
                    self.net.block(a, other, symmetric=True)
            self.log(f"fault isolate {a}")
        elif action == "heal":
            self.net.heal()
            self.log("fault heal partitions")
        elif action == "lossy":
            f = self.net.faults
            f.drop, f.duplicate = rng.choice([0.0, 0.1, 0.3]), rng.choice([0.0, 0.1])
            f.delay_ms_max = rng.choice([5, 50, 400])
            self.log(f"fault net drop={f.drop} dup={f.duplicate} delay<={f.delay_ms_max}")

    def _heal_all(self) -> None:
        self.net.heal()
        self.net.faults = NetworkFaults(delay_ms_max=self.net.faults.delay_ms_max)
        for sid in self.quorum.members:
            if self.nodes[sid] is None and self.starts.get(sid) is None:
                self.starts[sid] = self.now_ms
        self.log("heal everything")

    # ---- the loop -----------------------------------------------------------
    def _next_event_ms(self) -> int:
        times = [t for t in (self.net.next_ms(), self.standin.next_ms) if t is not None]
        times += [t for t, _ in self.faults[:1]]
        times += list(self.starts.values())
        if not self.healed:
            times.append(self.opts.fault_ms)
        for node in self.nodes.values():
            if node is not None and (t := node.next_deadline_ms()) is not None:
                times.append(t)
        return max(self.now_ms, min(times))

    def _step_once(self) -> None:
        self.now_ms = self._next_event_ms()
        while self.faults and self.faults[0][0] <= self.now_ms:
            self._apply_fault(self.faults.pop(0)[1])
        if not self.healed and self.now_ms >= self.opts.fault_ms:
            self.healed = True
            self._heal_all()
        for sid in sorted(s for s, t in self.starts.items() if t <= self.now_ms):
            del self.starts[sid]
            self.nodes[sid] = self._new_node(sid)
            self.checker.on_restart(sid)
            self.log(f"peer {sid} starts")
            self.nodes[sid].start(self.now_ms)
            self._flush(sid)
        while (d := self.net.pop_due(self.now_ms)) is not None:
            self.delivered += 1
            if self.delivered > SIM_DELIVERIES_MAX:
                raise SimFailure(f"message storm: over {SIM_DELIVERIES_MAX} deliveries")
            node = self.nodes[d.dst]
            if node is not None:
                self.log(f"deliver {d.src}>{d.dst} {zlib.crc32(d.payload):08x}")
                node.step(d.src, d.payload, self.now_ms)
                self._flush(d.dst)
        for sid in self.up():
            node = self.nodes[sid]
            t = node.next_deadline_ms()
            if t is not None and t <= self.now_ms:
                node.tick(self.now_ms)
                self._flush(sid)
        self.standin.check(self.now_ms)

    def converged(self) -> int | None:
        """The leader, if every peer is up and settled on it and it leads."""
        votes = {}
        for sid, node in self.nodes.items():
            if node is None or node.vote is None:
                return None
            votes[sid] = node.vote.leader
        leaders = sorted(set(votes.values()))
        if len(leaders) != 1 or self.nodes[leaders[0]].state != ServerState.LEADING:
            return None
        return leaders[0]

    def run(self) -> SimResult:
        self.healed = False
        deadline = self.opts.fault_ms + self.liveness_ms
        try:
            while True:
                self._step_once()
                if self.healed and (leader := self.converged()) is not None:
                    self.log(f"converged leader={leader}")
                    return SimResult(True, self.opts.seed, self.now_ms, "ok", self.trace, leader)
                if self.now_ms > deadline:
                    raise SimFailure(f"liveness: no agreement {self.liveness_ms} ms after healing")
        except AssertionError as e:  # SimFailure, or a core's own assertion
            self.log(f"FAILED {type(e).__name__} {e}")
            return SimResult(False, self.opts.seed, self.now_ms, str(e), self.trace)


class StandIn:
    """Plays ZAB's timeouts: a settled peer whose role cannot work re-elects."""

    def __init__(self, sim: Simulation, timeout_ms: int) -> None:
        self.sim = sim
        self.timeout_ms = timeout_ms
        self.next_ms: int | None = sim.opts.check_every_ms
        self._broken_since: dict[int, int] = {}

    def _linked(self, a: int, b: int) -> bool:
        net = self.sim.net
        return not net.blocked(a, b) and not net.blocked(b, a)

    def _viable(self, sid: int, node: Node) -> bool:
        vote = node.vote
        nodes = self.sim.nodes
        if node.state == ServerState.LEADING:
            followers = [s for s, n in nodes.items() if n is not None and n.vote is not None
                         and n.vote.leader == sid and self._linked(sid, s)]
            return self.sim.quorum.contains_quorum(followers)
        leader = nodes.get(vote.leader)
        return (leader is not None and leader.state == ServerState.LEADING
                and self._linked(sid, vote.leader))

    def check(self, now_ms: int) -> None:
        if self.next_ms is None or now_ms < self.next_ms:
            return
        self.next_ms = now_ms + self.sim.opts.check_every_ms
        for sid in self.sim.up():
            node = self.sim.nodes[sid]
            if node.vote is None or self._viable(sid, node):
                self._broken_since.pop(sid, None)
                continue
            since = self._broken_since.setdefault(sid, now_ms)
            if now_ms - since >= self.timeout_ms:
                del self._broken_since[sid]
                self.sim.log(f"peer {sid} gives up on leader {node.vote.leader}, looking")
                node.start(now_ms)
                self.sim._flush(sid)


def _make_quorum(rng: random.Random, voters: int, observers: int,
                 hierarchical: bool) -> QuorumVerifier:
    sids = list(range(1, voters + observers + 1))
    voter_sids, observer_sids = sids[:voters], sids[voters:]
    specs = {s: f"127.0.0.1:{2887 + s}:{3887 + s}:"
                + ("participant" if s in voter_sids else "observer") for s in sids}
    if not hierarchical:
        return MajorityQuorum(voter_sids, observer_sids, 0x100000000, specs)
    n_groups = 3 if voters >= 5 else 1
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(voter_sids):
        groups.setdefault(1 + i % n_groups, []).append(s)
    weights = {s: rng.choice([1, 1, 2]) for s in voter_sids}
    weights[rng.choice(voter_sids)] = 0 if voters >= 5 else 1
    return HierarchicalQuorum(groups, weights, observer_sids, 0x100000000, specs)


def _fault_schedule(rng: random.Random, fault_ms: int) -> list[tuple[int, str]]:
    actions = ["crash", "crash-leader", "restart", "restart", "oneway", "symmetric", "isolate", "heal", "lossy",
               "lossy"]
    n = rng.randint(2, 24)
    return sorted((rng.randint(0, max(fault_ms - 1, 0)), rng.choice(actions)) for _ in range(n))
