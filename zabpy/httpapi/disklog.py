"""Changes read back from the txn logs on disk (for resumes older than the change log).

Theory of operation
-------------------
The in-memory change log (``server/changes.py``) keeps the last N changes.
Older ones may still be in the data directory's txn log files
(``log.<zxid>``) until purged. ``read_changes(log_dir, after, upto)``
reads them back as ``Change`` records: the znode events are derived from
each txn the way the data tree's apply fires watches (create: created +
the parent's children; delete: deleted + children; setData: changed; a
multi: its sub-txns; closeSession: its ``paths2Delete``, the ephemerals it
removed), each tagged with the ACL ``acl_of(path)`` gives now (the txn log
does not hold ACLs; a reader is checked against today's ACL of the node, or
of its nearest existing ancestor). Who sent a txn is not in the log.

``oldest_on_disk(log_dir)`` is the lowest zxid a reader may try to resume
from there: the first log file's first zxid less one. ``read_changes``
answers only a range the logs hold whole: each txn must follow the one
before it (the next counter, or counter 1 of the next epoch) up to the
upper end, else None (the caller answers 410): a member given a SNAP has
logs with a gap before its snapshot, and that gap must not pass unseen.

Runs in a worker thread: it only reads files.
"""

from __future__ import annotations

import os

from ..jute import records as R
from ..jute.codec import DecodeError, decode
from ..jute.constants import EVENT, OP
from ..server.changes import Change
from ..storage.datadir import LOG_PREFIX, list_zxid_files, logs_from, version_dir
from ..storage.txnlog import decode_payload, scan_log
from ..tree.paths import parent_of

__all__ = ["read_changes", "oldest_on_disk", "events_of_txn"]


def _log_dir(data_log_dir: str) -> str:
    return version_dir(data_log_dir)


def oldest_on_disk(data_log_dir: str | None) -> int | None:
    if not data_log_dir:
        return None
    files = list_zxid_files(_log_dir(data_log_dir), LOG_PREFIX)
    return files[0][0] - 1 if files else None


_CREATES = (OP.create, OP.create2, OP.createContainer, OP.createTTL)
_DELETES = (OP.delete, OP.deleteContainer)


def events_of_txn(ttype: int, txn, acl_of) -> list:
    """(event type, path, ACL) triggers a txn fires, from the txn alone."""
    out = []
    if ttype in _CREATES:
        out.append((EVENT.NodeCreated, txn.path, acl_of(txn.path)))
        parent = parent_of(txn.path)
        out.append((EVENT.NodeChildrenChanged, parent, acl_of(parent)))
    elif ttype in _DELETES:
        out.append((EVENT.NodeDeleted, txn.path, acl_of(txn.path)))
        parent = parent_of(txn.path)
        out.append((EVENT.NodeChildrenChanged, parent, acl_of(parent)))
    elif ttype == OP.setData:
        out.append((EVENT.NodeDataChanged, txn.path, acl_of(txn.path)))
    elif ttype == OP.closeSession and txn is not None:
        for path in txn.paths2Delete or ():
            out.append((EVENT.NodeDeleted, path, acl_of(path)))
            parent = parent_of(path)
            out.append((EVENT.NodeChildrenChanged, parent, acl_of(parent)))
    elif ttype == OP.multi and txn is not None:
        if any(sub.type == OP.error for sub in txn.txns):
            return []
        for sub in txn.txns:
            cls = R.TXN_RECORD.get(sub.type)
            if cls is None:
                continue
            try:
                rec = decode(cls, sub.data or b"")
            except DecodeError:
                continue
            out.extend(events_of_txn(sub.type, rec, acl_of))
    return out


def _follows(last: int, zxid: int) -> bool:
    """``zxid`` is the txn right after ``last`` with nothing between: the next
    counter of the epoch, or the first of the next epoch. A jump (a member
    that was given a SNAP, logs purged in between, an epoch whose txns this
    log lacks, or one in which nothing was written) cannot be told from a gap,
    so it is taken as one: the reader gets 410 rather than a silent miss."""
    if zxid >> 32 == last >> 32:
        return zxid == last + 1
    return zxid >> 32 == (last >> 32) + 1 and zxid & 0xFFFFFFFF == 1


def read_changes(data_log_dir: str, after_zxid: int, upto_zxid: int,
                 acl_of) -> list[Change] | None:
    """The changes with after_zxid < zxid <= upto_zxid from the txn logs, in
    order; None unless the logs hold every txn of that range (no gap)."""
    out: list[Change] = []
    last = after_zxid
    for _first, path in logs_from(_log_dir(data_log_dir), after_zxid + 1):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None   # purged meanwhile
        for _off, zxid, payload in scan_log(data).entries:
            if zxid <= last or zxid > upto_zxid:
                continue
            if not _follows(last, zxid):
                return None
            try:
                hdr, txn, _digest = decode_payload(payload)
            except DecodeError:
                return None
            last = zxid
            events = events_of_txn(hdr.type, txn, acl_of)
            quiet = (txn.path,) if hdr.type == OP.setACL and txn is not None else ()
            if events or quiet:
                out.append(Change(zxid, hdr.time, hdr.clientId, hdr.type, tuple(events), quiet))
        if last >= upto_zxid:
            break
    return out if last == upto_zxid else None


def acl_lookup(tree):
    """An ``acl_of(path)`` over a live tree: the node's ACL, else its nearest ancestor's."""
    def acl_of(path: str):
        p = path
        while True:
            node = tree.get(p)
            if node is not None:
                return node.acl
            if p == "/" or not p:
                return ()
            p = parent_of(p)
    return acl_of


def exists_dir(d: str | None) -> bool:
    return bool(d) and os.path.isdir(_log_dir(d))
