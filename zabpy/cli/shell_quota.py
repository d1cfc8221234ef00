"""`setquota`, `listquota` and `delquota` of `zabpy shell`, as zkCli.sh 3.8
runs them: plain client requests on the nodes under /zookeeper/quota (the
server keeps the usage), the same checks in the same order, the same text.

zkCli writes some messages on stderr without failing (``absolute path is
...``, ``quota for /x does not exist.``, a refused option value: exit 0) and
others on stdout (``Quota does not exist for /x``, the ``[Warning]`` lines of
setquota); a path the Java client refuses or a parent/child quota fails the
command (exit 1). The text of the limits and stats nodes is read and written
as StatsTrack does (zabpy.tree.quota).
"""

from __future__ import annotations

from kazoo.exceptions import NodeExistsError, NoNodeError

from zabpy.tree.paths import validate_path as _path_reason
from zabpy.tree.quota import (LIMIT_NODE, QUOTA_ROOT, STAT_NODE, StatsError, limits_path,
                              parse_stats, stats_path, stats_text, trim_quota_path)

from .shell_text import CommandError, ParsedCommand, UsageError, usage_text

__all__ = ["setquota", "listquota", "delquota"]

_INT_MAX, _LONG_MAX = (1 << 31) - 1, (1 << 63) - 1
# setquota's option group, in the order zkCli declares it.
_GROUP = (("n", "num soft quota"), ("b", "bytes soft quota"), ("N", "num hard quota"),
          ("B", "bytes hard quota"))
_KEY = {"n": "count", "b": "bytes", "N": "countHardLimit", "B": "byteHardLimit"}


def _java_path_error(path: str) -> str | None:
    """The message of the Java client's PathUtils.validatePath, or None."""
    reason = _path_reason(path)
    if reason is None:
        return None
    if reason.startswith("path "):
        return "P" + reason[1:]
    return f'Invalid path string "{path}" caused by {reason}'


def _checked(path: str) -> str:
    """A path the Java client would send; else the command fails as zkCli's
    MalformedPathException does."""
    error = _java_path_error(path)
    if error is not None:
        raise CommandError(error)
    return path


def _one_of_group(cmd: ParsedCommand, required: bool) -> str | None:
    """commons-cli's OptionGroup: at most one of -n -b -N -B."""
    chosen = [f for f in cmd.flags if f in _KEY]
    if len(chosen) > 1:
        raise UsageError("org.apache.commons.cli.AlreadySelectedException: The option "
                         f"'{chosen[1]}' was specified but an option from this group has "
                         f"already been selected: '{chosen[0]}'")
    if not chosen and required:
        names = ", ".join(f"-{f} {d}" for f, d in _GROUP)
        raise UsageError("org.apache.commons.cli.MissingOptionException: Missing required "
                         f"option: [{names}]")
    return chosen[0] if chosen else None


def _path_arg(cmd: ParsedCommand) -> str:
    if not cmd.args:
        raise UsageError(usage_text(cmd.spec))
    return cmd.args[0]


def _stats(data: bytes | None) -> dict[str, int]:
    try:
        return parse_stats(data)
    except StatsError as exc:
        raise CommandError(f"java.lang.NumberFormatException: {exc}") from None


def _java_number(text: str, top: int) -> int | None:
    """Integer.parseInt / Long.parseLong, None where they throw."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isdecimal():   # Character.digit takes any Nd digit
        return None
    value = int(text)
    return value if -top - 1 <= value <= top else None


# ---- setquota ----------------------------------------------------------------------

def setquota(ctx, cmd: ParsedCommand) -> None:
    flag = _one_of_group(cmd, required=True)
    path = _path_arg(cmd)
    if path.startswith(QUOTA_ROOT):
        ctx.err(f"cannot set a quota under the path: {QUOTA_ROOT}")
        return
    quota = {"count": -1, "bytes": -1, "countHardLimit": -1, "byteHardLimit": -1}
    value = _java_number(cmd.flags[flag], _INT_MAX if flag in "nN" else _LONG_MAX)
    if value is None:
        ctx.err("NumberFormatException happens when parsing the option value")
        return
    if flag in "nN" and value <= 0:
        ctx.err("the num quota must be greater than zero")
        return
    if flag in "bB" and value < 0:
        ctx.err("the bytes quota must be greater than or equal to zero")
        return
    quota[_KEY[flag]] = value
    s = ctx.need_session()
    if s.call(lambda: s.client.exists(_checked(path)), path) is None:
        raise CommandError(f"{path} does not exist.")
    _refuse_child_quota(s, path)
    _refuse_parent_quota(s, path)
    node = QUOTA_ROOT
    for part in _java_split_path(path)[1:]:
        node = f"{node}/{part}"
        if s.call(lambda: s.client.exists(_checked(node)), node) is None:
            _create_quiet(s, node, None)
    limit_node, stat_node = f"{node}/{LIMIT_NODE}", f"{node}/{STAT_NODE}"
    if s.call(lambda: s.client.exists(_checked(limit_node)), limit_node) is None:
        s.call(lambda: s.client.create(limit_node, stats_text(quota)), limit_node)
        s.call(lambda: s.client.create(stat_node, stats_text({"count": 0, "bytes": 0})),
               stat_node)
        limits = _stats(s.call(lambda: s.client.get(limit_node), limit_node)[0])
        _warn_below_usage(ctx, limits,
                          _stats(s.call(lambda: s.client.get(stat_node), stat_node)[0]))
        return
    limits = _stats(s.call(lambda: s.client.get(limit_node), limit_node)[0])
    for key, v in quota.items():
        if v > -1:
            limits[key] = v
    _warn_below_usage(ctx, limits, _stats(s.call(lambda: s.client.get(stat_node), stat_node)[0]))
    s.call(lambda: s.client.set(limit_node, stats_text(limits), -1), limit_node)


def _create_quiet(s, path: str, data: bytes | None) -> None:
    def create():
        try:
            s.client.create(path, data)
        except NodeExistsError:
            pass
    s.call(create, path)


def _warn_below_usage(ctx, limits: dict[str, int], usage: dict[str, int]) -> None:
    count, size = usage.get("count", -1), usage.get("bytes", -1)
    for soft, hard, used, what in (("count", "countHardLimit", count, "count"),
                                   ("bytes", "byteHardLimit", size, "bytes")):
        lo, hi = limits.get(soft, -1), limits.get(hard, -1)
        if (lo > -1 and lo < used) or (hi > -1 and hi < used):
            ctx.out(f"[Warning]: the {what} quota you create is less than the existing "
                    f"{what}:{used}")


def _refuse_child_quota(s, path: str) -> None:
    """No quota may sit below the new one. ZKUtil.visitSubTreeDFS's order: a
    node's sorted children are each looked at, then each one's subtree."""
    top = _checked(QUOTA_ROOT + path)
    if _do(s, lambda: s.client.get(top), top) is _NONE:
        return

    def look(node: str) -> None:
        children = _do(s, lambda: s.client.get_children(node), node)
        if children is not _NONE and node != top and LIMIT_NODE in children:
            raise CommandError(f"{path} has a child {trim_quota_path(node)} which has a quota")

    def walk(node: str) -> None:
        children = _do(s, lambda: s.client.get_children(node), node)
        if children is _NONE:
            return
        for child in sorted(children):
            look(f"{node}/{child}")
        for child in sorted(children):
            walk(f"{node}/{child}")

    look(top)
    walk(top)


def _refuse_parent_quota(s, path: str) -> None:
    node = QUOTA_ROOT
    for part in _java_split_path(path)[1:-1]:
        node = f"{node}/{part}"
        children = _do(s, lambda: s.client.get_children(_checked(node)), node)
        if children is _NONE or not children:
            return
        if LIMIT_NODE in children:
            raise CommandError(f"{path} has a parent {trim_quota_path(node)} which has a quota")


def _java_split_path(path: str) -> list[str]:
    parts = path.split("/")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


_NONE = object()  # what _do returns for NoNode


def _do(s, fn, path: str):
    """One request; NoNode comes back as _NONE (zkCli catches it), any other
    failure fails the command with zkCli's message."""
    def run():
        try:
            return fn()
        except NoNodeError:
            return _NONE
    return s.call(run, path)


# ---- listquota -----------------------------------------------------------------------

def listquota(ctx, cmd: ParsedCommand) -> None:
    path = _path_arg(cmd)
    s = ctx.need_session()
    limit_node, stat_node = limits_path(path), stats_path(path)
    ctx.err(f"absolute path is {limit_node}")
    limits = _do(s, lambda: s.client.get(_checked(limit_node)), limit_node)
    stats = _NONE if limits is _NONE else _do(s, lambda: s.client.get(_checked(stat_node)),
                                               stat_node)
    if stats is _NONE:
        ctx.err(f"quota for {path} does not exist.")
        return
    ctx.out(f"Output quota for {path} {stats_text(_stats(limits[0])).decode()}")
    ctx.out(f"Output stat for {path} {stats_text(_stats(stats[0])).decode()}")


# ---- delquota ----------------------------------------------------------------------------

def delquota(ctx, cmd: ParsedCommand) -> None:
    flag = _one_of_group(cmd, required=False)
    path = _path_arg(cmd)
    s = ctx.need_session()
    if not _delete_quota(ctx, s, path, flag):
        ctx.err(f"quota for {path} does not exist.")


def _delete_quota(ctx, s, path: str, flag: str | None) -> bool:
    """DelQuotaCommand.delQuota; False where it meets NoNode."""
    parent, limit_node = QUOTA_ROOT + path, limits_path(path)
    if s.call(lambda: s.client.exists(_checked(limit_node)), limit_node) is None:
        ctx.out(f"Quota does not exist for {path}")
        return True
    got = _do(s, lambda: s.client.get(limit_node), limit_node)
    if got is _NONE:
        return False
    limits = _stats(got[0])
    if flag is not None:
        limits[_KEY[flag]] = -1
        return _do(s, lambda: s.client.set(limit_node, stats_text(limits), -1),
                   limit_node) is not _NONE
    children = _do(s, lambda: s.client.get_children(parent), parent)
    if children is _NONE:
        return False
    for child in children:
        doomed = f"{parent}/{child}"
        if _do(s, lambda: s.client.delete(doomed, -1), doomed) is _NONE:
            return False
    node = parent
    while node != QUOTA_ROOT:   # trimProcQuotas: drop emptied quota dirs upwards
        children = _do(s, lambda: s.client.get_children(node), node)
        if children is _NONE:
            return False
        if children:
            break
        if _do(s, lambda: s.client.delete(node, -1), node) is _NONE:
            return False
        node = node[: node.rfind("/")]
    return True
