"""A real leader and two followers over 127.0.0.1 TCP replicating txns.

Zab paper §3 (phases 1-3) end to end through ``runtime.quorum_transport``:
discovery, a DIFF sync, then broadcast; the followers' trees must equal the
leader's. Persist actions run in memory at once (fsync = done), which keeps
the "then only after durable" order trivially.
"""

import asyncio

from zabpy.election import MajorityQuorum
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.runtime.quorum_transport import QuorumTransport
from zabpy.storage.snapshot import tree_digest
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.tree.datatree import DataTree
from zabpy.zab import History, Leader, Learner, Phase, Snapshot, ZabTimers, snapshot_bytes

TIMERS = ZabTimers(tick_ms=1000, init_limit=30, sync_limit=30)


class Server:
    """A minimal executor: one core, a tree, a memory log, a transport."""

    def __init__(self, sid: int, changed: asyncio.Event) -> None:
        self.sid = sid
        self.tree = DataTree()
        self.log: list = []
        self.changed = changed
        self.core = None
        self.transport = QuorumTransport(self._on_packet, self._on_disconnected)

    def _on_packet(self, sid, pkt):
        self.core.step(sid, pkt, 0)
        self.flush()

    def _on_disconnected(self, sid):
        if isinstance(self.core, Learner):
            self.core.disconnected(0)
        else:
            self.core.disconnected(sid, 0)
        self.flush()

    def flush(self):
        while not (r := self.core.ready()).empty():
            for p in r.persist:
                assert p.truncate_zxid is None and p.snapshot is None
                self.log.extend(p.records)
                for dst, pkt in p.then:
                    self.send(dst, pkt)
            for hdr, txn in r.commit:
                self.tree.apply(hdr, txn)
            for dst, pkt in r.send:
                self.send(dst, pkt)
            for dst in r.close:
                self.transport.close(dst)
            self.core.advance(r)
        self.changed.set()

    def send(self, dst, pkt):
        if dst == self.sid:
            self.core.step(dst, pkt, 0)  # loopback: the leader's own ACK
        else:
            self.transport.send(dst, pkt)


async def wait_until(changed: asyncio.Event, cond) -> None:
    async def loop():
        while not cond():
            changed.clear()
            await changed.wait()
    await asyncio.wait_for(loop(), 10)


def create(seq: int, zxid: int = 0):
    hdr = R.TxnHeader(0x42, seq, zxid, 1000 + seq, OpCode.create)
    return hdr, R.CreateTxn(f"/n{seq}", b"x" * seq, list(OPEN_ACL_UNSAFE), False, -1)


async def _replicate() -> None:
    quorum = MajorityQuorum([1, 2, 3])
    changed = asyncio.Event()
    leader, f2, f3 = Server(1, changed), Server(2, changed), Server(3, changed)
    leader.core = Leader(1, quorum, History(0), 0, 0, 0, timers=TIMERS,
                         snapshot_source=lambda: Snapshot(leader.tree.last_processed_zxid,
                                                          snapshot_bytes(leader.tree, {})))
    port = await leader.transport.listen("127.0.0.1", 0)
    leader.flush()
    try:
        for f in (f2, f3):
            f.core = Learner(f.sid, 1, 0, 0, 0, 0, timers=TIMERS)
            f.transport.dial(1, "127.0.0.1", port)
            f.flush()
        await wait_until(changed, lambda: leader.core.established
                         and f2.core.serving and f3.core.serving)
        zxids = []
        for seq in range(1, 6):
            zxids.append(leader.core.propose(*create(seq, leader.core.next_zxid())))
            leader.flush()
        assert zxids == [(1 << 32) | i for i in range(1, 6)]  # epoch 1, counters 1..5
        await wait_until(changed, lambda: all(s.tree.last_processed_zxid == zxids[-1]
                                              for s in (leader, f2, f3)))
        digests = {tree_digest(s.tree) for s in (leader, f2, f3)}
        assert len(digests) == 1
        assert f2.tree.get("/n5").data == b"xxxxx"
        assert [t[0].zxid for t in f3.log] == zxids
        # A forwarded write reaches the leader's pipeline as a ForwardedRequest.
        got = []
        assert f2.core.forward(0x77, 9, OpCode.create, b"body")
        f2.flush()
        orig = leader.flush

        def capture():
            got.extend(leader.core.ready().requests)
            orig()
        leader.flush = capture
        await wait_until(changed, lambda: bool(got))
        assert (got[0].sid, got[0].session_id, got[0].cxid, got[0].body) == (2, 0x77, 9, b"body")
    finally:
        for s in (leader, f2, f3):
            await s.transport.aclose()


def test_leader_and_two_followers_replicate_over_tcp():
    asyncio.run(_replicate())


async def _leader_loses_follower() -> None:
    # Zab paper §3.3 / facts 3.5: a learner whose connection drops goes LOOKING.
    quorum = MajorityQuorum([1, 2, 3])
    changed = asyncio.Event()
    leader, f2 = Server(1, changed), Server(2, changed)
    leader.core = Leader(1, quorum, History(0), 0, 0, 0, timers=TIMERS,
                         snapshot_source=lambda: Snapshot(0, b""))
    port = await leader.transport.listen("127.0.0.1", 0)
    try:
        f2.core = Learner(2, 1, 0, 0, 0, 0, timers=TIMERS)
        f2.transport.dial(1, "127.0.0.1", port)
        f2.flush()
        await wait_until(changed, lambda: leader.core.established and f2.core.serving)
        await leader.transport.aclose()
        await wait_until(changed, lambda: f2.core.phase == Phase.LOOKING)
    finally:
        await f2.transport.aclose()
        await leader.transport.aclose()


def test_follower_goes_looking_when_the_leader_connection_closes():
    asyncio.run(_leader_loses_follower())
