"""multi and multiRead, side by side with Java ZooKeeper 3.8.0.

zookeeper-facts.md §1.1 (multi semantics): a failed multi is atomic, still
takes one zxid, answers err 0 with per-op results (OK before the failure,
the code at it, RUNTIMEINCONSISTENCY after); multiRead answers per op.
"""

from __future__ import annotations

from conftest import OPEN_ACL, RawBody, create_req, encode_multi
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode


def ttl(path, flags=5, ms=60000):
    return R.CreateTTLRequest(path, b"", OPEN_ACL, flags, ms)


def test_multi_every_write_op(pair, name):
    """Every allowed op; create2 inside a multi answers like create in
    3.8.0 (ZOOKEEPER-4026 came in 3.8.2)."""
    pair.call(OpCode.create, create_req(name))
    pair.multi([(OpCode.create, create_req(f"{name}/a")),
                (OpCode.create2, create_req(f"{name}/b", b"bb")),
                (OpCode.setData, R.SetDataRequest(f"{name}/a", b"x", 0)),
                (OpCode.check, R.CheckVersionRequest(f"{name}/a", 1)),
                (OpCode.delete, R.DeleteRequest(f"{name}/b", -1)),
                (OpCode.createContainer, create_req(f"{name}/cc", b"", 4)),
                (OpCode.createTTL, ttl(f"{name}/tt")),
                (OpCode.create, create_req(f"{name}/s-", b"", 2)),
                (OpCode.create2, create_req(f"{name}/s-", b"", 3))])
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/a", False))


def test_multi_failure_is_atomic(pair, name):
    """Per-op results on failure; nothing applied; one zxid consumed."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.multi([(OpCode.create, create_req(f"{name}/d")),
                (OpCode.check, R.CheckVersionRequest(f"{name}/a", 7)),
                (OpCode.delete, R.DeleteRequest(f"{name}/none", -1))])
    pair.multi([(OpCode.create, create_req(f"{name}/s-", b"", 2)),
                (OpCode.create, create_req(f"{name}/s-", b"", 2)),
                (OpCode.create, create_req(f"{name}/zz/q"))])
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    # the rolled-back sequential creates left no trace in the counter
    pair.call(OpCode.create, create_req(f"{name}/s-", b"", 2))
    pair.multi([(OpCode.create, create_req(f"{name}/e", b"", 1)),
                (OpCode.create, create_req(f"{name}/e/x"))])
    pair.multi([(OpCode.delete, R.DeleteRequest("/zookeeper", -1))])
    pair.multi([(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1", 0)),
                (OpCode.setData, R.SetDataRequest(f"{name}/a", b"2", 0))])
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/a", False))


def test_multi_ops_see_earlier_ops(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.multi([(OpCode.create, create_req(f"{name}/p")),
                (OpCode.delete, R.DeleteRequest(f"{name}/p", -1)),
                (OpCode.create, create_req(f"{name}/p", b"2")),
                (OpCode.setData, R.SetDataRequest(f"{name}/p", b"3", 0)),
                (OpCode.create, create_req(f"{name}/p/q")),
                (OpCode.check, R.CheckVersionRequest(f"{name}/p", 1))])
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/p", False))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))


def test_multi_acl_checks(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/ro", b"", 0, [R.ACL(2, R.Id("world", "anyone"))]))
    pair.multi([(OpCode.check, R.CheckVersionRequest(f"{name}/ro", -1))])       # READ needed
    pair.multi([(OpCode.setData, R.SetDataRequest(f"{name}/ro", b"x", -1)),
                (OpCode.create, create_req(f"{name}/ro/c"))])                   # CREATE needed


def test_empty_multi_and_multi_read(pair):
    pair.multi([])
    pair.multi([], read=True)


def test_multi_with_a_read_or_set_acl_op(pair, name):
    """A read or setACL inside a multi: MARSHALLINGERROR for the whole
    request, one zxid consumed, the session lives on."""
    pair.call(OpCode.create, create_req(name))
    pair.multi([(OpCode.getData, R.GetDataRequest(name, False))])
    pair.multi([(OpCode.create, create_req(f"{name}/w")),
                (OpCode.setACL, R.SetACLRequest(f"{name}/w", OPEN_ACL, -1))])
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))


def test_multi_read_with_a_write_op(pair, name):
    z = pair.z.call(OpCode.multiRead, RawBody(encode_multi([(OpCode.create, create_req(name))])))
    j = pair.j.call(OpCode.multiRead, RawBody(encode_multi([(OpCode.create, create_req(name))])))
    assert z.err == j.err == Err.MARSHALLINGERROR
    pair.call(OpCode.exists, R.ExistsRequest(name, False))


def test_multi_read(pair, name):
    """Per-op results, never all-or-nothing; NOAUTH per op; watches set."""
    pair.call(OpCode.create, create_req(name, b"d"))
    pair.call(OpCode.create, create_req(f"{name}/k"))
    pair.call(OpCode.create, create_req(f"{name}/ro", b"", 0, [R.ACL(2, R.Id("world", "anyone"))]))
    pair.multi([(OpCode.getData, R.GetDataRequest(name, True)),
                (OpCode.getChildren, R.GetChildrenRequest(name, True)),
                (OpCode.getData, R.GetDataRequest(f"{name}/none", False)),
                (OpCode.getChildren, R.GetChildrenRequest(f"{name}/none", False)),
                (OpCode.getData, R.GetDataRequest(f"{name}/ro", False)),
                (OpCode.getChildren, R.GetChildrenRequest(f"{name}/ro", False))], read=True)
    pair.call(OpCode.setData, R.SetDataRequest(name, b"e", -1))
    pair.call(OpCode.create, create_req(f"{name}/k2"))
    assert pair.events() == []  # multiRead sets no watch, whatever the flag says


def test_multi_create_kind_comes_from_flags(pair, name):
    """ZooKeeper's MultiOperationRecord rebuilds each create sub-op from its
    flags (Op.create): the op code only picks the record layout. Flags 4
    make a container answered as create2; a non-TTL createTTL drops its
    TTL; createContainer with flags 1 makes an ephemeral answered as create;
    unknown flags fail that op with BADARGUMENTS."""
    pair.call(OpCode.create, create_req(name))
    cases = [(op, flags) for op in (OpCode.create, OpCode.create2, OpCode.createContainer,
                                   OpCode.createTTL) for flags in (0, 1, 2, 3, 4, 7)]
    for op, flags in cases:
        path = f"{name}/o{int(op)}f{flags}"
        rec = ttl(path, flags) if op == OpCode.createTTL else create_req(path, b"", flags)
        pair.multi([(op, rec)])
        if flags in (0, 1, 4):
            pair.call(OpCode.exists, R.ExistsRequest(path, False))   # ephemeralOwner SELF


def test_multi_plain_create_with_ttl_mode_fails_whole_multi(pair, name):
    """A TTL mode in a create/create2 record cannot be rebuilt: the whole
    multi fails with MARSHALLINGERROR and still consumes a zxid."""
    pair.call(OpCode.create, create_req(name))
    for op in (OpCode.create, OpCode.create2, OpCode.createContainer):
        for flags in (5, 6):
            reply = pair.multi([(OpCode.create, create_req(f"{name}/ok")),
                                (op, create_req(f"{name}/t{int(op)}f{flags}", b"", flags))])
            assert reply[0] == Err.MARSHALLINGERROR
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    pair.call(OpCode.create, create_req(f"{name}/after"))      # the zxids stayed in step
