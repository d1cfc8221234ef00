"""PNG chart of a comparison: throughput and p99 latency per workload, per server.

matplotlib is optional (``pip install 'zabpy[bench]'``); without it ``draw``
returns False and the caller says that no chart was written. The Agg backend
is selected so that no display is needed.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["draw"]

COLORS = {"java": "#d9822b", "zabpy": "#2b6cd9"}


def draw(summary: dict, path: Path, servers: tuple[str, ...]) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        return False
    workloads = list(summary["workloads"])
    if not workloads:
        return False
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(workloads) + 2), 8))
    width = 0.8 / max(1, len(servers))
    panels = (("throughput", "throughput (ops/s; watch_storm: events/s)"),
              ("p99_ms", "p99 latency (ms)"))
    for ax, (key, label) in zip(axes, panels):
        for i, srv in enumerate(servers):
            vals = [(summary["workloads"][w].get(srv) or {}).get(key) or 0 for w in workloads]
            xs = [x + (i - (len(servers) - 1) / 2) * width for x in range(len(workloads))]
            ax.bar(xs, vals, width, label=srv, color=COLORS.get(srv))
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_ylabel(label)
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=20, ha="right")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title("zabpy vs Java ZooKeeper (medians over rounds; log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
