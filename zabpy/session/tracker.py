"""Session table: ids, passwords, negotiated timeouts and expiry buckets.

State: every live session's timeout and its expiry deadline, rounded up to
the next tick boundary (ZooKeeper's ExpiryQueue), so that expiry is checked
once per tick for a whole bucket. ``closing`` marks sessions whose
closeSession txn is in flight: they may not be re-attached or touched.

A session is global (created by a createSession txn, known to every member)
or local (``localSessionsEnabled``: known only to the server that accepted
it, created and closed without a txn). A tracker with ``expire_global``
false (a learner's, a read-only server's) keeps global sessions without
deadlines, since only the leader expires them; it still expires its own
local sessions.

Inputs: ``add`` (a createSession txn was applied), ``touch`` (any client
traffic), ``remove`` (a closeSession txn was applied), ``expired(now_ms)``.
Outputs: the ids whose deadline has passed, each returned once.

Session ids follow ZooKeeper: server id in the top byte, then a value
derived from a millisecond clock, incremented per new session. The clock is
wall time (passed in as a value): Debian's 3.8.0 uses its elapsed-time
clock (javap of SessionTrackerImpl.initializeNextSessionId), which restarts
at boot, so after a reboot it can hand out ids — and the passwords derived
from them — of sessions clients still hold; ZooKeeper 3.4 used wall time. Passwords
are Java's ``java.util.Random(id ^ 0xB3415C00).nextBytes(16)`` so any member
of a mixed ensemble can check them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionTracker", "Session", "session_password", "initial_session_id", "to_signed64"]

_MASK64 = (1 << 64) - 1
_JAVA_MULT = 0x5DEECE66D
_JAVA_MASK48 = (1 << 48) - 1
_PASSWORD_SEED_XOR = 0xB3415C00
_LONG_MIN = -(1 << 63)


def to_signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def session_password(session_id: int) -> bytes:
    """16 bytes from java.util.Random seeded with (id ^ 0xB3415C00)."""
    seed = ((session_id ^ _PASSWORD_SEED_XOR) ^ _JAVA_MULT) & _JAVA_MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _JAVA_MULT + 0xB) & _JAVA_MASK48
        rnd = seed >> 16  # next(32), taken as 32 unsigned bits
        for _ in range(min(4, 16 - len(out))):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def initial_session_id(server_id: int, wall_ms: int) -> int:
    """(server id << 56) | ((wall_ms << 24) >>> 8), as a signed long."""
    v = ((wall_ms << 24) & _MASK64) >> 8
    v |= (server_id & 0xFF) << 56
    v = to_signed64(v)
    if v == _LONG_MIN:
        v += 1
    return v


@dataclass
class Session:
    session_id: int
    timeout_ms: int
    expires_at_ms: int
    closing: bool = False
    local: bool = False


class SessionTracker:
    def __init__(self, server_id: int, tick_ms: int, wall_ms: int, *,
                 expire_global: bool = True):
        assert tick_ms > 0
        self.tick_ms = tick_ms
        self.expire_global = expire_global
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, dict[int, None]] = {}
        self._next_id = initial_session_id(server_id, wall_ms)

    def next_session_id(self) -> int:
        # Sessions restored from disk may hold ids this counter reaches again.
        while True:
            sid = self._next_id
            self._next_id = to_signed64(self._next_id + 1)
            if self._next_id == _LONG_MIN:
                self._next_id += 1
            if sid not in self.sessions:
                return sid

    def _deadline(self, now_ms: int, timeout_ms: int) -> int:
        t = now_ms + timeout_ms
        return (t // self.tick_ms + 1) * self.tick_ms

    def _place(self, s: Session, deadline: int) -> None:
        if not (s.local or self.expire_global):
            deadline = -1
        if s.expires_at_ms == deadline:
            return
        old = self._buckets.get(s.expires_at_ms)
        if old is not None:
            old.pop(s.session_id, None)
            if not old:
                del self._buckets[s.expires_at_ms]
        s.expires_at_ms = deadline
        if deadline >= 0:
            self._buckets.setdefault(deadline, {})[s.session_id] = None

    def add(self, session_id: int, timeout_ms: int, now_ms: int, *,
            local: bool = False) -> Session:
        """A new session, or a local one made global (``local`` false)."""
        s = self.sessions.get(session_id)
        if s is None:
            s = Session(session_id, timeout_ms, -1, local=local)
            self.sessions[session_id] = s
        s.local = local
        s.timeout_ms = timeout_ms
        self._place(s, self._deadline(now_ms, timeout_ms))
        return s

    def is_local(self, session_id: int) -> bool:
        s = self.sessions.get(session_id)
        return s is not None and s.local

    def global_sessions(self) -> dict[int, int]:
        """Global session id -> timeout: what a snapshot and the next role keep."""
        return {s.session_id: s.timeout_ms for s in self.sessions.values() if not s.local}

    def touch(self, session_id: int, now_ms: int) -> bool:
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        tick = self.tick_ms  # _deadline, inlined: this runs for every request
        deadline = ((now_ms + s.timeout_ms) // tick + 1) * tick
        if deadline != s.expires_at_ms or not (s.local or self.expire_global):
            self._place(s, deadline)  # (most requests stay in their bucket)
        return True

    def reschedule(self, session_id: int, timeout_ms: int, now_ms: int) -> None:
        """Move a session's deadline to ``timeout_ms`` from now, keeping its
        timeout (ZooKeeper's trackSession of a session it already has)."""
        s = self.sessions.get(session_id)
        if s is not None and not s.closing:
            self._place(s, self._deadline(now_ms, timeout_ms))

    def set_closing(self, session_id: int) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True

    def remove(self, session_id: int) -> None:
        s = self.sessions.pop(session_id, None)
        if s is not None:
            bucket = self._buckets.get(s.expires_at_ms)
            if bucket is not None:
                bucket.pop(session_id, None)
                if not bucket:
                    del self._buckets[s.expires_at_ms]

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline passed and are not already closing."""
        out: list[int] = []
        for deadline in sorted(d for d in self._buckets if d <= now_ms):
            for sid in self._buckets.pop(deadline):
                s = self.sessions[sid]
                s.expires_at_ms = -1
                if not s.closing:
                    s.closing = True
                    out.append(sid)
        return out

    def next_deadline_ms(self) -> int | None:
        return min(self._buckets) if self._buckets else None
