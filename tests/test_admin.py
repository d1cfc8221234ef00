"""The HTTP AdminServer (GitHub issue #6), through a real HTTP client (urllib).

Expected names and fields come from Debian's Java ZooKeeper 3.8.0, queried
with curl on /commands and /commands/<name> (standalone, and a three-server
ensemble for leader / voting_view / zabstate). The ensemble answers are
checked against a fake runtime offering ``quorum_view()`` (zabpy's standalone
runtime is the only one so far), through the same command table.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient

from zabpy.admin.commands import QuorumView, run_command, AdminContext
from zabpy.admin.fourletter import render_four_letter_word
from zabpy.admin.http import to_jackson_json
from zabpy.runtime.config import ServerSpec
from zabpy.testing import ZabpyServer, free_port

# /commands of ZooKeeper 3.8.0, in its order.
JAVA_COMMANDS = [
    "configuration", "connection_stat_reset", "connections", "dirs", "dump", "environment",
    "get_trace_mask", "hash", "initial_configuration", "is_read_only", "last_snapshot", "leader",
    "monitor", "observer_connection_stat_reset", "observers", "ruok", "server_stats",
    "set_trace_mask", "stat_reset", "stats", "system_properties", "voting_view",
    "watch_summary", "watches", "watches_by_path", "zabstate"]

# Field names of ZooKeeper 3.8.0's answers (standalone), command/error excluded.
JAVA_FIELDS = {
    "configuration": ["client_port", "data_dir", "data_log_dir", "tick_time", "max_client_cnxns",
                      "min_session_timeout", "max_session_timeout", "server_id",
                      "client_port_listen_backlog"],
    "dirs": ["datadir_size", "logdir_size"],
    "dump": ["expiry_time_to_session_ids", "session_id_to_ephemeral_paths"],
    "is_read_only": ["read_only"],
    "last_snapshot": ["zxid", "timestamp"],
    "watch_summary": ["num_connections", "num_paths", "num_total_watches"],
    "watches": ["session_id_to_watched_paths"],
    "watches_by_path": ["path_to_session_ids"],
    "hash": ["digests"],
    "get_trace_mask": ["tracemask"],
    "initial_configuration": ["initial_configuration"],
    "voting_view": ["current_config"],
    "zabstate": ["voting", "zabstate"],
    "observers": ["synced_observers", "observers"],
    "ruok": [],
    "server_stats": ["version", "read_only", "server_stats", "client_response", "node_count"],
    "stats": ["version", "read_only", "server_stats", "client_response", "node_count",
              "connections", "secure_connections"],
    "connections": ["connections", "secure_connections"],
}
JAVA_SERVER_STATS = {
    "packets_sent", "packets_received", "fsync_threshold_exceed_count", "client_response_stats",
    "uptime", "data_dir_size", "log_dir_size", "provider_null", "server_state",
    "last_processed_zxid", "outstanding_requests", "avg_latency", "max_latency", "min_latency",
    "num_alive_client_connections", "auth_failed_count", "non_mtlsremote_conn_count",
    "non_mtlslocal_conn_count"}
JAVA_CONNECTION = [
    "remote_socket_address", "interest_ops", "outstanding_requests", "packets_received",
    "packets_sent", "session_id", "last_operation", "established", "session_timeout",
    "last_cxid", "last_zxid", "last_response_time", "last_latency", "min_latency",
    "avg_latency", "max_latency"]


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def command(port: int, name: str) -> dict:
    status, ctype, body = get(port, f"/commands/{name}")
    assert status == 200 and ctype.startswith("application/json")
    return json.loads(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("admin-data")
    with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1",
                     data_dir=str(data)) as zk:
        client = KazooClient(hosts=zk.hosts)
        client.start()
        client.ensure_path("/a/b")
        client.create("/eph", b"x", ephemeral=True)
        client.exists("/missing", watch=lambda e: None)
        client.get("/a", watch=lambda e: None)
        zk.admin_port = port
        zk.client = client
        yield zk
        client.stop()
        client.close()


def test_command_list_links_every_primary_name(server):
    status, ctype, body = get(server.admin_port, "/commands")
    assert status == 200 and ctype.startswith("text/html")
    assert body == "".join(f'<a href="/commands/{n}">{n}</a>\n<br/>\n' for n in JAVA_COMMANDS)


def test_every_command_answers_with_zookeepers_fields(server):
    for name in JAVA_COMMANDS:
        body = command(server.admin_port, name)
        assert body["command"] == name
        keys = list(body)
        if name == "leader":  # standalone: ZooKeeper 3.8 answers with an error
            assert body == {"error": "server is not initialized", "command": "leader"}
            continue
        assert body["error"] is None, name
        assert keys[-2:] == ["command", "error"]
        if name in JAVA_FIELDS:
            assert keys[:-2] == JAVA_FIELDS[name], name


def test_state_is_reported(server):
    port, tree = server.admin_port, server.runtime.server.tree
    server.client.create("/written")  # one more fsync, whatever srst did before
    sid = server.client.client_id[0]
    watches = command(port, "watches")["session_id_to_watched_paths"]
    assert watches == {str(sid): ["/a", "/missing"]}
    by_path = command(port, "watches_by_path")["path_to_session_ids"]
    assert by_path == {"/a": [sid], "/missing": [sid]}
    assert command(port, "watch_summary")["num_total_watches"] == 2
    dump = command(port, "dump")
    assert dump["session_id_to_ephemeral_paths"] == {str(sid): ["/eph"]}
    assert [sid] in dump["expiry_time_to_session_ids"].values()
    conns = command(port, "connections")["connections"]
    assert [list(c) for c in conns] == [JAVA_CONNECTION]
    assert conns[0]["session_id"] == sid and conns[0]["session_timeout"] > 0
    stats = command(port, "server_stats")
    assert set(stats["server_stats"]) == JAVA_SERVER_STATS
    assert stats["node_count"] == tree.node_count()
    assert stats["server_stats"]["last_processed_zxid"] == tree.last_processed_zxid
    conf = command(port, "configuration")
    assert conf["client_port"] == server.port and conf["data_dir"].endswith("version-2")
    mntr = command(port, "mntr")  # an alias answers as its primary name
    assert mntr["command"] == "monitor"
    assert mntr["znode_count"] == tree.node_count() and mntr["ephemerals_count"] == 1
    assert mntr["server_state"] == "standalone" and mntr["cnt_fsynctime"] >= 1
    assert command(port, "environment")["zookeeper.version"].startswith("3.8.0")
    digest = command(port, "hash")["digests"]
    assert digest[0]["zxid"] == tree.last_processed_zxid


def test_resets(server):
    port = server.admin_port
    server.client.get("/a")
    assert command(port, "server_stats")["server_stats"]["packets_received"] > 0
    assert command(port, "stat_reset")["error"] is None
    assert command(port, "server_stats")["server_stats"]["packets_received"] == 0
    assert command(port, "crst")["command"] == "connection_stat_reset"
    assert command(port, "connections")["connections"][0]["packets_received"] == 0


def test_unknown_command_paths_and_methods(server):
    port = server.admin_port
    assert command(port, "nosuch") == {"command": "nosuch", "error": "Unknown command: nosuch"}
    assert get(port, "/")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/commands/ruok", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_jackson_layout():
    text = to_jackson_json({"a": [{"b": 1}], "c": [], "d": {}, "e": [1, 2], "f": None})
    assert text == ('{\n  "a" : [ {\n    "b" : 1\n  } ],\n  "c" : [ ],\n  "d" : { },\n'
                    '  "e" : [ 1, 2 ],\n  "f" : null\n}')


def test_custom_command_url():
    port = free_port()
    with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1",
                     admin_command_url="/zk") as zk:
        status, _, body = get(port, "/zk/ruok")
        assert status == 200 and json.loads(body)["command"] == "ruok"
        assert get(port, "/commands/ruok")[0] == 404
        assert zk.runtime.ops.admin_port == port


def test_busy_admin_port_is_a_warning_not_a_failure(caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="zabpy.admin"):
            with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1") as zk:
                assert zk.runtime.ops.admin is None
                client = KazooClient(hosts=zk.hosts)
                client.start()
                client.create("/x")
                client.stop()
                client.close()
    assert any("Problem starting AdminServer" in r.getMessage() for r in caplog.records)


def test_admin_server_is_off_in_tests_by_default():
    with ZabpyServer() as zk:
        assert zk.runtime.ops.admin is None and zk.runtime.ops.prometheus is None


# ---- ensemble members, through a fake runtime ----------------------------------


class FakeQuorumRuntime:
    """A ServerRuntime stand-in: a real in-process server's state plus a quorum view."""

    def __init__(self, rt, view: QuorumView):
        self._rt, self._view = rt, view
        self.config = rt.config
        self.server, self.port, self.metrics = rt.server, rt.port, rt.metrics

    def quorum_view(self) -> QuorumView:
        return self._view

    def protocols(self):
        return self._rt.protocols()

    def data_dir_sizes(self):
        return self._rt.data_dir_sizes()


@pytest.fixture
def ensemble_member(server):
    import dataclasses
    rt = server.runtime
    servers = {i: ServerSpec(i, "127.0.0.1", 3000 + i, 4000 + i) for i in (1, 2, 3)}
    cfg = dataclasses.replace(rt.config, servers=servers, myid=3, init_limit=10, sync_limit=5)

    def make(state: str) -> FakeQuorumRuntime:
        view = QuorumView(my_id=3, server_state=state, leader_id=3, leader_ip="127.0.0.1",
                          peer_state="leading - broadcast" if state == "leader"
                          else "following - broadcast", zab_state="broadcast",
                          last_zxid=0x100000005, learners=2, synced_followers=2, quorum_size=3)
        fake = FakeQuorumRuntime(rt, view)
        fake.config = cfg
        return fake
    return lambda state: server.call(lambda: make(state))


def test_ensemble_leader_answers(server, ensemble_member):
    fake = ensemble_member("leader")
    ask = lambda name: server.call(run_command, name, AdminContext(fake))  # noqa: E731
    assert ask("leader") == {"is_leader": True, "leader_id": 3, "leader_ip": "127.0.0.1",
                             "command": "leader", "error": None}
    z = ask("zabstate")
    assert list(z)[:2] == ["myid", "is_leader"]
    assert (z["zab_epoch"], z["zab_counter"], z["last_zxid"]) == (1, 5, "0x100000005")
    assert z["quorum_address"]["one"] == "127.0.0.1:3003"
    view = ask("voting_view")["current_config"]
    assert list(view) == ["1", "2", "3"]
    assert view["1"] == {"server_addresses": ["127.0.0.1:3001"],
                         "election_addresses": ["127.0.0.1:4001"], "client_address": "",
                         "learner_type": "participant"}
    assert ask("configuration")["server_id"] == 3
    mntr = ask("monitor")
    assert mntr["peer_state"] == "leading - broadcast" and mntr["learners"] == 2
    assert mntr["quorum_size"] == 3 and mntr["synced_followers"] == 2
    assert "proposal_stats" in ask("server_stats")
    srvr = server.call(render_four_letter_word, "srvr", AdminContext(fake))
    assert "Mode: leader\n" in srvr
    assert srvr.endswith("Proposal sizes last/min/max: -1/-1/-1\n")


def test_ensemble_follower_answers(server, ensemble_member):
    fake = ensemble_member("follower")
    ask = lambda name: server.call(run_command, name, AdminContext(fake))  # noqa: E731
    assert ask("leader")["is_leader"] is False
    mntr = ask("monitor")
    assert mntr["server_state"] == "follower" and "learners" not in mntr
    assert "synced_observers" in mntr
    assert "proposal_stats" not in ask("server_stats")
