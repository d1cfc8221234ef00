"""A follower's or observer's server core: reads served locally, writes sent
to the leader, answers given when the leader's commit comes back.

The client side is the standalone core's: the same connection queues, so a
session's replies still leave in request order, and a read waits behind
the session's own forwarded writes. What changes:

- a write, a session create or close, and sync() are forwarded to the
  leader by the ZAB learner (``zab.Learner.forward``: a REQUEST packet); the
  entry waits in its queue, indexed by (session id, cxid); when the learner
  cannot forward (it is leaving its leader) the request fails with
  CONNECTIONLOSS;
- ``apply_committed(hdr, txn)`` applies each txn the leader committed, in
  zxid order, fires watches, and answers the local request the txn came
  from, if any (matched by the session id and cxid in the txn header);
- ``synced(token)`` answers a sync() once the leader's SYNC arrived: every
  txn committed before the sync was issued has been applied here;
- sessions are expired by the leader only; every request touches its
  session in the ZAB learner, which reports it in the next PING reply;
  a client reconnecting here is attached only once the leader says its
  session is alive (REVALIDATE → ``revalidated``).
"""

from __future__ import annotations

import struct

from ..auth.audit import request_lines
from ..jute import records as R
from collections import deque

from ..jute.codec import DecodeError
from ..jute.constants import ERR, OP
from ..pipeline.final import write_reply
from ..pipeline.prep import MULTI_WRITE_OPS, creates_ephemeral, decode_multi
from ..zab.follower import Learner
from .sliced import SlicedDecode
from .standalone import _MALFORMED, Conn, Entry, InFlight, StandaloneServer, _BigMulti, frame

__all__ = ["LearnerServer"]


class LearnerServer(StandaloneServer):
    OWNS_SESSIONS = False

    def _session_id_server_id(self) -> int:
        return self.settings.server_id

    def _local_sessions(self) -> bool:
        return self.settings.local_sessions_enabled

    def __init__(self, *args, zab: Learner, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zab = zab
        # (session id, cxid) -> (conn id, entry); ("session", id) -> conn id
        self._awaiting: dict = {}
        # What the leader committed (("txn", hdr, txn)) or answered (("sync",
        # token)) while a multi is applied in parts, or held back by a scan:
        # handled after it, in order.
        self._committed: deque = deque()
        # Large multis forwarded whole, decoded a part per ``work`` call for
        # their replies (forwarding order).
        self._decoding: deque[SlicedDecode] = deque()

    def _is_write(self, op: int) -> bool:
        return super()._is_write(op) or op == OP.sync

    def request(self, conn_id: int, xid: int, op: int, body: memoryview | bytes, now_ms: int) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None and conn.session_id:
            s = self.sessions.sessions.get(conn.session_id)
            if s is not None and not s.local:   # the leader never hears of a local one
                self.zab.touch(conn.session_id, s.timeout_ms)
        super().request(conn_id, xid, op, body, now_ms)

    # ---- outgoing -------------------------------------------------------------

    def _new_session(self, conn: Conn, sid: int, timeout: int, req: R.ConnectRequest) -> None:
        self._awaiting[("session", sid)] = conn.conn_id
        if not self.zab.forward(sid, 0, OP.createSession, struct.pack(">i", timeout),
                                list(conn.auth_ids)):
            self.leader_refused(sid, 0)

    def _reattach(self, conn: Conn, sid: int, timeout: int) -> None:
        # ZooKeeper's REVALIDATE: only the leader knows whether the session
        # is still alive; the client waits for its answer. A local session
        # is this server's to judge.
        if self.sessions.is_local(sid):
            self._attach(conn, sid, timeout)
            return
        self._awaiting[("revalidate", sid)] = (conn.conn_id, timeout)
        if self.zab.serving:
            self.zab.revalidate(sid, timeout)
        else:
            self.revalidated(sid, False, self.now_ms)

    def revalidated(self, sid: int, valid: bool, now_ms: int) -> None:
        self.now_ms = now_ms
        waiting = self._awaiting.pop(("revalidate", sid), None)
        if waiting is None:
            return
        conn_id, timeout = waiting
        conn = self.conns.get(conn_id)
        if conn is None or conn.closing:
            return
        if valid and sid in self.sessions.sessions:
            self._attach(conn, sid, timeout)
        else:
            self._emit(conn, self._connect_response(conn, 0, 0, bytes(16)))
            self._close_conn(conn)

    def _submit_write(self, conn: Conn, entry: Entry) -> None:
        sid = conn.session_id
        if isinstance(entry.req, _BigMulti):
            if self.sessions.is_local(sid):
                # whether it upgrades the session depends on every op: whole
                entry.req = self._decode_whole(entry.req.body)
            else:
                # forwarded as it came; its ops are needed only for the reply
                self._decoding.append(SlicedDecode(entry, entry.req.body,
                                                   self.multi_ops_per_part))
        if entry.op == OP.createSession:
            # Never forwarded: the leader would take it for this learner's
            # own session creation. Refused here, without a zxid.
            entry.reply = frame(entry.xid, self.tree.last_processed_zxid, ERR.MARSHALLINGERROR)
            self._drain(conn)
            return
        if entry.op == OP.closeSession:
            if self.sessions.is_local(sid):
                self._close_local(conn, entry)
                return
            self.sessions.set_closing(sid)
        elif self.sessions.is_local(sid) and creates_ephemeral(entry.op, entry.req):
            if self.settings.local_sessions_upgrading_enabled:
                self._upgrade(sid)
            elif entry.op != OP.multi:
                # Forwarded all the same (a zxid is spent, the leader refusing
                # the unknown session), answered as ZooKeeper's follower does.
                entry.local_error = ERR.EPHEMERALONLOCALSESSION
        self._awaiting[(sid, entry.xid)] = (conn.conn_id, entry)
        if not self.zab.forward(sid, entry.xid, entry.op, entry.body, list(conn.auth_ids),
                                (sid, entry.xid)):
            self.leader_refused(sid, entry.xid)

    def _send_upgrade(self, session_id: int, timeout_ms: int) -> None:
        # Ahead of the request that needs it, on the same ordered link.
        self.zab.forward(session_id, 0, OP.createSession, struct.pack(">i", timeout_ms), [])

    def leader_refused(self, session_id: int, cxid: int) -> None:
        """The ZAB learner could not forward (it is not serving): fail that request."""
        waiting = self._awaiting.pop((session_id, cxid), None)
        if waiting is None:
            conn_id = self._awaiting.pop(("session", session_id), None)
            if conn_id in self.conns:
                self._close_conn(self.conns[conn_id])
            return
        conn_id, entry = waiting
        if self._decoding:
            # its reply is decided here: a decode of it would only keep us busy
            self._decoding = deque(d for d in self._decoding if d.entry is not entry)
        conn = self.conns.get(conn_id)
        if conn is not None:
            entry.reply = frame(entry.xid, self.tree.last_processed_zxid, ERR.CONNECTIONLOSS)
            self._drain(conn)

    # ---- decoding large multis -----------------------------------------------

    def _decode_whole(self, body: bytes):
        try:
            return decode_multi(body, MULTI_WRITE_OPS)
        except DecodeError as e:
            self._log(f"Failed to process request op {OP.multi}: {e}", "warning")
            return _MALFORMED

    def _decode_part(self) -> None:
        d = self._decoding[0]
        if d.step():
            self._decoding.popleft()
            d.entry.req = d.ops if d.ops is not None else _MALFORMED

    def _decoded(self, entry: Entry) -> None:
        """``entry``'s ops, decoded now if they are not yet (its commit came
        back first); the multis forwarded before it are finished too."""
        while isinstance(entry.req, _BigMulti) and self._decoding:
            d = self._decoding[0]
            while not d.step():
                pass
            self._decoding.popleft()
            d.entry.req = d.ops if d.ops is not None else _MALFORMED
        assert not isinstance(entry.req, _BigMulti), "a large multi forwarded but not decoding"

    @property
    def busy(self) -> bool:
        return super().busy or bool(self._decoding)

    @property
    def applying(self) -> bool:
        return super().applying or bool(self._committed)

    def work(self, now_ms: int) -> None:
        super().work(now_ms)
        if self._decoding:
            self._decode_part()

    # ---- incoming -------------------------------------------------------------

    def apply_committed(self, hdr: R.TxnHeader, txn, now_ms: int) -> None:
        """A txn the leader committed, applied in zxid order: after the multi
        being applied in parts, if one is, and after the scans whose answer
        it would change (``_scan_waits``)."""
        self.now_ms = now_ms
        if self._sliced is not None or self._fanout is not None or self._committed \
                or (self._scans and self._scan_waits(hdr, txn)):
            self._committed.append(("txn", hdr, txn))
            return
        self._apply_committed(hdr, txn)

    def _apply_next(self) -> None:
        while self._sliced is None and self._fanout is None and self._committed:
            kind, a, b = self._committed[0]
            if self._scans and (self._scan_waits(a, b) if kind == "txn"
                                else self._sync_waits(a)):
                return
            held = self._scan_held
            self._committed.popleft()
            if kind == "txn":
                self._apply_committed(a, b)
            else:
                self._synced(a)
            if held:
                self._scan_unheld()

    def _after_apply(self, item: InFlight, res) -> None:
        # a committed txn is in the tree and its watch events are out (at
        # once, or at the end of a multi, a closeSession or a storm handed
        # out in parts): the session table, then the local request answered
        self._sessions_follow(item.hdr, item.txn, res)
        self._answer(item.hdr, item.txn, res)

    def _apply_committed(self, hdr: R.TxnHeader, txn) -> None:
        """Applied as the standalone server applies a logged txn
        (``_apply_one``): a large multi or a closeSession of many ephemerals
        in parts, a watch storm's events in parts; meanwhile what the leader
        commits next waits in ``_committed``."""
        waiting = self._awaiting.get((hdr.clientId, hdr.cxid)) if self.changes is not None \
            else None
        self._apply_one(InFlight(hdr, txn, waiting[0] if waiting is not None else None))

    def _answer(self, hdr: R.TxnHeader, txn, res) -> None:
        """The local request a txn applied here came from, if any, answered."""
        sid = hdr.clientId
        if hdr.type == OP.createSession:
            conn_id = self._awaiting.pop(("session", sid), None)
            conn = self.conns.get(conn_id) if conn_id is not None else None
            if conn is not None and not conn.closing:
                self._attach(conn, sid, txn.timeOut)
                self._session_created(conn, hdr.zxid)
            return
        waiting = self._awaiting.pop((sid, hdr.cxid), None)
        if waiting is None:
            return
        conn_id, entry = waiting
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        if isinstance(entry.req, _BigMulti):
            self._decoded(entry)
        err, body = write_reply(entry.op, entry.req, res)
        if entry.local_error:
            err, body = entry.local_error, b""
        if self.settings.auth.audit:
            self._audit(request_lines(entry.op, entry.req, hdr.type == OP.error, err, res, txn,
                                      conn.session_id, conn.peer_ip, conn.auth_ids))
        entry.reply = frame(entry.xid, hdr.zxid, err, body)
        if hdr.type == OP.closeSession:
            entry.close_after = True
        self._drain(conn)

    def synced(self, token, now_ms: int) -> None:
        """The leader answered the sync() identified by ``token`` = (session id, cxid):
        once every txn committed before it is applied here."""
        self.now_ms = now_ms
        if self._sliced is not None or self._fanout is not None or self._committed \
                or (self._scans and self._sync_waits(token)):
            self._committed.append(("sync", token, None))
            return
        self._synced(token)

    def _sync_waits(self, token) -> bool:
        """A sync() of a session with a read being computed in parts is
        answered after it (its zxid must not be below that read's)."""
        session_id = token[0]
        if any(session_id in job.sessions for job in self._scans):
            self._scan_held = True
            self._held_session = session_id
            return True
        return False

    def _synced(self, token) -> None:
        waiting = self._awaiting.pop(token, None)
        if waiting is None:
            return
        conn_id, entry = waiting
        conn = self.conns.get(conn_id)
        if conn is not None:
            path = entry.req.path if entry.req is not None else "/"
            entry.reply = frame(entry.xid, self.tree.last_processed_zxid, ERR.OK,
                                R.SyncResponse(path).to_bytes())
            self._drain(conn)
