"""bench.profile_server: a real zabpy server of this tree run under the
profiling wrapper, a short create and setData load with the window open over
the timed phase, and the profile it wrote: the write path's hot functions
are in it and each falls in its concern. The classification itself on
made-up names. No timing is asserted."""

from __future__ import annotations

import os
import pstats
import sys

import pytest

from bench import profile_server as ps
from bench.loadgen import LoadConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_concerns_of_functions():
    z = "/x/zabpy"
    assert ps.classify(f"{z}/pipeline/prep.py", "prep_create") == "prep"
    assert ps.classify(f"{z}/tree/datatree.py", "create") == "apply"
    assert ps.classify(f"{z}/server/standalone.py", "_apply_one") == "apply"
    assert ps.classify(f"{z}/server/standalone.py", "request") == "server core"
    assert ps.classify(f"{z}/storage/files.py", "append_many") == "txn log"
    assert ps.classify(f"{z}/runtime/server.py", "_sync_loop") == "group commit"
    assert ps.classify(f"{z}/runtime/server.py", "_write") == "loop+socket"
    assert ps.classify("<string>", "read") == "jute codec"
    assert ps.classify("~", "<built-in method zlib.adler32>") == "txn log"
    assert ps.classify("~", "<method 'write' of 'uvloop.loop.UVStream' objects>") == "loop+socket"
    assert ps.classify("~", "<built-in method builtins.len>") is None   # goes to its caller


def test_pyspy_folded_stacks_by_concern(tmp_path):
    f = tmp_path / "s.pyspy"
    f.write_text(
        "thread (1): MainThread;run (uvloop/__init__.py:100);_data (/x/zabpy/runtime/server.py:460);"
        "receive_data (/x/zabpy/protocol/connection.py:80) 3\n"
        "thread (1): MainThread;run (uvloop/__init__.py:100);_flush (/x/zabpy/runtime/server.py:510);"
        "prep_create (/x/zabpy/pipeline/prep.py:300) 5\n"
        "thread (2): asyncio_0;_worker (/usr/lib/python3.11/concurrent/futures/thread.py:80);"
        "flush_and_sync (/x/zabpy/storage/files.py:200) 7\n"
        # a txn's record written by the codec for the log is the log's time
        "thread (1): MainThread;_persist (zabpy/runtime/server.py:620);"
        "TxnStore.append_many (zabpy/storage/files.py:90);write (<string>:3);"
        "Writer.int (zabpy/jute/codec.py:40) 11\n"
        # an enum lookup (stdlib) inside prep is prep's
        "thread (1): MainThread;_create (zabpy/pipeline/prep.py:320);"
        "EnumType.__getattr__ (enum.py:10) 13\n")
    main, others = ps.pyspy_by_category(str(f))
    assert main["jute codec"] == 3 and main["prep"] == 5 + 13 and main["txn log"] == 11
    assert sum(main.values()) == 3 + 5 + 11 + 13
    assert others["txn log"] == 7


def test_table_splits_the_unprofiled_cpu_by_the_sampled_shares(tmp_path):
    spy = tmp_path / "after-create-r0.pyspy"
    spy.write_text(
        "thread (1): MainThread;_create (zabpy/pipeline/prep.py:320) 30\n"
        "thread (1): MainThread;DataTree.create (zabpy/tree/datatree.py:20) 10\n")
    plain = {"mode": "plain", "workload": "create", "server": "after", "main_user_us_op": 38.0,
             "main_sys_us_op": 2.0, "others_us_op": 3.0,
             "gc_us_op_by_concern": {"prep": 6.0}}
    sampled = {"mode": "pyspy", "workload": "create", "server": "after", "pyspy": str(spy)}
    import json
    (tmp_path / "runs-plain.json").write_text(json.dumps(plain) + "\n")
    (tmp_path / "runs-pyspy.json").write_text(json.dumps(sampled) + "\n")
    out = ps.table([str(tmp_path)])
    # 40 us of loop CPU: prep 30 of it less the 6 its allocations spent in GC, apply 10
    assert "| prep | 24.0 | 56% |" in out and "| apply | 10.0 | 23% |" in out
    assert "| gc | 6.0 | 14% |" in out and "| total | 43.0 | 100% |" in out


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_profile_of_a_real_server_under_create_and_set_data(tmp_path):
    srv = ps.start_server("this", ROOT, tmp_path / "home", "cprofile")
    try:
        rows = []
        for wl in ("create", "setData"):
            cfg = LoadConfig(port=srv.port, procs=1, sessions=2, depth=8, duration_s=1.0)
            rows.append(ps.measure(srv, wl, 1.0, "cprofile", cfg=cfg))
    finally:
        srv.stop()
    for row, op in zip(rows, ("create", "setData")):
        assert row["ok"], row["problems"]
        assert row["ops"] > 0 and row["cpu_us_op"] is not None and row["main_user_us_op"] >= 0
        assert len(row["gc_passes"]) == 3 and row["threads"] >= 1
        assert set(row["gc_us_op_by_concern"]) <= set(ps.CATEGORIES)
        stats = pstats.Stats(row["prof"]).stats
        files = {k[0].replace("\\", "/") for k in stats}
        # the write path went through the cores the profile must show
        for part in ("/zabpy/pipeline/prep.py", "/zabpy/tree/datatree.py",
                     "/zabpy/server/standalone.py", "/zabpy/storage/"):
            assert any(part in f for f in files), (op, part)
        by, total = ps.pstats_by_category(row["prof"])
        assert total > 0
        for concern in ("jute codec", "prep", "apply", "txn log", "server core"):
            assert by[concern] > 0, (op, concern, by)
        assert abs(sum(by.values()) - total) < 1e-6
