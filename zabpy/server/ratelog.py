"""ZooKeeper's RateLogger (the one ZooKeeperServer's quota check logs
through), with the clock passed in.

A message unlike the last is logged at once as ``Message:<text> Value:null``;
repeats of it are only counted, and the count is written
(``[N times] Message: <text>``, or ``Message: <text>`` for one repeat) when
another message comes, or when a repeat arrives 100 ms or more after the
message was last written.
"""

from __future__ import annotations

from .. import limits

__all__ = ["RateLogger"]


class RateLogger:
    def __init__(self, interval_ms: int = limits.RATE_LOGGER_INTERVAL_MS):
        self.interval_ms = interval_ms
        self.msg: str | None = None
        self.count = 0
        self.timestamp_ms = 0

    def log(self, msg: str, now_ms: int) -> list[str]:
        """The lines to write now for ``msg`` (none while it repeats)."""
        if msg == self.msg:
            self.count += 1
            if now_ms - self.timestamp_ms < self.interval_ms:
                return []
            out = self.flush()
            self.msg, self.timestamp_ms = msg, now_ms
            return out
        out = self.flush()
        self.msg, self.timestamp_ms = msg, now_ms
        out.append(f"Message:{msg} Value:null")
        return out

    def flush(self) -> list[str]:
        out = []
        if self.msg is not None and self.count > 0:
            times = f"[{self.count} times] " if self.count > 1 else ""
            out.append(f"{times}Message: {self.msg}")
        self.msg, self.count = None, 0
        return out
