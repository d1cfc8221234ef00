"""Server counters reported by srvr / stat / mntr and the metrics endpoint."""

from __future__ import annotations

from .. import limits

__all__ = ["ServerStats"]


class ServerStats:
    def __init__(self, now_ms: int):
        self.start_ms = now_ms
        self.packets_received = 0
        self.packets_sent = 0
        self.outstanding = 0
        self.connections_opened = 0
        self.latency_min_ms = 0
        self.latency_max_ms = 0
        self.latency_total_ms = 0
        self.latency_count = 0
        # (latency ms, was a write) since the runtime last took them, for the
        # readlatency / updatelatency summaries; bounded, extra samples dropped.
        self.samples: list[tuple[int, bool]] = []
        self.fsync_count = 0
        self.fsync_total_ms = 0.0
        # quota_exceeded_error_per_namespace: top namespace -> requests failed
        self.quota_exceeded: dict[str, int] = {}

    def record_latency(self, ms: int, is_write: bool = False) -> None:
        if len(self.samples) < limits.LATENCY_SAMPLES_MAX:
            self.samples.append((ms, is_write))
        if self.latency_count == 0 or ms < self.latency_min_ms:
            self.latency_min_ms = ms
        if ms > self.latency_max_ms:
            self.latency_max_ms = ms
        self.latency_total_ms += ms
        self.latency_count += 1

    def take_samples(self) -> list[tuple[int, bool]]:
        out, self.samples = self.samples, []
        return out

    @property
    def latency_avg_ms(self) -> float:
        return self.latency_total_ms / self.latency_count if self.latency_count else 0.0

    def reset(self) -> None:
        """srst: reset latency and packet counters, as ZooKeeper does."""
        self.packets_received = 0
        self.packets_sent = 0
        self.latency_min_ms = self.latency_max_ms = 0
        self.latency_total_ms = self.latency_count = 0
        self.quota_exceeded = {}
