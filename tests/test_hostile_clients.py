"""Hostile and careless clients (issue 12), side by side with Java ZooKeeper 3.8.0.

Each test sends the same raw bytes to zabpy and to Debian's ZooKeeper 3.8.0
and asserts the same answer (error code, reply zxid relative to the pair's
start), that the connection goes on, and that ``mntr``'s
``zk_outstanding_requests`` is back where it was: a request that is answered
or refused leaves the accounting exact (a leak there pauses every client
once globalOutstandingLimit is reached).

What Java 3.8.0 does, measured with these bytes:
- setWatches (101) / setWatches2 (105) with an empty or truncated body:
  MARSHALLINGERROR, reply zxid = last zxid (no txn), connection kept.
- createSession (-10) on an established connection, empty body:
  MARSHALLINGERROR through an error txn (a zxid is spent), kept.
- deleteContainer (20) from a client, any body: BADARGUMENTS through an
  error txn (a zxid is spent), kept.
"""

from __future__ import annotations

import pytest

from conftest import Pair, RawBody, four_letter_word
from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode


def outstanding(port: int) -> int:
    for line in four_letter_word("127.0.0.1", port, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_outstanding_requests":
            return int(value)
    raise AssertionError("mntr has no zk_outstanding_requests")


def assert_refused_and_kept(pair: Pair, op: int, body: bytes, err: int) -> None:
    before = (outstanding(pair.z.port), outstanding(pair.j.port))
    rep = pair.call(op, RawBody(body))
    assert rep[0] == err
    # the connection goes on and the request left the accounting
    assert pair.call(OpCode.exists, R.ExistsRequest("/", False))[0] == Err.OK
    assert (outstanding(pair.z.port), outstanding(pair.j.port)) == before


# The bytes: relativeZxid 0, a dataWatches list of 2**31-1 entries.
SET_WATCHES_HUGE_LIST = bytes(8) + b"\x7f\xff\xff\xff" + b"\x00\x00\x00\x02/a"


@pytest.mark.parametrize("op", [OpCode.setWatches, OpCode.setWatches2])
@pytest.mark.parametrize("body", [b"", bytes(4), SET_WATCHES_HUGE_LIST],
                         ids=["empty", "truncated", "huge-list"])
def test_malformed_set_watches_is_marshalling_error(pair, op, body):
    """Issue 12 item 1 (ZooKeeper: FinalRequestProcessor answers a body that
    does not deserialize with MARSHALLINGERROR)."""
    assert_refused_and_kept(pair, op, body, Err.MARSHALLINGERROR)


def test_create_session_on_established_connection(pair):
    """Issue 12 item 5: opcode -10 with an empty body (PrepRequestProcessor
    cannot read the timeout: an error txn)."""
    assert_refused_and_kept(pair, OpCode.createSession, b"", Err.MARSHALLINGERROR)
    assert_refused_and_kept(pair, OpCode.createSession, b"\x00\x01", Err.MARSHALLINGERROR)


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00\x10/a", b"\x00\x00\x00\x01/"],
                         ids=["empty", "malformed", "root"])
def test_delete_container_from_a_client(pair, body):
    """Issue 12 item 5: opcode 20 is the container reaper's; from a client,
    BADARGUMENTS whatever the body."""
    assert_refused_and_kept(pair, OpCode.deleteContainer, body, Err.BADARGUMENTS)
