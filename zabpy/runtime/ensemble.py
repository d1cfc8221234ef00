"""The asyncio host of an ensemble member: sockets, files, threads and timers
around one pure ``server.replica.Replica``.

Every input becomes one call on the replica — a client's decoded frame, an
election notification, a quorum packet or disconnection, a disk write made
durable (``disk.DiskWriter``), the deadline timer — and after each loop turn
that produced input, ``_flush`` carries out the replica's ``Ready`` in field
order: disk writes are queued to the writer task (never awaited here),
election notifications sent, quorum dials / sends / closes done in order,
client frames written (one write per connection per turn), client
connections closed, log lines written; then ``advance``. The replica decides
everything else: what may be sent only once durable, which role serves, when
clients are dropped.

Clients are accepted only while the replica serves (leader: a quorum acked
NEWLEADER; learner: UPTODATE received); otherwise only a four-letter word
is answered, and a client is dropped so it tries another member.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time

from ..election import ServerState
from ..election.quorum import QuorumVerifier
from ..election.reconfig import quorum_from_text, spec_client
from ..protocol.connection import FourLetterWord
from ..server.replica import Close, Dial, Loaded, Ready, Replica, Send
from ..storage.quorum import read_epochs
from ..tree.datatree import CONFIG
from ..zab.leader import ZabTimers
from ..zab.packets import PacketType
from .audit import emit_log
from .disk import DiskWriter
from .election_transport import ElectionTransport
from .fatal import fail_stop_guard
from .config import ServerSpec
from .dynamic_config import backup_static_config, write_dynamic_config
from .quorum_security import load_quorum_security
from .quorum_transport import QuorumTransport
from .snap_image import ForkedImage
from .server import ServerRuntime, _ClientProtocol, _now_ms

__all__ = ["EnsembleRuntime", "read_oracle"]

log = logging.getLogger("zabpy.server")

# The sync a leader chose for a learner, logged on both sides in ZooKeeper's
# words (LearnerHandler "Sending DIFF", Learner "Getting a diff from the
# leader") so that an operator's grep works on a mixed ensemble.
_SYNC_WORDS = {PacketType.DIFF: "DIFF", PacketType.TRUNC: "TRUNC", PacketType.SNAP: "SNAP"}
_SYNC_RECEIVED = {PacketType.DIFF: "Getting a diff from the leader 0x%x",
                  PacketType.TRUNC: "Truncating log to get in sync with the leader 0x%x",
                  PacketType.SNAP: "Getting a snapshot from leader 0x%x"}


def _log_sync_received(pkts: list) -> None:
    for pkt in pkts:
        if pkt.type in _SYNC_RECEIVED:
            log.info(_SYNC_RECEIVED[pkt.type], pkt.zxid)


def _server_spec(sid: int, spec: str) -> ServerSpec | None:
    """A normalized ``server.N`` value (election.reconfig) as the runtime's ServerSpec."""
    head = spec.split(";", 1)[0]
    parts = head.rsplit(":", 3)
    if len(parts) != 4:
        return None
    host = parts[0].strip("[]")
    client = spec_client(spec)
    return ServerSpec(sid, host, int(parts[1]), int(parts[2]), parts[3],
                      client[0] if client else None, client[1] if client else None)


def read_oracle(path: str) -> bool:
    """QuorumOracleMaj.askOracle: yes when the file's first character is '1';
    a missing or unreadable file says no."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"1"
    except OSError:
        return False


class EnsembleRuntime(ServerRuntime):
    def __init__(self, config, *, server_id: int | None = None):
        super().__init__(config, server_id=server_id)
        assert config.data_dir, "an ensemble member needs a dataDir"
        self.replica: Replica | None = None
        self._election: ElectionTransport | None = None
        self._quorum: QuorumTransport | None = None
        self._disk: DiskWriter | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_ms: int | None = None
        self._election_started_ms = 0

    @property
    def mode(self) -> str:
        return self.replica.mode if self.replica is not None else "looking"

    @property
    def serving(self) -> bool:
        return self.replica is not None and self.replica.serving

    @property
    def peer(self):
        return self.replica.peer

    # ---- lifecycle -------------------------------------------------------------
    def _membership(self) -> QuorumVerifier:
        """The membership (zoo.cfg or its dynamic file) with its version."""
        return quorum_from_text("\n".join(self.config.membership_lines()),
                                self.config.oracle_path)

    def _init_config_node(self, tree) -> None:
        """The membership in /zookeeper/config, as ZooKeeper's QuorumPeerMain
        writes it at start (ZKDatabase.initConfigInZKDatabase): outside any
        txn, so version -1, mzxid the config version, mtime now. Clients read
        it with getConfig (zkCli `config`); digests skip /zookeeper/."""
        node = tree.nodes[CONFIG]
        node.data = self._membership().to_config_text().encode()
        node.version = -1
        node.mzxid = self.config.config_version
        node.mtime = int(time.time() * 1000)

    async def start(self) -> None:
        c = self.config
        self._loop = asyncio.get_running_loop()
        self._install_fail_stop(self._loop)
        self._start_audit()
        tree, sessions = self._open_store()
        self._init_config_node(tree)
        accepted, current = read_epochs(self.store, tree.last_processed_zxid)
        timers = ZabTimers(c.tick_time_ms, c.init_limit or 10, c.sync_limit or 5)
        quorum = self._membership()
        if c.reconfig_enabled and c.source and c.dynamic_config_file is None \
                and os.path.isfile(c.source):
            backup_static_config(c.source)
        self.replica = Replica(self._settings(), quorum, tree,
                               sessions, accepted, current, random.Random(), _now_ms(),
                               timers=timers, snapshot_image=ForkedImage,
                               log_sync=c.snapshot_size_factor >= 0)
        self.replica.changes = self.changes = self._change_log(tree)
        loop = asyncio.get_running_loop()
        me = c.servers[self.server_id]
        # every transport exists before the first client can make us flush
        peers = {sid: (s.host, s.election_port) for sid, s in c.servers.items()}
        security = load_quorum_security(c)
        self._election = ElectionTransport(self.server_id, peers, security=security)
        self._quorum = QuorumTransport(self._quorum_packet, self._quorum_lost,
                                       on_packets=self._quorum_packets, security=security,
                                       host_flushes=True)   # _flush ends with its flush()
        self._disk = DiskWriter(self.store, loop, self._durable, self._fsync_took,
                                self._disk_failed, self._log_read, c.snapshot_size_factor)
        self._tcp_server = await loop.create_server(
            lambda: _ClientProtocol(self), c.client_port_address, c.client_port,
            reuse_address=True)
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        log.info("binding to port %s:%d", c.client_port_address, self.port)
        await self._start_secure_port(loop)
        self._spawn(self._election.run())
        self._quorum_listening = me.role == "participant"
        if self._quorum_listening:
            await self._quorum.listen(me.host, me.quorum_port)
        self._spawn(self._election_pump())
        self._spawn(self._ticker())
        if c.oracle_path is not None:
            self.replica.oracle(read_oracle(c.oracle_path), _now_ms())
            self._spawn(self._oracle_poll(c.oracle_path))
        self._start_operations()
        self._election_started_ms = _now_ms()
        self.replica.start(_now_ms())
        self._flush()
        log.info("zabpy server %d started (ensemble of %d, tickTime %d ms)", self.server_id,
                 len(c.servers), c.tick_time_ms)

    def halt(self) -> None:
        super().halt()
        if self._timer is not None:
            self._timer.cancel()
        if self._election is not None:
            self._election.close()
        if self._quorum is not None:
            self._quorum.close_all()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._disk is not None:
            await asyncio.to_thread(self._disk.close)
        if self._election is not None:
            self._election.close()
        if self._quorum is not None:
            await self._quorum.aclose()
        await super().stop()

    async def _ticker(self) -> None:
        """Metrics samples and snapshot children: housekeeping, not protocol time."""
        interval = max(self.config.tick_time_ms / 2000, 0.005)
        while True:
            await asyncio.sleep(interval)
            if self.server is not None:
                for ms, is_write in self.server.stats.take_samples():
                    self.metrics.observe("updatelatency" if is_write else "readlatency", ms)
            self.store.poll_snapshot()

    async def _oracle_poll(self, path: str) -> None:
        """QuorumOracleMaj reads its file whenever it decides; the core cannot,
        so the file is read here often and what it says handed in."""
        interval = min(max(self.config.tick_time_ms / 4000, 0.01), 0.1)
        last = None
        while True:
            says = read_oracle(path)
            if says != last:
                log.info("Oracle says %s (%s)", "1" if says else "not 1", path)
                last = says
            self.replica.oracle(says, _now_ms())
            await asyncio.sleep(interval)

    # ---- inputs -------------------------------------------------------------------
    async def _election_pump(self) -> None:
        inbox = self._election.inbox
        while True:
            sid, n = await inbox.get()
            self.replica.election_received(sid, n, _now_ms())
            self._schedule_flush()

    # Quorum packets are carried out at once rather than on the next loop
    # turn: a PROPOSAL's fsync, an ACK's commit and a COMMIT's reply are each
    # on a write's critical path, and one read's packets already come batched.
    def _quorum_packet(self, sid: int, pkt) -> None:
        self.replica.quorum_received(sid, pkt, _now_ms())
        self._flush()

    def _quorum_packets(self, sid: int, pkts: list) -> None:
        if not self.replica.serving:
            _log_sync_received(pkts)
        self.replica.quorum_received_many(sid, pkts, _now_ms())
        self._flush()

    def _quorum_lost(self, sid: int) -> None:
        self.replica.quorum_disconnected(sid, _now_ms())
        self._schedule_flush()

    def _durable(self, token: int, loaded: Loaded | None) -> None:
        self.replica.durable(token, _now_ms(), loaded)
        # never while a multi is part-way into the tree: a snapshot sees it whole or not at all
        if loaded is None and not self.replica.busy and self.store.should_snapshot():
            self.metrics.count("snap_count")
            self.store.start_snapshot(self.replica.tree, self.replica.sessions_table())
        self._flush()

    def _log_read(self, token: int, txns: tuple | None) -> None:
        self.replica.log_read(token, txns, _now_ms())
        self._flush()

    def _disk_failed(self, e: BaseException) -> None:
        # ZooKeeper exits on an unrecoverable log error in quorum mode.
        log.error("Severe unrecoverable error writing the data directory: %r; stopping", e)
        self.halt()
        self.fatal.set()

    def _fsync_took(self, ms: float) -> None:
        self.metrics.observe("fsynctime", ms)
        if ms > self.config.fsync_warning_threshold_ms:
            self.metrics.fsync_threshold_exceeded += 1
            log.warning("fsync-ing the write ahead log took %.0fms which will adversely "
                        "effect operation latency", ms)

    @fail_stop_guard("deadline timer")
    def _deadline(self) -> None:
        self._timer = self._timer_ms = None
        self.replica.tick(_now_ms())
        self._flush()

    # ---- clients ------------------------------------------------------------------
    def _accept(self, p) -> None:
        if not self.serving:
            # Not serving: only a four-letter word is answered; a connection that
            # sends nothing goes after the sessionless timeout, as any other.
            p.conn_id = 0
            asyncio.get_running_loop().call_later(
                self.config.sessionless_cnxn_timeout_ms / 1000, p.transport.close)
            return
        super()._accept(p)

    def _client_connected(self, conn_id: int, peer_ip: str, now: int, tls_ids: tuple = ()) -> None:
        self.replica.client_connected(conn_id, peer_ip, now, tls_ids)
        self._schedule_flush()

    def _client_event(self, conn_id: int, ev, now: int) -> None:
        self.replica.client_event(conn_id, ev, now)

    def _client_closed(self, conn_id: int, now: int) -> None:
        self.replica.client_closed(conn_id, now)

    def _client_grant(self, conn_id: int, budget_bytes: int, now: int) -> None:
        self.replica.client_grant(conn_id, budget_bytes, now)

    def _four_letter(self, p, ev: FourLetterWord) -> None:
        if p.conn_id:
            super()._four_letter(p, ev)
            return
        # isro: "null" while no server runs (ZooKeeper's IsroCommand)
        text = {"ruok": "imok", "isro": "null"}.get(
            ev.word, "This ZooKeeper instance is not currently serving requests\n")
        p.transport.write(text.encode())
        p.transport.close()

    # ---- carrying out Ready -----------------------------------------------------------
    def _flush(self) -> None:
        self._flush_scheduled = False
        replica = self.replica
        while True:
            ready = replica.ready()
            if ready:
                self._execute(ready)
            replica.advance(ready)
            if not ready:
                break
        self.server = replica.server
        self._quorum.flush()
        self._arm_timer(ready.deadline_ms)
        self._backpressure()
        if replica.busy and not self._work_scheduled:
            # the next part of a large multi, after this turn's I/O (quorum
            # packets, pings and other clients come first)
            self._work_scheduled = True
            self._loop.call_soon(self._work_soon)

    @fail_stop_guard("call_soon work")
    def _work_soon(self) -> None:
        self._work_scheduled = False
        self.replica.work(_now_ms())
        self._flush()

    def _execute(self, ready: Ready) -> None:
        if ready.config is not None:
            # first: a Dial below may name a server only the new config has
            self._config_changed(ready.config)
        for write in ready.disk:
            self._disk.submit(write)
        for read in ready.reads:
            self._disk.submit(read)
        for sid, n in ready.election:
            self._election.send(sid, n)
        for op in ready.quorum:
            self._quorum_op(op)
        self._write(ready.client_send)
        for cid in ready.client_close:
            p = self._protocols.get(cid)
            if p is not None and p.transport is not None:
                p.transport.close()
        for level, line in ready.logs:
            emit_log(log, level, line)
        if ready.state is not None:
            self._state_changed(ready.state)
        if ready.serving is not None:
            self._serving_changed(ready.serving)

    # ---- dynamic reconfig: files, addresses, ports --------------------------------------
    def _config_changed(self, qv: QuorumVerifier) -> None:
        """A new current config: take its addresses (peers to dial, our own
        quorum and client ports) and write the dynamic config file."""
        c = self.config
        old_me = c.servers.get(self.server_id)
        servers = {}
        for sid in qv.members:
            spec = _server_spec(sid, qv.spec(sid))
            if spec is not None:
                servers[sid] = spec
        c.servers = servers
        c.config_version = qv.version
        for sid, spec in servers.items():
            self._election.peers.setdefault(sid, (spec.host, spec.election_port))
        me = servers.get(self.server_id)
        if c.reconfig_enabled and c.source and os.path.isfile(c.source):
            erase = me is not None and me.client_port is not None
            try:
                c.dynamic_config_file = write_dynamic_config(c.source, qv, erase_client=erase)
            except OSError as e:
                log.error("Cannot write the dynamic config file for version %x: %r", qv.version, e)
        if me is None:
            return
        if me.role == "participant" and not self._quorum_listening:
            self._quorum_listening = True
            self._spawn(self._quorum.listen(me.host, me.quorum_port))
        if me.client_port is not None and old_me is not None and \
                (me.client_port, me.client_host) != (c.client_port, c.client_port_address):
            self._spawn(self._move_client_port(me.client_host or "0.0.0.0", me.client_port))

    async def _move_client_port(self, host: str, port: int) -> None:
        """cnxnFactory.reconfigure: listen on the new client address, close the old."""
        loop = asyncio.get_running_loop()
        new = await loop.create_server(lambda: _ClientProtocol(self), host, port,
                                       reuse_address=True)
        old, self._tcp_server = self._tcp_server, new
        self.config.client_port, self.config.client_port_address = port, host
        self.port = new.sockets[0].getsockname()[1]
        log.info("Reconfig: client address is now %s:%d", host, self.port)
        if old is not None:
            old.close()

    def _quorum_op(self, op: Dial | Send | Close) -> None:
        if isinstance(op, Send):
            if op.packet.type in _SYNC_WORDS:
                log.info("Sending %s zxid=0x%x for peer sid: %d", _SYNC_WORDS[op.packet.type],
                         op.packet.zxid, op.server_id)
            self._quorum.send(op.server_id, op.packet)
        elif isinstance(op, Dial):
            leader = self.config.servers.get(op.server_id)
            if leader is None:
                log.warning("No address for leader %d in our config; not dialing", op.server_id)
                asyncio.get_running_loop().call_soon(self._quorum_lost, op.server_id)
                return
            self._quorum.dial(op.server_id, leader.host, leader.quorum_port)
        else:
            self._quorum.close(op.server_id)

    def _arm_timer(self, deadline_ms: int | None) -> None:
        if deadline_ms == self._timer_ms:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_ms = None, deadline_ms
        if deadline_ms is not None:
            delay = max(0.0, (deadline_ms - _now_ms()) / 1000)
            self._timer = self._loop.call_later(delay, self._deadline)

    def _state_changed(self, state: ServerState) -> None:
        now = _now_ms()
        if state == ServerState.LOOKING:
            log.info("LOOKING: leaving the role; closing client connections")
            self._election_started_ms = now
            self.metrics.count("looking_count")
            return
        took = now - self._election_started_ms
        self.metrics.observe("election_time", took)
        peer = self.replica.peer
        leader = self.server_id if peer.leader is not None else peer.learner.leader_sid
        log.info("Peer state changed: %s (leader %d) after %d ms of election",
                 self.replica.mode.upper(), leader, took)

    def _serving_changed(self, serving: bool) -> None:
        if serving:
            log.info("serving clients as %s", self.replica.mode)
            return
        self._paused = False
        for p in list(self._protocols.values()):
            if p.transport is not None:
                p.transport.abort()

    # ---- what the admin commands see ---------------------------------------------------
    def quorum_view(self):
        from ..admin.commands import QuorumView
        from ..zab.leader import _UPTODATE

        peer = self.replica.peer
        role = peer.role
        phase = role.phase.name.lower() if role is not None else "election"
        mode = self.mode
        verb = {"leader": "leading", "follower": "following",
                "observer": "observing"}.get(mode, "looking")
        view = QuorumView(
            my_id=self.server_id, server_state=mode, peer_state=f"{verb} - {phase}",
            zab_state=phase, voting=mode != "observer",
            last_zxid=self.replica.tree.last_processed_zxid,
            quorum_size=len(peer.quorum.voters))  # the voting view, as mntr reports it
        if peer.leader is not None:
            view.leader_id = self.server_id
            learners = peer.leader.learners
            view.learners = len(learners)
            view.synced_followers = sum(1 for l in learners.values()
                                        if not l.observer and l.stage >= _UPTODATE)
            view.synced_observers = sum(1 for l in learners.values()
                                        if l.observer and l.stage >= _UPTODATE)
            view.pending_syncs = len(peer.leader.pending_syncs)
        elif peer.learner is not None:
            view.leader_id = peer.learner.leader_sid
        if view.leader_id is not None and view.leader_id in self.config.servers:
            view.leader_ip = self.config.servers[view.leader_id].host
        return view
