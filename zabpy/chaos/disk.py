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

__all__ = ["Disks", "sweep_mounts", "WORKDIR_PREFIX", "drop_caches"]

WORKDIR_PREFIX = "zabpy-chaos-"
IMAGE_MB = 256
FILL_CHUNK = 1 << 20
SHIM_ENV = "ZCHAOS_DISK_CTL"
MODE_OK, MODE_EIO, MODE_SLOW = 0, 1, 2

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ctl[0]: 0 pass, 1 EIO, 2 sleep ctl[1] ms first (set by zabpy.chaos.disk). */
static volatile int *ctl;
static int tried;

static int fault(void) {
    if (!tried) {
        const char *p = getenv("ZCHAOS_DISK_CTL");
        tried = 1;
        if (p) {
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                void *m = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
                close(fd);
                if (m != MAP_FAILED) ctl = m;
            }
        }
    }
    if (!ctl) return 0;
    if (ctl[0] == 1) { errno = EIO; return -1; }
    if (ctl[0] == 2) {
        struct timespec ts = { ctl[1] / 1000, (long)(ctl[1] % 1000) * 1000000L };
        nanosleep(&ts, 0);
    }
    return 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return fault() ? -1 : real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return fault() ? -1 : real(fd);
}
"""


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


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

    def __init__(self, workdir: str, sids: list[int], kind: str = "auto"):
        assert kind in ("auto", "loop", "tmpfs", "none")
        self.dir = workdir
        self.sids = list(sids)
        self.kind = kind
        self.mounted: list[str] = []
        self.ballast: dict[int, str] = {}
        self.shim: str | None = None
        self.shim_missing = ""
        self.fsync_mode: dict[int, int] = {}

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
                f.write(bytes(4096))
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
        return {"LD_PRELOAD": self.shim, SHIM_ENV: self.ctl_path(sid)}

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
