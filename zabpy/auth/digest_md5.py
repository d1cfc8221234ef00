"""The server side of SASL DIGEST-MD5 (RFC 2831), as ZooKeeper 3.8 runs it.

ZooKeeper creates its DIGEST-MD5 server with protocol ``zookeeper`` and
server name ``zk-sasl-md5`` (SecurityUtils.createSaslServer), so the realm it
offers and the digest-uri it expects are fixed whatever the host. Only the
``auth`` quality of protection is offered (the JDK's default); integrity and
confidentiality layers are never negotiated.

Pure: the nonce comes from an injected source; no clock, no socket.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from .. import limits

__all__ = ["DigestMD5Client", "DigestMD5Server", "SaslError", "SERVICE", "SERVER_NAME"]

SERVICE = "zookeeper"
SERVER_NAME = "zk-sasl-md5"
NONCE_BYTES = 30  # the JDK's nonce size; base64 gives 40 characters


class SaslError(Exception):
    """The exchange failed: wrong password, unknown user, malformed token."""


# hashlib and hmac are imported by the first exchange, not by every server
# start (with OpenSSL's digests they cost ~5 M instructions to import).

def _md5(data: bytes) -> bytes:
    import hashlib
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> bytes:
    import hashlib
    return hashlib.md5(data).hexdigest().encode("ascii")


def _same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison (``hmac.compare_digest``)."""
    import hmac
    return hmac.compare_digest(a, b)


def _parse(token: bytes) -> dict[str, bytes]:
    """A directive list: ``name=token`` or ``name="quoted \\"string\\""``
    separated by commas (empty elements allowed). Names are case-insensitive;
    a repeated name is a format violation (RFC 2831 2.1.2)."""
    out: dict[str, bytes] = {}
    i, n = 0, len(token)
    while i < n:
        while i < n and token[i] in b" \t\r\n,":
            i += 1
        if i >= n:
            break
        eq = token.find(b"=", i)
        if eq < 0:
            raise SaslError("DIGEST-MD5: digest response format violation: directive without a value")
        name = token[i:eq].strip().decode("latin-1").lower()
        if not name:
            raise SaslError("DIGEST-MD5: digest response format violation: empty directive name")
        i = eq + 1
        while i < n and token[i] in b" \t":
            i += 1
        if i < n and token[i] == 0x22:  # quoted-string
            i += 1
            val = bytearray()
            while True:
                if i >= n:
                    raise SaslError("DIGEST-MD5: digest response format violation: unclosed quote")
                c = token[i]
                if c == 0x5C and i + 1 < n:  # backslash escapes the next byte
                    val.append(token[i + 1])
                    i += 2
                    continue
                i += 1
                if c == 0x22:
                    break
                val.append(c)
            value = bytes(val)
            while i < n and token[i] in b" \t\r\n":
                i += 1
            if i < n and token[i] != 0x2C:
                raise SaslError("DIGEST-MD5: digest response format violation: text after a quoted value")
        else:
            end = token.find(b",", i)
            end = n if end < 0 else end
            value = token[i:end].strip()
            i = end
        if name in out:
            raise SaslError(f"DIGEST-MD5: digest response format violation: {name} repeated")
        out[name] = value
    return out


def _to_8859_1(text: str, utf8: bool) -> bytes:
    """RFC 2831: with charset=utf-8, a string whose characters all fit ISO
    8859-1 is hashed as 8859-1, any other as UTF-8; without it, 8859-1."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        if not utf8:
            raise SaslError("DIGEST-MD5: characters outside ISO 8859-1 without charset=utf-8") from None
        return text.encode("utf-8")


class DigestMD5Server:
    """One connection's exchange. ``evaluate(token)`` returns the next
    server token or raises SaslError; after success ``complete`` is true and
    ``authentication_id``/``authzid`` hold the client's names.

    ``password_of(username)`` returns the password for a user, or None for
    an unknown one (the JAAS ``Server`` section's ``user_NAME`` entries).
    """

    def __init__(self, password_of: Callable[[str], str | None], nonce_source: Callable[[int], bytes],
                 realm: str = SERVER_NAME, service: str = SERVICE, server_name: str = SERVER_NAME):
        self._password_of = password_of
        self._nonce_source = nonce_source
        self.realm = realm
        self.digest_uri = f"{service}/{server_name}"
        self._nonce: bytes | None = None
        self.complete = False
        self.failed = False
        self.authentication_id: str | None = None
        self.authzid: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self.complete or self.failed:
            self.failed = True
            raise SaslError("DIGEST-MD5: authentication already completed")
        try:
            if self._nonce is None:
                return self._challenge()
            return self._verify(token)
        except SaslError:
            self.failed = True
            raise

    def _challenge(self) -> bytes:
        # The client's first token is empty (DIGEST-MD5 is server-first); a
        # non-empty one is ignored as the JDK's server does.
        self._nonce = base64.b64encode(self._nonce_source(NONCE_BYTES))
        return (b'realm="' + self.realm.encode("utf-8") + b'",nonce="' + self._nonce
                + b'",qop="auth",charset=utf-8,algorithm=md5-sess')

    def _verify(self, token: bytes) -> bytes:
        if len(token) > limits.SASL_DIGEST_RESPONSE_MAX:
            raise SaslError("DIGEST-MD5: digest response longer than 4096 bytes")
        d = _parse(token)
        charset = d.get("charset")
        utf8 = charset is not None
        if utf8 and charset.lower() != b"utf-8":
            raise SaslError("DIGEST-MD5: digest response format violation. Incompatible charset value: "
                            + charset.decode("latin-1"))

        def text(raw: bytes) -> str:
            try:
                return raw.decode("utf-8" if utf8 else "latin-1")
            except UnicodeDecodeError:
                raise SaslError("DIGEST-MD5: invalid UTF-8 in digest response") from None

        for need in ("username", "nonce", "cnonce", "digest-uri", "response"):
            if need not in d:
                raise SaslError(f"DIGEST-MD5: digest response format violation. Missing {need}.")
        username = text(d["username"])
        realm = text(d["realm"]) if "realm" in d else ""
        if "realm" in d and realm != self.realm:
            raise SaslError(f"DIGEST-MD5: digest response format violation. Nonexistent realm: {realm}")
        if not _same(d["nonce"], self._nonce):
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched nonce.")
        nc = d.get("nc", b"")
        try:
            nc_ok = int(nc, 16) == 1 and len(nc) == 8
        except ValueError:
            nc_ok = False
        if not nc_ok:
            raise SaslError("DIGEST-MD5: nonce count must be 00000001")
        qop = d.get("qop", b"auth")
        if qop.lower() != b"auth":
            raise SaslError("DIGEST-MD5: digest response format violation. Invalid QOP: "
                            + qop.decode("latin-1"))
        uri = d["digest-uri"]
        if uri.decode("latin-1").lower() != self.digest_uri.lower():
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched URI: "
                            f"{uri.decode('latin-1')}; expecting: {self.digest_uri}")
        password = self._password_of(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: cannot acquire password for {username} in realm : {self.realm}")
        authzid = text(d["authzid"]) if "authzid" in d else None

        key = _md5(b":".join((_to_8859_1(username, utf8), _to_8859_1(realm, utf8),
                              _to_8859_1(password, utf8))))
        a1 = key + b":" + d["nonce"] + b":" + d["cnonce"]
        if authzid is not None:
            a1 += b":" + authzid.encode("utf-8" if utf8 else "latin-1")
        ha1 = _hex(a1)

        def kd(a2: bytes) -> bytes:
            return _hex(b":".join((ha1, d["nonce"], nc, d["cnonce"], qop, _hex(a2))))

        if not _same(kd(b"AUTHENTICATE:" + uri), d["response"].lower()):
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched response.")
        self.complete = True
        self.authentication_id = username
        self.authzid = authzid
        return b"rspauth=" + kd(b":" + uri)


def _quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class DigestMD5Client:
    """The client side of the same exchange, as the JDK's client runs it for
    a quorum learner: no initial response, then one response to the
    server's challenge, then the server's ``rspauth`` checked. ``evaluate``
    returns the next token, or None once the exchange is complete; it raises
    SaslError on a malformed challenge or a wrong ``rspauth`` (a server that
    does not know our password)."""

    def __init__(self, username: str, password: str, nonce_source: Callable[[int], bytes],
                 service: str = SERVICE, server_name: str = SERVER_NAME):
        self.username = username
        self.password = password
        self._nonce_source = nonce_source
        self.digest_uri = f"{service}/{server_name}".encode("utf-8")
        self._expect_rspauth: bytes | None = None
        self.complete = False

    def evaluate(self, challenge: bytes) -> bytes | None:
        if self.complete:
            raise SaslError("DIGEST-MD5: authentication already completed")
        if self._expect_rspauth is None:
            return self._respond(challenge)
        d = _parse(challenge)
        if not _same(d.get("rspauth", b"").lower(), self._expect_rspauth):
            raise SaslError("DIGEST-MD5: mismatched rspauth from the server")
        self.complete = True
        return None

    def _respond(self, challenge: bytes) -> bytes:
        if len(challenge) > limits.SASL_DIGEST_RESPONSE_MAX:
            raise SaslError("DIGEST-MD5: challenge longer than 4096 bytes")
        d = _parse(challenge)
        if "nonce" not in d:
            raise SaslError("DIGEST-MD5: digest challenge format violation: no nonce")
        qops = [q.strip().lower() for q in d.get("qop", b"auth").split(b",")]
        if b"auth" not in qops:
            raise SaslError("DIGEST-MD5: the server offers no 'auth' quality of protection")
        utf8 = d.get("charset", b"").lower() == b"utf-8"
        realm = d.get("realm", b"").decode("utf-8" if utf8 else "latin-1")
        nonce = d["nonce"]
        cnonce = base64.b64encode(self._nonce_source(NONCE_BYTES))
        nc, qop = b"00000001", b"auth"
        key = _md5(b":".join((_to_8859_1(self.username, utf8), _to_8859_1(realm, utf8),
                              _to_8859_1(self.password, utf8))))
        ha1 = _hex(key + b":" + nonce + b":" + cnonce)

        def kd(a2: bytes) -> bytes:
            return _hex(b":".join((ha1, nonce, nc, cnonce, qop, _hex(a2))))

        self._expect_rspauth = kd(b":" + self.digest_uri)
        enc = "utf-8" if utf8 else "latin-1"
        parts = [b"username=" + _quote(self.username.encode(enc))]
        if "realm" in d:
            parts.append(b"realm=" + _quote(realm.encode(enc)))
        parts += [b"nonce=" + _quote(nonce), b"nc=" + nc, b"cnonce=" + _quote(cnonce),
                  b"digest-uri=" + _quote(self.digest_uri), b"maxbuf=65536",
                  b"response=" + kd(b"AUTHENTICATE:" + self.digest_uri), b"qop=" + qop]
        if utf8:
            parts.append(b"charset=utf-8")
        return b",".join(parts)
