"""Four-letter words: plain-text answers on the client port.

Each word is a function of a ``FourLetterContext`` (the running server, seen
through the runtime) returning the text ZooKeeper 3.8 prints, so that
scripts and monitoring that parse ``srvr`` / ``mntr`` keep working.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time

from .. import ZOOKEEPER_VERSION, __version__

__all__ = ["FourLetterContext", "render_four_letter_word", "VERSION_LINE"]

# kazoo's server_version() parses "zookeeper.version=3.8.0-..." from envi.
VERSION_LINE = f"{ZOOKEEPER_VERSION}-zabpy-{__version__}, built on 01/01/2026 00:00 GMT"


class FourLetterContext:
    def __init__(self, runtime, conn_id: int | None = None):
        self.rt = runtime
        self.conn_id = conn_id

    @property
    def server(self):
        return self.rt.server

    @property
    def mode(self) -> str:
        return getattr(self.rt, "mode", "standalone")


def _hex(v: int) -> str:
    return f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"


def _latency(ctx: FourLetterContext) -> str:
    st = ctx.server.stats
    return f"{st.latency_min_ms}/{st.latency_avg_ms:.4f}/{st.latency_max_ms}"


def _srvr(ctx: FourLetterContext) -> str:
    srv = ctx.server
    st = srv.stats
    return (f"Zookeeper version: {VERSION_LINE}\n"
            f"Latency min/avg/max: {_latency(ctx)}\n"
            f"Received: {st.packets_received}\n"
            f"Sent: {st.packets_sent}\n"
            f"Connections: {len(ctx.rt.protocols())}\n"
            f"Outstanding: {st.outstanding}\n"
            f"Zxid: {_hex(srv.tree.last_processed_zxid)}\n"
            f"Mode: {ctx.mode}\n"
            f"Node count: {srv.tree.node_count()}\n")


def _cons_lines(ctx: FourLetterContext) -> list[str]:
    srv = ctx.server
    lines = []
    for cid, p in ctx.rt.protocols().items():
        conn = srv.conns.get(cid)
        if conn is None or p.transport is None:
            continue
        peer = p.transport.get_extra_info("peername") or ("?", 0)
        lines.append(
            f" /{peer[0]}:{peer[1]}[1](queued={len(conn.queue)},recved={conn.packets_received},"
            f"sent={conn.packets_sent},sid={_hex(conn.session_id)},lop=NA,"
            f"est={conn.connected_ms},to={conn.timeout_ms},lcxid=0x0,"
            f"lzxid={_hex(conn.last_zxid)},lresp={conn.connected_ms},"
            f"llat={conn.last_latency_ms},minlat=0,avglat=0,maxlat=0)")
    return lines


def _stat(ctx: FourLetterContext) -> str:
    srv = ctx.server
    st = srv.stats
    clients = "\n".join(_cons_lines(ctx))
    return (f"Zookeeper version: {VERSION_LINE}\nClients:\n{clients}\n\n"
            f"Latency min/avg/max: {_latency(ctx)}\n"
            f"Received: {st.packets_received}\nSent: {st.packets_sent}\n"
            f"Connections: {len(ctx.rt.protocols())}\nOutstanding: {st.outstanding}\n"
            f"Zxid: {_hex(srv.tree.last_processed_zxid)}\nMode: {ctx.mode}\n"
            f"Node count: {srv.tree.node_count()}\n")


def _envi(ctx: FourLetterContext) -> str:
    env = [
        ("zookeeper.version", VERSION_LINE),
        ("host.name", socket.gethostname()),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", os.environ.get("USER", "")),
        ("user.dir", os.getcwd()),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in env)


def mntr_values(ctx: FourLetterContext) -> list[tuple[str, object]]:
    srv = ctx.server
    st = srv.stats
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1
    try:
        import resource
        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        max_fds = -1
    return [
        ("zk_version", VERSION_LINE),
        ("zk_server_state", ctx.mode),
        ("zk_avg_latency", round(st.latency_avg_ms, 4)),
        ("zk_max_latency", st.latency_max_ms),
        ("zk_min_latency", st.latency_min_ms),
        ("zk_packets_received", st.packets_received),
        ("zk_packets_sent", st.packets_sent),
        ("zk_num_alive_connections", len(ctx.rt.protocols())),
        ("zk_outstanding_requests", st.outstanding),
        ("zk_znode_count", srv.tree.node_count()),
        ("zk_watch_count", srv.watches.count()),
        ("zk_ephemerals_count", srv.tree.ephemeral_count()),
        ("zk_approximate_data_size", srv.tree.approximate_data_size()),
        ("zk_open_file_descriptor_count", fds),
        ("zk_max_file_descriptor_count", max_fds),
        ("zk_global_sessions", len(srv.sessions.sessions)),
        ("zk_local_sessions", 0),
        ("zk_uptime", int(time.monotonic() * 1000) - st.start_ms),
        ("zk_fsync_count", st.fsync_count),
        ("zk_last_proposal_size", -1),
    ]


def _mntr(ctx: FourLetterContext) -> str:
    return "".join(f"{k}\t{v}\n" for k, v in mntr_values(ctx))


def _wchs(ctx: FourLetterContext) -> str:
    w = ctx.server.watches
    by_path = w.by_path()
    by_sess = w.by_session()
    return (f"{len(by_sess)} connections watching {len(by_path)} paths\n"
            f"Total watches:{w.count()}\n")


def _wchc(ctx: FourLetterContext) -> str:
    out = []
    for sid, paths in ctx.server.watches.by_session().items():
        out.append(_hex(sid) + "\n" + "".join(f"\t{p}\n" for p in paths))
    return "".join(out)


def _wchp(ctx: FourLetterContext) -> str:
    out = []
    for path, sids in ctx.server.watches.by_path().items():
        out.append(path + "\n" + "".join(f"\t{_hex(s)}\n" for s in sids))
    return "".join(out)


def _dump(ctx: FourLetterContext) -> str:
    srv = ctx.server
    lines = ["SessionTracker dump:", f"Session Sets ({len(srv.sessions.sessions)}):"]
    for sid, s in srv.sessions.sessions.items():
        lines.append(f"{_hex(sid)}\t{s.timeout_ms}ms")
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(srv.tree.ephemerals)}):")
    for sid, paths in srv.tree.ephemerals.items():
        lines.append(_hex(sid) + ":")
        lines.extend(f"\t{p}" for p in paths)
    lines.append("Connections dump:")
    lines.append(f"Connections Sets ({len(ctx.rt.protocols())}):")
    return "\n".join(lines) + "\n"


def _conf(ctx: FourLetterContext) -> str:
    data_size, log_size = ctx.rt.data_dir_sizes()
    return ctx.rt.config.conf_text(data_dir_size=data_size, data_log_size=log_size,
                                   client_port=ctx.rt.port)


def _dirs(ctx: FourLetterContext) -> str:
    data_size, log_size = ctx.rt.data_dir_sizes()
    return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"


def _crst(ctx: FourLetterContext) -> str:
    for conn in ctx.server.conns.values():
        conn.packets_received = conn.packets_sent = 0
        conn.last_latency_ms = 0
    return "Connection stats reset.\n"


def _srst(ctx: FourLetterContext) -> str:
    ctx.server.stats.reset()
    return "Server stats reset.\n"


_WORDS = {
    "ruok": lambda ctx: "imok",
    "srvr": _srvr,
    "stat": _stat,
    "envi": _envi,
    "conf": _conf,
    "cons": lambda ctx: "\n".join(_cons_lines(ctx)) + "\n\n",
    "crst": _crst,
    "srst": _srst,
    "dump": _dump,
    "mntr": _mntr,
    "wchs": _wchs,
    "wchc": _wchc,
    "wchp": _wchp,
    "isro": lambda ctx: "rw",
    "dirs": _dirs,
    "gtmk": lambda ctx: "0",
    "stmk": lambda ctx: "0",
    "hash": lambda ctx: "",
}


def render_four_letter_word(word: str, ctx: FourLetterContext, arg: bytes = b"") -> str:
    fn = _WORDS.get(word)
    if fn is None:
        return ""
    return fn(ctx)
