"""A standalone ZooKeeper server as one sans-IO object.

State: the data tree, the watch table, the session table, the writes that
are prepared but not yet durable (``pending``), and per connection a FIFO
of its requests in arrival order.

Inputs (each carries ``now_ms``, a monotonic millisecond clock):
``connection_made``, ``connect`` (a decoded ConnectRequest), ``request``
(xid, op, body), ``connection_lost``, ``tick``, and ``logged(zxid)`` — the
runtime's word that every txn up to ``zxid`` is durable.

Outputs, collected by ``ready()`` and cleared by ``advance()``:
``persist`` — (TxnHeader, txn) records to append to the log, in zxid order;
``send`` — (connection id, frame bytes), in the order they must be written;
``close`` — connections to close once their sends are written.

The ordering rules are the core's, not the runtime's: a txn is applied to
the tree, and its reply and watch events produced, only after ``logged``
covers it, so nothing a client sees can be lost by a crash. A read waits at
its connection's queue until every earlier request of that connection has
been answered, so replies leave in request order (the Java client fails a
connection on an out-of-order xid). Watch events are queued at apply time,
before any reply computed later, which gives ZooKeeper's guarantee that a
client sees an event before data that reflects the change.

Requests are wired as ZooKeeper's standalone chain: prep (``pipeline.prep``)
→ log (the runtime) → final (``apply`` + ``pipeline.final``).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # pure Python without mypy installed: the decorator is only for mypyc
    def mypyc_attr(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return lambda cls: cls

from ..jute import records as R
from ..jute.codec import DecodeError, Reader
from ..jute.constants import ERR, EVENT, OP, PERM, STATE, XID
from ..pipeline.final import Encoded, ReadContext, ephemerals_prefix, read, write_reply
from ..pipeline.prep import (MULTI_READ_OPS, MULTI_WRITE_OPS, WRITE_OPS, ChangeRecord,
                             ClosePrep, PendingChanges, PrepContext, creates_ephemeral,
                             decode_multi, close_session_txn, prepare, prepare_close_session)
from ..session.tracker import SessionTracker, session_password
from ..auth.audit import ephemeral_lines, request_lines
from ..auth.sasl import SaslExchange, enforcement_fails
from ..tree.acl import OPEN_ACL_UNSAFE, authenticate, check_perm
from ..tree.datatree import DataTree, ttl_of
from ..tree.watches import WatchManager
from .ratelog import RateLogger
from .. import limits
from .settings import ServerSettings
from .changes import ChangeLog
from .session_limits import SessionLimits, refusal
from .sliced import (SlicedApply, SlicedChildren, SlicedClose, SlicedClosePrep, SlicedCount,
                     SlicedEphemerals, SlicedPrep, SlicedScan)
from .stats import ServerStats

__all__ = ["StandaloneServer", "Ready", "ProtocolViolation"]

_REPLY = struct.Struct(">iiqi")  # frame length, xid, zxid, err
_NOTIFY_PREFIX = struct.Struct(">iiqi")
_REPLY_ZXID = struct.Struct(">q")  # at offset 8 of a reply frame


_UNLIMITED = 1 << 62  # a send budget that never runs out (send_budget_bytes 0)
_REPLY_PART = limits.REPLY_BYTES_PER_PART
_REPLY_TURN = limits.REPLY_BYTES_PER_TURN

_UNKNOWN = object()
_NO_BODY = memoryview(b"")
_LOCAL_CLOSE = object()   # a local session's closeSession, answered without a txn


class _BigMulti:
    """A multi body large enough to be decoded and prepared in parts."""

    __slots__ = ("body", "ephemerals")

    def __init__(self, body: bytes):
        self.body = body
        self.ephemerals: int | None = None  # counted once, when a session limit asks

_MALFORMED = object()
_BAD_ARGUMENTS = object()

# Ops a client may not send although ZooKeeper knows them. Each is prepared
# as an error txn (a zxid is spent, as ZooKeeper's PrepRequestProcessor
# does): deleteContainer (the container reaper's op) is answered
# BADARGUMENTS, whatever the body; the connection goes on.
_CLIENT_REFUSED = {OP.deleteContainer: _BAD_ARGUMENTS}
# What a connection's queue treats as a write (answered once its txn is durable).
_QUEUE_WRITE_OPS = WRITE_OPS | {OP.closeSession, OP.createSession, *_CLIENT_REFUSED}
_BODY_INT = struct.Struct(">i")
_LISTING_OPS = (OP.getChildren, OP.getChildren2)
# reads that may be computed in parts (``_start_scan``)
_SCAN_OPS = frozenset({OP.getChildren, OP.getChildren2, OP.getAllChildrenNumber, OP.getEphemerals})


class ProtocolViolation(Exception):
    """A request body that does not decode: the connection is closed."""


@dataclass(frozen=True)
class Ready:
    persist: tuple = ()
    send: tuple = ()
    close: tuple = ()
    logs: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.close or self.logs)


_NOTHING = Ready()


def frame(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    return _REPLY.pack(16 + len(body), xid, zxid, err) + body


class Pieces:
    """A reply frame left in pieces rather than joined into one bytes: its
    header, then the body's parts (a long child list is the node's cached
    encoding itself, by reference, and getChildren2's stat follows it). It
    is never joined: it goes out ``limits.REPLY_BYTES_PER_PART`` at a time
    (``StandaloneServer._stream``). The cached list is immutable bytes (a
    change to the children drops the node's reference to it, never alters
    it), so holding it keeps the answer as of the read's place in the order."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: tuple):
        self.parts = parts
        self.size = sum(map(len, parts))

    def __len__(self) -> int:
        return self.size


@dataclass(slots=True)
class Entry:
    """One request in a connection's queue."""

    xid: int
    op: int
    req: Any
    is_write: bool
    reply: bytes | Pieces | None = None
    close_after: bool = False
    received_ms: int = 0
    body: bytes = b""
    local_error: int = 0   # a learner answers this instead of the leader's error
    reply_zxid: int | None = None  # for a reply that is not a reply header
    size: int = 0          # body bytes, counted while zabpy.maxRequestBytesPerConnection is on
    # a read computed in parts (``SlicedScan``: a long child list, a count,
    # ephemerals): 1 meanwhile, 2 once done (a child list is then answered
    # as any read, the others have their reply)
    listing: int = 0


@dataclass
class Conn:
    conn_id: int
    peer_ip: str
    session_id: int = 0
    auth_ids: list = field(default_factory=list)
    queue: deque = field(default_factory=deque)
    established: bool = False
    closing: bool = False
    read_only_flag: bool = True
    timeout_ms: int = 0
    # what a read of this connection is answered with (its session, its
    # auth ids: the live list above), made at its first read
    read_ctx: ReadContext | None = None
    packets_received: int = 0
    packets_sent: int = 0
    connected_ms: int = 0
    prep_ctx: PrepContext | None = None
    # requests pipelined behind the ConnectRequest, (xid, op, body), kept
    # until the session is attached (None: no handshake under way)
    early: list | None = None
    # bytes of read replies this connection may still be given: a read at the
    # head of the queue waits while it is spent, until the runtime ``grant``s
    # more (its client drained what was queued)
    send_budget: int = 0
    # a long reply going out a part per ``work`` call (``_stream``), and
    # whatever this connection was sent after it, in order (None: nothing
    # held); close_when_sent: closed once all of it is out
    held: deque | None = None
    close_when_sent: bool = False
    sasl: SaslExchange | None = None  # this connection's SASL exchange, once begun
    # set by any read but a ping: this connection may have armed watches
    # (so that a lost connection that never read skips the watch-table scan)
    may_watch: bool = False
    # per-session limits (server/session_limits.py): body bytes of the queued
    # requests, and an upper bound of the watches this session holds
    queued_bytes: int = 0
    watches_asked: int = 0
    # ZooKeeper's per-connection response stats (ServerCnxn
    # updateStatsForResponse), shown by ``cons``: the op code of the last
    # answer (None: "NA"), its xid (a negative xid is not kept), the zxid
    # of its reply header, when it left, and the latency spread. The minimum
    # starts at 0 as Java's field does; after a reset it waits for a sample.
    last_op: int | None = None
    last_cxid: int = -1
    last_zxid: int = -1
    last_response_ms: int = 0
    last_latency_ms: int = 0
    latency_min_ms: int | None = 0
    latency_max_ms: int = 0
    latency_count: int = 0
    latency_total_ms: int = 0

    def responded(self, op: int, cxid: int, zxid: int, latency_ms: int, now_ms: int) -> None:
        if cxid >= 0:
            self.last_cxid = cxid
        self.last_op = op
        self.last_zxid = zxid
        self.last_response_ms = now_ms
        self.last_latency_ms = latency_ms
        if self.latency_min_ms is None or latency_ms < self.latency_min_ms:
            self.latency_min_ms = latency_ms
        if latency_ms > self.latency_max_ms:
            self.latency_max_ms = latency_ms
        self.latency_count += 1
        self.latency_total_ms += latency_ms

    def reset_stats(self) -> None:
        """ServerCnxn.resetStats (``crst``)."""
        self.packets_received = self.packets_sent = 0
        self.last_op, self.last_cxid, self.last_zxid = None, -1, -1
        self.last_response_ms = self.last_latency_ms = 0
        self.latency_min_ms, self.latency_max_ms = None, 0
        self.latency_count = self.latency_total_ms = 0


@dataclass(slots=True)
class InFlight:
    """A txn handed to the log, waiting for ``logged``."""

    hdr: R.TxnHeader
    txn: Any
    conn_id: int | None
    entry: Entry | None = None


# The roles (leader, learner, read-only) are interpreted subclasses of the
# compiled class; the class constants they override are ClassVars, read
# from the class of the instance.
@mypyc_attr(allow_interpreted_subclasses=True)
class StandaloneServer:
    def __init__(self, settings: ServerSettings, now_ms: int, tree: DataTree | None = None,
                 sessions: dict[int, int] | None = None):
        self.settings = settings
        self.tree = tree if tree is not None else DataTree()
        self.watches = WatchManager()
        # Session ids are seeded from wall time, so a restarted server does not
        # hand out the ids (and passwords) of sessions clients still hold.
        self.sessions = SessionTracker(self._session_id_server_id(), settings.tick_ms,
                                       now_ms + settings.wall_offset_ms,
                                       expire_global=self.OWNS_SESSIONS)
        # local sessions being made global: id -> timeout, until their
        # createSession txn is applied
        self.upgrading: dict[int, int] = {}
        self.pending = PendingChanges(self.tree)
        self.stats = ServerStats(now_ms)
        self.conns: dict[int, Conn] = {}
        self.owner: dict[int, int] = {}  # session id -> conn id
        self.inflight: deque[InFlight] = deque()
        self.next_zxid = self.tree.last_processed_zxid + 1
        self.now_ms = now_ms
        self._persist: list = []
        self._reader = Reader(_NO_BODY)  # decodes each request body (_decode)
        self._send: list = []
        self._close: list = []
        self._logs: list = []
        self._quota_log = RateLogger()
        self._last_reap_ms = now_ms
        # connections without a session yet: conn id -> when to close them,
        # in connection order (so in deadline order)
        self._handshaking: dict[int, int] = {}
        self.can_write = True  # false after a log failure: writes are refused
        # a large multi being applied a part per ``work`` call; meanwhile no
        # later txn is applied, and reads it would show in part wait (in
        # ``_gated``, by connection)
        self._sliced: SlicedApply | None = None
        # a large multi being decoded and prepared a part per ``work`` call,
        # or a closeSession of many ephemerals being prepared so; meanwhile
        # whatever takes a zxid waits in ``_deferred``, in order
        self._prepping: SlicedPrep | SlicedClosePrep | None = None
        self._deferred: deque = deque()
        self._gated: dict[int, None] = {}
        # a txn's watch events handed out a part per ``work`` call when there
        # are many: (its InFlight, ApplyResult, the (conn, frame) still to
        # go); the connections they go to answer nothing meanwhile
        self._fanout: tuple | None = None
        self._fanout_wait: dict[int, None] = {}
        # reads computed a part per ``work`` call (long child lists, counts,
        # ephemerals), in order; while one is under way the txns that would
        # change its answer wait (``_scan_waits``), and while such a txn
        # waits (``_scan_held``) no new scan starts
        self._scans: deque[SlicedScan] = deque()
        self._scan_held = False
        self._held_session = 0   # the session of the txn that waits so
        # connections whose held output (``Conn.held``) goes on at the next
        # ``work`` call; one waiting for its send budget is out of it until
        # the runtime ``grant``s more
        self._streams: dict[int, None] = {}
        self._logged_zxid = self.tree.last_processed_zxid
        # A multi of more sub-txns than this is applied in parts (``work``);
        # 0: whole (ServerSettings.multi_ops_per_part).
        self.multi_ops_per_part = settings.multi_ops_per_part
        # A ChangeLog (server/changes.py) a runtime hands in to keep the applied
        # changes (the HTTP API's watch streams and history); None: nothing kept.
        self.changes: ChangeLog | None = None
        self.limits = SessionLimits(settings.ephemerals_per_session_max,
                                    settings.watches_per_session_max,
                                    settings.request_bytes_per_connection_max)
        for sid, timeout in (sessions or {}).items():
            self.sessions.add(sid, timeout, now_ms)

    def _session_id_server_id(self) -> int:
        """The server id in the top byte of new session ids: a standalone
        ZooKeeper uses 1 whatever its myid (ZooKeeperServer's
        createSessionTrackerServerId); the roles of an ensemble use their
        own id."""
        return 1

    # ---- the three verbs ---------------------------------------------------

    def ready(self) -> Ready:
        if not (self._persist or self._send or self._close or self._logs):
            return _NOTHING   # the common case in a pump: no allocation
        return Ready(tuple(self._persist), tuple(self._send), tuple(self._close), tuple(self._logs))

    def advance(self, ready: Ready) -> None:
        if ready is _NOTHING:
            return
        del self._persist[:len(ready.persist)]
        del self._send[:len(ready.send)]
        del self._close[:len(ready.close)]
        del self._logs[:len(ready.logs)]

    # Roles override these: a learner forwards writes and never expires
    # sessions or reaps containers (the leader does, through the log).
    OWNS_SESSIONS: ClassVar[bool] = True
    READ_ONLY: ClassVar[bool] = False   # the ConnectResponse's readOnly: this is a read-only server

    def _is_write(self, op: int) -> bool:
        return op in _QUEUE_WRITE_OPS

    def _local_sessions(self) -> bool:
        """New sessions are local (no txn): ensemble roles with
        localSessionsEnabled; a standalone server never."""
        return False

    def tick(self, now_ms: int) -> None:
        self.now_ms = now_ms
        if self._handshaking:
            self._expire_handshakes(now_ms)
        for sid in self.sessions.expired(now_ms):
            self._log(f"Expiring session 0x{sid & 0xFFFFFFFFFFFFFFFF:x}, timeout of "
                      f"{self.sessions.sessions[sid].timeout_ms}ms exceeded")
            if self.sessions.is_local(sid):
                self._session_closed(sid)   # nothing to log: no ephemerals, no txn
            else:
                self._submit_close_session(sid, None, None)
        if not self.OWNS_SESSIONS:
            return
        if now_ms - self._last_reap_ms >= self.settings.container_check_interval_ms:
            self._last_reap_ms = now_ms
            self._reap_containers()

    def _expire_handshakes(self, now_ms: int) -> None:
        """Close the connections that have no session after
        ``sessionless_cnxn_timeout_ms``, as ZooKeeper's NIOServerCnxnFactory
        does (its expiry queue closes them 10-20 s after connecting): one
        that never finishes the handshake must not hold its maxClientCnxns
        slot forever."""
        hs = self._handshaking
        while hs:
            conn_id, deadline_ms = next(iter(hs.items()))
            if deadline_ms > now_ms:
                return
            del hs[conn_id]
            conn = self.conns.get(conn_id)
            if conn is not None and not conn.established and not conn.closing:
                self._log(f"Closing connection from {conn.peer_ip}: no session after "
                          f"{self.settings.sessionless_cnxn_timeout_ms} ms")
                self._close_conn(conn)

    # ---- connections ----------------------------------------------------------

    def connection_made(self, conn_id: int, peer_ip: str, now_ms: int, tls_ids: tuple = ()) -> None:
        """``tls_ids``: the x509 identity of a client certificate (auth/x509.py)."""
        self.conns[conn_id] = Conn(conn_id, peer_ip, auth_ids=[R.Id("ip", peer_ip), *tls_ids],
                                   connected_ms=now_ms,
                                   send_budget=self.settings.send_budget_bytes or _UNLIMITED)
        for i in tls_ids:
            if i.scheme == "x509":
                self._log(f"Authenticated Id '{i.id}' for Scheme 'x509'")
        self._handshaking[conn_id] = now_ms + self.settings.sessionless_cnxn_timeout_ms
        self.stats.connections_opened += 1

    def grant(self, conn_id: int, budget_bytes: int, now_ms: int) -> None:
        """The runtime's word that ``conn_id`` may be given ``budget_bytes``
        more of read replies (its limit less what is still queued for it);
        reads that waited for it are answered now."""
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        conn.send_budget = budget_bytes if self.settings.send_budget_bytes else _UNLIMITED
        if conn.held is not None and budget_bytes > 0:
            self._streams[conn_id] = None
        if conn.queue and budget_bytes > 0:
            self.now_ms = now_ms
            self._drain(conn)

    def connection_lost(self, conn_id: int, now_ms: int) -> None:
        """Watches belong to the connection, as in ZooKeeper (the ServerCnxn
        is the Watcher; NIOServerCnxn.close removes all of its one-shot,
        persistent and recursive watches): a client that comes back to its
        session re-arms them with setWatches."""
        conn = self.conns.pop(conn_id, None)
        self._handshaking.pop(conn_id, None)
        self._streams.pop(conn_id, None)
        if conn is not None:
            # its unanswered requests leave the accounting with it (a write
            # still in flight is applied, unanswered)
            self.stats.outstanding -= len(conn.queue)
            conn.queue.clear()
        if conn is not None and conn.session_id and self.owner.get(conn.session_id) == conn_id:
            del self.owner[conn.session_id]
            if conn.may_watch:
                self.watches.remove_session(conn.session_id)

    def _reconfig_hook(self) -> Callable | None:
        """Prep's reconfig check: the leader's (LeaderServer); none here, so
        a reconfig is UNIMPLEMENTED. A method, not a class attribute the
        leader overrides: the compiled class would read its own None."""
        return None

    def _wall_ms(self) -> int:
        return self.now_ms + self.settings.wall_offset_ms

    def _log(self, line: str, level: str = "info") -> None:
        """One log line for the runtime to write: (level, text)."""
        self._logs.append((level, line))

    def _close_conn(self, conn: Conn) -> None:
        if not conn.closing:
            conn.closing = True
            if conn.held is not None:
                conn.close_when_sent = True   # after the reply going out in parts
            else:
                self._close.append(conn.conn_id)

    def _emit(self, conn: Conn, data: bytes | Pieces) -> None:
        conn.packets_sent += 1
        self.stats.packets_sent += 1
        if conn.held is not None:
            self._hold(conn, data)   # behind a long reply still going out
        elif len(data) > _REPLY_PART and self.multi_ops_per_part:
            conn.held = deque()
            self._hold(conn, data)
            self._stream_part(conn)
        else:
            self._send.append((conn.conn_id, data))

    # ---- long replies: a part per loop turn --------------------------------------

    def _hold(self, conn: Conn, data: bytes | Pieces) -> None:
        """``data`` after what ``conn`` holds, cut in parts of at most
        ``_REPLY_PART`` bytes (views: nothing is copied here)."""
        held = conn.held
        assert held is not None
        for piece in (data.parts if type(data) is Pieces else (data,)):
            if len(piece) <= _REPLY_PART:
                held.append(piece)
            else:
                view = memoryview(piece)
                held.extend(view[i:i + _REPLY_PART] for i in range(0, len(piece), _REPLY_PART))

    def _stream_part(self, conn: Conn) -> int:
        """About ``_REPLY_PART`` more bytes of what ``conn`` holds, as one
        bytes; once all is out, what waited behind it is answered (or the
        connection closed). While its send budget is spent, the rest waits
        for the runtime's next ``grant``. Returns the bytes handed out."""
        held = conn.held
        assert held is not None
        out, size = [], 0
        while held and size < _REPLY_PART:
            piece = held.popleft()
            out.append(piece)
            size += len(piece)
        self._send.append((conn.conn_id, out[0] if len(out) == 1 and type(out[0]) is bytes
                           else b"".join(out)))
        conn.send_budget -= size
        if held and conn.send_budget > 0:
            self._streams[conn.conn_id] = None
            return size
        self._streams.pop(conn.conn_id, None)
        if held:
            return size   # the rest after ``grant``
        conn.held = None
        if conn.close_when_sent:
            self._close.append(conn.conn_id)
        else:
            self._drain(conn)
        return size

    def _stream_parts(self) -> None:
        """A part for each connection in line, up to ``_REPLY_TURN``
        bytes in all; a connection served goes to the back of the line."""
        left = _REPLY_TURN
        for conn_id in list(self._streams):
            if left <= 0:
                return
            conn = self.conns.get(conn_id)
            self._streams.pop(conn_id, None)
            if conn is not None and conn.held is not None:
                left -= self._stream_part(conn)

    # ---- handshake ------------------------------------------------------------

    def connect(self, conn_id: int, req: R.ConnectRequest, now_ms: int) -> None:
        self.now_ms = now_ms
        conn = self.conns[conn_id]
        conn.read_only_flag = req.has_read_only
        conn.packets_received += 1
        self.stats.packets_received += 1
        if req.lastZxidSeen > self.tree.last_processed_zxid:
            self._log(f"Refusing session request for client {conn.peer_ip} as it has seen zxid "
                      f"0x{req.lastZxidSeen:x} our last zxid is "
                      f"0x{self.tree.last_processed_zxid:x} client must try another server",
                      "warning")
            self._close_conn(conn)
            return
        s = self.settings
        timeout = min(max(req.timeOut, s.session_timeout_ms_min), s.session_timeout_ms_max)
        conn.timeout_ms = timeout
        conn.early = []
        if req.sessionId == 0:
            if self._local_sessions():
                self._new_local_session(conn, self.sessions.next_session_id(), timeout)
                return
            if not self.can_write:
                self._close_conn(conn)
                return
            self._new_session(conn, self.sessions.next_session_id(), timeout, req)
            return
        session = self.sessions.sessions.get(req.sessionId)
        if session is None or session.closing or req.passwd != session_password(req.sessionId):
            self._emit(conn, self._connect_response(conn, 0, 0, bytes(16)))
            self._close_conn(conn)
            return
        self._reattach(conn, req.sessionId, timeout)

    def _reattach(self, conn: Conn, sid: int, timeout: int) -> None:
        """A client reconnecting with a valid id and password (a learner asks
        the leader first)."""
        self._attach(conn, sid, timeout)

    def _new_session(self, conn: Conn, sid: int, timeout: int, req: R.ConnectRequest) -> None:
        if self._defer(self._new_session, conn, sid, timeout, req):
            return
        hdr = R.TxnHeader(sid, 0, self._take_zxid(), self._wall_ms(), OP.createSession)
        self._hand_to_log(InFlight(hdr, R.CreateSessionTxn(timeout), conn.conn_id))

    def _new_local_session(self, conn: Conn, sid: int, timeout: int) -> None:
        """A session only this server knows: no txn, answered at once."""
        self.sessions.add(sid, timeout, self.now_ms, local=True)
        self._attach(conn, sid, timeout)
        self._session_created(conn, self.tree.last_processed_zxid)

    def _connect_response(self, conn: Conn, timeout: int, sid: int, passwd: bytes) -> bytes:
        body = R.ConnectResponse(0, timeout, sid, passwd, self.READ_ONLY,
                                 conn.read_only_flag).to_bytes()
        return struct.pack(">i", len(body)) + body

    def _session_created(self, conn: Conn, zxid: int) -> None:
        """The new session's answer counts as a response (cxid 0), as
        ZooKeeper's FinalRequestProcessor does for createSession."""
        conn.responded(OP.createSession, 0, zxid, self.now_ms - conn.connected_ms,
                       self.now_ms)

    def _attach(self, conn: Conn, sid: int, timeout: int) -> None:
        old = self.owner.get(sid)
        if old is not None and old != conn.conn_id and old in self.conns:
            # A client that moved to a new connection: the old one is stale,
            # and its watches go with it (connection_lost will not see it as
            # the owner any more).
            stale = self.conns[old]
            self._close_conn(stale)
            if stale.may_watch:
                self.watches.remove_session(sid)
        self.owner[sid] = conn.conn_id
        conn.session_id = sid
        conn.established = True
        self._handshaking.pop(conn.conn_id, None)
        self.sessions.touch(sid, self.now_ms)
        self._emit(conn, self._connect_response(conn, timeout, sid, session_password(sid)))
        early, conn.early = conn.early, None
        for xid, op, body in early or ():
            try:
                self.request(conn.conn_id, xid, op, memoryview(body), self.now_ms)
            except ProtocolViolation as e:
                self._log(f"Closing connection from {conn.peer_ip}: {e}", "warning")
                self._close_conn(conn)
                return

    # ---- requests -------------------------------------------------------------

    def request(self, conn_id: int, xid: int, op: int, body: memoryview | bytes, now_ms: int) -> None:
        """One framed request. Raises ProtocolViolation if its body is malformed."""
        self.now_ms = now_ms
        conn = self.conns[conn_id]
        if conn.early is not None and not conn.established and not conn.closing:
            # Sent before the ConnectResponse came back: ZooKeeper queues it
            # behind the session's creation and answers it; so do we.
            if len(conn.early) >= limits.CONNECTION_OUTSTANDING_MAX:
                raise ProtocolViolation(f"more than {limits.CONNECTION_OUTSTANDING_MAX} "
                                        "requests before the session was established")
            conn.early.append((xid, op, bytes(body)))
            return
        conn.packets_received += 1
        self.stats.packets_received += 1
        if conn.closing or not conn.established:
            return
        sid = conn.session_id
        self.sessions.touch(sid, now_ms)
        if self.owner.get(sid) != conn_id:
            self._emit(conn, frame(xid, self.tree.last_processed_zxid, ERR.SESSIONMOVED))
            self._close_conn(conn)
            return
        if op == OP.auth:
            self._auth(conn, xid, body)
            return
        if op == OP.sasl and self.settings.auth.sasl_enabled:
            self._sasl(conn, xid, body)
            return
        if op == OP.sasl:
            # No SASL here. ZooKeeper without a JAAS configuration answers an
            # empty token, which SASL clients (kazoo) answer again, forever;
            # a clear AUTHFAILED and a closed connection ends that at once.
            self._log(f"Client {conn.peer_ip} attempted SASL but SASL is not configured; "
                      "closing", "warning")
            self._emit(conn, frame(xid, 0, ERR.AUTHFAILED))
            self._close_conn(conn)
            return
        if self.settings.auth.enforce_enabled:
            why = enforcement_fails(self.settings.auth, conn.auth_ids)
            if why is not None:
                self._log(why, "error")
                self._emit(conn, frame(xid, 0, ERR.SESSIONCLOSEDREQUIRESASLAUTH))
                self._close_conn(conn)
                return
        req = self._decode(op, body)
        # ZooKeeper decodes a reconfig before it takes a zxid, so a malformed
        # one is answered MARSHALLINGERROR without a txn, like a read (other
        # writes take their zxid first: an error txn). Found by the
        # differential fuzzer.
        is_write = self._is_write(op) and not (op == OP.reconfig and req is _MALFORMED)
        entry = Entry(xid, op, req, is_write, received_ms=now_ms)
        if entry.is_write and not self.OWNS_SESSIONS:
            entry.body = bytes(body)  # a learner forwards the request as it came
        if self.limits.on:
            self._check_limits(conn, entry, len(body))
        conn.queue.append(entry)
        self.stats.outstanding += 1
        if entry.is_write:
            self._submit_write(conn, entry)
        else:
            self._drain(conn)

    def _check_limits(self, conn: Conn, entry: Entry, size: int) -> None:
        """Answer a request over a per-session limit with its error, in its place."""
        out = refusal(self.limits, self, conn, entry.op, entry.req, size)
        if self.limits.request_bytes_max:
            entry.size = size
            conn.queued_bytes += size
        if out is None:
            return
        err, line = out
        entry.reply = frame(entry.xid, self.tree.last_processed_zxid, err)
        entry.is_write = False
        if line is not None:
            self._log(line, "warning")

    def _decode(self, op: int, body: memoryview | bytes):
        """The request record, ``None`` for ops without a body, ``_UNKNOWN``
        for an op ZooKeeper does not know, ``_MALFORMED`` for a body that does
        not decode (answered MARSHALLINGERROR, as ZooKeeper does: the frame
        was sound, so the connection and the session go on)."""
        if op == OP.createSession:
            # ZooKeeper's prep reads just a session timeout: the first int.
            if len(body) < 4:
                return _MALFORMED
            return _BODY_INT.unpack_from(body)[0]
        cls = R.REQUEST_RECORD.get(op, False)
        if cls is False and op not in (OP.multi, OP.multiRead):
            return _CLIENT_REFUSED.get(op, _UNKNOWN)
        try:
            if op == OP.multi:
                if self.multi_ops_per_part and len(body) > self.settings.multi_sliced_body_bytes:
                    return _BigMulti(bytes(body))
                return decode_multi(body, MULTI_WRITE_OPS)
            if op == OP.multiRead:
                return decode_multi(body, MULTI_READ_OPS)
            if cls is None:
                return None
            # one Reader for every request (an object less per request), let go
            # of the body once read
            r = self._reader
            r.buf = body if isinstance(body, memoryview) else memoryview(body)
            r.pos, r.end = 0, len(body)
            try:
                return cls.read(r)
            finally:
                r.buf = _NO_BODY
        except DecodeError as e:
            self._log(f"Failed to process request op {op}: {e}", "warning")
            return _MALFORMED

    def _auth(self, conn: Conn, xid: int, body: memoryview | bytes) -> None:
        try:
            pkt = R.AuthPacket.read(Reader(body))
        except DecodeError as e:
            raise ProtocolViolation(f"malformed auth packet: {e}") from None
        outcome = authenticate(pkt.scheme, pkt.auth, self.settings.super_digest)
        if not outcome.ok:
            self._log(f"Authentication failed for scheme: {pkt.scheme}", "warning")
            self._emit(conn, frame(XID.AUTH, 0, ERR.AUTHFAILED))
            self._close_conn(conn)
            return
        for i in outcome.ids:
            if i not in conn.auth_ids:
                conn.auth_ids.append(i)
        self._emit(conn, frame(XID.AUTH, 0, ERR.OK))

    def _sasl(self, conn: Conn, xid: int, body: memoryview | bytes) -> None:
        """One SASL token, answered at once as ZooKeeper's processSasl does
        (zabpy/auth/sasl.py holds the exchange)."""
        try:
            token = R.GetSASLRequest.read(Reader(body)).token or b""
        except DecodeError as e:
            raise ProtocolViolation(f"malformed SASL request: {e}") from None
        if conn.sasl is None:
            conn.sasl = SaslExchange(self.settings.auth)
        out = conn.sasl.step(token, conn.session_id, conn.peer_ip)
        for level, line in out.logs:
            self._log(line, level)
        for i in out.ids:
            if i not in conn.auth_ids:
                conn.auth_ids.append(i)
        self._emit(conn, frame(xid, 0, out.err, R.SetSASLResponse(out.token).to_bytes()))
        if out.close:
            self._close_conn(conn)

    def _take_zxid(self) -> int:
        z = self.next_zxid
        self.next_zxid += 1
        return z

    def _hand_to_log(self, item: InFlight) -> None:
        self.inflight.append(item)
        self._persist.append((item.hdr, item.txn))

    def _defer(self, fn, *args) -> bool:
        """While a large multi is being prepared, ``fn(*args)`` (which takes
        a zxid) waits for it: True if it was put off."""
        if self._prepping is None:
            return False
        self._deferred.append((fn, args))
        return True

    def _submit_write(self, conn: Conn, entry: Entry) -> None:
        if self._prepping is not None and self._defer(self._submit_write, conn, entry):
            return
        if not self.can_write:
            entry.reply = frame(entry.xid, self.tree.last_processed_zxid, ERR.SYSTEMERROR)
            self._drain(conn)
            return
        if entry.op == OP.closeSession:
            if self.sessions.is_local(conn.session_id):
                self._close_local(conn, entry)
            else:
                self._submit_close_session(conn.session_id, conn, entry)
            return
        ephemeral_error = 0
        if self.sessions.is_local(conn.session_id) and creates_ephemeral(entry.op, entry.req):
            if self.settings.local_sessions_upgrading_enabled:
                self._upgrade(conn.session_id)
            else:
                ephemeral_error = ERR.EPHEMERALONLOCALSESSION
        zxid = self._take_zxid()
        req = entry.req
        if entry.op == OP.createSession and req is not _MALFORMED:
            ttype, txn = self._recreate_session(conn.session_id, req)
        elif req is _MALFORMED:
            ttype, txn = OP.error, R.ErrorTxn(ERR.MARSHALLINGERROR)
        elif req is _BAD_ARGUMENTS:
            ttype, txn = OP.error, R.ErrorTxn(ERR.BADARGUMENTS)
        else:
            ctx = conn.prep_ctx
            if ctx is None or ctx.session_id != conn.session_id:
                # one per connection: auth_ids is the connection's live list
                ctx = conn.prep_ctx = PrepContext(
                    conn.session_id, conn.auth_ids, self.settings.extended_types,
                    self.settings.skip_acl, self.settings.reconfig_enabled,
                    enforce_quota=self.settings.enforce_quota,
                    acl_schemes=self.settings.auth.acl_schemes)
            ctx.ephemeral_error = ephemeral_error
            if isinstance(req, _BigMulti):
                self._prepping = SlicedPrep(conn, entry, conn.session_id, entry.xid, req.body,
                                            zxid, ctx, self.multi_ops_per_part)
                return
            ttype, txn = self._prepare(entry.op, req, zxid, ctx)
        # the time is _wall_ms(), inlined (a call per write)
        hdr = R.TxnHeader(conn.session_id, entry.xid, zxid,
                          self.now_ms + self.settings.wall_offset_ms, ttype)
        self._hand_to_log(InFlight(hdr, txn, conn.conn_id, entry))

    def _recreate_session(self, sid: int, timeout: int):
        """createSession sent on an established connection, as ZooKeeper 3.8
        takes it: a createSession txn for the connection's own session with
        the body's first int as its timeout, and that timeout (not the
        negotiated one) sets the session's next deadline until its next
        request; a timeout of 0 lets it expire at the next tick. Answered
        with a ConnectResponse (``_after_apply``)."""
        session = self.sessions.sessions.get(sid)
        if session is None or session.closing:
            return OP.error, R.ErrorTxn(ERR.SESSIONEXPIRED)
        self.sessions.reschedule(sid, timeout, self.now_ms)
        return OP.createSession, R.CreateSessionTxn(timeout)

    def _prepare(self, op: int, req, zxid: int, ctx: PrepContext):
        """prep, after ZooKeeper's checkSession: a write of a session that is
        gone or closing becomes an error txn with SESSIONEXPIRED."""
        session = self.sessions.sessions.get(ctx.session_id)
        if session is None and self._foreign_local(ctx.session_id):
            pass
        elif session is None or session.closing:
            return OP.error, R.ErrorTxn(ERR.SESSIONEXPIRED)
        ctx.reconfig = self._reconfig_hook()
        out = prepare(op, req, zxid, self.pending, ctx)
        self._quota_logs(ctx)
        return out

    def _quota_logs(self, ctx: PrepContext) -> None:
        """The quota lines and counts a prep left in ``ctx``."""
        if ctx.quota_messages:
            for msg in ctx.quota_messages:
                for line in self._quota_log.log(msg, self.now_ms):
                    self._log(line, "warning")
            ctx.quota_messages.clear()
            for ns in ctx.quota_exceeded:
                exceeded = self.stats.quota_exceeded
                exceeded[ns] = exceeded.get(ns, 0) + 1
            ctx.quota_exceeded.clear()

    def _foreign_local(self, session_id: int) -> bool:
        """A session unknown here that may be another member's local one (or
        one being upgraded): ZooKeeper's leader lets its writes through
        (LeaderSessionTracker.checkSession), so only ids of this server's
        own are known to be gone."""
        return self._local_sessions() and (
            session_id in self.upgrading or session_id >> 56 != self._session_id_server_id())

    # ---- local sessions ------------------------------------------------------------

    def _close_local(self, conn: Conn, entry: Entry) -> None:
        """A local session's closeSession costs no txn: it is answered in
        its turn in the connection's queue, as a read is."""
        entry.is_write = False
        entry.req = _LOCAL_CLOSE
        self.sessions.set_closing(conn.session_id)
        self._drain(conn)

    def _upgrade(self, session_id: int) -> None:
        """Make a local session global before its first ephemeral: a
        createSession txn goes first, in the same order as the request."""
        s = self.sessions.sessions[session_id]
        self._log(f"Upgrading session 0x{session_id & 0xFFFFFFFFFFFFFFFF:x}")
        self.sessions.add(session_id, s.timeout_ms, self.now_ms)
        self.upgrading[session_id] = s.timeout_ms
        self._send_upgrade(session_id, s.timeout_ms)

    def _send_upgrade(self, session_id: int, timeout_ms: int) -> None:
        hdr = R.TxnHeader(session_id, 0, self._take_zxid(), self._wall_ms(),
                          OP.createSession)
        self._hand_to_log(InFlight(hdr, R.CreateSessionTxn(timeout_ms), None))

    def _submit_close_session(self, sid: int, conn: Conn | None, entry: Entry | None,
                              cxid: int = 0) -> None:
        """``cxid``: the client's xid when the close came from a learner (it
        answers its client when the txn with that cxid commits)."""
        if self._defer(self._submit_close_session, sid, conn, entry, cxid):
            return
        self.sessions.set_closing(sid)
        zxid = self._take_zxid()
        hdr = R.TxnHeader(sid, entry.xid if entry else cxid, zxid, self._wall_ms(),
                          OP.closeSession)
        part = self.settings.close_paths_per_part
        if self.multi_ops_per_part and len(self.tree.ephemerals.get(sid, ())) > part:
            # many ephemerals: prepared a part per ``work`` call (_prep_part)
            self._prepping = SlicedClosePrep(conn, entry, hdr,
                                             ClosePrep(sid, zxid, self.pending, part))
            return
        paths = prepare_close_session(sid, zxid, self.pending)
        self._close_to_log(hdr, close_session_txn(paths), len(paths), conn, entry)

    def _close_to_log(self, hdr: R.TxnHeader, txn: R.CloseSessionTxn | None, count: int,
                      conn: Conn | None, entry: Entry | None) -> None:
        if txn is None:
            self._log(f"closeSession of session 0x{hdr.clientId & 0xFFFFFFFFFFFFFFFF:x} at "
                      f"zxid 0x{hdr.zxid:x}: its {count} ephemerals are not listed in the txn "
                      f"(more than {limits.CLOSE_SESSION_PATHS_BYTES_MAX} bytes)")
        self._hand_to_log(InFlight(hdr, txn, conn.conn_id if conn else None, entry))

    # ---- durable: apply and answer ---------------------------------------------

    def logged(self, zxid: int, now_ms: int) -> None:
        """Every txn up to ``zxid`` is durable: apply them in order and answer."""
        self.now_ms = now_ms
        if zxid > self._logged_zxid:
            self._logged_zxid = zxid
        self._apply_logged()

    def _apply_logged(self) -> None:
        while self._sliced is None and self._fanout is None and self.inflight \
                and self.inflight[0].hdr.zxid <= self._logged_zxid:
            if self._scans:
                item = self.inflight[0]
                if self._scan_waits(item.hdr, item.txn):
                    return
            held = self._scan_held
            self._apply_one(self.inflight.popleft())
            if held:
                self._scan_unheld()

    def _scan_waits(self, hdr: R.TxnHeader, txn) -> bool:
        """The next txn in order would change the answer of a scan under
        way: it (and all after it) waits, and so do the reads that would
        start a scan (``_scan_held``), until it is applied."""
        tree = self.tree
        for job in self._scans:
            if job.waits_for(hdr, txn, tree):
                self._scan_held = True
                self._held_session = hdr.clientId
                return True
        return False

    def _apply_one(self, item: InFlight) -> None:
        """Apply the next txn in order, its watch events and its answer
        (``_after_apply``): whole, or, when it is large, started in parts
        (``_sliced``: a large multi or a closeSession of many ephemerals; or
        ``_fanout``: a watch storm), which ``work`` goes on with and ends with
        ``_after_apply`` and ``_apply_next``. The caller applies no later txn
        while ``_sliced`` or ``_fanout`` is set. Standalone, leader and
        learners all apply through here."""
        part = self.multi_ops_per_part
        if part and item.hdr.type == OP.multi and len(item.txn.txns) > part:
            self._sliced = SlicedApply(item, part, limits.WATCH_EVENTS_PER_PART)
            return
        if part and item.hdr.type == OP.closeSession and self._large_close(item):
            self._sliced = SlicedClose(item, self.settings.close_deletes_per_part,
                                       limits.WATCH_EVENTS_PER_PART,
                                       self.settings.close_paths_per_part)
            return
        res = self.tree.apply(item.hdr, item.txn)
        if self.changes is not None:
            self._record_change(item.hdr, item.txn, res.triggers, item.conn_id)
        self.pending.applied(item.hdr.zxid)
        watches = self.watches
        # no watch anywhere: nothing to notify (the test _notifications
        # begins with, made here to spare a call per txn)
        notes = self._notifications(res.triggers) if watches.data or watches.child else ()
        if part and len(notes) > limits.WATCH_EVENTS_PER_PART:
            # A watch storm: its events go out in parts; whoever gets one
            # hears nothing else before it (no reply, no later event).
            self._fanout = (item, res, deque(notes))
            self._fanout_wait = dict.fromkeys(conn.conn_id for conn, _ in notes)
            return
        for conn, data in notes:
            self._emit(conn, data)
        self._after_apply(item, res)

    def _large_close(self, item: InFlight) -> bool:
        """A closeSession with more deletes than one part takes."""
        owned = len(self.tree.ephemerals.get(item.hdr.clientId, ()))
        listed = len(item.txn.paths2Delete or ()) if item.txn is not None else 0
        return max(owned, listed) > self.settings.close_deletes_per_part

    @property
    def busy(self) -> bool:
        """A large multi is part-way through: call ``work`` again (next loop turn)."""
        return (self._sliced is not None or self._prepping is not None
                or self._fanout is not None or bool(self._scans) or bool(self._streams))

    @property
    def applying(self) -> bool:
        """The tree is not yet the state of every txn durable (committed):
        a multi is part-way in, or txns wait behind it or behind a storm."""
        return (self._sliced is not None or self._fanout is not None
                or bool(self.inflight and self.inflight[0].hdr.zxid <= self._logged_zxid))

    def work(self, now_ms: int) -> None:
        """One more part of each large multi under way."""
        self.now_ms = now_ms
        if self._prepping is not None:
            self._prep_part()
        if self._sliced is not None:
            self._apply_part()
        if self._fanout is not None:
            self._fanout_part()
        if self._scans:
            self._scan_part()
        if self._streams:
            self._stream_parts()

    def _fanout_part(self) -> None:
        assert self._fanout is not None
        item, res, notes = self._fanout
        for _ in range(min(len(notes), limits.WATCH_EVENTS_PER_PART)):
            conn, data = notes.popleft()
            self._emit(conn, data)
        if notes:
            return
        self._fanout = None
        waiting, self._fanout_wait = self._fanout_wait, {}
        self._after_apply(item, res)
        for conn_id in waiting:
            conn = self.conns.get(conn_id)
            if conn is not None:
                self._drain(conn)
        self._apply_next()

    def _prep_part(self) -> None:
        """Decode or prepare a part; after the last, hand the multi to the
        log and run what waited for it."""
        sp = self._prepping
        assert sp is not None
        if isinstance(sp, SlicedClosePrep):
            if not sp.prep.step():
                return
            self._prepping = None
            self._close_to_log(sp.hdr, sp.prep.finish(self.pending), sp.prep.count, sp.conn,
                               sp.entry)
            self._run_deferred()
            return
        if not sp.step(self.pending, self._session_alive(sp.session_id)):
            return
        if sp.decode_error is not None:
            self._log(f"Failed to process request op {OP.multi}: {sp.decode_error}",
                      "warning")
        self._quota_logs(sp.ctx)
        assert sp.result is not None
        ttype, txn, ops = sp.result
        if sp.entry is not None:
            sp.entry.req = ops if ops is not None else _MALFORMED
        hdr = R.TxnHeader(sp.session_id, sp.cxid, sp.zxid, self._wall_ms(), ttype)
        self._prepping = None
        self._hand_to_log(InFlight(hdr, txn, sp.conn.conn_id if sp.conn is not None else None,
                                   sp.entry))
        self._run_deferred()

    def _session_alive(self, session_id: int) -> bool:
        """What ``_prepare`` asks before it prepares a write: the session is
        here and not closing, or may be another member's local one."""
        session = self.sessions.sessions.get(session_id)
        if session is None:
            return self._foreign_local(session_id)
        return not session.closing

    def _run_deferred(self) -> None:
        while self._deferred and self._prepping is None:
            fn, args = self._deferred.popleft()
            fn(*args)

    def _apply_part(self) -> None:
        """Sub-txns into the tree, or, once all are in, watch events; after
        the last, the multi's reply, the reads that waited for it, and the
        txns logged behind it."""
        sl = self._sliced
        assert sl is not None
        if not sl.in_tree:
            # its events: for a watch, the change log, or the audit log's
            # list of a closed session's ephemerals
            watches = self.watches
            sl.apply_part(self.tree, bool(watches.data or watches.child)
                          or self.changes is not None or bool(self.settings.auth.audit))
            return
        self._fire(sl.next_triggers())
        if not sl.done:
            return
        self._sliced = None
        zxid = sl.item.hdr.zxid
        if self.changes is not None:
            self._record_change(sl.item.hdr, sl.item.txn, sl.out.triggers, sl.item.conn_id)
        if zxid > self.tree.last_processed_zxid:
            self.tree.last_processed_zxid = zxid
        self.pending.applied(zxid)
        self._after_apply(sl.item, sl.out)
        gated, self._gated = self._gated, {}
        for conn_id in gated:
            conn = self.conns.get(conn_id)
            if conn is not None:
                self._drain(conn)
        self._apply_next()

    def _apply_next(self) -> None:
        """Go on with the txns that waited behind a sliced multi or a storm."""
        self._apply_logged()

    def settle(self, now_ms: int) -> None:
        """Apply, whole and now, every txn already durable (or committed):
        the multi under way included. The replica calls it before anything
        reads the tree as a state of the log (a SNAP, the end of a role); a
        multi being prepared is left as it is."""
        self.now_ms = now_ms
        while self._sliced is not None or self._fanout is not None or self._scans:
            if self._sliced is not None:
                self._apply_part()
            elif self._fanout is not None:
                self._fanout_part()
            else:   # the txns they hold back follow
                self._finish_scan()
        assert not self.applying, "settled with txns still to apply"

    def apply_txn(self, hdr: R.TxnHeader, txn, now_ms: int, conn_id: int | None = None):
        """Apply a txn prepared elsewhere (another server, an earlier term):
        the tree, the watches it fires and the session table. ``conn_id``:
        the connection here that sent it, if one did (for the change log)."""
        self.now_ms = now_ms
        while self._scans:   # they see the tree as it was before it
            self._finish_scan()
        res = self.tree.apply(hdr, txn)
        if self.changes is not None:
            self._record_change(hdr, txn, res.triggers, conn_id)
        self._fire(res.triggers)
        self._sessions_follow(hdr, txn, res)
        return res

    def _sessions_follow(self, hdr: R.TxnHeader, txn, res) -> None:
        """The session table after a txn not prepared here is applied (its
        watch events out): a created session is added, a closed one dropped
        and its ephemerals audited."""
        if hdr.type == OP.createSession:
            self.sessions.add(hdr.clientId, txn.timeOut, self.now_ms)
            self.upgrading.pop(hdr.clientId, None)
        elif hdr.type == OP.closeSession:
            self._session_closed(hdr.clientId)
            if self.settings.auth.audit:
                self._audit(ephemeral_lines(self.settings.auth.server_user, hdr.clientId,
                                            res.triggers))

    def log_failed(self, reason: str) -> None:
        """The log could not be written: stop acknowledging writes (reads go on)."""
        if self.can_write:
            self._log(f"Severe unrecoverable error writing the transaction log: {reason}; "
                      "refusing writes", "error")
        self.can_write = False
        sp, self._prepping = self._prepping, None
        if sp is not None and sp.conn is not None and sp.conn.conn_id in self.conns:
            sp.entry.reply = frame(sp.entry.xid, self.tree.last_processed_zxid, ERR.SYSTEMERROR)
            self._drain(sp.conn)
        while self.inflight:
            item = self.inflight.pop()
            conn = self.conns.get(item.conn_id) if item.conn_id is not None else None
            if conn is not None and item.entry is not None:
                item.entry.reply = frame(item.entry.xid, self.tree.last_processed_zxid,
                                         ERR.SYSTEMERROR)
                self._drain(conn)
            elif conn is not None:
                self._close_conn(conn)
        self.pending = PendingChanges(self.tree)
        self.next_zxid = self.tree.last_processed_zxid + 1
        if self._scan_held:   # the txn it waited for is gone
            self._scan_unheld()
        self._run_deferred()  # refused now, in order

    def _after_apply(self, item: InFlight, res) -> None:
        hdr = item.hdr
        if hdr.type == OP.createSession and item.entry is not None:
            # On an established connection (_recreate_session): the session
            # keeps touching with its timeout (ZooKeeper keeps the txn's only
            # in the table its snapshots save; a log replay here takes it
            # too), and the client gets the ConnectResponse of its
            # connection, in its place in the queue.
            conn = self.conns.get(item.conn_id)  # type: ignore[arg-type]
            if conn is not None:
                item.entry.reply = self._connect_response(
                    conn, conn.timeout_ms, hdr.clientId, session_password(hdr.clientId))
                item.entry.reply_zxid = hdr.zxid
                self._drain(conn)
            return
        if hdr.type == OP.createSession:
            self.sessions.add(hdr.clientId, item.txn.timeOut, self.now_ms)
            self.upgrading.pop(hdr.clientId, None)
            conn = self.conns.get(item.conn_id)  # type: ignore[arg-type]
            if conn is not None and not conn.closing:
                self._attach(conn, hdr.clientId, item.txn.timeOut)
                self._session_created(conn, hdr.zxid)
            return
        if hdr.type == OP.closeSession:
            self._session_closed(hdr.clientId)
        conn = self.conns.get(item.conn_id) if item.conn_id is not None else None
        audit = self.settings.auth.audit
        if audit and hdr.type == OP.closeSession:
            self._audit(ephemeral_lines(self.settings.auth.server_user, hdr.clientId, res.triggers))
        if conn is None or item.entry is None:
            return
        entry = item.entry
        err, body = write_reply(entry.op, entry.req, res)
        if audit:
            self._audit(request_lines(entry.op, entry.req, hdr.type == OP.error, err, res, item.txn,
                                      conn.session_id, conn.peer_ip, conn.auth_ids))
        # frame(), inlined
        entry.reply = _REPLY.pack(16 + len(body), entry.xid, hdr.zxid, err) + body
        entry.reply_zxid = hdr.zxid  # spares _drain reading it back from the frame
        if hdr.type == OP.closeSession:
            entry.close_after = True
        self._drain(conn)

    def _record_change(self, hdr: R.TxnHeader, txn, triggers: list, conn_id: int | None) -> None:
        """An applied txn into the change log, with who sent it when the
        sender is connected here (its ids and IP as of now)."""
        conn = self.conns.get(conn_id) if conn_id is not None else None
        who = None
        if conn is not None:
            who = (tuple(f"{i.scheme}:{i.id}" for i in conn.auth_ids), conn.peer_ip)
        assert self.changes is not None  # only called when a change log is kept
        self.changes.record(hdr, triggers, txn, who)

    def _audit(self, lines: list) -> None:
        """Audit lines go out with the logs, marked for the audit logger."""
        for level, line in lines:
            self._logs.append(("audit_" + level, line))

    def _session_closed(self, sid: int) -> None:
        self.sessions.remove(sid)
        if self.limits.logged:
            self.limits.session_closed(sid)
        self.watches.remove_session(sid)
        owner = self.owner.pop(sid, None)
        if owner is not None and owner in self.conns:
            conn = self.conns[owner]
            if not conn.queue:
                self._close_conn(conn)
            else:
                conn.queue[-1].close_after = True

    def _fire(self, triggers: list) -> None:
        for conn, data in self._notifications(triggers):
            self._emit(conn, data)

    def _notifications(self, triggers: list) -> list:
        """(conn, frame) for the watch events of an applied txn. As ZooKeeper since
        CVE-2024-23944 (ZOOKEEPER-4799), an event reaches only a session with
        READ on the node (the parent for NodeChildrenChanged) by the ACL of
        that moment; the fired one-shot watch is consumed either way."""
        watches = self.watches
        data_watched, child_watched = watches.data, watches.child
        if not triggers or not (data_watched or child_watched):
            return []  # no watch anywhere (a recursive one is in these tables too)
        out = []
        skip_acl = self.settings.skip_acl
        encoded: dict[tuple[int, str], bytes] = {}  # a storm sends one frame to many
        anywhere = watches.has_recursive
        for ev, path, acl in triggers:
            if not anywhere and path not in data_watched and path not in child_watched:
                continue  # no watch on the path: most triggers (a closeSession has 2 per node)
            for sid, etype, p in watches.trigger(ev, path):
                cid = self.owner.get(sid)
                if cid is None:
                    continue
                conn = self.conns[cid]
                if acl is not OPEN_ACL_UNSAFE and not check_perm(acl, PERM.READ,
                                                                  conn.auth_ids, skip_acl):
                    continue
                data = encoded.get((etype, p))
                if data is None:
                    body = R.WatcherEvent(etype, STATE.SyncConnected, p).to_bytes()
                    data = encoded[(etype, p)] = frame(XID.NOTIFICATION, -1, 0, body)
                out.append((conn, data))
        return out

    def _drain(self, conn: Conn) -> None:
        """Send every answered request at the head of the queue, answering
        reads as they reach the head."""
        if self._fanout_wait and conn.conn_id in self._fanout_wait:
            return  # a watch event of a storm is still to come first
        # Tested through a local: a test of conn.held itself would make mypy
        # take conn.held for None in the rest of the function, and the
        # compiled build would then fail on it once _emit set it.
        held = conn.held
        if held is not None:
            return  # a long reply is going out in parts: the rest follow it
        q = conn.queue
        while q:
            entry = q[0]
            # entry.reply through a local too: _start_scan may set it
            reply = entry.reply
            if reply is None:
                if entry.is_write or conn.send_budget <= 0:
                    return
                if self._sliced is not None and self._sliced.read_waits(entry.op, entry.req):
                    self._gated[conn.conn_id] = None
                    return
                if entry.listing == 1 or (entry.op in _SCAN_OPS and self._start_scan(conn, entry)):
                    return   # computed in parts (``work``), or waits to start
                reply = entry.reply
                if reply is None:   # else a scan done in one part answered it
                    reply = entry.reply = self._answer_read(conn, entry)
                size = len(reply)
                if size <= _REPLY_PART:   # a longer one counts as its parts go out
                    conn.send_budget -= size
            q.popleft()
            conn.queued_bytes -= entry.size
            self.stats.outstanding -= 1
            latency = self.now_ms - entry.received_ms
            self.stats.record_latency(latency, entry.is_write)
            zxid = entry.reply_zxid
            if zxid is None:
                zxid = _REPLY_ZXID.unpack_from(entry.reply, 8)[0]
            conn.responded(entry.op, entry.xid, zxid, latency, self.now_ms)
            reply = entry.reply
            if conn.held is None and type(reply) is bytes and len(reply) <= _REPLY_PART:
                # _emit's common case, inlined: a call per reply
                conn.packets_sent += 1
                self.stats.packets_sent += 1
                self._send.append((conn.conn_id, reply))
            else:
                self._emit(conn, reply)
            if entry.close_after:
                self._close_conn(conn)
                self.stats.outstanding -= len(q)
                q.clear()
                return
            if conn.held is not None:
                return   # the rest after the long reply (``_stream_part``)

    def _start_scan(self, conn: Conn, entry: Entry) -> bool:
        """A read whose answer takes many nodes (a long child list that is
        not cached, a count of a large subtree, the ephemerals of a session
        owning many): computed in parts first (True), so that other
        connections are served meanwhile, and answered once done. It waits
        (True, its connection in ``_gated``) while a multi is applied in
        parts or a txn waits for the scans under way. False: answered as
        any read (a count done in its first part is answered so here)."""
        if entry.listing or not self.multi_ops_per_part:
            return False
        job = self._scan_for(conn, entry)
        if job is None:
            return False
        if type(job) is SlicedCount and job.step(self.tree):
            self._scan_reply(entry, job)   # small after all: one part
            return False
        if (self._scan_held and self._held_session != conn.session_id) \
                or self._sliced is not None:
            # (a read of the session whose txn waits goes first: that txn
            # came after it; it then waits for this scan too)
            self._gated[conn.conn_id] = None
            return True
        entry.listing = 1
        if type(job) is SlicedChildren:
            for other in self._scans:   # the same list being encoded: share it
                if type(other) is SlicedChildren and other.node is job.node:
                    other.join(conn.conn_id, conn.session_id, entry)
                    return True
        self._scans.append(job)
        return True

    def _scan_for(self, conn: Conn, entry: Entry) -> SlicedScan | None:
        """The scan a read needs, or None (answered whole: small, or an
        error, which ``_answer_read`` gives)."""
        req = entry.req
        path = getattr(req, "path", None)
        settings = self.settings
        if entry.op == OP.getEphemerals:
            owned = self.tree.ephemerals.get(conn.session_id)
            if owned is None or len(owned) <= settings.ephemerals_per_part or req is None:
                return None
            return SlicedEphemerals(conn.conn_id, conn.session_id, entry, owned,
                                    ephemerals_prefix(req.prefixPath),
                                    settings.ephemerals_per_part)
        if not isinstance(path, str) or (path in ("", "/") and entry.op == OP.getAllChildrenNumber):
            return None   # the whole tree is counted without a walk
        key = "/" if path == "" else path
        node = self.tree.nodes.get(key)
        if node is None:
            return None
        if entry.op == OP.getAllChildrenNumber:
            if node.child_count() == 0 or not check_perm(node.acl, PERM.READ, conn.auth_ids,
                                                         settings.skip_acl):
                return None
            return SlicedCount(conn.conn_id, conn.session_id, entry, key, self.tree,
                               settings.count_nodes_per_part)
        if node.children_wire is not None or node.child_count() <= settings.children_per_part:
            return None
        return SlicedChildren(conn.conn_id, conn.session_id, entry, key, node,
                              settings.children_per_part)

    def _scan_part(self) -> None:
        job = self._scans[0]
        if not any(cid in self.conns for cid, _ in job.waiters):
            self._scans.popleft()   # no one is left to answer
            self._scan_ended()
            return
        if job.step(self.tree):
            self._scans.popleft()
            self._scan_done(job)

    def _finish_scan(self) -> None:
        """The first scan under way, finished now (``settle``, ``apply_txn``)."""
        job = self._scans.popleft()
        while not job.step(self.tree):
            pass
        self._scan_done(job)

    def _scan_done(self, job: SlicedScan) -> None:
        """A scan is complete: its reads answered, then the txns it held back."""
        for conn_id, entry in job.waiters:
            conn = self.conns.get(conn_id)
            if conn is not None:
                self._scan_reply(entry, job)
                self._drain(conn)
        self._scan_ended()

    def _scan_reply(self, entry: Entry, job: SlicedScan) -> None:
        """``entry`` answered by a complete scan: its reply frame (in pieces
        when long), or, for a child list, as any read once it reaches it."""
        entry.listing = 2
        parts = job.body_parts(self.tree)
        if parts is None:
            return
        zxid = entry.reply_zxid = self.tree.last_processed_zxid
        size = sum(map(len, parts))
        head = _REPLY.pack(16 + size, entry.xid, zxid, ERR.OK)
        if size > _REPLY_PART:
            entry.reply = Pieces((head, *parts))
        else:
            entry.reply = head + b"".join(parts)

    def _scan_ended(self) -> None:
        """A scan is over: the txns it held back go on."""
        self._apply_next()

    def _scan_unheld(self) -> None:
        """The txn that waited for scans is applied: the reads that waited
        to start theirs start now, before the next txn is applied (so each
        sees the state it would have had, and the zxids a session is
        answered with never go back), unless a multi is being applied in
        parts (that one answers them at its end)."""
        self._scan_held = False
        if self._sliced is None and self._gated:
            gated, self._gated = self._gated, {}
            for conn_id in gated:
                conn = self.conns.get(conn_id)
                if conn is not None:
                    self._drain(conn)

    def _answer_read(self, conn: Conn, entry: Entry) -> bytes | Pieces:
        zxid = self.tree.last_processed_zxid
        op = entry.op
        if op == OP.ping:
            return frame(XID.PING, zxid, 0)
        if entry.req is _LOCAL_CLOSE:
            self._session_closed(conn.session_id)
            entry.close_after = True
            return frame(entry.xid, zxid, 0)
        conn.may_watch = True
        if entry.req is _UNKNOWN:
            # ZooKeeper answers an unknown op with zxid -1 and drops the client.
            entry.close_after = True
            return frame(entry.xid, -1, ERR.UNIMPLEMENTED)
        if entry.req is _MALFORMED:
            # before setWatches: an empty or truncated setWatches body is
            # answered so too, and the connection goes on (as ZooKeeper 3.8)
            return frame(entry.xid, zxid, ERR.MARSHALLINGERROR)
        if op in (OP.setWatches, OP.setWatches2):
            self._set_watches(conn, entry.req)
            return frame(entry.xid, zxid, 0)
        if entry.req is None and op not in (OP.whoAmI,):
            return frame(entry.xid, zxid, ERR.UNIMPLEMENTED)
        ctx = conn.read_ctx
        if ctx is None or ctx.session_id != conn.session_id or ctx.tree is not self.tree:
            ctx = conn.read_ctx = ReadContext(self.tree, self.watches, conn.session_id,
                                              conn.auth_ids, self.settings.skip_acl)
        err, rec = read(ctx, op, entry.req)
        if type(rec) is Encoded and len(rec.data) > _REPLY_PART and self.multi_ops_per_part:
            # a long child list: sent from the node's cached encoding, unjoined
            entry.reply_zxid = zxid
            return Pieces((_REPLY.pack(16 + len(rec.data) + len(rec.tail), entry.xid, zxid, err),
                           rec.data, rec.tail))
        # An error has no body, but for a multiRead of writes (pipeline.final).
        body = rec.to_bytes() if rec is not None and (not err or op == OP.multiRead) else b""
        return frame(entry.xid, zxid, err, body)

    def _set_watches(self, conn: Conn, sw) -> None:
        """Re-arm a reconnecting client's watches, firing what it missed."""
        rel = sw.relativeZxid
        sid = conn.session_id
        events: list[tuple[int, Any]] = []  # paths as sent: a null one too
        nodes = self.tree.nodes
        # ZooKeeper's DataTree keeps the root under "" as well as "/": a watch
        # on "" sees the root (events name the path as sent), as Java does
        # (found by the differential fuzzer).
        for p in sw.dataWatches or ():
            n = nodes.get("/" if p == "" else p)
            if n is None:
                events.append((EVENT.NodeDeleted, p))
            elif n.mzxid > rel:
                events.append((EVENT.NodeDataChanged, p))
            else:
                self.watches.add_data_watch(p, sid)
        for p in sw.existWatches or ():
            if ("/" if p == "" else p) in nodes:
                events.append((EVENT.NodeCreated, p))
            else:
                self.watches.add_data_watch(p, sid)
        for p in sw.childWatches or ():
            n = nodes.get("/" if p == "" else p)
            if n is None:
                events.append((EVENT.NodeDeleted, p))
            elif n.pzxid > rel:
                events.append((EVENT.NodeChildrenChanged, p))
            else:
                self.watches.add_child_watch(p, sid)
        if isinstance(sw, R.SetWatches2):
            for p in sw.persistentWatches or ():
                self.watches.add_persistent(p, sid, recursive=False)
            for p in sw.persistentRecursiveWatches or ():
                self.watches.add_persistent(p, sid, recursive=True)
        for etype, p in events:
            body = R.WatcherEvent(etype, STATE.SyncConnected, p).to_bytes()
            self._emit(conn, frame(XID.NOTIFICATION, -1, 0, body))

    # ---- containers and TTL nodes -------------------------------------------------

    def _reap_containers(self) -> None:
        """Delete empty containers that once had children and expired TTL
        nodes, as ZooKeeper's ContainerManager does, through the log."""
        if not self.can_write or self._prepping is not None:
            return
        budget = self.settings.container_max_per_minute
        wall = self._wall_ms()
        candidates = []
        for path in list(self.tree.containers):
            node = self.tree.nodes[path]
            if not node.children and node.cversion > 0:
                candidates.append(path)
        for path in list(self.tree.ttls):
            node = self.tree.nodes[path]
            if not node.children and wall - node.mtime > ttl_of(node.ephemeral_owner):
                candidates.append(path)
        for path in candidates[:budget]:
            rec = self.pending.get(path)
            if rec is None or rec.child_count:
                continue
            zxid = self._take_zxid()
            self.pending.add(ChangeRecord(zxid, path, False))
            hdr = R.TxnHeader(0, 0, zxid, wall, OP.deleteContainer)
            self._hand_to_log(InFlight(hdr, R.DeleteTxn(path), None))
