"""The file-backed store: ZooKeeper 3.8's data directory, written by zabpy.

State: the open log file (``log.<hex zxid>`` in ``<dataLogDir>/version-2``),
an in-memory list of encoded entries not yet written, the offset up to which
the file is durable, counters for the snapCount rule, and at most one forked
snapshot writer.

Threads and call order (the runtime's contract):

* ``restore(tree)`` once, before anything else (writes ``snapshot.0`` into a
  fresh directory, as ZooKeeper does). With forceSync that empty snapshot is
  made durable (file, then directory) by ``sync_base()``, which the runtime
  runs in its worker thread while it starts listening, and which the first
  flush runs before it writes a txn if it has not run yet: no logged txn is
  ever durable without its base. ZooKeeper writes it with no fsync at all.
* ``append(hdr, txn, digest)`` on the event loop for each txn, in zxid order:
  it only encodes the entry and puts it on the pending list (under
  ``_lock``), so it is cheap and never blocks on disk.
* ``flush_and_sync()`` from one worker thread at a time (``_flush_lock``):
  it swaps the pending list out under ``_lock``, then, outside it, rolls
  the log if a snapshot asked for it, preallocates, writes the batch with
  one ``pwrite`` and ``fdatasync``s it (unless forceSync=no). Entries
  appended meanwhile wait for the next call: that is the group commit. A
  reply may leave once the flush that wrote its txn has returned.
* An ``OSError`` in a flush is sticky: the file is cut back to the last
  durable offset (so nothing half-written stays behind), the error is logged,
  and every later flush raises too. The runtime must stop acknowledging
  writes; a restart recovers from the files, which hold exactly the
  acknowledged txns.
* ``should_snapshot()`` / ``start_snapshot(tree, sessions)`` on the event
  loop: the snapshot is written by a forked child from its copy-on-write
  image of the tree (exact at ``tree.last_processed_zxid``), to a hidden
  temp file renamed into place, so writes never stall; the next flush rolls
  to a new log file. ``poll_snapshot()`` reaps the child. Every snapshot
  (forked, synchronous, a learner's installed SNAP) is compressed by
  ``snapshot_compression_method`` (``storage.snapstream``) and carries the
  digest section unless ``digest_enabled`` is false.
* Log roll by size (``txn_log_size_limit_bytes``, txnLogSizeLimitInKb): a
  flush that leaves the file longer than the limit (preallocation counts,
  as in ZooKeeper) closes it, so the next append starts a new log file.
* ``read_for_sync(after, upto, factor)`` from the thread that flushes, between
  flushes: committed txns for a learner's DIFF, read back from the log files
  when ZooKeeper's snapshotSizeFactor rule allows it.
* ``purge()`` (autopurge timer, any thread) and ``close()``.

Test hooks: the IO primitives ``_pwrite``, ``_fsync`` and ``_fork`` are class
attributes, so a subclass can inject faults (tests/test_storage_faults.py).
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import stat
import threading
import time
import traceback
from typing import TYPE_CHECKING

from ..jute import records as R
from ..jute.codec import Record
from ..limits import (LOG_PREALLOC_BYTES_DEFAULT, SNAP_COUNT_DEFAULT, SNAP_RETAIN_COUNT_MIN,
                      SNAP_SIZE_LIMIT_BYTES_DEFAULT)
from ..tree.datatree import DataTree
from . import datadir as D
from . import snapstream
from .recovery import RestoreResult, StorageError, restore
from .snapshot import serialize_snapshot
from ..jute.codec import DecodeError
from .txnlog import (FILE_HEADER_LEN, decode_payload, encode_entry, encode_entry_payload,
                     encode_file_header, padded_size, payload_zxid, scan_log)

if TYPE_CHECKING:
    import random

__all__ = ["TxnStore", "StorageError", "write_snapshot_file", "sync_snapshot_file"]

log = logging.getLogger("zabpy.storage")


def write_snapshot_file(snap_dir: str, tree: DataTree, sessions: dict[int, int], zxid: int,
                        pwrite=os.pwrite, method: str = snapstream.PLAIN,
                        digest: bool = True, sync: bool = True) -> str:
    """Write ``snapshot.<zxid hex>[.gz|.snappy]`` durably (temp file, fsync,
    rename, fsync dir), compressed by ``method``, with the digest section
    unless ``digest`` is false (digest.enabled=false). ``sync=False`` leaves
    out both fsyncs: the caller makes it durable later (``sync_snapshot_file``)."""
    final = os.path.join(snap_dir, D.snapshot_name(zxid, method))
    tmp = os.path.join(snap_dir, f"{D.SNAP_TMP_PREFIX}{zxid:x}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pos = 0
        encoder = snapstream.SnapshotEncoder(method)
        for chunk in serialize_snapshot(tree, sessions, zxid, digest=digest):
            pos = _write_all(pwrite, fd, encoder.feed(chunk), pos)
        pos = _write_all(pwrite, fd, encoder.finish(), pos)
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, final)
    if sync:
        D.fsync_dir(snap_dir)
    return final


def sync_snapshot_file(path: str) -> None:
    """Make a snapshot written with ``sync=False`` durable: its data, then its
    directory entry."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    D.fsync_dir(os.path.dirname(path))


# The forked snapshot writer runs at this niceness above the server's, so that
# on a busy machine the scheduler serves the server's loop (clients) first;
# the writer has the whole image to itself and may take longer.
SNAPSHOT_WRITER_NICE = 10
# ... and, for its first this many seconds, only on a CPU that would otherwise
# idle (SCHED_IDLE): a server that wakes preempts it at once, where a nice
# writer may keep the CPU for the rest of its time slice. Past that it goes
# on at its niceness, so that on a machine with no idle CPU (an idle task gets
# a fraction of a percent there) a snapshot still ends.
SNAPSHOT_WRITER_IDLE_S = 30.0


def release_sockets() -> None:
    """In a forked writer: close the sockets inherited from the server (its
    client port, client and peer connections). Otherwise a writer still at
    work when the server dies (kill -9, at idle priority on a busy machine)
    keeps the port bound, so the restarted server cannot listen, and keeps
    the connections open, so clients do not see the server go. The server
    keeps its own descriptors: closing the child's copies changes nothing
    for it."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return  # no /proc: nothing to walk (the writer still works)
    for fd in fds:
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass  # the listing's own descriptor, already gone


def lower_priority() -> None:
    """In a forked writer: yield the CPU to the server. Raising one's own
    niceness is always permitted, so this cannot fail."""
    os.nice(SNAPSHOT_WRITER_NICE)


def idle_priority() -> bool:
    """In the forked snapshot writer: ``lower_priority``, then SCHED_IDLE
    where the platform has it (lowering one's own policy is permitted).
    True if the writer is now an idle task."""
    lower_priority()
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True


def idle_until(limit_s: float, pwrite=os.pwrite):
    """A pwrite for the idle snapshot writer: the first write after
    ``limit_s`` seconds puts the writer back under the normal policy, at its
    niceness (the writer calls it every chunk, so no thread is needed)."""
    deadline = time.monotonic() + limit_s
    state = {"idle": True}

    def write(fd: int, data, pos: int) -> int:
        if state["idle"] and time.monotonic() >= deadline:
            state["idle"] = False
            try:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            except (AttributeError, OSError):
                pass
        return pwrite(fd, data, pos)

    return write


def _follows(last: int, zxid: int) -> bool:
    """``zxid`` comes right after ``last`` (next counter, or a later epoch)."""
    return zxid == last + 1 if zxid >> 32 == last >> 32 else zxid >> 32 > last >> 32


def _write_all(pwrite, fd: int, data: bytes, pos: int) -> int:
    view = memoryview(data)
    while view:
        n = pwrite(fd, view, pos)
        pos += n
        view = view[n:]
    return pos


class TxnStore:
    """Transaction log + snapshots in ZooKeeper's on-disk format (see module doc)."""

    _pwrite = staticmethod(os.pwrite)
    _fsync = staticmethod(os.fdatasync)
    _fork = staticmethod(os.fork)

    def __init__(self, data_dir: str, data_log_dir: str | None = None, *, force_sync: bool = True,
                 pre_alloc_size: int = LOG_PREALLOC_BYTES_DEFAULT,
                 snap_count: int = SNAP_COUNT_DEFAULT, rng: random.Random | None = None,
                 snap_retain_count: int = SNAP_RETAIN_COUNT_MIN,
                 snap_size_limit_bytes: int = SNAP_SIZE_LIMIT_BYTES_DEFAULT,
                 snapshot_compression_method: str = snapstream.PLAIN,
                 txn_log_size_limit_bytes: int = -1, trust_empty_snapshot: bool = False,
                 digest_enabled: bool = True):
        self.snap_dir = D.version_dir(data_dir)
        self.log_dir = D.version_dir(data_log_dir or data_dir)
        os.makedirs(self.snap_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.force_sync = force_sync
        self.pre_alloc_size = pre_alloc_size
        if snap_count < 2:
            log.warning("snapCount %d is below 2; using 2", snap_count)
        self.snap_count = max(2, snap_count)
        self.snap_size_limit_bytes = snap_size_limit_bytes
        assert snapshot_compression_method in snapstream.METHODS, snapshot_compression_method
        self.snapshot_method = snapshot_compression_method
        self.txn_log_size_limit_bytes = txn_log_size_limit_bytes
        self.trust_empty_snapshot = trust_empty_snapshot
        self.digest_enabled = digest_enabled
        # The start-up lines ZooKeeper prints for these settings.
        log.info("zookeeper.snapshot.compression.method = %s",
                 {snapstream.GZIP: "GZIP", snapstream.SNAPPY: "SNAPPY"}.get(
                     snapshot_compression_method, "CHECKED"))
        log.info("zookeeper.snapshot.trust.empty : %s", str(trust_empty_snapshot).lower())
        if txn_log_size_limit_bytes > 0:
            log.info("zookeeper.txnLogSizeLimitInKb = %d", txn_log_size_limit_bytes // 1024)
        if snap_retain_count < SNAP_RETAIN_COUNT_MIN:
            log.warning("autopurge.snapRetainCount %d is below %d; using %d", snap_retain_count,
                        SNAP_RETAIN_COUNT_MIN, SNAP_RETAIN_COUNT_MIN)
        self.snap_retain_count = max(SNAP_RETAIN_COUNT_MIN, snap_retain_count)
        if rng is None:
            import random  # here: the first store of a process pays for it, not every import
            rng = random.Random()
        self._rng = rng
        self._lock = threading.Lock()        # pending list, roll flag, counters
        self._flush_lock = threading.Lock()  # one flush (and file roll) at a time
        self._pending: list[bytes] = []
        self._pending_first_zxid: int | None = None
        self._last_appended_zxid = -1
        self._roll_pending = False
        self._fd: int | None = None
        self.log_path: str | None = None
        self._pos = 0          # write offset in the open log
        self._size = 0         # preallocated size of the open log
        self._durable_pos = 0  # offset up to which the open log is written and synced
        self.failed: OSError | None = None
        self._txns_since_snap = 0
        self._bytes_since_snap = 0
        self._reroll()
        self._snap_child: tuple[int, int] | None = None  # (pid, zxid)
        self.last_restore: RestoreResult | None = None
        # the fresh directory's snapshot.0 until it is durable (sync_base)
        self.unsynced_base: str | None = None
        self.last_snapshot_zxid: int | None = None

    # ---- restore -------------------------------------------------------------

    def restore(self, tree: DataTree) -> dict[int, int]:
        """Load the newest valid snapshot and replay the logs; returns sessions.

        Raises StorageError naming the file when the directory cannot be
        loaded without losing data. Truncates a torn log tail.
        """
        result = restore(self.snap_dir, self.log_dir, tree,
                         trust_empty_snapshot=self.trust_empty_snapshot,
                         digest_enabled=self.digest_enabled)
        if result.snapshot_path is None and result.replayed == 0:
            # A fresh directory gets snapshot.0, so logs always have a base
            # (ZooKeeper does the same, and refuses logs without a snapshot).
            # With forceSync it becomes durable before any txn does
            # (sync_base), not before the server may listen.
            path = write_snapshot_file(self.snap_dir, tree, {}, tree.last_processed_zxid,
                                       method=self.snapshot_method, digest=self.digest_enabled,
                                       sync=not self.force_sync)
            self.unsynced_base = path if self.force_sync else None
            self.last_snapshot_zxid = tree.last_processed_zxid
        elif result.snapshot_path is None:
            # Logs replayed over a trusted empty snapshot: no base on disk
            # until the caller's start-up snapshot is written.
            self.last_snapshot_zxid = None
        else:
            self.last_snapshot_zxid = result.snapshot_zxid
        self._last_appended_zxid = tree.last_processed_zxid
        self.last_restore = result
        return dict(result.sessions)

    # ---- the write-ahead log ----------------------------------------------------

    def append(self, hdr: R.TxnHeader, txn: Record | None, digest: R.TxnDigest | None = None) -> None:
        """Queue one txn for the next flush (cheap; no IO)."""
        self._queue(hdr.zxid, encode_entry(hdr, txn, digest))

    def append_many(self, records) -> None:
        """``append(hdr, txn)`` of each (TxnHeader, txn) in ``records``, in
        order, under one take of the lock (a group commit's worth at once)."""
        entries = [(hdr.zxid, encode_entry(hdr, txn)) for hdr, txn in records]
        with self._lock:
            last = self._last_appended_zxid
            pending = self._pending
            if not pending and entries:
                self._pending_first_zxid = entries[0][0]
            size = 0
            for zxid, entry in entries:
                assert zxid > last, (zxid, last)
                last = zxid
                pending.append(entry)
                size += len(entry)
            self._last_appended_zxid = last
            self._txns_since_snap += len(entries)
            self._bytes_since_snap += size

    def append_payload(self, zxid: int, payload: bytes) -> None:
        """``append`` of a txn already encoded (TxnHeader ‖ txn ‖ digest, as a
        PROPOSAL carries it): the same log bytes, without encoding it again."""
        assert payload_zxid(payload) == zxid, (payload_zxid(payload), zxid)
        self._queue(zxid, encode_entry_payload(payload))

    def _queue(self, zxid: int, entry: bytes) -> None:
        with self._lock:
            assert zxid > self._last_appended_zxid, (zxid, self._last_appended_zxid)
            self._last_appended_zxid = zxid
            if not self._pending:
                self._pending_first_zxid = zxid
            self._pending.append(entry)
            self._txns_since_snap += 1
            self._bytes_since_snap += len(entry)

    def has_pending(self) -> bool:
        """Appended txns not yet written (a flush would have work to do)."""
        with self._lock:
            return bool(self._pending) or self._roll_pending

    def sync_base(self) -> None:
        """Make the fresh directory's snapshot.0 durable, once (any thread;
        raises OSError, and the next call tries again)."""
        with self._flush_lock:
            self._sync_base_locked()

    def _sync_base_locked(self) -> None:
        if self.unsynced_base is None:
            return
        try:
            sync_snapshot_file(self.unsynced_base)
        except FileNotFoundError:
            # purged after later snapshots (each written durably) superseded
            # it: one of those is the base now; with none, the error stands
            if not [p for _, p in D.find_valid_snapshots(self.snap_dir, 1)]:
                raise
        self.unsynced_base = None

    def flush_and_sync(self) -> int | None:
        """Write every queued txn and fsync it (forceSync); raises OSError on IO
        error. Returns the zxid of the last txn it made durable (None: none was
        queued), which no txn appended meanwhile is below (zxids increase)."""
        with self._flush_lock:
            if self.failed is not None:
                raise OSError(errno.EIO, f"transaction log failed earlier: {self.failed}")
            try:
                self._sync_base_locked()  # the base before anything it is the base of
            except OSError as e:
                self._fail(e)
                raise
            with self._lock:
                batch, self._pending = self._pending, []
                first_zxid, self._pending_first_zxid = self._pending_first_zxid, None
                roll, self._roll_pending = self._roll_pending, False
                last_zxid = self._last_appended_zxid
            try:
                if roll:
                    self._close_log()
                if batch:
                    self._write_batch(first_zxid, batch)
                    self._roll_if_too_big()
            except OSError as e:
                self._fail(e)
                raise
            return last_zxid if batch else None

    def _write_batch(self, first_zxid: int, batch: list[bytes]) -> None:
        created = self._fd is None
        if created:
            self._open_log(first_zxid)
            batch.insert(0, encode_file_header())
        data = b"".join(batch)
        # FilePadding, as FileTxnLog calls it: from the position before the
        # write, the file's size known after its 16-byte header, so a file
        # is 16 + k * preAllocSize bytes long, as ZooKeeper's are (the size
        # that txnLogSizeLimitInKb is compared with). A batch larger than
        # the padding just extends the file, and the next one pads again.
        start = FILE_HEADER_LEN if created else self._pos
        new_size = padded_size(start, self._size, self.pre_alloc_size)
        if new_size > self._size:
            # Sparse preallocation: one zero byte at the new end, as FilePadding.
            self._pwrite(self._fd, b"\0", new_size - 1)
            self._size = new_size
        self._pos = _write_all(self._pwrite, self._fd, data, self._pos)
        if self.force_sync:
            self._fsync(self._fd)
            if created:
                D.fsync_dir(self.log_dir)
        self._durable_pos = self._pos

    def _roll_if_too_big(self) -> None:
        """txnLogSizeLimitInKb, as FileTxnLog.commit: once the file (its length
        on disk, preallocation included) is above the limit after a flush,
        the next append starts a new log file."""
        limit = self.txn_log_size_limit_bytes
        if limit > 0 and self._fd is not None and max(self._size, self._pos) > limit:
            log.debug("log size limit %d reached by %s (%d bytes); rolling", limit,
                      self.log_path, max(self._size, self._pos))
            self._close_log()

    def _write_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int,
                        pwrite=os.pwrite) -> str:
        return write_snapshot_file(self.snap_dir, tree, sessions, zxid, pwrite=pwrite,
                                   method=self.snapshot_method, digest=self.digest_enabled)

    def _open_log(self, zxid: int) -> None:
        path = os.path.join(self.log_dir, D.log_name(zxid))
        log.info("creating new log file %s", path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.log_path = path
        self._pos = self._durable_pos = 0
        self._size = FILE_HEADER_LEN  # FilePadding.setCurrentSize after the header

    def _close_log(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _fail(self, e: OSError) -> None:
        """Stop the log for good, leaving only durable records in the file."""
        self.failed = e
        log.error("transaction log %s failed: %s; writes can no longer be acknowledged",
                  self.log_path, e)
        if self._fd is None:
            return
        try:
            if self._durable_pos == 0:
                os.unlink(self.log_path)
            else:
                os.ftruncate(self._fd, self._durable_pos)
                self._fsync(self._fd)
        except OSError as e2:
            log.error("could not cut %s back to %d bytes: %s (restore will treat the rest "
                      "as a torn tail)", self.log_path, self._durable_pos, e2)
        self._close_log()

    # ---- snapshots --------------------------------------------------------------

    def _reroll(self) -> None:
        # ZooKeeper's SyncRequestProcessor: randomised so that servers of an
        # ensemble do not all snapshot at once.
        self._rand_roll = self._rng.randrange(self.snap_count // 2)
        half_size = self.snap_size_limit_bytes // 2
        self._rand_size = self._rng.randrange(half_size) if half_size > 0 else 0

    def should_snapshot(self) -> bool:
        """snapCount/2 + random(snapCount/2) txns (or the size rule) since the last snapshot."""
        with self._lock:
            if self._snap_child is not None:
                return False
            if self._txns_since_snap > self.snap_count // 2 + self._rand_roll:
                return True
            limit = self.snap_size_limit_bytes
            return limit > 0 and self._bytes_since_snap > limit // 2 + self._rand_size

    def start_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Fork a child that writes snapshot.<tree zxid>; roll the log at the next flush."""
        assert self._snap_child is None, "a snapshot is already being written"
        zxid = tree.last_processed_zxid
        with self._lock:
            self._roll_pending = True
            self._txns_since_snap = self._bytes_since_snap = 0
            self._reroll()
        started = time.monotonic()
        pid = self._fork()
        if pid == 0:  # the child: write from the copy-on-write image, then leave
            code = 1
            try:
                gc.disable()
                release_sockets()
                pwrite = idle_until(SNAPSHOT_WRITER_IDLE_S) if idle_priority() else os.pwrite
                self._write_snapshot(tree, sessions, zxid, pwrite)
                code = 0
            except BaseException:
                os.write(2, traceback.format_exc().encode())
            finally:
                os._exit(code)
        self._snap_child = (pid, zxid)
        log.info("snapshot of zxid %#x started (pid %d; fork %.1f ms)", zxid, pid,
                 (time.monotonic() - started) * 1000)

    def poll_snapshot(self) -> bool:
        """True when no snapshot is in progress; reaps a finished writer."""
        if self._snap_child is None:
            return True
        return self._reap(os.WNOHANG)

    def wait_snapshot(self) -> None:
        """Block until a running snapshot writer has finished (tools, tests)."""
        if self._snap_child is not None:
            self._reap(0)

    def _reap(self, flags: int) -> bool:
        pid, zxid = self._snap_child
        try:
            done, status = os.waitpid(pid, flags)
        except ChildProcessError:
            done, status = pid, None  # reaped elsewhere; judge by the file
        if done == 0:
            return False
        self._snap_child = None
        final = os.path.join(self.snap_dir, D.snapshot_name(zxid, self.snapshot_method))
        ok = os.waitstatus_to_exitcode(status) == 0 if status is not None else os.path.exists(final)
        if ok:
            self.last_snapshot_zxid = zxid
            log.info("snapshot %s written", final)
        else:
            log.error("snapshot of zxid %#x failed (status %s)", zxid, status)
            tmp = os.path.join(self.snap_dir, f"{D.SNAP_TMP_PREFIX}{zxid:x}.{pid}.tmp")
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True

    def snapshot_now(self, tree: DataTree, sessions: dict[int, int]) -> str:
        """Write a snapshot synchronously (tools, tests, shutdown); rolls the log."""
        with self._lock:
            self._roll_pending = True
            self._txns_since_snap = self._bytes_since_snap = 0
            self._reroll()
        path = self._write_snapshot(tree, sessions, tree.last_processed_zxid)
        self.last_snapshot_zxid = tree.last_processed_zxid
        return path

    # ---- reading the log back ----------------------------------------------------

    def read_for_sync(self, after_zxid: int, upto_zxid: int, factor: float) -> tuple | None:
        """The logged txns up to ``upto_zxid``, from the first txn of the log
        file holding ``after_zxid`` (a ``LogRead``); None when the rule in
        ``zab.sync`` prefers a snapshot, or the log does not reach back."""
        from ..zab.sync import log_files_for, log_sync_fits

        files = [(z, p) for z, p in D.list_zxid_files(self.log_dir, D.LOG_PREFIX)]
        try:
            sized = [(z, os.path.getsize(p)) for z, p in files]
            snaps = D.find_valid_snapshots(self.snap_dir, 1)
            snap_size = os.path.getsize(snaps[0][1]) if snaps else 0
        except OSError:
            return None          # purged meanwhile: a snapshot will do
        chosen = log_files_for(sized, after_zxid)
        if chosen is None:
            return None
        first, storage = chosen
        if not log_sync_fits(storage, snap_size, factor):
            log.info("txn log size %d exceeds the limit for snapshot size %d; sending a snapshot",
                     storage, snap_size)
            return None
        out: list = []
        for _zxid, path in files[first:]:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                return None
            for _offset, zxid, payload in scan_log(data).entries:
                if zxid > upto_zxid:
                    return tuple(out)
                if out and zxid <= out[-1][0].zxid:
                    continue
                if out and not _follows(out[-1][0].zxid, zxid):
                    return None   # a hole in the log: only a snapshot is safe
                try:
                    hdr, txn, _digest = decode_payload(payload)
                except DecodeError:
                    return None
                out.append((hdr, txn))
        return tuple(out)

    # ---- retention and shutdown ---------------------------------------------------

    def purge(self) -> None:
        """Autopurge: keep the snap_retain_count newest snapshots and the logs they need."""
        D.purge(self.snap_dir, self.log_dir, self.snap_retain_count)

    def close(self) -> None:
        """Close the log (pending, unflushed txns are dropped) and wait for a snapshot writer."""
        self.wait_snapshot()
        with self._flush_lock:
            self._close_log()
