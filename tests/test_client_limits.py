"""Bounded replies per connection (issue 12, "a client that never reads").

One session pipelines 2,000 getData of a 512 KiB node (about 1 GiB of
replies) and reads nothing. zabpy answers its reads only while less than
``zabpy.maxQueuedBytesPerConnection`` is queued for it, stops reading its
requests past that, and closes it once it stayed over the limit for
``zabpy.queuedBytesGraceMs``, with one log line. Meanwhile the server's RSS
stays bounded, another session is served, and the accounting (mntr's
zk_outstanding_requests) comes back to 0 when the connection goes.
ZooKeeper 3.8 has no such limit (its RSS grew by about 12 MB here, as its
NIO layer stops reading a connection with queued output).
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from kazoo.client import KazooClient

from conftest import wait_for
from rawclient import RawClient
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.testing import ZabpyServer, mntr

NODE_BYTES = 512 * 1024
PIPELINED = 2000
GRACE_MS = 3000
RSS_GROWTH_MAX_KB = 200 * 1024


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def eof_or_reset(sock: socket.socket) -> bool:
    """Read what the server had sent until the end: True once it closed."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 20):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True


@pytest.fixture
def server():
    with ZabpyServer(subprocess=True, **{"zabpy.queuedBytesGraceMs": GRACE_MS}) as zk:
        yield zk


def pipeline_reads_behind(c: RawClient, first_write: bool) -> None:
    """PIPELINED getData of /big in one send, never read; with
    ``first_write`` a create goes first, so that every read waits in the
    session's queue and is answered at once when the write is durable."""
    frames = []
    if first_write:
        frames.append(R.RequestHeader(1, OpCode.create).to_bytes()
                      + R.CreateRequest("/w", b"", [R.ACL(31, R.Id("world", "anyone"))],
                                        0).to_bytes())
    for i in range(PIPELINED):
        frames.append(R.RequestHeader(i + 2, OpCode.getData).to_bytes()
                      + R.GetDataRequest("/big", False).to_bytes())
    c.sock.sendall(b"".join(struct.pack(">i", len(f)) + f for f in frames))


@pytest.mark.parametrize("first_write", [False, True], ids=["reads", "reads-behind-a-write"])
def test_a_client_that_never_reads(server, first_write):
    pid = server._proc.pid
    bystander = KazooClient(hosts=server.hosts)
    bystander.start()
    try:
        bystander.create("/big", b"x" * NODE_BYTES)
        bystander.create("/small", b"")
        base_kb = rss_kb(pid)
        hog = RawClient(server.port)
        hog.handshake()
        pipeline_reads_behind(hog, first_write)
        peak_kb = base_kb
        served = 0
        # the bystander keeps being answered while the hog's replies pile up
        while served < 20 or "Closing connection" not in server.read_log():
            data, _ = bystander.get("/big")
            assert len(data) == NODE_BYTES
            bystander.set("/small", b"%d" % served)
            served += 1
            peak_kb = max(peak_kb, rss_kb(pid))
            assert served < 10_000, "the hog was never closed"
        assert peak_kb - base_kb < RSS_GROWTH_MAX_KB, (base_kb, peak_kb)
        log = server.read_log()
        closing = [line for line in log.splitlines() if "replies unread" in line]
        assert len(closing) == 1, log[-2000:]
        assert "zabpy.maxQueuedBytesPerConnection" in closing[0]
        assert eof_or_reset(hog.sock)
        # the hog's held requests left the accounting with it
        wait_for(lambda: mntr(server.port)["zk_outstanding_requests"] == "0", 5,
                 what="outstanding requests back to 0")
        assert bystander.get("/big")[0] == b"x" * NODE_BYTES
        hog.close()
    finally:
        bystander.stop()
        bystander.close()


def test_a_slow_reader_gets_every_reply(server):
    """A client that reads, however slowly, is never cut off: its replies
    resume as it drains and arrive in order, all of them."""
    bystander = KazooClient(hosts=server.hosts)
    bystander.start()
    try:
        bystander.create("/big", b"z" * NODE_BYTES)
    finally:
        bystander.stop()
        bystander.close()
    c = RawClient(server.port)
    c.handshake()
    n = 60  # about 30 MiB of replies: several times the limit
    pipeline_reads_behind(c, False)
    for i in range(n):
        hdr, body = c.recv_reply()
        assert (hdr.xid, hdr.err, len(body)) == (i + 2, 0, 4 + NODE_BYTES + 68)
        time.sleep(0.01)
    c.close()


def test_the_limit_is_read_from_zoo_cfg():
    from zabpy.runtime.config import parse_config

    cfg, _ = parse_config("tickTime=2000\nzabpy.maxQueuedBytesPerConnection=1048576\n"
                          "zabpy.queuedBytesGraceMs=500\n", source="t.cfg")
    assert (cfg.max_queued_bytes_per_connection, cfg.queued_bytes_grace_ms) == (1048576, 500)
    default, _ = parse_config("tickTime=2000\n", source="t.cfg")
    assert default.max_queued_bytes_per_connection == 8 * 1024 * 1024
