"""A throwaway MIT Kerberos KDC for tests (Debian's krb5-kdc, krb5-user).

``Kdc(tmpdir)`` writes a krb5.conf and kdc.conf for the realm ZABPY.TEST
with the KDC on a free loopback port (TCP and UDP), creates the database
with kdb5_util, and starts ``krb5kdc -n`` in the foreground; ``principal``
adds a principal with a random key and writes its keytab; ``kinit`` gets a
ticket into a credential cache file; ``stop`` kills the KDC by its pid.
Every command runs with KRB5_CONFIG / KRB5_KDC_PROFILE pointing into the
directory, so nothing on the machine (/etc/krb5.conf) is read or changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess

from zabpy.testing import free_port, wait_for

REALM = "ZABPY.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def kdc_missing() -> str | None:
    for tool in TOOLS:
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is absent (apt-get install krb5-kdc krb5-admin-server krb5-user)"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Kdc:
    def __init__(self, d: str):
        self.dir = d
        self.port = free_port()
        self.krb5_conf = os.path.join(d, "krb5.conf")
        self.kdc_conf = os.path.join(d, "kdc.conf")
        with open(self.krb5_conf, "w") as f:
            f.write(f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    ignore_acceptor_hostname = true
    udp_preference_limit = 1
    ticket_lifetime = 1h
    forwardable = false
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{self.port}
    }}
[domain_realm]
    localhost = {REALM}
    127.0.0.1 = {REALM}
""")
        with open(self.kdc_conf, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_ports = {self.port}
    kdc_tcp_ports = {self.port}
[realms]
    {REALM} = {{
        database_name = {d}/principal
        key_stash_file = {d}/stash
        acl_file = {d}/kadm5.acl
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 1h
    }}
[logging]
    kdc = FILE:{d}/kdc.log
""")
        self.env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5_KDC_PROFILE=self.kdc_conf)
        self.proc: subprocess.Popen | None = None

    def _run(self, *cmd: str) -> str:
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr or r.stdout}")
        return r.stdout

    def start(self) -> "Kdc":
        self._run(_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", "master-secret")
        self.proc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", REALM], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

        def listening() -> bool:
            assert self.proc.poll() is None, "krb5kdc exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, 20, what="krb5kdc listening")
        return self

    def principal(self, name: str) -> str:
        """Add ``name`` with a random key; returns the path of its keytab."""
        keytab = os.path.join(self.dir, name.replace("/", "_") + ".keytab")
        self._run(_tool("kadmin.local"), "-r", REALM, "-q", f"addprinc -randkey {name}")
        self._run(_tool("kadmin.local"), "-r", REALM, "-q", f"ktadd -k {keytab} {name}")
        return keytab

    def kinit(self, name: str, keytab: str) -> str:
        """Put a ticket for ``name`` into the directory collection of credential
        caches (one cache per principal, so clients of several users can run in
        one process: each picks its principal's cache); returns KRB5CCNAME."""
        os.makedirs(os.path.join(self.dir, "ccaches"), exist_ok=True)
        collection = "DIR:" + os.path.join(self.dir, "ccaches")
        self._run("env", f"KRB5CCNAME={collection}", _tool("kinit"), "-kt", keytab, name)
        return collection

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
