"""Data directories shared with Apache ZooKeeper 3.8 (Debian's package), both ways.

Reference: zookeeper-facts.md section 4 (log, snapshot, restore). Java
ZooKeeper writes a data directory through a real kazoo client and zabpy
restores it to the same tree, stats, ACLs and sessions (and the same tree
digests as ZooKeeper stored in its snapshot and logged with its txns); zabpy
writes one and ZooKeeper's own TxnLogToolkit, SnapshotFormatter and server
read it. Each way runs plain and with zookeeper.snapshot.compression.method
gz and snappy (SnapStream). Side by side, both servers refuse logs without
a snapshot unless zookeeper.snapshot.trust.empty, count a snapshot digest
mismatch in mntr, and roll their logs by zookeeper.txnLogSizeLimitInKb.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import Workload  # noqa: E402

from zabpy.jute import records as R  # noqa: E402
from zabpy.storage import TxnStore, deserialize_snapshot  # noqa: E402
from zabpy.storage import datadir as D  # noqa: E402
from zabpy.testing.server import free_port  # noqa: E402
from zabpy.storage import snapstream as S  # noqa: E402
from zabpy.testing import ZabpyServer, four_letter_word, mntr, wait_for  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

JAR = "/usr/share/java/zookeeper.jar"
CP = f"{JAR}:/usr/share/java/slf4j-nop.jar"
JAVA = shutil.which("java")
pytestmark = pytest.mark.skipif(JAVA is None or not os.path.exists(JAR),
                                reason="java or Debian's zookeeper package is not installed")
kazoo = pytest.importorskip("kazoo.client")


COMPRESSIONS = ["", "gz", "snappy"]


def _props(method: str) -> tuple[str, ...]:
    return (f"-Dzookeeper.snapshot.compression.method={method}",) if method else ()


class JavaServer:
    """A standalone ZooKeeper 3.8 on 127.0.0.1 over ``data_dir``; ``props`` are
    JVM system properties (-Dzookeeper.*)."""

    def __init__(self, data_dir: str, tmp: str, props: tuple[str, ...] = ()):
        self.port = free_port()
        self.cfg = os.path.join(tmp, f"zoo-{self.port}.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={data_dir}\nclientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "maxSessionTimeout=60000\n4lw.commands.whitelist=*\n")
        self.out_path = os.path.join(tmp, f"zk-{self.port}.out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [JAVA, "-Xmx256m", "-Dzookeeper.extendedTypesEnabled=true", *props, "-cp", CP,
             "org.apache.zookeeper.server.ZooKeeperServerMain", self.cfg],
            stdout=self.out, stderr=subprocess.STDOUT)

    def mntr(self) -> dict[str, str]:
        return mntr(self.port, timeout=10)

    def serving(self) -> bool:
        try:
            return "Mode: standalone" in four_letter_word("127.0.0.1", self.port, "srvr", 5)
        except OSError:
            return False

    def client(self, timeout_s: float = 30):
        # A ConnectRequest sent while the JVM is still starting can go
        # unanswered: kazoo then waits its whole session timeout before it
        # tries again. Connect once the server serves.
        wait_for(self.serving, 60, 0.05, what=f"Java ZooKeeper serving on port {self.port}")
        c = kazoo.KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=timeout_s)
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


@pytest.mark.parametrize("method", COMPRESSIONS)
def test_java_datadir_loads_into_zabpy(tmp_path, method):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    # Run 1 writes and is killed with its session (and ephemeral) still open.
    # That session gets the longest timeout (maxSessionTimeout): run 2 gives
    # it its whole timeout again from its start, and were it to expire before
    # run 2 is killed (a slow JVM start under load), the closeSession would
    # land in the log after the tree below was read.
    zk = JavaServer(data_dir, str(tmp_path), _props(method))
    try:
        c1 = zk.client(timeout_s=60)
        _java_writes(c1, "one")
    finally:
        zk.kill()
    c1.stop()
    # Run 2 loads run 1 (and snapshots at start-up), writes more, is killed.
    zk = JavaServer(data_dir, str(tmp_path), _props(method))
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
    assert any(f.startswith("snapshot.") and f != "snapshot.0" + S.suffix(method)
               for f in files), files
    tree = DataTree()
    store = TxnStore(data_dir)
    sessions = store.restore(tree)
    result = store.last_restore
    assert result.replayed > 0 and result.snapshot_zxid > 0
    assert result.snapshot_path.endswith(f".{result.snapshot_zxid:x}{S.suffix(method)}")
    # Our digest of ZooKeeper's tree matches the one in its snapshot and the
    # one it logged with its last txn.
    assert result.digest_ok is True and result.digest_mismatches == 0
    assert result.digest_checks == 2  # the snapshot's, then the last logged txn's
    _same_file_format(result.snapshot_path, method)
    assert sessions.get(session) == timeout
    got = _tree_view(tree)
    for path, (data, stat, acl) in expected.items():
        if path.startswith("/zookeeper"):
            continue
        assert got[path] == (data or b"", stat, acl), path
    assert sorted(p for p in got if not p.startswith("/zookeeper")) == \
        sorted(p for p in expected if not p.startswith("/zookeeper"))
    store.close()


def _same_file_format(path: str, method: str) -> None:
    """Our encoder, given the image inside ZooKeeper's file, writes ZooKeeper's
    file: byte for byte for gzip (same zlib), and for snappy the same header
    and the same blocks over the same input (a raw block's encoding is the
    compressor's own choice, so only its length field may differ)."""
    java = open(path, "rb").read()
    image = D.read_snapshot_file(path)
    ours = S.encode(method, image)
    if method != "snappy":
        assert ours == java
        return
    assert ours[:16] == java[:16]

    def blocks(data: bytes) -> list[bytes]:
        out, pos = [], 16
        while pos < len(data):
            (n,) = struct.unpack_from(">i", data, pos)
            out.append(S.decode("snappy", data[:16] + data[pos:pos + 4 + n]))
            pos += 4 + n
        return out

    assert blocks(ours) == blocks(java)


def _zabpy_datadir(data_dir: str, method: str = "") -> Workload:
    # Long session timeouts: a Java server restoring them must not expire them mid-test.
    w = Workload(seed=7, timeouts=(60000,))
    store = TxnStore(data_dir, pre_alloc_size=1 << 20, snapshot_compression_method=method)
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


@pytest.mark.parametrize("method", COMPRESSIONS)
def test_zookeeper_tools_read_zabpy_files(tmp_path, method):
    data_dir = str(tmp_path)
    w = _zabpy_datadir(data_dir, method)
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
    snap_zxid, snap = D.list_zxid_files(vdir, D.SNAP_PREFIX)[-1]
    assert snap.endswith(S.suffix(method)) and S.method_of_name(snap) == method
    out = _java_tool("org.apache.zookeeper.server.SnapshotFormatter", snap)
    listed = [line for line in out.splitlines() if line.startswith("/")]
    snap_tree = DataTree()
    deserialize_snapshot(D.read_snapshot_file(snap), snap_tree)
    assert int(out.rsplit("Last zxid: 0x", 1)[1].split()[0], 16) == snap_zxid
    # ZooKeeper counts '/' twice (its tree maps both '' and '/' to the root).
    assert "ZNode Details (count=%d)" % (len(snap_tree.nodes) + 1) in out
    assert sorted(listed) == sorted(snap_tree.nodes)
    assert w.tree.last_processed_zxid == 400


@pytest.mark.parametrize("method", COMPRESSIONS)
def test_zookeeper_server_starts_on_zabpy_datadir(tmp_path, method):
    data_dir = str(tmp_path / "data")
    w = _zabpy_datadir(data_dir, method)
    zk = JavaServer(data_dir, str(tmp_path))  # reads by file name, whatever its setting
    try:
        c = zk.client()
        got = _snapshot_of(c)
        c.stop()
        c.close()
        # ZooKeeper checked the digest we stored with the snapshot.
        assert zk.mntr()["zk_digest_mismatches_count"] == "0"
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


# ---- side by side: start-up checks and log rolling -----------------------------------

def _wait_exit(zk: JavaServer) -> int:
    code = zk.proc.wait(timeout=120)
    zk.out.close()
    return code


def _zabpy_tree(data_dir: str, config_text: str) -> dict:
    with ZabpyServer(subprocess=True, data_dir=data_dir, config_text=config_text) as server:
        c = kazoo.KazooClient(hosts=server.hosts, timeout=30)
        c.start(timeout=60)
        c.add_auth("digest", "bob:pw")
        try:
            return _snapshot_of(c)
        finally:
            c.stop()
            c.close()


def _without_builtins(view: dict) -> dict:
    return {p: v for p, v in view.items() if not p.startswith("/zookeeper")}


def test_logs_without_snapshot_side_by_side(tmp_path):
    """FileTxnSnapLog.restore: logs but no snapshot is fatal unless
    zookeeper.snapshot.trust.empty (ZOOKEEPER-3056); both exit 1, both load it trusted."""
    java_dir, ours_dir = str(tmp_path / "java"), str(tmp_path / "ours")
    _zabpy_datadir(java_dir)
    for f in os.listdir(os.path.join(java_dir, "version-2")):
        if f.startswith("snapshot."):
            os.unlink(os.path.join(java_dir, "version-2", f))
    shutil.copytree(java_dir, ours_dir)
    zk = JavaServer(java_dir, str(tmp_path))
    assert _wait_exit(zk) == 1  # IOException "No snapshot found, but there are log entries"
    with pytest.raises(RuntimeError, match="exited with 1"):
        ZabpyServer(subprocess=True, data_dir=ours_dir, config_text="tickTime=200").start()
    zk = JavaServer(java_dir, str(tmp_path), ("-Dzookeeper.snapshot.trust.empty=true",))
    try:
        c = zk.client()
        java_view = _snapshot_of(c)
        c.stop()
        c.close()
    finally:
        zk.kill()
    ours = _zabpy_tree(ours_dir, "tickTime=200\nzookeeper.snapshot.trust.empty=true")
    assert _without_builtins(ours) == _without_builtins(java_view)


def _reseal_digest(path: str, digest: int) -> None:
    """Put ``digest`` in a plain snapshot's ZxidDigest and reseal it."""
    image = open(path, "rb").read()
    head = image[:len(image) - 20 - 13]
    zxid, version, _ = struct.unpack_from(">qiq", image, len(head))
    tail = struct.pack(">qiq", zxid, version, digest)
    seal = struct.pack(">q", zlib.adler32(tail, zlib.adler32(head))) + struct.pack(">i", 1) + b"/"
    with open(path, "wb") as f:
        f.write(head + tail + seal)


def test_snapshot_digest_mismatch_side_by_side(tmp_path):
    """DataTree.compareSnapshotDigests: a wrong digest is counted (mntr
    digest_mismatches_count) and logged; the server still starts."""
    java_dir, ours_dir = str(tmp_path / "java"), str(tmp_path / "ours")
    w = _zabpy_datadir(java_dir)
    snap_zxid, snap = D.list_zxid_files(os.path.join(java_dir, "version-2"), D.SNAP_PREFIX)[-1]
    assert snap_zxid > 0
    good = open(snap, "rb").read()
    _reseal_digest(snap, 12345)
    assert open(snap, "rb").read() != good
    shutil.copytree(java_dir, ours_dir)
    zk = JavaServer(java_dir, str(tmp_path))
    try:
        zk.client().stop()
        java_count = zk.mntr()["zk_digest_mismatches_count"]
    finally:
        zk.kill()
    with ZabpyServer(subprocess=True, data_dir=ours_dir, config_text="tickTime=200") as server:
        ours_count = mntr(server.port, server.host, 10)["zk_digest_mismatches_count"]
    assert java_count == ours_count == "1"
    assert w.tree.last_processed_zxid == 400


def _roll_run(sizes_of, start, n: int = 300) -> list[int]:
    """Sequential 1000-byte creates (one txn per fsync) on a started server."""
    hosts, stop = start()
    c = kazoo.KazooClient(hosts=hosts, timeout=30)
    c.start(timeout=60)
    for i in range(n):
        c.create(f"/r{i:03d}", b"y" * 1000)
    c.stop()
    c.close()
    stop()
    return sizes_of()


def test_log_roll_by_size_side_by_side(tmp_path):
    """FileTxnLog.commit: once the log file (preallocation included) is above
    txnLogSizeLimitInKb, the next txn starts a new file."""
    limit_kb, prealloc_kb = 64, 16

    def sizes(data_dir):
        vdir = os.path.join(data_dir, "version-2")
        return lambda: [os.path.getsize(p) for _, p in D.list_zxid_files(vdir, D.LOG_PREFIX)]

    java_dir, ours_dir = str(tmp_path / "java"), str(tmp_path / "ours")
    os.makedirs(java_dir)

    def start_java():
        zk = JavaServer(java_dir, str(tmp_path), (f"-Dzookeeper.txnLogSizeLimitInKb={limit_kb}",
                                                   f"-Dzookeeper.preAllocSize={prealloc_kb}"))
        zk.client().stop()
        return f"127.0.0.1:{zk.port}", zk.kill

    def start_ours():
        s = ZabpyServer(subprocess=True, data_dir=ours_dir,
                        config_text=f"tickTime=200\ntxnLogSizeLimitInKb={limit_kb}\n"
                                    f"preAllocSize={prealloc_kb}")
        s.start()
        return s.hosts, s.kill

    java_sizes = _roll_run(sizes(java_dir), start_java)
    our_sizes = _roll_run(sizes(ours_dir), start_ours)
    limit, step = limit_kb * 1024, prealloc_kb * 1024
    # FilePadding grows a file from its 16-byte header in preAllocSize steps,
    # and the file is rolled at the first step above the limit.
    closed = 16 + ((limit - 16) // step + 1) * step
    for got in (java_sizes, our_sizes):
        assert len(got) >= 4, got
        assert all(s == closed for s in got[:-1]), got
    # ZooKeeper's txns carry a 12-byte TxnDigest that zabpy's do not, so its
    # files fill a little sooner: at most one file more or less over the run.
    assert abs(len(java_sizes) - len(our_sizes)) <= 1, (java_sizes, our_sizes)
