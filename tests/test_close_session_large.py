"""A session whose ephemerals' paths take more than jute.maxbuffer (issue 19:
100,000 ephemerals of 13-byte names are 1.7 MB) is closed or expires by a
closeSession txn that does not list them (limits.CLOSE_SESSION_PATHS_BYTES_MAX,
pipeline/prep.py ``close_session_txn``), as ZooKeeper writes it with
zookeeper.closeSessionTxn.enabled=false: the txn fits the log and a PROPOSAL,
every member deletes the session's ephemerals from its own tree, and a
restart replays it. Listing them made a log entry longer than any reader
takes and stopped the server on an assertion (ZOOKEEPER-4306 is the same
flaw in Java 3.8)."""

from __future__ import annotations

import struct

from conftest import RawClient as ConftestRawClient, create_req
from mixed_common import assert_members_agree, elect, kazoo, needs_java, tree_of
from rawclient import RawClient
from zabpy import limits
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.pipeline.prep import close_session_txn
from zabpy.testing import ZabpyEnsemble, ZabpyServer, wait_for
from zabpy.tree.datatree import DataTree
from zabpy.tree.kill_order import KillOrder
from zabpy.testing.mixed import MixedEnsemble

ACL = [R.ACL(31, R.Id("world", "anyone"))]
NAME_CHARS = 990  # a long name, so that a few thousand ephemerals pass the limit
LONG = 1 + limits.CLOSE_SESSION_PATHS_BYTES_MAX // (NAME_CHARS + 10)  # ephemerals over it


# More ephemerals than a close prepares in one loop turn, with names long
# enough (some 200 characters) for their list to pass the limit too: the close is prepared in parts
# (ClosePrep) and its txn has no list.
MANY = limits.CLOSE_SESSION_PATHS_PER_PART + 500


def long_paths(parent: str, n: int) -> list[str]:
    return [f"{parent}/{'x' * NAME_CHARS}{i:05d}" for i in range(n)]


def many_paths(parent: str) -> list[str]:
    name = "y" * (limits.CLOSE_SESSION_PATHS_BYTES_MAX // MANY)
    paths = [f"{parent}/{name}{i:05d}" for i in range(MANY)]
    assert 4 + sum(4 + len(p) for p in paths) > limits.CLOSE_SESSION_PATHS_BYTES_MAX
    return paths


def create_all(c: RawClient, paths: list[str]) -> None:
    for start in range(0, len(paths), 500):
        part = paths[start:start + 500]
        for p in part:
            c.send(OpCode.create, R.CreateRequest(p, b"", ACL, 1))
        for _ in part:
            assert c.recv_reply()[0].err == 0


def count(c: RawClient, path: str) -> int:
    hdr, body = c.call(OpCode.getChildren, R.GetChildrenRequest(path, False))
    assert hdr.err == 0, hdr
    return struct.unpack_from(">i", body)[0]


def test_the_paths_are_listed_up_to_the_limit_and_not_beyond():
    size = limits.CLOSE_SESSION_PATHS_BYTES_MAX
    # a count, then a length and the name's UTF-8 bytes per path
    fits = ["/" + "a" * (size - 4 - 4 - 1)]
    assert len(R.CloseSessionTxn(fits).to_bytes()) == size
    assert close_session_txn(fits).paths2Delete == fits
    assert close_session_txn(["/" + "a" * (size - 4 - 4)]) is None
    # the limit is in bytes, not characters: é takes two
    wide = ["/" + "é" * ((size - 4 - 4 - 1) // 2)]
    assert close_session_txn(wide) is not None
    assert close_session_txn(wide + ["/é"]) is None
    assert close_session_txn([]).paths2Delete == []


def test_the_order_of_a_close_put_together_in_parts_is_the_trees():
    """Issue 19: KillOrder takes a close's paths a part at a time (the
    session's ephemerals, then those of paths2Delete it does not own, each
    once) and yields them as DataTree.kill_order does: deepest first, then
    by path, whether its runs follow one another or interleave, and
    whether a part holds one depth or several."""
    import random

    rng = random.Random(4306)
    names = ["a", "b", "a0", "z", "a.b", "-", "~", "é", "e1", "e2"]
    for case in range(400):
        tree = DataTree()
        made = ["/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
                for _ in range(rng.randint(0, 80))]
        if case % 3 == 0:
            made.sort()   # created in order: the runs follow one another
        owned = dict.fromkeys(made)
        tree.ephemerals[7] = owned
        listed = None
        if case % 2:
            listed = rng.sample(made, k=len(made) // 2) + [
                "/" + rng.choice(names) + "/x" for _ in range(rng.randint(0, 5))]
            listed += listed[:2]   # twice: taken once
        want = tree.kill_order(7, listed)
        order = KillOrder(owned, listed, rng.randint(1, 12))
        while not order.step():
            pass
        assert order.total == len(want)
        assert list(order.paths()) == want, case


def test_closing_a_session_whose_paths_pass_jute_maxbuffer_and_a_restart(tmp_path):
    with ZabpyServer(subprocess=True, data_dir=str(tmp_path)) as zk:
        c = RawClient(zk.port, timeout=60)
        c.handshake()
        c.call(OpCode.create, R.CreateRequest("/big", b"", ACL, 0))
        owner = RawClient(zk.port, timeout=60)
        owner.handshake()
        create_all(owner, many_paths("/big"))
        assert count(c, "/big") == MANY
        hdr, _ = owner.call(OpCode.closeSession)
        assert hdr.err == 0
        assert count(c, "/big") == 0
        assert "ephemerals are not listed in the txn" in zk.read_log()
        c.close()
        owner.close()
        zk.restart()  # the log replays the close without its list
        c = RawClient(zk.port, timeout=60)
        c.handshake()
        assert count(c, "/big") == 0
        hdr, _ = c.call(OpCode.create, R.CreateRequest("/after", b"", ACL, 0))
        assert hdr.err == 0
        c.close()


def test_an_ensemble_expires_a_session_whose_paths_pass_jute_maxbuffer():
    """The leader expires the session (its owner's connection is gone) and
    proposes the close; both followers apply it, and the ensemble keeps its
    leader and takes writes."""
    with ZabpyEnsemble(3, tick_time_ms=200, sync_limit=5,
                       extra="maxSessionTimeout=30000") as ens:
        leader = ens.leader()
        followers = [s for s in ens.sids if s != leader]
        owner = RawClient(ens.client_ports[followers[0]], timeout=60)
        owner.handshake(timeout_ms=2000)
        owner.call(OpCode.create, R.CreateRequest("/big", b"", ACL, 0))
        create_all(owner, many_paths("/big"))
        readers = {}
        for sid in ens.sids:
            readers[sid] = RawClient(ens.client_ports[sid], timeout=60)
            readers[sid].handshake(timeout_ms=30_000)
            wait_for(lambda: count(readers[sid], "/big") == MANY, timeout=30)
        owner.close()  # no closeSession: the session expires
        for sid in ens.sids:
            wait_for(lambda: count(readers[sid], "/big") == 0, timeout=60,
                     what=f"member {sid} deleted the expired session's ephemerals")
        assert ens.leader() == leader, ens.diagnosis()
        hdr, _ = readers[followers[1]].call(OpCode.create, R.CreateRequest("/after", b"", ACL, 0))
        assert hdr.err == 0
        assert "ephemerals are not listed in the txn" in ens.log(leader)
        for c in readers.values():
            c.close()


@needs_java
def test_java_followers_take_the_close_without_its_list_from_a_zabpy_leader():
    """A zabpy leader (member 3) with two Java 3.8 followers expires such a
    session: its closeSession PROPOSAL has no record, which Java reads as
    the pre-3.6 form (its SerializeUtils: EOF, no CloseSessionTxn) and kills
    the session from its own tree; a Java follower restarted replays it from
    its log the same way."""
    ens = MixedEnsemble("jjz", extra="maxSessionTimeout=30000")
    try:
        elect(ens, [3, 1, 2])
        assert ens.leader() == 3, ens.diagnosis()
        raw = ConftestRawClient(ens.client_ports[1], timeout_ms=2000)
        assert raw.call(OpCode.create, create_req("/big")).err == 0
        paths = long_paths("/big", LONG)
        for start in range(0, LONG, 200):
            xids = [raw.submit(OpCode.create, create_req(p, b"", flags=1))
                    for p in paths[start:start + 200]]
            assert all(raw.read_reply(x).err == 0 for x in xids)
        assert len(tree_of(ens, 3, "/big")) == LONG
        raw.abort()   # the session expires on the leader
        for sid in ens.sids:
            c = kazoo(ens.host(sid))
            wait_for(lambda: not c.get_children("/big"), 60,
                     what=f"the expired session's ephemerals gone on member {sid}")
            c.stop()
            c.close()
        assert ens.leader() == 3, ens.diagnosis()
        ens.stop(1)
        ens.start(1)
        ens.wait_caught_up(1)
        assert_members_agree(ens, "/big", {})
    finally:
        ens.__exit__()
