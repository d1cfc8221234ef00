"""Internal client sessions: the HTTP API's way into the server core.

Theory of operation
-------------------
The HTTP API implements no ZooKeeper operation itself. Each identity (client
IP, HTTP Basic credentials, client certificate) gets an internal *connection*
on the running server: a ``runtime.server._ClientProtocol`` — the very
protocol object a TCP client gets — whose transport is a ``LoopbackTransport``
in memory. The API speaks the client wire protocol over it (ConnectRequest,
an AuthPacket for ``digest`` credentials, then jute requests), so every
request takes the core's one path: framing and jute.maxbuffer, per-session
order, prep (ACL checks with the connection's ids, version checks, the
zxid), the log, apply, the reply. In an ensemble the runtime is the
member's, and a write is forwarded to the leader like any client's.

The identity maps to ZooKeeper's ids as a TCP client's would: the client IP
is the connection's ``ip`` id (the transport reports it as the peer), a
client certificate reaches ``auth/x509.py`` through the transport's
``ssl_object`` (as on the secure client port), and Basic ``user:password``
is sent as ``addauth digest user:password``.

``SessionPool`` keeps at most ``zabpy.http.sessionsMax`` of them (least
recently used goes first, with a closeSession), pings them every third of
their timeout, and closes one idle for ``IDLE_MS``. A session the server
closes (it expired, the member stopped serving) fails its pending calls
with CONNECTIONLOSS and is replaced on next use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections import OrderedDict

from ..jute import records as R
from ..jute.codec import Reader
from ..jute.constants import ERR, OP, XID

__all__ = ["LoopbackTransport", "InternalSession", "SessionPool", "Identity", "CallError"]

log = logging.getLogger("zabpy.httpapi")

_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iqi")
SESSION_TIMEOUT_MS = 30_000
IDLE_MS = 60_000
KEEPALIVE_S = 0.5   # how often the pool looks for sessions to ping or close


class CallError(Exception):
    """A call that got no reply (the internal connection was closed)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Identity:
    """Who an HTTP request is: client IP, Basic credentials, client certificate (DER)."""

    __slots__ = ("ip", "credentials", "cert_der", "key")

    def __init__(self, ip: str, credentials: str | None = None, cert_der: bytes | None = None):
        self.ip = ip
        self.credentials = credentials
        self.cert_der = cert_der
        cred = hashlib.sha256(credentials.encode()).hexdigest() if credentials else ""
        cert = hashlib.sha256(cert_der).hexdigest() if cert_der else ""
        self.key = (ip, cred, cert)


class _SslObject:
    """What ``ServerRuntime._tls_identity`` reads from a TLS transport."""

    def __init__(self, der: bytes):
        self._der = der

    def getpeercert(self, binary_form: bool = False):
        return self._der if binary_form else {}


class LoopbackTransport(asyncio.Transport):
    """The server's side of an internal connection: writes go to ``on_data``."""

    def __init__(self, peer_ip: str, cert_der: bytes | None, on_data, on_lost):
        super().__init__()
        self._extra = {"peername": (peer_ip, 0),
                       "ssl_object": _SslObject(cert_der) if cert_der else None}
        self._on_data = on_data
        self._on_lost = on_lost
        self._closing = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def write(self, data) -> None:
        if not self._closing:
            self._on_data(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        loop.call_soon(self._lost)

    abort = close

    def _lost(self) -> None:
        if self.protocol is not None:
            self.protocol.connection_lost(None)
        self._on_lost()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        return None   # replies are consumed as they are written

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        return None   # the API sends only what it awaits

    def resume_reading(self) -> None:
        return None


class InternalSession:
    """One client session on the server core, spoken to in its own wire protocol."""

    def __init__(self, runtime, identity: Identity):
        self.rt = runtime
        self.identity = identity
        self._buf = bytearray()
        self._connected: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future] = {}
        self._next_xid = 1
        self.closed = False
        self.session_id = 0
        self.timeout_ms = SESSION_TIMEOUT_MS
        self.last_used = self.last_sent = time.monotonic()
        self.conn_id = 0
        from ..runtime.server import _ClientProtocol   # the runtime imports httpapi lazily
        self.transport = LoopbackTransport(identity.ip, identity.cert_der, self._data, self._lost)
        self.protocol = _ClientProtocol(runtime)
        self.transport.protocol = self.protocol

    async def open(self) -> None:
        self.protocol.connection_made(self.transport)
        self.conn_id = self.protocol.conn_id
        if not self.conn_id:
            self.transport.close()
            raise CallError(ERR.CONNECTIONLOSS, "server is not serving clients")
        req = R.ConnectRequest(0, 0, SESSION_TIMEOUT_MS, 0, bytes(16), False, True).to_bytes()
        self._send(_LEN.pack(len(req)) + req)
        await self._connected
        if self.identity.credentials is not None:
            auth = R.AuthPacket(0, "digest", self.identity.credentials.encode()).to_bytes()
            err, _zxid, _body = await self._call_xid(XID.AUTH, OP.auth, auth)
            if err:
                raise CallError(err, "digest authentication failed")

    def auth_ids(self) -> list:
        """The ids the core holds for this connection (ip, digest, x509, super)."""
        srv = self.rt.server
        conn = srv.conns.get(self.conn_id) if srv is not None else None
        return list(conn.auth_ids) if conn is not None else []

    def _send(self, data: bytes) -> None:
        if self.closed:
            raise CallError(ERR.CONNECTIONLOSS, "internal connection closed")
        self.protocol.data_received(data)

    def _data(self, data: bytes) -> None:
        self._buf += data
        buf = self._buf
        while len(buf) >= 4:
            (n,) = _LEN.unpack_from(buf)
            if len(buf) < 4 + n:
                return
            frame = bytes(buf[4:4 + n])
            del buf[:4 + n]
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        if not self._connected.done():
            resp = R.ConnectResponse.read(Reader(frame))
            if resp.sessionId == 0:
                self._connected.set_exception(CallError(ERR.SESSIONEXPIRED, "session refused"))
                return
            self.session_id, self.timeout_ms = resp.sessionId, resp.timeOut
            self._connected.set_result(None)
            return
        xid, zxid, err = _REPLY.unpack_from(frame)
        if xid == XID.NOTIFICATION:
            return   # the API sets no watches
        fut = self._pending.pop(xid, None)
        if fut is not None and not fut.done():
            fut.set_result((err, zxid, frame[16:]))

    def _lost(self) -> None:
        self.closed = True
        exc = CallError(ERR.CONNECTIONLOSS, "internal connection closed by the server")
        if not self._connected.done():
            self._connected.set_exception(exc)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    async def _call_xid(self, xid: int, op: int, body: bytes):
        fut = asyncio.get_running_loop().create_future()
        self._pending[xid] = fut
        self._send(_LEN.pack(8 + len(body)) + struct.pack(">ii", xid, op) + body)
        return await fut

    async def call(self, op: int, body: bytes) -> tuple[int, int, bytes]:
        """One request: (err, zxid, reply body)."""
        self.last_used = self.last_sent = time.monotonic()
        xid = self._next_xid
        self._next_xid = (xid + 1) & 0x7FFFFFFF or 1
        return await self._call_xid(xid, op, body)

    def ping(self) -> None:
        if not self.closed and self._connected.done():
            fut = asyncio.get_running_loop().create_future()
            self._pending[XID.PING] = fut
            try:
                self._send(_LEN.pack(8) + struct.pack(">ii", XID.PING, OP.ping))
            except CallError:
                return

    async def close(self) -> None:
        """closeSession, then the connection."""
        if self.closed:
            return
        try:
            await asyncio.wait_for(self.call(OP.closeSession, b""), 5)
        except (CallError, asyncio.TimeoutError) as e:
            log.info("internal session 0x%x: closeSession got no answer: %s",
                     self.session_id, e)
        self.transport.close()


class SessionPool:
    """At most ``size`` internal sessions, one per identity."""

    def __init__(self, runtime, size: int):
        self.rt = runtime
        self.size = size
        self._sessions: OrderedDict[tuple, InternalSession] = OrderedDict()
        self._opening: dict[tuple, asyncio.Task] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keepalive())

    async def get(self, identity: Identity) -> InternalSession:
        s = self._sessions.get(identity.key)
        if s is not None and not s.closed:
            self._sessions.move_to_end(identity.key)
            return s
        task = self._opening.get(identity.key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(identity))
            self._opening[identity.key] = task
        return await asyncio.shield(task)

    async def _open(self, identity: Identity) -> InternalSession:
        try:
            s = InternalSession(self.rt, identity)
            await s.open()
            self._sessions[identity.key] = s
            while len(self._sessions) > self.size:
                _key, old = self._sessions.popitem(last=False)
                asyncio.get_running_loop().create_task(old.close())
            return s
        finally:
            self._opening.pop(identity.key, None)

    def drop(self, identity: Identity) -> None:
        s = self._sessions.pop(identity.key, None)
        if s is not None and not s.closed:
            s.transport.close()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            now = time.monotonic()
            for key, s in list(self._sessions.items()):
                if s.closed:
                    del self._sessions[key]
                elif (now - s.last_used) * 1000 > IDLE_MS:
                    del self._sessions[key]
                    asyncio.get_running_loop().create_task(s.close())
                elif (now - s.last_sent) * 1000 > s.timeout_ms / 3:
                    s.last_sent = now
                    s.ping()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        # The server is stopping (an ensemble member's quorum may be gone
        # already): the connections just close; the sessions expire.
        sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for s in sessions:
            s.transport.close()
