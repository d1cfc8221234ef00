"""Data directories shared with Apache ZooKeeper 3.8 (Debian's package), both ways.

Reference: zookeeper-facts.md section 4 (log, snapshot, restore). Java
ZooKeeper writes a data directory through a real kazoo client and zabpy
restores it to the same tree, stats, ACLs and sessions (and the same tree
digest as ZooKeeper stored in its snapshot); zabpy writes one and
ZooKeeper's own TxnLogToolkit, SnapshotFormatter and server read it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import Workload  # noqa: E402

from zabpy.jute import records as R  # noqa: E402
from zabpy.storage import TxnStore, deserialize_snapshot  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

JAR = "/usr/share/java/zookeeper.jar"
CP = f"{JAR}:/usr/share/java/slf4j-nop.jar"
JAVA = shutil.which("java")
pytestmark = pytest.mark.skipif(JAVA is None or not os.path.exists(JAR),
                                reason="java or Debian's zookeeper package is not installed")
kazoo = pytest.importorskip("kazoo.client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JavaServer:
    """A standalone ZooKeeper 3.8 on 127.0.0.1 over ``data_dir``."""

    def __init__(self, data_dir: str, tmp: str):
        self.port = _free_port()
        self.cfg = os.path.join(tmp, f"zoo-{self.port}.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={data_dir}\nclientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "maxSessionTimeout=60000\n")
        self.out = open(os.path.join(tmp, f"zk-{self.port}.out"), "wb")
        self.proc = subprocess.Popen(
            [JAVA, "-Xmx256m", "-Dzookeeper.extendedTypesEnabled=true", "-cp", CP,
             "org.apache.zookeeper.server.ZooKeeperServerMain", self.cfg],
            stdout=self.out, stderr=subprocess.STDOUT)

    def client(self):
        c = kazoo.KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=30)
        c.start(timeout=60)
        c.add_auth("digest", "bob:pw")  # reads the digest-protected nodes
        return c

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.out.close()


def _snapshot_of(client, path: str = "/") -> dict:
    """path -> (data, stat tuple, acl tuple) for every node under ``path``."""
    out = {}
    stack = [path]
    while stack:
        p = stack.pop()
        data, stat = client.get(p)
        acls, _ = client.get_acls(p)
        out[p] = (data, tuple(stat), tuple((a.perms, a.id.scheme, a.id.id) for a in acls))
        prefix = "" if p == "/" else p
        stack.extend(prefix + "/" + c for c in client.get_children(p))
    return out


def _client_stat(n) -> tuple:
    """The Stat a client sees for a restored node, by ZooKeeper's DataNode.copyStat:
    cversion is reported as 2*cversion - numChildren, and container/TTL owners as 0."""
    kids = len(n.children)
    owner = 0 if n.ephemeral_owner < 0 else n.ephemeral_owner
    return (n.czxid, n.mzxid, n.ctime, n.mtime, n.version, 2 * n.cversion - kids, n.aversion,
            owner, len(n.data) if n.data else 0, kids, n.pzxid)


def _tree_view(tree: DataTree) -> dict:
    out = {}
    for p, n in tree.nodes.items():
        stat = _client_stat(n)
        out[p] = (n.data or b"", stat, tuple((a.perms, a.id.scheme, a.id.id) for a in n.acl))
    return out


def _java_writes(client, tag: str) -> None:
    from kazoo.security import make_digest_acl
    client.create(f"/{tag}", b"top")
    client.create(f"/{tag}/acl", b"secret", acl=[make_digest_acl("bob", "pw", all=True),
                                                 make_digest_acl("eve", "pw", read=True)])
    client.create(f"/{tag}/eph", b"e", ephemeral=True)
    for _ in range(3):
        client.create(f"/{tag}/seq-", b"s", sequence=True)
    client.create(f"/{tag}/deep/er/path", b"d", makepath=True)
    client.set(f"/{tag}", b"top-v2")
    client.set(f"/{tag}", b"top-v3")
    client.create(f"/{tag}/gone", b"x")
    client.delete(f"/{tag}/gone")
    t = client.transaction()
    t.create(f"/{tag}/multi-a", b"a")
    t.set_data(f"/{tag}", b"top-multi")
    t.create(f"/{tag}/multi-b", b"")
    assert not any(isinstance(r, Exception) for r in t.commit())
    bad = client.transaction()
    bad.create(f"/{tag}/never", b"n")
    bad.check(f"/{tag}", 999)
    bad.commit()  # fails as a whole: logged as error txns
    client.set_acls(f"/{tag}/multi-a", [make_digest_acl("bob", "pw", all=True)])


def test_java_datadir_loads_into_zabpy(tmp_path):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    # Run 1 writes and is killed with its session (and ephemeral) still open.
    zk = JavaServer(data_dir, str(tmp_path))
    try:
        c1 = zk.client()
        _java_writes(c1, "one")
    finally:
        zk.kill()
    c1.stop()
    # Run 2 loads run 1 (and snapshots at start-up), writes more, is killed.
    zk = JavaServer(data_dir, str(tmp_path))
    try:
        c2 = zk.client()
        _java_writes(c2, "two")
        expected = _snapshot_of(c2)
        session = c2.client_id[0]
        timeout = c2._session_timeout
    finally:
        zk.kill()
    c2.stop()
    c2.close()

    files = sorted(os.listdir(os.path.join(data_dir, "version-2")))
    assert any(f.startswith("snapshot.") and f != "snapshot.0" for f in files), files
    tree = DataTree()
    store = TxnStore(data_dir)
    sessions = store.restore(tree)
    result = store.last_restore
    assert result.replayed > 0 and result.snapshot_zxid > 0
    assert result.digest_ok is True  # our digest of ZooKeeper's tree matches its own
    assert sessions.get(session) == timeout
    got = _tree_view(tree)
    for path, (data, stat, acl) in expected.items():
        if path.startswith("/zookeeper"):
            continue
        assert got[path] == (data or b"", stat, acl), path
    assert sorted(p for p in got if not p.startswith("/zookeeper")) == \
        sorted(p for p in expected if not p.startswith("/zookeeper"))
    store.close()


def _zabpy_datadir(data_dir: str) -> Workload:
    # Long session timeouts: a Java server restoring them must not expire them mid-test.
    w = Workload(seed=7, timeouts=(60000,))
    store = TxnStore(data_dir, pre_alloc_size=1 << 20)
    store.restore(DataTree())
    for i in range(400):
        hdr, txn = w.step()
        store.append(hdr, txn)
        if i % 25 == 0:
            store.flush_and_sync()
        if i == 200:
            store.flush_and_sync()
            store.snapshot_now(w.tree, w.sessions)
    store.flush_and_sync()
    store.close()
    return w


def _java_tool(cls: str, path: str) -> str:
    p = subprocess.run([JAVA, "-cp", CP, cls, path], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode(errors="replace")


def test_zookeeper_tools_read_zabpy_files(tmp_path):
    data_dir = str(tmp_path)
    w = _zabpy_datadir(data_dir)
    vdir = os.path.join(data_dir, "version-2")
    logs = sorted(f for f in os.listdir(vdir) if f.startswith("log."))
    total = 0
    for name in logs:
        out = _java_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", os.path.join(vdir, name))
        assert "CRC ERROR" not in out
        count = int(out.rsplit("EOF reached after ", 1)[1].split()[0])
        total += count
        assert " zxid 0x%x " % int(name.split(".")[1], 16) in out
    assert total == 400
    snap = max((f for f in os.listdir(vdir) if f.startswith("snapshot.")), key=lambda f: int(f[9:], 16))
    out = _java_tool("org.apache.zookeeper.server.SnapshotFormatter", os.path.join(vdir, snap))
    listed = [line for line in out.splitlines() if line.startswith("/")]
    snap_tree = DataTree()
    deserialize_snapshot(open(os.path.join(vdir, snap), "rb").read(), snap_tree)
    assert int(out.rsplit("Last zxid: 0x", 1)[1].split()[0], 16) == int(snap[9:], 16)
    # ZooKeeper counts '/' twice (its tree maps both '' and '/' to the root).
    assert "ZNode Details (count=%d)" % (len(snap_tree.nodes) + 1) in out
    assert sorted(listed) == sorted(snap_tree.nodes)
    assert w.tree.last_processed_zxid == 400


def test_zookeeper_server_starts_on_zabpy_datadir(tmp_path):
    data_dir = str(tmp_path / "data")
    w = _zabpy_datadir(data_dir)
    zk = JavaServer(data_dir, str(tmp_path))
    try:
        c = zk.client()
        got = _snapshot_of(c)
        c.stop()
        c.close()
    finally:
        zk.kill()
    ours = _tree_view(w.tree)
    for path, (data, stat, acl) in got.items():
        if path.startswith("/zookeeper"):
            continue
        # ZooKeeper's own session ids differ; everything about our nodes must match.
        assert ours[path] == (data or b"", stat, acl), path
    assert sorted(p for p in got if not p.startswith("/zookeeper")) == \
        sorted(p for p in ours if not p.startswith("/zookeeper"))


def test_acl_record_shape_matches_kazoo():
    # Guard for the comparison helpers above: our ACL is (perms, Id(scheme, id)).
    a = R.ACL(31, R.Id("world", "anyone"))
    assert (a.perms, a.id.scheme, a.id.id) == (31, "world", "anyone")
