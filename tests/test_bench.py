"""Tests of the benchmark code itself (bench/), not of anyone's speed.

Benchmarks are not tests: nothing here asserts a time, a rate or a latency.
What is asserted is that the load generator does and counts exactly what it
was asked to (a small op budget split over two client processes), that every
reply's error code and content are checked (a run with errors says so and is
not ok), and that the percentile / ratio / table code is right.

The ensemble mode (``python -m bench.compare --ensemble 3``) is checked the
same way: the server CPU per op read from /proc against child processes that
burn a known amount of CPU, the ensemble's zoo.cfg files and myid, sessions
spread over the members, the paced workload's exact counts and pacing, and
one tiny end-to-end run of zabpy ensembles that must leave no process behind.

The load tests run against a real server started by the bench's own launcher
(``bench.servers.Server``): Java ZooKeeper from Debian's package (skipped,
with the reason, when it is not installed) and zabpy's ``python -m zabpy
server`` (skipped only while that command does not exist).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import chart, compare, procfs, stats
from bench.client import Counters, Session
from bench.compare import render_tables, summarize
from bench.compare_ensemble import render_ensemble, summarize_ensemble
from bench.ensemble import write_ensemble_cfgs
from bench.loadgen import LoadConfig, WorkerCtx, run_workload
from bench.servers import (JAVA_JARS, Server, ensure_java_zookeeper, free_port, java_command,
                           probe, write_zoo_cfg, zabpy_command)
from bench.session_workloads import WatchStorm
from bench.workloads import children_count
from zabpy.jute import Err, OpCode
from zabpy.jute import records as R

JAVA_MISSING = shutil.which("java") is None or not all(Path(j).exists() for j in JAVA_JARS)


# ---- pure code ------------------------------------------------------------------

def test_percentile_nearest_rank():
    vals = list(range(1, 101))
    assert stats.percentile(vals, 50) == 50
    assert stats.percentile(vals, 99) == 99
    assert stats.percentile(vals, 100) == 100
    assert stats.percentile(vals, 0) == 1
    assert stats.percentile([7], 99) == 7
    assert stats.percentile([1, 2, 3], 50) == 2
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile(vals, 101)


def test_median_ratio_split():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([None, 5, None]) == 5
    assert stats.median([]) is None
    assert stats.ratio(50, 100) == 0.5
    assert stats.ratio(1, 0) is None and stats.ratio(None, 1) is None
    assert stats.format_ratio(0.5) == "0.50x" and stats.format_ratio(None) == "-"
    parts = [stats.split_evenly(10, 3, i) for i in range(3)]
    assert parts == [4, 3, 3] and sum(parts) == 10


def test_summarize_latencies_ns_to_ms():
    s = stats.summarize_latencies([3_000_000, 1_000_000, 2_000_000, 100_000_000])
    assert s == {"p50_ms": 2.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert stats.summarize_latencies([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}


def test_format_table_aligns_and_checks_width():
    text = stats.format_table(["name", "n"], [["a", 1.0], ["long name", 12345.0], ["x", None]])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "n"]
    assert lines[2].startswith("a ") and lines[2].endswith("1.00")
    assert lines[3].endswith("12,345") and lines[4].endswith("-")
    assert len({len(line) for line in lines[:2]}) == 1
    with pytest.raises(ValueError):
        stats.format_table(["a", "b"], [["only one"]])


def test_summary_medians_and_ratio_table():
    def run(server, tput, p99, ok=True):
        return {"workload": "getData", "server": server, "throughput": tput, "p50_ms": 1.0,
                "p99_ms": p99, "server_cpu_cores": 1.0, "client_cpu": [0.1, 0.2], "ok": ok}
    runs = [run("java", 100, 4), run("java", 300, 6), run("java", 200, 5),
            run("zabpy", 50, 10), run("zabpy", 150, 30, ok=False), run("zabpy", 100, 20)]
    samples = {"java": {"start_s": [1, 3], "idle_rss_bytes": [2**20]},
               "zabpy": {"start_s": [0.5], "idle_rss_bytes": [2**21]}}
    summary = summarize(runs, samples, {"java": {"loaded_rss_bytes": 4 * 2**20, "restart_s": 2.0,
                                                 "znodes": 100}})
    java, zab = summary["workloads"]["getData"]["java"], summary["workloads"]["getData"]["zabpy"]
    assert (java["throughput"], java["p99_ms"], java["failed"]) == (200, 5, 0)
    assert (zab["throughput"], zab["p99_ms"], zab["failed"], zab["runs"]) == (100, 20, 1, 3)
    assert java["client_cpu_max"] == 0.2
    assert summary["resources"]["java"]["start_s"] == 2
    text = render_tables(summary, ("java", "zabpy"))
    row = next(line for line in text.splitlines() if line.startswith("getData"))
    assert "0.50x" in row and "4.00x" in row and row.endswith("1/6")
    assert "2.00x" in next(line for line in text.splitlines() if line.startswith("idle RSS"))
    assert "client processes" not in text
    summary["client_check"] = {"java": {1: {"throughput": 10.0}, 2: {"throughput": 12.0}},
                               "zabpy": {1: {"throughput": 5.0}}}
    lines = render_tables(summary, ("java", "zabpy")).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("client processes"))
    assert lines[i + 2].split() == ["1", "10.0", "5.00"]
    assert lines[i + 3].split() == ["2", "12.0", "-"]


def test_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional 'bench' extra")
    summary = {"workloads": {"getData": {"java": {"throughput": 100.0, "p99_ms": 2.0},
                                         "zabpy": {"throughput": 50.0, "p99_ms": 4.0}},
                             "create": {"java": {"throughput": 10.0, "p99_ms": 20.0}}}}
    assert chart.draw(summary, tmp_path / "c.png", ("java", "zabpy"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ensure_java_installs_debian_package_when_missing(tmp_path):
    jar = tmp_path / "zookeeper.jar"
    commands: list[list[str]] = []

    def fake_apt(cmd, env=None, check=False):  # "installs" by creating the jar
        commands.append(cmd)
        jar.write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0)
    said: list[str] = []
    done = ensure_java_zookeeper(said.append, fake_apt, (str(jar),), lambda: "/usr/bin/java")
    assert commands == [["apt-get", "install", "-y", "zookeeper", "default-jre-headless"]]
    assert len(done) == 1 and "installed Debian's zookeeper package" in done[0]
    assert any("missing" in line for line in said) and done[0] in said[-1]
    # already there: nothing is run, and it says so
    said.clear()
    assert ensure_java_zookeeper(said.append, fake_apt, (str(jar),), lambda: "/usr/bin/java") == []
    assert len(commands) == 1 and "nothing to install" in said[0]


def test_counters_merge_and_failures():
    a, b = Counters(ops_sent=3, replies=3, ok=2), Counters(ops_sent=2, replies=1, ok=1)
    a.add_error(Err.NONODE)
    b.add_error(Err.NONODE)
    a.merge(b)
    assert (a.ops_sent, a.replies, a.errors) == (5, 4, {Err.NONODE: 2})
    text = "; ".join(a.failures())
    assert "2 replies with error NONODE (-101)" in text and "5 requests sent but 4 replies" in text
    assert Counters.from_dict(a.to_dict()) == a
    assert Counters(ops_sent=1, replies=1, ok=1).failures() == []


def test_watch_storm_counts_and_throughput_from_fire_time():
    storm = WatchStorm()
    cfg = LoadConfig(watchers=5, storm_rounds=2)
    assert storm.count_problems(cfg, Counters(watch_events=10)) == []
    assert storm.count_problems(cfg, Counters(watch_events=9)) == [
        "9 watch events, expected 10"]
    # two processes, two rounds: a round lasts as long as its slowest process
    results = [{"extra": {"round_fire_ns": [100_000_000, 300_000_000]}},
               {"extra": {"round_fire_ns": [200_000_000, 100_000_000]}}]
    assert storm.throughput(results, Counters(watch_events=10), None) == pytest.approx(20.0)
    assert storm.ops_done(Counters(watch_events=10, ok=3)) == 10


# ---- against real servers -------------------------------------------------------

def _zabpy_unavailable() -> str | None:
    r = subprocess.run([sys.executable, "-m", "zabpy", "server", "--help"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        return f"`python -m zabpy server --help` fails: {(r.stderr or r.stdout)[-300:]}"
    return None


@pytest.fixture(scope="module", params=["java", "zabpy"])
def server(request, tmp_path_factory):
    name = request.param
    if name == "java" and JAVA_MISSING:
        pytest.skip("Java ZooKeeper is not installed (java or /usr/share/java/zookeeper.jar "
                    "missing); `apt-get install zookeeper` or run python -m bench.compare")
    if name == "zabpy" and (why := _zabpy_unavailable()):
        pytest.fail(f"zabpy server does not run: {why}")
    home = tmp_path_factory.mktemp(name)
    port = free_port()
    cfg = write_zoo_cfg(home, port)
    s = Server(name, home, port, java_command(cfg) if name == "java" else zabpy_command(cfg))
    s.start()
    try:
        s.wait_ready(30)
        yield s
    finally:
        s.stop()


def _cfg(s: Server, **kw) -> LoadConfig:
    base = dict(port=s.port, procs=2, reply_timeout_s=20, run_timeout_s=25, children=500,
                watchers=50, storm_rounds=2)
    return LoadConfig(**(base | kw))


def _exact(r: dict, n: int) -> None:
    c = r["counters"]
    assert r["problems"] == [] and r["ok"]
    assert (c["ops_sent"], c["replies"], c["ok"], r["samples"]) == (n, n, n, n)
    assert c["errors"] == {} and c["bad_replies"] == 0 and c["protocol_errors"] == 0
    assert c["connection_lost"] == 0
    assert c["sessions_opened"] == c["sessions_closed"]


async def _children(port: int, path: str) -> int | None:
    sess = await Session.open("127.0.0.1", port, Counters())
    try:
        return await children_count(sess, path)
    finally:
        await sess.close()


@pytest.mark.timeout(30)
def test_server_launcher_probe(server):
    assert probe("127.0.0.1", server.port)
    assert server.rss_bytes() > 0
    assert not probe("127.0.0.1", free_port(), 0.5)


@pytest.mark.timeout(30)
def test_create_and_read_counts_are_exact(server):
    r = run_workload("create", _cfg(server, ops=200, run_id="exact"), server.pid)
    _exact(r, 200)
    assert r["ops"] == 200
    assert asyncio.run(_children(server.port, "/bench/create/exact")) == 200
    for name in ("getData", "exists", "setData", "mixed"):
        _exact(run_workload(name, _cfg(server, ops=200), server.pid), 200)
    _exact(run_workload("getChildren_10k", _cfg(server, ops=10), server.pid), 10)
    _exact(run_workload("value_1mib", _cfg(server, ops=8), server.pid), 8)


@pytest.mark.timeout(30)
def test_watch_storm_counts_every_event(server):
    r = run_workload("watch_storm", _cfg(server), server.pid)
    c = r["counters"]
    assert r["problems"] == [] and r["ok"]
    assert c["watch_events"] == 50 * 2 and r["ops"] == 100 and r["samples"] == 100
    # per round: 50 arming exists + 1 setData, all answered without error
    assert (c["ops_sent"], c["replies"], c["ok"]) == (102, 102, 102)
    assert c["sessions_opened"] == c["sessions_closed"] == 51
    assert c["errors"] == {} and c["bad_replies"] == 0


@pytest.mark.timeout(30)
def test_session_churn_counts_and_leaves_no_ephemerals(server):
    r = run_workload("session_churn", _cfg(server, ops=20, run_id="churn"), server.pid)
    _exact(r, 20)
    assert r["counters"]["sessions_opened"] == r["counters"]["sessions_closed"] == 20
    assert asyncio.run(_children(server.port, "/bench/churn/churn")) == 0


@pytest.mark.timeout(30)
def test_idle_sessions_are_kept_alive_with_pings(server):
    async def idle() -> Counters:
        ctx = WorkerCtx(_cfg(server, timeout_ms=4000), 0, None, None, None, None)
        (sess,) = await ctx.open_sessions(1)
        pinger = asyncio.create_task(ctx.keep_alive())
        try:  # pings start after a third of the negotiated timeout without traffic
            while ctx.counters.ping_replies < 2:
                await asyncio.sleep(0.05)
        finally:
            pinger.cancel()
        await ctx.close_sessions([sess])
        return ctx.counters
    c = asyncio.run(asyncio.wait_for(idle(), 20))
    assert c.ping_replies >= 2 and c.pings_sent >= c.ping_replies
    assert c.connection_lost == 0 and c.protocol_errors == 0 and c.errors == {}
    assert c.sessions_opened == c.sessions_closed == 1


@pytest.mark.timeout(30)
def test_errors_are_counted_and_fail_the_run(server):
    async def missing() -> Counters:
        counters = Counters()
        sess = await Session.open("127.0.0.1", server.port, counters)
        sess.request(OpCode.getData, R.GetDataRequest(path="/no/such", watch=False).to_bytes())
        await sess.wait_below(1, 10)
        await sess.close()
        return counters
    c = asyncio.run(missing())
    assert c.errors == {Err.NONODE: 1} and c.ok == 0 and c.replies == 1
    assert "1 replies with error NONODE (-101)" in c.failures()
    # Values of the wrong size fail the content check: the run is not ok and says why.
    run_workload("getData", _cfg(server, ops=10), server.pid)
    r = run_workload("getData", _cfg(server, ops=10, value_bytes=7), server.pid)
    assert not r["ok"] and r["counters"]["bad_replies"] == 10
    assert any("content check" in p for p in r["problems"])


# ---- ensemble mode ----------------------------------------------------------------

# A child that burns SPIN_S of CPU in itself and in a forked grandchild, says so
# on stdout, and then blocks until its stdin closes.
SPIN_S = 0.3
_SPINNER = f"""
import os, sys, time
def spin(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass
child = os.fork()
spin({SPIN_S})
os.write(1, b"spun\\n")
sys.stdin.read()
"""


def test_us_per_op():
    assert stats.us_per_op(0.5, 1000) == 500.0
    assert stats.us_per_op(None, 10) is None and stats.us_per_op(1.0, 0) is None


@pytest.mark.timeout(30)
def test_server_cpu_per_op_from_proc_counts_the_whole_tree():
    busy = subprocess.Popen([sys.executable, "-c", _SPINNER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, start_new_session=True)
    try:
        assert busy.stdout.readline() == b"spun\n"  # the grandchild or the child
        assert busy.stdout.readline() == b"spun\n"  # and the other one
        tree = procfs.cpu_seconds(busy.pid)
        both = procfs.cpu_seconds_total([busy.pid, idle.pid])
        assert len(procfs.descendants(busy.pid)) == 2
        assert 2 * SPIN_S - 0.03 <= tree <= both
        assert both - tree < 0.2  # an idle interpreter: its start-up only
        assert stats.us_per_op(both, 1000) >= (2 * SPIN_S - 0.03) * 1000
    finally:
        for p in (busy, idle):
            p.stdin.close()
            p.wait(10)
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass


def _cfg_keys(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_ensemble_configs_have_distinct_ports_and_myid(tmp_path):
    members = write_ensemble_cfgs(tmp_path, 3, tick_ms=2000)
    ports = [p for m in members for p in (m.client_port, m.quorum_port, m.election_port)]
    assert len(set(ports)) == 9
    servers = None
    for m in members:
        keys = _cfg_keys(m.cfg)
        assert (keys["tickTime"], keys["forceSync"], keys["clientPortAddress"]) == \
            ("2000", "yes", "127.0.0.1")
        assert keys["clientPort"] == str(m.client_port)
        assert keys["4lw.commands.whitelist"] == "*"
        assert (Path(keys["dataDir"]) / "myid").read_text().strip() == str(m.sid)
        mine = {k: v for k, v in keys.items() if k.startswith("server.")}
        assert mine[f"server.{m.sid}"] == f"127.0.0.1:{m.quorum_port}:{m.election_port}"
        assert servers in (None, mine)  # every member lists the same ensemble
        servers = mine
    assert [m.sid for m in members] == [1, 2, 3] and len(servers) == 3
    assert len({m.home for m in members}) == 3


def test_sessions_are_spread_over_members():
    ctx = WorkerCtx(LoadConfig(port=1, ports=(1, 2, 3), procs=2), 1, None, None, None, None)
    assert [ctx.port_for(ctx.global_index(i, 4)) for i in range(4)] == [2, 3, 1, 2]
    alone = WorkerCtx(LoadConfig(port=7), 0, None, None, None, None)
    assert alone.port_for(5) == 7


def test_ensemble_summary_and_tables():
    runs = [{"workload": "create", "server": s, "throughput": t, "p50_ms": 1.0, "p99_ms": 2.0,
             "server_cpu_cores": 1.0, "server_cpu_us_per_op": us, "client_cpu": [0.1],
             "ok": True} for s, t, us in (("java", 100.0, 40.0), ("zabpy", 50.0, 120.0))]
    timings = {"java": {"cold_start_s": [2.0, 4.0, 3.0], "failover_s": [0.5], "problems": []},
               "zabpy": {"cold_start_s": [1.5], "failover_s": [1.0, 2.0], "problems": []}}
    samples = {"java": {"start_s": [3.0], "idle_rss_bytes": [100 * 2**20]},
               "zabpy": {"start_s": [2.0], "idle_rss_bytes": [50 * 2**20]}}
    summary = summarize_ensemble(runs, samples, timings)
    assert summary["resources"]["java"]["cold_start_s"] == 3.0
    assert summary["resources"]["zabpy"]["failover_s"] == 1.5
    lines = render_ensemble(summary, ("java", "zabpy"), 3).splitlines()
    row: dict[str, str] = {}
    for line in lines:  # the first line per label: the workload table comes before CPU
        row.setdefault(line.split("  ")[0].strip(), line)
    assert "0.50x" in row["create"] and row["create"].endswith("0/2")
    assert row["cold start of 3 to first write (s)"].endswith("0.50x")
    assert row["kill -9 leader to next write (s)"].endswith("3.00x")
    assert row["idle RSS of 3 members (MiB)"].endswith("0.50x")
    cpu = next(line for line in lines if line.startswith("create") and "3.00x" in line)
    assert cpu.split()[1:4] == ["40.0", "120.0", "3.00x"]


@pytest.mark.timeout(30)
def test_paced_workload_counts_are_exact_and_paced(server):
    # 2 processes x 8 sessions, 10 requests each at 800/s in all: a session sends
    # every 20 ms, so its last request cannot go out before 180 ms.
    r = run_workload("paced_mixed", _cfg(server, ops=160, rate_ops_s=800), server.pid)
    _exact(r, 160)
    assert r["wall_s"] >= 0.18
    assert r["server_cpu_s"] is not None and r["server_cpu_us_per_op"] is not None


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and text in Path(f"/proc/{name}/cmdline").read_bytes().decode(
                    errors="replace"):
                found.append(int(name))
        except OSError:
            pass
    return found


@pytest.mark.timeout(60)
def test_compare_ensemble_end_to_end(tmp_path, capsys):
    # zabpy only: it takes about 20 s (Java's JVMs take 30 s; the bench runs them).
    if why := _zabpy_unavailable():
        pytest.fail(f"zabpy server does not run: {why}")
    name = "zabpy"
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    rc = compare.main(["--ensemble", "3", "--servers", name, "--quick", "--rounds", "1",
                       "--runs", "1", "--duration", "0.3", "--workloads", "create",
                       "--workdir", str(work), "--out", str(out)])
    printed = capsys.readouterr().out
    assert _processes_mentioning(str(work)) == []
    assert rc == 0, printed
    result = json.loads((out / "results.json").read_text())
    (run,) = result["runs"]
    assert run["ok"] and run["members"] == 3 and run["server_cpu_us_per_op"] > 0
    res = result["summary"]["resources"][name]
    assert res["cold_start_s"] > 0 and res["failover_s"] > 0
    assert "kill -9 leader to next write (s)" in printed


def test_scale_data_writes_the_tree_a_server_loads(tmp_path):
    """bench.scale_data writes bench.scale's tree as one snapshot file: a
    zabpy server starts from it and serves it (stats as creates would have
    left them), and its digest is the one the tree's nodes give."""
    from bench.scale_data import VALUE, build_datadir, leaf_path
    from zabpy.storage import deserialize_snapshot, tree_digest
    from zabpy.testing import ZabpyServer
    from zabpy.tree.datatree import DataTree

    zxid, _ = build_datadir(tmp_path / "data", 2500, wide=30)
    tree = DataTree()
    snap = tmp_path / "data" / "version-2" / f"snapshot.{zxid:x}"
    contents = deserialize_snapshot(snap.read_bytes(), tree)
    assert contents.digest == tree_digest(tree) and contents.digest_zxid == zxid
    assert tree.nodes[leaf_path(2499)].data == VALUE and len(tree.nodes["/wide"].children) == 30
    with ZabpyServer(data_dir=str(tmp_path / "data")) as zk:
        from kazoo.client import KazooClient
        c = KazooClient(hosts=zk.hosts)
        c.start(timeout=10)
        try:
            assert len(c.get_children("/scale/b2")) == 500
            data, stat = c.get("/scale/b1")
            assert (stat.cversion, stat.numChildren, stat.pzxid) == \
                (1000, 1000, c.exists(leaf_path(1999)).czxid)
            assert c.exists("/wide").pzxid == zxid
        finally:
            c.stop()
            c.close()


def test_scale_data_log_form_replays_to_the_tree(tmp_path):
    """bench.scale_data --log: an empty snapshot.0 and a log of one session's
    creates of bench.scale's tree; a restore replays it into that tree, with
    the stats creates leave and the session closed again."""
    from bench.scale_data import VALUE, build_logdir, leaf_path
    from zabpy.storage import TxnStore
    from zabpy.tree.datatree import DataTree

    last, _ = build_logdir(tmp_path / "data", 2500)
    tree = DataTree()
    store = TxnStore(str(tmp_path / "data"))
    sessions = store.restore(tree)
    store.close()
    assert store.last_restore.replayed == last and sessions == {}
    assert len(tree.nodes) == 4 + 2 + 3 + 2500 and tree.nodes[leaf_path(2499)].data == VALUE
    b1 = tree.nodes["/scale/b1"]
    assert (b1.cversion, b1.child_count(), b1.pzxid) == \
        (1000, 1000, tree.nodes[leaf_path(1999)].czxid)


def test_startup_runs_start_from_a_snapshot_of_n_znodes(tmp_path, capsys, monkeypatch):
    """bench.startup --snap-znodes N: every run starts from a copy of one
    data directory holding a snapshot of N znodes (plus bench.scale's
    parents) and no log."""
    from bench import startup

    from zabpy.storage.recovery import restore
    from zabpy.tree.datatree import DataTree

    seen = []
    measure = startup.measure_once

    def spy(name, home, cmd, data=None):
        tree = DataTree()
        vdir = str(data / "version-2")
        result = restore(vdir, vdir, tree)
        seen.append((tree.node_count(), result.replayed))
        return measure(name, home, cmd, data)

    monkeypatch.setattr(startup, "measure_once", spy)
    out_json = tmp_path / "s.json"
    assert startup.main(["--reps", "2", "--servers", "zabpy", "--snap-znodes", "3000",
                         "--json", str(out_json)]) == 0
    assert "snapshot of 3,000 znodes" in capsys.readouterr().out
    assert len(seen) == 2 and all(n > 3000 and replayed == 0 for n, replayed in seen), seen
    wall = json.loads(out_json.read_text())["samples"]["zabpy"]["wall_s"]
    assert len(wall) == 2 and all(w > 0 for w in wall)
