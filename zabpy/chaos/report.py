"""The run's text report: faults by kind, operations checked, anomalies,
and how long writes failed after each fault."""

from __future__ import annotations

import textwrap
from collections import Counter

from .faults import Fault
from .workload import Record

__all__ = ["unavailability", "slowest_write", "slowest_record", "render"]

SHOW_PER_KIND = 3


def unavailability(f: Fault, writes: list[Record], until: float) -> float:
    """The longest time, between the fault's start and ``until`` (the next
    fault, or the final heal), in which no write was answered while some
    write failed or timed out; 0.0 when none failed. A CAS refused for its
    version is an answer: the ensemble was available."""
    failed = sorted(w.call for w in writes if w.outcome == "info" and f.began <= w.call < until)
    if not failed:
        return 0.0
    answers = sorted(w.ret for w in writes
                     if w.outcome in ("ok", "fail") and f.began <= w.ret < until)
    points = [f.began, *answers, until]
    longest, k = 0.0, 0
    for a, b in zip(points, points[1:]):
        while k < len(failed) and failed[k] < a:
            k += 1
        if k < len(failed) and failed[k] < b:
            longest = max(longest, b - a)
    return longest


def slowest_write(f: Fault, writes: list[Record], until: float) -> float:
    """The longest an answered write took (call to answer) among those
    called between the fault's start and ``until``: a stall shorter than
    the clients' timeout shows here, not in ``unavailability``."""
    w = slowest_record(f, writes, until)
    return 0.0 if w is None else w.ret - w.call


def slowest_record(f: Fault, writes: list[Record], until: float) -> Record | None:
    answered = [w for w in writes if w.outcome in ("ok", "fail") and w.ret is not None
                and f.began <= w.call < until]
    return max(answered, key=lambda w: w.ret - w.call, default=None)


def render(meta: dict, faults: list[Fault], unavail: list[float], records: list[Record],
           verdicts: dict, errors: list[str], slowest: list[float] | None = None) -> str:
    lines = [f"zabpy chaos: target {meta['target']}, {meta['servers']} servers, seed "
             f"{meta['seed']}, {meta['duration']:.0f} s of faults"
             + (f", planted bug {meta['plant']!r}" if meta.get("plant") else ""),
             f"network: {meta['network']}", ""]
    kinds = Counter(f.kind for f in faults)
    lines.append(f"faults: {len(faults)} (" + ", ".join(f"{k} {n}" for k, n in
                                                       sorted(kinds.items())) + ")")
    for i, (f, u) in enumerate(zip(faults, unavail)):
        lines.append(f"  {f.began:7.2f}-{f.healed:7.2f}s {f.kind:<15} {f.detail:<48} "
                     f"no write answered {u:5.2f}s"
                     + (f", slowest write {slowest[i]:5.2f}s" if slowest else ""))
        if f.exits:
            lines.append(" " * 28 + "stopped by it: " + ", ".join(
                f"{s} (exit status {c})" for s, c in sorted(f.exits.items())))
    lines.append("")
    lines.append("write unavailability by kind (s):   n   mean    max"
                 "   (longest stretch with writes failing and none answered)")
    for k in sorted(kinds):
        us = [u for f, u in zip(faults, unavail) if f.kind == k]
        lines.append(f"  {k:<30} {len(us):3d} {sum(us) / len(us):6.2f} {max(us):6.2f}")
    lines.append("")
    c = Counter((r.kind, r.outcome) for r in records)
    lines += textwrap.wrap("operations: " + ", ".join(f"{k} {o} {n}" for (k, o), n in
                                                     sorted(c.items())), 100,
                           subsequent_indent="  ", break_on_hyphens=False)
    errs = Counter((r.kind, r.err or "?") for r in records
                   if r.outcome != "ok" and r.err != "BadVersion")
    if errs:
        lines += textwrap.wrap("failures by error: " + ", ".join(
            f"{k} {e} {n}" for (k, e), n in sorted(errs.items())), 100,
            subsequent_indent="  ", break_on_hyphens=False)
    if meta.get("op_ms"):
        lines.append("answered operations' latency (ms): " + ", ".join(
            f"{k} {v}" for k, v in meta["op_ms"].items()))
    for link, counts in (meta.get("netq") or {}).items():
        lines.append(f"whole-run delay of {link}: {counts}")
    lines.append(f"every member serving {meta['serve_s']:.2f}s after the final heal; after the "
                 f"clients stopped, all at one zxid: {meta['final_state']}")
    total = 0
    for name, v in verdicts.items():
        total += len(v.anomalies)
        lines.append(f"{name}: {v.ops_checked} operations checked, {len(v.anomalies)} anomalies"
                     + (f", {v.undecided} undecided" if v.undecided else ""))
        lines += [f"  note: {n}" for n in v.notes]
    for e in errors:
        lines.append(f"client error: {e}")
    lines.append("")
    lines.append(f"ANOMALIES: {total}")
    for v in verdicts.values():
        shown: Counter = Counter()
        for a in v.anomalies:
            shown[a.kind] += 1
            if shown[a.kind] <= SHOW_PER_KIND:
                lines.append(str(a))
        for kind, n in sorted(shown.items()):
            if n > SHOW_PER_KIND:
                lines.append(f"[{kind}] ... and {n - SHOW_PER_KIND} more")
    return "\n".join(lines) + "\n"
