"""The shell's ZooKeeper session: kazoo, plus the 3.5+ requests kazoo lacks.

kazoo owns the connection (handshake, pings, reconnects, xids). It has no API
for createContainer, createTTL, getEphemerals, getAllChildrenNumber, addWatch,
removeWatches or whoAmI, and its ``create`` cannot send null data. Its request
queue accepts any object with ``type``, ``serialize()`` and
``deserialize(buffer, offset)``, so ``_JuteRequest`` adapts our own jute
records (zabpy.jute.records) to that queue; the reply body is decoded with the
matching jute response record.

Notifications: zkCli prints every event that reaches its default watcher,
including persistent watches kazoo does not know about. kazoo drops events
for paths it has no watcher on, so ``_hook_events`` wraps the connection's
event reader and hands every WatcherEvent to ``on_event`` first.

Errors leave this module as ``CommandError`` carrying zkCli's message, so the
commands never see a kazoo exception (translated once, at the edge).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kazoo.client import KazooClient
from kazoo.exceptions import (ConnectionClosedError, ConnectionLoss, KazooException,
                              SessionExpiredError, ZookeeperError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.security import ACL as KazooACL, Id as KazooId

from zabpy.jute import Reader, records
from zabpy.jute.constants import CreateMode, EventType, KeeperState, OpCode

from .shell_text import CommandError, keeper_error_message

__all__ = ["ShellSession", "OPEN_ACL_UNSAFE"]

OPEN_ACL_UNSAFE = [(31, "world", "anyone")]

# kazoo logs reconnect attempts at WARNING; in a shell they would scribble
# over the prompt, and the prompt's state already says CONNECTING.
logging.getLogger("kazoo").setLevel(logging.CRITICAL)


class _JuteRequest:
    """A jute request record dressed as a kazoo request."""

    def __init__(self, op: int, record: Any, reply: type | None, path: str | None):
        self.type = int(op)
        self.record = record
        self.reply = reply
        self.path = path  # kazoo reads .path only when .watcher is set

    watcher = None

    def serialize(self) -> bytes:
        return self.record.to_bytes()

    def deserialize(self, buffer, offset):
        if self.reply is None:
            return None
        return self.reply.read(Reader(bytes(buffer[offset:])))


def _state_name(kazoo_client: KazooClient) -> str:
    """zkCli's prompt shows ZooKeeper.States; map kazoo's onto them."""
    state = kazoo_client.state
    if kazoo_client._stopped.is_set():
        return "CLOSED"
    return {KazooState.CONNECTED: "CONNECTED", KazooState.SUSPENDED: "CONNECTING",
            KazooState.LOST: "CONNECTING"}.get(state, "CONNECTING")


class ShellSession:
    """One connection to one server string, as zkCli's ``connect`` makes."""

    def __init__(self, server: str, timeout_ms: int,
                 on_event: Callable[[str, str, str | None], None] | None = None):
        self.server = server
        self.timeout_ms = timeout_ms
        self.on_event = on_event
        self._connected = threading.Event()
        self._seen_first_connect = False
        self.client = KazooClient(hosts=server, timeout=timeout_ms / 1000.0,
                                  connection_retry={"max_tries": -1, "max_delay": 5})
        self.client.add_listener(self._on_state)
        self._hook_events()

    # ---- lifecycle ----------------------------------------------------------

    def start(self, wait: bool) -> bool:
        """Connect; with ``wait`` block up to the timeout. True if connected."""
        self.client.start_async()
        if not wait:
            return False
        return self._connected.wait(self.timeout_ms / 1000.0)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def close(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    @property
    def state_name(self) -> str:
        return _state_name(self.client)

    @property
    def connected(self) -> bool:
        return self.client.connected

    def _on_state(self, state: KazooState) -> None:
        if state == KazooState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        first = state == KazooState.CONNECTED and not self._seen_first_connect
        self._seen_first_connect = self._seen_first_connect or state == KazooState.CONNECTED
        if self.on_event is not None and not first:
            name = {KazooState.CONNECTED: "SyncConnected", KazooState.SUSPENDED: "Disconnected",
                    KazooState.LOST: "Expired"}[state]
            if state == KazooState.LOST and self.client._stopped.is_set():
                name = "Closed"  # our own close(), not a session expiry
            self.on_event(name, "None", None)

    def _hook_events(self) -> None:
        connection = self.client._connection
        original = connection._read_watch_event

        def read_watch_event(buffer, offset):
            if self.on_event is not None:
                event = records.WatcherEvent.read(Reader(bytes(buffer[offset:])))
                path = self.client.unchroot(event.path) if event.path else event.path
                self.on_event(_enum_name(KeeperState, event.state),
                              _enum_name(EventType, event.type), path)
            return original(buffer, offset)

        connection._read_watch_event = read_watch_event

    # ---- requests -------------------------------------------------------------

    def call(self, fn: Callable[[], Any], path: str | None) -> Any:
        """Run one kazoo call, translating its failures into CommandError."""
        if not self.client.connected:
            raise CommandError("Not connected")
        try:
            return fn()
        except ZookeeperError as exc:
            raise CommandError(keeper_error_message(exc.code, path)) from None
        except (ConnectionLoss, ConnectionClosedError, SessionExpiredError,
                KazooTimeoutError) as exc:
            raise CommandError(f"Connection lost: {type(exc).__name__}") from None
        except KazooException as exc:
            raise CommandError(str(exc) or type(exc).__name__) from None

    def jute(self, op: int, record: Any, reply: type | None, path: str | None) -> Any:
        """Send a jute record through kazoo's queue and wait for its reply."""
        request = _JuteRequest(op, record, reply, path)
        result = self.client.handler.async_result()

        def send():
            self.client._call(request, result)
            return result.get(timeout=self.timeout_ms / 1000.0)

        return self.call(send, path)

    def chroot(self, path: str) -> str:
        prefix = self.client.chroot or ""
        return prefix + path if path != "/" or not prefix else prefix

    def create(self, path: str, data: bytes | None, acls: list, mode: CreateMode,
               ttl_ms: int | None) -> str:
        """create2 / createContainer / createTTL; returns the created path."""
        acl = [records.ACL(p, records.Id(s, i)) for p, s, i in acls]
        full = self.chroot(path)
        if ttl_ms is not None:
            op = OpCode.createTTL
            record = records.CreateTTLRequest(full, data, acl, int(mode), ttl_ms)
        else:
            op = OpCode.createContainer if mode is CreateMode.CONTAINER else OpCode.create2
            record = records.CreateRequest(full, data, acl, int(mode))
        reply = self.jute(op, record, records.Create2Response, path)
        return self.client.unchroot(reply.path)

    def kazoo_acls(self, acls: list[tuple[int, str, str]]) -> list[KazooACL]:
        return [KazooACL(p, KazooId(s, i)) for p, s, i in acls]


def _enum_name(enum_cls, value: int) -> str:
    try:
        name = enum_cls(value).name
    except ValueError:
        return str(value)
    return "None" if name == "None_" else name
