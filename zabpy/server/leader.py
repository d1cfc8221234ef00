"""The leader's server core: the standalone pipeline, fed also by learners.

On the leader, prep is unchanged; the txns it prepares are proposed to the
ZAB leader (``zab.Leader``), which owns zxid allocation (``next_zxid``),
logs and broadcasts them. ``logged(zxid)`` then means *committed* (a quorum
logged it). Inputs added to the standalone core's, all from the replica:

- ``submit_forwarded(session_id, cxid, op, body, auth_ids)``: a REQUEST a
  learner forwarded for one of its clients. It is prepared exactly like a
  local request, against the same pending changes, and gets the next zxid;
  no reply is produced here (the learner answers its client on COMMIT). A
  sync() goes back to the ZAB leader (``learner_sync``) in its turn: after
  a large multi forwarded before it is prepared and proposed.
- ``touch_sessions(touches)``: session activity learners reported in PINGs,
  so that the leader, which alone expires sessions, keeps them alive.
- ``revalidate(learner_id, session_id)``: a learner asks whether a
  reconnecting client's session is alive; the answer goes back through ZAB.
"""

from __future__ import annotations

import struct

from ..jute import records as R
from ..jute.constants import ERR, OP
from ..election.reconfig import ReconfigError
from ..pipeline.prep import PrepContext, PrepError
from ..zab.leader import Leader
from .sliced import SlicedPrep
from .standalone import (_BAD_ARGUMENTS, _MALFORMED, _UNKNOWN, InFlight, StandaloneServer,
                         _BigMulti)

__all__ = ["LeaderServer"]


class LeaderServer(StandaloneServer):
    def _session_id_server_id(self) -> int:
        return self.settings.server_id

    def _local_sessions(self) -> bool:
        return self.settings.local_sessions_enabled

    def __init__(self, *args, zab: Leader, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zab = zab

    def _take_zxid(self) -> int:
        return self.zab.next_zxid()

    def _hand_to_log(self, item: InFlight) -> None:
        if self.zab.propose(item.hdr, item.txn) is None:
            # The term is ending (zxid counter exhausted) or cannot take more:
            # refuse writes until the next role.
            self.log_failed("the leader cannot take proposals")
            return
        self.inflight.append(item)

    def _reconfig_hook(self):
        return self.reconfig_check

    def reconfig_check(self, req: R.ReconfigRequest, zxid: int) -> str:
        """Prep's reconfig hook: the new config text, checked by the ZAB leader
        (``Leader.prepare_reconfig``); a refusal is a PrepError with its code."""
        try:
            qv = self.zab.prepare_reconfig(req.joiningServers, req.leavingServers, req.newMembers,
                                           req.curConfigId, zxid,
                                           standalone_enabled=self.settings.standalone_enabled)
        except ReconfigError as e:
            self._log(f"Reconfig refused: {e} (error {e.code})", "warning")
            raise PrepError(e.code) from None
        self._log("Reconfig proposed: " + qv.to_config_text().replace("\n", ", "))
        return qv.to_config_text()

    def touch_sessions(self, touches, now_ms: int) -> None:
        for session_id, _timeout in touches:
            self.sessions.touch(session_id, now_ms)

    def revalidate(self, learner_id: int, session_id: int, now_ms: int) -> None:
        session = self.sessions.sessions.get(session_id)
        valid = session is not None and not session.closing
        if valid:
            self.sessions.touch(session_id, now_ms)
        self.zab.revalidate_reply(learner_id, session_id, valid)

    def committed(self, hdr: R.TxnHeader, txn, now_ms: int) -> None:
        """A txn the ZAB leader committed: this term's proposals are applied
        through ``logged`` (replies, watches); txns logged in an earlier term
        (committed when this leader was established) go straight to the tree."""
        if self.inflight:
            # In zxid order: the oldest proposal not yet committed. Older ones
            # may still wait to be applied, behind a multi applied in parts.
            assert self._logged_zxid < hdr.zxid <= self.inflight[-1].hdr.zxid, \
                f"commit {hdr.zxid:#x} after {self._logged_zxid:#x}"
            self.logged(hdr.zxid, now_ms)
            return
        assert not self.applying, f"commit {hdr.zxid:#x} of an earlier term after this term's"
        assert hdr.zxid > self.tree.last_processed_zxid, f"commit {hdr.zxid:#x} applied twice"
        self.apply_txn(hdr, txn, now_ms)

    def submit_forwarded(self, session_id: int, cxid: int, op: int, body: bytes,
                         auth_ids, now_ms: int, learner_id: int = 0) -> None:
        self.now_ms = now_ms
        if op == OP.sync:
            # answered by the ZAB leader (SYNC after the proposals before it
            # commit), once what came before it is proposed
            if not self._defer(self.zab.learner_sync, learner_id):
                self.zab.learner_sync(learner_id)
            return
        if self._defer(self._forwarded, session_id, cxid, op, body, auth_ids):
            # a large multi is being prepared: what takes a zxid follows it
            self.sessions.touch(session_id, now_ms)
            return
        self._forwarded(session_id, cxid, op, body, auth_ids)

    def _forwarded(self, session_id: int, cxid: int, op: int, body: bytes, auth_ids) -> None:
        now_ms = self.now_ms
        if op == OP.createSession:
            if len(body) < 4:
                return
            (timeout,) = struct.unpack_from(">i", body)
            # A learner's session, or its local one being upgraded: its next
            # requests (the ephemeral create that upgrades it) may come
            # before this txn is applied.
            self.upgrading[session_id] = timeout
            hdr = R.TxnHeader(session_id, 0, self._take_zxid(), self._wall_ms(),
                              OP.createSession)
            self._hand_to_log(InFlight(hdr, R.CreateSessionTxn(timeout), None))
            return
        self.sessions.touch(session_id, now_ms)
        if op == OP.closeSession:
            self._submit_close_session(session_id, None, None, cxid)
            return
        req = self._decode(op, memoryview(body))
        zxid = self._take_zxid()
        if req is _MALFORMED or req is _UNKNOWN:
            ttype, txn = OP.error, R.ErrorTxn(ERR.MARSHALLINGERROR)
        elif req is _BAD_ARGUMENTS:
            ttype, txn = OP.error, R.ErrorTxn(ERR.BADARGUMENTS)
        else:
            ids = [i if isinstance(i, R.Id) else R.Id(*i) for i in auth_ids]
            ctx = PrepContext(session_id, ids, self.settings.extended_types,
                              self.settings.skip_acl, self.settings.reconfig_enabled,
                              enforce_quota=self.settings.enforce_quota,
                              acl_schemes=self.settings.auth.acl_schemes)
            if self._local_sessions() and session_id not in self.sessions.sessions \
                    and session_id not in self.upgrading:
                # another member's local session: no ephemerals without a
                # global session (ZooKeeper's checkGlobalSession)
                ctx.ephemeral_error = ERR.SESSIONEXPIRED
            if isinstance(req, _BigMulti):
                # decoded and prepared a part per ``work`` call, as a local one
                self._prepping = SlicedPrep(None, None, session_id, cxid, req.body, zxid, ctx,
                                            self.multi_ops_per_part)
                return
            ttype, txn = self._prepare(op, req, zxid, ctx)
        hdr = R.TxnHeader(session_id, cxid, zxid, self._wall_ms(), ttype)
        self._hand_to_log(InFlight(hdr, txn, None))
