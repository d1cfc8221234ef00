"""The order in which a closeSession deletes its session's ephemerals, put
together a part at a time (issue 19).

``DataTree.kill_order`` sorts all the paths at once, by path and then
deepest first; for a session owning 100,000 ephemerals those two sorts held
the loop for some 30 ms. ``KillOrder`` gives the same order from parts:

- state: the paths not yet taken (the session's ephemerals in the tree,
  then those of the txn's paths2Delete that are not among them, each path
  once), and the sorted runs made so far, by depth;
- ``step()`` takes ``per_step`` more paths, sorts them by path and cuts
  them by depth into runs (no Python step per path unless a part mixes
  depths, which a session's ephemerals seldom do); True once all are in;
- ``paths()`` then yields them deepest first, then by path: per depth the
  runs chained when each ends before the next begins (a session creates
  its ephemerals in order, so they usually do), else merged lazily, so that
  the merge's cost falls on the parts that delete, a few hundred paths each;
- ``parents`` lists the parent of every path taken (a read of a child of
  one may wait for the close).

The caller must not change ``owned`` until the last step (a server applies
no other txn while a close is under way, and the close deletes nothing
before its order is known); the runs are lists of their own, so the deletes
may then empty ``owned``.
"""

from __future__ import annotations

import operator
from heapq import merge
from itertools import chain, filterfalse, islice, repeat
from typing import Iterator

__all__ = ["KillOrder"]

_SLASHES = operator.methodcaller("count", "/")  # a path's depth
_FIRST = operator.itemgetter(0)


class KillOrder:
    def __init__(self, owned: dict[str, None], listed: list[str] | None, per_step: int) -> None:
        assert per_step >= 1
        self.owned = owned
        self.listed = listed or []
        self.per_step = per_step
        self.total = 0                       # paths taken so far (all of them once done)
        self.done = False
        self._owned_iter: Iterator[str] = iter(owned)
        self._owned_size = self._owned_left = len(owned)
        self._listed_at = 0
        self._extra: dict[str, None] = {}    # listed paths the session does not own
        self._runs: dict[int, list[list[str]]] = {}   # depth -> sorted runs
        self.parents: dict[str, None] = {}   # the parent of every path taken

    def step(self) -> bool:
        """Take and sort ``per_step`` more paths; True once every path is in."""
        assert not self.done
        budget = self.per_step
        if self._owned_left:
            chunk = list(islice(self._owned_iter, min(budget, self._owned_left)))
            assert chunk and len(self.owned) == self._owned_size, \
                "the session's ephemerals changed while their order was taken"
            self._owned_left -= len(chunk)
            budget -= len(chunk)
            self._add(chunk)
        if budget and self._listed_at < len(self.listed):
            part = self.listed[self._listed_at:self._listed_at + budget]
            self._listed_at += len(part)
            # almost always all owned (the txn lists what the session owned)
            new = list(filterfalse(self.owned.__contains__, part))
            if new:
                fresh = [p for p in dict.fromkeys(new) if p not in self._extra]
                self._extra.update(dict.fromkeys(fresh))
                if fresh:
                    self._add(fresh)
        self.done = not self._owned_left and self._listed_at == len(self.listed)
        return self.done

    def _add(self, chunk: list[str]) -> None:
        self.total += len(chunk)
        first = chunk[0]
        prefix = first[:first.rfind("/") + 1]
        depth = prefix.count("/")
        # all children of the first's parent (the rule for a session's
        # ephemerals): each has at least its slashes, so equal counts say so
        if "".join(chunk).count("/") == depth * len(chunk) \
                and all(map(str.startswith, chunk, repeat(prefix))):
            chunk.sort()
            self._runs.setdefault(depth, []).append(chunk)
            self.parents[prefix[:-1] or "/"] = None
            return
        depths = list(map(_SLASHES, chunk))
        by_depth: dict[int, list[str]] = {}
        for depth, path in zip(depths, chunk):
            by_depth.setdefault(depth, []).append(path)
            cut = path.rfind("/")
            self.parents[path[:cut] if cut > 0 else "/"] = None
        for depth, run in by_depth.items():
            run.sort()
            self._runs.setdefault(depth, []).append(run)

    def paths(self) -> Iterator[str]:
        """Every path, deepest first, then by path (after the last step).
        A run is let go once it is yielded, so that the paths the deletes
        free go a part at a time, not all at the end."""
        assert self.done
        ordered: list[Iterator[str]] = []
        for depth in sorted(self._runs, reverse=True):
            runs = sorted(self._runs[depth], key=_FIRST)
            if all(a[-1] < b[0] for a, b in zip(runs, runs[1:])):
                ordered.append(chain.from_iterable(_taken(runs)))
            else:
                ordered.append(merge(*map(_popped, runs)))
        self._runs = {}
        return chain.from_iterable(_taken(ordered))


def _taken(items: list) -> Iterator:
    """The items of a list, each dropped from it as it is handed out."""
    items.reverse()
    while items:
        yield items.pop()


def _popped(run: list[str]) -> Iterator[str]:
    """A sorted run's paths, each dropped from it as it is handed out."""
    run.reverse()
    pop = run.pop
    while run:
        yield pop()
