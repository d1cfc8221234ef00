"""A minimal, fast ZooKeeper client session for load generation.

The load generator speaks the client protocol itself instead of using kazoo,
so that it can keep many requests in flight per session (pipelining) and
spend as little CPU per request as possible: a load generator that is slower
than the server measures itself.

Wire facts used here (see shared/reference/zookeeper-facts.md §1):
  * every frame is an int32 length followed by that many bytes;
  * the first frame each way is ConnectRequest / ConnectResponse, without a
    request or reply header;
  * a request is RequestHeader{xid, type} + body, a reply is
    ReplyHeader{xid, zxid, err} + body (body only when err == 0);
  * replies on a session come back in the order the requests were sent,
    except xid -1 (watch notification, pushed by the server) and xid -2
    (ping reply), which are not part of that order.

So a session keeps one FIFO of pending requests ``(xid, t_send_ns, check)``.
Each reply must carry the xid at the head of the FIFO; anything else is a
protocol violation and is counted. Request bodies are encoded once with
``zabpy.jute`` records by the workloads and reused; the per-request work here
is one ``struct.pack`` of the frame header and one ``bytes`` concatenation.
Replies are parsed from a single receive buffer with ``struct.unpack_from``;
only watch events are decoded into records.

Every reply's error code is checked: a non-zero ``err`` is counted in
``Counters.errors`` by code, and a ``check`` callable attached to a request
may inspect the reply body (for example the number of children returned) and
count a bad reply. The workload decides which counters make a run fail.

Timestamps are ``time.monotonic_ns()``, which on Linux is one clock for every
process, so a watch event received in one client process can be timed
against a write sent from another.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from zabpy.jute import Err, OpCode, Reader, Xid
from zabpy.jute import records as R

__all__ = ["Call", "Counters", "Session", "SessionError", "connect_request_frame", "frame",
           "all_of", "describe"]

_LEN = struct.Struct(">i")
_REQ = struct.Struct(">iii")  # frame length, xid, op type
_REPLY = struct.Struct(">iqi")  # xid, zxid, err
_REPLY_SIZE = _REPLY.size
_XID_WATCH = int(Xid.NOTIFICATION)  # plain ints: compared once per reply
_XID_PING = int(Xid.PING)
# Bound on a reply frame we accept; the server may send up to jute.maxbuffer
# of payload plus a header, and getChildren on big parents may exceed the Java
# client's limit, which this client deliberately does not enforce.
REPLY_BYTES_MAX = 64 * 1024 * 1024
# After closeSession is answered the server hangs up; waiting for that puts the
# TIME_WAIT socket on the server's side, but a server that keeps the socket open
# is not wrong, so the wait is short.
HANGUP_WAIT_S = 5.0

Check = Callable[[memoryview], bool] | None


class Call:
    """Marks a pending request whose reply a coroutine awaits (setup and checks)."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future):
        self.fut = fut


class SessionError(Exception):
    """The session could not be established or the connection broke."""


@dataclass
class Counters:
    """What a client process did; summed across processes by the load generator."""

    ops_sent: int = 0
    replies: int = 0
    ok: int = 0
    bad_replies: int = 0  # err == 0 but the body failed the request's check
    protocol_errors: int = 0  # xid out of order, undecodable frame
    connection_lost: int = 0  # connection dropped with requests pending or unexpectedly
    watch_events: int = 0
    pings_sent: int = 0
    ping_replies: int = 0
    sessions_opened: int = 0
    sessions_closed: int = 0
    setup_ops: int = 0  # requests made outside the timed phase (also checked)
    errors: dict[int, int] = field(default_factory=dict)  # err code -> count

    def add_error(self, err: int) -> None:
        self.errors[err] = self.errors.get(err, 0) + 1

    def merge(self, other: "Counters") -> None:
        for f in fields(self):
            if f.name == "errors":
                for code, n in other.errors.items():
                    self.errors[code] = self.errors.get(code, 0) + n
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def error_total(self) -> int:
        return sum(self.errors.values())

    def failures(self) -> list[str]:
        """Human-readable reasons this run must be reported as failed."""
        out = []
        for code, n in sorted(self.errors.items()):
            try:
                name = Err(code).name
            except ValueError:
                name = str(code)
            out.append(f"{n} replies with error {name} ({code})")
        if self.bad_replies:
            out.append(f"{self.bad_replies} replies failed their content check")
        if self.protocol_errors:
            out.append(f"{self.protocol_errors} protocol errors (xid order or framing)")
        if self.connection_lost:
            out.append(f"{self.connection_lost} connections lost")
        if self.replies != self.ops_sent:
            out.append(f"{self.ops_sent} requests sent but {self.replies} replies received")
        return out

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["errors"] = {str(k): v for k, v in self.errors.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Counters":
        c = cls(**{k: v for k, v in d.items() if k != "errors"})
        c.errors = {int(k): v for k, v in d.get("errors", {}).items()}
        return c


async def all_of(coros) -> list:
    """Run coroutines together; the first failure cancels the rest and is raised.

    A TaskGroup, so no task outlives a failure unobserved (asyncio.gather
    would leave the others running and log their errors at shutdown).
    """
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(c) for c in coros]
    return [t.result() for t in tasks]


def describe(exc: BaseException) -> str:
    """One line for an error, looking inside exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def connect_request_frame(timeout_ms: int) -> bytes:
    """A new-session ConnectRequest frame (session id 0, 16-byte zero password)."""
    req = R.ConnectRequest(protocolVersion=0, lastZxidSeen=0, timeOut=timeout_ms, sessionId=0,
                           passwd=bytes(16), readOnly=False)
    return frame(req.to_bytes())


class Session(asyncio.Protocol):
    """One client session on one TCP connection; see the module docstring.

    ``latencies`` is the list that reply latencies (ns) are appended to; a
    workload may swap it between phases. ``on_watch(session, event, t_ns)`` is
    called for every notification.
    """

    def __init__(self, counters: Counters, latencies: list[int] | None = None,
                 on_watch: Callable[["Session", R.WatcherEvent, int], None] | None = None):
        self.counters = counters
        self.latencies = latencies if latencies is not None else []
        self.on_watch = on_watch
        self.pending: deque[tuple[int, int, Check]] = deque()
        self.session_id = 0
        self.timeout_ms = 0
        self.last_send_ns = 0
        self.closed = False
        self._xid = 0
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future | None = None
        self._waiter: asyncio.Future | None = None
        self._wait_below = 0
        self._closing = False
        self._lost: asyncio.Future | None = None

    # ---- connection lifecycle -------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, counters: Counters, *, timeout_ms: int = 30_000,
                   connect_timeout_s: float = 30.0, **kw) -> "Session":
        loop = asyncio.get_running_loop()
        sess = cls(counters, **kw)
        sess._handshake = loop.create_future()
        sess._lost = loop.create_future()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: sess, host, port),
                                   connect_timeout_s)
            sess._transport.write(connect_request_frame(timeout_ms))
            await asyncio.wait_for(sess._handshake, connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as e:
            sess.abort()
            raise SessionError(f"connect to {host}:{port} failed: {e!r}") from None
        except BaseException:  # cancelled: do not leave the socket behind
            sess.abort()
            raise
        counters.sessions_opened += 1
        return sess

    def connection_made(self, transport):
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.closed = True
        if self.pending or not self._closing:
            self.counters.connection_lost += 1
        err = SessionError(f"connection lost ({exc!r}) with {len(self.pending)} pending")
        calls = [c.fut for _, _, c in self.pending if type(c) is Call]
        for fut in (self._handshake, self._waiter, *calls):
            if fut is not None and not fut.done():
                fut.set_exception(err)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    async def close(self, timeout_s: float = 30.0) -> None:
        """closeSession, wait for its reply and for the server to hang up."""
        if self.closed:
            return
        self.request(OpCode.closeSession, b"", timed=False)
        self._closing = True
        await self.wait_below(1, timeout_s)
        self.counters.sessions_closed += 1
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), min(timeout_s, HANGUP_WAIT_S))
        except asyncio.TimeoutError:
            pass
        finally:
            self._transport.close()

    # ---- sending ----------------------------------------------------------

    def send(self, op: int, body: bytes, check: Check = None, timed: bool = True) -> None:
        """Queue one request; it goes out at the next ``flush``.

        An untimed request (setup, closeSession) is counted in ``setup_ops``
        and its latency is not recorded, but its error code still counts.
        """
        self._xid += 1
        xid = self._xid
        now = time.monotonic_ns()
        self._out.append(_REQ.pack(8 + len(body), xid, op) + body)
        if timed:
            self.pending.append((xid, now, check))
            self.counters.ops_sent += 1
        else:
            self.pending.append((xid, -1, check))
            self.counters.setup_ops += 1
        self.last_send_ns = now

    def flush(self) -> None:
        if self._out:
            out, self._out = self._out, []
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def request(self, op: int, body: bytes, check: Check = None, *, timed: bool = True) -> None:
        """``send`` and ``flush`` in one."""
        self.send(op, body, check, timed)
        self.flush()

    async def call(self, op: int, body: bytes, timeout_s: float = 60.0) -> tuple[int, bytes]:
        """One untimed request: returns (err, reply body). Errors are the caller's to judge
        and are not added to ``counters.errors``."""
        fut = asyncio.get_running_loop().create_future()
        self.request(op, body, Call(fut), timed=False)
        return await asyncio.wait_for(fut, timeout_s)

    def ping(self) -> None:
        if self._closing or self.closed:
            return
        self._transport.write(_REQ.pack(8, Xid.PING, OpCode.ping))
        self.counters.pings_sent += 1
        self.last_send_ns = time.monotonic_ns()

    async def wait_below(self, n: int, timeout_s: float | None = None) -> None:
        """Wait until fewer than ``n`` requests are pending (n=1: all answered)."""
        if len(self.pending) < n:
            return
        if self.closed:
            raise SessionError("session closed with requests pending")
        self._wait_below = n
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, timeout_s)
        finally:
            self._waiter = None

    # ---- receiving --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        now = time.monotonic_ns()
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n < 0 or n > REPLY_BYTES_MAX:
                self.counters.protocol_errors += 1
                self.abort()
                return
            if end - pos - 4 < n:
                break
            start = pos + 4
            pos = start + n
            if self._handshake is not None and not self._handshake.done():
                self._on_connect_response(memoryview(buf)[start:pos])
            else:
                self._on_reply(buf, start, pos, now)
        if pos:
            del buf[:pos]
        w = self._waiter
        if w is not None and len(self.pending) < self._wait_below and not w.done():
            w.set_result(None)

    def _on_connect_response(self, body: memoryview) -> None:
        try:
            resp = R.ConnectResponse.read(Reader(body))
        except ValueError:
            resp = None
        body.release()
        if resp is None or resp.sessionId == 0 or resp.timeOut <= 0:
            self._handshake.set_exception(SessionError(f"session refused: {resp}"))
            return
        self.session_id = resp.sessionId
        self.timeout_ms = resp.timeOut
        self._handshake.set_result(None)

    def _on_reply(self, buf: bytearray, start: int, end: int, now: int) -> None:
        if end - start < _REPLY_SIZE:
            self.counters.protocol_errors += 1
            return
        xid, _zxid, err = _REPLY.unpack_from(buf, start)
        if xid == _XID_WATCH:
            mv = memoryview(buf)[start + _REPLY_SIZE:end]
            try:
                event = R.WatcherEvent.read(Reader(mv))
            except ValueError:
                self.counters.protocol_errors += 1
                return
            finally:
                mv.release()
            self.counters.watch_events += 1
            if self.on_watch is not None:
                self.on_watch(self, event, now)
            return
        if xid == _XID_PING:
            self.counters.ping_replies += 1
            return
        if not self.pending:
            self.counters.protocol_errors += 1
            return
        want, t_send, check = self.pending.popleft()
        if xid != want:
            self.counters.protocol_errors += 1
        if t_send >= 0:
            self.counters.replies += 1
            self.latencies.append(now - t_send)
        if type(check) is Call:
            if not check.fut.done():
                check.fut.set_result((err, bytes(buf[start + _REPLY_SIZE:end])))
            return
        if err:
            self.counters.add_error(err)
        elif check is not None:
            mv = memoryview(buf)[start + _REPLY_SIZE:end]
            try:
                good = check(mv)
            finally:
                mv.release()
            if not good:
                self.counters.bad_replies += 1
        if not err and t_send >= 0:
            self.counters.ok += 1
