"""The admin command table, shared by the four-letter words and the HTTP AdminServer.

Theory of operation
-------------------
ZooKeeper 3.8 answers the same questions twice: as plain text on the client
port (``srvr``, ``mntr``, ...) and as JSON on the AdminServer
(``/commands/server_stats``, ``/commands/monitor``, ...). Here every fact is
computed once, by a function of an ``AdminContext``; ``run_command`` wraps
the facts of one command into the JSON object ZooKeeper returns (its fields,
then ``command`` and ``error``), and ``fourletter`` formats the same facts as
text.

State: none. Every command reads the live server through the runtime when it
is called, on the event loop thread that owns the server, so the answer is a
consistent snapshot of one loop turn. Two commands write: ``crst`` and
``srst`` reset counters, as in ZooKeeper.

Standalone and ensemble members differ only through ``QuorumView``: the
runtime of a quorum peer offers ``quorum_view()`` returning one, a
standalone runtime does not, and each command answers as ZooKeeper does in
that role (``leader`` says "server is not initialized" when standalone).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import ZOOKEEPER_VERSION, __version__
from ..jute.constants import OpCode
from ..tree.quota import quota_gauges

__all__ = ["AdminContext", "QuorumView", "Command", "COMMANDS", "lookup",
           "run_command", "VERSION_LINE", "TRACE_MASK", "monitor_values", "server_gauges", "hex_id"]

# kazoo's server_version() parses "zookeeper.version=3.8.0-..." from envi.
VERSION_LINE = f"{ZOOKEEPER_VERSION}-zabpy-{__version__}, built on 01/01/2026 00:00 GMT"

_U64 = 0xFFFFFFFFFFFFFFFF
# ZooKeeper's default trace mask (gtmk). zabpy has no request tracing, so stmk
# answers with it unchanged.
TRACE_MASK = 306


def hex_id(v: int) -> str:
    """Java's Long.toHexString: two's complement, no leading zeros."""
    return f"{v & _U64:x}"


def _signed(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass
class QuorumView:
    """What a quorum peer knows about its ensemble, for the admin commands.

    Filled by the ensemble runtime; every field has ZooKeeper's idle value
    so that a runtime reports only what it knows.
    """

    my_id: int
    server_state: str  # leader | follower | observer | looking | read-only
    peer_state: str = ""  # "leading - broadcast", "following - synchronization", ...
    zab_state: str = ""  # election | discovery | synchronization | broadcast
    leader_id: int | None = None
    leader_ip: str | None = None
    voting: bool = True
    last_zxid: int = 0
    learners: int = 0
    synced_followers: int = 0
    synced_non_voting_followers: int = 0
    synced_observers: int = 0
    pending_syncs: int = 0
    leader_uptime_ms: int = 0
    quorum_size: int = 0
    proposal_size_last: int = -1
    proposal_size_min: int = -1
    proposal_size_max: int = -1
    observers: list[dict] = field(default_factory=list)

    @property
    def is_leader(self) -> bool:
        return self.server_state == "leader"


class AdminContext:
    """The running server as the commands see it (a view over ServerRuntime)."""

    def __init__(self, runtime, conn_id: int | None = None):
        self.rt = runtime
        self.conn_id = conn_id  # the 4lw connection asking, if any

    @property
    def server(self):
        return self.rt.server

    @property
    def config(self):
        return self.rt.config

    @property
    def quorum(self) -> QuorumView | None:
        view = getattr(self.rt, "quorum_view", None)
        return view() if callable(view) else None

    @property
    def metrics(self):
        return getattr(self.rt, "metrics", None)

    @property
    def mode(self) -> str:
        q = self.quorum
        if q is not None:
            return q.server_state
        return getattr(self.rt, "mode", "standalone")

    def now_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def wall_ms(self, monotonic_ms: int) -> int:
        return monotonic_ms + self.server.settings.wall_offset_ms

    def uptime_ms(self) -> int:
        return self.now_ms() - self.server.stats.start_ms

    def server_id(self) -> int:
        return 0 if self.config.is_standalone() else (self.config.myid or 0)


# ---- facts ----------------------------------------------------------------------


def _fd_counts() -> tuple[int, int]:
    try:
        opened = len(os.listdir("/proc/self/fd"))
    except OSError:
        opened = -1
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        limit = -1
    return opened, limit


def server_gauges(ctx: AdminContext) -> list[tuple[str, int | float]]:
    """The numeric gauges ZooKeeperServer.registerMetrics exports (plus the
    quorum ones of a peer), in mntr's order. Gauges zabpy has no source for
    keep ZooKeeper's idle value (TLS and response-size gauges: 0 / -1), so
    that parsers and dashboards find every key."""
    srv, st, q = ctx.server, ctx.server.stats, ctx.quorum
    opened, limit = _fd_counts()
    out: list[tuple[str, int | float]] = [
        ("ephemerals_count", srv.tree.ephemeral_count()),
        ("num_alive_connections", len(ctx.rt.protocols())),
        ("avg_latency", round(st.latency_avg_ms, 4)),
        ("outstanding_requests", st.outstanding),
        ("znode_count", srv.tree.node_count()),
        ("global_sessions", sum(1 for x in srv.sessions.sessions.values() if not x.local)),
        ("non_mtls_remote_conn_count", 0),
        ("last_client_response_size", -1),
        ("packets_sent", st.packets_sent),
        ("packets_received", st.packets_received),
        ("max_client_response_size", -1),
        ("connection_drop_probability", 0.0),
        ("watch_count", srv.watches.count()),
        ("auth_failed_count", 0),
        ("min_latency", st.latency_min_ms),
        ("max_file_descriptor_count", limit),
        ("approximate_data_size", srv.tree.approximate_data_size()),
        ("open_file_descriptor_count", opened),
        ("local_sessions", sum(1 for x in srv.sessions.sessions.values() if x.local)),
        ("uptime", ctx.uptime_ms()),
        ("max_latency", st.latency_max_ms),
        ("outstanding_tls_handshake", 0),
        ("min_client_response_size", -1),
        ("non_mtls_local_conn_count", 0),
    ]
    if q is not None:
        out += _quorum_gauges(q)
    return out


def monitor_values(ctx: AdminContext) -> list[tuple[str, object]]:
    """mntr / monitor: (key without ``zk_``, value), in ZooKeeper 3.8's order:
    version and state, the gauges, then the counters and summaries of
    ``ServerMetrics`` (only those zabpy measures)."""
    out: list[tuple[str, object]] = [("version", VERSION_LINE), ("server_state", ctx.mode)]
    q = ctx.quorum
    if q is not None:
        out.append(("peer_state", q.peer_state))
    out += server_gauges(ctx)
    # gauge sets print as <key>_<set>, right after the gauges; counter sets
    # after the counters
    for name, values in quota_gauges(ctx.server.tree.nodes).items():
        out += [(f"{ns}_{name}", v) for ns, v in sorted(values.items())]
    counter_sets = [(f"{ns}_quota_exceeded_error_per_namespace", n)
                    for ns, n in sorted(ctx.server.stats.quota_exceeded.items())]
    if ctx.metrics is not None:
        out += ctx.metrics.monitor_values(counter_sets)
    else:
        out += counter_sets
    return out


def _quorum_gauges(q: QuorumView) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [("quorum_size", q.quorum_size)]
    if q.is_leader:
        out += [("learners", q.learners), ("synced_followers", q.synced_followers),
                ("synced_non_voting_followers", q.synced_non_voting_followers),
                ("synced_observers", q.synced_observers), ("pending_syncs", q.pending_syncs),
                ("leader_uptime", q.leader_uptime_ms),
                ("last_proposal_size", q.proposal_size_last),
                ("max_proposal_size", q.proposal_size_max),
                ("min_proposal_size", q.proposal_size_min)]
    elif q.server_state == "follower":
        out.append(("synced_observers", q.synced_observers))
    return out


def _peer_address(proto) -> str:
    peer = proto.transport.get_extra_info("peername") if proto.transport else None
    if not peer:
        return "?:0"
    host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
    return f"{host}:{peer[1]}"


# The names FinalRequestProcessor gives a connection's last operation.
_OP_NAMES = {
    OpCode.ping: "PING", OpCode.createSession: "SESS", OpCode.closeSession: "CLOS",
    OpCode.multi: "MULT", OpCode.multiRead: "MLTR", OpCode.create: "CREA",
    OpCode.create2: "CREA", OpCode.createTTL: "CREA", OpCode.createContainer: "CREA",
    OpCode.delete: "DELE", OpCode.setData: "SETD", OpCode.setACL: "SETA",
    OpCode.reconfig: "RECO", OpCode.sync: "SYNC", OpCode.check: "CHEC",
    OpCode.exists: "EXIS", OpCode.getData: "GETD", OpCode.getACL: "GETA",
    OpCode.getChildren: "GETC", OpCode.getChildren2: "GETC",
    OpCode.getAllChildrenNumber: "GETACN", OpCode.setWatches: "SETW",
    OpCode.setWatches2: "SETW", OpCode.checkWatches: "CHKW", OpCode.removeWatches: "REMW",
    OpCode.getEphemerals: "GETE", OpCode.addWatch: "ADDW", OpCode.whoAmI: "HOMI",
}


def connection_info(ctx: AdminContext, cid: int, proto, brief: bool) -> dict:
    """One client connection, with ServerCnxn.getConnectionInfo's fields;
    the response stats are the core's (``Conn.responded``); lresp is the
    monotonic clock, as ZooKeeper's elapsed-time clock."""
    conn = ctx.server.conns.get(cid)
    asking = cid == ctx.conn_id
    info = {
        "remote_socket_address": _peer_address(proto),
        "interest_ops": 0 if asking else 1,
        "outstanding_requests": len(conn.queue) if conn else 0,
        "packets_received": (conn.packets_received if conn else 0) + (1 if asking else 0),
        "packets_sent": conn.packets_sent if conn else 0,
    }
    if brief or conn is None or not conn.session_id:
        return info
    info.update({
        "session_id": _signed(conn.session_id),
        "last_operation": _OP_NAMES.get(conn.last_op, "NA"),
        "established": ctx.wall_ms(conn.connected_ms),
        "session_timeout": conn.timeout_ms,
        "last_cxid": conn.last_cxid,
        "last_zxid": conn.last_zxid,
        "last_response_time": conn.last_response_ms,
        "last_latency": conn.last_latency_ms,
        "min_latency": conn.latency_min_ms or 0,
        "avg_latency": conn.latency_total_ms // conn.latency_count if conn.latency_count else 0,
        "max_latency": conn.latency_max_ms,
    })
    return info


def connections(ctx: AdminContext, brief: bool = False) -> list[dict]:
    return [connection_info(ctx, cid, p, brief) for cid, p in ctx.rt.protocols().items()
            if p.transport is not None]


def session_buckets(ctx: AdminContext) -> list[tuple[int, list[int]]]:
    """Live sessions grouped by expiry deadline (monotonic ms), soonest first."""
    buckets: dict[int, list[int]] = {}
    for sid, s in ctx.server.sessions.sessions.items():
        if s.expires_at_ms >= 0:   # a learner does not expire global sessions
            buckets.setdefault(s.expires_at_ms, []).append(sid)
    return sorted(buckets.items())


def data_watches(ctx: AdminContext) -> dict[str, list[int]]:
    """path -> sessions, data watches only.

    ZooKeeper's wchc / wchp / wchs and their JSON twins report the data-watch
    table (getData, exists, persistent); child watches count in mntr's
    watch_count only.
    """
    return {p: list(w) for p, w in sorted(ctx.server.watches.data.items()) if w}


def data_watches_by_session(ctx: AdminContext) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for path, sids in data_watches(ctx).items():
        for sid in sids:
            out.setdefault(sid, []).append(path)
    return dict(sorted(out.items()))


def _user_name() -> str:
    import getpass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def environment(ctx: AdminContext) -> list[tuple[str, str]]:
    """envi: ZooKeeper's keys where they apply, the Python runtime's otherwise."""
    return [
        ("zookeeper.version", VERSION_LINE),
        ("host.name", socket.gethostname()),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("python.path", os.pathsep.join(sys.path)),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", _user_name()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]


def last_snapshot(ctx: AdminContext) -> tuple[int, int]:
    """(zxid, mtime in seconds) of the newest snapshot file; (0, start time) if none."""
    from ..storage.datadir import SNAP_PREFIX, list_zxid_files, version_dir
    data_dir = ctx.config.data_dir
    if data_dir:
        snaps = list_zxid_files(version_dir(data_dir), SNAP_PREFIX)
        if snaps:
            zxid, path = snaps[-1]
            try:
                return zxid, int(os.path.getmtime(path))
            except OSError:
                pass
    return 0, ctx.wall_ms(ctx.server.stats.start_ms) // 1000


def digests(ctx: AdminContext) -> list[dict]:
    """hash: the tree digest at the last applied zxid (ZooKeeper keeps one per 128 txns)."""
    if not getattr(ctx.config, "digest_enabled", True):
        return []
    from ..storage.snapshot import tree_digest
    tree = ctx.server.tree
    return [{"zxid": tree.last_processed_zxid, "digest": tree_digest(tree), "digestVersion": 2}]


def reset_connection_stats(ctx: AdminContext) -> None:
    for conn in ctx.server.conns.values():
        conn.reset_stats()


def reset_server_stats(ctx: AdminContext) -> None:
    ctx.server.stats.reset()
    if ctx.metrics is not None:
        ctx.metrics.reset()


# ---- the command table --------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]  # primary name first, then aliases (3.8's Commands.java)
    run: Callable[[AdminContext], dict]


def _version_dir(path: str | None) -> str:
    return os.path.join(path, "version-2") if path else ""


def _configuration(ctx: AdminContext) -> dict:
    c = ctx.config
    return {
        "client_port": ctx.rt.port,
        "data_dir": _version_dir(c.data_dir),
        "data_log_dir": _version_dir(c.data_log_dir),
        "tick_time": c.tick_time_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.session_timeout_ms_min,
        "max_session_timeout": c.session_timeout_ms_max,
        "server_id": ctx.server_id(),
        "client_port_listen_backlog": c.client_port_listen_backlog,
    }


def _server_stats_fields(ctx: AdminContext) -> dict:
    st = ctx.server.stats
    data_size, log_size = ctx.rt.data_dir_sizes()
    m = ctx.metrics
    response_stats = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    return {
        "packets_sent": st.packets_sent,
        "packets_received": st.packets_received,
        "fsync_threshold_exceed_count": m.fsync_threshold_exceeded if m is not None else 0,
        "client_response_stats": dict(response_stats),
        "uptime": ctx.uptime_ms(),
        "data_dir_size": data_size,
        "log_dir_size": log_size,
        "provider_null": False,
        "server_state": ctx.mode,
        "last_processed_zxid": ctx.server.tree.last_processed_zxid,
        "outstanding_requests": st.outstanding,
        "avg_latency": round(st.latency_avg_ms, 4),
        "max_latency": st.latency_max_ms,
        "min_latency": st.latency_min_ms,
        "num_alive_client_connections": len(ctx.rt.protocols()),
        "auth_failed_count": 0,
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
    }


def _server_stats(ctx: AdminContext) -> dict:
    out = {
        "version": VERSION_LINE,
        "read_only": ctx.mode == "read-only",
        "server_stats": _server_stats_fields(ctx),
        "client_response": {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1},
    }
    q = ctx.quorum
    if q is not None and q.is_leader:
        out["proposal_stats"] = {"last_buffer_size": q.proposal_size_last,
                                 "min_buffer_size": q.proposal_size_min,
                                 "max_buffer_size": q.proposal_size_max}
    out["node_count"] = ctx.server.tree.node_count()
    return out


def _stats(ctx: AdminContext) -> dict:
    out = _server_stats(ctx)
    out["connections"] = connections(ctx, brief=True)
    out["secure_connections"] = []
    return out


def _dump(ctx: AdminContext) -> dict:
    return {
        "expiry_time_to_session_ids": {str(ctx.wall_ms(t)): [_signed(s) for s in sids]
                                       for t, sids in session_buckets(ctx)},
        "session_id_to_ephemeral_paths": {str(_signed(sid)): sorted(paths) for sid, paths
                                          in sorted(ctx.server.tree.ephemerals.items()) if paths},
    }


def _leader(ctx: AdminContext) -> dict:
    q = ctx.quorum
    if q is None:
        return {"error": "server is not initialized"}
    return {"is_leader": q.is_leader, "leader_id": q.leader_id, "leader_ip": q.leader_ip}


def _voting_view(ctx: AdminContext) -> dict:
    if ctx.config.is_standalone():
        return {"current_config": {}}
    view = {}
    for sid in ctx.config.participants():
        spec = ctx.config.servers[sid]
        client = ""
        if spec.client_port is not None:
            client = f"{spec.client_host or '0.0.0.0'}:{spec.client_port}"
        elif sid == ctx.config.myid:
            client = f"{ctx.config.client_port_address}:{ctx.rt.port}"
        view[str(sid)] = {"server_addresses": [f"{spec.host}:{spec.quorum_port}"],
                          "election_addresses": [f"{spec.host}:{spec.election_port}"],
                          "client_address": client, "learner_type": spec.role}
    return {"current_config": view}


def _address(host: str, port: int) -> dict:
    a = f"{host}:{port}"
    return {"empty": False, "all_addresses": [a], "all_reachable_addresses": [a], "one": a,
            "reachable_address": a, "wildcard_addresses": [f"0.0.0.0:{port}"],
            "all_ports": [port], "all_host_strings": [host],
            "all_reachable_addresses_or_all": [a], "reachable_or_one": a}


def _zabstate(ctx: AdminContext) -> dict:
    q = ctx.quorum
    if q is None:
        return {"voting": False, "zabstate": ""}
    spec = ctx.config.servers.get(q.my_id)
    out: dict = {"myid": q.my_id, "is_leader": q.is_leader}
    if spec is not None:
        out["quorum_address"] = _address(spec.host, spec.quorum_port)
        out["election_address"] = _address(spec.host, spec.election_port)
    out.update({
        "client_address": f"{ctx.config.client_port_address}:{ctx.rt.port}",
        "voting": q.voting,
        "last_zxid": f"0x{hex_id(q.last_zxid)}",
        "zab_epoch": q.last_zxid >> 32,
        "zab_counter": q.last_zxid & 0xFFFFFFFF,
        "zabstate": q.zab_state,
    })
    return out


def _initial_configuration(ctx: AdminContext) -> dict:
    source = ctx.config.source
    text = None
    if source and os.path.isfile(source):
        with open(source, encoding="utf-8", errors="replace") as f:
            text = f.read()
    return {"initial_configuration": text}


def _observers(ctx: AdminContext) -> dict:
    q = ctx.quorum
    return {"synced_observers": q.synced_observers if q else 0,
            "observers": list(q.observers) if q else []}


def _crst(ctx: AdminContext) -> dict:
    reset_connection_stats(ctx)
    return {}


def _srst(ctx: AdminContext) -> dict:
    reset_server_stats(ctx)
    return {}


def _snapshot_fields(ctx: AdminContext) -> dict:
    zxid, ts = last_snapshot(ctx)
    return {"zxid": hex_id(zxid), "timestamp": ts}


def _watch_summary(ctx: AdminContext) -> dict:
    by_path = data_watches(ctx)
    sessions = {s for sids in by_path.values() for s in sids}
    return {"num_connections": len(sessions), "num_paths": len(by_path),
            "num_total_watches": sum(len(s) for s in by_path.values())}


def _system_properties(ctx: AdminContext) -> dict:
    props = {f"zookeeper.{k}": v for k, v in sorted(ctx.config.raw.items())
             if not k.startswith(("server.", "group.", "weight.", "zookeeper."))}
    return dict(sorted((dict(environment(ctx)) | props).items()))


_TABLE = [
    Command(("configuration", "conf", "config"), _configuration),
    Command(("connection_stat_reset", "crst"), _crst),
    Command(("connections", "cons"),
            lambda ctx: {"connections": connections(ctx), "secure_connections": []}),
    Command(("dirs",), lambda ctx: dict(zip(("datadir_size", "logdir_size"),
                                            ctx.rt.data_dir_sizes()))),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), lambda ctx: dict(environment(ctx))),
    Command(("get_trace_mask", "gtmk"), lambda ctx: {"tracemask": TRACE_MASK}),
    Command(("hash",), lambda ctx: {"digests": digests(ctx)}),
    Command(("initial_configuration", "icfg"), _initial_configuration),
    Command(("is_read_only", "isro"), lambda ctx: {"read_only": ctx.mode == "read-only"}),
    Command(("last_snapshot", "lsnp"), _snapshot_fields),
    Command(("leader", "lead"), _leader),
    Command(("monitor", "mntr"), lambda ctx: dict(monitor_values(ctx))),
    Command(("observer_connection_stat_reset", "orst"), lambda ctx: {}),
    Command(("observers", "obsr"), _observers),
    Command(("ruok",), lambda ctx: {}),
    Command(("server_stats", "srvr"), _server_stats),
    Command(("set_trace_mask", "stmk"), lambda ctx: {"tracemask": TRACE_MASK}),
    Command(("stat_reset", "srst"), _srst),
    Command(("stats", "stat"), _stats),
    Command(("system_properties", "sysp"), _system_properties),
    Command(("voting_view",), _voting_view),
    Command(("watch_summary", "wchs"), _watch_summary),
    Command(("watches", "wchc"), lambda ctx: {"session_id_to_watched_paths": {
        str(_signed(s)): p for s, p in data_watches_by_session(ctx).items()}}),
    Command(("watches_by_path", "wchp"), lambda ctx: {"path_to_session_ids": {
        p: [_signed(s) for s in sids] for p, sids in data_watches(ctx).items()}}),
    Command(("zabstate",), _zabstate),
]

COMMANDS: dict[str, Command] = {c.names[0]: c for c in _TABLE}
_BY_NAME: dict[str, Command] = {n: c for c in _TABLE for n in c.names}
assert len(_BY_NAME) == sum(len(c.names) for c in _TABLE), "duplicate command name"


def lookup(name: str) -> Command | None:
    """A command by its primary name or any alias (``mntr`` -> monitor)."""
    return _BY_NAME.get(name)


def run_command(name: str, ctx: AdminContext) -> dict:
    """The JSON object ZooKeeper's AdminServer returns for ``name``: the
    command's fields, then ``command`` (its primary name) and ``error``."""
    cmd = lookup(name)
    if cmd is None:
        return {"command": name, "error": f"Unknown command: {name}"}
    response = cmd.run(ctx)
    response["command"] = cmd.names[0]
    response.setdefault("error", None)
    return response
