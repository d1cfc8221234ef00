"""Quorum SASL with Kerberos (GSSAPI) between servers, against a throwaway
MIT KDC (tests/kerberos_kdc.py): QuorumServer and QuorumLearner JAAS
sections with Krb5LoginModule, quorum.auth.kerberos.servicePrincipal with
``_HOST``, and the authorized-hosts rule (a learner's principal must name an
ensemble member's host). Reference: ZooKeeper wiki "Server-Server mutual
authentication" and SaslQuorumServerCallbackHandler (3.8)."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from kerberos_kdc import REALM, Kdc, kdc_missing
from test_quorum_security import SASL_KEYS, SERVING, Ensemble, full_only, needs_java

pytest.importorskip("gssapi", reason="the gssapi package is absent")
pytestmark = pytest.mark.skipif(kdc_missing() is not None, reason=f"{kdc_missing()}")
KEYS = SASL_KEYS + "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST\n"


@pytest.fixture(scope="module")
def kdc():
    d = tempfile.mkdtemp(prefix="zabpy-qkdc-")
    k = Kdc(d)
    try:
        k.start()
        k.server_keytab = k.principal("zkquorum/127.0.0.1")
        k.learner_keytab = k.principal("learner/127.0.0.1")
        k.rogue_keytab = k.principal("learner/10.9.9.9")
        yield k
    finally:
        k.stop()
        shutil.rmtree(d, ignore_errors=True)


def _jaas(kdc, learner: str = "learner/127.0.0.1", keytab: str | None = None) -> str:
    def section(name, principal, kt):
        return (f"{name} {{\n  com.sun.security.auth.module.Krb5LoginModule required\n"
                f'  useKeyTab=true\n  keyTab="{kt}"\n  storeKey=true\n  useTicketCache=false\n'
                f'  principal="{principal}@{REALM}";\n}};\n')
    return (section("QuorumServer", "zkquorum/127.0.0.1", kdc.server_keytab)
            + section("QuorumLearner", learner, keytab or kdc.learner_keytab))


def _env(kdc, monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", kdc.krb5_conf)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{kdc.dir}/quorum-ccache")


@full_only  # CI: the foreign-host test forms a zabpy quorum with Kerberos
def test_zabpy_ensemble_forms_with_kerberos(kdc, monkeypatch):
    _env(kdc, monkeypatch)
    kinds = {1: "zabpy", 2: "zabpy", 3: "zabpy"}
    with Ensemble(kinds, {s: KEYS for s in kinds}, {s: _jaas(kdc) for s in kinds}) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        assert any(f"authenticationID=learner/127.0.0.1@{REALM}" in e.log(s) for s in kinds)


@needs_java
def test_mixed_ensemble_forms_with_kerberos(kdc, monkeypatch):
    _env(kdc, monkeypatch)
    kinds = {1: "java", 2: "zabpy", 3: "zabpy"}
    with Ensemble(kinds, {s: KEYS for s in kinds}, {s: _jaas(kdc) for s in kinds},
                  java_flags=(f"-Djava.security.krb5.conf={kdc.krb5_conf}",)) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2, 3])
        e.replicate([1, 2, 3])
        # Java (serverRequireSasl) accepted the zabpy learners' GSSAPI logins
        assert f"authenticationID=learner/127.0.0.1@{REALM}" in e.log(1)


def test_learner_principal_of_a_foreign_host_is_refused(kdc, monkeypatch):
    """Member 3 logs in as learner/10.9.9.9: a valid ticket, but not an
    ensemble member's host; the others refuse it and keep their quorum."""
    _env(kdc, monkeypatch)
    kinds = {1: "zabpy", 2: "zabpy", 3: "zabpy"}
    j = {1: _jaas(kdc), 2: _jaas(kdc), 3: _jaas(kdc, "learner/10.9.9.9", kdc.rogue_keytab)}
    with Ensemble(kinds, {s: KEYS for s in kinds}, j) as e:
        for s in kinds:
            e.start(s)
        e.wait_serving([1, 2])
        e.wait_log(1, "is not authorized to connect")
        assert e.mode(3) not in SERVING
