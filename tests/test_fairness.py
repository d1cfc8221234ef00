"""Fairness (issue 12 item 6): a 10,000-op multi is applied a part per loop
turn (zabpy/server/sliced.py), so other sessions are served while it is in
flight, and it stays atomic: no read sees part of it, and replies within a
session keep their order. Asserted on what clients see, never on timings
(bench/fairness.py measures the latency)."""

from __future__ import annotations

import select
import struct

import pytest

from rawclient import RawClient, expect_event_before_new_data, multi_body
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyServer, mntr

OPS = 10_000
ACL = [R.ACL(31, R.Id("world", "anyone"))]


@pytest.fixture(scope="module")
def server():
    # tickTime 2000: sessions of up to 40 s, as the multis take seconds on a loaded machine
    with ZabpyServer(subprocess=True, config_text="tickTime=2000") as zk:
        yield zk


def outstanding(port: int) -> int:
    return int(mntr(port)["zk_outstanding_requests"])


def replied(c: RawClient) -> bool:
    return bool(select.select([c.sock], [], [], 0)[0])


def children_count(body: bytes) -> int:
    return struct.unpack_from(">i", body)[0]


def test_bystanders_are_served_while_a_big_multi_is_applied(server):
    agg = RawClient(server.port, timeout=60)
    agg.handshake()
    by = RawClient(server.port, timeout=60)
    by.handshake()
    by.call(OpCode.create, R.CreateRequest("/other", b"o", ACL, 0))
    agg.call(OpCode.create, R.CreateRequest("/m", b"", ACL, 0))
    paths = [f"/m/n{i:05d}" for i in range(OPS)]
    bodies = (multi_body(paths, True), multi_body(paths, False))
    served_in_flight = 0
    for attempt in range(6):
        create = attempt % 2 == 0
        xid = agg.send(OpCode.multi, bodies[attempt % 2])
        # the same session's next read is answered after the multi, with all of it
        agg.send(OpCode.getChildren, R.GetChildrenRequest("/m", False))
        while not replied(agg):
            in_flight = outstanding(server.port) >= 1   # the loop answered mntr mid-multi
            try:
                hdr, body = by.call(OpCode.getData, R.GetDataRequest("/other", False))
            except ConnectionError:
                raise AssertionError(server.read_log()[-3000:])
            assert hdr.err == 0 and body[4:5] == b"o"
            if in_flight and not replied(agg):
                served_in_flight += 1
            # a read of a path the multi changes waits for all of it
            hdr, body = by.call(OpCode.getChildren, R.GetChildrenRequest("/m", False))
            assert children_count(body) in (0, OPS)
        hdr, _ = agg.recv_reply()
        assert (hdr.xid, hdr.err) == (xid, 0)
        hdr, body = agg.recv_reply()
        assert (hdr.xid, children_count(body)) == (xid + 1, OPS if create else 0)
    assert served_in_flight > 0, server.read_log()[-3000:]
    agg.close()
    by.close()


def test_a_big_failing_multi_changes_nothing(server):
    """The last op fails: the parts already applied are of a multi logged as
    failed, so the tree is unchanged and every op reports its error."""
    c = RawClient(server.port, timeout=60)
    c.handshake()
    c.call(OpCode.create, R.CreateRequest("/f", b"", ACL, 0))
    paths = [f"/f/n{i:05d}" for i in range(OPS)]
    body = multi_body(paths + ["/missing/x"], True)
    hdr, body = c.call(OpCode.multi, body)
    # ZooKeeper answers a failed multi with err 0 and an error result per op
    first = R.MultiHeader.read(Reader(body))
    assert (hdr.err, first.type, first.err) == (0, OpCode.error, 0)
    hdr, body = c.call(OpCode.getChildren, R.GetChildrenRequest("/f", False))
    assert children_count(body) == 0
    c.close()


def test_watch_events_of_a_big_multi_come_before_its_reply(server):
    c = RawClient(server.port, timeout=60)
    c.handshake()
    c.call(OpCode.create, R.CreateRequest("/w", b"", ACL, 0))
    c.call(OpCode.getChildren, R.GetChildrenRequest("/w", True))
    paths = [f"/w/n{i:05d}" for i in range(OPS)]
    for p in paths[:3]:
        c.call(OpCode.exists, R.ExistsRequest(p, True))
    xid = c.send(OpCode.multi, multi_body(paths, True))
    events = []
    while True:
        frame = c.recv_frame()
        if struct.unpack_from(">i", frame)[0] == -1:
            events.append(frame)
            continue
        assert struct.unpack_from(">i", frame)[0] == xid
        break
    assert len(events) == 4  # NodeCreated x 3, NodeChildrenChanged of /w
    c.close()


def _big(name: str, n: int = 1000) -> list[bytes]:
    return [R.MultiHeader(OpCode.create, False, -1).to_bytes()
            + R.CreateRequest(f"{name}/n{i:04d}", b"", ACL, 0).to_bytes() for i in range(n)]


END = R.MultiHeader(-1, True, -1).to_bytes()


@pytest.mark.parametrize("shape", ["ok", "fails-at-the-end", "truncated", "read-inside",
                                   "no-end-marker"])
def test_a_multi_prepared_in_parts_answers_as_java(pair, name, shape):
    """A multi body over limits.MULTI_SLICED_BODY_BYTES is decoded and
    prepared in parts; its answer is the same as Java's, whatever goes
    wrong where."""
    from conftest import RawBody

    pair.call(OpCode.create, R.CreateRequest(name, b"", ACL, 0))
    ops = _big(name)
    get = R.MultiHeader(OpCode.getData, False, -1).to_bytes() + \
        R.GetDataRequest(name, False).to_bytes()
    body = {"ok": b"".join(ops) + END,
            "fails-at-the-end": b"".join(ops + [ops[0]]) + END,
            "truncated": (b"".join(ops) + END)[:-20],
            "read-inside": b"".join(ops[:500] + [get] + ops[500:]) + END,
            "no-end-marker": b"".join(ops)}[shape]
    assert len(body) > 16 * 1024
    pair.call(OpCode.multi, RawBody(body))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, False))
    pair.call(OpCode.exists, R.ExistsRequest(name + "/n0999", False))


WATCHERS = 1500  # > limits.WATCH_EVENTS_PER_PART: the events go out in parts


def test_a_watch_storm_in_parts_keeps_event_before_data():
    """One setData fires 1,500 watches: the events go out a part per loop
    turn. Each watcher gets its event exactly once, and a read it sends
    after the write never shows the new data before the event arrived."""
    with ZabpyServer(subprocess=True, config_text="tickTime=2000\nmaxClientCnxns=0") as zk:
        writer = RawClient(zk.port, timeout=60)
        writer.handshake()
        writer.call(OpCode.create, R.CreateRequest("/storm", b"old", ACL, 0))
        watchers = []
        for _ in range(WATCHERS):
            w = RawClient(zk.port, timeout=60)
            w.handshake()
            w.send(OpCode.getData, R.GetDataRequest("/storm", True))
            watchers.append(w)
        for w in watchers:
            assert w.recv_reply()[0].err == 0
        xid = writer.send(OpCode.setData, R.SetDataRequest("/storm", b"new", -1))
        for w in watchers:
            w.send(OpCode.getData, R.GetDataRequest("/storm", False))
        for w in watchers:
            expect_event_before_new_data(w)
        assert writer.recv_reply()[0].xid == xid
        for w in watchers:
            w.close()
        writer.close()


EPHEMERALS = 20_000  # 40 parts of limits.CLOSE_SESSION_DELETES_PER_PART


def create_ephemerals(c: RawClient, parent: str, n: int) -> None:
    """``n`` ephemerals under ``parent``, 1,000 requests in flight at a time."""
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        for i in range(start, stop):
            c.send(OpCode.create, R.CreateRequest(f"{parent}/e{i:06d}", b"", ACL, 1))
        for _ in range(start, stop):
            assert c.recv_reply()[0].err == 0


def test_bystanders_are_served_while_a_session_with_many_ephemerals_closes(server):
    """Issue 19: the closeSession of a session owning 20,000 ephemerals is
    prepared (sliced.SlicedClosePrep), put in order and applied
    (sliced.SlicedClose) a part per loop turn, and stays one txn to
    readers. A read of the parent sent while it is under way waits for all
    of it (and sees no child) while other reads are answered meanwhile,
    which can only happen when the close is applied in parts; a read of the
    parent answered at once sees all children or none."""
    owner = RawClient(server.port, timeout=60)
    owner.handshake()
    watcher = RawClient(server.port, timeout=60)   # reads the parent
    watcher.handshake()
    by = RawClient(server.port, timeout=60)        # reads elsewhere
    by.handshake()
    by.call(OpCode.create, R.CreateRequest("/o19", b"o", ACL, 0))
    by.call(OpCode.create, R.CreateRequest("/eph", b"", ACL, 0))
    create_ephemerals(owner, "/eph", EPHEMERALS)
    # listed once, so that the list is cached: a later listing before the
    # close deletes is answered at once, not computed in parts (which would
    # look like waiting), while the close is prepared and ordered in parts
    hdr, body = watcher.call(OpCode.getChildren, R.GetChildrenRequest("/eph", False))
    assert children_count(body) == EPHEMERALS
    xid = owner.send(OpCode.closeSession)
    served_while_gated = 0
    while not replied(owner):
        watcher.send(OpCode.getChildren, R.GetChildrenRequest("/eph", False))
        for _ in range(2):
            hdr, body = by.call(OpCode.getData, R.GetDataRequest("/o19", False))
            assert hdr.err == 0 and body[4:5] == b"o"
        # After the first round trip the parent's read may have been answered
        # in the same loop turn, its reply not here yet; by the second it was
        # taken long before, so no answer by then means it waits.
        waited = not replied(watcher)
        served_while_gated += waited
        hdr, body = watcher.recv_reply()
        assert hdr.err == 0
        assert children_count(body) in (0, EPHEMERALS)
        if waited:   # answered after the close: none left
            assert children_count(body) == 0
    hdr, _ = owner.recv_reply()
    assert (hdr.xid, hdr.err) == (xid, 0)
    hdr, body = watcher.call(OpCode.getChildren, R.GetChildrenRequest("/eph", False))
    assert children_count(body) == 0
    assert served_while_gated > 0, server.read_log()[-3000:]
    for c in (owner, watcher, by):
        c.close()


WIDE = 200_000   # a 2.4 MB child list: limits.REPLY_BYTES_PER_PART many times over


def _names_wire(names: list[str]) -> bytes:
    return struct.pack(">i", len(names)) + b"".join(
        struct.pack(">i", len(n)) + n.encode() for n in names)


def test_a_long_child_list_goes_out_in_its_place_in_the_order(server):
    """Issue 19: a getChildren of 200,000 children is sent a part per loop
    turn (straight from the node's cached list), while another session is
    served; it is the list as of the read's place in the order, byte for
    byte (a child created after it is not in it), the child watch it set
    fires after it, and the same session's next reply shows the new child
    only if it comes after that event (ZooKeeper's guarantee: a client sees
    a watch event before the data that reflects the change). A read of the
    node's stat by the other session meanwhile sees every child or the new
    one too, nothing else. Asserted on order, never on timings."""
    c = RawClient(server.port, timeout=60)
    c.handshake(timeout_ms=40_000)
    assert c.call(OpCode.create, R.CreateRequest("/wide", b"", ACL, 0))[0].err == 0
    names = [f"w{i:06d}" for i in range(WIDE)]
    for start in range(0, WIDE, 5000):   # pipelined: the server works meanwhile
        c.send(OpCode.multi, multi_body([f"/wide/{n}" for n in names[start:start + 5000]], True))
    for _ in range(0, WIDE, 5000):
        assert c.recv_reply()[0].err == 0
    want = _names_wire(names)
    by = RawClient(server.port, timeout=60)
    by.handshake(timeout_ms=40_000)
    hdr, body = c.call(OpCode.getChildren, R.GetChildrenRequest("/wide", False))
    assert hdr.err == 0 and body == want        # the first listing (it fills the cache)
    xid = c.send(OpCode.getChildren, R.GetChildrenRequest("/wide", True))
    c.send(OpCode.getChildren2, R.GetChildren2Request("/wide", False))
    served = 0
    for _ in range(3):   # while this client has read nothing of its replies
        hdr, body = by.call(OpCode.exists, R.ExistsRequest("/wide", False))
        assert hdr.err == 0 and R.Stat.read(Reader(body)).numChildren == WIDE
        served += 1
    hdr, _ = by.call(OpCode.create, R.CreateRequest("/wide/late", b"", ACL, 0))
    assert hdr.err == 0 and served == 3
    frames = []
    for _ in range(3):   # recv_reply would skip the event
        data = c.recv_frame()
        frames.append((R.ReplyHeader.read(Reader(data)), data[16:]))
    (hdr, body), second, third = frames
    assert (hdr.xid, hdr.err) == (xid, 0) and body == want
    event, listing = (second, third) if second[0].xid == -1 else (third, second)
    ev = R.WatcherEvent.read(Reader(event[1]))
    assert (event[0].xid, ev.type, ev.path) == (-1, 4, "/wide")   # NodeChildrenChanged
    assert (listing[0].xid, listing[0].err) == (xid + 1, 0)
    resp = R.GetChildren2Response.read(Reader(listing[1]))
    # answered before the create (then the event follows) or after it
    late = listing is third
    assert len(resp.children) == resp.stat.numChildren == WIDE + late
    assert (resp.children[-1] == "late") == late
    for cl in (c, by):
        cl.close()


COUNT_PARENTS, COUNT_LEAVES = 200, 1000   # 200,200 nodes below /cnt


def _count_of(c: RawClient, path: str) -> int:
    hdr, body = c.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(path))
    assert hdr.err == 0
    return struct.unpack(">i", body)[0]


def test_a_count_of_200k_nodes_serves_bystanders_and_is_one_state(server):
    """Issue 19: getAllChildrenNumber of 200,200 nodes is counted a part per
    loop turn (sliced.SlicedCount): another session's reads are answered
    while it is under way (which can only happen between parts), and the
    count is the tree's at one point of the txn order: deletes in the part
    it counts first, then creates in the part it counts last, sent while it
    runs, can never make it count more nodes than ever existed (they wait
    while they would change it). Asserted on what clients see, never on
    timings."""
    c = RawClient(server.port, timeout=60)
    c.handshake(timeout_ms=40_000)
    assert c.call(OpCode.create, R.CreateRequest("/cnt", b"", ACL, 0))[0].err == 0
    parents = [f"/cnt/b{i:03d}" for i in range(COUNT_PARENTS)]
    c.send(OpCode.multi, multi_body(parents, True))
    leaves = [f"{p}/n{j:04d}" for p in parents for j in range(COUNT_LEAVES)]
    for start in range(0, len(leaves), 5000):   # pipelined
        c.send(OpCode.multi, multi_body(leaves[start:start + 5000], True))
    for _ in range(1 + len(leaves) // 5000):
        assert c.recv_reply()[0].err == 0
    n = COUNT_PARENTS * (COUNT_LEAVES + 1)
    by = RawClient(server.port, timeout=60)
    by.handshake(timeout_ms=40_000)
    served_meanwhile = 0
    for _ in range(5):
        c.send(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/cnt"))
        for _ in range(2):
            assert by.call(OpCode.exists, R.ExistsRequest("/cnt", False))[0].err == 0
        served_meanwhile += not replied(c)
        hdr, body = c.recv_reply()
        assert hdr.err == 0 and struct.unpack(">i", body)[0] == n
    assert served_meanwhile > 0, server.read_log()[-3000:]
    # the part counted first is the last parent's (a stack), the last the first's
    w = RawClient(server.port, timeout=60)
    w.handshake(timeout_ms=40_000)
    moved = 100
    xid = c.send(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/cnt"))
    for j in range(moved):
        w.send(OpCode.delete, R.DeleteRequest(f"{parents[-1]}/n{j:04d}", -1))
    for j in range(moved):
        w.send(OpCode.create, R.CreateRequest(f"{parents[0]}/new{j:03d}", b"", ACL, 0))
    hdr, body = c.recv_reply()
    assert hdr.xid == xid and hdr.err == 0
    assert n - moved <= struct.unpack(">i", body)[0] <= n
    for _ in range(2 * moved):
        assert w.recv_reply()[0].err == 0
    assert _count_of(by, "/cnt") == n
    for cl in (c, by, w):
        cl.close()


def test_ephemerals_of_a_session_owning_25k_are_listed_whole(server):
    """Issue 19: getEphemerals of a session owning 25,000 ephemerals is
    filtered and encoded a part per loop turn (sliced.SlicedEphemerals);
    the list is the session's, whole, for every prefix."""
    owner = RawClient(server.port, timeout=60)
    owner.handshake(timeout_ms=40_000)
    owner.call(OpCode.create, R.CreateRequest("/eph25", b"", ACL, 0))
    owner.call(OpCode.create, R.CreateRequest("/eph25/a", b"", ACL, 0))
    owner.call(OpCode.create, R.CreateRequest("/eph25/b", b"", ACL, 0))
    want = {f"/eph25/{'ab'[i % 2]}/e{i:05d}" for i in range(25_000)}
    create_list(owner, sorted(want))
    for prefix, expect in ((None, want), ("/", want), ("/eph25/a", {p for p in want if
                                                                    p.startswith("/eph25/a")}),
                           ("/nothing", set())):
        hdr, body = owner.call(OpCode.getEphemerals, R.GetEphemeralsRequest(prefix))
        got = R.GetEphemeralsResponse.read(Reader(body)).ephemerals
        assert hdr.err == 0 and len(got) == len(expect) and set(got) == expect
    owner.close()


def create_list(c: RawClient, paths: list[str]) -> None:
    for start in range(0, len(paths), 1000):
        chunk = paths[start:start + 1000]
        for p in chunk:
            c.send(OpCode.create, R.CreateRequest(p, b"", ACL, 1))
        for _ in chunk:
            assert c.recv_reply()[0].err == 0
