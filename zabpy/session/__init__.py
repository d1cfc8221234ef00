"""Sessions: ids, passwords, timeouts, expiry buckets (pure core)."""

from .tracker import Session, SessionTracker, initial_session_id, session_password, to_signed64

__all__ = ["Session", "SessionTracker", "initial_session_id", "session_password", "to_signed64"]
