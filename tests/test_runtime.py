"""The asyncio runtime: group commit and back-pressure, through real sockets."""

from __future__ import annotations

import struct

from rawclient import RawClient
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import ZabpyServer

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def test_pipelined_writes_beyond_the_outstanding_limit_all_answered_in_order(tmp_path):
    """globalOutstandingLimit pauses reading, it never drops or reorders."""
    n = 3000
    with ZabpyServer(data_dir=str(tmp_path), global_outstanding_limit=50) as zk:
        raw = RawClient(zk.port, timeout=60)
        raw.handshake()
        frames = []
        for i in range(1, n + 1):
            payload = (R.RequestHeader(i, OpCode.create).to_bytes()
                       + R.CreateRequest(f"/n{i}", b"x", OPEN, 0).to_bytes())
            frames.append(struct.pack(">i", len(payload)) + payload)
        raw.sock.sendall(b"".join(frames))
        xids = []
        for _ in range(n):
            hdr, _ = raw.recv_reply()
            assert hdr.err == Err.OK
            xids.append(hdr.xid)
        assert xids == list(range(1, n + 1))
        stats = zk.runtime.server.stats
        assert zk.runtime.read_pauses > 0  # the limit was reached and reading paused
        # group commit: far fewer fsyncs than txns
        assert 0 < stats.fsync_count < n
        raw.close()
