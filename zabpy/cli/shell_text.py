"""Pure text side of `zabpy shell`: tokenising, option parsing, output formats.

Nothing here touches a socket or a terminal, so every rule can be tested with
plain values. The formats copy zkCli.sh 3.8 (checked against Debian's 3.8.0):

- a child list prints as Java's ``List.toString``: ``[a, b]``;
- a Stat prints as eleven ``name = value`` lines, zxids and the ephemeral
  owner as unsigned hex (Java's ``Long.toHexString``), times as Java's
  ``Date.toString`` in the local time zone;
- an ACL prints as ``'scheme,'id`` then ``: perms`` with perms in ``cdrwa``
  order;
- a failed request prints the message of zkCli's ``CliWrapperException``
  (``Node does not exist: /x``), or ``KeeperErrorCode = <name> for <path>``.

Command lines are split like zkCli does: whitespace separates words and a
double-quoted run is one word (single quotes are not special). Each command
declares its flags in ``COMMANDS``; a flag may appear anywhere on the line,
boolean flags may be bundled (``-es``), and ``--`` ends the flags so data may
start with a dash.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from zabpy.jute.constants import Err, Perms

__all__ = [
    "COMMANDS", "CommandSpec", "ParsedCommand", "UsageError", "CommandError",
    "tokenize", "parse_command", "usage_text", "format_children", "format_stat",
    "format_acls", "format_java_date", "format_data", "perm_string", "parse_perms",
    "parse_acl", "keeper_error_message", "validate_path", "format_event",
    "format_client_config",
]


class UsageError(Exception):
    """The command line is malformed; the shell prints this and exits 2."""


class CommandError(Exception):
    """The command ran and failed (a ZooKeeper error, not connected, ...);
    the shell prints this on stderr and exits 1."""


@dataclass(frozen=True)
class CommandSpec:
    """One shell command: its flags (name -> takes a value) and its argument
    count range. ``usage`` is the zkCli synopsis line."""

    name: str
    usage: str
    flags: dict[str, bool] = field(default_factory=dict)
    args_min: int = 0
    args_max: int = 0
    needs_server: bool = True


def _spec(name, usage, flags="", valued="", args=(0, 0), server=True) -> CommandSpec:
    table = {f: False for f in flags}
    table.update({f: True for f in valued})
    return CommandSpec(name, usage, table, args[0], args[1], server)


_MANY = 1 << 16  # words a command takes and ignores past its own

# Ordered as zkCli lists them; the synopsis strings are zkCli's.
COMMANDS: dict[str, CommandSpec] = {s.name: s for s in (
    _spec("addWatch", "[-m mode] path # optional mode is one of [PERSISTENT, "
          "PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE", valued="m", args=(1, 1)),
    _spec("addauth", "scheme auth", args=(1, 2)),
    _spec("close", "", server=False),
    _spec("config", "[-c] [-w] [-s]", flags="cws"),
    _spec("connect", "host:port", args=(0, 1), server=False),
    _spec("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]", flags="sec", valued="t",
          args=(1, 3)),
    _spec("delete", "[-v version] path", valued="v", args=(1, 1)),
    _spec("deleteall", "path [-b batch size]", valued="b", args=(1, 1)),
    # The quota commands check their own option group and arguments (zkCli
    # reports a missing option before a missing path) and ignore extra words.
    _spec("delquota", "[-n|-b|-N|-B] path", flags="nbNB", args=(0, _MANY)),
    _spec("get", "[-s] [-w] path", flags="sw", args=(1, 1)),
    _spec("getAcl", "[-s] path", flags="s", args=(1, 1)),
    _spec("getAllChildrenNumber", "path", args=(1, 1)),
    _spec("getEphemerals", "path", args=(0, 1)),
    _spec("help", "", server=False),
    _spec("history", "", server=False),
    _spec("listquota", "path", args=(0, _MANY)),
    _spec("ls", "[-s] [-w] [-R] path", flags="swR", args=(1, 1)),
    _spec("printwatches", "on|off", args=(0, 1), server=False),
    _spec("quit", "", server=False),
    _spec("redo", "cmdno", args=(1, 1), server=False),
    _spec("removewatches", "path [-c|-d|-a] [-l]", flags="cdal", args=(1, 1)),
    _spec("set", "[-s] [-v version] path data", flags="s", valued="v", args=(2, 2)),
    _spec("setAcl", "[-s] [-v version] [-R] path acl", flags="sR", valued="v", args=(2, 2)),
    _spec("setquota", "-n|-b|-N|-B val path", valued="nbNB", args=(0, _MANY)),
    _spec("stat", "[-w] path", flags="w", args=(1, 1)),
    _spec("sync", "path", args=(1, 1)),
    _spec("version", "", server=False),
    _spec("whoami", ""),
)}


@dataclass(frozen=True)
class ParsedCommand:
    spec: CommandSpec
    flags: dict[str, Any]
    args: list[str]

    def has(self, flag: str) -> bool:
        return flag in self.flags


_WORD = re.compile(r'"([^"]*)"|(\S+)')


def tokenize(line: str) -> list[str]:
    """Split a line the way zkCli does: spaces separate, "..." groups."""
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _WORD.finditer(line)]


def usage_text(spec: CommandSpec | None = None) -> str:
    if spec is not None:
        return f"{spec.name} {spec.usage}".rstrip()
    lines = ["ZooKeeper -server host:port -timeout ms cmd args"]
    lines += [f"\t{s.name} {s.usage}" for s in COMMANDS.values()]
    return "\n".join(lines)


def parse_command(words: list[str]) -> ParsedCommand:
    """Match words against ``COMMANDS``; raise UsageError with zkCli's text."""
    assert words, "caller skips blank lines"
    spec = COMMANDS.get(words[0])
    if spec is None:
        raise UsageError(f"Command not found: Command not found {words[0]}")
    flags: dict[str, Any] = {}
    args: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        if word == "--":
            args.extend(rest)
            break
        if len(word) < 2 or word[0] != "-" or not spec.flags:
            args.append(word)
            continue
        _take_flags(spec, word[1:], rest, flags)
    if not spec.args_min <= len(args) <= spec.args_max:
        raise UsageError(usage_text(spec))
    return ParsedCommand(spec, flags, args)


def _take_flags(spec: CommandSpec, letters: str, rest, flags: dict[str, Any]) -> None:
    if letters in spec.flags:
        letters_list = [letters]
    elif all(c in spec.flags and not spec.flags[c] for c in letters):
        letters_list = list(letters)  # a bundle of boolean flags, e.g. -es
    else:
        raise UsageError(f"Unrecognized option: -{letters}\n{usage_text(spec)}")
    for name in letters_list:
        if spec.flags[name]:
            value = next(rest, None)
            if value is None:
                raise UsageError(f"Missing argument for option: {name}\n{usage_text(spec)}")
            flags[name] = value
        else:
            flags[name] = True


# ---- paths ----------------------------------------------------------------------

def validate_path(path: str, sequential: bool = False) -> str:
    """Client-side path check (zkCli refuses these before sending)."""
    if not path:
        raise UsageError("Path cannot be null")
    if path[0] != "/":
        raise UsageError("Path must start with / character")
    if len(path) == 1:
        return path
    if path[-1] == "/" and not sequential:
        raise UsageError("Path must not end with / character")
    parts = path[1:].split("/")
    if sequential and parts[-1] == "":
        parts = parts[:-1]
    for i, part in enumerate(parts):
        if part == "":
            raise UsageError(f"empty node name specified @{i + 1}")
        if part in (".", ".."):
            raise UsageError(f"relative paths not allowed @{i + 1}")
        if "\0" in part:
            raise UsageError(f"null character not allowed @{i + 1}")
    return path


# ---- output formats -----------------------------------------------------------

def format_children(children: list[str]) -> str:
    return "[" + ", ".join(sorted(children)) + "]"


def format_java_date(ms: int) -> str:
    """Java's Date.toString(): ``Thu Jan 01 00:00:00 UTC 1970`` (local zone)."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))


def _hex(value: int) -> str:
    return "0x" + format(value & 0xFFFFFFFFFFFFFFFF, "x")


def format_stat(stat: Any) -> str:
    """Eleven lines in zkCli order; ``stat`` is any object with Stat's field
    names (a jute Stat or kazoo's ZnodeStat)."""
    return "\n".join([
        f"cZxid = {_hex(stat.czxid)}",
        f"ctime = {format_java_date(stat.ctime)}",
        f"mZxid = {_hex(stat.mzxid)}",
        f"mtime = {format_java_date(stat.mtime)}",
        f"pZxid = {_hex(stat.pzxid)}",
        f"cversion = {stat.cversion}",
        f"dataVersion = {stat.version}",
        f"aclVersion = {stat.aversion}",
        f"ephemeralOwner = {_hex(stat.ephemeralOwner)}",
        f"dataLength = {stat.dataLength}",
        f"numChildren = {stat.numChildren}",
    ])


def format_data(data: bytes | None) -> str:
    """zkCli prints null data as ``null`` and bytes as UTF-8 text."""
    if data is None:
        return "null"
    return data.decode("utf-8", "replace")


_PERM_LETTERS = (("c", Perms.CREATE), ("d", Perms.DELETE), ("r", Perms.READ),
                 ("w", Perms.WRITE), ("a", Perms.ADMIN))


def perm_string(perms: int) -> str:
    return "".join(letter for letter, bit in _PERM_LETTERS if perms & bit)


def parse_perms(text: str) -> int:
    table = dict(_PERM_LETTERS)
    perms = 0
    for ch in text:
        if ch not in table:
            raise UsageError(f"Unknown perm type: {ch}")
        perms |= table[ch]
    return perms


def format_acls(acls: list[tuple[int, str, str]]) -> str:
    """``acls`` holds (perms, scheme, id) triples."""
    return "\n".join(f"'{scheme},'{ident}\n: {perm_string(perms)}" for perms, scheme, ident in acls)


def parse_acl(text: str) -> list[tuple[int, str, str]]:
    """``scheme:id:perms[,...]``; the id may itself hold colons (digest)."""
    acls = []
    for segment in text.split(","):
        first, last = segment.find(":"), segment.rfind(":")
        if first == -1 or first == last:
            raise UsageError(f"{segment} does not have the form scheme:id:perm")
        acls.append((parse_perms(segment[last + 1:]), segment[:first], segment[first + 1:last]))
    return acls


def format_client_config(config: str) -> str:
    """``config -c``: ``version host:port,...`` from /zookeeper/config text."""
    version, clients = "", []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key == "version":
            version = value
        elif key.startswith("server.") and ";" in value:
            client = value.split(";", 1)[1]
            clients.append(client if ":" in client else f"0.0.0.0:{client}")
    return f"{version} {','.join(clients)}".strip()


def format_event(state: str, event_type: str, path: str | None) -> str:
    """What zkCli's default watcher prints for each notification."""
    return f"\nWATCHER::\n\nWatchedEvent state:{state} type:{event_type} path:{path or 'null'}"


# ---- errors -----------------------------------------------------------------

# CliWrapperException's messages (3.8.0 wording, checked against zkCli).
_WRAPPED = {
    Err.NONODE: "Node does not exist: {path}",
    Err.NOCHILDRENFOREPHEMERALS: "Ephemerals cannot have children: {path}",
    Err.NODEEXISTS: "Node already exists: {path}",
    Err.NOTEMPTY: "Node not empty: {path}",
    Err.NOTREADONLY: "Not a read-only call: {path}",
    Err.INVALIDACL: "Acl is not valid : {path}",
    Err.NOAUTH: "Insufficient permission : {path}",
    Err.BADARGUMENTS: "Arguments are not valid : {path}",
    Err.BADVERSION: "version No is not valid : {path}",
}

# KeeperException.getCodeMessage names.
_CODE_NAMES = {
    Err.SYSTEMERROR: "SystemError", Err.RUNTIMEINCONSISTENCY: "RuntimeInconsistency",
    Err.DATAINCONSISTENCY: "DataInconsistency", Err.CONNECTIONLOSS: "ConnectionLoss",
    Err.MARSHALLINGERROR: "MarshallingError", Err.UNIMPLEMENTED: "Unimplemented",
    Err.OPERATIONTIMEOUT: "OperationTimeout", Err.BADARGUMENTS: "BadArguments",
    Err.UNKNOWNSESSION: "Unknown session", Err.APIERROR: "APIError", Err.NONODE: "NoNode",
    Err.NOAUTH: "NoAuth", Err.BADVERSION: "BadVersion",
    Err.NOCHILDRENFOREPHEMERALS: "NoChildrenForEphemerals", Err.NODEEXISTS: "NodeExists",
    Err.INVALIDACL: "InvalidACL", Err.AUTHFAILED: "AuthFailed",
    Err.NOTEMPTY: "Directory not empty", Err.SESSIONEXPIRED: "Session expired",
    Err.INVALIDCALLBACK: "Invalid callback", Err.SESSIONMOVED: "Session moved",
    Err.NOTREADONLY: "Not a read-only call",
    Err.EPHEMERALONLOCALSESSION: "Ephemeral node on local session",
    Err.NOWATCHER: "No such watcher", Err.RECONFIGDISABLED: "Reconfig is disabled",
    Err.REQUESTTIMEOUT: "Request timeout", Err.QUOTAEXCEEDED: "Quota has exceeded",
    Err.THROTTLEDOP: "Op throttled due to high load",
}


def keeper_error_message(code: int, path: str | None) -> str:
    """The text zkCli prints for a failed request on ``path``."""
    if code in _WRAPPED and path is not None:
        return _WRAPPED[Err(code)].format(path=path)
    name = _CODE_NAMES.get(code, f"Unknown error {code}")
    return f"KeeperErrorCode = {name}" + (f" for {path}" if path else "")
