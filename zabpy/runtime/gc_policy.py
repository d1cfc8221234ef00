"""The garbage collector's policy for a server process.

CPython's cyclic collector scans every tracked object of the oldest
generation in one stop-the-world pass, and by default runs such a pass
whenever that generation has grown by a quarter. A server's oldest
generation is almost all data tree (a DataNode and an ACL tuple per znode),
which lives until the znode is deleted and never takes part in a reference
cycle, so each pass is a pause that grows with the tree and frees nothing of
it: with 100k znodes, tens of milliseconds, repeated as the tree grows. Those
pauses were the tail of the write latencies.

So the policy is:
- the start-up restore runs with no collection and what it built is frozen
  at once (``restoring``);
- after the start-up restore, and after every full collection, everything
  still alive is moved to the permanent generation (``gc.freeze``), which
  later passes skip: a pass then scans only what was allocated since;
- young collections run less often (the first threshold is 10x CPython's):
  most request objects die by reference counting before any collection;
- a frozen object that later becomes part of a garbage cycle would never be
  freed, so once per ``interval`` everything is unfrozen and collected in one
  full pass (one pause per interval instead of one per quarter of growth).

This is process state, so it is installed once by the ``zabpy server``
command, not by runtimes (tests run several in one process).
"""

from __future__ import annotations

import contextlib
import gc
import time

__all__ = ["GcPolicy"]

YOUNG_THRESHOLD = 7000
FULL_SWEEP_INTERVAL_S = 600.0


class GcPolicy:
    def __init__(self, full_sweep_interval_s: float = FULL_SWEEP_INTERVAL_S) -> None:
        self.interval_s = full_sweep_interval_s
        self._last_sweep = time.monotonic()
        self.full_sweeps = 0
        self._saved_threshold = gc.get_threshold()
        _, t1, t2 = self._saved_threshold
        gc.set_threshold(YOUNG_THRESHOLD, t1, t2)
        gc.callbacks.append(self._after_collection)

    def _after_collection(self, phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()  # the survivors of a full pass are live: skip them from now on

    @contextlib.contextmanager
    def restoring(self):
        """Around the start-up (the restore builds the whole tree): what the
        imports left is collected first, while the heap is small; then no
        pass runs until the tree is built, and it is frozen at once. A pass
        during the build would scan the growing tree and free nothing, and
        the first one after it, all of the tree (0.2 s for a million
        znodes, before the first request)."""
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()

    def settle(self) -> None:
        """After the start-up restore: collect once, then freeze what is left."""
        gc.collect()

    def tick(self) -> None:
        now = time.monotonic()
        if self.interval_s > 0 and now - self._last_sweep >= self.interval_s:
            self._last_sweep = now
            self.full_sweeps += 1
            gc.unfreeze()
            gc.collect()

    def uninstall(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.set_threshold(*self._saved_threshold)
        gc.unfreeze()
