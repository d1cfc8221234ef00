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
    standalone_enabled: bool = True   # a reconfig must then leave at least two voters
    # Ensemble members only (a standalone server ignores them, as ZooKeeper's
    # SessionTrackerImpl does): new sessions local, upgraded by an ephemeral.
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    # serve read-only sessions while cut off from a quorum (readonlymode.enabled)
    read_only_mode_enabled: bool = False
    # wall clock = monotonic now_ms + this offset (ctime/mtime are wall time)
    wall_offset_ms: int = 0
    container_check_interval_ms: int = limits.CONTAINER_CHECK_INTERVAL_MS
    container_max_per_minute: int = limits.CONTAINER_MAX_PER_MINUTE
    sessionless_cnxn_timeout_ms: int = limits.SESSIONLESS_CNXN_TIMEOUT_MS_DEFAULT
    enforce_quota: bool = False  # zookeeper.enforceQuota: hard quota limits fail writes
    # bytes of read replies a new connection may be given before the runtime
    # grants more (``grant``); 0: no limit
    send_budget_bytes: int = limits.CONNECTION_QUEUED_BYTES_MAX_DEFAULT
    # zabpy's per-session limits (server/session_limits.py); 0: off
    ephemerals_per_session_max: int = 0
    watches_per_session_max: int = 0
    request_bytes_per_connection_max: int = 0
    # SASL, x509, auth enforcement, audit (zabpy/auth)
    auth: AuthSettings = AuthSettings()
    # A multi of more sub-txns than this is applied this many per ``work``
    # call, and one whose body is larger than ``multi_sliced_body_bytes`` is
    # decoded and prepared so (server/sliced.py); 0: whole. The simulator
    # sets them small so that its three-op multis are sliced too.
    multi_ops_per_part: int = limits.MULTI_APPLY_OPS_PER_PART
    multi_sliced_body_bytes: int = limits.MULTI_SLICED_BODY_BYTES
    # Reads answered from many nodes are computed this many per ``work`` call
    # while ``multi_ops_per_part`` is on (server/sliced.py, SlicedScan): the
    # names of a child list that is not cached, the nodes of a
    # getAllChildrenNumber, the paths of a getEphemerals.
    children_per_part: int = limits.CHILDREN_ENCODE_PER_PART
    count_nodes_per_part: int = limits.COUNT_NODES_PER_PART
    ephemerals_per_part: int = limits.EPHEMERALS_PER_PART
    # While ``multi_ops_per_part`` is on, a closeSession deleting more
    # ephemerals than ``close_deletes_per_part`` deletes them that many per
    # ``work`` call, after putting them in order ``close_paths_per_part``
    # paths per call; and the close of a session owning more than
    # ``close_paths_per_part`` is prepared that many paths per call (issue 19).
    close_deletes_per_part: int = limits.CLOSE_SESSION_DELETES_PER_PART
    close_paths_per_part: int = limits.CLOSE_SESSION_PATHS_PER_PART

    def __post_init__(self) -> None:
        assert self.tick_ms > 0
        assert self.sessionless_cnxn_timeout_ms > 0
        assert self.send_budget_bytes >= 0
        assert self.multi_ops_per_part >= 0 and self.multi_sliced_body_bytes >= 0
        assert min(self.children_per_part, self.count_nodes_per_part,
                   self.ephemerals_per_part) >= 1
        assert min(self.close_deletes_per_part, self.close_paths_per_part) >= 1
        assert 0 < self.session_timeout_ms_min <= self.session_timeout_ms_max
