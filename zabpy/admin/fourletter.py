"""Four-letter words: plain-text answers on the client port.

Each word formats facts of ``commands`` (computed once for both the 4lw and
the AdminServer) as the exact text ZooKeeper 3.8 prints, byte for byte where
zabpy has the fact (compared with Debian's 3.8.0 in tests/test_fourletter.py),
so that scripts and monitoring that parse ``srvr`` / ``mntr`` / ``cons`` keep
working. Some replies end without a newline (``ruok``, ``isro``, ``gtmk``),
as in ZooKeeper.
"""

from __future__ import annotations

import struct
import time

from . import commands as C
from .commands import AdminContext, hex_id

__all__ = ["FourLetterContext", "render_four_letter_word", "VERSION_LINE", "WORDS"]

VERSION_LINE = C.VERSION_LINE
FourLetterContext = AdminContext  # the name the runtime imports


def _java_double(v: float) -> str:
    return repr(round(float(v), 4))


def _stats_lines(ctx: AdminContext) -> str:
    """ServerStats.toString plus the node count (and a leader's proposal sizes)."""
    srv, st = ctx.server, ctx.server.stats
    text = (f"Latency min/avg/max: {st.latency_min_ms}/{_java_double(st.latency_avg_ms)}/"
            f"{st.latency_max_ms}\n"
            f"Received: {st.packets_received}\n"
            f"Sent: {st.packets_sent}\n"
            f"Connections: {len(ctx.rt.protocols())}\n"
            f"Outstanding: {st.outstanding}\n"
            f"Zxid: 0x{hex_id(srv.tree.last_processed_zxid)}\n"
            f"Mode: {ctx.mode}\n"
            f"Node count: {srv.tree.node_count()}\n")
    q = ctx.quorum
    if q is not None and q.is_leader:
        text += (f"Proposal sizes last/min/max: {q.proposal_size_last}/{q.proposal_size_min}/"
                 f"{q.proposal_size_max}\n")
    return text


def _srvr(ctx: AdminContext) -> str:
    return f"Zookeeper version: {VERSION_LINE}\n" + _stats_lines(ctx)


def _conn_line(info: dict) -> str:
    """ServerCnxn.dumpConnectionInfo: brief fields always, the rest with a session."""
    ops = info["interest_ops"]
    text = (f" /{info['remote_socket_address']}[{ops:x}](queued={info['outstanding_requests']},"
            f"recved={info['packets_received']},sent={info['packets_sent']}")
    if "session_id" in info:
        text += (f",sid=0x{hex_id(info['session_id'])},lop={info['last_operation']},"
                 f"est={info['established']},to={info['session_timeout']}")
        if info["last_cxid"] >= 0:
            text += f",lcxid=0x{hex_id(info['last_cxid'])}"
        text += (f",lzxid=0x{hex_id(info['last_zxid'])},lresp={info['last_response_time']},"
                 f"llat={info['last_latency']},minlat={info['min_latency']},"
                 f"avglat={info['avg_latency']},maxlat={info['max_latency']}")
    return text + ")"


def _stat(ctx: AdminContext) -> str:
    clients = "".join(_conn_line(i) + "\n" for i in C.connections(ctx, brief=True))
    return f"Zookeeper version: {VERSION_LINE}\nClients:\n{clients}\n" + _stats_lines(ctx)


def _cons(ctx: AdminContext) -> str:
    return "".join(_conn_line(i) + "\n" for i in C.connections(ctx)) + "\n"


def _java_date(wall_ms: int) -> str:
    """java.util.Date.toString(): ``Sat Nov 28 04:54:53 UTC 2026``."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(wall_ms / 1000))


def _dump(ctx: AdminContext) -> str:
    srv = ctx.server
    buckets = C.session_buckets(ctx)
    lines = ["SessionTracker dump:",
             f"Session Sets ({len(buckets)})/({len(srv.sessions.sessions)}):"]
    for deadline, sids in buckets:
        lines.append(f"{len(sids)} expire at {_java_date(ctx.wall_ms(deadline))}:")
        lines.extend(f"\t0x{hex_id(s)}" for s in sids)
    owners = {sid: paths for sid, paths in sorted(srv.tree.ephemerals.items()) if paths}
    lines += ["ephemeral nodes dump:", f"Sessions with Ephemerals ({len(owners)}):"]
    for sid, paths in owners.items():
        lines.append(f"0x{hex_id(sid)}:")
        lines.extend(f"\t{p}" for p in sorted(paths))
    lines += _connections_dump(ctx)
    return "\n".join(lines) + "\n"


def _connections_dump(ctx: AdminContext) -> list[str]:
    """Connections grouped by when their session expires (a connection
    without a session is due at once)."""
    sessions = ctx.server.sessions.sessions
    groups: dict[int, list[str]] = {}
    for cid, proto in ctx.rt.protocols().items():
        conn = ctx.server.conns.get(cid)
        sid = conn.session_id if conn else 0
        s = sessions.get(sid)
        deadline = s.expires_at_ms if s is not None else ctx.now_ms()
        groups.setdefault(deadline, []).append(
            f"\tip: /{C._peer_address(proto)} sessionId: 0x{hex_id(sid)}")
    total = sum(len(g) for g in groups.values())
    lines = ["Connections dump:", f"Connections Sets ({len(groups)})/({total}):"]
    for deadline, members in sorted(groups.items()):
        lines.append(f"{len(members)} expire at {_java_date(ctx.wall_ms(deadline))}:")
        lines.extend(members)
    return lines


def _wchs(ctx: AdminContext) -> str:
    s = C.run_command("watch_summary", ctx)
    return (f"{s['num_connections']} connections watching {s['num_paths']} paths\n"
            f"Total watches:{s['num_total_watches']}\n")


def _wchc(ctx: AdminContext) -> str:
    out = [f"0x{hex_id(sid)}\n" + "".join(f"\t{p}\n" for p in paths)
           for sid, paths in C.data_watches_by_session(ctx).items()]
    return "".join(out) + "\n"


def _wchp(ctx: AdminContext) -> str:
    out = [path + "\n" + "".join(f"\t0x{hex_id(s)}\n" for s in sids)
           for path, sids in C.data_watches(ctx).items()]
    return "".join(out) + "\n"


def _conf(ctx: AdminContext) -> str:
    data_size, log_size = ctx.rt.data_dir_sizes()
    return ctx.config.conf_text(data_dir_size=data_size, data_log_size=log_size,
                                client_port=ctx.rt.port)


def _dirs(ctx: AdminContext) -> str:
    data_size, log_size = ctx.rt.data_dir_sizes()
    return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"


def _crst(ctx: AdminContext) -> str:
    C.reset_connection_stats(ctx)
    return "Connection stats reset.\n"


def _srst(ctx: AdminContext) -> str:
    C.reset_server_stats(ctx)
    return "Server stats reset.\n"


def _mntr(ctx: AdminContext) -> str:
    return "".join(f"zk_{k}\t{v}\n" for k, v in C.monitor_values(ctx))


def _hash(ctx: AdminContext) -> str:
    return "".join(f"{hex_id(d['zxid'])}: {d['digest']}\n" for d in C.digests(ctx))


WORDS = {
    "ruok": lambda ctx: "imok",
    "srvr": _srvr,
    "stat": _stat,
    "envi": lambda ctx: "Environment:\n" + "".join(f"{k}={v}\n" for k, v in C.environment(ctx)),
    "conf": _conf,
    "cons": _cons,
    "crst": _crst,
    "srst": _srst,
    "dump": _dump,
    "mntr": _mntr,
    "wchs": _wchs,
    "wchc": _wchc,
    "wchp": _wchp,
    "isro": lambda ctx: "ro" if ctx.mode == "read-only" else "rw",
    "dirs": _dirs,
    "gtmk": lambda ctx: str(C.TRACE_MASK),
    "stmk": lambda ctx: str(C.TRACE_MASK),
    "hash": _hash,
}


def render_four_letter_word(word: str, ctx: AdminContext, arg: bytes = b"") -> str:
    """The reply to ``word``; "" for a word ZooKeeper does not know."""
    if word == "stmk" and len(arg) == 8:
        # ZooKeeper echoes the mask it was given; zabpy has no tracing to set.
        return str(struct.unpack(">q", arg)[0])
    fn = WORDS.get(word)
    return fn(ctx) if fn is not None else ""
