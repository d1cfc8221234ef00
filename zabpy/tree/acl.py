"""ACL checks and auth schemes (world, auth, digest, ip, super).

A session carries a list of ``Id``s: one ``ip`` id from its peer address,
plus whatever ``auth`` packets added (``digest`` ids, and ``super`` when the
digest matches the configured super digest). A node's ACL grants a
permission when an entry with that bit is ``world:anyone`` or matches one of
the session's ids by its scheme's rule.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress

from ..jute.constants import Err, Perms
from ..jute.records import ACL, Id

__all__ = [
    "digest_id", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "check_perm", "fix_acl",
    "AuthOutcome", "authenticate", "acl_matches", "SUPER_ID",
]

WORLD_ANYONE = Id("world", "anyone")
OPEN_ACL_UNSAFE = (ACL(int(Perms.ALL), WORLD_ANYONE),)
READ_ACL_UNSAFE = (ACL(int(Perms.READ), WORLD_ANYONE),)
SUPER_ID = Id("super", "")


def digest_id(user_password: str) -> str:
    """`user:BASE64(SHA1("user:password"))`, ZooKeeper's digest id."""
    user = user_password.split(":", 1)[0]
    h = hashlib.sha1(user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(h).decode('ascii')}"


def _ip_matches(spec: str, addr: str) -> bool:
    try:
        if "/" in spec:
            net = ipaddress.ip_network(spec, strict=False)
            return ipaddress.ip_address(addr) in net
        return ipaddress.ip_address(spec) == ipaddress.ip_address(addr)
    except ValueError:
        return False


def acl_matches(entry_id: Id, session_id: Id) -> bool:
    if entry_id.scheme != session_id.scheme:
        return False
    if entry_id.scheme == "ip":
        return _ip_matches(entry_id.id, session_id.id)
    return entry_id.id == session_id.id


def check_perm(acl: tuple[ACL, ...] | list[ACL] | None, perm: int, ids: list[Id],
               skip_acl: bool = False) -> bool:
    if skip_acl or not acl:
        return True
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


def _valid_id(a: ACL) -> bool:
    s, i = a.id.scheme, a.id.id
    if s == "world":
        return i == "anyone"
    if s == "digest":
        return i is not None and i.count(":") == 1
    if s == "ip":
        try:
            if "/" in i:
                ipaddress.ip_network(i, strict=False)
            else:
                ipaddress.ip_address(i)
            return True
        except (ValueError, TypeError):
            return False
    if s in ("super", "sasl", "x509"):
        return i is not None
    return False


def fix_acl(acl: list[ACL] | None, auth_ids: list[Id]) -> tuple[tuple[ACL, ...] | None, int]:
    """Validate a client's ACL list and expand `auth` entries into the caller's
    authenticated ids; duplicates removed (ZooKeeper 3.5+). Returns (acl, err)."""
    if not acl:
        return None, Err.INVALIDACL
    out: list[ACL] = []
    for a in acl:
        if a is None or a.id is None or a.id.scheme is None:
            return None, Err.INVALIDACL
        if a.id.scheme == "auth":
            added = False
            for cid in auth_ids:
                if cid.scheme in ("ip", "super"):
                    continue
                out.append(ACL(a.perms, Id(cid.scheme, cid.id)))
                added = True
            if not added:
                return None, Err.INVALIDACL
        elif _valid_id(a):
            out.append(ACL(a.perms, Id(a.id.scheme, a.id.id)))
        else:
            return None, Err.INVALIDACL
    seen: dict[ACL, None] = {}
    for a in out:
        seen.setdefault(a, None)
    return tuple(seen), Err.OK


class AuthOutcome:
    __slots__ = ("ok", "ids")

    def __init__(self, ok: bool, ids: list[Id]):
        self.ok = ok
        self.ids = ids


def authenticate(scheme: str | None, auth: bytes | None, super_digest: str | None) -> AuthOutcome:
    """An auth packet: returns the ids it adds, or failure (unknown scheme)."""
    if scheme == "digest":
        text = (auth or b"").decode("utf-8", "replace")
        did = digest_id(text)
        ids = [Id("digest", did)]
        if super_digest is not None and did == super_digest:
            ids.append(SUPER_ID)
        return AuthOutcome(True, ids)
    return AuthOutcome(False, [])
