"""The asyncio shell around a standalone server core.

It owns the listening socket, every client transport, the tick timer, the
transaction log (through ``storage.files.TxnStore`` when a data directory is
configured) and the fsync worker thread. Everything it learns becomes an
input event of the core; everything the core returns (``Ready``) is carried
out here, in this order: append the txns to the log, write the frames, close
connections. A loop turn's frames for one connection go out in one write.

Group commit: while one fsync runs in the worker thread, newly prepared txns
are appended to the log buffer; when it ends, the next fsync covers all of
them. Only then does the core hear ``logged(zxid)`` and answer. Without a
data directory the log is memory only and ``logged`` follows at once.

Bounded replies per connection: each client transport's write buffer has
its high-water mark at ``zabpy.maxQueuedBytesPerConnection``. The core
answers a connection's reads only within a byte budget the runtime grants
(the limit less what is still queued for it); past the mark the runtime
stops reading that connection's requests (``pause_writing``) until its
client drains below half of it (``resume_writing``), and closes it, with
one log line, if it stays over for ``zabpy.queuedBytesGraceMs``. Its held
requests do not count towards globalOutstandingLimit, which would stall
every other client.

Fail-stop (``fatal.py``): every entry point asyncio calls (the client
protocol's callbacks, the ``call_soon`` flush, every task) is guarded, and
the loop's exception handler is ours while the runtime runs. An exception
from our code there logs one CRITICAL line and ``halt()``s: listeners
closed, client transports aborted, tasks cancelled, ``fatal`` set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from ..admin.service import OperationsServices
from ..protocol.connection import (ClientConnection, Connect, FourLetterWord,
                                   RemoteProtocolError)
from ..server.settings import ServerSettings
from ..server.standalone import ProtocolViolation, StandaloneServer
from ..tree.datatree import DataTree
from .config import ServerConfig
from .audit import AuditWriter, emit_log
from .fatal import fail_stop_guard, guard_task, install_fail_stop_handler
from .listen import bound_socket as _bound_socket
from .security import load_auth_settings
from ..auth.sasl import AuthSettings

__all__ = ["ServerRuntime"]

log = logging.getLogger("zabpy.server")


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _runtime_of(p: "_ClientProtocol") -> "ServerRuntime":
    return p.rt


class _ClientProtocol(asyncio.Protocol):
    __slots__ = ("rt", "conn_id", "proto", "transport", "peer_ip", "budget_left", "grace",
                 "tls_ids")

    def __init__(self, rt: "ServerRuntime"):
        self.rt = rt
        self.conn_id = 0
        self.proto = ClientConnection(rt.config.jute_maxbuffer)
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        # bytes written since the core's last grant, counted down from it
        self.budget_left = rt.config.max_queued_bytes_per_connection
        # while over the limit: the timer that closes the connection
        self.grace: asyncio.TimerHandle | None = None
        self.tls_ids: tuple | None = ()

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.rt.broken is not None:
            transport.abort()  # accepted in the same loop turn as the fail-stop
            return
        self._made(transport)

    @fail_stop_guard("client connection_made", _runtime_of)
    def _made(self, transport) -> None:
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer_ip = peer[0]
        self.tls_ids = self.rt._tls_identity(transport)
        if self.tls_ids is None:
            transport.abort()
            return
        self.rt._accept(self)

    @fail_stop_guard("client data_received", _runtime_of)
    def data_received(self, data: bytes) -> None:
        self.rt._data(self, data)

    @fail_stop_guard("client connection_lost", _runtime_of)
    def connection_lost(self, exc) -> None:
        self.rt._lost(self)

    @fail_stop_guard("client pause_writing", _runtime_of)
    def pause_writing(self) -> None:
        self.rt._over_limit(self)

    @fail_stop_guard("client resume_writing", _runtime_of)
    def resume_writing(self) -> None:
        self.rt._drained(self)


class ServerRuntime:
    def __init__(self, config: ServerConfig, *, server_id: int | None = None,
                 listening: socket.socket | None = None, auth: AuthSettings | None = None):
        self.config = config
        # the client port's socket when the caller made it (runtime/listen.py):
        # served from ``start``, closed by the runtime from then on
        self._listening = listening
        self.server_id = server_id if server_id is not None else (config.myid or 0)
        # SASL, x509, enforcement, audit (``auth``: what `zabpy server` already read)
        self.auth = auth if auth is not None else load_auth_settings(config)
        self.audit: AuditWriter | None = None
        self.store = None
        self.server: StandaloneServer | None = None
        self._protocols: dict[int, _ClientProtocol] = {}
        self._per_ip: dict[str, int] = {}
        self._next_conn_id = 1
        self._flush_scheduled = False
        self._work_scheduled = False
        # the loop ``start`` runs on: asyncio.get_running_loop() costs a
        # getpid() syscall per call, and these calls are per client read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False  # client reads paused (too many requests in flight)
        # connections over zabpy.maxQueuedBytesPerConnection (reading paused)
        self._over: dict[int, _ClientProtocol] = {}
        # set when a background task dies: the process exits rather than
        # serving half-alive (zabpy.cli.server waits on it)
        self.fatal = asyncio.Event()
        # "<where>: <Type>: <message>" once an invariant broke (fatal.fail_stop)
        self.broken: str | None = None
        self._restore_exception_handler = None
        self.read_pauses = 0
        self._fsync_running = False
        self._appended_zxid = 0
        self._tasks: list[asyncio.Task] = []
        self._tcp_server: asyncio.base_events.Server | None = None
        self._tls_server: asyncio.base_events.Server | None = None
        self.port = 0
        self.started_ms = _now_ms()
        # AdminServer, /metrics, pause monitor; ``metrics`` is ZooKeeper's ServerMetrics.
        self.ops = OperationsServices(self)
        self.metrics = self.ops.metrics
        # the changes the core applied, for the HTTP API's streams and history
        self.changes = None

    # ---- lifecycle ----------------------------------------------------------

    def _settings(self) -> ServerSettings:
        c = self.config
        wall_offset = int(time.time() * 1000) - _now_ms()
        if c.enforce_quota:
            log.info("zookeeper.enforceQuota = true, Quota Enforce enables")
        return ServerSettings(
            server_id=self.server_id, tick_ms=c.tick_time_ms,
            session_timeout_ms_min=c.session_timeout_ms_min,
            session_timeout_ms_max=c.session_timeout_ms_max,
            super_digest=c.super_digest, skip_acl=c.skip_acl,
            extended_types=c.extended_types_enabled, reconfig_enabled=c.reconfig_enabled,
            standalone_enabled=c.standalone_enabled,
            local_sessions_enabled=c.local_sessions_enabled,
            local_sessions_upgrading_enabled=c.local_sessions_upgrading_enabled,
            read_only_mode_enabled=c.read_only_mode_enabled,
            wall_offset_ms=wall_offset,
            container_check_interval_ms=c.container_check_interval_ms,
            container_max_per_minute=c.container_max_per_minute,
            sessionless_cnxn_timeout_ms=c.sessionless_cnxn_timeout_ms,
            enforce_quota=c.enforce_quota,
            send_budget_bytes=c.max_queued_bytes_per_connection,
            ephemerals_per_session_max=c.max_ephemerals_per_session,
            watches_per_session_max=c.max_watches_per_session,
            request_bytes_per_connection_max=c.max_request_bytes_per_connection,
            auth=self.auth,
        )

    def _open_store(self) -> tuple[DataTree, dict[int, int]]:
        tree = DataTree()
        if not self.config.data_dir:
            return tree, {}
        from ..storage.files import TxnStore

        c = self.config
        self.store = TxnStore(c.data_dir, c.data_log_dir, force_sync=c.force_sync,
                              pre_alloc_size=c.pre_alloc_size_kb * 1024, snap_count=c.snap_count,
                              snap_retain_count=c.autopurge_snap_retain_count,
                              snapshot_compression_method=c.snapshot_compression_method,
                              txn_log_size_limit_bytes=c.txn_log_size_limit_kb * 1024,
                              trust_empty_snapshot=c.snapshot_trust_empty,
                              digest_enabled=c.digest_enabled)
        t0 = time.monotonic()
        sessions = self.store.restore(tree)
        self.metrics.count("digest_mismatches_count", self.store.last_restore.digest_mismatches)
        log.info("Restored %d znodes and %d sessions from %s up to zxid 0x%x in %.0f ms",
                 tree.node_count(), len(sessions), c.data_dir, tree.last_processed_zxid,
                 (time.monotonic() - t0) * 1000)
        self.metrics.observe("dbinittime", (time.monotonic() - t0) * 1000)
        if self.store.last_restore is not None and self.store.last_restore.replayed > 0:
            # As ZooKeeper does after loading: the next start need not replay again.
            self.store.start_snapshot(tree, sessions)
        return tree, sessions

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._start_audit()
        self._install_fail_stop(loop)
        tree, sessions = self._open_store()
        if self.store is not None and self.store.unsynced_base is not None:
            # a fresh directory's empty snapshot.0 becomes durable while the
            # port opens (the first flush waits for it if it is not yet)
            self._spawn(self._sync_base())
        self.server = StandaloneServer(self._settings(), _now_ms(), tree, sessions)
        self.server.changes = self.changes = self._change_log(tree)
        self._appended_zxid = tree.last_processed_zxid
        host = self.config.client_port_address
        sock, self._listening = self._listening, None
        if sock is None and host:
            sock = _bound_socket(host, self.config.client_port)
        if sock is not None:
            try:
                self._tcp_server = await loop.create_server(lambda: _ClientProtocol(self),
                                                            sock=sock)
            except BaseException:
                sock.close()
                raise
        else:
            self._tcp_server = await loop.create_server(
                lambda: _ClientProtocol(self), host, self.config.client_port, reuse_address=True)
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        log.info("binding to port %s:%d", host, self.port)
        await self._start_secure_port(loop)
        self._spawn(self._ticker())
        if self.store is not None and self.config.autopurge_purge_interval_h > 0:
            self._spawn(self._purger())
        self._start_operations()
        log.info("zabpy server started (standalone, server id %d, tickTime %d ms)",
                 self.server_id, self.config.tick_time_ms)

    def _change_log(self, tree: DataTree):
        """A ChangeLog when the HTTP API is on (it serves watch streams from it)."""
        if not self.config.http_enabled:
            return None
        from ..server.changes import ChangeLog
        return ChangeLog(self.config.http_change_log_size, tree.last_processed_zxid)

    def _start_audit(self) -> None:
        if self.auth.audit and self.audit is None:
            self.audit = AuditWriter(self.auth.server_user)
            self.audit.start()

    async def _start_secure_port(self, loop) -> None:
        c = self.config
        if not c.secure_client_port:
            return
        from .tls import TlsConfigError, server_ssl_context, tls_server_protocol
        try:
            ctx = server_ssl_context(c)
        except (TlsConfigError, OSError, ValueError) as e:
            log.error("secure client port %d not started: %s", c.secure_client_port, e)
            return
        host = c.secure_client_port_address or c.client_port_address
        self._tls_server = await loop.create_server(
            lambda: tls_server_protocol(ctx, _ClientProtocol(self)),
            host, c.secure_client_port, reuse_address=True)
        log.info("binding to secure port %s:%d", host, c.secure_client_port)

    def _start_operations(self) -> None:
        """AdminServer, /metrics and the pause monitor start beside the
        serving loop: importing aiohttp and prometheus-client takes longer
        than everything else in start-up, and clients need neither."""
        self.operations_ready = asyncio.Event()
        self._spawn(self._run_operations())

    async def _run_operations(self) -> None:
        try:
            if self.ops.needs_preload():  # no worker thread when nothing is to import
                await asyncio.to_thread(self.ops.preload)
            await self.ops.start()
        except Exception as e:
            # as ZooKeeper, whose metrics provider failing to start is fatal
            log.error("Unable to start the operations endpoints: %s", e)
            self.fatal.set()
        finally:
            self.operations_ready.set()

    def _install_fail_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make an exception reaching ``loop``'s handler fail-stop this
        runtime (``stop()`` restores the previous handler)."""
        if self._restore_exception_handler is None:
            self._restore_exception_handler = install_fail_stop_handler(loop, self)

    def halt(self) -> None:
        """Stop serving at once (the fail-stop; synchronous and idempotent):
        no new connections, every client transport aborted so that no reply
        still buffered leaves, every task cancelled. ``stop()`` still runs
        afterwards to release the rest. An ensemble member extends it with
        its election and quorum transports."""
        for srv in (self._tcp_server, self._tls_server):
            if srv is not None:
                srv.close()
        for p in list(self._protocols.values()):
            if p.transport is not None:
                p.transport.abort()
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        """A task of this runtime: an exception out of it fail-stops."""
        where = f"task {getattr(coro, '__qualname__', coro)}"
        task = asyncio.create_task(guard_task(self, coro, where))
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        # cancelled before its first step, the guard never awaited ``coro``
        task.add_done_callback(lambda _: coro.close())
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("background task %s failed: %r; stopping", task.get_coro(), task.exception())
        self.fatal.set()

    async def wait_operations(self) -> None:
        await self.operations_ready.wait()

    async def stop(self) -> None:
        await self.ops.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                continue  # what stop() asked for
            except Exception as e:  # noqa: BLE001 - guarded tasks do not raise; say so if one did
                log.error("task %s failed while stopping: %r", t.get_name(), e)
        self._tasks.clear()
        for srv in (self._tcp_server, self._tls_server):
            if srv is not None:
                srv.close()
        for p in list(self._protocols.values()):
            if p.transport is not None:
                p.transport.abort()
        if self.store is not None:
            while self._fsync_running:
                await asyncio.sleep(0.001)
            self.store.close()
        if self._restore_exception_handler is not None:
            self._restore_exception_handler()
            self._restore_exception_handler = None
        if self.audit is not None:
            self.audit.stop()
            self.audit = None
        log.info("zabpy server stopped")

    async def _ticker(self) -> None:
        interval = max(self.config.tick_time_ms / 2000, 0.005)
        while True:
            await asyncio.sleep(interval)
            self.server.tick(_now_ms())
            for ms, is_write in self.server.stats.take_samples():
                self.metrics.observe("updatelatency" if is_write else "readlatency", ms)
            if self.store is not None:
                self.store.poll_snapshot()
            self._flush()

    async def _sync_base(self) -> None:
        try:
            await asyncio.to_thread(self.store.sync_base)
        except OSError as e:  # the first flush tries again, and fails the log if it fails too
            log.warning("could not sync %s yet: %s", self.store.unsynced_base, e)

    async def _purger(self) -> None:
        while True:
            await asyncio.sleep(self.config.autopurge_purge_interval_h * 3600)
            await asyncio.to_thread(self.store.purge)

    # ---- connections -----------------------------------------------------------

    def _accept(self, p: _ClientProtocol) -> None:
        limit = self.config.max_client_cnxns
        count = self._per_ip.get(p.peer_ip, 0)
        if limit and count >= limit:
            log.warning("Too many connections from %s - max is %d", p.peer_ip, limit)
            self.metrics.count("connection_rejected")
            p.transport.abort()
            return
        self._per_ip[p.peer_ip] = count + 1
        p.conn_id = self._next_conn_id
        self._next_conn_id += 1
        self._protocols[p.conn_id] = p
        limit = self.config.max_queued_bytes_per_connection
        if limit:
            p.transport.set_write_buffer_limits(high=limit, low=limit // 2)
        if self._paused:
            p.transport.pause_reading()
        self._client_connected(p.conn_id, p.peer_ip, _now_ms(), p.tls_ids)

    def _tls_identity(self, transport) -> tuple | None:
        """The x509 ids of a TLS client's verified certificate (the TLS
        handshake is over when asyncio reports the connection); () on the
        plain port or without a certificate; None when the certificate
        cannot be read (the connection is closed, one log line)."""
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is None:
            return ()
        from ..auth.x509 import CertificateError, x509_ids  # TLS only: off the start-up path
        try:
            return x509_ids(sslobj.getpeercert(binary_form=True), self.auth.x509_super_user)
        except (ValueError, CertificateError) as e:
            log.error("Authentication failed: unreadable client certificate: %s", e)
            return None

    # The core behind the client port (an ensemble member's runtime overrides
    # these three to reach its replica).
    def _client_connected(self, conn_id: int, peer_ip: str, now: int, tls_ids: tuple = ()) -> None:
        self.server.connection_made(conn_id, peer_ip, now, tls_ids)

    def _client_event(self, conn_id: int, ev, now: int) -> None:
        if isinstance(ev, Connect):
            self.server.connect(conn_id, ev.request, now)
        else:
            self.server.request(conn_id, ev.xid, ev.op, ev.body, now)

    def _client_closed(self, conn_id: int, now: int) -> None:
        self.server.connection_lost(conn_id, now)

    def _client_grant(self, conn_id: int, budget_bytes: int, now: int) -> None:
        self.server.grant(conn_id, budget_bytes, now)

    def _lost(self, p: _ClientProtocol) -> None:
        if self._protocols.pop(p.conn_id, None) is None:
            return
        self._over.pop(p.conn_id, None)
        if p.grace is not None:
            p.grace.cancel()
        n = self._per_ip.get(p.peer_ip, 1) - 1
        if n:
            self._per_ip[p.peer_ip] = n
        else:
            self._per_ip.pop(p.peer_ip, None)
        self._client_closed(p.conn_id, _now_ms())
        self._schedule_flush()

    def _data(self, p: _ClientProtocol, data: bytes) -> None:
        now = _now_ms()
        self.metrics.counters["bytes_received_count"] += len(data)
        try:
            for ev in p.proto.receive_data(data):
                if isinstance(ev, FourLetterWord):
                    self._four_letter(p, ev)
                elif p.conn_id:
                    self._client_event(p.conn_id, ev, now)
                else:
                    p.transport.abort()  # not serving (an ensemble member): try another
                    return
        except (RemoteProtocolError, ProtocolViolation) as e:
            log.warning("Closing connection from %s: %s", p.peer_ip, e)
            p.transport.abort()
        self._schedule_flush()

    def _four_letter(self, p: _ClientProtocol, ev: FourLetterWord) -> None:
        whitelist = self.config.four_letter_whitelist
        if ev.word in whitelist or "*" in whitelist:
            # the command table is imported by the first four-letter word
            from ..admin.fourletter import FourLetterContext, render_four_letter_word
            text = render_four_letter_word(ev.word, FourLetterContext(self, p.conn_id), ev.arg)
        else:
            text = f"{ev.word} is not executed because it is not in the whitelist.\n"
        p.transport.write(text.encode("utf-8"))
        p.transport.close()

    # ---- carrying out Ready ---------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_soon)

    @fail_stop_guard("call_soon flush")
    def _flush_soon(self) -> None:
        self._flush()

    @fail_stop_guard("call_soon work")
    def _work_soon(self) -> None:
        self._work_scheduled = False
        if self.server is not None:
            self.server.work(_now_ms())
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        srv = self.server
        if srv is None:
            return
        while True:
            ready = srv.ready()
            if not ready:
                self._backpressure()
                if srv.busy and not self._work_scheduled:
                    # the rest of a large multi, after this turn's I/O
                    self._work_scheduled = True
                    self._loop.call_soon(self._work_soon)
                return
            srv.advance(ready)
            for level, line in ready.logs:
                emit_log(log, level, line)
            self._handle_txns(ready)
            self._write(ready.send)
            for cid in ready.close:
                p = self._protocols.get(cid)
                if p is not None and p.transport is not None:
                    p.transport.close()

    def _handle_txns(self, ready) -> None:
        """Standalone: prepared txns go to the log (an ensemble member
        overrides this: proposals on a leader, REQUESTs on a learner)."""
        if ready.persist:
            self._persist(ready.persist)

    def _backpressure(self) -> None:
        """Stop reading from clients while too many requests are in flight
        (globalOutstandingLimit), resume below half of it."""
        srv = self.server
        if srv is None:
            return
        limit = self.config.global_outstanding_limit
        out = srv.stats.outstanding
        for cid in self._over:  # held by their own client, not by the server
            conn = srv.conns.get(cid)
            out -= len(conn.queue) if conn is not None else 0
        if not self._paused and out >= limit:
            self._paused = True
            self.read_pauses += 1
            for p in self._protocols.values():
                if p.transport is not None and not p.transport.is_closing():
                    p.transport.pause_reading()
        elif self._paused and out < limit // 2:
            self._paused = False
            for p in self._protocols.values():
                if (p.transport is not None and not p.transport.is_closing()
                        and p.conn_id not in self._over):
                    p.transport.resume_reading()

    # ---- bounded replies per connection -------------------------------------------

    def _over_limit(self, p: _ClientProtocol) -> None:
        """More than zabpy.maxQueuedBytesPerConnection is queued for ``p``:
        read none of its requests until its client drains."""
        if not p.conn_id or p.transport is None or p.transport.is_closing():
            return
        self._over[p.conn_id] = p
        p.transport.pause_reading()
        grace_s = self.config.queued_bytes_grace_ms / 1000
        p.grace = asyncio.get_running_loop().call_later(grace_s, self._grace_over, p)

    def _drained(self, p: _ClientProtocol) -> None:
        if self._over.pop(p.conn_id, None) is None:
            return
        if p.grace is not None:
            p.grace.cancel()
            p.grace = None
        if not self._paused:
            p.transport.resume_reading()
        self._regrant(p)
        self._schedule_flush()

    @fail_stop_guard("queued bytes grace timer")
    def _grace_over(self, p: _ClientProtocol) -> None:
        p.grace = None
        if p.conn_id not in self._over or p.transport is None:
            return
        log.warning("Closing connection from %s: %d bytes of replies unread for %d ms "
                    "(zabpy.maxQueuedBytesPerConnection=%d)", p.peer_ip,
                    p.transport.get_write_buffer_size(), self.config.queued_bytes_grace_ms,
                    self.config.max_queued_bytes_per_connection)
        p.transport.abort()

    def _regrant(self, p: _ClientProtocol) -> None:
        """Give the core a new budget for ``p``: the limit less what is still
        queued (at least one byte, so that one more reply takes the buffer
        past the mark and ``pause_writing`` follows, never a silent stall)."""
        limit = self.config.max_queued_bytes_per_connection
        p.budget_left = max(limit - p.transport.get_write_buffer_size(), 1)
        self._client_grant(p.conn_id, p.budget_left, _now_ms())

    def _write(self, sends: tuple) -> None:
        if not sends:
            return
        batches: dict[int, list[bytes]] = {}
        for cid, data in sends:
            batches.setdefault(cid, []).append(data)
        limit = self.config.max_queued_bytes_per_connection
        for cid, chunks in batches.items():
            p = self._protocols.get(cid)
            if p is not None and p.transport is not None and not p.transport.is_closing():
                data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
                p.transport.write(data)
                if limit:
                    p.budget_left -= len(data)
                    if p.budget_left < limit // 2 and cid not in self._over:
                        self._regrant(p)

    def _persist(self, records: tuple) -> None:
        if self.store is None:
            self._appended_zxid = records[-1][0].zxid
            self.server.logged(self._appended_zxid, _now_ms())
            return
        try:
            self.store.append_many(records)
        except OSError as e:
            self.server.log_failed(str(e))
            return
        self._appended_zxid = records[-1][0].zxid
        if not self._fsync_running:
            self._fsync_running = True
            task = asyncio.get_running_loop().create_task(
                guard_task(self, self._sync_loop(), "task _sync_loop"))
            task.add_done_callback(self._task_done)

    async def _sync_loop(self) -> None:
        """Group commit: one fsync covers everything appended before it began."""
        try:
            while True:
                target = self._appended_zxid
                t0 = time.monotonic()
                try:
                    await asyncio.to_thread(self.store.flush_and_sync)
                except OSError as e:
                    log.error("fsync of the transaction log failed: %s", e)
                    self.server.log_failed(str(e))
                    self._flush()
                    return
                if self.broken is not None:
                    return  # halted while the fsync ran (not cancelled: stop() waits for it)
                ms = (time.monotonic() - t0) * 1000
                self.server.stats.fsync_count += 1
                self.server.stats.fsync_total_ms += ms
                self.metrics.observe("fsynctime", ms)
                if ms > self.config.fsync_warning_threshold_ms:
                    self.metrics.fsync_threshold_exceeded += 1
                    log.warning("fsync-ing the write ahead log took %.0fms which will adversely "
                                "effect operation latency", ms)
                self.server.logged(target, _now_ms())
                if not self.server.busy and self.store.should_snapshot():
                    self.metrics.count("snap_count")
                    self.store.start_snapshot(self.server.tree,
                                              {s.session_id: s.timeout_ms for s in
                                               self.server.sessions.sessions.values()})
                self._flush()
                if self._appended_zxid == target:
                    return
        finally:
            self._fsync_running = False

    # ---- helpers for 4lw / admin ------------------------------------------------

    def protocols(self) -> dict[int, _ClientProtocol]:
        return self._protocols

    def data_dir_sizes(self) -> tuple[int, int]:
        def size(d: str | None) -> int:
            if not d:
                return 0
            total = 0
            vdir = os.path.join(d, "version-2")
            if os.path.isdir(vdir):
                for name in os.listdir(vdir):
                    try:
                        total += os.path.getsize(os.path.join(vdir, name))
                    except OSError:
                        pass
            return total
        c = self.config
        return size(c.data_dir), size(c.data_log_dir or c.data_dir)
