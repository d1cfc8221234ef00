"""The election port over asyncio TCP, following ``zabpy.election.transport``.

Theory of operation. ``ElectionTransport`` listens on this server's election
address and keeps at most one live link per peer. All decisions come from the
pure rules: the initial message, which end keeps a link (``decide_link``:
only larger sid -> smaller sid survives), the one-message send queues with
"re-send the last message on a fresh link" (``SendQueues``), and framing
(``FrameDecoder``). This module only owns sockets and tasks:

* ``send(sid, notification)`` queues the newest message for ``sid`` (replacing
  any unsent one), wakes that link's writer, or dials if there is no link.
  A message to ourselves is delivered straight to the inbox (loopback).
* A dial writes the initial message; if our sid is smaller we close at once
  and the peer dials back. An accepted link from a smaller sid is closed and
  we dial back instead.
* A redial loop re-dials peers that have something to say and no link.
* Received notifications land in ``inbox`` (bounded: the oldest is dropped
  when full, as ZooKeeper's circular receive queue). Malformed frames close
  the link; a malformed notification is dropped. Each is one log line naming
  the peer and the reason, as is every link that ends.
* A write to a link whose connection the peer already closed is that
  link's IO failure (the transport says ``is_closing()``; uvloop would
  raise RuntimeError). A link task that fails with anything but an IO or
  decode error has hit our bug: ``fatal.escalate`` fail-stops the server (the other links are not
  kept alive around a state that may be wrong).

``drive_election`` runs a ``FastLeaderElection`` against a transport until it
settles, then ``serve_settled`` keeps answering LOOKING peers. Every task lives
in the transport's ``TaskGroup`` inside ``run()``; ``close()`` ends it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

from zabpy.election import (FastLeaderElection, FrameDecoder, LinkDecision, Notification,
                            SendQueues, Vote, decide_link, decode_notification, encode_frame,
                            encode_initial_message, encode_notification, parse_initial_message)
from zabpy.jute.codec import DecodeError
from zabpy.limits import (ELECTION_ADDR_BYTES_MAX, ELECTION_CONNECT_TIMEOUT_MS,
                          ELECTION_RECV_QUEUE_MAX, ELECTION_REDIAL_MS)

from .fatal import escalate
from .quorum_security import QuorumAuthError, QuorumSecurity, learner_handshake, server_handshake
from .quorum_security import open_connection as _open_connection
from .quorum_security import start_server as _start_server

__all__ = ["ElectionTransport", "drive_election", "serve_settled", "loop_clock_ms"]

_READ_CHUNK = 65536

log = logging.getLogger("zabpy.election")


def loop_clock_ms() -> int:
    """Monotonic milliseconds from the running loop's clock."""
    return int(asyncio.get_running_loop().time() * 1000)


class _Link:
    __slots__ = ("sid", "reader", "writer", "wake", "tasks")

    def __init__(self, sid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.sid = sid
        self.reader = reader
        self.writer = writer
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []


class ElectionTransport:
    """One server's election links; see the module docstring."""

    def __init__(self, my_sid: int, peers: dict[int, tuple[str, int]], *,
                 redial_ms: int = ELECTION_REDIAL_MS,
                 connect_timeout_ms: int = ELECTION_CONNECT_TIMEOUT_MS,
                 security: QuorumSecurity | None = None) -> None:
        assert my_sid in peers, "peers must include our own election address"
        self.my_sid = my_sid
        self.peers = dict(peers)
        self.redial_ms = redial_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.security = security   # TLS / SASL around each link (runtime/quorum_security.py)
        self.inbox: asyncio.Queue[tuple[int, Notification]] = asyncio.Queue(ELECTION_RECV_QUEUE_MAX)
        self.queues = SendQueues(my_sid)
        self.links: dict[int, _Link] = {}
        self._dialing: dict[int, asyncio.Task] = {}
        self._tasks: dict[asyncio.Task, None] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._server: asyncio.base_events.Server | None = None
        self._started = asyncio.Event()
        self._closing = asyncio.Event()
        host, port = self.peers[my_sid]
        self._my_addr = f"{host}:{port}"
        assert len(self._my_addr.encode()) <= ELECTION_ADDR_BYTES_MAX

    # ---- lifecycle --------------------------------------------------------
    async def run(self) -> None:
        """Serve until ``close()``; all link tasks live in this TaskGroup."""
        host, port = self.peers[self.my_sid]
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._server = await _start_server(self._on_accept_guarded, host, port, self.security)
            self._spawn(self._redial_loop(), "election redial loop")
            self._started.set()
            await self._closing.wait()
            self._server.close()
            for link in list(self.links.values()):
                self._drop(link)
            for task in list(self._tasks):
                task.cancel()
        await self._server.wait_closed()

    async def wait_started(self) -> None:
        await self._started.wait()

    def close(self) -> None:
        self._closing.set()

    def _spawn(self, coro, where: str) -> asyncio.Task:
        assert self._tg is not None
        task = self._tg.create_task(self._contained(coro, where))
        self._tasks[task] = None

        def done(t: asyncio.Task) -> None:
            self._tasks.pop(t, None)
            # a task cancelled before its first step never started ``coro``:
            # closed here, not reported as "never awaited" when collected
            coro.close()

        task.add_done_callback(done)
        return task

    @staticmethod
    async def _contained(coro, where: str) -> None:
        """One link's IO failure must not end the TaskGroup (and with it
        every link of this server): it is logged here. Anything else is our
        bug and fail-stops the server (``fatal.escalate``)."""
        try:
            await coro
        except (OSError, DecodeError, asyncio.TimeoutError) as e:
            log.warning("%s ended: %r", where, e)
        except Exception as e:  # noqa: BLE001 - our bug: fail-stop
            escalate(e, where)

    # ---- sending ------------------------------------------------------------
    def send(self, sid: int, n: Notification) -> None:
        payload = encode_notification(n)
        if not self.queues.put(sid, payload):
            self._deliver(sid, n)  # loopback
            return
        link = self.links.get(sid)
        if link is not None:
            link.wake.set()
        else:
            self._dial(sid)

    def connect_all(self) -> None:
        """Dial every known peer without a link (FLE's timeout path)."""
        for sid in self.queues.peers():
            if sid not in self.links:
                self._dial(sid)

    def _deliver(self, sid: int, n: Notification) -> None:
        if self.inbox.full():
            self.inbox.get_nowait()  # drop the oldest, as a circular queue
        self.inbox.put_nowait((sid, n))

    # ---- links --------------------------------------------------------------
    def _dial(self, sid: int) -> None:
        if self._tg is None or sid in self._dialing or sid not in self.peers:
            return
        if self._closing.is_set():
            return
        self._dialing[sid] = self._spawn(self._dial_task(sid), f"election dial to {sid}")

    async def _dial_task(self, sid: int) -> None:
        try:
            host, port = self.peers[sid]
            try:
                reader, writer = await asyncio.wait_for(
                    _open_connection(host, port, self.security), self.connect_timeout_ms / 1000)
            except ssl.SSLError as e:
                log.warning("Cannot open secure channel to %d at election address %s:%d: %s",
                            sid, host, port, e)
                return
            except (OSError, asyncio.TimeoutError) as e:
                # DEBUG: the redial loop tries again every ELECTION_REDIAL_MS
                log.debug("Cannot open channel to %d at election address %s:%d: %r",
                          sid, host, port, e)
                return
            if writer.is_closing():
                # Reset as it opened (a peer dying): uvloop raises on such a write.
                log.debug("Election link to %d closed as it opened", sid)
                return
            writer.write(encode_initial_message(self.my_sid, self._my_addr))
            if self.security is not None:
                # as QuorumCnxManager: the dialer authenticates before either
                # end decides which link survives
                try:
                    await learner_handshake(reader, writer, self.security,
                                            f"server {sid} at election address {host}:{port}", host)
                except QuorumAuthError:
                    writer.close()
                    return
            decision = decide_link(self.my_sid, sid, initiated_by_me=True)
            if decision is LinkDecision.KEEP:
                self._attach(sid, reader, writer, b"")
            else:
                try:
                    await writer.drain()
                except OSError as e:
                    log.debug("Initial message to %d not delivered (it dials back): %r", sid, e)
                writer.close()
        finally:
            self._dialing.pop(sid, None)

    async def _on_accept_guarded(self, reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        """asyncio (3.11) keeps a connection callback's exception until the
        task is collected: hand it to the fail-stop instead."""
        try:
            await self._on_accept(reader, writer)
        except Exception as e:  # noqa: BLE001 - our bug: fail-stop
            writer.close()
            escalate(e, "election accept")

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        if self._closing.is_set():
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        try:
            while (parsed := parse_initial_message(buf)) is None:
                chunk = await reader.read(_READ_CHUNK)
                if not chunk or len(buf) > 20 + ELECTION_ADDR_BYTES_MAX:
                    log.info("Closing election connection from %s: %s", peer,
                             "initial message too long" if chunk else "closed before its "
                             "initial message")
                    writer.close()
                    return
                buf += chunk
        except (DecodeError, OSError) as e:
            log.warning("Closing election connection from %s: bad initial message: %r", peer, e)
            writer.close()
            return
        msg, used = parsed
        leftover = bytes(buf[used:])
        if self.security is not None:
            try:
                leftover = await server_handshake(reader, writer, self.security, leftover,
                                                  f"server {msg.sid} {peer}")
            except QuorumAuthError:
                writer.close()
                return
        if msg.sid not in self.peers and msg.addr and msg.sid != self.my_sid:
            # A server in no config we know (one joining by reconfig): as
            # QuorumCnxManager, take its election address from the message.
            host, _, port = msg.addr.split("|")[0].rpartition(":")
            self.peers[msg.sid] = (host.strip("[]"), int(port))
            log.info("Election connection from server %d, not in our config, at %s",
                     msg.sid, msg.addr)
        decision = decide_link(self.my_sid, msg.sid, initiated_by_me=False)
        if self._closing.is_set():
            writer.close()
            return
        if decision is LinkDecision.KEEP and msg.sid in self.peers:
            self._attach(msg.sid, reader, writer, leftover)
            return
        writer.close()
        if decision is LinkDecision.CLOSE_AND_DIAL:
            self._dial(msg.sid)

    def _attach(self, sid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                leftover: bytes) -> None:
        old = self.links.get(sid)
        if old is not None:
            self._drop(old)
        link = _Link(sid, reader, writer)
        self.links[sid] = link
        link.tasks.append(self._spawn(self._write_loop(link), f"election link to {sid} (write)"))
        link.tasks.append(self._spawn(self._read_loop(link, leftover),
                                      f"election link to {sid} (read)"))

    def _drop(self, link: _Link) -> None:
        if self.links.get(link.sid) is link:
            del self.links[link.sid]
        link.writer.close()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()

    async def _write_loop(self, link: _Link) -> None:
        try:
            payload = self.queues.on_link_up(link.sid)
            while True:
                if payload is not None:
                    _write(link.writer, encode_frame(payload))
                    await link.writer.drain()
                await link.wake.wait()
                link.wake.clear()
                payload = self.queues.take(link.sid)
        except OSError as e:
            log.info("Election link to %d lost while sending: %r", link.sid, e)
            self._drop(link)

    async def _read_loop(self, link: _Link, leftover: bytes) -> None:
        frames = FrameDecoder()
        data = leftover
        try:
            while True:
                for payload in frames.feed(data):
                    try:
                        n = decode_notification(payload)
                    except DecodeError as e:
                        # dropped; the link stays (ZooKeeper skips it too)
                        log.warning("Dropping a malformed notification from %d: %s", link.sid, e)
                        continue
                    self._deliver(link.sid, n)
                data = await link.reader.read(_READ_CHUNK)
                if not data:
                    log.info("Election link to %d closed by the peer", link.sid)
                    break
        except OSError as e:
            log.info("Election link to %d lost: %r", link.sid, e)
        except DecodeError as e:
            log.warning("Closing election link to %d: undecodable frame: %s", link.sid, e)
        self._drop(link)

    async def _redial_loop(self) -> None:
        while not self._closing.is_set():
            await asyncio.sleep(self.redial_ms / 1000)
            for sid in self.queues.peers():
                if sid not in self.links and self.queues.pending(sid):
                    self._dial(sid)


def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """A write to a transport the peer already closed is that link's IO
    failure (uvloop raises RuntimeError for it; asyncio's own loop only
    logs): raise it as one."""
    if writer.is_closing():
        raise ConnectionResetError("the connection was closed before the write")
    writer.write(data)


def _flush(fle: FastLeaderElection, transport: ElectionTransport) -> Vote | None:
    ready = fle.ready()
    for sid, n in ready.send:
        transport.send(sid, n)
    fle.advance(ready)
    return ready.decided


async def _one_input(fle: FastLeaderElection, transport: ElectionTransport,
                     clock: Callable[[], int]) -> None:
    deadline = fle.next_deadline_ms()
    timeout = None if deadline is None else max(0, deadline - clock()) / 1000
    try:
        sid, n = await asyncio.wait_for(transport.inbox.get(), timeout)
    except asyncio.TimeoutError:
        fle.tick(clock())
        if not transport.queues.have_delivered():
            transport.connect_all()
        return
    fle.step(sid, n, clock())


async def drive_election(fle: FastLeaderElection, transport: ElectionTransport,
                         clock: Callable[[], int] = loop_clock_ms) -> Vote:
    """Run a started election until it settles; returns the decided vote."""
    while True:
        decided = _flush(fle, transport)
        if decided is not None:
            return decided
        await _one_input(fle, transport, clock)


async def serve_settled(fle: FastLeaderElection, transport: ElectionTransport,
                        clock: Callable[[], int] = loop_clock_ms) -> None:
    """Keep answering LOOKING peers while settled (cancel to stop)."""
    while True:
        _flush(fle, transport)
        await _one_input(fle, transport, clock)
