"""The pure half of quorum SASL (auth/quorum_auth.py) without sockets:
QuorumAuthPacket framing and the learner/server exchange of DIGEST-MD5.
The wire format is checked against Java in tests/test_quorum_security.py
(mixed ensembles); here each outcome of the exchange, step by step."""

from __future__ import annotations

import random
import struct

import pytest

from zabpy.auth.quorum_auth import (HEAD_BYTES, QUORUM_AUTH_MAGIC, STATUS, QuorumAuthError,
                                    QuorumAuthLearner, QuorumAuthServer, QuorumSaslSettings,
                                    encode_auth_packet, is_auth_magic, parse_auth_head)


def _settings(password: str = "qpass", **kw) -> QuorumSaslSettings:
    rng = random.Random(7)
    return QuorumSaslSettings(enabled=True, learner_require=True, server_require=True,
                              learner_user="zkquorum", learner_password=password,
                              server_users={"zkquorum": "qpass"},
                              nonce_source=lambda n: bytes(rng.getrandbits(8) for _ in range(n)), **kw)


def _split(packet: bytes) -> tuple[int, bytes | None]:
    status, n = parse_auth_head(packet[:HEAD_BYTES])
    return status, None if n < 0 else packet[HEAD_BYTES:HEAD_BYTES + n]


def _run(learner_settings, server_settings):
    """Drive both ends to the end; returns (server, learner error or None)."""
    learner, server = QuorumAuthLearner(learner_settings), QuorumAuthServer(server_settings)
    out = learner.first()
    while True:
        _, token = _split(out)
        reply, done = server.step(token or b"")
        try:
            out = learner.receive(*_split(reply))
        except QuorumAuthError as e:
            return server, str(e)
        if out is None:
            return server, None
        assert not done, "the learner answers a finished exchange"


def test_magic_is_javas_constant():
    # Java: QUORUM_AUTH_MAGIC_NUMBER = -0xa0dbcafecafe1234L (a negated negative literal)
    assert QUORUM_AUTH_MAGIC == -(0xa0dbcafecafe1234 - 2 ** 64)
    packet = encode_auth_packet(STATUS.IN_PROGRESS, b"")
    assert packet == struct.pack(">qii", QUORUM_AUTH_MAGIC, 0, 0)
    assert is_auth_magic(packet) and not is_auth_magic(b"\x00" * 8)
    assert encode_auth_packet(STATUS.SUCCESS, None)[-4:] == b"\xff\xff\xff\xff"


def test_right_password_succeeds_on_both_ends():
    server, error = _run(_settings(), _settings())
    assert error is None and server.authenticated and server.user == "zkquorum" and server.keep


def test_wrong_password_is_refused_and_the_learner_hears_error():
    server, error = _run(_settings("wrong"), _settings())
    assert not server.authenticated and not server.keep
    assert "Mismatched response" in server.error
    assert "ERROR" in error


def test_not_required_keeps_a_failed_learner():
    lax = QuorumSaslSettings(**{**_settings().__dict__, "server_require": False})
    server, error = _run(_settings("wrong"), lax)
    assert not server.authenticated and server.keep and error is not None


def test_server_that_does_not_know_us_fails_the_learner_on_rspauth():
    """A server with another password for our user answers ERROR; one that
    forges SUCCESS with a wrong rspauth is caught by the learner."""
    learner = QuorumAuthLearner(_settings())
    learner.receive(STATUS.IN_PROGRESS, b'realm="zk-quorum-sasl-md5",nonce="abc",qop="auth",'
                    b'charset=utf-8,algorithm=md5-sess')
    with pytest.raises(QuorumAuthError, match="rspauth"):
        learner.receive(STATUS.SUCCESS, b"rspauth=00000000000000000000000000000000")


@pytest.mark.parametrize("head", [
    struct.pack(">qii", 1, 0, 0),                       # not the magic
    struct.pack(">qii", QUORUM_AUTH_MAGIC, 7, 0),       # unknown status
    struct.pack(">qii", QUORUM_AUTH_MAGIC, 0, 1 << 30),  # a huge token
])
def test_bad_packets_are_refused(head):
    with pytest.raises(QuorumAuthError):
        parse_auth_head(head)


def test_garbage_token_ends_the_exchange_with_error():
    server = QuorumAuthServer(_settings())
    server.step(b"")
    reply, done = server.step(b"not a digest response")
    assert done and _split(reply)[0] == STATUS.ERROR and not server.authenticated
