"""Client SASL authentication (op 102) as ZooKeeper 3.8's server does it.

A connection's SASL exchange is a sequence of GetSASLRequest tokens, each
answered at once (not through the request pipeline) with a SetSASLResponse.
When the exchange completes, the client's name, canonicalized by the
``kerberos.removeHostFromPrincipal``/``removeRealmFromPrincipal`` rules,
becomes a ``sasl`` id of the connection (and ``super`` when it is one of the
``zookeeper.superUser`` names). A failure answers AUTHFAILED (or
SESSIONCLOSEDREQUIRESASLAUTH when SASL is enforced) and closes the
connection, unless ``zookeeper.allowSaslFailedClients`` keeps it.

Pure: settings and tokens in, an outcome out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..jute.constants import ERR
from ..jute.records import Id
from .digest_md5 import DigestMD5Server, SaslError

__all__ = ["AuthSettings", "SaslOutcome", "SaslExchange", "canonical_principal",
           "valid_kerberos_name", "enforcement_fails", "SASL_PROVIDER", "X509_PROVIDER"]

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"


@dataclass(frozen=True, eq=False)
class AuthSettings:
    """What the auth code needs from zoo.cfg, JVM properties and JAAS."""

    # schemes registered by authProvider.N besides ip and digest ('sasl', 'x509')
    acl_schemes: frozenset[str] = frozenset()
    # DIGEST-MD5 users of the JAAS Server section; None: SASL not configured
    sasl_users: Mapping[str, str] | None = None
    sasl_super_password: str | None = None     # zookeeper.SASLAuthenticationProvider.superPassword
    sasl_super_users: frozenset[str] = frozenset()  # zookeeper.superUser[.*]
    remove_host: bool = False
    remove_realm: bool = False
    default_realm: str = ""                    # krb5.conf's default_realm, for KerberosName
    allow_sasl_failed: bool = False
    enforce_enabled: bool = False
    enforce_schemes: tuple[str, ...] = ()
    x509_super_user: str | None = None         # zookeeper.X509AuthenticationProvider.superUser
    # randomness for nonces, injected by the runtime: n -> n random bytes
    nonce_source: Callable[[int], bytes] | None = None
    audit: bool = False                        # audit.enable
    server_user: str = ""                      # the user the server runs as (audit lines)
    # A GSSAPI (Kerberos) mechanism, made per connection by the runtime when
    # the JAAS Server section logs in with Krb5LoginModule; ZooKeeper then
    # offers GSSAPI instead of DIGEST-MD5. Same face as DigestMD5Server:
    # evaluate(token) -> token, complete, authentication_id, authzid; SaslError.
    sasl_mechanism: Callable[[], object] | None = None

    @property
    def sasl_enabled(self) -> bool:
        return self.sasl_users is not None or self.sasl_mechanism is not None

    @property
    def sasl_required(self) -> bool:
        return self.enforce_enabled and "sasl" in self.enforce_schemes

    def sasl_password(self, user: str) -> str | None:
        if user == "super" and self.sasl_super_password is not None:
            return self.sasl_super_password
        return (self.sasl_users or {}).get(user)


_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def valid_kerberos_name(name: str) -> bool:
    """SASLAuthenticationProvider.isValid: a KerberosName parses it."""
    return _KERBEROS_NAME.fullmatch(name) is not None or "@" not in name


def canonical_principal(name: str, s: AuthSettings) -> str | None:
    """The sasl id of an authenticated name (SaslServerCallbackHandler):
    the short name by the DEFAULT auth_to_local rule, then '/host' and
    '@REALM' unless removed. None when the rule does not apply (a realm
    other than the default one): ZooKeeper then keeps the client's name."""
    m = _KERBEROS_NAME.fullmatch(name)
    if m is None:
        if "@" in name:
            raise SaslError(f"Malformed Kerberos name: {name}")
        return name
    service, host, realm = m.group(1), m.group(3), m.group(4)
    if realm != s.default_realm:
        return None
    out = service
    if host is not None and not s.remove_host:
        out += "/" + host
    if not s.remove_realm:
        out += "@" + realm
    return out


@dataclass
class SaslOutcome:
    err: int = ERR.OK
    token: bytes | None = None
    ids: list = field(default_factory=list)
    logs: list = field(default_factory=list)  # (level, line)
    close: bool = False
    user: str | None = None  # set when the exchange just completed


class SaslExchange:
    """One connection's SASL state (ZooKeeperSaslServer)."""

    def __init__(self, settings: AuthSettings):
        self.s = settings
        if settings.sasl_mechanism is not None:
            self.mech = settings.sasl_mechanism()
            return
        assert settings.nonce_source is not None, "the runtime injects the nonce source"
        self.mech = DigestMD5Server(settings.sasl_password, settings.nonce_source)

    def step(self, token: bytes, session_id: int, peer: str) -> SaslOutcome:
        s = self.s
        out = SaslOutcome()
        sid = f"0x{session_id & 0xFFFFFFFFFFFFFFFF:x}"
        try:
            out.token = self.mech.evaluate(token)
            if self.mech.complete:
                authc = self.mech.authentication_id or ""
                user = canonical_principal(authc, s)
                if user is None:
                    user = self.mech.authzid or authc
                out.user = user
                out.ids.append(Id("sasl", user))
                line = f"Session {sid}: adding SASL authorization for authorizationID: {user}"
                if user in s.sasl_super_users:
                    out.ids.append(Id("super", ""))
                    line += " (super user)"
                out.logs.append(("info", line))
        except SaslError as e:
            if s.allow_sasl_failed and not s.sasl_required:
                out.logs.append(("warning", f"Client {peer} failed to SASL authenticate: {e}; "
                                            "maintaining the connection (allowSaslFailedClients)"))
                out.token = None
            else:
                why = ("server requires client SASL authentication" if s.sasl_required
                       else "SASL authentication failure")
                out.logs.append(("warning", f"Client {peer} failed to SASL authenticate: {e}; "
                                            f"closing the connection ({why})"))
                out.err = ERR.SESSIONCLOSEDREQUIRESASLAUTH if s.sasl_required else ERR.AUTHFAILED
                out.token = None
                out.close = True
        return out


def enforcement_fails(s: AuthSettings, auth_ids: list) -> str | None:
    """AuthenticationHelper.enforceAuthentication: with enforce.auth.enabled,
    a connection holding no id of an enforced scheme may send nothing but
    auth and sasl packets. Returns the log line when it fails."""
    if not s.enforce_enabled:
        return None
    schemes = s.enforce_schemes
    have = [i.scheme for i in auth_ids]
    if any(h in schemes for h in have):
        return None
    return (f"Client authentication scheme(s) {have} does not match with any of the expected "
            f"authentication scheme {list(schemes)}, closing session.")
