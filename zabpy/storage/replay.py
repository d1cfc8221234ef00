"""Log replay's fast path: a logged txn's bytes straight into the data tree.

A restart that replays a million creates spends most of its time per txn,
and about half of that went into decoding the payload into records (a
TxnHeader, a CreateTxn, its ACL list) that the tree took apart again at once.
``FastApplier.apply(payload)`` reads the common txns — create, create2,
createContainer, createTTL, delete, deleteContainer, setData, reconfig, check,
createSession, error, and a multi made of those — with
``struct`` at their offsets and calls the tree's mutators (``insert_node``,
``write_data``, ``remove_node``, the same code ``DataTree.apply`` runs) with
plain values: no record objects, no ApplyResult, no watch triggers (nobody
watches during a restart).

The general path stays the reference: ``decode_payload`` + ``replay_txn``.
Whatever the fast path does not take — another txn type (closeSession,
setACL), a malformed or unusual encoding (a null path or
ACL list, trailing bytes, a short payload, a multi holding anything else or
a sub-txn whose bytes do not decode exactly) — it returns ``UNHANDLED``
having changed nothing, and the caller runs the general path, which applies
it or raises as before. Every multi is parsed whole before any of it is
applied, so falling back never leaves half of one behind.

State: the tree and the session table it writes, and a cache of encoded
ACL lists to the tree's shared ACL tuple (only for tuples the tree shares,
so the result is always what ``DataTree.shared_acl`` returns).

Pure: bytes in, tree calls out; no IO.
"""

from __future__ import annotations

import struct

from ..jute import records as R
from ..jute.codec import Reader, _read_elem
from ..jute.constants import CONTAINER_EPHEMERAL_OWNER, OP
from ..tree.acl import OPEN_ACL_UNSAFE
from ..tree.datatree import DataTree, ttl_owner

__all__ = ["FastApplier", "UNHANDLED"]

UNHANDLED = False  # apply() did nothing: run the general path

_HDR = struct.Struct(">qiqqi")  # TxnHeader: clientId, cxid, zxid, time, type
_HDR_SIZE = _HDR.size  # 32
_INT = struct.Struct(">i")
_INT2 = struct.Struct(">ii")
_INT_LONG = struct.Struct(">iq")  # TxnDigest (version, treeDigest); createTTL's tail
_DIGEST_SIZE = _INT_LONG.size  # 12

# ops of the fast path's parsed form: (kind, ...)
_CREATE, _DELETE, _SET, _NOTHING = 0, 1, 2, 3

_CREATES = (OP.create, OP.create2, OP.createContainer, OP.createTTL)
_DELETES = (OP.delete, OP.deleteContainer)
_SETS = (OP.setData, OP.reconfig)


# vector<ACL> holding world:anyone with all perms, as every client library sends it
_OPEN_ACL_BYTES = _INT.pack(1) + R.ACL(31, R.Id("world", "anyone")).to_bytes()
_OPEN_ACL_LEN = len(_OPEN_ACL_BYTES)


class _Fallback(Exception):
    """This txn is for the general path."""


_FALLBACK = _Fallback()


def _acl_bytes_end(p: bytes, o: int, end: int) -> int:
    """End of the vector<ACL> at ``o`` (count, then perms, scheme, id each)."""
    if o + 4 > end:
        raise _FALLBACK
    (count,) = _INT.unpack_from(p, o)
    o += 4
    if count < 0 or count > end - o:
        raise _FALLBACK  # a null list (-1) or a bad count: the general path's
    for _ in range(count):
        if o + 8 > end:
            raise _FALLBACK
        (n,) = _INT.unpack_from(p, o + 4)  # perms, then the scheme's length
        o += 8
        if n < 0 or o + n + 4 > end:
            raise _FALLBACK
        o += n
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n < 0 or o + n > end:
            raise _FALLBACK
        o += n
    return o


def _parse_other(t: int, p: bytes, o: int, end: int) -> tuple[tuple, int]:
    """(op, where it ends) of a DeleteTxn, CheckVersionTxn or SetDataTxn at ``o``."""
    if t in _DELETES or t == OP.check:
        if o + 4 > end:
            raise _FALLBACK
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n < 0 or o + n > end:
            raise _FALLBACK
        if t == OP.check:
            if o + n + 4 > end:
                raise _FALLBACK
            return (_NOTHING,), o + n + 4
        return (_DELETE, p[o:o + n].decode("utf-8", "replace")), o + n
    if t in _SETS:
        if o + 4 > end:
            raise _FALLBACK
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n < 0 or o + n + 4 > end:
            raise _FALLBACK
        path = p[o:o + n].decode("utf-8", "replace")
        o += n
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n == -1:
            data = None
        elif n < -1 or o + n > end:
            raise _FALLBACK
        else:
            data = p[o:o + n]
            o += n
        if o + 4 > end:
            raise _FALLBACK
        return (_SET, path, data, _INT.unpack_from(p, o)[0]), o + 4
    raise _FALLBACK


class FastApplier:
    """Applies logged txns to ``tree`` and ``sessions`` (id -> timeout_ms)
    as ``replay_txn(decode_payload(...))`` does; see the module docstring."""

    def __init__(self, tree: DataTree, sessions: dict[int, int]) -> None:
        self.tree = tree
        self.sessions = sessions
        self._acls: dict[bytes, tuple] = {_OPEN_ACL_BYTES: OPEN_ACL_UNSAFE}
        self._triggers: list = []  # remove_node's triggers, dropped

    # ---- parsing: bytes -> an op tuple, or _Fallback ------------------------------

    def _acl(self, p: bytes, o: int, end: int) -> tuple[tuple, int]:
        acl_end = _acl_bytes_end(p, o, end)
        raw = p[o:acl_end]
        shared = self._acls.get(raw)
        if shared is None:
            r = Reader(p, o, acl_end)
            acl = [_read_elem(R.ACL, r) for _ in range(r.int())]
            tree = self.tree
            shared = tree.shared_acl(acl)
            if tree._acls.get(shared) is shared:  # the tree shares it: the same every time
                self._acls[raw] = shared
        return shared, acl_end

    def _parse(self, t: int, p: bytes, o: int, end: int, client_id: int) -> tuple[tuple, int]:
        """(op, where it ends) of a txn record of type ``t`` at ``o``, read
        within p[:end] as the codec reads it (its own lengths decide its end)."""
        if t in _CREATES:
            return self._parse_create(t, p, o, end, client_id)
        return _parse_other(t, p, o, end)

    def _parse_create(self, t: int, p: bytes, o: int, end: int,
                      client_id: int) -> tuple[tuple, int]:
        """CreateTxn, CreateContainerTxn or CreateTTLTxn: path, data, ACL list,
        then ephemeral + parentCVersion, parentCVersion, or parentCVersion + ttl."""
        if o + 4 > end:
            raise _FALLBACK
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n < 0 or o + n + 4 > end:
            raise _FALLBACK
        path = p[o:o + n].decode("utf-8", "replace")
        o += n
        (n,) = _INT.unpack_from(p, o)
        o += 4
        if n == -1:
            data = None
        elif n < -1 or o + n > end:
            raise _FALLBACK
        else:
            data = p[o:o + n]
            o += n
        if p.startswith(_OPEN_ACL_BYTES, o) and o + _OPEN_ACL_LEN <= end:
            acl = OPEN_ACL_UNSAFE  # most znodes: world:anyone, all perms
            o += _OPEN_ACL_LEN
        else:
            acl, o = self._acl(p, o, end)
        if t == OP.createTTL:
            if o + 12 > end:
                raise _FALLBACK
            pcv, ttl = _INT_LONG.unpack_from(p, o)
            return (_CREATE, path, data, acl, ttl_owner(ttl), pcv), o + 12
        if t == OP.createContainer:
            if o + 4 > end:
                raise _FALLBACK
            (pcv,) = _INT.unpack_from(p, o)
            return (_CREATE, path, data, acl, CONTAINER_EPHEMERAL_OWNER, pcv), o + 4
        if o + 5 > end:
            raise _FALLBACK
        (pcv,) = _INT.unpack_from(p, o + 1)
        return (_CREATE, path, data, acl, client_id if p[o] else 0, pcv), o + 5

    def _multi(self, p: bytes, o: int, end: int, client_id: int) -> tuple[list[tuple], int]:
        """(the ops of the MultiTxn at ``o``, where it ends): no ops for a
        failed one (it changes nothing); _Fallback for anything the fast
        path does not take."""
        if o + 4 > end:
            raise _FALLBACK
        (count,) = _INT.unpack_from(p, o)
        o += 4
        if count < 0 or count > end - o:
            raise _FALLBACK
        subs = []
        for _ in range(count):
            if o + 8 > end:
                raise _FALLBACK
            t, n = _INT2.unpack_from(p, o)
            o += 8
            if n < 0 or o + n > end:
                raise _FALLBACK  # a null sub-txn body fails to decode: general path
            subs.append((t, o, o + n))
            o += n
        if any(t == OP.error for t, _, _ in subs):
            # A failed multi: only its error sub-txns are decoded (exactly), none applied.
            for t, a, b in subs:
                if t == OP.error and b - a != 4:
                    raise _FALLBACK
            return [], o
        ops = []
        for t, a, b in subs:
            op, sub_end = self._parse(t, p, a, b, client_id)
            if sub_end != b:
                raise _FALLBACK  # trailing bytes in a sub-txn: decode(exact) refuses them
            ops.append(op)
        return ops, o

    # ---- applying -------------------------------------------------------------------

    def _do(self, op: tuple, zxid: int, time: int) -> None:
        kind = op[0]
        tree = self.tree
        if kind == _CREATE:
            _, path, data, acl, owner, pcv = op
            i = path.rfind("/")  # parent_of, inlined: once per replayed create
            tree.insert_node(path, "/" if i <= 0 else path[:i], data, acl, owner, pcv, zxid, time)
        elif kind == _DELETE:
            triggers = self._triggers
            tree.remove_node(op[1], zxid, triggers)
            triggers.clear()
        elif kind == _SET:
            tree.write_data(op[1], op[2], op[3], zxid, time)

    def apply(self, p: bytes) -> "tuple[int, int] | None | bool":
        """Apply one payload (TxnHeader ‖ txn ‖ optional TxnDigest): returns
        the digest as (version, treeDigest) or None, or UNHANDLED having
        changed nothing."""
        size = len(p)
        if size < _HDR_SIZE:
            return UNHANDLED
        client_id, _cxid, zxid, time, t = _HDR.unpack_from(p, 0)
        try:
            if t == OP.multi:
                ops, end = self._multi(p, _HDR_SIZE, size, client_id)
            elif t == OP.createSession or t == OP.error:
                ops, end = (), _HDR_SIZE + 4
            else:
                op, end = self._parse_create(t, p, _HDR_SIZE, size, client_id) \
                    if t in _CREATES else _parse_other(t, p, _HDR_SIZE, size)
                ops = (op,)
        except _Fallback:
            return UNHANDLED
        if end == size:
            digest = None
        elif end + _DIGEST_SIZE == size:
            digest = _INT_LONG.unpack_from(p, end)
        else:
            return UNHANDLED  # trailing bytes, or a record longer than the payload
        tree = self.tree
        if t == OP.createSession:
            self.sessions[client_id] = _INT.unpack_from(p, _HDR_SIZE)[0]
        elif len(ops) == 1 and ops[0][0] == _CREATE:  # _do, inlined for the commonest txn
            _, path, data, acl, owner, pcv = ops[0]
            i = path.rfind("/")
            tree.insert_node(path, "/" if i <= 0 else path[:i], data, acl, owner, pcv, zxid, time)
        else:
            for op in ops:
                self._do(op, zxid, time)
        if zxid > tree.last_processed_zxid:
            tree.last_processed_zxid = zxid
        return digest
