"""bench/scale.py end to end on a real zabpy server with a small tree: the
populate, both restarts and the snapshot-under-load phase run, every number
of the table is filled, and the tree is all there after the restarts
(issue 19's scale benchmark; the numbers themselves belong to bench/)."""

from __future__ import annotations

import asyncio

from bench import scale
from bench.client import Counters, Session
from bench.workloads import children_count


def test_scale_run_fills_every_number(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "SNAP_COUNT", 200)  # a snapshot after 100-200 setData
    monkeypatch.setattr(scale, "SETTLE_S", 0.1)
    counted: list[int | None] = []
    real_stop = scale.Server.stop

    def stop_after_count(server):
        # Before the last stop: the restarted server still holds every znode.
        if server.proc is not None and server.proc.poll() is None and "restarted" in state:
            counted.append(asyncio.run(_count(server.port)))
        real_stop(server)

    state: dict = {}
    monkeypatch.setattr(scale.Server, "stop", stop_after_count)

    def log(line: str) -> None:
        if "restart (snapshot)" in line:
            state["restarted"] = True

    out = scale.run_one("zabpy", 1500, tmp_path, log=log)
    assert out["problems"] == []
    for key in ("idle_rss_bytes", "loaded_rss_bytes", "restart_log_s", "snapshot_s",
                "p99_quiet_ms", "p99_snapshot_ms", "peak_rss_bytes", "restart_snap_s",
                "restarted_rss_bytes", "peak_pss_bytes", "p99_snapshot_pss_polled_ms"):
        assert out[key] is not None and out[key] > 0, key
    # one timed snapshot, then the untimed one that read PSS
    assert len(out["snapshot_rounds"]) == 1
    assert out["snapshot_rounds"][0]["peak_pss_bytes"] is None
    assert not out["timed_out"]
    assert counted == [2]  # two parents of 1,000 and 500 leaves (checked in _count)
    assert "zabpy" in scale.render([out])


async def _count(port: int) -> int | None:
    sess = await Session.open("127.0.0.1", port, Counters())
    try:
        leaves = [await children_count(sess, f"/scale/b{b}") for b in range(2)]
        assert leaves == [1000, 500], leaves
        return await children_count(sess, "/scale") - 1  # minus /scale/w
    finally:
        await sess.close()
