"""The ensemble's disk writer (zabpy/runtime/disk.py) on a real TxnStore.

fsync completion is an input event: the loop never waits for the disk, and
writes submitted while an fsync is in flight share the next one (group
commit). The store's ``_fsync`` hook is replaced by one that blocks until the
test releases it, so the grouping is deterministic.
"""

from __future__ import annotations

import asyncio
import os
import threading

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.runtime.disk import DiskWriter
from zabpy.server.replica import DiskWrite
from zabpy.storage.files import TxnStore
from zabpy.storage.quorum import read_epochs
from zabpy.tree.acl import OPEN_ACL_UNSAFE


def _txn(counter: int):
    return (R.TxnHeader(7, counter, (1 << 32) | counter, 0, OpCode.create),
            R.CreateTxn(f"/n{counter}", b"", list(OPEN_ACL_UNSAFE), False, -1))


class _Gate:
    """An fsync that waits for ``release`` and counts its calls."""

    def __init__(self, fail: bool = False):
        self.calls = 0
        self.entered = threading.Event()
        self.go = threading.Event()
        self.fail = fail

    def __call__(self, fd):
        self.calls += 1
        self.entered.set()
        self.go.wait(10)
        if self.fail:
            raise OSError(5, "injected EIO")
        os.fdatasync(fd)


async def _run(tmp_path, gate: _Gate, writes_then: list, expect_events: int):
    loop = asyncio.get_running_loop()
    store = TxnStore(str(tmp_path))
    store._fsync = gate
    events: list = []
    done = asyncio.Event()

    def record(kind):
        def cb(*args):
            events.append((kind, *args))
            if len(events) >= expect_events:
                done.set()
        return cb

    writer = DiskWriter(store, loop, record("durable"), lambda ms: None, record("failed"))
    try:
        first, *rest = writes_then
        writer.submit(first)
        await asyncio.to_thread(gate.entered.wait, 10)   # the first fsync is in flight
        for w in rest:
            writer.submit(w)                               # these wait for the next one
        gate.go.set()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await asyncio.to_thread(writer.close)
        store.close()
    return events, store


def test_writes_during_an_fsync_share_the_next_one(tmp_path):
    gate = _Gate()
    writes = [DiskWrite(1, (_txn(1),)), DiskWrite(2, (_txn(2),)), DiskWrite(3, (_txn(3),))]
    events, _ = asyncio.run(_run(tmp_path, gate, writes, expect_events=2))
    assert events == [("durable", 1, None), ("durable", 3, None)]
    assert gate.calls == 2


def test_an_epoch_write_follows_the_appends_before_it(tmp_path):
    gate = _Gate()
    writes = [DiskWrite(1, (_txn(1),)), DiskWrite(2, accepted_epoch=5)]
    events, store = asyncio.run(_run(tmp_path, gate, writes, expect_events=2))
    assert events == [("durable", 1, None), ("durable", 2, None)]
    assert read_epochs(store, 1 << 32)[0] == 5


def test_a_failed_fsync_is_reported_and_nothing_is_durable(tmp_path):
    gate = _Gate(fail=True)
    events, _ = asyncio.run(_run(tmp_path, gate, [DiskWrite(1, (_txn(1),))], expect_events=1))
    assert [e[0] for e in events] == ["failed"] and isinstance(events[0][1], OSError)
