"""The quorum-port transport (asyncio): leader listens, learners dial.

One ``QuorumTransport`` per server process. The leader role calls
``listen(host, port)``; a learner role calls ``dial(leader_sid, host,
port)``. Either way the transport turns the byte streams into events for
the core and the core's ``send`` / ``close`` actions into writes:

* ``on_packet(sid, packet)`` for each decoded ``QuorumPacket`` (the stream
  codec is ``zab.packets.PacketDecoder``: back-to-back jute records, SNAP
  followed by its image and signature);
* ``on_disconnected(sid)`` when a connection ends (EOF, error, a learner
  that broke the stream format, or a failed dial).

The leader learns a learner's sid from its first packet (FOLLOWERINFO /
OBSERVERINFO carries LearnerInfo.serverid); anything else first closes the
connection. A learner that connects again replaces its older connection,
which is closed without an ``on_disconnected`` (the new FOLLOWERINFO resets
the learner in the core). ``send`` to a sid without a connection is dropped:
ZAB's timers handle a missing peer. Packets sent to one link during a loop
turn leave in one write (``flush``; the host calls it after each Ready, and
unless it says it always does (``host_flushes``) a ``call_soon`` does otherwise), so a burst of PROPOSALs and COMMITs costs one
syscall per learner. With ``on_packets`` every packet one read decoded is
handed over in one call. A SNAP whose image is still being made off the
loop (``snap_image.ForkedImage``) gets its header written at once; the image
and every later packet to that learner follow when the image is ready, in
order, while other links carry on. The image goes to the socket a part
(``QUORUM_SNAP_PART_BYTES``) per loop turn, the next part once the link's send
buffer has drained: handed over whole, a 1M-znode image (190 MB) was copied
twice in one loop turn (joined with its signature, then with the packets
queued behind it), and the leader served nobody for a quarter of a second. Other writes are not
awaited; a link's buffer is bounded (``CONNECTION_WRITE_BUFFER_HIGH``), above
which the connection is closed rather than buffered without limit.

Every task lives in the transport's ``TaskGroup``-like set and is cancelled
by ``aclose`` (``close_all`` is its synchronous twin for a fail-stop).

Errors. A link that ends (EOF, reset, a frame that does not decode, a
first packet that is not FOLLOWERINFO/OBSERVERINFO) is one log line naming
the peer and the reason, then ``on_disconnected``. Anything else raised
while handling a packet (an ``AssertionError`` from the core behind
``on_packet``) is our bug: it is not taken for a closed link but handed to
``fatal.escalate``, which fail-stops the server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ..jute import records as R
from ..jute.codec import DecodeError
from ..limits import CONNECTION_WRITE_BUFFER_HIGH, QUORUM_SNAP_PART_BYTES
from ..zab.packets import (PacketDecoder, PacketType, encode_packet, parse_learner_info,
                           snap_frame)
from .fatal import escalate
from .quorum_security import QuorumAuthError, QuorumSecurity, learner_handshake, server_handshake
from .quorum_security import open_connection as _open_connection
from .quorum_security import start_server as _start_server
from .snap_image import SnapImageError

__all__ = ["QuorumTransport"]

log = logging.getLogger("zabpy.quorum")

_READ_BYTES = 64 * 1024


class _Link:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = False
        # Sent and not yet written: bytes, or a SNAP image still being made
        # (``_Image``), behind which everything later waits.
        self.queued: list = []
        self.waiting: _Image | None = None

    def flush(self) -> "_Image | None":
        """Write the queued bytes up to the first image not ready yet; return that image."""
        if self.waiting is not None or not self.queued:
            return None
        q = self.queued
        n = next((i for i, item in enumerate(q) if isinstance(item, _Image)), len(q))
        if n:
            self.write(b"".join(q[:n]) if n > 1 else q[0])
        if n == len(q):
            self.queued = []
            return None
        self.queued = q[n:]
        self.waiting = q[n]
        return self.waiting

    def image_written(self, tail: bytes) -> None:
        """The awaited image is on its way (``write_parts``): its signature is next."""
        assert self.waiting is not None and self.queued[0] is self.waiting
        self.queued[0] = tail
        self.waiting = None

    def write(self, data: bytes) -> bool:
        if self.closed or self.writer.is_closing():
            return False
        # An image never sits in the buffer whole (it goes in parts, each
        # after the buffer drained), so the bound holds for every packet.
        if self.writer.transport.get_write_buffer_size() > CONNECTION_WRITE_BUFFER_HIGH:
            log.warning("Closing quorum link to %s: more than %d bytes wait to be sent",
                        self.writer.get_extra_info("peername"), CONNECTION_WRITE_BUFFER_HIGH)
            self.close()
            return False
        self.writer.write(data)
        return True

    async def write_parts(self, image) -> bool:
        """Write a SNAP image (bytes, or its parts in order) a part per loop
        turn, each once the send buffer has drained; False if the link ended."""
        writer = self.writer
        pending = 0
        for piece in _pieces(image):
            if self.closed or writer.is_closing():
                return False
            writer.write(piece)
            pending += len(piece)
            if pending >= QUORUM_SNAP_PART_BYTES:
                pending = 0
                try:
                    await writer.drain()      # returns at once if the socket took it all
                except OSError:               # the link was lost meanwhile
                    return False
                await asyncio.sleep(0)        # so one part per turn, however fast the peer
        return not (self.closed or writer.is_closing())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


def _pieces(image):
    """An image's bytes as views of at most ``QUORUM_SNAP_PART_BYTES`` (no copies).

    A list of parts is consumed: each part is dropped from it once its views
    are handed out, so a large image is freed as it is sent (freed at once
    when its last reference went, the 190 MB of a 1M-znode image took 13 ms
    of the loop)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = [image]
    elif not isinstance(image, list):
        image = list(image)
    for i in range(len(image)):
        view = memoryview(image[i])
        image[i] = None
        for j in range(0, len(view), QUORUM_SNAP_PART_BYTES):
            yield view[j:j + QUORUM_SNAP_PART_BYTES]
        del view


class _Image:
    """A SNAP image produced off the loop (``snap_image.ForkedImage``) and the
    signature that follows it on the stream."""

    __slots__ = ("source", "tail")

    def __init__(self, source, tail: bytes) -> None:
        self.source, self.tail = source, tail


class QuorumTransport:
    def __init__(self, on_packet: Callable[[int, R.QuorumPacket], None],
                 on_disconnected: Callable[[int], None], *,
                 on_packets: Callable[[int, list[R.QuorumPacket]], None] | None = None,
                 security: QuorumSecurity | None = None, host_flushes: bool = False) -> None:
        self.on_packet = on_packet
        # The host calls ``flush`` after every run of ``send``s (the ensemble
        # runtime does after each Ready): no ``call_soon`` fallback per turn.
        self.host_flushes = host_flushes
        self._loop: asyncio.AbstractEventLoop | None = None
        self.security = security   # TLS / SASL around each link (runtime/quorum_security.py)
        self.on_packets = on_packets   # if given: every packet one read decoded, in one call
        self.on_disconnected = on_disconnected
        self._links: dict[int, _Link] = {}
        self._pending: dict[int, list[bytes]] = {}   # dialing: writes queued until connected
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None
        self._dirty: list[_Link] = []        # links with queued packets
        self._flush_scheduled = False
        self._last_pkt: R.QuorumPacket | None = None
        self._last_data = b""

    # ---- leader side ------------------------------------------------------------
    async def listen(self, host: str, port: int) -> int:
        """Accept learners on the quorum port; returns the bound port."""
        self._server = await _start_server(self._accept_guarded, host, port, self.security)
        return self._server.sockets[0].getsockname()[1]

    async def _accept_guarded(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        """asyncio (3.11) keeps a connection callback's exception until the
        task is collected: hand it to the fail-stop instead."""
        try:
            await self._accept(reader, writer)
        except Exception as e:  # noqa: BLE001 - our bug: fail-stop
            escalate(e, "quorum accept")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        decoder = PacketDecoder()
        sid: int | None = None
        peer = writer.get_extra_info("peername")
        failed = False
        try:
            data = b""
            if self.security is not None:
                # LearnerHandler: a learner authenticates before its first packet
                try:
                    data = await server_handshake(reader, writer, self.security, b"",
                                                  f"on the quorum port {peer}")
                except QuorumAuthError:
                    log.error("Server failed to authenticate quorum learner, addr: %s, "
                              "closing connection", peer)
                    return
            while True:
                data = data or await reader.read(_READ_BYTES)
                if not data:
                    if not link.closed:
                        log.info("Quorum link from server %s %s closed by the peer", sid, peer)
                    break
                pkts = decoder.feed(data)
                data = b""
                if not pkts:
                    continue
                if sid is None:
                    sid = self._identify(pkts[0], link, peer)
                    if sid is None:
                        return
                if not self._deliver(sid, link, pkts):
                    return  # we closed it (close(sid)) or a newer link replaced it
        except DecodeError as e:
            log.warning("Closing quorum link from server %s %s: undecodable packet: %s",
                        sid, peer, e)
        except OSError as e:
            log.info("Quorum link from server %s %s lost: %r", sid, peer, e)
        except Exception as e:  # noqa: BLE001 - our bug, not the link's: fail-stop
            failed = True
            escalate(e, f"quorum link from server {sid}")
        finally:
            link.close()
            if sid is not None and self._links.get(sid) is link and not failed:
                del self._links[sid]
                self.on_disconnected(sid)

    def _identify(self, pkt: R.QuorumPacket, link: _Link, peer) -> int | None:
        if pkt.type not in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
            log.warning("Closing quorum link from %s: first packet is %s, not a learner's info",
                        peer, pkt.type)
            return None
        try:
            sid = parse_learner_info(pkt).serverid
        except DecodeError as e:
            log.warning("Closing quorum link from %s: undecodable learner info: %s", peer, e)
            return None
        old = self._links.get(sid)
        if old is not None:
            old.close()
        self._links[sid] = link
        return sid

    # ---- learner side -----------------------------------------------------------
    def dial(self, leader_sid: int, host: str, port: int) -> None:
        """Connect to the leader; sends queued meanwhile go out once connected."""
        self._pending[leader_sid] = []
        self._spawn(self._dial(leader_sid, host, port))

    async def _dial(self, sid: int, host: str, port: int) -> None:
        try:
            reader, writer = await _open_connection(host, port, self.security)
            if self.security is not None:
                try:
                    await learner_handshake(reader, writer, self.security,
                                            f"leader {sid} at {host}:{port}", host)
                except QuorumAuthError as e:
                    writer.close()
                    raise OSError(f"quorum SASL authentication failed: {e}") from None
        except OSError as e:
            log.info("Cannot open a quorum link to leader %d at %s:%d: %r", sid, host, port, e)
            self._pending.pop(sid, None)
            self.on_disconnected(sid)
            return
        link = _Link(writer)
        queued = self._pending.pop(sid, None)
        if queued is None:  # closed while dialing
            link.close()
            return
        self._links[sid] = link
        for data in queued:
            link.write(data)
        decoder = PacketDecoder()
        failed = False
        try:
            while True:
                data = await reader.read(_READ_BYTES)
                if not data:
                    if not link.closed:
                        log.info("Quorum link to leader %d closed by the leader", sid)
                    break
                if not self._deliver(sid, link, decoder.feed(data)):
                    return  # close(sid) dropped it: the core asked, nothing to say
        except DecodeError as e:
            log.warning("Closing quorum link to leader %d: undecodable packet: %s", sid, e)
        except OSError as e:
            log.info("Quorum link to leader %d lost: %r", sid, e)
        except Exception as e:  # noqa: BLE001 - our bug, not the link's: fail-stop
            failed = True
            escalate(e, f"quorum link to leader {sid}")
        finally:
            link.close()
            if self._links.get(sid) is link and not failed:
                del self._links[sid]
                self.on_disconnected(sid)

    # ---- both --------------------------------------------------------------------
    def _deliver(self, sid: int, link: _Link, pkts: list[R.QuorumPacket]) -> bool:
        """Hand packets to the core while ``link`` is still ``sid``'s; False once it is not."""
        if self.on_packets is not None:
            if self._links.get(sid) is not link:
                return False
            if pkts:
                self.on_packets(sid, pkts)
            return True
        for pkt in pkts:
            if self._links.get(sid) is not link:
                return False
            self.on_packet(sid, pkt)
        return self._links.get(sid) is link

    def send(self, sid: int, pkt: R.QuorumPacket) -> None:
        """Queue ``pkt`` to ``sid``; every link's packets of one loop turn go out
        in one write, in order (``flush``, called by the host after carrying out
        a Ready, or at the latest by a ``call_soon`` scheduled here)."""
        link = self._links.get(sid)
        if pkt.type == PacketType.SNAP and not isinstance(pkt.data, (bytes, bytearray, type(None))):
            if link is None:
                return
            head, tail = snap_frame(pkt)   # the image comes later; the link waits for it
            self._queue(link, head)
            link.queued.append(_Image(pkt.data, tail))
            return
        if pkt is self._last_pkt:
            data = self._last_data   # one PROPOSAL or COMMIT to every learner: encode once
        else:
            data = encode_packet(pkt)
            self._last_pkt, self._last_data = pkt, data
        if link is not None:
            self._queue(link, data)
        elif sid in self._pending:
            self._pending[sid].append(data)

    def _queue(self, link: _Link, data: bytes) -> None:
        if not link.queued:
            self._dirty.append(link)
            if not self._flush_scheduled and not self.host_flushes:
                self._flush_scheduled = True
                self._running_loop().call_soon(self.flush)
        link.queued.append(data)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # asyncio.get_running_loop() costs a getpid() syscall on every call
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def flush(self) -> None:
        """Write what ``send`` queued, one write per link."""
        self._flush_scheduled = False
        self._last_pkt = self._last_data = None
        dirty, self._dirty = self._dirty, []
        for link in dirty:
            image = link.flush()
            if image is not None:
                self._spawn(self._write_image(link, image))

    async def _write_image(self, link: _Link, image: _Image) -> None:
        """Wait for a SNAP image, then write it and whatever queued behind it."""
        while image is not None:
            try:
                data = await image.source.wait()
            except SnapImageError as e:
                log.warning("Closing quorum link %s: no SNAP image: %s",
                            link.writer.get_extra_info("peername"), e)
                link.close()
                return
            if link.closed:
                return
            ok = await link.write_parts(data)
            del data   # its parts were dropped as they went (``_pieces``)
            if not ok:
                link.close()
                return
            link.image_written(image.tail)
            image = link.flush()

    def close(self, sid: int) -> None:
        """Drop the connection to ``sid`` (no on_disconnected: the core asked for it).
        Packets queued to it this turn still go out first, as one write."""
        self._pending.pop(sid, None)
        link = self._links.pop(sid, None)
        if link is not None:
            if link.waiting is None:
                link.flush()
            link.close()

    def close_all(self) -> None:
        """Stop listening and drop every link at once (a fail-stop's halt;
        ``aclose`` still reaps the tasks)."""
        if self._server is not None:
            self._server.close()
        for sid in list(self._links) + list(self._pending):
            self.close(sid)

    def _spawn(self, coro) -> None:
        task = self._running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            escalate(task.exception(), "quorum transport task")

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for sid in list(self._links):
            self.close(sid)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
