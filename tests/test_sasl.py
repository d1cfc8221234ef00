"""Client SASL (DIGEST-MD5, op 102) with JAAS credentials, as ZooKeeper 3.8.

Real clients: kazoo (through pure-sasl) and a raw socket client driving
pure-sasl's DIGEST-MD5 by hand, against a zabpy server process and, side by
side, Debian's Java ZooKeeper 3.8 with the same JAAS file and providers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from zabpy.auth.digest_md5 import DigestMD5Server, SaslError
from zabpy.auth.jaas import JaasError, digest_credentials, parse_jaas
from zabpy.auth.sasl import AuthSettings, canonical_principal
from zabpy.jute import records as R
from zabpy.jute.codec import Reader
from zabpy.jute.constants import ERR, OP
from zabpy.testing import ZabpyServer, wait_for
from zabpy.testing.difffuzz.servers import FUZZ_PROPS, JavaZooKeeper, java_missing

from rawclient import RawClient

puresasl = pytest.importorskip("puresasl.client", reason="pure-sasl (kazoo's SASL) not installed")
kazoo_client = pytest.importorskip("kazoo.client")
from kazoo.exceptions import InvalidACLError, NoAuthError  # noqa: E402
from kazoo.security import make_acl, make_digest_acl  # noqa: E402

JAAS = """// kazoo's test harness writes this one
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
"""
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


def _sasl_client(hosts: str, user: str, password: str):
    return kazoo_client.KazooClient(hosts, sasl_options={
        "mechanism": "DIGEST-MD5", "username": user, "password": password})


@pytest.fixture(scope="module")
def jaas_file():
    d = tempfile.mkdtemp(prefix="zabpy-sasl-")
    path = os.path.join(d, "jaas.conf")
    with open(path, "w") as f:
        f.write(JAAS)
    yield path
    shutil.rmtree(d, ignore_errors=True)


def _zabpy(jaas: str, *extra: str) -> ZabpyServer:
    cfg = "\n".join(["tickTime=200", f"authProvider.1={SASL_PROVIDER}",
                     f"java.security.auth.login.config={jaas}", *extra])
    return ZabpyServer(config_text=cfg, subprocess=True)


@pytest.fixture(scope="module")
def zsasl(jaas_file):
    with _zabpy(jaas_file) as s:
        yield s


@pytest.fixture(scope="module")
def jsasl(jaas_file):
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-sasl-")
    server = JavaZooKeeper(tmp, props=FUZZ_PROPS + (
        f"-Djava.security.auth.login.config={jaas_file}",
        f"-Dzookeeper.authProvider.1={SASL_PROVIDER}"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the exchange by hand ------------------------------------------------------------------


def _sasl_exchange(port: int, user: str, password: str, tamper=None):
    """Drive DIGEST-MD5 over op 102 with pure-sasl; returns (err of the last
    reply, whether the server closed, the RawClient)."""
    rc = RawClient(port)
    rc.handshake()
    cli = puresasl.SASLClient("zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                              username=user, password=password)
    token = cli.process(None) or b""
    while True:
        if tamper is not None and token:
            token = tamper(token)
        hdr, body = rc.call(OP.sasl, R.GetSASLRequest(token))
        if hdr.err != ERR.OK:
            return hdr.err, rc.closed_by_server(), rc
        challenge = R.SetSASLResponse.read(Reader(body)).token
        token = cli.process(challenge)
        if cli.complete:
            return hdr.err, False, rc


def _failure_lines(server: ZabpyServer) -> int:
    return server.read_log().count("failed to SASL authenticate")


def test_kazoo_digest_md5_login_and_sasl_acl(zsasl):
    path = f"/sasl-{uuid.uuid4().hex[:8]}"
    owner = _sasl_client(zsasl.hosts, "jaasuser", "jaas_password")
    anon = kazoo_client.KazooClient(zsasl.hosts)
    owner.start(timeout=15)
    anon.start(timeout=15)
    try:
        owner.create(path, b"secret", acl=[make_acl("sasl", "jaasuser", all=True)])
        assert owner.get(path)[0] == b"secret"
        with pytest.raises(NoAuthError):
            anon.get(path)
        assert owner.get_acls(path)[0] == [make_acl("sasl", "jaasuser", all=True)]
    finally:
        owner.stop()
        anon.stop()
        owner.close()
        anon.close()


def test_wrong_password_is_authfailed_and_closed_with_one_log_line(zsasl):
    bystander = kazoo_client.KazooClient(zsasl.hosts)
    bystander.start(timeout=15)
    try:
        before = _failure_lines(zsasl)
        err, closed, rc = _sasl_exchange(zsasl.port, "jaasuser", "wrong")
        rc.close()
        assert (err, closed) == (ERR.AUTHFAILED, True)
        wait_for(lambda: _failure_lines(zsasl) == before + 1, what="one log line")
        err, closed, rc = _sasl_exchange(zsasl.port, "nobody", "jaas_password")
        rc.close()
        assert (err, closed) == (ERR.AUTHFAILED, True)
        # other sessions go on
        bystander.create(f"/bystander-{uuid.uuid4().hex[:8]}", b"ok")
        err, closed, rc = _sasl_exchange(zsasl.port, "jaasuser", "jaas_password")
        assert (err, closed) == (ERR.OK, False)
        rc.close()
    finally:
        bystander.stop()
        bystander.close()


@pytest.mark.parametrize("tamper", [
    lambda t: b"\x00\xffgarbage",
    lambda t: t.replace(b"nc=00000001", b"nc=00000002"),
    lambda t: t.replace(b"zookeeper/zk-sasl-md5", b"zookeeper/otherhost"),
    lambda t: t + b',username="again"',
    lambda t: t + b',x="' + b"a" * 5000 + b'"',
], ids=["garbage", "nonce-count", "digest-uri", "repeated-directive", "oversized"])
def test_malformed_response_tokens_are_authfailed(zsasl, tamper):
    state = {"n": 0}

    def second_only(t):  # the first token is the empty opening one
        state["n"] += 1
        return tamper(t) if state["n"] == 1 else t

    err, closed, rc = _sasl_exchange(zsasl.port, "jaasuser", "jaas_password", second_only)
    rc.close()
    assert (err, closed) == (ERR.AUTHFAILED, True)


def test_undecodable_sasl_body_closes_the_connection(zsasl):
    rc = RawClient(zsasl.port)
    rc.handshake()
    rc.send(OP.sasl, b"\x00\x00\x10\x00abc")  # a buffer longer than the frame
    assert rc.closed_by_server()
    rc.close()


def _acl_outcomes(hosts: str) -> list:
    """What each identity may do with sasl ACLs, as (step, outcome) pairs."""
    tag = uuid.uuid4().hex[:8]
    path = f"/acl-{tag}"
    out = []
    owner = _sasl_client(hosts, "jaasuser", "jaas_password")
    superuser = _sasl_client(hosts, "super", "super_secret")
    anon = kazoo_client.KazooClient(hosts)
    digest = kazoo_client.KazooClient(hosts, auth_data=[("digest", "jaasuser:jaas_password")])
    clients = (owner, superuser, anon, digest)
    for c in clients:
        c.start(timeout=20)

    def attempt(step, fn):
        try:
            r = fn()
            out.append((step, r.decode() if isinstance(r, bytes) else r if isinstance(r, str) else "ok"))
        except (NoAuthError, InvalidACLError) as e:
            out.append((step, type(e).__name__))

    try:
        attempt("create", lambda: owner.create(path, b"d", acl=[make_acl("sasl", "jaasuser", all=True)])
                and None)
        attempt("owner-get", lambda: owner.get(path)[0])
        attempt("sasl-super-get", lambda: superuser.get(path)[0])
        attempt("anon-get", lambda: anon.get(path)[0])
        attempt("digest-get", lambda: digest.get(path)[0])
        attempt("anon-set", lambda: anon.set(path, b"x") and None)
        attempt("auth-acl", lambda: owner.create(path + "/a", b"", acl=[make_acl("auth", "", all=True)])
                and str(owner.get_acls(path + "/a")[0]))
        attempt("other-user-acl", lambda: owner.create(path + "/b", b"", acl=[make_acl("sasl", "bob", read=True)])
                and None)
        attempt("bad-principal-acl",
                lambda: owner.create(path + "/c", b"", acl=[make_acl("sasl", "a@b@c", read=True)]) and None)
        attempt("kerberos-acl",
                lambda: owner.create(path + "/d", b"", acl=[make_acl("sasl", "zk/host@REALM", read=True)])
                and None)
        attempt("x509-acl-without-provider",
                lambda: owner.create(path + "/e", b"", acl=[make_acl("x509", "CN=a", read=True)]) and None)
        attempt("digest-acl", lambda: owner.create(path + "/f", b"",
                                                   acl=[make_digest_acl("u", "p", read=True)]) and None)
        attempt("owner-get-bob-node", lambda: owner.get(path + "/b")[0])
    finally:
        for c in clients:
            c.stop()
            c.close()
    return out


def test_same_acl_results_as_java(zsasl, jsasl):
    ours = _acl_outcomes(zsasl.hosts)
    theirs = _acl_outcomes(jsasl.hosts)
    assert ours == theirs
    expected = dict(ours)
    assert expected["owner-get"] == "d" and expected["sasl-super-get"] == "d"
    assert expected["anon-get"] == expected["digest-get"] == "NoAuthError"
    assert expected["bad-principal-acl"] == expected["x509-acl-without-provider"] == "InvalidACLError"
    assert "sasl" in expected["auth-acl"] and "jaasuser" in expected["auth-acl"]


def test_wrong_password_same_answer_as_java(zsasl, jsasl):
    for port in (zsasl.port, jsasl.port):
        err, closed, rc = _sasl_exchange(port, "jaasuser", "wrong")
        rc.close()
        assert (err, closed) == (ERR.AUTHFAILED, True), port


# ---- settings that change the answer --------------------------------------------------------


def _enforcing_java(jaas):
    reason = java_missing()
    if reason:
        pytest.skip(f"Java ZooKeeper comparison skipped: {reason}")
    tmp = tempfile.mkdtemp(prefix="zabpy-javazk-enforce-")
    return tmp, JavaZooKeeper(tmp, props=FUZZ_PROPS + (
        f"-Djava.security.auth.login.config={jaas}", f"-Dzookeeper.authProvider.1={SASL_PROVIDER}",
        "-Dzookeeper.enforce.auth.enabled=true", "-Dzookeeper.enforce.auth.schemes=sasl"))


@pytest.mark.parametrize("server", ["zabpy", "java"])
def test_enforced_sasl_refuses_unauthenticated_requests(jaas_file, server):
    if server == "java":
        tmp, java = _enforcing_java(jaas_file)
        try:
            java.start()
            _enforcement_answers(java)
        finally:
            java.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        return
    with _zabpy(jaas_file, "enforce.auth.enabled=true", "enforce.auth.schemes=sasl") as s:
        _enforcement_answers(s)


def _enforcement_answers(s):
    """Java and zabpy give the same answers under enforce.auth.schemes=sasl."""
    rc = RawClient(s.port)
    rc.handshake()
    hdr, _ = rc.call(OP.exists, R.ExistsRequest("/", False))
    assert hdr.err == ERR.SESSIONCLOSEDREQUIRESASLAUTH
    assert rc.closed_by_server()
    rc.close()
    err, closed, rc = _sasl_exchange(s.port, "jaasuser", "jaas_password")
    assert (err, closed) == (ERR.OK, False)
    hdr, _ = rc.call(OP.exists, R.ExistsRequest("/", False))
    assert hdr.err == ERR.OK
    rc.close()
    # a failed exchange under enforcement says why
    err, closed, rc = _sasl_exchange(s.port, "jaasuser", "wrong")
    rc.close()
    assert (err, closed) == (ERR.SESSIONCLOSEDREQUIRESASLAUTH, True)


def test_allow_sasl_failed_clients_keeps_the_connection(jaas_file):
    with _zabpy(jaas_file, "allowSaslFailedClients=true") as s:
        rc = RawClient(s.port)
        rc.handshake()
        cli = puresasl.SASLClient("zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                                  username="jaasuser", password="wrong")
        hdr, body = rc.call(OP.sasl, R.GetSASLRequest(b""))
        token = cli.process(R.SetSASLResponse.read(Reader(body)).token)
        hdr, body = rc.call(OP.sasl, R.GetSASLRequest(token))
        assert hdr.err == ERR.OK and R.SetSASLResponse.read(Reader(body)).token is None
        hdr, _ = rc.call(OP.exists, R.ExistsRequest("/", False))
        assert hdr.err == ERR.OK
        rc.close()


def test_sasl_super_user_property(jaas_file):
    with _zabpy(jaas_file, "superUser=jaasuser") as s:
        path = f"/locked-{uuid.uuid4().hex[:8]}"
        other = kazoo_client.KazooClient(s.hosts, auth_data=[("digest", "u:p")])
        boss = _sasl_client(s.hosts, "jaasuser", "jaas_password")
        other.start(timeout=15)
        boss.start(timeout=15)
        try:
            other.create(path, b"mine", acl=[make_digest_acl("u", "p", all=True)])
            assert boss.get(path)[0] == b"mine"  # super passes every ACL
        finally:
            other.stop(), boss.stop(), other.close(), boss.close()


def test_bad_jaas_file_stops_the_server(tmp_path):
    bad = tmp_path / "jaas.conf"
    bad.write_text("Server { DigestLoginModule required user_a=\"b\" };")  # no ';' after the module
    with pytest.raises(RuntimeError, match="JAAS"):
        with _zabpy(str(bad)):
            pass


def test_jaas_without_server_section_leaves_sasl_off(tmp_path):
    empty = tmp_path / "jaas.conf"
    empty.write_text("")  # what kazoo's harness writes for the non-SASL tests
    with _zabpy(str(empty)) as s:
        err, closed, rc = _sasl_exchange(s.port, "jaasuser", "jaas_password")
        rc.close()
        assert (err, closed) == (ERR.AUTHFAILED, True)


# ---- the pure parts -------------------------------------------------------------------------


def test_jaas_parser():
    sections = parse_jaas(JAAS + '\n/* more */ QuorumServer { a.B optional k=v x="y\\"z"; };')
    assert digest_credentials(sections["Server"]) == {"super": "super_secret",
                                                      "jaasuser": "jaas_password"}
    assert sections["QuorumServer"][0].options == {"k": "v", "x": 'y"z'}
    assert parse_jaas("") == {}
    for bad in ("Server {", "Server { a.B bogusflag; };", "Server { a.B required k; };"):
        with pytest.raises(JaasError):
            parse_jaas(bad)


@pytest.mark.parametrize("name,host,realm,want", [
    ("bob", False, False, "bob"),
    ("zookeeper/h.example@EXAMPLE.COM", False, False, "zookeeper/h.example@EXAMPLE.COM"),
    ("zookeeper/h.example@EXAMPLE.COM", True, False, "zookeeper@EXAMPLE.COM"),
    ("zookeeper/h.example@EXAMPLE.COM", True, True, "zookeeper"),
    ("bob@EXAMPLE.COM", False, True, "bob"),
    ("bob@OTHER.ORG", True, True, None),  # DEFAULT rule does not apply: name kept
])
def test_principal_canonicalization(name, host, realm, want):
    s = AuthSettings(remove_host=host, remove_realm=realm, default_realm="EXAMPLE.COM")
    assert canonical_principal(name, s) == want


def test_digest_md5_core_with_pure_sasl_client():
    # (pure-sasl sends no charset=utf-8, so names are read as ISO 8859-1, as
    # the JDK's server reads them: only ASCII names round-trip with it)
    users = {"jaasuser": "jaas_password", "a.b-c_d": "p@ss:w,o\"rd"}
    for user, password in users.items():
        srv = DigestMD5Server(users.get, lambda n: bytes(range(n)))
        cli = puresasl.SASLClient("zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                                  username=user, password=password)
        challenge = srv.evaluate(b"")
        assert b'realm="zk-sasl-md5"' in challenge and b'qop="auth"' in challenge
        rspauth = srv.evaluate(cli.process(challenge))
        assert srv.complete and srv.authentication_id == user
        assert cli.process(rspauth) is None and cli.complete  # the server proved the password too
    srv = DigestMD5Server(users.get, lambda n: bytes(n))
    cli = puresasl.SASLClient("zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                              username="jaasuser", password="nope")
    with pytest.raises(SaslError):
        srv.evaluate(cli.process(srv.evaluate(b"")))
    with pytest.raises(SaslError):
        srv.evaluate(b"")  # no second try on the same exchange


def test_cli_finds_the_jaas_file_beside_zoo_cfg(tmp_path):
    """No --jaas, no JVM flag, no zoo.cfg key: a jaas.conf beside zoo.cfg
    (where kazoo's harness writes it) is read, and the start-up log says so."""
    import subprocess
    import sys

    from zabpy.testing import four_letter_word, free_port

    port = free_port()
    (tmp_path / "jaas.conf").write_text(JAAS)
    (tmp_path / "zoo.cfg").write_text(f"tickTime=200\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                                      f"admin.enableServer=false\nauthProvider.1={SASL_PROVIDER}\n")
    log = open(tmp_path / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if k not in ("JVMFLAGS", "SERVER_JVMFLAGS")}
    proc = subprocess.Popen([sys.executable, "-m", "zabpy", "server", str(tmp_path / "zoo.cfg")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        def serving():
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return "Mode:" in four_letter_word("127.0.0.1", port, "srvr", 1)
            except OSError:
                return False
        wait_for(serving, 30, what="zabpy server")
        err, closed, rc = _sasl_exchange(port, "jaasuser", "jaas_password")
        rc.close()
        assert (err, closed) == (ERR.OK, False)
        assert f"JAAS file {tmp_path / 'jaas.conf'}" in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_java_client_logs_in_with_digest_md5(zsasl, tmp_path):
    """Java's own SASL client (zkCli with a JAAS Client section) against
    zabpy: it checks the server's rspauth, then reads a sasl-protected node."""
    reason = java_missing()
    if reason:
        pytest.skip(f"Java client skipped: {reason}")
    import subprocess

    from zabpy.testing.difffuzz.servers import JAVA_JARS

    path = f"/java-{uuid.uuid4().hex[:8]}"
    owner = _sasl_client(zsasl.hosts, "jaasuser", "jaas_password")
    owner.start(timeout=15)
    owner.create(path, b"hello-java", acl=[make_acl("sasl", "jaasuser", all=True)])
    owner.stop()
    owner.close()
    conf = tmp_path / "client.conf"
    conf.write_text('Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n'
                    '  username="jaasuser"\n  password="jaas_password";\n};\n')
    r = subprocess.run(["java", "-cp", ":".join(JAVA_JARS), f"-Djava.security.auth.login.config={conf}",
                        "org.apache.zookeeper.ZooKeeperMain", "-server", zsasl.hosts, "get", path],
                       capture_output=True, text=True, timeout=120)
    assert "state:SaslAuthenticated" in r.stdout, r.stdout + r.stderr
    assert "hello-java" in r.stdout


def test_sasl_in_an_ensemble(jaas_file):
    """A follower runs the exchange; the leader, preparing the forwarded
    create, accepts the sasl ACL and the follower enforces it."""
    from zabpy.testing import ZabpyEnsemble

    extra = f"authProvider.1={SASL_PROVIDER}\njava.security.auth.login.config={jaas_file}"
    with ZabpyEnsemble(3, extra=extra) as ens:
        follower = next(s for s in ens.sids if s != ens.leader())
        owner = _sasl_client(ens.host(follower), "jaasuser", "jaas_password")
        anon = kazoo_client.KazooClient(ens.host(ens.leader()))
        owner.start(timeout=20)
        anon.start(timeout=20)
        try:
            owner.create("/ens-sasl", b"s", acl=[make_acl("sasl", "jaasuser", all=True)])
            assert owner.get("/ens-sasl")[0] == b"s"
            anon.sync("/ens-sasl")
            with pytest.raises(NoAuthError):
                anon.get("/ens-sasl")
        finally:
            for c in (owner, anon):
                c.stop()
                c.close()
        err, closed, rc = _sasl_exchange(ens.client_ports[follower], "jaasuser", "wrong")
        rc.close()
        assert (err, closed) == (ERR.AUTHFAILED, True)
