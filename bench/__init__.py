"""zabpy benchmarks: a wire-level load generator and a side-by-side runner
against Java ZooKeeper. See bench/README.md and ``python -m bench.compare --help``."""

__all__ = ["client", "compare", "loadgen", "procfs", "servers", "session_workloads", "stats",
           "workloads", "chart"]
