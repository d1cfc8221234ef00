"""Each member's data directory on a file system of its own, and the disk
faults made on it.

Theory of operation
-------------------
At the start of a run every member gets a small file system mounted at its
dataDir: ext4 on a loop device backed by a sparse image file (``mount -o
loop``, whose loop device goes away with the mount), or a size-limited tmpfs
where loop devices are missing. Then:

* **disk-full**: a ballast file takes every free block (``posix_fallocate``
  of what ``statvfs`` says is free, then writes until ENOSPC). The next log
  write or snapshot of that member fails with ENOSPC. Healing deletes the
  ballast.
* **disk-eio** and **disk-slow**: this kernel has no device-mapper
  (CONFIG_BLK_DEV_DM is off), so no ``dm-flakey`` / ``dm-delay``. FUSE is
  there, but a passthrough FUSE daemon puts every write of the member
  through a second process for the whole run. Instead each server runs with
  ``LD_PRELOAD`` of a tiny C shim (compiled with gcc at the start of a run)
  that interposes ``fsync`` and ``fdatasync``: while the member's control
  word says so, they fail with EIO (the disk lost the data: what a failing
  device reports, "fsyncgate") or sleep a given number of ms first (a
  device that stalls). Both zabpy (``os.fsync``) and the JVM (``FileChannel
  .force`` in libnio) call libc, so the shim reaches both. Writes are not
  failed: they land in the page cache, and a real disk reports its failure
  at fsync. The control word lives in a file the shim maps shared, so
  setting it is one ``pwrite`` and reading it costs the shim nothing.
* **kill-drop**: kill -9, then ``echo 3 > /proc/sys/vm/drop_caches`` before
  the restart, so the member recovers from what reached the device, not
  from the page cache (clean pages only: the kernel writes dirty pages back
  first, so this is no power cut).

* **power-loss**: with tracking on (``Disks(track=True)``, when a run may
  draw a power-loss fault) the shim also interposes ``write``, ``writev``,
  ``pwrite`` and ``pwrite64``: each write to a regular file under the
  member's dataDir widens that file's dirty range in a table kept in the
  same shared file (after the control page), and a successful ``fsync`` /
  ``fdatasync`` empties it. The table outlives a ``kill -9``, so after the
  kill the harness knows what the page cache held and the device did not:
  ``power_loss`` zeroes those bytes and cuts each file back to its size at
  its last fsync (a file never fsynced is left empty), unless the file's
  last write is older than the kernel's writeback age (``writeback_age_s``,
  35 s by default): the kernel wrote that back by itself. Directory entries
  (creates, renames) are kept: ext4's journal usually keeps them too, and
  modelling their loss needs more than a shim.

A member whose log write fails must stop (or stop acknowledging); the
checkers then show whether any acknowledged write was lost.

Cleanup: ``close()`` unmounts everything; mount points carry the creating
process id (``.../zabpy-chaos-<pid>-*/``) so ``sweep_mounts`` unmounts the
leftovers of a run that was killed.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time

__all__ = ["Disks", "sweep_mounts", "WORKDIR_PREFIX", "drop_caches"]

WORKDIR_PREFIX = "zabpy-chaos-"
IMAGE_MB = 256
FILL_CHUNK = 1 << 20
SHIM_ENV = "ZCHAOS_DISK_CTL"
MODE_OK, MODE_EIO, MODE_SLOW = 0, 1, 2
SLOT_MAX = 512
# struct slot in the shim: dev, ino, lo, hi, size0, t_ns (CLOCK_MONOTONIC of
# the last write), path[208] (256 bytes).
_SLOT = struct.Struct("<QQqqqq208s")
CTL_BYTES = 4096 + SLOT_MAX * _SLOT.size

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ctl[0]: 0 pass, 1 EIO, 2 sleep ctl[1] ms first (set by zabpy.chaos.disk).
   ctl[2]: lock of the slot table; ctl[3]: slots that did not fit.
   With ZCHAOS_TRACK=1 every write to a regular file under ZCHAOS_DATA_DIR
   widens that file's dirty range (slot table after the first page), and a
   successful fsync/fdatasync of the file empties it: what a power cut would
   lose is then known to the harness even after a kill -9. */
#define SLOT_MAX 512
struct slot { unsigned long long dev, ino; long long lo, hi, size0, t_ns; char path[208]; };
static volatile int *ctl;
static struct slot *slots;
static int track;
static char prefix[256];
static size_t prefix_len;
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
/* Files outside the data dir, remembered so that they cost one fstat. */
static unsigned long long skip_dev[64], skip_ino[64];
static unsigned skip_next;

__attribute__((constructor)) static void init(void) {
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    const char *p = getenv("ZCHAOS_DISK_CTL");
    if (!p) return;
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    size_t len = 4096 + SLOT_MAX * sizeof(struct slot);
    void *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return;
    ctl = m;
    slots = (struct slot *)((char *)m + 4096);
    const char *t = getenv("ZCHAOS_TRACK"), *d = getenv("ZCHAOS_DATA_DIR");
    if (t && t[0] == '1' && d && strlen(d) < sizeof(prefix) - 1) {
        strcpy(prefix, d);
        prefix_len = strlen(prefix);
        track = 1;
    }
}

static void lock(void) { while (__sync_lock_test_and_set(&ctl[2], 1)) ; }
static void unlock(void) { __sync_lock_release(&ctl[2]); }

static int find(const struct stat *st) {
    for (int i = 0; i < SLOT_MAX; i++)
        if (slots[i].ino == st->st_ino && slots[i].dev == st->st_dev) return i;
    return -1;
}

static void dirty(int fd, long long off, long long n, long long size0) {
    struct stat st;
    char link[64], path[208];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long t_ns = now.tv_sec * 1000000000LL + now.tv_nsec;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) return;
    for (int i = 0; i < 64; i++)
        if (skip_ino[i] == st.st_ino && skip_dev[i] == st.st_dev) return;
    lock();
    int i = find(&st);
    if (i >= 0 && slots[i].hi > slots[i].lo) {
        if (off < slots[i].lo) slots[i].lo = off;
        if (off + n > slots[i].hi) slots[i].hi = off + n;
        slots[i].t_ns = t_ns;
        unlock();
        return;
    }
    unlock();
    /* Clean or unknown: name it (it may have been renamed since). */
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, sizeof path - 1);
    if (k <= 0) return;
    path[k] = 0;
    if (strncmp(path, prefix, prefix_len) || path[prefix_len] != '/') {
        unsigned j = __sync_fetch_and_add(&skip_next, 1) % 64;
        skip_dev[j] = st.st_dev;
        skip_ino[j] = st.st_ino;
        return;
    }
    lock();
    i = find(&st);
    if (i < 0)
        for (i = 0; i < SLOT_MAX && slots[i].ino; i++) ;
    if (i == SLOT_MAX) {
        ctl[3]++;
    } else if (slots[i].ino && slots[i].hi > slots[i].lo) {
        if (off < slots[i].lo) slots[i].lo = off;
        if (off + n > slots[i].hi) slots[i].hi = off + n;
        slots[i].t_ns = t_ns;
    } else {
        slots[i].dev = st.st_dev;
        slots[i].ino = st.st_ino;
        slots[i].lo = off;
        slots[i].hi = off + n;
        slots[i].size0 = size0;
        slots[i].t_ns = t_ns;
        memcpy(slots[i].path, path, k + 1);
    }
    unlock();
}

static void clean(int fd) {
    struct stat st;
    if (!track || fstat(fd, &st)) return;
    lock();
    int i = find(&st);
    if (i >= 0) slots[i].lo = slots[i].hi = 0;
    unlock();
}

/* The offset a write at the file position starts at, and the size before. */
static int before(int fd, long long *off, long long *size) {
    struct stat st;
    if (!track || fstat(fd, &st) || !S_ISREG(st.st_mode)) return 0;
    *size = st.st_size;
    *off = (fcntl(fd, F_GETFL) & O_APPEND) ? st.st_size : lseek(fd, 0, SEEK_CUR);
    return *off >= 0;
}

static int sized(int fd, long long *size) {
    struct stat st;
    if (!track || fstat(fd, &st) || !S_ISREG(st.st_mode)) return 0;
    *size = st.st_size;
    return 1;
}

ssize_t write(int fd, const void *b, size_t n) {
    long long off, size;
    int t = before(fd, &off, &size);
    ssize_t r = real_write(fd, b, n);
    if (t && r > 0) dirty(fd, off, r, size);
    return r;
}

ssize_t writev(int fd, const struct iovec *v, int c) {
    long long off, size;
    int t = before(fd, &off, &size);
    ssize_t r = real_writev(fd, v, c);
    if (t && r > 0) dirty(fd, off, r, size);
    return r;
}

ssize_t pwrite(int fd, const void *b, size_t n, off_t o) {
    long long size;
    int t = sized(fd, &size);
    ssize_t r = real_pwrite(fd, b, n, o);
    if (t && r > 0) dirty(fd, o, r, size);
    return r;
}

ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) {
    long long size;
    int t = sized(fd, &size);
    ssize_t r = real_pwrite64(fd, b, n, o);
    if (t && r > 0) dirty(fd, o, r, size);
    return r;
}

static int fault(void) {
    if (!ctl) return 0;
    if (ctl[0] == 1) { errno = EIO; return -1; }
    if (ctl[0] == 2) {
        struct timespec ts = { ctl[1] / 1000, (long)(ctl[1] % 1000) * 1000000L };
        nanosleep(&ts, 0);
    }
    return 0;
}

int fsync(int fd) {
    if (fault()) return -1;
    int r = real_fsync(fd);
    if (r == 0) clean(fd);
    return r;
}

int fdatasync(int fd) {
    if (fault()) return -1;
    int r = real_fdatasync(fd);
    if (r == 0) clean(fd);
    return r;
}
"""


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


def writeback_age_s() -> float:
    """How old a dirty page can get before the kernel writes it back
    (vm.dirty_expire_centisecs plus one vm.dirty_writeback_centisecs
    period): older unsynced writes survive a power cut."""
    total = 0
    for name, default in (("dirty_expire_centisecs", 3000), ("dirty_writeback_centisecs", 500)):
        try:
            with open(f"/proc/sys/vm/{name}") as f:
                total += int(f.read())
        except (OSError, ValueError):
            total += default
    return total / 100.0


def drop_caches() -> bool:
    """Write back and drop the page cache, dentries and inodes (whole machine)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def sweep_mounts(alive) -> list[str]:
    """Unmount file systems left under the work directory of a run whose
    process is gone (``alive(pid)`` false), and remove those directories;
    returns what was removed."""
    out = []
    try:
        mounts = open("/proc/self/mounts").read().splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        fields = line.split()
        if len(fields) < 2:
            continue
        m = re.search(rf"/{WORKDIR_PREFIX}(\d+)-[^/]*/data\d+$", fields[1])
        if m and not alive(int(m.group(1))):
            if _run("umount", fields[1]).returncode and _run("umount", "-l", fields[1]).returncode:
                continue
            out.append(fields[1])
    tmp = tempfile.gettempdir()
    for name in sorted(os.listdir(tmp)):
        m = re.match(rf"{WORKDIR_PREFIX}(\d+)-", name)
        path = os.path.join(tmp, name)
        if m and not alive(int(m.group(1))) and not any(path in line for line in mounts
                                                        if line.split()[1] not in out):
            shutil.rmtree(path, ignore_errors=True)
            out.append(path)
    return out


class Disks:
    """The members' data file systems and their fault controls."""

    def __init__(self, workdir: str, sids: list[int], kind: str = "auto", track: bool = False):
        assert kind in ("auto", "loop", "tmpfs", "none")
        self.track = track      # the shim records what each member has not fsynced
        self.dir = workdir
        self.sids = list(sids)
        self.kind = kind
        self.mounted: list[str] = []
        self.ballast: dict[int, str] = {}
        self.shim: str | None = None
        self.shim_missing = ""
        self.fsync_mode: dict[int, int] = {}
        self._delay_ms: dict[int, int] = {}

    def data_dir(self, sid: int) -> str:
        return os.path.join(self.dir, f"data{sid}")

    def ctl_path(self, sid: int) -> str:
        return os.path.join(self.dir, f"diskctl{sid}")

    def setup(self) -> str:
        """Mount every member's dataDir and build the fsync shim; returns
        what was made (for the report)."""
        kind = self.kind
        for sid in self.sids:
            d = self.data_dir(sid)
            os.makedirs(d, exist_ok=True)
            if kind in ("auto", "loop"):
                if self._mount_loop(sid, d):
                    kind = "loop"
                    continue
                if kind == "loop":
                    raise RuntimeError("cannot mount a loop file system for the data dirs")
                kind = "tmpfs"
            if kind == "tmpfs":
                r = _run("mount", "-t", "tmpfs", "-o", f"size={IMAGE_MB}m", "tmpfs", d)
                if r.returncode:
                    raise RuntimeError(f"cannot mount tmpfs on {d}: {r.stderr.strip()}")
                self.mounted.append(d)
        self.kind = kind
        for sid in self.sids:
            with open(self.ctl_path(sid), "wb") as f:
                f.write(bytes(CTL_BYTES))
        self._build_shim()
        what = {"loop": f"ext4 on loop ({IMAGE_MB} MiB each)", "tmpfs": f"tmpfs ({IMAGE_MB} MiB)",
                "none": "the work directory's file system"}[kind]
        return what + (", fsync shim" if self.shim else f", no fsync shim ({self.shim_missing})")

    def _mount_loop(self, sid: int, d: str) -> bool:
        img = os.path.join(self.dir, f"disk{sid}.img")
        with open(img, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        # -m 0: the servers run as root, so reserved blocks would hide a full disk.
        r = _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0", img)
        if r.returncode == 0:
            r = _run("mount", "-o", "loop", img, d)
        if r.returncode:
            os.unlink(img)
            return False
        self.mounted.append(d)
        return True

    def _build_shim(self) -> None:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            self.shim_missing = "no C compiler"
            return
        src = os.path.join(self.dir, "fsync_shim.c")
        out = os.path.join(self.dir, "fsync_shim.so")
        with open(src, "w") as f:
            f.write(SHIM_C)
        r = _run(gcc, "-O2", "-shared", "-fPIC", "-o", out, src, "-ldl")
        if r.returncode:
            self.shim_missing = f"gcc failed: {r.stderr.strip()[:200]}"
            return
        self.shim = out

    def env(self, sid: int) -> dict[str, str]:
        """Environment additions for member ``sid``'s server process."""
        if self.shim is None:
            return {}
        env = {"LD_PRELOAD": self.shim, SHIM_ENV: self.ctl_path(sid)}
        if self.track:
            env |= {"ZCHAOS_TRACK": "1", "ZCHAOS_DATA_DIR": os.path.realpath(self.data_dir(sid))}
        return env

    def before_start(self, sid: int) -> None:
        """A member's process is about to start: a process killed inside the
        shim may have left its table's lock taken."""
        if self.shim is not None:
            fd = os.open(self.ctl_path(sid), os.O_WRONLY)
            try:
                os.pwrite(fd, bytes(4), 8)
            finally:
                os.close(fd)

    def unsynced(self, sid: int) -> list[tuple[str, int, int, int, int, int, float]]:
        """What member ``sid`` wrote and did not fsync, from the shim's table:
        (path, device, inode, first offset, end offset, size before, seconds
        since the last write)."""
        now_ns = time.monotonic_ns()
        with open(self.ctl_path(sid), "rb") as f:
            table = f.read()
        out = []
        for i in range(SLOT_MAX):
            dev, ino, lo, hi, size0, t_ns, path = _SLOT.unpack_from(table, 4096 + i * _SLOT.size)
            if ino and hi > lo:
                out.append((path.split(b"\0", 1)[0].decode(errors="replace"), dev, ino, lo, hi,
                            size0, (now_ns - t_ns) / 1e9))
        return out

    def power_loss(self, sid: int) -> str:
        """Member ``sid`` is dead (killed): lose what it wrote and did not
        fsync, as a power cut would. Bytes written since the file's last
        fsync are zeros again (a log's preallocated padding, which is what
        they overwrote), and the file is cut back to its size at that
        fsync; a file never fsynced is left empty. Renames and directory
        entries are kept (not modelled). Returns what was lost."""
        lost_files, lost_bytes, gone, flushed = 0, 0, 0, 0
        writeback_s = writeback_age_s()
        for path, dev, ino, lo, hi, size0, age_s in self.unsynced(sid):
            if age_s > writeback_s:
                flushed += 1    # the kernel has written it back by now
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                gone += 1
                continue
            if (st.st_dev, st.st_ino) != (dev, ino):
                gone += 1       # renamed or replaced since: no longer this file
                continue
            fd = os.open(path, os.O_WRONLY)
            try:
                end = min(hi, size0, st.st_size)
                if end > lo:
                    os.pwrite(fd, bytes(end - lo), lo)
                if st.st_size > size0:
                    os.ftruncate(fd, size0)
                os.fsync(fd)
            finally:
                os.close(fd)
            lost_files += 1
            lost_bytes += max(0, end - lo) + max(0, st.st_size - size0)
        with open(self.ctl_path(sid), "r+b") as f:
            overflow = struct.unpack_from("<i", f.read(16), 12)[0]
            f.seek(0)
            f.write(struct.pack("<ii", *self._ctl_words(sid)) + bytes(CTL_BYTES - 8))
        what = f"{lost_files} files lost {lost_bytes} unsynced bytes"
        if gone:
            what += f" ({gone} unsynced files renamed or removed since: left alone)"
        if flushed:
            what += f" ({flushed} last written over {writeback_s:.0f} s ago: written back, kept)"
        if overflow:
            what += f" ({overflow} writes to files past the shim's {SLOT_MAX} slots not tracked)"
        return what

    def _ctl_words(self, sid: int) -> tuple[int, int]:
        mode = self.fsync_mode.get(sid, MODE_OK)
        return mode, (self._delay_ms.get(sid, 0) if mode == MODE_SLOW else 0)

    # ---- faults ------------------------------------------------------------------

    def fill(self, sid: int) -> int:
        """Take every free block of ``sid``'s file system; returns bytes taken."""
        path = os.path.join(self.data_dir(sid), "chaos-ballast")
        self.ballast[sid] = path
        taken = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            st = os.statvfs(self.data_dir(sid))
            free = st.f_bavail * st.f_frsize
            # Leave room for the file's own extent blocks, then write the rest.
            try:
                if free > 4 * FILL_CHUNK:
                    os.posix_fallocate(fd, 0, free - 4 * FILL_CHUNK)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
            taken = os.fstat(fd).st_blocks * 512
            chunk = bytes(FILL_CHUNK)
            os.lseek(fd, 0, os.SEEK_END)
            while len(chunk) >= 512:
                try:
                    taken += os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[:len(chunk) // 2]
        finally:
            os.close(fd)
        return taken

    def unfill(self, sid: int) -> None:
        path = self.ballast.pop(sid, None)
        if path is not None and os.path.exists(path):
            os.unlink(path)

    def set_fsync(self, sid: int, mode: int, delay_ms: int = 0) -> None:
        assert self.shim is not None
        fd = os.open(self.ctl_path(sid), os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<ii", mode, delay_ms), 0)
            self._delay_ms[sid] = delay_ms
        finally:
            os.close(fd)
        if mode == MODE_OK:
            self.fsync_mode.pop(sid, None)
        else:
            self.fsync_mode[sid] = mode

    def heal(self) -> None:
        for sid in list(self.ballast):
            self.unfill(sid)
        for sid in list(self.fsync_mode):
            self.set_fsync(sid, MODE_OK)

    def close(self) -> None:
        for d in reversed(self.mounted):
            r = _run("umount", d)
            if r.returncode:
                _run("umount", "-l", d)
        self.mounted.clear()
