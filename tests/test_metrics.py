"""Prometheus /metrics (GitHub issue #6), scraped over HTTP and parsed by
prometheus_client's own text parser.

Names are those of ZooKeeper 3.8's PrometheusMetricsProvider: the gauges of
ZooKeeperServer.registerMetrics, ServerMetrics' summaries with quantile
labels (basic: 0.5; advanced: 0.5, 0.9, 0.99) plus _count and _sum.
"""

from __future__ import annotations

import urllib.request

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from zabpy.admin.metrics import PROMETHEUS_PROVIDER, ServerMetrics, Summary
from zabpy.testing import ZabpyServer, free_port

GAUGES = ["znode_count", "watch_count", "ephemerals_count", "num_alive_connections",
          "outstanding_requests", "packets_received", "packets_sent", "avg_latency",
          "min_latency", "max_latency", "approximate_data_size", "global_sessions",
          "local_sessions", "uptime", "open_file_descriptor_count", "max_file_descriptor_count"]


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels) -> float:
    for family in families.values():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise KeyError((name, labels))


def metrics_server(**extra) -> ZabpyServer:
    return ZabpyServer(metrics_provider_class=PROMETHEUS_PROVIDER, metrics_http_port=free_port(),
                       metrics_http_host="127.0.0.1", **extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with metrics_server(data_dir=str(tmp_path_factory.mktemp("metrics-data"))) as zk:
        client = KazooClient(hosts=zk.hosts)
        client.start()
        client.ensure_path("/m/n")
        client.create("/m/eph", ephemeral=True)
        client.get("/m", watch=lambda e: None)
        zk.client = client
        yield zk
        client.stop()
        client.close()


def test_gauges_read_the_live_server(server):
    fam = scrape(server.runtime.ops.metrics_port)
    for name in GAUGES:
        assert fam[name].type == "gauge", name
    tree = server.runtime.server.tree
    assert sample(fam, "znode_count") == tree.node_count()
    assert sample(fam, "ephemerals_count") == 1
    assert sample(fam, "watch_count") == 1
    assert sample(fam, "num_alive_connections") == 1
    assert sample(fam, "global_sessions") == 1
    assert sample(fam, "packets_received") > 0
    server.client.create("/m/more")
    assert sample(scrape(server.runtime.ops.metrics_port), "znode_count") == tree.node_count()


def test_summaries_have_zookeepers_quantiles(server):
    fam = scrape(server.runtime.ops.metrics_port)
    assert fam["fsynctime"].type == "summary"
    assert sample(fam, "fsynctime_count") >= 1  # every write was fsynced
    sample(fam, "fsynctime", quantile="0.5")
    with pytest.raises(KeyError):  # basic summaries carry the median only
        sample(fam, "fsynctime", quantile="0.9")
    for q in ("0.5", "0.9", "0.99"):  # advanced ones three quantiles
        sample(fam, "jvm_pause_time_ms", quantile=q)
    assert sample(fam, "dbinittime_count") == 1
    for name in ("snapshottime", "readlatency", "updatelatency", "election_time"):
        assert fam[name].type == "summary"


def test_counters_and_process_metrics(server):
    fam = scrape(server.runtime.ops.metrics_port)
    assert sample(fam, "bytes_received_count") > 0  # ZooKeeper's name, no _total
    assert sample(fam, "snap_count") >= 0
    assert fam["event_loop_pause_warn"].type == "counter"
    assert sample(fam, "event_loop_pause_warn_total") == 0
    assert "process_cpu_seconds" in fam and "python_info" in fam


def test_each_server_has_its_own_registry(server):
    with metrics_server() as other:
        mine = scrape(server.runtime.ops.metrics_port)
        theirs = scrape(other.runtime.ops.metrics_port)
        assert sample(theirs, "ephemerals_count") == 0
        assert sample(mine, "ephemerals_count") == 1


def test_no_exporter_without_the_prometheus_provider():
    with ZabpyServer() as zk:
        assert zk.runtime.ops.prometheus is None
        assert zk.runtime.metrics is not None  # mntr still has ServerMetrics


def test_summary_arithmetic():
    s = Summary("x", advanced=True)
    for v in range(1, 101):
        s.observe(v)
    assert (s.count, s.total, s.min, s.max) == (100, 5050, 1, 100)
    assert s.quantile(0.5) == 51 and s.quantile(0.99) == 100
    values = dict(s.mntr_values())
    assert values["avg_x"] == 50.5 and values["p999_x"] == 100
    s.reset()
    assert s.count == 0 and s.quantile(0.5) == 0


def test_srst_resets_server_metrics():
    m = ServerMetrics()
    m.observe("fsynctime", 3)
    m.count("snap_count")
    m.reset()
    assert m.summaries["fsynctime"].count == 0 and m.counters["snap_count"] == 0
