"""The server side of SASL GSSAPI (Kerberos V5, RFC 4752) for client
connections, as ZooKeeper 3.8 runs it when its JAAS ``Server`` section logs
in with ``com.sun.security.auth.module.Krb5LoginModule`` (a keytab and the
service principal, e.g. ``zookeeper/host@REALM``).

The exchange, one GetSASLRequest token at a time:

1. the client's GSS-API tokens are accepted (``gss_accept_sec_context``)
   until the context is established; each output token (the AP-REP of
   mutual authentication) goes back as the SASL challenge;
2. the client then sends an empty token, answered with the wrapped
   four-octet security-layer offer: only "no security layer" (1), as
   ZooKeeper negotiates (the connection is never wrapped);
3. the client's wrapped answer names the chosen layer, its maximum buffer
   and an optional authorization id; the exchange is then complete and the
   authenticated name is the client's principal.

This module needs the PyPI ``gssapi`` package (MIT or Heimdal Kerberos
underneath); it is imported only when a JAAS file asks for Kerberos. The
keytab is read at each accept (a rotated keytab is used without restart).
Any GSS-API failure becomes a SaslError, which the pure exchange
(auth/sasl.py) turns into AUTHFAILED and a closed connection.
"""

from __future__ import annotations

import struct

from .. import limits
from ..auth.digest_md5 import SaslError

__all__ = ["GssapiServer", "gssapi_factory", "GssapiUnavailable"]

_NO_SECURITY_LAYER = 1
_MAX_BUFFER = 65536


class GssapiUnavailable(Exception):
    pass


def _gssapi():
    try:
        import gssapi
    except ImportError as e:   # the package or libgssapi_krb5 is missing
        raise GssapiUnavailable(f"Kerberos (GSSAPI) needs the gssapi package: {e}") from None
    return gssapi


class GssapiServer:
    def __init__(self, principal: str, keytab: str | None):
        gssapi = _gssapi()
        self._gssapi = gssapi
        store = {"keytab": keytab} if keytab else None
        self._stage = "context"
        try:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            creds = gssapi.Credentials(name=name, usage="accept", store=store)
            self._ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        except gssapi.exceptions.GSSError as e:
            # raised by evaluate, inside the exchange (AUTHFAILED, one log line)
            self._stage = SaslError(f"GSSAPI: cannot use the service principal {principal}: {e}")
        self.complete = False
        self.failed = False
        self.authentication_id: str | None = None
        self.authzid: str | None = None

    def evaluate(self, token: bytes) -> bytes | None:
        if self.complete or self.failed:
            self.failed = True
            raise SaslError("GSSAPI: authentication already completed")
        if len(token) > limits.SASL_TOKEN_MAX:
            self.failed = True
            raise SaslError(f"GSSAPI: token of {len(token)} bytes")
        try:
            return self._evaluate(token)
        except self._gssapi.exceptions.GSSError as e:
            self.failed = True
            raise SaslError(f"GSSAPI: {e}") from None
        except SaslError:
            self.failed = True
            raise

    def _evaluate(self, token: bytes) -> bytes | None:
        if isinstance(self._stage, SaslError):
            raise self._stage
        if self._stage == "context":
            if not token:
                raise SaslError("GSSAPI: empty initial token")
            out = self._ctx.step(token) or b""
            if self._ctx.complete:
                self._stage = "offer"
            return out
        if self._stage == "offer":
            if token:
                raise SaslError("GSSAPI: expected an empty token after the context was established")
            self._stage = "choice"
            offer = struct.pack(">I", (_NO_SECURITY_LAYER << 24) | _MAX_BUFFER)
            return self._ctx.wrap(offer, False).message
        # the client's choice
        data = self._ctx.unwrap(token).message
        if len(data) < 4:
            raise SaslError("GSSAPI: security layer answer shorter than 4 octets")
        if not data[0] & _NO_SECURITY_LAYER:
            raise SaslError(f"GSSAPI: the client chose security layer {data[0]:#x}; "
                            "only 'no security layer' is offered")
        try:
            authzid = data[4:].decode("utf-8") or None
        except UnicodeDecodeError:
            raise SaslError("GSSAPI: authorization id is not UTF-8") from None
        self.authentication_id = str(self._ctx.initiator_name)
        self.authzid = authzid
        self.complete = True
        # no token (a null buffer on the wire), as the JDK's server answers:
        # ZooKeeper's Java client takes only a null token as GSSAPI's last packet
        return None


def gssapi_factory(principal: str, keytab: str | None):
    """A per-connection mechanism factory for AuthSettings.sasl_mechanism;
    fails at once (at start) when gssapi or the keytab's key cannot be used."""
    probe = GssapiServer(principal, keytab)  # a missing package or principal stops the server now
    if isinstance(probe._stage, SaslError):
        raise GssapiUnavailable(str(probe._stage))
    return lambda: GssapiServer(principal, keytab)


class GssapiClient:
    """The initiator's side of the same exchange, as a quorum learner runs
    it with a Kerberos ``QuorumLearner`` section: an initial token, the
    server's AP-REP, then the wrapped layer offer answered with "no security
    layer" and our principal as the authorization id. ``evaluate`` returns
    the next token (None once nothing more is to be sent)."""

    def __init__(self, principal: str, keytab: str | None, service_principal: str):
        gssapi = _gssapi()
        self._gssapi = gssapi
        self.principal = principal
        # tickets from the keytab go to this process's own memory cache, never
        # to a shared KRB5CCNAME another server (or user) writes too
        store = {"client_keytab": keytab, "ccache": f"MEMORY:zabpy-quorum-{principal}"} \
            if keytab else None
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        target = gssapi.Name(service_principal, gssapi.NameType.kerberos_principal)
        try:
            creds = gssapi.Credentials(name=name, usage="initiate", store=store)
            self._ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                               flags=gssapi.RequirementFlag.mutual_authentication)
        except gssapi.exceptions.GSSError as e:
            raise SaslError(f"GSSAPI: cannot log in as {principal} to {service_principal}: {e}") from None
        self.complete = False

    def initial(self) -> bytes:
        try:
            return self._ctx.step() or b""
        except self._gssapi.exceptions.GSSError as e:
            raise SaslError(f"GSSAPI: {e}") from None

    def evaluate(self, challenge: bytes) -> bytes | None:
        try:
            if not self._ctx.complete:
                out = self._ctx.step(challenge) or b""
                return out
            if self.complete:
                raise SaslError("GSSAPI: authentication already completed")
            offer = self._ctx.unwrap(challenge).message
            if len(offer) != 4 or not offer[0] & _NO_SECURITY_LAYER:
                raise SaslError("GSSAPI: the server offers no 'no security layer'")
            choice = struct.pack(">I", (_NO_SECURITY_LAYER << 24)) + self.principal.encode("utf-8")
            self.complete = True
            return self._ctx.wrap(choice, False).message
        except self._gssapi.exceptions.GSSError as e:
            raise SaslError(f"GSSAPI: {e}") from None
