"""A SNAP image made off the event loop: a forked child serializes the tree.

When the leader syncs a learner by SNAP it needs the sessions + tree image
(``zab.packets.snapshot_bytes``) exactly as of the last applied zxid. Made on
the event loop, that stalls every client and every other learner for as long
as serializing the whole tree takes. Instead ``ForkedImage`` forks: the child
sees a copy-on-write view of the tree frozen at the moment of the fork (exact
at ``tree.last_processed_zxid``, as ``storage.files.TxnStore.start_snapshot``
relies on too), serializes it into a pipe and exits; the parent keeps
serving and reads the pipe in a worker thread.

The quorum transport writes the SNAP header at once and holds everything
later for that learner until ``wait()`` returns the image, so per-link order
is kept (``runtime/quorum_transport.py``). The image comes back as the parts
read from the pipe, never joined: the transport hands them to the socket a
part per loop turn, and a copy of a 190 MB image (1M znodes) on the loop
would be a stop of its own. The list is the transport's to consume: it
drops each part once sent, so the image is not freed all at once either.
A learner still syncing needs no PING answered meanwhile; other learners and
clients are served throughout.

A child that fails (or an image bigger than ``QUORUM_SNAP_BYTES_MAX``) makes
``wait()`` raise ``SnapImageError``: the transport closes that learner's link,
and the learner reconnects and syncs again.
"""

from __future__ import annotations

import asyncio
import gc
import os
import traceback

from ..limits import QUORUM_SNAP_BYTES_MAX
from ..tree.datatree import DataTree
from ..storage.files import lower_priority, release_sockets
from ..zab import packets as P

__all__ = ["ForkedImage", "SnapImageError"]

_READ_BYTES = 1 << 20


class SnapImageError(Exception):
    """The child could not produce the image."""


def _retrieved(fut: asyncio.Future) -> None:
    # Whoever waits gets the error; an image nobody waits for any more (its
    # learner left) must not warn "exception never retrieved".
    if not fut.cancelled():
        fut.exception()


class ForkedImage:
    """A SNAP image being written by a forked child; ``await wait()`` for its bytes.

    Create it on the event loop thread; reading starts at once in a worker
    thread, so the child is reaped whether or not anyone waits.
    """

    _fork = staticmethod(os.fork)

    def __init__(self, tree: DataTree, sessions: dict[int, int]) -> None:
        self.zxid = tree.last_processed_zxid
        r, w = os.pipe()
        pid = self._fork()
        if pid == 0:  # the child: serialize the copy-on-write view, then leave
            code = 1
            try:
                os.close(r)
                gc.disable()
                release_sockets()
                lower_priority()  # the leader's loop (its clients) comes first
                view = memoryview(P.snapshot_bytes(tree, sessions))
                while view:
                    view = view[os.write(w, view):]
                code = 0
            except BaseException:  # noqa: BLE001 - reported through the exit status
                try:
                    os.write(2, traceback.format_exc().encode())
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(w)
        self.pid = pid
        self._future = asyncio.ensure_future(asyncio.to_thread(self._collect, r))
        self._future.add_done_callback(_retrieved)

    def _collect(self, fd: int) -> list[bytes]:
        """In a worker thread: read the pipe to its end, reap the child."""
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = os.read(fd, _READ_BYTES)
                if not chunk:
                    break
                size += len(chunk)
                if size > QUORUM_SNAP_BYTES_MAX:
                    os.kill(self.pid, 9)
                    raise SnapImageError(f"SNAP image above {QUORUM_SNAP_BYTES_MAX} bytes")
                chunks.append(chunk)
        finally:
            os.close(fd)
            _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SnapImageError(f"SNAP image writer {self.pid} failed (status {status})")
        return chunks

    async def wait(self) -> list[bytes]:
        """The image (``snapshot_bytes`` of the tree at the fork) in parts, in
        order; for one consumer, which may drop the parts it has used."""
        return await asyncio.shield(self._future)

    def __len__(self) -> int:
        return 0  # unknown until written; ``describe`` and traces only

    def __repr__(self) -> str:
        return f"ForkedImage(zxid={self.zxid:#x}, pid={self.pid})"
