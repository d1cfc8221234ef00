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

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["INF", "Op", "Result", "RegisterModel", "check", "shrink", "bound_unknown_writes"]

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


def check(ops: list[Op], model, max_states: int = 300_000) -> Result:
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


def bound_unknown_writes(ops: list[Op]) -> list[Op]:
    """A CAS of unknown outcome whose value some op observed took effect
    before that op returned: give it that return time instead of ``INF``.
    Exact (the observer is linearized after the write and before its own
    return), and it keeps the search from carrying every such CAS as
    pending to the end of the history, which is what makes a failing
    search explode."""
    seen_by: dict[Any, float] = {}
    for op in ops:
        if op.kind == "read" or op.output == "ok":
            v = _needs(op)
            seen_by[v] = min(seen_by.get(v, INF), op.ret)
    out = []
    for op in ops:
        if op.kind == "cas" and op.output == "info" and op.input[1] in seen_by:
            op = replace(op, ret=max(op.call, seen_by[op.input[1]]), note=op.note + " (seen)")
        out.append(op)
    return out


def _needs(op: Op):
    """The register value ``op`` cannot be judged without (read or CAS from)."""
    return op.output if op.kind == "read" else op.input[0]


def _binds(op: Op) -> bool:
    """Does ``op`` need its value to have been written? (A failed CAS or one
    of unknown outcome can happen whatever the value.)"""
    return op.kind == "read" or op.output == "ok"


def shrink(ops: list[Op], init: Any, budget: int = 300,
           max_states: int = 50_000) -> tuple[list[Op], Any]:
    """A small sub-history of the non-linearizable register history ``ops``
    that is still not linearizable, and the value it starts from.

    Failed CASes go first if the rest still fails; then writes may be
    dropped too, and the sub-history starts from the one value it needs that
    no kept op wrote (at most one such value, else it would fail only for
    want of a write; values are unique, so no dropped write can have helped
    a kept read or acknowledged CAS). If failed CASes are needed, only reads
    and failed CASes are dropped. The shortest failing prefix (by call time)
    is found first, then runs of ops are dropped while the rest still fails,
    the runs halving down to single ops (as delta debugging does).
    ``budget`` bounds the searches run."""
    by_id = {op.id: op for op in ops}
    writer = {op.input[1]: op.id for op in ops if op.kind == "cas" and op.output != "fail"}
    runs = [0]

    def start(ids) -> Any:
        """The value the sub-history starts from, or _INVALID."""
        written = {by_id[i].input[1] for i in ids
                   if by_id[i].kind == "cas" and by_id[i].output != "fail"}
        unwritten = {_needs(by_id[i]) for i in ids if _binds(by_id[i])} - written
        if not unwritten or unwritten == {init}:
            return init
        return unwritten.pop() if len(unwritten) == 1 else _INVALID

    def fails(ids) -> Any:
        first = start(ids)
        if first is _INVALID:
            return _INVALID
        runs[0] += 1
        sub = sorted((by_id[i] for i in ids), key=lambda o: (o.call, o.id))
        return first if check(sub, RegisterModel(first), max_states).ok is False else _INVALID

    def with_writers(ids: set[int]) -> set[int]:
        todo, out = list(ids), set(ids)
        while todo:
            w = writer.get(_needs(by_id[todo.pop()]))
            if w is not None and w not in out:
                out.add(w)
                todo.append(w)
        return out

    # Dropping a write is sound only where no failed CAS is left: a failed
    # CAS may have failed because of the very write dropped.
    no_fail = {o.id for o in ops if not (o.kind == "cas" and o.output == "fail")}
    if fails(no_fail) is _INVALID:
        keep, first = set(by_id), init
        droppable = lambda op: op.kind == "read" or op.output == "fail"  # noqa: E731
    else:
        order = sorted((by_id[i] for i in no_fail), key=lambda o: (o.call, o.id))
        lo, hi = 0, len(order)
        while hi - lo > 1 and runs[0] < budget:
            mid = (lo + hi) // 2
            if fails(with_writers({o.id for o in order[:mid]})) is not _INVALID:
                hi = mid
            else:
                lo = mid
        keep = with_writers({o.id for o in order[:hi]})
        first = fails(keep)
        if first is _INVALID:
            keep, first = no_fail, fails(no_fail)
        droppable = lambda op: True  # noqa: E731
    # Drop runs of ops, halving their length down to single ops (ddmin).
    chunk = max(1, len(keep) // 2)
    while runs[0] < budget:
        order = [i for i in sorted(keep, key=lambda i: (by_id[i].call, i))
                 if droppable(by_id[i])]
        removed = False
        for k in range(0, len(order), chunk):
            if runs[0] >= budget:
                break
            trial = keep - set(order[k:k + chunk])
            got = fails(trial) if trial and trial != keep else _INVALID
            if got is not _INVALID:
                keep, first, removed = trial, got, True
        if chunk == 1 and not removed:
            break
        if not removed:
            chunk = max(1, chunk // 2)
    return sorted((by_id[i] for i in keep), key=lambda o: (o.call, o.id)), first


_INVALID = object()
