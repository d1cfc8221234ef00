"""Disk faults on the log: a failed write or fsync stops acknowledging, loses
nothing that was acknowledged, and leaves no half-written record behind.

Faults are injected with a store subclass whose IO primitives fail (a fake,
not a mock), and for real with a 1 MiB tmpfs when this process may mount one.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_storage_helpers import Workload, assert_same_tree  # noqa: E402

from zabpy.jute import records as R  # noqa: E402
from zabpy.jute.constants import OpCode  # noqa: E402
from zabpy.storage import TxnStore, scan_log  # noqa: E402
from zabpy.tree.acl import OPEN_ACL_UNSAFE  # noqa: E402
from zabpy.tree.datatree import DataTree  # noqa: E402


class FaultyStore(TxnStore):
    """Writes half of a batch then fails with ENOSPC, or fails the fsync, when armed."""

    fail_write = False
    fail_fsync = False

    def _pwrite(self, fd, data, offset):
        if self.fail_write and len(data) > 1:
            os.pwrite(fd, bytes(data[: len(data) // 2]), offset)
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return os.pwrite(fd, data, offset)

    def _fsync(self, fd):
        if self.fail_fsync:
            raise OSError(errno.EIO, "Input/output error (injected)")
        os.fdatasync(fd)


@pytest.mark.parametrize("fault", ["write", "fsync"])
def test_failed_flush_loses_nothing_acknowledged(tmp_path, fault, caplog):
    w = Workload(seed=21)
    store = FaultyStore(str(tmp_path), pre_alloc_size=1 << 16)
    store.restore(DataTree())
    for _ in range(50):
        store.append(*w.step())
    store.flush_and_sync()  # acknowledged
    acked = Workload(seed=21)
    acked.txns(50)
    for _ in range(20):
        store.append(*w.step())
    setattr(store, "fail_" + fault, True)
    with caplog.at_level(logging.ERROR, logger="zabpy.storage"):
        with pytest.raises(OSError):
            store.flush_and_sync()
    assert "no longer be acknowledged" in caplog.text
    setattr(store, "fail_" + fault, False)
    store.append(*w.step())
    with pytest.raises(OSError):  # sticky: the runtime must stop acknowledging
        store.flush_and_sync()
    store.close()
    with open(store.log_path, "rb") as f:
        scan = scan_log(f.read())
    assert scan.clean and len(scan.entries) == 50  # no half record left behind
    tree = DataTree()
    sessions = TxnStore(str(tmp_path)).restore(tree)
    assert_same_tree(acked.tree, tree)
    assert sessions == acked.sessions


def test_first_write_of_a_log_failing_leaves_no_file(tmp_path):
    w = Workload(seed=22)
    store = FaultyStore(str(tmp_path))
    store.restore(DataTree())
    store.fail_write = True
    store.append(*w.step())
    with pytest.raises(OSError):
        store.flush_and_sync()
    assert sorted(os.listdir(store.log_dir)) == ["snapshot.0"]
    assert TxnStore(str(tmp_path)).restore(DataTree()) == {}


def _mount_tmpfs(path: str) -> bool:
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
                       capture_output=True)
    return r.returncode == 0


def test_full_disk_on_real_tmpfs(tmp_path):
    mnt = str(tmp_path / "small")
    if not _mount_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected faults cover this")
    try:
        store = TxnStore(mnt, pre_alloc_size=1 << 16)
        store.restore(DataTree())
        hdr = lambda z, t: R.TxnHeader(0x77, z, z, 1000 + z, t)  # noqa: E731
        store.append(hdr(1, OpCode.createSession), R.CreateSessionTxn(30000))
        store.append(hdr(2, OpCode.create), R.CreateTxn("/big", b"", list(OPEN_ACL_UNSAFE), False, 1))
        store.flush_and_sync()
        acked = 2
        with pytest.raises(OSError) as info:
            for z in range(3, 10_000):
                store.append(hdr(z, OpCode.setData), R.SetDataTxn("/big", bytes([z % 251]) * 4000, z - 2))
                store.flush_and_sync()
                acked = z
        assert info.value.errno == errno.ENOSPC
        store.close()
        tree = DataTree()
        sessions = TxnStore(mnt).restore(tree)
        node = tree.nodes["/big"]
        assert tree.last_processed_zxid == acked
        assert node.version == acked - 2 and node.data == bytes([acked % 251]) * 4000
        assert sessions == {0x77: 30000}
    finally:
        subprocess.run(["umount", mnt], capture_output=True)
