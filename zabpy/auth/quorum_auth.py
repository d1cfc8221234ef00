"""Quorum SASL: how ZooKeeper 3.8's servers authenticate each other on the
quorum and election ports (quorum.auth.enableSasl).

After a learner's TCP (or TLS) connection to the leader's quorum port, and
after the initial message on an election connection, the connecting side
(the "learner", QuorumAuthLearner) and the accepting side (the "server",
QuorumAuthServer) exchange QuorumAuthPacket records before anything else:

    QuorumAuthPacket { long magic; int status; buffer token }

written bare (no length prefix), ``magic`` the constant below, so a
server can tell from the next eight bytes whether a peer authenticates at
all. The learner speaks first (an empty token: DIGEST-MD5 has no initial
response); the server answers IN_PROGRESS with its challenge, SUCCESS with
its last token once its mechanism is complete, or ERROR. DIGEST-MD5 runs
with protocol ``zookeeper-quorum`` and server name ``zk-quorum-sasl-md5``;
the credentials come from the JAAS sections ``QuorumServer`` (``user_NAME``
entries) and ``QuorumLearner`` (``username``/``password``).

``quorum.auth.learnerRequireSasl=false`` makes a learner skip the exchange;
``quorum.auth.serverRequireSasl=false`` makes a server keep a peer that did
not authenticate or failed to (with a warning); with both true a peer
without the right credentials is refused.

Pure: tokens in, packets and verdicts out; the runtime owns the sockets
(runtime/quorum_security.py) and injects the nonce source.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import limits
from .digest_md5 import DigestMD5Client, DigestMD5Server, SaslError

__all__ = ["QUORUM_AUTH_MAGIC", "STATUS", "QuorumSaslSettings", "QuorumAuthError",
           "encode_auth_packet", "parse_auth_head", "is_auth_magic", "QuorumAuthServer",
           "QuorumAuthLearner", "QUORUM_SERVICE", "QUORUM_SERVER_NAME", "MAX_RETRIES"]

# Java's literal is -0xa0dbcafecafe1234L: the hex literal is already a
# negative long, so the constant on the wire is this positive number.
QUORUM_AUTH_MAGIC = 0x5F2435013501EDCC
QUORUM_SERVICE = "zookeeper-quorum"
QUORUM_SERVER_NAME = "zk-quorum-sasl-md5"
MAX_RETRIES = 5  # SaslQuorumAuthServer: challenges before the server gives up
_HEAD = struct.Struct(">qii")   # magic, status, token length (-1: null)
HEAD_BYTES = _HEAD.size


class STATUS:
    IN_PROGRESS = 0
    SUCCESS = 1
    ERROR = -1


_STATUS_NAMES = {0: "IN_PROGRESS", 1: "SUCCESS", -1: "ERROR"}


class QuorumAuthError(Exception):
    """The exchange failed: this peer may not join (or be joined)."""


@dataclass(frozen=True)
class QuorumSaslSettings:
    enabled: bool = False                   # quorum.auth.enableSasl
    learner_require: bool = False           # quorum.auth.learnerRequireSasl
    server_require: bool = False            # quorum.auth.serverRequireSasl
    learner_user: str | None = None         # QuorumLearner: username
    learner_password: str | None = None     # QuorumLearner: password
    server_users: Mapping[str, str] = field(default_factory=dict)  # QuorumServer: user_NAME
    nonce_source: Callable[[int], bytes] | None = None
    # Kerberos (sections with Krb5LoginModule), made by the runtime:
    # server_mechanism() -> a GSSAPI acceptor; learner_mechanism(host) -> an
    # initiator for quorum.auth.kerberos.servicePrincipal on that host
    server_mechanism: Callable[[], object] | None = None
    learner_mechanism: Callable[[str], object] | None = None
    authz_hosts: frozenset[str] = frozenset()   # the ensemble's server hosts


def encode_auth_packet(status: int, token: bytes | None) -> bytes:
    if token is None:
        return _HEAD.pack(QUORUM_AUTH_MAGIC, status, -1)
    return _HEAD.pack(QUORUM_AUTH_MAGIC, status, len(token)) + token


def is_auth_magic(first8: bytes) -> bool:
    """QuorumAuth.nextPacketIsAuth: do the next eight bytes hold the magic?"""
    return len(first8) >= 8 and struct.unpack(">q", first8[:8])[0] == QUORUM_AUTH_MAGIC


def parse_auth_head(head: bytes) -> tuple[int, int]:
    """(status, token length) of a packet's fixed part; -1 length is a null token."""
    magic, status, n = _HEAD.unpack(head)
    if magic != QUORUM_AUTH_MAGIC:
        raise QuorumAuthError(f"not a quorum auth packet (magic {magic:#x})")
    if n < -1 or n > limits.SASL_TOKEN_MAX:
        raise QuorumAuthError(f"quorum auth token of {n} bytes")
    if status not in _STATUS_NAMES:
        raise QuorumAuthError(f"unknown quorum auth status {status}")
    return status, n


class QuorumAuthServer:
    """The accepting side of one connection (SaslQuorumAuthServer).
    ``step(token)`` returns the packet to send and whether the exchange is
    over; after the end ``authenticated`` tells the verdict and ``user`` the
    learner's name. A failure leaves ``error`` set; whether the connection
    is kept is ``keep`` (serverRequireSasl=false keeps it)."""

    def __init__(self, s: QuorumSaslSettings):
        self.s = s
        self.tries = 0
        self.authenticated = False
        self.error: str | None = None
        self.user: str | None = None
        if s.server_mechanism is not None:
            self.mech = s.server_mechanism()
            return
        assert s.nonce_source is not None, "the runtime injects the nonce source"
        self.mech = DigestMD5Server(lambda u: s.server_users.get(u), s.nonce_source,
                                    realm=QUORUM_SERVER_NAME, service=QUORUM_SERVICE,
                                    server_name=QUORUM_SERVER_NAME)

    @property
    def keep(self) -> bool:
        return self.authenticated or not self.s.server_require

    def no_auth(self) -> None:
        """The peer's next bytes are not an auth packet (or it closed)."""
        self.error = "Learner not trying to authenticate and authentication is required"

    def step(self, token: bytes) -> tuple[bytes, bool]:
        try:
            challenge = self.mech.evaluate(token)
        except SaslError as e:
            self.error = str(e)
            return encode_auth_packet(STATUS.ERROR, b""), True
        if self.mech.complete:
            authc, authz = self.mech.authentication_id, self.mech.authzid
            if authz is not None and authz != authc:  # the AuthorizeCallback's rule
                self.error = f"{authc} may not act as {authz}"
                return encode_auth_packet(STATUS.ERROR, b""), True
            if self.s.server_mechanism is not None:
                # Kerberos: the principal's host must be one of the ensemble's
                parts = re.split(r"[/@]", authc or "")
                if len(parts) != 3 or parts[1] not in self.s.authz_hosts:
                    self.error = f"SASL authorization completed, {authc} is not authorized to connect"
                    return encode_auth_packet(STATUS.ERROR, b""), True
            self.authenticated = True
            self.user = authc
            return encode_auth_packet(STATUS.SUCCESS, challenge or None), True
        self.tries += 1
        if self.tries > MAX_RETRIES:
            self.error = f"retries={self.tries} exceeded"
            return encode_auth_packet(STATUS.ERROR, challenge), True
        return encode_auth_packet(STATUS.IN_PROGRESS, challenge), False


class QuorumAuthLearner:
    """The connecting side (SaslQuorumAuthLearner): ``first()`` is the
    opening packet; ``receive(status, token)`` returns the next packet to
    send, or None once the exchange succeeded; it raises QuorumAuthError
    when the server refuses or answers wrongly."""

    def __init__(self, s: QuorumSaslSettings, host: str = ""):
        if s.learner_mechanism is not None:
            self.mech = s.learner_mechanism(host)
            return
        assert s.nonce_source is not None and s.learner_user is not None
        self.mech = DigestMD5Client(s.learner_user, s.learner_password or "", s.nonce_source,
                                    service=QUORUM_SERVICE, server_name=QUORUM_SERVER_NAME)

    def first(self) -> bytes:
        """The opening packet: GSSAPI's initial token, DIGEST-MD5's empty one."""
        initial = getattr(self.mech, "initial", None)
        try:
            return encode_auth_packet(STATUS.IN_PROGRESS, initial() if initial else b"")
        except SaslError as e:
            raise QuorumAuthError(str(e)) from None

    def receive(self, status: int, token: bytes | None) -> bytes | None:
        if status == STATUS.ERROR:
            raise QuorumAuthError("the server refused the credentials (status ERROR)")
        try:
            if status == STATUS.SUCCESS:
                if token is not None and not self.mech.complete and self.mech.evaluate(token) is not None:
                    raise QuorumAuthError("Protocol error: attempting to send response after completion")
                if not self.mech.complete:
                    raise QuorumAuthError("the server reported SUCCESS before the exchange completed")
                return None
            response = self.mech.evaluate(token or b"")
        except SaslError as e:
            raise QuorumAuthError(str(e)) from None
        return encode_auth_packet(STATUS.IN_PROGRESS, response or b"")
