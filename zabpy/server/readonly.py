"""The read-only server core: what a member cut off from its quorum serves
(``readonlymode.enabled``), as ZooKeeper's ReadOnlyZooKeeperServer.

The replica starts one once it has been LOOKING for max(2 s, tickTime) and
drops it, closing every connection, the moment the election decides. It
holds the tree as the member last applied it, which does not change here.

- Only clients that asked for a read-only session (the ``readOnly`` byte of
  ConnectRequest) are served; any other connection is closed, as is a
  client coming back with a global session (it should find a read-write
  member). The ConnectResponse says ``readOnly`` true.
- Its sessions are local: created and closed without a txn, expired here,
  forgotten with the server. ZooKeeper 3.8 makes them local only with
  ``localSessionsEnabled``; without it its ReadOnlyRequestProcessor answers
  the createSession with a NOTREADONLY reply header where the client awaits
  a ConnectResponse (read-only mode needs local sessions since 3.5,
  apache/zookeeper PR #1922). zabpy closes such a connection instead, with
  one log line.
- Writes, sync() and the ops ZooKeeper's ReadOnlyRequestProcessor filters
  are answered NOTREADONLY with the tree's last zxid; reads are served.
"""

from __future__ import annotations

from ..jute import records as R
from ..jute.constants import Err, OpCode
from .standalone import Conn, Entry, InFlight, StandaloneServer, frame

__all__ = ["ReadOnlyServer"]

# What ReadOnlyRequestProcessor answers NOTREADONLY (createSession on an
# established connection too: there is no write path to create it on).
_REFUSED_OPS = frozenset({
    OpCode.sync, OpCode.create, OpCode.create2, OpCode.createTTL, OpCode.createContainer,
    OpCode.delete, OpCode.deleteContainer, OpCode.setData, OpCode.reconfig, OpCode.setACL,
    OpCode.multi, OpCode.check, OpCode.createSession})


class ReadOnlyServer(StandaloneServer):
    OWNS_SESSIONS = False   # global sessions stay as the quorum left them
    READ_ONLY = True

    def _session_id_server_id(self) -> int:
        return self.settings.server_id

    def _local_sessions(self) -> bool:
        return True

    def _is_write(self, op: int) -> bool:
        return op in _REFUSED_OPS or op == OpCode.closeSession

    def connect(self, conn_id: int, req: R.ConnectRequest, now_ms: int) -> None:
        conn = self.conns[conn_id]
        refusal = None
        if not req.readOnly:
            refusal = "Refusing session request for not-read-only client"
        elif req.sessionId == 0 and not self.settings.local_sessions_enabled:
            refusal = "Refusing session request in read-only mode without localSessionsEnabled " \
                      "for client"
        elif req.sessionId != 0 and req.sessionId in self.sessions.sessions \
                and not self.sessions.is_local(req.sessionId):
            refusal = "Refusing global session reconnection in RO mode"
        if refusal is not None:
            conn.packets_received += 1
            self.stats.packets_received += 1
            self._log(f"{refusal} {conn.peer_ip}")
            self._close_conn(conn)
            return
        super().connect(conn_id, req, now_ms)

    def _submit_write(self, conn: Conn, entry: Entry) -> None:
        if entry.op == OpCode.closeSession and self.sessions.is_local(conn.session_id):
            self._close_local(conn, entry)
            return
        entry.reply = frame(entry.xid, self.tree.last_processed_zxid, Err.NOTREADONLY)
        self._drain(conn)

    def _hand_to_log(self, item: InFlight) -> None:
        raise AssertionError(f"a read-only server logged a txn: {item.hdr}")
