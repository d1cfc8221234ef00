"""Checkers for the lock, ephemeral and watch workloads (recipes.py), from
their recorded histories. Each returns a ``Verdict`` (checks.py).

lock (kazoo's Lock recipe over ZooKeeper's ephemeral sequential nodes):
never two holders at once. A client holds from acquire's return until it
calls release, or until its connection is reported lost or suspended,
whichever comes first (a holder that lost its connection must assume its
session, and so the lock, may be gone). Two such intervals of different
clients that overlap are two holders.

ephemerals (Programmer's Guide, "Ephemeral Nodes": they live as long as
their session): a session's own ``exists`` on its ephemeral answered while
the session lived finds it, owned by that session; after the run, when
every session was closed or had time to expire, no member holds any.

watches (Programmer's Guide, "ZooKeeper Watches": a watch is a one-time
trigger; "a client will see a watch event for a znode it is watching
before seeing the new data that corresponds to that znode"): every event
fires exactly one registration; a read on the same connection that sees a
newer version than a pending registration read comes after that
registration's event; after an event, the next registration reads a newer
version; and one connection's events come in the zxid order of the txns
that triggered them (Programmer's Guide: "Watches are ordered with respect
to other events, other watches, and asynchronous replies").
"""

from __future__ import annotations

from .checks import Anomaly, Verdict, _rec
from .workload import ClientLog

__all__ = ["check_lock", "check_ephemerals", "check_watches", "register_zxids"]

MAX_ANOMALIES = 20


def _holds(log: ClientLog) -> list[tuple[float, float, object]]:
    out = []
    for r in log.records:
        if r.kind != "lock" or r.outcome != "ok":
            continue
        start = r.ret
        end = r.result if r.result is not None else float("inf")
        lost_during = any(r.call <= t <= start and st == "LOST" for t, st in log.states)
        if lost_during:
            continue
        for t, st in log.states:
            if t >= start and st != "CONNECTED":
                end = min(end, t)
                break
        out.append((start, end, r))
    return out


def check_lock(logs: list[ClientLog]) -> Verdict:
    holds = sorted((h for log in logs if log.workload == "lock" for h in _holds(log)),
                   key=lambda h: h[0])
    out: list[Anomaly] = []
    latest = None          # the hold reaching furthest so far
    for h in holds:
        if latest is not None and h[0] < latest[1] and h[2].client != latest[2].client:
            out.append(Anomaly(
                "lock: two holders",
                f"client {h[2].client} acquired at {h[0]:.3f}s while client "
                f"{latest[2].client} held it (until {latest[1]:.3f}s)",
                [_rec(latest[2]), _rec(h[2])]))
        if latest is None or h[1] > latest[1]:
            latest = h
    return Verdict(out[:MAX_ANOMALIES], len(holds))


def check_ephemerals(logs: list[ClientLog], left: dict[str, list[str]]) -> Verdict:
    out: list[Anomaly] = []
    created = {}
    checked = 0
    for log in logs:
        if log.workload != "ephemeral":
            continue
        for r in log.records:
            if r.kind == "eph-create" and r.outcome == "ok":
                created[r.value] = r
            elif r.kind == "eph-check" and r.outcome == "ok" and r.value in created:
                checked += 1
                made = created[r.value]
                if r.session != made.session:
                    continue        # a later session of the same client (cannot happen)
                if r.result is None:
                    out.append(Anomaly("ephemeral: gone while its session lived",
                                       f"{r.value} absent for its own session 0x{r.session:x}",
                                       [_rec(made), _rec(r)]))
                elif r.result != r.session:
                    out.append(Anomaly("ephemeral: wrong owner",
                                       f"{r.value} owned by 0x{r.result:x}, made by session "
                                       f"0x{r.session:x}", [_rec(made), _rec(r)]))
    orphans = {r.value: r for log in logs for r in log.records if r.kind == "orphan"}
    for host, children in sorted(left.items()):
        for child in children[:MAX_ANOMALIES]:
            path = f"/chaos-eph/{child}"
            why = orphans.get(path) or created.get(path)
            out.append(Anomaly("ephemeral: outlived its session",
                               f"{path} still on {host} after every session ended",
                               [_rec(why)] if why is not None else []))
    checked += sum(1 for r in orphans.values() if r.outcome == "ok")
    return Verdict(out[:MAX_ANOMALIES], checked)


def register_zxids(records) -> dict[int, int]:
    """The register's version -> mzxid, from every read and acknowledged CAS."""
    out = {}
    for r in records:
        if r.outcome == "ok" and r.zxid is not None:
            out[r.result if r.kind == "cas" else r.version] = r.zxid
    return out


def check_watches(logs: list[ClientLog], version_zxid: dict[int, int] | None = None,
                  seq_czxid: dict[int, int] | None = None) -> Verdict:
    """``version_zxid``: the register's version -> mzxid; ``seq_czxid``: the
    set's sequence number -> czxid. With them, each event's triggering txn
    is known (a data watch set at version v fires for the write of v+1; a
    child watch set at cversion c for the create numbered c), and events of
    one connection must come in zxid order."""
    out: list[Anomaly] = []
    checked = ordered = 0
    for log in logs:
        if log.workload != "watch":
            continue
        found, n = _event_order(log, version_zxid or {}, seq_czxid or {})
        out += found
        ordered += n
        prev: dict[str, object] = {}
        for r in log.records:
            if r.outcome != "ok":
                continue
            if r.kind == "watch-reg":
                checked += 1
                kind = r.value.get("kind", "data")
                p = prev.get(kind)
                if (p is not None and p.value["events"] and p.result == r.result
                        and r.version <= p.version):
                    out.append(Anomaly("watch: event without a newer version",
                                       f"client {log.id}: {kind} watch set at v{p.version}, "
                                       f"fired, then read v{r.version}", [_rec(p), _rec(r)]))
                prev[kind] = r
            elif r.kind == "watch-read":
                checked += 1
                v = r.value
                if (r.version > v["reg_version"] and v["events"] == 0 and v["none"] == 0
                        and r.result == v["reg_gen"]):
                    out.append(Anomaly("watch: new data before its event",
                                       f"client {log.id} session 0x{r.session:x}: watching "
                                       f"from v{v['reg_version']} (set at {v['reg_call']:.3f}s), "
                                       f"read v{r.version} on the same connection with no "
                                       f"event", [_rec(r)]))
    events = sum(len(log.raw_events) for log in logs if log.workload == "watch")
    return Verdict(out[:MAX_ANOMALIES], checked, notes=[
        f"{events} events, {ordered} of them with a known triggering txn checked for zxid order"])


def _event_order(log: ClientLog, version_zxid: dict[int, int],
                 seq_czxid: dict[int, int]) -> tuple[list[Anomaly], int]:
    out = []
    ordered = 0
    last: tuple[int, int, str] | None = None      # (gen, zxid, what)
    for gen, etype, path, fired, reg in log.raw_events:
        # A record (the registration fired) or, in hand-made histories, its version.
        at = getattr(reg, "version", reg)
        if fired != 1:
            out.append(Anomaly("watch: event fired no registration",
                               f"client {log.id}: a {etype} event on {path} arrived with "
                               f"{fired} registrations pending (fired twice, or never set)"))
            continue
        if at is None:
            continue
        if etype == "CHILD":
            zxid, what = seq_czxid.get(at), f"child watch at cversion {at}"
        else:
            zxid, what = version_zxid.get(at + 1), f"data watch at v{at}"
        if zxid is None:
            continue
        ordered += 1
        if last is not None and last[0] == gen and zxid < last[1]:
            out.append(Anomaly("watch: events out of zxid order",
                               f"client {log.id}: {what} (txn {zxid:#x}) fired after "
                               f"{last[2]} (txn {last[1]:#x})"))
        last = (gen, zxid, what)
    return out, ordered
