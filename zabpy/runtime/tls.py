"""TLS for the secure client port (secureClientPort), from ZooKeeper's
ssl.* keys: a PEM key store (private key + certificate chain in one file),
a PEM trust store (CAs that sign client certificates) and ssl.clientAuth
(need, the default; want; none). JKS and PKCS12 stores are not read."""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto

from .config import ServerConfig

__all__ = ["server_ssl_context", "TlsConfigError", "tls_server_protocol"]

log = logging.getLogger("zabpy.server")


class TlsConfigError(Exception):
    pass


def _key(cfg: ServerConfig, name: str) -> str | None:
    return cfg.raw.get(name) or cfg.raw.get("zookeeper." + name)


def server_ssl_context(cfg: ServerConfig) -> ssl.SSLContext:
    keystore = _key(cfg, "ssl.keyStore.location")
    if not keystore:
        raise TlsConfigError("secureClientPort is set but ssl.keyStore.location is not")
    for store in ("ssl.keyStore.type", "ssl.trustStore.type"):
        kind = (_key(cfg, store) or "PEM").upper()
        if kind != "PEM":
            raise TlsConfigError(f"{store}={kind}: only PEM stores are supported")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    password = _key(cfg, "ssl.keyStore.password") or None
    ctx.load_cert_chain(keystore, password=password)
    truststore = _key(cfg, "ssl.trustStore.location")
    if truststore:
        ctx.load_verify_locations(truststore)
    auth = (_key(cfg, "ssl.clientAuth") or "need").lower()
    ctx.verify_mode = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL,
                       "none": ssl.CERT_NONE}.get(auth, ssl.CERT_REQUIRED)
    if ctx.verify_mode != ssl.CERT_NONE and not truststore:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx



def tls_server_protocol(ctx: ssl.SSLContext, app_protocol: asyncio.BaseProtocol) -> asyncio.BaseProtocol:
    """The TLS layer for one secure-port connection, as ``create_server(ssl=)``
    builds it, but with a handshake waiter of our own: asyncio (and uvloop)
    drop a failed server-side handshake without a word, while a plain-text
    client or a missing or untrusted certificate must leave one log line
    (ZooKeeper logs "Unsuccessful handshake"). The client protocol gets its
    connection when the handshake is done."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    proto = _ServerTLS(loop, app_protocol, ctx, waiter, server_side=True)

    def done(f: asyncio.Future) -> None:
        if f.cancelled() or f.exception() is None:
            return
        peer = proto.peer
        log.warning("Unsuccessful TLS handshake with %s:%s: %s", peer[0], peer[1],
                    f.exception() or type(f.exception()).__name__)

    waiter.add_done_callback(done)
    return proto


class _ServerTLS(sslproto.SSLProtocol):
    peer = ("?", 0)

    def connection_made(self, transport) -> None:
        self.peer = transport.get_extra_info("peername") or self.peer
        super().connection_made(transport)
