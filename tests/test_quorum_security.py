"""Quorum TLS (sslQuorum, ssl.quorum.*, portUnification) and quorum SASL
(quorum.auth.*, DIGEST-MD5 with the QuorumServer/QuorumLearner JAAS
sections) between real server processes: zabpy-only ensembles and mixed
ensembles with Debian's Java ZooKeeper 3.8 (QuorumPeerMain), configured
alike. Reference: ZooKeeper 3.8 Administrator's Guide, "Quorum TLS" and
"Quorum Peer Mutual Authentication" (QuorumCnxManager, Learner,
LearnerHandler, SaslQuorumAuthServer/Learner).

Each ensemble uses free ports and a temporary directory; no fixed sleeps:
every wait is for a member's mode (srvr) or a log line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest
from kazoo.client import KazooClient

from zabpy.testing import four_letter_word, free_ports, wait_for
from zabpy.testing.difffuzz.servers import JAVA_JARS, java_missing

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is absent")
SERVING = ("leader", "follower", "observer")
WORKTREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETTY = ("/usr/share/java/netty-codec.jar",)
# ZABPY_SECURITY_FULL=1 runs the tests whose ground another CI test covers too
full_only = pytest.mark.skipif(not os.environ.get("ZABPY_SECURITY_FULL"),
                               reason="set ZABPY_SECURITY_FULL=1 (covered in CI by a sibling test)")
needs_java = pytest.mark.skipif(java_missing() is not None, reason=f"{java_missing()}")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=d)


def _leaf(d, ca: str, name: str) -> None:
    """A server certificate signed by ``ca``, naming 127.0.0.1 and localhost
    (ZooKeeper checks the peer's address both ways), key and chain in one PEM."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    (d / f"{name}.pem").write_text((d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("quorum-pki")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _leaf(d, "ca", "quorum")
    _leaf(d, "rogue-ca", "rogue")
    # the same key and chain as a PKCS12 store (ZooKeeper's other portable type)
    _openssl("pkcs12", "-export", "-inkey", "quorum.key", "-in", "quorum.crt", "-out",
             "quorum.p12", "-passout", "pass:secret", cwd=d)
    return d


def tls_keys(pki, leaf: str = "quorum", ca: str = "ca") -> str:
    return (f"sslQuorum=true\nssl.quorum.keyStore.location={pki}/{leaf}.pem\n"
            f"ssl.quorum.keyStore.type=PEM\nssl.quorum.trustStore.location={pki}/{ca}.pem\n"
            "ssl.quorum.trustStore.type=PEM\n")


SASL_KEYS = ("quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n"
             "quorum.auth.serverRequireSasl=true\n")


def jaas(password: str = "qpass") -> str:
    return ("QuorumServer {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
            '    user_zkquorum="qpass";\n};\n'
            "QuorumLearner {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
            f'    username="zkquorum"\n    password="{password}";\n}};\n')


class Ensemble:
    """Members of one ensemble, each ``zabpy`` or ``java``, with per-member
    extra zoo.cfg text and JAAS file."""

    def __init__(self, kinds: dict[int, str], extra: dict[int, str], jaas_text: dict[int, str] | None = None,
                 java_flags: tuple[str, ...] = ()):
        self.kinds = kinds
        self.java_flags = java_flags
        self.dir = tempfile.mkdtemp(prefix="zabpy-qsec-")
        ports = iter(free_ports(3 * len(kinds)))
        self.client = {s: next(ports) for s in kinds}
        self.quorum = quorum = {s: next(ports) for s in kinds}
        self.election = election = {s: next(ports) for s in kinds}
        servers = [f"server.{s}=127.0.0.1:{quorum[s]}:{election[s]}" for s in kinds]
        self.procs: dict[int, subprocess.Popen] = {}
        for s in kinds:
            data = os.path.join(self.dir, f"data{s}")
            os.makedirs(data)
            with open(os.path.join(data, "myid"), "w") as f:
                f.write(f"{s}\n")
            cfg = ["tickTime=200", "initLimit=10", "syncLimit=5", f"dataDir={data}",
                   f"clientPort={self.client[s]}", "clientPortAddress=127.0.0.1",
                   "4lw.commands.whitelist=*", "admin.enableServer=false", *servers,
                   extra.get(s, "")]
            with open(self._path(s, "zoo.cfg"), "w") as f:
                f.write("\n".join(cfg) + "\n")
            if jaas_text and s in jaas_text:
                with open(self._path(s, "jaas.conf"), "w") as f:
                    f.write(jaas_text[s])
        self.jaas = jaas_text or {}

    def _path(self, sid: int, name: str) -> str:
        return os.path.join(self.dir, f"{sid}-{name}")

    def log(self, sid: int) -> str:
        with open(self._path(sid, "server.log"), errors="replace") as f:
            return f.read()

    def start(self, sid: int) -> None:
        env = dict(os.environ, PYTHONPATH=WORKTREE)
        flags = [f"-Djava.security.auth.login.config={self._path(sid, 'jaas.conf')}"] \
            if sid in self.jaas else []
        if self.kinds[sid] == "zabpy":
            env["SERVER_JVMFLAGS"] = " ".join(flags)
            cmd = [sys.executable, "-m", "zabpy", "server", self._path(sid, "zoo.cfg")]
        else:
            log4j = self._path(sid, "log4j.properties")
            with open(log4j, "w") as f:
                f.write("log4j.rootLogger=INFO, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n"
                        f"log4j.appender.F.File={self._path(sid, 'server.log')}\n"
                        "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                        "log4j.appender.F.layout.ConversionPattern=%d %p %c{1} - %m%n\n")
            # UnifiedServerSocket (TLS on the quorum ports) tells TLS from plain text with
            # netty's SslHandler, which needs netty-codec: Debian's zookeeper.jar manifest
            # lists netty-handler but not netty-codec, and without it Java's election
            # listener thread dies (NoClassDefFoundError) on its first TLS connection
            cmd = ["java", "-Xmx192m", "-XX:TieredStopAtLevel=1", "-cp", ":".join(JAVA_JARS + NETTY),
                   f"-Dlog4j.configuration=file:{log4j}", *flags, *self.java_flags,
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", self._path(sid, "zoo.cfg")]
        out = self._path(sid, "server.log" if self.kinds[sid] == "zabpy" else "stdout.log")
        with open(out, "ab") as f:
            self.procs[sid] = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                               start_new_session=True, env=env)

    def leader(self) -> int:
        return next(s for s in self.kinds if self.mode(s) == "leader")

    def mode(self, sid: int) -> str | None:
        try:
            text = four_letter_word("127.0.0.1", self.client[sid], "srvr", 2)
        except OSError:
            return None
        return next((ln[6:] for ln in text.splitlines() if ln.startswith("Mode: ")), None)

    def wait_serving(self, sids, timeout: float = 40.0) -> None:
        try:
            wait_for(lambda: all(self.mode(s) in SERVING for s in sids), timeout,
                     what=f"members {sids} serving")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.diagnosis()}") from None

    def wait_log(self, sid: int, text: str, timeout: float = 30.0) -> None:
        try:
            wait_for(lambda: text in self.log(sid), timeout, what=f"{text!r} in member {sid}'s log")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        return "\n".join(f"--- member {s} ({self.kinds[s]}): mode {self.mode(s)!r}\n"
                         + "\n".join([ln for ln in self.log(s).splitlines()
                                      if "Processing srvr command" not in ln][-40:])
                         for s in self.kinds)

    def replicate(self, sids) -> None:
        """A write through each member is read back through every member."""
        clients = {s: KazooClient(hosts=f"127.0.0.1:{self.client[s]}", timeout=10) for s in sids}
        try:
            for c in clients.values():
                c.start(timeout=20)
            tag = os.urandom(4).hex()
            for s, c in clients.items():
                c.create(f"/via-{s}-{tag}", str(s).encode())
            for c in clients.values():
                c.sync("/")
                assert sorted(x for x in c.get_children("/") if x.endswith(tag)) == \
                    sorted(f"via-{s}-{tag}" for s in sids)
        finally:
            for c in clients.values():
                c.stop()
                c.close()

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if not os.environ.get("ZABPY_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- TLS ------------------------------------------------------------------------------

def test_zabpy_ensemble_forms_over_tls(pki):
    with Ensemble({1: "zabpy", 2: "zabpy", 3: "zabpy"}, {s: tls_keys(pki) for s in (1, 2, 3)}) as e:
        for s in e.kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        # a plain-text peer on the TLS-only ports: closed, one log line each
        for port in (e.election[1], e.quorum[e.leader()]):
            with socket.create_connection(("127.0.0.1", port), 5) as sock:
                sock.sendall(b"\x00\x00\x00\x00\x00\x00\x00\x01plain")
                sock.settimeout(5)
                try:
                    assert sock.recv(100) == b""
                except ConnectionResetError:
                    pass  # closed with our bytes unread: a reset, also a close
        e.wait_log(1, "plain text on a TLS-only port")
        e.replicate([1, 2, 3])



def test_member_far_behind_syncs_by_snap_over_tls(pki):
    # Zab §3 phase 2 (LeaderSyncFollower): a member behind the leader's
    # committed log (ZAB_COMMITTED_LOG_MAX) gets a SNAP; its image, larger
    # than QUORUM_SNAP_PART_BYTES, goes through the TLS link a part per loop
    # turn, each once the link's buffer drained (issue 19).
    keys = tls_keys(pki) + "snapshotSizeFactor=-1\n"
    with Ensemble({1: "zabpy", 2: "zabpy", 3: "zabpy"}, {s: keys for s in (1, 2, 3)}) as e:
        for s in e.kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        leader = e.leader()
        victim = next(s for s in e.kinds if s != leader)
        os.killpg(e.procs[victim].pid, signal.SIGKILL)
        e.procs[victim].wait()
        c = KazooClient(hosts=f"127.0.0.1:{e.client[leader]}", timeout=10)
        c.start(timeout=20)
        try:
            c.create("/far", b"")
            for start in range(0, 700, 100):   # > 500 txns, about 3 MB of data
                for a in [c.create_async(f"/far/n{i}", bytes([i % 251]) * 4096)
                          for i in range(start, start + 100)]:
                    a.get(timeout=20)
        finally:
            c.stop()
            c.close()
        e.start(victim)
        e.wait_serving([victim])
        e.wait_log(victim, "Getting a snapshot from leader")
        e.replicate([1, 2, 3])
        v = KazooClient(hosts=f"127.0.0.1:{e.client[victim]}", timeout=10)
        v.start(timeout=20)
        try:
            v.sync("/far")
            assert len(v.get_children("/far")) == 700
            assert v.get("/far/n699")[0] == bytes([699 % 251]) * 4096
        finally:
            v.stop()
            v.close()

@needs_java
def test_mixed_ensemble_forms_over_tls(pki):
    """Two zabpy members and a Java 3.8 one, sslQuorum on all: election and
    quorum links cross implementations over TLS (with hostname checks)."""
    kinds = {1: "zabpy", 2: "java", 3: "zabpy"}
    with Ensemble(kinds, {s: tls_keys(pki) for s in kinds}) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        assert "SSL handshake complete" in e.log(2) or "Creating TLS-only quorum server socket" in e.log(2)


def test_untrusted_certificate_cannot_join(pki):
    """A member whose certificate another CA signed cannot join; the
    others keep their quorum and log the failed handshake."""
    extra = {1: tls_keys(pki), 2: tls_keys(pki), 3: tls_keys(pki, "rogue", "rogue-ca")}
    with Ensemble({1: "zabpy", 2: "zabpy", 3: "zabpy"}, extra) as e:
        for s in (1, 2, 3):
            e.start(s)
        e.wait_serving([1, 2])
        e.wait_log(1, "Unsuccessful TLS handshake on a quorum port")
        assert e.mode(3) not in SERVING
        e.replicate([1, 2])
        assert e.mode(3) not in SERVING


def test_port_unification_takes_plain_and_tls_peers(pki):
    """portUnification=true: member 1 dials over TLS (sslQuorum) while member 2
    is a plain-text member; member 3 accepts both (the rolling-upgrade step)."""
    uni = "portUnification=true\n"
    keys = tls_keys(pki)
    extra = {1: keys + uni, 2: uni + keys.replace("sslQuorum=true", "sslQuorum=false"), 3: keys + uni}
    with Ensemble({1: "zabpy", 2: "zabpy", 3: "zabpy"}, extra) as e:
        for s in (1, 2, 3):
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])


def _quorum_cfg(text: str):
    from zabpy.runtime.config import parse_config
    cfg, _ = parse_config("tickTime=200\ninitLimit=10\nsyncLimit=5\nclientPort=2181\n"
                          "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n" + text)
    return cfg


def test_pkcs12_key_store_handshakes_with_a_pem_peer(pki):
    """A PKCS12 key store (ZooKeeper's other portable type) read with
    cryptography: a real TLS handshake over a socket pair, the PKCS12 side
    accepting a PEM-configured dialer that verifies its certificate."""
    import threading

    from zabpy.runtime.quorum_security import load_quorum_security
    from zabpy.runtime.security import AuthConfigError
    p12 = _quorum_cfg(f"sslQuorum=true\nssl.quorum.keyStore.location={pki}/quorum.p12\n"
                      "ssl.quorum.keyStore.password=secret\n"
                      f"ssl.quorum.trustStore.location={pki}/ca.pem\n")
    pem = _quorum_cfg(tls_keys(pki))
    server_ctx = load_quorum_security(p12, environ={}).tls_server.get()
    client_ctx = load_quorum_security(pem, environ={}).tls_client.get()
    a, b = socket.socketpair()
    seen = {}

    def serve():
        with server_ctx.wrap_socket(a, server_side=True) as s:
            seen["client"] = s.getpeercert()["subject"]
            s.sendall(b"ok")

    t = threading.Thread(target=serve)
    t.start()
    with client_ctx.wrap_socket(b, server_hostname="127.0.0.1") as c:
        assert c.recv(2) == b"ok"
        assert dict(x[0] for x in c.getpeercert()["subject"])["commonName"] == "quorum"
    t.join(10)
    assert dict(x[0] for x in seen["client"])["commonName"] == "quorum"
    with pytest.raises(AuthConfigError, match="PKCS12"):  # the wrong password
        load_quorum_security(_quorum_cfg(
            f"sslQuorum=true\nssl.quorum.keyStore.location={pki}/quorum.p12\n"
            "ssl.quorum.keyStore.password=nope\n"), environ={})


def test_reload_cert_files_takes_the_new_stores(pki, tmp_path):
    """sslQuorumReloadCertFiles=true: the next connection uses the stores as
    they are on disk now; without it the first ones stay."""
    from zabpy.runtime.quorum_security import load_quorum_security
    store = tmp_path / "quorum.pem"
    store.write_text((pki / "quorum.pem").read_text())
    text = tls_keys(pki).replace(f"{pki}/quorum.pem", str(store))
    on = load_quorum_security(_quorum_cfg(text + "sslQuorumReloadCertFiles=true\n"), environ={})
    off = load_quorum_security(_quorum_cfg(text), environ={})
    first_on, first_off = on.tls_server.get(), off.tls_server.get()
    assert on.tls_server.get() is first_on   # unchanged files: the same context
    store.write_text((pki / "rogue.pem").read_text())
    os.utime(store, ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert on.tls_server.get() is not first_on
    assert off.tls_server.get() is first_off


def test_unreadable_store_types_stop_the_server(pki):
    from zabpy.runtime.quorum_security import load_quorum_security
    from zabpy.runtime.security import AuthConfigError
    with pytest.raises(AuthConfigError, match="JKS"):
        load_quorum_security(_quorum_cfg(
            f"sslQuorum=true\nssl.quorum.keyStore.location={pki}/quorum.jks\n"), environ={})
    with pytest.raises(AuthConfigError, match="keyStore.location"):
        load_quorum_security(_quorum_cfg("sslQuorum=true\n"), environ={})
    with pytest.raises(AuthConfigError, match="enableSasl"):
        load_quorum_security(_quorum_cfg("quorum.auth.serverRequireSasl=true\n"), environ={})


# ---- SASL -----------------------------------------------------------------------------

def test_zabpy_ensemble_forms_with_quorum_sasl():
    kinds = {1: "zabpy", 2: "zabpy", 3: "zabpy"}
    with Ensemble(kinds, {s: SASL_KEYS for s in kinds}, {s: jaas() for s in kinds}) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        assert any("Successfully authenticated learner" in e.log(s) for s in kinds)


@full_only  # CI: the wrong-password test forms a Java + zabpy quorum with SASL
@needs_java
def test_mixed_ensemble_forms_with_quorum_sasl():
    kinds = {1: "java", 2: "zabpy", 3: "zabpy"}
    with Ensemble(kinds, {s: SASL_KEYS for s in kinds}, {s: jaas() for s in kinds}) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        assert "Successfully authenticated learner" in e.log(1) or \
            "Successfully completed the authentication using SASL" in e.log(1)


@needs_java
def test_wrong_quorum_password_is_refused_by_java_and_zabpy():
    """Member 3 (zabpy) has the wrong QuorumLearner password: the Java member
    and the zabpy member refuse it, say so in their logs, and keep their
    quorum; member 3 logs why it cannot join."""
    kinds = {1: "java", 2: "zabpy", 3: "zabpy"}
    j = {1: jaas(), 2: jaas(), 3: jaas("wrong")}
    with Ensemble(kinds, {s: SASL_KEYS for s in kinds}, j) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2])
        e.wait_log(3, "Quorum SASL authentication to")
        e.wait_log(2, "Failed to authenticate using SASL")
        e.wait_log(1, "Failed to authenticate using SASL")
        assert e.mode(3) not in SERVING
        e.replicate([1, 2])


def test_learner_without_sasl_refused_when_server_requires_it():
    """serverRequireSasl=true on 1 and 2; member 3 enables SASL but does not
    authenticate (learnerRequireSasl=false): it is refused."""
    lax = "quorum.auth.enableSasl=true\n"
    kinds = {1: "zabpy", 2: "zabpy", 3: "zabpy"}
    with Ensemble(kinds, {1: SASL_KEYS, 2: SASL_KEYS, 3: lax}, {s: jaas() for s in kinds}) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2])
        e.wait_log(1, "Learner not trying to authenticate")
        assert e.mode(3) not in SERVING
