"""Group commit for the standalone server: the txn log's writes and fsyncs,
in one thread of their own, one flush at a time.

State: the ``TxnStore`` (its pending list is filled on the loop by
``append``), a thread, ``in_flight`` (a flush was handed to the thread and
its result has not come back) and ``durable_zxid`` (every txn up to it is on
disk). Both are the loop's: the thread never writes them.

The loop appends txns to the store and, when no flush is in flight, calls
``start()``; the thread writes and fsyncs everything appended until then
and hands back, with ``call_soon_threadsafe``, the zxid of the last txn it
made durable; the loop hears it (``on_durable``), applies and answers up to
it, and starts the next flush of whatever was appended meanwhile. One
flush at a time keeps the group commit wide: every txn prepared while an
fsync runs (and while its batch is applied) joins the next one, so the
loop's cost per commit (applying, one write per connection, the hand-offs)
is shared by many txns. A thread that flushed again at once, back to back,
was measured (bench/README.md): its batches were a quarter as large, the
thread asked for the GIL three times per flush while the loop was busy,
and the loop's CPU per operation grew by a fifth.

The thread is a plain one fed by a ``SimpleQueue``: a flush reaches fsync
and its result the loop with one hand-off each way, where
``asyncio.to_thread`` adds an executor's work item, two futures and a
task's wake-up, all holding the GIL.

Invariants: ``durable_zxid`` is the zxid ``TxnStore.flush_and_sync``
returned, the last txn its batch held, set only after the fsync returned;
txns appended later have higher zxids; so a reply the loop sends once
``logged`` covers its zxid follows the fsync of its txn. It only grows.

A flush that raises ``OSError`` (disk full, EIO) ends the thread; the loop
hears ``on_failed(error)`` and stops acknowledging writes (the store's
failure is sticky). Any other exception is handed to the loop's exception
handler, which fail-stops the server. ``close()`` flushes what is still
appended and ends the thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Callable

from ..storage.files import TxnStore

__all__ = ["LogSyncer"]

log = logging.getLogger("zabpy.server")


class LogSyncer:
    """Flushes ``store`` in its own thread; results come back on ``loop``."""

    def __init__(self, store: TxnStore, loop: asyncio.AbstractEventLoop,
                 on_durable: Callable[[], None], on_failed: Callable[[OSError], None]) -> None:
        self.store = store
        self.loop = loop
        self.on_durable = on_durable
        self.on_failed = on_failed
        self.in_flight = False
        self.durable_zxid = 0
        self.flush_ms: list[float] = []  # each flush's time, for the loop to take
        self._closed = False
        self._wake: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="zabpy-log-sync", daemon=True)
        self._thread.start()

    # ---- the loop's side -------------------------------------------------------

    def start(self) -> None:
        """Flush everything appended until now (no flush may be in flight)."""
        assert not self.in_flight, "one flush at a time"
        self.in_flight = True
        self._wake.put(True)

    def close(self) -> None:
        """Flush what is still appended, then end the thread (blocking: call it
        off the loop)."""
        if not self._closed:
            self._closed = True
            self._wake.put(False)
        self._thread.join()

    def _done(self, zxid: int | None, ms: float) -> None:
        self.in_flight = False
        self.flush_ms.append(ms)
        if zxid is not None:
            assert zxid > self.durable_zxid, (zxid, self.durable_zxid)
            self.durable_zxid = zxid
        self.on_durable()

    # ---- the thread ----------------------------------------------------------

    def _run(self) -> None:
        store, wake, call = self.store, self._wake, self.loop.call_soon_threadsafe
        while True:
            flush = wake.get()
            try:
                t0 = time.monotonic()
                zxid = store.flush_and_sync()
                ms = (time.monotonic() - t0) * 1000
            except OSError as e:
                if flush:
                    call(self.on_failed, e)
                else:
                    log.error("closing: the last flush of the transaction log failed: %s", e)
                return
            except BaseException as e:  # noqa: BLE001 - our bug: the loop fail-stops
                call(self.loop.call_exception_handler, {
                    "message": "invariant broken in the log sync thread", "exception": e,
                    "zabpy_where": "log sync thread"})
                return
            if not flush:
                return
            call(self._done, zxid, ms)
