"""Pure numbers for the benchmark: percentiles, medians, ratios, text tables.

Nothing here does IO or reads a clock, so it is unit-tested directly
(tests/test_bench.py). Latencies arrive as integer nanoseconds and leave as
float milliseconds; percentiles use the nearest-rank definition (the value
below which p% of the samples fall, always an observed sample), which is what
latency reports conventionally mean by p50/p99 and needs no interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["split_evenly", "percentile", "median", "ratio", "format_ratio", "format_table",
           "summarize_latencies", "us_per_op"]


def split_evenly(total: int, parts: int, index: int) -> int:
    """Part ``index`` of an even split of ``total`` over ``parts``; the first
    ``total % parts`` parts take one more, so the parts sum to ``total``."""
    if parts <= 0 or not 0 <= index < parts:
        raise ValueError(f"part {index} of {parts}")
    return total // parts + (1 if index < total % parts else 0)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already-sorted values; None when empty.

    The rank is ceil(p/100 * n), clamped to [1, n]; p=0 gives the minimum and
    p=100 the maximum.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside [0, 100]")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    return sorted_values[min(rank, n) - 1]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (mean of the middle two when even)."""
    vals = sorted(v for v in values if v is not None)
    n = len(vals)
    if n == 0:
        return None
    mid = n // 2
    if n % 2:
        return vals[mid]
    return (vals[mid - 1] + vals[mid]) / 2


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def us_per_op(cpu_s: float | None, ops: int | None) -> float | None:
    """Microseconds of CPU per operation (None when either is missing or no op was done)."""
    if cpu_s is None or not ops:
        return None
    return cpu_s * 1e6 / ops


def format_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def summarize_latencies(samples_ns: Iterable[int]) -> dict[str, float | None]:
    """p50 / p99 / max in milliseconds from raw nanosecond samples."""
    vals = sorted(samples_ns)
    out: dict[str, float | None] = {}
    for name, p in (("p50_ms", 50), ("p99_ms", 99), ("max_ms", 100)):
        v = percentile(vals, p)
        out[name] = None if v is None else v / 1e6
    return out


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 0.01 else f"{v:.2f}"
    return str(v)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table: first column left-aligned, the rest right."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, headers {len(headers)}")
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])
