"""The replica's disk, off the event loop: ``DiskWrite``s in, ``durable(token)`` out.

One task owns the ``TxnStore`` for writing. It takes the replica's writes in
token order. A run of plain appends is appended to the log buffer, then one
fsync in a worker thread covers the whole run (group commit); writes that
arrive meanwhile wait for the next fsync, so proposals keep flowing while an
fsync is in flight. A write that truncates, installs a snapshot or records
an epoch runs whole in a worker thread after everything before it is
durable, and reports the tree it left (``Loaded``).

Nothing here awaits on behalf of the replica: completion comes back through
``on_durable(token, loaded)``, an input event like any other. A failed disk
write raises out of the task, which the runtime treats as fatal (ZooKeeper
exits on an unrecoverable log error in quorum mode).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from ..server.replica import DiskWrite, Loaded
from ..storage.files import TxnStore
from ..storage.quorum import (ACCEPTED_EPOCH, CURRENT_EPOCH, install_snapshot, truncate_after,
                              write_epoch)
from ..tree.datatree import DataTree
from ..zab import packets as P

__all__ = ["DiskWriter"]

log = logging.getLogger("zabpy.server")


class DiskWriter:
    def __init__(self, store: TxnStore, on_durable: Callable[[int, Loaded | None], None],
                 on_fsync_ms: Callable[[float], None]) -> None:
        self.store = store
        self.on_durable = on_durable
        self.on_fsync_ms = on_fsync_ms
        self._queue: deque[DiskWrite] = deque()
        self._wake = asyncio.Event()
        self.busy = False

    def submit(self, write: DiskWrite) -> None:
        self._queue.append(write)
        self._wake.set()

    async def run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self.busy = False
                self._wake.clear()
                await self._wake.wait()
                continue
            self.busy = True
            if queue[0].append_only:
                token = self._append_run()
                if self.store.has_pending():
                    t0 = time.monotonic()
                    await asyncio.to_thread(self.store.flush_and_sync)
                    self.on_fsync_ms((time.monotonic() - t0) * 1000)
                self.on_durable(token, None)
            else:
                write = queue.popleft()
                loaded = await asyncio.to_thread(self._write_whole, write)
                self.on_durable(write.token, loaded)

    def _append_run(self) -> int:
        """Append every plain write at the head of the queue; the last token."""
        queue, store = self._queue, self.store
        token = 0
        while queue and queue[0].append_only:
            write = queue.popleft()
            _append_records(store, write)
            token = write.token
        return token

    def _write_whole(self, write: DiskWrite) -> Loaded | None:
        """In a worker thread: truncate / install / append / fsync / epochs, in that order."""
        store = self.store
        loaded = None
        if write.truncate_zxid is not None:
            truncate_after(store, write.truncate_zxid)
            tree = DataTree()
            loaded = Loaded(tree, store.restore(tree))
        if write.snapshot is not None:
            tree = DataTree()
            sessions = P.load_snapshot_bytes(write.snapshot.data, tree, write.snapshot.zxid)
            install_snapshot(store, tree, sessions)
            loaded = Loaded(tree, sessions)
        _append_records(store, write)
        store.flush_and_sync()
        if write.accepted_epoch is not None:
            write_epoch(store, ACCEPTED_EPOCH, write.accepted_epoch)
        if write.current_epoch is not None:
            write_epoch(store, CURRENT_EPOCH, write.current_epoch)
        return loaded


def _append_records(store: TxnStore, write: DiskWrite) -> None:
    if write.payloads:
        for (hdr, _txn), payload in zip(write.records, write.payloads):
            store.append_payload(hdr.zxid, payload)
    else:
        for hdr, txn in write.records:
            store.append(hdr, txn)
