"""What a server core needs to know of its configuration (plain values)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import limits
from ..auth.sasl import AuthSettings

__all__ = ["ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    server_id: int = 0
    tick_ms: int = 2000
    session_timeout_ms_min: int = 4000
    session_timeout_ms_max: int = 40000
    super_digest: str | None = None
    skip_acl: bool = False
    extended_types: bool = False
    reconfig_enabled: bool = False
    # wall clock = monotonic now_ms + this offset (ctime/mtime are wall time)
    wall_offset_ms: int = 0
    container_check_interval_ms: int = limits.CONTAINER_CHECK_INTERVAL_MS
    container_max_per_minute: int = limits.CONTAINER_MAX_PER_MINUTE
    sessionless_cnxn_timeout_ms: int = limits.SESSIONLESS_CNXN_TIMEOUT_MS_DEFAULT
    # SASL, x509, auth enforcement, audit (zabpy/auth)
    auth: AuthSettings = AuthSettings()

    def __post_init__(self) -> None:
        assert self.tick_ms > 0
        assert self.sessionless_cnxn_timeout_ms > 0
        assert 0 < self.session_timeout_ms_min <= self.session_timeout_ms_max
