"""zabpy and Java ZooKeeper 3.8 servers in one ensemble (issue 15).

Real processes on 127.0.0.1 (zabpy.testing.mixed.MixedEnsemble): kinds are
written one letter a member, sid 1 first (``j`` Java, ``z`` zabpy); the last
``observers`` sids are observers. A member with the highest sid among the
voters that started its election first becomes the leader (FLE: equal zxids,
the larger sid wins), so ``order`` picks the leader's kind.

What each test checks, and the ZooKeeper behaviour it stands on:
* roles: one leader, the expected modes (Zab "Phase 0", FastLeaderElection);
  writes from a client on every member reach every member (broadcast); a
  leader killed under writes loses no acknowledged write, the others elect
  again, and the old leader rejoins by DIFF.
* sessions: a session created on one kind moves to the other with its
  ephemeral and its watch (setWatches on reconnect); a session abandoned
  on a follower is expired by the leader, whichever kind it is.
* sync: DIFF, SNAP (a learner behind the leader's committedLog with
  snapshotSizeFactor=-1) and TRUNC (a returning old leader that logged a
  proposal nobody else saw) from each kind of leader to the other kind.
* partitions (SIGSTOP): a follower or the leader vanishes and returns.
* start orders: every order elects; the MIXED lines give election times.

``ZABPY_MIXED_FULL=1`` runs the whole matrix; CI runs the unmarked params,
chosen so that each direction is covered once: roles (Java leader, zabpy
follower and observer), sessions (zabpy leader, a session moved Java <->
zabpy, expiry by zabpy), sync (Java -> zabpy DIFF and SNAP, zabpy -> Java
TRUNC), and tests/test_migration.py's Java -> zabpy -> Java. Partitions and
start orders run only in the whole matrix.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from kazoo.exceptions import ConnectionLoss, NodeExistsError
from kazoo.security import make_digest_acl

from conftest import RawClient, create_req
from mixed_common import (assert_members_agree, elect, full_only, kazoo, kinds_text,
                          needs_java, report, tree_of, wait_for)
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.testing.mixed import MixedEnsemble, sync_kind

pytestmark = needs_java

SNAP_EXTRA = "snapshotSizeFactor=-1"   # a learner behind the committed history gets a SNAP
BEHIND = 600                           # > commitLogCount (500) on both kinds


def _leader_first(ens: MixedEnsemble) -> list[int]:
    """Start order that makes the highest voter sid the leader: it starts first."""
    top = max(ens.voters)
    return [top] + [s for s in ens.sids if s != top]


def _writer(client, prefix: str, acked: list[str], stop: threading.Event, errors: list) -> None:
    i = 0
    while not stop.is_set():
        path = f"{prefix}/w{i:06d}"
        try:
            client.create(path, b"x", makepath=True)
            acked.append(path)
        except ConnectionLoss:
            pass  # not acknowledged: may or may not exist
        except NodeExistsError:
            acked.append(path)
        except Exception as e:  # noqa: BLE001 - collected, the test fails on it
            errors.append(repr(e))
        i += 1


# ---- roles, broadcast, leader crash -----------------------------------------------------

ROLES = [
    pytest.param("zzjz", 1, id="java-leader-zabpy-follower-observer"),
    full_only("jjzj", 1, id="zabpy-leader-java-follower-observer"),
    full_only("zzj", 0, id="java-leader-2z1j"),
    full_only("jjz", 0, id="zabpy-leader-1z2j"),
    full_only("zjzjz", 0, id="five-zabpy-leader"),
    full_only("jzjzj", 0, id="five-java-leader"),
    full_only("jzjzjz", 1, id="five-voters-java-leader-zabpy-observer"),
]


@pytest.mark.parametrize("kinds,observers", ROLES)
def test_roles_broadcast_and_leader_crash(kinds, observers):
    ens = MixedEnsemble(kinds, observers=observers)
    try:
        took = elect(ens, _leader_first(ens))
        top = max(ens.voters)
        assert ens.leader() == top, ens.diagnosis()
        for sid in ens.observers:
            assert ens.mode(sid) == "observer"
        report("elect", kinds=kinds_text(ens), observers=observers, order="leader-first",
               seconds=took)

        # Broadcast: a write through every member is seen by every member.
        clients = {sid: kazoo(ens.host(sid)) for sid in ens.sids}
        for sid, c in clients.items():
            c.create(f"/b/{sid}", ens.kinds[sid].encode(), makepath=True)
        assert_members_agree(ens, "/b", {str(s): ens.kinds[s].encode() for s in ens.sids})
        for c in clients.values():
            c.stop()
            c.close()

        # The leader dies under writes: no acknowledged write is lost.
        acked: list[str] = []
        errors: list = []
        stop = threading.Event()
        writer = kazoo(ens.hosts)
        t = threading.Thread(target=_writer, args=(writer, "/w", acked, stop, errors), daemon=True)
        t.start()
        wait_for(lambda: len(acked) >= 30, 30, what="writes before the crash")
        ens.kill(top)
        began = time.monotonic()
        ens.wait_serving()
        took = time.monotonic() - began
        report("re-elect", kinds=kinds_text(ens), killed=ens.kinds[top], new_leader=ens.kinds[ens.leader()],
               seconds=took)
        n = len(acked)
        wait_for(lambda: len(acked) >= n + 30, 60, what="writes after the crash")
        mark = ens.log_size(top)
        ens.start(top)
        ens.wait_caught_up(top)
        stop.set()
        t.join(30)
        writer.stop()
        writer.close()
        assert not errors, errors
        assert sync_kind(ens.log_since(top, mark)) == ["DIFF"], ens.log_since(top, mark)[-3000:]
        tree = assert_members_agree(ens, "/w")
        missing = [p for p in acked if p.rsplit("/", 1)[1] not in tree]
        assert not missing, missing[:10]
    finally:
        ens.__exit__()


# ---- sessions across kinds ----------------------------------------------------------------

SESSIONS = [
    pytest.param("jzz", id="zabpy-leader"),     # leader 3 zabpy; followers 1 Java, 2 zabpy
    full_only("zjj", id="java-leader"),         # leader 3 Java; followers 1 zabpy, 2 Java
]


def _reconnect(raw: RawClient, port: int, watches: list[str]) -> RawClient:
    """The same session on another member, its data watches re-set as a
    client library does after a move (SetWatches, relative to the last zxid seen)."""
    moved = RawClient(port, timeout_ms=20000, session_id=raw.session_id, passwd=raw.passwd,
                      last_zxid=raw.last_zxid)
    assert moved.connect_response.timeOut > 0, "session lost in the move"
    moved.last_zxid = raw.last_zxid
    assert moved.call(OpCode.setWatches, R.SetWatches(raw.last_zxid, watches, [], []),
                      xid=-8).err == 0
    return moved


def _raw_call(raw: RawClient, op: int, rec=None):
    reply = raw.call(op, rec)
    raw.last_zxid = max(raw.last_zxid, reply.zxid)
    return reply


@pytest.mark.parametrize("kinds", SESSIONS)
def test_sessions_move_between_kinds_and_expire_on_the_leader(kinds):
    ens = MixedEnsemble(kinds, extra="maxSessionTimeout=30000")
    try:
        elect(ens, _leader_first(ens))
        assert ens.leader() == 3, ens.diagnosis()
        other = kazoo(ens.host(3))
        other.create("/watched", b"0")
        # A session opened on follower 2, with an ephemeral and a data watch...
        raw = RawClient(ens.client_ports[2], timeout_ms=20000)
        raw.last_zxid = 0
        assert _raw_call(raw, OpCode.create, create_req("/eph", b"", flags=1)).err == 0
        assert _raw_call(raw, OpCode.getData, R.GetDataRequest("/watched", True)).err == 0
        session = raw.session_id
        ens.stop(2)
        raw.abort()
        other.set("/watched", b"1")                  # changed while the session moves
        # ... moves to follower 1, the other kind: the watch fires at once, since
        # the node changed after the client's last zxid (SetWatches catch-up).
        raw = _reconnect(raw, ens.client_ports[1], ["/watched"])
        (ev,) = raw.wait_event(1)
        assert (ev.type, ev.path) == (3, "/watched")   # NodeDataChanged
        other.sync("/")
        assert other.exists("/eph").ephemeralOwner == session
        assert _raw_call(raw, OpCode.getData, R.GetDataRequest("/watched", True)).err == 0
        other.set("/watched", b"2")                  # a watch set on the new kind fires live
        assert raw.wait_event(2)[1].path == "/watched"
        # ... and back to the first kind.
        ens.start(2)
        ens.wait_caught_up(2)
        assert _raw_call(raw, OpCode.getData, R.GetDataRequest("/watched", True)).err == 0
        ens.stop(1)
        raw.abort()
        raw = _reconnect(raw, ens.client_ports[2], ["/watched"])
        other.set("/watched", b"3")
        assert raw.wait_event(1)[0].path == "/watched"
        assert other.exists("/eph").ephemeralOwner == session
        ens.start(1)
        ens.wait_caught_up(1)
        raw.close()                                  # closeSession through a follower
        other.sync("/")
        assert other.exists("/eph") is None

        # A session abandoned on follower 1 is expired by the leader (member 3).
        raw = RawClient(ens.client_ports[1], timeout_ms=1000)
        assert raw.call(OpCode.create, create_req("/abandoned", flags=1)).err == 0
        other.sync("/")
        assert other.exists("/abandoned").ephemeralOwner == raw.session_id
        raw.abort()
        for sid in ens.sids:
            probe = kazoo(ens.host(sid))
            wait_for(lambda: probe.exists("/abandoned") is None, 20,
                     what=f"the expired session's ephemeral gone on member {sid}")
            probe.stop()
            probe.close()
        other.stop()
        other.close()
    finally:
        ens.__exit__()


# ---- sync: DIFF, SNAP, TRUNC in both directions -----------------------------------------------

SYNC = [
    # leader 3 of one kind syncs followers of the other by DIFF and SNAP; then a new
    # leader (1 or 2, the followers' kind) syncs the old leader by TRUNC.
    pytest.param("zzj", id="java-leader-diff-snap-zabpy-leader-trunc"),
    full_only("jjz", id="zabpy-leader-diff-snap-java-leader-trunc"),
]


def _bulk_create(client, prefix: str, n: int) -> None:
    for batch in range(0, n, 100):
        results = [client.create_async(f"{prefix}/{i:05d}", b"b") for i in
                   range(batch, min(n, batch + 100))]
        for r in results:
            r.get(timeout=30)


@pytest.mark.parametrize("kinds", SYNC)
def test_sync_modes_in_both_directions(kinds):
    ens = MixedEnsemble(kinds, extra=SNAP_EXTRA + "\nmaxSessionTimeout=60000")
    try:
        elect(ens, _leader_first(ens))
        assert ens.leader() == 3, ens.diagnosis()
        leader_kind, learner_kind = ens.kinds[3], ens.kinds[1]
        c = kazoo(ens.host(3))
        c.create("/d", b"")

        # DIFF: a follower a few txns behind.
        ens.stop(1)
        _bulk_create(c, "/d", 20)
        mark = ens.log_size(1)
        ens.start(1)
        ens.wait_caught_up(1)
        assert sync_kind(ens.log_since(1, mark)) == ["DIFF"], ens.log_since(1, mark)[-3000:]
        assert_members_agree(ens, "/d")

        # SNAP: a follower behind the leader's committed history (commitLogCount
        # 500), with the log read off (snapshotSizeFactor=-1). The image holds a
        # digest ACL, a live session and its ephemeral: the learner must load all.
        ens.stop(1)
        c.create("/s", b"")
        _bulk_create(c, "/s", BEHIND)
        acl = make_digest_acl("u", "p", all=True)
        c.create("/acl", b"secret", acl=[acl])
        c.create("/live", b"", ephemeral=True)
        mark = ens.log_size(1)
        ens.start(1)
        ens.wait_caught_up(1)
        assert sync_kind(ens.log_since(1, mark)) == ["SNAP"], ens.log_since(1, mark)[-3000:]
        assert len(assert_members_agree(ens, "/s")) == BEHIND
        on1 = kazoo(ens.host(1))
        on1.sync("/")
        assert on1.exists("/live").ephemeralOwner == c.client_id[0]
        on1.add_auth("digest", "u:p")
        assert on1.get_acls("/acl")[0] == [acl]
        assert on1.get("/acl")[0] == b"secret"
        on1.stop()
        on1.close()
        # Txns after every member's newest snapshot: a Java leader's committedLog
        # (the DIFF/TRUNC window) holds only what it replayed from its log.
        c.create("/t", b"")
        _bulk_create(c, "/t", 20)
        c.stop()
        c.close()
        report("sync", leader=leader_kind, learner=learner_kind, modes="DIFF,SNAP")

        # TRUNC: the leader logs a proposal no follower sees (both are stopped
        # with SIGSTOP, and later killed so the bytes in their sockets die),
        # then crashes. The followers elect 2; the old leader returns with a txn
        # nobody committed and must truncate it.
        # A session that outlives the test: its expiry would be a new-epoch txn.
        raw = RawClient(ens.client_ports[3], timeout_ms=60000)
        ens.wait_synced()
        ens.pause(1)
        ens.pause(2)
        raw.submit(OpCode.create, create_req("/never"))
        wait_for(lambda: any(getattr(txn, "path", None) == "/never"
                             for _hdr, txn in ens.logged_txns(3)),
                 20, what="the leader logged /never")
        ens.kill(3)
        raw.abort()
        ens.kill(1)
        ens.kill(2)
        ens.start(1)
        ens.start(2)
        ens.wait_serving([1, 2])
        new_leader = ens.leader()   # 2, unless 1 logged a txn 2 had not when paused
        assert new_leader in (1, 2) and ens.kinds[new_leader] == learner_kind
        # No txn in the new epoch yet (no client connects): ZooKeeper sends TRUNC
        # only when it need not cross an epoch (LearnerHandler: "Cannot send
        # TRUNC ... from different epoch" → SNAP), so the old leader's zxid must
        # be above everything the new leader committed.
        mark = ens.log_size(3)
        ens.start(3)
        ens.wait_caught_up(3)
        assert sync_kind(ens.log_since(3, mark)) == ["TRUNC"], ens.log_since(3, mark)[-3000:]
        c = kazoo(ens.host(3))
        c.create("/after", b"")
        for sid in ens.sids:
            assert tree_of(ens, sid, "/").keys() >= {"after", "d", "s", "acl"}
            assert "never" not in tree_of(ens, sid, "/")
        assert_members_agree(ens, "/d")
        c.stop()
        c.close()
        report("sync", leader=learner_kind, learner=leader_kind, modes="TRUNC")
    finally:
        ens.__exit__()


# ---- partitions (SIGSTOP) ---------------------------------------------------------------------

PARTITION = [
    # voters 1-3, observer 4; the leader is 3
    full_only("zjzj", 1, id="zabpy-leader-java-follower-observer"),
    full_only("jzjz", 1, id="java-leader-zabpy-follower-observer"),
]


@pytest.mark.parametrize("kinds,observers", PARTITION)
def test_partitioned_members_return(kinds, observers):
    ens = MixedEnsemble(kinds, observers=observers)
    try:
        elect(ens, _leader_first(ens))
        assert ens.leader() == 3, ens.diagnosis()
        # A follower and the observer of the other kind than the leader vanish
        # (the observer is the non-voter: its election traffic differs by kind),
        # writes go on, they return and catch up.
        c = kazoo(",".join(ens.host(s) for s in (2, 3)))
        c.create("/p", b"")
        for gone in (1, 4):
            ens.pause(gone)
            for i in range(20):
                c.create(f"/p/{gone}-{i}", b"")
            ens.resume(gone)
            ens.wait_caught_up(gone)
        # The leader vanishes: the others elect among themselves; it returns,
        # finds it lost its quorum, and follows the new leader.
        c.stop()
        c.close()
        c = kazoo(",".join(ens.host(s) for s in (1, 2, 4)))
        ens.pause(3)
        began = time.monotonic()
        ens.wait_serving([1, 2, 4])
        took = time.monotonic() - began
        assert ens.leader() == 2, ens.diagnosis()
        report("partitioned-leader", kinds=kinds_text(ens), old_leader=ens.kinds[3],
               new_leader=ens.kinds[2], seconds=took)
        for i in range(20):
            c.create(f"/p/after-{i}", b"")
        ens.resume(3)
        wait_for(lambda: ens.mode(3) == "follower", 60, what="the old leader following")
        ens.wait_caught_up(3)
        assert ens.leader() == 2
        tree = assert_members_agree(ens, "/p")
        assert len(tree) == 60
        c.stop()
        c.close()
    finally:
        ens.__exit__()


# ---- election from every start order -----------------------------------------------------------

ORDERS = [full_only(kinds, list(order), id=f"{kinds}-{''.join(map(str, order))}")
          for kinds in ("zzj", "jjz", "jjj", "zzz")
          for order in itertools.permutations((1, 2, 3))]


@pytest.mark.parametrize("kinds,order", ORDERS)
def test_election_from_every_start_order(kinds, order):
    """Each member starts only once the one before listens, so the first ones
    may have elected before the last arrives (a late joiner: the settled peers
    answer it) or not (one round with everyone). The voters must agree on one
    leader, and it must be the highest sid when it started first (FLE's vote
    order with equal zxids). The MIXED lines are the election times the note
    compares (all-Java 'jjj' beside the mixed ones)."""
    ens = MixedEnsemble(kinds)
    try:
        took = elect(ens, order)
        leader = ens.leader()
        if order[0] == 3:
            assert leader == 3, ens.diagnosis()
        modes = sorted(ens.mode(s) for s in ens.sids)
        assert modes == ["follower", "follower", "leader"]
        # Kill the leader: the two left elect again.
        ens.kill(leader)
        began = time.monotonic()
        ens.wait_serving()
        again = time.monotonic() - began
        report("election", kinds=kinds, order="".join(map(str, order)), leader=ens.kinds[leader],
               seconds=took, after_leader_killed=again)
    finally:
        ens.__exit__()
