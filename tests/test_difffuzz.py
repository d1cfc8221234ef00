"""The differential fuzzer (zabpy.testing.difffuzz) on a fixed set of seeds,
each against a fresh Java ZooKeeper 3.8 (Debian's package) and a fresh
zabpy server: every reply, reply zxid, watch event (and its place before or
after the reply), session end and the final tree must be equal after
normalising timestamps, session ids and unordered lists.

A failing seed prints the op index, both outcomes, the recent ops and the
command that replays it:

    python -m zabpy.testing.difffuzz --seed N --ops M -v

More seeds: ``python -m zabpy.testing.difffuzz --seeds 50 --from-seed 100``.

Deliberate differences and Java 3.8 bugs the generator steers clear of
(the package docstring has the reasons; each is pinned by a test):

- ZOOKEEPER-4466, one watch mode per (session, path) in Java 3.8 —
  tests/test_watches.py uses one session per mode;
- Java's containsWatcher answering checkWatches for another session's watch
  — tests/test_watches.py (test_recursive_watch_has_a_child_table_half);
- check outside a multi, never answered by Java 3.8.0 — tests/test_ops.py;
- SASL without SASL configured — tests/test_ops.py;
- a wrong-password reconnect while the owner's connection is live —
  tests/test_sessions.py;
- createTTL with a non-TTL mode and a negative ttl: Java 3.8.0 validates it
  as a plain create, logs it, and fail-stops applying it; zabpy answers
  BADARGUMENTS up front — test_create_ttl_negative_ttl_non_ttl_mode below.

Differences found and still open (zabpy.testing.difffuzz.ops.OPEN_DIFFERENCES,
avoided unless ``--open``): a TTL-mode create sub-op after a failed sub-op
(issue 11 item 2 follow-up); createSession with a body on an established
connection (issue 12 item 5 follow-up). Found and fixed: the named
regressions at the bottom of this file.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import difffuzz
from zabpy.testing.difffuzz.client import Frame, connect
from zabpy.testing.difffuzz.generator import Generator
from zabpy.testing.difffuzz.servers import JavaZooKeeper, server_pair

CI_SEEDS = range(5)
CI_OPS = 140

needs_java = pytest.mark.skipif(difffuzz.java_missing() is not None,
                                reason=f"Java ZooKeeper: {difffuzz.java_missing()}")


@needs_java
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_seed(seed):
    diff = difffuzz.run_seed(seed, CI_OPS)
    assert diff is None, "\n" + diff.report()


def test_generator_is_deterministic():
    """The same seed makes the same ops (the servers' answers feed back only
    through ``after``, which this leaves out)."""
    def texts(seed):
        g = Generator(seed)
        return [(op.session, op.text) for op in (g.next() for _ in range(60))]
    assert texts(11) == texts(11)
    assert texts(11) != texts(12)


@needs_java
def test_create_ttl_negative_ttl_non_ttl_mode():
    """A deliberate difference. ZooKeeper 3.8.0's validateTTL only refuses a
    non-negative ttl with a non-TTL mode, so createTTL(flags=0, ttl=-1) goes
    through as a plain create, is logged, and then fails-stops the server
    when the txn is applied ("ttl must be positive"). zabpy refuses it with
    BADARGUMENTS before anything is logged. Both halves are checked, on a
    private Java server."""
    req = R.CreateTTLRequest("/t", b"", [R.ACL(31, R.Id("world", "anyone"))], 0, -1).to_bytes()
    with server_pair() as (zabpy, _):
        c, _resp = connect(zabpy.port, 10000)
        _, rep = c.request(1, OpCode.createTTL, req)
        assert isinstance(rep, Frame) and rep.err == Err.BADARGUMENTS
        _, rep = c.request(2, OpCode.exists, R.ExistsRequest("/t", False).to_bytes())
        assert rep.err == Err.NONODE
        c.abort()
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-")
    java = JavaZooKeeper(tmp)
    try:
        java.start()
        c, _resp = connect(java.port, 10000)
        _, rep = c.request(1, OpCode.createTTL, req)
        assert not isinstance(rep, Frame)             # no answer: the connection dropped
        java.proc.wait(10)                              # and the server stopped itself
        c.abort()
    finally:
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- differences the fuzzer found, as named regressions ------------------------------

@pytest.mark.parametrize("rel", [0, 1 << 40])
def test_set_watches_on_empty_path_sees_the_root(pair, rel):
    """Found by the fuzzer (seed 2, op 33): ZooKeeper's DataTree keeps the
    root under "" as well as "/", so setWatches for "" fires NodeDataChanged /
    NodeCreated / NodeChildrenChanged for "" as the root's zxids say; zabpy
    answered NodeDeleted. The relative zxid is absolute here, the same on both:
    0 (everything changed since) and one far ahead (nothing did)."""
    from conftest import OPEN_ACL
    pair.call(OpCode.setData, R.SetDataRequest("/", b"", -1))   # the root's mzxid > 0
    pair.call(OpCode.create, R.CreateRequest("/difffuzz_root_watch", b"", OPEN_ACL, 0))
    pair.call(OpCode.delete, R.DeleteRequest("/difffuzz_root_watch", -1))
    for lists in (([""], [], []), ([], [""], []), ([], [], [""])):
        for c in (pair.z, pair.j):
            assert c.call(OpCode.setWatches, R.SetWatches(rel, *lists), xid=-8).err == 0
        pair.events()


@pytest.mark.parametrize("subs", [
    [(OpCode.setData, R.SetDataRequest("/", b"m", -1))],                    # body: empty multi
    [(OpCode.delete, R.DeleteRequest("/nope", -1)), (OpCode.check, R.CheckVersionRequest("/", -1))],
    [(OpCode.getData, R.GetDataRequest("/", False)), (OpCode.setData, R.SetDataRequest("/", b"", -1))],
    [(OpCode.exists, R.ExistsRequest("/", False))],                         # no body
    [],
])
def test_multi_read_of_writes_answers_an_empty_multi(pair, subs):
    """Found by the fuzzer (seed 1, op 134): a multiRead made only of write
    ops fails with MARSHALLINGERROR and, in ZooKeeper, still carries the empty
    MultiResponse its loop had made (a done header); a read mixed with writes,
    or an op no multi takes, fails decoding and has no body."""
    from conftest import RawBody, encode_multi
    pair.call(OpCode.multiRead, RawBody(encode_multi(subs)))


@pytest.mark.parametrize("body", [b"", b"\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x16server."])
def test_malformed_reconfig_takes_no_zxid(pair, body):
    """Found by the fuzzer (seed 2042, op 9): ZooKeeper decodes a reconfig
    before it takes a zxid, so a malformed one is MARSHALLINGERROR with no
    txn; a malformed create (the comparison after it) takes one, as before."""
    from conftest import RawBody
    pair.call(OpCode.reconfig, RawBody(body))
    pair.call(OpCode.exists, R.ExistsRequest("/", False))
    pair.call(OpCode.create, RawBody(b"\x00\x00\x00\x02/a"))
    pair.call(OpCode.exists, R.ExistsRequest("/", False))
