"""Jute: ZooKeeper's wire and txn records, declared once."""

from .codec import DecodeError, Reader, Record, Writer, decode, encode
from .constants import (AddWatchMode, CreateMode, Err, EventType, KeeperState, OpCode, Perms,
                        WatcherType, Xid)
from . import records

__all__ = ["DecodeError", "Reader", "Record", "Writer", "decode", "encode", "AddWatchMode",
           "CreateMode", "Err", "EventType", "KeeperState", "OpCode", "Perms", "WatcherType", "Xid",
           "records"]
