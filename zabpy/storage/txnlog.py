"""ZooKeeper's transaction log format (FileTxnLog), pure: bytes in, bytes out.

A log file ``log.<hex zxid of its first txn>`` is a 16-byte ``FileHeader``
(magic ``ZKLG``, version 2, dbid 0) followed by entries::

    checksum:long   Adler32 of the payload only (not of the length or the 'B')
    length:int      payload length; 0 means "end of data" (preallocated zeros)
    payload         TxnHeader + txn record (absent for some types) + optional TxnDigest
    'B' (0x42)      end-of-record marker

Writing: ``encode_file_header`` and ``encode_entry`` (``encode_entry_payload`` for a
payload already encoded) build exactly those bytes.
``padded_size`` is ZooKeeper's preallocation rule (grow by preAllocSize when
the write position comes within 4 KiB of the end).

Reading: ``scan_log(buf)`` walks a whole file image and returns a ``LogScan``:
every good entry (offset, zxid, payload view), the offset where good data ends,
and why it ends: ``END`` (a zero length or the end of the buffer on a record
boundary), ``PARTIAL`` (the record runs past the end, its length is not
plausible, or its 'B' is missing: what a crash mid-write leaves), ``CRC`` (a
complete record whose checksum does not match) or ``HEADER`` (bad or short
file header). When it stops early it also reports whether any nonzero byte
follows and whether a *valid* record can be found further on: the file-backed
store uses that to tell a torn tail (truncate) from corruption in the middle
(refuse to start). ``decode_payload`` turns a payload into
(TxnHeader, txn record or None, TxnDigest or None), as SerializeUtils does.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from ..jute import records as R
from ..jute.codec import DecodeError, Reader, Record, Writer
from ..jute.constants import OpCode
from ..limits import LOG_PREALLOC_MARGIN_BYTES, TXN_LOG_ENTRY_BYTES_MAX

__all__ = [
    "LOG_MAGIC", "LOG_VERSION", "FILE_HEADER_LEN", "END", "PARTIAL", "CRC", "HEADER",
    "encode_file_header", "encode_payload", "encode_entry", "encode_entry_payload",
    "decode_payload", "payload_zxid",
    "scan_log", "iter_records", "LogScan", "padded_size",
]

LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
LOG_VERSION = 2
FILE_HEADER_LEN = 16
EOR = 0x42  # 'B'

END = "end"
PARTIAL = "partial"
CRC = "crc"
HEADER = "header"

_HEAD = struct.Struct(">qi")  # checksum, length
_ZXID_AT = 12  # TxnHeader: clientId long, cxid int, then zxid long
_LONG = struct.Struct(">q")
_FILE_HEADER = struct.Struct(">iiq")


def encode_file_header(dbid: int = 0) -> bytes:
    return _FILE_HEADER.pack(LOG_MAGIC, LOG_VERSION, dbid)


def encode_payload(hdr: R.TxnHeader, txn: Record | None, digest: R.TxnDigest | None = None) -> bytes:
    """TxnHeader ‖ txn ‖ digest, as Util.marshallTxnEntry lays them out."""
    return _payload_writer(hdr, txn, digest).getvalue()


def _payload_writer(hdr: R.TxnHeader, txn: Record | None, digest: R.TxnDigest | None) -> Writer:
    w = Writer()
    hdr.write(w)
    if txn is not None:
        txn.write(w)
    if digest is not None:
        digest.write(w)
    return w


def encode_entry(hdr: R.TxnHeader, txn: Record | None, digest: R.TxnDigest | None = None) -> bytes:
    """``encode_entry_payload(encode_payload(hdr, txn, digest))`` with one
    copy of the record instead of two: the checksum is taken of the
    writer's buffer itself, and the entry joined from it."""
    payload = _payload_writer(hdr, txn, digest).out
    size = len(payload)
    assert 0 < size <= TXN_LOG_ENTRY_BYTES_MAX, size
    return b"".join((_HEAD.pack(zlib.adler32(payload), size), payload, b"B"))


def encode_entry_payload(payload: bytes) -> bytes:
    """One log record around an encoded payload (checksum, length, payload, 'B')."""
    assert 0 < len(payload) <= TXN_LOG_ENTRY_BYTES_MAX, len(payload)
    return b"".join((_HEAD.pack(zlib.adler32(payload), len(payload)), payload, b"B"))


def payload_zxid(payload: bytes | memoryview) -> int:
    return _LONG.unpack_from(payload, _ZXID_AT)[0]


def decode_payload(payload: bytes | memoryview) -> tuple[R.TxnHeader, Record | None, R.TxnDigest | None]:
    """Split a payload into header, txn record and digest; raises DecodeError.

    Like ZooKeeper: a closeSession written before CloseSessionTxn existed has
    no record; the digest is present only when bytes remain after the txn.
    """
    r = Reader(payload)
    hdr = R.TxnHeader.read(r)
    cls = R.TXN_RECORD.get(hdr.type)
    if cls is None:
        if hdr.type not in R.TXN_RECORD:
            raise DecodeError(f"unsupported txn type {hdr.type} at zxid {hdr.zxid:#x}")
        txn = None
    elif hdr.type == OpCode.closeSession and r.remaining() == 0:
        txn = None
    else:
        txn = cls.read(r)
    digest = R.TxnDigest.read(r) if r.remaining() else None
    if r.remaining():
        raise DecodeError(f"{r.remaining()} trailing bytes in txn at zxid {hdr.zxid:#x}")
    return hdr, txn, digest


@dataclass
class LogScan:
    """What ``scan_log`` found in one file image.

    ``entries``: (offset, zxid, payload) for every good record, in file order.
    ``good_end``: offset just past the last good record (or the header).
    ``stop``: END, PARTIAL, CRC or HEADER; ``detail`` says what exactly.
    ``nonzero_after``: a nonzero byte exists at or after ``good_end`` beyond a
    clean END marker (for END) or beyond the bad record (otherwise).
    ``valid_after``: offset of a complete record with a good checksum found
    after the stop point, or None: evidence of corruption, not a torn tail.
    """

    entries: list[tuple[int, int, memoryview]] = field(default_factory=list)
    count: int = 0  # good records (``iter_records`` leaves ``entries`` empty)
    good_end: int = 0
    stop: str = END
    detail: str = ""
    nonzero_after: bool = False
    valid_after: int | None = None

    @property
    def clean(self) -> bool:
        return self.stop == END and not self.nonzero_after


def _record_at(buf: memoryview, pos: int, size: int) -> tuple[str, int]:
    """Classify the record starting at ``pos``: (END|PARTIAL|CRC|"ok", its end)."""
    if pos + _HEAD.size > size:
        return (END if pos == size else PARTIAL), size
    crc, n = _HEAD.unpack_from(buf, pos)
    if n == 0:
        return END, pos
    if n < 0 or n > TXN_LOG_ENTRY_BYTES_MAX:
        return PARTIAL, size
    end = pos + _HEAD.size + n + 1
    if end > size or buf[end - 1] != EOR:
        return PARTIAL, min(end, size)
    if zlib.adler32(buf[pos + _HEAD.size : end - 1]) != crc & 0xFFFFFFFF:
        return CRC, end
    if n < _ZXID_AT + 8:
        return PARTIAL, end  # too short to hold a TxnHeader
    return "ok", end


_ZERO_CHUNK = bytes(1 << 20)


def _any_nonzero(buf: memoryview, start: int, size: int) -> bool:
    # A preallocated log is mostly zeros: compare whole chunks with memcmp
    # instead of counting bytes, so scanning 64 MiB of padding stays cheap.
    chunk = len(_ZERO_CHUNK)
    for pos in range(start, size, chunk):
        piece = buf[pos : min(pos + chunk, size)].tobytes()
        if piece != _ZERO_CHUNK[: len(piece)]:
            return True
    return False


def _last_nonzero_end(buf: memoryview, start: int, size: int) -> int:
    """Offset just past the last nonzero byte in [start, size), or ``start``."""
    chunk = 1 << 20
    end = size
    while end > start:
        lo = max(start, end - chunk)
        piece = bytes(buf[lo:end])
        if piece.count(0) != len(piece):
            return lo + len(piece.rstrip(b"\0"))
        end = lo
    return start


def _find_valid(buf: memoryview, start: int, size: int) -> int | None:
    """Offset of the first complete, checksum-valid record after ``start``."""
    last = _last_nonzero_end(buf, start, size)
    # A record ends with 'B', so only offsets before the last nonzero byte can
    # start one; each candidate costs a struct unpack, rarely an Adler32.
    for pos in range(start + 1, max(start + 1, last - _HEAD.size)):
        kind, _ = _record_at(buf, pos, size)
        if kind == "ok":
            return pos
    return None


def scan_log(data: bytes | bytearray | memoryview) -> LogScan:
    """Walk a whole log file image; never raises on bad content."""
    buf = data if isinstance(data, memoryview) else memoryview(data)
    size = len(buf)
    out = LogScan()
    if size < FILE_HEADER_LEN:
        out.stop, out.detail = HEADER, f"file header is {size} of {FILE_HEADER_LEN} bytes"
        out.nonzero_after = _any_nonzero(buf, 0, size)
        return out
    magic, version, _dbid = _FILE_HEADER.unpack_from(buf, 0)
    if magic != LOG_MAGIC or version != LOG_VERSION:
        out.stop, out.detail = HEADER, f"bad magic {magic:#x} or version {version}"
        out.nonzero_after = True
        return out
    pos = FILE_HEADER_LEN
    while True:
        kind, end = _record_at(buf, pos, size)
        if kind != "ok":
            break
        payload = buf[pos + _HEAD.size : end - 1]
        out.entries.append((pos, payload_zxid(payload), payload))
        pos = end
    out.count = len(out.entries)
    _finish(out, buf, pos, kind, end, size)
    return out


def _finish(out: LogScan, buf: memoryview, pos: int, kind: str, end: int, size: int) -> None:
    """Where and why the good records stop (``pos``; ``kind`` and ``end`` as
    ``_record_at`` classified the record there)."""
    out.good_end = pos
    out.stop = kind
    if kind == END:
        out.detail = "end of data"
        out.nonzero_after = _any_nonzero(buf, pos, size)
    else:
        out.detail = ("checksum mismatch" if kind == CRC else "incomplete record") + f" at offset {pos}"
        out.nonzero_after = _any_nonzero(buf, end, size) if kind == CRC else _any_nonzero(buf, pos, size)
    if out.nonzero_after or kind == CRC:
        out.valid_after = _find_valid(buf, pos, size)


def iter_records(data, out: LogScan) -> Iterator[tuple[int, bytes]]:
    """``scan_log`` for log replay: yields (offset, payload) of each good
    record as it is reached, the payload a bytes copy (when ``data`` is an
    mmap or bytes), so nothing holds a view of the file once a record is
    used. When exhausted, ``out`` holds what ``scan_log`` reports, except
    that ``entries`` stays empty (``count`` says how many there were).
    The loop below is ``_record_at``'s "ok" case inlined; anything else is
    classified by ``_record_at`` itself."""
    size = len(data)
    if size < FILE_HEADER_LEN or _FILE_HEADER.unpack_from(data, 0)[:2] != (LOG_MAGIC, LOG_VERSION):
        with memoryview(data) as buf:
            head = scan_log(buf)
            out.stop, out.detail, out.nonzero_after = head.stop, head.detail, head.nonzero_after
            assert head.stop == HEADER, head.stop
        return
    unpack_head = _HEAD.unpack_from
    adler32 = zlib.adler32
    hsize = _HEAD.size
    entry_max = TXN_LOG_ENTRY_BYTES_MAX
    smallest = _ZXID_AT + 8
    pos = FILE_HEADER_LEN
    count = 0
    while pos + hsize <= size:
        crc, n = unpack_head(data, pos)
        if n < smallest or n > entry_max:
            break
        end = pos + hsize + n + 1
        if end > size or data[end - 1] != EOR:
            break
        payload = data[pos + hsize : end - 1]
        if adler32(payload) != crc & 0xFFFFFFFF:
            break
        count += 1
        yield pos, payload
        pos = end
    out.count = count
    with memoryview(data) as buf:
        kind, end = _record_at(buf, pos, size)
        assert kind != "ok", pos
        _finish(out, buf, pos, kind, end, size)


def padded_size(position: int, current_size: int, prealloc_bytes: int) -> int:
    """ZooKeeper's FilePadding rule: the file size needed before writing at ``position``."""
    if prealloc_bytes > 0 and position + LOG_PREALLOC_MARGIN_BYTES >= current_size:
        if position > current_size:
            size = position + prealloc_bytes
            return size - size % prealloc_bytes
        return current_size + prealloc_bytes
    return current_size
