"""A PNG timeline of one run (matplotlib, Agg): a lane of faults, then a
lane per client with its answered operations per second and its failures
(timeouts, lost connections: red marks), and the time spans of every
anomaly's operations shaded red across all lanes. Readable in a minute:
where the faults were, how each client fared, where a checker objected.
"""

from __future__ import annotations

import re
from collections import Counter

from .faults import Fault
from .workload import ClientLog

__all__ = ["draw"]

BIN_S = 0.5
SPAN = re.compile(r"\[(\d+\.\d+), (\d+\.\d+|\?)\]")
COLORS = {"isolate-leader": "#d62728", "split": "#ff7f0e", "bridge": "#bcbd22",
          "one-way": "#e377c2", "flap": "#17becf", "slow": "#8c564b", "loss": "#9467bd",
          "pause": "#7f7f7f", "kill": "#1f77b4", "kill-drop": "#aec7e8",
          "disk-full": "#2ca02c", "disk-full-majority": "#006400", "disk-eio": "#98df8a",
          "disk-slow": "#c5b0d5", "delay": "#c49c94", "delay-link": "#f7b6d2",
          "reorder": "#dbdb8d", "power-loss": "#393b79", "power-loss-all": "#17174f"}


def anomaly_spans(verdicts: dict) -> list[tuple[float, float]]:
    """(call, return) of every operation an anomaly names."""
    out = []
    for v in verdicts.values():
        for a in v.anomalies:
            for op in a.ops:
                for call, ret in SPAN.findall(op):
                    out.append((float(call), float(call if ret == "?" else ret)))
    return out


def draw(path: str, meta: dict, faults: list[Fault], logs: list[ClientLog],
         verdicts: dict, end_s: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes = len(logs) + 1
    fig, axes = plt.subplots(lanes, 1, sharex=True, figsize=(14, 1.3 + 0.62 * lanes),
                             gridspec_kw={"height_ratios": [1.4] + [1] * len(logs)})
    total = sum(len(v.anomalies) for v in verdicts.values())
    fig.suptitle(f"zabpy chaos: {meta['target']}, {meta['servers']} servers, seed {meta['seed']}"
                 f": {total} anomalies", color="red" if total else "black", fontsize=11)
    _faults_lane(axes[0], faults, end_s)
    spans = anomaly_spans(verdicts)
    for ax, log in zip(axes[1:], logs):
        _client_lane(ax, log, end_s)
    for ax in axes:
        for a, b in spans:
            ax.axvspan(a, max(b, a + 0.05), color="red", alpha=0.25, lw=0)
        for f in faults:
            if f.began is not None:
                ax.axvline(f.began, color="#999999", lw=0.5, ls=":")
    axes[-1].set_xlabel("seconds since the clients started")
    axes[-1].set_xlim(0, end_s)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _faults_lane(ax, faults: list[Fault], end_s: float) -> None:
    ax.set_ylabel("faults", rotation=0, ha="right", va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    for f in faults:
        if f.began is None:
            continue
        healed = f.healed if f.healed is not None else end_s
        ax.axvspan(f.began, healed, 0.1, 0.9, color=COLORS.get(f.kind, "#333333"), alpha=0.8)
        label = f.kind + (f" {','.join(map(str, f.targets))}" if f.targets else "")
        if f.exits:
            label += " (exited)"
        ax.text((f.began + healed) / 2, 0.5, label, ha="center", va="center", fontsize=7,
                rotation=0 if healed - f.began > 3 else 90)


def _client_lane(ax, log: ClientLog, end_s: float) -> None:
    nbins = max(1, int(end_s / BIN_S) + 1)
    answered: Counter = Counter()
    failed = []
    for r in log.records:
        if r.ret is None:
            continue
        if r.outcome == "ok" or (r.outcome == "fail" and r.err == "BadVersion"):
            answered[min(int(r.ret / BIN_S), nbins - 1)] += 1
        else:
            failed.append(r.call)
    xs = [i * BIN_S for i in range(nbins)]
    ys = [answered[i] / BIN_S for i in range(nbins)]
    ax.fill_between(xs, ys, step="post", color="#4c72b0", alpha=0.6, lw=0)
    top = max(ys + [1.0])
    ax.set_ylim(0, top * 1.15)
    if failed:
        ax.plot(failed, [top * 0.5] * len(failed), "|", color="red", ms=10, mew=1.2)
    drops = [t for t, st in log.states if st != "CONNECTED"]
    if drops:
        ax.plot(drops, [top * 0.9] * len(drops), "v", color="black", ms=4)
    ax.set_ylabel(f"{log.id} {log.workload}", rotation=0, ha="right", va="center", fontsize=8)
    ax.tick_params(axis="y", labelsize=6)
