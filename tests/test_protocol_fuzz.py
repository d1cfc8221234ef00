"""The client-port protocol fuzzer (zabpy.testing.protofuzz) against a real
zabpy process: random and mutated handshakes, frames for every op code,
pipelines and broken length prefixes. After every case the server is alive,
answers a fresh client, and mntr's zk_outstanding_requests is back to 0
(issue 12). Two seeds, bounded in wall time so that CI stays under a minute."""

from __future__ import annotations

import pytest

from zabpy.testing import ZabpyServer
from zabpy.testing.protofuzz import OPS, fuzz, make_case

BUDGET_S = 25


@pytest.fixture(scope="module")
def server():
    # reconfig and every 4lw on, so those paths are fuzzed too; a small
    # sessionless timeout so half-open handshakes go quickly
    with ZabpyServer(subprocess=True, config_text="tickTime=200\nreconfigEnabled=true\n"
                     "extendedTypesEnabled=true\nnio.sessionlessCnxnTimeout=1000") as zk:
        yield zk


def test_cases_cover_every_op_and_the_handshake():
    cases = [make_case(1, i) for i in range(400)]
    kinds = {c.kind for c in cases}
    assert kinds == {"handshake", "request", "pipeline", "framing"}
    sent_ops = set()
    for c in cases:
        for chunk in c.chunks[1:] if c.kind != "handshake" else ():
            if len(chunk) >= 12:
                sent_ops.add(int.from_bytes(chunk[8:12], "big", signed=True))
    assert set(OPS) <= sent_ops
    assert [c.chunks for c in cases[:5]] == [make_case(1, i).chunks for i in range(5)]


@pytest.mark.parametrize("seed", [1, 2])
def test_protocol_fuzz(server, seed):
    ran = fuzz(server.port, seed, 100_000, alive=lambda: server._proc.poll() is None,
               deadline_s=BUDGET_S, log=None)
    assert ran >= 50, f"only {ran} cases in {BUDGET_S} s"
    assert "CRITICAL" not in server.read_log()


@pytest.mark.parametrize("port_of", ["zk", "java_zk"])
def test_a_request_pipelined_behind_the_connect_request(request, port_of):
    """Found by the fuzzer: a request sent in the same segment as the
    ConnectRequest, before the ConnectResponse came back. ZooKeeper 3.8
    queues it behind the session's creation and answers it; zabpy used to
    drop it silently, leaving the client waiting."""
    import socket
    import struct

    from zabpy.jute import records as R
    from zabpy.jute.constants import OpCode
    from zabpy.testing.protofuzz import _frame

    port = request.getfixturevalue(port_of).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(_frame(R.ConnectRequest(0, 0, 10000, 0, bytes(16), False).to_bytes())
                  + _frame(struct.pack(">ii", 7, OpCode.exists)
                           + R.ExistsRequest("/", False).to_bytes()))
        buf = b""
        while len(buf) < 4 + 36 + 4 + 16:  # ConnectResponse (36 bytes), reply header
            chunk = s.recv(65536)
            assert chunk, "closed without an answer"
            buf += chunk
        (n,) = struct.unpack_from(">i", buf)
        xid, _, err = struct.unpack_from(">iqi", buf, 4 + n + 4)
        assert (xid, err) == (7, 0)
