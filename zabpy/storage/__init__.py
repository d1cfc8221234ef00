"""Durable storage in ZooKeeper 3.8's on-disk format.

Pure formats: ``txnlog`` (log file header and entries, a scanner that finds
where good data ends), ``snapshot`` (serialize / deserialize a tree with
its seals and digest) and ``snapstream`` (gz / snappy snapshot files). IO: ``datadir`` (names, listings, retention),
``recovery`` (restore = snapshot + log replay, torn-tail repair) and
``files.TxnStore`` (the write-ahead log with group commit, forked snapshots,
autopurge) used by the runtime.
"""

from .datadir import purge
from .files import TxnStore, write_snapshot_file
from .recovery import RestoreResult, StorageError, restore
from .snapshot import SnapshotError, deserialize_snapshot, serialize_snapshot, tree_digest
from .txnlog import LogScan, decode_payload, encode_entry, encode_file_header, scan_log

__all__ = ["TxnStore", "StorageError", "RestoreResult", "restore", "purge",
           "write_snapshot_file", "SnapshotError", "serialize_snapshot", "deserialize_snapshot",
           "tree_digest", "LogScan", "scan_log", "encode_entry", "encode_file_header",
           "decode_payload"]
