"""A quorum link's write bound and a large SNAP image (issue 19: a learner's
SNAP of 200,000 znodes never completed). The image itself may sit in the
send buffer beyond CONNECTION_WRITE_BUFFER_HIGH while the learner reads it;
the packets queued behind it must not close the link, and once it has
drained the bound is the usual one again. The writer is a fake that keeps
what was written and drains on request, as asyncio's transport buffers."""

from __future__ import annotations

from zabpy.limits import CONNECTION_WRITE_BUFFER_HIGH as HIGH
from zabpy.runtime.quorum_transport import _Image, _Link


class _Transport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.transport.buffered += len(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, _name: str):
        return ("127.0.0.1", 1)


def test_packets_behind_a_large_image_keep_the_link_until_it_drains():
    w = _Writer()
    link = _Link(w)
    image = _Image(None, b"")
    link.queued = [b"x" * 100, image]
    assert link.flush() is image                  # the first bytes go, the image is awaited
    link.image_ready(b"i" * (3 * HIGH))
    assert link.flush() is None and w.transport.buffered == 3 * HIGH + 100
    for _ in range(100):                          # pings and commits behind the image
        assert link.write(b"p" * 1000) and not w.closed
    w.transport.buffered = HIGH // 2              # the learner has read the image
    assert link.write(b"p")
    w.transport.buffered = 2 * HIGH               # now a learner that stops reading
    assert not link.write(b"p") and w.closed
