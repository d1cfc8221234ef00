"""The secure client port: TLS with client certificates (ssl.* keys)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from kazoo.client import KazooClient

from zabpy.testing import ZabpyServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is absent")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return d


def _server(pki, port):
    text = (f"secureClientPort={port}\nssl.keyStore.location={pki}/keystore.pem\n"
            f"ssl.keyStore.type=PEM\nssl.trustStore.location={pki}/ca.pem\n"
            "ssl.trustStore.type=PEM\n")
    return ZabpyServer(config_text=text)


def test_client_with_certificate_connects_over_tls(pki):
    port = free_port()
    with _server(pki, port):
        c = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                        keyfile=str(pki / "client.key"), certfile=str(pki / "client.pem"),
                        ca=str(pki / "ca.pem"))
        c.start(timeout=10)
        assert c.create("/secure", b"x") == "/secure"
        assert c.get("/secure")[0] == b"x"
        c.stop()


def test_client_without_certificate_is_refused(pki):
    port = free_port()
    with _server(pki, port):
        c = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                        ca=str(pki / "ca.pem"))
        with pytest.raises(Exception):
            c.start(timeout=3)
        c.stop()
