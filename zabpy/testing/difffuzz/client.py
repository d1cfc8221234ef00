"""A blocking raw client for the differential fuzzer: one TCP connection
that sends any request bytes and keeps every watch notification it reads.

A connection reads frames in order. A notification (xid -1) is kept in
``pending`` until the fuzzer takes it; ``request`` returns the reply with the
notifications that arrived before it, so the fuzzer can tell whether an
event came before or after the reply of the request that caused it.
``ping`` is a round trip: every event the server queued for this session
before it handled the ping has arrived when it returns.

A connection the server closed (or that timed out) answers ``Closed``; it is
never reused.
"""

from __future__ import annotations

import dataclasses
import socket
import struct

from ...jute import records as R
from ...jute.codec import Reader

__all__ = ["Conn", "Frame", "Closed", "connect"]

# Special xids of ZooKeeper's client (ClientCnxn).
XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8
REPLY_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Frame:
    """A reply or a notification: the reply header and its body bytes."""
    xid: int
    zxid: int
    err: int
    body: bytes


@dataclasses.dataclass(frozen=True)
class Closed:
    """The server closed the connection (or did not answer in time)."""
    why: str


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.pending: list[Frame] = []
        self.alive = True
        self.last_zxid = 0
        self._xid = 0

    # ---- frames ----------------------------------------------------------------

    def _recv_exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout, OSError):
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

    def send(self, payload: bytes) -> bool:
        try:
            self.sock.sendall(struct.pack(">i", len(payload)) + payload)
            return True
        except OSError:
            self.alive = False
            return False

    def next_xid(self) -> int:
        self._xid += 1
        return self._xid

    # ---- requests ------------------------------------------------------------------

    def request(self, xid: int, op: int, body: bytes) -> tuple[list[Frame], Frame | Closed]:
        """Send one request; return (notifications before the reply, reply)."""
        if not self.submit(xid, op, body):
            return [], Closed("not connected")
        return self.read_reply()

    def submit(self, xid: int, op: int, body: bytes) -> bool:
        """Send a request without waiting (pipelining); False if not connected."""
        return self.alive and self.send(struct.pack(">ii", xid, op) + body)

    def read_reply(self) -> tuple[list[Frame], Frame | Closed]:
        """The next reply, with the notifications that came before it."""
        if not self.alive:
            return [], Closed("not connected")
        before: list[Frame] = []
        while True:
            data = self._recv_frame()
            if data is None:
                self.alive = False
                return before, Closed("closed by server")
            xid_in, zxid, err = struct.unpack_from(">iqi", data)
            frame = Frame(xid_in, zxid, err, bytes(data[16:]))
            if xid_in == XID_NOTIFICATION:
                before.append(frame)
                continue
            if zxid > self.last_zxid:
                self.last_zxid = zxid
            return before, frame

    def ping(self) -> bool:
        """A round trip; notifications read on the way go to ``pending``."""
        before, reply = self.request(XID_PING, 11, b"")
        self.pending.extend(before)
        return isinstance(reply, Frame)

    def take_events(self) -> list[Frame]:
        events, self.pending = self.pending, []
        return events

    def abort(self) -> None:
        self.alive = False
        try:
            self.sock.close()
        except OSError:
            pass


def connect(port: int, timeout_ms: int, session_id: int = 0, passwd: bytes = bytes(16),
            last_zxid: int = 0) -> tuple[Conn, R.ConnectResponse | Closed]:
    """Open a connection and send a ConnectRequest; the response or Closed."""
    conn = Conn(port)
    conn.last_zxid = last_zxid
    req = R.ConnectRequest(0, last_zxid, timeout_ms, session_id, passwd, False)
    if not conn.send(req.to_bytes()):
        return conn, Closed("send failed")
    frame = conn._recv_frame()
    if frame is None:
        conn.alive = False
        return conn, Closed("closed during handshake")
    resp = R.ConnectResponse.read(Reader(frame))
    if resp.sessionId == 0 or resp.timeOut <= 0:
        # A refused session: the server closes the connection after this.
        conn.abort()
    return conn, resp
