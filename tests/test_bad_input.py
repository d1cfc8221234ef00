"""Bad input from one client: the answer ZooKeeper gives (an error code, or
the connection closed with one log line), and nothing else is harmed."""

from __future__ import annotations

import logging
import os
import struct

import pytest
from kazoo.client import KazooClient

from rawclient import RawClient
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import ZabpyServer, four_letter_word


@pytest.fixture
def server():
    with ZabpyServer() as zk:
        yield zk


@pytest.fixture
def bystander(server):
    """A healthy kazoo session with data, checked after each bad client."""
    c = KazooClient(hosts=server.hosts)
    c.start(timeout=10)
    c.create("/keep", b"precious")
    c.create("/eph", b"", ephemeral=True)
    yield c
    assert c.get("/keep")[0] == b"precious"
    assert c.exists("/eph") is not None
    assert c.connected
    c.stop()
    c.close()


def _closed_with_one_log_line(caplog, raw: RawClient) -> None:
    assert raw.closed_by_server()
    raw.close()
    lines = [r for r in caplog.records if r.name == "zabpy.server" and r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]


def test_length_over_maxbuffer_closes(server, bystander, caplog):
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(struct.pack(">i", 0xFFFFF + 1) + b"x" * 100)
    _closed_with_one_log_line(caplog, raw)


def test_negative_length_closes(server, bystander, caplog):
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(struct.pack(">i", -5))
    _closed_with_one_log_line(caplog, raw)


def test_garbage_before_handshake_closes(server, bystander, caplog):
    raw = RawClient(server.port)
    # A request header where the ConnectRequest should be: too short to decode.
    raw.send_frame(R.RequestHeader(1, OpCode.getData).to_bytes())
    _closed_with_one_log_line(caplog, raw)


def test_random_garbage_after_handshake_closes(server, bystander, caplog):
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(os.urandom(64) + b"\x7f\xff\xff\xff")
    _closed_with_one_log_line(caplog, raw)


def test_truncated_frame_then_disconnect_is_harmless(server, bystander):
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    raw.close()
    # the server keeps serving new clients
    assert four_letter_word("127.0.0.1", server.port, "ruok") == "imok"


def test_malformed_body_is_marshallingerror_and_session_survives(server, bystander):
    raw = RawClient(server.port)
    raw.handshake()
    # create whose path length claims more bytes than the frame holds: the
    # frame is sound, so ZooKeeper answers MARSHALLINGERROR and goes on
    hdr, _ = raw.call(OpCode.create, struct.pack(">i", 500) + b"/abc")
    assert hdr.err == Err.MARSHALLINGERROR and hdr.zxid > 0  # a write: an error txn
    hdr, _ = raw.call(OpCode.getData, struct.pack(">i", 16) + b"ab")
    assert hdr.err == Err.MARSHALLINGERROR
    hdr, _ = raw.call(OpCode.exists, R.ExistsRequest("/keep", False))
    assert hdr.err == Err.OK
    raw.close()


def test_unknown_op_is_unimplemented_then_closed(server, bystander):
    raw = RawClient(server.port)
    raw.handshake()
    hdr, _ = raw.call(999)
    assert (hdr.err, hdr.zxid) == (Err.UNIMPLEMENTED, -1)
    assert raw.closed_by_server()
    raw.close()


@pytest.mark.parametrize("path,expected", [
    ("a", Err.BADARGUMENTS), ("/keep/", Err.BADARGUMENTS), ("//a", Err.BADARGUMENTS),
    ("/keep/.", Err.BADARGUMENTS), ("/keep/..", Err.BADARGUMENTS),
    ("/\u0001", Err.BADARGUMENTS), ("/\ufff5", Err.BADARGUMENTS),
    # the parent is looked up before the path is validated (ZooKeeper's order)
    ("/a/./b", Err.NONODE), ("/nope/", Err.NONODE),
])
def test_invalid_paths(server, bystander, path, expected):
    raw = RawClient(server.port)
    raw.handshake()
    hdr, _ = raw.call(OpCode.create,
                      R.CreateRequest(path, b"", [R.ACL(31, R.Id("world", "anyone"))], 0))
    assert hdr.err == expected
    # a failed write still consumes a zxid, as in ZooKeeper
    assert hdr.zxid > 0
    raw.close()


def test_malformed_utf8_path_is_badarguments(server, bystander):
    raw = RawClient(server.port)
    raw.handshake()
    body = struct.pack(">i", 5) + b"/\xed\xa0\x80x" + struct.pack(">i", -1) + \
        R.CreateRequest("", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).to_bytes()[8:]
    hdr, _ = raw.call(OpCode.create, body)
    assert hdr.err == Err.BADARGUMENTS
    raw.close()


def test_oversized_create_drops_only_that_connection(server, bystander):
    c = KazooClient(hosts=server.hosts)
    c.start(timeout=10)
    from kazoo.exceptions import ConnectionLoss
    with pytest.raises(ConnectionLoss):
        c.create("/big", b"x" * (2 * 1024 * 1024))
    c.stop()
    c.close()


def test_unknown_four_letter_word_closes(server, bystander):
    # Not a known word: taken as a frame length, far above jute.maxbuffer.
    assert four_letter_word("127.0.0.1", server.port, "abcd") == ""


def test_four_letter_word_not_whitelisted():
    with ZabpyServer(four_letter_whitelist=frozenset({"srvr"})) as zk:
        assert four_letter_word("127.0.0.1", zk.port, "ruok") == \
            "ruok is not executed because it is not in the whitelist.\n"
        assert "Mode: standalone" in four_letter_word("127.0.0.1", zk.port, "srvr")


def test_last_zxid_ahead_of_server_is_refused(server, bystander):
    raw = RawClient(server.port)
    raw.send_frame(R.ConnectRequest(0, 1 << 40, 10000, 0, bytes(16), False).to_bytes())
    assert raw.closed_by_server()
    raw.close()


def test_wrong_password_gets_expired_response(server, bystander):
    raw = RawClient(server.port)
    raw.handshake()
    sid = raw.session_id
    raw.close()
    raw2 = RawClient(server.port)
    resp = raw2.handshake(session_id=sid, passwd=b"\x01" * 16)
    assert (resp.timeOut, resp.sessionId, resp.passwd) == (0, 0, bytes(16))
    assert raw2.closed_by_server()
    raw2.close()
