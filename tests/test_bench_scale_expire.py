"""bench.scale --expire end to end on a real zabpy server with a few
ephemerals: the owning session's process is killed and the server expires
it, or it sends closeSession; every number is filled and every ephemeral
is gone (issue 19's "session expiry of a session owning 100k ephemerals";
the numbers themselves belong to bench/)."""

from __future__ import annotations

import asyncio

import pytest

from bench import scale, scale_more
from bench.client import Counters, Session
from bench.workloads import children_count

N = 1200  # more than one part of limits.CLOSE_SESSION_DELETES_PER_PART


@pytest.mark.parametrize("close", [False, True], ids=["expire", "close"])
def test_expire_run_fills_every_number(tmp_path, monkeypatch, close):
    monkeypatch.setattr(scale_more, "QUIET_S", 0.5)
    monkeypatch.setattr(scale_more, "SETTLE_S", 0.1)
    left: list[int | None] = []
    logs: list[str] = []

    def server_for(home, port):
        server = scale._server("zabpy", home, port, scale.SNAP_COUNT, scale.DEFAULT_ZABPY_CMD)
        real_stop = server.stop

        def stop_after_count():
            # before the stop: what the server itself holds under /exp
            if server.proc is not None and server.proc.poll() is None:
                left.append(asyncio.run(_count(port)))
            real_stop()
            logs.append((home / "server.log").read_text(errors="replace"))

        server.stop = stop_after_count
        return server

    out = scale_more.run_expire("zabpy", N, tmp_path, server_for, close=close, log=print)
    assert "problems" not in out, out
    for key in ("p99_quiet_ms", "p99_during_ms", "max_during_ms", "max_action_ms",
                "expire_s", "wait_s"):
        assert out[key] is not None and out[key] > 0, key
    assert out["reads_during"] > 0
    assert out["timeout_ms"] == 4000  # the smallest at tickTime 2000
    # the server expired the session (4000 ms, as the bench asked), or it closed
    assert ("Expiring session" in logs[0] and "timeout of 4000ms" in logs[0]) != close, logs
    assert out["left_after"] == 0
    assert left == [0]


async def _count(port: int) -> int | None:
    sess = await Session.open("127.0.0.1", port, Counters())
    try:
        return await children_count(sess, scale_more.EXPIRE_PARENT)
    finally:
        await sess.close()


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
def test_close_turns_times_every_turn_of_a_close_in_parts(shuffled):
    """bench.close_turns drives the standalone core through a close of more
    ephemerals than one part prepares (limits.CLOSE_SESSION_PATHS_PER_PART)
    and times each turn: the expiry, the prep's parts, the apply's."""
    from bench import close_turns
    from zabpy import limits

    n = limits.CLOSE_SESSION_PATHS_PER_PART + 600
    kinds = [kind for kind, _ in close_turns.measure(n, shuffled)]
    assert kinds[0] == "tick: the session expires"
    assert kinds.count("logged: the close is applied") == 1
    assert kinds.count("work: SlicedClosePrep") >= 2
    assert kinds.count("work: SlicedClose") >= n // limits.CLOSE_SESSION_DELETES_PER_PART
