"""Dynamic reconfig in the simulator: members join, leave and change role under faults.

``ReconfigSimulation`` is the ensemble simulation (``replica_sim``) with
reconfig enabled (skipACL, so the operator needs no credentials) and
``spares`` extra servers. A spare starts with the ensemble's config plus
itself (version 0, as a joining server's zoo.cfg), adopts the ensemble's
newer config from its first election notification and follows as a
non-voting participant until a reconfig adds it. Among the seeded faults,
``reconfig`` has an operator connect to the established leader (a real
client connection: ConnectRequest, then the reconfig request pipelined
behind it) and ask for one change: add a server as voter or observer,
remove a voter, or turn an observer into a voter or back. Many are refused
(NEWCONFIGNOQUORUM while the new voters are not synced, RECONFIGINPROGRESS,
BADARGUMENTS below two voters); the committed ones change the quorums every
later check uses.

Each server keeps the last config it activated (``Ready.config``) as its
"dynamic config file" on its simulated disk and restarts from it.

Checks, besides replica_sim's Z1-Z7 and the client checks:

R1 (Z5 by configuration) every committed txn is durable on a quorum of the
   config current when it committed, and a reconfig txn also on a quorum of
   the config it makes (ZooKeeper commits it only with both): at the moment
   it commits, and at every periodic check after.
R2 one committed sequence across configurations: Z1 (one established
   leader per epoch) and Z4 (one sequence, and every later leader holds all
   of it) hold while configs change, so no two quorums of different
   configurations can commit independently; the checker follows the config
   through the committed sequence itself, whoever committed it.
"""

from __future__ import annotations

import random
import struct
from dataclasses import replace

from zabpy.election import MajorityQuorum, QuorumVerifier
from zabpy.election.reconfig import quorum_from_text
from zabpy.jute import records as R
from zabpy.jute.constants import OP
from zabpy.protocol.connection import ClientConnection
from zabpy.server.replica import Ready
from zabpy.server.settings import ServerSettings
from zabpy.zab.packets import parse_txn

from .invariants import SimFailure
from .replica_node import ReplicaNode, SimDisk
from .replica_sim import ReplicaSimOptions, ReplicaSimulation
from .zab_invariants import ZabChecker

__all__ = ["ReconfigSimulation", "ReconfigChecker"]

_FRAME = struct.Struct(">i")
_HDR = struct.Struct(">ii")
_ADMIN_CID = 1 << 40        # the operator's connection ids, apart from the clients'


def _spec(sid: int, role: str) -> str:
    return f"10.0.{sid // 256}.{sid % 256}:2888:3888:{role};2181"


class ReconfigChecker(ZabChecker):
    """ZabChecker whose Z5 follows the configuration through the committed sequence."""

    def __init__(self, quorum: QuorumVerifier) -> None:
        super().__init__(quorum)
        self.required: dict[int, tuple[QuorumVerifier, ...]] = {}
        self.configs: list[int] = [quorum.version]
        self.disks: dict | None = None     # every server's disk, to check at each commit

    def _commit(self, zxid: int, raw: bytes, sid: int) -> None:
        if zxid in self.committed:
            super()._commit(zxid, raw, sid)
            return
        super()._commit(zxid, raw, sid)
        hdr, txn = parse_txn(raw)
        needed: tuple[QuorumVerifier, ...] = (self.quorum,)
        if hdr.type == OP.reconfig:
            new = quorum_from_text((txn.data or b"").decode())
            needed = (self.quorum, new)
            self.quorum = new
            self.configs.append(new.version)
        self.required[zxid] = needed
        if self.disks is not None:
            self._durable_on(zxid, needed, "as it commits")

    def _durable_on(self, zxid: int, needed: tuple[QuorumVerifier, ...], when: str) -> None:
        holders = [sid for sid, disk in self.disks.items() if disk.contains(zxid)]
        for q in needed:
            if not q.contains_quorum(holders):
                raise SimFailure(f"R1: {zxid:#x} durable only on {holders} {when}, not a "
                                 f"quorum of config {q.version:#x} {list(q.voters)}")

    def check_durable(self, disks: dict) -> None:
        """R1: Z5 against the config(s) each txn committed under."""
        self.disks = disks
        for zxid in list(self.committed)[-200:]:
            self._durable_on(zxid, self.required.get(zxid, (self.quorum,)), "later")


class ReconfigSimulation(ReplicaSimulation):
    def __init__(self, opts: ReplicaSimOptions, spares: int = 2) -> None:
        super().__init__(opts)
        seed = opts.seed
        first = self.quorum
        members = list(first.members)
        specs = {s: _spec(s, "observer" if s in first.observers else "participant")
                 for s in members}
        self.quorum = MajorityQuorum(first.voters, first.observers, first.version, specs)
        self.spares = list(range(len(members) + 1, len(members) + 1 + spares))
        self.all_sids = members + self.spares
        setup = random.Random(f"{seed}/reconfig-setup")
        for sid in self.spares:
            self.disks[sid] = SimDisk()
            self.nodes[sid] = None
            self.links[sid] = {}
            self.starts[sid] = setup.randint(0, 2000)
        self.initial_config = {sid: self.quorum for sid in members}
        for sid in self.spares:
            self.initial_config[sid] = MajorityQuorum(
                list(first.voters) + [sid], first.observers, 0,
                {**specs, sid: _spec(sid, "participant")})
        self.config_file: dict[int, QuorumVerifier] = {}
        self.checker = ReconfigChecker(self.quorum)
        self.checker.disks = self.disks
        self.admin_rng = random.Random(f"{seed}/reconfig")
        self.admin_cids: dict[int, None] = {}
        t, times = 0, []
        while True:
            t += self.admin_rng.randint(300, 1500)
            if t >= opts.fault_ms:
                break
            times.append((t, "reconfig"))
        self.faults = sorted(self.faults + times, key=lambda f: f[0])
        self.log(f"reconfig: spares {self.spares}; {len(times)} reconfig requests")

    # ---- servers: settings, their config file -------------------------------------------
    def _settings(self, sid: int) -> ServerSettings:
        return replace(super()._settings(sid), reconfig_enabled=True, skip_acl=True)

    def _start_quorum(self, sid: int):
        # a server restarts from the last config it activated (its config file)
        return self.config_file.get(sid, self.initial_config[sid])

    def _start_note(self, quorum) -> str:
        return f" with config {quorum.version:#x} voters {list(quorum.voters)}"

    def _execute(self, sid: int, node: ReplicaNode, ready: Ready) -> None:
        super()._execute(sid, node, ready)
        if ready.config is not None:
            self.config_file[sid] = ready.config
            self.log(f"peer {sid} config {ready.config.version:#x} voters "
                     f"{list(ready.config.voters)} observers {list(ready.config.observers)}")

    def _server_closes_client(self, sid: int, cid: int) -> None:
        if cid in self.admin_cids:
            del self.admin_cids[cid]
            self.closed_by_server.append(cid)
            return
        super()._server_closes_client(sid, cid)

    # ---- faults: every member may fail; the operator's reconfig -------------------------
    def _apply_fault(self, action: str) -> None:
        if action == "reconfig":
            self._operator()
            return
        saved = self.quorum
        self.quorum = MajorityQuorum(self.all_sids)   # faults pick among every server
        try:
            super()._apply_fault(action)
        finally:
            self.quorum = saved

    def _heal_all(self) -> None:
        super()._heal_all()
        for sid in self.all_sids:
            if self.nodes[sid] is None and sid not in self.starts:
                self.starts[sid] = self.now_ms

    def _operator(self) -> None:
        leaders = [s for s in self.up() if self.nodes[s].peer.leader is not None
                   and self.nodes[s].replica.serving]
        if not leaders:
            return
        sid = leaders[0]
        node = self.nodes[sid]
        current = node.peer.quorum
        rng = self.admin_rng
        outside = [s for s in self.all_sids if s not in current.members]
        choice = rng.choice(["add", "add", "remove", "role"])
        joining = leaving = None
        if choice == "add" and outside:
            new = rng.choice(outside)
            joining = f"server.{new}={_spec(new, rng.choice(['participant', 'observer']))}"
        elif choice == "remove" or (choice == "add" and not outside):
            leaving = str(rng.choice(current.voters))
        else:
            who = rng.choice(list(current.members))
            role = "participant" if who in current.observers else "observer"
            joining = f"server.{who}={_spec(who, role)}"
        cid = _ADMIN_CID + len(self.trace)
        self.admin_cids[cid] = None
        self.log(f"operator asks leader {sid}: reconfig joining={joining} leaving={leaving}")
        connect = R.ConnectRequest(0, 0, 4000, 0, bytes(16), False).to_bytes()
        body = _HDR.pack(1, OP.reconfig) + R.ReconfigRequest(joining, leaving, None, -1).to_bytes()
        data = _FRAME.pack(len(connect)) + connect + _FRAME.pack(len(body)) + body
        node.replica.client_connected(cid, "10.9.9.9", self.now_ms)
        proto = ClientConnection()
        for event in proto.receive_data(data):
            node.replica.client_event(cid, event, self.now_ms)
        self._flush(sid)

    def converged(self) -> int | None:
        leader = super().converged()
        if leader is None:
            return None
        # every server runs the committed config, and so does the checker
        want = self.checker.quorum.version
        if any(self.nodes[s].peer.quorum.version != want for s in self.up()):
            return None
        return leader
