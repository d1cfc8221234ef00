"""Client SASL with Kerberos (GSSAPI, RFC 4752) against a real MIT KDC.

The module starts its own krb5kdc (tests/kerberos_kdc.py: realm ZABPY.TEST
on a free loopback port, principals made with kadmin.local, keytabs in a
temporary directory) and stops it afterwards. The zabpy server logs in with
a JAAS ``Server`` section using Krb5LoginModule (keytab + the service
principal zookeeper/localhost), as a ZooKeeper operator writes it; kazoo
(pure-sasl over pykerberos) authenticates with tickets from the KDC, and
the same steps run side by side against Debian's Java ZooKeeper 3.8 with
the same JAAS file and krb5.conf. Reference: ZooKeeper 3.8 Programmer's
Guide, "Built-in ACL schemes" (sasl), and the ZooKeeper-Kerberos wiki
(Server JAAS section, kerberos.removeRealmFromPrincipal).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from zabpy.jute import records as R
from zabpy.jute.constants import ERR, OP
from zabpy.testing import ZabpyServer
from zabpy.testing.difffuzz.servers import FUZZ_PROPS, JavaZooKeeper, java_missing

from kerberos_kdc import REALM, Kdc, kdc_missing
from rawclient import RawClient

pytest.importorskip("gssapi", reason="the gssapi package (zabpy's Kerberos server side) is absent")
pytest.importorskip("kerberos", reason="pykerberos (pure-sasl's GSSAPI client) is absent")
pytestmark = pytest.mark.skipif(kdc_missing() is not None, reason=f"{kdc_missing()}")
from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402
from kazoo.security import make_acl  # noqa: E402

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


@pytest.fixture(scope="module")
def kdc():
    d = tempfile.mkdtemp(prefix="zabpy-kdc-")
    k = Kdc(d)
    saved = {v: os.environ.get(v) for v in ("KRB5_CONFIG", "KRB5CCNAME")}
    try:
        k.start()
        k.service_keytab = k.principal("zookeeper/localhost")
        for u in ("alice", "bob"):
            k.ccache = k.kinit(u, k.principal(u))
        k.jaas = os.path.join(d, "jaas.conf")
        with open(k.jaas, "w") as f:
            f.write("Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n"
                    f'  useKeyTab=true\n  keyTab="{k.service_keytab}"\n  storeKey=true\n'
                    f'  useTicketCache=false\n  principal="zookeeper/localhost@{REALM}";\n}};\n')
        # the servers (started from here) and the clients (in this process) read it
        os.environ["KRB5_CONFIG"] = k.krb5_conf
        os.environ["KRB5CCNAME"] = k.ccache
        yield k
    finally:
        k.stop()
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
        shutil.rmtree(d, ignore_errors=True)


def _zabpy(kdc, *extra: str) -> ZabpyServer:
    cfg = "\n".join(["tickTime=200", f"authProvider.1={SASL_PROVIDER}",
                     f"java.security.auth.login.config={kdc.jaas}", *extra])
    return ZabpyServer(config_text=cfg, subprocess=True)


@pytest.fixture(scope="module")
def zkrb(kdc):
    with _zabpy(kdc) as s:
        yield s


def _client(kdc, port: int, user: str | None) -> KazooClient:
    """A kazoo client logged in with ``user``'s ticket (None: no SASL);
    pykerberos takes the ticket from that principal's cache in KRB5CCNAME."""
    if user is None:
        c = KazooClient(f"localhost:{port}")
    else:
        c = KazooClient(f"localhost:{port}", sasl_options={
            "mechanism": "GSSAPI", "service": "zookeeper", "principal": f"{user}@{REALM}"})
    c.start(timeout=20)
    return c


def _acl_outcomes(kdc, port: int, owner_id: str) -> list:
    tag = uuid.uuid4().hex[:8]
    path = f"/krb-{tag}"
    alice = _client(kdc, port, "alice")
    bob = _client(kdc, port, "bob")
    anon = _client(kdc, port, None)
    out = []

    def attempt(step, fn):
        try:
            r = fn()
            out.append((step, r.decode() if isinstance(r, bytes) else r if isinstance(r, str) else "ok"))
        except KazooException as e:
            out.append((step, type(e).__name__))

    try:
        attempt("create", lambda: alice.create(path, b"d", acl=[make_acl("sasl", owner_id, all=True)])
                and None)
        attempt("alice-get", lambda: alice.get(path)[0])
        attempt("bob-get", lambda: bob.get(path)[0])
        attempt("anon-get", lambda: anon.get(path)[0])
        attempt("bob-set", lambda: bob.set(path, b"x") and None)
        attempt("auth-acl", lambda: alice.create(path + "/a", b"", acl=[make_acl("auth", "", all=True)])
                and str(alice.get_acls(path + "/a")[0][0].id.id))
        attempt("bob-get-auth-node", lambda: bob.get(path + "/a")[0])
    finally:
        for c in (alice, bob, anon):
            c.stop()
            c.close()
    return out


def test_kazoo_gssapi_login_yields_the_sasl_identity(kdc, zkrb):
    out = _acl_outcomes(kdc, zkrb.port, f"alice@{REALM}")
    assert out == [("create", "ok"), ("alice-get", "d"), ("bob-get", "NoAuthError"),
                   ("anon-get", "NoAuthError"), ("bob-set", "NoAuthError"),
                   ("auth-acl", f"alice@{REALM}"), ("bob-get-auth-node", "NoAuthError")]
    assert f"adding SASL authorization for authorizationID: alice@{REALM}" in zkrb.read_log()


def test_remove_realm_from_principal(kdc):
    with _zabpy(kdc, "kerberos.removeRealmFromPrincipal=true") as s:
        out = _acl_outcomes(kdc, s.port, "alice")
    assert out[:3] == [("create", "ok"), ("alice-get", "d"), ("bob-get", "NoAuthError")]
    assert ("auth-acl", "alice") in out


@pytest.mark.parametrize("token", [b"\x60\x03garbage", b"", b"\x00" * 70000],
                         ids=["garbage", "empty", "oversized"])
def test_malformed_gssapi_token_is_authfailed_and_closed(kdc, zkrb, token):
    """A token that is no GSS-API token: AUTHFAILED, the connection closed,
    one log line; another session goes on."""
    other = _client(kdc, zkrb.port, "alice")
    before = zkrb.read_log().count("failed to SASL authenticate")
    rc = RawClient(zkrb.port)
    rc.handshake()
    hdr, _ = rc.call(OP.sasl, R.GetSASLRequest(token))
    assert hdr.err == ERR.AUTHFAILED
    assert rc.closed_by_server()
    rc.close()
    assert zkrb.read_log().count("failed to SASL authenticate") == before + 1
    assert other.exists("/") is not None
    other.stop()
    other.close()


def test_ticket_for_another_service_is_refused(kdc, zkrb):
    """A client whose ticket names a service the server has no key for
    (zookeeper/otherhost) cannot log in: AUTHFAILED, closed, one log line.
    The token is made with python-gssapi from alice's ticket (kazoo always
    names the host it connects to)."""
    import gssapi
    kdc.principal("zookeeper/otherhost")
    creds = gssapi.Credentials(name=gssapi.Name(f"alice@{REALM}", gssapi.NameType.kerberos_principal),
                               usage="initiate")
    ctx = gssapi.SecurityContext(name=gssapi.Name(f"zookeeper/otherhost@{REALM}",
                                                  gssapi.NameType.kerberos_principal),
                                 creds=creds, usage="initiate")
    before = zkrb.read_log().count("failed to SASL authenticate")
    rc = RawClient(zkrb.port)
    rc.handshake()
    hdr, _ = rc.call(OP.sasl, R.GetSASLRequest(ctx.step()))
    assert hdr.err == ERR.AUTHFAILED
    assert rc.closed_by_server()
    rc.close()
    lines = [ln for ln in zkrb.read_log().splitlines() if "failed to SASL authenticate" in ln]
    assert len(lines) == before + 1 and "GSSAPI" in lines[-1]


def test_same_acl_results_as_java(kdc, zkrb):
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-krb-")
    java = JavaZooKeeper(tmp, props=FUZZ_PROPS + (
        f"-Djava.security.auth.login.config={kdc.jaas}",
        f"-Djava.security.krb5.conf={kdc.krb5_conf}",
        f"-Dzookeeper.authProvider.1={SASL_PROVIDER}"))
    try:
        java.start()
        theirs = _acl_outcomes(kdc, java.port, f"alice@{REALM}")
    finally:
        java.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ours = _acl_outcomes(kdc, zkrb.port, f"alice@{REALM}")
    assert ours == theirs


def test_java_client_logs_in_with_kerberos(kdc, zkrb, tmp_path):
    """Java's own client (zkCli with a Krb5LoginModule Client section and a
    keytab) against zabpy: GSSAPI with mutual authentication, then a read
    of a node only alice may read."""
    reason = java_missing()
    if reason:
        pytest.skip(f"Java client skipped: {reason}")
    import subprocess

    from zabpy.testing.difffuzz.servers import JAVA_JARS

    path = f"/java-krb-{uuid.uuid4().hex[:8]}"
    alice = _client(kdc, zkrb.port, "alice")
    alice.create(path, b"hello-kerberos", acl=[make_acl("sasl", f"alice@{REALM}", all=True)])
    alice.stop()
    alice.close()
    keytab = os.path.join(kdc.dir, "alice.keytab")
    conf = tmp_path / "client.conf"
    conf.write_text("Client {\n  com.sun.security.auth.module.Krb5LoginModule required\n"
                    f'  useKeyTab=true\n  keyTab="{keytab}"\n  storeKey=true\n'
                    f'  useTicketCache=false\n  principal="alice@{REALM}";\n}};\n')
    r = subprocess.run(["java", "-cp", ":".join(JAVA_JARS), f"-Djava.security.auth.login.config={conf}",
                        f"-Djava.security.krb5.conf={kdc.krb5_conf}",
                        "org.apache.zookeeper.ZooKeeperMain", "-server", f"localhost:{zkrb.port}",
                        "get", path], capture_output=True, text=True, timeout=120)
    assert "state:SaslAuthenticated" in r.stdout, r.stdout + r.stderr
    assert "hello-kerberos" in r.stdout, r.stdout + r.stderr
