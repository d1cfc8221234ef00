"""`zabpy shell`: a zkCli.sh-compatible ZooKeeper shell.

Three ways in, one way to run a command:

- one-shot, ``zabpy shell [-server host:port] [-timeout ms] CMD ARGS...``:
  parse CMD first (a usage error exits 2 without touching the network),
  connect, run it, exit 0 on success or 1 on failure (message on stderr);
- interactive, when stdin and stdout are terminals: prompt_toolkit gives line
  editing, a persistent history file ($ZABPY_HISTORY, default
  ~/.zabpy_history) and Tab completion of command names and of znode paths
  (by listing the parent znode); notifications print above the prompt;
- piped, when stdin is not a terminal: each line is a command, no prompt; the
  exit code is the worst one seen.

Every command line goes through ``execute_line``: tokenize and parse
(shell_text), dispatch (shell_commands), translate UsageError/CommandError
into an exit code. The completion logic is the plain function
``complete_line`` so it can be tested without a terminal.
"""

from __future__ import annotations

import sys
from typing import Callable

from .shell_client import ShellSession
from .shell_commands import ShellContext, run_parsed
from .shell_text import (COMMANDS, CommandError, UsageError, format_event, parse_command,
                         tokenize, usage_text)

__all__ = ["main", "execute_line", "complete_line"]

DEFAULT_SERVER = "127.0.0.1:2181"
DEFAULT_TIMEOUT_MS = 30_000
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _out(text: str) -> None:
    print(text, flush=True)


def parse_args(argv: list[str]) -> tuple[str, int, list[str]]:
    """Leading options (zkCli's spelling and --long), then the command words."""
    server, timeout_ms, i = DEFAULT_SERVER, DEFAULT_TIMEOUT_MS, 0
    while i < len(argv) and argv[i].startswith("-"):
        opt = argv[i].lstrip("-")
        if opt not in ("server", "timeout") or i + 1 >= len(argv):
            raise UsageError(f"bad option {argv[i]}\n{usage_text()}")
        value = argv[i + 1]
        if opt == "server":
            server = value
        else:
            try:
                timeout_ms = int(value)
            except ValueError:
                raise UsageError(f"-timeout takes milliseconds, not {value!r}") from None
            if timeout_ms <= 0:
                raise UsageError("-timeout must be positive")
        i += 2
    return server, timeout_ms, argv[i:]


def execute_words(ctx: ShellContext, words: list[str], err: Callable[[str], None]) -> int:
    try:
        run_parsed(ctx, parse_command(words))
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except CommandError as exc:
        err(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def execute_line(ctx: ShellContext, line: str, err: Callable[[str], None] = _err) -> int:
    """Run one typed line, recording it in the session history (zkCli's
    ``history``/``redo`` numbering)."""
    words = tokenize(line)
    if not words:
        return EXIT_OK
    if words[0] == "redo":
        if len(words) != 2 or not words[1].isdigit() or int(words[1]) >= len(ctx.history):
            err("Command index out of range")
            return EXIT_USAGE
        line = ctx.history[int(words[1])]
        words = tokenize(line)
    ctx.history.append(line.strip())
    return execute_words(ctx, words, err)


def complete_line(ctx: ShellContext, text: str) -> tuple[str, list[str]]:
    """What Tab offers for ``text`` (the line up to the cursor): the word
    being completed and its candidates (command names, or full znode paths
    under the typed parent)."""
    words = text.split()
    if not words or (len(words) == 1 and not text.endswith(" ")):
        word = words[0] if words else ""
        return word, [name for name in COMMANDS if name.startswith(word)]
    word = "" if text.endswith(" ") else words[-1]
    if not word.startswith("/"):
        return word, []
    parent, _, prefix = word.rpartition("/")
    session = ctx.session
    if session is None or not session.connected:
        return word, []
    try:
        children = session.client.get_children_async(parent or "/").get(timeout=2.0)
    except Exception:  # a completion must never break the prompt
        return word, []
    return word, [f"{parent}/{c}" for c in sorted(children) if c.startswith(prefix)]


def _make_context(server: str, timeout_ms: int, interactive: bool) -> ShellContext:
    ctx = ShellContext(server=server, timeout_ms=timeout_ms, out=_out, err=_err)

    def on_event(state: str, event_type: str, path: str | None) -> None:
        if interactive and ctx.print_watches:
            _out(format_event(state, event_type, path))

    ctx.make_session = lambda s: ShellSession(s, timeout_ms, on_event)
    return ctx


def _one_shot(server: str, timeout_ms: int, words: list[str]) -> int:
    try:
        cmd = parse_command(words)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    ctx = _make_context(server, timeout_ms, interactive=False)
    try:
        if cmd.spec.needs_server:
            ctx.session = ctx.make_session(server)
            if not ctx.session.start(wait=True):
                _err(f"Unable to connect to {server} within {timeout_ms} ms")
                return EXIT_FAILED
        return execute_words(ctx, words, _err)
    finally:
        if ctx.session is not None:
            ctx.session.close()


def _piped(server: str, timeout_ms: int) -> int:
    ctx = _make_context(server, timeout_ms, interactive=False)
    ctx.session = ctx.make_session(server)
    worst = EXIT_OK
    try:
        if not ctx.session.start(wait=True):
            _err(f"Unable to connect to {server} within {timeout_ms} ms")
            return EXIT_FAILED
        for line in sys.stdin:
            worst = max(worst, execute_line(ctx, line))
            if ctx.quit:
                break
        return worst
    finally:
        if ctx.session is not None:
            ctx.session.close()


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        _out(usage_text())
        return EXIT_OK
    try:
        server, timeout_ms, words = parse_args(argv)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if words:
        return _one_shot(server, timeout_ms, words)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _piped(server, timeout_ms)
    from .shell_prompt import run_interactive  # prompt_toolkit only when needed
    ctx = _make_context(server, timeout_ms, interactive=True)
    return run_interactive(ctx)
