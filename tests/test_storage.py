"""Storage: log and snapshot formats, restore, torn tails, corruption, snapshots.

Reference: zookeeper-facts.md section 4 (4.1 log entry layout, 4.2 snapshot
layout and seals, 4.3 restore and torn tails).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import (Workload, assert_same_tree, reopened,  # noqa: E402
                                  write_workload)

from zabpy.jute import records as R  # noqa: E402
from zabpy.jute.constants import OpCode  # noqa: E402
from zabpy.storage import (StorageError, TxnStore, decode_payload, deserialize_snapshot,  # noqa: E402
                           encode_entry, scan_log, serialize_snapshot, tree_digest)
from zabpy.storage.snapshot import SnapshotError, has_valid_tail  # noqa: E402
from zabpy.storage.txnlog import CRC, END, PARTIAL, encode_file_header, padded_size  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402

PREALLOC = 64 * 1024


def vdir(d) -> str:
    return os.path.join(str(d), "version-2")


def files(d, prefix: str) -> list[str]:
    names = [n for n in os.listdir(vdir(d)) if n.startswith(prefix + ".")]
    return sorted(names, key=lambda n: int(n.split(".")[1], 16))


def write_store(d, w: Workload, n: int, *, flush_every: int = 10, snap_at: tuple[int, ...] = (),
                **kw) -> TxnStore:
    """Run ``n`` workload txns through a fresh TxnStore, flushing every few."""
    return write_workload(TxnStore(str(d), pre_alloc_size=PREALLOC, **kw), w, n,
                          flush_every=flush_every, snap_at=snap_at)


def restored(d) -> tuple[DataTree, dict[int, int], TxnStore]:
    return reopened(TxnStore(str(d), pre_alloc_size=PREALLOC))


# ---- formats -----------------------------------------------------------------

def test_log_entry_layout():
    """4.1: checksum(long, Adler32 of payload) · len(int) · payload · 'B'."""
    hdr = R.TxnHeader(0x1234, 7, 0x100000005, 1_700_000_000_000, OpCode.create)
    txn = R.CreateTxn("/a", b"xy", [R.ACL(31, R.Id("world", "anyone"))], False, 3)
    payload = hdr.to_bytes() + txn.to_bytes()
    entry = encode_entry(hdr, txn)
    assert entry == struct.pack(">qi", zlib.adler32(payload), len(payload)) + payload + b"B"
    assert encode_file_header() == b"ZKLG" + struct.pack(">iq", 2, 0)
    scan = scan_log(encode_file_header() + entry + bytes(100))
    assert scan.clean and [z for _, z, _ in scan.entries] == [0x100000005]
    assert decode_payload(scan.entries[0][2]) == (hdr, txn, None)
    digest = R.TxnDigest(2, -5)
    assert decode_payload(encode_entry(hdr, txn, digest)[12:-1]) == (hdr, txn, digest)


def test_close_session_without_record_decodes():
    hdr = R.TxnHeader(9, 1, 2, 3, OpCode.closeSession)
    assert decode_payload(hdr.to_bytes()) == (hdr, None, None)


def test_preallocation_rule():
    """FilePadding: grow by preAllocSize when within 4 KiB of the end."""
    assert padded_size(16, 0, 65536) == 65536
    assert padded_size(1000, 65536, 65536) == 65536
    assert padded_size(65536 - 4096, 65536, 65536) == 131072
    assert padded_size(300000, 65536, 65536) == 327680
    assert padded_size(10, 0, 0) == 0


def test_snapshot_round_trip_and_seals():
    w = Workload(seed=3)
    w.txns(300)
    data = b"".join(serialize_snapshot(w.tree, w.sessions, w.zxid))
    assert data[:4] == b"ZKSN" and has_valid_tail(data)
    tree = DataTree()
    contents = deserialize_snapshot(data, tree)
    tree.last_processed_zxid = w.zxid
    assert contents.sessions == w.sessions
    assert (contents.digest_zxid, contents.digest) == (w.zxid, tree_digest(w.tree))
    assert_same_tree(w.tree, tree)
    # Built-in nodes use ACL key -1 (no cache entry), like ZooKeeper's snapshots.
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    for bad in (data[:-1], data[: len(data) // 2], bytes(flipped), data + b"\0"):
        with pytest.raises(SnapshotError):
            deserialize_snapshot(bad, DataTree())


def test_snapshot_without_digest_loads():
    w = Workload(seed=4)
    w.txns(50)
    data = b"".join(serialize_snapshot(w.tree, w.sessions, w.zxid, digest=False))
    assert deserialize_snapshot(data, DataTree()).digest is None


# ---- round trip through files ------------------------------------------------------

def test_round_trip_logs_and_snapshots(tmp_path):
    w = Workload(seed=1)
    write_store(tmp_path, w, 600, snap_at=(150, 420))
    assert files(tmp_path, "snapshot")[0] == "snapshot.0"
    assert len(files(tmp_path, "log")) == 3  # rolled after each snapshot
    tree, sessions, store = restored(tmp_path)
    assert_same_tree(w.tree, tree)
    assert sessions == w.sessions
    assert store.last_restore.snapshot_zxid == 421 and store.last_restore.replayed == 179


def test_restart_appends_to_new_log(tmp_path):
    w = Workload(seed=2)
    write_store(tmp_path, w, 100)
    tree, sessions, store = restored(tmp_path)
    for _ in range(50):
        store.append(*w.step())
    store.flush_and_sync()
    store.close()
    assert files(tmp_path, "log") == ["log.1", "log.65"]
    tree, sessions, _ = restored(tmp_path)
    assert_same_tree(w.tree, tree)
    assert sessions == w.sessions


def test_forked_snapshot_rolls_log_and_restores(tmp_path):
    w = Workload(seed=5)
    store = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC, snap_count=40, rng=random.Random(1))
    store.restore(DataTree())
    snaps = 0
    for i in range(400):
        store.append(*w.step())
        if i % 7 == 0:
            store.flush_and_sync()
            # wait for the previous writer, so the count does not depend on
            # how fast a forked child runs on a loaded machine
            store.wait_snapshot()
            if store.poll_snapshot() and store.should_snapshot():
                store.start_snapshot(w.tree, dict(w.sessions))
                snaps += 1
    store.flush_and_sync()
    store.close()  # waits for the last writer
    assert snaps >= 5
    assert len(files(tmp_path, "snapshot")) == snaps + 1
    assert not [n for n in os.listdir(vdir(tmp_path)) if n.endswith(".tmp")]
    tree, sessions, _ = restored(tmp_path)
    assert_same_tree(w.tree, tree)
    assert sessions == w.sessions


def test_snap_count_rule():
    """SyncRequestProcessor: snapshot after snapCount/2 + random(snapCount/2) txns."""
    store = TxnStore.__new__(TxnStore)
    rng = random.Random(9)
    expected_roll = random.Random(9).randrange(50)
    TxnStore.__init__(store, "/tmp/zabpy-unused-snapcount", snap_count=100, rng=rng)
    w = Workload(seed=0)
    for i in range(50 + expected_roll):
        assert not store.should_snapshot()
        store.append(*w.step())
    assert not store.should_snapshot()
    store.append(*w.step())
    assert store.should_snapshot()
    shutil.rmtree("/tmp/zabpy-unused-snapcount")


# ---- torn tails and corruption (4.3) -------------------------------------------------

def _last_record_span(path: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        scan = scan_log(f.read())
    start = scan.entries[-1][0]
    return start, scan.good_end


def test_torn_tail_at_every_offset(tmp_path):
    """Truncate the last record at every byte (and zero-fill, as preallocation
    leaves it): restore gets every txn but that one, and repairs the file."""
    src = tmp_path / "src"
    w = Workload(seed=11)
    store = TxnStore(str(src), pre_alloc_size=PREALLOC)
    store.restore(DataTree())
    for _ in range(30):
        store.append(*w.step())
    store.flush_and_sync()
    before = Workload(seed=11)
    before.txns(30)
    store.append(*w.step())
    store.flush_and_sync()
    store.close()
    log_path = os.path.join(vdir(src), "log.1")
    start, end = _last_record_span(log_path)
    expected = before.tree
    for cut in range(start, end):
        for zero_fill in (False, True):
            d = tmp_path / f"cut{cut}{zero_fill}"
            shutil.copytree(src, d)
            path = os.path.join(vdir(d), "log.1")
            with open(path, "r+b") as f:
                if zero_fill:
                    f.seek(cut)
                    f.write(bytes(end - cut))
                else:
                    f.truncate(cut)
            tree, sessions, store = restored(d)
            assert_same_tree(expected, tree)
            assert sessions == before.sessions
            with open(path, "rb") as f:
                after = scan_log(f.read())
            assert after.clean and after.good_end == start
            # The repaired directory restores again, and takes new writes.
            store.append(*Workload(seed=99, zxid=30).step())
            store.flush_and_sync()
            store.close()
            restored(d)
            shutil.rmtree(d)


def test_torn_header_of_new_log_is_removed(tmp_path):
    w = Workload(seed=12)
    write_store(tmp_path, w, 20)
    with open(os.path.join(vdir(tmp_path), "log.15"), "wb") as f:
        f.write(b"ZKL")
    tree, _, store = restored(tmp_path)
    assert_same_tree(w.tree, tree)
    assert store.last_restore.removed and files(tmp_path, "log") == ["log.1"]


def test_crc_error_in_middle_names_file(tmp_path):
    w = Workload(seed=13)
    write_store(tmp_path, w, 40)
    path = os.path.join(vdir(tmp_path), "log.1")
    with open(path, "rb") as f:
        scan = scan_log(f.read())
    offset = scan.entries[10][0] + 30
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(StorageError, match="log.1"):
        restored(tmp_path)


def test_crc_error_in_last_record_is_torn_tail(tmp_path):
    w = Workload(seed=14)
    write_store(tmp_path, w, 40)
    path = os.path.join(vdir(tmp_path), "log.1")
    start, end = _last_record_span(path)
    with open(path, "r+b") as f:
        f.seek(end - 3)
        f.write(b"\xAA")
    with open(path, "rb") as f:
        assert scan_log(f.read()).stop == CRC
    tree, _, store = restored(tmp_path)
    assert tree.last_processed_zxid == 39 and store.last_restore.truncated == [path]


def test_garbage_after_zero_length_is_not_silently_dropped(tmp_path):
    """A zero length followed by valid records means a hole, not the end."""
    w = Workload(seed=15)
    write_store(tmp_path, w, 40)
    path = os.path.join(vdir(tmp_path), "log.1")
    with open(path, "rb") as f:
        scan = scan_log(f.read())
    off = scan.entries[5][0]
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(bytes(12))
    with open(path, "rb") as f:
        scan = scan_log(f.read())
    assert scan.stop in (END, PARTIAL) and scan.valid_after is not None
    with pytest.raises(StorageError, match="log.1"):
        restored(tmp_path)


def test_missing_log_is_a_gap(tmp_path):
    w = Workload(seed=16)
    write_store(tmp_path, w, 300, snap_at=(100, 200))
    assert files(tmp_path, "log") == ["log.1", "log.66", "log.ca"]
    os.unlink(os.path.join(vdir(tmp_path), files(tmp_path, "snapshot")[-1]))
    os.unlink(os.path.join(vdir(tmp_path), "log.66"))
    with pytest.raises(StorageError, match="log.ca.*gap"):
        restored(tmp_path)


def test_corrupt_newest_snapshot_falls_back(tmp_path):
    w = Workload(seed=17)
    write_store(tmp_path, w, 300, snap_at=(100, 200))
    newest = os.path.join(vdir(tmp_path), files(tmp_path, "snapshot")[-1])
    data = bytearray(open(newest, "rb").read())
    data[len(data) // 3] ^= 0x01  # the seal still looks fine; the checksum does not
    open(newest, "wb").write(bytes(data))
    tree, sessions, store = restored(tmp_path)
    assert_same_tree(w.tree, tree)
    assert sessions == w.sessions
    assert store.last_restore.skipped_snapshots == [newest]
    # A half-written one (crash while writing) is skipped the same way.
    open(newest, "wb").write(bytes(data[: len(data) // 2]))
    tree, _, store = restored(tmp_path)
    assert_same_tree(w.tree, tree)


def test_all_snapshots_bad_is_an_error(tmp_path):
    w = Workload(seed=18)
    write_store(tmp_path, w, 50)
    snap = os.path.join(vdir(tmp_path), "snapshot.0")
    open(snap, "wb").write(b"junk")
    with pytest.raises(StorageError, match="snapshot.0"):
        restored(tmp_path)


def test_logs_without_snapshot_refused(tmp_path):
    w = Workload(seed=19)
    write_store(tmp_path, w, 50)
    os.unlink(os.path.join(vdir(tmp_path), "snapshot.0"))
    with pytest.raises(StorageError, match="no snapshot"):
        restored(tmp_path)


def test_torn_multi_is_all_or_nothing(tmp_path):
    """A multi is one record: cut anywhere, none of its ops is applied."""
    w = Workload(seed=20)
    store = TxnStore(str(tmp_path), pre_alloc_size=PREALLOC)
    store.restore(DataTree())
    for _ in range(20):
        store.append(*w.step())
    path = sorted(p for p in w.tree.nodes if p.count("/") == 1 and not p.startswith("/zookeeper"))[0]
    before = {p: (n.data, n.version) for p, n in w.tree.nodes.items()}
    store.append(w._hdr(w.next_session, OpCode.multi), w._multi(path))
    store.flush_and_sync()
    store.close()
    log_path = os.path.join(vdir(tmp_path), "log.1")
    start, end = _last_record_span(log_path)
    with open(log_path, "r+b") as f:
        f.truncate((start + end) // 2)
    tree, _, _ = restored(tmp_path)
    assert {p: (n.data, n.version) for p, n in tree.nodes.items()} == before


def test_append_many_writes_what_append_writes_and_flush_returns_the_last_zxid(tmp_path):
    """The runtime appends a group commit's txns with one ``append_many``:
    the log must hold byte for byte what one ``append`` per txn writes, and
    ``flush_and_sync`` reports the last zxid it made durable (the runtime
    answers up to it), None when nothing was queued."""
    one, many = tmp_path / "one", tmp_path / "many"
    stores = []
    for d in (one, many):
        store = TxnStore(str(d), pre_alloc_size=PREALLOC)
        store.restore(DataTree())
        stores.append(store)
    w = Workload(seed=41)
    batches = [[w.step() for _ in range(k)] for k in (1, 7, 30, 2)]
    for batch in batches:
        for hdr, txn in batch:
            stores[0].append(hdr, txn)
        stores[1].append_many(batch)
        for store in stores:
            assert store.flush_and_sync() == batch[-1][0].zxid
    for store in stores:
        assert store.flush_and_sync() is None
        store.close()
    logs = [files(d, "log") for d in (one, many)]
    assert logs[0] == logs[1] and len(logs[0]) == 1
    with open(os.path.join(vdir(one), logs[0][0]), "rb") as a, \
            open(os.path.join(vdir(many), logs[1][0]), "rb") as b:
        assert a.read() == b.read()
    tree, sessions, _ = restored(many)
    assert_same_tree(w.tree, tree)
    assert sessions == w.sessions
