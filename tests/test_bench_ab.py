"""bench.ab (standalone A/B), bench.ab_rounds (what it shares with
bench.ab_ensemble) and bench.timeline (a group commit's timeline): their pure
helpers on made-up inputs, and one short timeline against a real
server, which fails if the runtime's methods the timeline wraps are renamed.
No timing is asserted."""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench import ab, ab_ensemble, ab_rounds, timeline

MS = 1_000_000  # ns


def test_timeline_pairs_each_flush_with_its_hand_off_and_its_answer():
    # two group commits: dispatch, flush in the thread (fsync inside), logged
    ev = [
        ("append", 0, 1, 0, 0, 3),
        ("dispatch", 1 * MS, 0, 0, 0, 0),
        ("sync", 2 * MS, 5 * MS, 3 * MS, 4 * MS, 3),
        ("append", 3 * MS, 3 * MS + 1, 0, 0, 2),   # lands while the flush is in the thread
        ("logged", 6 * MS, 7 * MS, 0, 0, 3),
        ("dispatch", 8 * MS, 0, 0, 0, 0),
        ("sync", 8 * MS + 500_000, 9 * MS, 8 * MS + 600_000, 8 * MS + 900_000, 2),
        ("logged", 10 * MS, 10 * MS + 200_000, 0, 0, 5),
    ]
    r = timeline.analyse(ev, 0, 11 * MS)
    s = r["steps_us"]
    assert r["commits"] == 2 and r["txns_per_commit"]["mean"] == 2.5
    assert s["handoff"]["n"] == 2 and s["handoff"]["median"] == 750.0   # 1000 and 500 µs
    assert s["fsync"]["median"] == 650.0          # 1000 and 300 µs
    assert s["handback"]["median"] == 1000.0      # 1000 and 1000 µs
    assert s["cycle"]["n"] == 1 and s["cycle"]["median"] == 6500.0
    assert r["txns_appended"] == 5 and r["appended_while_flush_in_thread"] == 2


def test_ab_medians_and_ratios_to_java():
    row = {"ops_s": 100.0, "p99_ms": 10.0, "cpu_us_op": 50.0, "cores": 1.0, "main_on_cpu": 0.0,
           "main_waiting": 0.0, "ops_per_fsync": 100.0, "load": 1.0, "ok": True}
    results = {"setData": {
        "java": [row, dict(row, ops_s=300.0)],
        "new": [dict(row, ops_s=150.0, cpu_us_op=20.0), dict(row, ops_s=250.0, cpu_us_op=20.0)],
    }}
    lines = ab.medians(results)
    new = next(line for line in lines if " new " in line)
    assert "200/s" in new and "ops/s 1.00x" in new and "cpu 0.40x" in new


def test_ab_rounds_runs_each_round_writes_the_runs_and_fails_on_a_failed_run(tmp_path, capsys):
    # bench.ab_ensemble's rows carry only ops/s, p99, CPU per op, ok and load
    row = {"ops_s": 100.0, "p99_ms": 10.0, "cpu_us_op": 50.0, "ok": True, "load": 1.0}
    seen = []

    def one_round(rnd, work, results):
        seen.append((rnd, work.is_dir()))
        results.setdefault("create", {}).setdefault("java", []).append(row)
        results["create"].setdefault("new", []).append(dict(row, cpu_us_op=25.0, ok=rnd == 0))

    results = ab_rounds.run_rounds(2, "zabpy-ab-test-", one_round)
    assert seen == [(0, True), (1, True)]
    out = tmp_path / "runs.json"
    assert ab_rounds.report(results, ab_ensemble._medians(results), str(out)) == 1
    assert json.loads(out.read_text()) == results
    new = next(line for line in capsys.readouterr().out.splitlines() if " new " in line)
    assert "(2 runs)" in new and "cpu 0.50x" in new
    results["create"]["new"][1]["ok"] = True
    assert ab_rounds.report(results, [], None) == 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_timeline_against_a_real_server(tmp_path, capsys):
    out = tmp_path / "tl.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert timeline.main(["--duration", "0.5", "--tree", root, "--json", str(out)]) == 0
    import json
    r = json.loads(out.read_text())
    # the wrappers saw the run: flushes, appends, answers, reads
    assert r["commits"] > 0 and r["txns_appended"] > 0 and r["logged_calls"] > 0
    assert r["reads"] > 0 and "loop" in r["threads"]
