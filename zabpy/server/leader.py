"""The leader's server core: the standalone pipeline, fed also by learners.

On the leader, prep is unchanged and the txns it prepares go to the ZAB
leader (the runtime hands ``Ready.persist`` to ``Leader.propose``, which
logs and broadcasts them); ``logged(zxid)`` then means *committed* (a quorum
logged it). Two inputs are added:

- ``submit_forwarded(session_id, cxid, op, body, auth_ids)``: a REQUEST a
  learner forwarded for one of its clients. It is prepared exactly like a
  local request, against the same pending changes, and gets the next zxid;
  no reply is produced here (the learner answers its client on COMMIT).
- ``touch_sessions(touches)``: session activity learners reported in PINGs,
  so that the leader, which alone expires sessions, keeps them alive.

``start_epoch(epoch)`` aligns the zxid counter with the epoch the ZAB
leader established (zxid = epoch << 32 | counter, counter from 1).
"""

from __future__ import annotations

import struct

from ..jute import records as R
from ..jute.constants import Err, OpCode
from ..pipeline.prep import PrepContext, prepare
from .standalone import _MALFORMED, _UNKNOWN, InFlight, StandaloneServer

__all__ = ["LeaderServer"]


class LeaderServer(StandaloneServer):
    def start_epoch(self, epoch: int) -> None:
        first = (epoch << 32) | 1
        assert first > self.tree.last_processed_zxid
        self.next_zxid = first

    def touch_sessions(self, touches, now_ms: int) -> None:
        for sid, _timeout in touches:
            self.sessions.touch(sid, now_ms)

    def submit_forwarded(self, session_id: int, cxid: int, op: int, body: bytes,
                         auth_ids, now_ms: int) -> None:
        self.now_ms = now_ms
        if op == OpCode.createSession:
            if len(body) < 4:
                return
            (timeout,) = struct.unpack_from(">i", body)
            hdr = R.TxnHeader(session_id, 0, self._take_zxid(), self._wall_ms(),
                              OpCode.createSession)
            self._hand_to_log(InFlight(hdr, R.CreateSessionTxn(timeout), None))
            return
        if op == OpCode.sync:
            return  # answered by the ZAB leader itself (SYNC after outstanding commits)
        if session_id not in self.sessions.sessions:
            return  # expired meanwhile: the learner's client gets nothing, as in ZooKeeper
        self.sessions.touch(session_id, now_ms)
        if op == OpCode.closeSession:
            self._submit_close_session(session_id, None, None, cxid)
            return
        req = self._decode(op, memoryview(body))
        zxid = self._take_zxid()
        if req is _MALFORMED or req is _UNKNOWN:
            ttype, txn = OpCode.error, R.ErrorTxn(Err.MARSHALLINGERROR)
        else:
            ids = [i if isinstance(i, R.Id) else R.Id(*i) for i in auth_ids]
            ctx = PrepContext(session_id, ids, self.settings.extended_types,
                              self.settings.skip_acl, self.settings.reconfig_enabled)
            ttype, txn = prepare(op, req, zxid, self.pending, ctx)
        hdr = R.TxnHeader(session_id, cxid, zxid, self._wall_ms(), ttype)
        self._hand_to_log(InFlight(hdr, txn, None))
