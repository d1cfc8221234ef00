"""Retention: PurgeTxnLog's keep-N rule, autopurge and `zabpy purge`.

Reference: zookeeper-facts.md section 4.3 (purge): keep the N newest valid
snapshots; delete snapshots and logs below the oldest kept one, except the
newest log that starts at or before it. Checked against ZooKeeper's own
PurgeTxnLog when java is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from zabpy.cli.purge import main as purge_main
from zabpy.storage import TxnStore, purge

VALID_TAIL = bytes(8) + b"\x00\x00\x00\x01/"
SNAPS = [0x0, 0x10, 0x20, 0x30, 0x40, 0x50]
LOGS = [0x1, 0x15, 0x25, 0x2a, 0x35, 0x45]


def make_dir(root, snaps=SNAPS, logs=LOGS, bad_snaps=()) -> str:
    v = os.path.join(str(root), "version-2")
    os.makedirs(v)
    for z in snaps:
        with open(os.path.join(v, f"snapshot.{z:x}"), "wb") as f:
            f.write(b"ZKSN" + (b"\xff" * 4 if z in bad_snaps else VALID_TAIL))
    for z in logs:
        with open(os.path.join(v, f"log.{z:x}"), "wb") as f:
            f.write(b"ZKLG")
    return v


def names(v: str) -> list[str]:
    return sorted(os.listdir(v))


def test_keep_three(tmp_path):
    v = make_dir(tmp_path)
    removed = purge(v, v, 3)
    # Oldest kept snapshot is 0x30; log.2a is the newest log starting at or
    # before it and may hold the txns after it, so it stays.
    assert names(v) == ["log.2a", "log.35", "log.45", "snapshot.30", "snapshot.40", "snapshot.50"]
    assert len(removed) == 6


def test_invalid_snapshots_are_not_counted(tmp_path):
    v = make_dir(tmp_path, bad_snaps=(0x40, 0x50))
    purge(v, v, 3)
    # Valid: 0x30, 0x20, 0x10; the oldest kept is 0x10 and log.1 precedes it.
    assert names(v) == ["log.1", "log.15", "log.25", "log.2a", "log.35", "log.45",
                        "snapshot.10", "snapshot.20", "snapshot.30", "snapshot.40", "snapshot.50"]


def test_count_below_three_rejected(tmp_path):
    v = make_dir(tmp_path)
    with pytest.raises(ValueError):
        purge(v, v, 2)
    assert purge_main([str(tmp_path), "-n", "2"]) == 2
    assert len(names(v)) == len(SNAPS) + len(LOGS)


def test_cli(tmp_path, capsys):
    v = make_dir(tmp_path)
    assert purge_main([str(tmp_path), "-n", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("Removing file:") == 3
    assert names(v) == ["log.15", "log.25", "log.2a", "log.35", "log.45",
                        "snapshot.20", "snapshot.30", "snapshot.40", "snapshot.50"]
    assert purge_main([str(tmp_path / "nope")]) == 2


def test_separate_log_dir(tmp_path):
    snap_v = make_dir(tmp_path / "data", logs=())
    log_v = make_dir(tmp_path / "logs", snaps=())
    assert purge_main([str(tmp_path / "data"), "-l", str(tmp_path / "logs")]) == 0
    assert names(snap_v) == ["snapshot.30", "snapshot.40", "snapshot.50"]
    assert names(log_v) == ["log.2a", "log.35", "log.45"]


def test_store_autopurge_keeps_retain_count(tmp_path):
    store = TxnStore(str(tmp_path), snap_retain_count=1)  # raised to the minimum, 3
    assert store.snap_retain_count == 3
    make_dir(tmp_path / "other")
    shutil.rmtree(store.snap_dir)
    shutil.copytree(os.path.join(str(tmp_path / "other"), "version-2"), store.snap_dir)
    store.purge()
    assert names(store.snap_dir)[:1] == ["log.2a"]


@pytest.mark.skipif(shutil.which("java") is None or not os.path.exists("/usr/share/java/zookeeper.jar"),
                    reason="java or Debian's zookeeper package is not installed")
def test_same_as_zookeeper_purgetxnlog(tmp_path):
    ours = make_dir(tmp_path / "ours", bad_snaps=(0x20,))
    theirs = make_dir(tmp_path / "theirs", bad_snaps=(0x20,))
    purge(ours, ours, 3)
    subprocess.run(["java", "-cp", "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar",
                    "org.apache.zookeeper.server.PurgeTxnLog", str(tmp_path / "theirs"), "-n", "3"],
                   check=True, capture_output=True, timeout=120)
    assert names(ours) == names(theirs)
