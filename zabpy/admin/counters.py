"""A server's counters and summaries (ZooKeeper's ServerMetrics), kept
apart from the Prometheus exporter so that a server counts from its first
request without importing prometheus-client or aiohttp (start-up time)."""

from __future__ import annotations

from collections import deque

from .. import limits

__all__ = ["ServerMetrics", "Summary", "PROMETHEUS_PROVIDER", "SUMMARIES", "COUNTERS"]

# metricsProvider.className that turns the exporter on, as in ZooKeeper.
PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

# ZooKeeper's summary names -> advanced (p50/p95/p99/p999 in mntr and
# 0.5/0.9/0.99 in Prometheus) or basic (median only), as ServerMetrics.java.
SUMMARIES: dict[str, bool] = {
    "fsynctime": False,
    "snapshottime": False,
    "dbinittime": False,
    "election_time": False,
    "follower_sync_time": False,
    "readlatency": True,
    "updatelatency": True,
    "quorum_ack_latency": True,
    "jvm_pause_time_ms": True,
}

# ZooKeeper's counter names that zabpy counts.
COUNTERS: tuple[str, ...] = (
    "snap_count", "commit_count", "proposal_count", "looking_count", "connection_rejected",
    "bytes_received_count", "unrecoverable_error_count", "stale_sessions_expired",
    "digest_mismatches_count", "diff_count",
)

_MNTR_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
_PROM_QUANTILES = {True: (0.5, 0.9, 0.99), False: (0.5,)}


class Summary:
    """Count, sum, min, max of every observation; quantiles over recent ones."""

    __slots__ = ("name", "advanced", "count", "total", "min", "max", "window")

    def __init__(self, name: str, advanced: bool):
        self.name = name
        self.advanced = advanced
        self.window: deque[int] = deque(maxlen=limits.METRICS_SUMMARY_WINDOW)
        self.reset()

    def reset(self) -> None:
        self.count = self.total = self.min = self.max = 0
        self.window.clear()

    def observe(self, value: int) -> None:
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value
        self.window.append(value)

    def quantile(self, q: float) -> int:
        if not self.window:
            return 0
        ordered = sorted(self.window)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def mntr_values(self) -> list[tuple[str, object]]:
        n = self.name
        avg = self.total / self.count if self.count else 0.0
        out: list[tuple[str, object]] = [
            (f"avg_{n}", round(avg, 4)), (f"min_{n}", self.min), (f"max_{n}", self.max),
            (f"cnt_{n}", self.count), (f"sum_{n}", self.total)]
        if self.advanced:
            out += [(f"{label}_{n}", self.quantile(q)) for label, q in _MNTR_QUANTILES]
        return out


class ServerMetrics:
    """One server's counters and summaries (ZooKeeper's ServerMetrics)."""

    def __init__(self) -> None:
        self.summaries = {n: Summary(n, adv) for n, adv in SUMMARIES.items()}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.fsync_threshold_exceeded = 0
        self.pause_info_count = 0  # loop pauses above the info threshold
        self.pause_warn_count = 0  # ... and above the warn threshold

    def observe(self, name: str, value_ms: float) -> None:
        self.summaries[name].observe(int(value_ms))

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def reset(self) -> None:
        """srst: ZooKeeper resets every ServerMetrics value with the server stats."""
        for s in self.summaries.values():
            s.reset()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.fsync_threshold_exceeded = 0

    def monitor_values(self, counter_sets=()) -> list[tuple[str, object]]:
        """``counter_sets``: (key_name, value) lines printed after the counters."""
        out: list[tuple[str, object]] = list(self.counters.items())
        out += counter_sets
        out += [("event_loop_pause_info_count", self.pause_info_count),
                ("event_loop_pause_warn_count", self.pause_warn_count)]
        for s in self.summaries.values():
            out += s.mntr_values()
        return out
