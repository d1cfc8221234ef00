"""Container and TTL reaping through the log (ZooKeeper's ContainerManager).
kazoo cannot create these node types, so the raw client does."""

from kazoo.client import KazooClient

from rawclient import RawClient
from zabpy.jute import records as R
from zabpy.jute.constants import CreateMode, Err, OpCode
from zabpy.testing import ZabpyServer, wait_for

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _container(raw: RawClient, path: str) -> None:
    hdr, _ = raw.call(OpCode.createContainer,
                      R.CreateRequest(path, b"", OPEN, CreateMode.CONTAINER))
    assert hdr.err == Err.OK


def _ttl(raw: RawClient, path: str, ttl_ms: int) -> int:
    hdr, _ = raw.call(OpCode.createTTL, R.CreateTTLRequest(
        path, b"x", OPEN, CreateMode.PERSISTENT_WITH_TTL, ttl_ms))
    return hdr.err


def test_empty_container_that_had_children_is_reaped():
    with ZabpyServer(container_check_interval_ms=50) as zk:
        raw = RawClient(zk.port)
        raw.handshake()
        _container(raw, "/never-used")
        _container(raw, "/box")
        c = KazooClient(hosts=zk.hosts)
        c.start()
        c.create("/box/item")
        c.delete("/box/item")
        wait_for(lambda: c.exists("/box") is None, 10, what="container reaped")
        # a container that never had a child stays (maxNeverUsedIntervalMs = 0)
        assert c.exists("/never-used") is not None
        c.stop()
        raw.close()


def test_ttl_node_expires_only_when_childless():
    with ZabpyServer(container_check_interval_ms=50, extended_types_enabled=True) as zk:
        raw = RawClient(zk.port)
        raw.handshake()
        assert _ttl(raw, "/ttl", 1) == Err.OK
        assert _ttl(raw, "/ttl-parent", 1) == Err.OK
        c = KazooClient(hosts=zk.hosts)
        c.start()
        c.create("/ttl-parent/child")
        wait_for(lambda: c.exists("/ttl") is None, 10, what="TTL node reaped")
        assert c.exists("/ttl-parent") is not None
        c.delete("/ttl-parent/child")
        wait_for(lambda: c.exists("/ttl-parent") is None, 10, what="TTL parent reaped")
        c.stop()
        raw.close()


def test_ttl_disabled_is_unimplemented():
    with ZabpyServer() as zk:
        raw = RawClient(zk.port)
        raw.handshake()
        assert _ttl(raw, "/ttl", 1000) == Err.UNIMPLEMENTED
        raw.close()


def test_ttl_with_non_ttl_mode_and_negative_ttl_is_badarguments():
    # ZooKeeper 3.8.0 accepts this, then fails applying the txn and leaves a
    # broken log behind; a correct server refuses it up front.
    with ZabpyServer(extended_types_enabled=True) as zk:
        raw = RawClient(zk.port)
        raw.handshake()
        hdr, _ = raw.call(OpCode.createTTL, R.CreateTTLRequest(
            "/bad", b"", OPEN, CreateMode.PERSISTENT, -1))
        assert hdr.err == Err.BADARGUMENTS
        hdr, _ = raw.call(OpCode.exists, R.ExistsRequest("/bad", False))
        assert hdr.err == Err.NONODE
        raw.close()
