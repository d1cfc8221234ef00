"""The HTTP API on a real 3-member ensemble: every member serves it, a write
through any member is a ZAB write, and a watch stream cut on one member
resumes on another with nothing missed (zxids are the ensemble's, and every
member records committed txns in zxid order). See docs/http-api.md."""

from __future__ import annotations

import threading

import pytest
from kazoo.client import KazooClient

from zabpy.testing import wait_for
from zabpy.testing.ensemble import ZabpyEnsemble

from httpclient import Api, with_http_api

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ensemble():
    ens = ZabpyEnsemble(3)
    ports = with_http_api(ens)
    with ens:
        apis = {sid: Api(p) for sid, p in ports.items()}
        for api in apis.values():   # the API starts beside the client port
            wait_for(lambda: _up(api), 30, what=f"HTTP API on port {api.port}")
        yield ens, apis


def _up(api: Api) -> bool:
    try:
        return api.get("/api/v1/openapi.json")[0] == 200
    except OSError:
        return False


def _wait_api(api: Api, path: str, timeout_s: float = 10):
    return wait_for(lambda: api.get(f"/api/v1/node?path={path}")[0] == 200, timeout_s,
                    what=f"{path} through the API")


def test_writes_through_any_member_and_roles(ensemble):
    ens, apis = ensemble
    for sid, api in apis.items():
        status, body = api.post(f"/api/v1/node?path=/from{sid}", {"data": f"member {sid}"})
        assert status == 201, body
    for api in apis.values():
        for sid in apis:
            api.post("/api/v1/sync?path=/")
            _wait_api(api, f"/from{sid}")
            assert api.get(f"/api/v1/node?path=/from{sid}")[1]["data"] == f"member {sid}"
    roles = {}
    for sid, api in apis.items():
        status, body = api.get("/api/v1/server")
        assert status == 200 and body["serving"]
        me = [m for m in body["members"] if m["me"]]
        assert [m["id"] for m in me] == [sid]
        roles[sid] = body["mode"]
        assert {m["role"] for m in body["members"]} == {"leader", "follower"}
        assert body["mntr"]["server_state"] == body["mode"]
    assert sorted(roles.values()) == ["follower", "follower", "leader"]
    assert roles[ens.leader()] == "leader"


def test_stream_cut_on_one_member_resumes_on_another(ensemble):
    ens, apis = ensemble
    n = 600
    kz = KazooClient(hosts=ens.host(1))
    kz.start()
    try:
        kz.ensure_path("/e")
        base = kz.exists("/e").czxid
        got: list[int] = []
        done = threading.Event()
        errors: list = []

        def reader():
            try:
                last = str(base)
                # members 3, then 2, then 1: each stream is cut after 200 changes
                for sid in (3, 2, 1):
                    s = apis[sid].stream("/api/v1/watch?path=/e&recursive=1", last_event_id=last)
                    assert s.status == 200, s.body_json()
                    for msg_id, _event, data in s.events():
                        got.append(data["zxid"])
                        last = msg_id
                        if len(got) % 200 == 0:
                            break
                    s.close()
            except BaseException as e:  # reported to the test thread
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        kz.ensure_path("/e/x")
        zxids = [kz.exists("/e/x").czxid]
        pending = [kz.set_async("/e/x", str(i).encode()) for i in range(n - 1)]
        zxids += [a.get(timeout=60).mzxid for a in pending]
        assert done.wait(90), f"got {len(got)} of {n}"
        assert not errors, errors
        assert got == sorted(zxids)
    finally:
        kz.stop()
        kz.close()


def test_digest_acl_through_a_follower(ensemble):
    ens, apis = ensemble
    follower = next(s for s in ens.sids if s != ens.leader())
    carol = Api(apis[follower].port, auth="carol:pw")
    status, body = carol.get("/api/v1/whoami")
    carol_id = next(i["id"] for i in body["ids"] if i["scheme"] == "digest")
    status, _ = carol.post("/api/v1/node?path=/carols",
                           {"data": "c", "acl": [{"scheme": "digest", "id": carol_id,
                                                  "perms": "rwcda"}]})
    assert status == 201
    other = next(s for s in ens.sids if s != follower)
    _wait_api(Api(apis[other].port, auth="carol:pw"), "/carols")
    status, body = apis[other].get("/api/v1/node?path=/carols")
    assert (status, body["error"]) == (403, "NOAUTH")
