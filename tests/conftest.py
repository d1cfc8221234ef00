"""Shared fixtures for the client-protocol tests: a zabpy server, a Java
ZooKeeper 3.8.0 server (Debian package) for side-by-side comparisons, and a
tiny raw client that speaks the jute wire protocol directly.

Theory of operation
-------------------
kazoo covers most behaviour, but it cannot send every request ZooKeeper
accepts (bad create flags, createTTL with a non-TTL mode, check outside a
multi, whoAmI, malformed frames). ``RawClient`` frames any record itself:
int32 length + RequestHeader(xid, op) + record, with the ConnectRequest
first and headerless. It reads replies in order and keeps watch
notifications (xid -1) in ``events``; ``log`` records the arrival order of
notifications and replies, so a test can check that an event precedes a
later reply.

``Pair`` sends the same request to both servers and compares the error code
and the decoded body. Values that legitimately differ are normalised:
zxids become offsets from a base zxid read when the pair was opened (so a
write that consumes a zxid on one server and not on the other is a
difference), times become "T", and an ephemeralOwner equal to the client's
own session becomes "SELF". Both servers live for the whole test session,
so every test works under its own path (the ``name`` fixture) and closes
its sessions, keeping zxids in step between the two servers.

The Java server is started once per session on a free port with a
temporary dataDir; tests that need it are skipped, with the reason, when
java or the ZooKeeper jars are absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import socket
import struct
import tempfile
import pytest

from zabpy.jute import records as R
from zabpy.jute.codec import Reader, Writer
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyServer, four_letter_word, free_port, wait_for  # noqa: F401

from zabpy.testing.difffuzz.servers import (JAVA_JARS, SESSION_MAX_MS,  # noqa: F401
                                            SESSION_MIN_MS, SUPER_AUTH, SUPER_DIGEST, TICK_MS,
                                            java_missing)
from zabpy.testing.difffuzz.servers import JavaZooKeeper as _JavaZooKeeper

# Response record of each op (None: header only).
RESPONSE_RECORD = {
    OpCode.create: R.CreateResponse, OpCode.create2: R.Create2Response,
    OpCode.createContainer: R.Create2Response, OpCode.createTTL: R.Create2Response,
    OpCode.delete: None, OpCode.exists: R.SetDataResponse, OpCode.getData: R.GetDataResponse,
    OpCode.setData: R.SetDataResponse, OpCode.getACL: R.GetACLResponse,
    OpCode.setACL: R.SetDataResponse, OpCode.getChildren: R.GetChildrenResponse,
    OpCode.getChildren2: R.GetChildren2Response, OpCode.sync: R.SyncResponse,
    OpCode.check: R.SetDataResponse, OpCode.checkWatches: None, OpCode.removeWatches: None,
    OpCode.getEphemerals: R.GetEphemeralsResponse,
    OpCode.getAllChildrenNumber: R.GetAllChildrenNumberResponse,
    OpCode.addWatch: R.ErrorResponse, OpCode.whoAmI: R.WhoAmIResponse,
    OpCode.setWatches: None, OpCode.setWatches2: None, OpCode.closeSession: None,
    OpCode.ping: None,
}
MULTI_RESULT = {
    OpCode.create: R.CreateResponse, OpCode.create2: R.Create2Response,
    OpCode.setData: R.SetDataResponse, OpCode.getData: R.GetDataResponse,
    OpCode.getChildren: R.GetChildrenResponse, OpCode.error: R.ErrorResponse,
    OpCode.delete: None, OpCode.check: None,
}

OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]


# ---- raw client ------------------------------------------------------------

@dataclasses.dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes
    op: int

    def decode(self):
        """The body as a record (or multi list); None for header-only replies."""
        if self.op in (OpCode.multi, OpCode.multiRead):
            return decode_multi_response(self.body) if self.body else None
        if self.err:
            return None
        cls = RESPONSE_RECORD.get(self.op)
        if cls is None or not self.body:
            return None
        return cls.read(Reader(self.body))


def decode_multi_response(body: bytes) -> list:
    r = Reader(body)
    out = []
    while True:
        h = R.MultiHeader.read(r)
        if h.done:
            return out
        cls = MULTI_RESULT.get(h.type)
        out.append((h.type, h.err, cls.read(r) if cls is not None else None))


def encode_multi(ops: list[tuple[int, object]]) -> bytes:
    """A multi / multiRead request body from (op, record) pairs."""
    w = Writer()
    for op, rec in ops:
        R.MultiHeader(op, False, -1).write(w)
        rec.write(w)
    R.MultiHeader(-1, True, -1).write(w)
    return w.getvalue()


class RawBody:
    """Pre-encoded request body (for multi and malformed requests)."""

    def __init__(self, data: bytes):
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


class ServerClosed(Exception):
    """The server closed the connection."""


class RawClient:
    def __init__(self, port: int, *, timeout_ms: int = 10000, session_id: int = 0,
                 passwd: bytes = bytes(16), last_zxid: int = 0, read_only: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.port = port
        self.events: list[R.WatcherEvent] = []
        self.log: list[tuple] = []
        self._buf = b""
        self._xid = 0
        self.ops: dict[int, int] = {}
        req = R.ConnectRequest(0, last_zxid, timeout_ms, session_id, passwd, read_only)
        self._send(req.to_bytes())
        frame = self._recv_frame()
        if frame is None:
            raise ServerClosed("closed during handshake")
        self.connect_response = R.ConnectResponse.read(Reader(frame))
        self.session_id = self.connect_response.sessionId
        self.passwd = self.connect_response.passwd

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _recv_frame(self) -> bytes | None:
        head = self._recv_exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">i", head)
        return self._recv_exact(n)

    def submit(self, op: int, rec=None, xid: int | None = None) -> int:
        if xid is None:
            self._xid += 1
            xid = self._xid
        self.ops[xid] = op
        body = rec.to_bytes() if rec is not None else b""
        self._send(struct.pack(">ii", xid, op) + body)
        return xid

    def read_frame(self) -> Reply:
        """Next reply; notifications go to ``events`` and are returned too."""
        frame = self._recv_frame()
        if frame is None:
            raise ServerClosed("connection closed by server")
        xid, zxid, err = struct.unpack_from(">iqi", frame)
        body = frame[16:]
        if xid == -1:
            ev = R.WatcherEvent.read(Reader(body))
            self.events.append(ev)
            self.log.append(("event", ev.type, ev.path))
        else:
            self.log.append(("reply", xid))
        return Reply(xid, zxid, err, body, self.ops.pop(xid, -1) if xid != -1 else 0)

    def read_reply(self, xid: int) -> Reply:
        while True:
            rep = self.read_frame()
            if rep.xid == xid:
                return rep
            assert rep.xid == -1, f"reply for xid {rep.xid} while waiting for {xid}"

    def call(self, op: int, rec=None, xid: int | None = None) -> Reply:
        return self.read_reply(self.submit(op, rec, xid))

    def wait_event(self, n: int = 1) -> list[R.WatcherEvent]:
        """Wait until at least ``n`` events arrived (reads the socket)."""
        while len(self.events) < n:
            rep = self.read_frame()
            assert rep.xid == -1, f"unexpected reply {rep}"
        return self.events

    def expect_closed(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                self.read_frame()
        except ServerClosed:
            return True
        except socket.timeout:
            return False

    def drain_events(self) -> list:
        """Ping (a round trip) so every event sent before it has arrived."""
        self.call(OpCode.ping, None, xid=-2)
        return self.events

    def close(self) -> None:
        try:
            self.sock.settimeout(5)
            self.call(OpCode.closeSession)
        except (ServerClosed, OSError):
            pass
        finally:
            self.sock.close()

    def abort(self) -> None:
        self.sock.close()


# ---- normalisation and comparison ------------------------------------------

# A write's reply carries its own txn's zxid; any other reply carries the last
# zxid the server applied, which may belong to another test (a session of
# theirs expiring on the shared server).
WRITE_OPS = frozenset({OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL,
                       OpCode.delete, OpCode.deleteContainer, OpCode.setData, OpCode.setACL,
                       OpCode.check, OpCode.multi, OpCode.reconfig, OpCode.closeSession})


class Norm:
    """Replace the values that differ legitimately between two servers.

    A zxid after the pair opened is named by the order in which it first
    appeared ("+1", "+2", ...), not by its distance from the base: the two
    servers are shared with other tests, whose txns (a session expiring) would
    shift a distance on one server only. A write that takes a zxid on one
    server and not on the other still shows: its reply names a new zxid on one
    side and an old one on the other."""

    def __init__(self, base_zxid: int, session_id: int):
        self.base = base_zxid
        self.session_id = session_id
        self.labels: dict[int, int] = {}

    def zxid(self, z: int, read: bool = False):
        if z <= self.base:
            return z if z <= 0 else "old"
        label = self.labels.get(z)
        if label is None:
            if read:   # the latest txn of ours it has seen, others' skipped
                ours = [k for k in self.labels if k <= z]
                return f"+{self.labels[max(ours)]}" if ours else "old"
            label = self.labels[z] = len(self.labels) + 1
        return f"+{label}"

    def value(self, v):
        if isinstance(v, R.Stat):
            d = dataclasses.asdict(v)
            for k in ("czxid", "mzxid", "pzxid"):
                d[k] = self.zxid(d[k])
            for k in ("ctime", "mtime"):
                d[k] = "T" if d[k] > 0 else d[k]
            if d["ephemeralOwner"] == self.session_id:
                d["ephemeralOwner"] = "SELF"
            return ("Stat", tuple(sorted(d.items())))
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(x) for x in v)
        if dataclasses.is_dataclass(v):
            fields = [(f.name, self.value(getattr(v, f.name))) for f in dataclasses.fields(v)]
            if isinstance(v, (R.GetChildrenResponse, R.GetChildren2Response, R.GetEphemeralsResponse)):
                fields[0] = (fields[0][0], sorted(fields[0][1] or ()))
            return (type(v).__name__, tuple(fields))
        return v

    def reply(self, rep: Reply):
        return (rep.err, self.zxid(rep.zxid, read=rep.op not in WRITE_OPS),
                self.value(rep.decode()))


class Pair:
    """One raw client on each server; ``call`` compares the two answers."""

    def __init__(self, zport: int, jport: int, **kw):
        self.z = RawClient(zport, **kw)
        self.j = RawClient(jport, **kw)
        self.zn = Norm(self._last_zxid(self.z), self.z.session_id)
        self.jn = Norm(self._last_zxid(self.j), self.j.session_id)

    @staticmethod
    def _last_zxid(c: RawClient) -> int:
        return c.call(OpCode.exists, R.ExistsRequest("/", False)).zxid

    def both(self, op: int, rec=None):
        """(zabpy normalised, java normalised), without asserting."""
        return self.zn.reply(self.z.call(op, rec)), self.jn.reply(self.j.call(op, rec))

    def call(self, op: int, rec=None):
        zr, jr = self.both(op, rec)
        assert zr == jr, f"op {op} {rec}:\n zabpy {zr}\n java  {jr}"
        return zr

    def multi(self, ops: list, read: bool = False):
        return self.call(OpCode.multiRead if read else OpCode.multi, RawBody(encode_multi(ops)))

    def events(self):
        zr = [(e.type, e.state, e.path) for e in self.z.drain_events()]
        jr = [(e.type, e.state, e.path) for e in self.j.drain_events()]
        assert zr == jr, f"events:\n zabpy {zr}\n java  {jr}"
        self.z.events.clear()
        self.j.events.clear()
        return zr

    def close(self) -> None:
        self.z.close()
        self.j.close()


# ---- servers ----------------------------------------------------------------

def _java_missing() -> str | None:
    return java_missing()


class JavaZooKeeper(_JavaZooKeeper):
    """The side-by-side reference: the fuzzer's Java launcher with Java's own
    defaults (container reaper interval, forceSync)."""

    def __init__(self, tmp: str):
        super().__init__(tmp, props=())


def zabpy_server(**overrides) -> ZabpyServer:
    fields = dict(extended_types_enabled=True, super_digest=SUPER_DIGEST, tick_time_ms=TICK_MS,
                  session_timeout_ms_min=SESSION_MIN_MS, session_timeout_ms_max=SESSION_MAX_MS)
    fields.update(overrides)
    return ZabpyServer(**fields)


@pytest.fixture(scope="session")
def zk():
    """The shared zabpy server (extended types on, super digest set)."""
    with zabpy_server() as server:
        yield server


@pytest.fixture(scope="session")
def java_zk():
    reason = _java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    with java_server() as server:
        yield server


@contextlib.contextmanager
def java_server(prefix: str = "zabpy-javazk-"):
    """A fresh Java ZooKeeper on its own temporary data directory."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    server = JavaZooKeeper(tmp)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def name(request) -> str:
    """A path unique to this test, the same on both servers."""
    return "/" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]


@pytest.fixture
def pair(zk, java_zk):
    p = Pair(zk.port, java_zk.port)
    yield p
    p.close()


@pytest.fixture
def raw(zk):
    clients: list[RawClient] = []

    def make(**kw) -> RawClient:
        c = RawClient(zk.port, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def kazoo_factory(zk):
    from kazoo.client import KazooClient

    clients = []

    def make(hosts: str | None = None, **kw):
        c = KazooClient(hosts=hosts or zk.hosts, **kw)
        c.start(timeout=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:  # a test may have closed it already
            pass


@pytest.fixture
def kz(kazoo_factory):
    return kazoo_factory()


def create_req(path: str, data: bytes | None = b"", flags: int = 0, acl=None):
    return R.CreateRequest(path, data, OPEN_ACL if acl is None else acl, flags)


__all__ = ["RawClient", "Pair", "Norm", "Reply", "RawBody", "ServerClosed", "encode_multi",
           "create_req", "zabpy_server", "SUPER_DIGEST", "SUPER_AUTH", "OPEN_ACL", "wait_for"]
