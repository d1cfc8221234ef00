"""Side by side: ``python -m zabpy.chaos.compare RESULT.json ...`` reads the
JSON results of harness runs (``--json``) and prints, per target, the runs,
faults by kind, operations checked and anomalies, and write unavailability
per kind of fault."""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def summarize(paths: list[str]) -> str:
    runs: dict[str, list[dict]] = defaultdict(list)
    for p in paths:
        with open(p) as f:
            r = json.load(f)
        runs[r["meta"]["target"]].append(r)
    targets = sorted(runs)
    lines = ["target      runs  faults  ops checked  anomalies  seeds"]
    for t in targets:
        rs = runs[t]
        ops = sum(v["ops_checked"] for r in rs for v in r["verdicts"].values())
        lines.append(f"{t:<10} {len(rs):5d} {sum(len(r['faults']) for r in rs):7d} {ops:12d} "
                     f"{sum(r['anomalies'] for r in rs):10d}  "
                     + ",".join(str(r["meta"]["seed"]) for r in rs))
    lines.append("")
    lines.append("write unavailability, s (n / mean / max): longest stretch with writes "
                 "failing and none answered")
    lines.append(f"{'fault':<20}" + "".join(f"{t:>24}" for t in targets))
    kinds = sorted({f["kind"] for rs in runs.values() for r in rs for f in r["faults"]})
    for k in kinds:
        row = f"{k:<20}"
        for t in targets:
            us = [f["unavailable_s"] for r in runs[t] for f in r["faults"] if f["kind"] == k]
            row += (f"{len(us):>8d} {sum(us) / len(us):7.2f} {max(us):7.2f}" if us
                    else f"{'-':>24}")
        lines.append(row)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(summarize(sys.argv[1:]), end="")
