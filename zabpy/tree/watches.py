"""The watch table: which session watches which path, and how.

Two tables, as in ZooKeeper: *data* watches (getData, exists — also on a
missing node — and persistent / persistent-recursive watches) and *child*
watches (getChildren, and persistent watches, which see child changes too).
Each entry is a bitmask of modes, so one session may hold a one-shot and a
persistent watch on the same path.

``trigger(event_type, path)`` returns the (session id, event type, path)
notifications to send and removes fired one-shot watches. A session gets at
most one notification per trigger, even when several of its watches match.
Persistent-recursive watches see created / deleted / data-changed events on
their path and every descendant, never NodeChildrenChanged (ZooKeeper 3.8).
As in ZooKeeper 3.8, a recursive watch has an entry in *both* tables: the
data one delivers; the child one never sees NodeChildrenChanged but answers
checkWatches / removeWatches of type Children and still delivers NodeDeleted
below its path once the data entry was removed (checked against Java 3.8).
"""

from __future__ import annotations

from typing import Any

from ..jute.constants import EVENT, WatcherType
from .paths import parent_of

__all__ = ["WatchManager", "STANDARD", "PERSISTENT", "RECURSIVE"]

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4


class WatchManager:
    def __init__(self) -> None:
        self.data: dict[Any, dict[int, int]] = {}
        self.child: dict[Any, dict[int, int]] = {}
        self._recursive_count = 0

    # ---- registration -------------------------------------------------------

    # A path to watch is taken as the client sent it (setWatches may carry a
    # null string): typed Any, so that the compiled build (mypyc) does not
    # refuse what the pure one accepts.
    @staticmethod
    def _add(table: dict[Any, dict[int, int]], path: Any, session: int, mode: int) -> None:
        watchers = table.get(path)
        if watchers is None:
            table[path] = {session: mode}
        else:
            watchers[session] = watchers.get(session, 0) | mode

    def add_data_watch(self, path: Any, session: int) -> None:
        self._add(self.data, path, session, STANDARD)

    def add_child_watch(self, path: Any, session: int) -> None:
        self._add(self.child, path, session, STANDARD)

    def add_persistent(self, path: Any, session: int, recursive: bool) -> None:
        if recursive:
            for table in (self.data, self.child):
                before = table.get(path, {}).get(session, 0)
                self._add(table, path, session, RECURSIVE)
                if not before & RECURSIVE:
                    self._recursive_count += 1
        else:
            self._add(self.data, path, session, PERSISTENT)
            self._add(self.child, path, session, PERSISTENT)

    # ---- firing ---------------------------------------------------------------

    @property
    def has_recursive(self) -> bool:
        """Some persistent recursive watch exists (a trigger anywhere may fire it)."""
        return self._recursive_count > 0

    def trigger(self, event: int, path: str) -> list[tuple[int, int, str]]:
        fired: dict[int, None] = {}
        if event == EVENT.NodeChildrenChanged:
            self._fire(self.child, path, fired, skip=RECURSIVE)
        else:
            self._fire(self.data, path, fired)
            if event == EVENT.NodeDeleted:
                self._fire(self.child, path, fired)
            if self._recursive_count:
                self._fire_recursive(self.data, path, fired)
                if event == EVENT.NodeDeleted:
                    self._fire_recursive(self.child, path, fired)
        return [(s, event, path) for s in fired]

    @staticmethod
    def _fire(table: dict[Any, dict[int, int]], path: str, fired: dict[int, None],
              skip: int = 0) -> None:
        """Fire the watches on ``path``; an entry whose modes are all in
        ``skip`` stays silent."""
        watchers = table.get(path)
        if not watchers:
            return
        for session, mode in list(watchers.items()):
            if not mode & ~skip:
                continue
            fired[session] = None
            rest = mode & ~STANDARD
            if rest:
                watchers[session] = rest
            else:
                del watchers[session]
        if not watchers:
            del table[path]

    @staticmethod
    def _fire_recursive(table: dict[Any, dict[int, int]], path: str,
                        fired: dict[int, None]) -> None:
        p = path
        while p != "/":
            p = parent_of(p)
            watchers = table.get(p)
            if watchers:
                for session, mode in watchers.items():
                    if mode & RECURSIVE:
                        fired[session] = None

    # ---- removal and queries ------------------------------------------------

    def has_watch(self, path: Any, session: int, wtype: int) -> bool:
        """checkWatches as ZooKeeper 3.8 answers it: Data / Children look at
        the whole data / child table, where persistent watches also live."""
        d = self.data.get(path, {}).get(session, 0)
        c = self.child.get(path, {}).get(session, 0)
        if wtype == WatcherType.Children:
            return bool(c)
        if wtype == WatcherType.Data:
            return bool(d)
        if wtype == WatcherType.Any:
            return bool(d or c)
        if wtype == WatcherType.Persistent:
            return bool(d & PERSISTENT)
        if wtype == WatcherType.PersistentRecursive:
            return bool(d & RECURSIVE)
        return False

    def remove(self, path: Any, session: int, wtype: int) -> list[int]:
        """Remove watches of a type; returns the removal events to deliver
        (DataWatchRemoved / ChildWatchRemoved / PersistentWatchRemoved).
        As in ZooKeeper 3.8, Data / Children clear the whole data / child
        table entry of the session, persistent modes included."""
        events: list[int] = []
        everything = STANDARD | PERSISTENT | RECURSIVE
        if wtype in (WatcherType.Children, WatcherType.Any):
            if self._clear(self.child, path, session, everything):
                events.append(EVENT.ChildWatchRemoved)
        if wtype in (WatcherType.Data, WatcherType.Any):
            if self._clear(self.data, path, session, everything):
                events.append(EVENT.DataWatchRemoved)
        if wtype in (WatcherType.Persistent, WatcherType.PersistentRecursive):
            bit = PERSISTENT if wtype == WatcherType.Persistent else RECURSIVE
            if self._clear(self.data, path, session, bit):
                self._clear(self.child, path, session, bit)
                events.append(EVENT.PersistentWatchRemoved)
        return events

    def _clear(self, table: dict[Any, dict[int, int]], path: Any, session: int,
               mask: int) -> bool:
        watchers = table.get(path)
        if not watchers:
            return False
        mode = watchers.get(session, 0)
        if not mode & mask:
            return False
        if mode & mask & RECURSIVE:
            self._recursive_count -= 1
        rest = mode & ~mask
        if rest:
            watchers[session] = rest
        else:
            del watchers[session]
            if not watchers:
                del table[path]
        return True

    def remove_session(self, session: int) -> None:
        for table in (self.data, self.child):
            for path in list(table):
                watchers = table[path]
                mode = watchers.pop(session, 0)
                if mode & RECURSIVE:
                    self._recursive_count -= 1
                if not watchers:
                    del table[path]

    def count(self) -> int:
        return sum(len(w) for w in self.data.values()) + sum(len(w) for w in self.child.values())

    def by_session(self) -> dict[int, list[str]]:
        out: dict[int, dict[Any, None]] = {}
        for table in (self.data, self.child):
            for path, watchers in table.items():
                for s in watchers:
                    out.setdefault(s, {})[path] = None
        return {s: list(p) for s, p in sorted(out.items())}

    def by_path(self) -> dict[str, list[int]]:
        out: dict[Any, dict[int, None]] = {}
        for table in (self.data, self.child):
            for path, watchers in table.items():
                for s in watchers:
                    out.setdefault(path, {})[s] = None
        return {p: list(s) for p, s in sorted(out.items())}
