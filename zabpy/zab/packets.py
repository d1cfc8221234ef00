"""Quorum packets: type numbers, each packet's payload, and the stream codec.

Between a leader and its learners every message is a jute ``QuorumPacket``
{type:int, zxid:long, data:buffer, authinfo:vector<Id>} (facts 3.4). On the
quorum port the packets are written back to back with no length prefix, so a
reader must parse each record to find where it ends; ``PacketDecoder`` does
that incrementally and refuses any length beyond the bounds in ``limits``.

One packet breaks the pattern: after a SNAP packet (data null) ZooKeeper
streams the leader's sessions and data tree (SerializeUtils layout: session
count and (id, timeout) pairs, the ACL cache, the nodes ending with path "/")
and then the ustring ``BenWasHere``. Inside zabpy a SNAP packet carries that
sessions+tree image in ``data``; ``encode_packet`` writes it the ZooKeeper
way and ``PacketDecoder`` folds the stream back into ``data``. (A leader's
runtime may put an image still being produced off the event loop in
``data``; its transport writes ``snap_frame``'s two parts around it.)

Payload helpers (build and parse; a parse raises ``DecodeError`` on bad
input, which the caller treats as the remote breaking the protocol):

=================  ==========================================================
FOLLOWERINFO (11)  zxid acceptedEpoch<<32; LearnerInfo{sid, 0x10000, configVersion}
OBSERVERINFO (16)  as FOLLOWERINFO
LEADERINFO (17)    zxid newEpoch<<32; int protocol version 0x10000
ACKEPOCH (18)      zxid learner's last logged zxid; int currentEpoch, -1 if it
                   had already accepted the new epoch
PROPOSAL (2)       zxid; TxnHeader + txn (the log entry payload); INFORM (8) same
REQUEST (1)        zxid -1; sessionId:long cxid:int type:int + request bytes
PING (5)           leader: zxid last proposed, no data; learner reply: the
                   (sessionId:long, timeout:int)* touch table
REVALIDATE (6)     learner: sessionId:long timeout:int; leader: sessionId:long valid:bool
NEWLEADER (10)     zxid newEpoch<<32; the leader's config text
=================  ==========================================================

``snapshot_bytes`` / ``load_snapshot_bytes`` convert between a tree with its
sessions and the SNAP image, reusing ``storage.snapshot``'s serializer (the
file format minus its header and seals).
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

from ..jute import records as R
from ..jute.codec import DecodeError, Reader, Record, Writer
from ..limits import (QUORUM_PACKET_AUTH_IDS_MAX, QUORUM_PACKET_DATA_BYTES_MAX,
                      QUORUM_SNAP_BYTES_MAX, ZAB_TOUCHES_MAX)
from ..storage.snapshot import deserialize_snapshot, serialize_snapshot
from ..storage.txnlog import decode_payload, encode_payload
from ..tree.datatree import DataTree

__all__ = ["PacketType", "PROTOCOL_VERSION", "SNAP_SIGNATURE", "make_zxid", "epoch_of",
           "counter_of", "packet", "proposal", "parse_txn", "learner_info", "parse_learner_info",
           "leader_info", "ack_epoch", "parse_ack_epoch", "newleader", "request", "parse_request",
           "ping_reply", "parse_ping_reply", "revalidate", "parse_revalidate",
           "revalidate_reply", "parse_revalidate_reply", "snapshot_bytes", "load_snapshot_bytes",
           "encode_packet", "snap_frame", "PacketDecoder", "describe"]


class PacketType(IntEnum):
    """Leader.java's packet type numbers."""

    REQUEST = 1
    PROPOSAL = 2
    ACK = 3
    COMMIT = 4
    PING = 5
    REVALIDATE = 6
    SYNC = 7
    INFORM = 8
    COMMITANDACTIVATE = 9
    NEWLEADER = 10
    FOLLOWERINFO = 11
    UPTODATE = 12
    DIFF = 13
    TRUNC = 14
    SNAP = 15
    OBSERVERINFO = 16
    LEADERINFO = 17
    ACKEPOCH = 18
    INFORMANDACTIVATE = 19


# PacketType's members on a plain class, for per-packet code (enum member
# lookups are slow on Python 3.11; see jute.constants._plain).
PKT = type("PacketTypeMembers", (), dict(PacketType.__members__))

# Zab 1.0 protocol version carried in LearnerInfo and LEADERINFO.
PROTOCOL_VERSION = 0x10000
SNAP_SIGNATURE = "BenWasHere"
_SIGNATURE_BYTES = SNAP_SIGNATURE.encode()

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_REQ = struct.Struct(">qii")
_TOUCH = struct.Struct(">qi")
_REVAL_REPLY = struct.Struct(">q?")


# ---- zxids ------------------------------------------------------------------

def make_zxid(epoch: int, counter: int) -> int:
    """zxid = epoch << 32 | counter (both 32 bits)."""
    assert 0 <= counter <= 0xFFFFFFFF and epoch >= 0, (epoch, counter)
    return (epoch << 32) | counter


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def counter_of(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


def packet(kind: PacketType, zxid: int = 0, data: bytes | None = None,
           authinfo: list | None = None) -> R.QuorumPacket:
    return R.QuorumPacket(int(kind), zxid, data, authinfo)


# ---- payloads -----------------------------------------------------------------

def proposal(hdr: R.TxnHeader, txn: Record | None, kind: PacketType = PKT.PROPOSAL
             ) -> R.QuorumPacket:
    """PROPOSAL (or INFORM): the txn as it is logged."""
    return packet(kind, hdr.zxid, encode_payload(hdr, txn))


def parse_txn(data: bytes | None) -> tuple[R.TxnHeader, Record | None]:
    if not data:
        raise DecodeError("PROPOSAL/INFORM without a txn")
    hdr, txn, _digest = decode_payload(data)
    return hdr, txn


def learner_info(kind: PacketType, sid: int, accepted_epoch: int,
                 config_version: int) -> R.QuorumPacket:
    info = R.LearnerInfo(sid, PROTOCOL_VERSION, config_version)
    return packet(kind, make_zxid(accepted_epoch, 0), info.to_bytes())


def parse_learner_info(pkt: R.QuorumPacket) -> R.LearnerInfo:
    """The LearnerInfo of a FOLLOWERINFO/OBSERVERINFO (3.4+ learners send all fields)."""
    r = Reader(pkt.data or b"")
    sid = r.long()
    version = r.int() if r.remaining() >= 4 else 0
    config_version = r.long() if r.remaining() >= 8 else 0
    return R.LearnerInfo(sid, version, config_version)


def leader_info(new_epoch: int) -> R.QuorumPacket:
    return packet(PKT.LEADERINFO, make_zxid(new_epoch, 0), _INT.pack(PROTOCOL_VERSION))


def ack_epoch(last_zxid: int, current_epoch: int) -> R.QuorumPacket:
    """current_epoch is -1 when the learner had already accepted the new epoch."""
    return packet(PKT.ACKEPOCH, last_zxid, _INT.pack(current_epoch))


def parse_ack_epoch(pkt: R.QuorumPacket) -> tuple[int, int]:
    """(last logged zxid, current epoch or -1)."""
    return pkt.zxid, Reader(pkt.data or b"").int()


def newleader(new_epoch: int, config: bytes) -> R.QuorumPacket:
    return packet(PKT.NEWLEADER, make_zxid(new_epoch, 0), config)


def request(session_id: int, cxid: int, op: int, body: bytes,
            authinfo: list | None = None) -> R.QuorumPacket:
    return packet(PKT.REQUEST, -1, _REQ.pack(session_id, cxid, op) + body, authinfo)


def parse_request(pkt: R.QuorumPacket) -> tuple[int, int, int, bytes]:
    """(session id, cxid, op type, request bytes)."""
    data = pkt.data or b""
    if len(data) < _REQ.size:
        raise DecodeError(f"REQUEST data of {len(data)} bytes")
    session_id, cxid, op = _REQ.unpack_from(data)
    return session_id, cxid, op, bytes(data[_REQ.size:])


def ping_reply(zxid: int, touches: dict[int, int]) -> R.QuorumPacket:
    """A learner's answer to PING: every session it saw, with its timeout."""
    assert len(touches) <= ZAB_TOUCHES_MAX
    return packet(PKT.PING, zxid, b"".join(_TOUCH.pack(s, t) for s, t in touches.items()))


def parse_ping_reply(pkt: R.QuorumPacket) -> list[tuple[int, int]]:
    data = pkt.data or b""
    if len(data) % _TOUCH.size:
        raise DecodeError(f"PING touch table of {len(data)} bytes")
    return [_TOUCH.unpack_from(data, i) for i in range(0, len(data), _TOUCH.size)]


def revalidate(session_id: int, timeout_ms: int) -> R.QuorumPacket:
    return packet(PKT.REVALIDATE, -1, _TOUCH.pack(session_id, timeout_ms))


def parse_revalidate(pkt: R.QuorumPacket) -> tuple[int, int]:
    data = pkt.data or b""
    if len(data) != _TOUCH.size:
        raise DecodeError(f"REVALIDATE data of {len(data)} bytes")
    return _TOUCH.unpack(data)


def revalidate_reply(session_id: int, valid: bool) -> R.QuorumPacket:
    return packet(PKT.REVALIDATE, -1, _REVAL_REPLY.pack(session_id, valid))


def parse_revalidate_reply(pkt: R.QuorumPacket) -> tuple[int, bool]:
    data = pkt.data or b""
    if len(data) != _REVAL_REPLY.size:
        raise DecodeError(f"REVALIDATE reply of {len(data)} bytes")
    return _REVAL_REPLY.unpack(data)


# ---- SNAP image ---------------------------------------------------------------

_SNAP_HEADER_LEN = 16   # FileHeader in the snapshot file, absent on the wire
_SNAP_SEAL_LEN = 13     # long Adler32 + ustring "/"


def snapshot_bytes(tree: DataTree, sessions: dict[int, int]) -> bytes:
    """The sessions + tree image a SNAP carries (no file header, no seals)."""
    full = b"".join(serialize_snapshot(tree, sessions, tree.last_processed_zxid, digest=False))
    return full[_SNAP_HEADER_LEN:-_SNAP_SEAL_LEN]


def load_snapshot_bytes(data: bytes, tree: DataTree, zxid: int) -> dict[int, int]:
    """Replace ``tree`` by a SNAP image; returns the sessions. Raises DecodeError."""
    head = struct.pack(">iiq", 0x5A4B534E, 2, -1)
    body = head + data
    sealed = body + _LONG.pack(zlib.adler32(body)) + _INT.pack(1) + b"/"
    try:
        contents = deserialize_snapshot(sealed, tree)
    except ValueError as e:
        raise DecodeError(f"bad SNAP image: {e}") from None
    tree.last_processed_zxid = zxid
    return contents.sessions


# ---- stream codec ---------------------------------------------------------------

# The shapes nearly every packet has (no authinfo): precompiled, no jute Writer.
_HEAD = struct.Struct(">iqi")       # type, zxid, data length
_BARE = struct.Struct(">iqii")      # type, zxid, data -1 (null), authinfo -1 (null)
_NO_AUTH = _INT.pack(-1)
_EMPTY_AUTH = _INT.pack(0)
_SNAP_TRAILER = _INT.pack(len(SNAP_SIGNATURE)) + SNAP_SIGNATURE.encode()


def snap_frame(pkt: R.QuorumPacket) -> tuple[bytes, bytes]:
    """What goes before and after a SNAP's image on the stream: the packet
    with null data, and the signature."""
    w = Writer()
    R.QuorumPacket(pkt.type, pkt.zxid, None, pkt.authinfo).write(w)
    return w.getvalue(), _SNAP_TRAILER


def encode_packet(pkt: R.QuorumPacket) -> bytes:
    """The bytes of one packet on the quorum stream (SNAP: header, image, signature)."""
    kind, data = pkt.type, pkt.data
    if kind == PKT.SNAP:
        head, tail = snap_frame(pkt)
        return b"".join((head, data or b"", tail))
    assert data is None or len(data) <= QUORUM_PACKET_DATA_BYTES_MAX, len(data)
    if pkt.authinfo:
        return pkt.to_bytes()
    if pkt.authinfo is not None:   # an empty vector: count 0
        return b"".join((_HEAD.pack(kind, pkt.zxid, -1 if data is None else len(data)),
                         data or b"", _EMPTY_AUTH))
    if data is None:
        return _BARE.pack(kind, pkt.zxid, -1, -1)
    return b"".join((_HEAD.pack(kind, pkt.zxid, len(data)), data, _NO_AUTH))


class _Short(Exception):
    """Not enough bytes yet (internal to the decoder)."""


class _Scan:
    """Bounds-checked reads over a buffer; running short raises _Short."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytearray, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> int:
        if self.pos + n > len(self.buf):
            raise _Short
        start = self.pos
        self.pos += n
        return start

    def int(self) -> int:
        return _INT.unpack_from(self.buf, self.take(4))[0]

    def long(self) -> int:
        return _LONG.unpack_from(self.buf, self.take(8))[0]

    def buffer(self, limit: int) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > limit:
            raise DecodeError(f"buffer length {n} (limit {limit})")
        start = self.take(n)
        return bytes(self.buf[start:start + n])


def _scan_snapshot_image(s: _Scan) -> None:
    """Skip one SerializeUtils sessions+tree image, validating its lengths."""
    sessions = s.int()
    if sessions < 0:
        raise DecodeError(f"SNAP session count {sessions}")
    s.take(12 * sessions)
    lists = s.int()
    if lists < 0:
        raise DecodeError(f"SNAP ACL cache size {lists}")
    for _ in range(lists):
        s.long()
        n = s.int()
        if n < 0:
            raise DecodeError(f"SNAP ACL list length {n}")
        for _ in range(n):
            s.int()
            s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
            s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
    while True:
        path = s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
        if path == b"/":
            return
        if path is None:
            raise DecodeError("SNAP null path")
        s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
        s.take(8 + 60)  # ACL key and StatPersisted


def _id_field(buf: bytearray, at: int, size: int) -> tuple[str | None, int]:
    """One string of an authinfo Id at ``at`` (as ``_Scan.buffer`` then
    decode) and the offset after it; ``_Short`` if it is not whole."""
    if at + 4 > size:
        raise _Short
    n = _INT.unpack_from(buf, at)[0]
    at += 4
    if n == -1:
        return None, at
    if n < -1 or n > QUORUM_PACKET_DATA_BYTES_MAX:
        raise DecodeError(f"buffer length {n} (limit {QUORUM_PACKET_DATA_BYTES_MAX})")
    if at + n > size:
        raise _Short
    return buf[at:at + n].decode("utf-8", "replace"), at + n


class PacketDecoder:
    """Incremental decoder for the quorum stream: ``feed(bytes) -> [packets]``.

    Raises ``DecodeError`` when the peer sent something no valid stream holds
    (a negative or oversized length, a missing SNAP signature); the caller
    closes that connection. Buffered bytes never exceed one packet, or one SNAP
    stream of at most ``QUORUM_SNAP_BYTES_MAX``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        # A SNAP is at the head and was short: it has no length prefix, so
        # telling whether it is whole means scanning every node of it. It
        # is scanned again only once bytes that may end it (its signature)
        # have come, not on every read: that rescan made a learner's SNAP
        # of 200,000 znodes take many minutes (a scan per 64 KiB read).
        self._snap_short = False

    def feed(self, data: bytes) -> list[R.QuorumPacket]:
        buf = self._buf
        buf += data
        out: list[R.QuorumPacket] = []
        if self._snap_short:
            if len(buf) > QUORUM_SNAP_BYTES_MAX:
                raise DecodeError("SNAP stream too large")
            since = len(buf) - len(data) - len(_SIGNATURE_BYTES)
            if buf.find(_SIGNATURE_BYTES, max(0, since)) < 0:
                return out
        # Packets are read at a moving offset and the consumed bytes dropped
        # once per feed (dropping them per packet moved the rest of a 64 KiB
        # read once for every packet in it).
        pos, size = 0, len(buf)
        one = self._one
        try:
            while pos < size:
                pkt, pos = one(buf, pos, size)
                out.append(pkt)
        except _Short:
            rest = size - pos
            if rest > QUORUM_SNAP_BYTES_MAX:
                raise DecodeError("SNAP stream too large") from None
            self._snap_short = rest >= 4 and _INT.unpack_from(buf, pos)[0] == PKT.SNAP
        else:
            self._snap_short = False
        if pos:
            del buf[:pos]
        return out

    @staticmethod
    def _one(buf: bytearray, pos: int, size: int) -> tuple[R.QuorumPacket, int]:
        """The packet at ``pos`` and the offset after it; ``_Short`` if it is not whole."""
        # Fast path: a packet without auth ids (PROPOSAL, ACK, COMMIT, PING, REQUEST...).
        if size - pos < _BARE.size:
            if size - pos < _HEAD.size:
                raise _Short
        else:
            kind, zxid, n = _HEAD.unpack_from(buf, pos)
            if kind != PKT.SNAP and -1 <= n <= QUORUM_PACKET_DATA_BYTES_MAX:
                start = pos + _HEAD.size
                end = start + n if n > 0 else start
                if end + 4 > size:
                    raise _Short   # what the slow path would find, without scanning
                count = _INT.unpack_from(buf, end)[0]
                if count == -1 or count == 0:   # null or empty authinfo
                    data = None if n == -1 else bytes(buf[start:end])
                    return (R.QuorumPacket(kind, zxid, data, None if count else []),
                            end + 4)
                if 0 < count <= QUORUM_PACKET_AUTH_IDS_MAX:
                    # a forwarded REQUEST: the session's ids (at least its ip)
                    auth = []
                    at = end + 4
                    for _ in range(count):
                        scheme, at = _id_field(buf, at, size)
                        ident, at = _id_field(buf, at, size)
                        auth.append(R.Id(scheme, ident))
                    data = None if n == -1 else bytes(buf[start:end])
                    return R.QuorumPacket(kind, zxid, data, auth), at
        return PacketDecoder._one_slow(buf, pos)

    @staticmethod
    def _one_slow(buf: bytearray, pos: int) -> tuple[R.QuorumPacket, int]:
        s = _Scan(buf, pos)
        kind, zxid = s.int(), s.long()
        data = s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
        count = s.int()
        if count < -1 or count > QUORUM_PACKET_AUTH_IDS_MAX:
            raise DecodeError(f"authinfo count {count}")
        auth = None
        if count >= 0:
            auth = []
            for _ in range(count):
                scheme = s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
                ident = s.buffer(QUORUM_PACKET_DATA_BYTES_MAX)
                auth.append(R.Id(None if scheme is None else scheme.decode("utf-8", "replace"),
                                 None if ident is None else ident.decode("utf-8", "replace")))
        if kind == PKT.SNAP:
            start = s.pos
            _scan_snapshot_image(s)
            data = bytes(buf[start:s.pos])
            signature = s.buffer(64)
            if signature != SNAP_SIGNATURE.encode():
                raise DecodeError(f"SNAP signature {signature!r}")
        return R.QuorumPacket(kind, zxid, data, auth), s.pos


_NAMES = {t.value: t.name for t in PacketType}


def describe(pkt: R.QuorumPacket) -> str:
    """A short human-readable form for traces and logs (the simulator's trace
    has a line per packet: no enum lookup on this path)."""
    name = _NAMES.get(pkt.type) or f"type{pkt.type}"
    size = 0 if pkt.data is None else len(pkt.data)
    zxid = pkt.zxid
    return f"{name}({zxid >> 32}:{zxid & 0xFFFFFFFF} {size}B)" if zxid >= 0 \
        else f"{name}({size}B)"
