"""The terminal half of `zabpy shell`: prompt_toolkit around ``execute_line``.

Owns only terminal I/O: the prompt (zkCli's ``[zk: host:port(STATE) N]``),
the history file, Tab completion (delegated to ``shell.complete_line``), and
``patch_stdout`` so that notifications printed from kazoo's threads appear
above the prompt instead of inside the line being edited. Ctrl-C abandons the
current line; Ctrl-D or ``quit`` leaves.
"""

from __future__ import annotations

import os

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from .shell import EXIT_OK, _err, complete_line, execute_line
from .shell_commands import ShellContext

__all__ = ["run_interactive", "history_path"]


def history_path() -> str:
    return os.environ.get("ZABPY_HISTORY") or os.path.join(os.path.expanduser("~"),
                                                           ".zabpy_history")


class _ShellCompleter(Completer):
    def __init__(self, ctx: ShellContext):
        self.ctx = ctx

    def get_completions(self, document, complete_event):
        word, candidates = complete_line(self.ctx, document.text_before_cursor)
        for candidate in candidates:
            display = candidate.rsplit("/", 1)[-1] if candidate.startswith("/") else candidate
            yield Completion(candidate, start_position=-len(word), display=display or "/")


def _history():
    try:
        return FileHistory(history_path())
    except OSError:
        return InMemoryHistory()


def _prompt_text(ctx: ShellContext) -> str:
    state = ctx.session.state_name if ctx.session is not None else "CLOSED"
    return f"[zk: {ctx.server}({state}) {len(ctx.history)}] "


def run_interactive(ctx: ShellContext) -> int:
    """Connect (without blocking the prompt for long), then read commands."""
    assert ctx.make_session is not None
    ctx.session = ctx.make_session(ctx.server)
    _out_connecting(ctx)
    prompt = PromptSession(history=_history(), completer=_ShellCompleter(ctx),
                           complete_while_typing=False)
    try:
        with patch_stdout(raw=True):
            while not ctx.quit:
                try:
                    line = prompt.prompt(_prompt_text(ctx))
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                execute_line(ctx, line)
    finally:
        if ctx.session is not None:
            ctx.session.close()
    return EXIT_OK


def _out_connecting(ctx: ShellContext) -> None:
    print(f"Connecting to {ctx.server}", flush=True)
    assert ctx.session is not None
    ctx.session.start(wait=False)
    # Wait a little so the first prompt usually says CONNECTED, but never let
    # a dead server keep the user from the prompt (kazoo keeps retrying).
    if not ctx.session.wait_connected(min(ctx.timeout_ms / 1000.0, 5.0)):
        _err(f"Not connected to {ctx.server} yet; still trying in the background")
