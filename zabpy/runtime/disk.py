"""The replica's disk, off the event loop: ``DiskWrite``s in, ``durable(token)`` out.

``DiskWriter`` takes the replica's writes in token order. A run of plain
appends is appended to the log buffer on the loop, then one fsync in the
writer's thread covers the whole run (group commit); writes that arrive
meanwhile wait for the next fsync, so proposals keep flowing while an fsync
is in flight. A write that truncates, installs a snapshot or records an
epoch runs whole in the thread after everything before it is durable, and
reports the tree it left (``Loaded``).

A ``LogRead`` (a leader's DIFF from the on-disk log) joins the same queue:
it runs in the thread after every write before it, and its txns come back
through ``on_read(token, txns)``.

Nothing here awaits on behalf of the replica: completion comes back on the
loop through ``on_durable(token, loaded)``, an input event like any other.
A failed disk write goes to ``on_failed``, which the runtime treats as fatal
(ZooKeeper exits on an unrecoverable log error in quorum mode).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from typing import Callable

from ..server.replica import DiskWrite, Loaded, LogRead
from ..storage.files import TxnStore
from ..storage.quorum import (ACCEPTED_EPOCH, CURRENT_EPOCH, install_snapshot, truncate_after,
                              write_epoch)
from ..tree.datatree import DataTree
from ..zab import packets as P

__all__ = ["DiskWriter"]

log = logging.getLogger("zabpy.server")


class DiskWriter:
    """Owns the store's writes; ``submit`` from the loop, results come back on it."""

    def __init__(self, store: TxnStore, loop: asyncio.AbstractEventLoop,
                 on_durable: Callable[[int, Loaded | None], None],
                 on_fsync_ms: Callable[[float], None],
                 on_failed: Callable[[BaseException], None],
                 on_read: Callable[[int, tuple | None], None] | None = None,
                 snapshot_size_factor: float = -1.0) -> None:
        self.store = store
        self.loop = loop
        self.on_durable = on_durable
        self.on_fsync_ms = on_fsync_ms
        self.on_failed = on_failed
        self.on_read = on_read
        self.snapshot_size_factor = snapshot_size_factor
        self._queue: deque[DiskWrite | LogRead] = deque()
        self.busy = False     # a job is in the thread
        # One thread, fed by a C queue that blocks without the GIL: a write
        # reaches fsync, and its completion the loop, with one hand-off each way
        # (a thread pool adds a future chain and extra loop turns to both).
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="zabpy-disk", daemon=True)
        self._thread.start()

    def submit(self, write: DiskWrite | LogRead) -> None:
        self._queue.append(write)
        if not self.busy:
            self._next()

    def close(self) -> None:
        """Stop the thread once the job in hand is done (blocking; call off the loop)."""
        self._jobs.put(None)
        self._thread.join()

    def _next(self) -> None:
        """On the loop: hand the thread the next job, group-committing plain appends."""
        queue_ = self._queue
        if not queue_:
            self.busy = False
            return
        self.busy = True
        if _plain(queue_[0]):
            self._jobs.put((self._append_run(), None))
        else:
            write = queue_.popleft()
            self._jobs.put((write.token, write))

    def _work(self) -> None:
        """The thread: fsync what was appended, or carry out a whole write."""
        while (job := self._jobs.get()) is not None:
            token, whole = job
            try:
                if isinstance(whole, LogRead):
                    txns = self.store.read_for_sync(whole.after_zxid, whole.upto_zxid,
                                                    self.snapshot_size_factor)
                    self.loop.call_soon_threadsafe(self._read_done, token, txns)
                    continue
                if whole is not None:
                    result = (token, self._write_whole(whole), None)
                elif self.store.has_pending():
                    t0 = time.monotonic()
                    self.store.flush_and_sync()
                    result = (token, None, (time.monotonic() - t0) * 1000)
                else:
                    result = (token, None, None)
            except BaseException as e:  # noqa: BLE001 - handed to the loop, which stops
                self.loop.call_soon_threadsafe(self.on_failed, e)
                return
            self.loop.call_soon_threadsafe(self._done, result)

    def _read_done(self, token: int, txns: tuple | None) -> None:
        log.info("read %s txns from the log for a learner's sync",
                 "no" if txns is None else len(txns))
        if self.on_read is not None:
            self.on_read(token, txns)
        self._next()

    def _done(self, result: tuple) -> None:
        token, loaded, fsync_ms = result
        if fsync_ms is not None:
            self.on_fsync_ms(fsync_ms)
        self.on_durable(token, loaded)
        self._next()

    def _append_run(self) -> int:
        """Append every plain write at the head of the queue; the last token."""
        queue, store = self._queue, self.store
        token = 0
        while queue and _plain(queue[0]):
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


def _plain(job: DiskWrite | LogRead) -> bool:
    return isinstance(job, DiskWrite) and job.append_only


def _append_records(store: TxnStore, write: DiskWrite) -> None:
    if write.payloads:
        for (hdr, _txn), payload in zip(write.records, write.payloads):
            store.append_payload(hdr.zxid, payload)
    else:
        for hdr, txn in write.records:
            store.append(hdr, txn)
