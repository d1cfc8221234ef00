"""A simulated ZooKeeper client: one session at a time, sans-IO, seeded.

``SimClient`` speaks the real client wire protocol (jute records framed by a
4-byte big-endian length) but owns no socket and reads no clock: the
simulator hands it bytes and the time, and carries the bytes it returns.
It chooses its requests with the ``random.Random`` given to its constructor,
so the same seed gives the same requests, byte for byte.

Harness interface::

    c = SimClient(client_id, rng, timeout_ms=4000, max_outstanding=4)
    c.handshake_bytes(now_ms) -> bytes   # on a fresh connection: ConnectRequest frame
    c.receive(data, now_ms)              # any server bytes (frames may be split or joined)
    c.next_request(now_ms) -> bytes|None # one request frame, or None (not connected,
                                         #   enough outstanding, or a close in flight)
    c.disconnected(now_ms)               # the connection ended (idempotent)
    c.connected, c.session_id, c.needs_connection
    c.history      # list[OpRecord], one per request, in issue order
    c.watch_log    # list[WatchRecord | WatchEvent], in the order they happened
    c.connections  # list[ConnectionRecord], one per handshake

State: the current session (id, password; 0 while none), the connection
state (``IDLE`` → ``HANDSHAKE`` → ``CONNECTED`` → ``IDLE``), a frame buffer,
the outstanding requests by xid, the highest zxid seen, and what the client
remembers of the tree (versions it saw, sequential nodes it created).

Xids count from 1 per *session* and keep counting across reconnects of that
session, as the Java client's ClientCnxn does (it outlives its connections),
so a (session id, xid) pair names one request, and one txn (its cxid).

Outcomes: an op is "pending" until its reply arrives ("ok", whatever the
error code) or its connection ends first ("unknown": it may or may not have
been committed; the checker decides from the committed txns). A reply with
SESSIONEXPIRED, an expired ConnectResponse (timeOut 0) or a closeSession
reply ends the session; the next ``handshake_bytes`` starts a new one.

``receive`` trusts nothing it cannot decode: a reply to an xid that is not
outstanding or an undecodable frame is a server bug and raises SimFailure.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from ..jute import records as R
from ..jute.codec import DecodeError, Reader
from ..jute.constants import CreateMode, Err, OpCode, Xid
from .invariants import SimFailure

__all__ = ["SimClient", "OpRecord", "OpResult", "WatchRecord", "WatchEvent",
           "ConnectionRecord", "WRITE_OPS", "KEYS", "IDLE", "HANDSHAKE", "CONNECTED"]

OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]
KEYS = ("/k0", "/k1", "/k2", "/k3", "/k4")
EPHEMERALS = ("/e/x0", "/e/x1", "/e/x2", "/e/x3")
PARENTS = ("/e", "/s")
WRITE_OPS = frozenset({OpCode.create, OpCode.create2, OpCode.delete, OpCode.setData,
                       OpCode.multi, OpCode.closeSession})
_LEN = struct.Struct(">i")
_HDR = struct.Struct(">ii")
MAX_FRAME = 1 << 20

IDLE, HANDSHAKE, CONNECTED = "IDLE", "HANDSHAKE", "CONNECTED"


@dataclass
class OpResult:
    """What a reply said, decoded. ``subs`` holds a multi's per-op results."""

    err: int = 0
    path: str | None = None
    stat: R.Stat | None = None
    data: bytes | None = None
    children: tuple[str, ...] | None = None
    subs: tuple["OpResult", ...] | None = None


@dataclass
class OpRecord:
    """One request. ``sub`` (multi only) holds (op, path, data, version, flags)
    per op; ``after_sync`` is the xid of the sync this read follows."""

    client_id: int
    session_id: int
    xid: int
    op: int
    path: str | None
    invoke_ms: int
    conn: int
    data: bytes | None = None
    version: int = -1
    flags: int = 0
    watch: bool = False
    sub: tuple = ()
    after_sync: int | None = None
    complete_ms: int | None = None
    outcome: str = "pending"  # "ok" | "unknown"
    err: int | None = None
    zxid: int | None = None
    result: OpResult | None = None
    seq: int | None = None  # this client's receive order (shared with watch events)

    @property
    def is_write(self) -> bool:
        return self.op in WRITE_OPS


@dataclass
class WatchRecord:
    """A watch the server registered: ``kind`` is "data", "exist" or "child".
    ``maybe``: the request was cut off by a disconnect, so the server may or
    may not hold this watch (zxid is then -1)."""

    session_id: int
    path: str
    kind: str
    xid: int
    registered_ms: int
    zxid: int
    seq: int
    conn: int
    maybe: bool = False


@dataclass
class WatchEvent:
    session_id: int
    type: int
    state: int
    path: str
    at_ms: int
    seq: int
    conn: int


@dataclass
class ConnectionRecord:
    """One handshake; ``session_id`` is the one granted (0 if none was)."""

    conn: int
    asked_session_id: int
    start_ms: int
    session_id: int = 0
    established_ms: int | None = None
    end_ms: int | None = None
    read_only: bool = False   # served by a read-only server


@dataclass
class _Memory:
    """What the client remembers of the tree, to make plausible requests."""

    versions: dict[str, int] = field(default_factory=dict)
    sequentials: list[str] = field(default_factory=list)


class SimClient:
    def __init__(self, client_id: int, rng: random.Random, timeout_ms: int = 4000,
                 max_outstanding: int = 4, close_chance: float = 0.004,
                 read_only: bool = False):
        assert max_outstanding >= 1
        self.client_id = client_id
        self.read_only = read_only   # asks for read-only sessions (served by a cut-off member)
        self.rng = rng
        self.timeout_ms = timeout_ms
        self.max_outstanding = max_outstanding
        self.close_chance = close_chance
        self.state = IDLE
        self.session_id = 0
        self.passwd = bytes(16)
        self.last_zxid_seen = 0
        self.history: list[OpRecord] = []
        self.watch_log: list[WatchRecord | WatchEvent] = []
        self.connections: list[ConnectionRecord] = []
        self._buf = bytearray()
        self._outstanding: dict[int, OpRecord] = {}
        self._next_xid = 1
        self._limit = 1
        self._closing = False
        self._sync_read: OpRecord | None = None
        self._seq = 0
        self._mem = _Memory()

    # ---- connection ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    @property
    def needs_connection(self) -> bool:
        return self.state == IDLE

    def handshake_bytes(self, now_ms: int) -> bytes:
        """The ConnectRequest for a fresh connection: resume the current
        session (id, password, lastZxidSeen) or, without one, ask for a new."""
        assert self.state == IDLE, f"client {self.client_id}: handshake while {self.state}"
        self.state = HANDSHAKE
        self._buf = bytearray()
        self.connections.append(ConnectionRecord(len(self.connections), self.session_id, now_ms))
        req = R.ConnectRequest(0, self.last_zxid_seen, self.timeout_ms, self.session_id,
                               self.passwd, self.read_only)
        body = req.to_bytes()
        return _LEN.pack(len(body)) + body

    def disconnected(self, now_ms: int) -> None:
        """The connection is gone: outstanding ops end with outcome unknown."""
        if self.state == IDLE:
            return
        for rec in self._outstanding.values():
            rec.outcome = "unknown"
            rec.complete_ms = now_ms
            if rec.watch:
                self._seq += 1
                kind = "child" if rec.op in (OpCode.getChildren, OpCode.getChildren2) else "data"
                self.watch_log.append(WatchRecord(rec.session_id, rec.path, kind, rec.xid, now_ms,
                                                  -1, self._seq, rec.conn, maybe=True))
        self._outstanding = {}
        self._sync_read = None
        self._closing = False
        self._buf = bytearray()
        self.connections[-1].end_ms = now_ms
        self.state = IDLE

    def _end_session(self) -> None:
        self.session_id = 0
        self.passwd = bytes(16)
        self._next_xid = 1
        self._mem = _Memory()

    # ---- bytes in ---------------------------------------------------------------

    def receive(self, data: bytes, now_ms: int) -> None:
        if self.state == IDLE:
            return  # bytes of a connection the harness already ended
        self._buf += data
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4 and self.state != IDLE:
            (n,) = _LEN.unpack_from(buf, pos)
            if n < 0 or n > MAX_FRAME:
                raise SimFailure(f"client {self.client_id}: server sent frame length {n}")
            if len(buf) - pos - 4 < n:
                break
            frame = memoryview(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
            try:
                if self.state == HANDSHAKE:
                    self._on_connect_response(R.ConnectResponse.read(Reader(frame)), now_ms)
                else:
                    self._on_frame(frame, now_ms)
            except DecodeError as e:
                raise SimFailure(f"client {self.client_id}: undecodable frame: {e}") from None
        if self.state != IDLE:
            del buf[:pos]

    def _on_connect_response(self, resp: R.ConnectResponse, now_ms: int) -> None:
        conn = self.connections[-1]
        if resp.timeOut <= 0 or resp.sessionId == 0:
            # The session is gone (expired or closed): the server closes this
            # connection; the next handshake asks for a new session.
            self._end_session()
            self.disconnected(now_ms)
            return
        if self.session_id and resp.sessionId != self.session_id:
            raise SimFailure(f"client {self.client_id}: resumed 0x{self.session_id:x} "
                             f"but was given 0x{resp.sessionId:x}")
        self.session_id = resp.sessionId
        self.passwd = resp.passwd or bytes(16)
        self.state = CONNECTED
        self._limit = self.rng.randint(1, self.max_outstanding)
        conn.session_id = resp.sessionId
        conn.established_ms = now_ms
        conn.read_only = resp.readOnly

    def _on_frame(self, frame: memoryview, now_ms: int) -> None:
        r = Reader(frame)
        hdr = R.ReplyHeader.read(r)
        self._seq += 1
        if hdr.xid == Xid.NOTIFICATION:
            ev = R.WatcherEvent.read(r)
            self.watch_log.append(WatchEvent(self.session_id, ev.type, ev.state, ev.path, now_ms,
                                             self._seq, len(self.connections) - 1))
            return
        rec = self._outstanding.pop(hdr.xid, None)
        if rec is None:
            raise SimFailure(f"client {self.client_id} session 0x{self.session_id:x}: reply to "
                             f"xid {hdr.xid}, which is not outstanding")
        rec.outcome, rec.complete_ms, rec.err, rec.zxid, rec.seq = "ok", now_ms, hdr.err, \
            hdr.zxid, self._seq
        if hdr.zxid > self.last_zxid_seen:
            self.last_zxid_seen = hdr.zxid
        rec.result = _decode_result(rec, hdr.err, r)
        self._remember(rec)
        self._note_watch(rec, now_ms)
        if rec.op == OpCode.sync and hdr.err == Err.OK and rec.path is not None:
            self._sync_read = rec
        if hdr.err == Err.SESSIONEXPIRED or (rec.op == OpCode.closeSession and hdr.err == Err.OK):
            self.disconnected(now_ms)
            self._end_session()

    def _remember(self, rec: OpRecord) -> None:
        res, mem = rec.result, self._mem
        if res is None or res.err:
            return
        if res.stat is not None and rec.path is not None:
            mem.versions[rec.path] = res.stat.version
        if rec.op in (OpCode.create, OpCode.create2) and res.path:
            mem.versions[res.path] = 0
            if rec.flags in (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL):
                mem.sequentials.append(res.path)
                del mem.sequentials[:-8]

    def _note_watch(self, rec: OpRecord, now_ms: int) -> None:
        if not rec.watch:
            return
        if rec.op == OpCode.exists and rec.err in (Err.OK, Err.NONODE):
            kind = "data" if rec.err == Err.OK else "exist"
        elif rec.op == OpCode.getData and rec.err == Err.OK:
            kind = "data"
        elif rec.op in (OpCode.getChildren, OpCode.getChildren2) and rec.err == Err.OK:
            kind = "child"
        else:
            return
        self.watch_log.append(WatchRecord(rec.session_id, rec.path, kind, rec.xid, now_ms,
                                          rec.zxid, rec.seq, rec.conn))

    # ---- bytes out ----------------------------------------------------------------

    def next_request(self, now_ms: int) -> bytes | None:
        if self.state != CONNECTED or self._closing:
            return None
        if len(self._outstanding) >= self._limit:
            return None
        sync = self._sync_read
        if sync is not None:
            # "a read after sync": issued only once the sync has completed
            self._sync_read = None
            return self._send(now_ms, OpCode.getData, R.GetDataRequest(sync.path, False),
                              path=sync.path, after_sync=sync.xid)
        if self.rng.random() < self.close_chance:
            self._closing = True
            return self._send(now_ms, OpCode.closeSession, None, path=None)
        return self._choose(now_ms)

    def _send(self, now_ms: int, op: int, req, **fields) -> bytes:
        xid = self._next_xid
        self._next_xid += 1
        rec = OpRecord(self.client_id, self.session_id, xid, op, invoke_ms=now_ms,
                       conn=len(self.connections) - 1, **fields)
        self.history.append(rec)
        self._outstanding[xid] = rec
        body = _HDR.pack(xid, op) + (_multi_body(rec.sub) if op == OpCode.multi
                                     else req.to_bytes() if req is not None else b"")
        return _LEN.pack(len(body)) + body

    def _version(self, path: str) -> int:
        """-1 half the time, else the version last seen (maybe stale, maybe
        one off on purpose, so conditional writes fail as often as not)."""
        rng = self.rng
        v = self._mem.versions.get(path)
        if v is None or rng.random() < 0.5:
            return -1
        return v + (1 if rng.random() < 0.15 else 0)

    def _data(self) -> bytes:
        return f"c{self.client_id}s{self.session_id & 0xFFFF:x}x{self._next_xid}".encode()

    def _choose(self, now_ms: int) -> bytes:
        rng = self.rng
        roll = rng.randrange(100)
        if roll < 22:
            return self._create(now_ms)
        if roll < 32:
            path = self._any_path()
            version = self._version(path)
            return self._send(now_ms, OpCode.delete, R.DeleteRequest(path, version),
                              path=path, version=version)
        if roll < 52:
            path = rng.choice(KEYS + EPHEMERALS)
            data, version = self._data(), self._version(path)
            return self._send(now_ms, OpCode.setData, R.SetDataRequest(path, data, version),
                              path=path, data=data, version=version)
        if roll < 64:
            path, watch = rng.choice(KEYS + EPHEMERALS), rng.random() < 0.5
            return self._send(now_ms, OpCode.getData, R.GetDataRequest(path, watch),
                              path=path, watch=watch)
        if roll < 73:
            path, watch = rng.choice(KEYS + EPHEMERALS), rng.random() < 0.5
            return self._send(now_ms, OpCode.exists, R.ExistsRequest(path, watch),
                              path=path, watch=watch)
        if roll < 80:
            path, watch = rng.choice(PARENTS + ("/",)), rng.random() < 0.5
            op = rng.choice((OpCode.getChildren, OpCode.getChildren2))
            rec = R.GetChildrenRequest if op == OpCode.getChildren else R.GetChildren2Request
            return self._send(now_ms, op, rec(path, watch), path=path, watch=watch)
        if roll < 92:
            return self._multi(now_ms)
        path = rng.choice(KEYS)
        return self._send(now_ms, OpCode.sync, R.SyncRequest(path), path=path)

    def _any_path(self) -> str:
        rng = self.rng
        seqs = self._mem.sequentials
        if seqs and rng.random() < 0.3:
            return seqs.pop(rng.randrange(len(seqs)))
        return rng.choice(KEYS + EPHEMERALS + PARENTS)

    def _create(self, now_ms: int) -> bytes:
        rng = self.rng
        kind = rng.randrange(10)
        if kind < 4:
            path, flags = rng.choice(KEYS + PARENTS), CreateMode.PERSISTENT
        elif kind < 7:
            path, flags = rng.choice(EPHEMERALS), CreateMode.EPHEMERAL
        elif kind < 9:
            path, flags = "/s/q-", CreateMode.PERSISTENT_SEQUENTIAL
        else:
            path, flags = "/e/q-", CreateMode.EPHEMERAL_SEQUENTIAL
        op = rng.choice((OpCode.create, OpCode.create2))
        data = self._data()
        return self._send(now_ms, op, R.CreateRequest(path, data, OPEN_ACL, int(flags)),
                          path=path, data=data, flags=int(flags))

    def _multi(self, now_ms: int) -> bytes:
        """check + setData + create: fails when the check's version is stale,
        the node is missing or the created node exists."""
        rng = self.rng
        a, b = rng.choice(KEYS), rng.choice(KEYS)
        v = self._mem.versions.get(a, 0) if rng.random() < 0.7 else -1
        c = rng.choice(KEYS + ("/s/q-",))
        cflags = int(CreateMode.PERSISTENT_SEQUENTIAL if c == "/s/q-" else CreateMode.PERSISTENT)
        sub = ((OpCode.check, a, None, v, 0), (OpCode.setData, b, self._data(), -1, 0),
               (OpCode.create, c, self._data(), -1, cflags))
        return self._send(now_ms, OpCode.multi, None, path=None, sub=sub)


def _multi_body(sub: tuple) -> bytes:
    out = bytearray()
    for op, path, data, version, flags in sub:
        out += R.MultiHeader(op, False, -1).to_bytes()
        if op == OpCode.check:
            out += R.CheckVersionRequest(path, version).to_bytes()
        elif op == OpCode.setData:
            out += R.SetDataRequest(path, data, version).to_bytes()
        elif op == OpCode.delete:
            out += R.DeleteRequest(path, version).to_bytes()
        else:
            out += R.CreateRequest(path, data, OPEN_ACL, flags).to_bytes()
    out += R.MultiHeader(-1, True, -1).to_bytes()
    return bytes(out)


def _decode_result(rec: OpRecord, err: int, r: Reader) -> OpResult:
    """The reply body per op code (an error reply has none, but a multi's
    header err is OK and its body carries each op's result)."""
    op = rec.op
    if err and op != OpCode.multi:
        return OpResult(err)
    if r.remaining() == 0 and op in (OpCode.delete, OpCode.closeSession, OpCode.multi):
        return OpResult(err)
    if op == OpCode.create:
        return OpResult(err, path=R.CreateResponse.read(r).path)
    if op == OpCode.create2:
        resp = R.Create2Response.read(r)
        return OpResult(err, path=resp.path, stat=resp.stat)
    if op in (OpCode.setData, OpCode.exists):
        return OpResult(err, stat=R.SetDataResponse.read(r).stat)
    if op == OpCode.getData:
        resp = R.GetDataResponse.read(r)
        return OpResult(err, data=resp.data, stat=resp.stat)
    if op == OpCode.getChildren:
        return OpResult(err, children=tuple(R.GetChildrenResponse.read(r).children or ()))
    if op == OpCode.getChildren2:
        resp = R.GetChildren2Response.read(r)
        return OpResult(err, children=tuple(resp.children or ()), stat=resp.stat)
    if op == OpCode.sync:
        return OpResult(err, path=R.SyncResponse.read(r).path)
    if op == OpCode.multi:
        return OpResult(err, subs=_decode_multi(r))
    return OpResult(err)


def _decode_multi(r: Reader) -> tuple[OpResult, ...]:
    subs: list[OpResult] = []
    while True:
        h = R.MultiHeader.read(r)
        if h.done:
            return tuple(subs)
        if h.type == OpCode.error:
            subs.append(OpResult(R.ErrorResponse.read(r).err))
        elif h.type == OpCode.create:
            subs.append(OpResult(0, path=R.CreateResponse.read(r).path))
        elif h.type == OpCode.create2:
            resp = R.Create2Response.read(r)
            subs.append(OpResult(0, path=resp.path, stat=resp.stat))
        elif h.type == OpCode.setData:
            subs.append(OpResult(0, stat=R.SetDataResponse.read(r).stat))
        else:  # delete, check: no body
            subs.append(OpResult(0))
