"""One ensemble member as one sans-IO object: election, ZAB and the role's server core.

State owned: the ``Peer`` (Fast Leader Election and the current ZAB role),
the data tree, the role's server core (``LeaderServer`` while leading,
``LearnerServer`` while following or observing, None while looking, or a
``ReadOnlyServer`` once looking has lasted max(2 s, tickTime) with
``read_only_mode_enabled``), the disk writes handed out and not yet durable,
and the packets that may only leave once those are durable.

Inputs, each with ``now_ms`` (a monotonic millisecond clock):

* clients: ``client_connected`` (only while ``serving``), ``client_event``
  (a decoded ``Connect`` or ``Request`` from ``protocol.ClientConnection``),
  ``client_closed``;
* peers: ``election_received`` (an FLE notification), ``quorum_received``
  (a quorum packet), ``quorum_disconnected``;
* disk: ``durable(token, loaded)``: every ``DiskWrite`` up to ``token`` is
  on disk; ``loaded`` carries the tree and sessions a truncating or
  snapshot-installing write left (ZooKeeper reloads its database then);
  ``log_read(token, txns)``: the answer to a ``LogRead`` (``Ready.reads``);
* time: ``tick``, by ``Ready.deadline_ms`` at the latest;
* the two-voter oracle (zoo.cfg ``oraclePath``): ``oracle(says_yes)``,
  whenever the executor finds what the oracle file says.

Output: ``ready() -> Ready``, carried out in field order by an executor
(``runtime/replica_host.py`` with sockets, files and threads; ``sim/`` with a
virtual network and disk), then ``advance(ready)`` with that same Ready.

Ordering rules kept here, so no executor can break them:

* a ZAB packet that may only leave after a disk write is durable (an ACK,
  ACKEPOCH, LEADERINFO: ``Persist.then``) is held until ``durable`` covers
  the write's token, then appears in ``quorum``; a packet to ourselves (the
  leader's own ACK) is stepped in directly;
* disk writes carry increasing tokens and must be carried out in order; a
  run of plain appends may share one fsync (group commit);
* a client's reply leaves only once its txn is committed and applied.

Zxids have one owner: the ZAB leader allocates them, and the leader's server
core asks it for each txn it prepares.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from ..election import OracleMajority, QuorumVerifier, ServerState
from ..election.fle import Notification
from ..jute import records as R
from ..jute.codec import fast_frozen_init
from ..protocol.connection import Connect
from ..tree.datatree import CONFIG, DataTree, replay_txn
from ..zab import packets as P
from ..zab.leader import ZabTimers
from ..zab.peer import Peer, PeerLog
from ..zab.ready import EMPTY_READY, LogRead, Phase, Snapshot, Txn
from .leader import LeaderServer
from .learner import LearnerServer
from .readonly import ReadOnlyServer
from .settings import ServerSettings

__all__ = ["Replica", "Ready", "DiskWrite", "LogRead", "Dial", "Send", "Close", "Loaded"]


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class DiskWrite:
    """One ordered write: truncate the log after ``truncate_zxid`` (and reload
    the tree from what is left), install ``snapshot``, append ``records``,
    fsync, then write ``accepted_epoch`` and ``current_epoch``. ``payloads``
    (empty, or one per record) are the records already encoded: log those."""

    token: int
    records: tuple[Txn, ...] = ()
    truncate_zxid: int | None = None
    snapshot: Snapshot | None = None
    accepted_epoch: int | None = None
    current_epoch: int | None = None
    payloads: tuple[bytes, ...] = ()    # records' encoded log payloads, when at hand

    @property
    def reloads(self) -> bool:
        return self.truncate_zxid is not None or self.snapshot is not None

    @property
    def append_only(self) -> bool:
        return not self.reloads and self.accepted_epoch is None and self.current_epoch is None


@dataclass(frozen=True, slots=True)
class Loaded:
    """The state a reloading ``DiskWrite`` left on disk (tree and sessions)."""

    tree: DataTree
    sessions: dict[int, int]


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect to the leader's quorum port (a new learner role)."""

    server_id: int


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Send:
    server_id: int
    packet: R.QuorumPacket


@dataclass(frozen=True, slots=True)
class Close:
    server_id: int


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Ready:
    disk: tuple[DiskWrite, ...] = ()
    election: tuple[tuple[int, Notification], ...] = ()
    quorum: tuple[Dial | Send | Close, ...] = ()      # in order, per peer
    client_send: tuple[tuple[int, bytes], ...] = ()
    client_close: tuple[int, ...] = ()
    logs: tuple[tuple[str, str], ...] = ()
    state: ServerState | None = None                  # the peer's state changed to this
    serving: bool | None = None                       # started / stopped serving clients
    deadline_ms: int | None = None                    # call tick() by then
    reads: tuple[LogRead, ...] = ()                   # after the disk writes above
    # dynamic reconfig: the new current config, to write as the dynamic config
    # file and to take addresses (peers, our client port) from
    config: QuorumVerifier | None = None

    def __bool__(self) -> bool:
        return bool(self.disk or self.election or self.quorum or self.client_send
                    or self.client_close or self.logs or self.state is not None
                    or self.serving is not None or self.reads or self.config is not None)


_LISTS = ("disk", "election", "quorum", "client_send", "client_close", "logs", "reads")


class Replica:
    def __init__(self, settings: ServerSettings, quorum: QuorumVerifier, tree: DataTree,
                 sessions: dict[int, int], accepted_epoch: int, current_epoch: int,
                 rng: random.Random, now_ms: int, *, timers: ZabTimers = ZabTimers(),
                 on_commit: Callable[[Txn], None] | None = None,
                 snapshot_image: Callable[[DataTree, dict[int, int]], bytes] = P.snapshot_bytes,
                 **peer_options: int) -> None:
        self.settings = settings
        self.server_id = settings.server_id
        self.tree = tree
        self.restored_sessions = dict(sessions)
        self.on_commit = on_commit    # an observer (the simulator's checks), told each applied txn
        # a ChangeLog (server/changes.py) every role's server core records into, or None
        self.changes = None
        # A SNAP's image of (tree, sessions) as they are now; an executor may
        # hand back an image it produces off its loop (runtime/snap_image.py).
        self.snapshot_image = snapshot_image
        peer_options.setdefault("reconfig_enabled", settings.reconfig_enabled)
        self.peer = Peer(self.server_id, quorum,
                         PeerLog(accepted_epoch, current_epoch, tree.last_processed_zxid), rng,
                         timers=timers, snapshot_source=self._snapshot_source, **peer_options)
        self.server: LeaderServer | LearnerServer | ReadOnlyServer | None = None
        self._read_only_at_ms: int | None = None   # serve read-only from then, if still looking
        self.serving = False
        self.now_ms = now_ms
        self._out: dict[str, list] = {name: [] for name in _LISTS}
        self._state: ServerState | None = None
        self._serving_changed: bool | None = None
        self._config: QuorumVerifier | None = None
        self._handed: Ready | None = None
        self._empty: Ready | None = None     # the last empty Ready handed out
        self._next_token = 1
        self._durable_token = 0
        self._then: deque[tuple[int, tuple]] = deque()   # (token, envelopes) in token order
        self._reload_token: int | None = None
        self._held_commits: list[Txn] = []
        self._early: dict[int, R.QuorumPacket] = {}
        self._next_server_tick_ms = now_ms

    # ---- the contract -----------------------------------------------------------
    def start(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.peer.start(now_ms)
        self._looking()
        self._pump()

    def ready(self) -> Ready:
        out = self._out
        deadline = self.next_deadline_ms()
        if self._state is None and self._serving_changed is None and self._config is None \
                and not any(out.values()):
            # Most calls (the last of every pump) have nothing to hand out:
            # the same empty Ready serves while the deadline stays put.
            empty = self._empty
            if empty is None or empty.deadline_ms != deadline:
                empty = self._empty = Ready(deadline_ms=deadline)
            self._handed = empty
            return empty
        self._handed = Ready(tuple(out["disk"]), tuple(out["election"]), tuple(out["quorum"]),
                             tuple(out["client_send"]), tuple(out["client_close"]),
                             tuple(out["logs"]), self._state, self._serving_changed,
                             deadline, tuple(out["reads"]), self._config)
        return self._handed

    def advance(self, ready: Ready) -> None:
        assert ready is self._handed, "advance() with a Ready this replica did not hand out"
        self._handed = None
        if ready is self._empty:
            return
        for name in _LISTS:
            del self._out[name][:len(getattr(ready, name))]
        if ready.state is not None and ready.state == self._state:
            self._state = None
        if ready.serving is not None and ready.serving == self._serving_changed:
            self._serving_changed = None
        if ready.config is not None and ready.config is self._config:
            self._config = None

    def next_deadline_ms(self) -> int | None:
        t = self.peer.next_deadline_ms()
        if self.server is not None and self.serving:
            t = self._next_server_tick_ms if t is None else min(t, self._next_server_tick_ms)
        if self._read_only_at_ms is not None:
            t = self._read_only_at_ms if t is None else min(t, self._read_only_at_ms)
        return t

    # ---- inputs: peers, disk, time ----------------------------------------------------
    def election_received(self, server_id: int, n: Notification, now_ms: int) -> None:
        self.now_ms = now_ms
        self.peer.step_election(server_id, n, now_ms)
        self._pump()

    def quorum_received(self, server_id: int, pkt: R.QuorumPacket, now_ms: int) -> None:
        self.quorum_received_many(server_id, [pkt], now_ms)

    def quorum_received_many(self, server_id: int, pkts: list[R.QuorumPacket],
                             now_ms: int) -> None:
        """Packets from one peer, in order (what one read decoded), with one
        pump at the end (the per-event cost of a pump dominates a small packet)."""
        self.now_ms = now_ms
        rest = pkts
        while rest:
            if self.peer.role is None:
                # A learner that decided before we did: its FOLLOWERINFO waits for
                # our role (one per server, so this is bounded by the ensemble).
                self._early[server_id] = rest[0]
                rest = rest[1:]
            else:
                rest = self.peer.step_many(server_id, rest, now_ms)
        self._pump()

    def quorum_disconnected(self, server_id: int, now_ms: int) -> None:
        self.now_ms = now_ms
        self._early.pop(server_id, None)
        self.peer.disconnected(server_id, now_ms)
        self._pump()

    def durable(self, token: int, now_ms: int, loaded: Loaded | None = None) -> None:
        """Every DiskWrite up to ``token`` is durable (``loaded``: what a reloading one left)."""
        assert self._durable_token < token < self._next_token, \
            f"durable({token}) after {self._durable_token}, handed out up to {self._next_token - 1}"
        self.now_ms = now_ms
        self._durable_token = token
        if self._reload_token is not None and self._reload_token <= token:
            assert loaded is not None and self._reload_token == token, \
                "a reloading write must be reported on its own, with what it loaded"
            self._reloaded(loaded, now_ms)
        else:
            assert loaded is None, f"durable({token}) carries a tree but reloads nothing"
        loopback = []
        while self._then and self._then[0][0] <= token:
            for server_id, pkt in self._then.popleft()[1]:
                if server_id == self.server_id:
                    loopback.append(pkt)
                else:
                    self._out["quorum"].append(Send(server_id, pkt))
        for pkt in self.peer.step_many(self.server_id, loopback, now_ms) if loopback else ():
            self.peer.step(self.server_id, pkt, now_ms)   # no role: as step did
        self._pump()

    def log_read(self, token: int, txns: tuple[Txn, ...] | None, now_ms: int) -> None:
        """The txns a ``LogRead`` found in the on-disk log (None: none usable)."""
        self.now_ms = now_ms
        self.peer.log_read(token, txns, now_ms)
        self._pump()

    def oracle(self, says_yes: bool, now_ms: int) -> None:
        """What the oracle file says now (its first character is '1')."""
        quorum = self.peer.quorum
        if isinstance(quorum, OracleMajority):
            quorum.set_oracle(says_yes)

    def tick(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.peer.tick(now_ms)
        if self._read_only_at_ms is not None and now_ms >= self._read_only_at_ms:
            self._start_read_only()
        if self.server is not None and self.serving and now_ms >= self._next_server_tick_ms:
            self._next_server_tick_ms = now_ms + max(1, self.settings.tick_ms // 2)
            self.server.tick(now_ms)
        self._pump()

    @property
    def busy(self) -> bool:
        """The server core has a large multi part-way through (prepared,
        applied or decoded a part at a time, server/sliced.py): call ``work``
        again, once the executor has served its other inputs."""
        return self.server is not None and self.server.busy

    def work(self, now_ms: int) -> None:
        """One more part of the large multis under way (``busy``)."""
        if self.server is not None and self.server.busy:
            self.now_ms = now_ms
            self.server.work(now_ms)
            self._pump()

    # ---- inputs: clients ----------------------------------------------------------------
    def client_connected(self, conn_id: int, peer_ip: str, now_ms: int, tls_ids: tuple = ()) -> None:
        assert self.serving and self.server is not None, "a client accepted while not serving"
        self.now_ms = now_ms
        self.server.connection_made(conn_id, peer_ip, now_ms, tls_ids)
        self._pump()

    def client_event(self, conn_id: int, event, now_ms: int) -> None:
        """A decoded Connect or Request. Raises ProtocolViolation for a body
        that breaks the protocol (the executor closes that connection)."""
        srv = self.server
        if srv is None or conn_id not in srv.conns:
            return  # a connection of an earlier role, being closed
        self.now_ms = now_ms
        try:
            if isinstance(event, Connect):
                srv.connect(conn_id, event.request, now_ms)
            else:
                srv.request(conn_id, event.xid, event.op, event.body, now_ms)
        finally:
            self._pump()

    def client_grant(self, conn_id: int, budget_bytes: int, now_ms: int) -> None:
        """The client drained its replies: ``StandaloneServer.grant``."""
        if self.server is not None:
            self.now_ms = now_ms
            self.server.grant(conn_id, budget_bytes, now_ms)
            self._pump()

    def client_closed(self, conn_id: int, now_ms: int) -> None:
        if self.server is not None:
            self.server.connection_lost(conn_id, now_ms)
            self._pump()

    # ---- what the peer and the server core produce ---------------------------------------
    def _pump(self) -> None:
        """Move the peer's and the server core's output into ours until both are quiet."""
        while True:
            pr = self.peer.ready()
            self.peer.advance(pr)
            moved = self._take_peer(pr)
            if self._drain_server():
                moved = True
            if not moved:
                return

    def _drain_server(self) -> bool:
        if self.server is None:
            return False
        sr = self.server.ready()
        if not sr:
            return False
        self.server.advance(sr)
        self._out["client_send"].extend(sr.send)
        self._out["client_close"].extend(sr.close)
        self._out["logs"].extend(sr.logs)
        assert not sr.persist, "a role's server core logs through ZAB only"
        return True

    def _take_peer(self, pr) -> bool:
        z = pr.zab
        if z is EMPTY_READY and not pr.election and pr.state is None and pr.connect is None \
                and pr.config is None:
            return False     # a quiet peer (the last pass of every pump)
        out = self._out
        out["election"].extend(pr.election)
        for p in z.persist:
            self._persist(p)
        if pr.state is not None:
            if self.server is not None and z.commit:
                # The ending role's last commits (a reconfig that ends the
                # term): applied and answered by its server core, as ZooKeeper
                # answers them before the peer leaves the role.
                for txn in z.commit:
                    self._commit(txn)
                self._drain_server()
                z = replace(z, commit=())
            self._role_ended()
            self._state = pr.state
            self._looking()
        for txn in z.commit:
            self._commit(txn)
        if pr.state is not None and self.peer.role is not None:
            self._role_started()
        if pr.config is not None:
            self._config_activated(pr.config)
        if pr.connect is not None:
            out["quorum"].append(Dial(pr.connect))
        for server_id, pkt in z.send:
            assert server_id != self.server_id, "a packet to ourselves travels in Persist.then"
            out["quorum"].append(Send(server_id, pkt))
        if z.close:
            out["quorum"].extend(Close(s) for s in z.close)
        out["reads"].extend(z.reads)
        if z.phase == Phase.BROADCAST and self.server is not None:
            assert self._reload_token is None, "a role established while its tree reloads"
            self._set_serving(True)
        self._notices(z)
        return bool(pr.election or pr.state is not None or pr.connect is not None
                    or not z.empty())

    def _persist(self, p) -> None:
        token = self._next_token
        self._next_token += 1
        self._out["disk"].append(DiskWrite(token, p.records, p.truncate_zxid, p.snapshot,
                                           p.accepted_epoch, p.current_epoch, p.payloads))
        if p.truncate_zxid is not None or p.snapshot is not None:
            assert self._reload_token is None, "two reloads in flight"
            self._reload_token = token
        if p.then:
            self._then.append((token, p.then))

    def _commit(self, txn: Txn) -> None:
        if self._reload_token is not None:
            self._held_commits.append(txn)
            return
        hdr, body = txn
        if self.on_commit is not None:
            self.on_commit(txn)
        srv = self.server
        if isinstance(srv, LeaderServer):
            srv.committed(hdr, body, self.now_ms)
        elif isinstance(srv, LearnerServer):
            srv.apply_committed(hdr, body, self.now_ms)
        elif isinstance(srv, ReadOnlyServer):
            srv.apply_txn(hdr, body, self.now_ms)
        else:   # fast-forward before a role's server exists
            replay_txn(self.tree, self.restored_sessions, hdr, body)
            if self.changes is not None:   # its watch triggers are not seen here
                self.changes.reset(hdr.zxid)

    def _notices(self, z) -> None:
        srv = self.server
        if isinstance(srv, LeaderServer):
            for r in z.requests:
                srv.submit_forwarded(r.session_id, r.cxid, r.op, r.body, r.authinfo, self.now_ms,
                                     r.sid)
            if z.touches:
                srv.touch_sessions(z.touches, self.now_ms)
            for learner_id, session_id, _timeout in z.revalidate:
                srv.revalidate(learner_id, session_id, self.now_ms)
        elif isinstance(srv, LearnerServer):
            for token in z.synced:
                srv.synced(token, self.now_ms)
            for session_id, valid in z.revalidated:
                srv.revalidated(session_id, valid, self.now_ms)

    # ---- roles ---------------------------------------------------------------------------
    def _sessions(self) -> dict[int, int]:
        """The global sessions: local ones die with the server core that made them."""
        if self.server is not None:
            return self.server.sessions.global_sessions()
        return dict(self.restored_sessions)

    def _role_ended(self) -> None:
        """The role (or the read-only server) is over: as ZooKeeper, every
        client connection is closed, so clients go find the new leader's
        quorum (a read-only client, a read-write member)."""
        if self.server is None:
            return
        # What was committed is in the tree before the next role reads it
        # (its history starts from the tree): a multi applied in parts ends.
        self.server.settle(self.now_ms)
        self._drain_server()
        self.restored_sessions = self._sessions()
        self._out["client_close"].extend(self.server.conns)
        self.server = None
        self._set_serving(False)

    def _looking(self) -> None:
        """Cut off from a quorum, a member waits max(2 s, tickTime) before it
        decides it is partitioned and serves read-only (QuorumPeer's roZkMgr)."""
        looking = self.peer.state == ServerState.LOOKING
        if looking and self.settings.read_only_mode_enabled:
            if self._read_only_at_ms is None:
                self._read_only_at_ms = self.now_ms + max(2000, self.settings.tick_ms)
        else:
            self._read_only_at_ms = None

    def _start_read_only(self) -> None:
        self._read_only_at_ms = None
        if self.peer.state != ServerState.LOOKING or self.server is not None:
            return
        if self._reload_token is not None:
            # a TRUNC or SNAP of the last role is still being written: serve
            # the tree it leaves, once it is loaded
            self._read_only_at_ms = self.now_ms + max(1, self.settings.tick_ms // 2)
            return
        self.server = ReadOnlyServer(self.settings, self.now_ms, self.tree,
                                     self.restored_sessions)
        self.server.changes = self.changes
        self._out["logs"].append(("info", "Read-only server started"))
        self._set_serving(True)

    def _role_started(self) -> None:
        role = self.peer.role
        cls = LeaderServer if self.peer.leader is not None else LearnerServer
        self.server = cls(self.settings, self.now_ms, self.tree, self.restored_sessions, zab=role)
        self.server.changes = self.changes
        early, self._early = self._early, {}
        for server_id, pkt in early.items():
            if self.peer.leader is not None:
                self.peer.step(server_id, pkt, self.now_ms)
            else:
                self._out["quorum"].append(Close(server_id))

    def _reloaded(self, loaded: Loaded, now_ms: int) -> None:
        """The tree a TRUNC or SNAP left replaces ours; commits held meanwhile follow."""
        assert not self.serving, "a serving role reloads its tree"
        self._reload_token = None
        self.tree = loaded.tree
        self.restored_sessions = dict(loaded.sessions)
        if self.settings.reconfig_enabled:
            self._show_config(self.peer.quorum)
        if self.changes is not None:
            self.changes.reset(self.tree.last_processed_zxid)
        if self.server is not None:
            self._out["client_close"].extend(self.server.conns)
            self._role_started()
        held, self._held_commits = self._held_commits, []
        for txn in held:
            if txn[0].zxid > self.tree.last_processed_zxid:
                self._commit(txn)

    def _config_activated(self, qv: QuorumVerifier) -> None:
        """A new current config: /zookeeper/config shows it (ZooKeeper's
        initConfigInZKDatabase: outside any txn, version -1, mzxid the config
        version), and the executor writes it out."""
        self._config = qv
        self._show_config(qv)
        self._out["logs"].append(("info", f"Reconfig: config version {qv.version:x} is now "
                                          f"current (voters {list(qv.voters)}, observers "
                                          f"{list(qv.observers)})"))

    def _show_config(self, qv: QuorumVerifier) -> None:
        node = self.tree.nodes[CONFIG]
        data = qv.to_config_text().encode("utf-8")
        if node.data != data or node.mzxid != qv.version:
            node.data = data
            node.version = -1
            node.mzxid = qv.version
            node.mtime = self.now_ms + self.settings.wall_offset_ms

    def _set_serving(self, serving: bool) -> None:
        if serving != self.serving:
            self.serving = serving
            self._serving_changed = serving
            self._next_server_tick_ms = self.now_ms

    def _snapshot_source(self) -> Snapshot:
        # A SNAP sees a multi whole or not at all: one applied in parts is
        # finished first (rare: a learner far behind), with what waited for it.
        if self.server is not None:
            self.server.settle(self.now_ms)
        tree = self.tree
        return Snapshot(tree.last_processed_zxid, self.snapshot_image(tree, self._sessions()))

    # ---- views -------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        if isinstance(self.server, ReadOnlyServer):
            return "read-only"
        return {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
                ServerState.OBSERVING: "observer"}.get(self.peer.state, "looking")

    def sessions_table(self) -> dict[int, int]:
        """Session id -> timeout, for a snapshot."""
        return self._sessions()
