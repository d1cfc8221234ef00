"""A quorum link's write bound and a large SNAP image (issue 19: a learner's
SNAP of 200,000 znodes never completed; a SNAP of 1,000,000 stopped the
leader's loop for a quarter of a second). The image goes to the socket a part
per loop turn, each once the send buffer has drained, so it never sits in
the buffer whole: the packets queued behind it find the link within its
bound, and a learner that stops reading still gets its link closed. The
writer is a fake that keeps what was written and drains when awaited, as
asyncio's transport buffers."""

from __future__ import annotations

import asyncio

from zabpy.limits import CONNECTION_WRITE_BUFFER_HIGH as HIGH
from zabpy.limits import QUORUM_SNAP_PART_BYTES as PART
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
        self.written: list[bytes] = []
        self.peak = 0
        self.drains = 0

    def write(self, data) -> None:
        self.written.append(bytes(data))
        self.transport.buffered += len(data)
        self.peak = max(self.peak, self.transport.buffered)

    async def drain(self) -> None:
        self.drains += 1
        self.transport.buffered = 0   # the learner read everything sent so far

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, _name: str):
        return ("127.0.0.1", 1)


def test_a_large_image_goes_in_parts_and_packets_behind_it_keep_the_link():
    w = _Writer()
    link = _Link(w)
    image = _Image(None, b"sig")
    link.queued = [b"x" * 100, image, b"later"]
    assert link.flush() is image                  # the first bytes go, the image is awaited
    parts = [b"i" * (3 * HIGH), b"j" * 1000]      # as ForkedImage.wait returns it
    whole = b"".join(parts)
    assert asyncio.run(link.write_parts(parts))
    assert w.peak <= 100 + PART and w.drains >= 3 * HIGH // PART
    assert parts == [None, None]                  # dropped as sent, not all at the end
    link.image_written(image.tail)
    assert link.flush() is None
    assert b"".join(w.written) == b"x" * 100 + whole + b"sig" + b"later"
    for _ in range(100):                          # pings and commits behind the image
        assert link.write(b"p" * 1000) and not w.closed
    w.transport.buffered = 2 * HIGH               # now a learner that stops reading
    assert not link.write(b"p") and w.closed


def test_an_image_for_a_closed_link_stops():
    w = _Writer()
    link = _Link(w)
    link.close()
    assert not asyncio.run(link.write_parts(b"i" * (3 * PART)))
    assert w.written == []
