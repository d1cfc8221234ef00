"""The asyncio shell of an ensemble member: election port, quorum port,
client port, data directory, around the pure ``zab.Peer`` and a role's
server core (``LeaderServer`` / ``LearnerServer``).

One task, ``_peer_loop``, owns the Peer: it takes inputs (election
notifications, quorum packets, disconnections, timer ticks), then carries
out ``PeerReady`` in the order the type prescribes (``zab/ready.py``):
persist (truncate / snapshot / append, one fsync, epoch files, then the
``then`` packets) → commit (apply to the tree through the server core) →
send → close → notices. Client callbacks run between its awaits; what they
produce (proposals on the leader, forwarded requests on a learner) goes
straight into the Peer's outbox and is carried out on the next turn.

Clients are served only while the role is established (leader: a quorum
acknowledged NEWLEADER; learner: UPTODATE received). When the role ends
every client connection is closed, as ZooKeeper does, and the clients move
to another member or wait for the new leader.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from ..election import ServerState, quorum_from_config
from ..protocol.connection import FourLetterWord
from ..jute import records as R
from ..server.leader import LeaderServer
from ..server.learner import LearnerServer
from ..storage.quorum import (ACCEPTED_EPOCH, CURRENT_EPOCH, install_snapshot, read_epochs,
                              truncate_after, write_epoch)
from ..tree.datatree import DataTree
from ..zab import packets as P
from ..zab.leader import ZabTimers
from ..zab.peer import Peer, PeerLog
from ..zab.ready import Phase, Snapshot
from .election_transport import ElectionTransport
from .quorum_transport import QuorumTransport
from .server import ServerRuntime, _ClientProtocol, _now_ms

__all__ = ["EnsembleRuntime"]

log = logging.getLogger("zabpy.server")

_STATE_MODE = {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
               ServerState.OBSERVING: "observer", ServerState.LOOKING: "looking"}


class EnsembleRuntime(ServerRuntime):
    def __init__(self, config, *, server_id: int | None = None):
        super().__init__(config, server_id=server_id)
        assert config.data_dir, "an ensemble member needs a dataDir"
        self.mode = "looking"
        self.serving = False
        self.peer: Peer | None = None
        self._tree: DataTree | None = None
        self._sessions: dict[int, int] = {}
        self._inputs: asyncio.Queue = asyncio.Queue()
        self._election: ElectionTransport | None = None
        self._quorum: QuorumTransport | None = None
        self._election_started_ms = 0
        self._early: list = []  # quorum packets that arrived before our role existed

    # ---- lifecycle -------------------------------------------------------------

    def _quorum_props(self) -> dict[str, str]:
        return {k: v for k, v in self.config.raw.items()
                if k.startswith(("server.", "group.", "weight."))}

    async def start(self) -> None:
        c = self.config
        self._tree, self._sessions = self._open_store()
        accepted, current = read_epochs(self.store, self._tree.last_processed_zxid)
        quorum = quorum_from_config(self._quorum_props())
        timers = ZabTimers(c.tick_time_ms, c.init_limit or 10, c.sync_limit or 5)
        self.peer = Peer(self.server_id, quorum, PeerLog(accepted, current,
                                                         self._tree.last_processed_zxid),
                         random.Random(), timers=timers, snapshot_source=self._snapshot_source)
        loop = asyncio.get_running_loop()
        me = c.servers[self.server_id]
        self._tcp_server = await loop.create_server(
            lambda: _ClientProtocol(self), c.client_port_address, c.client_port,
            reuse_address=True)
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        log.info("binding to port %s:%d", c.client_port_address, self.port)
        await self._start_secure_port(loop)
        peers = {sid: (s.host, s.election_port) for sid, s in c.servers.items()}
        self._election = ElectionTransport(self.server_id, peers)
        self._quorum = QuorumTransport(
            lambda sid, pkt: self._inputs.put_nowait(("quorum", sid, pkt)),
            lambda sid: self._inputs.put_nowait(("quorum", sid, None)))
        self._spawn(self._election.run())
        if me.role == "participant":
            await self._quorum.listen(me.host, me.quorum_port)
        self._spawn(self._election_pump())
        self._spawn(self._peer_loop())
        self._start_operations()
        log.info("zabpy server %d started (ensemble of %d, tickTime %d ms)", self.server_id,
                 len(c.servers), c.tick_time_ms)

    async def stop(self) -> None:
        if self._election is not None:
            self._election.close()
        if self._quorum is not None:
            await self._quorum.aclose()
        await super().stop()

    def _snapshot_source(self) -> Snapshot:
        tree = self._tree
        return Snapshot(tree.last_processed_zxid, P.snapshot_bytes(tree, self._current_sessions()))

    def _current_sessions(self) -> dict[int, int]:
        if self.server is not None:
            return {s.session_id: s.timeout_ms for s in self.server.sessions.sessions.values()}
        return dict(self._sessions)

    # ---- inputs ------------------------------------------------------------------

    async def _election_pump(self) -> None:
        while True:
            sid, n = await self._election.inbox.get()
            self._inputs.put_nowait(("election", sid, n))

    def _accept(self, p) -> None:
        if not self.serving or self.server is None:
            p.conn_id = 0  # not serving: only a four-letter word is answered
            return
        super()._accept(p)

    def _data(self, p, data: bytes) -> None:
        if p.conn_id:
            super()._data(p, data)
            return
        try:
            events = p.proto.receive_data(data)
        except Exception:
            events = None
        if events and isinstance(events[0], FourLetterWord):
            word = events[0].word
            text = "imok" if word == "ruok" else \
                "This ZooKeeper instance is not currently serving requests\n"
            p.transport.write(text.encode())
            p.transport.close()
        elif events is None or events:
            p.transport.abort()  # a client: it tries another member

    def _lost(self, p) -> None:
        if p.conn_id:
            super()._lost(p)

    # ---- the peer loop -------------------------------------------------------------

    async def _peer_loop(self) -> None:
        peer = self.peer
        self._election_started_ms = _now_ms()
        peer.start(_now_ms())
        tick_s = max(self.config.tick_time_ms / 4000, 0.01)
        while True:
            await self._carry_out()
            try:
                item = await asyncio.wait_for(self._inputs.get(), tick_s)
            except asyncio.TimeoutError:
                item = None
            now = _now_ms()
            while item is not None:
                kind, sid, msg = item
                if kind == "wake":
                    pass
                elif kind == "election":
                    peer.step_election(sid, msg, now)
                elif msg is None:
                    self._early = [(s, m) for s, m in self._early if s != sid]
                    peer.disconnected(sid, now)
                elif peer.role is None:
                    # A learner that decided faster than we did: keep its
                    # packets until our own role exists (ZooKeeper's leader
                    # only starts accepting learners once it leads).
                    if len(self._early) < 1000:
                        self._early.append((sid, msg))
                else:
                    peer.step(sid, msg, now)
                item = self._inputs.get_nowait() if not self._inputs.empty() else None
            self._touch_and_tick(now)

    def _touch_and_tick(self, now: int) -> None:
        srv, peer = self.server, self.peer
        if isinstance(srv, LearnerServer) and peer.learner is not None:
            for sid, timeout in srv.take_touches():
                peer.learner.touch(sid, timeout)
        peer.tick(now)
        if srv is not None and self.serving:
            srv.tick(now)
            self._flush()

    async def _carry_out(self) -> None:
        while True:
            ready = self.peer.ready()
            if not ready.election and ready.zab.empty() and ready.connect is None \
                    and ready.state is None:
                return
            for sid, n in ready.election:
                self._election.send(sid, n)
            if ready.connect is not None:
                # dial first: the learner's FOLLOWERINFO is in this ready's sends
                leader = self.config.servers[ready.connect]
                self._quorum.dial(ready.connect, leader.host, leader.quorum_port)
            await self._execute_zab(ready.zab)
            self.peer.advance(ready)
            if ready.state is not None:
                self._state_changed(ready.state)
            if ready.zab.phase is not None:
                self._phase_changed(ready.zab.phase)
            self._flush()

    async def _execute_zab(self, zr) -> None:
        # Group commit: a run of Persists that only append records (one per
        # proposal) shares one fsync; their ``then`` packets (ACKs) leave
        # after it, in order. A Persist with a truncate, a snapshot or an
        # epoch first makes the run before it durable, then runs alone.
        then: list = []
        for p in zr.persist:
            if p.truncate_zxid is None and p.snapshot is None and \
                    p.accepted_epoch is None and p.current_epoch is None:
                for hdr, txn in p.records:
                    self.store.append(hdr, txn)
                then.extend(p.then)
                continue
            await self._sync_and_send(then)
            then = []
            await self._persist(p)
            for sid, pkt in p.then:
                self._send_packet(sid, pkt)
        await self._sync_and_send(then)
        now = _now_ms()
        for hdr, txn in zr.commit:
            self._apply_commit(hdr, txn, now)
        for sid, pkt in zr.send:
            self._send_packet(sid, pkt)
        for sid in zr.close:
            self._quorum.close(sid)
        self._notices(zr, now)

    async def _sync_and_send(self, then: list) -> None:
        if self.store.has_pending():
            t0 = time.monotonic()
            await asyncio.to_thread(self.store.flush_and_sync)
            self.metrics.observe("fsynctime", (time.monotonic() - t0) * 1000)
        for sid, pkt in then:
            self._send_packet(sid, pkt)

    def _send_packet(self, sid: int, pkt: R.QuorumPacket) -> None:
        if sid == self.server_id:
            self._inputs.put_nowait(("quorum", sid, pkt))  # loopback: our own ACK
        else:
            self._quorum.send(sid, pkt)

    async def _persist(self, p) -> None:
        store = self.store
        if p.truncate_zxid is not None:
            await asyncio.to_thread(truncate_after, store, p.truncate_zxid)
            self._reload_tree()
        if p.snapshot is not None:
            tree = DataTree()
            sessions = P.load_snapshot_bytes(p.snapshot.data, tree, p.snapshot.zxid)
            await asyncio.to_thread(install_snapshot, store, tree, sessions)
            self._tree, self._sessions = tree, sessions
            self._new_role_server(reuse_sessions=False)
        for hdr, txn in p.records:
            store.append(hdr, txn)
        if p.records:
            t0 = time.monotonic()
            await asyncio.to_thread(store.flush_and_sync)
            self.metrics.observe("fsynctime", (time.monotonic() - t0) * 1000)
        if p.accepted_epoch is not None:
            await asyncio.to_thread(write_epoch, store, ACCEPTED_EPOCH, p.accepted_epoch)
        if p.current_epoch is not None:
            await asyncio.to_thread(write_epoch, store, CURRENT_EPOCH, p.current_epoch)

    def _reload_tree(self) -> None:
        tree = DataTree()
        self._sessions = self.store.restore(tree)
        self._tree = tree
        self._new_role_server(reuse_sessions=False)

    def _apply_commit(self, hdr, txn, now: int) -> None:
        srv = self.server
        if isinstance(srv, LeaderServer) and srv.inflight and srv.inflight[0].hdr.zxid == hdr.zxid:
            srv.logged(hdr.zxid, now)
        elif isinstance(srv, LearnerServer):
            srv.apply_committed(hdr, txn, now)
        elif srv is not None:
            srv.logged(hdr.zxid, now)
            if self._tree.last_processed_zxid < hdr.zxid:
                self._tree.apply(hdr, txn)
        else:
            self._tree.apply(hdr, txn)
        if self.store.should_snapshot():
            self.store.start_snapshot(self._tree, self._current_sessions())

    def _notices(self, zr, now: int) -> None:
        srv = self.server
        if isinstance(srv, LeaderServer):
            for r in zr.requests:
                srv.submit_forwarded(r.session_id, r.cxid, r.op, r.body, r.authinfo, now)
            if zr.touches:
                srv.touch_sessions(zr.touches, now)
            for sid, session_id, _timeout in zr.revalidate:
                valid = session_id in srv.sessions.sessions
                self.peer.leader.revalidate_reply(sid, session_id, valid)
        if isinstance(srv, LearnerServer):
            for token in zr.synced:
                srv.synced(token, now)
            for session_id, valid in zr.revalidated:
                srv.revalidated(session_id, valid, now)

    # ---- role changes --------------------------------------------------------------------

    def _state_changed(self, state: ServerState) -> None:
        old, self.mode = self.mode, _STATE_MODE[state]
        now = _now_ms()
        if state == ServerState.LOOKING:
            log.info("LOOKING: leaving the %s role; closing client connections", old)
            self._stop_serving()
            self._election_started_ms = now
            self.metrics.count("looking_count")
            return
        took = now - self._election_started_ms
        self.metrics.observe("election_time", took)
        leader = self.server_id if self.peer.leader is not None else self.peer.learner.leader_sid
        log.info("Peer state changed: %s (leader %d) after %d ms of election", self.mode.upper(),
                 leader, took)
        self._new_role_server(reuse_sessions=True)
        early, self._early = self._early, []
        if self.peer.leader is not None:
            for sid, pkt in early:
                self._inputs.put_nowait(("quorum", sid, pkt))
        else:
            for sid in {sid for sid, _ in early}:
                self._quorum.close(sid)

    def _new_role_server(self, reuse_sessions: bool) -> None:
        sessions = self._current_sessions() if reuse_sessions else self._sessions
        self._stop_serving()
        cls = LeaderServer if self.peer.leader is not None else LearnerServer
        self.server = cls(self._settings(), _now_ms(), self._tree, sessions)

    def _phase_changed(self, phase: Phase) -> None:
        if phase == Phase.BROADCAST and self.server is not None:
            if isinstance(self.server, LeaderServer):
                self.server.start_epoch(self.peer.leader.new_epoch)
            self.serving = True
            log.info("serving clients as %s", self.mode)
        elif phase == Phase.LOOKING:
            self._stop_serving()

    def _stop_serving(self) -> None:
        self.serving = False
        self._paused = False
        for p in list(self._protocols.values()):
            if p.transport is not None:
                p.transport.abort()

    # ---- the server core's output ------------------------------------------------------

    def _persist_records(self, records: tuple) -> None:
        srv = self.server
        if not isinstance(srv, LeaderServer):
            return
        for hdr, txn in records:
            zxid = self.peer.propose(hdr, txn)
            if zxid is None:
                srv.log_failed("the leader cannot take proposals (no quorum)")
                return
            assert zxid == hdr.zxid, (hex(zxid), hex(hdr.zxid))

    def _handle_txns(self, ready) -> None:
        srv = self.server
        if ready.persist:
            self._persist_records(ready.persist)
        for sid, cxid, op, body, ids in ready.forward:
            if not self.peer.forward(sid, cxid, op, body, list(ids), (sid, cxid)):
                srv.leader_refused(sid, cxid)
        for session_id, timeout in ready.revalidate:
            learner = self.peer.learner
            if learner is not None and learner.serving:
                learner.revalidate(session_id, timeout)
            else:
                srv.revalidated(session_id, False, _now_ms())
        if ready.persist or ready.forward or ready.revalidate:
            # the Peer's outbox grew: let the peer loop carry it out now
            self._inputs.put_nowait(("wake", 0, None))

    # ---- what the admin commands see ---------------------------------------------------

    def quorum_view(self):
        from ..admin.commands import QuorumView
        from ..zab.leader import _UPTODATE

        peer = self.peer
        role = peer.role
        phase = role.phase.name.lower() if role is not None else "election"
        verb = {"leader": "leading", "follower": "following",
                "observer": "observing"}.get(self.mode, "looking")
        view = QuorumView(
            my_id=self.server_id, server_state=self.mode, peer_state=f"{verb} - {phase}",
            zab_state=phase, voting=self.mode != "observer",
            last_zxid=self._tree.last_processed_zxid if self._tree is not None else 0,
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
