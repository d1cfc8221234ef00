"""The OpenAPI document of the HTTP API: served, a valid OpenAPI 3.0 document
(openapi-spec-validator), and naming exactly the routes the API serves."""

from __future__ import annotations

import pytest

from zabpy.testing import ZabpyServer, free_ports

from httpclient import Api


def test_openapi_document_is_valid_and_matches_the_routes():
    port, = free_ports(1)
    with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1",
                     http_enabled=True) as zk:
        status, doc = Api(port).get("/api/v1/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.0")
        documented = {(url, m.upper()) for url, ops in doc["paths"].items() for m in ops}
        app = zk.runtime.ops.admin._runner.app
        served = set()
        for route in app.router.routes():
            url = route.resource.canonical if route.resource is not None else ""
            if (url.startswith("/api/") or url == "/watch") and route.method != "HEAD":
                served.add((url, route.method))
        assert documented == served
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
