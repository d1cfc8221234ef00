"""A minimal blocking client that speaks the wire protocol byte by byte, for
tests that send what kazoo never would (bad frames, unknown ops, raw ops)."""

from __future__ import annotations

import socket
import struct

from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import OpCode

_OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.xid = 0
        self.session_id = 0
        self.passwd = b""

    def close(self) -> None:
        self.sock.close()

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by server")
            buf += chunk
        return buf

    def recv_frame(self) -> bytes:
        (n,) = struct.unpack(">i", self.recv_exact(4))
        return self.recv_exact(n)

    def closed_by_server(self) -> bool:
        """True once the server has closed (reads until EOF)."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def handshake(self, timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = bytes(16),
                  last_zxid: int = 0, read_only: bool = False) -> R.ConnectResponse:
        self.send_frame(R.ConnectRequest(0, last_zxid, timeout_ms, session_id, passwd,
                                         read_only).to_bytes())
        resp = R.ConnectResponse.read(Reader(self.recv_frame()))
        self.session_id, self.passwd = resp.sessionId, resp.passwd
        return resp

    def send(self, op: int, record: R.Record | bytes | None = None, xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        body = record if isinstance(record, (bytes, bytearray)) else (record.to_bytes() if record else b"")
        self.send_frame(R.RequestHeader(xid, op).to_bytes() + body)
        return xid

    def recv_reply(self) -> tuple[R.ReplyHeader, bytes]:
        """Next reply, skipping watch notifications (xid -1)."""
        while True:
            data = self.recv_frame()
            r = Reader(data)
            hdr = R.ReplyHeader.read(r)
            if hdr.xid != -1:
                return hdr, data[16:]

    def call(self, op: int, record: R.Record | bytes | None = None) -> tuple[R.ReplyHeader, bytes]:
        self.send(op, record)
        return self.recv_reply()


def expect_event_before_new_data(w: RawClient, old: bytes = b"old") -> None:
    """``w`` watched a node's data, then asked for it again right after a
    setData: its watch event comes once, and before any reply showing the
    new data (a reply sent ahead of the write still shows ``old``, and then
    the event follows)."""
    events = 0
    while True:
        f = w.recv_frame()
        if struct.unpack_from(">i", f)[0] == -1:
            events += 1
            continue
        data = f[16 + 4:16 + 4 + len(old)]
        assert events == 1 or data == old, (events, data)
        break
    if events == 0:  # answered before the write: its event is still to come
        assert struct.unpack_from(">i", w.recv_frame())[0] == -1


def multi_body(paths: list[str], create: bool) -> bytes:
    """A multi request's body, one op per path: a create of each (empty,
    persistent, world:anyone) or a delete of each (any version)."""
    out = []
    for p in paths:
        if create:
            out.append(R.MultiHeader(OpCode.create, False, -1).to_bytes()
                       + R.CreateRequest(p, b"", _OPEN_ACL, 0).to_bytes())
        else:
            out.append(R.MultiHeader(OpCode.delete, False, -1).to_bytes()
                       + R.DeleteRequest(p, -1).to_bytes())
    return b"".join(out) + R.MultiHeader(-1, True, -1).to_bytes()
