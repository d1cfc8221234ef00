"""Every client op, side by side with Java ZooKeeper 3.8.0.

Each test sends the same raw requests to zabpy and to Debian's ZooKeeper
3.8.0 and asserts equal answers: error code, reply zxid and decoded body,
with zxids taken relative to the pair's start (zookeeper-facts.md §1.1
create/delete check order, §1.6 modes and TTL, §1.8 stat, §1.9 paths).
"""

from __future__ import annotations

import pytest

from conftest import OPEN_ACL, RawBody, create_req
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode

TTL_OPS = (OpCode.createTTL,)
CREATE_OPS = (OpCode.create, OpCode.create2)


def ttl_req(path, flags, ttl, data=b"x", acl=None):
    return R.CreateTTLRequest(path, data, OPEN_ACL if acl is None else acl, flags, ttl)


# ---- create ---------------------------------------------------------------------

@pytest.mark.parametrize("op", CREATE_OPS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3, 4])
def test_create_every_mode(pair, name, op, flags):
    """§1.6: create/create2 in each non-TTL mode; sequential names come from
    the parent's cversion; ephemeralOwner by mode."""
    pair.call(OpCode.create, create_req(name))
    pair.call(op, create_req(f"{name}/n", b"data", flags))
    pair.call(op, create_req(f"{name}/n", b"data", flags))  # NODEEXISTS unless sequential
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/n", False))


@pytest.mark.parametrize("flags", [5, 6])
def test_create_ttl_modes(pair, name, flags):
    """§1.6: TTL modes through createTTL (extendedTypesEnabled on both)."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.createTTL, ttl_req(f"{name}/t", flags, 5000))
    pair.call(OpCode.createTTL, ttl_req(f"{name}/t", flags, 5000))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/t", False))


@pytest.mark.parametrize("op,flags,ttl", [
    (OpCode.createTTL, 5, 0), (OpCode.createTTL, 5, -1), (OpCode.createTTL, 5, 2**40),
    (OpCode.createTTL, 5, 2**40 - 1), (OpCode.createTTL, 6, 1),
    (OpCode.createTTL, 7, 100), (OpCode.createTTL, 1, 100),
    (OpCode.createTTL, 4, 100), (OpCode.createTTL, 2, 100),
])
def test_create_ttl_arguments(pair, name, op, flags, ttl):
    """§1.6: TTL range 1..2^40-1; a ttl with a non-TTL mode is BADARGUMENTS."""
    pair.call(OpCode.create, create_req(name))
    pair.call(op, ttl_req(f"{name}/t", flags, ttl))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))


@pytest.mark.parametrize("op", [OpCode.create, OpCode.create2, OpCode.createContainer])
@pytest.mark.parametrize("flags", [-1, 5, 6, 7, 8, 100, 0, 4])
def test_create_flags(pair, name, op, flags):
    """§1.6: unknown flags → BADARGUMENTS; TTL modes need createTTL;
    createContainer with a non-container flag."""
    pair.call(OpCode.create, create_req(name))
    pair.call(op, create_req(f"{name}/c", b"", flags))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))


BAD_PATHS = ["", "a", "a/b", "/x/", "//x", "/x//y", "/./x", "/x/.", "/x/..", "/.", "/..",
             "/x\u0001", "/x\u007f", "/x\u009f", "/x\ufff0", "/x\ufffe", "/x\U0001F600",
             "/x\ue000", "/x\u0000y"]
GOOD_ODD_PATHS = ["/x.y", "/x..y", "/...", "/x/.y", "/\u00e9t\u00e9", "/x y"]


@pytest.mark.parametrize("path", BAD_PATHS + GOOD_ODD_PATHS)
def test_create_paths(pair, name, path):
    """§1.9: path validation → BADARGUMENTS (checked after the parent lookup)."""
    pair.call(OpCode.create, create_req(name))
    p = name + path if path.startswith("/") else path
    pair.call(OpCode.create, create_req(p))
    pair.call(OpCode.create2, create_req(p, b"", 2))


@pytest.mark.parametrize("path", BAD_PATHS + [None])
def test_every_op_on_bad_path(pair, name, path):
    p = (name + path) if path and path.startswith("/") else path
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.delete, R.DeleteRequest(p, -1))
    pair.call(OpCode.setData, R.SetDataRequest(p, b"x", -1))
    pair.call(OpCode.setACL, R.SetACLRequest(p, OPEN_ACL, -1))
    pair.call(OpCode.getData, R.GetDataRequest(p, False))
    pair.call(OpCode.exists, R.ExistsRequest(p, False))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(p, False))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(p, False))
    pair.call(OpCode.getACL, R.GetACLRequest(p))
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(p))
    if not (p and any(ord(c) > 0xFFFF for c in p)):
        # Java echoes an astral character in CESU-8 (two 3-byte surrogates),
        # which is not UTF-8; zabpy answers proper UTF-8. Not compared.
        pair.call(OpCode.sync, R.SyncRequest(p))


def test_create_sequential_trailing_slash(pair, name):
    """A sequential create may name the parent with a trailing '/'."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(name + "/", b"", 2))
    pair.call(OpCode.create, create_req(name + "/", b"", 0))
    pair.call(OpCode.create, create_req("/", b"", 2))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, False))


@pytest.mark.parametrize("acl", [
    [], None, [R.ACL(31, R.Id("world", "bob"))], [R.ACL(31, R.Id("nosuch", "x"))],
    [R.ACL(31, R.Id("digest", "nocolon"))], [R.ACL(31, R.Id("digest", "a:b:c"))],
    [R.ACL(31, R.Id("ip", "300.1.1.1"))], [R.ACL(31, R.Id("ip", "10.0.0.0/40"))],
    [R.ACL(31, R.Id("ip", "10.0.0.0/8"))], [R.ACL(31, R.Id("auth", ""))],
    [R.ACL(31, R.Id("super", "x"))], [R.ACL(0, R.Id("world", "anyone"))],
    [R.ACL(99, R.Id("world", "anyone"))],
    [R.ACL(1, R.Id("world", "anyone")), R.ACL(1, R.Id("world", "anyone"))],
    [R.ACL(1, R.Id("world", "anyone")), R.ACL(2, R.Id("world", "anyone"))],
    [R.ACL(31, R.Id("x509", "CN=x"))], [R.ACL(31, R.Id("sasl", "u"))],
    [R.ACL(31, R.Id("digest", "u:p"))],
])
def test_create_acl_validation(pair, name, acl):
    """§1.7: INVALIDACL for empty lists and bad ids; duplicates removed."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a", b"", 0, acl))
    pair.call(OpCode.getACL, R.GetACLRequest(f"{name}/a"))
    pair.call(OpCode.setACL, R.SetACLRequest(name, acl, -1))
    pair.call(OpCode.getACL, R.GetACLRequest(name))


def test_create_error_precedence(pair, name):
    """§1.1 create order: flags, ACL, parent, CREATE perm, path, exists,
    ephemeral parent."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/e", b"", 1))
    pair.call(OpCode.create, create_req(f"{name}/ro", b"", 0, [R.ACL(1, R.Id("world", "anyone"))]))
    cases = [
        create_req(f"{name}/missing/x", b"", 9, []),     # flags before ACL
        create_req(f"{name}/missing/x", b"", 0, []),     # ACL before parent
        create_req(f"{name}/missing/x//", b"", 0),       # parent before path
        create_req(f"{name}/ro/x", b"", 0),              # NOAUTH
        create_req(f"{name}/ro/x/", b"", 0),             # NOAUTH before path
        create_req(f"{name}/e/x", b"", 0),               # NOCHILDRENFOREPHEMERALS
        create_req(f"{name}/e", b"", 0),                 # NODEEXISTS
        create_req(f"{name}/e/x/", b"", 2),              # bad path under ephemeral
        create_req(f"{name}/e/", b"", 2),                # sequential under ephemeral
        create_req(f"{name}/ro/", b"", 2),               # sequential under read-only
    ]
    for req in cases:
        pair.call(OpCode.create, req)
    pair.call(OpCode.createTTL, ttl_req(f"{name}/missing/x", 0, 100, acl=[]))
    pair.call(OpCode.createTTL, ttl_req(f"{name}/missing/x", 5, 0, acl=[]))
    pair.call(OpCode.createTTL, ttl_req(f"{name}/missing/x", 5, 100, acl=[]))


def test_children_of_containers_and_ttl_nodes(pair, name):
    """§1.1: TTL and container parents may have children; ephemeral may not."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.createContainer, create_req(f"{name}/c", b"", 4))
    pair.call(OpCode.createTTL, ttl_req(f"{name}/t", 5, 60000))
    pair.call(OpCode.create, create_req(f"{name}/c/x"))
    pair.call(OpCode.create, create_req(f"{name}/t/x"))
    pair.call(OpCode.create, create_req(f"{name}/c/e", b"", 1))
    pair.call(OpCode.create, create_req(f"{name}/c/e/x"))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(f"{name}/c", False))


# ---- delete, setData, setACL ---------------------------------------------------------

def test_delete(pair, name):
    """§1.1 delete order: NOAUTH on parent, NONODE, BADVERSION, NOTEMPTY."""
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.call(OpCode.create, create_req(f"{name}/a/b"))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a", 5))   # BADVERSION before NOTEMPTY
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a", 0))   # NOTEMPTY
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a", -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/zz", 3))  # NONODE
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/zz/y", 3))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a/b", 1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a/b", -2))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a/b", 0))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/a/b", 0))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(f"{name}/a", False))
    pair.call(OpCode.create, create_req(f"{name}/nodel", b"", 0, [R.ACL(1, R.Id("world", "anyone"))]))
    pair.call(OpCode.create, create_req(f"{name}/nodel/x", b"", 0, [R.ACL(31, R.Id("ip", "127.0.0.1"))]))
    pair.call(OpCode.setACL, R.SetACLRequest(f"{name}/nodel", [R.ACL(1, R.Id("world", "anyone"))], -1))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/nodel/x", -1))   # NOAUTH
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/nodel/none", 7))  # NOAUTH before NONODE


@pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"])
def test_delete_and_write_builtins(pair, path):
    pair.call(OpCode.delete, R.DeleteRequest(path, -1))
    pair.call(OpCode.setData, R.SetDataRequest(path, b"x", 7))
    pair.call(OpCode.getData, R.GetDataRequest(path, False))
    pair.call(OpCode.getACL, R.GetACLRequest(path))


def test_set_data_versions(pair, name):
    pair.call(OpCode.create, create_req(name, b"v0"))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"v1", 0))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"v2", 0))   # BADVERSION
    pair.call(OpCode.setData, R.SetDataRequest(name, b"v2", -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, None, 2))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"", -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -5))
    pair.call(OpCode.setData, R.SetDataRequest(name + "/none", b"x", 9))
    pair.call(OpCode.getData, R.GetDataRequest(name, False))


def test_set_acl_aversion(pair, name):
    pair.call(OpCode.create, create_req(name))
    ro = [R.ACL(1, R.Id("world", "anyone"))]
    pair.call(OpCode.setACL, R.SetACLRequest(name, OPEN_ACL, 0))
    pair.call(OpCode.setACL, R.SetACLRequest(name, OPEN_ACL, 0))   # BADVERSION
    pair.call(OpCode.setACL, R.SetACLRequest(name, [], 5))        # INVALIDACL before BADVERSION
    pair.call(OpCode.setACL, R.SetACLRequest(name + "/no", [], 5))  # INVALIDACL before NONODE
    pair.call(OpCode.setACL, R.SetACLRequest(name + "/no", ro, 5))
    pair.call(OpCode.setACL, R.SetACLRequest(name, ro, 1))
    pair.call(OpCode.setACL, R.SetACLRequest(name, OPEN_ACL, 7))   # NOAUTH before BADVERSION
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))    # NOAUTH
    pair.call(OpCode.getACL, R.GetACLRequest(name))
    pair.call(OpCode.getData, R.GetDataRequest(name, False))


# ---- reads ---------------------------------------------------------------------------

def test_reads(pair, name):
    pair.call(OpCode.create, create_req(name, b"root-data"))
    for child in ("b", "a", "c"):
        pair.call(OpCode.create, create_req(f"{name}/{child}", child.encode()))
    pair.call(OpCode.create, create_req(f"{name}/a/x"))
    pair.call(OpCode.create, create_req(f"{name}/a/x/y", None))
    pair.call(OpCode.getData, R.GetDataRequest(name, False))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/a/x/y", False))
    pair.call(OpCode.getData, R.GetDataRequest(f"{name}/none", False))
    pair.call(OpCode.exists, R.ExistsRequest(name, False))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/none", False))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(name, False))
    pair.call(OpCode.getChildren, R.GetChildrenRequest(f"{name}/none", False))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(name))
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(f"{name}/a/x/y"))
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(f"{name}/none"))
    pair.call(OpCode.sync, R.SyncRequest(name))
    pair.call(OpCode.sync, R.SyncRequest(f"{name}/none"))
    pair.call(OpCode.getACL, R.GetACLRequest(f"{name}/none"))


def test_get_all_children_number_of_root(pair):
    z = pair.z.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/zookeeper"))
    j = pair.j.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest("/zookeeper"))
    assert (z.err, z.decode()) == (j.err, j.decode())


def test_get_ephemerals(pair, name):
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/e1", b"", 1))
    pair.call(OpCode.create, create_req(f"{name}/e2", b"", 3))
    pair.call(OpCode.create, create_req(f"{name}/p", b"", 0))
    pair.call(OpCode.create, create_req(f"{name}/p/e3", b"", 1))
    for prefix in (name, f"{name}/e", f"{name}/p", f"{name}/p/", "/nothing", None):
        pair.call(OpCode.getEphemerals, R.GetEphemeralsRequest(prefix))
    # "" and "/" list every ephemeral of this session only
    for prefix in ("", "/"):
        pair.call(OpCode.getEphemerals, R.GetEphemeralsRequest(prefix))


def test_who_am_i(pair):
    pair.call(OpCode.whoAmI)
    pair.z.call(OpCode.auth, R.AuthPacket(0, "digest", b"alice:pw"), xid=-4)
    pair.j.call(OpCode.auth, R.AuthPacket(0, "digest", b"alice:pw"), xid=-4)
    pair.call(OpCode.whoAmI)


def test_check_outside_multi(raw, name):
    """Java 3.8.0 never answers a check sent outside a multi (its reply
    serialisation fails on a null stat and the client hangs; 3.8.4 answers a
    Stat, 3.8.5 UNIMPLEMENTED). zabpy answers it like a write: OK (no body)
    when the version matches, BADVERSION / NONODE otherwise, in order."""
    c = raw()
    c.call(OpCode.create, create_req(name))
    assert c.call(OpCode.check, R.CheckVersionRequest(name, 0)).err == Err.OK
    assert c.call(OpCode.check, R.CheckVersionRequest(name, 3)).err == Err.BADVERSION
    assert c.call(OpCode.check, R.CheckVersionRequest(name + "/no", -1)).err == Err.NONODE
    assert c.call(OpCode.getData, R.GetDataRequest(name, False)).decode().stat.version == 0


@pytest.mark.parametrize("op", [10, 23, 99, 108, 200, -5])
def test_unknown_op_answered_unimplemented(pair, op):
    """An unknown op is answered UNIMPLEMENTED with no body."""
    z, j = pair.z.call(op, RawBody(b"")), pair.j.call(op, RawBody(b""))
    assert (z.err, z.body) == (j.err, j.body) == (Err.UNIMPLEMENTED, b"")


def test_unknown_op_reply_zxid_and_close(pair):
    z, j = pair.z.call(99, RawBody(b"")), pair.j.call(99, RawBody(b""))
    assert z.zxid == j.zxid == -1
    assert pair.j.expect_closed() and pair.z.expect_closed(timeout=1)


@pytest.mark.parametrize("op,body", [
    (OpCode.getData, b"\x00\x00\x00\x10ab"),               # string longer than the frame
    (OpCode.create, b"\x00\x00\x00\x02/a"),                # record cut short
])
def test_malformed_request_body(pair, op, body):
    pair.call(op, RawBody(body))
    # the session goes on (the root's stat would depend on other tests' nodes)
    pair.call(OpCode.exists, R.ExistsRequest("/zookeeper", False))


def test_request_with_trailing_bytes(pair):
    """Extra bytes after a record are ignored by both."""
    pair.call(OpCode.getData, RawBody(R.GetDataRequest("/zookeeper", False).to_bytes() + b"xx"))


def test_reconfig_standalone(pair):
    pair.call(OpCode.reconfig, R.ReconfigRequest(None, None, "server.1=127.0.0.1:1:2", -1))


# ---- stats ---------------------------------------------------------------------------

def test_stat_movement(pair, name):
    """§1.8: czxid/mzxid/pzxid/cversion/aversion/version/numChildren/
    dataLength after each kind of write."""
    p = name
    steps = [
        (OpCode.create, create_req(p, b"abc")),
        (OpCode.create2, create_req(f"{p}/a", b"12345")),
        (OpCode.setData, R.SetDataRequest(p, b"abcdef", -1)),
        (OpCode.setACL, R.SetACLRequest(p, OPEN_ACL, -1)),
        (OpCode.create2, create_req(f"{p}/s-", b"", 2)),
        (OpCode.delete, R.DeleteRequest(f"{p}/a", -1)),
        (OpCode.create2, create_req(f"{p}/s-", b"", 2)),
        (OpCode.create2, create_req(f"{p}/s-", b"", 3)),
        (OpCode.setData, R.SetDataRequest(f"{p}/s-0000000001", None, -1)),
        (OpCode.create, create_req(f"{p}/a")),   # failed write in between
        (OpCode.setData, R.SetDataRequest(p, b"", 99)),
        (OpCode.create2, create_req(f"{p}/s-", b"", 2)),
    ]
    for op, req in steps:
        pair.call(op, req)
        pair.call(OpCode.exists, R.ExistsRequest(p, False))
        pair.call(OpCode.getChildren2, R.GetChildren2Request(p, False))


def test_sequence_suffix_ignores_deletes(pair, name):
    """§1.6: the suffix is the parent's cversion, which deletes do not bump."""
    pair.call(OpCode.create, create_req(name))
    for _ in range(3):
        pair.call(OpCode.create, create_req(f"{name}/q-", b"", 2))
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/q-0000000001", -1))
    pair.call(OpCode.create, create_req(f"{name}/plain"))
    pair.call(OpCode.create, create_req(f"{name}/plain"))  # failed: no bump
    pair.call(OpCode.create, create_req(f"{name}/q-", b"", 2))
    pair.call(OpCode.create, create_req(f"{name}/q-", b"", 3))
    pair.call(OpCode.getChildren2, R.GetChildren2Request(name, False))


def test_failed_writes_consume_zxids(pair, name):
    """§1.1: a failed write is logged as an error txn and takes a zxid."""
    pair.call(OpCode.create, create_req(name))
    for req in (create_req(name), create_req(f"{name}/no/x"), create_req(f"{name}/y", b"", 9)):
        pair.call(OpCode.create, req)
    pair.call(OpCode.delete, R.DeleteRequest(f"{name}/none", -1))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"", 42))
    pair.call(OpCode.setACL, R.SetACLRequest(name, [], -1))
    pair.call(OpCode.create, create_req(f"{name}/after"))
    pair.call(OpCode.exists, R.ExistsRequest(f"{name}/after", False))


def test_builtin_nodes(pair):
    """§1.8: /, /zookeeper, /zookeeper/quota, /zookeeper/config: stats, ACL, data."""
    for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        pair.call(OpCode.getData, R.GetDataRequest(path, False))
        pair.call(OpCode.getACL, R.GetACLRequest(path))
        pair.call(OpCode.getChildren2, R.GetChildren2Request(path, False))
        pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(path))
    z = pair.z.call(OpCode.getACL, R.GetACLRequest("/")).decode()
    j = pair.j.call(OpCode.getACL, R.GetACLRequest("/")).decode()
    assert z.acl == j.acl
    assert (z.stat.czxid, z.stat.aversion, z.stat.version) == (j.stat.czxid, j.stat.aversion,
                                                              j.stat.version)


def test_pipelined_writes_see_each_other(pair, name):
    """Prep sees writes that are prepared but not yet applied."""
    for c in (pair.z, pair.j):
        xids = [c.submit(OpCode.create, create_req(name)),
                c.submit(OpCode.create, create_req(f"{name}/a", b"", 1)),
                c.submit(OpCode.create, create_req(f"{name}/a/x")),
                c.submit(OpCode.create2, create_req(f"{name}/s", b"", 2)),
                c.submit(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1", 0)),
                c.submit(OpCode.setData, R.SetDataRequest(f"{name}/a", b"1", 0)),
                c.submit(OpCode.delete, R.DeleteRequest(f"{name}/a", 1)),
                c.submit(OpCode.getChildren, R.GetChildrenRequest(name, False)),
                c.submit(OpCode.create, create_req(f"{name}/a"))]
        c.results = [c.read_reply(x) for x in xids]
    zr = [pair.zn.reply(r) for r in pair.z.results]
    jr = [pair.jn.reply(r) for r in pair.j.results]
    assert zr == jr


def test_sasl_without_sasl_configured_fails_fast(raw):
    """A SASL token to a server without SASL. ZooKeeper 3.8.0 without a JAAS
    configuration answers an empty token and keeps going, which sends SASL
    clients (kazoo) into an endless exchange; zabpy answers AUTHFAILED and
    closes the connection instead (a deliberate difference)."""
    c = raw()
    reply = c.call(OpCode.sasl, R.GetSASLRequest(b"token"))
    assert (reply.err, reply.zxid) == (Err.AUTHFAILED, 0)
    assert c.expect_closed()


def test_counts_and_ephemerals_computed_in_parts_answer_as_java(pair, name):
    """Issue 19: a getAllChildrenNumber and a getEphemerals larger than one
    part (limits.COUNT_NODES_PER_PART, EPHEMERALS_PER_PART) are computed in
    parts on zabpy (server/sliced.py); the replies are Java's (the order of
    getEphemerals, a Java hash set's, is compared sorted)."""
    from zabpy import limits

    n = max(limits.COUNT_NODES_PER_PART, limits.EPHEMERALS_PER_PART) + 50
    pair.call(OpCode.create, create_req(name))
    pair.call(OpCode.create, create_req(f"{name}/a"))
    pair.call(OpCode.create, create_req(f"{name}/b"))
    paths = [f"{name}/{'ab'[i % 2]}/e{i:05d}" for i in range(n)]
    for c in (pair.z, pair.j):
        for start in range(0, n, 1000):
            xids = [c.submit(OpCode.create, create_req(p, b"", 1))
                    for p in paths[start:start + 1000]]
            for x in xids:
                assert c.read_reply(x).err == 0
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(name))
    pair.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(f"{name}/a"))
    for prefix in (None, "", "/", " / ", name, f"{name}/a", f"{name}/b/e0001", "/nothing"):
        pair.call(OpCode.getEphemerals, R.GetEphemeralsRequest(prefix))
