"""Group commit for the standalone server: one thread that writes and fsyncs
the txn log back to back, and tells the loop how far the log is durable.

State: the ``TxnStore`` (its pending list is filled on the loop by
``append``), a thread, ``durable_zxid`` (written by the thread only: every
txn up to it is on disk), and two flags that keep the hand-offs to one each
way per round.

The loop appends txns to the store and calls ``kick()``. The thread flushes
(writes and fsyncs) everything appended so far, records how far that made
the log durable, asks the loop to hear of it (``on_durable``, through
``call_soon_threadsafe``), and at once flushes again if more was appended
while it wrote: the next batch's write and fsync overlap the loop's apply
and answer of the batch before, instead of waiting for them as a flush
started from the loop after each ``logged`` would. The loop may also look
at ``durable_zxid`` between two reads of client data (``poll``): a batch
that became durable while the loop was busy is answered at the first such
point rather than after the rest of the loop's turn.

Invariants: a zxid becomes ``durable_zxid`` only after the fsync that wrote
it returned (``TxnStore.flush_and_sync`` returns the last zxid its batch
held; txns appended later have higher zxids), and ``durable_zxid`` only
grows; so a reply the loop sends once ``logged`` covers its zxid follows the
fsync of its txn, and replies keep zxid order (the core applies in order).

Wake-ups are never lost: the thread clears ``_kicked`` before it looks for
pending txns, and the loop sets it after appending, so a txn appended after
the thread's last look finds ``_kicked`` clear and wakes it. The loop
clears ``_notified`` before it reads ``durable_zxid``, and the thread sets
``durable_zxid`` before it tests ``_notified``, so no advance goes unheard.

A flush that raises ``OSError`` (disk full, EIO) ends the thread; the loop
hears ``on_failed(error)`` and stops acknowledging writes (the store's
failure is sticky). Any other exception is handed to the loop's exception
handler, which fail-stops the server.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from typing import Callable

from ..storage.files import TxnStore

__all__ = ["LogSyncer"]


class LogSyncer:
    """Flushes ``store`` in its own thread; results come back on ``loop``."""

    def __init__(self, store: TxnStore, loop: asyncio.AbstractEventLoop,
                 on_durable: Callable[[], None], on_failed: Callable[[OSError], None]) -> None:
        self.store = store
        self.loop = loop
        self.on_durable = on_durable
        self.on_failed = on_failed
        self.durable_zxid = 0       # the thread's: every txn up to it is durable
        # milliseconds per flush, appended by the thread, taken by the loop
        self.flush_ms: deque[float] = deque()
        self._kicked = False        # a wake-up is queued for the thread
        self._notified = False      # on_durable is scheduled on the loop
        self._closed = False
        self._wake: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="zabpy-log-sync", daemon=True)
        self._thread.start()

    # ---- the loop's side -------------------------------------------------------

    def kick(self) -> None:
        """Txns were appended to the store: have them flushed."""
        if not self._kicked:
            self._kicked = True
            self._wake.put(True)

    def take_durable(self) -> int:
        """The zxid up to which the log is durable now (on the loop)."""
        self._notified = False
        return self.durable_zxid

    def close(self) -> None:
        """Stop the thread once the flush in hand is done (blocking: call it
        off the loop, or from a loop that no longer appends)."""
        if not self._closed:
            self._closed = True
            self._wake.put(False)
        self._thread.join()

    # ---- the thread ----------------------------------------------------------

    def _run(self) -> None:
        store, wake = self.store, self._wake
        while wake.get():
            self._kicked = False
            try:
                while True:
                    t0 = time.monotonic()
                    zxid = store.flush_and_sync()
                    if zxid is None:
                        break
                    self.flush_ms.append((time.monotonic() - t0) * 1000)
                    self.durable_zxid = zxid
                    if not self._notified:
                        self._notified = True
                        self.loop.call_soon_threadsafe(self.on_durable)
            except OSError as e:
                self.loop.call_soon_threadsafe(self.on_failed, e)
                return
            except BaseException as e:  # noqa: BLE001 - our bug: the loop fail-stops
                self.loop.call_soon_threadsafe(self.loop.call_exception_handler, {
                    "message": "invariant broken in the log sync thread", "exception": e,
                    "zabpy_where": "log sync thread"})
                return
