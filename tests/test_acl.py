"""ACLs and auth, side by side with Java ZooKeeper 3.8.0 (zookeeper-facts.md §1.7):
digest ids, the super digest, ip ACLs, the auth placeholder, unknown schemes."""

from __future__ import annotations

import pytest

from conftest import SUPER_AUTH, RawClient, create_req
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.tree.acl import digest_id

ALICE = digest_id("alice:secret")


def auth(pair, scheme: str, data: bytes):
    z = pair.z.call(OpCode.auth, R.AuthPacket(0, scheme, data), xid=-4)
    j = pair.j.call(OpCode.auth, R.AuthPacket(0, scheme, data), xid=-4)
    assert (z.xid, z.err) == (j.xid, j.err)
    return z.err


@pytest.fixture
def other(zk, java_zk):
    """A second, unauthenticated pair of sessions."""
    from conftest import Pair
    p = Pair(zk.port, java_zk.port)
    yield p
    p.close()


def test_digest_acl(pair, other, name):
    acl = [R.ACL(31, R.Id("digest", ALICE))]
    pair.call(OpCode.create, create_req(name, b"secret", 0, acl))   # creator need not hold it
    pair.call(OpCode.getData, R.GetDataRequest(name, False))         # NOAUTH
    assert auth(pair, "digest", b"alice:secret") == Err.OK
    pair.call(OpCode.getData, R.GetDataRequest(name, False))
    pair.call(OpCode.create, create_req(f"{name}/c"))
    pair.call(OpCode.getACL, R.GetACLRequest(name))
    other.call(OpCode.getACL, R.GetACLRequest(name))                # READ/ADMIN needed
    other.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    other.call(OpCode.delete, R.DeleteRequest(f"{name}/c", -1))
    other.call(OpCode.exists, R.ExistsRequest(name, False))          # 3.8.0: no READ check
    other.call(OpCode.getChildren, R.GetChildrenRequest(name, False))
    other.call(OpCode.getAllChildrenNumber, R.GetAllChildrenNumberRequest(name))
    other.call(OpCode.sync, R.SyncRequest(name))


def test_get_acl_hides_digest_without_admin(pair, other, name):
    acl = [R.ACL(1, R.Id("world", "anyone")), R.ACL(31, R.Id("digest", ALICE))]
    pair.call(OpCode.create, create_req(name, b"", 0, acl))
    other.call(OpCode.getACL, R.GetACLRequest(name))
    auth(pair, "digest", b"alice:secret")
    pair.call(OpCode.getACL, R.GetACLRequest(name))


def test_auth_scheme_expands_to_session_ids(pair, name):
    pair.call(OpCode.create, create_req(name, b"", 0, [R.ACL(31, R.Id("auth", ""))]))  # INVALIDACL
    auth(pair, "digest", b"alice:secret")
    auth(pair, "digest", b"bob:pw")
    auth(pair, "digest", b"alice:secret")      # a repeated id is kept once
    pair.call(OpCode.create, create_req(name, b"", 0, [R.ACL(5, R.Id("auth", "whatever"))]))
    pair.call(OpCode.getACL, R.GetACLRequest(name))
    pair.call(OpCode.whoAmI)


def test_super_user_bypasses_acls(pair, other, name):
    pair.call(OpCode.create, create_req(name, b"", 0, [R.ACL(0, R.Id("world", "anyone"))]))
    pair.call(OpCode.getData, R.GetDataRequest(name, False))
    assert auth(pair, "digest", SUPER_AUTH) == Err.OK
    pair.call(OpCode.getData, R.GetDataRequest(name, False))
    pair.call(OpCode.create, create_req(f"{name}/c"))
    pair.call(OpCode.setACL, R.SetACLRequest(name, [R.ACL(31, R.Id("world", "anyone"))], -1))
    pair.call(OpCode.whoAmI)
    other.call(OpCode.getData, R.GetDataRequest(name, False))


@pytest.mark.parametrize("spec,perm", [("127.0.0.1", 31), ("127.0.0.0/8", 31), ("10.0.0.1", 31),
                                       ("127.0.0.2/32", 31), ("127.0.0.1/0", 31),
                                       ("127.000.000.001", 31), ("127.0.0.1", 1)])
def test_ip_acl(pair, name, spec, perm):
    pair.call(OpCode.create, create_req(name, b"d", 0, [R.ACL(perm, R.Id("ip", spec))]))
    pair.call(OpCode.getData, R.GetDataRequest(name, False))
    pair.call(OpCode.setData, R.SetDataRequest(name, b"x", -1))
    pair.call(OpCode.getACL, R.GetACLRequest(name))


@pytest.mark.parametrize("scheme", ["nosuch", "world", "super", "sasl", "auth"])
def test_unknown_auth_scheme_fails_and_closes(zk, java_zk, scheme):
    """AUTHFAILED (-115) in a reply with xid -4, then the server closes."""
    for port in (zk.port, java_zk.port):
        c = RawClient(port)
        rep = c.call(OpCode.auth, R.AuthPacket(0, scheme, b"x"), xid=-4)
        assert (rep.xid, rep.err) == (-4, Err.AUTHFAILED), port
        assert c.expect_closed(), port
        c.abort()


def test_digest_auth_never_fails(pair):
    assert auth(pair, "digest", b"") == Err.OK
    assert auth(pair, "digest", b"no-colon") == Err.OK
    pair.call(OpCode.whoAmI)


def test_ip_auth_packet_succeeds(pair):
    """The ip provider accepts an auth packet (it adds the peer address)."""
    assert auth(pair, "ip", b"10.1.2.3") == Err.OK
    pair.call(OpCode.whoAmI)


def test_auth_acl_ids_in_java_set_order(pair, name):
    """An ``auth`` ACL expands to the session's ids in the order ZooKeeper
    iterates its auth set (as whoAmI shows it), not in the order they
    were added; setACL the same."""
    auth(pair, "digest", b"alice:wrong")
    auth(pair, "digest", b"alice:secret")
    pair.call(OpCode.whoAmI)
    pair.call(OpCode.create, create_req(name, b"", 0, [R.ACL(31, R.Id("auth", ""))]))
    assert len(pair.call(OpCode.getACL, R.GetACLRequest(name))[2][1][0][1]) == 2
    pair.call(OpCode.setACL, R.SetACLRequest(name, [R.ACL(1, R.Id("world", "anyone")),
                                                    R.ACL(7, R.Id("auth", ""))], -1))
    pair.call(OpCode.getACL, R.GetACLRequest(name))


@pytest.mark.parametrize("scheme,err", [("digest", Err.AUTHFAILED), ("ip", Err.OK)])
def test_null_credential(zk, java_zk, scheme, err):
    """A null auth buffer: the digest provider fails it (AUTHFAILED, then the
    server closes); the ip provider never reads it."""
    for port in (zk.port, java_zk.port):
        c = RawClient(port)
        rep = c.call(OpCode.auth, R.AuthPacket(0, scheme, None), xid=-4)
        assert (rep.xid, rep.err) == (-4, err), port
        if err:
            assert c.expect_closed(), port
            c.abort()
        else:
            c.close()
