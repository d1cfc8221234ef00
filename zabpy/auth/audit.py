"""ZooKeeper 3.8's audit log lines (audit.enable=true), as its AuditHelper
and AuditEvent make them: tab-separated ``key=value`` pairs in the order
session, user, ip, operation, znode, znode_type, acl (absent ones left out),
then ``result=success|failure|invoked``. A failure is logged at ERROR, the
rest at INFO, on the logger ``org.apache.zookeeper.audit.Slf4jAuditLogger``
(the runtime writes it off the event loop).

Audited: create (not createTTL, which 3.8's AuditHelper skips), delete,
setData, setAcl (with the new ACL), reconfig, each create/delete/setData of a
committed multi (one ``multiOperation`` failure line for a failed one), and
the deletion of a closed session's ephemeral nodes. Reads and
authentication are not audited (neither are they in ZooKeeper 3.8).

Pure: records in, (level, line) pairs out.
"""

from __future__ import annotations

from ..jute.constants import ERR, EVENT, OP, CreateMode
from ..tree.acl import java_set_order

__all__ = ["AUDIT_LOGGER", "users_of", "request_lines", "ephemeral_lines", "event_line"]

AUDIT_LOGGER = "org.apache.zookeeper.audit.Slf4jAuditLogger"
_OP_NAMES = {OP.create: "create", OP.create2: "create", OP.createContainer: "create",
             OP.delete: "delete", OP.deleteContainer: "delete", OP.setData: "setData",
             OP.setACL: "setAcl", OP.reconfig: "reconfig", OP.multi: "multiOperation"}
_CREATES = (OP.create, OP.create2, OP.createContainer)
_SUB_LOGGED = {OP.create: "create", OP.create2: "create", OP.createTTL: "create",
               OP.createContainer: "create", OP.delete: "delete", OP.deleteContainer: "delete",
               OP.setData: "setData"}


def event_line(result: str, session: str | None = None, user: str | None = None,
               ip: str | None = None, operation: str | None = None, znode: str | None = None,
               znode_type: str | None = None, acl: str | None = None) -> tuple[str, str]:
    fields = (("session", session), ("user", user), ("ip", ip), ("operation", operation),
              ("znode", znode), ("znode_type", znode_type), ("acl", acl))
    parts = [f"{k}={v}" for k, v in fields if v is not None]
    parts.append(f"result={result}")
    return ("error" if result == "failure" else "info"), "\t".join(parts)


def users_of(auth_ids) -> str | None:
    """AuthUtil.getUsers: each id's user by its provider (digest: the name
    before ':'; ip, sasl, x509: the id; super has no provider), joined by ',',
    in the order of the Java hash set that holds a connection's ids."""
    users = []
    for i in java_set_order(list(auth_ids)):
        if i.scheme == "digest":
            users.append(i.id.split(":")[0])
        elif i.scheme in ("ip", "sasl", "x509"):
            users.append(i.id)
    users = [u for u in users if u and u.strip()]
    return ",".join(users) if users else None


def _perm_string(perms: int) -> str:
    return "".join(c for bit, c in ((4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a")) if perms & bit)


def _acl_string(acl) -> str:
    return "".join(f"{a.id.scheme}:{a.id.id}:{_perm_string(a.perms)}" for a in acl or ())


def _create_mode(flags: int) -> str | None:
    try:
        return CreateMode(flags).name.lower()
    except ValueError:
        return None


def request_lines(op: int, req, failed: bool, err: int, res, txn, session_id: int, ip: str,
                  auth_ids) -> list[tuple[str, str]]:
    """The lines of one client write, once its txn is applied. ``failed``:
    the txn is an error txn (prep refused it); ``res``: the tree's result."""
    name = _OP_NAMES.get(op)
    if name is None:
        return []
    common = {"session": f"0x{session_id & 0xFFFFFFFFFFFFFFFF:x}", "user": users_of(auth_ids), "ip": ip}
    if op == OP.multi and not failed:
        return _multi_lines(req, err, res, txn, common)
    if failed:
        path = getattr(req, "path", None)
    else:  # a create's actual path (sequential), else the path the txn names
        path = getattr(res, "path", None) or getattr(txn, "path", None)
    znode_type = acl = None
    if op in _CREATES:
        znode_type = _create_mode(getattr(req, "flags", 0))
        if znode_type is None:
            return []  # ZooKeeper's CreateMode.fromFlag throws: nothing logged
    if op == OP.setACL:
        acl = _acl_string(getattr(req, "acl", None))
        if failed:
            path = getattr(req, "path", None)
    if op == OP.multi:
        path = None
    ok = not failed and err == ERR.OK
    return [event_line("success" if ok else "failure", operation=name, znode=path,
                       znode_type=znode_type, acl=acl, **common)]


def _multi_lines(req, err, res, txn, common) -> list[tuple[str, str]]:
    modes = {}
    for sub_op, rec in req or ():
        if sub_op in _CREATES and rec is not None:
            modes[rec.path] = _create_mode(rec.flags)
    subs = list(getattr(txn, "txns", None) or ())
    if any(s.type == OP.error for s in subs):
        # ZooKeeper turns every op of a failed multi into an error result
        return [event_line("failure", operation="multiOperation", **common)]
    out = []
    ops = list(req or ())
    for i, sub in enumerate(res.multi or ()):
        name = _SUB_LOGGED.get(subs[i].type if i < len(subs) else None)
        if name is None:
            continue
        path = sub.path or (getattr(ops[i][1], "path", None) if i < len(ops) else None)
        out.append(event_line("success", operation=name, znode=path,
                              znode_type=modes.get(path) if name == "create" else None, **common))
    return out


def ephemeral_lines(server_user: str, session_id: int, triggers) -> list[tuple[str, str]]:
    """A closed or expired session's ephemeral nodes, one line each."""
    sid = f"0x{session_id & 0xFFFFFFFFFFFFFFFF:x}"
    return [event_line("success", user=server_user,
                       operation="ephemeralZNodeDeletionOnSessionCloseOrExpire", znode=path,
                       session=sid)
            for ev, path, _ in triggers if ev == EVENT.NodeDeleted]
