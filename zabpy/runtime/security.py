"""Authentication settings from zoo.cfg, JVM-style properties and the JAAS file.

ZooKeeper reads these as JVM system properties; zabpy takes each from, in
order of precedence:

1. ``-Dname=value`` words in the ``SERVER_JVMFLAGS`` or ``JVMFLAGS``
   environment variables (what zkServer.sh passes to the JVM);
2. zoo.cfg, where a key ``K`` stands for the property ``zookeeper.K`` as in
   ZooKeeper (``authProvider.1``, ``allowSaslFailedClients``,
   ``enforce.auth.enabled``, ``superUser``, ...).

The JAAS file is ``java.security.auth.login.config``: ``zabpy server
--jaas PATH``, the same ``-D`` word in ``SERVER_JVMFLAGS``/``JVMFLAGS``, or
(zabpy only) that key in zoo.cfg; failing all three, (zabpy only) a file
named ``jaas.conf`` beside zoo.cfg, which is where test harnesses such as
kazoo's write it. Its ``Server`` section (or the one named
by ``zookeeper.sasl.serverconfig``) holds the DIGEST-MD5 users. As in
ZooKeeper, a file without that section leaves SASL off; a file that is
missing or does not parse stops the server.
"""

from __future__ import annotations

import os
import re

from ..auth.sasl import SASL_PROVIDER, X509_PROVIDER, AuthSettings
from .config import ConfigError, ServerConfig

__all__ = ["load_auth_settings", "AuthConfigError", "JAAS_KEY", "jaas_path"]

JAAS_KEY = "java.security.auth.login.config"
_PROVIDERS = {SASL_PROVIDER: "sasl", X509_PROVIDER: "x509"}


class AuthConfigError(ConfigError):
    """A JAAS file or auth setting ZooKeeper would refuse to start with."""


def jvm_flags(environ) -> dict[str, str]:
    out: dict[str, str] = {}
    for var in ("JVMFLAGS", "SERVER_JVMFLAGS"):  # the server's own flags win
        text = environ.get(var, "")
        if not text:
            continue
        import shlex  # only when there are flags: it is not needed otherwise at start-up
        for word in shlex.split(text):
            if word.startswith("-D"):
                name, _, value = word[2:].partition("=")
                out[name] = value
    return out


class _Props:
    def __init__(self, cfg: ServerConfig, environ):
        self.flags = jvm_flags(environ)
        self.raw = cfg.raw

    def get(self, name: str) -> str | None:
        if name in self.flags:
            return self.flags[name]
        if name.startswith("zookeeper."):
            v = self.raw.get(name[len("zookeeper."):])
            if v is not None:
                return v
        return self.raw.get(name)

    def names(self) -> set[str]:
        out = set(self.flags)
        for k in self.raw:
            out.add(k if k.startswith("zookeeper.") else "zookeeper." + k)
        return out

    def true(self, name: str) -> bool:
        return (self.get(name) or "").strip().lower() == "true"  # Boolean.parseBoolean


def _server_user() -> str:
    """ZooKeeper's audit user for its own actions: the user.name of the JVM.
    What ``getpass.getuser()`` answers, without importing getpass (and
    termios) at every start."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd
        return pwd.getpwuid(os.getuid())[0]
    except (ImportError, KeyError, OSError):
        return str(os.getuid())


def _default_realm(environ) -> str:
    """KerberosName's default realm: krb5.conf's default_realm, else ''."""
    path = environ.get("KRB5_CONFIG", "/etc/krb5.conf")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = re.search(r"^\s*default_realm\s*=\s*(\S+)", f.read(), re.M)
    except OSError:
        return ""
    return m.group(1) if m else ""


def _beside_cfg(cfg: ServerConfig) -> str | None:
    if not cfg.source or not os.path.isfile(cfg.source):
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(cfg.source)), "jaas.conf")
    return path if os.path.isfile(path) else None


KRB5_LOGIN_MODULE = "com.sun.security.auth.module.Krb5LoginModule"


def _kerberos_mechanism(module, section: str):
    """ZooKeeper offers GSSAPI when the Server section's subject holds a
    Kerberos principal: Krb5LoginModule with useKeyTab, keyTab, principal."""
    from .gssapi_server import GssapiUnavailable, gssapi_factory
    o = module.options
    principal = o.get("principal")
    if not principal or "/" not in principal:
        raise AuthConfigError(f"JAAS section '{section}': Krb5LoginModule needs principal="
                              "\"service/host@REALM\"")
    keytab = o.get("keyTab") if o.get("useKeyTab", "false").lower() == "true" else None
    try:
        return gssapi_factory(principal, keytab)
    except GssapiUnavailable as e:
        raise AuthConfigError(f"JAAS section '{section}': {e}") from None


def jaas_path(cfg: ServerConfig, environ=None) -> str | None:
    """The JAAS file the server reads, for its start-up log line."""
    environ = os.environ if environ is None else environ
    return _Props(cfg, environ).get(JAAS_KEY) or _beside_cfg(cfg)


def load_auth_settings(cfg: ServerConfig, environ=None) -> AuthSettings:
    environ = os.environ if environ is None else environ
    p = _Props(cfg, environ)
    schemes = set()
    for name in p.names():
        if name.startswith("zookeeper.authProvider."):
            cls = (p.get(name) or "").strip()
            if cls in _PROVIDERS:
                schemes.add(_PROVIDERS[cls])
    if cfg.secure_client_port or (cfg.http_enabled and cfg.http_tls):
        # QuorumPeerConfig.configureSSLAuth: a secure client port registers
        # the x509 provider (ssl.authProvider, default x509); so does zabpy's
        # HTTP API served over TLS (its client certificates are x509 ids)
        schemes.add("x509")
    users = mechanism = None
    jaas = p.get(JAAS_KEY) or _beside_cfg(cfg)
    section = p.get("zookeeper.sasl.serverconfig") or "Server"
    if jaas:
        from ..auth.jaas import JaasError, digest_credentials, parse_jaas  # a JAAS file only
        try:
            with open(jaas, encoding="utf-8") as f:
                sections = parse_jaas(f.read())
        except (OSError, JaasError) as e:
            raise AuthConfigError(f"No JAAS configuration section named '{section}' was found "
                                  f"in '{jaas}': {e}") from None
        if section in sections:
            kerberos = [m for m in sections[section] if m.class_name == KRB5_LOGIN_MODULE]
            if kerberos:
                mechanism = _kerberos_mechanism(kerberos[0], section)
            else:
                users = digest_credentials(sections[section])
    enforce, enforce_schemes = False, ()
    if p.true("zookeeper.sessionRequireClientSASLAuth"):
        enforce, enforce_schemes = True, ("sasl",)
    else:
        enforce = p.true("zookeeper.enforce.auth.enabled")
        raw = p.get("zookeeper.enforce.auth.schemes")
        if raw is not None:
            enforce_schemes = tuple(s.strip() for s in raw.split(","))
    if enforce:
        if not enforce_schemes:
            raise AuthConfigError("zookeeper.enforce.auth.enabled is true zookeeper.enforce.auth.schemes "
                                  "must be  configured.")
        for s in enforce_schemes:
            if s not in {"ip", "digest"} | schemes:
                raise AuthConfigError(f"Authentication scheme {s} is not available.")
    supers = frozenset(v for n in p.names()
                       if (n == "zookeeper.superUser" or n.startswith("zookeeper.superUser."))
                       and (v := p.get(n)))
    return AuthSettings(
        acl_schemes=frozenset(schemes),
        sasl_users=users,
        sasl_mechanism=mechanism,
        sasl_super_password=p.get("zookeeper.SASLAuthenticationProvider.superPassword"),
        sasl_super_users=supers,
        remove_host=p.true("zookeeper.kerberos.removeHostFromPrincipal"),
        remove_realm=p.true("zookeeper.kerberos.removeRealmFromPrincipal"),
        default_realm=_default_realm(environ),
        allow_sasl_failed=p.true("zookeeper.allowSaslFailedClients"),
        enforce_enabled=enforce,
        enforce_schemes=enforce_schemes,
        x509_super_user=p.get("zookeeper.X509AuthenticationProvider.superUser"),
        nonce_source=os.urandom,  # what secrets.token_bytes returns
        audit=p.true("zookeeper.audit.enable"),
        server_user=_server_user(),
    )
