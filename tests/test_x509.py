"""x509 identities on the secure client port: a verified client
certificate's subject DN becomes an ``x509`` ACL id, in the RFC 2253 form
Java's X500Principal.getName() prints (checked side by side with Java
ZooKeeper 3.8 on the same certificates)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.security import make_acl

from zabpy.auth.x509 import parse_dn, subject_dn
from zabpy.testing import ZabpyServer, free_ports, wait_for
from zabpy.testing.difffuzz.servers import FUZZ_PROPS, JavaZooKeeper, java_missing

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is absent")

# RDNs that exercise the format: DC and UID keywords, a multi-valued RDN,
# characters RFC 2253 escapes, a leading '#', UTF-8, and emailAddress (no
# RFC 2253 keyword: printed as its OID and the hex of its DER value).
ALICE = ('/DC=org/DC=example/C=CH/L=Z\u00fcrich/O=Acme "Q" Ltd/OU=Eng, Ops;Dev'
         '/OU=#hash/CN=Alice Doe+UID=alice/emailAddress=alice@example.com')
BOB = "/O=Acme/CN=bob"
NETTY = tuple(f"/usr/share/java/{j}.jar" for j in (
    "netty-codec", "netty-resolver", "netty-transport-native-unix-common", "netty-handler",
    "netty-buffer", "netty-common", "netty-transport"))


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name, subj in (("server", "/CN=127.0.0.1"), ("alice", ALICE), ("bob", BOB)):
        _openssl("req", "-utf8", "-multivalue-rdn", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return d


def _tls_lines(pki, port, client_auth="need"):
    return (f"secureClientPort={port}", "secureClientPortAddress=127.0.0.1",
            f"ssl.keyStore.location={pki}/keystore.pem", "ssl.keyStore.type=PEM",
            f"ssl.trustStore.location={pki}/ca.pem", "ssl.trustStore.type=PEM",
            f"ssl.clientAuth={client_auth}")


def _zabpy(pki, port, *extra, client_auth="need", subprocess=False):
    # the client port is chosen with the secure one, so that they cannot collide
    return ZabpyServer(config_text="\n".join(_tls_lines(pki, port, client_auth) + extra),
                       port=_CLIENT_PORT.pop(port), subprocess=subprocess)


_CLIENT_PORT: dict[int, int] = {}


def free_port() -> int:
    """A secure port, with a distinct client port set aside for it."""
    secure, client = free_ports(2)
    _CLIENT_PORT[secure] = client
    return secure


def _client(pki, port, who):
    kw = {"keyfile": str(pki / f"{who}.key"), "certfile": str(pki / f"{who}.pem")} if who else {}
    c = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                    ca=str(pki / "ca.pem"), **kw)
    c.start(timeout=15)
    return c


def _dn_of(pki, port, who) -> str:
    """The x509 id the server gave the client: an ``auth`` ACL expands to it."""
    c = _client(pki, port, who)
    try:
        path = c.create(f"/dn-{uuid.uuid4().hex[:8]}", b"", acl=[make_acl("auth", "", all=True)])
        (acl,), _ = c.get_acls(path)
        assert acl.id.scheme == "x509"
        return acl.id.id
    finally:
        c.stop()
        c.close()


def _who_am_i(pki, port, who) -> list[tuple[str, str]]:
    """whoAmI over TLS with a raw client (the ids, in the server's order)."""
    import socket
    import ssl

    from rawclient import RawClient

    from zabpy.jute import records as R
    from zabpy.jute.codec import Reader
    from zabpy.jute.constants import OP

    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / f"{who}.pem"), str(pki / f"{who}.key"))
    rc = RawClient.__new__(RawClient)
    rc.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                              server_hostname="127.0.0.1")
    rc.xid, rc.session_id, rc.passwd = 0, 0, b""
    try:
        rc.handshake()
        hdr, body = rc.call(OP.whoAmI)
        assert hdr.err == 0
        return [(c.authScheme, c.user) for c in R.WhoAmIResponse.read(Reader(body)).clientInfo]
    finally:
        rc.close()


def test_subject_dn_is_javas(pki):
    """The DN zabpy computes equals the one Java ZooKeeper stores."""
    reason = java_missing() or next((f"{j} absent" for j in NETTY if not shutil.os.path.exists(j)), None)
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    jport, zport = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-x509-")
    java = JavaZooKeeper(tmp, props=FUZZ_PROPS, jars=NETTY, cfg_lines=_tls_lines(pki, jport) + (
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        "X509AuthenticationProvider.superUser=CN=bob,O=Acme"))
    try:
        java.start()
        with _zabpy(pki, zport, "X509AuthenticationProvider.superUser=CN=bob,O=Acme"):
            for who in ("alice", "bob"):
                assert _dn_of(pki, zport, who) == _dn_of(pki, jport, who)
                assert _who_am_i(pki, zport, who) == _who_am_i(pki, jport, who)
            assert ("super", "") in _who_am_i(pki, zport, "bob")
    finally:
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_subject_dn_shape(pki):
    import ssl
    der = ssl.PEM_cert_to_DER_cert((pki / "alice.pem").read_text())
    dn = subject_dn(der)
    assert dn.startswith("1.2.840.113549.1.9.1=#1611616c696365406578616d706c652e636f6d,")
    assert "CN=Alice Doe+UID=alice" in dn
    assert "OU=\\#hash" in dn and "OU=Eng\\, Ops\\;Dev" in dn and 'O=Acme \\"Q\\" Ltd' in dn
    assert dn.endswith("L=Z\u00fcrich,C=CH,DC=example,DC=org")
    assert parse_dn(dn) is not None
    assert subject_dn(ssl.PEM_cert_to_DER_cert((pki / "bob.pem").read_text())) == "CN=bob,O=Acme"


def test_x509_acl_is_enforced(pki, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    with _zabpy(pki, port) as zk:
        alice = _client(pki, port, "alice")
        bob = _client(pki, port, "bob")
        plain = KazooClient(hosts=zk.hosts)
        plain.start(timeout=15)
        try:
            path = "/alice-only"
            alice.create(path, b"a", acl=[make_acl("auth", "", all=True)])
            (acl,), _ = alice.get_acls(path)
            assert alice.get(path)[0] == b"a"
            for other in (bob, plain):
                with pytest.raises(NoAuthError):
                    other.get(path)
            # an explicit x509 ACL naming bob's DN lets bob in
            alice.create("/for-bob", b"b", acl=[make_acl("x509", "CN=bob,O=Acme", read=True)])
            assert bob.get("/for-bob")[0] == b"b"
            with pytest.raises(InvalidACLError):  # not a DN: X500Principal refuses it
                alice.create("/bad", b"", acl=[make_acl("x509", "no equals sign", read=True)])
            assert "Authenticated Id 'CN=bob,O=Acme' for Scheme 'x509'" in caplog.text
        finally:
            for c in (alice, bob, plain):
                c.stop()
                c.close()


def test_x509_super_user(pki):
    port = free_port()
    with _zabpy(pki, port, "X509AuthenticationProvider.superUser=CN=bob,O=Acme"):
        alice = _client(pki, port, "alice")
        bob = _client(pki, port, "bob")
        try:
            alice.create("/private", b"p", acl=[make_acl("auth", "", all=True)])
            assert bob.get("/private")[0] == b"p"
            bob.delete("/private")
        finally:
            for c in (alice, bob):
                c.stop()
                c.close()


def test_client_auth_want_without_certificate_has_no_x509_id(pki):
    port = free_port()
    with _zabpy(pki, port, client_auth="want"):
        anon = _client(pki, port, None)
        alice = _client(pki, port, "alice")
        try:
            with pytest.raises(InvalidACLError):  # an auth ACL with no id to expand to
                anon.create("/x", b"", acl=[make_acl("auth", "", all=True)])
            alice.create("/y", b"", acl=[make_acl("auth", "", all=True)])
            with pytest.raises(NoAuthError):
                anon.get("/y")
        finally:
            for c in (anon, alice):
                c.stop()
                c.close()


def test_untrusted_certificate_is_refused_others_unaffected(pki, tmp_path):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
             "rogue.pem", "-days", "2", "-subj", "/CN=rogue", cwd=tmp_path)
    port = free_port()
    with _zabpy(pki, port):
        alice = _client(pki, port, "alice")
        try:
            rogue = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                                keyfile=str(tmp_path / "rogue.key"),
                                certfile=str(tmp_path / "rogue.pem"), ca=str(pki / "ca.pem"))
            with pytest.raises(Exception):
                rogue.start(timeout=3)
            rogue.stop()
            rogue.close()
            assert alice.create("/still-here", b"") == "/still-here"
        finally:
            alice.stop()
            alice.close()


def test_plain_text_client_on_the_tls_port_gets_one_log_line(pki):
    """The server process (uvloop's loop): a plain-text client fails the
    handshake, is closed and logged once; a TLS client is served."""
    import socket

    port = free_port()
    with _zabpy(pki, port, subprocess=True) as zk:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x00\x00\x00\x2c" + bytes(44))  # a ConnectRequest frame, in the clear
        try:
            while s.recv(100):  # an alert, perhaps, then the close
                pass
        except ConnectionResetError:
            pass
        s.close()
        alice = _client(pki, port, "alice")
        assert alice.create("/tls-ok", b"") == "/tls-ok"
        alice.stop()
        alice.close()
        wait_for(lambda: zk.read_log().count("Unsuccessful TLS handshake") == 1, what="one log line")
        assert "Authenticated Id" in zk.read_log()


def _expired_certificate(pki, d) -> tuple[str, str]:
    """A client certificate signed by the test CA whose validity ended
    yesterday (openssl 3.0's ``x509 -req`` cannot back-date one)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    keyfile, certfile = d / "expired.key", d / "expired.pem"
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(keyfile), str(certfile)


def test_expired_certificate_is_refused_with_one_log_line(pki, tmp_path):
    """Issue 13, bad input: a client certificate past its validity fails the
    handshake (as with Java's X509 trust manager), the server logs it once,
    and a client with a valid certificate is served meanwhile."""
    import socket
    import ssl

    keyfile, certfile = _expired_certificate(pki, tmp_path)
    port = free_port()
    with _zabpy(pki, port, subprocess=True) as zk:
        alice = _client(pki, port, "alice")
        try:
            ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            ctx.load_cert_chain(certfile, keyfile)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                     server_hostname="127.0.0.1") as s:
                    # TLS 1.3: the server's verdict on the client's certificate
                    # arrives after the client's side of the handshake
                    s.sendall(b"\x00\x00\x00\x2c" + bytes(44))
                    while s.recv(100):
                        pass
                    raise ConnectionError("closed without an alert")
            assert alice.create("/after-expired", b"") == "/after-expired"
        finally:
            alice.stop()
            alice.close()
        wait_for(lambda: zk.read_log().count("Unsuccessful TLS handshake") == 1, what="one log line")
        assert "expired" in zk.read_log()
