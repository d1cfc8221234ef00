"""setData's prep of a node no prepared txn has changed reads the tree's node
directly (``prep._set_data_applied``, the common case) instead of the record
``PendingChanges.get`` makes of it. It must decide exactly as the general
path does (ZooKeeper's PrepRequestProcessor, setData: NONODE, then NOAUTH,
then the quota, then BADVERSION): each case is prepared both ways, the
general path taken by turning quota enforcement on with no quota set, and
the txn and the pending record it leaves compared."""

from __future__ import annotations

import dataclasses

import pytest

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.pipeline import prep
from zabpy.pipeline.prep import PendingChanges, PrepContext, prepare
from zabpy.tree.datatree import DataTree

A, B = 0x100, 0x200
OPEN = [R.ACL(31, R.Id("world", "anyone"))]
READ_ONLY = [R.ACL(1, R.Id("world", "anyone"))]   # READ only: a write is NOAUTH


def _tree() -> DataTree:
    tree = DataTree()
    zxid = 0

    def create(path, data, acl, owner=0, ephemeral=False):
        nonlocal zxid
        zxid += 1
        tree.apply(R.TxnHeader(owner or A, zxid, zxid, 0, OpCode.create),
                   R.CreateTxn(path, data, acl, ephemeral, zxid))
    create("/open", b"x" * 10, OPEN)
    create("/open/kid", b"", OPEN)
    create("/locked", b"y", READ_ONLY)
    create("/eph", b"e", OPEN, owner=B, ephemeral=True)
    tree.apply(R.TxnHeader(A, 9, 9, 0, OpCode.setData), R.SetDataTxn("/open", b"z", 1))
    return tree


CASES = [
    ("/open", -1, False, False),     # applied node, any version
    ("/open", 1, False, False),      # the right version
    ("/open", 0, False, False),      # BADVERSION
    ("/nope", -1, False, False),     # NONODE
    ("/locked", -1, False, False),   # NOAUTH
    ("/locked", -1, True, False),    # skipACL lets it through
    ("/locked", 7, False, False),    # NOAUTH before BADVERSION
    ("/eph", -1, False, False),      # an ephemeral of a live session
    ("/eph", -1, False, True),       # its session's close is prepared: NONODE
    ("/", -1, False, False),         # the root
]


@pytest.mark.parametrize("path,version,skip_acl,closing", CASES)
def test_fast_set_data_decides_as_the_general_path(path, version, skip_acl, closing):
    outcomes = []
    for enforce_quota in (False, True):
        tree = _tree()
        pending = PendingChanges(tree)
        if closing:
            prep.prepare_close_session(B, 20, pending)
        ctx = PrepContext(A, [], skip_acl=skip_acl, enforce_quota=enforce_quota)
        out = prepare(OpCode.setData, R.SetDataRequest(path, b"new", version), 21, pending, ctx)
        rec = pending.by_path.get(path)
        outcomes.append((out, dataclasses.astuple(rec) if rec is not None else None,
                         len(pending.order)))
    assert outcomes[0] == outcomes[1]
