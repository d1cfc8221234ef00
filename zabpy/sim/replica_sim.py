"""The deterministic ensemble: real ``Replica``s, simulated clients, faults, checks.

Every random choice comes from a ``random.Random`` stream derived from the
seed, and the virtual clock jumps from event to event, so a seed replays
exactly. Each server is a ``ReplicaNode`` — the same ``Replica`` object the
asyncio runtime hosts (election, ZAB, the role's server core, sessions,
the client protocol) — over a disk that keeps only what was fsynced.

Events: election datagrams (the lossy ``Network``), quorum byte streams
(``ConnNetwork``), client byte streams (``ClientNet``) between
``SimClient``s and servers, fsync completions (``durable``), replica
deadlines, scheduled faults and server starts, and client actions.

Faults during ``fault_ms``: crash (keeping only the fsynced state, maybe a
torn tail), crash the leader, restart, partitions between servers (one way,
both ways, isolation), connection resets, a lossy election network, and a
client moving to another server. Then everything heals and the clients
stop issuing requests; within ``liveness_ms`` one leader must be
established, every server must serve under it, all trees must be equal and
every client byte delivered.

The two-voter oracle (``oracle``, QuorumOracleMaj): each server has its
own oracle value, handed to its replica as the runtime hands in its file.
"detector" plays a failure detector that, as ZooKeeper's oracle document
asks, authorizes a server only once the other one has crashed, and (its
"lost progress" remedy) only when the server holds every committed txn;
"both" says 1 to both servers at all times, the split brain that document
warns of, which the checks must catch.

Checks: ``ZabChecker`` Z1-Z4 on every event and Z5-Z7 every
``check_every_ms`` (zab_invariants.py); at the end the clients' histories
against the committed sequence (client_checks.py: acknowledged writes
survive, linearizable writes, per-session order, sync reads, ephemerals of
closed sessions gone everywhere, watches); any core assertion fails the run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from zabpy.election import (MajorityQuorum, OracleMajority, decode_notification,
                            encode_notification)
from zabpy.jute import records as R
from zabpy.protocol.connection import RemoteProtocolError
from zabpy.server.replica import Close, Dial, Ready, Send
from zabpy.server.settings import ServerSettings
from zabpy.server.standalone import ProtocolViolation
from zabpy.storage.snapshot import tree_digest
from zabpy.zab.leader import ZabTimers
from zabpy.zab.packets import describe, parse_txn

from .client import SimClient
from .client_checks import check_all
from .client_net import ClientLink, ClientNet
from .invariants import SimFailure
from .network import Network, NetworkFaults
from .replica_node import ReplicaNode, SimDisk
from .zab_invariants import ZabChecker
from .zab_network import ConnNetwork

__all__ = ["ReplicaSimOptions", "ReplicaSimResult", "ReplicaSimulation", "Trace"]

_FAULTS = ["crash", "crash", "crash-leader", "restart", "restart", "oneway", "symmetric",
           "isolate", "heal", "lossy", "reset", "move", "move"]


@dataclass
class ReplicaSimOptions:
    seed: int
    voters: int | None = None          # 3..5 from the seed when None
    observers: int | None = None       # 0..1
    clients: int | None = None         # 2..5 from the seed when None
    fault_ms: int = 12_000
    liveness_ms: int = 40_000
    tick_ms: int = 200
    init_limit: int = 10
    sync_limit: int = 5
    check_every_ms: int = 500
    replay_every: int = 4              # Z6/Z7 (log replays) every 4th periodic check
    client_every_ms: int = 30
    committed_log_max: int | None = None   # small values force SNAP syncs
    read_only: int = 0                 # 1: readonlymode.enabled, clients ask for read-only
    local_sessions: int = 0            # 1: localSessionsEnabled, upgraded by an ephemeral
    snapshot_size_factor: float | None = None   # < 0: never DIFF from the log; seeded if None
    oracle: str | None = None          # two voters with QuorumOracleMaj: "detector" or "both"
    faults: list[tuple[int, str]] | None = None   # a fixed fault schedule instead of a seeded one
    # multis (three ops here) applied this many sub-txns per work() call, and
    # decoded / prepared in parts too (0: whole); seeded (1 or 2) when None
    multi_ops_per_part: int | None = None


class Trace(Sequence[str]):
    """A run's trace lines. A quorum packet's line (most of them) is kept as
    (time, from, to, packet) and worded only when read: a run that passes is
    seldom printed. Packets are never changed once received, so the words
    are the same whenever they are made."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list = []

    def append(self, line: str) -> None:
        self._lines.append(line)

    def packet(self, now_ms: int, src: int, dst: int, pkt: R.QuorumPacket) -> None:
        self._lines.append((now_ms, src, dst, pkt))

    def _text(self, i: int) -> str:
        line = self._lines[i]
        if type(line) is tuple:
            now_ms, src, dst, pkt = line
            line = self._lines[i] = f"{now_ms:>8} q {src}>{dst} {describe(pkt)}"
        return line

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._text(k) for k in range(*i.indices(len(self._lines)))]
        if i < 0:
            i += len(self._lines)
        if not 0 <= i < len(self._lines):
            raise IndexError("trace index out of range")
        return self._text(i)

    def __iter__(self) -> Iterator[str]:
        for k in range(len(self._lines)):
            yield self._text(k)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Trace({len(self)} lines)"


@dataclass
class ReplicaSimResult:
    ok: bool
    seed: int
    end_ms: int
    message: str
    trace: Sequence[str] = field(default_factory=list)
    leader: int | None = None
    committed: int = 0
    client_ops: int = 0


class ReplicaSimulation:
    def __init__(self, opts: ReplicaSimOptions) -> None:
        self.opts = opts
        seed = opts.seed
        setup = random.Random(f"{seed}/setup")
        self.fault_rng = random.Random(f"{seed}/faults")
        self.client_rng = random.Random(f"{seed}/clients")
        self.disk_rng = random.Random(f"{seed}/disk")
        self.net = Network(random.Random(f"{seed}/net"), NetworkFaults())
        self.conns = ConnNetwork(random.Random(f"{seed}/conn"))
        self.cnet = ClientNet(random.Random(f"{seed}/cnet"))
        voters = opts.voters if opts.voters is not None else setup.randint(3, 5)
        observers = opts.observers if opts.observers is not None else setup.choice([0, 0, 1])
        if opts.oracle is not None:
            assert opts.oracle in ("detector", "both"), opts.oracle
            voters, observers = 2, 0
        n_clients = opts.clients if opts.clients is not None else setup.randint(2, 5)
        sids = list(range(1, voters + observers + 1))
        self.quorum = MajorityQuorum(sids[:voters], sids[voters:], 0x100000000)
        self.timers = ZabTimers(opts.tick_ms, opts.init_limit, opts.sync_limit)
        self.committed_log_max = (opts.committed_log_max if opts.committed_log_max is not None
                                  else setup.choice([10, 40, 500]))
        self.size_factor = (opts.snapshot_size_factor if opts.snapshot_size_factor is not None
                            else random.Random(f"{seed}/logsync").choice([0.33, 0.33, -1.0]))
        self.disks = {sid: SimDisk() for sid in sids}
        self.nodes: dict[int, ReplicaNode | None] = {sid: None for sid in sids}
        self.links: dict[int, dict[int, int]] = {sid: {} for sid in sids}   # sid -> other -> cid
        self.starts = {sid: setup.randint(0, 300) for sid in sids}
        self.clients = [SimClient(i, random.Random(f"{seed}/client/{i}"), timeout_ms=4000,
                                  read_only=bool(opts.read_only))
                        for i in range(n_clients)]
        self.client_link: dict[int, ClientLink] = {}              # client id -> live link
        self.closed_by_server: list[int] = []
        self.snapshot_zxids: dict[tuple[int, bytes], tuple[int, ...]] = {}
        self.client_next_ms = {i: setup.randint(0, 200) for i in range(n_clients)}
        # With the oracle a lone authorized voter commits: durable on one of two.
        self.checker = ZabChecker(self._oracle_quorum(True) if opts.oracle else self.quorum)
        self.oracle_rng = random.Random(f"{seed}/oracle")
        self.oracle_says: dict[int, bool] = {sid: False for sid in sids}
        self.down_since: dict[int, int] = {}      # crashed sid -> when
        self.detect_ms = 0
        self.faults = (list(opts.faults) if opts.faults is not None
                       else _schedule(self.fault_rng, opts.fault_ms))
        self.multi_ops_per_part = (opts.multi_ops_per_part if opts.multi_ops_per_part is not None
                                   else random.Random(f"{seed}/slices").choice([1, 2]))
        self.now_ms = 0
        self.next_check_ms = opts.check_every_ms
        self.trace = Trace()
        self.healed = False
        self.checks = 0
        self.log(f"quorum {self.quorum!r} committed_log_max={self.committed_log_max} "
                 f"clients={n_clients} snapshotSizeFactor={self.size_factor} "
                 f"multi_ops_per_part={self.multi_ops_per_part}")

    def log(self, line: str) -> None:
        self.trace.append(f"{self.now_ms:>8} {line}")

    def up(self) -> list[int]:
        return [sid for sid, node in self.nodes.items() if node is not None]

    def _oracle_quorum(self, says: bool = False) -> OracleMajority:
        q = OracleMajority(self.quorum.voters, (), self.quorum.version, oracle_path="sim")
        q.set_oracle(says)
        return q

    def _update_oracles(self) -> None:
        """What each oracle file says now; tell the replicas whose value changed."""
        if self.opts.oracle is None:
            return
        for sid in self.quorum.voters:
            if self.opts.oracle == "both":
                says = True
            else:
                other = next(s for s in self.quorum.voters if s != sid)
                down = self.down_since.get(other)
                says = (down is not None and self.now_ms >= down + self.detect_ms
                        and self._holds_all_committed(sid))
            node = self.nodes[sid]
            if says != self.oracle_says[sid] and node is not None:
                self.log(f"oracle of {sid} says {int(says)}")
            self.oracle_says[sid] = says
            if node is not None:
                node.replica.oracle(says, self.now_ms)

    def _holds_all_committed(self, sid: int) -> bool:
        last = self.checker.last_committed
        return last <= 0 or self.disks[sid].contains(last)

    def _settings(self, sid: int) -> ServerSettings:
        t = self.opts.tick_ms
        o = self.opts
        return ServerSettings(server_id=sid, tick_ms=t, session_timeout_ms_min=2 * t,
                              session_timeout_ms_max=20 * t, wall_offset_ms=1_000_000,
                              read_only_mode_enabled=bool(o.read_only),
                              local_sessions_enabled=o.local_sessions > 0,
                              local_sessions_upgrading_enabled=o.local_sessions > 0,
                              multi_ops_per_part=self.multi_ops_per_part,
                              multi_sliced_body_bytes=0,
                              # every child list of more than a name or two is
                              # encoded in parts, holding back its creates
                              children_per_part=self.multi_ops_per_part or 1,
                              count_nodes_per_part=self.multi_ops_per_part or 1,
                              ephemerals_per_part=self.multi_ops_per_part or 1,
                              # a close of more than one ephemeral is prepared,
                              # put in order and applied in parts
                              close_deletes_per_part=self.multi_ops_per_part or 1,
                              close_paths_per_part=self.multi_ops_per_part or 1)

    # ---- executing a node's ready -----------------------------------------------
    def _flush(self, sid: int) -> None:
        """Carry out the node's Readys until it is quiet. Every input the
        simulator hands a replica is followed by a flush, so the deadline of
        the last (empty) Ready, and whether a multi is part-way, hold for the
        node until its next input."""
        node = self.nodes[sid]
        while node is not None:
            ready = node.replica.ready()
            if ready:
                self._execute(sid, node, ready)
            node.replica.advance(ready)
            # what the transport reports back once a close it was asked for is done
            closed, self.closed_by_server = self.closed_by_server, []
            for cid in closed:
                node.replica.client_closed(cid, self.now_ms)
            if not ready and not closed:
                node.deadline_ms, node.busy = ready.deadline_ms, node.replica.busy
                return

    def _execute(self, sid: int, node: ReplicaNode, ready: Ready) -> None:
        for w in ready.disk:
            for i, txn in enumerate(w.records):
                self.checker.on_logged(sid, txn, w.payloads[i] if w.payloads else None)
            node.submit(w, self.now_ms, self.disk_rng.randint(1, 30))
        for r in ready.reads:
            self.log(f"peer {sid} reads its log after {r.after_zxid:#x} up to {r.upto_zxid:#x}")
            node.submit_read(r, self.now_ms, self.disk_rng.randint(1, 30))
        for dst, n in ready.election:
            self.net.send(self.now_ms, sid, dst, encode_notification(n))
        if ready.state is not None:
            self.log(f"peer {sid} -> {ready.state.name}")
            self._close_all(sid)
        for op in ready.quorum:
            self._quorum_op(sid, op)
        for cid, data in ready.client_send:
            link = self.cnet.links.get(cid)
            if link is not None and link.server_id == sid:
                self.cnet.to_client(self.now_ms, link, data)
        for cid in ready.client_close:
            self._server_closes_client(sid, cid)
        if ready.serving:
            leader = node.peer.leader
            self.log(f"peer {sid} serving as {node.replica.mode}")
            if leader is not None:
                self.checker.on_established(sid, leader.new_epoch, node)

    def _quorum_op(self, sid: int, op) -> None:
        if isinstance(op, Send):
            self._send(sid, op.server_id, op.packet)
        elif isinstance(op, Close):
            self._close(sid, op.server_id)
        else:
            assert isinstance(op, Dial)
            reachable = (self.nodes[op.server_id] is not None
                         and not self.net.blocked(sid, op.server_id)
                         and not self.net.blocked(op.server_id, sid))
            conn = self.conns.dial(self.now_ms, sid, op.server_id, reachable)
            self.links[sid][op.server_id] = conn.cid

    def _on_commit(self, sid: int, txn) -> None:
        node = self.nodes[sid]
        if node is None:
            return
        zxid = txn[0].zxid
        if node.applied and zxid <= node.applied[-1]:
            raise SimFailure(f"Z3: peer {sid} applied {zxid:#x} after {node.applied[-1]:#x}")
        node.applied.append(zxid)
        leader = node.peer.leader
        if leader is not None and leader.established and zxid > self.checker.last_committed:
            self.checker.on_leader_commit(sid, txn)

    def _snapshot_taken(self, node: ReplicaNode, snap):
        """A leader serialized its tree for a SNAP: remember which txns it holds."""
        assert not node.applied or node.applied[-1] == snap.zxid, "snapshot history mismatch"
        self.snapshot_zxids[(snap.zxid, snap.data)] = tuple(node.applied)
        return snap

    def _send(self, sid: int, dst: int, pkt: R.QuorumPacket) -> None:
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

    # ---- clients -----------------------------------------------------------------------
    def _server_closes_client(self, sid: int, cid: int) -> None:
        link = self.cnet.links.get(cid)
        if link is None or link.server_id != sid or link.server_closed:
            return
        self.cnet.close_by_server(self.now_ms, link)
        if link.accepted:
            self.closed_by_server.append(cid)

    def _client_actions(self) -> None:
        stop = self.healed and self.now_ms > self.opts.fault_ms + 2000
        for c in self.clients:
            if self.client_next_ms[c.client_id] > self.now_ms:
                continue
            self.client_next_ms[c.client_id] = (
                2**62 if stop else self.now_ms + self.client_rng.randint(1, 2 * self.opts.client_every_ms))
            link = self.client_link.get(c.client_id)
            if link is None and c.needs_connection and not stop:
                target = self.client_rng.choice(sorted(self.nodes))
                self.log(f"client {c.client_id} dials server {target} "
                         f"(session 0x{c.session_id:x}, last zxid {c.last_zxid_seen:#x})")
                self.client_link[c.client_id] = self.cnet.open(
                    self.now_ms, c.client_id, target, c.handshake_bytes(self.now_ms))
                continue
            while link is not None and not stop and (data := c.next_request(self.now_ms)):
                self.cnet.to_server(self.now_ms, link, data)

    def _client_event(self, ev, link: ClientLink) -> None:
        client = self.clients[link.client_id]
        if ev.kind in ("s2c", "close_to_client"):
            if link.client_closed:
                return
            if ev.kind == "s2c":
                client.receive(ev.data, self.now_ms)
                return
            link.client_closed = True
            # a client library backs off before it tries the next server
            self.client_next_ms[link.client_id] = max(
                self.client_next_ms[link.client_id], self.now_ms + self.client_rng.randint(20, 200))
            self.log(f"client {link.client_id} disconnected from server {link.server_id} "
                     f"({sum(1 for op in client.history if op.outcome == 'pending')} pending)")
            client.disconnected(self.now_ms)
            if self.client_link.get(link.client_id) is link:
                del self.client_link[link.client_id]
            return
        node = self.nodes[link.server_id]
        if link.server_closed:
            return
        if node is None:
            self.cnet.close_by_server(self.now_ms, link)   # connection refused
            return
        if ev.kind == "open":
            if node.replica.serving:
                link.accepted = True
                node.replica.client_connected(link.cid, "10.0.0.1", self.now_ms)
            else:
                self.cnet.close_by_server(self.now_ms, link)   # not serving: refused
        elif ev.kind == "close_to_server":
            link.server_closed = True
            if link.accepted:
                node.replica.client_closed(link.cid, self.now_ms)
        elif link.accepted:
            self._client_bytes(node, link, ev.data)
        self._flush(link.server_id)

    def _client_bytes(self, node: ReplicaNode, link: ClientLink, data: bytes) -> None:
        try:
            for e in link.proto.receive_data(data):
                node.replica.client_event(link.cid, e, self.now_ms)
        except (RemoteProtocolError, ProtocolViolation) as e:
            raise SimFailure(f"server {link.server_id} refused a simulated client's bytes: {e}")

    def _move_client(self) -> None:
        moving = [c for c in self.clients if c.connected]
        if not moving:
            return
        c = self.fault_rng.choice(moving)
        link = self.client_link.pop(c.client_id)
        self.log(f"fault client {c.client_id} leaves server {link.server_id}")
        self.cnet.close_by_client(self.now_ms, link)
        c.disconnected(self.now_ms)

    # ---- faults ----------------------------------------------------------------------
    def _crash(self, sid: int) -> None:
        node = self.nodes[sid]
        if node is None:
            return
        node.crash(self.disk_rng)
        self.nodes[sid] = None
        self.down_since[sid] = self.now_ms
        self.detect_ms = self.oracle_rng.randint(0, 1000)
        self.conns.break_all_of(sid)
        self.cnet.break_server(self.now_ms, sid)
        self.links[sid] = {}
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
                self.nodes[a].replica.quorum_disconnected(other, self.now_ms)
                self._flush(a)
        elif action == "move":
            self._move_client()

    def _heal_all(self) -> None:
        self.net.heal()
        self.net.faults = NetworkFaults(delay_ms_max=min(self.net.faults.delay_ms_max, 50))
        for sid in self.quorum.members:
            if self.nodes[sid] is None and sid not in self.starts:
                self.starts[sid] = self.now_ms
        self.log("heal everything")

    def _start_quorum(self, sid: int):
        """The membership a (re)starting replica reads from its config."""
        return self._oracle_quorum() if self.opts.oracle else self.quorum

    def _start_note(self, quorum) -> str:
        return ""

    def _start(self, sid: int, now: int) -> None:
        self.down_since.pop(sid, None)
        quorum = self._start_quorum(sid)
        node = ReplicaNode(sid, quorum, self.disks[sid],
                           random.Random(f"{self.opts.seed}/{sid}/{now}"), self._settings(sid),
                           self.timers, now,
                           lambda snap: self.snapshot_zxids[(snap.zxid, snap.data)],
                           committed_log_max=self.committed_log_max,
                           log_sync=self.size_factor >= 0)
        node.replica.on_commit = lambda txn, sid=sid: self._on_commit(sid, txn)
        source = node.peer.snapshot_source
        node.peer.snapshot_source = lambda: self._snapshot_taken(node, source())
        self.nodes[sid] = node
        self.log(f"peer {sid} starts at zxid {node.last_logged():#x}{self._start_note(quorum)}")
        self._update_oracles()
        node.replica.start(now)
        self._flush(sid)

    # ---- the loop ----------------------------------------------------------------------
    def _next_event_ms(self) -> int:
        t = min(self.next_check_ms, min(self.client_next_ms.values(), default=self.next_check_ms))
        for n in (self.net.next_ms(), self.conns.next_ms(), self.cnet.next_ms()):
            if n is not None and n < t:
                t = n
        if self.faults and self.faults[0][0] < t:
            t = self.faults[0][0]
        if self.starts:
            t = min(t, min(self.starts.values()))
        if self.opts.oracle == "detector":
            for down in self.down_since.values():
                if self.now_ms < down + self.detect_ms < t:
                    t = down + self.detect_ms
        if not self.healed and self.opts.fault_ms < t:
            t = self.opts.fault_ms
        for node in self.nodes.values():
            if node is not None:
                d = node.deadline_ms
                if d is not None and d < t:
                    t = d
                for q in (node.fsync_queue, node.read_queue):
                    if q and q[0][0] < t:
                        t = q[0][0]
                if node.busy and self.now_ms + 1 < t:
                    t = self.now_ms + 1   # one part per virtual millisecond
        return max(self.now_ms, t)

    def _step_once(self) -> None:
        self.now_ms = now = self._next_event_ms()
        while self.faults and self.faults[0][0] <= now:
            self._apply_fault(self.faults.pop(0)[1])
        if not self.healed and now >= self.opts.fault_ms:
            self.healed = True
            self._heal_all()
        for sid in sorted(s for s, t in self.starts.items() if t <= now):
            del self.starts[sid]
            self._start(sid, now)
        self._update_oracles()
        for sid in self.up():
            node = self.nodes[sid]
            if node.fsync_queue and node.fsync_queue[0][0] <= now:
                for token, loaded in node.fsync_due(now):
                    node.replica.durable(token, now, loaded)
                    self._flush(sid)
            if node.read_queue and node.read_queue[0][0] <= now:
                for token, txns in node.reads_due(now, self.size_factor):
                    self.log(f"peer {sid} log read {token}: "
                             f"{'none' if txns is None else len(txns)} txns")
                    node.replica.log_read(token, txns, now)
                    self._flush(sid)
        while (d := self.net.pop_due(now)) is not None:
            if self.nodes[d.dst] is not None:
                self.nodes[d.dst].replica.election_received(
                    d.src, decode_notification(d.payload), now)
                self._flush(d.dst)
        while (item := self.conns.pop_due(now)) is not None:
            self._deliver(*item)
        while (citem := self.cnet.pop_due(now)) is not None:
            self._client_event(*citem)
        for sid in self.up():
            t = self.nodes[sid].deadline_ms
            if t is not None and t <= now:
                self.nodes[sid].replica.tick(now)
                self._flush(sid)
        for sid in self.up():
            # a large multi's next part, after this step's packets and clients
            if self.nodes[sid].busy:
                self.nodes[sid].replica.work(now)
                self._flush(sid)
        self._client_actions()
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
                    node.replica.quorum_disconnected(other, self.now_ms)
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
            self.trace.packet(self.now_ms, src, ev.dst, pkt)
            node.replica.quorum_received(src, pkt, self.now_ms)
            self._flush(ev.dst)

    def check_periodic(self, replay: bool = False) -> None:
        """Z5 each time; Z6-Z7 replay logs, so every ``replay_every`` checks and at the end."""
        self.checker.check_durable(self.disks)
        self.checks += 1
        if not replay and self.checks % self.opts.replay_every:
            return
        for sid in self.up():
            node = self.nodes[sid]
            srv = node.replica.server
            if node.reloading() or (srv is not None and srv.applying):
                continue   # a multi part-way into the tree: checked when it is whole
                # (one being prepared or decoded in parts leaves the tree whole)
            self.checker.check_replay(sid, node)
            if node.replica.serving and node.replica.mode != "read-only":
                self.checker.check_serving(sid, node)

    def converged(self) -> int | None:
        leaders = [s for s in self.up() if self.nodes[s].peer.leader is not None
                   and self.nodes[s].replica.serving]
        if len(leaders) != 1 or len(self.up()) != len(self.nodes) or not self.cnet.idle():
            return None
        leader = self.nodes[leaders[0]].peer.leader
        if leader.outstanding:
            return None
        digests = set()
        for sid in self.up():
            node = self.nodes[sid]
            learner = node.peer.learner
            if sid != leaders[0] and (not node.replica.serving or learner is None
                                      or learner.leader_sid != leaders[0]):
                return None
            if node.tree.last_processed_zxid != leader.history.last_zxid or node.replica.busy:
                return None
            digests.add(tree_digest(node.tree))
        return leaders[0] if len(digests) == 1 else None

    def _check_clients(self) -> None:
        committed = [parse_txn(raw) for raw in self.checker.committed.values()]
        trees = {sid: self.nodes[sid].tree for sid in self.up()}
        check_all(self.clients, committed, trees, self.now_ms, self.opts.local_sessions > 0)

    def run(self) -> ReplicaSimResult:
        deadline = self.opts.fault_ms + self.opts.liveness_ms
        ops = lambda: sum(len(c.history) for c in self.clients)  # noqa: E731
        try:
            while True:
                self._step_once()
                if self.healed and self.now_ms > self.opts.fault_ms + 3000 \
                        and (leader := self.converged()) is not None:
                    self.check_periodic(replay=True)
                    self._check_clients()
                    self.log(f"converged leader={leader} committed={len(self.checker.committed)}"
                             f" client ops={ops()}")
                    return ReplicaSimResult(True, self.opts.seed, self.now_ms, "ok", self.trace,
                                            leader, len(self.checker.committed), ops())
                if self.now_ms > deadline:
                    raise SimFailure(f"liveness: not converged {self.opts.liveness_ms} ms "
                                     "after healing")
        except AssertionError as e:
            self.log(f"FAILED {type(e).__name__} {e}")
            return ReplicaSimResult(False, self.opts.seed, self.now_ms,
                                    f"{type(e).__name__}: {e}", self.trace, None,
                                    len(self.checker.committed), ops())


def _schedule(rng: random.Random, fault_ms: int) -> list[tuple[int, str]]:
    out, t = [], 0
    while True:
        t += rng.randint(200, 2500)
        if t >= fault_ms:
            return out
        out.append((t, rng.choice(_FAULTS)))
