"""The standalone runtime's group commit (runtime/server.py, ``_persist`` and
``_sync_loop``), through real sockets: a write is answered only after the
fsync that covers it returned, many writes share one fsync, replies keep
their order, and a failed fsync stops acknowledging without losing what was
acknowledged.

The store's fsync is replaced, on the running server's store, by a fake
that calls the real one (or fails) when the test says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator

from rawclient import RawClient
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import ZabpyServer

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


class GatedFsync:
    """The store's fsync, held until ``release()`` once ``arm()``ed; records
    each call's start, so the test can wait for one to be under way."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.go = threading.Event()
        self.fail: OSError | None = None
        self.calls = 0

    def arm(self) -> None:
        self.entered.clear()
        self.go.clear()
        self.armed = True

    def release(self) -> None:
        self.armed = False
        self.go.set()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.armed:
            self.entered.set()
            assert self.go.wait(30), "the test never released the fsync"
        if self.fail is not None:
            raise self.fail
        os.fdatasync(fd)


def _frames(first_xid: int, n: int, path: str) -> bytes:
    out = []
    for i in range(n):
        payload = (R.RequestHeader(first_xid + i, OpCode.setData).to_bytes()
                   + R.SetDataRequest(path, f"v{i}".encode(), -1).to_bytes())
        out.append(len(payload).to_bytes(4, "big") + payload)
    return b"".join(out)


def _no_data_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return len(sock.recv(1, socket.MSG_PEEK)) == 0
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


@contextlib.contextmanager
def _gated_server(data_dir: str, path: str,
                  data: bytes) -> Iterator[tuple[ZabpyServer, GatedFsync, RawClient, int]]:
    """A server whose store's fsync is a ``GatedFsync`` (not armed), a raw
    session on it, and ``path`` created with ``data`` through that session
    (its zxid): what each test starts from."""
    with ZabpyServer(data_dir=data_dir) as zk:
        fsync = GatedFsync()
        zk.runtime.store._fsync = fsync
        raw = _session(zk)
        hdr, _ = raw.call(OpCode.create, R.CreateRequest(path, data, OPEN, 0))
        assert hdr.err == Err.OK
        yield zk, fsync, raw, hdr.zxid
        raw.close()


def _session(zk: ZabpyServer) -> RawClient:
    raw = RawClient(zk.port, timeout=30)
    raw.handshake()
    return raw


def test_writes_answered_only_after_their_fsync_and_share_it(tmp_path):
    with _gated_server(str(tmp_path), "/g", b"") as (zk, fsync, raw, _):
        other = _session(zk)
        before = zk.runtime.server.stats.fsync_count
        fsync.arm()
        n = 200
        try:
            raw.sock.sendall(_frames(1000, n, "/g"))
            assert fsync.entered.wait(30)
            # The fsync covering the first of them is under way and held. A
            # read of another session is answered meanwhile; the loop handles
            # it after whatever it was doing with the writes, so a reply to
            # one of them written before its fsync would be here by then.
            # None may be.
            hdr, _ = other.call(OpCode.getData, R.GetDataRequest("/g", False))
            assert hdr.err == Err.OK
            assert _no_data_waiting(raw.sock)
        finally:
            fsync.release()
        zxids = []
        for i in range(n):
            hdr, _ = raw.recv_reply()
            assert (hdr.xid, hdr.err) == (1000 + i, Err.OK)
            zxids.append(hdr.zxid)
        assert zxids == sorted(zxids) and len(set(zxids)) == n
        # group commit: the 200 writes took far fewer flushes than writes
        assert 0 < zk.runtime.server.stats.fsync_count - before < n
        other.close()


def test_failed_fsync_refuses_writes_and_keeps_what_was_acknowledged(tmp_path):
    with _gated_server(str(tmp_path), "/k", b"kept") as (zk, fsync, raw, kept_zxid):
        fsync.fail = OSError(errno.EIO, "Input/output error (injected)")
        raw.sock.sendall(_frames(2000, 5, "/k"))
        for i in range(5):
            hdr, _ = raw.recv_reply()
            assert (hdr.xid, hdr.err) == (2000 + i, Err.SYSTEMERROR)
        # reads go on, and see only what was acknowledged
        hdr, body = raw.call(OpCode.getData, R.GetDataRequest("/k", False))
        assert hdr.err == Err.OK and body[4:8] == b"kept"
        # later writes are refused too (the log failure is sticky)
        hdr, _ = raw.call(OpCode.create, R.CreateRequest("/later", b"", OPEN, 0))
        assert hdr.err == Err.SYSTEMERROR
    # what a restart finds: the acknowledged create, none of the refused writes
    with ZabpyServer(data_dir=str(tmp_path)) as zk:
        tree = zk.runtime.server.tree
        assert tree.nodes["/k"].data == b"kept" and "/later" not in tree.nodes
        assert tree.last_processed_zxid >= kept_zxid
