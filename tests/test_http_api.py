"""The HTTP/JSON API against a real standalone server, with a real HTTP client.

Every request goes through the server core as a client request (its ACLs,
versions and zxids), so the answers are checked against what kazoo sees on
the same server. Watch streams are cut and resumed with Last-Event-ID and
must miss nothing; a zxid older than what is kept answers 410 Gone.
See docs/http-api.md.
"""

from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from zabpy.testing import ZabpyServer, free_ports

from httpclient import Api

pytestmark = pytest.mark.timeout(120)


def _server(**kw):
    port, = free_ports(1)
    kw.setdefault("admin_server_port", port)
    kw.setdefault("admin_server_address", "127.0.0.1")
    return ZabpyServer(http_enabled=True, **kw), port


@pytest.fixture(scope="module")
def api_server():
    zk, port = _server()
    with zk:
        kz = KazooClient(hosts=zk.hosts)
        kz.start()
        try:
            yield zk, Api(port), kz
        finally:
            kz.stop()
            kz.close()


def test_znode_operations_and_error_codes(api_server):
    zk, api, kz = api_server
    status, body, headers = api.request("POST", "/api/v1/node?path=/ops", {"data": "hello"})
    assert status == 201 and body["path"] == "/ops"
    assert int(headers["X-Zxid"]) == body["stat"]["czxid"] == kz.exists("/ops").czxid
    status, body = api.get("/api/v1/node?path=/ops")
    assert (status, body["data"], body["data_b64"]) == (200, "hello", "aGVsbG8=")
    # binary data: base64 only
    api.post("/api/v1/node?path=/ops/bin", {"data_b64": base64.b64encode(b"\xff\x00").decode()})
    status, body = api.get("/api/v1/node?path=/ops/bin")
    assert body["data"] is None and base64.b64decode(body["data_b64"]) == b"\xff\x00"
    assert kz.get("/ops/bin")[0] == b"\xff\x00"
    # version checks: BADVERSION is 412 and names ZooKeeper's code
    status, body = api.put("/api/v1/node?path=/ops&version=7", {"data": "x"})
    assert status == 412 and body["error"] == "BADVERSION" and body["code"] == -103
    status, body = api.put("/api/v1/node?path=/ops&version=0", {"data": "v1"})
    assert status == 200 and body["stat"]["version"] == 1
    assert kz.get("/ops")[0] == b"v1"
    status, body = api.get("/api/v1/node?path=/missing")
    assert (status, body["error"], body["code"]) == (404, "NONODE", -101)
    status, body = api.post("/api/v1/node?path=/ops", {})
    assert (status, body["error"]) == (409, "NODEEXISTS")
    status, body = api.delete("/api/v1/node?path=/ops")
    assert (status, body["error"]) == (409, "NOTEMPTY")
    status, body = api.get("/api/v1/node?path=bad")
    assert (status, body["error"]) == (400, "BADARGUMENTS")
    status, body = api.post("/api/v1/node?path=/ops/e", {"ephemeral": True})
    assert (status, body["error"]) == (400, "BADARGUMENTS")
    status, body = api.get("/api/v1/children?path=/ops")
    assert body["children"] == ["bin"] and body["stat"]["numChildren"] == 1
    status, body = api.get("/api/v1/stat?path=/ops")
    assert status == 200 and body["stat"]["version"] == 1
    status, body = api.post("/api/v1/node?path=/ops/seq-", {"sequential": True})
    assert status == 201 and body["path"] == "/ops/seq-0000000001"
    status, body = api.delete("/api/v1/node?path=/ops/seq-0000000001&version=0")
    assert status == 200 and kz.exists("/ops/seq-0000000001") is None


def test_acl_and_multi_and_sync(api_server):
    zk, api, kz = api_server
    api.post("/api/v1/node?path=/acl1", {})
    status, body = api.get("/api/v1/acl?path=/acl1")
    assert body["acl"] == [{"scheme": "world", "id": "anyone", "perms": 31,
                            "letters": "rwcda"}]
    status, body = api.put("/api/v1/acl?path=/acl1&version=0",
                           {"acl": [{"scheme": "world", "id": "anyone", "perms": "rw"}]})
    assert status == 200 and body["stat"]["aversion"] == 1
    assert kz.get_acls("/acl1")[0][0].perms == 3
    status, body = api.delete("/api/v1/node?path=/acl1")      # no DELETE perm on /
    assert status == 200
    # multi: all or nothing
    ops = [{"op": "create", "path": "/m", "data": "1"}, {"op": "setData", "path": "/m",
                                                          "data": "2", "version": 0}]
    status, body = api.post("/api/v1/multi", {"ops": ops})
    assert status == 200 and [r["op"] for r in body["results"]] == ["create", "setData"]
    status, body = api.post("/api/v1/multi", {"ops": [{"op": "check", "path": "/m",
                                                       "version": 9},
                                                      {"op": "delete", "path": "/m"}]})
    assert status == 412 and body["error"] == "BADVERSION"
    assert kz.exists("/m") is not None
    status, body = api.post("/api/v1/sync?path=/m")
    assert status == 200 and body["zxid"] >= kz.exists("/m").mzxid


def _digest(user: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()


def test_acl_digest_identity_from_http_basic(api_server):
    zk, api, kz = api_server
    bob = Api(api.port, auth="bob:secret")
    acl = [{"scheme": "digest", "id": f"bob:{_digest('bob', 'secret')}", "perms": 31}]
    status, _ = bob.post("/api/v1/node?path=/bobs", {"data": "mine", "acl": acl})
    assert status == 201
    assert bob.get("/api/v1/node?path=/bobs")[1]["data"] == "mine"
    status, body = api.get("/api/v1/node?path=/bobs")
    assert (status, body["error"], body["code"]) == (403, "NOAUTH", -102)
    status, body = Api(api.port, auth="bob:wrong").get("/api/v1/node?path=/bobs")
    assert status == 403
    # the same id as a kazoo client that adds digest auth
    kz2 = KazooClient(hosts=zk.hosts, auth_data=[("digest", "bob:secret")])
    kz2.start()
    try:
        assert kz2.get("/bobs")[0] == b"mine"
    finally:
        kz2.stop()
        kz2.close()
    status, body = bob.get("/api/v1/whoami")
    assert {"scheme": "digest", "id": f"bob:{_digest('bob', 'secret')}"} in body["ids"]
    status, body = Api(api.port, auth="no-colon").get("/api/v1/whoami")
    assert (status, body["error"]) == (401, "AUTHFAILED")


def test_acl_ip_identity_is_the_client_address(api_server):
    zk, api, kz = api_server
    kz.create("/by-ip", b"x", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert api.get("/api/v1/node?path=/by-ip")[0] == 200
    other = Api(api.port, source_ip="127.0.0.2")
    status, body = other.get("/api/v1/node?path=/by-ip")
    assert (status, body["error"]) == (403, "NOAUTH")
    assert {"scheme": "ip", "id": "127.0.0.2"} in other.get("/api/v1/whoami")[1]["ids"]


def _writes(kz, n: int, prefix: str) -> list[int]:
    """n changes as fast as kazoo pipelines them; their zxids, in order."""
    kz.ensure_path(prefix)
    nodes = [f"{prefix}/n{i}" for i in range(10)]
    zxids = []
    for p in nodes:
        zxids.append(kz.create(p, b"", include_data=True)[1].czxid)
    pending = [kz.set_async(nodes[i % 10], str(i).encode()) for i in range(n - len(nodes))]
    zxids += [a.get(timeout=60).mzxid for a in pending]
    return sorted(zxids)


def test_stream_cut_and_resumed_misses_nothing_across_10000_changes(api_server):
    zk, api, kz = api_server
    n = 10_000
    start = kz.exists("/").pzxid
    kz.ensure_path("/s10k")
    base = kz.exists("/s10k").czxid
    got: list[int] = []
    done = threading.Event()
    errors: list = []

    def reader():
        try:
            last = str(base)
            cuts = 0
            while len(got) < n:
                s = api.stream("/api/v1/watch?path=/s10k&recursive=1", last_event_id=last)
                assert s.status == 200, s.body_json()
                for msg_id, event, data in s.events():
                    assert event == "change"
                    got.append(data["zxid"])
                    last = msg_id
                    # cut the stream twice, mid-flight
                    if cuts < 2 and len(got) in (2000, 6000):
                        break
                    if len(got) >= n:
                        break
                cuts += 1
                s.close()
        except BaseException as e:  # reported to the test thread
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    zxids = _writes(kz, n, "/s10k")
    assert done.wait(90), f"stream got {len(got)} of {n}"
    assert not errors, errors
    assert got == zxids, "the resumed stream missed, repeated or reordered changes"
    assert start < base


def test_stream_filters_by_read_acl(api_server):
    zk, api, kz = api_server
    kz.create("/secret", b"", acl=[make_digest_acl("alice", "pw", all=True)])
    kz.ensure_path("/public")
    z0 = kz.exists("/public").czxid
    kz.set("/public", b"1")
    kz2 = KazooClient(hosts=zk.hosts, auth_data=[("digest", "alice:pw")])
    kz2.start()
    try:
        kz2.set("/secret", b"hidden")
    finally:
        kz2.stop()
        kz2.close()
    last = kz.set("/public", b"2").mzxid
    s = api.stream(f"/api/v1/watch?path=/&recursive=1&since={z0}")
    seen = []
    for _id, _ev, data in s.events():
        seen += [(e["type"], e["path"]) for e in data["events"]]
        if data["zxid"] >= last:
            break
    s.close()
    assert ("changed", "/public") in seen and ("changed", "/secret") not in seen


def test_410_when_older_than_the_change_log(tmp_path):
    zk, port = _server(http_change_log_size=50)
    with zk:
        kz = KazooClient(hosts=zk.hosts)
        kz.start()
        try:
            Api(port).get("/api/v1/whoami")  # the API's session exists before the writes
            first = kz.create("/g", b"", include_data=True)[1].czxid
            for i in range(120):
                kz.set("/g", str(i).encode())
            sessions = set()
            s = Api(port).stream(f"/api/v1/watch?path=/g&since={first}")
            assert s.status == 410
            body = s.body_json()
            assert body["error"] == "GONE"
            oldest = body["oldest_zxid"]
            assert oldest > first and body["oldest_zxid_hex"] == f"0x{oldest:x}"
            # from the oldest zxid named, nothing is missing (and the stream goes on live)
            s = Api(port).stream(f"/api/v1/watch?path=/g&since={oldest}")
            assert s.status == 200
            last = kz.set("/g", b"end").mzxid
            ids = []
            for msg_id, _e, _d in s.events():
                ids.append(int(msg_id))
                if ids[-1] >= last:
                    break
            s.close()
            # every setData of /g after the oldest zxid (the zxids between are
            # the API's own createSession, which changes no znode)
            assert ids == [z for z in range(oldest + 1, last + 1) if z not in sessions]
        finally:
            kz.stop()
            kz.close()


def test_resume_older_than_memory_is_served_from_the_txn_logs(tmp_path):
    zk, port = _server(http_change_log_size=20, data_dir=str(tmp_path))
    with zk:
        kz = KazooClient(hosts=zk.hosts)
        kz.start()
        try:
            first = kz.create("/d", b"", include_data=True)[1].czxid
            kz.create("/d/c", b"", include_data=True)
            for i in range(100):
                kz.set("/d", str(i).encode())
            kz.delete("/d/c")
            last = kz.exists("/d").pzxid
            s = Api(port).stream(f"/api/v1/watch?path=/d&recursive=1&since={first - 1}")
            assert s.status == 200
            msgs = []
            for _id, _e, data in s.events():
                msgs.append(data)
                if data["zxid"] >= last:
                    break
            s.close()
            assert [m["zxid"] for m in msgs] == list(range(first, last + 1))
            assert msgs[0]["events"] == [{"type": "created", "path": "/d"}]
            assert {"type": "deleted", "path": "/d/c"} in msgs[-1]["events"]
        finally:
            kz.stop()
            kz.close()


def test_history_names_who_changed_a_znode(api_server):
    zk, api, kz = api_server
    bob = Api(api.port, auth="bob:pw2")
    bob.post("/api/v1/node?path=/hist", {"data": "a"})
    kz.set("/hist", b"b")
    bob.put("/api/v1/acl?path=/hist", {"acl": [{"scheme": "world", "id": "anyone",
                                                "perms": 31}]})
    status, body = api.get("/api/v1/history?path=/hist")
    assert status == 200
    ops = [(e["op"], e["events"]) for e in body["entries"]]
    assert ops == [("setACL", ["acl"]), ("setData", ["changed"]), ("create", ["created"])]
    create = body["entries"][-1]
    assert f"digest:bob:{_digest('bob', 'pw2')}" in create["auth_ids"]
    assert create["client_ip"] == "127.0.0.1"
    assert body["entries"][1]["session"] == f"0x{kz.client_id[0]:x}"


def test_writes_need_a_json_content_type(api_server):
    """A cross-site form post (text/plain, no CORS preflight) cannot act with
    the browser's ip identity."""
    import http.client
    zk, api, kz = api_server
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("POST", "/api/v1/node?path=/csrf", body=b'{"data": "x"}',
                 headers={"Content-Type": "text/plain"})
    resp = conn.getresponse()
    assert resp.status == 415
    conn.close()
    assert kz.exists("/csrf") is None


def test_api_is_off_unless_enabled():
    port, = free_ports(1)
    with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1"):
        status, _ = Api(port).get("/api/v1/node?path=/")
        assert status == 404


def test_history_cli_from_the_api_and_from_the_data_dir(tmp_path):
    import subprocess
    import sys
    zk, port = _server(data_dir=str(tmp_path))
    with zk:
        dave = Api(port, auth="dave:pw")
        dave.post("/api/v1/node?path=/cli", {"data": "1"})
        dave.put("/api/v1/node?path=/cli", {"data": "2"})
        out = subprocess.run([sys.executable, "-m", "zabpy", "history", "/cli", "--url",
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "setData" in lines[0] and "create" in lines[1]
        assert f"digest:dave:{_digest('dave', 'pw')}" in lines[0] and "ip=127.0.0.1" in lines[0]
    out = subprocess.run([sys.executable, "-m", "zabpy", "history", "/cli", "--data-dir",
                          str(tmp_path), "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    import json
    entries = json.loads(out.stdout)["entries"]
    assert [(e["op"], e["auth_ids"]) for e in entries] == [("setData", None), ("create", None)]
