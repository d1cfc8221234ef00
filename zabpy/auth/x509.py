"""x509 identities: a TLS client certificate's subject as ZooKeeper's
X509AuthenticationProvider names it, ``X500Principal.getName()`` (RFC 2253
form): the RDNs last-to-first, the keywords CN, C, L, ST, O, OU, STREET, DC
and UID, any other attribute as its OID with ``#`` and the hex of its DER
value. Pure: DER bytes in, a string out.
"""

from __future__ import annotations

import re

__all__ = ["subject_dn", "parse_dn", "x509_ids", "CertificateError"]

_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# DER string types printed as text: UTF8, Printable, Teletex (as Latin-1), IA5,
# Universal (UCS-4), BMP (UCS-2)
_STRINGS = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1",
            0x1C: "utf-32-be", 0x1E: "utf-16-be"}


class CertificateError(ValueError):
    pass


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, start of value, end of value, end of element) at ``pos``."""
    if pos + 2 > len(buf):
        raise CertificateError("truncated DER")
    tag, n = buf[pos], buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            raise CertificateError("bad DER length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise CertificateError("truncated DER")
    return tag, pos, pos + n, pos + n


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    out, pos = [], start
    while pos < end:
        t = _tlv(buf, pos)
        out.append((t[0], pos, t[1], t[2]))
        pos = t[3]
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise CertificateError("empty OID")
    parts, v = [], 0
    for b in raw:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(v)
            v = 0
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def _escape(value: str) -> str:
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;' or (i == 0 and c in "# ") or (i == len(value) - 1 and c == " "):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def subject_dn(der: bytes) -> str:
    """The RFC 2253 subject name of a DER certificate."""
    tag, s, e, _ = _tlv(der, 0)
    tag, ts, te, _ = _tlv(der, s)  # tbsCertificate
    fields = _children(der, ts, te)
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    if len(fields) < 5:
        raise CertificateError("short tbsCertificate")
    _, _, ns, ne = fields[4]  # serial, signature, issuer, validity, subject
    rdns = []
    for _, _, ss, se in _children(der, ns, ne):  # SET per RDN
        avas = []
        for _, _, as_, ae in _children(der, ss, se):  # SEQUENCE {OID, value}
            (ot, _, os_, oe), (vt, vstart, vs, ve) = _children(der, as_, ae)[:2]
            oid = _oid(der[os_:oe])
            key = _KEYWORDS.get(oid)
            if key is not None and vt in _STRINGS:
                avas.append(f"{key}={_escape(der[vs:ve].decode(_STRINGS[vt], 'replace'))}")
            else:
                avas.append(f"{key or oid}=#{der[vstart:ve].hex()}")
        rdns.append("+".join(avas))
    return ",".join(reversed(rdns))


_AVA = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|(?:OID\.)?[0-9]+(?:\.[0-9]+)*)\s*=")


def parse_dn(text: str) -> list[str] | None:
    """The attribute=value pairs of a DN string, or None when X500Principal
    would refuse it (checked by shape: each part is ``type=value``)."""
    if text.strip() == "":
        return []
    parts, cur, i, quoted = [], [], 0, False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in ",;+" and not quoted:
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if quoted:
        return None
    parts.append("".join(cur))
    for p in parts:
        if not _AVA.match(p):
            return None
    return parts


def x509_ids(der: bytes | None, super_user: str | None) -> tuple:
    """The ids a verified client certificate adds to its connection
    (X509AuthenticationProvider.handleAuthentication): ``super`` with the
    DN when it is ``zookeeper.X509AuthenticationProvider.superUser``, then
    ``x509`` with the DN. No certificate (clientAuth=want): none."""
    from ..jute.records import Id

    if not der:
        return ()
    dn = subject_dn(der)
    ids = (Id("x509", dn),)
    if super_user is not None and dn == super_user:
        ids = (Id("super", dn),) + ids
    return ids
