"""Compressed snapshot files, as ZooKeeper 3.6+'s SnapStream writes them; pure.

``zookeeper.snapshot.compression.method`` picks how new snapshots are
written: ``""`` (plain, the default), ``gz`` or ``snappy``; the file name gets
that suffix (``snapshot.1a.gz``). A file is *read* by its own suffix, never
by the setting: the last dot-separated part of the name, matched without
regard to case, and anything unknown means plain (``snapshot.1a`` ends in
``1a``, which is plain). So a server restarted with another method still
loads its old snapshots. The Adler32 seals inside a snapshot are computed
over the uncompressed jute bytes in every mode; compression wraps the file,
not the format.

``gz``: one gzip member exactly as java.util.zip.GZIPOutputStream writes it
(10-byte header with mtime 0 and OS 255, deflate at zlib level 6, CRC32 and
size trailer); with the same zlib the file is byte-identical to Java's.

``snappy``: xerial snappy-java's SnappyOutputStream framing, which ZooKeeper
uses: a 16-byte header (magic ``\\x82SNAPPY\\0``, int version 1, int minimum
compatible version 1), then blocks of at most 32 KiB of input, each an int
(big-endian) compressed length and a raw snappy block. A reader also accepts
a second header where a block length should be (concatenated streams, as
SnappyInputStream does). The raw blocks come from ``cramjam`` (Rust ``snap``):
the framing is byte-identical to Java's; a block's encoding may differ from
the C++ encoder's, and any valid raw block decodes the same either way.

Inputs and outputs are bytes; ``SnapshotEncoder.feed``/``finish`` stream the
serializer's chunks into file bytes, ``decode`` turns file bytes back into
the jute image (raising ``SnapshotError`` on any framing problem), and
``has_magic`` is ZooKeeper's cheap validity test for compressed files.
"""

from __future__ import annotations

import struct
import zlib

from ..limits import SNAPSHOT_SNAPPY_BLOCK_BYTES_MAX
from .snapshot import SnapshotError

__all__ = ["PLAIN", "GZIP", "SNAPPY", "METHODS", "parse_method", "method_of_name", "suffix",
           "SnapshotEncoder", "encode", "decode", "has_magic", "SNAPPY_MAGIC",
           "SNAPPY_BLOCK_BYTES"]

PLAIN = ""
GZIP = "gz"
SNAPPY = "snappy"
METHODS = (PLAIN, GZIP, SNAPPY)

# GZIPOutputStream's header as JDK 17 writes it: magic, deflate, no flags,
# mtime 0, xfl 0, OS 255 (readers ignore the last two).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_GZIP_LEVEL = 6  # Deflater.DEFAULT_COMPRESSION is zlib's default, 6
_GZIP_TRAILER = struct.Struct("<II")

SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_SNAPPY_HEADER = SNAPPY_MAGIC + struct.pack(">ii", 1, 1)
_SNAPPY_MAGIC_HEAD = struct.unpack(">i", SNAPPY_MAGIC[:4])[0]
SNAPPY_BLOCK_BYTES = 32 * 1024  # SnappyOutputStream.DEFAULT_BLOCK_SIZE
_INT = struct.Struct(">i")


def parse_method(value: str) -> str:
    """StreamMode.fromString: a known name in any case, else plain."""
    value = value.strip().lower()
    return value if value in METHODS else PLAIN


def method_of_name(name: str) -> str:
    """SnapStream.getStreamMode(fileName): decided by the last dot-separated part."""
    parts = name.split(".")
    return parse_method(parts[-1]) if len(parts) > 1 else PLAIN


def suffix(method: str) -> str:
    assert method in METHODS, method
    return f".{method}" if method else ""


class SnapshotEncoder:
    """Turns the serializer's chunks into the bytes of a ``method`` file."""

    def __init__(self, method: str):
        assert method in METHODS, method
        self.method = method
        self._crc = 0
        self._size = 0
        self._deflate = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -15) if method == GZIP else None
        self._pending = bytearray()
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        if self.method == PLAIN:
            return chunk
        head = b""
        if not self._started:
            self._started = True
            head = _GZIP_HEADER if self.method == GZIP else _SNAPPY_HEADER
        if self.method == GZIP:
            self._crc = zlib.crc32(chunk, self._crc)
            self._size += len(chunk)
            return head + self._deflate.compress(chunk)
        self._pending += chunk
        return head + self._snappy_blocks(final=False)

    def finish(self) -> bytes:
        if self.method == PLAIN:
            return b""
        head = b"" if self._started else self.feed(b"")
        if self.method == GZIP:
            return head + self._deflate.flush() + _GZIP_TRAILER.pack(self._crc,
                                                                     self._size & 0xFFFFFFFF)
        return head + self._snappy_blocks(final=True)

    def _snappy_blocks(self, final: bool) -> bytes:
        import cramjam  # snappy only: imported on first use, off the start-up path
        out = []
        data, pos, n = self._pending, 0, len(self._pending)
        while n - pos >= SNAPPY_BLOCK_BYTES or (final and pos < n):
            block = bytes(cramjam.snappy.compress_raw(bytes(data[pos:pos + SNAPPY_BLOCK_BYTES])))
            out.append(_INT.pack(len(block)))
            out.append(block)
            pos += SNAPPY_BLOCK_BYTES
        del data[:pos]
        return b"".join(out)


def encode(method: str, data: bytes) -> bytes:
    """The whole file for ``data`` (tests and small images)."""
    enc = SnapshotEncoder(method)
    return enc.feed(data) + enc.finish()


def _decode_gzip(data: bytes) -> bytes:
    # GZIPInputStream reads concatenated members too; so does zlib with wbits 31
    # in a loop over unused_data.
    out = []
    rest = data
    while rest:
        d = zlib.decompressobj(31)
        try:
            out.append(d.decompress(rest))
        except zlib.error as e:
            raise SnapshotError(f"bad gzip data: {e}") from None
        if not d.eof:
            raise SnapshotError("gzip stream is truncated")
        rest = d.unused_data
    return b"".join(out)


def _snappy_header(view: memoryview, pos: int) -> int:
    """Check the stream header at ``pos``; the offset after it."""
    end = pos + len(_SNAPPY_HEADER)
    if len(view) < end or bytes(view[pos:pos + 8]) != SNAPPY_MAGIC:
        raise SnapshotError(f"no snappy-java stream header at offset {pos}")
    _version, compatible = struct.unpack_from(">ii", view, pos + 8)
    if compatible > 1:
        raise SnapshotError(f"snappy-java stream needs reader version {compatible}")
    return end


def _decode_snappy(data: bytes) -> bytes:
    import cramjam  # snappy only: imported on first use, off the start-up path
    view = memoryview(data)
    pos, end, out = _snappy_header(view, 0), len(view), []
    while pos < end:
        if pos + 4 > end:
            raise SnapshotError(f"snappy block length cut short at offset {pos}")
        (n,) = _INT.unpack_from(view, pos)
        if n == _SNAPPY_MAGIC_HEAD:
            pos = _snappy_header(view, pos)  # a concatenated stream's header
            continue
        if n <= 0 or pos + 4 + n > end:
            raise SnapshotError(f"bad snappy block length {n} at offset {pos}")
        block = view[pos + 4:pos + 4 + n]
        try:
            size = cramjam.snappy.decompress_raw_len(block)
            if size > SNAPSHOT_SNAPPY_BLOCK_BYTES_MAX:
                raise SnapshotError(f"snappy block at offset {pos} claims {size} bytes")
            out.append(bytes(cramjam.snappy.decompress_raw(block)))
        except SnapshotError:
            raise
        except Exception as e:  # noqa: BLE001 - cramjam raises its own error type
            raise SnapshotError(f"bad snappy block at offset {pos}: {e}") from None
        pos += 4 + n
    return b"".join(out)


def decode(method: str, data: bytes) -> bytes:
    """The jute image inside a ``method`` file; raises SnapshotError."""
    if method == GZIP:
        return _decode_gzip(data)
    if method == SNAPPY:
        return _decode_snappy(data)
    return data


def has_magic(method: str, head: bytes) -> bool:
    """SnapStream.isValidGZipStream / isValidSnappyStream: the file's first bytes."""
    if method == GZIP:
        return head[:2] == _GZIP_HEADER[:2]
    if method == SNAPPY:
        return head[:8] == SNAPPY_MAGIC
    return True
