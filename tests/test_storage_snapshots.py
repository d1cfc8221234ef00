"""Storage settings of ZooKeeper 3.8 that shape the data directory.

References (zookeeperAdmin.md, 3.8): snapshot.compression.method (SnapStream:
gz / snappy, the file read by its own suffix), txnLogSizeLimitInKb
(FileTxnLog.commit rolls once the file, preallocation included, is above
the limit), snapshot.trust.empty (FileTxnSnapLog.restore), digest.enabled
(DataTree.deserializeZxidDigest / compareSnapshotDigests / compareDigest).
Side-by-side checks with Java ZooKeeper live in test_interop_datadir.py.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import (Workload, assert_same_tree, reopened,  # noqa: E402
                                  sockets_of, write_workload)

from zabpy.jute import records as R  # noqa: E402
from zabpy.storage import StorageError, TxnStore, serialize_snapshot, tree_digest  # noqa: E402
from zabpy.storage import datadir as D  # noqa: E402
from zabpy.storage import snapstream as S  # noqa: E402
from zabpy.storage.snapshot import SnapshotError  # noqa: E402
from zabpy.testing import ZabpyServer, mntr, wait_for  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

PREALLOC = 4096


def vdir(d) -> str:
    return os.path.join(str(d), "version-2")


def names(d, prefix: str) -> list[str]:
    out = [n for n in os.listdir(vdir(d)) if n.startswith(prefix + ".")]
    return sorted(out, key=lambda n: int(n.split(".")[1], 16))


def run_store(d, w: Workload, n: int, *, snap_at: tuple[int, ...] = (), flush_every: int = 5,
              digests: bool = False, **kw) -> TxnStore:
    return write_workload(TxnStore(str(d), pre_alloc_size=PREALLOC, **kw), w, n,
                          flush_every=flush_every, snap_at=snap_at, digests=digests)


def reopen(d, **kw) -> tuple[DataTree, dict, TxnStore]:
    return reopened(TxnStore(str(d), pre_alloc_size=PREALLOC, **kw))


# ---- snapshot.compression.method ---------------------------------------------

@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_compressed_snapshot_round_trip(tmp_path, method):
    w = Workload(seed=3)
    run_store(tmp_path, w, 300, snap_at=(150, 299), snapshot_compression_method=method)
    snaps = names(tmp_path, "snapshot")
    # snapshot.0 too: ZooKeeper writes the first snapshot in the configured mode.
    assert snaps and all(n.endswith("." + method) for n in snaps), snaps
    newest = os.path.join(vdir(tmp_path), snaps[-1])
    raw = open(newest, "rb").read()
    assert S.has_magic(method, raw[:8]) and D.is_valid_snapshot(newest)
    # The seals are over the uncompressed image: the same bytes a plain file holds.
    plain = b"".join(serialize_snapshot(w.tree, w.sessions, 300))
    assert D.read_snapshot_file(newest) == plain
    assert len(raw) < len(plain)
    tree, sessions, store = reopen(tmp_path)  # read by suffix, whatever the setting
    assert store.last_restore.snapshot_path == newest and store.last_restore.replayed == 0
    assert store.last_restore.digest_ok is True
    assert_same_tree(tree, w.tree)
    assert sessions == w.sessions


@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_forked_writer_compresses(tmp_path, method):
    w = Workload(seed=5)
    store = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC, snapshot_compression_method=method)
    store.restore(DataTree())
    for _ in range(120):
        store.append(*w.step())
    store.flush_and_sync()
    store.start_snapshot(w.tree, w.sessions)
    store.wait_snapshot()
    assert store.last_snapshot_zxid == 120
    assert f"snapshot.78.{method}" in names(tmp_path, "snapshot")
    store.close()
    tree, _, again = reopen(tmp_path)
    assert again.last_restore.snapshot_zxid == 120
    assert_same_tree(tree, w.tree)


@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_learner_snap_and_trunc_keep_the_compression(tmp_path, method):
    """A learner saves a leader's SNAP as a snapshot in its own configured
    method (the SNAP itself travels uncompressed, as ZooKeeper sends it), and
    TRUNC removes compressed snapshots above the cut like plain ones."""
    from zabpy.storage.quorum import install_snapshot, truncate_after
    from zabpy.zab import packets as P
    w = Workload(seed=43)
    store = run_store(tmp_path, w, 90, snap_at=(49,), snapshot_compression_method=method)
    store = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC, snapshot_compression_method=method)
    store.restore(DataTree())
    truncate_after(store, 30)
    assert [int(n.split(".")[1], 16) for n in names(tmp_path, "snapshot")] == [0]
    leader = Workload(seed=47)
    for _ in range(70):
        leader.step()
    image = P.snapshot_bytes(leader.tree, leader.sessions)  # what the SNAP carries
    tree = DataTree()
    sessions = P.load_snapshot_bytes(image, tree, 70)
    install_snapshot(store, tree, sessions)
    store.close()
    assert names(tmp_path, "snapshot")[-1] == f"snapshot.46.{method}"
    assert names(tmp_path, "log") == []
    restored, got_sessions, _ = reopen(tmp_path)
    assert_same_tree(restored, leader.tree)
    assert got_sessions == leader.sessions


def test_mode_comes_from_the_name_not_the_setting(tmp_path):
    """SnapStream.getStreamMode: the last dot-separated part, any case; unknown is plain."""
    w = Workload(seed=9)
    run_store(tmp_path, w, 60, snap_at=(20,), snapshot_compression_method="snappy")
    run_store_more = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC,
                              snapshot_compression_method="gz")
    tree = DataTree()
    run_store_more.restore(tree)  # a gz-configured server loads the snappy snapshots
    assert_same_tree(tree, w.tree)
    run_store_more.close()
    assert [S.method_of_name(n) for n in ("snapshot.1a", "snapshot.1a.GZ", "snapshot.1a.Snappy",
                                          "snapshot.1a.bak", "snapshot")] == \
        ["", "gz", "snappy", "", ""]
    # An upper-case suffix is still gzip.
    snap = os.path.join(vdir(tmp_path), names(tmp_path, "snapshot")[-1])
    image = D.read_snapshot_file(snap)
    upper = os.path.join(vdir(tmp_path), "snapshot.ff.GZ")
    with open(upper, "wb") as f:
        f.write(S.encode("gz", image))
    assert D.read_snapshot_file(upper) == image and D.is_valid_snapshot(upper)


@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_torn_compressed_snapshot_falls_back(tmp_path, method):
    w = Workload(seed=11)
    run_store(tmp_path, w, 200, snap_at=(80, 160), snapshot_compression_method=method)
    newest = os.path.join(vdir(tmp_path), names(tmp_path, "snapshot")[-1])
    size = os.path.getsize(newest)
    os.truncate(newest, size // 2)
    assert not D.is_valid_snapshot(newest)
    tree, _, store = reopen(tmp_path)
    assert store.last_restore.skipped_snapshots == [newest]
    assert store.last_restore.snapshot_zxid == 81
    assert_same_tree(tree, w.tree)


def test_snappy_framing_is_snappy_java():
    """SnappyOutputStream: magic, version 1, compatible 1, then (int length, raw block)*
    over 32 KiB of input each; SnappyInputStream also reads concatenated streams."""
    data = bytes(range(256)) * 300  # 76800 bytes: two full blocks and a short one
    out = S.encode("snappy", data)
    assert out[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    pos, sizes = 16, []
    while pos < len(out):
        (n,) = struct.unpack_from(">i", out, pos)
        import cramjam
        sizes.append(len(bytes(cramjam.snappy.decompress_raw(out[pos + 4:pos + 4 + n]))))
        pos += 4 + n
    assert sizes == [32768, 32768, 76800 - 65536]
    assert S.decode("snappy", out + out) == data + data
    huge = out[:16] + struct.pack(">i", 6) + b"\xff\xff\xff\xff\x0f\x00"  # claims 4 GiB
    for bad in (out[:20], out[:-3], b"\x82SNAPPZ\x00" + out[8:], huge):
        with pytest.raises(SnapshotError):
            S.decode("snappy", bad)


def test_gzip_is_java_gzipoutputstream():
    data = os.urandom(1000) + b"z" * 100_000
    out = S.encode("gz", data)
    # GZIPOutputStream's fixed header (mtime 0, OS 255), deflate level 6, CRC32, ISIZE.
    assert out[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert out[10:-8] == c.compress(data) + c.flush()
    assert out[-8:] == struct.pack("<II", zlib.crc32(data), len(data))
    assert S.decode("gz", out + out) == data + data  # concatenated members, as GZIPInputStream
    with pytest.raises(SnapshotError):
        S.decode("gz", out[:-9])


# ---- txnLogSizeLimitInKb --------------------------------------------------------

def test_log_rolls_once_the_file_is_over_the_limit(tmp_path):
    limit = 16 * 1024
    w = Workload(seed=13)
    run_store(tmp_path, w, 600, flush_every=3, txn_log_size_limit_bytes=limit)
    logs = names(tmp_path, "log")
    assert len(logs) > 3, logs
    sizes = [os.path.getsize(os.path.join(vdir(tmp_path), n)) for n in logs]
    # FilePadding grows the file from its 16-byte header in preAllocSize
    # steps (the batches here are far smaller than a step); it is rolled at
    # the first step above the limit.
    closed = 16 + ((limit - 16) // PREALLOC + 1) * PREALLOC
    assert all(s == closed for s in sizes[:-1]), sizes
    tree, _, store = reopen(tmp_path)
    assert store.last_restore.replayed == 600
    assert_same_tree(tree, w.tree)


def test_limit_below_prealloc_rolls_every_flush(tmp_path):
    """zookeeperAdmin: a limit under preAllocSize rolls the log on every commit."""
    w = Workload(seed=17)
    store = TxnStore(str(tmp_path), pre_alloc_size=64 * 1024, txn_log_size_limit_bytes=1024)
    store.restore(DataTree())
    for _ in range(5):
        for _ in range(4):
            store.append(*w.step())
        store.flush_and_sync()
    store.close()
    assert len(names(tmp_path, "log")) == 5
    tree, _, _ = reopen(tmp_path)
    assert_same_tree(tree, w.tree)


def test_no_limit_keeps_one_log(tmp_path):
    w = Workload(seed=17)
    run_store(tmp_path, w, 600, flush_every=3)
    assert len(names(tmp_path, "log")) == 1


# ---- snapshot.trust.empty ----------------------------------------------------------

def _logs_without_snapshot(d) -> Workload:
    w = Workload(seed=19)
    run_store(d, w, 150)
    for n in names(d, "snapshot"):
        os.unlink(os.path.join(vdir(d), n))
    return w


def test_logs_without_snapshot_are_refused_unless_trusted(tmp_path, caplog):
    w = _logs_without_snapshot(tmp_path)
    with pytest.raises(StorageError, match="No snapshot found, but there are log entries"):
        reopen(tmp_path)
    with caplog.at_level(logging.WARNING, logger="zabpy.storage"):
        tree, sessions, store = reopen(tmp_path, trust_empty_snapshot=True)
    assert "This should only be allowed during upgrading" in caplog.text
    assert store.last_restore.trusted_empty and store.last_restore.replayed == 150
    assert_same_tree(tree, w.tree)
    assert sessions == w.sessions
    # Nothing was written for it: the caller's start-up snapshot is the base.
    assert names(tmp_path, "snapshot") == []


# ---- digests ---------------------------------------------------------------------

def _with_digest(image: bytes, zxid: int, digest: int, version: int = 2) -> bytes:
    """Replace the ZxidDigest section of a snapshot image, resealing it."""
    tree_end = len(image) - (8 + 4 + 8) - (8 + 5)  # ZxidDigest, second seal
    head = image[:tree_end]
    tail = struct.pack(">qiq", zxid, version, digest)
    adler = zlib.adler32(head)
    adler = zlib.adler32(tail, adler)
    return head + tail + struct.pack(">q", adler) + struct.pack(">i", 1) + b"/"


def _snap_path(d, zxid: int) -> str:
    return os.path.join(vdir(d), D.snapshot_name(zxid))


def test_snapshot_digest_mismatch_is_reported_not_fatal(tmp_path, caplog):
    w = Workload(seed=23)
    run_store(tmp_path, w, 100, snap_at=(99,))
    path = _snap_path(tmp_path, 100)
    image = open(path, "rb").read()
    open(path, "wb").write(_with_digest(image, 100, tree_digest(w.tree) + 1))
    with caplog.at_level(logging.ERROR, logger="zabpy.storage"):
        tree, _, store = reopen(tmp_path)
    assert store.last_restore.snapshot_path == path  # the seals are intact: it loads
    assert store.last_restore.digest_ok is False and store.last_restore.digest_mismatches == 1
    assert "Digests are not matching at zxid 0x64" in caplog.text
    assert_same_tree(tree, w.tree)
    # digest.enabled=false: the digest section is not read, nothing compared.
    _, _, off = reopen(tmp_path, digest_enabled=False)
    assert off.last_restore.digest_ok is None and off.last_restore.digest_mismatches == 0


def test_fuzzy_snapshot_digest_is_compared_when_its_txn_is_replayed(tmp_path, caplog):
    """ZooKeeper's fuzzy snapshot holds the digest of a zxid above the file's;
    DataTree compares it once the log replay reaches that zxid."""
    w = Workload(seed=29)
    run_store(tmp_path, w, 100, snap_at=(59,))
    at_60 = open(_snap_path(tmp_path, 60), "rb").read()
    ref = Workload(seed=29)
    for _ in range(70):
        ref.step()
    path = _snap_path(tmp_path, 60)
    open(path, "wb").write(_with_digest(at_60, 70, tree_digest(ref.tree)))
    _, _, store = reopen(tmp_path)
    assert store.last_restore.digest_ok is True and store.last_restore.digest_mismatches == 0
    open(path, "wb").write(_with_digest(at_60, 70, tree_digest(ref.tree) ^ 1))
    _, _, store = reopen(tmp_path)
    assert store.last_restore.digest_mismatches == 1
    # A digest the logs never reach is only warned about.
    open(path, "wb").write(_with_digest(at_60, 500, 12345))
    with caplog.at_level(logging.WARNING, logger="zabpy.storage"):
        _, _, store = reopen(tmp_path)
    assert "is not covering the snapshot digest zxid 0x1f4" in caplog.text
    assert store.last_restore.digest_ok is None
    # Empty (zxid 0), older than the file, or another version: not compared.
    for zxid, version in ((0, 2), (59, 2), (60, 1)):
        open(path, "wb").write(_with_digest(at_60, zxid, 99, version))
        _, _, store = reopen(tmp_path)
        assert store.last_restore.digest_ok is None, (zxid, version)


def test_logged_txn_digests_are_checked_after_replay(tmp_path):
    """ZooKeeper logs each txn with the tree digest after it (TxnDigest)."""
    w = Workload(seed=31)
    run_store(tmp_path, w, 80, digests=True)
    _, _, store = reopen(tmp_path)
    assert store.last_restore.replayed == 80 and store.last_restore.digest_ok is True
    assert store.last_restore.digest_checks == 1
    # The same log with a wrong digest on its last txn.
    d2 = tmp_path / "bad"
    w2 = Workload(seed=31)
    store = TxnStore(str(d2), pre_alloc_size=PREALLOC)
    store.restore(DataTree())
    for i in range(80):
        hdr, txn = w2.step()
        store.append(hdr, txn, R.TxnDigest(2, tree_digest(w2.tree) + (i == 79)))
    store.flush_and_sync()
    store.close()
    _, _, store = reopen(d2)
    assert store.last_restore.digest_mismatches == 1
    _, _, store = reopen(d2, digest_enabled=False)
    assert store.last_restore.digest_mismatches == 0


def test_digest_disabled_writes_no_digest_section(tmp_path):
    w = Workload(seed=37)
    run_store(tmp_path, w, 50, snap_at=(49,), digest_enabled=False)
    image = open(_snap_path(tmp_path, 50), "rb").read()
    assert image == b"".join(serialize_snapshot(w.tree, w.sessions, 50, digest=False))
    _, _, store = reopen(tmp_path)
    assert store.last_restore.digest_ok is None and store.last_restore.snapshot_zxid == 50


# ---- real server processes -----------------------------------------------------------

def _mntr(server) -> dict[str, str]:
    return mntr(server.port, server.host)


def _start_fails(data_dir: str, config_text: str) -> str:
    server = ZabpyServer(subprocess=True, data_dir=data_dir, config_text=config_text)
    with pytest.raises(RuntimeError) as e:
        server.start()
    server.stop()
    return str(e.value)


def test_server_refuses_logs_without_snapshot_unless_trusted(tmp_path):
    from kazoo.client import KazooClient
    data = str(tmp_path / "data")
    w = _logs_without_snapshot(data)
    err = _start_fails(data, "tickTime=200")
    assert "exited with 1" in err and "No snapshot found, but there are log entries" in err
    server = ZabpyServer(subprocess=True, data_dir=data,
                         config_text="tickTime=200\nzookeeper.snapshot.trust.empty=true")
    server.start()
    try:
        c = KazooClient(hosts=server.hosts, timeout=10)
        c.start(timeout=20)
        seen = sorted(c.get_children("/"))
        c.stop()
        c.close()
        # The start-up snapshot is written: the next start needs no trust.
        wait_for(lambda: names(data, "snapshot"), 30, what="start-up snapshot")
    finally:
        server.stop()
    top = sorted(p[1:] for p in w.tree.nodes if p.count("/") == 1 and p != "/")
    assert seen == top
    again = ZabpyServer(subprocess=True, data_dir=data, config_text="tickTime=200")
    again.start()
    again.stop()


@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_server_writes_and_reloads_compressed_snapshots(tmp_path, method):
    from kazoo.client import KazooClient
    data = str(tmp_path / "data")
    cfg = f"tickTime=200\nsnapCount=40\nsnapshot.compression.method={method.upper()}"
    server = ZabpyServer(subprocess=True, data_dir=data, config_text=cfg)
    server.start()
    try:
        c = KazooClient(hosts=server.hosts, timeout=10)
        c.start(timeout=20)
        for i in range(100):
            c.create(f"/c{i:03d}", b"x" * i)
        c.stop()
        c.close()
        wait_for(lambda: len(names(data, "snapshot")) >= 2, 30, what="forked snapshots")
    finally:
        server.kill()
    assert all(n.endswith("." + method) for n in names(data, "snapshot"))
    # Restarted without the setting: the compressed files are read by their names.
    again = ZabpyServer(subprocess=True, data_dir=data, config_text="tickTime=200")
    again.start()
    try:
        c = KazooClient(hosts=again.hosts, timeout=10)
        c.start(timeout=20)
        assert c.get("/c099")[0] == b"x" * 99
        assert len([k for k in c.get_children("/") if k.startswith("c")]) == 100
        c.stop()
        c.close()
        assert _mntr(again)["zk_digest_mismatches_count"] == "0"
    finally:
        again.stop()


def test_server_counts_a_snapshot_digest_mismatch(tmp_path):
    data = str(tmp_path / "data")
    w = Workload(seed=41, timeouts=(60000,))
    run_store(data, w, 60, snap_at=(59,))
    path = _snap_path(data, 60)
    image = open(path, "rb").read()
    open(path, "wb").write(_with_digest(image, 60, 7))
    server = ZabpyServer(subprocess=True, data_dir=data, config_text="tickTime=200")
    server.start()
    try:
        assert _mntr(server)["zk_digest_mismatches_count"] == "1"
        assert "Digests are not matching at zxid 0x3c" in server.read_log()
    finally:
        server.stop()


def test_server_rolls_logs_by_size(tmp_path):
    from kazoo.client import KazooClient
    data = str(tmp_path / "data")
    cfg = "tickTime=200\npreAllocSize=16\ntxnLogSizeLimitInKb=64"
    server = ZabpyServer(subprocess=True, data_dir=data, config_text=cfg)
    server.start()
    try:
        c = KazooClient(hosts=server.hosts, timeout=10)
        c.start(timeout=20)
        for i in range(300):
            c.create(f"/r{i:03d}", b"y" * 1000)
        c.stop()
        c.close()
    finally:
        server.kill()
    logs = names(data, "log")
    sizes = [os.path.getsize(os.path.join(vdir(data), n)) for n in logs]
    assert len(logs) >= 4, sizes
    step = 16 * 1024
    assert all(s == 16 + ((64 * 1024 - 16) // step + 1) * step for s in sizes[:-1]), sizes
    again = ZabpyServer(subprocess=True, data_dir=data, config_text="tickTime=200")
    again.start()
    try:
        c = KazooClient(hosts=again.hosts, timeout=10)
        c.start(timeout=20)
        assert len([k for k in c.get_children("/") if k.startswith("r")]) == 300
        c.stop()
        c.close()
    finally:
        again.stop()


def _in_child(fn) -> int:
    """Run ``fn`` in a forked child; its return value (a small int) back."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no SCHED_IDLE here")
def test_the_snapshot_writer_is_an_idle_task_until_its_deadline(tmp_path):
    """Issue 19: the forked snapshot writer runs as SCHED_IDLE at niceness
    +10 (a waking server preempts it at once), and the first chunk it writes
    after its deadline puts it back under SCHED_OTHER, still nice."""
    from zabpy.storage import files

    def child() -> int:
        if not files.idle_priority() or os.sched_getscheduler(0) != os.SCHED_IDLE:
            return 1
        if os.nice(0) < files.SNAPSHOT_WRITER_NICE:
            return 2
        fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
        files.idle_until(3600)(fd, b"a", 0)
        if os.sched_getscheduler(0) != os.SCHED_IDLE:
            return 3
        files.idle_until(0)(fd, b"b", 1)
        return 0 if os.sched_getscheduler(0) == os.SCHED_OTHER else 4

    assert _in_child(child) == 0
    assert (tmp_path / "x").read_bytes() == b"ab"


def test_a_snapshot_writer_does_not_keep_the_servers_sockets(tmp_path, monkeypatch):
    """A forked writer still at work when the server dies (kill -9; an idle
    task on a busy machine can take long) must not hold the server's client
    port, or the restarted server cannot listen ("address already in use"),
    nor its connections, or clients do not see it go. The writer here sleeps
    instead of writing; the server's listening socket and an accepted
    connection are closed on the parent's side, and the port must bind again
    and the client must read EOF while the writer still runs."""
    import signal
    import socket
    import time

    from zabpy.storage import files

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    monkeypatch.setattr(files.TxnStore, "_write_snapshot",
                        lambda self, *a, **k: time.sleep(60))
    store = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC)
    tree = DataTree()
    store.restore(tree)
    store.start_snapshot(tree, {})
    pid = store._snap_child[0]
    assert sockets_of(os.getpid())  # the server's side has them
    try:
        # The writer closes its copies first thing; wait until it has.
        wait_for(lambda: not sockets_of(pid), 10, what="the writer to close its sockets")
        listener.close()
        conn.close()
        client.settimeout(10)
        assert client.recv(1) == b""  # EOF: the connection is gone with the server's copy
        again = socket.create_server(("127.0.0.1", port))
        again.close()
        assert store.poll_snapshot() is False  # the writer still runs
    finally:
        client.close()
        os.kill(pid, signal.SIGKILL)
        store.wait_snapshot()
        store.close()
