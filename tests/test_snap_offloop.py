"""SNAP sync with the image made off the event loop (runtime/snap_image.py).

Zab paper §3 phase 2 / Zab.tla LeaderSyncFollower: a learner too far behind
the leader's committed log gets the leader's state as a snapshot, then every
later txn, in order. Here the leader's image comes from a forked child (an
exact copy-on-write view at the fork), the quorum link holds every later
packet until the image is written, and other links carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import os

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
from test_storage_helpers import sockets_of

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.limits import CONNECTION_WRITE_BUFFER_HIGH, ZAB_COMMITTED_LOG_MAX
from zabpy.runtime.quorum_transport import QuorumTransport
from zabpy.runtime.snap_image import ForkedImage
from zabpy.storage import datadir as D
from zabpy.testing import ZabpyEnsemble
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.tree.datatree import DataTree
from zabpy.zab import packets as P
from zabpy.zab.packets import PacketType as T


def _tree(n: int) -> DataTree:
    tree = DataTree()
    for i in range(1, n + 1):
        hdr = R.TxnHeader(0x42, i, i, 1000 + i, OpCode.create)
        tree.apply(hdr, R.CreateTxn(f"/n{i}", b"v" * 10, list(OPEN_ACL_UNSAFE), False, -1))
    return tree


def test_forked_image_is_the_tree_at_the_fork():
    async def run():
        tree = _tree(200)
        sessions = {0x10: 4000}
        before = P.snapshot_bytes(tree, sessions)
        image = ForkedImage(tree, sessions)
        # The loop goes on changing the tree; the child's view does not move.
        tree.apply(R.TxnHeader(0x42, 999, 201, 2000, OpCode.create),
                   R.CreateTxn("/later", b"", list(OPEN_ACL_UNSAFE), False, -1))
        assert image.zxid == 200
        return before, b"".join(await image.wait())

    before, got = asyncio.run(run())
    assert got == before


class _GatedImage:
    """An image source that is ready only when the test says so."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ready = asyncio.Event()

    async def wait(self) -> bytes:
        await self.ready.wait()
        return self.data

    def __len__(self) -> int:
        return 0


async def _pair(leader: QuorumTransport, port: int, sid: int, got: dict, changed: asyncio.Event):
    learner = QuorumTransport(lambda s, pkt: (got[sid].append(pkt), changed.set()),
                              lambda s: None)
    learner.dial(1, "127.0.0.1", port)
    learner.send(1, P.learner_info(T.FOLLOWERINFO, sid, 0, 0))
    return learner


async def _until(changed: asyncio.Event, cond) -> None:
    async def loop():
        while not cond():
            changed.clear()
            await changed.wait()
    await asyncio.wait_for(loop(), 10)


def test_link_waits_for_its_image_and_others_carry_on():
    async def run():
        changed = asyncio.Event()
        at_leader: list = []
        leader = QuorumTransport(lambda s, pkt: (at_leader.append(s), changed.set()),
                                 lambda s: None)
        port = await leader.listen("127.0.0.1", 0)
        got = {2: [], 3: []}
        learners = [await _pair(leader, port, sid, got, changed) for sid in (2, 3)]
        await _until(changed, lambda: sorted(at_leader) == [2, 3])
        image_bytes = P.snapshot_bytes(_tree(50), {7: 5000})
        gated = _GatedImage(image_bytes)
        later = P.proposal(R.TxnHeader(0x42, 1, 51, 0, OpCode.create),
                           R.CreateTxn("/x", b"", list(OPEN_ACL_UNSAFE), False, -1))
        leader.send(2, P.packet(T.SNAP, 50, gated))
        leader.send(2, later)
        leader.send(3, later)
        leader.send(3, P.packet(T.PING, 51))
        leader.flush()
        # Learner 3 is served while learner 2's image is still being made.
        await _until(changed, lambda: len(got[3]) == 2)
        assert [p.type for p in got[3]] == [T.PROPOSAL, T.PING] and got[2] == []
        leader.send(2, P.packet(T.COMMIT, 51))
        leader.flush()
        gated.ready.set()
        await _until(changed, lambda: len(got[2]) == 3)
        assert [p.type for p in got[2]] == [T.SNAP, T.PROPOSAL, T.COMMIT]
        assert got[2][0].data == image_bytes and got[2][0].zxid == 50
        assert got[2][1] == later
        for t in learners:
            await t.aclose()
        await leader.aclose()

    asyncio.run(run())


def _snapshot_zxids(data_dir: str) -> list[int]:
    vdir = D.version_dir(data_dir)
    return sorted(int(n.split(".")[1], 16) for n in os.listdir(vdir)
                  if n.startswith("snapshot."))


def test_member_restarted_far_behind_syncs_by_snap():
    # More txns than the leader's committed log holds while the member is
    # down, and reading the txn log turned off (snapshotSizeFactor < 0): the
    # leader must send a SNAP (facts 3.5, LearnerHandler.syncFollower).
    missed = ZAB_COMMITTED_LOG_MAX + 100
    with ZabpyEnsemble(3, extra="snapshotSizeFactor=-1") as ens:
        victim = next(s for s in ens.sids if ens.mode(s) == "follower")
        # The writer never talks to the victim: a kill under its session
        # would be a ConnectionLoss that kazoo does not retry for us.
        c = KazooClient(hosts=",".join(ens.host(s) for s in ens.sids if s != victim),
                        timeout=10,
                        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
        c.start(timeout=20)
        ens.kill(victim)
        c.ensure_path("/far")
        for start in range(0, missed, 100):
            for a in [c.create_async(f"/far/n{i}", b"v" * 20) for i in range(start, start + 100)]:
                a.get(timeout=20)
        ens.start(victim)
        ens.wait_serving([victim])
        v = KazooClient(hosts=ens.host(victim), timeout=10)
        v.start(timeout=20)
        v.sync("/far")
        assert len(v.get_children("/far")) == missed
        c.create("/after", b"a")  # broadcast after the SNAP reaches the member too
        v.sync("/after")
        assert v.get("/after")[0] == b"a"
        v.stop()
        c.stop()
        # The SNAP was installed: the member saved it as a snapshot of the
        # leader's state, far past what it had logged before the kill.
        data_dir = os.path.join(ens.dir, f"data{victim}")
        assert _snapshot_zxids(data_dir)[-1] & 0xFFFFFFFF >= missed


def _big_tree(nodes: int, data_bytes: int) -> DataTree:
    tree = DataTree()
    for i in range(1, nodes + 1):
        hdr = R.TxnHeader(0x42, i, i, 1000 + i, OpCode.create)
        tree.apply(hdr, R.CreateTxn(f"/big{i}", bytes([i % 251]) * data_bytes,
                                    list(OPEN_ACL_UNSAFE), False, -1))
    return tree


def test_other_links_are_served_while_a_large_image_is_written():
    # Issue 19: a learner's SNAP of 1M znodes (a 190 MB image) stopped the
    # leader for a quarter of a second: the image was joined and handed to
    # the socket whole, in one loop turn. Now it goes a part per turn, each
    # once the link's buffer drained. Learner 2 reads its SNAP slowly; between
    # its reads learner 3 (the bystander) gets a PING through the same leader
    # loop, and the leader never holds more than the link's bound for 2.
    async def run():
        changed = asyncio.Event()
        at_leader: list = []
        leader = QuorumTransport(lambda s, pkt: (at_leader.append(s), changed.set()),
                                 lambda s: None)
        port = await leader.listen("127.0.0.1", 0)
        got = {3: []}
        bystander = await _pair(leader, port, 3, got, changed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(P.encode_packet(P.learner_info(T.FOLLOWERINFO, 2, 0, 0)))
        await _until(changed, lambda: sorted(at_leader) == [2, 3])
        tree = _big_tree(320, 100_000)             # a 32 MB image, many times the bound
        sessions = {0x10: 4000}
        expected = P.snapshot_bytes(tree, sessions)
        later = P.proposal(R.TxnHeader(0x42, 1, 321, 0, OpCode.create),
                           R.CreateTxn("/x", b"", list(OPEN_ACL_UNSAFE), False, -1))
        leader.send(2, P.packet(T.SNAP, 320, ForkedImage(tree, sessions)))
        leader.send(2, later)
        leader.flush()
        link = leader._links[2]
        stream_len = len(P.encode_packet(P.packet(T.SNAP, 320, expected))) \
            + len(P.encode_packet(later))
        received = bytearray()
        served_while_image_under_way = pings = 0
        buffered_max = 0
        while len(received) < stream_len:
            pings += 1
            leader.send(3, P.packet(T.PING, pings))
            leader.flush()
            await _until(changed, lambda: len(got[3]) == pings)
            if 0 < len(received) < len(expected):
                served_while_image_under_way += 1
            buffered_max = max(buffered_max, link.writer.transport.get_write_buffer_size())
            received += await reader.read(256 * 1024)
        assert served_while_image_under_way > 0
        assert buffered_max <= CONNECTION_WRITE_BUFFER_HIGH, buffered_max
        pkts = P.PacketDecoder().feed(bytes(received))
        assert [p.type for p in pkts] == [T.SNAP, T.PROPOSAL]
        assert pkts[0].zxid == 320 and pkts[0].data == expected and pkts[1] == later
        writer.close()
        await bystander.aclose()
        await leader.aclose()

    asyncio.run(run())


def test_the_image_writer_does_not_keep_the_leaders_sockets(monkeypatch):
    """The forked SNAP image writer closes the sockets it inherited (client
    port, client and quorum links), so a leader that dies while it writes
    frees its port and its connections at once (see the snapshot writer's
    test in test_storage_snapshots.py). The writer here sleeps instead."""
    import socket
    import time

    import pytest

    from zabpy.runtime.snap_image import SnapImageError
    from zabpy.testing import wait_for

    listener = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr(P, "snapshot_bytes", lambda tree, sessions: time.sleep(60) or b"")

    async def run():
        image = ForkedImage(_tree(3), {})
        try:
            await asyncio.to_thread(wait_for, lambda: not sockets_of(image.pid), 10)
        finally:
            os.kill(image.pid, 9)
        with pytest.raises(SnapImageError):
            await image.wait()

    try:
        assert sockets_of(os.getpid())
        asyncio.run(run())
    finally:
        listener.close()
