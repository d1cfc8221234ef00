"""The election connection manager's rules, without sockets (QuorumCnxManager).

Election traffic runs over one TCP link per pair of servers, on the election
port. This module holds every decision about those links; the asyncio code in
``zabpy.runtime.election_transport`` only moves bytes.

Initial message. The dialer opens with ``long protocol_version`` (-65536),
``long sid``, ``int length`` (1..2048) and that many bytes of ``host:port``
(its own election address). A non-negative first long is the legacy form:
that long is the sid and nothing follows.

Who keeps the link. Only a link initiated by the larger sid toward the smaller
one survives, so two servers dialing each other at once end with exactly one
link. A dialer with the smaller sid sends its initial message and closes; an
acceptor whose sid is larger closes the incoming link and dials back. Equal
sids are a configuration error and the link is closed.

Send queues. Each peer has a queue of ONE message: a newer notification
replaces an older one, because only our latest vote matters. The last message
handed to a link is remembered and sent first on a fresh link when nothing
newer is queued, since a link may have died before the peer read it (peers
handle duplicates). A message to ourselves is looped back, never queued.

Framing. Every message is ``int length`` (1..512 KiB) then the payload;
``FrameDecoder`` reassembles frames from arbitrary chunks and never buffers
more than one frame's bound.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from zabpy.jute.codec import DecodeError
from zabpy.limits import ELECTION_ADDR_BYTES_MAX, ELECTION_PACKET_BYTES_MAX

__all__ = ["PROTOCOL_VERSION_V1", "PROTOCOL_VERSION_V2", "InitialMessage",
           "encode_initial_message", "parse_initial_message", "LinkDecision", "decide_link",
           "SendQueues", "encode_frame", "FrameDecoder"]

PROTOCOL_VERSION_V1 = -65536
PROTOCOL_VERSION_V2 = -65535  # only with multiAddress: several addresses joined by "|"

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class InitialMessage:
    sid: int
    addr: str = ""        # "" for the legacy form
    protocol_version: int = PROTOCOL_VERSION_V1


def encode_initial_message(sid: int, addr: str) -> bytes:
    raw = addr.encode("utf-8")
    assert 1 <= len(raw) <= ELECTION_ADDR_BYTES_MAX, len(raw)
    return _LONG.pack(PROTOCOL_VERSION_V1) + _LONG.pack(sid) + _INT.pack(len(raw)) + raw


def parse_initial_message(buf: bytes | bytearray) -> tuple[InitialMessage, int] | None:
    """Parse from the start of ``buf``: ``(message, bytes used)``, or None if incomplete.

    Raises ``DecodeError`` for an unknown version, a bad length or a bad address.
    """
    if len(buf) < 8:
        return None
    (first,) = _LONG.unpack_from(buf, 0)
    if first >= 0:
        return InitialMessage(first, "", 0), 8
    if first not in (PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2):
        raise DecodeError(f"unknown election protocol version {first}")
    if len(buf) < 20:
        return None
    (sid,) = _LONG.unpack_from(buf, 8)
    (length,) = _INT.unpack_from(buf, 16)
    if length <= 0 or length > ELECTION_ADDR_BYTES_MAX:
        raise DecodeError(f"election address length {length}")
    if len(buf) < 20 + length:
        return None
    try:
        addr = bytes(buf[20:20 + length]).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("election address is not UTF-8") from None
    for one in addr.split("|"):
        host, sep, port = one.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise DecodeError(f"badly formed election address {one!r}")
    return InitialMessage(sid, addr, first), 20 + length


class LinkDecision(Enum):
    KEEP = "keep"                    # use this link for both directions
    CLOSE = "close"                  # the other side will dial us
    CLOSE_AND_DIAL = "close-dial"    # we must initiate instead
    REJECT = "reject"                # same sid on both ends: a config error


def decide_link(my_sid: int, remote_sid: int, initiated_by_me: bool) -> LinkDecision:
    """Only the link from the larger sid to the smaller survives."""
    if my_sid == remote_sid:
        return LinkDecision.REJECT
    if initiated_by_me:
        return LinkDecision.KEEP if my_sid > remote_sid else LinkDecision.CLOSE
    return LinkDecision.KEEP if remote_sid > my_sid else LinkDecision.CLOSE_AND_DIAL


class SendQueues:
    """Per-peer one-message queues plus the last message handed to each link."""

    def __init__(self, my_sid: int) -> None:
        self.my_sid = my_sid
        self._queued: dict[int, bytes] = {}
        self._last_sent: dict[int, bytes] = {}
        self._known: dict[int, None] = {}  # every sid we ever had to send to

    def put(self, sid: int, payload: bytes) -> bool:
        """Queue ``payload`` for ``sid``; False means loop it back (sid is us)."""
        assert 0 < len(payload) <= ELECTION_PACKET_BYTES_MAX
        if sid == self.my_sid:
            return False
        self._queued[sid] = payload  # replaces any older message
        self._known[sid] = None
        return True

    def take(self, sid: int) -> bytes | None:
        """The next message for a live link, remembered as last sent."""
        payload = self._queued.pop(sid, None)
        if payload is not None:
            self._last_sent[sid] = payload
        return payload

    def on_link_up(self, sid: int) -> bytes | None:
        """What to write first on a fresh link: the queued message, else the last one."""
        payload = self.take(sid)
        if payload is None:
            payload = self._last_sent.get(sid)
        return payload

    def pending(self, sid: int) -> bool:
        return sid in self._queued

    def peers(self) -> tuple[int, ...]:
        """Every peer we ever queued for (ZooKeeper's connectAll dials these)."""
        return tuple(sorted(self._known))

    def have_delivered(self) -> bool:
        """True when some peer's queue is empty (QuorumCnxManager.haveDelivered)."""
        return any(sid not in self._queued for sid in self._known)


def encode_frame(payload: bytes) -> bytes:
    assert 0 < len(payload) <= ELECTION_PACKET_BYTES_MAX, len(payload)
    return _INT.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental ``int length`` + payload decoder, bounded by the packet maximum."""

    def __init__(self, max_bytes: int = ELECTION_PACKET_BYTES_MAX) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete payload. Raises ``DecodeError``."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (length,) = _INT.unpack_from(self._buf, 0)
            if length <= 0 or length > self.max_bytes:
                raise DecodeError(f"election frame length {length}")
            if len(self._buf) < 4 + length:
                break
            out.append(bytes(self._buf[4:4 + length]))
            del self._buf[:4 + length]
        assert len(self._buf) < 4 + self.max_bytes
        return out

    def buffered(self) -> int:
        return len(self._buf)
