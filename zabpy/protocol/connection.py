"""One client connection as a state machine: bytes in, events out.

States: FIRST (nothing read yet: the first four bytes are either a
four-letter word or the length of the ConnectRequest frame), HANDSHAKE
(waiting for the ConnectRequest), ACTIVE (requests), CLOSED.

Framing: every frame is a signed 32-bit length then that many bytes. A
length below zero or above ``max_frame`` (jute.maxbuffer) breaks the
protocol: ``RemoteProtocolError`` is raised and the connection must be
closed, as ZooKeeper does ("Len error"). Nothing else is harmed.

Events: ``FourLetterWord(word)``, ``Connect(request)``, ``Request(xid, op,
body)`` where ``body`` is a memoryview of the request record (decoded later,
by op code). The buffer never grows past one frame plus what one read
returned.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..jute.codec import DecodeError, Reader, fast_frozen_init
from ..jute.records import ConnectRequest
from .. import limits

__all__ = ["ClientConnection", "RemoteProtocolError", "FourLetterWord", "Connect", "Request",
           "FOUR_LETTER_WORDS"]

FOUR_LETTER_WORDS = frozenset({
    "ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "mntr", "wchs", "wchc",
    "wchp", "isro", "srst", "dirs", "gtmk", "stmk", "hash",
})

_HDR = struct.Struct(">ii")
_LEN = struct.Struct(">i")


class RemoteProtocolError(Exception):
    """The client broke the protocol; close this one connection."""


@dataclass(frozen=True, slots=True)
class FourLetterWord:
    word: str
    arg: bytes = b""


@dataclass(frozen=True, slots=True)
class Connect:
    request: ConnectRequest


@dataclass(frozen=True, slots=True)
class Request:
    xid: int
    op: int
    body: Any  # a memoryview (mypyc cannot yet compile a dataclass field of that type)


# one per request: its fields stored through the slots (pure Python; a
# compiled build's class is left as mypyc made it)
fast_frozen_init(Request)


FIRST, HANDSHAKE, ACTIVE, CLOSED = "FIRST", "HANDSHAKE", "ACTIVE", "CLOSED"


class ClientConnection:
    def __init__(self, max_frame: int = limits.JUTE_MAXBUFFER):
        self.max_frame = max_frame
        self.state = FIRST
        self._buf = bytearray()

    def receive_data(self, data: bytes) -> list:
        if self.state == CLOSED:
            return []
        self._buf += data
        events: list = []
        try:
            self._parse(events)
        except RemoteProtocolError:
            self.state = CLOSED
            self._buf = bytearray()
            raise
        return events

    def _parse(self, events: list) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        while self.state != CLOSED and n - pos >= 4:
            if self.state == FIRST:
                word = bytes(buf[pos:pos + 4])
                if word.isascii() and word.decode("ascii") in FOUR_LETTER_WORDS:
                    w = word.decode("ascii")
                    if w == "stmk" and n - pos < 12:
                        break
                    arg = bytes(buf[pos + 4:pos + 12]) if w == "stmk" else b""
                    events.append(FourLetterWord(w, arg))
                    self.state = CLOSED
                    pos = n
                    break
                self.state = HANDSHAKE
            (length,) = _LEN.unpack_from(buf, pos)
            if length < 0 or length > self.max_frame:
                raise RemoteProtocolError(f"Len error {length}")
            if n - pos - 4 < length:
                break
            start = pos + 4
            pos = start + length
            frame = memoryview(bytes(buf[start:pos]))
            if self.state == HANDSHAKE:
                events.append(Connect(self._decode_connect(frame)))
                self.state = ACTIVE
            else:
                if length < 8:
                    raise RemoteProtocolError(f"request frame of {length} bytes has no header")
                xid, op = _HDR.unpack_from(frame, 0)
                events.append(Request(xid, op, frame[8:]))
        if pos:
            del buf[:pos]

    @staticmethod
    def _decode_connect(frame: memoryview) -> ConnectRequest:
        try:
            r = Reader(frame)
            req = ConnectRequest.read(r)
        except DecodeError as e:
            raise RemoteProtocolError(f"malformed ConnectRequest: {e}") from None
        # Bytes after the readOnly flag are ignored, as ZooKeeper ignores them.
        return req

    def close(self) -> None:
        self.state = CLOSED
        self._buf = bytearray()
