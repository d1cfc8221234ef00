"""Fairness in an ensemble (issue 12): a 10,000-op multi is prepared and
applied in parts on the leader and applied (and decoded) in parts on the
learners (zabpy/server/sliced.py), so that quorum traffic and other sessions
are served between the parts. With test ticks (tickTime 200 ms, syncLimit 5:
a learner not heard from for a second is dropped) the leader keeps its
quorum, a bystander on another member is served while the multis are in
flight, and the multis stay atomic as a follower's readers see them (Zab
paper 3.2 "primary order": a txn is delivered whole, in zxid order).
Asserted on what clients see and on who leads, never on timings
(``python -m bench.fairness --ensemble 3`` measures the latency)."""

from __future__ import annotations

import select
import struct

import pytest

from rawclient import RawClient, expect_event_before_new_data, multi_body
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyEnsemble, four_letter_word

OPS = 10_000
MULTIS = 4
ACL = [R.ACL(31, R.Id("world", "anyone"))]


@pytest.fixture(scope="module")
def ens():
    # sessions of 30 s: a client waiting for its multi on a loaded machine
    # sends nothing meanwhile (the default maximum is 20 ticks: 4 s)
    with ZabpyEnsemble(3, tick_time_ms=200, sync_limit=5,
                       extra="maxSessionTimeout=30000\nmaxClientCnxns=0") as e:
        yield e


def read_pair(first: str, last: str) -> bytes:
    """A multiRead of two paths: one read of both, answered at one point."""
    return b"".join(R.MultiHeader(OpCode.getData, False, -1).to_bytes()
                    + R.GetDataRequest(p, False).to_bytes() for p in (first, last)) \
        + R.MultiHeader(-1, True, -1).to_bytes()


def pair_errors(body: bytes) -> tuple[int, int]:
    r = Reader(body)
    errs = []
    for _ in range(2):
        h = R.MultiHeader.read(r)
        if h.type == OpCode.error:
            errs.append(R.ErrorResponse.read(r).err)
        else:
            R.GetDataResponse.read(r)
            errs.append(0)
    return errs[0], errs[1]


def srvr(ens: ZabpyEnsemble, sid: int) -> dict[str, str]:
    text = four_letter_word("127.0.0.1", ens.client_ports[sid], "srvr", 10)
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def roles(ens: ZabpyEnsemble) -> dict[int, tuple[str, int]]:
    """Each member's mode and the epoch of its last zxid."""
    out = {}
    for sid in ens.sids:
        s = srvr(ens, sid)
        out[sid] = (s["Mode"], int(s["Zxid"], 16) >> 32)
    return out


def replied(c: RawClient) -> bool:
    return bool(select.select([c.sock], [], [], 0)[0])


def children_count(body: bytes) -> int:
    return struct.unpack_from(">i", body)[0]


def client(ens: ZabpyEnsemble, sid: int) -> RawClient:
    c = RawClient(ens.client_ports[sid], timeout=60)
    c.handshake(timeout_ms=30_000)
    return c


def run_multis(ens, agg_sid: int, by_sid: int, root: str, multis: int = MULTIS
               ) -> tuple[int, dict, dict]:
    """``multis`` big multis from a session on ``agg_sid`` (creating, then
    deleting, ``OPS`` children of ``root``); meanwhile a session on ``by_sid``
    reads another node, and reads ``root``'s children and two of the
    multi's nodes in one multiRead: each read sees a multi whole or not at
    all. Returns how many bystander reads were answered while a multi was
    in flight, and each member's mode and epoch before and after."""
    agg = client(ens, agg_sid)
    by = client(ens, by_sid)
    agg.call(OpCode.create, R.CreateRequest(root, b"", ACL, 0))
    hdr, _ = by.call(OpCode.create, R.CreateRequest(root + "-other", b"o", ACL, 0))
    assert hdr.err == 0
    before = roles(ens)   # after a write: the zxids carry the current epoch
    paths = [f"{root}/n{i:05d}" for i in range(OPS)]
    bodies = (multi_body(paths, True), multi_body(paths, False))
    pair = read_pair(paths[0], paths[-1])
    served = 0
    for attempt in range(multis):
        create = attempt % 2 == 0
        xid = agg.send(OpCode.multi, bodies[attempt % 2])
        # the same session's next read is answered after the multi, with all of it
        agg.send(OpCode.getChildren, R.GetChildrenRequest(root, False))
        while not replied(agg):
            hdr, body = by.call(OpCode.getData, R.GetDataRequest(root + "-other", False))
            assert hdr.err == 0 and body[4:5] == b"o"
            if not replied(agg):
                served += 1
            hdr, body = by.call(OpCode.getChildren, R.GetChildrenRequest(root, False))
            assert hdr.err == 0 and children_count(body) in (0, OPS), children_count(body)
            hdr, body = by.call(OpCode.multiRead, pair)
            first, last = pair_errors(body)
            assert first == last, (first, last)   # both nodes, or neither
        hdr, _ = agg.recv_reply()
        assert (hdr.xid, hdr.err) == (xid, 0)
        hdr, body = agg.recv_reply()
        assert (hdr.xid, children_count(body)) == (xid + 1, OPS if create else 0)
    agg.close()
    by.close()
    return served, before, roles(ens)


def members(ens: ZabpyEnsemble) -> tuple[int, int, int]:
    leader = ens.leader()
    assert leader is not None
    f1, f2 = [s for s in ens.sids if s != leader]
    return leader, f1, f2


def test_multis_through_a_follower_keep_the_leader_and_serve_a_bystander(ens):
    leader, f1, f2 = members(ens)
    served, before, after = run_multis(ens, f1, f2, "/via-follower")
    # Zab 3.1: no member went LOOKING and no new epoch began
    assert after == before and before[leader][0] == "leader", (before, after, ens.diagnosis())
    assert served > 0, ens.diagnosis()


def test_multis_on_the_leader_keep_it_and_serve_a_bystander(ens):
    leader, f1, f2 = members(ens)
    served, before, after = run_multis(ens, leader, f2, "/on-leader", multis=2)
    assert after == before and before[leader][0] == "leader", (before, after, ens.diagnosis())
    assert served > 0, ens.diagnosis()


def test_sync_after_a_big_multi_sees_it(ens):
    """A sync() pipelined behind a multi the leader prepares in parts is
    answered after it, with a zxid at least the multi's: the leader hands a
    forwarded sync to ZAB in its place among the requests before it
    (ZooKeeper's ProposalRequestProcessor), not on receipt."""
    _, f1, _ = members(ens)
    c = client(ens, f1)
    c.call(OpCode.create, R.CreateRequest("/sync-after", b"", ACL, 0))
    paths = [f"/sync-after/n{i:04d}" for i in range(2000)]
    for create in (True, False):
        xid = c.send(OpCode.multi, multi_body(paths, create))
        c.send(OpCode.sync, R.SyncRequest("/sync-after"))
        hdr_multi, _ = c.recv_reply()
        hdr_sync, _ = c.recv_reply()
        assert (hdr_multi.xid, hdr_multi.err, hdr_sync.xid, hdr_sync.err) == (xid, 0, xid + 1, 0)
        assert hdr_sync.zxid >= hdr_multi.zxid
    c.close()


CHILDREN = 15_000   # > limits.CHILDREN_ENCODE_PER_PART: encoded in parts


@pytest.mark.parametrize("where", ["follower", "leader"])
def test_a_long_child_list_is_listed_right_while_bystanders_are_served(ens, where):
    """The first getChildren2 after a change re-encodes a long list: it is
    encoded a part per loop turn, then answered from the cache it leaves,
    which holds the change (the same session's create or delete pipelined
    before it) and is dropped by the next one."""
    leader, f1, f2 = members(ens)
    agg_sid = leader if where == "leader" else f1
    root = f"/long-{where}"
    agg = client(ens, agg_sid)
    by = client(ens, agg_sid)   # the same member: its loop does the encoding
    agg.call(OpCode.create, R.CreateRequest(root, b"", ACL, 0))
    for start in range(0, CHILDREN, 5000):
        hdr, body = agg.call(OpCode.multi, multi_body([f"{root}/c{i:05d}" for i in
                                                       range(start, start + 5000)], True))
        assert hdr.err == 0
    hdr, _ = by.call(OpCode.create, R.CreateRequest(root + "-other", b"o", ACL, 0))
    served = 0
    for attempt in range(6):
        extra = f"{root}/x"
        if attempt % 2 == 0:
            agg.send(OpCode.create, R.CreateRequest(extra, b"", ACL, 0))
        else:
            agg.send(OpCode.delete, R.DeleteRequest(extra, -1))
        xid = agg.send(OpCode.getChildren2, R.GetChildren2Request(root, False))
        while not replied(agg):
            hdr, _ = by.call(OpCode.getData, R.GetDataRequest(root + "-other", False))
            assert hdr.err == 0
            served += 1
        hdr, _ = agg.recv_reply()
        assert hdr.err == 0
        hdr, body = agg.recv_reply()
        assert hdr.xid == xid and hdr.err == 0
        r = Reader(body)
        names = R.GetChildren2Response.read(r)
        want = CHILDREN + (1 if attempt % 2 == 0 else 0)
        assert (len(names.children), names.stat.numChildren) == (want, want)
        assert ("x" in names.children) == (attempt % 2 == 0)
    assert served > 0
    agg.close()
    by.close()


WATCHERS = 1100   # > limits.WATCH_EVENTS_PER_PART: a follower hands the events out in parts


def test_a_watch_storm_on_a_follower_keeps_event_before_data(ens):
    """One setData fires 1,100 watches on a follower: the events go out a
    part per loop turn (as on a standalone server or the leader), later
    commits wait, and each watcher gets its event exactly once, before any
    read that shows the new data."""
    _, f1, _ = members(ens)
    writer = client(ens, f1)
    writer.call(OpCode.create, R.CreateRequest("/storm", b"old", ACL, 0))
    watchers = []
    for _ in range(WATCHERS):
        w = RawClient(ens.client_ports[f1], timeout=60)
        w.handshake(timeout_ms=30_000)
        w.send(OpCode.getData, R.GetDataRequest("/storm", True))
        watchers.append(w)
    for w in watchers:
        assert w.recv_reply()[0].err == 0
    xid = writer.send(OpCode.setData, R.SetDataRequest("/storm", b"new", -1))
    writer.send(OpCode.create, R.CreateRequest("/storm-after", b"", ACL, 0))
    for w in watchers:
        w.send(OpCode.getData, R.GetDataRequest("/storm", False))
    for w in watchers:
        expect_event_before_new_data(w)
    assert writer.recv_reply()[0].xid == xid
    assert writer.recv_reply()[0].err == 0      # the commit after the storm is applied
    for w in watchers:
        w.close()
    writer.close()


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_closing_a_session_with_many_ephemerals_is_whole_on_every_member(ens, where):
    """A closeSession that deletes more ephemerals than one part takes is
    applied in parts on every member (sliced.SlicedClose): a reader on the
    leader sees all of them or none while the session on ``where`` closes,
    the leader keeps its quorum, and every member ends with none."""
    leader, f1, f2 = members(ens)
    owner_sid, by_sid = (leader, leader) if where == "leader" else (f1, leader)
    root = f"/closing-{where}"
    n = 2_000
    owner = client(ens, owner_sid)
    by = client(ens, by_sid)
    hdr, _ = owner.call(OpCode.create, R.CreateRequest(root, b"", ACL, 0))
    assert hdr.err == 0
    body = b"".join(R.MultiHeader(OpCode.create, False, -1).to_bytes()
                    + R.CreateRequest(f"{root}/e{i:05d}", b"", ACL, 1).to_bytes()
                    for i in range(n)) + R.MultiHeader(-1, True, -1).to_bytes()
    hdr, _ = owner.call(OpCode.multi, body)
    assert hdr.err == 0
    before = roles(ens)
    xid = owner.send(OpCode.closeSession)
    seen = set()
    while not replied(owner):
        hdr, reply = by.call(OpCode.getChildren, R.GetChildrenRequest(root, False))
        assert hdr.err == 0
        seen.add(children_count(reply))
    hdr, _ = owner.recv_reply()
    assert (hdr.xid, hdr.err) == (xid, 0)
    owner.close()
    assert seen <= {0, n}, seen
    by.call(OpCode.sync, R.SyncRequest(root))
    hdr, reply = by.call(OpCode.getChildren, R.GetChildrenRequest(root, False))
    assert children_count(reply) == 0
    for sid in ens.sids:
        c = client(ens, sid)
        c.call(OpCode.sync, R.SyncRequest(root))
        hdr, reply = c.call(OpCode.getChildren, R.GetChildrenRequest(root, False))
        assert children_count(reply) == 0, sid
        c.close()
    by.close()
    assert roles(ens) == before, (before, ens.diagnosis())


FOLLOWER_EPHEMERALS = 20_000   # 40 parts of limits.CLOSE_SESSION_DELETES_PER_PART


def test_a_follower_applies_a_big_close_in_parts_and_serves_meanwhile(ens):
    """Issue 19 on a learner: a committed closeSession of a session (on the
    leader) owning 20,000 ephemerals is applied in parts on a follower too,
    and stays one txn to that follower's readers (Zab paper 3.2: a txn is
    delivered whole, in zxid order). A read of the parent sent while it is
    under way waits for all of it (and sees no child), while another
    session on the same follower is answered meanwhile, which can happen
    only when the follower applies the close a part per loop turn; a read
    answered at once sees every child or none."""
    leader, _, f2 = members(ens)
    root = "/closing-seen-on-follower"
    n = FOLLOWER_EPHEMERALS
    owner = client(ens, leader)
    hdr, _ = owner.call(OpCode.create, R.CreateRequest(root, b"", ACL, 0))
    assert hdr.err == 0
    hdr, _ = owner.call(OpCode.create, R.CreateRequest(root + "-other", b"o", ACL, 0))
    assert hdr.err == 0
    for start in range(0, n, 5000):
        body = b"".join(R.MultiHeader(OpCode.create, False, -1).to_bytes()
                        + R.CreateRequest(f"{root}/e{i:05d}", b"", ACL, 1).to_bytes()
                        for i in range(start, start + 5000)) \
            + R.MultiHeader(-1, True, -1).to_bytes()
        hdr, _ = owner.call(OpCode.multi, body)
        assert hdr.err == 0
    watcher = client(ens, f2)   # reads the parent's stat
    by = client(ens, f2)        # reads elsewhere
    watcher.call(OpCode.sync, R.SyncRequest(root))
    before = roles(ens)
    xid = owner.send(OpCode.closeSession)
    served_while_gated = 0
    left = n
    while left:
        watcher.send(OpCode.exists, R.ExistsRequest(root, False))
        for _ in range(2):
            hdr, body = by.call(OpCode.getData, R.GetDataRequest(root + "-other", False))
            assert hdr.err == 0 and body[4:5] == b"o"
        # After the first round trip the parent's read may have been answered
        # in the same loop turn, its reply not here yet; by the second it was
        # taken long before, so no answer by then means it waits.
        waited = not replied(watcher)
        served_while_gated += waited
        hdr, body = watcher.recv_reply()
        assert hdr.err == 0
        left = R.Stat.read(Reader(body)).numChildren
        assert left in (0, n), left
        if waited:   # answered after the close: none left
            assert left == 0
    hdr, _ = owner.recv_reply()
    assert (hdr.xid, hdr.err) == (xid, 0)
    owner.close()
    assert served_while_gated > 0, ens.diagnosis()
    hdr, reply = by.call(OpCode.getChildren, R.GetChildrenRequest(root, False))
    assert children_count(reply) == 0
    watcher.close()
    by.close()
    assert roles(ens) == before, (before, ens.diagnosis())


SCANNED = 25_000   # > limits.COUNT_NODES_PER_PART and EPHEMERALS_PER_PART: in parts


@pytest.mark.parametrize("where", ["follower", "leader"])
def test_counts_and_ephemerals_in_parts_are_one_state_on_every_role(ens, where):
    """Issue 19: getAllChildrenNumber of 25,000 nodes and getEphemerals of
    a session owning them are computed in parts on a follower and on the
    leader (server/sliced.py, SlicedCount / SlicedEphemerals). A multi
    deleting ten of them, sent from another member while they run, is
    applied before or after each, never in the middle: the count is 25,000
    or 24,990, the list all of them or all but those ten (a read sees one
    state)."""
    leader, f1, f2 = members(ens)
    sid = leader if where == "leader" else f1
    root = f"/scan-{where}"
    c = client(ens, sid)
    other = client(ens, f2)
    c.call(OpCode.create, R.CreateRequest(root, b"", ACL, 0))
    paths = [f"{root}/e{i:05d}" for i in range(SCANNED)]
    for start in range(0, SCANNED, 1000):
        chunk = paths[start:start + 1000]
        for p in chunk:
            c.send(OpCode.create, R.CreateRequest(p, b"", ACL, 1))
        for _ in chunk:
            assert c.recv_reply()[0].err == 0
    gone = paths[-10:]
    c.send(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(root))
    c.send(OpCode.getEphemerals, R.GetEphemeralsRequest(root))
    other.send(OpCode.multi, multi_body(gone, False))   # one txn: all ten or none
    hdr, body = c.recv_reply()
    assert hdr.err == 0 and struct.unpack(">i", body)[0] in (SCANNED, SCANNED - 10)
    hdr, body = c.recv_reply()
    listed = R.GetEphemeralsResponse.read(Reader(body)).ephemerals
    assert hdr.err == 0 and set(listed) in (set(paths), set(paths[:-10]))
    assert other.recv_reply()[0].err == 0
    hdr, body = c.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(root))
    assert struct.unpack(">i", body)[0] == SCANNED - 10
    c.close()
    other.close()
