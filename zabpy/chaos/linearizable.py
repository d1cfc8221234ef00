"""A linearizability checker over recorded histories (Wing & Gong's search
with Lowe's memoisation, as Knossos and Porcupine do), and a shrinker that
reduces a failing history to a small failing sub-history.

Pure: no IO, no clocks. An ``Op`` has a call and a return time (``INF`` for
an operation whose outcome the client never learned: it may take effect at
any point after its call, or never) and a model-specific input and output.

The search walks the call/return events in time order. At each step it
tries to linearize a pending call (one whose call precedes the first return
still in the list); a return reached before its call was linearized means
the choice so far was wrong, so it backtracks. A (set of linearized ops,
model state) pair met twice is not explored again. That is exact, and
exponential in the worst case: ``max_states`` bounds it, and a history that
exceeds it is reported as undecided, never as an anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["INF", "Op", "Result", "RegisterModel", "check", "shrink"]

INF = float("inf")


@dataclass(frozen=True)
class Op:
    id: int
    call: float
    ret: float            # INF when the outcome is unknown
    kind: str
    input: Any = None
    output: Any = None
    client: int = 0
    note: str = ""

    def __str__(self) -> str:
        ret = "?" if self.ret == INF else f"{self.ret:.3f}"
        return (f"#{self.id} client {self.client} {self.kind}({self.input!r}) -> "
                f"{self.output!r} [{self.call:.3f}, {ret}]{' ' + self.note if self.note else ''}")


class RegisterModel:
    """A compare-and-set register of unique values.

    ``read``: output is the value read. ``cas``: input (from, to), output
    "ok" (it took effect), "fail" (the value was not ``from``) or "info"
    (unknown). ZooKeeper's setData with an expected version is a CAS on the
    version; the workload names each version by the value written at it
    (values are unique), so "the version is v" is "the value is from"."""

    def __init__(self, init: Any):
        self.init = init

    @staticmethod
    def step(state: Any, op: Op):
        """The next state, or None where ``op`` cannot happen in ``state``."""
        if op.kind == "read":
            return state if op.output == state else None
        if op.kind == "cas":
            frm, to = op.input
            if op.output == "ok":
                return to if state == frm else None
            if op.output == "fail":
                return state if state != frm else None
            return to if state == frm else state   # info: took effect if it could
        raise AssertionError(f"register has no op {op.kind}")


@dataclass
class Result:
    ok: bool | None                   # None: the search hit max_states
    ops: int
    states: int
    longest: list[Op] = field(default_factory=list)   # a longest linearized prefix


class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op, is_call):
        self.op, self.is_call = op, is_call
        self.match = self.prev = self.next = None


def check(ops: list[Op], model, max_states: int = 2_000_000) -> Result:
    """Is ``ops`` linearizable with respect to ``model``?"""
    index = {op.id: i for i, op in enumerate(ops)}
    events = []
    for op in ops:
        assert op.call <= op.ret, op
        events.append((op.call, 0, index[op.id], op))
        events.append((op.ret, 1, index[op.id], op))
    events.sort(key=lambda e: (e[0], e[1], e[2]))  # calls first at equal times: concurrent
    head = _Entry(None, False)
    prev = head
    calls = {}
    for _t, kind, i, op in events:
        e = _Entry(op, kind == 0)
        if kind == 0:
            calls[i] = e
        else:
            calls[i].match = e
        e.prev, prev.next = prev, e
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    state = model.init
    linearized = 0
    seen: set = set()
    stack: list = []
    best: list = []
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            new = model.step(state, entry.op)
            if new is not None:
                bit = 1 << index[entry.op.id]
                key = (linearized | bit, new)
                if key not in seen:
                    if len(seen) >= max_states:
                        return Result(None, len(ops), len(seen), _ops(stack, best))
                    seen.add(key)
                    stack.append((entry, state))
                    state, linearized = new, linearized | bit
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) > len(best):
                best = [e.op for e, _ in stack]
            if not stack:
                return Result(False, len(ops), len(seen), best)
            entry, state = stack.pop()
            linearized &= ~(1 << index[entry.op.id])
            unlift(entry)
            entry = entry.next
    return Result(True, len(ops), len(seen))


def _ops(stack, best):
    return best if len(best) >= len(stack) else [e.op for e, _ in stack]


def shrink(ops: list[Op], model, depends: Callable[[Op], list[int]],
           budget: int = 400, max_states: int = 200_000) -> list[Op]:
    """A small sub-history of the non-linearizable ``ops`` that is still not
    linearizable: the shortest failing prefix (by call time), then each op
    dropped in turn where the rest still fails. ``depends(op)`` names the ops
    it cannot be judged without (the write of the value it read): they stay
    with it, and go when it goes. ``budget`` bounds the searches run."""
    by_id = {op.id: op for op in ops}
    dependents: dict[int, list[int]] = {op.id: [] for op in ops}
    for op in ops:
        for d in depends(op):
            if d in dependents:
                dependents[d].append(op.id)
    runs = [0]

    def closure_up(ids: set[int]) -> set[int]:   # add what they depend on
        todo, out = list(ids), set(ids)
        while todo:
            for d in depends(by_id[todo.pop()]):
                if d in by_id and d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    def closure_down(i: int, keep: set[int]) -> set[int]:   # i and what depends on it
        todo, out = [i], {i}
        while todo:
            for d in dependents[todo.pop()]:
                if d in keep and d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    def fails(ids: set[int]) -> bool:
        runs[0] += 1
        sub = sorted((by_id[i] for i in ids), key=lambda o: (o.call, o.id))
        return check(sub, model, max_states).ok is False

    order = sorted(ops, key=lambda o: (o.call, o.id))
    lo, hi = 0, len(order)
    while hi - lo > 1 and runs[0] < budget:
        mid = (lo + hi) // 2
        if fails(closure_up({o.id for o in order[:mid]})):
            hi = mid
        else:
            lo = mid
    keep = closure_up({o.id for o in order[:hi]})
    for op in sorted((by_id[i] for i in keep), key=lambda o: (-o.call, -o.id)):
        if runs[0] >= budget:
            break
        if op.id not in keep:
            continue
        trial = keep - closure_down(op.id, keep)
        if trial and fails(trial):
            keep = trial
    return sorted((by_id[i] for i in keep), key=lambda o: (o.call, o.id))
