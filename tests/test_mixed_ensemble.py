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

``ZABPY_MIXED_FULL=1`` runs the whole matrix; CI runs the unmarked params.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from kazoo.exceptions import ConnectionLoss, NodeExistsError, NoNodeError
from kazoo.security import make_digest_acl

from conftest import RawClient, create_req
from mixed_common import (FULL, assert_members_agree, elect, full_only, kazoo, kinds_text,
                          needs_java, report, tree_of, wait_for)
from zabpy.jute.constants import OpCode
from zabpy.testing.mixed import JAVA, ZABPY, MixedEnsemble, sync_kind

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
    pytest.param("jjzj", 1, id="zabpy-leader-java-follower-observer"),
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
