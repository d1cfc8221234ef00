"""Resident memory and CPU time of a process tree, read from /proc (Linux only).

A server may be one process (java) or a process with helpers (a forked
snapshot writer, say), so both numbers are summed over the process and all
its live descendants. RSS is VmRSS from /proc/<pid>/status; CPU time is
utime + stime from /proc/<pid>/stat, in seconds (clock ticks, usually 10 ms).
An ensemble is several such trees: ``cpu_seconds_total`` sums them, which is
what "server CPU per operation" is made of (see ``bench.stats.us_per_op``).
"""

from __future__ import annotations

import os

__all__ = ["descendants", "rss_bytes", "pss_bytes", "cpu_seconds", "cpu_seconds_total"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces; fields follow it.
    return raw[raw.rindex(")") + 2:].split()


def _children(pid: int) -> list[int] | None:
    """The children of pid from /proc/<pid>/task/<tid>/children (one file per
    thread that forked), or None where the kernel has no such file: a bench
    polls this every few milliseconds beside the latencies it measures, and
    scanning every process of a shared machine took milliseconds a poll."""
    try:
        out = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        return out
    except FileNotFoundError:
        return None if os.path.exists(f"/proc/{pid}") else []   # no such file, or gone
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """pid and every live process below it."""
    kids = _children(pid)
    if kids is not None:
        out, todo = [pid], kids
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(_children(p) or ())
        return out
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss_one(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    return sum(_rss_one(p) for p in descendants(pid))


def _pss_one(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of the tree: a page shared by k processes counts
    1/k in each, so a forked child's copy-on-write pages still shared with
    its parent are counted once (RSS counts them in both)."""
    return sum(_pss_one(p) for p in descendants(pid))


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        fields = _stat_fields(p)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICKS


def cpu_seconds_total(pids) -> float:
    """CPU seconds of several process trees (the members of an ensemble), summed."""
    return sum(cpu_seconds(p) for p in pids)
