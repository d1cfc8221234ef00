"""Checkers over the workloads' recorded histories. Each returns a list of
``Anomaly``; an empty list is a pass.

register (ZooKeeper's documented model, Programmer's Guide "ZooKeeper
guarantees"):
- writes (CAS) and reads issued after sync() are linearizable: checked with
  the search in linearizable.py, and a failure is reported with a minimal
  failing sub-history;
- plain reads are sequentially consistent per session: a session never sees
  the register's version go back, its own writes included;
- every version names one value and every value one version.

set: every acknowledged create is present with its value; no two creates got
one path; a create acknowledged before another was invoked has the smaller
sequence number; nothing is present that no client asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .linearizable import INF, Op, RegisterModel, bound_unknown_writes, check, shrink
from .workload import INIT_VALUE, Record

__all__ = ["Anomaly", "register_ops", "check_register", "check_set", "Verdict"]

SHOW_OPS = 12   # ops printed per anomaly (the JSON result has them all)


@dataclass
class Anomaly:
    kind: str
    message: str
    ops: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = self.ops[:SHOW_OPS]
        more = [f"    ... and {len(self.ops) - SHOW_OPS} more"] if len(self.ops) > SHOW_OPS else []
        return "\n".join([f"[{self.kind}] {self.message}", *(f"    {o}" for o in shown), *more])


@dataclass
class Verdict:
    anomalies: list[Anomaly]
    ops_checked: int
    undecided: int = 0   # histories the search gave up on (max_states)
    notes: list[str] = field(default_factory=list)


def register_ops(records: list[Record]) -> tuple[list[Op], list[str]]:
    """The operations the linearizability check judges, and notes on what it
    left out. A CAS of unknown outcome whose value no one ever saw is left
    out (it can only have taken effect unobserved), and with it the failed
    CASes it might explain (those not over before it began)."""
    notes = []
    referenced = {INIT_VALUE}
    for r in records:
        if r.outcome != "ok" and r.kind != "cas":
            continue
        if r.kind in ("read", "sync-read") and r.outcome == "ok":
            referenced.add(r.value)
        elif r.kind == "cas" and r.outcome in ("ok", "fail"):
            referenced.add(r.value[0])
    unseen = [r for r in records if r.kind == "cas" and r.outcome == "info"
              and r.value[1] not in referenced]
    first_unseen = min((r.call for r in unseen), default=INF)
    # Taking effect unobserved, such a CAS can only be followed by failed
    # CASes: it explains those that end after it began and after the call of
    # every operation that is not a failed CAS.
    last_call = max((r.call for r in records if r not in unseen and (
        (r.kind == "sync-read" and r.outcome == "ok")
        or (r.kind == "cas" and r.outcome != "fail"))), default=0.0)
    explained_after = max(first_unseen, last_call)
    ops: list[Op] = []
    dropped_fail = 0
    for r in records:
        if r.kind == "sync-read" and r.outcome == "ok":
            ops.append(Op(len(ops), r.call, r.ret, "read", None, r.value, r.client,
                          f"sync-read v{r.version}"))
        elif r.kind == "cas":
            if r.outcome == "info":
                if r.value[1] in referenced:
                    ops.append(Op(len(ops), r.call, INF, "cas", r.value, "info", r.client,
                                  f"expected v{r.version} ({r.err})"))
            elif r.outcome == "fail" and r.ret > explained_after:
                dropped_fail += 1
            else:
                ops.append(Op(len(ops), r.call, r.ret, "cas", r.value, r.outcome, r.client,
                              f"expected v{r.version}" + (f" -> v{r.result}" if r.result else "")))
    ops = bound_unknown_writes(ops)
    if unseen:
        notes.append(f"{len(unseen)} CAS of unknown outcome never observed: left out, with "
                     f"{dropped_fail} failed CAS they could explain")
    return ops, notes


def check_register(records: list[Record], max_states: int = 300_000) -> Verdict:
    anomalies: list[Anomaly] = []
    ops, notes = register_ops(records)
    res = check(ops, RegisterModel(INIT_VALUE), max_states)
    undecided = 0
    if res.ok is False:
        small, first = shrink(ops, INIT_VALUE)
        anomalies.append(Anomaly(
            "register: not linearizable",
            f"{len(ops)} operations (CAS and reads after sync()) have no linearization; "
            f"a failing sub-history of {len(small)}, from value {first!r}:",
            [str(o) for o in small]))
    elif res.ok is None:
        undecided = 1
        notes.append(f"linearizability search gave up after {res.states} states")
    anomalies += _version_map(records) + _session_order(records) + _stale_sync_reads(records)
    return Verdict(anomalies, len(ops), undecided, notes)


def _version_map(records: list[Record]) -> list[Anomaly]:
    out = []
    by_version: dict[int, tuple[str, Record]] = {0: (INIT_VALUE, None)}
    by_value: dict[str, int] = {INIT_VALUE: 0}
    for r in records:
        if r.outcome != "ok":
            continue
        if r.kind == "cas":
            pair = (r.value[1], r.result)
            if r.result != r.version + 1:
                out.append(Anomaly("register: CAS version", f"setData expecting version "
                                   f"{r.version} answered version {r.result}", [_rec(r)]))
        elif r.kind in ("read", "sync-read"):
            pair = (r.value, r.version)
        else:
            continue
        value, version = pair
        seen = by_version.setdefault(version, (value, r))
        if seen[0] != value:
            out.append(Anomaly("register: two values at one version",
                               f"version {version} read as {seen[0]!r} and {value!r}",
                               [_rec(x) for x in (seen[1], r) if x is not None]))
        if by_value.setdefault(value, version) != version:
            out.append(Anomaly("register: one value at two versions",
                               f"{value!r} at versions {by_value[value]} and {version} "
                               f"(a write applied twice?)", [_rec(r)]))
    return out[:10]


def _stale_sync_reads(records: list[Record]) -> list[Anomaly]:
    """The same stale read in two operations, where versions show it: a read
    after sync() answered a version older than a CAS acknowledged before
    the sync was invoked (the linearizability search may need the whole
    chain of CASes between the two values to say so)."""
    out = []
    acked = sorted((r for r in records if r.kind == "cas" and r.outcome == "ok"),
                   key=lambda r: r.ret)
    best, i = None, 0
    for r in sorted((r for r in records if r.kind == "sync-read" and r.outcome == "ok"),
                    key=lambda r: r.call):
        while i < len(acked) and acked[i].ret < r.call:
            if best is None or acked[i].result > best.result:
                best = acked[i]
            i += 1
        if best is not None and r.version < best.result:
            out.append(Anomaly("register: stale read after sync",
                               f"read version {r.version} after a CAS to version {best.result} "
                               f"was acknowledged", [_rec(best), _rec(r)]))
    return out[:10]


def _session_order(records: list[Record]) -> list[Anomaly]:
    out = []
    last: dict[tuple[int, int], Record] = {}
    for r in sorted(records, key=lambda r: (r.client, r.call)):
        if r.outcome != "ok" or r.session == 0:
            continue
        version = r.result if r.kind == "cas" else r.version
        key = (r.client, r.session)
        prev = last.get(key)
        last[key] = r
        pv = prev and (prev.result if prev.kind == "cas" else prev.version)
        if prev is not None and version < pv:
            out.append(Anomaly("register: session went back",
                               f"session 0x{r.session:x} saw version {pv} then {version}",
                               [_rec(prev), _rec(r)]))
    return out[:10]


def check_set(records: list[Record], final: dict[str, str]) -> Verdict:
    out: list[Anomaly] = []
    acked = [r for r in records if r.kind == "create" and r.outcome == "ok"]
    asked = {r.value for r in records if r.kind == "create"}
    for r in acked:
        got = final.get(r.result)
        if got != r.value:
            out.append(Anomaly("set: acknowledged create lost",
                               f"{r.result} acknowledged, "
                               + ("absent" if got is None else f"holds {got!r}"), [_rec(r)]))
    paths: dict[str, Record] = {}
    for r in acked:
        if r.result in paths:
            out.append(Anomaly("set: one path twice", f"{r.result} acknowledged twice",
                               [_rec(paths[r.result]), _rec(r)]))
        paths[r.result] = r
    values: dict[str, str] = {}
    for path, value in sorted(final.items()):
        if value not in asked:
            out.append(Anomaly("set: phantom node", f"{path} holds {value!r}, never asked for"))
        if value in values:
            out.append(Anomaly("set: create applied twice",
                               f"{value!r} at {values[value]} and {path}"))
        values[value] = path
    # Real-time order: sweep by call time, holding the largest sequence
    # number acknowledged before the current call.
    done = sorted(acked, key=lambda r: r.ret)
    best: Record | None = None
    i = 0
    for r in sorted(acked, key=lambda r: r.call):
        while i < len(done) and done[i].ret < r.call:
            if best is None or _seq(done[i]) > _seq(best):
                best = done[i]
            i += 1
        if best is not None and _seq(best) >= _seq(r):
            out.append(Anomaly("set: sequence went back",
                               f"{best.result} acknowledged before {r.result} was asked for",
                               [_rec(best), _rec(r)]))
    return Verdict(out[:100], len(acked))


def _seq(r: Record) -> int:
    return int(r.result.rsplit("-", 1)[1])


def _rec(r: Record) -> str:
    ret = "?" if r.ret is None else f"{r.ret:.3f}"
    return (f"client {r.client} session 0x{r.session:x} {r.kind} {r.value!r} v{r.version} -> "
            f"{r.outcome} {r.result if r.result is not None else ''} {r.err} "
            f"[{r.call:.3f}, {ret}]")
