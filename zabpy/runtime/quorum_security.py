"""TLS and SASL on the quorum and election ports (sslQuorum, portUnification,
ssl.quorum.*, quorum.auth.*), as thin wrappers the two transports put
around their streams.

* ``start_server(cb, host, port, sec)`` listens. Without TLS it is
  ``asyncio.start_server``. With ``sslQuorum`` (TLS only) or
  ``portUnification`` (TLS or plain text, told apart by the first byte, as
  ZooKeeper's UnifiedServerSocket does) it accepts raw sockets, waits for
  the first byte, and wraps the socket in TLS when it is a handshake record
  (0x16). A failed handshake is one log line naming the peer and the reason,
  and only that connection is dropped.
* ``open_connection(host, port, sec)`` dials, over TLS with ``sslQuorum``
  (hostname verification unless ``ssl.quorum.hostnameVerification=false``).
* ``learner_handshake`` / ``server_handshake`` run quorum SASL
  (``auth.quorum_auth``) on a fresh stream: the connecting side first; a
  refused peer raises ``QuorumAuthError`` after one log line.

With ``sslQuorumReloadCertFiles=true`` each new connection uses the key and
trust stores as they are on disk now (the context is rebuilt when a file's
mtime or size changed), as ZooKeeper's file watcher makes it.

The key and trust stores: PEM (a key and its certificate chain in one file;
CA certificates in the trust store) and PKCS12 (read with ``cryptography``).
JKS and BCFKS have no well-kept Python reader and are refused at start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import tempfile
from dataclasses import dataclass

from ..auth.digest_md5 import SaslError
from ..auth.jaas import JaasError, digest_credentials, parse_jaas
from ..auth.quorum_auth import (HEAD_BYTES, STATUS, QuorumAuthError, QuorumAuthLearner,
                                QuorumAuthServer, QuorumSaslSettings, encode_auth_packet,
                                is_auth_magic, parse_auth_head)
from .config import ServerConfig
from .security import JAAS_KEY, KRB5_LOGIN_MODULE, AuthConfigError, _beside_cfg, _Props

__all__ = ["QuorumSecurity", "load_quorum_security", "start_server", "open_connection",
           "learner_handshake", "server_handshake", "QuorumAuthError"]

log = logging.getLogger("zabpy.quorum")

_TLS_HANDSHAKE = 0x16
DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"


class _Stores:
    """One side's SSLContext, rebuilt on change when reloading is on."""

    def __init__(self, build, files: list[str], reload: bool):
        self._build, self._files, self._reload = build, files, reload
        self._stamp = self._stat()
        self._ctx = build()

    def _stat(self):
        out = []
        for f in self._files:
            try:
                st = os.stat(f)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return out

    def get(self) -> ssl.SSLContext:
        if self._reload:
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._ctx = self._build()
                    log.info("Reloaded the quorum TLS key and trust stores")
                except (OSError, ssl.SSLError, AuthConfigError) as e:
                    log.warning("Keeping the old quorum TLS stores: cannot reload them: %s", e)
                self._stamp = stamp
        return self._ctx


@dataclass
class QuorumSecurity:
    tls_server: _Stores | None = None      # accept TLS (sslQuorum or portUnification)
    tls_client: _Stores | None = None      # dial with TLS (sslQuorum)
    tls_only: bool = False                 # sslQuorum without portUnification: refuse plain text
    hostname_verification: bool = True
    sasl: QuorumSaslSettings | None = None  # quorum.auth.enableSasl
    handshake_timeout_s: float = 10.0

    @property
    def sasl_learner(self) -> bool:
        return self.sasl is not None and self.sasl.learner_require

    @property
    def sasl_server(self) -> bool:
        return self.sasl is not None


# ---- configuration ------------------------------------------------------------------

def _store_type(p: _Props, prefix: str, kind: str, location: str) -> str:
    t = (p.get(f"zookeeper.{prefix}.{kind}.type") or "").strip().upper()
    if not t:  # KeyStoreFileType.fromPropertyValueOrFileName: by the file's extension
        ext = os.path.splitext(location)[1].lower()
        t = {".jks": "JKS", ".p12": "PKCS12", ".pfx": "PKCS12", ".bcfks": "BCFKS"}.get(ext, "PEM")
    if t not in ("PEM", "PKCS12"):
        raise AuthConfigError(f"{prefix}.{kind}.type={t}: zabpy reads PEM and PKCS12 stores only "
                              "(convert a JKS store with keytool -importkeystore to PKCS12)")
    return t


def _pkcs12(path: str, password: str | None):
    from cryptography.hazmat.primitives.serialization import pkcs12
    with open(path, "rb") as f:
        data = f.read()
    try:
        return pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as e:
        raise AuthConfigError(f"{path}: cannot read the PKCS12 store: {e}") from None


def _load_key_store(ctx: ssl.SSLContext, path: str, kind: str, password: str | None) -> None:
    if kind == "PEM":
        ctx.load_cert_chain(path, password=password or None)
        return
    from cryptography.hazmat.primitives import serialization as ser
    key, cert, extra = _pkcs12(path, password)
    if key is None or cert is None:
        raise AuthConfigError(f"{path}: the PKCS12 store holds no private key and certificate")
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    for c in [cert, *(extra or ())]:
        pem += c.public_bytes(ser.Encoding.PEM)
    fd, tmp = tempfile.mkstemp(prefix="zabpy-quorum-key-")   # ssl reads key chains from files only
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(tmp)
    finally:
        os.unlink(tmp)


def _load_trust_store(ctx: ssl.SSLContext, path: str, kind: str, password: str | None) -> None:
    if kind == "PEM":
        ctx.load_verify_locations(path)
        return
    from cryptography.hazmat.primitives import serialization as ser
    _, cert, extra = _pkcs12(path, password)
    certs = [c for c in [cert, *(extra or ())] if c is not None]
    if not certs:
        raise AuthConfigError(f"{path}: the PKCS12 trust store holds no certificate")
    ctx.load_verify_locations(cadata="".join(c.public_bytes(ser.Encoding.PEM).decode() for c in certs))


def _tls_builder(p: _Props, server_side: bool, verify_host: bool):
    pre = "ssl.quorum"
    keystore = p.get(f"zookeeper.{pre}.keyStore.location")
    truststore = p.get(f"zookeeper.{pre}.trustStore.location")
    if not keystore:
        raise AuthConfigError("sslQuorum or portUnification is set but ssl.quorum.keyStore.location is not")
    kt = _store_type(p, pre, "keyStore", keystore)
    tt = _store_type(p, pre, "trustStore", truststore) if truststore else None
    kp = p.get(f"zookeeper.{pre}.keyStore.password")
    tp = p.get(f"zookeeper.{pre}.trustStore.password")
    client_auth = (p.get(f"zookeeper.{pre}.clientAuth") or "need").strip().lower()
    protocol = (p.get(f"zookeeper.{pre}.protocol") or "").strip()
    ciphers = (p.get(f"zookeeper.{pre}.ciphersuites") or "").strip()

    def build() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
        if protocol == "TLSv1.3":
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if ciphers:
            # Java names (TLS_ECDHE_...) are not OpenSSL's; only pass OpenSSL-style lists
            if not ciphers.startswith("TLS_"):
                ctx.set_ciphers(ciphers.replace(",", ":"))
        try:
            _load_key_store(ctx, keystore, kt, kp)
            if truststore:
                _load_trust_store(ctx, truststore, tt, tp)
            else:
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH)
        except (OSError, ssl.SSLError) as e:
            raise AuthConfigError(f"quorum TLS stores: {e}") from None
        if server_side:
            ctx.verify_mode = {"want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}.get(
                client_auth, ssl.CERT_REQUIRED)
        else:
            ctx.check_hostname = verify_host
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    files = [f for f in (keystore, truststore) if f]
    return build, files


def _quorum_sasl(cfg: ServerConfig, p: _Props) -> QuorumSaslSettings | None:
    raw = cfg.raw

    def flag(key: str) -> bool:
        return (raw.get(key) or "").strip().lower() == "true"

    enabled = flag("quorum.auth.enableSasl")
    learner_require = flag("quorum.auth.learnerRequireSasl")
    server_require = flag("quorum.auth.serverRequireSasl")
    for key, on in (("quorum.auth.serverRequireSasl", server_require),
                    ("quorum.auth.learnerRequireSasl", learner_require)):
        if on and not enabled:  # QuorumPeerConfig refuses this too
            raise AuthConfigError(f"quorum.auth.enableSasl is disabled, so cannot enable {key}")
    if not enabled:
        return None
    jaas = p.get(JAAS_KEY) or _beside_cfg(cfg)
    learner_ctx = raw.get("quorum.auth.learner.saslLoginContext") or "QuorumLearner"
    server_ctx = raw.get("quorum.auth.server.saslLoginContext") or "QuorumServer"
    sections = {}
    if jaas:
        try:
            with open(jaas, encoding="utf-8") as f:
                sections = parse_jaas(f.read())
        except (OSError, JaasError) as e:
            raise AuthConfigError(f"quorum SASL: cannot read the JAAS file {jaas}: {e}") from None
    for name in (learner_ctx, server_ctx):
        if not sections.get(name):
            raise AuthConfigError(f"SASL-authentication failed because the specified JAAS "
                                  f"configuration section '{name}' could not be found.")
    kerberos = {name: [m for m in sections[name] if m.class_name == KRB5_LOGIN_MODULE]
                for name in (learner_ctx, server_ctx)}
    if kerberos[learner_ctx] or kerberos[server_ctx]:
        return _quorum_kerberos(cfg, kerberos, learner_ctx, server_ctx, learner_require,
                                server_require)
    for name in (learner_ctx, server_ctx):
        for m in sections[name]:
            if m.class_name != DIGEST_LOGIN_MODULE:
                raise AuthConfigError(f"quorum SASL: section '{name}' uses {m.class_name}; zabpy "
                                      "reads DigestLoginModule and Krb5LoginModule only")
    learner = sections[learner_ctx][0].options
    if "username" not in learner:
        raise AuthConfigError(f"quorum SASL: section '{learner_ctx}' has no username")
    log.warning("Using DIGEST-MD5 for quorum authorization")
    return QuorumSaslSettings(enabled=True, learner_require=learner_require,
                              server_require=server_require, learner_user=learner["username"],
                              learner_password=learner.get("password", ""),
                              server_users=digest_credentials(sections[server_ctx]),
                              nonce_source=secrets.token_bytes)


def _quorum_kerberos(cfg: ServerConfig, kerberos, learner_ctx: str, server_ctx: str,
                     learner_require: bool, server_require: bool) -> QuorumSaslSettings:
    """Kerberos between servers: both sections log in with Krb5LoginModule
    (keytab and principal); the learner asks for
    quorum.auth.kerberos.servicePrincipal (``_HOST`` becomes the dialed
    host), the server accepts principals whose host is an ensemble member's."""
    from .gssapi_server import GssapiClient, GssapiServer, GssapiUnavailable, gssapi_factory

    def login(name: str) -> tuple[str, str | None]:
        if not kerberos[name]:
            raise AuthConfigError(f"quorum SASL: section '{name}' must use Krb5LoginModule as "
                                  "the other one does")
        o = kerberos[name][0].options
        if not o.get("principal"):
            raise AuthConfigError(f"quorum SASL: section '{name}' has no principal")
        keytab = o.get("keyTab") if o.get("useKeyTab", "false").lower() == "true" else None
        return o["principal"], keytab

    server_principal, server_keytab = login(server_ctx)
    learner_principal, learner_keytab = login(learner_ctx)
    service = cfg.raw.get("quorum.auth.kerberos.servicePrincipal") or "zkquorum/localhost"
    realm = learner_principal.split("@", 1)[1] if "@" in learner_principal else ""

    def target(host: str) -> str:
        parts = service.split("/")
        name = f"{parts[0]}/{host.lower()}" if len(parts) == 2 and parts[1] == "_HOST" else service
        return name if "@" in name or not realm else f"{name}@{realm}"

    try:
        server_mechanism = gssapi_factory(server_principal, server_keytab)
    except GssapiUnavailable as e:
        raise AuthConfigError(f"quorum SASL: section '{server_ctx}': {e}") from None
    assert GssapiServer is not None
    log.info("Using Kerberos (GSSAPI) for quorum authorization")
    return QuorumSaslSettings(
        enabled=True, learner_require=learner_require, server_require=server_require,
        server_mechanism=server_mechanism,
        learner_mechanism=lambda host: GssapiClient(learner_principal, learner_keytab, target(host)),
        authz_hosts=frozenset(s.host for s in cfg.servers.values()))


def load_quorum_security(cfg: ServerConfig, environ=None) -> QuorumSecurity | None:
    """The quorum ports' security from zoo.cfg, -D flags and JAAS; None when all is off."""
    environ = os.environ if environ is None else environ
    p = _Props(cfg, environ)
    ssl_quorum = p.true("zookeeper.sslQuorum") or (cfg.raw.get("sslQuorum") or "").lower() == "true"
    unified = (cfg.raw.get("portUnification") or "").lower() == "true" or p.true("zookeeper.portUnification")
    reload = (cfg.raw.get("sslQuorumReloadCertFiles") or "").lower() == "true"
    verify_host = (p.get("zookeeper.ssl.quorum.hostnameVerification") or "true").strip().lower() != "false"
    sasl = _quorum_sasl(cfg, p)
    if not (ssl_quorum or unified or sasl):
        return None
    sec = QuorumSecurity(sasl=sasl, tls_only=ssl_quorum and not unified,
                         hostname_verification=verify_host,
                         handshake_timeout_s=cfg.tick_time_ms * (cfg.init_limit or 10) / 1000)
    if ssl_quorum or unified:
        build, files = _tls_builder(p, True, verify_host)
        sec.tls_server = _Stores(build, files, reload)
    if ssl_quorum:
        build, files = _tls_builder(p, False, verify_host)
        sec.tls_client = _Stores(build, files, reload)
    log.info("Quorum ports: %s%s", "TLS" if ssl_quorum else "plain text",
             " (port unification: TLS or plain text accepted)" if unified else "")
    return sec


# ---- listening and dialing ----------------------------------------------------------

class _Listener:
    """What the transports use of an asyncio Server: close, wait_closed, sockets."""

    def __init__(self, sock: socket.socket, task: asyncio.Task):
        self.sockets = [sock]
        self._task = task

    def close(self) -> None:
        self._task.cancel()

    async def wait_closed(self) -> None:
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.sockets[0].close()


async def start_server(callback, host: str, port: int, sec: QuorumSecurity | None):
    if sec is None or sec.tls_server is None:
        return await asyncio.start_server(callback, host, port)
    loop = asyncio.get_running_loop()
    lsock = socket.create_server((host, port), family=_family(host), backlog=64)
    lsock.setblocking(False)
    conns: set[asyncio.Task] = set()

    async def accept_loop() -> None:
        try:
            while True:
                conn, addr = await loop.sock_accept(lsock)
                t = loop.create_task(_serve_one(callback, conn, addr, sec))
                conns.add(t)
                t.add_done_callback(conns.discard)
        finally:
            for t in list(conns):
                t.cancel()

    return _Listener(lsock, loop.create_task(accept_loop()))


def _family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


async def _first_byte(sock: socket.socket, timeout_s: float) -> int | None:
    """The first byte a peer sent, left in the socket (MSG_PEEK); None at EOF."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fd = sock.fileno()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await asyncio.wait_for(fut, timeout_s)
    finally:
        loop.remove_reader(fd)
    data = sock.recv(1, socket.MSG_PEEK)
    return data[0] if data else None


async def _serve_one(callback, conn: socket.socket, addr, sec: QuorumSecurity) -> None:
    loop = asyncio.get_running_loop()
    peer = f"{addr[0]}:{addr[1]}"
    try:
        first = await _first_byte(conn, sec.handshake_timeout_s)
        tls = first == _TLS_HANDSHAKE
        if first is None:
            conn.close()
            return
        if not tls and sec.tls_only:
            log.warning("Unsuccessful TLS handshake on a quorum port with %s: plain text on a "
                        "TLS-only port (sslQuorum=true, portUnification=false)", peer)
            conn.close()
            return
        reader = asyncio.StreamReader(limit=2 ** 16)
        proto = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: proto, conn, ssl=sec.tls_server.get() if tls else None,
            ssl_handshake_timeout=sec.handshake_timeout_s if tls else None)
    except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
        log.warning("Unsuccessful TLS handshake on a quorum port with %s: %s", peer,
                    e or type(e).__name__)
        conn.close()
        return
    writer = asyncio.StreamWriter(transport, proto, reader, loop)
    if tls and sec.hostname_verification and not _client_cert_matches(writer, addr[0]):
        log.warning("Unsuccessful TLS handshake on a quorum port with %s: its certificate does "
                    "not name %s (ssl.quorum.hostnameVerification)", peer, addr[0])
        writer.close()
        return
    await callback(reader, writer)


def _client_cert_matches(writer: asyncio.StreamWriter, ip: str) -> bool:
    """ZKTrustManager's check of a client: the certificate names the peer's
    address (an IP SAN), or a DNS name that resolves to it (localhost for
    loopback)."""
    cert = writer.get_extra_info("peercert") or {}
    if not cert:
        return True   # clientAuth=want/none and no certificate: nothing to check
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                if ipaddress.ip_address(value.strip()) == addr:
                    return True
            except ValueError:
                continue
        elif kind == "DNS" and value.lower() == "localhost" and addr.is_loopback:
            return True
    return False


async def open_connection(host: str, port: int, sec: QuorumSecurity | None):
    if sec is None or sec.tls_client is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=sec.tls_client.get(),
                                         server_hostname=host.strip("[]"),
                                         ssl_handshake_timeout=sec.handshake_timeout_s)


# ---- quorum SASL --------------------------------------------------------------------

async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes | None]:
    status, n = parse_auth_head(await reader.readexactly(HEAD_BYTES))
    return status, (None if n < 0 else await reader.readexactly(n))


async def learner_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            sec: QuorumSecurity, what: str, host: str = "") -> None:
    """Authenticate to the server we dialed (at ``host``: Kerberos names its
    service principal after it); raises QuorumAuthError (logged)."""
    if not sec.sasl_learner:
        return
    try:
        learner = QuorumAuthLearner(sec.sasl, host)
        async with asyncio.timeout(sec.handshake_timeout_s):
            writer.write(learner.first())
            while True:
                status, token = await _read_packet(reader)
                out = learner.receive(status, token)
                if out is None:
                    break
                writer.write(out)
    except (QuorumAuthError, SaslError, OSError, asyncio.IncompleteReadError, TimeoutError) as e:
        reason = e if isinstance(e, (QuorumAuthError, SaslError)) else f"{type(e).__name__}: {e}"
        log.error("Quorum SASL authentication to %s failed: %s", what, reason)
        raise QuorumAuthError(str(reason)) from None
    log.info("Successfully completed the authentication using SASL. server addr: %s, status: SUCCESS",
             what)


async def server_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           sec: QuorumSecurity, prefix: bytes, what: str) -> bytes:
    """Authenticate a peer that dialed us. ``prefix``: bytes already read
    past its initial message. Returns the bytes read that belong to what
    follows; raises QuorumAuthError (logged) when the peer is refused."""
    if not sec.sasl_server:
        return prefix
    server = QuorumAuthServer(sec.sasl)
    buf = bytearray(prefix)
    buf_is_auth = False
    try:
        async with asyncio.timeout(sec.handshake_timeout_s):
            while len(buf) < 8:
                chunk = await reader.read(8 - len(buf))
                if not chunk:
                    break
                buf += chunk
            buf_is_auth = is_auth_magic(bytes(buf))
            if not buf_is_auth:
                server.no_auth()
            else:
                rest = bytes(buf)
                while True:
                    if len(rest) < HEAD_BYTES:
                        rest += await reader.readexactly(HEAD_BYTES - len(rest))
                    status, n = parse_auth_head(rest[:HEAD_BYTES])
                    rest = rest[HEAD_BYTES:]
                    if n > len(rest):
                        rest += await reader.readexactly(n - len(rest))
                    token, rest = (rest[:max(n, 0)], rest[max(n, 0):])
                    out, done = server.step(token)
                    writer.write(out)
                    if done:
                        break
                buf = bytearray(rest)
    except (QuorumAuthError, OSError, asyncio.IncompleteReadError, TimeoutError) as e:
        server.error = f"{type(e).__name__}: {e}"
        if not writer.is_closing():
            writer.write(encode_auth_packet(STATUS.ERROR, b""))
    if server.authenticated:
        log.info("Successfully authenticated learner %s: authenticationID=%s", what, server.user)
        return bytes(buf)
    if server.error is None or (not server.s.server_require and not buf_is_auth):
        return bytes(buf)   # a peer that does not authenticate, and need not
    if server.s.server_require:
        log.error("Failed to authenticate using SASL: %s (learner %s); closing the connection",
                  server.error, what)
        raise QuorumAuthError(server.error or "not authenticated")
    log.warning("Maintaining learner connection despite SASL authentication failure: %s. server addr: "
                "%s, quorum.auth.serverRequireSasl: false", server.error, what)
    return bytes(buf)

