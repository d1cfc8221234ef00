"""The HTTP API over TLS: a verified client certificate is the request's x509
id (as on the secure client port), and ACLs naming it are enforced."""

from __future__ import annotations

import shutil
import ssl

import pytest

from zabpy.testing import ZabpyServer, free_ports, wait_for

from httpclient import Api
import test_x509

pki = test_x509.pki   # the fixture: a CA, a server certificate, alice's and bob's

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")]


def _ctx(pki, who):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / f"{who}.pem"), str(pki / f"{who}.key"))
    return ctx


def test_client_certificate_is_the_x509_identity(pki):
    http_port, = free_ports(1)
    cfg = "\n".join((
        "zabpy.http.enabled=true", f"zabpy.http.port={http_port}", "zabpy.http.address=127.0.0.1",
        "zabpy.http.tls=true", f"ssl.keyStore.location={pki}/keystore.pem",
        f"ssl.trustStore.location={pki}/ca.pem", "ssl.clientAuth=need"))
    with ZabpyServer(config_text=cfg):
        bob = Api(http_port, context=_ctx(pki, "bob"))
        wait_for(lambda: _up(bob), 20, what="the HTTPS API")
        status, body = bob.get("/api/v1/whoami")
        assert {"scheme": "x509", "id": "CN=bob,O=Acme"} in body["ids"]
        acl = [{"scheme": "x509", "id": "CN=bob,O=Acme", "perms": "rwcda"}]
        assert bob.post("/api/v1/node?path=/bobs", {"data": "b", "acl": acl})[0] == 201
        assert bob.get("/api/v1/node?path=/bobs")[1]["data"] == "b"
        alice = Api(http_port, context=_ctx(pki, "alice"))
        status, body = alice.get("/api/v1/node?path=/bobs")
        assert (status, body["error"]) == (403, "NOAUTH")


def _up(api) -> bool:
    try:
        return api.get("/api/v1/openapi.json")[0] == 200
    except OSError:
        return False
