"""A bounded in-memory window over a txn log: the source of DIFFs.

``History`` holds the last txns of a log in zxid order, plus ``base_zxid``:
every txn at or below it is summarized elsewhere (the tree, a snapshot, older
log files) and no longer in memory. A peer mirrors its own log in one (so a
future leader role knows what it can DIFF from) and a leader keeps its
committed txns in one (ZooKeeper's committedLog, ``ZAB_COMMITTED_LOG_MAX``).

Invariants: zxids strictly increase; ``base_zxid`` < the first entry's zxid;
``len(entries) <= limit`` (the oldest entry is dropped into ``base_zxid``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from .ready import Txn

__all__ = ["History"]


class History:
    # The held txns are ``_entries[_start:]`` (zxids in ``_zxids[_start:]``).
    # Dropping the oldest only moves ``_start``; the dead prefix is deleted
    # once it is ``limit`` long, so an append costs O(1) amortized and the
    # lists never hold more than ``2 * limit`` items.

    def __init__(self, base_zxid: int, entries: tuple[Txn, ...] | list[Txn] = (),
                 limit: int = 500) -> None:
        assert limit >= 1
        self.limit = limit
        self.base_zxid = base_zxid
        self._entries: list[Txn] = []
        self._zxids: list[int] = []
        self._start = 0
        for txn in entries:
            self.append(txn)

    @property
    def last_zxid(self) -> int:
        return self._zxids[-1] if len(self._zxids) > self._start else self.base_zxid

    def __len__(self) -> int:
        return len(self._zxids) - self._start

    def entries(self) -> tuple[Txn, ...]:
        return tuple(self._entries[self._start:])

    def append(self, txn: Txn) -> None:
        # every txn passes here (the leader's history and each peer's log
        # mirror): ``last_zxid`` and ``len`` are spelled out inline
        zxid = txn[0].zxid
        zxids = self._zxids
        start = self._start
        assert zxid > (zxids[-1] if len(zxids) > start else self.base_zxid), \
            f"history append {zxid:#x} after {self.last_zxid:#x}"
        self._entries.append(txn)
        zxids.append(zxid)
        if len(zxids) - start > self.limit:
            self.base_zxid = zxids[start]
            start = self._start = start + 1
            if start >= self.limit:
                del self._entries[:start]
                del zxids[:start]
                start = self._start = 0
        assert len(zxids) - start <= self.limit and self.base_zxid < zxids[start]

    def truncate(self, zxid: int) -> None:
        """Drop every txn above ``zxid`` (a TRUNC)."""
        i = bisect_right(self._zxids, zxid, lo=self._start)
        del self._entries[i:]
        del self._zxids[i:]
        if zxid < self.base_zxid:
            self.base_zxid = zxid

    def reset(self, zxid: int) -> None:
        """Everything up to ``zxid`` now lives in a snapshot (a SNAP)."""
        self._entries.clear()
        self._zxids.clear()
        self._start = 0
        self.base_zxid = zxid

    def knows(self, zxid: int) -> bool:
        """Whether ``zxid`` is the base or one of the held txns."""
        if zxid == self.base_zxid:
            return True
        i = bisect_left(self._zxids, zxid, lo=self._start)
        return i < len(self._zxids) and self._zxids[i] == zxid

    def known_at_or_below(self, zxid: int) -> int | None:
        """The largest known zxid <= ``zxid`` (None when below the window)."""
        if zxid < self.base_zxid:
            return None
        i = bisect_right(self._zxids, zxid, lo=self._start)
        return self._zxids[i - 1] if i > self._start else self.base_zxid

    def after(self, zxid: int) -> list[Txn]:
        """The held txns above ``zxid``, in order."""
        return self._entries[bisect_right(self._zxids, zxid, lo=self._start):]
