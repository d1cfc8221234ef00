"""ACL checks and auth schemes (world, auth, digest, ip, super).

A session carries a list of ``Id``s: one ``ip`` id from its peer address,
plus whatever ``auth`` packets added (``digest`` ids, and ``super`` when the
digest matches the configured super digest). A node's ACL grants a
permission when an entry with that bit is ``world:anyone`` or matches one of
the session's ids by its scheme's rule.
"""

from __future__ import annotations

import base64
import re

from ..jute.constants import ERR, PERM
from ..jute.codec import intern_encoding
from ..jute.records import ACL, Id

__all__ = [
    "digest_id", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "check_perm", "fix_acl",
    "AuthOutcome", "authenticate", "acl_matches", "SUPER_ID", "java_set_order",
]

WORLD_ANYONE = Id("world", "anyone")
# Shared by most znodes and their txns: written as interned bytes (codec.intern_encoding)
OPEN_ACL_UNSAFE = (intern_encoding(ACL(int(PERM.ALL), WORLD_ANYONE)),)
READ_ACL_UNSAFE = (intern_encoding(ACL(int(PERM.READ), WORLD_ANYONE)),)
SUPER_ID = Id("super", "")


def digest_id(user_password: str) -> str:
    """`user:BASE64(SHA1("user:password"))`, ZooKeeper's digest id."""
    import hashlib  # here: OpenSSL's digests cost ~5 M instructions to import, at every start
    user = user_password.split(":", 1)[0]
    h = hashlib.sha1(user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(h).decode('ascii')}"


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _java_int(text: str) -> int | None:
    """Integer.parseInt: optional sign, ASCII digits, nothing else."""
    if not _JAVA_INT.fullmatch(text):
        return None
    v = int(text)
    return v if -2**31 <= v < 2**31 else None


def _ipv4_bytes(addr: str) -> bytes | None:
    """ZooKeeper 3.8's ip scheme knows IPv4 only: four dot-separated
    decimal parts, each 0..255 (leading zeros and a '+' allowed)."""
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        v = _java_int(p)
        if v is None or not 0 <= v <= 255:
            return None
        out.append(v)
    return bytes(out)


def _ip_spec(spec: str | None) -> tuple[bytes, int] | None:
    """(address, prefix bits) of an ip ACL id 'a.b.c.d[/bits]', or None."""
    if spec is None:
        return None
    addr, _, bits_text = spec.partition("/")
    raw = _ipv4_bytes(addr)
    if raw is None:
        return None
    if "/" not in spec:
        return raw, 32
    bits = _java_int(bits_text)
    if bits is None or not 0 <= bits <= 32:
        return None
    return raw, bits


def _ip_matches(spec: str, addr: str) -> bool:
    acl = _ip_spec(spec)
    peer = _ipv4_bytes(addr)
    if acl is None or peer is None:
        return False
    raw, bits = acl
    mask = ((1 << 32) - 1) ^ ((1 << (32 - bits)) - 1)
    return int.from_bytes(raw, "big") & mask == int.from_bytes(peer, "big") & mask


def acl_matches(entry_id: Id, session_id: Id) -> bool:
    if entry_id.scheme != session_id.scheme:
        return False
    if entry_id.scheme == "ip":
        return _ip_matches(entry_id.id, session_id.id)
    if entry_id.scheme == "sasl" and session_id.id == "super":
        return True  # SASLAuthenticationProvider.matches: the SASL user "super" matches all
    return entry_id.id == session_id.id


def check_perm(acl: tuple[ACL, ...] | list[ACL] | None, perm: int, ids: list[Id],
               skip_acl: bool = False) -> bool:
    if skip_acl or not acl:
        return True
    if acl is OPEN_ACL_UNSAFE and perm:
        return True  # most nodes share this tuple: world:anyone may do all
    perm = int(perm)  # IntFlag arithmetic is slow on the read path
    for sid in ids:
        if sid.scheme == "super":
            return True
    for entry in acl:
        if entry.perms & perm == 0:
            continue
        eid = entry.id
        if eid.scheme == "world" and eid.id == "anyone":
            return True
        for sid in ids:
            if acl_matches(eid, sid):
                return True
    return False


def _valid_id(a: ACL, schemes: frozenset = frozenset()) -> bool:
    """ZooKeeper's provider check: world:anyone, or a scheme with a
    registered provider (3.8 registers ip and digest; authProvider.N adds
    ``schemes``, sasl and x509) that accepts the id."""
    s, i = a.id.scheme, a.id.id
    if s in schemes and i is not None:
        if s == "sasl":
            return _valid_kerberos_name(i)
        if s == "x509":
            return _valid_x500_name(i)
    if s == "world":
        return i == "anyone"
    if s == "digest":
        # Java's String.split(":") drops trailing empty parts: "u:" is one part.
        return i is not None and len(i.rstrip(":").split(":")) == 2
    if s == "ip":
        return _ip_spec(i) is not None
    return False


_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def _valid_kerberos_name(name: str) -> bool:
    """SASLAuthenticationProvider.isValid: KerberosName accepts it (a name
    with an '@' must be service[/host]@REALM)."""
    return "@" not in name or _KERBEROS_NAME.fullmatch(name) is not None


def _valid_x500_name(name: str) -> bool:
    """X509AuthenticationProvider.isValid: an X500Principal parses it. Checked
    here as RFC 2253's shape: comma-separated type=value pairs."""
    from ..auth.x509 import parse_dn
    return parse_dn(name) is not None


def _java_string_hash(s: str) -> int:
    h = 0
    raw = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(raw), 2):
        h = (31 * h + int.from_bytes(raw[i:i + 2], "big")) & 0xFFFFFFFF
    return h


def _java_set_slot(i: Id, table_size: int) -> int:
    """Bucket of an Id in a Java ConcurrentHashMap (jute's Id.hashCode)."""
    h = 17
    for part in (i.scheme or "", i.id or ""):
        h = (37 * h + _java_string_hash(part)) & 0xFFFFFFFF
    return ((h ^ (h >> 16)) & 0x7FFFFFFF) & (table_size - 1)


def java_set_order(auth_ids: list[Id]) -> list[Id]:
    """A session's ids in the order ZooKeeper iterates them: the Java hash
    set that holds them (bucket order of a ConcurrentHashMap, insertion
    order within one). Clients see it in whoAmI and in an ``auth`` ACL."""
    size = 16
    while len(auth_ids) >= size * 3 // 4:
        size *= 2
    return sorted(auth_ids, key=lambda i: _java_set_slot(i, size))


def fix_acl(acl: list[ACL] | None, auth_ids: list[Id],
            schemes: frozenset = frozenset()) -> tuple[tuple[ACL, ...] | None, int]:
    """Validate a client's ACL list and expand `auth` entries into the caller's
    authenticated ids. As ZooKeeper 3.5+, duplicates are removed from the list
    as sent, not from the expanded one: [digest:bob:31, auth::31] from bob
    keeps both. Returns (acl, err)."""
    if not acl:
        return None, ERR.INVALIDACL
    if len(acl) == 1 and (acl[0] is OPEN_ACL_UNSAFE[0] or acl[0] == OPEN_ACL_UNSAFE[0]):
        return OPEN_ACL_UNSAFE, ERR.OK  # the common case; nodes share one tuple
    unique: dict = {}
    for a in acl:
        key = (a.perms, a.id.scheme, a.id.id) if a is not None and a.id is not None else id(a)
        unique.setdefault(key, a)
    out: list[ACL] = []
    for a in unique.values():
        if a is None or a.id is None or a.id.scheme is None:
            return None, ERR.INVALIDACL
        if a.id.scheme == "auth":
            added = False
            for cid in java_set_order(auth_ids):
                if cid.scheme in ("ip", "super"):
                    continue
                out.append(ACL(a.perms, Id(cid.scheme, cid.id)))
                added = True
            if not added:
                return None, ERR.INVALIDACL
        elif _valid_id(a, schemes):
            out.append(ACL(a.perms, Id(a.id.scheme, a.id.id)))
        else:
            return None, ERR.INVALIDACL
    return tuple(out), ERR.OK


class AuthOutcome:
    __slots__ = ("ok", "ids")

    def __init__(self, ok: bool, ids: list[Id]):
        self.ok = ok
        self.ids = ids


def authenticate(scheme: str | None, auth: bytes | None, super_digest: str | None) -> AuthOutcome:
    """An auth packet: returns the ids it adds, or failure (unknown scheme)."""
    if scheme == "digest":
        if auth is None:
            # ZooKeeper's digest provider makes a String of the credential:
            # a null one throws, and the auth fails (zkCli's bare
            # ``addauth digest`` sends one).
            return AuthOutcome(False, [])
        text = auth.decode("utf-8", "replace")
        did = digest_id(text)
        ids = [Id("digest", did)]
        if super_digest is not None and did == super_digest:
            ids.append(SUPER_ID)
        return AuthOutcome(True, ids)
    if scheme == "ip":
        # ZooKeeper's ip provider "authenticates" by adding the peer address,
        # which every connection already holds: success, nothing new.
        return AuthOutcome(True, [])
    return AuthOutcome(False, [])
