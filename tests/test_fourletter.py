"""Four-letter words: text layout of ZooKeeper 3.8.0 (Debian), checked line by line.

The JAVA_* transcripts were captured from Debian's ZooKeeper 3.8.0 with a
kazoo client holding an ephemeral node and watches; zabpy's answers must have
the same lines, in the same order, differing only in values.
"""

from __future__ import annotations

import re

import pytest
from kazoo.client import KazooClient

from zabpy.testing import ZabpyServer, four_letter_word

JAVA_SRVR = """Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC
Latency min/avg/max: 0/0.0/0
Received: 1
Sent: 1
Connections: 2
Outstanding: 0
Zxid: 0x5
Mode: standalone
Node count: 8
"""
JAVA_CONS_LINE = (" /127.0.0.1:46166[1](queued=0,recved=11,sent=12,sid=0x100000acaca0000,lop=SETD,"
                  "est=1795841682367,to=10000,lcxid=0xa,lzxid=0x5,lresp=719007,llat=4,minlat=0,"
                  "avglat=2,maxlat=13)")
# mntr's first lines in ZooKeeper 3.8.0, standalone.
JAVA_MNTR_KEYS = [
    "zk_version", "zk_server_state", "zk_ephemerals_count", "zk_num_alive_connections",
    "zk_avg_latency", "zk_outstanding_requests", "zk_znode_count", "zk_global_sessions",
    "zk_non_mtls_remote_conn_count", "zk_last_client_response_size", "zk_packets_sent",
    "zk_packets_received", "zk_max_client_response_size", "zk_connection_drop_probability",
    "zk_watch_count", "zk_auth_failed_count", "zk_min_latency", "zk_max_file_descriptor_count",
    "zk_approximate_data_size", "zk_open_file_descriptor_count", "zk_local_sessions",
    "zk_uptime", "zk_max_latency", "zk_outstanding_tls_handshake",
    "zk_min_client_response_size", "zk_non_mtls_local_conn_count"]

_CONN_FULL = re.compile(
    r" /[\d.]+:\d+\[1\]\(queued=\d+,recved=\d+,sent=\d+,sid=0x[0-9a-f]+,lop=\w+,est=\d+,"
    r"to=\d+,(lcxid=0x[0-9a-f]+,)?lzxid=0x[0-9a-f]+,lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,"
    r"maxlat=\d+\)")
_CONN_BRIEF = re.compile(r" /[\d.]+:\d+\[[01]\]\(queued=\d+,recved=\d+,sent=\d+\)")


@pytest.fixture(scope="module")
def server():
    with ZabpyServer() as zk:
        client = KazooClient(hosts=zk.hosts)
        client.start()
        client.ensure_path("/a/b")
        client.create("/eph", b"x", ephemeral=True)
        client.exists("/missing", watch=lambda e: None)
        zk.client = client
        zk.sid = f"0x{client.client_id[0]:x}"
        yield zk
        client.stop()
        client.close()


def word(zk, w: str) -> str:
    return four_letter_word(zk.host, zk.port, w)


def _labels(text: str) -> list[str]:
    return [line.split(":")[0] for line in text.splitlines()]


def test_srvr_has_javas_lines(server):
    text = word(server, "srvr")
    assert _labels(text) == _labels(JAVA_SRVR)
    assert text.endswith("\n") and "Mode: standalone\n" in text
    assert re.search(r"^Latency min/avg/max: \d+/\d+\.\d+/\d+$", text, re.M)
    assert f"Zxid: 0x{server.runtime.server.tree.last_processed_zxid:x}\n" in text


def test_stat_lists_clients_briefly(server):
    lines = word(server, "stat").split("\n")
    assert lines[1] == "Clients:"
    blank = lines.index("")
    assert blank > 2 and all(_CONN_BRIEF.fullmatch(x) for x in lines[2:blank])
    assert lines[blank + 1].startswith("Latency min/avg/max: ")


def test_cons_full_lines_and_trailing_blank_line(server):
    assert _CONN_FULL.fullmatch(JAVA_CONS_LINE)
    text = word(server, "cons")
    assert text.endswith(")\n\n")
    lines = text.split("\n")[:-2]
    assert any(_CONN_FULL.fullmatch(x) and server.sid in x for x in lines)
    assert any(_CONN_BRIEF.fullmatch(x) for x in lines)  # the asking connection, [0]


def test_mntr_keys_in_javas_order(server):
    text = word(server, "mntr")
    pairs = [line.split("\t") for line in text.splitlines()]
    assert all(len(p) == 2 for p in pairs)
    keys = [k for k, _ in pairs]
    assert keys[:len(JAVA_MNTR_KEYS)] == JAVA_MNTR_KEYS
    values = dict(pairs)
    assert values["zk_server_state"] == "standalone" and values["zk_ephemerals_count"] == "1"
    assert values["zk_avg_latency"].count(".") == 1  # a Java double
    for k in ("zk_avg_fsynctime", "zk_cnt_fsynctime", "zk_p99_readlatency",
              "zk_p50_jvm_pause_time_ms", "zk_snap_count"):
        assert k in values


def test_watch_words(server):
    sid = server.sid
    assert word(server, "wchs") == "1 connections watching 1 paths\nTotal watches:1\n"
    assert word(server, "wchc") == f"{sid}\n\t/missing\n\n"
    assert word(server, "wchp") == f"/missing\n\t{sid}\n\n"


def test_dump(server):
    text = word(server, "dump")
    assert re.match(r"SessionTracker dump:\nSession Sets \(1\)/\(1\):\n"
                    r"1 expire at \w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}:\n\t" + server.sid
                    + r"\nephemeral nodes dump:\nSessions with Ephemerals \(1\):\n"
                    + server.sid + r":\n\t/eph\nConnections dump:\nConnections Sets \(\d+\)/\(2\):\n",
                    text)


def test_small_words(server):
    assert word(server, "ruok") == "imok"
    assert word(server, "isro") == "rw"
    assert word(server, "gtmk") == "306"
    assert word(server, "dirs") == "datadir_size: 0\nlogdir_size: 0\n"
    envi = word(server, "envi")
    assert envi.startswith("Environment:\nzookeeper.version=3.8.0-")
    assert re.search(r"^[0-9a-f]+: -?\d+$", word(server, "hash"), re.M)
    assert word(server, "conf").startswith(f"clientPort={server.port}\n")


def test_resets(server):
    server.client.get("/a")
    assert word(server, "srst") == "Server stats reset.\n"
    assert "Received: 0\n" in word(server, "srvr")
    assert word(server, "crst") == "Connection stats reset.\n"
    line = next(x for x in word(server, "cons").splitlines() if server.sid in x)
    assert "recved=0,sent=0" in line


_CONS_FIELDS = re.compile(r"(\w+)=([^,)]*)")


def _cons_fields(port: int, session_id: int) -> dict[str, str]:
    line = next(x for x in four_letter_word("127.0.0.1", port, "cons").splitlines()
                if f"sid=0x{session_id & 0xFFFFFFFFFFFFFFFF:x}," in x)
    return dict(_CONS_FIELDS.findall(line))


def test_cons_response_stats_side_by_side(zk, java_zk, name):
    """cons per connection, as ServerCnxn.updateStatsForResponse keeps it:
    lop (SESS for the new session, PING, SETW for setWatches), lcxid (a
    negative xid is not kept), lzxid (the last reply header's zxid), the
    latency spread (min starts at 0, avg is an integer division), an auth
    packet counts no response, crst resets to NA / lzxid -1 / no lcxid.
    lresp is the elapsed-time clock on both sides; latencies are timings."""
    from conftest import RawBody, RawClient, create_req, encode_multi
    from zabpy.jute import records as R
    from zabpy.jute.constants import OpCode

    steps = [
        lambda c: None,
        lambda c: c.call(OpCode.create, create_req(name)),
        lambda c: c.call(OpCode.getData, R.GetDataRequest(f"{name}/none", False)),
        lambda c: c.drain_events(),
        lambda c: c.call(OpCode.setWatches, R.SetWatches(0, [], [], []), xid=-8),
        lambda c: c.call(OpCode.auth, R.AuthPacket(0, "digest", b"a:b"), xid=-4),
        lambda c: four_letter_word("127.0.0.1", c.port, "crst"),
        lambda c: c.call(OpCode.multi, RawBody(encode_multi(
            [(OpCode.check, R.CheckVersionRequest(name, -1))]))),
        lambda c: c.call(OpCode.getChildren2, R.GetChildren2Request(name, False)),
    ]
    seen = []
    for port in (zk.port, java_zk.port):
        c = RawClient(port)
        rows = []
        try:
            for step in steps:
                step(c)
                f = _cons_fields(port, c.session_id)
                if not rows:
                    base = int(f["lzxid"], 16)
                lat = [int(f[k]) for k in ("minlat", "avglat", "maxlat", "llat", "lresp")]
                assert lat[0] <= lat[1] <= lat[2] and lat[3] <= lat[2], f
                assert (f["lop"] == "NA") == (lat[4] == 0), f
                # lzxid relative to the session's own createSession zxid;
                # after crst the raw text (ZooKeeper's -1)
                dz = int(f["lzxid"], 16) - base if f["lop"] != "NA" else f["lzxid"]
                rows.append({"lop": f["lop"], "lcxid": f.get("lcxid"), "recved": f["recved"],
                             "sent": f["sent"], "lzxid": dz})
        finally:
            c.close()
        seen.append(rows)
    assert seen[0] == seen[1]
    assert [r["lop"] for r in seen[0]] == ["SESS", "CREA", "GETD", "PING", "SETW", "SETW",
                                           "NA", "MULT", "GETC"]
