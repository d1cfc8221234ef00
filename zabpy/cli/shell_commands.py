"""What each `zabpy shell` command does, one small function per command.

A command receives the ``ShellContext`` (the session, the history, where to
write) and a ``ParsedCommand`` (flags and words already checked against
``shell_text.COMMANDS``). It writes its output through ``ctx.out`` and signals
failure by raising ``CommandError`` (exit 1) or ``UsageError`` (exit 2); the
interactive loop and one-shot mode treat those the same way, which is why one
table, ``HANDLERS``, serves both.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

from kazoo.exceptions import RolledBackError, ZookeeperError

from zabpy import limits
from zabpy.jute import records
from zabpy.jute.constants import AddWatchMode, CreateMode, OpCode, WatcherType

from .shell_client import OPEN_ACL_UNSAFE, ShellSession
from .shell_quota import delquota, listquota, setquota
from .shell_text import (CommandError, ParsedCommand, UsageError, format_acls, format_children,
                         format_client_config, format_data, format_stat, keeper_error_message,
                         parse_acl,
                         usage_text, validate_path)

__all__ = ["ShellContext", "HANDLERS", "run_parsed"]


@dataclass
class ShellContext:
    server: str
    timeout_ms: int
    out: Callable[[str], None]
    session: ShellSession | None = None
    history: list[str] = field(default_factory=list)
    print_watches: bool = True
    quit: bool = False
    # Builds a session for `connect`; the caller decides how events print.
    make_session: Callable[[str], ShellSession] | None = None
    # Messages zkCli writes on stderr without failing the command.
    err: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr,
                                                                  flush=True))

    def need_session(self) -> ShellSession:
        if self.session is None or not self.session.connected:
            raise CommandError("Not connected")
        return self.session


def run_parsed(ctx: ShellContext, cmd: ParsedCommand) -> None:
    HANDLERS[cmd.spec.name](ctx, cmd)


def _version_flag(cmd: ParsedCommand) -> int:
    if "v" not in cmd.flags:
        return -1
    try:
        return int(cmd.flags["v"])
    except ValueError:
        raise UsageError(f"-v argument must be an int value: {cmd.flags['v']}") from None


# ---- reads ----------------------------------------------------------------------

def _ls(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    if cmd.has("R"):
        for p in _subtree_bfs(s, path):
            ctx.out(p)
        return
    watch = _noop_watch if cmd.has("w") else None
    children, stat = s.call(lambda: s.client.get_children(path, watch=watch, include_data=True),
                            path)
    ctx.out(format_children(children))
    if cmd.has("s"):
        ctx.out(format_stat(stat))


def _subtree_bfs(s: ShellSession, root: str) -> list[str]:
    """``ls -R``: the root, then each level, children sorted (as zkCli)."""
    order, i = [root], 0
    while i < len(order):
        parent = order[i]
        i += 1
        try:
            children = s.call(lambda: s.client.get_children(parent), parent)
        except CommandError:
            if parent == root:
                raise
            continue  # deleted while we walked; zkCli skips it too
        base = parent.rstrip("/")
        order.extend(f"{base}/{c}" for c in sorted(children))
    return order


def _get(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    watch = _noop_watch if cmd.has("w") else None
    data, stat = s.call(lambda: s.client.get(path, watch=watch), path)
    ctx.out(format_data(data))
    if cmd.has("s"):
        ctx.out(format_stat(stat))


def _stat(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    watch = _noop_watch if cmd.has("w") else None
    stat = s.call(lambda: s.client.exists(path, watch=watch), path)
    if stat is None:
        raise CommandError(f"Node does not exist: {path}")
    ctx.out(format_stat(stat))


def _get_acl(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    acls, stat = s.call(lambda: s.client.get_acls(path), path)
    ctx.out(format_acls([(a.perms, a.id.scheme, a.id.id) for a in acls]))
    if cmd.has("s"):
        ctx.out(format_stat(stat))


def _get_all_children_number(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    reply = s.jute(OpCode.getAllChildrenNumber,
                   records.GetAllChildrenNumberRequest(s.chroot(path)),
                   records.GetAllChildrenNumberResponse, path)
    ctx.out(str(reply.totalNumber))


def _get_ephemerals(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0] if cmd.args else "/")
    reply = s.jute(OpCode.getEphemerals, records.GetEphemeralsRequest(s.chroot(path)),
                   records.GetEphemeralsResponse, path)
    paths = [s.client.unchroot(p) for p in reply.ephemerals]
    ctx.out("[" + ", ".join(paths) + "]")


def _whoami(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    reply = s.jute(OpCode.whoAmI, _Empty(), records.WhoAmIResponse, None)
    ctx.out("Auth scheme: User")
    for info in reply.clientInfo:
        ctx.out(f"{info.authScheme}: {info.user}")


def _config(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = "/zookeeper/config"
    # getConfig ignores any chroot, so this goes around kazoo's path prefixing.
    reply = s.jute(OpCode.getData, records.GetDataRequest(path, cmd.has("w")),
                   records.GetDataResponse, path)
    text = format_data(reply.data) if reply.data is not None else ""
    ctx.out(format_client_config(text) if cmd.has("c") else text)
    if cmd.has("s"):
        ctx.out(format_stat(reply.stat))


def _sync(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    s.call(lambda: s.client.sync(path), path)
    ctx.out("Sync is OK")


# ---- writes ---------------------------------------------------------------------

def _create(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    mode, ttl = _create_mode(cmd)
    path = validate_path(cmd.args[0], sequential=mode.is_sequential)
    data = cmd.args[1].encode("utf-8") if len(cmd.args) > 1 else None
    acls = parse_acl(cmd.args[2]) if len(cmd.args) > 2 else OPEN_ACL_UNSAFE
    created = s.create(path, data, acls, mode, ttl)
    ctx.out(f"Created {created}")


def _create_mode(cmd: ParsedCommand) -> tuple[CreateMode, int | None]:
    seq, eph, container = cmd.has("s"), cmd.has("e"), cmd.has("c")
    if container and (seq or eph):
        raise UsageError("-c cannot be combined with -s or -e. Containers cannot be "
                         "ephemeral or sequential.")
    ttl = None
    if "t" in cmd.flags:
        try:
            ttl = int(cmd.flags["t"])
        except ValueError:
            raise UsageError("-t argument must be a long value") from None
        if eph:
            raise UsageError("TTLs cannot be used with Ephemeral znodes")
        if container:
            raise UsageError("TTLs cannot be used with Container znodes")
        if not 0 < ttl <= limits.TTL_MS_MAX:
            raise UsageError(f"ttl must be positive and cannot be larger than: "
                             f"{limits.TTL_MS_MAX}")
        return (CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL if seq
                else CreateMode.PERSISTENT_WITH_TTL), ttl
    if container:
        return CreateMode.CONTAINER, None
    mode = {(False, False): CreateMode.PERSISTENT, (True, False): CreateMode.PERSISTENT_SEQUENTIAL,
            (False, True): CreateMode.EPHEMERAL,
            (True, True): CreateMode.EPHEMERAL_SEQUENTIAL}[(seq, eph)]
    return mode, None


def _set(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    version = _version_flag(cmd)
    data = cmd.args[1].encode("utf-8")
    stat = s.call(lambda: s.client.set(path, data, version=version), path)
    if cmd.has("s"):
        ctx.out(format_stat(stat))


def _delete(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    version = _version_flag(cmd)
    s.call(lambda: s.client.delete(path, version=version), path)


def _deleteall(ctx: ShellContext, cmd: ParsedCommand) -> None:
    """Delete deepest nodes first, ``-b`` deletes per multi (zkCli's batch)."""
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    batch = limits.SHELL_DELETEALL_BATCH_DEFAULT
    if "b" in cmd.flags:
        try:
            batch = int(cmd.flags["b"])
        except ValueError:
            raise UsageError("batch size must be a positive integer") from None
        if batch <= 0:
            raise UsageError("batch size must be a positive integer")
    doomed = list(reversed(_subtree_bfs(s, path)))
    for start in range(0, len(doomed), batch):
        chunk = doomed[start:start + batch]
        s.call(lambda: _delete_batch(s, chunk), chunk[0])


def _delete_batch(s: ShellSession, paths: list[str]) -> None:
    """One multi of deletes; a failed multi reports its first real error
    (the other ops only say they were rolled back)."""
    tx = s.client.transaction()
    for p in paths:
        tx.delete(p)
    results = tx.commit()
    for p, result in zip(paths, results):
        if isinstance(result, RolledBackError) or not isinstance(result, ZookeeperError):
            continue
        raise CommandError(keeper_error_message(result.code, p))


def _set_acl(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    acls = s.kazoo_acls(parse_acl(cmd.args[1]))
    version = _version_flag(cmd)
    targets = _subtree_bfs(s, path) if cmd.has("R") else [path]
    stat = None
    for target in targets:
        stat = s.call(lambda: s.client.set_acls(target, acls, version=version), target)
    if cmd.has("s") and stat is not None:
        ctx.out(format_stat(stat))


def _addauth(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    scheme = cmd.args[0]
    credential = cmd.args[1] if len(cmd.args) > 1 else ""
    s.call(lambda: s.client.add_auth(scheme, credential), None)


# ---- watches --------------------------------------------------------------------

def _noop_watch(event) -> None:
    """kazoo sets the watch flag only when given a callable; the event itself
    is printed by ShellSession's hook, which sees every notification."""


def _add_watch(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    mode_name = cmd.flags.get("m", "PERSISTENT_RECURSIVE")
    if mode_name not in AddWatchMode.__members__:
        raise UsageError(f"Unsupported mode: {mode_name}")
    s.jute(OpCode.addWatch, records.AddWatchRequest(s.chroot(path), int(AddWatchMode[mode_name])),
           None, path)


def _remove_watches(ctx: ShellContext, cmd: ParsedCommand) -> None:
    s = ctx.need_session()
    path = validate_path(cmd.args[0])
    kind = WatcherType.Any
    if cmd.has("c"):
        kind = WatcherType.Children
    elif cmd.has("d"):
        kind = WatcherType.Data
    s.jute(OpCode.removeWatches, records.RemoveWatchesRequest(s.chroot(path), int(kind)),
           None, path)
    # Forget them locally too, so kazoo does not re-arm them after a reconnect.
    if kind in (WatcherType.Data, WatcherType.Any):
        s.client._data_watchers.pop(path, None)
    if kind in (WatcherType.Children, WatcherType.Any):
        s.client._child_watchers.pop(path, None)


def _printwatches(ctx: ShellContext, cmd: ParsedCommand) -> None:
    if not cmd.args:
        ctx.out(f"printwatches is {'on' if ctx.print_watches else 'off'}")
        return
    if cmd.args[0] not in ("on", "off"):
        raise UsageError(usage_text(cmd.spec))
    ctx.print_watches = cmd.args[0] == "on"


# ---- session and shell ----------------------------------------------------------

def _connect(ctx: ShellContext, cmd: ParsedCommand) -> None:
    server = cmd.args[0] if cmd.args else ctx.server
    if ctx.session is not None:
        ctx.session.close()
        ctx.session = None
    assert ctx.make_session is not None, "the shell wires make_session"
    ctx.server = server
    ctx.session = ctx.make_session(server)
    if not ctx.session.start(wait=True):
        raise CommandError(f"Unable to connect to {server}; still trying in the background")


def _close(ctx: ShellContext, cmd: ParsedCommand) -> None:
    if ctx.session is not None:
        ctx.session.close()
        ctx.session = None


def _history(ctx: ShellContext, cmd: ParsedCommand) -> None:
    start = max(0, len(ctx.history) - limits.SHELL_HISTORY_SHOWN)
    for i in range(start, len(ctx.history)):
        ctx.out(f"{i} - {ctx.history[i]}")


def _quit(ctx: ShellContext, cmd: ParsedCommand) -> None:
    ctx.quit = True


def _help(ctx: ShellContext, cmd: ParsedCommand) -> None:
    ctx.out(usage_text())


def _version(ctx: ShellContext, cmd: ParsedCommand) -> None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        ours = version("zabpy")
    except PackageNotFoundError:
        ours = "unknown"
    ctx.out(f"ZooKeeper CLI version: zabpy {ours}")


def _redo(ctx: ShellContext, cmd: ParsedCommand) -> None:
    raise AssertionError("redo is expanded by the shell loop before dispatch")


class _Empty:
    """whoAmI carries no request body."""

    def to_bytes(self) -> bytes:
        return b""


HANDLERS: dict[str, Callable[[ShellContext, ParsedCommand], None]] = {
    "addWatch": _add_watch, "addauth": _addauth, "close": _close, "config": _config,
    "connect": _connect, "create": _create, "delete": _delete, "deleteall": _deleteall,
    "delquota": delquota, "listquota": listquota, "setquota": setquota,
    "get": _get, "getAcl": _get_acl, "getAllChildrenNumber": _get_all_children_number,
    "getEphemerals": _get_ephemerals, "help": _help, "history": _history, "ls": _ls,
    "printwatches": _printwatches, "quit": _quit, "redo": _redo,
    "removewatches": _remove_watches, "set": _set, "setAcl": _set_acl, "stat": _stat,
    "sync": _sync, "version": _version, "whoami": _whoami,
}
