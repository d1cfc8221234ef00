"""The election connection manager's rules (facts 3.1) and the asyncio transport."""

import asyncio
import gc
import random
import socket
import struct
import warnings

import pytest

from zabpy.election import (FastLeaderElection, FrameDecoder, LinkDecision, MajorityQuorum,
                            Notification, SendQueues, ServerState, decide_link, encode_frame,
                            encode_initial_message, parse_initial_message)
from zabpy.jute import DecodeError
from zabpy.limits import ELECTION_PACKET_BYTES_MAX
from zabpy.runtime.election_transport import ElectionTransport, drive_election
from zabpy.testing.server import free_ports


# ---- initial message (facts 3.1: protocolVersion, sid, addr length 1..2048, addr) ----

def test_initial_message_golden_bytes():
    data = encode_initial_message(3, "127.0.0.1:3888")
    assert data == (struct.pack(">q", -65536) + struct.pack(">q", 3) + struct.pack(">i", 14)
                    + b"127.0.0.1:3888")
    msg, used = parse_initial_message(data + b"extra")
    assert (msg.sid, msg.addr, msg.protocol_version, used) == (3, "127.0.0.1:3888", -65536, 34)


def test_initial_message_incremental_and_legacy():
    data = encode_initial_message(7, "h:1")
    for cut in range(len(data)):
        assert parse_initial_message(data[:cut]) is None
    # Legacy form: a non-negative first long is the sid and nothing follows.
    msg, used = parse_initial_message(struct.pack(">q", 5))
    assert (msg.sid, msg.addr, used) == (5, "", 8)


@pytest.mark.parametrize("raw", [
    struct.pack(">qqi", -1, 1, 3) + b"h:1",              # unknown protocol version
    struct.pack(">qqi", -65536, 1, 0),                    # empty address
    struct.pack(">qqi", -65536, 1, 2049) + b"x" * 2049,   # address too long
    struct.pack(">qqi", -65536, 1, 4) + b"host",          # no port
    struct.pack(">qqi", -65536, 1, 6) + b"h:port",        # bad port
])
def test_initial_message_rejects_malformed(raw):
    with pytest.raises(DecodeError):
        parse_initial_message(raw)


# ---- who keeps the link (facts 3.1) ----

def test_only_larger_to_smaller_link_survives():
    assert decide_link(5, 3, initiated_by_me=True) is LinkDecision.KEEP
    assert decide_link(3, 5, initiated_by_me=True) is LinkDecision.CLOSE
    assert decide_link(3, 5, initiated_by_me=False) is LinkDecision.KEEP
    assert decide_link(5, 3, initiated_by_me=False) is LinkDecision.CLOSE_AND_DIAL
    assert decide_link(4, 4, initiated_by_me=False) is LinkDecision.REJECT


# ---- one-message queues, last message re-sent, loopback ----

def test_send_queue_keeps_only_newest_and_resends_last_on_fresh_link():
    q = SendQueues(my_sid=1)
    assert q.put(1, b"self") is False  # loopback, not queued
    q.put(2, b"old")
    q.put(2, b"new")
    assert q.on_link_up(2) == b"new"
    assert q.take(2) is None
    # The link died; nothing newer was queued, so the last message goes again.
    assert q.on_link_up(2) == b"new"
    q.put(2, b"newer")
    assert q.on_link_up(2) == b"newer"
    assert q.have_delivered()
    q.put(3, b"x")
    q.put(2, b"y")
    assert not q.have_delivered()


# ---- framing: int length 1..512 KiB ----

def test_frame_decoder_reassembles_any_split():
    stream = encode_frame(b"abc") + encode_frame(b"d" * 1000) + encode_frame(b"e")
    for step in (1, 3, 7, len(stream)):
        dec, got = FrameDecoder(), []
        for i in range(0, len(stream), step):
            got += dec.feed(stream[i:i + step])
        assert got == [b"abc", b"d" * 1000, b"e"]
        assert dec.buffered() == 0


@pytest.mark.parametrize("length", [0, -1, ELECTION_PACKET_BYTES_MAX + 1])
def test_frame_decoder_rejects_bad_length(length):
    with pytest.raises(DecodeError):
        FrameDecoder().feed(struct.pack(">i", length))


# ---- real sockets: three FLE instances over the asyncio transport ----

async def _elect(histories):
    sids = sorted(histories)
    ports = free_ports(len(sids))
    peers = {sid: ("127.0.0.1", port) for sid, port in zip(sids, ports)}
    quorum = MajorityQuorum(sids)
    transports = {sid: ElectionTransport(sid, peers, redial_ms=20) for sid in sids}
    async with asyncio.TaskGroup() as tg:
        for t in transports.values():
            tg.create_task(t.run())
        for t in transports.values():
            await t.wait_started()
        fles = {}
        for sid in sids:
            zxid, epoch = histories[sid]
            fles[sid] = FastLeaderElection(sid, quorum, zxid, epoch, random.Random(sid))
            fles[sid].start(int(asyncio.get_running_loop().time() * 1000))
        try:
            votes = await asyncio.wait_for(asyncio.gather(
                *(drive_election(fles[sid], transports[sid]) for sid in sids)), 30)
        finally:
            for t in transports.values():
                t.close()
    return dict(zip(sids, votes))


def test_three_servers_over_real_sockets_elect_highest_zxid():
    # Server 1 has the highest zxid, so it wins although its sid is lowest.
    votes = asyncio.run(_elect({1: ((1 << 32) | 9, 1), 2: ((1 << 32) | 5, 1),
                                3: ((1 << 32) | 5, 1)}))
    assert {v.leader for v in votes.values()} == {1}
    assert votes[1].state == ServerState.LEADING
    assert votes[2].state == votes[3].state == ServerState.FOLLOWING


# ---- a link whose connection is already closed (found by the fault harness) ----

def _notification():
    return Notification(ServerState.LOOKING, leader=2, zxid=5, election_epoch=1, peer_epoch=1)


async def _send_on_a_closed_link(dial: bool):
    """Server 2 keeps a link to server 1 (larger sid keeps) whose TCP
    connection is reset by the peer: by the time 2 writes, the transport is
    closed. Under uvloop (``zabpy server``'s loop) a write to a closed
    transport raises RuntimeError, which the link task used to hand to the
    fail-stop: a server of the seed-1010 chaos run exited (status 70) on a
    peer's restart. It is an IO failure of one link: logged, link dropped."""
    port1, port2 = free_ports(2)
    reset = asyncio.Event()

    async def resetting_peer(reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        reset.set()
    peer1 = await asyncio.start_server(resetting_peer, "127.0.0.1", port1)
    broken: list = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda lp, ctx: broken.append(ctx))
    t = ElectionTransport(2, {1: ("127.0.0.1", port1), 2: ("127.0.0.1", port2)},
                          redial_ms=60_000)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(t.run())
        await t.wait_started()
        if dial:
            # The dial's connect completes; the reset comes before its
            # first write (the dial task is held until then).
            original = asyncio.open_connection

            async def open_then_wait_for_reset(*a, **kw):
                pair = await original(*a, **kw)
                await reset.wait()
                for _ in range(50):
                    if pair[1].is_closing():
                        break
                    await asyncio.sleep(0.01)
                return pair
            asyncio.open_connection = open_then_wait_for_reset
            try:
                t.send(1, _notification())
                while 1 in t._dialing:
                    await asyncio.sleep(0.01)
            finally:
                asyncio.open_connection = original
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port1)
            await reset.wait()
            for _ in range(50):
                if writer.is_closing():
                    break
                await asyncio.sleep(0.01)
            t._attach(1, reader, writer, b"")
            t.send(1, _notification())
            for _ in range(100):
                if 1 not in t.links:
                    break
                await asyncio.sleep(0.01)
        t.close()
    peer1.close()
    return broken, 1 in t.links


@pytest.mark.parametrize("dial", [True, False], ids=["dial", "link"])
def test_a_write_to_a_reset_link_is_an_io_failure_not_a_broken_invariant(dial):
    uvloop = pytest.importorskip("uvloop")
    broken, still_linked = uvloop.run(_send_on_a_closed_link(dial))
    assert broken == [], [c.get("exception") for c in broken]
    assert not still_linked


def test_a_transport_closed_at_once_leaves_no_coroutine_unawaited():
    """Tasks cancelled before their first step (a link dropped, or the
    transport closed, in the turn that spawned them) never ran their
    coroutine: the transport closes it, so nothing is reported as "never
    awaited" when it is collected."""
    ports = free_ports(2)

    async def main():
        t = ElectionTransport(1, {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])})
        t.close()  # before run(): the redial loop is cancelled unstarted
        await t.run()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
